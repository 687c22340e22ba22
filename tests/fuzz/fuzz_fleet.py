"""Coverage-guided fuzzing (atheris/libFuzzer) of the describe-instances loader (workflow.fleet.iter_fleet_document) and the evaluator on every instance it accepts.

Every input must give a valid result or an InvalidInput, within tests/fuzz/checks.py's per-input
bound; anything else is a crash that libFuzzer saves as crash-<sha1> in the working directory.

    python tests/fuzz/fuzz_fleet.py build/fuzz/fleet -max_total_time=300 -timeout=30 -rss_limit_mb=4096

(make fuzz runs this; tests/fuzz/README.md explains the options and how to replay a crash.)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import atheris

# Instrument the code under test (imported here first) so libFuzzer sees its coverage.
with atheris.instrument_imports(include=["workflow"]):
    import workflow.evaluator
    import workflow.fleet  # noqa: F401

from tests.fuzz.checks import run

if __name__ == "__main__":
    run("fleet", sys.argv)
