"""The max-min completion-time kernel (``maxmin_times``, ext/_routing.pyx): the compiled kernel, its
pure-Python twin and the Python loop of refill rounds it replaced (engine._maxmin_times_loop) give
the same bits, on seeded random instances and on routed queue pairs; a round replays only the
events after the first one that froze a queue pair that ended (a count, not a time); bad calls
are refused before the kernel runs."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from topo.routing import engine
from topo.routing import kernels as _ext
from topo.routing.kernels import KernelArgumentError

from helpers.kernel_cases import random_case

N_CASES = 120
BPS = 0.9e9 / 8


@pytest.fixture
def restore_kernels():
    old = _ext.PURE, engine.STRUCTURAL
    yield
    _ext.PURE, engine.STRUCTURAL = old
    _ext._cache.clear()
    engine._prepared.clear()


def _use(pure: bool):
    _ext._cache.clear()
    _ext.PURE = pure


def random_instance(rng):
    """Runs over a few groups of links (components) with shared bottlenecks: capacities and bytes from
    small sets (ties in levels and in finish times), a dead link, runs with no link, runs with no
    bytes, multiplicities 1..3, and once in a while a run that crosses two groups (joining them)."""
    groups = int(rng.integers(1, 5))
    per = int(rng.integers(2, 7))
    L = groups * per + 1            # the last link is dead
    H = int(rng.integers(1, 5))
    n = int(rng.integers(1, 40))
    path = np.full((n, H), -1, np.int64)
    for p in range(n):
        k = int(rng.integers(0, H + 1)) if rng.random() < 0.9 else 0
        g = int(rng.integers(groups))
        pool = np.arange(g * per, (g + 1) * per)
        if rng.random() < 0.1:
            pool = np.arange(L)                                   # any link, the dead one too
        k = min(k, pool.size)
        if k and rng.random() < 0.3:                              # through the group's shared bottleneck
            rest = pool[pool != g * per]
            path[p, :k] = np.append(g * per, rng.choice(rest, k - 1, replace=False))
        else:
            path[p, :k] = rng.choice(pool, k, replace=False)
    cap = rng.choice([0.0, 100.0, 200.0, 400.0], L, p=[0.05, 0.45, 0.3, 0.2])
    cap[-1] = 0.0
    qb = rng.choice([0.0, 1e6, 2e6, 4e6, 3e6], n, p=[0.1, 0.4, 0.2, 0.2, 0.1])
    mult = rng.integers(1, 4, n)
    return path, cap, qb, mult


def _three(path, cap, qb, mult, rounds):
    """(compiled kernel, pure twin, Python loop) times and the compiled kernel's info."""
    out = []
    for pure in (False, True):
        _use(pure)
        out.append(engine._maxmin_times_counted(path, cap, qb, mult, BPS, rounds))
    _use(False)
    loop = engine._maxmin_times_loop(path, cap, qb, mult, BPS, rounds)
    return out[0][0], out[1][0], loop, out[0][1], out[1][1]


def test_compiled_twin_and_loop_agree_bit_for_bit(restore_kernels, monkeypatch):
    importlib.import_module("topo._routing")      # a broken build fails here, not behind the twin
    seen = {"fallback": 0, "inf": 0, "zero": 0, "components": 0, "tie": 0, "replayed": 0, "mult": 0}
    for seed in range(N_CASES):
        rng = np.random.default_rng(seed)
        path, cap, qb, mult = random_instance(rng)
        for rounds, work in ((engine.MAXMIN_ROUNDS, engine.MAXMIN_WORK), (3, engine.MAXMIN_WORK),
                             (engine.MAXMIN_ROUNDS, int(rng.integers(1, 60)))):
            monkeypatch.setattr(engine, "MAXMIN_WORK", work)
            a, b, ref, info, info_twin = _three(path, cap, qb, mult, rounds)
            where = (seed, rounds, work)
            assert a.tobytes() == ref.tobytes(), where
            assert b.tobytes() == ref.tobytes(), where
            assert info.tobytes() == info_twin.tobytes(), where
            seen["fallback"] += bool(info[1])
            seen["inf"] += bool(np.isinf(a).any())
            seen["zero"] += bool((a == 0).any())
            seen["components"] += info[7] >= 2
            fin = a[np.isfinite(a) & (a > 0)]
            seen["tie"] += np.unique(fin).size < fin.size
            seen["replayed"] += info[3] > info[7]
            seen["mult"] += bool((mult > 1).any())
    # the cases cover what they are meant to (a generator that drifted would make the test vacuous)
    assert all(v >= 10 for v in seen.values()), seen


def test_routed_queue_pairs_same_bits_as_the_loop(restore_kernels, monkeypatch):
    """completion_times on roce-hash queue pairs of small random fabrics with failed links (runs of
    identical queue pairs, renumbered links): the kernel, its twin and the loop agree."""
    engine.STRUCTURAL = False
    for seed in range(0, 40):
        f, d, fail = random_case(seed)
        _use(False)
        r = engine.route(f, d, "roce-hash", failed_links=fail, seed=seed, qps=1 + seed % 3, record_paths=True)
        if r.qp_path.shape[0] == 0:
            continue
        cap = np.where(engine.failure_mask(f, fail), 0.0, f.link_gbps)
        qb = d.bytes[r.qp_flow] / (1 + seed % 3)
        times = []
        for pure in (False, True):
            _use(pure)
            times.append(engine.completion_times(r.qp_path, cap, qb, 0.9, "max-min"))
        _use(False)
        with monkeypatch.context() as m:
            m.setattr(engine, "_maxmin_times", engine._maxmin_times_loop)
            ref = engine.completion_times(r.qp_path, cap, qb, 0.9, "max-min")
        assert times[0].tobytes() == ref.tobytes() == times[1].tobytes(), seed


def test_heaps_several_levels_deep_same_bits_as_the_loop(restore_kernels):
    """Instances whose fill starts with hundreds of links in its heap (several levels of the 8-ary
    heap, deletions and key updates deep inside it): the kernel, its twin and the loop agree."""
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        L, n, H = 300, 700, 3
        path = np.stack([rng.choice(L, H, replace=False) for _ in range(n)]).astype(np.int64)
        path[rng.random(n) < 0.2, H - 1] = -1                   # some runs one hop shorter
        cap = rng.choice([100.0, 200.0, 400.0], L)               # ties in levels
        qb = rng.choice([1e6, 2e6, 3e6], n)                      # ties in finish times
        mult = rng.integers(1, 3, n)
        assert np.unique(path[path >= 0]).size > 1 + 8 + 64      # deeper than two levels below the root
        a, b, ref, info, info_twin = _three(path, cap, qb, mult, engine.MAXMIN_ROUNDS)
        assert a.tobytes() == ref.tobytes() == b.tobytes(), seed
        assert info.tobytes() == info_twin.tobytes(), seed
        assert info[3] > L                                       # refilled: more events than one fill


def _staircase(n):
    """n runs, run i alone on link i (capacity 100 + i) and all on link n (plenty): they freeze in
    the order 0, 1, ..., n - 1 (one event each) and end in the order n - 1, ..., 0."""
    path = np.stack([np.arange(n), np.full(n, n)], axis=1).astype(np.int64)
    cap = np.append(100.0 + np.arange(n), 1e6)
    qb = (n - np.arange(n)) * 1e6
    return path, cap, qb, np.ones(n, np.int64)


@pytest.mark.parametrize("pure", [False, True])
def test_a_round_replays_only_the_events_after_the_cut(pure, restore_kernels):
    """Count guard: in the staircase each round ends the run frozen last, so it goes back one event
    and replays none. n events in all; water-filling the component again each round would pop
    n + (n - 1) + ... + 1."""
    n = 12
    path, cap, qb, mult = _staircase(n)
    _use(pure)
    done, info = engine._maxmin_times_counted(path, cap, qb, mult, BPS, engine.MAXMIN_ROUNDS)
    assert np.all(np.diff(done) < 0)                  # one run ends per round, the last first
    assert int(info[2]) == n and int(info[7]) == 1    # n rounds, one component
    assert int(info[3]) == n and int(info[4]) == n    # events popped, events undone
    assert n < n * (n + 1) // 2
    _use(False)
    assert done.tobytes() == engine._maxmin_times_loop(path, cap, qb, mult, BPS, engine.MAXMIN_ROUNDS).tobytes()


@pytest.mark.parametrize("pure", [False, True])
def test_bad_calls_are_refused(pure, restore_kernels):
    _use(pure)
    K = _ext.kernel("_routing")

    def call(path, mult, qb, cap, bps=BPS, rounds=10):
        n = qb.shape[0]
        K.maxmin_times(path.shape[1], path.ravel(), mult, qb, cap, bps, rounds, 100, np.zeros(n), np.zeros(n),
                       np.zeros(n, np.uint8), np.zeros(K.MAXMIN_INFO))

    path = np.array([[0, 1], [1, -1]], np.int64)
    ok = dict(path=path, mult=np.ones(2, np.int64), qb=np.full(2, 1e6), cap=np.full(2, 100.0))
    call(**ok)
    for name, bad, match in (("path", np.array([[0, -1], [-1, 1]], np.int64), "padding"),
                             ("path", np.array([[0, 2], [1, -1]], np.int64), "path"),
                             ("mult", np.array([1, 0], np.int64), "mult"),
                             ("qb", np.array([1e6, np.nan]), "qbytes"),
                             ("cap", np.array([100.0, -1.0]), "cap"),
                             ("bps", 0.0, "bps"),
                             ("rounds", 0, "rounds")):
        with pytest.raises(KernelArgumentError, match=match):
            call(**{**ok, name: bad})
