"""Request body -> 16 kHz mono float32 samples, or a RequestError that names what is wrong.

Every body kind of the HTTP contract ends here: a JSON sample list (floats in [-1, 1] from
sample-client, int16-range integers from the edge app), a WAV or FLAC file (any rate, any channel
count: downmixed and resampled), or raw 16-bit little-endian mono PCM at 16 kHz. Checks run
cheapest first (Content-Type, size, header) so an oversized or malformed body costs little.
"""

from __future__ import annotations

import io
import json
import re
import struct
import warnings
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from scoring.errors import RequestError
from scoring.settings import (
    MAX_SAMPLE_RATE,
    MIN_AUDIO_SECONDS,
    MIN_SAMPLE_RATE,
    TARGET_RATE,
    ServiceSettings,
)

JSON_TYPES = frozenset({"application/json"})
WAV_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
FLAC_TYPES = frozenset({"audio/flac", "audio/x-flac"})
RAW_TYPES = frozenset({"application/octet-stream"})
SUPPORTED_TYPES = (
    "application/json, audio/wav (also audio/x-wav, audio/wave), audio/flac, "
    "application/octet-stream (raw 16-bit little-endian mono PCM at 16 kHz)"
)

# libsndfile subtypes that are plain linear samples ("PCM" in the contract's sense).
PCM_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"})
# WAVE format tags: 1 integer PCM, 3 IEEE float, 0xFFFE extensible (the real tag is in the GUID).
_WAV_PCM_TAGS = {1, 3}
_WAV_TAG_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0055: "MP3",
}
# Writers that stream to a pipe cannot know the length and put a placeholder in the header.
_STREAMING_DATA_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)
JSON_CHUNK_BYTES = 4 << 20  # of a JSON sample list parsed at a time
# Decoded at a time: BLOCK_BYTES of float32 frames, whatever the channel count. A block counted
# in frames (65536) was 268 MB for a 1024-channel WAV, and its checks took as much again: one
# 134 MB 8-bit body cost +721 MB (issue 23 row 1). In bytes the block is 1 MB for any layout.
BLOCK_BYTES = 1 << 20
# More channels than any microphone array or studio format sends in one file (MADI: 64,
# Dante: 128 per device); beyond it the body is refused, naming the count.
MAX_CHANNELS = 128


@dataclass(frozen=True)
class DecodedAudio:
    """What the model gets (16 kHz mono float32) and what the client sent, for the answer/logs."""

    samples: np.ndarray
    source_rate: int
    kind: str

    @property
    def seconds(self) -> float:
        return len(self.samples) / TARGET_RATE


def media_type(content_type: str | None) -> str:
    """'Audio/WAV; codecs=1' -> 'audio/wav'; '' when the header is absent."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_content_type(content_type: str | None) -> str:
    """The body kind, or 415 when the Content-Type is missing or not one we decode."""
    kind = media_type(content_type)
    if not kind:
        raise RequestError(
            415,
            "missing_content_type",
            f"the request has no Content-Type header; send one of: {SUPPORTED_TYPES}",
        )
    if kind not in JSON_TYPES | WAV_TYPES | FLAC_TYPES | RAW_TYPES:
        raise RequestError(
            415,
            "unsupported_content_type",
            f"Content-Type {kind!r} is not supported; send one of: {SUPPORTED_TYPES}",
        )
    return kind


def check_body_size(length: int | None, settings: ServiceSettings) -> None:
    """413 before reading a body that cannot hold an acceptable request."""
    if length is not None and length > settings.max_body_bytes:
        raise RequestError(
            413,
            "body_too_large",
            f"the body is {length} bytes; the limit is {settings.max_body_bytes} bytes "
            f"(audio up to {settings.max_audio_seconds:g} s)",
        )


def decode_body(content_type: str | None, body: bytes, settings: ServiceSettings) -> DecodedAudio:
    """Decode and validate one request body (the whole contract in one call)."""
    if not body:
        raise RequestError(
            400, "empty_body", 'the request has no body; send audio or {"data": [samples...]}'
        )
    kind = check_content_type(content_type)
    check_body_size(len(body), settings)
    if kind in JSON_TYPES:
        samples, rate = _decode_json(body, settings)
        name = "json"
    elif kind in WAV_TYPES:
        samples, rate = _decode_wav(body, settings)
        name = "wav"
    elif kind in FLAC_TYPES:
        samples, rate = _decode_flac(body, settings)
        name = "flac"
    else:
        samples, rate = _decode_raw(body, settings)
        name = "pcm"
    if name == "pcm":  # JSON, WAV and FLAC come checked and at 16 kHz (chunk by chunk)
        _check_sample_values(samples, name)
        samples = _to_target_rate(samples, rate)
    _check_min_duration(samples)
    return DecodedAudio(samples=samples, source_rate=rate, kind=name)


# ------------------------------------------------------------------------------------------ JSON
# The sample list is parsed by numpy from the body's bytes, not by json.loads: a list of 7 M
# Python floats costs about 32 bytes a sample (a 92 MB body took 1.3 GB); numpy takes 8. The
# object around it is walked field by field (json's own scanner), so deep nesting, absurd
# numbers or junk anywhere become a 400 that names them.
_WS = re.compile(r"[ \t\n\r]*")
_WS_BYTES = re.compile(rb"[ \t\n\r]*")
_NUMBER_CHARS = re.compile(rb"[0-9eE+\-., \t\n\r]*")
_DECODER = json.JSONDecoder()


def _decode_json(body: bytes, settings: ServiceSettings) -> tuple[np.ndarray, int]:
    fields, span = _json_object(body)
    if "data" not in fields and span is None:
        raise RequestError(
            400, "missing_data", 'the JSON object has no "data" field (the list of samples)'
        )
    if span is None:
        data = fields["data"]
        raise RequestError(
            400,
            "data_not_a_list",
            f'"data" must be a flat list of numbers, got a JSON {_json_type(data)}',
        )
    start, end = span
    count = _json_count(body, start, end)
    rate = _json_sample_rate(fields.get("sample_rate", TARGET_RATE))
    _check_duration(count, rate, settings)
    return _json_samples(body, start, end, count, rate), rate


def _invalid(message: str) -> RequestError:
    return RequestError(400, "invalid_json", f"the body is not valid JSON: {message}")


def _json_object(body: bytes) -> tuple[dict, tuple[int, int] | None]:
    """The top-level object's fields, with the "data" array left in the body as a byte span."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, "invalid_json", "the body is not UTF-8 text") from None
    i = _WS.match(text, 0).end()
    if not text.startswith("{", i):
        kind = "array" if text.startswith("[", i) else _json_type(_json_value(text, i)[0])
        raise RequestError(
            400,
            "invalid_json",
            f'expected a JSON object {{"data": [samples...]}}, got a JSON {kind}',
        )
    fields: dict = {}
    span: tuple[int, int] | None = None
    i = _WS.match(text, i + 1).end()
    if text.startswith("}", i):
        return fields, None
    while True:
        if not text.startswith('"', i):
            raise _invalid(f"expected a property name at character {i}")
        try:
            key, i = json.decoder.scanstring(text, i + 1)
        except json.JSONDecodeError as err:
            raise _invalid(f"{err.msg} at character {err.pos}") from None
        i = _WS.match(text, i).end()
        if not text.startswith(":", i):
            raise _invalid(f"expected ':' at character {i}")
        i = _WS.match(text, i + 1).end()
        if key == "data" and text.startswith("[", i):
            close = text.find("]", i)
            if close < 0:
                raise _invalid('the "data" list is not closed')
            if any(text.find(c, i + 1, close) >= 0 for c in '[{"'):
                _json_not_flat(text, i + 1, close)
            span = (i + 1, close) if body.isascii() else _byte_span(text, i + 1, close)
            fields.pop("data", None)
            i = close + 1
        else:
            fields[key], i = _json_value(text, i)
            if key == "data":
                span = None
        i = _WS.match(text, i).end()
        if text.startswith(",", i):
            i = _WS.match(text, i + 1).end()
            continue
        if text.startswith("}", i):
            break
        raise _invalid(f"expected ',' or '}}' at character {i}")
    if _WS.match(text, i + 1).end() != len(text):
        raise _invalid(f"extra data after the object at character {i + 1}")
    return fields, span


def _json_not_flat(text: str, start: int, close: int) -> None:
    """Name what a list with brackets or quotes inside holds, without parsing it (a list of a
    million small lists would cost gigabytes as Python objects)."""
    if text.find("[", start, close) >= 0 or text.find("{", start, close) >= 0:
        raise RequestError(
            400,
            "data_not_flat",
            '"data" must be a flat list of numbers (one mono channel); it holds nested '
            "lists or objects",
        )
    segment = text[start:close]
    words = (("null", type(None)), ("true", bool), ("false", bool))
    _reject_non_numbers({str} | {kind for word, kind in words if word in segment})


def _byte_span(text: str, start: int, end: int) -> tuple[int, int]:
    before = len(text[:start].encode("utf-8"))
    return before, before + len(text[start:end].encode("utf-8"))


def _json_value(text: str, i: int) -> tuple[object, int]:
    """One JSON value at text[i:], or a 400 naming what is wrong with it."""
    try:
        return _DECODER.raw_decode(text, i)
    except json.JSONDecodeError as err:
        raise _invalid(f"{err.msg} at line {err.lineno} column {err.colno}") from None
    except RecursionError:
        raise RequestError(
            400, "invalid_json", "the JSON is nested too deeply (a sample list is one level)"
        ) from None
    except ValueError as err:  # e.g. an integer of more than 4300 digits
        raise _invalid(str(err)[:120]) from None


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


_JSON_ITEM_NAMES = {str: "strings", bool: "booleans", type(None): "nulls"}


def _reject_non_numbers(others: set) -> None:
    if others:
        found = ", ".join(sorted(_JSON_ITEM_NAMES.get(k, k.__name__) for k in others))
        raise RequestError(
            400, "data_not_numeric", f'"data" must hold only numbers; it also holds: {found}'
        )


def _json_sample_rate(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(
            400,
            "invalid_sample_rate",
            f'"sample_rate" must be a number of samples per second, got a JSON {_json_type(value)}',
        )
    if value != value or value in (float("inf"), float("-inf")) or value != int(value):
        raise RequestError(
            400, "invalid_sample_rate", f'"sample_rate" must be a whole number, got {value!r}'
        )
    return _check_rate(int(value))


def _json_count(body: bytes, start: int, end: int) -> int:
    """How many samples the list holds (commas + 1), checked before anything is parsed."""
    if _WS_BYTES.match(body, start, end).end() == end:
        raise RequestError(400, "empty_data", '"data" is an empty list: there is no audio')
    return body.count(b",", start, end) + 1


def _json_samples(body: bytes, start: int, end: int, count: int, rate: int) -> np.ndarray:
    """16 kHz float32 samples in [-1, 1]; integers (or integral floats above 1) are int16 values.

    Parsed JSON_CHUNK_BYTES at a time (cut at a comma), each chunk resampled to 16 kHz as it
    comes: parsing the whole list at once took float64 copies of it at its own rate (8 bytes a
    sample each, several at once: an 84 MB body at 384 kHz cost about 1 GB); now the peak is
    one chunk and the 16 kHz result. The int16 scale (a power of two) is applied at the end:
    resampling is linear, so that is exactly the same as scaling first."""
    if _NUMBER_CHARS.fullmatch(body, start, end) is None:
        _name_junk(body, start, end)
    integers = not any(body.find(c, start, end) >= 0 for c in (b".", b"e", b"E"))
    stream = None if rate == TARGET_RATE else soxr.ResampleStream(
        rate, TARGET_RATE, 1, dtype="float32", quality="HQ"
    )  # fmt: skip
    parts, filled, peak, top, integral, pos = [], 0, 0.0, -np.inf, True, start
    while pos < end:
        cut = body.find(b",", min(pos + JSON_CHUNK_BYTES, end), end)
        cut = end if cut < 0 else cut
        _check_number_grammar(body, pos, cut, filled)
        values = _parse_numbers(body[pos:cut], body.count(b",", pos, cut) + 1)
        _check_json_values(values, integers, filled)
        peak, top = max(peak, float(np.abs(values).max())), max(top, float(values.max()))
        integral = integral and (integers or bool(np.all(values == np.round(values))))
        chunk = values.astype(np.float32)
        parts.append(chunk if stream is None else stream.resample_chunk(chunk))
        filled, pos = filled + len(values), cut + 1
    if filled != count:
        raise _invalid('"data" is not a list of numbers separated by commas')
    if stream is not None:
        parts.append(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    out = np.concatenate(parts)
    if peak <= 1.0 and not integers:
        return out
    if integral and peak <= 32768 and top <= 32767:
        out /= 32768.0  # int16 values are exact in float32; a power of two divides exactly
        return out
    raise RequestError(
        400,
        "samples_out_of_range",
        f'"data" samples must be floats in [-1, 1] or int16 integers in [-32768, 32767]; '
        f"the largest magnitude is {peak:g}",
    )


def _parse_numbers(text: bytes | bytearray, count: int) -> np.ndarray:
    """`count` comma-separated numbers as float64, or the 400 for a list that is not that."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # older numpy warns when it stops early
        try:
            values = np.fromstring(bytes(text), dtype=np.float64, sep=",")  # a chunk: 4 MB
        except ValueError:  # numpy 2.4 raises where it used to stop early
            values = None
    if values is None or len(values) != count:
        raise _invalid('"data" is not a list of numbers separated by commas')
    return values


def _is_digit(x: np.ndarray) -> np.ndarray:
    return (x >= 0x30) & (x <= 0x39)


def _is_exp(x: np.ndarray) -> np.ndarray:
    return (x == 0x65) | (x == 0x45)  # e E


def _check_number_grammar(body: bytes, start: int, end: int, offset: int) -> None:
    """400 unless every number in body[start:end] is a JSON number (RFC 8259 section 6).

    numpy's parser is C's strtod: it also reads `+.5`, `01`, `1.` and `.5e-1`, which JSON does
    not allow (issue 23: such a body got a 200). Checked on the bytes with numpy, each byte
    against its neighbours (about 7 ms per MB; a regular expression took 50-75 ms per MB).
    The characters are already known to be digits, signs, dots, exponents, commas, spaces."""
    b = np.frombuffer(b",," + body[start:end] + b",", dtype=np.uint8)
    before2, prev, cur, nxt = b[:-3], b[1:-2], b[2:-1], b[3:]
    sign = (cur == 0x2B) | (cur == 0x2D)
    bad = (cur == 0x2B) & ~_is_exp(prev)  # "+" only in an exponent
    bad |= sign & ~_is_digit(nxt)  # a sign is followed by a digit
    bad |= (cur == 0x2D) & (_is_digit(prev) | (prev == 0x2E))  # "-" inside a number
    bad |= (cur == 0x2E) & ~(_is_digit(prev) & _is_digit(nxt))  # "." between digits
    bad |= _is_exp(cur) & ~(_is_digit(prev) & (_is_digit(nxt) | (nxt == 0x2B) | (nxt == 0x2D)))
    inside = _is_digit(prev) | (prev == 0x2E) | _is_exp(prev) | (prev == 0x2B)
    first = ~inside & ((prev != 0x2D) | ~_is_exp(before2))  # a number's first digit
    bad |= first & (cur == 0x30) & _is_digit(nxt)  # no leading zeros ("01")
    if not bad.any():
        return
    at = int(np.argmax(bad))
    left = body.rfind(b",", start, start + at) + 1 or start
    right = body.find(b",", start + at, end)
    token = body[max(left, start) : end if right < 0 else right].strip()[:24]
    index = offset + body.count(b",", start, start + at)
    raise _invalid(f'"data" holds {token.decode("ascii", "replace")!r} at index {index}, '
                   "which is not a JSON number")  # fmt: skip


def _check_json_values(values: np.ndarray, integers: bool, offset: int) -> None:
    finite = np.isfinite(values)
    if finite.all():
        return
    if integers:
        raise RequestError(
            400, "samples_out_of_range", '"data" holds an integer too large for audio'
        )
    index = offset + int(np.argmin(finite))
    raise RequestError(
        400,
        "non_finite_samples",
        f'"data" holds NaN or Infinity (first at index {index}); samples must be finite',
    )


def _name_junk(body: bytes, start: int, end: int) -> None:
    """The list holds something other than numbers: say what (JSON literals) or where."""
    segment = body[start:end]
    kinds = {k for word, k in ((b"null", type(None)), (b"true", bool), (b"false", bool))
             if word in segment}  # fmt: skip
    _reject_non_numbers(kinds)
    for word in (b"NaN", b"Infinity"):
        at = segment.find(word)
        if at >= 0:
            index = segment.count(b",", 0, at)
            raise RequestError(
                400,
                "non_finite_samples",
                f'"data" holds NaN or Infinity (first at index {index}); samples must be finite',
            )
    bad = re.search(rb"[^0-9eE+\-., \t\n\r]", segment)
    at = bad.start() if bad else 0
    raise _invalid(
        f'"data" holds {segment[at : at + 12]!r} near sample {segment.count(b",", 0, at)}'
    )


# ---------------------------------------------------------------------------------- WAV / FLAC
def _decode_wav(body: bytes, settings: ServiceSettings) -> tuple[np.ndarray, int]:
    if len(body) < 12 or body[:4] not in (b"RIFF", b"RIFX", b"RF64") or body[8:12] != b"WAVE":
        raise RequestError(400, "not_wav", "the body is not a WAV file" + _sniff_hint(body))
    if body[:4] == b"RIFF":
        _check_riff(body)
    return _decode_soundfile(body, "WAV", settings)


def _decode_flac(body: bytes, settings: ServiceSettings) -> tuple[np.ndarray, int]:
    if body[:4] != b"fLaC":
        raise RequestError(400, "not_flac", "the body is not a FLAC file" + _sniff_hint(body))
    return _decode_soundfile(body, "FLAC", settings)


def _sniff_hint(body: bytes) -> str:
    """Point at the right Content-Type when the body is another format we know."""
    if body[:4] == b"fLaC":
        return " (it looks like FLAC: send Content-Type: audio/flac)"
    if body[:4] == b"RIFF" and body[8:12] == b"WAVE":
        return " (it looks like WAV: send Content-Type: audio/wav)"
    if body[:1] in (b"{", b"["):
        return " (it looks like JSON: send Content-Type: application/json)"
    return f" (it starts with {bytes(body[:8])!r})"


def _check_riff(body: bytes) -> None:
    """Walk the RIFF chunks: 415 for a compressed encoding, 400 for a cut-off data chunk.

    libsndfile quietly returns the frames that are present when a WAV is truncated, and decodes
    some compressed encodings; both must be client errors with a clear message instead.
    """
    offset, fmt_tag, data = 12, None, None
    while offset + 8 <= len(body):
        chunk_id = body[offset : offset + 4]
        (size,) = struct.unpack_from("<I", body, offset + 4)
        start = offset + 8
        if chunk_id == b"fmt " and start + 2 <= len(body):
            (fmt_tag,) = struct.unpack_from("<H", body, start)
            if start + 4 <= len(body):  # named here: libsndfile opens 1024 channels at most
                _check_channels(struct.unpack_from("<H", body, start + 2)[0], "WAV")
            if fmt_tag == 0xFFFE and start + 26 <= len(body):
                (fmt_tag,) = struct.unpack_from("<H", body, start + 24)  # SubFormat GUID
        elif chunk_id == b"data":
            data = (size, len(body) - start)
            break
        offset = start + size + (size & 1)
    if fmt_tag is None or data is None:
        missing = "'fmt '" if fmt_tag is None else "'data'"
        raise RequestError(
            400, "undecodable_audio", f"the WAV file has no {missing} chunk (cut off or not a WAV)"
        )
    if fmt_tag not in _WAV_PCM_TAGS:
        name = _WAV_TAG_NAMES.get(fmt_tag, "a compressed encoding")
        raise RequestError(
            415,
            "unsupported_wav_encoding",
            f"the WAV file is {name} (format tag 0x{fmt_tag:04x}), not PCM; send 8/16/24/32-bit "
            "integer or float PCM",
        )
    declared, present = data
    if declared not in _STREAMING_DATA_SIZES and present < declared:
        raise RequestError(
            400,
            "truncated_audio",
            f"the WAV file is cut off: its header declares {declared} bytes of audio, "
            f"the body holds {present}",
        )


def _decode_soundfile(body: bytes, fmt: str, settings: ServiceSettings) -> tuple[np.ndarray, int]:
    """Decoded block by block: each block checked, downmixed and resampled to 16 kHz before the
    next is read, so memory follows the 16 kHz mono result, not the file's own rate and channel
    count (a 250 KB FLAC of 4-channel 384 kHz silence is 676 MB as float32 frames at once).
    Returns samples at TARGET_RATE, already checked, and the file's own rate."""
    try:
        with sf.SoundFile(BufferReader(body)) as f:
            if f.subtype not in PCM_SUBTYPES:
                raise RequestError(
                    415,
                    "unsupported_wav_encoding" if fmt == "WAV" else "unsupported_encoding",
                    f"the {fmt} file is encoded as {f.subtype}, not PCM",
                )
            rate = _check_rate(f.samplerate)
            _check_channels(f.channels, fmt)
            if fmt == "FLAC" and _flac_length_unknown(body):
                raise RequestError(
                    400,
                    "flac_length_unknown",
                    "the FLAC file does not state its length (STREAMINFO total samples is 0, "
                    "as a streaming encoder writes it), which this decoder cannot read to its "
                    "end: encode it to a file (e.g. `flac -f`), or send WAV",
                )
            declared = f.frames
            _check_duration(declared, rate, settings)
            samples, frames = _decode_blocks(f, rate, fmt, settings)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise RequestError(
            400, "undecodable_audio", f"the {fmt} file cannot be decoded: {_sf_message(err)}"
        ) from None
    if fmt == "FLAC" and frames < declared:
        raise RequestError(
            400,
            "truncated_audio",
            f"the FLAC file is cut off: it declares {declared} frames, {frames} are present",
        )
    if frames == 0:
        raise RequestError(400, "empty_audio", f"the {fmt} file holds no audio frames")
    return samples, rate


def _decode_blocks(f: sf.SoundFile, rate: int, fmt: str, settings: ServiceSettings):
    """(16 kHz mono float32, frames read) from an open file, BLOCK_BYTES of frames at a time."""
    limit = int(settings.max_audio_seconds * rate)  # WAV: the data chunk may say less or more
    stream = None if rate == TARGET_RATE else soxr.ResampleStream(
        rate, TARGET_RATE, 1, dtype="float32", quality="HQ"
    )  # fmt: skip
    parts, frames = [], 0
    block_frames = max(1, BLOCK_BYTES // (4 * max(1, f.channels)))
    while len(block := f.read(block_frames, dtype="float32", always_2d=True)):
        if frames + len(block) > limit:  # a length the header did not say (a streamed FLAC)
            _check_duration(frames + len(block), rate, settings)
        _check_sample_values(block, fmt, offset=frames)  # before the downmix averages it away
        mono = block[:, 0].copy() if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
        parts.append(mono if stream is None else stream.resample_chunk(mono))
        frames += len(block)
    if stream is not None:
        parts.append(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return np.ascontiguousarray(samples, dtype=np.float32), frames


def _check_channels(channels: int, fmt: str) -> None:
    if not 1 <= channels <= MAX_CHANNELS:
        raise RequestError(
            400,
            "too_many_channels" if channels else "no_channels",
            f"the {fmt} file has {channels} channels; the service takes 1 to {MAX_CHANNELS} "
            "(it downmixes them to mono): send mono or stereo",
        )


class BufferReader(io.RawIOBase):
    """A seekable reader over a body in memory without a copy of it: the body arrives as a
    bytearray (score_audio._read_body fills one, so the read costs the body once, not twice)
    and io.BytesIO copies anything but bytes. libsndfile reads through readinto()."""

    def __init__(self, data: bytes | bytearray) -> None:
        super().__init__()
        self._view = memoryview(data)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        n = max(0, min(len(target), len(self._view) - self._pos))
        target[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._view.release()
        super().close()


def _flac_length_unknown(body: bytes) -> bool:
    """STREAMINFO's total sample count is 0 when the encoder streamed (it did not know the
    length); libsndfile then reports 2**63 frames (which read as a misleading 413) and fails
    with "psf_fseek() failed" partway through the last block, losing the tail."""
    if len(body) < 26:
        return False
    return int.from_bytes(body[18:26], "big") & ((1 << 36) - 1) == 0


def _sf_message(err: Exception) -> str:
    """libsndfile's reason without the Python object repr it embeds."""
    text = str(err)
    return text.split(": ", 1)[1] if text.startswith("Error opening") and ": " in text else text


# ------------------------------------------------------------------------------------- raw PCM
def _decode_raw(body: bytes, settings: ServiceSettings) -> tuple[np.ndarray, int]:
    if len(body) % 2:
        raise RequestError(
            400,
            "truncated_audio",
            f"raw 16-bit PCM needs an even number of bytes; the body has {len(body)}",
        )
    _check_duration(len(body) // 2, TARGET_RATE, settings)
    samples = np.frombuffer(body, dtype="<i2").astype(np.float32) / 32768.0
    return samples, TARGET_RATE


# -------------------------------------------------------------------------------------- common
def _check_rate(rate: int) -> int:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise RequestError(
            400,
            "invalid_sample_rate",
            f"sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz",
        )
    return rate


def _check_duration(frames: int, rate: int, settings: ServiceSettings) -> None:
    """413 above MAX_AUDIO_SECONDS, checked on the header/length before decoding the samples."""

    seconds = frames / rate
    if seconds > settings.max_audio_seconds:
        raise RequestError(
            413,
            "audio_too_long",
            f"the audio is {seconds:.1f} s long; this service takes at most "
            f"{settings.max_audio_seconds:g} s per request",
        )


def _check_sample_values(samples: np.ndarray, kind: str, offset: int = 0) -> None:
    """Float PCM (WAV/FLAC "FLOAT"/"DOUBLE") can hold NaN, infinities and values beyond full
    scale; the model would be fed garbage (Whisper then decodes for 30 s a window). The same
    rule as the JSON path: finite, within [-1, 1]."""
    finite = np.isfinite(samples)
    if not finite.all():
        index = offset + int(np.argmin(finite.all(axis=1) if finite.ndim == 2 else finite))
        raise RequestError(
            400,
            "non_finite_samples",
            f"the {kind} audio holds NaN or infinite samples (first at sample {index})",
        )
    peak = float(np.abs(samples).max()) if len(samples) else 0.0
    if peak > 1.0:
        raise RequestError(
            400,
            "samples_out_of_range",
            f"the {kind} audio holds samples beyond full scale (peak {peak:g}); float samples "
            "must lie within [-1, 1]",
        )


def _check_min_duration(samples: np.ndarray) -> None:
    seconds = len(samples) / TARGET_RATE
    if seconds < MIN_AUDIO_SECONDS:
        raise RequestError(
            400,
            "audio_too_short",
            f"the audio is {seconds * 1000:.0f} ms long; at least "
            f"{MIN_AUDIO_SECONDS * 1000:.0f} ms are needed",
        )


def _to_target_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    """Resample to 16 kHz with soxr (the resampler librosa uses), float32 in and out."""
    if rate == TARGET_RATE:
        return samples
    return soxr.resample(samples, rate, TARGET_RATE, quality="HQ").astype(np.float32, copy=False)
