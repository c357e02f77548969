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


def shares(points: pd.DataFrame, service: str, cutoff_m: float) -> dict[str, float | None]:
    """People and elderly of ``points`` within the circle of ``service``, and their shares.

    The one computation of the city covered shares (the summary's ``services`` and the
    standards' city totals both read it).

    Returns
    -------
    dict
        ``population_covered``, ``elderly_covered``, ``population_covered_share``,
        ``elderly_covered_share`` (None without people / elderly).
    """
    cov = covered(points, service, cutoff_m)
    people = pd.to_numeric(points["people"], errors="coerce").fillna(0).to_numpy(dtype=float)
    elderly = pd.to_numeric(points["elderly"], errors="coerce").fillna(0).to_numpy(dtype=float)
    p, e = float(people[cov].sum()), float(elderly[cov].sum())
    return {
        "population_covered": p, "elderly_covered": e,
        "population_covered_share": p / people.sum() if people.sum() > 0 else None,
        "elderly_covered_share": e / elderly.sum() if elderly.sum() > 0 else None,
    }
