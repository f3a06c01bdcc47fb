"""Continuations (--continue-seconds): how long a window keeps the words an early end cut off,
and how often noise alone starts a continuation.

    python bench/continuation.py [--bed-step 3] [--silence 0.7 0.45]

The inputs of bench/endpointing.py (devkit/endpointing.py: every real sentence with a
ground truth of its speech frames, in quiet and mixed with real noise beds at 20, 10 and 5 dB,
after "listen", with 15 s of the background after it) replayed through the app's own parts:
FileSource -> Audio -> KeywordSpotter (the scripted .eim) -> Recorder.record, then, as the
app's loop does (main.App._next_turn), Recorder.watch from where the end was decided,
KeywordSpotter.scan over the resumed speech (a keyword there is a new turn) and
Recorder.record_continuation, up to the chain's maximum. The fixed pause rule (no transcript
hints: they need the cloud), at each --silence.

One replay per input with the widest window gives every narrower one: the watch for a window W
finds the same onset whenever it comes within W of the end (the same VAD pass from the same
point), so a chain under W stops at its first continuation that came later than W.

Per window: the inputs with a word lost (a ground-truth speech frame of the sentence in no
recording), the sentences in one piece (the first recording holds them; a continuation does
not change this), the inputs whose sentence was continued, and false continuations (a
continuation that starts after the sentence's last word: the noise bed alone). Inputs are split
by devkit.endpointing's hash into development and held-out halves; the window is chosen on the
development half (the smallest in the grid that loses no word there) and reported on both.

Results: bench/results/continuation.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from endpointing import KEYWORD_THRESHOLD, LEAD_S, SNRS, TAIL_S, condition, split_of_trial

from devkit.benchtools import RESULTS, machine_description
from devkit.endpointing import (
    RATE,
    TRUTH_FRAME,
    Trial,
    compose_trial,
    load_noise_beds,
    load_sentences,
)
from devkit.paths import speech_dir
from devkit.scripted_eim import write_eim
from devkit.speech import speak, write_wav
from edgeml.audio import Audio, InputEnded
from edgeml.edgeml import EdgeML
from edgeml.recorder import MAX_CONTINUATIONS, Recorder, RecorderConfig
from edgeml.sources import FileSource
from edgeml.spotter import DEFAULT_THRESHOLD, DetectorConfig, KeywordSpotter
from edgeml.turn import TurnConfig
from edgeml.vad import EndpointConfig, EndReason

WINDOWS = (0.0, 0.3, 0.5, 0.8, 1.0, 1.2, 1.5, 2.0)
MAX_CHAIN = MAX_CONTINUATIONS
SCAN_THRESHOLD = DEFAULT_THRESHOLD


@dataclass
class Replayed:
    spans: list[tuple[int, int]]  # [start, end) of each recording, in order
    delays: list[float]  # per link: its onset, seconds after the end was decided (-1: keyword)
    first_whole: bool


def replay(trial: Trial, wav: Path, model: EdgeML, silence: float, window: float) -> Replayed:
    """The keyword's recording and its chain of continuations (window: the widest asked)."""
    config = RecorderConfig(
        EndpointConfig(silence_seconds=silence), turn=TurnConfig(enabled=False),
        continue_seconds=window,
    )  # fmt: skip
    audio = Audio(FileSource(wav, realtime=False))
    audio.start()
    recorder = Recorder(audio, config)
    try:
        spotter = KeywordSpotter(audio, model, DetectorConfig("listen", KEYWORD_THRESHOLD))
        # the scan of resumed speech at the app's threshold for a model that states none: at
        # the low one that finds "listen" under 5 dB of noise, the scripted model's template
        # match fires on words such as "three", a false keyword whose empty turn loses them
        scanner = KeywordSpotter(audio, model, DetectorConfig("listen", SCAN_THRESHOLD))
        detection = spotter.listen(max(0, trial.keyword_start - RATE // 4))
        rec = recorder.record(detection.end_index, detection.keyword_end)
        spans = [(rec.start_index, rec.end_index)]
        first_whole = bool(rec.has_speech and rec.start_index <= trial.speech_start
                           and rec.end_index >= trial.speech_end)  # fmt: skip
        delays: list[float] = []
        chain = 0  # continuations since the last keyword (the app's chain limit)
        while rec.reason is EndReason.SILENCE and rec.has_speech and chain < MAX_CHAIN:
            decided = rec.resume_index
            scanner.reset()
            onset = recorder.watch(decided, window)
            if onset is None:
                break
            detection = scanner.scan(decided, onset + RATE + RATE // 2)
            if detection is not None:  # a keyword (the scripted model at its low threshold
                # matches some words): a new turn, as in the app, which the spotter would
                # hear with any window, so it is kept at every window (delay -1)
                rec = recorder.record(detection.end_index, detection.keyword_end)
                delay, chain = -1.0, 0
            else:
                chain += 1
                rec = recorder.record_continuation(onset)
                delay = (onset - decided) / RATE
            if not rec.has_speech:
                break
            delays.append(delay)
            spans.append((rec.start_index, rec.end_index))
        return Replayed(spans, delays, first_whole)
    except InputEnded:
        return Replayed([], [], False)
    finally:
        recorder.close()
        audio.stop()


def lost_words(trial: Trial, active: np.ndarray, offset: int, spans) -> bool:
    """Some ground-truth speech frame of the sentence lies in no recording."""
    covered = np.zeros(len(active), bool)
    for start, end in spans:
        f0 = max(0, -(-(start - offset) // TRUTH_FRAME))
        f1 = max(0, (end - offset) // TRUTH_FRAME)
        covered[f0:f1] = True
    return bool(np.any(active & ~covered))


def lost_detail(row: dict) -> dict:
    """Why an input lost words with the widest window: where the lost frames lie against the
    recordings (the sentence's own time, seconds), and how long the chain was."""
    trial, active, offset = row["trial"], row["active"], row["offset"]
    r: Replayed = row["r"]
    covered = np.zeros(len(active), bool)
    for start, end in r.spans:
        covered[
            max(0, -(-(start - offset) // TRUTH_FRAME)) : max(0, (end - offset) // TRUTH_FRAME)
        ] = True
    lost = np.flatnonzero(active & ~covered)
    step = TRUTH_FRAME / RATE
    return {
        "sentence": trial.sentence,
        "condition": f"{trial.noise} {condition(trial)}",
        "lost_s": round(len(lost) * step, 2),
        "first_lost_at_s": round(float(lost[0]) * step, 2) if len(lost) else None,
        "recordings_s": [
            [round((a - offset) / RATE, 2), round((b - offset) / RATE, 2)] for a, b in r.spans
        ],
        "links_s": r.delays,  # continuation delays; -1: a keyword turn
    }


def at_window(r: Replayed, w: float) -> tuple[list, int]:
    """The spans and the number of continuations a window of `w` s would have kept."""
    n = 0
    while n < len(r.delays) and r.delays[n] < w:
        n += 1
    return r.spans[: 1 + n], sum(d >= 0 for d in r.delays[:n])


def summarise(rows: list[dict]) -> dict:
    out = {"inputs": len(rows)}
    for w in WINDOWS:
        lost = cont = false = 0
        for row in rows:
            spans, n = at_window(row["r"], w)
            lost += lost_words(row["trial"], row["active"], row["offset"], spans)
            cont += n > 0
            false += sum(s >= row["trial"].speech_end for s, _ in spans[1:])
        out[f"{w:.1f}"] = {
            "words_lost": round(lost / max(1, len(rows)), 4),
            "continued": round(cont / max(1, len(rows)), 4),
            "false_continuations_per_input": round(false / max(1, len(rows)), 4),
        }
    widest = max(WINDOWS)
    out["lost_at_widest"] = [
        lost_detail(row)
        for row in rows
        if lost_words(row["trial"], row["active"], row["offset"], at_window(row["r"], widest)[0])
    ][:12]
    out["one_piece"] = round(sum(row["r"].first_whole for row in rows) / max(1, len(rows)), 4)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bed-step", type=int, default=3, help="every Nth noise bed")
    parser.add_argument("--silence", type=float, nargs="+", default=[0.7, 0.45])
    parser.add_argument("--out", type=Path, default=RESULTS / "continuation.json")
    args = parser.parse_args()
    speech = speech_dir()
    if not speech.is_dir():
        print(f"no speech data at {speech}", file=sys.stderr)
        return 1
    rng = np.random.default_rng(7)
    sentences = {s.name: s for s in load_sentences(speech)}
    beds = load_noise_beds(speech)
    splits = {**{s.name: s.split for s in sentences.values()}, **{b.name: b.split for b in beds}}
    keyword = speak("listen")
    conditions = [(None, None)] + [(b, snr) for b in beds[:: args.bed_step] for snr in SNRS]
    trials = [
        compose_trial(s, keyword, bed=bed, snr_db=snr, gap_s=float(rng.uniform(0.2, 0.6)),
                      lead_s=LEAD_S, tail_s=TAIL_S, rng=rng)
        for s in sentences.values() for bed, snr in conditions
    ]  # fmt: skip
    report = {
        "what": __doc__.split("\n\n")[0],
        "machine": machine_description(),
        "windows_s": list(WINDOWS),
        "bed_step": args.bed_step,
        "by_silence": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = EdgeML(write_eim(tmp / "listen.eim", template=keyword))
        model.start()
        try:
            for silence in args.silence:
                groups: dict[str, list[dict]] = {}
                for k, trial in enumerate(trials):
                    wav = write_wav(tmp / "in.wav", trial.audio)
                    r = replay(trial, wav, model, silence, max(WINDOWS))
                    s = sentences[trial.sentence]
                    row = {"trial": trial, "r": r, "active": s.active,
                           "offset": trial.speech_start - s.speech_start}  # fmt: skip
                    split = split_of_trial(trial, splits)
                    noisy = "quiet" if condition(trial) == "quiet" else "noise"
                    for g in (f"{split}/{noisy}", f"{split}/all"):
                        groups.setdefault(g, []).append(row)
                    if k % 50 == 0:
                        print(f"silence {silence}: {k}/{len(trials)}", file=sys.stderr)
                summary = {g: summarise(rows) for g, rows in sorted(groups.items())}
                dev = summary.get("dev/all", {})
                chosen = next((w for w in WINDOWS if dev.get(f"{w:.1f}", {}).get(
                    "words_lost", 1) <= dev.get(f"{max(WINDOWS):.1f}", {}).get(
                    "words_lost", 0)), None)  # fmt: skip
                report["by_silence"][f"{silence}"] = {
                    "groups": summary,
                    "chosen_window_on_dev_s": chosen,
                }
        finally:
            model.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["by_silence"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
