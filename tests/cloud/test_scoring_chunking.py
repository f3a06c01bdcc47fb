"""Long audio: windows tile the audio exactly, the model never sees more than one window."""

from __future__ import annotations

import numpy as np
import pytest

from devkit.scoring_client import ReferenceDecoder, noise_signal
from scoring.chunking import plan_windows
from scoring.ctc import CtcEngine
from scoring.models import resolve_model
from scoring.settings import ServiceSettings

STEP = 320


def frames_for(n: int) -> int:
    """wav2vec2's output length for n samples (conv kernel 400 total receptive, stride 320)."""
    return (n - 400) // STEP + 1


@pytest.mark.parametrize("n", [16000, 20 * 16000, 20 * 16000 + 1, 47 * 16000 + 123, 120 * 16000])
def test_windows_tile_the_audio(n):
    windows = plan_windows(n, chunk=20 * 16000, stride=int(2.5 * 16000), step=STEP)
    assert windows[0].start == 0 and windows[-1].end == n and windows[-1].last
    assert all(w.end - w.start <= 20 * 16000 for w in windows)
    kept = [(w.keep_start, w.keep_end) for w in windows]
    assert kept[0][0] == 0 and kept[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(kept, kept[1:], strict=False))
    assert all(w.start % STEP == 0 and w.keep_start % STEP == 0 for w in windows)
    total = sum(
        np.subtract(*reversed(w.kept_frames(frames_for(w.end - w.start), STEP))) for w in windows
    )
    assert total == frames_for(n)  # as many frames as one pass over the whole audio


@pytest.fixture(scope="module")
def engine(tiny_ctc_model_dir):
    settings = ServiceSettings(chunk_seconds=4.0, stride_seconds=0.5, threads=1)
    return CtcEngine(resolve_model(str(tiny_ctc_model_dir), None), settings)


def test_model_input_is_bounded_by_the_window(engine):
    seen = []
    runner = engine.runner
    engine.runner = lambda x: (seen.append(x.shape[1]), runner(x))[1]
    try:
        logits = engine.logits(noise_signal(13.0))
    finally:
        engine.runner = runner
    assert len(seen) == 4 and max(seen) <= 4 * 16000
    assert logits.shape[0] == frames_for(13 * 16000)


def test_short_audio_is_one_pass_equal_to_reference(engine, tiny_ctc_model_dir):
    audio = noise_signal(3.5, seed=3)
    reference = ReferenceDecoder(tiny_ctc_model_dir)
    np.testing.assert_allclose(
        engine.logits(audio), reference.logits(audio)[0].numpy(), rtol=1e-4, atol=1e-4
    )
    assert engine.transcribe(audio) == reference(audio)


def test_chunked_frames_in_window_middles_match_a_full_pass(engine, tiny_ctc_model_dir):
    """Away from the window edges the chunked logits are those of the full pass, up to the
    context the window cut (small for this tiny model)."""
    audio = noise_signal(10.0, seed=4)
    full = ReferenceDecoder(tiny_ctc_model_dir).logits(audio)[0].numpy().argmax(-1)
    chunked = engine.logits(audio).argmax(-1)
    assert chunked.shape == full.shape
    assert (chunked == full).mean() > 0.8
