"""uec-spray spreading of only the masses that are not zero gives, bit for bit, the loads of the
spreading over the whole (slot, leaf) matrices; the reference below is that earlier function."""
from __future__ import annotations

import numpy as np
import pytest

from topo.model.fabric import fabric_from_arrays
from topo.routing import engine
from topo.routing.clos import _spray_tables, spread_spray
from topo.traffic.demand import Demands


def _spread_whole(fabric, plan, agg, load):
    """The spreading over the whole matrices, every pod and every link (the earlier spread_spray)."""
    NL, NS = plan.n_leaves, plan.n_slots
    if NL == 0 or not agg.any():
        return
    T = _spray_tables(fabric, plan)
    upm, inpod = agg[:NL], agg[NL:2 * NL]
    pd = agg[2 * NL:].reshape(NS, NL)
    idx, li, div = T["lu"]
    load[idx] += upm[li] / div
    if "pods" not in T:
        return
    perm, bounds, has = T["pods"]
    M = np.add.reduceat(pd[:, perm], bounds, axis=1) * has
    src_pod, ok = T["cross"]
    crossout = np.bincount(src_pod, weights=M.T[ok], minlength=plan.n_pods)
    idx, sp_pod, div = T["su"]
    load[idx] += crossout[sp_pod] / div
    if "x" in T:
        W, groups, xl, xr, q_of, div = T["x"]
        held = np.zeros((W.shape[0], NS))
        for xs, pods_c in groups:
            have = pods_c >= 0
            Mc = np.zeros((NS, NS))
            Mc[:, have] = M[:, pods_c[have]]
            held[xs] = np.einsum("ij,jk->ik", W[xs], Mc)
        load[xl] += held[xr, q_of] / div
    for Fq, lq, nq, bq, idx in T["down"]:
        down = inpod[lq][None, :] / nq + np.einsum("ij,jk->ik", Fq, pd[:, lq])
        load[idx] += np.repeat(down / bq, bq, axis=1)


def _clos(rng):
    """A random regular Clos: 1-2 planes of 1-4 pods (leaves per pod and leaf-spine bundles of 1-3 differ
    by pod, 1-5 spines), super-spines each on one spine of every pod of its plane with bundles of 1-2, 1-3
    endpoints per leaf; link order shuffled."""
    planes, pods, spp = int(rng.integers(1, 3)), int(rng.integers(1, 5)), int(rng.integers(1, 6))
    sup = spp * int(rng.integers(1, 3)) if pods > 1 else 0
    per_leaf = int(rng.integers(1, 4))
    lpp = rng.integers(1, 4, (planes, pods))
    n_leaf = int(lpp.sum())
    E = n_leaf * per_leaf
    nxt = iter(range(E, E + n_leaf + planes * pods * spp + planes * sup))
    lo, hi, tier = [], [], {}
    ep = iter(range(E))
    for p in range(planes):
        spines = [[next(nxt) for _ in range(spp)] for _ in range(pods)]
        for d in range(pods):
            b1 = int(rng.integers(1, 4))
            for _ in range(int(lpp[p, d])):
                leaf = next(nxt)
                tier[leaf] = 1
                for _ in range(per_leaf):
                    lo.append(next(ep)), hi.append(leaf)
                for s in spines[d]:
                    tier[s] = 2
                    lo += [leaf] * b1
                    hi += [s] * b1
        for x in range(sup):
            su = next(nxt)
            tier[su] = 3
            for d in range(pods):
                b2 = int(rng.integers(1, 3))
                lo += [spines[d][x % spp]] * b2
                hi += [su] * b2
    n = E + len(tier)
    t = np.zeros(n, np.int8)
    t[list(tier)] = list(tier.values())
    o = rng.permutation(len(lo))
    lo, hi = np.asarray(lo)[o], np.asarray(hi)[o]
    return fabric_from_arrays(E, lo, hi, rng.choice([100.0, 400.0], lo.size), t, family="custom")


def _plan(f):
    P = engine.prepare(f, np.zeros(f.n_links, bool))
    plan = engine.clos_plan(f, P)
    assert plan is not None
    return plan


def _masses(rng, plan, kind):
    """Aggregated masses as the kernel lays them out: per leaf up, per leaf in-pod, per (source
    slot, leaf) cross-pod; all entries, a few, or a few without cross-pod mass."""
    NL = plan.n_leaves
    agg = np.zeros((2 + plan.n_slots) * NL)
    if kind == "all":
        agg[:] = rng.random(agg.size) * 1e3
    else:
        pool = agg.size if kind == "few" else 2 * NL
        at = rng.choice(pool, size=min(int(rng.integers(1, 6)), pool), replace=False)
        agg[at] = rng.random(at.size) * 1e3
    return agg


def _same_bits(a, b):
    assert np.array_equal(a.view(np.int64), b.view(np.int64))


@pytest.mark.parametrize("seed", range(30))
def test_spreading_the_nonzero_masses_gives_the_same_bits(seed):
    rng = np.random.default_rng(seed)
    f = _clos(rng)
    plan = _plan(f)
    for kind in ("all", "few", "few", "in-pod", "in-pod"):
        agg = _masses(rng, plan, kind)
        start = np.where(rng.random(f.n_links) < 0.5, rng.random(f.n_links) * 10, 0.0)
        new, old = start.copy(), start.copy()
        spread_spray(f, plan, agg, new)
        _spread_whole(f, plan, agg, old)
        _same_bits(new, old)
        assert kind == "in-pod" or not np.array_equal(new, start) or not agg.any()


def test_the_random_fabrics_have_cross_pod_paths():
    """Several planes, several pods with super-spines, and bundles: the cases above reach every part."""
    planes = pods = bundles = 0
    for seed in range(30):
        plan = _plan(_clos(np.random.default_rng(seed)))
        planes += np.unique(plan.comp[plan.leaf_idx >= 0]).size > 1
        pods += plan.n_pods > plan.comp.max() + 1 and plan.xd_lnk.size > 0
        bundles += int((plan.pod_b1 > 1).any())
    assert planes >= 5 and pods >= 10 and bundles >= 10


@pytest.mark.parametrize("seed", range(12))
def test_route_uec_spray_loads_are_those_of_the_whole_matrices(seed, monkeypatch):
    """route() under uec-spray, its masses from the kernel: the same link loads and bytes."""
    rng = np.random.default_rng(100 + seed)
    f = _clos(rng)
    n = int(rng.integers(1, 60))
    d = Demands(rng.integers(0, f.n_endpoints, n), rng.integers(0, f.n_endpoints, n),
                rng.random(n) * 1e9, np.full(n, -1, np.int32), rng.random(n) * 100)
    calls = []
    monkeypatch.setattr(engine, "spread_spray", lambda *a: calls.append(1) or spread_spray(*a))
    new = engine.route(f, d, "uec-spray")
    monkeypatch.setattr(engine, "spread_spray", _spread_whole)
    old = engine.route(f, d, "uec-spray")
    assert calls
    _same_bits(new.link_gbps_load, old.link_gbps_load)
    _same_bits(new.link_bytes, old.link_bytes)
