from __future__ import annotations

import argparse

HELP = "fetch a competition's images from their coco_url (parallel, resumable)"
DESCRIPTION = """Fetch every image listed in a COCO json (object_detection/<split>.json) from its
`coco_url` into COMP/images/<split>/<file_name>, where every other stage looks for it.

Many requests run at once (--workers); a time-out, a reset connection, an HTTP 5xx/429, a
short or undecodable body is retried with growing waits (--retries); each image is written to
a temp file, checked (its length; that it reads to its end: every PNG chunk and CRC, or a
full decode of other formats) and only then renamed, so an interrupted run never
leaves a half image under its final name. Rerun the same command to resume: an image that is
already complete and decodable is skipped. What still failed is listed in
COMP/images/<split>/failed.csv (file_name,url,reason,attempts) and the exit status is 1.

examples:
  fathom images data/fathomnet                   # train and eval
  fathom images data/fathomnet --split eval --workers 64
  fathom images --json other.json --out imgs/    # any COCO json, any folder"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fathom.data.images import DownloadConfig

    d = DownloadConfig()
    p.add_argument("comp", nargs="?", help="competition folder (Kaggle layout)")
    p.add_argument(
        "--split", choices=["train", "eval", "all"], default="all", help="which split (default all)"
    )
    p.add_argument("--json", help="read this COCO json instead of COMP's (needs --out)")
    p.add_argument("--out", help="images folder (default COMP/images/<split>)")
    p.add_argument(
        "--workers", type=int, default=d.workers, help=f"requests in flight (default {d.workers})"
    )
    p.add_argument(
        "--retries",
        type=int,
        default=d.retries,
        help=f"extra attempts per image (default {d.retries})",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=d.read_timeout,
        help=f"seconds of silence before a retry (default {d.read_timeout:g})",
    )
    p.add_argument("--limit", type=int, help="only the first N images (a quick check)")
    p.add_argument(
        "--no-decode-check",
        action="store_true",
        help="skip the check that each image reads to its end (length is still checked)",
    )
    p.add_argument(
        "--full-decode",
        action="store_true",
        help="decode every pixel of each PNG, not only its chunks and CRCs (slower)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fathom.data.coco import SPLITS, _read_coco, open_competition
    from fathom.data.images import DownloadConfig, download, jobs_from_coco, write_failed
    from fathom.errors import FathomError

    cfg = DownloadConfig(
        workers=args.workers,
        retries=args.retries,
        read_timeout=args.timeout,
        check_decode=not args.no_decode_check,
        full_decode=args.full_decode,
    )
    if args.json:
        if not args.out:
            raise FathomError("--json needs --out (the images folder)")
        targets = [(Path(args.json), Path(args.out), Path(args.json).stem)]
    else:
        if not args.comp:
            raise FathomError("give a competition folder, or --json FILE --out DIR")
        comp = open_competition(args.comp)
        splits = SPLITS if args.split == "all" else (args.split,)
        if args.out and len(splits) > 1:
            raise FathomError("--out needs one --split")
        targets = [
            (comp.coco_json(s), Path(args.out) if args.out else comp.image_dir(s), s)
            for s in splits
        ]
    any_failed = False
    for json_path, out, name in targets:
        images = _read_coco(json_path)["images"]
        for i, im in enumerate(images):
            if not isinstance(im, dict) or "file_name" not in im:
                raise FathomError(f"{json_path}, images[{i}]: no `file_name`")
        jobs = jobs_from_coco(images[: args.limit] if args.limit else images)
        report = download(jobs, out, cfg, progress=not args.quiet, desc=name)
        failed_csv = write_failed(out / "failed.csv", report)
        rate = (report.count("ok") / report.seconds) if report.seconds else 0.0
        print(
            f"{name}: {report.count('ok')} fetched, {report.count('skipped')} already complete, "
            f"{report.count('failed')} failed, {report.bytes / 1e6:.1f} MB in {report.seconds:.1f} s "
            f"({rate:.1f} images/s) -> {out}"
        )
        if failed_csv:
            any_failed = True
            first = report.failed[0]
            print(
                f"{name}: failures listed in {failed_csv} (e.g. {first.job.file_name}: {first.reason}); rerun to retry them"
            )
    return 1 if any_failed else 0
