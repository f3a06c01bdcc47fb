"""Body decoding (scoring.bodies) in-process: every body kind of the contract, and its errors."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
import soundfile as sf
import soxr

from devkit.scoring_client import (
    decoded_wav,
    flac_bytes,
    json_floats_body,
    json_int16_body,
    noise_signal,
    to_int16,
    wav_bytes,
)
from scoring.bodies import decode_body
from scoring.errors import RequestError
from scoring.settings import ServiceSettings

SETTINGS = ServiceSettings(max_audio_seconds=10.0)


def decode(content_type, body):
    return decode_body(content_type, body, SETTINGS)


def test_json_floats_are_taken_as_is():
    audio = noise_signal(0.5)
    out = decode("application/json", json_floats_body(audio))
    assert out.kind == "json" and out.samples.dtype == np.float32
    np.testing.assert_array_equal(out.samples, audio)


def test_json_int16_is_scaled_to_unit_range():
    pcm = to_int16(noise_signal(0.5))
    out = decode("application/json; charset=utf-8", json_int16_body(pcm))
    np.testing.assert_allclose(out.samples, pcm / 32768.0, rtol=0, atol=1e-7)


def test_json_integral_floats_above_one_are_int16():
    pcm = to_int16(noise_signal(0.5)).astype(float)
    out = decode("application/json", json.dumps({"data": pcm.tolist()}).encode())
    np.testing.assert_allclose(out.samples, pcm / 32768.0, atol=1e-7)


def test_json_sample_rate_resamples_to_16k():
    audio = noise_signal(1.0, rate=8000)
    out = decode("application/json", json_floats_body(audio, sample_rate=8000))
    assert out.source_rate == 8000 and len(out.samples) == 16000
    np.testing.assert_array_equal(out.samples, soxr.resample(audio, 8000, 16000, quality="HQ"))


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "PCM_U8", "FLOAT"])
def test_wav_subtypes(subtype):
    audio = noise_signal(0.5)
    body = wav_bytes(audio, subtype=subtype)
    out = decode("audio/wav", body)
    np.testing.assert_array_equal(out.samples, decoded_wav(body))
    np.testing.assert_allclose(out.samples, audio, atol=0.01)


def test_wav_stereo_44k_is_downmixed_and_resampled():
    stereo = noise_signal(1.0, rate=44100, channels=2)
    body = wav_bytes(stereo, rate=44100)
    out = decode("audio/x-wav", body)
    assert out.source_rate == 44100 and len(out.samples) == 16000
    np.testing.assert_array_equal(out.samples, decoded_wav(body))


def test_flac_and_raw_pcm():
    audio = noise_signal(0.5)
    pcm = to_int16(audio)
    flac = decode("audio/flac", flac_bytes(pcm))  # int16 in: written exactly
    raw = decode("application/octet-stream", pcm.astype("<i2").tobytes())
    np.testing.assert_allclose(flac.samples, pcm / 32768.0, atol=1e-7)
    np.testing.assert_allclose(raw.samples, pcm / 32768.0, atol=1e-7)


def _riff_with_format_tag(tag: int) -> bytes:
    body = bytearray(wav_bytes(noise_signal(0.5)))
    struct.pack_into("<H", body, 20, tag)
    return bytes(body)


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        ("application/json", b"", 400, "empty_body"),
        (None, b"{}", 415, "missing_content_type"),
        ("text/plain", b"hello", 415, "unsupported_content_type"),
        ("application/json", b"\xff\xfe", 400, "invalid_json"),
        ("application/json", b"[1, 2]", 400, "invalid_json"),
        ("application/json", b'{"samples": [1]}', 400, "missing_data"),
        ("application/json", b'{"data": "0.1,0.2"}', 400, "data_not_a_list"),
        ("application/json", b'{"data": []}', 400, "empty_data"),
        ("application/json", b'{"data": [[0.1, 0.2]]}', 400, "data_not_flat"),
        ("application/json", b'{"data": [0.1, "x"]}', 400, "data_not_numeric"),
        ("application/json", b'{"data": [0.1, true]}', 400, "data_not_numeric"),
        ("application/json", b'{"data": [0.1, NaN]}', 400, "non_finite_samples"),
        ("application/json", b'{"data": [0.1, 1e999]}', 400, "non_finite_samples"),
        ("application/json", b'{"data": [0.5, 1.5]}', 400, "samples_out_of_range"),
        ("application/json", b'{"data": [40000, 1]}', 400, "samples_out_of_range"),
        ("application/json", b'{"data": [0.1], "sample_rate": 1}', 400, "invalid_sample_rate"),
        ("application/json", b'{"data": [0.1], "sample_rate": "16k"}', 400, "invalid_sample_rate"),
        (
            "application/json",
            b'{"data": [0.1], "sample_rate": 16000.5}',
            400,
            "invalid_sample_rate",
        ),
        ("application/json", b'{"data": [0.1, 0.2]}', 400, "audio_too_short"),
        ("application/json", json.dumps({"data": [0.0] * 160001}).encode(), 413, "audio_too_long"),
        ("audio/wav", b"RIFF\x00\x00\x00\x00WAVE", 400, "undecodable_audio"),
        ("audio/wav", b"not a wav file at all", 400, "not_wav"),
        ("audio/wav", wav_bytes(noise_signal(1.0))[:9000], 400, "truncated_audio"),
        ("audio/wav", _riff_with_format_tag(0x0011), 415, "unsupported_wav_encoding"),
        ("audio/wav", flac_bytes(noise_signal(0.5)), 400, "not_wav"),
        ("audio/flac", wav_bytes(noise_signal(0.5)), 400, "not_flac"),
        ("audio/flac", flac_bytes(noise_signal(1.0))[:3000], 400, "undecodable_audio"),
        ("application/octet-stream", b"\x00" * 3201, 400, "truncated_audio"),
        ("application/octet-stream", b"\x00" * (2 * 16000 * 11), 413, "audio_too_long"),
    ],
)
def test_bad_bodies(content_type, body, status, code):
    with pytest.raises(RequestError) as caught:
        decode(content_type, body)
    assert (caught.value.status, caught.value.code) == (status, code), caught.value.message
    assert len(caught.value.message) > 15


def test_mu_law_wav_is_refused_as_not_pcm():
    body = wav_bytes(noise_signal(0.5), subtype="ULAW")
    with pytest.raises(RequestError) as caught:
        decode("audio/wav", body)
    assert caught.value.status == 415 and "mu-law" in caught.value.message


def test_wav_sample_rate_absurd():
    body = bytearray(wav_bytes(noise_signal(0.5)))
    struct.pack_into("<I", body, 24, 2_000_000)  # fmt chunk: sample rate field
    with pytest.raises(RequestError) as caught:
        decode("audio/wav", bytes(body))
    assert caught.value.code == "invalid_sample_rate"


# ------------------------------------------------------------ found by bench/probe.py (round 2)
def test_a_multichannel_high_rate_file_decoded_block_by_block_is_the_one_shot_decode():
    """WAV/FLAC are decoded, downmixed and resampled a block at a time (memory follows the
    16 kHz result): what the model hears must be exactly what one pass over the file gives,
    across block edges too (3 s at 96 kHz is 4.4 blocks)."""
    audio = noise_signal(3.0, rate=96000, channels=3, seed=9) * 0.5
    body = wav_bytes(audio, rate=96000, subtype="PCM_24")
    np.testing.assert_array_equal(decode("audio/wav", body).samples, decoded_wav(body))


def test_a_nan_in_a_later_block_of_a_float_wav_is_found_with_its_index():
    audio = noise_signal(6.0, seed=2).astype(np.float32) * 0.5
    audio[70_000] = np.nan  # past the first block
    with pytest.raises(RequestError, match="first at sample 70000") as err:
        decode("audio/wav", wav_bytes(audio, subtype="FLOAT"))
    assert err.value.status == 400 and err.value.code == "non_finite_samples"


def test_a_streamed_flac_of_unknown_length_is_a_400_that_says_so():
    """STREAMINFO total 0 (a streaming encoder): libsndfile reports 2**63 frames, which was a
    413 'the audio is 576460752303 s long'."""
    body = bytearray(flac_bytes(to_int16(noise_signal(1.0, seed=6))))
    field = int.from_bytes(body[18:26], "big") & ~((1 << 36) - 1)
    body[18:26] = field.to_bytes(8, "big")
    with pytest.raises(RequestError) as err:
        decode("audio/flac", bytes(body))
    assert (err.value.status, err.value.code) == (400, "flac_length_unknown")


def test_a_long_json_list_parsed_in_chunks_is_exact_across_chunk_edges(monkeypatch):
    import scoring.bodies as bodies

    monkeypatch.setattr(bodies, "JSON_CHUNK_BYTES", 1000)  # many chunks, edges everywhere
    pcm = to_int16(noise_signal(0.5, seed=4))
    out = decode("application/json", json_int16_body(pcm))
    np.testing.assert_array_equal(out.samples, (pcm / 32768.0).astype(np.float32))
    floats = noise_signal(0.5, seed=5)
    np.testing.assert_array_equal(decode("application/json", json_floats_body(floats)).samples,
                                  floats.astype(np.float32))  # fmt: skip
    body = json.dumps({"data": [0.1] * 3000 + [float("nan")] + [0.1] * 10}).encode()
    with pytest.raises(RequestError, match="first at index 3000"):
        decode("application/json", body)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ("[+.5, 01, 1., .5e-1]", "'+.5' at index 0"),  # issue 23 row 15: was a 200
        ("[0.5, 01]", "'01' at index 1"),
        ("[0.5, -01]", "'-01' at index 1"),
        ("[0.25, 1.]", "'1.' at index 1"),
        ("[0.25, .5e-1]", "'.5e-1' at index 1"),
        ("[0.25, -.5]", "'-.5' at index 1"),
        ("[0.25, 1e]", "'1e' at index 1"),
        ("[0.25, 1e+]", "'1e+' at index 1"),
        ("[0.25, 2-1]", "'2-1' at index 1"),
    ],
)
def test_numbers_json_does_not_allow_are_a_400_naming_them(data, named):
    with pytest.raises(RequestError) as caught:
        decode("application/json", f'{{"data": {data}}}'.encode())
    assert (caught.value.status, caught.value.code) == (400, "invalid_json")
    assert named in caught.value.message and "not a JSON number" in caught.value.message


def test_every_json_number_form_is_still_read():
    forms = "0, -0, 0.5, -0.25, 1e-1, 2.5E-1, 1E+0, 1e-05, -0.0, 0.125e0, 5e-01, 10e-02"
    body = f'{{"data": [{forms}{", 0.0" * 2000}]}}'.encode()  # 0.1 s at least
    samples = decode("application/json", body).samples
    assert samples.dtype == np.float32 and len(samples) == 2012
    expected = [0, 0, 0.5, -0.25, 0.1, 0.25, 1, 1e-5, 0, 0.125, 0.5, 0.1]
    assert np.array_equal(samples[:12], np.array(expected, dtype=np.float32))


def test_a_bad_number_in_a_later_chunk_is_found_with_its_index(monkeypatch):
    import scoring.bodies as bodies

    monkeypatch.setattr(bodies, "JSON_CHUNK_BYTES", 64)
    values = ["0.001"] * 500 + ["01"] + ["0.001"] * 100
    with pytest.raises(RequestError, match="'01' at index 500"):
        decode("application/json", f'{{"data": [{", ".join(values)}]}}'.encode())


def _many_channel_wav(channels: int, seconds: float, rate: int = 16000) -> bytes:
    """8-bit PCM WAV, quiet noise on every channel (the issue's 1024-channel body, smaller)."""
    buffer = io.BytesIO()
    frames = int(seconds * rate)
    noise = np.random.default_rng(3).integers(-2, 3, (frames, channels)).astype(np.int16) << 8
    sf.write(buffer, noise, rate, subtype="PCM_U8", format="WAV")
    return buffer.getvalue()


@pytest.mark.parametrize("channels", [0, 1024, 4096, 65535])
def test_an_absurd_channel_count_is_a_400_naming_it(channels):
    """Written by hand past 1024 channels (libsndfile neither writes nor opens more)."""
    data = b"\x80" * (channels * 100)
    fmt = struct.pack("<HHIIHH", 1, channels, 16000, 16000 * channels, channels, 8)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data))
    body = b"RIFF" + struct.pack("<I", 4 + len(chunks) + len(data)) + b"WAVE" + chunks + data
    with pytest.raises(RequestError) as caught:
        decode("audio/wav", body)
    code = "too_many_channels" if channels else "no_channels"
    assert (caught.value.status, caught.value.code) == (400, code)
    assert f"has {channels} channels" in caught.value.message


def test_decoding_memory_follows_the_16k_mono_result_not_the_channel_count():
    """Issue 23 row 1: blocks were counted in frames, so 65536 frames of 1024 channels were 268
    MB of float32 (and as much again for the checks): +721 MB for one 134 MB body. Here 128
    channels, 8 s (16 MB of 8-bit samples): the old blocks peaked at about 70 MB of numpy."""
    import tracemalloc

    body = _many_channel_wav(128, 8.0)
    result_bytes = 8 * 16000 * 4
    tracemalloc.start()
    try:
        audio = decode("audio/wav", body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(audio.samples) == 8 * 16000
    assert peak < 2 * result_bytes + 8 * (1 << 20), f"peak {peak / 1e6:.1f} MB"
