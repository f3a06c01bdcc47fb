"""The Whisper engine: a CTranslate2 Whisper model run by faster-whisper (int8 on CPU by default).

faster-whisper walks long audio in Whisper's own 30 s windows, so memory is bounded the same way
as the CTC engine's. Decoding options (beam, temperature fallback, conditioning on the previous
window's text) were chosen on real speech (docs/benchmarks.md, bench/served_wer.py); audio goes
through faster-whisper's Silero VAD first (WHISPER_VAD), so noise without speech is not read as
words and the pauses of long audio are cut out before the 30 s windows are laid. On the CPU the
encoder, which is most of the time for short audio, runs through OpenVINO (WHISPER_ENCODER;
scoring.whisper_encoder), the decoder stays CTranslate2's. The text is upper-cased so both
engines answer in the contract's style ("TRANSCRIPT IN UPPER CASE"); Whisper's punctuation is
kept.
"""

from __future__ import annotations

import logging

import ctranslate2
import numpy as np

from scoring.cpufeatures import cpu_features
from scoring.models import ENGINE_WHISPER, ModelSource
from scoring.precision import choose_whisper_encoder
from scoring.settings import TARGET_RATE, ServiceSettings

logger = logging.getLogger("scoring.whisper")
SAMPLING_SEED = 0


class WhisperEngine:
    """Loads once, then `transcribe(samples)` for 16 kHz mono float32 audio."""

    engine = ENGINE_WHISPER
    takes_prefix = True  # decodes after the words the audio is known to begin with (prefix.py)

    def __init__(self, source: ModelSource, settings: ServiceSettings) -> None:
        if settings.quantize != "none":
            logger.info(
                "QUANTIZE=%s applies to CTC models; Whisper uses WHISPER_COMPUTE_TYPE=%s",
                settings.quantize,
                settings.whisper_compute_type,
            )
        self.device = _ct2_device(settings.device)
        self.compute_type = settings.whisper_compute_type
        self.encoder, self.encoder_reason = choose_whisper_encoder(
            settings.engine.whisper_encoder, self.device, cpu_features()
        )
        try:
            self.model = whisper_model(source.location, settings, self.device, self.encoder)
        except (OSError, ValueError, RuntimeError) as exc:  # ModelFileError, OpenVINO's errors
            if settings.engine.whisper_encoder != "auto":
                raise
            logger.warning("OpenVINO encoder unavailable (%s); CTranslate2 runs it", exc)
            self.encoder, self.encoder_reason = "ctranslate2", f"auto, OpenVINO failed: {exc}"
            self.model = whisper_model(source.location, settings, self.device, self.encoder)
        self.options = decoding_options(settings)
        self.settings = settings

    def describe(self) -> str:
        encoder = {"ctranslate2": "CTranslate2", "openvino-fp32": "OpenVINO fp32",
                   "openvino-bf16": "OpenVINO bf16"}[self.encoder]  # fmt: skip
        return (
            f"faster-whisper {self.compute_type} on {self.device}, encoder {encoder} "
            f"({self.encoder_reason})"
        )

    def transcribe(self, samples: np.ndarray, prefix: str | None = None) -> str:
        """The text, upper-cased. `prefix`: words the audio begins with (the keyword); the
        first window's transcript is forced to start with them, and the text returned does
        too (scoring.prefix takes them off)."""
        # The temperature fallback samples; a fixed seed makes the same audio give the same
        # text every time (a retried request, or faster-whisper run directly with the seed).
        ctranslate2.set_random_seed(SAMPLING_SEED)
        options = request_options(self.options, self.settings, len(samples))
        if prefix:
            options["prefix"] = prefix
        segments, _info = self.model.transcribe(samples, **options)
        return " ".join(segment.text.strip() for segment in segments).strip().upper()

    def warm_up(self) -> None:
        """One greedy pass on 1 s of quiet noise (no temperature fallback: warm-up stays short),
        and one through the VAD when it is used (its model loads on first use; on noise it finds
        no speech, so that pass would not warm Whisper itself)."""
        noise = np.random.default_rng(0).normal(0, 0.01, TARGET_RATE).astype(np.float32)
        for vad in (False, True) if self.settings.engine.whisper_vad != "off" else (False,):
            segments, _ = self.model.transcribe(noise, beam_size=1, temperature=0.0, vad_filter=vad)
            list(segments)  # the generator does the work


def whisper_model(location: str, settings: ServiceSettings, device: str, encoder: str):
    """faster-whisper's WhisperModel, its encode() handed to OpenVINO when `encoder` says so."""
    from faster_whisper import WhisperModel

    options = dict(
        device=device,
        compute_type=settings.whisper_compute_type,
        cpu_threads=settings.threads,
        num_workers=1,
    )
    if encoder == "ctranslate2":
        return WhisperModel(location, **options)
    from pathlib import Path

    from scoring.whisper_encoder import OpenVinoWhisperEncoder, cached_encoder_ir

    folder, _built = cached_encoder_ir(Path(location), settings.cache_dir)
    precision = encoder.removeprefix("openvino-")
    ov_encoder = OpenVinoWhisperEncoder(folder, precision, settings.threads, settings.cache_dir)

    class OpenVinoEncodedWhisper(WhisperModel):
        """CTranslate2's decoder takes an encoded window ([1, 1500, d_model]) as it takes mel
        features; faster-whisper calls encode() for every window and language detection."""

        def encode(self, features: np.ndarray) -> ctranslate2.StorageView:
            return ctranslate2.StorageView.from_array(ov_encoder(features))

    return OpenVinoEncodedWhisper(location, **options)


def decoding_options(settings: ServiceSettings) -> dict:
    """faster-whisper's transcribe() options from the settings, those that do not depend on the
    audio's length (request_options adds those; bench/served_wer.py and the tests use both to
    run the model directly, so served and direct stay comparable)."""
    engine = settings.engine
    temperatures = engine.whisper_temperatures
    return {
        "beam_size": settings.whisper_beam_size,
        "language": settings.whisper_language,
        "condition_on_previous_text": engine.whisper_condition_on_previous_text,
        "temperature": temperatures[0] if len(temperatures) == 1 else list(temperatures),
        "vad_parameters": {"speech_pad_ms": engine.whisper_vad_pad_ms},  # used when VAD is on
    }


def request_options(options: dict, settings: ServiceSettings, n_samples: int) -> dict:
    """`options` (decoding_options) plus what depends on this audio's length: the VAD and the
    timestamp tokens."""
    return {
        **options,
        "vad_filter": uses_vad(settings, n_samples),
        "without_timestamps": not uses_timestamps(settings, n_samples),
    }


WINDOW_SECONDS = 30  # Whisper reads audio in windows of this length


def uses_timestamps(settings: ServiceSettings, n_samples: int) -> bool:
    """WHISPER_TIMESTAMPS: always (`on`), never (`off`), or (`long`, the default) only for audio
    longer than one window, where the timestamps place the next window."""
    mode = settings.engine.whisper_timestamps
    return mode == "on" or (mode == "long" and n_samples > WINDOW_SECONDS * TARGET_RATE)


def uses_vad(settings: ServiceSettings, n_samples: int) -> bool:
    """WHISPER_VAD: always (`on`, the default), never, or (`long`) above the threshold."""
    engine = settings.engine
    long = n_samples > engine.whisper_vad_min_seconds * TARGET_RATE
    return engine.whisper_vad == "on" or (engine.whisper_vad == "long" and long)


def _ct2_device(requested: str) -> str:
    cuda = ctranslate2.get_cuda_device_count() > 0
    if requested == "cuda" and not cuda:
        raise ValueError("DEVICE=cuda but CTranslate2 sees no CUDA device")
    return "cuda" if requested in ("auto", "cuda") and cuda else "cpu"
