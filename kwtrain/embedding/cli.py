"""`kwtrain build` with the speech-embedding front end (the default): options and the run.

    kwtrain build --keyword WORD --out DIR [--eim FILE] [--background DIR] [--data DIR]

Generates the keyword with every offline synthesizer found (espeak-ng, flite, festival),
draws it into real background (the train part of --background; default $KWTRAIN_BACKGROUND,
else ../shared/data/speech beside the checkout when present), trains the head, calibrates the
threshold on the calibration part and exports one .eim with the report beside it. Recordings
of the keyword (`kwtrain record --label WORD --out DIR`, then `--data DIR`) are added.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from kwtrain.names import slug

REPO = Path(__file__).resolve().parents[2]  # the checkout, when run from one


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--frontend",
        choices=["embedding", "mfcc"],
        default=os.environ.get("KWTRAIN_FRONTEND", "embedding"),
        help="embedding: pretrained speech embedding + small head (default; numpy + "
        "onnxruntime on the device); mfcc: Edge Impulse's MFCC block + 1-D CNN (numpy only)",
    )
    p.add_argument(
        "--background",
        type=Path,
        default=None,
        help="real background audio (speech_long/, music_tv/, noise_bed/, kw_neg/, utt/ "
        "folders), split by file into train/calibration/test (default $KWTRAIN_BACKGROUND, "
        "else ../shared/data/speech when present)",
    )
    p.add_argument("--positives", type=int, default=None, help="synthesised keyword utterances")
    p.add_argument("--head-epochs", type=int, default=None, help="head training epochs (25)")
    p.add_argument(
        "--consecutive",
        type=int,
        default=3,  # EmbTrainSettings.consecutive
        help="a grid position scores the lowest of its last K positions (240 ms apart): "
        "fewer one-position spikes (default 3)",
    )
    p.add_argument(
        "--hard-negative-rounds",
        type=int,
        default=1,  # EmbTrainSettings.hard_negative_rounds
        help="train again this many times with the train background's highest-scored windows "
        "weighted 10x (real audio that looks like the keyword; default 1)",
    )
    p.add_argument(
        "--channel-copies",
        type=int,
        default=int(os.environ.get("KWTRAIN_CHANNEL_COPIES", "0")),  # EmbTrainSettings
        help="extra clips of each keyword utterance, confusable and word heard through a "
        "telephone line or a cheap microphone (default 0: none)",
    )
    p.add_argument(
        "--max-fa-per-hour",
        type=float,
        default=1.0,
        help="calibrate the threshold for at most this many false wakes per hour (default 1)",
    )
    p.add_argument(
        "--threshold-rule",
        choices=["capped", "bound"],
        default=os.environ.get("KWTRAIN_THRESHOLD_RULE", "capped"),
        help="capped: the tail model capped by the keyword's held-out positives (default); "
        "bound: the 95 %% bound of the false-wake rate meets --max-fa-per-hour (needs hours of "
        "calibration audio to leave the keyword detectable: kwtrain/calibration.py)",
    )
    from kwtrain.background import add_build_options

    add_build_options(p)


def default_background() -> Path | None:
    env = os.environ.get("KWTRAIN_BACKGROUND") or os.environ.get("SPEECH_DATA_DIR")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data" / "speech"]:
        if (cand / "speech_long").is_dir() or (cand / "noise_bed").is_dir():
            return cand
    return None


def run_build(a: argparse.Namespace) -> dict:
    from kwtrain.background import calibrated_on, choose
    from kwtrain.embedding.export import export_embedding_eim
    from kwtrain.embedding.train import EmbTrainSettings, build_embedding_model

    chosen = choose(a.background or default_background(), a.data, a.fetch_background)
    if chosen.warning:
        print(chosen.warning, file=sys.stderr)
    background = list(chosen.roots) or None
    # the head is tiny: one torch thread; two on a busy 2-core machine made each step ~30x
    # slower (threads waiting for each other), and the clip workers use both cores anyway
    s = EmbTrainSettings(keyword=a.keyword, seed=a.seed, threads=1)
    if a.positives:
        s = replace(s, positives=a.positives)
    if a.head_epochs:
        s = replace(s, epochs=a.head_epochs)
    s = replace(
        s,
        max_fa_per_hour=a.max_fa_per_hour,
        threshold_rule=a.threshold_rule,
        name=a.name or a.keyword,
        consecutive=max(1, a.consecutive),
        hard_negative_rounds=max(0, a.hard_negative_rounds),
        channel_copies=max(0, a.channel_copies),
    )
    real = []
    if a.data is not None and (a.data / a.keyword).is_dir():
        real = sorted((a.data / a.keyword).glob("*.wav"))
    model, report = build_embedding_model(s, a.out, background, real)
    eim = a.eim or a.out / f"{slug(a.keyword)}.eim"
    export_embedding_eim(model, eim)
    report["eim"] = str(eim)
    report["eim_bytes"] = eim.stat().st_size
    report["background"] = list(chosen.sources) or None
    report["calibrated_on"] = calibrated_on(chosen.roots)  # hours per group / source
    report_path = eim.with_name(f"{eim.stem}.report.json")
    report_path.write_text(json.dumps(report, indent=2))
    write_png(report, eim.with_name(f"{eim.stem}.report.png"))
    return {
        "eim": str(eim),
        "bytes": eim.stat().st_size,
        "threshold": model.threshold,
        "calibration": report["calibration"],
        "calibrated_on": report["calibrated_on"],
        "report": str(report_path),
        "seconds": report["seconds"],
    }


def write_png(report: dict, path: Path) -> Path:
    """Training curves (loss; held-out synthetic voices) and the calibration, one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = report["history"]
    ep = [r["epoch"] for r in h]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    ax[0].plot(ep, [r["loss"] for r in h], label="training loss")
    ax[0].set_xlabel("epoch")
    ax[0].legend()
    for key, label in (("val_pos_over_0.5", "held-out voices: keyword windows >= 0.5"),
                       ("val_neg_over_0.5", "held-out voices: other windows >= 0.5")):  # fmt: skip
        if any(key in r for r in h):
            ax[1].plot(ep, [r.get(key, float("nan")) for r in h], label=label)
    cal = report["calibration"]
    ax[1].set_title(
        f"threshold {cal['threshold']:.3f}: {cal['false_wakes']} false wakes in "
        f"{cal['hours']:.2f} h of calibration audio",
        fontsize=9,
    )
    ax[1].set_ylim(0, 1)
    ax[1].set_xlabel("epoch")
    ax[1].legend(fontsize=8)
    fig.suptitle(f"kwtrain build --keyword {report['keyword']} (speech-embedding front end)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def is_embedding_model(path: Path) -> bool:
    from kwtrain.embedding.head import EmbeddingModel

    try:
        EmbeddingModel.load(path)
        return True
    except (ValueError, KeyError, OSError):
        return False


def export(path: Path, out: Path, python: str | None = None) -> Path:
    """`kwtrain export` of an embedding model.npz (same weights and threshold); `python` as
    for `eimfile.launcher` ("" with --portable)."""
    from kwtrain.embedding.export import export_embedding_eim
    from kwtrain.embedding.head import EmbeddingModel

    return export_embedding_eim(EmbeddingModel.load(path), out, python)
