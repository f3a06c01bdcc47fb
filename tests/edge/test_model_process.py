"""The model process misbehaving: long messages, floods, refusals, absurd hellos.

Real executables speaking the real protocol (devkit/scripted_eim.py on kwtrain/eim_server.py),
driven through the SDK's ImpulseRunner as the app drives an exported model.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf
from edge_helpers import run_main

from devkit.scripted_eim import write_eim
from edgeml.edgeml import EdgeML, ModelCrashed, ModelError


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 3000).astype(np.int16)


@pytest.mark.parametrize(
    ("frequency", "window"),
    [(48000, 48000), (16000, 80000), (44100, 88200)],
    ids=["48kHz-1s", "16kHz-5s", "44.1kHz-2s"],
)
@pytest.mark.parametrize("shm", [False, True], ids=["json", "shm"])
def test_long_classify_messages_arrive_whole(eim_dir, frequency, window, shm):
    """A window of 48 000+ samples is a message of 300 kB+: the SDK's send() wrote only what
    the socket buffer took, the model waited for the rest, and the app restarted it forever.
    (As JSON: what any model without `features_shm` gets; and through the shared memory.)"""
    path = write_eim(eim_dir / f"long-{window}.eim", frequency=frequency, window_samples=window,
                     schedule=[0.25] * 20)  # fmt: skip
    with EdgeML(path, call_timeout=3.0, shared_memory=shm) as model:
        assert (model._runner._input_shm is not None) == shm
        for n in range(5):
            scores = model.classify(_noise(window, n), frequency)
            assert scores["listen"] == pytest.approx(0.25)
        assert model.running and model.restarts == 0


def test_a_model_that_floods_its_reply_is_cut_off_not_read_forever(eim_dir):
    path = write_eim(eim_dir / "flood.eim", flood=200_000_000)
    with EdgeML(path, call_timeout=3.0) as model:
        started = time.monotonic()
        with pytest.raises(ModelCrashed, match="longer than"):
            model.classify(_noise(16000))
        assert time.monotonic() - started < 3.0
        model.restart()  # and it can be brought back like any crash
        assert model.running


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"input_features_count": 10**9}, "input_features_count"),
        ({"input_features_count": -5}, "input_features_count"),
        ({"input_features_count": 16000.5}, "whole number"),
        ({"frequency": 10**9}, "frequency"),
        ({"frequency": 0}, "frequency"),
        ({"frequency": "16000"}, "whole number"),
        ({"labels": [f"w{i}" for i in range(100_000)]}, "labels"),
        ({"labels": ["listen", "x" * 10_000]}, "label"),
        ({"labels": "listen"}, "labels"),
        ({"sensor": 3}, "not an audio model"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_a_hello_with_absurd_parameters_is_refused_at_start(eim_dir, params, message):
    path = write_eim(eim_dir / "absurd.eim", hello_params=params)
    model = EdgeML(path, start_timeout=10.0)
    with pytest.raises(ModelError, match=message):
        model.start()
    assert not model.running


@pytest.mark.parametrize(
    ("stated", "read"),
    [(0.48, 0.48), (None, 0.0), ("soon", 0.0), (-1.0, 0.0), (99.0, 0.0), (float("nan"), 0.0)],
)
def test_a_stated_keyword_delay_is_used_only_within_the_window(stated, read):
    """A delay the spotter would move its estimate back by: a number within the model's window,
    else none (the estimate stays where the score peaks)."""
    from edgeml.edgeml import model_keyword_delay

    params = {} if stated is None else {"keyword_delay_seconds": stated}
    assert model_keyword_delay(params, window_seconds=1.5) == read


@pytest.mark.native_speed  # the 1-2-4 s backoff within 9 s of real-time input
def test_a_model_that_refuses_every_classify_is_restarted_with_backoff(tmp_path, eim_dir):
    """Each refusal is a crash and each crash a restart, but not in a tight loop: restarts come
    1 s, 2 s, 4 s ... apart while the model keeps failing right after its start."""
    calls = tmp_path / "calls.log"
    model = write_eim(eim_dir / "refuses.eim", fail_classify=True, calls_log=calls)
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(16000 * 9, dtype=np.int16), 16000, subtype="PCM_16")
    result = run_main(
        ["--model", model, "--input", silence, "--input-speed", "realtime",
         "--spool-dir", tmp_path / "spool", "--log-level", "INFO"],
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    starts = {line.split()[0] for line in calls.read_text().splitlines()}
    assert 2 <= len(starts) <= 6, f"{len(starts)} model processes in 9 s"
    assert "restarting it in 4 s" in result.stderr
