"""`python -m edgeml`: the device app (the same as the `edgeml` command and `python main.py`)."""

import sys

from edgeml.main import main

sys.exit(main())
