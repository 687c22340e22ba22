"""What a finished scan means for the person who ran it: the exit status and the coverage lines.

One table of exit statuses for every command that runs or follows a scan (``tagwarden run``,
``tagwarden start --wait``, ``tagwarden redrive --wait``):

====  =======================================================================================
0     the scan is complete (no violations, or violations without ``--fail-on-violations``)
1     noncompliant instances, with ``--fail-on-violations``
2     bad input: policy, fleet, arguments, execution input (one line each)
3     the execution failed, or an AWS error
4     incomplete scan: a target (account/region) was not scanned, or nothing was evaluated
====  =======================================================================================

An incomplete scan outranks violations: a run that could not see part of the fleet cannot say
how many violations there are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

EXIT_OK: Final = 0
EXIT_VIOLATIONS: Final = 1
EXIT_BAD_INPUT: Final = 2
EXIT_FAILED: Final = 3
EXIT_INCOMPLETE: Final = 4


def exit_status(
    status: str,
    error: str | None,
    outcome: Mapping[str, Any] | None,
    *,
    fail_on_violations: bool = False,
) -> int:
    """The exit status of a finished execution.

    ``outcome`` is the run summary, or the Persist report step's result (both carry ``totals``
    and ``incomplete``); None when the execution produced neither.

    >>> exit_status("SUCCEEDED", None, {"totals": {"total": 0, "noncompliant": 0}})
    4
    >>> exit_status("SUCCEEDED", None, {"totals": {"total": 5, "noncompliant": 2}, "incomplete": True},
    ...             fail_on_violations=True)
    4
    >>> exit_status("SUCCEEDED", None, {"totals": {"total": 5, "noncompliant": 2}}, fail_on_violations=True)
    1
    >>> exit_status("FAILED", "InvalidInput", None), exit_status("FAILED", "States.Timeout", None)
    (2, 3)
    """
    if status != "SUCCEEDED":
        return EXIT_BAD_INPUT if error == "InvalidInput" else EXIT_FAILED
    if outcome is None or is_incomplete(outcome):
        return EXIT_INCOMPLETE
    if fail_on_violations and int((outcome.get("totals") or {}).get("noncompliant") or 0):
        return EXIT_VIOLATIONS
    return EXIT_OK


def is_incomplete(outcome: Mapping[str, Any]) -> bool:
    """A target not scanned, or nothing evaluated (also for summaries written before ``incomplete``).

    >>> is_incomplete({"totals": {"total": 3}, "partial": True}), is_incomplete({"totals": {"total": 3}})
    (True, False)
    """
    if outcome.get("incomplete") or outcome.get("partial"):
        return True
    totals = outcome.get("totals") or {}
    return not int(totals.get("total") or 0)


def coverage_lines(summary: Mapping[str, Any]) -> list[str]:
    """Plain-text lines saying what the verdict covered and what it did not (for terminals).

    >>> summary = {"totals": {"total": 346}, "coverage": {
    ...     "targets": {"asked": 3, "scanned": 3, "not_scanned": 0, "scanned_empty": 0},
    ...     "regions_scanned": ["eu-west-1"], "regions_not_scanned": [],
    ...     "instances": {"listed": 360, "in_scope": 346, "evaluated": 346,
    ...                   "out_of_scope": {"terminated": 14}, "duplicates_dropped": 0}}}
    >>> print("\\n".join(coverage_lines(summary)))
    Coverage: 3 of 3 account/region targets scanned; regions eu-west-1
      instances listed 360, in scope 346, evaluated 346; out of scope: 14 terminated
    """
    coverage = summary.get("coverage")
    if not isinstance(coverage, Mapping):
        return []
    targets = coverage.get("targets") or {}
    instances = coverage.get("instances") or {}
    regions = ", ".join(str(r) for r in (coverage.get("regions_scanned") or [])) or "none"
    head = (
        f"Coverage: {targets.get('scanned', 0)} of {targets.get('asked', 0)} account/region targets scanned"
    )
    if targets.get("scanned_empty"):
        head += f" ({targets['scanned_empty']} with no instances in scope)"
    lines = [f"{head}; regions {regions}"]
    detail = (
        f"  instances listed {instances.get('listed', 0)}, in scope {instances.get('in_scope', 0)}, "
        f"evaluated {instances.get('evaluated', 0)}"
    )
    out_of_scope = instances.get("out_of_scope") or {}
    if out_of_scope:
        detail += "; out of scope: " + ", ".join(f"{n} {state}" for state, n in sorted(out_of_scope.items()))
    if instances.get("duplicates_dropped"):
        detail += f"; duplicates dropped: {instances['duplicates_dropped']}"
    if instances.get("duplicates_in_dumps"):
        detail += f"; repeated in the dumps (counted once): {instances['duplicates_in_dumps']}"
    lines.append(detail)
    lines += resource_coverage_lines(coverage)
    if not int((summary.get("totals") or {}).get("total") or 0):
        lines.append("NOTHING EVALUATED: this is not a clean bill of health (exit status 4).")
    if coverage.get("regions_not_scanned"):
        lines.append("Regions not scanned: " + ", ".join(str(r) for r in coverage["regions_not_scanned"]))
    return lines


def resource_coverage_lines(coverage: Mapping[str, Any], shown: Callable[[Any], str] = str) -> list[str]:
    """One line per resource type beyond instances: listed, in scope, evaluated, out of scope.
    ``shown`` makes a value safe for where the line goes (a notification cleans it).

    >>> resource_coverage_lines({"resources": {"network-interface": {"listed": 5, "in_scope": 3,
    ...     "evaluated": 3, "out_of_scope": {"service-managed": 2}}}})
    ['  network-interfaces listed 5, in scope 3, evaluated 3; out of scope: 2 service-managed']
    """
    lines = []
    for resource_type, seen in sorted((coverage.get("resources") or {}).items()):
        line = (
            f"  {shown(resource_type)}s listed {seen.get('listed', 0)}, "
            f"in scope {seen.get('in_scope', 0)}, evaluated {seen.get('evaluated', 0)}"
        )
        out_of_scope = seen.get("out_of_scope") or {}
        if out_of_scope:
            line += "; out of scope: " + ", ".join(
                f"{int(n)} {shown(why)}" for why, n in sorted(out_of_scope.items())
            )
        lines.append(line)
    return lines
