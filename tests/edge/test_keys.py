"""The endpoint key's rules (edgeml/keys.py), shared by the device app and sample-client.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf
from edge_helpers import run_main

from devkit.rogue_eim import write_rogue_eim
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


def test_a_key_file_that_is_a_pipe_nobody_writes_fails_fast(tmp_path):
    """open() of a FIFO waits for a writer forever: the app hung at start without a word."""
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(KeyProblem, match="nothing written"):
        read_key(fifo, env={})
    assert time.monotonic() - started < 8
    # a pipe that is written (`--key-file <(pass show key)`) is read as before
    writer = subprocess.Popen(["sh", "-c", f"sleep 0.3; printf '{KEY}\\n' > {fifo}"])
    try:
        assert read_key(fifo, env={}) == KEY
    finally:
        writer.wait(timeout=10)


def test_the_model_process_does_not_inherit_the_key(tmp_path):
    """The .eim is a third party's executable, started with the app's environment: it could
    read SCORING_KEY from it."""
    dump = tmp_path / "env.json"
    model = write_rogue_eim(tmp_path / "envdump.eim", env_dump=dump)
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(16000 * 3, dtype=np.int16), 16000, subtype="PCM_16")
    result = run_main(["--model", model, "--input", silence, "--input-speed", "fast",
                       "--endpoint", "http://127.0.0.1:9/score", "--spool-dir", tmp_path / "s"],
                      env={"SCORING_KEY": KEY}, timeout=30)  # fmt: skip
    assert dump.exists(), result.stderr[-1500:]
    env = json.loads(dump.read_text())
    assert "SCORING_KEY" not in env and not [k for k, v in env.items() if KEY in v]
