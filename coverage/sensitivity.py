"""Coverage at other walking speeds, read off the distances already searched.

Every population point carries its walk distance to the nearest facility of each service,
searched up to several times the circle (NaN beyond that, or when unreachable). The circle
at another speed is ``minutes × speed``; as long as that stays within the search limit a
point is covered at that speed exactly when its distance is within it — no new search.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def speed_sensitivity(population: pd.DataFrame, services: Sequence[str], *, minutes: float,
                      presets: Sequence, search_limit_m: float) -> list[dict]:
    """Who lives within the circle of each service at each walking speed.

    Parameters
    ----------
    population : pandas.DataFrame
        ``people``, ``elderly`` and ``dist_<service>_m`` (metres, NaN beyond the search
        limit or unreachable) per point.
    services : sequence of str
        The services to tabulate (the circle services).
    minutes : float
        The circle's walking time.
    presets : sequence
        Objects with ``name``, ``speed_kmh`` and ``source`` (the profile's
        ``walk.speed_presets``).
    search_limit_m : float
        How far the distances were searched: a circle beyond it cannot be read off them.

    Returns
    -------
    list of dict
        One row per preset: ``preset``, ``speed_kmh``, ``source``, ``distance_m`` and per
        service ``population_covered_share``, ``elderly_covered_share``,
        ``population_covered``, ``elderly_covered`` (``None`` shares when nobody lives in
        the area, and all four ``None`` when ``distance_m`` exceeds the search limit).
    """
    people = population["people"].to_numpy(float)
    elderly = population["elderly"].to_numpy(float)
    distance = np.array([minutes * float(p.speed_kmh) * 1000.0 / 60.0 for p in presets])
    rows = [{"preset": p.name, "speed_kmh": float(p.speed_kmh), "source": p.source, "distance_m": float(d),
             "services": {}} for p, d in zip(presets, distance)]
    searched = distance <= search_limit_m + 1e-9
    for key in services:
        dist = population[f"dist_{key}_m"].to_numpy(float)
        # NaN compares False: beyond the search limit or unreachable is not covered
        covered = dist[:, None] <= distance[None, :]
        pop_in, old_in = people @ covered, elderly @ covered
        for i, row in enumerate(rows):
            row["services"][key] = {
                "population_covered": float(pop_in[i]) if searched[i] else None,
                "elderly_covered": float(old_in[i]) if searched[i] else None,
                "population_covered_share": _share(pop_in[i], people.sum()) if searched[i] else None,
                "elderly_covered_share": _share(old_in[i], elderly.sum()) if searched[i] else None,
            }
    return rows


def _share(part: float, whole: float) -> float | None:
    return float(part / whole) if whole > 0 else None
