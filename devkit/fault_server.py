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
import threading
import time
from collections import deque
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


@dataclass
class FaultServer:
    """A scoring endpoint on localhost speaking the contract, with faults to inject.

    `faults` is consumed one per request: an int status (500, 503, 401, 400, 413), a tuple
    (status, {headers}), or ("slow", seconds) to answer only after that long. With no fault
    left it answers 200 {"result": "REC <first sample> <audio id>", ...}. `stop()` closes the
    port (connections are then refused) and `start()` opens it again on the same port.
    """

    port: int = field(default_factory=free_port)
    faults: deque = field(default_factory=deque)
    requests: list[Request] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _connections: set = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/score"

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
        status, headers, delay = 200, {}, 0.0
        if isinstance(fault, int):
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
                "result": f"REC {int(samples[0]) if len(samples) else 0} {rid}",
                "audio_seconds": round(len(samples) / RATE, 3),
                "inference_ms": 1.0,
                "model": "fault-server",
                "engine": "ctc",
            }
        else:
            payload = {"error": f"e{status}", "message": f"injected {status}"}
        request = Request(
            audio_id=rid,
            first_sample=int(samples[0]) if len(samples) else 0,
            seconds=len(samples) / RATE,
            status=status if not delay else -1,  # a slow answer arrives after the client left
            content_type=ctype,
            authorization=h.headers.get("Authorization"),
            at=time.monotonic(),
        )
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
