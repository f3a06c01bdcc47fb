"""The recorder: from the sample where the keyword was heard to the end of what is said next.

    Audio (ring buffer) --read from the detection point--> Endpointer (vad.py) --> Recording

It reads 20 ms frames straight from the capture stream, so the words said right after the
keyword are already there. The pre-roll (audio before the detection point) is kept for a
sentence said at once, less the keyword's own tail when a pause separates the two; it is not
judged by the endpointer. The background level the endpointer compares against is computed
from the stream's own recent history (vad.noise_floor_dbfs), refreshed every 250 ms, so it
follows a fan switching on during a long recording.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeml.audio import Audio, InputEnded
from edgeml.audioformat import SAMPLE_RATE
from edgeml.vad import (
    FRAME_SAMPLES,
    NOISE_HISTORY_SECONDS,
    EndpointConfig,
    Endpointer,
    EndReason,
    frame_dbfs,
    keyword_tail_frames,
    noise_floor_dbfs,
    speech_threshold,
    to_frames,
)

KEYWORD_OVERHANG = SAMPLE_RATE // 4  # the keyword may end up to one hop after detection
FLOOR_REFRESH_FRAMES = 12  # recompute the background level every 240 ms


@dataclass(frozen=True)
class RecorderConfig:
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    pre_roll_seconds: float = 0.25  # audio before the detection point kept in the recording


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


class Recorder:
    """Records one utterance at a time from the capture stream."""

    def __init__(self, audio: Audio, config: RecorderConfig | None = None) -> None:
        self.audio = audio
        self.config = config or RecorderConfig()

    def _floor(self, index: int) -> float:
        return noise_floor_dbfs(self.audio.history(index, NOISE_HISTORY_SECONDS))

    def record(self, keyword_index: int) -> Recording:
        """Record from the keyword (minus the pre-roll) until silence, max length or no speech.

        Raises what Audio.read raises (Stopped, AudioStalled, Overrun), except InputEnded,
        which ends the recording (reason END_OF_INPUT).
        """
        cfg = self.config.endpoint
        pre_roll = int(self.config.pre_roll_seconds * SAMPLE_RATE)
        start = max(keyword_index - pre_roll, self.audio.oldest, 0)
        floor = self._floor(keyword_index)
        threshold = speech_threshold(cfg, floor)  # before the recording itself moves the floor
        chunks = [self.audio.read(start, keyword_index - start)] if keyword_index > start else []
        ongoing = bool(chunks) and _voiced_at_end(chunks[0], threshold)
        tail = KEYWORD_OVERHANG // FRAME_SAMPLES if ongoing else 0
        endpointer = Endpointer(cfg, floor, keyword_tail_frames=tail)
        pos, reason = keyword_index, None
        while reason is None:
            try:
                frame = self.audio.read(pos, FRAME_SAMPLES)
            except InputEnded:
                reason = EndReason.END_OF_INPUT
                break
            chunks.append(frame)
            pos += FRAME_SAMPLES
            if endpointer.frames % FLOOR_REFRESH_FRAMES == FLOOR_REFRESH_FRAMES - 1:
                endpointer.floor_dbfs = self._floor(pos)
            reason = endpointer.push(frame_dbfs(frame[None, :]))
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        drop = _keyword_tail(samples, keyword_index - start, threshold)
        return _recording(samples[drop:], start + drop, keyword_index, reason, endpointer)


def _recording(
    samples: np.ndarray, start: int, keyword_index: int, reason: EndReason, ep: Endpointer
) -> Recording:
    """The Recording, with the endpointer's speech frames turned into stream indices."""

    def at(frame_no: int | None, offset: int = 0) -> int | None:
        return None if frame_no is None else keyword_index + (frame_no + offset) * FRAME_SAMPLES

    speech_start = at(ep.first_speech_frame)
    speech_end = at(ep.last_speech_frame, 1)
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


def _voiced_at_end(pre_roll: np.ndarray, threshold_dbfs: float) -> bool:
    """Is the last frame before the detection point voiced (the keyword still going on)?"""
    if len(pre_roll) < FRAME_SAMPLES:
        return False
    return bool(frame_dbfs(pre_roll[None, -FRAME_SAMPLES:])[0] >= threshold_dbfs)


def _keyword_tail(samples: np.ndarray, pre_roll: int, threshold_dbfs: float) -> int:
    """Samples at the start of a recording that are the keyword's own tail (often 0).

    Frames are laid from the detection point backwards through the pre-roll and forwards
    after it, on the same grid as the endpointer's; see vad.keyword_tail_frames. The keyword
    may still be going on for up to one hop after the spotter fired.
    """
    head = pre_roll % FRAME_SAMPLES
    frames = keyword_tail_frames(
        frame_dbfs(to_frames(samples[head:])),
        threshold_dbfs,
        search_frames=(pre_roll + KEYWORD_OVERHANG) // FRAME_SAMPLES,
    )
    return head + frames * FRAME_SAMPLES if frames else 0
