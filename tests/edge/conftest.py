"""Fixtures of the edge app's tests: spoken audio, scripted .eim models, endpoints, a microphone."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from devkit.fault_server import FaultServer
from devkit.pulse import VirtualMic, missing_tools, virtual_microphone
from devkit.scripted_eim import write_eim
from devkit.speech import KEYWORD, SENTENCE, Segment, compose, quiet, speak, write_wav


@dataclass(frozen=True)
class SpokenFile:
    """A WAV of: silence, the keyword, a pause, a sentence, silence; and where each part is."""

    path: Path
    audio: np.ndarray
    keyword: Segment
    sentence: Segment
    sentence_audio: np.ndarray


@pytest.fixture(scope="session")
def keyword_audio() -> np.ndarray:
    return speak(KEYWORD)


@pytest.fixture(scope="session")
def sentence_audio() -> np.ndarray:
    return speak(SENTENCE)


@pytest.fixture(scope="session")
def eim_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the scripted models live. Tests that SIGKILL the app (test_kill.py) leave its model
    running: the model has a session of its own (edgeml.py), and nothing signals it when its
    parent dies. At the end, every process still running a model from here is killed."""
    folder = tmp_path_factory.mktemp("eims")
    yield folder
    _kill_processes_running(folder)


def _kill_processes_running(folder: Path) -> None:
    """SIGKILL the processes whose command line names a file in `folder` (Linux /proc)."""
    marker = str(folder).encode() + b"/"
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes()[:65536]
            if marker in cmdline and int(entry.name) != os.getpid():
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):  # gone meanwhile, or not ours to kill
            continue


@pytest.fixture(scope="session")
def keyword_eim(eim_dir: Path, keyword_audio: np.ndarray) -> Path:
    """A scripted model that scores "listen" by matching the spoken keyword in the window."""
    return write_eim(eim_dir / "listen.eim", template=keyword_audio)


@pytest.fixture(scope="session")
def spoken_file(tmp_path_factory, keyword_audio, sentence_audio) -> SpokenFile:
    audio, parts = compose(quiet(1.0), keyword_audio, quiet(0.3), sentence_audio, quiet(2.0))
    path = write_wav(tmp_path_factory.mktemp("audio") / "keyword_then_sentence.wav", audio)
    return SpokenFile(path, audio, parts[1], parts[3], sentence_audio)


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    server = FaultServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def virtual_mic(tmp_path_factory) -> Iterator[VirtualMic]:
    """A PulseAudio daemon with a virtual microphone, for real pyaudio capture.

    Skips only when the PulseAudio tools are not installed (`make setup` installs them); a daemon
    that is installed but will not start is a failure.
    """
    missing = missing_tools()
    if missing:
        pytest.skip(f"no virtual microphone: {', '.join(missing)} not installed (make setup)")
    with virtual_microphone(tmp_path_factory.mktemp("pulse")) as mic:
        yield mic
