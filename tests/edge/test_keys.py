"""The endpoint key's rules (edgeml/keys.py), shared by the device app and sample-client.py."""

from __future__ import annotations

import logging

import pytest

from edgeml.keys import KeyProblem, check_transport, read_key, scrub

KEY = "Abc123-secret-KEY"


def test_key_file_newline_is_dropped_and_environment_is_the_fallback(tmp_path):
    path = tmp_path / "key"
    path.write_text(KEY + "\n")  # a Kubernetes secret made from a file ends with a newline
    path.chmod(0o600)
    assert read_key(path, env={"SCORING_KEY": "other"}) == KEY
    assert read_key(None, env={"SCORING_KEY": f" {KEY}\r\n"}) == KEY
    assert read_key(None, env={}) is None


@pytest.mark.parametrize(
    "content, words",
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        (f"{KEY[:5]} {KEY[5:]}", "whitespace or control"),
        (f"{KEY}\n{KEY}", "whitespace or control"),
        (f"{KEY}\x00", "whitespace or control"),
        ("clé-secrète", "non-ASCII"),
    ],
)
def test_unusable_keys_are_refused_without_showing_them(tmp_path, content, words):
    path = tmp_path / "key"
    path.write_text(content)
    with pytest.raises(KeyProblem, match=words) as err:
        read_key(path, env={})
    assert content.strip() == "" or content.strip() not in str(err.value)
    assert KEY[:5] not in str(err.value)


def test_unreadable_or_huge_key_files(tmp_path, caplog):
    with pytest.raises(KeyProblem, match="cannot read key file"):
        read_key(tmp_path / "missing", env={})
    big = tmp_path / "big"
    big.write_bytes(b"k" * 70_000)
    with pytest.raises(KeyProblem, match="larger than"):
        read_key(big, env={})
    shared = tmp_path / "shared"
    shared.write_text(KEY)
    shared.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="edgeml.keys"):
        assert read_key(shared, env={}) == KEY
    assert "readable by every user" in caplog.text and KEY not in caplog.text


def test_key_goes_over_https_or_to_this_machine_only(caplog):
    check_transport("https://x.example/score", KEY)
    check_transport("http://127.0.0.1:5001/score", KEY)
    check_transport("http://localhost:5001/score", KEY)
    check_transport("http://x.example/score", None)  # no key, nothing to protect
    with pytest.raises(KeyProblem, match="plain http to x.example") as err:
        check_transport("http://x.example/score", KEY)
    assert KEY not in str(err.value)
    with caplog.at_level(logging.WARNING, logger="edgeml.keys"):
        check_transport("http://10.0.0.5/score", KEY, allow_http=True)
    assert "plain http to 10.0.0.5" in caplog.text and KEY not in caplog.text


def test_scrub_removes_every_occurrence():
    text = f"HTTPConnectionPool: header 'Authorization': 'Bearer {KEY}' ... {KEY}"
    assert KEY not in scrub(text, KEY) and scrub(text, KEY).count("[key]") == 2
    assert scrub(text, None) == text
