"""Run summaries: totals, compliance percentage, the worst rules, owners and regions, and drift.

The aggregation is incremental (:class:`SummaryBuilder`) so a step can fold findings in as it
streams them, and so the per-region partial summaries of a Map state merge into one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

UNOWNED = "(no owner)"
# The summary lists every target that was not scanned, and the first ones that were; a run over
# 10,000 targets keeps its summary (read by the notifier and the runs table) small.
MAX_LISTED_SCANNED_TARGETS = 1000


def summarize_targets(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary's ``partial``, ``targets`` and ``target_counts`` from each target's outcome.

    >>> section = summarize_targets([{"account_id": "1", "region": "r", "status": "ok"},
    ...     {"account_id": "2", "region": "r", "status": "error", "reason": "AccessDenied"}])
    >>> section["partial"], section["target_counts"], section["targets"][0]["account_id"]
    (True, {'total': 2, 'scanned': 1, 'error': 1, 'accounts': 2}, '2')
    """
    failed = [o for o in outcomes if o["status"] != "ok"]
    listed = failed + [o for o in outcomes if o["status"] == "ok"][:MAX_LISTED_SCANNED_TARGETS]
    return {
        "partial": bool(failed),
        "targets": listed,
        "target_counts": {
            "total": len(outcomes),
            "scanned": len(outcomes) - len(failed),
            "error": len(failed),
            "accounts": len({o["account_id"] for o in outcomes}),
        },
    }


@dataclass
class SummaryBuilder:
    """Fold findings into the counts a summary needs.

    >>> builder = SummaryBuilder()
    >>> builder.add({"instance_id": "i-1", "region": "us-east-1", "account_id": "1", "owner": None,
    ...              "compliant": False, "exempt": False, "in_grace_period": False,
    ...              "violations": [{"code": "missing", "key": "Owner"}]})
    >>> builder.totals()["noncompliant"], builder.totals()["compliance_percentage"]
    (1, 0.0)
    """

    total: int = 0
    compliant: int = 0
    exempt: int = 0
    in_grace_period: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    by_code: Counter[str] = field(default_factory=Counter)
    by_region: dict[str, Counter[str]] = field(default_factory=dict)
    by_account: dict[str, Counter[str]] = field(default_factory=dict)
    noncompliant_by_owner: Counter[str] = field(default_factory=Counter)
    noncompliant_ids: set[str] = field(default_factory=set)
    # Set for a partial scan: the previous run's noncompliant ids; those seen compliant now are the
    # only "newly compliant" ones (the others may be in a target this run could not scan).
    watched_ids: set[str] | None = None
    seen_compliant_watched: set[str] = field(default_factory=set)

    def add(self, finding: Mapping[str, Any]) -> None:
        self.total += 1
        compliant = bool(finding["compliant"])
        if compliant and self.watched_ids is not None and finding["instance_id"] in self.watched_ids:
            self.seen_compliant_watched.add(str(finding["instance_id"]))
        self.compliant += compliant
        self.exempt += bool(finding.get("exempt"))
        self.in_grace_period += bool(finding.get("in_grace_period"))
        outcome = "compliant" if compliant else "noncompliant"
        self.by_region.setdefault(str(finding.get("region")), Counter())[outcome] += 1
        self.by_account.setdefault(str(finding.get("account_id")), Counter())[outcome] += 1
        if not compliant:
            self.noncompliant_ids.add(str(finding["instance_id"]))
            self.noncompliant_by_owner[finding.get("owner") or UNOWNED] += 1
            for violation in finding.get("violations", ()):
                self.by_rule[f"{violation['key']}:{violation['code']}"] += 1
                self.by_code[violation["code"]] += 1

    def add_all(self, findings: Iterable[Mapping[str, Any]]) -> SummaryBuilder:
        for finding in findings:
            self.add(finding)
        return self

    def totals(self) -> dict[str, Any]:
        noncompliant = self.total - self.compliant
        percentage = 100.0 if self.total == 0 else round(100.0 * self.compliant / self.total, 2)
        return {
            "total": self.total,
            "compliant": self.compliant,
            "noncompliant": noncompliant,
            "exempt": self.exempt,
            "in_grace_period": self.in_grace_period,
            "compliance_percentage": percentage,
        }

    def summary(
        self,
        *,
        run_id: str,
        policy_name: str,
        policy_sha256: str,
        evaluated_at: str,
        previous_noncompliant: set[str] | None = None,
        previous_run_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The run summary document (``summary.json``); drift needs the previous run's ids."""
        drift: dict[str, Any] = {"previous_run_id": previous_run_id}
        if previous_noncompliant is None:
            drift.update(newly_noncompliant=None, newly_compliant=None)
        else:
            drift.update(
                newly_noncompliant=sorted(self.noncompliant_ids - previous_noncompliant),
                newly_compliant=sorted(
                    self.seen_compliant_watched
                    if self.watched_ids is not None
                    else previous_noncompliant - self.noncompliant_ids
                ),
            )
        return {
            "run_id": run_id,
            "evaluated_at": evaluated_at,
            "policy": {"name": policy_name, "sha256": policy_sha256},
            "totals": self.totals(),
            "by_rule": dict(self.by_rule.most_common()),
            "by_code": dict(self.by_code.most_common()),
            "by_region": {k: dict(v) for k, v in sorted(self.by_region.items())},
            "by_account": {k: dict(v) for k, v in sorted(self.by_account.items())},
            "noncompliant_by_owner": dict(self.noncompliant_by_owner.most_common()),
            "noncompliant_instance_ids": sorted(self.noncompliant_ids),
            "drift": drift,
            **(extra or {}),
        }
