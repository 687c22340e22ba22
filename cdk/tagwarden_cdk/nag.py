"""cdk-nag 3: rule packs run as CDK policy-validation plugins; findings are acknowledged in place.

``Validations.of(app).add_plugins(...)`` registers the AwsSolutions and Serverless packs; any
unacknowledged finding (error or warning) fails synthesis and is listed in the cloud assembly's
``validation-report.json``. Every acknowledgement names the exact rule or finding
(``AwsSolutions-IAM5[Resource::...]``) and carries a concrete reason.

Context ``tagwarden:nag-audit=true`` turns every acknowledgement off, to see (or test) what each
one hides: ``npx aws-cdk synth -c tagwarden:nag-audit=true``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import cdk_nag
from aws_cdk import Acknowledgment, App, CfnElement, Stack, Validations
from constructs import IConstruct

AUDIT_CONTEXT: Final = "tagwarden:nag-audit"
ACKNOWLEDGED_RULES_METADATA: Final = Validations.ACKNOWLEDGED_RULES_METADATA_KEY


def nag_packs(app: App) -> list[cdk_nag.NagPack]:
    return [cdk_nag.AwsSolutionsChecks(app), cdk_nag.ServerlessChecks(app)]


def register_nag_packs(app: App) -> None:
    Validations.of(app).add_plugins(*nag_packs(app))


def _audit(construct: IConstruct) -> bool:
    return str(construct.node.try_get_context(AUDIT_CONTEXT)).lower() == "true"


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one rule (or one finding, ``Rule[Finding]``) on a construct and its children."""
    if not reason.strip():
        raise ValueError(f"acknowledging {rule_id} needs a reason")
    if _audit(construct):
        return
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def arn_finding(construct: IConstruct) -> str:
    """How cdk-nag names the ``Fn::GetAtt <Arn>`` of a construct's resource in a finding id."""
    resource = construct.node.default_child
    assert isinstance(resource, CfnElement), construct.node.path
    return f"<{Stack.of(resource).get_logical_id(resource)}.Arn>"


def acknowledge_all(construct: IConstruct, rules: Iterable[tuple[str, str]]) -> None:
    for rule_id, reason in rules:
        acknowledge(construct, rule_id, reason)
