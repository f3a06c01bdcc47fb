"""The OpenVINO caches in SCORING_CACHE_DIR are keyed by what the compiled model depends on and
rebuilt when damaged (scoring.openvino_runner, scoring.modelcache).

Each engine runs in a process of its own, as a deployment does: the old cache handed the fp32
blob to a bf16 process, which died in infer() with a segmentation fault (issue 23), and a blob
with flipped bytes was loaded silently and the encoder heard nothing at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.long_speech import LIBRI_CLIP, LIBRI_TEXT
from devkit.wer import word_errors
from scoring.cpufeatures import cpu_features

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
# At most one word of 28 off: fp32 hears "cotton", bf16 "carton" on this clip (docs/benchmarks.md)
MAX_WER = 1 / 28
_SCRIPT = """
import json, sys
import soundfile as sf
from scoring.models import ENGINE_WHISPER, ModelSource
from scoring.settings import ServiceSettings
from scoring.whisper import WhisperEngine
model, clip, encoder, cache = sys.argv[1:5]
env = {"WHISPER_ENCODER": encoder, "SCORING_CACHE_DIR": cache, "WARM_UP": "0"}
engine = WhisperEngine(ModelSource(model, "offline", ENGINE_WHISPER, True),
                       ServiceSettings.from_env(env))
audio, _ = sf.read(clip, dtype="float32")
print(json.dumps({"encoder": engine.encoder, "text": engine.transcribe(audio)}))
"""


def _transcribe(whisper_dir: Path, clip: Path, encoder: str, cache: Path) -> tuple[str, str]:
    """(transcript, log) of one process running `encoder` on `cache`; fails on a crash."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(whisper_dir), str(clip), encoder, str(cache)],
        capture_output=True,
        text=True,
        timeout=600,  # generous: a cold compile takes about 10 s here
        cwd=ROOT,
        env={**_env(), "PYTHONPATH": f"{ROOT / 'scoring-func'}:{ROOT}"},
    )
    assert done.returncode == 0, f"{encoder} exited {done.returncode}: {done.stderr[-2000:]}"
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["encoder"] == encoder
    return answer["text"], done.stderr


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _assert_heard(text: str) -> None:
    assert word_errors([LIBRI_TEXT], [text])["wer"] <= MAX_WER, text


def test_fp32_then_bf16_on_one_cache_folder(whisper_dir, speech_dir, tmp_path):
    if not cpu_features().native_bf16:
        pytest.skip("this CPU has no native bf16 (openvino-bf16 is refused here)")
    clip = speech_dir / LIBRI_CLIP
    for encoder in ("openvino-fp32", "openvino-bf16", "openvino-fp32", "openvino-bf16"):
        _assert_heard(_transcribe(whisper_dir, clip, encoder, tmp_path)[0])
    folders = sorted(p.name for p in (tmp_path / "openvino-compiled").iterdir() if p.is_dir())
    assert [name.split("-")[1] for name in folders] == ["bf16", "f32"]  # one per precision


def test_a_damaged_compiled_blob_is_rebuilt(whisper_dir, speech_dir, tmp_path):
    clip = speech_dir / LIBRI_CLIP
    _assert_heard(_transcribe(whisper_dir, clip, "openvino-fp32", tmp_path)[0])
    (blob,) = (tmp_path / "openvino-compiled").rglob("*.blob")
    data = bytearray(blob.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(b ^ 0x5A for b in data[middle : middle + 4096])
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    text, log = _transcribe(whisper_dir, clip, "openvino-fp32", tmp_path)
    _assert_heard(text)  # the old code loaded it and answered "" (nothing heard)
    assert "do not match their seal" in log


def test_a_damaged_encoder_ir_is_rebuilt(whisper_dir, speech_dir, tmp_path):
    clip = speech_dir / LIBRI_CLIP
    _assert_heard(_transcribe(whisper_dir, clip, "openvino-fp32", tmp_path)[0])
    (xml,) = tmp_path.glob("*.whisper-encoder.openvino/encoder.xml")
    xml.write_text("<net name='half-writ")
    text, log = _transcribe(whisper_dir, clip, "openvino-fp32", tmp_path)
    _assert_heard(text)
    assert "damaged or unsealed" in log
