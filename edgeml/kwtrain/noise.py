"""Generated background sounds: the "noise" class without recordings, and noise for mixing.

Coloured noise is white Gaussian noise shaped in the frequency domain (pink 1/f power, brown
1/f^2); hum is mains (50 or 60 Hz) with odd and even harmonics, as a cheap USB microphone
picks it up. Levels are in dBFS: 20 log10 of the RMS of the samples in [-1, 1].
"""

from __future__ import annotations

import numpy as np

KINDS = ("white", "pink", "brown", "hum", "hum+pink", "silence")


def coloured(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1]
    spectrum *= freqs ** (-exponent / 2)
    out = np.fft.irfft(spectrum, n)
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def hum(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum at 50 or 60 Hz with a few decaying harmonics, unit RMS."""
    mains = rng.choice([50.0, 60.0])
    t = np.arange(n) / rate
    out = np.zeros(n)
    for k in range(1, 8):
        amp = rng.uniform(0.2, 1.0) / k
        out += amp * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 2 * np.pi))
    return out / np.sqrt(np.mean(out**2))


def at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale a unit-RMS signal to an RMS of `dbfs` dB relative to full scale."""
    return x * 10 ** (dbfs / 20)


def make(kind: str, n: int, rate: int, dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """One noise clip in [-1, 1] (float32)."""
    if kind == "white":
        x = coloured(n, 0.0, rng)
    elif kind == "pink":
        x = coloured(n, 1.0, rng)
    elif kind == "brown":
        x = coloured(n, 2.0, rng)
    elif kind == "hum":
        x = hum(n, rate, rng) + 0.05 * coloured(n, 0.0, rng)
    elif kind == "hum+pink":
        x = hum(n, rate, rng) + rng.uniform(0.3, 1.5) * coloured(n, 1.0, rng)
    elif kind == "silence":
        # a quiet microphone: a few LSB of white noise (exact zeros never come from a mic)
        return (rng.standard_normal(n) * rng.uniform(0.5, 4.0) / 32768).astype(np.float32)
    else:
        raise ValueError(f"unknown noise kind {kind!r} (choose from {', '.join(KINDS)})")
    x = x / np.sqrt(np.mean(x**2))
    return np.clip(at_level(x, dbfs), -1.0, 1.0).astype(np.float32)
