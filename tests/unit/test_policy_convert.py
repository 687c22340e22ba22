"""Foreign policy formats: detection, every mapping rule, AWS's own examples, every class of bad
input, and equivalence with AWS verdicts on the same EC2 instances."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow.errors import PolicyError, Problem
from workflow.evaluator import evaluate_instance
from workflow.policy import compile_policy, load_policy_document, validate_policy
from workflow.policy.convert import (
    NEVER_MATCHES,
    config_required_tags_to_v1,
    detect_format,
    organizations_to_v1,
    to_v1,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "convert"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def problems(doc: object) -> list[tuple[str, str]]:
    """(path, message) of every problem ``to_v1`` reports; fails the test if it converts."""
    with pytest.raises(PolicyError) as caught:
        to_v1(doc, name="t")
    return [(p.path, p.message) for p in caught.value.problems]


def only_problem(doc: object) -> tuple[str, str]:
    found = problems(doc)
    assert len(found) == 1, found
    return found[0]


def rules_of(doc: object) -> list[dict[str, Any]]:
    converted = to_v1(doc, name="t")
    assert validate_policy(converted) == []
    rules: list[dict[str, Any]] = converted["rules"]
    return rules


def org(**entries: object) -> dict[str, Any]:
    return {"tags": entries}


def instance(tags: dict[str, str] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "InstanceId": "i-0123456789abcdef0",
        "InstanceType": "t3.micro",
        "LaunchTime": "2024-01-01T00:00:00+00:00",
        "Placement": {"AvailabilityZone": "us-east-1a"},
        "State": {"Name": "running"},
    }
    if tags is not None:
        doc["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return doc


def compliant(foreign: object, tags: dict[str, str] | None) -> bool:
    """Tagwarden's verdict on an instance with ``tags`` under the converted ``foreign`` policy."""
    policy = compile_policy(load_policy_document(foreign, name="equivalence"))
    finding = evaluate_instance(
        instance(tags), policy, region="us-east-1", account_id="111122223333", now=NOW
    )
    return bool(finding["compliant"])


# ------------------------------------------------------------------------------------------------
# Detection
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"version": 1, "name": "p", "rules": [{"key": "Owner"}]}, "tagwarden"),
        ({"rules": []}, "tagwarden"),
        ({"version": 2}, "tagwarden"),
        ({"tags": {}}, "organizations"),
        (fixture("org_describe_effective_policy.json"), "organizations"),
        ({"Policy": {"Content": "{}"}}, "organizations"),
        ({"tag1Key": "CostCenter"}, "config"),
        ({"tag3Value": "a"}, "config"),
        ({"InputParameters": "{}"}, "config"),
        ({"ConfigRules": []}, "config"),
        (fixture("config_put_config_rule_required_tags.json"), "config"),
    ],
)
def test_detect_format(doc: object, expected: str) -> None:
    assert detect_format(doc) == expected


def test_tagwarden_documents_pass_through_unchanged() -> None:
    doc = {"version": 1, "name": "p", "rules": [{"key": "Owner"}]}
    assert to_v1(doc) is doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "a tag policy must be a JSON object, not an array"),
        ("tags", "a tag policy must be a JSON object, not a string"),
        (None, "a tag policy must be a JSON object, not null"),
        (3, "a tag policy must be a JSON object, not a number"),
    ],
)
def test_detect_rejects_non_objects(doc: object, message: str) -> None:
    assert only_problem(doc) == ("$", message)


def test_detect_rejects_unknown_documents_listing_what_it_found() -> None:
    path, message = only_problem({"Statement": [], "Version": "2012-10-17"})
    assert path == "$"
    assert message.startswith("not a tag policy Tagwarden knows: expected a Tagwarden policy")
    assert "top-level members found: 'Statement', 'Version'" in message


# ------------------------------------------------------------------------------------------------
# AWS Organizations: mapping rules
# ------------------------------------------------------------------------------------------------


def test_aws_syntax_example_converts_to_one_optional_rule_with_its_values() -> None:
    converted = to_v1(fixture("org_syntax_basic.json"), name="org-basic")
    assert validate_policy(converted) == []
    assert converted["name"] == "org-basic"
    assert converted["key_case"] == "exact"
    assert converted["description"].startswith("Converted by Tagwarden from an AWS Organizations tag policy")
    assert converted["rules"] == [
        {
            "key": "CostCenter",
            "required": False,
            "allow_empty": True,
            "allowed_values": ["100", "200", "300*"],
            "description": "AWS Organizations policy key 'costcenter'",
        }
    ]


def test_tag_key_absent_defaults_to_the_policy_key_in_lowercase() -> None:
    assert [r["key"] for r in rules_of(fixture("org_example1_policy_b_values.json"))] == [
        "costcenter",
        "project",
    ]


def test_tag_key_gives_the_compliant_capitalization() -> None:
    assert [r["key"] for r in rules_of(fixture("org_example1_policy_a_key_case.json"))] == [
        "CostCenter",
        "Project",
    ]


def test_no_tag_value_means_any_value() -> None:
    (rule,) = rules_of(org(costcenter={"tag_key": {"@@assign": "CostCenter"}}))
    assert "allowed_values" not in rule
    assert "pattern" not in rule
    assert rule["allow_empty"] is True


def test_star_value_means_any_value() -> None:
    (rule,) = rules_of(org(costcenter={"tag_value": {"@@assign": ["100", "*"]}}))
    assert "allowed_values" not in rule


def test_empty_tag_value_list_means_no_value_complies() -> None:
    (rule,) = rules_of(fixture("org_example2_prevent_color.json"))
    assert rule["key"] == "Color"
    assert rule["pattern"] == NEVER_MATCHES
    assert "no value is acceptable" in rule["description"]


def test_single_wildcard_values_become_v1_globs_and_duplicates_collapse() -> None:
    (rule,) = rules_of(org(owner={"tag_value": {"@@assign": ["*@example.com", "a", "a"]}}))
    assert rule["allowed_values"] == ["*@example.com", "a"]


@pytest.mark.parametrize("resource_type", ["ec2:instance", "ec2:ALL_SUPPORTED", "ec2:*"])
def test_report_required_tag_for_ec2_instances_makes_the_rule_required(resource_type: str) -> None:
    (rule,) = rules_of(
        org(costcenter={"report_required_tag_for": {"@@assign": ["s3:bucket", resource_type]}})
    )
    assert rule["required"] is True
    assert "required on EC2 instance" in rule["description"]


def test_ec2_family_types_in_report_required_tag_for_bring_those_types_in() -> None:
    converted = organizations_to_v1(
        org(
            costcenter={
                "report_required_tag_for": {"@@assign": ["ec2:instance", "ec2:volume", "ec2:snapshot"]}
            },
            owner={"report_required_tag_for": {"@@assign": ["ec2:network-interface"]}},
            team={"report_required_tag_for": {"@@assign": ["ec2:image", "s3:bucket"]}},
        ),
        name="org",
    )
    covered = ["instance", "volume", "snapshot", "image", "network-interface"]
    assert converted["resource_types"] == covered
    assert [(r["key"], r["required"], r.get("resource_types")) for r in converted["rules"]] == [
        ("costcenter", True, ["instance", "volume", "snapshot"]),
        ("costcenter", False, ["image", "network-interface"]),
        ("owner", True, ["network-interface"]),
        ("owner", False, ["instance", "volume", "snapshot", "image"]),
        ("team", True, ["image"]),
        ("team", False, ["instance", "volume", "snapshot", "network-interface"]),
    ]
    policy = compile_policy(converted)
    assert [(r.key, r.required) for r in policy.for_type("volume").rules] == [
        ("costcenter", True),
        ("owner", False),
        ("team", False),
    ]


def test_the_service_wide_forms_name_the_whole_ec2_family() -> None:
    converted = organizations_to_v1(
        org(costcenter={"report_required_tag_for": {"@@assign": ["ec2:*"]}}), name="o"
    )
    assert converted["resource_types"] == ["instance", "volume", "snapshot", "image", "network-interface"]
    assert [(r["required"], r.get("resource_types")) for r in converted["rules"]] == [(True, None)]


@pytest.mark.parametrize("resource_types", [[], ["s3:bucket"], ["logs:log-group"]])
def test_report_required_tag_for_other_resources_leaves_the_rule_optional(resource_types: list[str]) -> None:
    (rule,) = rules_of(org(costcenter={"report_required_tag_for": {"@@assign": resource_types}}))
    assert rule["required"] is False


def test_terraform_guide_example_is_not_required_on_instances() -> None:
    (rule,) = rules_of(fixture("org_terraform_guide_required_owner.json"))
    assert (rule["key"], rule["required"]) == ("Owner", False)


def test_enforced_for_changes_nothing() -> None:
    with_enforcement = rules_of(fixture("org_syntax_basic_2023.json"))
    without = rules_of(
        org(costcenter={"tag_key": {"@@assign": "CostCenter"}, "tag_value": {"@@assign": ["100", "200"]}})
    )
    assert with_enforcement == without


def test_child_control_operators_are_ignored_at_every_level() -> None:
    (rule,) = rules_of(fixture("org_inheritance_policy_e_restrict_children.json"))
    assert rule["key"] == "Project"
    assert rule["allowed_values"] == ["Maintenance", "Escalations"]
    doc = {
        "@@operators_allowed_for_child_policies": ["@@none"],
        "tags": {
            "@@operators_allowed_for_child_policies": ["@@none"],
            "project": {
                "@@operators_allowed_for_child_policies": ["@@none"],
                # only a child control operator: the setting itself is not assigned
                "tag_value": {"@@operators_allowed_for_child_policies": ["@@append"]},
            },
        },
    }
    (rule,) = rules_of(doc)
    assert (rule["key"], "allowed_values" in rule) == ("project", False)


def test_effective_policy_rendering_converts_like_the_policy_it_came_from() -> None:
    effective = rules_of(fixture("org_example1_effective_a_plus_b.json"))
    assert [(r["key"], r["allowed_values"]) for r in effective] == [
        ("CostCenter", ["Production", "Test"]),
        ("Project", ["A", "B"]),
    ]
    converted = to_v1(fixture("org_inheritance_effective_a_plus_c.json"))
    assert "effective tag policy" in converted["description"]
    assert converted["rules"][0]["allowed_values"] == ["Development", "Support", "Marketing"]


def test_describe_effective_policy_output_is_unwrapped() -> None:
    (rule,) = rules_of(fixture("org_describe_effective_policy.json"))
    assert (rule["key"], rule["required"], "allowed_values" in rule) == ("CostCenter", False, False)


def test_describe_policy_output_is_unwrapped() -> None:
    content = json.dumps(fixture("org_syntax_basic.json"))
    doc = {"Policy": {"PolicySummary": {"Name": "cc", "Type": "TAG_POLICY"}, "Content": content}}
    assert rules_of(doc) == rules_of(fixture("org_syntax_basic.json"))


def test_rules_are_sorted_by_key_whatever_the_member_order() -> None:
    entries = {k: {"tag_key": {"@@assign": k}} for k in ["zeta", "Alpha", "beta"]}
    forward = to_v1({"tags": entries})
    backward = to_v1({"tags": dict(reversed(list(entries.items())))})
    assert [r["key"] for r in forward["rules"]] == ["Alpha", "beta", "zeta"]
    assert forward == backward


@pytest.mark.parametrize(
    ("name", "expected"),
    [("org policy", "org policy"), ("my/policy(1)", "my-policy-1-"), ("...", "converted")],
)
def test_name_is_made_valid(name: str, expected: str) -> None:
    assert to_v1(fixture("org_syntax_basic.json"), name=name)["name"] == expected


# ------------------------------------------------------------------------------------------------
# AWS Organizations: every class of bad input
# ------------------------------------------------------------------------------------------------


def test_append_is_rejected_pointing_at_the_effective_policy() -> None:
    found = problems(fixture("org_inheritance_policy_c_append.json"))
    assert [path for path, _ in found] == [
        "$.tags.costcenter.tag_value.@@append",
        "$.tags.costcenter.enforced_for.@@append",
    ]
    assert "only has a meaning when merged with inherited policies" in found[0][1]
    assert "aws organizations describe-effective-policy" in found[0][1]


def test_remove_and_unknown_operators_are_rejected() -> None:
    found = problems(fixture("org_inheritance_policy_d_remove.json"))
    assert [path for path, _ in found] == [
        "$.tags.costcenter.tag_value.@@remove",
        "$.tags.costcenter.tag_value.enforced_for",
    ]
    assert found[1][1].startswith("unknown operator 'enforced_for'; a tag policy setting takes @@assign")


def test_more_than_one_wildcard_in_a_value() -> None:
    doc = org(costcenter={"tag_value": {"@@assign": ["100", "*@*.com"]}})
    assert only_problem(doc) == (
        "$.tags.costcenter.tag_value.@@assign[1]",
        "'*@*.com' has more than one '*' wildcard; AWS allows at most one per value "
        '(e.g. "*@example.com", not "*@*.com"); split it into several values',
    )


def test_tag_key_must_match_its_policy_key() -> None:
    doc = org(costcenter={"tag_key": {"@@assign": "CostCentre"}})
    path, message = only_problem(doc)
    assert path == "$.tags.costcenter.tag_key.@@assign"
    assert message.startswith(
        "tag_key 'CostCentre' must equal its policy key 'costcenter' apart from capitalization"
    )


@pytest.mark.parametrize(
    ("entry", "path", "message"),
    [
        (
            {"tag_key": {"@@assign": 7}},
            "$.tags.cc.tag_key.@@assign",
            "tag_key must be a string, not a number",
        ),
        ({"tag_key": None}, "$.tags.cc.tag_key", "tag_key must be a string, not null"),
        (
            {"tag_value": {"@@assign": "100"}},
            "$.tags.cc.tag_value.@@assign",
            "tag_value must be a list of strings, not a string",
        ),
        (
            {"tag_value": {"@@assign": [100]}},
            "$.tags.cc.tag_value.@@assign[0]",
            'each tag_value entry must be a string, not a number; write it in quotes: "100"',
        ),
        (
            {"enforced_for": {"@@assign": [True]}},
            "$.tags.cc.enforced_for.@@assign[0]",
            "each enforced_for entry must be a string, not a boolean",
        ),
        (
            {"report_required_tag_for": {"@@assign": {"ec2": "instance"}}},
            "$.tags.cc.report_required_tag_for.@@assign",
            "report_required_tag_for must be a list of strings, not an object",
        ),
    ],
)
def test_wrong_types_in_settings(entry: dict[str, Any], path: str, message: str) -> None:
    assert only_problem({"tags": {"cc": entry}}) == (path, message)


def test_value_longer_than_aws_allows() -> None:
    path, message = only_problem(org(cc={"tag_value": {"@@assign": ["x" * 257]}}))
    assert (path, message) == (
        "$.tags.cc.tag_value.@@assign[0]",
        "value is 257 characters; AWS tag values are at most 256",
    )


@pytest.mark.parametrize("resource_type", ["*", "*:*", "ALL_SUPPORTED", "*:instance"])
def test_report_required_tag_for_cannot_name_every_service(resource_type: str) -> None:
    path, message = only_problem(org(cc={"report_required_tag_for": {"@@assign": [resource_type]}}))
    assert path == "$.tags.cc.report_required_tag_for.@@assign[0]"
    assert message.endswith(
        'names every service, which AWS does not allow; list resource types such as "ec2:instance"'
    )


@pytest.mark.parametrize(
    ("resource_type", "fix"), [("EC2:Instance", "ec2:instance"), ("ec2:all_supported", "ec2:ALL_SUPPORTED")]
)
def test_report_required_tag_for_is_case_sensitive(resource_type: str, fix: str) -> None:
    assert only_problem(org(cc={"report_required_tag_for": {"@@assign": [resource_type]}})) == (
        "$.tags.cc.report_required_tag_for.@@assign[0]",
        f'resource types are case sensitive: write "{fix}"',
    )


@pytest.mark.parametrize("resource_type", ["ec2", "ec2:", ":instance"])
def test_report_required_tag_for_needs_service_and_type(resource_type: str) -> None:
    path, message = only_problem(org(cc={"report_required_tag_for": {"@@assign": [resource_type]}}))
    assert path == "$.tags.cc.report_required_tag_for.@@assign[0]"
    assert message.endswith('is not a resource type; write "service:type", e.g. "ec2:instance"')


def test_policy_keys_differing_only_by_case_are_one_key() -> None:
    doc: dict[str, Any] = {"tags": {"CostCenter": {}, "costcenter": {}}}
    assert only_problem(doc) == (
        "$.tags.costcenter",
        "policy keys are not case sensitive, so this is the same key as 'CostCenter'; merge the two entries",
    )


def test_aws_prefixed_keys_cannot_be_converted() -> None:
    path, message = only_problem(org(**{"aws:createdBy": {"tag_key": {"@@assign": "aws:createdBy"}}}))
    assert path == '$.tags["aws:createdBy"].tag_key.@@assign'
    assert "begins with 'aws:'; those tags are reserved for AWS and Tagwarden never evaluates them" in message


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        (
            {"tags": []},
            "$.tags",
            'must be an object of policy keys, e.g. {"costcenter": {...}} (an array, not an object)',
        ),
        (
            {"tags": {}},
            "$.tags",
            "has no policy keys, so there is nothing to convert; add at least one tag key",
        ),
        ({"tags": {"cc": []}}, "$.tags.cc", "the settings of a policy key must be an object, not an array"),
        ({"tags": {"": {}}}, '$.tags[""]', 'a policy key must be a non-empty tag key such as "costcenter"'),
        (
            {"tags": {"@@assign": {}}},
            "$.tags.@@assign",
            "operator '@@assign' cannot stand for a policy key; put it inside a tag setting",
        ),
    ],
)
def test_malformed_tags_objects(doc: object, path: str, message: str) -> None:
    assert only_problem(doc) == (path, message)


def test_unknown_fields_are_named_with_the_allowed_ones() -> None:
    found = problems({"tags": {"cc": {"tag_values": {"@@assign": ["a"]}}}, "scp": {}})
    assert found == [
        ("$.scp", "unknown top-level field; a tag policy has only 'tags'"),
        (
            "$.tags.cc.tag_values",
            "unknown tag policy field; allowed fields here: "
            "tag_key, tag_value, enforced_for, report_required_tag_for",
        ),
    ]


def test_policy_over_aws_size_limit() -> None:
    entries = {f"key{i:04d}": {"tag_value": {"@@assign": ["v" * 40]}} for i in range(200)}
    path, message = only_problem({"tags": entries})
    assert path == "$"
    assert message.startswith("the policy is ")
    assert message.endswith(
        "AWS Organizations accepts tag policies of at most 10000, so AWS would not have this policy; split it"
    )


def test_effective_policies_are_exempt_from_the_size_limit() -> None:
    entries = {f"key{i:04d}": {"tag_key": f"key{i:04d}", "tag_value": ["v" * 40]} for i in range(200)}
    assert len(to_v1({"tags": entries})["rules"]) == 200


def test_more_keys_than_a_tagwarden_policy_holds() -> None:
    entries = {f"k{i}": {"tag_key": f"k{i}"} for i in range(201)}
    assert only_problem({"tags": entries}) == (
        "$.tags",
        "has 201 tag keys; a Tagwarden policy holds at most 200 rules",
    )


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        (
            {"EffectivePolicy": {"PolicyContent": '{"tags": ', "PolicyType": "TAG_POLICY"}},
            "$.EffectivePolicy.PolicyContent",
            "not valid JSON (Expecting value at line 1, column 10); it must hold the tag policy",
        ),
        (
            {"EffectivePolicy": {"PolicyContent": "{}", "PolicyType": "BACKUP_POLICY"}},
            "$.EffectivePolicy.PolicyType",
            "is 'BACKUP_POLICY'; only a TAG_POLICY can be converted",
        ),
        (
            {"EffectivePolicy": {"PolicyContent": 5}},
            "$.EffectivePolicy.PolicyContent",
            "must be the tag policy as a JSON string, not a number",
        ),
        (
            {"EffectivePolicy": {"PolicyContent": "[1]"}},
            "$.EffectivePolicy.PolicyContent",
            "a tag policy must be a JSON object, not an array",
        ),
        (
            {"EffectivePolicy": "x"},
            "$.EffectivePolicy",
            "must be an object as describe-effective-policy prints it, not a string",
        ),
        (
            {"Policy": {"PolicySummary": {"Type": "SERVICE_CONTROL_POLICY"}, "Content": "{}"}},
            "$.Policy.PolicySummary.Type",
            "is 'SERVICE_CONTROL_POLICY'; only a TAG_POLICY can be converted",
        ),
    ],
)
def test_bad_cli_wrappers(doc: object, path: str, message: str) -> None:
    assert only_problem(doc) == (path, message)


def test_paths_inside_wrapped_policies_continue_the_outer_path() -> None:
    inner = json.dumps(org(cc={"tag_value": ["a**"]}))
    path, _ = only_problem({"EffectivePolicy": {"PolicyContent": inner}})
    assert path == "$.EffectivePolicy.PolicyContent.tags.cc.tag_value[0]"


def test_every_problem_is_reported_at_once() -> None:
    doc = {
        "tags": {
            "a": {"tag_value": {"@@append": ["x"]}},
            "b": {"tag_value": {"@@assign": ["1**"]}},
            "c": {"tag_key": {"@@assign": "d"}},
            "e": {"report_required_tag_for": {"@@assign": ["*"]}},
        }
    }
    assert [path for path, _ in problems(doc)] == [
        "$.tags.a.tag_value.@@append",
        "$.tags.b.tag_value.@@assign[0]",
        "$.tags.c.tag_key.@@assign",
        "$.tags.e.report_required_tag_for.@@assign[0]",
    ]


# ------------------------------------------------------------------------------------------------
# AWS Config required-tags: mapping rules
# ------------------------------------------------------------------------------------------------


def test_aws_cli_put_config_rule_example_converts() -> None:
    converted = to_v1(fixture("config_put_config_rule_required_tags.json"), name="config")
    assert validate_policy(converted) == []
    assert converted["key_case"] == "exact"
    assert "'RequiredTagsForEC2Instances'" in converted["description"]
    assert converted["rules"] == [
        {"key": "CostCenter", "required": True, "allow_empty": True},
        {"key": "Owner", "required": True, "allow_empty": True},
    ]


def test_values_become_allowed_values_and_a_literal_star_becomes_an_escaped_pattern() -> None:
    assert rules_of(fixture("config_parameters_with_values.json")) == [
        {"key": "Environment", "required": True, "allow_empty": True, "allowed_values": ["prod", "dev"]},
        {
            "key": "Code",
            "required": True,
            "allow_empty": True,
            "pattern": r"(?:A\*|B)",
            "description": "values matched literally: required-tags has no wildcards",
        },
        {"key": "Owner", "required": True, "allow_empty": True},
    ]


def test_values_are_split_on_commas_and_kept_exactly() -> None:
    (rule,) = rules_of({"tag1Key": "Env", "tag1Value": "prod, dev,,prod"})
    assert rule["allowed_values"] == ["prod", " dev", ""]


def test_empty_value_parameter_means_any_value() -> None:
    (rule,) = rules_of({"tag1Key": "Env", "tag1Value": ""})
    assert "allowed_values" not in rule


def test_empty_optional_keys_are_unused_parameters() -> None:
    assert [r["key"] for r in rules_of({"tag1Key": "A", "tag2Key": "", "tag3Key": "C"})] == ["A", "C"]


def test_rules_follow_the_parameter_numbers_not_the_member_order() -> None:
    doc = {"tag3Key": "C", "tag1Key": "A", "tag2Key": "B"}
    assert [r["key"] for r in rules_of(doc)] == ["A", "B", "C"]


def test_the_same_key_twice_must_satisfy_both_value_lists() -> None:
    doc = {
        "tag1Key": "Env",
        "tag1Value": "prod,dev",
        "tag2Key": "Env",
        "tag2Value": "dev,test",
        "tag3Key": "Env",
    }
    assert rules_of(doc) == [{"key": "Env", "required": True, "allow_empty": True, "allowed_values": ["dev"]}]
    (rule,) = rules_of({"tag1Key": "Env", "tag1Value": "prod", "tag2Key": "Env", "tag2Value": "dev"})
    assert rule["pattern"] == NEVER_MATCHES


@pytest.mark.parametrize(
    "doc",
    [
        {"InputParameters": '{"tag1Key":"CostCenter"}'},
        {"InputParameters": {"tag1Key": "CostCenter"}},  # CloudFormation's AWS::Config::ConfigRule
        {
            "ConfigRules": [
                {
                    "Source": {"Owner": "AWS", "SourceIdentifier": "REQUIRED_TAGS"},
                    "InputParameters": '{"tag1Key":"CostCenter"}',
                }
            ]
        },
        {
            "ConfigRules": [
                {"Source": {"Owner": "AWS", "SourceIdentifier": "S3_BUCKET_VERSIONING_ENABLED"}},
                {
                    "Source": {"Owner": "AWS", "SourceIdentifier": "REQUIRED_TAGS"},
                    "InputParameters": '{"tag1Key":"CostCenter"}',
                },
            ]
        },
    ],
)
def test_config_rule_wrappers(doc: dict[str, Any]) -> None:
    assert [r["key"] for r in rules_of(doc)] == ["CostCenter"]


# ------------------------------------------------------------------------------------------------
# AWS Config required-tags: every class of bad input
# ------------------------------------------------------------------------------------------------


def test_more_than_six_tags() -> None:
    doc = {"tag1Key": "A", "tag7Key": "G", "tag7Value": "x"}
    assert problems(doc) == [
        (
            "$.tag7Key",
            "required-tags checks at most 6 tags (tag1Key ... tag6Key); "
            "move the rest into a second rule or write a Tagwarden policy",
        ),
        (
            "$.tag7Value",
            "required-tags checks at most 6 tags (tag1Key ... tag6Key); "
            "move the rest into a second rule or write a Tagwarden policy",
        ),
    ]


def test_unknown_parameter() -> None:
    assert problems({"tag1Key": "A", "Tag2Key": "B"}) == [
        (
            "$.Tag2Key",
            "unknown parameter; required-tags takes tag1Key, tag1Value ... tag6Key, tag6Value "
            "(parameter names are case sensitive)",
        )
    ]


def test_tag1_key_is_required() -> None:
    assert problems({"tag2Key": "B"}) == [
        ("$.tag1Key", 'required-tags needs tag1Key (the AWS default is "CostCenter")')
    ]


def test_value_without_its_key() -> None:
    assert problems({"tag1Key": "A", "tag2Value": "x"}) == [
        ("$.tag2Value", "has no tag2Key; add tag2Key or remove tag2Value")
    ]


def test_parameters_must_be_strings() -> None:
    assert problems({"tag1Key": "A", "tag1Value": ["x"]}) == [
        ("$.tag1Value", "must be a string, not an array")
    ]


@pytest.mark.parametrize(
    ("doc", "path", "fragment"),
    [
        ({"tag1Key": ""}, "$.tag1Key", 'tag1Key is empty; give the tag key to check, e.g. "CostCenter"'),
        ({"tag1Key": "k" * 129}, "$.tag1Key", "tag1Key is 129 characters; AWS tag keys are at most 128"),
        ({"tag1Key": "aws:cloudformation:stack-name"}, "$.tag1Key", "begins with 'aws:'"),
        (
            {"tag1Key": "A", "tag1Value": "v" * 257},
            "$.tag1Value",
            "is 257 characters; tag values are at most 256",
        ),
    ],
)
def test_bad_keys_and_values(doc: object, path: str, fragment: str) -> None:
    found_path, message = only_problem(doc)
    assert found_path == path
    assert fragment in message


def test_keys_differing_only_by_case() -> None:
    assert problems({"tag1Key": "Env", "tag2Key": "env"}) == [
        (
            "$.tag2Key",
            "'env' and 'Env' (tag1Key) differ only by capitalization; AWS checks them as two keys, "
            "but a Tagwarden policy has one rule per key whatever its case",
        )
    ]


def test_too_many_literal_star_values_for_a_pattern() -> None:
    values = ",".join(f"value-{i}*" for i in range(100))
    path, message = only_problem({"tag1Key": "A", "tag1Value": values})
    assert path == "$.tag1Value"
    assert message.startswith(
        "a value contains '*', which must match literally, and the 100 values make a pattern of"
    )


def test_a_rule_that_is_not_required_tags() -> None:
    assert problems(fixture("config_describe_config_rules_custom_lambda.json")) == [
        (
            "$.ConfigRules[0].Source.SourceIdentifier",
            "this rule runs 'arn:aws:lambda:us-east-1:123456789012:function:InstanceTypeCheck' "
            "(owner 'CUSTOM_LAMBDA'), "
            "not the AWS managed rule REQUIRED_TAGS (required-tags); only required-tags parameters convert",
        )
    ]


@pytest.mark.parametrize(
    ("scope", "path", "fragment"),
    [
        (
            {"ComplianceResourceTypes": ["AWS::S3::Bucket"]},
            "$.Scope.ComplianceResourceTypes",
            "does not include AWS::EC2::Instance",
        ),
        ({"TagKey": "Team"}, "$.Scope.TagKey", "the rule only evaluates some resources"),
        (
            {"ComplianceResourceId": "i-1"},
            "$.Scope.ComplianceResourceId",
            "the rule only evaluates some resources",
        ),
    ],
)
def test_scopes_that_leave_out_instances(scope: dict[str, Any], path: str, fragment: str) -> None:
    doc = {
        "Source": {"Owner": "AWS", "SourceIdentifier": "REQUIRED_TAGS"},
        "Scope": scope,
        "InputParameters": '{"tag1Key":"A"}',
    }
    found_path, message = only_problem(doc)
    assert found_path == path
    assert fragment in message


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        (
            {"InputParameters": "{tag1Key: A}"},
            "$.InputParameters",
            "not valid JSON (Expecting property name enclosed in double quotes at line 1, column 2); "
            "it must hold the rule parameters",
        ),
        (
            {"InputParameters": "[]"},
            "$.InputParameters",
            "the required-tags parameters must be a JSON object, not an array",
        ),
        (
            {"InputParameters": 3},
            "$.InputParameters",
            "must be the rule parameters as a JSON string, not a number",
        ),
        (
            {"ConfigRuleName": "x"},
            "$.InputParameters",
            'required-tags needs its parameters here, e.g. "{\\"tag1Key\\":\\"CostCenter\\"}"',
        ),
        ({"ConfigRules": []}, "$.ConfigRules", "must be a non-empty list of Config rules"),
        (
            {
                "ConfigRules": [
                    {"Source": {"SourceIdentifier": "REQUIRED_TAGS"}},
                    {"Source": {"SourceIdentifier": "REQUIRED_TAGS"}},
                ]
            },
            "$.ConfigRules",
            "holds 2 REQUIRED_TAGS rules among 2; convert exactly one "
            "(aws configservice describe-config-rules --config-rule-names NAME)",
        ),
        (
            {"InputParameters": '{"tag1Key":"A"}', "Source": "AWS"},
            "$.Source",
            "must be an object, not a string",
        ),
    ],
)
def test_bad_config_rule_wrappers(doc: object, path: str, message: str) -> None:
    assert only_problem(doc) == (path, message)


def test_paths_inside_input_parameters_continue_the_outer_path() -> None:
    doc = {"ConfigRules": [{"InputParameters": '{"tag1Key":"A","tag9Key":"B"}'}]}
    path, _ = only_problem(doc)
    assert path == "$.ConfigRules[0].InputParameters.tag9Key"


# ------------------------------------------------------------------------------------------------
# Property: nothing but PolicyError, and anything converted is a valid v1 policy
# ------------------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
tag_strings = st.sampled_from(
    ["*", "a*", "a**", "", " ", "ec2:instance", "ec2:*", "EC2:instance", "aws:x"]
) | st.text(max_size=8)
operators = st.sampled_from(
    ["@@assign", "@@append", "@@remove", "@@operators_allowed_for_child_policies", "@@x"]
)
settings_values = (
    json_values
    | st.lists(tag_strings, max_size=4)
    | tag_strings
    | st.dictionaries(operators, json_values | st.lists(tag_strings, max_size=4) | tag_strings, max_size=3)
)
fields = st.sampled_from(
    [
        "tag_key",
        "tag_value",
        "enforced_for",
        "report_required_tag_for",
        "@@operators_allowed_for_child_policies",
        "other",
    ]
)
policy_keys = st.sampled_from(["costcenter", "CostCenter", "Owner", "aws:x", "", "@@assign"]) | st.text(
    max_size=8
)
organizations_docs = st.fixed_dictionaries(
    {
        "tags": st.dictionaries(
            policy_keys, st.dictionaries(fields, settings_values, max_size=4) | json_values, max_size=5
        )
    }
)
config_names = st.sampled_from(
    [f"tag{i}{kind}" for i in range(0, 9) for kind in ("Key", "Value")] + ["other"]
)
config_docs = st.dictionaries(config_names, tag_strings | json_values, max_size=8)
wrapped_docs = (
    st.builds(lambda d: {"EffectivePolicy": {"PolicyContent": json.dumps(d)}}, organizations_docs)
    | st.builds(lambda d: {"InputParameters": json.dumps(d)}, config_docs)
    | st.builds(lambda d: {"ConfigRules": [{"InputParameters": d}]}, config_docs | json_values)
    | st.builds(lambda t: {"EffectivePolicy": {"PolicyContent": t}}, st.text(max_size=20))
)
# Mostly-valid documents, so the success path (valid v1 output) is exercised as often as the errors.
key_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=10)
value_text = st.text(max_size=10).map(
    lambda v: v.replace("*", "", v.count("*") - 1) if v.count("*") > 1 else v
)
plausible_entries = st.fixed_dictionaries(
    {},
    optional={
        "tag_value": st.lists(value_text, max_size=5)
        | st.dictionaries(st.just("@@assign"), st.lists(value_text, max_size=5)),
        "report_required_tag_for": st.lists(
            st.sampled_from(["ec2:instance", "ec2:ALL_SUPPORTED", "s3:bucket"]), max_size=2
        ),
        "enforced_for": st.dictionaries(st.just("@@assign"), st.lists(st.just("ec2:instance"), max_size=1)),
    },
)
plausible_organizations_docs = st.dictionaries(key_text, plausible_entries, min_size=1, max_size=6).map(
    lambda tags: {"tags": tags}
)
plausible_config_docs = st.lists(
    st.tuples(key_text, st.none() | st.lists(value_text, max_size=4).map(",".join)), min_size=1, max_size=6
).map(
    lambda pairs: {
        name: value
        for index, (key, values) in enumerate(pairs, start=1)
        for name, value in ((f"tag{index}Key", key), (f"tag{index}Value", values))
        if value is not None
    }
)
any_docs = (
    json_values
    | organizations_docs
    | config_docs
    | wrapped_docs
    | plausible_organizations_docs
    | plausible_config_docs
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=any_docs, name=st.text(max_size=20))
def test_to_v1_raises_nothing_but_policy_error_and_converts_to_valid_v1(doc: object, name: str) -> None:
    reported: list[Problem] = []
    try:
        converted = to_v1(doc, name=name)
    except PolicyError as err:
        reported = list(err.problems)
    else:
        if converted is not doc:
            assert validate_policy(converted) == []
            compile_policy(converted)
        return
    assert reported
    assert all(p.path.startswith("$") and p.message for p in reported)


def test_named_converters_raise_policy_error_for_non_objects() -> None:
    with pytest.raises(PolicyError):
        organizations_to_v1([], name="x")  # type: ignore[arg-type]
    with pytest.raises(PolicyError):
        config_required_tags_to_v1("tag1Key", name="x")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# Equivalence: the AWS verdict on the same instance, through compile_policy + evaluate_instance
# ------------------------------------------------------------------------------------------------

UNTAGGED_NOT_REPORTED = pytest.mark.xfail(
    strict=True,
    reason="AWS tag policy reports never list untagged resources ('Untagged resources don't appear as "
    "noncompliant in results', Tag Editor guide, Evaluating organization-wide compliance); v1 cannot say "
    "'only tagged instances'",
)

ORGANIZATIONS_CASES = [
    # The AWS syntax example: CostCenter in 100, 200, 300*; not required.
    ("org_syntax_basic.json", None, True),
    ("org_syntax_basic.json", {"Name": "web"}, True),
    ("org_syntax_basic.json", {"CostCenter": "100"}, True),
    ("org_syntax_basic.json", {"CostCenter": "300"}, True),
    ("org_syntax_basic.json", {"CostCenter": "300-blue"}, True),
    ("org_syntax_basic.json", {"CostCenter": "400"}, False),
    ("org_syntax_basic.json", {"CostCenter": "1000"}, False),
    ("org_syntax_basic.json", {"CostCenter": "100 "}, False),
    ("org_syntax_basic.json", {"CostCenter": "a300"}, False),
    ("org_syntax_basic.json", {"CostCenter": ""}, False),
    ("org_syntax_basic.json", {"CostCenter": " "}, False),
    ("org_syntax_basic.json", {"costcenter": "100"}, False),
    ("org_syntax_basic.json", {"COSTCENTER": "100"}, False),
    ("org_syntax_basic.json", {"aws:cloudformation:stack-name": "s", "Name": "web"}, True),
    pytest.param("org_syntax_basic.json", {"CostCenter": "100", "costcenter": "100"}, False),
    # Required on EC2 instances through report_required_tag_for.
    ("org_required_ec2_instance.json", {"Name": "web"}, False),
    ("org_required_ec2_instance.json", {"CostCenter": "100"}, True),
    ("org_required_ec2_instance.json", {"CostCenter": "300"}, True),
    ("org_required_ec2_instance.json", {"CostCenter": "3"}, False),
    ("org_required_ec2_instance.json", {"CostCenter": ""}, False),
    ("org_required_ec2_instance.json", {"costcenter": "100"}, False),
    pytest.param("org_required_ec2_instance.json", None, True, marks=UNTAGGED_NOT_REPORTED),
    # Required on log groups only: nothing required on instances.
    ("org_terraform_guide_required_owner.json", {"Name": "web"}, True),
    ("org_terraform_guide_required_owner.json", {"owner": "ana"}, False),
    # Key case only: any value, "including no value at all".
    ("org_example1_policy_a_key_case.json", {"CostCenter": "anything", "Project": "x"}, True),
    ("org_example1_policy_a_key_case.json", {"CostCenter": ""}, True),
    ("org_example1_policy_a_key_case.json", {"CostCenter": "x", "project": "y"}, False),
    ("org_example1_policy_a_key_case.json", {"Costcenter": "x"}, False),
    ("org_example1_policy_a_key_case.json", {"Owner": "ana"}, True),
    # No tag_key: the compliant capitalization is the lowercase policy key.
    ("org_example1_policy_b_values.json", {"costcenter": "Production", "project": "A"}, True),
    ("org_example1_policy_b_values.json", {"CostCenter": "Production"}, False),
    ("org_example1_policy_b_values.json", {"costcenter": "production"}, False),
    # The effective policy of A + B.
    ("org_example1_effective_a_plus_b.json", {"CostCenter": "Test", "Project": "B"}, True),
    ("org_example1_effective_a_plus_b.json", {"CostCenter": "Prod"}, False),
    ("org_example1_effective_a_plus_b.json", {"costcenter": "Test"}, False),
    # No value is acceptable for Color.
    ("org_example2_prevent_color.json", {"Name": "web"}, True),
    ("org_example2_prevent_color.json", {"Color": "red"}, False),
    ("org_example2_prevent_color.json", {"Color": ""}, False),
    ("org_example2_prevent_color.json", {"color": "red"}, False),
    # describe-effective-policy output: tag_value ["*"].
    ("org_describe_effective_policy.json", {"CostCenter": "anything"}, True),
    ("org_describe_effective_policy.json", {"CostCenter": ""}, True),
    ("org_describe_effective_policy.json", {"costCenter": "x"}, False),
]


@pytest.mark.parametrize(("fixture_name", "tags", "aws_compliant"), ORGANIZATIONS_CASES)
def test_organizations_verdicts_match_aws(
    fixture_name: str, tags: dict[str, str] | None, aws_compliant: bool
) -> None:
    assert compliant(fixture(fixture_name), tags) is aws_compliant


CONFIG_SPACES = {"tag1Key": "Env", "tag1Value": "prod, dev"}
CONFIG_TWICE = {"tag1Key": "Env", "tag1Value": "prod,dev", "tag2Key": "Env", "tag2Value": "dev,test"}

CONFIG_CASES = [
    # aws-cli put-config-rule example: CostCenter and Owner, any value.
    ("config_put_config_rule_required_tags.json", {"CostCenter": "x", "Owner": "y"}, True),
    ("config_put_config_rule_required_tags.json", {"CostCenter": "", "Owner": ""}, True),
    ("config_put_config_rule_required_tags.json", {"CostCenter": " ", "Owner": "y"}, True),
    ("config_put_config_rule_required_tags.json", {"CostCenter": "x"}, False),
    ("config_put_config_rule_required_tags.json", None, False),
    ("config_put_config_rule_required_tags.json", {"costcenter": "x", "Owner": "y"}, False),
    ("config_put_config_rule_required_tags.json", {"aws:createdBy": "x", "Owner": "y"}, False),
    # Values: exact, case sensitive, and '*' is an ordinary character.
    ("config_parameters_with_values.json", {"Environment": "prod", "Code": "B", "Owner": "o"}, True),
    ("config_parameters_with_values.json", {"Environment": "Prod", "Code": "B", "Owner": "o"}, False),
    ("config_parameters_with_values.json", {"Environment": "prod", "Code": "A*", "Owner": "o"}, True),
    ("config_parameters_with_values.json", {"Environment": "prod", "Code": "A1", "Owner": "o"}, False),
    ("config_parameters_with_values.json", {"Environment": "prod", "Code": "A", "Owner": "o"}, False),
    ("config_parameters_with_values.json", {"Environment": "", "Code": "B", "Owner": "o"}, False),
    ("config_parameters_with_values.json", {"Environment": "dev", "Code": "B", "Owner": ""}, True),
    (
        "config_parameters_with_values.json",
        {"Environment": "dev", "Code": "B", "Owner": "o", "Extra": "x"},
        True,
    ),
    (CONFIG_SPACES, {"Env": " dev"}, True),
    (CONFIG_SPACES, {"Env": "dev"}, False),
    (CONFIG_TWICE, {"Env": "dev"}, True),
    (CONFIG_TWICE, {"Env": "prod"}, False),
]


@pytest.mark.parametrize(("source", "tags", "aws_compliant"), CONFIG_CASES)
def test_config_verdicts_match_aws(
    source: str | dict[str, str], tags: dict[str, str] | None, aws_compliant: bool
) -> None:
    doc = fixture(source) if isinstance(source, str) else source
    assert compliant(doc, tags) is aws_compliant
