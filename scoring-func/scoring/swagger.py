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

The template's /score operation names application/json alone; the audio bodies (WAV, FLAC, raw
PCM) were missing from it (issue 23 row 16). azmlinfsrv builds each version's document after
init() through its builders' `_update_definitions(spec, input, output)`, so init() wraps that
method (`describe_bodies` runs after it): every body type the service takes, with its schema
(binary for audio), and the contract's error answers.
"""

from __future__ import annotations

from collections.abc import Callable

from scoring.bodies import FLAC_TYPES, JSON_TYPES, RAW_TYPES, WAV_TYPES
from scoring.prefix import MAX_PREFIX_CHARS, PREFIX_HEADER
from scoring.settings import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, TARGET_RATE

AUDIO_BODIES = {
    **dict.fromkeys(sorted(WAV_TYPES), "A WAV file: any linear PCM or float WAV, any channel "
                    "count up to the limit and rate (downmixed and resampled to 16 kHz mono)."),
    **dict.fromkeys(sorted(FLAC_TYPES), "A FLAC file (downmixed and resampled likewise)."),
    **dict.fromkeys(sorted(RAW_TYPES), "Raw 16-bit little-endian mono PCM at 16 kHz, no header."),
}  # fmt: skip
PREFIX_DESCRIPTION = (
    f"Optional: the words the audio begins with (the keyword, e.g. 'Alexa,'; at most "
    f"{MAX_PREFIX_CHARS} characters of letters, digits, spaces and ' , . ! ? -). Whisper decodes "
    "after them and 'result' leaves them out; the answer's 'prefix' names them. Engines that "
    "cannot take one (CTC) ignore it and the answer has no 'prefix'."
)
ERRORS = {
    "400": "The body is not audio the service can read (the message says what is wrong).",
    "401": "SCORING_KEY is set and the request lacks the key.",
    "405": "Only POST transcribes.",
    "408": "The request's headers or body did not arrive in time.",
    "413": "The audio or the body is longer than the service takes.",
    "415": "The Content-Type is missing or not one of the types above.",
    "503": "The service is busy (see Retry-After) or not ready.",
}


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
            "prefix": {
                "type": "string",
                "description": f"Present when the {PREFIX_HEADER} words were decoded after and "
                "taken off the start of 'result'.",
            },
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
    install_body_descriptions()


def error_schema() -> dict:
    return {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "A short code, e.g. invalid_json."},
            "message": {"type": "string", "description": "What is wrong, for people."},
        },
        "example": {"error": "unsupported_media_type", "message": "Content-Type text/plain ..."},
    }


def describe_bodies(spec: dict) -> None:
    """Add the audio bodies and the error answers to one generated swagger (2 or 3.x)."""
    paths = [p for p in spec.get("paths", {}) if p.endswith("/score")]
    if not paths:
        return
    post = spec["paths"][paths[0]]["post"]
    v3 = "openapi" in spec
    ref = "#/components/schemas/ScoringError" if v3 else "#/definitions/ScoringError"
    schemas = spec["components"]["schemas"] if v3 else spec["definitions"]
    schemas["ScoringError"] = error_schema()
    if v3:
        content = post["requestBody"]["content"]
        for media, text in AUDIO_BODIES.items():
            content[media] = {"schema": {"type": "string", "format": "binary", "description": text}}
        post["requestBody"]["required"] = True
    else:
        post["consumes"] = sorted(JSON_TYPES) + list(AUDIO_BODIES)
        post["parameters"][0]["description"] = (
            "JSON samples (the schema), or the audio itself as the body: "
            + " ".join(f"{media}: {text}" for media, text in AUDIO_BODIES.items())
        )
    header = {"name": PREFIX_HEADER, "in": "header", "required": False}
    header.update(
        {"schema": {"type": "string"}, "description": PREFIX_DESCRIPTION}
        if v3
        else {"type": "string", "description": PREFIX_DESCRIPTION}
    )
    post.setdefault("parameters", []).append(header)
    for status, text in ERRORS.items():
        answer = {"description": text}
        if v3:
            answer["content"] = {"application/json": {"schema": {"$ref": ref}}}
        else:
            answer["schema"] = {"$ref": ref}
        post["responses"].setdefault(status, answer)


def install_body_descriptions() -> None:
    """Make azmlinfsrv's swagger builders run describe_bodies after their own definitions."""
    import sys

    # Only where azmlinfsrv has loaded it already: importing it loads azmlinfsrv's config, whose
    # logging set-up disables every logger that exists (ours, in a test calling init()).
    module = sys.modules.get("azureml_inference_server_http.server.swagger")
    if module is None or not hasattr(module, "Swagger"):
        return
    for builder in module.Swagger._builder_classes:
        original = builder.__dict__.get("_update_definitions")
        if original is None or getattr(original, "describes_bodies", False):
            continue

        def update(self, spec, input_schema, output_schema, _original=original) -> None:
            _original(self, spec, input_schema, output_schema)
            describe_bodies(spec)

        update.describes_bodies = True
        builder._update_definitions = update
