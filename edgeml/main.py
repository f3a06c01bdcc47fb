"""The device app: listen for the keyword, record what is said next, print its transcript.

    edgeml [--model listen.eim] [--endpoint URL] [--once] ...      (edgeml --help)
    python main.py ...  (in this folder, as in the write-up)  |  python -m edgeml ...

    microphone -> ring buffer -> keyword spotter (.eim) -> recorder -> spool -> client -> endpoint
    sources.py    audio.py       spotter.py, edgeml.py      recorder.py  spool.py, delivery.py,
                                                                         cloudml.py

The loop is built to run unattended for weeks: no single bad cycle (endpoint down, model crash,
device error) ends it. It logs what went wrong and goes on; a crashed model is restarted, an
input device that stops delivering is reopened, recordings wait in the spool until the endpoint
answers. SIGINT/SIGTERM stop it cleanly: model process ended, stream closed, spool intact.

stdout carries one line per transcript and nothing else; logs go to stderr.

`--once` exit codes: 0 transcript printed, 1 error (model, audio, spool, stdout), 2 usage, 3
keyword heard but nothing said (no speech, or the endpoint heard no words: an empty transcript
prints nothing), 4 input ended without the keyword, 5 endpoint unavailable (the
recording waits in the spool for the next run), 6 endpoint rejected the recording or the key,
130 interrupted.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    # The launcher: `python edgeml/main.py`, or `python main.py` inside edgeml/ as in the
    # write-up. Python has put this folder first on sys.path, where edgeml/edgeml.py would hide
    # the edgeml package: import the package from the folder above instead.
    from pathlib import Path

    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.insert(0, str(_here.parent))
    from edgeml.main import main as _main

    sys.exit(_main())

import dataclasses
import logging
import signal
import threading
import time
from dataclasses import dataclass
from enum import IntEnum

from edgeml.audio import Audio, AudioStalled, InputEnded, Stopped
from edgeml.audioformat import SAMPLE_RATE
from edgeml.cloudml import CloudML, escape_controls
from edgeml.delivery import Delivery, Outcome, Status
from edgeml.edgeml import EdgeML, ModelCrashed, ModelError
from edgeml.keys import KeyProblem, hide_from_children, install_log_scrubber
from edgeml.keywordtext import transcript_prefix
from edgeml.output import Output, printed_text
from edgeml.recorder import MAX_CONTINUATIONS, Recorder, Recording
from edgeml.settings import Settings, parse_args, setup_logging
from edgeml.sources import AudioSourceError, list_devices, open_source
from edgeml.speculative import SpeculativeClient, Speculator
from edgeml.spool import RecordingInfo, Spool, SpoolFull, SpoolLocked
from edgeml.spotter import Detection, KeywordNotInModel, KeywordSpotter, model_label
from edgeml.vad import EndReason

log = logging.getLogger("edgeml")

MODEL_HEALTHY_SECONDS = 30.0  # a model that fails sooner after a restart is restarted later
MODEL_MAX_BACKOFF = 60.0
# a keyword that starts where speech resumes is complete in the window ending a second later;
# the spotter's windows are scanned this much further (two hops) before it is ruled out
KEYWORD_SCAN_MARGIN = SAMPLE_RATE // 2


class Exit(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    NO_SPEECH = 3
    NO_KEYWORD = 4
    UNAVAILABLE = 5
    REJECTED = 6
    INTERRUPTED = 130


_KEPT_EXIT = {Status.HELD: Exit.UNAVAILABLE, Status.NOT_RECORDED: Exit.ERROR}


@dataclass(frozen=True)
class _Previous:
    """The last recording stored, while speech resuming soon after it may continue it."""

    id: str  # its spool record's id (the continuation's `continues`)
    chain: int  # continuations before it in this turn (0: the keyword's own recording)
    end_index: int  # where its end was decided: the continuation window opens here
    level_dbfs: float | None = None  # the turn's speech level (its keyword recording's)


class Fatal(Exception):
    """Ends the app with a message and an exit code (start-up problems, --once results)."""

    def __init__(self, message: str, code: Exit = Exit.ERROR) -> None:
        super().__init__(message)
        self.code = code


class App:
    """The listening loop and the parts it drives."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self._stop = threading.Event()
        self.output = Output(settings.output)
        self.model = EdgeML.from_config(settings.model)
        self.audio: Audio | None = None
        self.spotter: KeywordSpotter | None = None
        self.recorder: Recorder | None = None
        self.delivery: Delivery | None = None
        self.spool: Spool | None = None
        self.client: CloudML | None = None
        self._model_since = time.monotonic()
        self._model_backoff = 0.0
        self.speculator: Speculator | None = None
        # where the recording under way began and what is known of it (kept if stopped)
        self._partial: tuple[int, RecordingInfo] | None = None

    # ------------------------------------------------------------------ stop
    def request_stop(self, signum: int | None = None, _frame=None) -> None:
        """Signal handler: only sets flags; the loop notices within a fraction of a second."""
        if signum is not None:
            log.info("%s: stopping", signal.Signals(signum).name)
            signal.signal(signum, signal.SIG_DFL)  # a second one ends the app at once
        self._stop.set()
        self.output.stop()
        if self.audio is not None:
            self.audio.interrupt()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ------------------------------------------------------------------ set-up
    def _start(self) -> None:
        s = self.s
        try:
            self.spool = Spool(s.spool.dir, max_bytes=int(s.spool.max_mb * 1e6))
            self.client = CloudML.from_config(s.client)
        except (SpoolLocked, OSError, KeyProblem, ValueError) as exc:
            raise Fatal(str(exc)) from exc
        self.delivery = Delivery(self._delivery_client(), self.spool, self.output)
        self.delivery.start()
        try:
            info = self.model.start()
            self._model_since = time.monotonic()
            model_label(s.spotter.keyword, info.labels)
        except (ModelError, KeywordNotInModel) as exc:
            raise Fatal(str(exc)) from exc
        self._open_audio()

    def _delivery_client(self) -> CloudML | SpeculativeClient:
        """CloudML, behind the speculative answers when speculation is on (speculative.py)."""
        if not self.s.speculation.enabled or self.s.recorder.vad != "silero":
            return self.client
        quick = dataclasses.replace(self.s.client, retries=0)  # a failed guess is not retried
        self.speculator = Speculator(CloudML.from_config(quick), self.s.speculation)
        return SpeculativeClient(self.client, self.speculator)

    def _open_audio(self) -> None:
        """Everything that listens is loaded first, the source opened last: live audio that
        arrived while the neural VAD loaded (over a second under qemu) would be skipped by a
        spotter that starts at the newest audio, and a keyword said then not heard."""
        audio = Audio(open_source(self.s.source), self.s.audio)
        spotter = KeywordSpotter(audio, self.model, self.s.spotter)
        recorder = Recorder(audio, self.s.recorder)
        try:
            audio.start()
        except AudioSourceError as exc:
            recorder.close()  # its turn model's thread
            raise Fatal(str(exc)) from exc
        self.audio, self.spotter, self.recorder = audio, spotter, recorder
        if self._stop.is_set():
            audio.interrupt()

    def _close(self) -> None:
        if self.audio is not None:
            self.audio.stop()
        self.model.stop()
        if self.delivery is not None:
            self.delivery.stop(timeout=self.s.client.read_timeout if self.s.once else 10.0)
        if self.speculator is not None:
            self.speculator.close()
        if self.recorder is not None:
            self.recorder.close()
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
            print(f"error: {escape_controls(str(exc))}", file=sys.stderr, flush=True)
            code = exc.code
        finally:
            self._close()
        return int(code)

    def _loop(self) -> Exit:
        resume_at: int | None = None
        previous: _Previous | None = None  # the last recording, while speech may continue it
        failures = 0
        while not self.stopping:
            try:
                self._partial = None  # not a recording left by a failed cycle
                detection, onset = self._next_turn(resume_at, previous)
                if detection is not None:
                    previous = None  # the keyword: a new turn
                    recording = self._record_after(detection)
                else:
                    recording = self._record_continuation(onset, previous)
                self._partial = None
                resume_at = recording.resume_index
                self.spotter.reset()
                result, rid = self._handle(detection, recording, previous)
                previous = self._continuable(recording, rid, previous)
                failures = 0
                if self.s.once:
                    return result
            except Stopped:
                self._keep_partial()
                break
            except ModelCrashed as exc:
                log.warning("keyword model failed (%s): restarting it", exc)
                self._restart_model()
                resume_at, previous = None, None
            except AudioStalled as exc:
                log.error("%s: reopening the input", exc)
                self._reopen_audio()
                resume_at, previous = None, None
            except InputEnded:
                return self._input_ended()
            except Fatal:
                raise
            except Exception:  # noqa: BLE001 - one bad cycle must not end a device's run
                failures += 1
                log.exception("listening cycle failed (%d in a row); going on", failures)
                self._stop.wait(min(30.0, 0.5 * 2**failures))
                resume_at, previous = None, None
        return Exit.INTERRUPTED if self.s.once else Exit.OK

    def _next_turn(
        self, resume_at: int | None, previous: _Previous | None
    ) -> tuple[Detection | None, int | None]:
        """What starts the next recording: the keyword (a Detection), or speech resuming
        within --continue-seconds of the previous recording's end (its onset). The spotter
        hears the window too: a keyword said there starts a new turn, not a continuation, and
        a window that stays quiet is listened to again from its start (no audio skipped)."""
        if previous is not None and resume_at is not None:
            onset = self.recorder.watch(
                resume_at, self.s.recorder.continue_seconds, previous.level_dbfs
            )
            if onset is not None:
                window = round(self.model.info.window_seconds * SAMPLE_RATE)
                detection = self.spotter.scan(resume_at, onset + window + KEYWORD_SCAN_MARGIN)
                if detection is None:
                    return None, onset
                return detection, None
        return self.spotter.listen(resume_at), None

    def _record_after(self, detection: Detection) -> Recording:
        """The keyword's recording; what is known of it is kept for a stop mid-recording."""
        start = max(detection.end_index - (detection.window_samples or SAMPLE_RATE), 0)
        info = RecordingInfo(keyword=self.spotter.label, keyword_score=round(detection.score, 4),
                             end_reason="stopped", keyword_in_audio=True)  # fmt: skip
        self._partial = (start, info)
        return self.recorder.record(
            detection.end_index,
            detection.keyword_end,
            on_pause=self._pause_handler(),
            keyword_window=detection.window_samples,
        )

    def _record_continuation(self, onset: int, previous: _Previous) -> Recording:
        """Speech that resumed at `onset` after `previous` ended, recorded without a keyword."""
        log.info("speech resumed %.2f s after the recording ended: recording its continuation",
                 (onset - previous.end_index) / SAMPLE_RATE)  # fmt: skip
        info = RecordingInfo(end_reason="stopped", continues=previous.id)
        self._partial = (max(onset - SAMPLE_RATE // 4, 0), info)
        return self.recorder.record_continuation(onset, on_pause=self._pause_handler())

    def _continuable(
        self, recording: Recording, rid: str | None, previous: _Previous | None
    ) -> _Previous | None:
        """The recording just stored, if speech resuming soon may continue it: it ended by
        silence (not the max length, not a cut input), it was stored, the feature is on
        (not with --once: that run ends with its first transcript), and the chain is short."""
        rc = self.s.recorder
        chain = 0 if previous is None else previous.chain + 1
        if (
            rid is None
            or self.s.once
            or rc.continue_seconds <= 0
            or recording.reason is not EndReason.SILENCE
            or chain >= MAX_CONTINUATIONS
        ):
            return None
        # the guard's reference stays the keyword recording's level along the chain (a TV
        # that slipped through must not become the level the next continuation is held to)
        level = recording.speech_level_dbfs if previous is None else previous.level_dbfs
        return _Previous(rid, chain, recording.resume_index, level)

    def _pause_handler(self):
        """The recorder's on_pause: the recording so far offered to the speculator with the
        transcript prefix its final request will carry (delivery.spoken_prefix)."""
        if self.speculator is None:
            return None
        speculator, prefix = self.speculator, transcript_prefix(self.spotter.label)
        return lambda samples, keyword_in_audio: speculator.offer(
            samples, prefix if keyword_in_audio else None
        )

    def _keep_partial(self) -> None:
        """Stopped mid-recording: what was said after the keyword (or since speech resumed)
        so far goes to the spool, to be sent (by the next run if not now), with a log line;
        it was dropped without a word."""
        partial, self._partial = self._partial, None
        if partial is None or self.audio is None:
            return
        start, info = partial
        end = self.audio.end
        samples = self.audio.history(end, (end - start) / SAMPLE_RATE)
        if not len(samples):
            log.warning("stopped while recording: the audio so far is no longer held")
            return
        try:
            self.delivery.submit(samples, info)
        except SpoolFull as exc:
            log.error("stopped while recording: the %.2f s so far are lost: %s",
                      len(samples) / SAMPLE_RATE, exc)  # fmt: skip
            return
        log.info("stopped while recording: the %.2f s recorded so far are kept in %s",
                 len(samples) / SAMPLE_RATE, self.spool.dir)  # fmt: skip

    def _handle(
        self, detection: Detection | None, recording: Recording, previous: _Previous | None
    ) -> tuple[Exit, str | None]:
        """A recording is done: store it for delivery; with --once, wait for its transcript.
        Without a detection it is the continuation of `previous`. Answers the exit code and
        the stored recording's id (None: not stored)."""
        if not recording.has_speech:
            if detection is None:
                log.info("speech resumed but too briefly to be a continuation (%s)",
                         recording.reason.value)  # fmt: skip
                return Exit.NO_SPEECH, None
            log.info(
                "keyword heard but nothing said within %.1f s (%s)",
                self.s.recorder.endpoint.no_speech_seconds,
                recording.reason.value,
            )
            return Exit.NO_SPEECH, None
        hint = f", words {recording.verdict.value}" if recording.verdict else ""
        if recording.turn_probability is not None:
            hint += f", turn model {recording.turn_probability:.2f}"
        if detection is None:
            hint += f", continues {previous.id}"
        log.info("recorded %.2f s (%s)%s", recording.seconds, recording.reason.value, hint)
        saved = self.output.save(recording.samples)
        info = RecordingInfo(
            keyword=self.spotter.label if detection is not None else None,
            keyword_score=round(detection.score, 4) if detection is not None else None,
            end_reason=recording.reason.value,
            saved_copy=str(saved) if saved else None,
            keyword_in_audio=recording.keyword_kept,
            continues=previous.id if detection is None else None,
        )
        try:
            item = self.delivery.submit_item(recording.samples, info)
        except SpoolFull as exc:
            log.error("%s", exc)
            if self.s.once:
                raise Fatal(str(exc)) from exc
            return Exit.ERROR, None
        if not self.s.once:
            return Exit.OK, item.record.id
        return self._await(item.seq), item.record.id

    def _await(self, seq: int) -> Exit:
        c = self.s.client
        patience = (c.connect_timeout + c.read_timeout) * (c.retries + 1) + 60.0
        deadline = time.monotonic() + patience
        while not self.stopping and time.monotonic() < deadline:
            outcome = self.delivery.wait_for(seq, timeout=0.5)
            if outcome is None:
                continue
            if outcome.status is Status.DELIVERED:
                return self._delivered(outcome)
            if outcome.kept:
                code = _KEPT_EXIT.get(outcome.status, Exit.REJECTED)
                raise Fatal(
                    f"{outcome.error}; the recording is kept in {self.spool.dir} and will be "
                    "sent by the next run",
                    code,
                )
            raise Fatal(str(outcome.error), Exit.REJECTED)
        if self.stopping:
            return Exit.INTERRUPTED
        raise Fatal(f"no answer from the endpoint in {patience:.0f} s", Exit.UNAVAILABLE)

    def _delivered(self, outcome: Outcome) -> Exit:
        """--once: 0 only when the transcript is on stdout; an empty one is 3 (nothing said)."""
        if not printed_text(outcome):
            raise Fatal("the endpoint heard no words in the recording (empty transcript)",
                        Exit.NO_SPEECH)  # fmt: skip
        if not self.output.printed(outcome.record.id):
            raise Fatal("the transcript could not be printed to stdout (see above); it is "
                        "in --jsonl if given", Exit.ERROR)  # fmt: skip
        return Exit.OK

    def _input_ended(self) -> Exit:
        log.info("input ended")
        if self.s.once:
            raise Fatal(f"the keyword was not heard in {self.s.source.input}", Exit.NO_KEYWORD)
        if len(self.spool):
            log.info("waiting for %d recording(s) to be delivered", len(self.spool))
            c = self.s.client
            self.delivery.drain(timeout=(c.connect_timeout + c.read_timeout) * 4, stop=self._stop)
        return Exit.OK

    def _restart_model(self) -> None:
        """Restart the model; one that fails again soon after each restart (every classify
        refused, say) is restarted later each time, 1 s doubling to a minute, not in a loop."""
        ran = time.monotonic() - self._model_since
        if ran < MODEL_HEALTHY_SECONDS:
            self._model_backoff = min(MODEL_MAX_BACKOFF, max(1.0, self._model_backoff * 2))
            log.warning("keyword model failed %.1f s after its start: restarting it in %.0f s",
                        ran, self._model_backoff)  # fmt: skip
            self._stop.wait(self._model_backoff)
        else:
            self._model_backoff = 0.0
        delay = 1.0
        while not self.stopping:
            try:
                self.model.restart()
                self._model_since = time.monotonic()
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
            if self.recorder is not None:
                self.recorder.close()
                self.recorder = None
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
        print(f"error: cannot list audio devices: {escape_controls(str(exc))}", file=sys.stderr)
        return Exit.ERROR
    if not devices:
        print("no audio input devices found", file=sys.stderr)
        return Exit.ERROR
    for d in devices:
        name, api = escape_controls(d.name), escape_controls(d.host_api)  # names from drivers
        print(f"{d.index:3d}  {name}  ({d.channels} ch, {d.default_rate} Hz, {api})")
    return Exit.OK


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    setup_logging(settings.log_level)
    install_log_scrubber(settings.client.key)  # no log line can carry the key, whoever logs
    hide_from_children()  # read once above; the .eim model and any child never see it
    if settings.list_devices:
        return print_devices()
    app = App(settings)
    signal.signal(signal.SIGINT, app.request_stop)
    signal.signal(signal.SIGTERM, app.request_stop)
    return app.run()


if __name__ == "__main__":
    sys.exit(main())
