"""scripts/check-disk.sh: `.ci/run`'s first step says plainly when the disk is too small.

A run that started with 1.2 GB free once failed inside pip with "No space left on device"; the
check exists so that such a run stops at once, naming the folder, what it has and what it needs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devkit.paths import REPO

SCRIPT = REPO / "scripts" / "check-disk.sh"
PETABYTE_MIB = 1 << 30


def check(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CI_DISK_")}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env={**full_env, **env}, timeout=30)  # fmt: skip


def test_enough_space_passes_and_says_what_it_found(tmp_path: Path) -> None:
    done = check("1", "1", TMPDIR=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "MiB free" in done.stdout


def test_too_little_space_fails_naming_the_folder_and_the_figures(tmp_path: Path) -> None:
    done = check(str(PETABYTE_MIB), "1", TMPDIR=str(tmp_path))
    assert done.returncode == 1
    free = shutil.disk_usage(REPO).free >> 20
    assert "not enough disk" in done.stderr
    assert str(REPO.resolve()) in done.stderr
    same_fs = os.stat(tmp_path).st_dev == os.stat(REPO).st_dev
    assert f"needs about {PETABYTE_MIB + same_fs} MiB" in done.stderr  # one file system: the sum
    # what it reports as free is this file system's free space (within what others write meanwhile)
    reported = int(done.stderr.split(" has ")[1].split(" MiB")[0])
    assert abs(reported - free) < 512
    assert "Traceback" not in done.stderr


def test_needs_add_up_when_checkout_and_tmp_share_a_file_system(tmp_path: Path) -> None:
    if os.stat(tmp_path).st_dev != os.stat(REPO).st_dev:
        pytest.skip("the temporary folder is on another file system here")
    free = shutil.disk_usage(REPO).free >> 20
    half = free // 2 + 256  # each half fits alone, the sum does not
    done = check(str(half), str(half), TMPDIR=str(tmp_path))
    assert done.returncode == 1, done.stdout
    assert str(2 * half) in done.stderr


def test_environment_sets_the_needs_and_can_turn_the_check_off(tmp_path: Path) -> None:
    big = {"CI_DISK_CHECKOUT_MIB": str(PETABYTE_MIB), "TMPDIR": str(tmp_path)}
    assert check(**big).returncode == 1
    skipped = check(**big, CI_DISK_CHECK="0")
    assert skipped.returncode == 0
    assert "skipped" in skipped.stdout


@pytest.mark.parametrize("args", [("lots", "1"), ("1", "-5"), ("1.5", "1")])
def test_a_need_that_is_not_a_whole_number_is_named(args: tuple[str, str], tmp_path: Path) -> None:
    done = check(*args, TMPDIR=str(tmp_path))
    assert done.returncode == 1
    bad = next(a for a in args if not a.isdigit())
    assert f"'{bad}' is not a whole number of MiB" in done.stderr


def test_a_missing_temporary_folder_is_named(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    done = check("1", "1", TMPDIR=str(gone))
    assert done.returncode == 1
    assert f"the temporary folder {gone} does not exist" in done.stderr


def test_separate_file_systems_are_checked_each_against_its_own_need() -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(REPO).st_dev:
        pytest.skip("no second file system (/dev/shm) here")
    done = check("1", str(PETABYTE_MIB), TMPDIR=str(shm))
    assert done.returncode == 1
    assert f"{REPO.resolve()} has" in done.stdout  # the checkout had enough, and is said to
    assert f"{shm} has" in done.stderr and f"needs about {PETABYTE_MIB} MiB" in done.stderr
