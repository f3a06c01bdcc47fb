"""Scoring service under attack: latency with and without 50 slow connections; JSON memory.

    .venv/bin/python bench/scoring_attack.py [--clients 50] [--rounds 2]   (make bench-attack)

1. The real azmlinfsrv serving score_audio.py with the tiny CTC model, twice in the same run:
   azmlinfsrv's default (one sync gunicorn worker: the baseline) and this project's worker
   (scoring/server.py via GUNICORN_CMD_ARGS). For each: health-check latency and the latency
   of a 5 s WAV request, quiet and while `--clients` connections trickle (idle, slow headers,
   slow body, endless chunked). A request that gets no answer within 10 s counts as 10 s.
2. Memory of decoding one large JSON body (`--json-mb`, floats): tracemalloc peak of the old
   decode (json.loads to Python floats, as before this change) against bodies.decode_body.
Results: bench/results/scoring_attack.json and scoring_attack.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import requests

from devkit.attack import KINDS, SlowClients
from devkit.benchtools import RESULTS, machine_description
from devkit.local_service import run_scoring_server
from devkit.models import build_ctc_model
from devkit.scoring_client import noise_signal, to_int16, wav_bytes

CAP = 10.0


def _timed(fn) -> float:
    t0 = time.monotonic()
    try:
        ok = fn().status_code == 200
    except requests.RequestException:
        ok = False
    return time.monotonic() - t0 if ok else CAP


def measure(server, rounds: int) -> dict:
    body = wav_bytes(to_int16(noise_signal(5.0, seed=3)))
    health = [
        _timed(lambda: requests.get(server.base_url + "/", timeout=CAP)) for _ in range(rounds)
    ]
    score = [_timed(lambda: requests.post(server.score_url, data=body, timeout=CAP,
                                          headers={"Content-Type": "audio/wav"}))
             for _ in range(rounds)]  # fmt: skip
    return {"health_median_s": round(statistics.median(health), 3),
            "score_5s_median_s": round(statistics.median(score), 3)}  # fmt: skip


def attack_run(model: Path, gunicorn_args: str, clients: int, rounds: int) -> dict:
    out = {}
    env = {"SCORING_THREADS": "1", "WORKER_TIMEOUT": "30"}
    with run_scoring_server(model, env=env, gunicorn_args=gunicorn_args) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        out["quiet"] = measure(server, rounds)
        for kind in KINDS:
            with SlowClients(port, kind, n=clients, every=0.5):
                time.sleep(1.0)
                out[kind] = measure(server, rounds)
            print(gunicorn_args or "sync", kind, out[kind], flush=True)
            time.sleep(2.0)
        out["model_loads"] = server.log().count("Loading model")
    return out


def _old_json_decode(body: bytes) -> np.ndarray:
    """The decode before this change: json.loads, then a float64 array of the Python list."""
    values = np.asarray(json.loads(body.decode("utf-8"))["data"], dtype=np.float64)
    return values.astype(np.float32)


def json_memory(megabytes: float) -> dict:
    from scoring.bodies import decode_body
    from scoring.settings import ServiceSettings

    n = int(megabytes * 1e6 / 21)
    floats = np.random.default_rng(0).uniform(-1, 1, n)
    body = ("{" + '"data": [' + ",".join(f"{x:.15f}" for x in floats) + "]}").encode()
    settings = ServiceSettings(max_audio_seconds=max(120.0, n / 16000 + 1))
    result = {"body_mb": round(len(body) / 1e6, 1), "samples": n}
    for name, fn in (("json.loads (before)", _old_json_decode),
                     ("decode_body (now)", lambda b: decode_body("application/json", b, settings))):  # fmt: skip
        tracemalloc.start()
        t0 = time.perf_counter()
        fn(body)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        result[name] = {"peak_mb": round(peak / 1e6, 1), "seconds": round(seconds, 2)}
        print(name, result[name], flush=True)
    return result


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    cases = ["quiet", *KINDS]
    x = np.arange(len(cases))
    for i, (name, run) in enumerate(results["latency"].items()):
        ax.bar(x + (i - 0.5) * 0.38, [run[c]["score_5s_median_s"] for c in cases], 0.38, label=name)
    ax.set_xticks(x, cases)
    ax.set_ylabel(f"5 s request, median s (no answer = {CAP:.0f} s)")
    ax.set_title(f"{results['clients']} slow connections open")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json-mb", type=float, default=92.0)
    args = parser.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model = build_ctc_model(Path(tmp) / "tiny", tiny=True)
        from scoring.server import GUNICORN_CMD_ARGS

        latency = {
            "sync worker (azmlinfsrv default)": attack_run(model, "", args.clients, args.rounds),
            "BoundedThreadWorker (this project)": attack_run(
                model, GUNICORN_CMD_ARGS, args.clients, args.rounds
            ),
        }
    results = {"bench": "scoring_attack", "machine": machine_description(),
               "clients": args.clients, "latency": latency,
               "json_memory": json_memory(args.json_mb)}  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scoring_attack.json").write_text(json.dumps(results, indent=2) + "\n")
    chart(results, RESULTS / "scoring_attack.png")
    print(f"wrote {RESULTS / 'scoring_attack.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
