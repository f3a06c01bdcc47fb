"""The deployment files: load them with azure-ai-ml's own loaders, check them offline, describe them.

Everything here runs without credentials or network: it is what `deploy.py --dry-run` does.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .common import (
    CLOUDML,
    REQUIREMENTS_CLOUD,
    DeployError,
    Settings,
    first_line,
    rel,
    resolve_from,
)
from .modelfolder import model_folder_state

DEFAULT_REQUEST_TIMEOUT_MS = 5000  # Azure ML's default, too short for speech
MANAGED_MAX_REQUEST_TIMEOUT_MS = 180000
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CONNECTION_STRING", re.IGNORECASE)


@dataclass
class Specs:
    """The four assets of one target, loaded by azure-ai-ml from YAML, with where they came from."""

    model: Any
    environment: Any
    endpoint: Any
    deployment: Any
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def model_dir(self) -> Path:
        return Path(self.model.path)

    @property
    def hub_model(self) -> str | None:
        return (self.model.tags or {}).get("source")


def yaml_files(target: str, yaml_dir: Path = CLOUDML) -> dict[str, Path]:
    """The YAML files of a target, by asset kind."""
    return {
        "model": yaml_dir / "model.yml",
        "environment": yaml_dir / "environment.yml",
        "endpoint": yaml_dir / target / "endpoint.yml",
        "deployment": yaml_dir / target / "deployment.yml",
    }


def load_yaml(loader: Callable[..., Any], path: Path) -> Any:
    """Load one YAML with azure-ai-ml's loader; turn schema errors into a message naming the field."""
    from marshmallow import ValidationError

    if not path.is_file():
        raise DeployError(f"{rel(path)}: file not found")
    try:
        yaml.safe_load(path.read_text())  # syntax first: azure-ai-ml's message omits the line
    except yaml.YAMLError as err:
        raise DeployError(f"{rel(path)}: not valid YAML: {' '.join(str(err).split())}") from None
    try:
        return loader(source=str(path))
    except ValidationError as err:
        problems = "; ".join(f"{key}: {msg}" for key, msg in _flatten(err.messages))
        raise DeployError(f"{rel(path)}: invalid: {problems}") from None
    except Exception as err:  # azure-ai-ml wraps some schema errors in its own exception types
        raise DeployError(f"{rel(path)}: {type(err).__name__}: {first_line(err)}") from None


def _flatten(messages: Any, prefix: str = "") -> Iterable[tuple[str, str]]:
    """marshmallow's nested {field: {sub: [msg]}} as ('field.sub', 'msg') pairs.

    azure-ai-ml puts that dict, as JSON text, inside a longer message string: it is parsed out.
    """
    if isinstance(messages, str) and "{" in messages:
        with contextlib.suppress(ValueError):
            messages = json.loads(messages[messages.index("{") : messages.rindex("}") + 1])
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(messages, list):
        if all(isinstance(m, str) and "{" not in m for m in messages):
            yield prefix or "(file)", " ".join(messages)
        else:
            for item in messages:
                yield from _flatten(item, prefix)
    else:
        yield prefix or "(file)", str(messages).strip().splitlines()[0]


def load_specs(settings: Settings) -> Specs:
    """Load the target's YAML and apply the command-line overrides."""
    from azure.ai.ml import (
        load_environment,
        load_model,
        load_online_deployment,
        load_online_endpoint,
    )

    files = yaml_files(settings.target, settings.yaml_dir)
    specs = Specs(
        model=load_yaml(load_model, files["model"]),
        environment=load_yaml(load_environment, files["environment"]),
        endpoint=load_yaml(load_online_endpoint, files["endpoint"]),
        deployment=load_yaml(load_online_deployment, files["deployment"]),
        files=files,
    )
    if settings.model_dir is not None:
        specs.model.path = str(settings.model_dir.resolve())
        # tags.source names the Hub model of model.yml's folder, not this one: never fetch it here
        specs.model.tags = {k: v for k, v in (specs.model.tags or {}).items() if k != "source"}
    if settings.hub_model:
        specs.model.tags = {**(specs.model.tags or {}), "source": settings.hub_model}
    if settings.endpoint_name:
        specs.endpoint.name = settings.endpoint_name
        specs.deployment.endpoint_name = settings.endpoint_name
    if settings.deployment_name:
        specs.deployment.name = settings.deployment_name
    if settings.compute and settings.target == "kubernetes":
        specs.endpoint.compute = settings.compute
    if settings.instance_type:
        specs.deployment.instance_type = settings.instance_type
    if settings.instance_count:
        specs.deployment.instance_count = settings.instance_count
    return specs


def check_specs(specs: Specs, settings: Settings) -> list[str]:
    """Every file reference and every cross-file rule; returns the problems found (empty = fine)."""
    problems: list[str] = []
    problems += check_model(specs)
    problems += check_environment(specs)
    problems += check_deployment(specs, settings.target)
    return problems


def check_model(specs: Specs) -> list[str]:
    where = rel(specs.files["model"])
    if specs.model.type != "custom_model":
        return [f"{where}: type must be custom_model (a plain folder mounted at AZUREML_MODEL_DIR)"]
    if not specs.model.path:
        return [f"{where}: path: missing (the model folder to register)"]
    state = model_folder_state(specs.model_dir)
    if state == "missing" and not specs.hub_model:
        return [
            f"{where}: path: {rel(specs.model_dir)} does not exist and tags.source names no Hub "
            "model to fetch into it (use --model-dir DIR or --hub-model ID)"
        ]
    if state not in ("ok", "missing"):
        return [f"{where}: path: {rel(specs.model_dir)}: {state}"]
    return []


def docker_from_images(dockerfile: Path) -> list[str]:
    """The images named by FROM lines (build stages excluded)."""
    images, stages = [], set()
    for line in _docker_instructions(dockerfile):
        parts = line.split()
        if parts[0].upper() != "FROM":
            continue
        args = [a for a in parts[1:] if not a.startswith("--")]
        if len(args) >= 3 and args[1].lower() == "as":
            stages.add(args[2].lower())
        if args and args[0].lower() not in stages:
            images.append(args[0])
    return images


def docker_copy_sources(dockerfile: Path) -> list[str]:
    """Sources of COPY/ADD lines that come from the build context (not --from=stage, not URLs)."""
    sources = []
    for line in _docker_instructions(dockerfile):
        parts = line.split()
        if parts[0].upper() not in ("COPY", "ADD") or any(a.startswith("--from") for a in parts):
            continue
        args = [a for a in parts[1:] if not a.startswith("--")]
        sources += [s for s in args[:-1] if "://" not in s]
    return sources


def _docker_instructions(dockerfile: Path) -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    joined, current = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    if current:
        joined.append(current)
    return joined


def check_image_pinned(image: str) -> str | None:
    """None when the image names a fixed tag or a digest; else what is wrong."""
    if "@sha256:" in image:
        return None
    name_part = image.rsplit("/", 1)[-1]
    if ":" not in name_part:
        return f"{image} has no tag (that means :latest); pin a dated/numbered tag"
    if name_part.rsplit(":", 1)[1] == "latest":
        return f"{image} uses :latest; pin a dated/numbered tag"
    return None


def check_environment(specs: Specs) -> list[str]:
    env, where = specs.environment, rel(specs.files["environment"])
    if env.image and not env.build:
        problem = check_image_pinned(env.image)
        return [f"{where}: image: {problem}"] if problem else []
    if not env.build or not env.build.path:
        return [f"{where}: build.path: missing (the Docker build context folder)"]
    context = resolve_from(specs.files["environment"], env.build.path)
    if not context.is_dir():
        return [f"{where}: build.path: {rel(context)} is not a folder"]
    dockerfile = context / (env.build.dockerfile_path or "Dockerfile")
    if not dockerfile.is_file():
        return [f"{where}: build.dockerfile_path: {rel(dockerfile)} not found"]
    problems = []
    images = docker_from_images(dockerfile)
    if not images:
        problems.append(f"{rel(dockerfile)}: no FROM line")
    for image in images:
        problem = check_image_pinned(image)
        if problem:
            problems.append(f"{rel(dockerfile)}: FROM {problem}")
    for source in docker_copy_sources(dockerfile):
        path = context / source
        if not path.exists():  # also catches a dangling symlink
            problems.append(
                f"{rel(dockerfile)}: COPY {source}: not in the build context {rel(context)}"
            )
    mirrored = context / REQUIREMENTS_CLOUD.name
    if mirrored.exists() and mirrored.read_bytes() != REQUIREMENTS_CLOUD.read_bytes():
        problems.append(
            f"{rel(mirrored)} differs from {rel(REQUIREMENTS_CLOUD)}: it must be the symlink "
            f"(ln -sf ../../{REQUIREMENTS_CLOUD.name} {rel(mirrored)})"
        )
    return problems


def check_deployment(specs: Specs, target: str) -> list[str]:
    dep, ep, model, env = specs.deployment, specs.endpoint, specs.model, specs.environment
    where, ep_where = rel(specs.files["deployment"]), rel(specs.files["endpoint"])
    problems = []
    kind = "kubernetes" if target == "kubernetes" else "managed"
    if str(dep.type).lower() != kind:
        problems.append(f"{where}: type: {dep.type}, expected {kind} for --target {target}")
    if dep.endpoint_name != ep.name:
        problems.append(
            f"{where}: endpoint_name: {dep.endpoint_name} but {ep_where} names {ep.name}"
        )
    if ep.auth_mode != "key":
        problems.append(f"{ep_where}: auth_mode: {ep.auth_mode}, expected key")
    if target == "kubernetes" and not getattr(ep, "compute", None):
        problems.append(f"{ep_where}: compute: missing (the attached Kubernetes compute)")
    problems += _check_reference(where, "model", dep.model, model.name)
    problems += _check_reference(where, "environment", dep.environment, env.name)

    code = dep.code_configuration
    if code is None or not code.code or not code.scoring_script:
        problems.append(f"{where}: code_configuration: code and scoring_script are required")
    else:
        code_dir = resolve_from(specs.files["deployment"], code.code)
        if not code_dir.is_dir():
            problems.append(f"{where}: code_configuration.code: {rel(code_dir)} is not a folder")
        elif not (code_dir / code.scoring_script).is_file():
            problems.append(
                f"{where}: code_configuration.scoring_script: "
                f"{rel(code_dir / code.scoring_script)} not found"
            )

    variables = dep.environment_variables or {}
    for name in variables:
        if SECRET_NAME.search(name):
            problems.append(
                f"{where}: environment_variables.{name}: looks like a secret; secrets do not "
                "belong in YAML (use a Key Vault reference or the endpoint's identity)"
            )
    rs = dep.request_settings
    timeout = rs.request_timeout_ms if rs else None
    if timeout is None or timeout <= DEFAULT_REQUEST_TIMEOUT_MS:
        problems.append(
            f"{where}: request_settings.request_timeout_ms: {timeout}, must be well above the "
            f"{DEFAULT_REQUEST_TIMEOUT_MS} ms default for speech"
        )
    elif kind == "managed" and timeout > MANAGED_MAX_REQUEST_TIMEOUT_MS:
        problems.append(
            f"{where}: request_settings.request_timeout_ms: {timeout} exceeds the managed "
            f"maximum of {MANAGED_MAX_REQUEST_TIMEOUT_MS}"
        )
    workers = variables.get("WORKER_COUNT")
    concurrent = rs.max_concurrent_requests_per_instance if rs else None
    if workers is None or str(concurrent) != str(workers):
        problems.append(
            f"{where}: request_settings.max_concurrent_requests_per_instance: {concurrent} must "
            f"equal environment_variables.WORKER_COUNT ({workers})"
        )
    for probe_name in ("liveness_probe", "readiness_probe"):
        probe = getattr(dep, probe_name)
        if probe is None or not probe.initial_delay:
            problems.append(
                f"{where}: {probe_name}.initial_delay: missing; it must cover model loading"
            )
    if not dep.app_insights_enabled:
        problems.append(f"{where}: app_insights_enabled: must be true (request metrics)")
    if kind == "kubernetes":
        res = getattr(dep, "resources", None)
        for part in ("requests", "limits"):
            settings = getattr(res, part, None) if res else None
            if settings is None or not settings.cpu or not settings.memory:
                problems.append(f"{where}: resources.{part}: cpu and memory are required")
    return problems


def _check_reference(where: str, key: str, ref: Any, name: str) -> list[str]:
    """A deployment's model/environment must refer to the asset registered from the YAML."""
    if not isinstance(ref, str):
        return [f"{where}: {key}: refer to the registered asset (azureml:{name}@latest)"]
    bare = ref.removeprefix("azureml:")
    ref_name = re.split(r"[@:]", bare, maxsplit=1)[0]
    if ref_name != name:
        return [f"{where}: {key}: {ref} does not name the registered {key} {name}"]
    return []


def describe_plan(specs: Specs, settings: Settings) -> list[str]:
    """What a real run would create or update, one line per step."""
    model, env, ep, dep = specs.model, specs.environment, specs.endpoint, specs.deployment
    state = model_folder_state(specs.model_dir)
    fetch = f"  [missing: downloads {specs.hub_model} into it first]" if state == "missing" else ""
    if env.build:
        context = resolve_from(specs.files["environment"], env.build.path)
        dockerfile = context / (env.build.dockerfile_path or "Dockerfile")
        images = ", ".join(docker_from_images(dockerfile))
        files = ", ".join(sorted(p.name for p in context.iterdir()))
        env_line = f"docker build of {rel(context)} ({files}) FROM {images}"
    else:
        env_line = f"image {env.image}"
    variables = dep.environment_variables or {}
    rs = dep.request_settings
    if settings.target == "kubernetes":
        r = dep.resources
        where = (
            f"compute {ep.compute}, requests cpu={r.requests.cpu} memory={r.requests.memory}, "
            f"limits cpu={r.limits.cpu} memory={r.limits.memory}"
        )
    else:
        where = f"{dep.instance_type}"
    code = dep.code_configuration
    code_path = rel(resolve_from(specs.files["deployment"], code.code) / code.scoring_script)
    smoke = "a smoke request to the new deployment, then " if settings.smoke else ""
    return [
        f"model        {model.name} (custom_model) from {rel(specs.model_dir)}{fetch}; "
        "reused when a registered version has the same content",
        f"environment  {env.name}: {env_line}",
        f"endpoint     {ep.name} ({settings.target}, auth: {ep.auth_mode})",
        f"deployment   {dep.name}: {where} x{dep.instance_count}, code {code_path}, "
        f"WORKER_COUNT={variables.get('WORKER_COUNT')}, "
        f"request_timeout_ms={rs.request_timeout_ms}, "
        f"max_concurrent_requests_per_instance={rs.max_concurrent_requests_per_instance}, "
        f"app insights {'on' if dep.app_insights_enabled else 'off'}",
        f"traffic      {smoke}{dep.name}: {settings.traffic}%",
        "output       the scoring URI (the key only with --show-key)",
    ]
