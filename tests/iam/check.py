"""The IAM check: the synthesized templates' policies against the calls the scenarios made.

``Deployment`` ties the local engine's resources to the template's (the same roles, functions,
bucket, queue, topic, database and state machine under their deployed names); ``check`` turns every
recorded call, and every call an AWS service makes for us as a consequence (Lambda's logs and
traces, KMS for an encrypted topic, S3's ListBucket check behind a 404, a Map Run's child
executions, the role assumptions), into IAM requests, evaluates each with ``tests.iam.policy``, and
marks which granted (action, resource) pair each allowed request used.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.iam import reasons as written_reasons
from tests.iam import sar
from tests.iam.policy import Decision, Principal, Statement, action_matches, arn_matches, as_list, decide
from tests.iam.recorder import RecordedCall, Recorder
from tests.iam.requests import Request, UnmappedCall, requests_for
from tests.iam.scenarios import Execution, Observations, failed_execution_event
from tests.iam.template import Template
from workflow import config, deployment
from workflow.engine import local as local_engine

ALL_FUNCTIONS = (*deployment.STEP_FUNCTIONS, *deployment.EVENT_STEP_FUNCTIONS, deployment.STORE_EVENT_BATCH)
STEP_BY_FUNCTION = {f"tagwarden-{s.name}-{local_engine.ENVIRONMENT}": s for s in ALL_FUNCTIONS}
STEP_BY_HANDLER = {s.handler: s for s in ALL_FUNCTIONS}
# The event workflow's own Task: a state machine call invoking it is the event state machine's.
EVENT_ONLY_FUNCTIONS = {
    f"tagwarden-{s.name}-{local_engine.ENVIRONMENT}" for s in deployment.EVENT_STEP_FUNCTIONS
}
ORGANIZATION_ID_KEYS = ("aws:resourceorgid", "aws:principalorgid")
# The member roles as the local engine names them (workflow.engine.member_accounts).
LOCAL_MEMBER_ROLE = "TagwardenReadOnly"
LOCAL_REMEDIATION_ROLE = config.DEFAULT_REMEDIATION_ROLE_NAME


@dataclass(frozen=True)
class Check:
    """One IAM request to evaluate, with where it came from."""

    principal_key: str  # the template principal: role logical id, or service:<name>
    principal: Principal
    request: Request
    scenario: str
    origin: str  # e.g. "s3.GetObject" or "Lambda writes the function's logs"
    expect_denied: bool = False


@dataclass
class Grant:
    principal_key: str
    statement: Statement
    action: str  # as written (may be a wildcard)
    resource: str  # as written
    used_by: set[str] = field(default_factory=set)  # scenarios
    reason: str | None = None


@dataclass
class Result:
    template: str
    checks: list[tuple[Check, Decision]]
    grants: list[Grant]
    problems: list[str]  # unmapped calls, unknown actions, unsupported condition keys, ...
    skipped_principals: dict[str, str]

    @property
    def denied(self) -> list[tuple[Check, Decision]]:
        return [(c, d) for c, d in self.checks if d.allowed == c.expect_denied]

    @property
    def denied_as_designed(self) -> list[tuple[Check, Decision]]:
        """AssumeRole calls a scenario made to fail (no member role there, or an input's role_arn
        the deployment does not grant) that IAM refuses too."""
        return [(c, d) for c, d in self.checks if c.expect_denied and not d.allowed]

    @property
    def unexercised(self) -> list[Grant]:
        return [g for g in self.grants if not g.used_by and not g.reason]


class Deployment:
    """One synthesized central template (and the member template) as the embedded engine's twin."""

    def __init__(self, name: str, central: Mapping[str, Any], member: Mapping[str, Any]) -> None:
        self.name = name
        self.template = Template(central, name=name, stack_name=f"Tagwarden-{name}")
        self.member_document = member
        t = self.template
        functions = t.of_type("AWS::Lambda::Function")
        handlers = {s.handler: s for s in ALL_FUNCTIONS}
        self.function_of_step: dict[str, str] = {}
        for logical_id, resource in functions.items():
            step = handlers.get(resource["Properties"].get("Handler"))
            if step is not None:
                self.function_of_step[step.name] = logical_id
        machines = list(t.of_type("AWS::StepFunctions::StateMachine"))
        scans = [m for m in machines if t.physical_name(m).endswith("-scan")]
        assert len(scans) == 1, machines
        self.state_machine_id = scans[0]
        # The event workflow's state machine, when the template has one.
        events = [m for m in machines if t.physical_name(m).endswith("-events")]
        self.event_machine_id = events[0] if events else None
        self.event_machine_arn = t.get_att(events[0], "Arn") if events else ""
        self.event_machine_name = t.physical_name(events[0]) if events else ""
        self.event_machine_role = (
            _getatt_id(t.resources[events[0]]["Properties"]["RoleArn"]) if events else ""
        )
        self.state_machine_arn = t.get_att(self.state_machine_id, "Arn")
        self.state_machine_name = t.physical_name(self.state_machine_id)
        self.state_machine_role = _getatt_id(t.resources[self.state_machine_id]["Properties"]["RoleArn"])
        environment = {
            step: t.resolve(functions[logical_id]["Properties"].get("Environment", {}).get("Variables", {}))
            for step, logical_id in self.function_of_step.items()
        }
        self.bucket = environment["validate-input"][config.REPORT_BUCKET]
        self.topic_arn = environment["notify"][config.TOPIC_ARN]
        self.database = environment["register-partitions"][config.GLUE_DATABASE]
        self.external_id = environment["list-instances"].get(config.MEMBER_EXTERNAL_ID)
        queues = [
            q
            for q in t.of_type("AWS::SQS::Queue")
            if t.physical_name(q).endswith("-dead-letters")
            and not t.physical_name(q).endswith("-events-dead-letters")
        ]
        assert len(queues) == 1, queues
        self.queue_arn = t.get_att(queues[0], "Arn")
        self.queue_name = t.physical_name(queues[0])
        member_roles = Template(member, name="member").of_type("AWS::IAM::Role")
        # The member stack's named roles: the read-only role, and (remediation_role) the
        # remediation role the central remediate role assumes, named in its environment.
        named = {
            r: str(Template(member).resolve(resource["Properties"]["RoleName"]))
            for r, resource in member_roles.items()
            if "RoleName" in resource["Properties"]
        }
        self.remediation_role_name = str(
            environment["remediate"].get(config.REMEDIATION_ROLE_NAME) or config.DEFAULT_REMEDIATION_ROLE_NAME
        )
        remediation = [r for r, name in named.items() if name == self.remediation_role_name]
        read_only = [r for r in named if r not in remediation]
        assert len(read_only) == 1 and len(remediation) <= 1, named
        self.member_role_id = read_only[0]
        self.member_role_name = named[self.member_role_id]
        # "" when the member stack has no remediation role.
        self.remediation_role_id = remediation[0] if remediation else ""
        self.member_role_names = named
        # The member stack's forwarding role (EventBridge delivers with it), when it forwards.
        forwarders = [
            r
            for r, resource in member_roles.items()
            if "events.amazonaws.com" in str(resource["Properties"]["AssumeRolePolicyDocument"])
        ]
        self.forwarding_role_id = forwarders[0] if forwarders else ""
        # The central bus member accounts forward to (targets and organisation templates).
        buses = list(t.of_type("AWS::Events::EventBus"))
        self.member_bus_name = t.physical_name(buses[0]) if buses else ""
        self.member_bus_arn = t.get_att(buses[0], "Arn") if buses else ""
        events_queues = [q for q in t.of_type("AWS::SQS::Queue") if t.physical_name(q).endswith("-events")]
        self.events_queue_name = t.physical_name(events_queues[0]) if events_queues else ""
        self.organization_id = self._organization_id() or "o-local"
        # Scenarios whose executions were all of the event state machine (set by run_check).
        self.event_only_scenarios: set[str] = set()
        self._translations = self._build_translations()

    # -- names ------------------------------------------------------------------------------------

    def _organization_id(self) -> str | None:
        documents = [self.template.document, self.member_document]
        found: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, Mapping):
                for key, inner in value.items():
                    if isinstance(key, str) and key.lower() in ORGANIZATION_ID_KEYS:
                        found.extend(str(v) for v in as_list(inner) if isinstance(v, str) and "${" not in v)
                    walk(inner)
            elif isinstance(value, list):
                for inner in value:
                    walk(inner)

        for document in documents:
            walk(document)
        return found[0] if found else None

    def _build_translations(self) -> list[tuple[re.Pattern[str], str]]:
        t = self.template
        pairs: list[tuple[str, str]] = [
            (f"arn:aws:s3:::{local_engine.BUCKET}", f"arn:aws:s3:::{self.bucket}")
        ]
        for local_name, step in STEP_BY_FUNCTION.items():
            name = t.physical_name(self.function_of_step[step.name])
            pairs.append((f":function:{local_name}", f":function:{name}"))
        pairs += [
            (":tagwarden-dead-letters-local", f":{self.queue_name}"),
            (":tagwarden-compliance-local", f":{self.topic_arn.rsplit(':', 1)[-1]}"),
            (f":database/{local_engine.DATABASE}", f":database/{self.database}"),
            (f":table/{local_engine.DATABASE}/", f":table/{self.database}/"),
            (f":stateMachine:{local_engine.STATE_MACHINE_NAME}", f":stateMachine:{self.state_machine_name}"),
            (f":execution:{local_engine.STATE_MACHINE_NAME}:", f":execution:{self.state_machine_name}:"),
            (f":execution:{local_engine.STATE_MACHINE_NAME}/", f":execution:{self.state_machine_name}/"),
            (f":mapRun:{local_engine.STATE_MACHINE_NAME}/", f":mapRun:{self.state_machine_name}/"),
            (f":role/{LOCAL_MEMBER_ROLE}", f":role/{self.member_role_name}"),
            (f":role/{LOCAL_REMEDIATION_ROLE}", f":role/{self.remediation_role_name}"),
            *(
                [(f":{local_engine.EVENTS_QUEUE_NAME}", f":{self.events_queue_name}")]
                if self.events_queue_name
                else []
            ),
            *(
                [(f":event-bus/{local_engine.EVENTS_QUEUE_NAME}", f":event-bus/{self.member_bus_name}")]
                if self.member_bus_name
                else []
            ),
            *(
                [
                    (
                        f":stateMachine:{local_engine.EVENTS_STATE_MACHINE_NAME}",
                        f":stateMachine:{self.event_machine_name}",
                    ),
                    (
                        f":execution:{local_engine.EVENTS_STATE_MACHINE_NAME}:",
                        f":execution:{self.event_machine_name}:",
                    ),
                ]
                if self.event_machine_name
                else []
            ),
        ]
        return [
            (re.compile(re.escape(old) + ("" if old.endswith(("/", ":")) else r"(?=$|[:/])")), new)
            for old, new in pairs
        ]

    def translate(self, value: Any) -> Any:
        if isinstance(value, str):
            if value == local_engine.MEMBER_EXTERNAL_ID and self.external_id:
                return self.external_id
            for pattern, replacement in self._translations:
                value = pattern.sub(replacement, value)
            return value
        if isinstance(value, list):
            return [self.translate(v) for v in value]
        return value

    # -- principals -------------------------------------------------------------------------------

    def role_principal(self, role_id: str) -> Principal:
        return Principal("role", self.template.role_arn(role_id), self.template.account)

    def member_principal(self, account: str, role_id: str | None = None) -> Principal:
        """A member account's role (the read-only role unless ``role_id`` names another)."""
        name = self.member_role_names[role_id or self.member_role_id]
        return Principal("role", f"arn:aws:iam::{account}:role/{name}", account)

    def member_role_of_name(self, role_name: str) -> str | None:
        """The member template's role of this (deployed) name, if any."""
        return next((r for r, name in self.member_role_names.items() if name == role_name), None)

    def member_template(self, account: str) -> Template:
        return Template(self.member_document, name="member", stack_name="TagwardenMember", account=account)

    def forwarding_principal(self, account: str) -> Principal:
        arn = self.member_template(account).role_arn(self.forwarding_role_id)
        return Principal("role", arn, account)

    def forwards_events(self) -> bool:
        """Member accounts forward events here: the template has the central bus, the member
        template its forwarding rule."""
        return bool(self.member_bus_arn and self.forwarding_role_id)

    def assumes_member_roles(self, step: str = "list-instances") -> bool:
        """Whether the step's role (the list role unless named) may assume member roles (targets
        or organisation deployments)."""
        role = self.role_of_function(step)
        return any(
            s.effect == "Allow" and s.action_applies("sts:AssumeRole")
            for s in self.template.identity_statements(role)
        )

    def assumed_member_roles(self) -> list[str]:
        """The member roles (logical ids) a central role of this template may assume."""
        roles = [self.member_role_id] if self.assumes_member_roles() else []
        if self.remediation_role_id and self.assumes_member_roles("remediate"):
            roles.append(self.remediation_role_id)
        return roles

    def role_of_function(self, step: str) -> str:
        return _getatt_id(self.template.resources[self.function_of_step[step]]["Properties"]["Role"])

    def scheduler(self) -> tuple[str, str, str] | None:
        """(schedule logical id, its role's logical id, the schedule group ARN)."""
        for logical_id, resource in self.template.of_type("AWS::Scheduler::Schedule").items():
            properties = resource["Properties"]
            group = str(self.template.resolve(properties.get("GroupName", "default")))
            group_arn = self.template.arn("scheduler", f"schedule-group/{group}")
            return logical_id, _getatt_id(properties["Target"]["RoleArn"]), group_arn
        return None

    def schedule_input(self) -> dict[str, Any] | None:
        import json

        found = self.scheduler()
        if found is None:
            return None
        target = self.template.resources[found[0]]["Properties"]["Target"]
        found_input: dict[str, Any] = json.loads(self.template.resolve(target.get("Input", "{}")))
        return found_input


def _getatt_id(value: Any) -> str:
    assert isinstance(value, Mapping) and "Fn::GetAtt" in value, value
    return str(value["Fn::GetAtt"][0])


# -- from observations to checks ------------------------------------------------------------------


def _call_checks(d: Deployment, call: RecordedCall, problems: list[str]) -> list[Check]:
    t = d.template
    caller = call.caller
    account = t.account
    if caller.kind == "function":
        if caller.name not in STEP_BY_HANDLER:
            return []  # a test's own toy handler, not a Tagwarden function
        step = STEP_BY_HANDLER[caller.name].name
        role = d.role_of_function(step)
        key, principal = role, d.role_principal(role)
    elif caller.kind == "member":
        account = caller.name
        # Which member role issued the credentials (a recording without it: the read-only role).
        local_roles = {LOCAL_MEMBER_ROLE: d.member_role_id, LOCAL_REMEDIATION_ROLE: d.remediation_role_id}
        role = caller.role or LOCAL_MEMBER_ROLE
        if role not in local_roles:
            # An execution input's role_arn naming another role: its AssumeRole is checked as
            # denied (below), so on AWS no call is ever made with such credentials.
            return []
        role_id = local_roles[role]
        if not role_id:
            problems.append(f"{call.scenario}: a call as the member role {role}, not in the member template")
            return []
        key, principal = f"member:{role_id}", d.member_principal(account, role_id)
    elif caller.kind == "state-machine":
        role = d.state_machine_role
        if (
            d.event_machine_role
            and call.service == "lambda"
            and str(call.params.get("FunctionName", "")).rsplit(":", 1)[-1] in EVENT_ONLY_FUNCTIONS
        ) or (d.event_machine_role and call.scenario in d.event_only_scenarios):
            role = d.event_machine_role
        key, principal = role, d.role_principal(role)
    elif caller.kind == "acting" and caller.name == "scheduler":
        found = d.scheduler()
        if found is None:
            problems.append(f"{call.scenario}: a scheduled start, but the template has no schedule")
            return []
        key, principal = found[1], d.role_principal(found[1])
    elif caller.kind == "acting" and caller.name == "events-rule":
        return []  # handled with the rule's pattern in _rule_checks
    else:
        problems.append(f"{call.scenario}: unknown caller {caller}")
        return []
    try:
        requests = [
            Request(r.action, d.translate(r.resource), {k: d.translate(v) for k, v in r.context.items()})
            for r in requests_for(
                call.service, call.operation, call.params, call.region, account, call.resource_tags
            )
        ]
    except UnmappedCall as err:
        problems.append(f"{call.scenario}: {err}")
        return []
    origin = f"{call.service}.{call.operation}"
    # The engine answered AccessDenied on purpose (an account without the member role): the
    # call is expected to fail, and on AWS it fails the same way (no such role to trust us).
    expect_denied = call.error in {"AccessDenied", "AccessDeniedException"} and call.operation == "AssumeRole"
    if call.operation == "AssumeRole" and str(call.params.get("RoleArn", "")).rsplit("/", 1)[-1] not in (
        LOCAL_MEMBER_ROLE,
        LOCAL_REMEDIATION_ROLE,
    ):
        # An execution input's role_arn naming another role: docs/deploy.md ("What the list role may
        # assume") says IAM refuses it and the target is reported as not scanned. The member
        # remediation role (the remediate step's) is checked as allowed, like the read-only role.
        expect_denied = True
    checks = []
    for request in requests:
        context = dict(request.context)
        context.update(_principal_context(principal, d.organization_id))
        context["aws:ResourceAccount"] = _account_of(request.resource) or account
        context["aws:ResourceOrgID"] = d.organization_id
        context["aws:ResourceOrgPaths"] = [f"{d.organization_id}/r-local/"]
        if call.service == "sts" and call.operation == "AssumeRole":
            target_account = _account_of(request.resource)
            context["sts:ExternalId"] = (
                d.translate(call.params.get("ExternalId")) if "ExternalId" in call.params else None
            )
            if context["sts:ExternalId"] is None:
                del context["sts:ExternalId"]
            if not target_account or expect_denied:
                context.pop("aws:ResourceOrgID")
                context.pop("aws:ResourceOrgPaths")
        checks.append(
            Check(
                key,
                principal,
                Request(request.action, request.resource, context),
                call.scenario,
                origin,
                expect_denied,
            )
        )
        checks += _implied_by(d, key, principal, request, call, context)
    return checks


def _implied_by(
    d: Deployment,
    key: str,
    principal: Principal,
    request: Request,
    call: RecordedCall,
    context: Mapping[str, Any],
) -> list[Check]:
    """Requests AWS makes with the caller's permissions because of this one."""
    t = d.template
    implied = []
    if request.action == "sns:Publish":
        key_arn = _topic_key(t, request.resource)
        if key_arn:
            for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                implied.append(
                    Check(
                        key,
                        principal,
                        Request(
                            action, key_arn, {**context, "kms:ViaService": f"sns.{t.region}.amazonaws.com"}
                        ),
                        call.scenario,
                        "SNS encrypts the message with the topic's KMS key",
                    )
                )
    if request.action == "sqs:SendMessage":
        key_arn = _queue_key(t, request.resource)
        if key_arn:
            for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                implied.append(
                    Check(
                        key,
                        principal,
                        Request(action, key_arn, context),
                        call.scenario,
                        "SQS encrypts the message with the queue's KMS key",
                    )
                )
    if request.action == "s3:GetObject" and call.status == 404:
        # S3 answers 404 for a missing key only to a caller allowed s3:ListBucket (else 403). The
        # request context of that check carries no s3:prefix.
        bucket = request.resource.split("/", 1)[0]
        bucket_context = {k: v for k, v in context.items() if not k.startswith("s3:prefix")}
        implied.append(
            Check(
                key,
                principal,
                Request("s3:ListBucket", bucket, bucket_context),
                call.scenario,
                "S3 checks s3:ListBucket to answer 404 rather than 403 for a missing key",
            )
        )
    return implied


def _topic_key(t: Template, topic_arn: str) -> str | None:
    for logical_id, resource in t.of_type("AWS::SNS::Topic").items():
        if t.ref(logical_id) == topic_arn:
            master = resource["Properties"].get("KmsMasterKeyId")
            return _key_arn(t, master) if master else None
    return None


def _queue_key(t: Template, queue_arn: str) -> str | None:
    for logical_id, resource in t.of_type("AWS::SQS::Queue").items():
        if t.get_att(logical_id, "Arn") == queue_arn:
            master = resource["Properties"].get("KmsMasterKeyId")
            return _key_arn(t, master) if master else None
    return None


def _key_arn(t: Template, value: Any) -> str | None:
    if isinstance(value, Mapping) and "Fn::GetAtt" in value:
        return str(t.resolve(value))
    if isinstance(value, Mapping) and "Ref" in value:
        return t.get_att(value["Ref"], "Arn")
    text = str(t.resolve(value))
    if text.startswith("alias/aws/"):
        return (
            None  # an AWS managed key: its policy admits every principal of the account through the service
        )
    return text if text.startswith("arn:") else t.arn("kms", f"key/{text}")


def _account_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 and parts[4] else None


def _principal_context(principal: Principal, organization_id: str) -> dict[str, Any]:
    """The principal's global condition keys. Every account of the local engine (the central one
    included) belongs to the deployment's organisation."""
    if principal.kind == "role":
        return {
            "aws:PrincipalArn": principal.arn,
            "aws:PrincipalAccount": principal.account,
            "aws:PrincipalType": "AssumedRole",
            "aws:PrincipalOrgID": organization_id,
            "aws:PrincipalIsAWSService": False,
        }
    return {"aws:PrincipalServiceName": principal.service, "aws:PrincipalIsAWSService": True}


def _service_checks(d: Deployment, observations: Observations, problems: list[str]) -> list[Check]:
    """What AWS services do for the deployment, derived from the invocations and executions."""
    t = d.template
    checks: list[Check] = []
    lambda_service = Principal("service", service="lambda.amazonaws.com")
    for scenario, handler in observations.invocations:
        if handler not in STEP_BY_HANDLER:
            continue
        step = STEP_BY_HANDLER[handler].name
        function_id = d.function_of_step[step]
        role = d.role_of_function(step)
        principal = d.role_principal(role)
        name = t.physical_name(function_id)
        properties = t.resources[function_id]["Properties"]
        log_group = f"/aws/lambda/{name}"
        logging_config = properties.get("LoggingConfig", {})
        if "LogGroup" in logging_config:
            log_group = str(t.resolve(logging_config["LogGroup"]))
        stream = t.arn("logs", f"log-group:{log_group}:log-stream:2026/01/01/[$LATEST]0123456789abcdef")
        base = {"aws:SecureTransport": True, **_principal_context(principal, d.organization_id)}
        checks.append(
            Check(
                f"trust:{role}",
                lambda_service,
                Request(
                    "sts:AssumeRole",
                    t.role_arn(role),
                    {"aws:SourceAccount": t.account, "aws:SourceArn": t.get_att(function_id, "Arn")},
                ),
                scenario,
                "Lambda assumes the function's role",
            )
        )
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            checks.append(
                Check(
                    role,
                    principal,
                    Request(action, stream, base),
                    scenario,
                    "Lambda writes the function's log",
                )
            )
        if properties.get("TracingConfig", {}).get("Mode") == "Active":
            for action in ("xray:PutTraceSegments", "xray:PutTelemetryRecords"):
                checks.append(
                    Check(
                        role,
                        principal,
                        Request(action, "*", base),
                        scenario,
                        "Lambda sends the function's traces (active tracing)",
                    )
                )
    states_service = Principal("service", service="states.amazonaws.com")
    for execution in observations.executions:
        event_run = bool(d.event_machine_id) and (
            f":execution:{local_engine.EVENTS_STATE_MACHINE_NAME}:" in execution.arn
        )
        sm_role = d.event_machine_role if event_run else d.state_machine_role
        sm_principal = d.role_principal(sm_role)
        machine = t.resources[(d.event_machine_id or "") if event_run else d.state_machine_id]["Properties"]
        machine_arn = d.event_machine_arn if event_run else d.state_machine_arn
        checks.append(
            Check(
                f"trust:{sm_role}",
                states_service,
                Request(
                    "sts:AssumeRole",
                    t.role_arn(sm_role),
                    {"aws:SourceAccount": t.account, "aws:SourceArn": machine_arn},
                ),
                execution.scenario,
                "Step Functions assumes the state machine's role",
            )
        )
        if machine.get("TracingConfiguration", {}).get("Enabled"):
            for action in (
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
            ):
                checks.append(
                    Check(
                        sm_role,
                        sm_principal,
                        Request(
                            action,
                            "*",
                            {
                                "aws:SecureTransport": True,
                                **_principal_context(sm_principal, d.organization_id),
                            },
                        ),
                        execution.scenario,
                        "Step Functions sends the execution's traces (tracing enabled)",
                    )
                )
    # Distributed Maps are the scan state machine's.
    sm_role = d.state_machine_role
    sm_principal = d.role_principal(sm_role)
    for scenario, map_run_arn, items in observations.map_runs:
        # A Map Run starts one child execution of this state machine per item, named
        # <state machine>/<label>:<id>, then describes (and on failure stops) them.
        label_and_id = d.translate(map_run_arn).split(":mapRun:", 1)[1]
        label = label_and_id.split(":", 1)[0]
        context = {"aws:SecureTransport": True, **_principal_context(sm_principal, d.organization_id)}
        checks.append(
            Check(
                sm_role,
                sm_principal,
                Request("states:StartExecution", d.state_machine_arn, context),
                scenario,
                "the Map Run starts its child executions",
            )
        )
        for index in range(max(items, 1)):
            child = t.arn("states", f"execution:{label}:child-{index:04d}")
            checks.append(
                Check(
                    sm_role,
                    sm_principal,
                    Request("states:DescribeExecution", child, context),
                    scenario,
                    "the Map Run tracks its child executions",
                )
            )
    found = d.scheduler()
    if found is not None:
        _, scheduler_role, group_arn = found
        scheduler_service = Principal("service", service="scheduler.amazonaws.com")
        for execution in observations.executions:
            if execution.started_by == "scheduler":
                checks.append(
                    Check(
                        f"trust:{scheduler_role}",
                        scheduler_service,
                        Request(
                            "sts:AssumeRole",
                            t.role_arn(scheduler_role),
                            {"aws:SourceAccount": t.account, "aws:SourceArn": group_arn},
                        ),
                        execution.scenario,
                        "EventBridge Scheduler assumes the schedule's role",
                    )
                )
    checks += _rule_checks(d, observations, problems)
    checks += _delivery_checks(d, observations, problems)
    checks += _alarm_checks(d)
    return checks


def _pattern_matches(pattern: Any, event: Any) -> bool:
    if isinstance(pattern, Mapping):
        return isinstance(event, Mapping) and all(
            k in event and _pattern_matches(v, event[k]) for k, v in pattern.items()
        )
    return event in pattern


def _rule_checks(d: Deployment, observations: Observations, problems: list[str]) -> list[Check]:
    """The failed-executions rule delivering a FAILED execution's event to its SQS target."""
    t = d.template
    checks = []
    deliveries = [
        c for c in observations.recorder.calls if c.caller.kind == "acting" and c.caller.name == "events-rule"
    ]
    executions = {e.scenario: e for e in observations.executions if e.status != "SUCCEEDED"}
    for call in deliveries:
        execution = executions.get(call.scenario)
        if execution is None:
            continue
        event_run = f":execution:{local_engine.EVENTS_STATE_MACHINE_NAME}:" in execution.arn
        machine_arn = d.event_machine_arn if event_run and d.event_machine_arn else d.state_machine_arn
        event = failed_execution_event(machine_arn, _translated(d, execution))
        matched = False
        for logical_id, rule in t.of_type("AWS::Events::Rule").items():
            properties = t.resolve(rule["Properties"])
            if not _pattern_matches(properties.get("EventPattern", {}), event):
                continue
            for target in properties.get("Targets", []):
                if not str(target["Arn"]).startswith("arn:aws:sqs:"):
                    continue
                matched = True
                service = Principal("service", service="events.amazonaws.com")
                context = {
                    "aws:SecureTransport": True,
                    "aws:SourceArn": t.get_att(logical_id, "Arn"),
                    "aws:SourceAccount": t.account,
                    **_principal_context(service, d.organization_id),
                }
                checks.append(
                    Check(
                        f"service:events.amazonaws.com {logical_id}",
                        service,
                        Request("sqs:SendMessage", target["Arn"], context),
                        call.scenario,
                        f"the rule {t.physical_name(logical_id)} delivers the FAILED execution's event",
                    )
                )
        if not matched:
            problems.append(
                f"{call.scenario}: no EventBridge rule with an SQS target matches the FAILED execution's event"
            )
    return checks


def _delivery_checks(d: Deployment, observations: Observations, problems: list[str]) -> list[Check]:
    """EventBridge on the event path: a member account's forwarding rule putting the event on the
    central bus (as the member's forwarding role: its trust, its policy and the bus's policy), and
    a central rule sending it to the events queue (the queue's policy)."""
    t = d.template
    checks: list[Check] = []
    service = Principal("service", service="events.amazonaws.com")
    rules = {t.physical_name(r): r for r in t.of_type("AWS::Events::Rule")}
    for scenario, delivery in observations.deliveries:
        target = d.translate(delivery.target)
        if delivery.hop == "forward":
            if not d.forwards_events():
                problems.append(
                    f"{scenario}: a member account forwarded an event, but {d.name} has no bus for it"
                )
                continue
            rule_arn = t.arn(
                "events", f"rule/{delivery.rule}", region=delivery.region, account=delivery.account
            )
            checks.append(
                Check(
                    f"trust:member-forward:{d.forwarding_role_id}",
                    service,
                    Request(
                        "sts:AssumeRole",
                        d.member_template(delivery.account).role_arn(d.forwarding_role_id),
                        {"aws:SourceAccount": delivery.account, "aws:SourceArn": rule_arn},
                    ),
                    scenario,
                    "EventBridge assumes the member's forwarding role",
                )
            )
            principal = d.forwarding_principal(delivery.account)
            context = {
                "aws:SecureTransport": True,
                **_principal_context(principal, d.organization_id),
                "aws:ResourceAccount": t.account,
            }
            checks.append(
                Check(
                    f"member-forward:{d.forwarding_role_id}",
                    principal,
                    Request("events:PutEvents", target, context),
                    scenario,
                    "the member's forwarding rule puts the event on the central bus",
                )
            )
            continue
        # The central stack's rule of the same name in the template's environment.
        suffix = delivery.rule.removeprefix(f"tagwarden-{local_engine.ENVIRONMENT}-")
        environment = d.state_machine_name.removeprefix("tagwarden-").removesuffix("-scan")
        rule_id = rules.get(f"tagwarden-{environment}-{suffix}")
        if rule_id is None:
            problems.append(f"{scenario}: {d.name} has no rule like {delivery.rule}")
            continue
        context = {
            "aws:SecureTransport": True,
            "aws:SourceArn": t.get_att(rule_id, "Arn"),
            "aws:SourceAccount": t.account,
            **_principal_context(service, d.organization_id),
        }
        checks.append(
            Check(
                f"service:events.amazonaws.com {rule_id}",
                service,
                Request("sqs:SendMessage", target, context),
                scenario,
                f"the rule {t.physical_name(rule_id)} sends the EC2 call event to the events queue",
            )
        )
    return checks


def _translated(d: Deployment, execution: Execution) -> Execution:
    return Execution(d.translate(execution.arn), execution.status, execution.scenario, [], {})


def _alarm_checks(d: Deployment) -> list[Check]:
    """An alarm action publishing to an encrypted topic: CloudWatch uses the topic's key."""
    t = d.template
    checks = []
    cloudwatch = Principal("service", service="cloudwatch.amazonaws.com")
    for logical_id, alarm in t.of_type("AWS::CloudWatch::Alarm").items():
        properties = t.resolve(alarm["Properties"])
        name = properties.get("AlarmName") or t.physical_name(logical_id)
        alarm_arn = t.arn("cloudwatch", f"alarm:{name}")
        for action in [
            *properties.get("AlarmActions", []),
            *properties.get("OKActions", []),
            *properties.get("InsufficientDataActions", []),
        ]:
            key_arn = _topic_key(t, str(action))
            if not key_arn:
                continue
            context = {
                "aws:SecureTransport": True,
                "aws:SourceArn": alarm_arn,
                "aws:SourceAccount": t.account,
                "kms:ViaService": f"sns.{t.region}.amazonaws.com",
            }
            for kms_action in ("kms:GenerateDataKey", "kms:Decrypt"):
                checks.append(
                    Check(
                        "service:cloudwatch.amazonaws.com",
                        cloudwatch,
                        Request(kms_action, key_arn, context),
                        f"template: alarm {name}",
                        "the alarm's action publishes to an encrypted topic",
                    )
                )
    return checks


# -- evaluation -----------------------------------------------------------------------------------


def principal_statements(d: Deployment, key: str, account: str) -> list[Statement]:
    if key.startswith("member:"):
        return d.member_template(account).identity_statements(key.removeprefix("member:"))
    if key.startswith("member-forward:"):
        return d.member_template(account).identity_statements(d.forwarding_role_id)
    if key.startswith(("trust:", "service:")):
        return []
    return d.template.identity_statements(key)


def evaluate(d: Deployment, check: Check) -> Decision:
    t = d.template
    identity = principal_statements(d, check.principal_key, check.principal.account)
    request = check.request
    resource = request.resource
    if request.action.lower() == "sts:assumerole":
        role_account = _account_of(resource) or ""
        role_name = resource.rsplit("/", 1)[-1]
        role_ids = [r for r in t.role_ids() if t.role_arn(r) == resource]
        if check.expect_denied:
            trust = []  # the engine's member registry has no such role in that account
        elif check.principal_key.startswith("trust:member-forward:"):
            trust = d.member_template(role_account).trust_statements(d.forwarding_role_id)
        elif role_ids:
            trust = t.trust_statements(role_ids[0])
        elif member_role := d.member_role_of_name(role_name):
            # The member stack, deployed into the account (by hand or as a StackSet): its
            # read-only role, or its remediation role.
            trust = d.member_template(role_account).trust_statements(member_role)
        else:
            trust = []
        return decide(
            check.principal, request.action, resource, request.context, identity=identity, trust_policy=trust
        )
    if request.action.lower().startswith("kms:"):
        key_policy = t.key_policies().get(resource, [])
        return decide(
            check.principal,
            request.action,
            resource,
            request.context,
            identity=identity,
            key_policy=key_policy,
        )
    policies = t.resource_policies()
    owner = resource.split("/", 1)[0] if resource.startswith("arn:aws:s3:::") else resource
    return decide(
        check.principal,
        request.action,
        resource,
        request.context,
        identity=identity,
        resource_policy=policies.get(owner, []),
        resource_account=_account_of(resource) or (t.account if resource.startswith("arn:aws:s3:::") else ""),
    )


# -- grants ---------------------------------------------------------------------------------------


def principals_in_scope(d: Deployment) -> tuple[list[str], dict[str, str]]:
    """Roles the check covers, and the ones it leaves out with why."""
    t = d.template
    ours = set()
    skipped = {}
    for logical_id, resource in t.of_type("AWS::Lambda::Function").items():
        role = _getatt_id(resource["Properties"]["Role"])
        if logical_id in d.function_of_step.values():
            ours.add(role)
        else:
            skipped[role] = (
                "aws-cdk-lib's own deploy-time custom resource handler (runs only while CloudFormation "
                "deploys or deletes the stack; its policies come from aws-cdk-lib)"
            )
    ours.add(d.state_machine_role)
    if d.event_machine_role:
        ours.add(d.event_machine_role)
    found = d.scheduler()
    if found:
        ours.add(found[1])
    for resource in t.of_type("AWS::Glue::Crawler").values():
        ours.add(
            str(resource["Properties"]["Role"])
            if isinstance(resource["Properties"]["Role"], str)
            else _getatt_id(resource["Properties"]["Role"])
        )
    for role in t.role_ids():
        if role not in ours and role not in skipped:
            if t.managed_policy_arns(role) and role.startswith("Custom"):
                skipped[role] = "aws-cdk-lib's own custom resource provider (AWS managed policy only)"
            else:
                ours.add(role)  # a new role: checked like the others
    return sorted(ours), skipped


def all_grants(d: Deployment, roles: Iterable[str], skipped: Mapping[str, str]) -> list[Grant]:
    t = d.template
    grants: list[Grant] = []

    def add(key: str, statements: Iterable[Statement]) -> None:
        for statement in statements:
            if statement.effect != "Allow":
                continue
            actions = as_list(statement.document.get("Action", statement.document.get("NotAction", [])))
            resources = as_list(statement.document.get("Resource", ["(the role)"]))
            for action in actions:
                for resource in resources:
                    grants.append(Grant(key, statement, str(action), str(resource)))

    for role in roles:
        add(role, t.identity_statements(role))
        add(f"trust:{role}", t.trust_statements(role))
    for member_role in d.assumed_member_roles():
        add(f"member:{member_role}", d.member_template(t.account).identity_statements(member_role))
        add(f"trust:member:{member_role}", d.member_template(t.account).trust_statements(member_role))
    if d.forwards_events():
        forwarding = d.member_template(t.account)
        add(f"member-forward:{d.forwarding_role_id}", forwarding.identity_statements(d.forwarding_role_id))
        add(f"trust:member-forward:{d.forwarding_role_id}", forwarding.trust_statements(d.forwarding_role_id))
    for arn, statements in t.key_policies().items():
        add(f"key:{arn}", statements)
    for arn, statements in t.resource_policies().items():
        add(f"resource:{arn}", statements)
    skipped_arns = {t.role_arn(r) for r in skipped}
    for grant in grants:
        principal = grant.statement.document.get("Principal")
        if isinstance(principal, Mapping) and any(
            str(p) in skipped_arns for p in as_list(principal.get("AWS", []))
        ):
            grant.reason = "granted to aws-cdk-lib's own custom resource (see the skipped principals)"
        elif (
            grant.principal_key.startswith("trust:") and grant.principal_key.removeprefix("trust:") in skipped
        ):
            grant.reason = "trust of aws-cdk-lib's own custom resource role"
        else:
            grant.reason = written_reasons.reason_for(d, grant)
    return grants


def _grant_key_of_check(d: Deployment, check: Check) -> list[str]:
    if check.principal_key.startswith("trust:"):
        check.principal_key.removeprefix("trust:")
        return [check.principal_key]
    keys = [check.principal_key]
    action = check.request.action.lower()
    resource = check.request.resource
    member_role = d.member_role_of_name(resource.rsplit("/", 1)[-1])
    if action == "sts:assumerole" and check.principal.kind == "role" and member_role:
        keys.append(f"trust:member:{member_role}")
    if action.startswith("kms:"):
        keys.append(f"key:{resource}")
    owner = resource.split("/", 1)[0] if resource.startswith("arn:aws:s3:::") else resource
    keys.append(f"resource:{owner}")
    return keys


def mark_used(d: Deployment, grants: list[Grant], check: Check) -> None:
    keys = set(_grant_key_of_check(d, check))
    request = check.request
    for grant in grants:
        if grant.principal_key not in keys:
            continue
        statement, resource = _in_account_of(d, grant, check)
        if not statement.applies(check.principal, request.action, request.resource, request.context):
            continue
        if not action_matches(grant.action, request.action):
            continue
        if resource != "(the role)" and not arn_matches(resource, request.resource):
            continue
        grant.used_by.add(check.scenario)


def _in_account_of(d: Deployment, grant: Grant, check: Check) -> tuple[Statement, str]:
    """The grant's statement and resource as the member stack in the check's account resolves
    them (its own account id in conditions and ARNs); other grants as they are."""
    key = grant.principal_key
    member_keys = ("member:", "trust:member:", "member-forward:", "trust:member-forward:")
    if not key.startswith(member_keys):
        return grant.statement, grant.resource
    account = str(check.request.context.get("aws:SourceAccount") or check.principal.account)
    if key.startswith("trust:member:") and check.principal.kind == "role":
        return grant.statement, grant.resource  # the central role assuming: its own account
    template = d.member_template(account)
    role = d.forwarding_role_id if "member-forward:" in key else key.rsplit(":", 1)[-1]
    if key.startswith("trust:"):
        statements = template.trust_statements(role)
    else:
        statements = template.identity_statements(role)
    statement = next(s for s in statements if s.source == grant.statement.source)
    if grant.resource == "(the role)":
        return statement, grant.resource
    # The same position in the statement's Resource list, resolved in that account.
    index = [str(r) for r in as_list(grant.statement.document.get("Resource", []))].index(grant.resource)
    return statement, str(as_list(statement.document["Resource"])[index])


def static_problems(grants: Iterable[Grant]) -> list[str]:
    """Every granted action exists, and per statement every action has a resource of a type it
    supports, every resource is of a type some action of the statement supports, and every condition
    key is supported by some action of the statement (the Service Authorization Reference)."""
    problems = []
    statements: dict[str, Statement] = {}
    for grant in grants:
        statements.setdefault(grant.statement.source, grant.statement)
    for source, statement in statements.items():
        document = statement.document
        if statement.kind == "trust" or "NotAction" in document:
            continue
        patterns = [str(a) for a in as_list(document.get("Action", []))]
        resources = [str(r) for r in as_list(document.get("Resource", []))]
        expanded: dict[str, list[str]] = {}
        for pattern in patterns:
            actions = (
                sar.expand(pattern)
                if ("*" in pattern or "?" in pattern)
                else ([pattern] if sar.exists(pattern) else [])
            )
            if not actions:
                problems.append(f"{source}: {pattern} is no action of the Service Authorization Reference")
            expanded[pattern] = actions
        every = [a for actions in expanded.values() for a in actions]
        for pattern, actions in expanded.items():
            if (
                actions
                and resources
                and not any(sar.pattern_matches_type(a, r) for a in actions for r in resources)
            ):
                problems.append(f"{source}: {pattern} supports none of the resources {resources}")
        for resource in resources:
            if every and not any(sar.pattern_matches_type(a, resource) for a in every):
                problems.append(f"{source}: {resource} is no resource type of any of {patterns}")
        for block in (document.get("Condition") or {}).values():
            for condition_key in block:
                if every and not any(sar.condition_key_supported(a, condition_key) for a in every):
                    problems.append(
                        f"{source}: no action of {patterns} supports the condition key {condition_key}"
                    )
    return problems


def run_check(d: Deployment, observations: Observations) -> Result:
    problems: list[str] = []
    modes = observations.modes
    checks: list[Check] = []
    relevant = {scenario for scenario, m in modes.items() if d.name in m}
    # A test that runs its own toy state machine (handlers that are not Tagwarden's, or none):
    # what its interpreter calls is not the Tagwarden state machine's doing.
    handlers: dict[str, set[str]] = defaultdict(set)
    for scenario, handler in observations.invocations:
        handlers[scenario].add(handler)
    toys = {s for s in relevant if not handlers[s] or not handlers[s] <= set(STEP_BY_HANDLER)}
    recorder = Recorder(invocations=[i for i in observations.invocations if i[0] in relevant])
    filtered = Observations(
        recorder=recorder,
        executions=[e for e in observations.executions if e.scenario in relevant and e.scenario not in toys],
        map_runs=[m for m in observations.map_runs if m[0] in relevant],
        modes=observations.modes,
        deliveries=[h for h in observations.deliveries if h[0] in relevant],
    )
    machines_of: dict[str, set[bool]] = defaultdict(set)
    for execution in observations.executions:
        machines_of[execution.scenario].add(
            f":stateMachine:{local_engine.EVENTS_STATE_MACHINE_NAME}" in execution.arn
            or f":execution:{local_engine.EVENTS_STATE_MACHINE_NAME}:" in execution.arn
        )
    d.event_only_scenarios = {scenario for scenario, kinds in machines_of.items() if kinds == {True}}
    for call in observations.recorder.calls:
        if call.scenario in relevant:
            if call.caller.kind == "state-machine" and call.scenario in toys:
                continue
            recorder.calls.append(call)
            checks += _call_checks(d, call, problems)
    checks += _service_checks(d, filtered, problems)
    roles, skipped = principals_in_scope(d)
    grants = all_grants(d, roles, skipped)
    decided = []
    for check in checks:
        decision = evaluate(d, check)
        decided.append((check, decision))
        if decision.allowed and not check.expect_denied:
            mark_used(d, grants, check)
    problems += static_problems(grants)
    return Result(d.name, decided, grants, problems, skipped)


def principal_label(d: Deployment, key: str) -> str:
    t = d.template
    if key.startswith("trust:member:") or key.startswith("member:"):
        name = d.member_role_names.get(key.rsplit(":", 1)[-1], d.member_role_name)
        return f"member role {name}" + (" (trust)" if key.startswith("trust:") else "")
    if key.startswith(("trust:member-forward:", "member-forward:")):
        return "member forwarding role" + (" (trust)" if key.startswith("trust:") else "")
    if key.startswith("trust:"):
        role = key.removeprefix("trust:")
        return f"{t.physical_name(role) if role in t.resources else role} (trust)"
    if key.startswith("key:"):
        return "KMS key policy"
    if key.startswith("resource:"):
        arn = key.removeprefix("resource:")
        return f"resource policy of {arn.rsplit(':', 1)[-1]}"
    if key in t.resources:
        return f"role {_role_title(d, key)}"
    return key


def _role_title(d: Deployment, role: str) -> str:
    for step, _function in d.function_of_step.items():
        if d.role_of_function(step) == role:
            return f"{step} (Lambda)"
    if role == d.state_machine_role:
        return "state machine"
    if role == d.event_machine_role:
        return "event state machine"
    found = d.scheduler()
    if found and found[1] == role:
        return "scheduler"
    return role


def summary_line(results: Iterable[Result]) -> str:
    results = list(results)
    calls = sum(len(r.checks) for r in results)
    denied = sum(len(r.denied) for r in results)
    grants = sum(len(r.grants) for r in results)
    unexercised = sum(len(r.unexercised) for r in results)
    return f"{calls} calls checked, {denied} denied, {grants} grants, {unexercised} unexercised"


def by_principal(result: Result) -> dict[str, list[Grant]]:
    grouped: dict[str, list[Grant]] = defaultdict(list)
    for grant in result.grants:
        grouped[grant.principal_key].append(grant)
    return grouped
