"""Silence detection: when has the speaker started, and when have they stopped talking?

Energy in 20 ms frames against an adaptive noise floor, not a fixed level: a Pi in a quiet room
and a Pi next to a fan differ by 30 dB, and a USB microphone's gain is unknown. The floor is the
10th percentile of the frame energies of the last 5 s of the stream (minimum statistics), so it
follows a fan within about 5 s of switching on but does not rise during speech, whose pauses
keep the low percentile down. A frame is voiced when it is `margin_db` above the floor. The
floor is computed from the capture stream's own history (one source of truth: the audio), by
the recorder, when it needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from edgeml.audioformat import INT16_SCALE, SAMPLE_RATE

FRAME_SAMPLES = 320  # 20 ms at 16 kHz
FLOOR_DBFS = -96.0  # what exact digital silence reads as (log of zero is clamped here)
NOISE_HISTORY_SECONDS = 5.0  # the noise floor looks back this far
NOISE_PERCENTILE = 10.0


def frame_dbfs(frames: np.ndarray) -> np.ndarray:
    """RMS level in dB full scale of each row of int16 `frames` (shape: n_frames x samples)."""
    x = frames.astype(np.float32) / INT16_SCALE
    rms = np.sqrt(np.mean(x * x, axis=-1) + 1e-12)
    return np.maximum(20.0 * np.log10(rms), FLOOR_DBFS)


def to_frames(samples: np.ndarray, frame: int = FRAME_SAMPLES) -> np.ndarray:
    """The whole 20 ms frames of `samples`, shape (n, frame) (a partial last frame is dropped)."""
    n = len(samples) // frame
    return np.asarray(samples[: n * frame], dtype=np.int16).reshape(n, frame)


def noise_floor_dbfs(history: np.ndarray, percentile: float = NOISE_PERCENTILE) -> float:
    """The background level of `history` (the last few seconds of the stream): a low percentile
    of its frame levels (minimum statistics). With nothing heard yet: digital silence."""
    levels = frame_dbfs(to_frames(history))
    return float(np.percentile(levels, percentile)) if len(levels) else FLOOR_DBFS


def keyword_tail_frames(
    levels: np.ndarray, threshold_dbfs: float, *, search_frames: int, min_pause_frames: int = 4
) -> int:
    """How many leading frames of a recording to drop because they are the keyword's tail.

    `levels` are the recording's frame levels, from the start of the pre-roll. The pre-roll
    reaches back before the detection point so that a sentence said promptly after the keyword
    is kept whole, but it often holds the end of the keyword too (and when the spotter fires
    before the keyword is over, so do the frames after the detection point); a speech model
    then writes that syllable as a word (the "-en" of "listen" came out as "and"). When the
    recording opens on voiced frames followed, within `search_frames`, by a pause of at least
    `min_pause_frames` (80 ms: longer than the closure of a stop consonant inside a word), the
    opening is the keyword's end: cut at the pause's quietest frame. When it opens quiet, stays
    voiced, or only dips briefly (keyword run straight into the sentence: no clean cut), drop
    nothing, since clipping the sentence is worse than keeping a syllable of the keyword.
    """
    levels = np.asarray(levels, dtype=float)
    voiced = levels >= threshold_dbfs
    if len(voiced) == 0 or not voiced[0]:
        return 0
    quiet = np.flatnonzero(~voiced)
    if len(quiet) == 0 or quiet[0] >= search_frames:
        return 0
    first = int(quiet[0])
    louder = np.flatnonzero(voiced[first:])
    stop = first + int(louder[0]) if len(louder) else len(voiced)
    if stop - first < min_pause_frames and stop < len(voiced):
        return 0
    return first + int(np.argmin(levels[first:stop]))


class EndReason(str, Enum):
    SILENCE = "silence"  # the speaker stopped: silence_seconds of quiet after speech
    MAX_LENGTH = "max_length"
    NO_SPEECH = "no_speech"  # nothing was said within no_speech_seconds of the keyword
    END_OF_INPUT = "end_of_input"  # the file being replayed ended


@dataclass(frozen=True)
class EndpointConfig:
    """When a recording ends. Times are seconds of audio after the keyword."""

    silence_seconds: float = 0.7  # chosen on a measured curve: docs/benchmarks.md
    max_seconds: float = 15.0
    no_speech_seconds: float = 4.0
    margin_db: float = 10.0  # voiced = this much above the noise floor
    min_speech_dbfs: float = -55.0  # ... and at least this loud (guards a digitally silent floor)
    min_voiced_frames: int = 2  # consecutive voiced frames that count as speech (40 ms)
    # the neural VAD's decision (VoiceEndpointer): P(speech) thresholds with hysteresis
    speech_probability: float = 0.5  # speech starts at or above this
    pause_probability: float = 0.35  # below this a frame is quiet (where the keyword ends)
    hold_probability: float = 0.35  # after a speech frame, speech goes on at or above this
    resume_probability: float = 0.35  # once a pause has begun, only this much ends it
    # >0: once a pause has begun, only this many frames in a row at speech_probability end it;
    # 0 (default): any frame at pause_probability does. 2 ended 80 % of noisy inputs promptly
    # instead of 76 % but cut 2 % more sentences (docs/benchmarks.md, bench/endpointing.py --hints)
    resume_frames: int = 0
    min_utterance_seconds: float = 0.25  # less speech than this before a long pause: not speech
    trail_seconds: float = 0.3  # quiet kept after the last speech when a recording ends


def speech_threshold(config: EndpointConfig, floor_dbfs: float) -> float:
    """The level (dBFS) at or above which a frame is voiced over a background of `floor_dbfs`."""
    return max(floor_dbfs + config.margin_db, config.min_speech_dbfs)


class Endpointer:
    """Frame-by-frame decision: is the recording over, and why?

    Frames are fed from the keyword onwards (the pre-roll is recorded but not judged, since it
    may hold the end of the keyword itself, which is speech but not the sentence). When the
    spotter fired before the keyword was over, its last syllable also comes after the detection
    point: `keyword_tail_frames` > 0 says so, and a voiced run at the very start that ends within
    that many frames is then not counted as speech. Otherwise a speaker who paused for
    `silence_seconds` after the keyword would have the recording end on that syllable alone,
    before the sentence began, instead of being given `no_speech_seconds` to start.
    """

    def __init__(
        self, config: EndpointConfig, floor_dbfs: float, *, keyword_tail_frames: int = 0
    ) -> None:
        self.config = config
        self._tail_frames = keyword_tail_frames  # > 0 while a leading voiced run may be the tail
        self.floor_dbfs = floor_dbfs  # the background level; the recorder keeps it current
        self.frames = 0
        self.speech_frames = 0
        self.first_speech_frame: int | None = None
        self.last_speech_frame: int | None = None
        self._run = 0  # consecutive voiced frames

    @property
    def threshold_dbfs(self) -> float:
        return speech_threshold(self.config, self.floor_dbfs)

    def push(self, levels: np.ndarray) -> EndReason | None:
        """Feed frame levels (dBFS); return why the recording ends, or None to go on."""
        for level in levels:
            reason = self._push_one(float(level))
            if reason is not None:
                return reason
        return None

    def _push_one(self, level: float) -> EndReason | None:
        cfg = self.config
        voiced = level >= self.threshold_dbfs
        if self._tail_frames:
            self._judge_tail(voiced)
        self._run = self._run + 1 if voiced else 0
        if self._run >= cfg.min_voiced_frames:
            if self.first_speech_frame is None:
                self.first_speech_frame = self.frames - self._run + 1
            self.last_speech_frame = self.frames
        if voiced:
            self.speech_frames += 1
        self.frames += 1
        seconds = self.frames * FRAME_SAMPLES / SAMPLE_RATE
        if self.last_speech_frame is None:
            if seconds >= cfg.no_speech_seconds:
                return EndReason.NO_SPEECH
        else:
            quiet = (self.frames - 1 - self.last_speech_frame) * FRAME_SAMPLES / SAMPLE_RATE
            if quiet >= cfg.silence_seconds:
                return EndReason.SILENCE
        if seconds >= cfg.max_seconds:
            return EndReason.MAX_LENGTH
        return None

    def _judge_tail(self, voiced: bool) -> None:
        """While the frames so far form one voiced run: if it stops within the keyword-tail
        allowance it was the keyword's end, so forget it as speech; if it outlasts the
        allowance it is the sentence (said straight after the keyword) and counts."""
        if self.frames != self.speech_frames:  # the opening run already ended earlier
            self._tail_frames = 0
        elif not voiced:
            self.first_speech_frame = self.last_speech_frame = None
            self.speech_frames = 0
            self._run = 0
            self._tail_frames = 0
        elif self.frames >= self._tail_frames:
            self._tail_frames = 0


class VoiceEndpointer:
    """The same decision as Endpointer, on a neural VAD's P(speech) per frame (neural_vad.py).

    Hysteresis: speech starts when P >= `speech_probability` and goes on while P >=
    `pause_probability`; the quiet after the last such frame is the pause, and a pause of
    `allowed_pause` seconds ends the recording (`silence_seconds` unless the recorder moves it:
    turn.py). With `resume_frames` > 0, once a pause has begun only that many frames in a row
    at or above `speech_probability` end it (Silero's own VADIterator resumes only at its start
    level too): under babble, thunder or wind P(speech) flickers between 0.35 and 0.5, or jumps
    above 0.5 for one 32 ms frame, for up to a second after the last word, and each flicker
    restarts the pause. It is off by default: measured on the real sentences in noise it ended
    more recordings promptly but cut more sentences between weakly voiced words ("one, two,
    three"; docs/benchmarks.md). An utterance with less than `min_utterance_seconds` of
    speech (a cough, a door, the last syllable of the keyword) followed by such a pause is
    forgotten rather than taken for the sentence: the speaker still has `no_speech_seconds` from
    the start to begin. No level or noise floor is involved, so a loud steady background does not
    keep a recording going, nor does a rising one cut it.
    """

    def __init__(self, config: EndpointConfig, frame_seconds: float) -> None:
        self.config = config
        self.frame_seconds = frame_seconds
        self.frames = 0
        self.first_speech_frame: int | None = None
        self.last_speech_frame: int | None = None
        self._run = 0  # consecutive frames at or above speech_probability
        self._speech = 0  # frames at or above speech_probability in the current utterance
        self._paused = False  # P fell below pause_probability since the last speech frame
        self.allowed_pause = config.silence_seconds  # the recorder may move it (turn.py)

    @property
    def pause_seconds(self) -> float:
        """Quiet since the last speech frame (0 before any speech and during speech)."""
        if self.last_speech_frame is None:
            return 0.0
        return (self.frames - 1 - self.last_speech_frame) * self.frame_seconds

    def push(self, probabilities) -> EndReason | None:
        """Feed P(speech) of the next frames; return why the recording ends, or None to go on."""
        for p in np.atleast_1d(probabilities):
            reason = self._push_one(float(p))
            if reason is not None:
                return reason
        return None

    def _push_one(self, p: float) -> EndReason | None:
        cfg = self.config
        self._run = self._run + 1 if p >= cfg.speech_probability else 0
        if self.first_speech_frame is None:
            if self._run >= cfg.min_voiced_frames:
                self.first_speech_frame = self.frames - self._run + 1
                self.last_speech_frame = self.frames
                self._speech = self._run
                self._paused = False
        else:
            self._follow(p)
        self.frames += 1
        shortest = min(cfg.silence_seconds, self.allowed_pause)  # turn.py may end sooner
        if self.first_speech_frame is not None and self.pause_seconds >= shortest:
            if self._speech * self.frame_seconds < cfg.min_utterance_seconds:
                self.first_speech_frame = self.last_speech_frame = None  # a click, not speech
                self._speech = 0
            elif self.pause_seconds >= self.allowed_pause:
                return EndReason.SILENCE
        seconds = self.frames * self.frame_seconds
        if self.first_speech_frame is None and seconds >= cfg.no_speech_seconds:
            return EndReason.NO_SPEECH
        if seconds >= cfg.max_seconds:
            return EndReason.MAX_LENGTH
        return None

    def _follow(self, p: float) -> None:
        """After speech has started: does this frame continue it, or end or prolong a pause?"""
        cfg = self.config
        if self._paused and cfg.resume_frames > 0:
            if self._run >= cfg.resume_frames:
                self.last_speech_frame = self.frames  # speech again: the pause is over
                self._paused = False
        elif p >= (cfg.resume_probability if self._paused else cfg.hold_probability):
            self.last_speech_frame = self.frames
            self._paused = False
        else:
            self._paused = True
        if p >= cfg.speech_probability:
            self._speech += 1
