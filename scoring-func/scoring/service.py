"""One loaded model behind the HTTP contract: request in, (status, JSON body) out.

Kept free of Flask/azmlinfsrv so it can be driven directly by unit tests and benchmarks; the
entry script only adapts the request object and wraps the answer in an AMLResponse.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from scoring.admission import Admission, RequestSettings, check_key
from scoring.bodies import DecodedAudio, check_body_size, decode_body
from scoring.errors import RequestError
from scoring.models import ENGINE_CTC, ModelSource, resolve_model
from scoring.prefix import check_prefix, without_prefix
from scoring.settings import ServiceSettings

logger = logging.getLogger("scoring.service")


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict
    headers: dict[str, str] = field(default_factory=dict)


def load_engine(source: ModelSource, settings: ServiceSettings):
    """The engine object for a resolved model (imports only the library that engine needs)."""
    if source.engine == ENGINE_CTC:
        from scoring.ctc import CtcEngine

        return CtcEngine(source, settings)
    from scoring.whisper import WhisperEngine

    return WhisperEngine(source, settings)


class ScoringService:
    """Holds the engine; `handle()` answers one request, `transcribe()` one decoded clip."""

    def __init__(
        self,
        settings: ServiceSettings,
        source: ModelSource,
        engine,
        requests: RequestSettings | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.engine = engine
        self.requests = requests or RequestSettings()
        self.admission = Admission(self.requests, settings.max_body_bytes)

    @classmethod
    def load(
        cls, settings: ServiceSettings, requests: RequestSettings | None = None
    ) -> ScoringService:
        """Resolve, load and warm up the model, logging which, from where, engine and device."""
        started = time.perf_counter()
        source = resolve_model(settings.model_name_or_path, settings.azureml_model_dir)
        logger.info(
            "Loading model %s from %s (%s), engine %s, %d threads",
            source.name,
            source.location,
            source.origin,
            source.engine,
            settings.threads,
        )
        engine = load_engine(source, settings)
        loaded = time.perf_counter()
        if settings.warm_up:
            engine.warm_up()
        logger.info(
            "Model %s ready: engine %s, %s; loaded in %.1f s, warm-up %.1f s; audio up to %g s",
            source.name,
            source.engine,
            engine.describe(),
            loaded - started,
            time.perf_counter() - loaded,
            settings.max_audio_seconds,
        )
        if requests is not None and requests.key:
            logger.info("Requests must carry the key (SCORING_KEY is set)")
        return cls(settings, source, engine, requests)

    def handle(
        self,
        method: str,
        content_type: str | None,
        content_length: int | None,
        read_body: Callable[..., bytes],
        authorization: str | None = None,
        client_gone: Callable[[], bool] | None = None,
        prefix: str | None = None,
    ) -> Answer:
        """One HTTP request -> Answer; client mistakes become 4xx JSON, never an exception.

        `read_body(limit, charge)` returns the body, or its first limit + 1 bytes when it is
        longer, calling `charge(n)` for each n bytes read (the body budget; it raises 503); it
        raises RequestError (408, 400) when the body does not arrive or cannot be read.
        Order: cheap checks, then the body budget, the body, its decoding, then the model gate.
        `client_gone()` says whether the client has closed its connection (the gate drops it).
        `prefix`: the X-Transcript-Prefix header, the words the audio begins with (prefix.py).
        """
        try:
            if method != "POST":
                raise RequestError(
                    405,
                    "method_not_allowed",
                    f"{method} is not supported: POST the audio to /score "
                    "(GET /swagger.json describes the API)",
                )
            check_key(self.requests.key, authorization)
            check_body_size(content_length, self.settings)
            spoken = check_prefix(prefix)
            limit = self.settings.max_body_bytes
            with self.admission.body() as charge:
                if content_length is not None:
                    charge(content_length)  # all of it up front: refused before it is read
                    body = read_body(limit, lambda _n: None)
                else:
                    body = read_body(limit, charge)
                audio = decode_body(content_type, body, self.settings)
                del body
                with self.admission.model(audio.seconds, client_gone):
                    return Answer(200, self.transcribe(audio, spoken))
        except RequestError as err:
            logger.info("Rejected request: %d %s: %s", err.status, err.code, err.message)
            return Answer(err.status, err.as_json(), err.headers)

    def transcribe(self, audio: DecodedAudio, prefix: str | None = None) -> dict:
        """The answer for one decoded clip. With a `prefix` the engine can take (Whisper), the
        text is decoded after it and returned without it, and the answer names it; an engine
        that cannot (CTC) transcribes the audio as it is and the answer has no "prefix"."""
        started = time.perf_counter()
        applied = None
        if prefix and getattr(self.engine, "takes_prefix", False):
            text, found = without_prefix(self.engine.transcribe(audio.samples, prefix), prefix)
            applied = prefix if found else None
        else:
            text = self.engine.transcribe(audio.samples)
        inference_ms = (time.perf_counter() - started) * 1000
        logger.info(
            "Transcribed %.2f s of %s audio (%d Hz) in %.0f ms (RTF %.3f)",
            audio.seconds,
            audio.kind,
            audio.source_rate,
            inference_ms,
            inference_ms / 1000 / max(audio.seconds, 1e-9),
        )
        answer = {
            "result": text,
            "audio_seconds": round(audio.seconds, 3),
            "inference_ms": round(inference_ms, 1),
            "model": self.source.name,
            "engine": self.engine.engine,
        }
        if applied:
            answer["prefix"] = applied  # the words taken off the start of "result"
        return answer
