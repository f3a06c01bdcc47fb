"""Data acquisition on the device: record a take from the microphone, file it as 1 s samples.

What the write-up did in Studio's "Data acquisition" tab (say the keyword again and again for
a few minutes, then split the take), on the device itself. The capture is the edge app's own
(`edgeml.sources.MicSource`: device choice by index or name, 16 kHz or resampled, mono), so
there is one capture path in the project. The take is split by `prepare.file_take`.

The label `background` is the room itself (`record_room`): the take is kept whole, as one-minute
WAV pieces under `out/background/`, which `kwtrain build --data out` uses as real background
(kwtrain/background.py): 1 s samples would be shorter than the model's 2.25 s window.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgeml.audioformat import SAMPLE_RATE as RATE
from edgeml.audioformat import int16_to_float
from edgeml.sources import AudioSourceError, MicSource
from kwtrain.clips import write_wav
from kwtrain.prepare import file_take

STALL_SECONDS = 5.0


class RecordError(RuntimeError):
    """The microphone could not be opened or delivered no audio."""


def capture(seconds: float, device: str | None = None) -> np.ndarray:
    """`seconds` of 16 kHz mono audio (float32 in [-1, 1]) from the input device."""
    blocks: list[np.ndarray] = []
    wanted = int(seconds * RATE)
    source = MicSource(device or None)
    try:
        source.start(blocks.append)
    except (AudioSourceError, OSError) as exc:
        source.stop()
        raise RecordError(str(exc)) from exc
    try:
        got, last_change, last_got = 0, time.monotonic(), 0
        with tqdm(total=round(seconds), desc="recording", unit="s") as bar:
            while got < wanted:
                time.sleep(0.1)
                got = sum(len(b) for b in list(blocks))
                bar.update(min(round(got / RATE), round(seconds)) - bar.n)
                if got != last_got:
                    last_change, last_got = time.monotonic(), got
                elif time.monotonic() - last_change > STALL_SECONDS:
                    raise RecordError(f"no audio from the input for {STALL_SECONDS:.0f} s")
    finally:
        source.stop()
    return int16_to_float(np.concatenate(blocks)[:wanted])


def record_take(
    *,
    label: str,
    seconds: float,
    out: Path,
    device: str | None = None,
    mode: str = "energy",
    keep_take: bool = False,
) -> dict:
    """Record, split and file under `out/<label>/`; optionally keep the whole take."""
    audio = capture(seconds, device)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"rec{stamp}"
    info = file_take(audio, label, Path(out), mode=mode, name=name)
    info.pop("files")
    if keep_take:
        info["take"] = str(write_wav(Path(out) / "_takes" / f"{label}.{name}.wav", audio, RATE))
    return info


ROOM_PIECE_SECONDS = 60.0


def record_room(*, seconds: float, out: Path, device: str | None = None) -> dict:
    """Record the room for `seconds` and file it as one-minute pieces under out/background/
    (split by file into train / calibration / test by the build, like any background)."""
    from kwtrain.background import ROOM_LABEL

    audio = capture(seconds, device)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return file_room(audio, Path(out) / ROOM_LABEL, f"room-{stamp}")


def file_room(audio: np.ndarray, folder: Path, name: str) -> dict:
    """`audio` as `name-NNN.wav` pieces of ROOM_PIECE_SECONDS (the last one kept when at least
    10 s long); returns the files and the seconds filed."""
    n = int(ROOM_PIECE_SECONDS * RATE)
    files = []
    for i, start in enumerate(range(0, len(audio), n)):
        piece = audio[start : start + n]
        if len(piece) < 10 * RATE and files:
            break
        files.append(str(write_wav(folder / f"{name}-{i:03d}.wav", piece, RATE)))
    return {"label": "background", "folder": str(folder), "files": len(files),
            "seconds": round(len(audio) / RATE, 1)}  # fmt: skip
