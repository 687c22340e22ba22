"""`tagwarden run --fleet` on a 100,000-instance describe-instances dump, end to end.

The dump holds what the evaluator reads (id, state, placement, launch time, type, tags) in the
CLI's layout, so the test stays within minutes; the full-fidelity dump (every field of the sample,
about 700 MB) is measured by ``benchmarks/bench_large_dump.py`` instead.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.benchmark_scripts import fleetgen
from workflow.cli import main
from workflow.evaluator import evaluate_instance, in_scope
from workflow.fleet import load_fleet_file
from workflow.policy import compile_policy, load_policy_document

ROOT = Path(__file__).resolve().parents[2]
INSTANCES = 100_000


@pytest.mark.slow
def test_run_on_a_100000_instance_dump(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump = tmp_path / "describe-instances.json"
    fleetgen().write_describe_instances(dump, INSTANCES, fidelity="minimal")
    # What the run must find, from the evaluator itself on the same instances (the baseline
    # policy is the local deployment's default; fleetgen's launch times are all past any grace).
    policy = compile_policy(
        load_policy_document(json.loads((ROOT / "policies" / "baseline.json").read_text()))
    )
    fleet = load_fleet_file(dump)
    assert len(fleet) == INSTANCES
    expected = Counter(
        evaluate_instance(i.instance, policy, region=i.region, account_id=i.account_id)["compliant"]
        for i in fleet
        if in_scope(i.instance, policy)
    )
    del fleet

    status = main(["run", "--fleet", str(dump), "--out", str(tmp_path / "out"), "--json", "--name", "large"])

    document = json.loads(capsys.readouterr().out)
    assert (status, document["status"]) == (0, "SUCCEEDED"), document
    summary = document["summary"]
    assert summary["total"] == expected[True] + expected[False]
    assert summary["total"] > 0.9 * INSTANCES  # fleetgen: about 6% shutting-down or terminated
    assert (summary["compliant"], summary["noncompliant"]) == (expected[True], expected[False])
    with Path(document["findings_path"]).open(encoding="utf-8") as findings:
        ids = [json.loads(line)["instance_id"] for line in findings]
    assert len(ids) == len(set(ids)) == summary["total"]
