"""Routing and congestion: demands onto links, per routing model.

Owns the Python layer over the routing kernels (ext/_routing.pyx): the alive
mask of links after failures, destination groups, dtype coercion, output
allocation, scale-up accounting, and the analysis built on top (per-tier
statistics, per-job completion times and bus bandwidth, RoCE hashing against
Ultra Ethernet spraying). It never parses files and never prints.

Models
------
* ``fluid``: ideal ECMP over all equal-cost shortest paths: at every switch a
  flow splits over next hops in proportion to their number of shortest paths
  to the destination (every shortest path carries the same share). Under
  uniform all-to-all this is subset edge betweenness.
* ``wcmp``: like fluid, split in proportion to link capacity.
* ``roce-hash``: each queue pair of a flow takes one link per hop chosen by a
  seeded splitmix64 hash of (seed, flow id, qp, node) modulo the number of
  equal-cost next-hop links (per-hop ECMP as switches do it); the flow's bytes
  are split evenly across its queue pairs.
* ``uec-spray``: packet spraying, per-hop equal split over the equal-cost next
  hops. On symmetric fabrics it equals fluid; it differs where the number of
  paths behind each next hop differs (asymmetric graphs, failed links).
* ``optimal``: the max-concurrent-flow LP (see :mod:`topo.routing_lp`).

Flows between endpoints of one scale-up domain never touch the scale-out
fabric; they are counted as scale-up load of their endpoints. On rail-only
fabrics a flow between rails of two different domains first crosses the
source domain to the member on the destination rail (scale-up load), then
travels on that rail (PXN).

Job completion under fluid-type models: a job's time is its ideal time times
the largest utilisation (at least 1) of any link its flows load (proportional
sharing of overloaded links). Under roce-hash: max-min fair water-filling of
all queue pairs; a collective ends when its slowest flow ends.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ._ext import kernel
from .errors import SpecError
from .traffic import Demands

MODELS = ("fluid", "wcmp", "roce-hash", "uec-spray", "optimal")
_FLUID_MODE = {"fluid": 0, "wcmp": 1, "uec-spray": 2}


# --- fabric preparation ------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Prepared:
    """Arrays the kernels need for one fabric and one failure mask."""
    alive: np.ndarray       # uint8 per directed link
    sw_ptr: np.ndarray
    sw_adj: np.ndarray
    up_ptr: np.ndarray
    up_link: np.ndarray
    ep_group: np.ndarray    # int64 destination group of each endpoint, -1 if it has no alive uplink
    g_rep: np.ndarray       # a member of each group
    g_size: np.ndarray
    KU: int                 # most uplinks of one endpoint
    KH: int                 # most distinct home switches of one endpoint


_cache: dict = {}


def failure_mask(fabric, failed_links=None, failed_nodes=None) -> np.ndarray:
    """Boolean mask of failed directed links: both directions of each failed link, all links of failed nodes."""
    dead = np.zeros(fabric.n_links, bool)
    if failed_links is not None:
        fl = np.asarray(failed_links)
        if fl.dtype == bool:
            if fl.shape[0] != fabric.n_links:
                raise ValueError("failed_links mask must have one entry per directed link")
            dead |= fl
        elif fl.size:
            fl = fl.astype(np.int64)
            dead[fl] = True
    dead |= dead[np.arange(fabric.n_links) ^ 1]
    if failed_nodes is not None and len(failed_nodes):
        fn = np.zeros(fabric.n_nodes, bool)
        fn[np.asarray(failed_nodes, np.int64)] = True
        dead |= fn[fabric.link_src] | fn[fabric.link_dst]
    return dead


def prepare(fabric, failed=None) -> Prepared:
    """Alive mask, switch CSR, endpoint uplinks and destination groups (cached per mask)."""
    dead = np.zeros(fabric.n_links, bool) if failed is None else np.asarray(failed, bool)
    key = (id(fabric), hash(dead.tobytes()) if dead.any() else 0)
    hit = _cache.get(key)
    if hit is not None and hit[0] is fabric:
        return hit[1]
    E = fabric.n_endpoints
    alive = (~dead).astype(np.uint8)
    src, dst = fabric.link_src, fabric.link_dst
    is_sw = fabric.node_tier > 0
    sw = is_sw[src] & is_sw[dst]
    sw_links = np.flatnonzero(sw)  # sorted, so a stable sort by source keeps link order
    order = np.argsort(src[sw_links], kind="stable")
    sw_adj = sw_links[order].astype(np.int64)
    cnt = np.bincount(src[sw_adj], minlength=fabric.n_nodes)
    sw_ptr = np.zeros(fabric.n_nodes + 1, np.int64)
    np.cumsum(cnt, out=sw_ptr[1:])
    up = np.flatnonzero((src < E) & is_sw[dst] & ~dead)
    order = np.lexsort((up, dst[up], src[up]))
    up_link = up[order].astype(np.int64)
    ucnt = np.bincount(src[up_link], minlength=E)[:E]
    up_ptr = np.zeros(E + 1, np.int64)
    np.cumsum(ucnt, out=up_ptr[1:])
    KU = int(ucnt.max()) if E else 0
    homes = np.full((E, max(KU, 1)), -1, np.int64)
    pos = np.arange(up_link.shape[0]) - up_ptr[src[up_link]]
    homes[src[up_link], pos] = dst[up_link]
    if KU <= 1:
        keys, inv = np.unique(homes[:, 0], return_inverse=True)
        keys = keys[:, None]
    else:
        keys, inv = np.unique(homes, axis=0, return_inverse=True)
    inv = inv.ravel().astype(np.int64)
    # the all -1 key (no alive uplink) is not a group
    valid = keys[:, 0] >= 0
    remap = np.full(keys.shape[0], -1, np.int64)
    remap[valid] = np.arange(int(valid.sum()))
    ep_group = remap[inv]
    ng = int(valid.sum())
    g_size = np.bincount(ep_group[ep_group >= 0], minlength=ng).astype(np.int64)
    g_rep = np.full(ng, -1, np.int64)
    idx = np.flatnonzero(ep_group >= 0)
    g_rep[ep_group[idx[::-1]]] = idx[::-1]  # first member of each group
    distinct = np.ones(up_link.shape[0], bool)
    if up_link.size:
        distinct[1:] = (src[up_link][1:] != src[up_link][:-1]) | (dst[up_link][1:] != dst[up_link][:-1])
    KH = int(np.bincount(src[up_link][distinct], minlength=E).max()) if E and up_link.size else 1
    p = Prepared(alive=alive, sw_ptr=sw_ptr, sw_adj=sw_adj, up_ptr=up_ptr, up_link=up_link, ep_group=ep_group,
                 g_rep=g_rep, g_size=g_size, KU=max(KU, 1), KH=max(KH, 1))
    if len(_cache) > 8:
        _cache.clear()
    _cache[key] = (fabric, p)
    return p


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


def _rewrite_scaleup(fabric, src, dst, mass, nbytes):
    """Split flows into scale-out flows and scale-up loads (rail-only: PXN proxy).

    Returns (keep mask, new src for kept flows, scale-up sent, scale-up recv, scale-up bytes sent).
    """
    E = fabric.n_endpoints
    dom = fabric.ep_domain
    same = (dom[src] == dom[dst]) & (dom[src] >= 0)
    new_src = src.copy()
    up_s = np.zeros(E)
    up_r = np.zeros(E)
    if same.any():
        up_s += np.bincount(src[same], weights=mass[same], minlength=E)[:E]
        up_r += np.bincount(dst[same], weights=mass[same], minlength=E)[:E]
    if fabric.family == "rail_only":
        rail = fabric.ep_local.astype(np.int64)
        R = int(rail.max()) + 1 if E else 1
        cross = ~same & (rail[src] != rail[dst]) & (dom[src] >= 0)
        if cross.any():
            key = dom * R + rail
            ok_ep = dom >= 0
            table = np.full(int(key[ok_ep].max()) + 1, -1, np.int64)
            eps = np.flatnonzero(ok_ep)[::-1]
            table[key[eps]] = eps  # first endpoint of each (domain, rail)
            proxy = table[dom[src[cross]] * R + rail[dst[cross]]]
            has = proxy >= 0
            idx = np.flatnonzero(cross)[has]
            up_s += np.bincount(src[idx], weights=mass[idx], minlength=E)[:E]
            up_r += np.bincount(proxy[has], weights=mass[idx], minlength=E)[:E]
            new_src[idx] = proxy[has]
    keep = ~same
    return keep, new_src, up_s, up_r


def route(fabric, demands: Demands, model: str = "fluid", *, failed_links=None, failed_nodes=None,
          seed: int = 0, qps: int = 1, efficiency: float = 1.0, record_paths: bool = False) -> RouteResult:
    """Route demands on the fabric; offered wire load = rate_gbps / efficiency.

    ``failed_links``: link ids or a boolean mask over directed links (both
    directions fail); ``failed_nodes``: switch ids whose links all fail.
    Cost: O(destination groups x switch links) for the BFS, plus O(flows x
    uplinks) (fluid-type) or O(flows x qps x hops) (roce-hash).
    """
    if model not in MODELS:
        raise SpecError([("--routing", f"unknown routing model {model!r}; expected one of {list(MODELS)}")])
    if model == "optimal":
        raise SpecError([("--routing", "the optimal model is a bound, computed by topo.routing_lp.max_concurrent_flow, not a routing of loads")])
    if qps < 1:
        raise SpecError([("transport.qps_per_connection", f"must be at least 1 (found {qps})")])
    dead = failure_mask(fabric, failed_links, failed_nodes)
    P = prepare(fabric, dead)
    src = np.asarray(demands.src, np.int64)
    dst = np.asarray(demands.dst, np.int64)
    nbytes = np.asarray(demands.bytes, np.float64)
    mass = np.asarray(demands.rate_gbps, np.float64) / efficiency
    if np.any(mass < 0) or np.any(nbytes < 0):
        raise SpecError([("traffic", "demands must be non-negative")])
    real = src != dst
    keep, new_src, up_s, up_r = _rewrite_scaleup(fabric, src, dst, mass, nbytes)
    keep &= real
    L = fabric.n_links
    load = np.zeros(L)
    bload = np.zeros(L)
    unreach = np.zeros(src.shape[0])
    fi = np.flatnonzero(keep)
    gdst = P.ep_group[dst[fi]]
    gsrc = P.ep_group[new_src[fi]]
    dead_f = (gdst < 0) | (gsrc < 0)
    unreach[fi[dead_f]] = mass[fi[dead_f]]
    fi = fi[~dead_f]
    gdst = gdst[~dead_f]
    order = np.argsort(gdst, kind="stable")
    fi = fi[order]
    ng = P.g_rep.shape[0]
    g_ptr = np.zeros(ng + 1, np.int64)
    np.cumsum(np.bincount(gdst, minlength=ng), out=g_ptr[1:])
    fs = np.ascontiguousarray(new_src[fi])
    fd = np.ascontiguousarray(dst[fi])
    fm = np.ascontiguousarray(mass[fi])
    fb = np.ascontiguousarray(nbytes[fi] * 8.0 / 1e9)  # routed as Gb so that bytes follow the same split
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
        lh = np.zeros(P.KH)
        g_id = np.arange(ng, dtype=np.int64)
        fsg = np.full(fi.shape[0], -1, np.int64)
        gu = np.zeros(1)
        for w, out in ((fm, load), (fb, bload)):
            u = np.zeros(fi.shape[0])
            K.route_fluid(mode, P.KU, P.KH, P.sw_ptr, P.sw_adj, fabric.link_dst, fabric.link_gbps, P.alive,
                          P.up_ptr, P.up_link, g_ptr, P.g_rep, g_id, fs, fd, fsg, w,
                          dist, hidx, sigma, den, massw, order_w, A, lh, out, gu, gu, u)
            if w is fm:
                un = u
    else:
        fid = np.ascontiguousarray(fi.astype(np.int64))
        nh_start = np.zeros(n, np.int64)
        nh_cnt = np.zeros(n, np.int64)
        nh_list = np.zeros(max(P.sw_adj.shape[0], 1), np.int64)
        H = 2 * max(fabric.n_tiers, 1) + 2 if fabric.family != "custom" else 16
        while True:
            path = np.full(fi.shape[0] * qps * H if record_paths else 0, -1, np.int64)
            load[:] = 0.0
            un = np.zeros(fi.shape[0])
            longest = K.route_hash(np.uint64(seed & (2**64 - 1)), qps, H, P.sw_ptr, P.sw_adj, fabric.link_dst,
                                   fabric.link_gbps, P.alive, P.up_ptr, P.up_link, g_ptr, P.g_rep, fs, fd, fid, fm,
                                   dist, hidx, sigma, den, order_w, nh_start, nh_cnt, nh_list, load, un, path)
            if not record_paths or longest <= H:
                break
            H = int(longest)
        # bytes follow the same queue-pair paths: rerun with byte weights (cheap next to path recording)
        u2 = np.zeros(fi.shape[0])
        K.route_hash(np.uint64(seed & (2**64 - 1)), qps, H, P.sw_ptr, P.sw_adj, fabric.link_dst,
                     fabric.link_gbps, P.alive, P.up_ptr, P.up_link, g_ptr, P.g_rep, fs, fd, fid, fb,
                     dist, hidx, sigma, den, order_w, nh_start, nh_cnt, nh_list, bload, u2, np.zeros(0, np.int64))
        if record_paths:
            qp_flow = np.repeat(fi, qps)
            qp_gbps = np.repeat(fm / qps, qps)
            qp_path = path.reshape(-1, H)
            bad = np.repeat(un > 0, qps)
            if bad.any():
                qp_flow, qp_gbps, qp_path = qp_flow[~bad], qp_gbps[~bad], qp_path[~bad]
    unreach[fi] += un
    bload *= 1e9 / 8.0
    cap = np.where(P.alive.astype(bool), fabric.link_gbps, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(cap > 0, load / np.where(cap > 0, cap, 1.0), np.where(load > 0, np.inf, 0.0))
    un_b = float((unreach > 0) @ nbytes) if unreach.size else 0.0
    return RouteResult(model=model, link_gbps_load=load, link_bytes=bload, utilization=util,
                       unreachable_gbps=float(unreach.sum()), unreachable_bytes=un_b,
                       offered_gbps=float(mass[real].sum()), flow_unreachable=unreach,
                       scaleup_sent_gbps=up_s, scaleup_recv_gbps=up_r,
                       qp_flow=qp_flow, qp_gbps=qp_gbps, qp_path=qp_path)


def uniform_loads(fabric, model: str = "fluid", per_pair_gbps: float = 1.0, *, failed_links=None,
                  failed_nodes=None) -> RouteResult:
    """Uniform all-to-all among all endpoints (each ordered pair ``per_pair_gbps``), aggregated.

    Exact for fluid-type models: flows are aggregated per (source group,
    destination group) and spread evenly over the members at both ends, which
    is exact because members of a group share their home switches. Cost
    O(groups x switch links + groups^2). Scale-up domains are ignored (every
    pair crosses the scale-out fabric).
    """
    if model not in _FLUID_MODE:
        raise SpecError([("--routing", f"uniform loads are aggregated for fluid, wcmp and uec-spray only (found {model!r})")])
    dead = failure_mask(fabric, failed_links, failed_nodes)
    P = prepare(fabric, dead)
    ng = P.g_rep.shape[0]
    a, b = np.meshgrid(np.arange(ng), np.arange(ng), indexing="ij")
    a, b = a.ravel(), b.ravel()  # sorted by destination group after the transpose below
    order = np.argsort(b, kind="stable")
    a, b = a[order], b[order]
    m = per_pair_gbps * P.g_size[a] * (P.g_size[b] - (a == b))
    sel = m > 0
    a, b, m = a[sel], b[sel], m[sel]
    g_ptr = np.zeros(ng + 1, np.int64)
    np.cumsum(np.bincount(b, minlength=ng), out=g_ptr[1:])
    n = fabric.n_nodes
    L = fabric.n_links
    load = np.zeros(L)
    gu = np.zeros(ng * P.KU)
    gd = np.zeros(ng * P.KU)
    un = np.zeros(a.shape[0])
    K = kernel("_routing")
    K.route_fluid(_FLUID_MODE[model], P.KU, P.KH, P.sw_ptr, P.sw_adj, fabric.link_dst, fabric.link_gbps, P.alive,
                  P.up_ptr, P.up_link, g_ptr, P.g_rep, np.arange(ng, dtype=np.int64),
                  np.ascontiguousarray(P.g_rep[a]), np.full(a.shape[0], -1, np.int64), np.ascontiguousarray(a),
                  np.ascontiguousarray(m), np.full(n, -1, np.int64), np.full(n, -1, np.int64), np.zeros(n),
                  np.zeros(n), np.zeros(n), np.zeros(n, np.int64), np.zeros(n * P.KH), np.zeros(P.KH),
                  load, gu, gd, un)
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
    unreach = float(un.sum()) + per_pair_gbps * n_dead * (E - 1) * 2 - per_pair_gbps * n_dead * max(n_dead - 1, 0)
    cap = np.where(P.alive.astype(bool), fabric.link_gbps, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(cap > 0, load / np.where(cap > 0, cap, 1.0), np.where(load > 0, np.inf, 0.0))
    z = np.zeros(E)
    return RouteResult(model=model, link_gbps_load=load, link_bytes=load * 1e9 / 8.0, utilization=util,
                       unreachable_gbps=unreach, unreachable_bytes=unreach * 1e9 / 8.0,
                       offered_gbps=per_pair_gbps * E * (E - 1), flow_unreachable=un,
                       scaleup_sent_gbps=z, scaleup_recv_gbps=z.copy())
