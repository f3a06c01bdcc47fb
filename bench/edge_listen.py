"""Benchmark of the edge app's listening loop, through a real (virtual) microphone.

    .venv/bin/python bench/edge_listen.py [--cpu-seconds 30] [--trials 6]   (make bench-edge)

Measures, with speech played into a PulseAudio virtual microphone and captured by pyaudio:

1. CPU used by the listening loop (capture, 250 ms windows, .eim calls) per minute of audio,
   split into the app process and the model process; against the SDK's own loop
   (edge_impulse_linux AudioImpulseRunner.classifier) on the same model and device.
2. Keyword-to-recording latency: from the moment the end of the keyword has been captured to
   the moment the app has detected it (its recording starts there minus the pre-roll, so the
   recording itself starts BEFORE the keyword's end); against the original's approach, which
   closed the keyword stream at the detection and opened a new one to record.
3. How much of a sentence that starts 100 ms after the keyword ends up in the recording
   (target: all of it); same two approaches.

The keyword model is the scripted test .eim (tests/support/scripted_eim.py) that scores the
spoken keyword by matching it in the window, so the model process's own CPU is that of this
stand-in; the app process's share is what the app costs. Results: bench/results/edge.json and
edge.png. Timings on a shared machine are noisy: medians over trials are reported.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from tqdm import tqdm

from devkit.paths import REPO
from devkit.pulse import virtual_microphone
from devkit.scripted_eim import write_eim
from devkit.speech import compose, locate, quiet, speak, write_wav
from edgeml.audio import Audio
from edgeml.edgeml import EdgeML
from edgeml.recorder import Recorder
from edgeml.sources import MicSource
from edgeml.spotter import DetectorConfig, KeywordSpotter

RATE = 16000
OUT = REPO / "bench" / "results"
SENTENCE = "what is the weather like tomorrow morning"
GAP_SECONDS = 0.1  # the sentence starts 100 ms after the keyword ends

SDK_LOOP = """
import sys
from edge_impulse_linux.audio import AudioImpulseRunner
import pyaudio
pa = pyaudio.PyAudio()
device = next(i for i in range(pa.get_device_count())
              if pa.get_device_info_by_index(i)["name"] == "pulse")
pa.terminate()
with AudioImpulseRunner(sys.argv[1]) as runner:
    runner.init()
    print("listening", flush=True)
    for res, audio in runner.classifier(device_id=device):
        pass
"""


# ---------------------------------------------------------------------- 1. CPU
def _cpu_of_tree(proc: psutil.Process) -> tuple[float, float]:
    """(CPU seconds of the process, CPU seconds of its children) so far."""
    own = proc.cpu_times()
    kids = 0.0
    for child in proc.children(recursive=True):
        try:
            t = child.cpu_times()
            kids += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return own.user + own.system, kids


def measure_cpu(cmd: list[str], env: dict, seconds: float, ready: str) -> dict:
    """Start `cmd`, wait for `ready` on its output, then measure CPU over `seconds` of audio."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO
    )
    try:
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            if ready in line or time.monotonic() > deadline:
                break
        time.sleep(2.0)  # past the stream's start-up
        ps = psutil.Process(proc.pid)
        app0, model0 = _cpu_of_tree(ps)
        t0 = time.monotonic()
        time.sleep(seconds)
        app1, model1 = _cpu_of_tree(ps)
        wall = time.monotonic() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    per_min = 60.0 / wall
    return {
        "audio_seconds": round(wall, 2),
        "app_cpu_s_per_min": round((app1 - app0) * per_min, 3),
        "model_cpu_s_per_min": round((model1 - model0) * per_min, 3),
        "total_cpu_s_per_min": round((app1 - app0 + model1 - model0) * per_min, 3),
    }


# ---------------------------------------------------------------------- 2 + 3. latency, coverage
def spot(audio: Audio, model: EdgeML, start: int | None = None, timeout: float = 20.0):
    """Run the keyword loop until a detection; return it and the monotonic time it happened."""
    spotter = KeywordSpotter(audio, model, DetectorConfig("listen", 0.85))
    deadline = time.monotonic() + timeout
    for window in spotter.windows(model.info.window_samples, start):
        det = spotter.detector.update(model.classify(window.samples)["listen"], window.end_index)
        if det is not None:
            t_detect = time.monotonic()  # the app's recording could start from here on
            return spotter.track(det, model.info.window_samples), t_detect
        if time.monotonic() > deadline:
            raise TimeoutError("keyword not detected")
    raise RuntimeError("stream ended")


def covered(sentence_start: float, sentence_seconds: float, recording_start: float) -> float:
    """Share of the sentence [start, start + seconds) at or after `recording_start` (clock times)."""
    lost = min(max(0.0, recording_start - sentence_start), sentence_seconds)
    return round(1.0 - lost / sentence_seconds, 4)


def reopened_start_ms(recording: np.ndarray, sentence: np.ndarray) -> float | None:
    """Where the new stream's first sample falls, in ms after the keyword's end, by locating the
    sentence's last 300 ms in it (sample-exact; None when not even that was recorded)."""
    tail = sentence[-int(0.3 * RATE) :]
    offset, match = locate(recording, tail)
    if match < 0.8:
        return None
    sentence_start_in_rec = offset - (len(sentence) - len(tail))
    return round((GAP_SECONDS - sentence_start_in_rec / RATE) * 1000, 1)


ONE_STREAM = "one stream (this app)"
REOPEN = "close and reopen (original, measured)"
REOPEN_INSTANT = "close and reopen, instant reopen (best case)"


def trial(audio: Audio, model: EdgeML, mic, wav, keyword, sentence, approach: str, phase: float):
    """Play keyword + 100 ms + sentence into the mic; detect; record the way `approach` does.

    The 250 ms window grid starts `phase` seconds before the playback, so that over the trials
    the keyword's end falls at every point between two windows.
    """
    grid = audio.end
    time.sleep(phase)
    player = mic.play(wav)
    det, t_detect = spot(audio, model, start=grid)
    # where the keyword ended in the stream, and when those samples had arrived
    look = audio.read(det.end_index - 3 * RATE, 3 * RATE)
    kw_offset, _ = locate(look, keyword)
    kw_end = det.end_index - 3 * RATE + kw_offset + len(keyword)
    kw_end_time = audio.arrival_time(kw_end)
    sentence_start = kw_end_time + GAP_SECONDS
    seconds = len(sentence) / RATE
    records = {}
    if approach == ONE_STREAM:
        rec = Recorder(audio).record(det.end_index, det.keyword_end)  # the app's defaults
        starts_at = kw_end_time - (kw_end - rec.start_index) / RATE  # exact: same stream
        offset, match = locate(rec.samples, sentence)
        whole = bool(match > 0.9 and offset >= 0 and offset + len(sentence) <= len(rec.samples))
        records[ONE_STREAM] = {
            "detect_latency_ms": round((t_detect - kw_end_time) * 1000, 1),
            "recording_starts_ms_after_keyword_end": round((starts_at - kw_end_time) * 1000, 1),
            "sentence_coverage": covered(sentence_start, seconds, starts_at),
            "sentence_found_whole_in_recording": whole,
        }
        # the original's best case on this very detection: a new stream whose first sample is
        # the moment of detection (no device start-up at all)
        records[REOPEN_INSTANT] = {
            "detect_latency_ms": round((t_detect - kw_end_time) * 1000, 1),
            "recording_starts_ms_after_keyword_end": round((t_detect - kw_end_time) * 1000, 1),
            "sentence_coverage": covered(sentence_start, seconds, t_detect),
        }
    else:  # the original: close the keyword stream, open a new one, record a fixed length
        audio.stop()
        got: list[np.ndarray] = []
        rec_source = MicSource("pulse")
        rec_source.start(got.append, on_end=None)
        while sum(map(len, got)) < 4.5 * RATE:
            time.sleep(0.05)
        rec_source.stop()
        starts_ms = reopened_start_ms(np.concatenate(got), sentence)
        records[REOPEN] = {
            "detect_latency_ms": round((t_detect - kw_end_time) * 1000, 1),
            "recording_starts_ms_after_keyword_end": starts_ms,
            "sentence_coverage": covered(
                GAP_SECONDS, seconds, 1e9 if starts_ms is None else starts_ms / 1000
            ),
        }
        audio = Audio(MicSource("pulse"))
        audio.start()
        while audio.end < RATE:
            time.sleep(0.05)
    player.wait(timeout=30)
    return audio, records


def run_trials(mic, eim: Path, wav: Path, keyword, sentence, trials: int) -> dict:
    mic.apply()
    model = EdgeML(eim)
    model.start()
    results: dict[str, list[dict]] = {ONE_STREAM: [], REOPEN_INSTANT: [], REOPEN: []}
    audio = Audio(MicSource("pulse"))
    audio.start()
    try:
        while audio.end < RATE:
            time.sleep(0.05)
        order = [(a, k) for k in range(trials) for a in (ONE_STREAM, REOPEN)]
        for approach, k in tqdm(order, desc="trials"):
            phase = 0.25 * k / trials  # spread over one hop
            audio, records = trial(audio, model, mic, wav, keyword, sentence, approach, phase)
            for name, record in records.items():
                results[name].append(record)
    finally:
        audio.stop()
        model.stop()
    return results


def summarise(records: list[dict]) -> dict:
    out = {}
    for key in records[0]:
        values = [r[key] for r in records]
        if isinstance(values[0], bool):
            out[key] = f"{sum(values)}/{len(values)}"
        else:
            known = [v for v in values if v is not None]
            out[key] = {
                "median": statistics.median(known) if known else None,
                "min": min(known, default=None),
                "max": max(known, default=None),
            }
            if len(known) < len(values):  # the sentence's end was not even in the recording
                out[key]["not_measurable"] = len(values) - len(known)
    return out


# ---------------------------------------------------------------------- report
def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import textwrap

    import matplotlib.pyplot as plt

    def wrap(name: str) -> str:
        return "\n".join(textwrap.wrap(name, 16))

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
    cpu = report["cpu"]
    names = list(cpu)
    app = [cpu[n]["app_cpu_s_per_min"] for n in names]
    model = [cpu[n]["model_cpu_s_per_min"] for n in names]
    labels = [wrap(n) for n in names]
    axes[0].bar(labels, app, label="app process")
    axes[0].bar(labels, model, bottom=app, label="model process (scripted .eim)")
    axes[0].set_ylabel("CPU seconds per minute of audio")
    axes[0].set_title("Listening loop CPU")
    axes[0].legend(loc="lower right", fontsize=8)
    trials = report["trials"]
    for ax, key, title in [
        (axes[1], "sentence_coverage", "Share of the sentence recorded"),
        (
            axes[2],
            "recording_starts_ms_after_keyword_end",
            "Recording starts (ms after keyword end)",
        ),
    ]:
        data = [[r[key] for r in trials[a] if r[key] is not None] for a in trials]
        ax.boxplot(data)
        ax.set_xticks(range(1, len(trials) + 1), [wrap(a) for a in trials], fontsize=8)
        ax.set_title(title)
    axes[1].set_ylim(0, 1.05)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-seconds", type=float, default=30.0)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--replot", action="store_true", help="redraw edge.png from edge.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        chart(json.loads((args.out / "edge.json").read_text()), args.out / "edge.png")
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        keyword = speak("listen")
        sentence = speak(SENTENCE)
        eim = write_eim(tmp / "listen.eim", template=keyword)
        audio, _ = compose(quiet(1.0), keyword, quiet(GAP_SECONDS), sentence, quiet(1.5))
        wav = write_wav(tmp / "keyword_gap100ms_sentence.wav", audio)
        with virtual_microphone(tmp / "pulse") as mic:
            app = [sys.executable, str(REPO / "edgeml" / "main.py"), "--model", str(eim),
                   "--device", "pulse", "--spool-dir", str(tmp / "spool"),
                   "--endpoint", "http://127.0.0.1:9/score"]  # fmt: skip
            configs = {
                "this app": (app, "listening"),
                "this app + 80 Hz high-pass": (app + ["--highpass", "80"], "listening"),
                "this app, --vad energy (no VAD model loaded)": (
                    app + ["--vad", "energy"],
                    "listening",
                ),
                "SDK AudioImpulseRunner loop": (
                    [sys.executable, "-c", SDK_LOOP, str(eim)],
                    "listening",
                ),
            }
            cpu = {}
            for name, (cmd, ready) in tqdm(configs.items(), desc="cpu"):
                cpu[name] = measure_cpu(cmd, mic.env, args.cpu_seconds, ready)
            trials = run_trials(mic, eim, wav, keyword, sentence, args.trials)

    base = cpu["SDK AudioImpulseRunner loop"]["total_cpu_s_per_min"]
    report = {
        "machine": {
            "cpus": psutil.cpu_count(),
            "python": platform.python_version(),
            "note": "shared 2-core machine; virtual PulseAudio microphone",
        },  # fmt: skip
        "keyword_model": "scripted .eim (template match), 1 s window, 250 ms hop",
        "sentence_gap_after_keyword_s": GAP_SECONDS,
        "cpu": cpu,
        "cpu_ratio_vs_sdk_loop": {
            n: round(c["total_cpu_s_per_min"] / base, 3) if base else None for n, c in cpu.items()
        },
        "trials": trials,
        "summary": {a: summarise(r) for a, r in trials.items()},
    }
    (args.out / "edge.json").write_text(json.dumps(report, indent=2))
    chart(report, args.out / "edge.png")
    print(json.dumps({"cpu": cpu, "summary": report["summary"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
