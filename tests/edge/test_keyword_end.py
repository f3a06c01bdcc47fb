"""Where a recording starts with the neural VAD: where the keyword really ends.

Real espeak-ng speech replayed through the app's own path (FileSource -> Audio -> KeywordSpotter
driving a scripted .eim through the SDK -> Recorder). Three kinds of model timing:
- "listen" matched whole (fires once the keyword is complete in the window);
- a two-word keyword "hello world" whose model fires EARLY by design: it matches only the
  first 55 % of the phrase, so it fires while "world" is still being said (the Studio model
  of the issue); its score keeps its peak from then on, so the tracking cannot push it later;
- the same model where the spotter's tracking IS the cue: "hello world" matched whole, but
  the window hop lands anywhere.
Over every hop phase and several pauses between keyword and sentence the recording must hold
the keyword and the sentence whole (sample-exact), start at most 250 ms before the keyword, and
judge the sentence (its end, the speculative offers) from no earlier than 30 ms before the
keyword's end. The keyword's words are taken off the transcript (keywordtext.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from devkit.scripted_eim import write_eim
from devkit.speech import RATE, compose, locate, quiet, speak, write_wav
from edgeml.audio import Audio
from edgeml.edgeml import EdgeML
from edgeml.recorder import Recorder, RecorderConfig, _speech_run_start
from edgeml.sources import FileSource
from edgeml.spotter import DetectorConfig, KeywordSpotter
from edgeml.vad import EndpointConfig

PHASES = [0.0, 0.06, 0.125, 0.19]  # where the 250 ms hop grid falls against the keyword's end


@pytest.fixture(scope="module")
def hello_world() -> np.ndarray:
    return speak("hello world")


def _model(path, template, keyword, window_samples: int = RATE, **behaviour) -> Iterator[EdgeML]:
    eim = write_eim(
        path, keyword=keyword, labels=(keyword, "noise"), template=template,
        window_samples=window_samples, **behaviour,
    )  # fmt: skip
    model = EdgeML(eim)
    model.start()
    try:
        yield model
    finally:
        model.stop()


@pytest.fixture(scope="module")
def listen_model(tmp_path_factory, keyword_audio):
    yield from _model(tmp_path_factory.mktemp("m") / "listen.eim", keyword_audio, "listen")


@pytest.fixture(scope="module")
def early_model(tmp_path_factory, hello_world):
    prefix = hello_world[: int(len(hello_world) * 0.55)]
    yield from _model(
        tmp_path_factory.mktemp("m") / "early.eim", prefix, "hello_world", RATE * 3 // 2
    )


@pytest.fixture(scope="module")
def whole_model(tmp_path_factory, hello_world):
    # a 1.5 s window, as a two-word keyword needs (0.9 s of speech)
    yield from _model(
        tmp_path_factory.mktemp("m") / "hw.eim", hello_world, "hello_world", RATE * 3 // 2
    )


LATE = 0.48  # a kwtrain model's delay: the lowest of three positions 240 ms apart


@pytest.fixture(scope="module")
def late_model(tmp_path_factory, keyword_audio):
    """Fires LATE seconds after the keyword is whole in its window, and says so in its hello."""
    yield from _model(
        tmp_path_factory.mktemp("m") / "late.eim", keyword_audio, "listen", RATE * 3 // 2,
        late_seconds=LATE, hello_params={"keyword_delay_seconds": LATE},
    )  # fmt: skip


def run(tmp_path, model: EdgeML, keyword: str, audio: np.ndarray, silence: float = 0.6):
    """Spot the keyword in `audio` and record what follows, as the app does."""
    stream = Audio(FileSource(write_wav(tmp_path / "in.wav", audio), realtime=False))
    stream.start()
    try:
        spotter = KeywordSpotter(stream, model, DetectorConfig(keyword, threshold=0.8))
        detection = spotter.listen()
        config = RecorderConfig(EndpointConfig(silence_seconds=silence))
        recorder = Recorder(stream, config)
        assert recorder.vad_kind == "silero"
        return detection, recorder.record(detection.end_index, detection.keyword_end)
    finally:
        stream.stop()


def check(rec, keyword_seg, sentence_seg, sentence):
    """The recording holds the sentence whole, and the keyword whole too unless a clear pause
    separates them (then none of it); the words after the keyword are judged (end of speech,
    the speculative offers) from where the keyword ends."""
    offset, match = locate(rec.samples, sentence)
    assert match > 0.99 and rec.start_index <= sentence_seg.start, (
        f"sentence clipped: recording starts {(rec.start_index - sentence_seg.start) / RATE:.3f}"
        " s after it"
    )
    assert rec.end_index >= sentence_seg.end
    pause = (sentence_seg.start - keyword_seg.end) / RATE
    if pause < 0.3:  # no clear pause: the keyword is kept, whole
        assert rec.keyword_kept
    if rec.keyword_kept:
        assert rec.start_index <= keyword_seg.start, (
            f"keyword clipped: recording starts {(rec.start_index - keyword_seg.start) / RATE:.3f}"
            " s after it"
        )
        assert rec.start_index >= keyword_seg.start - 0.25 * RATE, "too much before the keyword"
    else:
        assert pause >= 0.3 and rec.start_index >= keyword_seg.end - 0.03 * RATE, (
            f"cut {(keyword_seg.end - rec.start_index) / RATE * 1000:.0f} ms inside the keyword"
        )
    assert rec.after_keyword_index >= keyword_seg.end - 0.03 * RATE, (
        f"the sentence is judged from {(keyword_seg.end - rec.after_keyword_index) / RATE * 1000:.0f}"
        " ms inside the keyword"
    )


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("gap", [0.1, 0.15, 0.3, 0.6])
def test_listen_then_sentence(tmp_path, listen_model, keyword_audio, sentence_audio, gap, phase):
    audio, parts = compose(
        quiet(1.0 + phase), keyword_audio, quiet(gap), sentence_audio, quiet(1.5)
    )
    _, rec = run(tmp_path, listen_model, "listen", audio)
    check(rec, parts[1], parts[3], sentence_audio)


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("gap", [0.2, 0.4])
def test_two_word_keyword_fired_early(
    tmp_path, early_model, hello_world, sentence_audio, gap, phase
):
    audio, parts = compose(quiet(1.0 + phase), hello_world, quiet(gap), sentence_audio, quiet(1.5))
    detection, rec = run(tmp_path, early_model, "hello_world", audio)
    assert detection.end_index < parts[1].end, "the test model should fire before the keyword ends"
    check(rec, parts[1], parts[3], sentence_audio)


@pytest.mark.parametrize("phase", PHASES)
def test_two_word_keyword_tracked_to_its_end(
    tmp_path, whole_model, hello_world, sentence_audio, phase
):
    audio, parts = compose(quiet(1.0 + phase), hello_world, quiet(0.25), sentence_audio, quiet(1.5))
    detection, rec = run(tmp_path, whole_model, "hello_world", audio)
    assert abs(detection.keyword_end - parts[1].end) <= 0.06 * RATE
    check(rec, parts[1], parts[3], sentence_audio)


def test_keyword_run_into_the_sentence_loses_nothing(
    tmp_path, listen_model, keyword_audio, sentence_audio
):
    """No pause at all: the recording holds keyword and sentence whole, and the sentence is
    judged from the keyword's estimated end, give or take a 32 ms VAD chunk (no pause inside
    the sentence is taken for the keyword's end)."""
    audio, parts = compose(quiet(1.1), keyword_audio, sentence_audio, quiet(1.5))
    _, rec = run(tmp_path, listen_model, "listen", audio)
    assert rec.start_index <= parts[1].start and rec.end_index >= parts[2].end
    assert abs(rec.after_keyword_index - parts[2].start) <= 0.06 * RATE


def test_early_detection_then_a_long_pause_waits_for_the_sentence(
    tmp_path, early_model, hello_world, sentence_audio
):
    """Fired before "world" is over, then a pause longer than silence_seconds: the recording
    must not end on the rest of the keyword but wait for the sentence."""
    audio, parts = compose(quiet(1.0), hello_world, quiet(1.2), sentence_audio, quiet(1.5))
    _, rec = run(tmp_path, early_model, "hello_world", audio)
    assert rec.reason.value == "silence"
    check(rec, parts[1], parts[3], sentence_audio)


def test_speech_before_the_keyword_stays_out(tmp_path, whole_model, hello_world, sentence_audio):
    """Someone talked until 0.4 s before the keyword (inside the window that fired): the
    recording starts at the keyword, not at their earlier words."""
    before = sentence_audio[-int(0.8 * RATE) :]
    audio, parts = compose(quiet(1.0), before, quiet(0.4), hello_world, quiet(0.3),
                           sentence_audio, quiet(1.5))  # fmt: skip
    _, rec = run(tmp_path, whole_model, "hello_world", audio)
    check(rec, parts[3], parts[5], sentence_audio)


@pytest.mark.parametrize(
    ("speech", "first"),
    [
        ([0, 0, 1, 1, 1, 0, 0], 2),  # quiet after the keyword's end is walked over
        ([1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 1], 6),  # a short gap (between two words) is inside
        ([1, 1, 1, 1], 0),  # speech all along: the window's start
        ([0, 0, 0], None),
    ],
)
def test_the_keyword_speech_run(speech, first):
    assert _speech_run_start([bool(x) for x in speech], max_gap=3) == first


def test_a_clear_pause_leaves_the_keyword_out(
    tmp_path, listen_model, keyword_audio, sentence_audio
):
    """A second's pause after the keyword: the cut is safe, and the keyword's audio stays out
    (a lone keyword is often heard as other words by the speech model)."""
    audio, parts = compose(quiet(1.0), keyword_audio, quiet(1.0), sentence_audio, quiet(1.5))
    _, rec = run(tmp_path, listen_model, "listen", audio)
    assert not rec.keyword_kept
    assert parts[1].end - 0.03 * RATE <= rec.start_index <= parts[3].start
    check(rec, parts[1], parts[3], sentence_audio)


def test_a_short_command_then_silence_keeps_everything(tmp_path, listen_model, keyword_audio):
    """'Listen, stop.' and nothing more: the command is before the pause, so nothing is cut."""
    stop = speak("stop")
    audio, parts = compose(quiet(1.0), keyword_audio, quiet(0.05), stop, quiet(2.0))
    _, rec = run(tmp_path, listen_model, "listen", audio)
    assert rec.keyword_kept and rec.start_index <= parts[1].start
    assert locate(rec.samples, stop)[1] > 0.99


@pytest.mark.parametrize("phase", PHASES)
def test_a_late_model_keeps_a_short_first_word_said_at_once(
    tmp_path, late_model, keyword_audio, sentence_audio, phase
):
    """ "Listen, eight. <pause> ...": the model fires about 0.5 s after the keyword, in the
    pause after "eight". Placed from the detection, the keyword's end falls after "eight" and
    the clear pause cuts it off with the keyword; placed from the delay the model states, the
    cut falls between "listen" and "eight"."""
    eight = speak("eight")
    audio, parts = compose(
        quiet(1.0 + phase), keyword_audio, quiet(0.1), eight, quiet(0.6), sentence_audio,
        quiet(1.5),
    )  # fmt: skip
    detection, rec = run(tmp_path, late_model, "listen", audio, silence=1.0)
    assert detection.end_index >= parts[3].end, "the test model should fire after 'eight'"
    assert abs(detection.keyword_end - parts[1].end) <= 0.3 * RATE
    assert locate(rec.samples, eight)[1] > 0.99, "the first word was cut"
    assert rec.start_index <= parts[3].start
    check(rec, parts[1], parts[5], sentence_audio)
