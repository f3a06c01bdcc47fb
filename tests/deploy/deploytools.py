"""Paths and helpers shared by the deployment tests."""

from __future__ import annotations

from pathlib import Path

from devkit.paths import DEPLOY_PY, REPO, load_script

CLOUDML = REPO / "cloudml"
AZURE_REASON = "azure-ai-ml lives in .venv-deploy: run `make test-deploy`"


def load_deploy():
    """cloudml/deploy.py as the module `deploy` (its package amldeploy is installed)."""
    return load_script(DEPLOY_PY, "deploy")


def write_model_folder(folder: Path) -> Path:
    """A folder with a transformers model's layout (config + weights file), for the path checks."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "wav2vec2"}')
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    return folder
