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
  in one thread never gets the worker killed (WORKER_TIMEOUT no longer reloads the model);
- nothing waits in that main loop: a connection to close gets its FIN at once and what the
  client still sends is drained by the poller for 2 s at most (gunicorn lingers there, in the
  loop, up to 2 s per connection: clients that never close their end stopped the worker);
- out of file descriptors (EMFILE) or at worker_connections, the connection that has waited
  longest without sending a byte is closed to make room (gunicorn ended the worker, or stopped
  accepting until the idle ones timed out);
- a request gunicorn cannot parse (framing, a header or URL too large) is answered with the
  contract's JSON error, not gunicorn's HTML page.
Threads run run() concurrently; the scoring service itself lets one transcription at a time use
the model (scoring/service.py), so threads add connections, not memory or CPU contention.

What stays bounded: up to `--threads` requests can be mid-upload at once without delaying anyone
(64 by default); more slow clients than that wait for a thread, each thread freed within the
deadlines above. It is still the real azmlinfsrv serving score_audio.py: gunicorn reads
GUNICORN_CMD_ARGS from the environment, which the project sets wherever its files decide: the
image (cloudml/environment/Dockerfile), the deployments (cloudml/*/deployment.yml), `make serve`
and devkit.local_service; `GUNICORN_CMD_ARGS` below is the one value all of them use. A plain
`azmlinfsrv --entry_script ...` without it runs gunicorn's sync worker, where one idle connection
blocks the health probe: the entry script cannot change the worker (gunicorn's master chose it
before the script loads), so init() logs which worker it runs in, with a warning on the sync one
(worker_report).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import selectors
import socket
import ssl
import sys
import time
from collections import deque
from functools import partial

from gunicorn import util as gunicorn_util
from gunicorn.workers import gthread

logger = logging.getLogger("scoring.server")

WORKER_CLASS = "scoring.server.BoundedThreadWorker"
THREADS = 64
GUNICORN_CMD_ARGS = f"--worker-class {WORKER_CLASS} --threads {THREADS}"
HEADER_SECONDS_ENV, HEADER_SECONDS = "SCORING_HEADER_SECONDS", 10.0
BODY_SECONDS_ENV, BODY_SECONDS = "SCORING_BODY_SECONDS", 30.0
LINGER_SECONDS, LINGER_MAX_BYTES = 2.0, 65536  # gunicorn's own close_graceful() bounds


def current_worker():
    """The gunicorn worker object this code runs in, found on the call stack (init() runs inside
    the worker's init_process, via azmlinfsrv's app setup); None when not under one (--preload,
    the Flask dev server, a test calling init() directly)."""
    from gunicorn.workers.base import Worker

    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Worker):
            return candidate
        frame = frame.f_back
    return None


def worker_report(worker) -> tuple[int, str]:
    """(log level, line) saying which worker serves the requests, a warning unless it is ours."""
    if worker is None:
        return logging.INFO, "Not inside a gunicorn worker (preloaded or another server)"
    name = f"{type(worker).__module__}.{type(worker).__qualname__}"
    threads = getattr(worker.cfg, "threads", 1)
    if isinstance(worker, BoundedThreadWorker):
        return logging.INFO, f"Serving in gunicorn worker {name} ({threads} threads)"
    return logging.WARNING, (
        f"Serving in gunicorn worker {name}, not {WORKER_CLASS}: one idle or slow connection "
        "holds this worker and every other request waits, the health probe included. Set "
        f'GUNICORN_CMD_ARGS="{GUNICORN_CMD_ARGS}" (the image, the deployment YAML and '
        "`make serve` set it)"
    )


def client_gone_probe(sock: socket.socket | None):
    """A check of whether the client behind `sock` has closed its connection, for the model
    queue (scoring.admission). A peek that does not wait: end of stream (b"") or a reset means
    gone; no data yet, or a pipelined request's bytes, mean still there. Where the socket is
    not known (another server) or cannot be peeked (TLS), the client counts as present."""
    if sock is None or isinstance(sock, ssl.SSLSocket):
        return None

    def gone() -> bool:
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:  # reset, or closed on our side already
            return True

    return gone


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


def _json_error_page(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's answer to a request it cannot parse (bad framing, a header too large, a URL
    too long...), as the contract's JSON error instead of an HTML page."""
    code = reason.lower().replace(" ", "_") or "bad_request"
    body = json.dumps({"error": code, "message": mesg or reason}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    gunicorn_util.write_nonblock(sock, head + body)


class BoundedThreadWorker(gthread.ThreadWorker):
    """gthread with connections parked in the poller until they speak, and read deadlines."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_seconds = _seconds(HEADER_SECONDS_ENV, HEADER_SECONDS)
        self.body_seconds = _seconds(BODY_SECONDS_ENV, BODY_SECONDS)
        self.lingering: deque[tuple[float, socket.socket]] = deque()
        self._drained: dict[socket.socket, int] = {}
        gunicorn_util.write_error = _json_error_page  # base.Worker.handle_error calls it

    # ------------------------------------------------------------------ closing connections
    def finish_request(self, conn, fs) -> None:
        """A connection to close is closed from the poller, never waited on here.

        gunicorn closes "gracefully" (RFC 9112 9.6: FIN, then read what the client still sends
        for up to 2 s) right here, in the worker's only event loop: while one client that does
        not close its end (an HTTP/1.0 client keeping the socket, a slow upload cut at its
        deadline that keeps trickling) lingers, nothing else is accepted or dispatched, and 50
        such clients stopped the worker for 100 s. Here the FIN is sent at once and the rest
        is drained by the poller (`_drain`), for LINGER_SECONDS at most."""
        try:
            result = fs.result() if not fs.cancelled() else False
        except Exception:  # noqa: BLE001 - gunicorn closes these at once too
            result = None
        if result is False and self.alive:
            self.nr_conns -= 1
            self._linger(conn.sock)
            return
        super().finish_request(conn, fs)

    def _linger(self, sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            self.poller.register(sock, selectors.EVENT_READ, self._drain)
        except (OSError, ValueError, KeyError):
            gunicorn_util.close(sock)
            return
        self._drained[sock] = 0
        self.lingering.append((time.monotonic() + LINGER_SECONDS, sock))

    def _drain(self, sock: socket.socket) -> None:
        """A lingering socket is readable: read what came (closed at EOF or after 64 KB)."""
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            return
        except OSError:
            data = b""
        self._drained[sock] = self._drained.get(sock, 0) + len(data)
        if not data or self._drained[sock] > LINGER_MAX_BYTES:
            self._close_lingering(sock)

    def _close_lingering(self, sock: socket.socket) -> None:
        if self._drained.pop(sock, None) is None:
            return  # closed already
        with contextlib.suppress(OSError, ValueError, KeyError):
            self.poller.unregister(sock)
        gunicorn_util.close(sock)

    def murder_pending(self) -> None:
        """gthread's loop calls this every second: lingering sockets past their time go too."""
        super().murder_pending()
        now = time.monotonic()
        while self.lingering and (self.lingering[0][0] <= now or not self.alive):
            self._close_lingering(self.lingering.popleft()[1])

    # ------------------------------------------------------------------ new connections
    def accept(self, listener) -> None:
        """A new connection waits in the poller (no thread) until its first bytes arrive."""
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self._shed(exc)
                return
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

    def _shed(self, exc: OSError) -> None:
        """Out of file descriptors: gunicorn lets the error end the worker (and the model loads
        again). Instead the connection that waited longest without a word is closed, which
        frees a descriptor for the one knocking; with none waiting, accepting pauses until the
        worker's loop comes round (at most a second)."""
        logger.warning("out of file descriptors (%s): closing the oldest idle connection",
                       exc.strerror)  # fmt: skip
        if self.pending_conns:
            self._drop_oldest_pending()
        else:
            self.set_accept_enabled(False)

    def _drop_oldest_pending(self) -> None:
        conn = self.pending_conns.popleft()
        with contextlib.suppress(OSError, ValueError, KeyError):
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    def set_accept_enabled(self, enabled: bool) -> None:
        """At worker_connections, gthread stops accepting: a flood of idle connections then
        shuts everyone out until they time out. Here the oldest idle one makes room instead
        (while there is one); new connections are still taken."""
        full = self.nr_conns >= self.worker_connections
        if not enabled and self.alive and self.pending_conns and full:
            self._drop_oldest_pending()
            return
        super().set_accept_enabled(enabled)

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
