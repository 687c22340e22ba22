"""Context keys (defaults, parsing, errors) and the Docker-free Lambda bundling with its cache."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
from tagwarden_cdk import bundling
from tagwarden_cdk.bundling import DependencyCache, LambdaAssets, runtime_requirements, source_hash
from tagwarden_cdk.main import cdk_json_context
from tagwarden_cdk.settings import CONTEXT_KEYS, DEFAULT_SCHEDULE, Settings, SettingsError

from tests.infra.conftest import CDK_DIR
from workflow import config
from workflow.errors import ConfigurationError

DEPLOY_DOC = CDK_DIR.parent / "docs" / "deploy.md"


def test_defaults_without_any_context() -> None:
    settings = Settings.from_context({})
    assert settings == Settings()
    assert settings.environment == "dev"
    assert settings.schedule == DEFAULT_SCHEDULE
    assert settings.notify == "violations"
    assert settings.regions == ()  # the stack's region
    assert settings.retain_data is False
    assert settings.stack_name == "Tagwarden-dev"


def test_prod_retains_data_unless_told_otherwise() -> None:
    assert Settings.from_context({"environment": "prod"}).retain_data is True
    assert Settings.from_context({"environment": "prod", "retain_data": "false"}).retain_data is False
    assert Settings.from_context({"environment": "qa", "retain_data": True}).retain_data is True


def test_command_line_strings_and_cdk_json_values_parse_alike() -> None:
    from_cli = Settings.from_context(
        {
            "regions": "us-east-1, eu-west-1",
            "email_subscriptions": '["a@example.com", "b@example.com"]',
            "noncompliant_threshold": "7",
            "compliance_percentage_threshold": "97.5",
            "schedule": "0 7 ? * MON-FRI *",
            "log_level": "debug",
        }
    )
    from_json = Settings.from_context(
        {
            "regions": ["us-east-1", "eu-west-1"],
            "email_subscriptions": ["a@example.com", "b@example.com"],
            "noncompliant_threshold": 7,
            "compliance_percentage_threshold": 97.5,
            "schedule": "cron(0 7 ? * MON-FRI *)",
            "log_level": "DEBUG",
        }
    )
    assert from_cli == from_json
    assert Settings.from_context({"schedule": "none"}).schedule is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("environment", "Prod_1"),
        ("environment", "a-very-long-env-name"),
        ("regions", "us-east-1,mars-1"),
        ("notify", "sometimes"),
        ("email_subscriptions", "not-an-email"),
        ("noncompliant_threshold", "-1"),
        ("compliance_percentage_threshold", "101"),
        ("map_max_concurrency", "many"),
        ("log_retention_days", "42"),
        ("athena_bytes_scanned_cutoff", "1024"),
        ("schedule", "every day"),
        ("retain_data", "maybe"),
        ("distributed_map_threshold", "0"),
        ("distributed_map_threshold", "201"),
        ("distributed_map_threshold", "forty"),
        ("distributed_max_concurrency", "0"),
        ("distributed_max_concurrency", "10001"),
        ("tolerated_failure_percentage", "-1"),
        ("tolerated_failure_percentage", "101"),
        ("tolerated_failure_percentage", "7.5"),
    ],
)
def test_bad_context_values_name_their_key(key: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"context {key}"):
        Settings.from_context({key: value})


@pytest.mark.parametrize(
    ("key", "variable", "low", "high"),
    [
        ("distributed_map_threshold", config.DISTRIBUTED_MAP_THRESHOLD, 1, 200),
        ("distributed_max_concurrency", config.DISTRIBUTED_MAX_CONCURRENCY, 1, 10_000),
        ("tolerated_failure_percentage", config.TOLERATED_FAILURE_PERCENTAGE, 0, 100),
    ],
)
def test_distributed_map_keys_accept_exactly_what_the_validate_step_accepts(
    key: str, variable: str, low: int, high: int
) -> None:
    """A value the step would reject at every run must stop synthesis instead, and no more."""
    env = {
        config.REPORT_BUCKET: "b",
        config.DEFAULT_POLICY_URI: "s3://b/p.json",
        config.DEFAULT_REGIONS: "us-east-1",
    }
    for value in (low - 1, low, high, high + 1):
        try:
            config.ValidateConfig.from_env({**env, variable: str(value)})
            step_accepts = True
        except ConfigurationError:
            step_accepts = False
        try:
            Settings.from_context({key: str(value)})
            synthesis_accepts = True
        except SettingsError:
            synthesis_accepts = False
        assert synthesis_accepts == step_accepts == (low <= value <= high), (key, value)
    defaults = config.ValidateConfig.from_env(env)
    assert getattr(Settings(), key) == getattr(defaults, key)


def test_cdk_json_defaults_agree_with_the_settings_defaults() -> None:
    context = cdk_json_context()
    assert Settings.from_context(context) == Settings()
    assert {k for k in context if not k.startswith("@")} <= set(CONTEXT_KEYS)


def test_every_context_key_is_documented_in_the_deploy_guide() -> None:
    guide = DEPLOY_DOC.read_text(encoding="utf-8")
    for key in CONTEXT_KEYS:
        assert f"`{key}`" in guide, key


def test_cdk_json_runs_the_app_with_the_repository_virtualenv() -> None:
    document = json.loads((CDK_DIR / "cdk.json").read_text())
    assert document["app"] == "../.venv/bin/python app.py"


def test_lambda_requirements_come_from_pyproject_without_what_the_runtime_provides() -> None:
    names = sorted(r.split(">")[0].split("<")[0].split("=")[0].strip() for r in runtime_requirements())
    assert names == ["aws-lambda-powertools", "google-re2", "jsonschema", "orjson"]


def test_code_asset_hash_follows_the_source_files(tmp_path: Path) -> None:
    for package in ("workflow", "lambdas"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    before = source_hash(tmp_path)
    (tmp_path / "workflow" / "__pycache__").mkdir()
    (tmp_path / "workflow" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert source_hash(tmp_path) == before  # compiled files never change the asset
    (tmp_path / "lambdas" / "notify.py").write_text("def handler(event, context): ...\n")
    assert source_hash(tmp_path) != before


def test_dependency_layer_is_built_once_and_then_served_from_the_cache(
    lambda_assets: LambdaAssets, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = lambda_assets.dependencies.ensure()  # built by the session fixture

    def no_pip(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        raise AssertionError("pip ran although the layer is cached")

    monkeypatch.setattr(bundling.subprocess, "run", no_pip)
    assert lambda_assets.dependencies.ensure() == cached
    assert (cached / "python" / "re2").is_dir()
    assert (cached / "requirements.txt").read_text().split() == list(lambda_assets.requirements)


def test_dependency_cache_key_changes_with_the_requirements(tmp_path: Path) -> None:
    one = DependencyCache(("regex>=2024.5.15",), tmp_path)
    two = DependencyCache(("regex>=2025.1.1",), tmp_path)
    assert one.directory != two.directory
    assert one.directory.parent == two.directory.parent == tmp_path


def test_a_pip_failure_stops_bundling_with_pips_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_pip(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        Path(command[command.index("--target") + 1]).mkdir(parents=True)  # pip got that far
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found for x==0")

    monkeypatch.setattr(bundling.subprocess, "run", failing_pip)
    cache = DependencyCache(("x==0",), tmp_path)
    with pytest.raises(bundling.BundlingError, match=r"(?s)pip could not build.*No matching distribution"):
        cache.ensure()
    assert not any(tmp_path.iterdir())  # no half-built layer is left behind


def test_app_entry_point_reports_a_bad_context_value_and_exits_with_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = importlib.util.spec_from_file_location("tagwarden_cdk_entry_point", CDK_DIR / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main({"environment": "Bad_Env"}) == 2
    assert "error: context environment: 'Bad_Env'" in capsys.readouterr().err
