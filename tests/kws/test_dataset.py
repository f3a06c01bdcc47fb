"""Dataset layouts, and clear messages (with exit code 2 from the CLI) for malformed ones."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from devkit.paths import venv_command
from kwtrain.dataset import DatasetError, load_dataset

KWTRAIN = venv_command("kwtrain")


def tone(path: Path, rate: int = 16000, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * t), rate, subtype="PCM_16")
    return path


def good_dataset(root: Path) -> Path:
    for label in ("listen", "noise", "unknown"):
        for i in range(3):
            tone(root / label / f"{label}.{i}.wav")
    return root


def test_folder_per_label(tmp_path: Path) -> None:
    ds = load_dataset(good_dataset(tmp_path / "d"), keyword="listen")
    assert ds.labels == ("listen", "noise", "unknown")
    assert len(ds.samples) == 9


def test_label_dot_names_and_fixed_split(tmp_path: Path) -> None:
    root = tmp_path / "d"
    for split in ("training", "testing"):
        for label in ("listen", "noise"):
            tone(root / split / f"{label}.abc123.wav")
    (root / "training" / "info.labels").write_text("{}")  # Studio export metadata: ignored
    ds = load_dataset(root, keyword="listen")
    assert ds.labels == ("listen", "noise")
    assert {(s.label, s.split) for s in ds.samples} == {
        ("listen", "train"),
        ("noise", "train"),
        ("listen", "test"),
        ("noise", "test"),
    }


def test_manifest_groups_are_held_out_whole(tmp_path: Path) -> None:
    root = good_dataset(tmp_path / "d")
    rows = ["file,label,group"] + [
        f"{label}/{label}.{i}.wav,{label},voice{i}"
        for label in ("listen", "noise", "unknown")
        for i in range(3)
    ]
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(root, holdout_groups=("voice1",), test_fraction=0.0)
    assert {s.group for s in ds.of("test")} == {"voice1"}
    assert len(ds.of("test")) == 3


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda r: [p.unlink() for p in (r / "noise").iterdir()], "class 'noise' is empty"),
        (lambda r: (r / "listen" / "notes.mp3").write_bytes(b"ID3"), "notes.mp3: not a WAV file"),
        (lambda r: tone(r / "unknown" / "cd.wav", rate=44100), "sample rate 44100 Hz"),
        (lambda r: (r / "listen" / "fake.wav").write_text("hello"), "fake.wav: not a readable"),
    ],
    ids=["empty-class", "non-wav", "wrong-rate", "corrupt-wav"],
)
def test_malformed_dataset_messages(tmp_path: Path, break_it, message: str) -> None:
    root = good_dataset(tmp_path / "d")
    break_it(root)
    with pytest.raises(DatasetError, match=message):
        load_dataset(root, keyword="listen")


def test_all_problems_are_listed_together(tmp_path: Path) -> None:
    root = good_dataset(tmp_path / "d")
    (root / "listen" / "a.txt").write_text("x")
    tone(root / "noise" / "b.wav", rate=8000)
    with pytest.raises(DatasetError) as err:
        load_dataset(root)
    assert "a.txt" in str(err.value) and "b.wav" in str(err.value)


def test_missing_keyword_class_and_single_class(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no class named 'stop'"):
        load_dataset(good_dataset(tmp_path / "d"), keyword="stop")
    tone(tmp_path / "one" / "listen" / "a.wav")
    with pytest.raises(DatasetError, match="only one class"):
        load_dataset(tmp_path / "one")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")


def test_cli_reports_a_malformed_dataset_without_a_traceback(tmp_path: Path) -> None:
    root = good_dataset(tmp_path / "d")
    tone(root / "listen" / "hifi.wav", rate=48000)
    out = subprocess.run(
        [KWTRAIN, "train", "--data", str(root), "--out", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "hifi.wav: sample rate 48000 Hz" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "m" / "model.npz").exists()


@pytest.mark.parametrize(
    "command", [[], ["bootstrap"], ["prepare"], ["train"], ["export"], ["evaluate"], ["build"]]
)
def test_help(command: list[str]) -> None:
    out = subprocess.run([KWTRAIN, *command, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "usage: kwtrain" in out.stdout
