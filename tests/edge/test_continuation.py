"""Continuation instead of loss (--continue-seconds): speech that resumes shortly after a
recording ended is recorded without a new keyword and delivered as that recording's
continuation.

The real app (edgeml/main.py) on a replayed WAV of espeak-ng speech, the scripted keyword .eim
through the real SDK, and a real HTTP endpoint on localhost (devkit.fault_server) whose answer
names the exact audio it got ("REC <first sample> <sha1 id>"): every printed line and --jsonl
record is tied to the audio stored. The app runs until the input ends (no --once: a --once run
ends with its first transcript), then delivers what it stored and exits.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from edge_helpers import holds, run_main

from devkit.speech import audio_id, compose, quiet, speak, write_wav
from kwtrain.tts import Voice

SILENCE = "0.7"  # the end rule: a pause this long ends a recording
WINDOW = "1.0"  # --continue-seconds in these tests: counted from where the end was decided


@pytest.fixture(scope="module")
def phrases() -> tuple[np.ndarray, np.ndarray]:
    return speak("what is the weather like"), speak("tomorrow morning")


FIXED_PAUSE = ["--speculate", "0"]  # the end at SILENCE exactly (no transcript hints)
# speculation on, the hints' long pause only just above SILENCE: the end comes at 0.7-0.8 s
# whenever the answer arrives (a replay runs faster than the endpoint answers)
SPECULATING = ["--speculate", "1", "--long-pause-seconds", "0.8"]


def _run(tmp_path, model, endpoint: str, audio: np.ndarray, window: str | None, extra=()):
    """The app on `audio` until the input ends: its result, the --jsonl records, and the
    recordings it stored (from --save-dir, in the order recorded)."""
    wav = write_wav(tmp_path / "in.wav", audio)
    jsonl, save, spool = tmp_path / "out.jsonl", tmp_path / "save", tmp_path / "spool"
    extra = [*(extra or FIXED_PAUSE), *([] if window is None else ["--continue-seconds", window])]
    result = run_main(
        ["--model", model, "--input", wav, "--input-speed", "fast", "--endpoint", endpoint,
         "--spool-dir", spool, "--save-dir", save, "--jsonl", jsonl,
         "--silence-seconds", SILENCE, *extra],
        timeout=90,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    stored = [sf.read(p, dtype="int16")[0] for p in sorted(save.glob("*.wav"))]
    assert not list(spool.glob("*.json")), "a recording was left undelivered"
    return result, records, stored


def _line(recording: np.ndarray) -> str:
    """What the endpoint answers (and the app prints) for exactly this audio."""
    return f"REC {int(recording[0])} {audio_id(recording)}"


def _whole(recording: np.ndarray, phrase: np.ndarray) -> bool:
    return holds(recording, phrase[:1600]) and holds(recording, phrase[-1600:])


@pytest.mark.parametrize("mode", [FIXED_PAUSE, SPECULATING], ids=["fixed-pause", "speculating"])
def test_speech_resuming_inside_the_window_is_delivered_as_the_continuation(
    fault_server, keyword_eim, keyword_audio, phrases, tmp_path, mode
):
    """Keyword, a phrase, a 1.2 s pause (ends the recording at 0.7-0.8 s; speech resumes
    0.4-0.5 s into the window), a second phrase: two recordings, each phrase whole in its own,
    the second's --jsonl record `continues` the first's id, two stdout lines (each the answer
    for exactly its stored audio, speculative or not), one keyword."""
    first, second = phrases
    audio, _ = compose(quiet(1.0), keyword_audio, quiet(0.3), first, quiet(1.2), second, quiet(2.5))
    result, records, stored = _run(tmp_path, keyword_eim, fault_server.url, audio, WINDOW, mode)
    assert len(stored) == 2, result.stderr
    assert _whole(stored[0], first) and not holds(stored[0], second[:1600])
    assert _whole(stored[1], second) and not holds(stored[1], first[-1600:])
    assert result.stdout.splitlines() == [_line(stored[0]), _line(stored[1])]
    one, two = records
    assert one["keyword"] == "listen" and "continues" not in one
    assert two["continues"] == one["id"] and two["keyword"] is None
    assert [r["text"] for r in records] == [_line(s) for s in stored]


def test_a_chain_of_continuations_stops_at_its_maximum(
    fault_server, keyword_eim, keyword_audio, phrases, tmp_path
):
    """Six phrases 1.2 s apart after one keyword: the keyword's recording and three
    continuations (each continuing the one before), then the chain ends: the rest is not
    recorded without a keyword (a TV cannot keep the device recording)."""
    first, second = phrases
    said = [first, second] * 3
    parts = [quiet(1.0), keyword_audio, quiet(0.3)]
    for phrase in said:
        parts += [phrase, quiet(1.2)]
    audio, _ = compose(*parts, quiet(2.0))
    result, records, stored = _run(tmp_path, keyword_eim, fault_server.url, audio, WINDOW)
    assert len(stored) == 4, result.stderr
    for recording, phrase in zip(stored, said, strict=False):
        assert _whole(recording, phrase)
    assert [r.get("continues") for r in records] == [None, *[r["id"] for r in records[:3]]]
    assert len(result.stdout.splitlines()) == 4


def test_window_off_records_only_the_first_phrase(
    fault_server, keyword_eim, keyword_audio, phrases, tmp_path
):
    """--continue-seconds 0 (off; the default is 0.8 s): one recording; the phrase after the
    pause is not recorded (no keyword said before it)."""
    first, second = phrases
    audio, _ = compose(quiet(1.0), keyword_audio, quiet(0.3), first, quiet(1.2), second, quiet(2.5))
    result, records, stored = _run(tmp_path, keyword_eim, fault_server.url, audio, "0")
    assert len(stored) == 1, result.stderr
    assert _whole(stored[0], first) and not holds(stored[0], second[:1600])
    assert result.stdout.splitlines() == [_line(stored[0])]
    assert "continues" not in records[0]
    assert "--continue-seconds" in run_main(["--help"]).stdout


def test_speech_after_the_window_is_not_recorded(
    fault_server, keyword_eim, keyword_audio, phrases, tmp_path
):
    """A 2.5 s pause: speech resumes 1.8 s after the end was decided, past the 1.0 s window,
    and without a keyword it is not recorded."""
    first, second = phrases
    audio, _ = compose(quiet(1.0), keyword_audio, quiet(0.3), first, quiet(2.5), second, quiet(2.5))
    result, records, stored = _run(tmp_path, keyword_eim, fault_server.url, audio, WINDOW)
    assert len(stored) == 1, result.stderr
    assert _whole(stored[0], first)
    assert result.stdout.splitlines() == [_line(stored[0])]
    assert not any(holds(s, second[-1600:]) for s in stored)


def test_a_keyword_inside_the_window_starts_a_new_turn(
    fault_server, keyword_eim, keyword_audio, phrases, tmp_path
):
    """The keyword said again 1.0 s after the first phrase (inside the window): the spotter
    hears it, and the next recording is a new turn (its keyword, no `continues`)."""
    first, second = phrases
    audio, _ = compose(
        quiet(1.0), keyword_audio, quiet(0.3), first, quiet(1.0), keyword_audio, quiet(0.3),
        second, quiet(2.5),
    )  # fmt: skip
    result, records, stored = _run(tmp_path, keyword_eim, fault_server.url, audio, WINDOW)
    assert len(stored) == 2, result.stderr
    assert _whole(stored[0], first) and _whole(stored[1], second)
    assert [r["keyword"] for r in records] == ["listen", "listen"]
    assert all("continues" not in r for r in records)
    assert result.stdout.splitlines() == [_line(s) for s in stored]


OTHER_VOICE = Voice("en-us+m3", speed=170, pitch=30)  # someone else, not the keyword's speaker


@pytest.mark.parametrize(
    ("who", "guard", "recordings"),
    [("other", None, 1), ("other", "0", 2), ("own", None, 2)],
    ids=["quieter-voice-guarded", "quieter-voice-no-guard", "own-voice-guarded"],
)
def test_quieter_speech_after_the_turn_is_not_a_continuation(
    fault_server, keyword_eim, keyword_audio, phrases, tmp_path, who, guard, recordings
):
    """The turn, then 1.2 s later (0.5 s into the window) a TV or another person across the
    room: other words, 14 dB below the speaker's. With the level guard (--continue-level-db,
    default 1) they are not recorded: one recording, one line; without it (0) the same audio
    is taken for the speaker resuming and a second line of words the user never said is
    printed. The
    speaker's own voice at their own level after the same pause is still a continuation."""
    first, second = phrases
    after = second if who == "own" else speak("turn left at the next corner", OTHER_VOICE, 0.14)
    audio, _ = compose(quiet(1.0), keyword_audio, quiet(0.3), first, quiet(1.2), after, quiet(2.5))
    result, records, stored = _run(
        tmp_path, keyword_eim, fault_server.url, audio, WINDOW,
        [*FIXED_PAUSE, *([] if guard is None else ["--continue-level-db", guard])],
    )  # fmt: skip
    assert len(stored) == recordings, result.stderr
    assert _whole(stored[0], first) and not holds(stored[0], after[:1600])
    assert result.stdout.splitlines() == [_line(s) for s in stored]
    if recordings == 2:
        assert _whole(stored[1], after) and records[1]["continues"] == records[0]["id"]
    else:
        assert "dB below the speaker's level: not a continuation" in result.stderr


def test_the_spool_record_carries_continues_and_old_records_still_load():
    """`continues` is stored with the recording (a restart delivers it as a continuation
    still); a record written before the field existed loads with None; a wrong type is named."""
    from edgeml.spool import RecordingInfo, SpoolRecord

    record = SpoolRecord(1, "b" * 32, "2026-12-07T00:00:00.000+00:00", 0.0, 1.0,
                         RecordingInfo(end_reason="silence", continues="a" * 32))  # fmt: skip
    assert SpoolRecord.from_json(record.to_json()).info.continues == "a" * 32
    old = json.loads(record.to_json())
    del old["info"]["continues"]
    assert SpoolRecord.from_json(json.dumps(old).encode()).info.continues is None
    old["info"]["continues"] = 7
    with pytest.raises(ValueError, match="continues"):
        SpoolRecord.from_json(json.dumps(old).encode())
