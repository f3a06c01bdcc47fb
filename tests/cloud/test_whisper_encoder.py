"""Whisper's encoder through OpenVINO (scoring.whisper_encoder): the weights read from the
CTranslate2 model.bin itself give CTranslate2's own encoder output; the bf16 and fp32 engines
transcribe real speech as the CTranslate2 encoder does; damaged model files are named, and
`auto` falls back to CTranslate2 rather than failing the service."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from devkit.long_speech import LIBRI_CLIP, LIBRI_TEXT
from devkit.wer import normalize, word_errors
from scoring.cpufeatures import CpuFeatures, cpu_features
from scoring.models import ENGINE_WHISPER, ModelSource
from scoring.precision import choose_whisper_encoder
from scoring.settings import ServiceSettings
from scoring.whisper import WhisperEngine
from scoring.whisper_encoder import (
    ModelFileError,
    OpenVinoWhisperEncoder,
    cached_encoder_ir,
    encoder_module,
    read_encoder_weights,
)

pytestmark = pytest.mark.slow

CLIP, CLIP_TEXT = LIBRI_CLIP, LIBRI_TEXT


@pytest.fixture(scope="module")
def clip_mel(whisper_dir, speech_dir) -> np.ndarray:
    """The real clip's 30 s window of mel features, as faster-whisper hands it to encode()."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.feature_extractor import FeatureExtractor

    audio, _ = sf.read(speech_dir / CLIP, dtype="float32")
    return pad_or_trim(FeatureExtractor()(audio))[None].astype(np.float32)


def ct2_encode(model_dir: Path, mel: np.ndarray, compute_type: str = "float32") -> np.ndarray:
    import ctranslate2

    model = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type=compute_type)
    return np.array(model.encode(ctranslate2.StorageView.from_array(mel)))


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_weights_from_model_bin_give_ctranslate2s_own_encoder_output(whisper_dir, clip_mel):
    import torch

    weights = read_encoder_weights(whisper_dir)
    assert weights["encoder/conv1/weight"].shape == (384, 80, 3)
    blocks = {k.split("/")[1] for k in weights if k.split("/")[1][6:].isdigit()}
    assert blocks == {f"layer_{i}" for i in range(4)}
    with torch.no_grad():
        ours = encoder_module(weights)(torch.from_numpy(clip_mel)).numpy()
    exact = ct2_encode(whisper_dir, clip_mel)
    assert ours.shape == exact.shape == (1, 1500, 384)
    assert np.abs(ours - exact).max() < 1e-3


def test_int8_and_aliased_weights_are_read(tmp_path):
    """A Whisper the test builds (random weights, HF format) converted by CTranslate2's own
    converter twice: float16 (identical tensors stored once, under aliases) and int8 (weights
    with per-channel scales). Both read back to the same encoder, which matches transformers'."""
    import ctranslate2
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(d_model=64, encoder_layers=2, decoder_layers=1, vocab_size=51864,
                           encoder_attention_heads=4, decoder_attention_heads=4,
                           encoder_ffn_dim=128, decoder_ffn_dim=128)  # fmt: skip
    torch.manual_seed(0)
    hf = WhisperForConditionalGeneration(config).eval()
    hf.save_pretrained(tmp_path / "hf")
    for quantization in ("float16", "int8"):
        converter = ctranslate2.converters.TransformersConverter(str(tmp_path / "hf"))
        converter.convert(str(tmp_path / quantization), quantization=quantization)
    w16, w8 = (read_encoder_weights(tmp_path / q) for q in ("float16", "int8"))
    assert w16.keys() == w8.keys() and "encoder/conv1/bias" in w16  # an alias in this file
    mel = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = hf.model.encoder(mel).last_hidden_state.numpy()
        assert np.abs(encoder_module(w16)(mel).numpy() - reference).max() < 5e-3
        assert corr(encoder_module(w8)(mel).numpy(), reference) > 0.999


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_openvino_encoder_agrees_with_the_exact_one(whisper_dir, clip_mel, tmp_path, precision):
    if precision == "bf16" and not cpu_features().native_bf16:
        pytest.skip("this CPU has no native bf16")
    folder, built = cached_encoder_ir(whisper_dir, tmp_path)
    assert built and (folder / "encoder.xml").is_file()
    assert cached_encoder_ir(whisper_dir, tmp_path) == (folder, False)  # converted once
    ours = OpenVinoWhisperEncoder(folder, precision, 2, tmp_path)(clip_mel)
    exact = ct2_encode(whisper_dir, clip_mel)
    int8 = ct2_encode(whisper_dir, clip_mel, "int8")
    assert corr(ours, exact) > (0.99999 if precision == "fp32" else 0.9999)
    assert corr(ours, exact) > corr(int8, exact)  # closer to the model than CTranslate2 int8


@pytest.mark.parametrize("encoder", ["ctranslate2", "openvino-fp32", "openvino-bf16"])
def test_each_encoder_transcribes_real_speech(whisper_dir, speech_dir, tmp_path, encoder):
    if encoder == "openvino-bf16" and not cpu_features().native_bf16:
        pytest.skip("this CPU has no native bf16")
    env = {"WHISPER_ENCODER": encoder, "SCORING_CACHE_DIR": str(tmp_path)}
    engine = WhisperEngine(_source(whisper_dir), ServiceSettings.from_env(env))
    assert engine.encoder == encoder
    audio, _ = sf.read(speech_dir / CLIP, dtype="float32")
    # at most one word of 28 off: the exact (fp32) encoder hears "carton" for "cotton" here,
    # CTranslate2 int8 and OpenVINO bf16 "cotton" (docs/benchmarks.md)
    assert word_errors([CLIP_TEXT], [engine.transcribe(audio)])["wer"] <= 1 / 28


def test_auto_falls_back_to_ctranslate2_when_the_encoder_cannot_be_read(
    whisper_dir, speech_dir, tmp_path, monkeypatch
):
    """A model.bin this reader cannot parse (a layout of a later CTranslate2, say) must not stop
    a model CTranslate2 itself runs under `auto`; an explicit OpenVINO choice fails, naming it."""
    import scoring.whisper_encoder as module

    def unreadable(model_dir):
        raise ModelFileError(f"{model_dir}/model.bin: a layout this reader does not know")

    monkeypatch.setattr(module, "read_encoder_weights", unreadable)
    settings = ServiceSettings.from_env({"SCORING_CACHE_DIR": str(tmp_path)})
    engine = WhisperEngine(_source(whisper_dir), settings)
    assert engine.encoder == "ctranslate2"
    assert "OpenVINO failed" in engine.describe() and "does not know" in engine.describe()
    audio, _ = sf.read(speech_dir / CLIP, dtype="float32")
    assert normalize(engine.transcribe(audio)) == CLIP_TEXT
    explicit = ServiceSettings.from_env(
        {"WHISPER_ENCODER": "openvino-fp32", "SCORING_CACHE_DIR": str(tmp_path)}
    )
    with pytest.raises(ModelFileError, match="model.bin: a layout"):
        WhisperEngine(_source(whisper_dir), explicit)


def test_damaged_model_files_are_named(tmp_path, whisper_dir):
    folder = tmp_path / "m"
    folder.mkdir()
    cases = {
        b"": "0 bytes",
        struct.pack("<IH", 6, 9) + b"Wav2Vec2\x00": "a Wav2Vec2 model, not WhisperSpec",
        struct.pack("<IH", 6, 12) + b"WhisperSpec\x00" + struct.pack("<II", 3, 5): "truncated",
    }
    for content, message in cases.items():
        (folder / "model.bin").write_bytes(content)
        with pytest.raises(ModelFileError, match=message) as caught:
            read_encoder_weights(folder)
        assert str(folder / "model.bin") in str(caught.value)
    real = (whisper_dir / "model.bin").read_bytes()
    (folder / "model.bin").write_bytes(real[: len(real) // 3])
    with pytest.raises(ModelFileError, match="truncated"):
        read_encoder_weights(folder)


def test_encoder_choice():
    bf16 = CpuFeatures(model="x", flags=frozenset({"avx512_bf16"}))
    plain = CpuFeatures(model="x", flags=frozenset({"avx2"}))
    assert choose_whisper_encoder("auto", "cpu", bf16)[0] == "openvino-bf16"
    assert choose_whisper_encoder("auto", "cpu", plain)[0] == "openvino-fp32"
    assert choose_whisper_encoder("auto", "cuda", bf16)[0] == "ctranslate2"
    with pytest.raises(ValueError, match="WHISPER_ENCODER=openvino-bf16 needs a CPU with bf16"):
        choose_whisper_encoder("openvino-bf16", "cpu", plain)
    with pytest.raises(ValueError, match="runs on the CPU only"):
        choose_whisper_encoder("openvino-fp32", "cuda", plain)
    with pytest.raises(ValueError, match="WHISPER_ENCODER='fast': use one of auto, ctranslate2"):
        ServiceSettings.from_env({"WHISPER_ENCODER": "fast"})


def _source(path: Path) -> ModelSource:
    return ModelSource(str(path), "offline", ENGINE_WHISPER, True)
