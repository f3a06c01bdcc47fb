"""WORKER_COUNT=2 with the model mounted the Azure way (AZUREML_MODEL_DIR, one folder down)."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from devkit.local_service import run_scoring_server
from devkit.scoring_client import noise_signal, post, to_int16, wav_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_worker_server(tiny_ctc_model_dir, tmp_path_factory):
    mount = tmp_path_factory.mktemp("azureml-model-dir")
    shutil.copytree(tiny_ctc_model_dir, mount / "tiny-ctc" / "1")  # <name>/<version>/ as Azure
    with run_scoring_server(
        "/no/such/model",  # MODEL_NAME_OR_PATH must lose to AZUREML_MODEL_DIR
        env={"AZUREML_MODEL_DIR": str(mount), "SCORING_THREADS": "1"},
        worker_count=2,
    ) as server:
        yield server


def test_many_clients_at_once_are_all_answered(two_worker_server):
    bodies = [wav_bytes(to_int16(noise_signal(2.0, seed=i % 3))) for i in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(
            pool.map(lambda b: post(two_worker_server.score_url, b, "audio/wav"), bodies)
        )
    assert [r.status_code for r in responses] == [200] * 12
    results = [r.json()["result"] for r in responses]
    for i in range(3):  # the same audio gives the same transcript whichever worker answered
        assert len({results[j] for j in range(i, 12, 3)}) == 1
    assert responses[0].json()["model"] == "tiny-ctc/1"


def test_both_workers_loaded_from_azureml_model_dir(two_worker_server):
    log = two_worker_server.log()
    loads = [line for line in log.splitlines() if "Loading model tiny-ctc/1" in line]
    assert len(loads) == 2 and all("(AZUREML_MODEL_DIR)" in line for line in loads)
    assert "Traceback" not in log
