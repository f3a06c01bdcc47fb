"""A trained keyword model as an Edge Impulse impulse: features + network, numpy only.

A model is one `.npz` file: the network weights under torch's parameter names, plus a `meta`
entry (JSON bytes) with the labels, the MFCC block's parameters, the network shape and the
project name. The same file is what `train` writes, what `export` packs into a .eim and what
the .eim loads at start-up (from inside its own zip archive).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from kwtrain import modelfile
from kwtrain.eim_server import Classification, audio_model_parameters, project_info
from kwtrain.mfcc.features import Mfcc, MfccConfig
from kwtrain.mfcc.network import NetSpec, forward

PACKAGED_MODEL = "model.npz"  # name of the model inside the exported archive's kwtrain/mfcc/


@dataclass
class KeywordModel:
    """Labels, feature settings, network shape and weights: everything inference needs."""

    labels: list[str]
    mfcc: MfccConfig
    net: NetSpec
    weights: dict[str, np.ndarray]
    name: str = "keyword"
    keyword: str = ""
    info: dict = field(default_factory=dict)  # training summary, carried for --print-info

    def meta(self) -> dict:
        return {
            "format": "kwtrain-model/1",
            "name": self.name,
            "keyword": self.keyword,
            "labels": self.labels,
            "mfcc": self.mfcc.to_dict(),
            "net": self.net.to_dict(),
            "info": self.info,
        }

    def to_bytes(self) -> bytes:
        return modelfile.pack(self.meta(), self.weights)

    def save(self, path: Path) -> Path:
        return modelfile.write(path, self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> KeywordModel:
        meta, weights = modelfile.unpack(data)
        if meta.get("format") != "kwtrain-model/1":
            raise ValueError(f"not a kwtrain model (format {meta.get('format')!r})")
        return cls(
            labels=list(meta["labels"]),
            mfcc=MfccConfig.from_dict(meta["mfcc"]),
            net=NetSpec.from_dict(meta["net"]),
            weights=weights,
            name=meta.get("name", "keyword"),
            keyword=meta.get("keyword", ""),
            info=meta.get("info", {}),
        )

    @classmethod
    def load(cls, path: Path) -> KeywordModel:
        return cls.from_bytes(Path(path).read_bytes())


class KeywordImpulse:
    """The `eim_server.Impulse` of a keyword model: MFCC block + network, timed like EI's."""

    def __init__(self, model: KeywordModel) -> None:
        self.model = model
        self.mfcc = Mfcc(model.mfcc)
        self._hello = {
            "project": project_info(model.name),
            "model_parameters": audio_model_parameters(
                model.labels,
                frequency=model.mfcc.sample_rate,
                window_samples=model.mfcc.window_samples,
            ),
        }

    def hello(self) -> dict:
        return self._hello

    def scores(self, window: np.ndarray) -> np.ndarray:
        """Class probabilities for one window (or a batch) of int16 sample values."""
        return forward(self.model.net, self.model.weights, self.mfcc.flat(window))

    def classify(self, features: np.ndarray) -> Classification:
        t0 = time.perf_counter()
        feats = self.mfcc.flat(features)
        t1 = time.perf_counter()
        probs = forward(self.model.net, self.model.weights, feats)
        t2 = time.perf_counter()
        return Classification(
            # no zip(strict=): the .eim also runs on a Raspberry Pi's Python 3.9
            scores={label: float(p) for label, p in zip(self.model.labels, probs)},  # noqa: B905
            dsp_ms=int((t1 - t0) * 1000),
            classification_ms=int((t2 - t1) * 1000),
        )


def load_packaged() -> KeywordImpulse:
    """The impulse packed next to this module (inside an exported .eim archive, in
    `kwtrain/mfcc/`)."""
    data = resources.files("kwtrain.mfcc").joinpath(PACKAGED_MODEL).read_bytes()
    return KeywordImpulse(KeywordModel.from_bytes(data))
