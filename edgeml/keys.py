"""The endpoint key: where it comes from, where it may be sent, and keeping it out of messages.

One set of rules for both clients of /score (the device app and cloudml/sample-client.py):

- it comes from the environment (SCORING_KEY) or a file (--key-file / SCORING_KEY_FILE), never
  from a flag (command lines show up in `ps` and shell histories) or from code;
- a file's trailing newline is dropped (a Kubernetes secret made from a file has one); any other
  whitespace or control character is refused, naming the problem but never the key;
- it is sent over https only, except to this machine (loopback), unless the user says so
  explicitly (SCORING_ALLOW_HTTP=1, for a private cluster network without TLS);
- `scrub()` removes it from any text before that text is logged, printed or stored.
"""

from __future__ import annotations

import logging
import os
import select
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit

log = logging.getLogger("edgeml.keys")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_KEY_FILE_BYTES = 64 * 1024
ALLOW_HTTP_ENV = "SCORING_ALLOW_HTTP"
KEY_FILE_SECONDS = 5.0  # a key file that is a pipe must deliver within this


class KeyProblem(ValueError):
    """The key (or where it should come from) is unusable; the message never contains it."""


def check_key(key: str, origin: str) -> str:
    """The key without surrounding whitespace; refuse what would break an HTTP header."""
    key = key.strip()
    if not key:
        raise KeyProblem(f"{origin} is empty")
    bad = [c for c in key if c.isspace() or ord(c) < 32 or ord(c) == 127]
    if bad:
        raise KeyProblem(
            f"{origin} holds whitespace or control characters inside the key; "
            "put the key alone on one line"
        )
    if not key.isascii():
        raise KeyProblem(f"{origin} holds non-ASCII characters; an endpoint key is ASCII")
    return key


def read_key(key_file: Path | None, env: Mapping[str, str] | None = None) -> str | None:
    """The key from `key_file` when given, else from SCORING_KEY; None when there is none."""
    env = os.environ if env is None else env
    if key_file is None:
        raw = env.get("SCORING_KEY", "")
        return check_key(raw, "SCORING_KEY") if raw.strip() else None
    try:
        mode, data = _read_bounded(key_file)
    except OSError as exc:
        raise KeyProblem(f"cannot read key file {key_file}: {exc.strerror or exc}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyProblem(f"key file {key_file} is larger than {MAX_KEY_FILE_BYTES} bytes")
    if mode & stat.S_IROTH:
        log.warning("key file %s is readable by every user (chmod o-r it)", key_file)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyProblem(f"key file {key_file} is not text") from None
    return check_key(text, f"key file {key_file}")


def _read_bounded(path: Path) -> tuple[int, bytes]:
    """(mode, at most MAX_KEY_FILE_BYTES + 1 bytes) of a key file, within KEY_FILE_SECONDS.

    Opened non-blocking: a plain open() of a FIFO nobody writes (or a device that never
    answers) waits forever, and the app would hang at start with no message. A pipe that is
    written (`--key-file <(pass show key)`) is read until its end or the deadline."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode):
            os.set_blocking(fd, True)
            return mode, os.read(fd, MAX_KEY_FILE_BYTES + 1)
        data = bytearray()
        deadline = time.monotonic() + KEY_FILE_SECONDS
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


def http_allowed(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get(ALLOW_HTTP_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def check_transport(endpoint: str, key: str | None, *, allow_http: bool = False) -> None:
    """Refuse to send a key over plain http to another machine (it would travel in clear text)."""
    parts = urlsplit(endpoint)
    if not key or parts.scheme != "http" or parts.hostname in LOOPBACK_HOSTS:
        return
    if allow_http:
        log.warning("sending the endpoint key over plain http to %s (%s=1)", parts.hostname,
                    ALLOW_HTTP_ENV)  # fmt: skip
        return
    raise KeyProblem(
        f"refusing to send the endpoint key over plain http to {parts.hostname}: use the "
        f"endpoint's https URI (or set {ALLOW_HTTP_ENV}=1 on a private network without TLS)"
    )


def _forms(key: str) -> list[str]:
    """The key as it can appear in text: itself, escaped by repr(), percent-encoded."""
    forms = {key, repr(key)[1:-1], quote(key, safe="")}
    return sorted((f for f in forms if f), key=len, reverse=True)


def scrub(text: str, key: str | None) -> str:
    """`text` with every occurrence of the key replaced (exceptions of HTTP libraries can quote
    the Authorization header, escaped or not)."""
    if not key or not text:
        return text
    for form in _forms(key):
        text = text.replace(form, "[key]")
    return text


def hide_from_children(env: os._Environ | dict = os.environ) -> None:
    """Drop SCORING_KEY from this process's environment once it is read: every program the app
    starts (the .eim keyword model is a third party's executable, started by the SDK with our
    environment) would otherwise inherit the key and could read or leak it."""
    env.pop("SCORING_KEY", None)


class ScrubFilter(logging.Filter):
    """Removes the key from every log record that passes a handler: its message, its arguments
    and its traceback text (a library's exception can quote the Authorization header)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = scrub(message, self.key), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, self.key)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, self.key)
        return True


def install_log_scrubber(key: str | None, logger: logging.Logger | None = None) -> None:
    """Scrub the key from everything the handlers of `logger` (default: root) write.

    On the handlers, not the loggers: a filter on a logger does not see records that other
    loggers (urllib3's, requests') propagate to the root's handlers.
    """
    if not key:
        return
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, ScrubFilter) and f.key == key for f in handler.filters):
            handler.addFilter(ScrubFilter(key))
