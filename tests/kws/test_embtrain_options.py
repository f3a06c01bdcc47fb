"""Training options of the speech-embedding trainer that are off by default: hard negatives
(`--hard-negative-rounds`) and babble in the mix (`bed_mix`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from kwtrain.embedding.head import HeadSpec, forward
from kwtrain.embedding.train import KINDS, Beds, TrainData, hard_negatives, rms


def _head(seed: int = 0) -> tuple[HeadSpec, dict]:
    rng = np.random.default_rng(seed)
    spec = HeadSpec(context=3, stride=24, hidden=8, layers=1)
    w = {
        "fc0.weight": rng.normal(0, 0.3, (8, 3 * 96)).astype(np.float32),
        "fc0.bias": np.zeros(8, np.float32),
        "ln0.weight": np.ones(8, np.float32),
        "ln0.bias": np.zeros(8, np.float32),
        "out.weight": rng.normal(0, 2.0, (1, 8)).astype(np.float32),
        "out.bias": np.zeros(1, np.float32),
    }
    return spec, w


def test_hard_negatives_are_the_top_scored_training_background_windows_only() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    emb = rng.normal(0, 1, (n + 2, 96)).astype(np.float32)
    last = np.arange(2, n + 2)
    kind = rng.choice([KINDS.index("background"), KINDS.index("word")], n)
    heldout = rng.random(n) < 0.1
    d = TrainData(
        emb=emb, last=last, label=np.zeros(n, np.int64), weight=np.ones(n), kind=kind,
        heldout=heldout,
    )  # fmt: skip
    spec, w = _head()
    hard = hard_negatives(d, spec, w, quantile=0.95)
    scores = forward(spec, w, emb[last[:, None] + np.arange(-2, 1)[None, :]])
    bg = (kind == KINDS.index("background")) & ~heldout
    assert hard.any() and not (hard & ~bg).any(), "only training background is marked"
    assert scores[hard].min() >= scores[bg & ~hard].max() - 1e-6, "the highest-scored ones"
    assert hard[bg & (scores >= 0.5)].all(), "every background window over 0.5 is marked"


def test_babble_mixes_several_talkers_of_the_training_speech(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    talkers = [rng.normal(0, 0.05 * (i + 1), 48000).astype(np.float32) for i in range(8)]
    files = []
    for i, t in enumerate(talkers):
        files.append(tmp_path / f"talker{i}.wav")
        sf.write(files[-1], t, 16000, subtype="FLOAT")
    beds = Beds({"speech_long": files}, mix=(("babble", 1.0),))
    assert beds.names == ["babble"]
    seg = beds.segment(16000, np.random.default_rng(3))
    assert seg is not None and len(seg) == 16000
    # each talker normalised to rms 1 and summed: 3-6 independent talkers -> rms sqrt(3..6)
    assert np.sqrt(3) * 0.9 < rms(seg) < np.sqrt(6) * 1.1
    alone = [t[:16000] for t in talkers]
    assert max(abs(np.corrcoef(seg, a)[0, 1]) for a in alone) < 0.9, "not a single talker"
