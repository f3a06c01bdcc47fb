"""The keyword network's forward pass in numpy: what runs inside an exported .eim.

The architecture is Edge Impulse Studio's default for keyword spotting on MFCC features:

    Reshape to (frames, 13 coefficients)
    Conv1D(8, kernel 3, same, ReLU) -> MaxPool1D(2, same) -> Dropout(0.25)
    Conv1D(16, kernel 3, same, ReLU) -> MaxPool1D(2, same) -> Dropout(0.25)
    Flatten (time-major, as Keras) -> Dense(labels, softmax)

Training happens in torch (`kwtrain.mfcc.train`); this module only needs the weights, stored under
torch's parameter names (`conv1.weight` (out, in, k), ...), so the device needs numpy only.
Dropout is the identity at inference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class NetSpec:
    """Shape of the network: feature layout in, channels per conv layer, labels out."""

    num_frames: int = 50
    num_cepstral: int = 13
    channels: tuple[int, ...] = (8, 16)
    kernel_size: int = 3
    num_labels: int = 3
    dropout: float = 0.25

    def to_dict(self) -> dict:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, data: dict) -> NetSpec:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["channels"] = tuple(fields.get("channels", cls.channels))
        return cls(**fields)

    def pooled_frames(self) -> int:
        """Time steps left after each 'same' max-pool of 2 (ceil division)."""
        t = self.num_frames
        for _ in self.channels:
            t = -(-t // 2)
        return t

    def flat_size(self) -> int:
        return self.pooled_frames() * self.channels[-1]


def conv1d_same(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(B, T, Cin) * (Cout, Cin, K) -> (B, T, Cout), zero 'same' padding (odd K)."""
    k = weight.shape[-1]
    pad = k // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, k, axis=1)  # (B, T, Cin, K)
    return np.einsum("btck,ock->bto", windows, weight, optimize=True) + bias


def maxpool2_same(x: np.ndarray) -> np.ndarray:
    """Max-pool 2 with stride 2 over time; an odd last step is pooled alone (Keras 'same')."""
    if x.shape[1] % 2:
        x = np.concatenate([x, np.full_like(x[:, :1], -np.inf)], axis=1)
    return x.reshape(x.shape[0], x.shape[1] // 2, 2, x.shape[2]).max(axis=2)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def forward(spec: NetSpec, weights: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    """Class probabilities for (num_features,) or (B, num_features) flattened MFCCs."""
    x = np.asarray(features, dtype=np.float32)
    single = x.ndim == 1
    x = x.reshape(-1, spec.num_frames, spec.num_cepstral)
    for i in range(len(spec.channels)):
        x = conv1d_same(x, weights[f"conv{i + 1}.weight"], weights[f"conv{i + 1}.bias"])
        x = maxpool2_same(np.maximum(x, 0.0))
    logits = x.reshape(x.shape[0], -1) @ weights["dense.weight"].T + weights["dense.bias"]
    probs = softmax(logits)
    return probs[0] if single else probs
