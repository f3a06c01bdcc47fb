"""Export an embedding keyword model as ONE executable .eim (Python zipapp, numpy + onnxruntime).

The archive holds the runner protocol (`eim_server`, `fastjson`), the streaming front end
(`embedding`), the head (`head`), the glue (`embruntime`), the head's weights with the
calibrated threshold, and the front end's three runtime ONNX files (`onnxparts.py`: the mel model
without its top_db step, the embedding model in two parts; about 2.4 MB, 2.2 MB compressed).
Edge Impulse's SDK starts it as `model.eim <socket>` like any other .eim; the launcher before
the archive picks a Python that has numpy and onnxruntime (export.py says how).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from kwtrain.embedding import RUNTIME_FILES, model_files, runtime_files
from kwtrain.embruntime import PACKAGED_MODEL
from kwtrain.export import MAX_EMBEDDING_EIM_BYTES, _entry, write_eim
from kwtrain.head import EmbeddingModel

MAX_EIM_BYTES = MAX_EMBEDDING_EIM_BYTES
RUNTIME_MODULES = (
    "__init__.py",
    "eim_server.py",
    "fastjson.py",
    "modelfile.py",
    "embedding.py",
    "head.py",
    "embruntime.py",
)

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
from kwtrain.embruntime import load_packaged

sys.exit(main(load_packaged))
'''


def build_archive(model: EmbeddingModel, files: dict[str, bytes] | None = None) -> bytes:
    files = runtime_files(files or model_files())
    src = Path(__file__).resolve().parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr(_entry("__main__.py"), MAIN)
        for name in RUNTIME_MODULES:
            zf.writestr(_entry(f"kwtrain/{name}"), (src / name).read_text(encoding="utf-8"))
        zf.writestr(_entry(f"kwtrain/{PACKAGED_MODEL}"), model.to_bytes())
        for name in RUNTIME_FILES:
            zf.writestr(_entry(f"kwtrain/{name}"), files[name])
    return buf.getvalue()


def export_embedding_eim(model: EmbeddingModel, out: Path, python: str | None = None) -> Path:
    """Write `out` (executable), refusing to ship a file over 5 MB. `python`: the interpreter
    the launcher records (default: this one; see export.py for the order it tries)."""
    return write_eim(build_archive(model), out, MAX_EIM_BYTES, python)


def is_embedding_eim(eim: Path) -> bool:
    try:
        with zipfile.ZipFile(eim) as zf:
            return f"kwtrain/{PACKAGED_MODEL}" in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def read_embedding_model(eim: Path) -> EmbeddingModel:
    with zipfile.ZipFile(eim) as zf:
        return EmbeddingModel.from_bytes(zf.read(f"kwtrain/{PACKAGED_MODEL}"))
