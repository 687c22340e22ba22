"""Run summaries: totals, coverage, compliance percentage, the worst rules, owners and regions,
and drift.

The aggregation is incremental (:class:`SummaryBuilder`) so a step can fold findings in as it
streams them, target by target.

A verdict states what it covered: ``coverage`` says which targets were scanned and which were not
(with the reason), which regions, how many instances were listed, in scope, out of scope (by state)
and dropped as duplicates. ``compliance_percentage`` is ``None`` when nothing was evaluated: 0 of 0
is not 100%. Drift compares like with like: only the targets both runs scanned (see
:func:`compute_drift`).
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
# Per-key tables (rules, owners) keep their largest rows and fold the rest into one: a tagger who
# adds 100,000 distinct prohibited keys cannot grow the summary past this.
MAX_TABLE_ROWS = 200
OTHER_ROWS = "(other)"
# The summary names at most this many compared / not-compared targets (the counts are always whole).
MAX_LISTED_DRIFT_TARGETS = 1000


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


def target_key(account_id: str, region: str) -> str:
    """The key of one (account, region) target in summaries and baselines.

    >>> target_key("111122223333", "eu-west-1")
    '111122223333/eu-west-1'
    """
    return f"{account_id}/{region}"


def bounded_table(counts: Counter[str], limit: int = MAX_TABLE_ROWS) -> dict[str, int]:
    """The ``limit`` largest rows, most first, and the rest summed into one ``(other)`` row.

    >>> bounded_table(Counter({"a": 5, "b": 3, "c": 1, "d": 1}), limit=2)
    {'a': 5, 'b': 3, '(other)': 2}
    """
    rows = counts.most_common()
    table = dict(rows[:limit])
    rest = sum(count for _, count in rows[limit:])
    if rest:
        table[OTHER_ROWS] = table.get(OTHER_ROWS, 0) + rest
    return table


# What SummaryBuilder.add reads of a finding (besides violations, exemption and created_by).
_SUMMARY_FIELDS = (
    "resource_id",
    "instance_id",
    "resource_type",
    "compliant",
    "exempt",
    "in_grace_period",
    "account_id",
    "region",
    "owner",
    "size_gib",
)


def summary_fields(finding: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a finding :meth:`SummaryBuilder.add` reads, and nothing else (no tags, no
    messages): Evaluate tag compliance stages these next to the findings, so Persist report builds
    the summary without parsing every finding again. Folding either in gives the same summary.

    >>> fields = summary_fields({"resource_id": "i-1", "compliant": False, "owner": "ana", "tags": {},
    ...     "violations": [{"code": "missing", "key": "Owner", "message": "required tag 'Owner'"}]})
    >>> fields["owner"], fields["violations"], "tags" in fields
    ('ana', [{'key': 'Owner', 'code': 'missing'}], False)
    """
    fields = {name: finding[name] for name in _SUMMARY_FIELDS if name in finding}
    exemption = finding.get("exemption")
    if exemption is not None:
        fields["exemption"] = exemption
    created_by = finding.get("created_by")
    if isinstance(created_by, Mapping) and created_by.get("display"):
        fields["created_by"] = {"display": created_by["display"]}
    if not finding.get("compliant"):
        fields["violations"] = [{"key": v["key"], "code": v["code"]} for v in finding.get("violations", ())]
    return fields


@dataclass
class TargetTally:
    """What one scanned target contributed: the drift and coverage baseline of later runs."""

    evaluated: int = 0
    noncompliant: set[str] = field(default_factory=set)


def _counter(counters: dict[str, Counter[str]], key: str) -> Counter[str]:
    """``counters[key]``, made on first use: ``setdefault(key, Counter())`` builds a Counter on
    every call, even when the key is there."""
    counter = counters.get(key)
    if counter is None:
        counter = counters[key] = Counter()
    return counter


@dataclass
class SummaryBuilder:
    """Fold findings into the counts a summary needs; each instance id counts once.

    >>> builder = SummaryBuilder()
    >>> builder.add({"instance_id": "i-1", "region": "us-east-1", "account_id": "1", "owner": None,
    ...              "compliant": False, "exempt": False, "in_grace_period": False,
    ...              "violations": [{"code": "missing", "key": "Owner"}]})
    True
    >>> builder.totals()["noncompliant"], builder.totals()["compliance_percentage"]
    (1, 0.0)
    >>> SummaryBuilder().totals()["compliance_percentage"] is None
    True
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
    by_target: dict[str, TargetTally] = field(default_factory=dict)
    seen_ids: set[str] = field(default_factory=set)
    duplicates_dropped: int = 0
    by_resource_type: dict[str, Counter[str]] = field(default_factory=dict)
    # Event runs: who created the noncompliant resources (from their CloudTrail events).
    noncompliant_by_creator: Counter[str] = field(default_factory=Counter)
    # GiB of noncompliant EBS volumes and snapshots: spend that cannot be allocated by its tags.
    untagged_gib: Counter[str] = field(default_factory=Counter)
    # Exemption id -> its expiry date (None: none) and the resources it exempted / that it named
    # after expiring.
    exemptions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, finding: Mapping[str, Any], *, target: str | None = None) -> bool:
        """Fold one finding in; False (and counted as a duplicate) for a resource already seen."""
        resource_id = str(finding.get("resource_id") or finding["instance_id"])
        if resource_id in self.seen_ids:
            self.duplicates_dropped += 1
            return False
        self.seen_ids.add(resource_id)
        resource_type = str(finding.get("resource_type") or "instance")
        self.total += 1
        compliant = bool(finding["compliant"])
        target = target or target_key(str(finding.get("account_id")), str(finding.get("region")))
        tally = self.by_target.get(target)
        if tally is None:
            tally = self.by_target[target] = TargetTally()
        tally.evaluated += 1
        self.compliant += compliant
        self.exempt += bool(finding.get("exempt"))
        self.in_grace_period += bool(finding.get("in_grace_period"))
        exemption = finding.get("exemption")
        if isinstance(exemption, Mapping) and exemption.get("id"):
            entry = self.exemptions.setdefault(
                str(exemption["id"]), {"expires": exemption.get("expires"), "exempted": 0, "expired": 0}
            )
            entry["expired" if exemption.get("expired") else "exempted"] += 1
        outcome = "compliant" if compliant else "noncompliant"
        _counter(self.by_resource_type, resource_type)[outcome] += 1
        _counter(self.by_region, str(finding.get("region")))[outcome] += 1
        _counter(self.by_account, str(finding.get("account_id")))[outcome] += 1
        if not compliant:
            if resource_type == "instance":
                self.noncompliant_ids.add(resource_id)
            elif resource_type in ("volume", "snapshot") and isinstance(finding.get("size_gib"), int):
                self.untagged_gib[resource_type] += finding["size_gib"]
            tally.noncompliant.add(resource_id)
            self.noncompliant_by_owner[finding.get("owner") or UNOWNED] += 1
            created_by = finding.get("created_by")
            if isinstance(created_by, Mapping) and created_by.get("display"):
                self.noncompliant_by_creator[str(created_by["display"])] += 1
            for violation in finding.get("violations", ()):
                self.by_rule[f"{violation['key']}:{violation['code']}"] += 1
                self.by_code[violation["code"]] += 1
        return True

    def add_all(self, findings: Iterable[Mapping[str, Any]]) -> SummaryBuilder:
        for finding in findings:
            self.add(finding)
        return self

    def scanned(self, target: str, region: str | None = None) -> None:
        """Record a target as scanned even if it had no instances: an empty region is scanned, and
        ``by_region`` shows it with zero counts rather than leaving it out."""
        self.by_target.setdefault(target, TargetTally())
        if region is not None:
            self.by_region.setdefault(region, Counter())

    def totals(self) -> dict[str, Any]:
        noncompliant = self.total - self.compliant
        percentage = None if self.total == 0 else round(100.0 * self.compliant / self.total, 2)
        return {
            "total": self.total,
            "compliant": self.compliant,
            "noncompliant": noncompliant,
            "exempt": self.exempt,
            "in_grace_period": self.in_grace_period,
            "compliance_percentage": percentage,
        }

    def scanned_targets(self) -> dict[str, dict[str, Any]]:
        """Per scanned target: instances evaluated and the noncompliant ids (drift's baseline)."""
        return {
            key: {"evaluated": tally.evaluated, "noncompliant": sorted(tally.noncompliant)}
            for key, tally in sorted(self.by_target.items())
        }

    def summary(
        self,
        *,
        run_id: str,
        policy_name: str,
        policy_sha256: str,
        evaluated_at: str,
        baseline: Baseline | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The run summary document (``summary.json``); drift needs the baseline run's targets."""
        by_region = {k: dict(v) for k, v in self.by_region.items()}
        return {
            "run_id": run_id,
            "evaluated_at": evaluated_at,
            "policy": {"name": policy_name, "sha256": policy_sha256},
            "totals": self.totals(),
            "by_rule": bounded_table(self.by_rule),
            "by_code": dict(self.by_code.most_common()),
            "by_region": {
                k: {"compliant": int(v.get("compliant", 0)), "noncompliant": int(v.get("noncompliant", 0))}
                for k, v in sorted(by_region.items())
            },
            "by_account": {
                k: {"compliant": int(v.get("compliant", 0)), "noncompliant": int(v.get("noncompliant", 0))}
                for k, v in sorted(self.by_account.items())
            },
            "noncompliant_by_owner": bounded_table(self.noncompliant_by_owner),
            "noncompliant_instance_ids": sorted(self.noncompliant_ids),
            "by_resource_type": {
                k: {"compliant": int(v.get("compliant", 0)), "noncompliant": int(v.get("noncompliant", 0))}
                for k, v in sorted(self.by_resource_type.items())
            },
            **(
                {"noncompliant_by_creator": bounded_table(self.noncompliant_by_creator)}
                if self.noncompliant_by_creator
                else {}
            ),
            "untagged_ebs_gib": {
                "volumes": self.untagged_gib["volume"],
                "snapshots": self.untagged_gib["snapshot"],
                "total": self.untagged_gib["volume"] + self.untagged_gib["snapshot"],
            },
            **({"exemptions": dict(sorted(self.exemptions.items()))} if self.exemptions else {}),
            "scanned_targets": self.scanned_targets(),
            "drift": compute_drift(self.by_target, baseline),
            **(extra or {}),
        }


@dataclass(frozen=True)
class Baseline:
    """The run drift compares with: its id and its ``scanned_targets`` section."""

    run_id: str
    scanned_targets: Mapping[str, Mapping[str, Any]]
    reason: str = ""


def compute_drift(current: Mapping[str, TargetTally], baseline: Baseline | None) -> dict[str, Any]:
    """Newly noncompliant / compliant instances over the targets both runs scanned.

    A target only one of the runs scanned says nothing about change: a region this run skipped
    is not "newly compliant", a region the baseline skipped is not "newly noncompliant".

    >>> now = {"1/a": TargetTally(2, {"i-1"}), "1/b": TargetTally(1, {"i-9"})}
    >>> drift = compute_drift(now, Baseline("r0", {"1/a": {"evaluated": 2, "noncompliant": ["i-2"]},
    ...                                             "1/c": {"evaluated": 5, "noncompliant": ["i-5"]}}))
    >>> drift["newly_noncompliant"], drift["newly_compliant"], drift["targets_compared"]
    (['i-1'], ['i-2'], ['1/a'])
    >>> drift["evaluated"]
    {'baseline': 2, 'now': 2, 'drop_percentage': 0.0}
    """
    if baseline is None:
        return {
            "previous_run_id": None,
            "baseline_reason": "no earlier finished run with the same policy scanned these targets",
            "newly_noncompliant": None,
            "newly_compliant": None,
            "targets_compared_count": 0,
            "targets_compared": [],
            "targets_not_compared_count": len(current),
            "evaluated": None,
        }
    compared = sorted(set(current) & set(baseline.scanned_targets))
    not_compared = sorted(set(current) - set(baseline.scanned_targets))
    newly_noncompliant: set[str] = set()
    newly_compliant: set[str] = set()
    evaluated_before = evaluated_now = 0
    for key in compared:
        before = set(baseline.scanned_targets[key].get("noncompliant") or ())
        now = current[key].noncompliant
        newly_noncompliant |= now - before
        newly_compliant |= before - now
        evaluated_before += int(baseline.scanned_targets[key].get("evaluated") or 0)
        evaluated_now += current[key].evaluated
    drop = 0.0
    if evaluated_before:
        drop = round(max(0.0, 100.0 * (evaluated_before - evaluated_now) / evaluated_before), 2)
    return {
        "previous_run_id": baseline.run_id,
        "baseline_reason": baseline.reason,
        "newly_noncompliant": sorted(newly_noncompliant),
        "newly_compliant": sorted(newly_compliant),
        "targets_compared_count": len(compared),
        "targets_compared": compared[:MAX_LISTED_DRIFT_TARGETS],
        "targets_not_compared_count": len(not_compared),
        "evaluated": {"baseline": evaluated_before, "now": evaluated_now, "drop_percentage": drop},
    }


def coverage_section(
    outcomes: list[dict[str, Any]], per_target: Mapping[str, Mapping[str, Any]], builder: SummaryBuilder
) -> dict[str, Any]:
    """The summary's ``coverage``: what this verdict covered, and what it did not.

    ``outcomes`` are every target's status (see :func:`summarize_targets`); ``per_target`` the
    listing counts of each scanned target (listed, in scope, out of scope by state, duplicates).

    >>> builder = SummaryBuilder()
    >>> section = coverage_section(
    ...     [{"account_id": "1", "region": "a", "status": "ok"},
    ...      {"account_id": "1", "region": "b", "status": "error", "reason": "no data"}],
    ...     {"1/a": {"listed": 3, "in_scope": 2, "out_of_scope": {"terminated": 1}}}, builder)
    >>> section["targets"], section["nothing_evaluated"], section["complete"]
    ({'asked': 2, 'scanned': 1, 'not_scanned': 1, 'scanned_empty': 0}, True, False)
    >>> section["regions_not_scanned"], section["instances"]["out_of_scope"]
    (['b'], {'terminated': 1})
    """
    scanned = [o for o in outcomes if o["status"] == "ok"]
    failed = [o for o in outcomes if o["status"] != "ok"]
    out_of_scope: Counter[str] = Counter()
    listed = in_scope = within_target_duplicates = 0
    empty = 0
    others: dict[str, Counter[str]] = {}
    others_out: dict[str, Counter[str]] = {}
    for outcome in scanned:
        counts = per_target.get(target_key(outcome["account_id"], outcome["region"])) or {}
        for resource_type, seen in (counts.get("resources") or {}).items():
            total = others.setdefault(str(resource_type), Counter())
            for name in ("listed", "in_scope", "evaluated", "duplicates_dropped"):
                total[name] += int(seen.get(name) or 0)
            others_out.setdefault(str(resource_type), Counter()).update(
                {str(k): int(v) for k, v in (seen.get("out_of_scope") or {}).items()}
            )
        listed += int(counts.get("listed") or 0)
        in_scope += int(counts.get("in_scope") or 0)
        within_target_duplicates += int(counts.get("duplicates_dropped") or 0)
        out_of_scope.update({str(k): int(v) for k, v in (counts.get("out_of_scope") or {}).items()})
        empty += not int(counts.get("in_scope") or 0)
    regions_scanned = sorted({o["region"] for o in scanned})
    return {
        "complete": not failed,
        "nothing_evaluated": builder.total == 0,
        "targets": {
            "asked": len(outcomes),
            "scanned": len(scanned),
            "not_scanned": len(failed),
            "scanned_empty": empty,
        },
        "not_scanned": [
            {"account_id": o["account_id"], "region": o["region"], "reason": o.get("reason")} for o in failed
        ],
        "regions_scanned": regions_scanned,
        "regions_not_scanned": sorted({o["region"] for o in failed} - set(regions_scanned)),
        "instances": {
            "listed": listed,
            "in_scope": in_scope,
            "evaluated": builder.total
            - sum(
                sum(counts.values())
                for kind, counts in builder.by_resource_type.items()
                if kind != "instance"
            ),
            "out_of_scope": dict(sorted(out_of_scope.items())),
            "duplicates_dropped": within_target_duplicates + builder.duplicates_dropped,
        },
        # Volumes, snapshots, interfaces and images, when the policy covers them.
        "resources": {
            resource_type: {
                "listed": counts["listed"],
                "in_scope": counts["in_scope"],
                "evaluated": counts["evaluated"],
                "out_of_scope": dict(sorted(others_out[resource_type].items())),
                "duplicates_dropped": counts["duplicates_dropped"],
            }
            for resource_type, counts in sorted(others.items())
        },
    }


def incomplete(summary: Mapping[str, Any]) -> bool:
    """A scan that cannot stand as a verdict: a target not scanned, or nothing evaluated.

    >>> incomplete({"totals": {"total": 0}}), incomplete({"totals": {"total": 3}, "partial": True})
    (True, True)
    >>> incomplete({"totals": {"total": 3}, "partial": False})
    False
    """
    return bool(summary.get("partial")) or not int((summary.get("totals") or {}).get("total") or 0)


def percentage_text(totals: Mapping[str, Any]) -> str:
    """The compliance percentage as people read it; never 100% for an empty verdict.

    >>> percentage_text({"compliance_percentage": 67.5}), percentage_text({"compliance_percentage": None})
    ('67.5%', 'nothing evaluated')
    """
    value = totals.get("compliance_percentage")
    return "nothing evaluated" if value is None else f"{value}%"


def resource_type_rows(summary: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """``(type, compliant, noncompliant)`` per resource type, or nothing for instances alone.

    >>> resource_type_rows({"by_resource_type": {"instance": {"compliant": 2, "noncompliant": 1},
    ...                                         "volume": {"compliant": 0, "noncompliant": 3}}})
    [('instance', 2, 1), ('volume', 0, 3)]
    """
    by_type = summary.get("by_resource_type") or {}
    if set(by_type) <= {"instance"}:
        return []
    return [
        (t, int(c.get("compliant", 0)), int(c.get("noncompliant", 0))) for t, c in sorted(by_type.items())
    ]


def untagged_ebs_line(summary: Mapping[str, Any]) -> str:
    """The figure a FinOps reader looks for: EBS GiB whose spend the tags cannot allocate.

    >>> untagged_ebs_line({"untagged_ebs_gib": {"volumes": 120, "snapshots": 30, "total": 150}})
    'Untagged EBS: 150 GiB noncompliant (volumes 120 GiB, snapshots 30 GiB)'
    """
    gib = summary.get("untagged_ebs_gib") or {}
    return (
        f"Untagged EBS: {int(gib.get('total') or 0)} GiB noncompliant "
        f"(volumes {int(gib.get('volumes') or 0)} GiB, snapshots {int(gib.get('snapshots') or 0)} GiB)"
    )
