"""Adversarial probe: new cases of every kind of broken promise, against the real parts.

    .venv/bin/python bench/probe.py [--kind block,input,...] [--case TEXT] [--label NAME]
                                                                           (make bench-probe)

Drives the real azmlinfsrv serving score_audio.py (tiny CTC model, the project's worker), the
real device app (edgeml/main.py), Delivery/CloudML against a real HTTP endpoint
(devkit/fault_server.py), and rogue .eim executables through the real SDK (devkit/rogue_eim.py).
Each case states the promise it checks and prints held/BROKEN with what it saw; the table is
the probe's result. The cases are variants the first round's tests do not contain (those are in
tests/cloud/test_scoring_attacks.py, tests/edge/test_delivery_faults.py, test_kill.py and
test_model_process.py). Results: bench/results/probe-<label>.json; with both a `main` and a
`fixed` run present, probe.png compares them per kind.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import probe_device  # noqa: F401 - registers its cases
import probe_model  # noqa: F401
import probe_scoring  # noqa: F401
from probe_core import KINDS, REGISTRY, Context
from tqdm import tqdm

from devkit.benchtools import RESULTS, machine_description


def run_cases(ctx: Context, cases) -> list[dict]:
    rows = []
    for c in tqdm(cases, desc="probe", unit="case", file=sys.stderr):
        t0 = time.monotonic()
        try:
            held, detail = c.fn(ctx)
        except Exception as exc:  # noqa: BLE001 - a case that crashes is a broken promise
            held, detail = False, f"probe saw {type(exc).__name__}: {str(exc)[:120]}"
            traceback.print_exc(file=sys.stderr)
        rows.append({"kind": c.kind, "case": c.name, "promise": c.promise, "held": bool(held),
                     "detail": detail, "seconds": round(time.monotonic() - t0, 1)})  # fmt: skip
        tqdm.write(f"{'held  ' if held else 'BROKEN'} {c.kind:8} {c.name}: {detail}",
                   file=sys.stderr)  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| kind | case | promise | result | what the probe saw |", "|---|---|---|---|---|"]
    for r in rows:
        result = "held" if r["held"] else "**broken**"
        detail = str(r["detail"]).replace("|", "/").replace("\n", " ")
        lines.append(f"| {r['kind']} | {r['case']} | {r['promise']} | {result} | {detail} |")
    return "\n".join(lines)


def chart(path: Path) -> None:
    runs = {label: json.loads((RESULTS / f"probe-{label}.json").read_text())["rows"]
            for label in ("main", "fixed") if (RESULTS / f"probe-{label}.json").exists()}  # fmt: skip
    if len(runs) < 2:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(KINDS)
    fig, ax = plt.subplots(figsize=(9, 4))
    for i, (label, rows) in enumerate(runs.items()):
        broken = [sum(1 for r in rows if r["kind"] == k and not r["held"]) for k in kinds]
        ax.bar([x + (i - 0.5) * 0.4 for x in range(len(kinds))], broken, 0.4,
               label=f"{label}: {sum(broken)} broken of {len(rows)}")  # fmt: skip
    ax.set_xticks(range(len(kinds)), kinds)
    ax.set_ylabel("cases broken")
    ax.set_title("Adversarial probe: promises broken per kind")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="", help=f"comma-separated, of: {', '.join(KINDS)}")
    parser.add_argument("--case", default="", help="only cases whose name contains this")
    parser.add_argument("--label", default="fixed", help="names the result file (main, fixed)")
    args = parser.parse_args(argv)
    kinds = {k for k in args.kind.split(",") if k} or set(KINDS)
    cases = [c for c in REGISTRY if c.kind in kinds and args.case.lower() in c.name.lower()]
    with tempfile.TemporaryDirectory(prefix="probe-") as tmp:
        ctx = Context(Path(tmp))
        try:
            rows = run_cases(ctx, cases)
        finally:
            ctx.close()
    print(table(rows))
    broken = sum(1 for r in rows if not r["held"])
    print(f"\n{len(rows) - broken} held, {broken} broken, of {len(rows)} cases")
    if not args.case and kinds == set(KINDS):
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = {"bench": "probe", "label": args.label, "machine": machine_description(),
               "rows": rows}  # fmt: skip
        (RESULTS / f"probe-{args.label}.json").write_text(json.dumps(out, indent=2) + "\n")
        chart(RESULTS / "probe.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
