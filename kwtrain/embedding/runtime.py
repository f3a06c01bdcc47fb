"""The .eim side of an embedding keyword model: streaming front end + head, numpy + onnxruntime.

At every classify the runner gets the whole window (`window_samples` int16 values). The
`StreamingEmbedder` reuses the mel frames and embeddings of the previous window when this one
continues it, so a 250 ms hop costs about 3 new embeddings instead of 19. The keyword score is
the highest head score among the grid positions that end within the window's last hop
(`slice_size` samples), so no position of a continuous stream goes unscored; with
`consecutive` k > 1 a position scores the lowest of its last k positions. Those reach further
back than one window holds (k = 3: 480 ms before the newest position, whose context already
fills the window), so the head scores of the last k positions are kept across windows that
continue each other, on the embedder's grid; after a reset (a window that does not continue the
previous one) a position with fewer than k - 1 predecessors seen scores nothing, as in the
trainer's calibration (`embedding.train.consecutive_min`).
"""

from __future__ import annotations

import time
from importlib import resources

import numpy as np

from kwtrain.eim_server import Classification, audio_model_parameters, project_info
from kwtrain.embedding.frontend import MEL_HOP, FrontEnd, StreamingEmbedder
from kwtrain.embedding.head import EmbeddingModel
from kwtrain.embedding.onnxfiles import RUNTIME_FILES

PACKAGED_MODEL = "embedding_head.npz"
HOP_SAMPLES = 4000  # the runner's 250 ms hop at 16 kHz
MEL_HOP_SECONDS = MEL_HOP / 16000  # the front end's 10 ms mel frames (the stride counts them)


class EmbeddingImpulse:
    """The `eim_server.Impulse` of an embedding model."""

    def __init__(self, model: EmbeddingModel, files: dict[str, bytes]) -> None:
        """`files`: the front end's three runtime files (onnxfiles.RUNTIME_FILES)."""
        self.model = model
        self.front = FrontEnd(files, threads=1)
        self.hop = HOP_SAMPLES * model.sample_rate // 16000
        self.stream = StreamingEmbedder(self.front, stride=model.spec.stride, hop=self.hop)
        self._raw: dict[int, float] = {}  # grid position (since the last reset) -> head score
        self._resets = 0
        params = audio_model_parameters(
            model.labels,
            frequency=model.sample_rate,
            window_samples=model.window_samples,
            slices_per_window=max(1, model.window_samples // self.hop),
            thresholds=[{"id": 1, "type": "classification", "min_score": model.threshold}],
        )
        params["slice_size"] = self.hop
        params["keyword_threshold"] = model.threshold  # read by EdgeML when --threshold is unset
        params["keyword_delay_seconds"] = keyword_delay_seconds(model)  # read by the spotter
        self._hello = {"project": project_info(model.name), "model_parameters": params}

    def hello(self) -> dict:
        return self._hello

    def score(self, window: np.ndarray) -> tuple[float, float, float]:
        """(keyword score, front-end seconds, head seconds) of one window."""
        t0 = time.perf_counter()
        emb, ends, _ = self.stream.update(window)
        t1 = time.perf_counter()
        if self.stream.stats["reset"] != self._resets:  # the grid starts again
            self._resets = self.stream.stats["reset"]
            self._raw.clear()
        k = int(self.model.info.get("consecutive", 1))
        first = self.model.spec.span - 1  # positions with their whole context inside the window
        idx = np.arange(first, len(emb))
        if idx.size == 0:
            return 0.0, t1 - t0, 0.0
        recent = idx[ends[idx] > -self.hop]
        if recent.size == 0:
            recent = idx[-1:]
        base = self.stream.first_position
        todo = [int(i) for i in idx if base + int(i) not in self._raw]
        if todo:
            for i, v in zip(todo, self.model.scores_at(emb, np.asarray(todo)), strict=True):
                self._raw[base + i] = float(v)
        newest = base + int(recent[-1])
        for p in [p for p in self._raw if p <= newest - max(k, len(idx)) - 1]:
            del self._raw[p]  # only the last positions can still be asked for
        best = None
        for i in recent:
            ps = [self._raw.get(base + int(i) - j) for j in range(k)]
            if all(v is not None for v in ps):
                best = min(ps) if best is None else max(best, min(ps))
        return (0.0 if best is None else best), t1 - t0, time.perf_counter() - t1

    def classify(self, features: np.ndarray) -> Classification:
        s, fe_s, head_s = self.score(np.asarray(features, dtype=np.float32))
        scores = {self.model.labels[0]: s}
        for label in self.model.labels[1:]:
            scores[label] = (1.0 - s) / max(1, len(self.model.labels) - 1)
        return Classification(
            scores=scores, dsp_ms=int(fe_s * 1000), classification_ms=int(head_s * 1000)
        )


def keyword_delay_seconds(model: EmbeddingModel) -> float:
    """How long after the keyword's end the score first reaches its peak: a position scores the
    lowest of its last `consecutive` positions, so the first position that scores high comes
    (k - 1) grid strides after the first one that heard the whole keyword (0.48 s for k = 3 and
    240 ms). Stated in the hello so the device places the keyword's end, and so the cut between
    keyword and sentence, where the keyword ended rather than where the decision fell."""
    k = int(model.info.get("consecutive", 1))
    return round(max(0, k - 1) * model.spec.stride * MEL_HOP_SECONDS, 4)


def load_packaged() -> EmbeddingImpulse:
    """The impulse packed next to this module (inside an exported .eim archive, in
    `kwtrain/embedding/`)."""
    pkg = resources.files("kwtrain.embedding")
    model = EmbeddingModel.from_bytes(pkg.joinpath(PACKAGED_MODEL).read_bytes())
    files = {name: pkg.joinpath(name).read_bytes() for name in RUNTIME_FILES}
    return EmbeddingImpulse(model, files)
