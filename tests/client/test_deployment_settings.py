"""The Azure deployment's settings, run locally: the real azmlinfsrv with the environment
variables of cloudml/*/deployment.yml and the model laid out as Azure mounts a registered
custom model (AZUREML_MODEL_DIR/<folder name>), called with sample-client.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import librosa
import pytest
import yaml
from clienttools import as_pcm16, reference_decode, without_scoring_vars

from devkit.local_service import run_scoring_server
from devkit.paths import REPO, SAMPLE_CLIENT

CLOUDML = REPO / "cloudml"


@pytest.mark.slow
def test_deployment_environment_serves_the_mounted_model(
    tiny_ctc_model_dir, demo_wavs, tmp_path, monkeypatch
):
    deployment = yaml.safe_load((CLOUDML / "managed" / "deployment.yml").read_text())
    model = yaml.safe_load((CLOUDML / "model.yml").read_text())
    env = {name: str(value) for name, value in deployment["environment_variables"].items()}
    # Azure: AZUREML_MODEL_DIR=/var/azureml-app/azureml-models/<name>/<version>/<folder>/...
    mount = tmp_path / "azureml-models" / model["name"] / "1"
    shutil.copytree(tiny_ctc_model_dir, mount / Path(model["path"]).name)
    env["AZUREML_MODEL_DIR"] = str(mount)
    monkeypatch.delenv("MODEL_NAME_OR_PATH", raising=False)  # only the mounted model may load

    with run_scoring_server(None, env=env, worker_count=int(env["WORKER_COUNT"])) as server:
        proc = subprocess.run(
            [sys.executable, str(SAMPLE_CLIENT), str(demo_wavs["mono16k"]), "--format", "wav"],
            env={**without_scoring_vars(), "SCORING_URI": server.score_url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        log = server.log()
    assert proc.returncode == 0, proc.stdout + proc.stderr + log[-3000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1].removeprefix("Result: "))
    audio, _ = librosa.load(demo_wavs["mono16k"], sr=16000)
    assert answer["engine"] == "ctc"
    assert answer["result"] == reference_decode(tiny_ctc_model_dir, as_pcm16(audio))
    assert str(mount) in log  # the startup log says where the model came from


def test_managed_and_kubernetes_deployments_configure_the_service_alike():
    """The test above runs the managed settings; the Kubernetes ones must not drift from them."""
    managed, kubernetes = (
        yaml.safe_load((CLOUDML / target / "deployment.yml").read_text())
        for target in ("managed", "kubernetes")
    )
    assert managed["environment_variables"] == kubernetes["environment_variables"]
    assert managed["request_settings"] == kubernetes["request_settings"]
    assert managed["code_configuration"] == kubernetes["code_configuration"]
