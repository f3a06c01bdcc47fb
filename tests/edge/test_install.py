"""`pip install .` of the device app in a fresh virtual environment gives a working `edgeml`.

What a Raspberry Pi owner does: a new venv, the project's wheel with its dependencies from the
package index (requirements-edge.txt: no torch), then the `edgeml` command with the shipped
keyword model inside the installed package. Run here on x86_64; `make arm64-check` does the same
on arm64 under qemu.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devkit import demo_audio
from devkit.paths import REPO

pytestmark = [pytest.mark.slow, pytest.mark.package_index]

# What the wheel is built from (pyproject.toml names these); copied, so the build writes nothing
# into the checkout and works from a read-only one.
SOURCES = ("pyproject.toml", "README.md", "requirements-edge.txt", "requirements-train.txt",
           "requirements-cloud.txt", "edgeml", "kwtrain", "devkit", "scoring-func/scoring",
           "cloudml/amldeploy")  # fmt: skip


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the project's wheel installed; returns its bin/ folder."""
    work = tmp_path_factory.mktemp("install")
    src, wheels = work / "src", work / "wheels"
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
        timeout=300, capture_output=True, text=True,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    wheel = next(wheels.glob("*.whl"))
    proc = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
        timeout=900, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return venv / "bin"


def test_the_installed_command_runs_the_shipped_model(installed, fault_server, tmp_path):
    listing = subprocess.run(
        [str(installed / "pip"), "list", "--format=freeze"], capture_output=True, text=True
    ).stdout.lower()
    assert "edge-voice-to-text" in listing and "torch" not in listing  # nothing heavy
    help_text = subprocess.run(
        [str(installed / "edgeml"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert help_text.returncode == 0 and "SCORING_URI" in help_text.stdout
    wav = demo_audio.build(tmp_path / "demo")["keyword_then_sentence_wav"]  # what make demo plays
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEML_", "SCORING_"))}
    env["PATH"] = f"{installed}{os.pathsep}{env['PATH']}"
    run = subprocess.run(
        [str(installed / "edgeml"), "--input", str(wav), "--input-speed", "fast", "--once",
         "--endpoint", fault_server.url, "--spool-dir", str(tmp_path / "spool")],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("REC "), run.stdout  # the endpoint's answer, printed
    assert "keyword 'listen' heard" in run.stderr
    where = subprocess.run(
        [str(installed / "python"), "-c", "from edgeml.edgeml import DEFAULT_MODEL as m; print(m)"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    ).stdout.strip()  # fmt: skip
    model = Path(where)
    assert model.is_relative_to(installed.parent) and os.access(model, os.X_OK), where
