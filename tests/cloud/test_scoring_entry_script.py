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


def test_body_over_the_limit_is_413(score_audio):
    service = score_audio._service
    limit = service.settings.max_body_bytes
    answer = service.handle("POST", "audio/wav", None, lambda n, _c: b"\0" * (n + 1))
    assert answer.status == 413 and answer.body["error"] == "body_too_large"
    answer = service.handle("POST", "audio/wav", limit + 1, lambda n, _c: b"")
    assert answer.status == 413 and answer.body["error"] == "body_too_large"
