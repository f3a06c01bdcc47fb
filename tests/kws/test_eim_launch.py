"""A kwtrain .eim starts from any caller: the SDK's ImpulseRunner in a program whose venv is not
activated, with a `python3` on PATH that has neither numpy nor onnxruntime (issue 23).

With `#!/usr/bin/env python3` that python3 ran the model, which exited 3 at once, and the SDK's
`init()` waited forever. Each test runs the real SDK in a child process with a deadline, so the
old behaviour fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from kws_helpers import LABELS, random_head, random_model

from devkit.paths import venv_command
from kwtrain.embedding.export import export_embedding_eim
from kwtrain.embedding.onnxfiles import FrontEndUnavailable, model_files
from kwtrain.mfcc.export import export_eim

SDK_DEADLINE = 120  # seconds for a child to start the model and classify once (~2 s here)
GONE = "/nonexistent/kwtrain-test/bin/python3"  # an exporting Python that no longer exists

SDK_CALLER = """
import json, sys
from edge_impulse_linux.runner import ImpulseRunner

runner = ImpulseRunner(sys.argv[1], allow_shm=False)
try:
    hello = runner.init()
    n = hello["model_parameters"]["input_features_count"]
    reply = runner.classify([0] * n)
    with open(f"/proc/{runner._runner.pid}/cmdline", "rb") as f:
        argv0 = f.read().split(b"\\0")[0].decode()
    print(json.dumps({"scores": reply["result"]["classification"], "python": argv0}))
finally:
    runner.stop()
"""


def _embedding_files_present() -> bool:
    try:
        model_files()
    except FrontEndUnavailable:
        return False
    return True


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ of a fresh `python -m venv`: its python3 has neither numpy nor onnxruntime."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)  # fmt: skip
    for module in ("numpy", "onnxruntime"):
        probe = subprocess.run([venv / "bin" / "python3", "-c", f"import {module}"],
                               capture_output=True, timeout=60)  # fmt: skip
        assert probe.returncode != 0, f"the bare venv can import {module}"
    return venv / "bin"


@pytest.fixture(scope="module")
def app_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv standing in for the device's: it sees this environment's packages (numpy,
    onnxruntime) through a .pth file, as if they were installed in it."""
    venv = tmp_path_factory.mktemp("app") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)  # fmt: skip
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv)}))
    ours = [p for p in sys.path if p.endswith("site-packages")]
    (site / "zz_test_packages.pth").write_text("\n".join(ours) + "\n")
    return venv


def _sdk_start(eim: Path, path: str, env: dict | None = None) -> dict:
    """Start `eim` through ImpulseRunner in a child whose PATH is `path` (no venv activated),
    classify one window of zeros; the child's report, or a failure saying it hung."""
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), **(env or {})}
    try:
        out = subprocess.run([sys.executable, "-c", SDK_CALLER, str(eim)], env=env,
                             capture_output=True, text=True, timeout=SDK_DEADLINE)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"ImpulseRunner.init() did not return within {SDK_DEADLINE} s (hung)")
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["embedding", "mfcc"])
def test_the_sdk_starts_the_eim_from_an_unactivated_venv(tmp_path, bare_python, kind):
    """PATH has only a bare venv's python3 first: the model runs with the Python that exported
    it (recorded at export) and classifies."""
    if kind == "embedding":
        if not _embedding_files_present():
            pytest.skip("front-end ONNX files missing")
        eim, labels = export_embedding_eim(random_head(), tmp_path / "m.eim"), {"listen", "unknown"}
    else:
        eim, labels = export_eim(random_model(), tmp_path / "m.eim"), set(LABELS)
    got = _sdk_start(eim, f"{bare_python}:/usr/bin:/bin")
    assert set(got["scores"]) == labels
    assert all(0.0 <= v <= 1.0 for v in got["scores"].values())
    assert got["python"] == sys.executable


@pytest.mark.skipif(not _embedding_files_present(), reason="front-end ONNX files missing")
def test_an_eim_inside_the_apps_venv_runs_with_that_venvs_python(app_venv, bare_python):
    """The model shipped in the installed app (…/site-packages/edgeml/models/) runs with the
    app's Python, even when the one that exported it is gone (it was built elsewhere)."""
    site = Path(sysconfig.get_path("purelib", vars={"base": str(app_venv)}))
    eim = export_embedding_eim(random_head(), site / "edgeml" / "models" / "listen.eim", GONE)
    got = _sdk_start(eim, f"{bare_python}:/usr/bin:/bin")
    assert set(got["scores"]) == {"listen", "unknown"}
    assert got["python"] == str(app_venv / "bin" / "python3")


def test_when_the_exporting_python_is_gone_python3_on_path_runs_it(tmp_path):
    eim = export_eim(random_model(), tmp_path / "m.eim", GONE)
    ours = Path(sys.executable).parent
    ours_python3 = ours / "python3"
    if not ours_python3.exists():
        pytest.skip("this environment has no python3 command")
    got = _sdk_start(eim, f"{ours}:/usr/bin:/bin")
    assert set(got["scores"]) == set(LABELS) and got["python"] == "python3"


def test_kwtrain_eim_python_overrides_the_choice(tmp_path, bare_python):
    eim = export_eim(random_model(), tmp_path / "m.eim", GONE)
    got = _sdk_start(eim, f"{bare_python}:/usr/bin:/bin", {"KWTRAIN_EIM_PYTHON": sys.executable})
    assert got["python"] == sys.executable


def test_with_no_usable_python_the_eim_says_why_and_exits_3(tmp_path, bare_python):
    eim = export_eim(random_model(), tmp_path / "m.eim", GONE)
    out = subprocess.run([str(eim), "--print-info"], env={"PATH": f"{bare_python}:/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 3
    assert "needs numpy" in out.stderr and "KWTRAIN_EIM_PYTHON" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_path_with_shell_characters_is_taken_literally(tmp_path):
    """The recorded path is quoted for the shell: spaces, quotes or `$(...)` are a file name."""
    odd = tmp_path / "it's $(touch pwned) dir"
    odd.mkdir()
    python = odd / "python3"
    python.symlink_to(
        shutil.which("python3", path=str(Path(sys.executable).parent)) or sys.executable
    )
    eim = export_eim(random_model(), tmp_path / "m.eim", str(python))
    out = subprocess.run([str(eim), "--print-info"], env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert not (tmp_path / "pwned").exists()
    assert out.returncode == 0, out.stderr[-2000:]


def test_edgeml_reports_what_a_kwtrain_eim_without_numpy_said(tmp_path, bare_python, monkeypatch):
    """The app's EdgeML with a kwtrain .eim made to run under a Python without numpy: a clear
    error naming the model, its exit code and its own message, not a hang."""
    from edgeml.edgeml import EdgeML, ModelError

    eim = export_eim(random_model(), tmp_path / "m.eim", GONE)
    monkeypatch.setenv("KWTRAIN_EIM_PYTHON", str(bare_python / "python3"))
    with pytest.raises(ModelError) as err:
        EdgeML(eim, start_timeout=SDK_DEADLINE).start()
    message = str(err.value)
    assert str(eim) in message and "exited with code 3 at start" in message
    assert "this .eim needs numpy" in message


def test_export_of_an_old_eim_puts_it_behind_the_launcher(tmp_path, bare_python):
    """A model exported with `#!/usr/bin/env python3` (the shipped one, say) gets the launcher
    with `kwtrain export --model old.eim --out new.eim`: same archive, no retraining."""
    from kwtrain.mfcc.export import build_archive

    archive = build_archive(random_model())
    old = tmp_path / "old.eim"
    old.write_bytes(b"#!/usr/bin/env python3\n" + archive)
    new = tmp_path / "new.eim"
    out = subprocess.run([venv_command("kwtrain"), "export", "--model", str(old), "--out", str(new)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert new.read_bytes().startswith(b"#!/bin/sh\n") and new.read_bytes().endswith(archive)
    got = _sdk_start(new, f"{bare_python}:/usr/bin:/bin")
    assert set(got["scores"]) == set(LABELS)


def test_export_refuses_an_eim_it_did_not_make(tmp_path):
    other = tmp_path / "other.eim"
    other.write_bytes(b"#!/bin/sh\nexit 0\n")
    out = subprocess.run([venv_command("kwtrain"), "export", "--model", str(other), "--out",
                          str(tmp_path / "x.eim")], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2 and "not a .eim exported by kwtrain" in out.stderr
    assert not (tmp_path / "x.eim").exists()
