"""CP-SAT placement of serving replicas: KV pairs under one leaf, spread limits, the independent checker."""
import copy
import json

import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import no_crash, refused
from helpers.serving_cases import TINY, _cluster

# 8 single-accelerator nodes, two per leaf (one rack per leaf), and a rack of 2 CPU hosts
LEAVES = copy.deepcopy(TINY)
LEAVES["racks"] = [{"name": "r", "count": 4, "nodes": {"g1": 2}}, {"name": "c", "count": 1, "nodes": {"cpu": 2}}]
LEAVES["fabric"]["tiers"][0]["ports"] = {"down": {"ports": 2, "gbps": 400}, "up": {"ports": 2, "gbps": 400}}
LEAVES["jobs"] = [{"name": "t", "accelerators": 1, "collectives": [{"op": "allreduce", "bytes": 1e6}]}]
KV = 10 * 1000 * 327_680      # KV bytes/s of the one (prefill, decode) pair at 10 requests/s


def _leaf(f, e):
    return int(f.ep_leaf()[e])


def test_kv_stays_under_one_leaf_when_it_fits():
    """The training job takes n0000-g0, so in order prefill (n0001) and decode (n0002) land under two
    leaves; CP-SAT puts both under one leaf: objective and bound 0, no KV across leaves."""
    from topo.model.fabric import build
    from topo.solve.serving_place import serving
    c = _cluster(LEAVES)
    f = build(c)
    s = serving(c, f)
    sp = s["serving_placement"]
    assert sp["status"] == "OPTIMAL" and sp["objective"] == 0 and sp["bound"] == 0 and sp["checked"]
    assert sp["kv_crossing_in_order"]["d"]["kv_bytes_per_s_crossing_leaves"] == pytest.approx(KV)
    assert sp["kv_crossing"]["d"]["kv_bytes_per_s_crossing_leaves"] == 0
    rep = s["deployments"][0]["replicas"]
    names = {rep["prefill"][0][0], rep["decode"][0][0]}
    assert "n0000-g0" not in names            # the training job's accelerator
    eps = [f.node_names().index(n) for n in names]
    assert _leaf(f, eps[0]) == _leaf(f, eps[1])
    # the traffic follows the placement: the KV flow never leaves the leaf
    assert s["deployments"][0]["max_util"] == pytest.approx(KV * 8 / 400e9)
    assert not any("spine" in h["link"] for h in s["deployments"][0]["busiest_links"])


def test_spread_limit_holds_and_costs_half_the_pairs():
    """2 prefill + 2 decode replicas, at most half of each pool behind one leaf: the best placement pairs
    one prefill and one decode replica under each of two leaves, so 2 of the 4 pairs cross (W = 100 each)."""
    from topo.model.fabric import build
    from topo.solve.serving_place import check, place_serving
    d = copy.deepcopy(LEAVES)
    dep = d["serving"]["deployments"][0]
    dep["prefill"]["replicas"] = dep["decode"]["replicas"] = 2
    dep["spread"] = {"level": "leaf", "max_share": 0.5}
    c = _cluster(d)
    f = build(c)
    r = place_serving(c, f)
    assert r["status"] == "OPTIMAL" and r["objective"] == 2 * 100 == r["bound"]
    leaf = f.ep_leaf()
    P = leaf[r["assignment"][("d", "prefill")][:, 0]]
    D = leaf[r["assignment"][("d", "decode")][:, 0]]
    assert len(set(P.tolist())) == 2 and len(set(D.tolist())) == 2 and set(P.tolist()) == set(D.tolist())
    assert check(c, f, r["training"], r["assignment"], r["objective"]) == []


def test_rack_spread_and_in_order_refusal(tmp_path):
    from topo.cli import main
    from topo.model.fabric import build
    from topo.solve.serving_place import place_serving
    d = copy.deepcopy(LEAVES)
    d["jobs"] = []
    dep = d["serving"]["deployments"][0]
    dep["prefill"]["replicas"] = dep["decode"]["replicas"] = 3
    dep["spread"] = {"level": "rack", "max_share": 0.34}       # one replica of each pool per rack
    c = _cluster(d)
    f = build(c)
    r = place_serving(c, f)
    rack = np.asarray(f.server_rack)[np.asarray(f.ep_server)]
    assert len(set(rack[r["assignment"][("d", "decode")][:, 0]].tolist())) == 3
    assert len(set(rack[r["assignment"][("d", "prefill")][:, 0]].tolist())) == 3
    # in order, the 3 prefill replicas take n0000..n0002: two in the first rack
    p = tmp_path / "c.json"
    p.write_text(json.dumps(d))
    res = CliRunner().invoke(main, ["serve", str(p), "--placement", "in-order"])
    assert res.exit_code == 2 and "serving.deployments[0].spread" in res.output and no_crash(res)
    res = CliRunner().invoke(main, ["serve", str(p), "--json", "--time-limit", "5", "--workers", "1"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["serving_placement"]["method"] == "cpsat" and out["serving_placement"]["in_order_spread_ok"] is False
    res = CliRunner().invoke(main, ["serve", str(p)])
    assert res.exit_code == 0 and "serving placement: CP-SAT OPTIMAL" in res.output


def test_checker_rejects_hand_made_violations():
    from topo.model.fabric import build
    from topo.solve.serving_place import check, place_serving
    d = copy.deepcopy(LEAVES)
    d["serving"]["deployments"][0]["decode"]["replicas"] = 2
    d["serving"]["deployments"][0]["prefill"]["replicas"] = 2
    d["serving"]["deployments"][0]["spread"] = {"level": "leaf", "max_share": 0.5}
    c = _cluster(d)
    f = build(c)
    r = place_serving(c, f)
    A, T = r["assignment"], r["training"]
    assert check(c, f, T, A, r["objective"]) == []
    t_ep = int(np.asarray(T["t"]).ravel()[0])

    def bad(role, rows):
        x = {k: v.copy() for k, v in A.items()}
        x[("d", role)] = np.asarray(rows, np.int64)
        return x
    pre = A[("d", "prefill")]
    dec = A[("d", "decode")]
    # the training job's accelerator
    assert any("training job t" in e for e in check(c, f, T, bad("prefill", [[t_ep], pre[1]])))
    # one accelerator twice
    assert any("also used" in e for e in check(c, f, T, bad("prefill", [dec[0], pre[1]])))
    # both decode replicas behind one leaf: the two accelerators of a leaf (2 and 3, 4 and 5, or 6 and 7)
    # that the prefill replicas leave alone
    two = next([[a], [a + 1]] for a in (2, 4, 6) if not {a, a + 1} & set(pre.ravel().tolist()))
    assert _leaf(f, two[0][0]) == _leaf(f, two[1][0])
    assert any("behind one leaf" in e for e in check(c, f, T, bad("decode", two)))
    # a wrong objective, a missing pool, a CPU host
    assert any("objective" in e for e in check(c, f, T, A, r["objective"] + 1))
    assert any("not placed" in e for e in check(c, f, T, {("d", "prefill"): A[("d", "prefill")]}))
    assert any("not an accelerator" in e for e in check(c, f, T, bad("prefill", [[8], pre[1]])))


def test_tp_group_in_one_domain_and_refusals():
    """Replicas of tp=2 on nodes of 2 accelerators in a domain of 2 stay inside one node; the checker refuses
    a TP group split over two domains; a spread that allows no replica is refused with its path."""
    from topo.model.fabric import build
    from topo.solve.serving_place import check, place_serving
    d = copy.deepcopy(LEAVES)
    d["node_types"][0].update(accelerators=2, nics=2, scaleup={"size": 2, "gbps_per_accelerator": 3600})
    d["jobs"] = []
    d["serving"]["deployments"][0]["decode"]["tp"] = 2
    d["serving"]["deployments"][0]["prefill"]["tp"] = 2
    c = _cluster(d)
    f = build(c)
    r = place_serving(c, f)
    dom = np.asarray(f.ep_domain)
    for R in r["assignment"].values():
        assert (dom[R] == dom[R][:, :1]).all()
    split = {k: v.copy() for k, v in r["assignment"].items()}
    a, b = split[("d", "prefill")][0, 1], split[("d", "decode")][0, 1]
    split[("d", "prefill")][0, 1], split[("d", "decode")][0, 1] = b, a
    assert any("leaves its scale-up domain" in e for e in check(c, f, {}, split))
    d2 = copy.deepcopy(LEAVES)
    d2["serving"]["deployments"][0]["spread"] = {"level": "pod", "max_share": 0.5}
    refused(d2, "serving.deployments[0].spread.max_share")
    # two replicas per pool, at most one per pod, on a fabric of one pod: refused before solving
    from topo.core.errors import SpecError
    d2["serving"]["deployments"][0]["prefill"]["replicas"] = d2["serving"]["deployments"][0]["decode"]["replicas"] = 2
    c2 = _cluster(d2)
    with pytest.raises(SpecError) as e:
        place_serving(c2, build(c2))
    assert e.value.errors[0][0] == "serving.deployments[0].spread" and "behind 1" in e.value.errors[0][1]


def test_example_places_by_cpsat_with_the_spread():
    import topo
    s = topo.serving(topo.load("examples/serving-disagg.yaml"))
    sp = s["serving_placement"]
    assert sp["method"] == "cpsat" and sp["status"] == "OPTIMAL" and sp["in_order_spread_ok"] is False
    # each leaf holds one prefill and one decode replica: 2 of the 4 pairs cross, 20 x 2000 x 327,680 / 2 B/s
    assert sp["kv_crossing"]["llama70b"]["kv_bytes_per_s_crossing_leaves"] == pytest.approx(20 * 2000 * 327_680 / 2)


def test_held_back_spares_are_never_used_by_serving_replicas():
    """Nodes held back as hot spares are busy to the serving placement and to its checker."""
    import numpy as np

    import topo
    from topo.solve import serving_place as S
    c = topo.load("examples/serving-disagg.yaml")
    f = topo.build(c)
    first = S.place_serving(c, f, None, time_limit=10, seed=0, workers=1)
    used = sorted({int(f.ep_server[e]) for a in first["assignment"].values() for e in np.asarray(a).ravel()})
    held = [f.server_name(s) for s in used[:2]]
    again = S.place_serving(c, f, None, time_limit=10, seed=0, workers=1, reserved=held)
    used2 = {int(f.ep_server[e]) for a in again["assignment"].values() for e in np.asarray(a).ravel()}
    assert not used2 & set(used[:2])
    problems = S.check(c, f, first["training"], first["assignment"], reserved=held)
    assert any("busy node" in p for p in problems)
