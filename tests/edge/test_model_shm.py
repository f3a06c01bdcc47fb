"""The models' shared-memory input (`features_shm` / `classify_shm`): the SDK's fast path.

Every .eim this project writes (kwtrain/eim_server.py, packed into exported models and the
scripted test models) offers a POSIX shared-memory block in its hello; edge_impulse_linux's
ImpulseRunner then copies each window there and sends `{"classify_shm": {"elements": n}}`
instead of 36 000 numbers as JSON. Driven through the real SDK, and the protocol's error paths
on the server state itself.
"""

from __future__ import annotations

import os
import stat
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path

import numpy as np
import pytest

from devkit.scripted_eim import write_eim
from edgeml.edgeml import DEFAULT_MODEL, EdgeML, ModelCrashed
from kwtrain import eim_server
from kwtrain.eim_server import Classification, RunnerState, audio_model_parameters, project_info

SHM = Path(eim_server.SHM_DIR)
pytestmark = pytest.mark.skipif(not SHM.is_dir(), reason="no /dev/shm on this machine")


def _blocks_of(pid: int) -> list[str]:
    return sorted(p.name for p in SHM.glob(f"ei-kwtrain-{pid}-*"))


def _windows(audio: np.ndarray, window: int) -> list[np.ndarray]:
    """The windows the app sends while the keyword is said: one every 250 ms."""
    x = np.concatenate(
        [np.zeros(window, np.int16), audio.astype(np.int16), np.zeros(8000, np.int16)]
    )
    return [x[e - window : e] for e in range(window, len(x) + 1, 4000)]


@pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="the shipped listen.eim is missing")
def test_the_shipped_model_scores_the_same_through_shared_memory_and_json(keyword_audio):
    """The same windows of the demo keyword, once through the block and once as JSON: the same
    scores (the model computes on float32 either way), and the keyword is heard in both."""
    got = {}
    for shm in (True, False):
        with EdgeML(DEFAULT_MODEL, shared_memory=shm) as model:
            assert (model._runner._input_shm is not None) == shm
            ws = _windows(keyword_audio, model.info.window_samples)
            got[shm] = np.array([model.classify(w)["listen"] for w in ws])
    np.testing.assert_allclose(got[True], got[False], atol=1e-6)
    assert got[True].max() > 0.5 > got[True][0]


def test_the_block_is_unlinked_once_mapped_and_when_the_model_stops(eim_dir):
    path = write_eim(eim_dir / "shm.eim", schedule=[0.3] * 10)
    with EdgeML(path) as model:
        pid = model._proc.pid
        assert len(_blocks_of(pid)) == 1  # offered in the hello, mapped by the SDK
        mode = (SHM / _blocks_of(pid)[0]).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600
        assert model.classify(np.zeros(16000, np.int16))["listen"] == pytest.approx(0.3)
        assert _blocks_of(pid) == []  # the name went with the first window; the mapping stays
        assert model.classify(np.ones(16000, np.int16))["listen"] == pytest.approx(0.3)
    model = EdgeML(path)
    model.start()
    pid = model._proc.pid
    assert len(_blocks_of(pid)) == 1
    model.stop()  # before any window: the SDK's SIGINT ends the connection, the name goes
    assert _blocks_of(pid) == []


def test_a_model_that_dies_after_its_first_window_leaves_no_block(eim_dir):
    path = write_eim(eim_dir / "shm-dies.eim", die_after=1, schedule=[0.1] * 5)
    model = EdgeML(path, call_timeout=3.0)
    model.start()
    pid = model._proc.pid
    try:
        model.classify(np.zeros(16000, np.int16))
        with pytest.raises(ModelCrashed, match="exited with code 17"):
            model.classify(np.zeros(16000, np.int16))
        assert _blocks_of(pid) == []
    finally:
        model.stop()


class _Mean:
    """A tiny impulse: 8 features, the score says what it was given."""

    def hello(self) -> dict:
        params = audio_model_parameters(["a", "b"], window_samples=8, slices_per_window=2)
        return {"project": project_info("mean"), "model_parameters": params}

    def classify(self, features: np.ndarray) -> Classification:
        m = float(np.clip(features.mean() / 100.0, 0.0, 1.0))
        return Classification({"a": m, "b": 1.0 - m})


def _attach(entry: dict) -> shared_memory.SharedMemory:
    """Map the block as the SDK does (and keep Python's resource tracker out of it)."""
    block = shared_memory.SharedMemory(name=entry["name"].lstrip("/"))
    resource_tracker.unregister(block._name, "shared_memory")
    return block


def test_classify_shm_is_checked_and_errors_are_answered():
    state = RunnerState(_Mean(), shared_memory=True)
    before = state.handle({"id": 1, "classify_shm": {"elements": 8}})
    assert before == {
        "id": 1,
        "success": False,
        "error": "Invalid message, should initialize first",
    }
    hello = state.handle({"id": 2, "hello": 1})
    entry = hello["features_shm"]
    assert entry["name"].startswith(f"/ei-kwtrain-{os.getpid()}-")
    assert entry["type"] == "float32" and entry["elements"] == 8
    block = _attach(entry)
    try:
        np.ndarray((8,), np.float32, buffer=block.buf)[:] = 50.0
        ok = state.handle({"id": 3, "classify_shm": {"elements": 8}})
        assert ok["success"] and ok["result"]["classification"]["a"] == pytest.approx(0.5)
        for bad in ("8", True, -1, 9, None, 8.0):
            reply = state.handle({"id": 4, "classify_shm": {"elements": bad}})
            assert reply["success"] is False and "'elements'" in reply["error"], bad
        short = state.handle({"id": 5, "classify_shm": {"elements": 7}})
        assert "expected 8 but got 7" in short["error"]
        assert (
            state.handle({"id": 6, "classify": [100] * 8})["result"]["classification"]["a"] == 1.0
        )
    finally:
        block.close()
    assert not (SHM / entry["name"].lstrip("/")).exists()  # unlinked once the client mapped it
    state.close()
    state.close()  # twice is harmless


def test_without_shared_memory_the_hello_offers_none_and_json_still_works(monkeypatch, tmp_path):
    plain = RunnerState(_Mean())  # stdin mode: no block
    assert "features_shm" not in plain.handle({"id": 1, "hello": 1})
    reply = plain.handle({"id": 2, "classify_shm": {"elements": 8}})
    assert reply["success"] is False and "features_shm" in reply["error"]
    monkeypatch.setattr(eim_server, "SHM_DIR", str(tmp_path / "no-such-dir"))
    state = RunnerState(_Mean(), shared_memory=True)  # /dev/shm missing or unusable
    assert "features_shm" not in state.handle({"id": 1, "hello": 1})
    assert state.handle({"id": 2, "classify": [0] * 8})["success"] is True
