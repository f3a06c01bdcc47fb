"""Deploy the scoring service to an Azure ML online endpoint, repeatably, from the YAML in cloudml/.

    python cloudml/deploy.py --dry-run                      # offline: validate everything, print the plan
    python cloudml/deploy.py                                # managed online endpoint
    python cloudml/deploy.py --target kubernetes --compute k8s-compute
    python cloudml/deploy.py --fetch-only                   # only download the Hub model folder

Steps of a real run: fetch the Hub model into the model folder when it is missing, register it
(a folder with the same content is reused, not uploaded again), create or update the environment
(Docker build on Azure), the endpoint and the deployment, send a smoke request to the new
deployment, then route traffic to it and print the scoring URI. Running it again updates in place.

Credentials come from the Azure identity chain (DefaultAzureCredential: `az login`, a managed
identity, or AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET). The endpoint key is read
through the SDK and printed only with --show-key.

Runs in its own virtual environment (`make deploy-setup` -> .venv-deploy): azure-ai-ml upgrades
OpenTelemetry past the pin of the inference server in .venv.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from amldeploy.common import CLOUDML, TARGETS, DeployError, Settings, first_line, rel
from amldeploy.modelfolder import fetch_model, model_folder_state
from amldeploy.specs import Specs, check_specs, describe_plan, load_specs
from amldeploy.workspace import connect, deploy, workspace_source


def parse_args(argv: list[str] | None = None) -> Settings:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="deploy.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--target",
        choices=TARGETS,
        default=env("DEPLOY_TARGET"),
        help="managed online endpoint (default) or an attached Kubernetes compute "
        "(env DEPLOY_TARGET); --dry-run without it checks both",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="offline: load and validate every YAML and file reference, print the plan",
    )
    p.add_argument(
        "--fetch-only",
        action="store_true",
        help="only download the Hub model into the model folder (for `az ml model create`)",
    )
    p.add_argument(
        "--model-dir",
        type=Path,
        default=_path_or_none(env("MODEL_DIR")),
        help="register this model folder instead of model.yml's path (env MODEL_DIR)",
    )
    p.add_argument(
        "--hub-model",
        default=env("HUB_MODEL"),
        help="Hugging Face id to fetch when the model folder is missing (default: model.yml tags.source)",
    )
    p.add_argument("--endpoint-name", default=env("ENDPOINT_NAME"), help="env ENDPOINT_NAME")
    p.add_argument("--deployment-name", default=env("DEPLOYMENT_NAME"), help="env DEPLOYMENT_NAME")
    p.add_argument(
        "--compute",
        default=env("AZUREML_COMPUTE"),
        help="attached Kubernetes compute name, kubernetes target (env AZUREML_COMPUTE)",
    )
    p.add_argument("--instance-type", default=env("INSTANCE_TYPE"), help="env INSTANCE_TYPE")
    p.add_argument(
        "--instance-count",
        type=int,
        default=_int_or_none(env("INSTANCE_COUNT"), "INSTANCE_COUNT"),
        help="env INSTANCE_COUNT",
    )
    p.add_argument(
        "--subscription", default=env("AZURE_SUBSCRIPTION_ID"), help="env AZURE_SUBSCRIPTION_ID"
    )
    p.add_argument(
        "--resource-group", default=env("AZURE_RESOURCE_GROUP"), help="env AZURE_RESOURCE_GROUP"
    )
    p.add_argument("--workspace", default=env("AZUREML_WORKSPACE"), help="env AZUREML_WORKSPACE")
    p.add_argument(
        "--config",
        type=Path,
        default=_path_or_none(env("AZUREML_CONFIG")),
        help="workspace config.json downloaded from the Studio (env AZUREML_CONFIG)",
    )
    p.add_argument(
        "--traffic",
        type=int,
        default=100,
        help="percent of traffic for the new deployment after its smoke request (default 100)",
    )
    p.add_argument("--no-smoke", action="store_true", help="skip the smoke request")
    p.add_argument(
        "--smoke-wav",
        type=Path,
        help="16-bit PCM WAV (16 kHz mono) for the smoke request (default: 1 s generated tone)",
    )
    p.add_argument(
        "--show-key",
        action="store_true",
        help="print the endpoint's primary key (it is never printed otherwise)",
    )
    p.add_argument("--yaml-dir", type=Path, default=CLOUDML, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if not 0 <= a.traffic <= 100:
        p.error(f"--traffic must be between 0 and 100, got {a.traffic}")
    if a.instance_count is not None and a.instance_count < 1:
        p.error(f"--instance-count must be at least 1, got {a.instance_count}")
    if a.target:
        targets: tuple[str, ...] = (a.target,)
    else:
        targets = TARGETS if a.dry_run else ("managed",)
    return Settings(
        target=targets[0],
        targets=targets,
        dry_run=a.dry_run,
        fetch_only=a.fetch_only,
        model_dir=a.model_dir,
        hub_model=a.hub_model,
        endpoint_name=a.endpoint_name,
        deployment_name=a.deployment_name,
        compute=a.compute,
        instance_type=a.instance_type,
        instance_count=a.instance_count,
        subscription_id=a.subscription,
        resource_group=a.resource_group,
        workspace=a.workspace,
        config=a.config,
        traffic=a.traffic,
        smoke=not a.no_smoke,
        smoke_wav=a.smoke_wav,
        show_key=a.show_key,
        yaml_dir=a.yaml_dir,
    )


def _path_or_none(value: str | None) -> Path | None:
    return Path(value) if value else None


def _int_or_none(value: str | None, name: str) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"deploy.py: error: {name} must be an integer, got {value!r}") from None


def validated_specs(settings: Settings) -> Specs:
    """Load and check one target's files; raise with every problem found."""
    specs = load_specs(settings)
    problems = check_specs(specs, settings)
    if problems:
        raise DeployError(
            f"{len(problems)} problem(s) in the deployment files:\n  - " + "\n  - ".join(problems)
        )
    return specs


def dry_run(settings: Settings) -> int:
    """Offline: validate each target's files and print what a real run would do."""
    for target in settings.targets:
        target_settings = replace(settings, target=target)
        specs = validated_specs(target_settings)
        print(f"Dry run (offline, nothing is created); target: {target}")
        for line in describe_plan(specs, target_settings):
            print("  " + line)
        checked = ", ".join(rel(p) for p in specs.files.values())
        print(f"OK: {checked} load with azure-ai-ml and every file they name exists.\n")
    return 0


def run(settings: Settings) -> int:
    if settings.dry_run:
        return dry_run(settings)
    specs = validated_specs(settings)
    source = None if settings.fetch_only else workspace_source(settings)

    if model_folder_state(specs.model_dir) == "missing":
        fetch_model(specs.hub_model, specs.model_dir)
    state = model_folder_state(specs.model_dir)
    if state != "ok":
        raise DeployError(f"model folder {rel(specs.model_dir)}: {state}")
    if settings.fetch_only:
        print(f"model folder ready: {rel(specs.model_dir)}")
        return 0

    ml_client = connect(source)
    scoring_uri = deploy(ml_client, specs, settings)
    print(f"\nScoring URI: {scoring_uri}")
    if settings.show_key:
        print(
            f"Primary key: {ml_client.online_endpoints.get_keys(specs.endpoint.name).primary_key}"
        )
    else:
        print(
            f"Key: az ml online-endpoint get-credentials -n {specs.endpoint.name} "
            "(or --show-key); give it to clients as SCORING_KEY, never in code."
        )
    return 0


def _azure_ai_ml_missing() -> str | None:
    """A message saying how to get azure-ai-ml, when this interpreter lacks it."""
    import importlib.util

    try:
        found = importlib.util.find_spec("azure.ai.ml") is not None
    except ModuleNotFoundError:  # no `azure` namespace at all
        found = False
    if found:
        return None
    return (
        f"deploy.py: error: azure-ai-ml is not installed for {sys.executable}. It has its own "
        "virtual environment: run `make deploy-setup`, then `.venv-deploy/bin/python "
        "cloudml/deploy.py ...` (or `make deploy-dry-run`, `make deploy ARGS=...`)"
    )


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    if missing := _azure_ai_ml_missing():
        print(missing, file=sys.stderr)
        return 2
    try:
        return run(settings)
    except DeployError as err:
        print(f"deploy.py: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("deploy.py: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # Azure service errors: the message, not a stack trace
        from azure.core.exceptions import AzureError, ClientAuthenticationError

        if isinstance(err, ClientAuthenticationError):
            print(
                "deploy.py: error: no Azure credentials (az login, a managed identity, or "
                f"AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET): {first_line(err)}",
                file=sys.stderr,
            )
            return 1
        if isinstance(err, AzureError):
            print(f"deploy.py: error: Azure: {first_line(err)}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    raise SystemExit(main())
