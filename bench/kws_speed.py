"""Speed and size of the exported keyword model: one classify of a 1 s window.

    .venv/bin/python bench/kws_speed.py [--model edgeml/models/listen.eim]   (make bench-kws)

Measures, in the same run:
- in-process: the MFCC block (`kwtrain.features`, what the .eim runs) and the network's numpy
  forward pass, per 1 s window (target: DSP + network <= 5 ms on this machine);
- baseline: the same features computed the way Edge Impulse's Python block writes them
  (speechpy's loops, scipy FFT/DCT; the reference of tests/kws/test_features.py);
- through the SDK: `ImpulseRunner.classify` round trips to the .eim subprocess (JSON of 16000
  numbers over the Unix socket included), and the dsp/classification ms the runner reports;
- the file size (limit 1 MB).
Medians (and 90th percentiles) of many runs; the machine is shared, so ratios matter more than
absolute numbers. Writes bench/results/kws_speed.json and kws_speed.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from devkit.mfcc_reference import reference_mfcc, speechlike
from devkit.paths import REPO
from kwtrain.export import read_model
from kwtrain.network import forward
from kwtrain.runtime import KeywordImpulse


def timed(fn, runs: int) -> dict:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 4),
        "p90_ms": round(samples[int(0.9 * (len(samples) - 1))], 4),
        "runs": runs,
    }


def sdk_round_trips(model: Path, window: np.ndarray, runs: int) -> dict:
    from edge_impulse_linux.runner import ImpulseRunner

    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    runner = ImpulseRunner(str(model.resolve()))
    try:
        runner.init()
        data = window.astype(int).tolist()
        reported = []

        def once() -> None:
            reported.append(runner.classify(data)["timing"])

        result = timed(once, runs)
        result["runner_reported_dsp_ms_median"] = statistics.median(r["dsp"] for r in reported)
        result["runner_reported_classification_ms_median"] = statistics.median(
            r["classification"] for r in reported
        )
        return result
    finally:
        runner.stop()


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["baseline: EI Python block\n(speechpy loops)", "kwtrain MFCC\n(in the .eim)",
             "network\n(numpy)", "DSP + network", "SDK round trip\n(JSON + socket)"]  # fmt: skip
    keys = ["baseline_reference_mfcc", "mfcc", "network", "dsp_plus_network", "sdk_round_trip"]
    values = [result[k]["median_ms"] for k in keys]
    fig, ax = plt.subplots(figsize=(9, 4))
    bars = ax.bar(names, values, color=["grey", "C0", "C0", "C2", "C1"])
    ax.axhline(5.0, color="red", ls=":", label="target: 5 ms for DSP + network")
    for bar, v in zip(bars, values, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.2f}", ha="center", va="bottom")
    ax.set_ylabel("ms per 1 s window (median)")
    ax.set_title(f"{result['model']} ({result['eim_bytes'] / 1024:.0f} KiB)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "edgeml" / "models" / "listen.eim")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    if not args.model.is_file():
        print(f"{args.model}: no such model (make keyword-model builds it)", file=sys.stderr)
        return 2

    model = read_model(args.model)
    impulse = KeywordImpulse(model)
    window = speechlike(0)
    feats = impulse.mfcc.flat(window)
    for _ in range(20):  # warm-up
        impulse.classify(window)
    result = {
        "model": args.model.name,
        "eim_bytes": args.model.stat().st_size,
        "parameters": int(sum(v.size for v in model.weights.values())),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "numpy": np.__version__,
        "mfcc": timed(lambda: impulse.mfcc.flat(window), args.runs),
        "network": timed(lambda: forward(model.net, model.weights, feats), args.runs),
        "dsp_plus_network": timed(lambda: impulse.classify(window), args.runs),
        "baseline_reference_mfcc": timed(
            lambda: reference_mfcc(window, model.mfcc), max(20, args.runs // 10)
        ),
        "sdk_round_trip": sdk_round_trips(args.model, window, max(50, args.runs // 3)),
    }
    result["speedup_vs_baseline"] = round(
        result["baseline_reference_mfcc"]["median_ms"] / result["mfcc"]["median_ms"], 1
    )
    result["meets_5ms_target"] = result["dsp_plus_network"]["median_ms"] <= 5.0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kws_speed.json").write_text(json.dumps(result, indent=2))
    plot(result, args.out / "kws_speed.png")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
