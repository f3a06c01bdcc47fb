"""Real pyaudio capture through a PulseAudio virtual microphone, with speech played into it."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf
from edge_helpers import run_main, start_main, wait_for_line

from devkit.pulse import missing_tools, virtual_microphone
from devkit.speech import locate, trim
from edgeml.sources import MicSource
from edgeml.vad import EndpointConfig

pytestmark = pytest.mark.slow

SILENCE_SECONDS = 0.8


def test_list_devices_shows_the_virtual_microphone(virtual_mic):
    result = run_main(["--list-devices"], env=virtual_mic.env)
    assert result.returncode == 0, result.stderr
    assert any(line.split()[1] == "pulse" for line in result.stdout.splitlines())
    assert "jack server" not in result.stderr.lower()  # PortAudio's probing noise is hidden


def test_unknown_device_is_a_clear_error(virtual_mic, keyword_eim, tmp_path):
    result = run_main(
        ["--model", keyword_eim, "--device", "no-such-mic", "--once", "--spool-dir", tmp_path],
        env=virtual_mic.env,
    )
    assert result.returncode == 1
    assert "no input device matches 'no-such-mic'" in result.stderr and "pulse" in result.stderr


def test_keyword_then_sentence_spoken_into_the_microphone(
    virtual_mic, keyword_eim, spoken_file, fault_server, tmp_path
):
    """Keyword detected, the sentence recorded whole, the recording ended by the pause after it
    and keeps trail_seconds (0.3 s) of that pause, give or take a VAD chunk and the capture."""
    save = tmp_path / "save"
    proc = start_main(
        ["--model", keyword_eim, "--device", "pulse", "--endpoint", fault_server.url, "--once",
         "--spool-dir", tmp_path / "spool", "--save-dir", save,
         "--silence-seconds", SILENCE_SECONDS, "--pre-roll", "0.25"],
        env=virtual_mic.env,
    )  # fmt: skip
    seen: list[str] = []
    try:
        assert wait_for_line(proc.stderr, "listening", timeout=30, seen=seen), "".join(seen)
        player = virtual_mic.play(spoken_file.path)
        out, err = proc.communicate(timeout=60)
        player.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    log = "".join(seen) + err
    assert proc.returncode == 0, log
    assert "keyword 'listen' heard" in log
    (req,) = fault_server.requests
    assert out.splitlines() == [f"REC {req.first_sample} {req.audio_id}"]

    (wav,) = save.glob("*.wav")
    recording, rate = sf.read(str(wav), dtype="int16")
    assert rate == 16000
    sentence = trim(spoken_file.sentence_audio)
    offset, match = locate(recording, sentence)
    # the whole sentence is inside the recording, sample for sample (through the virtual mic)
    assert match > 0.9, match
    assert offset >= 0 and offset + len(sentence) <= len(recording)
    # nothing of the sentence is cut: its first 100 ms are there and match too
    head_offset, head_match = locate(recording, sentence[:1600])
    assert head_match > 0.9 and abs(head_offset - offset) <= 2
    tail = (len(recording) - (offset + len(sentence))) / rate
    assert "(silence)" in log
    assert EndpointConfig().trail_seconds - 0.1 <= tail <= EndpointConfig().trail_seconds + 0.2


@pytest.mark.parametrize("forced", [None, (48000, 2)], ids=["16k-mono", "48k-stereo-resampled"])
def test_capture_is_the_played_audio(virtual_mic, tmp_path, monkeypatch, forced):
    """MicSource alone: what it delivers (16 kHz mono) is what was played into the microphone.

    48k-stereo: the stream is opened at 48 kHz, 2 channels, as with a USB microphone that cannot
    do 16 kHz, and goes through the downmix and the streaming soxr resampler.
    """
    for key in ("PULSE_SERVER", "XDG_RUNTIME_DIR", "PULSE_RUNTIME_PATH"):
        monkeypatch.setenv(key, virtual_mic.env[key])
    if forced is not None:
        monkeypatch.setattr(MicSource, "_pick_format", lambda self, pyaudio: forced)
    t = np.arange(16000) / 16000
    tone = (np.sin(2 * np.pi * (300 + 500 * t) * t) * 12000).astype(np.int16)  # a chirp
    wav = tmp_path / "chirp.wav"
    sf.write(str(wav), np.concatenate([np.zeros(8000, np.int16), tone]), 16000, subtype="PCM_16")
    got: list[np.ndarray] = []
    source = MicSource("pulse")
    source.start(got.append, on_end=None)
    try:
        assert (source.rate, source.channels) == (forced or (16000, 1))
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:  # a new PulseAudio stream takes ~1 s
            time.sleep(0.05)
        virtual_mic.play(wav).wait(timeout=20)
        time.sleep(0.5)
    finally:
        source.stop()
    captured = np.concatenate(got)
    assert captured.dtype == np.int16
    _, match = locate(captured, tone)
    assert match > 0.95, match


@pytest.mark.sound_server  # starts its own virtual microphones (not the fixture)
def test_lost_input_device_is_reopened_and_listening_goes_on(
    keyword_eim, spoken_file, fault_server, tmp_path
):
    """The sound server (the 'device') dies mid-run and comes back: the app reopens it and hears
    the keyword afterwards. (PortAudio only enumerates devices on its first initialisation, so
    this also checks that failed opens are cleaned up.)"""
    if missing_tools():
        pytest.skip("PulseAudio tools not installed (make setup)")
    pulse_dir = tmp_path / "pulse"
    seen: list[str] = []
    first = virtual_microphone(pulse_dir)
    mic = first.__enter__()
    proc = start_main(
        ["--model", keyword_eim, "--device", "pulse", "--endpoint", fault_server.url, "--once",
         "--spool-dir", tmp_path / "spool"],
        env=mic.env,
    )  # fmt: skip
    try:
        try:
            assert wait_for_line(proc.stderr, "listening", timeout=30, seen=seen), "".join(seen)
        finally:
            first.__exit__(None, None, None)  # the sound server goes away, stream open
        assert wait_for_line(proc.stderr, "reopening the input", timeout=20, seen=seen)
        assert wait_for_line(proc.stderr, "no audio input device", timeout=10, seen=seen)
        with virtual_microphone(pulse_dir) as mic:  # plugged in again
            assert wait_for_line(proc.stderr, "listening", timeout=30, seen=seen), "".join(seen)
            mic.play(spoken_file.path).wait(timeout=30)
            out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, "".join(seen) + err
    assert out.startswith("REC ") and len(fault_server.delivered) == 1
