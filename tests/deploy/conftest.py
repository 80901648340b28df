"""Shared readers of the deployment files (Dockerfile, compose, k8s, Prometheus, Grafana)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "aia.json"
COMPOSE_FILES = (ROOT / "docker-compose.yml", DEPLOY / "compose.cpu.yml")
HEALTH_PATHS = ("/health/live", "/health/ready")
METRICS_PATH = "/metrics"


class ComposeLoader(yaml.SafeLoader):
    """Safe loading plus Docker Compose's merge tags (`!reset`, `!override`)."""


def _compose_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


ComposeLoader.add_multi_constructor("!", _compose_tag)


def load_compose(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=ComposeLoader)


def k8s_documents() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object in deploy/k8s, with its file (the Kustomization included)."""
    return [(path, doc) for path in sorted(K8S.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [doc for _, doc in k8s_documents()
             if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name} in deploy/k8s, found {len(found)}"
    return found[0]


@dataclass(frozen=True)
class Dockerfile:
    """The instructions of the top-level Dockerfile, continuation lines joined."""

    instructions: list[tuple[str, str]]

    @classmethod
    def read(cls, path: Path = ROOT / "Dockerfile") -> Dockerfile:
        text = re.sub(r"\\\n", " ", path.read_text())
        lines = [ln.strip() for ln in text.splitlines()]
        pairs = [ln.split(None, 1) for ln in lines if ln and not ln.startswith("#")]
        return cls([(p[0].upper(), p[1] if len(p) > 1 else "") for p in pairs])

    def all(self, keyword: str) -> list[str]:
        return [arg for key, arg in self.instructions if key == keyword]

    def final_stage(self) -> list[tuple[str, str]]:
        starts = [i for i, (key, _) in enumerate(self.instructions) if key == "FROM"]
        return self.instructions[starts[-1]:]

    def env(self) -> dict[str, str]:
        """ENV of the final stage (`ENV A=1 B=2` form)."""
        found: dict[str, str] = {}
        for key, arg in self.final_stage():
            if key == "ENV":
                found.update(item.split("=", 1) for item in shlex.split(arg))
        return found

    def healthcheck_command(self) -> list[str]:
        """The HEALTHCHECK's exec-form command."""
        (arg,) = self.all("HEALTHCHECK")
        return json.loads(arg.split(" CMD ", 1)[1])

    def entrypoint(self) -> list[str]:
        (arg,) = self.all("ENTRYPOINT")
        return json.loads(arg)


def promql_expressions() -> list[tuple[str, str]]:
    """(where, expression) of every alert rule and every dashboard query."""
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    found = [(f"alert {rule['alert']}", rule["expr"])
             for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    found += [(f"panel {panel['title']!r}", target["expr"])
              for panel in dashboard["panels"] for target in panel["targets"]]
    return found


def metric_names(expression: str) -> set[str]:
    """Metric names in a PromQL expression: our `aia_` names and Prometheus's own `up`."""
    without_strings = re.sub(r'"[^"]*"', '""', expression)
    return set(re.findall(r"\b(aia_[a-z0-9_]+|up)\b", without_strings))


@pytest.fixture(scope="session")
def dockerfile() -> Dockerfile:
    return Dockerfile.read()
