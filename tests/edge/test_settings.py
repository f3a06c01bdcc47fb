"""Settings: flags over environment over defaults; the shipped service files are valid settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from support.paths import REPO

from settings import OPTIONS, Settings, parse_args

SYSTEMD = REPO / "edgeml" / "systemd"


def test_flag_beats_environment_beats_default():
    assert parse_args([], env={}).threshold is None  # the model's own, else 0.85
    assert parse_args([], env={"EDGEML_THRESHOLD": "0.7"}).threshold == 0.7
    assert parse_args(["--threshold", "0.6"], env={"EDGEML_THRESHOLD": "0.7"}).threshold == 0.6
    s = parse_args([], env={"EDGEML_ONCE": "yes", "SCORING_URI": "https://x.example/score"})
    assert s.once is True and s.endpoint == "https://x.example/score"


def test_settings_are_frozen_and_never_show_the_key(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("file-key-123\n")
    s = parse_args(["--key-file", str(key_file)], env={"SCORING_KEY": "env-key"})
    assert s.key == "file-key-123"  # the flag's file wins over the environment
    assert "file-key-123" not in repr(s)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.threshold = 0.1  # type: ignore[misc]
    assert parse_args([], env={"SCORING_KEY": "env-key"}).key == "env-key"
    assert parse_args([], env={}).key is None  # no default key in code


def test_every_setting_has_a_flag_and_every_flag_a_setting():
    fields = {f.name for f in dataclasses.fields(Settings)} - {"key"}
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
    assert "ExecStart=/opt/edgeml/.venv/bin/python /opt/edgeml/edgeml/main.py" in unit
    key = tmp_path / "scoring.key"
    key.write_text("k")
    s = parse_args([], env={**env, **unit_env, "SCORING_KEY_FILE": str(key)})
    assert (
        s.device == "USB" and s.highpass_hz == 80 and s.spool_dir == Path("/var/lib/edgeml/spool")
    )
