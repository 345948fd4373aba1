"""A stand-in for the Hugging Face hub on 127.0.0.1: `HF_ENDPOINT=server.url` makes
huggingface_hub download from it, so the pretrained-weights download path runs with no internet.

It answers `HEAD|GET /<org>/<repo>/resolve/<revision>/<filename>` for the files it was given,
with the headers hf_hub_download reads (commit, etag, size), and 404 (with the hub's
`X-Error-Code: EntryNotFound`) for any other file.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    def __init__(self, files: dict[tuple[str, str], bytes]):
        self.files = files  # (repo_id, filename) -> bytes
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                server.answer(self, body=False)

            def do_GET(self):
                server.answer(self, body=True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        self.hits[f"{handler.command} {handler.path}"] += 1
        parts = handler.path.split("?")[0].strip("/").split("/")
        # <org>/<repo>/resolve/<revision>/<filename>
        key = ("/".join(parts[:2]), "/".join(parts[4:])) if len(parts) >= 5 else None
        data = self.files.get(key) if key and parts[2] == "resolve" else None
        if data is None:
            handler.send_response(404)
            handler.send_header("X-Error-Code", "EntryNotFound")
            handler.send_header("X-Error-Message", "Entry not found")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("X-Repo-Commit", COMMIT)
        handler.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Content-Type", "application/octet-stream")
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
