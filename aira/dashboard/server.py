"""The dashboard's HTTP server: the standard library's ThreadingHTTPServer, three read-only routes.

    GET /                   the page (page.html: plain HTML, CSS and a script that polls the API)
    GET /api/runs           [{name, task, state, nodes, evaluations, best, ...}] for every run under the root
    GET /api/runs/<name>    one run's state (aira.dashboard.state.run_state); 404 when there is no such run

It binds to 127.0.0.1 unless told otherwise: the page shows proposals, costs and log tails, which are
nobody else's business. Port 0 takes a free port; `serve` prints the URL it got.
"""

from __future__ import annotations

import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

from aira.dashboard.state import Watcher, dumps

PAGE = Path(__file__).with_name("page.html")


class Handler(BaseHTTPRequestHandler):
    server: DashboardServer

    def do_GET(self) -> None:  # http.server's name for it
        path = urlparse(self.path).path
        if path in ("/", "/index.html"):
            return self._send(HTTPStatus.OK, PAGE.read_bytes(), "text/html; charset=utf-8")
        if path == "/api/runs":
            return self._json(HTTPStatus.OK, {"root": str(self.server.watcher.root),
                                              "runs": self.server.watcher.runs()})
        if path.startswith("/api/runs/"):
            state = self.server.watcher.run(unquote(path[len("/api/runs/"):]))
            if state is None:
                return self._json(HTTPStatus.NOT_FOUND, {"error": f"no run {path[len('/api/runs/'):]!r}"})
            return self._json(HTTPStatus.OK, state)
        return self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {path}"})

    def _json(self, status: HTTPStatus, obj) -> None:
        self._send(status, dumps(obj), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # one line per request is noise for a polling page
        pass


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: str | Path, host: str = "127.0.0.1", port: int = 0):
        self.watcher = Watcher(root)
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> threading.Thread:
        """Serve in a daemon thread (tests, notebooks); `shutdown()` stops it."""
        t = threading.Thread(target=self.serve_forever, name="aira-dashboard", daemon=True)
        t.start()
        return t


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 0) -> None:
    with DashboardServer(root, host, port) as server:
        print(f"aira dashboard: {server.url} (following {Path(root).resolve()}; Ctrl-C stops it)",
              file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
