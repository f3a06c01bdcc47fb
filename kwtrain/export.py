"""Export a trained model as ONE executable .eim file that needs only Python 3 and numpy.

The .eim is a Python zip application (PEP 441): a `#!/usr/bin/env python3` line followed by a
zip archive holding the runner protocol (`eim_server`), the MFCC block (`features`), the
network's numpy forward pass (`network`), the glue (`runtime`) and the weights (`model.npz`).
Edge Impulse's SDK starts it as `model.eim <socket>` like any other .eim; `--print-info` and
`stdin` work as with Edge Impulse's own runner.

Which python3 runs it is decided by PATH: the edge app puts its own interpreter's folder first
on PATH when it launches the model, so the .eim runs in the app's environment (where numpy is).
Run by hand, `python3` must have numpy; if it has not, the model says so on stderr and exits 3.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

from kwtrain.runtime import PACKAGED_MODEL, KeywordModel

INTERPRETER = "/usr/bin/env python3"
MAX_EIM_BYTES = 1_000_000
RUNTIME_MODULES = (
    "__init__.py",
    "eim_server.py",
    "fastjson.py",
    "modelfile.py",
    "features.py",
    "network.py",
    "runtime.py",
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
        "this .eim needs numpy, which the interpreter %s cannot import: run it with the "
        "edge app's Python (its folder first on PATH) or `pip install numpy`\\n" % sys.executable
    )
    sys.exit(3)

from kwtrain.eim_server import main
from kwtrain.runtime import load_packaged

sys.exit(main(load_packaged))
'''


def build_archive(model: KeywordModel) -> bytes:
    """The zip part of the .eim (without the shebang line)."""
    src = Path(__file__).resolve().parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr(_entry("__main__.py"), MAIN)
        for name in RUNTIME_MODULES:
            zf.writestr(_entry(f"kwtrain/{name}"), (src / name).read_text(encoding="utf-8"))
        zf.writestr(_entry(f"kwtrain/{PACKAGED_MODEL}"), model.to_bytes())
    return buf.getvalue()


def _entry(name: str) -> zipfile.ZipInfo:
    """A zip entry with a fixed timestamp, so the same model gives the same bytes."""
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def export_eim(model: KeywordModel, out: Path) -> Path:
    """Write `out` (executable), refusing to ship a file over 1 MB."""
    return write_eim(build_archive(model), out, MAX_EIM_BYTES)


def write_eim(archive: bytes, out: Path, max_bytes: int) -> Path:
    """The .eim file of either model kind: shebang + zip, executable, replaced atomically (a
    running app never reads half a model), refused over `max_bytes`."""
    data = f"#!{INTERPRETER}\n".encode() + archive
    if len(data) > max_bytes:
        raise ValueError(f"exported model is {len(data)} bytes, over the {max_bytes} limit")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, out)
    return out


def read_model(eim: Path) -> KeywordModel:
    """The model packed in a kwtrain .eim (for `evaluate` and the tests)."""
    with zipfile.ZipFile(eim) as zf:
        return KeywordModel.from_bytes(zf.read(f"kwtrain/{PACKAGED_MODEL}"))
