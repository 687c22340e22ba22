"""Run everything and render the per-principal table (terminal and docs/iam.md)."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.iam.check import Deployment, Result, by_principal, principal_label, run_check, summary_line
from tests.iam.recorder import Recorder, load
from tests.iam.scenarios import ORGANIZATION, SINGLE, TARGETS, Execution, Observations, run_all
from tests.iam.synth import synthesize

COMMAND = "make iam-check"
MODES = (SINGLE, TARGETS, ORGANIZATION)


@functools.cache
def recorded() -> tuple[dict[str, dict[str, Any]], dict[str, Any], Observations]:
    """The synthesized templates and what the scenarios did (once per process)."""
    templates, member, _ = synthesize()
    inputs = {mode: Deployment(mode, templates[mode], member).schedule_input() or {} for mode in MODES}
    return templates, member, run_all(inputs)


def suite_observations(folder: Path) -> Observations:
    """What ``TAGWARDEN_IAM_RECORD=<folder>`` recorded across the functional suites, with each
    test's deployment modes: a test that assumed a member role or listed the organisation's
    accounts needs the organisation template (which admits any account); the others run in every
    mode of which the single-account and organisation templates are checked."""
    recorder = Recorder()
    for path in sorted(folder.glob("*.json")):
        load(json.loads(path.read_text(encoding="utf-8")), recorder)
    observations = Observations(recorder)
    cross_account = {
        c.scenario
        for c in recorder.calls
        if c.caller.kind == "member" or c.operation in {"AssumeRole", "ListAccounts"}
    }
    for scenario in {c.scenario for c in recorder.calls} | {i[0] for i in recorder.invocations}:
        observations.modes[scenario] = (
            (ORGANIZATION,) if scenario in cross_account else (SINGLE, ORGANIZATION)
        )
    observations.executions = [
        Execution(arn, "UNKNOWN", scenario, [], {}, started_by)
        for scenario, arn, started_by in recorder.executions
    ]
    return observations


def merged(first: Observations, second: Observations) -> Observations:
    recorder = Recorder(
        calls=[*first.recorder.calls, *second.recorder.calls],
        invocations=[*first.recorder.invocations, *second.recorder.invocations],
        executions=[*first.recorder.executions, *second.recorder.executions],
    )
    return Observations(
        recorder,
        executions=[*first.executions, *second.executions],
        map_runs=[*first.map_runs, *second.map_runs],
        modes={**second.modes, **first.modes},
        deliveries=[*first.deliveries, *second.deliveries],
    )


def run_everything(suites: Path | None = None) -> tuple[Sequence[Result], Sequence[Deployment]]:
    """Check every template against the scenarios (and the functional suites' recording, if given)."""
    templates, member, observations = recorded()
    if suites is not None:
        observations = merged(observations, suite_observations(suites))
    deployments = tuple(Deployment(mode, templates[mode], member) for mode in MODES)
    return tuple(run_check(d, observations) for d in deployments), deployments


def render_text(results: Sequence[Result], deployments: Sequence[Deployment]) -> str:
    lines = []
    for result, d in zip(results, deployments, strict=True):
        lines.append(f"== template: {result.template} ({len(result.checks)} calls checked)")
        for key, grants in sorted(by_principal(result).items(), key=lambda kv: principal_label(d, kv[0])):
            lines.append(f"  {principal_label(d, key)}")
            for grant in grants:
                if grant.used_by:
                    evidence = ", ".join(sorted(grant.used_by)[:3]) + (
                        f" (+{len(grant.used_by) - 3})" if len(grant.used_by) > 3 else ""
                    )
                elif grant.reason:
                    evidence = f"reason: {grant.reason}"
                else:
                    evidence = "UNEXERCISED"
                lines.append(f"    {grant.action:32} {grant.resource}\n        {evidence}")
        for role, why in sorted(result.skipped_principals.items()):
            lines.append(f"  not checked: {role}: {why}")
        for check, decision in result.denied:
            lines.append(
                f"  DENIED: {check.principal.label} {check.request.action} {check.request.resource} "
                f"[{check.scenario}; {check.origin}]: {decision.reason}"
            )
        for problem in result.problems:
            lines.append(f"  PROBLEM: {problem}")
    designed = sum(len(r.denied_as_designed) for r in results)
    lines.append(
        f"({designed} AssumeRole calls denied as designed: an account without the member role, or a "
        "role_arn the deployment does not grant; counted as checked, not as denied)"
    )
    lines.append(summary_line(results))
    return "\n".join(lines)


def _evidence(used_by: set[str], limit: int = 4) -> str:
    shown = sorted(used_by)[:limit]
    more = len(used_by) - len(shown)
    return "; ".join(shown) + (f" (and {more} more)" if more else "")


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*")


def render_markdown(results: Sequence[Result], deployments: Sequence[Deployment]) -> str:
    out = [
        "# IAM: every grant, and the calls that use it",
        "",
        f"Generated by `{COMMAND}` (`python -m tests.iam --write docs/iam.md`); do not edit by hand.",
        "",
        "The synthesized templates (single account, targets, organisation, and the member stack) are evaluated "
        "against every AWS call the workflow made in the scenarios of `tests/iam/scenarios.py` on the embedded "
        "engine, plus the calls AWS services make for it (Lambda's logs and traces, SNS's KMS use, S3's "
        "ListBucket check behind a 404, a Map Run's child executions, role assumptions, the failed-executions "
        'rule\'s delivery, alarm actions). See docs/deploy.md, "What is proven before deploying".',
        "",
    ]
    for result, d in zip(results, deployments, strict=True):
        out += [
            f"## Template: {result.template}",
            "",
            "| principal | action | resource | exercised by (or why granted) |",
            "|---|---|---|---|",
        ]
        for key, grants in sorted(by_principal(result).items(), key=lambda kv: principal_label(d, kv[0])):
            for grant in grants:
                evidence = (
                    _evidence(grant.used_by)
                    if grant.used_by
                    else (f"*reason:* {grant.reason}" if grant.reason else "**UNEXERCISED**")
                )
                out.append(
                    f"| {_md(principal_label(d, key))} | `{grant.action}` | `{grant.resource}` | {_md(evidence) if grant.used_by else evidence} |"
                )
        if result.skipped_principals:
            out += ["", "Not checked:", ""]
            out += [f"- `{role}`: {why}" for role, why in sorted(result.skipped_principals.items())]
        out.append("")
    out += [f"**{summary_line(results)}**", ""]
    return "\n".join(out)
