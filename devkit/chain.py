"""The whole chain's trials: a real person's keyword, a natural gap, a real sentence, a room.

Used by bench/e2e.py (the product's own figure) and its tests. A trial is laid out as

    lead-in | keyword (real speaker) | gap 0-0.8 s | sentence (real, with transcript) | tail

at a sentence level within +-6 dB of the keyword's, in quiet (a -65 dBFS floor: real rooms are
never digital zero) or under a real noise bed at a stated SNR against the speech. Many trials
are laid back to back in one file, so one app process hears them all as a microphone would.

The scores judge what a person would see printed: was the keyword heard, is the transcript the
sentence (WER), was its first word lost (by aligning it to the reference), did any of the
keyword's text reach it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from devkit.wer import normalize
from edgeml.keywordtext import edit_distance, letters, spoken_form

RATE = 16000
FRAME = RATE // 100  # 10 ms, for trimming
GAPS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8)  # seconds between keyword and sentence
LEAD_SECONDS = 2.5  # before the first keyword: the spotter's window fills
TAIL_SECONDS = 4.0  # after each sentence: the recorder ends, the refractory passes
QUIET_FLOOR_DBFS = -65.0


@dataclass(frozen=True)
class Trial:
    """Where one trial's parts sit in the composed file (sample indices)."""

    keyword_start: int
    keyword_end: int
    sentence_start: int
    sentence_end: int
    end: int  # the trial's last sample (exclusive), where the next one starts
    reference: str
    sentence_name: str
    keyword_name: str
    gap: float
    level_db: float  # the sentence against the keyword


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x.astype(np.float64))))) if len(x) else 0.0


def trim(audio: np.ndarray, below_peak_db: float = 35.0, margin: float = 0.03) -> np.ndarray:
    """The speech of a clip without the silence around it: from the first to the last 10 ms
    frame within `below_peak_db` of the loudest, plus `margin` seconds."""
    n = len(audio) // FRAME
    if n == 0:
        return audio
    frames = audio[: n * FRAME].astype(np.float64).reshape(n, FRAME)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-9)
    loud = np.flatnonzero(db >= db.max() - below_peak_db)
    pad = int(margin * RATE)
    return audio[max(0, loud[0] * FRAME - pad) : min(len(audio), (loud[-1] + 1) * FRAME + pad)]


def _scaled(x: np.ndarray, gain: float) -> np.ndarray:
    return x.astype(np.float64) * gain


def compose_trials(
    pairs: list[tuple[np.ndarray, np.ndarray, str, str, str]],
    rng: np.random.Generator,
    bed: np.ndarray | None,
    snr_db: float | None,
) -> tuple[np.ndarray, list[Trial]]:
    """One file of trials. `pairs`: (keyword clip, sentence clip, reference, sentence name,
    keyword name), trimmed. `bed` None: quiet; else it is looped under the whole file at
    `snr_db` below each trial's speech level (a random stretch of the bed for each trial)."""
    parts: list[np.ndarray] = [np.zeros(int(LEAD_SECONDS * RATE))]
    trials: list[Trial] = []
    pos = len(parts[0])
    for kw, sentence, ref, sname, kname in pairs:
        gap = float(rng.choice(GAPS))
        level = float(rng.uniform(-6.0, 6.0))
        kw_f = kw.astype(np.float64)
        s_f = _scaled(sentence, rms(kw) / max(rms(sentence), 1e-9) * 10 ** (level / 20))
        body = [kw_f, np.zeros(int(gap * RATE)), s_f, np.zeros(int(TAIL_SECONDS * RATE))]
        ks, ke = pos, pos + len(kw_f)
        ss = ke + len(body[1])
        se = ss + len(s_f)
        end = se + len(body[3])
        trials.append(Trial(ks, ke, ss, se, end, ref, sname, kname, gap, round(level, 2)))
        parts.extend(body)
        pos = end
    audio = np.concatenate(parts)
    if bed is None or snr_db is None:
        audio += rng.normal(0.0, 32768 * 10 ** (QUIET_FLOOR_DBFS / 20), len(audio))
    else:
        audio += _noise_under(audio, trials, bed, snr_db, rng)
    peak = np.max(np.abs(audio))
    if peak > 32000:  # keep the mix unclipped: everything down together
        audio *= 32000 / peak
    return np.round(audio).astype(np.int16), trials


def _noise_under(
    audio: np.ndarray, trials: list[Trial], bed: np.ndarray, snr_db: float, rng
) -> np.ndarray:
    noise = np.zeros(len(audio))
    bed = bed.astype(np.float64)
    bed_rms = max(rms(bed), 1e-9)
    start = 0
    for t in trials:
        speech = np.concatenate(
            [audio[t.keyword_start : t.keyword_end], audio[t.sentence_start : t.sentence_end]]
        )
        gain = rms(speech) / bed_rms / 10 ** (snr_db / 20)
        n = t.end - start
        offset = int(rng.integers(0, len(bed)))
        idx = (offset + np.arange(n)) % len(bed)
        noise[start : t.end] = bed[idx] * gain
        start = t.end
    noise[start:] = noise[start - 1] if start else 0.0
    return noise


def _alignment(reference: str, hypothesis: str):
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return None, ref, hyp
    if not hyp:
        return [], ref, hyp
    return jiwer.process_words(ref, hyp).alignments[0], ref, hyp


def first_word_kept(reference: str, hypothesis: str) -> bool:
    """Is the reference's first word in the transcript, aligned as itself (not deleted, not
    replaced by another word)?"""
    chunks, _, hyp = _alignment(reference, hypothesis)
    if not chunks:
        return False
    first = next(c for c in chunks if c.ref_start_idx <= 0 < c.ref_end_idx)
    return first.type == "equal"


def first_word_deleted(reference: str, hypothesis: str) -> bool:
    """Is the reference's first word missing outright (aligned as a deletion)? The recording was
    cut, or the speech model skipped it; a first word spelled otherwise ("FOR" for "four",
    "A LESS" for "unless") is not counted: that is the speech model's guess, and it moves with
    the recording's edges whatever the recorder does."""
    chunks, _, hyp = _alignment(reference, hypothesis)
    if chunks is None:
        return False
    if not chunks:
        return True
    first = next(c for c in chunks if c.ref_start_idx <= 0 < c.ref_end_idx)
    return first.type == "delete"


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not hyp:
        return 1.0
    return float(jiwer.wer(ref, hyp))


def keyword_in_text(keyword: str, text: str, reference: str) -> bool:
    """Does any of the keyword's text show in the transcript? A run of 1-3 words spelled within
    25 % of the keyword's letters, or one of its words (4+ letters) that the sentence itself
    does not hold."""
    words = normalize(text).split()
    ref_words = set(normalize(reference).split())
    target = letters(spoken_form(keyword))
    kw_words = {letters(w) for w in spoken_form(keyword).split() if len(letters(w)) >= 4}
    for i in range(len(words)):
        if words[i] in kw_words and words[i] not in ref_words:
            return True
        for n in (1, 2, 3):
            if i + n > len(words) or set(words[i : i + n]) <= ref_words:
                continue
            run = "".join(letters(w) for w in words[i : i + n])
            if edit_distance(run, target) <= 0.25 * len(target):
                return True
    return False


def join_continuations(records: list[dict], found: dict[int, dict]) -> dict[int, dict]:
    """A continuation (--continue-seconds: its record names the recording it `continues`) is
    printed as its own line right after its turn's: the person reads both, so its text is
    joined to the trial's (a chain joins in order)."""
    for k, rec in found.items():
        texts, rid = [rec.get("text") or ""], rec.get("id")
        for nxt in records:
            if rid is not None and nxt.get("continues") == rid:
                texts.append(nxt.get("text") or "")
                rid = nxt.get("id")
        if len(texts) > 1:
            found[k] = dict(rec, text=" ".join(t for t in texts if t), continued=len(texts) - 1)
    return found
