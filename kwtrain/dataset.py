"""Datasets in Edge Impulse's layouts, checked before any training starts.

Accepted layouts (all 16 kHz WAV):

    data/listen/*.wav  data/noise/*.wav  data/unknown/*.wav      a folder per label
    data/listen.01.wav data/noise.rec3.wav ...                    `label.*.wav` (EI's uploader)
    data/training/... and data/testing/...                         Studio's export: fixed split

An optional `manifest.csv` (columns `file,label,group`) in a folder names the group of each
file (the speaker or voice): the held-out split keeps whole groups out of training, so the
test figures are about unseen voices. Without it each file is its own group.

Problems are collected and reported together, one line each, naming the file and what to do.
A folder whose bootstrap did not finish (its `.kwtrain-bootstrap.json` says so) is refused
whole: a half-made set trains a model that lacks classes.
"""

from __future__ import annotations

import csv
import json
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from edgeml.audioformat import SAMPLE_RATE

IGNORED_FILES = {"manifest.csv", "info.labels", "readme.md", "readme.txt", "report.json"}
SPLIT_FOLDERS = {"training": "train", "testing": "test"}


class DatasetError(ValueError):
    """A problem with the user's dataset, worded so that they can fix it."""


MARKER = ".kwtrain-bootstrap.json"


def bootstrap_state(folder: Path) -> str | None:
    """The bootstrap's state in `folder`: "complete"; "incomplete" (one started there and did
    not finish); None (no bootstrap made this folder, or it predates the marker)."""
    marker = Path(folder) / MARKER
    if not marker.is_file():
        return None
    try:
        with marker.open("rb") as fh:
            done = json.loads(fh.read(64 * 1024)).get("complete") is True
    except (OSError, ValueError, AttributeError):
        done = False  # a marker cut off mid-write: the run did not finish either
    return "complete" if done else "incomplete"


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str
    group: str
    split: str  # "train" or "test"


@dataclass(frozen=True)
class Dataset:
    root: Path
    samples: tuple[Sample, ...]
    labels: tuple[str, ...]

    def of(self, split: str) -> list[Sample]:
        return [s for s in self.samples if s.split == split]

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for split in ("train", "test"):
            c = Counter(s.label for s in self.samples if s.split == split)
            out[split] = {label: c.get(label, 0) for label in self.labels}
        return out


def _is_ignored(path: Path) -> bool:
    return path.name.startswith((".", "_")) or path.name.lower() in IGNORED_FILES


def _read_manifest(folder: Path) -> dict[str, str]:
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        return {}
    with manifest.open(newline="") as fh:
        return {row["file"]: row["group"] for row in csv.DictReader(fh) if row.get("group")}


def _label_from_name(path: Path) -> str:
    return path.name.split(".", 1)[0]


def _collect(folder: Path, problems: list[str]) -> list[tuple[Path, str]]:
    """(file, label) pairs of one layout folder; empty label folders are problems."""
    found: list[tuple[Path, str]] = []
    for entry in sorted(folder.iterdir()):
        if _is_ignored(entry):
            continue
        if entry.is_dir():
            files = [f for f in sorted(entry.iterdir()) if f.is_file() and not _is_ignored(f)]
            wavs = [f for f in files if f.suffix.lower() == ".wav"]
            if not wavs:
                problems.append(
                    f"class '{entry.name}' is empty: {entry} has no .wav samples "
                    "(add samples or remove the folder)"
                )
            found.extend((f, entry.name) for f in files)
        else:
            found.append((entry, _label_from_name(entry)))
    return found


def _check_file(path: Path, rate: int, problems: list[str]) -> None:
    if path.suffix.lower() != ".wav":
        problems.append(
            f"{path}: not a WAV file (samples must be 16-bit PCM .wav; convert it, e.g. "
            f"`sox '{path.name}' -r {rate} -c 1 -b 16 out.wav`, or move it out of the dataset)"
        )
        return
    try:
        info = sf.info(str(path))
    except RuntimeError as exc:  # soundfile's LibsndfileError
        problems.append(f"{path}: not a readable WAV file ({exc})")
        return
    if info.format != "WAV":
        problems.append(f"{path}: has a .wav name but is {info.format}, not WAV")
    elif info.samplerate != rate:
        problems.append(
            f"{path}: sample rate {info.samplerate} Hz, the model needs {rate} Hz "
            f"(resample: `sox in.wav -r {rate} out.wav`)"
        )
    elif info.frames == 0:
        problems.append(f"{path}: contains no audio")


def _split_of(group: str, test_fraction: float, seed: int, holdout: set[str]) -> str:
    if group in holdout:
        return "test"
    bucket = zlib.crc32(f"{seed}:{group}".encode()) % 10_000
    return "test" if bucket < test_fraction * 10_000 else "train"


def load_dataset(
    root: Path,
    *,
    rate: int = SAMPLE_RATE,
    keyword: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    holdout_groups: tuple[str, ...] = (),
) -> Dataset:
    """Scan and validate `root`; raise DatasetError listing every problem found."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    if bootstrap_state(root) == "incomplete":
        raise DatasetError(
            f"dataset {root} is incomplete: the bootstrap that made it did not finish "
            "(interrupted?). Make it again: run the same `kwtrain bootstrap` again, or "
            "`kwtrain build --fresh-data ...`"
        )
    split_dirs = {
        d: SPLIT_FOLDERS[d.name] for d in root.iterdir() if d.is_dir() and d.name in SPLIT_FOLDERS
    }
    problems: list[str] = []
    samples: list[Sample] = []
    layout: dict[Path, str | None] = dict(split_dirs) or {root: None}
    for folder, fixed_split in layout.items():
        groups = _read_manifest(folder)
        for path, label in _collect(folder, problems):
            _check_file(path, rate, problems)
            rel = path.relative_to(folder).as_posix()
            group = groups.get(rel, f"file:{rel}")
            split = fixed_split or _split_of(group, test_fraction, seed, set(holdout_groups))
            samples.append(Sample(path, label, group, split))
    labels = tuple(sorted({s.label for s in samples}))
    if not problems:
        if not samples:
            problems.append(f"{root} has no samples (expected a folder per label, or label.*.wav)")
        elif len(labels) < 2:
            problems.append(
                f"only one class ({labels[0]}): add at least one other, e.g. noise and unknown"
            )
        if keyword and samples and keyword not in labels:
            problems.append(
                f"no class named '{keyword}' (the keyword); classes: {', '.join(labels)}"
            )
    if problems:
        shown = problems[:20] + (
            [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
        )
        raise DatasetError(f"dataset {root} is not usable:\n  - " + "\n  - ".join(shown))
    return Dataset(root=root, samples=tuple(samples), labels=labels)


def read_clip(path: Path, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 in [-1, 1]; channels are averaged."""
    audio, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    if file_rate != rate:
        raise DatasetError(f"{path}: sample rate {file_rate} Hz, expected {rate} Hz")
    return audio.mean(axis=1)
