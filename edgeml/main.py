"""The device app: listen for the keyword, record what is said next, print its transcript.

    python main.py [--model listen.eim] [--endpoint URL] [--once] ...   (python main.py --help)

    microphone -> ring buffer -> keyword spotter (.eim) -> recorder -> spool -> client -> endpoint

The loop is built to run unattended for weeks: no single bad cycle (endpoint down, model crash,
device error) ends it. It logs what went wrong and goes on; a crashed model is restarted, an
input device that stops delivering is reopened, recordings wait in the spool until the endpoint
answers. SIGINT/SIGTERM stop it cleanly: model process ended, stream closed, spool intact.

stdout carries one line per transcript and nothing else; logs go to stderr.

`--once` exit codes: 0 transcript printed, 1 error (model, audio, spool), 2 usage, 3 keyword
heard but nothing said, 4 input ended without the keyword, 5 endpoint unavailable (the
recording waits in the spool for the next run), 6 endpoint rejected the recording or the key,
130 interrupted.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from enum import IntEnum
from pathlib import Path

from audio import Audio, AudioStalled, Recording, Stopped
from cloudml import AuthRejected, CloudML
from delivery import Delivery, Outcome
from edgeml import EdgeML, ModelCrashed, ModelError
from ringbuffer import EndOfStream
from settings import Settings, parse_args, setup_logging
from sources import SAMPLE_RATE, AudioSourceError, FileSource, MicSource, list_devices
from spool import Spool, SpoolFull, SpoolLocked, wav_bytes
from spotter import Detection, DetectorConfig, KeywordDetector
from vad import EndpointConfig

log = logging.getLogger("edgeml")
DEFAULT_THRESHOLD = 0.85  # the original's value, for models that state none


class Exit(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    NO_SPEECH = 3
    NO_KEYWORD = 4
    UNAVAILABLE = 5
    REJECTED = 6
    INTERRUPTED = 130


class Fatal(Exception):
    """Ends the app with a message and an exit code (start-up problems, --once results)."""

    def __init__(self, message: str, code: Exit = Exit.ERROR) -> None:
        super().__init__(message)
        self.code = code


class Output:
    """Where results go: one line per transcript on stdout, one JSON record per line in --jsonl."""

    def __init__(self, jsonl: Path | None) -> None:
        self.jsonl = jsonl
        self._lock = threading.Lock()

    def __call__(self, outcome: Outcome) -> None:
        record = {
            "time": outcome.meta.get("created"),
            "seq": outcome.seq,
            "keyword": outcome.meta.get("keyword"),
            "keyword_score": outcome.meta.get("keyword_score"),
            "audio_seconds": outcome.meta.get("audio_seconds"),
            "backlog": outcome.backlog,
        }
        if outcome.transcript is not None:
            t = outcome.transcript
            created = outcome.meta.get("created_ts")
            record.update(
                latency_s=round(time.time() - created, 3) if created else None,
                round_trip_ms=round(t.round_trip_ms, 1),
                inference_ms=t.inference_ms,
                model=t.model,
                engine=t.engine,
                text=t.text,
            )
            with self._lock:
                if t.text:
                    print(t.text, flush=True)
        else:
            record.update(error=str(outcome.error), text=None)
        if outcome.meta.get("wav"):
            record["wav"] = outcome.meta["wav"]
        self.write(record)

    def write(self, record: dict) -> None:
        if self.jsonl is None:
            return
        with self._lock:
            try:
                self.jsonl.parent.mkdir(parents=True, exist_ok=True)
                with open(self.jsonl, "a") as f:
                    f.write(json.dumps(record) + "\n")
            except OSError as exc:
                log.error("cannot append to %s: %s", self.jsonl, exc)


class App:
    """The listening loop and the parts it drives."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self._stop = threading.Event()
        self.output = Output(settings.jsonl)
        self.model = EdgeML(settings.model, call_timeout=settings.model_timeout)
        self.audio: Audio | None = None
        self.delivery: Delivery | None = None
        self.spool: Spool | None = None
        self.client: CloudML | None = None
        self.label = settings.keyword
        self.endpoint_config = EndpointConfig(
            silence_seconds=settings.silence_seconds,
            max_seconds=settings.max_seconds,
            no_speech_seconds=settings.no_speech_seconds,
        )

    # ------------------------------------------------------------------ stop
    def request_stop(self, signum: int | None = None, _frame=None) -> None:
        """Signal handler: only sets flags; the loop notices within a fraction of a second."""
        if signum is not None:
            log.info("%s: stopping", signal.Signals(signum).name)
            signal.signal(signum, signal.SIG_DFL)  # a second one ends the app at once
        self._stop.set()
        if self.audio is not None:
            self.audio.interrupt()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ------------------------------------------------------------------ set-up
    def _start(self) -> None:
        try:
            self.spool = Spool(self.s.spool_dir, max_bytes=int(self.s.spool_max_mb * 1e6))
        except (SpoolLocked, OSError) as exc:
            raise Fatal(str(exc)) from exc
        self.client = CloudML(
            self.s.endpoint,
            self.s.key,
            body_format=self.s.body_format,
            connect_timeout=self.s.connect_timeout,
            read_timeout=self.s.read_timeout,
            retries=self.s.retries,
        )
        self.delivery = Delivery(self.client, self.spool, self.output)
        self.delivery.start()
        try:
            info = self.model.start()
        except ModelError as exc:
            raise Fatal(str(exc)) from exc
        matches = [label for label in info.labels if label.lower() == self.s.keyword.lower()]
        if not matches:
            raise Fatal(
                f"keyword {self.s.keyword!r} is not a label of the model "
                f"(labels: {', '.join(info.labels)}); pass --keyword"
            )
        self.label = matches[0]
        self._open_audio()

    def _open_audio(self) -> None:
        if self.s.input is not None:
            source = FileSource(self.s.input, realtime=self.s.input_speed == "realtime")
        else:
            source = MicSource(self.s.device)
        audio = Audio(source, highpass_hz=self.s.highpass_hz)
        try:
            audio.start()
        except AudioSourceError as exc:
            raise Fatal(str(exc)) from exc
        self.audio = audio
        if self._stop.is_set():
            audio.interrupt()

    def _close(self) -> None:
        if self.audio is not None:
            self.audio.stop()
        self.model.stop()
        if self.delivery is not None:
            self.delivery.stop(timeout=self.s.read_timeout if self.s.once else 10.0)
        if self.spool is not None:
            left = len(self.spool)
            if left:
                log.info("%d recording(s) kept in %s for the next run", left, self.spool.dir)
            self.spool.close()
        if self.client is not None:
            self.client.close()

    # ------------------------------------------------------------------ the loop
    def run(self) -> int:
        try:
            self._start()
            code = self._loop()
        except Fatal as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            code = exc.code
        finally:
            self._close()
        return int(code)

    def threshold(self) -> float:
        """--threshold when given; else the threshold the model states in its hello (a kwtrain
        embedding model is calibrated for <= 1 false wake per hour); else 0.85."""
        if self.s.threshold is not None:
            return self.s.threshold
        info = self.model.info
        if info is not None and info.threshold is not None:
            log.info("keyword threshold %.3f (stated by the model)", info.threshold)
            return info.threshold
        return DEFAULT_THRESHOLD

    def _loop(self) -> Exit:
        detector = KeywordDetector(
            DetectorConfig(
                self.label, self.threshold(), self.s.average_windows, self.s.refractory_seconds
            )
        )
        resume_at: int | None = None
        failures = 0
        while not self.stopping:
            try:
                detection = self._listen(detector, resume_at)
                if detection is None:  # the input file has ended
                    return self._input_ended()
                recording = self.audio.record(
                    detection.end_index,
                    self.endpoint_config,
                    pre_roll_seconds=self.s.pre_roll_seconds,
                )
                resume_at = recording.end_index
                detector.reset()
                result = self._handle(detection, recording)
                failures = 0
                if self.s.once:
                    return result
            except Stopped:
                break
            except ModelCrashed as exc:
                log.warning("keyword model failed (%s): restarting it", exc)
                self._restart_model()
                resume_at = None
            except AudioStalled as exc:
                log.error("%s: reopening the input", exc)
                self._reopen_audio()
                resume_at = None
            except EndOfStream:
                return self._input_ended()
            except Fatal:
                raise
            except Exception:  # noqa: BLE001 - one bad cycle must not end a device's run
                failures += 1
                log.exception("listening cycle failed (%d in a row); going on", failures)
                self._stop.wait(min(30.0, 0.5 * 2**failures))
                resume_at = None
        return Exit.INTERRUPTED if self.s.once else Exit.OK

    def _listen(self, detector: KeywordDetector, resume_at: int | None) -> Detection | None:
        window_samples = round(self.model.info.window_seconds * SAMPLE_RATE)
        try:
            for window in self.audio.windows(window_samples, start_index=resume_at):
                scores = self.model.classify(window.samples, SAMPLE_RATE)
                detection = detector.update(scores.get(self.label, 0.0), window.end_index)
                if detection is not None:
                    log.info("keyword %r heard (score %.2f)", self.label, detection.score)
                    return detection
        except EndOfStream:
            return None
        return None

    def _handle(self, detection: Detection, recording: Recording) -> Exit:
        """A recording is done: store it for delivery; with --once, wait for its transcript."""
        if not recording.has_speech:
            log.info(
                "keyword heard but nothing said within %.1f s (%s)",
                self.s.no_speech_seconds,
                recording.reason.value,
            )
            return Exit.NO_SPEECH
        log.info("recorded %.2f s (%s)", recording.seconds, recording.reason.value)
        meta = {
            "keyword": self.label,
            "keyword_score": round(detection.score, 4),
            "end_reason": recording.reason.value,
        }
        if self.s.save_dir is not None:
            meta["wav"] = str(self._save(recording))
        try:
            seq = self.delivery.submit(recording.samples, **meta)
        except SpoolFull as exc:
            log.error("%s", exc)
            if self.s.once:
                raise Fatal(str(exc)) from exc
            return Exit.ERROR
        if not self.s.once:
            return Exit.OK
        return self._await(seq)

    def _await(self, seq: int) -> Exit:
        patience = (self.s.connect_timeout + self.s.read_timeout) * (self.s.retries + 1) + 60.0
        deadline = time.monotonic() + patience
        while not self.stopping and time.monotonic() < deadline:
            outcome = self.delivery.wait_for(seq, timeout=0.5)
            if outcome is None:
                continue
            if outcome.delivered:
                return Exit.OK
            if outcome.kept:
                code = (
                    Exit.REJECTED if isinstance(outcome.error, AuthRejected) else Exit.UNAVAILABLE
                )
                raise Fatal(
                    f"{outcome.error}; the recording is kept in {self.spool.dir} and will be "
                    "sent by the next run",
                    code,
                )
            raise Fatal(str(outcome.error), Exit.REJECTED)
        if self.stopping:
            return Exit.INTERRUPTED
        raise Fatal(f"no answer from the endpoint in {patience:.0f} s", Exit.UNAVAILABLE)

    def _save(self, recording: Recording) -> Path:
        self.s.save_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%f")[:-3]
        path = self.s.save_dir / f"rec-{stamp}.wav"
        path.write_bytes(wav_bytes(recording.samples))
        return path

    def _input_ended(self) -> Exit:
        log.info("input ended")
        if self.s.once:
            raise Fatal(f"the keyword was not heard in {self.s.input}", Exit.NO_KEYWORD)
        if len(self.spool):
            log.info("waiting for %d recording(s) to be delivered", len(self.spool))
            self.delivery.drain(timeout=(self.s.connect_timeout + self.s.read_timeout) * 4)
        return Exit.OK

    def _restart_model(self) -> None:
        delay = 1.0
        while not self.stopping:
            try:
                self.model.restart()
                log.info("keyword model restarted (restart %d)", self.model.restarts)
                return
            except ModelError as exc:
                log.error("restarting the keyword model failed: %s; next try in %.0f s", exc, delay)
                self._stop.wait(delay)
                delay = min(60.0, delay * 2)

    def _reopen_audio(self) -> None:
        delay = 1.0
        while not self.stopping:
            if self.audio is not None:
                self.audio.stop()
                self.audio = None
            try:
                self._open_audio()
                return
            except Fatal as exc:
                log.error("%s; next try in %.0f s", exc, delay)
                self._stop.wait(delay)
                delay = min(10.0, delay * 2)  # a replugged microphone should be back soon


def print_devices() -> int:
    try:
        devices = list_devices()
    except Exception as exc:  # noqa: BLE001 - PortAudio errors come in many types
        print(f"error: cannot list audio devices: {exc}", file=sys.stderr)
        return Exit.ERROR
    if not devices:
        print("no audio input devices found", file=sys.stderr)
        return Exit.ERROR
    for d in devices:
        print(f"{d.index:3d}  {d.name}  ({d.channels} ch, {d.default_rate} Hz, {d.host_api})")
    return Exit.OK


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    setup_logging(settings.log_level)
    if settings.list_devices:
        return print_devices()
    app = App(settings)
    signal.signal(signal.SIGINT, app.request_stop)
    signal.signal(signal.SIGTERM, app.request_stop)
    return app.run()


if __name__ == "__main__":
    sys.exit(main())
