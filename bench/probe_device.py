"""Probe cases against the device side: delivery, the spool, the key, misbehaving answers, a fleet.

Real HTTP (devkit.fault_server), real files, the real app process (edgeml/main.py) where the
promise is about the app, and Delivery/CloudML in this process where it is about them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from probe_core import case, recording, run_app, wait_until

from devkit import fault_server as faults
from devkit.fault_server import FaultServer
from devkit.rogue_eim import write_rogue_eim
from edgeml.cloudml import CloudML, EndpointUnavailable
from edgeml.delivery import Delivery, Outcome
from edgeml.spool import Spool, SpoolFull

KEY = "probe-K3y_with/odd+chars=="


@contextlib.contextmanager
def _endpoint(**kw):
    server = FaultServer(**kw).start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def _delivering(url: str, spool: Spool, outcomes: list, **client_kw):
    client_kw.setdefault("retries", 0)
    client = CloudML(url, backoff_factor=0.05, connect_timeout=1.0, read_timeout=2.0, **client_kw)
    delivery = Delivery(client, spool, outcomes.append, min_backoff=0.1, max_backoff=0.5)
    delivery.start()
    try:
        yield delivery
    finally:
        delivery.stop(timeout=5)
        spool.close()


def _quiet_model(ctx) -> Path:
    return ctx.once("quiet-eim", lambda: write_rogue_eim(ctx.root / "eims" / "quiet.eim"))


def _app_args(ctx, url: str, spool: Path, *extra) -> list:
    return ["--model", _quiet_model(ctx), "--input", ctx.silence, "--input-speed", "realtime",
            "--endpoint", url, "--spool-dir", spool, "--log-level", "INFO", *extra]  # fmt: skip


# ============================================================================ a bad answer
@case("answer", "transcript with a newline and ANSI escapes (real app)",
      "printed as one line without control characters")  # fmt: skip
def control_characters(ctx):
    spool_dir = ctx.scratch("ansi-spool")
    spool = Spool(spool_dir)
    spool.add(recording(1))
    spool.close()
    with _endpoint() as server:
        server.faults.append(faults.answer_text("HELLO\nrm -rf /\x1b[2J\x1b]0;owned\x07 THERE\r"))
        result = run_app(_app_args(ctx, server.url, spool_dir), stop_after=6)
    lines = result.stdout.splitlines()
    clean = not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in result.stdout.replace("\n", ""))
    return len(lines) == 1 and clean, f"{len(lines)} line(s): {result.stdout[:60]!r}"


def _unavailable_fast(name: str, make_fault, within: float):
    @case("answer", name, f"EndpointUnavailable within {within:g} s, the recording kept")
    def answer_case(ctx):
        with _endpoint() as server:
            server.faults.append(make_fault())
            outcomes: list[Outcome] = []
            spool = Spool(ctx.scratch(f"answer-{name[:20]}"))
            with _delivering(server.url, spool, outcomes) as delivery:
                t0 = time.monotonic()
                seq = delivery.submit(recording(2))
                held = delivery.wait_for(seq, timeout=within + 5)
                seconds = time.monotonic() - t0
                kept = held is not None and held.kept
                delivered = wait_until(lambda: len(outcomes) == 1, 10)
        ok = kept and seconds < within and delivered
        err = str(held.error)[:70] if held is not None else "no outcome"
        return ok, f"{seconds:.1f} s: {err}; then delivered: {delivered}"

    return answer_case


_unavailable_fast("200 whose Content-Length promises more, connection held",
                  lambda: faults.short_body(500, hold=20.0), 5.0)  # fmt: skip
_unavailable_fast("200 whose Content-Length promises more, then closed",
                  lambda: faults.short_body(500), 3.0)  # fmt: skip
_unavailable_fast("a reset in the middle of the body", faults.reset_mid_body, 3.0)
_unavailable_fast("an endless stream of 100 Continue", faults.continue_flood, 5.0)


@case("answer", "308 redirect", "kept as misconfigured, not rejected")
def redirect_308(ctx):
    with _endpoint() as server:
        server.faults.append(faults.redirect("https://elsewhere.invalid/score", 308))
        client = CloudML(server.url, retries=0)
        try:
            client.transcribe(recording(3))
            return False, "accepted"
        except Exception as exc:  # noqa: BLE001
            return type(exc).__name__ == "EndpointMisconfigured", type(exc).__name__


@case("answer", "TLS endpoint with a certificate nobody signed",
      "refused before the key is sent; the recording kept")  # fmt: skip
def bad_certificate(ctx):
    import ssl

    d = ctx.scratch("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", d / "k.pem", "-out", d / "c.pem"],
                   check=True, capture_output=True)  # fmt: skip
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(d / "c.pem", d / "k.pem")
    with _endpoint(ssl_context=tls) as server:
        outcomes: list[Outcome] = []
        with _delivering(server.url, Spool(d / "spool"), outcomes, key=KEY) as delivery:
            held = delivery.wait_for(delivery.submit(recording(4)), timeout=10)
        reached = len(server.requests)
    ok = held is not None and held.kept and reached == 0 and KEY not in str(held.error)
    return ok, f"kept: {held is not None and held.kept}, requests that reached it: {reached}"


@case("answer", "endpoint host that does not resolve", "EndpointUnavailable within 15 s, kept")
def dns_failure(ctx):
    client = CloudML("https://no-such-host.invalid/score", retries=1, backoff_factor=0.05)
    t0 = time.monotonic()
    try:
        client.transcribe(recording(5))
        return False, "answered?"
    except EndpointUnavailable as exc:
        seconds = time.monotonic() - t0
        return seconds < 15, f"{seconds:.1f} s: {str(exc)[:60]}"


# ============================================================================ the fleet
def _retry_after_case(name: str, value, low: float, high: float):
    @case("fleet", f"503 with Retry-After {name}",
          f"next attempt {low:g}-{high:g} s later; delivery alive")  # fmt: skip
    def retry_case(ctx):
        with _endpoint() as server:
            server.faults.append((503, {"Retry-After": value() if callable(value) else value}))
            outcomes: list[Outcome] = []
            spool = Spool(ctx.scratch(f"ra-{random.random():.9f}"))
            with _delivering(server.url, spool, outcomes) as delivery:
                delivery.submit(recording(6))
                wait_until(lambda: len(server.requests) >= 1, 5)
                if high <= 10:  # the retry itself, seen by the endpoint
                    wait_until(lambda: len(server.requests) >= 2, high + 2)
                    times = [r.at for r in server.requests]
                    wait = times[1] - times[0] if len(times) > 1 else float("inf")
                else:  # too far off to wait for: what delivery scheduled
                    time.sleep(0.3)
                    wait = delivery._next_attempt - time.monotonic() + 0.3
                alive = delivery.alive
        ok = low <= wait <= high and alive
        return ok, f"next attempt {wait:.1f} s later, alive {alive}"

    return retry_case


def _http_date(seconds: float) -> str:
    from email.utils import formatdate

    return formatdate(time.time() + seconds, usegmt=True)


_retry_after_case("as an HTTP date 4 s ahead", lambda: _http_date(4), 3.0, 6.0)
_retry_after_case("-1", "-1", 0.0, 1.5)
_retry_after_case("'soon'", "soon", 0.0, 1.5)
_retry_after_case("1e9", "1e9", 0.0, 1.5)
_retry_after_case("10^20 seconds", "100000000000000000000", 3000.0, 4400.0)
_retry_after_case("an HTTP date in 1999", "Fri, 01 Jan 1999 00:00:00 GMT", 0.0, 1.5)


# ============================================================================ delivery stops
@case("delivery", "spool folder deleted while the app runs",
      "the next recording is still stored and delivered")  # fmt: skip
def spool_deleted(ctx):
    d = ctx.scratch("deleted") / "spool"
    with _endpoint() as server:
        outcomes: list[Outcome] = []
        with _delivering(server.url, Spool(d), outcomes) as delivery:
            delivery.submit(recording(7))
            wait_until(lambda: len(outcomes) == 1, 5)
            shutil.rmtree(d)  # a cleaner, a user, tmpfiles.d
            try:
                delivery.submit(recording(8))
            except SpoolFull as exc:
                return False, f"refused: {str(exc)[:70]}"
            delivered = wait_until(lambda: len(outcomes) == 2, 10)
    return delivered, f"delivered {len(outcomes)} of 2"


@case("delivery", "spool folder replaced by a file, then restored",
      "sender survives; recordings delivered after the restore")  # fmt: skip
def spool_replaced_by_file(ctx):
    d = ctx.scratch("replaced") / "spool"
    with _endpoint() as server:
        server.stop()
        outcomes: list[Outcome] = []
        with _delivering(server.url, Spool(d), outcomes) as delivery:
            delivery.submit(recording(9))
            moved = d.with_name("moved")
            d.rename(moved)
            d.write_text("not a folder")
            time.sleep(1.5)
            d.unlink()
            moved.rename(d)
            server.start()
            delivered = wait_until(lambda: len(outcomes) == 1, 15)
            alive = delivery.alive
    return delivered and alive, f"delivered {len(outcomes)}, alive {alive}"


@case("delivery", "disk full when the endpoint rejects a recording (tmpfs)",
      "the recording stays on disk (spool or rejected/); sender alive")  # fmt: skip
def full_disk_on_reject(ctx):
    disk = ctx.scratch("fulldisk")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:  # fmt: skip
        return True, "skipped: cannot mount a tmpfs"
    try:
        with _endpoint() as server:
            spool = Spool(disk / "spool")
            spool.add(recording(10, seconds=1.0))
            with contextlib.suppress(OSError), open(disk / "filler", "wb") as f:
                while True:  # fill the disk to the last byte
                    f.write(b"\0" * 1024)
                    f.flush()
            server.faults.append(400)
            outcomes: list[Outcome] = []
            with _delivering(server.url, spool, outcomes) as delivery:
                wait_until(lambda: len(server.requests) >= 1, 5)
                time.sleep(1.0)
                alive = delivery.alive
            wavs = [p for p in (disk / "spool").rglob("*.wav")]
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
    return alive and len(wavs) == 1, f"WAVs on disk {len(wavs)}, alive {alive}"


@case("lost", "SIGKILL of a process writing spool items, 15 times",
      "the spool opens, every complete item is delivered once, nothing blocks")  # fmt: skip
def kill_during_writes(ctx):
    d = ctx.scratch("killwrites") / "spool"
    code = (
        "import os, time, numpy as np\n"
        "from edgeml.spool import Spool\n"
        f"s = Spool({str(d)!r})\n"
        "rng = np.random.default_rng(os.getpid())\n"
        "while True:\n"
        "    s.add((rng.standard_normal(16000) * 800).astype(np.int16))\n"
        "    time.sleep(0.01)\n"
    )
    rng = random.Random(3)
    for _ in range(15):
        proc = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(1.2 + rng.uniform(0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    try:
        spool = Spool(d)
    except Exception as exc:  # noqa: BLE001
        return False, f"does not open: {exc}"
    stored = len(spool)
    with _endpoint() as server:
        outcomes: list[Outcome] = []
        with _delivering(server.url, spool, outcomes):
            wait_until(lambda: len(outcomes) >= stored, 60)
        twice = len(server.delivered) - len(set(server.delivered))
    left = len(list(d.glob("*.json")))
    return len(outcomes) == stored and left == 0 and twice == 0, (
        f"{stored} items, {len(outcomes)} delivered, {left} left, {twice} twice"
    )


@case("lost", "a second app on the same spool through a symlink",
      "refused at start with a message (exit 1), the first keeps the spool")  # fmt: skip
def second_instance_via_symlink(ctx):
    d = ctx.scratch("twoapps")
    spool = Spool(d / "spool")
    link = d / "link"
    with contextlib.suppress(FileExistsError):
        link.symlink_to(d / "spool")
    try:
        with _endpoint() as server:
            result = run_app(_app_args(ctx, server.url, link, "--once"), timeout=30)
    finally:
        spool.close()
    ok = result.returncode == 1 and "in use" in result.stderr
    return ok, f"exit {result.returncode}: {result.stderr.strip().splitlines()[-1][:70]}"


# ============================================================================ the key
def _key_file_case(name: str, make, promise: str = "the app stops within 10 s with a message"):
    @case("key", f"key file that is {name}", promise)
    def key_case(ctx):
        path = make(ctx.scratch(f"key-{name[:10]}"))
        with _endpoint() as server:
            t0 = time.monotonic()
            result = run_app(_app_args(ctx, server.url, ctx.scratch("key-spool"), "--once",
                                       "--key-file", path), timeout=15)  # fmt: skip
        seconds = time.monotonic() - t0
        last = (result.stderr.strip().splitlines() or [""])[-1]
        ok = result.returncode in (1, 2) and seconds < 10 and "Traceback" not in result.stderr
        return ok, f"exit {result.returncode} after {seconds:.1f} s: {last[:70]}"

    return key_case


def _fifo(d: Path) -> Path:
    path = d / "key.fifo"
    if not path.exists():
        os.mkfifo(path)
    return path


_key_file_case("a directory", lambda d: d)
_key_file_case("a FIFO nobody writes", _fifo)
_key_file_case("/dev/zero", lambda d: Path("/dev/zero"))


@case("key", "a key with a Cyrillic lookalike letter",
      "refused with a message that does not quote the key")  # fmt: skip
def lookalike_key(ctx):
    key = "probe-k\u0435y-123"  # Cyrillic e
    result = run_app(["--once", "--endpoint", "http://127.0.0.1:9/score", "--model",
                      _quiet_model(ctx), "--input", ctx.silence],
                     env={"SCORING_KEY": key}, timeout=15)  # fmt: skip
    ok = result.returncode == 2 and key not in result.stderr and "ASCII" in result.stderr
    return ok, f"exit {result.returncode}: {result.stderr.strip()[-70:]}"


@case("key", "the model process's environment", "the endpoint key is not in it")
def key_in_model_env(ctx):
    dump = ctx.scratch("envdump") / "env.json"
    model = write_rogue_eim(ctx.root / "eims" / "envdump.eim", env_dump=dump)
    with _endpoint() as server:
        run_app(["--model", model, "--input", ctx.silence, "--input-speed", "fast",
                 "--endpoint", server.url, "--spool-dir", ctx.scratch("envdump-spool")],
                env={"SCORING_KEY": KEY}, timeout=20)  # fmt: skip
    if not dump.exists():
        return False, "the model never started"
    leaked = [k for k, v in json.loads(dump.read_text()).items() if KEY in v]
    return not leaked, f"key found in {leaked}" if leaked else "not there"


# ============================================================================ issue 23, round 3
# Variants of the round's edge rows (the tests hold the reported cases themselves).
@case("answer", "200 whose result is an object or a number (segments, a count)",
      "kept as misconfigured, nothing delivered")  # fmt: skip
def result_not_text(ctx):
    kinds = []
    for value in ({"segments": [{"text": "HI"}]}, 42, ["HI", "THERE"]):
        with _endpoint() as server:
            server.faults.append(faults.answer_text(value))
            try:
                CloudML(server.url, retries=0).transcribe(recording(4))
                kinds.append("accepted")
            except Exception as exc:  # noqa: BLE001
                kinds.append(type(exc).__name__)
    return all(k == "EndpointMisconfigured" for k in kinds), ", ".join(kinds)


@case("answer", "transcript with a low lone surrogate and U+2028 (real app, --once)",
      "printed as one line, exit 0")  # fmt: skip
def lone_low_surrogate(ctx):
    from devkit.scripted_eim import write_eim
    from devkit.speech import compose, quiet, speak

    return _once_case(ctx, faults.answer_text("A\udfffB\u2028C"), write_eim, compose, quiet,
                      speak, lambda r: r.returncode == 0 and r.stdout.count("\n") == 1)  # fmt: skip


def _once_case(ctx, fault, write_eim, compose, quiet, speak, judge):
    """One --once run of the real app on 'listen' + a sentence, the endpoint answering `fault`."""
    from devkit.speech import write_wav

    keyword = speak("listen")
    model = ctx.once("listen-eim", lambda: write_eim(ctx.root / "eims" / "listen.eim",
                                                      template=keyword))  # fmt: skip
    wav = ctx.once(
        "listen-wav",
        lambda: write_wav(
            ctx.root / "listen.wav",
            compose(quiet(0.5), keyword, quiet(0.3), speak("what time is it"), quiet(1.6))[0],
        ),
    )
    with _endpoint() as server:
        server.faults.extend([fault, fault])
        result = run_app(["--model", model, "--input", wav, "--input-speed", "fast", "--once",
                          "--endpoint", server.url, "--spool-dir", ctx.scratch(f"once-{id(fault)}"),
                          "--retries", "0", "--speculate", "0"])  # fmt: skip
    return judge(result), f"exit {result.returncode}: {result.stdout[:50]!r}"


@case("answer", "error body with a C1 CSI and a carriage return (real app)",
      "no raw control character on stderr")  # fmt: skip
def error_c1_controls(ctx):
    from devkit.scripted_eim import write_eim
    from devkit.speech import compose, quiet, speak

    body = json.dumps({"error": "e", "message": "x\x9b2J\rINFO forged"}).encode()

    def judge(result):
        raw = [c for c in result.stderr if c in "\x9b\r\x1b\x07"]
        return result.returncode == 5 and not raw

    return _once_case(ctx, faults.page(503, body), write_eim, compose, quiet, speak, judge)


@case("lost", "--spool-dir a folder with a user's 0000000007.json and .notes.json.tmp",
      "refused, every file untouched")  # fmt: skip
def spool_dir_foreign(ctx):
    folder = ctx.scratch("users-folder")
    (folder / "0000000007.json").write_text('{"mine": true}')
    (folder / ".notes.json.tmp").write_text("draft")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    result = run_app(_app_args(ctx, "http://127.0.0.1:9/score", folder), timeout=20)
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    return result.returncode == 1 and after == before, result.stderr.strip()[-90:]


@case("lost", "a rejection while rejected/ holds 150 zz-named files",
      "the new rejection kept, the oldest pruned")  # fmt: skip
def rejected_full_of_late_names(ctx):
    spool = Spool(ctx.scratch("rejected-full"))
    rejected = spool.dir / "rejected"
    rejected.mkdir(exist_ok=True)
    for n in range(150):
        path = rejected / f"zz-{n:03d}.json"
        path.write_text("{}")
        os.utime(path, (1_500_000_000 + n, 1_500_000_000 + n))
    target = spool.reject(spool.add(recording(5)), "400 probe")
    spool.close()
    count = len({p.stem for p in rejected.iterdir()})
    return target.exists() and count == 100, f"kept: {target.exists()}, {count} items"


@case("lost", "--jsonl a FIFO, --input a symlink to a folder",
      "exit 2 with a message naming what the path is")  # fmt: skip
def odd_paths(ctx):
    folder = ctx.scratch("odd-paths")
    fifo = folder / "out.fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    link = folder / "in.wav"
    if not link.exists():
        link.symlink_to(folder)
    a = run_app(["--jsonl", fifo, "--spool-dir", ctx.scratch("odd-spool")], timeout=20)
    b = run_app(["--input", link, "--spool-dir", ctx.scratch("odd-spool")], timeout=20)
    ok = a.returncode == 2 and "not a regular file" in a.stderr
    ok = ok and b.returncode == 2 and "is a folder" in b.stderr
    return ok, f"{a.stderr.strip()[-60:]} | {b.stderr.strip()[-60:]}"
