"""What every part of the deployment tool shares: where things are, settings, errors, messages."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOUDML = Path(__file__).resolve().parents[1]
REPO = CLOUDML.parent
REQUIREMENTS_CLOUD = REPO / "requirements-cloud.txt"
TARGETS = ("managed", "kubernetes")


class DeployError(Exception):
    """A problem the user can fix; printed as one clear message, no stack trace."""


@dataclass(frozen=True)
class Settings:
    """Everything a run needs; flags fall back to environment variables."""

    target: str = "managed"
    targets: tuple[str, ...] = ("managed",)
    dry_run: bool = False
    fetch_only: bool = False
    model_dir: Path | None = None
    hub_model: str | None = None
    endpoint_name: str | None = None
    deployment_name: str | None = None
    compute: str | None = None
    instance_type: str | None = None
    instance_count: int | None = None
    subscription_id: str | None = None
    resource_group: str | None = None
    workspace: str | None = None
    config: Path | None = None
    traffic: int = 100
    smoke: bool = True
    smoke_wav: Path | None = None
    show_key: bool = False
    yaml_dir: Path = CLOUDML


def resolve_from(yaml_file: Path, relative: str | os.PathLike) -> Path:
    """A path written in a YAML file, relative to that file's folder (as az ml reads it)."""
    return (yaml_file.parent / relative).resolve()


def rel(path: Path) -> str:
    """Repository-relative for messages; absolute when outside the repository."""
    resolved = Path(os.path.abspath(path))
    try:
        return resolved.relative_to(REPO).as_posix()
    except ValueError:
        return str(resolved)


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
