"""Small audio helpers shared by bootstrap, prepare, training and evaluation (not the .eim).

Samples are kept as float32 in [-1, 1] in memory and written as 16-bit PCM WAV, the format
Edge Impulse's uploader and Studio use for audio (edgeml.audioformat: the project's one
definition of that format).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeml import audioformat

FRAME_SECONDS = 0.01


def write_wav(path: Path, audio: np.ndarray, rate: int) -> Path:
    return audioformat.write_wav(path, np.asarray(audio, dtype=np.float32), rate)


def to_int16_values(audio: np.ndarray) -> np.ndarray:
    """[-1, 1] floats -> int16 sample values (as float32), what the .eim receives."""
    return audioformat.float_to_int16(audio).astype(np.float32)


def frame_db(audio: np.ndarray, rate: int, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """RMS level in dBFS of consecutive frames (10 ms by default)."""
    hop = max(1, int(rate * frame_seconds))
    n = len(audio) // hop
    if n == 0:
        return np.full(1, -120.0)
    frames = np.asarray(audio[: n * hop], dtype=np.float64).reshape(n, hop)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def active_bounds(audio: np.ndarray, rate: int, below_peak_db: float = 35.0) -> tuple[int, int]:
    """(start, end) samples of the part louder than peak - `below_peak_db` (speech bounds)."""
    db = frame_db(audio, rate)
    active = np.flatnonzero(db > db.max() - below_peak_db)
    hop = max(1, int(rate * FRAME_SECONDS))
    if active.size == 0:
        return 0, len(audio)
    return int(active[0] * hop), int(min(len(audio), (active[-1] + 1) * hop))


def place(audio: np.ndarray, window: int, rng: np.random.Generator, margin: int = 0) -> np.ndarray:
    """Put `audio` at a random offset inside a zero window (cropped to the window if longer)."""
    out = np.zeros(window, dtype=np.float32)
    if len(audio) >= window:
        start = int(rng.integers(0, len(audio) - window + 1))
        return audio[start : start + window].astype(np.float32)
    lo = min(margin, window - len(audio))
    hi = max(lo, window - len(audio) - margin)
    offset = int(rng.integers(lo, hi + 1))
    out[offset : offset + len(audio)] = audio
    return out


def normalize_peak(audio: np.ndarray, peak_dbfs: float) -> np.ndarray:
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak == 0.0:
        return audio.astype(np.float32)
    return (audio * (10 ** (peak_dbfs / 20) / peak)).astype(np.float32)


def windows(audio: np.ndarray, window: int, hop: int) -> np.ndarray:
    """(n, window) sliding windows; a clip shorter than one window is zero-padded at the end."""
    if len(audio) < window:
        audio = np.concatenate([audio, np.zeros(window - len(audio), dtype=audio.dtype)])
    starts = range(0, len(audio) - window + 1, hop)
    return np.stack([audio[s : s + window] for s in starts])
