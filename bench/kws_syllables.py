"""Miss rate against syllables, from the real-speaker results already measured (nothing retrained).

    .venv/bin/python bench/kws_syllables.py

One point per keyword and result file: the share of real speakers missed at 10 dB SNR at the
model's stated threshold, against the keyword's syllables as espeak-ng counts them
(`kwtrain/keywordlength.py`). Sources, all the default recipe (`kwtrain build --keyword K`, no
recordings of the keyword):

- kws_real*.json and kws_threshold.json (`bench/kws_real.py` and `bench/kws_threshold.py`: real
  clips in real noise beds, 250 ms hops, through the SDK or the same arithmetic in-process): for
  each keyword the LATEST of those files that measured it (FILES is in commit order), so a recipe
  or threshold rule that was replaced does not count (round 2's snowboy: 100 % missed at a
  threshold the later rule capped); kws_threshold.json on the clips kws_real calls test; for
  stop, the model trained without recordings ("generated_only"), scored on all its speakers
  (none was used in training);
- e2e.json (`bench/e2e.py`: the whole app, 16 real speakers per keyword at 10 dB, "keyword
  missed"): the only result for operator, wildfire and voyager.

Not used, with the reason written to the JSON: kws_stop.json (the MFCC model on single clips, no
noise condition: another protocol). amelia is in kw_real but no result file measured it.
Writes bench/results/kws_syllables.json and .png; `kwtrain/keywordlength.py` MEASURED is
copied from the JSON (tests/kws/test_keywordlength.py checks they agree).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kwtrain.keywordlength import phoneme_tokens, syllables  # noqa: E402

RESULTS = REPO / "bench" / "results"
# kws_real result files in the order they were committed (git log): a later one replaces an
# earlier one's figure for the same keyword
FILES = (
    "kws_real_round1.json",  # kws_real.json until the TUNE / REPORT run replaced it
    "kws_real_alexa_round1_recipe.json",
    "kws_real_round2.json",
    "kws_real_round2_more.json",
    "kws_threshold.json",  # same protocol, in-process; the current threshold rule (86cfa64)
    "kws_real_stop_round2.json",
)
E2E = "e2e.json"
EXCLUDED = {
    "kws_stop.json": "the MFCC model scored on single clips without a noise condition: another "
    "protocol (detection rate per clip), not a miss rate at 10 dB",
}
UNMEASURED = ("amelia",)  # in ../shared kw_real, in no result file


def kws_real_points() -> dict[str, dict]:
    """keyword -> its latest kws_real-protocol figure (10 dB, stated threshold)."""
    out: dict[str, dict] = {}
    for name in FILES:
        data = json.loads((RESULTS / name).read_text())
        for kw, res in data.get("keywords", {}).items():
            new = res.get("new")
            if new and "10dB" in new:
                out[kw] = _point(kw, name, new, f"keywords.{kw}.new")
            elif new and "miss_10dB_test_part" in new:  # kws_threshold.json
                out[kw] = _threshold_point(kw, name, res)
        stop = data.get("stop", {}).get("generated_only", {}).get("all_80_speakers")
        if stop:
            out["stop"] = _point("stop", name, stop, "stop.generated_only.all_80_speakers")
    return out


def _point(kw: str, source: str, res: dict, path: str) -> dict:
    return {
        "keyword": kw,
        "source": source,
        "path": path,
        "protocol": "kws_real",
        "trials": res["10dB"]["clips"],
        "miss_10db": round(res["10dB"]["miss_at_threshold"], 3),
        "miss_10db_at_1fa_per_hour": round(res["10dB"]["miss_at_1fa_per_hour"], 3),
        "miss_clean": round(res["clean"]["miss_at_threshold"], 3),
        "threshold": round(res["threshold"], 4),
    }


def _threshold_point(kw: str, source: str, res: dict) -> dict:
    """kws_threshold.json: the new rule's stated threshold, on the clips kws_real calls test
    (alexa's dev part chose the rule's cap)."""
    new, oracle = res["new"], res["oracle_1fa_per_hour"]
    return {
        "keyword": kw,
        "source": source,
        "path": f"keywords.{kw}.new (test part)",
        "protocol": "kws_real",
        "trials": res["test_clips"],
        "miss_10db": round(new["miss_10dB_test_part"], 3),
        "miss_10db_at_1fa_per_hour": round(oracle["miss_10dB_test_part"], 3),
        "miss_clean": round(new["miss_clean_test_part"], 3),
        "threshold": round(new["threshold"], 4),
    }


def e2e_points() -> list[dict]:
    data = json.loads((RESULTS / E2E).read_text())
    out = []
    for kw, conds in data["by_keyword"].items():
        r = conds["10dB"]["new"]
        out.append({
            "keyword": kw,
            "source": E2E,
            "path": f"by_keyword.{kw}.10dB.new",
            "protocol": "e2e",
            "trials": r["trials"],
            "miss_10db": round(r["missed"], 3),
            "miss_clean": round(conds["quiet"]["new"]["missed"], 3),
        })  # fmt: skip
    return out


def by_syllables(points: list[dict]) -> dict[str, dict]:
    table: dict[str, dict] = {}
    for p in sorted(points, key=lambda p: p["syllables"]):
        row = table.setdefault(str(p["syllables"]), {"keywords": [], "miss_10db": []})
        if p["keyword"] not in row["keywords"]:
            row["keywords"].append(p["keyword"])
        row["miss_10db"].append(p["miss_10db"])
    for row in table.values():
        row["min"], row["max"] = min(row["miss_10db"]), max(row["miss_10db"])
    return table


def chart(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    style = {"kws_real": ("o", -0.08, "kws_real*.json, kws_threshold.json (135-401 speakers)"),
             "e2e": ("s", 0.08, "e2e.json (whole app, 16 speakers)")}  # fmt: skip
    for proto, (marker, dx, label) in style.items():
        pts = [p for p in points if p["protocol"] == proto]
        xs = [p["syllables"] + dx for p in pts]
        ys = [100 * p["miss_10db"] for p in pts]
        ax.scatter(xs, ys, marker=marker, s=50, label=label)
        labels: dict[tuple[float, float], list[str]] = {}  # one label per spot: no overprint
        for p, x, y in zip(pts, xs, ys, strict=True):
            labels.setdefault((x, round(y, 1)), []).append(p["keyword"])
        for (x, y), names in labels.items():
            ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(5, 3),
                        fontsize=8)  # fmt: skip
    ax.set_xlabel("syllables (espeak-ng)")
    ax.set_ylabel("real speakers missed at 10 dB SNR, stated threshold (%)")
    ax.set_xticks(sorted({p["syllables"] for p in points}))
    ax.set_ylim(-5, 105)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Miss rate against keyword length (default recipe, no recordings)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    points = list(kws_real_points().values()) + e2e_points()
    for p in points:
        p["syllables"] = syllables(p["keyword"])
        p["phonemes"] = " ".join(phoneme_tokens(p["keyword"]))
    points.sort(key=lambda p: (p["syllables"], p["keyword"], p["protocol"]))
    result = {
        "measure": "share of real speakers missed at 10 dB SNR at the model's stated threshold",
        "syllables": "vowel nuclei of espeak-ng's phonemes (en-us), kwtrain/keywordlength.py",
        "rule": "kws_real: the latest of FILES (commit order) that measured the keyword; "
        "e2e: every keyword of e2e.json",
        "points": points,
        "by_syllables": by_syllables(points),
        "excluded": EXCLUDED,
        "unmeasured_keywords": {kw: syllables(kw) for kw in UNMEASURED},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "kws_syllables.json").write_text(json.dumps(result, indent=2) + "\n")
    chart(points, RESULTS / "kws_syllables.png")
    for p in points:
        print(f"{p['syllables']}  {p['keyword']:<13} {100 * p['miss_10db']:5.1f} %  "
              f"({p['trials']} speakers, {p['source']})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
