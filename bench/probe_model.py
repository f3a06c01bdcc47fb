"""Probe cases against the model process handling: rogue .eim executables through the real SDK.

devkit/rogue_eim.py writes them; EdgeML (edgeml/edgeml.py) drives them as it drives an exported
model, and the real app process where the promise is about the app.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
from probe_core import case, kill_pids

from devkit.paths import EDGE_MAIN
from devkit.rogue_eim import alive_pids, write_rogue_eim
from edgeml.edgeml import EdgeML, ModelCrashed, ModelError

WINDOW = np.zeros(16000, dtype=np.int16)


def _model(ctx, name: str, **behaviour):
    return write_rogue_eim(ctx.root / "eims" / f"{name}.eim", **behaviour)


def _classify_n(model: EdgeML, n: int) -> tuple[int, list]:
    """Classify n windows, restarting after a crash as the app does: (restarts, last results)."""
    results = []
    for _ in range(n):
        try:
            results.append(model.classify(WINDOW))
        except ModelCrashed as exc:
            results.append(f"crash: {str(exc)[:50]}")
            model.restart()
    return model.restarts, results


@case("model", "a log frame before the hello's reply",
      "the model starts (a frame that is not the reply is skipped)")  # fmt: skip
def junk_before_hello(ctx):
    path = _model(ctx, "junk", junk_before_hello=b"INFO: loading model...\n\x00")
    model = EdgeML(path, start_timeout=5)
    try:
        model.start()
        scores = model.classify(WINDOW)
        return True, f"started, scores {scores}"
    except (ModelError, ModelCrashed) as exc:
        return False, f"{type(exc).__name__}: {str(exc)[:70]}"
    finally:
        model.stop()


@case("model", "every reply sent twice", "stale duplicates skipped: no restarts")
def replies_twice(ctx):
    path = _model(ctx, "twice", twice=True)
    with EdgeML(path, call_timeout=2.0) as model:
        restarts, results = _classify_n(model, 6)
    return restarts == 0, f"{restarts} restarts: {results[-1]}"


@case("model", "replies carry another message's id", "a crash: restarted, never trusted")
def wrong_id(ctx):
    path = _model(ctx, "wrongid", wrong_id=True)
    with EdgeML(path, call_timeout=2.0) as model:
        restarts, results = _classify_n(model, 2)
    return restarts == 2 and all(isinstance(r, str) for r in results), f"{results[-1]}"


@case("model", "a NUL byte inside the reply's JSON", "a crash within the call deadline")
def nul_inside(ctx):
    path = _model(ctx, "nul", nul_inside=True)
    with EdgeML(path, call_timeout=2.0) as model:
        t0 = time.monotonic()
        restarts, results = _classify_n(model, 1)
    return restarts == 1 and time.monotonic() - t0 < 4, f"{results[-1]}"


def _score_case(name: str, scores: str):
    @case("model", f"scores {name}", "a bad reply (restart), never a keyword score")
    def score_case(ctx):
        path = _model(ctx, f"scores-{abs(hash(name))}", scores=scores)
        with EdgeML(path, call_timeout=2.0) as model:
            restarts, results = _classify_n(model, 1)
        return restarts == 1, f"{results[-1]}"

    return score_case


_score_case("Infinity", '{"listen": Infinity, "noise": 0.5}')
_score_case("1e308", '{"listen": 1e308, "noise": 0.5}')
_score_case("NaN", '{"listen": NaN, "noise": 0.5}')
_score_case("-3", '{"listen": -3, "noise": 0.5}')
_score_case("as strings", '{"listen": "0.99", "noise": "0.01"}')
_score_case("without the keyword's label", '{"noise": 0.5}')


@case("model", "closes its socket after the hello (real app, 12 s)",
      "restarted with backoff: at most 6 starts")  # fmt: skip
def closes_after_hello(ctx):
    pids = ctx.scratch("close-after-hello") / "pids"
    pids.unlink(missing_ok=True)
    path = _model(ctx, "closer", close_after_hello=True, pid_file=pids)
    proc = subprocess.Popen([sys.executable, str(EDGE_MAIN), "--model", path, "--input",
                             ctx.silence, "--input-speed", "realtime", "--spool-dir",
                             ctx.scratch("close-spool")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(12)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    starts = len(set(pids.read_text().split())) if pids.exists() else 0
    left = alive_pids(pids)
    kill_pids(left)
    return 1 <= starts <= 6 and not left, f"{starts} starts, {len(left)} left running"


@case("model", "forks at start and the parent exits (the child serves)",
      "no model process is left running when the app gives up or stops")  # fmt: skip
def fork_and_exit(ctx):
    pids = ctx.scratch("fork-exit") / "pids"
    pids.unlink(missing_ok=True)
    path = _model(ctx, "forker", fork_exit=True, pid_file=pids)
    model = EdgeML(path, start_timeout=5)
    try:
        model.start()
        outcome = "started"
    except ModelError as exc:
        outcome = f"ModelError: {str(exc)[:40]}"
    finally:
        model.stop()
    time.sleep(0.5)
    left = alive_pids(pids)
    kill_pids(left)
    return not left, f"{outcome}; {len(left)} process(es) left running"


@case("model", "starts a helper child process", "stop and restart leave no process behind")
def helper_child(ctx):
    pids = ctx.scratch("helper") / "pids"
    pids.unlink(missing_ok=True)
    path = _model(ctx, "helper", helper_child=True, pid_file=pids)
    with EdgeML(path) as model:
        model.restart()
    time.sleep(0.5)
    left = alive_pids(pids)
    kill_pids(left)
    return not left, f"{len(left)} process(es) left running"


@case("model", "ignores SIGINT and SIGTERM (real app)",
      "the app stops within 5 s of SIGTERM; the model is gone")  # fmt: skip
def ignores_signals(ctx):
    pids = ctx.scratch("ignore") / "pids"
    pids.unlink(missing_ok=True)
    path = _model(ctx, "deaf", ignore_signals=True, pid_file=pids)
    proc = subprocess.Popen([sys.executable, str(EDGE_MAIN), "--model", path, "--input",
                             ctx.silence, "--input-speed", "realtime", "--spool-dir",
                             ctx.scratch("ignore-spool")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(4)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    seconds = time.monotonic() - t0
    left = alive_pids(pids)
    kill_pids(left)
    return seconds < 5 and not left, f"stopped in {seconds:.1f} s, {len(left)} left"
