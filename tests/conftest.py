"""A table as users bring it, shared by the data, train, predict and command tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_mixed_csv(path: Path, n: int = 240, seed: int = 0) -> Path:
    """A CSV with an id column, text categories with missing cells, numbers with missing cells,
    a constant column, an exact duplicate row and two rows without a target. The label follows
    the colour and the first number, so a small MLP learns it well."""
    rng = np.random.default_rng(seed)
    lines = ["id,colour,size,x1,x2,site,label"]
    for i in range(n):
        colour = ["red", "green", "blue"][int(rng.integers(0, 3))]
        x1 = float(rng.normal(0, 1))
        size = ["S", "M", "L"][int(rng.integers(0, 3))]
        x2 = float(rng.normal(5, 2))
        label = "yes" if (colour == "red") != (x1 > 0.3) else "no"
        cells = [f"r{i:04d}", colour, size, f"{x1:.4f}", f"{x2:.4f}", "lab-1", label]
        if i % 9 == 4:
            cells[1] = ""  # a missing colour
        if i % 7 == 3:
            cells[3] = "NA"  # a missing number
        lines.append(",".join(cells))
    lines.append(lines[2])  # an exact copy of a row
    lines.append(f"r{n + 1:04d},red,S,0.1,5.0,lab-1,")  # rows without a target
    lines.append(f"r{n + 2:04d},blue,M,0.2,4.0,lab-1,NA")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def mixed_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mixed_csv(tmp_path_factory.mktemp("mixed") / "customers.csv")
