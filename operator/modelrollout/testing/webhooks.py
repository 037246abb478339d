"""A real local HTTP receiver for webhook notifications."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from modelrollout.testing.processes import free_ports


class Receiver:
    """Records the JSON body of every POST; answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.received: list[dict[str, str]] = []
        received, code = self.received, status

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        (port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{port}/hook"
        self.server = HTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
