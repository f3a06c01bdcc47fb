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

Bounded answers: an endpoint that misbehaves must not hang or exhaust the device. Every attempt
has a deadline for the WHOLE exchange (connect + read timeout: a watchdog cuts the connection
of an answer whose headers or body trickle in), the answer is read at most MAX_ANSWER_BYTES far,
redirects are never followed (a POST turned into a GET, or https sent to http, would lose the
recording or the key), and a wrong endpoint (404, 405, 3xx, a 200 without a transcript) is
`EndpointMisconfigured`: the recording is kept, not shelved as rejected. Every message is
scrubbed of the key before it leaves this module.

A recording that keeps the keyword names it in PREFIX_HEADER (keywordtext.transcript_prefix): a
Whisper service decodes the sentence after it and answers without it. The header is a hint: a
service that refuses it (400 invalid_prefix) is asked again without it, never losing the audio.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from edgeml.audioformat import SAMPLE_RATE, wav_bytes
from edgeml.keys import check_key, check_transport, scrub

log = logging.getLogger("edgeml.cloud")

DEFAULT_ENDPOINT = "http://127.0.0.1:5001/score"
FORMATS = ("wav", "json")
PREFIX_HEADER = "X-Transcript-Prefix"  # scoring-func/scoring/prefix.py reads the same header
MAX_ANSWER_BYTES = 1 << 20  # a transcript answer is a few hundred bytes; 1 MiB is surely wrong


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
    """400/413/415/422: the endpoint will never accept this recording."""

    retryable = False


class EndpointMisconfigured(CloudError):
    """The URL does not lead to a scoring endpoint (404, 405, a redirect, a 200 without a
    transcript, an answer too large): the recording is fine, the configuration is not."""

    retryable = False


@dataclass(frozen=True)
class Transcript:
    text: str
    audio_seconds: float
    round_trip_ms: float
    inference_ms: float | None = None
    model: str | None = None
    engine: str | None = None
    prefix: str | None = None  # the service decoded after these words and left them out


class _Retry(Retry):
    """urllib3 Retry with Retry-After honoured only where it means "later" and capped."""

    RETRY_AFTER_STATUS_CODES = frozenset([429, 503])  # never 413: too long stays too long
    MAX_RETRY_AFTER = 30.0

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), self.MAX_RETRY_AFTER)


class _Watchdog:
    """A deadline for each attempt's whole exchange: request, headers and body.

    Socket timeouts bound each read, not their sum: an answer that trickles one byte per read
    timeout would be read for days. The connection in use registers itself here when it sends
    a request; at the deadline the watchdog shuts its socket down, and the blocked read returns.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._sock = None
        self._conn = None
        self.fired = False

    def arm(self, conn) -> None:
        """A connection is sending a request (the first or a retry): its deadline starts."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._sock, self.fired, self._conn = None, False, conn
            self._timer = threading.Timer(self.seconds, self._cut, args=(conn,))
            self._timer.daemon = True
            self._timer.start()

    def abort(self) -> None:
        """Cut the exchange in flight now (the app stops): its blocked read returns at once."""
        with self._lock:
            conn = self._conn
        if conn is not None:
            self._cut(conn)

    def _cut(self, conn) -> None:
        with self._lock:
            sock = getattr(conn, "sock", None)
            if sock is None:
                return
            self.fired = True
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def disarm(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._conn = None


def _watched(pool_cls: type, watchdog: _Watchdog) -> type:
    """A urllib3 pool class whose connections arm `watchdog` whenever they send a request."""

    class Connection(pool_cls.ConnectionCls):
        def request(self, *args, **kwargs):
            watchdog.arm(self)
            return super().request(*args, **kwargs)

    return type(f"Watched{pool_cls.__name__}", (pool_cls,), {"ConnectionCls": Connection})


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter with urllib3 pools whose connections report to a watchdog."""

    def __init__(self, watchdog: _Watchdog, **kwargs) -> None:
        self.watchdog = watchdog
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _watched(HTTPConnectionPool, self.watchdog),
            "https": _watched(HTTPSConnectionPool, self.watchdog),
        }


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
        backoff_jitter: float = 0.5,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"endpoint must be an http(s) URL, got {endpoint!r}")
        if body_format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {body_format!r}")
        if key is not None:
            key = check_key(key, "the endpoint key")  # raises keys.KeyProblem, never quoting it
        check_transport(endpoint, key, allow_http=allow_http)  # raises keys.KeyProblem
        self.endpoint = endpoint
        self.body_format = body_format
        self.timeout = (connect_timeout, read_timeout)
        self.max_answer_bytes = max_answer_bytes
        self._key = key
        self._watchdog = _Watchdog(connect_timeout + read_timeout)
        self.session = requests.Session()
        self.session.verify = True
        self.session.trust_env = False  # no .netrc credentials or proxy variables in between
        # An answer is read at most max_answer_bytes far: no compression to inflate behind it.
        self.session.headers["Accept-Encoding"] = "identity"
        retry = _Retry(
            total=retries,
            connect=retries,
            read=0,  # a read timeout means "busy": do not pile on, the spool retries later
            status=retries,
            other=0,
            allowed_methods=None,  # POST too: scoring has no side effects
            status_forcelist=(429, 500, 502, 503, 504),
            backoff_factor=backoff_factor,
            backoff_jitter=backoff_jitter,  # devices back from one outage do not retry in step
            backoff_max=10.0,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = _WatchedAdapter(self._watchdog, max_retries=retry, pool_maxsize=2)
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

    def abort(self) -> None:
        """Cut the request in flight, if any (safe from another thread): a stopping app does
        not wait for a slow endpoint; the recording stays in the spool for the next run."""
        self._watchdog.abort()

    def transcribe(
        self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE, prefix: str | None = None
    ) -> Transcript:
        """POST one recording; return its transcript or raise a CloudError (key scrubbed).
        `prefix`: the words the recording begins with (the keyword), sent as PREFIX_HEADER; a
        service that takes it answers without them (Transcript.prefix says so)."""
        try:
            return self._transcribe(samples, sample_rate, prefix)
        except CloudError as err:
            # `from None`: the chained library exception may quote the Authorization header
            raise type(err)(
                escape_controls(scrub(str(err), self._key)),
                status=err.status,
                retry_after=err.retry_after,
            ) from None
        except Exception as exc:  # noqa: BLE001 - any library failure is "unavailable", scrubbed
            message = f"request to {self._host} failed: {type(exc).__name__}: {exc}"
            raise EndpointUnavailable(escape_controls(scrub(message, self._key)[:500])) from None
        finally:
            self._watchdog.disarm()

    def _transcribe(self, samples: np.ndarray, sample_rate: int, prefix: str | None) -> Transcript:
        if self.body_format == "wav":
            body, content_type = wav_bytes(samples, sample_rate), "audio/wav"
        else:
            body, content_type = encode_json(samples, sample_rate), "application/json"
        headers = {"Content-Type": content_type}
        if prefix:
            headers[PREFIX_HEADER] = prefix
        t0 = time.monotonic()
        with self._mapped_errors():
            resp = self.session.post(
                self.endpoint,
                data=body,
                headers=headers,
                timeout=self.timeout,
                stream=True,  # read below, bounded in size
                allow_redirects=False,  # a redirect is a configuration fault, never followed
            )
            with resp:
                answer = self._read_answer(resp)
            if self._watchdog.fired:  # cut mid-headers, http.client may see a short answer
                raise EndpointUnavailable(self._cut_short())
        if prefix and resp.status_code == 400 and b'"invalid_prefix"' in answer[:2048]:
            # the prefix is a hint: a service that refuses this one transcribes without it
            log.warning("the endpoint refused the transcript prefix; sending without it")
            return self._transcribe(samples, sample_rate, None)
        round_trip_ms = (time.monotonic() - t0) * 1000.0
        return self._parse(resp, answer, len(samples) / sample_rate, round_trip_ms)

    @contextlib.contextmanager
    def _mapped_errors(self):
        """requests' and urllib3's exceptions as EndpointUnavailable with a one-line reason."""
        try:
            yield
        except CloudError:
            raise
        except requests.exceptions.ConnectTimeout as exc:
            raise EndpointUnavailable(f"cannot connect to {self._host}: timed out") from exc
        except requests.exceptions.ReadTimeout as exc:
            raise EndpointUnavailable(self._no_answer()) from exc
        except requests.exceptions.SSLError as exc:
            raise EndpointUnavailable(f"TLS error with {self._host}: {_reason(exc)}") from exc
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if self._watchdog.fired:
                raise EndpointUnavailable(self._cut_short()) from exc
            reason = getattr(exc.args[0] if exc.args else None, "reason", None)
            if isinstance(reason, ReadTimeoutError) or isinstance(exc, ReadTimeoutError):
                # with read retries at 0, urllib3 wraps a read timeout in MaxRetryError
                raise EndpointUnavailable(self._no_answer()) from exc
            raise EndpointUnavailable(f"cannot connect to {self._host}: {_reason(exc)}") from exc

    def _cut_short(self) -> str:
        return (
            f"{self._host} did not complete its answer within {self._watchdog.seconds:.0f} s "
            "(connection cut)"
        )

    def _no_answer(self) -> str:
        return f"{self._host} did not answer within {self.timeout[1]:.0f} s"

    def _read_answer(self, resp: requests.Response) -> bytes:
        """The answer's body, at most max_answer_bytes (more is a misconfigured endpoint)."""
        limit = self.max_answer_bytes
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise EndpointMisconfigured(
                f"{self._host} answered {resp.status_code} with {int(declared)} bytes "
                f"(more than {limit}): is the endpoint URL right?",
                status=resp.status_code,
            )
        parts, size = [], 0
        while chunk := resp.raw.read(64 * 1024, decode_content=True):
            size += len(chunk)
            if size > limit:
                raise EndpointMisconfigured(
                    f"{self._host} answered {resp.status_code} with more than {limit} bytes: "
                    "is the endpoint URL right?",
                    status=resp.status_code,
                )
            parts.append(chunk)
        return b"".join(parts)

    @property
    def _host(self) -> str:
        return urlsplit(self.endpoint).netloc

    def _parse(
        self, resp: requests.Response, answer: bytes, seconds: float, round_trip_ms: float
    ) -> Transcript:
        status = resp.status_code
        if status == 200:
            return self._transcript(answer, seconds, round_trip_ms)
        detail = _error_detail(answer)
        if status in (401, 403):
            raise AuthRejected(
                f"endpoint refused the key ({status}{detail}): check SCORING_KEY / --key-file",
                status=status,
            )
        if status in (408, 429) or status >= 500:
            raise EndpointUnavailable(
                f"endpoint answered {status}{detail} after retries",
                status=status,
                retry_after=_retry_after(resp),
            )
        if status in (400, 413, 415, 422) and _is_json_error(answer):
            raise AudioRejected(
                f"endpoint rejected the recording ({status}{detail})", status=status
            )
        if 300 <= status < 400:
            where = escape_controls(resp.headers.get("Location", "?"))
            raise EndpointMisconfigured(
                f"endpoint redirects ({status}) to {where[:200]}: not followed (a POST "
                "must not turn into a GET, nor https into http); set the final https URL",
                status=status,
            )
        raise EndpointMisconfigured(
            f"endpoint answered {status}{detail}: is {self.endpoint} the scoring URL?",
            status=status,
        )

    def _transcript(self, answer: bytes, seconds: float, round_trip_ms: float) -> Transcript:
        try:
            payload = json.loads(answer)
            if isinstance(payload, str):  # the write-up's script returned json.dumps(...) as a str
                payload = json.loads(payload)
            text = _result_text(payload)
            return Transcript(
                text=text.strip(),
                audio_seconds=_number(payload.get("audio_seconds"), seconds),
                round_trip_ms=round_trip_ms,
                inference_ms=_number(payload.get("inference_ms"), None),
                model=_text(payload.get("model")),
                engine=_text(payload.get("engine")),
                prefix=_text(payload.get("prefix")),
            )
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise EndpointMisconfigured(
                f"endpoint answered 200 without a transcript ({type(exc).__name__}: "
                f"{str(exc)[:80]}): "
                f"{_printable(answer[:160])!r}: is {self.endpoint} the scoring URL?",
                status=200,
            ) from None


def _result_text(payload: object) -> str:
    """The one rule for a transcript answer: an object whose "result" is a string. Anything
    else (a list of segments, an object, a number) is not a transcript of this contract, and
    printing its repr as one would hand the user garbage and drop the recording."""
    if not isinstance(payload, dict):
        raise TypeError(f"the answer is a {type(payload).__name__}, not an object")
    text = payload["result"]
    if not isinstance(text, str):
        raise TypeError(f"'result' is a {type(text).__name__}, not a string")
    return text


def _number(value: object, default: float | None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value) if value == value and abs(value) < 1e12 else default


def _text(value: object) -> str | None:
    return value[:200] if isinstance(value, str) else None


def escape_controls(text: str) -> str:
    """Outside text made safe for a terminal or a log line: control characters (ESC, BEL, CR,
    newline, C1...), line and paragraph separators and lone surrogates become visible escapes
    (`\\x1b`), so an endpoint cannot move the cursor, ring, forge a log line or crash a print."""
    return "".join(_escaped(c) for c in text)


def _escaped(char: str) -> str:
    if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return char


def _printable(data: bytes) -> str:
    return escape_controls(data.decode("utf-8", errors="replace").strip())


def _is_json_error(answer: bytes) -> bool:
    """The contract's error body {"error"|"message": ...}: the endpoint itself judged the
    recording (an HTML 400 from a proxy in between says nothing about it)."""
    try:
        body = json.loads(answer)
    except (ValueError, RecursionError):
        return False
    return isinstance(body, dict) and ("error" in body or "message" in body)


def _reason(exc: Exception) -> str:
    """`[Errno 111] Connection refused` rather than two lines of urllib3 pool wrapping."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    return found.group(0).strip() if found else text[:200]


def _error_detail(answer: bytes) -> str:
    """`: <error>: <message>` from the contract's JSON error body, or a bit of the text."""
    try:
        body = json.loads(answer)
    except (ValueError, RecursionError):
        text = _printable(answer)
        return f": {text[:160]}" if text else ""
    if isinstance(body, dict):
        parts = [escape_controls(str(body[k])[:200]) for k in ("error", "message") if body.get(k)]
        return ": " + ": ".join(parts) if parts else ""
    return f": {escape_controls(str(body)[:160])}"


def _retry_after(resp: requests.Response) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), uncapped: the spool waits it out."""
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, Retry().parse_retry_after(value))
    except Exception:  # noqa: BLE001 - urllib3 raises its own InvalidHeader for junk
        return None
