"""The audio format of the device side, in one place: 16 kHz, mono, 16-bit samples.

Why this format: Edge Impulse's audio impulses and the speech models behind the endpoint
(wav2vec2, Whisper) all take 16 kHz; 16-bit integers are what a microphone delivers and what a
WAV body carries (a tenth of the bytes of a JSON float list). Float audio lies in [-1, 1) and
maps to int16 as round(x * 32768), clipped to [-32768, 32767]. The capture, the keyword model,
the recorder, the spool, the client and the trainer all go through the functions here.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
INT16_SCALE = 32768.0


class AudioFileError(RuntimeError):
    """An audio file cannot be read (missing, not audio, unsupported encoding)."""


def clip_int16(values: np.ndarray) -> np.ndarray:
    """Sample values on the int16 scale (any dtype, e.g. after filtering or resampling) as int16,
    rounded and clipped instead of wrapping around."""
    return np.clip(np.round(values), -32768, 32767).astype(np.int16)


def float_to_int16(audio: np.ndarray) -> np.ndarray:
    """[-1, 1) float audio as int16 samples."""
    return clip_int16(np.asarray(audio, dtype=np.float64) * INT16_SCALE)


def int16_to_float(samples: np.ndarray) -> np.ndarray:
    """int16 samples as float32 in [-1, 1)."""
    return np.asarray(samples, dtype=np.float32) / np.float32(INT16_SCALE)


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Float audio from `rate` to `target` Hz with soxr (the resampler librosa uses)."""
    if rate == target:
        return np.asarray(audio, dtype=np.float32)
    import soxr

    return soxr.resample(np.asarray(audio, dtype=np.float32), rate, target).astype(np.float32)


def wav_bytes(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """int16 samples as a 16-bit PCM WAV file in memory (spool files and request bodies)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.asarray(samples, dtype=np.int16), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write int16 samples (or [-1, 1) floats, converted) as a 16-bit PCM WAV; make the folder."""
    samples = np.asarray(samples)
    if samples.dtype != np.int16:
        samples = float_to_int16(samples)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(samples, sample_rate))
    return path


def read_audio(path: str | Path, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Any file libsndfile reads (WAV, FLAC, OGG, ...) as mono float32 at `rate`: channels are
    averaged, other rates resampled. Raises AudioFileError with the reason."""
    import soundfile as sf

    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(f"cannot read audio file {path}: {exc}") from exc
    return resample(data.mean(axis=1), file_rate, rate)


def read_int16(path: str | Path) -> np.ndarray:
    """Any audio file as 16 kHz mono int16 samples (what the device app works on)."""
    return float_to_int16(read_audio(path))
