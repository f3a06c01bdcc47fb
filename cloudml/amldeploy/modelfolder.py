"""The model folder: fetch it from the Hub, tell whether it holds a model, fingerprint its content."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from .common import DeployError, first_line, rel


def model_folder_state(folder: Path) -> str:
    """'ok', 'missing', or why the folder does not look like a model."""
    if not folder.exists():
        return "missing"
    if not folder.is_dir():
        return "not a folder"
    names = {p.name for p in folder.iterdir()}
    if "config.json" not in names:
        return "no config.json in it"
    weights = [n for n in names if n.endswith((".safetensors", ".bin"))]
    if not weights:
        return "no weights (*.safetensors, pytorch_model.bin or CTranslate2 model.bin) in it"
    return "ok"


def fetch_model(hub_id: str, folder: Path) -> None:
    """Download a Hub model's files (config, tokenizer, one copy of the weights) into `folder`.

    Downloads into a sibling folder and renames at the end, so an interrupted download never
    leaves a folder that looks complete.
    """
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError:
        raise DeployError(
            "huggingface_hub is needed to fetch the model: pip install -r "
            "cloudml/requirements-deploy.txt (or pass --model-dir DIR)"
        ) from None
    try:
        names = HfApi().list_repo_files(hub_id)
    except Exception as err:
        raise DeployError(
            f"cannot list {hub_id} on the Hugging Face Hub ({first_line(err)}); download the "
            "model folder elsewhere and pass --model-dir DIR"
        ) from None
    if any(n.endswith(".safetensors") for n in names):
        weights = ["*.safetensors"]
    elif "pytorch_model.bin" in names:
        weights = ["pytorch_model.bin"]
    else:
        weights = ["model.bin"]  # CTranslate2 (faster-whisper) layout
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"fetching {hub_id} into {rel(folder)} ...", flush=True)
    try:
        snapshot_download(
            hub_id, local_dir=partial, allow_patterns=["*.json", "*.txt", "*.model", *weights]
        )
    except Exception as err:  # network drop, disk full, ...: no half folder left behind
        shutil.rmtree(partial, ignore_errors=True)
        raise DeployError(f"downloading {hub_id} failed: {first_line(err)}") from None
    shutil.rmtree(partial / ".cache", ignore_errors=True)  # download metadata, not the model
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(folder)


def folder_digest(folder: Path) -> str:
    """SHA-256 over relative paths and contents: same folder content, same digest."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
