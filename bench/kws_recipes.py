"""Choosing the training recipe on a DEVELOPMENT set, in-process (the reported clips stay out).

    .venv/bin/python bench/kws_recipes.py --recipes base,babble [--keywords stop,alexa]

Development set: "stop" (kw_pos + kw_pos_stop: 135 clips, 80 Speech Commands speakers) and the
DEV fifth of each kw_real keyword (`kws_real.dev_test_split`: a fixed hash of the clip's file
name; Picovoice's files name no speaker, so speakers may recur in the other four fifths).
These are bench/kws_real.py's TUNE keywords, whose figures it labels "tuned on"; its REPORT
keywords (operator, wildfire, voyager, amelia) must not be given here. Every model is trained from generated data only (`kwtrain
build`'s pipeline with the recipe's settings), scored in-process on cached embeddings of the
same streams as bench/kws_real.py (clean and 10 dB in test-part noise beds; false wakes on the
test part of the background), which is the .eim's arithmetic (tests/kws/test_embedding.py).

Per recipe and keyword: the stated threshold, false wakes per hour at it on the test
background and the tail model's prediction, the miss rates at it and at the test
background's own <= 1 FA/h threshold, and the training time. Writes
bench/results/kws_recipes.json (merged with earlier runs: one entry per recipe).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from kws_real import (  # the sibling script: bench/ is on sys.path when this one runs
    REPORT,
    RESULTS,
    WORK,
    conditions,
    dev_test_split,
    kw_real_files,
    kw_real_root,
    stop_files,
    test_part_background,
)

from edgeml.audioformat import read_audio
from kwtrain import streameval as se
from kwtrain.calibration import expected_rate
from kwtrain.embedding.train import EmbTrainSettings, build_embedding_model
from kwtrain.names import slug

BABBLE = (("noise", 0.4), ("music_tv", 0.2), ("speech_long", 0.15), ("babble", 0.25))
RECIPES: dict[str, dict] = {
    "base": {"consecutive": 1, "hard_negative_rounds": 0},  # round 1's defaults
    "babble": {"bed_mix": BABBLE},
    "low_snr": {"snr_db": (-5.0, 20.0), "p_bed": 0.9},
    "babble_low_snr": {"bed_mix": BABBLE, "snr_db": (-5.0, 20.0), "p_bed": 0.9},
    "positives_2400": {"positives": 2400},
    "hard_negatives": {"hard_negative_rounds": 1},
    # the shipped listen.eim's settings (make keyword-model)
    "listen_recipe": {"hard_negative_rounds": 1, "consecutive": 3},
}


def settings(recipe: str, keyword: str) -> EmbTrainSettings:
    over = dict(RECIPES[recipe])
    return replace(EmbTrainSettings(keyword=keyword, threads=1), **over)


def score(model, conds: dict, bg_streams: list, cache: Path) -> dict:
    scorer = se.EmbeddingStreamScorer(model, cache=cache)
    out = {name: [float(scorer(x, first).max()) for x, first in s] for name, s in conds.items()}
    out["bg_hops"], out["bg_hours"] = se.score_background(scorer, bg_streams)
    return out


def summary(sc: dict, model, cal: dict) -> dict:
    hops, hours = sc["bg_hops"], sc["bg_hours"]
    t = model.threshold
    oracle = se.threshold_for_fa(hops, hours, 1.0)
    res = {
        "threshold": round(t, 5),
        "method": cal.get("method"),
        "fa_per_hour_test": round(se.fa_per_hour(hops, hours, t), 2),
        "fa_per_hour_predicted": expected_rate(cal.get("tail", {}), t),
        "oracle_threshold": round(oracle, 5),
        "test_bg_hours": round(hours, 3),
    }
    for cond in ("clean", "10dB"):
        mx = np.asarray(sc[cond])
        res[cond] = {
            "clips": len(mx),
            "miss_at_threshold": round(se.miss_rate(mx, t), 4),
            "miss_at_oracle": round(se.miss_rate(mx, oracle), 4),
        }
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--recipes", default="base")
    ap.add_argument("--keywords", default="stop,alexa,smart mirror,snowboy")
    ap.add_argument("--json", default="kws_recipes.json")
    a = ap.parse_args()
    held_out = [k for k in a.keywords.split(",") if k.strip() in REPORT]
    if held_out:  # choosing a recipe on them would make their kws_real figures worthless
        print(f"kws_recipes: {', '.join(held_out)} are REPORT keywords of bench/kws_real.py: "
              "choose recipes on the TUNE ones (alexa, smart mirror, snowboy) or stop")  # fmt: skip
        return 2
    if (sp := kw_real_root("kws_recipes")) is None:
        return 0
    _, _, bg_streams, beds = test_part_background(sp)
    cache = WORK / "evalcache"
    path = RESULTS / a.json
    result = json.loads(path.read_text()) if path.is_file() else {"recipes": {}}
    for recipe in [r.strip() for r in a.recipes.split(",") if r.strip()]:
        entry = result["recipes"].setdefault(recipe, {"settings": {}, "keywords": {}})
        entry["settings"] = {k: v for k, v in RECIPES[recipe].items()}
        for kw in [k.strip() for k in a.keywords.split(",") if k.strip()]:
            files = stop_files(sp) if kw == "stop" else dev_test_split(kw_real_files(sp, kw))[0]
            conds = conditions([read_audio(f) for f in files], beds, seed=len(kw))
            t0 = time.time()
            out = WORK / "recipes" / recipe / slug(kw)
            model, report = build_embedding_model(settings(recipe, kw), out, sp)
            sc = score(model, conds, bg_streams, cache)
            res = summary(sc, model, report["calibration"])
            res["train_seconds"] = report["seconds"]
            res["wall_seconds"] = round(time.time() - t0)
            entry["keywords"][kw] = res
            print(f"{recipe} {kw}: {json.dumps(res)}", flush=True)
            RESULTS.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
