"""Models converted once and kept on disk (SCORING_CACHE_DIR), shared by every worker and restart.

Exporting wav2vec2-base to ONNX or converting it to OpenVINO takes 10-20 s and about 1 GB more
memory, so the result is cached, keyed by a fingerprint of the weights, the config, the cache
format and the library versions (a new library or checkpoint never reuses a stale file). A file
lock makes concurrent workers build it once; the build goes to a temporary name that is renamed
into place, so a reader sees a whole model or none, even after a crash mid-build.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

logger = logging.getLogger("scoring.modelcache")


def model_fingerprint(model, *parts: str) -> str:
    """Content hash of a model (config, parameter shapes, sampled values) + the given parts.

    Sampling the head and tail of every tensor is enough to tell different checkpoints apart and
    costs milliseconds even for 94 M parameters.
    """
    import torch
    import transformers

    digest = hashlib.sha256()
    for part in (*parts, torch.__version__, transformers.__version__):
        digest.update(part.encode())
    digest.update(model.config.to_json_string().encode())
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().reshape(-1).float()
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(flat[:64].numpy().tobytes())
        digest.update(flat[-64:].numpy().tobytes())
    return digest.hexdigest()[:24]


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_once(target: Path, build: Callable[[Path], None], what: str) -> bool:
    """Make `target` (a file or a folder) with `build(tmp_path)` unless it exists; True if built.

    `build` writes to the path it is given; that path is renamed to `target` when it returns.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.parent / f"{target.name}.lock"):
        if target.exists():
            return False
        started = time.perf_counter()
        logger.info("Building the %s once into %s", what, target)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            partial = Path(tmp) / target.name
            build(partial)
            os.replace(partial, target)  # atomic: readers see a whole model or none
        logger.info("%s ready in %.0f s", what, time.perf_counter() - started)
        return True
