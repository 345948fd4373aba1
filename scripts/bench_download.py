"""Time fathom's image downloader against a plain one-at-a-time loop.

A local HTTP server on 127.0.0.1 serves N PNG images, adding a fixed delay to every request
(default 20 ms: a stand-in for the round trip to the image host). The baseline is what the
organisers' download script does: `requests.get(url)` for each image in turn, then write the
file. fathom's downloader gets the same URLs into a fresh folder. Both results are checked
byte for byte before any rate is printed.

usage:  python scripts/bench_download.py [--images 300] [--delay-ms 20] [--workers 32]
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from fathom.data.images import DownloadConfig, Job, download


def make_images(n: int, size: tuple[int, int]) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    out = {}
    for i in range(n):
        # A smooth gradient plus noise: PNG sizes like a small photo, not incompressible noise.
        base = np.linspace(0, 255, size[0], dtype=np.float32)[None, :, None]
        noise = rng.normal(0, 12, (size[1], size[0], 3))
        pixels = np.clip(base + noise + i % 50, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        out[f"img{i:05d}.png"] = buf.getvalue()
    return out


def serve(images: dict[str, bytes], delay: float, port_out) -> None:
    """Run the server (in its own process, so it does not share the downloader's GIL)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like a real image host
        disable_nagle_algorithm = True  # as nginx does (tcp_nodelay); else 40 ms delayed-ACK stalls

        def log_message(self, *args):
            pass

        def do_GET(self):
            time.sleep(delay)
            body = images.get(self.path.rsplit("/", 1)[-1])
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    port_out.put(httpd.server_address[1])
    httpd.serve_forever(0.05)


def plain_loop(urls: dict[str, str], out: Path) -> None:
    """The organisers' way: one request after another, no session, no checks."""
    for name, url in urls.items():
        resp = requests.get(url, timeout=30)
        resp.raise_for_status()
        (out / name).write_bytes(resp.content)


def check(images: dict[str, bytes], out: Path) -> None:
    for name, body in images.items():
        if (out / name).read_bytes() != body:
            raise SystemExit(f"{out / name}: wrong bytes; benchmark void")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--delay-ms", type=float, default=20.0)
    ap.add_argument("--workers", type=int, default=DownloadConfig().workers)
    ap.add_argument("--size", default="320x240", help="image size WxH (default 320x240)")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    images = make_images(args.images, (w, h))
    mb = sum(map(len, images.values())) / 1e6
    ports = multiprocessing.Queue()
    server = multiprocessing.Process(
        target=serve, args=(images, args.delay_ms / 1000, ports), daemon=True
    )
    server.start()
    base = f"http://127.0.0.1:{ports.get(timeout=30)}"
    urls = {name: f"{base}/{name}" for name in images}
    print(
        f"{len(images)} PNG images of {w}x{h} ({mb:.1f} MB), {args.delay_ms:g} ms added per request"
    )
    with tempfile.TemporaryDirectory() as tmp:
        loop_dir, fathom_dir = Path(tmp, "loop"), Path(tmp, "fathom")
        loop_dir.mkdir()
        t0 = time.perf_counter()
        plain_loop(urls, loop_dir)
        loop_s = time.perf_counter() - t0
        check(images, loop_dir)

        jobs = [Job(url, name) for name, url in urls.items()]
        cfg = DownloadConfig(workers=args.workers)
        t0, c0 = time.perf_counter(), time.process_time()
        report = download(jobs, fathom_dir, cfg, progress=False)
        fathom_s, fathom_cpu = time.perf_counter() - t0, time.process_time() - c0
        if report.count("ok") != len(images):
            raise SystemExit(
                f"fathom fetched {report.count('ok')} of {len(images)}; benchmark void"
            )
        check(images, fathom_dir)

        t0 = time.perf_counter()
        again = download(jobs, fathom_dir, cfg, progress=False)
        resume_s = time.perf_counter() - t0
        assert again.count("skipped") == len(images)
    server.terminate()
    server.join(timeout=10)
    loop_rate, fathom_rate = len(images) / loop_s, len(images) / fathom_s
    print(f"plain loop (requests.get one at a time): {loop_rate:8.1f} images/s  ({loop_s:.2f} s)")
    print(
        f"fathom ({args.workers} workers, checked):  {fathom_rate:8.1f} images/s  ({fathom_s:.2f} s)"
    )
    print(f"ratio: {fathom_rate / loop_rate:.1f}x")
    # If the downloader's CPU time is close to its wall time times the free cores, the
    # machine's CPU (shared with the server here), not the network wait, is the limit.
    print(
        f"fathom used {fathom_cpu:.2f} s CPU in {fathom_s:.2f} s wall "
        f"({1000 * fathom_cpu / len(images):.1f} ms CPU per image; {os.cpu_count()} cores here)"
    )
    print(f"resume (all {len(images)} present, verified and skipped): {resume_s:.2f} s")


if __name__ == "__main__":
    main()
