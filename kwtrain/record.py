"""Data acquisition on the device: record a take from the microphone, file it as 1 s samples.

What the write-up did in Studio's "Data acquisition" tab (say the keyword again and again for
a few minutes, then split the take), on the device itself. The capture is the edge app's own
(`edgeml.sources.MicSource`: device choice by index or name, 16 kHz or resampled, mono), so
there is one capture path in the project. The take is split by `prepare.file_take`.
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
