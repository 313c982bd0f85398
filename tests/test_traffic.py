"""Traffic: rank map, collective expansion (nccl-tests volumes), placement, patterns."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import EXAMPLES, cluster_dict
from topo.traffic import demand as T
from topo.core.errors import SpecError
from topo.model.fabric import build
from topo.model.spec import from_dict


def _job(**kw):
    d = cluster_dict(n_racks=4, nodes_per_rack=2, accel=8)
    d["jobs"] = [{"name": "j", **kw}]
    return from_dict(d)


def test_rank_map_tp_fastest_and_groups():
    c = _job(accelerators=64, tp=8, pp=2, cp=1, ep=2)
    j = c.file.jobs[0]
    tp = T.rank_groups(j, "tp")
    assert tp.shape == (8, 8) and (tp[0] == np.arange(8)).all()
    pp = T.rank_groups(j, "pp")
    assert pp.shape == (32, 2) and (pp[0] == [0, 8]).all()
    dp = T.rank_groups(j, "dp")
    assert dp.shape == (16, 4) and (dp[0] == [0, 16, 32, 48]).all()
    ep = T.rank_groups(j, "ep")
    assert ep.shape == (32, 2) and (ep[0] == [0, 16]).all()
    # every rank appears once in each kind of group
    for g in ("tp", "pp", "dp", "ep", "cp"):
        assert np.sort(T.rank_groups(j, g).ravel()).tolist() == list(range(64))


def test_tp_groups_inside_one_domain_with_in_order_placement():
    c = _job(accelerators=32, tp=8)
    f = build(c)
    p = T.in_order_placement(c, f)
    G = p["j"][T.rank_groups(c.file.jobs[0], "tp")]
    dom = f.ep_domain[G]
    assert (dom == dom[:, :1]).all()


@pytest.mark.parametrize("op,alg,per_rank", [
    ("allreduce", "ring", lambda n: 2 * (n - 1) / n), ("allreduce", "direct", lambda n: 2 * (n - 1) / n),
    ("allgather", "ring", lambda n: (n - 1) / n), ("reducescatter", "direct", lambda n: (n - 1) / n),
    ("alltoall", "ring", lambda n: (n - 1) / n), ("sendrecv", "ring", None), ("broadcast", "ring", None)])
def test_collective_volumes(op, alg, per_rank):
    G = np.arange(12).reshape(2, 6) + 100
    S = 6e6
    s, d, b = T.expand_collective(G, op, alg, S)
    assert (s != d).all()
    n = 6
    if per_rank is not None:
        sent = np.bincount(s - 100, weights=b)
        np.testing.assert_allclose(sent, per_rank(n) * S)
    else:
        assert b.sum() == pytest.approx(2 * (n - 1) * S)  # chains of n-1 hops of S


def test_hierarchical_allreduce_uses_domains_first():
    dom = np.repeat(np.arange(4), 4)  # 4 domains of 4
    G = np.arange(16)[None, :]
    s, d, b = T.expand_collective(G, "allreduce", "hierarchical", 16e6, dom)
    same = dom[s] == dom[d]
    # inside: ring RS + AG per domain, 2(k-1)/k S per rank; across: rings of S/k shards
    np.testing.assert_allclose(np.bincount(s[same], weights=b[same], minlength=16), 2 * 3 / 4 * 16e6)
    np.testing.assert_allclose(np.bincount(s[~same], weights=b[~same], minlength=16), 2 * 3 / 4 * 16e6 / 4)
    # a flat ring would put 2(n-1)/n S per rank on the fabric for the ranks at domain edges
    assert b[~same].sum() < 16 * 2 * 15 / 16 * 16e6


def test_job_rates_drive_busiest_nic_at_line_rate():
    c = _job(accelerators=64, tp=8, collectives=[{"op": "allreduce", "group": "dp", "bytes": "1GiB"},
                                                 {"op": "alltoall", "group": "dp", "bytes": "256MiB"}])
    f = build(c)
    d = T.job_demands(c, f, efficiency=1.0)
    assert d.job_names == ("j",)
    dom = f.ep_domain
    so = dom[d.src] != dom[d.dst]
    sent = np.bincount(d.src[so], weights=d.rate_gbps[so], minlength=f.n_endpoints)
    recv = np.bincount(d.dst[so], weights=d.rate_gbps[so], minlength=f.n_endpoints)
    assert max(sent.max(), recv.max()) == pytest.approx(400.0)
    bsent = np.bincount(d.src[so], weights=d.bytes[so], minlength=f.n_endpoints)
    brecv = np.bincount(d.dst[so], weights=d.bytes[so], minlength=f.n_endpoints)
    assert d.job_time_s[0] == pytest.approx(np.maximum(bsent, brecv).max() * 8 / 400e9)
    np.testing.assert_allclose(d.rate_gbps, d.bytes * 8 / d.job_time_s[0] / 1e9)


def test_placement_skips_busy_nodes_and_respects_listed_nodes():
    d = cluster_dict(n_racks=2, nodes_per_rack=2, accel=8)
    d["busy_nodes"] = ["n0000"]
    d["jobs"] = [{"name": "a", "accelerators": 8}, {"name": "b", "accelerators": 8, "nodes": ["n0002"]}]
    c = from_dict(d)
    f = build(c)
    p = T.in_order_placement(c, f)
    assert set(f.ep_server[p["a"]].tolist()) == {1}
    assert set(f.ep_server[p["b"]].tolist()) == {2}
    d["jobs"].append({"name": "c", "accelerators": 16})
    with pytest.raises(SpecError, match=r"jobs\[2\]"):
        T.in_order_placement(from_dict(d), f)


def test_patterns():
    c = _job(accelerators=8)
    f = build(c)
    p = T.permutation(f, 1e9, seed=4)
    assert (p.src != p.dst).all() and np.sort(p.dst).tolist() == list(range(f.n_endpoints))
    assert (T.permutation(f, 1e9, seed=4).dst == p.dst).all()
    i = T.incast(f, 1e9, fan_in=7, seed=1)
    assert np.bincount(i.dst).max() == 7 and (i.src != i.dst).all()
    u = T.uniform(f, 1e9, endpoints=10)
    assert u.n == 90


def test_matrix_errors_name_file_and_line(tmp_path):
    c = _job(accelerators=8)
    f = build(c)
    m = tmp_path / "tm.csv"
    m.write_text("# comment\nn0000-g0,n0001-g1,2GB\nn0000-g0,leaf0,5\nbad,n0000-g0,1\nn0000-g1,n0000-g2,-3\n")
    with pytest.raises(SpecError) as e:
        T.matrix(f, m)
    msg = str(e.value)
    assert "traffic: " in msg  # the field that names the file
    assert "tm.csv' line 3" in msg and "switch" in msg and "tm.csv' line 4" in msg and "'bad'" in msg
    assert "tm.csv' line 5" in msg
    m.write_text("src,dst,bytes\nn0000-g0,n0001-g1,2GB\n")
    d = T.matrix(f, m)
    assert d.n == 1 and d.bytes[0] == 2e9


def test_traffic_file_of_zero_bytes_runs(tmp_path):
    from click.testing import CliRunner
    from topo.cli.app import main
    p = tmp_path / "t.csv"
    p.write_text("src,dst,bytes\nn0001-g3,n0000-g0,0\n")
    import json
    for model in ("fluid", "roce-hash", "optimal"):
        r = CliRunner().invoke(main, ["analyze", str(EXAMPLES / "small.yaml"), "--traffic", str(p), "--routing", model,
                                      "--json"])
        assert r.exit_code == 0, (model, r.output)
        d = json.loads(r.output)
        assert d["flows"] == 1 and d["offered_gbps"] == 0 and d["unreachable_gbps"] == 0
        assert all(t["util_max"] == 0 for t in d["tiers"]), model


def test_rank_order_megatron_groups():
    # tp-cp-ep-dp-pp: rank = t + 8 * d + 8 * dp * p (PP slowest)
    c = _job(accelerators=64, tp=8, pp=2, ep=2, rank_order="tp-cp-ep-dp-pp")
    j = c.file.jobs[0]
    assert (T.rank_groups(j, "tp")[0] == np.arange(8)).all()
    assert (T.rank_groups(j, "dp")[0] == [0, 8, 16, 24]).all()
    assert (T.rank_groups(j, "pp")[0] == [0, 32]).all()
    assert (T.rank_groups(j, "ep")[0] == [0, 8]).all()
    for g in ("tp", "pp", "dp", "ep", "cp"):
        assert np.sort(T.rank_groups(j, g).ravel()).tolist() == list(range(64))


@pytest.mark.parametrize("order", ["tp-pp-dp-cp", "tp-cp-ep-dp-pp", "tp-dp-cp-pp"])
def test_rank_order_is_a_relabelling_of_ranks(order):
    """The same accelerators, each holding the same (dp, pp, cp, tp) coordinates, give the
    same flows whatever the rank order: only which rank number names them changes."""
    kw = dict(accelerators=64, tp=2, pp=2, cp=2, ep=2, collectives=[
        {"op": "allreduce", "group": "dp", "bytes": "1GiB"}, {"op": "sendrecv", "group": "pp", "bytes": "8MiB"},
        {"op": "allgather", "group": "cp", "bytes": "4MiB"}, {"op": "alltoall", "group": "ep", "bytes": "2MiB"}])
    c0, c1 = _job(**kw), _job(rank_order=order, **kw)
    f = build(c0)
    eps0 = T.in_order_placement(c0, f)["j"]
    from topo.model.spec import parse_rank_order
    R0 = T.rank_layout(parse_rank_order("tp-cp-pp-dp"), 8, 2, 2, 2)
    R1 = T.rank_layout(parse_rank_order(order), 8, 2, 2, 2)
    eps1 = np.empty_like(eps0)
    eps1[R1.ravel()] = eps0[R0.ravel()]
    d0, d1 = T.job_demands(c0, f, {"j": eps0}), T.job_demands(c1, f, {"j": eps1})
    k0 = sorted(zip(d0.src.tolist(), d0.dst.tolist(), d0.bytes.tolist()))
    k1 = sorted(zip(d1.src.tolist(), d1.dst.tolist(), d1.bytes.tolist()))
    assert k0 == k1
    assert not np.array_equal(eps0, eps1)
