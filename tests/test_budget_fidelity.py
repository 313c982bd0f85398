"""The link budget models the fabric the builder builds, feature by feature, or refuses it.

For every builder feature (issue 13) the budget either chooses uplinks and spines for exactly
the fabric the file describes — its rebuilt fabric (``cluster_after``) has, counted from the
arrays, the switch counts and uplinks the budget's own model claimed, and keeps what the file
states — or it refuses the file before solving with a SpecError that names the field.
"""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from topo.solve import linkbudget as B
from topo.core.errors import SpecError
from topo.model.fabric import build
from topo.model.spec import from_dict

from conftest import cluster_dict, sw
from helpers.budget_fidelity import _budget_matches_rebuilt, _ideal, _uniform

CPU = {"name": "cpu", "accelerators": 0, "nics": 1, "nic_ports": 2, "nic_gbps": 400,
       "power_busy_kw": 1.0, "power_idle_kw": 0.5}


# --- modelled exactly --------------------------------------------------------------------------
def test_rail_optimized_cpu_hosts_spread_over_rails():
    """Hosts without accelerators put port k on rail k: the budget's leaves are the builder's
    (on main every host port was put on rail 0, a leaf grouping the fabric does not have)."""
    d = _ideal(cluster_dict(n_racks=4, nodes_per_rack=2, accel=4, family="rail_optimized",
                            tiers=[{"switch": sw(16)}, {"switch": sw(16)}]), cpu=dict(CPU))
    r, f, g = _budget_matches_rebuilt(d)
    host_leaves = {int(x) for x in g.link_dst[g.adj[g.indptr[:g.n_endpoints]]][~g.ep_is_accel]}
    assert len(host_leaves) >= 1


def test_rail_optimized_stated_rails():
    cpu = dict(CPU, rails=[3, 3])
    d = _ideal(cluster_dict(n_racks=4, nodes_per_rack=2, accel=4, family="rail_optimized",
                            tiers=[{"switch": sw(16)}, {"switch": sw(16)}]), cpu=cpu)
    _budget_matches_rebuilt(d)


def test_rail_optimized_no_empty_leaves():
    """Single-port hosts on a rail-optimized fabric of 8 rails: only leaves with ports exist."""
    cpu = dict(CPU, nic_ports=1, nic_gbps=400)
    d = _ideal(cluster_dict(n_racks=2, nodes_per_rack=1, accel=8, family="rail_optimized",
                            tiers=[{"switch": sw(8)}, {"switch": sw(16)}]), cpu=cpu, cpu_per_rack=3)
    _budget_matches_rebuilt(d)


@pytest.mark.parametrize("family", ["clos", "rail_optimized"])
def test_dual_homed(family):
    """Each NIC's two ports on two leaves: modelled (on main the budget refused dual homing)."""
    d = _ideal(cluster_dict(n_racks=4, nodes_per_rack=2, accel=4, family=family, dual_homed=True,
                            tiers=[{"switch": sw(16)}, {"switch": sw(16)}]))
    d["node_types"][0]["nic_ports"] = 2
    r, f, g = _budget_matches_rebuilt(d)
    ports = g.adj[g.indptr[0]:g.indptr[g.n_endpoints]]
    leaves = g.link_dst[ports].reshape(g.n_endpoints, 2)
    assert (leaves[:, 0] != leaves[:, 1]).all()


def test_dual_homed_three_tiers():
    d = _ideal(cluster_dict(n_racks=8, nodes_per_rack=2, accel=4, dual_homed=True,
                            tiers=[{"switch": sw(8)}, {"switch": sw(8)}, {"switch": sw(16)}]))
    d["node_types"][0]["nic_ports"] = 2
    _budget_matches_rebuilt(d)


@pytest.mark.parametrize("leaf,spine", [(800, 400), (400, 800)])
def test_breakout_between_leaf_and_spine(leaf, spine):
    """An 800G port facing 400G ports is 2 x 400G links: uplinks are counted in links (on main
    the budget counted ports, so spines, leaves per spine and capacity came out wrong)."""
    d = _ideal(cluster_dict(n_racks=4, nodes_per_rack=2, accel=8,
                            tiers=[{"switch": sw(16, gbps=leaf)}, {"switch": sw(16, gbps=spine)}]))
    r, f, g = _budget_matches_rebuilt(d)
    up = (np.arange(g.n_links) & 1) == 0
    assert set(g.link_gbps[up & (g.link_tier == 1)].tolist()) == {400.0}


def test_breakout_between_spine_and_super_spine():
    d = _ideal(cluster_dict(n_racks=8, nodes_per_rack=2, accel=8,
                            tiers=[{"switch": sw(8)}, {"switch": sw(8, gbps=800)}, {"switch": sw(8)}]))
    _budget_matches_rebuilt(d)


def test_nic_on_faster_leaf_ports():
    d = _ideal(cluster_dict(n_racks=4, nodes_per_rack=2, accel=8,
                            tiers=[{"switch": sw(16, gbps=800)}, {"switch": sw(16, gbps=800)}]))
    r, f, g = _budget_matches_rebuilt(d)
    assert r.tiers[0]["breakout"] == 2


def test_planes_with_different_leaf_counts():
    """Two planes, single-port CPU hosts only on plane 0: the planes differ in leaf count."""
    cpu = dict(CPU, nic_ports=1)
    d = _ideal(cluster_dict(n_racks=4, nodes_per_rack=2, accel=4, planes=2,
                            tiers=[{"switch": sw(8)}, {"switch": sw(16)}]), cpu=cpu, cpu_per_rack=2)
    d["node_types"][0]["nic_ports"] = 2
    f = build(from_dict(d))
    assert len(set(f.meta["leaves_per_plane"])) == 2
    _budget_matches_rebuilt(d)


def test_three_tier_planes_with_different_pod_counts():
    """Single-port hosts in a rack of their own after the GPU racks: plane 0 has a pod more."""
    d = _ideal(cluster_dict(n_racks=6, nodes_per_rack=2, accel=4, planes=2,
                            tiers=[{"switch": sw(8)}, {"switch": sw(8)}, {"switch": sw(16)}]))
    d["node_types"][0]["nic_ports"] = 2
    d["node_types"].append(dict(CPU, nic_ports=1))
    d["racks"].append({"name": "cpu-rack", "count": 1, "nodes": {"cpu": 4}, "power_limit_kw": 100})
    f = build(from_dict(d))
    assert len(set(f.meta["leaves_per_plane"])) == 2
    _budget_matches_rebuilt(d)


@pytest.mark.parametrize("stated", [{"leaves_per_pod": 3}, {"pods": 3}, {"spines_per_pod": 2},
                                    {"super_spines": 4}, {"leaves_per_pod": 4, "spines_per_pod": 4}])
def test_stated_pod_structure_is_kept(stated):
    """leaves_per_pod, pods, spines_per_pod and super_spines are the file's, not re-derived
    (on main the budget derived the pod size from the spine's split and wrote a fabric with
    other pods, or one the builder refuses)."""
    d = _ideal(cluster_dict(n_racks=8, nodes_per_rack=2, accel=4,
                            tiers=[{"switch": sw(8)}, {"switch": sw(16)}, {"switch": sw(16)}], **stated))
    c = from_dict(d)
    build(c)  # the file as given builds
    r, f, g = _budget_matches_rebuilt(d)
    if "leaves_per_pod" in stated:
        assert g.meta["leaves_per_pod"] == stated["leaves_per_pod"]
    if "pods" in stated:
        assert g.pods == stated["pods"]
    if "spines_per_pod" in stated:
        assert g.meta["spines_per_pod"] == stated["spines_per_pod"]
    if "super_spines" in stated:
        assert g.tier_switch_counts[2] == stated["super_spines"]


def test_two_tier_stated_spines():
    d = _ideal(cluster_dict(n_racks=4, nodes_per_rack=2, accel=8, spines_per_pod=4,
                            tiers=[{"switch": sw(16)}, {"switch": sw(16)}]))
    r, f, g = _budget_matches_rebuilt(d)
    assert g.tier_switch_counts[1] == 4


def test_under_subscribed_leaf_as_given():
    d = _ideal(cluster_dict(n_racks=4, nodes_per_rack=2, accel=4,
                            tiers=[{"switch": sw(24), "oversubscription": 0.5}, {"switch": sw(24)}]))
    r, f, g = _budget_matches_rebuilt(d)
    assert r.tiers[0]["oversubscription_as_given"] == pytest.approx(0.5)


# --- refused before solving, with the field and the reason -----------------------------------------
@pytest.mark.parametrize("d,path", [
    (cluster_dict(n_racks=2, nodes_per_rack=1, accel=8, family="rail_only",
                  tiers=[{"switch": sw(16)}]), "fabric.tiers"),
    (cluster_dict(n_racks=1, nodes_per_rack=1, accel=8, tiers=[{"switch": sw(16)}]), "fabric.tiers"),
])
def test_refused_with_the_field(d, path, tmp_path):
    import json
    from topo.cli.app import main
    d = _ideal(d)
    c = from_dict(d)
    with pytest.raises(SpecError) as e:
        B.budget(c)
    assert path in str(e.value)
    p = tmp_path / "c.json"
    p.write_text(json.dumps(d))
    res = CliRunner().invoke(main, ["budget", str(p)])
    assert res.exit_code == 2 and path in res.output


def test_grouping_the_model_cannot_reproduce_is_refused_before_solving(monkeypatch):
    """The budget compares its leaf grouping with the built fabric port by port and refuses a
    mismatch (never a budget for another fabric)."""
    d = _ideal(cluster_dict(n_racks=4, nodes_per_rack=2, accel=4, family="rail_optimized",
                            tiers=[{"switch": sw(16)}, {"switch": sw(16)}]), cpu=dict(CPU))
    c = from_dict(d)
    f = build(c)
    orig = B._Data.__init__

    def wrong(self, *a, **k):
        orig(self, *a, **k)
        self.sub = np.zeros_like(self.sub)  # every port on one rail, as main's model had it
        self.seq = B._rank_within(self.port_plane, self.planes)
        self._leaf_cache.clear()
    monkeypatch.setattr(B._Data, "__init__", wrong)
    called = []
    monkeypatch.setattr(B, "solve_cp", lambda *a, **k: called.append(1))
    with pytest.raises(SpecError, match="groups the endpoint ports into leaves"):
        B.budget(c, f, demands=_uniform(c, f))
    assert not called
