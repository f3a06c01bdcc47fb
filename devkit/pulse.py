"""A PulseAudio virtual microphone for machines without a sound card (CI, containers).

`virtual_microphone(dir)` starts a private pulseaudio daemon (as the current user, root included:
it then only warns) with a 16 kHz mono null sink `vspk`; its monitor is the default source, so
whatever is played into `vspk` is what a program capturing from the `pulse` device hears.
Clients find the daemon through PULSE_SERVER (pass `mic.env` to subprocesses).

The monitor of an idle sink gives exact zeros, which no microphone does; a quiet noise (about
-45 dBFS) is kept playing, like a real microphone's self-noise. Everything started is stopped
when the context exits.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SINK = "vspk"
REQUIRED = ("pulseaudio", "pactl", "pacat", "paplay")


class PulseUnavailable(RuntimeError):
    """pulseaudio is not installed or would not start here."""


@dataclass
class VirtualMic:
    env: dict[str, str]  # the full environment for clients (PULSE_SERVER set)
    log_path: Path

    def play(self, wav: Path) -> subprocess.Popen:
        """Start playing a WAV into the microphone; returns the paplay process."""
        return subprocess.Popen(
            ["paplay", f"--device={SINK}", str(wav)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def apply(self) -> None:
        """Point this process's own PortAudio/ALSA clients at the daemon."""
        for key in ("PULSE_SERVER", "XDG_RUNTIME_DIR", "PULSE_RUNTIME_PATH"):
            os.environ[key] = self.env[key]


def missing_tools() -> list[str]:
    return [tool for tool in REQUIRED if shutil.which(tool) is None]


@contextlib.contextmanager
def virtual_microphone(workdir: Path, *, start_timeout: float = 15.0) -> Iterator[VirtualMic]:
    """Run a private PulseAudio daemon with a virtual microphone; stop it afterwards."""
    missing = missing_tools()
    if missing:
        raise PulseUnavailable(
            f"missing {', '.join(missing)} (Debian: apt install pulseaudio pulseaudio-utils "
            "libasound2-plugins, or `make setup`)"
        )
    workdir = Path(workdir)
    runtime = workdir / "rt"
    home = workdir / "home"
    for d in (runtime, home):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700)
    sock = runtime / "native"
    conf = workdir / "pulse.pa"
    conf.write_text(
        f"load-module module-native-protocol-unix auth-anonymous=1 socket={sock}\n"
        f"load-module module-null-sink sink_name={SINK} rate=16000 channels=1\n"
        f"set-default-sink {SINK}\n"
        f"set-default-source {SINK}.monitor\n"
    )
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
        "PULSE_RUNTIME_PATH": str(runtime),
        "PULSE_SERVER": f"unix:{sock}",
    }
    log_path = workdir / "pulseaudio.log"
    with open(log_path, "wb") as log:
        daemon = subprocess.Popen(
            [
                "pulseaudio",
                "-n",  # no default script: only ours
                "-F",
                str(conf),
                "--daemonize=no",
                "--use-pid-file=no",
                "--exit-idle-time=-1",
                "--disallow-exit=yes",
                "--disable-shm=yes",
                "--log-target=stderr",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    dither = None
    try:
        _wait_ready(daemon, env, log_path, start_timeout)
        dither = subprocess.Popen(
            ["pacat", "-p", f"--device={SINK}", "--format=s16le", "--rate=16000",
             "--channels=1", "--volume=14000"],
            env=env,
            stdin=open("/dev/urandom", "rb"),  # noqa: SIM115 - closed with the process
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        yield VirtualMic(env=env, log_path=log_path)
    finally:
        if dither is not None:
            _terminate(dither)
            if dither.stdin:
                dither.stdin.close()
        _terminate(daemon)


def _wait_ready(daemon: subprocess.Popen, env: dict, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise PulseUnavailable(
                f"pulseaudio exited with {daemon.returncode}: {log_path.read_text()[-2000:]}"
            )
        probe = subprocess.run(["pactl", "info"], env=env, capture_output=True, timeout=10)
        if probe.returncode == 0:
            return
        time.sleep(0.2)
    raise PulseUnavailable(
        f"pulseaudio not ready in {timeout:.0f} s: {log_path.read_text()[-2000:]}"
    )


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
