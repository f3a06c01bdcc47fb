"""The MFCC block against a direct, loop-by-loop reference of Edge Impulse's Python block.

The reference below follows edgeimpulse/processing-blocks `mfcc/dsp.py` (implementation
version 4) and its speechpy fork step by step, with scipy's FFT and DCT and plain loops, so it
shares no code with `kwtrain.features` (which is vectorised numpy for the device).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import scipy.fftpack

from kwtrain.features import Mfcc, MfccConfig, cmvnw, mel_filterbank


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


def test_default_configuration_is_studios_block() -> None:
    cfg = MfccConfig()
    assert (cfg.num_cepstral, cfg.frame_length, cfg.frame_stride) == (13, 0.02, 0.02)
    assert (cfg.num_filters, cfg.fft_length, cfg.low_frequency, cfg.high_frequency) == (
        32,
        256,
        0.0,
        0.0,
    )
    assert (cfg.pre_cof, cfg.pre_shift, cfg.win_size) == (0.98, 1, 101)
    assert (cfg.frame_samples, cfg.stride_samples, cfg.num_frames) == (320, 320, 50)
    assert cfg.num_features == 650


@pytest.mark.parametrize("seed", [0, 1])
def test_features_match_the_reference(seed: int) -> None:
    cfg = MfccConfig()
    x = speechlike(seed)
    ours = Mfcc(cfg)(x)
    ref = reference_mfcc(x, cfg)
    assert ours.shape == ref.shape == (50, 13)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)
    flat = Mfcc(cfg).flat(x)
    assert flat.shape == (650,) and flat.dtype == np.float32
    np.testing.assert_allclose(flat[13:26], ref[1], rtol=1e-5, atol=1e-5)  # frame-major


def test_other_settings_match_the_reference() -> None:
    """Overlapping frames, a band limit, no normalisation window: still the same numbers."""
    cfg = MfccConfig(
        frame_length=0.025,
        frame_stride=0.01,
        num_filters=40,
        fft_length=512,
        low_frequency=300,
        high_frequency=7000,
        win_size=0,
        num_cepstral=20,
    )
    x = speechlike(3)
    ours = Mfcc(cfg)(x)
    ref = reference_mfcc(x, cfg, normalize=False)
    assert ours.shape == ref.shape == (98, 20)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)
    assert np.ptp(ours[:, 0]) > 1.0, "log energies vary: the comparison is not trivial"


def test_batch_equals_single_windows() -> None:
    mfcc = Mfcc()
    batch = np.stack([speechlike(s) for s in range(3)])
    np.testing.assert_allclose(mfcc(batch)[2], mfcc(batch[2]), rtol=1e-12)


def test_preemphasis_wraps_around_like_numpy_roll() -> None:
    """EI's shift semantics: the first sample is emphasised against the LAST one."""
    cfg = MfccConfig(win_size=0)
    x = speechlike(4)
    y = x.copy()
    y[-1] += 5000  # only the last sample differs
    a, b = Mfcc(cfg)(x), Mfcc(cfg)(y)
    assert not np.allclose(a[0], b[0])  # frame 0 changed through the wrap-around
    np.testing.assert_allclose(a[1:-1], b[1:-1])  # middle frames did not


def test_filterbank_shape_and_coverage() -> None:
    bank = mel_filterbank(MfccConfig())
    assert bank.shape == (32, 129)
    assert bank.max() == pytest.approx(1.0)
    assert np.all(bank.any(axis=1)), "no empty filter"
    peaks = bank.argmax(axis=1)
    assert np.all(np.diff(peaks) >= 0), "filters ordered by frequency"


def test_cmvnw_fast_path_equals_loops() -> None:
    rng = np.random.default_rng(5)
    feats = rng.normal(size=(2, 50, 13)) * rng.uniform(1, 10, size=13)
    for win in (3, 101, 11):
        fast = cmvnw(feats, win)
        for b in range(2):
            np.testing.assert_allclose(fast[b], reference_cmvnw(feats[b], win), atol=1e-9)


def test_silence_does_not_produce_nan() -> None:
    out = Mfcc()(np.zeros(16000))
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_filters": 1}, "at least 2"),
        ({"fft_length": 300}, "power of 2"),
        ({"win_size": 100}, "odd"),
        ({"frame_length": 2.0}, "larger than the window"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MfccConfig(**kwargs)


def test_wrong_window_length_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 16000 samples"):
        Mfcc()(np.zeros(8000))
