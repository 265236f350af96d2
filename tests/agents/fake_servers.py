"""Fake Anthropic and OpenAI HTTP servers on 127.0.0.1, for testing the real SDK clients.

A `FakeServer` answers POST /v1/messages (Anthropic Messages) and POST /v1/chat/completions (OpenAI
Chat Completions) from a queue of scripted `Scripted` responses, so a test can serve a 429 with
Retry-After, then a success. Every request is recorded (path, lower-cased headers, JSON body), so a
test can check what the SDK actually sent. With the queue empty it answers 500, which the test sees.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Scripted:
    status: int = 200
    body: dict | str = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait before answering, to make the client time out


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict


def anthropic_ok(text: str, *, model: str = "claude-haiku-4-5-20251001", input_tokens: int = 10,
                 output_tokens: int = 5, thinking: str | None = None) -> Scripted:
    content = ([{"type": "thinking", "thinking": thinking, "signature": "sig"}] if thinking else [])
    content.append({"type": "text", "text": text})
    return Scripted(200, {"id": "msg_fake", "type": "message", "role": "assistant", "content": content,
                          "model": model, "stop_reason": "end_turn", "stop_sequence": None,
                          "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}})


def openai_ok(text: str | None, *, model: str = "gpt-5-2025-08-07", prompt_tokens: int = 10,
              completion_tokens: int = 5, usage: bool = True) -> Scripted:
    body = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}]}
    if usage:
        body["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                         "total_tokens": prompt_tokens + completion_tokens}
    return Scripted(200, body)


def anthropic_error(status: int, message: str, kind: str = "api_error",
                    headers: dict[str, str] | None = None) -> Scripted:
    return Scripted(status, {"type": "error", "error": {"type": kind, "message": message}}, headers or {})


def openai_error(status: int, message: str, kind: str = "server_error",
                 headers: dict[str, str] | None = None) -> Scripted:
    return Scripted(status, {"error": {"message": message, "type": kind, "code": None}}, headers or {})


class FakeServer:
    """Use as a context manager; `base_url` is http://127.0.0.1:<random port>."""

    def __init__(self):
        self.queue: deque[Scripted] = deque()
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"_raw": raw.decode(errors="replace")}
                with server._lock:
                    server.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                    body))
                    reply = server.queue.popleft() if server.queue else Scripted(
                        500, {"error": {"message": "fake server: no scripted response left"}})
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                data = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                payload = data.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left (the delayed-reply tests)

            def log_message(self, *args):  # keep test output clean
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        # A short poll interval: shutdown() waits up to one interval, once per test.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    def push(self, *replies: Scripted) -> FakeServer:
        with self._lock:
            self.queue.extend(replies)
        return self

    def __enter__(self) -> FakeServer:  # noqa: PYI034 - Self needs Python 3.11
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
