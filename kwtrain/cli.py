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
import sys
from pathlib import Path

from kwtrain.clierror import (
    EXIT_BAD_INPUT,
    EXIT_DOWNLOAD,
    EXIT_INTERRUPTED,
    EXIT_MISSING_TOOL,
    CliError,
    env,
)
from kwtrain.dataset import DatasetError
from kwtrain.embedding import cli as embedding_cli
from kwtrain.embedding.onnxfiles import FrontEndUnavailable
from kwtrain.mfcc import cli as mfcc_cli
from kwtrain.names import BadName, keyword_arg, label_arg
from kwtrain.tts import TTSUnavailable

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_DOWNLOAD",
    "EXIT_INTERRUPTED",
    "EXIT_MISSING_TOOL",
    "CliError",
    "main",
]


def run_export(model_path: Path, out: Path, python: str | None = None) -> Path:
    """`kwtrain export`: a model.npz of either front end, or an .eim to put behind today's
    launcher."""
    if not model_path.is_file():
        raise CliError(f"{model_path}: no such model file (train writes <out>/model.npz)")
    if model_path.suffix == ".eim":
        return _relaunch(model_path, out, python)
    if embedding_cli.is_embedding_model(model_path):
        return embedding_cli.export(model_path, out, python)
    return mfcc_cli.export(model_path, out, python)


def _relaunch(eim: Path, out: Path, python: str | None = None) -> Path:
    """`kwtrain export --model old.eim`: the same model behind the current launcher."""
    from kwtrain.eimfile import relaunch

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
    return mfcc_cli.run_train(mfcc_cli.train_args(a, a.data))


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
    _say_what_to_expect(a.keyword)
    if a.frontend == "embedding":
        return embedding_cli.run_build(a)
    return mfcc_cli.run_build(a)


def _say_what_to_expect(keyword: str) -> None:
    """Before training: the keyword's syllables and what measured keywords of that length got
    (`keywordlength.py`); a longer phrase suggested for a short one. Never stops the build."""
    from kwtrain.keywordlength import expectation

    try:
        text = expectation(keyword)
    except TTSUnavailable as exc:
        text = f"syllables of {keyword!r} not counted: {exc}"
    for line in text.splitlines():
        print(f"kwtrain build: {line}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kwtrain", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")

    p = sub.add_parser("bootstrap", help="generate a dataset with espeak-ng and noise")
    p.add_argument("--keyword", type=keyword_arg, default=env("KWTRAIN_KEYWORD", "listen"))
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
        default=env("AUDIO_DEVICE", ""),
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
    mfcc_cli.add_train_options(p, data_required=True)
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
    p.add_argument("--keyword", type=keyword_arg, default=env("KWTRAIN_KEYWORD", "listen"))
    p.add_argument(
        "--fast",
        action="store_true",
        help="score in-process with the same numpy code instead of via the SDK",
    )
    p.add_argument("--report", type=Path, default=None, help="write per-clip scores (JSON)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("build", help="bootstrap + train + export (no recordings needed)")
    mfcc_cli.add_train_options(p, data_required=False)
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="dataset folder (default <out>/data); generated when it does not exist",
    )
    p.add_argument("--fresh-data", action="store_true", help="regenerate the dataset")
    embedding_cli.add_options(p)
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
