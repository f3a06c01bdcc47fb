"""The shipped default keyword model, edgeml/models/listen.eim, through the real SDK.

The demo plays devkit/demo_audio.py's recording (espeak-ng en-us at 140 wpm: 1 s
of silence, "listen", a 0.4 s pause, a sentence) to the edge app at the threshold the model
states (calibrated for <= 1 false wake per hour of real background): the model must trigger
once, on the keyword, and never on the sentence. The model was trained from generated speech
only (kwtrain build, speech-embedding front end); the demo sentence is not in its training.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from devkit import demo_audio as make_demo_audio
from devkit.paths import REPO
from kwtrain import noise
from kwtrain.evaluate import HOP_SECONDS, SdkScorer, stream_scores, triggers
from kwtrain.tts import synthesize

MODEL = REPO / "edgeml" / "models" / "listen.eim"
RATE = 16000


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    meta = make_demo_audio.build(tmp_path_factory.mktemp("demo"))
    keyword = synthesize(make_demo_audio.KEYWORD, make_demo_audio.VOICE)
    start = 1.0
    meta["keyword_span"] = (start, start + len(keyword) / RATE)
    meta["sentence_start"] = start + len(keyword) / RATE + 0.4
    return meta


@pytest.fixture(scope="module")
def scorer():
    old = os.environ["PATH"]
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + old
    s = SdkScorer(MODEL, "listen")
    yield s
    s.close()
    os.environ["PATH"] = old


def stated_threshold() -> float:
    from kwtrain.embedding.export import read_embedding_model

    return read_embedding_model(MODEL).threshold


THRESHOLD = stated_threshold() if MODEL.is_file() else 0.85


def test_shipped_model_file() -> None:
    assert MODEL.is_file(), "edgeml/models/listen.eim is missing: run `make keyword-model`"
    assert MODEL.stat().st_size < 5_000_000
    assert os.access(MODEL, os.X_OK)
    report = json.loads((MODEL.parent / "listen.report.json").read_text())
    assert report["keyword"] == "listen"
    assert report["frontend"] == "speech-embedding"
    assert report["real_positive_files"] == [], "trained without recordings of the keyword"
    assert report["calibration"]["false_wakes"] == 0
    assert 0.5 <= THRESHOLD == report["calibration"]["threshold"] < 1.0
    assert (MODEL.parent / "listen.report.png").is_file()


def test_shipped_model_runs_the_current_runtime() -> None:
    """The runtime packed into listen.eim is this checkout's: a fix to the protocol server, the
    features or the network must be followed by a re-export (`kwtrain export`, same weights)."""
    import zipfile

    from kwtrain.embedding.export import RUNTIME_MODULES

    with zipfile.ZipFile(MODEL) as eim:
        for name in RUNTIME_MODULES:
            packed = eim.read(f"kwtrain/{name}").decode()
            assert packed == (REPO / "kwtrain" / name).read_text(), (
                f"{name} in listen.eim is stale: re-export the model"
            )


def test_labels(scorer: SdkScorer) -> None:
    assert scorer.labels == ["listen", "unknown"]
    assert scorer.window == 36000  # 2.25 s: the head's 1.96 s + one 250 ms hop


@pytest.mark.parametrize("background", ["none", "pulse-dither", "pink-35dBFS"])
def test_demo_triggers_once_on_the_keyword(demo: dict, scorer: SdkScorer, background: str):
    audio, rate = sf.read(demo["keyword_then_sentence_wav"], dtype="float32")
    # a live microphone has been listening before the recording starts: one window of lead-in
    lead = scorer.window / rate - 1.0
    audio = np.concatenate([np.zeros(int(lead * rate), np.float32), audio])
    rng = np.random.default_rng(0)
    if background == "pulse-dither":  # what the virtual microphone adds (about -45 dBFS)
        audio = audio + noise.make("white", len(audio), rate, -45.0, rng)
    elif background == "pink-35dBFS":
        audio = audio + noise.make("pink", len(audio), rate, -35.0, rng)
    scores = stream_scores(scorer, audio, scorer.window, rate)
    fired = triggers(scores, THRESHOLD)
    assert len(fired) == 1, f"triggers at {[i * HOP_SECONDS for i in fired]} s; scores {scores}"
    start = fired[0] * HOP_SECONDS
    kw_start, kw_end = (t + lead for t in demo["keyword_span"])
    window_s = scorer.window / RATE
    assert start < kw_end and start + window_s > kw_start, "the trigger window holds the keyword"
    sentence_only = [
        s
        for i, s in enumerate(scores)
        if i * HOP_SECONDS + scorer.window / RATE >= kw_end + 1.0  # windows ending 1 s past it
    ]
    assert max(sentence_only) < THRESHOLD


def test_sentence_alone_never_triggers(demo: dict, scorer: SdkScorer) -> None:
    audio, rate = sf.read(demo["sentence_wav"], dtype="float32")
    scores = stream_scores(scorer, audio, scorer.window, rate)
    assert triggers(scores, THRESHOLD) == [], scores


def test_the_edge_app_hears_the_keyword_with_the_default_model(demo: dict, tmp_path: Path):
    """The real app (edgeml/main.py, no --model: the shipped default) replaying the demo."""
    import subprocess

    from devkit.paths import EDGE_MAIN

    out = subprocess.run(
        [sys.executable, str(EDGE_MAIN), "--input", demo["keyword_then_sentence_wav"],
         "--input-speed", "fast", "--once", "--endpoint", "http://127.0.0.1:9/score",
         "--retries", "0", "--spool-dir", str(tmp_path / "spool"),
         "--save-dir", str(tmp_path / "save")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 5, out.stderr  # 5: heard, recorded, endpoint unavailable
    assert out.stderr.count("keyword 'listen' heard") == 1, out.stderr
    (saved,) = (tmp_path / "save").glob("*.wav")
    sentence_seconds = sf.info(demo["sentence_wav"]).duration - 0.6
    assert sf.info(saved).duration >= sentence_seconds, "the sentence after the keyword is kept"
