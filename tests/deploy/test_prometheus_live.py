"""A real Prometheus, on the shipped scrape config and alert rules, scrapes a real `aia serve`
started the way the Docker image starts it (its ENTRYPOINT with its AIA_* environment)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.conftest import (
    HEALTH_PATHS,
    METRICS_PATH,
    PROMETHEUS,
    ROOT,
    Dockerfile,
    metric_names,
    promql_expressions,
)
from tests.deploy.test_tools import SUFFIXES
from tests.service.server import free_port, stop_process

START_TIMEOUT_S = 90.0
SCRAPE_TIMEOUT_S = 30.0
VENV_BIN = Path(sys.executable).parent


@dataclass
class Process:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def wait_for(self, path: str, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.process.args} exited {self.process.returncode}:\n"
                            f"{self.log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{self.url}{path} not 200 in {timeout_s} s:\n"
                    f"{self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        stop_process(self.process)


def _start(command: list[str], env: dict[str, str], port: int, log: Path) -> Process:
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    return Process(process, f"http://127.0.0.1:{port}", log)


def _image_env(port: int, model_dir: Path) -> dict[str, str]:
    """The Dockerfile's AIA_* settings, on loopback, a free port and the test's model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIA_")}
    env.update({k: v for k, v in Dockerfile.read().env().items() if k.startswith("AIA_")})
    env.update({"AIA_HOST": "127.0.0.1", "AIA_PORT": str(port), "AIA_MODEL_DIR": str(model_dir),
                "AIA_DRAIN_S": "2", "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"})
    return env


@pytest.fixture(scope="module")
def service(random_artifact: Path, tmp_path_factory) -> Iterator[Process]:
    port = free_port()
    entrypoint = Dockerfile.read().entrypoint()  # ["aia", "serve"]
    command = [str(VENV_BIN / entrypoint[0]), *entrypoint[1:]]
    log = tmp_path_factory.mktemp("aia-serve") / "serve.log"
    server = _start(command, _image_env(port, random_artifact), port, log)
    try:
        server.wait_for(HEALTH_PATHS[1])
        yield server
    finally:
        server.stop()


def _scrape_config_for(service_url: str, listen: str, folder: Path) -> Path:
    """The shipped prometheus.yml, its aia target pointed at the test service, scraped every
    second, its rule file by absolute path."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(PROMETHEUS / name) for name in config["rule_files"]]
    for job in config["scrape_configs"]:
        job["scrape_interval"] = "1s"
        target = service_url.removeprefix("http://") if job["job_name"] == "aia" else listen
        job["static_configs"] = [{"targets": [target]}]
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def prometheus(service: Process, tmp_path_factory) -> Iterator[Process]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus missing: apt-get install prometheus (.ci/run does)"
    folder = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    listen = f"127.0.0.1:{port}"
    config = _scrape_config_for(service.url, listen, folder)
    command = [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
               f"--web.listen-address={listen}"]
    server = _start(command, dict(os.environ), port, folder / "prometheus.log")
    try:
        server.wait_for("/-/ready")
        yield server
    finally:
        server.stop()


def _query(prometheus: Process, expression: str) -> dict[str, Any]:
    reply = httpx.get(prometheus.url + "/api/v1/query", params={"query": expression}, timeout=5)
    body = reply.json()
    assert body["status"] == "success", (expression, body)
    return body["data"]


def _wait_for_series(prometheus: Process, expression: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + SCRAPE_TIMEOUT_S
    while time.monotonic() < deadline:
        result = _query(prometheus, expression)["result"]
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"no series for {expression} in {SCRAPE_TIMEOUT_S} s")


def test_prometheus_scrapes_the_service_and_sees_request_latency(service, prometheus) -> None:
    up = _wait_for_series(prometheus, 'up{job="aia"} == 1')
    assert up[0]["metric"]["instance"] == service.url.removeprefix("http://")
    assert httpx.get(service.url + "/v1/models", timeout=10).status_code == 200
    latency = _wait_for_series(
        prometheus, 'aia_http_request_duration_seconds_count{job="aia", route="/v1/models"}')
    assert float(latency[0]["value"][1]) >= 1
    ready = _wait_for_series(prometheus, 'aia_ready{job="aia"}')
    assert ready[0]["value"][1] == "1"


def test_prometheus_loads_and_evaluates_the_shipped_alert_rules(prometheus) -> None:
    deadline = time.monotonic() + SCRAPE_TIMEOUT_S
    while True:
        groups = httpx.get(prometheus.url + "/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(rule.get("health") == "ok" for rule in rules):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(0.5)
    shipped = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    assert {rule["name"] for rule in rules} == {
        rule["alert"] for group in shipped["groups"] for rule in group["rules"]}
    firing = [rule["name"] for rule in rules if rule["state"] == "firing"]
    assert firing == []  # a healthy service trips no alert


def test_every_dashboard_and_alert_expression_runs_in_prometheus(prometheus) -> None:
    for where, expression in promql_expressions():
        concrete = (expression.replace("$__rate_interval", "1m").replace("$job", "aia")
                    .replace("$instance", ".*"))
        data = _query(prometheus, concrete)
        assert data["resultType"] in ("vector", "scalar"), where


def test_service_metrics_page_has_every_name_the_rules_and_dashboard_use(service) -> None:
    text = httpx.get(service.url + METRICS_PATH, timeout=5).text
    exposed = {"up"}
    for family in text_string_to_metric_families(text):
        exposed |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ())}
    used = set().union(*(metric_names(expr) for _, expr in promql_expressions()))
    assert used - exposed == set()


def test_the_image_health_check_command_passes_and_fails(service) -> None:
    command = Dockerfile.read().healthcheck_command()
    env = _image_env(int(service.url.rsplit(":", 1)[1]), ROOT)
    ok = subprocess.run(command, env=env, capture_output=True, timeout=30,
                        check=False)
    assert ok.returncode == 0, ok.stderr
    env["AIA_PORT"] = str(free_port())  # nothing listens there
    down = subprocess.run(command, env=env, capture_output=True, timeout=30,
                          check=False)
    assert down.returncode != 0
    for path in HEALTH_PATHS:
        assert httpx.get(service.url + path, timeout=5).status_code == 200
