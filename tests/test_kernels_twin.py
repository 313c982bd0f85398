"""Compiled routing kernels against their pure-Python twins on seeded random fabrics."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from topo.routing import engine as routing
from topo.model.fabric import fabric_from_arrays
from topo.traffic.demand import Demands

import topo.routing.pure._routing as twin
from helpers.kernel_cases import close as _close, pack, random_case

N_FABRICS = 100


def compiled():
    """The compiled module, imported directly: a broken build fails here."""
    return importlib.import_module("topo._routing")


def test_compiled_module_is_built():
    mod = compiled()
    assert mod.__file__.endswith((".so", ".pyd"))
    for seed, fid, q, node in [(0, 0, 0, 0), (7, 123456789, 3, 99), (2**63, 5, 1, 2**40)]:
        assert mod.hash_hop(seed, fid, q, node) == twin.hash_hop(seed, fid, q, node)


def _swap(pure: bool):
    from topo.routing import kernels as _ext
    _ext._cache.clear()
    _ext.PURE = pure
    routing._prepared.clear()


@pytest.fixture
def both():
    # the general kernels: regular Clos cases would otherwise take the structural path
    # (compared with its own twin in test_routing_clos)
    old = __import__("topo.routing.kernels", fromlist=["PURE"]).PURE
    routing.STRUCTURAL = False
    yield
    routing.STRUCTURAL = True
    _swap(old)


@pytest.mark.parametrize("model", ["fluid", "wcmp", "uec-spray", "roce-hash"])
def test_route_twin_on_random_fabrics(model, both):
    compiled()
    for seed in range(N_FABRICS):
        f, d, fail = random_case(seed)
        out = []
        for pure in (False, True):
            _swap(pure)
            r = routing.route(f, d, model, failed_links=fail, seed=seed, qps=1 + seed % 3,
                              record_paths=model == "roce-hash")
            out.append(r)
        a, b = out
        assert _close(a.link_gbps_load, b.link_gbps_load), seed
        assert _close(a.link_bytes, b.link_bytes), seed
        assert _close(a.flow_unreachable, b.flow_unreachable), seed
        if model == "roce-hash":
            assert (a.qp_path == b.qp_path).all(), seed


@pytest.mark.parametrize("model", ["fluid", "wcmp", "uec-spray"])
def test_uniform_twin_on_random_fabrics(model, both):
    for seed in range(0, N_FABRICS, 4):
        f, _, fail = random_case(seed)
        out = []
        for pure in (False, True):
            _swap(pure)
            out.append(routing.uniform_loads(f, model, 1.0, failed_links=fail).link_gbps_load)
        assert _close(*out), seed


def test_waterfill_twin(both):
    for seed in range(N_FABRICS):
        f, d, fail = random_case(seed)
        _swap(False)
        r = routing.route(f, d, "roce-hash", failed_links=fail, seed=seed, qps=2, record_paths=True)
        cap = np.where(routing.failure_mask(f, fail), 0.0, f.link_gbps)
        w = np.random.default_rng(seed).random(r.qp_path.shape[0]) + 0.1 if seed % 2 else None
        rates = []
        for pure in (False, True):
            _swap(pure)
            rates.append(routing.waterfill(r.qp_path, cap, w))
        assert _close(*rates), seed
        # feasibility and max-min: no link over capacity; every path has a saturated link
        a = rates[0]
        if a.size:
            P = r.qp_path
            load = np.zeros(f.n_links)
            for p, x in zip(P, a):
                load[p[p >= 0]] += x
            assert (load <= cap * (1 + 1e-9) + 1e-9).all()
            sat = load >= cap * (1 - 1e-9)
            for p in P:
                assert sat[p[p >= 0]].any()


@pytest.mark.parametrize("model", ["fluid", "wcmp", "uec-spray", "roce-hash"])
@pytest.mark.parametrize("pure", [False, True])
def test_bytes_carried_in_the_same_pass_equal_a_routing_of_the_bytes(model, pure, both):
    # link_bytes (the second weight, routed beside the rates) equals routing the bytes as rates;
    # some flows have zero rate but bytes, which the fluid kernels route in a second pass
    _swap(pure)
    for seed in range(0, N_FABRICS, 5):
        f, d, fail = random_case(seed)
        rate = np.where(np.arange(d.n) % 4 == 3, 0.0, d.rate_gbps) if seed % 2 else d.rate_gbps
        d = Demands(d.src, d.dst, d.bytes, d.job, rate)
        r = routing.route(f, d, model, failed_links=fail, seed=seed, qps=1 + seed % 3)
        as_rate = Demands(d.src, d.dst, d.bytes, d.job, d.bytes * 8.0 / 1e9)
        b = routing.route(f, as_rate, model, failed_links=fail, seed=seed, qps=1 + seed % 3)
        assert _close(r.link_bytes, b.link_gbps_load * 1e9 / 8.0), seed


def test_bucket_links_twin():
    mod = compiled()
    for seed in range(N_FABRICS):
        rng = np.random.default_rng(seed)
        H, nq, L = int(rng.integers(1, 7)), int(rng.integers(0, 40)), int(rng.integers(1, 30))
        flat = rng.integers(-1, L, nq * H).astype(np.int64)
        ptr = np.zeros(L + 1, np.int64)
        np.cumsum(np.bincount(flat[flat >= 0], minlength=L), out=ptr[1:])
        out = []
        for m in (mod, twin):
            cur, qp = ptr[:-1].copy(), np.full(int((flat >= 0).sum()), -1, np.int64)
            m.bucket_links(flat, H, cur, qp)
            assert (cur == ptr[1:]).all()
            out.append(qp)
        assert (out[0] == out[1]).all(), seed
        for l in range(L):  # every entry of row l is a queue pair whose path uses l, in order
            row = out[0][ptr[l]:ptr[l + 1]]
            assert (np.diff(row) >= 0).all() and all(l in flat[q * H:(q + 1) * H] for q in row)


# --- route_fluid's blocks of destination groups on several threads --------------------------------
def random_regular_fabric(n_sw, degree, hosts, seed, dual=False):
    """A Jellyfish-style fabric: a random regular switch graph (no symmetry), hosts per switch
    (with ``dual``, each also on the next switch)."""
    import networkx as nx
    G = nx.random_regular_graph(degree, n_sw, seed=seed)
    a = np.array([u for u, _ in G.edges()], np.int64)
    b = np.array([v for _, v in G.edges()], np.int64)
    E = n_sw * hosts
    ep = np.arange(E)
    lo = np.concatenate([ep, ep, E + a] if dual else [ep, E + a])
    hi = np.concatenate([E + ep // hosts, E + (ep // hosts + 1) % n_sw, E + b] if dual else [E + ep // hosts, E + b])
    tier = np.concatenate([np.zeros(E), np.ones(n_sw)]).astype(np.int8)
    gbps = np.random.default_rng(seed).choice([100.0, 400.0], lo.shape[0])
    return fabric_from_arrays(E, lo, hi, gbps, tier, family="custom")


def test_fluid_blocks_depend_on_the_groups_only():
    mod = compiled()
    assert (mod.fluid_blocks(np.array([0, 3, 3, 5], np.int64)) == [0, 3]).all()     # few groups: one block
    g_ptr = np.concatenate([[0], np.cumsum(np.tile([2, 0, 1], 100))]).astype(np.int64)   # 200 busy of 300
    b = mod.fluid_blocks(g_ptr)
    assert b[0] == 0 and b[-1] == 300 and (np.diff(b) > 0).all() and b.shape[0] - 1 == mod.FLUID_BLOCKS
    busy = np.diff(g_ptr) > 0
    per = [int(busy[lo:hi].sum()) for lo, hi in zip(b[:-1], b[1:])]
    assert max(per) - min(per) <= 1


@pytest.mark.parametrize("dual", [False, True])
@pytest.mark.parametrize("model", ["fluid", "wcmp", "uec-spray"])
def test_fluid_loads_are_the_same_bits_on_any_number_of_threads(model, dual, both, monkeypatch):
    # 96 destination groups: several blocks; flows and the uniform all-to-all, healthy and with
    # failures; 1, 2 and 3 threads give identical bytes, and the twin agrees to rounding (threads
    # for any work, however small)
    from topo.routing import kernels as _ext
    monkeypatch.setattr(_ext, "PARALLEL_WORK", 0.0)
    f = random_regular_fabric(96, 4, 2, seed=5, dual=dual)
    assert compiled().fluid_blocks(np.arange(97, dtype=np.int64)).shape[0] - 1 > 1
    rng = np.random.default_rng(7)
    n = 1200
    src, dst = rng.integers(0, f.n_endpoints, n), rng.integers(0, f.n_endpoints, n)
    rate = rng.random(n) * 10
    d = Demands(src, dst, rate * 1e8 * rng.choice([1.0, 3.0], n), np.full(n, -1, np.int32), rate)
    fail = rng.choice(f.n_links, 6, replace=False)
    for fl in (None, fail):
        out = []
        for t in ("1", "2", "3"):
            monkeypatch.setenv("TOPO_THREADS", t)
            _swap(False)
            r = routing.route(f, d, model, failed_links=fl)
            u = routing.uniform_loads(f, model, 1.0, failed_links=fl, symmetry=False)
            out.append((r.link_gbps_load.tobytes(), r.link_bytes.tobytes(), r.flow_unreachable.tobytes(),
                        u.link_gbps_load.tobytes()))
        assert out[0] == out[1] == out[2]
        _swap(True)
        r2 = routing.route(f, d, model, failed_links=fl)
        u2 = routing.uniform_loads(f, model, 1.0, failed_links=fl, symmetry=False)
        assert _close(np.frombuffer(out[0][0]), r2.link_gbps_load)
        assert _close(np.frombuffer(out[0][1]), r2.link_bytes)
        assert _close(np.frombuffer(out[0][3]), u2.link_gbps_load)


def test_fluid_blocks_report_a_destination_outside_its_group(both, monkeypatch):
    # the check that every destination shares its group's homes, in the parallel path: the
    # first bad block's flow is named whatever the threads
    f = random_regular_fabric(96, 4, 2, seed=5, dual=True)
    E = f.n_endpoints
    d = Demands(np.arange(E), (np.arange(E) + 7) % E, np.full(E, 1e9), np.full(E, -1, np.int32), np.ones(E))
    from topo.routing import kernels as _ext
    calls = []
    real = _ext.Checked.__getattr__

    def spy(self, attr):
        fn = real(self, attr)
        if attr != "route_fluid":
            return fn
        return lambda *a: (calls.append(list(a)), fn(*a))[1]
    monkeypatch.setattr(_ext.Checked, "__getattr__", spy)
    _swap(False)
    routing.route(f, d, "fluid")
    fabric, flows, work, loads, options = _ext._LAYOUTS[("_routing", "route_fluid")].objects(calls[0])
    g_ptr = flows.g_ptr
    assert compiled().fluid_blocks(g_ptr).shape[0] - 1 > 1
    f_dst = flows.f_dst.copy()
    busy = np.flatnonzero(np.diff(g_ptr) > 0)
    f_dst[g_ptr[busy[-1]]] = f_dst[g_ptr[busy[0]]]     # a flow of the last block towards the first's group
    flows.f_dst = f_dst
    msgs = set()
    for t in (1, 2):
        fresh = [type(o)(**{n: a.copy() for n, a in o.items()}) for o in (work, loads)]
        with pytest.raises(ValueError, match="not grouped by destination") as e:
            compiled().route_fluid(fabric, flows, *fresh, options._replace(threads=t))
        msgs.add(str(e.value))
    assert len(msgs) == 1


@pytest.mark.parametrize("pure", [False, True])
def test_state_objects_route_alike_and_flat_arguments_are_refused(pure, both, monkeypatch):
    # the general kernels, called again with the state objects the engine gave them (packed afresh
    # from copies of their arrays): the same bits out; a flat argument list, or objects missing
    # one, is refused before the kernel runs
    from topo.routing import kernels as _ext
    from topo.routing.kernels import KernelArgumentError
    calls = {}
    real = _ext.Checked.__getattr__

    def spy(self, attr):
        fn = real(self, attr)
        if (self.name, attr) not in _ext._LAYOUTS:
            return fn
        lay = _ext._LAYOUTS[(self.name, attr)]

        def flat(a):
            kw = lay.flat(lay.objects(a))
            return [kw[n].copy() if isinstance(kw[n], np.ndarray) else kw[n] for n in lay.names]

        def run(*a):
            before = flat(a)
            out = fn(*a)
            calls.setdefault(attr, []).append((before, flat(a)))
            return out
        return run
    monkeypatch.setattr(_ext.Checked, "__getattr__", spy)
    _swap(pure)
    routing.STRUCTURAL = True
    f = random_regular_fabric(24, 4, 2, seed=3)
    E = f.n_endpoints
    d = Demands(np.arange(E), (np.arange(E) + 5) % E, np.full(E, 1e9), np.full(E, -1, np.int32), np.ones(E))
    for model in ("fluid", "roce-hash", "uec-spray"):
        routing.route(f, d, model, record_paths=model == "roce-hash")
    assert {"route_fluid", "route_hash"} <= set(calls)
    K = _ext.kernel("_routing")
    for name, seq in calls.items():
        layout = _ext._LAYOUTS[("_routing", name)]
        entry, after = seq[0]
        objs = pack(name, [x.copy() if isinstance(x, np.ndarray) else x for x in entry])
        getattr(K, name)(*objs)
        got = layout.flat(objs)
        for n, x in zip(layout.names, after):
            if isinstance(x, np.ndarray):
                assert x.tobytes() == got[n].tobytes(), (name, n)
        with pytest.raises(KernelArgumentError, match="state objects"):
            getattr(K, name)(*[x.copy() if isinstance(x, np.ndarray) else x for x in entry])
        with pytest.raises(KernelArgumentError, match="state objects"):
            getattr(K, name)(*objs[:-1])


def test_thread_count_knob(monkeypatch):
    from topo.core.errors import SpecError
    from topo.routing.kernels import MAX_THREADS, threads
    monkeypatch.delenv("TOPO_THREADS", raising=False)
    assert 1 <= threads() <= MAX_THREADS
    monkeypatch.setenv("TOPO_THREADS", "3")
    assert threads() == 3
    from topo.routing.kernels import PARALLEL_WORK, fluid_threads
    assert fluid_threads(2, 100) == 1 and fluid_threads(int(PARALLEL_WORK), 1) == 3
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv("TOPO_THREADS", bad)
        with pytest.raises(SpecError, match="TOPO_THREADS"):
            threads()


# --- route_uniform: the uniform all-to-all with the sources aggregated in the kernel ------------------
def _two_islands(seed):
    """Two random regular switch graphs side by side (no link between them): every pair across
    is unreachable; dual-homed hosts on the first, single-homed on the second."""
    a = random_regular_fabric(24, 3, 2, seed=seed, dual=True)
    b = random_regular_fabric(30, 4, 1, seed=seed + 1)
    Ea, Eb, Na = a.n_endpoints, b.n_endpoints, a.n_nodes
    E = Ea + Eb

    def renum(x, f, ep0, sw0):
        return np.where(x < f.n_endpoints, x + ep0, x - f.n_endpoints + sw0)
    lo = np.concatenate([renum(a.link_src[0::2], a, 0, E), renum(b.link_src[0::2], b, Ea, E + Na - Ea)])
    hi = np.concatenate([renum(a.link_dst[0::2], a, 0, E), renum(b.link_dst[0::2], b, Ea, E + Na - Ea)])
    gbps = np.concatenate([a.link_gbps[0::2], b.link_gbps[0::2]])
    tier = np.concatenate([np.zeros(E), np.ones(a.n_nodes + b.n_nodes - E)]).astype(np.int8)
    return fabric_from_arrays(E, lo, hi, gbps, tier, family="custom")


def _uniform_both_ways(f, mode, dests, mult, fail=None, threads=1):
    """(route_uniform's loads, grp_up, grp_down, unreachable) and the same from route_fluid given
    the expanded flows (one per source group and destination group, as the engine routed them
    before the sources were aggregated), both compiled."""
    from topo.routing import kstate as ks
    mod = compiled()
    P = routing.prepare(f, routing.failure_mask(f, fail))
    fa = routing._fabric_arrays(f, P)
    ng, L = P.g_rep.shape[0], f.n_links
    g = ks.UniformGroups(g_rep=P.g_rep, g_size=P.g_size.astype(np.float64), dests=dests, d_mult=mult)
    opt = ks.UniformOptions(mode, P.KU, P.KH, threads, 0.75)
    mine = (np.zeros(L), np.zeros(ng * P.KU), np.zeros(ng * P.KU))
    un = mod.route_uniform(fa, g, ks.Loads(load=mine[0], grp_up=mine[1], grp_down=mine[2]), opt)
    ref = (np.zeros(L), np.zeros(ng * P.KU), np.zeros(ng * P.KU))
    un_ref = twin.route_uniform(fa, g, ks.Loads(load=ref[0], grp_up=ref[1], grp_down=ref[2]), opt)
    return (*mine, un), (*ref, un_ref)


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_route_uniform_equals_the_expanded_flows(mode, both):
    # random regular graphs (single- and dual-homed, large enough for the BFS to turn bottom-up),
    # with failed links, and two islands (every pair across unreachable); random destinations
    # (some twice) with multipliers; the twin routes the expanded flows with the twin of route_fluid
    rng = np.random.default_rng(mode)
    cases = [(random_regular_fabric(160, 6, 2, seed=s, dual=s % 2 == 1), s) for s in range(3)]
    cases.append((_two_islands(4), 4))
    for f, seed in cases:
        fail = rng.choice(f.n_links, 8, replace=False) if seed == 2 else None
        ng = routing.prepare(f, routing.failure_mask(f, fail)).g_rep.shape[0]
        dests = np.sort(rng.choice(ng, min(ng, 40), replace=True)).astype(np.int64)
        mult = rng.choice([1.0, 2.0, 3.0], dests.shape[0])
        (a, au, ad, aun), (b, bu, bd, bun) = _uniform_both_ways(f, mode, dests, mult, fail)
        assert _close(a, b) and _close(au, bu) and _close(ad, bd), seed
        assert aun == pytest.approx(bun, rel=1e-12), seed
        if seed == 4:
            assert aun > 0          # the islands: the pairs across are unreachable
        else:
            assert aun == 0 or fail is not None


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_route_uniform_is_the_same_bits_on_any_number_of_threads(mode, both):
    # several chunks (40 destinations: 10 chunks), dual-homed hosts; fluid (whose split sums
    # are sigma itself), wcmp and spray; 1, 2 and 3 threads
    f = random_regular_fabric(160, 6, 2, seed=9, dual=True)
    P = routing.prepare(f, None)
    dests = np.arange(P.g_rep.shape[0], dtype=np.int64)[:40]
    assert compiled().uniform_chunks(40, 1000).shape[0] - 1 == 10
    out = [_uniform_both_ways(f, mode, dests, np.ones(40), threads=t)[0] for t in (1, 2, 3)]
    for x in out[1:]:
        assert all(p.tobytes() == q.tobytes() for p, q in zip(out[0][:3], x[:3]))
        assert x[3] == out[0][3]


def test_uniform_chunks_depend_on_the_destinations_only():
    mod = compiled()
    for nd, per in ((0, 10), (3, 10), (7, 10), (64, 10), (1000, 10), (1000, 1 << 22), (5, 1 << 30)):
        b = mod.uniform_chunks(nd, per)
        assert (b == twin.uniform_chunks(nd, per)).all()
        assert b[0] == 0 and b[-1] == nd and (np.diff(b) >= 0).all()
        assert (np.diff(b) >= mod.UNIFORM_DESTS_PER_CHUNK).all() or b.shape[0] == 2
        assert (b.shape[0] - 2) * per <= mod.UNIFORM_BUFFER
    assert (mod.UNIFORM_CHUNKS, mod.UNIFORM_DESTS_PER_CHUNK, mod.UNIFORM_BUFFER) == (
        twin.UNIFORM_CHUNKS, twin.UNIFORM_DESTS_PER_CHUNK, twin.UNIFORM_BUFFER)


@pytest.mark.parametrize("dual", [False, True])
def test_hash_loads_and_paths_are_the_same_bits_on_any_number_of_threads(dual, both, monkeypatch):
    # route_hash over route_fluid's blocks: 96 destination groups (several blocks), healthy and
    # with failures, bytes carried as a second weight; 1, 2 and 3 threads give identical loads,
    # bytes, paths and unreachable flows, and the twin the same paths and loads to rounding
    from topo.routing import kernels as _ext
    monkeypatch.setattr(_ext, "PARALLEL_WORK", 0.0)
    f = random_regular_fabric(96, 4, 2, seed=6, dual=dual)
    rng = np.random.default_rng(8)
    n = 1500
    src, dst = rng.integers(0, f.n_endpoints, n), rng.integers(0, f.n_endpoints, n)
    rate = rng.random(n) * 10
    d = Demands(src, dst, rate * 1e8 * rng.choice([1.0, 3.0], n), np.full(n, -1, np.int32), rate)
    fail = rng.choice(f.n_links, 6, replace=False)
    for fl in (None, fail):
        out = []
        for t in ("1", "2", "3"):
            monkeypatch.setenv("TOPO_THREADS", t)
            _swap(False)
            r = routing.route(f, d, "roce-hash", failed_links=fl, seed=3, qps=2, record_paths=True)
            out.append((r.link_gbps_load.tobytes(), r.link_bytes.tobytes(), r.flow_unreachable.tobytes(),
                        r.qp_path.tobytes()))
        assert out[0] == out[1] == out[2]
        _swap(True)
        r2 = routing.route(f, d, "roce-hash", failed_links=fl, seed=3, qps=2, record_paths=True)
        assert _close(np.frombuffer(out[0][0]), r2.link_gbps_load)
        assert np.frombuffer(out[0][3], np.int64).tobytes() == r2.qp_path.tobytes()


def test_hash_blocks_report_a_destination_outside_its_group(both, monkeypatch):
    # the check that a destination has a link from the home its path reached, in the parallel
    # path: the first bad block's flow is named whatever the threads
    f = random_regular_fabric(96, 4, 2, seed=5, dual=True)
    E = f.n_endpoints
    d = Demands(np.arange(E), (np.arange(E) + 7) % E, np.full(E, 1e9), np.full(E, -1, np.int32), np.ones(E))
    from topo.routing import kernels as _ext
    calls = []
    real = _ext.Checked.__getattr__

    def spy(self, attr):
        fn = real(self, attr)
        if attr != "route_hash":
            return fn
        return lambda *a: (calls.append(list(a)), fn(*a))[1]
    monkeypatch.setattr(_ext.Checked, "__getattr__", spy)
    _swap(False)
    routing.route(f, d, "roce-hash")
    fabric, flows, work, loads, options = _ext._LAYOUTS[("_routing", "route_hash")].objects(calls[0])
    g_ptr = flows.g_ptr
    assert compiled().fluid_blocks(g_ptr).shape[0] - 1 > 1
    P = routing.prepare(f, None)
    homes = lambda e: set(f.link_dst[P.up_link[P.up_ptr[e]:P.up_ptr[e + 1]]].tolist())
    busy = np.flatnonzero(np.diff(g_ptr) > 0)
    f_dst = flows.f_dst.copy()
    last = g_ptr[busy[-1]]
    f_dst[last] = next(int(e) for e in range(E) if not homes(e) & homes(int(f_dst[last])))
    flows.f_dst = f_dst
    msgs = set()
    for t in (1, 2):
        fresh = [type(o)(**{n: a.copy() for n, a in o.items()}) for o in (work, loads)]
        with pytest.raises(ValueError, match="not grouped by destination") as e:
            compiled().route_hash(fabric, flows, *fresh, options._replace(threads=t))
        msgs.add(str(e.value))
    assert len(msgs) == 1


def test_route_uniform_refuses_a_switch_link_without_its_reverse(both):
    # the bottom-up BFS levels find parents through a switch's own links: a CSR listing a link
    # but not its reverse is refused before the kernel runs
    from topo.routing import kstate as ks
    from topo.routing.kernels import KernelArgumentError, kernel
    f = random_regular_fabric(12, 3, 1, seed=1)
    P = routing.prepare(f, None)
    keep = np.ones(P.sw_adj.shape[0], bool)
    keep[0] = False                                     # one direction of one link dropped
    row = np.repeat(np.arange(f.n_nodes), np.diff(P.sw_ptr))[keep]
    sw_ptr = np.zeros(f.n_nodes + 1, np.int64)
    np.cumsum(np.bincount(row, minlength=f.n_nodes), out=sw_ptr[1:])
    fa = ks.FabricArrays(sw_ptr=sw_ptr, sw_adj=P.sw_adj[keep], sw_head=P.sw_head[keep], link_dst=f.link_dst,
                         link_gbps=f.link_gbps, up_ptr=P.up_ptr, up_link=P.up_link, ep_up1=P.ep_up1,
                         ep_home1=P.ep_home1)
    ng = P.g_rep.shape[0]
    args = (fa, ks.UniformGroups(g_rep=P.g_rep, g_size=P.g_size.astype(float), dests=np.arange(ng),
                                 d_mult=np.ones(ng)),
            ks.Loads(load=np.zeros(f.n_links), grp_up=np.zeros(ng * P.KU), grp_down=np.zeros(ng * P.KU)),
            ks.UniformOptions(0, P.KU, P.KH, 1, 1.0))
    with pytest.raises(KernelArgumentError, match="sw_adj"):
        kernel("_routing").route_uniform(*args)


# --- route_clos's chunks of demands on several threads -------------------------------------------

def test_clos_chunks_depend_on_the_demands_only():
    mod = compiled()
    assert compiled().clos_chunks(1000, 4, 10).tolist() == [0, 1000]     # below CLOS_CHUNK_WORK: one chunk
    n = 3 * mod.CLOS_CHUNK_WORK
    b = mod.clos_chunks(n, 4, 1)
    assert b[0] == 0 and b[-1] == n and (np.diff(b) > 0).all() and b.shape[0] - 1 == mod.CLOS_CHUNKS
    assert mod.clos_chunks(n, 4, mod.CLOS_BUFFER_PER_QP * n).shape[0] - 1 == 4   # its loads bound the chunks


@pytest.mark.parametrize("model", ["roce-hash", "uec-spray"])
@pytest.mark.parametrize("one_ratio", [False, True])
def test_clos_loads_and_paths_are_the_same_bits_on_any_number_of_threads(model, one_ratio, monkeypatch):
    # route_clos on a k=8 fat tree cut into several chunks of demands (CLOS_CHUNK_WORK lowered):
    # 1, 2 and 3 threads give identical loads, bytes, paths and unreachable flows; the paths equal
    # the one-chunk loop's and the loads its and the twin's to rounding. Bytes either one ratio to
    # the rates (the second weight reconstructed) or two ratios (carried by some chunks only)
    from helpers.fabrics import fat_tree
    mod = compiled()
    f = fat_tree(8)
    rng = np.random.default_rng(11)
    n = 6000
    src, dst = rng.integers(0, f.n_endpoints, n), rng.integers(0, f.n_endpoints, n)
    rate = rng.random(n) * 10
    ratio = np.full(n, 1e8) if one_ratio else np.where(np.arange(n) < 4000, 1e8, 3e8)
    d = Demands(src, dst, rate * ratio, np.full(n, -1, np.int32), rate)
    monkeypatch.setattr(mod, "CLOS_CHUNK_WORK", 1)
    cuts, chunks = [], mod.clos_chunks
    monkeypatch.setattr(mod, "clos_chunks", lambda *a: cuts.append(chunks(*a).shape[0] - 1) or chunks(*a))

    def run(t, pure=False):
        monkeypatch.setenv("TOPO_THREADS", t)
        _swap(pure)
        r = routing.route(f, d, model, seed=5, qps=3, record_paths=True)
        return (r.link_gbps_load.tobytes(), r.link_bytes.tobytes(), r.flow_unreachable.tobytes(),
                None if r.qp_path is None else r.qp_path.tobytes(), None if r.qp_flow is None else r.qp_flow.tobytes())
    try:
        assert routing._plan(f, routing.prepare(f, None)) is not None       # the structural path
        out = [run(t) for t in ("1", "2", "3")]
        assert out[0] == out[1] == out[2]
        assert len(cuts) == 3 and min(cuts) >= 3, cuts                     # several chunks each time
        monkeypatch.setattr(mod, "CLOS_CHUNKS", 1)
        plain = run("2")
        twin_out = run("1", pure=True)
    finally:
        _swap(False)
    for other in (plain, twin_out):
        for k in (0, 1):
            assert _close(np.frombuffer(out[0][k]), np.frombuffer(other[k]))
        assert out[0][2:] == other[2:]
