"""Shared fixtures: a private dataset cache, so tests neither read nor write the user's ~/.cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tunelab_cache")


@pytest.fixture(autouse=True)
def _private_cache(data_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TUNELAB_CACHE", str(data_cache))
    yield
