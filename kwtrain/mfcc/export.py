"""Export a trained MFCC model as ONE executable .eim file that needs only Python 3 and numpy.

The archive (`eimfile.py`: launcher + Python zip application) holds the runner protocol
(`kwtrain/eim_server.py`), the MFCC block (`kwtrain/mfcc/features.py`), the network's numpy
forward pass (`network.py`), the glue (`runtime.py`) and the weights (`kwtrain/mfcc/model.npz`).
Edge Impulse's SDK starts it as `model.eim <socket>` like any other .eim; `--print-info` and
`stdin` work as with Edge Impulse's own runner.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from kwtrain.eimfile import entry, pack_modules, read_member, write_eim
from kwtrain.mfcc.runtime import PACKAGED_MODEL, KeywordModel

MAX_EIM_BYTES = 1_000_000
PACKAGE = "kwtrain/mfcc"  # the archive folder of this front end's modules and model
# paths relative to the kwtrain package: the archive's layout is the checkout's
RUNTIME_MODULES = (
    "__init__.py",
    "eim_server.py",
    "fastjson.py",
    "modelfile.py",
    "mfcc/__init__.py",
    "mfcc/features.py",
    "mfcc/network.py",
    "mfcc/runtime.py",
)

MAIN = '''"""Edge Impulse runner for a keyword model trained with kwtrain (numpy only)."""
import sys

if sys.version_info < (3, 9):
    sys.stderr.write("this .eim needs Python 3.9 or newer, found %s\\n" % sys.version.split()[0])
    sys.exit(3)
try:
    import numpy  # noqa: F401
except ImportError:
    sys.stderr.write(
        "this .eim needs numpy, which the interpreter %s cannot import: set "
        "KWTRAIN_EIM_PYTHON to the edge app's Python, or `pip install numpy`\\n" % sys.executable
    )
    sys.exit(3)

from kwtrain.eim_server import main
from kwtrain.mfcc.runtime import load_packaged

sys.exit(main(load_packaged))
'''


def build_archive(model: KeywordModel) -> bytes:
    """The zip part of the .eim (without the launcher)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr(entry("__main__.py"), MAIN)
        pack_modules(zf, RUNTIME_MODULES)
        zf.writestr(entry(f"{PACKAGE}/{PACKAGED_MODEL}"), model.to_bytes())
    return buf.getvalue()


def export_eim(model: KeywordModel, out: Path, python: str | None = None) -> Path:
    """Write `out` (executable), refusing to ship a file over 1 MB."""
    return write_eim(build_archive(model), out, MAX_EIM_BYTES, python)


def read_model(eim: Path) -> KeywordModel:
    """The model packed in a kwtrain .eim (for `evaluate` and the tests); also reads .eims
    exported before the subpackages (model at `kwtrain/model.npz`)."""
    data = read_member(eim, f"{PACKAGE}/{PACKAGED_MODEL}", f"kwtrain/{PACKAGED_MODEL}")
    return KeywordModel.from_bytes(data)
