"""The CTC model through OpenVINO on the CPU: the bf16 path (PRECISION=bf16/auto) and an fp32 one.

The transformers model is converted once (`ov.convert_model` from the PyTorch module, traced on
1 s of input; the sample axis stays dynamic) and saved as OpenVINO IR in SCORING_CACHE_DIR with
its fp32 weights, keyed like the int8 ONNX model (scoring.modelcache). Precision is a compile-time
choice (`INFERENCE_PRECISION_HINT`): the same IR serves fp32 and bf16. Compiled blobs are cached
(OpenVINO's `CACHE_DIR`), so a restart compiles in a fraction of a second.

The compiled-blob cache has a folder per everything the blob depends on (compiled_cache_folder):
OpenVINO's own blob name leaves out the precision hint, so one process with fp32 and then one with
bf16 on the same SCORING_CACHE_DIR loaded the fp32 blob as bf16 and crashed in infer()
(segmentation fault, 2 of 2). The same would follow a shared cache volume on mixed CPU types or a
new OpenVINO. Each folder is sealed (scoring.modelcache): a damaged one is rebuilt, and a compile
that fails from the cache is retried once from an empty one.

Threads: one stream, `threads` inference threads, latency hint, no core pinning (several
workers, or other tenants, share the cores: pinned threads of two workers on the same cores
stall each other).
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path

import numpy as np

from scoring.cpufeatures import cpu_features
from scoring.modelcache import (
    build_once,
    content_digest,
    discard,
    exclusive,
    is_intact,
    model_fingerprint,
    recorded_digest,
    seal,
)

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
    """An OpenVINO CPU model compiled the service's way (see the module's docstring), its blob
    cached in a folder of its own (compiled_cache_folder) that is rebuilt when damaged."""
    import openvino as ov

    config = {
        "INFERENCE_PRECISION_HINT": OV_PRECISION[precision],
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": False,
    }
    blobs = compiled_cache_folder(Path(xml), config, Path(cache_dir))
    blobs.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(blobs.parent / f"{blobs.name}.lock"):
        if blobs.exists() and not is_intact(blobs):
            discard(blobs, "its files do not match their seal")
        cached = {**config, "CACHE_DIR": str(blobs)}
        try:
            compiled = ov.Core().compile_model(str(xml), "CPU", cached)
        except RuntimeError as exc:
            discard(blobs, f"OpenVINO could not load it: {str(exc)[:200]}")
            compiled = ov.Core().compile_model(str(xml), "CPU", cached)
        seal(blobs)
    return compiled


def compiled_cache_folder(xml: Path, config: dict, cache_dir: Path) -> Path:
    """Where the compiled blob of `xml` under `config` is cached: keyed by the model files'
    content, the compile options (precision above all), the OpenVINO version and the CPU (its
    model name and every feature flag: a blob built for AMX must not run on a CPU without it)."""
    import openvino as ov

    cpu = cpu_features()
    digest = hashlib.sha256(b"openvino-compiled-v2\0")
    for part in (
        ov.__version__,
        cpu.model,
        " ".join(sorted(cpu.flags)),
        repr(sorted((k, str(v)) for k, v in config.items())),
        # the IR folder's seal, verified when build_once handed the folder out; else hashed
        recorded_digest(xml.parent)
        or content_digest(xml) + content_digest(xml.with_suffix(".bin")),
    ):
        digest.update(part.encode() + b"\0")
    precision = str(config["INFERENCE_PRECISION_HINT"])
    return cache_dir / "openvino-compiled" / f"{xml.stem}-{precision}-{digest.hexdigest()[:24]}"


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
