"""QUANTIZE=int8: both int8 paths run, and the ONNX model is built once and reused from disk."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from devkit.scoring_client import ReferenceDecoder, noise_signal
from scoring.ctc import CtcEngine
from scoring.int8 import INT8_DEFAULT
from scoring.models import resolve_model
from scoring.settings import ServiceSettings

pytestmark = pytest.mark.slow


def engine(model_dir, quantize, cache_dir):
    settings = ServiceSettings(quantize=quantize, cache_dir=cache_dir, threads=1)
    return CtcEngine(resolve_model(str(model_dir), None), settings)


def test_onnx_int8_is_cached_and_reused(tiny_ctc_model_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="scoring")
    first = engine(tiny_ctc_model_dir, "int8-onnx", tmp_path)
    second = engine(tiny_ctc_model_dir, "int8-onnx", tmp_path)
    assert len(list(tmp_path.glob("*.int8.onnx"))) == 1
    messages = [r.getMessage() for r in caplog.records if "int8 ONNX model" in r.getMessage()]
    assert any(" built from " in m for m in messages) and any(
        " reused from " in m for m in messages
    )
    audio = noise_signal(3.0, seed=8)
    assert first.transcribe(audio) == second.transcribe(audio)
    assert first.describe() == "onnxruntime int8 (MatMul) on cpu"


@pytest.mark.parametrize("mode", ["int8-onnx", "int8-torch"])
def test_int8_logits_follow_fp32(tiny_ctc_model_dir, tmp_path, mode):
    audio = noise_signal(3.0, seed=9)
    fp32 = ReferenceDecoder(tiny_ctc_model_dir).logits(audio)[0].numpy()
    int8 = engine(tiny_ctc_model_dir, mode, tmp_path).logits(audio)
    assert int8.shape == fp32.shape
    assert np.corrcoef(int8.ravel(), fp32.ravel())[0, 1] > 0.99
    assert (int8.argmax(-1) == fp32.argmax(-1)).mean() > 0.9


def test_plain_int8_means_the_faster_path(tiny_ctc_model_dir, tmp_path):
    assert (
        engine(tiny_ctc_model_dir, "int8", tmp_path).backend
        == engine(tiny_ctc_model_dir, INT8_DEFAULT, tmp_path).backend
    )
