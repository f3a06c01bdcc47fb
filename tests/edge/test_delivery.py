"""Store-and-forward: the spool on disk and the sender, against a real HTTP endpoint with faults."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
import soundfile as sf

from devkit.fault_server import FaultServer
from devkit.speech import audio_id
from edgeml.cloudml import CloudML
from edgeml.delivery import Delivery, Outcome
from edgeml.spool import RecordingInfo, Spool, SpoolFull, SpoolLocked


def _recording(n: int, seconds: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(n)
    samples = np.round(rng.standard_normal(int(seconds * 16000)) * 800).astype(np.int16)
    samples[0] = n  # the fault server answers "REC <n> ..."
    return samples


def _delivery(server: FaultServer, spool: Spool, outcomes: list, **kw) -> Delivery:
    client = CloudML(server.url, retries=kw.pop("retries", 1), backoff_factor=0.05, **kw)
    return Delivery(client, spool, outcomes.append, min_backoff=0.1, max_backoff=0.4)


def _wait(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------- the spool itself
def test_spool_keeps_order_and_attempts_across_reopening(tmp_path):
    spool = Spool(tmp_path)
    for n in (1, 2, 3):
        spool.add(_recording(n), RecordingInfo(keyword="listen", keyword_score=0.9))
    first = spool.oldest()
    spool.record_attempt(first, "refused")
    spool.close()
    again = Spool(tmp_path)
    items = again.items()
    assert [int(i.samples()[0]) for i in items] == [1, 2, 3]
    assert items[0].attempts == 1 and items[0].record.last_error == "refused"
    assert items[1].record.info == RecordingInfo(keyword="listen", keyword_score=0.9)
    assert len({i.record.id for i in items}) == 3
    assert np.array_equal(items[2].samples(), _recording(3))
    again.remove(items[0])
    assert again.add(_recording(4)).seq == 4  # numbering goes on, never reuses a waiting seq
    again.close()


def test_spool_sorts_out_what_a_crash_left(tmp_path):
    """Temp files go; a whole WAV without its JSON (crash inside add) is recovered and sent; a
    JSON without its WAV (crash inside remove) and a broken orphan WAV are set aside."""
    spool = Spool(tmp_path)
    spool.add(_recording(1))
    spool.close()
    (tmp_path / ".0000000002.wav.tmp").write_bytes(b"partial")  # crash while writing
    (tmp_path / "0000000003.wav").write_bytes(b"RIFF")  # not even a WAV
    sf.write(tmp_path / "0000000004.wav", _recording(4), 16000, subtype="PCM_16")  # no JSON
    (tmp_path / "0000000005.json").write_bytes(b"{}")  # its WAV was removed already
    spool = Spool(tmp_path)
    items = spool.items()
    assert [i.seq for i in items] == [1, 4]
    assert np.array_equal(items[1].samples(), _recording(4))
    assert items[1].record.info.end_reason == "recovered" and items[1].record.id
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".json", ".wav", ".tmp")) == [
        "0000000001.json",
        "0000000001.wav",
        "0000000004.json",
        "0000000004.wav",
    ]
    aside = sorted(p.name for p in (tmp_path / "rejected").iterdir())
    assert len(aside) == 2 and all(name.startswith("damaged-") for name in aside)
    spool.close()


@pytest.mark.parametrize(
    "damage",
    [b"null", b"[1, 2]", b'{"seq": 2}', b'{"seq": "two"}', b"{not json", b"x" * 70_000],
    ids=["null", "list", "fields-missing", "wrong-type", "not-json", "huge"],
)
def test_a_damaged_record_is_set_aside_and_the_queue_goes_on(tmp_path, damage):
    spool = Spool(tmp_path)
    for n in (1, 2, 3):
        spool.add(_recording(n))
    (tmp_path / "0000000002.json").write_bytes(damage)
    first = spool.oldest()
    assert int(first.samples()[0]) == 1
    spool.remove(first)
    assert int(spool.oldest().samples()[0]) == 3  # 2 is damaged: moved aside, 3 is next
    aside = sorted(p.name for p in (tmp_path / "rejected").iterdir())
    assert len(aside) == 2 and all(name.startswith("damaged-") for name in aside)
    spool.close()


def test_spool_full_refuses_loudly_and_keeps_what_it_has(tmp_path):
    spool = Spool(tmp_path, max_bytes=40_000)  # room for two 0.5 s recordings (16 kB each)
    spool.add(_recording(1))
    spool.add(_recording(2))
    with pytest.raises(SpoolFull, match="NOT saved"):
        spool.add(_recording(3))
    assert [int(i.samples()[0]) for i in spool.items()] == [1, 2]
    spool.close()


def test_one_spool_one_sender(tmp_path):
    spool = Spool(tmp_path)
    with pytest.raises(SpoolLocked, match="in use"):
        Spool(tmp_path)
    spool.close()
    Spool(tmp_path).close()


# ---------------------------------------------------------------------- delivery
def test_outage_then_recovery_delivers_each_recording_once_in_order(tmp_path, fault_server):
    """Endpoint killed mid-session: nothing recorded meanwhile is lost, duplicated or reordered."""
    outcomes: list[Outcome] = []
    spool = Spool(tmp_path)
    delivery = _delivery(fault_server, spool, outcomes)
    delivery.start()
    try:
        recs = [_recording(n) for n in range(1, 7)]
        delivery.submit(recs[0])
        assert _wait(lambda: len(outcomes) == 1)
        fault_server.stop()  # the endpoint goes away: connection refused
        for rec in recs[1:4]:
            delivery.submit(rec)
        assert _wait(lambda: spool.oldest() is not None and spool.oldest().attempts >= 2)
        assert len(spool) == 3 and len(outcomes) == 1
        fault_server.start()  # back, but first answers 500, 503 + Retry-After, then slowly
        fault_server.faults.extend([500, 500, (503, {"Retry-After": "1"}), 503])
        for rec in recs[4:]:
            delivery.submit(rec)
        assert _wait(lambda: len(outcomes) == 6, timeout=30)
        assert delivery.drain(timeout=5)
    finally:
        delivery.stop()
        spool.close()
    assert [o.transcript.text.split()[1] for o in outcomes] == ["1", "2", "3", "4", "5", "6"]
    assert fault_server.delivered == [audio_id(r) for r in recs]
    assert [o.backlog for o in outcomes[:4]] == [False, True, True, True]
    assert len(list(tmp_path.glob("*.wav"))) == 0


def test_slow_answer_is_retried_later_and_counted_once(tmp_path, fault_server):
    outcomes: list[Outcome] = []
    spool = Spool(tmp_path)
    fault_server.faults.append(("slow", 1.5))
    delivery = _delivery(fault_server, spool, outcomes, read_timeout=0.5)
    delivery.start()
    try:
        delivery.submit(_recording(1))
        delivery.submit(_recording(2))
        assert _wait(lambda: len(outcomes) == 2, timeout=20)
    finally:
        delivery.stop()
        spool.close()
    assert [o.transcript.text.split()[1] for o in outcomes] == ["1", "2"]
    assert fault_server.delivered == [audio_id(_recording(1)), audio_id(_recording(2))]


def test_backlog_survives_an_app_restart(tmp_path, fault_server):
    fault_server.stop()
    first: list[Outcome] = []
    spool = Spool(tmp_path)
    delivery = _delivery(fault_server, spool, first)
    delivery.start()
    for n in (1, 2, 3):
        delivery.submit(_recording(n))
    assert _wait(lambda: spool.oldest().attempts >= 1)
    delivery.stop()  # the app is stopped while the endpoint is down
    spool.close()
    assert first == []

    fault_server.start()
    second: list[Outcome] = []
    spool = Spool(tmp_path)  # a new process would see exactly this
    delivery = _delivery(fault_server, spool, second)
    delivery.start()
    try:
        delivery.submit(_recording(4))
        assert _wait(lambda: len(second) == 4)
    finally:
        delivery.stop()
        spool.close()
    assert [o.transcript.text.split()[1] for o in second] == ["1", "2", "3", "4"]
    assert [o.backlog for o in second] == [True, True, True, False]
    assert fault_server.delivered == [audio_id(_recording(n)) for n in (1, 2, 3, 4)]


def test_rejected_recording_moves_aside_and_the_queue_goes_on(tmp_path, fault_server):
    outcomes: list[Outcome] = []
    spool = Spool(tmp_path)
    fault_server.faults.append(413)
    delivery = _delivery(fault_server, spool, outcomes)
    delivery.start()
    try:
        delivery.submit(_recording(1))
        delivery.submit(_recording(2))
        assert _wait(lambda: len(outcomes) == 2)
    finally:
        delivery.stop()
        spool.close()
    assert outcomes[0].error is not None and "413" in str(outcomes[0].error)
    assert outcomes[1].transcript.text.startswith("REC 2")
    assert len(list((tmp_path / "rejected").glob("*.wav"))) == 1


def test_wrong_key_keeps_recordings_for_a_fixed_configuration(tmp_path, fault_server):
    outcomes: list[Outcome] = []
    spool = Spool(tmp_path)
    fault_server.faults.extend([401] * 50)
    delivery = _delivery(fault_server, spool, outcomes)
    delivery.start()
    try:
        seq = delivery.submit(_recording(1))
        outcome = delivery.wait_for(seq, timeout=10)
    finally:
        delivery.stop()
        spool.close()
    assert outcome.kept and "401" in str(outcome.error) and outcomes == []
    assert len(Spool(tmp_path)) == 1


def test_damaged_item_is_set_aside_not_blocking_the_queue(tmp_path):
    spool = Spool(tmp_path)
    spool.add(_recording(1))
    spool.add(_recording(2))
    (tmp_path / "0000000001.json").write_text("{not json")
    assert int(spool.oldest().samples()[0]) == 2
    assert len(spool) == 1 and len(list((tmp_path / "rejected").iterdir())) == 2
    spool.close()


def test_an_outcome_that_cannot_be_recorded_is_reported_as_that(tmp_path, fault_server):
    """Row 13: when --jsonl refuses the line, a waiter (--once) heard nothing and ended a minute
    later with "no answer from the endpoint". It hears the disk's error; the item stays."""
    from edgeml.delivery import Status
    from edgeml.output import OutputError

    def refuse(_outcome: Outcome) -> None:
        raise OutputError("cannot append to /x/out.jsonl: No space left on device")

    spool = Spool(tmp_path)
    delivery = Delivery(CloudML(fault_server.url, retries=0), spool, refuse, min_backoff=0.1)
    delivery.start()
    try:
        seq = delivery.submit(_recording(1))
        outcome = delivery.wait_for(seq, timeout=15)
    finally:
        delivery.stop(timeout=5)
        spool.close()
    assert outcome is not None and outcome.status is Status.NOT_RECORDED and outcome.kept
    assert "No space left on device" in str(outcome.error)
    assert len(Spool(tmp_path)) == 1


def test_a_new_rejection_is_kept_and_the_oldest_pruned(tmp_path):
    """Row 5: with 100 `damaged-*` items in rejected/, pruning by name deleted each new
    rejection at once (`damaged-*` sorts last). Pruned by age, never the one just set aside."""
    import os

    spool = Spool(tmp_path)
    rejected = tmp_path / "rejected"
    rejected.mkdir()
    for n in range(100):
        old = rejected / f"damaged-20200101-000000-{n:06x}-{n:010d}.json"
        old.write_text("{}")
        os.utime(old, (1_600_000_000 + n, 1_600_000_000 + n))
    item = spool.add(_recording(1))
    target = spool.reject(item, "endpoint rejected the recording (400)")
    spool.close()
    assert target.exists() and target.with_suffix(".json").exists()
    names = {p.stem for p in rejected.iterdir()}
    assert len(names) == 100 and "damaged-20200101-000000-000000-0000000000" not in names
    assert "damaged-20200101-000000-000001-0000000001" in names


def test_the_spool_takes_only_a_folder_of_its_own(tmp_path):
    """Row 6: --spool-dir at a folder of the user's files sent and deleted `1733555555.wav`-like
    names, deleted `.thesis.tmp` and moved a JSON; `/` was accepted. Now such a folder is
    refused, untouched; an empty one is marked and reopened; an older spool is adopted."""
    from edgeml.spool import MARKER, SpoolNotOurs

    mine = tmp_path / "mine"
    mine.mkdir()
    files = {"0000000001.wav": b"RIFF", "0000000001.json": b"{}", ".thesis.tmp": b"draft",
             "notes.json": b"{}"}  # fmt: skip
    for name, data in files.items():
        (mine / name).write_bytes(data)
    with pytest.raises(SpoolNotOurs, match="holds files the spool did not make"):
        Spool(mine)
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == files
    with pytest.raises(SpoolNotOurs, match="is the root folder"):
        Spool("/")

    fresh = Spool(tmp_path / "fresh")
    fresh.add(_recording(1))
    fresh.close()
    (tmp_path / "fresh" / ".editor.tmp").write_bytes(b"x")  # not a name the spool makes
    assert len(Spool(tmp_path / "fresh")) == 1 and (tmp_path / "fresh" / ".editor.tmp").exists()

    legacy = tmp_path / "legacy"
    shutil.copytree(tmp_path / "fresh", legacy)
    (legacy / MARKER).unlink()
    (legacy / ".editor.tmp").unlink()
    assert len(Spool(legacy)) == 1 and (legacy / MARKER).is_file()
