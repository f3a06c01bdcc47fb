"""EdgeML drives scripted .eim executables through the real edge_impulse_linux ImpulseRunner."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from edge_helpers import run_main

from devkit.scripted_eim import write_eim
from devkit.speech import quiet
from edgeml.edgeml import EdgeML, ModelCrashed, ModelError


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (reaped processes are gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_hello_gives_window_rate_labels_and_the_keyword_scores(keyword_eim, keyword_audio):
    with EdgeML(keyword_eim) as model:
        assert model.info.labels == ("listen", "noise", "unknown")
        assert (model.info.frequency, model.info.window_samples) == (16000, 16000)
        window = quiet(1.0)
        window[4000 : 4000 + len(keyword_audio)] = keyword_audio
        assert model.classify(window)["listen"] > 0.95
        half = quiet(1.0)
        half[-4000:] = keyword_audio[:4000]  # only the start of the word: not the keyword
        assert model.classify(half)["listen"] < 0.6
        assert model.classify(quiet(1.0))["listen"] < 0.1


def test_a_socket_that_listens_late_is_connected_on_a_retry(eim_dir):
    """The SDK connects once the socket file exists; caught between a runner's bind() and its
    listen(), that connect fails with ECONNREFUSED. The start is retried instead of failing."""
    path = write_eim(eim_dir / "late.eim", schedule=[0.9], listen_delay=0.5)
    started = time.monotonic()
    with EdgeML(path) as model:
        assert model.classify(quiet(1.0))["listen"] == pytest.approx(0.9)
    assert time.monotonic() - started < 10


def test_model_with_another_rate_gets_resampled_windows(eim_dir):
    path = write_eim(eim_dir / "8k.eim", frequency=8000, window_samples=8000, schedule=[0.5])
    with EdgeML(path) as model:
        assert model.info.window_seconds == 1.0
        assert model.classify(quiet(1.0), 16000)["listen"] == 0.5


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "absent.eim", "not found"),
        (lambda d: d, "is a folder"),
        (lambda d: _not_executable(d / "plain.eim"), "not executable"),
        (lambda d: write_eim(d / "noint.eim", shebang="/nonexistent/python3"), "interpreter"),
    ],
    ids=["missing", "folder", "not-executable", "missing-interpreter"],
)
def test_unusable_model_files_fail_fast_with_a_clear_message(tmp_path, make, message):
    path = make(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(ModelError, match=message) as err:
        EdgeML(path).start()
    assert time.monotonic() - t0 < 2
    assert str(path) in str(err.value)


def _not_executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o644)
    return path


def test_model_exiting_at_start_is_an_error_within_seconds_not_a_hang(eim_dir):
    """The SDK's own init() loops forever here; EdgeML reports it and leaves no thread behind."""
    import threading

    before = threading.active_count()
    path = write_eim(eim_dir / "exits.eim", exit_at_start=3)
    t0 = time.monotonic()
    with pytest.raises(ModelError, match="exited with code 3"):
        EdgeML(path, start_timeout=20).start()
    assert time.monotonic() - t0 < 5
    time.sleep(0.3)
    assert threading.active_count() == before  # the SDK's waiting thread has ended


def test_model_that_never_opens_its_socket_times_out(eim_dir):
    path = write_eim(eim_dir / "silent.eim", no_socket=True)
    t0 = time.monotonic()
    with pytest.raises(ModelError, match="did not answer within 2 s"):
        EdgeML(path, start_timeout=2).start()
    assert time.monotonic() - t0 < 4


def test_model_dying_mid_run_is_reported_and_restarted(eim_dir, tmp_path):
    calls = tmp_path / "calls.log"
    path = write_eim(eim_dir / "dies.eim", schedule=[0.2] * 10, die_after=2, calls_log=calls)
    model = EdgeML(path)
    model.start()
    first_pid = model._proc.pid
    try:
        assert model.classify(quiet(1.0))["listen"] == 0.2
        assert model.classify(quiet(1.0))["listen"] == 0.2
        with pytest.raises(ModelCrashed, match="exited with code 17"):
            model.classify(quiet(1.0))
        model.restart()
        assert model.restarts == 1 and model._proc.pid != first_pid
        assert model.classify(quiet(1.0))["listen"] == 0.2  # the app goes on
        assert not _alive(first_pid)  # the dead one was reaped, no zombie
    finally:
        model.stop()
    pids = {line.split()[0] for line in calls.read_text().splitlines()}
    assert len(pids) == 2


def test_hung_model_call_is_bounded_by_the_timeout(eim_dir):
    path = write_eim(eim_dir / "hangs.eim", schedule=[0.3] * 10, hang_after=1)
    model = EdgeML(path, call_timeout=1.0)
    model.start()
    try:
        model.classify(quiet(1.0))
        t0 = time.monotonic()
        with pytest.raises(ModelCrashed, match="did not answer within 1.0 s"):
            model.classify(quiet(1.0))
        assert time.monotonic() - t0 < 3
        hung_pid = model._proc.pid
        model.restart()
        assert model.classify(quiet(1.0))["listen"] == 0.3
        assert not _alive(hung_pid)
    finally:
        model.stop()


def test_env_python3_shebang_runs_with_the_apps_interpreter(eim_dir, monkeypatch):
    """An exported .eim may start with `#!/usr/bin/env python3`: it must find our numpy."""
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")
    path = write_eim(eim_dir / "envpy.eim", schedule=[0.4], shebang="/usr/bin/env python3")
    with EdgeML(path) as model:
        assert model.classify(quiet(1.0))["listen"] == 0.4
        assert os.environ["PATH"].split(os.pathsep)[0] == os.path.dirname(os.sys.executable)


def test_stop_ends_and_reaps_the_model_process(keyword_eim):
    model = EdgeML(keyword_eim)
    model.start()
    pid = model._proc.pid
    model.stop()
    assert not _alive(pid) and not model.running
    with pytest.raises(ModelCrashed):
        model.classify(np.zeros(16000, np.int16))


def _shell_model(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    ("body", "status", "said"),
    [
        ('echo "this .eim needs onnxruntime, which /x/python3 cannot import" >&2\nexit 3\n',
         "exited with code 3", "this .eim needs onnxruntime, which /x/python3 cannot import"),
        ('echo "about to die" >&2\nkill -KILL $$\n',
         "was killed by signal 9 (SIGKILL)", "about to die"),
        ("exit 0\n", "exited with code 0", None),
    ],
    ids=["message-and-code", "signal", "silent"],
)  # fmt: skip
def test_a_model_that_exits_before_its_socket_says_why_not_hangs(tmp_path, body, status, said):
    """The SDK's init() waits forever for a socket that a dead model never makes, and it sends
    the model's stderr to /dev/null: the error names the model, how it ended and its last words."""
    path = _shell_model(tmp_path / "dies-at-start.eim", body)
    t0 = time.monotonic()
    with pytest.raises(ModelError) as err:
        EdgeML(path, start_timeout=120).start()
    assert time.monotonic() - t0 < 60  # far inside start_timeout: the exit itself was noticed
    message = str(err.value)
    assert str(path) in message and f"{status} at start" in message
    assert (f"it said: {said}" in message) if said else ("it said" not in message)


def test_a_model_that_floods_stderr_then_exits_is_quoted_short_and_escaped(tmp_path):
    """10 MB of stderr, then control characters: the message quotes the end, printable."""
    body = ("head -c 10000000 /dev/zero | tr '\\0' x >&2\n"
            "printf '\\033[2J\\007 last words\\n' >&2\nexit 4\n")  # fmt: skip
    path = _shell_model(tmp_path / "floods.eim", body)
    with pytest.raises(ModelError, match="exited with code 4") as err:
        EdgeML(path, start_timeout=120).start()
    message = str(err.value)
    assert "last words" in message and "\\x1b[2J\\x07" in message
    assert "\x1b" not in message and "\x07" not in message and len(message) < 1000


@pytest.mark.parametrize(
    ("labels", "found"),
    [(("computer", "unknown"), "computer"),
     (("_background_noise_", "Jarvis", "_unknown_"), "Jarvis"),
     (("computer", "jarvis", "unknown"), None)],
    ids=["one-keyword", "ei-style-labels", "two-keywords"],
)  # fmt: skip
def test_a_one_keyword_model_needs_no_keyword_option(eim_dir, tmp_path, labels, found):
    """`edgeml --model computer.eim` stopped with "keyword 'listen' is not a label of the model
    (labels: computer, unknown); pass --keyword". A model with one keyword label uses it and
    says so once; with two, the choice is still the user's (the app's own run, real model)."""
    keyword = found or labels[0]
    model = write_eim(eim_dir / f"{keyword}-{len(labels)}.eim", keyword=keyword, labels=labels,
                      schedule=[0.0])  # fmt: skip
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(16000 * 2, dtype=np.int16), 16000, subtype="PCM_16")
    result = run_main(["--model", model, "--input", silence, "--spool-dir", tmp_path / "spool",
                       "--log-level", "INFO"], timeout=60)  # fmt: skip
    if found:
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stderr.count(f"keyword '{found}' (the model's only keyword)") == 1
        assert "is not a label" not in result.stderr
    else:
        assert result.returncode == 1
        assert "keyword 'listen' is not a label of the model" in result.stderr
        assert "pass --keyword" in result.stderr and "Traceback" not in result.stderr
