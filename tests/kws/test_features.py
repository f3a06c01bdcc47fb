"""The MFCC block against a direct, loop-by-loop reference of Edge Impulse's Python block
(devkit/mfcc_reference.py: edgeimpulse/processing-blocks `mfcc/dsp.py`, speechpy's loops)."""

from __future__ import annotations

import numpy as np
import pytest

from devkit.mfcc_reference import reference_cmvnw, reference_mfcc, speechlike
from kwtrain.mfcc.features import Mfcc, MfccConfig, cmvnw, mel_filterbank


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
