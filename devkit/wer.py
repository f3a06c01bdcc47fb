"""Transcript normalisation and word error rate, shared by tests/cloud and bench/served_wer.py.

Normalised the usual way before scoring: lower case, no punctuation, hyphenated words split,
numbers written as words ("10" -> "ten", "1813" -> "eighteen thirteen", read as a year the way
the reference transcripts spell years), and the common title abbreviations spelled out.
"""

from __future__ import annotations

import re

ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


def number_words(value: int) -> str:
    from num2words import num2words

    spoken = num2words(value, to="year") if 1100 <= value <= 1999 else num2words(value)
    return spoken.replace("-", " ").replace(",", "").replace(" and ", " ")


def normalize(text: str) -> str:
    text = text.lower()
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000 -> 1000
    text = re.sub(r"[-\u2010-\u2015/]", " ", text)
    text = re.sub(r"[^\w\s']", " ", text)
    words = []
    for token in text.split():
        token = token.strip("'")
        if not token:
            continue
        if token.isdigit():
            words.extend(number_words(int(token)).split())
        else:
            words.append(ABBREVIATIONS.get(token, token))
    return " ".join(words)


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
