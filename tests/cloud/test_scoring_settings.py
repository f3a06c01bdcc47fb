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
        ({"WHISPER_TIMESTAMPS": "sometimes"}, "WHISPER_TIMESTAMPS"),
        ({"WHISPER_WITHOUT_TIMESTAMPS": "maybe"}, "WHISPER_WITHOUT_TIMESTAMPS"),
    ],
)
def test_bad_values_name_the_variable(env, named):
    with pytest.raises(ValueError, match=named):
        ServiceSettings.from_env(env)


def test_whisper_decoding_settings():
    from scoring.whisper import decoding_options, uses_vad

    default = ServiceSettings.from_env({})
    options = decoding_options(default)
    assert options["beam_size"] == 5 and options["condition_on_previous_text"] is False
    assert options["temperature"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert options["vad_parameters"] == {"speech_pad_ms": 800}
    assert uses_vad(default, 16000) and uses_vad(default, 16000 * 100)
    greedy = ServiceSettings.from_env(
        {"WHISPER_TEMPERATURES": "0", "WHISPER_CONDITION_ON_PREVIOUS": "yes", "WHISPER_VAD": "long"}
    )
    assert decoding_options(greedy)["temperature"] == 0.0
    assert decoding_options(greedy)["condition_on_previous_text"] is True
    assert not uses_vad(greedy, 16000 * 29) and uses_vad(greedy, 16000 * 31)
    assert not uses_vad(ServiceSettings.from_env({"WHISPER_VAD": "off"}), 16000 * 100)


def test_timestamp_tokens_only_where_the_next_window_needs_them():
    from scoring.whisper import decoding_options, request_options, uses_timestamps

    default = ServiceSettings.from_env({})
    assert default.engine.whisper_timestamps == "on" and uses_timestamps(default, 16000)
    long_only = ServiceSettings.from_env({"WHISPER_TIMESTAMPS": "LONG"})
    assert not uses_timestamps(long_only, 30 * 16000)
    assert uses_timestamps(long_only, 30 * 16000 + 1)
    options = decoding_options(long_only)
    assert "without_timestamps" not in options and "vad_filter" not in options
    short, long = (request_options(options, long_only, n * 16000) for n in (5, 90))
    assert short["without_timestamps"] is True and long["without_timestamps"] is False
    assert short["vad_filter"] is long["vad_filter"] is True
    assert short["beam_size"] == 5  # the rest is decoding_options' own
    never = ServiceSettings.from_env({"WHISPER_TIMESTAMPS": "off"})
    assert not uses_timestamps(never, 16000 * 100)
    assert request_options(options, default, 16000)["without_timestamps"] is False
    # the older flag still means what it said, unless the new variable is set
    legacy_off = ServiceSettings.from_env({"WHISPER_WITHOUT_TIMESTAMPS": "1"})
    legacy_on = ServiceSettings.from_env({"WHISPER_WITHOUT_TIMESTAMPS": "0"})
    assert (legacy_off.engine.whisper_timestamps, legacy_on.engine.whisper_timestamps) == (
        "off",
        "on",
    )
    both = {"WHISPER_WITHOUT_TIMESTAMPS": "1", "WHISPER_TIMESTAMPS": "long"}
    assert ServiceSettings.from_env(both).engine.whisper_timestamps == "long"
