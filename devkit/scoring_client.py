"""Client-side helpers for the scoring contract: build request bodies, post them, decode references.

Used by tests/cloud and bench/: bodies are built the way real clients build them (soundfile for
WAV/FLAC, json for the sample list), and the reference transcript is computed straight from the
saved model with transformers, independently of the service code.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import requests
import soundfile as sf

RATE = 16000


def noise_signal(seconds: float, rate: int = RATE, seed: int = 0, channels: int = 1) -> np.ndarray:
    """Deterministic speech-band noise with a slow envelope, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t)
    shape = (n, channels) if channels > 1 else (n,)
    noise = rng.normal(0, 0.15, shape) * (envelope[:, None] if channels > 1 else envelope)
    return np.clip(noise, -1, 1).astype(np.float32)


def to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)


def wav_bytes(samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def flac_bytes(samples: np.ndarray, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def json_floats_body(samples: np.ndarray, **extra) -> bytes:
    """sample-client's body: floats in [-1, 1]."""
    return json.dumps({"data": samples.astype(float).tolist(), **extra}).encode()


def json_int16_body(samples_int16: np.ndarray, **extra) -> bytes:
    """The edge app's JSON mode: int16-range integers."""
    return json.dumps({"data": samples_int16.astype(int).tolist(), **extra}).encode()


def post(url: str, body: bytes | None, content_type: str | None, timeout: float = 120):
    headers = {"Content-Type": content_type} if content_type else {}
    # requests adds no Content-Type of its own for a bytes body.
    return requests.post(url, data=body, headers=headers, timeout=timeout)


def decoded_wav(body: bytes) -> np.ndarray:
    """What the service must hear from a WAV body: float32, downmixed, resampled with soxr HQ."""
    import soxr

    frames, rate = sf.read(io.BytesIO(body), dtype="float32", always_2d=True)
    mono = frames[:, 0] if frames.shape[1] == 1 else frames.mean(axis=1, dtype=np.float32)
    if rate != RATE:
        mono = soxr.resample(mono, rate, RATE, quality="HQ").astype(np.float32)
    return mono


class ReferenceDecoder:
    """`processor.batch_decode(logits.argmax(-1))` of a saved CTC model, loaded with
    transformers directly: the ground truth the served transcript must equal."""

    def __init__(self, model_dir: Path) -> None:
        from transformers import AutoModelForCTC, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(model_dir)
        self.model = AutoModelForCTC.from_pretrained(model_dir).eval()

    def logits(self, samples: np.ndarray):
        import torch

        inputs = self.processor(samples, sampling_rate=RATE, return_tensors="pt").input_values
        with torch.no_grad():
            return self.model(inputs).logits

    def __call__(self, samples: np.ndarray) -> str:
        return self.processor.batch_decode(self.logits(samples).argmax(-1))[0].strip()
