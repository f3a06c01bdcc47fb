"""Keywords and labels as the trainer takes them: checked before any file is written.

A keyword is three things at once: text a synthesizer speaks, the name of a class folder
(`<out>/<keyword>/`) and part of an output file name (`<out>/<keyword>.eim`). So it must be
short spoken text that is also a safe file name: letters and digits, with single spaces,
hyphens, apostrophes or underscores between them. That rules out a path (`../z`, `a/b`), an
option for a program (`-f/etc/hostname` starts with a dash), an empty name, control characters,
and text too long to say inside the model's window (every clip of a 200-character keyword was
dropped as too long, leaving a model with no keyword class).
"""

from __future__ import annotations

import argparse
import re

MAX_KEYWORD_CHARS = 32  # "hey computer" is 12; a 1 s window holds about 3 syllables
_NAME = re.compile(r"[^\W_]+(?:[ '_-][^\W_]+)*")


class BadName(ValueError):
    """A keyword or label the trainer cannot use, with the rule it breaks."""


def check_keyword(text: str, what: str = "keyword") -> str:
    """`text` when it is a usable keyword/label, else BadName saying which rule it breaks."""
    if not text:
        raise BadName(f"the {what} is empty: give the word to detect, e.g. --keyword listen")
    if len(text) > MAX_KEYWORD_CHARS:
        raise BadName(
            f"the {what} has {len(text)} characters, over the {MAX_KEYWORD_CHARS}-character "
            "limit (a keyword must fit in the model's 1 s window)"
        )
    if not _NAME.fullmatch(text):
        raise BadName(
            f"the {what} {text!r} is not a plain word or phrase: use letters and digits, "
            "with single spaces, hyphens, apostrophes or underscores between them "
            "(it names a folder and a file, so no '/', '.', or a leading '-')"
        )
    return text


def keyword_arg(text: str) -> str:
    """argparse `type=` for --keyword: a bad keyword is a usage error (exit 2)."""
    try:
        return check_keyword(text)
    except BadName as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def label_arg(text: str) -> str:
    """argparse `type=` for --label (a class folder name, by the keyword's rules)."""
    try:
        return check_keyword(text, "label")
    except BadName as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def slug(keyword: str) -> str:
    """The keyword as a file-name part (`smart mirror` -> `smart_mirror`): the .eim's default
    name and the benchmarks' folders."""
    return re.sub(r"[^a-z0-9]+", "_", keyword.lower()).strip("_") or "keyword"
