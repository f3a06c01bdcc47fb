#!/usr/bin/env bash
# Says, before anything is installed, whether this machine has the disk a full `.ci/run` needs.
#
# Why: a run that starts with too little space fails minutes in, inside pip, with
# "[Errno 28] No space left on device", and leaves half a venv behind. Checking first names
# what is short, where, and by how much, and exits 1 without touching anything.
#
# Usage: scripts/check-disk.sh [CHECKOUT_MIB] [TMP_MIB]
#   CHECKOUT_MIB  free MiB needed where the checkout is (venvs, built test models, the arm64
#                 root); default $CI_DISK_CHECKOUT_MIB or 5000
#   TMP_MIB       free MiB needed in ${TMPDIR:-/tmp} (pytest's folders, pip's unpacking);
#                 default $CI_DISK_TMP_MIB or 1500
# When both are on one file system, their sum is needed there. CI_DISK_CHECK=0 skips the check.
# Why these figures: docs/architecture.md, "Tests and benchmarks".
set -euo pipefail

[ "${CI_DISK_CHECK:-1}" = "0" ] && { echo "disk check skipped (CI_DISK_CHECK=0)"; exit 0; }

checkout_need=${1:-${CI_DISK_CHECKOUT_MIB:-5000}}
tmp_need=${2:-${CI_DISK_TMP_MIB:-1500}}
checkout=$(cd "$(dirname "$0")/.." && pwd -P)
tmp=${TMPDIR:-/tmp}

for n in "$checkout_need" "$tmp_need"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "error: disk check: '$n' is not a whole number of MiB" >&2; exit 1; }
done
[ -d "$tmp" ] || { echo "error: disk check: the temporary folder $tmp does not exist" >&2; exit 1; }

free_mib() { df -Pm "$1" | awk 'NR == 2 { print $4 }'; }
device() { stat -c %d "$1"; }

short() {  # path, needed MiB, what for
  local have
  have=$(free_mib "$1")
  if [ "$have" -lt "$2" ]; then
    echo "error: not enough disk: $1 has $have MiB free, a full run needs about $2 MiB there ($3)." >&2
    echo "       Free some space (old clones, build/arm64-root, ~/.cache/voice-to-text) and run again," >&2
    echo "       or set CI_DISK_CHECK=0 to try anyway." >&2
    return 1
  fi
  echo "disk: $1 has $have MiB free (needs about $2 MiB: $3)"
}

if [ "$(device "$checkout")" = "$(device "$tmp")" ]; then
  short "$checkout" $((checkout_need + tmp_need)) "checkout and $tmp share one file system"
else
  rc=0
  short "$checkout" "$checkout_need" "venvs, test models, arm64 root" || rc=1
  short "$tmp" "$tmp_need" "pytest's and pip's temporary files" || rc=1
  exit "$rc"
fi
