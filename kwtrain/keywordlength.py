"""What to expect of a keyword from its length in syllables, said before `kwtrain build` trains.

Short keywords are missed far more often: the model has less sound to go on, and more of what
people say sounds like a word of one syllable. The syllables are counted by espeak-ng (the
synthesizer that speaks the training data): the vowel nuclei of its phoneme transcription (`-x
--sep`, one token per phoneme: vowels, diphthongs and syllabic consonants such as `n-`).

MEASURED below is copied from bench/results/kws_syllables.json, which `bench/kws_syllables.py`
makes from the real-speaker results already in bench/results (nothing retrained for it):

- kws_real*.json and kws_threshold.json: `bench/kws_real.py` / `bench/kws_threshold.py`, the
  default recipe (`kwtrain build --keyword K`, no recordings), real speakers of
  ../shared/data/speech (kw_real; stop: Speech Commands) in real noise beds at 10 dB SNR, 250 ms
  hops, at the model's stated threshold; for each keyword the latest file that measured it;
- e2e.json: `bench/e2e.py`, the whole app on 16 real speakers per keyword at 10 dB ("keyword
  missed"), the models `kwtrain build` made on 2026-12-07.

tests/kws/test_keywordlength.py checks that MEASURED matches that file.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from kwtrain.tts import TTSUnavailable

SOURCE = "bench/results/kws_syllables.json"
SHORT = 2  # at most this many syllables: suggest a longer phrase
PHRASES = ("hey {k}", "okay {k}", "hello {k}")  # longer phrases tried for a short keyword
GOOD = range(3, 5)  # syllables of the phrases suggested (3-4: the measured keywords doing best)
_VOWEL_START = set("@3aAeEiIoOuUV0")  # espeak-ng's English vowel phoneme names start with these
TIMEOUT_S = 20


@dataclass(frozen=True)
class Measured:
    keyword: str
    syllables: int
    miss_10db: float  # share of real speakers missed at 10 dB SNR, at the stated threshold
    trials: int
    source: str  # the result file under bench/results


MEASURED: tuple[Measured, ...] = (
    Measured("stop", 1, 0.822, 135, "kws_real_stop_round2.json"),
    Measured("snowboy", 2, 0.062, 16, "e2e.json"),
    Measured("snowboy", 2, 0.018, 325, "kws_threshold.json"),
    Measured("wildfire", 2, 0.0, 16, "e2e.json"),
    Measured("alexa", 3, 0.0, 16, "e2e.json"),
    Measured("alexa", 3, 0.043, 280, "kws_threshold.json"),
    Measured("smart mirror", 3, 0.0, 16, "e2e.json"),
    Measured("smart mirror", 3, 0.058, 308, "kws_threshold.json"),
    Measured("voyager", 3, 0.125, 16, "e2e.json"),
    Measured("operator", 4, 0.312, 16, "e2e.json"),
)


def phoneme_tokens(text: str, voice: str = "en-us") -> list[str]:
    """espeak-ng's phonemes of `text`, one token each, stress marks dropped. TTSUnavailable
    when espeak-ng is missing or fails."""
    try:
        out = subprocess.run(  # text on stdin: never taken as an option
            ["espeak-ng", "-q", "-x", "--sep=_", "-v", voice, "--stdin"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            timeout=TIMEOUT_S,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise TTSUnavailable(f"counting syllables needs espeak-ng ({exc})") from None
    tokens = []
    for word in out.split():
        tokens += [t.strip("',%=") for t in word.split("_") if t.strip("',%=")]
    return tokens


def is_nucleus(token: str) -> bool:
    return token[0] in _VOWEL_START or token.endswith("-")


def syllables(text: str) -> int:
    """The number of syllables espeak-ng says `text` has (vowel nuclei of its phonemes)."""
    return sum(is_nucleus(t) for t in phoneme_tokens(text))


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %".replace(".0 %", " %")


def _measured_line(rows: list[Measured]) -> str:
    """`2-6 % missed: snowboy 1.8 % of 325 (kws_threshold.json), 6.2 % of 16 (e2e.json); ...`"""
    by_kw: dict[str, list[Measured]] = {}
    for r in rows:
        by_kw.setdefault(r.keyword, []).append(r)
    parts = [
        f"{kw} " + ", ".join(f"{_pct(r.miss_10db)} of {r.trials} ({r.source})" for r in rs)
        for kw, rs in by_kw.items()
    ]
    lo, hi = min(r.miss_10db for r in rows), max(r.miss_10db for r in rows)
    span = _pct(lo) if lo == hi else f"{_pct(lo).removesuffix(' %')}-{_pct(hi)}"
    return f"{span} missed: " + "; ".join(parts)


def suggestions(keyword: str) -> list[tuple[str, int]]:
    """Longer phrases for a short keyword with their syllables: those of 3-4 syllables, else
    all tried."""
    tried = [(p.format(k=keyword), syllables(p.format(k=keyword))) for p in PHRASES]
    good = [t for t in tried if t[1] in GOOD]
    return good or tried


def expectation(keyword: str) -> str:
    """The lines `kwtrain build` prints before training: the keyword's syllables, what the
    measured keywords with as many syllables got, and for a short one longer phrases."""
    n = syllables(keyword)
    unit = "syllable" if n == 1 else "syllables"
    lines = [f'"{keyword}" has {n} {unit} (espeak-ng: {" ".join(phoneme_tokens(keyword))}).']
    same = [r for r in MEASURED if r.syllables == n]
    where = (
        f"real speakers at 10 dB SNR, at the stated threshold, speech-embedding front end "
        f"(the default; {SOURCE})"
    )
    if same:
        lines.append(f"Measured keywords of {n} {unit} on {where}: {_measured_line(same)}.")
    else:
        counts = sorted({r.syllables for r in MEASURED})
        lines.append(
            f"No measured keyword has {n} {unit} (measured: {', '.join(map(str, counts))})."
        )
    longer = [r for r in MEASURED if r.syllables in GOOD]
    if n <= SHORT and longer:
        lines.append(f"Keywords of 3-4 syllables: {_measured_line(longer)}.")
        lines.append(_advice(keyword, same, longer))
    return "\n".join(lines)


def _advice(keyword: str, same: list[Measured], longer: list[Measured]) -> str:
    """The suggestion for a short keyword, worded by what the measurements show."""
    phrases = ", ".join(f'"{p}" ({s} syllables)' for p, s in suggestions(keyword))
    if same and min(r.miss_10db for r in same) > max(r.miss_10db for r in longer):
        why = "keywords this short were missed more often than every measured longer one"
    else:
        why = "few keywords were measured, and a longer phrase gives the model more to go on"
    return f"Consider a longer phrase ({why}): e.g. {phrases}, as --keyword."
