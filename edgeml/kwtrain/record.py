"""Data acquisition on the device: record a take from the microphone, file it as 1 s samples.

What the write-up did in Studio's "Data acquisition" tab (say the keyword again and again for
a few minutes, then split the take), on the device itself. The capture is the edge app's own
(`sources.MicSource`: device choice by index or name, 16 kHz or resampled, mono), so there is
one capture path in the project; only where `edgeml/sources.py` is absent (kwtrain copied
elsewhere) a minimal blocking pyaudio reader stands in. The take is split by
`prepare.file_take`.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kwtrain.clips import write_wav
from kwtrain.prepare import file_take

RATE = 16000
STALL_SECONDS = 5.0


class RecordError(RuntimeError):
    """The microphone could not be opened or delivered no audio."""


def capture(seconds: float, device: str | None = None) -> np.ndarray:
    """`seconds` of 16 kHz mono audio (float32 in [-1, 1]) from the input device."""
    try:
        from sources import AudioSourceError, MicSource
    except ImportError:  # the edge app's capture is not there: a minimal blocking reader
        return _capture_pyaudio(seconds, device)
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
    return np.concatenate(blocks)[:wanted].astype(np.float32) / 32768.0


def _capture_pyaudio(seconds: float, device: str | None) -> np.ndarray:
    """Blocking 16 kHz mono reads, device by index or name part (no resampling fallback)."""
    try:
        import pyaudio
    except ImportError as exc:
        raise RecordError("pyaudio is not installed (pip install pyaudio)") from exc
    pa = pyaudio.PyAudio()
    try:
        index = None
        if device:
            inputs = [
                pa.get_device_info_by_index(i)
                for i in range(pa.get_device_count())
                if pa.get_device_info_by_index(i)["maxInputChannels"] > 0
            ]
            found = [d for d in inputs if device == str(d["index"]) or device in d["name"]]
            if not found:
                names = ", ".join(f"{d['index']}: {d['name']}" for d in inputs)
                raise RecordError(f"no input device matches {device!r} (inputs: {names})")
            index = int(found[0]["index"])
        try:
            stream = pa.open(rate=RATE, channels=1, format=pyaudio.paInt16, input=True,
                             input_device_index=index, frames_per_buffer=1600)  # fmt: skip
        except OSError as exc:
            raise RecordError(f"cannot open the input device: {exc}") from exc
        chunks = []
        for _ in tqdm(range(int(np.ceil(seconds * 10))), desc="recording", unit="x100ms"):
            chunks.append(np.frombuffer(stream.read(1600, exception_on_overflow=False), np.int16))
        stream.close()
    finally:
        pa.terminate()
    return np.concatenate(chunks)[: int(seconds * RATE)].astype(np.float32) / 32768.0


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
