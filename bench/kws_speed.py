"""Listening cost of the keyword model: CPU of the .eim process per second of streamed audio.

    .venv/bin/python bench/kws_speed.py [--model edgeml/models/listen.eim] [--seconds 120]
                                                                              (make bench-kws)

What the device pays while it waits for the keyword: the edge app sends the model a window
every 250 ms (the embedding model's window is 2.25 s, 36000 int16 values), through
edge_impulse_linux's ImpulseRunner: into the model's shared memory where its hello offers
`features_shm` (this project's .eims), else as JSON. Measured in the same run, interleaved,
`--repeats` times:

- the speech-embedding .eim (default: the shipped listen.eim); as the baseline rows, the same
  .eim with the features sent as JSON (the SDK's `allow_shm=False`: what every hop cost before
  the shared memory), the
  round-1 listen.eim (`--baseline-ref`, from git: the unsplit embedding model on every 76-frame
  window, the mel model's own whole-call floor) and an MFCC + 1-D CNN .eim of Studio's default
  shape (1 s window; random weights, same arithmetic);
- for each: the CPU time (user + system, psutil) of the .eim process while a real-speech
  stream (speech_long, else generated speech-like sound) is classified hop by hop through the
  SDK, per second of audio (target: <= 10 ms/s), the SDK round trip per hop, and the CPU of
  the client (this process: the app's side of the SDK) per second of audio;
- in-process, per hop of the embedding model, where the time goes: the request decode
  (fastjson), the mel of the new samples, part A of the embedding model on the new frames,
  part B per new position, the head; and the unsplit embedding model on one 76-frame window
  (what the previous runtime ran for every new position).
The machine is shared: the load average before and after is in the JSON; compare rows of one
run. Writes bench/results/kws_speed.json and kws_speed.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from devkit.paths import REPO, speech_dir
from edgeml.audioformat import read_audio

HOP = 4000
NEW = "embedding (--model)"
JSON_ROW = "same, features as JSON (allow_shm=False)"
# the merge of round 1 (issue 10): its listen.eim runs the previous front end
ROUND1_REF = "d5df721"


def stream_audio(seconds: float) -> np.ndarray:
    """int16 values of real speech (speech_long, file after file), else speech-like sound."""
    n = int(seconds * 16000)
    sp = speech_dir()
    if sp is not None and (sp / "speech_long").is_dir():
        parts, have = [], 0
        for f in sorted((sp / "speech_long").glob("*.wav")):
            parts.append(read_audio(f))
            have += len(parts[-1])
            if have >= n + 36000:
                break
        x = np.concatenate(parts)[: n + 36000]
    else:
        from devkit.mfcc_reference import speechlike

        x = np.concatenate([speechlike(i) / 32768 for i in range(int(seconds) + 3)])[: n + 36000]
    return np.round(np.clip(x, -1, 32767 / 32768) * 32768).astype(np.int32)


def mfcc_baseline_eim(folder: Path) -> Path:
    """An MFCC + CNN .eim of Studio's default shape (weights random: the cost is the same)."""
    from kwtrain.mfcc.export import export_eim
    from kwtrain.mfcc.features import MfccConfig
    from kwtrain.mfcc.network import NetSpec
    from kwtrain.mfcc.runtime import KeywordModel

    rng = np.random.default_rng(0)
    spec = NetSpec(channels=(8, 16), num_labels=3)
    w, in_ch = {}, spec.num_cepstral
    for i, out_ch in enumerate(spec.channels):
        w[f"conv{i + 1}.weight"] = rng.normal(0, 0.4, (out_ch, in_ch, spec.kernel_size))
        w[f"conv{i + 1}.bias"] = np.zeros(out_ch)
        in_ch = out_ch
    w["dense.weight"] = rng.normal(0, 0.2, (3, spec.flat_size()))
    w["dense.bias"] = np.zeros(3)
    model = KeywordModel(
        labels=["listen", "noise", "unknown"], mfcc=MfccConfig(), net=spec, name="mfcc-baseline",
        weights={k: v.astype(np.float32) for k, v in w.items()}, keyword="listen",
    )  # fmt: skip
    return export_eim(model, folder / "mfcc.eim")


def eim_from_git(ref: str, folder: Path) -> Path | None:
    """edgeml/models/listen.eim as committed at `ref`, or None when git or the ref is missing."""
    import subprocess

    try:
        blob = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{ref}:edgeml/models/listen.eim"],
            capture_output=True, check=True, timeout=60,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    out = folder / f"listen-{ref}.eim"
    out.write_bytes(blob)
    out.chmod(0o755)
    return out


def sdk_stream(eim: Path, audio: np.ndarray, shm: bool = True) -> dict:
    """Classify a window ending every 250 ms through the SDK; CPU of the .eim process and of
    this client. With shared memory the window goes in as an array (as EdgeML passes it)."""
    import psutil
    from edge_impulse_linux.runner import ImpulseRunner

    # timeout None: with a timeout the SDK's send() writes only part of a 2 s window as JSON
    runner = ImpulseRunner(str(eim.resolve()), timeout=None, allow_shm=shm)
    try:
        window = int(runner.init()["model_parameters"]["input_features_count"])
        proc = psutil.Process(runner._runner.pid)
        used_shm = runner._input_shm is not None
        ends = range(36000, len(audio) + 1, HOP)
        runner.classify(audio[ends[0] - window : ends[0]].tolist())  # warm
        c0, rts, p0 = proc.cpu_times(), [], time.process_time()
        for end in ends:
            t = time.perf_counter()
            data = audio[end - window : end]
            runner.classify(data if used_shm else data.tolist())
            rts.append((time.perf_counter() - t) * 1000)
        c1, p1 = proc.cpu_times(), time.process_time()
    finally:
        runner.stop()
    seconds = len(ends) * HOP / 16000
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return {
        "window_samples": window,
        "features": "shared memory" if used_shm else "JSON",
        "audio_seconds": seconds,
        "cpu_ms_per_audio_s": round(cpu * 1000 / seconds, 2),
        "client_cpu_ms_per_audio_s": round((p1 - p0) * 1000 / seconds, 2),
        "round_trip_ms_median": round(statistics.median(rts), 2),
    }


def cpu_timed(fn, runs: int) -> float:
    """Median CPU ms (this thread) of fn()."""
    out = []
    for _ in range(runs):
        t = time.thread_time()
        fn()
        out.append((time.thread_time() - t) * 1000)
    return round(statistics.median(out), 4)


def breakdown(eim: Path, audio: np.ndarray, runs: int) -> dict:
    """Per hop of the embedding model, in-process: what each step costs (CPU ms, medians)."""
    import onnxruntime as ort

    from kwtrain.embedding.export import read_embedding_model
    from kwtrain.embedding.frontend import (
        A_SPAN,
        A_STEP,
        EMB_FRAMES,
        FrontEnd,
        StreamingEmbedder,
    )
    from kwtrain.embedding.onnxfiles import EMB_FILE, model_files
    from kwtrain.embedding.onnxparts import runtime_files
    from kwtrain.embedding.runtime import EmbeddingImpulse
    from kwtrain.fastjson import ClassifyDecoder

    model = read_embedding_model(eim)
    front = FrontEnd(runtime_files(), threads=1)
    x = audio[:120000].astype(np.float32)
    mel = front.mel(x)
    seg = x[: HOP + 480]
    new_frames = HOP // 160
    a_in = mel[: A_STEP * ((new_frames + A_STEP - 1) // A_STEP) + A_SPAN - A_STEP]
    a = front.part_a(mel[:EMB_FRAMES])
    emb = front.embeddings(x, stride=model.spec.stride)
    ctx = emb[: model.spec.context][None]
    dec = ClassifyDecoder()
    msgs = [json.dumps({"classify": audio[e - 36000 : e].tolist(), "id": i}).encode()
            for i, e in enumerate(range(36000, 36000 + HOP * (runs + 1), HOP))]  # fmt: skip
    it = iter(msgs)
    dec.decode(next(it))
    sess = ort.InferenceSession(model_files()[EMB_FILE], providers=["CPUExecutionProvider"])
    so_in = sess.get_inputs()[0].name
    win = mel[:EMB_FRAMES][None, :, :, None]
    imp = EmbeddingImpulse(model, runtime_files())
    windows = [x[e - 36000 : e] for e in range(36000, len(x) + 1, HOP)]
    imp.score(windows[0])
    wi = iter(windows[1:] * (runs // max(1, len(windows) - 1) + 2))
    stream = StreamingEmbedder(front, stride=model.spec.stride)
    stream.update(windows[0])
    return {
        "decode_request_fastjson": cpu_timed(lambda: dec.decode(next(it)), runs),
        "mel_of_new_samples": cpu_timed(lambda: front.mel(seg), runs),
        "part_a_new_frames": cpu_timed(lambda: front.part_a(a_in), runs),
        "part_b_one_position": cpu_timed(lambda: front.part_b(a, np.zeros(1, int)), runs),
        "head": cpu_timed(
            lambda: model.scores_at(ctx[0], np.array([model.spec.context - 1])), runs
        ),
        "whole_hop_in_process": cpu_timed(lambda: imp.score(next(wi)), runs),
        "previous_runtime_unsplit_model_one_position": cpu_timed(
            lambda: sess.run(None, {so_in: win}), runs
        ),
        "part_a_input_frames": int(len(a_in)),
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    names = list(result["sdk"])
    meds = [statistics.median(r["cpu_ms_per_audio_s"] for r in result["sdk"][n]) for n in names]
    labels = [n.replace(" (", "\n(").replace(" embedding", "\nembedding") for n in names]
    bars = ax[0].bar(labels, meds, color=["C0", "C2", "C1", "grey"][: len(names)])
    ax[0].tick_params(axis="x", labelsize=8)
    for b, v in zip(bars, meds, strict=True):
        ax[0].text(b.get_x() + b.get_width() / 2, v, f"{v:.1f}", ha="center", va="bottom")
    ax[0].axhline(10.0, color="red", ls=":", label="target: 10 ms per audio second")
    ax[0].set_ylabel("CPU ms of the .eim process per audio second")
    ax[0].set_title(f"through the SDK, 250 ms hops (load {result['load_before'][0]:.1f})")
    ax[0].set_ylim(0, max(meds + [10.0]) * 1.3)
    ax[0].legend(fontsize=8, loc="upper right")
    b = result["breakdown"]
    keys = ["decode_request_fastjson", "mel_of_new_samples", "part_a_new_frames",
            "part_b_one_position", "head", "whole_hop_in_process",
            "previous_runtime_unsplit_model_one_position"]  # fmt: skip
    ax[1].barh([k.replace("_", " ") for k in keys], [b[k] for k in keys], color="C0")
    ax[1].set_xlabel("CPU ms per 250 ms hop (in-process, median)")
    ax[1].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=REPO / "edgeml" / "models" / "listen.eim")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--plot", action="store_true", help="redraw the PNG from the JSON, exit")
    ap.add_argument(
        "--baseline-ref", default=ROUND1_REF, help="git revision of the baseline listen.eim"
    )
    a = ap.parse_args()
    if a.plot:
        plot(json.loads((a.out / "kws_speed.json").read_text()), a.out / "kws_speed.png")
        return 0
    if not a.model.is_file():
        print(f"{a.model}: no such model (make keyword-model builds it)", file=sys.stderr)
        return 2
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    audio = stream_audio(a.seconds)
    result: dict = {
        "model": a.model.name,
        "eim_bytes": a.model.stat().st_size,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_before": list(os.getloadavg()),
        "audio": "speech_long" if speech_dir() is not None else "generated speech-like sound",
        "sdk": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        rows = {NEW: (a.model, True), JSON_ROW: (a.model, False)}
        old = eim_from_git(a.baseline_ref, Path(tmp))
        if old is not None:
            rows[f"round 1 embedding ({a.baseline_ref})"] = (old, True)
            result["baseline_eim_bytes"] = old.stat().st_size
        rows["MFCC+CNN baseline"] = (mfcc_baseline_eim(Path(tmp)), True)
        result["mfcc_eim_bytes"] = rows["MFCC+CNN baseline"][0].stat().st_size
        result["sdk"] = {name: [] for name in rows}
        for _ in tqdm(range(a.repeats), desc="repeats", file=sys.stderr):
            for name, (eim, shm) in rows.items():  # interleaved: load hits every row alike
                result["sdk"][name].append(sdk_stream(eim, audio, shm))
            print(json.dumps({k: v[-1] for k, v in result["sdk"].items()}), flush=True)
    result["breakdown"] = breakdown(a.model, audio, a.runs)
    result["load_after"] = list(os.getloadavg())
    meds = {
        name: statistics.median(r["cpu_ms_per_audio_s"] for r in runs)
        for name, runs in result["sdk"].items()
    }
    result["cpu_ms_per_audio_s_median"] = meds
    result["client_cpu_ms_per_audio_s_median"] = {
        name: statistics.median(r["client_cpu_ms_per_audio_s"] for r in runs)
        for name, runs in result["sdk"].items()
    }
    med = meds[NEW]
    result["embedding_cpu_ms_per_audio_s_median"] = med
    result["meets_10ms_target"] = med <= 10.0
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "kws_speed.json").write_text(json.dumps(result, indent=2))
    plot(result, a.out / "kws_speed.png")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
