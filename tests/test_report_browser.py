"""The report of shipped examples, laid out by headless Chromium at 1280 px: nothing wider than the
window, every figure present with its alt text and caption, the summary in the first screen, no
column header that is a raw field name (topo.io.report.measure_layout).

Examples rendered here are the ones small enough to optimize in a test (one worker, a short time
limit, no failure stage): small, serving-disagg (with the serving chart), dgx-superpod-h100 and
h100-rail-roce. Every shipped example, with the failure stage, is checked the same way by
benchmarks/check_reports.py (minutes per example at 4k-131k accelerators on two cores: too slow
for the suite).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

import topo
from topo.io import report as rp
from topo.io.plan import to_jsonable

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
IN_TEST = ("small", "serving-disagg", "dgx-superpod-h100", "h100-rail-roce")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, SCREEN = rp.LAYOUT_WIDTH, rp.LAYOUT_SCREEN


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium): the report's "
                                             "layout at 1280 px is not measured")
@pytest.mark.parametrize("name", IN_TEST)
def test_example_report_at_1280_px(name, tmp_path):
    from topo.pipeline import optimize
    c = topo.from_dict(yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text()), base_dir=str(EXAMPLES))
    plan = optimize(c, time_limit=2, seed=1, workers=1, failures=False)
    plan = json.loads(json.dumps(to_jsonable(plan)))
    m = rp.measure_layout(rp.render_html(plan), browser=CHROMIUM)
    assert m["doc"] <= WIDTH, m
    assert m["bad"] == [], m["bad"]
    expected = {"fig-tiers", "fig-floor", "fig-peaks"}
    # with a budget the chosen plane 0 is the right half of the before/after figure, else its own figure
    expected |= {"fig-cost", "fig-before-after"} if plan.get("budget") else {"fig-plane-0"}
    if plan.get("serving"):
        expected |= {"fig-serving"}
    assert expected <= set(m["figs"]), (expected - set(m["figs"]))
    assert m["nofig"] == [], m["nofig"]
    assert m["kpis"] >= 3
    assert m["summary_bottom"] <= SCREEN, m        # key figures and the jobs' table in the first screen
    assert len(m["heads"]) > 30 and m["raw_heads"] == [], m["raw_heads"]


def test_probe_catches_a_wide_element_and_a_figure_without_caption(tmp_path):
    """The measurement can fail: a table wider than the window, a bare figure, a raw field name as a
    header and a summary without cards are reported."""
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    page = ("<!DOCTYPE html><html><body><section id='overview'><div class='kpis'></div></section>"
            "<div style='width:2000px'>wide</div><figure id='fig-x'><svg></svg></figure></body></html>")
    page = page.replace("</figure>", "</figure><table><tr><th scope='col'>cost_each_usd</th></tr></table>")
    m = rp.measure_layout(page, browser=CHROMIUM)
    assert m["doc"] > WIDTH and any(b.startswith("DIV") for b in m["bad"]) and m["nofig"] == ["fig-x"]
    assert m["raw_heads"] == ["cost_each_usd"] and m["kpis"] == 0
