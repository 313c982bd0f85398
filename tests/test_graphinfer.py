"""describe on custom graphs: planes, tiers, pods, oversubscription and bisection inferred from the graph.

Each graph is a small edge list written here; the figures are checked against hand calculations,
against networkx max flow (bisection) and against `analyze`'s fluid all-to-all (the bound).
"""
from __future__ import annotations

import json

import networkx as nx
import pytest
import yaml

import topo
from topo.routing.describe import describe
from topo.model.fabric import build
from topo.model.spec import from_dict

from conftest import cluster_dict


def custom(tmp_path, lines, n_ep, name="g.txt"):
    (tmp_path / name).write_text("\n".join(lines) + "\n")
    d = cluster_dict(n_racks=n_ep, nodes_per_rack=1, accel=1, family="custom",
                     custom={"edge_list": name, "link_gbps": 400})
    c = from_dict(d, base_dir=str(tmp_path))
    return c, build(c), d


def leaf_spine(down_gbps, up_links, up_gbps, leaves=4, eps_per_leaf=4, spines=2):
    """`leaves` leaves with `eps_per_leaf` endpoints each; every leaf has `up_links` links to every spine."""
    lines = [f"e{e} leaf{e // eps_per_leaf} {down_gbps}" for e in range(leaves * eps_per_leaf)]
    for leaf in range(leaves):
        for s in range(spines):
            lines += [f"leaf{leaf} spine{s} {up_gbps}"] * up_links
    return lines


def nx_halves_flow(f, first: set[int]) -> float:
    """Oracle: max flow between endpoint set `first` and the other endpoints (networkx, undirected links)."""
    g = nx.DiGraph()
    for u, v, d in f.to_networkx().edges(data=True):
        if u == v:
            continue
        for x, y in ((u, v), (v, u)):
            c = g[x][y]["capacity"] + d["gbps"] if g.has_edge(x, y) else d["gbps"]
            g.add_edge(x, y, capacity=c)
    for e in range(f.n_endpoints):
        if e in first:
            g.add_edge("S", e)
        else:
            g.add_edge(e, "T")
    return nx.maximum_flow_value(g, "S", "T")


def fluid_all_to_all(c, f) -> float:
    return topo.analyze(c, f, compare=False).to_dict()["all_to_all_gbps_per_accelerator"]


def test_undersubscribed_leaf_spine_2_to_1(tmp_path):
    # 4 leaves x 4 x 400G down = 1,600 Gb/s; up 2 x 800G to each of 2 spines = 3,200 Gb/s: 0.5:1
    c, f, _ = custom(tmp_path, leaf_spine(400, 2, 800), 16)
    d = describe(f, c)
    leaf, spine = d["tiers"]
    assert leaf["switches"] == 4 and spine["switches"] == 2
    assert leaf["oversubscription"] == 0.5            # main reported 1:1
    assert leaf["oversubscription_note"] == "uniform"
    assert spine["oversubscription"] is None and "top tier" in spine["oversubscription_note"]
    assert d["planes"] == 1 and d["pods"] == 1
    # injection-bound: half of 16 x 400G
    assert d["bisection_gbps"] == pytest.approx(16 * 400 / 2) == nx_halves_flow(f, set(range(8)))
    assert d["bisection_per_accelerator_gbps"] == pytest.approx(400)
    assert "max flow" in d["bisection_method"]
    inf = d["inferred"]
    assert inf["bisection"]["clos_formula_gbps"] == pytest.approx(3200)
    assert d["all_to_all_bound_gbps_per_endpoint"] == pytest.approx(400) == pytest.approx(fluid_all_to_all(c, f))


def test_oversubscribed_leaf_spine_2_to_1(tmp_path):
    # 1,600 Gb/s down, 2 x 400G up per leaf: 2:1; bisection = half the leaf uplinks = 4 x 800 / 2
    c, f, _ = custom(tmp_path, leaf_spine(400, 1, 400), 16)
    d = describe(f, c)
    assert d["tiers"][0]["oversubscription"] == 2.0
    assert d["bisection_gbps"] == pytest.approx(1600) == nx_halves_flow(f, set(range(8)))
    # all-to-all: a leaf block sends 4 r 12/15 through 800 Gb/s -> r = 250
    assert d["all_to_all_bound_gbps_per_endpoint"] == pytest.approx(250) == pytest.approx(fluid_all_to_all(c, f))


def two_planes():
    """8 endpoints, each one 400G port into plane a and one into plane b.

    Plane a: leaves a0, a1 (4 endpoints each), 1 x 400G to each of spines as0, as1 -> 2:1.
    Plane b: leaves b0, b1, 1 x 800G to each of spines bs0, bs1 -> 1:1.
    """
    lines = []
    for e in range(8):
        lines += [f"e{e} a{e // 4} 400", f"e{e} b{e // 4} 400"]
    for leaf in range(2):
        for s in range(2):
            lines += [f"a{leaf} as{s} 400", f"b{leaf} bs{s} 800"]
    return lines


def test_two_planes(tmp_path):
    c, f, _ = custom(tmp_path, two_planes(), 8)
    d = describe(f, c)
    assert d["planes"] == 2                              # main reported one plane
    inf = d["inferred"]
    assert inf["planes"]["switches_per_plane"] == [4, 4]
    assert inf["planes"]["endpoints_per_plane"] == [8, 8] and inf["planes"]["endpoints_in_several_planes"] == 8
    assert "note" not in inf["planes"]
    leaf = d["tiers"][0]
    assert leaf["switches_per_plane"] == [2, 2] and d["tiers"][1]["switches_per_plane"] == [2, 2]
    # plane a at 2:1, plane b at 1:1: the tier varies, so no single figure
    assert leaf["oversubscription"] is None
    assert (leaf["oversubscription_min"], leaf["oversubscription_max"]) == (1.0, 2.0)
    assert "varies" in leaf["oversubscription_note"]
    # by hand: plane a carries leaf a0's 800 up, plane b leaf b0's 1,600 up (= its endpoints' 1,600)
    assert d["bisection_gbps"] == pytest.approx(800 + 1600) == nx_halves_flow(f, set(range(4)))
    assert d["pods"] == 1 and inf["pods"]["per_plane"] == [1, 1]


def test_disconnected_parts_are_not_called_planes(tmp_path):
    # two leaf-spine islands, no endpoint in both: the bisection between them is 0
    lines = [f"e{e} l{e // 2} 400" for e in range(4)] + ["l0 s0 400", "l1 s1 400"]
    c, f, _ = custom(tmp_path, lines, 4)
    d = describe(f, c)
    assert d["planes"] == 2 and "separate fabrics" in d["inferred"]["planes"]["note"]
    assert d["bisection_gbps"] == 0.0 == nx_halves_flow(f, {0, 1})


def three_tier_two_pods():
    """8 endpoints on 4 leaves (2 x 400G each); pod p = leaves 2p, 2p+1 and spines 2p, 2p+1, every leaf
    1 x 400G to both spines of its pod (1:1); each spine 1 x 400G to one super-spine (2:1)."""
    lines = [f"e{e} l{e // 2} 400" for e in range(8)]
    for leaf in range(4):
        for s in range(2):
            lines.append(f"l{leaf} s{(leaf // 2) * 2 + s} 400")
    lines += [f"s{s} c{s % 2} 400" for s in range(4)]
    return lines


def test_three_tier_two_pods(tmp_path):
    c, f, _ = custom(tmp_path, three_tier_two_pods(), 8)
    d = describe(f, c)
    assert [t["switches"] for t in d["tiers"]] == [4, 4, 2]
    assert d["pods"] == 2                                # main reported 1
    inf = d["inferred"]
    assert inf["pods"]["leaves_per_pod"] == [2, 2] and inf["pods"]["switches_per_pod"] == [4, 4]
    assert [t["oversubscription"] for t in d["tiers"]] == [1.0, 2.0, None]
    # by hand: pod 0 against pod 1 crosses the pod's 2 x 400G to the super-spines
    assert d["bisection_gbps"] == pytest.approx(800) == nx_halves_flow(f, set(range(4)))
    assert inf["bisection"]["clos_formula_gbps"] == pytest.approx(800)
    assert inf["bisection"]["split"] == {"first": 4, "second": 4, "splits_a_leaf": False, "splits_a_pod": False}
    # all-to-all: a pod sends 4 r 4/7 through 800 Gb/s -> r = 350 (leaf 466.7, injection 400)
    assert d["all_to_all_bound_gbps_per_endpoint"] == pytest.approx(350) == pytest.approx(fluid_all_to_all(c, f))


def test_ring_bisection_by_hand_and_all_to_all_not_determined(tmp_path):
    # four switches in a ring of 100G links, two 400G endpoints on each: any balanced split of the
    # ring crosses two ring links, so the bisection is 200 Gb/s
    lines = [f"e{e} r{e // 2} 400" for e in range(8)] + [f"r{i} r{(i + 1) % 4} 100" for i in range(4)]
    c, f, _ = custom(tmp_path, lines, 8)
    d = describe(f, c)
    assert d["bisection_gbps"] == pytest.approx(200) == nx_halves_flow(f, set(range(4)))
    inf = d["inferred"]
    assert not inf["layered"] and inf["same_tier_links"] == 4
    assert d["all_to_all_bound_gbps_per_endpoint"] is None
    a2a = inf["all_to_all"]
    assert a2a["status"] == "not determined" and "same tier" in a2a["reason"]
    assert "clos_formula_gbps" not in inf["bisection"]


def test_too_large_for_max_flow_says_so(tmp_path):
    from topo.model.graphinfer import infer
    _, ring, _ = custom(tmp_path, [f"e{e} r{e // 2} 400" for e in range(8)]
                        + [f"r{i} r{(i + 1) % 4} 100" for i in range(4)], 8, "ring.txt")
    b = infer(ring, max_flow_links=5)["bisection"]
    assert b["gbps"] is None and b["status"] == "not determined"
    assert b["reason"].startswith("not computed: graph too large for exact max flow")
    # a uniform layered graph falls back to the Clos formula, labelled as such
    _, tree, _ = custom(tmp_path, three_tier_two_pods(), 8, "tree.txt")
    b = infer(tree, max_flow_links=5)["bisection"]
    assert b["gbps"] == pytest.approx(800) and b["status"] == "structural" and "Clos formula" in b["method"]


def test_fractional_capacities_use_the_networkx_fallback(tmp_path):
    lines = [f"e{e} leaf{e // 2} 400" for e in range(4)] + ["leaf0 spine0 123.4567891", "leaf1 spine0 77.0000001"]
    c, f, _ = custom(tmp_path, lines, 4)
    d = describe(f, c)
    assert d["bisection_gbps"] == pytest.approx(77.0000001, rel=1e-12) == nx_halves_flow(f, {0, 1})
    assert "networkx" in d["bisection_method"]
    assert d["tiers"][0]["oversubscription_min"] == pytest.approx(800 / 123.4567891, abs=1e-4)


def test_cli_describe_json_and_text(tmp_path):
    from click.testing import CliRunner
    from topo.cli.app import main
    _, _, d = custom(tmp_path, two_planes(), 8)
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    res = CliRunner().invoke(main, ["describe", str(p), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["planes"] == 2 and out["bisection_gbps"] == pytest.approx(2400)
    assert out["inferred"]["bisection"]["method"] and out["inferred"]["planes"]["method"]
    assert all(o["method"] for o in out["inferred"]["oversubscription"])
    res = CliRunner().invoke(main, ["describe", str(p)])
    assert res.exit_code == 0, res.output
    assert "2 plane(s)" in res.output and "2.4 Tb/s" in res.output
