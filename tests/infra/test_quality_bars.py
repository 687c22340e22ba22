"""cdk-nag (AwsSolutions, Serverless), CDK annotations, CloudFormation validation and cfn-lint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from aws_cdk import Validations
from aws_cdk.assertions import Annotations, Match
from cfnlint.api import ManualArgs, lint_file
from constructs import IConstruct
from tagwarden_cdk.bundling import LambdaAssets
from tagwarden_cdk.main import build_app
from tagwarden_cdk.nag import AUDIT_CONTEXT

from tests.infra.conftest import ORGANIZATION_CONTEXT, Synthesized

ACKNOWLEDGED = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
# The single-account stack, organization mode and a targets list: each must pass every bar.
MODES = ("synthesized", "organization", "targets")


def _violations(report: dict[str, Any]) -> list[str]:
    lines = []
    for plugin in report["pluginReports"]:
        for violation in plugin.get("violations", []):
            for construct in violation.get("violatingConstructs", violation.get("violatingResources", [])):
                lines.append(
                    f"{plugin.get('pluginName')}: {violation['ruleName']} at {construct.get('constructPath')}"
                )
    return lines


@pytest.mark.parametrize("mode", MODES)
def test_nag_packs_and_cloudformation_validation_report_no_unacknowledged_finding(
    mode: str, request: pytest.FixtureRequest
) -> None:
    synthesized: Synthesized = request.getfixturevalue(mode)
    assert _violations(synthesized.validation_report) == []


@pytest.mark.parametrize("mode", MODES)
def test_stack_has_no_error_or_warning_annotations(mode: str, request: pytest.FixtureRequest) -> None:
    """cdk-nag 3 reports through the validation report, not annotations; CDK's own must be clean too."""
    synthesized: Synthesized = request.getfixturevalue(mode)
    annotations = Annotations.from_stack(synthesized.stack)
    assert annotations.find_error("*", Match.any_value()) == []
    assert annotations.find_warning("*", Match.any_value()) == []


def _acknowledgements(root: IConstruct) -> Iterator[tuple[str, str, str]]:
    for construct in root.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == ACKNOWLEDGED and entry.data:
                for rule_id, reason in dict(entry.data).items():
                    yield construct.node.path, rule_id.split("::", 1)[-1], str(reason)


@pytest.fixture(scope="module")
def audit_report(lambda_assets: LambdaAssets, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The app with every acknowledgement off (nag on, CloudFormation validation off): all findings.

    In organization mode: it only adds grants to the single-account stack (the targets mode's grants
    name exact roles and need no acknowledgement), so its findings cover every mode's.
    """
    outdir = tmp_path_factory.mktemp("cdk-audit")
    app, _ = build_app(
        {**ORGANIZATION_CONTEXT, AUDIT_CONTEXT: "true"},
        outdir=str(outdir),
        assets=lambda_assets,
        nag=True,
        builtin_validation=False,
    )
    app.synth()
    report: dict[str, Any] = json.loads((outdir / "validation-report.json").read_text())
    return report


def _findings(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (construct.get("constructPath", ""), violation["ruleName"])
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
        for construct in violation.get("violatingConstructs", violation.get("violatingResources", []))
    }


def test_both_nag_packs_run_at_synthesis(audit_report: dict[str, Any]) -> None:
    names = {p.get("pluginName") for p in audit_report["pluginReports"]}
    assert {"AwsSolutions", "Serverless"} <= names, names


@pytest.mark.parametrize("mode", MODES)
def test_every_acknowledgement_has_a_concrete_reason_and_hides_a_real_finding(
    mode: str, request: pytest.FixtureRequest, audit_report: dict[str, Any]
) -> None:
    synthesized: Synthesized = request.getfixturevalue(mode)
    acknowledged = list(_acknowledgements(synthesized.stack))
    assert acknowledged
    for path, rule_id, reason in acknowledged:
        assert len(reason) >= 60, (path, rule_id, reason)
    findings = _findings(audit_report)
    unused = [
        f"{rule_id} at {path}"
        for path, rule_id, _ in acknowledged
        if not any(rule == rule_id and (p == path or p.startswith(path + "/")) for p, rule in findings)
    ]
    assert unused == [], "\n".join(
        ["acknowledged but never found:", *unused, "findings:", *map(str, sorted(findings))]
    )


@pytest.mark.parametrize("mode", MODES)
def test_cfn_lint_reports_no_error_on_the_synthesized_template(
    mode: str, request: pytest.FixtureRequest
) -> None:
    synthesized: Synthesized = request.getfixturevalue(mode)
    template = synthesized.outdir / synthesized.stack.template_file
    matches = lint_file(template, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    errors = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.severity.lower() == "error"]
    assert errors == []
    # Only the redundant-DependsOn warning CDK itself emits for roles is tolerated.
    warnings = {m.rule.id for m in matches if m.rule.severity.lower() == "warning"}
    assert warnings <= {"W3005"}, warnings
