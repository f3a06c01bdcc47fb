"""Probe cases against the model process handling: rogue .eim executables through the real SDK.

devkit/rogue_eim.py writes them; EdgeML (edgeml/edgeml.py) drives them as it drives an exported
model, and the real app process where the promise is about the app. Round 3 (issue 23) adds the
trainer: kwtrain .eims started from callers without the app's Python, keywords and labels that
are paths, options or too long, and a data set whose bootstrap was interrupted.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

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


# ---------------------------------------------------------------- round 3: the trainer (issue 23)
# Variants of tests/kws/test_inputs.py and test_eim_launch.py, not the same inputs.
KWTRAIN = str(Path(sys.executable).parent / "kwtrain")
SDK_CALLER = (
    "import sys\nfrom edge_impulse_linux.runner import ImpulseRunner\n"
    "r = ImpulseRunner(sys.argv[1], allow_shm=False)\n"
    "try:\n    h = r.init()\n"
    "    n = h['model_parameters']['input_features_count']\n"
    "    print(sorted(r.classify([0] * n)['result']['classification']))\n"
    "finally:\n    r.stop()\n"
)


def _bare_python(ctx) -> Path:
    """A fresh venv's python3: no numpy, no onnxruntime (what an unactivated caller finds)."""

    def make() -> Path:
        venv = ctx.root / "bare-venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                       timeout=120)  # fmt: skip
        return venv / "bin" / "python3"

    return ctx.once("bare-python", make)


def _kwtrain_eim(ctx, python: str | None = None) -> Path:
    from kwtrain.mfcc.export import export_eim
    from kwtrain.mfcc.features import MfccConfig
    from kwtrain.mfcc.network import NetSpec
    from kwtrain.mfcc.runtime import KeywordModel

    spec = NetSpec(channels=(4,), num_labels=2)
    rng = np.random.default_rng(7)
    weights = {"conv1.weight": rng.normal(0, 0.3, (4, spec.num_cepstral, spec.kernel_size)),
               "conv1.bias": np.zeros(4), "dense.weight": rng.normal(0, 0.2, (2, spec.flat_size())),
               "dense.bias": np.zeros(2)}  # fmt: skip
    model = KeywordModel(labels=["hey_robot", "unknown"], mfcc=MfccConfig(), net=spec,
                         weights={k: v.astype(np.float32) for k, v in weights.items()},
                         name="probe", keyword="hey_robot")  # fmt: skip
    out = ctx.scratch("kw-eims") / f"robot-{'gone' if python else 'here'}.eim"
    return export_eim(model, out, python)


@case("model", "a kwtrain .eim started by the SDK from a caller whose PATH has a bare python3",
      "it classifies (the SDK's init() hung on the exit of the wrong python3)")  # fmt: skip
def eim_from_unactivated_caller(ctx):
    eim, bare = _kwtrain_eim(ctx), _bare_python(ctx)
    env = {"PATH": f"{bare.parent}:/usr/bin:/bin", "HOME": "/tmp"}
    try:
        out = subprocess.run([sys.executable, "-c", SDK_CALLER, str(eim)], env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    except subprocess.TimeoutExpired:
        return False, "ImpulseRunner.init() hung (60 s)"
    return out.returncode == 0 and "hey_robot" in out.stdout, (out.stdout or out.stderr)[-70:]


@case("model", "EdgeML with a .eim whose only Python lacks numpy (KWTRAIN_EIM_PYTHON bare)",
      "a ModelError naming how it ended and what it said, within seconds")  # fmt: skip
def eim_without_numpy_in_edgeml(ctx):
    import os

    eim = _kwtrain_eim(ctx, "/nonexistent/probe/python3")
    old = os.environ.get("KWTRAIN_EIM_PYTHON")
    os.environ["KWTRAIN_EIM_PYTHON"] = str(_bare_python(ctx))
    t0 = time.monotonic()
    try:
        EdgeML(eim, start_timeout=30).start()
        return False, "started?"
    except ModelError as exc:
        text = str(exc)
        took = time.monotonic() - t0
        return "needs numpy" in text and took < 10, f"{took:.1f} s: {text[-60:]}"
    finally:
        if old is None:
            os.environ.pop("KWTRAIN_EIM_PYTHON", None)
        else:
            os.environ["KWTRAIN_EIM_PYTHON"] = old


@case("model", "the app with a one-keyword model ('hey_robot', 'unknown'), no --keyword",
      "it runs with the model's only keyword and says so")  # fmt: skip
def one_keyword_model_in_the_app(ctx):
    eim = _kwtrain_eim(ctx)
    out = subprocess.run([sys.executable, str(EDGE_MAIN), "--model", eim, "--input", ctx.silence,
                          "--spool-dir", ctx.scratch("robot-spool"), "--log-level", "INFO"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    said = "keyword 'hey_robot' (the model's only keyword)" in out.stderr
    return out.returncode == 0 and said, f"exit {out.returncode}: {out.stderr.strip()[-60:]}"


def _keyword_case(label: str, argv: list[str]):
    @case("input", f"kwtrain {label}", "exit 2 with a message; nothing written; no traceback")
    def keyword_case(ctx):
        work = ctx.scratch(f"kw-{abs(hash(label))}")
        args = [a.replace("{out}", str(work / "out")) for a in argv]
        out = subprocess.run([KWTRAIN, *args], cwd=work, capture_output=True, text=True,
                             timeout=60)  # fmt: skip
        wrote = [p.name for p in work.rglob("*")]
        ok = out.returncode == 2 and "Traceback" not in out.stderr and not wrote
        return ok, f"exit {out.returncode}, {len(wrote)} files: {out.stderr.strip()[-50:]}"

    return keyword_case


_keyword_case(
    "bootstrap --keyword /tmp/abs", ["bootstrap", "--out", "{out}", "--keyword", "/tmp/abs"]
)
_keyword_case("build --keyword=--help", ["build", "--frontend", "mfcc", "--out", "{out}",
                                         "--keyword=--help"])  # fmt: skip
_keyword_case(
    "build --keyword '   ' (spaces only)", ["build", "--out", "{out}", "--keyword", "   "]
)
_keyword_case(
    "bootstrap, 33-character keyword",
    ["bootstrap", "--out", "{out}", "--keyword", "abcdefghij klmnopqrst uvwxyzabcde"],
)
_keyword_case(
    "train --keyword 'a\\tb' (tab)",
    ["train", "--data", "{out}", "--out", "{out}", "--keyword", "a\tb"],
)
_keyword_case("record --label ../../x", ["record", "--out", "{out}", "--label", "../../x"])
_keyword_case("prepare --label .hidden", ["prepare", "--out", "{out}", "--label", ".hidden"])


@case("input", "kwtrain bootstrap SIGINT during the noise clips, then train on it",
      "train refuses the half-made set (exit 2, 'incomplete'); bootstrap exits 130")  # fmt: skip
def interrupted_bootstrap_then_train(ctx):
    work = ctx.scratch("kw-interrupted")
    data = work / "data"
    proc = subprocess.Popen([KWTRAIN, "bootstrap", "--out", str(data), "--variants", "m2",
                             "--noise-clips", "200000"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any((data / "noise").glob("*.wav")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return False, "bootstrap did not stop within 60 s of SIGINT"
    out = subprocess.run([KWTRAIN, "train", "--data", str(data), "--out", str(work / "m"),
                          "--epochs", "1"], capture_output=True, text=True, timeout=300)  # fmt: skip
    ok = code == 130 and out.returncode == 2 and "incomplete" in out.stderr
    return ok, f"bootstrap exit {code}; train exit {out.returncode}: {out.stderr.strip()[-40:]}"
