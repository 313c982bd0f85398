"""Routing models against networkx and against their invariants, on small fabrics."""
from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import EXAMPLES, cluster_dict, sw
import topo
from topo.routing import engine as routing
from topo.core.errors import SpecError
from topo.model.fabric import build, fabric_from_arrays
from topo.model.spec import from_dict
from topo.traffic.demand import Demands, permutation, uniform
from helpers.fabrics import clos, fat_tree


# --- small fabrics ------------------------------------------------------------------------

def unit(d: Demands) -> Demands:
    return Demands(d.src, d.dst, d.bytes, d.job, np.ones(d.n))


def nx_graph(f, dead):
    G = nx.Graph()
    G.add_nodes_from(range(f.n_nodes))
    for l in range(0, f.n_links, 2):
        if not dead[l]:
            G.add_edge(int(f.link_src[l]), int(f.link_dst[l]), l=l)
    return G


def switch_link(f, nth):
    """Directed id of the nth physical switch-to-switch link."""
    ids = np.flatnonzero((f.link_src >= f.n_endpoints) & (f.link_dst >= f.n_endpoints) & (np.arange(f.n_links) % 2 == 0))
    return int(ids[nth % ids.size])


CASES = [("fat4", lambda: fat_tree(4)), ("fat6", lambda: fat_tree(6)), ("clos", lambda: clos(5, 3, 3))]


@pytest.mark.parametrize("name,make", CASES)
@pytest.mark.parametrize("n_fail", [0, 2])
def test_fluid_equals_edge_betweenness(name, make, n_fail):
    f = make()
    fail = [switch_link(f, 3 + 7 * i) for i in range(n_fail)]
    dead = routing.failure_mask(f, fail)
    r = routing.route(f, unit(uniform(f)), "fluid", failed_links=fail)
    G = nx_graph(f, dead)
    eps = list(range(f.n_endpoints))
    bc = nx.edge_betweenness_centrality_subset(G, eps, eps, normalized=False)
    ref = np.zeros(f.n_links // 2)
    for (u, v), x in bc.items():
        ref[G[u][v]["l"] // 2] = x
    mine = r.link_gbps_load[0::2] + r.link_gbps_load[1::2]
    # networkx counts each unordered pair once per direction and halves: loads = 2 x betweenness
    np.testing.assert_allclose(mine, 2 * ref, rtol=1e-9, atol=1e-9)
    assert r.unreachable_gbps == 0
    # the aggregated uniform all-to-all gives the same loads
    ru = routing.uniform_loads(f, "fluid", 1.0, failed_links=fail)
    np.testing.assert_allclose(ru.link_gbps_load, r.link_gbps_load, rtol=1e-9, atol=1e-9)


def test_fluid_betweenness_on_built_fat_tree():
    d = cluster_dict(n_racks=2, nodes_per_rack=2, accel=4, family="fat_tree", k=4)
    d["fabric"]["tiers"] = [{"switch": sw(4)}]
    d["node_types"][0]["scaleup"] = {"size": 1}  # every pair crosses the fabric
    c = from_dict(d)
    f = build(c)
    assert f.n_endpoints == 16
    r = routing.route(f, unit(uniform(f)), "fluid")
    G = nx_graph(f, np.zeros(f.n_links, bool))
    bc = nx.edge_betweenness_centrality_subset(G, list(range(16)), list(range(16)), normalized=False)
    for (u, v), x in bc.items():
        l = G[u][v]["l"]
        assert abs(r.link_gbps_load[l] + r.link_gbps_load[l ^ 1] - 2 * x) < 1e-9


def _hops(f, dead, src, dst):
    G = nx_graph(f, dead)
    out = np.zeros(src.shape[0])
    cache = {}
    for i, (a, b) in enumerate(zip(src.tolist(), dst.tolist())):
        if a not in cache:
            cache[a] = nx.single_source_shortest_path_length(G, a)
        out[i] = cache[a][b]
    return out


@pytest.mark.parametrize("model", ["fluid", "wcmp", "uec-spray", "roce-hash"])
def test_load_is_bytes_times_hops_and_conserved(model):
    f = fat_tree(4)
    fail = [switch_link(f, 5)]
    dead = routing.failure_mask(f, fail)
    d = permutation(f, 3e9, seed=3)
    d = Demands.concat([d, uniform(f, 1e8)])
    r = routing.route(f, d, model, failed_links=fail, qps=3, seed=11)
    hops = _hops(f, dead, d.src, d.dst)
    np.testing.assert_allclose(r.link_bytes.sum(), (d.bytes * hops).sum(), rtol=1e-9)
    np.testing.assert_allclose(r.link_gbps_load.sum(), (d.rate_gbps * hops).sum(), rtol=1e-9)
    # conservation: at every switch what comes in goes out; endpoints send and receive their demand
    inflow = np.bincount(f.link_dst, weights=r.link_gbps_load, minlength=f.n_nodes)
    outflow = np.bincount(f.link_src, weights=r.link_gbps_load, minlength=f.n_nodes)
    S = slice(f.n_endpoints, None)
    np.testing.assert_allclose(inflow[S], outflow[S], rtol=1e-9, atol=1e-9)
    sent = np.bincount(d.src, weights=d.rate_gbps, minlength=f.n_endpoints)
    np.testing.assert_allclose(outflow[: f.n_endpoints], sent, rtol=1e-9)
    assert np.all(r.link_gbps_load[dead] == 0)


def test_hash_tends_to_fluid():
    f = fat_tree(4)
    d = permutation(f, 1e9, seed=1)
    fl = routing.route(f, d, "fluid").link_gbps_load
    errs = []
    for q in (1, 16, 1024):
        h = routing.route(f, d, "roce-hash", qps=q, seed=2).link_gbps_load
        errs.append(np.abs(h - fl).max() / fl.max())
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.1


def test_hash_idle_fraction_matches_balls_in_bins():
    n, m = 8, 6
    f = clos(leaves=2, spines=n, per_leaf=m)
    src = np.arange(m)
    dst = m + np.arange(m)
    d = Demands(src, dst, np.ones(m), np.full(m, -1, np.int32), np.ones(m))
    up = np.flatnonzero((f.link_src == f.n_endpoints) & (f.link_dst > f.n_endpoints))
    idle = []
    for s in range(300):
        r = routing.route(f, d, "roce-hash", seed=s)
        idle.append(int((r.link_gbps_load[up] == 0).sum()))
    expect = n * (1 - 1 / n) ** m
    se = np.std(idle) / np.sqrt(len(idle))
    assert abs(np.mean(idle) - expect) < 4 * se + 0.05


def test_ring_allreduce_reaches_link_bandwidth():
    d = cluster_dict(n_racks=2, nodes_per_rack=2, accel=8, tiers=[{"switch": "th4-64x400"}, {"switch": "th4-64x400"}])
    d["transport"] = {"protocol": "ideal"}
    d["jobs"] = [{"name": "ar", "accelerators": 32, "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1GiB"}]}]
    c = from_dict(d)
    for model in ("fluid", "uec-spray"):
        a = routing.analyze(c, routing=model, compare=False, all_to_all=False).to_dict()
        j = a["jobs"][0]
        assert j["busbw_gbps"] == pytest.approx(400.0, rel=1e-9)
        assert j["slowdown"] == pytest.approx(1.0)


def test_failures_disconnect_and_report_unreachable():
    f = clos(leaves=3, spines=2, per_leaf=2)
    spines = [f.n_endpoints + 3, f.n_endpoints + 4]
    d = uniform(f, 1e9)
    for model in ("fluid", "roce-hash", "uec-spray", "wcmp"):
        r = routing.route(f, d, model, failed_nodes=spines)
        cross = f.ep_server[d.src] // 2 != f.ep_server[d.dst] // 2
        assert r.unreachable_gbps == pytest.approx(float(d.rate_gbps[cross].sum()))
        assert 0 < r.unreachable_fraction < 1
        assert np.isfinite(r.utilization).all()
    # an endpoint whose only link fails is unreachable too
    r = routing.route(f, d, "fluid", failed_links=[0])
    assert r.unreachable_gbps == pytest.approx(float(d.rate_gbps[(d.src == 0) | (d.dst == 0)].sum()))


def test_waterfill_max_min_fair():
    # two links of capacity 10 and 4; path A uses both, B only the first, C only the second
    path = np.array([[0, 1], [0, -1], [1, -1]])
    rate = routing.waterfill(path, np.array([10.0, 4.0]))
    np.testing.assert_allclose(rate, [2.0, 8.0, 2.0])
    # weighted: rates proportional to weight on the shared bottleneck
    rate = routing.waterfill(path, np.array([10.0, 4.0]), np.array([1.0, 1.0, 3.0]))
    np.testing.assert_allclose(rate, [1.0, 9.0, 3.0])


def test_scaleup_flows_stay_off_the_fabric(small_cluster):
    f = build(small_cluster)
    # two accelerators of one node (one domain) and one across nodes
    d = Demands(np.array([0, 0]), np.array([1, 8]), np.array([1e9, 1e9]), np.array([-1, -1], np.int32), np.array([5.0, 5.0]))
    r = routing.route(f, d, "fluid")
    assert r.scaleup_sent_gbps[0] == 5.0 and r.scaleup_recv_gbps[1] == 5.0
    assert f.ep_leaf()[0] == f.ep_leaf()[8]
    assert r.link_gbps_load.sum() == pytest.approx(5.0 * 2)  # only the cross-node flow: up and down one leaf


def test_rail_only_goes_through_the_scaleup_domain():
    d = cluster_dict(n_racks=2, nodes_per_rack=1, accel=8, family="rail_only", tiers=[{"switch": "th4-64x400"}])
    c = from_dict(d)
    f = build(c)
    # rank 0 (node 0, rail 0) to node 1 rail 3: proxy is node 0 rail 3
    dm = Demands(np.array([0]), np.array([11]), np.array([1e9]), np.array([-1], np.int32), np.array([7.0]))
    r = routing.route(f, dm, "fluid")
    assert r.unreachable_gbps == 0
    assert r.scaleup_sent_gbps[0] == 7.0 and r.scaleup_recv_gbps[3] == 7.0
    assert r.link_gbps_load.sum() == pytest.approx(14.0)  # up and down on rail 3


def test_analyze_small_example(small_cluster):
    a = routing.analyze(small_cluster, fail=["leaf0->spine0"])
    s = a.to_dict()
    json.dumps(s)
    assert s["routing"] == "roce-hash" and s["failed"]["links"] >= 1
    assert {t["tier"] for t in s["tiers"]} == {"endpoint-leaf", "leaf-spine"}
    assert len(s["jobs"]) == 3 and all(j["time_s"] >= j["ideal_s"] * (1 - 1e-12) for j in s["jobs"])
    assert s["roce_vs_uec"]["collision_penalty_max_util"] >= 1.0 - 1e-9
    assert s["hottest"][0]["util"] == pytest.approx(s["max_util"])


def test_bad_failure_names(small_cluster):
    with pytest.raises(SpecError, match="fail: "):
        routing.analyze(small_cluster, fail=["leaf0->nowhere"])
    with pytest.raises(SpecError, match="no link"):
        routing.analyze(small_cluster, fail=["leaf0->leaf1"])


def test_cli_analyze(tmp_path):
    from topo.cli.app import main
    run = CliRunner()
    res = run.invoke(main, ["analyze", str(EXAMPLES / "small.yaml"), "--json", "--routing", "fluid",
                            "--loads", str(tmp_path / "loads.csv")])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["routing"] == "fluid"
    lines = (tmp_path / "loads.csv").read_text().splitlines()
    assert lines[0] == "link,src,dst,tier,gbps,load_gbps,util"
    assert len(lines) == 1 + doc["links"]
    res = run.invoke(main, ["analyze", str(EXAMPLES / "small.yaml"), "--fail", "bogus"])
    assert res.exit_code == 2 and "--fail" in res.output
    m = tmp_path / "m.csv"
    m.write_text("src,dst,bytes\nn0000-g0,n0001-g0,1e9\nn0000-g0,n9999-g0,5\n")
    res = run.invoke(main, ["analyze", str(EXAMPLES / "small.yaml"), "--traffic", str(m)])
    assert res.exit_code == 2 and "m.csv' line 3" in res.output and "n9999-g0" in res.output
    m.write_text("n0000-g0,n0001-g0,-4\n")
    res = run.invoke(main, ["analyze", str(EXAMPLES / "small.yaml"), "--traffic", str(m)])
    assert res.exit_code == 2 and "m.csv' line 1" in res.output
    m.write_text("n0000-g0,n0003-g3,1GB\n")
    res = run.invoke(main, ["analyze", str(EXAMPLES / "small.yaml"), "--traffic", str(m), "--routing", "uec-spray"])
    assert res.exit_code == 0, res.output
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


# --- optimal bound ------------------------------------------------------------------------------
def test_optimal_lp_is_an_upper_bound_and_checked():
    from topo.routing import lpcheck as routing_lpcheck
    from topo.routing.lp import max_concurrent_flow
    # two leaves with two endpoints each, one spine, and a direct leaf-leaf link:
    # shortest paths all take the direct link, the LP also uses the spine
    tier = np.array([0, 0, 0, 0, 1, 1, 2], np.int8)
    lo = np.array([0, 1, 2, 3, 4, 5, 4])
    hi = np.array([4, 4, 5, 5, 6, 6, 5])
    f = fabric_from_arrays(4, lo, hi, 100.0, tier)
    d = Demands(np.array([0, 1]), np.array([2, 3]), np.ones(2), np.full(2, -1, np.int32), np.array([100.0, 100.0]))
    fl = routing.route(f, d, "fluid")
    assert fl.utilization.max() == pytest.approx(2.0)
    r = max_concurrent_flow(f, d)
    assert r["checked"] and r["lambda"] == pytest.approx(1.0)
    # on fat trees the LP is never below what fluid ECMP achieves
    f4 = fat_tree(4)
    for seed in range(3):
        dp = permutation(f4, 1e9, seed=seed)
        lam = max_concurrent_flow(f4, dp)["lambda"]
        assert lam >= 1 / routing.route(f4, dp, "fluid").utilization.max() - 1e-7
        assert lam <= 1 + 1e-7  # endpoint links are at line rate
    # the checker rejects a solution that breaks capacity or conservation
    ls, ld = f.link_src, f.link_dst
    links = [np.arange(f.n_links)]
    sent = np.array([100.0, 100.0, 0, 0, 0, 0, 0])
    recv = np.array([0, 0, 100.0, 100.0, 0, 0, 0])
    x = np.zeros(f.n_links)
    assert not routing_lpcheck.check(ls, ld, 4, f.link_gbps, links, [x], [(sent, recv)], 1.0)[0]


def test_optimal_refused_above_limit(monkeypatch):
    from topo.routing import lp as routing_lp
    monkeypatch.setattr(routing_lp, "MAX_LINKS", 10)
    f = fat_tree(4)
    with pytest.raises(SpecError, match="optimal"):
        routing_lp.max_concurrent_flow(f, permutation(f, 1e9))


def test_cli_optimal(small_cluster):
    from topo.cli.app import main
    res = CliRunner().invoke(main, ["analyze", str(EXAMPLES / "small.yaml"), "--routing", "optimal", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["optimal"]["checked"] and 0 < doc["optimal"]["lambda"]
    assert doc["optimal"]["lambda"] >= 1 / doc["max_util"] - 1e-6


@pytest.mark.parametrize("model", ["fluid", "wcmp", "uec-spray"])
def test_uniform_symmetry_shortcut_is_exact(model):
    from helpers.kernel_cases import random_case
    cases = [fat_tree(6), clos(6, 4, 3)] + [random_case(s)[0] for s in range(30)]
    for i, f in enumerate(cases):
        for fail in ([], [switch_link(f, 2 + i)]):
            a = routing.uniform_loads(f, model, 1.0, failed_links=fail, symmetry=True)
            b = routing.uniform_loads(f, model, 1.0, failed_links=fail, symmetry=False)
            np.testing.assert_allclose(a.link_gbps_load, b.link_gbps_load, rtol=1e-9, atol=1e-9)
            assert a.unreachable_gbps == pytest.approx(b.unreachable_gbps)


def test_uniform_symmetry_is_used_where_it_pays(monkeypatch):
    # by default the twin classes are looked for only above SYMMETRY_WORK (groups x switch links)
    from topo.routing import kernels
    seen = []
    real = routing._twin_classes
    monkeypatch.setattr(routing, "_twin_classes", lambda f, P: seen.append(P.g_rep.shape[0]) or real(f, P))
    f = fat_tree(6)
    P = routing.prepare(f, None)
    work = P.g_rep.shape[0] * (P.sw_adj.shape[0] + 1)
    for threshold, used in ((work + 1, False), (work, True)):
        seen.clear()
        monkeypatch.setattr(kernels, "SYMMETRY_WORK", float(threshold))
        r = routing.uniform_loads(f, "fluid", 1.0)
        assert bool(seen) == used
        assert np.allclose(r.link_gbps_load, routing.uniform_loads(f, "fluid", 1.0, symmetry=False).link_gbps_load,
                           rtol=1e-12)


def test_uniform_aggregation_equals_explicit_with_mixed_capacities():
    from helpers.kernel_cases import random_case
    for seed in range(20):
        f, _, fail = random_case(seed)
        d = unit(uniform(f))
        for model in ("fluid", "wcmp", "uec-spray"):
            a = routing.uniform_loads(f, model, 1.0, failed_links=fail)
            b = routing.route(f, d, model, failed_links=fail)
            np.testing.assert_allclose(a.link_gbps_load, b.link_gbps_load, rtol=1e-9, atol=1e-9)
            assert a.unreachable_gbps == pytest.approx(b.unreachable_gbps)


def test_parallel_links_are_labelled_and_can_fail_one_by_one():
    from topo.routing.engine import parse_failures
    c = topo.load(EXAMPLES / "small.yaml")
    f = topo.build(c)
    a, b = f.find_node("leaf2"), f.find_node("spine2")
    fwd = np.sort(np.flatnonzero((f.link_src == a) & (f.link_dst == b)))
    assert fwd.size > 1
    labels = [f.link_label(int(l)) for l in fwd]
    assert labels == [f"leaf2->spine2 [{i}/{fwd.size}]" for i in range(1, fwd.size + 1)]
    links, nodes = parse_failures(f, [labels[2]])
    assert sorted(links.tolist()) == sorted([int(fwd[2]), int(fwd[2]) ^ 1]) and nodes.size == 0
    all_links, _ = parse_failures(f, ["leaf2->spine2"])
    assert all_links.size == 2 * fwd.size
    with pytest.raises(SpecError, match=r"give \[i/"):
        parse_failures(f, [f"leaf2->spine2 [0/{fwd.size}]"])
    # a single link has no suffix
    e = f.adj[f.indptr[0]]
    assert f.parallel_index(int(e)) == (1, 1) and "[" not in f.link_label(int(e))
