"""A threaded HTTP server on loopback that fake providers build on.

Subclasses answer requests in :meth:`FakeHTTPProvider.handle`; this base owns the
socket, the threads, the request record and failure injection:

* ``fail_next(n, kind)`` makes the next ``n`` requests fail that way;
* ``failure_rate(p, kinds, seed)`` makes a seeded random share of requests fail;
* ``latency`` (seconds) delays every answer, as a distant provider would.

Failure kinds every fake understands: ``"rate_limit"`` (429), ``"server_error"`` (500),
``"timeout"`` (read the request, then answer nothing until the client gives up) and
``"disconnect"`` (read the request, then close the socket). Subclasses add their own.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

COMMON_FAILURES = ("rate_limit", "server_error", "timeout", "disconnect")
TIMEOUT = "timeout"
DISCONNECT = "disconnect"


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, data: Any, headers: Mapping[str, str] | None = None) -> Reply:
        """A JSON answer."""
        return cls(
            status,
            json.dumps(data).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One request as the fake received it, whatever it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    failure: str | None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    disable_nagle_algorithm = True  # small replies must not wait for delayed ACKs
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        self._serve()

    def do_GET(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        owner = self.server.owner
        failure = owner._take_failure()
        owner._record(RecordedCall(self.command, self.path, dict(self.headers), body, failure))
        if failure == TIMEOUT:
            owner._stopping.wait(owner.hang_seconds)
            self._drop_connection()
            return
        if failure == DISCONNECT:
            self._drop_connection()
            return
        if owner.latency:
            owner._stopping.wait(owner.latency)
        reply = owner.handle(self.command, self.path, self.headers, body, failure)
        self._write(reply)

    def _write(self, reply: Reply) -> None:
        lines = [f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}"]
        headers = {"Content-Length": str(len(reply.body)), **reply.headers}
        if self.close_connection:
            headers["Connection"] = "close"
        lines += [f"{k}: {v}" for k, v in headers.items()]
        # One write per reply: headers and body in the same segment.
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body)

    def _drop_connection(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence the per-request log line."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    owner: FakeHTTPProvider


class FakeHTTPProvider:
    """Base of the fake provider servers: start, stop, record, inject failures."""

    failure_kinds: tuple[str, ...] = COMMON_FAILURES

    def __init__(self, *, hang_seconds: float = 30.0, latency: float = 0.0) -> None:
        self.hang_seconds = hang_seconds
        self.latency = latency
        self.calls: list[RecordedCall] = []
        self._lock = threading.Lock()
        self._script: deque[str] = deque()
        self._rate = 0.0
        self._rate_kinds: Sequence[str] = ()
        self._rng = random.Random()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on a free port of 127.0.0.1 and serve from a background thread."""
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging requests are released."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        if self._server is None:
            raise RuntimeError("the fake server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- failure injection -----------------------------------------------------------

    def fail_next(self, n: int, kind: str) -> None:
        """Make the next ``n`` requests fail with ``kind``."""
        self._check_kinds([kind])
        with self._lock:
            self._script.extend([kind] * n)

    def failure_rate(self, p: float, kinds: Iterable[str] | None = None, seed: int = 0) -> None:
        """Make a random share ``p`` of requests fail with one of ``kinds`` (seeded)."""
        chosen = tuple(kinds) if kinds is not None else ("rate_limit", "server_error")
        self._check_kinds(chosen)
        if not 0.0 <= p <= 1.0 or (p > 0 and not chosen):
            raise ValueError("p must be within [0, 1] and kinds must not be empty")
        with self._lock:
            self._rate, self._rate_kinds, self._rng = p, chosen, random.Random(seed)

    def reset(self) -> None:
        """Forget recorded requests and injected failures."""
        with self._lock:
            self.calls.clear()
            self._script.clear()
            self._rate = 0.0
            self._reset_records()

    def _check_kinds(self, kinds: Iterable[str]) -> None:
        unknown = set(kinds) - set(self.failure_kinds)
        if unknown:
            raise ValueError(f"unknown failure kinds {sorted(unknown)}; use {self.failure_kinds}")

    def _take_failure(self) -> str | None:
        with self._lock:
            if self._script:
                return self._script.popleft()
            if self._rate and self._rng.random() < self._rate:
                return self._rng.choice(self._rate_kinds)
            return None

    def _record(self, call: RecordedCall) -> None:
        with self._lock:
            self.calls.append(call)

    # -- for subclasses --------------------------------------------------------------

    def _reset_records(self) -> None:
        """Clear subclass records; called with the lock held."""

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, failure: str | None
    ) -> Reply:
        """Answer one request; ``failure`` is an injected kind other than timeout/disconnect."""
        raise NotImplementedError
