"""The atheris harnesses (``fuzz_*.py``) are programs for ``make fuzz``, not test modules: keep
pytest (and its ``--doctest-modules`` import of every module) away from them. What pytest runs
here by default is ``test_harnesses.py``: the same checks on the seed corpus and a short
hypothesis run, a few seconds in all."""

collect_ignore_glob = ["fuzz_*.py"]
