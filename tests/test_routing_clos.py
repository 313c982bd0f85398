"""Structural routing on regular Clos fabrics against the general kernels and the twin."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import yaml

import topo
from topo.routing import engine as routing
from topo.model.fabric import fabric_from_arrays
from topo.routing.clos import clos_plan
from topo.traffic.demand import Demands


from conftest import EXAMPLES
from helpers.kernel_cases import close as _close, random_fabric

N_FABRICS = 100


def regular_fabric(rng):
    """A random regular Clos: planes of pods, complete leaf-spine pods with a bundle size per
    pod, super-spines with one spine per pod (random spine, random bundle), single-homed
    endpoints in random scale-up domains; switch ids and link order shuffled."""
    planes = int(rng.integers(1, 3))
    pods = int(rng.integers(1, 4))
    lpp, spp = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sup = spp * int(rng.integers(1, 3)) if pods > 1 else int(rng.integers(0, 2))
    per_leaf = int(rng.integers(1, 4))
    n_leaf, n_sp, n_su = planes * pods * lpp, planes * pods * spp, planes * sup
    E = n_leaf * per_leaf
    n_sw = n_leaf + n_sp + n_su
    perm = E + rng.permutation(n_sw)              # switch ids in random order
    leaf = lambda p, d, l: perm[(p * pods + d) * lpp + l]
    spine = lambda p, d, s: perm[n_leaf + (p * pods + d) * spp + s]
    supr = lambda p, x: perm[n_leaf + n_sp + p * sup + x]
    lo, hi = [], []
    for p in range(planes):
        for d in range(pods):
            b1 = int(rng.integers(1, 3))
            for l in range(lpp):
                for k in range(per_leaf):
                    lo.append(((p * pods + d) * lpp + l) * per_leaf + k), hi.append(leaf(p, d, l))
                for s in range(spp):
                    for _ in range(b1):
                        lo.append(leaf(p, d, l)), hi.append(spine(p, d, s))
        for x in range(sup):
            for d in range(pods):
                s = x % spp if rng.random() < 0.9 else int(rng.integers(spp))  # may strand a spine
                for _ in range(int(rng.integers(1, 3))):
                    lo.append(spine(p, d, s)), hi.append(supr(p, x))
    tier = np.zeros(E + n_sw, np.int8)
    tier[perm[:n_leaf]] = 1
    tier[perm[n_leaf:n_leaf + n_sp]] = 2
    tier[perm[n_leaf + n_sp:]] = 3
    o = rng.permutation(len(lo))
    lo, hi = np.array(lo)[o], np.array(hi)[o]
    gbps = rng.choice([100.0, 200.0, 400.0], size=lo.shape[0])
    size = int(rng.integers(1, 3))
    dom = np.where(rng.random(E) < 0.5, np.arange(E) // size, -1).astype(np.int64)
    return fabric_from_arrays(E, lo, hi, gbps, tier, family="custom", ep_domain=dom)


def multiplane_fabric(rng):
    """K identical planes (pods of complete leaf-spine bipartite graphs, super-spines with one
    spine per pod); every endpoint has one port in each plane, on the same leaf position;
    switch ids plane by plane, link order shuffled."""
    K = int(rng.integers(2, 4))
    pods = int(rng.integers(1, 4))
    lpp, spp = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    sup = spp * int(rng.integers(1, 3)) if pods > 1 else 0
    per_leaf = int(rng.integers(1, 3))
    b1 = int(rng.integers(1, 3))
    b2 = int(rng.integers(1, 3))
    n_leaf, n_sp = pods * lpp, pods * spp
    per_plane = n_leaf + n_sp + sup
    E = n_leaf * per_leaf
    base = lambda p: E + p * per_plane
    lo, hi = [], []
    for p in range(K):
        for l in range(n_leaf):
            for k in range(per_leaf):
                lo.append(l * per_leaf + k), hi.append(base(p) + l)
            d = l // lpp
            for s_ in range(spp):
                for _ in range(b1):
                    lo.append(base(p) + l), hi.append(base(p) + n_leaf + d * spp + s_)
        for x in range(sup):
            for d in range(pods):
                for _ in range(b2):
                    lo.append(base(p) + n_leaf + d * spp + x % spp), hi.append(base(p) + n_leaf + n_sp + x)
    tier = np.zeros(E + K * per_plane, np.int8)
    for p in range(K):
        tier[base(p):base(p) + n_leaf] = 1
        tier[base(p) + n_leaf:base(p) + n_leaf + n_sp] = 2
        tier[base(p) + n_leaf + n_sp:base(p) + per_plane] = 3
    o = rng.permutation(len(lo))
    lo, hi = np.array(lo)[o], np.array(hi)[o]
    gbps = rng.choice([200.0, 400.0], size=lo.shape[0])
    dom = np.where(rng.random(E) < 0.3, np.arange(E) // 2, -1).astype(np.int64)
    return fabric_from_arrays(E, lo, hi, gbps, tier, family="custom", ep_domain=dom)


def regular_case(seed):
    rng = np.random.default_rng(seed)
    f = regular_fabric(rng) if seed % 4 else multiplane_fabric(rng)
    n = int(rng.integers(1, 40))
    src = rng.integers(0, f.n_endpoints, n)
    dst = rng.integers(0, f.n_endpoints, n)
    rate = rng.random(n) * 100
    if seed % 3 == 1:
        rate[rng.random(n) < 0.2] = 0.0          # zero rates with bytes: both weights carried
    ratio = 1e7 if seed % 3 == 0 else 1e7 * rng.choice([1.0, 2.0], n)
    return f, Demands(src, dst, rate * ratio + (rate == 0) * 1e6, np.full(n, -1, np.int32), rate)


def _sorted_paths(r):
    o = np.lexsort((np.arange(r.qp_flow.size), r.qp_flow))
    return r.qp_flow[o], r.qp_path[o]


@pytest.fixture
def restore():
    old = routing.STRUCTURAL, __import__("topo.routing.kernels", fromlist=["PURE"]).PURE
    yield
    routing.STRUCTURAL = old[0]
    from topo.routing import kernels as _ext
    _ext._cache.clear()
    _ext.PURE = old[1]
    routing._prepared.clear()
    routing._plans.clear()


def random_failures(f, rng):
    """None, or a few failed links (switch or endpoint links) and sometimes a failed switch."""
    if rng.random() < 0.3:
        return None, None
    links = rng.choice(f.n_links, int(rng.integers(1, 5)), replace=False)
    nodes = rng.choice(np.arange(f.n_endpoints, f.n_nodes), 1) if rng.random() < 0.3 else None
    return links, nodes


@pytest.mark.parametrize("model", ["roce-hash", "uec-spray"])
def test_structural_equals_general_on_random_regular_fabrics(model, restore):
    # healthy and with failed links and switches: paths and loads equal those of the general kernels
    structural = 0
    for seed in range(N_FABRICS):
        f, d = regular_case(seed)
        P = routing.prepare(f, np.zeros(f.n_links, bool))
        structural += clos_plan(f, P) is not None
        fl, fn = random_failures(f, np.random.default_rng(1000 + seed))
        out = []
        for st in (True, False):
            routing.STRUCTURAL = st
            out.append(routing.route(f, d, model, seed=seed, qps=1 + seed % 3, efficiency=0.9,
                                     record_paths=model == "roce-hash", failed_links=fl, failed_nodes=fn))
        a, b = out
        assert _close(a.link_gbps_load, b.link_gbps_load), seed
        assert _close(a.link_bytes, b.link_bytes), seed
        assert _close(a.flow_unreachable, b.flow_unreachable), seed
        assert np.isclose(a.offered_gbps, b.offered_gbps) and np.isclose(a.unreachable_gbps, b.unreachable_gbps)
        assert np.isclose(a.unreachable_bytes, b.unreachable_bytes), seed
        assert _close(a.scaleup_sent_gbps, b.scaleup_sent_gbps) and _close(a.scaleup_recv_gbps, b.scaleup_recv_gbps)
        if model == "roce-hash":
            fa, pa = _sorted_paths(a)
            fb, pb = _sorted_paths(b)
            assert (fa == fb).all(), seed
            w = pa.shape[1]
            assert (pa == pb[:, :w]).all() and (pb[:, w:] == -1).all(), seed
            assert _close(np.sort(a.qp_gbps), np.sort(b.qp_gbps)), seed
    # the generator gives regular fabrics: most cases take the structural path
    assert structural >= 0.7 * N_FABRICS, structural


@pytest.mark.parametrize("model", ["roce-hash", "uec-spray"])
def test_route_clos_twin_on_random_regular_fabrics(model, restore):
    importlib.import_module("topo._routing")
    from topo.routing import kernels as _ext
    for seed in range(N_FABRICS):
        f, d = regular_case(seed)
        fl, fn = random_failures(f, np.random.default_rng(1000 + seed))
        out = []
        for pure in (False, True):
            _ext._cache.clear()
            _ext.PURE = pure
            routing._prepared.clear()
            routing._plans.clear()
            out.append(routing.route(f, d, model, seed=seed, qps=1 + seed % 3, record_paths=model == "roce-hash",
                                     failed_links=fl, failed_nodes=fn))
        a, b = out
        assert _close(a.link_gbps_load, b.link_gbps_load), seed
        assert _close(a.link_bytes, b.link_bytes), seed
        if model == "roce-hash":
            assert (a.qp_path == b.qp_path).all() and (a.qp_flow == b.qp_flow).all(), seed


def test_plan_holds_for_built_clos_families_and_not_for_irregular_graphs():
    for name, planes in (("small", 1), ("h100-rail-roce", 1), ("helios-mi450-uec", 3)):
        c = topo.load(EXAMPLES / f"{name}.yaml")
        f = topo.build(c)
        P = routing.prepare(f, np.zeros(f.n_links, bool))
        plan = clos_plan(f, P)
        assert plan is not None and plan.K == planes, name   # helios: every endpoint in 3 planes
        if planes == 1:
            # a failed switch link breaks the structure: the general kernels take over
            sw = np.flatnonzero((f.link_src >= f.n_endpoints) & (f.link_dst >= f.n_endpoints))[0]
            assert clos_plan(f, routing.prepare(f, routing.failure_mask(f, [sw]))) is None
    data = yaml.safe_load((EXAMPLES / "small.yaml").read_text())
    data["fabric"]["dual_homed"] = True
    for n in data["node_types"]:
        n["nic_ports"] = 2
    f = topo.build(topo.from_dict(data))
    assert clos_plan(f, routing.prepare(f, np.zeros(f.n_links, bool))) is None
    # random graphs with dual-homed endpoints or links between non-adjacent tiers
    irregular = 0
    for seed in range(30):
        f = random_fabric(np.random.default_rng(seed))
        irregular += clos_plan(f, routing.prepare(f, np.zeros(f.n_links, bool))) is None
    assert irregular >= 15


def test_fat_tree_is_regular_and_uniform_spray_equals_fluid(restore):
    from helpers.fabrics import fat_tree
    f = fat_tree(4)
    P = routing.prepare(f, np.zeros(f.n_links, bool))
    assert clos_plan(f, P) is not None
    E = f.n_endpoints
    s, t = np.meshgrid(np.arange(E), np.arange(E), indexing="ij")
    keep = s != t
    d = Demands(s[keep], t[keep], np.full(int(keep.sum()), 1e6), np.zeros(int(keep.sum()), np.int32),
                np.ones(int(keep.sum())))
    spray = routing.route(f, d, "uec-spray")
    fluid = routing.uniform_loads(f, "fluid", 1.0)
    assert _close(spray.link_gbps_load, fluid.link_gbps_load)
