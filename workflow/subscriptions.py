"""Owner digest subscriptions: an SNS subscription whose filter policy lets one owner's digests
through (or every digest), and nothing else of the compliance topic.

>>> owner_filter_policy(" Ana@Example.com ")
{'kind': ['owner-digest'], 'owner': ['ana@example.com']}
>>> owner_filter_policy(None)
{'kind': ['owner-digest']}
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from workflow.aws import aws_call
from workflow.digests import DIGEST_KIND, KIND_ATTRIBUTE, OWNER_ATTRIBUTE, normalise_owner
from workflow.errors import InvalidInput, Problem

_EMAIL: Final = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")


def owner_filter_policy(owner: str | None) -> dict[str, list[str]]:
    """The filter policy: digests only, and only ``owner``'s (normalised as digests name owners)."""
    policy = {KIND_ATTRIBUTE: [DIGEST_KIND]}
    if owner is not None:
        policy[OWNER_ATTRIBUTE] = [normalise_owner(owner)]
    return policy


def subscribe_owner(
    sns: Any, topic_arn: str, endpoint: str, *, owner: str | None = None, protocol: str = "email"
) -> str:
    """Subscribe ``endpoint`` to ``owner``'s digests (every digest without ``owner``); returns the
    subscription ARN (``pending confirmation`` for an email address until its owner confirms)."""
    if protocol == "email" and not _EMAIL.match(endpoint):
        raise InvalidInput([Problem("EMAIL", f"{endpoint!r} is not an email address")])
    with aws_call("SNS Subscribe"):
        response = sns.subscribe(
            TopicArn=topic_arn,
            Protocol=protocol,
            Endpoint=endpoint,
            Attributes={"FilterPolicy": json.dumps(owner_filter_policy(owner))},
            ReturnSubscriptionArn=True,
        )
    return str(response["SubscriptionArn"])
