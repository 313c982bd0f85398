"""The honesty matrix of issue 13: family x planes x dual homing x oversubscription x port speeds
(one speed per switch, or port groups of two speeds on the leaf).

Every combination either builds a fabric with exactly the stated properties, counted from the
arrays (the planes, each endpoint port's leaf — two distinct leaves per dual-homed NIC —, the
down:up capacity of every leaf against the stated oversubscription, the link speeds), or
`topo validate` refuses it with exit 2 and a JSON path. Small fabrics (four racks of one
4-accelerator node), so the 480 combinations run in seconds. Dual homing is single, or dual with
the second port where `fabric.dual_homed_across` says (unset: its default).
"""
from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from topo.cli.app import main
from topo.core.errors import SpecError
from topo.model.fabric import build
from topo.model.spec import from_dict

from conftest import cluster_dict, sw

FAMILIES = ("fat_tree", "clos2", "clos3", "rail_optimized", "rail_only")
PLANES = (1, 2)
# single-homed, or dual-homed with the second port where the file says (None: the default,
# fabric.dual_homed_across unset)
DUAL = (False, None, "leaves", "planes")
OVERSUB = (0.5, 1.0, 3.0)
# (NIC port, leaf port, spine and super-spine port) in Gb/s
SPEEDS = {"nic400-leaf400": (400, 400, 400), "nic400-leaf800": (400, 800, 800),
          "leaf800-spine400": (400, 800, 400),
          # port groups on one 400G leaf: 200G down ports (400G ports broken out 2 ways), 400G up,
          # as many of each as give the oversubscription (fabric.tiers[0].ports)
          "groups-200down-400up": (200, 400, 400)}
# (down 200G ports, up 400G ports) of the leaf's port groups per oversubscription: at most 6 of 8 ports
GROUPS = {0.5: (4, 4), 1.0: (8, 4), 3.0: (12, 2)}
ACCEL = 4
PATH = re.compile(r"^\s+((fabric|node_types|racks)[\w.\[\]]*): ", re.M)


def _across(planes, dual):
    """Where a dual-homed NIC's second port goes: the stated choice, else the default."""
    if dual is False:
        return None
    return dual or ("planes" if planes > 1 else "leaves")


def _ports(family, planes, dual):
    """Ports per NIC (one NIC per accelerator): one per plane, two per plane when dual-homed
    across leaves, at least two when dual-homed."""
    if family != "rail_only" and _across(planes, dual) == "leaves":
        return 2 * planes
    return 2 if (planes > 1 or dual is not False) else 1


def _file(family, planes, dual, os_, speeds):
    nic, leaf, spine = speeds
    ports = _ports(family, planes, dual)
    fam = {"clos2": "clos", "clos3": "clos"}.get(family, family)
    if family == "fat_tree":
        tiers = [{"switch": sw(4, gbps=leaf), "oversubscription": os_}, {"switch": sw(4, gbps=spine)},
                 {"switch": sw(4, gbps=spine)}]
    elif family == "clos3":
        tiers = [{"switch": sw(8, gbps=leaf), "oversubscription": os_}, {"switch": sw(8, gbps=spine)},
                 {"switch": sw(16, gbps=spine)}]
    elif family == "rail_only":
        tiers = [{"switch": sw(16, gbps=leaf), "oversubscription": os_}, {"switch": sw(16, gbps=spine)}]
    else:
        tiers = [{"switch": sw(8, gbps=leaf), "oversubscription": os_}, {"switch": sw(16, gbps=spine)}]
    d = cluster_dict(n_racks=4, nodes_per_rack=1, accel=ACCEL, family=fam, tiers=tiers,
                     planes=planes, dual_homed=dual is not False)
    if dual:
        d["fabric"]["dual_homed_across"] = dual
    d["node_types"][0].update(nics=ACCEL, nic_ports=ports, nic_gbps=nic * ports)
    if family == "fat_tree":
        d["fabric"]["k"] = 4
    if speeds == SPEEDS["groups-200down-400up"]:
        dn, up = GROUPS[os_]
        d["fabric"]["tiers"][0]["ports"] = {"down": {"ports": dn, "gbps": 200}, "up": {"ports": up, "gbps": 400}}
    return d


def _check_built(f, family, planes, dual, os_, speeds):
    nic, leaf, spine = speeds
    n = f.n_endpoints
    up = (np.arange(f.n_links) & 1) == 0
    # planes present: every plane has switches, and links stay in their plane
    want_planes = ACCEL if family == "rail_only" else planes
    assert f.planes == want_planes
    sw_planes = np.unique(f.node_plane[f.node_tier > 0])
    assert sw_planes.tolist() == list(range(want_planes))
    assert (f.node_plane[f.link_src[f.link_tier >= 1]] == f.node_plane[f.link_dst[f.link_tier >= 1]]).all()
    # each endpoint port's leaf and plane (port k of an endpoint is its k-th link)
    ep_links = np.flatnonzero(up & (f.link_tier == 0))
    ports = np.bincount(f.link_src[ep_links], minlength=n)
    k = _ports(family, planes, dual)
    assert (ports == k).all()
    leaves = f.link_dst[ep_links].reshape(n, k)  # ports of an endpoint are consecutive links
    assert (f.node_tier[leaves] == 1).all()
    plane = f.node_plane[leaves]
    across = _across(planes, dual)
    kk = np.arange(k)
    if family == "rail_only":
        assert (plane == (f.ep_local % ACCEL)[:, None]).all()
    elif across == "leaves":
        assert (plane == (kk // 2) % planes).all()      # the pair k, k+1 on one plane
    else:
        assert (plane == kk % planes).all()             # port k on plane k mod planes
    if across is not None:
        # a NIC's two ports (2j, 2j+1) never on one leaf; across leaves on one plane, across
        # planes on two
        a, b = leaves[:, 0::2], leaves[:, 1::2]
        assert (a != b).all(), "a dual-homed NIC's two ports on one leaf"
        if across == "leaves" or family == "rail_only":
            assert (f.node_plane[a] == f.node_plane[b]).all()
        else:
            assert (f.node_plane[a] != f.node_plane[b]).all()
    if family in ("rail_optimized", "rail_only"):
        # a leaf holds one rail, in every plane
        rails = f.ep_local[f.link_src[ep_links]] % ACCEL
        owner = f.link_dst[ep_links]
        for x in np.unique(owner):
            assert np.unique(rails[owner == x]).size == 1
    if family in ("rail_optimized", "clos2", "clos3"):
        # leaves per plane: the ports of each plane over leaves of endpoint_ports_per_leaf, per
        # (rail, side) on rail-optimized fabrics, per side on Clos
        epl = f.meta["endpoint_ports_per_leaf"]
        groups = (ACCEL if family == "rail_optimized" else 1) * (2 if across == "leaves" else 1)
        for p in range(planes):
            on_p = int((plane == p).sum())
            want = groups * -(-on_p // groups // epl)
            assert int(((f.node_tier == 1) & (f.node_plane == p)).sum()) == want
    # link speeds
    assert set(f.link_gbps[ep_links].tolist()) == {float(nic)}
    if f.n_tiers >= 2:
        assert set(f.link_gbps[f.link_tier == 1].tolist()) == {float(min(leaf, spine))}
    if f.n_tiers == 3:
        assert set(f.link_gbps[f.link_tier == 2].tolist()) == {float(spine)}
    # capacity ratio down:up per leaf: the stated oversubscription on every full leaf, at most it on
    # a partly filled one
    if f.n_tiers >= 2:
        lv = np.flatnonzero(f.node_tier == 1)
        dn = np.bincount(f.link_dst[ep_links], weights=f.link_gbps[ep_links], minlength=f.n_nodes)[lv]
        m1 = up & (f.link_tier == 1)
        upc = np.bincount(f.link_src[m1], weights=f.link_gbps[m1], minlength=f.n_nodes)[lv]
        # a full leaf's down capacity: its endpoint ports (down ports x breakout) at the NIC speed
        full_dn = f.meta["endpoint_ports_per_leaf"] * float(nic)
        assert (dn <= full_dn * (1 + 1e-12)).all()
        assert full_dn / upc == pytest.approx(np.full(lv.size, os_), rel=1e-9)
        full = np.bincount(f.link_dst[ep_links], minlength=f.n_nodes)[lv] == f.meta["endpoint_ports_per_leaf"]
        assert dn[full] / upc[full] == pytest.approx(np.full(int(full.sum()), os_), rel=1e-9)
        assert f.tier_oversubscription[0] == pytest.approx(os_, rel=1e-9)


# The fat-tree combinations this matrix found built as something else (oversubscription ignored,
# dual homing onto spine ports, one port speed for every tier) are refused by validate now
# (fabric.tiers[i].oversubscription, fabric.dual_homed, fabric.tiers), so they count as refusals.


def _params():
    out = []
    for a, b, c, d, e in itertools.product(FAMILIES, PLANES, DUAL, OVERSUB, SPEEDS):
        dual = "single" if c is False else f"dual-{c or 'default'}"
        out.append(pytest.param(a, b, c, d, e, id=f"{a}-p{b}-{dual}-os{d:g}-{e}"))
    return out


@pytest.mark.parametrize("family,planes,dual,os_,speed", _params())
def test_builds_exactly_or_validate_refuses(family, planes, dual, os_, speed, tmp_path):
    d = _file(family, planes, dual, os_, SPEEDS[speed])
    try:
        f = build(from_dict(d))
    except SpecError:
        f = None
    p = tmp_path / "c.json"
    p.write_text(json.dumps(d))
    res = CliRunner().invoke(main, ["validate", str(p)])
    if f is None:
        assert res.exit_code == 2, res.output
        assert PATH.search(res.output), res.output
        return
    assert res.exit_code == 0, res.output
    _check_built(f, family, planes, dual, os_, SPEEDS[speed])
