"""Fixtures and helpers shared by the test modules.

- :func:`sample_district`: the sample district's input files, generated once per session;
- :func:`make_network` and :func:`path3`: tiny street networks built by hand;
- :data:`SHARED`, :data:`SHARED_DATA` and :func:`shared_data`: ../shared beside the worktree,
  and the skip (with the missing path as the reason) for tests that need its data.

The helpers are plain functions, so hypothesis strategies and module-level parameters can
use them: ``from conftest import make_network`` (tests/ is on ``sys.path``, as for clitools).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pytest
import shapely

from carecircle.layers.sample import SampleDistrict, generate_sample

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"
CRS = "EPSG:32650"


def shared_data(*parts: str) -> Path:
    """``../shared/data/<parts>``; skips the calling test when that file or folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared/data absent: {path}")
    return path


@pytest.fixture(scope="session")
def sample_district(tmp_path_factory) -> SampleDistrict:
    """The sample district (default seed), generated once for the whole session.

    Tests may write new files beside the generated ones (their own configs, broken copies),
    never over them.
    """
    return generate_sample(tmp_path_factory.mktemp("sample") / "input")


def jittered_grid(k: int, rng: np.random.Generator, *, jitter_m: float, drop: float, bend: bool = False) -> SimpleNamespace:
    """A k × k street grid 60 m apart, nodes jittered by ``jitter_m``, a share ``drop`` of the
    edges removed at random; ``bend`` puts one interior vertex on every east-west edge."""
    ij = np.array([(i, j) for i in range(k) for j in range(k)])
    xy = ij * 60.0 + rng.normal(0, jitter_m, ij.shape)
    idx = {tuple(p): n for n, p in enumerate(ij)}
    edges = [(idx[(i, j)], idx[(i + 1, j)], []) for i in range(k - 1) for j in range(k)]
    edges += [(idx[(i, j)], idx[(i, j + 1)], [(i * 60 + 20, j * 60 + 30)] if bend else [])
              for i in range(k) for j in range(k - 1)]
    keep = rng.random(len(edges)) > drop
    return make_network(xy, [e for e, kk in zip(edges, keep) if kk])


def make_network(xy, edges) -> SimpleNamespace:
    """A Network-shaped object: ``edges`` is a list of (u, v, [interior vertices])."""
    xy = np.asarray(xy, dtype=float)
    lines = [shapely.LineString([xy[u], *mid, xy[v]]) for u, v, mid in edges]
    nodes = gpd.GeoDataFrame({"x": xy[:, 0], "y": xy[:, 1]}, geometry=shapely.points(xy), crs=CRS)
    e = gpd.GeoDataFrame(
        {
            "u": np.array([u for u, _, _ in edges], dtype=np.int64),
            "v": np.array([v for _, v, _ in edges], dtype=np.int64),
            "length_m": shapely.length(np.array(lines, dtype=object)) if lines else np.zeros(0),
            "highway": "residential",
        },
        geometry=lines,
        crs=CRS,
    )
    return SimpleNamespace(nodes=nodes, edges=e, crs=nodes.crs)


def path3() -> SimpleNamespace:
    #  A(0,0) ---100--- B(100,0) ---200--- C(300,0)
    return make_network([(0, 0), (100, 0), (300, 0)], [(0, 1, []), (1, 2, [])])
