"""The budget-fidelity check shared by the budget and fabric-plane tests: run the link budget on a
uniform all-to-all and confirm the rebuilt fabric (counted from its arrays) is the one the budget's
model claimed, with its modelled loads equal to the routed loads."""
from __future__ import annotations

import numpy as np
import pytest

from topo.model.fabric import build
from topo.model.spec import from_dict
from topo.solve import linkbudget as B

def _ideal(d, cpu=None, cpu_per_rack=1, **goals):
    d["transport"] = {"protocol": "ideal"}
    d["goals"] = {"time_limit_s": 20, **goals}
    if cpu is not None:
        d["node_types"].append(cpu)
        d["racks"][0]["nodes"]["cpu"] = cpu_per_rack
    return d


def _uniform(c, fab, gbps=2.0):
    """Every endpoint to every other at `gbps` (so every tier carries traffic)."""
    from topo.traffic.demand import Demands
    n = fab.n_endpoints
    s, t = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    m = s != t
    s, t = s[m].astype(np.int64), t[m].astype(np.int64)
    rate = np.full(s.size, gbps)
    return Demands(s, t, rate * 1e9 / 8, np.full(s.size, -1, np.int32), rate)


def _counted(fab):
    """Switches per tier, uplink links per leaf and per spine, counted from the arrays."""
    up = (np.arange(fab.n_links) & 1) == 0
    tiers = [int((fab.node_tier == t).sum()) for t in range(1, fab.n_tiers + 1)]
    out = np.bincount(fab.link_src[up & (fab.link_tier >= 1)], minlength=fab.n_nodes)
    leaf_up = set(out[fab.node_tier == 1].tolist())
    spine_up = set(out[fab.node_tier == 2].tolist()) if fab.n_tiers == 3 else None
    # every leaf has endpoint ports: no empty leaves built or priced
    dn = np.bincount(fab.link_dst[up & (fab.link_tier == 0)], minlength=fab.n_nodes)
    assert (dn[fab.node_tier == 1] > 0).all()
    return tiers, leaf_up, spine_up


def _budget_matches_rebuilt(d, **kw):
    """Run the budget; the rebuilt fabric's counts (from the arrays) equal the model's own."""
    c = from_dict(d)
    f = build(c)
    r = B.budget(c, f, demands=_uniform(c, f), survive=kw.pop("survive", "none"), **kw)
    assert r.check["ok"], r.check
    claimed = r.alternatives[r.objective]
    dec = claimed["decisions"]
    after = from_dict(r.cluster_after)
    g = build(after)
    tiers, leaf_up, spine_up = _counted(g)
    assert tiers == claimed["switch_counts"]
    assert [t["switches"] for t in r.tiers] == tiers
    assert leaf_up == {dec.get("leaf_uplinks", dec["u0"])}
    if g.n_tiers == 3:
        assert spine_up == {dec.get("spine_uplinks", dec["u1"])} or "partial_pod_bundle" in dec
        assert g.meta["leaves_per_pod"] == dec["leaves_per_pod"]
    # the model's loads are the routed loads of the rebuilt fabric (fluid ECMP, healthy)
    for k, u in r.utilization.items():
        assert u["routed_after"] == pytest.approx(u["model_after"], rel=1e-6, abs=1e-9), k
    # what the file states is kept
    for k in ("planes", "dual_homed", "leaves_per_pod", "pods", "spines_per_pod", "super_spines"):
        assert getattr(after.file.fabric, k) == getattr(c.file.fabric, k), k
    assert [nt.rails for nt in after.file.node_types] == [nt.rails for nt in c.file.node_types]
    return r, f, g


def without_timings(x):
    """A budget result's dict without its timing entries (keys naming seconds), to compare two runs."""
    if isinstance(x, dict):
        return {k: without_timings(v) for k, v in x.items() if "seconds" not in k}
    if isinstance(x, list):
        return [without_timings(v) for v in x]
    return x
