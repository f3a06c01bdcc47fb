"""Fixtures of the deployment tests. They run in .venv-deploy (`make test-deploy`); collected from
.venv, every module skips (each starts with pytest.importorskip("azure.ai.ml")).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from deploytools import CLOUDML, REPO, write_model_folder


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    return write_model_folder(tmp_path / "model")


@pytest.fixture()
def yaml_copy(tmp_path: Path) -> Callable[..., Path]:
    """Copy cloudml/'s deployment files to a temp folder with absolute paths, editable per test.

    Returns edit(relative_file=None, change=None) -> the copy's folder. `change` gets the parsed
    YAML (or a Dockerfile's text) and returns the new content.
    """
    root = tmp_path / "cloudml"
    shutil.copytree(CLOUDML / "managed", root / "managed")
    shutil.copytree(CLOUDML / "kubernetes", root / "kubernetes")
    env_dir = root / "environment"
    env_dir.mkdir()
    shutil.copy(CLOUDML / "environment" / "Dockerfile", env_dir / "Dockerfile")
    (env_dir / "requirements-cloud.txt").symlink_to(REPO / "requirements-cloud.txt")
    shutil.copy(CLOUDML / "environment.yml", root / "environment.yml")
    model = yaml.safe_load((CLOUDML / "model.yml").read_text())
    model["path"] = str(write_model_folder(tmp_path / "model"))
    (root / "model.yml").write_text(yaml.safe_dump(model))
    # The scoring code folder: only its existence is checked here (tests/cloud test the code).
    code_dir = tmp_path / "scoring-func"
    code_dir.mkdir()
    (code_dir / "score_audio.py").write_text("def init():\n    pass\n\n\ndef run(raw):\n    pass\n")
    for target in ("managed", "kubernetes"):
        dep_file = root / target / "deployment.yml"
        dep = yaml.safe_load(dep_file.read_text())
        dep["code_configuration"]["code"] = str(code_dir)
        dep_file.write_text(yaml.safe_dump(dep))

    def edit(relative: str | None = None, change: Callable | None = None) -> Path:
        if relative is not None and change is not None:
            path = root / relative
            if path.suffix == ".yml":
                path.write_text(yaml.safe_dump(change(yaml.safe_load(path.read_text()))))
            else:
                path.write_text(change(path.read_text()))
        return root

    return edit
