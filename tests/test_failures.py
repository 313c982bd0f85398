"""Failure analysis: capacity accounting, closed forms, grouping, sampling, traffic impact, CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import EXAMPLES, cluster_dict, sw, no_crash
from topo.study import failures as F
from topo.core.errors import SpecError
from topo.model.fabric import build, fabric_from_arrays
from topo.model.spec import from_dict, load


def fat_tree(k, jobs=None, **extra):
    d = cluster_dict(n_racks=k ** 3 // 4, nodes_per_rack=1, accel=1, family="fat_tree", k=k)
    d["node_types"][0]["scaleup"] = {"size": 1}
    if jobs:
        d["jobs"] = jobs
    d.update(extra)
    return from_dict(d)


def rows_by_kind(res, kind):
    return [(r, m) for r, m in zip(res.single, res.members) if r["kind"] == kind]


# --- capacity accounting -----------------------------------------------------------------
def test_one_of_n_parallel_uplinks_loses_exactly_one_nth_of_the_bundle():
    c = load(EXAMPLES / "small.yaml")
    fab = build(c)
    n = fab.meta["bundles"][0]
    assert n > 1
    ctx = F._context(c, fab, None)
    up = np.flatnonzero(ctx.phys_tier == 1)
    for link in up[:: max(up.size // 7, 1)]:
        lo, hi = ctx.phys_lo[link], ctx.phys_hi[link]
        bundle = up[(ctx.phys_lo[up] == lo) & (ctx.phys_hi[up] == hi)]
        assert bundle.size == n
        links, _, _ = F._effect(ctx, "link", int(link))
        lost = ctx.phys_gbps[links].sum()
        assert lost / ctx.phys_gbps[bundle].sum() == pytest.approx(1.0 / n, abs=0, rel=1e-12)
        cap = F._capacity_lost(ctx, links, -1)
        assert cap["leaf-spine"] == pytest.approx(ctx.phys_gbps[link] / ctx.tier_total[1], rel=1e-12)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_one_of_n_parallel_links_under_fluid_routing(n):
    from topo.routing.engine import route
    from topo.traffic.demand import Demands
    # e0 - leaf0 =n= spine =n= leaf1 - e1
    lo = [0, 1] + [2] * n + [3] * n
    hi = [2, 3] + [4] * n + [4] * n
    tier = np.array([0, 0, 1, 1, 2], np.int8)
    fab = fabric_from_arrays(2, np.array(lo), np.array(hi), 100.0, tier)
    d = Demands(np.array([0]), np.array([1]), np.array([1e9]), np.array([0], np.int32), np.array([50.0]))
    bundle = np.arange(2, 2 + n) * 2  # upward ids of leaf0 -> spine links
    healthy = route(fab, d, "fluid")
    failed = route(fab, d, "fluid", failed_links=[int(bundle[0])])
    # throughput the bundle sustains before its busiest link saturates
    t_h = 50.0 / healthy.utilization[bundle].max()
    t_f = 50.0 / failed.utilization[bundle[1:]].max()
    assert t_f / t_h == pytest.approx((n - 1) / n, rel=1e-12)
    assert failed.unreachable_gbps == 0.0


@pytest.mark.parametrize("k", [4, 6, 8])
def test_fat_tree_switch_failures_match_closed_forms(k):
    c = fat_tree(k)
    res = F.analyze_failures(c, traffic=False, kinds=("switch",))
    by_tier = {}
    for r, m in rows_by_kind(res, "switch"):
        tier = {"leaf": 1, "spine": 2, "super": 3}[r["name"].rstrip("0123456789")]
        by_tier.setdefault(tier, []).append((r, m))
    # with no jobs, all switches of a tier are one class
    assert {t: len(v) for t, v in by_tier.items()} == {1: 1, 2: 1, 3: 1}
    (leaf, lm), = by_tier[1]
    (spine, sm), = by_tier[2]
    (core, cm), = by_tier[3]
    assert (lm.size, sm.size, cm.size) == (k * k // 2, k * k // 2, k * k // 4)
    f = 2.0 / k ** 2  # k/2 of the k^3/4 links of a tier
    assert leaf["bandwidth_lost_frac"]["endpoint-leaf"] == pytest.approx(f)
    assert leaf["bandwidth_lost_frac"]["leaf-spine"] == pytest.approx(f)
    assert spine["bandwidth_lost_frac"]["leaf-spine"] == pytest.approx(f)
    assert spine["bandwidth_lost_frac"]["spine-super"] == pytest.approx(f)
    assert spine["bandwidth_lost_frac"]["endpoint-leaf"] == 0.0
    assert core["bandwidth_lost_frac"]["spine-super"] == pytest.approx(4.0 / k ** 2)
    assert core["bandwidth_lost_frac"]["leaf-spine"] == 0.0
    assert leaf["endpoints_isolated"] == k // 2


def test_plane_rack_power_and_scaleup_failures():
    d = cluster_dict(n_racks=4, nodes_per_rack=2, tiers=[{"switch": sw(32)}, {"switch": sw(32)}], planes=2)
    d["node_types"][0]["nic_ports"] = 2
    c = from_dict(d)
    res = F.analyze_failures(c, traffic=False)
    planes = rows_by_kind(res, "plane")
    assert len(planes) == 1 and planes[0][1].size == 2
    for t, v in planes[0][0]["bandwidth_lost_frac"].items():
        assert v == pytest.approx(0.5 if t != "scaleup" else 0.0)
    racks = rows_by_kind(res, "rack_power")
    assert sum(m.size for _, m in racks) == 4
    r0 = racks[0][0]
    assert r0["endpoints_down"] == 16
    assert r0["bandwidth_lost_frac"]["endpoint-leaf"] == pytest.approx(0.25)
    su = rows_by_kind(res, "scaleup_switch")
    # HGX H100: 4 NVSwitch chips per 8-GPU domain, 8 domains
    assert sum(m.size for _, m in su) == 8 * 4
    assert su[0][0]["bandwidth_lost_frac"]["scaleup"] == pytest.approx(1.0 / 8 / 4)


def test_tor_leaf_goes_down_with_its_rack():
    d = cluster_dict(n_racks=4, nodes_per_rack=2, tiers=[{"switch": sw(32)}, {"switch": sw(32)}])
    d["floor"] = {"leaf_placement": "tor"}
    c = from_dict(d)
    fab = build(c)
    ctx = F._context(c, fab, None)
    links, down, _ = F._effect(ctx, "rack_power", 0)
    # rack 0 holds leaf 0 (16 endpoints per leaf here: 2 nodes x 8): its uplinks fail too
    assert (ctx.phys_tier[links] == 1).any()
    assert down.size == 16


# --- grouping ------------------------------------------------------------------------------
def _row_key(r):
    d = {k: v for k, v in r.items() if k not in ("name", "count")}
    return json.dumps(d, sort_keys=True, default=float)


@pytest.mark.parametrize("case", ["fat4", "fat4-jobs", "clos-planes"])
def test_grouped_equals_exhaustive_on_small_symmetric_fabrics(case):
    if case == "fat4":
        c = fat_tree(4)
    elif case == "fat4-jobs":
        c = fat_tree(4, jobs=[{"name": "a", "accelerators": 8, "collectives": [{"op": "allreduce", "bytes": 1e9}]},
                              {"name": "b", "accelerators": 8, "collectives": [{"op": "alltoall", "group": "dp", "bytes": 1e8}]}])
    else:
        d = cluster_dict(n_racks=4, nodes_per_rack=1, tiers=[{"switch": sw(8)}, {"switch": sw(8)}], planes=2)
        d["node_types"][0]["nic_ports"] = 2
        c = from_dict(d)
    fab = build(c)
    e = F.analyze_failures(c, fab, group=False)
    ex = {}
    for r, m in zip(e.single, e.members):
        ex[(r["kind"], int(m[0]))] = r
    # default grouping: exact for capacity and the fluid-type model; hash_exact adds roce-hash
    for hash_exact, models in ((False, ("uec-spray",)), (True, ("uec-spray", "roce-hash"))):
        g = F.analyze_failures(c, fab, group=True, hash_exact=hash_exact)
        assert sum(r["count"] for r in g.single) == sum(r["count"] for r in e.single) == len(e.single)
        assert len(g.single) < len(e.single)
        _compare(g, ex, models)


def _compare(g, ex, models):
    for r, m in zip(g.single, g.members):
        for i in m.tolist():
            other = ex[(r["kind"], i)]
            assert r["bandwidth_lost_frac"] == pytest.approx(other["bandwidth_lost_frac"], rel=1e-12)
            assert r["endpoints_isolated"] == other["endpoints_isolated"]
            assert r["endpoints_down"] == other["endpoints_down"]
            assert len(r["jobs_affected"]) == len(other["jobs_affected"])
            if "slowdown" in r:
                for model in models:
                    a, b = r["slowdown"][model], other["slowdown"][model]
                    assert set(a) == set(b)
                    for j in a:
                        assert (a[j] is None) == (b[j] is None)
                        if a[j] is not None:
                            assert a[j] == pytest.approx(b[j], rel=1e-9)
                assert r["unreachable_gbps"] == pytest.approx(other["unreachable_gbps"], rel=1e-9, abs=1e-9)


def test_custom_fabric_is_never_grouped():
    c = fat_tree(4)
    fab = build(c)
    custom = fabric_from_arrays(fab.n_endpoints, fab.link_src[0::2], fab.link_dst[0::2], fab.link_gbps[0::2],
                                np.asarray(fab.node_tier))
    res = F.analyze_failures(c, custom, traffic=False, kinds=("switch", "link"))
    assert not res.grouped
    assert all(r["count"] == 1 for r in res.single)
    assert len(res.single) == custom.n_switches + custom.n_links // 2


# --- k failures ----------------------------------------------------------------------------
def test_sampling_converges_to_the_exhaustive_mean():
    c = fat_tree(4)
    fab = build(c)
    ctx = F._context(c, fab, None)
    kinds, pool, _ = F._k_pool(ctx, None)
    n_sets = math.comb(pool.shape[0], 2)
    exact = F.k_failures(ctx, 2, n_sets, seed=1)
    assert exact["method"] == "exhaustive" and exact["sets"] == n_sets
    mu = exact["capacity_lost_frac"]["mean"]
    errs = []
    for samples in (100, 400, 1600):
        s = F.k_failures(ctx, 2, samples, seed=5)
        assert s["method"] == "sampled"
        lo, hi = s["capacity_lost_frac"]["ci95"]
        assert lo <= mu <= hi
        errs.append((hi - lo) / 2)
    assert errs[0] > errs[1] > errs[2]  # the interval shrinks like 1/sqrt(n)
    assert errs[0] / errs[2] == pytest.approx(4.0, rel=0.35)


def test_worst_k_set_is_at_least_as_bad_as_every_sampled_set():
    c = load(EXAMPLES / "small.yaml")
    fab = build(c)
    ctx = F._context(c, fab, None)
    for k in (2, 3):
        r = F.k_failures(ctx, k, 150, seed=11)
        w = r["worst"]["capacity_lost_frac"]
        assert w >= r["_scores"].max() - 1e-15
        assert len(r["worst"]["elements"]) == k
    again = F.k_failures(ctx, 3, 150, seed=11)
    assert np.array_equal(again["_scores"], r["_scores"])  # seeded


def test_expected_loss_from_failure_rates():
    d = cluster_dict(n_racks=2, nodes_per_rack=2, tiers=[{"switch": sw(32)}, {"switch": sw(32)}])
    d["failure_rates"] = {"link_per_year": 0.1, "switch_per_year": 0.2, "nic_per_year": 0.05}
    c = from_dict(d)
    res = F.analyze_failures(c, single=False, traffic=False)
    e = res.expected_loss["bandwidth_lost_frac"]
    assert e["endpoint-leaf"] == pytest.approx(1 - 0.9 * 0.95 * 0.8)
    assert e["leaf-spine"] == pytest.approx(1 - 0.9 * 0.8 * 0.8)
    d["failure_rates"] = {"link_per_year": 1.5}
    with pytest.raises(SpecError) as ei:
        from_dict(d)
    assert "failure_rates.link_per_year" in str(ei.value)


# --- traffic impact and the result shape -----------------------------------------------------
def test_result_dict_shape_and_traffic_metrics():
    c = load(EXAMPLES / "small.yaml")
    res = F.analyze_failures(c, k=2, samples=50)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["traffic"]["routed"] and set(d["traffic"]["models"]) == {"roce-hash", "uec-spray"}
    kinds = {r["kind"] for r in d["single"]}
    assert {"switch", "link", "nic", "scaleup_switch", "rack_power"} <= kinds
    for r in d["single"]:
        assert {"kind", "name", "count", "bandwidth_lost_frac", "jobs_affected", "slowdown", "unreachable_gbps"} <= set(r)
        assert set(r["slowdown"]) == {"roce-hash", "uec-spray"}
    # a leaf failure isolates its endpoints: unreachable demand and jobs that cannot run
    leaf0 = next(r for r in d["single"] if r["name"] == "leaf0")
    assert leaf0["unreachable_gbps"] > 0 and leaf0["slowdown"]["uec-spray"]["llm-a"] is None
    # a spine failure keeps everything reachable and never speeds up spraying
    spine = next(r for r in d["single"] if r["name"].startswith("spine"))
    assert spine["unreachable_gbps"] == 0.0
    assert all(v >= 1.0 - 1e-12 for v in spine["slowdown"]["uec-spray"].values())
    # an idle CPU host's NIC affects nobody
    idle = [r for r in d["single"] if r["kind"] == "nic" and not r["jobs_affected"]]
    assert idle and all(r["unreachable_gbps"] == 0.0 for r in idle)
    assert d["k"]["2"]["worst"]["capacity_lost_frac"] >= d["k"]["2"]["capacity_lost_frac"]["max"]


def test_failure_of_unloaded_elements_needs_no_routing():
    c = load(EXAMPLES / "small.yaml")
    fab = build(c)
    ctx = F._context(c, fab, None)
    ctx.traffic = F.Traffic(ctx, seed=1)
    idle = int(np.flatnonzero(ctx.ep_job < 0)[0])
    calls = ctx.traffic.routes
    row = F._evaluate(ctx, "nic", idle)
    assert ctx.traffic.routes == calls and ctx.traffic.skipped == 1
    assert row["jobs_affected"] == [] and row["endpoints_isolated"] == 1
    assert all(v == 1.0 for per in row["slowdown"].values() for v in per.values())
    # the same answer as routing it
    links, _, _ = F._effect(ctx, "nic", idle)
    dead = np.zeros(fab.n_links, bool)
    dead[2 * links] = dead[2 * links + 1] = True
    for m in F.ROUTING_MODELS:
        times, _, _ = ctx.traffic._times(m, dead)
        assert np.allclose(times, ctx.traffic.healthy[m], rtol=1e-12)


@pytest.mark.parametrize("traffic", [False, True])
def test_parallel_single_sweep_equals_serial(traffic):
    # everything but the wall time, routing counters included, whatever the worker count
    c = load(EXAMPLES / "small.yaml")
    a = F.analyze_failures(c, traffic=traffic).to_dict()
    b = F.analyze_failures(c, traffic=traffic, workers=2).to_dict()
    a.pop("seconds"), b.pop("seconds")
    assert a == b


# --- CLI -----------------------------------------------------------------------------------------
def test_cli_failures_json_and_bad_input(tmp_path):
    from topo.cli.app import main
    r = CliRunner().invoke(main, ["failures", str(EXAMPLES / "small.yaml"), "--k", "2..3", "--samples", "30", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert set(d["k"]) == {"2", "3"} and d["single"] == []
    r = CliRunner().invoke(main, ["failures", str(EXAMPLES / "small.yaml"), "--single", "--k", "2", "--samples", "20"])
    assert r.exit_code == 0 and "single failures" in r.output and "k=2" in r.output
    for args, where in ((["--k", "3..2"], "--k"), (["--k", "x"], "--k"), (["--samples", "0"], "--samples"),
                        (["--workers", "0"], "--workers"), (["--plan", str(tmp_path / "none.json")], "cannot read placement file")):
        r = CliRunner().invoke(main, ["failures", str(EXAMPLES / "small.yaml"), *args])
        assert r.exit_code == 2, (args, r.output)
        assert where in r.output and no_crash(r)
    bad = tmp_path / "placement.json"
    for content, where in (({"assignment": {"llm-a": [10 ** 6]}}, "assignment.llm-a"),
                           ({"assignment": {"llm-a": "n0000"}}, "assignment.llm-a"),
                           ({"other": 1}, "neither 'assignment' nor 'nodes'"),
                           ({"placement": {"x": 1}}, "placement.assignment")):
        bad.write_text(json.dumps(content))
        r = CliRunner().invoke(main, ["failures", str(EXAMPLES / "small.yaml"), "--plan", str(bad)])
        assert r.exit_code == 2 and where in r.output and no_crash(r)
    good = tmp_path / "plan.json"
    c = load(EXAMPLES / "small.yaml")
    from topo.traffic.demand import in_order_placement
    pl = {k: v.tolist()[::-1] for k, v in in_order_placement(c, build(c)).items()}
    good.write_text(json.dumps({"placement": {"assignment": pl}}))
    r = CliRunner().invoke(main, ["failures", str(EXAMPLES / "small.yaml"), "--plan", str(good), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["placement"] == "given placement"
