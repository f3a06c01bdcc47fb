"""What the keyword is not: real background audio (split by file) and generated confusable words.

Real background comes from a folder laid out like ../shared/data/speech (`speech_long/`,
`music_tv/`, `noise_bed/`, `kw_neg/`, `utt/`, `noise/`, each with WAV/FLAC files). Every group
is split by FILE into train / calibration / test parts with a fixed hash of the file name, so
the split does not depend on what else is in the folder:

    train        negatives for the head, and (noise_bed, music_tv) the beds the synthetic
                 keyword is mixed into
    calibration  the threshold is chosen here (at most 1 false wake per hour)
    test         false wakes per hour and the 10 dB evaluation mix (never trained on)

`negatives_long/` (hours of speech, noise and music in files of up to 10 minutes, Ogg Opus) is
split differently, so that the test part holds hours: by file, within each source (the first two
parts of the file name, `speech_ljspeech_003.ogg` -> `speech_ljspeech`, so every source is in
the test part), with LONG_FRACTIONS (8 / 16 / 76 %). Of ../shared's 2.55 h this gives 0.02 h
to training (one music track), 0.41 h to calibration (one LJ Speech file, one file of coffee
orders, three music tracks) and 2.12 h to the test part; with the other groups, the parts hold
0.65 / 0.68 / 2.41 h.

Every file is checked for its length before it is decoded (MAX_FILE_SECONDS): a file longer than
that is left out with a warning instead of filling the memory.

Confusable words are generated: vocabulary words whose espeak-ng phonemes are near the
keyword's, parts of the keyword (each word of a phrase, syllable prefixes and suffixes as
phonemes), and rhymes (a different first consonant).
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import numpy as np

from edgeml.keywordtext import edit_distance
from kwtrain import synth, vocab

BACKGROUND_GROUPS = (
    "speech_long", "music_tv", "noise_bed", "kw_neg", "utt", "noise", "negatives_long",
    "background",  # the user's room, recorded by `kwtrain record --label background`
)  # fmt: skip
SPLITS = ("train", "calibration", "test")
FRACTIONS = (0.5, 0.25, 0.25)
# hours of audio for the test part: most of it to test, a little to training (no .5 ties in
# the rounding for 1, 2, 5 or 16 files: 5 files -> 0 / 1 / 4, 16 -> 1 / 3 / 12)
LONG_FRACTIONS = (0.08, 0.16, 0.76)
BY_SOURCE = {"negatives_long": LONG_FRACTIONS}  # groups split within each source
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus")
MAX_FILE_SECONDS = 3600.0  # longer files are left out (decoded whole: 230 MB as float32)


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


def source_of(path: Path) -> str:
    """The source a file of a BY_SOURCE group comes from: `speech_ljspeech_003` ->
    `speech_ljspeech` (kind and source, the folder's naming)."""
    return "_".join(path.stem.split("_")[:2])


def split_by_source(files: list[Path], fractions: tuple[float, ...]) -> dict[str, list]:
    """split_files within each source, joined: every source reaches every part it can."""
    out: dict[str, list] = {s: [] for s in SPLITS}
    for src in sorted({source_of(p) for p in files}):
        for split, part in split_files(
            [p for p in files if source_of(p) == src], fractions
        ).items():
            out[split] += part
    return {k: sorted(v) for k, v in out.items()}


def seconds_of(path: Path) -> float | None:
    """The file's length from its header (no decoding); None when it cannot be read."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError):  # LibsndfileError is a RuntimeError
        return None
    return info.frames / info.samplerate if info.samplerate else None


def usable(path: Path, max_seconds: float = MAX_FILE_SECONDS) -> bool:
    """An audio file that can be decoded whole: readable and at most `max_seconds` long."""
    sec = seconds_of(path)
    if sec is None or sec > max_seconds:
        why = "unreadable" if sec is None else f"{sec / 60:.0f} min, over {max_seconds / 60:.0f}"
        print(f"background: {path} left out ({why})", file=sys.stderr)
        return False
    return True


def background(
    root: Path | list[Path], groups: tuple[str, ...] = BACKGROUND_GROUPS
) -> dict[str, dict]:
    """{split: {group: [files]}} of the background folder, or of several folders joined
    (../shared, the user's room, fetched audio); missing groups are skipped."""
    roots = [Path(r) for r in root] if isinstance(root, list | tuple) else [Path(root)]
    out: dict[str, dict] = {s: {} for s in SPLITS}
    for g in groups:
        folders = [r / g for r in roots if (r / g).is_dir()]
        if not folders:
            continue
        files = sorted(
            (p for f in folders for p in f.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES),
            key=lambda p: (p.name, str(p)),
        )
        if g in BY_SOURCE or g == "background":  # long files: checked before decoding
            files = [p for p in files if usable(p)]
        parts = split_by_source(files, BY_SOURCE[g]) if g in BY_SOURCE else split_files(files)
        for split, part in parts.items():
            out[split][g] = part
    return out


def hours(bg: dict[str, dict], split: str) -> dict[str, float]:
    """Hours of audio per group (and per source of BY_SOURCE groups) in one part: what a
    threshold was calibrated on, or what false wakes per hour were counted over."""
    out: dict[str, float] = {}
    for g, files in bg.get(split, {}).items():
        for p in files:
            name = f"{g}/{source_of(p)}" if g in BY_SOURCE else g
            out[name] = out.get(name, 0.0) + (seconds_of(p) or 0.0) / 3600
    return {k: round(v, 3) for k, v in sorted(out.items())}


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
