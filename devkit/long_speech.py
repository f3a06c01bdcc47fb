"""Long recordings made of real sentences, and which sentences a transcript of them lost.

Whisper reads audio in 30 s windows; a sentence cut by a window edge, or one after a long pause
in room noise, is where a long transcript loses words or makes some up. The real utt/ sentences
of ../shared/data/speech, joined with pauses of 0.5-8 s filled with real room noise (noise_bed/)
or a quiet noise floor, make such a recording with a known transcript (about 90 s: three
windows). Shared by bench/served_wer.py and tests/cloud/test_scoring_whisper.py.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np

from devkit.wer import normalize

RATE = 16000
GAPS = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds of pause after each sentence, in turn
# One real LibriSpeech sentence (8.7 s) and its reference: the Whisper tests' clip.
LIBRI_CLIP = "utt/libri_1995-1837-0001.wav"
LIBRI_TEXT = (
    "it was the first great sorrow of his life it was not so much the loss of the cotton itself "
    "but the fantasy the hopes the dreams built around it"
)


def utterance_files(root: Path) -> list[tuple[Path, str]]:
    """The utt/ clips (16 kHz mono 16-bit WAV) and their reference transcripts, manifest order."""
    with open(root / "manifest.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row["group"] == "utt"]
    return [(root / row["file"], row["transcript"]) for row in rows]


def utterances(root: Path) -> tuple[list[str], list[np.ndarray]]:
    """The utt/ reference transcripts and clips (float32, 16 kHz), in manifest order."""
    import soundfile as sf

    files = utterance_files(root)
    return [text for _, text in files], [sf.read(p, dtype="float32")[0] for p, _ in files]


def room_noise(root: Path) -> list[np.ndarray]:
    """The noise_bed/ recordings (dishes, cafe, city, rain, ...), float32 16 kHz."""
    import soundfile as sf

    return [sf.read(p, dtype="float32")[0] for p in sorted((root / "noise_bed").glob("*.wav"))]


def long_recording(
    sentences: list[np.ndarray], noise: list[np.ndarray] | None = None, level_db: float = -45.0
) -> np.ndarray:
    """The sentences end to end with pauses between them: real room noise scaled to `level_db`
    dBFS RMS (one noise recording per pause, in turn), or a quiet Gaussian floor without it."""
    rng = np.random.default_rng(0)
    parts = []
    for i, (clip, gap) in enumerate(zip(sentences, itertools.cycle(GAPS))):
        n = int(gap * RATE)
        if noise:
            bed = np.resize(noise[i % len(noise)], n)
            bed = bed / (np.sqrt(np.mean(bed**2)) + 1e-9) * 10 ** (level_db / 20)
        else:
            bed = rng.normal(0, 10 ** (level_db / 20), n)
        parts += [clip, bed.astype(np.float32)]
    return np.concatenate(parts)


def lost_sentences(references: list[str], transcript: str) -> list[int]:
    """Indices of the references (in order) of which over half the words are missing from the
    one long transcript (jiwer's alignment of the joined references against it)."""
    import jiwer

    refs = [normalize(r).split() for r in references]
    owner = [i for i, words in enumerate(refs) for _ in words]
    out = jiwer.process_words(" ".join(" ".join(w) for w in refs), normalize(transcript) or "-")
    missing = [0] * len(refs)
    for chunk in out.alignments[0]:
        if chunk.type == "delete":
            for k in range(chunk.ref_start_idx, chunk.ref_end_idx):
                missing[owner[k]] += 1
    return [i for i, words in enumerate(refs) if missing[i] * 2 > len(words)]
