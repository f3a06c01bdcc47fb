"""Environment -> ServiceSettings: defaults, and a clear error naming a malformed variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring.settings import DEFAULT_MODEL, ServiceSettings


def test_defaults():
    settings = ServiceSettings.from_env({})
    assert settings.model_name_or_path == DEFAULT_MODEL and settings.azureml_model_dir is None
    assert settings.max_audio_seconds == 120 and settings.quantize == "none"
    assert settings.threads >= 1 and settings.whisper_compute_type == "int8"


def test_values_from_environment():
    settings = ServiceSettings.from_env(
        {
            "MODEL_NAME_OR_PATH": "/models/x",
            "AZUREML_MODEL_DIR": "/var/azureml-app/azureml-models/x/1",
            "SCORING_THREADS": "3",
            "MAX_AUDIO_SECONDS": "30",
            "QUANTIZE": "INT8",
            "SCORING_CACHE_DIR": "/tmp/c",
        }
    )
    assert settings.azureml_model_dir == Path("/var/azureml-app/azureml-models/x/1")
    assert (settings.threads, settings.max_audio_seconds, settings.quantize) == (3, 30.0, "int8")
    assert settings.max_samples == 30 * 16000 and settings.cache_dir == Path("/tmp/c")
    assert ServiceSettings.from_env({"OMP_NUM_THREADS": "1"}).threads == 1


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MAX_AUDIO_SECONDS": "lots"}, "MAX_AUDIO_SECONDS"),
        ({"MAX_AUDIO_SECONDS": "-5"}, "MAX_AUDIO_SECONDS"),
        ({"SCORING_THREADS": "0"}, "SCORING_THREADS"),
        ({"OMP_NUM_THREADS": "x"}, "OMP_NUM_THREADS"),
        ({"QUANTIZE": "int4"}, "QUANTIZE"),
        ({"DEVICE": "tpu"}, "DEVICE"),
        ({"CHUNK_SECONDS": "4", "STRIDE_SECONDS": "2"}, "STRIDE_SECONDS"),
    ],
)
def test_bad_values_name_the_variable(env, named):
    with pytest.raises(ValueError, match=named):
        ServiceSettings.from_env(env)
