"""The spool: recordings waiting for the endpoint, on disk, so none is lost.

Every recording is written here BEFORE it is sent and removed only after the endpoint has
answered with its transcript. A network outage, an endpoint restart, a killed app or a power
cut (the usual way a Pi stops) therefore lose nothing: on the next start the spool is sent,
oldest first.

On disk, one item is `<seq>.wav` (16-bit PCM) plus `<seq>.json` (its SpoolRecord: id, time,
attempts, last error, keyword score). Both are written atomically (temp file, fsync, rename), the
WAV first and the JSON last: an item exists exactly when its JSON does. Removal goes the other
way round (WAV, then JSON), so what a crash can leave is unambiguous on the next start: a WAV
without its JSON is a whole recording whose record was not written yet (its record is rebuilt and
it is sent), a JSON without its WAV is an item whose removal was cut short (set aside). A record
that cannot be read back as a SpoolRecord is moved aside to rejected/ (as `damaged-...`) and
never blocks the queue. Sequence numbers, not clock times, give the order: a Pi has no
real-time clock and its time jumps at boot when NTP answers.

Disk errors (a full card, a card remounted read-only) never pass silently: `add` raises
SpoolFull (the subclass SpoolUnwritable) and leaves no partial file; `record_attempt`, `remove`
and `reject` raise OSError for the caller (delivery) to log and survive.

The spool has a size cap. When full, a new recording is refused LOUDLY (SpoolFull, logged as an
error by the caller) rather than silently dropping the oldest. Recordings the endpoint will
never accept (400/413/415) move to `rejected/` for inspection. A lock file keeps a second app
instance away from the same spool (two senders would deliver items twice).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import glob
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import soundfile as sf

from edgeml.audioformat import SAMPLE_RATE, wav_bytes

log = logging.getLogger("edgeml.spool")

_ITEM = re.compile(r"^(\d{10})\.json$")
_WAV = re.compile(r"^(\d{10})\.wav$")
_TMP = re.compile(r"^\.\d{10}\.(wav|json)\.tmp$")  # what atomic_write leaves if cut short
MARKER = ".edgeml-spool"  # made by the spool in its folder: the folder is the spool's
_OWN = re.compile(r"^(\d{10}\.(wav|json)|\.\d{10}\.(wav|json)\.tmp|\.lock|rejected)$")
MAX_REJECTED = 100
MAX_RECORD_BYTES = 64 * 1024  # a record is a few hundred bytes; anything larger is damage
MAX_ITEM_SECONDS = 600.0  # a recording is at most minutes; a longer WAV in the spool is damage


def default_spool_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "edgeml" / "spool"


@dataclass(frozen=True)
class SpoolConfig:
    dir: Path = field(default_factory=default_spool_dir)
    max_mb: float = 100.0  # size cap: a full spool refuses new recordings loudly


@dataclass(frozen=True)
class RecordingInfo:
    """What the app knows about a recording when it hands it over for delivery."""

    keyword: str | None = None
    keyword_score: float | None = None
    end_reason: str | None = None
    saved_copy: str | None = None  # where --save-dir put a copy
    keyword_in_audio: bool = False  # the recording starts with the keyword (recorder.py)
    continues: str | None = None  # the id of the recording this one continues (main.py)


@dataclass(frozen=True)
class SpoolRecord:
    """The JSON stored beside each spooled WAV: who the recording is and how delivery went."""

    seq: int
    id: str  # stays the recording's identity across restarts (seqs restart when the spool empties)
    created: str  # ISO 8601 UTC
    created_ts: float
    audio_seconds: float
    info: RecordingInfo = field(default_factory=RecordingInfo)
    attempts: int = 0
    last_error: str | None = None
    last_attempt_ts: float | None = None
    rejected: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SpoolRecord:
        """Parse and check every field's type; ValueError names what is wrong."""
        obj = json.loads(data)
        if not isinstance(obj, dict):
            raise ValueError(f"a spool record is a JSON object, not {type(obj).__name__}")
        info = obj.get("info") or {}
        if not isinstance(info, dict):
            raise ValueError("'info' is not an object")
        record = cls(
            **{
                f.name: obj[f.name]
                for f in dataclasses.fields(cls)
                if f.name in obj and f.name != "info"
            },
            info=RecordingInfo(**{k: v for k, v in info.items() if k in _INFO_FIELDS}),
        )
        _check_types(record)
        _check_types(record.info)
        return record


_INFO_FIELDS = {f.name for f in dataclasses.fields(RecordingInfo)}
_TYPES = {
    "seq": int, "id": str, "created": str, "created_ts": float, "audio_seconds": float,
    "attempts": int, "last_error": str, "last_attempt_ts": float, "rejected": str,
    "keyword": str, "keyword_score": float, "end_reason": str, "saved_copy": str,
    "continues": str,
}  # fmt: skip
_OPTIONAL = {"last_error", "last_attempt_ts", "rejected", "keyword", "keyword_score",
             "end_reason", "saved_copy", "continues"}  # fmt: skip


def _check_types(obj) -> None:
    for f in dataclasses.fields(obj):
        if f.name not in _TYPES:
            continue
        value, kind = getattr(obj, f.name), _TYPES[f.name]
        if value is None and f.name in _OPTIONAL:
            continue
        ok = isinstance(value, (int, float)) if kind is float else isinstance(value, kind)
        if not ok or isinstance(value, bool):
            raise ValueError(f"field {f.name!r} should be {kind.__name__}, got {value!r:.40}")


def _prune(rejected: Path, keep: str) -> None:
    """At most MAX_REJECTED items in rejected/, the OLDEST (by mtime) going first and `keep`,
    the one just set aside, never. Names do not say age: `damaged-*` sorted after the dated
    names, and pruning by name deleted each new rejection at once."""
    groups: dict[str, float] = {}
    for path in rejected.iterdir():
        with contextlib.suppress(OSError):
            if path.is_file() and path.stem != keep:
                groups[path.stem] = max(groups.get(path.stem, 0.0), path.stat().st_mtime)
    excess = len(groups) + 1 - MAX_REJECTED
    for stem in sorted(groups, key=groups.__getitem__)[: max(0, excess)]:
        for path in rejected.glob(f"{glob.escape(stem)}.*"):
            if path.stem == stem:
                path.unlink(missing_ok=True)


class SpoolFull(RuntimeError):
    """The spool holds `max_bytes` already; the new recording was NOT stored."""


class SpoolUnwritable(SpoolFull):
    """The disk refused the new recording (full, read-only, gone); it was NOT stored."""


class SpoolNotOurs(ValueError):
    """The folder holds files the spool did not make: it would send, move or delete them."""


def claim(directory: Path) -> None:
    """Make `directory` the spool's, or raise SpoolNotOurs. The spool sends and deletes what
    it finds, so it takes only an empty folder, one it marked (MARKER), or one an earlier
    version made (its lock file and nothing but its own names); never the root. A user's
    folder (a `1733555555.wav`, a `.thesis.tmp`, a JSON) was sent, deleted and moved."""
    if directory.resolve() == Path(directory.anchor or "/"):
        raise SpoolNotOurs(f"--spool-dir {directory} is the root folder: choose a folder of "
                           "its own for the spool, e.g. ~/.local/state/edgeml/spool")  # fmt: skip
    if (directory / MARKER).is_file():
        return
    names = os.listdir(directory)
    legacy = ".lock" in names and all(_OWN.match(name) for name in names)
    if names and not legacy:
        shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
        raise SpoolNotOurs(
            f"--spool-dir {directory} holds files the spool did not make ({shown}); the spool "
            "sends and deletes what its folder holds, so it takes only an empty folder or its "
            "own: choose an empty or new folder"
        )
    try:
        atomic_write(directory / MARKER, b"edgeml spool: files here are sent and deleted\n")
    except OSError as exc:  # a read-only disk: what it holds is still ours to send
        log.error("cannot mark spool folder %s as the spool's: %s", directory, exc)


class SpoolLocked(RuntimeError):
    """Another process uses this spool folder."""


@dataclass
class SpoolItem:
    seq: int
    wav_path: Path
    meta_path: Path
    record: SpoolRecord

    @property
    def attempts(self) -> int:
        return self.record.attempts

    def samples(self) -> np.ndarray:
        """The recording; ValueError/OSError when the WAV is missing, damaged or absurd."""
        with sf.SoundFile(str(self.wav_path)) as f:
            if f.samplerate != SAMPLE_RATE or f.channels != 1:
                raise ValueError(f"not 16 kHz mono ({f.samplerate} Hz, {f.channels} ch)")
            if f.frames > MAX_ITEM_SECONDS * SAMPLE_RATE:
                raise ValueError(f"{f.frames / SAMPLE_RATE:.0f} s long: not a recording")
            return f.read(dtype="int16")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk: leave no partial file behind
            tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class Spool:
    """A folder of recordings waiting for delivery, oldest first."""

    def __init__(
        self, directory: str | Path, *, max_bytes: int = int(SpoolConfig.max_mb * 1e6)
    ) -> None:
        self.dir = Path(directory).expanduser()
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._unreadable: set[int] = set()  # damaged records that could not be moved aside
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"cannot create spool folder {self.dir}: {exc.strerror}") from exc
        claim(self.dir)  # before the lock file: a user's folder gets nothing of ours
        try:
            self._lockfile = os.open(self.dir / ".lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        except OSError:  # a read-only disk: the folder itself carries the lock
            self._lockfile = os.open(self.dir, os.O_RDONLY)
            log.error("spool folder %s is not writable: what it holds is sent, new recordings "
                      "cannot be stored", self.dir)  # fmt: skip
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lockfile)
            raise SpoolLocked(
                f"spool folder {self.dir} is in use by another edgeml process"
            ) from None
        self._clean()
        self._next_seq = max((item.seq for item in self.items()), default=0) + 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lockfile, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(self._lockfile)

    def _clean(self) -> None:
        """Sort out what a crash mid-write or mid-remove left (see the module docstring)."""
        for path in list(self.dir.iterdir()):
            try:
                if _TMP.match(path.name):
                    path.unlink(missing_ok=True)
                elif _WAV.match(path.name) and not path.with_suffix(".json").exists():
                    self._recover(path)
                elif _ITEM.match(path.name) and not path.with_suffix(".wav").exists():
                    self._set_aside(path, "damaged")
            except OSError as exc:  # a read-only disk: left as it is (an orphan is not sent)
                log.error("cannot sort out %s in the spool: %s", path.name, exc)

    def _recover(self, wav_path: Path) -> None:
        """A whole WAV whose record was never written: give it one, so it is sent."""
        try:
            info = sf.info(str(wav_path))
            ok = info.samplerate == SAMPLE_RATE and info.channels == 1 and info.frames > 0
            created = wav_path.stat().st_mtime
        except (OSError, RuntimeError, ValueError):
            ok = False
        if not ok:
            self._set_aside(wav_path, "damaged")
            return
        record = SpoolRecord(
            seq=int(wav_path.stem),
            id=uuid.uuid4().hex,
            created=datetime.fromtimestamp(created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            created_ts=created,
            audio_seconds=round(info.frames / SAMPLE_RATE, 3),
            info=RecordingInfo(end_reason="recovered"),
        )
        atomic_write(wav_path.with_suffix(".json"), record.to_json())

    def _set_aside(self, path: Path, why: str) -> None:
        rejected = self.dir / "rejected"
        rejected.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        os.replace(path, rejected / f"{why}-{stamp}-{uuid.uuid4().hex[:6]}-{path.name}")

    # ------------------------------------------------------------------ reading
    def _seqs(self) -> list[int]:
        """Sequence numbers of the stored items, oldest first (names only: cheap on an SD card).
        A folder deleted under the app (a cleaner, tmpfiles.d) holds nothing."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        found = (int(m.group(1)) for name in names if (m := _ITEM.match(name)))
        return sorted(seq for seq in found if seq not in self._unreadable)

    def _load(self, seq: int) -> SpoolItem | None:
        """The item `seq`, or None when its record is missing or damaged."""
        meta_path = self.dir / f"{seq:010d}.json"
        try:
            with open(meta_path, "rb") as f:
                data = f.read(MAX_RECORD_BYTES + 1)
            if len(data) > MAX_RECORD_BYTES:
                return None
            record = SpoolRecord.from_json(data)
        except (OSError, ValueError, TypeError, RecursionError):
            return None
        return SpoolItem(seq, meta_path.with_suffix(".wav"), meta_path, record)

    def items(self) -> list[SpoolItem]:
        """Every stored recording, oldest first."""
        return [item for seq in self._seqs() if (item := self._load(seq)) is not None]

    def oldest(self, exclude: Collection[str] = ()) -> SpoolItem | None:
        """The next recording to send, reading only its own JSON (the backlog may be long).

        `exclude`: ids the caller is done with although their files are still here (a removal
        the disk refused); they are skipped, not sent again.
        """
        for seq in self._seqs():
            item = self._load(seq)
            if item is None:
                self._quarantine(seq)  # damaged metadata: never let it block the queue
            elif item.record.id not in exclude:
                return item
        return None

    def _quarantine(self, seq: int) -> None:
        with self._lock:
            for suffix in (".json", ".wav"):
                path = self.dir / f"{seq:010d}{suffix}"
                if path.exists():
                    try:
                        self._set_aside(path, "damaged")
                    except OSError:  # a read-only disk: leave it, never send it
                        self._unreadable.add(seq)

    def __len__(self) -> int:
        return len(self._seqs())

    def size_bytes(self) -> int:
        total = 0
        if not self.dir.is_dir():
            return 0
        for path in self.dir.iterdir():
            if path.suffix in (".wav", ".json") and path.is_file():
                with contextlib.suppress(OSError):
                    total += path.stat().st_size
        return total

    # ------------------------------------------------------------------ writing
    def add(self, samples: np.ndarray, info: RecordingInfo | None = None) -> SpoolItem:
        """Store a recording durably. Raises SpoolFull (the recording is then NOT stored)."""
        data = wav_bytes(samples)
        with self._lock:
            self._ensure_dir()
            size = self.size_bytes()
            if size + len(data) > self.max_bytes:
                raise SpoolFull(
                    f"spool {self.dir} is full ({size / 1e6:.1f} MB of "
                    f"{self.max_bytes / 1e6:.1f} MB, {len(self)} recordings): "
                    "new recording NOT saved; is the endpoint reachable?"
                )
            seq = self._next_seq
            self._next_seq += 1
            now = time.time()
            record = SpoolRecord(
                seq=seq,
                id=uuid.uuid4().hex,
                created=datetime.fromtimestamp(now, timezone.utc).isoformat(
                    timespec="milliseconds"
                ),
                created_ts=now,
                audio_seconds=round(len(samples) / SAMPLE_RATE, 3),
                info=info or RecordingInfo(),
            )
            wav_path = self.dir / f"{seq:010d}.wav"
            meta_path = wav_path.with_suffix(".json")
            try:
                atomic_write(wav_path, data)
                atomic_write(meta_path, record.to_json())
            except OSError as exc:
                for path in (meta_path, wav_path):  # no half item left behind
                    with contextlib.suppress(OSError):
                        path.unlink(missing_ok=True)
                raise SpoolUnwritable(
                    f"cannot write to spool {self.dir} ({exc.strerror or exc}): new recording "
                    "NOT saved; is the disk full or read-only?"
                ) from exc
            return SpoolItem(seq, wav_path, meta_path, record)

    def _ensure_dir(self) -> None:
        """The folder deleted while the app runs: made again (and locked again), so the next
        recording is stored rather than refused. Raises SpoolUnwritable when it cannot be."""
        if self.dir.is_dir():
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            lockfile = os.open(self.dir / ".lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        except OSError as exc:
            raise SpoolUnwritable(
                f"spool folder {self.dir} is gone and cannot be made again "
                f"({exc.strerror or exc}): new recording NOT saved"
            ) from exc
        with contextlib.suppress(OSError):
            fcntl.flock(lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with contextlib.suppress(OSError):
            atomic_write(self.dir / MARKER, b"edgeml spool: files here are sent and deleted\n")
        with contextlib.suppress(OSError):
            os.close(self._lockfile)
        self._lockfile = lockfile
        log.warning("spool folder %s was deleted while the app ran: made again", self.dir)

    def record_attempt(self, item: SpoolItem, error: str) -> None:
        """Count a failed delivery attempt (kept across restarts)."""
        with self._lock:
            if not item.meta_path.exists():
                return
            item.record = dataclasses.replace(
                item.record,
                attempts=item.attempts + 1,
                last_error=error,
                last_attempt_ts=time.time(),
            )
            atomic_write(item.meta_path, item.record.to_json())

    def remove(self, item: SpoolItem) -> None:
        """Delivered: forget the item. The WAV goes first: a crash in between leaves a record
        without audio (set aside at the next start), never audio without a record (which the
        next start would take for an unsent recording). Raises OSError on a refusing disk."""
        with self._lock:
            item.wav_path.unlink(missing_ok=True)
            _fsync_dir(self.dir)
            item.meta_path.unlink(missing_ok=True)
            _fsync_dir(self.dir)

    def reject(self, item: SpoolItem, reason: str) -> Path:
        """The endpoint will never take this one: move it to rejected/ with the reason."""
        rejected = self.dir / "rejected"
        with self._lock:
            rejected.mkdir(exist_ok=True)
            item.record = dataclasses.replace(item.record, rejected=reason)
            stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{item.seq:010d}"  # seqs restart at 1
            target = rejected / f"{stem}.wav"
            if item.wav_path.exists():  # a record whose audio is gone is set aside all the same
                os.replace(item.wav_path, target)
            atomic_write(rejected / f"{stem}.json", item.record.to_json())
            item.meta_path.unlink(missing_ok=True)
            _fsync_dir(self.dir)
            _prune(rejected, keep=stem)
            return target
