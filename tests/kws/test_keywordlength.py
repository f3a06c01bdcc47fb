"""`kwtrain build` says, before training, what to expect of a keyword of its length.

Syllables come from a real espeak-ng phonemisation; the table of measured miss rates
(kwtrain/keywordlength.py) must be the one bench/kws_syllables.py wrote from the results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from devkit.paths import REPO, venv_command
from kwtrain import keywordlength as kl

needs_espeak = pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng not installed")


@needs_espeak
@pytest.mark.parametrize(
    ("text", "count"),
    [("stop", 1), ("snowboy", 2), ("wildfire", 2), ("alexa", 3), ("smart mirror", 3),
     ("voyager", 3), ("operator", 4), ("hey jarvis", 3), ("button", 2)],
)  # fmt: skip
def test_syllables_from_espeak_phonemes(text: str, count: int) -> None:
    assert kl.syllables(text) == count


def test_the_table_is_the_benchmark_result() -> None:
    result = json.loads((REPO / kl.SOURCE).read_text())
    points = {
        (p["keyword"], p["syllables"], p["miss_10db"], p["trials"], p["source"])
        for p in result["points"]
    }
    assert {
        (m.keyword, m.syllables, m.miss_10db, m.trials, m.source) for m in kl.MEASURED
    } == points
    for m in kl.MEASURED:
        assert (REPO / "bench" / "results" / m.source).is_file()


def build(keyword: str, tmp_path, **env: str) -> subprocess.CompletedProcess:
    """`kwtrain build` with a front-end folder that lacks its files: it stops (exit 3) before any
    data is generated, after what it says first."""
    empty = tmp_path / "no-frontend"
    empty.mkdir(exist_ok=True)
    return subprocess.run(
        [venv_command("kwtrain"), "build", "--keyword", keyword, "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "KWTRAIN_FRONTEND_DIR": str(empty), **env},
    )  # fmt: skip


@needs_espeak
def test_build_warns_about_a_one_syllable_keyword(tmp_path) -> None:
    out = build("stop", tmp_path)
    assert out.returncode == 3, out.stderr[-2000:]
    lines = out.stderr.splitlines()
    assert lines[0] == 'kwtrain build: "stop" has 1 syllable (espeak-ng: s t2 0 p).'
    said = "\n".join(lines[:-1])
    assert "82.2 % missed: stop 82.2 % of 135 (kws_real_stop_round2.json)" in said
    assert "alexa 0 % of 16 (e2e.json), 4.3 % of 280 (kws_threshold.json)" in said
    assert '"okay stop" (3 syllables)' in said and "longer phrase" in said
    assert '"hey stop"' not in said  # 2 syllables: not long enough to suggest
    assert "front-end model files missing" in lines[-1]  # then the build goes on (and stops)


@needs_espeak
def test_build_of_a_three_syllable_keyword_suggests_nothing(tmp_path) -> None:
    out = build("alexa", tmp_path)
    assert out.returncode == 3, out.stderr[-2000:]
    assert '"alexa" has 3 syllables' in out.stderr
    assert "0-12.5 % missed" in out.stderr and "voyager 12.5 % of 16" in out.stderr
    assert "longer phrase" not in out.stderr


def test_build_goes_on_without_espeak(tmp_path) -> None:
    """Without espeak-ng the count is skipped with a reason; the build is not stopped by it."""
    bare = tmp_path / "bin"
    bare.mkdir()
    out = build("stop", tmp_path, PATH=str(bare))
    assert out.returncode == 3, out.stderr[-2000:]
    assert "syllables of 'stop' not counted: counting syllables needs espeak-ng" in out.stderr
    assert "Traceback" not in out.stderr
