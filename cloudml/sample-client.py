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
(edgeml/keys.py, one implementation for both clients). TLS certificates are verified. Exit
status: 0 transcript received, 1 the endpoint answered an error or could not be reached, 2 bad
arguments or audio file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from edgeml.audioformat import SAMPLE_RATE, float_to_int16, wav_bytes
from edgeml.keys import LOOPBACK_HOSTS, KeyProblem, check_transport, http_allowed
from edgeml.keys import read_key as _read_key

LOCAL_ENDPOINT = "http://127.0.0.1:5001/score"


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
    import librosa

    try:
        audio, _ = librosa.load(path, sr=SAMPLE_RATE, mono=True)
    except Exception as err:  # librosa raises several types for unreadable files
        raise ClientError(f"{path}: cannot read it as audio ({err})", code=2) from None
    if audio.size == 0:
        raise ClientError(f"{path}: the recording is empty", code=2)
    return audio


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


def post(settings: ClientSettings, body: bytes, content_type: str):
    import requests

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
            return session.post(
                settings.endpoint, data=body, headers=headers, timeout=settings.timeout
            )
    except requests.exceptions.SSLError as err:
        raise ClientError(f"TLS verification failed for {settings.endpoint}: {err}") from None
    except requests.exceptions.ConnectTimeout:
        raise ClientError(f"no answer from {settings.endpoint} (connect timeout)") from None
    except requests.exceptions.ReadTimeout:
        raise ClientError(
            f"{settings.endpoint} did not answer within {settings.timeout:g} s (--timeout)"
        ) from None
    except requests.exceptions.ConnectionError as err:
        reason = "connection refused" if "refused" in str(err).lower() else "cannot connect"
        hint = " (is the service running? make serve)" if host in LOOPBACK_HOSTS else ""
        raise ClientError(f"{settings.endpoint}: {reason}{hint}") from None


def explain_error(status: int, answer: dict | None, settings: ClientSettings) -> str:
    """What an error status means for the person running this script."""
    detail = ""
    if isinstance(answer, dict) and ("message" in answer or "error" in answer):
        detail = f": {answer.get('error', 'error')}: {answer.get('message', '')}".rstrip(": ")
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


def transcribe(settings: ClientSettings) -> int:
    audio = load_audio(settings.audio)
    body, content_type = encode_body(audio, settings.fmt)
    response = post(settings, body, content_type)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    print(f"Status code: {response.status_code}")
    print(f"Result: {json.dumps(answer) if answer is not None else response.text[:500]!s}")
    if response.status_code != 200:
        raise ClientError(explain_error(response.status_code, answer, settings))
    if not isinstance(answer, dict) or "result" not in answer:
        raise ClientError("the answer has no 'result' field: is this the voice-to-text endpoint?")
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
