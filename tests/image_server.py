"""A local image server on 127.0.0.1 that injects faults, for the downloader's tests.

`/<fault>/<times>/<name>` serves image `<name>`, but the first `<times>` requests of that path
suffer `<fault>` (`ok` never does; `times` = 99 means always):
  500       HTTP 500
  slow      sleep `slow_seconds` before answering (the client should time out)
  truncated Content-Length of the whole image, half the body, then close
  nolength  no Content-Length, half the body, then close (only a decode check catches it)
  corrupt   200 with bytes that are not an image
  drop      close the connection without any answer
"""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image


def make_png(seed: int, size=(48, 32)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


class FaultServer:
    def __init__(self, images: dict[str, bytes], slow_seconds: float = 1.5):
        self.images = images
        self.slow_seconds = slow_seconds
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, fault: str, times: int, name: str) -> str:
        return f"{self.base}/{fault}/{times}/{name}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.hits[h.path] += 1
            n = self.hits[h.path]
        parts = h.path.strip("/").split("/")
        if len(parts) != 3 or parts[2] not in self.images:
            h.send_error(404)
            return
        fault, times, name = parts[0], int(parts[1]), parts[2]
        body = self.images[name]
        if fault != "ok" and n <= times:
            if fault == "500":
                h.send_error(500)
                return
            if fault == "slow":
                time.sleep(self.slow_seconds)
            elif fault == "drop":
                h.close_connection = True
                h.connection.close()
                return
            elif fault == "corrupt":
                body = b"\x89PNG not really" + bytes(range(256)) * 4
            elif fault in ("truncated", "nolength"):
                h.send_response(200)
                h.send_header("Content-Type", "image/png")
                if fault == "truncated":
                    h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body[: len(body) // 2])
                h.wfile.flush()
                h.close_connection = True
                return
        h.send_response(200)
        h.send_header("Content-Type", "image/png")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a slow answer after its time-out)
