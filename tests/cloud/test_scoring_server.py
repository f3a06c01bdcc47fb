"""The real azmlinfsrv serving score_audio.py with the tiny CTC model: contract, errors, swagger."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import requests

from devkit.scoring_client import (
    ReferenceDecoder,
    decoded_wav,
    flac_bytes,
    json_floats_body,
    json_int16_body,
    noise_signal,
    post,
    to_int16,
    wav_bytes,
)

pytestmark = pytest.mark.slow

CONTRACT_FIELDS = {"result", "audio_seconds", "inference_ms", "model", "engine"}


@pytest.fixture(scope="module")
def reference(tiny_ctc_model_dir) -> ReferenceDecoder:
    return ReferenceDecoder(tiny_ctc_model_dir)


def test_health_and_swagger_describe_request_and_answer(scoring_server):
    assert requests.get(scoring_server.base_url + "/", timeout=10).text == "Healthy"
    v2 = requests.get(scoring_server.base_url + "/swagger.json", timeout=10).json()
    v3 = requests.get(scoring_server.base_url + "/swagger.json?version=3", timeout=10).json()
    for schemas in (v2["definitions"], v3["components"]["schemas"]):
        request_schema, answer_schema = schemas["ServiceInput"], schemas["ServiceOutput"]
        assert request_schema["required"] == ["data"]
        assert request_schema["properties"]["data"]["type"] == "array"
        assert request_schema["properties"]["data"]["items"] == {"type": "number"}
        assert request_schema["properties"]["sample_rate"]["type"] == "integer"
        assert "audio/wav" in request_schema["description"]
        assert set(answer_schema["required"]) == CONTRACT_FIELDS
        # "prefix" only when the X-Transcript-Prefix words were decoded after (scoring/prefix.py)
        assert set(answer_schema["properties"]) == CONTRACT_FIELDS | {"prefix"}
        assert answer_schema["properties"]["engine"]["enum"] == ["ctc", "whisper"]
    assert "/score" in v2["paths"] and v3["openapi"].startswith("3.")


AUDIO_TYPES = {"audio/wav", "audio/x-wav", "audio/wave", "audio/flac", "application/octet-stream"}


@pytest.mark.parametrize("version", ["3", "3.1"])
def test_swagger_3_describes_every_body_and_the_errors(scoring_server, version):
    """Issue 23 row 16: only application/json was described."""
    url = f"{scoring_server.base_url}/swagger.json?version={version}"
    spec = requests.get(url, timeout=10).json()
    post = spec["paths"]["/score"]["post"]
    content = post["requestBody"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/ServiceInput"}
    assert set(content) >= AUDIO_TYPES
    for media in AUDIO_TYPES:
        assert content[media]["schema"]["format"] == "binary"
    assert "16-bit little-endian mono PCM at 16 kHz" in str(content["application/octet-stream"])
    assert {"400", "413", "415", "503"} <= set(post["responses"])
    error = spec["components"]["schemas"]["ScoringError"]
    assert error["required"] == ["error", "message"]


def test_swagger_2_lists_every_body_type(scoring_server):
    spec = requests.get(scoring_server.base_url + "/swagger.json", timeout=10).json()
    post = spec["paths"]["/score"]["post"]
    assert {"application/json"} | AUDIO_TYPES <= set(post["consumes"])
    assert "audio/flac" in post["parameters"][0]["description"]
    assert post["responses"]["415"]["schema"] == {"$ref": "#/definitions/ScoringError"}


def _bodies(seconds: float = 3.0):
    """(name, content type, body, the 16 kHz float32 audio the service must transcribe)."""
    pcm = to_int16(noise_signal(seconds, seed=21))
    as_float = (pcm / 32768.0).astype(np.float32)
    stereo = noise_signal(seconds, rate=44100, seed=22, channels=2)
    stereo_wav = wav_bytes(stereo, rate=44100)
    return [
        ("json floats", "application/json", json_floats_body(as_float), as_float),
        ("json int16", "application/json", json_int16_body(pcm), as_float),
        ("wav 16k", "audio/wav", wav_bytes(pcm), as_float),
        ("wav 44.1k stereo", "audio/wav", stereo_wav, decoded_wav(stereo_wav)),
        ("raw pcm", "application/octet-stream", pcm.astype("<i2").tobytes(), as_float),
        ("flac", "audio/flac", flac_bytes(pcm), as_float),
    ]


@pytest.mark.parametrize("case", _bodies(), ids=lambda c: c[0])
def test_served_transcript_equals_reference_decode(scoring_server, reference, case):
    _name, content_type, body, audio = case
    expected = reference(audio)
    assert len(expected) > 5  # the tiny model's decode is a real string: equality can fail
    response = post(scoring_server.score_url, body, content_type)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == CONTRACT_FIELDS
    assert answer["result"] == expected
    assert answer["audio_seconds"] == pytest.approx(len(audio) / 16000, abs=1e-3)
    assert answer["engine"] == "ctc" and answer["inference_ms"] > 0


def test_seed_json_request_and_wav_of_the_same_audio_agree(scoring_server):
    audio = noise_signal(2.0, seed=5)
    pcm = to_int16(audio)
    seed_style = json.dumps({"data": (pcm / 32768.0).tolist()}).encode()
    from_json = post(scoring_server.score_url, seed_style, "application/json").json()
    from_wav = post(scoring_server.score_url, wav_bytes(pcm), "audio/wav").json()
    assert from_json["result"] == from_wav["result"] and from_json["result"]


def test_long_audio_runs_in_windows_through_the_server(scoring_server, reference):
    pcm = to_int16(noise_signal(50.0, seed=6))
    response = post(scoring_server.score_url, wav_bytes(pcm), "audio/wav")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["audio_seconds"] == 50.0 and len(answer["result"]) > 50


def test_chunked_transfer_encoding_body(scoring_server):
    body = wav_bytes(to_int16(noise_signal(1.0, seed=7)))
    pieces = (body[i : i + 4096] for i in range(0, len(body), 4096))
    response = requests.post(
        scoring_server.score_url, data=pieces, headers={"Content-Type": "audio/wav"}, timeout=60
    )
    assert response.status_code == 200, response.text
    assert response.json()["audio_seconds"] == 1.0


# ------------------------------------------------------------------------------ bad input table
def _wav(seconds=1.0, rate=16000, subtype="PCM_16") -> bytes:
    return wav_bytes(noise_signal(seconds, rate=rate), rate=rate, subtype=subtype)


def _wav_with_rate(rate: int) -> bytes:
    body = bytearray(_wav())
    struct.pack_into("<I", body, 24, rate)
    return bytes(body)


def _json(payload) -> bytes:
    return json.dumps(payload).encode()


J = "application/json"
BAD_INPUTS = [
    ("no body", J, b"", 400, "empty_body"),
    ("no body, no type", None, b"", 400, "empty_body"),
    ("no content type", None, _wav(), 415, "missing_content_type"),
    ("text/plain", "text/plain", b"0.1, 0.2", 415, "unsupported_content_type"),
    ("form", "application/x-www-form-urlencoded", b"data=1", 415, "unsupported_content_type"),
    ("mp3 type", "audio/mpeg", b"ID3\x03\x00" + b"\x00" * 100, 415, "unsupported_content_type"),
    ("broken json", J, b'{"data": [0.1, 0.2', 400, "invalid_json"),
    ("not utf-8", J, b'{"data": "\xff\xfe"}', 400, "invalid_json"),
    ("json array", J, b"[0.1, 0.2]", 400, "invalid_json"),
    ("json string", J, b'"hello"', 400, "invalid_json"),
    ("no data field", J, _json({"samples": [0.1]}), 400, "missing_data"),
    ("data null", J, _json({"data": None}), 400, "data_not_a_list"),
    ("data string", J, _json({"data": "0.1 0.2"}), 400, "data_not_a_list"),
    ("data object", J, _json({"data": {"0": 0.1}}), 400, "data_not_a_list"),
    ("empty data", J, _json({"data": []}), 400, "empty_data"),
    ("nested lists", J, _json({"data": [[0.1] * 800, [0.2] * 800]}), 400, "data_not_flat"),
    ("list of objects", J, _json({"data": [{"v": 0.1}] * 2000}), 400, "data_not_flat"),
    ("strings in data", J, _json({"data": ["0.1"] * 2000}), 400, "data_not_numeric"),
    ("nulls in data", J, _json({"data": [0.1, None] * 1000}), 400, "data_not_numeric"),
    ("booleans in data", J, _json({"data": [True, False] * 1000}), 400, "data_not_numeric"),
    ("NaN", J, b'{"data": [0.1, NaN' + b", 0.1" * 2000 + b"]}", 400, "non_finite_samples"),
    ("Infinity", J, b'{"data": [Infinity' + b", 0.1" * 2000 + b"]}", 400, "non_finite_samples"),
    ("-Infinity", J, b'{"data": [-Infinity' + b", 0" * 2000 + b"]}", 400, "non_finite_samples"),
    (
        "overflowing float",
        J,
        b'{"data": [1e999' + b", 0.1" * 2000 + b"]}",
        400,
        "non_finite_samples",
    ),
    ("floats above 1", J, _json({"data": [0.5, 1.5] * 1000}), 400, "samples_out_of_range"),
    ("ints beyond int16", J, _json({"data": [40000, -3] * 1000}), 400, "samples_out_of_range"),
    (
        "sample_rate 0",
        J,
        _json({"data": [0.1] * 2000, "sample_rate": 0}),
        400,
        "invalid_sample_rate",
    ),
    (
        "sample_rate 1e9",
        J,
        _json({"data": [0.1] * 2000, "sample_rate": 10**9}),
        400,
        "invalid_sample_rate",
    ),
    (
        "sample_rate text",
        J,
        _json({"data": [0.1] * 2000, "sample_rate": "16k"}),
        400,
        "invalid_sample_rate",
    ),
    ("too short", J, _json({"data": [0.1] * 10}), 400, "audio_too_short"),
    ("json over limit", J, b'{"data": [0' + b",0" * (121 * 16000) + b"]}", 413, "audio_too_long"),
    ("garbage as wav", "audio/wav", b"hello, this is not audio" * 10, 400, "not_wav"),
    ("wav cut in header", "audio/wav", _wav()[:30], 400, "undecodable_audio"),
    ("wav header only", "audio/wav", _wav()[:44], 400, "truncated_audio"),
    ("wav cut in data", "audio/wav", _wav()[:20000], 400, "truncated_audio"),
    ("wav mu-law", "audio/wav", _wav(subtype="ULAW"), 415, "unsupported_wav_encoding"),
    ("wav ima adpcm", "audio/wave", _wav(subtype="IMA_ADPCM"), 415, "unsupported_wav_encoding"),
    ("wav rate 2 MHz", "audio/wav", _wav_with_rate(2_000_000), 400, "invalid_sample_rate"),
    ("wav rate 1 Hz", "audio/wav", _wav_with_rate(1), 400, "invalid_sample_rate"),
    ("wav over limit", "audio/wav", _wav(121, 8000, "PCM_U8"), 413, "audio_too_long"),
    ("flac as wav", "audio/wav", flac_bytes(noise_signal(1.0)), 400, "not_wav"),
    ("wav as flac", "audio/flac", _wav(), 400, "not_flac"),
    ("flac cut", "audio/flac", flac_bytes(noise_signal(1.0))[:3000], 400, "undecodable_audio"),
    ("flac garbage", "audio/flac", b"fLaC" + b"\x13" * 300, 400, "undecodable_audio"),
    ("raw odd bytes", "application/octet-stream", b"\x01" * 32001, 400, "truncated_audio"),
    (
        "raw over limit",
        "application/octet-stream",
        b"\x00" * (2 * 16000 * 121),
        413,
        "audio_too_long",
    ),
]


def test_bad_input_table_has_enough_cases():
    assert len(BAD_INPUTS) >= 25


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_gets_a_json_4xx_naming_the_problem(
    scoring_server, content_type, body, status, code
):
    response = post(scoring_server.score_url, body, content_type)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    answer = response.json()
    assert answer["error"] == code
    assert len(answer["message"]) > 15 and "Traceback" not in answer["message"]


def test_get_is_a_json_405(scoring_server):
    response = requests.get(scoring_server.score_url, timeout=10)
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_methods_score_does_not_route_get_the_json_405(scoring_server, method):
    """These never reach run(): azmlinfsrv answered {"message": ...} without the error code."""
    response = requests.request(method, scoring_server.score_url, data=b"x", timeout=10)
    assert response.status_code == 405
    assert response.headers["Content-Type"].startswith("application/json")
    answer = response.json()
    assert answer["error"] == "method_not_allowed"
    assert answer["message"].startswith(f"{method} is not supported on /score: use ")
    assert "POST" in response.headers["Allow"]


def test_an_unknown_path_gets_the_json_404(scoring_server):
    response = requests.get(scoring_server.base_url + "/nowhere", timeout=10)
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "message": "there is no /nowhere: POST the audio to /score",
    }


def test_server_keeps_serving_after_bad_input(scoring_server):
    """Runs after the table (file order): the same worker still answers, no stack trace logged."""
    for _name, content_type, body, _status, _code in BAD_INPUTS[:10]:
        post(scoring_server.score_url, body, content_type)
    response = post(scoring_server.score_url, _wav(), "audio/wav")
    assert response.status_code == 200 and response.json()["result"]
    assert requests.get(scoring_server.base_url + "/", timeout=10).status_code == 200
    log = scoring_server.log()
    assert "Traceback" not in log and " 500 " not in log
    assert "Rejected request: 415 missing_content_type" in log
