"""The real azmlinfsrv serving score_audio.py under attack and bad luck.

- 50 idle or slow connections (idle, headers trickling, body trickling, a chunked body that never
  ends) must not stop other clients: health checks and a 5 s request are answered as usual, the
  slow ones are cut at their deadline with a 408, and the model is never reloaded;
- inputs that used to end in a 500 (deep nesting, huge integers, broken chunked framing) or were
  accepted as garbage (float WAV with NaN, infinities, beyond full scale) get a JSON 4xx;
- with SCORING_KEY set, only requests carrying it are served, and the key never reaches the log.
"""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest
import requests

from devkit.attack import KINDS, SlowClients, timed_get
from devkit.local_service import run_scoring_server
from devkit.scoring_client import noise_signal, post, to_int16, wav_bytes

pytestmark = pytest.mark.slow

HEADER_SECONDS, BODY_SECONDS = 4, 6


@pytest.fixture(scope="module")
def guarded_server(tiny_ctc_model_dir):
    env = {"SCORING_HEADER_SECONDS": str(HEADER_SECONDS), "SCORING_BODY_SECONDS": str(BODY_SECONDS),
           "SCORING_THREADS": "1"}  # fmt: skip
    with run_scoring_server(tiny_ctc_model_dir, env=env) as server:
        yield server


def _port(server) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


@pytest.mark.parametrize("kind", KINDS)
def test_fifty_slow_connections_do_not_block_other_clients(guarded_server, kind):
    five_seconds = wav_bytes(to_int16(noise_signal(5.0, seed=3)))
    with SlowClients(_port(guarded_server), kind, n=50, every=0.5) as attackers:
        time.sleep(1.0)  # they are all connected and sending
        checks = [timed_get(guarded_server.base_url + "/", timeout=10) for _ in range(5)]
        t0 = time.monotonic()
        answer = post(guarded_server.score_url, five_seconds, "audio/wav", timeout=30)
        request_seconds = time.monotonic() - t0
        assert attackers.open_count > 40 or kind == "idle"  # still holding on meanwhile
    assert [status for status, _ in checks] == [200] * 5
    assert max(seconds for _, seconds in checks) < 2.0, checks
    assert answer.status_code == 200 and answer.json()["audio_seconds"] == 5.0
    assert request_seconds < 10.0
    log = guarded_server.log()
    assert "WORKER TIMEOUT" not in log and log.count("Loading model") == 1


@pytest.mark.parametrize("kind", ["slow-headers", "slow-body", "endless-chunked"])
def test_a_slow_request_is_cut_at_its_deadline_with_a_408(guarded_server, kind):
    with SlowClients(_port(guarded_server), kind, n=1, every=0.3) as one:
        sock = one.sockets[0]
        deadline = time.monotonic() + HEADER_SECONDS + BODY_SECONDS + 5
        reply = b""
        while time.monotonic() < deadline and not _complete(reply):
            try:
                part = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not part:
                break
            reply += part
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b'"request_timeout"' in reply


def _complete(reply: bytes) -> bool:
    """The whole answer is in: its headers and as many body bytes as Content-Length says."""
    head, sep, body = reply.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


def test_an_idle_connection_is_closed_after_the_header_deadline(guarded_server):
    sock = socket.create_connection(
        ("127.0.0.1", _port(guarded_server)), timeout=HEADER_SECONDS + 5
    )
    t0 = time.monotonic()
    with sock:
        assert sock.recv(1) == b""  # closed by the server, nothing said
    assert HEADER_SECONDS - 1 < time.monotonic() - t0 < HEADER_SECONDS + 4


# ------------------------------------------------------------------------------ bad input
def _raw_post(port: int, head: bytes, body: bytes) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                header, _, rest = data.partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in header.split(b"\r\n")
                          if line.lower().startswith(b"content-length")]  # fmt: skip
                if length and len(rest) >= length[0]:
                    break
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.partition(b"\r\n\r\n")[2] or b"{}")


def _float_wav(values: np.ndarray) -> bytes:
    return wav_bytes(values.astype(np.float32), subtype="FLOAT")


def _float_audio(bad_value: float, where: int = 8000) -> np.ndarray:
    audio = noise_signal(1.0, seed=9) * 0.3
    audio[where] = bad_value
    return audio


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/json", "data_not_flat"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "invalid_json"),
        (b'{"x": ' + b"{" * 50_000 + b"}" * 50_000 + b', "data": [1]}', "application/json",
         "invalid_json"),
        (b'{"data": [' + b"7" * 5000 + b", 1]}", "application/json", "samples_out_of_range"),
        (b'{"data": [0.1, 0.2], "sample_rate": ' + b"9" * 5000 + b"}", "application/json",
         "invalid_json"),
        (b'{"data": [0.1, ' + b"1" * 400 + b".5]}", "application/json", "non_finite_samples"),
        (b'{"data": [0.1, 0.2]} trailing', "application/json", "invalid_json"),
        (b'{"data": [0.1,, 0.2]}', "application/json", "invalid_json"),
        (b'{"data": [0.1, null, "x"]}', "application/json", "data_not_numeric"),
        (_float_wav(_float_audio(np.nan)), "audio/wav", "non_finite_samples"),
        (_float_wav(_float_audio(np.inf)), "audio/wav", "non_finite_samples"),
        (_float_wav(_float_audio(-np.inf)), "audio/wav", "non_finite_samples"),
        (_float_wav(_float_audio(1e30)), "audio/wav", "samples_out_of_range"),
        (_float_wav(_float_audio(1.5)), "audio/wav", "samples_out_of_range"),
        (wav_bytes(_float_audio(np.nan), subtype="DOUBLE"), "audio/wav", "non_finite_samples"),
    ],
    ids=["deep-data", "deep-array", "deep-other-field", "huge-int-sample", "huge-int-rate",
         "huge-float", "trailing", "double-comma", "null-and-string", "wav-nan", "wav-inf",
         "wav-minus-inf", "wav-1e30", "wav-1.5", "wav-double-nan"],
)  # fmt: skip
def test_bad_input_gets_a_json_400_not_a_500(guarded_server, body, content_type, code):
    response = post(guarded_server.score_url, body, content_type, timeout=60)
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"] == code
    assert requests.get(guarded_server.base_url + "/", timeout=10).text == "Healthy"


@pytest.mark.parametrize(
    "framing",
    [b"zz\r\nabc\r\n0\r\n\r\n", b"5\r\nabc\r\n0\r\n\r\n", b"3\r\nabcXY0\r\n\r\n",
     b"-3\r\nabc\r\n0\r\n\r\n", b"ffffffffffffffffffff\r\nabc\r\n"],
    ids=["not-hex", "short-chunk", "no-terminator", "negative", "huge-size"],
)  # fmt: skip
def test_malformed_chunked_framing_is_a_400(guarded_server, framing):
    head = (b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")  # fmt: skip
    status, answer = _raw_post(_port(guarded_server), head, framing)
    # a chunk announced but never sent waits for its deadline (408); broken framing is a 400
    assert status == (408 if framing.startswith(b"ffff") else 400), answer
    assert "Internal error" not in guarded_server.log()


def test_many_clients_at_once_are_served_one_transcription_at_a_time(guarded_server):
    from concurrent.futures import ThreadPoolExecutor

    body = wav_bytes(to_int16(noise_signal(2.0, seed=1)))
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: post(guarded_server.score_url, body, "audio/wav"),
                                range(8)))  # fmt: skip
    assert [a.status_code for a in answers] == [200] * 8
    assert len({a.json()["result"] for a in answers}) == 1


# ------------------------------------------------------------------------------ the key
KEY = "s3cr3t-Key_for+tests/only"


@pytest.fixture(scope="module")
def keyed_server(tiny_ctc_model_dir):
    with run_scoring_server(tiny_ctc_model_dir, env={"SCORING_KEY": KEY + "\n"}) as server:
        yield server


def test_with_scoring_key_only_requests_carrying_it_are_served(keyed_server):
    body = wav_bytes(to_int16(noise_signal(1.0, seed=2)))

    def score(headers):
        return requests.post(keyed_server.score_url, data=body, timeout=60,
                             headers={"Content-Type": "audio/wav", **headers})  # fmt: skip

    assert score({}).status_code == 401 and score({}).json()["error"] == "missing_key"
    assert "Bearer" in score({}).headers["WWW-Authenticate"]
    wrong = score({"Authorization": "Bearer " + KEY[:-1] + "X"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "wrong_key"
    assert score({"Authorization": "Basic " + KEY}).status_code == 401
    right = score({"Authorization": "Bearer " + KEY})
    assert right.status_code == 200 and right.json()["audio_seconds"] == 1.0
    assert requests.get(keyed_server.base_url + "/", timeout=10).status_code == 200  # probes
    assert KEY not in keyed_server.log()


def test_an_unusable_server_key_stops_the_start_with_a_message(tiny_ctc_model_dir):
    server = run_scoring_server(tiny_ctc_model_dir, env={"SCORING_KEY": "two words"},
                                startup_timeout=60)  # fmt: skip
    with pytest.raises(RuntimeError) as err, server:
        pass
    assert "SCORING_KEY holds whitespace" in str(err.value)
    assert "two words" not in str(err.value)


def test_the_deployments_run_the_same_worker_settings_as_the_tests():
    """What Azure runs (cloudml/*/deployment.yml) is what devkit.local_service runs here."""
    from devkit.paths import REPO
    from scoring.server import GUNICORN_CMD_ARGS

    for name in ("managed", "kubernetes"):
        text = (REPO / "cloudml" / name / "deployment.yml").read_text()
        assert f'GUNICORN_CMD_ARGS: "{GUNICORN_CMD_ARGS}"' in text, name
        assert "PYTHONPATH: /var/azureml-app/scoring-func" in text, name


# ------------------------------------------------------------ found by bench/probe.py (round 2)
def _health_seconds(server, n: int = 3) -> list[float]:
    return [seconds if status == 200 else 99.0
            for status, seconds in (timed_get(server.base_url + "/", timeout=15)
                                    for _ in range(n))]  # fmt: skip


@pytest.mark.parametrize("request_line", [b"GET / HTTP/1.1\r\nConnection: close",
                                          b"GET /nowhere HTTP/1.0"], ids=["close", "1.0-404"])  # fmt: skip
def test_clients_that_never_close_their_end_do_not_stop_the_worker(guarded_server, request_line):
    """gunicorn closed each finished connection "gracefully" in its event loop: waiting up to
    2 s for the client's FIN. 30 clients that keep their socket held every other one for a
    minute (health checks timed out)."""
    port = _port(guarded_server)
    held = []
    try:
        for _ in range(30):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(request_line + b"\r\nHost: x\r\n\r\n")
            held.append(s)
        time.sleep(0.5)
        checks = _health_seconds(guarded_server)
    finally:
        for s in held:
            s.close()
    assert max(checks) < 2.0, checks


def test_slow_uploads_cut_at_their_deadline_that_keep_sending_do_not_stop_the_worker(
    guarded_server,
):
    with SlowClients(_port(guarded_server), "slow-body", n=30, every=0.3):
        time.sleep(BODY_SECONDS + 1.5)  # all cut with a 408 by now; they keep trickling
        checks = _health_seconds(guarded_server)
    assert max(checks) < 2.0, checks


def test_more_idle_connections_than_worker_connections_do_not_shut_others_out(guarded_server):
    """At gunicorn's 1000 connections per worker, accepting stopped until the idle ones timed
    out (SCORING_HEADER_SECONDS, 10 s in production); the oldest idle one now makes room."""
    socks = [socket.create_connection(("127.0.0.1", _port(guarded_server))) for _ in range(1050)]
    try:
        time.sleep(0.5)
        checks = _health_seconds(guarded_server)
    finally:
        for s in socks:
            s.close()
    assert max(checks) < 2.0, checks


def test_a_worker_out_of_file_descriptors_survives(tiny_ctc_model_dir):
    """EMFILE from accept() ended the worker and the model loaded again; now the oldest idle
    connection is closed to make room."""
    import psutil

    env = {"SCORING_HEADER_SECONDS": str(HEADER_SECONDS), "SCORING_THREADS": "1"}
    with run_scoring_server(tiny_ctc_model_dir, env=env) as server:
        kids = psutil.Process(server.process.pid).children(recursive=True)
        worker = max(kids, key=lambda p: p.memory_info().rss)
        psutil.Process(worker.pid).rlimit(psutil.RLIMIT_NOFILE, (150, 150))
        socks = []
        try:
            for _ in range(250):
                socks.append(socket.create_connection(("127.0.0.1", _port(server)), timeout=2))
            time.sleep(1.0)
        finally:
            for s in socks:
                s.close()
        time.sleep(1.0)
        checks = _health_seconds(server, 2)
        assert worker.is_running() and server.log().count("Loading model") == 1
        assert max(checks) < 2.0, checks


@pytest.mark.parametrize(
    ("raw", "status"),
    [(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
     (b"GET /" + b"b" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
     (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
     (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400)],
    ids=["header-too-large", "url-too-long", "tls-to-http-port", "space-in-header-name"],
)  # fmt: skip
def test_requests_gunicorn_cannot_parse_get_the_json_error_too(guarded_server, raw, status):
    """These were gunicorn's HTML pages, not the contract's JSON error."""
    with socket.create_connection(("127.0.0.1", _port(guarded_server)), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert int(head.split(b" ", 2)[1]) == status, data[:200]
    assert b"application/json" in head.lower()
    assert json.loads(body)["error"]
