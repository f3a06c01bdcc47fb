"""CloudML against a real HTTP server on localhost with faults injected."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest

from devkit.fault_server import FaultServer, answer_text, json_error
from devkit.local_service import free_port
from devkit.speech import audio_id
from edgeml.cloudml import (
    AudioRejected,
    AuthRejected,
    CloudML,
    EndpointMisconfigured,
    EndpointUnavailable,
)


def _audio(first: int = 7, seconds: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(abs(first))
    samples = np.round(rng.standard_normal(int(seconds * 16000)) * 1000).astype(np.int16)
    samples[0] = first
    return samples


def _client(url: str, **kw) -> CloudML:
    kw.setdefault("backoff_factor", 0.05)
    return CloudML(url, **kw)


def test_wav_body_round_trip_and_contract_fields(fault_server: FaultServer):
    audio = _audio(42)
    result = _client(fault_server.url).transcribe(audio)
    assert result.text == f"REC 42 {audio_id(audio)}"  # the server decoded exactly our samples
    assert result.audio_seconds == 1.0 and result.engine == "ctc" and result.round_trip_ms > 0
    (req,) = fault_server.requests
    assert req.content_type == "audio/wav" and req.authorization is None


def test_json_body_is_the_originals_int16_list(fault_server: FaultServer):
    audio = _audio(-5)
    result = _client(fault_server.url, body_format="json").transcribe(audio)
    assert result.text == f"REC -5 {audio_id(audio)}"
    assert fault_server.requests[0].content_type == "application/json"


def test_refused_connection_is_endpoint_unavailable():
    url = f"http://127.0.0.1:{free_port()}/score"
    t0 = time.monotonic()
    with pytest.raises(EndpointUnavailable, match="Connection refused") as err:
        _client(url, retries=2).transcribe(_audio())
    assert err.value.retryable and time.monotonic() - t0 < 5


def test_500s_are_retried_with_backoff(fault_server: FaultServer):
    fault_server.faults.extend([500, 502])
    result = _client(fault_server.url, retries=3).transcribe(_audio(3))
    assert result.text.startswith("REC 3")
    assert [r.status for r in fault_server.requests] == [500, 502, 200]


def test_persistent_500_gives_up_after_the_retries(fault_server: FaultServer):
    fault_server.faults.extend([500] * 10)
    with pytest.raises(EndpointUnavailable, match="500") as err:
        _client(fault_server.url, retries=2).transcribe(_audio())
    assert err.value.status == 500 and len(fault_server.requests) == 3


def test_503_retry_after_is_honoured(fault_server: FaultServer):
    fault_server.faults.append((503, {"Retry-After": "1"}))
    t0 = time.monotonic()
    result = _client(fault_server.url, retries=2).transcribe(_audio(9))
    assert result.text.startswith("REC 9")
    first, second = fault_server.requests
    assert second.at - first.at >= 0.95 and time.monotonic() - t0 < 5


def test_slow_answer_past_the_read_timeout(fault_server: FaultServer):
    fault_server.faults.append(("slow", 2.0))
    t0 = time.monotonic()
    with pytest.raises(EndpointUnavailable, match="did not answer within 1 s"):
        _client(fault_server.url, read_timeout=1.0, retries=3).transcribe(_audio())
    assert time.monotonic() - t0 < 1.9
    time.sleep(1.2)
    assert len(fault_server.requests) == 1  # a busy endpoint is not hammered with retries


@pytest.mark.parametrize(
    "status, error, match",
    [
        (401, AuthRejected, "refused the key \\(401"),
        (403, AuthRejected, "403"),
        (400, AudioRejected, "rejected the recording \\(400: e400: injected 400"),
        (413, AudioRejected, "413"),
        (415, AudioRejected, "415"),
    ],
)
def test_client_errors_are_not_retried(fault_server: FaultServer, status, error, match):
    fault_server.faults.append((status, {"Retry-After": "1"}))  # even with Retry-After
    with pytest.raises(error, match=match) as err:
        _client(fault_server.url, retries=3).transcribe(_audio())
    assert not err.value.retryable and err.value.status == status
    assert len(fault_server.requests) == 1


def test_key_is_sent_but_never_shown(fault_server: FaultServer, caplog):
    secret = "s3cr3t-key-value"
    caplog.set_level(logging.DEBUG)
    client = _client(fault_server.url, key=secret)
    client.transcribe(_audio())
    fault_server.faults.append(401)
    with pytest.raises(AuthRejected) as err:
        client.transcribe(_audio())
    assert fault_server.requests[0].authorization == f"Bearer {secret}"
    assert secret not in repr(client) and secret not in str(err.value)
    assert secret not in caplog.text


def test_original_scripts_double_encoded_answer_is_understood():
    """The original entry script returned json.dumps({...}) as a str: JSON inside JSON."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Original(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps(json.dumps({"result": "HELLO WORLD"})).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = HTTPServer(("127.0.0.1", 0), Original)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_port}/score"
        assert _client(url, body_format="json").transcribe(_audio()).text == "HELLO WORLD"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="http"):
        CloudML("ftp://example.com/score")
    with pytest.raises(ValueError, match="format"):
        CloudML("http://127.0.0.1:1/score", body_format="mp3")


def test_tls_verification_is_on():
    assert CloudML("https://example.invalid/score").session.verify is True


@pytest.mark.parametrize(
    "result", [[{"text": "HI"}], ["HI"], {"text": "HI"}, 7, None, True], ids=repr
)
def test_a_200_whose_result_is_not_a_string_is_misconfigured(fault_server: FaultServer, result):
    """Issue 23 row 9: `[{"text": "HI"}]` was printed as the transcript `{'text': 'HI'}` and the
    recording removed. Only a string is a transcript; the rest is a wrong endpoint (kept)."""
    fault_server.faults.append(answer_text(result))
    with pytest.raises(EndpointMisconfigured, match="without a transcript.*not a string") as err:
        _client(fault_server.url).transcribe(_audio())
    assert err.value.status == 200 and not err.value.retryable


def test_a_recording_that_keeps_the_keyword_names_it_in_the_prefix_header(fault_server):
    audio = _audio(11)
    _client(fault_server.url).transcribe(audio, prefix="Smart mirror,")
    _client(fault_server.url).transcribe(audio)
    assert [r.prefix for r in fault_server.requests] == ["Smart mirror,", None]


def test_a_refused_prefix_is_dropped_and_the_recording_still_transcribed(fault_server):
    """The prefix is a hint: a 400 invalid_prefix is asked again without it, never shelved."""
    audio = _audio(12)
    fault_server.faults.append(json_error(400, "invalid_prefix", "the header holds no word"))
    result = _client(fault_server.url).transcribe(audio, prefix="Alexa,")
    assert result.text == f"REC 12 {audio_id(audio)}" and result.prefix is None
    assert [r.prefix for r in fault_server.requests] == ["Alexa,", None]


def test_other_400s_with_a_prefix_are_still_rejections(fault_server):
    fault_server.faults.append(json_error(400, "undecodable_audio"))
    with pytest.raises(AudioRejected):
        _client(fault_server.url).transcribe(_audio(13), prefix="Alexa,")
    assert len(fault_server.requests) == 1
