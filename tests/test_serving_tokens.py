"""Network time per output token of a serving deployment: closed forms on a tiny fabric, the curve
against the request rate, the three routing models side by side, kernels against their twins."""
import copy
import json
import os

import pytest
from click.testing import CliRunner

from tests.conftest import no_crash
from helpers.serving_cases import TINY, _cluster, serve_json_compiled_and_pure


def _tp2():
    d = copy.deepcopy(TINY)
    d["serving"]["deployments"][0]["decode"]["tp"] = 2     # decode ranks n0001-g0, n0002-g0
    return d


def _link(f, name):
    return next(i for i in range(f.n_links) if f.link_name(i) == name)


def test_time_per_token_by_hand():
    """Decode tp=2 on two single-accelerator nodes under one leaf (ideal transport, no headers): per
    token 80 layers x 2 all-reduces of S = 8192 x 2 B. Of the tuner's algorithms, recursive doubling is
    the cheapest for 2 ranks (1 step of alpha + S, against 2 steps + S for ring and halving-doubling and
    2 steps + 2S for tree), S over the 400 Gb/s left by the deployment's own traffic on its link."""
    from topo.model.catalog import PROPAGATION_NS_PER_M, STEP_OVERHEAD_US
    from topo.model.fabric import build
    from topo.routing.serving import serving
    c = _cluster(_tp2())
    f = build(c)
    s = serving(c, f, rates=[10, 40, 100, 120])
    dep = s["deployments"][0]
    tt = dep["time_per_token"]
    assert tt["pool"] == "decode" and set(tt["models"]) == {"fluid", "roce-hash", "uec-spray"}
    leaf = next(h["link"].split("->")[1] for h in dep["busiest_links"] if h["link"].startswith("n0000-g0->"))
    cable = max(f.link_length_m[_link(f, f"n0001-g0->{leaf}")] + f.link_length_m[_link(f, f"{leaf}->n0002-g0")],
                f.link_length_m[_link(f, f"n0002-g0->{leaf}")] + f.link_length_m[_link(f, f"{leaf}->n0001-g0")])
    alpha = STEP_OVERHEAD_US * 1e-6 + float(cable) * PROPAGATION_NS_PER_M * 1e-9   # th4 has no latency figure
    S = 8192 * 2

    def bg(rate):       # on leaf->n0002-g0 (and leaf->n0001-g0), goodput B/s
        tp_bg = rate * 100 * 8192 * 2 * 2 * 80          # each decode rank's ring traffic
        kv_half = rate * 1000 * 327_680 / 2             # each decode rank's half of the KV cache
        return tp_bg + kv_half

    def by_hand(rate, eff):
        left = (400e9 - bg(rate) * 8 / eff) * eff / 8   # goodput B/s left on the wire
        return 80 * 2 * (alpha + S / left)

    from topo.routing.engine import protocol_efficiency
    assert tt["models"]["fluid"]["wire_efficiency"] == 1.0          # transport ideal: no headers
    assert tt["models"]["roce-hash"]["wire_efficiency"] == protocol_efficiency(c, "roce") < 1
    for m, e in tt["models"].items():          # one path under one leaf: only the headers differ
        eff = e["wire_efficiency"]
        assert e["idle_s"] == pytest.approx(80 * 2 * (alpha + S / (50e9 * eff))), m
        assert e["at_rate_s"] == pytest.approx(by_hand(10, eff)), m
        assert [p["requests_per_s"] for p in e["curve"]] == [10, 40, 100, 120]
        assert [p["time_s"] for p in e["curve"][:3]] == pytest.approx([by_hand(r, eff) for r in (10, 40, 100)]), m
        # the first link to saturate is the ring's own (TP all-reduce and half the KV cache, 34.08 Gb/s
        # at 10 requests/s), at 117.4 requests/s with no headers; beyond it no bandwidth is left
        sat = 10 * 400e9 * eff / (bg(10) * 8)
        assert e["saturating_requests_per_s"] == pytest.approx(sat)
        assert e["saturating_link"] in (f"{leaf}->n0001-g0", f"{leaf}->n0002-g0")
        assert e["curve"][3]["time_s"] is None
        parts = e["parts_at_rate"]
        assert parts["tp_allreduce"]["alpha_s"] == pytest.approx(80 * 2 * alpha)
        assert parts["tp_allreduce"]["algorithms"] == ["recursive_doubling"]
        assert parts["moe_dispatch"] == {"alpha_s": 0.0, "beta_s": 0.0, "algorithms": []}


def test_default_curve_rises_to_the_saturating_rate():
    from topo.routing.serving import CURVE_FRACTIONS, serving
    s = serving(_cluster(_tp2()))
    e = s["deployments"][0]["time_per_token"]["models"]["fluid"]
    sat = e["saturating_requests_per_s"]
    rates = [p["requests_per_s"] for p in e["curve"]]
    assert rates == sorted({f * sat for f in CURVE_FRACTIONS} | {10.0})
    times = [p["time_s"] for p in e["curve"]]
    assert all(a < b for a, b in zip(times, times[1:]))


def test_moe_step_alpha_terms_and_saturation():
    """Colocated MoE, tp=1, ep=2 on two single-accelerator nodes: per layer one dispatch and one
    combine (direct all-to-all, 1 step each, S = k x h x b / tp per rank, S / ep to each); no TP all-reduce. A rate whose traffic fills
    the ring's link leaves no bandwidth: the time is reported as saturated (None)."""
    from topo.routing.serving import serving
    d = copy.deepcopy(TINY)
    dep = d["serving"]["deployments"][0]
    dep["model"] = {"layers": 4, "hidden_size": 1024, "attention_heads": 8, "kv_heads": 4, "head_dim": 64,
                    "experts": 8, "experts_per_token": 2}
    dep.pop("prefill"), dep.pop("decode")
    dep["colocated"] = {"replicas": 1, "tp": 1, "ep": 2}
    s = serving(_cluster(d), rates=[1, 1e9])
    tt = s["deployments"][0]["time_per_token"]
    assert tt["parts"]["moe_a2a"] == {"per_layer": 1, "bytes_per_rank": 2 * 1024 * 2 / 1}
    assert tt["parts"]["tp_allreduce"]["per_layer"] == 0
    e = tt["models"]["fluid"]
    p = e["parts_at_rate"]
    assert p["moe_dispatch"]["alpha_s"] == pytest.approx(p["moe_combine"]["alpha_s"])
    # 4 layers x 2048 B per pair over what the deployment's own dispatch + combine leave of 400 Gb/s:
    # 10 x 1100 tokens/s / ep x k / ep x h x b x 4 layers each way
    own = 2 * (10 * 1100 / 2 * 2 / 2 * 1024 * 2 * 4)
    assert p["moe_dispatch"]["beta_s"] == pytest.approx(4 * 2048 * 8 / (400e9 - own * 8))
    assert p["tp_allreduce"] == {"alpha_s": 0.0, "beta_s": 0.0, "algorithms": []}
    assert p["moe_dispatch"]["algorithms"] == ["direct"]     # ties pairwise for 2 ranks: the first in order
    assert e["curve"][1]["time_s"] is None and e["curve"][0]["time_s"] > 0


def test_cli_rates_and_refusal(tmp_path):
    from topo.cli import main
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_tp2()))
    res = CliRunner().invoke(main, ["serve", str(p), "--rates", "5,10", "--json"])
    assert res.exit_code == 0, res.output
    curve = json.loads(res.output)["deployments"][0]["time_per_token"]["models"]["uec-spray"]["curve"]
    assert [x["requests_per_s"] for x in curve] == [5, 10]
    res = CliRunner().invoke(main, ["serve", str(p)])
    assert res.exit_code == 0 and "network time per output token" in res.output and "roce-hash" in res.output
    res = CliRunner().invoke(main, ["serve", str(p), "--rates", "5,-1"])
    assert res.exit_code == 2 and "--rates" in res.output and no_crash(res)


def test_serving_routes_equal_under_the_pure_python_twins(tmp_path):
    """`topo serve --json` on the example (RoCE hashing, UEC spraying, fluid; TP, MoE, KV, agent flows)
    gives the same document with the compiled kernels and with TOPO_PURE_PYTHON=1."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    compiled, pure = serve_json_compiled_and_pure(os.path.join(root, "examples", "serving-disagg.yaml"))
    assert compiled == pure


def test_interference_by_hand():
    """A 2-rank training ring across two leaves (one 400G uplink each) at line rate and a KV stream of
    26.2 Gb/s on the same uplink: proportional sharing slows the job by the link's utilisation,
    (400 + 26.2144) / 400; per-QP max-min over what the KV stream leaves by 400 / (400 - 26.2144 / eff)."""
    from topo.routing.engine import protocol_efficiency
    from topo.routing.serving import serving
    d = copy.deepcopy(TINY)
    d["racks"] = [{"name": "r", "count": 4, "nodes": {"g1": 2}}, {"name": "c", "count": 1, "nodes": {"cpu": 2}}]
    d["fabric"]["tiers"][0]["ports"] = {"down": {"ports": 2, "gbps": 400}, "up": {"ports": 1, "gbps": 400}}
    d["jobs"] = [{"name": "t", "accelerators": 2, "nodes": ["n0000", "n0002"],
                  "collectives": [{"op": "allreduce", "bytes": 1e9}]}]
    c = _cluster(d)
    s = serving(c)
    assert s["deployments"][0]["replicas"] == {"prefill": [["n0001-g0", "n0001-g0"]],
                                               "decode": [["n0003-g0", "n0003-g0"]]}
    kv = 10 * 1000 * 327_680 * 8 / 1e9          # Gb/s
    inf = s["with_training"]["interference"]["models"]
    assert inf["fluid"]["jobs"]["t"]["slowdown"] == pytest.approx((400 + kv) / 400)
    assert inf["fluid"]["max_util_with_serving"] == pytest.approx((400 + kv) / 400)
    eff = protocol_efficiency(c, "roce")
    assert inf["roce-hash"]["jobs"]["t"]["slowdown"] == pytest.approx(400 / (400 - kv / eff))
    assert inf["uec-spray"]["jobs"]["t"]["slowdown"] > 1


def test_example_roce_vs_uec_on_the_expert_exchange():
    """examples/serving-moe-ep.yaml: one decode replica of ep 32 over four 8-GPU nodes. Each rank sends each
    other rank T / ep x k / ep x h x b x layers = 100,000 / 32 x 8 / 32 x 7168 x 1 B x 61 = 341.6 MB/s to
    dispatch and the same to combine (5.4656 Gb/s), from 24 ranks over the network (7 share its NVLink
    domain), plus its 1/32 of the KV (124,928 B x 100,000 tokens/s / 32 = 3.1232 Gb/s): 134.29 Gb/s of
    goodput on a 400 Gb/s NIC downlink at RoCE's wire efficiency, so fluid saturates at 100 x 400 / that.
    Spraying spreads the cross-rail traffic like fluid and also stops at a NIC; hashing piles it on one of
    the few leaf uplinks first."""
    import topo
    from topo.model.spec import wire_efficiency
    c = topo.load("examples/serving-moe-ep.yaml")
    s = topo.serving(c)
    m = s["deployments"][0]["time_per_token"]["models"]
    nic = (24 * 100_000 / 32 * 8 / 32 * 7168 * 61 * 2 * 8 / 1e9 + 124_928 * 100_000 / 32 * 8 / 1e9) / wire_efficiency(c)
    assert m["fluid"]["saturating_requests_per_s"] == pytest.approx(100 * 400 / nic, rel=1e-6)
    assert "spine" not in m["uec-spray"]["saturating_link"]
    assert "spine" in m["roce-hash"]["saturating_link"]
    assert m["roce-hash"]["saturating_requests_per_s"] < 0.95 * m["uec-spray"]["saturating_requests_per_s"]
    assert m["roce-hash"]["idle_s"] > m["uec-spray"]["idle_s"]
