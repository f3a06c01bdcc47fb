"""The pure parts of the pipeline: ring buffer, silence detection, keyword decision."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edgeml.ringbuffer import EndOfStream, Overrun, RingBuffer
from edgeml.spotter import DetectorConfig, KeywordDetector
from edgeml.vad import (
    FRAME_SAMPLES,
    EndpointConfig,
    Endpointer,
    EndReason,
    frame_dbfs,
    noise_floor_dbfs,
    to_frames,
)

RATE = 16000


# ---------------------------------------------------------------------- ring buffer
def test_ring_reads_by_absolute_index_across_the_wrap():
    ring = RingBuffer(100)
    data = np.arange(250, dtype=np.int16)
    for start in range(0, 250, 30):
        ring.write(data[start : start + 30])
    assert ring.end == 250 and ring.oldest == 150
    assert np.array_equal(ring.read(170, 60, timeout=0), data[170:230])
    assert np.array_equal(ring.read(150, 100, timeout=0), data[150:250])


def test_ring_before_the_stream_reads_zeros_and_overwritten_raises():
    ring = RingBuffer(100)
    ring.write(np.arange(1, 41, dtype=np.int16))
    window = ring.read(-20, 30, timeout=0)
    assert np.array_equal(window[:20], np.zeros(20)) and np.array_equal(
        window[20:], np.arange(1, 11)
    )
    ring.write(np.ones(100, dtype=np.int16))
    with pytest.raises(Overrun) as err:
        ring.read(10, 10, timeout=0)
    assert err.value.oldest == 40


def test_ring_read_waits_for_data_then_times_out_then_ends():
    ring = RingBuffer(1000)
    threading.Timer(0.1, lambda: ring.write(np.full(50, 7, dtype=np.int16))).start()
    t0 = time.monotonic()
    assert np.array_equal(ring.read(0, 50, timeout=2), np.full(50, 7))
    assert time.monotonic() - t0 < 1.5
    with pytest.raises(TimeoutError):
        ring.read(50, 10, timeout=0.05)
    ring.close()
    with pytest.raises(EndOfStream):
        ring.read(50, 10, timeout=1)
    assert len(ring.read(0, 50, timeout=0)) == 50  # what was written stays readable


def test_ring_blocking_writer_waits_for_the_reader_to_release():
    ring = RingBuffer(100)
    ring.write(np.zeros(100, dtype=np.int16), block=True)
    done = threading.Event()
    threading.Thread(
        target=lambda: (ring.write(np.ones(50, dtype=np.int16), block=True), done.set()),
        daemon=True,
    ).start()
    assert not done.wait(0.3)  # full: the fast file replay must not overwrite unread audio
    ring.release(60)
    assert done.wait(2)
    assert np.array_equal(ring.read(100, 50, timeout=0), np.ones(50))


# ---------------------------------------------------------------------- silence detection
def _noise(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(rng.standard_normal(int(seconds * RATE)) * 32768 * 10 ** (dbfs / 20)).astype(
        np.int16
    )


def _tone(seconds: float, dbfs: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return np.round(np.sin(2 * np.pi * 300 * t) * 32768 * np.sqrt(2) * 10 ** (dbfs / 20)).astype(
        np.int16
    )


def _levels(audio: np.ndarray) -> np.ndarray:
    return frame_dbfs(to_frames(audio))


def test_frame_levels_and_floor_follow_the_background():
    assert abs(_levels(_tone(0.2, -20.0)).mean() - (-20.0)) < 0.5
    assert _levels(np.zeros(640, np.int16)).max() == -96.0
    assert noise_floor_dbfs(np.zeros(0, np.int16)) == -96.0  # nothing heard yet
    quiet = _noise(2.0, -60)
    assert -63 < noise_floor_dbfs(quiet) < -58
    # a fan switched on: once it fills 90 % of the 5 s look-back, the floor is the fan's
    fan = _noise(4.6, -40, seed=1)
    assert -43 < noise_floor_dbfs(np.concatenate([quiet[-int(0.4 * RATE) :], fan])) < -38
    speech = np.concatenate([_tone(0.3, -20), quiet[: RATE // 5]] * 5)  # speech with pauses
    assert noise_floor_dbfs(np.concatenate([quiet, speech])) < -55  # does not rise in speech


def _run(
    cfg: EndpointConfig, audio: np.ndarray, floor_db: float = -60, tail_frames: int = 0
) -> tuple[EndReason, Endpointer]:
    floor = noise_floor_dbfs(_noise(3.0, floor_db, seed=3))
    ep = Endpointer(cfg, floor, keyword_tail_frames=tail_frames)
    for frame in to_frames(audio):
        reason = ep.push(frame_dbfs(frame[None, :]))
        if reason is not None:
            return reason, ep
    return None, ep


def test_endpoint_after_silence_seconds_of_quiet():
    cfg = EndpointConfig(silence_seconds=0.7, max_seconds=20, no_speech_seconds=3)
    speech = np.concatenate([_noise(0.3, -60), _tone(1.5, -25), _noise(0.2, -60), _tone(0.5, -25)])
    audio = np.concatenate([speech, _noise(3.0, -60, seed=4)])
    reason, ep = _run(cfg, audio)
    assert reason is EndReason.SILENCE
    speech_end = len(speech) / RATE
    ended = ep.frames * FRAME_SAMPLES / RATE
    # the 0.2 s pause inside the speech did not end it; the end is silence_seconds after speech
    assert abs(ended - (speech_end + 0.7)) <= 0.03
    assert abs(ep.first_speech_frame * FRAME_SAMPLES / RATE - 0.3) <= 0.05


def test_endpoint_no_speech_and_max_length():
    cfg = EndpointConfig(silence_seconds=0.5, max_seconds=2.0, no_speech_seconds=1.0)
    reason, ep = _run(cfg, _noise(5.0, -60, seed=5))
    assert reason is EndReason.NO_SPEECH and ep.frames * FRAME_SAMPLES / RATE == pytest.approx(1.0)
    reason, ep = _run(cfg, _tone(5.0, -20))
    assert reason is EndReason.MAX_LENGTH and ep.frames * FRAME_SAMPLES / RATE == pytest.approx(2.0)


def test_endpoint_adapts_to_a_loud_room():
    """Speech 15 dB above a -35 dBFS fan is speech; the fan alone is not."""
    cfg = EndpointConfig(silence_seconds=0.5, max_seconds=10, no_speech_seconds=2)
    fan = _noise(3.0, -35, seed=6)
    reason, _ = _run(cfg, fan, floor_db=-35)
    assert reason is EndReason.NO_SPEECH
    mixed = np.concatenate([_tone(1.0, -20) + _noise(1.0, -35, seed=7), fan])
    reason, ep = _run(cfg, mixed, floor_db=-35)
    assert reason is EndReason.SILENCE and ep.first_speech_frame is not None


def test_endpoint_keyword_tail_is_not_the_sentence():
    """The spotter fired 100 ms before the keyword's end, then a 1.5 s pause: the syllable
    after the detection point must not count as speech (it would end the recording after
    silence_seconds, before the sentence); a sentence said straight on must still count."""
    cfg = EndpointConfig(silence_seconds=1.0, max_seconds=20, no_speech_seconds=4)
    tail, pause, sentence = _tone(0.1, -25), _noise(1.5, -60, seed=8), _tone(1.2, -25)
    audio = np.concatenate([tail, pause, sentence, _noise(2.0, -60, seed=9)])
    reason, ep = _run(cfg, audio)  # without the allowance: ends on the tail alone
    assert reason is EndReason.SILENCE and ep.frames * FRAME_SAMPLES / RATE < 1.2
    reason, ep = _run(cfg, audio, tail_frames=12)
    assert reason is EndReason.SILENCE
    assert ep.first_speech_frame * FRAME_SAMPLES / RATE == pytest.approx(1.6, abs=0.05)
    assert ep.frames * FRAME_SAMPLES / RATE == pytest.approx(1.6 + 1.2 + 1.0, abs=0.05)
    # nothing after the tail: the no-speech timeout, not a recording of the tail
    reason, ep = _run(cfg, np.concatenate([tail, _noise(5.0, -60, seed=10)]), tail_frames=12)
    assert reason is EndReason.NO_SPEECH and ep.first_speech_frame is None
    # speech running on past the allowance is the sentence, from its first frame
    reason, ep = _run(cfg, np.concatenate([sentence, _noise(2.0, -60)]), tail_frames=12)
    assert reason is EndReason.SILENCE and ep.first_speech_frame == 0


# ---------------------------------------------------------------------- keyword decision
def test_detector_threshold_and_refractory():
    det = KeywordDetector(DetectorConfig(threshold=0.85, refractory_seconds=1.0))
    hop = 4000
    scores = [0.1, 0.9, 0.95, 0.9, 0.2, 0.1, 0.1, 0.1, 0.9]
    fired = [i for i, s in enumerate(scores) if det.update(s, (i + 1) * hop)]
    # one utterance (3 windows over the threshold) fires once; 1.75 s later it may fire again
    assert fired == [1, 8]


def test_detector_average_over_k_windows():
    det = KeywordDetector(DetectorConfig(threshold=0.8, average_windows=3))
    results = [det.update(s, i * 4000) for i, s in enumerate([0.99, 0.1, 0.1, 0.9, 0.9, 0.9])]
    assert [r is not None for r in results] == [False, False, False, False, False, True]
    assert results[-1].score == pytest.approx(0.9)


def test_detector_rejects_bad_settings():
    with pytest.raises(ValueError, match="threshold"):
        KeywordDetector(DetectorConfig(threshold=1.5))
    with pytest.raises(ValueError, match="average"):
        KeywordDetector(DetectorConfig(average_windows=0))


# ---------------------------------------------------------------------- mains hum
def test_highpass_removes_50hz_hum_keeps_speech_band_and_is_seamless_across_blocks():
    from edgeml.audio import HighPass

    t = np.arange(2 * RATE) / RATE
    hum = 8000 * np.sin(2 * np.pi * 50 * t)
    voice = 4000 * np.sin(2 * np.pi * 1000 * t)
    x = np.round(hum + voice).astype(np.int16)
    whole = HighPass(80)(x)
    blocks = HighPass(80)
    pieces = np.concatenate([blocks(x[i : i + 1000]) for i in range(0, len(x), 1000)])
    assert np.array_equal(whole, pieces)  # filter state carries over block edges: no clicks

    def level(sig, hz):
        spectrum = np.abs(np.fft.rfft(sig[RATE:].astype(float)))  # after the filter settled
        return spectrum[hz]  # 1 s of audio: bin n is n Hz

    assert level(whole, 50) < level(x, 50) * 0.2  # hum down by more than 14 dB
    assert level(whole, 1000) > level(x, 1000) * 0.95


def test_spotter_windows_end_on_the_streams_grid_wherever_listening_resumes(tmp_path):
    """After a recording, listening resumes where it ended; the windows still end on multiples
    of the hop, so the same keyword audio is scored in the same windows whatever the recorder
    did before it (the chain's benchmark compares recorders, not hop phases)."""
    import wave

    from edgeml.audio import Audio
    from edgeml.edgeml import ModelInfo
    from edgeml.sources import FileSource
    from edgeml.spotter import HOP_SECONDS, KeywordSpotter

    path = tmp_path / "in.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes((np.arange(RATE * 3) % 1000).astype(np.int16).tobytes())

    class Model:
        info = ModelInfo("x", ("listen", "noise"), RATE, RATE)

    hop = int(HOP_SECONDS * RATE)
    stream = Audio(FileSource(path, realtime=False))
    stream.start()
    try:
        spotter = KeywordSpotter(stream, Model(), DetectorConfig("listen"))
        for start, first in [
            (0, hop),
            (1234, hop),
            (hop - 1, hop),
            (hop, 2 * hop),
            (9001, 3 * hop),
        ]:
            windows = spotter.windows(RATE, start)
            ends = [next(windows).end_index for _ in range(3)]
            assert ends == [first, first + hop, first + 2 * hop], start
        window = next(spotter.windows(RATE, 30001))
        assert window.end_index == 8 * hop
        assert np.array_equal(window.samples, np.arange(8 * hop - RATE, 8 * hop) % 1000)
    finally:
        stream.stop()
