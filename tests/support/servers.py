"""The real azmlinfsrv for tests and benchmarks: scripts/local_service.py with the Hub switched off."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from support.paths import REPO

sys.path.insert(0, str(REPO / "scripts"))
from local_service import Server, free_port  # noqa: E402
from local_service import run_scoring_server as _run  # noqa: E402

__all__ = ["Server", "free_port", "run_scoring_server"]


@contextlib.contextmanager
def run_scoring_server(model: str | Path | None = None, **kwargs) -> Iterator[Server]:
    """Serve scoring-func/score_audio.py on a free port, never downloading from the Hub."""
    kwargs.setdefault("offline", True)
    with _run(model, **kwargs) as server:
        yield server
