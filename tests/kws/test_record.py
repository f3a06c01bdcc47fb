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


def _record_while_playing(mic, audio: Path, args: list[str], settle: float) -> dict:
    """`kwtrain record ARGS --device pulse`, with `audio` played into the virtual microphone
    once the stream has had `settle` s to open; its JSON answer (it must exit 0)."""
    proc = subprocess.Popen(
        [KWTRAIN, "record", *args, "--device", "pulse"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=mic.env,
    )  # fmt: skip
    try:
        time.sleep(settle)  # the stream is open and recording
        player = mic.play(audio)
        out, err = proc.communicate(timeout=60)
        player.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out)


def test_record_a_take_into_the_dataset(mic, tmp_path: Path) -> None:
    gap = np.zeros(int(0.9 * 16000), dtype=np.float32)
    words = [tts.synthesize("listen", tts.Voice(v, speed=150)) * 0.6 for v in ("en-us", "en-gb")]
    take = write_wav(tmp_path / "take.wav", np.concatenate([gap, words[0], gap, words[1], gap]),
                     16000)  # fmt: skip
    info = _record_while_playing(
        mic, take, ["--label", "listen", "--seconds", "7", "--out", str(tmp_path / "data"),
                    "--keep-take"], settle=2.0,
    )  # fmt: skip
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


def test_record_the_room_as_background_for_the_build(mic, tmp_path: Path) -> None:
    """`record --label background`: the room kept whole, as one-minute WAVs under
    DATA/background/ (not 1 s samples), where a build finds it (kwtrain/background.py)."""
    from kwtrain.background import choose

    rng = np.random.default_rng(0)
    room = write_wav(tmp_path / "room.wav", rng.standard_normal(16000 * 20) * 0.05, 16000)
    info = _record_while_playing(
        mic,
        room,
        ["--label", "background", "--seconds", "8", "--out", str(tmp_path / "data")],
        settle=1.0,
    )
    assert info["label"] == "background" and info["files"] == 1 and info["seconds"] == 8.0
    (piece,) = (tmp_path / "data" / "background").glob("room-*-000.wav")
    import soundfile as sf

    audio, rate = sf.read(piece)
    assert rate == 16000 and len(audio) == 8 * 16000
    assert np.sqrt(np.mean(audio[16000:] ** 2)) > 0.01  # the played noise, not silence
    got = choose(None, tmp_path / "data", False, tmp_path / "cache", log=lambda m: None)
    assert got.roots == (tmp_path / "data",) and got.warning is None
