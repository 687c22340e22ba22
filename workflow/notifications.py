"""The SNS message of a run: a useful summary, not a dump.

Subjects stay valid for SNS (under 100 characters, printable ASCII-safe, no control characters);
tag values in the body are shortened and stripped of control characters, so a hostile tag cannot
forge lines or break the message.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final
from urllib.parse import quote

from workflow.report import incomplete, percentage_text, resource_type_rows, untagged_ebs_line
from workflow.verdict import resource_coverage_lines

MAX_SUBJECT: Final = 99
# The message attribute that tells the run's summary from owner digests (subscription filters).
KIND_ATTRIBUTE: Final = "kind"
SUMMARY_KIND: Final = "summary"
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean(text: Any, limit: int = 120) -> str:
    """Printable, one-line, bounded text for a message.

    >>> clean("evil\\nSubject: x")
    'evil Subject: x'
    """
    value = _CONTROL.sub(" ", str(text))
    if not value.isprintable():  # printable text has no format, surrogate or private-use character
        value = "".join(c for c in value if unicodedata.category(c) not in {"Cf", "Cs", "Co"} or c == " ")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def subject(
    environment: str,
    totals: Mapping[str, Any],
    *,
    partial: bool = False,
    noun: str = "EC2 instances",
    event: bool = False,
) -> str:
    """The SNS subject: ASCII, one line, under 100 characters.

    >>> subject("dev", {"total": 512, "noncompliant": 37})
    '[tagwarden dev] 37 of 512 EC2 instances noncompliant'
    >>> subject("dev", {"total": 512, "noncompliant": 37}, partial=True)
    '[tagwarden dev] PARTIAL scan: 37 of 512 EC2 instances noncompliant'
    >>> subject("dev", {"total": 0, "noncompliant": 0})
    '[tagwarden dev] NOTHING EVALUATED: no EC2 instance was scanned'
    >>> subject("dev", {"total": 0, "noncompliant": 0}, partial=True)
    '[tagwarden dev] PARTIAL scan: NOTHING EVALUATED: no EC2 instance was scanned'
    >>> subject("dev", {"total": 900, "noncompliant": 40}, noun="EC2 resources")
    '[tagwarden dev] 40 of 900 EC2 resources noncompliant'
    >>> subject("dev", {"total": 3, "noncompliant": 1}, event=True)
    '[tagwarden dev] new or changed: 1 of 3 EC2 instances noncompliant'
    """
    env = clean(environment, 20)
    prefix = (
        f"[tagwarden {env}] " + ("new or changed: " if event else "") + ("PARTIAL scan: " if partial else "")
    )
    if not totals["total"]:
        text = prefix + "NOTHING EVALUATED: no EC2 instance was scanned"
    elif partial or totals["noncompliant"]:
        text = prefix + f"{totals['noncompliant']} of {totals['total']} {noun} noncompliant"
    else:
        text = prefix + f"all {totals['total']} {noun} compliant"
    # SNS subjects: ASCII, no line breaks, under 100 characters.
    text = text.encode("ascii", "replace").decode("ascii")
    return text[:MAX_SUBJECT]


def severity(totals: Mapping[str, Any], *, incomplete: bool = False) -> str:
    """``high`` for an incomplete scan or below 80% compliance, ``medium`` with any violation,
    else ``info``.

    >>> severity({"noncompliant": 0, "compliance_percentage": None}, incomplete=True)
    'high'
    """
    if incomplete:
        return "high"
    if totals["noncompliant"] == 0:
        return "info"
    return "high" if (totals.get("compliance_percentage") or 0) < 80 else "medium"


def console_url(region: str | None, execution_arn: str) -> str | None:
    if not region:
        return None
    arn = quote(execution_arn, safe="")
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{arn}"


def _top(mapping: Mapping[str, int], n: int = 5) -> list[tuple[str, int]]:
    return sorted(mapping.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def build_message(
    summary: Mapping[str, Any],
    *,
    environment: str,
    report_uri: str,
    execution_arn: str,
    console_region: str | None,
    catalog: Mapping[str, Any] | None = None,
    extra_lines: Sequence[str] = (),
) -> dict[str, Any]:
    """Subject, body and message attributes for the run's notification."""
    totals = summary["totals"]
    types = resource_type_rows(summary)
    noun = "EC2 resources" if types else "EC2 instances"
    lines = [
        f"Tag policy {clean(summary['policy']['name'])!r} on {totals['total']} {noun} "
        f"(run {clean(summary['run_id'])}, {summary['evaluated_at']}):",
        f"  compliant     {totals['compliant']} ({percentage_text(totals)})",
        f"  noncompliant  {totals['noncompliant']}",
        f"  exempt        {totals['exempt']}",
        f"  in grace      {totals['in_grace_period']}",
        "",
    ]
    if summary.get("partial"):
        counts = summary.get("target_counts", {})
        failed = [t for t in summary.get("targets", []) if t.get("status") != "ok"]
        lines.append(
            f"PARTIAL SCAN: {counts.get('error', len(failed))} of {counts.get('total', '?')} "
            "account/region targets were not scanned:"
        )
        lines += [
            f"  {clean(t.get('account_id'), 20)} {clean(t.get('region'), 20)}: {clean(t.get('reason'), 200)}"
            for t in failed[:10]
        ]
        if len(failed) > 10:
            lines.append(f"  … and {len(failed) - 10} more (summary.json lists them all)")
        lines.append("")
    if not totals["total"]:
        lines.append(
            "NOTHING EVALUATED: this run is not a clean bill of health; no instance was scanned. "
            "Check the targets above, the regions and the member roles."
        )
        lines.append("")
    if types:
        lines.append("By resource type (compliant / noncompliant):")
        lines += [f"  {clean(kind, 20):18s} {good:6d} / {bad:d}" for kind, good, bad in types]
        lines.append(untagged_ebs_line(summary))
        lines.append("")
    lines += _coverage_lines(summary.get("coverage"))
    if summary.get("by_rule"):
        lines.append("Worst rules:")
        lines += [f"  {count:6d}  {clean(rule)}" for rule, count in _top(summary["by_rule"])]
        lines.append("")
    if summary.get("noncompliant_by_creator"):
        lines.append("Created by (from the CloudTrail events):")
        lines += [
            f"  {count:6d}  {clean(who)}" for who, count in _top(summary["noncompliant_by_creator"], 10)
        ]
        lines.append("")
    lines += exemption_lines(summary)
    files = summary.get("exemption_files") or {}
    if files.get("refused_count"):
        lines.append(f"Exemption files not used ({int(files['refused_count'])}; the others apply):")
        lines += [
            f"  {clean(r.get('key'), 80)}: {clean(r.get('problem'), 160)}" for r in files.get("refused") or []
        ]
        lines.append("")
    outside = (summary.get("events") or {}).get("out_of_scope") or []
    if outside:
        lines.append("Not checked: events from accounts or regions the scheduled scan does not cover:")
        for place in outside[:10]:
            where = f"{clean(str(place.get('account_id')))} {clean(str(place.get('region')))}"
            lines.append(f"  {int(place.get('resources', 0)):6d}  {where}")
        lines.append("")
    if summary.get("noncompliant_by_owner"):
        lines.append("Top owners of noncompliant instances:")
        lines += [f"  {count:6d}  {clean(owner)}" for owner, count in _top(summary["noncompliant_by_owner"])]
        lines.append("")
    regions = {
        r: c.get("noncompliant", 0) for r, c in summary.get("by_region", {}).items() if c.get("noncompliant")
    }
    if regions:
        lines.append("Noncompliant by region:")
        lines += [f"  {count:6d}  {clean(region)}" for region, count in _top(regions, 10)]
        lines.append("")
    drift = summary.get("drift", {})
    if drift.get("newly_noncompliant") is None:
        lines.append("Since the previous run: no earlier run of this policy scanned these targets.")
    else:
        new, fixed = drift["newly_noncompliant"], drift["newly_compliant"]
        lines.append(
            f"Since run {clean(drift.get('previous_run_id'))} (same policy, "
            f"{drift.get('targets_compared_count', '?')} account/region targets compared): "
            f"{len(new)} became noncompliant, {len(fixed)} became compliant."
        )
        if drift.get("fixed_since_event"):
            lines.append(f"  fixed since an event run reported them: {len(drift['fixed_since_event'])}")
        if drift.get("already_reported_by_events"):
            already = len(drift["already_reported_by_events"])
            lines.append(f"  already reported by event runs (not counted again): {already}")
        if new:
            lines.append(
                "  newly noncompliant: "
                + ", ".join(clean(i, 40) for i in new[:10])
                + (" …" if len(new) > 10 else "")
            )
    if extra_lines:
        lines += [*extra_lines, ""]
    lines.append("")
    lines.append(f"Report: {report_uri}")
    url = console_url(console_region, execution_arn)
    lines.append(f"Execution: {url or execution_arn}")
    if catalog and catalog.get("error"):
        lines.append(
            "Note: Athena cannot see this run yet: registering its partitions failed "
            f"({clean(catalog.get('error'))}: {clean(catalog.get('cause'), 200)})."
        )
    return {
        "subject": subject(
            environment,
            totals,
            partial=bool(summary.get("partial")),
            noun=noun,
            event=summary.get("source") == "event",
        ),
        "body": "\n".join(lines) + "\n",
        "attributes": {
            # Owner digests go to the same topic with another kind (workflow.digests).
            KIND_ATTRIBUTE: {"DataType": "String", "StringValue": SUMMARY_KIND},
            "environment": {"DataType": "String", "StringValue": clean(environment, 64)},
            "severity": {
                "DataType": "String",
                "StringValue": severity(totals, incomplete=incomplete(summary)),
            },
            "noncompliant_count": {"DataType": "Number", "StringValue": str(int(totals["noncompliant"]))},
            "partial": {"DataType": "String", "StringValue": "true" if summary.get("partial") else "false"},
            "incomplete": {"DataType": "String", "StringValue": "true" if incomplete(summary) else "false"},
        },
    }


def securityhub_lines(outcome: Mapping[str, Any] | None) -> list[str]:
    """What the Security Hub import did, for a deployment that imports.

    >>> securityhub_lines({"enabled": True, "imported": 3, "resolved": 1})
    ['Security Hub: 3 finding(s) imported as FAILED, 1 resolved (PASSED, archived).']
    >>> securityhub_lines({"enabled": False})
    []
    """
    if not outcome or not outcome.get("enabled"):
        return []
    if outcome.get("error"):
        return [
            f"Security Hub: the import failed ({clean(outcome.get('error'), 60)}: "
            f"{clean(outcome.get('cause'), 240)}); the next run sends the open findings again."
        ]
    return [
        f"Security Hub: {int(outcome.get('imported', 0))} finding(s) imported as FAILED, "
        f"{int(outcome.get('resolved', 0))} resolved (PASSED, archived)."
    ]


def remediation_lines(
    section: Mapping[str, Any] | None, outcome: Mapping[str, Any] | None, *, requested: bool | None
) -> list[str]:
    r"""What staged remediation did in the run (``section``: the summary's ``remediation``), how
    the step ended (``outcome``: the state's ``$.remediation``), or why it did not run
    (``requested``: ``run.remediation``, False when the deployment does not allow it).

    >>> print("\n".join(remediation_lines({"dry_run": True, "marked": 2, "stopped": 1, "unmarked": 0,
    ...     "stopped_ids": ["i-1"], "skipped": {"stop protection is on": 1}, "failed": 0, "waiting": 3,
    ...     "marked_now": 4}, {"enabled": True}, requested=True)))  # doctest: +NORMALIZE_WHITESPACE
    Remediation (dry run, nothing changed): would mark 2, would stop 1, would unmark 0;
      4 would be marked for a later stop, 3 waiting to be marked.
      would stop: i-1
      not stopped: 1 stop protection is on
    <BLANKLINE>
    """
    if requested is False:
        return [
            "Remediation: the policy asks for it, but this deployment does not allow it (the stack's "
            "remediation setting); nothing was marked or stopped."
        ]
    lines: list[str] = []
    if isinstance(section, Mapping):
        would = "would " if section.get("dry_run") else ""
        lines += [
            ("Remediation (dry run, nothing changed): " if section.get("dry_run") else "Remediation: ")
            + f"{would}mark {int(section.get('marked', 0))}, {would}stop {int(section.get('stopped', 0))}, "
            f"{would}unmark {int(section.get('unmarked', 0))};",
            f"  {int(section.get('marked_now', 0))} {'would be ' if would else ''}marked for a later stop, "
            f"{int(section.get('waiting', 0))} waiting to be marked.",
        ]
        if section.get("stopped_ids"):
            ids = ", ".join(clean(i, 30) for i in section["stopped_ids"][:20])
            lines.append(f"  {'would stop' if section.get('dry_run') else 'stopped'}: {ids}")
        skipped = section.get("skipped") or {}
        if skipped:
            lines.append(
                "  not stopped: "
                + "; ".join(f"{int(n)} {clean(why, 80)}" for why, n in list(skipped.items())[:8])
            )
        if section.get("failed"):
            lines.append(
                f"  FAILED: {int(section['failed'])} action(s), e.g. "
                + "; ".join(clean(f, 160) for f in (section.get("failures") or [])[:3])
            )
    if (
        isinstance(outcome, Mapping)
        and outcome.get("error")
        and not (isinstance(section, Mapping) and section.get("failed"))
    ):
        lines.append(
            f"Remediation FAILED ({clean(outcome.get('error'), 60)}: {clean(outcome.get('cause'), 240)}); "
            "what it did is in the actions table, and the next run tries again."
        )
    return [*lines, ""] if lines else []


EXPIRING_SOON_DAYS: Final = 14


def exemption_lines(summary: Mapping[str, Any]) -> list[str]:
    r"""Exemptions that expired (their resources are judged again) and that expire within
    :data:`EXPIRING_SOON_DAYS` days of the run.

    >>> _ = exemption_lines({"evaluated_at": "2026-12-01T06:00:00+00:00", "exemptions": {
    ...     "legacy": {"expires": "2026-11-30", "exempted": 0, "expired": 2},
    ...     "migration": {"expires": "2026-12-10", "exempted": 5, "expired": 0},
    ...     "forever": {"expires": None, "exempted": 1, "expired": 0}}})
    >>> print("\n".join(_))
    Exemptions that expired (their resources are judged again):
      legacy  expired 2026-11-30, 2 resource(s)
    Exemptions expiring within 14 days:
      migration  expires 2026-12-10, 5 resource(s)
    <BLANKLINE>
    """
    exemptions = summary.get("exemptions") or {}
    try:
        today = datetime.fromisoformat(str(summary.get("evaluated_at"))).date()
    except ValueError:
        return []
    expired = [(name, e) for name, e in exemptions.items() if e.get("expired")]
    soon = []
    for name, entry in exemptions.items():
        try:
            expires = date.fromisoformat(str(entry.get("expires")))
        except ValueError:
            continue
        if entry.get("exempted") and 0 <= (expires - today).days <= EXPIRING_SOON_DAYS:
            soon.append((name, entry))
    lines = []
    if expired:
        lines.append("Exemptions that expired (their resources are judged again):")
        lines += [
            f"  {clean(n, 80)}  expired {e.get('expires')}, {int(e['expired'])} resource(s)"
            for n, e in expired
        ]
    if soon:
        lines.append(f"Exemptions expiring within {EXPIRING_SOON_DAYS} days:")
        lines += [
            f"  {clean(n, 80)}  expires {e.get('expires')}, {int(e['exempted'])} resource(s)" for n, e in soon
        ]
    return [*lines, ""] if lines else []


def _coverage_lines(coverage: Mapping[str, Any] | None) -> list[str]:
    """What the verdict covered, in two or three lines."""
    if not isinstance(coverage, Mapping):
        return []
    targets = coverage.get("targets") or {}
    instances = coverage.get("instances") or {}
    lines = [
        f"Coverage: {targets.get('scanned', '?')} of {targets.get('asked', '?')} account/region targets "
        f"scanned ({targets.get('scanned_empty', 0)} with no instances in scope); regions "
        + (", ".join(clean(r, 20) for r in (coverage.get("regions_scanned") or [])[:20]) or "none"),
        f"  instances listed {instances.get('listed', '?')}, in scope {instances.get('in_scope', '?')}, "
        f"evaluated {instances.get('evaluated', '?')}",
    ]
    out = instances.get("out_of_scope") or {}
    if out:
        lines.append(
            "  out of scope: " + ", ".join(f"{int(n)} {clean(state, 20)}" for state, n in sorted(out.items()))
        )
    if instances.get("duplicates_dropped"):
        lines.append(f"  duplicate listings dropped: {int(instances['duplicates_dropped'])}")
    lines += resource_coverage_lines(coverage, lambda value: clean(value, 20))
    lines.append("")
    return lines
