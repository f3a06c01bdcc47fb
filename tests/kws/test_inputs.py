"""The trainer's inputs: keywords checked before any file is written, text never an option,
and a data set that an interrupted run left half-made is never trained on (issue 23, rows 7
and 17-20)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from devkit.paths import venv_command
from kwtrain import cli, synth, tts
from kwtrain.bootstrap import BootstrapSettings, bootstrap
from kwtrain.dataset import MARKER, DatasetError, bootstrap_state, load_dataset
from kwtrain.names import MAX_KEYWORD_CHARS, BadName, check_keyword

KWTRAIN = venv_command("kwtrain")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
TINY = BootstrapSettings(
    accents=("en-us", "en-gb"),
    variants=("m1", "f2"),
    keyword_per_voice=3,
    words_per_voice=3,
    sentence_cuts_per_voice=1,
    noise_clips=24,
)
BAD_KEYWORDS = {
    "parent-path": ("../z", "not a plain word"),
    "option": ("-f/etc/hostname", "leading '-'"),
    "empty": ("", "is empty"),
    "200-chars": ("a" * 200, f"over the {MAX_KEYWORD_CHARS}-character limit"),
    "slash": ("a/b", "not a plain word"),
    "dot": ("listen.v2", "not a plain word"),
    "newline": ("listen\nnoise", "not a plain word"),
    "escape": ("listen\x1b[31m", "not a plain word"),
}
COMMANDS = {
    "bootstrap": ["bootstrap", "--out", "{out}"],
    "build-mfcc": ["build", "--frontend", "mfcc", "--out", "{out}"],
    "build-embedding": ["build", "--out", "{out}"],
    "train": ["train", "--data", "{out}", "--out", "{out}"],
    "evaluate": ["evaluate", "--model", "{out}/m.eim", "--data", "{out}"],
}


def _run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KWTRAIN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(BAD_KEYWORDS))
def test_a_bad_keyword_exits_2_with_the_rule_and_writes_nothing(tmp_path, command, case):
    """Rows 17-20: '../z' wrote beside --out, '-f/etc/hostname' became an espeak-ng option,
    '' gave a traceback, 200 characters gave exit 0 and no keyword class."""
    keyword, rule = BAD_KEYWORDS[case]
    work = tmp_path / "work"
    work.mkdir()
    args = [a.format(out=work / "out") for a in COMMANDS[command]]
    result = _run([*args, f"--keyword={keyword}"], cwd=work)
    assert result.returncode == 2, result.stderr[-2000:]
    assert rule in result.stderr and "Traceback" not in result.stderr
    assert "\x1b" not in result.stderr  # a control character is shown escaped, never sent raw
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["work"]  # not one file anywhere


def test_a_bad_keyword_from_the_environment_is_refused_too(tmp_path):
    env = {**os.environ, "KWTRAIN_KEYWORD": "../z"}
    result = _run(["bootstrap", "--out", str(tmp_path / "out")], cwd=tmp_path, env=env)
    assert result.returncode == 2 and "'../z' is not a plain word" in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("label", ["../x", "-noise", ""])
def test_a_bad_label_for_recorded_takes_is_refused(tmp_path, label):
    result = _run(["prepare", "--out", str(tmp_path / "d"), f"--label={label}"], cwd=tmp_path)
    assert result.returncode == 2 and "the label" in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("good", ["listen", "hey computer", "Hej-Då", "o'clock", "zwölf", "k9"])
def test_plain_words_and_phrases_are_keywords(good):
    assert check_keyword(good) == good


def test_the_bootstrap_api_checks_the_keyword_before_writing(tmp_path):
    with pytest.raises(BadName):
        bootstrap(tmp_path / "out", dataclasses.replace(TINY, keyword="../z"))
    assert not any(tmp_path.iterdir())


@needs_espeak
def test_text_that_looks_like_an_option_is_spoken_not_obeyed(tmp_path):
    """`-f FILE` made espeak-ng read FILE aloud: 300 words here, over a minute of speech.
    Spoken as text, '-f' and the path take a few seconds; the phonemes are of the path, not the
    file. (A short folder: pytest's own tmp_path is spelled out letter by letter for 10 s or
    more, depending on the test's name and the run's number.)"""
    folder = Path(tempfile.mkdtemp(prefix="kw"))
    secret = folder / "s.txt"
    secret.write_text("zebra " * 300)
    try:
        audio = tts.synthesize(f"-f{secret}")
        assert 0.5 < len(audio) / 16000 < 20
        assert "z'i:br" not in synth.phonemes(f"-f{secret}")
        job = synth.SynthJob("espeak", "en-us", f"-f{secret}", 150, 50)
        assert len(synth.render(job)) / 16000 < 20
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@needs_espeak
def test_a_keyword_too_long_to_say_in_the_window_is_an_error_not_a_model(tmp_path):
    """Every clip of a keyword longer than the window is dropped: that set has no keyword
    class, so bootstrap says so (exit 2 from the CLI) and the set stays marked unusable."""
    long_kw = "supercalifragilistic expialidoc"
    with pytest.raises(DatasetError, match="choose a shorter keyword"):
        bootstrap(tmp_path / "d", dataclasses.replace(TINY, keyword=long_kw))
    assert bootstrap_state(tmp_path / "d") == "incomplete"
    with pytest.raises(DatasetError, match="is incomplete"):
        load_dataset(tmp_path / "d", keyword=long_kw)


@needs_espeak
def test_a_finished_bootstrap_is_marked_complete_and_loads(tmp_path):
    result = bootstrap(tmp_path / "d", TINY)
    assert bootstrap_state(tmp_path / "d") == "complete"
    marker = json.loads((tmp_path / "d" / MARKER).read_text())
    assert marker["counts"] == result["counts"]
    assert set(load_dataset(tmp_path / "d", keyword="listen").labels) == {
        "listen",
        "noise",
        "unknown",
    }


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
@needs_espeak
def test_an_interrupted_build_is_not_trained_on_and_the_rerun_makes_the_set_again(
    tmp_path, monkeypatch, capsys
):
    """Row 7: Ctrl-C during `build --frontend mfcc`'s data set, then the same command again:
    it exited 0 with a model trained on the half-made set (no noise class)."""
    pytest.importorskip("torch")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [KWTRAIN, "build", "--frontend", "mfcc", "--out", str(out), "--epochs", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as a terminal sends it: a test run started in the background by a shell
        # without job control inherits SIGINT ignored, and Python then keeps ignoring it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        started = _wait_for(lambda: any((out / "data" / "listen").glob("*.wav")), 120)
        assert started, "the build never wrote a keyword clip"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == cli.EXIT_INTERRUPTED, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    assert bootstrap_state(out / "data") == "incomplete"
    assert not (out / "data" / "noise").exists()  # half-made indeed: noise comes last
    assert not list(out.glob("*.eim"))

    trained = _run(["train", "--data", str(out / "data"), "--out", str(tmp_path / "m")], tmp_path)
    assert trained.returncode == 2 and "is incomplete" in trained.stderr

    # The same build again (a small set, so the test trains in seconds): made anew, then used.
    small = lambda: TINY  # noqa: E731 - stands in for BootstrapSettings() inside cmd_build
    monkeypatch.setattr("kwtrain.bootstrap.BootstrapSettings", small)
    code = cli.main(["build", "--frontend", "mfcc", "--out", str(out), "--epochs", "2"])
    err = capsys.readouterr().err
    assert code == 0, err[-2000:]
    assert "left incomplete by an earlier run" in err
    assert bootstrap_state(out / "data") == "complete"
    from kwtrain.mfcc.export import read_model

    assert read_model(out / "listen.eim").labels == ["listen", "noise", "unknown"]
    assert not list(out.glob(".data.deleting-*"))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
