"""Azure ML entry script: speech to text behind POST /score.

Served by azmlinfsrv (azureml-inference-server-http), the server Azure ML runs in its containers:
    azmlinfsrv --entry_script scoring-func/score_audio.py --port 5001
init() loads the model once (AZUREML_MODEL_DIR, else MODEL_NAME_OR_PATH, default
facebook/wav2vec2-base-960h; a transformers CTC model or a CTranslate2 Whisper model).
run() takes the raw HTTP request (@rawhttp) so it decides the status codes itself:
JSON {"data": [...]} or the audio itself (audio/wav, audio/flac, raw PCM) in, and
200 {"result": "TRANSCRIPT", "audio_seconds", "inference_ms", "model", "engine"} or a JSON 4xx
{"error", "message"} out. Settings: see scoring/settings.py and docs/scoring.md.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

# OpenMP threads that spin while waiting stall badly when cores are shared (several workers,
# noisy neighbours): wav2vec2-base on 5 s took 2.9 s with spinning vs 1.3 s passive on a busy
# 2-core machine. Must be set before torch loads; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# azmlinfsrv loads this file by path; its helper package sits beside it.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp  # noqa: E402
from azureml_inference_server_http.api.aml_response import AMLResponse  # noqa: E402

from scoring import swagger  # noqa: E402
from scoring.admission import RequestSettings  # noqa: E402
from scoring.errors import RequestError, install_json_http_errors  # noqa: E402
from scoring.prefix import PREFIX_HEADER  # noqa: E402
from scoring.server import (  # noqa: E402
    RequestReadTimeout,
    client_gone_probe,
    current_worker,
    worker_report,
)
from scoring.service import ScoringService  # noqa: E402
from scoring.settings import ServiceSettings  # noqa: E402

logger = logging.getLogger("scoring")
_service: ScoringService | None = None


def _configure_logging() -> None:
    """Our INFO lines in the server log (stdout), formatted like azmlinfsrv's own lines.

    Own handler, no propagation: the root logger under azmlinfsrv may carry a bare default
    format, and Azure ML collects the container's stdout either way. Enabled again each time:
    azmlinfsrv's logging set-up (dictConfig) in the worker disables every logger that existed
    before it: `scoring` and `scoring.server` (made when gunicorn's master imported the worker
    class), whose lines ("Internal error while scoring", the worker's closed connections)
    were silently dropped.
    """
    for name, each in list(logging.root.manager.loggerDict.items()):
        if isinstance(each, logging.Logger) and (name == "scoring" or name.startswith("scoring.")):
            each.disabled = False
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s")
    )
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def init() -> None:
    """Load and warm up the model once per worker process."""
    global _service
    _configure_logging()
    logger.log(*worker_report(current_worker()))
    install_json_http_errors()
    settings = ServiceSettings.from_env()
    _service = ScoringService.load(settings, RequestSettings.from_env())
    swagger.register(run, settings.max_audio_seconds)


def _read_body(request: AMLRequest, limit: int, charge) -> bytearray:
    """The body, read at most `limit` + 1 bytes far (one byte over -> 413), whether or not it
    has a Content-Length (a chunked upload has none to check beforehand).

    Read into one bytearray, sized up front when the Content-Length is known: 1 MB parts
    joined at the end held the body twice for a moment (+259 MB for a 130 MB WAV); the
    decoders read the bytearray in place (scoring.bodies.BufferReader).
    Its arrival is bounded by the worker's deadline (scoring/server.py: 408); a body that cannot
    be read (malformed chunked framing, a client gone mid-upload) is the client's 400.
    """
    known = request.content_length
    body = bytearray(min(known, limit + 1)) if known is not None and known >= 0 else bytearray()
    size = 0
    try:
        stream = request.stream
        while size <= limit:
            part = stream.read(min(1 << 20, limit + 1 - size))
            if not part:
                break
            charge(len(part))
            body[size : size + len(part)] = part  # in place while it fits, else it grows
            size += len(part)
    except RequestError:
        raise
    except RequestReadTimeout as exc:
        raise RequestError(408, "request_timeout", str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - gunicorn's chunk errors, werkzeug's disconnects
        raise RequestError(
            400, "unreadable_body", f"the request body cannot be read: {type(exc).__name__}"
        ) from None
    del body[size:]  # a body shorter than its Content-Length: what arrived
    return body


@rawhttp
def run(request: AMLRequest) -> AMLResponse:
    """Answer one request to /score (POST; any other method gets a JSON 405)."""
    if _service is None:
        return AMLResponse(
            {"error": "not_ready", "message": "the model is not loaded (init() has not run)"},
            503,
            json_str=True,
        )
    try:
        answer = _service.handle(
            request.method,
            request.headers.get("Content-Type"),
            request.content_length,
            lambda limit, charge: _read_body(request, limit, charge),
            request.headers.get("Authorization"),
            client_gone_probe(request.environ.get("gunicorn.socket")),
            request.headers.get(PREFIX_HEADER),
        )
    except TimeoutError:
        raise  # azmlinfsrv's SCORING_TIMEOUT_MS alarm: let the server answer it
    except Exception:
        logger.exception("Internal error while scoring")
        return AMLResponse(
            {"error": "internal_error", "message": "the service failed; see the server log"},
            500,
            json_str=True,
        )
    return AMLResponse(answer.body, answer.status, answer.headers, json_str=True)
