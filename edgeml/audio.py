"""Audio: the capture stream and its recent history, the one thing the spotter and recorder read.

    source (microphone or file) -> [high-pass] -> ring buffer -> read(start, n)

One stream is opened for the whole run. The keyword spotter (spotter.py) reads 250 ms hops of
it, the recorder (recorder.py) reads on from the sample where the keyword was heard: the words
said right after the keyword are already in the buffer, nothing is lost between the two. Reads
are by absolute sample index; each read tells the buffer that the reader no longer needs audio
older than `keep_seconds` behind it (what the recorder's pre-roll and noise floor look back
over), which is what lets a fast file replay wait for the reader instead of overwriting.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from edgeml import ringbuffer
from edgeml.audioformat import SAMPLE_RATE, clip_int16
from edgeml.ringbuffer import RingBuffer
from edgeml.sources import Source

log = logging.getLogger("edgeml.audio")


class AudioStalled(RuntimeError):
    """A live source delivered nothing for too long (device unplugged, sound server gone)."""


class Stopped(Exception):
    """stop() or interrupt() was called while a read was waiting."""


class InputEnded(Exception):
    """The input (a replayed file) has ended: the samples asked for will never arrive."""


class Overrun(Exception):
    """The samples asked for were overwritten (the reader fell too far behind a live source)."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"samples from {requested} were overwritten; oldest held is {oldest}")
        self.requested = requested
        self.oldest = oldest


@dataclass(frozen=True)
class AudioConfig:
    """The capture stream. The input itself (microphone or file) is sources.SourceConfig."""

    highpass_hz: float = 0.0  # 0: off; 80 removes mains hum
    ring_seconds: float = 30.0
    stall_seconds: float = 5.0  # a live input silent this long is reopened
    keep_seconds: float = 6.0  # history kept behind the reader: pre-roll + noise-floor look-back


class HighPass:
    """4th-order Butterworth high-pass, state carried across blocks: mains hum, rumble.

    At an 80 Hz cut-off 50 Hz hum drops by 16 dB while 100 Hz (a low voice) keeps 93 %.
    """

    def __init__(self, cutoff_hz: float, rate: int = SAMPLE_RATE) -> None:
        from scipy.signal import butter, sosfilt_zi

        self._sos = butter(4, cutoff_hz, btype="highpass", fs=rate, output="sos")
        self._zi = sosfilt_zi(self._sos) * 0.0

    def __call__(self, block: np.ndarray) -> np.ndarray:
        from scipy.signal import sosfilt

        out, self._zi = sosfilt(self._sos, block.astype(np.float64), zi=self._zi)
        return clip_int16(out)


class Audio:
    """The capture stream of one source, held in a ring buffer and read by absolute index."""

    def __init__(self, source: Source, config: AudioConfig | None = None) -> None:
        self.source = source
        self.config = config or AudioConfig()
        self._ring = RingBuffer(int(self.config.ring_seconds * SAMPLE_RATE))
        self._keep = int(self.config.keep_seconds * SAMPLE_RATE)
        self._highpass = HighPass(self.config.highpass_hz) if self.config.highpass_hz > 0 else None
        self._stop = threading.Event()
        self.position = 0  # how far the readers got (where a file replay resumes)

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Open the source; raises sources.AudioSourceError when it cannot be opened."""
        self.source.start(self._push, on_end=self._ring.close, blocking_sink=self._push_blocking)

    def stop(self) -> None:
        """Stop reading (wakes a waiting read) and close the source."""
        self._stop.set()
        self._ring.close()
        self.source.stop()

    def interrupt(self) -> None:
        """Make any waiting read raise Stopped (safe from a signal handler: sets a flag only)."""
        self._stop.set()

    @property
    def live(self) -> bool:
        """Audio arrives by the clock and is lost when nobody reads it in time (a microphone)."""
        return self.source.live

    @property
    def end(self) -> int:
        """Index one past the newest sample captured."""
        return self._ring.end

    @property
    def oldest(self) -> int:
        """The first index still held."""
        return self._ring.oldest

    def _filter(self, block: np.ndarray) -> np.ndarray:
        return self._highpass(block) if self._highpass is not None else block

    def _push(self, block: np.ndarray) -> None:
        if self._ring.end == 0:
            log.info("audio is flowing: listening")
        self._ring.write(self._filter(block))

    def _push_blocking(self, block: np.ndarray) -> None:
        self._ring.write(self._filter(block), block=True, stop=self._stop)

    # ------------------------------------------------------------------ reading
    def read(self, start: int, n: int) -> np.ndarray:
        """Samples [start, start + n), waiting for them to arrive.

        Indices before the stream began read as zeros. Raises Stopped, AudioStalled (a live
        source silent for stall_seconds), InputEnded, Overrun.
        """
        waited = 0.0
        while True:
            if self._stop.is_set():
                raise Stopped()
            try:
                samples = self._ring.read(start, n, timeout=0.2)
                break
            except TimeoutError:
                waited += 0.2
                if waited >= self.config.stall_seconds and self.source.live:
                    raise AudioStalled(
                        f"no audio from the input for {self.config.stall_seconds:.0f} s"
                    ) from None
            except ringbuffer.EndOfStream:
                raise InputEnded(f"the input ended at sample {self._ring.end}") from None
            except ringbuffer.Overrun as exc:
                raise Overrun(exc.requested, exc.oldest) from None
        self.position = max(self.position, start + n)
        self._ring.release(start - self._keep)
        return samples

    def arrival_time(self, index: int) -> float | None:
        """Monotonic time at which sample `index` had been captured (None when no longer known):
        what latency measurements are anchored on."""
        return self._ring.arrival_time(index)

    def history(self, end: int, seconds: float) -> np.ndarray:
        """Up to `seconds` of the audio captured before index `end` that is still held (only
        real audio: nothing from before the stream began). Does not wait."""
        start = max(end - int(seconds * SAMPLE_RATE), self._ring.oldest, 0)
        if end <= start:
            return np.zeros(0, np.int16)
        try:
            return self._ring.read(start, end - start, timeout=0)
        except (TimeoutError, ringbuffer.EndOfStream, ringbuffer.Overrun):
            return np.zeros(0, np.int16)
