"""Edge Impulse's Python MFCC block written out loop by loop: the reference for kwtrain.mfcc.features.

It follows edgeimpulse/processing-blocks `mfcc/dsp.py` (implementation version 4) and its speechpy
fork step by step, with scipy's FFT and DCT and plain loops, so it shares no code with
`kwtrain.mfcc.features` (vectorised numpy for the device). The tests compare the two; the keyword
benchmark times both.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
import scipy.fftpack

from kwtrain.mfcc.features import MfccConfig


def reference_mfcc(signal: np.ndarray, cfg: MfccConfig, normalize: bool = True) -> np.ndarray:
    fs = cfg.sample_rate
    x = signal.astype(np.float64)
    # speechpy.processing.preemphasis: signal - cof * np.roll(signal, shift)
    emph = x - cfg.pre_cof * x[np.arange(len(x)) - cfg.pre_shift]  # x[-1]: the last sample
    flen = math.ceil(fs * cfg.frame_length)
    fstride = math.ceil(fs * cfg.frame_stride)
    numframes = math.floor((len(x) - (flen - fstride)) / fstride)
    frames = [emph[i * fstride : i * fstride + flen] for i in range(numframes)]
    # rfft with n < frame length uses the first n samples of the frame (EI: 256 of 320)
    power = np.array([np.abs(scipy.fft.rfft(f, n=cfg.fft_length)) ** 2 for f in frames])
    power /= cfg.fft_length
    energy = power.sum(axis=1)
    energy[energy == 0] = 1e-10
    high = cfg.high_frequency or fs / 2
    mels = np.linspace(
        1127 * math.log(1 + cfg.low_frequency / 700),
        1127 * math.log(1 + high / 700),
        cfg.num_filters + 2,
    )
    hz = 700 * (np.exp(mels / 1127) - 1)
    hz[-1] -= 0.001
    edges = [int(math.floor((cfg.fft_length + 1) * h / fs)) for h in hz]
    bank = np.zeros((cfg.num_filters, cfg.fft_length // 2 + 1))
    for i in range(cfg.num_filters):
        left, mid, right = edges[i], edges[i + 1], edges[i + 2]
        for k in range(left, right + 1):
            if left < k <= mid:
                bank[i, k] = (k - left) / (mid - left)
            if mid <= k < right:
                bank[i, k] = (right - k) / (right - mid)
    mel = power @ bank.T
    mel[mel == 0] = 1e-10
    ceps = scipy.fftpack.dct(np.log(mel), type=2, axis=-1, norm="ortho")[:, : cfg.num_cepstral]
    ceps[:, 0] = np.log(energy)
    return reference_cmvnw(ceps, cfg.win_size) if normalize else ceps


def reference_cmvnw(vec: np.ndarray, win_size: int) -> np.ndarray:
    """speechpy.processing.cmvnw(vec, win_size, variance_normalization=True), as written."""
    pad = (win_size - 1) // 2
    padded = np.pad(vec, ((pad, pad), (0, 0)), "symmetric")
    centred = np.zeros_like(vec)
    for i in range(len(vec)):
        centred[i] = vec[i] - padded[i : i + win_size].mean(axis=0)
    padded = np.pad(centred, ((pad, pad), (0, 0)), "symmetric")
    out = np.zeros_like(vec)
    for i in range(len(vec)):
        out[i] = centred[i] / (padded[i : i + win_size].std(axis=0) + 1e-10)
    return out


def speechlike(seed: int, n: int = 16000, rate: int = 16000) -> np.ndarray:
    """A test signal with structure: gliding harmonics under an envelope, plus noise (int16)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    f0 = 120 + 80 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = np.exp(-((t - 0.5) ** 2) / 0.02)
    x = 8000 * env * voiced + rng.normal(0, 200, n)
    return np.clip(np.round(x), -32768, 32767)
