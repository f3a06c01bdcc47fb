"""The server side of the Edge Impulse Linux runner protocol: what a `.eim` executable speaks.

An Edge Impulse `.eim` is started as `model.eim <socket path>`; it listens on that AF_UNIX
stream socket, accepts one client and answers JSON messages. This module reproduces the
behaviour of Edge Impulse's own runner (example-standalone-inferencing-linux, `eim` target):

- requests are bare JSON objects, framed by counting `{` and `}` (no separator);
- every reply is one JSON object followed by `"\\n\\0"`;
- `{"id": N, "hello": 1}` -> `project`, `model_parameters`, `inferencing_engine`;
- `{"id": N, "classify": [features]}` -> `result.classification` and `timing` (ms);
- `{"id": N, "classify_continuous": [slice]}` -> the same over a sliding window;
- served on a socket, the hello also offers `features_shm` (a POSIX shared-memory block of
  `input_features_count` float32s), and `{"id": N, "classify_shm": {"elements": n}}` classifies
  what the client wrote there: the SDK (edge_impulse_linux 1.2) then sends no features as JSON,
  which was most of a 2 s window's cost per hop (216 KB of JSON written, read and parsed);
- errors come back as `{"id": N, "success": false, "error": "..."}` with the runner's wording;
- `model.eim --print-info` prints the hello reply, `model.eim stdin` reads requests on stdin.

It needs the standard library and numpy only, so it can be packed into an exported model and
into the scripted test models that exercise the real `edge_impulse_linux` SDK.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from kwtrain.fastjson import ClassifyDecoder

SENSOR_MICROPHONE = 1
ENGINE_NONE = 255  # what the hello reports for an impulse with no TFLite/ONNX engine inside
SLICES_PER_MODEL_WINDOW = 4  # Edge Impulse's default: continuous mode advances 1/4 window


@dataclass
class Classification:
    """One classification: a score per label, and the time spent (ms) as the runner reports it."""

    scores: dict[str, float]
    dsp_ms: int = 0
    classification_ms: int = 0


class Impulse(Protocol):
    """What a model must offer to be served: its hello description and a classify function."""

    def hello(self) -> dict:
        """`{"project": {...}, "model_parameters": {...}}` as in the runner's hello reply."""

    def classify(self, features: np.ndarray) -> Classification:
        """Classify one window of `input_features_count` raw features (int16 sample values)."""


def audio_model_parameters(
    labels: list[str],
    *,
    frequency: int = 16000,
    window_samples: int = 16000,
    slices_per_window: int = SLICES_PER_MODEL_WINDOW,
    thresholds: list[dict] | None = None,
) -> dict:
    """The `model_parameters` block of a hello for a microphone classification impulse."""
    return {
        "input_features_count": window_samples,
        "sensor": SENSOR_MICROPHONE,
        "frequency": frequency,
        "interval_ms": 1000.0 / frequency,
        "axis_count": 1,
        "image_input_width": 0,
        "image_input_height": 0,
        "image_input_frames": 0,
        "image_channel_count": 0,
        "image_resize_mode": "none",
        "label_count": len(labels),
        "has_anomaly": 0,
        "has_object_tracking": False,
        "labels": list(labels),
        "model_type": "classification",
        "slice_size": window_samples // slices_per_window,
        "use_continuous_mode": True,
        "inferencing_engine": ENGINE_NONE,
        "thresholds": thresholds or [],
    }


def project_info(name: str, *, owner: str = "local", project_id: int = 0, version: int = 1) -> dict:
    """The `project` block of a hello."""
    return {
        "id": project_id,
        "owner": owner,
        "name": name,
        "deploy_version": version,
        "impulse_id": 1,
        "impulse_name": "Impulse #1",
    }


SHM_DIR = "/dev/shm"  # where Linux keeps POSIX shared memory (shm_open's names)


class FeatureMemory:
    """The `features_shm` block: a POSIX shared-memory segment of float32 features.

    Made as a file in /dev/shm (what shm_open does on Linux), with a random name and mode 0600;
    the SDK maps it by name with multiprocessing.shared_memory. The name is removed as soon as
    the client has mapped it (its first request after the hello) and when the connection ends,
    so a model killed outright leaves nothing behind unless it dies in between."""

    def __init__(self, elements: int, directory: str | None = None) -> None:
        self.elements = int(elements)
        self.name = f"ei-kwtrain-{os.getpid()}-{secrets.token_hex(8)}"
        self.path = os.path.join(directory or SHM_DIR, self.name)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, self.elements * 4)
            self._map = mmap.mmap(fd, self.elements * 4)
        except BaseException:
            self.unlink()
            raise
        finally:
            os.close(fd)
        self.array = np.ndarray((self.elements,), dtype=np.float32, buffer=self._map)

    @classmethod
    def create(cls, elements: int, directory: str | None = None) -> FeatureMemory | None:
        """A block, or None where shared memory cannot be made (no /dev/shm, full, read-only):
        the client then sends JSON as before."""
        try:
            return cls(elements, directory)
        except (OSError, ValueError):
            return None

    def hello_entry(self) -> dict:
        return {"name": "/" + self.name, "type": "float32", "elements": self.elements}

    def read(self, n: int) -> np.ndarray:
        return np.array(self.array[:n], dtype=np.float32)  # a copy: the client may write again

    def unlink(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def close(self) -> None:
        self.unlink()
        self.array = np.zeros(0, np.float32)
        with contextlib.suppress(BufferError, ValueError):
            self._map.close()


def _error(msg_id: int | None, text: str) -> dict:
    reply: dict = {"success": False, "error": text}
    if msg_id is not None:
        reply = {"id": msg_id, **reply}
    return reply


@dataclass
class RunnerState:
    """The protocol state of one connection: initialised by hello, a window for continuous mode."""

    impulse: Impulse
    initialized: bool = False
    shared_memory: bool = False  # offer `features_shm` in the hello (socket serving)
    _window: np.ndarray | None = field(default=None, repr=False)
    _shm: FeatureMemory | None = field(default=None, repr=False)

    @property
    def params(self) -> dict:
        return self.impulse.hello()["model_parameters"]

    def handle(self, msg: object, json_ms: int = 0, stdin_ms: int = 0) -> dict:
        """Answer one decoded request exactly as Edge Impulse's runner would."""
        if (
            not isinstance(msg, dict)
            or not isinstance(msg.get("id"), int)
            or isinstance(msg.get("id"), bool)
        ):
            return _error(None, "Missing 'id' field in message")
        msg_id = msg["id"]
        if isinstance(msg.get("hello"), int):
            return self._hello(msg_id, msg["hello"])
        if not self.initialized:
            return _error(msg_id, "Invalid message, should initialize first")
        if self._shm is not None:  # the client has mapped the block by now (the SDK does so
            self._shm.unlink()  # right after the hello): its name is no longer needed
        if isinstance(msg.get("classify_shm"), dict):
            return self._classify_shm(msg_id, msg["classify_shm"], json_ms, stdin_ms)
        if isinstance(msg.get("classify"), (list, np.ndarray)):
            return self._classify(msg_id, msg["classify"], "classify", json_ms, stdin_ms)
        if isinstance(msg.get("classify_continuous"), (list, np.ndarray)):
            return self._classify(
                msg_id, msg["classify_continuous"], "classify_continuous", json_ms, stdin_ms
            )
        if isinstance(msg.get("set_threshold"), dict):
            return self._set_threshold(msg_id, msg["set_threshold"])
        return _error(msg_id, "Failed to handle message")

    def _hello(self, msg_id: int, version: int) -> dict:
        if self.initialized:
            return _error(msg_id, "Invalid message 'hello', already initialized")
        if version != 1:
            return _error(msg_id, "Invalid value for 'hello', only 1 supported")
        self.initialized = True
        info = self.impulse.hello()
        engine = info["model_parameters"].get("inferencing_engine", ENGINE_NONE)
        reply = {
            "id": msg_id,
            "success": True,
            "project": info["project"],
            "model_parameters": info["model_parameters"],
            "inferencing_engine": {"engine_type": engine, "properties": []},
        }
        if self.shared_memory:
            self._shm = FeatureMemory.create(info["model_parameters"]["input_features_count"])
            if self._shm is not None:
                reply["features_shm"] = self._shm.hello_entry()
        return reply

    def _classify_shm(self, msg_id: int, req: dict, json_ms: int, stdin_ms: int) -> dict:
        if self._shm is None:
            return _error(msg_id, "No shared memory was set up ('features_shm' not in hello)")
        n = req.get("elements")
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= self._shm.elements:
            return _error(msg_id, "Invalid 'elements' in 'classify_shm'")
        return self._classify(msg_id, self._shm.read(n), "classify", json_ms, stdin_ms)

    def close(self) -> None:
        """Remove the shared memory (the connection is over)."""
        shm, self._shm = self._shm, None
        if shm is not None:
            shm.close()

    def _classify(self, msg_id: int, data: list, kind: str, json_ms: int, stdin_ms: int) -> dict:
        if not isinstance(data, np.ndarray) and not all(  # fastjson arrays are numbers already
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in data
        ):
            return _error(msg_id, "Failed to parse classify array, should contain all numbers")
        params = self.params
        expected = params["input_features_count"] if kind == "classify" else params["slice_size"]
        if len(data) != expected:
            return _error(
                msg_id,
                f"Invalid number of features in '{kind}', expected {expected} but got {len(data)}",
            )
        features = np.asarray(data, dtype=np.float32)
        if kind == "classify_continuous":
            features = self._slide(features, params["input_features_count"])
        try:
            result = self.impulse.classify(features)
        except Exception:  # the real runner reports a failed run_classifier() by its error code
            return _error(msg_id, "Classifying failed, error code was -5")
        return {
            "id": msg_id,
            "success": True,
            "result": {"classification": {k: float(v) for k, v in result.scores.items()}},
            "timing": {
                "dsp": int(result.dsp_ms),
                "classification": int(result.classification_ms),
                "anomaly": 0,
                "json": int(json_ms),
                "stdin": int(stdin_ms),
            },
        }

    def _slide(self, features: np.ndarray, window: int) -> np.ndarray:
        """Continuous mode: append the slice to a window that starts as silence."""
        if self._window is None:
            self._window = np.zeros(window, dtype=np.float32)
        self._window = np.concatenate([self._window[len(features) :], features])
        return self._window

    def _set_threshold(self, msg_id: int, obj: dict) -> dict:
        if not isinstance(obj.get("id"), int):
            return _error(msg_id, "set_threshold should have a numeric field 'id'")
        thresholds = self.params.get("thresholds") or []
        block = next((t for t in thresholds if t.get("id") == obj["id"]), None)
        if block is None:
            return _error(msg_id, "set_threshold: cannot find learn block with this id")
        if isinstance(obj.get("min_score"), (int, float)):
            block["min_score"] = float(obj["min_score"])
        return {"id": msg_id, "success": True}


def _braces(chunk: bytes) -> list[tuple[int, int]]:
    """(offset, byte) of every brace in the chunk, in order. bytes.find (memchr) skips the
    long number arrays of classify requests about ten times faster than a regex scan."""
    found = []
    for brace in (b"{", b"}"):
        i = chunk.find(brace)
        while i >= 0:
            found.append((i, brace[0]))
            i = chunk.find(brace, i + 1)
    found.sort()
    return found


def iter_messages(chunks: Iterator[bytes]) -> Iterator[tuple[object, int]]:
    """Split a byte stream into JSON requests by brace counting, as the real runner does.

    Yields (decoded message or None when it does not parse, ms spent receiving it). Only the
    braces are visited (bytes.find), so a 16000-sample classify costs well under a millisecond.
    """
    buf = bytearray()
    depth = 0
    started = 0.0
    decoder = ClassifyDecoder()
    for chunk in chunks:
        pos = 0
        for at, brace in _braces(chunk):
            if depth == 0:
                pos = at  # bytes between messages are dropped
                started = time.monotonic()
            depth += 1 if brace == 123 else -1  # "{"
            if depth == 0:
                buf += chunk[pos : at + 1]
                pos = at + 1
                try:
                    msg = decoder.decode(bytes(buf))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    msg = None
                yield msg, int((time.monotonic() - started) * 1000)
                buf.clear()
        if depth > 0:
            buf += chunk[pos:]


def _encode(reply: dict) -> bytes:
    return (json.dumps(reply, separators=(",", ":")) + "\n").encode("utf-8") + b"\x00"


def _answer(state: RunnerState, msg: object, stdin_ms: int) -> dict:
    t0 = time.monotonic()
    if msg is None:
        return {"error": "Failed to parse message"}
    return state.handle(msg, json_ms=int((time.monotonic() - t0) * 1000), stdin_ms=stdin_ms)


def listen_socket(socket_path: str) -> socket.socket:
    """A listening AF_UNIX socket at `socket_path`, connectable as soon as the path exists.

    The SDK connects as soon as the socket file exists. bind() creates the file before listen()
    makes it connectable, so the socket is bound under a temporary name and renamed into place
    once it listens: the client never sees a path that refuses the connection.
    """
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    staging = f"{socket_path}.{os.getpid()}.tmp"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(staging)
    server.listen(10)
    os.rename(staging, socket_path)
    return server


def serve_connection(impulse: Impulse, server: socket.socket) -> int:
    """Accept one client on a listening socket and answer until it hangs up (as the runner)."""
    print(f"Waiting for connection on {server.getsockname()}...", flush=True)
    conn, _ = server.accept()
    print("Connected", flush=True)
    state = RunnerState(impulse, shared_memory=True)

    def chunks() -> Iterator[bytes]:
        while data := conn.recv(1 << 20):  # a 2 s window is ~220 KB: few, large reads
            yield data

    try:
        with conn, server:
            for msg, stdin_ms in iter_messages(chunks()):
                conn.sendall(_encode(_answer(state, msg, stdin_ms)))
    finally:  # also on the SDK's SIGINT (KeyboardInterrupt) and a client gone mid-reply
        state.close()
    return 0


def serve_socket(impulse: Impulse, socket_path: str) -> int:
    """`model.eim <socket path>`: listen there, serve one client."""
    return serve_connection(impulse, listen_socket(socket_path))


def serve_stdin(impulse: Impulse) -> int:
    """`model.eim stdin`: requests on stdin, replies on stdout (newline-terminated)."""
    state = RunnerState(impulse)

    def chunks() -> Iterator[bytes]:
        while data := sys.stdin.buffer.read1(65536):
            yield data

    for msg, stdin_ms in iter_messages(chunks()):
        sys.stdout.write(json.dumps(_answer(state, msg, stdin_ms)) + "\n")
        sys.stdout.flush()
    return 0


def print_info(impulse: Impulse) -> int:
    """`model.eim --print-info`: the hello reply, pretty-printed, as the runner prints it."""
    print("Edge Impulse Linux impulse runner - printing model metadata")
    print(json.dumps(RunnerState(impulse).handle({"id": 1, "hello": 1}), indent=4))
    return 0


def main(load_impulse: Callable[[], Impulse], argv: list[str] | None = None) -> int:
    """Entry point of a .eim: `<socket path>`, `--print-info` or `stdin`, like the real runner."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("Requires one parameter (either: '--print-info', 'stdin' or the name of a socket)")
        return 1
    impulse = load_impulse()
    if argv[0] == "--print-info":
        return print_info(impulse)
    if argv[0] == "stdin":
        print(
            "Edge Impulse Linux impulse runner - listening for JSON messages on stdin", flush=True
        )
        return serve_stdin(impulse)
    print(
        f"Edge Impulse Linux impulse runner - listening for JSON messages on socket '{argv[0]}'",
        flush=True,
    )
    return serve_socket(impulse, argv[0])
