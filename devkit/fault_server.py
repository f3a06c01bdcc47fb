"""A scoring endpoint on localhost that speaks the contract, with faults injected on demand.

A real HTTP server (http.server), so the device app's client meets real sockets, real status
codes and real Retry-After headers: the tests and the benchmarks use it to take the endpoint
away, make it slow or make it refuse, and to see what arrived and in which order.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import soundfile as sf

from devkit.local_service import free_port
from devkit.speech import RATE, audio_id


@dataclass
class Request:
    """One request the endpoint received."""

    audio_id: str
    first_sample: int
    seconds: float
    status: int
    content_type: str
    authorization: str | None
    at: float
    prefix: str | None = None  # the X-Transcript-Prefix header it carried


@dataclass
class FaultServer:
    """A scoring endpoint on localhost speaking the contract, with faults to inject.

    `faults` is consumed one per request: an int status (500, 503, 401, 400, 413), a tuple
    (status, {headers}), ("slow", seconds) to answer only after that long, or a callable
    `fault(handler, request)` that writes the whole answer itself (the misbehaving answers
    below: trickled, endless, HTML, redirects...). With no fault left it answers
    200 {"result": "REC <first sample> <audio id>", ...}. `stop()` closes the port
    (connections are then refused) and `start()` opens it again on the same port.
    `capacity`: at most that many requests are served at once, each taking `service_seconds`;
    more get 503 with Retry-After `busy_retry_after` (a small endpoint meeting a fleet).
    """

    port: int = field(default_factory=free_port)
    faults: deque = field(default_factory=deque)
    requests: list[Request] = field(default_factory=list)
    capacity: int | None = None
    service_seconds: float = 0.0
    busy_retry_after: str | None = None
    ssl_context: ssl.SSLContext | None = None  # serve https (e.g. with a certificate not trusted)
    # appended to every 200 answer's text, from the audio it was given: lets a test choose
    # what the words of a transcript say (a trailing "AND", a full stop) while the REC prefix
    # still names the audio
    suffix: Callable[[np.ndarray], str] | None = None
    _httpd: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _connections: set = field(default_factory=set)
    _busy: int = 0

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/score"

    @property
    def delivered(self) -> list[str]:
        """Audio ids answered with 200, in arrival order."""
        return [r.audio_id for r in self.requests if r.status == 200]

    def start(self) -> FaultServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server._lock:
                    server._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                server._handle(self)

        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        httpd.daemon_threads = True
        if self.ssl_context is not None:
            httpd.socket = self.ssl_context.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Like a killed endpoint: stop listening AND drop the kept-alive connections."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self._lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length", 0)))
        ctype = h.headers.get("Content-Type", "")
        if ctype == "application/json":
            samples = np.asarray(json.loads(body)["data"], dtype=np.int16)
        else:
            samples, _ = sf.read(io.BytesIO(body), dtype="int16")
        with self._lock:
            fault = self.faults.popleft() if self.faults else None
            over = self.capacity is not None and self._busy >= self.capacity
            if not over:
                self._busy += 1
        try:
            self._answer(h, samples, ctype, fault, over)
        finally:
            if not over:
                with self._lock:
                    self._busy -= 1

    def _answer(self, h, samples, ctype: str, fault, over: bool) -> None:
        status, headers, delay = 200, {}, 0.0
        if over:
            status = 503
            if self.busy_retry_after is not None:
                headers = {"Retry-After": self.busy_retry_after}
        elif callable(fault):
            with self._lock:
                self.requests.append(self._request(h, samples, ctype, -2))
            with contextlib.suppress(OSError):
                fault(h, samples)
            return
        elif self.service_seconds:
            time.sleep(self.service_seconds)
        if over:
            pass
        elif isinstance(fault, int):
            status = fault
        elif isinstance(fault, tuple) and fault[0] == "slow":
            delay = float(fault[1])
        elif isinstance(fault, tuple):
            status, headers = fault
        if delay:
            time.sleep(delay)
        rid = audio_id(samples)
        if status == 200:
            payload = {
                "result": f"REC {int(samples[0]) if len(samples) else 0} {rid}"
                + (self.suffix(samples) if self.suffix else ""),
                "audio_seconds": round(len(samples) / RATE, 3),
                "inference_ms": 1.0,
                "model": "fault-server",
                "engine": "ctc",
            }
        else:
            payload = {"error": f"e{status}", "message": f"injected {status}"}
        request = self._request(h, samples, ctype, status if not delay else -1)
        with self._lock:  # recorded before answering: the client may look right after
            self.requests.append(request)
        data = json.dumps(payload).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass

    @staticmethod
    def _request(h, samples, ctype: str, status: int) -> Request:
        """`status` -1: answered after the client left (slow); -2: a scripted misbehaviour."""
        return Request(
            audio_id=audio_id(samples),
            first_sample=int(samples[0]) if len(samples) else 0,
            seconds=len(samples) / RATE,
            status=status,
            content_type=ctype,
            authorization=h.headers.get("Authorization"),
            at=time.monotonic(),
            prefix=h.headers.get("X-Transcript-Prefix"),
        )


# ------------------------------------------------------------------ misbehaving answers
def _head(h, status: int, headers: dict[str, str]) -> None:
    h.send_response(status)
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.flush()


def trickled_body(every: float = 0.3, declared: int = 10_000):
    """200 with a Content-Length, then its body one byte every `every` seconds."""

    def fault(h, _samples) -> None:
        _head(h, 200, {"Content-Type": "application/json", "Content-Length": str(declared)})
        for _ in range(declared):
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(every)

    return fault


def endless_body(chunk: bytes = b"x" * 65536, seconds: float = 60.0):
    """200, chunked, and a body that does not end (for `seconds`, as fast as it goes)."""

    def fault(h, _samples) -> None:
        _head(h, 200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        end = time.monotonic() + seconds
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        while time.monotonic() < end:
            h.wfile.write(frame)

    return fault


def trickled_headers(every: float = 0.5, count: int = 90):
    """The status line, then one header line every `every` seconds."""

    def fault(h, _samples) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for n in range(count):
            h.wfile.write(f"X-Slow-{n}: 1\r\n".encode())
            h.wfile.flush()
            time.sleep(every)

    return fault


def page(status: int = 200, body: bytes = b"<html><body>Welcome to nginx!</body></html>"):
    """An HTML page where the scoring JSON should be (a web server at the wrong URL)."""

    def fault(h, _samples) -> None:
        _head(h, status, {"Content-Type": "text/html", "Content-Length": str(len(body))})
        h.wfile.write(body)

    return fault


def redirect(location: str, status: int = 302):
    """A redirect (which a client following it would turn from POST into GET)."""

    def fault(h, _samples) -> None:
        _head(h, status, {"Location": location, "Content-Length": "0"})

    return fault


def echo_authorization(status: int = 500):
    """An error whose message quotes the request's Authorization header (a leaky proxy)."""

    def fault(h, _samples) -> None:
        auth = h.headers.get("Authorization", "")
        body = json.dumps({"error": "e", "message": f"bad header {auth!r}"}).encode()
        _head(h, status, {"Content-Type": "application/json", "Content-Length": str(len(body))})
        h.wfile.write(body)

    return fault


def json_error(status: int, code: str, message: str = "injected"):
    """The contract's JSON error with this status and code (e.g. 400 invalid_prefix)."""

    def fault(h, _samples) -> None:
        data = json.dumps({"error": code, "message": message}).encode()
        _head(h, status, {"Content-Type": "application/json", "Content-Length": str(len(data))})
        h.wfile.write(data)

    return fault


def answer_text(text: str):
    """200 with the contract's JSON and `text` as the transcript (control characters, ...)."""

    def fault(h, _samples) -> None:
        body = json.dumps({"result": text, "audio_seconds": 0.5, "inference_ms": 1.0}).encode()
        _head(h, 200, {"Content-Type": "application/json", "Content-Length": str(len(body))})
        h.wfile.write(body)

    return fault


def short_body(declared: int = 500, hold: float = 0.0):
    """200 whose Content-Length promises more than is sent; then hold the connection `hold` s
    (0: close at once)."""

    def fault(h, _samples) -> None:
        _head(h, 200, {"Content-Type": "application/json", "Content-Length": str(declared)})
        h.wfile.write(b'{"result": "PART')
        h.wfile.flush()
        time.sleep(hold)
        h.close_connection = True

    return fault


def reset_mid_body():
    """200 with part of its body, then a TCP reset (SO_LINGER 0) instead of the rest."""

    def fault(h, _samples) -> None:
        _head(h, 200, {"Content-Type": "application/json", "Content-Length": "200"})
        h.wfile.write(b'{"result": "HALF')
        h.wfile.flush()
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        h.connection.close()
        h.close_connection = True

    return fault


def continue_flood(seconds: float = 30.0):
    """An endless stream of `100 Continue` interim answers (a client must not wait forever)."""

    def fault(h, _samples) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            h.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            h.wfile.flush()
            time.sleep(0.01)

    return fault
