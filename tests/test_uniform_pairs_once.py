"""route_uniform's pairs-once path (fluid, symmetric demand): each unordered pair of groups is
routed by one of its two BFSs and mirrored onto the reverse links. Compared with the twin (the
expanded flows routed one by one), with the general path of the same kernel, and its
eccentricities and components with networkx."""
from __future__ import annotations

import importlib

import networkx as nx
import numpy as np
import pytest

from topo.model.fabric import fabric_from_arrays
from topo.routing import engine as routing
from topo.routing import kstate as ks

import topo.routing.pure._routing as twin
from helpers.kernel_cases import close


def compiled():
    return importlib.import_module("topo._routing")


GATE = compiled().UNIFORM_PAIRS_MAX_ECC


@pytest.fixture(autouse=True)
def pairs_once_everywhere(monkeypatch):
    """The pairs-once path on every eligible fabric here, whether or not it pays
    (test_pairs_once_only_where_it_pays tests the gate itself)."""
    monkeypatch.setattr(compiled(), "UNIFORM_PAIRS_MAX_ECC", 10 ** 9)


def switch_fabric(G: nx.Graph, hosts: int, seed: int):
    """Hosts single-homed on the switches of G (host i on switch i // hosts), link speeds drawn
    from two values (so some switches home two groups)."""
    G = nx.convert_node_labels_to_integers(G, ordering="sorted")
    n_sw = G.number_of_nodes()
    E = n_sw * hosts
    a = np.array([u for u, _ in G.edges()], np.int64)
    b = np.array([v for _, v in G.edges()], np.int64)
    ep = np.arange(E)
    lo = np.concatenate([ep, E + a])
    hi = np.concatenate([E + ep // hosts, E + b])
    gbps = np.random.default_rng(seed).choice([100.0, 400.0], lo.shape[0])
    tier = np.concatenate([np.zeros(E), np.ones(n_sw)]).astype(np.int8)
    return fabric_from_arrays(E, lo, hi, gbps, tier, family="custom")


def cases():
    """(name, fabric, failed links): random regular graphs (one with failures that cut switches
    off), two islands, and graphs whose switches have many different eccentricities."""
    out = [(f"random-regular-{s}", switch_fabric(nx.random_regular_graph(6, 120, seed=s), 2, s), None)
           for s in range(2)]
    f = switch_fabric(nx.random_regular_graph(3, 90, seed=5), 2, 5)
    E = f.n_endpoints
    cut = np.flatnonzero((f.link_src == E) & (f.link_dst >= E))         # every switch link of the first switch
    fail = np.concatenate([cut, np.random.default_rng(5).choice(f.n_links, 20, replace=False)])
    out.append(("random-regular-failed", f, fail))
    islands = nx.disjoint_union(nx.random_regular_graph(4, 40, seed=6), nx.random_regular_graph(3, 30, seed=7))
    out.append(("two-islands", switch_fabric(islands, 2, 6), None))
    out.append(("barbell", switch_fabric(nx.barbell_graph(7, 6), 2, 8), None))
    out.append(("path", switch_fabric(nx.path_graph(15), 3, 9), None))
    out.append(("tree", switch_fabric(nx.balanced_tree(2, 5), 1, 10), None))
    out.append(("lollipop", switch_fabric(nx.lollipop_graph(9, 8), 2, 11), None))
    return out


def uniform(f, fail, dests, mult, mod, threads=1):
    """(loads, grp_up, grp_down, unreachable) of route_uniform in ``mod`` (fluid, per pair 0.75)."""
    P = routing.prepare(f, routing.failure_mask(f, fail))
    fa = routing._fabric_arrays(f, P)
    ng, L = P.g_rep.shape[0], f.n_links
    g = ks.UniformGroups(g_rep=P.g_rep, g_size=P.g_size.astype(np.float64), dests=dests, d_mult=mult)
    out = (np.zeros(L), np.zeros(ng * P.KU), np.zeros(ng * P.KU))
    un = mod.route_uniform(fa, g, ks.Loads(load=out[0], grp_up=out[1], grp_down=out[2]),
                           ks.UniformOptions(0, P.KU, P.KH, threads, 0.75))
    return (*out, un)


def n_groups(f, fail):
    return routing.prepare(f, routing.failure_mask(f, fail)).g_rep.shape[0]


@pytest.mark.parametrize("name,f,fail", cases(), ids=[c[0] for c in cases()])
def test_pairs_once_equals_the_expanded_flows_and_the_general_path(name, f, fail):
    mod = compiled()
    ng = n_groups(f, fail)
    dests = np.random.default_rng(ng).permutation(ng).astype(np.int64)     # every group once, any order
    mult = np.full(ng, 2.0)
    P = routing.prepare(f, routing.failure_mask(f, fail))
    home = np.asarray(routing._fabric_arrays(f, P).ep_home1)[np.asarray(P.g_rep)]
    assert mod.uniform_pairs_once(0, home.astype(np.int32), dests, mult, f.n_links) == 1
    got = uniform(f, fail, dests, mult, mod)
    ref = uniform(f, fail, dests, mult, twin)
    # the general path of the same kernel: the same destinations in two calls (neither symmetric)
    gen = uniform(f, fail, dests[: ng // 2], mult[: ng // 2], mod)
    rest = uniform(f, fail, dests[ng // 2:], mult[ng // 2:], mod)
    for x, y, z, w in zip(got[:3], ref[:3], gen[:3], rest[:3]):
        assert close(x, y) and close(x, z + w), name
    assert got[3] == pytest.approx(ref[3], rel=1e-12, abs=1e-9) and got[3] == pytest.approx(gen[3] + rest[3])
    assert (got[3] > 0) == (name in ("two-islands", "random-regular-failed")), name
    # the loads are symmetric: each physical link carries the same both ways
    assert close(got[0][0::2], got[0][1::2]), name


@pytest.mark.parametrize("name,f,fail", cases()[::3], ids=[c[0] for c in cases()[::3]])
def test_pairs_once_is_the_same_bits_on_any_number_of_threads(name, f, fail):
    mod = compiled()
    ng = n_groups(f, fail)
    dests = np.arange(ng, dtype=np.int64)
    out = [uniform(f, fail, dests, np.ones(ng), mod, threads=t) for t in (1, 2, 3)]
    for x in out[1:]:
        assert all(p.tobytes() == q.tobytes() for p, q in zip(out[0][:3], x[:3])) and x[3] == out[0][3]


def test_pairs_once_only_where_the_flows_are_symmetric():
    mod = compiled()
    home = np.array([5, 5, 6, 7], np.int32)
    dests = np.array([2, 0, 3, 1], np.int64)
    one = np.ones(4)
    assert mod.uniform_pairs_once(0, home, dests, one, 20) == 1
    assert mod.uniform_pairs_once(0, home, dests, 3 * one, 20) == 1
    for mode in (1, 2):                                             # wcmp, spray: split by capacity or per hop
        assert mod.uniform_pairs_once(mode, home, dests, one, 20) == 0
    assert mod.uniform_pairs_once(0, home, dests, np.array([1.0, 1.0, 2.0, 1.0]), 20) == 0   # twin classes
    assert mod.uniform_pairs_once(0, home, dests[:3], one[:3], 20) == 0                      # some groups only
    assert mod.uniform_pairs_once(0, home, np.array([0, 0, 1, 2], np.int64), one, 20) == 0  # one twice
    assert mod.uniform_pairs_once(0, np.array([5, -1, 6, 7], np.int32), dests, one, 20) == 0  # dual-homed
    assert mod.uniform_pairs_once(0, home, dests, one, 21) == 0
    assert mod.uniform_pairs_once(0, home[:0], dests[:0], one[:0], 20) == 0


def test_eccentricities_and_components_equal_networkx():
    # more homes than one block of 256 lanes (the bit-parallel BFS's words and blocks), and two
    # islands plus a switch with no switch link at all
    mod = compiled()
    G = nx.disjoint_union(nx.random_regular_graph(3, 300, seed=1), nx.path_graph(9))
    G.add_node(G.number_of_nodes())
    f = switch_fabric(G, 1, 1)
    P = routing.prepare(f, None)
    fa = routing._fabric_arrays(f, P)
    homes = np.unique(np.asarray(fa.ep_home1)[np.asarray(P.g_rep)]).astype(np.int32)
    assert homes.shape[0] == 310
    E = f.n_endpoints
    runs = [mod.uniform_pair_facts(fa, homes, t) for t in (1, 2)]
    assert all((a == runs[0][0]).all() and (b == runs[0][1]).all() for a, b in runs)
    ecc, comp = runs[0]
    want = {}
    for part in nx.connected_components(G):
        want.update(nx.eccentricity(G.subgraph(part)))
    assert [int(ecc[h]) for h in homes] == [want[h - E] for h in homes]
    assert (ecc[:E] == -1).all() and (comp[:E] == -1).all()
    same = comp[E:, None] == comp[None, E:]
    nx_comp = np.zeros(G.number_of_nodes(), np.int64)
    for i, part in enumerate(nx.connected_components(G)):
        nx_comp[list(part)] = i
    assert (same == (nx_comp[:, None] == nx_comp[None, :])).all()
    for bad in (homes[::-1].copy(), np.append(homes, homes[-1]).astype(np.int32), np.array([-1], np.int32),
                np.array([f.n_nodes], np.int32)):
        with pytest.raises(ValueError, match="distinct node ids"):
            mod.uniform_pair_facts(fa, bad, 1)


# --- the kept work arrays --------------------------------------------------------------------
def _bits(out):
    return [x.tobytes() for x in out[:3]] + [out[3]]


def test_kept_buffer_reused_across_fabrics_threads_and_paths_gives_the_same_bits(monkeypatch):
    # a call after calls on other fabrics (other shapes, the general path, other thread counts)
    # equals one on fresh memory: one made while another call holds the kept buffer, and one
    # with the buffer kept for no call at all
    mod = compiled()
    name, f, fail = cases()[2]
    ng = n_groups(f, fail)
    dests = np.arange(ng, dtype=np.int64)
    first = _bits(uniform(f, fail, dests, np.ones(ng), mod, threads=2))
    for other_name, g, gfail in cases()[3:6]:
        m = n_groups(g, gfail)
        uniform(g, gfail, np.arange(m, dtype=np.int64), np.ones(m), mod, threads=1)
        uniform(g, gfail, np.arange(m // 2, dtype=np.int64), np.full(m // 2, 3.0), mod, threads=3)
    assert _bits(uniform(f, fail, dests, np.ones(ng), mod, threads=2)) == first
    assert mod._KEPT_LOCK.acquire(blocking=False)
    try:
        assert _bits(uniform(f, fail, dests, np.ones(ng), mod, threads=2)) == first
    finally:
        mod._KEPT_LOCK.release()
    monkeypatch.setattr(mod, "UNIFORM_KEEP", 0)
    assert _bits(uniform(f, fail, dests, np.ones(ng), mod, threads=2)) == first


def test_calls_from_two_python_threads_at_once():
    import concurrent.futures as cf
    mod = compiled()
    work = [cases()[i] for i in (0, 1, 4, 6)]
    want = []
    for _, f, fail in work:
        ng = n_groups(f, fail)
        want.append(_bits(uniform(f, fail, np.arange(ng, dtype=np.int64), np.ones(ng), mod)))

    def run(i):
        _, f, fail = work[i % len(work)]
        ng = n_groups(f, fail)
        return _bits(uniform(f, fail, np.arange(ng, dtype=np.int64), np.ones(ng), mod, threads=1 + i % 2))
    with cf.ThreadPoolExecutor(2) as ex:
        got = list(ex.map(run, range(24)))
    assert all(g == want[i % len(work)] for i, g in enumerate(got))


def test_pairs_once_only_where_it_pays(monkeypatch):
    # shallow graphs (random regular, a small torus, a complete bipartite one) take it; rings, large
    # tori and paths do not (many levels); the loads equal the general path's either way
    mod = compiled()
    monkeypatch.setattr(mod, "UNIFORM_PAIRS_MAX_ECC", GATE)
    graphs = {"random-regular": (nx.random_regular_graph(6, 120, seed=0), True),
              "fat-tree-k8": (nx.complete_bipartite_graph(8, 8), True),
              "ring": (nx.cycle_graph(64), False), "torus": (nx.grid_2d_graph(16, 16, periodic=True), False),
              "torus-3d": (nx.grid_graph(dim=(5, 5, 5), periodic=True), True), "path": (nx.path_graph(15), False),
              "torus-3d-6": (nx.grid_graph(dim=(6, 6, 6), periodic=True), False), "path-9": (nx.path_graph(9), True)}
    for name, (G, pays) in graphs.items():
        f = switch_fabric(G, 2, 3)
        P = routing.prepare(f, None)
        home = np.asarray(routing._fabric_arrays(f, P).ep_home1)[np.asarray(P.g_rep)]
        assert mod.uniform_pairs_pay(routing._fabric_arrays(f, P), home) == pays, name
        ng = P.g_rep.shape[0]
        dests = np.arange(ng, dtype=np.int64)
        got = uniform(f, None, dests, np.ones(ng), mod)
        halves = [uniform(f, None, d, np.ones(d.shape[0]), mod) for d in (dests[: ng // 2], dests[ng // 2:])]
        general = [a + b for a, b in zip(halves[0][:3], halves[1][:3])]
        assert all(close(x, y) for x, y in zip(got[:3], general)), name
    # (eccentricity, switches at it, switches reached) of every switch of the last graph (a path),
    # against networkx
    E, n = f.n_endpoints, G.number_of_nodes()
    for v in range(n):
        d = nx.single_source_shortest_path_length(G, v)
        far = max(d.values())
        want = (far, sum(1 for x in d.values() if x == far), n)
        assert mod.uniform_hops_from(routing._fabric_arrays(f, P), E + v) == want, v
    with pytest.raises(ValueError, match="root"):
        mod.uniform_hops_from(routing._fabric_arrays(f, P), f.n_nodes)
