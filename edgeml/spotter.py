"""The keyword spotter: the model's window every 250 ms, its score, and the decision.

    Audio --window ending at each hop--> EdgeML (.eim) --score--> KeywordDetector --> Detection

Windows advance by 250 ms (Edge Impulse's continuous-mode stride: a quarter of a 1 s window).
A keyword stays inside a window for several hops, so the raw scores cross the threshold
several times per utterance. The detector optionally averages the last k scores (fewer false
triggers from one odd window, at the cost of (k-1) hops of latency), then ignores the keyword
for a refractory period after each detection so one utterance triggers once.

Where the keyword ENDS is not where the spotter fired: a model may fire on part of the keyword
(a two-word keyword after its first word) or a hop after it. After a detection the spotter
therefore goes on classifying the next hops while the score still rises or holds (at most one
window's worth, `track_seconds`), takes the earliest window that reaches the peak score, and
narrows that down between two hops with a few extra windows `probe_seconds` apart: the
keyword is complete in the first window that scores as high as the best one. That estimate
(`Detection.keyword_end_index`) is what the recorder starts from; the VAD's pause after it
(recorder.py) places the cut. These extra calls happen once per detection, not per hop. A model
that decides over several positions (a kwtrain model scores the lowest of its last three, 240 ms
apart) first peaks that long after the keyword ended, and says so in its hello
(`keyword_delay_seconds`): the estimate is moved back by it. Without that, a sentence's short
first word said at once sits where the spotter thinks the keyword ends, and the cut takes it.

A live source that gets ahead of the spotter by more than `max_lag_seconds` (the model was
slow, the machine busy) is caught up by skipping to live audio: a keyword assistant must react
to what is said now, not to a backlog.
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from edgeml.audio import Audio, InputEnded, Overrun
from edgeml.audioformat import SAMPLE_RATE
from edgeml.edgeml import EdgeML

log = logging.getLogger("edgeml.spotter")

HOP_SECONDS = 0.25
DEFAULT_THRESHOLD = 0.85  # the write-up's value, for models that state no threshold of their own


@dataclass(frozen=True)
class DetectorConfig:
    keyword: str = "listen"
    threshold: float | None = None  # None: the threshold the model states, else DEFAULT_THRESHOLD
    average_windows: int = 1  # k: average the score over the last k windows
    refractory_seconds: float = 1.0
    max_lag_seconds: float = 1.0  # a live input further ahead than this is skipped to
    track_seconds: float = 1.0  # after a detection, follow the score this long at most
    peak_tolerance: float = 0.05  # a window within this of the best score counts as the peak
    probe_seconds: float = 0.05  # spacing of the extra windows between two hops


class KeywordNotInModel(ValueError):
    """The keyword asked for is not one of the model's labels."""


@dataclass(frozen=True)
class Detection:
    """The keyword was heard in the window that ends at sample `end_index`."""

    score: float  # the (averaged) score that crossed the threshold
    end_index: int
    keyword_end_index: int | None = None  # where the keyword is complete (see the docstring)
    peak_score: float | None = None
    window_samples: int | None = None  # the model's window: the keyword lies inside it

    @property
    def keyword_end(self) -> int:
        """The best estimate of the keyword's end (the detection point without tracking)."""
        return self.end_index if self.keyword_end_index is None else self.keyword_end_index


class KeywordDetector:
    """Feed (score, window end) pairs in stream order; get a Detection when the keyword fires."""

    def __init__(self, config: DetectorConfig, sample_rate: int = SAMPLE_RATE) -> None:
        if config.threshold is None:
            config = replace(config, threshold=DEFAULT_THRESHOLD)
        if not 0.0 < config.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {config.threshold}")
        if config.average_windows < 1:
            raise ValueError(f"average_windows must be >= 1, got {config.average_windows}")
        self.config = config
        self._recent: deque[float] = deque(maxlen=config.average_windows)
        self._refractory = int(config.refractory_seconds * sample_rate)
        self._last_detection: int | None = None

    def reset(self) -> None:
        """Forget the score history (after a recording, the next windows start fresh)."""
        self._recent.clear()

    def update(self, score: float, end_index: int) -> Detection | None:
        self._recent.append(float(score))
        if len(self._recent) < self._recent.maxlen:
            return None
        mean = sum(self._recent) / len(self._recent)
        if mean < self.config.threshold:
            return None
        if self._last_detection is not None and end_index - self._last_detection < self._refractory:
            return None
        self._last_detection = end_index
        return Detection(score=mean, end_index=end_index)


@dataclass(frozen=True)
class Window:
    """The model's input window, ending at absolute sample `end_index`."""

    samples: np.ndarray
    end_index: int


def model_label(keyword: str, labels: tuple[str, ...]) -> str:
    """The model's own spelling of `keyword` (labels compare case-insensitively). When the
    keyword is the default one (no --keyword given) and not in the model, a model with exactly
    one keyword label (the others unknown/noise/silence-like) uses that one: a `computer.eim`
    runs without --keyword. (The default cannot be told from an explicit `--keyword listen`
    here; for a model without 'listen' both now mean its only keyword, and the log says so.)"""
    for label in labels:
        if label.lower() == keyword.lower():
            return label
    not_keywords = {"unknown", "noise", "silence", "background", "other", "none", "negative"}
    keywords = [x for x in labels if x.strip("_").lower().split("_")[0] not in not_keywords]
    if keyword == DetectorConfig.keyword and len(keywords) == 1:
        _log_only_keyword(keywords[0])
        return keywords[0]
    raise KeywordNotInModel(
        f"keyword {keyword!r} is not a label of the model (labels: {', '.join(labels)}); "
        "pass --keyword"
    )


@functools.lru_cache(maxsize=16)
def _log_only_keyword(label: str) -> None:
    """Said once per label (the label is looked up at start and again by the spotter)."""
    log.info("keyword %r (the model's only keyword)", label)


def resolve_threshold(given: float | None, stated: float | None) -> float:
    """--threshold when given; else the model's own (a kwtrain embedding model states the one
    calibrated for at most 1 false wake per hour); else the write-up's 0.85."""
    if given is not None:
        return given
    if stated is not None:
        log.info("keyword threshold %.3f (stated by the model)", stated)
        return stated
    return DEFAULT_THRESHOLD


class KeywordSpotter:
    """Reads the capture stream in hops, asks the model, returns when the keyword is heard."""

    def __init__(self, audio: Audio, model: EdgeML, config: DetectorConfig | None = None) -> None:
        self.audio = audio
        self.model = model
        self.config = config or DetectorConfig()
        self.label = model_label(self.config.keyword, model.info.labels)
        self.threshold = resolve_threshold(self.config.threshold, model.info.threshold)
        self.detector = KeywordDetector(replace(self.config, threshold=self.threshold))
        self.skipped_samples = 0  # audio jumped over because the spotter fell behind
        self._raw: deque[tuple[int, float]] = deque(maxlen=self.config.average_windows)

    def listen(self, start_index: int | None = None) -> Detection:
        """Classify windows from `start_index` (default: now for a live source, where the last
        read stopped for a file) until the keyword is heard.

        Raises what Audio.read raises (Stopped, AudioStalled, InputEnded) and ModelCrashed.
        """
        detection = self._listen(start_index, None)
        assert detection is not None  # unbounded: windows() ends only by raising
        return detection

    def scan(self, start_index: int, until: int) -> Detection | None:
        """listen() over the windows ending in (start_index, until] only: None when the keyword
        is not heard there. The app asks this of the audio where speech resumed after a
        recording: a keyword there is a new turn, not a continuation (main.py)."""
        try:
            return self._listen(start_index, until)
        except InputEnded:  # the input ended inside the span: no keyword there
            return None

    def _listen(self, start_index: int | None, until: int | None) -> Detection | None:
        window_samples = round(self.model.info.window_seconds * SAMPLE_RATE)
        for window in self.windows(window_samples, start_index):
            if until is not None and window.end_index > until:
                return None
            score = self._score(window.samples)
            self._raw.append((window.end_index, score))
            detection = self.detector.update(score, window.end_index)
            if detection is not None:
                detection = self.track(detection, window_samples)
                detection = replace(detection, window_samples=window_samples)
                log.info(
                    "keyword %r heard at %.2f s of the input (score %.2f, ends %.2f s after the "
                    "detection point)", self.label, detection.end_index / SAMPLE_RATE,
                    detection.score, (detection.keyword_end - detection.end_index) / SAMPLE_RATE,
                )  # fmt: skip
                return detection
        return None  # unreachable: windows() ends only by raising

    def _score(self, samples: np.ndarray) -> float:
        return float(self.model.classify(samples, SAMPLE_RATE).get(self.label, 0.0))

    def track(self, detection: Detection, window_samples: int) -> Detection:
        """Follow the score over the next hops to where the keyword is complete (docstring).

        Stops when the score falls below the threshold or clearly below its best so far, after
        `track_seconds`, or when the input ends (a file: what was seen is used)."""
        cfg = self.config
        # the windows that made the detection (one unless averaging; the detection itself when
        # the caller fed the detector directly)
        seen = list(self._raw) or [(detection.end_index, detection.score)]
        hops = int(round(cfg.track_seconds / HOP_SECONDS))
        try:
            for k, window in enumerate(self.windows(window_samples, detection.end_index)):
                score = self._score(window.samples)
                seen.append((window.end_index, score))
                best = max(s for _, s in seen)
                if score < self.threshold or score < best - cfg.peak_tolerance or k + 1 >= hops:
                    break
        except InputEnded:
            pass
        best = max(s for _, s in seen)
        first = next(end for end, s in seen if s >= best - cfg.peak_tolerance)
        end = self._probe_before(first, best, window_samples) - self._delay_samples()
        end = max(end, detection.end_index - window_samples)  # the keyword is in the window
        return replace(detection, keyword_end_index=end, peak_score=round(best, 4))

    def _delay_samples(self) -> int:
        """How long after the keyword's end the model's score peaks, as the model states it
        (ModelInfo.keyword_delay_seconds; 0 for a model that states nothing)."""
        return round(self.model.info.keyword_delay_seconds * SAMPLE_RATE)

    def _probe_before(self, end: int, best: float, window_samples: int) -> int:
        """The earliest window end in the hop before `end` whose score is near `best`."""
        hop = int(HOP_SECONDS * SAMPLE_RATE)
        step = max(1, int(self.config.probe_seconds * SAMPLE_RATE))
        for probe in range(end - hop + step, end, step):
            if probe - window_samples < self.audio.oldest:
                continue
            try:
                samples = self.audio.read(probe - window_samples, window_samples)
            except (Overrun, InputEnded):
                continue
            if self._score(samples) >= best - self.config.peak_tolerance:
                return probe
        return end

    def reset(self) -> None:
        """After a recording: the next windows start a fresh score history."""
        self.detector.reset()
        self._raw.clear()

    def windows(self, size: int, start_index: int | None = None) -> Iterator[Window]:
        """Windows of `size` samples, one per hop, the first ending after `start_index`.

        Windows end on the stream's own grid (multiples of the hop since its first sample),
        wherever listening resumes: where a recording happened to end then does not move the
        hops over the next keyword. A keyword whose score sits at the threshold's margin is
        heard or missed by the grid's phase alone, so without the anchor two versions of the
        recorder that end recordings a few chunks apart are heard differently on the same
        audio, and the chain's benchmark compares hop phases instead of recorders."""
        audio = self.audio
        hop = int(HOP_SECONDS * SAMPLE_RATE)
        max_lag = int(self.config.max_lag_seconds * SAMPLE_RATE)
        if start_index is None:
            start_index = audio.end if audio.live else audio.position
        end = _grid_floor(start_index, hop)
        while True:
            end += hop
            if audio.live and audio.end - end > max_lag:
                self.skipped_samples += audio.end - end
                log.debug("spotter behind by %.2f s: skipping", (audio.end - end) / SAMPLE_RATE)
                end = _grid_floor(audio.end, hop)
            try:
                samples = audio.read(end - size, size)
            except Overrun as exc:
                log.warning("audio overwritten before it was read: skipping to live audio")
                end = _grid_floor(max(exc.oldest + size, audio.end), hop)
                continue
            yield Window(samples=samples, end_index=end)


def _grid_floor(index: int, hop: int) -> int:
    """The last hop boundary of the stream at or before `index`."""
    return index - index % hop
