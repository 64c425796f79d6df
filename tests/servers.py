"""Real local servers for end-to-end tests: a programmable feed farm, a webhook sink and an SMTP sink.

All listen on 127.0.0.1 only, on ports the OS picks, in background threads, and stop with the test.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Route:
    """What the farm answers on one path."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: bool = True
    """Answer If-None-Match with 304 when the body is unchanged."""
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    auth: str | None = None
    """"user:password" the request must carry (HTTP basic auth), else 401."""


class FeedFarm:
    """An HTTP server playing several outlets; `routes` can be changed between polls."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.times: list[tuple[str, float]] = []
        """(path, time.monotonic()) of each request, in order."""
        self.in_flight = 0
        self.peak = 0
        """The most requests it ever answered at once."""
        self._lock = threading.Lock()
        farm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with farm._lock:
                    farm.in_flight += 1
                    farm.peak = max(farm.peak, farm.in_flight)
                try:
                    self._answer()
                finally:
                    with farm._lock:
                        farm.in_flight -= 1

            def _answer(self) -> None:
                with farm._lock:
                    farm.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                    farm.times.append((self.path, time.monotonic()))
                    route = farm.routes.get(self.path)
                if route is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                if route.auth is not None:
                    import base64

                    expected = "Basic " + base64.b64encode(route.auth.encode()).decode()
                    if self.headers.get("Authorization") != expected:
                        self.send_response(401)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                if route.delay:
                    time.sleep(route.delay)
                tag = '"' + hashlib.sha1(route.body).hexdigest() + '"'
                modified = route.headers.get("Last-Modified")
                if (route.etag and self.headers.get("If-None-Match") == tag) or (
                    modified and self.headers.get("If-Modified-Since") == modified
                ):
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                if route.etag:
                    self.send_header("ETag", tag)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                with suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(route.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def requests_to(self, path: str) -> list[dict[str, str]]:
        with self._lock:
            return [headers for p, headers in self.requests if p == path]


class WebhookSink:
    """Receives Apprise json:// posts; counts receipts per idempotency key; can be made to fail."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.keys: Counter[str] = Counter()
        self.fail_with: int | None = None
        self.fail_paths: dict[str, int] = {}
        """Per path, the status to answer instead of 200 (the sink records nothing it refuses)."""
        self.fail_next = 0
        """Refuse this many posts more (with 500), then accept again."""
        self.refused: list[tuple[str, str]] = []
        """(path, idempotency key) of every post refused."""
        self.per_second: int | None = None
        """Accept at most this many posts a second; answer 429 to the rest (a chat service's rate limit)."""
        self._window: list[float] = []
        self.on_receive: Callable[[dict[str, Any]], None] | None = None
        """Called with each accepted post before the answer goes back (a test kills the sender there)."""
        self.echo_path = False
        """Refuse with the request's path in the reason phrase, as some proxies do: a secret in it must not
        reach a log or the database."""
        self.attempts = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length)
                with sink._lock:
                    sink.attempts += 1
                    failing = sink.fail_paths.get(self.path.split("?")[0], sink.fail_with)
                    if failing is None and sink.per_second is not None:
                        moment = time.monotonic()
                        sink._window = [t for t in sink._window if moment - t < 1.0]
                        if len(sink._window) >= sink.per_second:
                            failing = 429
                        else:
                            sink._window.append(moment)
                    if failing is None and sink.fail_next > 0:
                        sink.fail_next -= 1
                        failing = 500
                    if failing is not None:
                        sink.refused.append((self.path.split("?")[0], self.headers.get("X-Idempotency-Key", "")))
                    if failing is None:
                        sink.received.append({"path": self.path, "body": json.loads(payload or b"{}"),
                                              "headers": {k.lower(): v for k, v in self.headers.items()},
                                              "at": time.time()})  # fmt: skip
                        sink.keys[self.headers.get("X-Idempotency-Key", "")] += 1
                if failing is None and sink.on_receive is not None:
                    sink.on_receive(sink.received[-1])
                self.send_response(failing or 200, f"no route to {self.path}" if failing and sink.echo_path else None)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}{path}"


@contextmanager
def running(*servers: FeedFarm | WebhookSink) -> Iterator[None]:
    for server in servers:
        server.thread.start()
    try:
        yield
    finally:
        for server in servers:
            server.server.shutdown()
            server.server.server_close()


class SmtpSink:
    """A local SMTP server (aiosmtpd) that keeps every message; `reject_next` answers 451 to as many."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        self.reject_next = 0
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                if sink.reject_next > 0:
                    sink.reject_next -= 1
                    return "451 try again later"
                sink.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        from aiosmtpd.smtp import AuthResult

        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, auth_require_tls=False,
                                     authenticator=lambda *args: AuthResult(success=True))  # fmt: skip

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class DripSink:
    """A webhook that accepts the connection, reads the request and then answers one byte every `every`
    seconds, for at most `seconds`: each read arrives within a socket's read timeout, so only a deadline on
    the whole send ends it (RELIABILITY.md case 32)."""

    def __init__(self, every: float = 2.0, seconds: float = 60.0) -> None:
        self.every, self.seconds = every, seconds
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self._closed = threading.Event()

    def url(self, path: str = "/drip") -> str:
        return f"json://127.0.0.1:{self.listener.getsockname()[1]}{path}"

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(connection,), daemon=True).start()

    def _drip(self, connection: Any) -> None:
        with connection:
            connection.recv(65536)
            deadline = time.monotonic() + self.seconds
            for byte in b"HTTP/1.1 200 OK\r\n" * 100:
                if self._closed.wait(self.every) or time.monotonic() > deadline:
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    def __enter__(self) -> DripSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self.listener.close()
