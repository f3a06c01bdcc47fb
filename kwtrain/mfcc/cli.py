"""The MFCC front end's command parts: the `train` options and run, `export` of an MFCC
model.npz, and `kwtrain build --frontend mfcc` (bootstrap a dataset with espeak-ng, train,
export). The top-level `kwtrain` command (`kwtrain/cli.py`) parses and dispatches.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from kwtrain.clierror import EXIT_MISSING_TOOL, CliError, env
from kwtrain.names import keyword_arg, slug


def _channels(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 8,16, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("channels must be positive, e.g. 8,16")
    return values


def _unit_interval(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


@dataclass(frozen=True)
class TrainArgs:
    """What `train` and `build` need, from flags falling back to KWTRAIN_* variables."""

    data: Path
    out: Path
    keyword: str
    epochs: int
    seed: int
    threads: int
    channels: tuple[int, ...]
    test_fraction: float
    holdout: tuple[str, ...]
    name: str
    eim: Path | None


def add_train_options(p: argparse.ArgumentParser, *, data_required: bool) -> None:
    p.add_argument(
        "--keyword",
        type=keyword_arg,
        default=env("KWTRAIN_KEYWORD", "listen"),
        help="label of the keyword class (default: listen; env KWTRAIN_KEYWORD)",
    )
    if data_required:
        p.add_argument("--data", type=Path, required=True, help="dataset folder (EI layout)")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder for model.npz, report.json, report.png",
    )
    p.add_argument("--epochs", type=int, default=int(env("KWTRAIN_EPOCHS", "40")))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=int(env("KWTRAIN_THREADS", "2")),
        help="torch threads (default 2; env KWTRAIN_THREADS)",
    )
    p.add_argument(
        "--channels",
        type=_channels,
        default=(8, 16),
        help="conv channels per layer (default 8,16: Studio's network)",
    )
    p.add_argument(
        "--test-fraction",
        type=_unit_interval,
        default=0.2,
        help="share of groups (voices/speakers) held out (default 0.2)",
    )
    p.add_argument(
        "--holdout",
        action="append",
        default=[],
        metavar="GROUP",
        help="always hold out this group (voice variant or speaker); repeatable",
    )
    p.add_argument("--name", default="", help="project name shown by --print-info")
    p.add_argument("--eim", type=Path, default=None, help="also export the model to this .eim")


def train_args(a: argparse.Namespace, data: Path) -> TrainArgs:
    if a.epochs < 1:
        raise CliError("--epochs must be at least 1")
    return TrainArgs(
        data=data,
        out=a.out,
        keyword=a.keyword,
        epochs=a.epochs,
        seed=a.seed,
        threads=max(1, a.threads),
        channels=a.channels,
        test_fraction=a.test_fraction,
        holdout=tuple(a.holdout),
        name=a.name,
        eim=a.eim,
    )


def run_train(t: TrainArgs) -> dict:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise CliError(
            "training needs torch (the dev environment has it: make setup)", EXIT_MISSING_TOOL
        ) from None
    from kwtrain.dataset import load_dataset
    from kwtrain.mfcc.train import TrainSettings, train

    dataset = load_dataset(
        t.data,
        keyword=t.keyword,
        test_fraction=t.test_fraction,
        seed=t.seed,
        holdout_groups=t.holdout,
    )
    print(f"dataset {t.data}: {json.dumps(dataset.counts())}", file=sys.stderr)
    settings = TrainSettings(
        keyword=t.keyword,
        epochs=t.epochs,
        seed=t.seed,
        threads=t.threads,
        channels=t.channels,
        name=t.name,
    )
    report = train(dataset, t.out, settings)
    summary = {
        "model": str(t.out / "model.npz"),
        "report": str(t.out / "report.json"),
        "test_accuracy": report.get("test_accuracy"),
        "at_threshold_0.85": next(
            (r for r in report.get("threshold_table", []) if r["threshold"] == 0.85), None
        ),
    }
    if t.eim:
        summary["eim"] = str(export(t.out / "model.npz", t.eim))
        # the report travels with the model: <name>.report.json / .png next to <name>.eim
        for ext in ("json", "png"):
            shutil.copyfile(t.out / f"report.{ext}", t.eim.with_name(f"{t.eim.stem}.report.{ext}"))
    return summary


def export(model_path: Path, out: Path, python: str | None = None) -> Path:
    """`kwtrain export` of an MFCC model.npz."""
    from kwtrain.mfcc.export import export_eim
    from kwtrain.mfcc.runtime import KeywordModel

    try:
        model = KeywordModel.load(model_path)
    except (ValueError, KeyError, OSError) as exc:
        raise CliError(f"{model_path}: not a kwtrain model ({exc})") from exc
    return export_eim(model, out, python)


def run_build(a: argparse.Namespace) -> dict:
    """`kwtrain build --frontend mfcc`: the generated dataset (made when missing), then train."""
    from kwtrain.bootstrap import BootstrapSettings, bootstrap
    from kwtrain.dataset import bootstrap_state

    data = a.data or (a.out / "data")
    state = bootstrap_state(data)
    generated = state is not None or (data / "manifest.csv").is_file()
    if a.fresh_data and data.exists():
        if not generated:
            raise CliError(f"--fresh-data: {data} was not made by bootstrap; not deleting it")
        _discard(data)
    elif state == "incomplete":
        print(
            f"kwtrain build: dataset {data} was left incomplete by an earlier run "
            "(interrupted?): generating it again",
            file=sys.stderr,
        )
        _discard(data)
    if not data.exists():
        bootstrap(data, replace(BootstrapSettings(), keyword=a.keyword, seed=a.seed))
    t = train_args(a, data)
    if t.eim is None:
        t = replace(t, eim=a.out / f"{slug(a.keyword)}.eim")
    return run_train(t)


def _discard(data: Path) -> None:
    """Delete a generated dataset: renamed first (atomic), so an interrupted delete never leaves
    a half-deleted set under the name a later run would train on."""
    trash = data.with_name(f".{data.name}.deleting-{os.getpid()}")
    os.replace(data, trash)
    shutil.rmtree(trash)
