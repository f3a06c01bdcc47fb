"""Settings: flags over environment over defaults; the shipped service files are valid settings."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from devkit.paths import REPO
from edgeml.audio import AudioConfig
from edgeml.cloudml import ClientConfig
from edgeml.edgeml import ModelConfig
from edgeml.recorder import RecorderConfig
from edgeml.settings import OPTIONS, Settings, parse_args
from edgeml.sources import SourceConfig
from edgeml.spotter import DetectorConfig
from edgeml.vad import EndpointConfig

SYSTEMD = REPO / "edgeml" / "systemd"


def test_flag_beats_environment_beats_default():
    assert parse_args([], env={}).spotter.threshold is None  # the model's own, else 0.85
    assert parse_args([], env={"EDGEML_THRESHOLD": "0.7"}).spotter.threshold == 0.7
    s = parse_args(["--threshold", "0.6"], env={"EDGEML_THRESHOLD": "0.7"})
    assert s.spotter.threshold == 0.6
    s = parse_args([], env={"EDGEML_ONCE": "yes", "SCORING_URI": "https://x.example/score"})
    assert s.once is True and s.client.endpoint == "https://x.example/score"


def test_defaults_are_the_components_own():
    """Settings repeats no default: each group is the component's config with its defaults."""
    s = parse_args([], env={})
    assert s.spotter == DetectorConfig() and s.recorder == RecorderConfig()
    assert s.model == ModelConfig() and s.audio == AudioConfig() and s.source == SourceConfig()
    assert s.client == ClientConfig()
    s = parse_args(["--silence-seconds", "0.7", "--pre-roll", "0.1"], env={})
    assert s.recorder == RecorderConfig(EndpointConfig(silence_seconds=0.7), pre_roll_seconds=0.1)


def test_settings_are_frozen_and_never_show_the_key(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("file-key-123\n")
    s = parse_args(["--key-file", str(key_file)], env={"SCORING_KEY": "env-key"})
    assert s.client.key == "file-key-123"  # the flag's file wins over the environment
    assert "file-key-123" not in repr(s)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.spotter.threshold = 0.1  # type: ignore[misc]
    assert parse_args([], env={"SCORING_KEY": "env-key"}).client.key == "env-key"
    assert parse_args([], env={}).client.key is None  # no default key in code


def _leaves(cls, prefix: str = "") -> set[str]:
    """Dotted paths of every leaf field of a (nested) settings dataclass."""
    out = set()
    for f in dataclasses.fields(cls):
        kind = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if kind is not None and dataclasses.is_dataclass(kind):
            out |= _leaves(kind, f"{prefix}{f.name}.")
        else:
            out.add(prefix + f.name)
    return out


# Settings a component has but the command line does not offer (tuning, not configuration).
NOT_ON_THE_COMMAND_LINE = {
    "model.start_timeout", "audio.ring_seconds", "audio.stall_seconds", "audio.keep_seconds",
    "spotter.max_lag_seconds", "recorder.endpoint.margin_db",
    "recorder.endpoint.min_speech_dbfs", "recorder.endpoint.min_voiced_frames",
    "spotter.track_seconds", "spotter.peak_tolerance", "spotter.probe_seconds",
    "recorder.endpoint.speech_probability", "recorder.endpoint.pause_probability",
    "recorder.endpoint.min_utterance_seconds", "recorder.endpoint.trail_seconds",
    "recorder.endpoint.resume_frames", "recorder.endpoint.hold_probability",
    "recorder.endpoint.resume_probability",
    "recorder.neural.model_path", "recorder.neural.threads", "recorder.keyword_search_seconds",
    "recorder.keyword_pause_seconds", "speculation.wait_seconds", "speculation.keep",
    "recorder.turn.audio.model_path", "recorder.turn.audio.threads",
    "recorder.turn.audio.deadline_seconds", "recorder.turn.complete_probability",
    "recorder.turn.incomplete_probability", "recorder.turn.alone_probability",
}  # fmt: skip


def test_every_setting_has_a_flag_and_every_flag_a_setting():
    fields = _leaves(Settings) - {"client.key"} - NOT_ON_THE_COMMAND_LINE
    dests = {opt.dest for opt in OPTIONS} - {"key_file"}
    assert fields == dests


def _env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def test_service_files_use_only_known_variables_and_parse(tmp_path):
    known = {opt.env for opt in OPTIONS if opt.env} | {"SCORING_KEY", "PYTHONUNBUFFERED"}
    env = _env_file(SYSTEMD / "edgeml.env.example")
    unit = (SYSTEMD / "edgeml.service").read_text()
    unit_env = dict(
        line.removeprefix("Environment=").split("=", 1)
        for line in unit.splitlines()
        if line.startswith("Environment=")
    )
    assert set(env) <= known and set(unit_env) <= known
    assert "ExecStart=/opt/edgeml/.venv/bin/edgeml" in unit
    key = tmp_path / "scoring.key"
    key.write_text("k")
    s = parse_args([], env={**env, **unit_env, "SCORING_KEY_FILE": str(key)})
    assert s.source.device == "USB" and s.audio.highpass_hz == 80
    assert s.spool.dir == Path("/var/lib/edgeml/spool")


def test_vad_and_speculation_flags_and_a_silence_shorter_than_the_kept_trail(capsys):
    s = parse_args(["--vad", "energy", "--speculate", "0"], env={})
    assert s.recorder.vad == "energy" and s.speculation.enabled is False
    s = parse_args([], env={"EDGEML_VAD": "silero", "EDGEML_SPECULATE": "1"})
    assert s.recorder.vad == "silero" and s.speculation.enabled is True
    for bad in (["--vad", "loud"], ["--speculate", "maybe"], ["--silence-seconds", "0.2"]):
        with pytest.raises(SystemExit) as exc:
            parse_args(bad, env={})
        assert exc.value.code == 2
    assert "must be at least 0.3 s" in capsys.readouterr().err


def test_turn_hint_flags_and_a_long_pause_that_does_not_fit(capsys):
    s = parse_args(["--long-pause-seconds", "1.2", "--turn-hints", "0"], env={})
    assert s.recorder.turn.long_pause_seconds == 1.2 and s.recorder.turn.enabled is False
    s = parse_args([], env={"EDGEML_LONG_PAUSE_SECONDS": "2", "EDGEML_TURN_HINTS": "1"})
    assert s.recorder.turn.long_pause_seconds == 2.0 and s.recorder.turn.enabled is True
    bad = {
        ("--silence-seconds", "1.0", "--long-pause-seconds", "0.8"): "must be at least",
        ("--max-seconds", "1.5", "--long-pause-seconds", "1.5"): "must be longer than",
        ("--turn-hints", "maybe"): "--turn-hints",
    }
    for args, said in bad.items():
        with pytest.raises(SystemExit) as exc:
            parse_args(list(args), env={})
        assert exc.value.code == 2 and said in capsys.readouterr().err
    parse_args(
        ["--silence-seconds", "1.0", "--long-pause-seconds", "0.8", "--turn-hints", "0"], env={}
    )


def _refused(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        parse_args(args, env={})
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_an_input_that_is_not_a_regular_file_is_named_for_what_it_is(tmp_path, capsys):
    """Row 14: a folder, a FIFO and /dev/null were all "input file not found" (and a FIFO
    would block the reader): exit 2 with what the path is."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert f"--input: input {tmp_path} is a folder, not a WAV file" in _refused(
        ["--input", str(tmp_path)], capsys
    )
    assert "is a named pipe (FIFO), not a WAV file" in _refused(["--input", str(fifo)], capsys)
    assert "/dev/null is a character device" in _refused(["--input", "/dev/null"], capsys)
    assert "input file not found" in _refused(["--input", str(tmp_path / "no.wav")], capsys)


def test_a_jsonl_that_cannot_take_records_is_refused_at_start(tmp_path, capsys):
    """Row 13: --jsonl a folder, /dev/full or under a regular file printed the transcript and
    ended a minute later as "no answer from the endpoint" (exit 5). Now: exit 2 at start."""
    plain = tmp_path / "plain.txt"
    plain.write_text("mine")
    assert f"--jsonl {tmp_path} is a folder" in _refused(["--jsonl", str(tmp_path)], capsys)
    assert "is not a regular file" in _refused(["--jsonl", "/dev/full"], capsys)
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)  # nobody reads it: opening it for writing used to hang the start
    assert "is not a regular file" in _refused(["--jsonl", str(fifo)], capsys)
    assert f"{plain} is a file, not a folder" in _refused(
        ["--jsonl", str(plain / "out.jsonl")], capsys
    )
    good = tmp_path / "new" / "out.jsonl"
    assert parse_args(["--jsonl", str(good)], env={}).output.jsonl == good
    assert plain.read_text() == "mine"


def test_log_messages_carry_no_raw_control_characters():
    """Row 8, for every logger: a message with outside text (an error body, a file name) shows
    ESC, BEL, CR and newline as escapes; a traceback after it stays as it is."""
    import logging

    from edgeml.settings import SafeFormatter

    record = logging.LogRecord("edgeml", logging.ERROR, __file__, 1, "endpoint said %s", (
        "x\x1b[2J\x07\r\nINFO forged",), None)  # fmt: skip
    line = SafeFormatter("%(levelname)s %(message)s").format(record)
    assert line == "ERROR endpoint said x\\x1b[2J\\x07\\x0d\\x0aINFO forged"


def test_continuation_flags_and_a_negative_level_guard(capsys):
    """Continuations are on by default at 0.8 s with the 1 dB level guard (bench/continuation.py:
    the setting its rule chose on the development half); both flags and their variables work."""
    s = parse_args([], env={})
    assert s.recorder.continue_seconds == 0.8 and s.recorder.continue_level_db == 1.0
    s = parse_args(["--continue-seconds", "0"], env={"EDGEML_CONTINUE_LEVEL_DB": "6"})
    assert s.recorder.continue_seconds == 0 and s.recorder.continue_level_db == 6.0
    assert "--continue-level-db" in _refused(["--continue-level-db", "-3"], capsys)
