"""The command line, parsed once into frozen settings. Every flag falls back to an environment
variable (a systemd unit or a container sets those), then to a default.

The endpoint key is the one exception: there is no flag for it, since command lines show up in
`ps` and shell history. It comes from SCORING_KEY or from a file (--key-file / SCORING_KEY_FILE).
"""

from __future__ import annotations

import argparse
import logging
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = HERE / "models" / "listen.eim"
DEFAULT_ENDPOINT = "http://127.0.0.1:5001/score"


def default_spool_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "edgeml" / "spool"


@dataclass(frozen=True)
class Settings:
    model: Path = DEFAULT_MODEL
    endpoint: str = DEFAULT_ENDPOINT
    key: str | None = field(default=None, repr=False)  # never shown
    keyword: str = "listen"
    threshold: float | None = None  # None: the model's calibrated threshold, else 0.85
    average_windows: int = 1
    refractory_seconds: float = 1.0
    device: str | None = None
    list_devices: bool = False
    input: Path | None = None
    input_speed: str = "realtime"
    once: bool = False
    body_format: str = "wav"
    spool_dir: Path = field(default_factory=default_spool_dir)
    spool_max_mb: float = 100.0
    silence_seconds: float = 1.0
    max_seconds: float = 15.0
    no_speech_seconds: float = 4.0
    pre_roll_seconds: float = 0.25
    highpass_hz: float = 0.0
    jsonl: Path | None = None
    save_dir: Path | None = None
    log_level: str = "INFO"
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    retries: int = 3
    model_timeout: float = 5.0


@dataclass(frozen=True)
class _Opt:
    """One option: flag, env var, type, help. The default comes from Settings."""

    flag: str
    env: str | None
    dest: str
    kind: Callable | None
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None


def _positive(kind: Callable) -> Callable:
    def convert(text: str):
        value = kind(text)
        if value <= 0:
            raise ValueError("must be > 0")
        return value

    convert.__name__ = f"positive {kind.__name__}"
    return convert


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _unit(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise ValueError("must be in (0, 1]")
    return value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be 1/0, true/false, yes/no")


def _level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return level


OPTIONS = [
    _Opt("--model", "EDGEML_MODEL", "model", Path, "keyword model (.eim)", "PATH"),
    _Opt("--endpoint", "SCORING_URI", "endpoint", str, "scoring URL (POST)", "URL"),
    _Opt("--key-file", "SCORING_KEY_FILE", "key_file", Path,
         "file holding the endpoint key (or put the key itself in SCORING_KEY)", "PATH"),
    _Opt("--keyword", "EDGEML_KEYWORD", "keyword", str, "the model label that triggers recording", "LABEL"),
    _Opt("--threshold", "EDGEML_THRESHOLD", "threshold", _unit,
         "keyword score that triggers (default: the threshold the model states, else 0.85)", "X"),
    _Opt("--average", "EDGEML_AVERAGE", "average_windows", _positive(int),
         "average the keyword score over the last K windows", "K"),
    _Opt("--refractory", "EDGEML_REFRACTORY", "refractory_seconds", _non_negative,
         "seconds after a detection in which the keyword is ignored", "S"),
    _Opt("--device", "EDGEML_DEVICE", "device", str,
         "input device: index or part of its name (see --list-devices)", "DEV"),
    _Opt("--list-devices", None, "list_devices", None, "list the audio input devices and exit"),
    _Opt("--input", "EDGEML_INPUT", "input", Path,
         "replay a WAV file instead of the microphone (tests, demos)", "WAV"),
    _Opt("--input-speed", "EDGEML_INPUT_SPEED", "input_speed", str,
         "replay --input in real time or as fast as possible", None, ("realtime", "fast")),
    _Opt("--once", "EDGEML_ONCE", "once", None,
         "one keyword-record-transcribe cycle, then exit (0: transcript printed)"),
    _Opt("--format", "EDGEML_FORMAT", "body_format", str,
         "request body: wav, or json ({\"data\": [int16...]}, the original's)", None, ("wav", "json")),
    _Opt("--spool-dir", "EDGEML_SPOOL_DIR", "spool_dir", Path,
         "recordings waiting for the endpoint are kept here", "DIR"),
    _Opt("--spool-max-mb", "EDGEML_SPOOL_MAX_MB", "spool_max_mb", _positive(float),
         "size cap of the spool", "MB"),
    _Opt("--silence-seconds", "EDGEML_SILENCE_SECONDS", "silence_seconds", _positive(float),
         "quiet after speech that ends a recording", "S"),
    _Opt("--max-seconds", "EDGEML_MAX_SECONDS", "max_seconds", _positive(float),
         "longest recording", "S"),
    _Opt("--no-speech-seconds", "EDGEML_NO_SPEECH_SECONDS", "no_speech_seconds", _positive(float),
         "give up when nothing is said this long after the keyword", "S"),
    _Opt("--pre-roll", "EDGEML_PRE_ROLL", "pre_roll_seconds", _non_negative,
         "audio before the keyword detection point to include in the recording", "S"),
    _Opt("--highpass", "EDGEML_HIGHPASS_HZ", "highpass_hz", _non_negative,
         "high-pass filter cut-off against mains hum, e.g. 80 (0: off)", "HZ"),
    _Opt("--jsonl", "EDGEML_JSONL", "jsonl", Path, "append one JSON record per transcript", "PATH"),
    _Opt("--save-dir", "EDGEML_SAVE_DIR", "save_dir", Path, "keep a copy of every recording here", "DIR"),
    _Opt("--log-level", "EDGEML_LOG_LEVEL", "log_level", _level, "DEBUG, INFO, WARNING, ERROR", "LEVEL"),
    _Opt("--timeout", "EDGEML_TIMEOUT", "read_timeout", _positive(float),
         "seconds to wait for the endpoint's answer", "S"),
    _Opt("--connect-timeout", "EDGEML_CONNECT_TIMEOUT", "connect_timeout", _positive(float),
         "seconds to wait for a connection", "S"),
    _Opt("--retries", "EDGEML_RETRIES", "retries", int,
         "quick retries of one request (connection errors, 429, 5xx) before it waits in the spool",
         "N"),
    _Opt("--model-timeout", "EDGEML_MODEL_TIMEOUT", "model_timeout", _positive(float),
         "seconds a keyword model call may take before the model is restarted", "S"),
]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="Listen for a keyword with an Edge Impulse model, record what is said next, "
        "send it to the scoring endpoint and print the transcript.",
        epilog="Every option falls back to the environment variable shown, then to the default.\n"
        "The endpoint key comes from SCORING_KEY or --key-file / SCORING_KEY_FILE only.\n\n"
        "stdout: one line per transcript. --once exit codes: 0 transcript printed, 1 error,\n"
        "2 usage, 3 keyword but no speech, 4 no keyword in --input, 5 endpoint unavailable\n"
        "(recording kept in the spool), 6 endpoint rejected the recording or the key.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for opt in OPTIONS:
        env = f"env {opt.env}" if opt.env else ""
        if opt.kind is None:  # a switch
            parser.add_argument(
                opt.flag, dest=opt.dest, action="store_true", default=None,
                help=f"{opt.help} ({env})" if env else opt.help,
            )  # fmt: skip
            continue
        default = getattr(defaults, opt.dest, None)
        shown = f", default {default}" if default not in (None, "") else ""
        parser.add_argument(
            opt.flag, dest=opt.dest, default=None, metavar=opt.metavar, choices=opt.choices,
            type=_flag_type(opt), help=f"{opt.help} ({env}{shown})",
        )  # fmt: skip
    return parser


def _flag_type(opt: _Opt) -> Callable:
    def convert(text: str):
        try:
            return opt.kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None

    return convert


def parse_args(argv: list[str] | None = None, env: dict | None = None) -> Settings:
    """Flags, else environment, else defaults. Exits with status 2 and a message on bad input."""
    env = os.environ if env is None else env
    parser = build_parser()
    args = parser.parse_args(argv)
    values: dict = {}
    for opt in OPTIONS:
        given = getattr(args, opt.dest)
        if given is not None:
            values[opt.dest] = given
            continue
        if opt.env and env.get(opt.env, "") != "":
            raw = env[opt.env]
            try:
                kind = _bool if opt.kind is None else opt.kind
                value = kind(raw)
            except ValueError as exc:
                parser.error(f"environment variable {opt.env}={raw!r}: {exc}")
            if opt.choices and value not in opt.choices:
                parser.error(f"environment variable {opt.env}={raw!r}: choose from {opt.choices}")
            values[opt.dest] = value
    key_file = values.pop("key_file", None)
    values["key"] = _read_key(parser, key_file, env)
    settings = Settings(**values)
    _check(parser, settings)
    return settings


def _read_key(parser: argparse.ArgumentParser, key_file: Path | None, env) -> str | None:
    if key_file is not None:
        try:
            mode = key_file.stat().st_mode
            key = key_file.read_text().strip()
        except OSError as exc:
            parser.error(f"cannot read key file {key_file}: {exc.strerror}")
        if mode & stat.S_IROTH:
            logging.getLogger("edgeml").warning(
                "key file %s is readable by every user (chmod o-r it)", key_file
            )
        if not key:
            parser.error(f"key file {key_file} is empty")
        return key
    return env.get("SCORING_KEY") or None


def _check(parser: argparse.ArgumentParser, s: Settings) -> None:
    if s.max_seconds <= s.silence_seconds:
        parser.error(
            f"--max-seconds ({s.max_seconds}) must be longer than --silence-seconds "
            f"({s.silence_seconds})"
        )
    if s.pre_roll_seconds > 1.5:
        parser.error(f"--pre-roll ({s.pre_roll_seconds}) must be at most 1.5 s")
    if s.retries < 0:
        parser.error("--retries must be >= 0")
    if not s.endpoint.startswith(("http://", "https://")):
        parser.error(f"--endpoint / SCORING_URI must be an http(s) URL, got {s.endpoint!r}")


def setup_logging(level: str) -> None:
    """Logs go to stderr; stdout carries only transcripts (one per line)."""
    logging.basicConfig(
        level=getattr(logging, level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
