"""Start the real azmlinfsrv (Azure ML's inference server) on a free port, as a subprocess."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from support.paths import SCORE_SCRIPT, VENV_BIN


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Server:
    """A running azmlinfsrv: where to reach it and where its log goes."""

    base_url: str
    process: subprocess.Popen
    log_path: Path

    @property
    def score_url(self) -> str:
        return f"{self.base_url}/score"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_healthy(server: Server, timeout: float) -> None:
    """Poll GET / until init() has returned (the server answers 200 only after that)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"azmlinfsrv exited with {server.process.returncode}:\n{server.log()[-4000:]}"
            )
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(server.base_url + "/", timeout=2) as resp,
        ):
            if resp.status == 200:
                return
        time.sleep(0.25)
    raise TimeoutError(f"azmlinfsrv not healthy after {timeout:.0f} s:\n{server.log()[-4000:]}")


@contextlib.contextmanager
def run_scoring_server(
    model: str | Path | None = None,
    *,
    env: dict[str, str] | None = None,
    worker_count: int = 1,
    entry_script: Path = SCORE_SCRIPT,
    startup_timeout: float = 180.0,
) -> Iterator[Server]:
    """Serve `entry_script` with the real azmlinfsrv; yield once GET / is healthy, stop after.

    `model` becomes MODEL_NAME_OR_PATH; `env` adds or overrides variables (AZUREML_MODEL_DIR,
    QUANTIZE, MAX_AUDIO_SECONDS, ...). The Hub is switched off: tests never download.
    """
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if k != "AZUREML_MODEL_DIR"}
    full_env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        WORKER_COUNT=str(worker_count),
        PYTHONUNBUFFERED="1",
    )
    if model is not None:
        full_env["MODEL_NAME_OR_PATH"] = str(model)
    full_env.update(env or {})
    log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - must outlive this frame
        prefix="azmlinfsrv-", suffix=".log", delete=False
    )
    cmd = [str(VENV_BIN / "azmlinfsrv"), "--entry_script", str(entry_script), "--port", str(port)]
    proc = subprocess.Popen(
        cmd, env=full_env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
    )
    server = Server(base_url=f"http://127.0.0.1:{port}", process=proc, log_path=Path(log_file.name))
    try:
        _wait_healthy(server, startup_timeout)
        yield server
    finally:
        _stop(proc)
        log_file.close()


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the whole process group (gunicorn master and workers), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
