"""Bootstrap a keyword dataset with no recordings: espeak-ng voices and generated noise.

Writes Edge Impulse's folder-per-label layout with 1 s, 16 kHz clips:

    <out>/<keyword>/  the keyword in many voices, speeds and pitches, at random offsets
    <out>/unknown/    other words (common, confusable, command words) and 1 s cuts of sentences
                      (as the sliding window sees them, often with the sentence's start or end)
    <out>/noise/      white, pink, brown noise, mains hum, hum + pink, a quiet microphone,
                      bursts and clicks (transients over a quiet floor)
    <out>/manifest.csv  file,label,group,text,voice; group = the espeak-ng voice variant

A voice is an accent (en-us, en-gb, en-gb-scotland, ...) plus one of espeak-ng's ~100 variants
(m1..m8, f1..f5, klatt, whisper, ...). Grouping by variant lets training hold out whole
variants, so its test figures are for voices the model has not heard.

`<out>/.kwtrain-bootstrap.json` is written FIRST saying `"complete": false` and replaced LAST
(after manifest.csv) saying `"complete": true`: a run that was interrupted (Ctrl-C, a kill, a
full disk) leaves a folder that says so. `load_dataset` refuses such a folder and `kwtrain
build` generates it again: a half-made set once trained into a model without a noise class,
and the build said nothing and exited 0.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgeml.audioformat import SAMPLE_RATE
from kwtrain import noise, tts, vocab
from kwtrain.clips import active_bounds, normalize_peak, place, write_wav
from kwtrain.dataset import MARKER, DatasetError
from kwtrain.names import check_keyword

ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
DEFAULT_VARIANT = "default"  # espeak-ng's voice without a +variant


@dataclass(frozen=True)
class BootstrapSettings:
    keyword: str = "listen"
    keyword_per_voice: int = 2
    words_per_voice: int = 3
    sentence_cuts_per_voice: int = 2
    noise_clips: int = 800
    accents: tuple[str, ...] = ACCENTS
    variants: tuple[str, ...] | None = None  # None = every variant espeak-ng has
    speed_range: tuple[int, int] = (110, 210)
    pitch_range: tuple[int, int] = (15, 85)
    rate: int = SAMPLE_RATE
    window_seconds: float = 1.0
    seed: int = 0
    workers: int = 2


@dataclass(frozen=True)
class Job:
    label: str
    text: str
    voice: tts.Voice
    group: str
    kind: str  # "word" or "sentence"
    name: str


def _rng(*parts: object) -> np.random.Generator:
    """A generator seeded from the job's identity: same data whatever the thread order."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def voices(settings: BootstrapSettings) -> list[tuple[str, str]]:
    """(espeak voice name, group) for every accent x variant."""
    variants = settings.variants if settings.variants is not None else tuple(tts.list_variants())
    out = []
    for variant in (DEFAULT_VARIANT, *variants):
        for accent in settings.accents:
            name = accent if variant == DEFAULT_VARIANT else f"{accent}+{variant}"
            out.append((name, variant))
    return out


def _random_voice(rng: np.random.Generator, name: str, settings: BootstrapSettings) -> tts.Voice:
    speed = int(rng.integers(settings.speed_range[0], settings.speed_range[1] + 1))
    pitch = int(rng.integers(settings.pitch_range[0], settings.pitch_range[1] + 1))
    return tts.Voice(name, speed=speed, pitch=pitch)


def plan(settings: BootstrapSettings) -> list[Job]:
    """Every clip to synthesise, decided up front from the seed."""
    words = vocab.negative_words(settings.keyword)
    sentences = vocab.negative_sentences(settings.keyword)
    jobs: list[Job] = []
    for name, group in voices(settings):
        rng = _rng(settings.seed, name)
        for i in range(settings.keyword_per_voice):
            voice = _random_voice(rng, name, settings)
            jobs.append(Job(settings.keyword, settings.keyword, voice, group, "word", str(i)))
        for w in rng.choice(words, size=settings.words_per_voice, replace=False):
            voice = _random_voice(rng, name, settings)
            jobs.append(Job("unknown", str(w), voice, group, "word", str(w)))
        for i in range(settings.sentence_cuts_per_voice):
            voice = _random_voice(rng, name, settings)
            text = str(rng.choice(sentences))
            jobs.append(Job("unknown", text, voice, group, "sentence", f"sentence{i}"))
    return jobs


def render(job: Job, settings: BootstrapSettings) -> np.ndarray | None:
    """Synthesise one job into a 1 s window; None when it cannot be used.

    A keyword longer than the window is dropped (a cut keyword would teach the wrong thing);
    longer words and sentences are cut at a random place that has speech in it.
    """
    window = int(settings.rate * settings.window_seconds)
    rng = _rng(settings.seed, job.voice, job.text, job.name)
    audio = tts.synthesize(job.text, job.voice, settings.rate)
    start, end = active_bounds(audio, settings.rate)
    speech = audio[start:end]
    if job.label == settings.keyword and len(speech) > window:
        return None
    for _ in range(5):
        if job.kind == "sentence":
            clip = stream_cut(speech, window, int(0.3 * settings.rate), rng)
        else:
            clip = place(speech, window, rng, margin=int(0.02 * settings.rate))
        if np.max(np.abs(clip)) > 0.05 * np.max(np.abs(speech)):
            return normalize_peak(clip, float(rng.uniform(-12.0, -1.0)))
    return None


def stream_cut(speech: np.ndarray, window: int, min_inside: int, rng: np.random.Generator):
    """A window as the runner slides it over an utterance: often with its start or end inside.

    At least `min_inside` samples of speech are in the window; outside the speech is silence.
    """
    start = int(rng.integers(-(window - min_inside), max(1, len(speech) - min_inside) + 1))
    clip = np.zeros(window, dtype=np.float32)
    src_lo, src_hi = max(0, start), min(len(speech), start + window)
    clip[src_lo - start : src_hi - start] = speech[src_lo:src_hi]
    return clip


def _file_name(job: Job) -> str:
    safe = job.voice.name.replace("+", "_")
    text = job.name.replace(" ", "_")
    return f"{job.label}.{safe}.s{job.voice.speed}.p{job.voice.pitch}.{text}.wav"


def _noise_rows(out: Path, settings: BootstrapSettings) -> Iterable[dict]:
    window = int(settings.rate * settings.window_seconds)
    for i in range(settings.noise_clips):
        rng = _rng(settings.seed, "noise", i)
        kind = noise.KINDS[i % len(noise.KINDS)]
        level = float(rng.uniform(-65.0, -20.0))
        clip = noise.make(kind, window, settings.rate, level, rng)
        name = f"noise.{kind.replace('+', '_')}.{i:04d}.wav"
        write_wav(out / "noise" / name, clip, settings.rate)
        yield {
            "file": f"noise/{name}",
            "label": "noise",
            "group": f"noise-{i % 50}",
            "text": "",
            "voice": f"{kind}@{level:.0f}dBFS",
        }


def _write_marker(out: Path, info: dict) -> None:
    """The marker, replaced atomically (never half a marker that reads as complete)."""
    tmp = out / f"{MARKER}.tmp"
    tmp.write_text(json.dumps(info, indent=2, default=str))
    os.replace(tmp, out / MARKER)


def bootstrap(out: Path, settings: BootstrapSettings = BootstrapSettings()) -> dict:
    """Generate the dataset into `out`; return counts per label. Raises DatasetError when no
    keyword clip could be made (the keyword is too long to say in the window)."""
    check_keyword(settings.keyword)  # a path or an option is refused before anything is written
    out = Path(out)
    tts.espeak_path()  # fail early with the install hint
    out.mkdir(parents=True, exist_ok=True)
    _write_marker(out, {"complete": False, "settings": asdict(settings)})
    rows, skipped = _speech_rows(out, settings)
    rows.extend(tqdm(_noise_rows(out, settings), total=settings.noise_clips, desc="noise clips"))
    with (out / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "label", "group", "text", "voice"])
        writer.writeheader()
        writer.writerows(rows)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["label"]] = counts.get(row["label"], 0) + 1
    if not counts.get(settings.keyword):
        raise DatasetError(
            f"no clip of the keyword {settings.keyword!r} fits the {settings.window_seconds:g} s "
            f"window in any voice ({skipped} were too long): choose a shorter keyword"
        )
    _write_marker(out, {"complete": True, "settings": asdict(settings), "counts": counts})
    return {"out": str(out), "counts": counts, "skipped_too_long": skipped}


def _speech_rows(out: Path, settings: BootstrapSettings) -> tuple[list[dict], int]:
    """Render every espeak-ng job into `out`; (manifest rows, jobs dropped as unusable).
    Interrupted, the jobs not yet started are cancelled (not run to the end first)."""
    jobs = plan(settings)
    rows: list[dict] = []
    skipped = 0

    def work(job: Job) -> dict | None:
        clip = render(job, settings)
        if clip is None:
            return None
        name = _file_name(job)
        write_wav(_inside(out, Path(job.label) / name), clip, settings.rate)
        return {
            "file": f"{job.label}/{name}",
            "label": job.label,
            "group": job.group,
            "text": job.text,
            "voice": str(job.voice),
        }

    pool = ThreadPoolExecutor(max_workers=max(1, settings.workers))
    try:
        for row in tqdm(pool.map(work, jobs), total=len(jobs), desc="espeak-ng clips", unit="clip"):
            if row is None:
                skipped += 1
            else:
                rows.append(row)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return rows, skipped


def _inside(out: Path, relative: Path) -> Path:
    """`out / relative`, refused when it would land outside `out` (a second guard behind the
    keyword check: no name makes the bootstrap write elsewhere)."""
    path = out / relative
    if not path.resolve().is_relative_to(out.resolve()):
        raise DatasetError(f"refusing to write {path}: outside the dataset folder {out}")
    return path
