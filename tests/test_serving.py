"""Serving deployments: closed forms of the traffic, refusals with JSON paths, topo serve end to end."""
import copy
import json

import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import no_crash, refused, validate_refuses
from helpers.serving_cases import LLAMA70B, TINY, _cluster


# 8 single-accelerator nodes (no scale-up peers) and 2 CPU hosts on one 2-tier Clos of 400G ports

def test_kv_bytes_per_token_llama3_70b():
    from topo.model.spec import ServingModel
    from topo.traffic.serving import kv_bytes_per_token
    # 2 (K, V) x 80 layers x 8 KV heads x 128 x 2 bytes (bf16)
    assert kv_bytes_per_token(ServingModel(**LLAMA70B)) == 2 * 80 * 8 * 128 * 2 == 327_680
    assert kv_bytes_per_token(ServingModel(**LLAMA70B, kv_dtype="fp8")) == 163_840


def test_moe_dispatch_bytes_per_token():
    from topo.model.spec import ServingModel
    from topo.traffic.serving import moe_dispatch_bytes_per_token
    m = ServingModel(layers=4, hidden_size=7168, attention_heads=128, kv_heads=128, head_dim=128,
                     experts=256, experts_per_token=8, activation_dtype="fp8")
    assert moe_dispatch_bytes_per_token(m) == 7168 * 8 * 1
    assert moe_dispatch_bytes_per_token(ServingModel(**LLAMA70B)) == 0


@pytest.mark.parametrize("tp_p,tp_d,copies", [(1, 1, 1), (8, 2, 1), (2, 8, 1), (8, 16, 2)])
def test_kv_matrix_conserves_bytes(tp_p, tp_d, copies):
    """Every (layer, KV head) block leaves one prefill rank and reaches each decode rank holding it."""
    from topo.model.spec import ServingModel, ServingPool
    from topo.traffic.serving import _kv_matrix, kv_bytes_per_token
    m = ServingModel(**LLAMA70B)
    M = _kv_matrix(m, ServingPool(replicas=1, tp=tp_p, pp=2), ServingPool(replicas=1, tp=tp_d, pp=4))
    assert M.sum() == pytest.approx(kv_bytes_per_token(m) * copies)
    # each decode rank receives an equal share
    assert np.allclose(M.sum(axis=0), M.sum() / M.shape[1])


def test_flows_by_hand_and_saturating_rate():
    """One prefill and one decode replica of one accelerator each: the KV flow is requests/s x prompt
    tokens x KV bytes per token, on the prefill NIC's uplink; the rate at the target follows by hand."""
    from topo.routing.serving import serving
    from topo.traffic.serving import serving_traffic
    from topo.model.fabric import build
    c = _cluster(TINY)
    f = build(c)
    st = serving_traffic(c, f)
    kv = 10 * 1000 * 327_680
    assert st.bytes_per_s["d"]["kv_transfer"] == pytest.approx(kv)
    assert st.demands.n == 1 and st.demands.rate_gbps[0] == pytest.approx(kv * 8 / 1e9)
    s = serving(c, f)
    d = s["deployments"][0]
    util = kv * 8 / 1e9 / 400.0   # ideal transport: no header overhead
    assert d["max_util"] == pytest.approx(util)
    assert d["max_requests_per_s_at_target"] == pytest.approx(10 * 0.8 / util)
    assert d["limited_by"] in ("n0000-g0->leaf0", "leaf0->n0001-g0")
    # idle KV transfer of one mean request: its bytes at 400 Gb/s
    assert d["kv_transfer"]["mean"]["idle_s"] == pytest.approx(1000 * 327_680 * 8 / 400e9)
    # linear in the request rate
    d2 = copy.deepcopy(TINY)
    d2["serving"]["deployments"][0]["load"]["requests_per_s"] = 20
    s2 = serving(_cluster(d2))
    assert s2["all"]["max_util"] == pytest.approx(2 * s["all"]["max_util"])
    assert s2["deployments"][0]["max_requests_per_s_at_target"] == pytest.approx(d["max_requests_per_s_at_target"])


def test_moe_tp_pp_and_agent_flows_by_hand():
    from topo.model.fabric import build
    from topo.traffic.serving import serving_traffic
    d = copy.deepcopy(TINY)
    dep = d["serving"]["deployments"][0]
    dep["model"] = {"layers": 4, "hidden_size": 1024, "attention_heads": 8, "kv_heads": 4, "head_dim": 64,
                    "experts": 8, "experts_per_token": 2}
    dep.pop("prefill"), dep.pop("decode")
    dep["colocated"] = {"replicas": 1, "tp": 2, "ep": 4, "pp": 2}   # 2 stages x 4 ranks
    d["serving"]["agent_tiers"] = [{"name": "a", "node_type": "cpu", "deployments": ["d"],
                                    "request_bytes": 1000, "response_bytes": 100}]
    c = _cluster(d)
    st = serving_traffic(c, build(c))
    b = st.bytes_per_s["d"]
    T = 10 * (1000 + 100)            # tokens per second of the one replica
    h, ab, Ls = 1024, 2, 2
    # one ring all-reduce per layer (MoE with ep > 1), 2 groups of 2 per stage, 2 stages:
    # each rank sends 2(n-1)/n S, S = T/2 x h x ab x Ls
    S = T / 2 * h * ab * Ls
    assert b["tp_allreduce"] == pytest.approx(2 * 2 * 2 * (2 * 1 / 2 * S))
    # dispatch: per stage, each of 4 ranks sends T/4 x k/4 x h x ab x Ls to each of 3 others
    per = T / 4 * 2 / 4 * h * ab * Ls
    assert b["moe_dispatch"] == pytest.approx(2 * 4 * 3 * per) == b["moe_combine"]
    assert b["pp_send"] == pytest.approx(T * h * ab)
    assert b["agent_request"] == pytest.approx(10 * 1000) and b["agent_response"] == pytest.approx(10 * 100)


@pytest.mark.parametrize("edit,path", [
    (lambda s: s["deployments"][0]["model"].update(kv_heads=7), "serving.deployments[0].model.kv_heads"),
    (lambda s: s["deployments"][0]["prefill"].update(ep=2), "serving.deployments[0].prefill.ep"),
    (lambda s: s["deployments"][0]["decode"].update(pp=3), "serving.deployments[0].decode.pp"),
    (lambda s: s["deployments"][0].pop("decode"), "serving.deployments[0].decode"),
    (lambda s: s["deployments"][0].update(colocated={"replicas": 1}), "serving.deployments[0].colocated"),
    (lambda s: s["deployments"][0]["model"].update(experts=8), "serving.deployments[0].model.experts_per_token"),
    (lambda s: s.update(agent_tiers=[{"name": "a", "node_type": "g1", "deployments": ["d"], "request_bytes": 1,
                                      "response_bytes": 1}]), "serving.agent_tiers[0].node_type"),
    (lambda s: s.update(agent_tiers=[{"name": "a", "node_type": "cpu", "deployments": ["x"], "request_bytes": 1,
                                      "response_bytes": 1}]), "serving.agent_tiers[0].deployments[0]"),
    (lambda s: s["deployments"][0]["load"].update(prompt_tokens={"mean": 5, "percentiles": {"p50": 9, "p99": 3}}),
     "serving.deployments[0].load.prompt_tokens"),
])
def test_refusals_name_the_field(edit, path, tmp_path):
    d = copy.deepcopy(TINY)
    edit(d["serving"])
    refused(d, path)
    validate_refuses(d, path, tmp_path)


def test_cli_serve_and_refusal_when_it_does_not_fit(tmp_path):
    from topo.cli import main
    p = tmp_path / "c.json"
    p.write_text(json.dumps(TINY))
    res = CliRunner().invoke(main, ["serve", str(p), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["deployments"][0]["kv_bytes_per_token"] == 327_680 and out["all"]["carries_at_target"]
    res = CliRunner().invoke(main, ["serve", str(p)])
    assert res.exit_code == 0 and "carries the load at the target: yes" in res.output
    d = copy.deepcopy(TINY)
    d["serving"]["deployments"][0]["decode"]["replicas"] = 8
    p.write_text(json.dumps(d))
    res = CliRunner().invoke(main, ["serve", str(p)])
    assert res.exit_code == 2 and "serving.deployments[0].decode.replicas" in res.output and no_crash(res)


def test_example_runs_and_python_api():
    import topo
    s = topo.serving(topo.load("examples/serving-disagg.yaml"))
    llama = s["deployments"][0]
    assert llama["bytes_per_s"]["kv_transfer"] == pytest.approx(20 * 2000 * 327_680)
    assert set(llama["kv_transfer"]) == {"mean", "p50", "p99"}
    moe = s["deployments"][1]
    # fp8 KV: 2 x 8 layers x 8 heads x 128 x 1 byte
    assert moe["kv_bytes_per_token"] == 16_384 and moe["bytes_per_s"]["kv_transfer"] == 0


def test_kv_time_inside_one_scaleup_domain_uses_scaleup_bandwidth():
    """Prefill and decode replicas on two accelerators of one scale-up domain: the KV cache never
    touches the fabric and moves at the domain's bandwidth per accelerator."""
    from topo.model.fabric import build
    from topo.routing.serving import serving
    d = copy.deepcopy(TINY)
    d["node_types"][0].update(accelerators=2, nics=2, scaleup={"size": 2, "gbps_per_accelerator": 3600})
    d["serving"]["deployments"][0]["load"]["prompt_tokens"] = {"mean": 1000, "percentiles": {"p90": 4000}}
    c = _cluster(d)
    f = build(c)
    s = serving(c, f)
    dep = s["deployments"][0]
    assert dep["network_gbps"] == 0 and dep["max_util"] == 0
    assert dep["scaleup_gbps"] == pytest.approx(10 * 1000 * 327_680 * 8 / 1e9)
    assert dep["kv_transfer"]["p90"]["idle_s"] == pytest.approx(4000 * 327_680 * 8 / 3600e9)
    assert dep["limited_by"] == "scale-up"


def test_with_training_on_disjoint_links():
    """A 2-rank training job under the same leaf as the deployment: no link carries both, so the
    peak with training is the larger of the two alone (training at line rate: 1.0 with no headers)."""
    from topo.routing.serving import serving
    d = copy.deepcopy(TINY)
    d["jobs"] = [{"name": "t", "accelerators": 2, "collectives": [{"op": "allreduce", "bytes": 1e9}]}]
    s = serving(_cluster(d))
    w = s["with_training"]
    assert s["deployments"][0]["replicas"] == {"prefill": [["n0002-g0", "n0002-g0"]],
                                               "decode": [["n0003-g0", "n0003-g0"]]}
    assert w["training_max_util"] == pytest.approx(1.0)
    assert w["shared_links"] == 0 and w["shared_max_serving_share"] is None
    assert w["max_util"] == pytest.approx(max(1.0, s["all"]["max_util"]))
    assert serving(_cluster(TINY))["with_training"] is None
