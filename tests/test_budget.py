"""Link budgets: CP-SAT against enumeration, BOM against the rebuilt fabric, fat trees, Meta's 1:7, bad input."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from topo.solve import linkbudget as B
from topo.routing.describe import bill_of_materials
from topo.core.errors import SpecError
from topo.model.fabric import build
from topo.model.spec import from_dict, load, wire_efficiency
from topo.traffic.demand import Demands

from conftest import EXAMPLES, cluster_dict, sw
from helpers.budget_fidelity import without_timings


def _demands(src, dst, rate):
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    rate = np.asarray(rate, np.float64)
    return Demands(src, dst, rate * 1e9 / 8, np.full(src.size, -1, np.int32), rate)


def _random_demands(n_ep, n_flows, gbps, seed):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, n_ep, n_flows)
    d = rng.integers(0, n_ep, n_flows)
    keep = s != d
    return _demands(s[keep], d[keep], rng.uniform(0.2, 1.0, keep.sum()) * gbps)


def _single_host_nodes(n_racks, nodes_per_rack, family="clos", **fabric):
    """Hosts with one accelerator each (scale-up domain of 1), so every flow uses the fabric."""
    d = cluster_dict(n_racks=n_racks, nodes_per_rack=nodes_per_rack, accel=1, family=family, **fabric)
    d["node_types"][0]["scaleup"] = {"size": 1}
    d["transport"] = {"protocol": "ideal"}
    return d


def _two_tier(radix=16, n_racks=8, nodes=2, **goals):
    d = cluster_dict(n_racks=n_racks, nodes_per_rack=nodes, accel=8,
                     tiers=[{"switch": sw(radix)}, {"switch": sw(radix, cost_usd=12000)}])
    d["transport"] = {"protocol": "ideal"}
    d["goals"] = goals
    return from_dict(d)


def _three_tier(radix=16, n_racks=8, nodes=2, **goals):
    d = cluster_dict(n_racks=n_racks, nodes_per_rack=nodes, accel=8,
                     tiers=[{"switch": sw(radix)}, {"switch": sw(radix, cost_usd=11000)},
                            {"switch": sw(radix, power_w=1200, cost_usd=15000)}])
    d["transport"] = {"protocol": "ideal"}
    d["goals"] = goals
    return from_dict(d)


def _tables(c, dem, survive, tau):
    f = build(c)
    data = B._Data(c, f, dem, wire_efficiency(c))
    names, specs, extra = B._tier_specs(c, f)
    b1 = c.file.fabric.tiers[0].bundle if c.file.fabric.family != "fat_tree" else 1
    if f.n_tiers == 3 and b1 is None:
        b1 = 1
    return f, B._tables(data, names, specs, f.n_tiers == 3, survive, tau, None, b1, math.inf), extra


# --- CP-SAT agrees with brute-force enumeration -------------------------------------------------
INSTANCES = [
    # (tiers, seed, flows, Gb/s per flow, survive, tau, objective)
    (2, 1, 400, 10.0, "none", 0.8, "cost"),
    (2, 2, 400, 25.0, "link", 0.8, "cost"),
    (2, 3, 800, 12.0, "switch", 0.7, "cost"),
    (2, 4, 300, 30.0, "none", 0.6, "power"),
    (2, 5, 600, 8.0, "switch", 0.9, "balanced"),
    (3, 6, 400, 10.0, "none", 0.8, "cost"),
    (3, 7, 400, 25.0, "link", 0.8, "cost"),
    (3, 8, 600, 15.0, "switch", 0.8, "cost"),
    (3, 9, 300, 40.0, "none", 0.5, "power"),
    (3, 10, 500, 12.0, "link", 0.9, "balanced"),
    (3, 11, 200, 6.0, "switch", 1.0, "power"),
    (2, 12, 1000, 60.0, "link", 1.0, "cost"),
]


@pytest.mark.parametrize("tiers,seed,flows,gbps,survive,tau,objective", INSTANCES)
def test_cp_sat_agrees_with_enumeration(tiers, seed, flows, gbps, survive, tau, objective):
    c = _two_tier() if tiers == 2 else _three_tier()
    dem = _random_demands(128, flows, gbps, seed)
    f, T, _ = _tables(c, dem, survive, tau)
    ref = bill_of_materials(f, c)["totals"]
    wc, ww = B._objective_weights(c, objective, {"capex": ref["network_cost_usd"], "watts": ref["network_kw"] * 1e3})
    brute = B.brute_force(T, survive, tau, wc, ww)
    r = B.solve_cp(T, survive, tau, wc, ww, time_limit=20, seed=1, workers=1)
    if brute is None:
        assert r["choice"] is None and r["status"] == "INFEASIBLE"
        return
    assert r["status"] == "OPTIMAL"
    ev = B.evaluate(T, survive, tau, *r["choice"])
    assert ev is not None, "the solver chose a candidate the enumeration rejects"
    got = wc * ev["capex"] + ww * ev["watts"]
    # integer rounding of costs (whole dollars, milliwatts) and of the energy weight only
    assert got <= brute[0] * (1 + 1e-4) + 1e-6
    assert got >= brute[0] - 1e-9 * abs(brute[0])


@pytest.mark.parametrize("tiers,seed,flows,gbps,survive,tau,objective", INSTANCES[::3])
def test_cp_sat_path_agrees_with_the_exhaustive_path(tiers, seed, flows, gbps, survive, tau, objective):
    """The two ways solve_cp solves the same rows: CP-SAT (tables above EXHAUSTIVE_MAX_SHAPES)
    and the evaluation of every shape (below it) reach the same optimum."""
    c = _two_tier() if tiers == 2 else _three_tier()
    dem = _random_demands(128, flows, gbps, seed)
    f, T, _ = _tables(c, dem, survive, tau)
    ref = bill_of_materials(f, c)["totals"]
    wc, ww = B._objective_weights(c, objective, {"capex": ref["network_cost_usd"], "watts": ref["network_kw"] * 1e3})
    ex = B.solve_cp(T, survive, tau, wc, ww, time_limit=20, seed=1, workers=1, method="exhaustive")
    cp = B.solve_cp(T, survive, tau, wc, ww, time_limit=20, seed=1, workers=1, method="cp")
    assert (ex["method"], cp["method"]) == ("exhaustive", "cp")
    assert ex["status"] == cp["status"]
    if ex["choice"] is None:
        return
    assert cp["status"] == "OPTIMAL"
    v = [wc * e["capex"] + ww * e["watts"] for e in (B.evaluate(T, survive, tau, *r["choice"]) for r in (ex, cp))]
    # CP-SAT's integer objective rounds the costs; the exhaustive one compares them exactly
    assert v[0] <= v[1] + 1e-9 * abs(v[1]) and v[1] <= v[0] * (1 + 1e-6) + 1e-6
    assert ex["objective"] == ex["bound"] == pytest.approx(v[0], rel=1e-12)


def test_exhaustive_rows_are_exact_beyond_int64():
    """The rows' products can leave int64 on large pods: those shapes are compared in Python integers."""
    n = 3
    big = np.array([2 ** 40, 3, 2 ** 40], dtype=np.int64)
    ok = B._le([big, 2 ** 30], [2 ** 40, 2 ** 30], n)   # 2^70 <= 2^70, 3*2^30 <= 2^70
    assert ok.tolist() == [True, True, True]
    ok = B._le([big + 1, 2 ** 30], [2 ** 40, 2 ** 30], n)
    assert ok.tolist() == [False, True, False]


def test_enumeration_instances_are_not_trivial():
    """The agreement test covers infeasible candidates, several feasible ones, and distinct optima."""
    optima, sizes = set(), []
    for tiers, seed, flows, gbps, survive, tau, objective in INSTANCES:
        c = _two_tier() if tiers == 2 else _three_tier()
        dem = _random_demands(128, flows, gbps, seed)
        _, T, _ = _tables(c, dem, survive, tau)
        cands = list(B.enumerate_all(T, survive, tau))
        sizes.append(len(cands))
        ref = {"capex": 1.0, "watts": 1.0}
        wc, ww = B._objective_weights(c, "cost", ref)
        b = B.brute_force(T, survive, tau, wc, ww)
        if b is not None:
            optima.add((tiers, b[1], b[2], b[3]))
    assert sum(1 for s in sizes if s >= 3) >= 8
    assert len(optima) >= 5


# --- the model's counts and prices equal the rebuilt fabric's own ---------------------------------
@pytest.mark.parametrize("tiers", [2, 3])
def test_bom_counts_equal_rebuilt_fabric(tiers):
    c = _two_tier() if tiers == 2 else _three_tier()
    dem = _random_demands(128, 300, 20.0, 3)
    f, T, extra = _tables(c, dem, "none", 1.0)
    cands = list(B.enumerate_all(T, "none", 1.0))
    assert len(cands) >= (6 if tiers == 2 else 50)
    for iE, iD, b, ev in cands[:: max(len(cands) // 12, 1)]:
        _, after = B._cluster_after(c, T.models, T.specs, extra, ev["dec"], tiers == 3)
        fab = build(after)
        bom = bill_of_materials(fab, after)
        assert [s["count"] for s in bom["switches"]] == ev["counts"] == list(fab.tier_switch_counts)
        up = (np.arange(fab.n_links) & 1) == 0
        for t in (1, 2)[: tiers - 1]:
            assert int(((fab.link_tier == t) & up).sum()) == ev["links"][t]
        assert bom["totals"]["network_cost_usd"] == pytest.approx(ev["capex"], rel=1e-9, abs=1e-6)
        assert bom["totals"]["network_kw"] * 1e3 == pytest.approx(ev["watts"], rel=1e-9, abs=1e-6)


def test_budget_result_bom_matches_fabric_and_checker_used_engine():
    c = load(EXAMPLES / "small.yaml")
    r = B.budget(c)
    d = r.to_dict()
    json.dumps(d)
    after = from_dict(d["cluster_after"])
    fab = build(after)
    assert [s["count"] for s in d["bill_of_materials"]["switches"]] == list(fab.tier_switch_counts)
    n_up = int((((np.arange(fab.n_links) & 1) == 0)).sum())
    assert sum(o["links"] for o in d["bill_of_materials"]["optics"]) == n_up
    assert d["check"]["ok"] and d["check"]["routing_model"] == "fluid"
    assert d["solver"]["status"] == "optimal"
    # the routed utilisation of the chosen fabric equals the model's own (fluid ECMP, healthy Clos)
    u = d["utilization"]["leaf-spine"]
    assert u["routed_after"] == pytest.approx(u["model_after"], rel=1e-9)
    assert u["routed_before"] == pytest.approx(u["model_before"], rel=1e-9)
    assert u["routed_after"] <= 0.8 + 1e-9
    assert d["headroom"]["leaf-spine"]["worst_util_after_failure"] <= 1.0
    assert set(d["alternatives"]) == {"cost", "power", "balanced"}
    assert d["cost"]["chosen"]["total_usd"] <= d["cost"]["non_blocking"]["total_usd"]


# --- fat trees: keep full bisection when the traffic needs it, remove uplinks when not --------------
def _fat_tree_k8():
    return _single_host_nodes(16, 8, family="fat_tree", k=8, tiers=[{"switch": sw(64)}])


def test_fat_tree_keeps_full_bisection_under_uniform_all_to_all():
    d = _fat_tree_k8()
    d["traffic"] = [{"pattern": "uniform", "bytes": 1e6}]
    c = from_dict(d)
    r = B.budget(c, survive="none").to_dict()
    t = r["tiers"]
    assert [x["switches"] for x in t] == [32, 32, 16]          # k^2/2, k^2/2, (k/2)^2
    assert t[0]["oversubscription"] == pytest.approx(1.0)
    assert t[1]["oversubscription"] == pytest.approx(1.0)
    fab = build(from_dict(r["cluster_after"]))
    from topo.routing.describe import bisection_gbps
    assert bisection_gbps(fab) == pytest.approx(bisection_gbps(build(c)))
    assert r["check"]["ok"]


def test_fat_tree_removes_uplinks_when_traffic_stays_under_leaves():
    c = from_dict(_fat_tree_k8())
    f = build(c)
    leaf = f.ep_leaf()
    # every endpoint sends to its neighbour under the same leaf at 100 Gb/s
    src = np.arange(f.n_endpoints)
    dst = np.where(leaf[src] == leaf[(src + 1) % f.n_endpoints], (src + 1) % f.n_endpoints, src - 3)
    dem = _demands(src, dst, np.full(src.size, 100.0))
    r = B.budget(c, f, demands=dem, survive="none").to_dict()
    t = r["tiers"]
    assert t[0]["up_ports"] < 4 and t[0]["oversubscription"] > 1.0
    assert sum(x["switches"] for x in t) < 80
    assert r["cost"]["chosen"]["total_usd"] < r["cost"]["non_blocking"]["total_usd"]
    assert r["check"]["ok"]


# --- Meta's 1:7 oversubscribed cross-pod tier ---------------------------------------------------------
def test_meta_one_to_seven_cross_pod_tier_when_traffic_stays_in_pods():
    # radix-16 switches: a spine of 14 down / 2 up ports is 7:1 (Meta's AI zone to ATSW ratio)
    # one link per leaf-spine pair, stated: pods of 14 leaves keep every two-leaf block together
    # (with the bundle free the budget may choose pods of 7 leaves, which split some blocks)
    d = _single_host_nodes(16, 8, tiers=[{"switch": sw(16), "bundle": 1}, {"switch": sw(16)}, {"switch": sw(16)}])
    c = from_dict(d)
    f = build(c)
    # traffic inside blocks of 16 endpoints (two leaves), which pods of 14 leaves keep together
    src = np.arange(f.n_endpoints)
    dst = (src // 16) * 16 + (src + 5) % 16
    dem = _demands(src, dst, np.full(src.size, 200.0))
    r = B.budget(c, f, demands=dem, survive="none", max_oversubscription=7).to_dict()
    spine = r["tiers"][1]
    assert spine["down_ports"] == 14 and spine["up_ports"] == 2
    assert spine["oversubscription"] == pytest.approx(7.0)
    assert r["utilization"]["spine-super"]["routed_after"] == pytest.approx(0.0, abs=1e-12)
    assert r["check"]["ok"]
    # with traffic between halves of a cluster larger than any pod (at most 14 x 14 endpoints), 7:1 is too little
    d = _single_host_nodes(32, 8, tiers=[{"switch": sw(16)}, {"switch": sw(16)}, {"switch": sw(16)}])
    c2 = from_dict(d)
    f2 = build(c2)
    src = np.arange(f2.n_endpoints)
    dst2 = (src + f2.n_endpoints // 2) % f2.n_endpoints
    r2 = B.budget(c2, f2, demands=_demands(src, dst2, np.full(src.size, 200.0)), survive="none",
                  max_oversubscription=7).to_dict()
    assert r2["tiers"][1]["oversubscription"] < 7.0
    assert r2["utilization"]["spine-super"]["routed_after"] <= 0.8 + 1e-9
    assert r2["check"]["ok"]


# --- failures ------------------------------------------------------------------------------------
def test_switch_survival_keeps_a_spare_spine():
    c = _two_tier()
    dem = _random_demands(128, 400, 30.0, 5)
    r0 = B.budget(c, demands=dem, survive="none").to_dict()
    r1 = B.budget(c, demands=dem, survive="switch").to_dict()
    assert r1["tiers"][1]["switches"] >= 2
    assert r1["headroom"]["leaf-spine"]["worst_util_after_failure"] <= 1.0 + 1e-9
    assert r1["cost"]["chosen"]["total_usd"] >= r0["cost"]["chosen"]["total_usd"]
    assert r1["check"]["scenarios"] and r1["check"]["ok"]


# --- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("u", [0.0, -0.1, 1.5])
def test_bad_target_util(u):
    c = load(EXAMPLES / "small.yaml")
    with pytest.raises(SpecError) as e:
        B.budget(c, target_util=u)
    assert "--target-util" in str(e.value)


def test_bad_target_util_in_file():
    d = _single_host_nodes(4, 8, tiers=[{"switch": sw(16)}, {"switch": sw(16)}])
    d["goals"] = {"target_utilization": 1.2}
    with pytest.raises(SpecError) as e:
        from_dict(d)
    assert "goals.target_utilization" in str(e.value)


def test_missing_price_or_watts_named():
    d = _single_host_nodes(4, 8, tiers=[{"switch": "mine"}, {"switch": "mine"}])
    d["catalog"] = {"switches": {"mine": {"radix": 16, "port_gbps": 400, "power_w": 900}},
                    "optics": {"aec": {"max_m": 7, "cost_usd": 500}}}
    with pytest.raises(SpecError) as e:
        from_dict(d)
    msg = str(e.value)
    assert "catalog.switches.mine.cost_usd" in msg and "catalog.optics.aec.watts" in msg


def test_plane_failure_on_one_plane_is_refused():
    c = load(EXAMPLES / "small.yaml")
    with pytest.raises(SpecError) as e:
        B.budget(c, survive="plane")
    assert "plane" in str(e.value) and "goals.survive" in str(e.value)


def test_unsurvivable_failure_names_the_failure_cli(tmp_path):
    from topo.cli.app import main
    # every endpoint sends across the fabric at line rate: leaf uplinks are full even non-blocking,
    # so no budget survives the loss of a link
    d = _single_host_nodes(16, 8, tiers=[{"switch": sw(16)}, {"switch": sw(16)}])
    d["traffic"] = [{"pattern": "uniform", "bytes": 1e6}]
    d["goals"] = {"survive": "link"}
    p = tmp_path / "c.json"
    p.write_text(json.dumps(d))
    out = tmp_path / "b.json"
    res = CliRunner().invoke(main, ["budget", str(p), "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert "link" in res.output and "goals.survive" in res.output
    assert not out.exists()


def test_cli_table_json_and_output(tmp_path):
    from topo.cli.app import main
    out = tmp_path / "budget.json"
    res = CliRunner().invoke(main, ["budget", str(EXAMPLES / "small.yaml"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "bill of materials" in res.output and "non blocking" in res.output and "optimal" in res.output
    d = json.loads(out.read_text())
    assert d["check"]["ok"]
    res = CliRunner().invoke(main, ["budget", str(EXAMPLES / "small.yaml"), "-o", str(out)])
    assert res.exit_code == 2 and "--force" in res.output
    res = CliRunner().invoke(main, ["budget", str(EXAMPLES / "small.yaml"), "--json", "--objective", "power"])
    assert res.exit_code == 0
    d = json.loads(res.output)
    assert d["objective"] == "power"
    res = CliRunner().invoke(main, ["budget", str(EXAMPLES / "small.yaml"), "--target-util", "2"])
    assert res.exit_code == 2 and "--target-util" in res.output


# --- the model's loads are the routing engine's loads; its failure bounds hold -----------------------
def test_model_loads_equal_routed_loads_and_failure_bounds_hold():
    from topo.solve import budget_check
    c = _three_tier()
    dem = _random_demands(128, 500, 10.0, 21)
    f, T, extra = _tables(c, dem, "none", 1.0)
    cands = list(B.enumerate_all(T, "none", 1.0))
    picked = cands[:: max(len(cands) // 6, 1)][:6]
    assert len(picked) >= 5
    for iE, iD, b, ev in picked:
        _, after = B._cluster_after(c, T.models, T.specs, extra, ev["dec"], True)
        fab = build(after)
        r = budget_check.routed_peaks(fab, dem, 1.0)
        assert r["tier_max"]["leaf-spine"] == pytest.approx(ev["util"][0], rel=1e-9, abs=1e-12)
        assert r["tier_max"]["spine-super"] == pytest.approx(ev["util"][1], rel=1e-9, abs=1e-12)
        d = ev["dec"]
        u0, u1, su, spp, b1, b2 = d["u0"], d["u1"], d["spines_per_pod"] * d["u1"], d["spines_per_pod"], d["b1"], d["b2"]
        link_bound = [max(u0 / (u0 - 1), su / (su - 1)) * ev["util"][0],
                      max(u1 / (u1 - 1), u0 / (u0 - 1)) * ev["util"][1]] if min(u0, u1, su) > 1 else None
        # every single leaf-spine and spine-super link failure stays within the model's bound
        if link_bound:
            for t in (1, 2):
                ids = np.flatnonzero((fab.link_tier == t) & ((np.arange(fab.n_links) & 1) == 0))
                for lid in ids[:: max(ids.size // 4, 1)][:4]:
                    rf = budget_check.routed_peaks(fab, dem, 1.0, failed_links=[int(lid)])
                    assert rf["tier_max"]["leaf-spine"] <= link_bound[0] * (1 + 1e-9) + 1e-12
                    assert rf["tier_max"]["spine-super"] <= link_bound[1] * (1 + 1e-9) + 1e-12
        if spp > 1 and u0 > b1 and u1 > b2:
            sw_bound = [max(u0 / (u0 - b1), su / (su - b2)) * ev["util"][0],
                        max(spp / (spp - 1), u1 / (u1 - b2)) * ev["util"][1]]
            for tier in (2, 3):
                node = int(np.flatnonzero(fab.node_tier == tier)[0])
                rf = budget_check.routed_peaks(fab, dem, 1.0, failed_nodes=[node])
                assert rf["tier_max"]["leaf-spine"] <= sw_bound[0] * (1 + 1e-9) + 1e-12
                assert rf["tier_max"]["spine-super"] <= sw_bound[1] * (1 + 1e-9) + 1e-12


def test_catalog_switch_choice_is_the_enumerated_optimum():
    c = load(EXAMPLES / "small.yaml")
    r = B.budget(c, switch_choice="catalog", survive="none").to_dict()
    f = build(c)
    dem = B._demands(c, f, None)
    data = B._Data(c, f, dem, wire_efficiency(c))
    ref = bill_of_materials(f, c)["totals"]
    wc, ww = B._objective_weights(c, "cost", {"capex": ref["network_cost_usd"], "watts": ref["network_kw"] * 1e3})
    best = None
    import itertools
    for ch in itertools.product(sorted(c.switches), repeat=2):
        T = B._tables(data, ch, [c.switches[n] for n in ch], False, "none", 0.8, None, None, math.inf)
        b = B.brute_force(T, "none", 0.8, wc, ww)
        if b is not None and (best is None or b[0] < best[0]):
            best = b
    assert r["solver"]["status"] == "optimal"
    assert r["solver"]["objective"] == pytest.approx(best[0], rel=1e-6)
    assert r["check"]["ok"]


def test_plane_failure_on_a_two_plane_fabric():
    d = cluster_dict(n_racks=8, nodes_per_rack=2, accel=8, planes=2,
                     tiers=[{"switch": sw(16)}, {"switch": sw(16)}, {"switch": sw(16)}])
    d["node_types"][0]["nic_ports"] = 2
    d["transport"] = {"protocol": "ideal"}
    c = from_dict(d)
    dem = _random_demands(128, 400, 20.0, 8)
    r = B.budget(c, demands=dem, survive="plane").to_dict()
    assert r["check"]["ok"] and len(r["check"]["scenarios"]) == 1
    assert r["check"]["scenarios"][0].startswith("plane")
    for k, u in r["utilization"].items():
        assert u["routed_after"] == pytest.approx(u["model_after"], rel=1e-9, abs=1e-12)
        assert r["headroom"][k]["worst_util_after_failure"] <= 1.0 + 1e-9
    fab = build(from_dict(r["cluster_after"]))
    assert fab.planes == 2
    assert [s["count"] for s in r["bill_of_materials"]["switches"]] == list(fab.tier_switch_counts)


# --- transport-aware budgets ---------------------------------------------------------------
def _small_roce(qps=2, **goals):
    import yaml
    d = yaml.safe_load((EXAMPLES / "small.yaml").read_text())
    d["transport"]["qps_per_connection"] = qps
    d.pop("busy_nodes", None)
    d["goals"].update(goals)
    return from_dict(d, base_dir=str(EXAMPLES))


def _roce_times(c, f, placement, seed):
    from topo.routing.engine import analyze
    a = analyze(c, f, placement=placement, routing="roce-hash", seed=seed, compare=False, all_to_all=False)
    return {j["name"]: (j["time_s"], j["ideal_s"]) for j in a.to_dict()["jobs"]}


def _slowdown(base, t):
    total = sum(v[0] for v in t.values()) / sum(v[0] for v in base.values())
    tail = max(v[0] / v[1] for v in t.values()) / max(v[0] / v[1] for v in base.values())
    return total, tail


def test_transport_aware_budget_keeps_jobs_within_the_slowdown():
    # With 2 queue pairs the budget sized for ideal ECMP slows the jobs under RoCE hashing by
    # more than 5%; the transport-aware search lowers the target until it does not. Re-checked
    # here by routing the chosen fabric independently of the search's own numbers.
    from topo.traffic.demand import in_order_placement
    c = _small_roce(qps=2)
    f = build(c)
    pl = in_order_placement(c, f)
    seed = c.file.goals.seed
    base = _roce_times(c, f, pl, seed)
    plain = B.budget(c, f, placement=pl, seed=seed)
    ca = from_dict(plain.cluster_after, base_dir=c.base_dir)
    assert max(_slowdown(base, _roce_times(ca, build(ca), pl, seed))) > 1.05, "instance no longer exercises the search"

    r = B.budget_for_transport(c, f, placement=pl, max_slowdown=1.05, seed=seed)
    tc = r.transport_check
    assert tc["accepted"] and tc["routing"] == "roce-hash" and len(tc["tried"]) >= 2
    assert r.target_utilization == pytest.approx(tc["chosen_target_utilization"])
    assert r.target_utilization < c.file.goals.target_utilization
    ca = from_dict(r.cluster_after, base_dir=c.base_dir)
    total, tail = _slowdown(base, _roce_times(ca, build(ca), pl, seed))
    assert max(total, tail) <= 1.05 + 1e-12
    assert (total, tail) == (pytest.approx(tc["total"]), pytest.approx(tc["tail"]))
    # the search never returns something dearer than a candidate that also passed
    passing = [t for t in tc["tried"] if "error" not in t and t["slowdown"] <= 1.05]
    assert r.cost["chosen"]["total_usd"] == pytest.approx(min(t["total_usd"] for t in passing))


def test_transport_slowdown_compares_the_whole_set():
    base = {"a": (2.0, 1.0), "b": (1.0, 1.0)}
    # a got faster, b slower: summed time equal, worst penalty equal -> no slowdown
    d = B.transport_slowdown(base, {"a": (1.0, 1.0), "b": (2.0, 1.0)})
    assert d["total"] == pytest.approx(1.0) and d["tail"] == pytest.approx(1.0)
    assert d["worst_job"] == "b" and d["worst_job_slowdown"] == pytest.approx(2.0)
    d = B.transport_slowdown(base, {"a": (3.0, 1.0), "b": (1.0, 1.0)})
    assert d["total"] == pytest.approx(4 / 3) and d["tail"] == pytest.approx(1.5) and d["slowdown"] == pytest.approx(1.5)


def test_transport_check_off_is_the_plain_budget():
    c = _small_roce(qps=2, max_job_slowdown=None)
    r = B.budget_for_transport(c, seed=7)
    assert r.transport_check == {}
    assert r.to_dict()["cost"] == B.budget(c, seed=7).to_dict()["cost"]


def test_ideal_transport_passes_at_the_first_target():
    # under ideal ECMP the budget's own constraint (switch links under the target) already
    # keeps every job as fast as on the fabric as given: one step, no slowdown
    c = _small_roce()
    d = c.file.model_dump(mode="json")
    d["transport"] = {"protocol": "ideal"}
    c = from_dict(d, base_dir=c.base_dir)
    r = B.budget_for_transport(c, max_slowdown=1.0 + 1e-9)
    tc = r.transport_check
    assert tc["routing"] == "fluid" and tc["accepted"] and len(tc["tried"]) == 1
    assert tc["slowdown"] <= 1.0 + 1e-9 and r.cost["saved_vs_as_given"]["total_fraction"] > 0


@pytest.mark.parametrize("args,key", [(["--for-transport", "--max-slowdown", "0.5"], "--max-slowdown"),
                                      (["--max-slowdown", "1.2"], "--max-slowdown")])
def test_cli_max_slowdown_bad(args, key):
    from topo.cli.app import main
    r = CliRunner().invoke(main, ["budget", str(EXAMPLES / "small.yaml"), *args])
    assert r.exit_code == 2 and key in r.output and "Traceback" not in r.output


def test_cli_for_transport_prints_the_search():
    from topo.cli.app import main
    r = CliRunner().invoke(main, ["budget", str(EXAMPLES / "small.yaml"), "--for-transport"])
    assert r.exit_code == 0, r.output
    assert "transport check (roce-hash)" in r.output and "p95 penalty" in r.output


def test_transport_slowdown_ignores_jobs_that_cannot_run_as_given():
    base = {"a": (1.0, 1.0), "b": (math.inf, 1.0)}
    d = B.transport_slowdown(base, {"a": (1.0, 1.0), "b": (math.inf, 1.0)})
    assert d["slowdown"] == pytest.approx(1.0)
    d = B.transport_slowdown({"a": (1.0, 1.0)}, {"a": (math.inf, 1.0)})
    assert d["slowdown"] == math.inf  # a job the candidate cannot run fails the check


# --- network racks --------------------------------------------------------------------------
def _small_with_network_limit(kw):
    import yaml
    d = yaml.safe_load((EXAMPLES / "small.yaml").read_text())
    d["floor"]["network_rack_power_limit_kw"] = kw
    return from_dict(d, base_dir=str(EXAMPLES))


def test_network_rack_limit_prunes_switches_that_do_not_fit():
    # the catalog's deep-buffer chassis draws 16 kW: with 12 kW network racks it is never chosen,
    # and every switch of the answer fits a network rack
    c = _small_with_network_limit(12)
    r = B.budget(c, switch_choice="catalog", survive="none", objective="power").to_dict()
    assert r["check"]["ok"]
    for row in r["bill_of_materials"]["switches"]:
        assert row["watts_each"] <= 12e3 and row["model"] != "deep-buffer-576x400"


def test_switch_over_the_network_rack_limit_is_refused(tmp_path):
    c = _small_with_network_limit(1.0)   # the file's 1.1 kW switches cannot be housed
    with pytest.raises(SpecError) as e:
        B.budget(c, survive="none")
    (path, msg), = e.value.errors
    assert path == "floor.network_rack_power_limit_kw" and "th4-64x400" in msg
    # the checker says the same, independently, of a fabric written by hand
    from topo.solve import budget_check
    f = build(c)
    chk = budget_check.check(c, B._demands(c, f, None), survive="none", target_util=1.0)
    assert not chk["ok"] and any("network rack" in p for p in chk["problems"])
    import yaml
    from topo.cli.app import main
    d = yaml.safe_load((EXAMPLES / "small.yaml").read_text())
    d["floor"]["network_rack_power_limit_kw"] = 1.0
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(d))
    r = CliRunner().invoke(main, ["budget", str(tmp_path / "c.yaml"), "-o", str(tmp_path / "b.json")])
    assert r.exit_code == 2 and "floor.network_rack_power_limit_kw" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "b.json").exists()


def test_target_below_what_the_traffic_needs_runs_at_the_nonblocking_need():
    # regression: the CP rows quantise utilisation caps to 1e-6; a cap of exactly the
    # non-blocking grouping's need was floored below it, and CP-SAT called the budgets the
    # enumeration accepts infeasible (the reference at target 0.08: leaf tier needs 0.1067)
    c = load(EXAMPLES / "reference-131k.yaml")
    r = B.budget(c, target_util=0.08, survive="link", time_limit=20, workers=1)
    assert r.solver["status"] == "optimal"
    ls = r.utilization["leaf-spine"]
    assert ls["target"] == 0.08 and ls["effective_target"] > ls["nonblocking_model"] > 0.08
    assert ls["model_after"] <= ls["effective_target"]


# --- decisions per pod: the partly filled last pod's spine uplinks ----------------------------------
def _partial_pod_cluster():
    """40 endpoints on radix-8 switches: 10 leaves per plane, pods of 4, 4 and 2 leaves."""
    d = cluster_dict(n_racks=5, nodes_per_rack=1, accel=8,
                     tiers=[{"switch": sw(8)}, {"switch": sw(8, cost_usd=11000)}, {"switch": sw(8, cost_usd=15000)}])
    d["transport"] = {"protocol": "ideal"}
    return from_dict(d)


def _pods_demands(pairs, gbps, seed, n=200):
    """Flows both ways between endpoint ranges (pod p holds endpoints 16p .. 16p+15)."""
    rng = np.random.default_rng(seed)
    src, dst = [], []
    for a, b in pairs:
        s = rng.integers(16 * a, min(16 * a + 16, 40), n)
        t = rng.integers(16 * b, min(16 * b + 16, 40), n)
        src += [s, t]
        dst += [t, s]
    src, dst = np.concatenate(src), np.concatenate(dst)
    return Demands(src, dst, np.full(src.size, 1e9), np.zeros(src.size, np.int32), np.full(src.size, gbps))


def test_partial_pod_bundle_builds_thinner_uplinks_and_is_checked():
    c = _partial_pod_cluster()
    f = build(c)
    assert f.meta["partial_pod_leaves"] == 2 and f.meta["partial_pod_bundle"] == f.meta["bundles"][1] == 2
    d = c.file.model_dump(mode="json")
    d["fabric"]["tiers"][1]["partial_pod_bundle"] = 1
    g = build(from_dict(d))
    up = (g.node_tier[g.link_src] == 2) & (g.node_tier[g.link_dst] == 3)
    per_spine = np.bincount(g.link_src[up], minlength=g.n_nodes)
    spines = np.flatnonzero(g.node_tier == 2)
    last = g.node_pod[spines] == g.pods - 1
    assert set(per_spine[spines[~last]]) == {4} and set(per_spine[spines[last]]) == {2}
    # every super-spine still reaches every pod (the structural routing takes this fabric)
    from topo.routing import engine as routing
    from topo.routing.clos import clos_plan
    assert clos_plan(g, routing.prepare(g, None)) is not None
    for bad, msg in ((3, "more than the bundle"), (None, None)):
        d["fabric"]["tiers"][1]["partial_pod_bundle"] = bad
        if bad is not None:
            with pytest.raises(SpecError, match=msg):
                build(from_dict(d))
    d["fabric"]["tiers"][0]["partial_pod_bundle"] = 1
    with pytest.raises(SpecError, match=r"fabric.tiers\[0\].partial_pod_bundle"):
        from_dict(d)
    full = cluster_dict(n_racks=4, nodes_per_rack=1, accel=8,
                        tiers=[{"switch": sw(8)}, {"switch": sw(8), "partial_pod_bundle": 1}, {"switch": sw(8)}])
    with pytest.raises(SpecError, match="every pod is full"):
        build(from_dict(full))


def test_partial_pod_decision_follows_its_own_traffic():
    c = _partial_pod_cluster()
    f = build(c)
    ref = bill_of_materials(f, c)["totals"]
    wc, ww = B._objective_weights(c, "cost", {"capex": ref["network_cost_usd"], "watts": ref["network_kw"] * 1e3})
    # traffic between the two full pods only: the last pod's spines need one link per super
    quiet = _pods_demands([(0, 1)], 4.0, 1)
    f, T, extra = _tables(c, quiet, "none", 0.8)
    iD = next(i for i, do in enumerate(T.D_opts) if do["Lp"] == 4)
    thin, thick = (B.evaluate(T, "none", 0.8, 0, iD, (2, bp)) for bp in (1, 2))
    assert thin is not None and thick is not None and thin["capex"] < thick["capex"]
    P, spp, k2 = T.planes, T.pair[(0, iD)]["spp"], T.D_opts[iD]["u1"] // 2
    assert thick["links"][2] - thin["links"][2] == P * spp * k2
    _, after = B._cluster_after(c, T.models, T.specs, extra, thin["dec"], True)
    assert after.file.fabric.tiers[1].partial_pod_bundle == 1
    fab = build(after)
    bom = bill_of_materials(fab, after)
    assert [s["count"] for s in bom["switches"]] == thin["counts"]
    assert int(((fab.link_tier == 2) & (np.arange(fab.n_links) % 2 == 0)).sum()) == thin["links"][2]
    # heavy traffic into the last pod: one link per super is too thin for it
    busy = _pods_demands([(0, 2), (1, 2)], 40.0, 2)
    _, T2, _ = _tables(c, busy, "none", 0.8)
    iD2 = next(i for i, do in enumerate(T2.D_opts) if do["Lp"] == 4)
    if (0, iD2) in T2.pair:
        assert B.evaluate(T2, "none", 0.8, 0, iD2, (2, 1)) is None
    # the solver agrees with the enumeration, which includes the per-pod choices
    for dem in (quiet, busy, _pods_demands([(0, 1), (1, 2)], 8.0, 3)):
        for survive in ("none", "link", "switch"):
            _, T3, _ = _tables(c, dem, survive, 0.8)
            brute = B.brute_force(T3, survive, 0.8, wc, ww)
            r = B.solve_cp(T3, survive, 0.8, wc, ww, time_limit=20, seed=1, workers=1)
            if brute is None:
                assert r["choice"] is None
                continue
            ev = B.evaluate(T3, survive, 0.8, *r["choice"])
            assert ev is not None
            assert wc * ev["capex"] + ww * ev["watts"] <= brute[0] * (1 + 1e-4) + 1e-6


def test_budget_on_a_partial_pod_reports_and_rebuilds_the_decision():
    # Helios: pods of 54 leaves leave a third of 36 per plane; its spines need fewer uplinks
    c = load(EXAMPLES / "helios-mi450-uec.yaml")
    r = B.budget(c, time_limit=20, workers=1)
    t = r.tiers[1]
    assert r.check["ok"]
    assert 1 <= t["partial_pod_bundle"] < t["bundle"]
    after = from_dict(r.cluster_after, base_dir=str(EXAMPLES))
    assert after.file.fabric.tiers[1].partial_pod_bundle == t["partial_pod_bundle"]
    fab = build(after)
    assert fab.meta["partial_pod_leaves"] == t["partial_pod_leaves"] < t["leaves_per_pod"]
    up = (fab.node_tier[fab.link_src] == 2) & (fab.node_tier[fab.link_dst] == 3)
    per_spine = np.bincount(fab.link_src[up], minlength=fab.n_nodes)
    spines = np.flatnonzero(fab.node_tier == 2)
    last = fab.node_pod[spines] == fab.pods - 1
    k2 = t["up_ports"] // t["bundle"]
    assert set(per_spine[spines[last]]) == {k2 * t["partial_pod_bundle"]}
    assert set(per_spine[spines[~last]]) == {t["up_ports"]}
    assert r.cost["saved_vs_as_given"]["total_usd"] > 0


def test_transport_search_builds_the_model_data_once_with_the_same_result(monkeypatch):
    # the steps differ only in the target: the traffic and the leaf/pod model data of the first
    # step serve every later one, and the result is the one each step building its own gives
    from topo.traffic.demand import in_order_placement
    c = _small_roce(qps=2)
    f = build(c)
    pl = in_order_placement(c, f)
    calls = []
    real = B._budget_traffic
    monkeypatch.setattr(B, "_budget_traffic", lambda *a: calls.append(1) or real(*a))
    shared = B.budget_for_transport(c, f, placement=pl, max_slowdown=1.05, seed=7)
    assert len(shared.transport_check["tried"]) >= 2 and len(calls) == 1
    calls.clear()
    real_shared = B._shared_traffic
    monkeypatch.setattr(B, "_shared_traffic", lambda _s, *a: real_shared(None, *a))   # each step its own
    own = B.budget_for_transport(c, f, placement=pl, max_slowdown=1.05, seed=7)
    assert len(calls) == len(own.transport_check["tried"]) >= 2   # one budget() per step
    assert without_timings(shared.to_dict()) == without_timings(own.to_dict())


def test_tables_time_limit_counts_cpu_seconds_apart_from_the_solver(monkeypatch):
    # the tables stop (with the time limit named) when this process has spent the limit in CPU
    # seconds on them; the solver's wall-clock limit starts after them
    from topo.core.errors import TimeLimitError
    c = _three_tier()
    f = build(c)
    dem = _random_demands(f.n_endpoints, 200, 50.0, 3)
    assert B.budget(c, f, demands=dem, time_limit=5, seed=1, alternatives=False).solver["status"] == "optimal"
    clock = iter(range(0, 10 ** 9, 1000))   # 1,000 CPU seconds per reading
    monkeypatch.setattr(B.time, "process_time", lambda: float(next(clock)))
    with pytest.raises(TimeLimitError, match="tables were not complete.*CPU seconds"):
        B.budget(c, f, demands=dem, time_limit=5, seed=1, alternatives=False)
