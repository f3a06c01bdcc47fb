"""Last step of scripts/arm64_check.sh: bench/results/arm64_check.json with the history of runs.

    python3 scripts/arm64/summary.py CURRENT.json RESULTS.json

CURRENT.json is this run (written by the shell script); RESULTS.json, when it exists, is the
previous result, whose `history` is carried on (the last 20 runs). Prints a table of the cold and
warm runs in that history, for the log: so one log shows what a cold and a warm run cost.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KEEP = 20


def entry(result: dict) -> dict:
    """One run in the history: what it was, its result and the seconds of each phase it ran."""
    tests = result.get("tests") or {}
    return {
        "run": result["run"],
        "started_utc": result["started_utc"],
        "ok": result["ok"],
        "total_seconds": result["total_seconds"],
        "tests": {k: tests.get(k) for k in ("passed", "failures", "errors", "skipped")},
        "phases": {p["phase"]: p["seconds"] for p in result["phases"] if not p.get("skipped")},
    }


def main() -> int:
    current = json.loads(Path(sys.argv[1]).read_text())
    results = Path(sys.argv[2])
    history = []
    if results.is_file():
        try:
            previous = json.loads(results.read_text())
            history = previous.get("history") or ([entry(previous)] if "phases" in previous else [])
        except (ValueError, AttributeError, KeyError):
            history = []
    history.append(entry(current))
    current["history"] = history[-KEEP:]
    results.write_text(json.dumps(current, indent=2) + "\n")

    names = []
    for run in current["history"]:
        names += [n for n in run["phases"] if n not in names]
    print("   recent runs (seconds; cold = the root built from nothing, warm = the root reused):")
    print("   " + "  ".join(["started (UTC)       ", "run ", "ok  ", "total"] + names))
    for run in current["history"][-8:]:
        cells = [
            run["started_utc"],
            f"{run['run']:4}",
            f"{'yes' if run['ok'] else 'NO':4}",
            f"{run['total_seconds']:5.0f}",
        ]
        cells += [
            f"{run['phases'][n]:{len(n)}.0f}" if n in run["phases"] else " " * len(n) for n in names
        ]
        print("   " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
