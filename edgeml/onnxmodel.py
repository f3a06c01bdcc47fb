"""One of the device's own ONNX models (Silero VAD, Smart Turn) as an onnxruntime session.

Both ship in edgeml/models/ with a pinned SHA-256 and run on one thread beside the keyword model
and the capture. What can go wrong is the same for both (onnxruntime missing, the file missing
or damaged, onnxruntime refusing it), and each must reach the user as the caller's own
"unavailable" error with the caller's hint (`--vad energy`), never as onnxruntime's exception.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def load_session(
    path: Path,
    *,
    shipped: Path,
    sha256: str,
    threads: int,
    error: type[Exception],
    what: str,
    hint: str = "",
) -> Any:
    """An onnxruntime InferenceSession for `path` on `threads` CPU threads. The file shipped
    with the app (`shipped`) must match `sha256`; any other path is the user's choice. Every
    failure raises `error` naming `what` ("the VAD model"); `hint` is the way around it the
    user has ("--vad energy")."""
    other = f", or {hint}" if hint else ""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise error(f"onnxruntime is not installed (pip install onnxruntime{other})") from exc
    if not path.is_file():
        raise error(f"{what} {path} is missing (reinstall edgeml{other})")
    if path == shipped:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != sha256:
            raise error(f"{what} {path} is damaged (sha256 {digest[:12]}...)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own error types
        raise error(f"cannot load {what} {path}: {exc}") from exc
