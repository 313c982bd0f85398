"""The kernels never read or write outside their arrays.

* The case of the issue: a 3-tier Clos of 10-port switches with one 96-GPU job, sized by
  ``topo budget`` for survive=link, analysed with the link leaf0->spine0 failed. waterfill's
  heap outgrew its arrays (a link was pushed again for every path through the bottleneck,
  frozen or not) and the process died with SIGSEGV under every routing model. The commands
  run as subprocesses, so a crash fails the test instead of taking pytest down.
* waterfill's heap bound (links + path entries), checked with guard zones around the arrays.
* A seeded fuzz of failure sets (links, all uplinks of a leaf, every link of a switch, failed
  switches, whole planes, a quarter of the fabric) on small fabrics of every family topo
  builds: compiled kernels against their pure-Python twins under every routing model, and
  no load on a failed link.
* Bad kernel calls raise KernelArgumentError before any kernel runs.
* A bounds-checked build (TOPO_BOUNDSCHECK=1, see setup.py) raises IndexError on an index
  outside an array; .ci/run sets TOPO_REQUIRE_BOUNDSCHECK=1 when it runs this file on one.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import topo
from topo.routing import kernels as _ext
from topo.routing import engine as routing
from topo.routing.kernels import KernelArgumentError
from topo.traffic.demand import Demands, uniform

import topo.routing.pure._routing as twin
from helpers.kernel_cases import pack

ROOT = Path(__file__).resolve().parent.parent


def compiled(name="_routing"):
    return importlib.import_module(f"topo.{name}")


def _run_topo(args, cwd, timeout=600):
    """``python -m topo ARGS`` on this tree's topo with the compiled kernels (the case is theirs)."""
    env = dict(os.environ)
    env.pop("TOPO_PURE_PYTHON", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return subprocess.run([sys.executable, "-m", "topo", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _ok(p, what):
    sig = f" (killed by signal {-p.returncode})" if p.returncode < 0 else ""
    assert p.returncode == 0, f"{what}: exit {p.returncode}{sig}\n{p.stderr[-2000:]}"


# --- the issue's case ---------------------------------------------------------------------------
SW10 = {"radix": 10, "port_gbps": 400, "power_w": 1000, "cost_usd": 10000}


def issue_cluster(tiers):
    """96 GPUs on 48 two-GPU nodes (a 400G NIC each, NVLink pairs) in 6 racks, one data-parallel job."""
    return {
        "version": 1, "name": "radix10-3tier",
        "node_types": [{"name": "gpu", "accelerator": "H100", "accelerators": 2, "nics": 2, "nic_gbps": 400,
                        "power_busy_kw": 10.0, "power_idle_kw": 2.0, "scaleup": {"size": 2}}],
        "racks": [{"name": "r", "count": 6, "nodes": {"gpu": 8}, "power_limit_kw": 100}],
        "catalog": {"switches": {"sw10": dict(SW10)}},
        "fabric": {"family": "clos", "tiers": tiers},
        "transport": {"protocol": "roce", "qps_per_connection": 1},
        "jobs": [{"name": "j", "accelerators": 96, "tp": 2,
                  "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1GiB"}]}],
        "goals": {"survive": "link", "seed": 7},
    }


# the budget's answer for survive=link at most 3:1 oversubscribed: 7 down, 3 up at the leaves
# and the spines, spine-super bundles of 3 (14 leaves, 6 spines, 3 super-spines)
BUDGETED_TIERS = [{"switch": "sw10", "oversubscription": 7 / 3, "bundle": 1},
                  {"switch": "sw10", "oversubscription": 7 / 3, "bundle": 3},
                  {"switch": "sw10"}]


def _analyze(path, cwd, routing_model, fail=True):
    args = ["analyze", str(path), "--routing", routing_model, "--traffic", "uniform", "--json"]
    if fail:
        args += ["--fail", "leaf0->spine0"]
    p = _run_topo(args, cwd)
    _ok(p, f"topo analyze --routing {routing_model}{' --fail leaf0->spine0' if fail else ''}")
    out = json.loads(p.stdout)
    return out.get("summary", out)


def _check_summary(s, failed_links):
    assert s["endpoints"] == 96 and s["failed"]["links"] == failed_links
    assert s["unreachable_gbps"] == 0.0          # every leaf keeps two of its three uplinks
    side = s["roce_vs_uec"]
    for m in ("roce-hash", "uec-spray"):
        assert side[m]["max_util"] is not None and math.isfinite(side[m]["max_util"]) and side[m]["max_util"] > 0


def test_issue_case_budgeted_fabric_with_a_failed_link(tmp_path):
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(issue_cluster([{"switch": "sw10"}] * 3), sort_keys=False))
    p = _run_topo(["budget", "cluster.yaml", "--max-oversubscription", "3", "-o", "budget.json"], tmp_path)
    _ok(p, "topo budget")
    after = json.loads((tmp_path / "budget.json").read_text())["cluster_after"]
    (tmp_path / "after.yaml").write_text(yaml.safe_dump(after, sort_keys=False))
    _check_summary(_analyze("after.yaml", tmp_path, "fluid", fail=False), 0)
    for model in ("fluid", "roce-hash", "uec-spray"):
        _check_summary(_analyze("after.yaml", tmp_path, model), 1)


def test_issue_fabric_given_explicitly(tmp_path):
    # the same fabric with its tiers written out, so the case stays covered whatever the budget picks
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(issue_cluster(BUDGETED_TIERS), sort_keys=False))
    _check_summary(_analyze("cluster.yaml", tmp_path, "roce-hash"), 1)


# --- waterfill's heap -------------------------------------------------------------------------------
def _guarded(n, dtype, fill, guard=4096):
    """An n-entry array inside a larger one whose guard zones hold a sentinel; (view, buffer)."""
    buf = np.full(n + 2 * guard, fill, dtype)
    return buf[guard:guard + n], buf


def _waterfill_guarded(mod, qp_path, cap, weight):
    """mod.waterfill with heap arrays of exactly links + path entries, between guard zones."""
    P = np.ascontiguousarray(qp_path, np.int64)
    nq, H = P.shape
    L = cap.shape[0]
    flat = P.ravel()
    ok = flat >= 0
    lk_ptr = np.zeros(L + 1, np.int64)
    np.cumsum(np.bincount(flat[ok], minlength=L), out=lk_ptr[1:])
    lk_qp = np.empty(int(ok.sum()), np.int64)
    twin.bucket_links(flat, H, lk_ptr[:-1].copy(), lk_qp)
    size = L + int(ok.sum())
    hk, bk = _guarded(size, np.float64, -7.0)
    hl, bl = _guarded(size, np.int64, -7)
    hv, bv = _guarded(size, np.int64, -7)
    rate = np.zeros(nq)
    mod.waterfill(H, flat, np.ascontiguousarray(weight, np.float64), cap, lk_ptr, lk_qp, np.zeros(L), np.zeros(L),
                  np.zeros(L, np.int64), np.zeros(L, np.int64), np.zeros(nq, np.uint8), hk, hl, hv, rate)
    g = 4096
    for b in (bk, bl, bv):
        assert (b[:g] == -7).all() and (b[g + size:] == -7).all(), "waterfill wrote past its heap arrays"
    return rate


def _issue_paths(failed=True):
    c = topo.from_dict(issue_cluster(BUDGETED_TIERS))
    f = topo.build(c)
    links, nodes = routing.parse_failures(f, ["leaf0->spine0"] if failed else [])
    dead = routing.failure_mask(f, links, nodes)
    d = uniform(f, 1e9, None, routing.protocol_efficiency(c, "roce"))
    r = routing.route(f, d, "roce-hash", failed_links=dead, seed=7, qps=1, record_paths=True)
    return f, r.qp_path, np.where(dead, 0.0, f.link_gbps), d.bytes[r.qp_flow]


def test_waterfill_heap_stays_within_links_plus_path_entries():
    # the issue's paths: the old kernel needed more heap than links + path entries here
    f, P, cap, w = _issue_paths()
    a = _waterfill_guarded(compiled(), P, cap, w)
    b = _waterfill_guarded(twin, P, cap, w)
    assert np.array_equal(a, b)
    assert (a > 0).all()
    # and random path sets, some with long shared paths (many re-keyings per bottleneck)
    rng = np.random.default_rng(5)
    for _ in range(60):
        L, H, nq = int(rng.integers(1, 12)), int(rng.integers(1, 7)), int(rng.integers(1, 80))
        P = np.full((nq, H), -1, np.int64)
        for p in range(nq):
            k = int(rng.integers(1, min(H, L) + 1))
            P[p, :k] = rng.choice(L, k, replace=False)
        cap = rng.choice([1.0, 2.0, 5.0, 50.0], L)
        w = rng.choice([0.5, 1.0, 2.0], nq)
        assert np.array_equal(_waterfill_guarded(compiled(), P, cap, w), _waterfill_guarded(twin, P, cap, w))


def test_waterfill_with_too_small_heap_raises_instead_of_writing():
    # 30 paths over 6 links need at least 6 heap entries; given 3, the kernel must refuse the 4th
    # push (a small case: whatever a kernel wrote past the end would land in the guard zones)
    rng = np.random.default_rng(11)
    L, H, nq = 6, 4, 30
    P = np.full((nq, H), -1, np.int64)
    for p in range(nq):
        k = int(rng.integers(1, H + 1))
        P[p, :k] = rng.choice(L, k, replace=False)
    flat = P.ravel()
    lk_ptr = np.zeros(L + 1, np.int64)
    np.cumsum(np.bincount(flat[flat >= 0], minlength=L), out=lk_ptr[1:])
    lk_qp = np.empty(int((flat >= 0).sum()), np.int64)
    twin.bucket_links(flat, H, lk_ptr[:-1].copy(), lk_qp)
    cap, w = rng.choice([1.0, 3.0], L), np.ones(nq)
    for mod in (compiled(), twin):
        hk, bk = _guarded(3, np.float64, -7.0)
        hl, bl = _guarded(3, np.int64, -7)
        hv, bv = _guarded(3, np.int64, -7)
        with pytest.raises(IndexError, match="heap"):
            mod.waterfill(H, flat, w, cap, lk_ptr, lk_qp, np.zeros(L), np.zeros(L), np.zeros(L, np.int64),
                          np.zeros(L, np.int64), np.zeros(nq, np.uint8), hk, hl, hv, np.zeros(nq))
        for b in (bk, bl, bv):
            assert (b[:4096] == -7).all() and (b[4096 + 3:] == -7).all()


# --- fuzz of failure sets on every family ------------------------------------------------------------
def _cluster(n_racks, nodes, accel, family="clos", tiers=None, nic_ports=1, **fabric):
    d = {"version": 1, "name": "fz",
         "node_types": [{"name": "gpu", "accelerator": "H100", "accelerators": accel, "nics": accel,
                         "nic_gbps": 400, "nic_ports": nic_ports, "power_busy_kw": 10.0, "power_idle_kw": 2.0,
                         "scaleup": {"size": accel}}],
         "racks": [{"name": "r", "count": n_racks, "nodes": {"gpu": nodes}, "power_limit_kw": 200}],
         "fabric": {"family": family, **fabric}}
    if tiers is not None:
        d["fabric"]["tiers"] = tiers
    return d


def _sw(radix):
    return {"radix": radix, "port_gbps": 400, "power_w": 1000, "cost_usd": 10000}


def family_cluster(family, rng):
    """The cluster-file dict of a small random fabric of one of the families topo builds."""
    r = lambda lo, hi: int(rng.integers(lo, hi + 1))
    if family == "fat_tree":                    # k = 4 (16 hosts) or k = 6 (54 hosts)
        return _cluster(8, 1, 2, family="fat_tree", k=4) if r(0, 2) else _cluster(9, 1, 6, family="fat_tree", k=6)
    if family == "clos-2":
        radix, os_, racks = [(6, 1.0, r(1, 2)), (6, 2.0, r(1, 3)), (8, 1.0, r(1, 3)), (8, 3.0, r(1, 3))][r(0, 3)]
        return _cluster(racks, r(1, 2), [2, 4][r(0, 1)], tiers=[{"switch": _sw(radix), "oversubscription": os_},
                                                            {"switch": _sw(radix)}])
    if family == "clos-3":
        radix, os0, os1, bundle, racks = [(4, 1.0, 1.0, 1, r(2, 4)), (4, 2.0, 2.0, 1, r(2, 4)), (4, 3.0, 1.0, 2, r(2, 3)),
                                          (4, 1.0, 1.0, 2, 2), (6, 1.0, 1.0, 1, r(2, 3))][r(0, 4)]
        return _cluster(racks, 2, 2, tiers=[{"switch": _sw(radix), "oversubscription": os0},
                                            {"switch": _sw(radix), "oversubscription": os1, "bundle": bundle},
                                            {"switch": _sw(radix)}])
    if family == "rail_optimized":
        return _cluster(r(1, 3), r(1, 2), 4, family="rail_optimized", tiers=[{"switch": _sw(8)}, {"switch": _sw(8)}])
    if family == "rail_only":
        return _cluster(r(2, 3), r(1, 2), 4, family="rail_only", tiers=[{"switch": _sw(16)}])
    if family == "multi_plane":
        return _cluster(r(1, 3), r(1, 2), 4, nic_ports=2, tiers=[{"switch": _sw(8)}, {"switch": _sw(8)}], planes=2)
    if family == "dual_homed":
        return _cluster(r(1, 3), r(1, 2), 4, nic_ports=2, tiers=[{"switch": _sw(8)}, {"switch": _sw(8)}],
                        dual_homed=True)
    raise ValueError(family)


def custom_fabric(rng):
    """An irregular graph: tiers with random parallel links, dual-homed endpoints and extra links."""
    from helpers.kernel_cases import random_fabric
    return random_fabric(rng)


FAMILIES = ("fat_tree", "clos-2", "clos-3", "rail_optimized", "rail_only", "multi_plane", "dual_homed", "custom")
FAILURES = ("none", "links", "leaf_uplinks", "switch_links", "switch", "plane", "quarter")


def failure_set(f, kind, rng):
    """(failed link ids, failed node ids) of one kind."""
    tier = f.node_tier
    src, dst = f.link_src, f.link_dst
    switches = np.flatnonzero(tier > 0)
    if kind == "none":
        return None, None
    if kind == "links":
        return rng.choice(f.n_links, int(rng.integers(1, 4)), replace=False), None
    if kind == "leaf_uplinks":
        leaf = rng.choice(np.flatnonzero(tier == 1))
        return np.flatnonzero((src == leaf) & (tier[dst] > 1)), None
    if kind == "switch_links":
        return np.flatnonzero(src == rng.choice(switches)), None
    if kind == "switch":
        return None, rng.choice(switches, int(rng.integers(1, 3)), replace=False)
    if kind == "plane":
        return np.flatnonzero(f.link_plane == rng.choice(np.unique(f.link_plane))), None
    if kind == "quarter":
        return rng.choice(f.n_links, max(1, f.n_links // 4), replace=False), None
    raise ValueError(kind)


def random_demands(f, rng, all_pairs=False):
    E = f.n_endpoints
    if all_pairs:                               # uniform all-to-all: many queue pairs per link
        src, dst = np.divmod(np.arange(E * E), E)
        keep = src != dst
        src, dst = src[keep], dst[keep]
        rate = np.full(src.shape[0], 10.0)
        return Demands(src, dst, rate * 1e7, np.full(src.shape[0], -1, np.int32), rate)
    n = int(rng.integers(1, 80))
    src = rng.integers(0, E, n)
    dst = np.where(rng.random(n) < 0.1, src, rng.integers(0, E, n))    # some flows to themselves
    rate = rng.random(n) * 100
    rate[rng.random(n) < 0.15] = 0.0
    ratio = 1e7 if rng.random() < 0.5 else 1e7 * rng.choice([1.0, 3.0], n)
    return Demands(src, dst, rate * ratio + (rate == 0) * 1e6, np.full(n, -1, np.int32), rate)


def _same(a, b):
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), 1e-300)
    return np.abs(a - b).max(initial=0.0) <= 1e-9 * scale


def _use(pure: bool):
    _ext._cache.clear()
    _ext.PURE = pure


@pytest.fixture
def restore_kernels():
    old = _ext.PURE, routing.STRUCTURAL
    yield
    _ext.PURE, routing.STRUCTURAL = old
    _ext._cache.clear()
    routing._prepared.clear()
    routing._plans.clear()


N_CASES = 56   # per family: 8 rounds of the 7 failure kinds, 4 models, both kernels (a few seconds)


@pytest.mark.parametrize("family", FAMILIES)
def test_failure_sets_compiled_equal_twins_on_every_family(family, restore_kernels):
    compiled()                                  # a missing build fails here, not in a fallback
    rng = np.random.default_rng(sum(map(ord, family)))
    for case in range(N_CASES):
        if family == "custom":
            f = custom_fabric(rng)
        else:
            f = topo.build(topo.from_dict(family_cluster(family, rng)))
        kind = FAILURES[case % len(FAILURES)]
        fl, fn = failure_set(f, kind, rng)
        dead = routing.failure_mask(f, fl, fn)
        d = random_demands(f, rng, all_pairs=case % 8 == 3)
        seed, qps = int(rng.integers(0, 1000)), int(rng.integers(1, 4))
        routing.STRUCTURAL = bool(case % 3)     # regular fabrics: structural path (and twin) or general
        for model in ("fluid", "wcmp", "uec-spray", "roce-hash"):
            out = []
            for pure in (False, True):
                _use(pure)
                out.append(routing.route(f, d, model, failed_links=fl, failed_nodes=fn, seed=seed, qps=qps,
                                         efficiency=0.95, record_paths=model == "roce-hash"))
            a, b = out
            where = (family, case, kind, model)
            assert _same(a.link_gbps_load, b.link_gbps_load), where
            assert _same(a.link_bytes, b.link_bytes), where
            assert _same(a.flow_unreachable, b.flow_unreachable), where
            assert not (a.link_gbps_load[dead] > 0).any(), where       # nothing on a failed link
            if model == "roce-hash":
                assert np.array_equal(a.qp_flow, b.qp_flow) and np.array_equal(a.qp_path, b.qp_path), where
                assert not dead[a.qp_path[a.qp_path >= 0]].any(), where
                cap = np.where(dead, 0.0, f.link_gbps)
                w = d.bytes[a.qp_flow] / qps
                rates = []
                for pure in (False, True):
                    _use(pure)
                    rates.append(routing.waterfill(a.qp_path, cap, w) if w.size else np.zeros(0))
                assert _same(*rates), where
            else:
                loads = []
                for pure in (False, True):
                    _use(pure)
                    loads.append(routing.uniform_loads(f, model, 1.0, failed_links=fl, failed_nodes=fn).link_gbps_load)
                assert _same(*loads), where
                assert not (loads[0][dead] > 0).any(), where


# --- bad calls ----------------------------------------------------------------------------------------
def _params(name):
    """The names of a kernel's arguments as one flat list: its check function's parameters for a
    kernel that takes state objects (topo.routing.kstate), else its own."""
    import inspect
    lay = _ext._LAYOUTS.get(("_routing", name))
    return list(lay.names) if lay else list(inspect.signature(getattr(compiled(), name)).parameters)


def _flat(name, args):
    """A call's arguments as the flat list of _params(name) (state objects unpacked)."""
    lay = _ext._LAYOUTS.get(("_routing", name))
    if lay is None:
        return list(args)
    kw = lay.flat(lay.objects(args))
    return [kw[n] for n in lay.names]


def _direct(mod, name, args):
    """mod.name called past the checks with the flat argument list args (packed into its state objects)."""
    lay = _ext._LAYOUTS.get(("_routing", name))
    return getattr(mod, name)(*(pack(name, args) if lay else args))


def _recorded_calls(monkeypatch, run):
    """{kernel function: [argument list of each call]} of the checked kernel calls made by run()."""
    calls = {}
    real = _ext.Checked.__getattr__

    def spy(self, attr):
        fn = real(self, attr)
        if (self.name, attr) not in _ext._CHECKS:
            return fn

        def wrapped(*args):
            calls.setdefault(attr, []).append([a.copy() if isinstance(a, np.ndarray) else a for a in _flat(attr, args)])
            return fn(*args)
        return wrapped
    monkeypatch.setattr(_ext.Checked, "__getattr__", spy)
    _ext._cache.clear()
    try:
        run()
    finally:
        monkeypatch.setattr(_ext.Checked, "__getattr__", real)
        _ext._cache.clear()
    return calls


def _regular_case():
    # 16 endpoints, 8 leaves in 4 pods, 8 spines, 4 super-spines
    f = topo.build(topo.from_dict(_cluster(4, 2, 2, tiers=[{"switch": _sw(4), "oversubscription": 1.0},
                                                           {"switch": _sw(4), "oversubscription": 1.0},
                                                           {"switch": _sw(4)}])))
    return f, random_demands(f, np.random.default_rng(3))


def _exercise_every_kernel(f, d):
    """Calls of every routing kernel on f, with a failed leaf uplink (structural and general paths)."""
    leaf = int(np.flatnonzero(f.node_tier == 1)[0])
    fail = np.flatnonzero(f.link_src == leaf)[-1:]
    E = f.n_endpoints
    across = Demands(np.arange(E), (np.arange(E) + E // 2) % E, np.full(E, 1e9), np.full(E, -1, np.int32), np.ones(E))
    for st in (True, False):
        routing.STRUCTURAL = st
        for model in ("fluid", "roce-hash", "uec-spray"):
            r = routing.route(f, d, model, failed_links=fail, seed=1, qps=2, record_paths=model == "roce-hash")
            if model == "roce-hash":
                routing.waterfill(r.qp_path, np.where(routing.failure_mask(f, fail), 0.0, f.link_gbps))
                routing.completion_times(r.qp_path, np.where(routing.failure_mask(f, fail), 0.0, f.link_gbps),
                                         d.bytes[r.qp_flow] / 2, 0.9)
        routing.route(f, across, "uec-spray", failed_links=fail)        # between pods: spray_cross
    routing.uniform_loads(f, "fluid", 1.0, failed_links=fail)


# Arguments whose values are never used as an index (rates, masses, capacities, hashes' flow ids,
# domains compared for equality, work arrays and outputs the kernel writes before reading): any
# value is safe there, so shifting them need not be refused (a wrong dtype or length still is).
DATA = {
    "bucket_flows": {"rate", "nbytes", "ep_domain", "f_idx", "f_src", "f_dst", "f_mass", "unreach", "stats"},
    "route_fluid": {"link_gbps", "f_mass", "sigma", "den", "order", "tlist", "A", "lh", "load", "grp_up",
                    "grp_down", "unreach", "f_mass2", "load2"},
    "route_hash": {"link_gbps", "f_id", "f_mass", "sigma", "den", "order", "tlist", "nh_start", "nh_list",
                   "nh_head", "load", "unreach", "path", "f_mass2", "load2"},
    "route_uniform": {"link_gbps", "g_size", "d_mult", "load", "grp_up", "grp_down"},
    "bucket_links": {"lk_qp"},
    "waterfill": {"weight", "cap", "rem", "wsum", "n_act", "ver", "frozen", "hk", "hl", "hv", "rate"},
    "maxmin_times": {"mult", "qbytes", "cap", "done", "rem", "active", "info"},
    "route_clos": {"rate", "nbytes", "pool", "pmass", "lw", "epw", "agg", "unreach", "f_idx", "path", "defer",
                   "stats"},
    "spray_cross": {"f_m", "f_m2", "rval", "touched", "load", "load2", "f_ok"},
}
# arrays a kernel may be given with a single entry: g_ptr (fewer groups, fewer flows routed) and the
# pool of leaf-pair next hops (when it is full, route_clos leaves the flows to the general kernels)
SLACK = {"route_fluid": {"g_ptr"}, "route_hash": {"g_ptr"}, "spray_cross": {"g_ptr"}, "route_clos": {"pool"}}


def _data_here(name, params, args):
    """DATA, plus what this particular call leaves unused: g_id when no flow spreads over a group."""
    data = set(DATA[name])
    if name == "route_fluid":
        a = dict(zip(params, args))
        if (a["f_dst"][:int(a["g_ptr"][-1])] >= 0).all():
            data.add("g_id")
    return data


def _spoiled(a):
    """(kind, array): a wrong dtype, a single entry, and every value shifted far up and far down."""
    out = [("dtype", a.astype(np.float32 if a.dtype != np.float32 else np.float64))]
    if a.size > 1:
        out.append(("short", a[:1].copy()))
    if a.dtype.kind == "i":
        out += [("up", a + 10 ** 6), ("down", a - 10 ** 6)]
    return out


@pytest.mark.parametrize("pure", [False, True])
def test_bad_kernel_calls_raise_before_the_kernel_runs(pure, monkeypatch, restore_kernels):
    _use(pure)
    f, d = _regular_case()
    calls = _recorded_calls(monkeypatch, lambda: _exercise_every_kernel(f, d))
    assert set(calls) == {name for mod, name in _ext._CHECKS if mod == "_routing"}, set(calls)
    K = _ext.kernel("_routing")
    refused = 0
    # the first and the last call of each kernel: route_fluid routing flows and spreading uniform
    # loads over groups, route_clos hashing and spraying
    sites = [(name, args) for name, seq in sorted(calls.items()) for args in {0: seq[0], 1: seq[-1]}.values()]
    for name, args in sites:
        params = _params(name)
        assert len(params) == len(args)
        getattr(K, name)(*pack(name, [a.copy() if isinstance(a, np.ndarray) else a for a in args]))   # as recorded: accepted
        data = _data_here(name, params, args)
        for i, a in enumerate(args):
            if not isinstance(a, np.ndarray) or a.size == 0:
                continue
            for kind, bad in _spoiled(a):
                spoiled = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
                spoiled[i] = bad
                may_pass = ((kind in ("up", "down") and params[i] in data)
                            or (kind == "short" and params[i] in SLACK.get(name, ())))
                try:
                    getattr(K, name)(*pack(name, spoiled))
                except KernelArgumentError:
                    refused += 1
                    continue
                assert may_pass, f"{name}: {params[i]} {kind} was not refused"
    assert refused > 100


@pytest.mark.parametrize("pure", [False, True])
def test_flows_not_grouped_by_destination_raise(pure, monkeypatch, restore_kernels):
    # a destination whose home switches are not its group's: the kernels index their per-home
    # arrays by the group representative's homes, so they refuse it (ValueError) per flow
    _use(pure)
    f = topo.build(topo.from_dict(family_cluster("dual_homed", np.random.default_rng(2))))
    E = f.n_endpoints
    d = Demands(np.zeros(E - 1, np.int64), np.arange(1, E), np.full(E - 1, 1e9), np.full(E - 1, -1, np.int32),
                np.ones(E - 1))
    routing.STRUCTURAL = False
    calls = _recorded_calls(monkeypatch, lambda: [routing.route(f, d, m, record_paths=m == "roce-hash")
                                                  for m in ("fluid", "wcmp", "roce-hash")])
    K = _ext.kernel("_routing")
    P = routing.prepare(f, None)
    for name, args in ((n, a) for n, seq in calls.items() for a in seq if n in ("route_fluid", "route_hash")):
        params = _params(name)
        a = dict(zip(params, args))
        g_ptr, f_dst = a["g_ptr"], a["f_dst"]
        first = int(np.flatnonzero(np.diff(g_ptr) > 0)[0])
        other = np.flatnonzero(P.ep_group != P.ep_group[a["g_rep"][first]])
        homes = lambda e: set(f.link_dst[P.up_link[P.up_ptr[e]:P.up_ptr[e + 1]]].tolist())
        stranger = next(int(e) for e in other if homes(e) != homes(int(a["g_rep"][first])))
        f_dst = f_dst.copy()
        f_dst[g_ptr[first]] = stranger          # one flow's destination moved to another group
        args = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
        args[params.index("f_dst")] = f_dst
        with pytest.raises(ValueError, match="not grouped by destination"):
            getattr(K, name)(*pack(name, args))


def test_waterfill_refuses_paths_that_do_not_fit():
    P = np.array([[0, 1, -1], [1, 2, -1]], np.int64)
    cap = np.ones(3)
    with pytest.raises(KernelArgumentError, match="weight"):
        routing.waterfill(P, cap, np.ones(1))            # one weight for two paths
    with pytest.raises((KernelArgumentError, ValueError)):
        routing.waterfill(P, np.ones(2), np.ones(2))      # link 2 with two capacities
    assert np.allclose(routing.waterfill(P, cap, np.ones(2)), [0.5, 0.5])


# --- the bounds-checked build ---------------------------------------------------------------------------
def test_required_bounds_checked_build():
    if os.environ.get("TOPO_REQUIRE_BOUNDSCHECK", "") != "1":
        pytest.skip("TOPO_REQUIRE_BOUNDSCHECK=1 is set by .ci/run's bounds-checked step")
    for name in ("_routing",):
        mod = compiled(name)
        assert mod.BOUNDSCHECK, f"{mod.__file__} is not a TOPO_BOUNDSCHECK=1 build"


def test_bounds_checked_build_raises_on_an_index_out_of_bounds(monkeypatch, restore_kernels):
    mod = compiled()
    if not mod.BOUNDSCHECK:
        pytest.skip("the kernels were built without TOPO_BOUNDSCHECK=1 (an unchecked bad call is undefined)")
    # called directly, past the argument checks: link 5 of two, and a negative slot in lk_qp (with
    # wraparound off, as in the normal build, -5 is out of bounds rather than the fifth from the end)
    for flat, cursor in (([0, 5], [0, 0]), ([0, 1], [-5, 0])):
        with pytest.raises(IndexError):
            mod.bucket_links(np.array(flat, np.int64), 1, np.array(cursor, np.int64), np.zeros(8, np.int64))
    # an index error inside a helper (the BFS of route_fluid, the reach test of spray_cross) propagates
    _use(False)
    f, d = _regular_case()
    calls = _recorded_calls(monkeypatch, lambda: _exercise_every_kernel(f, d))
    for name, arg in (("route_fluid", "sw_head"), ("route_hash", "sw_head"), ("spray_cross", "sd_lnk")):
        args = calls[name][0]
        params = _params(name)
        i = params.index(arg)
        args[i] = args[i] + f.n_links * 10
        with pytest.raises(IndexError):
            _direct(mod, name, args)


# --- sealed state objects -----------------------------------------------------------------------------
@pytest.mark.parametrize("pure", [False, True])
def test_sealed_tables_are_checked_once_and_again_when_an_array_is_replaced(pure, monkeypatch, restore_kernels):
    # the engine seals the fabric arrays and the Clos tables it caches: their arrays are checked at
    # the first call only, are read-only, and a sealed object given a bad array is checked again
    _use(pure)
    routing.STRUCTURAL = True
    f, d = _regular_case()
    counts = {}
    for name in ("route_fluid", "route_clos"):
        lay = _ext._LAYOUTS[("_routing", name)]

        def counting(c, obj, _real=lay.table_facts, _name=name):
            counts[_name] = counts.get(_name, 0) + 1
            return _real(c, obj)
        monkeypatch.setattr(lay, "table_facts", counting)
    first = [routing.route(f, d, m, seed=1, qps=2).link_gbps_load for m in ("fluid", "roce-hash")]
    for _ in range(3):
        again = [routing.route(f, d, m, seed=1, qps=2).link_gbps_load for m in ("fluid", "roce-hash")]
        assert all(a.tobytes() == b.tobytes() for a, b in zip(first, again))
    routing.STRUCTURAL = False
    routing.route(f, d, "fluid")
    routing.route(f, d, "fluid")
    assert counts == {"route_clos": 1, "route_fluid": 1}, counts
    P = routing.prepare(f, None)
    fa = routing._fabric_arrays(f, P)
    tb = routing._clos_tables(f, routing._plan(f, P))
    assert not fa.sw_adj.flags.writeable and not tb.ept.flags.writeable
    with pytest.raises(ValueError):
        tb.sd_lnk[0] = 0
    routing.STRUCTURAL = True
    good = tb.sd_lnk
    tb.sd_lnk = good + 10 ** 6          # replaced after sealing: every array is checked again
    with pytest.raises(KernelArgumentError, match="sd_lnk"):
        routing.route(f, d, "roce-hash", seed=1)
    tb.sd_lnk = good
    assert routing.route(f, d, "roce-hash", seed=1, qps=2).link_gbps_load.tobytes() == first[1].tobytes()
