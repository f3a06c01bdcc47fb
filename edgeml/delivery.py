"""Delivery: store-and-forward of recordings to the endpoint, exactly once and in order.

    recorder -> Delivery.submit() -> spool (on disk) -> sender thread -> CloudML -> transcript

Every recording goes into the spool first; a single sender thread sends the OLDEST item, and
only removes it once its transcript came back AND was committed (`on_outcome`, the Output,
returned: the --jsonl line is on disk). While the endpoint is down, attempts back off
exponentially with full jitter (honouring Retry-After) and everything recorded meanwhile queues
up behind; once it answers again, the backlog goes out oldest first. Jitter matters for a fleet:
devices that lost the endpoint together do not all come back in the same second. Because the
spool is on disk, the same holds across a restart of the app. The sender runs beside the
listening loop, so the device keeps listening while a slow endpoint thinks.

Exactly once: a kill between the commit and the removal re-sends that one recording on the
next start, and the Output finds its id already recorded (one --jsonl line per id).

The sender cannot die: an unreadable recording is set aside (rejected/) and the queue goes on; a
disk that refuses writes (full, read-only) is logged and survived: an item whose removal failed
is remembered as done and never sent again by this process; an Output that cannot commit keeps
the item (its transcript is kept in memory, so the endpoint is not asked twice); anything else
is logged and retried after a pause.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from edgeml.cloudml import (
    AudioRejected,
    AuthRejected,
    CloudError,
    CloudML,
    EndpointMisconfigured,
    Transcript,
)
from edgeml.keywordtext import transcript_prefix
from edgeml.spool import RecordingInfo, Spool, SpoolItem, SpoolRecord

log = logging.getLogger("edgeml.delivery")

MAX_RETRY_AFTER = 3600.0  # a Retry-After beyond an hour is a mistake; wait an hour at most
MAX_REMEMBERED = 1000


def spoken_prefix(info: RecordingInfo | None) -> str | None:
    """The transcript prefix a recording is sent with: its keyword, when its audio keeps it."""
    if info is None or not info.keyword_in_audio:
        return None
    return transcript_prefix(info.keyword)


class Status(str, Enum):
    """What became of a recording (so far)."""

    DELIVERED = "delivered"  # its transcript came back
    REJECTED = "rejected"  # the endpoint will never take it: moved to the spool's rejected/
    HELD = "held"  # the endpoint is unavailable: kept in the spool, retried with backoff
    KEY_REJECTED = "key_rejected"  # the endpoint refused the key: kept, retried rarely
    MISCONFIGURED = "misconfigured"  # the URL leads to no scoring endpoint: kept, retried rarely
    NOT_RECORDED = "not_recorded"  # answered, but the Output could not commit it: kept


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
        return self.status in (
            Status.HELD, Status.KEY_REJECTED, Status.MISCONFIGURED, Status.NOT_RECORDED
        )  # fmt: skip


class OutcomeNotRecorded(CloudError):
    """The endpoint answered, but the outcome could not be committed (--jsonl refused the
    line): a local disk problem, not the endpoint's; the recording stays in the spool."""


def status_of(err: CloudError) -> Status:
    """The status of a recording kept after `err`."""
    if isinstance(err, AuthRejected):
        return Status.KEY_REJECTED
    if isinstance(err, EndpointMisconfigured):
        return Status.MISCONFIGURED
    if isinstance(err, OutcomeNotRecorded):
        return Status.NOT_RECORDED
    return Status.HELD


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
        jitter: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.spool = spool
        self.on_outcome = on_outcome
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.jitter = jitter
        self._rng = rng or random.Random()
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
        self._done: set[str] = set()  # committed, but the disk refused their removal
        self._uncommitted: dict[str, Outcome] = {}  # answered, but the Output refused them
        self._crashes = 0

    # ------------------------------------------------------------------ producer side
    def submit(self, samples: np.ndarray, info: RecordingInfo | None = None) -> int:
        """Store the recording durably and wake the sender. Raises spool.SpoolFull."""
        return self.submit_item(samples, info).seq

    def submit_item(self, samples: np.ndarray, info: RecordingInfo | None = None) -> SpoolItem:
        """submit(), answering the stored item (its record's id names the recording, which a
        continuation refers to). Raises spool.SpoolFull."""
        item = self.spool.add(samples, info)
        with self._cond:
            self._cond.notify_all()
        return item

    def wait_for(self, seq: int, timeout: float) -> Outcome | None:
        """The first outcome of recording `seq`: delivered, rejected, or held back by a failure."""
        deadline = time.monotonic() + timeout
        with self._cond:
            failures = self._failures
            while seq not in self._outcomes:
                if self._failures > failures and self._last_failure is not None:
                    err = self._last_failure
                    return Outcome(seq, status_of(err), error=err)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self._thread is None or not self._thread.is_alive()):
                    return None
                self._cond.wait(min(remaining, 0.5))
            return self._outcomes[seq]

    def drain(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """Wait until the spool is empty (True), or an attempt fails, time runs out or `stop`
        is set (False: a SIGTERM is not waited out behind a slow endpoint)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            failures = self._failures
            while True:
                if not self._sending and self._pending() == 0:
                    return True
                if self._failures > failures or time.monotonic() > deadline:
                    return False
                if stop is not None and stop.is_set():
                    return False
                self._cond.wait(0.2)

    def _pending(self) -> int:
        try:
            return max(0, len(self.spool) - len(self._done))
        except OSError:
            return 1  # the spool folder cannot be listed: not drained

    # ------------------------------------------------------------------ sender thread
    def start(self) -> None:
        backlog = self._pending()
        if backlog:
            log.info("%d recording(s) from an earlier run wait in %s", backlog, self.spool.dir)
        self._thread = threading.Thread(target=self._run, name="delivery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop now: a request in flight is cut, not waited for (a slow endpoint held a
        SIGTERM for 34 s); whatever is unsent or uncommitted stays in the spool."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            deadline = time.monotonic() + timeout
            while self._thread.is_alive() and time.monotonic() < deadline:
                self._abort()  # again each time: a request may have been just starting
                self._thread.join(0.1)
            if self._thread.is_alive():
                log.warning("a request was still in flight at exit; its recording stays spooled")

    def _abort(self) -> None:
        for client in (self.client, getattr(self.client, "client", None)):  # speculative.py
            with contextlib.suppress(Exception):  # a client without abort() is waited for
                client.abort()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        """The sender's loop; nothing that happens inside one step ends it."""
        while not self._stop.is_set():
            try:
                self._step()
                self._crashes = 0
            except Exception:  # noqa: BLE001 - the sender must outlive anything
                self._survive()

    def _survive(self) -> None:
        """After an unexpected error: log it (never raising) and pause, longer each time."""
        self._crashes += 1
        pause = min(60.0, 0.5 * 2 ** min(self._crashes, 7))
        with contextlib.suppress(Exception):  # an error handler must not raise
            log.exception("delivery failed unexpectedly (%d in a row); going on in %.0f s",
                          self._crashes, pause)  # fmt: skip
        with self._cond:
            self._sending = False
            self._cond.notify_all()
        self._stop.wait(pause)

    def _step(self) -> None:
        with self._cond:
            wait = self._next_attempt - time.monotonic()
            if wait > 0:
                self._cond.wait(min(wait, 1.0))
                return
            item = self.spool.oldest(exclude=self._done)
            if item is None:
                self._cond.wait(1.0)
                return
            self._sending = True
        try:
            self._send(item)
        finally:
            with self._cond:
                self._sending = False
                self._cond.notify_all()

    def _send(self, item: SpoolItem) -> None:
        rid = item.record.id
        backlog = item.record.created_ts < self._backlog_before
        if rid in self._uncommitted:  # answered before; only the commit is left to do
            self._complete(item, self._uncommitted[rid])
            return
        try:
            samples = item.samples()
        except Exception as exc:  # noqa: BLE001 - a damaged file must not block the queue
            err = AudioRejected(f"spooled recording unreadable: {str(exc)[:200]}")
            self._complete(item, Outcome(item.seq, Status.REJECTED, item.record, error=err))
            return
        if self._stop.is_set():  # stopping: not started now, it stays for the next run
            return
        try:
            transcript = self.client.transcribe(samples, prefix=spoken_prefix(item.record.info))
        except AudioRejected as err:
            outcome = Outcome(item.seq, Status.REJECTED, item.record, error=err, backlog=backlog)
            self._complete(item, outcome)
            return
        except (AuthRejected, EndpointMisconfigured) as err:
            log.error("%s (%d recording(s) kept in the spool)", err, self._pending())
            self._fail(item, err, backoff=self.max_backoff)
            return
        except CloudError as err:
            self._fail(item, err)
            return
        self._backoff = 0.0
        outcome = Outcome(
            item.seq, Status.DELIVERED, item.record, transcript=transcript, backlog=backlog
        )
        self._complete(item, outcome)

    def _complete(self, item: SpoolItem, outcome: Outcome) -> None:
        """Commit the outcome, THEN remove (or set aside) the item, then tell the waiters."""
        rid = item.record.id
        try:
            self.on_outcome(outcome)
        except Exception as exc:  # noqa: BLE001 - e.g. OutputError: the disk refuses --jsonl
            self._uncommitted[rid] = outcome
            delay = self._delay(self.max_backoff / 2)
            self._next_attempt = time.monotonic() + delay
            log.error("recording %d: its outcome could not be recorded (%s); kept in the spool, "
                      "next try in %.0f s", item.seq, exc, delay)  # fmt: skip
            with self._cond:  # a waiter (--once) hears what failed, not "no answer" later
                self._failures += 1
                self._last_failure = OutcomeNotRecorded(f"the answer could not be recorded: {exc}")
                self._cond.notify_all()
            return
        self._uncommitted.pop(rid, None)
        try:
            if outcome.status is Status.REJECTED:
                where = self.spool.reject(item, str(outcome.error))
                log.error("recording %d rejected, moved to %s: %s", item.seq, where.parent,
                          outcome.error)  # fmt: skip
            else:
                self.spool.remove(item)
        except OSError as exc:
            self._remember_done(rid)
            log.error("recording %d is done but the spool cannot drop it (%s): it will not be "
                      "sent again by this process", item.seq, exc)  # fmt: skip
        if outcome.delivered and outcome.backlog:
            log.info("delivered recording %d after %d failed attempt(s)", item.seq, item.attempts)
        with self._cond:
            self._next_attempt = 0.0
            self._outcomes[outcome.seq] = outcome
            if len(self._outcomes) > MAX_REMEMBERED:  # a long run: forget the oldest
                for seq in sorted(self._outcomes)[: MAX_REMEMBERED // 2]:
                    del self._outcomes[seq]
            self._cond.notify_all()

    def _remember_done(self, rid: str) -> None:
        if len(self._done) >= MAX_REMEMBERED * 10:
            log.error("the spool has refused %d removals; is the disk read-only?", len(self._done))
        self._done.add(rid)

    def _delay(self, backoff: float) -> float:
        """Full jitter: anywhere between the shortest wait and the backoff."""
        if not self.jitter or backoff <= self.min_backoff:
            return backoff
        return self._rng.uniform(self.min_backoff, backoff)

    def _fail(self, item: SpoolItem, err: CloudError, *, backoff: float | None = None) -> None:
        """Count the attempt, keep the item, and wait longer before the next try."""
        try:
            self.spool.record_attempt(item, str(err))
        except OSError as exc:  # the count is lost, the recording is not
            log.warning("cannot update spool record %d: %s", item.seq, exc)
        if backoff is None:
            backoff = min(self.max_backoff, max(self.min_backoff, self._backoff * 2))
        self._backoff = backoff
        delay = self._delay(backoff)
        if err.retry_after:
            after = min(err.retry_after, MAX_RETRY_AFTER)
            spread = self._rng.uniform(0.0, min(0.2 * after, 10.0)) if self.jitter else 0.0
            delay = max(delay, after + spread)  # the server's word, spread over a few seconds
        self._next_attempt = time.monotonic() + delay
        if not isinstance(err, (AuthRejected, EndpointMisconfigured)) and not self._stop.is_set():
            log.warning(
                "endpoint unavailable: %s; %d recording(s) in the spool, next try in %.0f s",
                err,
                self._pending(),
                delay,
            )
        self._backlog_before = time.time()
        with self._cond:
            self._failures += 1
            self._last_failure = err
            self._cond.notify_all()
