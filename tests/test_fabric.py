"""Fabric builders: closed forms, networkx cross-construction, families, interchange."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from networkx.algorithms.isomorphism import categorical_multiedge_match

from topo.routing.describe import bisection_gbps, describe, tier_capacity
from topo.core.errors import SpecError
from topo.model.fabric import build
from topo.model.spec import from_dict

from conftest import cluster_dict, sw


def fat_tree_cluster(k, gbps=400):
    hosts = k ** 3 // 4
    per_node = 4 if hosts % 4 == 0 else 1
    d = cluster_dict(n_racks=hosts // per_node, nodes_per_rack=1, accel=per_node, nic_gbps=gbps,
                     family="fat_tree", k=k, tiers=[{"switch": sw(k, gbps)}])
    return from_dict(d)


@pytest.mark.parametrize("k", [4, 8, 48])
def test_fat_tree_closed_forms(k):
    f = build(fat_tree_cluster(k))
    assert f.n_endpoints == k ** 3 // 4
    assert f.n_switches == 5 * k * k // 4
    assert f.tier_switch_counts == (k * k // 2, k * k // 2, k * k // 4)
    up = slice(0, None, 2)
    per_layer = np.bincount(f.link_tier[up].astype(int), minlength=3)
    assert per_layer.tolist() == [k ** 3 // 4] * 3
    assert f.pods == k
    # every switch uses exactly k ports
    deg = np.diff(f.indptr)[f.n_endpoints:]
    assert (deg == k).all()


@pytest.mark.parametrize("R", [8, 16])
def test_clos_endpoint_limits(R):
    # two tiers of radix R reach exactly R^2/2 endpoints; three tiers R^3/4
    def clos(endpoints, n_tiers):
        d = cluster_dict(n_racks=endpoints, nodes_per_rack=1, accel=1, tiers=[{"switch": sw(R)}] * n_tiers)
        return build(from_dict(d))
    f2 = clos(R * R // 2, 2)
    assert f2.n_endpoints == R * R // 2 and f2.tier_switch_counts == (R, R // 2)
    with pytest.raises(SpecError) as e:
        clos(R * R // 2 + 1, 2)
    assert "fabric.tiers[1].radix" in dict(e.value.errors)
    f3 = clos(R ** 3 // 4, 3)
    assert f3.n_endpoints == R ** 3 // 4
    assert sum(f3.tier_switch_counts) == 5 * R * R // 4
    with pytest.raises(SpecError) as e:
        clos(R ** 3 // 4 + 1, 3)
    assert "fabric.tiers[2].radix" in dict(e.value.errors)


def test_oversubscription_and_bisection():
    # 64-port leaves at 3:1 -> 48 down, 16 up; 8 leaves
    d = cluster_dict(n_racks=48, nodes_per_rack=1, accel=8, tiers=[{"switch": sw(64), "oversubscription": 3},
                                                                      {"switch": sw(64)}])
    c = from_dict(d)
    f = build(c)
    assert f.tier_oversubscription[0] == pytest.approx(3.0)
    cap = tier_capacity(f)
    assert cap["injection_gbps"] == pytest.approx(384 * 400)
    assert cap["leaf_up_gbps"] == pytest.approx(8 * 16 * 400)
    # bisection: half of the leaf uplinks = injection / (2 * oversubscription)
    assert bisection_gbps(f) == pytest.approx(384 * 400 / 2 / 3)
    # and the same number out of the links themselves: half the leaves (with their endpoints) vs the rest
    side = np.ones(f.n_nodes, np.int64)
    leaves = np.flatnonzero(f.node_tier == 1)
    first_half = leaves[: len(leaves) // 2]
    side[first_half] = 0
    side[: f.n_endpoints][np.isin(f.ep_leaf(), first_half)] = 0
    crossing = (side[f.link_src] == 0) & (side[f.link_dst] == 1)
    assert f.link_gbps[crossing].sum() == pytest.approx(bisection_gbps(f))
    desc = describe(f, c)
    assert desc["tiers"][0]["oversubscription"] == 3.0


def test_three_tier_spine_oversubscription():
    d = cluster_dict(n_racks=256, nodes_per_rack=1, accel=8,
                     tiers=[{"switch": sw(32)}, {"switch": sw(32), "oversubscription": 3}, {"switch": sw(32)}])
    f = build(from_dict(d))
    assert f.tier_oversubscription[1] == pytest.approx(3.0)  # 24 down, 8 up
    assert f.meta["leaves_per_pod"] == 24
    cap = tier_capacity(f)
    assert bisection_gbps(f) == pytest.approx(min(cap["injection_gbps"], cap["spine_up_gbps"]) / 2)


def nx_fat_tree(k, gbps=400.0):
    """Al-Fares k-ary fat tree, constructed independently with networkx."""
    g = nx.MultiGraph()
    h = k // 2
    for pod in range(k):
        for e in range(h):
            for i in range(h):
                g.add_edge(("host", pod, e, i), ("edge", pod, e), gbps=gbps)
            for a in range(h):
                g.add_edge(("edge", pod, e), ("agg", pod, a), gbps=gbps)
        for a in range(h):
            for j in range(h):
                g.add_edge(("agg", pod, a), ("core", a, j), gbps=gbps)
    return g


def nx_leaf_spine(n_leaves, hosts_per_leaf, n_spines, bundle, gbps=400.0):
    g = nx.MultiGraph()
    for l in range(n_leaves):
        for i in range(hosts_per_leaf):
            g.add_edge(("host", l, i), ("leaf", l), gbps=gbps)
        for s in range(n_spines):
            for _ in range(bundle):
                g.add_edge(("leaf", l), ("spine", s), gbps=gbps)
    return g


def strip(g):
    out = nx.MultiGraph()
    out.add_nodes_from(g.nodes)
    for u, v, d in g.edges(data=True):
        out.add_edge(u, v, gbps=d["gbps"])
    return out


def test_array_builder_matches_networkx_fat_tree():
    f = build(fat_tree_cluster(4))
    assert nx.is_isomorphic(strip(f.to_networkx()), nx_fat_tree(4),
                            edge_match=categorical_multiedge_match("gbps", None))


def test_array_builder_matches_networkx_leaf_spine_with_bundles():
    # 4 leaves x 8 hosts, radix 16: 8 up ports, bundle 4 (4 leaves * 4 <= 16) -> 2 spines
    d = cluster_dict(n_racks=4, nodes_per_rack=1, accel=8, tiers=[{"switch": sw(16)}, {"switch": sw(16)}])
    f = build(from_dict(d))
    assert f.meta["bundles"][0] == 4 and f.tier_switch_counts == (4, 2)
    assert nx.is_isomorphic(strip(f.to_networkx()), nx_leaf_spine(4, 8, 2, 4),
                            edge_match=categorical_multiedge_match("gbps", None))


def test_rail_optimized_groups():
    d = cluster_dict(n_racks=4, nodes_per_rack=4, accel=8, family="rail_optimized",
                     tiers=[{"switch": sw(16)}, {"switch": sw(16)}])
    f = build(from_dict(d))
    # leaves take 8 endpoints: a group of 8 nodes per rail leaf; GPU i of every node in a group -> leaf i
    leaf = f.ep_leaf()
    for s in range(f.n_servers):
        eps = np.flatnonzero(f.ep_server == s)
        assert len(set(leaf[eps].tolist())) == 8  # every GPU of a node on a different rail leaf
    grp0 = np.flatnonzero(f.ep_server < 8)
    for g in range(8):
        same_rail = grp0[f.ep_local[grp0] == g]
        assert len(set(leaf[same_rail].tolist())) == 1


def test_multi_plane_and_dual_homed():
    d = cluster_dict(n_racks=4, nodes_per_rack=1, accel=8, nic_gbps=800, tiers=[{"switch": sw(16)}, {"switch": sw(16)}],
                     planes=2)
    d["node_types"][0]["nic_ports"] = 2
    f = build(from_dict(d))
    assert f.planes == 2
    ups = f.link_tier == 0
    up_dir = (np.arange(f.n_links) & 1) == 0
    m = ups & up_dir
    planes_per_ep = [set(f.node_plane[f.link_dst[m & (f.link_src == e)]].tolist()) for e in range(f.n_endpoints)]
    assert all(p == {0, 1} for p in planes_per_ep)
    assert (f.link_gbps[m] == 400).all()
    # dual-homed: two ports to two different leaves of the same plane
    d2 = cluster_dict(n_racks=4, nodes_per_rack=1, accel=8, nic_gbps=800, tiers=[{"switch": sw(16)}, {"switch": sw(16)}],
                      dual_homed=True)
    d2["node_types"][0]["nic_ports"] = 2
    f2 = build(from_dict(d2))
    m2 = (f2.link_tier == 0) & ((np.arange(f2.n_links) & 1) == 0)
    for e in range(f2.n_endpoints):
        homes = f2.link_dst[m2 & (f2.link_src == e)]
        assert len(homes) == 2 and homes[0] != homes[1]


def test_rail_only_has_one_plane_per_rail():
    d = cluster_dict(n_racks=4, nodes_per_rack=2, accel=8, family="rail_only", tiers=[{"switch": sw(16)}])
    f = build(from_dict(d))
    assert f.planes == 8
    assert (f.node_plane[f.ep_leaf()] == f.ep_local).all()


def test_heterogeneous_nodes_and_cpu_hosts():
    d = cluster_dict(n_racks=2, nodes_per_rack=2)
    d["node_types"].append({"name": "cpu", "platform": "cpu-host"})
    d["racks"][0]["nodes"]["cpu"] = 1
    c = from_dict(d)
    f = build(c)
    assert f.n_endpoints == 2 * (2 * 8 + 1)
    assert int((~f.ep_is_accel).sum()) == 2
    assert (f.ep_domain[~f.ep_is_accel] == -1).all()
    out = describe(f, c)
    assert out["cpu_hosts"] == 2 and out["accelerators"] == 32


def test_rack_scale_domains():
    d = cluster_dict(n_racks=3, nodes_per_rack=18, accel=4)
    d["node_types"][0]["scaleup"] = {"size": 72}
    f = build(from_dict(d))
    assert f.n_domains == 3 and (f.domain_size == 72).all()
    assert (f.ep_domain == f.ep_rack()).all()
    d["racks"][0]["nodes"]["gpu"] = 17
    with pytest.raises(SpecError) as e:
        from_dict(d)
    assert "racks[0].nodes.gpu" in dict(e.value.errors)


def test_floor_gives_reach_classes():
    d = cluster_dict(n_racks=64, nodes_per_rack=1, accel=8, tiers=[{"switch": sw(64)}, {"switch": sw(64)}])
    d["floor"] = {"racks_per_row": 8, "leaf_placement": "tor"}
    f = build(from_dict(d))
    up = slice(0, None, 2)
    ep_links = f.link_tier[up] == 0
    # top-of-rack leaves: the leaf sits in the rack of its first endpoint; short copper links exist
    assert (f.link_reach[up][ep_links] == 0).any()
    # reach class is monotone in length
    order = np.argsort(f.link_length_m[up], kind="stable")
    assert (np.diff(f.link_reach[up][order].astype(int)) >= 0).all()


def test_graphml_round_trip_and_custom_import(tmp_path):
    from topo.model.graphio import write_graphml
    d = cluster_dict(n_racks=4, nodes_per_rack=1, accel=8, tiers=[{"switch": sw(16)}, {"switch": sw(16)}])
    f = build(from_dict(d))
    p = tmp_path / "fabric.graphml"
    write_graphml(f, p)
    g = nx.read_graphml(p, force_multigraph=True)
    assert g.number_of_nodes() == f.n_nodes and g.number_of_edges() == f.n_links // 2
    # import it back as a custom fabric
    d2 = cluster_dict(n_racks=4, nodes_per_rack=1, accel=8, family="custom", custom={"graphml": str(p)})
    f2 = build(from_dict(d2, base_dir=str(tmp_path)))
    assert f2.n_endpoints == f.n_endpoints and f2.n_links == f.n_links
    assert nx.is_isomorphic(strip(f.to_networkx()), strip(f2.to_networkx()),
                            edge_match=categorical_multiedge_match("gbps", None))
    assert f2.tier_switch_counts == (4, 2)


def test_custom_edge_list_errors(tmp_path):
    p = tmp_path / "edges.txt"
    p.write_text("e0 s0 400\ne1 s0 fast\n")
    d = cluster_dict(n_racks=1, nodes_per_rack=1, accel=2, family="custom", custom={"edge_list": "edges.txt"})
    with pytest.raises(SpecError) as e:
        build(from_dict(d, base_dir=str(tmp_path)))
    assert "fabric.custom.edge_list" in dict(e.value.errors)
    p.write_text("e0 s0 400\ne1 s0 400\ns0 s1\n")
    f = build(from_dict(d, base_dir=str(tmp_path)))
    assert f.n_endpoints == 2 and f.tier_switch_counts == (1, 1)
