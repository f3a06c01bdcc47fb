#!/usr/bin/env bash
# `make arm64-check`: the device side (edgeml/) installed and run on arm64, the architecture of a
# Raspberry Pi with Raspberry Pi OS (= Debian bookworm arm64), on an x86_64 Debian machine under
# qemu user-mode emulation. Needs root (or sudo) and network access to the Debian mirror and PyPI.
#
#   1. host packages     debootstrap, qemu-user-static, binfmt-support (only the missing ones)
#   2. binfmt            binfmt_misc mounted, qemu-aarch64 registered (so arm64 ELF files run)
#   3. arm64 root        debootstrap --arch=arm64 --foreign + --second-stage in $ARM64_ROOT,
#                        reused when complete (stamp files: a second run skips 3 and 4)
#   4. inside the root   Debian packages (python3, gcc, portaudio19-dev, espeak-ng, ...), a venv
#                        with the device app's requirements from PyPI (aarch64 wheels, pyaudio
#                        built from source) plus the test tools
#   5. tests             the device app's tests that need no sound server and no scoring service,
#                        under qemu (`uname -m` inside: aarch64)
#   6. the app           the installed `edgeml` command (the project's wheel, built on the host: it is
#                        pure Python) --input <demo WAV> --input-speed fast --once with the keyword model shipped inside
#                        the package, against the real scoring service (azmlinfsrv, on the host)
#
# Writes bench/results/arm64_check.log (phases, timings, versions, test summary, the app's output)
# and bench/results/arm64_check.json; the full output of each phase goes to
# build/arm64-check/logs/. Exit codes: 0 all passed, 1 a step failed, 2 this machine cannot run
# the check (not root and no sudo, not x86_64/Debian, binfmt_misc not mountable, no .venv).
#
# `scripts/arm64_check.sh --clean` (make arm64-clean) only removes the root, unmounting first.
# Settings (environment): ARM64_ROOT (build/arm64-root), ARM64_FRESH=1 (remove the root first:
# a cold run), ARM64_MIRROR (http://deb.debian.org/debian), ARM64_SERVICE_MODEL (whisper |
# tiny-ctc), ARM64_PYTEST_ARGS (extra pytest arguments), ARM64_*_TIMEOUT (seconds per phase).
set -Eeuo pipefail

# ================================================================ project layout
# The only lines that know where the device app lives. Paths are relative to the repository
# root, which the arm64 root sees (read-only) at $CHROOT_REPO.
EDGE_PIP_INSTALL=(-r requirements-edge.txt)       # the device app's dependencies (cached venv)
EDGE_PIP_INPUTS=(requirements-edge.txt)           # files whose change means: rebuild the venv
EDGE_APP=edgeml                                   # the console command `pip install .` makes
TEST_PATHS=(tests/edge tests/kws/test_listen_model.py)            # the device app's tests ...
TEST_MARKEXPR="not sound_server and not scoring_service and not package_index and not native_speed"  # (pyproject;
# package_index: the x86 wheel-install test, which this check does itself in 4b/4c;
# native_speed: wall-clock budgets of a native CPU, missed under emulation on a loaded host)
TEST_PIP=(pytest pytest-timeout)                  # test-only packages
HOST_PY=.venv/bin/python                          # `make setup`: demo audio + scoring service
APP_HELPER=scripts/arm64/app_check.py             # host side of step 6
SUMMARY_HELPER=scripts/arm64/summary.py           # the JSON result, with the history of runs
# Debian packages inside the root: the device's build and run needs, espeak-ng for the tests.
ROOT_PACKAGES=(python3 python3-venv python3-dev gcc libc6-dev portaudio19-dev libsndfile1
               espeak-ng ca-certificates)
# ============================================================================================

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"
ROOT=${ARM64_ROOT:-build/arm64-root}
ROOT=$(mkdir -p "$(dirname "$ROOT")" && cd "$(dirname "$ROOT")" && pwd -P)/$(basename "$ROOT")
SUITE=bookworm
MIRROR=${ARM64_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${ARM64_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
CHROOT_REPO=/src                    # the checkout, bind-mounted read-only inside the root
VENV=/opt/edgeml-venv               # the device app's venv, inside the root
STAMPS=$ROOT/.arm64-check           # stamp files of the completed steps, inside the root
WORK=$REPO/build/arm64-check        # phase logs (host side)
APP_WORK_INSIDE=/tmp/arm64-check/app
RESULTS=$REPO/bench/results
LOG=$RESULTS/arm64_check.log
JSON=$RESULTS/arm64_check.json
SERVICE_MODEL=${ARM64_SERVICE_MODEL:-whisper}
T_HOST_APT=${ARM64_HOST_APT_TIMEOUT:-900}
T_DEBOOTSTRAP=${ARM64_DEBOOTSTRAP_TIMEOUT:-1800}
T_SECOND_STAGE=${ARM64_SECOND_STAGE_TIMEOUT:-2400}
T_ROOT_APT=${ARM64_ROOT_APT_TIMEOUT:-2400}
T_VENV=${ARM64_VENV_TIMEOUT:-2400}
T_TESTS=${ARM64_TESTS_TIMEOUT:-2400}
T_APP=${ARM64_APP_TIMEOUT:-900}

CLEAN=0
case "${1:-}" in
  --clean) CLEAN=1; LOG=/dev/null; JSON=/dev/null ;;
  "") ;;
  *) echo "usage: $0 [--clean]" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  # chroot, mount and debootstrap need root: run the whole script under sudo.
  command -v sudo >/dev/null \
    || { echo "error: needs root (chroot, mount, debootstrap) and sudo is not installed" >&2; exit 2; }
  exec sudo --preserve-env=ARM64_ROOT,ARM64_FRESH,ARM64_MIRROR,ARM64_SECURITY_MIRROR,ARM64_SERVICE_MODEL,ARM64_PYTEST_ARGS,ARM64_HOST_APT_TIMEOUT,ARM64_DEBOOTSTRAP_TIMEOUT,ARM64_SECOND_STAGE_TIMEOUT,ARM64_ROOT_APT_TIMEOUT,ARM64_VENV_TIMEOUT,ARM64_TESTS_TIMEOUT,ARM64_APP_TIMEOUT \
    bash "$0" "$@"
fi
mkdir -p "$WORK/logs" "$RESULTS"
# One run per root at a time: a second one would take the first one's processes for leftovers.
exec 9>"$ROOT.lock"
flock -n 9 || { echo "error: another arm64-check is running on $ROOT (lock: $ROOT.lock)" >&2; exit 2; }
[ $CLEAN = 1 ] || : >"$LOG"
START=$EPOCHREALTIME
PHASES_JSON=()
FAILED=""
MOUNTS=()

say() { printf '%s\n' "$*" | tee -a "$LOG"; }
die() { say "error: $2"; FAILED=${FAILED:-${3:-setup}}; exit "$1"; }   # die CODE MESSAGE [PHASE]
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# run_phase NAME CMD...: one step, its output in build/arm64-check/logs/NAME.log, its time and
# result in the log; on failure shows the end of its output and returns the exit code.
# (CMD runs as a background job: `set -e` holds inside it, which `CMD || ...` would switch off.)
PHASE_PID=""
run_phase() {
  local name=$1; shift
  local plog=$WORK/logs/$name.log t0=$EPOCHREALTIME rc=0 dt
  say "== $name ($(date -u +%H:%M:%S))"
  "$@" >"$plog" 2>&1 </dev/null &
  PHASE_PID=$!
  wait "$PHASE_PID" || rc=$?
  PHASE_PID=""
  dt=$(elapsed "$t0" "$EPOCHREALTIME")
  PHASES_JSON+=("{\"phase\": \"$name\", \"seconds\": $dt, \"ok\": $([ $rc -eq 0 ] && echo true || echo false)}")
  if [ $rc -ne 0 ]; then
    [ $rc -eq 124 ] && say "   timed out (the phase's timeout; see ARM64_*_TIMEOUT)"
    say "   FAILED (exit $rc) after ${dt} s; last lines of $plog:"
    tail -n 40 "$plog" | sed 's/^/   | /' | tee -a "$LOG"
    return $rc
  fi
  say "   ok, ${dt} s"
}
phase() { run_phase "$@" || { FAILED=$1; exit 1; }; }   # a step the next ones need

kill_tree() {  # kill_tree PID: that process and its descendants (ours: a phase still running)
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$child"; done
  kill -TERM "$1" 2>/dev/null || true
}

# skipped NAME WHY: a phase whose result is already there (stamp).
skipped() {
  say "== $1: skipped, $2"
  PHASES_JSON+=("{\"phase\": \"$1\", \"seconds\": 0, \"ok\": true, \"skipped\": true}")
}

# ---------------------------------------------------------------- mounts and clean-up
mounted_under() {  # mount points at or below $1, deepest first
  awk -v r="$1" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

processes_in_root() {  # pids whose root directory is the arm64 root (only ours run there)
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && echo "${p#/proc/}"
  done
  return 0
}

unmount_root() {
  local pids p m
  pids=$(processes_in_root)
  if [ -n "$pids" ]; then
    kill -TERM $pids 2>/dev/null || true
    sleep 2
    for p in $(processes_in_root); do kill -KILL "$p" 2>/dev/null || true; done
  fi
  for m in $(mounted_under "$ROOT"); do
    umount "$m" 2>/dev/null || umount -l "$m" || say "warning: could not unmount $m"
  done
  MOUNTS=()
  if [ -n "$(mounted_under "$ROOT")" ]; then
    say "error: still mounted under $ROOT: $(mounted_under "$ROOT" | tr '\n' ' ')"
    return 1
  fi
}

mount_root() {
  bind_mount() { mkdir -p "$2"; mount "${@:3}" "$1" "$2"; MOUNTS+=("$2"); }
  bind_mount proc "$ROOT/proc" -t proc
  bind_mount sysfs "$ROOT/sys" -t sysfs
  # Under qemu-user the arm64 programs see the x86 host's CPU topology in sysfs next to a
  # /proc/cpuinfo in x86 format; onnxruntime's cpuinfo (pytorch/cpuinfo) crashes at import on
  # that mix (SIGSEGV, measured with onnxruntime 1.32.0 and qemu 7.2). With the CPU folder
  # empty it reports "failed to parse" and falls back to defaults, as on a container without
  # sysfs. A real Pi has a consistent pair; this only masks the emulator's inconsistency.
  bind_mount tmpfs "$ROOT/sys/devices/system/cpu" -t tmpfs -o ro,size=4k,mode=0555
  bind_mount /dev "$ROOT/dev" --bind
  bind_mount /dev/pts "$ROOT/dev/pts" --bind
  bind_mount tmpfs "$ROOT/dev/shm" -t tmpfs -o mode=1777,nosuid,nodev
  bind_mount "$REPO" "$ROOT$CHROOT_REPO" --bind
  mount -o remount,bind,ro "$ROOT$CHROOT_REPO"   # nothing arm64 lands in the checkout
  # The host's name resolution and trust store (a TLS-inspecting proxy's CA included).
  cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
  cp -L /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/host-ca-certificates.crt"
}

remove_root() {  # only with nothing mounted inside (it holds bind mounts of /dev and the checkout)
  unmount_root
  [ -z "$(mounted_under "$ROOT")" ] || die 1 "refusing to remove $ROOT: mounts inside"
  rm -rf --one-file-system "$ROOT"
}

finish() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  [ -n "$PHASE_PID" ] && kill_tree "$PHASE_PID"
  [ -d "$ROOT" ] && unmount_root
  [ $CLEAN = 1 ] && exit $rc
  [ -n "$FAILED" ] || [ $rc -eq 0 ] || FAILED=unknown
  local total; total=$(elapsed "$START" "$EPOCHREALTIME")
  say "== total ${total} s: $([ $rc -eq 0 ] && echo PASSED || echo "FAILED ($FAILED)")"
  {
    printf '{\n  "ok": %s,\n  "exit_code": %s,\n  "failed_phase": %s,\n' \
      "$([ $rc -eq 0 ] && echo true || echo false)" "$rc" \
      "$([ -n "$FAILED" ] && echo "\"$FAILED\"" || echo null)"
    printf '  "run": "%s",\n  "started_utc": "%s",\n  "total_seconds": %s,\n' \
      "$RUN_KIND" "$STARTED_UTC" "$total"
    printf '  "inside": %s,\n  "tests": %s,\n  "app": %s,\n' \
      "${INSIDE_JSON:-null}" "${TESTS_JSON:-null}" "${APP_JSON:-null}"
    printf '  "phases": [%s]\n}\n' "$(IFS=,; echo "${PHASES_JSON[*]}")"
  } >"$WORK/current.json"
  python3 "$SUMMARY_HELPER" "$WORK/current.json" "$JSON" | tee -a "$LOG"
  [ -n "${SUDO_UID:-}" ] && chown "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$LOG" "$JSON" 2>/dev/null
  exit $rc
}
RUN_KIND=unknown
STARTED_UTC=$(date -u +%Y-%m-%dT%H:%M:%SZ)
trap finish EXIT
trap 'FAILED=${FAILED:-interrupted}; exit 130' INT TERM

# run a command inside the arm64 root, with a clean environment
in_root() {
  local t=$1; shift
  timeout --kill-after=30 "$t" chroot "$ROOT" /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    TERM=dumb DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_CERT=/etc/host-ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=60 PIP_NO_INPUT=1 "$@"
}

# ================================================================ 0. can this machine run it?
say "arm64-check: the device side on Debian $SUITE arm64 under qemu ($STARTED_UTC)"
say "host: $(uname -srm), $(nproc) cores; root: $ROOT"
if [ $CLEAN = 1 ]; then
  [ -e "$ROOT" ] && remove_root
  say "removed $ROOT"
  exit 0
fi
[ "$(uname -m)" = x86_64 ] || die 2 "this check is for an x86_64 host (here: $(uname -m))"
command -v apt-get >/dev/null && command -v dpkg-query >/dev/null \
  || die 2 "needs a Debian/Ubuntu host (apt-get, dpkg-query)"
[ -x "$HOST_PY" ] || die 2 "$HOST_PY is missing: run \`make setup\` (the scoring service and demo audio run on the host)"

if [ "${ARM64_FRESH:-0}" = 1 ] && [ -e "$ROOT" ]; then
  say "ARM64_FRESH=1: removing $ROOT (a cold run)"
  remove_root
fi
[ -e "$STAMPS/base.done" ] && RUN_KIND=warm || RUN_KIND=cold
say "run: $RUN_KIND ($([ $RUN_KIND = warm ] && echo "the root is reused" || echo "the root is built from nothing"))"

# ================================================================ 1. host packages
host_packages() {
  local packages=(debootstrap qemu-user-static binfmt-support debian-archive-keyring) missing=() p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then echo "all installed: ${packages[*]}"; return 0; fi
  echo "Installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout "$T_HOST_APT" apt-get update -qq
  timeout "$T_HOST_APT" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
phase host-packages host_packages

# ================================================================ 2. binfmt_misc + qemu-aarch64
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e "$BINFMT/register" ]; then
  mount -t binfmt_misc binfmt_misc "$BINFMT" 2>"$WORK/logs/binfmt-mount.log" \
    || die 2 "binfmt_misc is not mountable here ($(cat "$WORK/logs/binfmt-mount.log")): arm64 programs cannot run under qemu on this machine (a container needs --privileged or the host's binfmt_misc)" binfmt
fi
if [ ! -e "$BINFMT/qemu-aarch64" ]; then
  # What systemd-binfmt/update-binfmts would do; the package's own line, flags F (the interpreter
  # is opened now, so the root needs no copy of it), P, O.
  line=$(grep -h '^:qemu-aarch64:' /usr/lib/binfmt.d/qemu-aarch64.conf 2>/dev/null || true)
  [ -n "$line" ] || line=':qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F'
  printf '%s' "$line" >"$BINFMT/register" 2>"$WORK/logs/binfmt-register.log" \
    || die 2 "could not register qemu-aarch64 in binfmt_misc: $(cat "$WORK/logs/binfmt-register.log")" binfmt
fi
grep -q '^enabled' "$BINFMT/qemu-aarch64" || die 2 "qemu-aarch64 is registered but disabled ($BINFMT/qemu-aarch64)" binfmt
grep -q '^enabled' "$BINFMT/status" || die 2 "binfmt_misc is disabled ($BINFMT/status)" binfmt
say "binfmt: qemu-aarch64 $(sed -n 's/^interpreter //p' "$BINFMT/qemu-aarch64"), flags $(sed -n 's/^flags: //p' "$BINFMT/qemu-aarch64"); $(qemu-aarch64-static --version | head -1)"

# ================================================================ 3. the arm64 root
stale_mounts=$(mounted_under "$ROOT" | wc -l) stale_pids=$(processes_in_root | wc -l)
if [ "$stale_mounts" -gt 0 ] || [ "$stale_pids" -gt 0 ]; then   # a killed run (SIGKILL skips the trap)
  say "cleaning up after an earlier run: $stale_pids processes in the root, $stale_mounts mounts"
  unmount_root
fi
if [ ! -e "$STAMPS/base.done" ]; then
  [ -e "$ROOT" ] && { say "$ROOT is incomplete (no stamp): building it again"; remove_root; }
  mkdir -p "$ROOT"
  phase debootstrap-first-stage timeout "$T_DEBOOTSTRAP" \
    debootstrap --arch=arm64 --foreign --variant=minbase "$SUITE" "$ROOT" "$MIRROR"
  cp /usr/bin/qemu-aarch64-static "$ROOT/usr/bin/"   # for a binfmt registration without F
  phase debootstrap-second-stage timeout --kill-after=30 "$T_SECOND_STAGE" \
    chroot "$ROOT" /debootstrap/debootstrap --second-stage
  mkdir -p "$STAMPS"
  echo "$SUITE arm64 from $MIRROR, $(date -u +%FT%TZ)" >"$STAMPS/base.done"
else
  skipped debootstrap "root complete ($(cat "$STAMPS/base.done"))"
fi

mount_root

# ---------------------------------------------------------------- 4a. Debian packages inside
root_packages() {
  cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
  printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"   # no services start in the root
  chmod +x "$ROOT/usr/sbin/policy-rc.d"
  in_root "$T_ROOT_APT" apt-get update -q
  in_root "$T_ROOT_APT" apt-get install -y -q --no-install-recommends "${ROOT_PACKAGES[@]}"
  in_root 300 apt-get clean
  echo "${ROOT_PACKAGES[*]}" >"$STAMPS/packages.done"
}
if [ "$(cat "$STAMPS/packages.done" 2>/dev/null)" != "${ROOT_PACKAGES[*]}" ]; then
  phase root-packages root_packages
else
  skipped root-packages "installed: ${ROOT_PACKAGES[*]}"
fi

# ---------------------------------------------------------------- 4b. the device app's venv
venv_key=$( { printf '%s\n' "${EDGE_PIP_INSTALL[@]}" "${TEST_PIP[@]}"; cat "${EDGE_PIP_INPUTS[@]}"; } | sha256sum | cut -c1-16)
root_venv() {
  rm -rf "${ROOT:?}$VENV"
  in_root 600 python3 -m venv "$VENV"
  in_root "$T_VENV" sh -c "cd $CHROOT_REPO && $VENV/bin/pip install $(printf '%q ' "${EDGE_PIP_INSTALL[@]}" "${TEST_PIP[@]}")"
  in_root 600 "$VENV/bin/pip" check
  echo "$venv_key" >"$STAMPS/venv.done"
}
if [ "$(cat "$STAMPS/venv.done" 2>/dev/null)" != "$venv_key" ] || [ ! -x "$ROOT$VENV/bin/python" ]; then
  phase root-venv root_venv
else
  skipped root-venv "$VENV is up to date with ${EDGE_PIP_INPUTS[*]} (key $venv_key)"
fi

# ---------------------------------------------------------------- 4c. the project, as pip installs it
# Every run: the wheel of this checkout (pure Python, so built on the host) into the root's venv,
# as `pip install .` does on a Pi; its dependencies are already there (4b).
root_project() {
  local wheels=$ROOT/tmp/arm64-check/wheel
  rm -rf "$wheels" && mkdir -p "$wheels"
  timeout 600 "$HOST_PY" -m pip wheel --no-deps -q --disable-pip-version-check -w "$wheels" .
  in_root 600 sh -c "$VENV/bin/pip install -q --no-deps --force-reinstall /tmp/arm64-check/wheel/*.whl"
  in_root 300 "$VENV/bin/pip" check
}
phase root-project root_project

# ---------------------------------------------------------------- proof: this is arm64
inside_report() {
  in_root 120 uname -m
  in_root 300 "$VENV/bin/python" - <<'EOF'
import json, platform, sys
import numpy, scipy, soundfile, soxr, cv2, pyaudio, edge_impulse_linux  # noqa: F401
info = {
    "uname_m": platform.machine(),
    "python": platform.python_version(),
    "numpy": numpy.__version__,
    "scipy": scipy.__version__,
    "opencv": cv2.__version__,
    "pyaudio": pyaudio.__version__,
    "portaudio": pyaudio.get_portaudio_version_text(),
    "soundfile": soundfile.__version__,
    "libsndfile": soundfile.__libsndfile_version__,
    "soxr": soxr.__version__,
    "debian": open("/etc/debian_version").read().strip(),
}
print("INSIDE_JSON " + json.dumps(info))
EOF
  in_root 300 "$VENV/bin/pip" freeze
}
phase inside inside_report
machine=$(sed -n 1p "$WORK/logs/inside.log")
INSIDE_JSON=$(sed -n 's/^INSIDE_JSON //p' "$WORK/logs/inside.log")
say "   uname -m inside the root: $machine"
say "   $(printf '%s' "$INSIDE_JSON" | tr -d '{}"')"
say "   pip freeze: $(sed -n '/==/p' "$WORK/logs/inside.log" | paste -sd' ')"
[ "$machine" = aarch64 ] || { FAILED=inside; die 1 "uname -m inside the root is '$machine', not aarch64"; }

# ================================================================ 5. the device app's tests
run_tests() {
  rm -rf "$ROOT/tmp/arm64-check/pytest"
  mkdir -p "$ROOT/tmp/arm64-check/pytest"
  # shellcheck disable=SC2086  # ARM64_PYTEST_ARGS: words on purpose
  in_root "$T_TESTS" sh -c "cd $CHROOT_REPO && exec $VENV/bin/python -m pytest -p no:cacheprovider\
 -q -ra --durations=10 --basetemp=/tmp/arm64-check/pytest/tmp\
 --junitxml=/tmp/arm64-check/pytest/junit.xml -m '$TEST_MARKEXPR' ${ARM64_PYTEST_ARGS:-}\
 ${TEST_PATHS[*]}"
}
test_counts() {  # junit.xml -> {"passed": .., "failed": .., "errors": .., "skipped": .., ...}
  python3 - "$ROOT/tmp/arm64-check/pytest/junit.xml" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot()
suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
n["passed"] = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
n["seconds"] = round(float(suite.get("time", 0)), 1)
print(json.dumps(n))
EOF
}
say "   tests: pytest -m '$TEST_MARKEXPR' ${TEST_PATHS[*]}"
tests_rc=0
run_phase tests run_tests || tests_rc=$?
TESTS_JSON=$(test_counts 2>/dev/null || echo null)
sed 's/^/   | /' "$WORK/logs/tests.log" >>"$LOG"   # pytest -q: compact, kept whole
say "   $(tail -n 1 "$WORK/logs/tests.log")"
say "   counts: $TESTS_JSON"

# ================================================================ 6. the app against the service
app_run() {
  # no --model: the keyword model shipped inside the installed package. --input-speed fast: the
  # replay waits for the keyword spotter, so every hop is classified; in real time the emulated
  # spotter (the speech-embedding .eim runs about 4x slower than real time under qemu on this
  # host) falls behind and skips hops, which says nothing about a Pi
  local app_args=("$VENV/bin/$EDGE_APP" --input {wav} --input-speed fast --once
                  --endpoint {endpoint} --spool-dir {spool} --save-dir {save})
  rm -rf "$ROOT$APP_WORK_INSIDE"
  timeout --kill-after=30 "$((T_APP + 360))" "$HOST_PY" "$APP_HELPER" \
    --work "$ROOT$APP_WORK_INSIDE" --inside "$APP_WORK_INSIDE" --model "$SERVICE_MODEL" \
    --timeout "$T_APP" -- \
    timeout --kill-after=30 "$T_APP" chroot "$ROOT" /usr/bin/env -i \
      PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 \
      sh -c "cd /tmp && exec ${app_args[*]}"
}
app_rc=0
run_phase app app_run || app_rc=$?
APP_JSON=$(sed -n 's/^APP_CHECK_JSON //p' "$WORK/logs/app.log")
say "   the app's run (the installed edgeml command under qemu, service on the host):"
grep -v '^APP_CHECK_JSON ' "$WORK/logs/app.log" | sed 's/^/   | /' >>"$LOG"
grep -E '^\[app\] (PASS|FAIL|transcript|exit code)' "$WORK/logs/app.log" | sed 's/^/   /'

if [ $tests_rc -ne 0 ] || [ $app_rc -ne 0 ]; then
  FAILED=$([ $tests_rc -ne 0 ] && echo tests)$([ $tests_rc -ne 0 ] && [ $app_rc -ne 0 ] && echo ,)$([ $app_rc -ne 0 ] && echo app)
  exit 1
fi
exit 0
