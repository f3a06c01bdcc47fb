"""The exit codes and the one-line user error every `kwtrain` command uses.

Its own module so that the front ends' command parts (`mfcc/cli.py`, `embedding/cli.py`) raise
the same error the top-level `cli.py` reports, without importing `cli.py` (which imports them).
"""

from __future__ import annotations

import os

EXIT_BAD_INPUT = 2
EXIT_MISSING_TOOL = 3
EXIT_DOWNLOAD = 4  # fetch-background: offline, cut off, or a file that failed its checksum
EXIT_INTERRUPTED = 130  # as a shell reports a command ended by Ctrl-C


class CliError(Exception):
    """A user error the command line reports in one line, with a non-zero exit code."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def env(name: str, default: str) -> str:
    """Flag defaults fall back to environment variables (KWTRAIN_*)."""
    return os.environ.get(name, default)
