"""The vectorised code of the reroute stage against the per-pattern, per-size and per-value code it
replaced (tests/helpers/collectives_ref.py), on seeded cases: the same results, bit for bit."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import cluster_dict
from helpers import collectives_ref as ref
from topo.model.fabric import build
from topo.model.spec import from_dict
from topo.pipeline import _six_digits
from topo.routing import collectives as C
from topo.traffic.demand import fit_in_order, rank_groups


def _cluster(family="clos", protocol="roce"):
    d = cluster_dict(n_racks=4, nodes_per_rack=2, family=family)
    d["transport"] = {"protocol": protocol, "qps_per_channel": 2, "channels": 2}
    d["jobs"] = [{"name": "a", "accelerators": 32, "tp": 8,
                  "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1GiB"},
                                  {"op": "alltoall", "group": "tp", "bytes": "64MiB"}]},
                 {"name": "b", "accelerators": 16, "tp": 4,
                  "collectives": [{"op": "allgather", "group": "dp", "bytes": "256MiB"}]},
                 {"name": "c", "accelerators": 8, "tp": 8,
                  "collectives": [{"op": "allreduce", "group": "tp", "bytes": "16MiB"}]}]
    return from_dict(d)


def _patterns(c, f):
    """Every (pattern key, src, dst) the placed jobs' collectives route, over all algorithms."""
    from topo.model.spec import COLLECTIVE_ALGORITHMS
    out = []
    for j, eps in C._group_arrays(c, f, fit_in_order(c, f)[0]):
        for col in j.collectives:
            G = eps[rank_groups(j, col.group)]
            for a in COLLECTIVE_ALGORITHMS[col.op]:
                for _, _, key, make in C.phases(col.op, a, G, f.ep_domain) or []:
                    if make is not None:
                        out.append((key, *make()))
    return out


@pytest.mark.parametrize("family,model", [("clos", "roce-hash"), ("clos", "uec-spray"), ("clos", "fluid"),
                                          ("rail_optimized", "roce-hash"), ("rail_only", "roce-hash")])
def test_each_pattern_gives_what_the_per_pattern_code_gave(family, model):
    c = _cluster(family)
    f = build(c)
    assert (f.ep_domain >= 0).any()   # scale-up domains: patterns wholly inside one are among the cases
    pats = C._Patterns(c, f, model, 7, 2, 2, 0.95, None)
    olds = C._Patterns(c, f, model, 7, 2, 2, 0.95, None)
    cases = _patterns(c, f)
    inside = 0
    for _, src, dst in cases:
        dom = f.ep_domain
        keep = src != dst
        inside += bool(keep.any() and ((dom[src[keep]] == dom[dst[keep]]) & (dom[src[keep]] >= 0)).all())
        assert pats._compute(np.asarray(src, np.int64), np.asarray(dst, np.int64)) == ref.compute(olds, src, dst)
        assert not pats.counts.any()   # the scratch handed back all zero
    assert inside > 0 and len(cases) > inside


def test_min_maxmin_rate_with_a_scratch_counter_is_the_sorted_one():
    rng = np.random.default_rng(3)
    cap = rng.choice([100.0, 400.0, 800.0, 0.0], 50)
    counts = np.zeros(50, np.int64)
    for _ in range(200):
        paths = rng.integers(-1, 50, (int(rng.integers(0, 30)), 6))
        assert C.min_maxmin_rate(paths, cap, counts) == ref.min_maxmin_rate(paths, cap)
        assert not counts.any()


class _S:
    def __init__(self, alpha, inv_rate):
        self.alpha_s, self.inv_rate = alpha, inv_rate

    def time(self, S):
        beta = S * self.inv_rate
        return self.alpha_s + beta, self.alpha_s, beta


def test_size_sweep_at_once_is_the_per_size_loop():
    rng = np.random.default_rng(5)
    sizes = C.size_range("1KiB..16GiB")
    allowed = ["ring", "tree", "recursive_doubling", "halving_doubling", "hierarchical"]
    for trial in range(60):
        k = int(rng.integers(1, 6))
        names = list(rng.permutation(allowed)[:k])
        # ties on purpose (equal schedules), unreachable ones (inf) and zero-alpha ones
        vals = [(float(rng.choice([0.0, 1e-5, 2e-5, math.inf])), float(rng.choice([1e-11, 2e-11, math.inf])))
                for _ in names]
        scheds = {a: _S(*v) for a, v in zip(names, vals)}
        for op, n in (("allreduce", 8), ("allgather", 5)):
            got = C._sweep(op, n, sizes, scheds, allowed)
            assert json.dumps(got) == json.dumps(ref.sweep(op, n, sizes, scheds, allowed)), trial


def test_link_utilisation_digits_are_the_per_value_ones():
    rng = np.random.default_rng(11)
    for n in (0, 1, 1000):
        u = rng.choice([0.0, -0.0, np.nan, 0.1234567891, 1.0 / 3.0, 2.5e-9, 7.0], n)
        u = np.where(rng.random(n) < 0.3, rng.random(n), u)
        got = _six_digits(u).tolist()
        want = ref.six_digits(u)
        assert np.asarray(got).view(np.int64).tolist() == np.asarray(want, np.float64).view(np.int64).tolist()


def test_top_k_from_block_maxima_is_the_full_partition():
    from topo.routing.engine import _TOP_BLOCK, top_k
    rng = np.random.default_rng(13)
    for n in (0, 7, 4 * _TOP_BLOCK, 4 * _TOP_BLOCK + 1, 9 * _TOP_BLOCK + 17):
        for trial in range(12):
            v = rng.choice([0.0, 0.5, 1.0, -1.0, np.inf, -np.inf], n) if trial % 2 else rng.random(n)
            if trial % 3 == 0 and n:
                v[rng.integers(0, n)] = np.nan
            for k in (0, 1, 10, 10 * _TOP_BLOCK):
                assert top_k(v, k).tolist() == ref.top_k(v, k).tolist(), (n, trial, k)


def test_all_to_all_of_a_healthy_fabric_is_kept_once_for_none_and_for_a_mask_of_no_failures():
    from topo.routing import engine as E
    c = _cluster()
    f = build(c)
    healthy = np.zeros(f.n_links, bool)
    E._a2a_kept.clear()
    by_mask = E._all_to_all_by_class_of(f, healthy)
    by_none = E._all_to_all_by_class_of(f, None)
    assert json.dumps(by_mask) == json.dumps(by_none)   # computed apart: the same figures
    assert json.dumps(E._all_to_all_by_class(f, None)) == json.dumps(by_none)
    assert list(E._a2a_kept[f]) == [b""]
    assert json.dumps(E._all_to_all_by_class(f, healthy)) == json.dumps(by_mask)
    assert list(E._a2a_kept[f]) == [b""]   # the same entry: not routed again
    dead = healthy.copy()
    dead[[0, 1]] = True
    E._all_to_all_by_class(f, dead)
    assert list(E._a2a_kept[f]) == [bytes(np.packbits(dead))]


def test_job_flows_key_tells_apart_placements_with_the_same_ids_in_all():
    from topo.traffic import demand as T
    c = _cluster()
    f = build(c)
    place = {k: np.asarray(v, np.int64) for k, v in fit_in_order(c, f)[0].items()}
    key = T._flows_key(c, f, place)
    assert T._flows_key(c, f, {k: v.tolist() for k, v in place.items()}) == key   # the content, not the objects
    a, b = c.file.jobs[0].name, c.file.jobs[1].name
    shifted = dict(place)
    shifted[a], shifted[b] = place[a][:-1], np.concatenate([place[a][-1:], place[b]])   # same ids, other split
    assert T._flows_key(c, f, shifted) != key
    assert T._flows_key(c, f, {k: v for k, v in place.items() if k != a}) != key
