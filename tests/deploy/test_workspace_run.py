"""The real-run sequence of deploy.py against a stand-in for MLClient's operations.

No Azure subscription is reachable here, so the workspace is an in-process fake that keeps the
state a workspace keeps (model versions, endpoints, traffic) and converts every entity it gets
with azure-ai-ml's own `_to_rest_object`, i.e. the request body the real service would receive.
What this cannot check: Azure's own validation and the image build (see docs/deployment.md).
"""

from __future__ import annotations

import copy
import json
import wave
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip(
    "azure.ai.ml", reason="azure-ai-ml lives in .venv-deploy: run `make test-deploy`"
)

from azure.core.exceptions import ResourceNotFoundError  # noqa: E402

from amldeploy.common import DeployError, Settings  # noqa: E402
from amldeploy.specs import load_specs  # noqa: E402
from amldeploy.workspace import deploy, route_traffic, smoke_request_body  # noqa: E402


class _Poller:
    def __init__(self, value):
        self._value = value

    def result(self):
        return self._value


class FakeWorkspace:
    """Just enough of MLClient: the operations deploy() calls, with a workspace's state."""

    def __init__(self, smoke_answer: str = '{"result": "HELLO", "engine": "ctc"}'):
        self.calls: list[str] = []
        self.models_registered: list = []
        self.endpoints: dict = {}
        self.rest_bodies: list[dict] = []
        self.smoke_answer = smoke_answer
        self.smoke_bodies: list[dict] = []
        self.models = SimpleNamespace(list=self._models_list, create_or_update=self._model_create)
        self.environments = SimpleNamespace(create_or_update=self._env_create)
        self.online_endpoints = SimpleNamespace(
            get=self._ep_get,
            begin_create_or_update=self._ep_put,
            invoke=self._invoke,
            get_keys=lambda name: SimpleNamespace(primary_key="s3cr3t-key"),
        )
        self.online_deployments = SimpleNamespace(begin_create_or_update=self._dep_put)
        self.compute = SimpleNamespace(get=self._compute_get)
        self.attached_computes = {"k8s-compute"}

    def _models_list(self, name):
        self.calls.append("models.list")
        found = [m for m in self.models_registered if m.name == name]
        if not found:
            raise ResourceNotFoundError("no such model")
        return found

    def _model_create(self, model):
        self.calls.append("models.create_or_update")
        assert Path(model.path).is_dir()
        model.version = str(len(self.models_registered) + 1)
        self.rest_bodies.append(model._to_rest_object().as_dict())
        self.models_registered.append(model)
        return model

    def _env_create(self, env):
        self.calls.append("environments.create_or_update")
        return SimpleNamespace(name=env.name, version="3")

    def _ep_get(self, name):
        self.calls.append("online_endpoints.get")
        if name not in self.endpoints:
            raise ResourceNotFoundError(f"endpoint {name} not found")
        return copy.deepcopy(self.endpoints[name])

    def _ep_put(self, endpoint):
        self.calls.append(f"online_endpoints.put traffic={json.dumps(endpoint.traffic)}")
        self.rest_bodies.append(endpoint._to_rest_online_endpoint(location="westeurope").as_dict())
        # the service keeps its own copy and fills the read-only fields
        stored = copy.deepcopy(endpoint)
        stored._scoring_uri = f"https://{endpoint.name}.westeurope.inference.ml.azure.com/score"
        self.endpoints[endpoint.name] = stored
        return _Poller(copy.deepcopy(stored))

    def _dep_put(self, deployment):
        self.calls.append(f"online_deployments.put model={deployment.model}")
        self.rest_bodies.append(deployment._to_rest_object(location="westeurope").as_dict())
        return _Poller(deployment)

    def _invoke(self, endpoint_name, request_file, deployment_name):
        self.calls.append(f"invoke {deployment_name}")
        self.smoke_bodies.append(json.loads(Path(request_file).read_text()))
        return self.smoke_answer

    def _compute_get(self, name):
        if name not in self.attached_computes:
            raise ResourceNotFoundError(f"compute {name} not found")
        return SimpleNamespace(name=name)


def _specs(root: Path, target: str = "managed", **overrides):
    settings = Settings(target=target, targets=(target,), yaml_dir=root, **overrides)
    return load_specs(settings), settings


def test_first_run_creates_everything_and_routes_traffic_after_the_smoke_request(yaml_copy, capsys):
    ws = FakeWorkspace()
    specs, settings = _specs(yaml_copy())
    uri = deploy(ws, specs, settings)
    assert uri == "https://voice-to-text.westeurope.inference.ml.azure.com/score"
    assert ws.calls == [
        "models.list",
        "models.create_or_update",
        "environments.create_or_update",
        "online_endpoints.get",
        "online_endpoints.put traffic={}",
        "online_deployments.put model=azureml:voice-to-text-model:1",
        "invoke blue",  # the new deployment answers before it takes traffic
        "online_endpoints.get",
        'online_endpoints.put traffic={"blue": 100}',
    ]
    body = ws.smoke_bodies[0]
    assert len(body["data"]) == 16000 and body["sample_rate"] == 16000
    deployment_body = next(b for b in ws.rest_bodies if "endpointComputeType" in b["properties"])
    assert deployment_body["properties"]["environmentId"] == "azureml:voice-to-text-env:3"
    assert deployment_body["sku"] == {"name": "Default", "capacity": 1}
    assert "s3cr3t-key" not in capsys.readouterr().out


def test_second_run_reuses_the_model_and_keeps_live_traffic(yaml_copy):
    ws = FakeWorkspace()
    root = yaml_copy()
    deploy(ws, *_specs(root))
    ws.calls.clear()
    deploy(ws, *_specs(root))
    assert "models.create_or_update" not in ws.calls  # same folder content: no second upload
    assert len(ws.models_registered) == 1
    # the endpoint update carries the live split, so the update does not cut traffic
    assert 'online_endpoints.put traffic={"blue": 100}' in ws.calls[:5]


def test_changed_model_folder_registers_a_new_version(yaml_copy, tmp_path):
    ws = FakeWorkspace()
    root = yaml_copy()
    specs, settings = _specs(root)
    deploy(ws, specs, settings)
    (Path(specs.model.path) / "config.json").write_text('{"model_type": "wav2vec2", "v": 2}')
    deploy(ws, *_specs(root))
    assert [m.version for m in ws.models_registered] == ["1", "2"]
    assert (
        ws.models_registered[1].tags["content_sha256"]
        != ws.models_registered[0].tags["content_sha256"]
    )


def test_failed_smoke_request_leaves_traffic_alone(yaml_copy):
    ws = FakeWorkspace(smoke_answer='{"error": "bad_request", "message": "no"}')
    with pytest.raises(DeployError, match="no 'result'"):
        deploy(ws, *_specs(yaml_copy()))
    assert not any('"blue": 100' in call for call in ws.calls)


def test_kubernetes_needs_the_attached_compute(yaml_copy):
    ws = FakeWorkspace()
    ws.attached_computes = set()
    with pytest.raises(DeployError, match="not attached"):
        deploy(ws, *_specs(yaml_copy(), target="kubernetes"))
    ws.attached_computes = {"k8s-compute"}
    uri = deploy(ws, *_specs(yaml_copy(), target="kubernetes"))
    assert "voice-to-text-k8s" in uri
    dep = next(b for b in ws.rest_bodies if "endpointComputeType" in b["properties"])
    assert dep["properties"]["endpointComputeType"] == "Kubernetes"
    assert dep["properties"]["containerResourceRequirements"]["containerResourceRequests"]


@pytest.mark.parametrize(
    ("current", "percent", "expected"),
    [
        ({}, 100, {"blue": 100}),
        ({"blue": 100}, 100, {"blue": 100}),
        ({"green": 100}, 100, {"green": 0, "blue": 100}),
        ({"green": 100}, 10, {"green": 90, "blue": 10}),
        ({"green": 100, "blue": 0}, 0, {"green": 100, "blue": 0}),
    ],
)
def test_route_traffic(current, percent, expected):
    assert route_traffic(current, "blue", percent) == expected


def test_route_traffic_refuses_an_ambiguous_canary():
    with pytest.raises(DeployError, match="several other deployments"):
        route_traffic({"green": 50, "red": 50}, "blue", 10)


def test_smoke_body_from_a_wav(tmp_path):
    path = tmp_path / "a.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x01\x00\xff\xff" * 800)
    body = smoke_request_body(path)
    assert (
        body["sample_rate"] == 16000 and body["data"][:2] == [1, -1] and len(body["data"]) == 1600
    )
    stereo = tmp_path / "stereo.wav"
    with wave.open(str(stereo), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0\0\0" * 10)
    with pytest.raises(DeployError, match="16-bit mono"):
        smoke_request_body(stereo)


@pytest.mark.parametrize("show_key", [False, True])
def test_cli_prints_the_scoring_uri_and_the_key_only_when_asked(
    yaml_copy, model_dir, monkeypatch, capsys, show_key
):
    from deploytools import load_deploy

    deploy = load_deploy()
    ws = FakeWorkspace()
    monkeypatch.setattr(deploy, "connect", lambda source: ws)
    argv = ["--yaml-dir", str(yaml_copy()), "--model-dir", str(model_dir)]
    argv += ["--subscription", "sub", "--resource-group", "rg", "--workspace", "ws"]
    assert deploy.main(argv + (["--show-key"] if show_key else [])) == 0
    out = capsys.readouterr().out
    assert "Scoring URI: https://voice-to-text.westeurope.inference.ml.azure.com/score" in out
    assert ("s3cr3t-key" in out) is show_key
