"""The neural VAD (Silero, run with onnxruntime) and the decision made on its probabilities."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from devkit.speech import RATE, compose, quiet, write_wav
from edgeml.audio import Audio
from edgeml.neural_vad import CHUNK_SAMPLES, NeuralVadConfig, SileroVAD, VadUnavailable
from edgeml.recorder import Recorder, RecorderConfig
from edgeml.sources import FileSource
from edgeml.vad import EndpointConfig, EndReason, VoiceEndpointer

FRAME = CHUNK_SAMPLES / RATE


def _push(cfg: EndpointConfig, probs: list[float]) -> tuple[VoiceEndpointer, EndReason | None]:
    ep = VoiceEndpointer(cfg, FRAME)
    return ep, ep.push(np.array(probs))


def test_ends_after_silence_seconds_of_quiet_with_hysteresis():
    cfg = EndpointConfig(silence_seconds=0.32)  # 10 frames
    speech = [0.9] * 12 + [0.4] * 5 + [0.9] * 3  # 0.4: below the start level, above the pause one
    ep, reason = _push(cfg, [0.0] * 5 + speech + [0.1] * 9)
    assert reason is None and ep.first_speech_frame == 5 and ep.last_speech_frame == 24
    assert ep.push(0.1) is EndReason.SILENCE and ep.frames == 35


def test_a_click_before_a_long_pause_is_not_the_sentence():
    """Two frames of speech (64 ms < min_utterance_seconds), then a pause past silence_seconds:
    forgotten, the speaker still has no_speech_seconds to begin."""
    cfg = EndpointConfig(silence_seconds=0.32, no_speech_seconds=2.0)
    ep, reason = _push(cfg, [0.9, 0.9] + [0.0] * 20)
    assert reason is None and ep.first_speech_frame is None
    ep2, reason2 = _push(cfg, [0.9, 0.9] + [0.0] * 20 + [0.9] * 10 + [0.0] * 11)
    assert reason2 is EndReason.SILENCE and ep2.first_speech_frame == 22


def test_no_speech_and_max_length():
    _, reason = _push(EndpointConfig(no_speech_seconds=1.0), [0.2] * 40)
    assert reason is EndReason.NO_SPEECH
    ep, reason = _push(EndpointConfig(max_seconds=2.0), [0.9] * 100)
    assert reason is EndReason.MAX_LENGTH and ep.frames == int(np.ceil(2.0 / FRAME))


def test_silero_hears_speech_not_silence_or_steady_noise(keyword_audio, sentence_audio):
    vad = SileroVAD()
    assert vad.probabilities(sentence_audio).mean() > 0.7
    vad.reset()
    assert vad.probabilities(quiet(2.0)).max() < 0.2
    vad.reset()
    rng = np.random.default_rng(0)
    loud_noise = (rng.standard_normal(2 * RATE) * 6000).astype(np.int16)  # -15 dBFS hiss
    assert np.mean(vad.probabilities(loud_noise) >= 0.5) < 0.05


def test_missing_model_is_a_clear_error_and_the_recorder_falls_back_to_energy(
    tmp_path, caplog, keyword_audio
):
    with pytest.raises(VadUnavailable, match="missing"):
        SileroVAD(NeuralVadConfig(model_path=tmp_path / "nope.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(VadUnavailable, match="cannot load"):
        SileroVAD(NeuralVadConfig(model_path=bad))
    audio, _ = compose(quiet(1.0), keyword_audio, quiet(1.5))
    stream = Audio(FileSource(write_wav(tmp_path / "in.wav", audio), realtime=False))
    stream.start()
    try:
        with caplog.at_level(logging.WARNING):
            recorder = Recorder(stream, RecorderConfig(neural=NeuralVadConfig(Path(bad))))
        assert recorder.vad_kind == "energy" and "energy instead" in caplog.text
        assert recorder.record(RATE).reason in (EndReason.NO_SPEECH, EndReason.SILENCE)
    finally:
        stream.stop()


def test_bad_vad_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="vad must be one of"):
        Recorder(None, RecorderConfig(vad="loud"))  # type: ignore[arg-type]
