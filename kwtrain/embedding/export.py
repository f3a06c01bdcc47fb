"""Export an embedding keyword model as ONE executable .eim (Python zipapp, numpy + onnxruntime).

The archive holds the runner protocol (`kwtrain/eim_server.py`, `fastjson.py`) and, under
`kwtrain/embedding/`, the file names (`onnxfiles`), the streaming front end (`frontend`), the
head (`head`), the glue (`runtime`), the head's weights with the calibrated threshold, and the
front end's three runtime ONNX files (`onnxparts.py`: the mel model without its top_db step, the
embedding model in two parts; about 2.4 MB, 2.2 MB compressed). Edge Impulse's SDK starts it as
`model.eim <socket>` like any other .eim; the launcher before the archive picks a Python that
has numpy and onnxruntime (`eimfile.py` says how).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from kwtrain.eimfile import MAX_ANY_EIM_BYTES, entry, pack_modules, read_member, write_eim
from kwtrain.embedding.head import EmbeddingModel
from kwtrain.embedding.onnxfiles import RUNTIME_FILES
from kwtrain.embedding.onnxparts import runtime_files
from kwtrain.embedding.runtime import PACKAGED_MODEL

MAX_EIM_BYTES = MAX_ANY_EIM_BYTES
PACKAGE = "kwtrain/embedding"  # the archive folder of this front end's modules and files
# paths relative to the kwtrain package: the archive's layout is the checkout's
RUNTIME_MODULES = (
    "__init__.py",
    "eim_server.py",
    "fastjson.py",
    "modelfile.py",
    "embedding/__init__.py",
    "embedding/onnxfiles.py",
    "embedding/frontend.py",
    "embedding/head.py",
    "embedding/runtime.py",
)
# where exports made before the subpackages keep the head (kwtrain/embedding_head.npz)
_LEGACY_MODEL = f"kwtrain/{PACKAGED_MODEL}"

MAIN = '''"""Edge Impulse runner for a kwtrain speech-embedding keyword model (numpy + onnxruntime)."""
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
if sys.version_info < (3, 9):
    sys.stderr.write("this .eim needs Python 3.9 or newer, found %s\\n" % sys.version.split()[0])
    sys.exit(3)
for _module in ("numpy", "onnxruntime"):
    try:
        __import__(_module)
    except ImportError:
        sys.stderr.write(
            "this .eim needs %s, which the interpreter %s cannot import: set "
            "KWTRAIN_EIM_PYTHON to the edge app's Python, or `pip install %s`\\n"
            % (_module, sys.executable, _module)
        )
        sys.exit(3)

from kwtrain.eim_server import main
from kwtrain.embedding.runtime import load_packaged

sys.exit(main(load_packaged))
'''


def build_archive(model: EmbeddingModel, files: dict[str, bytes] | None = None) -> bytes:
    files = runtime_files(files)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr(entry("__main__.py"), MAIN)
        pack_modules(zf, RUNTIME_MODULES)
        zf.writestr(entry(f"{PACKAGE}/{PACKAGED_MODEL}"), model.to_bytes())
        for name in RUNTIME_FILES:
            zf.writestr(entry(f"{PACKAGE}/{name}"), files[name])
    return buf.getvalue()


def export_embedding_eim(model: EmbeddingModel, out: Path, python: str | None = None) -> Path:
    """Write `out` (executable), refusing to ship a file over 5 MB. `python`: the interpreter
    the launcher records (default: this one; see eimfile.py for the order it tries)."""
    return write_eim(build_archive(model), out, MAX_EIM_BYTES, python)


def is_embedding_eim(eim: Path) -> bool:
    try:
        with zipfile.ZipFile(eim) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
    return f"{PACKAGE}/{PACKAGED_MODEL}" in names or _LEGACY_MODEL in names


def read_embedding_model(eim: Path) -> EmbeddingModel:
    """The head packed in an embedding .eim (either archive layout)."""
    return EmbeddingModel.from_bytes(read_member(eim, f"{PACKAGE}/{PACKAGED_MODEL}", _LEGACY_MODEL))
