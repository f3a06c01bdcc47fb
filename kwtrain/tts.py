"""Speech synthesis with espeak-ng: the project's own audio (demo recordings, bootstrap data).

The project ships no third-party recordings; whatever audio it needs it speaks itself. espeak-ng
(Debian package `espeak-ng`) writes a 22.05 kHz WAV to stdout; it is read with soundfile and
resampled to 16 kHz with soxr, so no temporary files and no sox binary are needed.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from edgeml.audioformat import SAMPLE_RATE, resample


class TTSUnavailable(RuntimeError):
    """espeak-ng is not installed."""


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: language + variant (e.g. `en-us+m3`), speed (wpm) and pitch (0-99)."""

    name: str = "en-us"
    speed: int = 150
    pitch: int = 50

    def __str__(self) -> str:
        return f"{self.name}@{self.speed}wpm/p{self.pitch}"


def espeak_path() -> str:
    """The espeak-ng binary, or a clear error saying how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise TTSUnavailable(
            "espeak-ng is not installed (Debian/Ubuntu: sudo apt install espeak-ng)"
        )
    return path


def list_variants() -> list[str]:
    """The voice variants espeak-ng knows (`m1`, `f3`, `klatt`, ...), for varied bootstrap data."""
    out = subprocess.run(
        [espeak_path(), "--voices=variant"], capture_output=True, text=True, check=True
    ).stdout
    return [line.split()[4].removeprefix("!v/") for line in out.splitlines()[1:] if line.strip()]


def synthesize(text: str, voice: Voice = Voice(), sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speak `text`; return mono float32 samples in [-1, 1] at `sample_rate`.

    The text goes in on stdin, never as an argument: text that starts with a dash
    (`-f/etc/hostname`) would be an option to espeak-ng (it read that file aloud)."""
    cmd = [espeak_path(), "-v", voice.name, "-s", str(voice.speed), "-p", str(voice.pitch)]
    wav = subprocess.run(
        [*cmd, "--stdout", "--stdin"], input=text.encode(), capture_output=True, check=True
    ).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), rate, sample_rate)


def silence(seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    return np.zeros(int(round(seconds * sample_rate)), dtype=np.float32)
