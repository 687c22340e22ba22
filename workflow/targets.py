"""What one scan covers: (account, region) work items from the execution input.

Three forms, one result. No ``targets``: this account (the one the list step runs in), the given or
default regions. ``targets``: the named accounts, each through its read-only member role. And
``organization: true``: every active account of the AWS Organization, through the member role
name. Each work item is one iteration of the state machine's Map: ``{"account_id", "region"}`` plus
``role_arn`` when a target names a role other than the conventional one, so the state stays small.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError

from workflow import layout
from workflow.aws import aws_call, error_code
from workflow.errors import InvalidInput, PermanentError, Problem

WorkItem = dict[str, str]

_ROLE_ARN: Final = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})$")
ACTIVE: Final = "ACTIVE"


def partition_of_region(region: str) -> str:
    """The AWS partition a region belongs to, for building role ARNs.

    >>> [partition_of_region(r) for r in ("eu-west-1", "cn-north-1", "us-gov-west-1")]
    ['aws', 'aws-cn', 'aws-us-gov']
    """
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("us-iso-"):
        return "aws-iso"
    if region.startswith("us-isob-"):
        return "aws-iso-b"
    return "aws"


def member_role_arn(account_id: str, role_name: str, region: str) -> str:
    """The conventional ARN of the member role in ``account_id``.

    >>> member_role_arn("111122223333", "TagwardenReadOnly", "eu-west-1")
    'arn:aws:iam::111122223333:role/TagwardenReadOnly'
    """
    return f"arn:{partition_of_region(region)}:iam::{account_id}:role/{role_name}"


def execution_account(run: Mapping[str, Any]) -> str:
    """The deployment's own account (what work items call ``self``), from the run's execution ARN.

    >>> execution_account({"execution_id": "arn:aws:states:us-east-1:123456789012:execution:tw:r1"})
    '123456789012'
    >>> execution_account({})
    'self'
    """
    parts = str(run.get("execution_id") or "").split(":")
    return parts[4] if len(parts) > 4 and parts[4] else layout.SELF_ACCOUNT


@dataclass(frozen=True)
class Scope:
    """The (account, region) pairs a deployment's scheduled scan covers, from its scheduled input:
    ``{}`` (this account), ``{"targets": [...]}`` or ``{"organization": true}`` (any account of the
    organisation), each in its own or the deployment's default regions.

    >>> scope = Scope.of_input({"targets": [{"account_id": "111122223333", "regions": ["eu-west-1"]}]},
    ...                        default_regions=("us-east-1",))
    >>> scope.covers("111122223333", "eu-west-1", own_account="999988887777")
    True
    >>> scope.covers("111122223333", "us-east-1", own_account="999988887777")
    False
    """

    default_regions: tuple[str, ...]
    organization: bool = False
    # account -> its regions (empty: the default regions); no targets: this account alone.
    targets: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def of_input(cls, document: Mapping[str, Any], *, default_regions: Sequence[str]) -> Scope:
        """The scope of a scheduled input (as the deployment writes it: trusted, already valid)."""
        return cls(
            default_regions=tuple(default_regions),
            organization=bool(document.get("organization")),
            targets=tuple(
                (str(t["account_id"]), tuple(t.get("regions") or ())) for t in document.get("targets") or ()
            ),
        )

    def covers(self, account: str, region: str, *, own_account: str) -> bool:
        if self.organization:
            return region in self.default_regions
        if not self.targets:
            return account == own_account and region in self.default_regions
        return any(
            account == target and region in (regions or self.default_regions)
            for target, regions in self.targets
        )


def self_items(regions: Sequence[str]) -> list[WorkItem]:
    """Work items for this account only (no role to assume).

    >>> self_items(["us-east-1"])
    [{'account_id': 'self', 'region': 'us-east-1'}]
    """
    return [{"account_id": layout.SELF_ACCOUNT, "region": region} for region in regions]


def target_problems(document: dict[str, Any]) -> list[Problem]:
    """What the schema cannot say about ``targets``/``organization``.

    >>> [str(p) for p in target_problems({"targets": [{"account_id": "111122223333",
    ...     "role_arn": "arn:aws:iam::444455556666:role/R"}]})]
    ['$.targets[0].role_arn: the role is in account 444455556666, not in 111122223333']
    """
    problems: list[Problem] = []
    targets = document.get("targets")
    if targets is not None and document.get("organization"):
        problems.append(Problem("$.organization", "give either 'targets' or 'organization': true, not both"))
    if document.get("exclude_accounts") and not document.get("organization"):
        problems.append(Problem("$.exclude_accounts", "only applies with 'organization': true"))
    seen: dict[str, int] = {}
    for index, target in enumerate(targets or []):
        account = target["account_id"]
        if account in seen:
            problems.append(
                Problem(
                    f"$.targets[{index}].account_id", f"account {account} is already targets[{seen[account]}]"
                )
            )
        seen.setdefault(account, index)
        role_arn = target.get("role_arn")
        match = _ROLE_ARN.match(role_arn) if role_arn else None
        if role_arn and match and match.group(2) != account:
            problems.append(
                Problem(
                    f"$.targets[{index}].role_arn",
                    f"the role is in account {match.group(2)}, not in {account}",
                )
            )
    return problems


def target_items(
    targets: Iterable[dict[str, Any]], *, default_regions: Sequence[str], role_name: str
) -> list[WorkItem]:
    """One work item per target account and region; ``role_arn`` only when not the conventional one.

    >>> items = target_items([{"account_id": "111122223333", "regions": ["eu-west-1"]},
    ...     {"account_id": "444455556666", "role_arn": "arn:aws:iam::444455556666:role/Audit"}],
    ...     default_regions=["us-east-1"], role_name="TagwardenReadOnly")
    >>> items[0]
    {'account_id': '111122223333', 'region': 'eu-west-1'}
    >>> items[1]["role_arn"]
    'arn:aws:iam::444455556666:role/Audit'
    """
    items: list[WorkItem] = []
    for target in targets:
        account = str(target["account_id"])
        for region in target.get("regions") or default_regions:
            item = {"account_id": account, "region": region}
            role_arn = target.get("role_arn")
            if role_arn and role_arn != member_role_arn(account, role_name, region):
                item["role_arn"] = role_arn
            items.append(item)
    return items


def organization_accounts(organizations: Any, *, exclude: Iterable[str] = ()) -> list[str]:
    """Ids of the organisation's active accounts, sorted, without ``exclude``.

    Needs ``organizations:ListAccounts``, which only the management account or a delegated
    administrator may call. Accounts that are suspended or being closed are left out: their
    roles cannot be assumed, and they would only make every scan partial.
    """
    excluded = set(exclude)
    accounts: list[str] = []
    try:
        with aws_call("organizations:ListAccounts"):
            for page in organizations.get_paginator("list_accounts").paginate():
                for account in page.get("Accounts", []):
                    # "State" replaces the deprecated "Status"; accept whichever the API returns.
                    state = account.get("State") or account.get("Status")
                    if state == ACTIVE and account["Id"] not in excluded:
                        accounts.append(str(account["Id"]))
    except PermanentError as err:
        cause = err.__cause__
        if isinstance(cause, ClientError) and error_code(cause) == "AWSOrganizationsNotInUseException":
            raise InvalidInput(
                [
                    Problem(
                        "$.organization",
                        "this account is not in an AWS Organization; name the accounts with 'targets'",
                    )
                ]
            ) from None
        raise
    return sorted(accounts)


def require_members(entries: Sequence[Mapping[str, Any]], members: set[str]) -> None:
    """Refuse targets outside the organisation (``members``: its active accounts), one line each.

    >>> entries = [{"account_id": "111122223333"}, {"account_id": "999999999999"}]
    >>> require_members(entries, {"111122223333"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    workflow.errors.InvalidInput: $.targets[1].account_id: 999999999999 is not an active account of ...
    """
    problems = [
        Problem(
            f"$.targets[{index}].account_id",
            f"{entry.get('account_id')} is not an active account of this organisation; the deployment "
            "only assumes member roles inside it (aws:ResourceOrgID)",
        )
        for index, entry in enumerate(entries)
        if isinstance(entry, Mapping) and entry.get("account_id") not in members
    ]
    if problems:
        raise InvalidInput(problems)


def require_items(items: list[WorkItem], source: str) -> list[WorkItem]:
    """Refuse a scan with nothing to scan (an organisation whose accounts are all excluded)."""
    if not items:
        raise InvalidInput([Problem(source, "no account is left to scan")])
    return items


def read_targets_file(path: str) -> list[Any]:
    """``--targets FILE``: a JSON list of targets, or an object with a ``targets`` list.

    Problems are one :class:`InvalidInput` line each, named ``--targets``.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.loads(handle.read(1024 * 1024))
    except OSError as err:
        raise InvalidInput([Problem("--targets", f"cannot read {path}: {err.strerror or err}")]) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidInput([Problem("--targets", f"{path} is not JSON: {err}")]) from None
    if isinstance(document, dict) and "targets" in document:
        document = document["targets"]
    if not isinstance(document, list):
        raise InvalidInput(
            [Problem("--targets", f'{path}: expected a JSON list like [{{"account_id": "111122223333"}}]')]
        )
    return document


def add_scope_options(
    document: dict[str, Any],
    *,
    targets_file: str | None,
    organization: bool,
    exclude_accounts: str | None,
) -> None:
    """Put ``--targets``/``--organization``/``--exclude-accounts`` into an execution input."""
    if targets_file:
        document["targets"] = read_targets_file(targets_file)
    if organization:
        document["organization"] = True
    if exclude_accounts:
        document["exclude_accounts"] = [a.strip() for a in exclude_accounts.split(",") if a.strip()]
