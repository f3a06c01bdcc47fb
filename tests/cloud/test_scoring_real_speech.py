"""Real human speech through the real server (the tiny CTC model knows no words: the round
trip is checked, not the text; tests/cloud/test_scoring_whisper.py checks the words)."""

from __future__ import annotations

import csv

import pytest
import soundfile as sf

from devkit.scoring_client import ReferenceDecoder, json_int16_body, post

pytestmark = pytest.mark.slow


def test_real_recordings_round_trip(scoring_server, speech_dir, tiny_ctc_model_dir):
    with open(speech_dir / "manifest.csv") as handle:
        clips = [row for row in csv.DictReader(handle) if row["group"] == "utt"][:3]
    reference = ReferenceDecoder(tiny_ctc_model_dir)
    for row in clips:
        path = speech_dir / row["file"]
        body = path.read_bytes()
        answer = post(scoring_server.score_url, body, "audio/wav").json()
        audio, rate = sf.read(path, dtype="float32")
        assert answer["audio_seconds"] == pytest.approx(len(audio) / rate, abs=1e-3)
        assert answer["result"] == reference(audio)
        pcm, _ = sf.read(path, dtype="int16")
        as_json = post(scoring_server.score_url, json_int16_body(pcm), "application/json")
        assert as_json.json()["result"] == answer["result"]
