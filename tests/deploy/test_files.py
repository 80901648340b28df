"""The deployment files parse and agree with each other and with the service's settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from service.settings import Settings
from tests.deploy.conftest import (
    COMPOSE_FILES,
    DASHBOARD,
    DEPLOY,
    HEALTH_PATHS,
    K8S,
    METRICS_PATH,
    PROMETHEUS,
    ROOT,
    Dockerfile,
    k8s_documents,
    k8s_object,
    load_compose,
)

YAML_FILES = sorted([*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml"), ROOT / "docker-compose.yml"])
PORT = 8000


def _settings_env(name: str) -> str:
    """The setting an AIA_* variable sets, or fails naming the variable."""
    field = name.removeprefix("AIA_").lower()
    assert name.startswith("AIA_"), name
    assert field in Settings.model_fields, f"{name} is not a setting of service/settings.py"
    return field


def _aia_env_sets() -> dict[str, dict[str, str]]:
    """Every AIA_* variable set by the Dockerfile, the compose files and the k8s manifests."""
    sets = {"Dockerfile": {k: v for k, v in Dockerfile.read().env().items()
                           if k.startswith("AIA_")}}
    for path in COMPOSE_FILES:
        for name, service in load_compose(path)["services"].items():
            env = service.get("environment") or {}
            sets[f"{path.name}:{name}"] = {k: str(v) for k, v in env.items()
                                           if k.startswith("AIA_")}
    for path, doc in k8s_documents():
        if doc["kind"] == "ConfigMap":  # all of a ConfigMap: it is the service's settings
            sets[f"{path.name}:{doc['metadata']['name']}"] = dict(doc["data"])
        for container in _containers(doc):
            env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
            sets[f"{path.name}:{container['name']}"] = {
                k: v for k, v in env.items() if k.startswith("AIA_")}
    return sets


def _containers(doc: dict) -> list[dict]:
    template = doc.get("spec", {}).get("template", {})
    return template.get("spec", {}).get("containers", [])


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_files_parse(path: Path) -> None:
    documents = list(yaml.load_all(path.read_text(), Loader=yaml.SafeLoader)) \
        if "compose" not in path.name else [load_compose(path)]
    assert documents, f"{path} is empty"
    assert all(isinstance(doc, dict) for doc in documents)


def test_dashboard_json_parses_and_uses_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    assert dashboard["uid"]
    assert dashboard["panels"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/aia.yml").read_text())
    compose = load_compose(ROOT / "docker-compose.yml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in mounts


def test_every_aia_variable_is_a_setting_with_a_valid_value(monkeypatch) -> None:
    sets = _aia_env_sets()
    assert {"Dockerfile", "docker-compose.yml:aia", "configmap.yaml:aia-settings"} <= set(sets)
    for where, env in sets.items():
        for name in env:
            _settings_env(name)
        for name in Settings.model_fields:
            monkeypatch.delenv(f"AIA_{name.upper()}", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = Settings()  # pydantic validates each value as the service would
        for name, value in env.items():
            parsed = getattr(settings, _settings_env(name))
            expected = float(value) if isinstance(parsed, int | float) else value
            assert (parsed if isinstance(parsed, int | float) else str(parsed)) == expected, (
                where, name)


def test_dockerfile_is_multi_stage_non_root_and_serves_the_shipped_model(dockerfile) -> None:
    assert len(dockerfile.all("FROM")) >= 2
    assert dockerfile.entrypoint() == ["aia", "serve"]
    user = dockerfile.all("USER")[-1].split(":")[0]
    assert user not in ("root", "0")
    env = dockerfile.env()
    assert env["AIA_HOST"] == "0.0.0.0"
    assert int(env["AIA_PORT"]) == PORT
    assert dockerfile.all("EXPOSE") == [str(PORT)]
    copied_model = [arg.split()[-1] for arg in dockerfile.all("COPY")
                    if "artifacts/aia-synth-tiny" in arg]
    assert copied_model == [env["AIA_MODEL_DIR"]]
    health = dockerfile.healthcheck_command()
    assert health[0] == "python"  # the image has no curl
    assert HEALTH_PATHS[0] in health[-1]
    # the install is the project's own: `pip install .`, which pins onnxruntime-gpu
    assert any(re.search(r"pip install \.(\s|$)", arg) for arg in dockerfile.all("RUN"))
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"onnxruntime-gpu==', pyproject)
    assert not re.search(r'"onnxruntime==', pyproject)


def test_dockerfile_copies_only_what_dockerignore_lets_in(dockerfile) -> None:
    allowed = [line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    sources = []
    for arg in dockerfile.all("COPY"):
        words = [w for w in arg.split() if not w.startswith("--")]
        if "--from=" not in arg:
            sources += words[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the repo"
        assert any(source.rstrip("/") == a or source.startswith(a + "/") for a in allowed), (
            f"{source} is excluded by .dockerignore")


def test_ports_agree_across_files() -> None:
    assert Settings.model_fields["port"].default == PORT
    compose = load_compose(ROOT / "docker-compose.yml")
    assert f"{PORT}:{PORT}" in compose["services"]["aia"]["ports"]
    prometheus = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "aia"]
    assert job["metrics_path"] == METRICS_PATH
    assert job["static_configs"][0]["targets"] == [f"aia:{PORT}"]  # the compose service name
    assert int(k8s_object("ConfigMap", "aia-settings")["data"]["AIA_PORT"]) == PORT
    pod = k8s_object("Deployment", "aia")["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    (port,) = container["ports"]
    assert port["containerPort"] == PORT
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(PORT)
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == METRICS_PATH
    service = k8s_object("Service", "aia")
    assert service["spec"]["ports"][0]["targetPort"] in (port["name"], PORT)
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()


def test_k8s_probes_use_the_health_endpoints() -> None:
    (container,) = k8s_object("Deployment", "aia")["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    port_name = container["ports"][0]["name"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] == port_name


def test_termination_outlasts_pre_stop_plus_drain() -> None:
    drain_s = float(k8s_object("ConfigMap", "aia-settings")["data"]["AIA_DRAIN_S"])
    pod = k8s_object("Deployment", "aia")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > float(pre_stop[1]) + drain_s
    compose = load_compose(ROOT / "docker-compose.yml")["services"]["aia"]
    assert int(compose["stop_grace_period"].removesuffix("s")) > float(
        compose["environment"]["AIA_DRAIN_S"])


def test_no_service_link_variable_shadows_a_setting() -> None:
    """Kubernetes injects <SERVICE>_PORT=tcp://... for every Service: a Service named `aia`
    would set AIA_PORT. Pods reading AIA_* settings must turn service links off."""
    services = [doc["metadata"]["name"] for _, doc in k8s_documents() if doc["kind"] == "Service"]
    injected = {f"{s.upper().replace('-', '_')}_{suffix}"
                for s in services for suffix in ("PORT", "SERVICE_HOST", "SERVICE_PORT")}
    shadowed = {name for name in injected
                if name.removeprefix("AIA_").lower() in Settings.model_fields}
    assert shadowed == {"AIA_PORT"}  # so the guard below matters
    for _, doc in k8s_documents():
        if _containers(doc) and any(
                c.get("envFrom") or any(e["name"].startswith("AIA_") for e in c.get("env", []))
                for c in _containers(doc)):
            assert doc["spec"]["template"]["spec"]["enableServiceLinks"] is False


def test_gpu_is_requested_and_the_service_runs_non_root() -> None:
    pod = k8s_object("Deployment", "aia")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["securityContext"]["runAsNonRoot"] is True
    gpu = load_compose(ROOT / "docker-compose.yml")["services"]["aia"]["deploy"]
    assert gpu["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    cpu = load_compose(DEPLOY / "compose.cpu.yml")["services"]["aia"]
    assert cpu["deploy"] == {}
    assert cpu["environment"]["AIA_DEVICE"] == "cpu"
    assert "!reset" in (DEPLOY / "compose.cpu.yml").read_text()


def _redis_args(args: list[str]) -> dict[str, str]:
    flags = [a for a in args if a != "redis-server"]
    return {flags[i].lstrip("-"): flags[i + 1] for i in range(0, len(flags), 2)}


def test_redis_evicts_only_ttl_keys_under_a_memory_cap() -> None:
    compose = _redis_args(load_compose(ROOT / "docker-compose.yml")["services"]["redis"]["command"])
    (container,) = k8s_object("StatefulSet", "aia-redis")["spec"]["template"]["spec"]["containers"]
    k8s = _redis_args(container["args"])
    for flags in (compose, k8s):
        # every session key carries a TTL (service/store/redis_scripts.py EXPIREs them all)
        assert flags["maxmemory-policy"] in ("volatile-lru", "volatile-ttl")
        assert flags["maxmemory"].endswith("mb")
    limit_mib = int(container["resources"]["limits"]["memory"].removesuffix("Gi")) * 1024
    assert int(k8s["maxmemory"].removesuffix("mb")) < limit_mib
    assert "EXPIRE" in (ROOT / "service/store/redis_scripts.py").read_text()
    url = k8s_object("ConfigMap", "aia-settings")["data"]["AIA_REDIS_URL"]
    assert url == "redis://aia-redis:6379/0"
    assert k8s_object("Service", "aia-redis")


def test_hpa_pdb_and_kustomization_point_at_the_deployment() -> None:
    hpa = k8s_object("HorizontalPodAutoscaler", "aia")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "aia"}
    assert {m["type"] for m in hpa["spec"]["metrics"]} == {"Resource", "Pods"}
    pods_metric = next(m for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    assert pods_metric["pods"]["metric"]["name"] == "aia_queue_depth"
    labels = k8s_object("Deployment", "aia")["spec"]["template"]["metadata"]["labels"]
    pdb = k8s_object("PodDisruptionBudget", "aia")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    assert "train-job.yaml" not in kustomization["resources"]


def test_training_job_runs_the_readme_command_on_every_node() -> None:
    from model.train.config import load

    job = k8s_object("Job", "aia-train")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert container["command"] == ["torchrun"]
    flags = dict(a.lstrip("-").split("=", 1) for a in args if a.startswith("--") and "=" in a)
    nodes = int(flags["nnodes"])
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == nodes
    assert flags["nproc_per_node"] == container["resources"]["limits"]["nvidia.com/gpu"]
    # rendezvous on pod 0 through the headless Service the pods' subdomain names
    host, port = flags["rdzv_endpoint"].split(":")
    assert host == f"{job['metadata']['name']}-0.{pod['subdomain']}"
    service = k8s_object("Service", pod["subdomain"])
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"job-name": job["metadata"]["name"]}
    assert int(port) == service["spec"]["ports"][0]["port"]
    # `-m model.train --config <file> --set ...` as in the README, loadable by the trainer
    module_at = args.index("-m")
    assert args[module_at + 1] == "model.train"
    train_args = args[module_at + 2:]
    config = train_args[train_args.index("--config") + 1]
    assert config == "configs/ava-r50.yaml"
    overrides = [train_args[i + 1] for i, a in enumerate(train_args) if a == "--set"]
    cfg = load(str(ROOT / config), overrides)
    assert cfg.out_dir.startswith("/runs/")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/runs", "/data", "/weights", "/dev/shm"} <= mounts
    assert cfg.data.root.startswith("/data/")
    assert train_args[-2:] == ["--resume", "auto"]
    assert (ROOT / "configs").is_dir()
    assert container["workingDir"] == "/app"
    image = Dockerfile.read()
    assert "configs ./configs" in image.all("COPY")
    assert image.all("WORKDIR")[-1] == container["workingDir"]
