"""`make demo`, the README's first command: keyword -> recording -> local service -> transcript."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from devkit import demo
from devkit import demo_audio as make_demo_audio
from devkit.paths import REPO


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


@pytest.fixture
def no_hub(monkeypatch, tmp_path) -> Path:
    """A machine whose Hugging Face cache is empty and whose Hub is switched off."""
    monkeypatch.delenv("MODEL_NAME_OR_PATH", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads HF_HOME when first imported (maybe already, by another test).
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    return tmp_path / "hf"


def test_without_cache_or_hub_the_offline_whisper_is_chosen(no_hub):
    model, why = demo.choose_model()
    assert model == str(demo.offline_whisper_path())
    assert "unreachable" in why


def test_a_cached_wav2vec2_is_preferred(no_hub, tiny_ctc_model_dir):
    """Lay the model out as huggingface_hub caches it; the real cache lookup must find it."""
    repo = no_hub / "hub" / "models--facebook--wav2vec2-base-960h"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for f in tiny_ctc_model_dir.iterdir():
        (snapshot / f.name).symlink_to(f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    model, why = demo.choose_model()
    assert model == demo.HUB_MODEL
    assert "cache" in why


def test_model_name_or_path_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("MODEL_NAME_OR_PATH", str(tmp_path))
    assert demo.choose_model() == (str(tmp_path), "MODEL_NAME_OR_PATH is set")


@pytest.mark.slow
def test_make_demo_prints_the_demo_sentence(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MODEL_NAME_OR_PATH", "MAKEFLAGS", "MAKELEVEL")
    }
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", PORT="0")
    proc = subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    said = normalise(make_demo_audio.SENTENCE)
    transcripts = [
        line for line in proc.stdout.splitlines() if not line.startswith(("[demo]", "$ "))
    ]
    assert [normalise(t) for t in transcripts] == [said], proc.stdout
    assert "Whisper" in proc.stdout  # it said which model it chose, and why
    run = json.loads((REPO / "build" / "demo" / "last-run.json").read_text())
    assert run["exit_code"] == 0
