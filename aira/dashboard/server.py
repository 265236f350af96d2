"""The dashboard's HTTP server: the standard library's ThreadingHTTPServer, three read-only routes and two
steering ones.

    GET /                   the page (page.html: plain HTML, CSS and a script that polls the API)
    GET /api/runs           [{name, task, state, nodes, evaluations, best, ...}] for every run under the root
    GET /api/runs/<name>    one run's state (aira.dashboard.state.run_state); 404 when there is no such run
    POST /api/runs/<name>/control    {"action": "pause"|"continue"|"stop"|"add-budget", "budget": "10m",
                                     "kill": false}: a control request for the live run (aira.agents.steering)
    POST /api/runs/<name>/guidance   {"text": "..."}: the run's guidance note

Steering needs the server's secret token (made at start, printed in the URL as `?token=...`, like
Jupyter's) in the `X-Aira-Token` header: a missing or wrong one is 403. A custom header also keeps other
web pages out (a cross-site form cannot set it). Bad input is 400 with one line, a run that is not live 409,
a body over 64 KiB or a note over the guidance limit 413. Reads need no token and never write.
It binds to 127.0.0.1 unless told otherwise: the page shows proposals, costs and log tails, which are
nobody else's business. Port 0 takes a free port; `serve` prints the URL it got.
"""

from __future__ import annotations

import hmac
import json
import secrets
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

from aira.dashboard.state import Watcher, dumps
from aira.errors import UsageError

PAGE = Path(__file__).with_name("page.html")
MAX_BODY = 64 * 1024


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

    def do_POST(self) -> None:  # http.server's name for it
        from aira.agents.journal import writer_pid
        from aira.agents.steering import Request, check_guidance, write_guidance, write_request

        path = urlparse(self.path).path
        name, _, verb = unquote(path[len("/api/runs/"):]).rpartition("/") if path.startswith("/api/runs/") else ("", "", "")
        if verb not in ("control", "guidance"):
            return self._json(HTTPStatus.NOT_FOUND, {"error": f"no steering route {path}"})
        given = self.headers.get("X-Aira-Token", "")
        if not hmac.compare_digest(given.encode(), self.server.token.encode()):
            return self._json(HTTPStatus.FORBIDDEN, {"error": "steering needs this server's token (the ?token= of "
                                                              "the URL it printed at start)"})
        size = int(self.headers.get("Content-Length") or 0)
        if size > MAX_BODY:
            return self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_BODY} bytes"})
        try:
            body = json.loads(self.rfile.read(size) or b"{}")
        except ValueError as e:
            return self._json(HTTPStatus.BAD_REQUEST, {"error": f"the body must be one JSON object ({e})"})
        if not isinstance(body, dict):
            return self._json(HTTPStatus.BAD_REQUEST, {"error": "the body must be one JSON object"})
        run_dir = self.server.watcher.run_dir(name)
        if run_dir is None:
            return self._json(HTTPStatus.NOT_FOUND, {"error": f"no run {name!r}"})
        try:
            if verb == "guidance":
                text = str(body.get("text", ""))
                try:
                    check_guidance(text)
                except UsageError as e:
                    return self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": str(e)})
                write_guidance(run_dir, text)
                return self._json(HTTPStatus.OK, {"ok": f"guidance saved ({len(text.encode('utf-8'))} bytes)"})
            req = Request(action=str(body.get("action", "")), budget=str(body.get("budget") or ""),
                          kill=bool(body.get("kill", False)), source="dashboard")
            if writer_pid(run_dir) is None:
                return self._json(HTTPStatus.CONFLICT, {"error": f"{name} is not running: nothing to {req.action}"})
            write_request(run_dir, req)
        except UsageError as e:
            return self._json(HTTPStatus.BAD_REQUEST, {"error": str(e)})
        return self._json(HTTPStatus.OK, {"ok": f"{req.action} queued (request {req.id}); the run applies it "
                                                f"between jobs", "id": req.id})

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

    def __init__(self, root: str | Path, host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        self.watcher = Watcher(root)
        self.token = token or secrets.token_urlsafe(24)
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def steer_url(self) -> str:
        """The page with the token that unlocks its steering controls."""
        return f"{self.url}?token={self.token}"

    def start(self) -> threading.Thread:
        """Serve in a daemon thread (tests, notebooks); `shutdown()` stops it."""
        t = threading.Thread(target=self.serve_forever, name="aira-dashboard", daemon=True)
        t.start()
        return t


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 0) -> None:
    with DashboardServer(root, host, port) as server:
        print(f"aira dashboard: {server.steer_url} (following {Path(root).resolve()}; the token in this URL "
              f"unlocks steering, share it with no one; Ctrl-C stops it)", file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
