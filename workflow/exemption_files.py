"""Exemptions kept in the report bucket (``exemptions/*.json``) rather than in the policy, so an
approver need not edit the policy: ``tagwarden exempt`` writes one file per exemption.

A file is one exemption as the policy language has it (``tag``, ``instance_ids`` or
``resource_ids``), and must also say who approved it, why, and until when: ``id``, ``expires``,
``reason`` and ``approved_by`` are required (:data:`FILE_SCHEMA`, derived from the policy
schema's exemption). Each run (scheduled or event) reads them when it starts and adds them to
the run's copy of the policy; its ``policy_sha256`` stays the policy's own, so drift still
compares runs of one policy. A file that cannot be used (not JSON, not valid, an ``id`` the policy
already has, beyond the room left) is left out and named in the run's summary and notification:
loud, never a failed scan.

>>> doc, key = new_exemption_file("i-0abc1234", days=30, reason="migration", approved_by="ana",
...                               today=date(2026, 12, 1))
>>> key, doc["expires"], validate_exemption_file(doc)
('exemptions/i-0abc1234-until-2026-12-31.json', '2026-12-31', [])
"""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta
from functools import cache
from typing import Any, Final

from jsonschema import Draft202012Validator

from workflow.aws import aws_call
from workflow.errors import Problem
from workflow.policy.document import policy_schema, schema_problem, validate_policy
from workflow.storage import put_json

EXEMPTIONS_PREFIX: Final = "exemptions/"
# The policy language's limit for a policy's exemptions, which the run's copy must keep.
MAX_EXEMPTIONS: Final = 100
MAX_FILE_BYTES: Final = 256 * 1024
MAX_REPORTED: Final = 20  # refused files named in the summary
REQUIRED: Final = ("id", "expires", "reason", "approved_by")


@cache
def file_schema() -> dict[str, Any]:
    """The JSON Schema of an exemption file: the policy's exemption, with :data:`REQUIRED`."""
    policy = policy_schema()
    schema: dict[str, Any] = copy.deepcopy(policy["$defs"]["exemption"])
    schema["required"] = list(REQUIRED)
    schema["$defs"] = policy["$defs"]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Tagwarden exemption file (exemptions/*.json in the report bucket)"
    return schema


def validate_exemption_file(document: Any) -> list[Problem]:
    """The first problem of an exemption file (at most one line): :func:`file_schema`'s, then
    what the policy validator finds in it (an impossible date)."""
    errors = sorted(Draft202012Validator(file_schema()).iter_errors(document), key=lambda e: list(e.path))
    if errors:
        return [schema_problem(errors[0])]
    wrapped = {"version": 1, "name": "exemption-file", "rules": [{"key": "x"}], "exemptions": [document]}
    return [Problem(p.path.replace("$.exemptions[0]", "$", 1), p.message) for p in validate_policy(wrapped)][
        :1
    ]


def read_exemption_files(s3: Any, bucket: str) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The usable exemption files of the bucket (in key order), and the refused ones with why."""
    usable: list[dict[str, Any]] = []
    refused: list[dict[str, str]] = []
    with aws_call(f"ListObjectsV2 s3://{bucket}/{EXEMPTIONS_PREFIX}"):
        pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=EXEMPTIONS_PREFIX))
    for item in (i for page in pages for i in page.get("Contents", [])):
        key = str(item["Key"])
        if not key.endswith(".json"):
            continue
        if int(item.get("Size", 0)) > MAX_FILE_BYTES:
            refused.append({"key": key, "problem": f"larger than {MAX_FILE_BYTES // 1024} KiB"})
            continue
        with aws_call(f"GetObject s3://{bucket}/{key}"):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        try:
            document = json.loads(body)
        except ValueError as err:
            refused.append({"key": key, "problem": f"not JSON: {err}"})
            continue
        problems = validate_exemption_file(document)
        if problems:
            refused.append({"key": key, "problem": str(problems[0])})
            continue
        usable.append({**document, "_key": key})
    return usable, refused


def with_exemption_files(
    policy: dict[str, Any], files: list[dict[str, Any]], refused: list[dict[str, str]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's copy of the policy with the files' exemptions after its own, and what the run
    records about them (``loaded`` ids, ``refused`` files with why, at most :data:`MAX_REPORTED`)."""
    exemptions = list(policy.get("exemptions", []))
    taken = {e.get("id") for e in exemptions if e.get("id")}
    loaded: list[str] = []
    refused = list(refused)
    for document in files:
        key = document["_key"]
        exemption = {k: v for k, v in document.items() if k != "_key"}
        if exemption["id"] in taken:
            refused.append(
                {"key": key, "problem": f"id {exemption['id']!r} is already an exemption of the run"}
            )
        elif len(exemptions) >= MAX_EXEMPTIONS:
            refused.append(
                {"key": key, "problem": f"the policy and the bucket hold at most {MAX_EXEMPTIONS}"}
            )
        else:
            exemptions.append(exemption)
            taken.add(exemption["id"])
            loaded.append(exemption["id"])
    merged = {**policy, "exemptions": exemptions} if exemptions else dict(policy)
    record = {"loaded": loaded, "refused": refused[:MAX_REPORTED], "refused_count": len(refused)}
    return merged, record


def new_exemption_file(
    resource_id: str, *, days: int, reason: str, approved_by: str, today: date
) -> tuple[dict[str, Any], str]:
    """An exemption file for one resource for ``days`` days (through ``today + days``), and its key."""
    expires = (today + timedelta(days=days)).isoformat()
    name = f"{resource_id}-until-{expires}"
    document = {
        "id": name,
        "resource_ids": [resource_id],
        "expires": expires,
        "reason": reason,
        "approved_by": approved_by,
    }
    return document, f"{EXEMPTIONS_PREFIX}{name}.json"


def stage_run_policy(s3: Any, bucket: str, key: str, policy: dict[str, Any]) -> dict[str, Any] | None:
    """Store the run's copy of the policy with the bucket's exemption files; what the run records
    about them, or None when the bucket has none."""
    files, refused = read_exemption_files(s3, bucket)
    merged, record = with_exemption_files(policy, files, refused)
    put_json(s3, bucket, key, merged)
    return record if files or refused else None
