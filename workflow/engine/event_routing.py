"""EventBridge on the event path, for the local engine: CloudTrail's EC2 events put on the bus of
the account and region they happened in, forwarded by the member stack's rule to the central bus,
routed by the central rules into the events queue, and handed on in batches as the Pipe does.

The buses, rules and their matching are moto's EventBridge, driven in-process through its
backends (moto serves one account per set of credentials, and the member accounts' credentials
here come from :mod:`workflow.engine.member_accounts`); the rules carry
:data:`workflow.events.EVENT_PATTERN`, the pattern the CDK app deploys in both stacks. moto's
bus-to-bus forward restamps the envelope's ``account`` and ``region`` with the receiving bus's:
the planner reads the CloudTrail record's own ``recipientAccountId`` and ``awsRegion``, so the run
still describes the resource where it is. What moto does not do, this module does and records in
:attr:`EventRouting.deliveries` (the IAM check evaluates each hop): the central bus's resource
policy (only accounts of the organisation may put events on it) and the Pipe.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from moto.events.models import EventPattern, events_backends
from moto.sqs.models import sqs_backends

from workflow.engine.member_accounts import MemberAccounts
from workflow.events import EVENT_PATTERN, PIPE_BATCH_SIZE

FORWARDING_RULE: Final = "tagwarden-forward-ec2-api-calls"
DEFAULT_BUS: Final = "default"
_RECEIVE_MAX: Final = 10  # SQS ReceiveMessage returns at most 10 messages a call


@dataclass(frozen=True)
class Delivery:
    """One hop EventBridge made: ``forward`` (a member rule to the central bus, as the member's
    forwarding role) or ``queue`` (a central rule to the events queue)."""

    hop: str
    account: str  # where the rule is
    region: str
    rule: str
    target: str  # the bus or queue ARN


@dataclass
class PutResult:
    queued: int = 0
    unmatched: int = 0  # no rule of that account and region matched (or none is there)
    refused: list[str] = field(default_factory=list)  # accounts the central bus's policy refused


class EventRouting:
    """The event path's buses and rules on moto, for one local deployment.

    ``members``: the organisation; every member account forwards from every region unless
    :meth:`stop_forwarding` says otherwise (a member stack deployed without forwarding, or not at all).
    """

    def __init__(
        self, *, central_account: str, region: str, environment: str, members: MemberAccounts
    ) -> None:
        self.central_account = central_account
        self.region = region
        self.members = members
        # The central stack's names (Settings.name): its bus, its queue and its two rules.
        self.bus_name = f"tagwarden-{environment}-events"
        self.queue_name = f"tagwarden-{environment}-events"
        self.bus_arn = f"arn:aws:events:{region}:{central_account}:event-bus/{self.bus_name}"
        self.queue_arn = f"arn:aws:sqs:{region}:{central_account}:{self.queue_name}"
        self._central_rules = {
            DEFAULT_BUS: f"tagwarden-{environment}-ec2-api-calls",
            self.bus_name: f"tagwarden-{environment}-member-ec2-api-calls",
        }
        self.deliveries: list[Delivery] = []
        self._not_forwarding: set[str] = set()
        self._ready: set[tuple[str, str]] = set()

    # -- set-up --------------------------------------------------------------------------------

    def deploy(self) -> None:
        """The central stack's side: the events queue, its own rule on the default bus, the member
        bus and its rule."""
        sqs_backends[self.central_account][self.region].create_queue(self.queue_name)
        backend = events_backends[self.central_account][self.region]
        backend.create_event_bus(name=self.bus_name, event_source_name=None, tags=[])
        for bus, rule in self._central_rules.items():
            self._put_rule(backend, bus, rule, self.queue_arn)
        self._ready.add((self.central_account, self.region))

    def stop_forwarding(self, account: str) -> None:
        """That account's member stack has no forwarding rule (``forward_events=false``)."""
        self._not_forwarding.add(account)

    def _put_rule(self, backend: Any, bus: str, rule: str, target_arn: str) -> None:
        backend.put_rule(
            rule,
            event_pattern=json.dumps(EVENT_PATTERN),
            event_bus_arn=bus,
            description="Tagwarden (local)",
            role_arn=None,
            scheduled_expression=None,
            state="ENABLED",
            tags=[],
        )
        backend.put_targets(rule, bus, [{"Id": "Target0", "Arn": target_arn}])

    def _member_side(self, account: str, region: str) -> None:
        # The member stack's rule in that account and region, deployed on first use.
        if (account, region) in self._ready:
            return
        self._put_rule(events_backends[account][region], DEFAULT_BUS, FORWARDING_RULE, self.bus_arn)
        self._ready.add((account, region))

    # -- events in ------------------------------------------------------------------------------

    def put(self, events: list[Mapping[str, Any]]) -> PutResult:
        """Each event as CloudTrail puts it on its account and region's default bus."""
        result = PutResult()
        queue = sqs_backends[self.central_account][self.region].get_queue(self.queue_name)
        for event in events:
            account, region = str(event.get("account") or ""), str(event.get("region") or "")
            before = len(queue.messages)
            if (account, region) == (self.central_account, self.region):
                self._publish(account, region, event)
                hops = [Delivery("queue", account, region, self._central_rules[DEFAULT_BUS], self.queue_arn)]
            elif self.members.role_arn(account) in self.members.roles and account not in self._not_forwarding:
                if not _matches(event):
                    result.unmatched += 1
                    continue
                if account not in self.members.accounts:
                    # The central bus's policy admits the organisation's accounts only.
                    result.refused.append(account)
                    continue
                self._member_side(account, region)
                self._publish(account, region, event)
                hops = [
                    Delivery("forward", account, region, FORWARDING_RULE, self.bus_arn),
                    Delivery(
                        "queue",
                        self.central_account,
                        self.region,
                        self._central_rules[self.bus_name],
                        self.queue_arn,
                    ),
                ]
            else:
                result.unmatched += 1  # no Tagwarden rule where it happened
                continue
            queued = len(queue.messages) - before
            if queued:
                self.deliveries += hops
                result.queued += queued
            else:
                result.unmatched += 1
        return result

    @staticmethod
    def _publish(account: str, region: str, event: Mapping[str, Any]) -> None:
        events_backends[account][region].put_events(
            [
                {
                    "Source": event.get("source"),
                    "DetailType": event.get("detail-type"),
                    "Detail": json.dumps(event.get("detail")),
                    "Resources": list(event.get("resources") or []),
                    "EventBusName": DEFAULT_BUS,
                }
            ]
        )

    # -- the Pipe -------------------------------------------------------------------------------

    def drain(self, sqs: Any, start_batch: Callable[[list[dict[str, Any]]], str]) -> list[str]:
        """Hand the queued events on as the Pipe does: batches of up to :data:`PIPE_BATCH_SIZE`
        SQS records, each stored by the enrichment and started as one event run (``start_batch``),
        then deleted from the queue. Returns the executions started."""
        url = sqs.get_queue_url(QueueName=self.queue_name)["QueueUrl"]
        started: list[str] = []
        while True:
            batch: list[dict[str, Any]] = []
            while len(batch) < PIPE_BATCH_SIZE:
                wanted = min(_RECEIVE_MAX, PIPE_BATCH_SIZE - len(batch))
                messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=wanted).get("Messages", [])
                if not messages:
                    break
                batch += messages
            if not batch:
                return started
            records = [
                {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"]}
                for m in batch
            ]
            started.append(start_batch(records))
            for start in range(0, len(batch), _RECEIVE_MAX):
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                        for n, m in enumerate(batch[start : start + _RECEIVE_MAX])
                    ],
                )


def _matches(event: Mapping[str, Any]) -> bool:
    """Whether the member stack's rule takes the event (moto's matcher, the deployed pattern)."""
    return EventPattern.load(json.dumps(EVENT_PATTERN)).matches_event(dict(event))  # type: ignore[arg-type]
