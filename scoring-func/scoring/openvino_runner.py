"""The CTC model through OpenVINO on the CPU: the bf16 path (PRECISION=bf16/auto) and an fp32 one.

The transformers model is converted once (`ov.convert_model` from the PyTorch module, traced on
1 s of input; the sample axis stays dynamic) and saved as OpenVINO IR in SCORING_CACHE_DIR with
its fp32 weights, keyed like the int8 ONNX model (scoring.modelcache). Precision is a compile-time
choice (`INFERENCE_PRECISION_HINT`): the same IR serves fp32 and bf16. Compiled blobs are cached next to it (`CACHE_DIR`), so a restart compiles in a fraction of a second.

Threads: one stream, `threads` inference threads, latency hint, no core pinning (several
workers, or other tenants, share the cores: pinned threads of two workers on the same cores
stall each other).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from scoring.modelcache import build_once, model_fingerprint

logger = logging.getLogger("scoring.openvino")

_CACHE_FORMAT = "ctc-openvino-ir-v1"
OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


def cached_openvino_ir(model, cache_dir: Path) -> tuple[Path, bool]:
    """Folder holding model.xml/model.bin for `model`, converting it once; (folder, built_now)."""
    import openvino

    key = model_fingerprint(model, _CACHE_FORMAT, openvino.__version__)
    target = cache_dir / f"{key}.openvino"
    built = build_once(target, lambda folder: _convert(model, folder), "OpenVINO model")
    return target, built


def _convert(model, folder: Path) -> None:
    import openvino as ov
    import torch

    folder.mkdir()
    example = torch.zeros(1, 16000)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about data-dependent branches
        converted = ov.convert_model(model, example_input=example)
    converted.inputs[0].get_tensor().set_names({"input_values"})
    # fp32 weights on disk: the precision is chosen when compiling, not here.
    ov.save_model(converted, folder / "model.xml", compress_to_fp16=False)


def compile_on_cpu(xml: Path, precision: str, threads: int, cache_dir: Path):
    """An OpenVINO CPU model compiled the service's way (see the module's docstring)."""
    import openvino as ov

    config = {
        "INFERENCE_PRECISION_HINT": OV_PRECISION[precision],
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": False,
        "CACHE_DIR": str(Path(cache_dir) / "openvino-compiled"),
    }
    return ov.Core().compile_model(str(xml), "CPU", config)


class OpenVinoRunner:
    """input_values [1, n] float32 -> logits [1, frames, vocab] float32."""

    def __init__(self, folder: Path, precision: str, threads: int, cache_dir: Path) -> None:
        import openvino as ov

        compiled = compile_on_cpu(folder / "model.xml", precision, threads, cache_dir)
        self.precision = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self.request = compiled.create_infer_request()
        self.version = ov.__version__

    def __call__(self, input_values: np.ndarray) -> np.ndarray:
        # One request object per engine: azmlinfsrv's sync workers serve one request at a time.
        outputs = self.request.infer({0: np.ascontiguousarray(input_values, dtype=np.float32)})
        return np.array(outputs[0], dtype=np.float32, copy=True)
