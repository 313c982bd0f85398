"""Design requirements (requirements: in the cluster file; topo budget --min-bisection and
--scenario): a bisection floor per accelerator and traffic scenarios (uniform all-to-all,
worst-case permutation, the job mix with growth), honoured by the budget and measured by the
independent check; the plan, the report and the summary's risks show them."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from topo.solve import budget_check
from topo.solve import linkbudget as B
from topo.cli.app import main
from topo.core.errors import SpecError
from topo.model.fabric import build
from topo.model.spec import from_dict, wire_efficiency

from conftest import EXAMPLES, cluster_dict, sw
from helpers.budget_brute import instance

SMALL = EXAMPLES / "small.yaml"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _tiny(radix=(8, 8), racks=6, nodes=4, **kw):
    d = instance([sw(r) for r in radix], racks, nodes, **kw)
    c = from_dict(d)
    return d, c, build(c)


# --- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize("req,path", [
    ({"min_bisection_gbps_per_accelerator": -1}, "requirements.min_bisection_gbps_per_accelerator"),
    ({"min_bisection_gbps_per_accelerator": float("nan")}, "requirements.min_bisection_gbps_per_accelerator"),
    ({"scenarios": [{"kind": "bogus"}]}, "requirements.scenarios[0].kind"),
    ({"scenarios": [{"kind": "jobs"}, {"kind": "uniform", "gbps_per_endpoint": -3}]},
     "requirements.scenarios[1].gbps_per_endpoint"),
    ({"scenarios": [{"kind": "uniform", "gbps_per_endpoint": float("nan")}]}, "requirements.scenarios[0].gbps_per_endpoint"),
    ({"scenarios": [{"kind": "permutation"}]}, "requirements.scenarios[0]"),
    ({"scenarios": [{"kind": "uniform", "gbps_per_endpoint": 10, "growth": 2}]}, "requirements.scenarios[0]"),
    ({"scenarios": [{"kind": "jobs", "growth": 0.5}]}, "requirements.scenarios[0].growth"),
    ({"scenarios": []}, "requirements.scenarios"),
    ({"bisection": 100}, "requirements.bisection"),
])
def test_bad_requirements_name_their_json_path(req, path):
    d = copy.deepcopy(instance([sw(8), sw(8)], 2, 4))
    d["requirements"] = req
    with pytest.raises(SpecError) as e:
        from_dict(d)
    assert any(p == path for p, _ in e.value.errors), e.value.errors


def test_bad_requirements_in_a_file_exit_2(tmp_path):
    d = yaml.safe_load(SMALL.read_text())
    d["requirements"] = {"scenarios": [{"kind": "incast", "gbps_per_endpoint": 10}]}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(d))
    r = run("budget", p)
    assert r.exit_code == 2
    assert "requirements.scenarios[0].kind" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("args,where", [
    (("--scenario", "bogus=1"), "--scenario[0]"),
    (("--scenario", "jobs", "--scenario", "uniform"), "--scenario[1]"),
    (("--scenario", "permutation=-4"), "--scenario[0]"),
    (("--scenario", "jobs=0.5"), "--scenario[0]"),
    (("--min-bisection", "nan"), "--min-bisection"),
    (("--min-bisection", "-1"), "--min-bisection"),
])
def test_bad_options_exit_2(args, where):
    r = run("budget", SMALL, *args)
    assert r.exit_code == 2, r.output
    assert where in r.output and "Traceback" not in r.output


def test_unreachable_floor_is_infeasible_with_the_reason():
    d, c, f = _tiny()
    with pytest.raises(SpecError) as e:
        B.budget(c, f, workers=1, seed=1, min_bisection=401)
    (where, msg), = e.value.errors
    assert where == "min_bisection"   # the library names its parameter; the CLI shows --min-bisection
    assert "401 Gb/s per accelerator" in msg and "the most any design reaches is 400 Gb/s" in msg
    # in the file: the field's path; the CLI exits 2, as for a target no budget meets
    d["requirements"] = {"min_bisection_gbps_per_accelerator": 450}
    with pytest.raises(SpecError) as e:
        B.budget(from_dict(d), workers=1, seed=1)
    assert e.value.errors[0][0] == "requirements.min_bisection_gbps_per_accelerator"
    r = run("budget", SMALL, "--min-bisection", 500)
    assert r.exit_code == 2 and "no link budget reaches a bisection of 500 Gb/s per accelerator" in r.output


def test_a_scenario_no_design_can_meet_is_reported_not_met():
    """Uniform at line rate loads the leaf uplinks beyond 50% even when non-blocking: the budget
    runs them as loaded as the non-blocking design (its effective target), and the requirement
    is reported not met, with a negative margin, in the text and in the plan's rows."""
    d, c, f = _tiny()
    r = B.budget(c, f, workers=1, seed=1, target_util=0.5, scenarios=["uniform=400"])
    row, = r.requirements["rows"]
    assert row["met"] is False and row["margin"] < 0 and row["effective_target"]["leaf-spine"] > 0.5
    assert row["achieved"] == pytest.approx(0.5 - row["margin"])
    t = run("budget", SMALL, "--target-util", 0.5, "--scenario", "uniform=400", "--workers", 1)
    assert t.exit_code == 0 and "NOT MET *" in t.output and "no design meets it" in t.output


# --- the floor binds --------------------------------------------------------------------------
def test_floor_binds_and_changes_the_design():
    d, c, f = _tiny()
    free = B.budget(c, f, workers=1, seed=1)
    below = free.requirements["bisection"]["chosen"]["per_accelerator_gbps"]
    assert below < 150  # the cheapest design without the floor violates it
    r = B.budget(c, f, workers=1, seed=1, min_bisection=150)
    got = r.requirements["bisection"]["chosen"]["per_accelerator_gbps"]
    assert got >= 150 and r.check["ok"] and r.solver["status"] == "optimal"
    assert r.cost["chosen"]["total_usd"] > free.cost["chosen"]["total_usd"]
    assert r.cluster_after["fabric"]["tiers"] != free.cluster_after["fabric"]["tiers"]
    row, = r.requirements["rows"]
    assert row["requirement"] == "bisection per accelerator" and row["source"] == "min_bisection"
    assert row["required"] == 150 and row["achieved"] == pytest.approx(got) and row["met"]
    assert row["margin"] == pytest.approx(got - 150) and row["model"] == pytest.approx(got)
    assert any(s.startswith("design requirements: bisection at least 150") for s in r.solver["space"])
    # the same floor from the file
    d["requirements"] = {"min_bisection_gbps_per_accelerator": 150}
    rf = B.budget(from_dict(d), workers=1, seed=1)
    assert rf.cost["chosen"]["total_usd"] == pytest.approx(r.cost["chosen"]["total_usd"])
    assert rf.requirements["rows"][0]["source"] == "requirements.min_bisection_gbps_per_accelerator"


def test_checker_rejects_a_design_below_the_floor():
    d, c, f = _tiny()
    free = B.budget(c, f, workers=1, seed=1)
    ca = from_dict(free.cluster_after)
    chk = budget_check.check(ca, B._demands(ca, build(ca), None), survive="none", target_util=0.8,
                             requirements={"min_bisection_gbps_per_accelerator": 150, "scenarios": []})
    assert not chk["ok"] and any("below the floor 150" in p for p in chk["problems"])


# --- scenarios: hand calculations on a tiny Clos ----------------------------------------------
def _leaf_3_to_1():
    """2 tiers of 8-port switches, 24 single-port endpoints, leaves 6 down / 2 up (3:1): 4 leaves."""
    d, c, f = _tiny()
    d["fabric"]["tiers"][0].update(oversubscription=3, bundle=1)
    c = from_dict(d)
    return d, c, build(c)


def test_uniform_load_matches_a_hand_calculation():
    """Each of N = 24 endpoints sends r = 100 Gb/s, r / 23 to every other. A leaf of n = 6 sends
    6 x 18 x 100 / 23 = 469.57 Gb/s out over its 2 uplinks of 400 Gb/s: 58.70%."""
    d, c, f = _leaf_3_to_1()
    assert f.meta["endpoint_ports_per_leaf"] == 6 and f.meta["leaf_up_ports"] == 2
    hand = 6 * 18 * 100 / 23 / (2 * 400)
    # the budget's model (port counts, no flows)
    sc = [{"kind": "uniform", "gbps": 100.0, "label": "u", "where": "x"}]
    data = B._Data(c, f, B._demands(c, f, None).select(np.zeros(0, bool)), 1.0, sc)
    lv = data.leaves(6)
    assert lv["t1_parts"][1] / (2 * 400) == pytest.approx(hand, rel=1e-12)
    # the checker: aggregated uniform loads (topo.routing.uniform_loads)
    chk = budget_check.check(c, data_demands_empty(c, f), survive="none", target_util=0.8,
                             requirements={"scenarios": [dict(sc[0])]})
    u = chk["requirements"]["scenarios"][0]["util"]["leaf-spine"]
    assert u == pytest.approx(hand, rel=1e-9)
    # and the same pattern expanded into its 552 flows, routed one by one
    from topo.routing.engine import route
    from topo.traffic.demand import Demands
    n = f.n_endpoints
    s, t = np.nonzero(~np.eye(n, dtype=bool))
    dem = Demands(s.astype(np.int64), t.astype(np.int64), np.ones(s.size), np.full(s.size, -1, np.int32),
                  np.full(s.size, 100.0 / (n - 1)))
    rr = route(f, dem, "fluid", efficiency=1.0)
    m = f.link_tier == 1
    assert float(np.max(np.asarray(rr.utilization)[m])) == pytest.approx(hand, rel=1e-9)


def data_demands_empty(c, f):
    return B._demands(c, f, None).select(np.zeros(0, bool))


def test_permutation_bound_is_reached_by_a_permutation():
    """Worst case over permutations at r = 100: a leaf of 6 of the 24 endpoints can send all 6
    flows out (min(6, 18) = 6): 600 Gb/s over 800, 75%. The shift by 12 (every flow leaves its
    leaf) reaches it when routed."""
    d, c, f = _leaf_3_to_1()
    sc = {"kind": "permutation", "gbps": 100.0, "label": "p"}
    chk = budget_check.check(c, data_demands_empty(c, f), survive="none", target_util=0.8,
                             requirements={"scenarios": [sc]})
    assert chk["requirements"]["scenarios"][0]["util"]["leaf-spine"] == pytest.approx(0.75)
    data = B._Data(c, f, data_demands_empty(c, f), 1.0, [dict(sc, where="x")])
    assert data.leaves(6)["t1_parts"][1] == pytest.approx(600.0)
    from topo.routing.engine import route
    from topo.traffic.demand import Demands
    n = f.n_endpoints
    s = np.arange(n, dtype=np.int64)
    dem = Demands(s, (s + n // 2) % n, np.ones(n), np.full(n, -1, np.int32), np.full(n, 100.0))
    rr = route(f, dem, "fluid", efficiency=1.0)
    assert float(np.max(np.asarray(rr.utilization)[f.link_tier == 1])) == pytest.approx(0.75)


def test_uniform_on_three_tiers_and_two_planes_matches_routing():
    """The model's uniform loads per leaf and per pod equal the aggregated routed loads of the
    design the budget chose (3 tiers; 2 planes, one port on each)."""
    for radix, racks, planes in (((6, 6, 6), 6, 1), ((8, 8, 8), 6, 2)):
        d, c, f = _tiny(radix, racks, 4, planes=planes)
        r = B.budget(c, f, workers=1, seed=1, scenarios=["uniform=150"])
        assert r.check["ok"]
        row, = r.requirements["rows"]
        assert row["source"] == "scenarios[0]" and row["met"]
        ca = from_dict(r.cluster_after)
        fa = build(ca)
        data = B._Data(ca, fa, data_demands_empty(ca, fa), 1.0, [{"kind": "uniform", "gbps": 150.0, "where": "x"}])
        E = int(fa.meta["endpoint_ports_per_leaf"])
        g = 400.0
        model1 = data.leaves(E)["t1_parts"][1] / (g * int(fa.meta["leaf_up_ports"]))
        pd = data.pods(E, int(fa.meta["leaves_per_pod"]), True)
        su = int(fa.meta["spines_per_pod"]) * int(fa.meta["spine_up_ports"])
        model2 = pd["t2_parts"][1] / (g * su)
        assert row["per_tier"]["leaf-spine"] == pytest.approx(model1, rel=1e-9)
        if not pd["partial"]:
            assert row["per_tier"]["spine-super"] == pytest.approx(model2, rel=1e-9)


def test_the_job_mix_is_one_scenario():
    d, c, f = _tiny()
    jobs = B.budget(c, f, workers=1, seed=1)
    # without the jobs scenario the job mix is not carried: a light uniform load needs less
    light = B.budget(c, f, workers=1, seed=1, scenarios=["uniform=10"])
    assert light.cost["chosen"]["total_usd"] <= jobs.cost["chosen"]["total_usd"]
    assert [x["requirement"] for x in light.requirements["rows"]] == ["uniform 10 Gb/s per endpoint"]
    # growth scales the job mix: its routed utilisation on the chosen design is growth x today's
    g = B.budget(c, f, workers=1, seed=1, scenarios=["jobs=1.5"])
    row, = g.requirements["rows"]
    assert row["requirement"] == "job mix x 1.5"
    ca = from_dict(g.cluster_after)
    fa = build(ca)
    base = budget_check.routed_peaks(fa, B._demands(c, f, None), wire_efficiency(c))["tier_max"]["leaf-spine"]
    assert row["achieved"] == pytest.approx(1.5 * base, rel=1e-9)
    assert row["margin"] == pytest.approx(0.8 - 1.5 * base, rel=1e-9)


def test_uniform_scenario_refused_for_dual_homed_nics():
    d = cluster_dict(n_racks=4, nodes_per_rack=2, accel=4, tiers=[{"switch": sw(16)}, {"switch": sw(16)}],
                     dual_homed=True)
    d["node_types"][0]["nic_ports"] = 2
    d["requirements"] = {"scenarios": [{"kind": "uniform", "gbps_per_endpoint": 50}]}
    c = from_dict(d)
    f = build(c)
    with pytest.raises(SpecError) as e:
        B.budget(c, f, workers=1, seed=1)
    assert e.value.errors[0][0] == "requirements.scenarios[0]" and "dual-homed" in e.value.errors[0][1]


# --- at scale: the aggregated uniform path ----------------------------------------------------
def test_uniform_scenario_at_16k_is_not_expanded_into_flows():
    """16,384 endpoints: 268 million pairs; the scenario is budgeted from port counts and checked
    with the aggregated uniform loads (a per-flow uniform pattern is refused at this size)."""
    d = cluster_dict(n_racks=512, nodes_per_rack=4, accel=8,
                     tiers=[{"switch": sw(128)}, {"switch": sw(128)}, {"switch": sw(128)}])
    d["node_types"][0]["scaleup"] = {"size": 8}
    d["goals"] = {"workers": 1, "seed": 1, "time_limit_s": 30}
    d["requirements"] = {"min_bisection_gbps_per_accelerator": 100,
                         "scenarios": [{"kind": "uniform", "gbps_per_endpoint": 100}]}
    c = from_dict(d)
    f = build(c)
    assert f.n_endpoints == 16384
    r = B.budget(c, f, max_oversubscription="leaf=1")
    assert r.check["ok"] and all(x["met"] for x in r.requirements["rows"])
    assert r.tiers[0]["oversubscription"] == pytest.approx(1.0)


# --- CLI, plan, report ------------------------------------------------------------------------
def test_cli_json_and_text_show_each_requirement():
    r = run("budget", SMALL, "--min-bisection", 150, "--scenario", "uniform=100", "--scenario", "jobs=1.2",
            "--json", "--workers", 1)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout if hasattr(r, "stdout") else r.output)
    rows = d["requirements"]["rows"]
    assert [x["source"] for x in rows] == ["min_bisection", "scenarios[0]", "scenarios[1]"]  # the budget parameters they came from
    assert all(x["met"] and x["margin"] >= 0 for x in rows)
    t = run("budget", SMALL, "--min-bisection", 150, "--scenario", "uniform=100", "--workers", 1)
    assert t.exit_code == 0
    assert "bisection per accelerator" in t.output and "at least 150.0 Gb/s" in t.output
    assert "uniform 100 Gb/s per endpoint" in t.output and "bisection (one direction): chosen" in t.output


def test_summary_names_a_bisection_cut_as_a_risk():
    from topo.io.report import _requirement_risks
    plan = {"describe_before": {"bisection_gbps": 3_302_000.0, "bisection_per_accelerator_gbps": 403.1},
            "describe_after": {"bisection_gbps": 154_000.0, "bisection_per_accelerator_gbps": 18.8},
            "budget": {"requirements": {"rows": []}}}
    risk, = _requirement_risks(plan)
    assert "cuts bisection from 3,302 to 154 Tb/s" in risk and "403.1 -> 18.8 Gb/s per accelerator" in risk
    assert "no bisection floor is stated" in risk
    plan["budget"]["requirements"]["rows"] = [
        {"requirement": "bisection per accelerator", "unit": "Gb/s", "required": 10.0, "achieved": 18.8, "met": True},
        {"requirement": "uniform 100 Gb/s per endpoint", "unit": "peak switch-link utilisation", "required": 0.8,
         "achieved": 0.9, "met": False}]
    risks = _requirement_risks(plan)
    assert "against a stated floor of 10 Gb/s per accelerator" in risks[0]
    assert risks[1].startswith("requirement not met: uniform 100 Gb/s per endpoint")
    # no cut, nothing unmet: no risk
    plan["describe_after"] = plan["describe_before"]
    plan["budget"]["requirements"]["rows"] = plan["budget"]["requirements"]["rows"][:1]
    assert _requirement_risks(plan) == []


def test_file_requirements_honoured_by_optimize_and_for_transport(tmp_path):
    """topo optimize reads requirements from the file: the plan's budget section lists each
    requirement (required, achieved, margin), the report shows the table, and the summary names
    the bisection the budget cuts, with the floor."""
    from topo.pipeline import optimize
    from topo.io.report import build_sections
    from topo.model.spec import load
    d = yaml.safe_load(SMALL.read_text())
    d["requirements"] = {"min_bisection_gbps_per_accelerator": 200,
                         "scenarios": [{"kind": "uniform", "gbps_per_endpoint": 100}, {"kind": "jobs", "growth": 1.2}]}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(d))
    plan = optimize(load(p), seed=1, workers=1, failures=False)
    rows = plan["budget"]["requirements"]["rows"]
    assert [r["source"] for r in rows] == ["requirements.min_bisection_gbps_per_accelerator",
                                           "requirements.scenarios[0]", "requirements.scenarios[1]"]
    assert all(r["met"] for r in rows) and rows[0]["achieved"] >= 200
    assert plan["describe_after"]["bisection_per_accelerator_gbps"] >= 200
    secs = {s.id: s for s in build_sections(plan)}
    caps = [t.caption for t in secs["budget"].tables]
    assert any(c.startswith("Design requirements") for c in caps)
    risk = dict(secs["summary"].bullets)["What is at risk"]
    assert plan["describe_after"]["bisection_gbps"] < plan["describe_before"]["bisection_gbps"]  # a cut
    assert "the link budget cuts bisection from 26.4 to" in risk and "stated floor of 200 Gb/s" in risk
    # --for-transport keeps the requirements
    j = json.loads(run("budget", p, "--for-transport", "--json", "--workers", 1).output)
    assert [r["source"] for r in j["requirements"]["rows"]] == [r["source"] for r in rows]
