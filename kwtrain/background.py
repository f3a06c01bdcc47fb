"""Which real background a build uses, when ../shared is not there (a user's machine).

In order:

1. `--background DIR` (or KWTRAIN_BACKGROUND, or ../shared/data/speech beside the checkout): a
   folder in the layout of ../shared (speech_long/, music_tv/, noise_bed/, negatives_long/...).
2. The user's own room, always when recorded: `kwtrain record --label background --seconds 600
   --out DATA` files the take as one-minute WAVs under DATA/background/, and `kwtrain build
   --data DATA` uses them (split by file like every group: half to train on, a quarter each to
   calibrate on and to test on). Ten minutes of the room where the device will listen, with its
   TV and kitchen going, are the best negatives there are.
3. Without 1: public real audio fetched into the cache (kwtrain/fetch.py): what is already there
   is used; downloading more needs the user's consent, `--fetch-background` or
   KWTRAIN_FETCH_BACKGROUND=1. The default is not to download: a build should not pull hundreds
   of megabytes, nor need a network, unasked.
4. Nothing: generated negatives only, the threshold a fixed 0.9 (`no background`), and a warning
   saying how to do better.

The model's report says what its threshold was calibrated on (`calibrated_on`: hours per group
and source of the calibration part).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from kwtrain import fetch, negatives

ROOM_LABEL = "background"  # the label `kwtrain record` files the room under
FETCH_ENV = "KWTRAIN_FETCH_BACKGROUND"


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes", "on")


def add_build_options(p: argparse.ArgumentParser) -> None:
    """`kwtrain build` options of this module."""
    p.add_argument(
        "--fetch-background",
        action="store_true",
        default=_truthy(os.environ.get(FETCH_ENV)),
        help="without --background or ../shared: download public real background audio "
        f"(kwtrain fetch-background --list) into the cache (default off; env {FETCH_ENV}=1)",
    )


@dataclass(frozen=True)
class Choice:
    """The background folders a build uses and what it says about them."""

    roots: tuple[Path, ...]
    sources: tuple[str, ...]  # human-readable: where each root came from
    warning: str | None = None


def room_root(data: Path | None) -> Path | None:
    """DATA when DATA/background/ holds recorded audio, else None."""
    if data is None:
        return None
    folder = Path(data) / ROOM_LABEL
    if folder.is_dir() and any(p.suffix.lower() in (".wav", ".flac") for p in folder.iterdir()):
        return Path(data)
    return None


def choose(
    base: Path | None, data: Path | None, allow_fetch: bool, cache: Path | None = None, log=None
) -> Choice:
    """The background of a build (see the module docstring for the order)."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    roots: list[Path] = []
    sources: list[str] = []
    if base is not None:
        roots.append(Path(base))
        sources.append(f"folder {base}")
    room = room_root(data)
    if room is not None:
        roots.append(room)
        sources.append(f"your room ({room / ROOM_LABEL})")
    if base is None:
        have = fetch.fetched_sources(cache)
        if allow_fetch:
            try:
                have = sorted(fetch.fetch(cache=cache, log=log)["sources"])
            except fetch.FetchError as exc:
                log(f"kwtrain build: could not fetch background audio: {exc}")
        if have:
            roots.append(fetch.fetched_dir(cache))
            sources.append(f"fetched: {', '.join(have)}")
    warning = None
    if not roots:
        warning = (
            "kwtrain build: no real background audio: negatives are generated speech only and "
            "the threshold is not calibrated on real audio. "
            + fetch.OFFLINE_ADVICE[0].upper()
            + fetch.OFFLINE_ADVICE[1:]
        )
    return Choice(tuple(roots), tuple(sources), warning)


def calibrated_on(roots: tuple[Path, ...] | list[Path]) -> dict[str, float]:
    """Hours per group (and source) of the calibration part of these folders."""
    if not roots:
        return {}
    return negatives.hours(negatives.background(list(roots)), "calibration")
