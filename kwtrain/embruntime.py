"""The .eim side of an embedding keyword model: streaming front end + head, numpy + onnxruntime.

At every classify the runner gets the whole window (`window_samples` int16 values). The
`StreamingEmbedder` reuses the mel frames and embeddings of the previous window when this one
continues it, so a 250 ms hop costs about 3 new embeddings instead of 19. The keyword score is
the highest head score among the grid positions that end within the window's last hop
(`slice_size` samples), so no position of a continuous stream goes unscored; with
`consecutive` k > 1 a position scores the lowest of its last k positions.
"""

from __future__ import annotations

import time
from importlib import resources

import numpy as np

from kwtrain.eim_server import Classification, audio_model_parameters, project_info
from kwtrain.embedding import RUNTIME_FILES, FrontEnd, StreamingEmbedder
from kwtrain.head import EmbeddingModel

PACKAGED_MODEL = "embedding_head.npz"
HOP_SAMPLES = 4000  # the runner's 250 ms hop at 16 kHz


class EmbeddingImpulse:
    """The `eim_server.Impulse` of an embedding model."""

    def __init__(self, model: EmbeddingModel, files: dict[str, bytes] | None = None) -> None:
        self.model = model
        self.front = FrontEnd(files, threads=1)
        self.hop = HOP_SAMPLES * model.sample_rate // 16000
        self.stream = StreamingEmbedder(self.front, stride=model.spec.stride, hop=self.hop)
        params = audio_model_parameters(
            model.labels,
            frequency=model.sample_rate,
            window_samples=model.window_samples,
            slices_per_window=max(1, model.window_samples // self.hop),
            thresholds=[{"id": 1, "type": "classification", "min_score": model.threshold}],
        )
        params["slice_size"] = self.hop
        params["keyword_threshold"] = model.threshold  # read by EdgeML when --threshold is unset
        self._hello = {"project": project_info(model.name), "model_parameters": params}

    def hello(self) -> dict:
        return self._hello

    def score(self, window: np.ndarray) -> tuple[float, float, float]:
        """(keyword score, front-end seconds, head seconds) of one window."""
        t0 = time.perf_counter()
        emb, ends, _ = self.stream.update(window)
        t1 = time.perf_counter()
        spec = self.model.spec
        k = int(self.model.info.get("consecutive", 1))
        first = spec.span - 1  # positions with their whole context inside the window
        idx = np.arange(first, len(emb))
        if idx.size == 0:
            return 0.0, t1 - t0, 0.0
        recent = idx[ends[idx] > -self.hop]
        if recent.size == 0:
            recent = idx[-1:]
        lo = max(first, int(recent[0]) - (k - 1))
        pos = np.arange(lo, int(recent[-1]) + 1)
        sc = self.model.scores_at(emb, pos)
        if k > 1:
            sc = np.array([sc[max(0, i - k + 1) : i + 1].min() for i in range(len(sc))])
        sel = sc[pos >= recent[0]]
        return float(sel.max()), t1 - t0, time.perf_counter() - t1

    def classify(self, features: np.ndarray) -> Classification:
        s, fe_s, head_s = self.score(np.asarray(features, dtype=np.float32))
        scores = {self.model.labels[0]: s}
        for label in self.model.labels[1:]:
            scores[label] = (1.0 - s) / max(1, len(self.model.labels) - 1)
        return Classification(
            scores=scores, dsp_ms=int(fe_s * 1000), classification_ms=int(head_s * 1000)
        )


def load_packaged() -> EmbeddingImpulse:
    """The impulse packed next to this module (inside an exported .eim archive)."""
    pkg = resources.files("kwtrain")
    model = EmbeddingModel.from_bytes(pkg.joinpath(PACKAGED_MODEL).read_bytes())
    files = {name: pkg.joinpath(name).read_bytes() for name in RUNTIME_FILES}
    return EmbeddingImpulse(model, files)
