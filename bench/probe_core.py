"""What the adversarial probe's cases share: the registry, the context, small helpers.

A case is a function `fn(ctx) -> (held, detail)` registered with `@case(kind, name, promise)`;
`kind` is one of KINDS (the issue's kinds of broken promise). bench/probe.py runs them and prints
the table. The context starts what the cases need once, lazily: the real azmlinfsrv serving
score_audio.py (tiny CTC model), a scratch folder, scripted and rogue .eim models, a WAV of silence.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from devkit.paths import EDGE_MAIN

KINDS = {
    "block": "one client blocks everyone",
    "input": "bad input gets a JSON 4xx, never a 500",
    "memory": "memory per request is bounded",
    "delivery": "delivery never stops, damage is set aside",
    "lost": "nothing recorded is lost or recorded twice",
    "key": "the key never leaks, a bad key source fails fast",
    "answer": "a bad answer neither hangs nor exhausts the device",
    "model": "a bad model process is contained",
    "fleet": "a fleet after an outage spreads out",
}

# The deadlines the probe's server runs with (production: 10 s / 30 s).
HEADER_SECONDS, BODY_SECONDS = 3.0, 5.0


@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    promise: str
    fn: Callable[[Context], tuple[bool, str]]


REGISTRY: list[Case] = []


def case(kind: str, name: str, promise: str):
    """Register a probe case (kind must be one of KINDS)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")

    def register(fn):
        REGISTRY.append(Case(kind, name, promise, fn))
        return fn

    return register


@dataclass
class Context:
    """Shared, lazily started resources of one probe run."""

    root: Path
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _cache: dict = field(default_factory=dict)

    def close(self) -> None:
        self._stack.close()

    def once(self, key: str, make: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def enter(self, cm):
        return self._stack.enter_context(cm)

    @property
    def tiny_model(self) -> Path:
        from devkit.models import build_ctc_model

        return self.once("tiny", lambda: build_ctc_model(self.root / "tiny-ctc", tiny=True))

    def server(self, name: str = "guarded", env: dict | None = None):
        """The real azmlinfsrv with the project's worker (short read deadlines)."""
        from devkit.local_service import run_scoring_server

        base = {"SCORING_HEADER_SECONDS": str(HEADER_SECONDS),
                "SCORING_BODY_SECONDS": str(BODY_SECONDS), "SCORING_THREADS": "1"}  # fmt: skip
        return self.once(
            f"server-{name}",
            lambda: self.enter(
                run_scoring_server(
                    self.tiny_model, env={**base, **(env or {})}, log_to=self.root / f"{name}.log"
                )  # fmt: skip
            ),
        )

    @property
    def silence(self) -> Path:
        def make() -> Path:
            path = self.root / "silence.wav"
            sf.write(path, np.zeros(16000 * 60, dtype=np.int16), 16000, subtype="PCM_16")
            return path

        return self.once("silence", make)

    def scratch(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path


# ---------------------------------------------------------------------------- helpers
def port_of(server) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def health_seconds(server, n: int = 3, timeout: float = 20.0) -> list[float]:
    """Seconds each of `n` health checks took (timeout when not answered 200)."""
    from devkit.attack import timed_get

    out = []
    for _ in range(n):
        status, seconds = timed_get(server.base_url + "/", timeout=timeout)
        out.append(round(seconds if status == 200 else timeout, 2))
    return out


def raw_exchange(port: int, data: bytes, *, timeout: float = 15.0, half_close: bool = False,
                 then: Callable[[socket.socket], None] | None = None) -> tuple[bytes, float]:  # fmt: skip
    """Send raw bytes, read until the server closes or `timeout`; (reply, seconds)."""
    t0 = time.monotonic()
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        if then is not None:
            then(s)
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                part = s.recv(65536)
            except (TimeoutError, OSError):
                break
            if not part:
                break
            reply += part
            if _complete(reply) and not half_close and then is None:
                break
    return reply, time.monotonic() - t0


def _complete(reply: bytes) -> bool:
    head, sep, body = reply.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value)
    return False


def status_of(reply: bytes) -> int:
    try:
        return int(reply.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def json_error(reply: bytes) -> str | None:
    """The contract's error code of a raw HTTP reply, or None when it is not a JSON error."""
    import json

    head, _, body = reply.partition(b"\r\n\r\n")
    if b"application/json" not in head.lower():
        return None
    try:
        return json.loads(body).get("error") or json.loads(body).get("message")
    except (ValueError, AttributeError):
        return None


def worker_process(server):
    """The gunicorn worker (the process that loaded the model) of a local azmlinfsrv."""
    import psutil

    kids = psutil.Process(server.process.pid).children(recursive=True)
    return max(kids, key=lambda p: p.memory_info().rss)


@contextlib.contextmanager
def peak_rss(process) -> Iterator[dict]:
    """Track a process's peak RSS growth (MB) while the block runs: {'mb': ...}."""
    base = process.memory_info().rss
    box = {"mb": 0.0}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                box["mb"] = max(box["mb"], (process.memory_info().rss - base) / 1e6)
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        stop.set()
        thread.join()


def run_app(args: list, *, env: dict | None = None, timeout: float = 40.0,
            stop_after: float | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """The real device app (edgeml/main.py) as a process; SIGTERM after `stop_after` seconds."""
    import os
    import signal

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEML_", "SCORING_"))}
    full_env.update(PYTHONUNBUFFERED="1", **(env or {}))
    proc = subprocess.Popen([sys.executable, str(EDGE_MAIN), *map(str, args)], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=EDGE_MAIN.parents[1])  # fmt: skip
    try:
        if stop_after is not None:
            try:
                out, err = proc.communicate(timeout=stop_after)
                return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, -9, out, err + "\n[probe: killed, hung]")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def kill_pids(pids: list[int]) -> None:
    import os
    import signal

    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def recording(n: int, seconds: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(n)
    samples = np.round(rng.standard_normal(int(seconds * 16000)) * 800).astype(np.int16)
    samples[0] = n
    return samples


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
