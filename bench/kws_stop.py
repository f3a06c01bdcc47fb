"""Real speech: a "stop" model from generated data plus PART of ../shared/data/speech.

    .venv/bin/python bench/kws_stop.py            (make stop-model)

The speakers of kw_pos/ ("stop", 25 clips of 24 people) and kw_neg/ (38 other words) are split
by speaker id: half of the "stop" speakers train, the others are held out with all their clips.
Training data = the espeak-ng bootstrap for "stop" + the training speakers' clips (each copied
20 times so that augmentation draws many variants of them) + 7 of the 14 sentences of utt/ +
3 of the 7 noise clips. Held out: the other speakers' "stop" and other words, the other 7
sentences (the 1 s window slides over them with the runner's 250 ms hop) and 4 noise clips.
The network is 16, 32 channels wide by default (Studio's 8, 16 was weaker here).

Everything held out is scored through the exported .eim and the real edge_impulse_linux SDK.
A clip is detected / a false alarm when any window reaches the threshold. As a baseline in
the same run, a model trained on the generated data alone is scored on the same clips.

Writes bench/results/kws_stop.json and kws_stop.png. Clips are copied only into the work
folder (build/, ignored by git), never into the repository. Skips cleanly (exit 0) when the
speech folder is absent.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from devkit.paths import REPO, speech_dir
from kwtrain.bootstrap import BootstrapSettings, bootstrap
from kwtrain.dataset import load_dataset
from kwtrain.evaluate import SdkScorer, best_threshold, score_clips, summarize
from kwtrain.mfcc.export import export_eim
from kwtrain.mfcc.runtime import KeywordModel
from kwtrain.mfcc.train import TrainSettings, train
from kwtrain.report import markdown_table

KEYWORD = "stop"
SPEAKER = re.compile(r"_([0-9a-f]{8})_nohash_")
TARGET = {"detection_rate": 0.90, "false_alarm_rate": 0.02}
COMPARISON = {
    "whisper_tiny_en_as_detector": "41 of 50 clips, no false alarm on single words",
    "pocketsphinx_keyphrase": "29 of 50 clips, no false alarm on single words",
}


def speaker_of(path: Path) -> str:
    match = SPEAKER.search(path.name)
    return match.group(1) if match else path.stem


def _crc(key: str) -> int:
    return zlib.crc32(key.encode())


def split_real(speech: Path, train_sentences: int = 0) -> dict[str, dict[str, list[Path]]]:
    """{'train'|'test': {'stop'|'unknown'|'noise'|'sentence': [paths]}}, by speaker.

    Half the "stop" speakers (ranked by a hash of their id) are held out; a speaker's other
    words go to the same side; speakers with only other words are split by hash parity.
    3 of the 7 noise clips train, 4 are held out; `train_sentences` of the 14 sentences
    (ranked by a hash of the file name) train, the others are held out.
    """
    pos = sorted((speech / "kw_pos").glob("*.wav"))
    neg = sorted((speech / "kw_neg").glob("*.wav"))
    ranked = sorted({speaker_of(p) for p in pos}, key=_crc)
    test_speakers = set(ranked[len(ranked) // 2 :])

    def side(p: Path) -> str:
        spk = speaker_of(p)
        if spk in ranked:
            return "test" if spk in test_speakers else "train"
        return "test" if _crc(spk) % 2 else "train"

    out: dict[str, dict[str, list[Path]]] = {
        s: {"stop": [], "unknown": [], "noise": [], "sentence": []} for s in ("train", "test")
    }
    for label, paths in (("stop", pos), ("unknown", neg)):
        for p in paths:
            out[side(p)][label].append(p)
    noise = sorted((speech / "noise").glob("*.wav"), key=lambda p: _crc(p.name))
    out["train"]["noise"], out["test"]["noise"] = noise[:3], noise[3:]
    utt = sorted((speech / "utt").glob("*.wav"), key=lambda p: _crc(p.name))
    out["train"]["sentence"], out["test"]["sentence"] = utt[:train_sentences], utt[train_sentences:]
    return out


def build_dataset(work: Path, real: dict, copies: int, with_real: bool, seed: int) -> Path:
    """training/ = bootstrap (+ real training clips); testing/ = real held-out clips."""
    data = work / ("data-real" if with_real else "data-generated")
    generated = work / "generated"
    if not (generated / "manifest.csv").is_file():
        bootstrap(generated, BootstrapSettings(keyword=KEYWORD, seed=seed))
    if data.exists():
        shutil.rmtree(data)
    shutil.copytree(generated, data / "training")
    if with_real:
        for label in ("stop", "unknown", "noise", "sentence"):
            target = "unknown" if label == "sentence" else label  # cut into 1 s windows
            n = max(1, copies // 4) if label == "sentence" else copies  # many windows each
            for p in real["train"][label]:
                for k in range(n):
                    dest = data / "training" / target / f"{target}.real_{p.stem}.{k:02d}.wav"
                    shutil.copyfile(p, dest)
    for label in ("stop", "unknown", "noise"):
        for p in real["test"][label]:
            dest = data / "testing" / label / f"{label}.real_{p.stem}.wav"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dest)
    return data


def run_one(work: Path, name: str, data: Path, real: dict, args: argparse.Namespace) -> dict:
    dataset = load_dataset(data, keyword=KEYWORD)
    settings = TrainSettings(
        keyword=KEYWORD, epochs=args.epochs, seed=args.seed, channels=args.channels, name=name
    )
    report = train(dataset, work / name, settings)
    eim = export_eim(KeywordModel.load(work / name / "model.npz"), work / name / f"{name}.eim")
    clips = [(p, "keyword") for p in real["test"]["stop"]]
    clips += [(p, "word") for p in real["test"]["unknown"]]
    clips += [(p, "sentence") for p in real["test"]["sentence"]]
    clips += [(p, "noise") for p in real["test"]["noise"]]
    scorer = SdkScorer(eim, KEYWORD)
    try:
        results = score_clips(scorer, clips, scorer.window)
    finally:
        scorer.close()
    summary = summarize(results)
    averaged = [  # the edge app's --average 2: mean of the last two windows' scores
        replace(r, max_score=float(np.max(np.convolve(r.scores, [0.5, 0.5], "valid"))))
        for r in results
    ]
    return {
        "name": name,
        "eim_bytes": eim.stat().st_size,
        "train_seconds": report["train_seconds"],
        "training_windows": report["windows"]["train"],
        "single_window_test_accuracy": report.get("test_accuracy"),
        "streaming": summary,
        "best_threshold_at_2pct_false_alarms": best_threshold(results, 0.02),
        "streaming_average_2_windows": summarize(averaged),
        "best_threshold_at_2pct_false_alarms_average_2": best_threshold(averaged, 0.02),
        "clips": [
            {"file": Path(r.path).name, "category": r.category, "max_score": r.max_score}
            for r in results
        ],
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = result["models"]
    fig, axes = plt.subplots(1, 1 + len(models), figsize=(6 + 5 * len(models), 4.5))
    ax = axes[0]
    for m, style in zip(models, ("o-", "s--"), strict=False):
        rows = m["streaming"]["all_negatives"]
        th = [r["threshold"] for r in rows]
        ax.plot(th, [r["detection_rate"] for r in rows], style, label=f"{m['name']}: detected")
        ax.plot(th, [r["false_alarm_rate"] for r in rows], style, alpha=0.5,
                label=f"{m['name']}: false alarms")  # fmt: skip
    ax.axhline(TARGET["detection_rate"], color="green", ls=":", lw=1)
    ax.axhline(TARGET["false_alarm_rate"], color="red", ls=":", lw=1)
    ax.set_xlabel("threshold")
    ax.set_ylabel("share of held-out clips")
    ax.set_title("unseen speakers: detection vs false alarms per clip")
    ax.legend(fontsize=7)
    for ax, m in zip(axes[1:], models, strict=True):
        cats = ["keyword", "word", "sentence", "noise"]
        for i, c in enumerate(cats):
            scores = [x["max_score"] for x in m["clips"] if x["category"] == c]
            ax.scatter(scores, [i] * len(scores), alpha=0.6)
        ax.set_yticks(range(len(cats)), ["stop (unseen)", "other words", "sentences", "noise"])
        ax.set_xlabel("max 'stop' score over the sliding windows")
        ax.set_title(m["name"])
        ax.set_xlim(-0.02, 1.02)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=REPO / "build" / "kws-stop")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--channels", type=lambda s: tuple(int(c) for c in s.split(",")),
                        default=(16, 32),
                        help="conv channels (default 16,32: twice Studio's 8,16, which reached "
                             "8/12 at 6.7 %% false alarms here)")  # fmt: skip
    parser.add_argument("--copies", type=int, default=20, help="copies of each real clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--train-sentences",
        type=int,
        default=7,
        help="sentences of utt/ used for training (the rest held out)",
    )
    args = parser.parse_args()

    speech = speech_dir()
    if speech is None:
        print("skipped: ../shared/data/speech is not present (set SPEECH_DATA_DIR)")
        return 0
    started = time.time()
    real = split_real(speech, args.train_sentences)
    models = []
    runs = [("stop-generated+real", True)] + (
        [] if args.no_baseline else [("stop-generated", False)]
    )
    for name, with_real in runs:
        data = build_dataset(args.work, real, args.copies, with_real, args.seed)
        models.append(run_one(args.work, name, data, real, args))
    result = {
        "keyword": KEYWORD,
        "target": TARGET,
        "comparison_from_issue": COMPARISON,
        "split": {
            split: {k: [p.name for p in v] for k, v in parts.items()}
            for split, parts in real.items()
        },
        "held_out_speakers": sorted({speaker_of(p) for p in real["test"]["stop"]}),
        "settings": {
            "epochs": args.epochs,
            "channels": list(args.channels),
            "copies": args.copies,
            "seed": args.seed,
        },  # fmt: skip
        "models": models,
        "seconds": round(time.time() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kws_stop.json").write_text(json.dumps(result, indent=2))
    plot(result, args.out / "kws_stop.png")
    for m in models:
        print(f"\n## {m['name']}: held-out clips {m['streaming']['clips']}")
        print(markdown_table(m["streaming"]["all_negatives"]))
        print("best threshold with <= 2 % false alarms:", m["best_threshold_at_2pct_false_alarms"])
        print("averaging 2 windows:")
        print(markdown_table(m["streaming_average_2_windows"]["all_negatives"]))
        print("best:", m["best_threshold_at_2pct_false_alarms_average_2"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
