"""EdgeML: the keyword model, an Edge Impulse `.eim` driven through the SDK's ImpulseRunner.

The `.eim` is a separate process that the SDK (`edge_impulse_linux.runner.ImpulseRunner`)
starts and talks to over a Unix socket. This class keeps that process healthy for weeks:

- window length, sample rate and labels come from the model's hello, never from our settings;
- the SDK's `init()` waits FOREVER when the model exits before creating its socket, and with
  `allow_shm=True` (its default) the socket has no timeout, so a hung model hangs `classify()`.
  Start-up here is bounded (a watchdog thread that also notices the model's exit) and every
  call has a socket timeout. The SDK throws the model's stderr away; here its last 4 kB are
  kept, so "exited with code 3 at start" comes with what the model said (e.g. the Python
  that ran it cannot import onnxruntime);
- a model that dies later (a cut-off reply surfaces in the SDK as IndexError) is reported as
  `ModelCrashed`, and `restart()` brings it back;
- the SDK's `stop()` signals the process but never reaps it; here it is waited for (and killed
  if it lingers), so restarts over weeks leave no zombies. Each model runs in a process group of
  its own, killed as a whole: a model that forks (a helper, or a parent that exits and leaves
  its child serving) leaves nothing behind;
- replies are NUL-terminated frames: a frame that is not JSON at all (a runner's log line) and
  a reply to an earlier message (a duplicate) are skipped; scores must be a finite number in
  0..1 for exactly the hello's labels, or the reply is bad and the model restarted.

Every message goes through `_exchange` (put in place of the SDK's `send_msg` on each runner,
so the SDK's own `init()` hello and `classify()` use it too), because the SDK's version breaks
on real models: it writes with `socket.send()`, which with a timeout set writes only what the
socket buffer takes (a 48 kHz or multi-second window is cut, the model waits for the rest, the
app times out and restarts it, forever); and it reads the reply 1024 bytes at a time into an
unbounded buffer with no deadline (a model that floods or trickles hangs the app or fills its
memory). `_exchange` writes with `sendall()` and reads at most MAX_REPLY_BYTES before one
deadline. The hello is checked against sane bounds before anything is sized by it.

An exported .eim may be a script with `#!/usr/bin/env python3`. The SDK starts it with our
environment, so the directory of the interpreter running this app is put first on PATH: the
model then runs under the same Python (and sees the same numpy) as the app.

A model whose hello offers `features_shm` (this project's .eims do) gets each window through
the SDK's shared-memory path (`classify_shm`: the samples are copied into the mapped block, no
216 KB of JSON per hop); any other model gets JSON as before.

This relies on attributes of ImpulseRunner (`_runner`, `_tempdir`, `_client`, `_ix`,
`_input_shm`, and its `send_msg` replaced per instance) and on its module calling `subprocess.Popen` (replaced by one
that starts a new session) of the pinned edge_impulse_linux==1.2.2; the workarounds are all in
this module.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeml.audioformat import SAMPLE_RATE, clip_int16, resample

log = logging.getLogger("edgeml.model")

SENSOR_MICROPHONE = 1
MAX_REPLY_BYTES = 1 << 20  # a hello or a classify reply is a few kB
# What a keyword model's hello may say (anything else is refused before it sizes a buffer).
FREQUENCY_RANGE = (1000, 192000)
MAX_WINDOW_SECONDS = 30.0
MAX_WINDOW_SAMPLES = 2_000_000
MAX_LABELS = 1000
MAX_LABEL_CHARS = 256
STDERR_TAIL_BYTES = 4096  # what is kept of a model's stderr, for the error when it stops
STDERR_TAIL_CHARS = 400  # what of it an error message quotes
SCORE_SLACK = 1e-3  # a float32 softmax may say 1.0000001; beyond this a score is not a score
DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "listen.eim"


@dataclass(frozen=True)
class ModelConfig:
    """Which keyword model to run, and how long it may take."""

    path: Path = DEFAULT_MODEL
    start_timeout: float = 15.0  # seconds from start to its hello
    call_timeout: float = 5.0  # seconds one classify may take before the model is restarted
    shared_memory: bool = True  # windows into the model's features_shm when its hello offers it


class ModelError(RuntimeError):
    """The model cannot be used: missing, not executable, exits at start, not an audio model."""


class ModelCrashed(RuntimeError):
    """The model process died or stopped answering during a call; restart() may bring it back."""


class _BadReply(RuntimeError):
    """The model answered, but not by the protocol (too long, not JSON, wrong id, an error)."""


@dataclass(frozen=True)
class ModelInfo:
    """What the model's hello says about itself."""

    name: str
    labels: tuple[str, ...]
    frequency: int
    window_samples: int
    threshold: float | None = None  # the model's own calibrated keyword threshold, if it says
    # how long after the keyword's end the model's score first reaches its peak, if it says
    # (a kwtrain model decides over several grid positions: spotter.KeywordSpotter.track)
    keyword_delay_seconds: float = 0.0

    @property
    def window_seconds(self) -> float:
        return self.window_samples / self.frequency


def model_threshold(params: dict) -> float | None:
    """The keyword threshold a model states in its hello: `keyword_threshold` (kwtrain), else
    the `min_score` of a classification block in `thresholds` (Edge Impulse's list)."""
    value = params.get("keyword_threshold")
    if value is None:
        for block in params.get("thresholds") or []:
            if isinstance(block, dict) and block.get("type") == "classification":
                value = block.get("min_score")
                break
    try:
        value = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and 0.0 < value <= 1.0 else None


def model_keyword_delay(params: dict, window_seconds: float) -> float:
    """`keyword_delay_seconds` from a hello (kwtrain states it), within [0, the window]; 0 when
    absent or not a number: Edge Impulse's models state none, and the spotter then places the
    keyword's end where their score peaks."""
    try:
        value = float(params.get("keyword_delay_seconds", 0.0))
    except (TypeError, ValueError):
        return 0.0
    return value if 0.0 <= value <= window_seconds else 0.0


def ensure_interpreter_on_path(env: os._Environ | dict = os.environ) -> None:
    """Put this interpreter's directory first on PATH, for `#!/usr/bin/env python3` models."""
    bindir = os.path.dirname(sys.executable)
    parts = env.get("PATH", "").split(os.pathsep) if env.get("PATH") else []
    if not parts or parts[0] != bindir:
        env["PATH"] = os.pathsep.join([bindir, *[p for p in parts if p != bindir]])


def check_model_file(path: Path) -> None:
    """Fail early with a message that says what to do, before the SDK gets a chance to hang."""
    if not path.exists():
        raise ModelError(
            f"keyword model not found: {path}. Build it with `make keyword-model` "
            "(docs/keyword-models.md), or download your Edge Impulse project's Linux model "
            "(`edge-impulse-linux-runner --download model.eim`) and pass --model PATH / EDGEML_MODEL."
        )
    if path.is_dir():
        raise ModelError(f"keyword model path is a folder, not a .eim file: {path}")
    if not os.access(path, os.X_OK):
        raise ModelError(f"keyword model is not executable: {path} (fix: chmod +x {path})")


def _interpreter_of(path: Path) -> str | None:
    """The interpreter named on a `#!` line, if the model is a script."""
    try:
        with open(path, "rb") as f:
            first = f.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    return first[2:].decode(errors="replace").strip() or None


class _ConnectRaced(Exception):
    """The model's socket file existed but did not accept connections yet."""


class _Abandoned:
    """Stands in for the model process so a stuck SDK init() loop raises and its thread ends."""

    pid = -1

    def poll(self) -> int:
        raise ModelError("model start abandoned")


class EdgeML:
    """A running .eim keyword model: start, classify windows, restart, stop."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        start_timeout: float = ModelConfig.start_timeout,
        call_timeout: float = ModelConfig.call_timeout,
        shared_memory: bool = ModelConfig.shared_memory,
    ) -> None:
        self.model_path = Path(model_path).expanduser().absolute()
        self.start_timeout = start_timeout
        self.call_timeout = call_timeout
        self.shared_memory = shared_memory
        self.info: ModelInfo | None = None
        self.restarts = 0
        self._runner = None  # edge_impulse_linux.runner.ImpulseRunner
        self._proc: subprocess.Popen | None = None
        self._frames = bytearray()  # bytes read from the model beyond the last frame

    @classmethod
    def from_config(cls, config: ModelConfig) -> EdgeML:
        return cls(
            config.path,
            start_timeout=config.start_timeout,
            call_timeout=config.call_timeout,
            shared_memory=config.shared_memory,
        )

    # ------------------------------------------------------------------ life cycle
    def start(self) -> ModelInfo:
        """Start the model process and read its hello. Raises ModelError within start_timeout."""
        check_model_file(self.model_path)
        ensure_interpreter_on_path()
        from edge_impulse_linux.runner import ImpulseRunner

        _own_session_for_models()

        for attempt in range(3):
            self._frames = bytearray()  # a new process: nothing of the old one's replies is left
            runner = ImpulseRunner(str(self.model_path), allow_shm=self.shared_memory)
            # The SDK's init() and classify() call self.send_msg: ours is bounded (see above).
            runner.send_msg = lambda msg, r=runner: self._exchange(r, msg)
            try:
                hello = self._bounded_init(runner)
                break
            except _ConnectRaced:
                # The SDK connects as soon as the socket file exists, which a runner creates
                # (bind) a moment before it accepts connections (listen): just try again.
                log.debug("model socket not listening yet (attempt %d): retrying", attempt + 1)
        else:
            raise ModelError(f"keyword model never accepted a connection: {self.model_path}")
        self._runner = runner
        self._proc = runner._runner
        self.info = self._parse_hello(hello)
        log.info(
            "model %s: labels %s, %d samples at %d Hz (pid %s)",
            self.info.name,
            list(self.info.labels),
            self.info.window_samples,
            self.info.frequency,
            self._proc.pid if self._proc else "?",
        )
        return self.info

    def _bounded_init(self, runner) -> dict:
        """Run the SDK's init() in a thread and watch the model process while it waits."""
        box: dict = {}

        def init() -> None:
            try:
                box["hello"] = runner.init()
            except BaseException as exc:  # noqa: BLE001 - reported by the watchdog below
                box["error"] = exc

        thread = threading.Thread(target=init, name="eim-init", daemon=True)
        thread.start()
        deadline = time.monotonic() + self.start_timeout
        problem = None
        while thread.is_alive():
            thread.join(0.05)
            proc = runner._runner
            if not thread.is_alive():
                break
            if isinstance(proc, subprocess.Popen) and proc.poll() is not None:
                problem = (
                    f"keyword model {_exit_status(proc.returncode)} at start: {self.model_path}"
                    f"{_said(proc)} (run it by hand to see why: {self.model_path} --print-info)"
                )
                break
            if time.monotonic() > deadline:
                problem = (
                    f"keyword model did not answer within {self.start_timeout:.0f} s: "
                    f"{self.model_path}"
                )
                break
        if problem is not None:
            self._abandon_init(runner, thread)
            raise ModelError(problem)
        if "error" in box:
            self._cleanup(runner)
            if isinstance(box["error"], ConnectionRefusedError):
                raise _ConnectRaced() from box["error"]
            raise self._start_error(box["error"]) from box["error"]
        return box["hello"]

    def _abandon_init(self, runner, thread: threading.Thread) -> None:
        """Kill the model and make the SDK's waiting loop end (it has no exit of its own)."""
        proc = runner._runner
        if isinstance(proc, subprocess.Popen):
            _kill(proc)
        # The SDK loops while the socket is missing or the process has exited: give it a path
        # that exists and a process object whose poll() raises, so its thread ends.
        if runner._tempdir:
            with contextlib.suppress(OSError):
                Path(runner._tempdir, "runner.sock").touch()
        runner._runner = _Abandoned()
        thread.join(2.0)
        runner._runner = None
        self._cleanup(runner)

    def _start_error(self, exc: BaseException) -> ModelError:
        if isinstance(exc, OSError) and exc.errno == 8:  # ENOEXEC: wrong architecture
            return ModelError(
                f"keyword model is not a program for this machine ({exc.strerror}): "
                f"{self.model_path}. Download the .eim built for this board (e.g. linux-aarch64)."
            )
        if isinstance(exc, FileNotFoundError):
            interp = _interpreter_of(self.model_path)
            return ModelError(
                f"cannot run keyword model {self.model_path}: its interpreter {interp!r} is missing"
                if interp
                else f"cannot run {self.model_path}: {exc}"
            )
        return ModelError(f"keyword model failed to start: {self.model_path}: {exc}")

    def _parse_hello(self, hello: dict) -> ModelInfo:
        try:
            info = _model_info(hello)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.stop()
            raise ModelError(
                f"keyword model's hello is unusable: {exc}: {self.model_path}"
            ) from None
        return info

    # ------------------------------------------------------------------ the protocol
    def _exchange(self, runner, msg: dict) -> dict:
        """One request and its reply, bounded in size and time (replaces the SDK's send_msg)."""
        client = runner._client
        if client is None:
            raise ModelCrashed("keyword model is not running")
        runner._ix += 1
        msg["id"] = runner._ix
        timeout = self.call_timeout if self._runner is runner else self.start_timeout
        deadline = time.monotonic() + timeout
        client.settimeout(timeout)
        client.sendall(json.dumps(msg, separators=(",", ":")).encode())  # never a cut message
        while True:
            frame = self._next_frame(client, deadline, timeout)
            if b"{" not in frame:  # a log line or noise, not a reply: skipped
                log.debug("model sent a frame that is not a reply: %r", frame[:80])
                continue
            reply = _decode_reply(frame, msg["id"])
            if reply is not _STALE:
                return reply
            log.debug("model sent a stale reply (an earlier message's): skipped")

    def _next_frame(self, client, deadline: float, timeout: float) -> bytes:
        """The next NUL-terminated frame, bounded in size and by `deadline`. Bytes after the
        NUL are kept for the next frame (two frames can arrive in one packet)."""
        buf = self._frames
        while (end := buf.find(b"\x00")) < 0:
            if len(buf) > MAX_REPLY_BYTES:
                buf.clear()
                raise _BadReply(f"reply longer than {MAX_REPLY_BYTES} bytes")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete reply within {timeout:.1f} s")
            client.settimeout(remaining)
            chunk = client.recv(64 * 1024)
            if not chunk:
                raise ConnectionResetError("the model closed its socket")
            buf += chunk
        if end > MAX_REPLY_BYTES:
            buf.clear()
            raise _BadReply(f"reply longer than {MAX_REPLY_BYTES} bytes")
        frame = bytes(buf[:end])
        del buf[: end + 1]
        return frame

    def restart(self) -> ModelInfo:
        """Stop whatever is left of the model and start it again."""
        self.stop()
        self.restarts += 1
        return self.start()

    def stop(self) -> None:
        """End the model process and reap it."""
        runner, self._runner = self._runner, None
        proc, self._proc = self._proc, None
        if runner is not None:
            self._cleanup(runner)
        if proc is not None:
            _reap(proc)

    @staticmethod
    def _cleanup(runner) -> None:
        proc = runner._runner
        if isinstance(proc, subprocess.Popen) and proc.poll() is not None:
            runner._runner = None  # already gone (and reaped): never signal a reused pid
        with contextlib.suppress(Exception):
            runner.stop()  # closes the socket, SIGINTs the process, removes the temp dir
        if isinstance(proc, subprocess.Popen):
            _reap(proc)

    @property
    def running(self) -> bool:
        return self._runner is not None and self._proc is not None and self._proc.poll() is None

    # ------------------------------------------------------------------ inference
    def classify(self, window: np.ndarray, sample_rate: int = SAMPLE_RATE) -> dict[str, float]:
        """Scores per label for one window of int16 samples. Raises ModelCrashed."""
        if self._runner is None or self.info is None:
            raise ModelCrashed("keyword model is not running")
        if sample_rate != self.info.frequency:
            window = clip_int16(resample(window, sample_rate, self.info.frequency))
        if len(window) != self.info.window_samples:
            raise ValueError(
                f"window has {len(window)} samples, the model wants {self.info.window_samples}"
            )
        try:
            # With the model's shared memory (features_shm) the SDK copies an array straight in;
            # otherwise it sends JSON, for which it needs a list.
            shm = getattr(self._runner, "_input_shm", None)
            reply = self._runner.classify(window if shm else window.tolist())
            return _checked_scores(reply["result"]["classification"], self.info.labels)
        except Exception as exc:  # noqa: BLE001 - timeouts, bad replies, the SDK's bare Exception
            # After any failure the socket may hold half a reply: the caller must restart().
            raise self._crashed(exc) from exc

    def _crashed(self, exc: BaseException) -> ModelCrashed:
        code = None
        if self._proc is not None and not isinstance(exc, TimeoutError):
            # A cut-off reply usually means the process is exiting: give it a moment to say how.
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._proc.wait(timeout=0.5)
        if code is not None:
            why = f"model process {_exit_status(code)}{_said(self._proc)}"
        elif isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
            why = f"model did not answer within {self.call_timeout:.1f} s"
        else:
            why = f"{type(exc).__name__}: {str(exc)[:200]}"
        return ModelCrashed(why)

    def __enter__(self) -> EdgeML:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


_STALE: dict = {}  # _decode_reply's answer for a reply to an earlier message


def _checked_scores(scores: object, labels: tuple[str, ...]) -> dict[str, float]:
    """A score per label of the hello, each a finite number in [0, 1]; anything else is a bad
    reply (the model is restarted), never a score: NaN, infinity or 1e308 would decide a
    detection, a missing keyword label would silently read as 0 forever."""
    if not isinstance(scores, dict) or set(scores) != set(labels):
        raise _BadReply("'classification' does not map the hello's labels to scores")
    out = {}
    for label, value in scores.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _BadReply(f"score of {label[:40]!r} is not a number: {str(value)[:20]!r}")
        if not -SCORE_SLACK <= value <= 1.0 + SCORE_SLACK:  # NaN fails this too
            raise _BadReply(f"score of {label[:40]!r} is outside 0..1: {value!r:.20}")
        out[label] = min(1.0, max(0.0, float(value)))
    return out


def _decode_reply(data: bytes, msg_id: int) -> dict:
    """The reply's JSON object (the runner may add a newline or text around it); _STALE for a
    reply to an earlier message (a duplicate, or one that came after its deadline)."""
    text = data.decode("utf-8", errors="replace")
    start = text.find("{")
    try:
        reply, _ = json.JSONDecoder().raw_decode(text, max(start, 0))
    except (ValueError, RecursionError):
        raise _BadReply(f"reply is not JSON: {text[:80]!r}") from None
    if not isinstance(reply, dict):
        raise _BadReply("reply is not a JSON object")
    rid = reply.get("id")
    if isinstance(rid, int) and not isinstance(rid, bool) and 0 < rid < msg_id:
        return _STALE
    if rid != msg_id:
        raise _BadReply(f"reply to message {reply.get('id')!r}, expected {msg_id}")
    if reply.get("success") is not True:
        raise _BadReply(f"model reported an error: {str(reply.get('error'))[:200]}")
    reply.pop("id")
    reply.pop("success")
    return reply


def _model_info(hello: dict) -> ModelInfo:
    """What the hello says, checked: nothing absurd gets to size a buffer or a window."""
    params = hello["model_parameters"]
    project = hello.get("project") or {}
    if not isinstance(params, dict) or not isinstance(project, dict):
        raise TypeError("'model_parameters' and 'project' must be objects")
    if params.get("sensor") != SENSOR_MICROPHONE:
        raise ValueError(f"not an audio model (sensor {str(params.get('sensor'))[:20]})")
    frequency, window = params["frequency"], params["input_features_count"]
    for name, value in (("frequency", frequency), ("input_features_count", window)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise ValueError(f"{name} {str(value)[:20]!r} is not a whole number")
    frequency, window = int(frequency), int(window)
    low, high = FREQUENCY_RANGE
    if not low <= frequency <= high:
        raise ValueError(f"frequency {frequency} Hz is outside {low}..{high} Hz")
    longest = min(MAX_WINDOW_SAMPLES, int(MAX_WINDOW_SECONDS * frequency))
    if not 1 <= window <= longest:
        raise ValueError(f"input_features_count {window} is outside 1..{longest} samples")
    labels = params["labels"]
    if not isinstance(labels, list) or not 1 <= len(labels) <= MAX_LABELS:
        raise ValueError(f"'labels' must be a list of 1..{MAX_LABELS} names")
    if any(not isinstance(x, str) or not 0 < len(x) <= MAX_LABEL_CHARS for x in labels):
        raise ValueError(f"every label must be a name of 1..{MAX_LABEL_CHARS} characters")
    name = "/".join(str(project.get(k, "?"))[:80] for k in ("owner", "name"))
    return ModelInfo(
        name=f"{name} v{str(project.get('deploy_version', '?'))[:20]}",
        labels=tuple(labels),
        frequency=frequency,
        window_samples=window,
        threshold=model_threshold(params),
        keyword_delay_seconds=model_keyword_delay(params, window / frequency),
    )


def _exit_status(code: int) -> str:
    """How a process ended, in words: `exited with code 3`, `was killed by signal 9 (SIGKILL)`."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = f" ({signal.Signals(-code).name})"
    except ValueError:
        name = ""
    return f"was killed by signal {-code}{name}"


def _said(proc: subprocess.Popen | None) -> str:
    """`; it said: ...` with the end of the model's stderr, when it wrote any."""
    tail = getattr(proc, "stderr_tail", None)
    text = tail.text(wait=1.0) if isinstance(tail, _StderrTail) else ""
    return f"; it said: {text}" if text else ""


class _StderrTail:
    """The last bytes a model wrote to stderr. The SDK sends a model's stderr to /dev/null, so
    a model that exits at start (no numpy, wrong Python) left only an exit code; now a thread
    reads it until the model's end, keeps the last STDERR_TAIL_BYTES (a model that logs for
    weeks costs no memory) and the error quotes it."""

    def __init__(self, limit: int = STDERR_TAIL_BYTES) -> None:
        self._limit = limit
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def follow(self, stream) -> None:
        self._thread = threading.Thread(
            target=self._drain, args=(stream,), name="eim-stderr", daemon=True
        )
        self._thread.start()

    def _drain(self, stream) -> None:
        try:
            while chunk := os.read(stream.fileno(), 65536):
                with self._lock:
                    self._buf += chunk
                    del self._buf[: -self._limit]
        except (OSError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                stream.close()

    def text(self, wait: float = 0.0) -> str:
        """The tail as one printable line (control characters escaped), at most
        STDERR_TAIL_CHARS; `wait`: seconds to let the reader reach the end of a dead model."""
        if self._thread is not None:
            self._thread.join(wait)
        with self._lock:
            raw = bytes(self._buf)
        lines = [line.strip() for line in raw.decode("utf-8", "replace").splitlines()]
        text = " | ".join(line for line in lines if line)[-STDERR_TAIL_CHARS:]
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _SessionSubprocess:
    """`subprocess` as the SDK's runner module sees it: every model starts in a session (and
    process group) of its own, so stopping it ends whatever it started too: a helper child, or
    the child of a model that forks and lets its parent exit. Its stderr, which the SDK throws
    away, is followed by a _StderrTail (`proc.stderr_tail`) for the errors that say why a model
    stopped."""

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args, **kwargs) -> subprocess.Popen:  # noqa: N802 - stands in for subprocess's
        kwargs.setdefault("start_new_session", True)
        tail = None
        if kwargs.get("stderr") == subprocess.DEVNULL:
            kwargs["stderr"], tail = subprocess.PIPE, _StderrTail()
        proc = subprocess.Popen(*args, **kwargs)
        if tail is not None:
            tail.follow(proc.stderr)
            proc.stderr_tail = tail
        return proc


def _own_session_for_models() -> None:
    """Make the SDK start models through _SessionSubprocess (idempotent)."""
    from edge_impulse_linux import runner as sdk_runner

    if not isinstance(sdk_runner.subprocess, _SessionSubprocess):
        sdk_runner.subprocess = _SessionSubprocess()


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL what is left of the model's process group (the model is its leader; its pid
    stays reserved while any member lives, so no other program is hit)."""
    with contextlib.suppress(OSError):
        if os.getpgid(proc.pid) != proc.pid:  # the leader still runs in some other group
            return
    with contextlib.suppress(OSError):  # ESRCH: nothing left, the usual case
        os.killpg(proc.pid, signal.SIGKILL)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=2)
    _kill_group(proc)


def _reap(proc: subprocess.Popen, grace: float = 2.0) -> None:
    """Wait for a process the SDK has signalled; kill it if it lingers."""
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill(proc)
    else:
        _kill_group(proc)
