"""The tag policy language: schema, validation, foreign formats and compilation.

>>> policy = compile_policy({"version": 1, "name": "baseline", "rules": [{"key": "Owner"}]})
>>> policy.name
'baseline'
"""

from workflow.policy.compiler import CompiledPolicy, CompiledRule, compile_policy, policy_sha256
from workflow.policy.document import (
    MAX_POLICY_BYTES,
    parse_policy_text,
    policy_schema,
    read_policy_file,
    validate_policy,
)
from workflow.policy.loader import load_policy, load_policy_document

__all__ = [
    "MAX_POLICY_BYTES",
    "CompiledPolicy",
    "CompiledRule",
    "compile_policy",
    "load_policy",
    "load_policy_document",
    "parse_policy_text",
    "policy_schema",
    "policy_sha256",
    "read_policy_file",
    "validate_policy",
]
