"""Routing and congestion: demands onto links, per routing model.

Owns the Python layer over the routing kernels (ext/_routing.pyx): dtype
coercion, output allocation, scale-up accounting, and the analysis built on top
(per-tier statistics, per-job completion times and bus bandwidth, RoCE hashing
against Ultra Ethernet spraying). The alive mask of links after failures, the
prepared arrays and destination groups, and the PXN rewrite live in
:mod:`topo.routing.prepared` (shared with the LP); their names are the engine's too.
It never parses files and never prints.

Models
------
* ``fluid``: ideal ECMP over all equal-cost shortest paths: at every switch a
  flow splits over next hops in proportion to their number of shortest paths
  to the destination (every shortest path carries the same share). Under
  uniform all-to-all this is subset edge betweenness.
* ``wcmp``: like fluid, split in proportion to link capacity.
* ``roce-hash``: a flow is opened as ``channels`` channels of ``qps`` queue
  pairs each, as collective libraries open them; each (channel, queue pair)
  carries 1/(channels x qps) of the flow's bytes and takes one link per hop
  chosen by a seeded splitmix64 hash of (seed, flow id, k, node), where
  k = channel x qps + queue pair is its own source-port entropy, mapped onto
  the equal-cost next-hop links (per-hop ECMP as switches do it; the first hop
  picks one of the endpoint's ports the same way). A switch sees only the
  5-tuples, so the loads depend on the product channels x qps alone (one
  channel of q queue pairs is the earlier qps_per_connection = q exactly).
* ``uec-spray``: packet spraying, per-hop equal split over the equal-cost next
  hops. On symmetric fabrics it equals fluid; it differs where the number of
  paths behind each next hop differs (asymmetric graphs, failed links).
* ``optimal``: the max-concurrent-flow LP (see :mod:`topo.routing.lp`).

Flows between endpoints of one scale-up domain never touch the scale-out
fabric; they are counted as scale-up load of their endpoints. On rail-only
fabrics a flow between rails of two different domains first crosses the
source domain to the member on the destination rail (scale-up load), then
travels on that rail (PXN).

Job completion under fluid-type models: a job's time is its ideal time times
the largest utilisation (at least 1) of any link its flows load (proportional
sharing of overloaded links). Under roce-hash: per-QP max-min fair
water-filling of all queue pairs with equal weights (what DCQCN-like per-QP
rate control approximates), refilled as queue pairs finish (see
:func:`completion_times`); ``sharing="bytes"`` keeps the byte-weighted variant
(weight = the queue pair's bytes, so flows sharing no bottleneck finish
together); a collective ends when its slowest flow ends. Scale-up traffic adds
its own ideal time (bytes / scale-up bandwidth) as a floor.

Structural path: on a regular Clos, roce-hash and uec-spray route every flow
in one pass from the tier structure (see :mod:`topo.routing.clos`), with the
choices of the general kernels described above.

Wire efficiency: demands carry goodput rates; the wire load is rate /
efficiency (transport headers at the MTU). The RoCE-vs-UEC comparison uses
each protocol's own efficiency at the cluster's MTU.
"""
from __future__ import annotations

import copy
import math
import weakref
from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import numpy as np

from topo.core import limits
from topo.routing import kstate as ks
from topo.routing.kernels import FlowStats, KernelArgumentError, fluid_threads, kernel, seal, symmetry_pays, threads
from topo.core.errors import SpecError
from topo.routing.clos import clos_plan, spread_pairs, spread_spray
from topo.traffic.demand import Demands, scaleup_times_s
from topo.routing.prepared import (  # noqa: F401  (the engine's public names)
    _MASKS, Prepared, _prepared, _pxn, _scaleup_loads, failure_mask, prepare)

MODELS = ("fluid", "wcmp", "roce-hash", "uec-spray", "optimal")
_EMPTY = np.zeros(0)
_FLUID_MODE = {"fluid": 0, "wcmp": 1, "uec-spray": 2}
_QP_MODELS = ("roce-hash",)  # the models whose loads depend on channels and queue pairs per channel


# --- fabric preparation (topo.routing.prepared; its names are the engine's too) -------------
# The regular-Clos tables per prepared set, keyed by the prepared set through a weak reference
# (an entry lives exactly as long as its prepared arrays).
_plans: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
# route roce-hash and uec-spray structurally on regular Clos fabrics (tests switch it off to
# compare with the general kernels)
STRUCTURAL = True


# --- results --------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class RouteResult:
    """Loads of one routing of demands.

    link_gbps_load: offered wire load (Gb/s) per directed link; link_bytes: bytes
    per iteration per directed link; utilization = load / capacity (0 where
    the link is failed). unreachable_*: demand with no alive path. scaleup_*:
    per endpoint, Gb/s sent and received inside its scale-up domain.
    qp_*: for roce-hash with paths recorded: per queue pair its flow (index
    into the demands), wire load, and link ids ([n_qp, H], -1 padded).
    """
    model: str
    link_gbps_load: np.ndarray
    link_bytes: np.ndarray
    utilization: np.ndarray
    unreachable_gbps: float
    unreachable_bytes: float
    offered_gbps: float
    flow_unreachable: np.ndarray
    scaleup_sent_gbps: np.ndarray
    scaleup_recv_gbps: np.ndarray
    qp_flow: Optional[np.ndarray] = None
    qp_gbps: Optional[np.ndarray] = None
    qp_path: Optional[np.ndarray] = None

    @property
    def unreachable_fraction(self) -> float:
        return self.unreachable_gbps / self.offered_gbps if self.offered_gbps > 0 else 0.0


def route(fabric, demands: Demands, model: str = "fluid", *, failed_links=None, failed_nodes=None,
          seed: int = 0, qps: int = 1, efficiency: float = 1.0, record_paths: bool = False,
          channels: int = 1) -> RouteResult:
    """Route demands on the fabric; offered wire load = rate_gbps / efficiency.

    ``failed_links``: link ids or a boolean mask over directed links (both
    directions fail); ``failed_nodes``: switch ids whose links all fail.
    Cost: O(destination groups x switch links) for the BFS, plus O(flows x
    uplinks) (fluid-type) or O(flows x qps x hops) (roce-hash). roce-hash and
    uec-spray on a regular Clos take the structural path (topo.routing.clos):
    O(flows x qps x hops) and O(flows) with no BFS, the same paths and loads.
    ``channels`` x ``qps`` (channels per collective x queue pairs per channel) is the
    number of hashed (channel, QP) flows each flow is opened as (roce-hash only; the
    other models do not depend on them); at most limits.MAX_HASHED_QPS of them in all.
    """
    if model not in MODELS:
        raise SpecError([("routing", f"unknown routing model {model!r}; expected one of {list(MODELS)}")])
    if model == "optimal":
        raise SpecError([("routing", "the optimal model is a bound, computed by topo.routing.lp.max_concurrent_flow, not a routing of loads")])
    if qps < 1:
        raise SpecError([("transport.qps_per_channel", f"must be at least 1 (found {qps})")])
    if channels < 1:
        raise SpecError([("transport.channels", f"must be at least 1 (found {channels})")])
    hashed = demands.n * channels * qps
    if model == "roce-hash" and hashed > limits.MAX_HASHED_QPS:
        raise SpecError([("transport.qps_per_channel",
                          f"{demands.n:,} flows x {channels} channels x {qps} queue pairs per channel = {hashed:,} "
                          f"hashed flows; at most {limits.MAX_HASHED_QPS:,} are routed at once (fewer channels "
                          f"or queue pairs, or --routing uec-spray / fluid, which do not depend on them)")])
    qps = channels * qps   # the kernels hash k = channel x qps_per_channel + queue pair, k < channels x qps
    dead = failure_mask(fabric, failed_links, failed_nodes)
    return _route_on(fabric, prepare(fabric, dead), dead, demands, model, seed, qps, efficiency, record_paths)


def _route_on(fabric, P, dead, demands: Demands, model: str, seed: int, qps: int, efficiency: float,
              record_paths: bool) -> RouteResult:
    """route() on prepared arrays ``P`` of the failure mask ``dead`` (both made once by the caller,
    which has checked the model and ``qps`` = channels x queue pairs per channel)."""
    src = np.asarray(demands.src, np.int64)
    dst = np.asarray(demands.dst, np.int64)
    nbytes = np.ascontiguousarray(demands.bytes, np.float64)
    rate = np.ascontiguousarray(demands.rate_gbps, np.float64)
    E = fabric.n_endpoints
    new_src, up_s, up_r = src, np.zeros(E), np.zeros(E)
    if fabric.family == "rail_only":
        new_src, up_s, up_r = _pxn(fabric, src, dst, rate / efficiency)
    if model in ("roce-hash", "uec-spray") and STRUCTURAL:
        # the tables describe the healthy fabric; failures are applied per flow
        plan = _plan(fabric, P if not dead.any() else prepare(fabric, None))
        if plan is not None and (plan.K == 1 or not dead.any()):   # several planes: healthy only
            return _route_clos(fabric, P, plan, model, new_src, dst, rate, nbytes, efficiency, seed, qps,
                               record_paths, src, up_s, up_r, dead)
    return _route_general(fabric, P, model, new_src, dst, rate, nbytes, efficiency, seed, qps, record_paths,
                          src, up_s, up_r)


# per fabric: the link and endpoint load buffers hashed_paths hands route_clos, kept across calls.
# route_clos adds the loads of the flows it routes into them, and hashed_paths never reads them: the
# paths do not depend on them. A fresh zeroed pair per call (100 MB of link loads at 1M accelerators)
# cost ~5 ms a call in page faults, which the collective-time patterns (thousands of small flow sets)
# paid each time. Never read, so calls that share them cannot change a result.
_sinks: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _sink(fabric, plan) -> tuple[np.ndarray, np.ndarray]:
    hit = _sinks.get(fabric)
    n_epw = 4 * fabric.n_endpoints * plan.K
    if hit is None or hit[1].shape[0] != n_epw:
        hit = _sinks[fabric] = (np.zeros(2 * fabric.n_links), np.zeros(n_epw))
    return hit


def hashed_paths(fabric, demands: Demands, *, failed_links=None, seed: int = 0, qps: int = 1, channels: int = 1,
                 efficiency: float = 1.0):
    """(qp_flow, qp_path, flow_unreachable) of ``route(fabric, demands, "roce-hash", record_paths=True,
    ...)``, without its loads: for many small flow sets on one fabric (the collective-time patterns).
    On a healthy regular Clos straight from the structural kernel, with no per-link or per-endpoint
    arrays built afterwards (the same kernel call as route(), so the same paths); elsewhere, and when
    a flow is deferred to the general kernels, from route()."""
    def full():
        r = route(fabric, demands, "roce-hash", failed_links=failed_links, seed=seed, qps=qps, channels=channels,
                  efficiency=efficiency, record_paths=True)
        return r.qp_flow, r.qp_path, r.flow_unreachable
    q = channels * qps
    if (not STRUCTURAL or fabric.family == "rail_only" or qps < 1 or channels < 1 or demands.n * q > limits.MAX_HASHED_QPS
            or (failed_links is not None and np.any(failed_links))):
        return full()
    plan = _plan(fabric, prepare(fabric, None))
    if plan is None:
        return full()
    src = np.ascontiguousarray(demands.src, np.int64)
    dst = np.ascontiguousarray(demands.dst, np.int64)
    n_fl, H = dst.shape[0], 6
    unreach = np.zeros(n_fl)
    f_idx = np.empty(n_fl, np.int64)
    path = np.full(n_fl * q * H, -1, np.int64)
    st = np.zeros(5)
    counts = np.zeros(2, np.int64)
    z8, zi = np.zeros(0, np.uint8), np.zeros(0, np.int64)
    lw, epw = _sink(fabric, plan)
    nb, _, _ = kernel("_routing").route_clos(
        _clos_tables(fabric, plan),
        ks.ClosDemands(src=src, dst=dst, rate=np.ascontiguousarray(demands.rate_gbps, np.float64),
                       nbytes=np.ascontiguousarray(demands.bytes, np.float64), inv_eff=1.0 / efficiency),
        ks.ClosWork(alive=z8, lclean=z8, LP=0, pair_ptr=zi, pair_cnt=zi, pool=zi, pmass=np.zeros(0),
                    lw=lw, epw=epw, agg=np.zeros(0),
                    unreach=unreach, f_idx=f_idx, path=path, defer=zi, stats=st, counts=counts),
        ks.ClosOptions(0, plan.n_leaves, plan.K, np.uint64(seed & (2**64 - 1)), q, H))
    stats = FlowStats.of_route_clos(st)
    if stats.negative_flows > 0:
        raise SpecError([("traffic", f"{stats.negative_flows} demands have negative bytes or rates")])
    if int(counts[0]):
        return full()
    return np.repeat(f_idx[:nb], q), path[:nb * q * H].reshape(-1, H), unreach


def sparse_loads(fabric, demands: Demands, model: str, *, failed_links=None, efficiency: float = 1.0,
                 kept: Optional[dict] = None):
    """(links with a non-zero load, their loads, flow_unreachable) of ``route(fabric, demands, model,
    failed_links=..., efficiency=...)`` (a fluid-type model), for many small flow sets on one fabric.
    uec-spray on a healthy regular Clos goes through the per-job router of :func:`_run_model`, whose
    buffers live in ``kept`` (a dict the caller keeps across its calls); the rest through route().
    The loads are route()'s, bit for bit."""
    if model == "uec-spray" and (failed_links is None or not np.any(failed_links)):
        if kept is None:
            kept = {}
        if "spray" not in kept:
            healthy = np.zeros(fabric.n_links, bool)
            kept["spray"] = _SprayJobs.of(fabric, prepare(fabric, None), healthy, model)
        lean = kept["spray"]
        if lean is not None:
            res = lean.job(demands.src, demands.dst, demands.rate_gbps, demands.bytes, efficiency, 0)
            if res is not None:
                return res[0], res[1], res[3]
    r = route(fabric, demands, model, failed_links=failed_links, efficiency=efficiency)
    nz = np.flatnonzero(r.link_gbps_load != 0)
    return nz, r.link_gbps_load[nz], r.flow_unreachable


def _route_general(fabric, P, model, new_src, dst, rate, nbytes, efficiency, seed, qps, record_paths,
                   src, up_s, up_r, flow_ids=None) -> RouteResult:
    """route() with the general kernels: flows bucketed by destination group, a BFS per group.
    ``flow_ids`` (optional): the flows' ids for the hash (default: their index)."""
    L = fabric.n_links
    load = np.zeros(L)
    bload = np.zeros(L)
    n_fl = src.shape[0]
    unreach = np.zeros(n_fl)
    ng = P.g_rep.shape[0]
    K = kernel("_routing")
    # classify (scale-up, unreachable) and counting-sort the routed flows by destination group
    g_ptr = np.zeros(ng + 1, np.int64)
    fi = np.empty(n_fl, np.int64)
    fs = np.empty(n_fl, np.int64)
    fd = np.empty(n_fl, np.int64)
    fm = np.empty(n_fl)
    st = np.zeros(8)
    nb = K.bucket_flows(np.ascontiguousarray(new_src, np.int64), np.ascontiguousarray(dst, np.int64), rate, nbytes,
                        1.0 / efficiency, fabric.ep_domain, P.ep_group, g_ptr, np.zeros(ng, np.int64),
                        fi, fs, fd, fm, unreach, st)
    st = FlowStats.of_bucket_flows(st)
    if st.negative_flows > 0:
        raise SpecError([("traffic", f"{st.negative_flows} demands have negative bytes or rates")])
    if st.same_domain_flows > 0 and fabric.family != "rail_only":
        up_s, up_r = _scaleup_loads(fabric, src, dst, rate / efficiency)
    fi, fs, fd, fm = fi[:nb], fs[:nb], fd[:nb], fm[:nb]
    if nb == 0:
        ratio = 0.0
    elif st.nonpositive_flows == 0 and (st.max_bytes_per_mass - st.min_bytes_per_mass
                                        <= 1e-12 * max(abs(st.max_bytes_per_mass), 1e-300)):
        ratio = st.min_bytes_per_mass
    else:
        ratio = None
    fb = None if ratio is not None else np.ascontiguousarray(nbytes[fi] * 8.0 / 1e9)  # bytes follow the same split
    un = np.zeros(fi.shape[0])
    n = fabric.n_nodes
    K = kernel("_routing")
    dist = np.full(n, -1, np.int64)
    hidx = np.full(n, -1, np.int64)
    sigma = np.zeros(n)
    den = np.zeros(n)
    order_w = np.zeros(n, np.int64)
    qp_flow = qp_gbps = qp_path = None
    if model in _FLUID_MODE:
        mode = _FLUID_MODE[model]
        massw = np.zeros(n)
        A = np.zeros(n * P.KH)
        lh = np.zeros(2 * P.KH)
        g_id = np.arange(ng, dtype=np.int64)
        fsg = np.full(fi.shape[0], -1, np.int64)
        gu = np.zeros(1)
        # bytes follow the same splits: scaled afterwards when every flow has the same bytes/rate
        # ratio, else carried as a second weight in the same pass (which needs a positive rate
        # wherever there are bytes; otherwise a second pass)
        if ratio is not None:
            runs = ((fm, load, _EMPTY, _EMPTY),)
        elif not ((fb > 0) & ~(fm > 0)).any():
            runs = ((fm, load, fb, bload),)
        else:
            runs = ((fm, load, _EMPTY, _EMPTY), (fb, bload, _EMPTY, _EMPTY))
        for w, out, w2, out2 in runs:
            u = np.zeros(fi.shape[0])
            K.route_fluid(
                _fabric_arrays(fabric, P),
                ks.GroupedFlows(g_ptr=g_ptr, g_rep=P.g_rep, g_id=g_id, f_src=fs, f_dst=fd, f_sg=fsg, f_mass=w,
                                f_mass2=w2),
                ks.Work(dist=dist, hidx=hidx, sigma=sigma, den=den, mass=massw,
                        mass2=np.zeros(n) if w2.shape[0] else _EMPTY, order=order_w,
                        tstamp=np.full(n, -1, np.int64), tlist=np.zeros(n, np.int64), A=A, lh=lh),
                ks.Loads(load=out, load2=out2, grp_up=gu, grp_down=gu, unreach=u),
                ks.FluidOptions(mode, P.KU, P.KH, fluid_threads(ng, P.sw_adj.shape[0])))
            if w is fm:
                un = u
    else:
        fid = fi if flow_ids is None else np.ascontiguousarray(flow_ids[fi], np.int64)
        nh_start = np.zeros(n, np.int64)
        nh_cnt = np.full(n, -1, np.int64)
        nh_list = np.zeros(max(P.sw_adj.shape[0], 1), np.int64)
        nh_head = np.zeros(max(P.sw_adj.shape[0], 1), np.int64)
        H = 2 * max(fabric.n_tiers, 1) + 2 if fabric.family != "custom" else 16
        # bytes follow the same queue-pair paths: scaled afterwards when every flow has the same
        # bytes/rate ratio (one job, one pattern), else carried as a second weight in the same pass
        w2, out2 = (_EMPTY, _EMPTY) if ratio is not None else (fb, bload)
        while True:
            path = np.full(fi.shape[0] * qps * H if record_paths else 0, -1, np.int64)
            load[:] = 0.0
            bload[:] = 0.0
            un = np.zeros(fi.shape[0])
            longest = K.route_hash(
                _fabric_arrays(fabric, P),
                ks.GroupedFlows(g_ptr=g_ptr, g_rep=P.g_rep, f_src=fs, f_dst=fd, f_id=fid, f_mass=fm, f_mass2=w2),
                ks.Work(dist=dist, hidx=hidx, sigma=sigma, den=den, order=order_w, tstamp=np.full(n, -1, np.int64),
                        tlist=np.zeros(n, np.int64), nh_start=nh_start, nh_cnt=nh_cnt, nh_list=nh_list,
                        nh_head=nh_head),
                ks.Loads(load=load, load2=out2, unreach=un, path=path),
                ks.HashOptions(np.uint64(seed & (2**64 - 1)), qps, H, fluid_threads(ng, P.sw_adj.shape[0])))
            if not record_paths or longest <= H:
                break
            H = int(longest)
        if record_paths:
            qp_flow = np.repeat(fi, qps)
            qp_gbps = np.repeat(fm / qps, qps)
            qp_path = path.reshape(-1, H)
            bad = np.repeat(un > 0, qps) | (qp_path[:, 0] < 0)  # unreachable (also with zero rate)
            if bad.any():
                qp_flow, qp_gbps, qp_path = qp_flow[~bad], qp_gbps[~bad], qp_path[~bad]
    if un.any():
        unreach[fi] += un
    if ratio is not None:
        bload = load * (ratio * 8.0 / 1e9)
    bload *= 1e9 / 8.0
    util = _utilization(fabric, P, load)
    un_b = float((unreach > 0) @ nbytes) if unreach.size and (st.unreachable_gbps > 0 or un.any()) else 0.0
    return RouteResult(model=model, link_gbps_load=load, link_bytes=bload, utilization=util,
                       unreachable_gbps=float(st.unreachable_gbps + un.sum()), unreachable_bytes=un_b,
                       offered_gbps=st.offered_gbps, flow_unreachable=unreach,
                       scaleup_sent_gbps=up_s, scaleup_recv_gbps=up_r,
                       qp_flow=qp_flow, qp_gbps=qp_gbps, qp_path=qp_path)


_caps: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_fabric_views: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _fabric_arrays(fabric, P) -> ks.FabricArrays:
    """The general kernels' FabricArrays of a prepared set, built and sealed once per prepared
    set (its arrays are checked at the first kernel call, not at every call)."""
    fa = _fabric_views.get(P)
    if fa is None:
        fa = _fabric_views[P] = seal(ks.FabricArrays(
            sw_ptr=P.sw_ptr, sw_adj=P.sw_adj, sw_head=P.sw_head, link_dst=fabric.link_dst,
            link_gbps=fabric.link_gbps, up_ptr=P.up_ptr, up_link=P.up_link, ep_up1=P.ep_up1,
            ep_home1=P.ep_home1))
    return fa


def _clos_tables(fabric, plan) -> ks.ClosTables:
    """The ClosTables of a regular-Clos plan (route_clos and spray_cross), built and sealed once
    per plan and kept in its cache."""
    tb = plan.cache.get("tables")
    if tb is None:
        tb = plan.cache["tables"] = seal(ks.ClosTables(
            ept=plan.ept, pod_b1=plan.pod_b1, up_ptr=plan.up_ptr, uph=plan.uph, sd_base=plan.sd_base,
            sd_lnk=plan.sd_lnk, xd_base=plan.xd_base, xd_start=plan.xd_start, xd_cnt=plan.xd_cnt,
            xd_lnk=plan.xd_lnk, xd_head=plan.xd_head, link_dst=fabric.link_dst, pod=plan.pod, rank=plan.rank,
            pod_slot=plan.pod_slot, up_lnk=plan.up_lnk, up_head=plan.up_head))
    return tb


def _utilization(fabric, P, load: np.ndarray) -> np.ndarray:
    """load / capacity per directed link: 0 on idle links without capacity (failed, or 0 Gb/s),
    inf on loaded ones. The divisors (1 where there is no capacity) and the links without
    capacity are kept per prepared set: one pass over the links per call."""
    hit = _caps.get(P)
    if hit is None:
        cap = np.where(P.alive.astype(bool), fabric.link_gbps, 0.0)
        hit = _caps[P] = (np.where(cap > 0, cap, 1.0), np.flatnonzero(~(cap > 0)))
    div, none = hit
    util = load / div
    util[none] = np.where(load[none] > 0, np.inf, 0.0)
    return util


def _plan(fabric, P):
    """The regular-Clos tables of this fabric and mask (cached beside the prepared arrays), or None."""
    if P in _plans:
        return _plans[P]
    plan = clos_plan(fabric, P)
    _plans[P] = plan
    return plan


def _route_clos(fabric, P, plan, model, new_src, dst, rate, nbytes, efficiency, seed, qps, record_paths,
                src, up_s, up_r, dead) -> RouteResult:
    """route() on a regular Clos: one structural pass over the demands (see topo.routing.clos).

    With failures, flows inside a pod between leaves that lost links take the alive
    choices from per-leaf-pair lists; flows between pods (and pairs with no direct spine
    left) go to the general kernels, which add their loads to the same arrays.
    """
    K = kernel("_routing")
    L = fabric.n_links
    n_fl = dst.shape[0]
    spray = model == "uec-spray"
    H = 6 if not spray else 0
    q = 1 if spray else qps
    NL = plan.n_leaves
    fm = bool(dead.any())
    lw = np.zeros(2 * L if not spray else 0)  # spraying loads switch links from agg/pmass afterwards
    epw = np.zeros(4 * fabric.n_endpoints * plan.K)
    agg = np.zeros(2 * (2 + plan.n_slots) * NL if spray else 0)
    unreach = np.zeros(n_fl)
    rec = record_paths and not spray
    f_idx = np.empty(n_fl if rec else 0, np.int64)
    path = np.full(n_fl * q * H if rec else 0, -1, np.int64)
    st = np.zeros(5)
    counts = np.zeros(2, np.int64)
    if fm:
        alive = P.alive
        up_src = fabric.link_src[plan.up_lnk]
        lf = fabric.node_tier[up_src] == 1
        bad = np.bincount(up_src[lf], weights=1.0 - alive[plan.up_lnk[lf]], minlength=fabric.n_nodes)
        lclean = (bad == 0).astype(np.uint8)
        LP = int(plan.pod_nlf.max(initial=1))
        deg = np.diff(plan.up_ptr)
        pool_size = int(min(NL * LP * max(int(deg.max(initial=1)), 1), 1 << 24))
        pair_ptr = np.full(NL * LP, -1, np.int64)
        pair_cnt = np.zeros(NL * LP, np.int64)
        pool = np.empty(pool_size, np.int64)
        pmass = np.zeros(2 * NL * LP if spray else 0)
        defer = np.empty(n_fl, np.int64)
    else:
        alive = lclean = np.zeros(0, np.uint8)
        LP = 0
        pair_ptr = pair_cnt = pool = defer = np.zeros(0, np.int64)
        pmass = np.zeros(0)
    nb, two, r0 = K.route_clos(
        _clos_tables(fabric, plan),
        ks.ClosDemands(src=np.ascontiguousarray(new_src, np.int64), dst=np.ascontiguousarray(dst, np.int64),
                       rate=rate, nbytes=nbytes, inv_eff=1.0 / efficiency),
        ks.ClosWork(alive=alive, lclean=lclean, LP=LP, pair_ptr=pair_ptr, pair_cnt=pair_cnt, pool=pool, pmass=pmass,
                    lw=lw, epw=epw, agg=agg, unreach=unreach, f_idx=f_idx, path=path, defer=defer, stats=st,
                    counts=counts),
        ks.ClosOptions(int(spray), NL, plan.K, np.uint64(seed & (2**64 - 1)), q, max(H, 1), threads()))
    load, load2 = (lw[0::2].copy(), lw[1::2].copy()) if not spray else (np.zeros(L), np.zeros(L) if two else None)
    del lw
    epw = epw.reshape(-1, 4)
    ep_down = plan.cache.get("ep_down")
    if ep_down is None:
        ep_down = plan.cache["ep_down"] = plan.ep_up ^ 1
    load[plan.ep_up] += epw[:, 0]
    load[ep_down] += epw[:, 2]
    if two:
        load2[plan.ep_up] += epw[:, 1]
        load2[ep_down] += epw[:, 3]
    stats = FlowStats.of_route_clos(st)
    if stats.negative_flows > 0:
        raise SpecError([("traffic", f"{stats.negative_flows} demands have negative bytes or rates")])
    if stats.same_domain_flows > 0 and fabric.family != "rail_only":
        up_s, up_r = _scaleup_loads(fabric, src, dst, rate / efficiency)
    if spray:
        spread_spray(fabric, plan, agg[0::2], load)
        if two:
            spread_spray(fabric, plan, agg[1::2], load2)
        if pmass.size:
            spread_pairs(fabric, plan, pair_ptr, pair_cnt, pool, [pmass[0::2], pmass[1::2]][:1 + two], alive, LP,
                         [load, load2][:1 + two])
    bload = (load2 if two else load * r0) * (1e9 / 8.0)
    unreachable = stats.unreachable_gbps
    qp_flow = qp_gbps = qp_path = None
    if rec:
        fi = f_idx[:nb]
        qp_flow = np.repeat(fi, q)
        m = rate[fi] * (1.0 / efficiency)
        qp_gbps = np.repeat(m / q, q)
        qp_path = path[:nb * q * H].reshape(-1, H)
    nd = int(counts[0])
    d = defer[:nd]
    if nd and spray:
        # flows between pods under failures: aggregated per destination leaf on the structure
        ok = _spray_cross(fabric, plan, P, d, new_src, dst, rate, nbytes, efficiency, load, bload)
        d = d[~ok]
    if d.size:
        z = np.zeros(fabric.n_endpoints)
        sub = _route_general(fabric, P, model, np.ascontiguousarray(new_src[d]), np.ascontiguousarray(dst[d]),
                             np.ascontiguousarray(rate[d]), np.ascontiguousarray(nbytes[d]), efficiency, seed, qps,
                             record_paths, src[d], z, z, flow_ids=d)
        load += sub.link_gbps_load
        bload += sub.link_bytes
        unreach[d] += sub.flow_unreachable
        unreachable += sub.unreachable_gbps
        if rec:
            w = max(qp_path.shape[1], sub.qp_path.shape[1])
            pad = lambda x: np.pad(x, ((0, 0), (0, w - x.shape[1])), constant_values=-1)
            qp_flow = np.concatenate([qp_flow, d[sub.qp_flow]])
            qp_gbps = np.concatenate([qp_gbps, sub.qp_gbps])
            qp_path = np.concatenate([pad(qp_path), pad(sub.qp_path)])
    util = _utilization(fabric, P, load)
    un_b = float((unreach > 0) @ nbytes) if unreachable > 0 else 0.0
    return RouteResult(model=model, link_gbps_load=load, link_bytes=bload, utilization=util,
                       unreachable_gbps=unreachable, unreachable_bytes=un_b,
                       offered_gbps=stats.offered_gbps, flow_unreachable=unreach,
                       scaleup_sent_gbps=up_s, scaleup_recv_gbps=up_r,
                       qp_flow=qp_flow, qp_gbps=qp_gbps, qp_path=qp_path)


class _SprayJobs:
    """uec-spray of the jobs one at a time on a healthy regular Clos, for the per-job loop of
    :func:`_run_model`: the same kernel call and the same spreading as :func:`_route_clos`, into
    buffers kept across the jobs (the endpoint and aggregate masses, the link loads), of which
    only what was touched is read and reset. A job's result is the links its load is non-zero on
    with those loads (each equal to what route() gives there, so adding them job by job gives the
    same total), not dense per-link arrays: a job touches a few links of hundreds of thousands.

    Jobs whose endpoints all sit in one pod (single-homed fabrics) load links of that pod only, and
    every mass the kernel aggregates belongs to one leaf or endpoint of it; so jobs of different pods
    are routed together, one job per pod in a call (:meth:`batched`), and each link's load, read
    back by its pod, is the one job's alone, bit for bit."""

    @staticmethod
    def of(fabric, P, dead, model):
        """The per-job router of this fabric and mask under ``model``, or None where the structural
        path with no failures does not apply (then every job goes through :func:`_route_on`)."""
        if model != "uec-spray" or not STRUCTURAL or dead.any() or fabric.family == "rail_only":
            return None
        plan = _plan(fabric, P)
        if plan is None:
            return None
        return _SprayJobs(fabric, P, plan)

    def __init__(self, fabric, P, plan):
        self.fabric, self.P, self.plan = fabric, P, plan
        E, K = fabric.n_endpoints, plan.K
        self.epw = np.zeros(4 * E * K)
        self.agg = np.zeros(2 * (2 + plan.n_slots) * plan.n_leaves)
        self.load = np.zeros(fabric.n_links)
        ep_down = plan.cache.get("ep_down")
        if ep_down is None:
            ep_down = plan.cache["ep_down"] = plan.ep_up ^ 1
        self.ep_down = ep_down
        self.planes = np.arange(K, dtype=np.int64)

    def _route(self, src, dst, rate, nbytes, efficiency, seed):
        """(links with a non-zero load, their loads, stats, per-flow unreachable, deferred flows)."""
        fabric, plan = self.fabric, self.plan
        src = np.ascontiguousarray(src, np.int64)
        dst = np.ascontiguousarray(dst, np.int64)
        rate = np.ascontiguousarray(rate, np.float64)
        nbytes = np.ascontiguousarray(nbytes, np.float64)
        n_fl = dst.shape[0]
        z8, zi = np.zeros(0, np.uint8), np.zeros(0, np.int64)
        unreach = np.zeros(n_fl)
        st = np.zeros(5)
        counts = np.zeros(2, np.int64)
        kernel("_routing").route_clos(
            _clos_tables(fabric, plan),
            ks.ClosDemands(src=src, dst=dst, rate=rate, nbytes=nbytes, inv_eff=1.0 / efficiency),
            ks.ClosWork(alive=z8, lclean=z8, LP=0, pair_ptr=zi, pair_cnt=zi, pool=zi, pmass=np.zeros(0),
                        lw=np.zeros(0), epw=self.epw, agg=self.agg, unreach=unreach, f_idx=np.empty(0, np.int64),
                        path=np.full(0, -1, np.int64), defer=zi, stats=st, counts=counts),
            ks.ClosOptions(1, plan.n_leaves, plan.K, np.uint64(seed & (2**64 - 1)), 1, 1))
        rows = (np.unique(np.concatenate([src, dst]))[:, None] * plan.K + self.planes[None, :]).ravel()
        epw = self.epw.reshape(-1, 4)
        load = self.load
        load[plan.ep_up[rows]] += epw[rows, 0]
        load[self.ep_down[rows]] += epw[rows, 2]
        epw[rows] = 0.0
        spread_spray(fabric, plan, self.agg[0::2], load)
        self.agg[:] = 0.0
        nz = np.flatnonzero(load != 0)   # one contiguous pass over a boolean array (nonzero of floats is ~8x slower)
        vals = load[nz]
        load[nz] = 0.0
        stats = FlowStats.of_route_clos(st)
        if stats.negative_flows > 0:
            raise SpecError([("traffic", f"{stats.negative_flows} demands have negative bytes or rates")])
        return nz, vals, stats, unreach, int(counts[0])

    def job(self, src, dst, rate, nbytes, efficiency, seed):
        """(links with a non-zero load, their loads, unreachable Gb/s, per-flow unreachable,
        scale-up (sent, received) or None) of these flows, or None when one was deferred."""
        nz, vals, stats, unreach, deferred = self._route(src, dst, rate, nbytes, efficiency, seed)
        if deferred:
            return None
        scaleup = (_scaleup_loads(self.fabric, np.asarray(src, np.int64), np.asarray(dst, np.int64),
                                  rate / efficiency) if stats.same_domain_flows > 0 else None)
        return nz, vals, stats.unreachable_gbps, unreach, scaleup

    def batched(self, d, jobs, efficiency, seed) -> dict:
        """Results as :meth:`job` gives them, {job: result}, of the jobs of ``jobs`` ([(job, flow
        indices)], in job order) that sit in one pod each, routed one job per pod per call. Empty
        where that does not apply (several planes, endpoints shared between jobs); a call whose
        flows are not all routed cleanly (deferred, unreachable) leaves its jobs out."""
        plan, fabric = self.plan, self.fabric
        if plan.K != 1 or len(jobs) < 2:
            return {}
        ep_pod = plan.pod[plan.leaf_of]
        idx = np.concatenate([i for _, i in jobs])
        size = np.asarray([i.size for _, i in jobs], np.int64)
        ends = np.concatenate([d.src[idx], d.dst[idx]])
        owner = np.tile(np.repeat(np.arange(len(jobs)), size), 2)
        o = np.argsort(ends, kind="stable")
        same = ends[o][1:] == ends[o][:-1]
        if (owner[o][1:][same] != owner[o][:-1][same]).any():   # a shared endpoint: its sums would mix jobs
            return {}
        first = np.concatenate([[0], np.cumsum(size)[:-1]])
        sp, dp = ep_pod[d.src[idx]], ep_pod[d.dst[idx]]
        lo_p = np.minimum(np.minimum.reduceat(sp, first), np.minimum.reduceat(dp, first))
        hi_p = np.maximum(np.maximum.reduceat(sp, first), np.maximum.reduceat(dp, first))
        by_pod: dict = {}
        for (k, i), a, b in zip(jobs, lo_p.tolist(), hi_p.tolist()):
            if a == b >= 0:
                by_pod.setdefault(a, []).append((k, i))
        link_pod = plan.cache.get("link_pod")
        if link_pod is None:   # the pod of a link's leaf or spine end (-1: neither has one)
            link_pod = plan.cache["link_pod"] = np.maximum(plan.pod[fabric.link_src], plan.pod[fabric.link_dst])
        out = {}
        rounds = max((len(v) for v in by_pod.values()), default=0)
        for r in range(rounds):
            batch = sorted((v[r][0], p, v[r][1]) for p, v in by_pod.items() if len(v) > r)
            if len(batch) < 2:
                continue
            idx = np.concatenate([x[2] for x in batch])
            src, dst, rate = d.src[idx], d.dst[idx], d.rate_gbps[idx]
            nz, vals, stats, unreach, deferred = self._route(src, dst, rate, d.bytes[idx], efficiency, seed)
            if deferred or stats.unreachable_gbps > 0 or unreach.any():
                continue
            lp = link_pod[nz]
            order = np.argsort(lp, kind="stable")
            pods = np.asarray([x[1] for x in batch], np.int64)
            lo = np.searchsorted(lp[order], pods, "left")
            hi = np.searchsorted(lp[order], pods, "right")
            if int((hi - lo).sum()) != nz.size:   # a loaded link outside the batch's pods: route them singly
                continue
            # scale-up loads of the whole call at its first job: an endpoint's sums are its own job's
            scaleup = _scaleup_loads(fabric, src, dst, rate / efficiency) if stats.same_domain_flows > 0 else None
            at = 0
            for j, (k, _, fl) in enumerate(batch):
                sel = order[lo[j]:hi[j]]
                out[k] = (nz[sel], vals[sel], 0.0, unreach[at:at + fl.size], scaleup if j == 0 else None)
                at += fl.size
        return out


def _spray_cross(fabric, plan, P, d, new_src, dst, rate, nbytes, efficiency, load, bload) -> np.ndarray:
    """uec-spray of the deferred flows ``d`` that cross pods (kernel spray_cross), added to
    load (Gb/s) and bload (bytes); returns which of ``d`` were routed (the others need the
    general kernels)."""
    K = kernel("_routing")
    A = plan.leaf_of[new_src[d]]
    D = plan.leaf_of[dst[d]]
    cross = plan.pod[A] != plan.pod[D]
    ok = np.zeros(d.size, bool)
    if not cross.any():
        return ok
    idx = np.flatnonzero(cross)
    idx = idx[np.argsort(D[idx], kind="stable")]
    Dg, first = np.unique(D[idx], return_index=True)
    g_ptr = np.append(first, idx.size).astype(np.int64)
    f = d[idx]
    m = rate[f] * (1.0 / efficiency)
    b = np.ascontiguousarray(nbytes[f])
    work = plan.cache.get("cross_work")
    if work is None:
        n = fabric.n_nodes
        work = plan.cache["cross_work"] = (np.full(n, -1, np.int64), np.zeros(n, np.uint8), np.full(n, -1, np.int64),
                                           np.zeros(n), np.zeros(n), np.zeros(n, np.int64))
    rstamp, rval, tstamp, mass, mass2, touched = work
    rstamp[:] = -1
    tstamp[:] = -1
    mass[:] = 0.0        # the kernel leaves them at 0; reset in case a call before raised midway
    mass2[:] = 0.0
    f_ok = np.zeros(idx.size, np.uint8)
    K.spray_cross(_clos_tables(fabric, plan),
                  ks.CrossFlows(g_ptr=g_ptr, g_dst=Dg.astype(np.int64), f_leaf=np.ascontiguousarray(A[idx]), f_m=m,
                                f_m2=b),
                  ks.CrossWork(alive=P.alive, rstamp=rstamp, rval=rval, tstamp=tstamp, mass=mass, mass2=mass2,
                               touched=touched, load=load, load2=bload, f_ok=f_ok))
    good = f_ok.astype(bool)
    f, m, b = f[good], m[good], b[good]
    for w, out in ((m, load), (b, bload)):
        np.add.at(out, plan.ep_up[new_src[f]], w)
        np.add.at(out, plan.ep_up[dst[f]] ^ 1, w)
    ok[idx[good]] = True
    return ok


def uniform_loads(fabric, model: str = "fluid", per_pair_gbps: float = 1.0, *, failed_links=None,
                  failed_nodes=None, symmetry: bool | None = None) -> RouteResult:
    """Uniform all-to-all among all endpoints (each ordered pair ``per_pair_gbps``), aggregated.

    Exact for fluid-type models: flows are aggregated per (source group,
    destination group) and spread evenly over the members at both ends, which
    is exact because members of a group share their home switches. Cost
    O(groups x switch links + groups^2). Scale-up domains are ignored (every
    pair crosses the scale-out fabric).

    With ``symmetry`` (None, the default: where it pays, see
    topo.routing.kernels.symmetry_pays; True: always), destination groups whose home switches are
    twins (same alive switch neighbours and capacities, same number and kind of
    endpoints, no other endpoints) are routed once per twin class: swapping two
    twins is an automorphism that leaves uniform demand unchanged, so the loads
    towards every member follow from those towards one member (links not
    incident to the class: |C| times; links of a member: its own share as the
    destination plus |C|-1 times the share of a non-destination member). The
    BFS count drops from one per group to one per class (k/2 x fewer on a fat
    tree); failures simply break classes.
    """
    if model not in _FLUID_MODE:
        raise SpecError([("routing", f"uniform loads are aggregated for fluid, wcmp and uec-spray only (found {model!r})")])
    dead = failure_mask(fabric, failed_links, failed_nodes)
    P = prepare(fabric, dead)
    ng = P.g_rep.shape[0]
    L = fabric.n_links
    K = kernel("_routing")
    mode = _FLUID_MODE[model]

    def run(dsts, mult, load, gu, gd):
        """Loads of the uniform demand (x mult per destination) from every group to ``dsts``
        (the kernel aggregates the sources: one injection per group and destination)."""
        return float(K.route_uniform(
            _fabric_arrays(fabric, P),
            ks.UniformGroups(g_rep=P.g_rep, g_size=P.g_size.astype(np.float64),
                             dests=np.ascontiguousarray(dsts, np.int64), d_mult=np.ascontiguousarray(mult, np.float64)),
            ks.Loads(load=load, grp_up=gu, grp_down=gd, unreach=np.zeros(0)),
            ks.UniformOptions(mode, P.KU, P.KH, fluid_threads(dsts.size, P.sw_adj.shape[0]), float(per_pair_gbps))))

    load = np.zeros(L)
    gu = np.zeros(ng * P.KU)
    gd = np.zeros(ng * P.KU)
    if symmetry is None:
        symmetry = symmetry_pays(ng, P.sw_adj.shape[0])
    classes = _twin_classes(fabric, P) if symmetry else []
    mult = np.ones(ng)
    routed = np.ones(ng, bool)
    for c in classes:
        routed[c[1:]] = False
        mult[c[0]] = c.size
    dsts = np.flatnonzero(routed)
    unreach = run(dsts, mult[dsts], load, gu, gd)
    for c in classes:
        _fix_twin_class(fabric, P, c, load, gu, gd)
    # spread group totals over the members' uplinks (slot k of every member goes to the same home)
    E = fabric.n_endpoints
    src = fabric.link_src
    ul = P.up_link
    ep = src[ul]
    slot = np.arange(ul.shape[0]) - P.up_ptr[ep]
    g = P.ep_group[ep]
    ok = g >= 0
    sz = P.g_size[g[ok]].astype(np.float64)
    load[ul[ok]] += gu[g[ok] * P.KU + slot[ok]] / sz
    load[ul[ok] ^ 1] += gd[g[ok] * P.KU + slot[ok]] / sz
    # endpoints with no alive uplink neither send nor receive
    n_dead = int((P.ep_group < 0).sum())
    unreach += per_pair_gbps * n_dead * (E - 1) * 2 - per_pair_gbps * n_dead * max(n_dead - 1, 0)
    cap = np.where(P.alive.astype(bool), fabric.link_gbps, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(cap > 0, load / np.where(cap > 0, cap, 1.0), np.where(load > 0, np.inf, 0.0))
    z = np.zeros(E)
    return RouteResult(model=model, link_gbps_load=load, link_bytes=load * 1e9 / 8.0, utilization=util,
                       unreachable_gbps=unreach, unreachable_bytes=unreach * 1e9 / 8.0,
                       offered_gbps=per_pair_gbps * E * (E - 1), flow_unreachable=np.zeros(0),
                       scaleup_sent_gbps=z, scaleup_recv_gbps=z.copy())


class _NoDomains:
    """A fabric seen without scale-up domains (every pair crosses the scale-out fabric)."""

    def __init__(self, fabric):
        self._f = fabric
        self.ep_domain = np.full(fabric.n_endpoints, -1, np.int64)

    def __getattr__(self, name):
        return getattr(self._f, name)


def uniform_background(fabric, pair_gbps: float, model: str = "fluid", *, failed_links=None) -> RouteResult:
    """A uniform pattern over every endpoint (each ordered pair ``pair_gbps`` of wire load) routed
    aggregated, with its scale-up domains as :func:`route` treats them: :func:`uniform_loads`
    less the pairs inside each domain (routed flow by flow as if they crossed the fabric, and
    subtracted), which go to the domains' scale-up loads instead. Equal to routing the n(n-1)
    flows one by one under the fluid-type models, at O(groups x switch links + domain pairs).
    Rail-only fabrics (proxied sources) are not handled: expand the flows there."""
    if fabric.family == "rail_only":
        raise SpecError([("fabric.family", "a uniform pattern on a rail-only fabric is routed flow by flow "
                                           "(its proxy rewrite depends on each pair)")])
    dead = failure_mask(fabric, failed_links)
    r = uniform_loads(fabric, model, pair_gbps, failed_links=dead)
    E = fabric.n_endpoints
    dom = np.asarray(fabric.ep_domain, np.int64)
    ind = np.flatnonzero(dom >= 0)
    up = np.zeros(E)
    if ind.size and pair_gbps > 0:
        order = ind[np.argsort(dom[ind], kind="stable")]
        k = np.bincount(dom[ind])
        start = np.concatenate([[0], np.cumsum(k)[:-1]])
        kk = k[dom[order]]
        src = np.repeat(order, kk)
        off = np.arange(src.size) - np.repeat(np.cumsum(kk) - kk, kk)
        dst = order[start[dom[src]] + off]
        keep = src != dst
        src, dst = src[keep], dst[keep]
        if src.size:
            P = prepare(fabric, dead)
            rate = np.full(src.size, float(pair_gbps))
            ri = _route_general(_NoDomains(fabric), P, model, src, dst, rate, rate * 1e9 / 8.0, 1.0, 0, 1, False,
                                src, np.zeros(E), np.zeros(E))
            load = np.maximum(r.link_gbps_load - ri.link_gbps_load, 0.0)   # the maximum: rounding only
            unreach = max(r.unreachable_gbps - ri.unreachable_gbps, 0.0)
            up = np.bincount(src, minlength=E)[:E] * float(pair_gbps)
            cap = np.where(P.alive.astype(bool), fabric.link_gbps, 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                util = np.where(cap > 0, load / np.where(cap > 0, cap, 1.0), np.where(load > 0, np.inf, 0.0))
            r = replace(r, link_gbps_load=load, link_bytes=load * 1e9 / 8.0, utilization=util,
                        unreachable_gbps=unreach, unreachable_bytes=unreach * 1e9 / 8.0)
    return replace(r, scaleup_sent_gbps=up, scaleup_recv_gbps=up.copy())


def _twin_classes(fabric, P) -> list[np.ndarray]:
    """Classes (>= 2 groups) of destination groups whose single home switches are twins."""
    ng = P.g_rep.shape[0]
    if ng < 2:
        return []
    rep = P.g_rep
    lo, hi = P.up_ptr[rep], P.up_ptr[rep + 1]
    h_first = fabric.link_dst[P.up_link[lo]]
    h_last = fabric.link_dst[P.up_link[hi - 1]]
    nup = hi - lo
    # endpoint links arriving at each switch must all belong to its group's members
    ep_at = np.bincount(fabric.link_dst[P.up_link], minlength=fabric.n_nodes)
    sole = (h_first == h_last) & (ep_at[h_first] == P.g_size * nup)
    is_home = np.zeros(fabric.n_nodes, bool)
    is_home[fabric.link_dst[P.up_link]] = True
    keys: dict = {}
    ul_gbps = fabric.link_gbps[P.up_link]
    # only homes whose neighbours are pure transit switches (one vectorised pass: on a graph where
    # every switch is a home, such as a Jellyfish graph, no group is looked at one by one)
    row = np.repeat(np.arange(fabric.n_nodes), np.diff(P.sw_ptr))
    home_nbrs = np.bincount(row, weights=is_home[P.sw_head], minlength=fabric.n_nodes)
    sole &= home_nbrs[h_first] == 0
    for g in np.flatnonzero(sole).tolist():
        h = int(h_first[g])
        a, b = P.sw_ptr[h], P.sw_ptr[h + 1]
        nb = P.sw_head[a:b]
        gb = fabric.link_gbps[P.sw_adj[a:b]]
        o = np.lexsort((gb, nb))
        key = (nb[o].tobytes(), gb[o].tobytes(), int(P.g_size[g]), int(nup[g]),
               np.sort(ul_gbps[lo[g]:hi[g]]).tobytes(), np.sort(fabric.link_gbps[P.up_link[lo[g]:hi[g]] ^ 1]).tobytes())
        keys.setdefault(key, []).append(g)
    return [np.array(v, np.int64) for v in keys.values() if len(v) >= 2]


def _fix_twin_class(fabric, P, cls: np.ndarray, load, gu, gd) -> None:
    """Turn loads routed towards the class representative (x |C|) into loads towards every member.

    On a link at position j of member h (matched by neighbour, then link id),
    the loads towards the class must be D_j + (C-1) S_j plus what other
    destinations put there, which is the same for every member; with the
    representative routed at weight C the batch holds C D_j + Z on the
    representative's link and C S_j + Z on the second member's, so the wanted
    value is (B_rep + (C-1) B_second) / C.
    """
    KU = P.KU
    C = cls.size
    g1, g2 = int(cls[0]), int(cls[1])
    homes = fabric.link_dst[P.up_link[P.up_ptr[P.g_rep[cls]]]]
    links = []
    for h in homes.tolist():
        a, b = P.sw_ptr[h], P.sw_ptr[h + 1]
        o = np.lexsort((P.sw_adj[a:b], P.sw_head[a:b]))
        links.append(P.sw_adj[a:b][o])
    Lm = np.stack(links)  # [C, degree]
    for M in (Lm, Lm ^ 1):
        val = (load[M[0]] + (C - 1) * load[M[1]]) / C
        load[M] = val[None, :]
    G = gu.reshape(-1, KU)
    G[cls] = ((G[g1] + (C - 1) * G[g2]) / C)[None, :]
    Dd = gd.reshape(-1, KU)
    Dd[cls] = (Dd[g1] / C)[None, :]


# --- max-min fair rates ----------------------------------------------------------------------
def waterfill(qp_path: np.ndarray, capacity: np.ndarray, weight: Optional[np.ndarray] = None) -> np.ndarray:
    """Weighted max-min fair rates of paths (rows of link ids, -1 padded) over link capacities.

    Progressive filling in bottleneck order: the link with the smallest fair
    level (remaining capacity / active weight) fixes the rate (level x weight)
    of all its unfrozen paths. With weights = bytes, flows that share no
    bottleneck all finish together. Cost O(total path length x log links).
    """
    qp_path = np.ascontiguousarray(qp_path, np.int64)
    nq, H = qp_path.shape if qp_path.ndim == 2 else (0, 1)
    cap = np.ascontiguousarray(capacity, np.float64)
    L = cap.shape[0]
    flat = qp_path.ravel()
    if qp_path.ndim not in (1, 2) or (qp_path.ndim == 1 and qp_path.size) or cap.ndim != 1:
        raise KernelArgumentError(f"waterfill: qp_path must be [paths, hops] and capacity one-dimensional "
                                  f"(found {qp_path.shape} and {cap.shape})")
    if flat.size and (int(flat.min()) < -1 or int(flat.max()) >= L):
        raise KernelArgumentError(f"waterfill: qp_path holds link ids {int(flat.min())}..{int(flat.max())}; "
                                  f"capacity has {L} links (-1 pads a path)")
    if weight is not None and np.shape(weight) != (nq,):
        raise KernelArgumentError(f"waterfill: weight must have one entry per path ({nq}; found {np.shape(weight)})")
    valid = flat >= 0
    n_valid = int(valid.sum())
    lk_ptr = np.zeros(L + 1, np.int64)
    np.cumsum(np.bincount(flat[valid], minlength=L), out=lk_ptr[1:])
    lk_qp = np.empty(n_valid, np.int64)
    kernel("_routing").bucket_links(flat, H, lk_ptr[:-1].copy(), lk_qp)
    rate = np.zeros(nq)
    w = np.ones(nq) if weight is None else np.ascontiguousarray(weight, np.float64)
    heap = L + n_valid + 1    # enough: a link is pushed once, then at most once per path through it (as it freezes)
    kernel("_routing").waterfill(H, flat, w, cap, lk_ptr, lk_qp, np.zeros(L), np.zeros(L), np.zeros(L, np.int64),
                                 np.zeros(L, np.int64), np.zeros(nq, np.uint8), np.zeros(heap),
                                 np.zeros(heap, np.int64), np.zeros(heap, np.int64), rate)
    return rate


# --- analysis ------------------------------------------------------------------------------
_BUS_FACTOR = {"allreduce": lambda n: 2 * (n - 1) / n, "allgather": lambda n: (n - 1) / n,
               "reducescatter": lambda n: (n - 1) / n, "alltoall": lambda n: (n - 1) / n,
               "sendrecv": lambda n: 1.0, "broadcast": lambda n: 1.0}


def protocol_efficiency(cluster, protocol: str) -> float:
    """Wire efficiency of a transport protocol at the cluster's MTU (the cluster's own header if it uses it)."""
    from topo.model import catalog
    t = cluster.file.transport
    if protocol == t.protocol:
        hdr = cluster.header_bytes
    else:
        tr = catalog.TRANSPORTS[protocol]
        hdr = tr["header_bytes"] + tr["wire_bytes"]
    return t.mtu_bytes / (t.mtu_bytes + hdr) if hdr else 1.0


def parse_failures(fabric, names: Sequence[str]):
    """Link names ('a->b', 'a--b') and node names into (failed link ids, failed node ids).

    A link name fails every parallel link between the two nodes, both directions;
    'a->b [i/n]' (as ``topo analyze`` and ``topo failures`` print links) only the i-th of the
    n parallel links from a to b, both directions.
    """
    import re
    links, nodes, errs = [], [], []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        pick = re.fullmatch(r"(.*?)\s*\[(\d+)/(\d+)\]", name)
        if pick:
            name, pick = pick.group(1), (int(pick.group(2)), int(pick.group(3)))
        sep = "->" if "->" in name else ("--" if "--" in name else None)
        try:
            if sep is None:
                nodes.append(fabric.find_node(name))
                continue
            a, b = (fabric.find_node(x.strip()) for x in name.split(sep, 1))
        except KeyError:
            errs.append(("fail", f"unknown link or switch {name!r} (links are 'a->b' or 'a--b' with node names, e.g. {fabric.link_name(fabric.n_links - 1)!r})"))
            continue
        m = np.flatnonzero(((fabric.link_src == a) & (fabric.link_dst == b)) | ((fabric.link_src == b) & (fabric.link_dst == a)))
        if m.size == 0:
            errs.append(("fail", f"no link between {name.split(sep)[0].strip()!r} and {name.split(sep)[1].strip()!r}"))
            continue
        if pick:
            fwd = fabric.parallel_links(a, b)
            i, n = pick
            if n != fwd.size or not 1 <= i <= n:
                errs.append(("fail", f"{raw.strip()!r}: there are {fwd.size} parallel link(s) from "
                                       f"{name.split(sep)[0].strip()!r} to {name.split(sep)[1].strip()!r}; "
                                       f"give [i/{fwd.size}] with i from 1 to {fwd.size}"))
                continue
            l = int(fwd[i - 1])
            links.extend([l, l ^ 1])
            continue
        links.extend(m.tolist())
    if errs:
        raise SpecError(errs)
    return np.array(sorted(set(links)), np.int64), np.array(sorted(set(nodes)), np.int64)


def tier_stats(fabric, load: np.ndarray, alive: np.ndarray) -> list[dict]:
    """Per link tier: links, util max / p99 / mean over alive links, and sibling-uplink imbalance.

    Imbalance: for every node, max/mean of the loads of its alive uplinks of
    that tier (nodes with loaded uplinks and at least two of them); the worst node.
    """
    from topo.model.fabric import LINK_TIER_NAMES
    out = []
    cap = fabric.link_gbps
    util = np.where(alive, load / np.where(cap > 0, cap, 1.0), 0.0)
    up = (np.arange(fabric.n_links) & 1) == 0
    for t in range(len(LINK_TIER_NAMES)):
        m = (fabric.link_tier == t) & alive
        if not m.any():
            continue
        u = util[m]
        um = m & up
        src = fabric.link_src[um]
        ld = load[um]
        n = np.bincount(src, minlength=fabric.n_nodes)
        s = np.bincount(src, weights=ld, minlength=fabric.n_nodes)
        mx = np.zeros(fabric.n_nodes)
        np.maximum.at(mx, src, ld)
        ok = (n >= 2) & (s > 0)
        imb = float((mx[ok] / (s[ok] / n[ok])).max()) if ok.any() else 1.0
        worst = int(np.flatnonzero(ok)[np.argmax(mx[ok] / (s[ok] / n[ok]))]) if ok.any() else None
        out.append({"tier": LINK_TIER_NAMES[t], "links": int(m.sum()), "util_max": float(u.max()),
                    "util_p99": float(np.percentile(u, 99)), "util_mean": float(u.mean()),
                    "uplink_imbalance": imb, "worst_node": fabric.node_name(worst) if worst is not None else None})
    return out


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest ``values``, largest first, equal values by index.

    Ties are broken explicitly, so the answer does not depend on the selection
    algorithm numpy happens to use (``argpartition`` picks an arbitrary subset of
    equal values at the boundary, and which one changed between numpy releases)."""
    values = np.asarray(values)
    k = min(int(k), values.shape[0])
    if k <= 0:
        return np.zeros(0, np.int64)
    cand = _top_candidates(values, k)
    sub = values[cand]
    kth = np.partition(sub, sub.shape[0] - k)[sub.shape[0] - k]  # k-th largest value
    above = cand[sub > kth]
    at = cand[sub == kth][: k - above.size]  # lowest ids among the ties
    idx = np.concatenate([above, at])
    return idx[np.lexsort((idx, -values[idx]))].astype(np.int64)


_TOP_BLOCK = 1024


def _top_candidates(values: np.ndarray, k: int) -> np.ndarray:
    """Ids (ascending) of a subset of ``values`` that holds every value at least the k-th largest:
    those at least the k-th largest of the maxima of blocks of _TOP_BLOCK values (k blocks reach it,
    so at least k values do), found in two passes instead of a partition of all of them. Every id
    when there are NaN values (no order to rely on) or few values."""
    n = values.shape[0]
    every = np.arange(n, dtype=np.int64)
    if n <= 4 * _TOP_BLOCK or values.dtype.kind != "f":
        return every
    full = n - n % _TOP_BLOCK
    mx = values[:full].reshape(-1, _TOP_BLOCK).max(axis=1)
    if full < n:
        mx = np.append(mx, values[full:].max())
    nb = mx.shape[0]
    if k > nb or np.isnan(mx).any():   # max propagates NaN: a NaN anywhere shows in its block
        return every
    t = np.partition(mx, nb - k)[nb - k]   # k blocks have a value >= t
    return np.flatnonzero(values >= t)


def _hottest(fabric, load, alive, n=10) -> list[dict]:
    util = np.where(alive, load / np.where(fabric.link_gbps > 0, fabric.link_gbps, 1.0), 0.0)
    idx = top_k(util, n)
    return [{"link": fabric.link_label(int(l)), "id": int(l), "util": float(util[l]), "load_gbps": float(load[l]),
             "gbps": float(fabric.link_gbps[l])} for l in idx if load[l] > 0]


@dataclass(frozen=True, eq=False)
class Analysis:
    """What ``topo analyze`` reports (see :meth:`to_dict`); ``loads`` is the per-link wire load."""
    summary: dict
    loads: np.ndarray = field(repr=False)
    utilization: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return self.summary

    def loads_table(self, fabric) -> dict:
        """Columns of the per-link load table (link, src, dst, tier, gbps, load_gbps, util)."""
        from topo.model.fabric import LINK_TIER_NAMES
        names = [fabric.node_name(i) for i in range(fabric.n_nodes)]
        return {"link": np.arange(fabric.n_links), "src": [names[i] for i in fabric.link_src],
                "dst": [names[i] for i in fabric.link_dst],
                "tier": [LINK_TIER_NAMES[t] for t in fabric.link_tier], "gbps": fabric.link_gbps,
                "load_gbps": self.loads, "util": self.utilization}


def _job_collective_bytes(cluster, names) -> dict:
    """Per job: sum over collectives of S x nccl-tests bus factor (bytes)."""
    from topo.traffic.demand import rank_groups
    out = {}
    for j in cluster.file.jobs:
        if j.name not in names:
            continue
        tot = 0.0
        for c in j.collectives:
            n = rank_groups(j, c.group).shape[1]
            if n > 1:
                tot += float(c.bytes) * _BUS_FACTOR[c.op](n)
        out[j.name] = tot
    return out


# How flows share a bottleneck, per routing model (the job times of the load analysis):
# * "max-min": per-QP max-min fairness, equal weights, what per-QP rate control of the DCQCN kind
#   converges to: every queue pair crossing a bottleneck gets the same rate whatever its bytes, so a
#   small job beside a large one finishes in its own time. Rates are refilled when queue pairs finish
#   (progressive filling, exact) until all are done, or until MAXMIN_WORK queue pairs have been
#   water-filled in all; then the remaining bytes share by weight = remaining bytes (see
#   completion_times), which bounds the cost at large scale.
# * "bytes": weighted max-min with weight = bytes, so flows sharing no other bottleneck finish together
#   (every flow of a link ends at the same time, as if the link served bytes in proportion).
# The fluid-type models (fluid, wcmp, uec-spray) share in proportion to offered load (a job's time is
# its ideal time times the highest utilisation it meets), which is not this switch.
SHARING = {"roce-hash": "max-min"}
SHARING_MODELS = ("max-min", "bytes")
MAXMIN_ROUNDS = 100_000          # refill events at most
MAXMIN_WORK = 200_000_000        # queue pairs water-filled over all refill rounds at most (bounds the cost at scale)


def _runs(qp_path: np.ndarray, qbytes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of consecutive queue pairs with the same links and the same bytes (the queue pairs of
    one flow inside a leaf, or hashed onto the same spine): (first row of each run, run length).

    Max-min treats the members of a run alike (same links, same weight, same bytes), so a run is
    water-filled as one path of weight = its length and every member gets the run's rate / length."""
    n = qbytes.shape[0]
    new = np.ones(n, bool)
    if n > 1:
        new[1:] = (qp_path[1:] != qp_path[:-1]).any(axis=1) | (qbytes[1:] != qbytes[:-1])
    first = np.flatnonzero(new)
    return first, np.diff(np.append(first, n))


def _used_links(path: np.ndarray, capacity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``path`` over the links it uses only, renumbered 0.. in increasing link id, and their capacities.

    waterfill's cost per call has a term in the links it is given (their start state and heap), which
    the refill rounds would pay each round for the whole fabric. The renumbering keeps the links'
    order, and waterfill breaks equal levels by link id and visits the paths of a link in path order,
    so the rates are the same bits as on the whole fabric's numbering."""
    capacity = np.asarray(capacity, np.float64)
    if path.ndim != 2 or capacity.ndim != 1:
        return path, capacity      # waterfill refuses it, naming the shapes
    flat = path.ravel()
    valid = flat >= 0
    links, inv = np.unique(flat[valid], return_inverse=True)
    if flat.size and (int(flat.min()) < -1 or (links.size and links[-1] >= capacity.shape[0])):
        return path, capacity      # waterfill refuses it, naming the link ids
    out = np.full(flat.shape, -1, np.int64)
    out[valid] = inv
    return out.reshape(path.shape), capacity[links]


def completion_times(qp_path: np.ndarray, capacity: np.ndarray, qbytes: np.ndarray, efficiency: float,
                     sharing: str = "max-min", rounds: Optional[int] = None) -> np.ndarray:
    """Completion time in seconds of each queue pair (rows of link ids, -1 padded) carrying ``qbytes``
    over links of ``capacity`` Gb/s (wire) at goodput ``efficiency``, under ``sharing`` (see SHARING).

    A queue pair with no rate (a failed path) never completes (inf); one with no bytes takes 0.
    Runs of identical consecutive queue pairs (:func:`_runs`) are water-filled as one weighted path.
    """
    if sharing not in SHARING_MODELS:
        raise SpecError([("sharing", f"unknown sharing model {sharing!r}; expected one of {list(SHARING_MODELS)}")])
    qbytes = np.asarray(qbytes, np.float64)
    n = qbytes.shape[0]
    if n == 0:
        return np.zeros(0)
    bps = efficiency * 1e9 / 8.0   # goodput bytes/s per Gb/s of wire rate
    qp_path = np.asarray(qp_path, np.int64)
    first, mult = _runs(qp_path, qbytes)
    path, capacity = _used_links(qp_path[first], capacity)
    qb, m = qbytes[first], mult.astype(np.float64)
    if sharing == "bytes":
        rate = waterfill(path, capacity, qb * m) / m
        with np.errstate(divide="ignore", invalid="ignore"):
            done = np.where(rate > 0, qb / (rate * bps), np.where(qb > 0, np.inf, 0.0))
        return np.repeat(done, mult)
    done = _maxmin_times(path, capacity, qb, mult, bps, MAXMIN_ROUNDS if rounds is None else rounds)
    return np.repeat(done, mult)


def _components(path: np.ndarray, n_links: int) -> np.ndarray:
    """Label per row of ``path``: its connected component in the graph of rows joined by shared links."""
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components
    n, H = path.shape
    flat = path.ravel()
    ok = (flat >= 0) & (flat < n_links)   # ids out of range: waterfill refuses them, naming them
    rows = np.repeat(np.arange(n, dtype=np.int64), H)[ok]
    g = coo_array((np.ones(rows.size, np.int8), (rows, n + flat[ok])), shape=(n + n_links, n + n_links))
    return connected_components(g, directed=False)[1][:n]


def _maxmin_times(path, capacity, qbytes, mult, bps, rounds) -> np.ndarray:
    """Per-QP max-min completion times of runs of ``mult`` identical queue pairs (see completion_times):
    the kernel ``maxmin_times``, the same bits as :func:`_maxmin_times_loop` (the tests compare them).

    The kernel keeps each component's last water-filling as a log of events and, when queue pairs
    end, goes back only to the first event that froze one of them and resumes from there, instead
    of water-filling the component again from the start. What is left when the rounds run out or
    the work passes MAXMIN_WORK is finished here by weight = remaining bytes, as in the loop."""
    return _maxmin_times_counted(path, capacity, qbytes, mult, bps, rounds)[0]


def _maxmin_times_counted(path, capacity, qbytes, mult, bps, rounds) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_maxmin_times` and the kernel's info array (rounds, events popped and undone, ...)."""
    K = kernel("_routing")
    n = qbytes.shape[0]
    path = np.ascontiguousarray(path, np.int64)
    if path.ndim == 2 and path.shape[1] == 0:
        path = np.full((n, 1), -1, np.int64)     # no queue pair has a link
    H = path.shape[1] if path.ndim == 2 else 1
    done, rem = np.zeros(n), np.zeros(n)
    active = np.zeros(n, np.uint8)
    info = np.zeros(K.MAXMIN_INFO)
    K.maxmin_times(H, path.ravel(), np.ascontiguousarray(mult, np.int64), np.ascontiguousarray(qbytes, np.float64),
                   np.ascontiguousarray(capacity, np.float64), float(bps), max(int(rounds), 1), int(MAXMIN_WORK),
                   done, rem, active, info)
    if info[1]:
        # out of rounds or work: the remaining bytes share by weight = remaining bytes (see _maxmin_times_loop)
        idx = np.flatnonzero(active)
        m = mult.astype(np.float64)
        rb = waterfill(path[idx], capacity, rem[idx] * m[idx]) / m[idx] * bps
        with np.errstate(divide="ignore", invalid="ignore"):
            done[idx] = np.where(rb > 0, info[0] + rem[idx] / rb, np.inf)
    return done, info


def _maxmin_times_loop(path, capacity, qbytes, mult, bps, rounds) -> np.ndarray:
    """Per-QP max-min completion times of runs of ``mult`` identical queue pairs (see completion_times),
    as a Python loop of refill rounds: the reference :func:`_maxmin_times` is tested against.

    Each refill round water-fills again only the connected components (rows joined by shared links)
    that lost a queue pair in the round before; the others keep their rates. That is exact, not an
    approximation: water-filling never carries anything from one component to another (a link's
    level, and the order of the levels of one component's links, depend only on that component's
    rows, links and weights, and the rows keep their order), and a round that ends none of a
    component's queue pairs leaves them as they were. The components are those of all the rows at
    the start: one that comes apart as its queue pairs end is still refilled whole (exact as well:
    water-filling its pieces together is water-filling each; labelling the pieces anew each round
    cost more than it saved on the helios example). ``MAXMIN_WORK`` still counts every active queue
    pair of every round, so where it stops is unchanged."""
    m = mult.astype(np.float64)
    n = qbytes.shape[0]
    done = np.zeros(n)
    rem = qbytes.copy()
    active = rem > 0
    now = 0.0
    work = 0
    rounds = max(int(rounds), 1)
    comp = _components(path, capacity.shape[0]) if n else np.zeros(0, np.int64)
    rate = np.zeros(n)          # bytes/s of each active run, kept from the round its component was last filled
    stale = active.copy()       # runs whose component lost a queue pair since their rate was computed
    for k in range(rounds):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        work += int(mult[idx].sum())   # queue pairs, as if every member were water-filled on its own
        if k == rounds - 1 or work > MAXMIN_WORK:
            # out of rounds: the remaining bytes share by weight = remaining bytes, so the queue pairs of
            # a bottleneck end together when it drains (max-min's last completion there, exactly, when
            # one link is the bottleneck of them all; the earlier ones among them end later than max-min's)
            rb = waterfill(path[idx], capacity, rem[idx] * m[idx]) / m[idx] * bps
            with np.errstate(divide="ignore", invalid="ignore"):
                done[idx] = np.where(rb > 0, now + rem[idx] / rb, np.inf)
            active[idx] = False
            break
        fill = np.flatnonzero(stale & active)
        if fill.size:
            rate[fill] = waterfill(path[fill], capacity, m[fill]) / m[fill] * bps
        g = rate[idx]
        stuck = g <= 0
        ended = [idx[stuck]]
        if stuck.any():
            done[idx[stuck]] = np.inf
            active[idx[stuck]] = False
            idx, g = idx[~stuck], g[~stuck]
        if idx.size:
            dt_i = rem[idx] / g
            dt = float(dt_i.min())
            fin = dt_i <= dt * (1 + 1e-12)
            done[idx[fin]] = now + dt_i[fin]
            active[idx[fin]] = False
            rem[idx] -= g * dt
            rem[idx[fin]] = 0.0
            now += dt
            ended.append(idx[fin])
        gone = np.concatenate(ended)
        stale = np.isin(comp, comp[gone])
        if idx.size == 0:
            break
    return done


def _run_model(fabric, d: Demands, model, dead, seed, qps, eff, channels: int = 1, sharing: Optional[str] = None,
               background=()):
    """Route demands (jobs one at a time for fluid-type models); loads and per-job times.

    ``qps`` is queue pairs per channel, ``channels`` channels per collective (roce-hash only):
    each (channel, QP) of a flow carries bytes / (channels x qps). ``sharing`` overrides the
    model's sharing of bottlenecks (``SHARING``; roce-hash only). ``background``: RouteResults
    of aggregated uniform patterns (:func:`uniform_background`, fluid-type models only), added
    to the loads the jobs see.
    """
    if background and model not in _FLUID_MODE:
        raise SpecError([("routing", f"aggregated uniform loads are for fluid-type models (found {model!r})")])
    L = fabric.n_links
    nj = len(d.job_names)
    times = np.zeros(nj)
    total = np.zeros(L)
    if model == "roce-hash":
        r = route(fabric, d, model, failed_links=dead, seed=seed, qps=qps, channels=channels, efficiency=eff,
                  record_paths=True)
        total = r.link_gbps_load
        cap = np.where(dead, 0.0, fabric.link_gbps)
        qb = d.bytes[r.qp_flow] / (channels * qps) if r.qp_flow is not None else np.zeros(0)
        if qb.size:
            t = completion_times(r.qp_path, cap, qb, eff, sharing or SHARING[model])
            jq = d.job[r.qp_flow]
            ok = jq >= 0
            if ok.any():
                np.maximum.at(times, jq[ok], t[ok])
        unreach = r.unreachable_gbps
        flow_unreach = r.flow_unreachable
        up = (r.scaleup_sent_gbps, r.scaleup_recv_gbps)
        times = np.maximum(times, scaleup_times_s(fabric, d))
    else:
        unreach = 0.0
        flow_unreach = np.zeros(d.n)
        sent = np.zeros(fabric.n_endpoints)
        recv = np.zeros(fabric.n_endpoints)
        used = []
        by_job = np.argsort(d.job, kind="stable")   # background (-1) first, then job 0, 1, ...
        cut = np.searchsorted(d.job[by_job], np.arange(-1, nj + 1))
        dom = fabric.ep_domain
        sj, dj = d.src[by_job], d.dst[by_job]
        inside = ((dom[sj] == dom[dj]) & (dom[sj] >= 0)) | (sj == dj)
        if fabric.family == "rail_only":   # the proxy rewrite: route every job
            inside[:] = False
        mask = failure_mask(fabric, dead)   # as route() takes it, once for every job's call
        P = prepare(fabric, mask)
        lean = _SprayJobs.of(fabric, P, mask, model)
        pre = {}
        if lean is not None:   # the jobs of one pod each, routed several pods at a time
            pre = lean.batched(d, [(k, by_job[cut[k + 1]:cut[k + 2]]) for k in range(nj)
                                   if cut[k + 2] > cut[k + 1] and not inside[cut[k + 1]:cut[k + 2]].all()], eff, seed)
        for k in list(range(nj)) + [-1]:
            idx = by_job[cut[k + 1]:cut[k + 2]]
            if idx.size == 0:
                used.append(None)
                continue
            if k >= 0 and inside[cut[k + 1]:cut[k + 2]].all():
                # every flow inside one scale-up domain: nothing reaches the fabric
                s_, r_ = _scaleup_loads(fabric, d.src[idx], d.dst[idx], d.rate_gbps[idx] / eff)
                sent += s_
                recv += r_
                used.append(None)
                continue
            res = pre.get(k) if k in pre else (
                None if lean is None else lean.job(d.src[idx], d.dst[idx], d.rate_gbps[idx], d.bytes[idx], eff, seed))
            if res is not None:
                nz, vals, un_g, un_f, scaleup = res
                total[nz] += vals   # adding 0.0 elsewhere, as the dense sum does, changes nothing
                unreach += un_g
                flow_unreach[idx] = un_f
                if scaleup is not None:
                    sent += scaleup[0]
                    recv += scaleup[1]
                used.append(nz[vals > 0])
                continue
            r = _route_on(fabric, P, mask, d.select(idx), model, seed, 1, eff, False)
            total += r.link_gbps_load
            unreach += r.unreachable_gbps
            flow_unreach[idx] = r.flow_unreachable
            sent += r.scaleup_sent_gbps
            recv += r.scaleup_recv_gbps
            used.append(np.flatnonzero(r.link_gbps_load > 0))   # the links the job loads
        for r in background:
            total += r.link_gbps_load
            unreach += r.unreachable_gbps
            sent += r.scaleup_sent_gbps
            recv += r.scaleup_recv_gbps
        up = (sent, recv)
        cap = np.where(dead, 0.0, fabric.link_gbps)
        with np.errstate(divide="ignore", invalid="ignore"):
            util = np.where(cap > 0, total / np.where(cap > 0, cap, 1.0), np.where(total > 0, np.inf, 0.0))
        for k in range(nj):
            u = float(util[used[k]].max()) if used[k] is not None and used[k].size else 0.0
            times[k] = d.job_time_s[k] * max(1.0, u)
    lost = d.job[(flow_unreach > 0) & (d.job >= 0)]
    times[np.unique(lost)] = math.inf
    return total, times, unreach, up


def analyze(cluster, fabric=None, routing: Optional[str] = None, traffic="jobs", placement=None,
            fail: Sequence[str] = (), seed: Optional[int] = None, qps: Optional[int] = None,
            compare: bool = True, all_to_all: bool = True, channels: Optional[int] = None,
            sharing: Optional[str] = None) -> Analysis:
    """Route the cluster's traffic and report congestion, job times and the hash-vs-spray penalty.

    ``routing``: a model (default from transport.protocol: roce -> roce-hash,
    uec -> uec-spray, ideal -> fluid). ``traffic``: "jobs" (jobs plus the
    file's traffic patterns), "uniform", "permutation", "incast" or a CSV path.
    ``fail``: link ('a->b', 'a--b') and switch names. ``qps`` (queue pairs per channel)
    and ``channels`` (per collective) override transport.qps_per_channel and
    transport.channels each (``--qps`` / ``--channels``); unset, the file's values.
    ``sharing``: how roce-hash queue pairs share a bottleneck, "max-min" (default) or "bytes" (SHARING).

    The steps: the settings (:func:`_settings`), the traffic routed under the chosen model
    (:func:`_route_traffic`), the load statistics (:func:`_load_summary`), the job rows
    (:func:`_job_rows`), the all-to-all figure, the LP bound, and the RoCE-vs-UEC comparison
    (:func:`_roce_vs_uec`).
    """
    from topo.routing.describe import bisection_gbps
    from topo.model.fabric import build
    if fabric is None:
        fabric = build(cluster)
    run = _settings(cluster, fabric, routing, traffic, placement, fail, seed, qps, channels, sharing)
    summary: dict = {"cluster": cluster.name, "family": fabric.family, "endpoints": fabric.n_endpoints,
                     "links": fabric.n_links, "routing": run.model, "traffic": str(traffic), "seed": run.seed,
                     # channels and queue pairs matter only to hashing (roce-hash); null for the others
                     "channels": run.channels if run.model in _QP_MODELS else None,
                     "qps_per_channel": run.qps if run.model in _QP_MODELS else None,
                     "sharing": (sharing or SHARING[run.model]) if run.model in SHARING else "proportional",
                     "wire_efficiency": run.eff,
                     "failed": {"links": int(run.dead.sum() // 2), "nodes": [fabric.node_name(i) for i in run.nodes]}}
    routed = _route_traffic(run, summary)
    d, total = routed.demands, routed.total
    compare = _compare_wanted(run, compare, summary)
    util = _load_summary(run, routed, summary)
    summary["jobs"] = _job_rows(cluster, d, routed.times)
    summary["bisection_gbps"] = bisection_gbps(fabric)
    if all_to_all:
        by_class, unreach_frac = _all_to_all_by_class(fabric, run.dead)
        summary["all_to_all"] = by_class
        acc = by_class.get("accelerators")
        summary["all_to_all_gbps_per_accelerator"] = (acc or {}).get("gbps_per_endpoint") or 0.0
        summary["all_to_all_unreachable_fraction"] = unreach_frac
    if run.model == "optimal" and not routed.big_uniform:
        from topo.routing.lp import max_concurrent_flow
        summary["optimal"] = max_concurrent_flow(fabric, d, failed_links=run.dead, efficiency=run.eff)
    if compare:
        summary["roce_vs_uec"] = _roce_vs_uec(run, routed)
    return Analysis(summary=_jsonable(summary), loads=total, utilization=util)


@dataclass(frozen=True, eq=False)
class _Run:
    """The settings of one analysis (:func:`analyze`), checked."""
    cluster: object
    fabric: object
    model: str          # the model asked for ("optimal" included)
    run_model: str      # the model routed ("fluid" for "optimal")
    traffic: object
    placement: object
    seed: int
    qps: int
    channels: int
    sharing: Optional[str]
    dead: np.ndarray
    nodes: object
    eff: float          # the cluster's wire efficiency

    def demands(self, eff: float, aggregate: bool = False) -> Demands:
        """The traffic at wire efficiency ``eff``; with ``aggregate``, the file's uniform patterns
        over every endpoint are left to :meth:`background` (fluid-type models)."""
        from topo.traffic import demand as T
        c, f, traffic = self.cluster, self.fabric, self.traffic
        if traffic == "jobs":
            d = T.job_demands(c, f, self.placement, efficiency=eff)
            if c.file.traffic:
                d = Demands.concat([d, T.pattern_demands(c, f, self.seed, aggregate_uniform=aggregate,
                                                         efficiency=eff)])
            return d
        if traffic == "uniform":
            return T.uniform(f, 1e9, None, eff)
        if traffic == "permutation":
            return T.permutation(f, 1e9, None, self.seed, eff)
        if traffic == "incast":
            return T.incast(f, 1e9, None, 16, self.seed, eff)
        return T.matrix(f, traffic, eff, where="--traffic")

    def background(self, eff: float, model: str) -> list:
        """The aggregated uniform patterns of the file, routed under ``model`` at efficiency ``eff``."""
        from topo.traffic import demand as T
        if self.traffic != "jobs":
            return []
        return [uniform_background(self.fabric, g / eff, model, failed_links=self.dead)
                for g in T.aggregated_uniform_gbps(self.cluster, self.fabric, eff)]

    def cap(self) -> np.ndarray:
        return np.where(~self.dead, self.fabric.link_gbps, 0.0)


def _settings(cluster, fabric, routing, traffic, placement, fail, seed, qps, channels, sharing) -> _Run:
    """analyze's settings from its arguments and the cluster file, each refused by name when wrong."""
    from topo.model.spec import run_settings, wire_efficiency
    tr = cluster.file.transport
    model = routing or {"roce": "roce-hash", "uec": "uec-spray", "ideal": "fluid"}[tr.protocol]
    if model not in MODELS:
        raise SpecError([("routing", f"unknown routing model {model!r}; expected one of {list(MODELS)}")])
    seed = run_settings(cluster, seed=seed).seed
    qps = tr.qps if qps is None else int(qps)
    channels = tr.n_channels if channels is None else int(channels)
    if qps < 1:
        raise SpecError([("qps", f"must be at least 1 (found {qps})")])
    if channels < 1:
        raise SpecError([("channels", f"must be at least 1 (found {channels})")])
    if channels * qps > limits.MAX_QPS_PER_CONNECTION:
        raise SpecError([("qps", f"{channels} channels x {qps} queue pairs per channel = {channels * qps:,} hashed "
                                   f"flows per connection; at most {limits.MAX_QPS_PER_CONNECTION:,}")])
    if sharing is not None and sharing not in SHARING_MODELS:
        raise SpecError([("sharing", f"unknown sharing model {sharing!r}; expected one of {list(SHARING_MODELS)}")])
    links, nodes = parse_failures(fabric, list(fail))
    return _Run(cluster=cluster, fabric=fabric, model=model, run_model="fluid" if model == "optimal" else model,
                traffic=traffic, placement=placement, seed=seed, qps=qps, channels=channels, sharing=sharing,
                dead=failure_mask(fabric, links, nodes), nodes=nodes, eff=wire_efficiency(cluster))


@dataclass(frozen=True, eq=False)
class _Routed:
    """The traffic routed under the analysis's model."""
    demands: Demands
    total: np.ndarray        # wire load per directed link
    times: np.ndarray        # per job of the demands
    unreach: float
    scaleup: tuple           # (sent, received) Gb/s per endpoint
    offered: float
    big_uniform: bool        # uniform all-to-all aggregated (too many pairs to expand)


def _route_traffic(run: _Run, summary: dict) -> _Routed:
    """Route the analysis's traffic under its model; notes aggregation in ``summary``."""
    from topo.traffic import demand as T
    fabric, E = run.fabric, run.fabric.n_endpoints
    big_uniform = run.traffic == "uniform" and (run.run_model in _FLUID_MODE or E * (E - 1) > T.MAX_UNIFORM_FLOWS)
    if big_uniform:
        # too many pairs to expand: aggregated uniform loads (fluid-type models only), at line rate
        if run.run_model not in _FLUID_MODE:
            raise SpecError([("traffic", f"uniform all-to-all over {E:,} endpoints is {E * (E - 1):,} flows, too many "
                              f"to hash one by one; use --routing fluid, wcmp or uec-spray (aggregated exactly)")])
        inj = fabric.injection_gbps()
        per_pair = float(inj[inj > 0].min()) / (E - 1) if (inj > 0).any() and E > 1 else 0.0
        r = uniform_loads(fabric, run.run_model, per_pair, failed_links=run.dead)
        summary["aggregated_uniform"] = True
        return _Routed(demands=Demands.concat([]), total=r.link_gbps_load, times=np.zeros(0),
                       unreach=r.unreachable_gbps, scaleup=(np.zeros(E), np.zeros(E)), offered=r.offered_gbps,
                       big_uniform=True)
    agg = run.traffic == "jobs" and run.run_model in _FLUID_MODE
    d = run.demands(run.eff, agg)
    bg = run.background(run.eff, run.run_model) if agg else []
    total, times, unreach, up = _run_model(fabric, d, run.run_model, run.dead, run.seed, run.qps, run.eff,
                                           run.channels, run.sharing, bg)
    offered = float((d.rate_gbps[d.src != d.dst] / run.eff).sum()) + sum(r.offered_gbps for r in bg)
    if bg:
        summary["aggregated_uniform_patterns"] = len(bg)
    return _Routed(demands=d, total=total, times=times, unreach=unreach, scaleup=up, offered=offered,
                   big_uniform=False)


def _n_aggregated(run: _Run) -> int:
    """How many of the file's uniform patterns are aggregated (traffic "jobs" only)."""
    from topo.traffic import demand as T
    if run.traffic != "jobs" or not run.cluster.file.traffic:
        return 0
    return len(T.aggregated_uniform_gbps(run.cluster, run.fabric))


def _compare_wanted(run: _Run, compare: bool, summary: dict) -> bool:
    """Whether the RoCE-vs-UEC comparison runs; a null ``roce_vs_uec`` says why not where the
    traffic is too large to hash pair by pair."""
    from topo.traffic import demand as T
    E = run.fabric.n_endpoints
    if compare and run.traffic == "uniform" and E * (E - 1) > 1_000_000:
        summary["roce_vs_uec"] = None  # hashing the uniform pattern needs every pair: skipped above 1M pairs
        return False
    if compare and _n_aggregated(run) and E * (E - 1) > T.MAX_UNIFORM_FLOWS:
        summary["roce_vs_uec"] = None  # the same: a uniform background too large to hash pair by pair
        return False
    return compare


def _load_summary(run: _Run, routed: _Routed, summary: dict) -> np.ndarray:
    """Flows, offered and unreachable load, utilisation per tier, hottest links and scale-up use
    into ``summary``; returns the utilisation per directed link."""
    fabric, E = run.fabric, run.fabric.n_endpoints
    d, total, offered, unreach = routed.demands, routed.total, routed.offered, routed.unreach
    n_agg = _n_aggregated(run)
    alive = ~run.dead
    cap = run.cap()
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(cap > 0, total / np.where(cap > 0, cap, 1.0), 0.0)
    summary.update({
        "flows": (E * (E - 1) if routed.big_uniform else d.n + n_agg * E * (E - 1) * (run.run_model in _FLUID_MODE)),
        "offered_gbps": offered, "unreachable_gbps": unreach,
        "unreachable_fraction": unreach / offered if offered > 0 else 0.0,
        "max_util": float(util.max()) if util.size else 0.0,
        "tiers": tier_stats(fabric, total, alive), "hottest": _hottest(fabric, total, alive),
    })
    su_s, su_r = routed.scaleup
    dg = fabric.domain_gbps[np.maximum(fabric.ep_domain, 0)] if fabric.n_domains else np.zeros(fabric.n_endpoints)
    su = np.maximum(su_s, su_r)
    with np.errstate(divide="ignore", invalid="ignore"):
        su_util = np.where(dg > 0, su / np.where(dg > 0, dg, 1.0), np.where(su > 0, np.inf, 0.0))
    summary["scaleup"] = {"max_gbps_per_accelerator": float(su.max()) if su.size else 0.0,
                          "max_util": float(su_util.max()) if su_util.size else 0.0}
    return util


def _job_rows(cluster, d: Demands, times: np.ndarray) -> list:
    """Per job: ideal and routed time, slowdown and bus bandwidth."""
    busb = _job_collective_bytes(cluster, set(d.job_names))
    jobs = []
    for k, name in enumerate(d.job_names):
        t = float(times[k])
        bb = busb.get(name, 0.0)
        jobs.append({"name": name, "ideal_s": float(d.job_time_s[k]), "time_s": t,
                     "slowdown": t / d.job_time_s[k] if d.job_time_s[k] > 0 and math.isfinite(t) else None,
                     "busbw_gbps": bb * 8 / t / 1e9 if t > 0 and math.isfinite(t) else 0.0})
    return jobs


def _roce_vs_uec(run: _Run, routed: _Routed) -> dict:
    """The same traffic under roce-hash and under uec-spray, each at its protocol's wire efficiency
    (the routed result reused for the model already routed at that efficiency): max utilisation,
    per-job times and the collision penalty of hashing."""
    d, cap = routed.demands, run.cap()
    side = {}
    for m, proto in (("roce-hash", "roce"), ("uec-spray", "uec")):
        eff = protocol_efficiency(run.cluster, proto)
        if m == run.model and abs(eff - run.eff) < 1e-15:
            tot_m, times_m = routed.total, routed.times
        else:
            fl = m in _FLUID_MODE
            dm = run.demands(eff, fl)
            tot_m, times_m, _, _ = _run_model(run.fabric, dm, m, run.dead, run.seed, run.qps, eff, run.channels,
                                              run.sharing, run.background(eff, m) if fl else [])
        with np.errstate(divide="ignore", invalid="ignore"):
            um = np.where(cap > 0, tot_m / np.where(cap > 0, cap, 1.0), 0.0)
        side[m] = {"wire_efficiency": eff, "max_util": float(um.max()) if um.size else 0.0,
                   **({"channels": run.channels, "qps_per_channel": run.qps} if m in _QP_MODELS else {}),
                   "jobs": {n: float(times_m[k]) for k, n in enumerate(d.job_names)}}
    a, b = side["roce-hash"], side["uec-spray"]
    side["collision_penalty_max_util"] = a["max_util"] / b["max_util"] if b["max_util"] > 0 else None
    side["collision_penalty_time"] = {n: (a["jobs"][n] / b["jobs"][n] if b["jobs"][n] > 0 and math.isfinite(a["jobs"][n]) else None)
                                      for n in d.job_names}
    return side


def _all_to_all_by_class(fabric, dead) -> tuple[dict, float]:
    """Uniform all-to-all rate per endpoint (Gb/s, fluid ECMP, failed links excluded), per node
    class: accelerators and hosts without accelerators, as ``topo describe`` reports it. Each class
    is limited by its own NIC links and by the shared switch links, so slower CPU hosts do not cap
    the accelerators' figure. Returns (per class, unreachable fraction of the pattern)."""
    # no failed link is the healthy fabric whichever way it is said (None, or a mask of no failures:
    # ``topo describe`` says the first and analyze the second, and both give the same figures)
    key = bytes(np.packbits(np.asarray(dead, bool))) if dead is not None and np.any(dead) else b""
    kept = _a2a_kept.setdefault(fabric, {})
    if key not in kept:
        kept.clear()   # one failure set per fabric kept: the analyses of one fabric share it
        kept[key] = _all_to_all_by_class_of(fabric, dead)
    return copy.deepcopy(kept[key])


# the all-to-all figures per fabric (by failure mask): several analyses of one fabric (the route
# stage's two placements, the transport check's candidates) route the same uniform pattern
_a2a_kept: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _all_to_all_by_class_of(fabric, dead) -> tuple[dict, float]:
    r = uniform_loads(fabric, "fluid", 1.0, failed_links=dead)
    util = np.asarray(r.utilization, np.float64)
    n = fabric.n_endpoints
    out: dict = {"method": "fluid ECMP, uniform all-to-all among all endpoints; per class: (endpoints - 1) / the "
                           "highest utilisation of its own NIC links and of the switch links"}
    if n < 2 or util.size == 0:
        return out, float(r.unreachable_fraction)
    util = np.where(dead, 0.0, util) if dead is not None and np.shape(dead) == util.shape else util
    sw = fabric.link_tier >= 1
    u_sw = float(util[sw].max()) if sw.any() else 0.0
    ep_link = fabric.link_tier == 0
    owner = np.where(fabric.link_src < n, fabric.link_src, fabric.link_dst)
    inj = fabric.injection_gbps()
    for cls, mask in (("accelerators", fabric.ep_is_accel), ("cpu_hosts", ~fabric.ep_is_accel)):
        mask = np.asarray(mask, bool) & (inj > 0)
        if not mask.any():
            continue
        m = ep_link & mask[np.minimum(owner, n - 1)]
        u = max(float(util[m].max()) if m.any() else 0.0, u_sw)
        out[cls] = {"endpoints": int(mask.sum()), "gbps_per_endpoint": (n - 1) / u if u > 0 else None,
                    "limited_by": "switch links" if u_sw >= u - 1e-12 else "its NIC links"}
    # per node type, when a class holds several (mixed NIC generations: a 400G node type's figure is
    # limited by its 400G links, an 800G one's by its own), by the same rule
    ep_type = np.asarray(fabric.server_type, np.int64)[fabric.ep_server] if fabric.server_type.size else None
    names = tuple(fabric.server_type_names)
    several = ep_type is not None and any(
        np.unique(ep_type[np.asarray(c, bool)]).size > 1 for c in (fabric.ep_is_accel, ~fabric.ep_is_accel))
    if several and len(names) > 1:   # some class holds several node types
        by_type = {}
        for t in np.unique(ep_type).tolist():
            mask = (ep_type == t) & (inj > 0)
            if not mask.any():
                continue
            m = ep_link & mask[np.minimum(owner, n - 1)]
            u = max(float(util[m].max()) if m.any() else 0.0, u_sw)
            by_type[names[t]] = {"endpoints": int(mask.sum()), "gbps_per_endpoint": (n - 1) / u if u > 0 else None,
                                 "limited_by": "switch links" if u_sw >= u - 1e-12 else "its NIC links",
                                 "nic_port_gbps": sorted({float(g) for g in fabric.link_gbps[m]})}
        out["node_types"] = by_type
    return out, float(r.unreachable_fraction)


def _jsonable(o):
    if isinstance(o, dict):
        return {k: _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, float)):
        v = float(o)
        return v if math.isfinite(v) else None
    if isinstance(o, np.integer):
        return int(o)
    return o
