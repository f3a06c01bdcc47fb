"""Real sentences under real noise, with ground truth, for the endpointing benchmark and tests.

Ground truth comes from the CLEAN clip, before any noise is mixed in, and from its energy alone
(not from any VAD under test): 10 ms frames; the clip's own background is the 10th percentile
of its frame levels; a frame is speech when it is 10 dB above that background and no more than
45 dB below the clip's loud frames (95th percentile); runs of speech shorter than 30 ms are
dropped (clicks). The first speech frame is where the speech starts, the last one where the
last word ends. `bench/endpointing.py --check-truth` compares these boundaries with Whisper's
word timestamps on the same clean clips (docs/benchmarks.md gives the agreement).

Noise is mixed at a stated SNR measured as speech power over the ACTIVE speech frames of the
clean sentence (the ground-truth frames) against the noise bed's mean power over the stretch
that is used, so a sentence with long pauses is not given a lower noise level.

Data: `utt/` sentences and the `speech_long/` items that have a transcript (their first phrase:
up to the first pause of 1.5 s or more after at least 2 s, at most 12 s, since a recording is
at most 15 s), and
every `noise_bed/` recording. Both are split by a hash of the file name into a development half
(used to choose defaults) and a held-out half (only reported), so no default is tuned to the
files it is judged on.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000
TRUTH_FRAME = 160  # 10 ms
SPEECH_ABOVE_FLOOR_DB = 10.0
PHRASE_PAUSE_S = 1.5  # a speech_long item's first phrase ends at the first pause this long
MIN_PHRASE_S = 2.0  # ... after at least this much of it (a lone "hello" is not a sentence)
MAX_PHRASE_S = 12.0


@dataclass(frozen=True)
class Sentence:
    """A clean real sentence and where its speech is (sample indices in `audio`)."""

    name: str
    audio: np.ndarray  # int16, 16 kHz
    speech_start: int
    speech_end: int  # one past the last word's last speech frame
    transcript: str
    split: str  # "dev" or "held-out"
    active: np.ndarray  # bool per 10 ms frame: the ground-truth speech frames

    @property
    def speech_seconds(self) -> float:
        return (self.speech_end - self.speech_start) / RATE


@dataclass(frozen=True)
class NoiseBed:
    name: str
    audio: np.ndarray  # int16
    split: str


def split_of(name: str) -> str:
    """A fixed half of the files by a hash of the name: 'dev' or 'held-out'."""
    return "dev" if hashlib.sha1(name.encode()).digest()[0] % 2 == 0 else "held-out"


def frame_levels(audio: np.ndarray, frame: int = TRUTH_FRAME) -> np.ndarray:
    n = len(audio) // frame
    x = np.asarray(audio[: n * frame], dtype=np.float64).reshape(n, frame) / 32768.0
    return 10 * np.log10(np.mean(x * x, axis=1) + 1e-12)


def speech_frames(clean: np.ndarray) -> np.ndarray:
    """Ground-truth speech frames of a clean clip (see the module docstring)."""
    levels = frame_levels(clean)
    if len(levels) == 0:
        return np.zeros(0, bool)
    floor, loud = np.percentile(levels, 10), np.percentile(levels, 95)
    active = (levels >= floor + SPEECH_ABOVE_FLOOR_DB) & (levels >= loud - 45.0)
    return _drop_short_runs(active, 3)


def _drop_short_runs(mask: np.ndarray, min_len: int) -> np.ndarray:
    out = mask.copy()
    i = 0
    while i < len(out):
        if out[i]:
            j = i
            while j < len(out) and out[j]:
                j += 1
            if j - i < min_len:
                out[i:j] = False
            i = j
        else:
            i += 1
    return out


def bounds(active: np.ndarray) -> tuple[int, int] | None:
    """(first speech sample, one past the last) of a frame mask, or None without speech."""
    idx = np.flatnonzero(active)
    if len(idx) == 0:
        return None
    return int(idx[0]) * TRUTH_FRAME, (int(idx[-1]) + 1) * TRUTH_FRAME


def pauses(active: np.ndarray) -> list[float]:
    """Lengths (s) of the pauses between the first and the last speech frame."""
    idx = np.flatnonzero(active)
    if len(idx) == 0:
        return []
    inner = active[idx[0] : idx[-1] + 1]
    out, run = [], 0
    for a in inner:
        if not a:
            run += 1
        elif run:
            out.append(run * TRUTH_FRAME / RATE)
            run = 0
    return out


def first_phrase(clean: np.ndarray) -> np.ndarray:
    """A long item's opening phrase: up to its first pause >= PHRASE_PAUSE_S, at most 12 s."""
    active = speech_frames(clean)
    idx = np.flatnonzero(active)
    if len(idx) == 0:
        return clean[:0]
    start, run, end = int(idx[0]), 0, None
    for i in range(start, len(active)):
        if active[i]:
            run = 0
            end = i + 1
        else:
            run += 1
            long_enough = (i - start) * TRUTH_FRAME >= MIN_PHRASE_S * RATE
            if run * TRUTH_FRAME >= PHRASE_PAUSE_S * RATE and long_enough:
                break
        if (i - start) * TRUTH_FRAME >= MAX_PHRASE_S * RATE:
            break
    pad = int(0.3 * RATE) // TRUTH_FRAME  # keep a little of the room before and after
    lo = max(0, start - pad) * TRUTH_FRAME
    hi = min(len(active), (end or start) + pad) * TRUTH_FRAME
    return clean[lo:hi]


def load_sentences(speech: Path) -> list[Sentence]:
    """Every real sentence with a transcript: utt/ clips and speech_long/ first phrases."""
    out = []
    with open(speech / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        group, name = row["group"], row["file"]
        if group == "utt":
            audio = sf.read(speech / name, dtype="int16")[0]
        elif group == "speech_long" and row["transcript_quality"] in ("reference", "machine"):
            audio = first_phrase(sf.read(speech / name, dtype="int16")[0])
        else:
            continue
        active = speech_frames(audio)
        found = bounds(active)
        if found is None or (group != "utt" and found[1] - found[0] < MIN_PHRASE_S * RATE):
            continue  # no phrase of at least 2 s could be cut from it
        out.append(
            Sentence(name, audio, found[0], found[1], row["transcript"], split_of(name), active)
        )
    return out


def load_noise_beds(speech: Path) -> list[NoiseBed]:
    beds = []
    for path in sorted((speech / "noise_bed").glob("*.wav")):
        name = f"noise_bed/{path.name}"
        beds.append(NoiseBed(name, sf.read(path, dtype="int16")[0], split_of(name)))
    return beds


def active_power(sentence: Sentence) -> float:
    """Mean power of the sentence's ground-truth speech frames (the SNR's numerator)."""
    x = sentence.audio[: len(sentence.active) * TRUTH_FRAME].astype(np.float64) / 32768.0
    frames = x.reshape(-1, TRUTH_FRAME)[sentence.active]
    return float(np.mean(frames * frames))


def noise_stretch(bed: NoiseBed, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of the bed from a random offset (looped when the bed is shorter), float."""
    x = bed.audio.astype(np.float64) / 32768.0
    reps = int(np.ceil((n + len(x)) / len(x)))
    looped = np.tile(x, reps)
    start = int(rng.integers(0, len(x)))
    return looped[start : start + n]


def mix(clean: np.ndarray, noise: np.ndarray, speech_power: float, snr_db: float) -> np.ndarray:
    """clean (int16) + noise (float) scaled to `snr_db` below `speech_power`; int16 out."""
    noise_power = float(np.mean(noise * noise)) + 1e-20
    gain = np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    y = clean.astype(np.float64) / 32768.0 + gain * noise
    peak = np.max(np.abs(y)) if len(y) else 0.0
    if peak > 0.99:  # a loud bed: scale both down together, the SNR stays
        y *= 0.99 / peak
    return np.round(y * 32767).astype(np.int16)


@dataclass(frozen=True)
class Trial:
    """One replayed input: lead-in, keyword, gap, sentence, a long tail of background."""

    audio: np.ndarray
    keyword_start: int
    keyword_end: int
    speech_start: int  # of the sentence, in `audio`
    speech_end: int
    sentence: str
    noise: str  # bed name, or "quiet"
    snr_db: float | None


def compose_trial(
    sentence: Sentence,
    keyword: np.ndarray,
    *,
    bed: NoiseBed | None,
    snr_db: float | None,
    gap_s: float,
    lead_s: float,
    tail_s: float,
    rng: np.random.Generator,
) -> Trial:
    """Lay out the input and mix the background at `snr_db` over the whole of it.

    The keyword is scaled to the sentence's active level (a speaker says both alike). In the
    quiet condition the clip's own room sound is all there is; lead-in, gap and tail are
    digital silence plus a -90 dBFS dither (a microphone never gives exact zeros)."""
    p = active_power(sentence)
    kw = keyword.astype(np.float64)
    kw_power = float(np.mean((kw / 32768.0) ** 2)) + 1e-20
    kw = np.clip(kw * np.sqrt(p / kw_power), -32767, 32767).astype(np.int16)
    lead, gap, tail = (np.zeros(int(s * RATE), np.int16) for s in (lead_s, gap_s, tail_s))
    parts = [lead, kw, gap, sentence.audio, tail]
    clean = np.concatenate(parts)
    k0 = len(lead)
    k1 = k0 + len(kw)
    s0 = k1 + len(gap)
    if bed is None:
        dither = rng.normal(0.0, 10 ** (-90 / 20), len(clean))
        audio = np.clip(np.round(clean + dither * 32768), -32768, 32767).astype(np.int16)
    else:
        audio = mix(clean, noise_stretch(bed, len(clean), rng), p, snr_db)
    return Trial(
        audio=audio,
        keyword_start=k0,
        keyword_end=k1,
        speech_start=s0 + sentence.speech_start,
        speech_end=s0 + sentence.speech_end,
        sentence=sentence.name,
        noise=bed.name if bed else "quiet",
        snr_db=snr_db,
    )


def replay_trial(
    trial: Trial,
    wav: Path,
    model,
    config,
    *,
    use_estimate: bool,
    threshold: float,
    keyword: str = "listen",
):
    """Replay `wav` (the trial's audio) through the app's path: FileSource -> Audio ->
    KeywordSpotter (`model`, a started EdgeML) -> Recorder(config). The Recording, or None
    when the keyword model missed the keyword (the input ended first).

    With `use_estimate` the recorder gets the spotter's keyword-end estimate (the app's way
    with the neural VAD); without it only the detection point (the energy endpointer's way)."""
    from edgeml.audio import Audio, InputEnded
    from edgeml.recorder import Recorder
    from edgeml.sources import FileSource
    from edgeml.spotter import DetectorConfig, KeywordSpotter

    audio = Audio(FileSource(wav, realtime=False))
    audio.start()
    try:
        spotter = KeywordSpotter(audio, model, DetectorConfig(keyword, threshold))
        try:
            detection = spotter.listen(max(0, trial.keyword_start - RATE // 4))
        except InputEnded:
            return None
        recorder = Recorder(audio, config)
        try:
            if use_estimate:
                return recorder.record(detection.end_index, detection.keyword_end)
            return recorder.record(detection.end_index)
        finally:
            recorder.close()
    finally:
        audio.stop()


def recorded_whole(trial: Trial, rec) -> bool:
    """The recording holds the sentence's speech from its first to its last ground-truth frame."""
    return bool(
        rec is not None
        and rec.has_speech
        and rec.start_index <= trial.speech_start
        and rec.end_index >= trial.speech_end
    )


@dataclass(frozen=True)
class TargetBound:
    """What "whole" and "prompt" can reach together on a set of sentences (see target_bound)."""

    exclusive_share: float  # inputs whose sentence pauses inside for longer than the prompt window
    whole_at_most_if_prompt: float  # best "whole" once "prompt" reaches its target
    prompt_at_most_if_whole: float  # best "prompt" once "whole" reaches its target


def target_bound(
    longest_pauses: list[float], window_s: float, whole_target: float, prompt_target: float
) -> TargetBound:
    """The most an end rule can reach when it cannot tell a long pause inside a sentence from
    the sentence's end (it has heard the same words and the same silence in both cases).

    One input per entry of `longest_pauses` (the longest ground-truth pause inside the
    sentence). Where that pause is longer than `window_s` (silence_seconds + the prompt margin),
    the input is either cut there or, waiting at least that long at every pause, ends more than
    `window_s` after its last word: whole and prompt exclude each other for it. So with a share
    E of such inputs, "whole" >= W allows "prompt" <= 1 - E + (1 - W), and "prompt" >= P allows
    "whole" <= 1 - E + min(E, 1 - P).
    """
    if not longest_pauses:
        raise ValueError("target_bound needs at least one sentence")
    share = sum(p > window_s for p in longest_pauses) / len(longest_pauses)
    return TargetBound(
        exclusive_share=share,
        whole_at_most_if_prompt=min(1.0, 1 - share + min(share, 1 - prompt_target)),
        prompt_at_most_if_whole=min(1.0, 1 - share + (1 - whole_target)),
    )
