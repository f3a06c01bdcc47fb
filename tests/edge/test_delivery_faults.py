"""Delivery under bad luck: full or read-only disks, damaged spool items, an Output that cannot
write, answers that misbehave, a key that must not leak, and a fleet returning after an outage.

Real HTTP (devkit.fault_server), real files; the disk faults use a small tmpfs mounted for the
test (skipped where mounting is not allowed, i.e. not root).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from edge_helpers import TIME_SCALE, start_main, wait_for_line

from devkit import fault_server as faults
from devkit.fault_server import FaultServer
from devkit.rogue_eim import write_rogue_eim
from devkit.speech import audio_id
from edgeml.cloudml import CloudML, EndpointMisconfigured, EndpointUnavailable
from edgeml.delivery import Delivery, Outcome, Status
from edgeml.keys import KeyProblem, install_log_scrubber
from edgeml.output import Output, OutputConfig
from edgeml.spool import Spool, SpoolFull


def _recording(n: int, seconds: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(n)
    samples = np.round(rng.standard_normal(int(seconds * 16000)) * 800).astype(np.int16)
    samples[0] = n
    return samples


def _wait(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _delivery(url: str, spool: Spool, on_outcome, **client_kw) -> Delivery:
    client_kw.setdefault("retries", 0)
    client = CloudML(url, backoff_factor=0.05, **client_kw)
    return Delivery(client, spool, on_outcome, min_backoff=0.1, max_backoff=0.5)


@contextlib.contextmanager
def _tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


# ---------------------------------------------------------------------- disks
def test_a_full_disk_refuses_new_recordings_loudly_and_sending_goes_on(tmp_path, fault_server):
    with _tmpfs(tmp_path / "disk", "80k") as disk:
        outcomes: list[Outcome] = []
        spool = Spool(disk / "spool")
        fault_server.stop()
        delivery = _delivery(fault_server.url, spool, outcomes.append)
        delivery.start()
        try:
            stored = []
            with pytest.raises(SpoolFull, match="NOT saved"):
                for n in range(1, 20):
                    delivery.submit(_recording(n))
                    stored.append(n)
            assert 1 <= len(stored) < 19
            assert not list((disk / "spool").glob(".*.tmp"))  # no half item left behind
            fault_server.start()
            assert _wait(lambda: len(outcomes) == len(stored))
            delivery.submit(_recording(99))  # room again: recording works again
            assert _wait(lambda: len(outcomes) == len(stored) + 1)
            assert delivery.alive
        finally:
            delivery.stop()
            spool.close()
    assert [int(o.transcript.text.split()[1]) for o in outcomes] == [*stored, 99]


def test_a_disk_gone_read_only_still_delivers_each_recording_once(tmp_path, fault_server):
    with _tmpfs(tmp_path / "disk", "4m") as disk:
        outcomes: list[Outcome] = []
        spool = Spool(disk / "spool")
        for n in (1, 2, 3):
            spool.add(_recording(n))
        spool.close()
        _remount(disk, "ro")  # an SD card remounted read-only after an error, then a reboot
        spool = Spool(disk / "spool")
        try:
            delivery = _delivery(fault_server.url, spool, outcomes.append)
            delivery.start()
            try:
                assert _wait(lambda: len(outcomes) == 3)
                time.sleep(1.0)  # nothing is sent twice while the files cannot be removed
                with pytest.raises(SpoolFull, match="read-only"):
                    delivery.submit(_recording(4))
                assert delivery.alive and delivery.drain(timeout=2)
            finally:
                delivery.stop()
        finally:
            _remount(disk, "rw")
            spool.close()
    assert fault_server.delivered == [audio_id(_recording(n)) for n in (1, 2, 3)]


# ---------------------------------------------------------------------- damaged items
def test_damaged_items_appearing_while_running_are_set_aside_and_the_rest_delivered(
    tmp_path, fault_server
):
    outcomes: list[Outcome] = []
    spool = Spool(tmp_path)
    fault_server.stop()
    delivery = _delivery(fault_server.url, spool, outcomes.append)
    delivery.start()
    try:
        for n in range(1, 8):
            delivery.submit(_recording(n))
        (tmp_path / "0000000002.json").write_bytes(b"null")
        (tmp_path / "0000000003.wav").unlink()  # a record without its audio
        (tmp_path / "0000000004.json").unlink()  # audio without its record (ignored for now)
        record = json.loads((tmp_path / "0000000005.json").read_bytes())
        record["attempts"] = "many"
        (tmp_path / "0000000005.json").write_text(json.dumps(record))
        (tmp_path / "0000000006.wav").write_bytes(b"RIFF" + b"\0" * 40)  # a broken WAV
        fault_server.start()
        assert _wait(lambda: len(outcomes) == 4)  # 1, 3 (rejected), 6 (rejected), 7
        assert delivery.alive
    finally:
        delivery.stop()
        spool.close()
    delivered = [int(o.transcript.text.split()[1]) for o in outcomes if o.delivered]
    assert delivered == [1, 7]
    assert [o.seq for o in outcomes if o.status is Status.REJECTED] == [3, 6]
    # the orphaned WAV of 4 is a whole recording: the next start gives it a record and sends it
    again: list[Outcome] = []
    spool = Spool(tmp_path)
    delivery = _delivery(fault_server.url, spool, again.append)
    delivery.start()
    try:
        assert _wait(lambda: len(again) == 1)
    finally:
        delivery.stop()
        spool.close()
    assert again[0].transcript.text.split()[1] == "4"


def test_an_output_that_cannot_write_keeps_the_recording_and_asks_the_endpoint_once(
    tmp_path, fault_server
):
    jsonl = tmp_path / "out" / "transcripts.jsonl"
    jsonl.mkdir(parents=True)  # a folder where the file should be: every append fails
    output = Output(OutputConfig(jsonl=jsonl))
    spool = Spool(tmp_path / "spool")
    delivery = _delivery(fault_server.url, spool, output)
    delivery.min_backoff, delivery.max_backoff = 0.1, 0.4
    delivery.start()
    try:
        delivery.submit(_recording(1))
        assert _wait(lambda: len(fault_server.requests) == 1)
        time.sleep(1.0)
        assert len(spool) == 1  # not committed: kept
        jsonl.rmdir()  # the disk is fixed
        assert _wait(lambda: len(spool) == 0)
    finally:
        delivery.stop()
        spool.close()
    lines = jsonl.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["text"].startswith("REC 1")
    assert len(fault_server.requests) == 1


def test_the_jsonl_has_one_line_per_recording_id_even_when_told_twice(tmp_path):
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_bytes(b'{"id": "old", "text": "x"}\n{"id": "torn", "te')  # a torn last line
    from edgeml.cloudml import Transcript
    from edgeml.spool import SpoolRecord

    record = SpoolRecord(seq=1, id=uuid.uuid4().hex, created="t", created_ts=0.0,
                         audio_seconds=1.0)  # fmt: skip
    outcome = Outcome(1, Status.DELIVERED, record, Transcript("HELLO", 1.0, 5.0))
    Output(OutputConfig(jsonl=jsonl))(outcome)
    Output(OutputConfig(jsonl=jsonl))(outcome)  # a restart re-sent it: found, not written again
    lines = jsonl.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines if line.startswith('{"time')] == [record.id]
    assert lines[-1].startswith('{"time')  # the torn line did not swallow the new one


# ---------------------------------------------------------------------- misbehaving answers
@pytest.mark.parametrize(
    ("fault", "error", "within"),
    [
        (faults.trickled_body(every=0.3), EndpointUnavailable, 5.0),
        (faults.endless_body(), EndpointMisconfigured, 5.0),
        (faults.trickled_headers(every=0.3), EndpointUnavailable, 5.0),
        (faults.page(200), EndpointMisconfigured, 2.0),
        (faults.page(404, b"<h1>Not Found</h1>"), EndpointMisconfigured, 2.0),
        (faults.page(405, b"Method Not Allowed"), EndpointMisconfigured, 2.0),
        (faults.page(400, b"<html>Bad Request (proxy)</html>"), EndpointMisconfigured, 2.0),
        (faults.redirect("/elsewhere", 302), EndpointMisconfigured, 2.0),
        (faults.redirect("/elsewhere", 301), EndpointMisconfigured, 2.0),
        (faults.redirect("http://127.0.0.1:9/score", 307), EndpointMisconfigured, 2.0),
        (faults.page(200, b'{"result": ' + b"[" * 100_000), EndpointMisconfigured, 2.0),
        (faults.page(200, b'{"result": 42}'), EndpointMisconfigured, 2.0),
    ],
    ids=["trickled-body", "endless-body", "trickled-headers", "html-200", "404", "405",
         "html-400", "302", "301", "307-to-http", "deep-json-200", "result-not-text"],
)  # fmt: skip
def test_a_bad_answer_fails_fast_and_keeps_the_recording(tmp_path, fault_server, fault, error,
                                                          within):  # fmt: skip
    client = CloudML(fault_server.url, retries=0, connect_timeout=1.0, read_timeout=2.0)
    fault_server.faults.append(fault)
    t0 = time.monotonic()
    with pytest.raises(error):
        client.transcribe(_recording(1))
    assert time.monotonic() - t0 < within
    # and through delivery: kept in the spool, never shelved as rejected
    outcomes: list[Outcome] = []
    spool = Spool(tmp_path)
    delivery = Delivery(client, spool, outcomes.append, min_backoff=0.1, max_backoff=0.2)
    fault_server.faults.append(fault)
    delivery.start()
    try:
        seq = delivery.submit(_recording(2))
        held = delivery.wait_for(seq, timeout=10)
        assert held is not None and held.kept
        assert _wait(lambda: len(outcomes) == 1)  # the next attempt, answered properly
    finally:
        delivery.stop()
        spool.close()
    assert outcomes[0].delivered and not (tmp_path / "rejected").exists()


def test_an_answer_too_large_is_cut_at_the_size_limit(fault_server):
    client = CloudML(fault_server.url, retries=0, max_answer_bytes=100_000)
    fault_server.faults.append(faults.page(200, b'{"result": "' + b"A" * 5_000_000 + b'"}'))
    with pytest.raises(EndpointMisconfigured, match="more than 100000"):
        client.transcribe(_recording(1))


# ---------------------------------------------------------------------- the key
KEY = "k3y-With/Odd+chars=="


def test_a_key_quoted_by_the_endpoint_never_reaches_errors_spool_or_log(
    tmp_path, fault_server, caplog
):
    install_log_scrubber(KEY, logging.getLogger())
    caplog.handler.addFilter(__import__("edgeml.keys").keys.ScrubFilter(KEY))
    caplog.set_level(logging.DEBUG)
    client = CloudML(fault_server.url, KEY + "\n", retries=1, backoff_factor=0.01)
    fault_server.faults.extend([faults.echo_authorization(500), faults.echo_authorization(500),
                                faults.echo_authorization(401)])  # fmt: skip
    spool = Spool(tmp_path)
    delivery = Delivery(client, spool, lambda o: None, min_backoff=0.1, max_backoff=0.2)
    delivery.start()
    try:
        seq = delivery.submit(_recording(1))
        held = delivery.wait_for(seq, timeout=10)
        assert held is not None and held.kept
        assert _wait(lambda: spool.oldest() is not None and spool.oldest().attempts >= 1)
    finally:
        delivery.stop()
        spool.close()
    assert fault_server.requests[0].authorization == f"Bearer {KEY}"  # sent, stripped of "\n"
    assert "[key]" in str(held.error) and KEY not in str(held.error)
    stored = "".join(p.read_text() for p in tmp_path.glob("*.json"))
    assert "last_error" in stored and KEY not in stored
    assert KEY not in caplog.text


@pytest.mark.parametrize("bad", ["two words", "tab\tinside", "new\nline", "nul\x00"])
def test_an_unusable_key_is_refused_without_quoting_it(fault_server, bad):
    with pytest.raises(KeyProblem) as err:
        CloudML(fault_server.url, bad)
    assert bad not in str(err.value) and bad.split()[0] not in str(err.value)


# ---------------------------------------------------------------------- a fleet
def test_devices_back_from_one_outage_spread_their_retries(tmp_path):
    """Twelve devices lose the endpoint together; with jitter their retries do not land in the
    same instant (without it, they would, attempt after attempt)."""
    server = FaultServer()  # not started: refused
    spools, deliveries, outcomes = [], [], []
    try:
        for n in range(12):
            spool = Spool(tmp_path / f"d{n}")
            d = Delivery(CloudML(server.url, retries=0), spool, outcomes.append,
                         min_backoff=0.2, max_backoff=3.0)  # fmt: skip
            spools.append(spool)
            deliveries.append(d)
            d.submit(_recording(n + 1))
        for d in deliveries:
            d.start()
        time.sleep(4.0)  # several failed rounds: each device's backoff grows, jittered
        server.start()
        assert _wait(lambda: len(outcomes) == 12, timeout=20)
    finally:
        for d in deliveries:
            d.stop()
        for s in spools:
            s.close()
        server.stop()
    arrivals = sorted(r.at for r in server.requests)
    assert len(server.requests) == 12  # nothing twice
    assert arrivals[-1] - arrivals[0] > 0.5  # spread out, not one burst


def test_retry_after_is_honoured_by_delivery(tmp_path, fault_server):
    outcomes: list[Outcome] = []
    spool = Spool(tmp_path)
    fault_server.faults.append((503, {"Retry-After": "2"}))
    delivery = _delivery(fault_server.url, spool, outcomes.append)
    delivery.start()
    try:
        delivery.submit(_recording(1))
        assert _wait(lambda: len(outcomes) == 1)
    finally:
        delivery.stop()
        spool.close()
    first, second = fault_server.requests
    assert second.at - first.at >= 2.0


# ---------------------------------------------------------------------- found by bench/probe.py
def _silence(path: Path, seconds: float = 30.0) -> Path:
    sf.write(path, np.zeros(int(16000 * seconds), dtype=np.int16), 16000, subtype="PCM_16")
    return path


def test_a_transcript_with_line_breaks_and_escapes_prints_as_one_clean_line(
    tmp_path, fault_server, eim_dir
):
    """The transcript comes from the network: a newline split it into two stdout lines (a
    `while read` consumer sees two transcripts) and ESC/BEL sequences reached the terminal."""
    spool = Spool(tmp_path / "spool")
    spool.add(_recording(1))
    spool.close()
    fault_server.faults.append(faults.answer_text("HELLO\nrm -rf /\x1b[2J\x1b]0;x\x07 THERE\r"))
    jsonl = tmp_path / "out.jsonl"
    proc = start_main(["--model", write_rogue_eim(eim_dir / "quiet.eim"), "--input",
                       _silence(tmp_path / "silence.wav"), "--input-speed", "realtime",
                       "--endpoint", fault_server.url, "--spool-dir", tmp_path / "spool",
                       "--jsonl", jsonl])  # fmt: skip
    try:
        assert _wait(lambda: jsonl.exists() and jsonl.read_text().strip(), 20)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert out.splitlines() == ["HELLO rm -rf /[2J]0;x THERE"], err[-1500:]
    assert json.loads(jsonl.read_text())["text"].startswith("HELLO\nrm")  # the record keeps it


def test_a_spool_folder_deleted_while_running_is_made_again(tmp_path, fault_server):
    """A cleaner (tmpfiles.d, a user) removes the spool folder: the next recording raised
    FileNotFoundError out of submit() and was lost."""
    outcomes: list[Outcome] = []
    folder = tmp_path / "spool"
    delivery = _delivery(fault_server.url, Spool(folder), outcomes.append)
    delivery.start()
    try:
        delivery.submit(_recording(1))
        assert _wait(lambda: len(outcomes) == 1)
        shutil.rmtree(folder)
        delivery.submit(_recording(2))
        assert _wait(lambda: len(outcomes) == 2, 10)
        assert delivery.alive and [o.status for o in outcomes] == [Status.DELIVERED] * 2
        assert (folder / ".lock").exists()
    finally:
        delivery.stop(timeout=5)
        delivery.spool.close()


def test_a_long_last_record_is_found_by_id_after_a_kill(tmp_path):
    """Row 4: killed between the --jsonl write and the spool removal with a last record over
    256 KB, the re-sent recording was written (and printed) again: only the last 256 KB was
    read back and the long line was cut. Every line's head is read for its id now."""
    from edgeml.cloudml import Transcript
    from edgeml.spool import SpoolRecord

    jsonl = tmp_path / "t.jsonl"
    records = [SpoolRecord(seq=n, id=uuid.uuid4().hex, created="t", created_ts=0.0,
                           audio_seconds=1.0) for n in (1, 2)]  # fmt: skip
    texts = ["SHORT", "LONG " * 80_000]  # 400 KB of transcript
    for record, text in zip(records, texts, strict=True):
        Output(OutputConfig(jsonl=jsonl))(
            Outcome(1, Status.DELIVERED, record, Transcript(text, 1.0, 5.0))
        )
    assert jsonl.stat().st_size > 256 * 1024
    again = Output(OutputConfig(jsonl=jsonl))  # the next start
    for record, text in zip(records, texts, strict=True):
        again(Outcome(1, Status.DELIVERED, record, Transcript(text, 1.0, 5.0)))
    ids = [json.loads(line)["id"] for line in jsonl.read_text().splitlines()]
    assert ids == [r.id for r in records]


def _stopped_in(proc, seconds: float = 30.0) -> tuple[float, str]:
    """SIGTERM `proc`; how long it took to end, and its stderr (read after it ended)."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=seconds * TIME_SCALE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    took = time.monotonic() - t0
    return took, proc.stderr.read()


def test_sigterm_with_stdout_a_pipe_nobody_reads_stops_at_once(tmp_path, fault_server, eim_dir):
    """Row 12: a transcript print blocked on a full pipe held the sender, and the stop waited
    10.3 s for it. stdout is written only when it has room, and a stop ends the wait."""
    spool = Spool(tmp_path / "spool")
    for n in (1, 2, 3):
        spool.add(_recording(n))
    spool.close()
    fault_server.suffix = lambda _samples: " WORD" * 40_000  # 200 KB lines: the pipe fills
    proc = start_main(["--model", write_rogue_eim(eim_dir / "quiet.eim"), "--input",
                       _silence(tmp_path / "silence.wav", 60), "--input-speed", "realtime",
                       "--endpoint", fault_server.url, "--spool-dir", tmp_path / "spool"])  # fmt: skip
    try:
        assert _wait(lambda: len(fault_server.delivered) >= 1, 30 * TIME_SCALE)
        time.sleep(1.0)  # the sender is stuck behind the full pipe
        took, err = _stopped_in(proc)
    finally:
        proc.stdout.close()
    assert proc.returncode == 0, err[-2000:]
    assert took < 5.0 * TIME_SCALE, f"stopped in {took:.1f} s"  # generous: it was 10.3 s
    assert "Traceback" not in err
    kept = Spool(tmp_path / "spool")
    assert 1 in [item.seq for item in kept.items()]  # its print was cut: the next run prints it
    kept.close()


def test_sigterm_while_waiting_for_a_slow_answer_at_the_end_of_input(tmp_path, fault_server,
                                                                     eim_dir):  # fmt: skip
    """SIGTERM while the app waited, at the end of --input, for a slow endpoint took 34 s: the
    drain and the request in flight were waited out. Now both are cut; the recording stays."""
    spool = Spool(tmp_path / "spool")
    spool.add(_recording(1))
    spool.close()
    fault_server.faults.append(("slow", 60.0))
    proc = start_main(["--model", write_rogue_eim(eim_dir / "quiet.eim"), "--input",
                       _silence(tmp_path / "silence.wav", 1), "--input-speed", "fast",
                       "--endpoint", fault_server.url, "--spool-dir", tmp_path / "spool",
                       "--timeout", "60"])  # fmt: skip
    try:
        assert wait_for_line(proc.stderr, "waiting for 1 recording(s) to be delivered", 30)
        time.sleep(2.0)  # the request is in flight (the server records it when it answers)
        took, err = _stopped_in(proc)
    finally:
        proc.stdout.close()
    assert proc.returncode == 0, err[-2000:]
    assert took < 5.0 * TIME_SCALE, f"stopped in {took:.1f} s"  # generous: it was 34 s
    assert len(Spool(tmp_path / "spool")) == 1 and "Traceback" not in err
