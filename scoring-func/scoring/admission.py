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
  SCORING_MAX_WAITING requests queued behind it, each for at most SCORING_QUEUE_SECONDS;
  beyond that 503 + Retry-After rather than a pile of requests that time out anyway.
"""

from __future__ import annotations

import hmac
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from scoring.errors import RequestError

RETRY_AFTER_SECONDS = 2
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="score"'}


@dataclass(frozen=True)
class RequestSettings:
    """How requests are admitted (environment variables; see docs/scoring.md)."""

    key: str | None = field(default=None, repr=False)
    concurrency: int = 1
    max_waiting: int = 16
    queue_seconds: float = 60.0
    body_budget_bytes: int = 0  # 0: twice the largest body the service accepts

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RequestSettings:
        env = os.environ if env is None else env
        return cls(
            key=_key(env.get("SCORING_KEY", "")),
            concurrency=_int(env, "SCORING_CONCURRENCY", 1, low=1),
            max_waiting=_int(env, "SCORING_MAX_WAITING", 16, low=0),
            queue_seconds=_float(env, "SCORING_QUEUE_SECONDS", 60.0),
            body_budget_bytes=int(_float(env, "SCORING_BODY_BUDGET_MB", 0.0, zero=True) * 1e6),
        )


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
    def model(self) -> Iterator[None]:
        """Wait for the model (bounded queue, bounded wait)."""
        if not self._gate.acquire(blocking=False):
            with self._lock:
                if self._waiting >= self.settings.max_waiting:
                    raise busy(
                        f"{self._waiting} requests are waiting for the model; try again shortly"
                    )
                self._waiting += 1
            try:
                acquired = self._gate.acquire(timeout=self.settings.queue_seconds)
            finally:
                with self._lock:
                    self._waiting -= 1
            if not acquired:
                raise busy(f"the model stayed busy for {self.settings.queue_seconds:g} s")
        try:
            yield
        finally:
            self._gate.release()
