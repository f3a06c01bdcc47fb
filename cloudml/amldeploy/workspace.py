"""The real run against a workspace: register, build, deploy, smoke-test, route traffic.

Every call goes through azure-ai-ml's MLClient; the entities come from the YAML (specs.py).
"""

from __future__ import annotations

import json
import math
import struct
import tempfile
import wave
from pathlib import Path
from typing import Any

from .common import DeployError, Settings, first_line, rel
from .modelfolder import folder_digest
from .specs import Specs


def workspace_source(settings: Settings) -> dict[str, str]:
    """Which workspace, from flags/environment or a config.json; checked before any slow step."""
    if settings.subscription_id and settings.resource_group and settings.workspace:
        return {
            "subscription_id": settings.subscription_id,
            "resource_group_name": settings.resource_group,
            "workspace_name": settings.workspace,
        }
    config = settings.config or (Path("config.json") if Path("config.json").is_file() else None)
    if config is not None:
        if not config.is_file():
            raise DeployError(f"--config {config}: file not found")
        return {"path": str(config)}
    raise DeployError(
        "which workspace? set AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZUREML_WORKSPACE "
        "(or --subscription/--resource-group/--workspace), or pass --config config.json "
        "(Studio: workspace menu > Download config file)"
    )


def connect(source: dict[str, str]) -> Any:
    """An MLClient for the workspace, with the Azure identity chain (no secret in this code)."""
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential()
    if "path" in source:
        return MLClient.from_config(credential=credential, path=source["path"])
    return MLClient(credential, **source)


def register_model(ml_client: Any, specs: Specs) -> Any:
    """Register the model folder, or reuse the registered version with the same content."""
    from azure.ai.ml.entities import Model
    from azure.core.exceptions import ResourceNotFoundError

    digest = folder_digest(specs.model_dir)
    model = specs.model
    try:
        existing = list(ml_client.models.list(name=model.name))
    except ResourceNotFoundError:  # the model name was never registered
        existing = []
    for registered in existing:
        if (registered.tags or {}).get("content_sha256") == digest:
            print(f"model        {model.name}:{registered.version} has the same content: reused")
            return registered
    fresh = Model(
        name=model.name,
        type=model.type,
        path=str(specs.model_dir),
        description=model.description,
        tags={**(model.tags or {}), "content_sha256": digest},
    )
    created = ml_client.models.create_or_update(fresh)
    print(f"model        {created.name}:{created.version} registered from {rel(specs.model_dir)}")
    return created


def route_traffic(current: dict[str, int] | None, deployment: str, percent: int) -> dict[str, int]:
    """New traffic split: `deployment` gets `percent`, the one other live deployment the rest."""
    traffic = {name: share for name, share in (current or {}).items() if name != deployment}
    if percent == 100:
        return {**dict.fromkeys(traffic, 0), deployment: 100}
    live = [name for name, share in traffic.items() if share > 0]
    if len(live) > 1:
        raise DeployError(
            f"--traffic {percent}: several other deployments take traffic ({', '.join(live)}); "
            "split it yourself with az ml online-endpoint update --traffic"
        )
    if live:
        traffic[live[0]] = 100 - percent
    return {**traffic, deployment: percent}


def smoke_request_body(wav_path: Path | None) -> dict[str, Any]:
    """The edge app's JSON body (int16-range samples, 16 kHz) from a WAV or a 1 s tone."""
    if wav_path is None:
        samples = [int(3000 * math.sin(2 * math.pi * 440 * i / 16000)) for i in range(16000)]
        return {"data": samples, "sample_rate": 16000}
    try:
        with wave.open(str(wav_path), "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise DeployError(f"--smoke-wav {wav_path}: need 16-bit mono PCM WAV")
            frames = w.readframes(w.getnframes())
            rate = w.getframerate()
    except (OSError, wave.Error, EOFError) as err:
        raise DeployError(f"--smoke-wav {wav_path}: {err}") from None
    samples = list(struct.unpack(f"<{len(frames) // 2}h", frames))
    return {"data": samples, "sample_rate": rate}


def smoke_test(ml_client: Any, specs: Specs, wav_path: Path | None) -> dict[str, Any]:
    """POST audio to the new deployment directly (before it takes traffic); must answer a result."""
    from azure.core.exceptions import HttpResponseError

    body = smoke_request_body(wav_path)
    with tempfile.TemporaryDirectory() as tmp:
        request_file = Path(tmp) / "request.json"
        request_file.write_text(json.dumps(body))
        try:
            raw = ml_client.online_endpoints.invoke(
                endpoint_name=specs.endpoint.name,
                deployment_name=specs.deployment.name,
                request_file=str(request_file),
            )
        except HttpResponseError as err:
            raise DeployError(f"smoke request failed: {first_line(err)}") from None
    try:
        answer = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        raise DeployError(f"smoke request: the answer is not JSON: {str(raw)[:200]}") from None
    if isinstance(answer, str):  # some front ends double-encode
        answer = json.loads(answer)
    if not isinstance(answer, dict) or "result" not in answer:
        raise DeployError(f"smoke request: no 'result' in the answer: {str(answer)[:200]}")
    return answer


def deploy(ml_client: Any, specs: Specs, settings: Settings) -> str:
    """Create or update everything, in order; return the scoring URI."""
    from azure.core.exceptions import ResourceNotFoundError

    ep, dep = specs.endpoint, specs.deployment
    if settings.target == "kubernetes":
        compute = str(ep.compute).removeprefix("azureml:")
        try:
            ml_client.compute.get(compute)
        except ResourceNotFoundError:
            raise DeployError(
                f"compute {compute} is not attached to the workspace: attach the cluster first "
                "(docs/deployment.md, Kubernetes), or pass --compute NAME"
            ) from None

    model = register_model(ml_client, specs)
    env = ml_client.environments.create_or_update(specs.environment)
    print(f"environment  {env.name}:{env.version} (the image builds on first use)")

    try:
        current = ml_client.online_endpoints.get(ep.name)
    except ResourceNotFoundError:
        current = None
    if current is not None:
        ep.traffic = current.traffic  # an update must not drop the live traffic split
    ml_client.online_endpoints.begin_create_or_update(ep).result()
    print(f"endpoint     {ep.name} {'updated' if current else 'created'}")

    dep.model = f"azureml:{model.name}:{model.version}"
    dep.environment = f"azureml:{env.name}:{env.version}"
    ml_client.online_deployments.begin_create_or_update(dep).result()
    print(f"deployment   {dep.name} ready (model {model.name}:{model.version}, env {env.version})")

    if settings.smoke:
        answer = smoke_test(ml_client, specs, settings.smoke_wav)
        print(f"smoke        {dep.name} answered: {json.dumps(answer)}")

    endpoint = ml_client.online_endpoints.get(ep.name)
    endpoint.traffic = route_traffic(endpoint.traffic, dep.name, settings.traffic)
    endpoint = ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    print(f"traffic      {json.dumps(endpoint.traffic)}")
    return endpoint.scoring_uri
