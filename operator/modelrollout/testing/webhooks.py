"""A real local HTTP receiver for notifications."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from modelrollout.testing.processes import free_ports


class Receiver:
    """Records every POST it takes (the JSON body, and the raw body and headers); answers
    `status`, and refuses the first `failing` POSTs with 503 and Retry-After `retry_after`."""

    def __init__(self, status: int = 200, *, failing: int = 0, retry_after: str = "1") -> None:
        self.received: list[dict[str, Any]] = []
        self.raw: list[tuple[bytes, dict[str, str]]] = []
        self.refused = 0
        self.failing = failing
        receiver, code = self, status

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                if receiver.refused < receiver.failing:
                    receiver.refused += 1
                    self.send_response(503)
                    self.send_header("Retry-After", retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                receiver.received.append(json.loads(body))
                receiver.raw.append((body, dict(self.headers.items())))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        (port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{port}/hook"
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
