"""Helpers for the edge app's tests: running the device app as a real process, as a user does.

Speech (devkit.speech), the fault-injecting endpoint (devkit.fault_server), the scripted .eim
models (devkit.scripted_eim) and the virtual microphone (devkit.pulse) are shared with the
benchmarks in devkit/.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time

import numpy as np

from devkit.paths import EDGE_MAIN

# Deadlines of a process, not budgets being measured: they stretch where the CPU is slow. The
# arm64 check runs these tests under qemu, 3-4x slower than native on a quiet host and slower
# still on a busy or older one (a 60 s run limit was missed there); EDGEML_TEST_TIME_SCALE sets it.
TIME_SCALE = float(
    os.environ.get("EDGEML_TEST_TIME_SCALE")
    or (6.0 if platform.machine().lower() in ("aarch64", "arm64") else 1.0)
)


def app_env(extra: dict | None = None) -> dict[str, str]:
    """A clean environment for main.py: no EDGEML_/SCORING_ leftovers from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEML_", "SCORING_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_main(
    args: list[str], *, env: dict | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess:
    """`python edgeml/main.py ARGS` from the repository root, as a user would run it."""
    return subprocess.run(
        [sys.executable, str(EDGE_MAIN), *map(str, args)],
        env=app_env(env),
        capture_output=True,
        text=True,
        timeout=timeout * TIME_SCALE,
        cwd=EDGE_MAIN.parents[1],
    )


def start_main(args: list[str], *, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(EDGE_MAIN), *map(str, args)],
        env=app_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=EDGE_MAIN.parents[1],
    )


def wait_for_line(stream, needle: str, timeout: float, seen: list[str] | None = None) -> bool:
    """Read lines from a text pipe until one contains `needle` (kept in `seen`)."""
    deadline = time.monotonic() + timeout * TIME_SCALE
    box: list[bool] = []

    def reader() -> None:
        for line in stream:
            if seen is not None:
                seen.append(line)
            if needle in line:
                box.append(True)
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    return bool(box)


def holds(recording: np.ndarray, piece: np.ndarray) -> bool:
    """`piece` occurs sample-exact in `recording`: a replayed file reaches the app sample-exact at
    16 kHz, so a stored recording holds exactly the audio said (or does not hold it at all)."""
    raw, part = recording.astype("<i2").tobytes(), piece.astype("<i2").tobytes()
    at = raw.find(part)
    while at != -1 and at % 2:
        at = raw.find(part, at + 1)
    return at != -1
