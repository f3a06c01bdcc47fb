"""The safe gunicorn worker is the default wherever the project's files decide (issue 23).

gunicorn's master picks the worker before the entry script loads, so the project sets
GUNICORN_CMD_ARGS in the image, the deployments and `make serve`; the service says in its log
which worker it runs, with a warning on azmlinfsrv's own sync worker, where one idle connection
held the only worker and the health probe got no answer.
"""

from __future__ import annotations

import re
import socket
from contextlib import ExitStack
from pathlib import Path

import pytest

from devkit.local_service import run_scoring_server
from devkit.scoring_client import noise_signal, post, to_int16, wav_bytes
from scoring.server import GUNICORN_CMD_ARGS, WORKER_CLASS

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
IDLE_CONNECTIONS = 50


def _idle_connections(stack: ExitStack, url: str, count: int) -> None:
    host, port = re.match(r"http://([^:/]+):(\d+)", url).groups()
    for _ in range(count):
        stack.enter_context(socket.create_connection((host, int(port)), timeout=10))


def test_make_serve_runs_the_bounded_worker_and_survives_idle_connections(
    tiny_ctc_model_dir, tmp_path
):
    with (
        run_scoring_server(tiny_ctc_model_dir, offline=True, via_make=True) as server,
        ExitStack() as idle,
    ):
        log = server.log()
        assert f"Serving in gunicorn worker {WORKER_CLASS} (64 threads)" in log
        assert " W [" not in next(x for x in log.splitlines() if "Serving in gunicorn" in x)
        _idle_connections(idle, server.base_url, IDLE_CONNECTIONS)
        body = wav_bytes(to_int16(noise_signal(1.0, seed=1)))
        answer = post(server.score_url, body, "audio/wav", timeout=120)
        assert answer.status_code == 200 and "result" in answer.json()


def test_plain_azmlinfsrv_warns_that_it_runs_the_sync_worker(tiny_ctc_model_dir):
    with run_scoring_server(tiny_ctc_model_dir, offline=True, gunicorn_args="") as server:
        log = server.log()
    line = next(line for line in log.splitlines() if "Serving in gunicorn worker" in line)
    assert " W [" in line and "gunicorn.workers.sync.SyncWorker" in line
    assert f'GUNICORN_CMD_ARGS="{GUNICORN_CMD_ARGS}"' in line  # says how to fix it


def test_the_image_and_make_serve_set_the_same_worker():
    dockerfile = (ROOT / "cloudml/environment/Dockerfile").read_text()
    assert f'ENV GUNICORN_CMD_ARGS="{GUNICORN_CMD_ARGS}"' in dockerfile
    makefile = (ROOT / "Makefile").read_text()
    assert f"SCORING_GUNICORN_ARGS := {GUNICORN_CMD_ARGS}\n" in makefile
    serve = makefile.split("\nserve:")[1].split("\n\n")[0]
    assert 'GUNICORN_CMD_ARGS="$(GUNICORN_CMD_ARGS)"' in serve
