"""notebooks/Voice-to-Text.ipynb is stored without outputs and runs headless (nbclient, a real
kernel) with the tiny test model and the project's generated sample, printing the transcript
the model gives."""

from __future__ import annotations

import nbformat
import pytest
from clienttools import reference_decode

from devkit.paths import REPO

NOTEBOOK = REPO / "notebooks" / "Voice-to-Text.ipynb"


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells
    assert all(not c.outputs and c.execution_count is None for c in code_cells)
    source = "\n".join(c.source for c in code_cells)
    assert 'os.environ.get("MODEL_NAME_OR_PATH", "facebook/wav2vec2-base-960h")' in source


@pytest.mark.slow
def test_notebook_runs_and_prints_the_model_transcript(tiny_ctc_model_dir, tmp_path, monkeypatch):
    import librosa
    from nbclient import NotebookClient

    # The kernel inherits this environment: the tiny model, offline (generated sample).
    monkeypatch.setenv("MODEL_NAME_OR_PATH", str(tiny_ctc_model_dir))
    monkeypatch.setenv("SAMPLE_URL", "")
    monkeypatch.setenv("NOTEBOOK_WORK_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend shows figures

    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()

    (cell,) = [c for c in nb.cells if "transcript" in c.metadata.get("tags", [])]
    printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    sample = tmp_path / "sentence.wav"  # what the offline branch generated
    audio, _ = librosa.load(sample, sr=16000, mono=True)
    expected = reference_decode(tiny_ctc_model_dir, audio)
    assert expected.strip()  # the tiny model's head is scaled so it emits characters
    assert printed == f"Transcript: {expected}\n"
    assert (tmp_path / "waveform_spectrogram.png").stat().st_size > 10_000
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the figure is shown
    assert any("audio/wav" in o.get("data", {}).get("text/html", "") for o in outputs)
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("espeak-ng saying" in o.get("text", "") for o in outputs)
