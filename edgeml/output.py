"""Where results go: one line per transcript on stdout, one JSON record per line in --jsonl,
and, with --save-dir, a copy of every recording.

stdout carries transcripts and nothing else (logs go to stderr), so `edgeml | while read ...`
works as a pipeline. The --jsonl record is the machine-readable trail: one line per outcome
(delivered or rejected), with the recording's id, timings and the text.

Calling an Output COMMITS an outcome: delivery removes the spooled recording only after the call
returned, so the --jsonl line is appended and fsynced first. A kill between the two re-sends the
recording on the next start; its id is then found among the last lines of the file (each line's
head is read, so a record of any length counts) and it is neither printed nor written again: exactly one line per recording id in --jsonl, across crashes.
(stdout cannot be read back: there, a recording re-sent after a kill in that instant is printed
again unless --jsonl is given.) A line that cannot be written raises OutputError, and the
recording stays in the spool until it can.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import stat
import sys
import threading
import time
import unicodedata
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgeml.audioformat import write_wav
from edgeml.cloudml import escape_controls
from edgeml.delivery import Outcome
from edgeml.keywordtext import strip_keyword

log = logging.getLogger("edgeml")

SCAN_BYTES = 64 << 20  # how far back --jsonl is searched for its last lines' ids at start
_ID = re.compile(rb'\{(?:"time": (?:null|"[^"\\]*"), )?"id": "([0-9A-Za-z_-]{1,64})"')
REMEMBERED_IDS = 4096
STDOUT_PATIENCE = 30.0  # a stdout nobody reads this long gets the transcript in --jsonl only


class OutputError(OSError):
    """The --jsonl line could not be written: the outcome is not committed."""


@dataclass(frozen=True)
class OutputConfig:
    jsonl: Path | None = None  # append one JSON record per outcome here
    save_dir: Path | None = None  # keep a copy of every recording here


class Output:
    """Prints transcripts, appends the JSON records, saves copies of recordings."""

    def __init__(self, config: OutputConfig | None = None) -> None:
        self.config = config or OutputConfig()
        self._lock = threading.Lock()
        self._order: deque[str] = deque()
        self._written: set[str] = set()  # ids with a line in --jsonl
        self._printed: set[str] = set()  # ids printed by this process
        self._stopping = threading.Event()
        if self.config.jsonl is not None:
            for rid in _ids_in_tail(self.config.jsonl):
                self._remember(rid)

    def save(self, samples: np.ndarray) -> Path | None:
        """A copy of the recording in --save-dir (None without one)."""
        if self.config.save_dir is None:
            return None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%f")[:-3]
        return write_wav(self.config.save_dir / f"rec-{stamp}.wav", samples)

    def __call__(self, outcome: Outcome) -> None:
        """Commit one finished recording (delivered or rejected). Raises OutputError."""
        rid = outcome.record.id if outcome.record is not None else None
        with self._lock:
            if rid is not None and rid in self._written:
                log.info("recording %s is already in %s: not recorded twice", rid,
                         self.config.jsonl)  # fmt: skip
                return
            text = printed_text(outcome)
            if outcome.transcript is not None and not text:
                log.info("recording %s: the endpoint heard no words (empty transcript); "
                         "nothing printed", outcome.seq)  # fmt: skip
            if text and (rid is None or rid not in self._printed):
                if self._print(text):
                    self._mark_printed(rid)
                elif self._stopping.is_set():  # not committed: the next run prints it
                    raise OutputError("the app stopped before the transcript was printed")
            self._write(_json_record(outcome))
            if rid is not None and self.config.jsonl is not None:
                self._remember(rid)

    def write(self, record: dict) -> None:
        """Append one record to --jsonl (fsynced). Raises OutputError."""
        with self._lock:
            self._write(record)

    def _mark_printed(self, rid: str | None) -> None:
        if rid is None:
            return
        if len(self._printed) >= REMEMBERED_IDS:  # only a retry in flight matters
            self._printed.clear()
        self._printed.add(rid)

    def printed(self, rid: str) -> bool:
        """Whether this process printed recording `rid`'s transcript (--once exits 0 on it)."""
        with self._lock:
            return rid in self._printed

    def stop(self) -> None:
        """The app stops: a print blocked on a stdout nobody reads gives up at once (safe from
        a signal handler: sets a flag only)."""
        self._stopping.set()

    def _print(self, text: str) -> bool:
        """Print one transcript line; False (logged) when it could not be. A closed pipe must
        not keep the spool forever, a pipe nobody reads must not hold up the app's stop, and
        what stdout cannot encode (a lone surrogate from the network) is replaced, not lost."""
        line = one_line(text) + "\n"
        try:
            encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
            data = line.encode(encoding, errors="replace")
            done = _write_stdout(data, self._stopping, STDOUT_PATIENCE)
        except (OSError, ValueError, LookupError) as exc:
            log.error("cannot print the transcript to stdout: %s", exc)
            return False
        if not done:
            why = "the app is stopping" if self._stopping.is_set() else (
                f"nobody read stdout for {STDOUT_PATIENCE:.0f} s")  # fmt: skip
            log.error("transcript not printed (%s): %s", why, escape_controls(line[:200]))
        return done

    def _write(self, record: dict) -> None:
        path = self.config.jsonl
        if path is None:
            return
        line = (json.dumps(record) + "\n").encode()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with os.fdopen(_open_jsonl(path), "ab+") as f:
                if f.tell() > 0:  # a power cut can leave a torn last line: start a new one
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        line = b"\n" + line
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OutputError:
            raise
        except OSError as exc:
            raise OutputError(f"cannot append to {path}: {exc.strerror or exc}") from exc

    def _remember(self, rid: str) -> None:
        if rid in self._written:
            return
        self._written.add(rid)
        self._order.append(rid)
        while len(self._order) > REMEMBERED_IDS:
            self._written.discard(self._order.popleft())


def jsonl_problem(path: Path) -> str | None:
    """Why --jsonl `path` cannot take records (None: it can), found at start rather than
    after the first transcript: a folder, /dev/full or a path under a regular file used to
    print the transcript, fail its commit and end as "no answer from the endpoint" a minute
    later. The file is made (empty) here if it is not there yet."""
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        return f"cannot write --jsonl {path}: {blocker} is a file, not a folder"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            return f"--jsonl {path} is a folder, not a file"
        os.close(_open_jsonl(path))  # never blocks: a FIFO nobody reads hung the start
    except OutputError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot write --jsonl {path}: {exc.strerror or exc}"
    return None


def _open_jsonl(path: Path) -> int:
    """An fd of the --jsonl file for appending (and reading its last byte), opened without
    blocking; OutputError when it is not a regular file (a FIFO, /dev/full, a device)."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OutputError(f"--jsonl {path} is not a regular file (a device or a pipe)")
    os.set_blocking(fd, True)
    return fd


def printed_text(outcome: Outcome) -> str:
    """The transcript as the user reads it: without the keyword, which the recording keeps
    (recorder.py) so that no word after it is cut (keywordtext.py)."""
    if outcome.transcript is None:
        return ""
    info = outcome.record.info if outcome.record is not None else None
    keyword = info.keyword if info is not None and info.keyword_in_audio else None
    return strip_keyword(outcome.transcript.text, keyword)


def one_line(text: str) -> str:
    """The transcript as one printable line: it comes from the network, and stdout is a
    terminal or a `while read` pipeline. Line breaks of any kind (\\n, \\r, U+2028...) become
    spaces and control characters (ESC, BEL, NUL, DEL, C1) go, so an endpoint cannot split one
    transcript into two lines or send escape sequences to the terminal. --jsonl keeps the text
    as it came (JSON escapes it)."""
    spaced = " ".join(text.split())
    return "".join(c for c in spaced if unicodedata.category(c) != "Cc")


def _write_stdout(data: bytes, stopping: threading.Event, patience: float) -> bool:
    """Write `data` to stdout without ever blocking for long: False when the app stops, or
    nobody reads for `patience` s. Pieces of at most PIPE_BUF bytes go out only once poll()
    says there is room, and a pipe with room takes such a piece whole without blocking."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # stdout replaced by an object (tests, IDEs)
        sys.stdout.write(data.decode("utf-8", errors="replace"))
        sys.stdout.flush()
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    deadline = time.monotonic() + patience
    view = memoryview(data)
    while view:
        if stopping.is_set() or time.monotonic() > deadline:
            return False
        events = poller.poll(100)
        if not events:
            continue
        if events[0][1] & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
            raise BrokenPipeError("stdout is closed")
        view = view[os.write(fd, view[: select.PIPE_BUF]) :]
    return True


def _ids_in_tail(path: Path) -> list[str]:
    """Recording ids on the last lines of a --jsonl file, newest last. Each line's head is read
    for its id (records start `{"time": ..., "id": ...}`), so a record of any length counts:
    reading only the last 256 KB missed the id of a long last record, and the recording
    re-sent after a kill was written twice. Bounded: REMEMBERED_IDS lines, SCAN_BYTES."""
    try:
        with open(path, "rb") as f:
            ids = []
            starts = _line_starts(f, REMEMBERED_IDS, SCAN_BYTES)
            ends = [f.seek(0, os.SEEK_END), *starts]  # each line ends where the newer starts
            for start, end in zip(starts, ends, strict=False):
                f.seek(max(start, end - 2))
                if f.read(2) != b"}\n":  # torn by a power cut: not a record
                    continue
                f.seek(start)
                if found := _ID.match(f.read(256)):
                    ids.append(found.group(1).decode())
            return ids[::-1]
    except OSError:
        return []


def _line_starts(f, count: int, budget: int) -> list[int]:
    """Offsets where the last `count` lines of `f` start, newest first, reading backwards at
    most `budget` bytes (a line reaching further back is not counted)."""
    end = f.seek(0, os.SEEK_END)
    starts, pos = [], end
    while pos > 0 and len(starts) < count and end - pos < budget:
        size = min(64 * 1024, pos)
        pos -= size
        f.seek(pos)
        chunk = f.read(size)
        i = chunk.rfind(b"\n")
        while i >= 0:
            if pos + i + 1 < end:
                starts.append(pos + i + 1)
            i = chunk.rfind(b"\n", 0, i)
    if pos == 0 and end > 0:
        starts.append(0)
    return starts[:count]


def _json_record(outcome: Outcome) -> dict:
    rec = outcome.record
    info = rec.info if rec is not None else None
    record = {
        "time": rec.created if rec else None,
        "id": rec.id if rec else None,
        "seq": outcome.seq,
        "status": outcome.status.value,
        "keyword": info.keyword if info else None,
        "keyword_score": info.keyword_score if info else None,
        "audio_seconds": rec.audio_seconds if rec else None,
        "backlog": outcome.backlog,
    }
    t = outcome.transcript
    if t is not None:
        record.update(
            latency_s=round(time.time() - rec.created_ts, 3) if rec else None,
            round_trip_ms=round(t.round_trip_ms, 1),
            inference_ms=t.inference_ms,
            model=t.model,
            engine=t.engine,
            text=printed_text(outcome),
            heard=t.text,  # the service's text, before the keyword's letter match
        )
        if t.prefix:
            record["prefix"] = t.prefix  # the service decoded after these words, left out
    else:
        record.update(error=str(outcome.error), text=None)
    if info is not None and info.saved_copy:
        record["wav"] = info.saved_copy
    if info is not None and info.continues:
        record["continues"] = info.continues  # speech resumed after that recording ended
    return record
