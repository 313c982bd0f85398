"""The arrays the routing kernels need for one fabric and one failure mask, and the demand
rewrites every routing model shares.

Owns the alive mask of links after failures (:func:`failure_mask`), the prepared arrays per
fabric and mask (:func:`prepare`: the CSR of alive switch links, the endpoints' uplinks and
the destination groups, cached per fabric through weak references), the scale-up loads of
flows inside a scale-up domain and the PXN proxy rewrite of rail-only fabrics (:func:`_pxn`).
Both the routing engine (:mod:`topo.routing.engine`) and the max-concurrent-flow LP
(:mod:`topo.routing.lp`) build on it; the engine re-exports its names.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np


# --- fabric preparation ------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Prepared:
    """Arrays the kernels need for one fabric and one failure mask."""
    alive: np.ndarray       # uint8 per directed link
    sw_ptr: np.ndarray      # CSR over all nodes of the alive switch-to-switch links
    sw_adj: np.ndarray
    sw_head: np.ndarray
    up_ptr: np.ndarray
    up_link: np.ndarray     # sorted by (endpoint, home switch, capacity, link id)
    ep_group: np.ndarray    # int64 destination group (same alive home switches and link capacities), -1 if none
    g_rep: np.ndarray       # a member of each group
    g_size: np.ndarray
    ep_up1: np.ndarray      # the only alive uplink of an endpoint, -1 if it has none or several
    ep_home1: np.ndarray    # its switch
    KU: int                 # most uplinks of one endpoint
    KH: int                 # most distinct home switches of one endpoint


# Prepared arrays per fabric and failure mask (the engine keeps the regular-Clos tables per
# prepared set the same way), keyed by the fabric itself through a weak reference, so an entry
# lives exactly as long as its fabric: no id() that a later object could reuse, nothing to clear by
# hand, and the callers (route, uniform_loads, the LP, every study) keep their plain signatures.
# The failure mask is keyed by its packed bits (exact, not a hash that could collide); at most
# _MASKS masks are kept per fabric (a failure study sees many: the oldest goes first).
_prepared: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_MASKS = 8


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
            if fl.min() < 0 or fl.max() >= fabric.n_links:  # -1 would fail the last link
                raise ValueError(f"failed link ids must be 0..{fabric.n_links - 1}")
            dead[fl] = True
    dead |= dead[np.arange(fabric.n_links) ^ 1]
    if failed_nodes is not None and len(failed_nodes):
        fn = np.zeros(fabric.n_nodes, bool)
        ids = np.asarray(failed_nodes, np.int64)
        if ids.min() < 0 or ids.max() >= fabric.n_nodes:
            raise ValueError(f"failed node ids must be 0..{fabric.n_nodes - 1}")
        fn[ids] = True
        dead |= fn[fabric.link_src] | fn[fabric.link_dst]
    return dead


def prepare(fabric, failed=None) -> Prepared:
    """Alive mask, switch CSR, endpoint uplinks and destination groups (cached per mask)."""
    if failed is None:   # the healthy fabric's, without building and scanning an all-false mask
        hit = _prepared.get(fabric, {}).get(b"")
        if hit is not None:
            return hit
    dead = np.zeros(fabric.n_links, bool) if failed is None else np.asarray(failed, bool)
    key = np.packbits(dead).tobytes() if dead.any() else b""
    masks = _prepared.get(fabric)
    if masks is None:
        masks = _prepared[fabric] = {}
    hit = masks.get(key)
    if hit is not None:
        return hit
    E = fabric.n_endpoints
    alive = (~dead).astype(np.uint8)
    src, dst = fabric.link_src, fabric.link_dst
    is_sw = fabric.node_tier > 0
    sw = is_sw[src] & is_sw[dst] & ~dead
    sw_links = np.flatnonzero(sw)  # sorted, so a stable sort by source keeps link order
    order = np.argsort(src[sw_links], kind="stable")
    sw_adj = sw_links[order].astype(np.int64)
    cnt = np.bincount(src[sw_adj], minlength=fabric.n_nodes)
    sw_ptr = np.zeros(fabric.n_nodes + 1, np.int64)
    np.cumsum(cnt, out=sw_ptr[1:])
    up = np.flatnonzero((src < E) & is_sw[dst] & ~dead)
    gb = fabric.link_gbps
    order = np.lexsort((up, gb[up], dst[up], src[up]))
    up_link = up[order].astype(np.int64)
    ucnt = np.bincount(src[up_link], minlength=E)[:E]
    up_ptr = np.zeros(E + 1, np.int64)
    np.cumsum(ucnt, out=up_ptr[1:])
    KU = int(ucnt.max()) if E else 0
    homes = np.full((E, max(KU, 1)), -1, np.int64)
    pos = np.arange(up_link.shape[0]) - up_ptr[src[up_link]]
    homes[src[up_link], pos] = dst[up_link]
    # members of a group share home switches and link capacities, so they are interchangeable
    caps = np.zeros_like(homes)
    caps[src[up_link], pos] = np.round(gb[up_link] * 1000).astype(np.int64)
    if KU <= 1 and np.unique(caps[:, 0]).size <= 1:
        keys, inv = np.unique(homes[:, 0], return_inverse=True)
        keys = keys[:, None]
    else:
        keys, inv = np.unique(np.concatenate([homes, caps], axis=1), axis=0, return_inverse=True)
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
    one = ucnt == 1
    ep_up1 = np.full(E, -1, np.int64)
    ep_up1[one] = up_link[up_ptr[:E][one]]
    ep_home1 = np.where(one, dst[np.maximum(ep_up1, 0)], -1).astype(np.int64)
    p = Prepared(ep_up1=ep_up1, ep_home1=ep_home1, alive=alive, sw_ptr=sw_ptr, sw_adj=sw_adj, sw_head=np.ascontiguousarray(dst[sw_adj]), up_ptr=up_ptr, up_link=up_link, ep_group=ep_group,
                 g_rep=g_rep, g_size=g_size, KU=max(KU, 1), KH=max(KH, 1))
    if len(masks) >= _MASKS:
        del masks[next(iter(masks))]
    masks[key] = p
    return p


def _scaleup_loads(fabric, src, dst, mass):
    """Per endpoint, Gb/s sent and received inside its scale-up domain."""
    E = fabric.n_endpoints
    dom = fabric.ep_domain
    same = (dom[src] == dom[dst]) & (dom[src] >= 0) & (src != dst)
    up_s = np.bincount(src[same], weights=mass[same], minlength=E)[:E].astype(float)
    up_r = np.bincount(dst[same], weights=mass[same], minlength=E)[:E].astype(float)
    return up_s, up_r


def _pxn(fabric, src, dst, mass):
    """Rail-only fabrics: a flow between rails of two domains first crosses the source domain
    to the member on the destination rail (the proxy), which then sends it on that rail.

    Returns (sources after the proxy rewrite, scale-up sent, scale-up received).
    """
    E = fabric.n_endpoints
    dom = fabric.ep_domain
    up_s, up_r = _scaleup_loads(fabric, src, dst, mass)
    same = (dom[src] == dom[dst]) & (dom[src] >= 0)
    new_src = src
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
        new_src = src.copy()
        new_src[idx] = proxy[has]
    return new_src, up_s, up_r
