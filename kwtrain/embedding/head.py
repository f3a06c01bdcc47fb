"""The small classifier on top of the frozen speech embedding, and the model file it lives in.

Input: `context` embeddings taken every `step` grid positions (grid = 80 ms), oldest first,
flattened. Network: Linear -> LayerNorm -> ReLU -> Dropout, twice, then one logit; the
keyword score is its sigmoid. Training is torch (developer machine); the device runs the numpy
`forward` below. The model file is an .npz: weights under torch's names plus a `meta` entry
(JSON) with the keyword, labels, context, step, window length and the calibrated threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from kwtrain import modelfile

FORMAT = "kwtrain-embedding/1"


@dataclass(frozen=True)
class HeadSpec:
    context: int = 6  # embeddings the head sees
    step: int = 1  # grid positions between them
    stride: int = 24  # mel frames (10 ms) between grid positions: 24 = 240 ms
    hidden: int = 64
    layers: int = 2
    dim: int = 96

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HeadSpec:
        keys = ("context", "step", "stride", "hidden", "layers", "dim")
        return cls(**{k: d[k] for k in keys if k in d})

    def step_in(self, base_stride: int) -> int:
        """Positions between the head's embeddings on a grid of `base_stride` mel frames."""
        if (self.stride * self.step) % base_stride:
            raise ValueError(f"stride {self.stride} is not a multiple of {base_stride}")
        return self.stride * self.step // base_stride

    def span_in(self, base_stride: int) -> int:
        """Positions from the oldest embedding to the newest, inclusive, on that grid."""
        return (self.context - 1) * self.step_in(base_stride) + 1

    @property
    def span(self) -> int:
        return self.span_in(self.stride)


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def forward(spec: HeadSpec, w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """(n, context, 96) embeddings -> (n,) keyword probabilities."""
    h = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    for i in range(spec.layers):
        h = h @ w[f"fc{i}.weight"].T + w[f"fc{i}.bias"]
        h = _layer_norm(h, w[f"ln{i}.weight"], w[f"ln{i}.bias"])
        h = np.maximum(h, 0.0)
    logit = h @ w["out.weight"].T + w["out.bias"]
    return (1.0 / (1.0 + np.exp(-np.clip(logit[:, 0], -60, 60)))).astype(np.float32)


def build_torch_head(spec: HeadSpec, dropout: float = 0.5):
    import torch
    from torch import nn

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            size = spec.context * spec.dim
            for i in range(spec.layers):
                setattr(self, f"fc{i}", nn.Linear(size, spec.hidden))
                setattr(self, f"ln{i}", nn.LayerNorm(spec.hidden))
                size = spec.hidden
            self.drop = nn.Dropout(dropout)
            self.out = nn.Linear(size, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = x.flatten(1)
            for i in range(spec.layers):
                h = self.drop(torch.relu(getattr(self, f"ln{i}")(getattr(self, f"fc{i}")(h))))
            return self.out(h)[:, 0]

    return Head()


@dataclass
class EmbeddingModel:
    """Everything the .eim needs besides the two front-end ONNX files."""

    keyword: str
    spec: HeadSpec
    weights: dict[str, np.ndarray]
    threshold: float = 0.5
    window_samples: int = 36000
    sample_rate: int = 16000
    name: str = ""
    labels: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.labels:
            self.labels = [self.keyword, "unknown"]
        if not self.name:
            self.name = self.keyword

    def meta(self) -> dict:
        return {
            "format": FORMAT,
            "keyword": self.keyword,
            "labels": self.labels,
            "name": self.name,
            "head": self.spec.to_dict(),
            "threshold": float(self.threshold),
            "window_samples": int(self.window_samples),
            "sample_rate": int(self.sample_rate),
            "info": self.info,
        }

    def to_bytes(self) -> bytes:
        return modelfile.pack(self.meta(), self.weights)

    def save(self, path: Path) -> Path:
        return modelfile.write(path, self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> EmbeddingModel:
        meta, weights = modelfile.unpack(data)
        if meta.get("format") != FORMAT:
            raise ValueError(f"not a kwtrain embedding model (format {meta.get('format')!r})")
        return cls(
            keyword=meta["keyword"],
            spec=HeadSpec.from_dict(meta["head"]),
            weights=weights,
            threshold=float(meta["threshold"]),
            window_samples=int(meta["window_samples"]),
            sample_rate=int(meta.get("sample_rate", 16000)),
            name=meta.get("name", ""),
            labels=list(meta["labels"]),
            info=meta.get("info", {}),
        )

    @classmethod
    def load(cls, path: Path) -> EmbeddingModel:
        return cls.from_bytes(Path(path).read_bytes())

    def scores_at(
        self, emb: np.ndarray, positions: np.ndarray, base_stride: int | None = None
    ) -> np.ndarray:
        """Head scores for the windows ending at `positions` of an (n, 96) sequence whose
        embeddings are `base_stride` mel frames apart (default: the head's own stride)."""
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size == 0:
            return np.zeros(0, np.float32)
        step = self.spec.step_in(base_stride or self.spec.stride)
        offs = np.arange(-(self.spec.context - 1), 1) * step
        return forward(self.spec, self.weights, emb[positions[:, None] + offs[None, :]])
