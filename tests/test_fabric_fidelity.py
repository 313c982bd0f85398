"""Fabric fidelity (issue 13): every build is exactly the fabric the file describes, or a refusal
naming the JSON path. Small fabrics only; every count is taken from the fabric arrays."""
from __future__ import annotations

import numpy as np
import pytest

from topo.core.errors import SpecError
from topo.model.fabric import build
from topo.model.spec import from_dict

from conftest import cluster_dict, sw, refused


# --- counting helpers (from the arrays only) --------------------------------------------------
def up_links(f, tier):
    """Physical links of a link tier as (lower node, upper node, gbps)."""
    m = (f.link_tier == tier) & ((np.arange(f.n_links) & 1) == 0)
    return f.link_src[m], f.link_dst[m], f.link_gbps[m]


def switches(f, tier):
    return np.flatnonzero(f.node_tier == tier)


def ports_per_leaf(f):
    """Endpoint ports attached to each leaf, leaf by leaf in id order."""
    _, leaf, _ = up_links(f, 0)
    return np.bincount(leaf, minlength=f.n_nodes)[switches(f, 1)]


def homes(f, e):
    """Leaves endpoint e's ports land on, in port order."""
    lo, hi, _ = up_links(f, 0)
    return hi[lo == e]


def rail_cluster(n_racks=8, nodes=2, dual=False, nic_ports=1, tiers=None, **fabric):
    d = cluster_dict(n_racks=n_racks, nodes_per_rack=nodes, accel=8, family="rail_optimized",
                     tiers=tiers or [{"switch": sw(16)}, {"switch": sw(32)}], dual_homed=dual, **fabric)
    d["node_types"][0]["nic_ports"] = nic_ports
    d["node_types"][0]["nic_gbps"] = 400 * nic_ports
    return d


def add_cpu_hosts(d, per_rack=1, nics=1, nic_ports=1, rails=None, racks=None):
    nt = {"name": "cpu", "accelerators": 0, "nics": nics, "nic_gbps": 400 * nic_ports, "nic_ports": nic_ports,
          "power_busy_kw": 0.8}
    if rails is not None:
        nt["rails"] = rails
    d["node_types"].append(nt)
    d["racks"][0]["nodes"]["cpu"] = per_rack
    return d


# --- defect 1: rail-optimized + dual-homed ------------------------------------------------------
def test_rail_optimized_dual_homed_puts_each_nic_on_two_leaves_of_its_rail():
    f = build(from_dict(rail_cluster(dual=True, nic_ports=2)))
    lo, hi, g = up_links(f, 0)
    assert lo.size == 2 * f.n_endpoints and (g == 400).all()
    leaf_rail = {}
    for e in range(f.n_endpoints):
        h = homes(f, e)
        assert h.size == 2 and h[0] != h[1], (e, h)
        for leaf in h.tolist():
            leaf_rail.setdefault(leaf, set()).add(int(f.ep_local[e]))
    # every leaf serves one rail only, so both homes of a NIC are leaves of its rail
    assert all(len(r) == 1 for r in leaf_rail.values())
    # 16 nodes x 8 GPUs x 2 ports of 400G on 8-down-port leaves: 2 groups x 8 rails x 2 sides
    assert f.tier_switch_counts[0] == switches(f, 1).size == 32
    assert (ports_per_leaf(f) == 8).all()


def test_rail_optimized_dual_homed_leaf_failure_isolates_no_gpu():
    from topo.study.failures import analyze_failures
    c = from_dict(rail_cluster(dual=True, nic_ports=2))
    res = analyze_failures(c, traffic=False, kinds=("switch",)).to_dict()
    leaf_rows = [r for r in res["single"] if r["kind"] == "switch" and "leaf" in r["name"]]
    assert sum(r["count"] for r in leaf_rows) == 32
    assert all(r["endpoints_isolated"] == 0 for r in leaf_rows)
    # single-homed, a leaf failure cuts off its 8 GPUs
    c1 = from_dict(rail_cluster(dual=False, nic_ports=1))
    res1 = analyze_failures(c1, traffic=False, kinds=("switch",)).to_dict()
    rows1 = [r for r in res1["single"] if r["kind"] == "switch" and "leaf" in r["name"]]
    assert max(r["endpoints_isolated"] for r in rows1) == 8


def test_dual_homed_needs_a_port_pair_per_accelerator():
    d = rail_cluster(dual=True, nic_ports=2)
    d["node_types"][0]["nics"] = 4          # 4 dual-port NICs for 8 GPUs: one port per GPU
    with pytest.raises(SpecError) as e:
        from_dict(d)
    assert "node_types[0].nics" in dict(e.value.errors)


# --- defect 5: hosts without accelerators on a rail-optimized fabric; no empty leaf ----------------
def test_cpu_hosts_create_no_empty_leaf():
    # 16 GPU nodes fill 8 rails x 2 groups of 8; 16 single-port CPU hosts go on rail 0
    d = add_cpu_hosts(rail_cluster(tiers=[{"switch": sw(16)}, {"switch": sw(32)}]), per_rack=2)
    f = build(from_dict(d))
    per = ports_per_leaf(f)
    assert (per >= 1).all(), per
    # rail 0 (16 GPU + 16 CPU ports) needs 4 leaves, every other rail 2: 18 leaves; the old builder
    # made 3 x 8 + 1 = 25, rails 1 to 7 of the third group with nothing attached
    assert per.size == f.tier_switch_counts[0] == 18
    assert per.sum() == 16 * 8 + 16
    cpu = np.flatnonzero(~f.ep_is_accel)
    rail_of_leaf = {}
    lo, hi, _ = up_links(f, 0)
    for e, leaf in zip(lo.tolist(), hi.tolist()):
        if f.ep_is_accel[e]:
            rail_of_leaf.setdefault(leaf, set()).add(int(f.ep_local[e]))
    for e in cpu.tolist():
        assert rail_of_leaf.get(int(homes(f, e)[0]), {0}) == {0}


def test_cpu_host_ports_spread_over_rails_by_default_and_as_stated():
    d = add_cpu_hosts(rail_cluster(), per_rack=1, nics=2, nic_ports=1)
    f = build(from_dict(d))
    assert (ports_per_leaf(f) >= 1).all()
    lo, hi, _ = up_links(f, 0)
    gpu_leaf_rail = {leaf: int(f.ep_local[e]) for e, leaf in zip(lo.tolist(), hi.tolist()) if f.ep_is_accel[e]}
    for e in np.flatnonzero(~f.ep_is_accel).tolist():
        h = homes(f, e)
        assert [gpu_leaf_rail.get(int(x), -1) for x in h] in ([0, 1], [-1, 1], [0, -1], [-1, -1])
    # stated: both ports on rail 5
    d2 = add_cpu_hosts(rail_cluster(), per_rack=1, nics=2, nic_ports=1, rails=[5, 5])
    f2 = build(from_dict(d2))
    assert (ports_per_leaf(f2) >= 1).all()
    lo, hi, _ = up_links(f2, 0)
    rail_of = {leaf: int(f2.ep_local[e]) for e, leaf in zip(lo.tolist(), hi.tolist()) if f2.ep_is_accel[e]}
    cpu_leaves = {int(x) for e in np.flatnonzero(~f2.ep_is_accel).tolist() for x in homes(f2, e)}
    assert {rail_of.get(x, 5) for x in cpu_leaves} == {5}


@pytest.mark.parametrize("rails, why", [([0], "one rail per fabric port"), ([0, 8], "does not exist")])
def test_stated_rails_are_checked(rails, why):
    d = add_cpu_hosts(rail_cluster(), per_rack=1, nics=2, nic_ports=1, rails=rails)
    with pytest.raises(SpecError) as e:
        from_dict(d)
    assert why in dict(e.value.errors)["node_types[1].rails"]
    d = add_cpu_hosts(cluster_dict(), per_rack=1, nics=1, rails=[0])
    with pytest.raises(SpecError) as e:
        from_dict(d)
    assert "node_types[1].rails" in dict(e.value.errors)


def test_multi_plane_single_port_hosts_build_no_empty_leaf():
    # two planes; GPUs have a port on each, CPU hosts one port (plane 0 only)
    d = cluster_dict(n_racks=4, nodes_per_rack=1, accel=8, nic_gbps=800, planes=2,
                     tiers=[{"switch": sw(16)}, {"switch": sw(16)}])
    d["node_types"][0]["nic_ports"] = 2
    d = add_cpu_hosts(d, per_rack=4)
    d["node_types"][1]["nic_gbps"] = 400
    f = build(from_dict(d))
    per = ports_per_leaf(f)
    assert (per >= 1).all(), per
    leaves_per_plane = np.bincount(f.node_plane[switches(f, 1)], minlength=2)
    assert leaves_per_plane.tolist() == [6, 4]   # (32 + 16) / 8 and 32 / 8
    assert f.meta["leaves_per_plane"] == [6, 4]


def test_partly_filled_fat_tree_is_refused():
    d = cluster_dict(n_racks=10, nodes_per_rack=1, accel=1, family="fat_tree", k=4)
    assert "nothing attached" in refused(d, "fabric.k")


# --- defect 2: pod size stated, or derived and shown with its rule ----------------------------------
def zone_cluster(**fabric):
    """1,536 racks of two 8-GPU nodes, a 32-port 400G top-of-rack leaf, 576-port deep-buffer
    chassis as spine (7:1) and super-spine: the issue's 24,576-GPU case."""
    d = cluster_dict(n_racks=1536, nodes_per_rack=2, accel=8,
                     tiers=[{"switch": sw(32)}, {"switch": "deep-buffer-576x400", "oversubscription": 7},
                            {"switch": "deep-buffer-576x400"}], **fabric)
    d["floor"] = {"racks_per_row": 32}
    return d


def leaves_per_pod_counted(f):
    return np.bincount(f.node_pod[switches(f, 1)]).tolist()


def test_576_port_spine_pod_size_derived_is_shown_with_its_rule():
    from topo.routing.describe import describe
    c = from_dict(zone_cluster())
    f = build(c)
    assert leaves_per_pod_counted(f) == [504, 504, 504, 24]
    sp = switches(f, 2)
    lo, hi, _ = up_links(f, 1)
    assert (np.bincount(hi, minlength=f.n_nodes)[sp] <= 504).all()
    lo2, _, _ = up_links(f, 2)
    assert (np.bincount(lo2, minlength=f.n_nodes)[sp] == 72).all()
    d = describe(f, c)
    rules = {x["what"]: x for x in d["structure"]["derived"]}
    assert rules["leaves per pod"]["value"] == 504
    assert "spine downlinks / bundle = 504 / 1 = 504" in rules["leaves per pod"]["rule"]
    assert "ceil(1536 / 504) = 4" in rules["pods per plane"]["rule"]
    assert not d["structure"]["stated"]


def test_576_port_spine_192_leaf_pods_at_7_to_1_refused_with_the_arithmetic():
    msg = refused(zone_cluster(leaves_per_pod=192), "fabric.leaves_per_pod")
    assert "192 / 7 = 27.43 up ports" in msg
    assert "189 leaves per pod" in msg and "196 leaves per pod" in msg
    assert "192/27 = 7.111" in msg and "192/28 = 6.857" in msg


def test_576_port_spine_192_leaf_pods_built_exactly_when_the_ratio_allows():
    from topo.routing.describe import describe
    d = zone_cluster(leaves_per_pod=192)
    d["fabric"]["tiers"][1]["oversubscription"] = 192 / 28
    c = from_dict(d)
    f = build(c)
    assert leaves_per_pod_counted(f) == [192] * 8
    sp = switches(f, 2)
    assert sp.size == 8 * 16
    _, hi, _ = up_links(f, 1)
    lo2, hi2, _ = up_links(f, 2)
    assert (np.bincount(hi, minlength=f.n_nodes)[sp] == 192).all()
    assert (np.bincount(lo2, minlength=f.n_nodes)[sp] == 28).all()
    # 16 super-spines, each with 8 pods x 28 links
    assert (np.bincount(hi2, minlength=f.n_nodes)[switches(f, 3)] == 8 * 28).all()
    assert f.tier_oversubscription[1] == pytest.approx(192 / 28)
    desc = describe(f, c)
    stated = {x["what"]: x for x in desc["structure"]["stated"]}
    assert stated["leaves per pod"]["value"] == 192
    # the same pods stated by count
    d2 = zone_cluster(pods=8)
    d2["fabric"]["tiers"][1]["oversubscription"] = 192 / 28
    assert leaves_per_pod_counted(build(from_dict(d2))) == [192] * 8
    d3 = zone_cluster(pods=5)
    d3["fabric"]["tiers"][1]["oversubscription"] = 192 / 28
    refused(d3, "fabric.pods")


def test_spines_and_super_spines_stated():
    # 2 tiers: 8 leaves of radix 16 (8 down, 8 up); 4 spines stated -> bundle 2
    d = cluster_dict(n_racks=8, nodes_per_rack=1, accel=8, tiers=[{"switch": sw(16)}, {"switch": sw(16)}],
                     spines_per_pod=4)
    f = build(from_dict(d))
    assert switches(f, 2).size == 4 and f.meta["bundles"] == [2]
    lo, hi, _ = up_links(f, 1)
    _, cnt = np.unique(lo * f.n_nodes + hi, return_counts=True)
    assert (cnt == 2).all() and cnt.size == 8 * 4
    d["fabric"]["spines_per_pod"] = 3
    assert "8 / 3" in refused(d, "fabric.spines_per_pod")
    d["fabric"]["spines_per_pod"] = 4
    d["fabric"]["tiers"][0]["bundle"] = 1
    refused(d, "fabric.tiers[0].bundle")
    # 2 tiers are one pod
    d2 = cluster_dict(n_racks=8, nodes_per_rack=1, accel=8, tiers=[{"switch": sw(16)}, {"switch": sw(16)}],
                      leaves_per_pod=4)
    refused(d2, "fabric.leaves_per_pod")
    # 3 tiers: radix-8 switches, 8 leaves in 2 pods; 4 spines per pod x 4 uplinks; 8 super-spines
    # stated -> bundle 2 (derived: bundle 4, 4 super-spines)
    d3 = cluster_dict(n_racks=8, nodes_per_rack=1, accel=4,
                      tiers=[{"switch": sw(8)}, {"switch": sw(8)}, {"switch": sw(8)}], super_spines=8)
    f3 = build(from_dict(d3))
    assert switches(f3, 3).size == 8 and f3.meta["bundles"] == [1, 2]
    d3["fabric"]["super_spines"] = 6
    refused(d3, "fabric.super_spines")


def test_pod_fields_refused_where_they_do_not_apply():
    d = cluster_dict(n_racks=4, nodes_per_rack=1, accel=8, tiers=[{"switch": sw(64)}], super_spines=2)
    refused(d, "fabric.super_spines")
    d = cluster_dict(n_racks=16, nodes_per_rack=1, accel=1, family="fat_tree", k=4, pods=4)
    refused(d, "fabric.k")


# --- defect 3: oversubscription in capacity; mixed port speeds built as breakouts or refused ----------
def test_800g_leaf_facing_400g_spine_breaks_out_into_two_400g_links():
    from topo.routing.describe import bisection_gbps, tier_capacity
    # 8 nodes x 8 GPUs x 800G; 64-port 800G leaves (32 down / 32 up), 128-port 400G spines
    d = cluster_dict(n_racks=8, nodes_per_rack=1, accel=8, nic_gbps=800,
                     tiers=[{"switch": sw(64, 800)}, {"switch": sw(128, 400)}])
    f = build(from_dict(d))
    lo, hi, g = up_links(f, 1)
    leaves = switches(f, 1)
    assert leaves.size == 2 and (g == 400).all()
    assert (np.bincount(lo, minlength=f.n_nodes)[leaves] == 64).all()      # 32 ports x 2 lanes
    cap = tier_capacity(f)
    assert cap["leaf_up_gbps"] == pytest.approx(cap["injection_gbps"])       # 1:1 in capacity
    assert f.tier_oversubscription[0] == pytest.approx(1.0)
    assert bisection_gbps(f) == pytest.approx(64 * 800 / 2)
    # spine ports used: each leaf-spine link takes one 400G spine port
    assert (np.bincount(hi, minlength=f.n_nodes)[switches(f, 2)] <= 128).all()


def test_800g_leaf_port_facing_400g_nics_is_a_2x400g_breakout():
    d = cluster_dict(n_racks=4, nodes_per_rack=1, accel=8, nic_gbps=400,
                     tiers=[{"switch": sw(16, 800)}, {"switch": sw(16, 800)}])
    f = build(from_dict(d))
    assert f.meta["breakout"] == 2
    per = ports_per_leaf(f)
    assert per.tolist() == [16, 16]                  # 8 down ports x 2 NIC ports each
    assert f.tier_oversubscription[0] == pytest.approx(16 * 400 / (8 * 800))


def test_nic_port_faster_than_the_leaf_port_is_refused():
    d = cluster_dict(n_racks=4, nodes_per_rack=1, accel=8, nic_gbps=800,
                     tiers=[{"switch": sw(16, 400)}, {"switch": sw(16, 400)}])
    msg = refused(d, "node_types[0].nic_gbps")
    assert "nic_ports: 2" in msg


def test_port_speeds_that_do_not_divide_are_refused():
    d = cluster_dict(n_racks=4, nodes_per_rack=1, accel=8, nic_gbps=400,
                     tiers=[{"switch": sw(16, 400)}, {"switch": sw(16, 600)}])
    assert "not a whole number" in refused(d, "fabric.tiers[1].switch")


def test_under_subscription_is_built_exactly():
    from topo.routing.describe import bisection_gbps, tier_capacity
    # radix-24 leaves at 1:2: 8 down, 16 up (twice the uplink capacity); 4 leaves
    d = cluster_dict(n_racks=4, nodes_per_rack=1, accel=8,
                     tiers=[{"switch": sw(24), "oversubscription": 0.5}, {"switch": sw(64)}])
    f = build(from_dict(d))
    assert ports_per_leaf(f).tolist() == [8] * 4
    lo, _, _ = up_links(f, 1)
    assert (np.bincount(lo, minlength=f.n_nodes)[switches(f, 1)] == 16).all()
    assert f.tier_oversubscription[0] == pytest.approx(0.5)
    cap = tier_capacity(f)
    assert cap["leaf_up_gbps"] == pytest.approx(2 * cap["injection_gbps"])
    assert bisection_gbps(f) == pytest.approx(cap["injection_gbps"] / 2)


@pytest.mark.parametrize("os, radix, expect", [(3, 16, (12, 4)), (2.5, 16, (10, 4)), (1, 15, (7, 7)),
                                               (0.25, 20, (4, 16))])
def test_port_split_is_exact(os, radix, expect):
    d = cluster_dict(n_racks=2, nodes_per_rack=1, accel=4,
                     tiers=[{"switch": sw(radix), "oversubscription": os}, {"switch": sw(64)}])
    f = build(from_dict(d))
    assert tuple(f.meta["port_split"][0]) == expect
    lo, _, _ = up_links(f, 1)
    assert np.bincount(lo, minlength=f.n_nodes)[switches(f, 1)].max() == expect[1]


def test_ratio_no_whole_split_reaches_is_refused():
    d = cluster_dict(n_racks=2, nodes_per_rack=1, accel=4,
                     tiers=[{"switch": sw(16), "oversubscription": 1.7}, {"switch": sw(64)}])
    msg = refused(d, "fabric.tiers[0].oversubscription")
    assert "Exact choices" in msg


# --- defect 6: capacity cliffs and the all-to-all figure per node class --------------------------------
def cliff_cluster(cpu_hosts=1):
    # radix-8 switches: 4 endpoint ports per leaf, 4 leaves per pod; 8 nodes of 4 GPUs fill 2 pods
    d = cluster_dict(n_racks=8, nodes_per_rack=1, accel=4,
                     tiers=[{"switch": sw(8)}, {"switch": sw(8)}, {"switch": sw(8)}])
    d["node_types"][0]["scaleup"] = {"size": 1}
    if cpu_hosts:
        d["node_types"].append({"name": "cpu", "accelerators": 0, "nics": 1, "nic_gbps": 200, "power_busy_kw": 0.8})
        d["racks"].append({"name": "cpu-rack", "count": 1, "nodes": {"cpu": cpu_hosts}, "power_limit_kw": 30})
    return d


def test_capacity_cliff_names_the_ports_that_force_a_pod_and_their_cost():
    from topo.routing.describe import describe
    c = from_dict(cliff_cluster(1))
    f = build(c)
    assert f.pods == 3 and leaves_per_pod_counted(f) == [4, 4, 1]
    f0 = build(from_dict(cliff_cluster(0)))
    assert f0.pods == 2
    d = describe(f, c)
    cl = d["capacity_cliff"]
    assert cl is not None and "1 hosts without accelerators" in cl["what"]
    assert cl["ports"] == 1 and (cl["pods"], cl["pods_without"]) == (3, 2)
    assert cl["switches"] == f.n_switches and cl["switches_without"] == f0.n_switches
    assert cl["extra_switches"] == f.n_switches - f0.n_switches > 0
    cost = lambda fab: sum(n * 10000 for n in fab.tier_switch_counts)
    assert cl["extra_cost_fraction"] > 0
    assert cl["network_cost_usd"] - cl["network_cost_usd_without"] >= cost(f) - cost(f0)
    from topo.io.render import describe_text
    assert "CAPACITY CLIFF" in describe_text(d)
    # no cliff when the pods are full
    assert describe(f0, from_dict(cliff_cluster(0)))["capacity_cliff"] is None


def test_all_to_all_is_reported_per_node_class():
    from topo.routing.describe import describe
    c = from_dict(cliff_cluster(1))
    f = build(c)
    a = describe(f, c)["all_to_all"]
    assert a["cpu_hosts"]["endpoints"] == 1 and a["accelerators"]["endpoints"] == 32
    assert a["cpu_hosts"]["gbps_per_endpoint"] == pytest.approx(200.0)
    assert a["cpu_hosts"]["limited_by"] == "its NIC links"
    # the accelerators are not capped by the 200G host: their figure is the switch tiers' (or 400G)
    assert a["accelerators"]["gbps_per_endpoint"] > 200.0
