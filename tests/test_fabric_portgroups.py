"""Port groups per tier (fabric.tiers[i].ports): down and up ports with their own speeds and
breakouts on one switch, checked against the switch's ports and capacity; every count from the
fabric arrays."""
from __future__ import annotations


import numpy as np
import pytest

from topo.routing.describe import describe
from topo.core.errors import SpecError
from topo.model.fabric import build
from topo.model.spec import from_dict

from conftest import cluster_dict, sw, refused, validate_refuses


def groups(down, dg, up=None, ug=None):
    g = {"down": {"ports": down, "gbps": dg}}
    if up is not None:
        g["up"] = {"ports": up, "gbps": ug}
    return g


def phys(f, tier):
    """(lower node, upper node, gbps) of the physical links of a link tier."""
    m = (f.link_tier == tier) & ((np.arange(f.n_links) & 1) == 0)
    return f.link_src[m], f.link_dst[m], f.link_gbps[m]


def leaf_capacity(f):
    """(down Gb/s, up Gb/s) of every leaf, from its links."""
    lv = np.flatnonzero(f.node_tier == 1)
    _, hi, g = phys(f, 0)
    dn = np.bincount(hi, weights=g, minlength=f.n_nodes)[lv]
    lo, _, g1 = phys(f, 1)
    upc = np.bincount(lo, weights=g1, minlength=f.n_nodes)[lv]
    return dn, upc


def test_128x200g_down_and_64x400g_up_on_a_51_2t_switch():
    # 32 racks of one 8-GPU node with 200G NICs, rail-optimized: 32 GPUs per rail fill a quarter
    # of a 128-port leaf, so one leaf per rail; 8 leaves x 64 uplinks over 128-port spines
    d = cluster_dict(n_racks=32, nodes_per_rack=1, accel=8, family="rail_optimized", nic_gbps=200,
                     tiers=[{"switch": "th5-128x400", "ports": groups(128, 200, 64, 400)},
                            {"switch": "th5-128x400"}])
    c = from_dict(d)
    f = build(c)
    lo, hi, g = phys(f, 0)
    assert (g == 200).all() and lo.size == 256
    lo1, hi1, g1 = phys(f, 1)
    assert (g1 == 400).all()
    leaves = np.flatnonzero(f.node_tier == 1)
    assert leaves.size == 8
    assert (np.bincount(lo1, minlength=f.n_nodes)[leaves] == 64).all()
    # the stated down:up capacity is 128 x 200 / (64 x 400) = 1
    assert f.tier_oversubscription[0] == pytest.approx(1.0)
    assert f.meta["endpoint_ports_per_leaf"] == 128
    info = describe(f, c)
    assert info["tiers"][0]["ports"] == {"down": 128, "down_gbps": 200.0, "up": 64, "up_gbps": 400.0, "stated": True}
    row = next(x for x in info["structure"]["stated"] if x["what"] == "leaf port groups")
    assert "64 ports of 400G broken out 2 ways" in row["value"]
    # optics follow the links as built: 256 links at 200G, 512 at 400G
    by_speed = {}
    for o in info["bill_of_materials"]["optics"]:
        by_speed[o["gbps"]] = by_speed.get(o["gbps"], 0) + o["links"]
    assert by_speed == {200: 256, 400: 512}


@pytest.mark.parametrize("nic,down,dg,up,ug,ports_per_leaf", [
    (800, 32, 800, 16, 1600, 32),     # a 1.6T port as 2 x 800G down
    (400, 64, 400, 16, 1600, 64),     # ... as 4 x 400G down
])
def test_a_1_6t_port_broken_out(nic, down, dg, up, ug, ports_per_leaf):
    d = cluster_dict(n_racks=8, nodes_per_rack=1, accel=8, nic_gbps=nic,
                     tiers=[{"switch": sw(32, gbps=1600), "ports": groups(down, dg, up, ug)},
                            {"switch": sw(32, gbps=1600)}])
    f = build(from_dict(d))
    assert f.meta["endpoint_ports_per_leaf"] == ports_per_leaf
    _, _, g = phys(f, 0)
    assert (g == nic).all()
    _, _, g1 = phys(f, 1)
    assert (g1 == 1600).all()
    dn, upc = leaf_capacity(f)
    assert (upc == 16 * 1600).all()
    assert f.tier_oversubscription[0] == pytest.approx(down * dg / (up * ug))


def test_under_subscribed_groups_and_a_leaf_uplink_broken_out_to_the_spine():
    # leaf: 32 x 200G down and 32 x 400G up on a 64 x 400G switch (0.5:1); the spine takes 200G
    # down ports (128 x 200G on 64 x 400G), so each 400G leaf uplink is 2 x 200G links
    d = cluster_dict(n_racks=4, nodes_per_rack=2, accel=8, nic_gbps=200,
                     tiers=[{"switch": sw(64), "ports": groups(32, 200, 32, 400)},
                            {"switch": sw(64), "ports": groups(128, 200)}])
    c = from_dict(d)
    f = build(c)
    dn, upc = leaf_capacity(f)
    assert (dn == 32 * 200).all() and (upc == 32 * 400).all()
    _, hi1, g1 = phys(f, 1)
    assert (g1 == 200).all()
    assert f.tier_oversubscription[0] == pytest.approx(0.5)
    # 2 leaves x 64 links of 200G over spines of 128 x 200G down ports
    sp = np.flatnonzero(f.node_tier == 2)
    assert (np.bincount(hi1, minlength=f.n_nodes)[sp] <= 128).all()
    info = describe(f, c)
    assert any(x["what"] == "leaf uplink breakout" for x in info["structure"]["derived"])
    assert info["tiers"][1]["ports"] == {"down": 128, "down_gbps": 200.0, "up": 0, "up_gbps": None, "stated": True}


def test_three_tier_spine_groups():
    # spine: 8 x 400G down, 8 x 200G up on a 12 x 400G switch (2:1 in capacity); the super-spine
    # takes 200G ports (32 x 200G on 16 x 400G)
    d = cluster_dict(n_racks=8, nodes_per_rack=2, accel=8,
                     tiers=[{"switch": sw(8)}, {"switch": sw(12), "ports": groups(8, 400, 8, 200)},
                            {"switch": sw(16), "ports": groups(32, 200)}])
    f = build(from_dict(d))
    sp = np.flatnonzero(f.node_tier == 2)
    lo2, _, g2 = phys(f, 2)
    _, hi1, g1 = phys(f, 1)
    assert (g2 == 200).all() and (g1 == 400).all()
    assert (np.bincount(lo2, minlength=f.n_nodes)[sp] == 8).all()
    assert (np.bincount(hi1, minlength=f.n_nodes)[sp] == 8).all()
    assert f.tier_oversubscription[1] == pytest.approx(2.0)
    assert f.meta["leaves_per_pod"] == 8


@pytest.mark.parametrize("tiers,path,why", [
    ([{"switch": sw(64), "ports": groups(96, 200, 33, 400)}, {"switch": sw(64)}], "fabric.tiers[0].ports",
     "81 of the switch's 64"),
    ([{"switch": sw(64), "ports": groups(32, 800, 16, 400)}, {"switch": sw(64)}], "fabric.tiers[0].ports.down.gbps",
     "never runs faster"),
    ([{"switch": sw(64), "ports": groups(32, 300, 16, 400)}, {"switch": sw(64)}], "fabric.tiers[0].ports.down.gbps",
     "whole lanes"),
    ([{"switch": sw(64), "ports": groups(33, 200, 16, 400)}, {"switch": sw(64)}], "fabric.tiers[0].ports.down.ports",
     "multiple of 2"),
    ([{"switch": sw(64), "ports": groups(32, 400)}, {"switch": sw(64)}], "fabric.tiers[0].ports.up", "missing"),
    ([{"switch": sw(64)}, {"switch": sw(64), "ports": groups(32, 400, 32, 400)}], "fabric.tiers[1].ports.up",
     "no uplinks"),
    ([{"switch": sw(64), "ports": groups(32, 400, 16, 400), "oversubscription": 1},
      {"switch": sw(64)}], "fabric.tiers[0].oversubscription", "= 2"),
    ([{"switch": sw(64), "ports": groups(32, 100, 16, 400)}, {"switch": sw(64)}], "node_types[0].nic_gbps",
     "100G port of the leaf switch 'tier0-switch' (fabric.tiers[0].ports.down)"),
])
def test_refused_by_validate(tiers, path, why, tmp_path):
    d = cluster_dict(n_racks=2, nodes_per_rack=1, accel=8, tiers=tiers)
    assert why in refused(d, path)
    validate_refuses(d, path, tmp_path)


def test_refused_where_it_does_not_apply():
    d = cluster_dict(n_racks=2, nodes_per_rack=1, accel=8, family="fat_tree",
                     tiers=[{"switch": sw(8), "ports": groups(4, 400, 4, 400)}, {"switch": sw(8)}, {"switch": sw(8)}])
    d["fabric"]["k"] = 8
    assert "fat tree" in refused(d, "fabric.tiers[0].ports")
    d = cluster_dict(n_racks=8, nodes_per_rack=2, accel=8, leaves_per_pod=4,
                     tiers=[{"switch": sw(8)}, {"switch": sw(12), "ports": groups(8, 400, 4, 400)}, {"switch": sw(16)}])
    assert "not both" in refused(d, "fabric.tiers[1].ports")


def test_budget_refuses_port_groups(tmp_path, monkeypatch):
    from topo.solve import linkbudget as B
    d = cluster_dict(n_racks=4, nodes_per_rack=2, accel=8, nic_gbps=200,
                     tiers=[{"switch": sw(64), "ports": groups(32, 200, 16, 400)}, {"switch": sw(64)}])
    d["transport"] = {"protocol": "ideal"}
    called = []
    monkeypatch.setattr(B, "solve_cp", lambda *a, **k: called.append(1))
    with pytest.raises(SpecError) as e:
        B.budget(from_dict(d))
    assert "fabric.tiers[0].ports" in dict(e.value.errors) and not called
