"""Helpers for the edge app's tests: speech made with espeak-ng, a scoring endpoint with faults
injected (a real HTTP server on localhost), running `edgeml/main.py` as a real process.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import soundfile as sf
from support.paths import EDGE_MAIN
from support.servers import free_port

from kwtrain.tts import Voice, silence, synthesize

RATE = 16000
VOICE = Voice("en-us", speed=140, pitch=50)  # the demo's voice (scripts/make_demo_audio.py)
KEYWORD = "listen"
SENTENCE = "what is the weather like tomorrow morning"


def speak(text: str, voice: Voice = VOICE, gain: float = 0.7) -> np.ndarray:
    """int16 speech, trimmed to where the voice is (espeak pads with silence)."""
    audio = np.round(synthesize(text, voice) * gain * 32767).astype(np.int16)
    return trim(audio)


def trim(audio: np.ndarray, level: int = 300) -> np.ndarray:
    loud = np.nonzero(np.abs(audio.astype(np.int32)) > level)[0]
    return audio[loud[0] : loud[-1] + 1] if len(loud) else audio[:0]


def quiet(seconds: float) -> np.ndarray:
    return np.round(silence(seconds) * 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray) -> Path:
    sf.write(str(path), np.asarray(samples, dtype=np.int16), RATE, subtype="PCM_16")
    return path


@dataclass
class Segment:
    """Where a piece sits in a composed file (sample indices)."""

    start: int
    end: int


def compose(*parts: np.ndarray) -> tuple[np.ndarray, list[Segment]]:
    """Concatenate parts; return the audio and each part's position."""
    segments, pos = [], 0
    for part in parts:
        segments.append(Segment(pos, pos + len(part)))
        pos += len(part)
    return np.concatenate(parts).astype(np.int16), segments


def locate(haystack: np.ndarray, needle: np.ndarray) -> tuple[int, float]:
    """Best alignment of `needle` inside `haystack`: (offset, normalised correlation)."""
    h = haystack.astype(np.float64)
    n = needle.astype(np.float64) - needle.mean()
    if len(h) < len(n):
        h = np.concatenate([h, np.zeros(len(n) - len(h))])
    size = 1 << int(np.ceil(np.log2(len(h) + len(n))))
    corr = np.fft.irfft(np.fft.rfft(h, size) * np.conj(np.fft.rfft(n, size)), size)
    corr = corr[: len(h) - len(n) + 1]
    c1 = np.concatenate([[0.0], np.cumsum(h)])
    c2 = np.concatenate([[0.0], np.cumsum(h * h)])
    m = len(n)
    var = np.maximum(c2[m:] - c2[:-m] - (c1[m:] - c1[:-m]) ** 2 / m, 1e-9)
    ncc = corr / (np.sqrt(var) * np.sqrt((n * n).sum()))
    best = int(np.argmax(ncc))
    return best, float(ncc[best])


def audio_id(samples: np.ndarray) -> str:
    return hashlib.sha1(np.asarray(samples, dtype=np.int16).tobytes()).hexdigest()[:12]


# ---------------------------------------------------------------------- fault-injecting endpoint
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


# ---------------------------------------------------------------------- the app as a process
def app_env(extra: dict | None = None) -> dict[str, str]:
    """A clean environment for main.py: no EDGEML_/SCORING_ leftovers from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEML_", "SCORING_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_main(
    args: list[str], *, env: dict | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess:
    """`python edgeml/main.py ARGS` from the repository root, as a user would run it."""
    return subprocess.run(
        [sys.executable, str(EDGE_MAIN), *map(str, args)],
        env=app_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=EDGE_MAIN.parents[1],
    )


def start_main(args: list[str], *, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(EDGE_MAIN), *map(str, args)],
        env=app_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=EDGE_MAIN.parents[1],
    )


def wait_for_line(stream, needle: str, timeout: float, seen: list[str] | None = None) -> bool:
    """Read lines from a text pipe until one contains `needle` (kept in `seen`)."""
    deadline = time.monotonic() + timeout
    box: list[bool] = []

    def reader() -> None:
        for line in stream:
            if seen is not None:
                seen.append(line)
            if needle in line:
                box.append(True)
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    return bool(box)
