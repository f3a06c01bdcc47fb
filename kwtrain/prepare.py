"""Turn long takes into 1 s samples, and balance classes: what the write-up did by hand.

`split_by_energy` finds the utterances in a take of a keyword said again and again (frames
louder than the take's own noise floor by a margin, short gaps merged, clicks dropped) and cuts
a 1 s window of the take around each, so the sample keeps the real background around the word.
`split_fixed` cuts a background take (the noise class) into consecutive 1 s pieces.
`balance` keeps N random samples per class and moves the rest to `_unused/<label>/` (names
starting with `_` are ignored by the dataset loader), so nothing is lost.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeml.audioformat import SAMPLE_RATE, AudioFileError, read_audio
from kwtrain.clips import FRAME_SECONDS, frame_db, write_wav
from kwtrain.dataset import DatasetError, load_dataset


@dataclass(frozen=True)
class SplitResult:
    clips: list[np.ndarray]
    starts: list[int]  # sample offset of each clip in the take
    too_long: int
    threshold_db: float


def read_take(path: Path, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Any readable audio file as mono float32 at `rate` (resampled with soxr when needed)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        return read_audio(path, rate)
    except AudioFileError as exc:
        raise DatasetError(f"{path}: not a readable audio file ({exc})") from exc


def segments(
    audio: np.ndarray,
    rate: int,
    threshold_db: float | None = None,
    min_gap: float = 0.2,
    min_length: float = 0.08,
) -> tuple[list[tuple[int, int]], float]:
    """(start, end) samples of the loud parts of a take, and the threshold used (dBFS)."""
    db = frame_db(audio, rate)
    if threshold_db is None:
        floor, peak = np.percentile(db, 10), np.percentile(db, 99.5)
        threshold_db = float(floor + max(6.0, 0.35 * (peak - floor)))
    active = db > threshold_db
    hop = int(rate * FRAME_SECONDS)
    found: list[list[int]] = []
    for i in np.flatnonzero(active):
        if found and i - found[-1][1] <= int(min_gap / FRAME_SECONDS):
            found[-1][1] = i
        else:
            found.append([i, i])
    out = [(a * hop, (b + 1) * hop) for a, b in found if (b + 1 - a) * FRAME_SECONDS >= min_length]
    return out, threshold_db


def split_by_energy(
    audio: np.ndarray, rate: int = SAMPLE_RATE, window_seconds: float = 1.0, **kwargs
) -> SplitResult:
    """A 1 s window of the take centred on each utterance."""
    window = int(rate * window_seconds)
    found, threshold = segments(audio, rate, **kwargs)
    clips, starts, too_long = [], [], 0
    for start, end in found:
        if end - start > window:
            too_long += 1
            continue
        begin = (start + end) // 2 - window // 2
        begin = int(min(max(begin, 0), max(len(audio) - window, 0)))
        clip = audio[begin : begin + window]
        if len(clip) < window:
            clip = np.concatenate([clip, np.zeros(window - len(clip), dtype=np.float32)])
        clips.append(clip)
        starts.append(begin)
    return SplitResult(clips, starts, too_long, threshold)


def split_fixed(
    audio: np.ndarray, rate: int = SAMPLE_RATE, window_seconds: float = 1.0
) -> SplitResult:
    window = int(rate * window_seconds)
    starts = list(range(0, len(audio) - window + 1, window))
    return SplitResult([audio[i : i + window] for i in starts], starts, 0, float("nan"))


def file_take(
    take: Path | np.ndarray,
    label: str,
    out: Path,
    *,
    mode: str = "energy",
    rate: int = SAMPLE_RATE,
    name: str | None = None,
    threshold_db: float | None = None,
) -> dict:
    """Split a take and write its samples to `out/<label>/<label>.<name>.<n>.wav`."""
    audio = take if isinstance(take, np.ndarray) else read_take(take, rate)
    stem = name or (Path(take).stem if not isinstance(take, np.ndarray) else "take")
    if mode == "energy":
        result = split_by_energy(audio, rate, threshold_db=threshold_db)
    elif mode == "fixed":
        result = split_fixed(audio, rate)
    else:
        raise ValueError(f"unknown split mode {mode!r} (energy or fixed)")
    written = []
    for i, clip in enumerate(result.clips):
        written.append(
            str(write_wav(Path(out) / label / f"{label}.{stem}.{i:04d}.wav", clip, rate))
        )
    return {
        "label": label,
        "seconds": round(len(audio) / rate, 2),
        "samples": len(written),
        "too_long_skipped": result.too_long,
        "threshold_dbfs": None if np.isnan(result.threshold_db) else round(result.threshold_db, 1),
        "files": written,
    }


def balance(root: Path, per_class: int, seed: int = 0) -> dict:
    """Keep `per_class` random samples of each class; move the rest to `_unused/<label>/`."""
    dataset = load_dataset(root)
    rng = random.Random(seed)
    report: dict = {"kept": {}, "moved": {}, "short": {}}
    for label in dataset.labels:
        paths = sorted(s.path for s in dataset.samples if s.label == label)
        rng.shuffle(paths)
        extra = paths[per_class:]
        for p in extra:
            dest = Path(root) / "_unused" / label / p.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(p), dest)
        report["kept"][label] = min(len(paths), per_class)
        report["moved"][label] = len(extra)
        if len(paths) < per_class:
            report["short"][label] = per_class - len(paths)
    return report
