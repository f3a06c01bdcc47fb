"""Many synthetic voices for a keyword: espeak-ng, flite and festival (Debian), offline.

A keyword spotter trained on one synthesizer learns that synthesizer. Voice diversity here
comes from every offline engine Debian has for English, each with its own controls:

    espeak-ng  8 accents x ~100 voice variants, speed 100-230 wpm, pitch 10-90, pronunciation
               variants given as phonemes ([[...]] input, from the accents' own transcriptions
               with vowel and stress swaps), and intonation (. ? !)
    flite      5 voices (kal, kal16, awb, rms, slt) with duration stretch and target pitch
    festival   kal_diphone, ked_diphone, cmu_us_slt_arctic_hts with duration stretch

(MBROLA voices and SVOX pico are not in this Debian release.) Every job is a small frozen
record, so a dataset is decided up front from a seed and rendered in any order.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from edgeml.audioformat import resample
from kwtrain.bootstrap import ACCENTS

RATE = 16000
ESPEAK_ACCENTS = ACCENTS  # the English voices of espeak-ng, as the MFCC bootstrap uses
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
# vowel swaps (espeak-ng's English phoneme names) that people's accents make
VOWEL_SWAPS = {
    "@": ("a#", "V", "I"),
    "a#": ("@", "a"),
    "I": ("i", "@", "E"),
    "E": ("e", "a", "I"),
    "i:": ("I", "i"),
    "u:": ("U", "u"),
    "oU": ("o:", "O"),
    "A@": ("A:", "a@"),
    "3": ("@", "3:"),
    "OI": ("oI",),
    "a": ("E", "a#"),
}


@dataclass(frozen=True)
class SynthJob:
    engine: str  # espeak | flite | festival
    voice: str
    text: str  # words, or [[phonemes]] for espeak
    speed: float  # espeak: wpm; flite/festival: duration stretch (1 = normal)
    pitch: float  # espeak: 0-99; flite: target mean F0 in Hz (0 = voice default)

    @property
    def group(self) -> str:
        return f"{self.engine}:{self.voice.split('+')[-1]}"

    def key(self) -> str:
        return hashlib.sha1(repr(self).encode()).hexdigest()[:16]


def available_engines() -> list[str]:
    out = []
    if shutil.which("espeak-ng"):
        out.append("espeak")
    if shutil.which("flite"):
        out.append("flite")
    if shutil.which("text2wave"):
        out.append("festival")
    return out


@lru_cache(maxsize=1)
def espeak_variants() -> tuple[str, ...]:
    out = subprocess.run(
        ["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True
    ).stdout
    return tuple(
        line.split()[4].removeprefix("!v/") for line in out.splitlines()[1:] if line.strip()
    )


@lru_cache(maxsize=4096)
def phonemes(text: str, accent: str = "en-us") -> str:
    """espeak-ng's phoneme transcription of `text` (Kirshenbaum-like ASCII, `-x`)."""
    out = subprocess.run(  # text on stdin: never taken as an option (see tts.synthesize)
        ["espeak-ng", "-q", "-x", "-v", accent, "--stdin"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return " ".join(out.split())


_PHONEME = re.compile(r"a#|A@|i:|u:|oU|OI|3:|[@aEIiUu3]")


def pronunciations(keyword: str, rng: np.random.Generator, n: int = 12) -> list[str]:
    """Spellings and phoneme strings for the keyword: each accent's own, plus vowel and stress
    variants of them (as [[...]] espeak input)."""
    base = sorted({phonemes(keyword, a) for a in ("en-us", "en-gb", "en-gb-scotland", "en-029")})
    out = [keyword, keyword.capitalize() + "?", keyword.capitalize() + "!"]
    out += [f"[[{p}]]" for p in base]
    tries = 0
    while len(out) < n + 3 + len(base) and tries < 200:
        tries += 1
        p = str(rng.choice(base))
        spots = list(_PHONEME.finditer(p))
        if not spots:
            break
        m = spots[int(rng.integers(len(spots)))]
        swaps = VOWEL_SWAPS.get(m.group())
        if not swaps:
            continue
        q = p[: m.start()] + str(rng.choice(swaps)) + p[m.end() :]
        if rng.random() < 0.3 and "'" in q:  # move the stress mark to another vowel
            q = q.replace("'", "", 1)
            vs = list(_PHONEME.finditer(q))
            v = vs[int(rng.integers(len(vs)))]
            q = q[: v.start()] + "'" + q[v.start() :]
        item = f"[[{q}]]"
        if item not in out:
            out.append(item)
    return out


def plan_jobs(
    texts: list[str], count: int, rng: np.random.Generator, engines: list[str] | None = None
) -> list[SynthJob]:
    """`count` jobs over the engines (espeak ~80 %, flite ~12 %, festival ~8 % when present)."""
    engines = engines or available_engines()
    if not engines:
        raise RuntimeError("no speech synthesizer: install espeak-ng (and flite, festival)")
    share = {"espeak": 0.8, "flite": 0.12, "festival": 0.08}
    p = np.array([share[e] for e in engines])
    p = p / p.sum()
    variants = espeak_variants() if "espeak" in engines else ()
    plain = [t for t in texts if not t.startswith("[[")] or texts
    jobs = []
    for _ in range(count):
        engine = str(rng.choice(engines, p=p))
        if engine == "espeak":
            accent = str(rng.choice(ESPEAK_ACCENTS))
            variant = str(rng.choice(("", *variants)))
            voice = accent + (f"+{variant}" if variant else "")
            jobs.append(
                SynthJob(
                    "espeak",
                    voice,
                    str(rng.choice(texts)),
                    float(rng.integers(100, 231)),
                    float(rng.integers(10, 91)),
                )
            )
        elif engine == "flite":
            jobs.append(
                SynthJob(
                    "flite",
                    str(rng.choice(FLITE_VOICES)),
                    str(rng.choice(plain)),
                    round(float(rng.uniform(0.75, 1.4)), 2),
                    float(rng.choice([0, 0, rng.uniform(80, 260)])),
                )
            )
        else:
            jobs.append(
                SynthJob(
                    "festival",
                    str(rng.choice(FESTIVAL_VOICES)),
                    str(rng.choice(plain)),
                    round(float(rng.uniform(0.75, 1.4)), 2),
                    0.0,
                )
            )
    return jobs


def _read(wav: bytes) -> np.ndarray:
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), rate, RATE)


def render(job: SynthJob) -> np.ndarray:
    """The job's audio, float32 at 16 kHz (leading and trailing silence kept as the engine
    writes it)."""
    if job.engine == "espeak":
        cmd = ["espeak-ng", "-v", job.voice, "-s", str(int(job.speed)), "-p", str(int(job.pitch))]
        wav = subprocess.run(  # text on stdin, never an option (see tts.synthesize)
            [*cmd, "--stdout", "--stdin"], input=job.text.encode(), capture_output=True, check=True
        ).stdout
        return _read(wav)
    if job.engine == "flite":
        cmd = ["flite", "-voice", job.voice, "--setf", f"duration_stretch={job.speed}"]
        if job.pitch:
            cmd += ["--setf", f"int_f0_target_mean={job.pitch:.0f}"]
        with tempfile.TemporaryDirectory() as tmp:  # flite cannot write a WAV to stdout
            out = os.path.join(tmp, "out.wav")
            subprocess.run([*cmd, "-t", job.text, "-o", out], capture_output=True, check=True)
            return _read(Path(out).read_bytes())
    if job.engine == "festival":
        scheme = f"(voice_{job.voice}) (Parameter.set 'Duration_Stretch {job.speed})"
        with tempfile.TemporaryDirectory() as tmp:  # text2wave's stdout WAV has no length
            out = os.path.join(tmp, "out.wav")
            subprocess.run(
                ["text2wave", "-eval", scheme, "-o", out],
                input=job.text.encode(),
                capture_output=True,
                check=True,
            )
            return _read(Path(out).read_bytes())
    raise ValueError(f"unknown engine {job.engine}")
