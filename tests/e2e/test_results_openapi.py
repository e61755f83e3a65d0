"""openapi.json: a valid OpenAPI 3.1 document, and the app's triggers on fnlocal answer as it says.

schemathesis generates requests for every operation from the document (bounded: a fixed seed, a few
examples per operation, a time limit) and checks each answer: no 5xx the document does not list,
a documented status, content type and body schema.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from tests.e2e.conftest import REPO, ResultsApp

OPENAPI = REPO / "functions" / "results" / "openapi.json"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_openapi_json_is_a_valid_openapi_3_1_document() -> None:
    spec = json.loads(OPENAPI.read_text())
    validate(spec)
    assert spec["openapi"].startswith("3.1")


def test_every_http_trigger_of_the_app_is_described() -> None:
    import yaml

    spec = json.loads(OPENAPI.read_text())
    sources = {t["source"] for f in (REPO / "functions").glob("*/func.yaml")
               for t in yaml.safe_load(f.read_text()).get("triggers") or []}
    assert sources == set(spec["paths"])


@pytest.mark.e2e
@pytest.mark.integration
def test_the_served_description_is_the_repository_file(results_app: ResultsApp) -> None:
    served = httpx.get(results_app.url("results/openapi.json"))
    assert served.status_code == 200 and served.json() == json.loads(OPENAPI.read_text())


@pytest.mark.e2e
@pytest.mark.integration
@pytest.mark.slow
def test_schemathesis_finds_no_undocumented_answer(results_app: ResultsApp, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", str(OPENAPI), "--url", results_app.base,
        "--checks", CHECKS, "--mode", "positive", "--phases", "examples,coverage,fuzzing",
        "--max-examples", "30", "--request-timeout", "60", "--generation-deterministic",
        "--report", "junit", "--report-dir", str(tmp_path), "--no-color",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
