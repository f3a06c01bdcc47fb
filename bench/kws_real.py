"""Real people, real rooms: keyword models trained from generated data only, the Picovoice way.

    .venv/bin/python bench/kws_real.py --in-process   (make bench-kws-real; needs ../shared)

The keywords of kw_real/ are split, in code and once, into
    TUNE    alexa, smart mirror, snowboy (crowd-sourced speakers of Picovoice's wake-word
            benchmark): their clips may choose the recipe's settings, so their figures are
            labelled "tuned on" and never stand for how a new keyword fares;
    REPORT  operator, wildfire, voyager (about 180 speakers each, telephone band) and amelia
            (223 clips, Mycroft's Precise community data, public domain): never used to
            choose anything; these are the figures the README states, first.

For each keyword two models are trained from generated data only, as a new user would
(`kwtrain build --keyword K`, the speech-embedding front end, background = ../shared):

    old  the recipe before the channel augmentation (`--channel-copies 0`)
    new  the recipe of `kwtrain build` now (`--channel-copies 1`: every keyword utterance,
         confusable and other word also heard through a telephone line or a cheap microphone,
         `kwtrain.augment.channel`)

Each real clip is streamed with 1 s of background before and after (after one window of
lead-in), clean (-60 dBFS pink floor) and mixed at 10 dB SNR with a noise bed of the TEST part
of the background (never mixed into training), scored with a window ending every 250 ms: through
the real edge_impulse_linux ImpulseRunner and the exported .eim, or with --in-process by the
.eim's own numpy + onnxruntime code (the same scores: tests/kws/test_embedding.py) on cached
embeddings. False wakes per hour: the TEST part of speech_long + music_tv + noise_bed +
negatives_long streamed back to back (about 2.4 h), with the exact 95 % one-sided Poisson upper
bound. Reported: miss rates at the model's stated threshold and at the lowest threshold with
<= 1 false wake per hour on the test background, and the curve (miss rate at 10 dB against false
wakes per hour).

--mfcc adds the MFCC + 1-D CNN impulse (`kwtrain build --frontend mfcc`) as a third model;
--stop the "stop" bench (kw_pos + kw_pos_stop, 80 speakers: generated data only, and with the
real clips of half of the speakers added to training, scored on the other half).

Writes bench/results/kws_real.json and kws_real.png. Trained models are kept under
build/bench/ (ignored: old_recipe/<slug>, new_recipe/<slug>) and reused; --retrain trains again.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from devkit.paths import REPO, speech_dir, venv_command
from edgeml.audioformat import read_audio
from kwtrain import negatives
from kwtrain import streameval as se
from kwtrain.calibration import poisson_upper
from kwtrain.names import slug

RESULTS = REPO / "bench" / "results"
WORK = REPO / "build" / "bench"
# The split of the kw_real keywords, fixed before any figure of the REPORT ones was seen:
# TUNE clips may choose settings, REPORT clips never (issue 21)
TUNE = ("alexa", "smart mirror", "snowboy")
REPORT = ("operator", "wildfire", "voyager", "amelia")
KEYWORDS = REPORT + TUNE  # REPORT first, in the JSON and the tables
RECIPES = {  # `kwtrain build` options of the compared embedding recipes
    "old": ("--channel-copies", "0"),
    "new": ("--channel-copies", "1"),
}
OLD_THRESHOLD = 0.85  # the edge app's default for a model that states none
SPEAKER = re.compile(r"_([0-9a-f]{8})_nohash_")
PICOVOICE = {  # miss rate at 1 false alarm per 10 hours, 10 dB SNR (their published figures)
    "PocketSphinx": 0.52,
    "Snowboy": 0.319,
    "Porcupine": 0.027,
}


DEV_FRACTION = 0.2  # of each kw_real keyword's clips, for choosing recipes (bench/kws_recipes.py)


def kw_real_files(sp: Path, keyword: str) -> list[Path]:
    return sorted((sp / "kw_real" / slug(keyword)).glob("*.flac"))


def stop_files(sp: Path) -> list[Path]:
    return sorted((sp / "kw_pos").glob("*.wav")) + sorted((sp / "kw_pos_stop").glob("*.wav"))


def dev_test_split(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """(dev, test) of one keyword's kw_real clips, by a fixed hash of the file name: the dev
    fifth may be used to choose recipes, the test part never. (The files name no speaker, so
    this cannot be a split by speaker.)"""
    rank = {f: negatives._rank(f"kw_real/{f.name}") for f in files}
    dev = [f for f in files if rank[f] < DEV_FRACTION]
    return dev, [f for f in files if rank[f] >= DEV_FRACTION]


def kw_real_root(script: str) -> Path | None:
    """../shared/data/speech when it holds kw_real, else None (after saying `script` skips)."""
    sp = speech_dir()
    if sp is None or not (sp / "kw_real").is_dir():
        print(f"{script}: ../shared/data/speech (kw_real) not found; skipped")
        return None
    return sp


def test_part_background(sp: Path) -> tuple[dict, list[Path], list[np.ndarray], list[np.ndarray]]:
    """The background split, the TEST part's files streamed back to back (speech_long +
    music_tv + noise_bed, for false wakes) and its noise beds (for the 10 dB mixes)."""
    bg = negatives.background(sp)
    groups = ("speech_long", "music_tv", "noise_bed", "negatives_long")
    files = [p for g in groups for p in bg["test"].get(g, [])]
    beds = [read_audio(p) for p in bg["test"]["noise_bed"]]
    return bg, files, se.background_streams(files), beds


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cli(*args: str) -> dict:
    out = subprocess.run(
        [venv_command("kwtrain"), *args],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"kwtrain {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout[out.stdout.index("{") :])


def train_old(keyword: str, retrain: bool, epochs: int) -> tuple[Path, float | None]:
    out = WORK / "old" / slug(keyword)
    eim = out / f"{slug(keyword)}.eim"
    if retrain or not eim.is_file():
        t = time.time()
        cli("build", "--frontend", "mfcc", "--keyword", keyword, "--out", str(out),
            "--epochs", str(epochs), "--eim", str(eim))  # fmt: skip
        (out / "seconds.txt").write_text(f"{time.time() - t:.0f}\n")
    sec = out / "seconds.txt"
    return eim, float(sec.read_text()) if sec.is_file() else None


def part(keyword: str) -> str:
    """'REPORT', 'TUNE' (tuned on) or 'other' (a keyword outside the declared split)."""
    return "REPORT" if keyword in REPORT else "TUNE" if keyword in TUNE else "other"


def train_new(
    keyword: str,
    retrain: bool,
    data: Path | None = None,
    tag: str = "",
    recipe: str | None = None,
) -> Path:
    """The speech-embedding model of `recipe` (RECIPES: build/bench/<recipe>_recipe/), or of
    plain `kwtrain build` with None (build/bench/new/, which the other benches read), trained
    once."""
    folder = "new" if recipe is None else f"{recipe}_recipe"
    out = WORK / folder / (slug(keyword) + tag)
    eim = out / f"{slug(keyword)}.eim"
    if retrain or not eim.is_file():
        args = ["build", "--keyword", keyword, "--out", str(out), "--eim", str(eim),
                "--background", str(speech_dir()), *RECIPES.get(recipe, ())]  # fmt: skip
        if data is not None:
            args += ["--data", str(data)]
        cli(*args)
    return eim


class MfccStreamScorer:
    """In-process scoring of an MFCC .eim (same numpy code as inside it), stream interface."""

    def __init__(self, eim: Path) -> None:
        from kwtrain.evaluate import InProcessScorer

        self.inner = InProcessScorer(eim)
        self.window = self.inner.window
        self.threshold = None

    def __call__(self, stream: np.ndarray, first_end: int) -> np.ndarray:
        ends = range(first_end, len(stream) + 1, se.HOP)
        w = np.stack([stream[e - self.window : e] for e in ends])
        return np.concatenate([self.inner(w[i : i + 256]) for i in range(0, len(w), 256)])

    def close(self) -> None:
        pass


def in_process_scorer(eim: Path):
    """The .eim's own arithmetic in this process; embeddings of the streams cached by content
    (the front end is frozen: every model of every recipe scores the same embeddings)."""
    from kwtrain.embedding.export import is_embedding_eim, read_embedding_model
    from kwtrain.embedding.train import default_cache

    if is_embedding_eim(eim):
        return se.EmbeddingStreamScorer(read_embedding_model(eim), cache=default_cache() / "bench")
    return MfccStreamScorer(eim)


def score_model(
    eim: Path, conds: dict, bg_streams: list, cpu: bool = True, in_process: bool = False
) -> dict:
    """Max hop score per clip and condition, hop scores of the background, CPU of the .eim."""
    import psutil

    if in_process:  # same scores as through the SDK (tests/kws/test_embedding.py), faster
        scorer = in_process_scorer(eim)
        out = {"window": scorer.window, "stated_threshold": scorer.threshold, "in_process": True}
        for name, streams in conds.items():
            out[name] = [float(scorer(x, first).max()) for x, first in streams]
        out["bg_hops"], out["bg_hours"] = se.score_background(scorer, bg_streams)
        return out
    scorer = se.SdkStreamScorer(eim)
    try:
        out = {"window": scorer.window, "stated_threshold": scorer.threshold}
        for name, streams in conds.items():
            out[name] = [float(scorer(x, first).max()) for x, first in streams]
        proc = psutil.Process(scorer.pid)
        c0 = proc.cpu_times()
        hops, hours = se.score_background(scorer, bg_streams)
        c1 = proc.cpu_times()
        out["bg_hops"], out["bg_hours"] = hops, hours
        if cpu:
            used = (c1.user - c0.user) + (c1.system - c0.system)
            out["cpu_ms_per_audio_s"] = used * 1000 / (hours * 3600)
    finally:
        scorer.close()
    return out


def summarize(scores: dict, threshold: float) -> dict:
    hops, hours = scores["bg_hops"], scores["bg_hours"]
    t1 = se.threshold_for_fa(hops, hours, 1.0)
    fa, fa1 = se.fa_per_hour(hops, hours, threshold), se.fa_per_hour(hops, hours, t1)
    res = {
        "threshold": threshold,
        "fa_per_hour_at_threshold": fa,
        "fa_per_hour_upper_95_at_threshold": poisson_upper(round(fa * hours), hours),
        "threshold_at_1fa_per_hour": t1,
        "fa_per_hour_at_that": fa1,
        "fa_per_hour_upper_95_at_that": poisson_upper(round(fa1 * hours), hours),
    }
    for cond in ("clean", "10dB"):
        if cond in scores:
            mx = np.asarray(scores[cond])
            res[cond] = {
                "clips": len(mx),
                "miss_at_threshold": se.miss_rate(mx, threshold),
                "miss_at_1fa_per_hour": se.miss_rate(mx, t1),
            }
    if "10dB" in scores:
        res["curve_10dB"] = se.curve(np.asarray(scores["10dB"]), hops, hours)
    if "cpu_ms_per_audio_s" in scores:
        res["cpu_ms_per_audio_s"] = round(scores["cpu_ms_per_audio_s"], 2)
    return res


def conditions(clips: list[np.ndarray], beds: list[np.ndarray], seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "clean": [se.keyword_stream(c, None, None, rng) for c in clips],
        "10dB": [se.keyword_stream(c, beds[i % len(beds)], 10.0, rng) for i, c in enumerate(clips)],
    }


def stop_speaker_split(files: list[Path]) -> tuple[list[Path], list[Path]]:
    speakers = sorted(
        {(SPEAKER.search(f.name) or re.match(r"(.*)", f.stem)).group(1) for f in files}
    )
    train = set(speakers[::2])
    tr = [
        f for f in files if (SPEAKER.search(f.name) or re.match(r"(.*)", f.stem)).group(1) in train
    ]
    te = [f for f in files if f not in tr]
    return tr, te


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--keywords", default=",".join(KEYWORDS))
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--old-epochs", type=int, default=20)
    ap.add_argument("--stop", action="store_true", help="also the 'stop' bench (kw_pos)")
    ap.add_argument("--mfcc", action="store_true", help="also the MFCC + 1-D CNN front end")
    ap.add_argument("--max-clips", type=int, default=0, help="clips per keyword (0: all)")
    ap.add_argument("--table", action="store_true", help="print the results as markdown, exit")
    ap.add_argument("--json", default="kws_real.json", help="results file in bench/results/")
    ap.add_argument("--plot", action="store_true", help="redraw the PNG from the JSON, exit")
    ap.add_argument(
        "--plot-out",
        default="kws_real_dev_keywords.json",
        help="with --plot and several --json files: the chart's name (.png)",
    )
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="score with the models' own numpy/onnxruntime code instead of through the SDK",
    )
    a = ap.parse_args()
    if a.table:
        print(markdown(json.loads((RESULTS / a.json).read_text())))
        return 0
    if a.plot:  # --json a.json,b.json: one chart of every keyword in them, named after the first
        names = [n.strip() for n in a.json.split(",") if n.strip()]
        merged = {"keywords": {}}
        for n in names:
            merged["keywords"].update(json.loads((RESULTS / n).read_text())["keywords"])
        _plot(merged, names[0] if len(names) == 1 else a.plot_out)
        return 0
    if (sp := kw_real_root("kws_real")) is None:
        return 0
    t_start = time.time()
    bg, test_bg, bg_streams, beds = test_part_background(sp)
    result: dict = {
        "protocol": {
            "hop_s": 0.25, "snr_db": 10, "pad_s": 1.0,
            "noise_beds_10dB": [p.name for p in bg["test"]["noise_bed"]],
            "background_test_files": len(test_bg),
            "background_test_hours": round(sum(len(s) for s in bg_streams) / 16000 / 3600, 3),
            "split": "every group split by file hash: train 50 %, calibration 25 %, test 25 %; "
                     "negatives_long within each source 8 / 16 / 76 %",
            "old_threshold": OLD_THRESHOLD, "old_epochs": a.old_epochs,
        },
        "picovoice_published_miss_at_0.1_fa_per_hour_10dB": PICOVOICE,
        "keywords": {},
    }  # fmt: skip
    result["split"] = {"REPORT": list(REPORT), "TUNE (tuned on)": list(TUNE),
                       "rule": "TUNE clips may choose settings; REPORT clips never do"}  # fmt: skip
    result["recipes"] = {k: " ".join(v) for k, v in RECIPES.items()}
    for kw in [k.strip() for k in a.keywords.split(",") if k.strip()]:
        result["keywords"][kw] = one_keyword(sp, kw, beds, bg_streams, a)
        result["summary"] = summary(result["keywords"])
        _write(result, t_start, a.json)
    if a.stop:
        result["stop"] = stop_bench(sp, beds, bg_streams, a)
        _write(result, t_start, a.json)
    _write(result, t_start, a.json)
    if result["keywords"]:
        _plot(result, a.json)
    return 0


def one_keyword(sp: Path, kw: str, beds: list, bg_streams: list, a) -> dict:
    """Old and new recipe (and --mfcc) of one keyword, trained and scored on the same streams."""
    files = kw_real_files(sp, kw)
    if a.max_clips:
        files = files[: a.max_clips]
    conds = conditions([read_audio(f) for f in files], beds, seed=len(kw))
    log(f"{kw} ({part(kw)}): {len(files)} real clips; training")
    eims = {r: train_new(kw, a.retrain, recipe=r) for r in RECIPES}
    if a.mfcc:
        eims["mfcc"] = train_old(kw, a.retrain, a.old_epochs)[0]
    out: dict = {"part": part(kw), "scored": "in-process" if a.in_process else "SDK"}
    for name, eim in eims.items():
        log(f"{kw}: scoring {name} ({eim})")
        sc = score_model(eim, conds, bg_streams, in_process=a.in_process)
        threshold = OLD_THRESHOLD if name == "mfcc" else sc["stated_threshold"]
        out[name] = {**summarize(sc, threshold), "eim_bytes": eim.stat().st_size}
        rep = eim.with_name(f"{eim.stem}.report.json")
        if name != "mfcc" and rep.is_file():
            r = json.loads(rep.read_text())
            out[name] |= {"train_seconds": r["seconds"]["total"], "calibration": r["calibration"]}
    brief = {m: {c: out[m].get(c) for c in ("clean", "10dB", "fa_per_hour_at_threshold")}
             for m in eims}  # fmt: skip
    log(f"{kw}: {json.dumps(brief)}")
    return out


def summary(keywords: dict) -> dict:
    """Per part (REPORT first) and recipe: the mean over its keywords of each figure."""
    out: dict = {}
    for p in ("REPORT", "TUNE"):
        kws = [k for k, r in keywords.items() if r.get("part") == p]
        if not kws:
            continue
        out[p] = {"keywords": kws}
        for model in ("old", "new"):
            rs = [keywords[k][model] for k in kws if model in keywords[k]]
            out[p][model] = {
                "mean_miss_10dB_at_threshold": _mean(r["10dB"]["miss_at_threshold"] for r in rs),
                "mean_miss_clean_at_threshold": _mean(r["clean"]["miss_at_threshold"] for r in rs),
                "mean_fa_per_hour_at_threshold": _mean(r["fa_per_hour_at_threshold"] for r in rs),
                "mean_miss_10dB_at_1fa_per_hour": _mean(
                    r["10dB"]["miss_at_1fa_per_hour"] for r in rs
                ),
            }
    return out


def _mean(xs) -> float:
    xs = list(xs)
    return float(np.mean(xs)) if xs else float("nan")


def stop_bench(sp: Path, beds, bg_streams, a) -> dict:
    files = sorted((sp / "kw_pos").glob("*.wav")) + sorted((sp / "kw_pos_stop").glob("*.wav"))
    tr, te = stop_speaker_split(files)
    data = WORK / "stop_real_data"
    (data / "stop").mkdir(parents=True, exist_ok=True)
    for f in tr:  # copies in the ignored work folder only
        (data / "stop" / f.name).write_bytes(f.read_bytes())
    gen = train_new("stop", a.retrain)
    real = train_new("stop", a.retrain, data=data, tag="_real")
    all_conds = conditions([read_audio(f) for f in files], beds, seed=7)
    te_idx = [i for i, f in enumerate(files) if f in te]
    out = {"clips": len(files), "train_speaker_clips": len(tr), "test_speaker_clips": len(te)}
    for name, eim in (("generated_only", gen), ("with_real_clips", real)):
        sc = score_model(eim, all_conds, bg_streams, cpu=False)
        rep = json.loads(eim.with_name(f"{eim.stem}.report.json").read_text())
        held = {c: [sc[c][i] for i in te_idx] for c in ("clean", "10dB")}
        out[name] = {
            "held_out_speakers": summarize({**held, "bg_hops": sc["bg_hops"],
                                            "bg_hours": sc["bg_hours"]}, sc["stated_threshold"]),
            "train_seconds": rep["seconds"]["total"],
        }  # fmt: skip
        if name == "generated_only":
            out[name]["all_80_speakers"] = summarize(sc, sc["stated_threshold"])
        for v in out[name].values():
            if isinstance(v, dict):
                v.pop("curve_10dB", None)
    return out


def _bound(m: dict, key: str) -> str:
    """' (<= B)': the 95 % upper bound, where the results file has one (older files do not)."""
    return f" (<= {m[key]:.2f})" if m.get(key) is not None else ""


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


MODEL_NAMES = {"old": "old recipe (default)", "new": "new: + channel copies", "mfcc": "MFCC+CNN"}


def keyword_label(kw: str, r: dict) -> str:
    """'operator (183)' for a REPORT keyword, 'alexa (329), tuned on' for a TUNE one."""
    m = r.get("new") or r.get("old")
    tuned = ", tuned on" if r.get("part") == "TUNE" else ""
    return f"{kw} ({m['clean']['clips']}){tuned}"


def ordered(result: dict) -> list[str]:
    """Keywords in table order: REPORT first, then the rest, TUNE ("tuned on") last."""
    kws = result["keywords"]
    rank = {"REPORT": 0, "other": 1, "TUNE": 2}
    return sorted(kws, key=lambda k: rank.get(kws[k].get("part", "other"), 1))


def markdown(result: dict) -> str:
    """The figures as the README and the report show them: REPORT keywords first."""
    hours = result["protocol"]["background_test_hours"]
    rows = [
        "| keyword (real clips) | model | threshold | FA/h at it (test bg; 95 % bound) | miss clean | "
        "miss 10 dB | threshold for <= 1 FA/h | miss clean | miss 10 dB | .eim | CPU ms/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kw in ordered(result):
        r = result["keywords"][kw]
        for model in [m for m in ("old", "new", "mfcc") if m in r]:
            m = r[model]
            rows.append(
                f"| {keyword_label(kw, r)} | {MODEL_NAMES[model]}"
                f" | {m['threshold']:.3f} | {m['fa_per_hour_at_threshold']:.2f}"
                f"{_bound(m, 'fa_per_hour_upper_95_at_threshold')} | "
                f"{_pct(m['clean']['miss_at_threshold'])} | {_pct(m['10dB']['miss_at_threshold'])}"
                f" | {m['threshold_at_1fa_per_hour']:.3f} | "
                f"{_pct(m['clean']['miss_at_1fa_per_hour'])} | "
                f"{_pct(m['10dB']['miss_at_1fa_per_hour'])} | {m['eim_bytes'] / 1e6:.2f} MB | "
                f"{m.get('cpu_ms_per_audio_s', '-')} |"
            )
    for p, sm in result.get("summary", {}).items():
        label = "REPORT keywords" if p == "REPORT" else "TUNE keywords (tuned on)"
        for model in ("old", "new"):
            if model in sm:
                x = sm[model]
                rows.append(
                    f"| mean of {label} | {MODEL_NAMES[model]} | | "
                    f"{x['mean_fa_per_hour_at_threshold']:.2f} | "
                    f"{_pct(x['mean_miss_clean_at_threshold'])} | "
                    f"{_pct(x['mean_miss_10dB_at_threshold'])} | | | "
                    f"{_pct(x['mean_miss_10dB_at_1fa_per_hour'])} | | |"
                )
    out = "\n".join(rows) + f"\n\nTest background: {hours:.2f} h.\n"
    if "stop" in result:
        st = result["stop"]
        out += (
            "\n| stop (kw_pos + kw_pos_stop) | threshold | FA/h at it | miss clean | miss 10 dB |"
            " miss clean at <= 1 FA/h | miss 10 dB at <= 1 FA/h |\n|---|---|---|---|---|---|---|\n"
        )
        for name, sub in (("generated only, all 80 speakers", ("generated_only", "all_80_speakers")),
                          ("generated only, held-out half", ("generated_only", "held_out_speakers")),
                          ("+ real clips of the other half", ("with_real_clips", "held_out_speakers"))):  # fmt: skip
            m = st[sub[0]].get(sub[1])
            if m:
                out += (
                    f"| {name} | {m['threshold']:.3f} | {m['fa_per_hour_at_threshold']:.1f}"
                    f"{_bound(m, 'fa_per_hour_upper_95_at_threshold')} | "
                    f"{_pct(m['clean']['miss_at_threshold'])} | {_pct(m['10dB']['miss_at_threshold'])}"
                    f" | {_pct(m['clean']['miss_at_1fa_per_hour'])} | "
                    f"{_pct(m['10dB']['miss_at_1fa_per_hour'])} |\n"
                )
    return out


def _write(result: dict, t0: float, name: str = "kws_real.json") -> None:
    result["bench_seconds"] = round(time.time() - t0)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(json.dumps(result, indent=2))


def _plot(result: dict, name: str = "kws_real.json") -> None:
    """The curve, as a PNG named after the results file (kws_real.json -> kws_real.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kws = ordered(result)
    cols = min(4, len(kws))
    rows = -(-len(kws) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(kws) :]:
        ax.set_visible(False)
    for ax, kw in zip(axes.flat, kws, strict=False):
        for model, style in (("old", "--"), ("new", "-"), ("mfcc", ":")):
            if model not in result["keywords"][kw]:
                continue
            r = result["keywords"][kw][model]
            pts = r["curve_10dB"]  # in threshold order: false wakes fall as misses rise
            xs = [max(p[0], 0.05) for p in pts]
            ax.plot(xs, [100 * p[1] for p in pts], style, marker=".", label=MODEL_NAMES[model])
            ax.scatter([max(r["fa_per_hour_at_threshold"], 0.05)],
                       [100 * r["10dB"]["miss_at_threshold"]], marker="x", s=60)  # fmt: skip
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.axhline(5.0, color="green", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("false wakes per hour (test background; 0 drawn at 0.05)")
        ax.set_ylabel("miss rate at 10 dB SNR (%)")
        ax.set_title(keyword_label(kw, result["keywords"][kw]) + " real clips")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=8)
    how = {r.get("scored", "SDK") for r in result["keywords"].values()}
    how_s = "through the SDK" if how == {"SDK"} else "with the .eim's own code (in-process)"
    fig.suptitle(f"kw_real {how_s}, 250 ms hops; x = the model's own threshold")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{Path(name).stem}.png", dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
