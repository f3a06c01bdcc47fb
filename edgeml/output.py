"""Where results go: one line per transcript on stdout, one JSON record per line in --jsonl,
and, with --save-dir, a copy of every recording.

stdout carries transcripts and nothing else (logs go to stderr), so `edgeml | while read ...`
works as a pipeline. The --jsonl record is the machine-readable trail: one line per outcome
(delivered or rejected), with the recording's id, timings and the text.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgeml.audioformat import write_wav
from edgeml.delivery import Outcome

log = logging.getLogger("edgeml")


@dataclass(frozen=True)
class OutputConfig:
    jsonl: Path | None = None  # append one JSON record per outcome here
    save_dir: Path | None = None  # keep a copy of every recording here


class Output:
    """Prints transcripts, appends the JSON records, saves copies of recordings."""

    def __init__(self, config: OutputConfig | None = None) -> None:
        self.config = config or OutputConfig()
        self._lock = threading.Lock()

    def save(self, samples: np.ndarray) -> Path | None:
        """A copy of the recording in --save-dir (None without one)."""
        if self.config.save_dir is None:
            return None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%f")[:-3]
        return write_wav(self.config.save_dir / f"rec-{stamp}.wav", samples)

    def __call__(self, outcome: Outcome) -> None:
        """Delivery calls this for every recording that is done (delivered or rejected)."""
        record = _json_record(outcome)
        if outcome.transcript is not None and outcome.transcript.text:
            with self._lock:
                print(outcome.transcript.text, flush=True)
        self.write(record)

    def write(self, record: dict) -> None:
        if self.config.jsonl is None:
            return
        with self._lock:
            try:
                self.config.jsonl.parent.mkdir(parents=True, exist_ok=True)
                with open(self.config.jsonl, "a") as f:
                    f.write(json.dumps(record) + "\n")
            except OSError as exc:
                log.error("cannot append to %s: %s", self.config.jsonl, exc)


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
            text=t.text,
        )
    else:
        record.update(error=str(outcome.error), text=None)
    if info is not None and info.saved_copy:
        record["wav"] = info.saved_copy
    return record
