"""The Azure ML YAML in cloudml/: loads with azure-ai-ml's own loaders (offline), names only files
that exist, and is sized for speech. Broken files give a message naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip(
    "azure.ai.ml", reason="azure-ai-ml lives in .venv-deploy: run `make test-deploy`"
)

from azure.ai.ml import (  # noqa: E402
    load_environment,
    load_model,
    load_online_deployment,
    load_online_endpoint,
)
from azure.ai.ml.entities import (  # noqa: E402
    Environment,
    KubernetesOnlineDeployment,
    KubernetesOnlineEndpoint,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
)
from deploytools import CLOUDML, REPO, load_deploy  # noqa: E402

from amldeploy.common import Settings  # noqa: E402
from amldeploy.specs import (  # noqa: E402
    check_image_pinned,
    check_specs,
    docker_copy_sources,
    docker_from_images,
    load_specs,
)

deploy = load_deploy()

YAML = [
    ("model.yml", load_model, Model),
    ("environment.yml", load_environment, Environment),
    ("managed/endpoint.yml", load_online_endpoint, ManagedOnlineEndpoint),
    ("managed/deployment.yml", load_online_deployment, ManagedOnlineDeployment),
    ("kubernetes/endpoint.yml", load_online_endpoint, KubernetesOnlineEndpoint),
    ("kubernetes/deployment.yml", load_online_deployment, KubernetesOnlineDeployment),
]
TARGETS = ("managed", "kubernetes")


def test_cloudml_holds_exactly_these_yaml_files():
    found = sorted(p.relative_to(CLOUDML).as_posix() for p in CLOUDML.rglob("*.yml"))
    assert found == sorted(name for name, _, _ in YAML)


@pytest.mark.parametrize(("name", "loader", "kind"), YAML, ids=[y[0] for y in YAML])
def test_yaml_loads_with_the_sdk_loader(name, loader, kind):
    entity = loader(source=str(CLOUDML / name))
    assert isinstance(entity, kind)
    assert entity.name


def test_build_context_and_dockerfile_exist_and_every_copy_source_is_in_it():
    env = load_environment(source=str(CLOUDML / "environment.yml"))
    context = (CLOUDML / env.build.path).resolve()
    dockerfile = context / env.build.dockerfile_path
    assert dockerfile.is_file()
    sources = docker_copy_sources(dockerfile)
    assert "requirements-cloud.txt" in sources
    for source in sources:
        assert (context / source).is_file(), source
    # Only the two files are uploaded as the build context (no repository, no venv).
    assert sorted(p.name for p in context.iterdir()) == ["Dockerfile", "requirements-cloud.txt"]


def test_the_image_installs_the_repository_requirements_not_a_copy():
    linked = CLOUDML / "environment" / "requirements-cloud.txt"
    assert linked.is_symlink()
    assert linked.resolve() == (REPO / "requirements-cloud.txt").resolve()
    assert "torch==2.13.0" in linked.read_text()


def test_base_image_is_pinned():
    images = docker_from_images(CLOUDML / "environment" / "Dockerfile")
    assert images and all(check_image_pinned(image) is None for image in images)
    assert all(image.startswith("mcr.microsoft.com/azureml/") for image in images)


@pytest.mark.parametrize(
    ("image", "ok"),
    [
        ("mcr.microsoft.com/azureml/curated/minimal-py311-inference:59", True),
        ("mcr.microsoft.com/azureml/minimal-py311-inference@sha256:" + "a" * 64, True),
        ("localhost:5000/img:1.2", True),
        ("mcr.microsoft.com/azureml/minimal-py311-inference:latest", False),
        ("mcr.microsoft.com/azureml/minimal-py311-inference", False),
        ("localhost:5000/img", False),
    ],
)
def test_image_pin_rule(image, ok):
    assert (check_image_pinned(image) is None) is ok


def test_model_is_a_custom_model_folder_fetched_from_the_named_hub_model():
    model = load_model(source=str(CLOUDML / "model.yml"))
    assert model.type == "custom_model"
    assert model.tags["source"] == "facebook/wav2vec2-base-960h"
    assert Path(model.path).is_relative_to(REPO / "build")  # git-ignored, filled by deploy.py


@pytest.mark.parametrize("target", TARGETS)
def test_deployment_is_sized_for_speech(target):
    dep = load_online_deployment(source=str(CLOUDML / target / "deployment.yml"))
    env = dep.environment_variables
    assert dep.request_settings.request_timeout_ms >= 30000  # well above the 5 s default
    assert dep.request_settings.max_concurrent_requests_per_instance == int(env["WORKER_COUNT"])
    # model loading + warm-up happen before the first liveness check counts
    assert dep.liveness_probe.initial_delay >= 60
    assert dep.readiness_probe.initial_delay >= 10
    assert dep.liveness_probe.timeout >= 5  # a probe waits while synchronous workers transcribe
    assert dep.app_insights_enabled is True
    # the model comes from AZUREML_MODEL_DIR; a container never downloads at start-up
    assert env["HF_HUB_OFFLINE"] == "1"
    assert int(env["MAX_AUDIO_SECONDS"]) > 0
    assert dep.code_configuration.scoring_script == "score_audio.py"
    assert (CLOUDML / target / dep.code_configuration.code).resolve() == REPO / "scoring-func"


def test_kubernetes_deployment_has_requests_limits_and_autoscale():
    dep = load_online_deployment(source=str(CLOUDML / "kubernetes" / "deployment.yml"))
    assert dep.resources.requests.cpu and dep.resources.requests.memory
    assert dep.resources.limits.cpu and dep.resources.limits.memory
    assert dep.scale_settings.type == "target_utilization"
    assert dep.scale_settings.min_instances <= dep.scale_settings.max_instances
    ep = load_online_endpoint(source=str(CLOUDML / "kubernetes" / "endpoint.yml"))
    assert ep.compute and ep.auth_mode == "key"


@pytest.mark.parametrize("target", TARGETS)
def test_deployment_serializes_to_the_rest_api(target):
    """azure-ai-ml's own conversion to the ARM request body (what `az ml` sends)."""
    dep = load_online_deployment(source=str(CLOUDML / target / "deployment.yml"))
    body = dep._to_rest_object(location="westeurope").as_dict()["properties"]
    assert body["requestSettings"]["requestTimeout"] == "PT1M30S"
    assert body["appInsightsEnabled"] is True
    assert body["livenessProbe"]["initialDelay"] == "PT3M"
    if target == "kubernetes":
        assert body["containerResourceRequirements"]["containerResourceLimits"]["memory"]


@pytest.mark.parametrize("target", TARGETS)
def test_real_files_have_no_problem(target, model_dir):
    settings = Settings(target=target, targets=(target,), model_dir=model_dir)
    assert check_specs(load_specs(settings), settings) == []


# ---------------------------------------------------------------- broken files


def _set(path: str, value):
    """A change for yaml_copy: set a dotted key (value None deletes it)."""

    def change(doc):
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node[key]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
        return doc

    return change


BROKEN = [
    # (file, change, target, words the message must contain)
    (
        "managed/deployment.yml",
        _set("request_settings.request_timeout_ms", "ninety"),
        "managed",
        ["request_settings.request_timeout_ms", "Not a valid integer"],
    ),
    (
        "managed/deployment.yml",
        _set("instance_countt", 2),
        "managed",
        ["instance_countt", "Unknown field"],
    ),
    (
        "managed/deployment.yml",
        _set("instance_type", None),
        "managed",
        ["instance_type", "Missing data for required field"],
    ),
    (
        "managed/deployment.yml",
        _set("liveness_probe.period", "often"),
        "managed",
        ["liveness_probe.period"],
    ),
    (
        "managed/deployment.yml",
        _set("request_settings.request_timeout_ms", 5000),
        "managed",
        ["request_settings.request_timeout_ms", "5000"],
    ),
    (
        "managed/deployment.yml",
        _set("request_settings.request_timeout_ms", 600000),
        "managed",
        ["request_settings.request_timeout_ms", "180000"],
    ),
    (
        "managed/deployment.yml",
        _set("request_settings.max_concurrent_requests_per_instance", 8),
        "managed",
        ["max_concurrent_requests_per_instance", "WORKER_COUNT"],
    ),
    (
        "managed/deployment.yml",
        _set("liveness_probe.initial_delay", None),
        "managed",
        ["liveness_probe.initial_delay"],
    ),
    (
        "managed/deployment.yml",
        _set("app_insights_enabled", False),
        "managed",
        ["app_insights_enabled"],
    ),
    (
        "managed/deployment.yml",
        _set("endpoint_name", "someone-else"),
        "managed",
        ["endpoint_name", "someone-else"],
    ),
    (
        "managed/deployment.yml",
        _set("model", "azureml:other-model@latest"),
        "managed",
        ["model", "other-model"],
    ),
    (
        "managed/deployment.yml",
        _set("environment_variables.SCORING_KEY", "abc"),
        "managed",
        ["environment_variables.SCORING_KEY", "secret"],
    ),
    (
        "managed/deployment.yml",
        _set("code_configuration.scoring_script", "nope.py"),
        "managed",
        ["code_configuration.scoring_script", "nope.py"],
    ),
    ("managed/endpoint.yml", _set("auth_mode", "aml_token"), "managed", ["auth_mode"]),
    (
        "kubernetes/deployment.yml",
        _set("resources.limits", None),
        "kubernetes",
        ["resources.limits"],
    ),
    ("kubernetes/endpoint.yml", _set("compute", None), "kubernetes", ["compute"]),
    (
        "environment.yml",
        _set("build.dockerfile_path", "Dockerfile.gpu"),
        "managed",
        ["build.dockerfile_path", "Dockerfile.gpu"],
    ),
    (
        "environment/Dockerfile",
        lambda text: text.replace(":59", ":latest"),
        "managed",
        ["FROM", ":latest"],
    ),
    (
        "environment/Dockerfile",
        lambda text: text + "COPY extra.txt /tmp/\n",
        "managed",
        ["COPY extra.txt", "build context"],
    ),
    ("model.yml", _set("type", "mlflow_model"), "managed", ["type", "custom_model"]),
]


@pytest.mark.parametrize(
    ("relative", "change", "target", "words"), BROKEN, ids=[f"{b[0]}-{b[3][0]}" for b in BROKEN]
)
def test_broken_file_gives_a_message_naming_the_field(
    yaml_copy, capsys, relative, change, target, words
):
    root = yaml_copy()
    assert deploy.main(["--dry-run", "--target", target, "--yaml-dir", str(root)]) == 0
    capsys.readouterr()
    root = yaml_copy(relative, change)
    code = deploy.main(["--dry-run", "--target", target, "--yaml-dir", str(root)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("deploy.py: error:")
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def test_yaml_syntax_error_names_the_file(yaml_copy, capsys):
    root = yaml_copy()
    (root / "managed" / "endpoint.yml").write_text("name: voice\n  auth_mode: [key\n")
    assert deploy.main(["--dry-run", "--target", "managed", "--yaml-dir", str(root)]) == 1
    err = capsys.readouterr().err
    assert "managed/endpoint.yml" in err and "Traceback" not in err
