"""The report shows the walking-speed sensitivity and the step-free comparison when a run asked for them."""

from __future__ import annotations

from carecircle.maps import planning_report as R
from carecircle.maps import labels as L
from fixtures_maps import LABELS, small_inputs


def _summary() -> dict:
    rows = [{"preset": "standard", "speed_kmh": 4.0, "source": "GB 50180-2018", "distance_m": 1000.0,
             "services": {"day_care": {"elderly_covered_share": 0.8125}, "meal": {"elderly_covered_share": 0.5}}},
            {"preset": "frail", "speed_kmh": 3.0, "source": "EWGSOP2", "distance_m": 750.0,
             "services": {"day_care": {"elderly_covered_share": 0.4375}, "meal": {"elderly_covered_share": 0.25}}}]
    both = {"standard": {"services": {"day_care": {"elderly_covered_share": 0.8125}}},
            "step_free": {"services": {"day_care": {"elderly_covered_share": 0.625}}}}
    return {"speed_sensitivity": {"minutes": 15, "rows": rows}, "step_free_comparison": both}


def test_report_tables_the_speed_presets_and_the_step_free_network():
    d = small_inputs()
    lab = L.Labels("zh", LABELS, d["services"])
    blocks = R.report_blocks(streets=d["streets"], communities=d["communities"], actions=d["actions"],
                             summary=_summary(), lab=lab, charts=False)
    titles = [b[1] for b in blocks if b[0] == "h3"]
    assert "步速敏感性（老年人步行较慢时的覆盖率）" in titles and "无障碍路网对比（不含台阶）" in titles
    speeds = next(b[1] for b in blocks if b[0] == "table" and "speed_kmh" in b[1].columns)
    assert speeds["speed_kmh"].tolist() == [4.0, 3.0] and speeds["distance_m"].tolist() == [1000.0, 750.0]
    assert speeds["elderly_covered_share_day_care"].tolist() == [0.8125, 0.4375]
    page = R.render_html(blocks, lab)
    # 0.4375 is shown as a percentage, 750 m as a whole number.
    assert "44%" in page and "750" in page and "EWGSOP2" in page and "无障碍路网" in page


def test_report_has_no_walk_tables_when_not_asked():
    d = small_inputs()
    lab = L.Labels("zh", LABELS, d["services"])
    blocks = R.report_blocks(streets=d["streets"], communities=d["communities"], actions=d["actions"],
                             summary={}, lab=lab, charts=False)
    assert not any(b[0] == "h3" and "步速" in b[1] for b in blocks)
