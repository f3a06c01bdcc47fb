"""Peak memory of a worker vs audio length: windowed CTC (the default) vs one pass (baseline).

    .venv/bin/python bench/scoring_memory.py [--durations 15 60 120]   (part of make bench-scoring)

Two azmlinfsrv servers on the wav2vec2-base architecture: the default (20 s windows) and the
same service with CHUNK_SECONDS above the audio length (the whole clip in one pass, as the seed
ran it). Each gets WAV requests of growing length; after each, the worker's peak RSS (VmHWM, a
high-water mark, so growing lengths read the peak of each length) and the request time are
recorded. Writes bench/results/scoring_memory.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from devkit.benchtools import RESULTS, base_model, peak_rss_mb, speech
from devkit.local_service import run_scoring_server
from devkit.scoring_client import post, to_int16, wav_bytes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[15.0, 60.0, 120.0])
    parser.add_argument("--out", type=Path, default=RESULTS / "scoring_memory.json")
    args = parser.parse_args()
    model = base_model()
    longest = max(args.durations)
    clip, source = speech(min(longest, 50.0))
    rows = []
    for label, env in [
        ("windowed (20 s windows, default)", {}),
        ("one pass (baseline)", {"CHUNK_SECONDS": str(longest + 1)}),
    ]:
        with run_scoring_server(
            model, env={**env, "MAX_AUDIO_SECONDS": str(longest)}, offline=True
        ) as server:
            idle = peak_rss_mb(server)
            for seconds in sorted(args.durations):
                repeats = int(seconds * 16000 // len(clip)) + 1
                audio = (list(clip) * repeats)[: int(seconds * 16000)]
                body = wav_bytes(to_int16(np.asarray(audio, dtype=np.float32)))
                started = time.perf_counter()
                response = post(server.score_url, body, "audio/wav", timeout=1800)
                elapsed = time.perf_counter() - started
                response.raise_for_status()
                rows.append(
                    {
                        "mode": label,
                        "audio_seconds": seconds,
                        "peak_rss_mb": round(peak_rss_mb(server), 1),
                        "after_init_rss_mb": round(idle, 1),
                        "request_seconds": round(elapsed, 2),
                        "model_rtf": round(response.json()["inference_ms"] / 1000 / seconds, 3),
                    }
                )
                print(rows[-1], flush=True)
    result = {
        "what": "worker peak RSS vs audio length, wav2vec2-base architecture, fp32",
        "audio": source + " repeated to length",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| mode | audio s | peak RSS MB | request s | model RTF |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['audio_seconds']:g} | {r['peak_rss_mb']:.0f} | "
            f"{r['request_seconds']:.1f} | {r['model_rtf']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
