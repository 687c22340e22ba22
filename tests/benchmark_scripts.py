"""The benchmark scripts' modules, for tests that reuse them (the benchmarks are not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def fleetgen() -> ModuleType:
    """``benchmarks/fleetgen.py``, imported once."""
    if "fleetgen" not in sys.modules:
        spec = importlib.util.spec_from_file_location("fleetgen", BENCHMARKS / "fleetgen.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["fleetgen"] = module
        spec.loader.exec_module(module)
    return sys.modules["fleetgen"]
