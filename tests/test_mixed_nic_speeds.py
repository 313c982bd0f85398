"""Mixed NIC generations on the same leaves: each host link at its own speed, routing capped by it,
the all-to-all figure per node type, speeds the leaf ports cannot serve refused with the JSON path."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from topo.routing import engine as routing
from topo.cli.app import main
from topo.routing.describe import describe
from topo.core.errors import SpecError
from topo.model.fabric import build
from topo.model.spec import from_dict
from conftest import no_crash


def mixed(speeds=(400, 800), leaf_gbps=800, racks=4, jobs=True):
    """`racks` racks, each one 8-GPU node per NIC speed, under leaves of `leaf_gbps` ports (radix 64, 1:1)."""
    types = [{"name": f"g{g}", "accelerator": "H100", "accelerators": 8, "nics": 8, "nic_gbps": g,
              "power_busy_kw": 10.0, "power_idle_kw": 2.0, "scaleup": {"size": 8}} for g in speeds]
    d = {"version": 1, "name": "mixed",
         "node_types": types,
         "racks": [{"name": "r", "count": racks, "nodes": {t["name"]: 1 for t in types}, "power_limit_kw": 100}],
         "fabric": {"family": "clos", "tiers": [
             {"switch": {"radix": 64, "port_gbps": leaf_gbps, "power_w": 1000, "cost_usd": 10000}, "oversubscription": 1},
             {"switch": {"radix": 64, "port_gbps": leaf_gbps, "power_w": 1000, "cost_usd": 10000}}]},
         "transport": {"protocol": "roce", "channels": 2, "qps_per_channel": 2}}
    if jobs:
        n = 8 * len(speeds) * racks
        d["jobs"] = [{"name": "a2a", "accelerators": n, "tp": 8, "ep": n // 8,
                      "collectives": [{"op": "alltoall", "group": "ep", "bytes": "1GiB"}]}]
    return d


def host_links(f):
    up = (f.link_tier == 0) & (f.link_src < f.n_endpoints)
    ids = np.flatnonzero(up)
    ep = f.link_src[ids]
    return ids, ep, f.server_type[f.ep_server[ep]]


@pytest.mark.parametrize("speeds, leaf", [((400, 800), 800), ((400, 800, 1600), 1600), ((200, 400), 400)])
def test_each_host_link_at_its_own_speed_under_shared_leaves(speeds, leaf):
    c = from_dict(mixed(speeds, leaf))
    f = build(c)
    ids, ep, typ = host_links(f)
    for t, g in enumerate(speeds):
        assert set(f.link_gbps[ids[typ == t]].tolist()) == {float(g)}
        assert (typ == t).sum() == 8 * 4                                      # 4 racks x 8 NIC ports
        np.testing.assert_array_equal(f.injection_gbps()[np.flatnonzero(f.server_type[f.ep_server] == t)], float(g))
    # the node types share leaves: some leaf has host links of every speed
    leaf_of = f.link_dst[ids]
    speeds_per_leaf = {int(l): set(f.link_gbps[ids[leaf_of == l]].tolist()) for l in np.unique(leaf_of)}
    assert any(s == {float(g) for g in speeds} for s in speeds_per_leaf.values())
    # every NIC port takes a leaf port (breakout set by the fastest NIC port: one per port here),
    # so 32 down ports hold 32 NIC ports per leaf
    assert np.bincount(leaf_of).max() == 32
    assert f.n_switches == -(-len(speeds) * 32 // 32) + f.tier_switch_counts[1]
    # describe states the rule for the slower node types and the capacity counted from the links
    d = describe(f, c)
    derived = {x["what"]: x for x in d["structure"]["derived"]}
    for g in speeds[:-1]:
        assert f"leaf ports of node type g{g}" in derived
    down = np.bincount(leaf_of, weights=f.link_gbps[ids], minlength=f.n_nodes)
    upc = np.bincount(f.link_src[(f.link_tier == 1) & (f.link_src >= f.n_endpoints)],
                      weights=f.link_gbps[(f.link_tier == 1) & (f.link_src >= f.n_endpoints)], minlength=f.n_nodes)
    leaves = np.unique(leaf_of)
    r = down[leaves] / upc[leaves]
    assert derived["leaf down / up capacity"]["value"] == f"{r.min():.4g} to {r.max():.4g}"


def test_routing_caps_every_flow_by_its_nic_speed():
    c = from_dict(mixed())
    f = build(c)
    ids, ep, typ = host_links(f)
    eff = 1.0
    # uniform all-to-all at line rate: the 400G hosts' NIC links are full, the 800G hosts' half full
    a = routing.analyze(c, f, routing="fluid", traffic="uniform", compare=False).to_dict()
    u = routing.analyze(c, f, routing="fluid", traffic="uniform", compare=False)
    util = np.asarray(u.utilization)
    assert util[ids[typ == 0]].max() == pytest.approx(1.0) and util[ids[typ == 1]].max() == pytest.approx(0.5)
    # the all-to-all figure per node type: a 400G host 400G, an 800G host 800G
    nt = a["all_to_all"]["node_types"]
    assert nt["g400"]["gbps_per_endpoint"] == pytest.approx(400.0)
    assert nt["g800"]["gbps_per_endpoint"] == pytest.approx(800.0)
    assert a["all_to_all"]["accelerators"]["gbps_per_endpoint"] == pytest.approx(400.0)
    # hashing: max-min fair rates of the queue pairs leaving a 400G host sum to at most 400G
    from topo.traffic.demand import job_demands
    d = job_demands(c, f, efficiency=eff)
    r = routing.route(f, d, "roce-hash", seed=3, channels=2, qps=2, record_paths=True)
    cap = f.link_gbps.astype(float)
    qb = d.bytes[r.qp_flow] / 4
    rate = routing.waterfill(r.qp_path, cap, qb)
    src = d.src[r.qp_flow]
    sent = np.bincount(src, weights=rate, minlength=f.n_endpoints)
    inj = f.injection_gbps()
    assert (sent <= inj * (1 + 1e-9)).all()
    assert sent[inj == 400].max() == pytest.approx(400.0, rel=1e-6)   # a 400G host sends at most, and here at, 400G
    # the job's ideal time is set by the 400G hosts' NIC links
    scale_out = f.ep_domain[d.src] != f.ep_domain[d.dst]
    busy = np.bincount(d.src[scale_out], weights=d.bytes[scale_out], minlength=f.n_endpoints)
    assert d.job_time_s[0] == pytest.approx(float((busy / (inj * 1e9 / 8)).max()))


def test_describe_and_analyze_print_the_figure_per_node_type(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(mixed()))
    text = CliRunner().invoke(main, ["describe", str(p)], catch_exceptions=False).output
    assert "per node type: g400 400.0 Gb/s (32, 400G NIC ports, limited by its NIC links); g800 800.0 Gb/s" in text
    assert "derived: leaf ports of node type g400 = 32 x 400G" in text
    js = json.loads(CliRunner().invoke(main, ["describe", str(p), "--json"], catch_exceptions=False).output)
    assert js["all_to_all"]["node_types"]["g800"]["nic_port_gbps"] == [800.0]
    text = CliRunner().invoke(main, ["analyze", str(p), "--routing", "fluid"], catch_exceptions=False).output
    assert "per node type: g400 400.0 Gb/s (32, limited by its NIC links); g800 800.0 Gb/s" in text


def test_one_node_type_per_class_prints_no_breakdown():
    from conftest import cluster_dict
    f = build(from_dict(cluster_dict()))
    assert "node_types" not in routing._all_to_all_by_class(f, None)[0]


def test_the_link_budget_models_mixed_speeds_and_its_check_passes(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(mixed()))
    r = CliRunner().invoke(main, ["budget", str(p), "--time-limit", "5"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "independent check (fluid routing of the rebuilt fabric): passed" in r.output


@pytest.mark.parametrize("speeds, leaf, bad, words", [
    ((600, 800), 800, 0, "800G / 600G = 1.33 is not a whole number of NIC ports per leaf port"),
    ((300, 800), 800, 0, "800G / 300G = 2.67"),
    ((400, 1600), 800, 1, "is faster than the 800G port of the leaf switch"),
])
def test_speeds_the_leaf_ports_cannot_serve_are_refused(speeds, leaf, bad, words, tmp_path):
    d = mixed(speeds, leaf, jobs=False)
    with pytest.raises(SpecError) as e:
        build(from_dict(d))
    errs = dict(e.value.errors)
    assert words in errs[f"node_types[{bad}].nic_gbps"]
    p = tmp_path / "m.json"
    p.write_text(json.dumps(d))
    r = CliRunner().invoke(main, ["validate", str(p)])
    assert r.exit_code == 2 and f"node_types[{bad}].nic_gbps" in r.output and no_crash(r)
