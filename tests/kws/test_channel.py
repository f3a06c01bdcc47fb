"""The channel augmentation of the speech-embedding recipe (`kwtrain.augment.channel`,
`EmbTrainSettings.channel_copies`): a clip heard through a telephone line or a cheap microphone
really loses what those lose, and adding the channel copies leaves every other planned clip
(and so the clip cache) as it was."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest

from kwtrain.augment import CHANNELS, channel, mu_law

RATE = 16000


def _share(x: np.ndarray, lo: float, hi: float) -> float:
    """Fraction of the energy of `x` between `lo` and `hi` Hz."""
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    return float(power[(f >= lo) & (f < hi)].sum() / power.sum())


def _white(seed: int = 0, seconds: float = 2.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * 0.1).astype(
        np.float32
    )


@pytest.mark.parametrize("seed", range(5))
def test_telephone_keeps_only_the_telephone_band(seed: int) -> None:
    x = _white(seed)
    y = channel(x, np.random.default_rng(seed), "telephone")
    assert len(y) == len(x) and y.dtype == np.float32
    assert np.max(np.abs(y)) == pytest.approx(np.max(np.abs(x)), rel=1e-5), "same peak"
    assert _share(x, 4000, 8000) > 0.45, "white noise: half its energy above 4 kHz"
    # 8 kHz sampling and a 3.0-3.6 kHz low-pass; mu-law's quantisation noise is all that is left
    assert _share(y, 4000, 8000) < 0.01
    assert _share(y, 0, 150) < 0.01, "the line's high-pass (200-400 Hz)"
    assert _share(y, 400, 3000) > 0.8


@pytest.mark.parametrize("seed", range(5))
def test_cheap_microphone_cuts_both_ends(seed: int) -> None:
    x = _white(seed)
    y = channel(x, np.random.default_rng(seed), "cheap_mic")
    assert len(y) == len(x)
    assert _share(y, 0, 60) < 0.2 * _share(x, 0, 60), "high-pass at 100-500 Hz"
    assert _share(y, 7500, 8000) < 0.3 * _share(x, 7500, 8000), "low-pass at 3.5-7 kHz"


def test_both_channels_are_drawn_and_an_unknown_one_is_refused() -> None:
    rng = np.random.default_rng(0)
    x = _white()
    ys = [channel(x, rng) for _ in range(20)]
    phone = [_share(y, 4000, 8000) < 0.01 for y in ys]
    assert 0 < sum(phone) < len(ys), f"both of {CHANNELS} drawn"
    with pytest.raises(ValueError, match="unknown channel"):
        channel(x, rng, "radio")


def test_mu_law_leaves_at_most_256_levels() -> None:
    x = np.linspace(-1, 1, 10001).astype(np.float32)
    y = mu_law(x)
    assert len(np.unique(y)) <= 257 and np.max(np.abs(y - x)) < 0.05


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_channel_copies_add_clips_and_move_no_other() -> None:
    from kwtrain.embedding.train import EmbTrainSettings, _plan

    small = dict(keyword="alexa", positives=40, confusable_clips=20, word_clips=30,
                 sentence_clips=10)  # fmt: skip
    without = _plan(EmbTrainSettings(**small, channel_copies=0), [])
    with_ = _plan(EmbTrainSettings(**small, channel_copies=1), [])
    assert all(len(it) == 3 for it in without)
    assert [it for it in with_ if len(it) == 3] == without, "cached clips stay valid"
    extra = [it for it in with_ if len(it) == 4]
    assert {it[3] for it in extra} == {"channel"}
    counts = Counter(it[0] for it in extra)
    plain = Counter(it[0] for it in without)
    assert counts["positive"] == 40 and counts["confusable"] == 20
    assert counts["word"] == plain["word"] and "sentence" not in counts


def test_a_channel_item_is_the_same_clip_heard_through_a_channel(tmp_path, monkeypatch) -> None:
    """`_work` on ("word", f, seed, "channel") draws the clip of ("word", f, seed) and then
    passes it through the channel: the real front end is given the band-limited clip."""
    import soundfile as sf

    from kwtrain.embedding import train
    from kwtrain.embedding.onnxfiles import FrontEndUnavailable
    from kwtrain.embedding.onnxparts import runtime_files

    try:
        files = runtime_files()
    except FrontEndUnavailable as exc:
        pytest.skip(str(exc))
    wav = tmp_path / "word.wav"
    sf.write(wav, _white(7, 0.8), RATE)
    monkeypatch.setattr(train, "_W", {})
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what _init_worker sets, undone afterwards
    train._init_worker(files, {}, train.EmbTrainSettings(keyword="alexa"), None)
    front = train._W["fe"]
    heard: list[np.ndarray] = []
    embed = front.embeddings
    monkeypatch.setattr(front, "embeddings", lambda x, stride: heard.append(x) or embed(x, stride))
    plain = train._work(("word", str(wav), 11))
    through = train._work(("word", str(wav), 11, "channel"))
    assert plain["end"] == through["end"] and len(heard[0]) == len(heard[1])
    assert through["emb"].shape == plain["emb"].shape
    assert not np.allclose(through["emb"], plain["emb"])
    assert _share(heard[1], 7000, 8000) < 0.3 * _share(heard[0], 7000, 8000)
