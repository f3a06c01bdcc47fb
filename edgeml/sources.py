"""Where the audio comes from: a microphone (pyaudio) or a WAV file replayed through the same path.

Both sources deliver 16 kHz mono int16 blocks to one callback (`Audio` puts them into the ring
buffer); everything after that is the same code, so a test or demo with `--input FILE.wav`
exercises what runs on the device.

Microphones: chosen by index or by a piece of their name (`--device "USB"`), listed by
`--list-devices`. Many USB microphones only do 44.1/48 kHz; then the stream runs at the
device's rate and is resampled to 16 kHz with soxr (streaming, so block edges are seamless).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import soxr

from edgeml.audioformat import SAMPLE_RATE, AudioFileError, clip_int16, read_int16

log = logging.getLogger("edgeml.audio")

BLOCK = 1024  # frames per pyaudio buffer (64 ms at 16 kHz)
INPUT_SPEEDS = ("realtime", "fast")

Sink = Callable[[np.ndarray], None]


class Source(Protocol):
    """What `Audio` needs of a source."""

    live: bool  # True: audio arrives by the clock and is lost if nobody reads it in time

    def start(
        self, sink: Sink, *, on_end: Callable[[], None], blocking_sink: Sink | None = None
    ) -> None: ...

    def stop(self) -> None: ...


class AudioSourceError(RuntimeError):
    """The audio source cannot be opened or used (no such device, unreadable file, ...)."""


@dataclass(frozen=True)
class SourceConfig:
    """Where the audio comes from: a microphone (by index or name part), or a file replayed."""

    device: str | None = None  # None: the default input
    input: Path | None = None  # a WAV (any format libsndfile reads) instead of the microphone
    input_speed: str = "realtime"  # or "fast": as fast as the reader takes it


def open_source(config: SourceConfig) -> Source:
    """The source the settings ask for (not started yet)."""
    if config.input is not None:
        return FileSource(config.input, realtime=config.input_speed == "realtime")
    return MicSource(config.device)


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_rate: int
    host_api: str


@contextlib.contextmanager
def _quiet_stderr(enabled: bool = True) -> Iterator[None]:
    """PortAudio probes ALSA, JACK and OSS on start and prints pages of noise to fd 2."""
    if not enabled:
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_pyaudio():
    """A PyAudio instance, without PortAudio's start-up chatter (unless debug logging is on)."""
    import pyaudio

    with _quiet_stderr(not log.isEnabledFor(logging.DEBUG)):
        return pyaudio.PyAudio()


def input_devices(pa) -> list[InputDevice]:
    devices = []
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        if int(info.get("maxInputChannels", 0)) > 0:
            devices.append(
                InputDevice(
                    index=i,
                    name=str(info["name"]),
                    channels=int(info["maxInputChannels"]),
                    default_rate=int(info["defaultSampleRate"]),
                    host_api=str(pa.get_host_api_info_by_index(info["hostApi"])["name"]),
                )
            )
    return devices


def list_devices() -> list[InputDevice]:
    """Every input device PortAudio knows, for `--list-devices`."""
    pa = open_pyaudio()
    try:
        return input_devices(pa)
    finally:
        pa.terminate()


def choose_device(
    devices: list[InputDevice], wanted: str | None, default_index: int | None
) -> InputDevice:
    """`wanted` is an index ("2"), a name substring ("USB"), or None for the default input."""
    if not devices:
        raise AudioSourceError("no audio input device found (is a microphone plugged in?)")
    if wanted is None or wanted == "":
        for dev in devices:
            if dev.index == default_index:
                return dev
        return devices[0]
    if wanted.strip().lstrip("-").isdigit():
        for dev in devices:
            if dev.index == int(wanted):
                return dev
        raise AudioSourceError(f"no input device with index {wanted}; {_names(devices)}")
    matches = [dev for dev in devices if wanted.lower() in dev.name.lower()]
    if not matches:
        raise AudioSourceError(f"no input device matches {wanted!r}; {_names(devices)}")
    exact = [dev for dev in matches if dev.name.lower() == wanted.lower()]
    if len(matches) > 1 and not exact:
        log.warning("%d devices match %r, using %r", len(matches), wanted, matches[0].name)
    return (exact or matches)[0]


def _names(devices: list[InputDevice]) -> str:
    return "inputs: " + ", ".join(f"{d.index}: {d.name}" for d in devices) + " (--list-devices)"


class MicSource:
    """One pyaudio input stream, open for the whole run, pushing 16 kHz int16 blocks to a sink."""

    live = True  # audio keeps coming whether or not anyone reads it

    def __init__(self, device: str | None = None) -> None:
        self.device_wanted = device
        self.device: InputDevice | None = None
        self.rate = SAMPLE_RATE
        self.channels = 1
        self._pa = None
        self._stream = None
        self._resampler: soxr.ResampleStream | None = None
        self._sink: Sink | None = None
        self.overflows = 0

    def start(
        self,
        sink: Sink,
        *,
        on_end: Callable[[], None] | None = None,
        blocking_sink: Sink | None = None,
    ) -> None:
        """Open the stream; blocks go to `sink` from PortAudio's thread (a mic never ends)."""
        import pyaudio

        self._sink = sink
        # PortAudio counts initialisations and only enumerates devices on the first: a failed
        # start must terminate, or a replugged microphone would never be seen again.
        self._pa = open_pyaudio()
        try:
            self._open(pyaudio)
        except BaseException:
            self.stop()
            raise
        log.info(
            "capturing from device %d %r at %d Hz, %d channel(s)",
            self.device.index,
            self.device.name,
            self.rate,
            self.channels,
        )

    def _open(self, pyaudio) -> None:
        try:
            default = self._pa.get_default_input_device_info()["index"]
        except OSError:
            default = None
        self.device = choose_device(input_devices(self._pa), self.device_wanted, default)
        self.rate, self.channels = self._pick_format(pyaudio)
        if self.rate != SAMPLE_RATE:
            self._resampler = soxr.ResampleStream(self.rate, SAMPLE_RATE, 1, dtype="float32")
            log.info("device does not do 16 kHz: capturing at %d Hz, resampling", self.rate)
        frames = max(256, int(BLOCK * self.rate / SAMPLE_RATE))
        try:
            self._stream = self._pa.open(
                rate=self.rate,
                channels=self.channels,
                format=pyaudio.paInt16,
                input=True,
                input_device_index=self.device.index,
                frames_per_buffer=frames,
                stream_callback=self._callback,
            )
        except OSError as exc:
            raise AudioSourceError(f"cannot open input device {self.device.name!r}: {exc}") from exc

    def _pick_format(self, pyaudio) -> tuple[int, int]:
        """16 kHz mono if the device takes it, else its native rate and/or two channels."""
        dev = self.device
        for rate in (SAMPLE_RATE, dev.default_rate, 48000, 44100):
            for channels in (1, min(2, dev.channels)):
                try:
                    if self._pa.is_format_supported(
                        rate,
                        input_device=dev.index,
                        input_channels=channels,
                        input_format=pyaudio.paInt16,
                    ):
                        return rate, channels
                except ValueError:
                    continue
        raise AudioSourceError(f"input device {dev.name!r} supports no usable 16-bit format")

    def _callback(self, in_data, frame_count, time_info, status):
        import pyaudio

        if status & pyaudio.paInputOverflow:
            self.overflows += 1
        try:
            block = np.frombuffer(in_data, dtype=np.int16)
            if self.channels > 1:
                block = block.reshape(-1, self.channels).mean(axis=1).astype(np.int16)
            if self._resampler is not None:
                block = clip_int16(self._resampler.resample_chunk(block.astype(np.float32)))
            if self._sink is not None and len(block):
                self._sink(block)
        except Exception:  # noqa: BLE001 - an exception here would kill the stream silently
            log.exception("audio callback failed")
        return None, pyaudio.paContinue

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.stop_stream()
            with contextlib.suppress(OSError):
                stream.close()
        pa, self._pa = self._pa, None
        if pa is not None:
            pa.terminate()


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def input_problem(path: Path) -> str | None:
    """What is wrong with `path` as an --input WAV file, in words (None: a readable regular
    file). A folder, a FIFO or /dev/null all used to be "input file not found", and a FIFO
    would block the reader; they are told apart without opening anything."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"input file not found: {path}"
    except OSError as exc:
        return f"cannot use input file {path}: {exc.strerror or exc}"
    for test, kind in _KINDS:
        if test(mode):
            return f"input {path} is {kind}, not a WAV file"
    if not os.access(path, os.R_OK):
        return f"cannot read input file {path}: permission denied"
    return None


class FileSource:
    """Replays a WAV file as if it were the microphone: in real time, or as fast as possible.

    Fast replay waits for the reader (the ring buffer's back-pressure) so no audio is skipped;
    real-time replay paces blocks by the clock like a microphone, and is `live`.
    """

    def __init__(self, path: str | Path, *, realtime: bool = True) -> None:
        self.path = Path(path)
        self.realtime = realtime
        self.live = realtime
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(
        self, sink: Sink, *, on_end: Callable[[], None], blocking_sink: Sink | None = None
    ) -> None:
        """Start replaying; fast replay writes through `blocking_sink` (waits for the reader)."""
        problem = input_problem(self.path)
        if problem:
            raise AudioSourceError(problem)
        try:
            samples = read_int16(self.path)
        except AudioFileError as exc:
            raise AudioSourceError(str(exc)) from exc
        write = sink if self.realtime or blocking_sink is None else blocking_sink
        self._thread = threading.Thread(
            target=self._run, args=(samples, write, on_end), name="file-source", daemon=True
        )
        log.info(
            "replaying %s (%.2f s, %s)",
            self.path,
            len(samples) / SAMPLE_RATE,
            "real time" if self.realtime else "fast",
        )
        self._thread.start()

    def _run(self, samples: np.ndarray, write: Sink, on_end: Callable[[], None]) -> None:
        t0 = time.monotonic()
        try:
            for start in range(0, len(samples), BLOCK):
                if self._stop.is_set():
                    return
                if self.realtime:
                    due = t0 + (start + BLOCK) / SAMPLE_RATE
                    delay = due - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        return
                write(samples[start : start + BLOCK])
        finally:
            on_end()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
