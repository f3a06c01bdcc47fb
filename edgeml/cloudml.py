"""CloudML: the HTTP client of the scoring endpoint (`POST <endpoint>/score`).

One requests session (connection reuse), TLS verification on, connect and read timeouts, and
urllib3's Retry for the blips a device on Wi-Fi sees all the time: connection errors, 429 and
5xx are retried with exponential backoff, honouring Retry-After (capped, so a server asking for
an hour does not freeze the device: the spool retries later instead). 400/401/403/413/415 are
never retried: they will not get better by asking again, so they come back as a clear error.

The key comes from SCORING_KEY or a key file, never from code, and is never printed or logged
(it only ever lives in the session's Authorization header); keys.py holds the rules, shared
with cloudml/sample-client.py, including the one on sending it over plain http.

Bodies: `wav` (default; 16-bit PCM WAV, 10x smaller than JSON) or `json` (`{"data": [int16...]}`,
what the write-up's scoring script reads).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from edgeml.audioformat import SAMPLE_RATE, wav_bytes
from edgeml.keys import check_transport

log = logging.getLogger("edgeml.cloud")

DEFAULT_ENDPOINT = "http://127.0.0.1:5001/score"
FORMATS = ("wav", "json")


@dataclass(frozen=True)
class ClientConfig:
    """The scoring endpoint and how to talk to it."""

    endpoint: str = DEFAULT_ENDPOINT
    key: str | None = field(default=None, repr=False)  # never shown
    body_format: str = "wav"  # or "json": {"data": [int16...]}, the write-up's script's body
    connect_timeout: float = 5.0
    read_timeout: float = 30.0  # the endpoint's answer; a busy one is retried from the spool
    retries: int = 3  # quick retries of one request before it waits in the spool
    allow_http: bool = False  # send the key over plain http to another machine (keys.py)


class CloudError(RuntimeError):
    """Delivery failed. `retryable`: the same recording may succeed later."""

    retryable = True

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class EndpointUnavailable(CloudError):
    """Refused, timed out, 429 or 5xx after the retries: try again later (the spool does)."""


class AuthRejected(CloudError):
    """401/403: the key is wrong or missing. The recording is fine; the configuration is not."""

    retryable = False


class AudioRejected(CloudError):
    """400/413/415 and other 4xx: the endpoint will never accept this recording."""

    retryable = False


@dataclass(frozen=True)
class Transcript:
    text: str
    audio_seconds: float
    round_trip_ms: float
    inference_ms: float | None = None
    model: str | None = None
    engine: str | None = None


class _Retry(Retry):
    """urllib3 Retry with Retry-After honoured only where it means "later" and capped."""

    RETRY_AFTER_STATUS_CODES = frozenset([429, 503])  # never 413: too long stays too long
    MAX_RETRY_AFTER = 30.0

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), self.MAX_RETRY_AFTER)


def encode_json(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    data = np.asarray(samples, dtype=np.int16).tolist()
    return json.dumps({"data": data, "sample_rate": sample_rate}, separators=(",", ":")).encode()


class CloudML:
    """Sends recordings to the scoring endpoint and returns the transcript."""

    def __init__(
        self,
        endpoint: str,
        key: str | None = None,
        *,
        body_format: str = ClientConfig.body_format,
        connect_timeout: float = ClientConfig.connect_timeout,
        read_timeout: float = ClientConfig.read_timeout,
        retries: int = ClientConfig.retries,
        allow_http: bool = ClientConfig.allow_http,
        backoff_factor: float = 0.5,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"endpoint must be an http(s) URL, got {endpoint!r}")
        if body_format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {body_format!r}")
        check_transport(endpoint, key, allow_http=allow_http)  # raises keys.KeyProblem
        self.endpoint = endpoint
        self.body_format = body_format
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        self.session.verify = True
        retry = _Retry(
            total=retries,
            connect=retries,
            read=0,  # a read timeout means "busy": do not pile on, the spool retries later
            status=retries,
            other=0,
            allowed_methods=None,  # POST too: scoring has no side effects
            status_forcelist=(429, 500, 502, 503, 504),
            backoff_factor=backoff_factor,
            backoff_max=10.0,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=2)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"

    @classmethod
    def from_config(cls, config: ClientConfig) -> CloudML:
        return cls(
            config.endpoint,
            config.key,
            body_format=config.body_format,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            retries=config.retries,
            allow_http=config.allow_http,
        )

    def __repr__(self) -> str:  # never shows the key
        return f"CloudML({self.endpoint!r}, format={self.body_format!r})"

    def close(self) -> None:
        self.session.close()

    def transcribe(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Transcript:
        """POST one recording; return its transcript or raise a CloudError."""
        if self.body_format == "wav":
            body, content_type = wav_bytes(samples, sample_rate), "audio/wav"
        else:
            body, content_type = encode_json(samples, sample_rate), "application/json"
        t0 = time.monotonic()
        try:
            resp = self.session.post(
                self.endpoint,
                data=body,
                headers={"Content-Type": content_type},
                timeout=self.timeout,
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise EndpointUnavailable(f"cannot connect to {self._host}: timed out") from exc
        except requests.exceptions.ReadTimeout as exc:
            raise EndpointUnavailable(
                f"{self._host} did not answer within {self.timeout[1]:.0f} s"
            ) from exc
        except requests.exceptions.SSLError as exc:
            raise EndpointUnavailable(f"TLS error with {self._host}: {exc}") from exc
        except requests.exceptions.ConnectionError as exc:
            if isinstance(
                getattr(exc.args[0] if exc.args else None, "reason", None), ReadTimeoutError
            ):
                # with read retries at 0, urllib3 wraps a read timeout in MaxRetryError
                raise EndpointUnavailable(
                    f"{self._host} did not answer within {self.timeout[1]:.0f} s"
                ) from exc
            raise EndpointUnavailable(f"cannot connect to {self._host}: {_reason(exc)}") from exc
        except requests.exceptions.RequestException as exc:
            raise EndpointUnavailable(f"request to {self._host} failed: {exc}") from exc
        round_trip_ms = (time.monotonic() - t0) * 1000.0
        with resp:
            return self._parse(resp, len(samples) / sample_rate, round_trip_ms)

    @property
    def _host(self) -> str:
        return urlsplit(self.endpoint).netloc

    def _parse(self, resp: requests.Response, seconds: float, round_trip_ms: float) -> Transcript:
        status = resp.status_code
        if status == 200:
            return self._transcript(resp, seconds, round_trip_ms)
        detail = _error_detail(resp)
        if status in (401, 403):
            raise AuthRejected(
                f"endpoint refused the key ({status}{detail}): check SCORING_KEY / --key-file",
                status=status,
            )
        if status == 429 or status >= 500:
            raise EndpointUnavailable(
                f"endpoint answered {status}{detail} after retries",
                status=status,
                retry_after=_retry_after(resp),
            )
        raise AudioRejected(f"endpoint rejected the recording ({status}{detail})", status=status)

    @staticmethod
    def _transcript(resp: requests.Response, seconds: float, round_trip_ms: float) -> Transcript:
        try:
            payload = resp.json()
            if isinstance(payload, str):  # the write-up's script returned json.dumps(...) as a str
                payload = json.loads(payload)
            text = payload["result"]
        except (ValueError, KeyError, TypeError) as exc:
            raise AudioRejected(
                f"endpoint answered 200 without a 'result' field: {resp.text[:200]!r}",
                status=200,
            ) from exc
        if isinstance(text, list):  # some scripts return a batch of one
            text = " ".join(str(t) for t in text)
        return Transcript(
            text=str(text).strip(),
            audio_seconds=float(payload.get("audio_seconds", seconds)),
            round_trip_ms=round_trip_ms,
            inference_ms=payload.get("inference_ms"),
            model=payload.get("model"),
            engine=payload.get("engine"),
        )


def _reason(exc: Exception) -> str:
    """`[Errno 111] Connection refused` rather than two lines of urllib3 pool wrapping."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    return found.group(0).strip() if found else text[:200]


def _error_detail(resp: requests.Response) -> str:
    """`: <error>: <message>` from the contract's JSON error body, or a bit of the text."""
    try:
        body = resp.json()
    except ValueError:
        text = resp.text.strip().replace("\n", " ")
        return f": {text[:160]}" if text else ""
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("error", "message") if body.get(k)]
        return ": " + ": ".join(parts) if parts else ""
    return f": {str(body)[:160]}"


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
