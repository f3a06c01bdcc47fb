"""cloudml/sample-client.py runs on its own, as people run it on a laptop: in a fresh venv that
holds only what its header names (requests, numpy, soundfile; librosa is optional), from a
folder outside the project, against a real HTTP endpoint. It used to import edgeml and stop
with ModuleNotFoundError outside the project's venv (issue 23)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import soundfile as sf
from clienttools import Reply, scripted_endpoint, without_scoring_vars

from devkit.paths import REPO, SAMPLE_CLIENT

PACKAGES = ("requests", "numpy", "soundfile")  # what the script's header says it needs
VENV = REPO / "build" / "sample-client-venv"  # cached between runs (build/ is ignored)


def _python(folder: Path) -> Path:
    return folder / "bin" / "python"


@pytest.fixture(scope="module")
def bare_python() -> Path:
    """A venv made with `python -m venv` holding only PACKAGES, installed from PyPI by pip."""
    marker = VENV / "installed.json"
    if marker.exists() and json.loads(marker.read_text()) == list(PACKAGES):
        return _python(VENV)
    venv.EnvBuilder(clear=True, with_pip=True).create(VENV)
    pip = subprocess.run(
        [str(_python(VENV)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         *PACKAGES],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if pip.returncode != 0:
        pytest.skip(f"PyPI cannot be reached to make the bare venv: {pip.stderr[-300:]}")
    marker.write_text(json.dumps(list(PACKAGES)))
    return _python(VENV)


def _run(python: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), str(SAMPLE_CLIENT), *args],
        cwd=cwd,
        env={**without_scoring_vars(), "PYTHONNOUSERSITE": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_bare_venv_has_nothing_of_the_project(bare_python, tmp_path):
    probe = subprocess.run(
        [str(bare_python), "-c", "import edgeml"], cwd=tmp_path, capture_output=True, text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, timeout=60,
    )  # fmt: skip
    assert probe.returncode != 0 and "No module named 'edgeml'" in probe.stderr
    assert Path(sys.executable).resolve() != bare_python.resolve()


@pytest.mark.parametrize("fmt", ["wav", "json"])
def test_runs_standalone_with_only_its_stated_packages(bare_python, demo_wavs, tmp_path, fmt):
    audio, rate = sf.read(demo_wavs["stereo22k"], dtype="float32")
    with scripted_endpoint(Reply(body=b'{"result": "HELLO WORLD"}')) as endpoint:
        proc = _run(bare_python, tmp_path, str(demo_wavs["stereo22k"]), "--format", fmt,
                    SCORING_URI=endpoint.url)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-2:] == ["Status code: 200",
                                             'Result: {"result": "HELLO WORLD"}']  # fmt: skip
    (request,) = endpoint.requests
    seconds = len(audio) / rate
    if fmt == "wav":
        import io

        sent, sent_rate = sf.read(io.BytesIO(request["body"]), dtype="int16")
        assert sent_rate == 16000 and sent.ndim == 1
    else:
        sent = json.loads(request["body"])["data"]
    assert len(sent) / 16000 == pytest.approx(seconds, abs=0.01)  # resampled to 16 kHz mono


def test_an_answer_without_a_text_result_is_exit_1_and_escaped(bare_python, demo_wavs, tmp_path):
    bad = Reply(status=500, body=b'{"error": "e", "message": "x\\u001b[2J\\u0007"}')
    with scripted_endpoint(bad) as endpoint:
        proc = _run(bare_python, tmp_path, str(demo_wavs["mono16k"]), SCORING_URI=endpoint.url)
    assert proc.returncode == 1 and "\x1b" not in proc.stderr + proc.stdout
    assert "the service failed (500): e: x\\x1b[2J\\x07" in proc.stderr


@pytest.mark.slow
def test_transcribes_through_the_real_local_service(bare_python, scoring_server, demo_wavs,
                                                    tmp_path):  # fmt: skip
    proc = _run(bare_python, tmp_path, str(demo_wavs["mono16k"]), "--format", "wav",
                SCORING_URI=scoring_server.score_url)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    answer = json.loads(proc.stdout.splitlines()[-1].removeprefix("Result: "))
    assert isinstance(answer["result"], str) and answer["audio_seconds"] > 1


def test_an_endless_answer_is_read_only_so_far(bare_python, demo_wavs, tmp_path):
    """Every read is bounded: a 5 MB answer is refused after 1 MiB, not read into memory."""
    with scripted_endpoint(Reply(body=b"x" * 5_000_000, content_type="text/plain")) as endpoint:
        proc = _run(bare_python, tmp_path, str(demo_wavs["mono16k"]), SCORING_URI=endpoint.url)
    assert proc.returncode == 1 and "larger than 1048576 bytes" in proc.stderr
    assert "Traceback" not in proc.stderr
