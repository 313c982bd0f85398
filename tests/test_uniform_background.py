"""A uniform background pattern routed aggregated (fluid-type models) equals routing its
n(n-1) flows one by one, scale-up domains included; hashing still expands it."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import cluster_dict
from topo.core.errors import SpecError
from topo.model.fabric import build
from topo.model.spec import from_dict, wire_efficiency
from topo.routing.engine import analyze, route, uniform_background
from topo.traffic import demand as T

MODELS = ("fluid", "wcmp", "uec-spray")


def _cluster(family="clos", protocol="ideal", traffic=True, **kw):
    d = cluster_dict(n_racks=4, nodes_per_rack=2, accel=4, family=family, **kw)
    d["transport"] = {"protocol": protocol}
    d["jobs"] = [{"name": "a", "accelerators": 8, "tp": 4,
                  "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1GiB"}]}]
    if traffic:
        d["traffic"] = [{"pattern": "uniform", "bytes": 5e8}]
    return from_dict(d, source="test")


@pytest.mark.parametrize("family", ["clos", "rail_optimized"])
@pytest.mark.parametrize("model", MODELS)
def test_aggregated_equals_per_flow(family, model):
    c = _cluster(family)
    f = build(c)
    assert f.n_domains > 1
    eff = 0.9
    d = T.uniform(f, 5e8, None, eff)
    g = T.uniform_pair_gbps(f, 5e8, eff)
    assert np.allclose(d.rate_gbps, g, rtol=1e-12)
    for fail in (None, np.flatnonzero(f.link_tier == 1)[:2]):
        a = route(f, d, model, efficiency=eff, failed_links=fail)
        b = uniform_background(f, g / eff, model, failed_links=fail)
        assert np.abs(a.link_gbps_load - b.link_gbps_load).max() <= 1e-9 * max(a.link_gbps_load.max(), 1.0)
        assert np.allclose(a.scaleup_sent_gbps, b.scaleup_sent_gbps, rtol=1e-12, atol=1e-12)
        assert np.allclose(a.scaleup_recv_gbps, b.scaleup_recv_gbps, rtol=1e-12, atol=1e-12)
        assert abs(a.offered_gbps - b.offered_gbps) <= 1e-9 * a.offered_gbps
        assert abs(a.unreachable_gbps - b.unreachable_gbps) <= 1e-9 * a.offered_gbps
        assert a.link_gbps_load[f.link_tier == 0].max() > 0   # not vacuous: the pattern reaches the fabric


@pytest.mark.parametrize("model", MODELS)
def test_analyze_with_uniform_background_equals_expanded(model, monkeypatch):
    """analyze() of jobs plus a uniform background: the aggregated path gives the loads and job
    times that expanding the pattern flow by flow gives."""
    c = _cluster()
    f = build(c)
    a = analyze(c, f, routing=model, compare=False, all_to_all=False)
    assert a.summary["aggregated_uniform_patterns"] == 1
    monkeypatch.setattr(T, "uniform_aggregable", lambda fabric, endpoints=None: False)
    b = analyze(c, f, routing=model, compare=False, all_to_all=False)
    assert "aggregated_uniform_patterns" not in b.summary
    assert np.abs(a.loads - b.loads).max() <= 1e-9 * b.loads.max()
    assert a.summary["flows"] == b.summary["flows"]
    assert a.summary["offered_gbps"] == pytest.approx(b.summary["offered_gbps"], rel=1e-9)
    for ja, jb in zip(a.summary["jobs"], b.summary["jobs"]):
        assert ja["time_s"] == pytest.approx(jb["time_s"], rel=1e-9)
    # the background slows the job down: the comparison is not vacuous
    quiet = analyze(_cluster(traffic=False), routing=model, compare=False, all_to_all=False)
    assert a.summary["jobs"][0]["time_s"] > quiet.summary["jobs"][0]["time_s"]


def test_hashed_models_expand_and_refuse_beyond_the_cap(monkeypatch):
    c = _cluster(protocol="roce")
    f = build(c)
    a = analyze(c, f, routing="roce-hash", compare=False, all_to_all=False)
    assert "aggregated_uniform_patterns" not in a.summary  # hashed flow by flow
    monkeypatch.setattr(T, "MAX_UNIFORM_FLOWS", 100)
    with pytest.raises(SpecError, match="roce-hash"):
        analyze(c, f, routing="roce-hash", compare=False, all_to_all=False)
    # the fluid model routes it aggregated whatever the cap; the comparison with hashing is skipped
    s = analyze(c, f, routing="fluid", compare=True, all_to_all=False).summary
    assert s["aggregated_uniform_patterns"] == 1 and s["roce_vs_uec"] is None


def test_subset_and_rail_only_are_expanded():
    c = _cluster()
    f = build(c)
    assert T.uniform_aggregable(f) and not T.uniform_aggregable(f, 8)
    assert T.aggregated_uniform_gbps(c, f, wire_efficiency(c))
    with pytest.raises(SpecError, match="rail-only"):
        uniform_background(build(_cluster("rail_only")), 1.0)


def test_budget_refuses_a_uniform_background_it_cannot_expand(monkeypatch):
    from topo.solve.linkbudget import budget
    c = _cluster()
    monkeypatch.setattr(T, "MAX_UNIFORM_FLOWS", 100)
    with pytest.raises(SpecError) as e:
        budget(c, time_limit=5, seed=1, workers=1)
    assert "traffic[0]" in str(e.value) and "requirements.scenarios" in str(e.value)

