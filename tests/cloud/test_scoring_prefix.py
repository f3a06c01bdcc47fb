"""The X-Transcript-Prefix header: which values the service takes, and how the words are taken
off the answer (scoring/prefix.py). Through the real server: test_scoring_whisper.py."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from devkit.scoring_client import wav_bytes
from scoring.errors import RequestError
from scoring.prefix import MAX_PREFIX_CHARS, PREFIX_HEADER, check_prefix, without_prefix


@pytest.mark.parametrize(
    ("value", "taken"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("Alexa,", "Alexa,"),
        ("  smart   mirror ", "smart mirror"),
        ("o'clock - 7!", "o'clock - 7!"),
        ("x" * MAX_PREFIX_CHARS, "x" * MAX_PREFIX_CHARS),
    ],
)
def test_plain_words_are_taken(value, taken):
    assert check_prefix(value) == taken


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("x" * (MAX_PREFIX_CHARS + 1), "65 characters long"),
        ("Alexa\x1b[2J", "only letters"),
        ("Алекса", "only letters"),
        ("<|endoftext|>", "only letters"),
        (",,, ...", "no word"),
    ],
)
def test_anything_else_is_a_400_naming_the_header(value, names):
    with pytest.raises(RequestError) as err:
        check_prefix(value)
    assert err.value.status == 400 and err.value.code == "invalid_prefix"
    assert PREFIX_HEADER in err.value.message and names in err.value.message


@pytest.mark.parametrize(
    ("text", "prefix", "left"),
    [
        ("ALEXA, WHAT TIME IS IT?", "Alexa,", ("WHAT TIME IS IT?", True)),
        ("SMART MIRROR. 8. THE PRESS YARD.", "Smart mirror", ("8. THE PRESS YARD.", True)),
        ("ALEXA", "Alexa,", ("ALEXA", False)),  # not the forced start: left whole
        ("WHY ARE YOU? ONE", "Voyager,", ("WHY ARE YOU? ONE", False)),
        ("ALEXA,", "Alexa,", ("", True)),
    ],
)
def test_the_prefix_is_taken_off_only_where_the_text_starts_with_it(text, prefix, left):
    assert without_prefix(text, prefix) == left


def test_an_engine_without_prefixes_ignores_the_header(scoring_server):
    """The CTC engine transcribes the audio as it is; the answer says no prefix was used."""
    silence = wav_bytes(np.zeros(16000, np.int16))
    answer = requests.post(
        scoring_server.score_url,
        data=silence,
        headers={"Content-Type": "audio/wav", PREFIX_HEADER: "Alexa,"},
        timeout=60,
    )
    assert answer.status_code == 200 and answer.json()["engine"] == "ctc"
    assert "prefix" not in answer.json()
    bad = requests.post(
        scoring_server.score_url,
        data=silence,
        headers={"Content-Type": "audio/wav", PREFIX_HEADER: "x" * 100},
        timeout=60,
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_prefix"
