"""The speculative transcription: an answer is used only for the very audio that was stored.

Against a real HTTP endpoint on localhost (devkit.fault_server), whose answer names the audio
it was given ("REC <first sample> <sha1 id>"), so every test sees which audio a printed
transcript belongs to.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import soundfile as sf
from edge_helpers import holds, run_main

from devkit.speech import audio_id, compose, quiet, speak, write_wav
from edgeml.cloudml import CloudML
from edgeml.speculative import SpeculationConfig, SpeculativeClient, Speculator
from edgeml.turn import Verdict


def _clip(seed: int, seconds: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(16000 * seconds)) * 3000).astype(np.int16)


@pytest.fixture
def clients(fault_server):
    speculator = Speculator(CloudML(fault_server.url, retries=0), SpeculationConfig(wait_seconds=5))
    client = SpeculativeClient(CloudML(fault_server.url, retries=0), speculator)
    yield speculator, client
    client.close()


def test_the_stored_audio_gets_the_speculative_answer_without_a_second_request(
    fault_server, clients
):
    speculator, client = clients
    audio = _clip(1)
    speculator.offer(audio)
    transcript = client.transcribe(audio.copy())  # what the spool reads back: equal, not same
    assert transcript.text.endswith(audio_id(audio))
    assert len(fault_server.requests) == 1 and speculator.used == 1


def test_other_audio_is_sent_normally_and_an_answer_is_used_once(fault_server, clients):
    speculator, client = clients
    guess, final = _clip(1), _clip(2)
    speculator.offer(guess)
    assert client.transcribe(final).text.endswith(audio_id(final))  # speech resumed: not used
    assert client.transcribe(guess).text.endswith(audio_id(guess))
    assert client.transcribe(guess).text.endswith(audio_id(guess))  # second time: a request
    assert [r.audio_id for r in fault_server.requests].count(audio_id(guess)) == 2


def test_an_answer_is_used_only_for_the_prefix_it_was_asked_with(fault_server, clients):
    """The same samples sent with another transcript prefix (the keyword kept or not) are a
    different request: the service's answer differs, so the held one is not handed out."""
    speculator, client = clients
    audio = _clip(5)
    _settled(speculator.offer(audio, "Alexa,"))  # the guess answered and held
    assert client.transcribe(audio.copy()).text.endswith(audio_id(audio))  # no prefix: asked
    assert [r.prefix for r in fault_server.requests] == ["Alexa,", None]
    assert speculator.used == 0
    client.transcribe(audio.copy(), prefix="Alexa,")
    assert speculator.used == 1 and len(fault_server.requests) == 2  # the held answer


def test_a_failed_guess_falls_back_to_the_normal_request(fault_server, clients):
    speculator, client = clients
    fault_server.faults.append(500)
    audio = _clip(3)
    speculator.offer(audio)
    assert client.transcribe(audio).text.endswith(audio_id(audio))
    assert [r.status for r in fault_server.requests] == [500, 200]
    assert speculator.used == 0


def test_a_guess_in_flight_is_waited_for(fault_server, clients):
    speculator, client = clients
    fault_server.faults.append(("slow", 0.8))
    audio = _clip(4)
    speculator.offer(audio)
    assert client.transcribe(audio).text.endswith(audio_id(audio))
    assert len(fault_server.requests) == 1


def test_a_newer_pause_replaces_a_guess_not_yet_sent(fault_server, clients):
    speculator, client = clients
    fault_server.faults.append(("slow", 0.5))
    first, second, third = _clip(5), _clip(6), _clip(7)
    speculator.offer(first)
    # in flight once the server has taken its slow fault (under load the sender thread can be
    # late to pick it up, and then `second` would rightly replace `first` instead)
    deadline = time.monotonic() + 10.0
    while fault_server.faults and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not fault_server.faults, "the first guess never reached the server"
    speculator.offer(second)  # pending...
    speculator.offer(third)  # ... replaced before it was sent
    assert client.transcribe(third).text.endswith(audio_id(third))
    sent = [r.audio_id for r in fault_server.requests]
    assert audio_id(second) not in sent and sent.count(audio_id(third)) == 1


def _settled(hint, seconds: float = 5.0) -> Verdict:
    deadline = time.monotonic() + seconds
    while (verdict := hint()) is Verdict.PENDING and time.monotonic() < deadline:
        time.sleep(0.01)
    return verdict


def test_the_hint_is_pending_until_the_answer_then_what_its_words_say(fault_server, clients):
    speculator, client = clients
    fault_server.faults.extend([("slow", 0.4), 500])
    fault_server.suffix = lambda _samples: " AND"
    hint = speculator.offer(_clip(8))
    assert hint() is Verdict.PENDING  # on its way (0.4 s)
    assert _settled(hint) is Verdict.INCOMPLETE
    assert _settled(speculator.offer(_clip(9))) is Verdict.UNKNOWN  # the guess failed (500)
    fault_server.suffix = lambda _samples: " OVER."
    assert _settled(speculator.offer(_clip(10))) is Verdict.COMPLETE
    assert client.transcribe(_clip(10)).text.endswith(" OVER.")  # the answer is still used once
    assert speculator.used == 1


@pytest.mark.parametrize("pause", [0.0, 0.5])
def test_app_prints_once_the_transcript_of_exactly_the_stored_recording(
    fault_server, keyword_eim, keyword_audio, sentence_audio, tmp_path, pause
):
    """The app with speculation on: a sentence, optionally with a 0.5 s pause inside it (a
    guess is made there and must be discarded when the speaker goes on). One line printed,
    for exactly the recording kept in --save-dir; the spool is empty afterwards."""
    half = len(sentence_audio) // 2
    said = (
        [sentence_audio]
        if not pause
        else [sentence_audio[:half], quiet(pause), sentence_audio[half:]]
    )
    audio, _ = compose(quiet(1.0), keyword_audio, quiet(0.3), *said, quiet(2.0))
    wav = write_wav(tmp_path / "in.wav", audio)
    save, spool = tmp_path / "save", tmp_path / "spool"
    result, stored = _run_once(
        keyword_eim, wav, fault_server.url, spool, save,
        ["--input-speed", "fast", "--silence-seconds", "0.8"],
    )  # fmt: skip
    assert result.stdout.splitlines() == [f"REC {int(stored[0])} {audio_id(stored)}"]
    ids = [r.audio_id for r in fault_server.requests]
    assert ids.count(audio_id(stored)) == 1, "the stored recording was sent twice"
    # no pause: the guess at the final pause was the answer (one request in all); with the
    # pause: one guess there, discarded, then the final one
    assert len(ids) == (2 if pause else 1), ids
    assert not list(spool.glob("*.json"))


@pytest.mark.parametrize(
    ("words", "hints", "whole"),
    [(" AND", "1", True), (" OVER.", "1", False), (" AND", "0", False)],
    ids=["unfinished-waits", "finished-ends", "hints-off"],
)
def test_the_answers_words_decide_whether_a_long_pause_ends_the_recording(
    fault_server, keyword_eim, keyword_audio, tmp_path, words, hints, whole
):
    """A sentence said in two phrases with a 1.0 s pause between them, replayed in real time
    (the answer must come back while the pause lasts, as from a real endpoint). The endpoint's
    answer for the audio so far ends with the given words: "... AND" (mid-phrase) lets the
    recorder wait up to --long-pause-seconds, so both phrases are stored; "... OVER." (finished)
    or hints switched off end it at --silence-seconds, inside the pause. Either way the printed
    line is the answer for exactly the stored audio."""
    first, second = speak("what is the weather like"), speak("tomorrow morning")
    audio, _ = compose(quiet(1.0), keyword_audio, quiet(0.3), first, quiet(1.0), second, quiet(2.5))
    fault_server.suffix = lambda _samples: words
    wav = write_wav(tmp_path / "in.wav", audio)
    save, spool = tmp_path / "save", tmp_path / "spool"
    result, stored = _run_once(
        keyword_eim, wav, fault_server.url, spool, save,
        ["--input-speed", "realtime", "--silence-seconds", "0.7", "--long-pause-seconds", "1.6",
         "--turn-hints", hints, "--turn-model", "0"],  # the words alone
    )  # fmt: skip
    assert result.stdout.splitlines() == [f"REC {int(stored[0])} {audio_id(stored)}{words}"]
    assert holds(stored, first[:1600]) and holds(stored, first[-1600:])
    assert holds(stored, second[-1600:]) is whole, "the second phrase, after the pause"
    (line,) = [x for x in result.stderr.splitlines() if "recorded " in x]
    said = {"1": "words incomplete" if whole else "words complete"}.get(hints)
    assert (said in line) if said else ("words" not in line), line
    assert not list(spool.glob("*.json"))


def test_the_audio_turn_model_answers_inside_the_app_without_holding_up_the_recording(
    fault_server, keyword_eim, keyword_audio, tmp_path
):
    """The app in real time with the audio turn model on: its answer for the final pause is
    part of the decision (logged with the recording), and the printed line is the answer for
    exactly the stored recording, which holds the whole sentence. Under emulation the model
    may answer after its deadline: then no probability is logged and the recording still ends
    by the other signals (a late answer is no signal)."""
    said = speak("what is the weather like tomorrow morning")
    audio, _ = compose(quiet(1.0), keyword_audio, quiet(0.3), said, quiet(2.5))
    fault_server.suffix = lambda _samples: " MORNING."
    wav = write_wav(tmp_path / "in.wav", audio)
    save, spool = tmp_path / "save", tmp_path / "spool"
    result, stored = _run_once(
        keyword_eim, wav, fault_server.url, spool, save,
        ["--input-speed", "realtime", "--turn-model", "1", "--early-pause-seconds", "0.45"],
    )  # fmt: skip
    assert result.stdout.splitlines() == [f"REC {int(stored[0])} {audio_id(stored)} MORNING."]
    assert holds(stored, said[:1600]) and holds(stored, said[-1600:])
    (line,) = [x for x in result.stderr.splitlines() if "recorded " in x]
    assert "words complete" in line, line
    assert "turn model" not in line or re.search(r"turn model [01]\.\d\d", line), line


def _run_once(model, wav, endpoint: str, spool, save, extra: list[str]):
    """The app, once, with speculation on, on a replayed file: its result and the one recording
    it stored (it must exit 0 and store exactly one)."""
    result = run_main(
        ["--model", model, "--input", wav, "--once", "--endpoint", endpoint,
         "--spool-dir", spool, "--save-dir", save, "--speculate", "1", *extra],
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (wav_saved,) = save.glob("*.wav")
    return result, sf.read(wav_saved, dtype="int16")[0]
