"""Step "Validate input": check the execution input and the policy, fix the run's parameters."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Final

from jsonschema import Draft202012Validator

from workflow import layout, targets
from workflow.aws import aws_call
from workflow.config import ValidateConfig
from workflow.errors import InvalidInput, Problem, ReportNotFound
from workflow.exemption_files import stage_run_policy
from workflow.policy import compile_policy, load_policy_document, parse_policy_text
from workflow.policy.compiler import CompiledPolicy
from workflow.policy.document import MAX_POLICY_BYTES, json_path
from workflow.storage import put_json

# The cause travels in the state and ends in the Fail state: keep it far below the 8 KB budget.
MAX_CAUSE_CHARS: Final = 4000


@cache
def _input_validator() -> Draft202012Validator:
    schema = json.loads(
        resources.files("workflow").joinpath("execution-input.schema.json").read_text("utf-8")
    )
    return Draft202012Validator(schema)


def input_problems(document: Any) -> list[Problem]:
    """Problems of the execution input's shape (not of the policy inside it).

    >>> [str(p) for p in input_problems({"notify": "sometimes"})]
    ["$.notify: 'sometimes' is not one of ['always', 'violations', 'new_violations', 'never']"]
    """
    problems = []
    for error in sorted(
        _input_validator().iter_errors(document), key=lambda e: list(map(str, e.absolute_path))
    ):
        path = json_path(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = ", ".join(sorted(error.schema.get("properties", {})))
            for extra in sorted(set(error.instance) - set(error.schema.get("properties", {}))):
                problems.append(Problem(f"{path}.{extra}", f"unknown field; allowed fields: {allowed}"))
        elif error.validator == "not":
            problems.append(Problem("$", "give either 'policy' or 'policy_uri', not both"))
        elif error.validator == "type" and path == "$":
            problems.append(Problem("$", "the execution input must be a JSON object"))
        else:
            problems.append(Problem(path, error.message))
    return problems


def read_policy_object(s3: Any, uri: str, path: str) -> Any:
    location = layout.parse_s3_uri(uri)
    if location is None:
        raise InvalidInput([Problem(path, f"{uri!r} is not an s3://bucket/key URI")])
    bucket, key = location
    try:
        with aws_call(f"GetObject {uri}"):
            response = s3.get_object(Bucket=bucket, Key=key)
            if int(response.get("ContentLength", 0)) > MAX_POLICY_BYTES:
                raise InvalidInput([Problem(path, f"{uri} is larger than {MAX_POLICY_BYTES // 1024} KiB")])
            raw = response["Body"].read(MAX_POLICY_BYTES + 1)
    except ReportNotFound:
        raise InvalidInput([Problem(path, f"{uri} does not exist")]) from None
    try:
        return parse_policy_text(raw.decode("utf-8-sig"), source=uri)
    except UnicodeDecodeError:
        raise InvalidInput([Problem(path, f"{uri} is not UTF-8 text")]) from None


def _cause(problems: Sequence[Problem]) -> str:
    lines: list[str] = []
    size = 0
    for index, problem in enumerate(problems):
        line = str(problem)
        if size + len(line) > MAX_CAUSE_CHARS:
            lines.append(f"... and {len(problems) - index} more problems")
            break
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def _invalid(problems: Sequence[Problem]) -> dict[str, Any]:
    return {"valid": False, "cause": _cause(problems), "run": None, "targets": []}


def _work_items(
    document: dict[str, Any],
    config: ValidateConfig,
    regions: list[str],
    role_name: str,
    organizations_factory: Callable[[], Any] | None,
) -> list[targets.WorkItem]:
    if document.get("organization"):
        if organizations_factory is None:
            raise InvalidInput([Problem("$.organization", "organization mode is not available here")])
        accounts = targets.organization_accounts(
            organizations_factory(), exclude=document.get("exclude_accounts", ())
        )
        items = targets.target_items(
            ({"account_id": a} for a in accounts), default_regions=regions, role_name=role_name
        )
        return targets.require_items(items, "$.exclude_accounts")
    if "targets" in document:
        if config.organization_deployment and organizations_factory is not None:
            members = set(targets.organization_accounts(organizations_factory()))
            targets.require_members(document["targets"], members)
        return targets.target_items(document["targets"], default_regions=regions, role_name=role_name)
    return targets.self_items(regions)


def validate_input(
    event: dict[str, Any],
    config: ValidateConfig,
    *,
    s3: Any,
    organizations_factory: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Validate the input, store the policy and the work-item manifest; ``{"valid": False, ...}``
    when invalid.

    ``event`` is ``{"input": <execution input>, "execution": {"id", "name", "start_time"}}``.
    ``organizations_factory`` gives an Organizations client, called only for ``organization: true``.
    The result's ``targets`` holds the work items for the inline Map, or nothing when there are more
    than the deployment's threshold: the Distributed Map then reads them from the manifest.
    """
    document = event.get("input")
    execution = event["execution"]
    problems = input_problems(document)
    if not problems and isinstance(document, dict):
        problems = targets.target_problems(document)
    if problems:
        return _invalid(problems)
    assert isinstance(document, dict)
    try:
        if "policy" in document:
            raw_policy, source = document["policy"], "$.policy"
        else:
            uri = document.get("policy_uri", config.default_policy_uri)
            source = "$.policy_uri" if "policy_uri" in document else "default policy"
            raw_policy = read_policy_object(s3, uri, source)
        policy_doc = load_policy_document(raw_policy, name="execution-input")
        policy = compile_policy(policy_doc)
    except InvalidInput as err:
        prefix = "$.policy" if source == "$.policy" else None
        return _invalid([_nest(p, prefix, source) for p in err.problems])

    run_id = execution["name"]
    started = datetime.fromisoformat(execution["start_time"].replace("Z", "+00:00"))
    regions = list(document.get("regions", config.default_regions))
    role_name = str(document.get("role_name") or config.member_role_name)
    try:
        items = _work_items(document, config, regions, role_name, organizations_factory)
    except InvalidInput as err:
        return _invalid(err.problems)
    distributed = len(items) > config.distributed_map_threshold
    exemption_files = stage_run_policy(s3, config.report_bucket, layout.policy_key(run_id), policy_doc)
    put_json(s3, config.report_bucket, layout.targets_manifest_key(run_id), items)
    return {
        "valid": True,
        "cause": None,
        "targets": [] if distributed else items,
        "run": {
            "run_id": run_id,
            "execution_id": execution["id"],
            "dt": started.date().isoformat(),
            "started_at": started.isoformat(),
            "bucket": config.report_bucket,
            **policy_run_fields(policy, run_id),
            "regions": regions,
            "notify": document.get("notify", config.default_notify),
            "dry_run": bool(document.get("dry_run", False)),
            "max_concurrency": config.max_concurrency,
            "targets_key": layout.targets_manifest_key(run_id),
            "target_count": len(items),
            "accounts": len({item["account_id"] for item in items}),
            "fanout": "distributed" if distributed else "inline",
            "member_role_name": role_name,
            "distributed_max_concurrency": config.distributed_max_concurrency,
            "tolerated_failure_percentage": config.tolerated_failure_percentage,
            "map_results_prefix": layout.map_results_prefix(run_id),
            **({"exemption_files": exemption_files} if exemption_files else {}),
            # Imported into Security Hub after the report (a dry run keeps its findings to itself).
            **({"security_hub": True} if config.security_hub and not document.get("dry_run") else {}),
            **remediation_field(policy, allowed=config.remediation, dry_run=bool(document.get("dry_run"))),
        },
    }


def policy_run_fields(policy: CompiledPolicy, run_id: str) -> dict[str, Any]:
    """What every later step reads of the run's policy: where it is stored, its name and hash,
    and the scope the List step applies (states, resource types, service-managed interfaces)."""
    return {
        "policy_key": layout.policy_key(run_id),
        "policy_name": policy.name,
        "policy_sha256": policy.sha256,
        "states": sorted(policy.states),
        "resource_types": list(policy.resource_types),
        "include_service_managed_interfaces": policy.include_service_managed_interfaces,
    }


def remediation_field(policy: CompiledPolicy, *, allowed: bool, dry_run: bool) -> dict[str, bool]:
    """``run.remediation``: absent for a policy without ``remediation``; else whether this run
    remediates (false on a deployment that does not allow it: the notification says so). A dry
    run of the scan never remediates, not even in the policy's own dry-run mode.

    >>> from workflow.policy import compile_policy
    >>> policy = compile_policy({"version": 1, "name": "p", "rules": [{"key": "Owner"}], "remediation": {}})
    >>> remediation_field(policy, allowed=False, dry_run=False)
    {'remediation': False}
    """
    if policy.remediation is None or dry_run:
        return {}
    return {"remediation": allowed}


def _nest(problem: Problem, prefix: str | None, source: str) -> Problem:
    """Report policy problems at their place in the execution input (``$.policy.rules[0]``)."""
    if prefix and problem.path.startswith("$"):
        return Problem(prefix + problem.path[1:], problem.message)
    if prefix is None and problem.path.startswith("$") and source != "$.policy":
        return Problem(f"{source}: {problem.path}", problem.message)
    return problem
