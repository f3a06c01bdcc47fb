"""The end-to-end benchmark's trials and scores (devkit/chain.py, used by bench/e2e.py): the
layout puts each part where it says, the noise sits at the stated SNR, and the scores judge a
transcript as a person would (first word lost, keyword text left in)."""

from __future__ import annotations

import numpy as np
import pytest

from devkit import chain


def _tone(seconds: float, amplitude: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * chain.RATE)) / chain.RATE
    return amplitude * np.sin(2 * np.pi * freq * t)


def test_trim_keeps_the_speech_and_a_margin():
    clip = np.concatenate([np.zeros(8000), _tone(0.5, 3000), np.zeros(8000)])
    trimmed = chain.trim(clip)
    assert abs(len(trimmed) - (8000 + 2 * int(0.03 * chain.RATE))) <= chain.FRAME


def test_trials_sit_where_they_say_and_quiet_is_a_floor():
    rng = np.random.default_rng(1)
    pairs = [
        (_tone(0.6, 4000), _tone(1.5, 4000, 220), f"ref {k}", f"s{k}", f"k{k}") for k in range(3)
    ]
    audio, trials = chain.compose_trials(pairs, rng, None, None)
    assert audio.dtype == np.int16 and len(audio) == trials[-1].end
    assert trials[0].keyword_start == int(chain.LEAD_SECONDS * chain.RATE)
    for a, b in zip(trials, trials[1:], strict=False):
        assert a.end == b.keyword_start
    for t in trials:
        assert t.gap in chain.GAPS and -6 <= t.level_db <= 6
        assert t.sentence_start - t.keyword_end == int(t.gap * chain.RATE)
        sentence = audio[t.sentence_start : t.sentence_end]
        ratio_db = 20 * np.log10(
            chain.rms(sentence) / chain.rms(audio[t.keyword_start : t.keyword_end])
        )
        assert ratio_db == pytest.approx(t.level_db, abs=0.3)
    gap = audio[trials[0].sentence_end + 1000 : trials[0].end - 1000]
    assert 0 < chain.rms(gap) < 32768 * 10 ** (-60 / 20)  # never digital zero, never loud


def test_noise_sits_at_the_stated_snr():
    rng = np.random.default_rng(2)
    bed = np.random.default_rng(3).normal(0, 1000, chain.RATE * 5)
    pairs = [(_tone(0.6, 3000), _tone(1.5, 3000, 220), "r", "s", "k")]
    audio, (t,) = chain.compose_trials(pairs, rng, bed, 10.0)
    speech = chain.rms(
        np.concatenate([_tone(0.6, 3000), _tone(1.5, 3000, 220) * 10 ** (t.level_db / 20)])
    )
    noise = chain.rms(audio[t.sentence_end + 100 : t.end - 100].astype(float))
    scale = 1.0 if np.max(np.abs(audio)) < 32000 else 32000 / np.max(np.abs(audio))
    assert 20 * np.log10(speech * scale / noise) == pytest.approx(10.0, abs=1.0)


@pytest.mark.parametrize(
    ("reference", "heard", "kept"),
    [
        ("the child almost hurt the small dog", "THE CHILD ALMOST HURT THE SMALL DOG.", True),
        ("the child almost hurt the small dog", "CHILD ALMOST HURT THE SMALL DOG.", False),
        ("what joy there is in living", "JOY THERE IS IN LIVING.", False),
        ("tear a thin sheet from the yellow pad", "THEN SHEET FROM THE YELLOW PAN.", False),
        ("tear a thin sheet", "", False),
    ],
)
def test_first_word_kept(reference, heard, kept):
    pytest.importorskip("jiwer")  # a development package: not on the device (the arm64 check)
    assert chain.first_word_kept(reference, heard) is kept


@pytest.mark.parametrize(
    ("reference", "heard", "deleted"),
    [
        ("one two three", "TWO, THREE.", True),  # cut with the keyword
        ("one two three", "ONE, TWO, THREE.", False),
        ("four queen of clubs", "FOR QUEEN OF CLUBS.", False),  # spelled otherwise: not a cut
        ("she had your dark suit", "DARK SUIT.", True),
        ("one two three", "", True),
    ],
)
def test_first_word_deleted(reference, heard, deleted):
    pytest.importorskip("jiwer")
    assert chain.first_word_deleted(reference, heard) is deleted


def test_keyword_text_and_wer():
    pytest.importorskip("jiwer")
    ref = "what time is it"
    assert chain.keyword_in_text("alexa", "ALEXA WHAT TIME IS IT", ref)
    assert chain.keyword_in_text("alexa", "LEXA WHAT TIME IS IT", ref)
    assert chain.keyword_in_text("smart mirror", "MIRROR WHAT TIME IS IT", ref)
    assert not chain.keyword_in_text("alexa", "WHAT TIME IS IT", ref)
    assert not chain.keyword_in_text("smart mirror", "THE MIRROR IS SMART", "the mirror is smart")
    assert chain.wer(ref, "WHAT TIME IS IT?") == 0.0
    assert chain.wer(ref, "") == 1.0
    assert chain.wer(ref, "TIME IS IT") == pytest.approx(0.25)


def test_a_continuation_is_read_with_its_turn():
    """The person reads a continuation's line right after its turn's: the benchmark judges the
    two together, a chain in order, and leaves other turns alone."""
    records = [
        {"id": "a", "text": "SEVEN OF"},
        {"id": "b", "text": "WHAT TIME IS IT"},
        {"id": "c", "text": "CLUBS", "continues": "a"},
        {"id": "d", "text": "PLEASE", "continues": "c"},
    ]
    found = chain.join_continuations(records, {0: dict(records[0]), 1: dict(records[1])})
    assert found[0]["text"] == "SEVEN OF CLUBS PLEASE" and found[0]["continued"] == 2
    assert found[1]["text"] == "WHAT TIME IS IT" and "continued" not in found[1]
