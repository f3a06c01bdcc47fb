"""cloudml/deploy.py as a user runs it: --dry-run offline on the real files, clear errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip(
    "azure.ai.ml", reason="azure-ai-ml lives in .venv-deploy: run `make test-deploy`"
)

from deploytools import DEPLOY_PY, REPO, load_deploy  # noqa: E402

deploy = load_deploy()

AZURE_VARS = (
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_RESOURCE_GROUP",
    "AZUREML_WORKSPACE",
    "AZUREML_CONFIG",
)


def run_cli(*args: str, cwd=REPO, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in AZURE_VARS}
    full_env.update(HF_HUB_OFFLINE="1", **env)
    return subprocess.run(
        [sys.executable, str(DEPLOY_PY), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dry_run_passes_on_the_real_files_for_both_targets():
    proc = run_cli("--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "target: managed" in out and "target: kubernetes" in out
    assert out.count("OK: ") == 2
    for line in ("model ", "environment ", "endpoint ", "deployment ", "traffic "):
        assert line in out
    assert "minimal-py311-inference:" in out  # the pinned base image is shown
    if not (REPO / "build" / "model" / "wav2vec2-base-960h").exists():
        assert "downloads facebook/wav2vec2-base-960h" in out  # a fresh clone fetches first


def test_dry_run_makes_no_network_connection(yaml_copy, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network use in a dry run: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    root = yaml_copy()
    assert deploy.main(["--dry-run", "--yaml-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.count("OK: ") == 2


def test_dry_run_with_another_model_folder(yaml_copy, model_dir, capsys):
    root = yaml_copy()
    assert deploy.main(["--dry-run", "--yaml-dir", str(root), "--model-dir", str(model_dir)]) == 0
    out = capsys.readouterr().out
    assert str(model_dir) in out and "downloads" not in out


def test_overrides_reach_the_plan(yaml_copy, capsys):
    root = yaml_copy()
    argv = ["--dry-run", "--yaml-dir", str(root), "--target", "managed"]
    argv += ["--endpoint-name", "my-voice-ep", "--instance-type", "Standard_F4s_v2"]
    assert deploy.main(argv) == 0
    out = capsys.readouterr().out
    assert "endpoint     my-voice-ep" in out and "Standard_F4s_v2" in out


def test_model_folder_without_a_model_is_refused(yaml_copy, tmp_path, capsys):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    root = yaml_copy()
    assert deploy.main(["--dry-run", "--yaml-dir", str(root), "--model-dir", str(empty)]) == 1
    err = capsys.readouterr().err
    assert "empty-model" in err and "config.json" in err


def test_real_run_without_a_workspace_says_what_to_set(tmp_path, model_dir):
    """Checked before any download or upload; no credentials are needed to get this far."""
    proc = run_cli("--target", "managed", "--model-dir", str(model_dir), cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    if "scoring-func" in proc.stderr:  # before the scoring code lands, that is reported first
        pytest.skip("scoring-func/score_audio.py has not landed yet")
    assert "which workspace?" in proc.stderr
    assert "AZURE_SUBSCRIPTION_ID" in proc.stderr


def test_fetch_failure_is_a_clear_message(yaml_copy, tmp_path, monkeypatch, capsys):
    """The Hub cannot be reached (offline here): the user is told to bring a folder instead."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = yaml_copy("model.yml", lambda doc: {**doc, "path": str(tmp_path / "not-yet")})
    assert deploy.main(["--fetch-only", "--yaml-dir", str(root)]) == 1
    err = capsys.readouterr().err
    assert "facebook/wav2vec2-base-960h" in err and "--model-dir" in err
    assert not (tmp_path / "not-yet").exists()


def test_bad_flag_values_exit_with_usage():
    proc = run_cli("--traffic", "150")
    assert proc.returncode == 2 and "--traffic" in proc.stderr
    proc = run_cli("--target", "aks")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_missing_model_dir_is_an_error_not_a_download(yaml_copy, tmp_path, capsys):
    root = yaml_copy()
    missing = tmp_path / "my-model"
    assert deploy.main(["--dry-run", "--yaml-dir", str(root), "--model-dir", str(missing)]) == 1
    err = capsys.readouterr().err
    assert "my-model does not exist" in err
