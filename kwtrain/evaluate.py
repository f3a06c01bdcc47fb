"""Evaluate a keyword model the way the edge app uses it: a 1 s window every 250 ms.

Each clip is put in a quiet stream (0.75 s before and after, a -60 dBFS noise floor under it
all), so a 1 s clip is seen at several offsets, as a word in a live stream is; the window slides over it with the runner's hop, and the clip
counts as *detected* (keyword clips) or as a *false alarm* (anything else) when any window's
keyword score reaches the threshold. Consecutive windows over the threshold are one trigger.

Scoring goes through the real Edge Impulse SDK (`ImpulseRunner` driving the .eim as a
subprocess) by default, or in-process with the same numpy code (`fast=True`) for speed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgeml.audioformat import SAMPLE_RATE
from kwtrain import noise
from kwtrain.clips import to_int16_values, windows
from kwtrain.dataset import read_clip
from kwtrain.mfcc.runtime import KeywordImpulse, KeywordModel
from kwtrain.report import threshold_table

HOP_SECONDS = 0.25  # the SDK's AudioImpulseRunner: 4 windows per second
PAD_SECONDS = 0.75
PAD_DBFS = -60.0

Scorer = Callable[[np.ndarray], np.ndarray]  # (n, window) float audio -> (n,) keyword scores


class InProcessScorer:
    """Scores with the model's numpy code, no subprocess (same maths as the .eim)."""

    def __init__(self, model: KeywordModel | Path, keyword: str | None = None) -> None:
        from kwtrain.mfcc.export import read_model

        if not isinstance(model, KeywordModel):
            path = Path(model)
            model = KeywordModel.load(path) if path.suffix == ".npz" else read_model(path)
        self.impulse = KeywordImpulse(model)
        self.keyword = keyword or model.keyword
        self.index = model.labels.index(self.keyword)
        self.window = model.mfcc.window_samples

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        return self.impulse.scores(to_int16_values(audio))[:, self.index]

    def close(self) -> None:
        pass


class SdkScorer:
    """Scores by driving the .eim through edge_impulse_linux's ImpulseRunner (real protocol)."""

    def __init__(self, eim: Path, keyword: str | None = None) -> None:
        from edge_impulse_linux.runner import ImpulseRunner

        self.runner = ImpulseRunner(str(Path(eim).resolve()))
        info = self.runner.init()
        params = info["model_parameters"]
        self.labels = params["labels"]
        self.window = params["input_features_count"]
        self.keyword = keyword or self.labels[0]
        if self.keyword not in self.labels:
            self.close()
            raise ValueError(f"the model has no label '{self.keyword}' (labels: {self.labels})")

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        out = []
        for w in to_int16_values(audio).astype(np.int32):
            res = self.runner.classify(w.tolist())
            out.append(res["result"]["classification"][self.keyword])
        return np.asarray(out)

    def close(self) -> None:
        self.runner.stop()


def padded(audio: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """The clip inside a quiet stream: pink noise at -60 dBFS before, under and after it.

    A live microphone never delivers exact digital silence; the floor under the clip makes a
    generated clip (which has exact zeros around the word) sound like one heard in a room.
    """
    pad = int(PAD_SECONDS * rate)
    stream = np.concatenate([np.zeros(pad), audio, np.zeros(pad)]).astype(np.float32)
    return stream + noise.make("pink", len(stream), rate, PAD_DBFS, rng)


def stream_scores(score: Scorer, audio: np.ndarray, window: int, rate: int) -> np.ndarray:
    return score(windows(audio, window, int(HOP_SECONDS * rate)))


def triggers(scores: np.ndarray, threshold: float) -> list[int]:
    """Indices of windows that start a trigger (runs of windows >= threshold count once)."""
    over = np.asarray(scores) >= threshold
    return [i for i in range(len(over)) if over[i] and (i == 0 or not over[i - 1])]


@dataclass
class ClipResult:
    path: str
    category: str
    max_score: float
    scores: list[float]


def score_clips(
    score: Scorer,
    clips: Iterable[tuple[Path, str]],
    window: int,
    rate: int = SAMPLE_RATE,
    seed: int = 0,
) -> list[ClipResult]:
    """Max keyword score over the sliding windows of every (path, category) clip."""
    rng = np.random.default_rng(seed)
    results = []
    clips = list(clips)
    for path, category in tqdm(clips, desc="scoring clips", unit="clip", disable=len(clips) < 50):
        audio = padded(read_clip(path, rate), rate, rng)
        s = stream_scores(score, audio, window, rate)
        results.append(ClipResult(str(path), category, float(s.max()), [float(v) for v in s]))
    return results


def summarize(results: list[ClipResult], positive: str = "keyword") -> dict:
    """Threshold tables: keyword clips against each negative category and all negatives."""
    pos = np.asarray([r.max_score for r in results if r.category == positive])
    cats = sorted({r.category for r in results} - {positive})
    out = {
        "positive_category": positive,
        "clips": {c: sum(r.category == c for r in results) for c in [positive, *cats]},
        "all_negatives": threshold_table(
            pos, np.asarray([r.max_score for r in results if r.category != positive])
        ),
    }
    for c in cats:
        out[c] = threshold_table(pos, np.asarray([r.max_score for r in results if r.category == c]))
    return out


def best_threshold(
    results: list[ClipResult], max_false_alarm_rate: float, positive: str = "keyword"
):
    """The threshold with the most detections whose false-alarm rate stays within the limit."""
    pos = np.asarray([r.max_score for r in results if r.category == positive])
    neg = np.asarray([r.max_score for r in results if r.category != positive])
    best = None
    for t in np.unique(np.concatenate([pos, neg, [0.5, 0.85, 0.99]])):
        fa = float((neg >= t).mean()) if neg.size else 0.0
        det = float((pos >= t).mean()) if pos.size else 0.0
        if fa <= max_false_alarm_rate and (best is None or det > best["detection_rate"]):
            best = {"threshold": float(t), "detection_rate": det, "false_alarm_rate": fa}
    return best
