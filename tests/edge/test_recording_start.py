"""Where a recording starts on the energy fallback (`--vad energy`): the sentence whole, the
keyword's last syllable not. The neural path, with the spotter's keyword-end estimate, is
tests/edge/test_keyword_end.py.

The pre-roll (0.25 s before the detection point) exists so that a sentence said promptly after
the keyword is not clipped; without care it also carries the end of "listen", which a speech
model writes as an extra word ("and what is the weather ..."). Real espeak-ng speech replayed
through the same Audio path the app uses.
"""

from __future__ import annotations

import numpy as np
import pytest

from devkit.speech import RATE, compose, locate, quiet, write_wav
from edgeml.audio import Audio
from edgeml.recorder import Recorder, RecorderConfig
from edgeml.sources import FileSource
from edgeml.vad import EndpointConfig, keyword_tail_frames

PRE_ROLL = 0.25


def test_tail_frames_cut_in_the_quietest_frame_of_the_first_pause():
    # keyword tail, an 80 ms pause (quietest in its middle), the sentence
    levels = np.array([-20, -22, -58, -70, -62, -60, -25, -20, -20], dtype=float)
    assert keyword_tail_frames(levels, -45, search_frames=8) == 3
    # voiced then quiet to the end of the recording
    assert keyword_tail_frames(np.array([-20, -60, -75, -70.0]), -45, search_frames=4) == 2


@pytest.mark.parametrize(
    "levels",
    [
        [-70, -60, -20, -20, -20, -20],  # opens quiet: the pre-roll holds no keyword
        [-20, -21, -22, -25, -20, -60, -60, -60, -60],  # voiced past the search
        [-20, -21, -96, -96, -20, -20],  # a 40 ms stop closure (the "t" of "what is")
        [],
    ],
    ids=["opens-quiet", "voiced-past-the-search", "short-dip", "empty"],
)
def test_tail_frames_drop_nothing_without_a_clean_cut(levels):
    levels = np.array(levels, dtype=float)
    assert keyword_tail_frames(levels, threshold_dbfs=-45, search_frames=4) == 0


def _record(tmp_path, audio: np.ndarray, detect_at: int):
    """Replay `audio`, read it in the spotter's 250 ms hops up to `detect_at`, record from there."""
    stream = Audio(FileSource(write_wav(tmp_path / "in.wav", audio), realtime=False))
    stream.start()
    try:
        end = RATE // 4
        while end < detect_at:
            stream.read(end - RATE, RATE)  # what the spotter reads: a 1 s window per hop
            end += RATE // 4
        config = RecorderConfig(
            EndpointConfig(silence_seconds=0.8), pre_roll_seconds=PRE_ROLL, vad="energy"
        )
        return Recorder(stream, config).record(end)
    finally:
        stream.stop()


def _lead_in(keyword: np.ndarray, detect_after: int) -> np.ndarray:
    """About 1 s of quiet, sized so that a 250 ms hop ends `detect_after` after the keyword."""
    hop = RATE // 4
    return quiet((RATE + (-(RATE + len(keyword) + detect_after)) % hop) / RATE)


@pytest.mark.parametrize("gap", [0.1, 0.2, 0.35])
@pytest.mark.parametrize("detect_after_ms", [-100, 0, 60, 180])
def test_recording_holds_the_whole_sentence_and_not_the_keyword(
    tmp_path, keyword_audio, sentence_audio, gap, detect_after_ms
):
    detect_after = detect_after_ms * RATE // 1000
    audio, parts = compose(
        _lead_in(keyword_audio, detect_after), keyword_audio, quiet(gap), sentence_audio,
        quiet(1.5),
    )  # fmt: skip
    keyword, sentence = parts[1], parts[3]
    rec = _record(tmp_path, audio, keyword.end + detect_after)
    assert rec.keyword_index == keyword.end + detect_after
    offset, match = locate(rec.samples, sentence_audio)
    assert match > 0.99 and rec.start_index <= sentence.start, "the sentence was clipped"
    assert rec.start_index >= keyword.end - 0.03 * RATE, (
        f"recording starts {(keyword.end - rec.start_index) / RATE * 1000:.0f} ms "
        "inside the keyword"
    )


def test_keyword_run_into_the_sentence_keeps_the_pre_roll(tmp_path, keyword_audio, sentence_audio):
    """No pause to cut at: keep all of the pre-roll rather than lose the sentence's start."""
    detect_after = 100 * RATE // 1000
    lead_in = _lead_in(keyword_audio, detect_after)
    audio, parts = compose(lead_in, keyword_audio, sentence_audio, quiet(1.5))
    rec = _record(tmp_path, audio, parts[1].end + detect_after)
    assert rec.keyword_index == parts[1].end + detect_after
    assert rec.keyword_index - rec.start_index >= PRE_ROLL * RATE - 320
    assert rec.start_index <= parts[2].start


def test_early_detection_then_a_pause_still_records_the_sentence(
    tmp_path, keyword_audio, sentence_audio
):
    """The spotter fires 100 ms before "listen" is over and the speaker pauses 1.5 s (longer
    than silence_seconds): the recording must wait for the sentence, not end on the keyword."""
    detect_after = -100 * RATE // 1000
    audio, parts = compose(
        _lead_in(keyword_audio, detect_after), keyword_audio, quiet(1.5), sentence_audio,
        quiet(1.5),
    )  # fmt: skip
    rec = _record(tmp_path, audio, parts[1].end + detect_after)
    offset, match = locate(rec.samples, sentence_audio)
    assert rec.reason.value == "silence" and match > 0.99, "the sentence was not recorded"
    assert rec.speech_start_index >= parts[3].start - 0.05 * RATE
