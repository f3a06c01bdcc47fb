"""Paths and helpers shared by the deployment tests (imported by name: tests/deploy is on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLOUDML = REPO / "cloudml"
DEPLOY_PY = CLOUDML / "deploy.py"
AZURE_REASON = "azure-ai-ml lives in .venv-deploy: run `make test-deploy`"

# deploy.py imports its package (cloudml/amldeploy) the way `python cloudml/deploy.py` does.
if str(CLOUDML) not in sys.path:
    sys.path.insert(0, str(CLOUDML))

def write_model_folder(folder: Path) -> Path:
    """A folder with a transformers model's layout (config + weights file), for the path checks."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"model_type": "wav2vec2"}')
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    return folder
