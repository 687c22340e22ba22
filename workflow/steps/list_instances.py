"""Step "List EC2 instances": page through DescribeInstances and store each page in S3.

Only the prefix and counts go back into the state (claim check). If the Lambda's time budget runs
low, the step stops between pages and returns the NextToken; the state machine loops back and a new
invocation continues from it, so a huge region is never lost to a silent timeout.

For another account the step assumes that account's read-only member role first. A role that is
missing, a trust policy that refuses us, or a region the account has not enabled fails only this
target: the reason goes to S3 and the result says ``target_error``; the run goes on and reports
itself as partial. A region the account has not enabled is such a target even in the deployment's
own account. Throttling still reaches the state machine's Retry.

Every instance is listed, whatever its state, and only those in the run's states are staged: the
others are counted by state (``out_of_scope``), so the run's coverage says what it left out and why
instead of never having seen it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from workflow import layout
from workflow.aws import Credentials, assume_role, aws_call
from workflow.config import ListConfig
from workflow.errors import AccessDenied, RegionNotEnabled
from workflow.evaluator import project_instance
from workflow.storage import put_json, put_json_gz
from workflow.targets import execution_account, member_role_arn

Ec2Factory = Callable[[str, Credentials | None], Any]


def _record_target_error(
    s3: Any, run: dict[str, Any], account: str, region: str, role_arn: str | None, reason: str
) -> dict[str, Any]:
    put_json(
        s3,
        run["bucket"],
        layout.target_error_key(run["run_id"], account, region),
        {"account_id": account, "region": region, "role_arn": role_arn, "reason": reason},
    )
    return {
        "region": region,
        "account_id": account,
        "prefix": None,
        "pages": 0,
        "instances": 0,
        "listed": 0,
        "out_of_scope": {},
        "complete": True,
        "next_token": None,
        "target_error": reason,
    }


def list_instances(
    event: dict[str, Any],
    config: ListConfig,
    *,
    ec2_factory: Ec2Factory,
    s3: Any,
    remaining_ms: Callable[[], int],
    sts: Any = None,
) -> dict[str, Any]:
    """List one target's instances into ``staging/<run>/inventory/<account>/<region>/``.

    ``event`` is ``{"run": {...}, "target": {"account_id", "region", ["role_arn"]}, "listing":
    <previous result, when continuing>}``; account ``self`` is the account the step runs in.
    ``ec2_factory(region, credentials)`` builds the EC2 client (credentials None: the step's own).
    """
    run = event["run"]
    target = event.get("target") or {"region": event["region"]}
    region = target["region"]
    account = target.get("account_id") or layout.SELF_ACCOUNT
    previous = event.get("listing") or {}
    page = int(previous.get("pages", 0))
    instances = int(previous.get("instances", 0))
    listed = int(previous.get("listed", 0))
    out_of_scope: dict[str, int] = dict(previous.get("out_of_scope") or {})
    in_scope_states = set(run["states"])
    token: str | None = previous.get("next_token")
    role_arn: str | None = None
    credentials: Credentials | None = None
    if account != layout.SELF_ACCOUNT:
        role_arn = target.get("role_arn") or member_role_arn(account, run["member_role_name"], region)
        try:
            credentials = assume_role(
                sts,
                role_arn,
                session_name=f"tagwarden-{run['run_id']}",
                external_id=config.member_external_id,
            )
        except AccessDenied as err:
            return _record_target_error(s3, run, account, region, role_arn, str(err))
    ec2 = ec2_factory(region, credentials)
    margin_ms = config.time_budget_margin_seconds * 1000
    shown = execution_account(run) if account == layout.SELF_ACCOUNT else account

    def describe(next_token: str | None) -> dict[str, Any]:
        request: dict[str, Any] = {"MaxResults": config.page_size}
        if next_token:
            request["NextToken"] = next_token
        with aws_call(f"DescribeInstances in {shown} {region}"):
            response: dict[str, Any] = ec2.describe_instances(**request)
        return response

    # The next page is requested while this one is staged: EC2 takes about a second for a page
    # of 1,000, and projecting, compressing and storing one is CPU and an S3 round trip that can
    # overlap it. One request ahead at most; none is started once the time budget is spent.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="describe-instances") as ahead:
        pending: Future[dict[str, Any]] | None = ahead.submit(describe, token)
        while pending is not None:
            try:
                response = pending.result()
            except AccessDenied as err:
                if credentials is None and not isinstance(err, RegionNotEnabled):
                    raise  # our own account: a deployment fault, not a target to skip
                return _record_target_error(s3, run, account, region, role_arn, str(err))
            token = response.get("NextToken") or None
            pending = ahead.submit(describe, token) if token and remaining_ms() > margin_ms else None
            reservations = []
            for reservation in response.get("Reservations", []):
                kept = []
                for instance in reservation.get("Instances", []):
                    listed += 1
                    state = _state_name(instance)
                    if state in in_scope_states:
                        # Only what evaluation reads: a third of the bytes to stage and read back.
                        kept.append(project_instance(instance))
                    else:
                        out_of_scope[state] = out_of_scope.get(state, 0) + 1
                if kept:
                    reservations.append({"OwnerId": reservation.get("OwnerId"), "Instances": kept})
            count = sum(len(r["Instances"]) for r in reservations)
            if count or page == 0:
                key = layout.inventory_page_key(run["run_id"], account, region, page)
                put_json_gz(s3, run["bucket"], key, {"Reservations": reservations})
                page += 1
                instances += count
    return {
        "region": region,
        "account_id": account,
        "prefix": layout.inventory_page_key(run["run_id"], account, region, 0).rsplit("/", 1)[0] + "/",
        "pages": page,
        "instances": instances,
        "listed": listed,
        "out_of_scope": out_of_scope,
        "complete": token is None,
        "next_token": token,
        "target_error": None,
    }


# EC2's instance states; anything else (a malformed listing) is counted as "unknown", so the
# out-of-scope table stays a handful of rows whatever a listing holds.
_INSTANCE_STATES = frozenset({"pending", "running", "shutting-down", "terminated", "stopping", "stopped"})


def _state_name(instance: Any) -> str:
    state = instance.get("State") if isinstance(instance, dict) else None
    name = state.get("Name") if isinstance(state, dict) else None
    return name if name in _INSTANCE_STATES else "unknown"
