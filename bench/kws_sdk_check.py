"""The in-process scores of bench/kws_real.py against the real SDK, on real clips.

    .venv/bin/python bench/kws_sdk_check.py [--models old_recipe/operator,new_recipe/amelia]

`bench/kws_real.py --in-process` scores with the .eim's own numpy + onnxruntime code on cached
embeddings, because 14 models through the SDK on 2.4 h of background each do not fit a short
run. This checks the claim that both give the same scores where it matters for the miss rates:
every 10 dB clip of the named keywords, streamed at 250 ms hops through the real
edge_impulse_linux ImpulseRunner and the exported .eim, against the in-process scorer. Needs the
models bench/kws_real.py trained under build/bench/. Writes bench/results/kws_sdk_check.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from kws_real import (  # the sibling script: bench/ is on sys.path when this one runs
    RESULTS,
    WORK,
    conditions,
    in_process_scorer,
    kw_real_files,
    kw_real_root,
    test_part_background,
)

from edgeml.audioformat import read_audio
from kwtrain import streameval as se
from kwtrain.names import slug


def check(eim: Path, conds: list) -> dict:
    """Per-clip maximum hop score through the SDK and in process, and the miss rates."""
    t0 = time.time()
    sdk = se.SdkStreamScorer(eim)
    try:
        a = np.array([sdk(x, first).max() for x, first in conds])
    finally:
        sdk.close()
    local = in_process_scorer(eim)
    b = np.array([local(x, first).max() for x, first in conds])
    t = local.threshold
    return {"clips": len(a), "threshold": t, "max_abs_diff": float(np.abs(a - b).max()),
            "miss_10dB_sdk": float((a < t).mean()), "miss_10dB_in_process": float((b < t).mean()),
            "sdk_seconds": round(time.time() - t0)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="old_recipe/operator,new_recipe/amelia",
                    help="folder/keyword under build/bench/, comma-separated")  # fmt: skip
    a = ap.parse_args()
    if (sp := kw_real_root("kws_sdk_check")) is None:
        return 0
    _, _, _, beds = test_part_background(sp)
    out = {}
    for item in [m.strip() for m in a.models.split(",") if m.strip()]:
        folder, kw = item.split("/", 1)
        eim = WORK / folder / slug(kw) / f"{slug(kw)}.eim"
        if not eim.is_file():
            print(f"kws_sdk_check: {eim} missing (run bench/kws_real.py first); skipped")
            continue
        clips = [read_audio(f) for f in kw_real_files(sp, kw)]
        out[item] = check(eim, conditions(clips, beds, seed=len(kw))["10dB"])
        print(item, json.dumps(out[item]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "kws_sdk_check.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
