"""The one test of the walking circle: a point is covered when its walk is ``≤`` the circle.

:func:`carecircle.coverage.analysis.analyse` writes ``covered_<service>`` once with
:func:`within`; everything downstream reads that column through :func:`covered` (which
falls back to the same test on ``dist_<service>_m`` for tables built by hand).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def within(dist, cutoff_m: float) -> np.ndarray:
    """``dist ≤ cutoff_m`` as booleans; NaN and inf (unreachable) are outside.

    Parameters
    ----------
    dist : array-like of float
        Walk distances in metres.
    cutoff_m : float
        The circle, boundary included.

    Returns
    -------
    numpy.ndarray of bool
    """
    d = pd.to_numeric(pd.Series(np.asarray(dist).ravel()), errors="coerce").to_numpy(dtype=float)
    return np.nan_to_num(d, nan=np.inf) <= cutoff_m


def covered(points: pd.DataFrame, service: str, cutoff_m: float) -> np.ndarray:
    """Which of ``points`` are within the circle of ``service``.

    Reads ``covered_<service>`` when the analysis wrote it, else tests ``dist_<service>_m``.
    """
    col = f"covered_{service}"
    if col in points.columns:
        return points[col].to_numpy(dtype=bool)
    return within(points[f"dist_{service}_m"], cutoff_m)
