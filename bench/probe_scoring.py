"""Probe cases against the real azmlinfsrv serving score_audio.py: connections, input, memory.

Every case is a new variant of a kind the first round fixed (tests/cloud/test_scoring_attacks.py
holds the first round's cases); each talks to the real server over real sockets.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import struct
import subprocess
import threading
import time

import numpy as np
import requests
import soundfile as sf
from probe_core import (
    BODY_SECONDS,
    HEADER_SECONDS,
    case,
    health_seconds,
    json_error,
    peak_rss,
    port_of,
    raw_exchange,
    status_of,
    worker_process,
)

from devkit.attack import SlowClients
from devkit.scoring_client import noise_signal, to_int16, wav_bytes

QUICK = 2.0  # a health check under attack must still answer within this (quiet: ~10 ms)


def _wav(seconds: float = 1.0, rate: int = 16000, subtype: str = "PCM_16", channels: int = 1):
    audio = noise_signal(seconds, rate=rate, seed=4, channels=channels) * 0.5
    return wav_bytes(audio, rate=rate, subtype=subtype)


def _post_head(length: int, ctype: str = "audio/wav", extra: bytes = b"") -> bytes:
    return (b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: " + ctype.encode()
            + b"\r\nContent-Length: " + str(length).encode() + b"\r\n" + extra + b"\r\n")  # fmt: skip


def _trickle(port: int, data: bytes, every: float) -> tuple[bytes, float]:
    """Send `data` one byte every `every` s until the server answers or closes."""
    t0 = time.monotonic()
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.settimeout(every)
        for byte in data:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            with contextlib.suppress(TimeoutError, OSError):
                part = s.recv(4096)
                if not part:
                    break
                reply += part
            if reply:
                break
        with contextlib.suppress(OSError):
            s.settimeout(3)
            while part := s.recv(4096):
                reply += part
    return reply, time.monotonic() - t0


# ============================================================================ one client blocks
@case("block", "headers one byte every 0.9 s", "JSON 408 at the header deadline")
def headers_byte_by_byte(ctx):
    port = port_of(ctx.server())
    head = b"POST /score HTTP/1.1\r\nHost: localhost\r\nContent-Type: audio/wav\r\n" * 3
    reply, seconds = _trickle(port, head, 0.9)
    ok = status_of(reply) == 408 and json_error(reply) == "request_timeout"
    return ok and seconds < HEADER_SECONDS + 3, f"{status_of(reply)} after {seconds:.1f} s"


@case("block", "a complete header line every 0.5 s", "JSON 408 at the header deadline")
def header_lines_trickle(ctx):
    port = port_of(ctx.server())
    t0 = time.monotonic()
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\n")
        s.settimeout(0.5)
        for n in range(60):
            try:
                s.sendall(f"X-Line-{n}: {n}\r\n".encode())
                reply += s.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if reply:
                break
    seconds = time.monotonic() - t0
    ok = status_of(reply) == 408 and seconds < HEADER_SECONDS + 3
    return ok, f"{status_of(reply)} after {seconds:.1f} s"


@case("block", "Expect: 100-continue, then no body", "JSON 408 at the body deadline")
def expect_continue_then_nothing(ctx):
    port = port_of(ctx.server())
    head = _post_head(160044, extra=b"Expect: 100-continue\r\n")
    reply, seconds = raw_exchange(port, head, timeout=BODY_SECONDS + 8)
    final = reply.split(b"HTTP/1.1 ")[-1]
    ok = final.startswith(b"408") and seconds < BODY_SECONDS + 4
    return ok, f"{reply[:12]!r} ... {final[:3]!r} after {seconds:.1f} s"


@case("block", "two requests pipelined in one packet", "both answered, in order")
def pipelined(ctx):
    port = port_of(ctx.server())
    body = _wav(1.0)
    data = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + _post_head(len(body)) + body
    reply, seconds = raw_exchange(port, data, timeout=20, then=lambda s: time.sleep(3))
    statuses = [int(part[:3]) for part in reply.split(b"HTTP/1.1 ")[1:] if part[:3].isdigit()]
    return statuses == [200, 200], f"statuses {statuses} in {seconds:.1f} s"


@case("block", "request sent, then the socket half-closed", "the answer still arrives")
def half_closed(ctx):
    port = port_of(ctx.server())
    body = _wav(1.0)
    reply, _ = raw_exchange(port, _post_head(len(body)) + body, half_close=True, timeout=20)
    ok = status_of(reply) == 200 and b'"result"' in reply
    return ok, f"{status_of(reply)}"


@case("block", "HTTP/1.0 keep-alive, two requests", "both answered")
def http10_keepalive(ctx):
    port = port_of(ctx.server())
    statuses = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            reply = b""
            with contextlib.suppress(OSError):
                while not reply.endswith(b"Healthy"):
                    part = s.recv(4096)
                    if not part:
                        break
                    reply += part
            statuses.append(status_of(reply))
    return statuses[0] == 200 and statuses[1] in (200, 0), f"statuses {statuses}"


@case("block", "40 answered HTTP/1.0 connections the client never closes",
      "others' health checks answered within 2 s")  # fmt: skip
def answered_but_never_closed(ctx):
    server = ctx.server()
    port = port_of(server)
    held: list[socket.socket] = []
    stop = threading.Event()

    def attacker() -> None:
        for _ in range(40):
            if stop.is_set():
                return
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            held.append(s)
            time.sleep(0.05)

    thread = threading.Thread(target=attacker, daemon=True)
    thread.start()
    time.sleep(1.0)
    checks = health_seconds(server, 3)
    stop.set()
    thread.join()
    for s in held:
        s.close()
    time.sleep(2.5)
    return max(checks) < QUICK, f"health checks {checks} s"


@case("block", "50 slow bodies cut at their deadline keep trickling",
      "health checks after the cut answered within 2 s")  # fmt: skip
def after_the_cut(ctx):
    server = ctx.server()
    with SlowClients(port_of(server), "slow-body", n=50, every=0.3) as clients:
        time.sleep(BODY_SECONDS + 1.0)  # all cut with a 408 by now; they keep sending
        checks = health_seconds(server, 3)
        left = clients.open_count
    time.sleep(2.5)
    return max(checks) < QUICK, f"health checks {checks} s ({left} still open)"


@case("block", "300 idle connections at once", "health checks answered within 2 s")
def three_hundred_idle(ctx):
    server = ctx.server()
    with SlowClients(port_of(server), "idle", n=300, every=0.5):
        time.sleep(0.5)
        checks = health_seconds(server, 3)
    return max(checks) < QUICK, f"health checks {checks} s"


@case("block", "1100 idle connections (over gunicorn's 1000 per worker)",
      "health checks answered within 2 s")  # fmt: skip
def eleven_hundred_idle(ctx):
    server = ctx.server()
    socks = [socket.create_connection(("127.0.0.1", port_of(server))) for _ in range(1100)]
    try:
        time.sleep(0.5)
        checks = health_seconds(server, 3)
    finally:
        for s in socks:
            s.close()
    time.sleep(HEADER_SECONDS)
    return max(checks) < QUICK, f"health checks {checks} s"


@case("block", "100 slow-header connections (more than the 64 threads)",
      "health checks answered within 2 s")  # fmt: skip
def more_slow_headers_than_threads(ctx):
    server = ctx.server()
    with SlowClients(port_of(server), "slow-headers", n=100, every=0.5):
        time.sleep(1.0)
        checks = health_seconds(server, 3)
    time.sleep(3.0)
    return max(checks) < QUICK, f"health checks {checks} s"


@case("block", "worker at its file limit (ulimit -n 200), 300 connections",
      "the worker survives (no model reload), health answered after")  # fmt: skip
def file_limit(ctx):
    server = ctx.server("fdlimit")
    worker = worker_process(server)
    subprocess.run(["prlimit", f"--pid={worker.pid}", "--nofile=200:200"], check=True)
    socks = []
    with contextlib.suppress(OSError):
        for _ in range(300):
            socks.append(socket.create_connection(("127.0.0.1", port_of(server)), timeout=2))
    time.sleep(1.0)
    for s in socks:
        s.close()
    time.sleep(HEADER_SECONDS + 1)
    checks = health_seconds(server, 2)
    loads = server.log().count("Loading model")
    same = worker.is_running() and worker_process(server).pid == worker.pid
    return same and loads == 1 and max(checks) < QUICK, (
        f"worker kept: {same}, model loads {loads}, health {checks}"
    )


# ============================================================================ bad input: JSON 4xx
def _framing(name: str, data: bytes):
    @case("input", name, "a JSON 4xx that names the problem (not gunicorn's HTML page)")
    def framing(ctx):
        reply, _ = raw_exchange(port_of(ctx.server()), data, timeout=10)
        status, code = status_of(reply), json_error(reply)
        return 400 <= status < 500 and code is not None, f"{status} {code or reply[:60]!r}"

    return framing


_framing("a 100 KB header line", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000
         + b"\r\n\r\n")  # fmt: skip
_framing("300 header lines", b"GET / HTTP/1.1\r\nHost: x\r\n"
         + b"".join(b"X-%d: 1\r\n" % i for i in range(300)) + b"\r\n")  # fmt: skip
_framing("Content-Length plus chunked", b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: "
         b"audio/wav\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")  # fmt: skip
_framing("negative Content-Length", _post_head(-5))
_framing("two different Content-Lengths", b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: "
         b"audio/wav\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef")  # fmt: skip
_framing("a request line that is not HTTP", b"HELLO THERE\r\n\r\n")
_framing("HTTP/9.9", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n")
_framing("a 10 KB URL", b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
_framing("Expect: magic", _post_head(3, extra=b"Expect: magic\r\n") + b"abc")
_framing("Transfer-Encoding: gzip", b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav"
         b"\r\nTransfer-Encoding: gzip\r\n\r\nabc")  # fmt: skip


def _body(name: str, body: bytes, ctype: str, expect: str):
    """expect: 'ok' (200), '4xx' (a JSON 4xx), or 'ok|4xx'."""

    @case("input", name, {"ok": "answered 200", "4xx": "a JSON 4xx naming it",
                          "ok|4xx": "200 or a JSON 4xx, never a 500"}[expect])  # fmt: skip
    def body_case(ctx):
        server = ctx.server()
        r = requests.post(server.score_url, data=body, headers={"Content-Type": ctype},
                          timeout=120)  # fmt: skip
        is_json = r.headers.get("Content-Type", "").startswith("application/json")
        code = r.json().get("error") if is_json and r.status_code != 200 else None
        ok = (r.status_code == 200 and "ok" in expect) or (
            400 <= r.status_code < 500 and "4xx" in expect and code is not None
        )
        return ok, f"{r.status_code} {code or r.text[:60]}"

    return body_case


def _riff(chunks: list[tuple[bytes, bytes]], riff_size: int | None = None) -> bytes:
    payload = b"WAVE" + b"".join(
        cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")
        for cid, data in chunks
    )
    return (
        b"RIFF" + struct.pack("<I", riff_size if riff_size is not None else len(payload)) + payload
    )


def _fmt(channels: int = 1, rate: int = 16000, bits: int = 16, tag: int = 1) -> bytes:
    align = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


_PCM = to_int16(noise_signal(1.0, seed=5) * 0.5).tobytes()
_body("JSON sample 1e999999", b'{"data": [0.1, 1e999999, 0.2]}', "application/json", "4xx")
_body("JSON -0 samples", json.dumps({"data": [-0.0] * 8000}).encode(), "application/json", "ok")
_body("JSON duplicate 'data' keys", b'{"data": [1, 2], "data": [' + b"0.1," * 3999 + b"0.1]}",
      "application/json", "ok|4xx")  # fmt: skip
_body("JSON with a UTF-8 BOM", b"\xef\xbb\xbf" + json.dumps({"data": [0.1] * 4000}).encode(),
      "application/json", "ok|4xx")  # fmt: skip
_body("JSON as UTF-16", json.dumps({"data": [0.1] * 4000}).encode("utf-16"), "application/json",
      "4xx")  # fmt: skip
_body("JSON sample_rate NaN", b'{"data": [0.1, 0.2], "sample_rate": NaN}', "application/json",
      "4xx")  # fmt: skip
_body("JSON nested objects inside data", b'{"data": [{"a": [{"b": 1}]}]}', "application/json",
      "4xx")  # fmt: skip
_body("WAV whose RIFF size lies (too big)", _riff([(b"fmt ", _fmt()), (b"data", _PCM)],
      riff_size=10**9), "audio/wav", "ok")  # fmt: skip
_body("WAV with an odd-sized chunk before data", _riff([(b"fmt ", _fmt()), (b"LIST", b"abc"),
      (b"data", _PCM)]), "audio/wav", "ok")  # fmt: skip
_body("WAV with fmt after data", _riff([(b"data", _PCM), (b"fmt ", _fmt())]), "audio/wav",
      "ok|4xx")  # fmt: skip
_body("WAV with 0 channels", _riff([(b"fmt ", _fmt(channels=0)), (b"data", _PCM)]), "audio/wav",
      "4xx")  # fmt: skip
_body("WAV declaring a billion frames", _riff([(b"fmt ", _fmt()), (b"data", b"")])[:-4]
      + struct.pack("<I", 2_000_000_000) + _PCM, "audio/wav", "4xx")  # fmt: skip
_body("WAV 8-bit", _wav(1.0, subtype="PCM_U8"), "audio/wav", "ok")
_body("WAV 24-bit", _wav(1.0, subtype="PCM_24"), "audio/wav", "ok")
_body("WAV float64", _wav(1.0, subtype="DOUBLE"), "audio/wav", "ok")
_body("WAV at 4000 Hz (the lowest rate)", _wav(1.0, rate=4000), "audio/wav", "ok")
_body("WAV at 384000 Hz (the highest rate)", _wav(0.5, rate=384000), "audio/wav", "ok")
_body("WAV at 3999 Hz", _wav(1.0, rate=3999), "audio/wav", "4xx")


def _flac(seconds: float = 1.0, rate: int = 16000) -> bytearray:
    buf = io.BytesIO()
    sf.write(buf, to_int16(noise_signal(seconds, rate=rate, seed=6) * 0.5), rate, format="FLAC")
    return bytearray(buf.getvalue())


def _flac_streaminfo(total: int | None = None, rate: int | None = None) -> bytes:
    """A FLAC whose STREAMINFO says `total` samples (0 = unknown: a streamed encode) or `rate`."""
    body = _flac()
    field = int.from_bytes(body[18:26], "big")  # rate(20) channels(3) bits(5) total(36)
    if total is not None:
        field = (field & ~((1 << 36) - 1)) | total
    if rate is not None:
        field = (field & ~(((1 << 20) - 1) << 44)) | (rate << 44)
    body[18:26] = field.to_bytes(8, "big")
    return bytes(body)


_body("FLAC of unknown length (streamed encode)", _flac_streaminfo(total=0), "audio/flac", "ok")
_body("FLAC whose STREAMINFO says 0 Hz", _flac_streaminfo(rate=0), "audio/flac", "4xx")


@case("input", "Authorization with non-ASCII bytes (keyed server)", "a JSON 401, never a 500")
def key_non_ascii(ctx):
    server = ctx.server("keyed", {"SCORING_KEY": "probe-key-123"})
    body = _wav(0.5)
    head = (b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nAuthorization: Bearer "
            b"\xff\xfe\xc3\x28\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")  # fmt: skip
    reply, _ = raw_exchange(port_of(server), head + body, timeout=20)
    return status_of(reply) == 401 and json_error(reply) is not None, (
        f"{status_of(reply)} {json_error(reply)}"
    )


# ============================================================================ memory
def _memory(name: str, make, ctype: str, factor: float = 3.0, extra_mb: float = 100.0):
    @case("memory", name, f"worker memory grows by at most {factor:g}x the body + {extra_mb:g} MB")
    def memory_case(ctx):
        server = ctx.server()
        body = make()
        with peak_rss(worker_process(server)) as peak:
            r = requests.post(server.score_url, data=body, headers={"Content-Type": ctype},
                              timeout=300)  # fmt: skip
        bound = factor * len(body) / 1e6 + extra_mb
        return r.status_code < 500 and peak["mb"] <= bound, (
            f"{r.status_code}, body {len(body) / 1e6:.1f} MB, peak +{peak['mb']:.0f} MB "
            f"(bound {bound:.0f} MB)"
        )

    return memory_case


def _flac_bomb() -> bytes:
    """110 s of 4-channel 384 kHz silence: about 250 KB of FLAC, 676 MB as float32."""
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", 384000, 4, format="FLAC", subtype="PCM_16") as f:
        block = np.zeros((384000, 4), dtype=np.int16)
        for _ in range(110):
            f.write(block)
    return buf.getvalue()


def _json_384k() -> bytes:
    """110 s at 384 kHz as a JSON list of zeros: 84 MB, inside every limit."""
    n = 384000 * 110
    return b'{"sample_rate": 384000, "data": [' + b"0," * (n - 1) + b"0]}"


def _wav_u8_3ch() -> bytes:
    """110 s of 3-channel 8-bit 384 kHz WAV: 127 MB of body, 4x that as float32 frames."""
    buf = io.BytesIO()
    sf.write(buf, np.zeros((384000 * 110, 3), dtype=np.int16), 384000, format="WAV",
             subtype="PCM_U8")  # fmt: skip
    return buf.getvalue()


def _json_big_string() -> bytes:
    return b'{"note": "' + b"x" * 40_000_000 + b'", "data": [' + b"0.1," * 15999 + b"0.1]}"


_memory("a 250 KB FLAC that decodes to 110 s x 4 ch x 384 kHz", _flac_bomb, "audio/flac")
_memory("84 MB JSON at 384 kHz (110 s)", _json_384k, "application/json")
_memory("127 MB 8-bit 3-channel WAV at 384 kHz", _wav_u8_3ch, "audio/wav")
_memory("JSON with a 40 MB string in another field", _json_big_string, "application/json")


# ============================================================================ round 3 (issue 23)
# Held-out variants of this round's kinds: other JSON numbers JSON forbids, other methods and
# paths azmlinfsrv routes itself, other channel counts, a client that leaves, the swagger.
def _json_list(*first: str) -> bytes:
    return ('{"data": [' + ", ".join(first) + ", 0.1" * 4000 + "]}").encode()


_body("JSON sample +1 (a plus sign)", _json_list("+1"), "application/json", "4xx")
_body("JSON sample 007 (leading zeros)", _json_list("0.1", "007"), "application/json", "4xx")
_body("JSON sample -.25 (no integer part)", _json_list("-.25"), "application/json", "4xx")
_body("JSON sample 2.e-3 (no fraction digits)", _json_list("2.e-3"), "application/json", "4xx")
_body("JSON sample 1E+ (no exponent digits)", _json_list("0.5", "1E+"), "application/json", "4xx")
_body("JSON samples 0, -0.0, 1E-3, 5e-01 (all valid)", _json_list("0", "-0.0", "1E-3", "5e-01"),
      "application/json", "ok")  # fmt: skip


def _method(method: str, path: str, status: int):
    @case("input", f"{method} {path}", f"the contract's JSON {status} (error + message)")
    def method_case(ctx):
        server = ctx.server()
        r = requests.request(method, server.base_url + path, data=b"abc", timeout=20)
        is_json = r.headers.get("Content-Type", "").startswith("application/json")
        code = r.json().get("error") if is_json else None
        return r.status_code == status and code is not None, f"{r.status_code} {code}"

    return method_case


_method("PATCH", "/score", 405)
_method("DELETE", "/score?x=1", 405)
_method("PUT", "/", 405)
_method("POST", "/scores", 404)


def _channels_wav(channels: int, seconds: float, rate: int = 16000) -> bytes:
    """8-bit silence (0x80) in `channels` channels; written by hand: libsndfile writes 1024 at
    most, and a client need not use libsndfile."""
    data = b"\x80" * (int(seconds * rate) * channels)
    return _riff([(b"fmt ", _fmt(channels, rate, 8)), (b"data", data)])


_body("WAV with 4096 channels", _channels_wav(4096, 0.05), "audio/wav", "4xx")
# The body once (read into one buffer, decoded in place), and what decoding adds within 30 MB,
# as its 16 kHz mono result does. Main: +722 MB for the 1000-channel body, +200 for 128.
_memory("100 MB 8-bit WAV with 128 channels", lambda: _channels_wav(128, 48.0), "audio/wav",
        1.0, 30.0)  # fmt: skip
_memory("130 MB 8-bit WAV with 1000 channels", lambda: _channels_wav(1000, 8.1), "audio/wav",
        1.0, 30.0)  # fmt: skip
_memory("120 MB 8-bit WAV with 2000 channels", lambda: _channels_wav(2000, 3.7), "audio/wav",
        1.0, 30.0)  # fmt: skip


@case("input", "GET /swagger.json?version=3.1", "describes the WAV, FLAC and PCM bodies")
def swagger_bodies(ctx):
    server = ctx.server()
    spec = requests.get(server.base_url + "/swagger.json?version=3.1", timeout=20).json()
    content = spec["paths"]["/score"]["post"]["requestBody"]["content"]
    wanted = {"audio/wav", "audio/flac", "application/octet-stream", "application/json"}
    return wanted <= set(content), ", ".join(sorted(content))
