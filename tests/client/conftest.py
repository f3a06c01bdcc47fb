"""Fixtures of the client tests (sample-client.py, the notebook): audio the project generates."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo sentence spoken by espeak-ng (16 kHz mono) and a 22.05 kHz stereo copy of it."""
    import numpy as np
    import soundfile as sf
    import soxr

    from devkit import demo_audio

    out = tmp_path_factory.mktemp("demo-audio")
    meta = demo_audio.build(out)
    mono16k = Path(meta["sentence_wav"])
    audio, rate = sf.read(mono16k, dtype="float32")
    stereo = np.stack([audio, 0.5 * audio], axis=1)
    stereo22k = soxr.resample(stereo, rate, 22050)
    sf.write(out / "sentence-22k-stereo.wav", stereo22k, 22050, subtype="PCM_16")
    return {
        "mono16k": mono16k,
        "stereo22k": out / "sentence-22k-stereo.wav",
        "sentence": meta["sentence"],
    }
