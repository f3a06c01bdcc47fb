"""The .eim file both front ends write: a shell launcher, then a Python zip application.

The .eim is a Python zip application (PEP 441) behind a short POSIX shell launcher. Edge
Impulse's SDK starts it as `model.eim <socket>` like any other .eim. (Python finds a zip archive
from its end, so whatever comes before it, a `#!` line or a launcher, is ignored when the file
is run as Python.) The archive holds a `kwtrain/` package laid out as this checkout is: the
shared runner protocol (`kwtrain/eim_server.py`, `fastjson.py`, `modelfile.py`) and one front
end's runtime modules and model under its subpackage (`kwtrain/mfcc/` or `kwtrain/embedding/`).
Archives exported before the front ends had subpackages keep the model at `kwtrain/<file>`:
`read_member` reads either layout.

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
from collections.abc import Iterable
from pathlib import Path

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
MAX_ANY_EIM_BYTES = 5_000_000  # the larger of the two exporters' limits (embedding.export)
SRC = Path(__file__).resolve().parent  # the kwtrain package folder


def pack_modules(zf: zipfile.ZipFile, modules: Iterable[str]) -> None:
    """Copy kwtrain's source files (paths relative to the package folder, `mfcc/runtime.py`)
    into the archive under `kwtrain/`, so the .eim imports them as the checkout does."""
    for name in modules:
        zf.writestr(entry(f"kwtrain/{name}"), (SRC / name).read_text(encoding="utf-8"))


def read_member(eim: Path, *names: str) -> bytes:
    """The first of `names` found in the .eim's archive (the current layout first, then the
    layout of older exports); KeyError when none is there."""
    with zipfile.ZipFile(eim) as zf:
        present = set(zf.namelist())
        for name in names:
            if name in present:
                return zf.read(name)
    raise KeyError(f"{eim}: none of {', '.join(names)} in the archive")


def entry(name: str) -> zipfile.ZipInfo:
    """A zip entry with a fixed timestamp, so the same model gives the same bytes."""
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


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
    data = Path(eim).read_bytes()[: MAX_ANY_EIM_BYTES + 64 * 1024]
    start = data.find(b"PK\x03\x04")
    archive = data[start:] if start >= 0 else b""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            names = set(zf.namelist())
    except zipfile.BadZipFile:
        names = set()
    if "__main__.py" not in names or "kwtrain/eim_server.py" not in names:
        raise ValueError(f"{eim} is not a .eim exported by kwtrain")
    return write_eim(archive, out, MAX_ANY_EIM_BYTES, python)
