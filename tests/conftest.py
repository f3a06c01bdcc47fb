"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.models import build_ctc_model
from support.paths import speech_dir as _speech_dir
from support.servers import Server, run_scoring_server

# Markers from the fixtures a test uses (directly or through other fixtures), so that a run with
# neither a sound server nor torch (the arm64 check: `-m "not sound_server and not
# scoring_service"`) selects by what the tests need, with no list of test names to keep up.
FIXTURE_MARKERS = {"virtual_mic": "sound_server", "scoring_server": "scoring_service"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in set(getattr(item, "fixturenames", ())) & FIXTURE_MARKERS.keys():
            item.add_marker(FIXTURE_MARKERS[fixture])


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    """../shared/data/speech (real human recordings); the test skips when it is absent."""
    found = _speech_dir()
    if found is None:
        pytest.skip("real speech data (../shared/data/speech) is not present")
    return found


@pytest.fixture(scope="session")
def tiny_ctc_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Wav2Vec2ForCTC + processor saved with save_pretrained (real 32-symbol vocab)."""
    return build_ctc_model(tmp_path_factory.mktemp("tiny-ctc"), tiny=True)


@pytest.fixture(scope="session")
def scoring_server(tiny_ctc_model_dir: Path) -> Iterator[Server]:
    """The real azmlinfsrv serving scoring-func/score_audio.py with the tiny model."""
    with run_scoring_server(tiny_ctc_model_dir) as server:
        yield server
