"""The keyword decision: from one score per window to "the keyword was said, once".

A keyword stays inside a 1 s window for several 250 ms hops, so the raw scores cross the
threshold several times per utterance. The detector optionally averages the last k scores
(fewer false triggers from one odd window, at the cost of (k-1) hops of latency), then ignores
the keyword for a refractory period after each detection so one utterance triggers once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class DetectorConfig:
    keyword: str = "listen"
    threshold: float = 0.85  # the original's value
    average_windows: int = 1  # k: average the score over the last k windows
    refractory_seconds: float = 1.0


@dataclass(frozen=True)
class Detection:
    """The keyword was heard in the window that ends at sample `end_index`."""

    score: float  # the (averaged) score that crossed the threshold
    end_index: int


class KeywordDetector:
    """Feed (score, window end) pairs in stream order; get a Detection when the keyword fires."""

    def __init__(self, config: DetectorConfig, sample_rate: int = 16000) -> None:
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
