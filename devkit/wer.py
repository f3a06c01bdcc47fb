"""Transcript normalisation and word error rate, shared by tests/cloud and bench/served_wer.py.

One normaliser for every WER in the project (tests, bench/served_wer.py), applied to references
and transcripts alike: lower case, no punctuation, hyphenated words split, the common title
abbreviations spelled out, and numbers written as words the way the reference transcripts say
them:
- "10" -> "ten", "1,000" -> "one thousand", "1813" -> "eighteen thirteen" (1100-1999 read as a
  year), "3rd" -> "third", "5%" -> "five percent";
- digit strings read digit by digit: a number with a leading zero ("01803") or of five digits or
  more ("90210", "10001": codes, phone and account numbers are said that way);
- "oh" said for zero inside a run of digit words ("nine oh two") counts as "zero", so "9 0 2",
  "nine zero two" and "nine oh two" are the same words, while "oh" on its own stays "oh".
"""

from __future__ import annotations

import re

ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_ORDINAL = re.compile(r"(\d+)(st|nd|rd|th)")


def _spoken(spoken: str) -> list[str]:
    return spoken.replace("-", " ").replace(",", "").replace(" and ", " ").split()


def number_words(token: str) -> list[str]:
    """A token of digits as the words a reader says for it (see the module docstring)."""
    from num2words import num2words

    if len(token) >= 5 or (len(token) > 1 and token.startswith("0")):
        return [DIGITS[int(d)] for d in token]
    value = int(token)
    return _spoken(num2words(value, to="year") if 1100 <= value <= 1999 else num2words(value))


def _words(token: str) -> list[str]:
    from num2words import num2words

    if token.isdigit():
        return number_words(token)
    ordinal = _ORDINAL.fullmatch(token)
    if ordinal:
        return _spoken(num2words(int(ordinal.group(1)), to="ordinal"))
    return [ABBREVIATIONS.get(token, token)]


def _oh_as_zero(words: list[str]) -> list[str]:
    """'oh' in a run of digit words that holds at least one digit ("nine oh two", "oh oh
    seven") is the digit zero; an 'oh' with no digit beside it stays."""
    digit_like = [w in DIGITS or w == "oh" for w in words]
    return [
        "zero" if word == "oh" and any(words[j] in DIGITS for j in _run(digit_like, i)) else word
        for i, word in enumerate(words)
    ]


def _run(flags: list[bool], i: int) -> range:
    """Indices of the run of True values around position i."""
    start, stop = i, i + 1
    while start > 0 and flags[start - 1]:
        start -= 1
    while stop < len(flags) and flags[stop]:
        stop += 1
    return range(start, stop)


def normalize(text: str) -> str:
    text = text.lower()
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000 -> 1000
    text = text.replace("%", " percent")
    text = re.sub(r"[-\u2010-\u2015/]", " ", text)
    text = re.sub(r"[^\w\s']", " ", text)
    words: list[str] = []
    for token in text.split():
        token = token.strip("'")
        if token:
            words.extend(_words(token))
    return " ".join(_oh_as_zero(words))


def word_errors(references: list[str], hypotheses: list[str]) -> dict:
    """WER over the whole set (errors / reference words) plus the counts, after normalising."""
    import jiwer

    refs = [normalize(r) for r in references]
    hyps = [normalize(h) for h in hypotheses]
    out = jiwer.process_words(refs, hyps)
    words = out.hits + out.substitutions + out.deletions
    return {
        "wer": out.wer,
        "reference_words": words,
        "substitutions": out.substitutions,
        "deletions": out.deletions,
        "insertions": out.insertions,
    }
