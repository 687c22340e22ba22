"""Lambda code without Docker: a layer with the runtime dependencies and a small code asset.

* The **dependency layer** is ``pip install --platform manylinux…_aarch64 --only-binary=:all:`` for
  the Lambda runtime's Python version into ``build/lambda-asset/deps-<key>/python``. The key hashes
  the requirement list, the Python version, the platform tags and this recipe, so pip runs once
  per dependency change, not once per synthesis (and once per clean CI clone).
* The **code asset** is a copy of the ``workflow`` and ``lambdas`` packages; its asset hash is a
  hash of their files, so an unchanged tree is neither copied nor uploaded again.

Both go through CDK's ``BundlingOptions`` with a local bundler (:class:`LocalBundler`), which
always succeeds or raises: CDK never falls back to the Docker image. The requirements come from
``pyproject.toml`` (the core ``dependencies`` plus the ``runtime`` extra), minus boto3 and botocore,
which the Lambda runtime provides.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
DEFAULT_CACHE_DIR: Final = REPO_ROOT / "build" / "lambda-asset"
CACHE_DIR_ENV: Final = "TAGWARDEN_LAMBDA_ASSET_CACHE"

# Python 3.13 on Graviton: the newest runtime google-re2 (the policy pattern engine) has wheels for
# (cp312/cp313 manylinux aarch64; none for 3.14 yet). A test checks the wheel resolves.
RUNTIME: Final = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE: Final = lambda_.Architecture.ARM_64
PYTHON_VERSION: Final = RUNTIME.name.removeprefix("python")  # "3.13"
# Lambda's Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34): manylinux2014 and 2_28 wheels fit.
PLATFORMS: Final = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
SOURCE_PACKAGES: Final = ("workflow", "lambdas")
PROVIDED_BY_RUNTIME: Final = frozenset({"boto3", "botocore", "s3transfer"})
_RECIPE_VERSION: Final = "1"  # bump when the pip command below changes
_IGNORED_DIRS: Final = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
_IGNORED_SUFFIXES: Final = (".pyc", ".pyo")


class BundlingError(RuntimeError):
    """pip could not build the dependency layer; the message holds pip's output."""


def _requirement_name(requirement: str) -> str:
    for i, char in enumerate(requirement):
        if not (char.isalnum() or char in "-_."):
            return requirement[:i].lower().replace("_", "-")
    return requirement.lower().replace("_", "-")


def runtime_requirements(pyproject: Path = REPO_ROOT / "pyproject.toml") -> tuple[str, ...]:
    """The packages the Lambda code imports at run time, as pip requirement strings.

    >>> sorted(_requirement_name(r) for r in runtime_requirements())
    ['aws-lambda-powertools', 'google-re2', 'jsonschema', 'orjson']
    """
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["runtime"]]
    return tuple(r for r in requirements if _requirement_name(r) not in PROVIDED_BY_RUNTIME)


def _source_files(root: Path, packages: tuple[str, ...]) -> Iterator[tuple[str, Path]]:
    for package in packages:
        for directory, dirnames, filenames in os.walk(root / package):
            dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_DIRS)
            for filename in sorted(filenames):
                if filename.endswith(_IGNORED_SUFFIXES):
                    continue
                path = Path(directory) / filename
                yield path.relative_to(root).as_posix(), path


def source_hash(root: Path = REPO_ROOT, packages: tuple[str, ...] = SOURCE_PACKAGES) -> str:
    """A hash of every file of the code asset (paths and contents)."""
    digest = hashlib.sha256()
    for relative, path in _source_files(root, packages):
        digest.update(relative.encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def dependencies_key(requirements: tuple[str, ...]) -> str:
    """The cache key of a dependency layer: what pip is asked for, for which runtime."""
    recipe = {
        "requirements": sorted(requirements),
        "python": PYTHON_VERSION,
        "platforms": PLATFORMS,
        "recipe": _RECIPE_VERSION,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def _copy_tree(source: Path, destination: Path) -> None:
    shutil.copytree(
        source,
        destination,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(*_IGNORED_DIRS, *(f"*{s}" for s in _IGNORED_SUFFIXES)),
    )


@dataclass(frozen=True)
class DependencyCache:
    """The pip-built layer contents under ``cache_dir``, built at most once per key."""

    requirements: tuple[str, ...]
    cache_dir: Path

    @property
    def key(self) -> str:
        return dependencies_key(self.requirements)

    @property
    def directory(self) -> Path:
        return self.cache_dir / f"deps-{self.key[:20]}"

    def ensure(self) -> Path:
        """The layer directory (``python/`` inside), running pip only when it is not cached yet."""
        target = self.directory
        if (target / ".complete").is_file():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = self.cache_dir / f".tmp-{uuid.uuid4().hex}"
        try:
            self._pip_install(staging / "python")
            for leftover in ("bin",):  # console scripts with this machine's interpreter path
                shutil.rmtree(staging / "python" / leftover, ignore_errors=True)
            (staging / "requirements.txt").write_text("\n".join(self.requirements) + "\n", encoding="utf-8")
            (staging / ".complete").write_text(self.key + "\n", encoding="utf-8")
            try:
                staging.rename(target)
            except OSError:
                # Another process (a parallel test worker) finished first: keep its copy.
                if not (target / ".complete").is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _pip_install(self, target: Path) -> None:
        command = [
            sys.executable, "-m", "pip", "install",
            "--quiet", "--disable-pip-version-check", "--no-compile", "--no-input",
            *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
            "--implementation", "cp",
            "--python-version", PYTHON_VERSION,
            "--only-binary=:all:",
            "--target", str(target),
            *self.requirements,
        ]  # fmt: skip
        # The command is built from pyproject.toml's requirements and constants, never from user input.
        result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise BundlingError(
                "pip could not build the Lambda dependency layer:\n"
                f"  {' '.join(command)}\n{result.stdout}{result.stderr}"
            )


@jsii.implements(ILocalBundling)
class LocalBundler:
    """CDK's local bundling hook: fill the asset's output directory with a Python callable."""

    def __init__(self, fill: Callable[[Path], None]) -> None:
        self._fill = fill

    def try_bundle(self, output_dir: str, *args: Any, **options: Any) -> bool:
        self._fill(Path(output_dir))
        return True


@dataclass(frozen=True)
class LambdaAssets:
    """The dependency layer's and the code asset's recipes; :meth:`code` and :meth:`layer` build them."""

    root: Path = REPO_ROOT
    cache_dir: Path = DEFAULT_CACHE_DIR
    requirements: tuple[str, ...] = ()

    @classmethod
    def default(cls, cache_dir: Path | None = None) -> LambdaAssets:
        env_dir = os.environ.get(CACHE_DIR_ENV)
        directory = cache_dir or (Path(env_dir) if env_dir else DEFAULT_CACHE_DIR)
        return cls(root=REPO_ROOT, cache_dir=directory, requirements=runtime_requirements())

    @property
    def dependencies(self) -> DependencyCache:
        return DependencyCache(self.requirements, self.cache_dir)

    def _fill_code(self, output: Path) -> None:
        for package in SOURCE_PACKAGES:
            _copy_tree(self.root / package, output / package)

    def _fill_dependencies(self, output: Path) -> None:
        _copy_tree(self.dependencies.ensure(), output)
        for marker in (".complete",):
            (output / marker).unlink(missing_ok=True)

    def code(self) -> lambda_.Code:
        """The ``workflow`` and ``lambdas`` packages (handlers are ``lambdas.<module>.handler``)."""
        return lambda_.Code.from_asset(
            str(self.root),
            asset_hash=f"code-{source_hash(self.root)}",
            asset_hash_type=AssetHashType.CUSTOM,
            bundling=BundlingOptions(
                image=DockerImage.from_registry(RUNTIME.bundling_image.image),
                command=["bash", "-c", "cp -r /asset-input/workflow /asset-input/lambdas /asset-output/"],
                local=LocalBundler(self._fill_code),
            ),
        )

    def layer(self, scope: Construct, construct_id: str, *, layer_name: str) -> lambda_.LayerVersion:
        """The runtime dependencies as a layer (``python/`` is on ``sys.path`` in Lambda)."""
        return lambda_.LayerVersion(
            scope,
            construct_id,
            layer_version_name=layer_name,
            description="Tagwarden runtime dependencies: " + ", ".join(self.requirements),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            code=lambda_.Code.from_asset(
                str(self.root / "lambdas"),
                asset_hash=f"deps-{self.dependencies.key}",
                asset_hash_type=AssetHashType.CUSTOM,
                bundling=BundlingOptions(
                    image=DockerImage.from_registry(RUNTIME.bundling_image.image),
                    command=[
                        "bash",
                        "-c",
                        "pip install --only-binary=:all: --target /asset-output/python "
                        + " ".join(f"'{r}'" for r in self.requirements),
                    ],
                    local=LocalBundler(self._fill_dependencies),
                ),
            ),
        )


def prepare(assets: LambdaAssets) -> Path:
    """Build the dependency cache now (before synthesis), e.g. from a test's session fixture."""
    return assets.dependencies.ensure()


__all__ = [
    "ARCHITECTURE",
    "CACHE_DIR_ENV",
    "DEFAULT_CACHE_DIR",
    "PLATFORMS",
    "PYTHON_VERSION",
    "REPO_ROOT",
    "RUNTIME",
    "BundlingError",
    "DependencyCache",
    "LambdaAssets",
    "LocalBundler",
    "dependencies_key",
    "prepare",
    "runtime_requirements",
    "source_hash",
]
