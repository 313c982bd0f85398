"""The shortcuts of the routing and placement hot paths give what the plain computations give:
max-min runs of identical queue pairs, the per-domain endpoint lists of the placement checker,
and the module boundaries of the routing layer (no routing.lp <-> engine cycle)."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _paths(rng, n_flows, qps, n_links, hops):
    """Queue pairs in flow order: qps rows per flow, some flows with all rows alike (inside a leaf)."""
    rows, qb = [], []
    for f in range(n_flows):
        b = float(rng.integers(1, 9)) * 1e6
        if rng.random() < 0.5:
            p = rng.choice(n_links, hops, replace=False)
            rows += [p] * qps
        else:
            rows += [rng.choice(n_links, hops, replace=False) for _ in range(qps)]
        qb += [b] * qps
    return np.asarray(rows, np.int64), np.asarray(qb)


@pytest.mark.parametrize("sharing", ["max-min", "bytes"])
def test_runs_of_identical_queue_pairs_share_as_the_queue_pairs_one_by_one(sharing):
    from topo.routing.engine import _runs, completion_times
    rng = np.random.default_rng(3)
    path, qb = _paths(rng, 60, 4, 12, 3)
    cap = rng.integers(1, 5, 12).astype(float) * 100.0
    first, mult = _runs(path, qb)
    assert mult.sum() == path.shape[0] and (mult > 1).any() and first.size < path.shape[0]
    t = completion_times(path, cap, qb, 0.9, sharing)
    # the same queue pairs with no two alike next to each other: every run has length 1
    order = np.lexsort((np.arange(path.shape[0]) // 4, np.arange(path.shape[0]) % 4))
    assert _runs(path[order], qb[order])[1].max() == 1
    t_one = completion_times(path[order], cap, qb[order], 0.9, sharing)
    back = np.empty_like(t_one)
    back[order] = t_one
    assert np.all(np.isfinite(t)) and t.max() > 0
    np.testing.assert_allclose(t, back, rtol=1e-12, atol=0)


def test_runs_keep_an_unreachable_queue_pair_unfinished():
    from topo.routing.engine import completion_times
    path = np.array([[0, 1], [0, 1], [2, -1], [2, -1]], np.int64)
    cap = np.array([100.0, 100.0, 0.0])
    t = completion_times(path, cap, np.full(4, 1e6), 1.0, "max-min")
    assert np.isinf(t[2:]).all() and np.isfinite(t[:2]).all()
    assert t[0] == t[1] == pytest.approx(1e6 * 8 / (50e9))


def _maxmin_refilling_everything(path, cap, qb, eff, rounds):
    """Max-min job times as they were computed before the refills were limited to the components that
    lost a queue pair: every round water-fills every active run on the fabric's own link numbering."""
    from topo.routing.engine import MAXMIN_WORK, _runs, waterfill
    first, mult = _runs(path, qb)
    path, qbytes, m = path[first], qb[first], mult.astype(float)
    bps = eff * 1e9 / 8.0
    done, rem = np.zeros(first.size), qbytes.copy()
    active, now, work = rem > 0, 0.0, 0
    for k in range(rounds):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        work += int(mult[idx].sum())
        if k == rounds - 1 or work > MAXMIN_WORK:
            rb = waterfill(path[idx], cap, rem[idx] * m[idx]) / m[idx] * bps
            with np.errstate(divide="ignore", invalid="ignore"):
                done[idx] = np.where(rb > 0, now + rem[idx] / rb, np.inf)
            break
        g = waterfill(path[idx], cap, m[idx]) / m[idx] * bps
        stuck = g <= 0
        done[idx[stuck]] = np.inf
        active[idx[stuck]] = False
        idx, g = idx[~stuck], g[~stuck]
        if idx.size == 0:
            break
        dt_i = rem[idx] / g
        dt = float(dt_i.min())
        fin = dt_i <= dt * (1 + 1e-12)
        done[idx[fin]] = now + dt_i[fin]
        active[idx[fin]] = False
        rem[idx] -= g * dt
        rem[idx[fin]] = 0.0
        now += dt
    return np.repeat(done, mult)


@pytest.mark.parametrize("rounds", [None, 4])
def test_maxmin_refilling_only_changed_components_gives_the_same_bits(rounds):
    from topo.routing.engine import MAXMIN_ROUNDS, completion_times
    rng = np.random.default_rng(11)
    parts, qbs = [], []
    for c in range(5):   # five groups of flows on disjoint links (ids 20c .. 20c+19; 100.. unused)
        p, q = _paths(rng, 12, 3, 20, 3)
        parts.append(p + 20 * c)
        qbs.append(q)
    path = np.concatenate(parts + [np.array([[3, 100, -1], [-1, -1, -1]])])   # a dead link; no link at all
    qb = np.concatenate(qbs + [np.array([1e6, 2e6])])
    qb[[5, 40]] = 0.0
    cap = rng.integers(1, 5, 120).astype(float) * 100.0
    cap[100] = 0.0
    t = completion_times(path, cap, qb, 0.9, "max-min", rounds=rounds)
    ref = _maxmin_refilling_everything(path, cap, qb, 0.9, MAXMIN_ROUNDS if rounds is None else rounds)
    assert np.isinf(t[-2:]).all() and (t[[5, 40]] == 0).all() and np.isfinite(t[:-2]).all()
    assert t.tobytes() == ref.tobytes()


def test_maxmin_refills_only_the_component_that_lost_a_queue_pair():
    """Regression guard (counts, not seconds): C groups of q queue pairs, each group alone on its own
    link, with bytes and capacities such that no two queue pairs end together, take C x q rounds; the
    first water-filling is one event per group (the link freezes all its queue pairs), and each later
    round goes back and replays one event in the one group that lost a queue pair (none once a group
    has ended): C x q events in all. Refilling every active row each round, as before, pops one event
    per group still running in every round."""
    from topo.routing import engine
    C, q = 6, 5
    path = np.repeat(np.arange(C), q)[:, None].astype(np.int64)
    qb = np.tile(np.arange(1, q + 1) * 1e6, C)
    cap = 100.0 + 7.0 * np.arange(C) ** 2
    t = engine.completion_times(path, cap, qb, 1.0, "max-min")
    assert np.unique(t).size == C * q   # no two end together: one round per queue pair
    first, mult = engine._runs(path, qb)
    done, info = engine._maxmin_times_counted(path[first], cap, qb[first], mult, 1e9 / 8, engine.MAXMIN_ROUNDS)
    assert done.tobytes() == t.tobytes()
    rounds, events, undone = int(info[2]), int(info[3]), int(info[4])
    assert rounds == C * q and events == C * q and undone == C * q
    everything = sum(len(set(np.flatnonzero(t > s) // q)) for s in [0.0] + sorted(t)[:-1])
    assert events < everything
    assert t.tobytes() == _maxmin_refilling_everything(path, cap, qb, 1.0, engine.MAXMIN_ROUNDS).tobytes()


def test_domain_members_are_the_endpoints_of_those_domains():
    from topo.model.fabric import build
    from topo.model.spec import load
    from topo.solve.place_check import _domain_members, _Facts
    c = load(ROOT / "examples" / "small.yaml")
    x = _Facts(c, build(c))
    doms = np.unique(x.ep_dom[x.ep_dom >= 0])[[0, -1]]
    got = np.sort(_domain_members(x, doms))
    np.testing.assert_array_equal(got, np.flatnonzero(np.isin(x.ep_dom, doms)))
    assert _domain_members(x, doms[:0]).size == 0


def test_the_lp_builds_on_the_prepared_arrays_not_on_the_engine():
    tree = ast.parse((ROOT / "topo" / "routing" / "lp.py").read_text())
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "topo.routing.engine" not in names and "topo.routing.prepared" in names
    tree = ast.parse((ROOT / "topo" / "routing" / "prepared.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module.startswith("topo.routing")]
    from topo.routing import engine, prepared
    for name in ("prepare", "failure_mask", "_pxn", "Prepared"):   # the engine's names are the same objects
        assert getattr(engine, name) is getattr(prepared, name)


def test_analyze_is_split_into_steps_of_at_most_120_lines():
    from topo.routing import engine
    for fn in (engine.analyze, engine._settings, engine._route_traffic, engine._load_summary, engine._roce_vs_uec,
               engine._run_model):
        assert len(inspect.getsource(fn).splitlines()) <= 120, fn.__name__


def _pods_cluster():
    """A 3-tier Clos of radix-16 switches (several pods) with jobs inside one leaf, inside one
    pod and across pods, under RoCE (so analyze compares with uec-spray job by job)."""
    from conftest import cluster_dict, sw
    d = cluster_dict(n_racks=32, nodes_per_rack=2, accel=8, tiers=[{"switch": sw(16)}] * 3)
    d["transport"] = {"protocol": "roce", "qps_per_connection": 2}
    sizes = [8, 16, 16, 16, 32, 16, 8, 64, 16, 128, 16, 16]
    d["jobs"] = [{"name": f"j{k}", "accelerators": n, "tp": 8,
                  "collectives": [{"op": "allreduce", "group": "dp", "bytes": f"{k + 1}MiB"},
                                  {"op": "alltoall", "group": "tp", "bytes": "1MiB"}]}
                 for k, n in enumerate(sizes)]
    return d


def test_spray_jobs_routed_per_pod_batch_give_the_per_job_loads_and_times(monkeypatch):
    from topo.model.fabric import build
    from topo.model.spec import from_dict
    from topo.routing import engine
    c = from_dict(_pods_cluster())
    f = build(c)
    got = {}
    orig = engine._SprayJobs.batched

    def counted(self, *a, **k):
        out = orig(self, *a, **k)
        got["batched"] = got.get("batched", 0) + len(out)
        return out
    monkeypatch.setattr(engine._SprayJobs, "batched", counted)
    fast = {m: engine.analyze(c, f, routing=m, all_to_all=False) for m in (None, "uec-spray")}
    assert got["batched"] >= 4   # several jobs went through the per-pod batches
    monkeypatch.setattr(engine._SprayJobs, "of", staticmethod(lambda *a: None))   # every job on its own, dense
    for m, a in fast.items():
        b = engine.analyze(c, f, routing=m, all_to_all=False)
        assert a.to_dict() == b.to_dict()
        np.testing.assert_array_equal(a.loads, b.loads)
    assert fast[None].to_dict()["roce_vs_uec"]["uec-spray"]["jobs"]


def test_job_flows_are_shared_and_equal_the_flows_built_afresh():
    from topo.model.fabric import build
    from topo.model.spec import from_dict
    from topo.traffic import demand as T
    c = from_dict(_pods_cluster())
    f = build(c)
    place = T.fit_in_order(c, f)[0]
    a = T.job_demands(c, f, place, efficiency=0.9)
    assert T.job_demands(c, build(c), {k: v.copy() for k, v in place.items()}, efficiency=0.9) is a  # same content
    assert T.job_demands(c, f, place, efficiency=0.8) is not a
    T._flows_kept.clear()
    b = T.job_demands(c, f, place, efficiency=0.9)
    assert b is not a and a.job_names == b.job_names and a.job_time_s == b.job_time_s
    for x in ("src", "dst", "bytes", "job", "rate_gbps"):
        np.testing.assert_array_equal(getattr(a, x), getattr(b, x))
    with pytest.raises(ValueError):
        a.rate_gbps[0] = 1.0   # shared: read-only
    moved = dict(place)
    first = c.file.jobs[0].name
    moved[first] = place[first][::-1].copy()   # another rank order: other flows
    assert T.job_demands(c, f, moved, efficiency=0.9) is not a


@pytest.mark.parametrize("qps,channels", [(1, 1), (2, 3)])
def test_hashed_paths_are_route_s_recorded_paths(qps, channels):
    from topo.model.fabric import build
    from topo.model.spec import from_dict
    from topo.routing.engine import hashed_paths, route
    from topo.traffic.demand import Demands
    c = from_dict(_pods_cluster())
    f = build(c)
    rng = np.random.default_rng(5)
    src = rng.integers(0, f.n_endpoints, 300)
    dst = rng.integers(0, f.n_endpoints, 300)
    d = Demands(src, dst, np.ones(300), np.zeros(300, np.int32), np.ones(300))
    dead = np.zeros(f.n_links, bool)
    dead[np.flatnonzero(f.link_tier == 2)[:3]] = True   # under failures hashed_paths is route() itself
    for failed in (None, dead):
        r = route(f, d, "roce-hash", failed_links=failed, seed=7, qps=qps, channels=channels, record_paths=True)
        qf, qp, un = hashed_paths(f, d, failed_links=failed, seed=7, qps=qps, channels=channels)
        np.testing.assert_array_equal(qf, r.qp_flow)
        np.testing.assert_array_equal(qp, r.qp_path)
        np.testing.assert_array_equal(un, r.flow_unreachable)
        assert (qp >= 0).sum() > 300



@pytest.mark.parametrize("model", ["uec-spray", "fluid"])
def test_sparse_loads_are_route_s_loads(model):
    from topo.model.fabric import build
    from topo.model.spec import from_dict
    from topo.routing.engine import route, sparse_loads
    from topo.traffic.demand import Demands
    c = from_dict(_pods_cluster())
    f = build(c)
    rng = np.random.default_rng(9)
    kept: dict = {}
    for n in (40, 300):   # twice through the same kept buffers
        src, dst = rng.integers(0, f.n_endpoints, n), rng.integers(0, f.n_endpoints, n)
        d = Demands(src, dst, rng.random(n) * 1e6, np.zeros(n, np.int32), rng.random(n) * 100)
        r = route(f, d, model, efficiency=0.9)
        ids, load, un = sparse_loads(f, d, model, efficiency=0.9, kept=kept)
        dense = np.zeros(f.n_links)
        dense[ids] = load
        np.testing.assert_array_equal(dense, r.link_gbps_load)
        np.testing.assert_array_equal(un, r.flow_unreachable)
        assert ids.size and (load != 0).all()
    assert (kept.get("spray") is not None) == (model == "uec-spray")
