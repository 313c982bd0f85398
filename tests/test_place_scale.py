"""Placement's speed-ups for large clusters, each against the plain computation it replaces on small
seeded instances: units per cell kept up to date as jobs take and give back servers, first fit
that skips domains that can no longer take a unit, the (pods, leaves) dynamic programmes cut at the
job's size, and the pod model's hints written as arrays."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from topo.model.fabric import build
from topo.model.spec import from_dict
from topo.solve import placement as P


def _sw(radix):
    return {"radix": radix, "port_gbps": 400, "power_w": 0, "cost_usd": 0}


def _cluster(seed):
    """32 servers of 2 accelerators on a 3-tier Clos of radix-8 switches (16 leaves of 2 servers,
    4 pods), racks of 2, some busy, tight power in some racks, jobs of both allocation units
    with pins and forbids."""
    rng = np.random.default_rng(seed)
    scaleup = int(rng.choice([1, 2]))
    jobs = []
    for k in range(int(rng.integers(4, 12))):
        size = int(rng.choice([2, 4, 6, 8, 12, 16]))
        tp = int(rng.choice([1, 2]))
        job = {"name": f"j{k}", "accelerators": size, "tp": tp, "priority": int(rng.integers(0, 2)),
               "collectives": [{"op": "allreduce", "group": "dp", "bytes": f"{int(rng.integers(1, 9))}GiB"}]}
        u = rng.random()
        if u < 0.2:
            job["pin_racks"] = [f"rack{r:03d}" for r in sorted(rng.choice(16, size=8, replace=False))]
        elif u < 0.3:
            job["forbid_pods"] = [int(rng.integers(0, 4))]
        jobs.append(job)
    busy = [f"n{s:04d}" for s in sorted(rng.choice(32, size=int(rng.integers(0, 8)), replace=False))]
    return from_dict({
        "version": 1, "name": "scale",
        "node_types": [{"name": "g", "accelerator": "H100", "accelerators": 2, "nics": 2, "nic_gbps": 400,
                        "power_busy_kw": 2.0, "power_idle_kw": 0.5, "scaleup": {"size": scaleup}}],
        "racks": [{"name": "r", "count": 16, "nodes": {"g": 2}, "power_limit_kw": float(rng.choice([100.0, 3.2]))}],
        "fabric": {"family": "clos", "tiers": [{"switch": _sw(8)}, {"switch": _sw(8)}, {"switch": _sw(8)}]},
        "jobs": jobs, "busy_nodes": busy, "goals": {"time_limit_s": 2, "seed": 0, "workers": 1},
    })


def _fresh_cell_units(st, j):
    """Units per cell counted from scratch (the plain computation)."""
    pb = st.pb
    per_dom = (st.dom_free == pb.d_len).astype(np.int64) if j.domain_job else st.dom_free // j.chunk
    cu = np.bincount(pb.d_cell, weights=per_dom, minlength=pb.C).astype(np.int64)
    cu = np.minimum(cu, st.pcap[pb.c_rack] // j.chunk)
    return np.where(j.allowed_rack[pb.c_rack] & j.allowed_pod[pb.c_pod], cu, 0)


@pytest.mark.parametrize("seed", range(6))
def test_units_per_cell_follow_every_take_and_release(seed):
    c = _cluster(seed)
    pb = P._Problem(c, build(c))
    assert pb.n_pods > 1 and pb.G > 4
    st = P._State(pb)
    rng = np.random.default_rng(seed)
    held = []
    for step in range(40):
        j = pb.jobs[int(rng.integers(len(pb.jobs)))]
        assert np.array_equal(st.cell_units(j), _fresh_cell_units(st, j)), step
        for p in range(pb.n_pods):
            want = np.where(pb.c_pod == p, _fresh_cell_units(st, j), 0)
            assert np.array_equal(st.cell_units_pod(j, p), want)
        free = np.flatnonzero(st.free)
        if held and (free.size == 0 or rng.random() < 0.35):
            st.release(held.pop(int(rng.integers(len(held)))))
        elif free.size:
            s = rng.choice(free, size=min(free.size, int(rng.integers(1, 4))), replace=False)
            st.take(np.sort(s), 0)
            held.append(np.sort(s))
        if step == 20:   # a copy starts its own counts
            st = st.copy()


def _fill_cell_unit_by_unit(st, j, cell, units):
    """Units taken one at a time, each while the rack can power it (the plain computation)."""
    pb = st.pb
    rack = int(pb.c_rack[cell])
    got = []
    if j.domain_job:
        for d in pb.cell_doms[cell]:
            if units == 0 or st.pcap[rack] < j.chunk:
                break
            if st.dom_free[d] == pb.d_len[d]:
                s = np.arange(pb.d_first[d], pb.d_first[d] + pb.d_len[d])
                st.take(s, j.idx)
                got.append(s)
                units -= 1
    else:
        cand = sorted((d for d in pb.cell_doms[cell] if st.dom_free[d] >= j.chunk), key=lambda d: (st.dom_free[d], d))
        for d in cand:
            while units > 0 and st.dom_free[d] >= j.chunk and st.pcap[rack] >= j.chunk:
                lo = pb.d_first[d]
                fr = lo + np.flatnonzero(st.free[lo:lo + pb.d_len[d]])[: j.chunk]
                st.take(fr, j.idx)
                got.append(fr)
                units -= 1
            if units == 0 or st.pcap[rack] < j.chunk:
                break
    return np.concatenate(got) if got else np.zeros(0, np.int64)


@pytest.mark.parametrize("seed", range(8))
def test_filling_a_cell_at_once_equals_unit_by_unit(seed):
    c = _cluster(400 + seed)
    pb = P._Problem(c, build(c))
    a, b = P._State(pb), P._State(pb)
    rng = np.random.default_rng(seed)
    for _ in range(30):
        j = pb.jobs[int(rng.integers(len(pb.jobs)))]
        cell, units = int(rng.integers(pb.C)), int(rng.integers(1, 5))
        got, want = a.fill_cell(j, cell, units), _fill_cell_unit_by_unit(b, j, cell, units)
        assert np.array_equal(got, want)
        assert np.array_equal(a.free, b.free) and np.array_equal(a.pcap, b.pcap)
        assert np.array_equal(a.dom_free, b.dom_free) and np.array_equal(a.owner, b.owner)


def _first_fit_full_scan(pb):
    """File-order first fit scanning every domain for every job (the plain computation)."""
    st = P._State(pb)
    placed = P._place_fixed(pb, st)
    for j in pb.jobs:
        if j.fixed is not None:
            continue
        ok = j.allowed_rack[pb.s_rack[pb.d_first]] & j.allowed_pod[pb.g_pod[pb.d_group]]
        need, got = j.units, []
        for d in np.flatnonzero(ok):
            rack, lo = int(pb.s_rack[pb.d_first[d]]), int(pb.d_first[d])
            if need and j.domain_job:
                if st.dom_free[d] == pb.d_len[d] and st.pcap[rack] >= j.chunk:
                    s = np.arange(lo, lo + pb.d_len[d])
                    st.take(s, j.idx)
                    got.append(s)
                    need -= 1
                continue
            while need and st.dom_free[d] >= j.chunk and st.pcap[rack] >= j.chunk:
                s = lo + np.flatnonzero(st.free[lo:lo + pb.d_len[d]])[: j.chunk]
                st.take(s, j.idx)
                got.append(s)
                need -= 1
        if need == 0:
            placed[j.idx] = np.concatenate(got)
        elif got:
            st.release(np.concatenate(got))
    return placed


@pytest.mark.parametrize("seed", range(10))
def test_first_fit_equals_a_full_scan(seed):
    c = _cluster(100 + seed)
    pb = P._Problem(c, build(c))
    got, want = P._first_fit(pb), _first_fit_full_scan(pb)
    assert sorted(got) == sorted(want)
    for k in want:
        assert np.array_equal(got[k], want[k])


def _leaf_pod_brute(pb, gu, units):
    """min of A_LEAF (l - 1) + A_POD (k - 1) over every set of leaves holding ``units``."""
    leaves = [g for g in range(pb.G) if gu[g] > 0]
    best = None
    for n in range(1, len(leaves) + 1):
        for sub in itertools.combinations(leaves, n):
            if sum(int(gu[g]) for g in sub) >= units:
                k = len({int(pb.g_pod[g]) for g in sub})
                cost = P.A_LEAF * (n - 1) + P.A_POD * (k - 1)
                best = cost if best is None else min(best, cost)
        if best is not None and P.A_LEAF * (n - 1) >= best:
            break
    return best


@pytest.mark.parametrize("seed", range(6))
def test_cheapest_leaves_and_pods_equal_brute_force(seed):
    c = _cluster(200 + seed)
    pb = P._Problem(c, build(c))
    rng = np.random.default_rng(seed)
    for _ in range(6):
        gu = np.where(rng.random(pb.G) < 0.7, rng.integers(0, 4, pb.G), 0).astype(np.int64)
        for units in (1, 2, 3, 5, 8, int(gu.sum()), int(gu.sum()) + 1):
            want = _leaf_pod_brute(pb, gu, units)
            for w in (1, 7):
                got = P._leaf_pod_min(pb, gu, units, w)
                assert got == (None if want is None else w * want), (units, w)


@pytest.mark.parametrize("seed", range(6))
def test_best_single_reaches_the_cheapest_leaves_and_pods(seed):
    """The job alone on what is free, by the backtracking programme: its leaves and pods cost what
    the bound's programme says is cheapest."""
    c = _cluster(300 + seed)
    pb = P._Problem(c, build(c))
    st = P._State(pb)
    for j in pb.jobs:
        if j.weight == 0:
            continue
        gu = np.bincount(pb.c_group, weights=st.cell_units(j), minlength=pb.G).astype(np.int64)
        want = P._leaf_pod_min(pb, gu, j.units, j.weight)
        s = P._best_single(pb, st, j)
        if s is None:
            continue
        doms = pb.s_dom[s]
        leaves = np.unique(pb.d_group[doms]).size
        pods = np.unique(pb.g_pod[pb.d_group[doms]]).size
        assert j.weight * (P.A_LEAF * (leaves - 1) + P.A_POD * (pods - 1)) == want
        st.release(s)


def test_hints_as_arrays_equal_one_hint_per_variable():
    from ortools.sat.python import cp_model
    models = [cp_model.CpModel() for _ in range(2)]
    pairs = []
    for m in models:
        xs = [m.NewIntVar(0, 9, f"x{i}") for i in range(5)] + [m.NewBoolVar(f"b{i}") for i in range(3)]
        pairs.append(xs)
    vals = [3, 0, 9, 1, 2, 1, 0, 1]
    for x, v in zip(pairs[0], vals):
        models[0].AddHint(x, v)
    P._add_hints(models[1], [x.Index() for x in pairs[1]], vals)
    assert str(models[0].Proto()) == str(models[1].Proto())
