"""A local HTTP file server on 127.0.0.1 with Range support and scripted faults.

Stands in for the release server in fetch tests (never the internet): it can drop
the connection after N bytes, ignore Range, or serve different bytes.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Served:
    path: Path
    drop_after: list[int] = field(default_factory=list)  # per request, popped in order
    ignore_range: bool = False


class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.requests: list[dict[str, Any]] = []  # {"path", "range", "status", "sent"}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                served = server.files.get(name)
                record: dict[str, Any] = {"path": self.path, "range": self.headers.get("Range"),
                                          "status": 404, "sent": 0}
                server.requests.append(record)
                if served is None:
                    self.send_error(404)
                    return
                size = served.path.stat().st_size
                start = 0
                m = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
                if m and not served.ignore_range:
                    start = int(m.group(1))
                    if start >= size:
                        record["status"] = 416
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                    record["status"] = 206
                else:
                    self.send_response(200)
                    record["status"] = 200
                self.send_header("Content-Length", str(size - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                limit = served.drop_after.pop(0) if served.drop_after else None
                with served.path.open("rb") as fh:
                    fh.seek(start)
                    while block := fh.read(1 << 16):
                        if limit is not None and record["sent"] + len(block) > limit:
                            block = block[: limit - record["sent"]]
                        try:
                            self.wfile.write(block)
                        except (BrokenPipeError, ConnectionResetError):
                            return
                        record["sent"] += len(block)
                        if limit is not None and record["sent"] >= limit:
                            self.close_connection = True
                            return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/release"

    def serve(self, name: str, path: Path, **how: Any) -> Served:
        self.files[name] = Served(path, **how)
        return self.files[name]

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
