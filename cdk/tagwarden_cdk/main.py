"""Build the CDK app: context defaults from ``cdk.json``, settings, the stack, the nag packs."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from aws_cdk import App, Environment

from tagwarden_cdk.bundling import LambdaAssets
from tagwarden_cdk.nag import register_nag_packs
from tagwarden_cdk.settings import CONTEXT_KEYS, Settings
from tagwarden_cdk.stack import TagwardenStack

CDK_JSON: Final = Path(__file__).resolve().parent.parent / "cdk.json"


def cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """The ``context`` of ``cdk.json`` (feature flags, defaults).

    The CLI reads it itself; ``python app.py`` (``make synth``) gets it from here.
    """
    document = json.loads(path.read_text(encoding="utf-8"))
    context = document.get("context", {})
    assert isinstance(context, dict)
    return context


def settings_of(app: App) -> Settings:
    return Settings.from_context({key: app.node.try_get_context(key) for key in CONTEXT_KEYS})


def build_app(
    context: Mapping[str, Any] | None = None,
    *,
    outdir: str | None = None,
    assets: LambdaAssets | None = None,
    nag: bool = True,
    builtin_validation: bool = True,
) -> tuple[App, TagwardenStack]:
    """The app and its one stack. ``context`` overrides cdk.json; the CLI's ``-c`` overrides both.

    The stack is environment-agnostic unless CDK_DEFAULT_ACCOUNT/REGION are set (the CLI sets them
    from the credentials it finds), so synthesis needs no credentials.
    """
    app = App(
        context={**cdk_json_context(), **(context or {})},
        outdir=outdir,
        builtin_cloud_formation_validation=builtin_validation,
    )
    settings = settings_of(app)
    account, region = os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION")
    stack = TagwardenStack(
        app,
        settings.stack_name,
        settings=settings,
        assets=assets or LambdaAssets.default(),
        env=Environment(account=account, region=region) if account and region else None,
        description=f"Tagwarden ({settings.environment}): EC2 tag compliance scans, reports and alarms",
        termination_protection=settings.retain_data,
    )
    if nag:
        register_nag_packs(app)
    return app, stack
