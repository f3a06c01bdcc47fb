"""Splitting a long take of repeated keywords into 1 s samples, and balancing classes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from devkit.paths import venv_command
from kwtrain import noise, tts
from kwtrain.clips import write_wav
from kwtrain.dataset import load_dataset
from kwtrain.prepare import balance, file_take, split_by_energy

KWTRAIN = venv_command("kwtrain")
RATE = 16000


def take_of_repeated_keyword(count: int, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """The keyword said `count` times by different voices with pauses, over a noise floor."""
    rng = np.random.default_rng(seed)
    parts, centres, pos = [], [], 0
    voices = ["en-us", "en-gb+f2", "en-us+m3", "en-gb-scotland+m1", "en-us+f4", "en-029"]
    for i in range(count):
        gap = np.zeros(int(rng.uniform(0.5, 1.2) * RATE), dtype=np.float32)
        word = tts.synthesize("listen", tts.Voice(voices[i % len(voices)], speed=150)) * 0.6
        centroid = np.sum(np.arange(len(word)) * word**2) / np.sum(word**2)  # energy centre
        centres.append(pos + len(gap) + int(centroid))
        parts += [gap, word]
        pos += len(gap) + len(word)
    parts.append(np.zeros(RATE // 2, dtype=np.float32))
    audio = np.concatenate(parts)
    return audio + noise.make("pink", len(audio), RATE, -55.0, rng), centres


def test_split_by_energy_finds_every_utterance() -> None:
    audio, centres = take_of_repeated_keyword(7)
    result = split_by_energy(audio, RATE)
    assert len(result.clips) == 7
    assert all(len(c) == RATE for c in result.clips)
    for clip, start, centre in zip(result.clips, result.starts, centres, strict=True):
        np.testing.assert_array_equal(clip, audio[start : start + RATE])  # cut from the take
        assert abs(start + RATE // 2 - centre) < 0.15 * RATE, "the word is in the middle"
        assert np.sqrt(np.mean(clip**2)) > 10 * 10 ** (-55 / 20), "the clip holds speech"


def test_fixed_split_and_files(tmp_path: Path) -> None:
    bg = noise.make("hum+pink", int(3.5 * RATE), RATE, -40.0, np.random.default_rng(1))
    info = file_take(bg, "noise", tmp_path, mode="fixed", name="kitchen")
    assert info["samples"] == 3
    names = sorted(p.name for p in (tmp_path / "noise").iterdir())
    assert names == ["noise.kitchen.0000.wav", "noise.kitchen.0001.wav", "noise.kitchen.0002.wav"]
    assert sf.info(tmp_path / "noise" / names[0]).samplerate == RATE


def test_balance_moves_extras_aside(tmp_path: Path) -> None:
    for label, n in (("listen", 5), ("noise", 2), ("unknown", 9)):
        for i in range(n):
            write_wav(tmp_path / label / f"{label}.{i}.wav", np.zeros(RATE) + 0.01, RATE)
    report = balance(tmp_path, 4)
    assert report["kept"] == {"listen": 4, "noise": 2, "unknown": 4}
    assert report["short"] == {"noise": 2}
    counts = load_dataset(tmp_path, test_fraction=0.0).counts()["train"]
    assert counts == {"listen": 4, "noise": 2, "unknown": 4}
    assert len(list((tmp_path / "_unused" / "unknown").iterdir())) == 5


def test_prepare_command_resamples_and_files_a_take(tmp_path: Path) -> None:
    audio, _ = take_of_repeated_keyword(4, seed=2)
    import soxr

    take = tmp_path / "take44k.wav"
    sf.write(take, soxr.resample(audio, RATE, 44100), 44100, subtype="PCM_16")
    out = subprocess.run(
        [
            KWTRAIN,
            "prepare",
            "--out",
            str(tmp_path / "data"),
            "--input",
            str(take),
            "--label",
            "listen",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["takes"][0]["samples"] == 4
    assert len(list((tmp_path / "data" / "listen").glob("listen.take44k.*.wav"))) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "missing.wav", "--label", "listen"], "missing.wav: no such file"),
        (["--input", "x.wav"], "--input needs --label"),
        ([], "nothing to do"),
    ],
)
def test_prepare_errors(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "x.wav").write_bytes(b"")
    out = subprocess.run(
        [KWTRAIN, "prepare", "--out", str(tmp_path / "d"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
