"""Exactly once in --jsonl across crashes: SIGKILL the real app at random moments around the 200.

The spool holds 24 recordings; the app (a real process: main.py, the real SDK, a scripted .eim,
a WAV of silence as input) sends them to a real HTTP endpoint; each time the endpoint has
answered one with 200, the app is killed 0-30 ms later and started again. Before the fix the
spool item was removed before the line was written: a kill in between lost the transcript. Now
the line is fsynced first and a re-sent recording is recognised by its id.
"""

from __future__ import annotations

import json
import random
import signal
import time

import numpy as np
import pytest
import soundfile as sf
from edge_helpers import start_main

from devkit.scripted_eim import write_eim
from edgeml.spool import Spool

pytestmark = [pytest.mark.slow, pytest.mark.native_speed]  # 24 app starts in 240 s

RECORDINGS = 24


def _recording(n: int) -> np.ndarray:
    samples = np.round(np.random.default_rng(n).standard_normal(8000) * 800).astype(np.int16)
    samples[0] = n
    return samples


def test_kills_around_the_200_lose_nothing_and_write_nothing_twice(tmp_path, eim_dir,
                                                                    fault_server):  # fmt: skip
    spool_dir, jsonl = tmp_path / "spool", tmp_path / "transcripts.jsonl"
    spool = Spool(spool_dir)
    ids = [spool.add(_recording(n)).record.id for n in range(1, RECORDINGS + 1)]
    spool.close()
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(16000 * 120, dtype=np.int16), 16000, subtype="PCM_16")
    model = write_eim(eim_dir / "quiet.eim", schedule=[0.0])
    args = ["--model", model, "--input", silence, "--input-speed", "realtime",
            "--endpoint", fault_server.url, "--spool-dir", spool_dir, "--jsonl", jsonl,
            "--log-level", "WARNING"]  # fmt: skip
    rng = random.Random(7)
    kills = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(spool_dir.glob("*.json"))) > 0:
        answered = len(fault_server.delivered)
        app = start_main(args)
        try:
            while len(fault_server.delivered) == answered and app.poll() is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.001)
            time.sleep(rng.uniform(0.0, 0.03))  # right after the 200: mid-commit, mid-remove
            app.send_signal(signal.SIGKILL)
            kills += 1
        finally:
            app.wait(10)
            app.stdout.close()
            app.stderr.close()
    assert len(list(spool_dir.glob("*.json"))) == 0, "the spool was not drained in time"
    lines = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    written = [rec["id"] for rec in lines]
    assert sorted(written) == sorted(ids), "each recording exactly once in --jsonl"
    by_id = {rec["id"]: rec for rec in lines}
    for n, rid in enumerate(ids, start=1):
        assert by_id[rid]["status"] == "delivered" and by_id[rid]["text"].startswith(f"REC {n} ")
    assert kills >= RECORDINGS - 2
