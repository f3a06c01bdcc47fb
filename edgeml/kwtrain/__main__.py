"""`python -m kwtrain` (in edgeml/) or `python edgeml/kwtrain` (from the repository root)."""

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python edgeml/kwtrain`: the folder itself is on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kwtrain.cli import main  # noqa: E402

raise SystemExit(main())
