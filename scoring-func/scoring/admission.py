"""Admission: which requests get to the model, and when.

Request handling's own settings (kept apart from the engine's in settings.py) and the three
gates a request passes before its audio is decoded:

- the key: with SCORING_KEY set, `Authorization: Bearer <key>` must match, compared in constant
  time (hmac.compare_digest), for people who serve the script outside Azure ML (Azure's endpoint
  checks its own keys in front of the container, so there it stays unset). The key is never
  logged; an unusable SCORING_KEY stops init() with a message that does not contain it;
- the body budget: bytes of request bodies held in this worker at once (being read, or waiting
  for the model). The server reads bodies in many threads; without a budget, many large bodies
  at once could take the memory. Over budget: 503 with Retry-After;
- the model gate: one transcription at a time per worker process (SCORING_CONCURRENCY), at most
  SCORING_MAX_WAITING requests queued behind it; beyond that 503 + Retry-After rather than a
  pile of requests that time out anyway.

The queue is bounded by the clients' deadline (SCORING_CLIENT_SECONDS, 30 s: the device's
default read timeout, edgeml's ClientConfig.read_timeout), not by a count alone: an answer
that arrives after the client gave up is work for nobody (issue 23 row 2: five 30 s requests
from clients with a 30 s timeout, then a 5 s clip: 1 of 6 answered, 4 transcribed for clients
that had left, the clip answered after about 70 s). So:
- a request is refused at once (503) when the work ahead of it (the running transcription's
  rest and the queued ones, estimated from their audio length and the real-time factor this
  worker measured) plus its own would end past the deadline;
- its wait is bounded by the deadline less its own expected time (and SCORING_QUEUE_SECONDS
  when that is set lower); a request longer than the deadline on its own is served only when
  the model is free;
- while it waits, and once more before the model starts on it, the client's connection is
  checked: a client that has closed it since its request arrived is dropped without
  transcribing its audio. A connection already at its end when the request arrives is a
  client that half-closed after sending (allowed by HTTP, and its answer still arrives): the
  server cannot tell that from one that left, so such a request is served as before.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from scoring.errors import RequestError

RETRY_AFTER_SECONDS = 2
# The device's default read timeout (edgeml/cloudml.py ClientConfig.read_timeout): the clients'
# deadline unless SCORING_CLIENT_SECONDS says otherwise.
CLIENT_SECONDS = 30.0
POLL_SECONDS = 0.25  # how often a waiting request looks at its client's connection
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="score"'}


@dataclass(frozen=True)
class RequestSettings:
    """How requests are admitted (environment variables; see docs/scoring.md)."""

    key: str | None = field(default=None, repr=False)
    concurrency: int = 1
    max_waiting: int = 16
    queue_seconds: float = 0.0  # 0: as long as the clients' deadline allows
    body_budget_bytes: int = 0  # 0: twice the largest body the service accepts
    client_seconds: float = CLIENT_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RequestSettings:
        env = os.environ if env is None else env
        return cls(
            key=_key(env.get("SCORING_KEY", "")),
            concurrency=_int(env, "SCORING_CONCURRENCY", 1, low=1),
            max_waiting=_int(env, "SCORING_MAX_WAITING", 16, low=0),
            queue_seconds=_float(env, "SCORING_QUEUE_SECONDS", 0.0, zero=True),
            body_budget_bytes=int(_float(env, "SCORING_BODY_BUDGET_MB", 0.0, zero=True) * 1e6),
            client_seconds=_float(env, "SCORING_CLIENT_SECONDS", CLIENT_SECONDS),
        )

    @property
    def longest_wait(self) -> float:
        """The longest a request may wait for the model: never past the clients' deadline."""
        if self.queue_seconds > 0:
            return min(self.queue_seconds, self.client_seconds)
        return self.client_seconds


def _key(raw: str) -> str | None:
    """The server's key, stripped of a file's trailing newline; never quoted in a message."""
    key = raw.strip()
    if not key:
        return None
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in key) or not key.isascii():
        raise ValueError(
            "SCORING_KEY holds whitespace, control or non-ASCII characters inside the key; "
            "set it to the key alone"
        )
    return key


def _int(env: Mapping[str, str], name: str, default: int, *, low: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < low:
        raise ValueError(f"{name}={raw!r} must be {low} or more")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, zero: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not (value >= 0 if zero else value > 0) or value != value or value == float("inf"):
        raise ValueError(f"{name}={raw!r} must be a finite number {'>=' if zero else '>'} 0")
    return value


def check_key(expected: str | None, authorization: str | None) -> None:
    """401 unless the request carries the key (constant-time comparison)."""
    if expected is None:
        return
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise RequestError(
            401,
            "missing_key",
            "this endpoint needs a key: send 'Authorization: Bearer <key>'",
            headers=_CHALLENGE,
        )
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise RequestError(
            401, "wrong_key", "the key in the Authorization header is not valid", headers=_CHALLENGE
        )


def busy(message: str) -> RequestError:
    return RequestError(503, "busy", message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class Admission:
    """The body budget and the model gate of one worker process (shared by its threads)."""

    def __init__(self, settings: RequestSettings, max_body_bytes: int) -> None:
        self.settings = settings
        self.budget = settings.body_budget_bytes or 2 * max_body_bytes
        self._lock = threading.Lock()
        self._held = 0
        self._waiting = 0
        self._gate = threading.BoundedSemaphore(settings.concurrency)
        # Seconds of work per second of audio, until measured: 0.5 (wav2vec2-base on 2 shared
        # cores measured 0.26-0.6; Whisper tiny 0.1-0.2), corrected after every request.
        self._rtf = 0.5
        self._queued: dict[object, float] = {}  # waiting request -> its expected seconds
        self._running: dict[object, tuple[float, float]] = {}  # -> (started, expected seconds)

    @contextmanager
    def body(self) -> Iterator[Callable[[int], None]]:
        """A meter for one request's body: call it with each amount read (or the whole
        Content-Length up front); over the budget it raises 503. Released at the end."""
        held = 0

        def charge(size: int) -> None:
            nonlocal held
            with self._lock:
                if self._held + size > self.budget and self._held > held:
                    raise busy(
                        f"the service holds {self._held} bytes of other requests' audio; "
                        "try again shortly"
                    )
                self._held += size
                held += size

        try:
            yield charge
        finally:
            with self._lock:
                self._held -= held

    @contextmanager
    def model(
        self, audio_seconds: float = 0.0, client_gone: Callable[[], bool] | None = None
    ) -> Iterator[None]:
        """Wait for the model: refused when the answer would come after the clients' deadline,
        dropped when the client has gone (see the module's docstring)."""
        gone = _left_since_arrival(client_gone)
        own = audio_seconds * self._rtf
        ticket = object()
        if not self._gate.acquire(blocking=False):
            self._enter_queue(ticket, own)
            try:
                acquired = self._wait(own, gone)
            finally:
                with self._lock:
                    self._queued.pop(ticket, None)
                    self._waiting -= 1
            if not acquired:
                raise busy(
                    f"the model stayed busy for {self.settings.longest_wait - own:.1f} s; an "
                    "answer after that would come past the clients' deadline"
                )
        try:
            if gone():
                raise client_gone_error()
            with self._lock:
                self._running[ticket] = (time.monotonic(), own)
            started = time.monotonic()
            yield
            self._learn(audio_seconds, time.monotonic() - started)
        finally:
            with self._lock:
                self._running.pop(ticket, None)
            self._gate.release()

    def _enter_queue(self, ticket: object, own: float) -> None:
        with self._lock:
            if self._waiting >= self.settings.max_waiting:
                raise busy(f"{self._waiting} requests are waiting for the model; try again shortly")
            ahead = self._work_ahead()
            deadline = self.settings.client_seconds
            if ahead + own > deadline:
                raise busy(
                    f"about {ahead:.0f} s of transcription is ahead of this request and it "
                    f"needs about {own:.0f} s itself: the answer would come after the clients' "
                    f"{deadline:g} s deadline; try again shortly"
                )
            self._waiting += 1
            self._queued[ticket] = own

    def _work_ahead(self) -> float:
        """Seconds until the model is free for a new request, as far as this worker can tell
        (its lock held): the running ones' rest plus the queued ones, over the concurrency."""
        now = time.monotonic()
        running = sum(max(0.0, own - (now - start)) for start, own in self._running.values())
        return (running + sum(self._queued.values())) / self.settings.concurrency

    def _wait(self, own: float, gone: Callable[[], bool]) -> bool:
        """Acquire the gate within the wait this request may have, looking at its client's
        connection every POLL_SECONDS; a client that has gone leaves the queue at once."""
        deadline = time.monotonic() + max(0.0, self.settings.longest_wait - own)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._gate.acquire(timeout=min(POLL_SECONDS, left)):
                return True
            if gone():
                raise client_gone_error()

    def _learn(self, audio_seconds: float, elapsed: float) -> None:
        """The worker's real-time factor, from what it just did (a moving average)."""
        if audio_seconds >= 0.5:
            with self._lock:
                self._rtf = 0.7 * self._rtf + 0.3 * (elapsed / audio_seconds)


def _left_since_arrival(client_gone: Callable[[], bool] | None) -> Callable[[], bool]:
    """`client_gone`, counted only once the connection ends after the request arrived (see the
    module's docstring: a half-close right after the request looks the same as leaving)."""
    if client_gone is None or client_gone():
        return lambda: False
    return client_gone


def client_gone_error() -> RequestError:
    """A request whose client closed its connection: nobody reads the answer (it is logged)."""
    return RequestError(
        503, "client_gone", "the client closed the connection before its turn; not transcribed"
    )
