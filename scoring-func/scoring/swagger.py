"""Make azmlinfsrv's GET /swagger.json describe the real request and answer of a @rawhttp run().

How azmlinfsrv builds swagger (azureml_inference_server_http/server/swagger.py, 1.4-1.5): after
init() returns, it fills its template's ServiceInput/ServiceOutput definitions from
inference-schema's registry entry for run(), or with an empty object when run() has none. A user
swagger file would only be read from AML_APP_ROOT (the working directory locally, the app root
on Azure, not this script's folder), and `@input_schema` cannot be combined with `@rawhttp`
(it also decodes the body itself and answers type errors with 500). So init() registers the
schemas for run() directly in inference-schema's registry: azmlinfsrv checks "@rawhttp and
@input_schema" when it loads the script, before init(), and reads the registry for the swagger
after init(). tests/cloud check the served swagger, so a change of that order shows up there.
"""

from __future__ import annotations

from collections.abc import Callable

from scoring.settings import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, TARGET_RATE


def input_schema(max_audio_seconds: float) -> dict:
    return {
        "type": "object",
        "description": (
            "Content-Type: application/json. 16 kHz mono audio as a list of samples. The same "
            "endpoint also takes the audio itself as the body, far smaller: audio/wav (any PCM "
            "WAV, downmixed and resampled), audio/flac, or application/octet-stream (raw 16-bit "
            f"little-endian mono PCM at 16 kHz). Audio up to {max_audio_seconds:g} s. Errors: "
            '4xx {"error": code, "message": text}: 400 bad body, 413 audio too long, '
            "415 unsupported or missing Content-Type."
        ),
        "required": ["data"],
        "properties": {
            "data": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "number"},
                "description": "Samples: floats in [-1, 1], or int16-range integers "
                "[-32768, 32767].",
            },
            "sample_rate": {
                "type": "integer",
                "minimum": MIN_SAMPLE_RATE,
                "maximum": MAX_SAMPLE_RATE,
                "default": TARGET_RATE,
                "description": "Sample rate of data in Hz; other rates than 16000 are resampled.",
            },
        },
        "example": {"data": [0.0, 0.0123, -0.0456, 0.0789], "sample_rate": TARGET_RATE},
    }


def output_schema() -> dict:
    return {
        "type": "object",
        "required": ["result", "audio_seconds", "inference_ms", "model", "engine"],
        "properties": {
            "result": {"type": "string", "description": "The transcript, in upper case."},
            "audio_seconds": {"type": "number", "description": "Duration of the audio."},
            "inference_ms": {"type": "number", "description": "Model time in milliseconds."},
            "model": {"type": "string", "description": "Name of the model that answered."},
            "engine": {"type": "string", "enum": ["ctc", "whisper"]},
        },
        "example": {
            "result": "HELLO WORLD",
            "audio_seconds": 3.21,
            "inference_ms": 152.4,
            "model": "facebook/wav2vec2-base-960h",
            "engine": "ctc",
        },
    }


def register(run: Callable, max_audio_seconds: float) -> None:
    """Register the schemas for `run` the way @input_schema/@output_schema would."""
    from inference_schema._constants import INPUT_SCHEMA_ATTR, OUTPUT_SCHEMA_ATTR
    from inference_schema.schema_util import __functions_schema__ as registry

    key = f"{run.__module__}.{run.__name__}"  # inference-schema's key for an undecorated function
    registry[key] = {
        INPUT_SCHEMA_ATTR: input_schema(max_audio_seconds),
        OUTPUT_SCHEMA_ATTR: output_schema(),
    }
