"""deploy.py run by an interpreter without azure-ai-ml (the main .venv): a message, no traceback."""

from __future__ import annotations

import subprocess
import sys

from devkit.paths import REPO


def test_deploy_py_says_which_venv_to_use():
    proc = subprocess.run(
        [sys.executable, str(REPO / "cloudml" / "deploy.py"), "--dry-run"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "azure-ai-ml is not installed" in proc.stderr
    assert "make deploy-setup" in proc.stderr
    assert "Traceback" not in proc.stderr
