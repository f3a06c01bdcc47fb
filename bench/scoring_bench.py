"""Seed-style entry script vs every engine mode of this service, side by side behind azmlinfsrv.

    .venv/bin/python bench/scoring_bench.py [--reps 12] [--durations 1 5 15]   (make bench-scoring)

Model: the wav2vec2-base architecture (default Wav2Vec2Config, random weights, saved with
save_pretrained and loaded like the real one): the real model's compute without a download.
Servers, all started at once and asked in turn (round robin, one request in flight, every other
round in reverse order) so the load of a shared machine falls on every configuration alike:
  seed            bench/seed_score.py: @input_schema NumpyParameterType, JSON floats, fp32
  today           scoring-func/ as it was before the bf16/OpenVINO engines (git --today-ref), fp32
  fp32            this service, default settings (PyTorch fp32), JSON and WAV bodies
  fp32-openvino   CTC_RUNTIME=openvino (fp32)
  bf16            PRECISION=bf16 (OpenVINO bf16; PRECISION=auto resolves to it on a bf16 CPU)
  bf16-torch      PRECISION=bf16 CTC_RUNTIME=torch
  int8            PRECISION=int8 (= QUANTIZE=int8: ONNX Runtime int8 MatMul)
  int8-torch      PRECISION=int8 CTC_RUNTIME=torch (PyTorch dynamic int8 Linear)
bf16 modes are left out on a CPU without native bf16 (the service refuses them there).
Per configuration and duration: payload bytes, request latency median/p95 (client wall time),
model real-time factor (service: the inference_ms it reports; seed: its forward pass timed
in-process the way it runs it), worker peak RSS (VmHWM), cost per hour of audio (vCPU-hours at
--threads, and dollars at --usd-per-vcpu-hour). Then, in-process, each mode's agreement with
fp32 on real speech (logits correlation, frame argmax agreement). Writes
bench/results/scoring_bench.json and .png, and prints the tables of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from devkit.benchtools import RESULTS, base_model, peak_rss_mb, speech
from devkit.local_service import run_scoring_server
from devkit.paths import REPO
from devkit.scoring_client import json_floats_body, post, to_int16, wav_bytes
from scoring.cpufeatures import cpu_features

SEED_SCRIPT = REPO / "bench" / "seed_score.py"
# The last commit before the bf16/OpenVINO engines: "today" for the fp32-no-slower target.
TODAY_REF = "8bc58ab"
# Pay-as-you-go list price of a 2-vCPU general-purpose Azure VM (D2s v5, about $0.096 an hour in
# US regions when measured): an assumption to turn vCPU-hours into money; check current prices.
USD_PER_VCPU_HOUR = 0.048

MODES = {
    "fp32": {},
    "fp32-openvino": {"CTC_RUNTIME": "openvino"},
    "bf16": {"PRECISION": "bf16"},
    "bf16-torch": {"PRECISION": "bf16", "CTC_RUNTIME": "torch"},
    "int8": {"PRECISION": "int8"},
    "int8-torch": {"PRECISION": "int8", "CTC_RUNTIME": "torch"},
}
LIMITS = {  # the targets at 5 s: latency ratio to the seed, model RTF
    "bf16": (1 / 4, 0.04),
    "int8": (1 / 6, 0.03),
}


def seed_model_ms(model_dir: Path, audio: np.ndarray, reps: int, threads: int) -> list[float]:
    """The seed's forward pass (processor + model with autograd on), timed in this process."""
    import torch
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

    torch.set_num_threads(threads)
    processor = Wav2Vec2Processor.from_pretrained(model_dir)
    model = Wav2Vec2ForCTC.from_pretrained(model_dir)
    times = []
    for i in range(reps + 1):
        start = time.perf_counter()
        values = processor(audio.astype(np.float64), return_tensors="pt", sampling_rate=16000)
        model(values.input_values).logits.argmax(-1)
        if i:  # first one is warm-up
            times.append((time.perf_counter() - start) * 1000)
    return times


def today_entry_script(ref: str, into: Path) -> Path:
    """scoring-func/ at `ref` (git archive) unpacked into `into`: the service as it was."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "scoring-func"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True, timeout=60)
    return into / "scoring-func" / "score_audio.py"


def agreement(model_dir: Path, modes: list[str], audio: np.ndarray, threads: int) -> dict:
    """Each mode's logits vs fp32 on the same real speech, in-process through CtcEngine."""
    from scoring.ctc import CtcEngine
    from scoring.models import resolve_model
    from scoring.settings import ServiceSettings

    source = resolve_model(str(model_dir), None)

    def logits(mode: str) -> np.ndarray:
        env = {**MODES[mode], "SCORING_THREADS": str(threads)}
        return CtcEngine(source, ServiceSettings.from_env(env)).logits(audio)

    reference = logits("fp32")
    out = {}
    for mode in modes:
        if mode == "fp32":
            continue
        values = logits(mode)
        out[mode] = {
            "logits_correlation": round(
                float(np.corrcoef(values.ravel(), reference.ravel())[0, 1]), 5
            ),
            "frame_argmax_agreement": round(
                float((values.argmax(-1) == reference.argmax(-1)).mean()), 4
            ),
            "max_abs_logit_difference": round(float(np.abs(values - reference).max()), 4),
        }
    return out


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=12, help="timed requests per cell")
    parser.add_argument("--durations", type=float, nargs="+", default=[1.0, 5.0, 15.0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--today-ref", default=TODAY_REF, help="git ref of 'today' (fp32)")
    parser.add_argument("--usd-per-vcpu-hour", type=float, default=USD_PER_VCPU_HOUR)
    parser.add_argument("--out", type=Path, default=RESULTS / "scoring_bench.json")
    args = parser.parse_args()
    from tqdm import tqdm

    cpu = cpu_features()
    load_before = os.getloadavg()
    model_dir = base_model()
    modes = [m for m in MODES if cpu.native_bf16 or not m.startswith("bf16")]
    threads_env = {"SCORING_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads)}
    scratch = Path(tempfile.mkdtemp(prefix="scoring-bench-"))
    configs = {
        "seed": dict(entry_script=SEED_SCRIPT, env=threads_env),
        "today": dict(  # with the worker it had: azmlinfsrv's sync worker (it had no server.py;
            # today's bounded worker would load today's scoring package under the old script)
            entry_script=today_entry_script(args.today_ref, scratch),
            env={**threads_env, "SCORING_CACHE_DIR": str(scratch / "cache")},
            gunicorn_args="",
        ),
        **{m: dict(env={**threads_env, **MODES[m]}) for m in modes},
    }
    # (label, server, body kind) cells asked in turn
    cells = [
        ("seed JSON", "seed", "json"),
        ("today fp32 WAV", "today", "wav"),
        ("service fp32 JSON", "fp32", "json"),
        *[(f"service {m} WAV", m, "wav") for m in modes],
    ]
    audio = {d: speech(d) for d in args.durations}
    bodies = {
        d: {"json": json_floats_body(samples), "wav": wav_bytes(to_int16(samples))}
        for d, (samples, _) in audio.items()
    }

    with contextlib.ExitStack() as stack:
        servers, startup = {}, {}
        for name, kwargs in configs.items():
            started = time.perf_counter()
            servers[name] = stack.enter_context(
                run_scoring_server(model_dir, startup_timeout=900, offline=True, **kwargs)
            )
            startup[name] = round(time.perf_counter() - started, 1)
            print(f"{name}: up in {startup[name]} s", flush=True)
        latency = {(c, d): [] for c, _, _ in cells for d in args.durations}
        model_ms = {(c, d): [] for c, _, _ in cells for d in args.durations}
        for rep in tqdm(range(args.reps + 1), desc="round robin"):
            # Every other round in reverse: whoever goes right after the seed (whose spinning
            # OpenMP threads linger) or after a given neighbour changes, so order effects cancel.
            ordered = cells if rep % 2 else cells[::-1]
            for d in args.durations:
                for label, server_name, kind in ordered:
                    content_type = "application/json" if kind == "json" else "audio/wav"
                    started = time.perf_counter()
                    response = post(
                        servers[server_name].score_url, bodies[d][kind], content_type, timeout=600
                    )
                    elapsed = (time.perf_counter() - started) * 1000
                    response.raise_for_status()
                    if rep == 0:
                        continue  # warm-up round
                    latency[(label, d)].append(elapsed)
                    if "inference_ms" in response.json():
                        model_ms[(label, d)].append(response.json()["inference_ms"])
        rss = {name: round(peak_rss_mb(server), 1) for name, server in servers.items()}
        engines = {name: engine_line(server.log()) for name, server in servers.items()}
    load_after = os.getloadavg()

    seed_model = {
        d: seed_model_ms(model_dir, audio[d][0], max(3, args.reps // 2), args.threads)
        for d in args.durations
    }
    rows = []
    for label, server_name, kind in cells:
        for d in args.durations:
            lat = latency[(label, d)]
            model = seed_model[d] if server_name == "seed" else model_ms[(label, d)]
            model_median = statistics.median(model)
            median = statistics.median(lat)
            vcpu_hours = median / 1000 / d * args.threads  # per hour of audio
            rows.append(
                {
                    "config": label,
                    "server": server_name,
                    "engine": engines[server_name],
                    "body": kind,
                    "audio_seconds": d,
                    "payload_bytes": len(bodies[d][kind]),
                    "latency_ms_median": round(median, 1),
                    "latency_ms_p95": round(p95(lat), 1),
                    "model_ms_median": round(model_median, 1),
                    "model_rtf": round(model_median / 1000 / d, 4),
                    "model_time_source": "in-process forward (the seed's way)"
                    if server_name == "seed"
                    else "inference_ms reported by the service",
                    "vcpu_hours_per_audio_hour": round(vcpu_hours, 3),
                    "usd_per_audio_hour": round(vcpu_hours * args.usd_per_vcpu_hour, 4),
                    "peak_rss_mb": rss[server_name],
                    "samples": len(lat),
                }
            )
    by = {(r["config"], r["audio_seconds"]): r for r in rows}
    longest = max(args.durations)
    result = {
        "what": "seed-style entry script vs every engine mode of the scoring service, "
        "wav2vec2-base architecture (random weights), behind the real azmlinfsrv, round robin",
        "machine": cpu.record(),
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "load_average_5min": {"before": round(load_before[1], 2), "after": round(load_after[1], 2)},
        "threads": args.threads,
        "audio": audio[args.durations[0]][1],
        "reps": args.reps,
        "today_ref": args.today_ref,
        "usd_per_vcpu_hour_assumed": args.usd_per_vcpu_hour,
        "startup_seconds": startup,
        "engines": engines,
        "rows": rows,
        "targets": targets(by, modes, cpu) if 5.0 in args.durations else [],
        "agreement_with_fp32": {
            "audio": f"{longest:g} s of {audio[longest][1]}, wav2vec2-base random weights",
            **agreement(model_dir, modes, audio[longest][0], args.threads),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    loads = f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    chart(rows, args.durations, args.out.with_suffix(".png"), f"{cpu.describe()}; {loads}")
    print(markdown(result))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


def engine_line(log: str) -> str:
    """What the server's log says it runs ("pytorch float32 on cpu", "openvino ... bf16 ...")."""
    for line in log.splitlines():
        if " ready: engine " in line:
            return line.split(" ready: engine ", 1)[1].split(";")[0]
    return "seed script"


def targets(by: dict, modes: list[str], cpu) -> list[dict]:
    """The issue's targets, each with the measured value and met / not met."""
    seed = by[("seed JSON", 5.0)]["latency_ms_median"]
    today = by[("today fp32 WAV", 5.0)]["latency_ms_median"]
    out = [
        _target(
            "5 s median: service fp32 WAV / today fp32 WAV (no slower)",
            by[("service fp32 WAV", 5.0)]["latency_ms_median"] / today,
            1.0,
        )
    ]
    for mode, (ratio, rtf) in LIMITS.items():
        if mode not in modes:
            continue
        row = by[(f"service {mode} WAV", 5.0)]
        note = "" if mode != "int8" or cpu.amx else " (target set for AMX; this CPU has none)"
        out.append(
            _target(f"5 s median: {mode} / seed{note}", row["latency_ms_median"] / seed, ratio)
        )
        out.append(_target(f"model RTF at 5 s: {mode}", row["model_rtf"], rtf))
    return out


def _target(name: str, value: float, limit: float) -> dict:
    return {
        "target": name,
        "value": round(value, 4),
        "limit": f"<= {limit:.3g}",
        "met": value <= limit,
    }


def markdown(result: dict) -> str:
    lines = [
        "| configuration | audio s | median ms | p95 ms | model RTF | vCPU-h / audio h | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['config']} | {r['audio_seconds']:g} | {r['latency_ms_median']:.0f} | "
            f"{r['latency_ms_p95']:.0f} | {r['model_rtf']:.3f} | "
            f"{r['vcpu_hours_per_audio_hour']:.3f} | {r['peak_rss_mb']:.0f} |"
        )
    lines += ["", "| target | measured | limit | met |", "|---|---|---|---|"]
    for c in result["targets"]:
        lines.append(
            f"| {c['target']} | {c['value']:.3f} | {c['limit']} | {'yes' if c['met'] else 'NO'} |"
        )
    lines += ["", "| mode | logits correlation | frame argmax agreement |", "|---|---|---|"]
    for mode, v in result["agreement_with_fp32"].items():
        if isinstance(v, dict):
            lines.append(
                f"| {mode} | {v['logits_correlation']:.5f} | {v['frame_argmax_agreement']:.1%} |"
            )
    return "\n".join(lines)


def chart(rows: list[dict], durations: list[float], path: Path, machine: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = list(dict.fromkeys(r["config"] for r in rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5))
    width = 0.8 / len(configs)
    for i, config in enumerate(configs):
        vals = [
            next(r for r in rows if r["config"] == config and r["audio_seconds"] == d)
            for d in durations
        ]
        xs = np.arange(len(durations)) + i * width
        left.bar(xs, [v["latency_ms_median"] for v in vals], width, label=config)
        right.bar(xs, [v["model_rtf"] for v in vals], width, label=config)
    for ax, title in ((left, "median request latency (ms)"), (right, "model real-time factor")):
        ax.set_xticks(np.arange(len(durations)) + 0.4 - width / 2)
        ax.set_xticklabels([f"{d:g} s" for d in durations])
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    right.axhline(0.04, color="k", linestyle="--", linewidth=0.8, label="bf16 RTF target 0.04")
    right.axhline(0.03, color="k", linestyle=":", linewidth=0.8, label="int8 RTF target 0.03")
    right.legend(fontsize=7)
    fig.suptitle(f"wav2vec2-base architecture behind azmlinfsrv, 2 threads: {machine}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
