"""The keyword taken off the front of a transcript (edgeml/keywordtext.py): the spellings a speech
model gives real keywords, and never a word of the sentence itself."""

from __future__ import annotations

import pytest

from edgeml.keywordtext import (
    edit_distance,
    find_keyword,
    spoken_form,
    strip_keyword,
    transcript_prefix,
)


@pytest.mark.parametrize(
    ("keyword", "heard", "printed"),
    [
        ("alexa", "ALEXA WHAT TIME IS IT", "WHAT TIME IS IT"),
        ("alexa", "Alexa, what time is it?", "What time is it?"),
        ("alexa", "Alexis, turn on the light.", "Turn on the light."),
        ("snowboy", "SNOW BOY THE BIRCH CANOE SLID", "THE BIRCH CANOE SLID"),
        ("smart mirror", "SMART MIRROR, OPEN THE DOOR", "OPEN THE DOOR"),
        ("smart mirror", "MIRROR OPEN THE DOOR", "OPEN THE DOOR"),  # only its last word heard
        ("hello_world", "HELLO WORLD ONE TWO THREE", "ONE TWO THREE"),
        ("operator", "OKAY OPERATOR CALL HOME", "CALL HOME"),  # a filler before it goes too
        ("voyager", "VOYAGER.", ""),  # the keyword alone: nothing after it
    ],
)
def test_the_keyword_is_taken_off(keyword, heard, printed):
    assert strip_keyword(heard, keyword) == printed


@pytest.mark.parametrize(
    ("keyword", "text"),
    [
        ("alexa", "THE BIRCH CANOE SLID ON THE SMOOTH PLANKS"),
        ("operator", "OPEN THE DOOR PLEASE"),  # "open" is not "operator"
        ("wildfire", "WHILE WE WAIT THE FIRE BURNS"),  # later words are not looked at
        ("snowboy", "SHOW ME THE WAY"),
        ("alexa", ""),
    ],
)
def test_a_sentence_without_the_keyword_is_left_whole(keyword, text):
    assert strip_keyword(text, keyword) == text


def test_no_keyword_no_change():
    assert strip_keyword("ALEXA WHAT TIME", None) == "ALEXA WHAT TIME"


def test_the_match_says_where_the_keyword_is():
    match = find_keyword(["WELL", "ALEXA", "WHAT"], "alexa")
    assert (match.start, match.end, match.distance) == (1, 2, 0.0)
    assert find_keyword(["WHAT", "TIME"], "alexa") is None


def test_spellings_and_distance():
    assert spoken_form("hey-edge_impulse") == "hey edge impulse"
    assert edit_distance("alexis", "alexa") == 2
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "abc") == 0


@pytest.mark.parametrize(
    ("label", "prefix"),
    [
        ("alexa", "Alexa,"),
        ("smart_mirror", "Smart mirror,"),
        ("hello-world", "Hello world,"),
        ("listen", "Listen,"),
        ("", None),
        (None, None),
        ("___", None),
        ("k\x1b[2Jx", None),  # a damaged spool record: only plain words are ever sent
        ("été", None),
        ("x" * 61, None),
    ],
)
def test_the_transcript_prefix_is_the_label_as_plain_words(label, prefix):
    assert transcript_prefix(label) == prefix


def test_the_transcript_prefix_is_one_the_service_accepts():
    """The device builds what scoring.prefix.check_prefix takes (the service refuses the rest)."""
    check = pytest.importorskip("scoring.prefix")
    from edgeml.cloudml import PREFIX_HEADER

    assert PREFIX_HEADER == check.PREFIX_HEADER
    for label in ("alexa", "smart_mirror", "o'clock", "x" * 200, "k\x1b[2Jx", "été"):
        prefix = transcript_prefix(label)
        assert prefix is None or check.check_prefix(prefix) == prefix
