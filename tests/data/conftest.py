"""Shared fixtures: a private dataset cache, so tests neither read nor write the user's ~/.cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tunelab_cache")


@pytest.fixture(autouse=True)
def _private_cache(data_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TUNELAB_CACHE", str(data_cache))
    yield


def noise_images(root: Path, n: int, side: int, classes: int = 4) -> Path:
    """``n`` PNGs of ``side`` x ``side`` in ``classes`` folders: a class colour plus noise. Written
    once into ``root`` (a finished folder has a marker file)."""
    from PIL import Image

    done = root / ".complete"
    if done.is_file():
        return root
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, size=(classes, 3))
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = i % classes
        noise = rng.integers(-40, 40, size=(side, side, 3))
        a = np.clip(colours[c] + noise, 0, 255).astype(np.uint8)
        Image.fromarray(a).save(root / f"c{c}" / f"{i}.png", compress_level=1)
    done.touch()
    return root
