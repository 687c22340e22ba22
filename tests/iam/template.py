"""A synthesized CloudFormation template, resolved as CloudFormation would in one account/region.

Intrinsics (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split) become strings, with the
physical names a deployment would get (an explicit name property, else a generated one), so
policies can be compared with the ARNs of real requests. Also: every IAM principal of the
template with its identity policies, its trust policy, and every resource policy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.iam.policy import Statement, as_list

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"

# Ref of a resource type: which property names it, or how to build the value.
_NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Events::Rule": "Name",
    "AWS::Events::EventBus": "Name",
    "AWS::Scheduler::Schedule": "Name",
    "AWS::Glue::Crawler": "Name",
    "AWS::Athena::WorkGroup": "Name",
    "AWS::Lambda::LayerVersion": "LayerName",
}


class UnresolvedIntrinsic(ValueError):
    pass


@dataclass
class Template:
    document: Mapping[str, Any]
    name: str = "template"
    stack_name: str = "stack"
    account: str = ACCOUNT
    region: str = REGION
    _names: dict[str, str] = field(default_factory=dict)

    @property
    def resources(self) -> Mapping[str, Mapping[str, Any]]:
        return self.document.get("Resources", {})  # type: ignore[no-any-return]

    def of_type(self, resource_type: str) -> dict[str, Mapping[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    # -- physical names and attributes ------------------------------------------------------------

    def physical_name(self, logical_id: str) -> str:
        if logical_id not in self._names:
            resource = self.resources[logical_id]
            prop = _NAME_PROPERTY.get(resource["Type"])
            value = resource.get("Properties", {}).get(prop) if prop else None
            if value is not None:
                self._names[logical_id] = str(self.resolve(value))
            else:
                digest = hashlib.sha256(f"{self.stack_name}/{logical_id}".encode()).hexdigest()[:12].upper()
                generated = f"{self.stack_name}-{logical_id[:40]}-{digest}"
                if resource["Type"] == "AWS::S3::Bucket":
                    generated = generated.lower()
                if resource["Type"] == "AWS::KMS::Key":
                    generated = f"{digest[:8].lower()}-0000-4000-8000-{digest.lower()}"
                self._names[logical_id] = generated
        return self._names[logical_id]

    def ref(self, logical_id: str) -> str:
        pseudo = {
            "AWS::Partition": PARTITION,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::NoValue": "",
        }
        if logical_id in pseudo:
            return pseudo[logical_id]
        if logical_id in self.document.get("Parameters", {}):
            default = self.document["Parameters"][logical_id].get("Default")
            if default is None:
                raise UnresolvedIntrinsic(f"parameter {logical_id} has no default")
            return str(default)
        kind = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        if kind == "AWS::SNS::Topic":
            return self.arn("sns", name)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{name}"
        if kind == "AWS::StepFunctions::StateMachine":
            return self.arn("states", f"stateMachine:{name}")
        if kind == "AWS::Lambda::LayerVersion":
            return self.arn("lambda", f"layer:{name}:1")
        return name

    def arn(
        self, service: str, resource: str, *, region: str | None = None, account: str | None = None
    ) -> str:
        return f"arn:{PARTITION}:{service}:{self.region if region is None else region}:{self.account if account is None else account}:{resource}"

    def get_att(self, logical_id: str, attribute: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        table: dict[tuple[str, str], Any] = {
            ("AWS::S3::Bucket", "Arn"): lambda: f"arn:{PARTITION}:s3:::{name}",
            ("AWS::S3::Bucket", "DomainName"): lambda: f"{name}.s3.amazonaws.com",
            ("AWS::S3::Bucket", "RegionalDomainName"): lambda: f"{name}.s3.{self.region}.amazonaws.com",
            ("AWS::SQS::Queue", "Arn"): lambda: self.arn("sqs", name),
            ("AWS::SQS::Queue", "QueueName"): lambda: name,
            ("AWS::SQS::Queue", "QueueUrl"): lambda: self.ref(logical_id),
            ("AWS::SNS::Topic", "TopicArn"): lambda: self.arn("sns", name),
            ("AWS::SNS::Topic", "TopicName"): lambda: name,
            ("AWS::IAM::Role", "Arn"): lambda: (
                f"arn:{PARTITION}:iam::{self.account}:role{self.role_path(logical_id)}{name}"
            ),
            ("AWS::IAM::Role", "RoleId"): lambda: (
                f"AROA{hashlib.sha256(name.encode()).hexdigest()[:17].upper()}"
            ),
            ("AWS::Lambda::Function", "Arn"): lambda: self.arn("lambda", f"function:{name}"),
            ("AWS::StepFunctions::StateMachine", "Arn"): lambda: self.arn("states", f"stateMachine:{name}"),
            ("AWS::StepFunctions::StateMachine", "Name"): lambda: name,
            ("AWS::Logs::LogGroup", "Arn"): lambda: self.arn("logs", f"log-group:{name}:*"),
            ("AWS::KMS::Key", "Arn"): lambda: self.arn("kms", f"key/{name}"),
            ("AWS::KMS::Key", "KeyId"): lambda: name,
            ("AWS::Events::Rule", "Arn"): lambda: self.arn("events", f"rule/{name}"),
            ("AWS::Events::EventBus", "Arn"): lambda: self.arn("events", f"event-bus/{name}"),
            ("AWS::Events::EventBus", "Name"): lambda: name,
            ("AWS::Scheduler::Schedule", "Arn"): lambda: self.arn("scheduler", f"schedule/default/{name}"),
            ("AWS::Glue::Crawler", "Arn"): lambda: self.arn("glue", f"crawler/{name}"),
            ("AWS::Lambda::LayerVersion", "Arn"): lambda: self.ref(logical_id),
        }
        builder = table.get((kind, attribute))
        if builder is None:
            raise UnresolvedIntrinsic(f"Fn::GetAtt {logical_id}.{attribute} ({kind})")
        return str(builder())

    def role_path(self, logical_id: str) -> str:
        path = self.resources[logical_id].get("Properties", {}).get("Path", "/")
        return str(self.resolve(path))

    # -- intrinsics -------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, Mapping):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Join":
                separator, parts = argument
                return str(separator).join(str(p) for p in as_list(self.resolve(parts)))
            if key == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                resolved = {k: str(self.resolve(v)) for k, v in variables.items()}

                def substitute(match: re.Match[str]) -> str:
                    name = match.group(1)
                    if name.startswith("!"):
                        return "${" + name[1:] + "}"
                    if name in resolved:
                        return resolved[name]
                    if "." in name:
                        logical_id, attribute = name.split(".", 1)
                        return self.get_att(logical_id, attribute)
                    return self.ref(name)

                return re.sub(r"\$\{([^}]+)\}", substitute, text)
            if key == "Fn::Select":
                index, items = argument
                return as_list(self.resolve(items))[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, text = argument
                return str(self.resolve(text)).split(separator)
            if key.startswith("Fn::"):
                raise UnresolvedIntrinsic(key)
        return {k: self.resolve(v) for k, v in value.items()}

    # -- IAM --------------------------------------------------------------------------------------

    def role_ids(self) -> list[str]:
        return sorted(self.of_type("AWS::IAM::Role"))

    def role_arn(self, logical_id: str) -> str:
        return self.get_att(logical_id, "Arn")

    def identity_statements(self, role_id: str) -> list[Statement]:
        role = self.resources[role_id].get("Properties", {})
        found: list[Statement] = []
        for policy in role.get("Policies", []):
            document = self.resolve(policy["PolicyDocument"])
            found += _statements(document, f"{role_id}/{policy.get('PolicyName', 'inline')}", "identity")
        for logical_id, resource in self.resources.items():
            if resource["Type"] not in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
                continue
            properties = resource["Properties"]
            if {"Ref": role_id} in properties.get("Roles", []):
                found += _statements(self.resolve(properties["PolicyDocument"]), logical_id, "identity")
        return found

    def managed_policy_arns(self, role_id: str) -> list[str]:
        role = self.resources[role_id].get("Properties", {})
        return [str(self.resolve(a)) for a in role.get("ManagedPolicyArns", [])]

    def trust_statements(self, role_id: str) -> list[Statement]:
        document = self.resolve(self.resources[role_id]["Properties"]["AssumeRolePolicyDocument"])
        return _statements(document, f"{role_id} trust", "trust")

    def resource_policies(self) -> dict[str, list[Statement]]:
        """Resource ARN -> its resource-policy statements (buckets, queues, topics, event buses)."""
        policies: dict[str, list[Statement]] = {}
        for logical_id, resource in self.resources.items():
            properties = resource.get("Properties", {})
            kind = resource["Type"]
            if kind == "AWS::S3::BucketPolicy":
                bucket = self.resolve(properties["Bucket"])
                policies.setdefault(f"arn:{PARTITION}:s3:::{bucket}", []).extend(
                    _statements(self.resolve(properties["PolicyDocument"]), logical_id, "resource")
                )
            elif kind == "AWS::SQS::QueuePolicy":
                for queue in properties["Queues"]:
                    url = str(self.resolve(queue))
                    name = url.rstrip("/").rsplit("/", 1)[-1]
                    policies.setdefault(self.arn("sqs", name), []).extend(
                        _statements(self.resolve(properties["PolicyDocument"]), logical_id, "resource")
                    )
            elif kind == "AWS::Events::EventBusPolicy":
                # One statement per resource (the Statement property), on the bus it names.
                bus = str(self.resolve(properties["EventBusName"]))
                document = {"Statement": [self.resolve(properties["Statement"])]}
                policies.setdefault(self.arn("events", f"event-bus/{bus}"), []).extend(
                    _statements(document, logical_id, "resource")
                )
            elif kind == "AWS::SNS::TopicPolicy":
                for topic in properties["Topics"]:
                    policies.setdefault(str(self.resolve(topic)), []).extend(
                        _statements(self.resolve(properties["PolicyDocument"]), logical_id, "resource")
                    )
        return policies

    def key_policies(self) -> dict[str, list[Statement]]:
        return {
            self.get_att(logical_id, "Arn"): _statements(
                self.resolve(resource["Properties"]["KeyPolicy"]), logical_id, "key"
            )
            for logical_id, resource in self.of_type("AWS::KMS::Key").items()
        }


def _statements(document: Mapping[str, Any], source: str, kind: str) -> list[Statement]:
    return [
        Statement(statement, f"{source} {statement.get('Sid') or f'#{index}'}", kind)
        for index, statement in enumerate(as_list(document.get("Statement", [])))
    ]
