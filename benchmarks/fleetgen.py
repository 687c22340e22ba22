"""A deterministic fleet of describe-instances shaped EC2 instances, for benchmarks.

The same ``(count, seed)`` always gives the same instances, on any machine and Python version
(only :class:`random.Random` with an integer seed is used), so two tools, or two runs, see the
very same data.

The fleet looks like a real account that mostly follows its tagging conventions:

* 0 to 50 tags per instance, most carrying 4 to 12; a few have none (boto3 then omits ``Tags``);
* the six house tags (:data:`HOUSE_KEYS`) are usually there, but sometimes missing, spelled
  with the wrong case (``owner``, ``COSTCENTER``; now and then beside the right spelling), blank
  (``""``, ``"  "``), mistyped (``prdo``, ``CC-12a4``, ``ana.kim@exmaple.com``), in the wrong case
  (``Prod``, ``cc-0042``), padded (``"prod "``) or pasted with a trailing newline (``"prod\\n"``);
* ``aws:`` tags (CloudFormation, Auto Scaling, launch templates) that AWS adds itself;
* every instance state, terminated and shutting-down ones included.

>>> fleet = generate_fleet(3, seed=7)
>>> fleet == generate_fleet(3, seed=7), len({i["InstanceId"] for i in fleet})
(True, 3)
>>> sorted(fleet[0])[:4]
['AmiLaunchIndex', 'Architecture', 'ImageId', 'InstanceId']
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

MAX_TAGS: Final = 50
DEFAULT_SEED: Final = 20261101

# The account's conventions (what the benchmark policy enforces).
_FIRST_NAMES: Final = (
    "ana", "bruno", "chen", "dmitri", "eve", "farah", "gustavo", "hana", "ivan", "jo", "kwame", "lena",
    "mateo", "nour", "oskar", "priya", "quinn", "rosa", "sam", "tariq", "uma", "viktor", "wen", "yara",
)  # fmt: skip
_LAST_NAMES: Final = (
    "silva", "li", "novak", "okafor", "garcia", "kim", "muller", "haddad", "rossi", "tanaka", "dubois",
    "costa", "nguyen", "smith", "khan", "berg",
)  # fmt: skip
# A few hundred people and team mailboxes, a few hundred cost centers: the cardinalities of a
# mid-sized organisation, which is what makes tag values repeat across a fleet.
OWNERS: Final = (
    *(f"{first}.{last}@example.com" for first in _FIRST_NAMES for last in _LAST_NAMES),
    "platform-team@example.com", "data-eng@example.com", "sre_oncall@example.com", "payments@example.com",
)  # fmt: skip
COST_CENTERS: Final = tuple(f"CC-{(n * 7919) % 10_000:04d}" for n in range(1, 241))
TEAMS: Final = (
    "platform", "payments", "search", "checkout", "data", "ml", "mobile", "identity", "growth",
    "security", "sre", "analytics",
)  # fmt: skip
APPLICATIONS: Final = (
    "web", "api-gateway", "orders", "billing", "catalog", "recommender", "etl-nightly", "kafka",
    "postgres-main", "redis-cache", "auth", "notifications", "reporting", "ci-runner", "bastion",
    "feature-store", "search-indexer", "image-resizer",
)  # fmt: skip
ENVIRONMENTS: Final = ("prod", "staging", "dev", "sandbox")
CLASSIFICATIONS: Final = ("public", "internal", "confidential", "restricted")
HOUSE_KEYS: Final = ("Owner", "CostCenter", "Application", "Environment", "DataClassification", "Team")

_STATES: Final = (
    ("running", 16, 700), ("stopped", 80, 200), ("pending", 0, 20), ("stopping", 64, 20),
    ("shutting-down", 32, 20), ("terminated", 48, 40),
)  # fmt: skip
_ZONES: Final = (
    "us-east-1a", "us-east-1b", "us-east-1c", "us-west-2a", "us-west-2b", "eu-west-1a", "eu-west-1b",
    "eu-central-1a", "ap-southeast-2a", "us-west-2-lax-1a",
)  # fmt: skip
_TYPES: Final = (
    "t3.micro", "t3.medium", "m6i.large", "m6i.xlarge", "c6g.large", "r6i.2xlarge", "m7g.medium", "g5.xlarge",
)  # fmt: skip
_FILLER_KEYS: Final = (
    "Name", "Version", "Backup", "PatchGroup", "CreatedBy", "ManagedBy", "Terraform", "Component", "Role",
    "Tier", "Service", "Repository", "Ticket", "Schedule", "Compliance", "kubernetes.io/cluster/prod",
    "k8s.io/role/node", "eks:nodegroup-name", "karpenter.sh/nodepool", "Product", "Region", "Contact",
    "BuildId", "GitSha", "Stack", "LaunchedBy", "AutoStop", "SLA", "Runbook", "Purpose",
)  # fmt: skip
_AWS_TAG_SETS: Final = (
    (0.30, ("aws:cloudformation:stack-name", "aws:cloudformation:stack-id", "aws:cloudformation:logical-id")),
    (0.20, ("aws:autoscaling:groupName",)),
    (0.10, ("aws:ec2launchtemplate:id", "aws:ec2launchtemplate:version")),
    (0.03, ("aws:ec2:fleet-id",)),
)
_LAUNCH_EPOCH: Final = datetime(2026, 11, 1, tzinfo=UTC)

# Probabilities per house tag: left off, key in the wrong case, wrong-case key beside the right
# one, and a value that breaks the conventions.
P_HOUSE_MISSING: Final = 0.02
P_KEY_WRONG_CASE: Final = 0.015
P_KEY_DUPLICATE_CASE: Final = 0.01
P_BAD_VALUE: Final = 0.035


def _typo(rng: random.Random, value: str) -> str:
    """One keyboard slip: two letters swapped, one dropped, one doubled or one replaced."""
    if len(value) < 2:
        return value + "x"
    i = rng.randrange(len(value) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return value[:i] + value[i + 1] + value[i] + value[i + 2 :]
    if kind == 1:
        return value[:i] + value[i + 1 :]
    if kind == 2:
        return value[: i + 1] + value[i] + value[i + 1 :]
    return value[:i] + rng.choice("aeiousnm0123-._") + value[i + 1 :]


def _bad_value(rng: random.Random, good: str) -> str:
    """A value that a careless person, script or console paste would set instead of ``good``."""
    roll = rng.random()
    if roll < 0.35:
        return _typo(rng, good)
    if roll < 0.55:
        return good.upper() if rng.random() < 0.3 else good[:1].upper() + good[1:]
    if roll < 0.70:
        return rng.choice(("", " ", "  ", "\t"))
    if roll < 0.82:
        return rng.choice((good + " ", " " + good, good + "  "))
    if roll < 0.88:
        return good + "\n"
    return rng.choice(("TBD", "n/a", "none", "unknown", "-", "?", "changeme", "todo"))


def _wrong_case(rng: random.Random, key: str) -> str:
    variants = {key.lower(), key.upper(), key[:1].lower() + key[1:], key[:1] + key[1:].lower()} - {key}
    return rng.choice(sorted(variants))


def _house_values(rng: random.Random) -> dict[str, str]:
    app = rng.choice(APPLICATIONS)
    return {
        "Owner": rng.choice(OWNERS),
        "CostCenter": rng.choice(COST_CENTERS),
        "Application": app,
        "Environment": rng.choices(ENVIRONMENTS, weights=(50, 20, 22, 8))[0],
        "DataClassification": rng.choices(CLASSIFICATIONS, weights=(10, 55, 25, 10))[0],
        "Team": rng.choice(TEAMS),
    }


def _tag_count(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.03:
        return 0
    if roll < 0.10:
        return rng.randint(1, 3)
    if roll < 0.85:
        return rng.choices(range(4, 13), weights=(1, 2, 4, 5, 5, 4, 3, 2, 2))[0]
    if roll < 0.96:
        return rng.randint(13, 25)
    return rng.randint(26, MAX_TAGS)


def _filler_value(rng: random.Random, key: str, index: int) -> str:
    if key == "Name":
        return f"{rng.choice(APPLICATIONS)}-{rng.choice(ENVIRONMENTS)}-{index % 100:02d}"
    return rng.choice(
        (
            "true", "false", "yes", "1", "v2", "terraform", "nightly", "business-hours",
            f"JIRA-{rng.randrange(1, 99_999)}", f"{rng.getrandbits(40):010x}",
        )
    )  # fmt: skip


def _tags(rng: random.Random, index: int) -> list[dict[str, str]]:
    target = _tag_count(rng)
    house: list[tuple[str, str]] = []
    for key, good in _house_values(rng).items():
        if rng.random() < P_HOUSE_MISSING:
            continue
        value = _bad_value(rng, good) if rng.random() < P_BAD_VALUE else good
        roll = rng.random()
        if roll < P_KEY_WRONG_CASE:
            house.append((_wrong_case(rng, key), value))
        elif roll < P_KEY_WRONG_CASE + P_KEY_DUPLICATE_CASE:
            house.append((key, value))
            house.append((_wrong_case(rng, key), rng.choice((good, _bad_value(rng, good)))))
        else:
            house.append((key, value))
    aws: list[tuple[str, str]] = []
    for probability, keys in _AWS_TAG_SETS:
        if rng.random() < probability:
            aws.extend((key, f"{key.rsplit(':', 1)[-1]}-{rng.getrandbits(32):08x}") for key in keys)
    if len(house) >= target:
        # An instance with very few tags: someone set a handful by hand and stopped there.
        wanted = [house[i] for i in sorted(rng.sample(range(len(house)), target))]
    else:
        wanted = house + aws[: target - len(house)]
    need = target - len(wanted)
    if need > 0:
        taken = {key for key, _ in wanted}
        free = [key for key in _FILLER_KEYS if key not in taken]
        fillers = rng.sample(free, min(need, len(free)))
        fillers += [f"custom:label-{serial:02d}" for serial in range(1, need - len(fillers) + 1)]
        wanted.extend((key, _filler_value(rng, key, index)) for key in fillers)
    rng.shuffle(wanted)
    return [{"Key": key, "Value": value} for key, value in wanted]


def _instance(rng: random.Random, index: int, state_picker: Callable[[], tuple[str, int]]) -> dict[str, Any]:
    # Multiplying by an odd constant modulo 2**64 is a bijection: unique, random-looking ids.
    instance_id = f"i-0{(index * 0x9E3779B97F4A7C15) % 2**64:016x}"
    state, code = state_picker()
    zone = rng.choice(_ZONES)
    instance_type = rng.choice(_TYPES)
    instance: dict[str, Any] = {
        "AmiLaunchIndex": 0,
        "ImageId": f"ami-0{rng.getrandbits(64):016x}",
        "InstanceId": instance_id,
        "InstanceType": instance_type,
        "KeyName": rng.choice(("deploy", "ops", "legacy-2019")),
        "LaunchTime": _LAUNCH_EPOCH - timedelta(seconds=rng.randrange(3 * 365 * 86_400)),
        "Monitoring": {"State": "disabled"},
        "Placement": {"AvailabilityZone": zone, "GroupName": "", "Tenancy": "default"},
        "PrivateIpAddress": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        "State": {"Code": code, "Name": state},
        "SubnetId": f"subnet-0{rng.getrandbits(64):016x}",
        "VpcId": f"vpc-{rng.getrandbits(32):08x}",
        "Architecture": "arm64" if instance_type[2:3] == "g" else "x86_64",
    }
    tags = _tags(rng, index)
    if tags:
        instance["Tags"] = tags
    elif rng.random() < 0.2:
        instance["Tags"] = []  # rare, but describe-instances has been seen to return it
    return instance


def iter_fleet(count: int, seed: int = DEFAULT_SEED) -> Iterator[dict[str, Any]]:
    """The instances of :func:`generate_fleet`, one at a time (a 100,000-instance dump is written
    without holding the fleet)."""
    rng = random.Random(seed)
    states = [(name, code) for name, code, _ in _STATES]
    weights = [weight for _, _, weight in _STATES]

    def pick_state() -> tuple[str, int]:
        return rng.choices(states, weights=weights)[0]

    for index in range(count):
        yield _instance(rng, index, pick_state)


def generate_fleet(count: int, seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """``count`` instances as boto3's ``describe_instances`` returns them (``LaunchTime`` a datetime)."""
    return list(iter_fleet(count, seed))


# -- describe-instances dumps, as the AWS CLI writes them ---------------------------------------------

ACCOUNTS: Final = ("111122223333", "444455556666", "777788889999")
_AMIS: Final = tuple(f"ami-0{(n * 0x2545F4914F6CDD1D) % 2**64:016x}" for n in range(1, 25))
_SECURITY_GROUPS: Final = tuple(
    (name, f"sg-0{(n * 0x5851F42D4C957F2D) % 2**64:016x}")
    for n, name in enumerate(("default", "web", "internal", "bastion", "db", "monitoring", "eks-node"), 1)
)
_ROLES: Final = ("app-server", "batch-worker", "eks-node", "ssm-managed", "ci-runner")


def _iso(moment: datetime) -> str:
    # The AWS CLI prints timestamps with an explicit UTC offset.
    return moment.isoformat()


def full_instance(rng: random.Random, base: dict[str, Any], account: str) -> dict[str, Any]:
    """``base`` (from :func:`iter_fleet`) with the other fields of the describe-instances sample
    (``shared/fixtures/describe-instances.sample.json``) and what a VPC instance adds to them: block
    devices, a network interface (two now and then), security groups, an instance profile, CPU and
    metadata options. Keys in the order the CLI prints them.

    Left out: the option blocks newer CLI versions add (``CapacityReservationSpecification``,
    ``HibernationOptions``, ``EnclaveOptions``, ``MaintenanceOptions``, ``PrivateDnsNameOptions``,
    boot mode and usage operation), about 1.2 KB per instance at the CLI's indentation.

    >>> base = generate_fleet(1, seed=3)[0]
    >>> full = full_instance(random.Random(1), base, ACCOUNTS[0])
    >>> full["InstanceId"] == base["InstanceId"], full["NetworkInterfaces"][0]["OwnerId"]
    (True, '111122223333')
    """
    zone = base["Placement"]["AvailabilityZone"]
    region = zone[:-1]
    state = base["State"]["Name"]
    launched: datetime = base["LaunchTime"]
    ip = base["PrivateIpAddress"]
    private_dns = f"ip-{ip.replace('.', '-')}.{region}.compute.internal"
    public = state in {"running", "pending", "stopping"} and rng.random() < 0.3
    public_ip = f"{rng.randrange(3, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    public_dns = f"ec2-{public_ip.replace('.', '-')}.{region}.compute.amazonaws.com"
    groups = [
        {"GroupName": name, "GroupId": group_id}
        for name, group_id in rng.sample(_SECURITY_GROUPS, rng.choice((1, 1, 2, 2, 3)))
    ]
    volumes = [
        {
            "DeviceName": "/dev/xvda" if n == 0 else f"/dev/sd{'fghijk'[n - 1]}",
            "Ebs": {
                "AttachTime": _iso(launched + timedelta(seconds=rng.randrange(1, 4))),
                "DeleteOnTermination": n == 0 or rng.random() < 0.5,
                "Status": "attached",
                "VolumeId": f"vol-0{rng.getrandbits(64):016x}",
            },
        }
        for n in range(rng.choices((1, 2, 3), weights=(60, 30, 10))[0])
    ]
    interfaces = []
    for n in range(1 if rng.random() < 0.9 else 2):
        eni_ip = ip if n == 0 else f"{ip.rsplit('.', 1)[0]}.{rng.randrange(1, 255)}"
        eni_dns = f"ip-{eni_ip.replace('.', '-')}.{region}.compute.internal"
        association = (
            {"Association": {"IpOwnerId": "amazon", "PublicDnsName": public_dns, "PublicIp": public_ip}}
            if public and n == 0
            else {}
        )  # fmt: skip
        interfaces.append(
            {
                **association,
                "Attachment": {
                    "AttachTime": _iso(launched),
                    "AttachmentId": f"eni-attach-0{rng.getrandbits(64):016x}",
                    "DeleteOnTermination": n == 0,
                    "DeviceIndex": n,
                    "Status": "attached",
                    "NetworkCardIndex": 0,
                },
                "Description": "" if n == 0 else "secondary",
                "Groups": groups,
                "Ipv6Addresses": [],
                "MacAddress": ":".join(f"{rng.randrange(256):02x}" for _ in range(6)),
                "NetworkInterfaceId": f"eni-0{rng.getrandbits(64):016x}",
                "OwnerId": account,
                "PrivateDnsName": eni_dns,
                "PrivateIpAddress": eni_ip,
                "PrivateIpAddresses": [
                    {**association, "Primary": True, "PrivateDnsName": eni_dns, "PrivateIpAddress": eni_ip}
                ],
                "SourceDestCheck": True,
                "Status": "in-use",
                "SubnetId": base["SubnetId"],
                "VpcId": base["VpcId"],
                "InterfaceType": "interface",
            }
        )
    instance: dict[str, Any] = {
        "AmiLaunchIndex": base["AmiLaunchIndex"],
        "ImageId": rng.choice(_AMIS),
        "InstanceId": base["InstanceId"],
        "InstanceType": base["InstanceType"],
        "KeyName": base["KeyName"],
        "LaunchTime": _iso(launched),
        "Monitoring": base["Monitoring"],
        "Placement": base["Placement"],
        "PrivateDnsName": private_dns,
        "PrivateIpAddress": ip,
        "ProductCodes": [],
        "PublicDnsName": public_dns if public else "",
        **({"PublicIpAddress": public_ip} if public else {}),
        "State": base["State"],
        "StateTransitionReason": ""
        if state in {"running", "pending"}
        else f"User initiated ({_iso(launched + timedelta(days=rng.randrange(1, 90)))[:19]} GMT)",
        "SubnetId": base["SubnetId"],
        "VpcId": base["VpcId"],
        "Architecture": base["Architecture"],
        "BlockDeviceMappings": volumes,
        "ClientToken": f"{rng.getrandbits(128):032x}" if rng.random() < 0.6 else "",
        "EbsOptimized": rng.random() < 0.7,
        "EnaSupport": True,
        "Hypervisor": "xen",
        **(
            {
                "IamInstanceProfile": {
                    "Arn": f"arn:aws:iam::{account}:instance-profile/{rng.choice(_ROLES)}",
                    "Id": f"AIPA{rng.getrandbits(80):020X}",
                }
            }
            if rng.random() < 0.7
            else {}
        ),
        "NetworkInterfaces": interfaces,
        "RootDeviceName": "/dev/xvda",
        "RootDeviceType": "ebs",
        "SecurityGroups": groups,
        "SourceDestCheck": True,
        **({"StateReason": {"Code": "Client.UserInitiatedShutdown", "Message":
            "Client.UserInitiatedShutdown: User initiated shutdown"}} if state in {"stopped", "terminated"}
           else {}),
        **({"Tags": base["Tags"]} if "Tags" in base else {}),
        "VirtualizationType": "hvm",
        "CpuOptions": {"CoreCount": rng.choice((1, 2, 4)), "ThreadsPerCore": 2},
        "MetadataOptions": {
            "State": "applied",
            "HttpTokens": "required" if rng.random() < 0.8 else "optional",
            "HttpPutResponseHopLimit": 2,
            "HttpEndpoint": "enabled",
        },
    }  # fmt: skip
    return instance


def minimal_instance(base: dict[str, Any]) -> dict[str, Any]:
    """Only what the evaluator reads: id, state, placement, launch time, type and tags.

    >>> sorted(minimal_instance(generate_fleet(1, seed=3)[0]))[:3]
    ['InstanceId', 'InstanceType', 'LaunchTime']
    """
    instance = {
        "InstanceId": base["InstanceId"],
        "InstanceType": base["InstanceType"],
        "LaunchTime": _iso(base["LaunchTime"]),
        "Placement": {"AvailabilityZone": base["Placement"]["AvailabilityZone"]},
        "State": base["State"],
    }
    if "Tags" in base:
        instance["Tags"] = base["Tags"]
    return instance


def iter_reservations(
    count: int, seed: int = DEFAULT_SEED, *, fidelity: str = "full"
) -> Iterator[dict[str, Any]]:
    """Reservations of 1 to 4 instances (most of one: Auto Scaling launches one at a time) holding
    the :func:`iter_fleet` instances, each reservation in one of :data:`ACCOUNTS`.

    ``fidelity``: ``"full"`` (:func:`full_instance`) or ``"minimal"`` (:func:`minimal_instance`).

    >>> [len(r["Instances"]) for r in iter_reservations(6, seed=1, fidelity="minimal")]
    [4, 1, 1]
    """
    if fidelity not in {"full", "minimal"}:
        raise ValueError("fidelity is 'full' or 'minimal'")
    # A generator of its own, so the instances are exactly those of generate_fleet(count, seed).
    rng = random.Random(seed + 1)
    instances = iter_fleet(count, seed)
    left = count
    while left:
        size = min(left, rng.choices((1, 2, 3, 4), weights=(70, 15, 8, 7))[0])
        left -= size
        account = rng.choice(ACCOUNTS)
        batch = [next(instances) for _ in range(size)]
        yield {
            "Groups": [],
            "Instances": [
                full_instance(rng, base, account) if fidelity == "full" else minimal_instance(base)
                for base in batch
            ],
            "OwnerId": account,
            "ReservationId": f"r-0{rng.getrandbits(64):016x}",
        }


def write_describe_instances(
    path: Path, count: int, seed: int = DEFAULT_SEED, *, fidelity: str = "full"
) -> int:
    """Write ``{"Reservations": [...]}`` as ``aws ec2 describe-instances`` prints it (``indent=4``,
    non-ASCII kept), one reservation at a time; returns the file size in bytes.

    The text is exactly ``json.dumps(document, indent=4, ensure_ascii=False)`` plus a newline.

    >>> import json, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     target = Path(folder) / "dump.json"
    ...     size = write_describe_instances(target, 5, seed=2)
    ...     document = {"Reservations": list(iter_reservations(5, seed=2))}
    ...     target.read_text() == json.dumps(document, indent=4, ensure_ascii=False) + "\\n"
    True
    """
    with path.open("w", encoding="utf-8") as out:
        out.write('{\n    "Reservations": [')
        for n, reservation in enumerate(iter_reservations(count, seed, fidelity=fidelity)):
            text = json.dumps(reservation, indent=4, ensure_ascii=False)
            out.write(("," if n else "") + "\n        " + text.replace("\n", "\n        "))
        out.write("\n    ]\n}\n" if count else "]\n}\n")
    return path.stat().st_size


def describe_fleet(fleet: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts that show what a fleet is made of (for the benchmark report)."""
    counts = [len(i.get("Tags") or ()) for i in fleet]
    keys = [t["Key"] for i in fleet for t in i.get("Tags") or ()]
    house = {k.casefold() for k in HOUSE_KEYS}
    n = max(len(fleet), 1)
    return {
        "instances": len(fleet),
        "tags_mean": sum(counts) / n,
        "tags_max": max(counts, default=0),
        "share_0_tags": sum(c == 0 for c in counts) / n,
        "share_4_to_12_tags": sum(4 <= c <= 12 for c in counts) / n,
        "share_over_25_tags": sum(c > 25 for c in counts) / n,
        "aws_tags": sum(k.startswith("aws:") for k in keys),
        "wrong_case_house_keys": sum(k not in HOUSE_KEYS and k.casefold() in house for k in keys),
        "states": dict(Counter(i["State"]["Name"] for i in fleet).most_common()),
    }


if __name__ == "__main__":
    import sys

    if len(sys.argv) > 2 and sys.argv[1] == "--dump":
        # fleetgen.py --dump OUT.json N [minimal]: a describe-instances file of N instances.
        fidelity = sys.argv[4] if len(sys.argv) > 4 else "full"
        size = write_describe_instances(Path(sys.argv[2]), int(sys.argv[3]), fidelity=fidelity)
        print(f"{sys.argv[2]}: {int(sys.argv[3]):,} instances, {size:,} bytes")
        raise SystemExit(0)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    sample = generate_fleet(n)
    print(json.dumps(sample if n <= 5 else describe_fleet(sample), indent=2, default=str))
