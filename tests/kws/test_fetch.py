"""Fetching public background audio (kwtrain/fetch.py) from a real HTTP server on localhost.

The server is http.server in a thread serving archives the tests build (a few WAVs in a zip or a
tar.gz), with byte ranges as real servers honour them, and misbehaving on request: cutting the
connection midway, or sending more than the source should be. Also: the CLI command as a
subprocess, offline (connection refused) and online, and how a build picks its background.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from devkit.paths import REPO
from edgeml.audioformat import float_to_int16, wav_bytes
from kwtrain import background, fetch, negatives
from kwtrain.record import file_room


def _wav(seconds: float, seed: int) -> bytes:
    x = np.random.default_rng(seed).standard_normal(int(16000 * seconds)) * 0.05
    return wav_bytes(float_to_int16(x.astype(np.float32)))


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _targz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Handler(BaseHTTPRequestHandler):
    """GET /<name> with Range support; the server's `files`, `cut` (name -> bytes to send on
    the first request before dropping the connection) and `chunked` (names sent without a
    length, chunk-encoded) decide the answer; `ranges` records the Range headers seen."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        srv = self.server
        name = self.path.lstrip("/")
        data = srv.files.get(name)
        if data is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        srv.ranges.append(rng)
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if start >= len(data) and rng:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = data[start:]
        if name in srv.chunked:
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 4096):
                piece = body[i : i + 4096]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = srv.cut.pop(name, None)
        if cut is not None:  # the connection drops midway, as a flaky network does
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture()
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.files, srv.cut, srv.chunked, srv.ranges = {}, {}, set(), []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def _source(srv, name: str, data: bytes, **kw) -> fetch.Source:
    srv.files[name] = data
    fields = {
        "name": name.split(".")[0],
        "url": f"{srv.url}/{name}",
        "group": "noise_bed",
        "licence": "CC0 (test fixture)",
        "what": "test",
        "size": len(data),
        "checksum": "sha256:" + hashlib.sha256(data).hexdigest(),
    }
    return fetch.Source(**{**fields, **kw})


ROOM = {f"ROOM/ch{i:02d}.wav": _wav(2.0, i) for i in (1, 2, 9)}


def test_fresh_download_is_verified_and_laid_out_as_a_background_folder(server, tmp_path):
    data = _zip({**ROOM, "ROOM/readme.txt": b"not audio"})
    src = _source(server, "room.zip", data, members=("*/ch01.wav", "*/ch09.wav"))
    out = fetch.fetch(cache=tmp_path, catalogue=(src,), log=lambda m: None)
    files = sorted(p.name for p in (tmp_path / "fetched" / "noise_bed").iterdir())
    assert files == ["room__ROOM__ch01.wav", "room__ROOM__ch09.wav"]
    assert out["sources"]["room"]["files"] == 2
    assert out["sources"]["room"]["verified_by"] == "sha256"
    assert fetch.fetched_sources(tmp_path) == ["room"]
    bg = negatives.background(fetch.fetched_dir(tmp_path))
    assert sum(len(v) for part in bg.values() for v in part.values()) == 2
    assert not list((tmp_path / "downloads").glob("*.part"))
    # laid out once: a second call does not download again
    server.ranges.clear()
    fetch.fetch(cache=tmp_path, catalogue=(src,), log=lambda m: None)
    assert server.ranges == []


def test_a_cut_download_resumes_with_a_range_request(server, tmp_path):
    data = _targz({f"LibriSpeech/dev/{i}.txt": b"x" * 10 for i in range(2)} | {
        f"LibriSpeech/dev/{i}.wav": _wav(4.0, i) for i in range(3)})  # fmt: skip
    assert len(data) > 4 * fetch.CHUNK  # noise does not compress: several chunks
    src = _source(server, "speech.tar.gz", data, group="speech_long")
    server.cut["speech.tar.gz"] = len(data) // 2
    with pytest.raises(fetch.FetchError, match="run the same command again to resume"):
        fetch.fetch(cache=tmp_path, catalogue=(src,), log=lambda m: None)
    part = tmp_path / "downloads" / "speech.tar.gz.part"
    have = part.stat().st_size  # whole chunks up to the cut (the cut-off chunk is read again)
    assert len(data) // 2 - fetch.CHUNK < have <= len(data) // 2
    assert part.read_bytes() == data[:have]
    logs: list[str] = []
    fetch.fetch(cache=tmp_path, catalogue=(src,), log=logs.append)
    assert server.ranges[-1] == f"bytes={have}-"
    assert any("resuming" in m for m in logs)
    assert (tmp_path / "downloads" / "speech.tar.gz").read_bytes() == data
    assert len(list((tmp_path / "fetched" / "speech_long").glob("speech__*.wav"))) == 3


def test_a_checksum_mismatch_deletes_the_file_and_nothing_is_used(server, tmp_path):
    data = _zip(ROOM)
    src = _source(server, "bad.zip", data, checksum="md5:" + "0" * 32)
    with pytest.raises(fetch.FetchError, match="checksum mismatch"):
        fetch.fetch(cache=tmp_path, catalogue=(src,), log=lambda m: None)
    assert not any((tmp_path / "downloads").iterdir())
    assert not (tmp_path / "fetched" / "noise_bed").exists()
    assert fetch.fetched_sources(tmp_path) == []
    wrong_size = replace(src, size=len(data) + 1, checksum=None)
    with pytest.raises(fetch.FetchError):  # over its published size: refused before writing
        fetch.fetch(cache=tmp_path, catalogue=(wrong_size,), log=lambda m: None)


def test_oversize_is_refused_by_its_length_or_while_streaming(server, tmp_path):
    data = _zip(ROOM)
    big = _source(server, "big.zip", data, size=None, checksum=None, max_size=len(data) // 2)
    with pytest.raises(fetch.FetchError, match="over the bound"):
        fetch.fetch(cache=tmp_path, catalogue=(big,), log=lambda m: None)
    server.chunked.add("big.zip")  # no length announced: stopped when the bound is passed
    with pytest.raises(fetch.FetchError, match="went past its bound"):
        fetch.fetch(cache=tmp_path, catalogue=(big,), log=lambda m: None)
    assert not any((tmp_path / "downloads").iterdir())


def test_members_that_leave_the_folder_are_refused(server, tmp_path):
    data = _zip({"ok/a.wav": _wav(1.0, 1), "../../evil.wav": _wav(1.0, 2)})
    src = _source(server, "evil.zip", data)
    with pytest.raises(fetch.FetchError, match="leaves its folder"):
        fetch.fetch(cache=tmp_path, catalogue=(src,), log=lambda m: None)
    assert not list(tmp_path.rglob("evil.wav"))
    assert not (tmp_path / "fetched" / "noise_bed").exists()


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kwtrain", *args],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def _catalogue(tmp_path: Path, sources: list[fetch.Source]) -> Path:
    from dataclasses import asdict

    f = tmp_path / "catalogue.json"
    f.write_text(json.dumps([asdict(s) for s in sources]))
    return f


def test_cli_offline_says_what_to_do_and_exits_4(tmp_path):
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = fetch.Source("nowhere", f"http://127.0.0.1:{port}/x.zip", "noise_bed", "-", "-")
    cat = _catalogue(tmp_path, [src])
    r = _cli("fetch-background", "--catalogue", str(cat), "--cache", str(tmp_path / "c"))
    assert r.returncode == 4, r.stderr
    assert "Traceback" not in r.stderr
    assert "kwtrain record --label background" in r.stderr
    assert "--background DIR" in r.stderr


def test_cli_fetches_from_a_catalogue_and_lists_it(server, tmp_path):
    src = _source(server, "room.zip", _zip(ROOM))
    cat = _catalogue(tmp_path, [src])
    r = _cli("fetch-background", "--catalogue", str(cat), "--cache", str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sources"]["room"]["files"] == 3
    assert "fetch room:" in r.stderr  # progress on stderr
    r = _cli("fetch-background", "--list", "--catalogue", str(cat), "--cache", str(tmp_path / "c"))
    listed = json.loads(r.stdout)
    assert listed["fetched"] == ["room"] and listed["sources"][0]["verified_by"] == "sha256"
    bad = _cli("fetch-background", "--source", "nosuch", "--cache", str(tmp_path / "c"))
    assert bad.returncode == 4 and "unknown source nosuch" in bad.stderr


def test_the_builtin_catalogue_states_licences_and_how_each_is_verified():
    for s in fetch.CATALOGUE:
        assert s.licence and s.what and s.url.startswith("https://")
        if s.checksum:
            algo, hexd = s.checksum.split(":")
            assert len(hexd) == {"md5": 32, "sha256": 64}[algo]
    assert all(s.max_size <= fetch.DEFAULT_MAX_BYTES for s in fetch.CATALOGUE)
    libri = next(s for s in fetch.CATALOGUE if s.name == "librispeech_dev_clean")
    names = [PurePosixPath(f"LibriSpeech/dev-clean/{i}/{j}/{i}-{j}-0001.flac")
             for i in range(40) for j in range(50)]  # fmt: skip
    kept = sum(fetch._wanted(n, libri) for n in names) / len(names)
    assert 0.2 < kept < 0.3  # a quarter, spread by a hash of the name
    assert not fetch._wanted(PurePosixPath("LibriSpeech/dev-clean/1/2/1-2.trans.txt"), libri)


def test_a_build_uses_the_room_and_fetched_audio_and_says_what_it_calibrated_on(tmp_path):
    data = tmp_path / "data"
    room = np.random.default_rng(0).standard_normal(16000 * 250).astype(np.float32) * 0.02
    info = file_room(room, data / "background", "room-test")
    assert info["files"] == 5  # 4 full minutes and the 10 s rest
    cache = tmp_path / "cache"
    assert background.choose(None, None, False, cache, log=lambda m: None).warning
    assert (
        "kwtrain record --label background"
        in background.choose(None, None, False, cache, log=lambda m: None).warning
    )
    fetched = fetch.fetched_dir(cache) / "noise_bed"
    fetched.mkdir(parents=True)
    for i in range(4):
        (fetched / f"demand_test__k{i}.wav").write_bytes(_wav(3.0, i))
    (fetch.fetched_dir(cache) / ".complete-demand_test").write_text("x")
    got = background.choose(None, data, False, cache, log=lambda m: None)
    assert got.warning is None
    assert got.roots == (data, fetch.fetched_dir(cache))
    assert any("your room" in s for s in got.sources) and any(
        "demand_test" in s for s in got.sources
    )
    cal = background.calibrated_on(got.roots)
    assert set(cal) == {"background", "noise_bed"} and cal["background"] > 0
    # with ../shared (or --background) the fetched audio is not added, the room still is
    base = tmp_path / "shared"
    (base / "noise_bed").mkdir(parents=True)
    assert background.choose(base, data, False, cache, log=lambda m: None).roots == (base, data)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_build_without_shared_trains_on_the_room_and_fetched_audio(server, tmp_path, monkeypatch):
    """`kwtrain build` on a machine without ../shared: a small model trained end to end on the
    user's recorded room and on audio fetched (from the local server) into the cache; its
    threshold is calibrated on them, and the report says on what and for how long."""
    from functools import partial

    from kwtrain import cli
    from kwtrain.embedding import cli as embcli
    from kwtrain.embedding import train as embtrain
    from kwtrain.embedding.frontend import FrontEndUnavailable
    from kwtrain.embedding.onnxfiles import model_files
    from kwtrain.synth import available_engines

    try:
        model_files()
    except FrontEndUnavailable:
        pytest.skip("front-end ONNX files missing")
    if "espeak" not in available_engines():
        pytest.skip("needs espeak-ng")
    cache = tmp_path / "cache"
    monkeypatch.setenv("KWTRAIN_CACHE", str(cache))
    monkeypatch.delenv(background.FETCH_ENV, raising=False)
    monkeypatch.setattr(embcli, "default_background", lambda: None)  # no ../shared here
    # a small training run (the build's own code, fewer clips and epochs)
    small = partial(embtrain.EmbTrainSettings, positives=30, augment_per_positive=1,
                    confusable_clips=20, word_clips=20, sentence_clips=5, epochs=2)  # fmt: skip
    monkeypatch.setattr(embtrain, "EmbTrainSettings", small)
    rng = np.random.default_rng(3)
    room = rng.standard_normal(16000 * 300).astype(np.float32) * 0.03  # five minutes of "room"
    file_room(room, tmp_path / "data" / "background", "room-test")
    kitchen = {f"K/ch{i:02d}.wav": _wav(20.0, 10 + i) for i in range(8)}
    fetch.fetch(cache=cache, catalogue=(_source(server, "kitchen.zip", _zip(kitchen)),),
                log=lambda m: None)  # fmt: skip
    args = cli.build_parser().parse_args([
        "build", "--keyword", "stop", "--out", str(tmp_path / "out"),
        "--data", str(tmp_path / "data"), "--eim", str(tmp_path / "stop.eim")])  # fmt: skip
    out = embcli.run_build(args)
    report = json.loads(Path(out["report"]).read_text())
    assert any("your room" in s for s in report["background"])
    assert any("fetched: kitchen" in s for s in report["background"])
    assert set(report["calibrated_on"]) == {"background", "noise_bed"}
    assert report["calibration"]["hours"] == pytest.approx(sum(report["calibrated_on"].values()),
                                                           abs=0.01)  # fmt: skip
    assert "note" not in report["calibration"]  # calibrated, not the fixed "no background" 0.9
    assert report["calibration"]["rule"] == "capped"
    assert "fa_per_hour_upper_95_tail" in report["calibration"]
    assert Path(out["eim"]).is_file()


def test_a_build_allowed_to_fetch_but_offline_goes_on_and_says_what_to_do(tmp_path, monkeypatch):
    from kwtrain import cli

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    offline = fetch.Source("demand_x", f"http://127.0.0.1:{port}/x.zip", "noise_bed", "-", "-")
    monkeypatch.setattr(fetch, "CATALOGUE", (offline,))
    logs: list[str] = []
    got = background.choose(None, None, True, tmp_path / "cache", log=logs.append)
    assert got.roots == () and "could not fetch" in logs[0] and "resume" in logs[0]
    assert "kwtrain record --label background" in got.warning
    monkeypatch.setenv(background.FETCH_ENV, "1")
    args = cli.build_parser().parse_args(["build", "--keyword", "stop", "--out", str(tmp_path)])
    assert args.fetch_background is True
    monkeypatch.delenv(background.FETCH_ENV)
    args = cli.build_parser().parse_args(["build", "--keyword", "stop", "--out", str(tmp_path)])
    assert args.fetch_background is False and args.threshold_rule == "capped"
