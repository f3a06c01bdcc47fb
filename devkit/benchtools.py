"""What the benchmarks share: where results go, the machine they ran on, memory, test audio.

Benchmarks compare against a baseline in the same run and report medians and ratios: this
machine is shared and noisy. Each writes JSON (and a PNG where a chart says more) to
bench/results/, and records the CPU it ran on, since int8/bf16 speed depends on it.
"""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import numpy as np

from devkit.models import build_ctc_model
from devkit.paths import REPO, speech_dir
from devkit.scoring_client import noise_signal

RESULTS = REPO / "bench" / "results"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "voice-to-text"


def base_model() -> Path:
    """wav2vec2-base architecture with random weights, built once into the user cache."""
    folder = CACHE / "bench" / "wav2vec2-base-random"
    if not (folder / "model.safetensors").is_file():
        print(f"building the wav2vec2-base-architecture model in {folder} ...", flush=True)
        build_ctc_model(folder, tiny=False)
    return folder


def speech(seconds: float) -> tuple[np.ndarray, str]:
    """Real speech (the utt clips end to end) cut to length, or noise when the data is absent."""
    import soundfile as sf

    found = speech_dir()
    if found is None:
        return noise_signal(seconds, seed=1), "noise (speech data absent)"
    clips = [sf.read(p, dtype="float32")[0] for p in sorted((found / "utt").glob("*.wav"))]
    audio = np.concatenate(clips)
    return audio[: int(seconds * 16000)].copy(), "real speech (speech/utt clips)"


def peak_rss_mb(server) -> float:
    """Largest VmHWM (peak resident set) among the server's worker processes."""
    import psutil

    peaks = []
    for proc in psutil.Process(server.process.pid).children(recursive=True):
        with contextlib.suppress(OSError, psutil.Error):
            status = Path(f"/proc/{proc.pid}/status").read_text()
            line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
            peaks.append(int(line.split()[1]) / 1024)
    return max(peaks, default=float("nan"))


def machine_description() -> str:
    """CPU model and the SIMD features that decide int8 speed (VNNI / AMX make int8 much faster)."""
    flags, model = set(), platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{model}, {os.cpu_count()} cores, {' '.join(simd) or 'no AVX2'}"
