"""Speculative transcription: send the recording at a short pause, use the answer if that pause
was the end.

    Recorder --on_pause(samples, keyword kept)--> Speculator --its own CloudML request, the same
        transcript prefix as the final one--> (answer held back)
    Recorder <--the hint: what the answer's words say (turn.py)-- Speculator
    Delivery --transcribe(stored samples)--> SpeculativeClient --the held answer, or CloudML

Why: the transcript cannot be printed before the recording has ended (the speaker may go on),
and the end is only known after `silence_seconds` of quiet; the endpoint then needs its own
service time. Sending the recording as it stands at the first `trail_seconds` of a pause lets
the endpoint work while the recorder is still waiting to be sure: when the pause turns out to
be the end, the recording that is stored is exactly the audio that was sent (the recorder keeps
`trail_seconds` of quiet after the last speech, vad.EndpointConfig), and its answer is used.
The same answer is also a hint for the recorder while the pause lasts (`offer` returns it): its
words say whether the speaker looks finished (turn.verdict_of_text), and the recorder allows a
longer pause when they do not. The hint only moves when the recording ends; it never changes
which audio is stored or which answer is used for it.

What this does NOT change (the delivery guarantees, delivery.py and spool.py):
- Nothing is printed or recorded as delivered from here. An answer is only handed to Delivery
  when Delivery asks for the transcript of a recording it has already stored in the spool, and
  only for the very same samples (SHA-256 of the int16 audio); Delivery then removes it from the
  spool and prints it exactly as it does with the endpoint's own answer. A recording whose
  speculative answer failed, is still missing after `wait_seconds`, or never existed (the app
  was restarted, speech resumed after the pause) is sent the normal way.
- Stale guesses are dropped: a newer pause replaces an offer not yet sent, and at most `keep`
  answers are held (the oldest go first).
Cost: one extra request to the endpoint each time a speaker pauses mid-sentence for longer than
`trail_seconds` (its answer is discarded). The speculative client makes no quick retries: a
failed guess costs nothing but the normal request.

The interface Delivery needs is only `transcribe(samples, sample_rate) -> Transcript` and
`close()`, the two methods of CloudML it calls, so delivery.py is unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgeml.audioformat import SAMPLE_RATE
from edgeml.cloudml import CloudError, CloudML, Transcript
from edgeml.turn import Verdict, verdict_of_text

log = logging.getLogger("edgeml.speculative")


@dataclass(frozen=True)
class SpeculationConfig:
    enabled: bool = True
    wait_seconds: float = 10.0  # delivery waits this long for a speculative answer in flight
    keep: int = 4  # speculative answers held at most


def digest(samples: np.ndarray, prefix: str | None = None) -> str:
    """The key of one request: its samples and the transcript prefix it is sent with."""
    h = hashlib.sha256(np.ascontiguousarray(samples, dtype=np.int16).tobytes())
    h.update(b"\0" + (prefix or "").encode())
    return h.hexdigest()


_IN_FLIGHT = object()


class Speculator:
    """Sends offered recordings from one background thread and holds the answers."""

    def __init__(self, client: CloudML, config: SpeculationConfig | None = None) -> None:
        self.client = client
        self.config = config or SpeculationConfig()
        self._cond = threading.Condition()
        self._pending: tuple[str, np.ndarray, str | None] | None = None
        self._answers: OrderedDict[str, object] = OrderedDict()  # digest -> answer
        self._stop = False
        self.sent = 0
        self.used = 0
        self._thread = threading.Thread(target=self._run, name="speculative", daemon=True)
        self._thread.start()

    def offer(self, samples: np.ndarray, prefix: str | None = None) -> Callable[[], Verdict]:
        """The recording so far, at a pause (Recorder's on_pause), and the transcript prefix
        the final request will carry. Returns at once, with the turn hint for these samples
        (asked again while the pause lasts; never blocks)."""
        key = digest(samples, prefix)
        with self._cond:
            if key not in self._answers and not (self._pending and self._pending[0] == key):
                self._pending = (key, np.array(samples, dtype=np.int16), prefix)  # replaces one
                self._cond.notify_all()
        return lambda: self.verdict(key)

    def verdict(self, key: str) -> Verdict:
        """What the answer for the samples of digest `key` says about the end of the turn:
        PENDING while it is on its way, UNKNOWN when it failed, was dropped or never existed."""
        with self._cond:
            if self._pending is not None and self._pending[0] == key:
                return Verdict.PENDING
            answer = self._answers.get(key)
        if answer is _IN_FLIGHT:
            return Verdict.PENDING
        if isinstance(answer, Transcript):
            return verdict_of_text(answer.text)
        return Verdict.UNKNOWN

    def take(self, samples: np.ndarray, prefix: str | None = None) -> Transcript | None:
        """The answer for exactly `samples` sent with `prefix` (waiting up to wait_seconds if
        it is in flight), or None. An answer is handed out once."""
        key = digest(samples, prefix)
        deadline = time.monotonic() + self.config.wait_seconds
        with self._cond:
            while True:
                pending = self._pending is not None and self._pending[0] == key
                answer = self._answers.get(key)
                if not pending and answer is not _IN_FLIGHT:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop:
                    return None
                self._cond.wait(min(remaining, 0.5))
            answer = self._answers.pop(key, None)
        if isinstance(answer, Transcript):
            self.used += 1
            return answer
        return None

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=1.0)
        self.client.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait(1.0)
                if self._stop:
                    return
                key, samples, prefix = self._pending
                self._pending = None
                self._answers[key] = _IN_FLIGHT
                while len(self._answers) > self.config.keep:
                    self._answers.popitem(last=False)
            answer = self._ask(samples, prefix)
            with self._cond:
                if key in self._answers:
                    self._answers[key] = answer
                self._cond.notify_all()

    def _ask(self, samples: np.ndarray, prefix: str | None) -> Transcript | None:
        self.sent += 1
        try:
            return self.client.transcribe(samples, prefix=prefix)
        except CloudError as exc:
            log.debug("speculative request failed (%s); the normal one will be made", exc)
        except Exception:  # noqa: BLE001 - a guess must never take the app down
            log.exception("speculative request failed unexpectedly")
        return None


class SpeculativeClient:
    """What Delivery sends through: the held answer for these exact samples, else CloudML."""

    def __init__(self, client: CloudML, speculator: Speculator) -> None:
        self.client = client
        self.speculator = speculator

    def transcribe(
        self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE, prefix: str | None = None
    ) -> Transcript:
        if sample_rate == SAMPLE_RATE:
            answer = self.speculator.take(samples, prefix)
            if answer is not None:
                return answer
        return self.client.transcribe(samples, sample_rate, prefix)

    def close(self) -> None:
        self.speculator.close()
        self.client.close()
