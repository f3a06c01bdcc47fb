"""devkit/wer.py: the one normaliser behind every WER figure (digits, 'oh' for zero, numbers)."""

from __future__ import annotations

import pytest

from devkit.wer import normalize, word_errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("In 1813.", "in eighteen thirteen"),
        ("10 of clubs", "ten of clubs"),
        ("1,000 people", "one thousand people"),
        ("the 3rd time, 5%", "the third time five percent"),
        ("Mr. Smith's cold-hearted dog", "mister smith's cold hearted dog"),
        # digit strings as they are read: codes digit by digit, 'oh' in a digit run is zero
        (
            "1 0 0 0 1 9 0 2 1 0 0 1 8 0 3",
            "one zero zero zero one nine zero two one zero zero one eight zero three",
        ),
        (
            "1,0001 90210 01803",
            "one zero zero zero one nine zero two one zero zero one eight zero three",
        ),
        ("1-0-0-0-1, 9-0-2-1-0", "one zero zero zero one nine zero two one zero"),
        ("nine oh two one oh zero", "nine zero two one zero zero"),
        ("agent oh oh seven", "agent zero zero seven"),
        # an 'oh' with no digit beside it is the word
        ("Oh, I see. Hello oh hello", "oh i see hello oh hello"),
        ("oh oh", "oh oh"),
    ],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_digit_strings_written_any_way_score_the_same():
    reference = "one zero zero zero one nine oh two one oh zero one eight zero three"
    for hypothesis in ("1 0 0 0 1 9 0 2 1 0 0 1 8 0 3", "1,0001 90210 01803", reference):
        assert word_errors([reference], [hypothesis])["wer"] == 0.0
    assert word_errors([reference], ["1 0 0 0 1 9 0 2 1 0 0 1 8 0 2"])["substitutions"] == 1
