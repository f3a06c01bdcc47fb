"""The file a trained keyword model is stored in: float32 weights plus a JSON header in one npz.

Both model kinds (runtime.KeywordModel, the MFCC impulse; head.EmbeddingModel, the speech-
embedding head) use it, inside the .eim and on disk, so a model file is read and written one
way. numpy only: this module is packed into the exported .eim.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np


def pack(meta: dict, weights: dict[str, np.ndarray]) -> bytes:
    """npz bytes: `meta` as UTF-8 JSON under the key "meta", every weight as float32."""
    buf = io.BytesIO()
    header = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
    np.savez_compressed(buf, meta=header, **arrays)
    return buf.getvalue()


def unpack(data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, weights) of bytes written by `pack`; no pickles are ever loaded."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
        weights = {k: npz[k] for k in npz.files if k != "meta"}
    return meta, weights


def write(path: Path, data: bytes) -> Path:
    """Write a model file, making its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
