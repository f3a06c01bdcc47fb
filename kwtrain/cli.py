"""kwtrain: train a keyword model without Edge Impulse Studio, export it as a runnable .eim.

Run with the project's Python (`make setup` installs the `kwtrain` command into .venv):

    kwtrain <command> [options]          (or: python -m kwtrain <command> [options])

Commands, in the order of the write-up's Studio workflow:

    bootstrap  generate a dataset with espeak-ng voices and generated noise (no recordings)
    record     record a take from the microphone, split it, file it under a label
    prepare    split long takes into 1 s samples by energy; balance classes to N each
    train      train the network (torch), write model.npz, report.json and report.png
    export     package a model.npz as one executable .eim (numpy-only inference)
    evaluate   run a .eim over clips with a sliding window: detection and false alarms
    build      bootstrap + train + export in one go (`make keyword-model` runs this)

    fetch-background  download public real background audio into the cache (kwtrain/fetch.py)

Exit status: 0 ok, 2 bad input (dataset, file, option), 3 missing tool (espeak-ng, torch),
4 download failed (offline, cut off, checksum), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from kwtrain import embcli
from kwtrain.dataset import DatasetError
from kwtrain.embedding import FrontEndUnavailable
from kwtrain.names import BadName, keyword_arg, label_arg
from kwtrain.tts import TTSUnavailable

EXIT_BAD_INPUT = 2
EXIT_MISSING_TOOL = 3
EXIT_DOWNLOAD = 4  # fetch-background: offline, cut off, or a file that failed its checksum
EXIT_INTERRUPTED = 130  # as a shell reports a command ended by Ctrl-C


class CliError(Exception):
    """A user error the command line reports in one line, with a non-zero exit code."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


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


def _add_train_options(p: argparse.ArgumentParser, *, data_required: bool) -> None:
    p.add_argument(
        "--keyword",
        type=keyword_arg,
        default=_env("KWTRAIN_KEYWORD", "listen"),
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
    p.add_argument("--epochs", type=int, default=int(_env("KWTRAIN_EPOCHS", "40")))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=int(_env("KWTRAIN_THREADS", "2")),
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


def _train_args(a: argparse.Namespace, data: Path) -> TrainArgs:
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
    from kwtrain.train import TrainSettings, train

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
        summary["eim"] = str(run_export(t.out / "model.npz", t.eim))
        # the report travels with the model: <name>.report.json / .png next to <name>.eim
        for ext in ("json", "png"):
            shutil.copyfile(t.out / f"report.{ext}", t.eim.with_name(f"{t.eim.stem}.report.{ext}"))
    return summary


def run_export(model_path: Path, out: Path, python: str | None = None) -> Path:
    from kwtrain.export import export_eim
    from kwtrain.runtime import KeywordModel

    if not model_path.is_file():
        raise CliError(f"{model_path}: no such model file (train writes <out>/model.npz)")
    if model_path.suffix == ".eim":
        return _relaunch(model_path, out, python)
    if embcli.is_embedding_model(model_path):
        return embcli.export(model_path, out)
    try:
        model = KeywordModel.load(model_path)
    except (ValueError, KeyError, OSError) as exc:
        raise CliError(f"{model_path}: not a kwtrain model ({exc})") from exc
    return export_eim(model, out, python)


def _relaunch(eim: Path, out: Path, python: str | None = None) -> Path:
    """`kwtrain export --model old.eim`: the same model behind the current launcher."""
    from kwtrain.export import relaunch

    try:
        return relaunch(eim, out, python)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc


def cmd_bootstrap(a: argparse.Namespace) -> dict:
    from kwtrain.bootstrap import BootstrapSettings, bootstrap

    settings = BootstrapSettings(
        keyword=a.keyword,
        keyword_per_voice=a.keyword_per_voice,
        words_per_voice=a.words_per_voice,
        noise_clips=a.noise_clips,
        seed=a.seed,
        variants=tuple(a.variants.split(",")) if a.variants else None,
    )
    return bootstrap(a.out, settings)


def cmd_prepare(a: argparse.Namespace) -> dict:
    from kwtrain.prepare import balance, file_take

    if not a.input and a.balance is None:
        raise CliError("nothing to do: give --input TAKE --label LABEL, and/or --balance N")
    result: dict = {"takes": []}
    for take in a.input:
        if not a.label:
            raise CliError("--input needs --label (the class the take belongs to)")
        mode = a.split or ("fixed" if a.label == "noise" else "energy")
        info = file_take(take, a.label, a.out, mode=mode, threshold_db=a.threshold_db)
        info.pop("files")
        result["takes"].append({"input": str(take), **info})
    if a.balance is not None:
        if a.balance < 1:
            raise CliError("--balance must be at least 1")
        result["balance"] = balance(a.out, a.balance, seed=a.seed)
    return result


def cmd_record(a: argparse.Namespace) -> dict:
    from kwtrain.record import RecordError, record_take

    if a.seconds <= 0:
        raise CliError("--seconds must be positive")
    try:
        if a.label == "background":  # the room, kept whole (kwtrain/background.py)
            from kwtrain.record import record_room

            return record_room(seconds=a.seconds, out=a.out, device=a.device)
        return record_take(
            label=a.label,
            seconds=a.seconds,
            out=a.out,
            device=a.device,
            mode=a.split or ("fixed" if a.label == "noise" else "energy"),
            keep_take=a.keep_take,
        )
    except RecordError as exc:
        raise CliError(f"recording failed: {exc}") from exc


def cmd_fetch_background(a: argparse.Namespace) -> dict:
    from kwtrain.fetch import FetchError, run_command

    try:
        return run_command(a)
    except FetchError as exc:
        raise CliError(str(exc), EXIT_DOWNLOAD) from exc


def cmd_train(a: argparse.Namespace) -> dict:
    return run_train(_train_args(a, a.data))


def cmd_export(a: argparse.Namespace) -> dict:
    path = run_export(a.model, a.out, "" if a.portable else None)
    return {"eim": str(path), "bytes": path.stat().st_size}


def cmd_evaluate(a: argparse.Namespace) -> dict:
    from kwtrain.dataset import load_dataset
    from kwtrain.evaluate import InProcessScorer, SdkScorer, score_clips, summarize

    if not a.model.is_file():
        raise CliError(f"{a.model}: no such model")
    dataset = load_dataset(a.data, keyword=a.keyword, test_fraction=0.0)
    scorer = InProcessScorer(a.model, a.keyword) if a.fast else SdkScorer(a.model, a.keyword)
    try:
        clips = [(s.path, "keyword" if s.label == a.keyword else s.label) for s in dataset.samples]
        results = score_clips(scorer, clips, scorer.window)
    finally:
        scorer.close()
    summary = summarize(results)
    if a.report:
        a.report.parent.mkdir(parents=True, exist_ok=True)
        a.report.write_text(
            json.dumps({"summary": summary, "clips": [r.__dict__ for r in results]}, indent=2)
        )
    return summary


def cmd_build(a: argparse.Namespace) -> dict:
    from kwtrain.bootstrap import BootstrapSettings, bootstrap
    from kwtrain.dataset import bootstrap_state

    if a.frontend == "embedding":
        from kwtrain.embcli import run_build

        return run_build(a)

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
    t = _train_args(a, data)
    if t.eim is None:
        t = replace(t, eim=a.out / f"{embcli.slug(a.keyword)}.eim")
    return run_train(t)


def _discard(data: Path) -> None:
    """Delete a generated dataset: renamed first (atomic), so an interrupted delete never leaves
    a half-deleted set under the name a later run would train on."""
    trash = data.with_name(f".{data.name}.deleting-{os.getpid()}")
    os.replace(data, trash)
    shutil.rmtree(trash)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kwtrain", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")

    p = sub.add_parser("bootstrap", help="generate a dataset with espeak-ng and noise")
    p.add_argument("--keyword", type=keyword_arg, default=_env("KWTRAIN_KEYWORD", "listen"))
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    p.add_argument("--keyword-per-voice", type=int, default=2)
    p.add_argument("--words-per-voice", type=int, default=3)
    p.add_argument("--noise-clips", type=int, default=800)
    p.add_argument(
        "--variants", default="", help="comma-separated espeak-ng variants (default: all ~100)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_bootstrap)

    p = sub.add_parser("record", help="record a take from the microphone into the dataset")
    p.add_argument(
        "--label",
        type=label_arg,
        required=True,
        help="class of the take: the keyword, noise, ...; background: the room itself, kept "
        "whole as one-minute pieces for `kwtrain build --data DIR`",
    )
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--out", type=Path, required=True, help="dataset folder")
    p.add_argument(
        "--device",
        default=_env("AUDIO_DEVICE", ""),
        help="input device index or name part (default: system default)",
    )
    p.add_argument(
        "--split",
        choices=["energy", "fixed"],
        default=None,
        help="energy: one sample per utterance; fixed: 1 s pieces (noise default)",
    )
    p.add_argument("--keep-take", action="store_true", help="also keep the whole take")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("prepare", help="split takes into 1 s samples; balance classes")
    p.add_argument("--out", type=Path, required=True, help="dataset folder")
    p.add_argument("--input", type=Path, action="append", default=[], help="a long take")
    p.add_argument("--label", type=label_arg, default=None, help="class of the --input takes")
    p.add_argument("--split", choices=["energy", "fixed"], default=None)
    p.add_argument(
        "--threshold-db",
        type=float,
        default=None,
        help="energy split threshold in dBFS (default: from the take's noise floor)",
    )
    p.add_argument(
        "--balance",
        type=int,
        default=None,
        metavar="N",
        help="keep N random samples per class (extras moved to _unused/)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train the network; write model.npz and the report")
    _add_train_options(p, data_required=True)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="package a model.npz as one executable .eim")
    p.add_argument(
        "--model",
        type=Path,
        required=True,
        help="model.npz written by train, or a kwtrain .eim (rewritten with today's launcher)",
    )
    p.add_argument("--out", type=Path, required=True, help="the .eim file to write")
    p.add_argument(
        "--portable",
        action="store_true",
        help="record no interpreter of this machine (for a model shipped to other machines)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("evaluate", help="sliding-window detection and false alarms of a .eim")
    p.add_argument("--model", type=Path, required=True, help=".eim (or model.npz with --fast)")
    p.add_argument("--data", type=Path, required=True, help="clips in EI layout")
    p.add_argument("--keyword", type=keyword_arg, default=_env("KWTRAIN_KEYWORD", "listen"))
    p.add_argument(
        "--fast",
        action="store_true",
        help="score in-process with the same numpy code instead of via the SDK",
    )
    p.add_argument("--report", type=Path, default=None, help="write per-clip scores (JSON)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("build", help="bootstrap + train + export (no recordings needed)")
    _add_train_options(p, data_required=False)
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="dataset folder (default <out>/data); generated when it does not exist",
    )
    p.add_argument("--fresh-data", action="store_true", help="regenerate the dataset")
    embcli.add_options(p)
    p.set_defaults(func=cmd_build)

    from kwtrain.fetch import add_parser as add_fetch_parser

    add_fetch_parser(sub).set_defaults(func=cmd_fetch_background)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except CliError as exc:
        print(f"kwtrain {args.command}: error: {exc}", file=sys.stderr)
        return exc.code
    except DatasetError as exc:
        print(f"kwtrain {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (TTSUnavailable, FrontEndUnavailable) as exc:
        print(f"kwtrain {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_MISSING_TOOL
    except BadName as exc:
        print(f"kwtrain {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(
            f"kwtrain {args.command}: interrupted; nothing it was writing is used", file=sys.stderr
        )
        return EXIT_INTERRUPTED
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
