"""The keyword's own words, taken off the front of a transcript.

The recorder sends the keyword with the sentence (recorder.py: a cut between the two loses the
first word whenever the person runs on without a pause, because the spotter fires up to half a
second after the keyword ends). The speech model then hears "Alexa, what time is it?" and this
module prints "What time is it?". Commercial assistants do the same: the cloud gets the wake
word's audio and drops it from the text.

A speech model spells a keyword in many ways ("Snow boy", "Alexis", "SMART MIRROR,"), so the match
is on letters only, with an edit distance relative to the keyword's length. It looks at the first
few words only (fillers such as "okay" or the end of someone's previous sentence may come
first), and for a keyword of several words also for its last words alone (a model that heard
"mirror" of "smart mirror"). Nothing is removed when nothing matches: a transcript never loses a
word that is not the keyword's.

The letter match is the fallback. Where the service can decode after known words (Whisper), the
device names the keyword in the request (`transcript_prefix`) and the answer comes back without
it: a keyword heard as other words ("WHY ARE YOU, JER?" for "voyager") is then gone too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LEAD_WORDS = 2  # words before the keyword that may be dropped with it ("okay", "hey")
MAX_DISTANCE = 0.4  # edit distance / keyword letters for a match at the very start
MAX_DISTANCE_LATER = 0.25  # stricter when words before it would be dropped too
_LETTERS = re.compile(r"[^0-9a-z]+")
_PLAIN_WORDS = re.compile(r"[A-Za-z0-9']+( [A-Za-z0-9']+)*")
MAX_PREFIX_CHARS = 60  # the service takes 64 (scoring-func/scoring/prefix.py)
_LEADING_PUNCTUATION = re.compile(r"^[\s,.;:!?\-–—…\"'»«]+")


@dataclass(frozen=True)
class Match:
    """The transcript's words [start, end) are the keyword, at `distance` (0 = exact)."""

    start: int
    end: int
    distance: float


def letters(text: str) -> str:
    """Lower-case letters and digits only: what two spellings of one word share."""
    return _LETTERS.sub("", text.lower())


def spoken_form(label: str) -> str:
    """A model's label as words: Edge Impulse labels are often "hello_world" or "hey-edge"."""
    return " ".join(re.split(r"[\s_\-]+", label.strip()))


def transcript_prefix(label: str | None) -> str | None:
    """The words a recording that keeps the keyword begins with, as the service's
    X-Transcript-Prefix header takes them ("smart_mirror" -> "Smart mirror,"): Whisper decodes
    the sentence after them and leaves them out of the answer (scoring-func/scoring/prefix.py).
    None when the label has no plain word to send (the letter match above still applies)."""
    words = spoken_form(label or "")
    if not _PLAIN_WORDS.fullmatch(words) or len(words) > MAX_PREFIX_CHARS:
        return None  # other scripts, symbols, a damaged record: nothing is better than a guess
    return f"{words[:1].upper()}{words[1:]},"


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute one letter each cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _forms(keyword: str) -> list[str]:
    """The keyword's letters, and for several words each run of its last words."""
    words = [letters(w) for w in spoken_form(keyword).split()]
    words = [w for w in words if w]
    return ["".join(words[k:]) for k in range(len(words)) if len("".join(words[k:])) >= 3] or [
        "".join(words)
    ]


def find_keyword(words: list[str], keyword: str) -> Match | None:
    """Where the keyword sits among the first words of a transcript, if it does."""
    forms = [f for f in _forms(keyword) if f]
    if not forms or not words:
        return None
    n = len(spoken_form(keyword).split())
    best: Match | None = None
    for start in range(min(MAX_LEAD_WORDS + 1, len(words))):
        limit = MAX_DISTANCE if start == 0 else MAX_DISTANCE_LATER
        for length in range(1, n + 3):
            if start + length > len(words):
                break
            said = "".join(letters(w) for w in words[start : start + length])
            if not said:
                continue
            for form in forms:
                d = edit_distance(said, form) / len(form)
                if d <= limit and (best is None or d < best.distance):
                    best = Match(start, start + length, d)
        if best is not None and best.distance == 0.0:
            break
    return best


def strip_keyword(text: str, keyword: str | None) -> str:
    """The transcript without the keyword (and the few words before it) at its front."""
    if not keyword or not text:
        return text
    words = text.split()
    match = find_keyword(words, keyword)
    if match is None:
        return text
    rest = _LEADING_PUNCTUATION.sub("", " ".join(words[match.end :]))
    if rest and words[match.start][:1].isupper() and rest[0].islower():
        rest = rest[0].upper() + rest[1:]  # "Alexa, what time" -> "What time"
    return rest
