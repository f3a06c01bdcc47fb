"""Delivery: store-and-forward of recordings to the endpoint, exactly once and in order.

    recorder -> Delivery.submit() -> spool (on disk) -> sender thread -> CloudML -> transcript

Every recording goes into the spool first; a single sender thread sends the OLDEST item, and
only removes it once its transcript came back. While the endpoint is down, attempts back off
exponentially (honouring Retry-After) and everything recorded meanwhile queues up behind; once
it answers again, the backlog goes out oldest first. Because the spool is on disk, the same holds
across a restart of the app. The sender runs beside the listening loop, so the device keeps
listening while a slow endpoint thinks.

Exactly once: an item is removed after its 200 and never sent again. The one gap is a crash or
kill in the instant between the 200 arriving and the removal; then that recording is sent once
more on the next start (at-least-once there, never lost).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from edgeml.cloudml import AudioRejected, AuthRejected, CloudError, CloudML, Transcript
from edgeml.spool import RecordingInfo, Spool, SpoolItem, SpoolRecord

log = logging.getLogger("edgeml.delivery")


class Status(str, Enum):
    """What became of a recording (so far)."""

    DELIVERED = "delivered"  # its transcript came back
    REJECTED = "rejected"  # the endpoint will never take it: moved to the spool's rejected/
    HELD = "held"  # the endpoint is unavailable: kept in the spool, retried with backoff
    KEY_REJECTED = "key_rejected"  # the endpoint refused the key: kept, retried rarely


@dataclass(frozen=True)
class Outcome:
    """What became of one recording: its transcript, or why not (and whether it is still kept)."""

    seq: int
    status: Status
    record: SpoolRecord | None = field(default=None, repr=False)
    transcript: Transcript | None = None
    error: CloudError | None = None
    backlog: bool = (
        False  # it waited in the spool: through a failed attempt, or from an earlier run
    )

    @property
    def delivered(self) -> bool:
        return self.status is Status.DELIVERED

    @property
    def kept(self) -> bool:
        """Still in the spool: the next attempt (or the next run) may deliver it."""
        return self.status in (Status.HELD, Status.KEY_REJECTED)


class Delivery:
    """The sender thread and the spool it drains."""

    def __init__(
        self,
        client: CloudML,
        spool: Spool,
        on_outcome: Callable[[Outcome], None],
        *,
        min_backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        self.client = client
        self.spool = spool
        self.on_outcome = on_outcome
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._backoff = 0.0
        self._next_attempt = 0.0
        self._cond = threading.Condition()
        self._outcomes: dict[int, Outcome] = {}
        self._failures = 0
        self._last_failure: CloudError | None = None
        # recordings spooled before this time waited: left over from a run, or through a failure
        self._backlog_before = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sending = False

    # ------------------------------------------------------------------ producer side
    def submit(self, samples: np.ndarray, info: RecordingInfo | None = None) -> int:
        """Store the recording durably and wake the sender. Raises spool.SpoolFull."""
        item = self.spool.add(samples, info)
        with self._cond:
            self._cond.notify_all()
        return item.seq

    def wait_for(self, seq: int, timeout: float) -> Outcome | None:
        """The first outcome of recording `seq`: delivered, rejected, or held back by a failure."""
        deadline = time.monotonic() + timeout
        with self._cond:
            failures = self._failures
            while seq not in self._outcomes:
                if self._failures > failures and self._last_failure is not None:
                    status = (
                        Status.KEY_REJECTED
                        if isinstance(self._last_failure, AuthRejected)
                        else Status.HELD
                    )
                    return Outcome(seq, status, error=self._last_failure)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self._thread is None or not self._thread.is_alive()):
                    return None
                self._cond.wait(min(remaining, 0.5))
            return self._outcomes[seq]

    def drain(self, timeout: float) -> bool:
        """Wait until the spool is empty (True), or an attempt fails or time runs out (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            failures = self._failures
            while True:
                if not self._sending and len(self.spool) == 0:
                    return True
                if self._failures > failures or time.monotonic() > deadline:
                    return False
                self._cond.wait(0.2)

    # ------------------------------------------------------------------ sender thread
    def start(self) -> None:
        backlog = len(self.spool)
        if backlog:
            log.info("%d recording(s) from an earlier run wait in %s", backlog, self.spool.dir)
        self._thread = threading.Thread(target=self._run, name="delivery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the request in flight (if any); whatever is unsent stays in the spool."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("a request was still in flight at exit; its recording stays spooled")

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                item = self.spool.oldest()
                wait = self._next_attempt - time.monotonic()
                if item is None or wait > 0:
                    self._cond.wait(min(max(wait, 0.05), 1.0) if item else 1.0)
                    continue
                self._sending = True
            try:
                self._send(item)
            except Exception:  # noqa: BLE001 - the sender must outlive any one bad item
                log.exception("unexpected error sending spooled recording %d", item.seq)
                self._fail(item, CloudError("internal error"))
            finally:
                with self._cond:
                    self._sending = False
                    self._cond.notify_all()

    def _send(self, item: SpoolItem) -> None:
        try:
            samples = item.samples()
        except Exception as exc:  # noqa: BLE001 - a damaged file must not block the queue
            err = AudioRejected(f"spooled recording unreadable: {exc}")
            self.spool.reject(item, str(err))
            self._finish(Outcome(item.seq, Status.REJECTED, item.record, error=err))
            return
        backlog = item.record.created_ts < self._backlog_before
        try:
            transcript = self.client.transcribe(samples)
        except AudioRejected as err:
            where = self.spool.reject(item, str(err))
            log.error("recording %d rejected, moved to %s: %s", item.seq, where.parent, err)
            self._finish(
                Outcome(item.seq, Status.REJECTED, item.record, error=err, backlog=backlog)
            )
            return
        except AuthRejected as err:
            log.error("%s (%d recording(s) kept in the spool)", err, len(self.spool))
            self._fail(item, err, backoff=self.max_backoff)
            return
        except CloudError as err:
            self._fail(item, err)
            return
        self.spool.remove(item)
        self._backoff = 0.0
        self._next_attempt = 0.0
        if backlog:
            log.info("delivered recording %d after %d failed attempt(s)", item.seq, item.attempts)
        self._finish(
            Outcome(item.seq, Status.DELIVERED, item.record, transcript=transcript, backlog=backlog)
        )

    def _fail(self, item: SpoolItem, err: CloudError, *, backoff: float | None = None) -> None:
        """Count the attempt, keep the item, and wait longer before the next try."""
        self.spool.record_attempt(item, str(err))
        if backoff is None:
            backoff = min(self.max_backoff, max(self.min_backoff, self._backoff * 2))
        self._backoff = backoff
        delay = max(backoff, err.retry_after or 0.0)
        self._next_attempt = time.monotonic() + delay
        if not isinstance(err, AuthRejected):
            log.warning(
                "endpoint unavailable: %s; %d recording(s) in the spool, next try in %.0f s",
                err,
                len(self.spool),
                delay,
            )
        self._backlog_before = time.time()
        with self._cond:
            self._failures += 1
            self._last_failure = err
            self._cond.notify_all()

    def _finish(self, outcome: Outcome) -> None:
        with self._cond:
            self._outcomes[outcome.seq] = outcome
            if len(self._outcomes) > 1000:  # a long run: forget the oldest
                for seq in sorted(self._outcomes)[:500]:
                    del self._outcomes[seq]
            self._cond.notify_all()
        try:
            self.on_outcome(outcome)
        except Exception:  # noqa: BLE001 - printing must never stop delivery
            log.exception("handling the transcript of recording %d failed", outcome.seq)
