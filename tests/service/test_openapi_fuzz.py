"""The OpenAPI document matches behaviour: schemathesis (its command line, the stable
interface) against a real `aia serve`, every phase but the stateful one with a bounded number
of generated requests per operation, valid and invalid. No answer may be a 5xx or carry a
status, content type, body or header the document does not declare; a method a path does not
take is a 405 with Allow (`unsupported_method`; that Allow names every method is
test_app.py's); invalid data such as `lookahead_s: false` must be refused
(`negative_data_rejection`: it fails if that field is lax again).

Random bytes are a schema-valid upload but never a video, so "valid data is accepted"
(positive_data_acceptance) is the one check left out: the document cannot say "an mp4".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.service.server import Server

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance,negative_data_rejection,"
          "unsupported_method")


def test_every_answer_is_documented(random_artifact: Path, tmp_path: Path) -> None:
    server = Server(random_artifact, {}, tmp_path / "serve.log").wait_ready()
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    operations = sum(len(methods) for methods in paths.values())
    try:
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
             "--checks", CHECKS, "--phases", "examples,coverage,fuzzing",
             "--max-examples", "60", "--seed", "20261205", "--generation-deterministic",
             "--workers", "1", "--no-color"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    finally:
        assert server.stop() == 0
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert f"Tested: {operations}" in run.stdout  # every operation of the document ran
