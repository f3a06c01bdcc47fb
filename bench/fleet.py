"""Fleet benchmark: many devices, an outage, the return.

    .venv/bin/python bench/fleet.py [--devices 200] [--outage 20] [--capacity 8]   (make bench-fleet)

Each simulated device is the app's real delivery path (a Spool on disk, a Delivery thread, a
CloudML client with its urllib3 Retry) in this process, sending to one local endpoint
(devkit.fault_server) that serves `capacity` requests at once (`service` seconds each) and
answers 503 + Retry-After beyond that, like a small endpoint meeting a fleet. Every device
records one recording per `interval` seconds. After a warm-up the endpoint goes away for
`outage` seconds (connections refused) and comes back.

Two runs, same fleet, same schedule: the baseline (the delivery loop before this change: fixed
exponential backoff without jitter, in-request retries without jitter) and this project's
(full jitter in Delivery, urllib3 backoff_jitter, Retry-After spread). Reported: arrivals per
second after the return (peak and its spread), 503s, nothing lost (every recording delivered),
nothing twice (each recording's transcript committed once on its device; the endpoint's own
count of audio it answered 200 more than once is reported beside it), p50/p95 latency (recorded -> delivered) of the
recordings made during the outage, and the time until the backlog is gone.
Results: bench/results/fleet.json and fleet.png.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from devkit.benchtools import RESULTS, machine_description
from devkit.fault_server import FaultServer
from devkit.speech import audio_id
from edgeml.cloudml import CloudML
from edgeml.delivery import Delivery, Outcome
from edgeml.spool import Spool


def _recording(device: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(device * 100_000 + n)
    samples = np.round(rng.standard_normal(4000) * 500).astype(np.int16)  # 0.25 s
    samples[0] = n
    return samples


def run(args: argparse.Namespace, jitter: bool, root: Path) -> dict:
    server = FaultServer(capacity=args.capacity, service_seconds=args.service,
                         busy_retry_after="2").start()  # fmt: skip
    lock = threading.Lock()
    delivered_at: dict[str, float] = {}
    committed = Counter()
    made_at: dict[str, float] = {}
    during_outage: set[str] = set()
    devices = []
    for d in range(args.devices):
        spool = Spool(root / f"{'jitter' if jitter else 'fixed'}-{d}")
        client = CloudML(server.url, retries=3, backoff_factor=0.5, connect_timeout=2.0,
                         read_timeout=10.0, backoff_jitter=0.5 if jitter else 0.0)  # fmt: skip

        def done(outcome: Outcome) -> None:
            if outcome.delivered:
                with lock:
                    committed[outcome.record.id] += 1
                    delivered_at.setdefault(outcome.record.id, time.monotonic())

        delivery = Delivery(client, spool, done, min_backoff=1.0, max_backoff=args.max_backoff,
                            jitter=jitter, rng=random.Random(d))  # fmt: skip
        delivery.start()
        devices.append((spool, delivery))
    rng = random.Random(1)
    phase_offsets = [rng.uniform(0, args.interval) for _ in devices]
    t0 = time.monotonic()
    outage_start, outage_end = args.warmup, args.warmup + args.outage
    record_until = outage_end + args.after
    made = 0
    next_at = [t0 + off for off in phase_offsets]
    counts = [0] * len(devices)
    down, returned_at = False, None
    with tqdm(total=int(record_until), desc=f"{'jitter' if jitter else 'fixed'}", unit="s") as bar:
        while (now := time.monotonic()) - t0 < record_until:
            # once each: before, the stop fired again on every pass after the return (its
            # condition still held), so the endpoint flapped every 50 ms until recording ended,
            # cutting requests it had read and answered (the "answered 200 twice")
            if not down and returned_at is None and now - t0 >= outage_start:
                server.stop()
                down = True
            if down and now - t0 >= outage_end:
                server.start()
                down = False
                returned_at = time.monotonic()
            for d, (_spool, delivery) in enumerate(devices):
                if now >= next_at[d]:
                    counts[d] += 1
                    item_seq = delivery.submit(_recording(d, counts[d]))
                    rid = next(i.record.id for i in _spool.items() if i.seq == item_seq)
                    made_at[rid] = now
                    if down:
                        during_outage.add(rid)
                    made += 1
                    next_at[d] += args.interval
            bar.n = int(now - t0)
            bar.refresh()
            time.sleep(0.05)
    drain_deadline = time.monotonic() + args.drain
    while time.monotonic() < drain_deadline and len(delivered_at) < made:
        time.sleep(0.2)
    drained_at = time.monotonic()
    for spool, delivery in devices:
        delivery.stop(timeout=2)
        spool.close()
    server.stop()
    ok = Counter(r.audio_id for r in server.requests if r.status == 200)
    expected = {
        audio_id(_recording(d, n)) for d in range(len(devices)) for n in range(1, counts[d] + 1)
    }
    arrivals = [r.at - returned_at for r in server.requests if r.at >= returned_at]
    per_second = Counter(int(a) for a in arrivals)
    window = [per_second.get(s, 0) for s in range(int(max(arrivals, default=0)) + 1)]
    lat = [delivered_at[rid] - made_at[rid] for rid in during_outage if rid in delivered_at]
    backlog_gone = max((delivered_at[rid] for rid in during_outage if rid in delivered_at),
                       default=returned_at) - returned_at  # fmt: skip
    return {
        "jitter": jitter,
        "recordings": made,
        "delivered": len(delivered_at),
        "lost": made - len(delivered_at),
        "committed_twice": sum(1 for c in committed.values() if c > 1),
        "answered_200_twice": sum(1 for c in ok.values() if c > 1),
        "never_arrived": len(expected - set(ok)),
        "requests_after_return": len(arrivals),
        "busy_503_after_return": sum(
            1 for r in server.requests if r.at >= returned_at and r.status == 503
        ),  # fmt: skip
        "peak_arrivals_per_s": max(window, default=0),
        "arrivals_per_s_first_30s": window[:30],
        "outage_recordings": len(during_outage),
        "outage_latency_p50_s": round(statistics.median(lat), 2) if lat else None,
        "outage_latency_p95_s": round(float(np.percentile(lat, 95)), 2) if lat else None,
        "backlog_gone_after_return_s": round(backlog_gone, 2),
        "drain_s": round(drained_at - returned_at, 2),
    }


def chart(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for r in results:
        label = "full jitter (this project)" if r["jitter"] else "fixed backoff (baseline)"
        ax.plot(r["arrivals_per_s_first_30s"], label=f"{label}: peak {r['peak_arrivals_per_s']}/s")
    ax.set_xlabel("seconds after the endpoint returned")
    ax.set_ylabel("requests arriving per second")
    ax.set_title("A fleet returning after an outage")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between recordings")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--after", type=float, default=20.0, help="recording after the return")
    parser.add_argument("--drain", type=float, default=120.0)
    parser.add_argument("--capacity", type=int, default=8)
    parser.add_argument("--service", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--max-backoff", type=float, default=30.0)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        for jitter in (False, True):
            results.append(run(args, jitter, Path(tmp)))
            print(json.dumps(results[-1]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"bench": "fleet", "machine": machine_description(), "args": vars(args),
           "results": results}  # fmt: skip
    (RESULTS / "fleet.json").write_text(json.dumps(out, indent=2) + "\n")
    chart(results, RESULTS / "fleet.png")
    print(f"wrote {RESULTS / 'fleet.json'} and fleet.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
