"""A ring buffer of int16 samples addressed by absolute sample index.

Why absolute indices: the keyword spotter and the recorder read the SAME stream. When the
spotter fires at sample N, the recorder starts at N minus the pre-roll and reads on from there,
so nothing said between the keyword and the start of the recording is lost (the write-up's app
closed the keyword stream and opened a new one, which dropped the start of the sentence).

One writer (the capture callback or the file replay thread) appends; one reader (the main loop)
reads any range still held. A live source never waits: when the reader falls behind by more
than the capacity, the oldest audio is overwritten and the reader is told (`Overrun`). A file
replayed as fast as possible uses `write(..., block=True)` and waits for the reader instead.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np


class Overrun(Exception):
    """The requested samples were overwritten; `oldest` is the first index still held."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"samples from {requested} were overwritten; oldest held is {oldest}")
        self.requested = requested
        self.oldest = oldest


class EndOfStream(Exception):
    """The source has ended and the requested samples will never arrive."""


class RingBuffer:
    """Fixed-capacity int16 history of a stream, with blocking reads by absolute index."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._buf = np.zeros(capacity, dtype=np.int16)
        self._capacity = capacity
        self._written = 0  # total samples ever written == index one past the newest sample
        self._released = 0  # the reader will not read before this index (block=True writers)
        self._closed = False
        self._cond = threading.Condition()
        # (index one past the block, monotonic time it arrived): maps samples to wall time.
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=1024)

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def end(self) -> int:
        """Index one past the newest sample written."""
        with self._cond:
            return self._written

    @property
    def oldest(self) -> int:
        """The first index still held."""
        with self._cond:
            return max(0, self._written - self._capacity)

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def write(
        self, samples: np.ndarray, *, block: bool = False, stop: threading.Event | None = None
    ) -> None:
        """Append samples. With block=True wait until the reader has released enough room."""
        samples = np.asarray(samples, dtype=np.int16).reshape(-1)
        for start in range(0, len(samples), self._capacity):
            self._write_chunk(samples[start : start + self._capacity], block, stop)

    def _write_chunk(self, chunk: np.ndarray, block: bool, stop: threading.Event | None) -> None:
        n = len(chunk)
        with self._cond:
            while (
                block and not self._closed and self._written + n - self._released > self._capacity
            ):
                if stop is not None and stop.is_set():
                    return
                self._cond.wait(0.1)
            if self._closed:
                return
            pos = self._written % self._capacity
            first = min(n, self._capacity - pos)
            self._buf[pos : pos + first] = chunk[:first]
            self._buf[: n - first] = chunk[first:]
            self._written += n
            self._arrivals.append((self._written, time.monotonic()))
            self._cond.notify_all()

    def release(self, index: int) -> None:
        """The reader will not need samples before `index` any more (lets blocked writers on)."""
        with self._cond:
            if index > self._released:
                self._released = index
                self._cond.notify_all()

    def close(self) -> None:
        """The source has ended: readers get what is left, then EndOfStream."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def read(self, start: int, n: int, timeout: float) -> np.ndarray:
        """Samples [start, start + n), waiting up to `timeout` s for them to arrive.

        Negative indices (before the stream began) read as zeros, so the first keyword window
        can be taken as soon as one hop has arrived. Raises TimeoutError, Overrun, EndOfStream.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._written < start + n:
                if self._closed:
                    raise EndOfStream(f"stream ended at sample {self._written}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no audio for {timeout:.1f} s (stream at {self._written})")
                self._cond.wait(remaining)
            oldest = max(0, self._written - self._capacity)
            if start + n <= 0:
                return np.zeros(n, dtype=np.int16)
            if max(start, 0) < oldest:
                raise Overrun(start, oldest)
            out = np.zeros(n, dtype=np.int16)
            lead = max(0, -start)  # zeros for samples before the stream began
            idx = np.arange(start + lead, start + n) % self._capacity
            out[lead:] = self._buf[idx]
            return out

    def arrival_time(self, index: int) -> float | None:
        """Monotonic time at which sample `index` had arrived (None if no longer known)."""
        with self._cond:
            for end, when in self._arrivals:
                if end > index:
                    return when
        return None
