"""The product's own figure: real people say the keyword and a sentence, what gets printed?

    .venv/bin/python bench/e2e.py            (make bench-e2e; needs ../shared/data/speech)

For each development keyword (kw_real: alexa, smart mirror, snowboy, operator, wildfire,
voyager) the model `kwtrain build --keyword K` makes (as a new user would; kept under
build/bench/new and reused), and for each condition (quiet; real noise beds of the background's
TEST part at 20, 10 and 5 dB SNR), `--trials` trials are laid back to back in one file
(devkit/chain.py): a real person's keyword (the TEST part of kw_real, a different clip, and
where the corpus names speakers a different speaker, for every trial), a gap of 0-0.8 s, a real
sentence with a transcript (utt/) within +-6 dB of the keyword's level. The device app runs on
that file as a user runs it (`edgeml --input F --input-speed fast`, its defaults, the model's
stated threshold), through the real edge_impulse_linux SDK, against the local scoring service
(azmlinfsrv with Whisper tiny.en), with --save-dir and --jsonl: each saved recording is found in
the file (exact samples) and so tied to its trial.

Both versions run on the same files in one run: `--baseline REV` (default: the main before the
recording kept the keyword) from a git worktree, and the working tree.

Per condition: success (the keyword heard, the printed transcript within 25 % WER of the
sentence, no keyword text in it), keyword missed (no recording for the trial), first word lost
(among heard trials whose sentence alone the speech model got with its first word; and of those,
the first word deleted outright, a cut, not a word the speech model spelled otherwise), keyword text
in the transcript, WER of the successes, and the ceiling: the speech model alone on the same
sentence in the same noise (no keyword, no device), and how many of those the device loses.
The detection's delay after the keyword's end comes from the app's log (median, p95).

Writes bench/results/e2e.json and e2e.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kws_real import (
    dev_test_split,
    kw_real_files,
    kw_real_root,
    log,
    train_new,
)

from devkit import chain
from devkit.benchtools import machine_description
from devkit.local_service import run_scoring_server
from devkit.paths import REPO
from devkit.scoring_client import post, wav_bytes
from devkit.speech import locate, write_wav
from edgeml.audioformat import read_audio
from kwtrain import negatives
from kwtrain.names import slug

RESULTS = REPO / "bench" / "results"
WORK = REPO / "build" / "bench" / "e2e"
KEYWORDS = ("alexa", "smart mirror", "snowboy", "operator", "wildfire", "voyager")
CONDITIONS = {"quiet": None, "20dB": 20.0, "10dB": 10.0, "5dB": 5.0}
BASELINE = (
    "ffedde3"  # main before the keyword was named to the service (d514298: before it was kept)
)
SUCCESS_WER = 0.25
HEARD = re.compile(r"keyword '.*' heard at ([0-9.]+) s of the input")


def speakers(sp: Path) -> dict[str, str]:
    """Clip -> speaker id, where the manifest names one (the Wake-Up-Word corpus)."""
    out = {}
    with open(sp / "manifest.csv") as f:
        for row in csv.DictReader(f):
            m = re.search(r"speaker=([^;]+)", row.get("note", ""))
            if m:
                out[row["file"]] = m.group(1)
    return out


def pick_clips(sp: Path, keyword: str, n: int, rng: np.random.Generator) -> list[Path]:
    """n clips of the TEST part, one per speaker where speakers are known."""
    _, test = dev_test_split(kw_real_files(sp, keyword))
    who = speakers(sp)
    order = list(rng.permutation(len(test)))
    seen, chosen = set(), []
    for i in order:
        f = test[i]
        spk = who.get(f"kw_real/{f.parent.name}/{f.name}", f.name)
        if spk in seen:
            continue
        seen.add(spk)
        chosen.append(f)
        if len(chosen) == n:
            break
    if len(chosen) < n:
        raise SystemExit(f"{keyword}: only {len(chosen)} speakers in the test part, {n} asked")
    return chosen


def sentences(sp: Path) -> list[tuple[str, np.ndarray, str]]:
    with open(sp / "manifest.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["group"] == "utt" and r["transcript"].strip()]
    return [(r["file"], chain.trim(pcm(sp / r["file"])), r["transcript"]) for r in rows]


def pcm(path: Path) -> np.ndarray:
    """A clip as int16-scale floats (read_audio gives [-1, 1])."""
    return read_audio(path).astype(np.float64) * 32768


def baseline_tree(rev: str) -> Path:
    """A checkout of `rev` beside the build outputs (made once)."""
    tree = WORK / f"baseline-{rev}"
    if not (tree / "edgeml").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(tree), rev],
                       check=True, capture_output=True)  # fmt: skip
    return tree


def run_app(
    code: Path, eim: Path, keyword: str, wav: Path, url: str, work: Path
) -> tuple[list[dict], list[float], str]:
    """The app on one file: its --jsonl records, the detection times it logged, its stderr."""
    if work.exists():
        subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(code))
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    cmd = [sys.executable, "-m", "edgeml", "--model", str(eim), "--keyword", keyword, "--input", str(wav),
           "--input-speed", "fast", "--endpoint", url, "--jsonl", str(work / "out.jsonl"),
           "--spool-dir", str(work / "spool"), "--save-dir", str(work / "rec"), "--timeout", "120"]  # fmt: skip
    out = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=1800)
    (work / "stderr.log").write_text(out.stderr)
    records = []
    if (work / "out.jsonl").is_file():
        records = [
            json.loads(line) for line in (work / "out.jsonl").read_text().splitlines() if line
        ]
    return records, [float(m) for m in HEARD.findall(out.stderr)], out.stderr


def attribute(records: list[dict], audio: np.ndarray, trials: list[chain.Trial]) -> dict[int, dict]:
    """Trial index -> the record whose recording overlaps that trial's speech most (a recording
    may start before its trial: the keyword's window, in noise). A trial's first record wins."""
    out: dict[int, dict] = {}
    for rec in records:
        if not rec.get("wav"):
            continue
        samples = np.round(pcm(Path(rec["wav"]))).astype(np.int16)
        offset, match = locate(audio, samples[: min(len(samples), chain.RATE // 2)])
        if match < 0.99:
            continue
        end = offset + len(samples)
        overlap = [min(end, t.sentence_end) - max(offset, t.keyword_start) for t in trials]
        k = int(np.argmax(overlap))
        if overlap[k] > 0 and k not in out:
            out[k] = dict(rec, start=offset, end=end)
    return chain.join_continuations(records, out)


def ceiling(url: str, audio: np.ndarray, trials: list[chain.Trial]) -> list[str]:
    """The speech model alone on each trial's sentence, in the same noise, without the keyword."""
    texts = []
    for t in trials:
        clip = audio[
            max(0, t.sentence_start - int(0.3 * chain.RATE)) : t.sentence_end + chain.RATE // 2
        ]
        resp = post(url, wav_bytes(clip.astype(np.float32) / 32768), "audio/wav")
        texts.append(resp.json().get("result", "") if resp.ok else "")
    return texts


def judge(
    keyword: str, trials, found: dict[int, dict], alone: list[str], detections: list[float]
) -> list[dict]:
    """One row per trial: what the person would have seen, and the ceiling's."""
    rows = []
    for k, t in enumerate(trials):
        rec = found.get(k)
        text = (rec or {}).get("text") or ""
        delays = [d - t.keyword_end / chain.RATE for d in detections
                  if t.keyword_start / chain.RATE <= d <= t.sentence_end / chain.RATE + 0.5]  # fmt: skip
        row = {
            "keyword": keyword, "sentence": t.sentence_name, "clip": t.keyword_name, "gap": t.gap,
            "level_db": t.level_db, "heard": rec is not None, "text": text,
            "continued": (rec or {}).get("continued", 0),
            "wer": chain.wer(t.reference, text) if rec else None,
            "keyword_text": bool(rec) and chain.keyword_in_text(keyword, text, t.reference),
            "first_word_kept": bool(rec) and chain.first_word_kept(t.reference, text),
            "first_word_deleted": bool(rec) and chain.first_word_deleted(t.reference, text),
            "ceiling_text": alone[k], "ceiling_wer": chain.wer(t.reference, alone[k]),
            "ceiling_first_word": chain.first_word_kept(t.reference, alone[k]),
            "delay_s": round(delays[0], 3) if delays else None,
            "recording_start_vs_keyword_s": round((rec["start"] - t.keyword_start) / chain.RATE, 3) if rec else None,
        }  # fmt: skip
        row["success"] = bool(rec) and row["wer"] <= SUCCESS_WER and not row["keyword_text"]
        row["ceiling_ok"] = row["ceiling_wer"] <= SUCCESS_WER
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict:
    n = len(rows)
    heard = [r for r in rows if r["heard"]]
    fair = [r for r in heard if r["ceiling_first_word"]]
    ok = [r for r in rows if r["ceiling_ok"]]
    delays = [r["delay_s"] for r in rows if r["delay_s"] is not None]
    succ = [r for r in rows if r["success"]]
    return {
        "trials": n,
        "success": len(succ) / n if n else None,
        "missed": sum(not r["heard"] for r in rows) / n if n else None,
        "first_word_lost": sum(not r["first_word_kept"] for r in fair) / len(fair)
        if fair
        else None,
        "first_word_judged": len(fair),
        "first_word_deleted": sum(r.get("first_word_deleted", False) for r in fair) / len(fair)
        if fair
        else None,
        "keyword_text": sum(r["keyword_text"] for r in heard) / len(heard) if heard else None,
        "wer_of_successes": float(np.mean([r["wer"] for r in succ])) if succ else None,
        "ceiling": len(ok) / n if n else None,
        "device_loses": sum(not r["success"] for r in ok) / len(ok) if ok else None,
        "delay_median_s": float(np.median(delays)) if delays else None,
        "delay_p95_s": float(np.percentile(delays, 95)) if delays else None,
    }


def run_keyword(keyword, eim, sp, beds, sents, versions, url, a, rng) -> dict:
    clips = pick_clips(sp, keyword, a.trials * len(a.conditions), rng)
    out = {}
    for ci, cond in enumerate(a.conditions):
        snr = CONDITIONS[cond]
        pairs = []
        for f in clips[ci * a.trials : (ci + 1) * a.trials]:
            name, sentence, ref = sents[int(rng.integers(len(sents)))]
            pairs.append((chain.trim(pcm(f)), sentence, ref, name, f.name))
        bed = beds[ci % len(beds)] if snr is not None else None
        audio, trials = chain.compose_trials(pairs, rng, bed, snr)
        wav = write_wav(WORK / "audio" / f"{slug(keyword)}-{cond}.wav", audio)
        alone = ceiling(url, audio, trials)
        out[cond] = {}
        for version, code in versions.items():
            t0 = time.time()
            records, detections, _ = run_app(
                code, eim, keyword, wav, url, WORK / "runs" / version / f"{slug(keyword)}-{cond}"
            )
            rows = judge(keyword, trials, attribute(records, audio, trials), alone, detections)
            out[cond][version] = {
                "summary": summary(rows),
                "rows": rows,
                "seconds": round(time.time() - t0, 1),
            }
            s = out[cond][version]["summary"]
            log(f"{keyword} {cond} {version}: success {s['success']:.2f} missed {s['missed']:.2f} "
                f"first word lost {s['first_word_lost']} ceiling {s['ceiling']:.2f} ({time.time() - t0:.0f} s)")  # fmt: skip
    return out


def pooled(results: dict, versions) -> dict:
    """Per condition and version, the summary over every keyword's trials."""
    out = {}
    for cond in next(iter(results.values())):
        out[cond] = {
            v: summary([r for kw in results.values() for r in kw[cond][v]["rows"]])
            for v in versions
        }
    return out


def by_gap(results: dict, versions) -> dict:
    """Per gap between keyword and sentence (all keywords and conditions): trials, first word
    lost among the fairly judged, success. Where keeping the keyword costs and where it pays."""
    rows = {
        v: [r for kw in results.values() for c in kw.values() for r in c[v]["rows"]]
        for v in versions
    }
    out: dict = {}
    for v, rs in rows.items():
        for gap in sorted({r["gap"] for r in rs}):
            at = [r for r in rs if r["gap"] == gap]
            fair = [r for r in at if r["heard"] and r["ceiling_first_word"]]
            out.setdefault(str(gap), {})[v] = {
                "trials": len(at), "success": sum(r["success"] for r in at) / len(at),
                "first_word_lost": sum(not r["first_word_kept"] for r in fair) / len(fair) if fair else None,
            }  # fmt: skip
    return out


def markdown(pool: dict, versions) -> str:
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f} %"

    lines = ["| condition | version | success | missed | first word lost | of which deleted | keyword text | device loses | ceiling | delay median / p95 |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for cond, by in pool.items():
        for v in versions:
            s = by[v]
            d = (
                "-"
                if s["delay_median_s"] is None
                else f"{s['delay_median_s']:.2f} / {s['delay_p95_s']:.2f} s"
            )
            lines.append(f"| {cond} | {v} | {pct(s['success'])} | {pct(s['missed'])} | {pct(s['first_word_lost'])} "
                         f"| {pct(s.get('first_word_deleted'))} "
                         f"| {pct(s['keyword_text'])} | {pct(s['device_loses'])} | {pct(s['ceiling'])} | {d} |")  # fmt: skip
    return "\n".join(lines)


def plot(pool: dict, versions, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = list(pool)
    x = np.arange(len(conds))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / (len(versions) + 1)
    for i, v in enumerate(versions):
        axes[0].bar(x + i * width, [100 * pool[c][v]["success"] for c in conds], width, label=v)
        axes[1].bar(
            x + i * width,
            [100 * (pool[c][v]["first_word_lost"] or 0) for c in conds],
            width,
            label=v,
        )
    axes[0].bar(x + len(versions) * width, [100 * pool[c][versions[0]]["ceiling"] for c in conds], width,
                label="speech model alone", color="lightgray")  # fmt: skip
    axes[0].set_title("trials printed right (%)")
    axes[1].set_title("first word lost (% of heard trials)")
    for ax in axes:
        ax.set_xticks(x + width, conds)
        ax.legend(fontsize=8)
    fig.suptitle("keyword + sentence, real speakers, through the app (bench/e2e.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--keywords", default=",".join(KEYWORDS))
    p.add_argument("--conditions", default=",".join(CONDITIONS))
    p.add_argument("--trials", type=int, default=16, help="per keyword and condition")
    p.add_argument("--baseline", default=BASELINE, help="git revision of the old app ('' to skip)")
    p.add_argument("--seed", type=int, default=20261207)
    p.add_argument("--json", default="e2e.json")
    a = p.parse_args()
    a.conditions = a.conditions.split(",")
    sp = kw_real_root("bench/e2e.py")
    if sp is None:
        return 0
    from scoring.models import offline_whisper_path

    versions = {"new": REPO}
    if a.baseline:
        versions = {"main": baseline_tree(a.baseline), "new": REPO}
    # the TEST part's noise beds only (test_part_background would also decode its 2.4 h of
    # false-wake streams, which this benchmark does not use)
    test_beds = negatives.background(sp)["test"]["noise_bed"]
    beds = [read_audio(p).astype(np.float64) * 32768 for p in test_beds]
    sents = sentences(sp)
    rng = np.random.default_rng(a.seed)
    t0 = time.time()
    results = {}
    with run_scoring_server(
        offline_whisper_path(), offline=True, log_to=WORK / "service.log"
    ) as server:
        for kw in a.keywords.split(","):
            log(f"{kw}: model")
            eim = train_new(kw, retrain=False)
            results[kw] = run_keyword(kw, eim, sp, beds, sents, versions, server.score_url, a, rng)
    pool = pooled(results, list(versions))
    result = {
        "machine": machine_description(), "seconds": round(time.time() - t0), "baseline": a.baseline,
        "trials_per_condition": a.trials, "keywords": a.keywords.split(","), "pooled": pool,
        "by_gap": by_gap(results, list(versions)),
        "by_keyword": {kw: {c: {v: r[c][v]["summary"] for v in versions} for c in r} for kw, r in results.items()},
        "rows": {kw: {c: {v: r[c][v]["rows"] for v in versions} for c in r} for kw, r in results.items()},
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / a.json
    path.write_text(json.dumps(result, indent=1))
    plot(pool, list(versions), path.with_suffix(".png"))
    print(markdown(pool, list(versions)))
    log(f"wrote {path} and {path.with_suffix('.png').name} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
