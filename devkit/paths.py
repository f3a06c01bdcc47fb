"""Where things are: the repository, its entry points, and the shared real-speech data."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
EDGE_MAIN = REPO / "edgeml" / "main.py"
SAMPLE_CLIENT = REPO / "cloudml" / "sample-client.py"
DEPLOY_PY = REPO / "cloudml" / "deploy.py"
SCORE_SCRIPT = REPO / "scoring-func" / "score_audio.py"


def venv_command(name: str) -> str:
    """A console command this environment installed (`edgeml`, `kwtrain`, `azmlinfsrv`)."""
    return str(Path(sys.executable).parent / name)


def speech_dir() -> Path | None:
    """The real human recordings beside the checkout (../shared/data/speech), or None.

    `SPEECH_DATA_DIR` overrides the location. The folder exists for developers and CI only;
    tests that need it skip when it is absent, and nothing from it is copied into the project.
    """
    override = os.environ.get("SPEECH_DATA_DIR")
    candidate = Path(override) if override else REPO.parent / "shared" / "data" / "speech"
    return candidate if (candidate / "manifest.csv").is_file() else None


def load_script(path: Path, name: str) -> ModuleType:
    """A script that is not part of a package (cloudml/deploy.py, cloudml/sample-client.py, whose
    name has a hyphen) imported as module `name`, as the tests need it."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
