"""Generated background sounds: the "noise" class without recordings, and noise for mixing.

Coloured noise is white Gaussian noise shaped in the frequency domain (pink 1/f power, brown
1/f^2); hum is mains (50 or 60 Hz) with odd and even harmonics, as a cheap USB microphone
picks it up. Real rooms are not stationary: "bursts" (a few 10-200 ms noise bursts of random
colour: a door, a cough, a bump) and "clicks" (sparse taps and clicks) over a quiet floor teach
the model that a short burst of sound is not a word (the MFCC block's normalisation turns
any isolated transient in a quiet window into a strong pattern). Levels are in dBFS: 20 log10 of the RMS of the samples in [-1, 1].
"""

from __future__ import annotations

import numpy as np

KINDS = ("white", "pink", "brown", "hum", "hum+pink", "silence", "bursts", "clicks")


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
    elif kind == "bursts":
        x = 0.03 * coloured(n, rng.uniform(0.0, 2.0), rng)
        for _ in range(int(rng.integers(1, 5))):
            length = int(rng.uniform(0.01, 0.2) * rate)
            start = int(rng.integers(0, n - length))
            env = np.hanning(length) ** rng.uniform(0.3, 2.0)
            x[start : start + length] += env * coloured(length, rng.uniform(-1.0, 2.0), rng)
    elif kind == "clicks":
        x = 0.02 * coloured(n, rng.uniform(0.0, 2.0), rng)
        decay = np.exp(-np.arange(int(0.01 * rate)) / (rng.uniform(0.0005, 0.004) * rate))
        for _ in range(int(rng.integers(1, 12))):
            start = int(rng.integers(0, n - len(decay)))
            x[start : start + len(decay)] += (
                rng.uniform(0.3, 3.0) * decay * rng.standard_normal(len(decay))
            )
    elif kind == "silence":
        # a quiet microphone: a few LSB of white noise (exact zeros never come from a mic)
        return (rng.standard_normal(n) * rng.uniform(0.5, 4.0) / 32768).astype(np.float32)
    else:
        raise ValueError(f"unknown noise kind {kind!r} (choose from {', '.join(KINDS)})")
    if kind in ("bursts", "clicks"):  # sparse: set the peak (25 dB over `dbfs`), not the RMS
        peak = min(0.9, 10 ** ((dbfs + 25.0) / 20))
        return (x * (peak / np.max(np.abs(x)))).astype(np.float32)
    x = x / np.sqrt(np.mean(x**2))
    return np.clip(at_level(x, dbfs), -1.0, 1.0).astype(np.float32)
