"""Speech for tests, benchmarks and the demo, made with espeak-ng (never copied from anywhere),
and the small tools to lay it out in a stream and find it again in a capture.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeml import audioformat
from edgeml.audioformat import float_to_int16
from kwtrain.tts import Voice, silence, synthesize

RATE = audioformat.SAMPLE_RATE
VOICE = Voice("en-us", speed=140, pitch=50)  # the demo's voice
KEYWORD = "listen"
SENTENCE = "what is the weather like tomorrow morning"


def speak(text: str, voice: Voice = VOICE, gain: float = 0.7) -> np.ndarray:
    """int16 speech, trimmed to where the voice is (espeak pads with silence)."""
    return trim(float_to_int16(synthesize(text, voice) * gain))


def trim(audio: np.ndarray, level: int = 300) -> np.ndarray:
    loud = np.nonzero(np.abs(audio.astype(np.int32)) > level)[0]
    return audio[loud[0] : loud[-1] + 1] if len(loud) else audio[:0]


def quiet(seconds: float) -> np.ndarray:
    return float_to_int16(silence(seconds))


def write_wav(path: Path, samples: np.ndarray) -> Path:
    return audioformat.write_wav(path, np.asarray(samples, dtype=np.int16))


@dataclass
class Segment:
    """Where a piece sits in a composed file (sample indices)."""

    start: int
    end: int


def compose(*parts: np.ndarray) -> tuple[np.ndarray, list[Segment]]:
    """Concatenate parts; return the audio and each part's position."""
    segments, pos = [], 0
    for part in parts:
        segments.append(Segment(pos, pos + len(part)))
        pos += len(part)
    return np.concatenate(parts).astype(np.int16), segments


def locate(haystack: np.ndarray, needle: np.ndarray) -> tuple[int, float]:
    """Best alignment of `needle` inside `haystack`: (offset, normalised correlation)."""
    h = haystack.astype(np.float64)
    n = needle.astype(np.float64) - needle.mean()
    if len(h) < len(n):
        h = np.concatenate([h, np.zeros(len(n) - len(h))])
    size = 1 << int(np.ceil(np.log2(len(h) + len(n))))
    corr = np.fft.irfft(np.fft.rfft(h, size) * np.conj(np.fft.rfft(n, size)), size)
    corr = corr[: len(h) - len(n) + 1]
    c1 = np.concatenate([[0.0], np.cumsum(h)])
    c2 = np.concatenate([[0.0], np.cumsum(h * h)])
    m = len(n)
    var = np.maximum(c2[m:] - c2[:-m] - (c1[m:] - c1[:-m]) ** 2 / m, 1e-9)
    ncc = corr / (np.sqrt(var) * np.sqrt((n * n).sum()))
    best = int(np.argmax(ncc))
    return best, float(ncc[best])


def audio_id(samples: np.ndarray) -> str:
    return hashlib.sha1(np.asarray(samples, dtype=np.int16).tobytes()).hexdigest()[:12]
