"""Fleets as ``aws ec2 describe-instances`` prints them, and the deterministic demo fleet.

A fleet file is the JSON document of the AWS CLI (``{"Reservations": [...]}``). Loading checks the
shape of every instance the evaluator reads, so a bad file gives clear lines, never a traceback.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from workflow.errors import FleetError, Problem
from workflow.evaluator import region_of_zone

# A 100,000-instance dump of the AWS CLI is about 300 MB; refuse what is far beyond that early.
MAX_FLEET_BYTES = 768 * 1024 * 1024
_MAX_PROBLEMS = 20
DEMO_ACCOUNT_ID = "123456789012"
DEMO_REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")


@dataclass(frozen=True)
class FleetInstance:
    """An instance with the account it belongs to (the reservation's ``OwnerId``)."""

    account_id: str | None
    region: str
    instance: dict[str, Any]


def _instance_problems(instance: Any, path: str) -> Iterator[Problem]:
    if not isinstance(instance, dict):
        yield Problem(path, "must be an object (an instance as describe-instances prints it)")
        return
    if not isinstance(instance.get("InstanceId"), str) or not instance["InstanceId"]:
        yield Problem(f"{path}.InstanceId", "missing or not a string")
    state = instance.get("State")
    if not isinstance(state, dict) or not isinstance(state.get("Name"), str):
        yield Problem(f"{path}.State.Name", "missing or not a string")
    zone = (
        (instance.get("Placement") or {}).get("AvailabilityZone")
        if isinstance(instance.get("Placement"), dict)
        else None
    )
    if not isinstance(zone, str) or region_of_zone(zone) is None:
        yield Problem(
            f"{path}.Placement.AvailabilityZone", "missing or not an availability zone like us-east-1a"
        )
    tags = instance.get("Tags", [])
    if not isinstance(tags, list):
        yield Problem(f"{path}.Tags", "must be a list of {Key, Value} objects")
        return
    for index, tag in enumerate(tags):
        if not isinstance(tag, dict) or not isinstance(tag.get("Key"), str):
            yield Problem(f"{path}.Tags[{index}].Key", "missing or not a string")
        elif not isinstance(tag.get("Value", ""), str):
            yield Problem(f"{path}.Tags[{index}].Value", "not a string")


def iter_fleet_document(document: Any, *, source: str | None = None) -> Iterator[FleetInstance]:
    """Check a describe-instances document and yield its instances with account and region.

    >>> doc = {"Reservations": [{"OwnerId": "1", "Instances": [{"InstanceId": "i-1",
    ...        "State": {"Name": "running"}, "Placement": {"AvailabilityZone": "us-east-1a"}}]}]}
    >>> [(i.account_id, i.region) for i in iter_fleet_document(doc)]
    [('1', 'us-east-1')]
    """
    if not isinstance(document, dict) or not isinstance(document.get("Reservations"), list):
        raise FleetError(
            [
                Problem(
                    "$", 'expected the output of "aws ec2 describe-instances": an object with "Reservations"'
                )
            ],
            source=source,
        )
    problems: list[Problem] = []
    instances: list[FleetInstance] = []
    for r_index, reservation in enumerate(document["Reservations"]):
        path = f"$.Reservations[{r_index}]"
        if not isinstance(reservation, dict) or not isinstance(reservation.get("Instances"), list):
            problems.append(Problem(f"{path}.Instances", "missing or not a list"))
            continue
        owner = reservation.get("OwnerId")
        for i_index, instance in enumerate(reservation["Instances"]):
            found = list(_instance_problems(instance, f"{path}.Instances[{i_index}]"))
            if found:
                problems.extend(found)
                continue
            region = region_of_zone(instance["Placement"]["AvailabilityZone"])
            assert region is not None  # checked above
            instances.append(FleetInstance(str(owner) if owner is not None else None, region, instance))
        if len(problems) >= _MAX_PROBLEMS:
            break
    if problems:
        shown = problems[:_MAX_PROBLEMS]
        if len(problems) > _MAX_PROBLEMS:
            shown.append(Problem("$", "more problems not shown; fix these first"))
        raise FleetError(shown, source=source)
    yield from instances


def load_fleet_file(path: str | Path) -> list[FleetInstance]:
    """Read a describe-instances JSON file; any problem raises :class:`FleetError`."""
    source = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_FLEET_BYTES:
            raise FleetError(
                [
                    Problem(
                        "$",
                        f"file is {size // 2**20} MiB, above the {MAX_FLEET_BYTES // 2**20} MiB limit; "
                        "split it by region (aws ec2 describe-instances --region ...)",
                    )
                ],
                source=source,
            )
        with open(path, "rb") as handle:
            # stat() says 0 for a pipe or a device: bound the read itself too.
            raw = handle.read(MAX_FLEET_BYTES + 1)
        if len(raw) > MAX_FLEET_BYTES:
            raise FleetError(
                [
                    Problem(
                        "$",
                        f"more than {MAX_FLEET_BYTES // 2**20} MiB: above the "
                        f"{MAX_FLEET_BYTES // 2**20} MiB limit; split it by region "
                        "(aws ec2 describe-instances --region ...)",
                    )
                ],
                source=source,
            )
        document = json.loads(raw)
    except FleetError:
        raise
    except OSError as err:
        raise FleetError([Problem("$", f"cannot read file: {err.strerror or err}")], source=source) from None
    except json.JSONDecodeError as err:
        raise FleetError(
            [Problem("$", f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}")], source=source
        ) from None
    except (UnicodeDecodeError, RecursionError) as err:
        raise FleetError([Problem("$", f"not a JSON text: {err}")], source=source) from None
    return list(iter_fleet_document(document, source=source))


_TEAMS = ("payments", "search", "platform", "data", "mobile", "growth")
_PEOPLE = ("ana", "bo", "chen", "dana", "eli", "fatima", "gus", "hana", "ivan", "jo")
_ENVIRONMENTS = ("prod", "staging", "dev")
_ENV_TYPOS = ("Production", "prd", "PROD", "stage", "development", "qa ")
_TYPES = ("t3.micro", "t3.large", "m6g.large", "c7g.xlarge", "r6i.2xlarge")


def demo_fleet(
    *, instances_per_region: int = 120, seed: int = 7, now: datetime | None = None
) -> dict[str, Any]:
    """A deterministic describe-instances document with the mistakes real fleets have.

    Missing tags, wrong key capitalisation, blank values, made-up environment names, owners that
    are not e-mail addresses, temporary tags, never-tagged instances, exemptions and fresh launches.

    >>> doc = demo_fleet(instances_per_region=10)
    >>> sum(len(r["Instances"]) for r in doc["Reservations"])
    30
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible demo, not a secret
    current = (now or datetime(2026, 11, 1, 12, 0, tzinfo=UTC)).replace(microsecond=0)
    reservations = []
    counter = 0
    for region in DEMO_REGIONS:
        for _ in range(instances_per_region):
            counter += 1
            team = rng.choice(_TEAMS)
            person = rng.choice(_PEOPLE)
            tags = [
                {"Key": "Name", "Value": f"{team}-{rng.choice(('api', 'worker', 'db', 'batch'))}-{counter}"},
                {"Key": "Owner", "Value": f"{person}@example.com"},
                {"Key": "CostCenter", "Value": f"CC-{rng.randint(1, 40):04d}"},
                {"Key": "Environment", "Value": rng.choice(_ENVIRONMENTS)},
                {"Key": "Team", "Value": team},
            ]
            roll = rng.random()
            if roll < 0.08:
                tags = [t for t in tags if t["Key"] != "Owner"]
            elif roll < 0.14:
                tags = [{"Key": "owner", "Value": t["Value"]} if t["Key"] == "Owner" else t for t in tags]
            elif roll < 0.19:
                tags = [{"Key": "CostCenter", "Value": "  "} if t["Key"] == "CostCenter" else t for t in tags]
            elif roll < 0.26:
                tags = [
                    {"Key": "Environment", "Value": rng.choice(_ENV_TYPOS)}
                    if t["Key"] == "Environment"
                    else t
                    for t in tags
                ]
            elif roll < 0.30:
                tags = [{"Key": "Owner", "Value": person} if t["Key"] == "Owner" else t for t in tags]
            elif roll < 0.33:
                tags.append({"Key": "temp", "Value": "delete-me"})
            elif roll < 0.36:
                tags = []
            elif roll < 0.38:
                tags = [t for t in tags if t["Key"] != "CostCenter"]
                tags.append({"Key": "compliance:exempt", "Value": "true"})
            if rng.random() < 0.3:
                tags.append({"Key": "aws:cloudformation:stack-name", "Value": f"{team}-stack"})
            launched = current - timedelta(
                minutes=rng.choices((5, 30, 600, 4000, 90000), weights=(2, 3, 20, 30, 45))[0]
            )
            state = rng.choices(("running", "stopped", "terminated", "pending"), weights=(80, 14, 4, 2))[0]
            instance: dict[str, Any] = {
                "InstanceId": f"i-{rng.getrandbits(68):017x}",
                "InstanceType": rng.choice(_TYPES),
                "LaunchTime": launched.isoformat(),
                "Placement": {"AvailabilityZone": f"{region}{rng.choice('abc')}"},
                "State": {
                    "Code": {"running": 16, "stopped": 80, "terminated": 48, "pending": 0}[state],
                    "Name": state,
                },
            }
            if tags:
                rng.shuffle(tags)
                instance["Tags"] = tags
            reservations.append(
                {
                    "OwnerId": DEMO_ACCOUNT_ID,
                    "ReservationId": f"r-{rng.getrandbits(68):017x}",
                    "Groups": [],
                    "Instances": [instance],
                }
            )
    return {"Reservations": reservations}
