"""The command line, parsed once into frozen settings. Every flag falls back to an environment
variable (a systemd unit or a container sets those), then to a default.

The defaults are not here: each component owns its config dataclass and its defaults
(edgeml.ModelConfig, sources.SourceConfig, audio.AudioConfig, spotter.DetectorConfig,
recorder.RecorderConfig, cloudml.ClientConfig, spool.SpoolConfig, output.OutputConfig), and
Settings groups them; a flag names the field it sets by its dotted path.

The endpoint key is the one exception: there is no flag for it, since command lines show up in
`ps` and shell history. It comes from SCORING_KEY or from a file (--key-file / SCORING_KEY_FILE).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgeml.audio import AudioConfig
from edgeml.cloudml import FORMATS, ClientConfig, escape_controls
from edgeml.edgeml import ModelConfig
from edgeml.keys import ALLOW_HTTP_ENV, KeyProblem, read_key
from edgeml.output import OutputConfig, jsonl_problem
from edgeml.recorder import VAD_KINDS, RecorderConfig
from edgeml.sources import INPUT_SPEEDS, SourceConfig, input_problem
from edgeml.speculative import SpeculationConfig
from edgeml.spool import SpoolConfig
from edgeml.spotter import DetectorConfig

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Settings:
    """Everything the app is told, grouped by the component it configures. Each group is that
    component's own config dataclass, with that component's defaults."""

    model: ModelConfig = field(default_factory=ModelConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    spotter: DetectorConfig = field(default_factory=DetectorConfig)
    recorder: RecorderConfig = field(default_factory=RecorderConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    speculation: SpeculationConfig = field(default_factory=SpeculationConfig)
    once: bool = False
    list_devices: bool = False
    log_level: str = "INFO"


def get_path(obj: object, path: str):
    """`get_path(settings, "recorder.endpoint.silence_seconds")`."""
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def with_path(obj, path: str, value):
    """A copy of the frozen dataclass `obj` with the field at the dotted `path` replaced."""
    head, _, rest = path.partition(".")
    if not rest:
        return dataclasses.replace(obj, **{head: value})
    return dataclasses.replace(obj, **{head: with_path(getattr(obj, head), rest, value)})


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
    if level not in LOG_LEVELS:
        raise ValueError("must be " + ", ".join(LOG_LEVELS))
    return level


OPTIONS = [
    _Opt("--model", "EDGEML_MODEL", "model.path", Path, "keyword model (.eim)", "PATH"),
    _Opt("--endpoint", "SCORING_URI", "client.endpoint", str, "scoring URL (POST)", "URL"),
    _Opt("--key-file", "SCORING_KEY_FILE", "key_file", Path,
         "file holding the endpoint key (or put the key itself in SCORING_KEY)", "PATH"),
    _Opt("--allow-http", ALLOW_HTTP_ENV, "client.allow_http", None,
         "send the key over plain http to another machine (a private network without TLS)"),
    _Opt("--keyword", "EDGEML_KEYWORD", "spotter.keyword", str,
         "the model label that triggers recording", "LABEL"),
    _Opt("--threshold", "EDGEML_THRESHOLD", "spotter.threshold", _unit,
         "keyword score that triggers (default: the threshold the model states, else 0.85)", "X"),
    _Opt("--average", "EDGEML_AVERAGE", "spotter.average_windows", _positive(int),
         "average the keyword score over the last K windows", "K"),
    _Opt("--refractory", "EDGEML_REFRACTORY", "spotter.refractory_seconds", _non_negative,
         "seconds after a detection in which the keyword is ignored", "S"),
    _Opt("--device", "EDGEML_DEVICE", "source.device", str,
         "input device: index or part of its name (see --list-devices)", "DEV"),
    _Opt("--list-devices", None, "list_devices", None, "list the audio input devices and exit"),
    _Opt("--input", "EDGEML_INPUT", "source.input", Path,
         "replay a WAV file instead of the microphone (tests, demos)", "WAV"),
    _Opt("--input-speed", "EDGEML_INPUT_SPEED", "source.input_speed", str,
         "replay --input in real time or as fast as possible", None, INPUT_SPEEDS),
    _Opt("--once", "EDGEML_ONCE", "once", None,
         "one keyword-record-transcribe cycle, then exit (0: transcript printed)"),
    _Opt("--format", "EDGEML_FORMAT", "client.body_format", str,
         "request body: wav, or json ({\"data\": [int16...]}, the write-up's)", None, FORMATS),
    _Opt("--spool-dir", "EDGEML_SPOOL_DIR", "spool.dir", Path,
         "recordings waiting for the endpoint are kept here", "DIR"),
    _Opt("--spool-max-mb", "EDGEML_SPOOL_MAX_MB", "spool.max_mb", _positive(float),
         "size cap of the spool", "MB"),
    _Opt("--silence-seconds", "EDGEML_SILENCE_SECONDS", "recorder.endpoint.silence_seconds",
         _positive(float), "quiet after speech that ends a recording", "S"),
    _Opt("--long-pause-seconds", "EDGEML_LONG_PAUSE_SECONDS", "recorder.turn.long_pause_seconds",
         _positive(float),
         "pause allowed when the words so far stop mid-phrase (the speculative answer's hint)",
         "S"),
    _Opt("--turn-hints", "EDGEML_TURN_HINTS", "recorder.turn.enabled", _bool,
         "let the speculative answer's words move the end of a recording (1/0; needs --speculate)",
         "1|0"),
    _Opt("--turn-model", "EDGEML_TURN_MODEL", "recorder.turn.audio.enabled", _bool,
         "let the audio turn model (Smart Turn) end a recording early when the words agree "
         "(1/0; needs --turn-hints; pays only with a service that answers within ~0.2 s)", "1|0"),
    _Opt("--early-pause-seconds", "EDGEML_EARLY_PAUSE_SECONDS",
         "recorder.turn.early_pause_seconds", _positive(float),
         "pause allowed when the words and the audio turn model both say the turn is over", "S"),
    _Opt("--continue-seconds", "EDGEML_CONTINUE_SECONDS", "recorder.continue_seconds",
         _non_negative,
         "speech within this long after a recording ended is recorded without the keyword, "
         "as its continuation (default 0.8; 0: off; not with --once)", "S"),
    _Opt("--continue-level-db", "EDGEML_CONTINUE_LEVEL_DB", "recorder.continue_level_db",
         _non_negative,
         "a continuation's speech may be at most this many dB quieter than the turn's own "
         "speech (a TV or another person further away is quieter; 0: no level check)", "DB"),
    _Opt("--max-seconds", "EDGEML_MAX_SECONDS", "recorder.endpoint.max_seconds", _positive(float),
         "longest recording", "S"),
    _Opt("--no-speech-seconds", "EDGEML_NO_SPEECH_SECONDS", "recorder.endpoint.no_speech_seconds",
         _positive(float), "give up when nothing is said this long after the keyword", "S"),
    _Opt("--pre-roll", "EDGEML_PRE_ROLL", "recorder.pre_roll_seconds", _non_negative,
         "audio before the keyword detection point to include in the recording", "S"),
    _Opt("--vad", "EDGEML_VAD", "recorder.vad", str,
         "what ends a recording: silero (neural VAD) or energy (level over the noise floor)",
         None, VAD_KINDS),
    _Opt("--speculate", "EDGEML_SPECULATE", "speculation.enabled", _bool,
         "send the recording at a short pause, use that answer if the pause was the end (1/0)",
         "1|0"),
    _Opt("--highpass", "EDGEML_HIGHPASS_HZ", "audio.highpass_hz", _non_negative,
         "high-pass filter cut-off against mains hum, e.g. 80 (0: off)", "HZ"),
    _Opt("--jsonl", "EDGEML_JSONL", "output.jsonl", Path,
         "append one JSON record per transcript", "PATH"),
    _Opt("--save-dir", "EDGEML_SAVE_DIR", "output.save_dir", Path,
         "keep a copy of every recording here", "DIR"),
    _Opt("--log-level", "EDGEML_LOG_LEVEL", "log_level", _level, ", ".join(LOG_LEVELS), "LEVEL"),
    _Opt("--timeout", "EDGEML_TIMEOUT", "client.read_timeout", _positive(float),
         "seconds to wait for the endpoint's answer", "S"),
    _Opt("--connect-timeout", "EDGEML_CONNECT_TIMEOUT", "client.connect_timeout", _positive(float),
         "seconds to wait for a connection", "S"),
    _Opt("--retries", "EDGEML_RETRIES", "client.retries", int,
         "quick retries of one request (connection errors, 429, 5xx) before it waits in the spool",
         "N"),
    _Opt("--model-timeout", "EDGEML_MODEL_TIMEOUT", "model.call_timeout", _positive(float),
         "seconds a keyword model call may take before the model is restarted", "S"),
    _Opt("--model-shm", "EDGEML_MODEL_SHM", "model.shared_memory", _bool,
         "pass windows through the model's shared memory when it offers it (1/0; 0: JSON)",
         "1|0"),
]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="edgeml",
        description="Listen for a keyword with an Edge Impulse model, record what is said next, "
        "send it to the scoring endpoint and print the transcript.",
        epilog="Every option falls back to the environment variable shown, then to the default.\n"
        "The endpoint key comes from SCORING_KEY or --key-file / SCORING_KEY_FILE only.\n\n"
        "stdout: one line per transcript. --once exit codes: 0 transcript printed, 1 error,\n"
        "2 usage, 3 keyword but no speech (or an empty transcript: nothing is printed),\n"
        "4 no keyword in --input, 5 endpoint unavailable\n"
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
        default = get_path(defaults, opt.dest) if opt.dest != "key_file" else None
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


def parse_args(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Flags, else environment, else defaults. Exits with status 2 and a message on bad input."""
    env = os.environ if env is None else env
    parser = build_parser()
    args = parser.parse_args(argv)
    settings, key_file = Settings(), None
    for opt in OPTIONS:
        value = _value(parser, opt, getattr(args, opt.dest), env)
        if value is None:
            continue
        if opt.dest == "key_file":
            key_file = value
        else:
            settings = with_path(settings, opt.dest, value)
    try:
        key = read_key(key_file, env)
    except KeyProblem as exc:
        parser.error(str(exc))
    settings = with_path(settings, "client.key", key)
    _check(parser, settings)
    return settings


def _value(parser: argparse.ArgumentParser, opt: _Opt, given, env: Mapping[str, str]):
    """The flag's value, else the environment variable's, else None (the default applies)."""
    if given is not None:
        return given
    if not opt.env or env.get(opt.env, "") == "":
        return None
    raw = env[opt.env]
    try:
        value = (_bool if opt.kind is None else opt.kind)(raw)
    except ValueError as exc:
        parser.error(f"environment variable {opt.env}={raw!r}: {exc}")
    if opt.choices and value not in opt.choices:
        parser.error(f"environment variable {opt.env}={raw!r}: choose from {opt.choices}")
    return value


def _check(parser: argparse.ArgumentParser, s: Settings) -> None:
    """Rules across settings, in the words of the flags."""
    ep = s.recorder.endpoint
    if ep.max_seconds <= ep.silence_seconds:
        parser.error(
            f"--max-seconds ({ep.max_seconds}) must be longer than --silence-seconds "
            f"({ep.silence_seconds})"
        )
    turn = s.recorder.turn
    if turn.enabled and turn.long_pause_seconds < ep.silence_seconds:
        parser.error(
            f"--long-pause-seconds ({turn.long_pause_seconds}) must be at least "
            f"--silence-seconds ({ep.silence_seconds})"
        )
    if turn.enabled and ep.max_seconds <= turn.long_pause_seconds:
        parser.error(
            f"--max-seconds ({ep.max_seconds}) must be longer than --long-pause-seconds "
            f"({turn.long_pause_seconds})"
        )
    if turn.enabled and turn.audio.enabled and turn.early_pause_seconds <= ep.trail_seconds:
        parser.error(
            f"--early-pause-seconds ({turn.early_pause_seconds}) must be longer than "
            f"{ep.trail_seconds} s (the audio turn model is asked after that much pause)"
        )
    if ep.silence_seconds < ep.trail_seconds:
        parser.error(
            f"--silence-seconds ({ep.silence_seconds}) must be at least {ep.trail_seconds} s "
            "(the quiet kept at the end of a recording)"
        )
    if s.recorder.pre_roll_seconds > 1.5:
        parser.error(f"--pre-roll ({s.recorder.pre_roll_seconds}) must be at most 1.5 s")
    if s.client.retries < 0:
        parser.error("--retries must be >= 0")
    if s.output.jsonl is not None and (problem := jsonl_problem(s.output.jsonl)):
        parser.error(problem)
    if s.source.input is not None and (problem := input_problem(s.source.input)):
        parser.error(f"--input: {problem}")
    if not s.client.endpoint.startswith(("http://", "https://")):
        parser.error(f"--endpoint / SCORING_URI must be an http(s) URL, got {s.client.endpoint!r}")


class SafeFormatter(logging.Formatter):
    """Escapes control characters in every log message: messages carry outside text (an
    endpoint's error body, a file name, a header) and stderr is often a terminal or a journal,
    where ESC/BEL would act and a newline would forge a log line of its own. Tracebacks are
    appended after this, as they are."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def setup_logging(level: str) -> None:
    """Logs go to stderr; stdout carries only transcripts (one per line)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level), handlers=[handler])
