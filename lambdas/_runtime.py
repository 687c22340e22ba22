"""What every handler shares: the structured logger and the client factory."""

from __future__ import annotations

from aws_lambda_powertools import Logger

from workflow.aws import client

logger = Logger(service="tagwarden")

__all__ = ["client", "logger"]
