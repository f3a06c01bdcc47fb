"""`python -m kwtrain` (the same as the `kwtrain` command)."""

from kwtrain.cli import main

raise SystemExit(main())
