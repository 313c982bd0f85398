"""Collective time (topo.routing.collectives): closed forms of the alpha-beta model, the tuner,
channels in the alpha term, the spec fields and the CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import cluster_dict, no_crash
from topo.cli.app import main
from topo.core.errors import SpecError
from topo.model import catalog
from topo.model.fabric import build
from topo.model.spec import from_dict
from topo.routing import collectives as C

GIB = 2.0 ** 30


def _cluster(collectives, latency_ns=None, protocol="ideal", job=None, **transport):
    d = cluster_dict(n_racks=4, nodes_per_rack=2)
    sw = {"radix": 64, "port_gbps": 400, "power_w": 1000, "cost_usd": 1}
    if latency_ns is not None:
        sw["latency_ns"] = latency_ns
    d["catalog"] = {"switches": {"s": sw}}
    d["fabric"]["tiers"] = [{"switch": "s", "oversubscription": 1}, {"switch": "s"}]
    d["transport"] = {"protocol": protocol, **transport}
    d["jobs"] = [{"name": "j", "accelerators": 64, "tp": 8, "collectives": collectives, **(job or {})}]
    return from_dict(d)


def _one(c, routing="fluid", **kw):
    r = C.collective_times(c, routing=routing, **kw)
    return r, r["jobs"][0]["collectives"][0]


def test_ring_bus_bandwidth_is_the_link_rate_at_large_sizes_and_alpha_at_tiny_ones():
    c = _cluster([{"op": "allreduce", "group": "dp", "bytes": "16GiB", "pinned_algorithm": "ring"}])
    r, e = _one(c, sizes=[1.0, 16 * GIB])
    p = e["ranks"]
    assert p == 8
    big, tiny = e["sweep"][1], e["sweep"][0]
    # bottleneck-free ring, no headers: bus bandwidth -> 400 Gb/s
    assert big["busbw_gbps"] == pytest.approx(400.0, rel=1e-4)
    # beta alone is exactly 2(p-1)/p S / B
    assert big["beta_s"] == pytest.approx(2 * (p - 1) / p * 16 * GIB * 8 / 400e9, rel=1e-12)
    # a 1-byte ring is 2(p-1) alphas, each the step overhead plus the slowest path's cable delay
    step = tiny["alpha_s"] / (2 * (p - 1))
    assert tiny["time_s"] == pytest.approx(2 * (p - 1) * step, rel=1e-6)
    assert step >= r["step_overhead_s"] == pytest.approx(catalog.STEP_OVERHEAD_US * 1e-6)
    f = build(c)
    longest = 4 * float(f.link_length_m.max()) * catalog.PROPAGATION_NS_PER_M * 1e-9  # at most 4 links leaf-spine-leaf
    assert step - r["step_overhead_s"] <= longest + 1e-15
    assert r["switch_latency_unknown"] == ["s"]


def test_path_latency_is_the_sum_of_its_hops_and_lengths():
    c = _cluster([{"op": "allreduce", "group": "dp", "bytes": "1MiB"}], latency_ns=450.0)
    f = build(c)
    lat, unknown = C._switch_latency_ns(c, f)
    assert unknown == []
    # endpoint 0 -> its leaf -> a spine -> another leaf -> an endpoint there, link by link
    up = int(np.flatnonzero(f.link_src == 0)[0])
    leaf = int(f.link_dst[up])
    l2 = int(np.flatnonzero((f.link_src == leaf) & (f.node_tier[f.link_dst] == 2))[0])
    spine = int(f.link_dst[l2])
    l3 = int(np.flatnonzero((f.link_src == spine) & (f.link_dst != leaf))[0])
    leaf2 = int(f.link_dst[l3])
    l4 = int(np.flatnonzero((f.link_src == leaf2) & (f.link_dst < f.n_endpoints))[0])
    path = np.array([[up, l2, l3, l4, -1]])
    want = (3 * 450.0 + sum(float(f.link_length_m[x]) for x in (up, l2, l3, l4)) * 5.0) * 1e-9
    assert C.path_latency_s(f, path, lat)[0] == pytest.approx(want, rel=1e-12)
    # and the model's alpha counts the switches: three hops of 450 ns at least across leaves
    r, e = _one(c)
    ring = next(x for x in e["candidates"] if x["algorithm"] == "ring")  # its ring wraps across leaves
    assert ring["alpha_s"] / ring["steps"] >= r["step_overhead_s"] + 3 * 450e-9 - 1e-15


def test_tree_and_ring_cross_over_where_the_formulas_say():
    c = _cluster([{"op": "allreduce", "group": "dp", "bytes": "1MiB"}], latency_ns=500.0)
    _, e = _one(c)
    cand = {x["algorithm"]: x for x in e["candidates"]}
    p, S, B = 8, float(2 ** 20), 400e9 / 8
    # ring: 2(p-1) steps, 2(p-1)/p S / B; binary tree: log2 p steps up and down, parents take 2 children at once
    assert cand["ring"]["steps"] == 2 * (p - 1) and cand["tree"]["steps"] == 2 * 3
    assert cand["ring"]["beta_s"] == pytest.approx(2 * (p - 1) / p * S / B, rel=1e-9)
    assert cand["tree"]["beta_s"] == pytest.approx(4 * S / B, rel=1e-9)
    a_r, a_t = cand["ring"]["alpha_s"], cand["tree"]["alpha_s"]
    cross = (a_r - a_t) / ((4 - 2 * (p - 1) / p) / B)
    f = build(c)
    G = np.arange(64).reshape(8, 8).T   # the dp groups of the in-order placement (tp fastest)
    pats = C._Patterns(c, f, "fluid", 0, 1, 1, 1.0, None)
    ring, tree = C._Schedule("allreduce", "ring", G, pats, 0), C._Schedule("allreduce", "tree", G, pats, 0)
    assert ring.time(cross * 0.99)[0] > tree.time(cross * 0.99)[0]
    assert ring.time(cross * 1.01)[0] < tree.time(cross * 1.01)[0]


def test_tuner_picks_latency_algorithms_small_and_bandwidth_algorithms_large():
    c = _cluster([{"op": "allreduce", "group": "dp", "bytes": "1KiB"}])
    _, e = _one(c, sizes=[1024.0, 4 * GIB])
    assert e["chosen_by"] == "tuner"
    assert e["sweep"][0]["algorithm"] == "recursive_doubling"   # log2 p = 3 steps of alpha
    assert e["sweep"][1]["algorithm"] in ("ring", "halving_doubling")   # both 2(p-1)/p S; fewer steps wins
    assert e["sweep"][1]["algorithm"] == "halving_doubling"
    # the chosen time is the cheapest candidate's
    assert e["time_s"] == min(x["time_s"] for x in e["candidates"] if x["time_s"] is not None)


def test_in_network_reduction_moves_s_per_rank():
    c = _cluster([{"op": "allreduce", "group": "dp", "bytes": "4GiB", "pinned_algorithm": "in_network"}])
    _, e = _one(c)
    S, B, n = 4 * GIB, 400e9 / 8, 8
    assert e["algorithm"] == "in_network" and e["chosen_by"] == "pinned"
    assert e["beta_s"] == pytest.approx(S / B, rel=1e-12)
    # against the ring's 2(n-1)/n S / B: the nccl-tests bus bandwidth is 2(n-1)/n x the NIC rate
    assert e["busbw_gbps"] == pytest.approx(2 * (n - 1) / n * 400.0, rel=1e-3)


def test_recursive_algorithms_need_a_power_of_two():
    c = from_dict({**cluster_dict(n_racks=3, nodes_per_rack=2), "transport": {"protocol": "ideal"},
                   "jobs": [{"name": "j", "accelerators": 48, "tp": 8,
                             "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1MiB"}]}]})
    _, e = _one(c)
    cand = {x["algorithm"]: x for x in e["candidates"]}
    assert e["ranks"] == 6
    assert cand["recursive_doubling"]["time_s"] is None and "power-of-two" in cand["recursive_doubling"]["why_not"]


def test_channels_and_queue_pairs_enter_the_alpha_term():
    col = [{"op": "allreduce", "group": "dp", "bytes": "1KiB", "pinned_algorithm": "ring"}]
    one = _one(_cluster(col, protocol="roce", channels=1, qps_per_channel=1), routing="roce-hash")[1]
    many = _one(_cluster(col, protocol="roce", channels=4, qps_per_channel=4), routing="roce-hash")[1]
    # the slowest of 16 hashed paths is never shorter than the one path of a single queue pair
    assert many["alpha_s"] >= one["alpha_s"] - 1e-18


def test_iteration_time_with_overlap_matches_a_hand_computation():
    col = [{"op": "allreduce", "group": "dp", "bytes": "1GiB", "count": 3, "pinned_algorithm": "ring"}]
    c = _cluster(col, job={"compute_s": 0.05, "overlap": 0.5})
    r = C.collective_times(c, routing="fluid")
    j = r["jobs"][0]
    t = j["collectives"][0]["time_s"]
    comm = 3 * t
    assert j["comm_s"] == pytest.approx(comm)
    it = 0.05 + comm - min(0.5 * comm, 0.05)
    assert j["iteration_s"] == pytest.approx(it)
    assert j["network_share"] == pytest.approx((it - 0.05) / it)


def test_spec_refuses_what_the_model_cannot_honour():
    base = cluster_dict()
    bad = {**base, "jobs": [{"name": "j", "accelerators": 8, "overlap": 0.3,
                             "collectives": [{"op": "alltoall", "group": "tp", "bytes": 1, "pinned_algorithm": "ring"}]}]}
    with pytest.raises(SpecError) as e:
        from_dict(bad)
    errs = dict(e.value.errors)
    assert "jobs[0].overlap" in errs
    assert "jobs[0].collectives[0].pinned_algorithm" in errs
    clash = {**base, "jobs": [{"name": "j", "accelerators": 8, "tp": 8, "collectives": [
        {"op": "allreduce", "group": "tp", "bytes": 1, "algorithm": "tree", "pinned_algorithm": "ring"}]}]}
    with pytest.raises(SpecError) as e:
        from_dict(clash)
    assert "jobs[0].collectives[0].pinned_algorithm" in dict(e.value.errors)


def test_size_range():
    assert C.size_range("1KiB..8KiB") == [1024.0, 2048.0, 4096.0, 8192.0]
    assert C.size_range("1MiB,64MiB") == [2.0 ** 20, 2.0 ** 26]
    with pytest.raises(SpecError):
        C.size_range("8KiB..1KiB")
    with pytest.raises(SpecError):
        C.size_range("lots")


def test_cli_sizes_and_explain(tmp_path):
    import yaml
    d = cluster_dict(n_racks=2, nodes_per_rack=2)
    d["transport"] = {"protocol": "roce", "qps_per_connection": 2}
    d["jobs"] = [{"name": "j", "accelerators": 32, "tp": 8,
                  "collectives": [{"op": "allreduce", "group": "dp", "bytes": "64MiB"}]}]
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(d))
    r = CliRunner().invoke(main, ["analyze", str(p), "--explain", "--sizes", "1KiB..1MiB"])
    assert r.exit_code == 0, r.output
    assert "alpha" in r.output and "recursive_doubling" in r.output and "uec-spray: j allreduce" in r.output
    r = CliRunner().invoke(main, ["analyze", str(p), "--sizes", "1KiB..1MiB", "--json"])
    out = json.loads(r.output)
    e = out["collectives"]["jobs"][0]["collectives"][0]
    assert e["time_s"] == pytest.approx(e["alpha_s"] + e["beta_s"])
    assert set(out["size_sweep"]) == {"roce-hash", "uec-spray"}
    assert len(out["size_sweep"]["roce-hash"]["jobs"][0]["collectives"][0]["sweep"]) == 11
    r = CliRunner().invoke(main, ["analyze", str(p), "--sizes", "big"])
    assert r.exit_code == 2 and no_crash(r) and "--sizes" in r.output
    assert math.isfinite(e["busbw_gbps"])


# --- the sharing model of the load analysis's job times (topo.routing.engine.completion_times) ---
B = 1e9 / 8   # bytes that take 1 s at 1 Gb/s


def test_max_min_sharing_lets_the_small_flow_finish_in_its_own_time():
    from topo.routing.engine import SHARING, completion_times
    assert SHARING["roce-hash"] == "max-min"
    paths = np.array([[0], [0]])
    cap = np.array([100.0])
    t = completion_times(paths, cap, np.array([B, 9 * B]), 1.0, "max-min")
    # 50 Gb/s each until the small one ends at 1/50 s; the large one then runs alone at 100 Gb/s
    assert t[0] == pytest.approx(1 / 50)
    assert t[1] == pytest.approx(1 / 50 + 8 / 100)
    # byte-weighted: 10 and 90 Gb/s, both end at 0.1 s (the small flow waits for the large one)
    tb = completion_times(paths, cap, np.array([B, 9 * B]), 1.0, "bytes")
    assert tb == pytest.approx([0.1, 0.1])
    # with one round only the rest shares by remaining bytes: here that is everything, the byte-weighted answer
    t1 = completion_times(paths, cap, np.array([B, 9 * B]), 1.0, "max-min", rounds=1)
    assert t1 == pytest.approx([0.1, 0.1])


def test_out_of_refill_rounds_the_rest_drains_its_bottleneck_together():
    from topo.routing.engine import completion_times
    paths = np.array([[0], [0], [0]])
    cap = np.array([100.0])
    q = np.array([B, 2 * B, 9 * B])
    # max-min: 33.3 each until B ends at 0.03; 50 each until 2B ends at 0.05; 9B alone ends at 0.12
    assert completion_times(paths, cap, q, 1.0, "max-min", rounds=10) == pytest.approx([0.03, 0.05, 0.12])
    # two rounds: after the first completion the rest (1B and 8B left) end together when the link drains
    assert completion_times(paths, cap, q, 1.0, "max-min", rounds=2) == pytest.approx([0.03, 0.12, 0.12])


def test_max_min_sharing_with_two_bottlenecks_and_a_dead_path():
    from topo.routing.engine import completion_times
    # a on link 0 (100), b on links 0 and 1 (30), c on link 1; d has a failed link (capacity 0)
    paths = np.array([[0, -1], [0, 1], [1, -1], [2, -1]])
    cap = np.array([100.0, 30.0, 0.0])
    t = completion_times(paths, cap, np.full(4, B), 0.5, "max-min")
    # link 1 splits 15/15; a takes the 85 left on link 0; goodput is half the wire rate
    assert t[0] == pytest.approx(2 / 85)
    assert t[1] == pytest.approx(2 / 15) and t[2] == pytest.approx(2 / 15)
    assert t[3] == math.inf
    with pytest.raises(SpecError):
        completion_times(paths, cap, np.full(4, B), 1.0, "fair-ish")


def test_slowest_max_min_rate_equals_the_waterfill_minimum():
    from topo.routing.engine import waterfill
    rng = np.random.default_rng(5)
    for _ in range(20):
        L = int(rng.integers(3, 12))
        cap = rng.uniform(10, 400, L)
        n, H = int(rng.integers(1, 30)), int(rng.integers(1, 5))
        paths = np.array([np.concatenate([rng.choice(L, size=h, replace=False), np.full(H - h, -1)])
                          for h in rng.integers(1, H + 1, n)], np.int64)
        assert C.min_maxmin_rate(paths, cap) == pytest.approx(float(waterfill(paths, cap).min()), rel=1e-12)
