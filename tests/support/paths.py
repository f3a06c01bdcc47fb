"""Where things are: the repository, its entry points, and the shared real-speech data."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EDGE_MAIN = REPO / "edgeml" / "main.py"


def speech_dir() -> Path | None:
    """The real human recordings beside the checkout (../shared/data/speech), or None.

    `SPEECH_DATA_DIR` overrides the location. The folder exists for developers and CI only;
    tests that need it skip when it is absent, and nothing from it is copied into the project.
    """
    override = os.environ.get("SPEECH_DATA_DIR")
    candidate = Path(override) if override else REPO.parent / "shared" / "data" / "speech"
    return candidate if (candidate / "manifest.csv").is_file() else None
