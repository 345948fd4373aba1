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
    from fathom.help_defaults import DOWNLOAD  # not fathom.data: --help stays instant

    d = argparse.Namespace(**DOWNLOAD)
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
    from fathom.data.images import DownloadConfig, fetch_images, format_report

    cfg = DownloadConfig(
        workers=args.workers,
        retries=args.retries,
        read_timeout=args.timeout,
        check_decode=not args.no_decode_check,
        full_decode=args.full_decode,
    )
    any_failed = False
    for result in fetch_images(
        args.comp,
        split=args.split,
        json=args.json,
        out=args.out,
        cfg=cfg,
        limit=args.limit,
        progress=not args.quiet,
    ):  # each split's report is printed as soon as that split is done
        print(format_report(result))
        any_failed |= result.failed_csv is not None
    return 1 if any_failed else 0
