"""Streaming evaluation on real audio, the Picovoice way: miss rate against false wakes per hour.

Keyword clips: each clip inside a stream (a window's worth of lead-in, 1 s of background, the
clip, 1 s of background), clean (a -60 dBFS pink floor) or mixed with a real noise bed at a
given SNR (signal and noise power over the whole clip, as Picovoice's benchmark mixes). A clip
is detected when a window ending in the 1 s before, during or in the 1 s after it scores at or
over the threshold. Background: files streamed back to back; false wakes = rising edges over
the threshold (the app's 1 s refractory time), per hour of audio.

Scorers take a stream and return one score per 250 ms hop (windows ending at `lead + h * hop`):
`SdkStreamScorer` drives any .eim through edge_impulse_linux's ImpulseRunner (the real
protocol, the whole window every hop), `EmbeddingStreamScorer` computes the same in-process
from embeddings (for training-time calibration and quick experiments).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from edgeml.audioformat import read_audio
from kwtrain import noise as noisegen
from kwtrain.embedding.train import (
    count_triggers,
    lowest_threshold,
    rms,
    stream_hops,
    to_int16_values,
)

RATE = 16000
HOP = RATE // 4
LEAD = 36000  # audio before the first scored window end: the longest window (2.25 s)
PAD = RATE  # 1 s of background before and after a clip


def keyword_stream(
    clip: np.ndarray, bed: np.ndarray | None, snr_db: float | None, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """(stream, index of the first scored window end). bed None = clean (pink floor)."""
    n = LEAD + PAD + len(clip) + PAD
    speech = np.zeros(n, np.float32)
    speech[LEAD + PAD : LEAD + PAD + len(clip)] = clip
    if bed is None:
        out = speech + noisegen.make("pink", n, RATE, -60.0, rng)
    else:
        if len(bed) < n:
            bed = np.tile(bed, n // len(bed) + 1)
        st = int(rng.integers(0, len(bed) - n + 1))
        seg = bed[st : st + n].astype(np.float32)
        part = seg[LEAD + PAD : LEAD + PAD + len(clip)]
        gain = rms(clip) / (rms(part) + 1e-9) * 10 ** (-snr_db / 20)
        out = speech + gain * seg
    peak = np.max(np.abs(out))
    if peak > 0.999:
        out = out * (0.999 / peak)
    return out.astype(np.float32), LEAD


class SdkStreamScorer:
    """Scores through the real SDK: ImpulseRunner(eim).classify(window) every 250 ms."""

    def __init__(self, eim: Path, label: str | None = None) -> None:
        from edge_impulse_linux.runner import ImpulseRunner

        bindir = os.path.dirname(sys.executable)  # the .eim runs with this interpreter's numpy
        if not os.environ.get("PATH", "").startswith(bindir):
            os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        self.runner = ImpulseRunner(str(Path(eim).resolve()))
        info = self.runner.init()
        self.params = info["model_parameters"]
        self.window = int(self.params["input_features_count"])
        self.label = label or self.params["labels"][0]
        self.threshold = self.params.get("keyword_threshold")
        self.pid = self.runner._runner.pid

    def __call__(self, stream: np.ndarray, first_end: int) -> np.ndarray:
        x = to_int16_values(stream).astype(np.int32)
        out = []
        for end in range(first_end, len(x) + 1, HOP):
            w = x[end - self.window : end]
            if len(w) < self.window:
                w = np.concatenate([np.zeros(self.window - len(w), np.int32), w])
            res = self.runner.classify(w.tolist())
            out.append(res["result"]["classification"][self.label])
        return np.asarray(out, np.float32)

    def close(self) -> None:
        self.runner.stop()


class EmbeddingStreamScorer:
    """In-process: the same hop scores from the model's numpy head and the front end.

    With `cache` (a folder), the embeddings of each stream are kept by the stream's content,
    so that many heads can be scored on the same streams at the cost of the head alone."""

    def __init__(self, model, front=None, cache: Path | None = None) -> None:
        from kwtrain.embedding.frontend import FrontEnd
        from kwtrain.embedding.onnxparts import runtime_files

        self.model = model
        self.front = front or FrontEnd(runtime_files())
        self.window = model.window_samples
        self.threshold = model.threshold
        self.cache = Path(cache) if cache else None

    def _embeddings(self, x: np.ndarray) -> np.ndarray:
        if self.cache is None:
            return self.front.embeddings(x)
        from kwtrain.embedding.frontend import FEATURES_VERSION

        key = hashlib.sha1(x.tobytes() + FEATURES_VERSION.encode()).hexdigest()[:24]
        f = self.cache / f"{key}.npy"
        if f.is_file():
            return np.load(f)
        emb = self.front.embeddings(x)
        self.cache.mkdir(parents=True, exist_ok=True)
        np.save(f, emb)
        return emb

    def __call__(self, stream: np.ndarray, first_end: int) -> np.ndarray:
        start = first_end - self.window  # the .eim's grid starts at its first window
        x = to_int16_values(stream[start:])
        emb = self._embeddings(x)
        h = stream_hops(self.model, emb, len(x), offset=self.window)
        return np.nan_to_num(h[: (len(x) - self.window) // HOP + 1], nan=0.0)

    def close(self) -> None:
        pass


def background_streams(files: list[Path], chunk_seconds: float = 600.0) -> list[np.ndarray]:
    """The files back to back, cut into streams of about `chunk_seconds` (bounded memory)."""
    out, cur, n = [], [], 0
    for f in files:
        a = read_audio(f)
        cur.append(a)
        n += len(a)
        if n >= chunk_seconds * RATE:
            out.append(np.concatenate(cur))
            cur, n = [], 0
    if cur:
        out.append(np.concatenate(cur))
    return out


def score_background(scorer, streams: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """Hop scores of each stream (lead-in of one window of silence floor) and the hours."""
    rng = np.random.default_rng(0)
    hops, seconds = [], 0.0
    for s in streams:
        lead = noisegen.make("pink", LEAD, RATE, -60.0, rng)
        x = np.concatenate([lead, s]).astype(np.float32)
        hops.append(scorer(x, LEAD))
        seconds += len(s) / RATE
    return hops, seconds / 3600


def fa_per_hour(hop_lists: list[np.ndarray], hours: float, threshold: float) -> float:
    return sum(count_triggers(h, threshold) for h in hop_lists) / max(hours, 1e-9)


def threshold_for_fa(hop_lists: list[np.ndarray], hours: float, max_fa_per_hour: float) -> float:
    """The lowest threshold with at most `max_fa_per_hour` false wakes per hour on the streams."""
    return lowest_threshold(hop_lists, int(np.floor(max_fa_per_hour * hours + 1e-9)))


def miss_rate(max_scores: np.ndarray, threshold: float) -> float:
    return float((np.asarray(max_scores) < threshold).mean()) if len(max_scores) else float("nan")


def curve(max_scores: np.ndarray, hop_lists: list[np.ndarray], hours: float, points: int = 60):
    """(false wakes per hour, miss rate) pairs over thresholds, for the plot."""
    cand = np.unique(np.concatenate([np.asarray(max_scores), *hop_lists]))
    qs = np.unique(np.quantile(cand, np.linspace(0, 1, points) ** 0.3))
    out = []
    for t in qs:
        out.append((fa_per_hour(hop_lists, hours, float(t)), miss_rate(max_scores, float(t))))
    return out
