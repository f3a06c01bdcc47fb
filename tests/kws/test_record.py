"""`record`: a take from a real (PulseAudio virtual) microphone, split and filed under a label."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from devkit.paths import venv_command
from kwtrain import tts
from kwtrain.clips import write_wav

pulse = pytest.importorskip("devkit.pulse")
pytestmark = pytest.mark.slow
KWTRAIN = venv_command("kwtrain")


@pytest.fixture(scope="module")
def mic(tmp_path_factory: pytest.TempPathFactory):
    missing = pulse.missing_tools()
    if missing:
        pytest.skip(f"no virtual microphone: {', '.join(missing)} not installed (make setup)")
    with pulse.virtual_microphone(tmp_path_factory.mktemp("pulse")) as m:
        yield m


def test_record_a_take_into_the_dataset(mic, tmp_path: Path) -> None:
    gap = np.zeros(int(0.9 * 16000), dtype=np.float32)
    words = [tts.synthesize("listen", tts.Voice(v, speed=150)) * 0.6 for v in ("en-us", "en-gb")]
    take = write_wav(tmp_path / "take.wav", np.concatenate([gap, words[0], gap, words[1], gap]),
                     16000)  # fmt: skip
    proc = subprocess.Popen(
        [KWTRAIN, "record", "--label", "listen", "--seconds", "7",
         "--out", str(tmp_path / "data"), "--device", "pulse", "--keep-take"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=mic.env,
    )  # fmt: skip
    try:
        time.sleep(2.0)  # the stream is open and recording
        player = mic.play(take)
        out, err = proc.communicate(timeout=60)
        player.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    info = json.loads(out)
    assert info["label"] == "listen" and info["samples"] == 2, info
    assert len(list((tmp_path / "data" / "listen").glob("listen.rec*.wav"))) == 2
    assert Path(info["take"]).is_file()


def test_unknown_device_is_a_clear_error(mic, tmp_path: Path) -> None:
    out = subprocess.run(
        [KWTRAIN, "record", "--label", "noise", "--seconds", "1",
         "--out", str(tmp_path), "--device", "no-such-mic"],
        capture_output=True, text=True, env=mic.env, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert "no-such-mic" in out.stderr and "Traceback" not in out.stderr
