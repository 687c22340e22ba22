"""Synthesize the central templates (single account, targets, organisation) and the member template."""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.iam.scenarios import ACCOUNTS, ORGANIZATION, SINGLE, TARGETS
from workflow.engine.local import CENTRAL_ACCOUNT

CDK_DIR = Path(__file__).resolve().parents[2] / "cdk"
ENVIRONMENT = "test"
EXTERNAL_ID = "tagwarden-3f9c1a7e5b2d4c6e"
ORGANIZATION_ID = "o-tagwarden01"
# The central stack's EventBusArn output as the IAM check resolves the central template.
CENTRAL_BUS_ARN = f"arn:aws:events:us-east-1:{CENTRAL_ACCOUNT}:event-bus/tagwarden-{ENVIRONMENT}-events"
CONTEXTS: dict[str, dict[str, Any]] = {
    SINGLE: {"environment": ENVIRONMENT, "tag_created_by": True, "security_hub": True, "remediation": True},
    TARGETS: {
        "environment": ENVIRONMENT,
        "targets": [{"account_id": a} for a in ACCOUNTS],
        "member_external_id": EXTERNAL_ID,
        "tag_created_by": True,
        "security_hub": True,
        "remediation": True,
    },
    ORGANIZATION: {
        "environment": ENVIRONMENT,
        "organization": True,
        "organization_id": ORGANIZATION_ID,
        "member_external_id": EXTERNAL_ID,
        "tag_created_by": True,
        "security_hub": True,
        "remediation": True,
    },
}
MEMBER_CONTEXT = {
    "deploy": "member",
    "environment": ENVIRONMENT,
    "central_account_id": CENTRAL_ACCOUNT,
    "member_external_id": EXTERNAL_ID,
    "central_event_bus_arn": CENTRAL_BUS_ARN,
    "tag_created_by": True,
    "remediation_role": True,
}


@functools.cache
def synthesize() -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, str]]:
    """``({mode: central template}, member template, {mode: scan state machine definition})``.

    No cdk-nag (the infra tests run it). The definition is the asset file CDK writes for
    ``DefinitionS3Location``, read before the output folder goes away; its ``${...}`` are still to
    be substituted with the template's ``DefinitionSubstitutions``.
    """
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    if str(CDK_DIR) not in sys.path:
        sys.path.insert(0, str(CDK_DIR))
    # Imported by name: the CDK app is on the path only from here (mypy checks it with cdk/).
    bundling = importlib.import_module("tagwarden_cdk.bundling")
    build_app = importlib.import_module("tagwarden_cdk.main").build_app
    build_member_app = importlib.import_module("tagwarden_cdk.member").build_member_app

    assets = bundling.LambdaAssets.default()
    bundling.prepare(assets)
    templates = {}
    definitions = {}
    with tempfile.TemporaryDirectory(prefix="tagwarden-iam-") as outdir:
        for mode, context in CONTEXTS.items():
            app, stack = build_app(
                context, outdir=f"{outdir}/{mode}", assets=assets, nag=False, builtin_validation=False
            )
            templates[mode] = app.synth().get_stack_artifact(stack.artifact_id).template
            for resource in templates[mode]["Resources"].values():
                if resource["Type"] == "AWS::StepFunctions::StateMachine":
                    properties = resource["Properties"]
                    if not str(properties.get("StateMachineName", "")).endswith("-scan"):
                        continue  # the event workflow's: tests/infra/test_events.py checks it
                    if "DefinitionS3Location" in properties:
                        key = properties["DefinitionS3Location"]["Key"]
                        definitions[mode] = (Path(outdir) / mode / f"asset.{key}").read_text(encoding="utf-8")
                    else:
                        definitions[mode] = json.dumps(properties["DefinitionString"])
        app, member_stack = build_member_app(
            MEMBER_CONTEXT, outdir=f"{outdir}/member", nag=False, builtin_validation=False
        )
        member = app.synth().get_stack_artifact(member_stack.artifact_id).template
    return templates, member, definitions
