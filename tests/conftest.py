"""Shared pytest setup: ``tests/`` is on sys.path (pytest's prepend mode puts a
rootless conftest's folder there), so tests import the multi-node harness as
``from harness import Cluster``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Cluster


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[object]:
    """Make clusters that are always stopped, even when the test fails."""
    made: list[Cluster] = []

    def make(n: int = 3, **kw: object) -> Cluster:
        c = Cluster(tmp_path / f"c{len(made)}", n=n, **kw)  # type: ignore[arg-type]
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
