"""Export a trained model as ONE executable .eim file that needs only Python 3 and numpy.

The .eim is a Python zip application (PEP 441) behind a short POSIX shell launcher: the zip
archive holds the runner protocol (`eim_server`), the MFCC block (`features`), the network's
numpy forward pass (`network`), the glue (`runtime`) and the weights (`model.npz`). Edge
Impulse's SDK starts it as `model.eim <socket>` like any other .eim; `--print-info` and `stdin`
work as with Edge Impulse's own runner. (Python finds a zip archive from its end, so whatever
comes before it, a `#!` line or a launcher, is ignored when the file is run as Python.)

Which Python runs it is decided by the launcher, not by PATH: a `#!/usr/bin/env python3` line
took the first python3 on PATH, and from a venv that is not activated (the SDK's own examples,
a systemd unit, a cron job) that python3 lacked numpy/onnxruntime: the model exited at once
and the SDK's `ImpulseRunner.init()` waited forever. The launcher takes, in this order:

1. `$KWTRAIN_EIM_PYTHON`, when set (an explicit choice for odd installs);
2. the venv the .eim lies in (`<venv>/bin/python3` above it: the model shipped inside the edge
   app's installed package runs with the app's own Python);
3. the Python that exported it (`sys.executable` at export), when it still exists;
4. `python3` on PATH: then, if that cannot import numpy, the model says so and exits 3.
"""

from __future__ import annotations

import io
import os
import shlex
import stat
import sys
import zipfile
from pathlib import Path

from kwtrain.runtime import PACKAGED_MODEL, KeywordModel

LAUNCHER = """#!/bin/sh
# Edge Impulse .eim of a kwtrain keyword model: this launcher, then a Python zip archive.
# Python: $KWTRAIN_EIM_PYTHON; else the venv this file lies in; else the one that exported
# it (below); else python3 on PATH.
py=${{KWTRAIN_EIM_PYTHON:-}}
case $0 in */*) d=${{0%/*}} ;; *) d=. ;; esac
d=$(cd -- "$d" 2>/dev/null && pwd -P) || d=
while [ -z "$py" ] && [ -n "$d" ] && [ "$d" != / ]; do
  if [ -f "$d/pyvenv.cfg" ] && [ -x "$d/bin/python3" ]; then py=$d/bin/python3; fi
  d=${{d%/*}}
done
if [ -z "$py" ] && [ -x {python} ]; then py={python}; fi
exec "${{py:-python3}}" "$0" "$@"
exit 127
"""
MAX_EIM_BYTES = 1_000_000
MAX_EMBEDDING_EIM_BYTES = 5_000_000  # embexport's limit (that module imports this one)
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
        "this .eim needs numpy, which the interpreter %s cannot import: set "
        "KWTRAIN_EIM_PYTHON to the edge app's Python, or `pip install numpy`\\n" % sys.executable
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


def export_eim(model: KeywordModel, out: Path, python: str | None = None) -> Path:
    """Write `out` (executable), refusing to ship a file over 1 MB."""
    return write_eim(build_archive(model), out, MAX_EIM_BYTES, python)


def launcher(python: str | None = None) -> bytes:
    """The shell lines before the archive; `python` (default: this interpreter) is the one
    tried after the enclosing venv. Quoted for the shell, so any path is taken literally.
    "" records none: a model shipped to other machines (edgeml/models/listen.eim) must not
    name a path of the machine that built it; the app runs it with its own Python first on
    PATH."""
    template = LAUNCHER
    if python == "":
        template = "".join(line for line in LAUNCHER.splitlines(True) if "{python}" not in line)
    return template.format(
        python=shlex.quote(sys.executable if python is None else python)
    ).encode()


def write_eim(archive: bytes, out: Path, max_bytes: int, python: str | None = None) -> Path:
    """The .eim file of either model kind: launcher + zip, executable, replaced atomically (a
    running app never reads half a model), refused over `max_bytes`."""
    data = launcher(python) + archive
    if len(data) > max_bytes:
        raise ValueError(f"exported model is {len(data)} bytes, over the {max_bytes} limit")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, out)
    return out


def relaunch(eim: Path, out: Path, python: str | None = None) -> Path:
    """Write `out`: the zip archive of a kwtrain .eim (either kind) behind today's launcher, so
    a model exported with `#!/usr/bin/env python3` gets the launcher without retraining.
    ValueError for a file that is not a kwtrain .eim."""
    data = Path(eim).read_bytes()[: MAX_EMBEDDING_EIM_BYTES + 64 * 1024]
    start = data.find(b"PK\x03\x04")
    archive = data[start:] if start >= 0 else b""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            names = set(zf.namelist())
    except zipfile.BadZipFile:
        names = set()
    if "__main__.py" not in names or "kwtrain/eim_server.py" not in names:
        raise ValueError(f"{eim} is not a .eim exported by kwtrain")
    return write_eim(archive, out, MAX_EMBEDDING_EIM_BYTES, python)


def read_model(eim: Path) -> KeywordModel:
    """The model packed in a kwtrain .eim (for `evaluate` and the tests)."""
    with zipfile.ZipFile(eim) as zf:
        return KeywordModel.from_bytes(zf.read(f"kwtrain/{PACKAGED_MODEL}"))
