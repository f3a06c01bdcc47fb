"""Models converted once and kept on disk (SCORING_CACHE_DIR), shared by every worker and restart.

Exporting wav2vec2-base to ONNX or converting it to OpenVINO takes 10-20 s and about 1 GB more
memory, so the result is cached, keyed by a fingerprint of the weights, the config, the cache
format and the library versions (a new library or checkpoint never reuses a stale file). A file
lock makes concurrent workers build it once; the build goes to a temporary name that is renamed
into place, so a reader sees a whole model or none, even after a crash mid-build.

A cache that was damaged after it was written (a disk error, a shared volume another node wrote
to half-way, a hand edit) is rebuilt, never fatal and never used: each entry has a seal beside it
(`<name>.sha256`: the SHA-256 of every file in it), checked before reuse. OpenVINO read a blob
with flipped bytes without a word and the Whisper encoder then heard nothing at all, so the
runtimes' own checks are not enough. Hashing runs at about 590 MB/s here (0.06 s for the
Whisper tiny encoder's 33 MB blob, about 0.65 s for wav2vec2-base's 377 MB IR) at each start.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
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


def exclusive(lock_path: Path) -> contextlib.AbstractContextManager[None]:
    """The cache's inter-process lock (flock on `lock_path`), for callers outside this module."""
    return _exclusive(lock_path)


def content_digest(target: Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, sorted)."""
    digest = hashlib.sha256()
    files = [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(target.parent)).encode() + b"\0")
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _seal_path(target: Path) -> Path:
    return target.parent / f"{target.name}.sha256"


def seal(target: Path) -> None:
    """Record what `target` holds now, so a later reuse can tell it is still intact."""
    partial = _seal_path(target).with_suffix(".sha256.tmp")
    partial.write_text(content_digest(target) + "\n")
    os.replace(partial, _seal_path(target))


def is_intact(target: Path) -> bool:
    """`target` exists and still holds what its seal recorded (no seal: not trusted)."""
    try:
        recorded = _seal_path(target).read_text()[:80].strip()
        return target.exists() and recorded == content_digest(target)
    except OSError:
        return False


def recorded_digest(target: Path) -> str | None:
    """The digest `target`'s seal records (checked by build_once before reuse), or None."""
    try:
        return _seal_path(target).read_text()[:80].strip() or None
    except OSError:
        return None


def discard(target: Path, why: str) -> None:
    """Remove a cache entry that cannot be trusted (and its seal), saying why in the log."""
    if target.exists() or _seal_path(target).exists():
        logger.warning("Discarding the cached %s (%s): it is rebuilt", target, why)
    if target.is_dir():
        shutil.rmtree(target, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    with contextlib.suppress(FileNotFoundError):
        _seal_path(target).unlink()


def build_once(target: Path, build: Callable[[Path], None], what: str) -> bool:
    """Make `target` (a file or a folder) with `build(tmp_path)` unless an intact one exists;
    True if built. An entry whose content no longer matches its seal is rebuilt.

    `build` writes to the path it is given; that path is renamed to `target` when it returns.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.parent / f"{target.name}.lock"):
        if is_intact(target):
            return False
        discard(target, "damaged or unsealed")
        started = time.perf_counter()
        logger.info("Building the %s once into %s", what, target)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            partial = Path(tmp) / target.name
            build(partial)
            seal(partial)
            os.replace(partial, target)  # atomic: readers see a whole model or none
            os.replace(_seal_path(partial), _seal_path(target))
        logger.info("%s ready in %.0f s", what, time.perf_counter() - started)
        return True
