"""The opt-in int8 paths of the CTC engine (QUANTIZE=int8 / int8-onnx / int8-torch).

Two ways to run the linear layers of wav2vec2 in int8 on a CPU, both measured by
bench/scoring_bench.py; QUANTIZE=int8 uses the faster one (see INT8_DEFAULT):
- "int8-onnx": export to ONNX, quantize only the MatMul weights with ONNX Runtime's dynamic
  quantization (quantizing every op was slower than fp32 here), run with ONNX Runtime.
  The export takes a while for a base-size model, so the quantized file is cached on disk
  (scoring.modelcache: keyed by the weights and library versions, built once by one worker).
- "int8-torch": torch.ao.quantization.quantize_dynamic on nn.Linear, in memory, instant.
fp32 stays the default because int8 accuracy on the real weights cannot be checked offline
(PRECISION=int8 is the same as QUANTIZE=int8; scoring.precision resolves them).
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np

from scoring.modelcache import build_once, model_fingerprint

logger = logging.getLogger("scoring.int8")

INT8_DEFAULT = "int8-onnx"
_CACHE_FORMAT = "ctc-int8-matmul-v2"  # v2: per-channel weight scales


def quantize_torch_dynamic(model):
    """nn.Linear -> dynamically quantized int8 Linear (weights int8, activations per batch)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice (torchao)
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def cached_onnx_int8(model, cache_dir: Path) -> tuple[Path, bool]:
    """Path of the int8 ONNX model for `model`, building it once; (path, was_built_now)."""
    import onnxruntime

    key = model_fingerprint(model, _CACHE_FORMAT, onnxruntime.__version__)
    target = cache_dir / f"{key}.int8.onnx"
    built = build_once(target, lambda path: _build(model, path), "int8 ONNX model")
    return target, built


def _build(model, path: Path) -> None:
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        _export_onnx(model, fp32)
        _quantize_matmul_int8(fp32, path)


def _export_onnx(model, path: Path) -> None:
    import torch

    dummy = torch.zeros(1, 16000)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        # The TorchScript-based exporter: it needs no onnxscript and matched PyTorch to 3e-6.
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["input_values"],
            output_names=["logits"],
            dynamic_axes={
                "input_values": {0: "batch", 1: "samples"},
                "logits": {0: "batch", 1: "frames"},
            },
            opset_version=17,
            dynamo=False,
        )


def _quantize_matmul_int8(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # per-channel weight scales: same speed here, closer to fp32 (logits correlation 0.9996
    # vs 0.9994, frame argmax agreement 98.0 % vs 97.2 % on wav2vec2-base, random weights)
    quantize_dynamic(
        str(src),
        str(dst),
        op_types_to_quantize=["MatMul"],
        weight_type=QuantType.QInt8,
        per_channel=True,
    )


class OnnxRunner:
    """input_values [1, n] float32 -> logits [1, frames, vocab] with ONNX Runtime on the CPU."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, input_values: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"input_values": input_values})[0]
