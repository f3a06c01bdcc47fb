"""Clients that hold a server's connections: idle, slow headers, slow body, endless chunked body.

Shared by tests/cloud/test_scoring_attacks.py and bench/scoring_attack.py. Each kind opens `n`
TCP connections to a local server and keeps them busy from one feeder thread (one byte per
connection every `every` seconds) until `close()`; a connection the server closes is counted.
Only loopback addresses: this is for servers this machine runs.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field

KINDS = ("idle", "slow-headers", "slow-body", "endless-chunked")


def _opening(kind: str, host: str) -> bytes:
    """What each connection sends at once (the rest trickles)."""
    if kind == "idle":
        return b""
    if kind == "slow-headers":
        return b"POST /score HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
    if kind == "slow-body":
        return (
            b"POST /score HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
            b"Content-Type: audio/wav\r\nContent-Length: 160044\r\n\r\nRIFF"
        )
    return (
        b"POST /score HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )


def _trickle(kind: str) -> bytes:
    if kind == "slow-headers":
        return b"X"  # a header name that never ends
    if kind == "slow-body":
        return b"\x00"
    if kind == "endless-chunked":
        return b"1\r\n \r\n"
    return b""


@dataclass
class SlowClients:
    """`n` connections of one kind held open against 127.0.0.1:`port`."""

    port: int
    kind: str
    n: int = 50
    every: float = 1.0
    sockets: list[socket.socket] = field(default_factory=list)
    closed_by_server: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def open(self) -> SlowClients:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        host = f"127.0.0.1:{self.port}"
        for _ in range(self.n):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.settimeout(0.5)
            if opening := _opening(self.kind, host):
                s.sendall(opening)
            self.sockets.append(s)
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()
        return self

    def _feed(self) -> None:
        byte = _trickle(self.kind)
        while not self._stop.wait(self.every):
            for s in list(self.sockets):
                try:
                    if byte:
                        s.sendall(byte)
                    else:
                        s.setblocking(False)
                        if s.recv(1, socket.MSG_PEEK) == b"":  # the server hung up
                            raise ConnectionResetError
                        s.setblocking(True)
                except BlockingIOError:
                    s.setblocking(True)
                except OSError:
                    self.sockets.remove(s)
                    self.closed_by_server += 1
                    with contextlib.suppress(OSError):
                        s.close()

    @property
    def open_count(self) -> int:
        return len(self.sockets)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.close()
        self.sockets.clear()

    def __enter__(self) -> SlowClients:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def timed_get(url: str, timeout: float = 30.0) -> tuple[int, float]:
    """(status, seconds) of a GET; status 0 when it failed or timed out."""
    import requests

    t0 = time.monotonic()
    try:
        status = requests.get(url, timeout=timeout).status_code
    except requests.RequestException:
        status = 0
    return status, time.monotonic() - t0
