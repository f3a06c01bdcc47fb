"""Which precision and runtime the CTC engine uses: PRECISION / CTC_RUNTIME / QUANTIZE resolved
against the device and the CPU's features, with the reason, so the startup log can say why.

The choices are the measured ones (docs/benchmarks.md, bench/scoring_bench.py):
- fp32 -> PyTorch: the reference decode itself, bit for bit (the tests compare against it);
- bf16 -> OpenVINO on a CPU: the fastest bf16 measured (188 ms vs PyTorch bf16 300 ms for 5 s on
  an AMX Xeon, on par with PyTorch bf16 on AVX-512 BF16), and its converted model is cached;
  PyTorch (`model.to(bfloat16)`) on CUDA;
- int8 -> ONNX Runtime int8 MatMul (faster than PyTorch dynamic int8 and 480 MB lighter).
bf16 is refused on a CPU that has no bf16 instructions (the runtimes would emulate it: slower
than fp32 and less exact); `auto` picks it only where the CPU has them.
"""

from __future__ import annotations

from dataclasses import dataclass

from scoring.cpufeatures import CpuFeatures

AUTO_RUNTIME = {"fp32": "torch", "bf16": "openvino", "int8": "onnxruntime"}
SUPPORTED = {
    ("fp32", "torch"),
    ("fp32", "openvino"),
    ("bf16", "torch"),
    ("bf16", "openvino"),
    ("int8", "onnxruntime"),
    ("int8", "torch"),
}
QUANTIZE_RUNTIME = {"int8": "onnxruntime", "int8-onnx": "onnxruntime", "int8-torch": "torch"}


@dataclass(frozen=True)
class CtcMode:
    """The resolved choice: precision (fp32 | bf16 | int8), runtime, and why."""

    precision: str
    runtime: str
    reason: str


def choose_ctc_mode(
    precision: str,
    runtime: str,
    quantize: str,
    device: str,
    cpu: CpuFeatures,
    cuda_bf16: bool = False,
) -> CtcMode:
    """Resolve the settings; ValueError (naming the setting) for a combination that cannot run."""
    if quantize != "none":
        precision = "int8"
        if runtime == "auto":
            runtime = QUANTIZE_RUNTIME[quantize]
        elif quantize != "int8" and runtime != QUANTIZE_RUNTIME[quantize]:
            raise ValueError(f"QUANTIZE={quantize} contradicts CTC_RUNTIME={runtime}")
    reason = f"PRECISION={precision}"
    if precision == "auto":
        native = cuda_bf16 if device == "cuda" else cpu.native_bf16
        precision = "bf16" if native else "fp32"
        where = "this GPU" if device == "cuda" else "this CPU"
        reason = f"PRECISION=auto: {where} {'has' if native else 'has no'} native bf16"
    if precision == "bf16" and device == "cpu" and not cpu.native_bf16:
        raise ValueError(
            "PRECISION=bf16 needs a CPU with bf16 instructions (AMX, AVX-512 BF16 or Arm BF16); "
            f"this one has none ({cpu.describe()}): use PRECISION=auto or fp32"
        )
    if device != "cpu":
        if precision == "int8":
            raise ValueError(f"PRECISION=int8 (QUANTIZE) runs on the CPU only, not {device}")
        if runtime not in ("auto", "torch"):
            raise ValueError(f"CTC_RUNTIME={runtime} runs on the CPU only; DEVICE={device}")
        runtime = "torch"
    if runtime == "auto":
        runtime = AUTO_RUNTIME[precision]
        reason += f", CTC_RUNTIME=auto: {runtime}"
    if (precision, runtime) not in SUPPORTED:
        runtimes = sorted(r for p, r in SUPPORTED if p == precision)
        raise ValueError(
            f"CTC_RUNTIME={runtime} does not run PRECISION={precision}: use {' or '.join(runtimes)}"
        )
    return CtcMode(precision, runtime, reason)


def choose_whisper_encoder(setting: str, device: str, cpu: CpuFeatures) -> tuple[str, str]:
    """WHISPER_ENCODER resolved: (ctranslate2 | openvino-fp32 | openvino-bf16, why).

    auto: on the CPU OpenVINO (measured 2.3x faster than CTranslate2 int8 in bf16 and 1.3-1.5x
    in fp32 for the 30 s window; docs/benchmarks.md), bf16 only where the CPU has it; on CUDA
    CTranslate2, which runs the encoder on the GPU already.
    """
    if setting == "auto":
        if device == "cuda":
            return "ctranslate2", "WHISPER_ENCODER=auto on CUDA: CTranslate2"
        if not _openvino_available():
            return "ctranslate2", "WHISPER_ENCODER=auto: OpenVINO is not installed"
        native = cpu.native_bf16
        chosen = "openvino-bf16" if native else "openvino-fp32"
        return chosen, f"WHISPER_ENCODER=auto: this CPU {'has' if native else 'has no'} native bf16"
    if setting.startswith("openvino") and device == "cuda":
        raise ValueError(f"WHISPER_ENCODER={setting} runs on the CPU only; DEVICE=cuda")
    if setting == "openvino-bf16" and not cpu.native_bf16:
        raise ValueError(
            "WHISPER_ENCODER=openvino-bf16 needs a CPU with bf16 instructions; this one has none "
            f"({cpu.describe()}): use auto or openvino-fp32"
        )
    return setting, f"WHISPER_ENCODER={setting}"


def _openvino_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None
