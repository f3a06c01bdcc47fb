"""Service settings, read once from the environment into a frozen dataclass.

azmlinfsrv gives the entry script no command line: Azure ML deployments and `make serve` configure
it through environment variables only, so every knob is an environment variable with a default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL = "facebook/wav2vec2-base-960h"
TARGET_RATE = 16000
# Sample rates outside this range are not audio a person speaks into: reject instead of resampling.
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 384000
# The shortest clip worth transcribing; wav2vec2's first convolution alone needs 400 samples.
MIN_AUDIO_SECONDS = 0.1
QUANTIZE_MODES = ("none", "int8", "int8-torch", "int8-onnx")


def _cpu_count() -> int:
    """Cores this process may run on (cgroup/affinity aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _default_cache_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voice-to-text" / "scoring"


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"{name}={raw!r} must be greater than 0")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise ValueError(f"{name}={raw!r} must be 1 or more")
    return value


@dataclass(frozen=True)
class ServiceSettings:
    """Everything init() needs to know; see docs/scoring.md."""

    model_name_or_path: str = DEFAULT_MODEL
    azureml_model_dir: Path | None = None
    threads: int = field(default_factory=_cpu_count)
    device: str = "auto"
    max_audio_seconds: float = 120.0
    # CTC engine: audio longer than chunk_seconds runs in windows of this length that overlap
    # by stride_seconds on each side, so memory is bounded by one window whatever the length.
    chunk_seconds: float = 20.0
    stride_seconds: float = 2.5
    quantize: str = "none"
    cache_dir: Path = field(default_factory=lambda: _default_cache_dir(os.environ))
    whisper_compute_type: str = "int8"
    whisper_beam_size: int = 5
    whisper_language: str | None = None
    warm_up: bool = True
    engine: EngineSettings = field(default_factory=lambda: EngineSettings())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServiceSettings:
        """Read the settings; a malformed value raises ValueError naming the variable."""
        env = os.environ if env is None else env
        model_dir = env.get("AZUREML_MODEL_DIR", "").strip()
        quantize = (env.get("QUANTIZE", "").strip().lower() or "none").replace("fp32", "none")
        if quantize not in QUANTIZE_MODES:
            raise ValueError(f"QUANTIZE={quantize!r}: use one of {', '.join(QUANTIZE_MODES)}")
        threads_var = "SCORING_THREADS" if env.get("SCORING_THREADS") else "OMP_NUM_THREADS"
        settings = cls(
            model_name_or_path=env.get("MODEL_NAME_OR_PATH", "").strip() or DEFAULT_MODEL,
            azureml_model_dir=Path(model_dir) if model_dir else None,
            threads=_positive_int(env, threads_var, _cpu_count()),
            device=(env.get("DEVICE", "").strip().lower() or "auto"),
            max_audio_seconds=_positive_float(env, "MAX_AUDIO_SECONDS", 120.0),
            chunk_seconds=_positive_float(env, "CHUNK_SECONDS", 20.0),
            stride_seconds=_positive_float(env, "STRIDE_SECONDS", 2.5),
            quantize=quantize,
            cache_dir=Path(env["SCORING_CACHE_DIR"])
            if env.get("SCORING_CACHE_DIR")
            else _default_cache_dir(env),
            whisper_compute_type=env.get("WHISPER_COMPUTE_TYPE", "").strip() or "int8",
            whisper_beam_size=_positive_int(env, "WHISPER_BEAM_SIZE", 5),
            whisper_language=env.get("WHISPER_LANGUAGE", "").strip() or None,
            warm_up=env.get("WARM_UP", "1").strip().lower() not in ("0", "false", "no"),
            engine=EngineSettings.from_env(env, quantize),
        )
        if settings.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"DEVICE={settings.device!r}: use auto, cpu or cuda")
        if settings.stride_seconds * 2 >= settings.chunk_seconds:
            raise ValueError(
                f"STRIDE_SECONDS={settings.stride_seconds} must be less than half of "
                f"CHUNK_SECONDS={settings.chunk_seconds}"
            )
        return settings

    @property
    def max_samples(self) -> int:
        """The most 16 kHz samples a request may carry."""
        return int(self.max_audio_seconds * TARGET_RATE)

    @property
    def max_body_bytes(self) -> int:
        """Reject bodies above this before reading them: a JSON float list of the longest audio at
        48 kHz (about 24 bytes a sample) still fits; a WAV/raw body is checked more tightly by its
        duration once its header is read."""
        return max(16 << 20, int(self.max_audio_seconds * 48000 * 24))


# ------------------------------------------------------------------------------------------------
# Engine speed and decoding (issue 13): how the CTC model runs (precision, runtime) and how
# Whisper decodes. A group of its own: request handling above does not depend on it.

PRECISIONS = ("auto", "fp32", "bf16", "int8")
CTC_RUNTIMES = ("auto", "torch", "openvino", "onnxruntime")
WHISPER_VAD_MODES = ("off", "long", "on")
WHISPER_TIMESTAMP_MODES = ("off", "long", "on")
WHISPER_ENCODERS = ("auto", "ctranslate2", "openvino-fp32", "openvino-bf16")
# faster-whisper's own fallback schedule: greedy first, sampling hotter only when a window's
# output looks wrong (compression ratio or log probability past their thresholds).
WHISPER_FALLBACK = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r}: use 1/0 (true/false)")


def _timestamps(env: Mapping[str, str]) -> str:
    """WHISPER_TIMESTAMPS, or the older WHISPER_WITHOUT_TIMESTAMPS flag (1 = off, 0 = on)."""
    raw = env.get("WHISPER_TIMESTAMPS", "").strip().lower()
    if not raw and env.get("WHISPER_WITHOUT_TIMESTAMPS", "").strip():
        return "off" if _flag(env, "WHISPER_WITHOUT_TIMESTAMPS", False) else "on"
    raw = raw or "on"
    if raw not in WHISPER_TIMESTAMP_MODES:
        modes = ", ".join(WHISPER_TIMESTAMP_MODES)
        raise ValueError(f"WHISPER_TIMESTAMPS={raw!r}: use one of {modes}")
    return raw


def _temperatures(env: Mapping[str, str]) -> tuple[float, ...]:
    raw = env.get("WHISPER_TEMPERATURES", "").strip()
    if not raw:
        return WHISPER_FALLBACK
    try:
        values = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise ValueError(
            f"WHISPER_TEMPERATURES={raw!r}: a comma-separated list such as 0 or 0,0.2,0.4"
        ) from None
    if not all(0.0 <= t <= 1.5 for t in values) or list(values) != sorted(values):
        raise ValueError(f"WHISPER_TEMPERATURES={raw!r}: rising values between 0 and 1.5")
    return values


def _precision(env: Mapping[str, str], quantize: str) -> str:
    """PRECISION, or what the older QUANTIZE says (QUANTIZE=int8* means PRECISION=int8)."""
    raw = env.get("PRECISION", "").strip().lower()
    precision = {"none": "fp32", "float32": "fp32", "bfloat16": "bf16"}.get(raw, raw)
    if precision and precision not in PRECISIONS:
        raise ValueError(f"PRECISION={raw!r}: use one of {', '.join(PRECISIONS)}")
    if quantize != "none":
        if precision not in ("", "int8"):
            raise ValueError(f"QUANTIZE={quantize} contradicts PRECISION={raw}: set only one")
        return "int8"
    return precision or "fp32"


@dataclass(frozen=True)
class EngineSettings:
    """How the engines compute; see docs/scoring.md "Engine precision and runtimes".

    precision: fp32 (default: exactly the reference decode), bf16, int8, or auto (bf16 on a CPU
    with native bf16, fp32 elsewhere; scoring.precision decides). ctc_runtime: auto picks the
    runtime measured fastest for the precision (bench/scoring_bench.py), or torch / openvino /
    onnxruntime. Whisper: decoding options chosen on real speech (bench/served_wer.py --grid);
    whisper_vad: faster-whisper's Silero VAD keeps only the speech before Whisper reads it
    (`on`; `long`: only above whisper_vad_min_seconds; `off`): in room noise without speech,
    Whisper alone makes up sentences ("THANK YOU FOR WATCHING"), and a long recording's pauses
    are where its 30 s windows go wrong. It cost nothing on the utt/ sentences.
    """

    precision: str = "fp32"
    ctc_runtime: str = "auto"
    whisper_condition_on_previous_text: bool = False
    whisper_temperatures: tuple[float, ...] = WHISPER_FALLBACK
    # Timestamp tokens on every window (`on`), only where the audio needs more than one 30 s
    # window (`long`: faster-whisper lays the next window at the last timestamp), or never.
    # Without them a one-window request took 14-40 % less time at the same WER, but crowd
    # babble alone came back as "THANK YOU." (2 of 18 noise beds: faster-whisper's no-speech
    # rule needs the lower log probability the timestamp tokens bring); bench/served_wer.py.
    whisper_timestamps: str = "on"
    whisper_vad: str = "on"
    whisper_vad_min_seconds: float = 30.0
    # Speech kept on each side of what the VAD finds: faster-whisper's 400 ms dropped a word
    # where sentences were joined in the long recording (5.1-5.8 % WER); 800 ms gave 3.6-4.4 %.
    whisper_vad_pad_ms: int = 800
    # Who runs Whisper's encoder (most of its time on short audio): auto = OpenVINO on the CPU
    # (bf16 where the CPU has it, fp32 elsewhere), CTranslate2 on CUDA; scoring.precision.
    whisper_encoder: str = "auto"

    @classmethod
    def from_env(cls, env: Mapping[str, str], quantize: str = "none") -> EngineSettings:
        runtime = env.get("CTC_RUNTIME", "").strip().lower() or "auto"
        if runtime not in CTC_RUNTIMES:
            raise ValueError(f"CTC_RUNTIME={runtime!r}: use one of {', '.join(CTC_RUNTIMES)}")
        vad = env.get("WHISPER_VAD", "").strip().lower() or "on"
        if vad not in WHISPER_VAD_MODES:
            raise ValueError(f"WHISPER_VAD={vad!r}: use one of {', '.join(WHISPER_VAD_MODES)}")
        encoder = env.get("WHISPER_ENCODER", "").strip().lower() or "auto"
        if encoder not in WHISPER_ENCODERS:
            raise ValueError(
                f"WHISPER_ENCODER={encoder!r}: use one of {', '.join(WHISPER_ENCODERS)}"
            )
        return cls(
            precision=_precision(env, quantize),
            ctc_runtime=runtime,
            whisper_condition_on_previous_text=_flag(env, "WHISPER_CONDITION_ON_PREVIOUS", False),
            whisper_temperatures=_temperatures(env),
            whisper_timestamps=_timestamps(env),
            whisper_vad=vad,
            whisper_vad_min_seconds=_positive_float(env, "WHISPER_VAD_MIN_SECONDS", 30.0),
            whisper_vad_pad_ms=_positive_int(env, "WHISPER_VAD_PAD_MS", 800),
            whisper_encoder=encoder,
        )
