"""End to end: `python edgeml/main.py --once` against the real scoring service (azmlinfsrv)."""

from __future__ import annotations

import pytest
import requests
from edge_helpers import run_main
from support.paths import SCORE_SCRIPT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scoring(request):
    if not SCORE_SCRIPT.exists():
        pytest.skip(f"{SCORE_SCRIPT.relative_to(SCORE_SCRIPT.parents[1])} is not there yet")
    return request.getfixturevalue("scoring_server")


@pytest.mark.parametrize("body", ["wav", "json"])
def test_once_prints_what_the_service_returns_for_the_recorded_sentence(
    scoring, keyword_eim, spoken_file, tmp_path, body
):
    save = tmp_path / "save"
    result = run_main(
        ["--model", keyword_eim, "--input", spoken_file.path, "--endpoint", scoring.score_url,
         "--once", "--input-speed", "fast", "--format", body, "--spool-dir", tmp_path / "spool",
         "--save-dir", save],
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    assert len(printed) == 1 and printed[0].strip()

    (wav,) = save.glob("*.wav")  # exactly what the app recorded and sent
    direct = requests.post(
        scoring.score_url, data=wav.read_bytes(), headers={"Content-Type": "audio/wav"}, timeout=60
    )
    assert direct.status_code == 200, direct.text
    assert printed[0] == direct.json()["result"]
