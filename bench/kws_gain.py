"""Does a gain at the spotter's input find the quiet speakers the keyword model misses?

    .venv/bin/python bench/kws_gain.py [--keywords alexa,voyager] [--clips 150]

bench/e2e.py showed the missed keywords leaning to quiet speakers. This checks the obvious remedy
before building it: each real clip of the TEST part of kw_real (the first --clips of
kws_real.dev_test_split), as recorded and raised to a speech level of -18 dBFS (at most +20 dB;
louder clips unchanged), scored by the model `kwtrain build` made (build/bench/new/<slug>, in
process, the same hop scores as through the SDK), clean and in a TEST-part noise bed at 10 dB SNR
(the same bed and position for both levels). Missed at the model's stated threshold, for all
clips and for the quieter and louder half. The level is the 95th percentile of 10 ms frame
energies. Results: bench/results/kws_gain.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from kws_real import RESULTS, WORK, dev_test_split, kw_real_files, kw_real_root

from edgeml.audioformat import read_audio
from kwtrain import negatives
from kwtrain import streameval as se
from kwtrain.embedding.export import read_embedding_model
from kwtrain.names import slug

TARGET_DBFS = -18.0
MAX_GAIN_DB = 20.0


def level_dbfs(x: np.ndarray) -> float:
    frames = x[: len(x) // 160 * 160].reshape(-1, 160).astype(np.float64)
    return float(np.percentile(10 * np.log10(np.mean(frames**2, axis=1) + 1e-12), 95))


def gain_for(level: float) -> float:
    return 10 ** (min(max(TARGET_DBFS - level, 0.0), MAX_GAIN_DB) / 20)


def score(scorer, clip: np.ndarray, bed, seed: int) -> float:
    stream, first = se.keyword_stream(clip, bed, None if bed is None else 10.0,
                                      np.random.default_rng(seed))  # fmt: skip
    return float(scorer(stream, first).max())


def one_keyword(sp: Path, kw: str, beds: list[np.ndarray], n: int) -> dict:
    eim = WORK / "new" / slug(kw) / f"{slug(kw)}.eim"
    scorer = se.EmbeddingStreamScorer(read_embedding_model(eim))
    files = dev_test_split(kw_real_files(sp, kw))[1][:n]
    rows = []
    for i, f in enumerate(files):
        clip = read_audio(f).astype(np.float32)
        level = level_dbfs(clip)
        raised = clip * gain_for(level)
        bed = beds[i % len(beds)]
        rows.append([level, score(scorer, clip, None, i), score(scorer, raised, None, i),
                     score(scorer, clip, bed, i), score(scorer, raised, bed, i)])  # fmt: skip
        if (i + 1) % 25 == 0:
            print(f"{kw}: {i + 1}/{len(files)} clips", file=sys.stderr, flush=True)
    a = np.asarray(rows)
    quiet = a[:, 0] < np.median(a[:, 0])
    out = {
        "clips": len(a),
        "threshold": scorer.threshold,
        "median_level_dbfs": float(np.median(a[:, 0])),
    }
    for j, name in enumerate(("clean", "clean_raised", "10dB", "10dB_raised"), start=1):
        missed = a[:, j] < scorer.threshold
        out[name] = {"missed": float(missed.mean()), "quieter_half": float(missed[quiet].mean()),
                     "louder_half": float(missed[~quiet].mean())}  # fmt: skip
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--keywords", default="alexa,voyager")
    p.add_argument("--clips", type=int, default=150)
    a = p.parse_args()
    sp = kw_real_root("bench/kws_gain.py")
    if sp is None:
        return 0
    t0 = time.time()
    beds = [read_audio(f) for f in negatives.background(sp)["test"]["noise_bed"]]
    result = {"machine": platform.processor() or platform.machine(), "target_dbfs": TARGET_DBFS,
              "max_gain_db": MAX_GAIN_DB,
              "keywords": {kw: one_keyword(sp, kw, beds, a.clips) for kw in a.keywords.split(",")}}  # fmt: skip
    result["seconds"] = round(time.time() - t0)
    (RESULTS / "kws_gain.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result["keywords"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
