"""Member accounts for the local engine: their read-only roles, and the AWS Organization.

On AWS a scan of another account goes through IAM: ``sts:AssumeRole`` on the member role, which
answers AccessDenied when the role does not exist, when its trust policy does not name the caller,
or when the ``sts:ExternalId`` differs. moto's STS grants every AssumeRole and its Organizations
backend invents account ids, so neither can show a partial scan of a real fleet dump. This module
answers ``AssumeRole`` and ``ListAccounts`` from a registry instead, through botocore's request
hooks like :mod:`workflow.engine.fleet_endpoint`: the step's real clients, paginators and parameter
validation run unchanged. Each credential it issues belongs to one account, and the fleet endpoint
serves that account's instances only.
"""

from __future__ import annotations

import copy
import secrets
import threading
from dataclasses import dataclass
from typing import Any, Final

import boto3

from workflow.engine.hook_responses import Answer, answer, error, params_recorder

_PARAMS: Final = "tagwarden_member_params"
_PAGE: Final = 20  # ListAccounts returns at most 20 accounts a page


_URL = "https://sts.local.tagwarden"


@dataclass
class MemberRole:
    """A member role: which caller account it trusts and the external id it requires."""

    trusted_account: str
    external_id: str | None


class MemberAccounts:
    """The accounts an organisation-wide scan reaches, and their member roles.

    >>> members = MemberAccounts(central_account="123456789012", external_id="tw-local")
    >>> members.add_account("111122223333")
    >>> session = members.attach(boto3.Session(aws_access_key_id="x", aws_secret_access_key="y"))
    >>> sts = session.client("sts", region_name="us-east-1")
    >>> creds = sts.assume_role(RoleArn="arn:aws:iam::111122223333:role/TagwardenReadOnly",
    ...                         RoleSessionName="doc", ExternalId="tw-local")["Credentials"]
    >>> members.account_of(creds["AccessKeyId"])
    '111122223333'
    """

    def __init__(
        self, *, central_account: str, external_id: str | None, role_name: str = "TagwardenReadOnly"
    ) -> None:
        self.central_account = central_account
        self.external_id = external_id
        self.role_name = role_name
        self.roles: dict[str, MemberRole] = {}
        self.accounts: dict[str, dict[str, Any]] = {}
        self.organization = True
        self.assume_calls: list[dict[str, Any]] = []
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()

    def add_account(
        self, account_id: str, *, role: bool = True, state: str = "ACTIVE", name: str | None = None
    ) -> None:
        """An organisation account; ``role=False``: the member stack was never deployed there."""
        with self._lock:
            self.accounts[account_id] = {
                "Id": account_id,
                "Arn": f"arn:aws:organizations::{self.central_account}:account/o-local/{account_id}",
                "Email": f"aws+{account_id}@example.com",
                "Name": name or f"account-{account_id}",
                "State": state,
                "Status": state,
            }
            if role:
                self.roles[self.role_arn(account_id)] = MemberRole(self.central_account, self.external_id)
            else:
                self.roles.pop(self.role_arn(account_id), None)

    def add_remediation_role(self, account_id: str, role_name: str = "TagwardenRemediation") -> None:
        """The member stack's optional remediation role (``remediation_role``) in ``account_id``."""
        with self._lock:
            self.roles[f"arn:aws:iam::{account_id}:role/{role_name}"] = MemberRole(
                self.central_account, self.external_id
            )

    def remove_role(self, account_id: str) -> None:
        """Delete the member role (someone tore the member stack down)."""
        with self._lock:
            self.roles.pop(self.role_arn(account_id), None)

    def role_arn(self, account_id: str) -> str:
        return f"arn:aws:iam::{account_id}:role/{self.role_name}"

    def account_of(self, access_key: str | None) -> str | None:
        """The account an access key issued by AssumeRole belongs to (None: the caller's own)."""
        with self._lock:
            return self._keys.get(access_key or "")

    def attach(self, session: boto3.Session) -> boto3.Session:
        """Register the hooks on a session: its STS and Organizations calls come here."""
        remember = params_recorder(_PARAMS)
        session.events.register("before-parameter-build.sts.AssumeRole", remember)
        session.events.register("before-parameter-build.organizations.ListAccounts", remember)
        session.events.register("before-call.sts.AssumeRole", self._assume_role)
        session.events.register("before-call.organizations.ListAccounts", self._list_accounts)
        return session

    @staticmethod
    def _error(code: str, message: str, status: int = 403) -> Answer:
        return error(_URL, code, message, status)

    def _assume_role(self, context: dict[str, Any], **_: Any) -> Answer:
        params = context.get(_PARAMS, {})
        role_arn = str(params.get("RoleArn", ""))
        external_id = params.get("ExternalId")
        with self._lock:
            self.assume_calls.append({"RoleArn": role_arn, "ExternalId": external_id})
            role = self.roles.get(role_arn)
        caller = f"arn:aws:sts::{self.central_account}:assumed-role/tagwarden-list-instances/local"
        denied = f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
        # IAM gives one answer for a missing role, a foreign caller and a wrong external id.
        if role is None or role.trusted_account != self.central_account:
            return self._error("AccessDenied", denied)
        if role.external_id is not None and external_id != role.external_id:
            return self._error("AccessDenied", denied)
        account = role_arn.split(":")[4]
        role_name = role_arn.rsplit("/", 1)[1]
        session_name = params.get("RoleSessionName")
        access_key = "ASIA" + secrets.token_hex(8).upper()
        with self._lock:
            self._keys[access_key] = account
        return answer(
            _URL,
            {
                "Credentials": {
                    "AccessKeyId": access_key,
                    "SecretAccessKey": secrets.token_hex(20),
                    "SessionToken": secrets.token_hex(32),
                    "Expiration": "2099-01-01T00:00:00Z",
                },
                "AssumedRoleUser": {
                    "AssumedRoleId": f"AROA{account}:{session_name}",
                    "Arn": f"arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}",
                },
            },
        )

    def _list_accounts(self, context: dict[str, Any], **_: Any) -> Answer:
        if not self.organization:
            return self._error(
                "AWSOrganizationsNotInUseException",
                "Your account is not a member of an organization.",
                400,
            )
        params = context.get(_PARAMS, {})
        with self._lock:
            accounts = [copy.deepcopy(a) for _, a in sorted(self.accounts.items())]
        start = int(params.get("NextToken") or 0)
        size = min(int(params.get("MaxResults") or _PAGE), _PAGE)
        parsed: dict[str, Any] = {"Accounts": accounts[start : start + size]}
        if start + size < len(accounts):
            parsed["NextToken"] = str(start + size)
        return answer(_URL, parsed)
