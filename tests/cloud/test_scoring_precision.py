"""PRECISION / CTC_RUNTIME: the mode chosen for each kind of CPU, the settings' errors, and each
engine mode run for real (OpenVINO fp32/bf16, PyTorch bf16) against the fp32 reference decode."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from devkit.local_service import run_scoring_server
from devkit.scoring_client import ReferenceDecoder, noise_signal, post, to_int16, wav_bytes
from scoring.cpufeatures import cpu_features, parse_cpuinfo
from scoring.ctc import CtcEngine
from scoring.models import resolve_model
from scoring.precision import choose_ctc_mode
from scoring.settings import EngineSettings, ServiceSettings

# /proc/cpuinfo as these CPUs write it (first processor, trimmed to the lines that matter)
ZEN4 = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu sse avx2 fma avx512f avx512_vnni avx512_bf16\n"
SAPPHIRE_RAPIDS = (
    "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8473C\n"
    "flags\t\t: avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n"
)
ICE_LAKE = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8370C\nflags\t\t: avx2 fma avx512f avx512_vnni\n"
GRAVITON3 = "processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd asimddp sve i8mm bf16\n"
GRAVITON2 = "processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd asimddp\n"


@pytest.mark.parametrize(
    ("cpuinfo", "native", "amx"),
    [
        (ZEN4, True, False),
        (SAPPHIRE_RAPIDS, True, True),
        (ICE_LAKE, False, False),
        (GRAVITON3, True, False),
        (GRAVITON2, False, False),
        ("", False, False),
    ],
)
def test_native_bf16_from_cpuinfo(cpuinfo, native, amx):
    cpu = parse_cpuinfo(cpuinfo)
    assert (cpu.native_bf16, cpu.amx) == (native, amx)
    assert cpu.model


@pytest.mark.parametrize(
    ("precision", "runtime", "quantize", "device", "cpuinfo", "expected"),
    [
        ("fp32", "auto", "none", "cpu", ICE_LAKE, ("fp32", "torch")),
        ("auto", "auto", "none", "cpu", SAPPHIRE_RAPIDS, ("bf16", "openvino")),
        ("auto", "auto", "none", "cpu", ZEN4, ("bf16", "openvino")),
        ("auto", "auto", "none", "cpu", ICE_LAKE, ("fp32", "torch")),
        ("auto", "auto", "none", "cpu", GRAVITON2, ("fp32", "torch")),
        ("bf16", "torch", "none", "cpu", ZEN4, ("bf16", "torch")),
        ("fp32", "openvino", "none", "cpu", ICE_LAKE, ("fp32", "openvino")),
        ("int8", "auto", "none", "cpu", ICE_LAKE, ("int8", "onnxruntime")),
        ("fp32", "auto", "int8", "cpu", ICE_LAKE, ("int8", "onnxruntime")),
        ("fp32", "auto", "int8-torch", "cpu", ICE_LAKE, ("int8", "torch")),
        ("bf16", "auto", "none", "cuda", ICE_LAKE, ("bf16", "torch")),
        ("auto", "auto", "none", "cuda", ICE_LAKE, ("fp32", "torch")),
    ],
)
def test_mode_chosen(precision, runtime, quantize, device, cpuinfo, expected):
    mode = choose_ctc_mode(precision, runtime, quantize, device, parse_cpuinfo(cpuinfo))
    assert (mode.precision, mode.runtime) == expected
    assert mode.reason.startswith("PRECISION=")


@pytest.mark.parametrize(
    ("precision", "runtime", "quantize", "device", "cpuinfo", "message"),
    [
        ("bf16", "auto", "none", "cpu", ICE_LAKE, "PRECISION=bf16 needs a CPU with bf16"),
        ("int8", "openvino", "none", "cpu", ZEN4, "CTC_RUNTIME=openvino does not run"),
        ("fp32", "onnxruntime", "none", "cpu", ZEN4, "CTC_RUNTIME=onnxruntime does not run"),
        ("fp32", "openvino", "none", "cuda", ZEN4, "CTC_RUNTIME=openvino runs on the CPU only"),
        ("int8", "auto", "none", "cuda", ZEN4, "runs on the CPU only"),
        ("fp32", "onnxruntime", "int8-torch", "cpu", ZEN4, "contradicts CTC_RUNTIME"),
    ],
)
def test_impossible_modes_are_refused_by_name(
    precision, runtime, quantize, device, cpuinfo, message
):
    with pytest.raises(ValueError, match=message):
        choose_ctc_mode(precision, runtime, quantize, device, parse_cpuinfo(cpuinfo))


def test_precision_settings_from_environment():
    assert ServiceSettings.from_env({}).engine.precision == "fp32"
    assert ServiceSettings.from_env({"PRECISION": "BF16"}).engine.precision == "bf16"
    assert ServiceSettings.from_env({"PRECISION": "bfloat16"}).engine.precision == "bf16"
    assert ServiceSettings.from_env({"QUANTIZE": "int8"}).engine.precision == "int8"
    both = ServiceSettings.from_env({"QUANTIZE": "int8-torch", "PRECISION": "int8"})
    assert (both.quantize, both.engine.precision) == ("int8-torch", "int8")
    assert ServiceSettings.from_env({"CTC_RUNTIME": "OpenVINO"}).engine.ctc_runtime == "openvino"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PRECISION": "fp8"}, "PRECISION"),
        ({"PRECISION": "bf16", "QUANTIZE": "int8"}, "QUANTIZE"),
        ({"CTC_RUNTIME": "tensorrt"}, "CTC_RUNTIME"),
        ({"WHISPER_VAD": "sometimes"}, "WHISPER_VAD"),
        ({"WHISPER_TEMPERATURES": "hot"}, "WHISPER_TEMPERATURES"),
        ({"WHISPER_TEMPERATURES": "0.4,0.2"}, "WHISPER_TEMPERATURES"),
        ({"WHISPER_CONDITION_ON_PREVIOUS": "maybe"}, "WHISPER_CONDITION_ON_PREVIOUS"),
        ({"WHISPER_VAD_MIN_SECONDS": "0"}, "WHISPER_VAD_MIN_SECONDS"),
    ],
)
def test_bad_engine_settings_name_the_variable(env, named):
    with pytest.raises(ValueError, match=named):
        ServiceSettings.from_env(env)


needs_bf16 = pytest.mark.skipif(
    not cpu_features().native_bf16, reason=f"no native bf16 on {cpu_features().describe()}"
)


def engine(model_dir, cache_dir, precision="fp32", runtime="auto"):
    settings = ServiceSettings(
        threads=2,
        cache_dir=cache_dir,
        engine=EngineSettings(precision=precision, ctc_runtime=runtime),
    )
    return CtcEngine(resolve_model(str(model_dir), None), settings)


@pytest.mark.slow
def test_openvino_fp32_is_the_reference_decode(tiny_ctc_model_dir, tmp_path):
    audio = noise_signal(3.0, seed=11)
    reference = ReferenceDecoder(tiny_ctc_model_dir)
    ov = engine(tiny_ctc_model_dir, tmp_path, "fp32", "openvino")
    assert ov.describe().startswith("openvino ") and ov.describe().endswith(" f32 on cpu")
    expected = reference.logits(audio)[0].numpy()
    assert np.abs(ov.logits(audio) - expected).max() < 1e-3
    assert ov.transcribe(audio) == reference(audio)


@pytest.mark.slow
@needs_bf16
@pytest.mark.parametrize(
    ("runtime", "backend"), [("openvino", "bf16"), ("torch", "pytorch bfloat16")]
)
def test_bf16_follows_fp32(tiny_ctc_model_dir, tmp_path, runtime, backend):
    audio = noise_signal(3.0, seed=12)
    expected = ReferenceDecoder(tiny_ctc_model_dir).logits(audio)[0].numpy()
    bf16 = engine(tiny_ctc_model_dir, tmp_path, "bf16", runtime)
    assert backend in bf16.describe()
    logits = bf16.logits(audio)
    assert logits.shape == expected.shape and logits.dtype == np.float32
    assert np.corrcoef(logits.ravel(), expected.ravel())[0, 1] > 0.999
    assert (logits.argmax(-1) == expected.argmax(-1)).mean() > 0.9
    assert np.abs(logits - expected).max() > 0  # it really ran in bf16, not fp32


@pytest.mark.slow
def test_openvino_model_is_converted_once_and_reused(tiny_ctc_model_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="scoring")
    first = engine(tiny_ctc_model_dir, tmp_path, "fp32", "openvino")
    second = engine(tiny_ctc_model_dir, tmp_path, "fp32", "openvino")
    folders = list(tmp_path.glob("*.openvino"))
    assert len(folders) == 1 and (folders[0] / "model.xml").is_file()
    messages = [r.getMessage() for r in caplog.records if "OpenVINO model" in r.getMessage()]
    assert any(" built from " in m for m in messages) and any(
        " reused from " in m for m in messages
    )
    audio = noise_signal(2.0, seed=13)
    assert first.transcribe(audio) == second.transcribe(audio)


@pytest.mark.slow
def test_auto_behind_azmlinfsrv(tiny_ctc_model_dir, tmp_path):
    """PRECISION=auto in the real server: the log says what it chose and why, and the answer is
    that engine's own decode of the request."""
    native = cpu_features().native_bf16
    env = {"PRECISION": "auto", "SCORING_CACHE_DIR": str(tmp_path), "SCORING_THREADS": "2"}
    audio = noise_signal(2.5, seed=14)
    with run_scoring_server(tiny_ctc_model_dir, env=env, offline=True) as server:
        answer = post(server.score_url, wav_bytes(to_int16(audio)), "audio/wav").json()
        log = server.log()
    if native:
        assert "CTC engine: bf16 on openvino (PRECISION=auto: this CPU has native bf16" in log
    else:
        assert "CTC engine: fp32 on torch (PRECISION=auto: this CPU has no native bf16" in log
    same = engine(tiny_ctc_model_dir, tmp_path, "auto")
    assert answer["result"] == same.transcribe(to_int16(audio).astype(np.float32) / 32768)
