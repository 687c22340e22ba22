"""Per-owner digests: each owner's noncompliant resources, with every violation and how to fix it.

Pure: the Notify step hands in the run's findings and publishes what this returns. The owner is
the finding's ``owner`` (the policy's ``owner_key`` tag), normalised (trimmed, lower case) so that
``Ana@Example.com`` and ``ana@example.com `` are one person; resources without an owner go to one
fallback digest, :data:`NO_OWNER`. Each message carries the SNS message attributes ``kind``
(``owner-digest``) and ``owner``, so that a subscription filter policy routes one owner's digests
to that owner (``tagwarden subscribe-owner``).

Bounded: a digest longer than one SNS message is split into parts (``[2/3]``), and a run sends at
most ``max_messages`` digest messages; owners beyond that are counted for the summary message,
largest first, so a run with 10,000 owners cannot flood the topic.

>>> finding = {"resource_type": "instance", "resource_id": "i-0a", "region": "eu-west-1",
...            "account_id": "111122223333", "owner": "Ana@Example.com ", "compliant": False,
...            "exempt": False, "name": "web",
...            "violations": [{"code": "missing", "key": "CostCenter",
...                            "message": "required tag 'CostCenter' is missing"}]}
>>> plan = plan_digests([finding], environment="prod", max_messages=10)
>>> [(d.owner, d.resources, d.attributes["owner"]["StringValue"]) for d in plan.digests]
[('ana@example.com', 1, 'ana@example.com')]
>>> print(plan.digests[0].body.splitlines()[4])
  - CostCenter: required tag 'CostCenter' is missing. Fix: add the tag.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from workflow.notifications import KIND_ATTRIBUTE, SUMMARY_KIND, clean
from workflow.report import UNOWNED

# The label the summary's owner table gives resources without an owner: one name for them.
NO_OWNER: Final = UNOWNED
OWNER_ATTRIBUTE: Final = "owner"
DIGEST_KIND: Final = "owner-digest"
# SNS takes 256 KiB per message, attributes included; stay well below it (subject, attributes,
# multi-byte characters counted as bytes).
MAX_MESSAGE_BYTES: Final = 200 * 1024
DEFAULT_MAX_DIGEST_MESSAGES: Final = 50
# The most messages one owner's digest takes; past it the digest says how many it left out.
MAX_PARTS_PER_OWNER: Final = 10
_SUBJECT_LIMIT: Final = 100  # SNS: subjects up to 100 characters

# What to do about each violation code, for a person who is not a Tagwarden user.
_FIX: Final[Mapping[str, str]] = {
    "missing": "add the tag",
    "empty_value": "give the tag a value",
    "invalid_value": "set one of the allowed values",
    "pattern_mismatch": "set a value of the required form",
    "key_case": "rename the tag to the spelling shown",
    "prohibited": "remove the tag",
    "too_many_tags": "remove tags nobody uses",
    "not_inherited": "copy the tag from the resource it belongs to",
    "exemption_expired": "renew the exemption or fix the tags",
}


def normalise_owner(value: Any) -> str:
    """The owner as digests and filter policies name it: trimmed, lower case; none is :data:`NO_OWNER`.

    >>> normalise_owner(" Ana@Example.COM "), normalise_owner(None), normalise_owner("   ")
    ('ana@example.com', '(no owner)', '(no owner)')
    """
    text = clean(str(value).strip().casefold(), 256).strip() if value is not None else ""
    return text or NO_OWNER


def how_to_fix(violation: Mapping[str, Any]) -> str:
    """One line: what is wrong and what to do.

    >>> how_to_fix({"code": "prohibited", "key": "tmp", "message": "tag 'tmp' is prohibited"})
    "tmp: tag 'tmp' is prohibited. Fix: remove the tag."
    """
    fix = _FIX.get(str(violation.get("code")), "see the policy")
    return f"{clean(violation.get('key'), 80)}: {clean(violation.get('message'), 300)}. Fix: {fix}."


def fix_command(finding: Mapping[str, Any]) -> str | None:
    """An AWS CLI line that removes what can be removed (prohibited tags), for the owner to run;
    what to add needs a value only the owner knows, so it is not guessed.

    >>> fix_command({"resource_id": "i-0a", "region": "eu-west-1",
    ...              "violations": [{"code": "prohibited", "key": "tmp"}]})
    'aws ec2 delete-tags --region eu-west-1 --resources i-0a --tags Key=tmp'
    """
    prohibited = [str(v.get("key")) for v in finding.get("violations") or () if v.get("code") == "prohibited"]
    if not prohibited or not finding.get("resource_id"):
        return None
    region = f"--region {shlex.quote(str(finding['region']))} " if finding.get("region") else ""
    keys = " ".join(shlex.quote(f"Key={key}") for key in prohibited)
    return f"aws ec2 delete-tags {region}--resources {shlex.quote(str(finding['resource_id']))} --tags {keys}"


@dataclass(frozen=True)
class Digest:
    """One SNS message of one owner's digest."""

    owner: str
    part: int
    parts: int
    resources: int
    subject: str
    body: str
    attributes: dict[str, dict[str, str]]


@dataclass
class DigestPlan:
    digests: list[Digest] = field(default_factory=list)
    # Owners who got no digest (over max_messages): owner -> noncompliant resources.
    not_sent: dict[str, int] = field(default_factory=dict)

    @property
    def owners(self) -> int:
        return len({d.owner for d in self.digests})


def _resource_lines(finding: Mapping[str, Any], notices: Mapping[str, str] | None = None) -> list[str]:
    where = "/".join(str(finding.get(k)) for k in ("account_id", "region") if finding.get(k))
    name = f" ({clean(finding.get('name'), 60)})" if finding.get("name") else ""
    lines = [
        f"{finding.get('resource_type', 'instance')} {clean(finding.get('resource_id'), 60)}{name} {where}"
    ]
    lines += [f"  - {how_to_fix(v)}" for v in finding.get("violations") or ()]
    command = fix_command(finding)
    if command:
        lines.append(f"  $ {command}")
    notice = (notices or {}).get(str(finding.get("resource_id")))
    if notice:
        lines.append(f"  ! {notice}")
    return lines


def _attributes(owner: str) -> dict[str, dict[str, str]]:
    return {
        KIND_ATTRIBUTE: {"DataType": "String", "StringValue": DIGEST_KIND},
        # SNS attribute values are at most 256 KB; owner tags are at most 256 characters.
        OWNER_ATTRIBUTE: {"DataType": "String", "StringValue": owner},
    }


def owner_counts(noncompliant_by_owner: Mapping[str, int]) -> dict[str, int]:
    """Noncompliant resources per owner as digests name owners, from counts per owner tag value.

    >>> owner_counts({"Ana ": 2, "ana": 1, "(no owner)": 3, "": 1})
    {'ana': 3, '(no owner)': 4}
    """
    counts: Counter[str] = Counter()
    for owner, count in noncompliant_by_owner.items():
        counts[normalise_owner(owner or None)] += int(count)
    return dict(counts)


def plan_digests(
    findings: Callable[[], Iterable[Mapping[str, Any]]] | Iterable[Mapping[str, Any]],
    *,
    environment: str,
    max_messages: int = DEFAULT_MAX_DIGEST_MESSAGES,
    max_bytes: int = MAX_MESSAGE_BYTES,
    report: str | None = None,
    notices: Mapping[str, str] | None = None,
    counts: Mapping[str, int] | None = None,
) -> DigestPlan:
    """The digest messages of a run's findings: noncompliant, not exempt resources by owner,
    owners with the most resources first, at most ``max_messages`` messages.

    ``findings`` may be a function that reads them afresh (the Notify step streams the report
    from S3): then two passes keep memory bounded whatever the fleet. The first counts each
    owner's resources; the second keeps the lines of the ``max_messages`` largest owners only,
    at most :data:`MAX_PARTS_PER_OWNER` messages' worth each (an owner with more is told how many
    were left out). ``notices`` adds a line to a resource's entry (resource id -> text: what
    staged remediation did or will do to it). ``counts`` (see :func:`owner_counts`), when the
    caller has them, replace the first pass.
    """
    read = findings if callable(findings) else (lambda rows=list(findings): rows)
    if counts is None:
        counted: Counter[str] = Counter()
        for finding in read():
            if not (finding.get("compliant") or finding.get("exempt")):
                counted[normalise_owner(finding.get("owner"))] += 1
        counts = counted
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    candidates = {owner for owner, _ in ordered[:max_messages]}
    cap = max_bytes * MAX_PARTS_PER_OWNER
    kept: dict[str, list[list[str]]] = {owner: [] for owner in candidates}
    size: Counter[str] = Counter()
    for finding in read():
        if finding.get("compliant") or finding.get("exempt"):
            continue
        owner = normalise_owner(finding.get("owner"))
        if owner not in candidates or size[owner] >= cap:
            continue
        lines = _resource_lines(finding, notices)
        size[owner] += sum(len(line.encode()) + 1 for line in lines)
        kept[owner].append(lines)
    plan = DigestPlan()
    for owner, total in ordered:
        resources = kept.get(owner)
        chunks = (_split(resources, max_bytes) if resources else [])[:MAX_PARTS_PER_OWNER]
        if not chunks or len(plan.digests) + len(chunks) > max_messages:
            plan.not_sent[owner] = total
            continue
        left_out = total - sum(len(chunk) for chunk in chunks)
        for part, chunk in enumerate(chunks, start=1):
            label = f" [{part}/{len(chunks)}]" if len(chunks) > 1 else ""
            who = "resources without an owner tag" if owner == NO_OWNER else owner
            whose = "without an owner tag" if owner == NO_OWNER else f"of {owner}"
            subject = f"[tagwarden {environment}] {total} to fix: {who}"
            header = [
                f"Tagwarden ({environment}): {total} noncompliant resource(s) {whose}{label}.",
                "Each line says what is wrong and how to fix it.",
                *([f"Report: {report}"] if report else []),
                "",
            ]
            footer = (
                ["", f"... and {left_out} more, not listed here: the report has them all."]
                if left_out and part == len(chunks)
                else []
            )
            plan.digests.append(
                Digest(
                    owner=owner,
                    part=part,
                    parts=len(chunks),
                    resources=len(chunk),
                    subject=clean(subject, _SUBJECT_LIMIT - len(label)) + label,
                    body="\n".join(header + [line for lines in chunk for line in lines] + footer),
                    attributes=_attributes(owner),
                )
            )
    return plan


def _split(resources: list[list[str]], max_bytes: int) -> list[list[list[str]]]:
    """Resources in order, in parts of at most ``max_bytes`` of text each (a resource is never cut)."""
    parts: list[list[list[str]]] = [[]]
    size = 1024  # the header
    for lines in resources:
        cost = sum(len(line.encode()) + 1 for line in lines)
        if parts[-1] and size + cost > max_bytes:
            parts.append([])
            size = 1024
        parts[-1].append(lines)
        size += cost
    return parts


def summary_lines(plan: DigestPlan) -> list[str]:
    """What the summary message says about the digests.

    >>> summary_lines(DigestPlan(not_sent={"bob": 3}))
    ['Owner digests: 0 message(s) to 0 owner(s); 1 owner(s) over the limit got none (3 resources): bob 3']
    """
    if not plan.digests and not plan.not_sent:
        return []
    line = f"Owner digests: {len(plan.digests)} message(s) to {plan.owners} owner(s)"
    if plan.not_sent:
        top = ", ".join(f"{clean(o, 60)} {n}" for o, n in list(plan.not_sent.items())[:5])
        line += (
            f"; {len(plan.not_sent)} owner(s) over the limit got none "
            f"({sum(plan.not_sent.values())} resources): {top}"
        )
    return [line]


__all__ = [
    "DIGEST_KIND",
    "KIND_ATTRIBUTE",
    "NO_OWNER",
    "OWNER_ATTRIBUTE",
    "SUMMARY_KIND",
    "Digest",
    "DigestPlan",
    "fix_command",
    "how_to_fix",
    "normalise_owner",
    "owner_counts",
    "plan_digests",
    "summary_lines",
]
