"""The state machine as AWS reads it: zero diagnostics from AWS's States Language validator.

``amazon-states-language-service`` (npm, pinned in tests/asl/package-lock.json, installed by
``make asl-deps``, which ``make test`` runs first) is the library behind the AWS Toolkit's and
Workflow Studio's diagnostics. It validates the ASL file as committed and the definition each
synthesized template gives Step Functions after CloudFormation's substitutions.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.iam.synth import synthesize
from tests.iam.template import Template
from workflow import deployment

HERE = Path(__file__).resolve().parent
VALIDATOR = HERE / "validate.mjs"
PACKAGE = HERE / "node_modules" / "amazon-states-language-service"


def validate(*files: Path) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node, "Node.js is required (it is for CDK too)"
    assert PACKAGE.is_dir(), "amazon-states-language-service is not installed: run `make asl-deps`"
    completed = subprocess.run(
        [node, str(VALIDATOR), *map(str, files)], capture_output=True, text=True, check=False, timeout=120
    )
    assert completed.returncode in {0, 1}, completed.stderr
    return [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]


def test_the_asl_file_has_no_diagnostics() -> None:
    [report] = validate(deployment.ASL_PATH)
    assert report["diagnostics"] == []


def test_the_event_workflows_asl_file_has_no_diagnostics() -> None:
    [report] = validate(deployment.EVENTS_ASL_PATH)
    assert report["diagnostics"] == []


@pytest.fixture(scope="module")
def synthesized_definitions(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    templates, _, definitions = synthesize()
    folder = tmp_path_factory.mktemp("asl")
    paths = []
    for mode, document in templates.items():
        template = Template(document, name=mode, stack_name=f"Tagwarden-{mode}")
        [machine] = [
            m
            for m in template.of_type("AWS::StepFunctions::StateMachine").values()
            if str(template.resolve(m["Properties"]["StateMachineName"])).endswith("-scan")
        ]
        # CloudFormation's substitution: each ${Name} of the definition by its resolved value.
        values = {
            k: str(template.resolve(v))
            for k, v in machine["Properties"].get("DefinitionSubstitutions", {}).items()
        }
        definition = deployment.substitute(definitions[mode], values)
        assert "${" not in definition, f"{mode}: a placeholder was not substituted"
        path = folder / f"{mode}.asl.json"
        path.write_text(definition, encoding="utf-8")
        paths.append(path)
    return paths


def test_the_definition_each_template_deploys_has_no_diagnostics(synthesized_definitions: list[Path]) -> None:
    reports = validate(*synthesized_definitions)
    assert len(reports) == 3
    assert {r["file"]: r["diagnostics"] for r in reports} == {r["file"]: [] for r in reports}


def test_the_validator_reports_a_broken_definition(tmp_path: Path) -> None:
    broken = json.loads(deployment.read_definition())
    del broken["States"]["Validate input"]["Next"]
    broken["States"]["Validate input"]["Retry"][0]["MaxAttemps"] = 2
    path = tmp_path / "broken.asl.json"
    path.write_text(json.dumps(broken, indent=2), encoding="utf-8")
    [report] = validate(path)
    messages = [d["message"] for d in report["diagnostics"]]
    assert any("Next" in m for m in messages), messages
    assert any("not supported" in m for m in messages), messages
