"""Locality-aware pairing of prefill and decode replicas (kv_routing) and rack power in the serving placement."""
import contextlib
import copy

import numpy as np
import pytest

from tests.conftest import refused
from helpers.serving_cases import TINY, _cluster

# 8 single-accelerator nodes, two per rack, one rack per leaf (4 leaves), and a rack of 2 CPU hosts
LEAVES = copy.deepcopy(TINY)
LEAVES["racks"] = [{"name": "r", "count": 4, "nodes": {"g1": 2}}, {"name": "c", "count": 1, "nodes": {"cpu": 2}}]
LEAVES["fabric"]["tiers"][0]["ports"] = {"down": {"ports": 2, "gbps": 400}, "up": {"ports": 2, "gbps": 400}}
KV = 10 * 1000 * 327_680      # KV bytes/s of the deployment at 10 requests/s of 1000 prompt tokens


@contextlib.contextmanager
def _refusal(path, text=""):
    """The block raises a SpecError naming ``path`` with ``text`` in its message."""
    from topo.core.errors import SpecError
    with pytest.raises(SpecError) as e:
        yield
    errs = dict(e.value.errors)
    assert path in errs and text in errs[path], errs


def _two_by_two(kv_routing, spread=True):
    d = copy.deepcopy(LEAVES)
    dep = d["serving"]["deployments"][0]
    dep["prefill"]["replicas"] = dep["decode"]["replicas"] = 2
    if spread:
        dep["spread"] = {"level": "leaf", "max_share": 0.5}
    dep["kv_routing"] = kv_routing
    return d


def test_kv_shares_by_hand():
    """Prefill replicas behind leaves (0, 0, 1), decode replicas behind (0, 1, 1), one pod. Local: leaf 0
    keeps min(2/3, 1/3) = 1/3, leaf 1 min(1/3, 2/3) = 1/3, the last 1/3 crosses; even: 5 of the 9 pairs
    cross. Every replica carries 1/3 either way."""
    from topo.traffic.serving import kv_shares
    lp, ld, pod = np.array([0, 0, 1]), np.array([0, 1, 1]), np.zeros(3, np.int64)
    cross = lp[:, None] != ld[None, :]
    for mode, crossing in (("local", 1 / 3), ("even", 5 / 9)):
        S = kv_shares(mode, lp, pod, ld, pod)
        assert S.sum(axis=1) == pytest.approx([1 / 3] * 3) and S.sum(axis=0) == pytest.approx([1 / 3] * 3)
        assert (S * cross).sum() == pytest.approx(crossing)
    S = kv_shares("local", lp, pod, ld, pod)
    # leaf 0: each of its two prefill replicas sends half of its 1/3 to the one decode replica there
    assert S[0, 0] == pytest.approx(1 / 6) and S[1, 0] == pytest.approx(1 / 6)
    # the leftovers (1/6 from each of prefill 0 and 1) go to decode 1 and 2, 1/6 each, in proportion
    assert S[0, 1] == S[0, 2] == S[1, 1] == S[1, 2] == pytest.approx(1 / 12)
    assert S[2, 0] == 0 and S[2, 1] == S[2, 2] == pytest.approx(1 / 6)
    # pods: a pair under different leaves of one pod stays in the pod
    S = kv_shares("local", np.array([0, 1]), np.array([0, 1]), np.array([2, 3]), np.array([0, 1]))
    assert S == pytest.approx(np.array([[0.5, 0], [0, 0.5]]))
    with _refusal("kv_routing"):
        kv_shares("nearest", lp, pod, ld, pod)


@pytest.mark.parametrize("mode, objective, crossing", [("even", 200, KV / 2), ("local", 0, 0.0)])
def test_bytes_crossing_a_leaf_even_vs_local(mode, objective, crossing):
    """2 prefill + 2 decode replicas, at most one of each pool per leaf: one (prefill, decode) pair under
    each of two leaves. Even routing sends half the requests across leaves (2 of 4 pairs, KV / 2 =
    1.6384 GB/s); local keeps every request under its leaf. The placement's objective, the KV bytes it
    reports and the load the routed flows put on the leaf uplinks agree."""
    from topo.model.fabric import build
    from topo.routing.engine import route
    from topo.solve.serving_place import kv_crossing, place_serving
    from topo.traffic.serving import serving_traffic
    c = _cluster(_two_by_two(mode))
    f = build(c)
    r = place_serving(c, f)
    assert r["status"] == "OPTIMAL" and r["objective"] == objective == r["bound"]
    kc = kv_crossing(c, f, r["assignment"])["d"]
    assert kc["kv_bytes_per_s_crossing_leaves"] == pytest.approx(crossing) and kc["kv_routing"] == mode
    st = serving_traffic(c, f, replicas=r["assignment"])
    assert st.bytes_per_s["d"]["kv_transfer"] == pytest.approx(KV)      # the same bytes, paired differently
    load = route(f, st.demands, "fluid").link_gbps_load
    up = (np.arange(f.n_links) % 2 == 0) & (np.asarray(f.link_tier) == 1)    # leaf -> spine
    assert load[up].sum() == pytest.approx(crossing * 8 / 1e9)


def test_local_routing_changes_the_placement_objective():
    """Without a spread limit, 2 + 2 replicas on leaves of 2 accelerators: even pays for 2 crossing pairs
    at best (200); local pays nothing for the same (P, D) + (P, D) layout, and the checker recomputes both."""
    from topo.model.fabric import build
    from topo.solve.serving_place import check, place_serving
    for mode, best in (("even", 200), ("local", 0)):
        c = _cluster(_two_by_two(mode, spread=False))
        f = build(c)
        r = place_serving(c, f)
        assert r["objective"] == best == r["bound"]
        assert check(c, f, r["training"], r["assignment"], r["objective"]) == []
        assert check(c, f, r["training"], r["assignment"], r["objective"] + 1)     # a wrong objective is caught


def test_kv_routing_refused_with_colocated():
    d = copy.deepcopy(TINY)
    dep = d["serving"]["deployments"][0]
    dep["colocated"] = dep.pop("prefill")
    dep.pop("decode")
    dep["kv_routing"] = "local"
    assert "colocated" in refused(d, "serving.deployments[0].kv_routing")


# --- rack power --------------------------------------------------------------------------------------
def _rack_of(f, e):
    return int(np.asarray(f.server_rack)[np.asarray(f.ep_server)[e]])


def _powered(prefill, decode, limit_kw=2.5):
    """Racks of 2 nodes idle at 0.375 kW each (0.75 kW), busy 1.5 kW: under 2.5 kW a rack powers one busy
    node (1.875 kW), not two (3.0 kW), though both its accelerators are free."""
    d = copy.deepcopy(LEAVES)
    d["racks"][0]["power_limit_kw"] = limit_kw
    dep = d["serving"]["deployments"][0]
    dep["prefill"]["replicas"], dep["decode"]["replicas"] = prefill, decode
    return d


def test_power_not_free_accelerators_binds():
    """Without a power limit the 2 + 2 replicas pair up under two leaves (objective 200); with one busy
    node per rack every replica takes a rack of its own and all 4 pairs cross leaves (400)."""
    from topo.model.fabric import build
    from topo.solve.serving_place import check, place_serving
    c = _cluster(_powered(2, 2, limit_kw=30))
    assert place_serving(c, build(c))["objective"] == 200
    c = _cluster(_powered(2, 2))
    f = build(c)
    r = place_serving(c, f)
    assert r["status"] == "OPTIMAL" and r["objective"] == 400 == r["bound"]
    srv = np.asarray(f.ep_server)[np.concatenate([R.ravel() for R in r["assignment"].values()])]
    racks = np.asarray(f.server_rack)[srv]
    assert sorted(racks.tolist()) == [0, 1, 2, 3]
    # the checker counts power with its own code: two replicas in one rack are refused
    a = {k: v.copy() for k, v in r["assignment"].items()}
    first = int(a[("d", "prefill")][0, 0])
    mate = [e for e in range(8) if e != first and _rack_of(f, e) == _rack_of(f, first)][0]
    a[("d", "decode")][0, 0] = mate
    assert any(p.startswith("power: rack") for p in check(c, f, r["training"], a))



def test_replicas_beyond_the_power_limit_are_refused():
    """5 replicas need 5 busy nodes; 8 accelerators are free but the 4 racks power only one node each."""
    from topo.model.fabric import build
    from topo.solve.serving_place import place_serving, serving
    c = _cluster(_powered(3, 2))
    f = build(c)
    with _refusal("serving.deployments", "power limits"):
        place_serving(c, f)
    with _refusal("serving.deployments", "power limit"):       # in order too
        serving(c, f, serving_placement="in-order")
