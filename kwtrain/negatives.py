"""What the keyword is not: real background audio (split by file) and generated confusable words.

Real background comes from a folder laid out like ../shared/data/speech (`speech_long/`,
`music_tv/`, `noise_bed/`, `kw_neg/`, `utt/`, `noise/`, each with WAV/FLAC files). Every group
is split by FILE into train / calibration / test parts with a fixed hash of the file name, so
the split does not depend on what else is in the folder:

    train        negatives for the head, and (noise_bed, music_tv) the beds the synthetic
                 keyword is mixed into
    calibration  the threshold is chosen here (at most 1 false wake per hour)
    test         false wakes per hour and the 10 dB evaluation mix (never trained on)

Confusable words are generated: vocabulary words whose espeak-ng phonemes are near the
keyword's, parts of the keyword (each word of a phrase, syllable prefixes and suffixes as
phonemes), and rhymes (a different first consonant).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from edgeml.keywordtext import edit_distance
from kwtrain import synth, vocab

BACKGROUND_GROUPS = ("speech_long", "music_tv", "noise_bed", "kw_neg", "utt", "noise")
SPLITS = ("train", "calibration", "test")
FRACTIONS = (0.5, 0.25, 0.25)
AUDIO_SUFFIXES = (".wav", ".flac")


def _rank(name: str) -> float:
    return int(hashlib.sha256(name.encode()).hexdigest()[:12], 16) / 16**12


def split_files(files: list[Path], fractions: tuple[float, ...] = FRACTIONS) -> dict[str, list]:
    """Files of one group, assigned to splits by a hash of their names (sorted by hash, then cut
    at the fractions), so every split gets its share even in small groups."""
    ranked = sorted(files, key=lambda p: _rank(p.name))
    n = len(ranked)
    cuts = np.round(np.cumsum(fractions) * n).astype(int)
    out, lo = {}, 0
    for split, hi in zip(SPLITS, cuts, strict=True):
        out[split] = ranked[lo:hi]
        lo = hi
    return out


def background(root: Path, groups: tuple[str, ...] = BACKGROUND_GROUPS) -> dict[str, dict]:
    """{split: {group: [files]}} of the background folder (missing groups are skipped)."""
    out: dict[str, dict] = {s: {} for s in SPLITS}
    for g in groups:
        folder = Path(root) / g
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        for split, part in split_files(files).items():
            out[split][g] = part
    return out


def _vowel_cuts(ph: str) -> list[int]:
    return [m.end() for m in synth._PHONEME.finditer(ph)]


def confusables(keyword: str, rng: np.random.Generator, n_words: int = 40) -> list[str]:
    """Texts (words, or [[phonemes]]) that sound like the keyword or like part of it."""
    kw = keyword.lower().strip()
    target = synth.phonemes(kw).replace("'", "").replace(",", "")
    words = vocab.negative_words(kw)
    scored = []
    for w in words:
        p = synth.phonemes(w).replace("'", "").replace(",", "")
        scored.append((edit_distance(p, target) / max(len(target), len(p)), w))
    scored.sort()
    out = [w for _, w in scored[:n_words]]
    parts = kw.split()
    if len(parts) > 1:
        out += parts
    full = synth.phonemes(kw)
    cuts = _vowel_cuts(full)
    for c in cuts[:-1]:  # prefixes ending after a vowel, and the matching suffixes
        out.append(f"[[{full[:c]}]]")
        rest = full[c:].lstrip(" ")
        if _PHON_OK.search(rest):
            out.append(f"[[{rest}]]")
    onset = re.match(r"[^aeiouAEIOU@3V']+", full.lstrip("'"))
    for c in ("b", "d", "g", "h", "k", "m", "p", "r", "t", "w", "f", "s"):
        body = full.lstrip("'")[onset.end() if onset else 0 :]
        cand = f"[[{c}{body}]]"
        if c != (onset.group() if onset else ""):
            out.append(cand)
    seen: set[str] = set()
    return [t for t in out if not (t in seen or seen.add(t))]


_PHON_OK = re.compile(r"[aeiouAEIOU@3V]")


def other_words(keyword: str) -> list[str]:
    return vocab.negative_words(keyword)


def sentences(keyword: str) -> list[str]:
    return vocab.negative_sentences(keyword)
