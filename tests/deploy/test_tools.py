"""Real tools on the deployment files: promtool (config, rules, rule unit tests) and the
Kubernetes API schemas (kubernetes-validate, which ships them: no network)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import Metrics
from tests.deploy.conftest import PROMETHEUS, k8s_documents, metric_names, promql_expressions

# the oldest Kubernetes the manifests claim (deploy/README.md) and the newest schema shipped
K8S_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def _promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install prometheus (.ci/run does)"
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


def exported_sample_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name a registry can expose, from its families' names and types (a
    labelled family with no children yet shows only its HELP and TYPE lines)."""
    names = {"up"}  # added by Prometheus to every scraped target
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ())}
    return names


def test_promtool_accepts_the_scrape_config_and_its_rule_files() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: prometheus.yml is valid" in result.stdout


def test_promtool_accepts_the_alert_rules() -> None:
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_alerts_fire_on_bad_series_and_stay_quiet_on_good_ones() -> None:
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The check above could fail: a rule with a bad expression is refused."""
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n  - name: x\n    rules:\n"
                      "      - alert: Broken\n        expr: rate(aia_clips_total[5m]) >\n")
    result = _promtool("check", "rules", str(broken), cwd=tmp_path)
    assert result.returncode != 0


@pytest.mark.parametrize(("where", "expression"), promql_expressions(),
                         ids=[where for where, _ in promql_expressions()])
def test_every_metric_in_alerts_and_dashboard_is_exported(where: str, expression: str) -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    names = metric_names(expression)
    assert names, f"{where}: no metric in {expression!r}"
    missing = names - exported_sample_names(registry)
    assert not missing, f"{where} uses {sorted(missing)}, which service/metrics.py does not export"


def test_dashboard_and_alerts_cover_the_service_metrics() -> None:
    used = set().union(*(metric_names(expr) for _, expr in promql_expressions()))
    for family in ("aia_http_request_duration_seconds_bucket", "aia_stage_duration_seconds_bucket",
                   "aia_batch_size_sum", "aia_queue_depth", "aia_memory_events_total",
                   "aia_redis_command_duration_seconds_bucket", "aia_redis_errors_total",
                   "aia_ready", "aia_rejected_total"):
        assert family in used, family


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_match_the_api_schemas(version: str) -> None:
    checked = []
    for path, doc in k8s_documents():
        if doc["kind"] == "Kustomization":  # kustomize's own file, not an API object
            continue
        try:  # strict: unknown fields fail too
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {error}")
        checked.append(doc["kind"])
    assert sorted(set(checked)) == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Job",
                                    "PersistentVolumeClaim", "PodDisruptionBudget", "Service",
                                    "StatefulSet"]


def test_schema_check_catches_a_misspelt_field() -> None:
    (_, deployment), = [(p, d) for p, d in k8s_documents() if d["kind"] == "Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)
