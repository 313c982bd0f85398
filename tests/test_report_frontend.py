"""The report's front-end fabric (its size, its own link budget's cost and power or why it has none,
where it sits beside the back-end, a summary that keeps the two fabrics' money apart), plus the plane
diagrams drawn once and the plurals of report text."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

import topo
from topo.io import report as rp

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "serving-frontend.yaml"


@pytest.fixture(scope="module")
def plan() -> dict:
    """`topo optimize`'s plan for the shipped example with a 2-tier front-end (its own is one switch,
    which has no uplinks to budget), without the failure stage."""
    from topo.io.plan import to_jsonable
    from topo.pipeline import optimize
    d = yaml.safe_load(EXAMPLE.read_text())
    d["front_end"]["fabric"]["tiers"] = [{"switch": "th4-64x400", "oversubscription": 3}, {"switch": "th4-64x400"}]
    p = optimize(topo.from_dict(d), time_limit=5, seed=1, workers=1, failures=False)
    return json.loads(json.dumps(to_jsonable(p)))


def _section(plan, sid):
    return next((s for s in rp.build_sections(plan) if s.id == sid), None)


def test_front_end_budget_in_summary_and_section(plan):
    fe = plan["front_end"]
    cost = fe["budget"]["cost"]
    assert cost["chosen"]["total_usd"] < cost["as_given"]["total_usd"]
    # the plan's totals are the back-end's alone: the front-end is a card and a sentence of its own
    assert plan["budget"]["cost"]["chosen"]["switch_counts"] == [t["switches"] for t in plan["describe_after"]["tiers"]]
    glance = _section(plan, "overview")
    cards = {k: (v, n) for k, v, n in glance.kpis}
    assert cards["Front-end fabric"][0] == rp.usd(cost["chosen"]["total_usd"])
    assert f"({rp.usd(cost['as_given']['total_usd'])} as given)" in cards["Front-end fabric"][1]
    assert cards["Cost"][0] == rp.usd(plan["budget"]["cost"]["chosen"]["total_usd"])
    assert cards["Cost"][1].endswith("back-end fabric")
    assert any(p.startswith("Front-end fabric (a separate Clos network") and "24 hosts, 2 tiers (1 leaf switch, "
               "1 spine switch)" in p for p in glance.paragraphs)
    costs = dict(_section(plan, "summary").bullets)["What it costs"]
    assert f"front-end fabric capex {rp.usd(cost['chosen']['capex_usd'])}" in costs and "(back-end fabric)" in costs
    s = _section(plan, "front-end")
    cap = [t for t in s.tables if t.caption.startswith("Front-end cost")][0]
    assert cap.rows[0][0] == "chosen" and rp.usd(cost["chosen"]["total_usd"]) in cap.rows[0]
    assert cap.rows[1][0] == "as given" and rp.usd(cost["as_given"]["total_usd"]) in cap.rows[1]
    tiers = [t for t in s.tables if t.caption.startswith("Front-end switch tiers")][0]
    assert [r[0] for r in tiers.rows] == ["leaf", "spine"]
    assert "independent check passed" in " ".join(s.paragraphs)
    fig = next(f for f in s.figures if f.id == "fig-front-end")
    assert "as chosen by its link budget" in fig.caption and "24 hosts" in fig.caption
    svg = rp.figure_svg(fig)
    assert "front-end (hosts" in svg and "24 endpoints" in svg


def test_front_end_not_sized_says_so(plan):
    p = copy.deepcopy(plan)
    p["front_end"]["budget"] = None
    p["front_end"]["budget_not_sized"] = "front_end.fabric.tiers: a one-tier fabric has no uplinks to budget"
    glance = _section(p, "overview")
    cards = {k: (v, n) for k, v, n in glance.kpis}
    assert cards["Front-end fabric"][0] == "2 switches" and "cost not in the plan" in cards["Front-end fabric"][1]
    s = _section(p, "front-end")
    text = " ".join(s.paragraphs)
    assert "Front-end link budget: not sized (front_end.fabric.tiers: a one-tier fabric has no uplinks" in text
    assert "holds no cost or power for the front-end" in text
    assert not [t for t in s.tables if t.caption.startswith("Front-end cost")]
    assert "as given" in next(f for f in s.figures if f.id == "fig-front-end").caption
    assert "no cost or power in the plan" in dict(_section(p, "summary").bullets)["What it costs"]


def test_no_front_end_no_section(plan):
    p = copy.deepcopy(plan)
    del p["front_end"]
    assert _section(p, "front-end") is None
    glance = _section(p, "overview")
    assert "Front-end fabric" not in {k for k, _, _ in glance.kpis}
    assert not any("back-end" in n for _, _, n in glance.kpis)
    md, _ = rp.render_markdown(p)
    assert "Front-end" not in md


def test_plurals():
    assert rp.count_of(1, "spine switch") == "1 spine switch"
    assert rp.count_of(2, "spine switch") == "2 spine switches"
    assert rp.count_of(1, "leaf") == "1 leaf" and rp.count_of(3, "leaf") == "3 leaves"
    assert rp.count_of(0, "job") == "0 jobs" and rp.count_of(1.0, "year") == "1 year"
    assert rp.count_of(2, "super-spine") == "2 super-spines" and rp.count_of(2, "policy") == "2 policies"
    assert rp.count_of(4096, "rack") == "4,096 racks"


def test_plane_zero_drawn_once():
    """With a before/after figure the chosen plane 0 is its right half: the per-plane figures leave out
    plane 0 and the planes alike (the before/after caption names them), and draw it without one."""
    d = yaml.safe_load((EXAMPLE.parent / "small.yaml").read_text())
    d["fabric"]["planes"] = 2
    for n in d["node_types"]:
        n["nic_ports"] = 2
    plan = {"cluster_file": d, "cluster_file_after": d}
    fabrics = rp._Fabrics(plan)
    ba = rp._before_after_figure(plan, fabrics)
    assert ba.caption.startswith("Plane 0 of 2 (every plane of the chosen fabric alike)")
    assert rp._plane_figures(plan, fabrics, skip_plane0=True) == []
    assert [f.title for f in rp._plane_figures(plan, fabrics)] == ["Fabric of planes 0, 1 (2 alike)"]
