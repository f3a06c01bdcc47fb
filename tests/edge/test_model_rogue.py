"""Model processes that break the protocol's rules (found by bench/probe.py, kind "model").

Real executables (devkit/rogue_eim.py) serving the runner protocol over the real socket, driven
through the SDK's ImpulseRunner as the app drives an exported model: frames that are not
replies, replies sent twice, scores that are not scores, and processes that fork.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from devkit.rogue_eim import alive_pids, write_rogue_eim
from edgeml.edgeml import EdgeML, ModelCrashed

WINDOW = np.zeros(16000, dtype=np.int16)


@pytest.fixture
def leftovers():
    """Pid files whose processes the test kills at the end, whatever it asserted."""
    files: list[Path] = []
    yield files
    for f in files:
        for pid in alive_pids(f):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_a_log_frame_before_the_hello_is_skipped(eim_dir):
    path = write_rogue_eim(eim_dir / "junk.eim", junk_before_hello=b"INFO: loading model\n\0")
    with EdgeML(path, start_timeout=5) as model:
        assert model.classify(WINDOW) == {"listen": 0.0, "noise": 0.5}


def test_a_stale_duplicate_reply_is_skipped_not_a_crash(eim_dir):
    """Each reply comes twice; the copy is read at the next call and must not be taken for
    its reply (before: 'reply to message 2, expected 3', a restart every other window)."""
    path = write_rogue_eim(eim_dir / "twice.eim", twice=True)
    with EdgeML(path, call_timeout=2.0) as model:
        for _ in range(6):
            assert model.classify(WINDOW)["noise"] == 0.5
        assert model.restarts == 0


def test_a_reply_for_a_later_message_is_still_a_crash(eim_dir):
    path = write_rogue_eim(eim_dir / "wrongid.eim", wrong_id=True)
    with EdgeML(path, call_timeout=2.0) as model, pytest.raises(ModelCrashed, match="expected"):
        model.classify(WINDOW)


@pytest.mark.parametrize(
    "scores",
    [
        '{"listen": NaN, "noise": 0.5}',
        '{"listen": Infinity, "noise": 0.5}',
        '{"listen": 1e308, "noise": 0.5}',
        '{"listen": -3, "noise": 0.5}',
        '{"listen": true, "noise": 0.5}',
        '{"listen": "0.99", "noise": "0.01"}',
        '{"noise": 0.5}',
        '{"listen": 0.5, "noise": 0.5, "other": 0.1}',
    ],
    ids=["nan", "inf", "1e308", "negative", "bool", "strings", "label-missing", "extra-label"],
)
def test_scores_that_are_not_scores_are_a_bad_reply(eim_dir, scores):
    """A keyword score of Infinity or 1e308 would be a detection; a missing keyword label read
    as 0 forever. Either is a model that does not work: ModelCrashed, and it is restarted."""
    path = write_rogue_eim(eim_dir / f"scores-{abs(hash(scores))}.eim", scores=scores)
    with EdgeML(path, call_timeout=2.0) as model:
        with pytest.raises(ModelCrashed, match="score|labels"):
            model.classify(WINDOW)
        model.restart()
        assert model.running


def test_a_score_a_hair_over_one_is_taken_as_one(eim_dir):
    path = write_rogue_eim(eim_dir / "hair.eim", scores='{"listen": 1.0000001, "noise": 0}')
    with EdgeML(path) as model:
        assert model.classify(WINDOW) == {"listen": 1.0, "noise": 0.0}


def test_a_model_that_forks_and_exits_leaves_no_process(eim_dir, tmp_path, leftovers):
    """The parent exits 0 at start (a start error) while its child serves on: the child was
    left running for good."""
    pids = tmp_path / "pids"
    leftovers.append(pids)
    path = write_rogue_eim(eim_dir / "forker.eim", fork_exit=True, pid_file=pids)
    model = EdgeML(path, start_timeout=5)
    with contextlib.suppress(Exception):
        model.start()
    model.stop()
    time.sleep(0.3)
    assert pids.exists() and len(pids.read_text().split()) == 2
    assert alive_pids(pids) == []


def test_a_model_helper_child_is_ended_with_it(eim_dir, tmp_path, leftovers):
    pids = tmp_path / "pids"
    leftovers.append(pids)
    path = write_rogue_eim(eim_dir / "helper.eim", helper_child=True, pid_file=pids)
    with EdgeML(path) as model:
        model.restart()
        time.sleep(0.3)
        assert len(alive_pids(pids)) == 2  # the running model and its helper, the first pair gone
    time.sleep(0.3)
    assert len(pids.read_text().split()) == 4
    assert alive_pids(pids) == []
