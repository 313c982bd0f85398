"""Channels per collective x queue pairs per channel: the spec, the hashing model, the limits, the output."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import EXAMPLES, cluster_dict, no_crash
from topo.core import limits
from topo.routing import engine as routing
from topo.cli.app import main
from topo.core.errors import SpecError
from topo.model.fabric import build
from topo.model.spec import from_dict, parse_text
from topo.traffic.demand import Demands, permutation
from helpers.fabrics import clos, fat_tree


def _errors(d) -> dict:
    with pytest.raises(SpecError) as e:
        from_dict(d)
    return dict(e.value.errors)


def _small(**transport):
    d = parse_text((EXAMPLES / "small.yaml").read_text(), ".yaml")
    d["transport"] = {"protocol": "roce", "mtu_bytes": 4096, **transport}
    return from_dict(d, base_dir=str(EXAMPLES))


# --- the cluster file ------------------------------------------------------------------------
def test_channels_and_qps_per_channel_and_the_shorthand():
    t = _small(channels=2, qps_per_channel=3).file.transport
    assert (t.n_channels, t.qps) == (2, 3)
    t = _small(qps_per_connection=4).file.transport          # the one-channel shorthand
    assert (t.n_channels, t.qps) == (1, 4)
    t = _small().file.transport
    assert (t.n_channels, t.qps) == (1, 1)
    t = _small(channels=4).file.transport
    assert (t.n_channels, t.qps) == (4, 1)


@pytest.mark.parametrize("tr, path, words", [
    ({"qps_per_connection": 4, "channels": 2}, "transport.qps_per_connection", "stated together with transport.channels"),
    ({"qps_per_connection": 4, "qps_per_channel": 4}, "transport.qps_per_connection", "transport.qps_per_channel (4)"),
    ({"channels": 64, "qps_per_channel": 32}, "transport.qps_per_channel", "2,048 hashed flows per connection"),
    ({"channels": limits.MAX_CHANNELS + 1}, "transport.channels", "less than or equal"),
    ({"channels": 0}, "transport.channels", "greater than or equal"),
])
def test_ambiguous_or_oversized_transport_is_refused_with_its_path(tr, path, words, tmp_path):
    d = cluster_dict()
    d["transport"] = {"protocol": "roce", **tr}
    errs = _errors(d)
    assert words in errs[path]
    p = tmp_path / "c.json"
    p.write_text(json.dumps(d))
    r = CliRunner().invoke(main, ["validate", str(p)])
    assert r.exit_code == 2 and path in r.output and no_crash(r)


def test_schema_has_the_two_knobs():
    r = CliRunner().invoke(main, ["schema"])
    props = json.loads(r.output)["$defs"]["Transport"]["properties"]
    assert {"channels", "qps_per_channel", "qps_per_connection"} <= set(props)


# --- the hashing model ------------------------------------------------------------------------
def test_channels_and_qps_give_the_same_hashed_flows():
    f = fat_tree(4)
    d = permutation(f, 1e9, None, seed=3)
    a = routing.route(f, d, "roce-hash", seed=5, channels=2, qps=1, record_paths=True)
    b = routing.route(f, d, "roce-hash", seed=5, channels=1, qps=2, record_paths=True)
    routed = np.unique(a.qp_flow).size
    assert routed == d.n   # a permutation on a fat tree: every flow crosses the fabric
    assert a.qp_flow.size == b.qp_flow.size == 2 * d.n
    # the switch sees only source ports: (2 channels x 1 QP) and (1 channel x 2 QPs) hash alike
    np.testing.assert_array_equal(a.link_gbps_load, b.link_gbps_load)
    c = routing.route(f, d, "roce-hash", seed=5, channels=3, qps=2, record_paths=True)
    assert c.qp_flow.size == 6 * d.n
    np.testing.assert_allclose(c.qp_gbps.sum(), a.qp_gbps.sum())
    # one channel of q queue pairs is the former qps_per_connection = q exactly
    np.testing.assert_array_equal(routing.route(f, d, "roce-hash", seed=5, qps=2).link_gbps_load,
                                  b.link_gbps_load)


@pytest.mark.parametrize("model", ["fluid", "wcmp", "uec-spray"])
def test_more_entropy_never_changes_the_non_hashing_models(model):
    f = fat_tree(4)
    d = permutation(f, 1e9, None, seed=1)
    base = routing.route(f, d, model).link_gbps_load
    for ch, q in ((2, 1), (1, 8), (4, 4)):
        np.testing.assert_array_equal(routing.route(f, d, model, channels=ch, qps=q).link_gbps_load, base)


def test_more_entropy_never_changes_ideal_ecmp_in_analyze(small_cluster):
    ref = routing.analyze(small_cluster, routing="fluid", compare=False, all_to_all=False).to_dict()
    assert ref["channels"] is None and ref["qps_per_channel"] is None
    for ch, q in ((2, 1), (1, 2), (8, 16)):
        s = routing.analyze(small_cluster, routing="fluid", channels=ch, qps=q, compare=False,
                            all_to_all=False).to_dict()
        assert s["tiers"] == ref["tiers"] and s["jobs"] == ref["jobs"] and s["max_util"] == ref["max_util"]


def test_hand_computed_bytes_per_channel_and_queue_pair():
    # two leaves, three spines, one endpoint per leaf, 100G links. One flow of 6 GB from endpoint 0
    # to endpoint 1 opened as 2 channels x 3 queue pairs: six hashed flows of 6 GB / 6 = 1 GB each.
    f = clos(leaves=2, spines=3, per_leaf=1, gbps=100.0)
    B = 6e9
    d = Demands(np.array([0]), np.array([1]), np.array([B]), np.array([0], np.int32), np.array([100.0]),
                ("j",), (B * 8 / 100e9,))
    r = routing.route(f, d, "roce-hash", seed=9, channels=2, qps=3, record_paths=True)
    assert r.qp_flow.tolist() == [0] * 6
    np.testing.assert_allclose(r.qp_gbps, 100.0 / 6)
    up = f.endpoint_links()[0]
    assert r.link_bytes[up] == pytest.approx(B)                   # the NIC link carries all of it
    leaf0 = f.link_dst[up]
    spine_links = np.flatnonzero((f.link_src == leaf0) & (f.link_dst >= f.n_endpoints + 2))
    assert spine_links.size == 3
    hashed = np.array([(r.qp_path == l).any(axis=1).sum() for l in spine_links])
    assert hashed.sum() == 6
    np.testing.assert_allclose(r.link_bytes[spine_links], hashed * (B / 6))   # 1 GB per (channel, QP)
    # completion: the six share the 100G NIC links, 100/6 Gb/s each: 1 GB x 8 / (100/6 Gb/s) = 0.48 s
    _, times, _, _ = routing._run_model(f, d, "roce-hash", np.zeros(f.n_links, bool), 9, 3, 1.0, 2)
    assert times[0] == pytest.approx(0.48)


def test_hashed_flows_past_the_limit_are_refused_with_the_field(monkeypatch):
    f = fat_tree(4)
    d = permutation(f, 1e9, None, seed=1)
    monkeypatch.setattr(limits, "MAX_HASHED_QPS", 4 * d.n)
    routing.route(f, d, "roce-hash", channels=2, qps=2)          # at the limit: routed
    with pytest.raises(SpecError) as e:
        routing.route(f, d, "roce-hash", channels=2, qps=3)
    (path, msg), = e.value.errors
    assert path == "transport.qps_per_channel" and f"{d.n:,} flows x 2 channels x 3 queue pairs" in msg
    routing.route(f, d, "uec-spray", channels=2, qps=3)           # spraying does not hash: no limit


# --- what is printed --------------------------------------------------------------------------
def test_analyze_prints_channels_and_qps_for_hashing_only(tmp_path):
    d = parse_text((EXAMPLES / "small.yaml").read_text(), ".yaml")
    d["transport"] = {"protocol": "roce", "channels": 2, "qps_per_channel": 3}
    p = tmp_path / "c.json"
    p.write_text(json.dumps(d).replace('"examples/', '"'))
    run = lambda *a: CliRunner().invoke(main, ["analyze", str(p), *a], catch_exceptions=False)
    text = run().output
    assert "routing roce-hash (2 channels x 3 QPs per channel, seed 7)" in text
    assert "RoCE hashing (2 channels x 3 QPs per channel) vs UEC spraying" in text
    fluid = run("--routing", "fluid").output
    assert "routing fluid (seed 7)" in fluid.splitlines()[0]
    assert "QP" not in fluid.split("RoCE hashing")[0] and "channel" not in fluid.split("RoCE hashing")[0]
    js = json.loads(run("--routing", "fluid", "--json").output)
    assert js["channels"] is None and js["qps_per_channel"] is None and "qps" not in js
    assert js["roce_vs_uec"]["roce-hash"]["channels"] == 2 and "channels" not in js["roce_vs_uec"]["uec-spray"]
    js = json.loads(run("--json", "--qps", "5").output)        # --qps: queue pairs per channel
    assert (js["channels"], js["qps_per_channel"]) == (2, 5)
    js = json.loads(run("--json", "--channels", "1", "--qps", "6").output)
    assert (js["channels"], js["qps_per_channel"]) == (1, 6)
    r = CliRunner().invoke(main, ["analyze", str(p), "--channels", "64", "--qps", "17"])
    assert r.exit_code == 2 and no_crash(r) and "--qps" in r.output and "1,088 hashed flows per connection" in r.output


def test_failures_route_every_channel_and_queue_pair():
    from topo.study.failures import analyze_failures
    c = _small(channels=2, qps_per_channel=2)
    f = build(c)
    tr = analyze_failures(c, f, single=False, traffic=True).traffic
    assert (tr["channels"], tr["qps_per_channel"]) == (2, 2) and "qps" not in tr
    # the healthy completion under hashing is analyze's with the same channels and queue pairs
    a = routing.analyze(c, f, routing="roce-hash", seed=tr["seed"], compare=False, all_to_all=False).to_dict()
    one = routing.analyze(c, f, routing="roce-hash", seed=tr["seed"], channels=1, qps=1, compare=False,
                          all_to_all=False).to_dict()
    got = tr["healthy_completion_s"]["roce-hash"]
    want = {j["name"]: j["time_s"] for j in a["jobs"]}
    assert got == {n: pytest.approx(v, rel=1e-12) for n, v in want.items()}
    assert [j["time_s"] for j in a["jobs"]] != [j["time_s"] for j in one["jobs"]]
