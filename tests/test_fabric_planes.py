"""Rail-optimized fabrics with several planes, and dual homing across leaves or across planes.

Every count is taken from the fabric arrays: leaves, spines and links per plane, the plane and
leaf of every endpoint port, the rail of every leaf; routing, failures and the link budget are
checked on the same small fabrics (8 racks of two 8-GPU nodes, 16-port leaves, 32-port spines).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from topo.cli.app import main
from topo.routing.describe import describe
from topo.core.errors import SpecError
from topo.model.fabric import build
from topo.model.spec import from_dict

from conftest import cluster_dict, sw, refused, validate_refuses


def rail_planes(planes=2, nic_ports=2, dual=False, across=None, family="rail_optimized", tiers=None, nodes=2):
    d = cluster_dict(n_racks=8, nodes_per_rack=nodes, accel=8, family=family,
                     tiers=tiers or [{"switch": sw(16)}, {"switch": sw(32)}], planes=planes, dual_homed=dual)
    if across is not None:
        d["fabric"]["dual_homed_across"] = across
    d["node_types"][0].update(nic_ports=nic_ports, nic_gbps=400 * nic_ports)
    return d


def port_leaves(f):
    """(endpoint, leaf) of every endpoint port, in port order (an endpoint's ports are consecutive)."""
    m = (f.link_tier == 0) & ((np.arange(f.n_links) & 1) == 0)
    return f.link_src[m], f.link_dst[m]


def leaf_rails(f):
    """{leaf: set of rails of its accelerators}."""
    ep, leaf = port_leaves(f)
    out = {}
    for e, l in zip(ep.tolist(), leaf.tolist()):
        if not f.ep_is_accel[e]:
            continue
        out.setdefault(l, set()).add(int(f.ep_local[e]) % 8)
    return out


def per_plane(f, tier):
    return np.bincount(f.node_plane[f.node_tier == tier], minlength=f.planes).tolist()


def links_per_plane(f, link_tier):
    m = (f.link_tier == link_tier) & ((np.arange(f.n_links) & 1) == 0)
    return np.bincount(f.link_plane[m], minlength=f.planes).tolist()


# --- counts -------------------------------------------------------------------------------
def test_rail_optimized_two_planes_keeps_its_rails_in_every_plane():
    f = build(from_dict(rail_planes(planes=2, nic_ports=2)))
    assert f.planes == 2
    ep, leaf = port_leaves(f)
    assert ep.size == 2 * 128
    # port k of every GPU on plane k
    k = np.tile([0, 1], 128)
    assert (f.node_plane[leaf] == k).all()
    # every leaf serves one rail; 128 ports per plane over 8 rails = 16 per rail = 2 leaves of 8
    assert all(len(r) == 1 for r in leaf_rails(f).values())
    assert per_plane(f, 1) == [16, 16]
    # 16 leaves x 8 uplinks = 128 leaf-spine links per plane over 32-port spines: 4 spines, bundle 2
    assert per_plane(f, 2) == [4, 4]
    assert links_per_plane(f, 0) == [128, 128]
    assert links_per_plane(f, 1) == [128, 128]
    # links stay in their plane
    sw_links = f.link_tier >= 1
    assert (f.node_plane[f.link_src[sw_links]] == f.node_plane[f.link_dst[sw_links]]).all()
    # describe counts the same per plane and says how the plane counts were obtained
    c = from_dict(rail_planes(planes=2, nic_ports=2))
    st = describe(f, c)["structure"]
    assert [(p["leaves"], p["spines"], p["links"]["endpoint-leaf"], p["links"]["leaf-spine"])
            for p in st["per_plane"]] == [(16, 4, 128, 128), (16, 4, 128, 128)]
    assert any(x["what"] == "per plane" for x in st["derived"])


def test_three_tier_rail_optimized_planes():
    d = rail_planes(planes=2, nic_ports=2, tiers=[{"switch": sw(8)}, {"switch": sw(8)}, {"switch": sw(16)}])
    f = build(from_dict(d))
    # per plane: 128 ports, 8 rails, leaves of 4 ports: 32 leaves; 4 uplinks each, spines of 4 down:
    # pods of 4 leaves (8 pods), 4 spines per pod; each spine's 4 uplinks in bundles of 2 (the
    # largest with 8 pods x 2 <= 16 super-spine ports): 4 x 4 / 2 = 8 super-spines per plane
    assert per_plane(f, 1) == [32, 32]
    assert all(len(r) == 1 for r in leaf_rails(f).values())
    assert f.pods == 8 and per_plane(f, 2) == [32, 32]
    assert per_plane(f, 3) == [8, 8]
    assert links_per_plane(f, 2) == [128, 128]


# --- dual homing ----------------------------------------------------------------------------
def test_dual_homed_across_planes_is_the_default_with_planes():
    c = from_dict(rail_planes(planes=2, nic_ports=2, dual=True))
    f = build(c)
    ep, leaf = port_leaves(f)
    pl = f.node_plane[leaf].reshape(128, 2)
    assert (pl == [0, 1]).all()                     # a NIC's two ports on two planes
    st = describe(f, c)["structure"]
    assert st["dual_homed_across"] == "planes"
    row = next(x for x in st["derived"] if x["what"] == "dual homing")
    assert row["value"] == "across planes" and "default" in row["rule"]
    # the same fabric as two planes without dual homing: the design is one, the file says which
    g = build(from_dict(rail_planes(planes=2, nic_ports=2)))
    assert np.array_equal(f.link_src, g.link_src) and np.array_equal(f.link_dst, g.link_dst)
    # stated, it is shown as stated
    c2 = from_dict(rail_planes(planes=2, nic_ports=2, dual=True, across="planes"))
    st2 = describe(build(c2), c2)["structure"]
    assert any(x["what"] == "dual homing" for x in st2["stated"])


def test_dual_homed_across_leaves_of_the_rail_in_each_plane():
    f = build(from_dict(rail_planes(planes=2, nic_ports=4, dual=True, across="leaves")))
    ep, leaf = port_leaves(f)
    lv = leaf.reshape(128, 4)
    # ports 0, 1 on plane 0, ports 2, 3 on plane 1; each pair on two leaves of one plane
    assert (f.node_plane[lv] == [0, 0, 1, 1]).all()
    assert (lv[:, 0] != lv[:, 1]).all() and (lv[:, 2] != lv[:, 3]).all()
    assert all(len(r) == 1 for r in leaf_rails(f).values())
    # 256 ports per plane over 8 rails x 2 sides, 8 per leaf: 32 leaves per plane
    assert per_plane(f, 1) == [32, 32]
    assert links_per_plane(f, 0) == [256, 256]


@pytest.mark.parametrize("across,nic_ports", [("leaves", 4), ("planes", 2)])
def test_no_single_leaf_or_plane_failure_isolates_a_gpu(across, nic_ports):
    from topo.study.failures import analyze_failures
    c = from_dict(rail_planes(planes=2, nic_ports=nic_ports, dual=True, across=across))
    res = analyze_failures(c, traffic=False, kinds=("switch", "plane")).to_dict()
    leaf_rows = [r for r in res["single"] if r["kind"] == "switch" and "leaf" in r["name"]]
    assert sum(r["count"] for r in leaf_rows) == (64 if across == "leaves" else 32)
    assert all(r["endpoints_isolated"] == 0 for r in leaf_rows)
    planes = [r for r in res["single"] if r["kind"] == "plane"]
    assert sum(r["count"] for r in planes) == 2
    for r in planes:
        assert r["endpoints_isolated"] == 0
        assert r["bandwidth_lost_frac"]["endpoint-leaf"] == pytest.approx(0.5)
        assert r["bandwidth_lost_frac"]["leaf-spine"] == pytest.approx(0.5)


# --- routing: ECMP over the planes -----------------------------------------------------------
def test_uniform_traffic_splits_evenly_over_the_planes_and_survives_a_lost_plane():
    from topo.routing.engine import route
    from topo.traffic.demand import uniform
    f = build(from_dict(rail_planes(planes=2, nic_ports=2, dual=True)))
    dem = uniform(f, nbytes=1e6)
    r = route(f, dem, "fluid")
    up = (np.arange(f.n_links) & 1) == 0
    for t in (0, 1):
        m = up & (f.link_tier == t)
        per = np.bincount(f.link_plane[m], weights=r.link_gbps_load[m], minlength=2)
        assert per[0] > 0 and per[0] == pytest.approx(per[1], rel=1e-9)
    assert r.unreachable_gbps == 0.0
    # plane 1 lost: everything goes over plane 0, nothing is unreachable
    dead = np.flatnonzero((f.node_tier > 0) & (f.node_plane == 1))
    r1 = route(f, dem, "fluid", failed_nodes=dead)
    m = up & (f.link_tier == 0)
    per = np.bincount(f.link_plane[m], weights=r1.link_gbps_load[m], minlength=2)
    assert per[1] == 0.0 and r1.unreachable_gbps == 0.0
    total = np.bincount(f.link_plane[m], weights=r.link_gbps_load[m], minlength=2).sum()
    assert per[0] == pytest.approx(total, rel=1e-9)


# --- hosts without accelerators --------------------------------------------------------------
def test_cpu_host_ports_cover_every_plane_then_the_next_rail():
    # one GPU node per rack: 8 GPU ports per rail and plane on leaves of 16, so the hosts' ports
    # share the leaves of their rails (a leaf's rail is its GPUs')
    d = rail_planes(planes=2, nic_ports=2, nodes=1, tiers=[{"switch": sw(32)}, {"switch": sw(32)}])
    d["node_types"].append({"name": "cpu", "accelerators": 0, "nics": 2, "nic_ports": 2, "nic_gbps": 800,
                            "power_busy_kw": 0.8})
    d["racks"][0]["nodes"]["cpu"] = 1
    f = build(from_dict(d))
    ep, leaf = port_leaves(f)
    host = ~f.ep_is_accel[ep]
    rails = leaf_rails(f)
    # a host's 4 ports: plane 0 and 1 on rail 0, then plane 0 and 1 on rail 1
    got = [(int(f.node_plane[l]), min(rails[l])) for l in leaf[host][:4].tolist()]
    assert got == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert all(len(r) == 1 for r in rails.values())
    assert per_plane(f, 1) == [8, 8]              # no leaf of host ports alone
    # stated rails are honoured, planes still port k mod planes
    d["node_types"][1]["rails"] = [3, 3, 5, 5]
    f = build(from_dict(d))
    ep, leaf = port_leaves(f)
    rails = leaf_rails(f)
    host = ~f.ep_is_accel[ep]
    got = [(int(f.node_plane[l]), min(rails[l])) for l in leaf[host][:4].tolist()]
    assert got == [(0, 3), (1, 3), (0, 5), (1, 5)]


# --- refused, with the field --------------------------------------------------------------------
@pytest.mark.parametrize("d,path,why", [
    (rail_planes(planes=2, nic_ports=2, dual=True, across="leaves"), "node_types[0].nic_ports", "pair per plane"),
    (rail_planes(planes=1, nic_ports=2, dual=True, across="planes"), "fabric.dual_homed_across", "planes >= 2"),
    (rail_planes(planes=2, nic_ports=2, across="planes"), "fabric.dual_homed_across", "dual_homed: true"),
    (rail_planes(planes=1, nic_ports=2, dual=True, across="planes", family="rail_only"),
     "fabric.dual_homed_across", "one plane per rail"),
    (rail_planes(planes=2, nic_ports=2, family="rail_only"), "fabric.planes", "one plane per rail"),
    (rail_planes(planes=4, nic_ports=2), "node_types[0].nic_ports", "over 4 planes"),
])
def test_refused_by_validate(d, path, why, tmp_path):
    assert why in refused(d, path)
    validate_refuses(d, path, tmp_path)


# --- the link budget: modelled, or refused with the reason ------------------------------------
@pytest.mark.parametrize("d,path", [
    ({**rail_planes(planes=1, nic_ports=1, family="rail_only"), "goals": {"survive": "plane"}}, "goals.survive"),
    (rail_planes(planes=2, nic_ports=2, dual=True, family="clos"), "fabric.dual_homed_across"),
])
def test_budget_refuses_what_its_model_does_not_reproduce(d, path, tmp_path, monkeypatch):
    from topo.solve import linkbudget as B
    d["transport"] = {"protocol": "ideal"}
    c = from_dict(d)
    called = []
    monkeypatch.setattr(B, "solve_cp", lambda *a, **k: called.append(1))
    with pytest.raises(SpecError) as e:
        B.budget(c)
    assert path in dict(e.value.errors)
    p = tmp_path / "c.json"
    p.write_text(json.dumps(d))
    res = CliRunner().invoke(main, ["budget", str(p)])
    assert res.exit_code == 2 and path in res.output, res.output
    assert not called


def test_budget_models_clos_dual_homed_across_leaves_with_planes():
    from helpers.budget_fidelity import _budget_matches_rebuilt, _ideal
    d = _ideal(cluster_dict(n_racks=4, nodes_per_rack=2, accel=4, tiers=[{"switch": sw(16)}, {"switch": sw(16)}],
                            planes=2, dual_homed=True, dual_homed_across="leaves"))
    d["node_types"][0].update(nic_ports=4, nic_gbps=1600)
    r, f, g = _budget_matches_rebuilt(d)
    assert g.planes == 2 and after_across(r) == "leaves"


def after_across(r):
    return from_dict(r.cluster_after).file.fabric.dual_homed_across


@pytest.mark.parametrize("model", ["roce-hash", "uec-spray"])
def test_structural_routing_of_rail_planes_matches_the_general_kernels(model, monkeypatch):
    """A rail-optimized fabric of two planes is a regular multi-plane Clos: the structural path
    (topo.routing.clos) routes it with the general kernels' own choices."""
    from topo.routing import engine as routing
    from topo.routing.clos import clos_plan
    from topo.traffic.demand import uniform
    f = build(from_dict(rail_planes(planes=2, nic_ports=2, dual=True)))
    dem = uniform(f, nbytes=1e6)
    assert clos_plan(f, routing.prepare(f, np.zeros(f.n_links, bool))) is not None
    monkeypatch.setattr(routing, "STRUCTURAL", True)
    a = routing.route(f, dem, model, seed=3, qps=2)
    monkeypatch.setattr(routing, "STRUCTURAL", False)
    b = routing.route(f, dem, model, seed=3, qps=2)
    assert np.allclose(a.link_gbps_load, b.link_gbps_load, rtol=1e-9, atol=1e-9)


# --- hosts without accelerators with several fabric ports -----------------------------------------
def test_a_many_port_host_spreads_over_the_rails_and_adds_no_switch():
    """node_types[].rails (default: port k on rail k) spreads a management host's 8 ports over
    the 8 rails: each lands on the spare port of its rail's leaf, so the fabric keeps the leaves
    and spines it has without the host; stated all on rail 0 they need a ninth leaf."""
    def fab(rails=None):
        d = cluster_dict(n_racks=8, nodes_per_rack=1, accel=8, family="rail_optimized",
                         tiers=[{"switch": sw(18)}, {"switch": sw(36)}])
        if rails is not False:
            nt = {"name": "mgmt", "accelerators": 0, "nics": 2, "nic_ports": 4, "nic_gbps": 1600,
                  "power_busy_kw": 0.8}
            if rails is not None:
                nt["rails"] = rails
            d["node_types"].append(nt)
            d["racks"].append({"name": "mgmt-rack", "count": 1, "nodes": {"mgmt": 1}, "power_limit_kw": 100})
        return build(from_dict(d))
    bare, spread, stacked = fab(False), fab(), fab([0] * 8)
    assert bare.meta["endpoint_ports_per_leaf"] == 9          # 18 ports at 1:1: 9 down, 8 GPUs a rail
    count = lambda f: [int((f.node_tier == t).sum()) for t in (1, 2)]
    assert count(spread) == count(bare) == [8, count(bare)[1]]
    ep, leaf = port_leaves(spread)
    host_leaves = leaf[~spread.ep_is_accel[ep]]
    rails = leaf_rails(spread)
    assert sorted(min(rails[x]) for x in host_leaves.tolist()) == list(range(8))
    assert count(stacked)[0] == 9


def test_graph_inference_recovers_planes_and_ratios_of_a_built_rail_fabric(tmp_path):
    """The built two-plane rail-optimized fabric (leaves of 200G down and 400G up port groups at
    2:1, every leaf full), written as an edge list and read back as a custom graph: describe infers the planes, the
    switches per plane, the leaf oversubscription and the bisection the builder's fabric has."""
    d = cluster_dict(n_racks=8, nodes_per_rack=1, accel=4, family="rail_optimized", planes=2, nic_gbps=400,
                     tiers=[{"switch": sw(8), "ports": {"down": {"ports": 8, "gbps": 200}, "up": {"ports": 2, "gbps": 400}}},
                            {"switch": sw(8)}])
    d["node_types"][0]["nic_ports"] = 2
    c = from_dict(d)
    f = build(c)
    built = describe(f, c)
    up = (np.arange(f.n_links) & 1) == 0
    name = lambda i: f"e{i}" if i < f.n_endpoints else f.node_name(i)
    lines = [f"{name(a)} {name(b)} {g:g}" for a, b, g in zip(f.link_src[up].tolist(), f.link_dst[up].tolist(),
                                                            f.link_gbps[up].tolist())]
    (tmp_path / "g.txt").write_text("\n".join(lines) + "\n")
    dc = cluster_dict(n_racks=f.n_endpoints, nodes_per_rack=1, accel=1, family="custom",
                      custom={"edge_list": "g.txt", "link_gbps": 400})
    cc = from_dict(dc, base_dir=str(tmp_path))
    g = build(cc)
    inferred = describe(g, cc)
    assert built["tiers"][0]["oversubscription"] == 2.0
    assert inferred["planes"] == built["planes"] == 2
    assert inferred["inferred"]["planes"]["switches_per_plane"] == [p["leaves"] + p["spines"]
                                                                    for p in built["structure"]["per_plane"]]
    assert inferred["tiers"][0]["oversubscription"] == 2.0
    assert inferred["bisection_gbps"] == pytest.approx(built["bisection_gbps"])
