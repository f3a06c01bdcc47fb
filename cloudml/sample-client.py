"""Send a recording to the scoring endpoint and print the transcript (the write-up's sample client).

    python cloudml/sample-client.py FILE.wav                        # local: http://127.0.0.1:5001/score
    SCORING_URI=https://<endpoint>.<region>.inference.ml.azure.com/score \\
    SCORING_KEY=... python cloudml/sample-client.py FILE.wav --format wav

The audio is loaded with librosa at 16 kHz mono, as in the write-up, and sent either as the
write-up's JSON body {"data": [floats in -1..1]} or, with --format wav, as a 16-bit WAV (about a
tenth of the bytes). Prints `Status code: N` and `Result: {...}`.

The key comes from SCORING_KEY or a file (--key-file / SCORING_KEY_FILE), never from the command
line or the code, and is never printed; it is sent over https only, except to this machine
(SCORING_ALLOW_HTTP=1 allows plain http on a private network). These are the device app's rules
(edgeml/keys.py), restated here so that this script runs on its own. TLS certificates are
verified. Exit status: 0 transcript received, 1 the endpoint answered an error or could not be
reached, 2 bad arguments or audio file.

Needs only: Python 3.10+, requests, numpy, and librosa (or, without librosa, soundfile: the
recording is then read by soundfile and resampled to 16 kHz by numpy). It imports nothing of
this project: it is the script people copy to a laptop (tests/client/test_sample_client.py
runs it in a venv holding only requests, numpy and soundfile).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import select
import stat
import sys
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

LOCAL_ENDPOINT = "http://127.0.0.1:5001/score"
SAMPLE_RATE = 16000
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
ALLOW_HTTP_ENV = "SCORING_ALLOW_HTTP"
MAX_KEY_FILE_BYTES = 64 * 1024
KEY_FILE_SECONDS = 5.0  # a key file that is a pipe must deliver within this
MAX_ANSWER_BYTES = 1 << 20  # an answer is read at most this far


# ---------------------------------------------------------------- the key's rules (edgeml/keys.py)
class KeyProblem(ValueError):
    """The key (or where it should come from) is unusable; the message never contains it."""


def check_key(key: str, origin: str) -> str:
    """The key without surrounding whitespace; refuse what would break an HTTP header."""
    key = key.strip()
    if not key:
        raise KeyProblem(f"{origin} is empty")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in key):
        raise KeyProblem(f"{origin} holds whitespace or control characters inside the key; "
                         "put the key alone on one line")  # fmt: skip
    if not key.isascii():
        raise KeyProblem(f"{origin} holds non-ASCII characters; an endpoint key is ASCII")
    return key


def _read_key(key_file: Path | None) -> str | None:
    """The key from `key_file` when given, else from SCORING_KEY; None when there is none."""
    if key_file is None:
        raw = os.environ.get("SCORING_KEY", "")
        return check_key(raw, "SCORING_KEY") if raw.strip() else None
    try:
        mode, data = _read_bounded(key_file)
    except OSError as exc:
        raise KeyProblem(f"cannot read key file {key_file}: {exc.strerror or exc}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyProblem(f"key file {key_file} is larger than {MAX_KEY_FILE_BYTES} bytes")
    if mode & stat.S_IROTH:
        print(f"warning: key file {key_file} is readable by every user (chmod o-r it)",
              file=sys.stderr)  # fmt: skip
    try:
        return check_key(data.decode("utf-8"), f"key file {key_file}")
    except UnicodeDecodeError:
        raise KeyProblem(f"key file {key_file} is not text") from None


def _read_bounded(path: Path) -> tuple[int, bytes]:
    """(mode, at most MAX_KEY_FILE_BYTES + 1 bytes): non-blocking open, so a FIFO nobody
    writes cannot hang the script; a pipe is read until its end or KEY_FILE_SECONDS."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode):
            os.set_blocking(fd, True)
            return mode, os.read(fd, MAX_KEY_FILE_BYTES + 1)
        data, deadline = bytearray(), time.monotonic() + KEY_FILE_SECONDS
        while len(data) <= MAX_KEY_FILE_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError(f"nothing written to it within {KEY_FILE_SECONDS:g} s")
            try:
                chunk = os.read(fd, MAX_KEY_FILE_BYTES + 1 - len(data))
            except BlockingIOError:
                continue
            if not chunk:
                break
            data += chunk
        return mode, bytes(data)
    finally:
        os.close(fd)


def http_allowed() -> bool:
    return os.environ.get(ALLOW_HTTP_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def check_transport(endpoint: str, key: str | None, *, allow_http: bool = False) -> None:
    """Refuse to send a key over plain http to another machine (it would travel in clear text)."""
    parts = urlsplit(endpoint)
    if not key or parts.scheme != "http" or parts.hostname in LOOPBACK_HOSTS:
        return
    if allow_http:
        print(f"warning: sending the endpoint key over plain http to {parts.hostname} "
              f"({ALLOW_HTTP_ENV}=1)", file=sys.stderr)  # fmt: skip
        return
    raise KeyProblem(
        f"refusing to send the endpoint key over plain http to {parts.hostname}: use the "
        f"endpoint's https URI (or set {ALLOW_HTTP_ENV}=1 on a private network without TLS)"
    )


# ---------------------------------------------------------------- audio
def float_to_int16(audio):
    """[-1, 1) float audio as int16 samples, rounded and clipped (never wrapped around)."""
    import numpy as np

    return np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767).astype(
        np.int16
    )


def wav_bytes(samples, sample_rate: int = SAMPLE_RATE) -> bytes:
    """int16 mono samples as a 16-bit PCM WAV file in memory (the standard library's wave)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


class ClientError(Exception):
    """A failure the user can act on; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ClientSettings:
    audio: Path
    endpoint: str
    fmt: str = "json"
    timeout: float = 90.0
    key: str | None = field(default=None, repr=False)  # never in a repr, a log or an error


def parse_args(argv: list[str] | None = None) -> ClientSettings:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="sample-client.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("audio", type=Path, help="recording to transcribe (WAV, FLAC, ...)")
    p.add_argument(
        "--endpoint",
        default=env("SCORING_URI") or LOCAL_ENDPOINT,
        help=f"scoring URI (env SCORING_URI; default {LOCAL_ENDPOINT})",
    )
    p.add_argument(
        "--format",
        dest="fmt",
        choices=("json", "wav"),
        default=env("SCORING_FORMAT", "json"),
        help="request body: JSON float list as the write-up, or a WAV file (env SCORING_FORMAT)",
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=env("SCORING_TIMEOUT", "90"),
        help="seconds to wait for the answer (env SCORING_TIMEOUT; default 90)",
    )
    p.add_argument(
        "--key-file",
        type=Path,
        default=Path(env("SCORING_KEY_FILE")) if env("SCORING_KEY_FILE") else None,
        help="file holding the endpoint key (env SCORING_KEY_FILE); else env SCORING_KEY",
    )
    a = p.parse_args(argv)
    return ClientSettings(
        audio=a.audio,
        endpoint=normalize_endpoint(a.endpoint),
        fmt=a.fmt,
        timeout=a.timeout,
        key=read_key(a.key_file),
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def normalize_endpoint(url: str) -> str:
    """Accept the base URL too: a bare http://host:port gets the /score route."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SystemExit(f"sample-client.py: error: --endpoint {url!r} is not an http(s) URL")
    if parts.path in ("", "/"):
        parts = parts._replace(path="/score")
    return urlunsplit(parts)


def read_key(key_file: Path | None) -> str | None:
    """The key from the file if given, else SCORING_KEY; None for a local service without auth."""
    try:
        return _read_key(key_file)
    except KeyProblem as err:
        raise SystemExit(f"sample-client.py: error: {err}") from None


def load_audio(path: Path):
    """Mono float32 samples at 16 kHz, loaded and resampled by librosa as in the write-up."""
    if not path.is_file():
        raise ClientError(f"{path}: no such file", code=2)
    try:
        audio = _load(path)
    except Exception as err:  # librosa and soundfile raise several types for unreadable files
        raise ClientError(f"{path}: cannot read it as audio ({err})", code=2) from None
    if audio.size == 0:
        raise ClientError(f"{path}: the recording is empty", code=2)
    return audio


def _load(path: Path):
    """librosa as in the write-up; without it, soundfile and a numpy resampler."""
    try:
        import librosa
    except ImportError:
        return _load_with_soundfile(path)
    return librosa.load(path, sr=SAMPLE_RATE, mono=True)[0]


def _load_with_soundfile(path: Path):
    """Mono float32 at 16 kHz: channels averaged, then resampled by linear interpolation
    after a moving-average low-pass (plain numpy: good enough for speech recognition)."""
    import numpy as np
    import soundfile as sf

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate == SAMPLE_RATE or audio.size == 0:
        return audio.astype(np.float32)
    if rate > SAMPLE_RATE:  # against aliasing: average over the input samples per output one
        width = max(1, round(rate / SAMPLE_RATE))
        audio = np.convolve(audio, np.ones(width) / width, mode="same")
    times = np.arange(int(len(audio) * SAMPLE_RATE / rate)) * (rate / SAMPLE_RATE)
    return np.interp(times, np.arange(len(audio)), audio).astype(np.float32)


def encode_body(audio, fmt: str) -> tuple[bytes, str]:
    """The request body and its Content-Type."""
    if fmt == "json":
        return json.dumps({"data": audio.tolist()}).encode(), "application/json"
    return wav_bytes(float_to_int16(audio)), "audio/wav"


def make_session():
    """requests with a short retry on 429/503 (the service is busy or starting), honouring Retry-After.

    Refused or timed-out connections are not retried: the user hears about them at once.
    """
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(
        total=2,
        connect=0,  # a refused connection is reported at once
        read=False,  # re-raise a read timeout as such (never resend a request being processed)
        status_forcelist=(429, 503),
        allowed_methods=frozenset({"POST"}),
        backoff_factor=1.0,
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def _bounded(response):
    """The response with its body read, at most MAX_ANSWER_BYTES (a transcript is a few
    hundred bytes: more is not the scoring endpoint, and is not read into memory)."""
    data = response.raw.read(MAX_ANSWER_BYTES + 1, decode_content=True)
    if len(data) > MAX_ANSWER_BYTES:
        raise ClientError(f"the answer ({response.status_code}) is larger than "
                          f"{MAX_ANSWER_BYTES} bytes: is this the scoring endpoint?")  # fmt: skip
    response._content = data  # requests' own slot for a body already read
    return response


def post(settings: ClientSettings, body: bytes, content_type: str):
    import requests
    import urllib3

    host = urlsplit(settings.endpoint).hostname or ""
    try:
        check_transport(settings.endpoint, settings.key, allow_http=http_allowed())
    except KeyProblem as err:
        raise ClientError(str(err)) from None
    headers = {"Content-Type": content_type}
    if settings.key:
        headers["Authorization"] = f"Bearer {settings.key}"
    try:
        with make_session() as session:
            response = session.post(
                settings.endpoint, data=body, headers=headers, timeout=settings.timeout,
                stream=True,  # read below, at most MAX_ANSWER_BYTES
            )  # fmt: skip
            with response:
                return _bounded(response)
    except requests.exceptions.SSLError as err:
        raise ClientError(f"TLS verification failed for {settings.endpoint}: {err}") from None
    except requests.exceptions.ConnectTimeout:
        raise ClientError(f"no answer from {settings.endpoint} (connect timeout)") from None
    except (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError):
        raise ClientError(
            f"{settings.endpoint} did not answer within {settings.timeout:g} s (--timeout)"
        ) from None
    except (requests.exceptions.ConnectionError, urllib3.exceptions.ProtocolError) as err:
        reason = "connection refused" if "refused" in str(err).lower() else "cannot connect"
        hint = " (is the service running? make serve)" if host in LOOPBACK_HOSTS else ""
        raise ClientError(f"{settings.endpoint}: {reason}{hint}") from None


def explain_error(status: int, answer: dict | None, settings: ClientSettings) -> str:
    """What an error status means for the person running this script."""
    detail = ""
    if isinstance(answer, dict) and ("message" in answer or "error" in answer):
        detail = f": {answer.get('error', 'error')}: {answer.get('message', '')}".rstrip(": ")
        detail = _safe(detail[:500])
    if status in (401, 403):
        if not settings.key:
            return f"the endpoint needs a key ({status}): set SCORING_KEY or --key-file"
        return (
            f"the endpoint refused the key ({status}): it is wrong or was regenerated "
            "(az ml online-endpoint get-credentials -n <endpoint>)"
        )
    if status == 404:
        return f"nothing at {settings.endpoint} (404): the scoring URI ends with /score"
    if status == 413:
        return f"the recording is too long for the service (413){detail}"
    if status == 424 or status >= 500:
        return f"the service failed ({status}){detail}"
    return f"the service rejected the request ({status}){detail}"


def _safe(text: str) -> str:
    """Text from the network made safe for a terminal: control characters (ESC, BEL, newline)
    shown as escapes, so an endpoint cannot move the cursor or forge a line."""
    return "".join(
        f"\\x{ord(c):02x}" if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in str(text)
    )


def transcribe(settings: ClientSettings) -> int:
    audio = load_audio(settings.audio)
    body, content_type = encode_body(audio, settings.fmt)
    response = post(settings, body, content_type)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    print(f"Status code: {response.status_code}")
    shown = json.dumps(answer) if answer is not None else _safe(response.text[:500])
    print(f"Result: {shown}")
    if response.status_code != 200:
        raise ClientError(explain_error(response.status_code, answer, settings))
    if not isinstance(answer, dict) or not isinstance(answer.get("result"), str):
        raise ClientError("the answer has no 'result' text: is this the voice-to-text endpoint?")
    return 0


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    try:
        return transcribe(settings)
    except ClientError as err:
        print(f"sample-client.py: error: {err}", file=sys.stderr)
        return err.code


if __name__ == "__main__":
    raise SystemExit(main())
