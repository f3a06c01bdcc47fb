"""Whisper's audio encoder through OpenVINO, the decoder left to CTranslate2 (faster-whisper).

Why: on the utt/ sentences the encoder is most of Whisper's time (every request pads to one 30 s
window, 3000 mel frames, whatever its length): CTranslate2 int8 took about 280 ms per window
here, OpenVINO bf16 about 100 ms and OpenVINO fp32 about 185 ms (AMD EPYC, AVX-512 BF16, 2
threads; docs/benchmarks.md). CTranslate2's `generate` accepts an already encoded window, so only
`WhisperModel.encode` changes; decoding, the VAD, timestamps and the fallback stay faster-whisper's.

The encoder's weights come from the CTranslate2 model folder itself (model.bin, whose layout is
CTranslate2's own serialisation: version, spec name, revision, then name / shape / dtype / bytes
per variable); nothing is downloaded. They are rebuilt as a small PyTorch module of the same
arithmetic (OpenAI Whisper's encoder: two GELU convolutions, sinusoidal positions, pre-norm
attention blocks), converted once to OpenVINO IR and kept in SCORING_CACHE_DIR keyed by a hash of
those weights and the library versions (scoring.modelcache), like the CTC engine's IR.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import struct
import warnings
from pathlib import Path

import numpy as np

from scoring.modelcache import build_once

logger = logging.getLogger("scoring.whisper_encoder")

_CACHE_FORMAT = "whisper-encoder-openvino-ir-v1"
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
MAX_MODEL_BYTES = 4 << 30  # the largest Whisper (large-v3, fp32) is 3.1 GB
N_FRAMES = 3000  # one 30 s window of 10 ms mel frames: what faster-whisper always passes


class ModelFileError(ValueError):
    """model.bin is not a CTranslate2 Whisper model this module can read; says what is wrong."""


class _Reader:
    """Bounded reads from model.bin: every length is checked against what is left of the file."""

    def __init__(self, data, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelFileError(f"{self.path}: truncated at byte {self.pos} (wanted {n} more)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        (n,) = self.unpack("H")
        return self.take(n)[:-1].decode("utf-8", errors="replace")


def read_encoder_weights(model_dir: Path) -> dict[str, np.ndarray]:
    """The `encoder/...` variables of a CTranslate2 Whisper model.bin, as float32 arrays.

    The file is mapped, not read: only the encoder's bytes are touched (a large-v3 is 3 GB).
    CTranslate2 stores a tensor equal to an earlier one once and names it again as an alias, and
    int8 weights with one `weight_scale` per output channel; both are resolved here.
    """
    path = Path(model_dir) / "model.bin"
    size = path.stat().st_size
    if not 0 < size <= MAX_MODEL_BYTES:
        raise ModelFileError(f"{path}: {size} bytes, not a Whisper model (0 < size <= 4 GiB)")
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        reader = _Reader(data, path)
        (version,) = reader.unpack("I")
        spec = reader.string()
        if spec != "WhisperSpec":
            raise ModelFileError(
                f"{path}: a {spec or 'unnamed'} model, not WhisperSpec (v{version})"
            )
        _revision, count = reader.unpack("II")
        index: dict[str, tuple[tuple[int, ...], int, int, int]] = {}
        for _ in range(count):
            name = reader.string()
            (rank,) = reader.unpack("B")
            shape = reader.unpack(f"{rank}I")
            dtype_id, nbytes = reader.unpack("BI")
            index[name] = (shape, dtype_id, reader.pos, nbytes)
            reader.take(nbytes)
        (n_aliases,) = reader.unpack("I")
        for _ in range(n_aliases):
            alias, target = reader.string(), reader.string()
            if target not in index:
                raise ModelFileError(f"{path}: alias {alias} names a missing {target}")
            index[alias] = index[target]
        weights = {
            name: _array(data, path, name, *entry)
            for name, entry in index.items()
            if name.startswith("encoder/")
        }
    if "encoder/conv1/weight" not in weights:
        raise ModelFileError(f"{path}: no encoder weights found")
    for name in list(weights):
        if name.endswith("/weight") and weights[name].dtype == np.int8:
            scale = weights.get(name.replace("/weight", "/weight_scale"))
            if scale is None:
                raise ModelFileError(f"{path}: {name} is int8 without its weight_scale")
            shape = (-1,) + (1,) * (weights[name].ndim - 1)  # one scale per output channel
            weights[name] = weights[name].astype(np.float32) / scale.reshape(shape)
    return {k: v.astype(np.float32) for k, v in weights.items() if not k.endswith("_scale")}


def _array(data, path: Path, name: str, shape, dtype_id: int, start: int, nbytes: int):
    if dtype_id not in _DTYPES:
        raise ModelFileError(f"{path}: {name} has dtype id {dtype_id} (not readable here)")
    array = np.frombuffer(data[start : start + nbytes], dtype=_DTYPES[dtype_id])
    if array.size != int(np.prod(shape)):
        raise ModelFileError(f"{path}: {name} holds {array.size} values for shape {shape}")
    return array.reshape(shape).copy()


def weights_key(weights: dict[str, np.ndarray]) -> str:
    """Content hash of the encoder weights (16 MB for tiny: milliseconds)."""
    digest = hashlib.sha256(_CACHE_FORMAT.encode())
    for name in sorted(weights):
        digest.update(name.encode() + str(weights[name].shape).encode())
        digest.update(np.ascontiguousarray(weights[name]).tobytes())
    return digest.hexdigest()[:24]


def encoder_module(weights: dict[str, np.ndarray]):
    """OpenAI Whisper's encoder as a torch.nn.Module over these weights (eval mode)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(weights[f"encoder/{name}"].copy())

    n_heads = int(np.asarray(weights["encoder/num_heads"]).reshape(-1)[0])
    parts = {k.split("/")[1] for k in weights}
    layers = sorted(int(p[6:]) for p in parts if p.startswith("layer_") and p[6:].isdigit())

    class Block(nn.Module):
        def __init__(self, prefix: str) -> None:
            super().__init__()
            self.ln1 = (t(f"{prefix}/self_attention/layer_norm/gamma"),
                        t(f"{prefix}/self_attention/layer_norm/beta"))  # fmt: skip
            self.qkv = (t(f"{prefix}/self_attention/linear_0/weight"),
                        t(f"{prefix}/self_attention/linear_0/bias"))  # fmt: skip
            self.out = (t(f"{prefix}/self_attention/linear_1/weight"),
                        t(f"{prefix}/self_attention/linear_1/bias"))  # fmt: skip
            self.ln2 = (t(f"{prefix}/ffn/layer_norm/gamma"), t(f"{prefix}/ffn/layer_norm/beta"))
            self.fc1 = (t(f"{prefix}/ffn/linear_0/weight"), t(f"{prefix}/ffn/linear_0/bias"))
            self.fc2 = (t(f"{prefix}/ffn/linear_1/weight"), t(f"{prefix}/ffn/linear_1/bias"))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            batch, frames, width = x.shape
            h = F.layer_norm(x, (width,), *self.ln1)
            q, k, v = F.linear(h, *self.qkv).split(width, dim=-1)
            q, k, v = (z.view(batch, frames, n_heads, -1).transpose(1, 2) for z in (q, k, v))
            a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(x.shape)
            x = x + F.linear(a, *self.out)
            h = F.layer_norm(x, (width,), *self.ln2)
            return x + F.linear(F.gelu(F.linear(h, *self.fc1)), *self.fc2)

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = (t("conv1/weight"), t("conv1/bias"))
            self.conv2 = (t("conv2/weight"), t("conv2/bias"))
            self.positions = t("position_encodings/encodings")
            self.blocks = nn.ModuleList(Block(f"layer_{i}") for i in layers)
            self.ln = (t("layer_norm/gamma"), t("layer_norm/beta"))

        def forward(self, mel: torch.Tensor) -> torch.Tensor:
            x = F.gelu(F.conv1d(mel, *self.conv1, padding=1))
            x = F.gelu(F.conv1d(x, *self.conv2, stride=2, padding=1)).transpose(1, 2)
            x = x + self.positions[: x.shape[1]]
            for block in self.blocks:
                x = block(x)
            return F.layer_norm(x, (x.shape[-1],), *self.ln)

    return Encoder().eval()


def cached_encoder_ir(model_dir: Path, cache_dir: Path) -> tuple[Path, bool]:
    """Folder holding encoder.xml/.bin for this Whisper model, converted once; (folder, built)."""
    import openvino

    weights = read_encoder_weights(model_dir)
    version = "".join(c if c.isalnum() or c in ".-" else "_" for c in openvino.__version__)
    key = f"{weights_key(weights)}-ov{version}"
    target = Path(cache_dir) / f"{key}.whisper-encoder.openvino"
    built = build_once(
        target, lambda folder: _convert(weights, folder), "Whisper encoder (OpenVINO)"
    )
    return target, built


def _convert(weights: dict[str, np.ndarray], folder: Path) -> None:
    import openvino as ov
    import torch

    folder.mkdir()
    n_mels = weights["encoder/conv1/weight"].shape[1]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        converted = ov.convert_model(
            encoder_module(weights), example_input=torch.zeros(1, n_mels, N_FRAMES)
        )
    converted.reshape([1, n_mels, N_FRAMES])  # static: faster-whisper always passes one window
    ov.save_model(converted, folder / "encoder.xml", compress_to_fp16=False)


class OpenVinoWhisperEncoder:
    """mel features [1, n_mels, 3000] float32 -> encoder output [1, 1500, d_model] float32."""

    def __init__(self, folder: Path, precision: str, threads: int, cache_dir: Path) -> None:
        from scoring.openvino_runner import compile_on_cpu

        compiled = compile_on_cpu(folder / "encoder.xml", precision, threads, cache_dir)
        self.precision = precision
        self.request = compiled.create_infer_request()

    def __call__(self, features: np.ndarray) -> np.ndarray:
        if features.ndim == 2:
            features = features[None]
        if features.shape[0] != 1:  # batched (faster-whisper's BatchedInferencePipeline)
            return np.concatenate([self(f) for f in features])
        outputs = self.request.infer({0: np.ascontiguousarray(features, dtype=np.float32)})
        return np.array(outputs[0], dtype=np.float32, copy=True)
