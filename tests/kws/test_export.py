"""Export to one .eim, then drive it through the real edge_impulse_linux SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from edge_impulse_linux.runner import ImpulseRunner
from kws_helpers import LABELS, random_model, windows_of_speechlike

from kwtrain.mfcc.export import MAX_EIM_BYTES, export_eim, read_model
from kwtrain.mfcc.features import Mfcc
from kwtrain.mfcc.runtime import KeywordImpulse


@pytest.fixture
def eim(tmp_path: Path) -> Path:
    return export_eim(random_model(), tmp_path / "model.eim")


def test_one_small_executable_file(eim: Path) -> None:
    data = eim.read_bytes()
    assert data.startswith(b"#!/bin/sh\n")  # the launcher (see test_eim_launch.py)
    assert len(data) < MAX_EIM_BYTES
    assert os.access(eim, os.X_OK)
    loaded = read_model(eim)
    assert loaded.labels == LABELS
    for name, value in random_model().weights.items():
        np.testing.assert_array_equal(loaded.weights[name], value)


def test_export_is_reproducible(tmp_path: Path) -> None:
    a = export_eim(random_model(), tmp_path / "a.eim").read_bytes()
    b = export_eim(random_model(), tmp_path / "b.eim").read_bytes()
    assert a == b


@pytest.mark.usefixtures("eim_path")
def test_print_info(eim: Path) -> None:
    out = subprocess.run([str(eim), "--print-info"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    hello = json.loads(out.stdout[out.stdout.index("{") :])
    params = hello["model_parameters"]
    assert hello["success"] is True
    assert params["labels"] == LABELS
    assert params["frequency"] == 16000
    assert params["input_features_count"] == 16000
    assert params["sensor"] == 1  # microphone
    assert params["slice_size"] == 4000
    assert hello["project"]["name"] == "test-model"


@pytest.mark.usefixtures("eim_path")
@pytest.mark.parametrize("shm", [True, False], ids=["shm", "json"])
def test_sdk_round_trip_matches_in_process_and_torch(eim: Path, shm: bool) -> None:
    torch = pytest.importorskip("torch")
    from kwtrain.mfcc.train import build_torch_net

    model = random_model()
    wins = windows_of_speechlike(4, seed=1)
    expected = KeywordImpulse(model).scores(wins)
    net = build_torch_net(model.net).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in model.weights.items()})
    with torch.no_grad():
        torch_scores = torch.softmax(net(torch.from_numpy(Mfcc().flat(wins))), 1).numpy()
    np.testing.assert_allclose(expected, torch_scores, atol=1e-5)

    runner = ImpulseRunner(str(eim), timeout=None, allow_shm=shm)
    try:
        info = runner.init()
        assert (runner._input_shm is not None) == shm  # the hello offers features_shm
        assert info["model_parameters"]["labels"] == LABELS
        assert info["project"]["name"] == "test-model"
        for i, w in enumerate(wins):
            res = runner.classify(w.astype(int).tolist())
            scores = res["result"]["classification"]
            assert list(scores) == LABELS
            got = np.array([scores[k] for k in LABELS])
            np.testing.assert_allclose(got, expected[i], atol=1e-6)
            assert {"dsp", "classification", "anomaly"} <= set(res["timing"])
        assert np.ptp(expected[:, 0]) > 0.01, "different inputs give different scores"
        with pytest.raises(Exception, match="expected 16000 but got 10"):  # the .eim says so
            if shm:  # (the SDK's own classify cannot send a short window through the block)
                runner.send_msg({"classify_shm": {"elements": 10}})
            else:
                runner.classify([0] * 10)
    finally:
        runner.stop()


def test_missing_numpy_is_a_clear_error(eim: Path) -> None:
    # -S: no site-packages, so this interpreter cannot import numpy
    probe = subprocess.run([sys.executable, "-S", "-c", "import numpy"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("numpy is importable even without site-packages here")
    out = subprocess.run(
        [sys.executable, "-S", str(eim), "--print-info"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 3
    assert "needs numpy" in out.stderr
    assert "Traceback" not in out.stderr


def test_export_refuses_a_model_over_one_megabyte(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="over the 1000000 limit"):
        export_eim(random_model(channels=(256, 512)), tmp_path / "big.eim")
    assert not (tmp_path / "big.eim").exists()


def test_a_portable_launcher_names_no_interpreter_of_this_machine():
    """edgeml/models/listen.eim ships to other machines: no path of the one that built it."""
    import sys

    from kwtrain.eimfile import launcher

    assert sys.executable.encode() in launcher()
    portable = launcher("")
    assert sys.executable.encode() not in portable and b'exec "${py:-python3}"' in portable
    from devkit.paths import REPO

    assert sys.executable.encode() not in (REPO / "edgeml/models/listen.eim").read_bytes()[:2000]
