"""Data augmentation for keyword training: make few clean clips look like many real ones.

Each training window is redrawn every epoch with (in this order): a speed change (tempo and
pitch together, as resampling does), a time shift that keeps the keyword inside the window,
a room (synthetic reverberation), microphone colouring (spectral tilt) and band limit (a
cheap or phone-quality microphone, an upsampled recording), background noise
from the noise pool at a random signal-to-noise ratio, a random gain, and a microphone's
noise floor. Everything is numpy on float windows in [-1, 1].

`channel` is the speech-embedding recipe's: a whole clip (keyword and background) through a
telephone line or a cheap microphone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from edgeml.audioformat import SAMPLE_RATE
from kwtrain import noise as noisegen


@dataclass(frozen=True)
class AugmentSettings:
    speed_range: tuple[float, float] = (0.88, 1.12)
    p_speed: float = 0.5
    max_shift_seconds: float = 0.25
    p_reverb: float = 0.3
    p_tilt: float = 0.4
    p_lowpass: float = 0.25  # band-limited microphones, phone-quality or resampled recordings
    p_noise: float = 0.8
    snr_db: tuple[float, float] = (3.0, 30.0)
    gain_db: tuple[float, float] = (-20.0, 3.0)
    floor_dbfs: tuple[float, float] = (-75.0, -50.0)
    p_floor: float = 0.9  # else exact digital silence stays (files replayed with --input)


NO_AUGMENT = AugmentSettings(
    p_speed=0.0,
    max_shift_seconds=0.0,
    p_reverb=0.0,
    p_tilt=0.0,
    p_noise=0.0,
    gain_db=(0.0, 0.0),
    p_floor=0.0,
)


def speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play `x` `factor` times faster (linear interpolation), same length: crop or pad."""
    n = len(x)
    src = np.arange(0, n, factor)
    y = np.interp(src, np.arange(n), x).astype(np.float32)
    if len(y) >= n:
        start = (len(y) - n) // 2
        return y[start : start + n]
    out = np.zeros(n, dtype=np.float32)
    start = (n - len(y)) // 2
    out[start : start + len(y)] = y
    return out


def shift(x: np.ndarray, offset: int) -> np.ndarray:
    """Move the content by `offset` samples (positive = later), filling with zeros."""
    if offset == 0:
        return x
    out = np.zeros_like(x)
    if offset > 0:
        out[offset:] = x[:-offset]
    else:
        out[:offset] = x[-offset:]
    return out


def room(
    x: np.ndarray, rate: int, rng: np.random.Generator, reverb: bool, tilt: bool, lowpass: bool
) -> np.ndarray:
    """Reverberation (decaying noise impulse response), spectral tilt, band limit (3-7 kHz)."""
    n = len(x)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spec = np.fft.rfft(x, size)
    if reverb:
        rt60 = rng.uniform(0.1, 0.6)
        t = np.arange(int(rt60 * rate)) / rate
        rir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
        rir[0] = 1.0 / rng.uniform(0.3, 1.0)  # direct path
        spec = spec * np.fft.rfft(rir / np.sqrt(np.sum(rir**2)), size)
    if tilt:
        freqs = np.fft.rfftfreq(size, 1.0 / rate)
        octaves = np.log2(np.maximum(freqs, 50.0) / 1000.0)
        spec = spec * 10 ** (rng.uniform(-4.0, 4.0) * octaves / 20)
    if lowpass:
        freqs = np.fft.rfftfreq(size, 1.0 / rate)
        cutoff = rng.uniform(3000.0, 7000.0)
        spec = spec / np.sqrt(1.0 + (freqs / cutoff) ** 16)  # 8th-order Butterworth magnitude
    y = np.fft.irfft(spec, size)[:n]
    peak = np.max(np.abs(y)) + 1e-9
    return (y * (np.max(np.abs(x)) / peak)).astype(np.float32)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


class Augmenter:
    """Draws an augmented copy of a window; `bounds` keep a keyword inside the window."""

    def __init__(
        self,
        noise_pool: np.ndarray,
        rate: int = SAMPLE_RATE,
        settings: AugmentSettings = AugmentSettings(),
    ) -> None:
        self.noise_pool = noise_pool  # (K, window) float32 background clips
        self.rate = rate
        self.s = settings

    def __call__(
        self, x: np.ndarray, bounds: tuple[int, int], keep_inside: bool, rng: np.random.Generator
    ) -> np.ndarray:
        s = self.s
        n = len(x)
        y = x.astype(np.float32)
        if s.p_speed and rng.random() < s.p_speed:
            y = speed(y, float(rng.uniform(*s.speed_range)))
        if s.max_shift_seconds:
            limit = int(s.max_shift_seconds * self.rate)
            lo, hi = -limit, limit
            if keep_inside:
                lo, hi = max(lo, -bounds[0]), min(hi, n - bounds[1])
            if hi > lo:
                y = shift(y, int(rng.integers(lo, hi + 1)))
        reverb = rng.random() < s.p_reverb
        tilt = rng.random() < s.p_tilt
        lowpass = rng.random() < s.p_lowpass
        if reverb or tilt or lowpass:
            y = room(y, self.rate, rng, reverb, tilt, lowpass)
        if len(self.noise_pool) and rng.random() < s.p_noise:
            bg = self.noise_pool[rng.integers(len(self.noise_pool))]
            bg = np.roll(bg, int(rng.integers(n)))
            snr = rng.uniform(*s.snr_db)
            y = y + bg * (rms(y) / rms(bg) * 10 ** (-snr / 20))
        y = y * 10 ** (rng.uniform(*s.gain_db) / 20)
        if rng.random() < s.p_floor:
            level = rng.uniform(*s.floor_dbfs)
            y = y + noisegen.at_level(rng.standard_normal(n), level)
        return np.clip(y, -1.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- channels
CHANNELS = ("telephone", "cheap_mic")


def _butter_band(freqs: np.ndarray, low: float, high: float, order: int) -> np.ndarray:
    """Magnitude of a Butterworth high-pass at `low` times a low-pass at `high` (Hz)."""
    f = np.maximum(freqs, 1.0)
    return 1 / np.sqrt((1 + (low / f) ** (2 * order)) * (1 + (f / high) ** (2 * order)))


def mu_law(x: np.ndarray, bits: int = 8, mu: float = 255.0) -> np.ndarray:
    """G.711-style companding to `bits`: the quantisation noise a phone line adds."""
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    levels = 2 ** (bits - 1)
    y = np.round(y * levels) / levels
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu).astype(np.float32)


def channel(x: np.ndarray, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """`x` (16 kHz, whatever it carries: speech and its background) as heard through a
    telephone line or a cheap microphone, same length and peak.

    WHY: the synthetic voices are full-band studio audio, while real people reach a keyword
    spotter through small MEMS microphones, laptops and phone lines (band edges, resonances,
    clipping, codec noise); the head must not learn "energy above 4 kHz" as part of the keyword.
        telephone  8 kHz sampling (nothing above 4 kHz), band-pass from 200-400 Hz to
                   3.0-3.6 kHz (4th order), 8-bit mu-law
        cheap_mic  high-pass 100-500 Hz, low-pass 3.5-7 kHz, a resonance of +3..+10 dB at
                   1.5-5 kHz, soft clipping (tanh, drive 1-4)"""
    kind = kind or str(rng.choice(CHANNELS))
    n = len(x)
    peak = float(np.max(np.abs(x))) + 1e-9
    y = x.astype(np.float64) / peak
    freqs = np.fft.rfftfreq(n, 1.0 / 16000)
    if kind == "telephone":
        y = soxr.resample(y, 16000, 8000)
        y = soxr.resample(y, 8000, 16000)
        y = np.pad(y, (0, max(0, n - len(y))))[:n]
        band = _butter_band(freqs, rng.uniform(200, 400), rng.uniform(3000, 3600), 4)
        y = np.fft.irfft(np.fft.rfft(y) * band, n)
        y = mu_law(y / (np.max(np.abs(y)) + 1e-9) * 0.9)
    elif kind == "cheap_mic":
        band = _butter_band(freqs, rng.uniform(100, 500), rng.uniform(3500, 7000), 3)
        f0, gain = rng.uniform(1500, 5000), 10 ** (rng.uniform(3, 10) / 20)
        bump = 1 + (gain - 1) * np.exp(-0.5 * (np.log2(np.maximum(freqs, 1) / f0) / 0.25) ** 2)
        y = np.fft.irfft(np.fft.rfft(y) * band * bump, n)
        drive = rng.uniform(1.0, 4.0)
        y = np.tanh(drive * y / (np.max(np.abs(y)) + 1e-9)) / np.tanh(drive)
    else:
        raise ValueError(f"unknown channel {kind!r} (one of {', '.join(CHANNELS)})")
    return (y / (np.max(np.abs(y)) + 1e-9) * peak).astype(np.float32)
