"""Coverage-guided fuzzing (atheris/libFuzzer) of the policy pattern engine (workflow.policy.patterns, RE2).

An input is a pattern and a tag value separated by the first NUL byte. Every input must compile or be
refused with one line, match in bounded time, and agree with the validator; escape() and globs must
match their own text (tests/fuzz/checks.py: check_pattern_bytes).

    python tests/fuzz/fuzz_pattern.py build/fuzz/pattern -max_total_time=300 -timeout=30 -rss_limit_mb=4096

(make fuzz runs this; tests/fuzz/README.md explains the options and how to replay a crash.)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import atheris

# Instrument the code under test (imported here first) so libFuzzer sees its coverage.
with atheris.instrument_imports(include=["workflow"]):
    import workflow.policy
    import workflow.policy.patterns  # noqa: F401

from tests.fuzz.checks import run

if __name__ == "__main__":
    run("pattern", sys.argv)
