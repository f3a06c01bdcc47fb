"""The gunicorn worker the scoring service runs in: threads, and a deadline on every request read.

azmlinfsrv runs gunicorn with its default sync worker: one process serves one connection at a
time and reads each request (headers, then body) with no deadline. With the default single
worker, one client that connects and sends nothing, uploads slowly, or sends a chunked body that
never ends holds the only worker: every other client (Azure's health probe included) waits until
WORKER_TIMEOUT, then gunicorn kills the worker and the model loads again.

This worker is gunicorn's threaded worker (gthread) with three changes:
- a new connection waits in the worker's poller, not in a thread, until its first bytes arrive
  (gthread would hold a thread for up to 5 s per idle connection first); one that sends nothing
  within SCORING_HEADER_SECONDS is closed;
- once a thread reads a request, its headers must be complete within SCORING_HEADER_SECONDS and
  its body within SCORING_BODY_SECONDS after them: each read of the socket is bounded by what is
  left of that deadline (socket timeouts alone bound one read, and a client trickling a byte per
  timeout would be read for days). A request past its deadline gets a JSON 408 and is closed;
- the heartbeat to gunicorn's master comes from the worker's main loop, so a long transcription
  in one thread never gets the worker killed (WORKER_TIMEOUT no longer reloads the model).
Threads run run() concurrently; the scoring service itself lets one transcription at a time use
the model (scoring/service.py), so threads add connections, not memory or CPU contention.

What stays bounded: up to `--threads` requests can be mid-upload at once without delaying anyone
(64 by default); more slow clients than that wait for a thread, each thread freed within the
deadlines above. It is still the real azmlinfsrv serving score_audio.py: gunicorn reads
GUNICORN_CMD_ARGS from the environment, which the deployment sets (cloudml/*/deployment.yml) and
devkit.local_service passes on; `GUNICORN_CMD_ARGS` below is the one value both use.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import selectors
import socket
import time
from functools import partial

from gunicorn.workers import gthread

logger = logging.getLogger("scoring.server")

WORKER_CLASS = "scoring.server.BoundedThreadWorker"
THREADS = 64
GUNICORN_CMD_ARGS = f"--worker-class {WORKER_CLASS} --threads {THREADS}"
HEADER_SECONDS_ENV, HEADER_SECONDS = "SCORING_HEADER_SECONDS", 10.0
BODY_SECONDS_ENV, BODY_SECONDS = "SCORING_BODY_SECONDS", 30.0


class RequestReadTimeout(Exception):  # noqa: N818 - not an OSError: gthread logs those loudly
    """A request's headers or body did not arrive within its deadline."""

    def __init__(self, phase: str, seconds: float) -> None:
        super().__init__(f"the request's {phase} did not arrive within {seconds:g} s")
        self.phase = phase
        self.seconds = seconds


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"{name}={raw!r} must be greater than 0")
    return value


class _DeadlineSocket:
    """Stands in for a connection's socket in gunicorn's request parser: each recv() waits at
    most what is left of the current deadline (none while disarmed)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._deadline: float | None = None
        self._phase, self._seconds = "headers", 0.0

    def arm(self, phase: str, seconds: float) -> None:
        self._phase, self._seconds = phase, seconds
        self._deadline = time.monotonic() + seconds

    def disarm(self) -> None:
        self._deadline = None

    def recv(self, size: int) -> bytes:
        if self._deadline is None:
            return self._sock.recv(size)
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise RequestReadTimeout(self._phase, self._seconds)
        previous = self._sock.gettimeout()
        self._sock.settimeout(remaining)
        try:
            return self._sock.recv(size)
        except TimeoutError:  # socket.timeout
            raise RequestReadTimeout(self._phase, self._seconds) from None
        finally:
            with contextlib.suppress(OSError):
                self._sock.settimeout(previous)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class _Conn(gthread.TConn):
    """gthread's connection whose HTTP/1 parser reads through a _DeadlineSocket."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.guard = _DeadlineSocket(self.sock)

    def init(self) -> None:
        fresh = not self.initialized
        super().init()
        if fresh and not self.is_http2 and self.parser is not None:
            if self.guard._sock is not self.sock:  # TLS wrapped it: guard the wrapper
                self.guard._sock = self.sock
            self.parser.unreader.sock = self.guard


class BoundedThreadWorker(gthread.ThreadWorker):
    """gthread with connections parked in the poller until they speak, and read deadlines."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_seconds = _seconds(HEADER_SECONDS_ENV, HEADER_SECONDS)
        self.body_seconds = _seconds(BODY_SECONDS_ENV, BODY_SECONDS)

    def accept(self, listener) -> None:
        """A new connection waits in the poller (no thread) until its first bytes arrive."""
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = _Conn(self.cfg, client_sock, client_addr, listener.getsockname())  # non-blocking
        conn.timeout = time.monotonic() + self.header_seconds  # murder_pending closes it then
        self.pending_conns.append(conn)
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn)
        )

    def handle(self, conn):
        """A thread takes the connection: the request's headers have header_seconds."""
        conn.guard.arm("headers", self.header_seconds)
        return super().handle(conn)

    def handle_request(self, req, conn):
        """Headers are in: the body (read by the application) has body_seconds."""
        conn.guard.arm("body", self.body_seconds)
        try:
            return super().handle_request(req, conn)
        finally:
            conn.guard.disarm()  # gunicorn's own drain of an unread body has its own deadline

    def handle_error(self, req, client, addr, exc) -> None:
        """A read past its deadline: a JSON 408 and close, one log line, no traceback."""
        if not isinstance(exc, RequestReadTimeout):
            super().handle_error(req, client, addr, exc)
            return
        logger.info("Closed a connection from %s: %s", addr[0] if addr else "?", exc)
        body = json.dumps({"error": "request_timeout", "message": str(exc)}).encode()
        head = (
            "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        with contextlib.suppress(OSError):
            client.settimeout(2.0)
            client.sendall(head + body)
