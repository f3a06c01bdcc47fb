"""The model queue is bounded by the clients' deadline and drops clients that have gone
(scoring.admission; issue 23 row 2: five 30 s requests from clients with a 30 s timeout, then a
5 s clip: 1 of 6 answered, 4 transcribed for clients that had left, the clip after ~70 s).

The real ScoringService and Admission, with an engine that holds each transcription until the
test lets it go, so the queue's states are reached by events, not by timing.
"""

from __future__ import annotations

import queue
import re
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from devkit.scoring_client import noise_signal, to_int16, wav_bytes
from edgeml.cloudml import ClientConfig
from scoring.admission import CLIENT_SECONDS, RequestSettings
from scoring.models import ENGINE_CTC, ModelSource
from scoring.server import client_gone_probe
from scoring.service import ScoringService
from scoring.settings import ServiceSettings


class HeldEngine:
    """Transcribes nothing until `release` is set; records what it was given."""

    engine = ENGINE_CTC

    def __init__(self) -> None:
        self.started: queue.Queue[int] = queue.Queue()
        self.release = threading.Event()
        self.heard: list[int] = []

    def transcribe(self, samples: np.ndarray) -> str:
        self.started.put(len(samples))
        assert self.release.wait(120), "the test never released the engine"
        self.heard.append(len(samples))
        return "HEARD"

    def describe(self) -> str:
        return "held"


def _service(**requests) -> tuple[ScoringService, HeldEngine]:
    engine = HeldEngine()
    source = ModelSource("held", "test", ENGINE_CTC, True)
    settings = ServiceSettings(max_audio_seconds=120.0, warm_up=False)
    return ScoringService(settings, source, engine, RequestSettings(**requests)), engine


def _wav(seconds: float) -> bytes:
    return wav_bytes(to_int16(noise_signal(seconds, seed=int(seconds))))


def _ask(service: ScoringService, body: bytes, gone=None):
    return service.handle("POST", "audio/wav", len(body), lambda _limit, _charge: body, None, gone)


def _until(condition, what: str, seconds: float = 60.0) -> None:
    """Wait for a state of the queue (a generous deadline, not a timed assertion)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never reached: {what}"
        time.sleep(0.01)


def test_requests_whose_answer_would_come_after_the_deadline_are_refused_at_once():
    service, engine = _service()
    left = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        first: Future = pool.submit(_ask, service, _wav(30.0))
        assert engine.started.get(timeout=60) == 30 * 16000
        second: Future = pool.submit(_ask, service, _wav(30.0), left.is_set)
        _until(lambda: service.admission._waiting == 1, "the second request queued")
        # 30 s + 30 s ahead at the assumed real-time factor 0.5: 30 s, the deadline
        for seconds in (30.0, 5.0):
            late = _ask(service, _wav(seconds))
            assert (late.status, late.body["error"]) == (503, "busy"), late.body
            assert "deadline" in late.body["message"] and late.headers["Retry-After"]
        left.set()  # the second client times out and closes its connection
        gone = second.result(timeout=60)
        assert (gone.status, gone.body["error"]) == (503, "client_gone")
        engine.release.set()
        assert first.result(timeout=60).status == 200
    assert engine.heard == [30 * 16000]  # nothing transcribed for the client that left


def test_a_client_gone_before_the_model_starts_is_not_transcribed():
    service, engine = _service()
    engine.release.set()
    answers = iter([False, True])  # there when its request arrived, gone by the model's turn
    answer = _ask(service, _wav(2.0), gone=lambda: next(answers))
    assert (answer.status, answer.body["error"]) == (503, "client_gone")
    assert engine.heard == []
    assert _ask(service, _wav(2.0), gone=lambda: False).status == 200


def test_a_client_that_half_closed_with_its_request_is_answered():
    """Its connection is at its end from the start: HTTP allows that (the answer still
    arrives), and it cannot be told from a client that left, so it is served."""
    service, engine = _service()
    engine.release.set()
    assert _ask(service, _wav(2.0), gone=lambda: True).status == 200
    assert engine.heard == [32000]


def test_the_wait_ends_before_the_clients_deadline():
    service, engine = _service(client_seconds=2.0)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(_ask, service, _wav(1.0))
        engine.started.get(timeout=60)
        waited = _ask(service, _wav(1.0))  # may wait 2 s less its own 0.5 s, then 503
        engine.release.set()
        assert first.result(timeout=60).status == 200
    assert (waited.status, waited.body["error"]) == (503, "busy")
    assert "past the clients' deadline" in waited.body["message"]
    assert engine.heard == [16000]


def test_the_queue_never_outlives_the_devices_default_timeout():
    assert ClientConfig.read_timeout == CLIENT_SECONDS
    assert RequestSettings.from_env({}).longest_wait <= ClientConfig.read_timeout
    assert RequestSettings.from_env({"SCORING_QUEUE_SECONDS": "60"}).longest_wait == 30.0
    assert RequestSettings.from_env({"SCORING_QUEUE_SECONDS": "5"}).longest_wait == 5.0
    longer = {"SCORING_CLIENT_SECONDS": "90", "SCORING_QUEUE_SECONDS": "60"}
    assert RequestSettings.from_env(longer).longest_wait == 60.0


def test_the_probe_tells_a_closed_connection_from_a_quiet_one():
    ours, theirs = socket.socketpair()
    with ours:
        gone = client_gone_probe(ours)
        assert gone() is False  # connected, nothing sent
        theirs.sendall(b"GET / HTTP/1.1\r\n")  # a pipelined request: still there
        assert gone() is False
        ours.recv(64)
        theirs.close()
        assert gone() is True
    assert client_gone_probe(None) is None


def test_a_half_closed_client_still_gets_its_answer_from_the_real_server(scoring_server):
    """The real azmlinfsrv and worker: the probe reads gunicorn's socket for the request, and a
    request whose client half-closed right after sending it is still answered."""

    body = _wav(3.0)
    host, port = re.match(r"http://([^:/]+):(\d+)", scoring_server.base_url).groups()
    head = (
        f"POST /score HTTP/1.1\r\nHost: {host}\r\nContent-Type: audio/wav\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    reply = b""
    with socket.create_connection((host, int(port)), timeout=60) as client:
        client.sendall(head + body)
        client.shutdown(socket.SHUT_WR)
        while part := client.recv(65536):
            reply += part
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]


def test_a_client_that_leaves_while_queued_is_not_transcribed_by_the_real_server(
    whisper_dir, speech_dir
):
    """The real azmlinfsrv and worker with Whisper tiny: a long real-speech request holds the
    model; a second client sends its request, leaves while it waits, and is dropped."""
    import psutil
    import requests

    from devkit.benchtools import speech
    from devkit.local_service import run_scoring_server

    audio, _ = speech(60.0)  # the utt clips: about 53 s, repeated to 118 s (seconds of work)
    long_body = wav_bytes(to_int16(np.resize(audio, 118 * 16000)))
    env = {"SCORING_CLIENT_SECONDS": "600", "SCORING_THREADS": "2"}  # the wait is allowed
    with (
        run_scoring_server(whisper_dir, env=env, offline=True) as server,
        ThreadPoolExecutor(1) as pool,
    ):
        worker = max(psutil.Process(server.process.pid).children(recursive=True),
                     key=lambda p: p.memory_info().rss)  # fmt: skip
        cpu = sum(worker.cpu_times()[:2])
        first = pool.submit(requests.post, server.score_url, data=long_body,
                            headers={"Content-Type": "audio/wav"}, timeout=600)  # fmt: skip
        _until(lambda: sum(worker.cpu_times()[:2]) > cpu + 1.0, "the long request transcribing")
        host, port = re.match(r"http://([^:/]+):(\d+)", server.base_url).groups()
        body = _wav(3.0)
        head = (
            f"POST /score HTTP/1.1\r\nHost: {host}\r\nContent-Type: audio/wav\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection((host, int(port)), timeout=10) as client:
            client.sendall(head + body)
            time.sleep(0.5)  # its request is read and queued behind the long one meanwhile
        assert first.result(timeout=600).status_code == 200
        _until(lambda: "client_gone" in server.log(), "the departed client dropped")
        assert server.log().count("Transcribed") == 1  # the long request only
