"""The CTC engine: any transformers CTC model (wav2vec2-base-960h by default) + its processor.

Greedy CTC decoding (argmax per frame, then the tokenizer collapses repeats and blanks), which
is what the model card and the seed do. The model runs in the precision and on the runtime that
scoring.precision resolves from PRECISION / CTC_RUNTIME / QUANTIZE (fp32 PyTorch by default;
bf16 through OpenVINO; int8 through ONNX Runtime). Long audio runs window by window (scoring.chunking), so
the model never sees more than CHUNK_SECONDS at once and memory stays bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from scoring.chunking import plan_windows
from scoring.cpufeatures import cpu_features
from scoring.int8 import OnnxRunner, cached_onnx_int8, quantize_torch_dynamic
from scoring.models import ENGINE_CTC, ModelSource
from scoring.openvino_runner import OpenVinoRunner, cached_openvino_ir
from scoring.precision import choose_ctc_mode
from scoring.settings import TARGET_RATE, ServiceSettings

logger = logging.getLogger("scoring.ctc")

Runner = Callable[[np.ndarray], np.ndarray]  # input_values [1, n] -> logits [1, frames, vocab]


class CtcEngine:
    """Loads once, then `transcribe(samples)` for 16 kHz mono float32 audio."""

    engine = ENGINE_CTC

    def __init__(self, source: ModelSource, settings: ServiceSettings) -> None:
        import torch
        from transformers import AutoModelForCTC, AutoProcessor

        torch.set_num_threads(settings.threads)
        self.device = _torch_device(settings.device)
        self.processor = AutoProcessor.from_pretrained(source.location)
        model = AutoModelForCTC.from_pretrained(source.location).eval()
        # Samples per output frame (320 for wav2vec2/HuBERT): windows are aligned to it.
        self.frame_step = int(getattr(model.config, "inputs_to_logits_ratio", 320) or 320)
        self.chunk = int(settings.chunk_seconds * TARGET_RATE)
        self.stride = int(settings.stride_seconds * TARGET_RATE)
        self.runner = self._build_runner(model, settings)

    def _build_runner(self, model, settings: ServiceSettings) -> Runner:
        mode = choose_ctc_mode(
            settings.engine.precision,
            settings.engine.ctc_runtime,
            settings.quantize,
            self.device,
            cpu_features(),
            cuda_bf16=self.device == "cuda" and _cuda_bf16(),
        )
        self.mode = mode
        logger.info("CTC engine: %s on %s (%s)", mode.precision, mode.runtime, mode.reason)
        if mode.runtime == "onnxruntime":
            path, built = cached_onnx_int8(model, settings.cache_dir)
            logger.info("int8 ONNX model %s from %s", "built" if built else "reused", path)
            self.backend = "onnxruntime int8 (MatMul)"
            return OnnxRunner(path, settings.threads)
        if mode.runtime == "openvino":
            folder, built = cached_openvino_ir(model, settings.cache_dir)
            logger.info("OpenVINO model %s from %s", "built" if built else "reused", folder)
            runner = OpenVinoRunner(folder, mode.precision, settings.threads, settings.cache_dir)
            self.backend = f"openvino {runner.version.split('-')[0]} {runner.precision}"
            return runner
        model = _torch_model(model, mode.precision, self.device)
        self.backend = (
            "pytorch dynamic int8 (Linear)"
            if mode.precision == "int8"
            else f"pytorch {next(model.parameters()).dtype}".replace("torch.", "")
        )
        return _torch_runner(model, self.device)

    def describe(self) -> str:
        return f"{self.backend} on {self.device}"

    def features(self, samples: np.ndarray) -> np.ndarray:
        """The processor's input_values (zero-mean unit-variance when the model wants it)."""
        return self.processor(
            samples, sampling_rate=TARGET_RATE, return_tensors="np"
        ).input_values.astype(np.float32, copy=False)

    def logits(self, samples: np.ndarray) -> np.ndarray:
        """[frames, vocab] for the whole audio, assembled window by window."""
        parts = []
        for window in plan_windows(len(samples), self.chunk, self.stride, self.frame_step):
            out = self.runner(self.features(samples[window.start : window.end]))[0]
            first, stop = window.kept_frames(out.shape[0], self.frame_step)
            parts.append(out[first:stop])
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def transcribe(self, samples: np.ndarray) -> str:
        ids = self.logits(samples).argmax(axis=-1)
        return self.processor.batch_decode(ids[None, :])[0].strip()

    def warm_up(self) -> None:
        """One pass on 1 s of quiet noise: allocators, kernels and lazy inits happen now."""
        self.transcribe(np.random.default_rng(0).normal(0, 0.01, TARGET_RATE).astype(np.float32))


def _torch_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("DEVICE=cuda but PyTorch sees no CUDA device")
    if requested in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def _torch_model(model, precision: str, device: str):
    """The PyTorch model in the chosen precision: fp32 as loaded, bf16 weights, or dynamic int8
    Linear layers (CPU only; scoring.precision refuses int8 on CUDA)."""
    import torch

    if precision == "int8":
        return quantize_torch_dynamic(model)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return model.to(device, dtype=dtype)


def _cuda_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def _torch_runner(model, device: str) -> Runner:
    """The model in its own dtype: fp32 features are cast to it (bf16 models: to bf16)."""
    import torch

    dtype = next(model.parameters()).dtype
    dtype = dtype if dtype.is_floating_point else torch.float32  # dynamic int8 takes fp32

    def run(input_values: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            values = torch.from_numpy(input_values).to(device, dtype=dtype)
            logits = model(values).logits
        return logits.float().cpu().numpy()

    return run
