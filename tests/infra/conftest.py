"""Synthesize the CDK app once per session; every infra test reads the same template.

* ``lambda_assets``: the dependency layer is built once (pip, into ``build/lambda-asset``, cached
  across runs) before anything is synthesized.
* ``synthesized``: the stack with a test context (two regions, emails, non-default thresholds),
  cdk-nag packs registered, CloudFormation's own validation on, synthesized into a temp dir.
  ``@aws-cdk/core:failSynthOnValidationErrors`` is off so a nag finding fails *its* test with a
  readable list instead of erroring every fixture.
* ``prod``: a second, lighter synthesis with nothing but ``environment=prod`` (defaults everywhere),
  without nag or CloudFormation validation, for what only differs by context.
* ``organization`` and ``targets``: the test context in organization mode, and with a targets list
  (and another member role name), checked like ``synthesized``: the multi-account wiring, and cdk-nag
  staying clean in both modes.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
CDK_DIR = Path(__file__).resolve().parents[2] / "cdk"
if str(CDK_DIR) not in sys.path:
    sys.path.insert(0, str(CDK_DIR))

from aws_cdk import App, assertions  # noqa: E402
from tagwarden_cdk.bundling import LambdaAssets, prepare  # noqa: E402
from tagwarden_cdk.main import build_app  # noqa: E402
from tagwarden_cdk.stack import TagwardenStack  # noqa: E402

TEST_CONTEXT: dict[str, Any] = {
    "environment": "test",
    "regions": ["us-east-1", "eu-west-1"],
    "schedule": "cron(30 5 * * ? *)",
    "notify": "new_violations",
    "email_subscriptions": ["secops@example.com", "finops@example.com"],
    "operations_email_subscriptions": ["oncall@example.com"],
    "noncompliant_threshold": 25,
    "compliance_percentage_threshold": 95,
    "map_max_concurrency": 8,
    "noncurrent_version_expiration_days": 45,
    "log_retention_days": 30,
    "athena_bytes_scanned_cutoff": 1073741824,
    "log_level": "DEBUG",
    "distributed_map_threshold": 25,
    "distributed_max_concurrency": 120,
    "tolerated_failure_percentage": 5,
    "@aws-cdk/core:failSynthOnValidationErrors": False,
}
MEMBER_EXTERNAL_ID = "tagwarden-3f9c1a7e5b2d4c6e"
ORGANIZATION_CONTEXT: dict[str, Any] = {
    **TEST_CONTEXT,
    "organization": True,
    "organization_id": "o-a1b2c3d4e5",
    "member_external_id": MEMBER_EXTERNAL_ID,
}
TARGET_ACCOUNTS = ("444455556666", "777788889999")
TARGETS_CONTEXT: dict[str, Any] = {
    **TEST_CONTEXT,
    "targets": [
        {"account_id": TARGET_ACCOUNTS[0], "regions": ["eu-west-1", "eu-central-1"]},
        {"account_id": TARGET_ACCOUNTS[1]},
    ],
    "member_role_name": "SecOpsTagScanner",
    "member_external_id": MEMBER_EXTERNAL_ID,
}


@dataclass(frozen=True)
class Synthesized:
    app: App
    stack: TagwardenStack
    outdir: Path
    template: assertions.Template
    json: dict[str, Any]

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.json["Resources"]
        return resources

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def asset_path(self, asset_file: str) -> Path:
        return self.outdir / asset_file

    @property
    def validation_report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads((self.outdir / "validation-report.json").read_text())
        return report


def _synthesize(outdir: Path, context: dict[str, Any], assets: LambdaAssets, *, checks: bool) -> Synthesized:
    app, stack = build_app(context, outdir=str(outdir), assets=assets, nag=checks, builtin_validation=checks)
    assembly = app.synth()
    template_json = assembly.get_stack_artifact(stack.artifact_id).template
    return Synthesized(
        app=app,
        stack=stack,
        outdir=outdir,
        template=assertions.Template.from_stack(stack),  # the same (cached) synthesis
        json=template_json,
    )


@pytest.fixture(scope="session")
def lambda_assets() -> LambdaAssets:
    assets = LambdaAssets.default()
    prepare(assets)  # pip runs here at most once per dependency change (cached in build/)
    return assets


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory, lambda_assets: LambdaAssets) -> Synthesized:
    return _synthesize(tmp_path_factory.mktemp("cdk-test"), dict(TEST_CONTEXT), lambda_assets, checks=True)


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory, lambda_assets: LambdaAssets) -> Synthesized:
    return _synthesize(
        tmp_path_factory.mktemp("cdk-prod"), {"environment": "prod"}, lambda_assets, checks=False
    )


@pytest.fixture(scope="session")
def organization(tmp_path_factory: pytest.TempPathFactory, lambda_assets: LambdaAssets) -> Synthesized:
    return _synthesize(
        tmp_path_factory.mktemp("cdk-organization"), dict(ORGANIZATION_CONTEXT), lambda_assets, checks=True
    )


@pytest.fixture(scope="session")
def targets(tmp_path_factory: pytest.TempPathFactory, lambda_assets: LambdaAssets) -> Synthesized:
    return _synthesize(
        tmp_path_factory.mktemp("cdk-targets"), dict(TARGETS_CONTEXT), lambda_assets, checks=True
    )


@pytest.fixture(scope="session")
def template(synthesized: Synthesized) -> assertions.Template:
    return synthesized.template


@pytest.fixture(scope="session")
def resources(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    return synthesized.resources
