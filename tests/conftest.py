"""Shared fixtures: paths to the spec the project implements."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["kvs_local.emulator.pytest_plugin"]

# The moto server's per-request access log drowns every failure report.
logging.getLogger("werkzeug").setLevel(logging.WARNING)

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO.parent / "shared" / "spec"
VECTORS_COPY = REPO / "tests" / "data" / "presign-vectors.json"


def load_presign_vectors() -> list[dict[str, Any]]:
    """The JS SDK's presigned URLs (shared/spec when present, else the copy in tests/data)."""
    source = SPEC / "presign-vectors.json"
    path = source if source.exists() else VECTORS_COPY
    vectors: list[dict[str, Any]] = json.loads(path.read_text())["vectors"]
    return vectors


@pytest.fixture(scope="session")
def presign_vectors() -> list[dict[str, Any]]:
    return load_presign_vectors()
