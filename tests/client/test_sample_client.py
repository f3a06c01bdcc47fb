"""cloudml/sample-client.py: against the real local scoring service in both formats, and against
a scripted real HTTP server for every error the user can meet (401, 4xx, 5xx, refused, timeout)."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import soundfile as sf
from clienttools import (
    Reply,
    as_pcm16,
    json_reply,
    load_sample_client,
    reference_decode,
    scripted_endpoint,
    without_scoring_vars,
)

from devkit.local_service import free_port
from devkit.paths import REPO, SAMPLE_CLIENT

KEY = "k3y-that-must-not-leak"
client = load_sample_client()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in (
        "SCORING_URI",
        "SCORING_KEY",
        "SCORING_KEY_FILE",
        "SCORING_FORMAT",
        "SCORING_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**without_scoring_vars(), **env}
    return subprocess.run(
        [sys.executable, str(SAMPLE_CLIENT), *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=180,
    )


# ---------------------------------------------------------------- the real local service


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["json", "wav"])
@pytest.mark.parametrize("recording", ["mono16k", "stereo22k"])
def test_transcribes_through_the_local_service(
    scoring_server, tiny_ctc_model_dir, demo_wavs, fmt, recording
):
    import librosa

    proc = run_cli(str(demo_wavs[recording]), "--format", fmt, SCORING_URI=scoring_server.score_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status_line, result_line = proc.stdout.strip().splitlines()[-2:]
    assert status_line == "Status code: 200"
    assert result_line.startswith("Result: ")
    answer = json.loads(result_line.removeprefix("Result: "))
    # What was sent: librosa's 16 kHz mono samples, as floats (json) or 16-bit PCM (wav).
    audio, _ = librosa.load(demo_wavs[recording], sr=16000, mono=True)
    if fmt == "wav":
        audio = as_pcm16(audio)
    assert answer["result"] == reference_decode(tiny_ctc_model_dir, audio)
    assert answer["audio_seconds"] == pytest.approx(len(audio) / 16000, abs=0.01)


# ---------------------------------------------------------------- requests as sent


def test_json_body_is_the_write_up_format(demo_wavs, capsys):
    with scripted_endpoint(json_reply(200, {"result": "WHAT IS THE WEATHER"})) as ep:
        assert client.main([str(demo_wavs["stereo22k"]), "--endpoint", ep.url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["Status code: 200", 'Result: {"result": "WHAT IS THE WEATHER"}']
    (request,) = ep.requests
    assert request["path"] == "/score"
    assert request["headers"]["Content-Type"] == "application/json"
    assert "Authorization" not in request["headers"]
    data = json.loads(request["body"])["data"]
    seconds = sf.info(demo_wavs["stereo22k"]).duration
    assert len(data) == pytest.approx(seconds * 16000, abs=2)  # resampled to 16 kHz, mono
    assert all(isinstance(x, float) for x in data[:100]) and max(map(abs, data)) <= 1.0


def test_wav_body_is_16k_mono_pcm_and_far_smaller(demo_wavs, monkeypatch, capsys):
    monkeypatch.setenv("SCORING_KEY", KEY)
    with scripted_endpoint() as ep:
        assert (
            client.main([str(demo_wavs["mono16k"]), "--endpoint", ep.url, "--format", "json"]) == 0
        )
        assert (
            client.main([str(demo_wavs["mono16k"]), "--endpoint", ep.url, "--format", "wav"]) == 0
        )
    json_request, wav_request = ep.requests
    assert wav_request["headers"]["Content-Type"] == "audio/wav"
    assert wav_request["headers"]["Authorization"] == f"Bearer {KEY}"
    info = sf.info(io.BytesIO(wav_request["body"]))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert len(wav_request["body"]) < 0.2 * len(json_request["body"])
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err


def test_endpoint_from_the_environment_and_base_url_gets_score(demo_wavs, monkeypatch):
    with scripted_endpoint() as ep:
        monkeypatch.setenv("SCORING_URI", ep.url.removesuffix("/score"))
        assert client.main([str(demo_wavs["mono16k"])]) == 0
    assert ep.requests[0]["path"] == "/score"


def test_key_from_a_file(demo_wavs, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    with scripted_endpoint() as ep:
        assert (
            client.main(
                [str(demo_wavs["mono16k"]), "--endpoint", ep.url, "--key-file", str(key_file)]
            )
            == 0
        )
    assert ep.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"


def test_busy_service_is_retried(demo_wavs, capsys):
    busy = Reply(status=503, body=b"busy", content_type="text/plain")
    with scripted_endpoint(busy, json_reply(200, {"result": "OK"})) as ep:
        assert client.main([str(demo_wavs["mono16k"]), "--endpoint", ep.url]) == 0
    assert len(ep.requests) == 2
    assert "Status code: 200" in capsys.readouterr().out


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("reply", "with_key", "words"),
    [
        (json_reply(401, {"message": "unauthorized"}), False, ["401", "SCORING_KEY"]),
        (
            json_reply(401, {"message": "unauthorized"}),
            True,
            ["refused the key", "get-credentials"],
        ),
        (json_reply(403, {"message": "forbidden"}), True, ["refused the key"]),
        (
            json_reply(400, {"error": "empty_audio", "message": "data is empty"}),
            False,
            ["400", "empty_audio", "data is empty"],
        ),
        (
            json_reply(413, {"error": "audio_too_long", "message": "over 120 s"}),
            False,
            ["too long", "over 120 s"],
        ),
        (
            json_reply(415, {"error": "unsupported_media_type", "message": "use audio/wav"}),
            False,
            ["415", "use audio/wav"],
        ),
        (Reply(status=404, body=b"not found", content_type="text/plain"), False, ["404", "/score"]),
        (
            Reply(status=500, body=b"<html>oops</html>", content_type="text/html"),
            False,
            ["failed (500)"],
        ),
    ],
)
def test_error_answers_are_explained(demo_wavs, monkeypatch, capsys, reply, with_key, words):
    if with_key:
        monkeypatch.setenv("SCORING_KEY", KEY)
    with scripted_endpoint(reply) as ep:
        code = client.main([str(demo_wavs["mono16k"]), "--endpoint", ep.url])
    captured = capsys.readouterr()
    assert code == 1
    assert f"Status code: {reply.status}" in captured.out
    for word in words:
        assert word in captured.err, (word, captured.err)
    assert KEY not in captured.out + captured.err


def test_answer_without_result_is_an_error(demo_wavs, capsys):
    with scripted_endpoint(json_reply(200, {"prediction": [1, 2]})) as ep:
        assert client.main([str(demo_wavs["mono16k"]), "--endpoint", ep.url]) == 1
    assert "no 'result'" in capsys.readouterr().err


def test_timeout(demo_wavs, capsys):
    with scripted_endpoint(Reply(delay=3.0)) as ep:
        assert (
            client.main([str(demo_wavs["mono16k"]), "--endpoint", ep.url, "--timeout", "0.5"]) == 1
        )
    assert "did not answer within 0.5 s" in capsys.readouterr().err


def test_key_is_never_sent_over_plain_http_to_another_host(demo_wavs, monkeypatch, capsys):
    monkeypatch.setenv("SCORING_KEY", KEY)
    code = client.main(
        [str(demo_wavs["mono16k"]), "--endpoint", "http://voice.example.invalid/score"]
    )
    err = capsys.readouterr().err
    assert code == 1 and "plain http" in err and KEY not in err


def test_refused_connection_missing_file_and_bad_audio_through_the_cli(demo_wavs, tmp_path):
    refused = run_cli(
        str(demo_wavs["mono16k"]), "--endpoint", f"http://127.0.0.1:{free_port()}/score"
    )
    assert refused.returncode == 1
    assert "connection refused" in refused.stderr and "Traceback" not in refused.stderr

    missing = run_cli(str(tmp_path / "nothing.wav"))
    assert missing.returncode == 2
    assert "nothing.wav: no such file" in missing.stderr and "Traceback" not in missing.stderr

    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not a recording")
    bad = run_cli(str(not_audio))
    assert bad.returncode == 2
    assert "cannot read it as audio" in bad.stderr and "Traceback" not in bad.stderr


def test_bad_arguments(tmp_path, demo_wavs):
    empty_key = tmp_path / "key"
    empty_key.write_text("")
    proc = run_cli(str(demo_wavs["mono16k"]), "--key-file", str(empty_key))
    assert proc.returncode != 0 and "is empty" in proc.stderr
    proc = run_cli(str(demo_wavs["mono16k"]), "--timeout", "soon")
    assert proc.returncode == 2 and "--timeout" in proc.stderr
    proc = run_cli(str(demo_wavs["mono16k"]), "--endpoint", "ftp://host/score")
    assert proc.returncode != 0 and "not an http(s) URL" in proc.stderr
