"""Train a small model IN the test on generated data; it must find the keyword in voices it has
never heard and stay quiet on other words, through the exported .eim and the real SDK."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from devkit.paths import venv_command
from kwtrain import noise
from kwtrain.bootstrap import BootstrapSettings
from kwtrain.clips import write_wav

pytest.importorskip("torch")
KWTRAIN = venv_command("kwtrain")
HELD_OUT = ("f1", "m5")  # espeak-ng variants kept out of training
SETTINGS = BootstrapSettings(
    keyword="listen",
    accents=("en-us", "en-gb", "en-gb-scotland", "en-029"),
    variants=("m1", "m3", "m7", "f2", "f4", "klatt", "croak", *HELD_OUT),
    keyword_per_voice=3,
    words_per_voice=9,
    sentence_cuts_per_voice=2,
    noise_clips=60,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from kwtrain.bootstrap import bootstrap

    work = tmp_path_factory.mktemp("kws-train")
    bootstrap(work / "data", SETTINGS)
    holdout = [arg for g in HELD_OUT for arg in ("--holdout", g)]
    out = subprocess.run(
        [
            KWTRAIN,
            "train",
            "--data",
            str(work / "data"),
            "--out",
            str(work / "model"),
            "--epochs",
            "25",
            "--test-fraction",
            "0",
            *holdout,
            "--eim",
            str(work / "listen.eim"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return work, json.loads(out.stdout)


@pytest.mark.slow
def test_trained_model_finds_unseen_voices_and_ignores_other_words(trained, eim_path) -> None:
    from kwtrain.dataset import load_dataset
    from kwtrain.evaluate import SdkScorer, score_clips

    work, summary = trained
    report = json.loads((work / "model" / "report.json").read_text())
    assert report["test_groups"] == sorted(HELD_OUT), "the test split is the unseen voices only"
    assert (work / "model" / "report.png").stat().st_size > 10_000
    assert {"threshold_table", "confusion_matrix", "history"} <= set(report)
    assert report["numpy_vs_torch_max_abs_diff"] < 1e-5

    test = load_dataset(work / "data", test_fraction=0.0, holdout_groups=HELD_OUT).of("test")
    clips = [(s.path, s.label) for s in test if s.label != "noise"]
    rng = np.random.default_rng(99)  # fresh noise, not the training clips
    for i, kind in enumerate(noise.KINDS * 2):
        level = float(rng.uniform(-60, -25))
        path = write_wav(
            work / "fresh-noise" / f"{i}.wav", noise.make(kind, 16000, 16000, level, rng), 16000
        )
        clips.append((path, "noise"))
    scorer = SdkScorer(work / "listen.eim", "listen")
    try:
        results = score_clips(scorer, clips, scorer.window)
    finally:
        scorer.close()
    kw = np.array([r.max_score for r in results if r.category == "listen"])
    words = np.array([r.max_score for r in results if r.category == "unknown"])
    noise_scores = np.array([r.max_score for r in results if r.category == "noise"])
    assert len(kw) >= 20 and len(words) >= 60 and len(noise_scores) == 2 * len(noise.KINDS)
    threshold = 0.85  # the edge app's default
    detected, false_alarms = (kw >= threshold).mean(), (words >= threshold).mean()
    print(f"unseen voices: detected {detected:.0%}, false alarms on words {false_alarms:.0%}")
    assert detected >= 0.8, sorted(kw)
    assert false_alarms <= 0.1, sorted(words)[-10:]
    assert (noise_scores >= threshold).sum() == 0, noise_scores
