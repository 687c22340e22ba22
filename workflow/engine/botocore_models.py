"""One botocore model loader for the local engine's sessions, so each service model is parsed once
per process.

Every ``boto3.Session()`` builds a loader of its own and parses a service's JSON model again the
first time it needs it (about 0.3 s for EC2's). The engine's handler sessions share this module's
loader, and so do the sessions moto creates while its modules import: moto's EC2 module builds its
region list at import time from three new sessions, each parsing the whole EC2 model.

boto3 appends its own data folder to the loader of each session it makes; on a shared loader that
would add the same folder once per session, so the folders are kept unique.

>>> first, second = handler_session("eu-west-1"), handler_session("us-east-1")
>>> first._loader is second._loader, len(set(first._loader.search_paths)) == len(first._loader.search_paths)
(True, True)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3
import botocore.loaders
import botocore.session

# Reentrant, so handler_session called on the thread inside shared_by_new_sessions cannot deadlock.
_lock = threading.RLock()
_loader: Any = None


def _shared_loader() -> Any:
    global _loader
    with _lock:
        if _loader is None:
            _loader = botocore.loaders.create_loader()
        return _loader


def _unique_search_paths(loader: Any) -> None:
    paths = loader.search_paths
    paths[:] = list(dict.fromkeys(paths))


def handler_session(region: str) -> boto3.Session:
    """A session of its own (its credentials, region and event hooks) on the shared loader."""
    with _lock:
        core = botocore.session.Session()
        loader = _shared_loader()
        core.register_component("data_loader", loader)
        session = boto3.Session(botocore_session=core, region_name=region)
        _unique_search_paths(loader)
    return session


@contextlib.contextmanager
def shared_by_new_sessions() -> Iterator[None]:
    """Every botocore session created inside shares the loader (for moto's import-time sessions).

    Sessions created afterwards get loaders of their own again, as botocore makes them.
    """
    loader = _shared_loader()
    with _lock, mock.patch.object(botocore.session, "create_loader", return_value=loader):
        try:
            yield
        finally:
            _unique_search_paths(loader)
