"""A neural voice activity detector on the device: Silero VAD's ONNX model run with onnxruntime.

    Audio --512-sample chunks (32 ms)--> SileroVAD --P(speech) per chunk--> vad.VoiceEndpointer

Why a neural model: the energy endpointer (vad.Endpointer) compares frame levels with a noise
floor, and real rooms defeat it both ways: rain and thunder stay "10 dB above the floor" after
the speaker has stopped (the recording runs on to --max-seconds), birdsong lifts the floor past
a soft word (the sentence is cut). A model that has learnt what speech sounds like does not care
how loud the background is (docs/benchmarks.md, `bench/endpointing.py`).

Why Silero VAD: measured against pymicro-vad and webrtcvad on real sentences under real noise
beds (the same benchmark), it was the only one that both kept sentences whole and ended them
promptly in noise; it costs about 4 ms of one core per second of audio here, and it runs only
while recording (not while listening for the keyword). The model file is
`edgeml/models/silero_vad.onnx`: `silero_vad/data/silero_vad_16k_op15.onnx` from the
`silero-vad` 6.2.3 wheel on PyPI (MIT licence, `edgeml/models/silero_vad.LICENSE`), copied
because that wheel declares torch as a dependency and the device must not install torch; it is
run here with onnxruntime directly (aarch64 wheels exist), as the wheel's own OnnxWrapper does:
a 64-sample context from the previous chunk is prepended to each 512-sample chunk, and the
recurrent state (2 x 1 x 128) is carried from chunk to chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeml.audioformat import INT16_SCALE, SAMPLE_RATE
from edgeml.onnxmodel import load_session

CHUNK_SAMPLES = 512  # the model's chunk at 16 kHz: 32 ms
CONTEXT_SAMPLES = 64  # samples of the previous chunk the model sees in front of each chunk
MODEL_PATH = Path(__file__).resolve().parent / "models" / "silero_vad.onnx"
MODEL_SHA256 = "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49"


class VadUnavailable(RuntimeError):
    """The neural VAD cannot run here (onnxruntime missing, model file missing or damaged)."""


@dataclass(frozen=True)
class NeuralVadConfig:
    """Which model, and how much of the CPU it may use."""

    model_path: Path = MODEL_PATH
    threads: int = 1  # one core: the keyword model and the capture need the other


class SileroVAD:
    """Streaming speech probability, one value per 32 ms chunk, state carried across calls."""

    def __init__(self, config: NeuralVadConfig | None = None) -> None:
        self.config = config or NeuralVadConfig()
        self._session = load_session(
            Path(self.config.model_path),
            shipped=MODEL_PATH,
            sha256=MODEL_SHA256,
            threads=self.config.threads,
            error=VadUnavailable,
            what="the VAD model",
            hint="--vad energy",
        )
        self._rate = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next chunk is the first of a new stream."""
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, CONTEXT_SAMPLES), dtype=np.float32)

    def chunk_probability(self, chunk: np.ndarray) -> float:
        """P(speech) of one 512-sample int16 chunk, given all the chunks before it."""
        if len(chunk) != CHUNK_SAMPLES:
            raise ValueError(f"a VAD chunk is {CHUNK_SAMPLES} samples, got {len(chunk)}")
        x = np.asarray(chunk, dtype=np.float32)[None, :] / INT16_SCALE
        x = np.concatenate([self._context, x], axis=1)
        out, self._state = self._session.run(
            None, {"input": x, "state": self._state, "sr": self._rate}
        )
        self._context = x[:, -CONTEXT_SAMPLES:]
        return float(out[0, 0])

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        """P(speech) of each whole chunk of `samples` in turn (a partial last chunk is ignored)."""
        n = len(samples) // CHUNK_SAMPLES
        chunks = np.asarray(samples[: n * CHUNK_SAMPLES]).reshape(n, CHUNK_SAMPLES)
        return np.array([self.chunk_probability(c) for c in chunks], dtype=np.float32)
