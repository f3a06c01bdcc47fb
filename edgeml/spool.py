"""The spool: recordings waiting for the endpoint, on disk, so none is lost.

Every recording is written here BEFORE it is sent and removed only after the endpoint has
answered with its transcript. A network outage, an endpoint restart, a killed app or a power
cut (the usual way a Pi stops) therefore lose nothing: on the next start the spool is sent,
oldest first.

On disk, one item is `<seq>.wav` (16-bit PCM) plus `<seq>.json` (time, attempts, last error,
keyword score). Both are written atomically (temp file, fsync, rename) and the JSON is written
last: an item exists exactly when its JSON does, so a half-written item is never sent and is
cleaned away on the next start. Sequence numbers, not clock times, give the order: a Pi has no
real-time clock and its time jumps at boot when NTP answers.

The spool has a size cap. When full, a new recording is refused LOUDLY (SpoolFull, logged as an
error by the caller) rather than silently dropping the oldest. Recordings the endpoint will
never accept (400/413/415) move to `rejected/` for inspection. A lock file keeps a second app
instance away from the same spool (two senders would deliver items twice).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
_ITEM = re.compile(r"^(\d{10})\.json$")
MAX_REJECTED = 100


class SpoolFull(RuntimeError):
    """The spool holds `max_bytes` already; the new recording was NOT stored."""


class SpoolLocked(RuntimeError):
    """Another process uses this spool folder."""


@dataclass
class SpoolItem:
    seq: int
    wav_path: Path
    meta_path: Path
    meta: dict

    @property
    def attempts(self) -> int:
        return int(self.meta.get("attempts", 0))

    def samples(self) -> np.ndarray:
        data, _ = sf.read(str(self.wav_path), dtype="int16")
        return data


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def wav_bytes(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, np.asarray(samples, dtype=np.int16), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class Spool:
    """A folder of recordings waiting for delivery, oldest first."""

    def __init__(self, directory: str | Path, *, max_bytes: int = 100 * 1024 * 1024) -> None:
        self.dir = Path(directory).expanduser()
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"cannot create spool folder {self.dir}: {exc.strerror}") from exc
        self._lockfile = open(self.dir / ".lock", "a")  # noqa: SIM115 - held for our lifetime
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lockfile.close()
            raise SpoolLocked(
                f"spool folder {self.dir} is in use by another edgeml process"
            ) from None
        self._clean()
        self._next_seq = max((item.seq for item in self.items()), default=0) + 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lockfile, fcntl.LOCK_UN)
        self._lockfile.close()

    def _clean(self) -> None:
        """Remove what a crash mid-write or mid-remove left: temp files, WAVs without JSON."""
        for path in self.dir.iterdir():
            temp = path.name.startswith(".") and path.name.endswith(".tmp")
            orphan = path.suffix == ".wav" and not path.with_suffix(".json").exists()
            if temp or orphan:
                path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ reading
    def _seqs(self) -> list[int]:
        """Sequence numbers of the stored items, oldest first (names only: cheap on an SD card)."""
        return sorted(int(m.group(1)) for p in self.dir.iterdir() if (m := _ITEM.match(p.name)))

    def _load(self, seq: int) -> SpoolItem | None:
        meta_path = self.dir / f"{seq:010d}.json"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return None
        return SpoolItem(seq, meta_path.with_suffix(".wav"), meta_path, meta)

    def items(self) -> list[SpoolItem]:
        """Every stored recording, oldest first."""
        return [item for seq in self._seqs() if (item := self._load(seq)) is not None]

    def oldest(self) -> SpoolItem | None:
        """The next recording to send, reading only its own JSON (the backlog may be long)."""
        for seq in self._seqs():
            item = self._load(seq)
            if item is not None:
                return item
            self._quarantine(seq)  # damaged metadata: never let it block the queue
        return None

    def _quarantine(self, seq: int) -> None:
        rejected = self.dir / "rejected"
        with self._lock:
            rejected.mkdir(exist_ok=True)
            for suffix in (".json", ".wav"):
                path = self.dir / f"{seq:010d}{suffix}"
                if path.exists():
                    os.replace(
                        path, rejected / f"damaged-{time.strftime('%Y%m%d-%H%M%S')}-{path.name}"
                    )

    def __len__(self) -> int:
        return len(self._seqs())

    def size_bytes(self) -> int:
        total = 0
        for path in self.dir.iterdir():
            if path.suffix in (".wav", ".json") and path.is_file():
                with contextlib.suppress(OSError):
                    total += path.stat().st_size
        return total

    # ------------------------------------------------------------------ writing
    def add(self, samples: np.ndarray, **meta) -> SpoolItem:
        """Store a recording durably. Raises SpoolFull (the recording is then NOT stored)."""
        data = wav_bytes(samples)
        with self._lock:
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
            full_meta = {
                "seq": seq,
                "created": datetime.fromtimestamp(now, timezone.utc).isoformat(
                    timespec="milliseconds"
                ),
                "created_ts": now,
                "audio_seconds": round(len(samples) / SAMPLE_RATE, 3),
                "attempts": 0,
                "last_error": None,
                **meta,
            }
            wav_path = self.dir / f"{seq:010d}.wav"
            meta_path = wav_path.with_suffix(".json")
            atomic_write(wav_path, data)
            atomic_write(meta_path, json.dumps(full_meta).encode())
            return SpoolItem(seq, wav_path, meta_path, full_meta)

    def record_attempt(self, item: SpoolItem, error: str) -> None:
        """Count a failed delivery attempt (kept across restarts)."""
        with self._lock:
            if not item.meta_path.exists():
                return
            item.meta["attempts"] = item.attempts + 1
            item.meta["last_error"] = error
            item.meta["last_attempt_ts"] = time.time()
            atomic_write(item.meta_path, json.dumps(item.meta).encode())

    def remove(self, item: SpoolItem) -> None:
        """Delivered: forget the item (JSON first, so it stops existing in one step)."""
        with self._lock:
            item.meta_path.unlink(missing_ok=True)
            _fsync_dir(self.dir)
            item.wav_path.unlink(missing_ok=True)

    def reject(self, item: SpoolItem, reason: str) -> Path:
        """The endpoint will never take this one: move it to rejected/ with the reason."""
        rejected = self.dir / "rejected"
        with self._lock:
            rejected.mkdir(exist_ok=True)
            item.meta["rejected"] = reason
            stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{item.seq:010d}"  # seqs restart at 1
            target = rejected / f"{stem}.wav"
            os.replace(item.wav_path, target)
            atomic_write(rejected / f"{stem}.json", json.dumps(item.meta).encode())
            item.meta_path.unlink(missing_ok=True)
            _fsync_dir(self.dir)
            kept = sorted(rejected.glob("*.json"))
            for old in kept[:-MAX_REJECTED]:
                old.unlink(missing_ok=True)
                old.with_suffix(".wav").unlink(missing_ok=True)
            return target
