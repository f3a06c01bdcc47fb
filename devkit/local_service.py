"""Run the scoring service locally with the real azmlinfsrv, as a subprocess, for as long as needed.

One implementation for everything that needs a live local endpoint: `make demo`
(scripts/demo.py), the tests and the benchmarks.

azmlinfsrv answers `GET /` with 200 only once init() has returned, so "ready" means the model is
loaded and warmed up. Stopping sends SIGTERM to the whole process group (gunicorn's master and
its workers) and SIGKILL if it lingers, so no worker outlives its caller.

Note: azmlinfsrv binds 0.0.0.0 (its host is fixed); we always talk to it on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devkit.paths import SCORE_SCRIPT

# The server's own key and request limits come from the caller's `env` only, never from the
# developer's shell (SCORING_KEY there is usually the CLIENT's key for a remote endpoint).
_NOT_INHERITED = ("AZUREML_MODEL_DIR", "SCORING_KEY", "GUNICORN_CMD_ARGS")

AZMLINFSRV = Path(sys.executable).parent / "azmlinfsrv"


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


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
    """Poll GET / until init() has returned."""
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
    port: int | None = None,
    offline: bool = False,
    entry_script: Path = SCORE_SCRIPT,
    startup_timeout: float = 180.0,
    log_to: Path | None = None,
    gunicorn_args: str | None = None,
    via_make: bool = False,
) -> Iterator[Server]:
    """Serve `entry_script` with azmlinfsrv; yield once it is healthy, stop it afterwards.

    `model` becomes MODEL_NAME_OR_PATH; `env` adds or overrides variables (AZUREML_MODEL_DIR,
    QUANTIZE, ...). `port` is used when free, else any free port. `offline` switches the
    Hugging Face Hub off (tests never download). The log goes to `log_to` or a temp file.
    `gunicorn_args` is GUNICORN_CMD_ARGS; by default the deployment's worker settings
    (scoring/server.py, imported here so that this module loads without gunicorn, as in
    .venv-deploy); "" runs azmlinfsrv's own default (one sync worker), the benchmarks' baseline.
    `via_make` starts it the way the README does, `make serve` (its prerequisite `setup` taken
    as done), with whatever worker the Makefile decides unless `gunicorn_args` is given.
    """
    port = port if port and port_is_free(port) else free_port()
    full_env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    full_env.update(WORKER_COUNT=str(worker_count), PYTHONUNBUFFERED="1")
    if gunicorn_args is None and not via_make:
        from scoring.server import GUNICORN_CMD_ARGS as gunicorn_args
    if gunicorn_args:
        full_env["GUNICORN_CMD_ARGS"] = gunicorn_args
    if offline:
        full_env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if model is not None:
        full_env["MODEL_NAME_OR_PATH"] = str(model)
    full_env.update(env or {})
    if log_to is None:
        fd, name = tempfile.mkstemp(prefix="azmlinfsrv-", suffix=".log")
        os.close(fd)
        log_to = Path(name)
    log_to.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(AZMLINFSRV), "--entry_script", str(entry_script), "--port", str(port)]
    if via_make:
        venv = Path(sys.executable).parent.parent
        cmd = ["make", "--no-print-directory", "-o", "setup", "serve", f"PORT={port}"]
        cmd.append(f"VENV={venv}")
    with open(log_to, "wb") as log_file:
        proc = subprocess.Popen(
            cmd,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=SCORE_SCRIPT.parent.parent if via_make else None,
        )
    server = Server(base_url=f"http://127.0.0.1:{port}", process=proc, log_path=log_to)
    try:
        _wait_healthy(server, startup_timeout)
        yield server
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
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
