"""Edge Impulse's "Audio (MFCC)" processing block, reproduced with numpy only.

This runs inside an exported .eim on the device, so it must not need scipy or torch. It
computes what Edge Impulse's block computes (edgeimpulse/processing-blocks `mfcc/dsp.py` with
its speechpy fork, implementation version 4, the latest; the C++ SDK does the same on device):

1. pre-emphasis on the raw int16 sample values (no rescaling to [-1, 1] in this block):
   y[n] = x[n] - cof * x[n - shift], with shift 1 and cof 0.98; the sample before the first is
   the *last* sample of the window (speechpy uses `np.roll`, the SDK copies that wrap-around);
2. frames of ceil(fs * frame_length) samples every ceil(fs * frame_stride) samples, rectangular
   window, no zero padding: for 1 s at 16 kHz and 0.02/0.02 s, 50 frames of 320 samples;
3. power spectrum |rfft(frame, n=fft_length)|^2 / fft_length. With FFT 256 and 320-sample
   frames numpy's rfft *crops* each frame to its first 256 samples, exactly as EI does;
4. frame energy = sum of the power spectrum (129 bins) per frame;
5. 32 triangular mel filters (mel = 1127 ln(1 + f/700)) from low to high frequency (0 Hz to
   Nyquist by default), filter edges at floor((fft_length + 1) * hz / fs), the top edge nudged
   by -0.001 Hz as EI does; filter energies, zeros replaced by 1e-10;
6. natural log, DCT-II (orthonormal) over the filters, keep 13 coefficients, then coefficient 0
   is replaced by ln(frame energy) ("DC elimination");
7. cepstral mean and variance normalisation over a sliding window of 101 frames (numpy
   'symmetric' padding, std eps 1e-10): with 50 frames the window covers the whole second;
8. flatten frame by frame: 50 x 13 = 650 features.

The Studio UI also shows a "noise floor (dB)" of -52 for audio blocks: that parameter belongs
to the MFE and spectrogram blocks; the MFCC block has none (its normalisation is step 7).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

LOG_FLOOR = 1e-10  # speechpy's zero_handling
CMVN_EPS = 1e-10


@dataclass(frozen=True)
class MfccConfig:
    """The MFCC block's parameters; the defaults are Edge Impulse Studio's defaults."""

    sample_rate: int = 16000
    window_seconds: float = 1.0
    num_cepstral: int = 13
    frame_length: float = 0.02
    frame_stride: float = 0.02
    num_filters: int = 32
    fft_length: int = 256
    win_size: int = 101
    low_frequency: float = 0.0
    high_frequency: float = 0.0  # 0 = Nyquist
    pre_cof: float = 0.98
    pre_shift: int = 1

    def __post_init__(self) -> None:
        if self.num_filters < 2:
            raise ValueError("Filter number should be at least 2")
        if not math.log2(self.fft_length).is_integer():
            raise ValueError("FFT length must be a power of 2")
        if self.win_size and self.win_size % 2 != 1:
            raise ValueError("Normalization window size must be odd (or 0 to disable)")
        if self.pre_shift < 1:
            raise ValueError("Pre-emphasis shift must be a positive integer")
        if self.num_frames < 1:
            raise ValueError("Frame length is larger than the window")

    @property
    def window_samples(self) -> int:
        return int(round(self.sample_rate * self.window_seconds))

    @property
    def frame_samples(self) -> int:
        return int(_ceil_unless_close_to_floor(self.sample_rate * self.frame_length))

    @property
    def stride_samples(self) -> int:
        return int(_ceil_unless_close_to_floor(self.sample_rate * self.frame_stride))

    @property
    def num_frames(self) -> int:
        """Frames in one window, speechpy's count without zero padding (version >= 2)."""
        usable = self.window_samples - (self.frame_samples - self.stride_samples)
        return int(math.floor(usable / self.stride_samples))

    @property
    def num_features(self) -> int:
        return self.num_frames * self.num_cepstral

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MfccConfig:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _ceil_unless_close_to_floor(v: float) -> float:
    """EI's guard against 0.018 * fs becoming 288.00001 and rounding up to 289."""
    floor = math.floor(v)
    return float(floor) if v > floor and v - floor < 0.001 else float(math.ceil(v))


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (np.exp(np.asarray(mel, dtype=np.float64) / 1127.0) - 1.0)


def mel_filterbank(cfg: MfccConfig) -> np.ndarray:
    """(num_filters, fft_length // 2 + 1) triangular filters, as speechpy's `filterbanks`."""
    bins = cfg.fft_length // 2 + 1
    high = cfg.high_frequency or cfg.sample_rate / 2
    if high > cfg.sample_rate / 2:
        raise ValueError("High frequency cannot be greater than half of the sampling frequency")
    hertz = mel_to_hz(
        np.linspace(hz_to_mel(cfg.low_frequency), hz_to_mel(high), cfg.num_filters + 2)
    )
    hertz[-1] -= 0.001
    edges = np.floor((cfg.fft_length + 1) * hertz / cfg.sample_rate).astype(int)
    bank = np.zeros((cfg.num_filters, bins))
    for i in range(cfg.num_filters):
        left, middle, right = edges[i], edges[i + 1], edges[i + 2]
        x = np.arange(left, right + 1, dtype=np.float64)
        rising = (x > left) & (x <= middle)
        falling = (x >= middle) & (x < right)
        tri = np.zeros_like(x)
        tri[rising] = (x[rising] - left) / max(middle - left, 1)
        tri[falling] = (right - x[falling]) / max(right - middle, 1)
        bank[i, left : right + 1] = tri
    if np.any(~bank.any(axis=1)):
        raise ValueError(
            "A mel filter is empty: lower the filter number or increase the FFT length"
        )
    return bank


def dct2_ortho_matrix(n: int, keep: int) -> np.ndarray:
    """(n, keep) matrix M with x @ M == scipy.fftpack.dct(x, type=2, norm='ortho')[:keep]."""
    k = np.arange(keep)[None, :]
    i = np.arange(n)[:, None]
    m = np.cos(np.pi * k * (2 * i + 1) / (2 * n)) * np.sqrt(2.0 / n)
    m[:, 0] = np.sqrt(1.0 / n)
    return m


class Mfcc:
    """Compute the block's features for one window or a batch of windows.

    The filterbank and DCT matrices are built once, so a 1 s window costs well under a
    millisecond on a desktop core (the .eim classifies every 250 ms on a Raspberry Pi).
    """

    def __init__(self, cfg: MfccConfig = MfccConfig()) -> None:
        self.cfg = cfg
        self.filterbank_t = mel_filterbank(cfg).T.copy()
        self.dct = dct2_ortho_matrix(cfg.num_filters, cfg.num_cepstral)
        starts = np.arange(cfg.num_frames) * cfg.stride_samples
        self._frame_index = starts[:, None] + np.arange(cfg.frame_samples)[None, :]

    def __call__(self, signal: np.ndarray) -> np.ndarray:
        """(window_samples,) -> (num_frames, num_cepstral); (B, window) -> (B, frames, cep).

        `signal` holds int16 sample values (any float dtype), as the runner receives them.
        """
        x = np.asarray(signal, dtype=np.float64)
        single = x.ndim == 1
        if single:
            x = x[None, :]
        if x.shape[1] != self.cfg.window_samples:
            raise ValueError(
                f"expected {self.cfg.window_samples} samples per window, got {x.shape[1]}"
            )
        feats = self.cepstra(x)
        if self.cfg.win_size:
            feats = cmvnw(feats, self.cfg.win_size)
        return feats[0] if single else feats

    def cepstra(self, x: np.ndarray) -> np.ndarray:
        """Steps 1-6 on a (B, window) batch: MFCC before normalisation."""
        cfg = self.cfg
        emphasized = x - cfg.pre_cof * np.roll(x, cfg.pre_shift, axis=1)
        frames = emphasized[:, self._frame_index]  # (B, frames, frame_samples)
        spectrum = np.fft.rfft(frames, n=cfg.fft_length, axis=-1)
        power = (spectrum.real**2 + spectrum.imag**2) / cfg.fft_length
        energy = power.sum(axis=-1)
        energy[energy == 0] = LOG_FLOOR
        mel = power @ self.filterbank_t
        mel[mel == 0] = LOG_FLOOR
        ceps = np.log(mel) @ self.dct
        ceps[..., 0] = np.log(energy)
        return ceps

    def flat(self, signal: np.ndarray) -> np.ndarray:
        """Features flattened frame by frame, as the block hands them to the network."""
        feats = self(signal)
        return feats.reshape(*feats.shape[:-2], -1).astype(np.float32)


def cmvnw(feats: np.ndarray, win_size: int) -> np.ndarray:
    """speechpy's sliding-window mean and variance normalisation, over axis -2 of (B, T, C).

    Same result as speechpy's per-row loops (numpy 'symmetric' padding by (win_size - 1) / 2,
    subtract each window's mean, divide by the std of the mean-subtracted windows + 1e-10),
    computed with running sums so it costs O(T) instead of O(T * win_size).
    """
    pad = (win_size - 1) // 2
    centred = feats - _window_sums(feats, pad, win_size) / win_size
    mean = _window_sums(centred, pad, win_size) / win_size
    mean_sq = _window_sums(centred * centred, pad, win_size) / win_size
    std = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    return centred / (std + CMVN_EPS)


def _window_sums(x: np.ndarray, pad: int, win_size: int) -> np.ndarray:
    """Sum over each length-`win_size` window of x padded 'symmetric' along axis -2."""
    padded = np.pad(x, ((0, 0), (pad, pad), (0, 0)), mode="symmetric")
    csum = np.cumsum(padded, axis=1)
    csum = np.concatenate([np.zeros_like(csum[:, :1]), csum], axis=1)
    return csum[:, win_size:] - csum[:, :-win_size]
