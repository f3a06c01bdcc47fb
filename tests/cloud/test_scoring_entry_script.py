"""score_audio.init()/run() called in-process with real Flask request objects (no server)."""

from __future__ import annotations

import json

import pytest
from flask import Request
from werkzeug.test import EnvironBuilder

from devkit.paths import SCORE_SCRIPT, load_script
from devkit.scoring_client import (
    ReferenceDecoder,
    json_floats_body,
    noise_signal,
    to_int16,
    wav_bytes,
)


def load_score_audio():
    """The entry script, loaded by path as azmlinfsrv loads it."""
    return load_script(SCORE_SCRIPT, "score_audio")


def make_request(body: bytes, content_type: str | None, method: str = "POST") -> Request:
    headers = {"Content-Type": content_type} if content_type else {}
    return Request(EnvironBuilder(method=method, data=body, headers=headers).get_environ())


@pytest.fixture(scope="module")
def score_audio(tiny_ctc_model_dir):
    module = load_score_audio()

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODEL_NAME_OR_PATH", str(tiny_ctc_model_dir))
        mp.delenv("AZUREML_MODEL_DIR", raising=False)
        mp.setenv("SCORING_THREADS", "1")
        module.init()
    yield module
    module._service = None


def answer(response) -> tuple[int, dict]:
    return response.status_code, json.loads(response.get_data())


def test_run_json_and_wav_equal_reference(score_audio, tiny_ctc_model_dir):
    pcm = to_int16(noise_signal(2.5, seed=11))
    audio = pcm / 32768.0
    expected = ReferenceDecoder(tiny_ctc_model_dir)(audio.astype("float32"))
    assert expected  # a non-empty decode: equality below can fail
    status_json, body_json = answer(
        score_audio.run(make_request(json_floats_body(audio), "application/json"))
    )
    status_wav, body_wav = answer(score_audio.run(make_request(wav_bytes(pcm), "audio/wav")))
    assert (status_json, status_wav) == (200, 200)
    assert body_json["result"] == body_wav["result"] == expected
    assert body_wav["engine"] == "ctc" and body_wav["audio_seconds"] == 2.5
    assert body_wav["inference_ms"] > 0 and body_wav["model"].endswith(tiny_ctc_model_dir.name)


def test_run_bad_input_is_a_json_4xx(score_audio):
    status, body = answer(score_audio.run(make_request(b'{"data": []}', "application/json")))
    assert status == 400 and body["error"] == "empty_data" and "empty" in body["message"]
    status, body = answer(score_audio.run(make_request(b"", None, method="GET")))
    assert status == 405 and body["error"] == "method_not_allowed"


def test_run_before_init_says_not_ready():
    module = load_score_audio()

    saved, module._service = module._service, None
    try:
        status, body = answer(module.run(make_request(b"{}", "application/json")))
    finally:
        module._service = saved
    assert status == 503 and body["error"] == "not_ready"


def test_chunked_body_is_read_no_further_than_the_limit():
    import io

    score_audio = load_score_audio()

    environ = EnvironBuilder(method="POST", headers={"Content-Type": "audio/wav"}).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ.update({"wsgi.input": io.BytesIO(b"\0" * 50_000), "wsgi.input_terminated": True})
    request = Request(environ)
    assert request.content_length is None
    assert len(score_audio._read_body(request, 1000, lambda n: None)) == 1001


class _Parts:
    """A request stream that hands the body out in 1 MB parts, as gunicorn's does."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = min(self.left, 1 << 20 if n < 0 else n)
        self.left -= n
        return b"\x80" * n


@pytest.mark.parametrize("with_length", [True, False])
def test_a_body_is_held_once_while_it_is_read(with_length):
    """The 1 MB parts were joined at the end: the body twice at once (+259 MB for a 130 MB
    WAV on the real server). Now one bytearray, sized from the Content-Length when known."""
    import tracemalloc

    score_audio = load_score_audio()
    size = 32 << 20
    environ = EnvironBuilder(method="POST", headers={"Content-Type": "audio/wav"}).get_environ()
    environ["CONTENT_LENGTH"] = str(size) if with_length else ""
    environ.update({"wsgi.input": _Parts(size), "wsgi.input_terminated": not with_length})
    request = Request(environ)
    tracemalloc.start()
    try:
        body = score_audio._read_body(request, 64 << 20, lambda n: None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(body) == size and body[:1] == b"\x80"
    assert peak < 1.3 * size, f"peak {peak / size:.2f}x the body"


def test_a_body_shorter_than_its_content_length_is_a_400():
    """The buffer is sized from the Content-Length: a body that stops short is not padded."""
    from scoring.errors import RequestError

    score_audio = load_score_audio()
    environ = EnvironBuilder(method="POST", headers={"Content-Type": "audio/wav"}).get_environ()
    environ["CONTENT_LENGTH"] = "5000"
    environ["wsgi.input"] = _Parts(1200)
    with pytest.raises(RequestError) as caught:
        score_audio._read_body(Request(environ), 10_000, lambda n: None)
    assert (caught.value.status, caught.value.code) == (400, "unreadable_body")


def test_body_over_the_limit_is_413(score_audio):
    service = score_audio._service
    limit = service.settings.max_body_bytes
    answer = service.handle("POST", "audio/wav", None, lambda n, _c: b"\0" * (n + 1))
    assert answer.status == 413 and answer.body["error"] == "body_too_large"
    answer = service.handle("POST", "audio/wav", limit + 1, lambda n, _c: b"")
    assert answer.status == 413 and answer.body["error"] == "body_too_large"


def test_init_enables_the_service_loggers_azmlinfsrv_disabled():
    """azmlinfsrv's dictConfig in the worker disables loggers that existed before it: the
    `scoring` logger's "Internal error while scoring" and the worker's own lines were lost."""
    import logging

    score_audio = load_score_audio()
    for name in ("scoring", "scoring.server", "scoring.service"):
        logging.getLogger(name).disabled = True
    score_audio._configure_logging()
    assert not any(logging.getLogger(n).disabled for n in ("scoring", "scoring.server"))
    assert not logging.getLogger("scoring.service").disabled
