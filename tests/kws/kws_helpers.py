"""Keyword models with known weights and speech-like test windows, for the kws tests (imported by
name; not a conftest, so that no two test folders share a module name)."""

from __future__ import annotations

import numpy as np

from kwtrain.embedding.head import EmbeddingModel, HeadSpec
from kwtrain.mfcc.features import MfccConfig
from kwtrain.mfcc.network import NetSpec
from kwtrain.mfcc.runtime import KeywordModel

LABELS = ["listen", "noise", "unknown"]


def random_model(channels: tuple[int, ...] = (8, 16), seed: int = 0) -> KeywordModel:
    """A model with random weights (scaled so that the scores are not all ~1/3)."""
    rng = np.random.default_rng(seed)
    spec = NetSpec(channels=channels, num_labels=len(LABELS))
    weights: dict[str, np.ndarray] = {}
    in_ch = spec.num_cepstral
    for i, out_ch in enumerate(channels):
        weights[f"conv{i + 1}.weight"] = rng.normal(0, 0.4, (out_ch, in_ch, spec.kernel_size))
        weights[f"conv{i + 1}.bias"] = rng.normal(0, 0.1, out_ch)
        in_ch = out_ch
    weights["dense.weight"] = rng.normal(0, 0.2, (len(LABELS), spec.flat_size()))
    weights["dense.bias"] = rng.normal(0, 0.1, len(LABELS))
    return KeywordModel(
        labels=LABELS,
        mfcc=MfccConfig(),
        net=spec,
        weights={k: v.astype(np.float32) for k, v in weights.items()},
        name="test-model",
        keyword="listen",
    )


def windows_of_speechlike(n: int, seed: int = 0) -> np.ndarray:
    """(n, 16000) int16-valued windows with tones, glides and noise (not just white noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    out = []
    for _ in range(n):
        f0 = rng.uniform(90, 250) * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        env = np.exp(-((t - rng.uniform(0.2, 0.8)) ** 2) / rng.uniform(0.005, 0.05))
        x = rng.uniform(2000, 12000) * env * sum(np.sin(k * phase) / k for k in range(1, 9))
        out.append(np.clip(np.round(x + rng.normal(0, 100, 16000)), -32768, 32767))
    return np.stack(out)


def random_head(
    stride: int = 16, context: int = 8, seed: int = 0, threshold: float = 0.7
) -> EmbeddingModel:
    """A speech-embedding head with random weights (for export and SDK tests)."""
    rng = np.random.default_rng(seed)
    spec = HeadSpec(context=context, stride=stride, hidden=16, layers=2)
    w = {}
    size = context * 96
    for i in range(spec.layers):
        w[f"fc{i}.weight"] = rng.normal(0, 1 / np.sqrt(size), (16, size)).astype(np.float32)
        w[f"fc{i}.bias"] = np.zeros(16, np.float32)
        w[f"ln{i}.weight"] = np.ones(16, np.float32)
        w[f"ln{i}.bias"] = np.zeros(16, np.float32)
        size = 16
    w["out.weight"] = rng.normal(0, 1.0, (1, 16)).astype(np.float32)
    w["out.bias"] = np.zeros(1, np.float32)
    return EmbeddingModel(keyword="listen", spec=spec, weights=w, threshold=threshold)
