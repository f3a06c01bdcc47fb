"""The words a recording is known to begin with (the keyword), sent in the X-Transcript-Prefix
header: Whisper decodes the rest of the audio after them, and the answer leaves them out.

Why: the device keeps the keyword's audio whenever the sentence runs straight on from it (a cut
there loses the first word, edgeml/recorder.py). Left to itself, Whisper tiny.en transcribes a
keyword it does not know as other words ("WHY ARE YOU, JER?" for "voyager", "APORETO." for
"operator"), or merges it with the first word ("1813." for "wildfire, in 1813"): text no
letter match on the device can take off again. Given the keyword as a decoder prefix (the
tokens the first window's transcript is forced to start with, faster-whisper's `prefix`), the
keyword's audio is accounted for by those tokens and decoding goes on after it.

The prefix is a hint, never a requirement: engines that cannot take one (CTC) ignore it and the
answer says so (no "prefix" key); the device then removes the keyword by letters
(edgeml/keywordtext.py). A value that is not a short line of plain words is a 400 naming the
header, never a silent guess.
"""

from __future__ import annotations

import re

from scoring.errors import RequestError

PREFIX_HEADER = "X-Transcript-Prefix"
MAX_PREFIX_CHARS = 64  # a keyword phrase; Whisper's prompt takes at most 223 tokens in all
_ALLOWED = re.compile(r"[A-Za-z0-9 ',.!?-]+")


def check_prefix(value: str | None) -> str | None:
    """The header's value as the prefix to decode after, or None when it is absent or blank.
    Raises RequestError(400) for a value that is too long or holds anything but plain words."""
    if value is None or not value.strip():
        return None
    text = " ".join(value.split())
    if len(text) > MAX_PREFIX_CHARS:
        raise _invalid(f"is {len(text)} characters long; at most {MAX_PREFIX_CHARS} are taken")
    if not _ALLOWED.fullmatch(text):
        raise _invalid("may hold only letters, digits, spaces and ' , . ! ? -")
    if not any(c.isalnum() for c in text):
        raise _invalid("holds no word")
    return text


def without_prefix(text: str, prefix: str) -> tuple[str, bool]:
    """`text` less the prefix it starts with (and the punctuation after it), and whether it did
    start with it. Whisper's first window is forced to begin with the prefix, so it always does
    when the engine took it; a text that does not is returned whole."""
    head = text[: len(prefix)]
    if head.upper() != prefix.upper():
        return text, False
    return text[len(prefix) :].lstrip(" ,.!?;:-"), True


def _invalid(detail: str) -> RequestError:
    return RequestError(400, "invalid_prefix", f"the {PREFIX_HEADER} header {detail}")
