"""Fixtures for the keyword-model tests (helpers: kws_helpers.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


@pytest.fixture
def eim_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put this interpreter's folder first on PATH, as the edge app does for its .eim."""
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
