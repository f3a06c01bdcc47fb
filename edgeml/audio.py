"""Audio: one capture stream into one ring buffer, read by the keyword spotter and the recorder.

    source (mic or file) -> [high-pass] -> ring buffer -> windows()  -> keyword spotter
                                                      \\-> record()  -> recording

The spotter reads 250 ms hops and hands out the model's window ending at each hop. When it
fires, `record()` starts at that very sample (minus an optional pre-roll) and reads on through
the same buffer: the words said right after the keyword are already there, nothing is lost.
Silence detection (vad.py) decides where the recording ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edgeml.ringbuffer import EndOfStream, Overrun, RingBuffer
from edgeml.sources import SAMPLE_RATE, Source
from edgeml.vad import (
    FRAME_SAMPLES,
    EndpointConfig,
    Endpointer,
    EndReason,
    Framer,
    NoiseFloor,
    frame_dbfs,
    keyword_tail_frames,
    speech_threshold,
)

log = logging.getLogger("edgeml.audio")

HOP_SECONDS = 0.25  # windows advance every 250 ms (Edge Impulse's continuous-mode stride)


KEYWORD_OVERHANG = SAMPLE_RATE // 4  # the keyword may end up to one hop after detection


class AudioStalled(RuntimeError):
    """A live source delivered nothing for too long (device unplugged, server gone)."""


class Stopped(Exception):
    """stop() was called while a read was waiting."""


@dataclass(frozen=True)
class Window:
    """The model's input window, ending at absolute sample `end_index`."""

    samples: np.ndarray
    end_index: int


@dataclass(frozen=True)
class Recording:
    """What was said after the keyword: 16 kHz mono int16, and where it sits in the stream."""

    samples: np.ndarray
    start_index: int  # first sample (keyword_index - pre-roll, less the keyword's tail)
    keyword_index: int  # where the keyword window ended
    reason: EndReason
    speech_start_index: int | None = None
    speech_end_index: int | None = None

    @property
    def end_index(self) -> int:
        return self.start_index + len(self.samples)

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def has_speech(self) -> bool:
        return self.speech_start_index is not None


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
        return np.clip(np.round(out), -32768, 32767).astype(np.int16)


class Audio:
    """The capture stream, its history, and the two ways of reading it."""

    def __init__(
        self,
        source: Source,
        *,
        highpass_hz: float = 0.0,
        ring_seconds: float = 30.0,
        stall_seconds: float = 5.0,
        max_lag_seconds: float = 1.0,
    ) -> None:
        self.source = source
        self.ring = RingBuffer(int(ring_seconds * SAMPLE_RATE))
        self.floor = NoiseFloor()
        self.stall_seconds = stall_seconds
        self.max_lag = int(max_lag_seconds * SAMPLE_RATE)
        self._highpass = HighPass(highpass_hz) if highpass_hz > 0 else None
        self._stop = threading.Event()
        self.skipped_samples = 0  # audio the spotter jumped over because it fell behind
        self.position = 0  # how far the reader got (where a file replay resumes)

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        self.source.start(self._push, on_end=self.ring.close, blocking_sink=self._push_blocking)

    def stop(self) -> None:
        """Stop reading (wakes a waiting read) and close the source."""
        self._stop.set()
        self.ring.close()
        self.source.stop()

    def interrupt(self) -> None:
        """Make any waiting read raise Stopped (safe from a signal handler: sets a flag only)."""
        self._stop.set()

    @property
    def ended(self) -> bool:
        """The source is finished and everything it gave has been written."""
        return self.ring.closed

    def _filter(self, block: np.ndarray) -> np.ndarray:
        return self._highpass(block) if self._highpass is not None else block

    def _push(self, block: np.ndarray) -> None:
        if self.ring.end == 0:
            log.info("audio is flowing: listening")
        self.ring.write(self._filter(block))

    def _push_blocking(self, block: np.ndarray) -> None:
        self.ring.write(self._filter(block), block=True, stop=self._stop)

    # ------------------------------------------------------------------ reading
    def _read(self, start: int, n: int) -> np.ndarray:
        """Blocking read that notices stop() and a stalled live source."""
        waited = 0.0
        while True:
            if self._stop.is_set():
                raise Stopped()
            try:
                return self.ring.read(start, n, timeout=0.2)
            except TimeoutError:
                waited += 0.2
                if waited >= self.stall_seconds and self.source.live:
                    raise AudioStalled(
                        f"no audio from the input for {self.stall_seconds:.0f} s"
                    ) from None

    def windows(self, size: int, *, start_index: int | None = None) -> Iterator[Window]:
        """Windows of `size` samples every 250 ms, from `start_index` onwards.

        By default a live source is read from now on, a file from where the reader left it.

        Each new hop also feeds the noise floor, so it is current when a recording starts. A live
        source that gets ahead of the reader by more than max_lag is caught up by skipping.
        """
        hop = int(HOP_SECONDS * SAMPLE_RATE)
        if start_index is None:
            start_index = self.ring.end if self.source.live else self.position
        end = start_index
        framer = Framer()
        while True:
            end += hop
            if self.source.live and self.ring.end - end > self.max_lag:
                skip = self.ring.end - end
                self.skipped_samples += skip
                log.debug("spotter behind by %.2f s: skipping to live audio", skip / SAMPLE_RATE)
                end = self.ring.end
                framer = Framer()
            try:
                samples = self._read(end - size, size)
            except Overrun as exc:
                log.warning("audio overwritten before it was read: skipping to live audio")
                end = max(exc.oldest + size, self.ring.end)
                continue
            self.ring.release(end - size - int(2 * SAMPLE_RATE))
            self.position = end
            frames = framer.push(samples[-hop:])
            if len(frames):
                self.floor.add(frame_dbfs(frames))
            yield Window(samples=samples, end_index=end)

    @staticmethod
    def _voiced_at_end(pre_roll: np.ndarray, threshold_dbfs: float) -> bool:
        """Is the last frame before the detection point voiced (the keyword still going on)?"""
        if len(pre_roll) < FRAME_SAMPLES:
            return False
        return bool(frame_dbfs(pre_roll[None, -FRAME_SAMPLES:])[0] >= threshold_dbfs)

    @staticmethod
    def _keyword_tail(samples: np.ndarray, pre_roll: int, threshold_dbfs: float) -> int:
        """Samples at the start of a recording that are the keyword's own tail (often 0).

        Frames are laid from the detection point backwards through the pre-roll and forwards
        after it, on the same grid as the silence detector's; see vad.keyword_tail_frames. The
        keyword may still be going on for up to one hop after the spotter fired.
        """
        head = pre_roll % FRAME_SAMPLES
        n = (len(samples) - head) // FRAME_SAMPLES
        body = samples[head : head + n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES)
        frames = keyword_tail_frames(
            frame_dbfs(body),
            threshold_dbfs,
            search_frames=(pre_roll + KEYWORD_OVERHANG) // FRAME_SAMPLES,
        )
        return head + frames * FRAME_SAMPLES if frames else 0

    def record(
        self, keyword_index: int, config: EndpointConfig, *, pre_roll_seconds: float = 0.25
    ) -> Recording:
        """Record from the keyword (minus pre-roll) until silence, max length, or no speech.

        Reads in 20 ms frames straight from the ring buffer; the pre-roll is included in the
        audio, less the keyword's own tail when a pause separates it from what follows, and is
        not judged by the silence detector.
        """
        start = max(keyword_index - int(pre_roll_seconds * SAMPLE_RATE), self.ring.oldest, 0)
        threshold = speech_threshold(config, self.floor)  # before the recording moves the floor
        chunks = [self._read(start, keyword_index - start)] if keyword_index > start else []
        ongoing = bool(chunks) and self._voiced_at_end(chunks[0], threshold)
        tail = KEYWORD_OVERHANG // FRAME_SAMPLES if ongoing else 0
        endpointer = Endpointer(config, self.floor, keyword_tail_frames=tail)
        pos = keyword_index
        reason = None
        while reason is None:
            try:
                frame = self._read(pos, FRAME_SAMPLES)
            except EndOfStream:
                reason = EndReason.END_OF_INPUT
                break
            chunks.append(frame)
            pos += FRAME_SAMPLES
            self.position = pos
            self.ring.release(pos - int(2 * SAMPLE_RATE))
            reason = endpointer.push(frame_dbfs(frame[None, :]))
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        drop = self._keyword_tail(samples, keyword_index - start, threshold)
        samples, start = samples[drop:], start + drop

        def at(frame_no: int | None, offset: int = 0) -> int | None:
            if frame_no is None:
                return None
            return keyword_index + (frame_no + offset) * FRAME_SAMPLES

        speech_start = at(endpointer.first_speech_frame)
        speech_end = at(endpointer.last_speech_frame, 1)
        if speech_end is not None and speech_end <= start:  # all it heard was the keyword's end
            speech_start = speech_end = None
        return Recording(
            samples=samples,
            start_index=start,
            keyword_index=keyword_index,
            reason=reason,
            speech_start_index=None if speech_start is None else max(speech_start, start),
            speech_end_index=speech_end,
        )
