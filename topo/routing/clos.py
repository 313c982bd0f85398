"""Structural routing on regular Clos fabrics: next hops from the tier structure, no BFS.

On a regular up-down Clos the shortest paths between two leaves are known
without a search: every uplink is an equal-cost next hop until the lowest tier
that joins the two leaves (the leaf itself, the spines of its pod, or the
super-spines of its plane), and from there exactly one switch per tier leads
down to the destination leaf. ``clos_plan`` checks that structure on the
healthy fabric and, when it holds, returns the lookup tables the kernel
``route_clos`` (ext/_routing.pyx) uses to classify and route every flow in one
pass over the demands, with neither the bucketing of flows by destination nor
a BFS per destination; ``spread_spray`` and ``spread_pairs`` turn its
aggregated spraying masses into link loads.

The kernel makes the general kernels' own choices: next-hop lists are in the
same (CSR, link id) order and the same hash picks from them, so under hashing
the paths are those of ``route_hash`` and under spraying the loads those of
``route_fluid``'s spray mode; tests compare them on seeded random regular
fabrics, healthy and with failures. Failed links and switches (single-plane
fabrics) are applied per flow: a flow inside a pod between leaves that lost
links takes the alive next hops of its leaf pair; spraying between pods goes
level by level over the links that still reach the destination (kernel
``spray_cross``); flows left with no shortest up-down path go to the general
kernels. A fabric that is not regular (dual-homed endpoints, links between
non-adjacent tiers, incomplete pods) gets ``None`` and the general kernels.

What "regular" means here, checked link by link on the alive graph:
* every endpoint has K alive uplinks to tier-1 switches (leaves), its k-th in
  plane k; with K > 1 the endpoint sits at the same leaf position, pod slot and
  rank in every plane;
* every switch-to-switch link joins tiers t and t+1, with at most 3 tiers;
* pods: the leaves that share their spines. Each pod's leaves and spines form
  a complete bipartite graph with one bundle size (parallel links) per pod,
  and a spine has leaves of one pod only;
* each super-spine has exactly one spine in every pod of its plane (the
  pods it joins), super-spines that share a pod join the same pods, and every
  spine of a plane with more than one pod has an uplink.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class ClosPlan:
    """Lookup tables of a regular Clos (int64 arrays; node-indexed unless said)."""
    K: int                 # uplinks (planes) per endpoint
    ep_up: np.ndarray      # per (endpoint, plane): its uplink (its downlink is ep_up ^ 1)
    leaf_of: np.ndarray    # per (endpoint, plane): its leaf
    pod: np.ndarray        # per node: pod (leaves, spines), -1 for others
    comp: np.ndarray       # per node: plane (connected component) of leaves, spines, supers
    rank: np.ndarray       # per leaf: index among its pod's leaves (ascending node id)
    pod_b1: np.ndarray     # per pod: leaf-spine bundle size
    pod_nsp: np.ndarray    # per pod: spines
    pod_nlf: np.ndarray    # per pod: leaves
    up_ptr: np.ndarray     # per node: CSR of alive uplinks (leaf->spine, spine->super) in CSR order
    up_lnk: np.ndarray
    up_head: np.ndarray
    uph: np.ndarray        # per uplink entry: link, head, the head's sd_base
    sd_base: np.ndarray    # per spine: start of its down table (rank-major, b1 links per leaf, by link id)
    sd_lnk: np.ndarray
    xd_base: np.ndarray    # per super: start of its row of pod slots
    xd_start: np.ndarray   # per (super, pod slot): first entry in xd_lnk, and count
    xd_cnt: np.ndarray
    xd_lnk: np.ndarray     # super->spine links, by (pod, link id)
    xd_head: np.ndarray
    pod_slot: np.ndarray   # per pod: its index among the pods of its plane
    leaf_idx: np.ndarray   # per node: index among all leaves, -1 for others
    n_pods: int
    n_slots: int           # most pods in one plane
    n_leaves: int
    ept: np.ndarray        # per (endpoint, plane), 8 int32: domain, leaf, uplink, plane, pod, rank, leaf index, pod slot
    cache: dict = field(default_factory=dict)   # derived tables (spread_spray's)


def clos_plan(fabric, P) -> ClosPlan | None:
    """The structural tables of the alive fabric, or None when it is not a regular Clos.

    In steps, each None when the fabric is not one: the endpoints' uplinks
    (:func:`_clos_endpoints`), pods of leaves and spines (:func:`_clos_pods`), planes of pods
    joined by super-spines (:func:`_clos_planes`), then the tables the kernels index by (pod
    slots, leaf ranks, the uplink CSR, the spine and super-spine down tables) and, with several
    uplinks per endpoint, that every plane has one shape (:func:`_planes_alike`)."""
    E = fabric.n_endpoints
    n = fabric.n_nodes
    tier = fabric.node_tier.astype(np.int64)
    if E == 0 or fabric.n_links >= 2**31 or n >= 2**31 or tier.max(initial=0) > 3:
        return None                             # (the endpoint table holds int32 ids)
    g = _ClosGraph(fabric, P, tier)
    eps = _clos_endpoints(fabric, P, g)
    if eps is None:
        return None
    K, ep_up, ep_leaf = eps
    pods = _clos_pods(g)
    if pods is None:
        return None
    pod, npods, nlf, nsp, b1 = pods
    planes = _clos_planes(g, pod, npods)
    if planes is None:
        return None
    pod_comp, comp, comp_sizes, first = planes
    slot = _pod_slots(pod_comp, npods)
    # --- leaf ranks within pods ---
    leaves, src, dst = g.leaves, g.src, g.dst
    rank = np.full(n, -1, np.int64)
    lo = np.lexsort((leaves, pod[leaves]))
    lv = leaves[lo]
    first_of_pod = np.concatenate([[0], np.cumsum(nlf)[:-1]]).astype(np.int64)
    rank[lv] = np.arange(lv.size) - first_of_pod[pod[lv]]
    leaf_idx = np.full(n, -1, np.int64)
    leaf_idx[leaves] = np.arange(leaves.size)
    # --- uplink CSR (CSR order kept) ---
    ul = g.sw[g.th > g.ts]
    cnt = np.bincount(src[ul], minlength=n)
    up_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(cnt, out=up_ptr[1:])
    sd_base, sd_lnk = _spine_down(g, rank)
    xd = _super_down(g, pod, slot, pod_comp, comp_sizes, first)
    if K > 1 and not _planes_alike(g, ep_leaf, comp, pod, slot, rank, K):
        return None
    lf = ep_leaf.ravel()                        # rows (endpoint, plane)
    dom = np.repeat(fabric.ep_domain.astype(np.int64), K)
    ept = np.stack([dom, lf, ep_up.ravel(), comp[lf], pod[lf], rank[lf], leaf_idx[lf],
                    slot[pod[lf]]], axis=1).astype(np.int32).ravel()
    plan = ClosPlan(ept=ept, K=K, ep_up=ep_up.ravel(), leaf_of=lf, pod=pod, comp=comp, rank=rank,
                    pod_b1=b1, pod_nsp=nsp.astype(np.int64), pod_nlf=nlf.astype(np.int64),
                    up_ptr=up_ptr, up_lnk=ul.astype(np.int64), up_head=dst[ul].astype(np.int64),
                    uph=np.stack([ul, dst[ul], sd_base[dst[ul]]], axis=1).astype(np.int64).ravel(),
                    sd_base=sd_base, sd_lnk=sd_lnk, **xd, pod_slot=slot, leaf_idx=leaf_idx, n_pods=int(npods),
                    n_slots=int(comp_sizes.max(initial=1)), n_leaves=int(leaves.size))
    check_plan(fabric, plan)
    return plan


class _ClosGraph:
    """The alive switch graph :func:`clos_plan` reads: link ends, the alive switch->switch links in
    CSR order (``sw``) with their tail and head tiers (``ts``, ``th``), the switches by tier."""

    def __init__(self, fabric, P, tier):
        self.n = fabric.n_nodes
        self.tier = tier
        self.src, self.dst = fabric.link_src, fabric.link_dst
        self.sw = P.sw_adj
        self.ts, self.th = tier[self.src[self.sw]], tier[P.sw_head]
        self.leaves = np.flatnonzero(tier == 1)
        self.spines = np.flatnonzero(tier == 2)
        self.supers = np.flatnonzero(tier == 3)
        sel = (self.ts == 3) & (self.th == 2)
        self.xs = self.sw[sel]                   # super -> spine
        self.x_of, self.s_of = self.src[self.xs], P.sw_head[sel]


def _clos_endpoints(fabric, P, g: _ClosGraph):
    """(K, each endpoint's K uplinks, their leaves): every endpoint has K alive uplinks to distinct
    leaves, the only alive endpoint links, and every alive switch link joins adjacent tiers; else None."""
    E = fabric.n_endpoints
    # every endpoint: K alive uplinks to leaves, the k-th of each in plane k (checked in _planes_alike)
    cnt = np.diff(P.up_ptr)
    K = int(cnt[0]) if E else 0
    if K < 1 or (cnt != K).any():
        return None
    ep_up = P.up_link.reshape(E, K)             # sorted by home switch per endpoint
    ep_leaf = g.dst[ep_up]
    if (g.tier[ep_leaf] != 1).any() or (K > 1 and (ep_leaf[:, 1:] == ep_leaf[:, :-1]).any()):
        return None
    # endpoint links: exactly the endpoints' uplinks and their reverses are alive
    ep_side = (g.src < E) | (g.dst < E)
    if int((P.alive.astype(bool) & ep_side).sum()) != 2 * E * K:
        return None
    if not (np.abs(g.ts - g.th) == 1).all():
        return None
    return K, ep_up, ep_leaf


def _clos_pods(g: _ClosGraph):
    """(pod of every node, pods, leaves and spines per pod, leaf-spine bundle per pod): leaves with
    their spines, complete bipartite, one bundle size per pod; every leaf alone when there is one
    switch tier; None when the leaf-spine links do not form such pods."""
    n, leaves, spines, src, dst = g.n, g.leaves, g.spines, g.src, g.dst
    pod = np.full(n, -1, np.int64)
    if not spines.size:
        npods = leaves.size                     # one switch tier: every leaf alone
        pod[leaves] = np.arange(npods)
        return pod, npods, np.ones(npods, np.int64), np.zeros(npods, np.int64), np.zeros(npods, np.int64)
    ls = g.sw[(g.ts == 1) & (g.th == 2)]
    a, b = src[ls], dst[ls]
    deg_l = np.bincount(a, minlength=n)
    if (deg_l[leaves] == 0).any() or (np.bincount(b, minlength=n)[spines] == 0).any():
        return None
    label = np.full(n, n, np.int64)
    np.minimum.at(label, a, b)             # a leaf's pod label: its lowest spine
    sp_lab = np.full(n, n, np.int64)
    np.minimum.at(sp_lab, b, label[a])
    sp_max = np.full(n, -1, np.int64)
    np.maximum.at(sp_max, b, label[a])
    if (sp_lab[spines] != sp_max[spines]).any():
        return None                         # a spine with leaves of two pods
    labs, pod_leaf = np.unique(label[leaves], return_inverse=True)
    pod[leaves] = pod_leaf
    pod[spines] = np.searchsorted(labs, sp_lab[spines])
    if (labs[pod[spines]] != sp_lab[spines]).any():
        return None
    npods = labs.size
    nlf = np.bincount(pod[leaves], minlength=npods)
    nsp = np.bincount(pod[spines], minlength=npods)
    pair = a * n + b
    up_pairs, mult = np.unique(pair, return_counts=True)
    pa = up_pairs // n
    pp = pod[pa]
    if (np.bincount(pp, minlength=npods) != nlf * nsp).any():
        return None                         # not complete bipartite
    b1 = np.zeros(npods, np.int64)
    b1[pp] = mult
    if (mult != b1[pp]).any():
        return None                         # bundle sizes differ within a pod
    return pod, npods, nlf, nsp, b1


def _clos_planes(g: _ClosGraph, pod, npods: int):
    """(plane of every pod, plane of every switch, pods per plane, each super-spine's first spine):
    pods joined by super-spines, each super with one spine in every pod of its plane; None when
    the super-spines do not form such planes or a spine of a multi-pod plane has no uplink."""
    n, spines, supers, x_of, s_of = g.n, g.spines, g.supers, g.x_of, g.s_of
    comp = np.full(n, -1, np.int64)
    pod_comp = np.arange(npods, dtype=np.int64)
    if supers.size:
        if (np.bincount(x_of, minlength=n)[supers] == 0).any():
            return None
        xp = pod[s_of]
        xl = np.full(n, npods, np.int64)
        np.minimum.at(xl, x_of, xp)            # a super's plane label: its lowest pod
        pl_lo = np.full(npods, npods, np.int64)
        pl_hi = np.full(npods, -1, np.int64)
        np.minimum.at(pl_lo, xp, xl[x_of])
        np.maximum.at(pl_hi, xp, xl[x_of])
        if (pl_lo[xp] != pl_hi[xp]).any():
            return None                         # supers sharing a pod join different pod sets
        touched = pl_hi >= 0
        pod_comp[touched] = pl_lo[touched]
        # one spine per pod per super, and every pod of the plane
        xsp = np.unique(x_of * n + s_of)
        xx, ss = xsp // n, xsp % n
        xpod = np.unique(xx * npods + pod[ss])
        if xpod.size != xsp.size:
            return None                         # a super with two spines in one pod
        pods_in = np.bincount(pod_comp, minlength=npods)
        if (np.bincount(xx, minlength=n)[supers] != pods_in[xl[supers]]).any():
            return None
    comp_sizes = np.bincount(pod_comp, minlength=npods)
    multi = comp_sizes[pod_comp] > 1
    if spines.size:
        sup_deg = np.bincount(g.src[g.sw[(g.ts == 2) & (g.th == 3)]], minlength=n)
        if (multi[pod[spines]] & (sup_deg[spines] == 0)).any():
            return None                         # a spine that cannot reach the other pods
    comp[g.leaves] = pod_comp[pod[g.leaves]]
    if spines.size:
        comp[spines] = pod_comp[pod[spines]]
    first = np.full(n, -1, np.int64)
    if supers.size:
        first[x_of[::-1]] = s_of[::-1]
        comp[supers] = pod_comp[pod[first[supers]]]
    return pod_comp, comp, comp_sizes, first


def _pod_slots(pod_comp, npods: int):
    """Each pod's slot within its plane (pods of a plane numbered in pod order)."""
    order = np.lexsort((np.arange(npods), pod_comp))
    slot = np.zeros(npods, np.int64)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(pod_comp[order]) != 0) + 1]) if npods else np.zeros(0, np.int64)
    run = np.zeros(npods, np.int64)
    if npods:
        run[starts] = starts
        run = np.maximum.accumulate(run)
        slot[order] = np.arange(npods) - run
    return slot


def _spine_down(g: _ClosGraph, rank):
    """Spine down tables: (first row of every spine, its down links rank-major, b1 per leaf, by link id)."""
    n, src, dst = g.n, g.src, g.dst
    dn = g.sw[(g.ts == 2) & (g.th == 1)]
    sd_base = np.full(n, -1, np.int64)
    sd_lnk = np.zeros(0, np.int64)
    if dn.size:
        o = np.lexsort((dn, rank[dst[dn]], src[dn]))
        sd_lnk = dn[o].astype(np.int64)
        c = np.bincount(src[sd_lnk], minlength=n)
        base = np.zeros(n + 1, np.int64)
        np.cumsum(c, out=base[1:])
        sd_base[g.spines] = base[g.spines]
    return sd_base, sd_lnk


def _super_down(g: _ClosGraph, pod, slot, pod_comp, comp_sizes, first) -> dict:
    """Super-spine down tables: per (super, pod slot) the links to that pod's spine, as the
    ClosPlan fields ``xd_base``, ``xd_start``, ``xd_cnt``, ``xd_lnk``, ``xd_head``."""
    n, supers, xs, x_of, s_of = g.n, g.supers, g.xs, g.x_of, g.s_of
    xd = {"xd_base": np.full(n, -1, np.int64), "xd_start": np.zeros(0, np.int64), "xd_cnt": np.zeros(0, np.int64),
          "xd_lnk": np.zeros(0, np.int64), "xd_head": np.zeros(0, np.int64)}
    if supers.size:
        o = np.lexsort((xs, slot[pod[s_of]], x_of))
        xd_lnk = xs[o].astype(np.int64)
        xd_head = g.dst[xd_lnk].astype(np.int64)
        rows = comp_sizes[pod_comp[pod[first[supers]]]]
        xb = np.zeros(supers.size + 1, np.int64)
        np.cumsum(rows, out=xb[1:])
        xd["xd_base"][supers] = xb[:-1]
        key = xd["xd_base"][g.src[xd_lnk]] + slot[pod[xd_head]]
        xd_cnt = np.bincount(key, minlength=int(xb[-1])).astype(np.int64)
        xd.update(xd_lnk=xd_lnk, xd_head=xd_head, xd_cnt=xd_cnt,
                  xd_start=np.concatenate([[0], np.cumsum(xd_cnt)[:-1]]).astype(np.int64))
    return xd


def _planes_alike(g: _ClosGraph, ep_leaf, comp, pod, slot, rank, K: int) -> bool:
    """Planes of one shape, every endpoint at the same place in each: the k-th uplinks all in one
    plane, and the same leaf position, pod slot and rank in every plane."""
    leaves = g.leaves
    pc = comp[ep_leaf]
    if (pc != pc[:1]).any() or np.unique(pc[0]).size != K:
        return False
    lpos = np.zeros(g.n, np.int64)
    o = np.lexsort((leaves, comp[leaves]))
    lc = comp[leaves][o]
    first = np.searchsorted(lc, lc)
    lpos[leaves[o]] = np.arange(leaves.size) - first
    for key in (lpos, slot[np.maximum(pod, 0)], rank):
        v = key[ep_leaf]
        if (v != v[:, :1]).any():
            return False
    return True


def check_plan(fabric, plan: ClosPlan) -> None:
    """The composite structure the kernels route_clos and spray_cross index by, checked once per
    table set (topo.routing.kernels checks every call's index ranges): leaves' uplinks lead to spines of
    their own pod, and every spine's down table has b1 links for each leaf rank of its pod; a
    spine's uplinks lead to super-spines of its plane, each with one row per pod slot of that
    plane; the endpoint table agrees with the per-node arrays. Raises RuntimeError (a bug in
    clos_plan) when it does not hold."""
    def bad(what):
        raise RuntimeError(f"clos_plan built inconsistent tables: {what}")

    n = fabric.n_nodes
    tier = fabric.node_tier
    src = fabric.link_src
    pod, comp, rank = plan.pod, plan.comp, plan.rank
    leaves = np.flatnonzero(tier == 1)
    spines = np.flatnonzero(tier == 2)
    supers = np.flatnonzero(tier == 3)
    owner = src[plan.up_lnk]
    if not (np.repeat(np.arange(n), np.diff(plan.up_ptr)) == owner).all() or (fabric.link_dst[plan.up_lnk] != plan.up_head).any():
        bad("uplink rows")
    lf = tier[owner] == 1
    if (tier[plan.up_head[lf]] != 2).any() or (pod[plan.up_head[lf]] != pod[owner[lf]]).any():
        bad("a leaf's uplink leaves its pod")
    sp = tier[owner] == 2
    if (tier[plan.up_head[sp]] != 3).any() or (comp[plan.up_head[sp]] != comp[owner[sp]]).any():
        bad("a spine's uplink leaves its plane")
    if (plan.uph.reshape(-1, 3)[:, 2] != plan.sd_base[plan.up_head]).any():
        bad("uph down-table column")
    if leaves.size and ((pod[leaves] < 0).any() or (rank[leaves] < 0).any()
                        or (rank[leaves] >= plan.pod_nlf[pod[leaves]]).any()):
        bad("leaf ranks")
    if spines.size:
        rows = np.bincount(src[plan.sd_lnk], minlength=n)[spines] if plan.sd_lnk.size else np.zeros(spines.size, np.int64)
        ps = pod[spines]
        if (ps < 0).any() or (plan.sd_base[spines] < 0).any() or (rows != plan.pod_nlf[ps] * plan.pod_b1[ps]).any():
            bad("spine down tables")
        if (plan.sd_base[spines] + rows > plan.sd_lnk.size).any():
            bad("spine down tables past sd_lnk")
    if supers.size:
        base = plan.xd_base[supers]
        pods_of = np.zeros(n, np.int64)          # pods per plane (planes are labelled by a pod id)
        np.add.at(pods_of, np.unique(np.stack([comp[leaves], pod[leaves]], 1), axis=0)[:, 0], 1)
        if (base < 0).any() or (base + pods_of[comp[supers]] > plan.xd_start.size).any():
            bad("super-spine rows of pod slots")
        xh = plan.xd_head
        if (tier[xh] != 2).any() or (comp[xh] != comp[src[plan.xd_lnk]]).any():
            bad("super-spine down links")
    T = plan.ept.reshape(-1, 8).astype(np.int64)
    lv = T[:, 1]
    if ((tier[lv] != 1).any() or (T[:, 4] != pod[lv]).any() or (T[:, 5] != rank[lv]).any()
            or (T[:, 6] != plan.leaf_idx[lv]).any() or (T[:, 7] != plan.pod_slot[pod[lv]]).any()
            or (T[:, 3] != comp[lv]).any() or (src[T[:, 2]] >= fabric.n_endpoints).any()
            or (fabric.link_dst[T[:, 2]] != lv).any()
            or (supers.size and (T[:, 7] >= pods_of[T[:, 3]]).any())):
        bad("endpoint table")


def _spray_tables(fabric, plan: ClosPlan) -> dict:
    """The parts of spread_spray that depend on the fabric only (cached on the plan)."""
    T = plan.cache.get("spray")
    if T is not None:
        return T
    n = fabric.n_nodes
    tier = fabric.node_tier
    link_src = fabric.link_src
    pod, slot, comp = plan.pod, plan.pod_slot, plan.comp
    NS, npods = plan.n_slots, plan.n_pods
    leaves = np.flatnonzero(plan.leaf_idx >= 0)
    up_src = link_src[plan.up_lnk]
    up_cnt = np.diff(plan.up_ptr)
    nsp = plan.pod_nsp.astype(np.float64)
    T = {}
    lf = tier[up_src] == 1
    own = up_src[lf]
    T["lu"] = (plan.up_lnk[lf], plan.leaf_idx[own], up_cnt[own].astype(np.float64))
    if plan.sd_lnk.size:
        leaf_pod = pod[leaves]
        perm = np.argsort(leaf_pod, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(leaf_pod, minlength=npods))[:-1]])
        T["pods"] = (perm, bounds, np.bincount(leaf_pod, minlength=npods) > 0)
        pod_comp = np.full(npods, -1, np.int64)
        pod_comp[leaf_pod] = comp[leaves]
        comps, cidx = np.unique(pod_comp, return_inverse=True)
        pod_at = np.full((comps.size, NS), -1, np.int64)
        pod_at[cidx, slot] = np.arange(npods)
        src_pod = pod_at[cidx]                       # [Q, p] -> the source pod in slot p of Q's plane
        ok = src_pod >= 0
        T["cross"] = (src_pod[ok], ok)
        sp = tier[up_src] == 2
        s_own = up_src[sp]
        T["su"] = (plan.up_lnk[sp], pod[s_own], nsp[pod[s_own]] * up_cnt[s_own])
        spines = np.flatnonzero(tier == 2)
        srow = np.full(n, -1, np.int64)
        srow[spines] = np.arange(spines.size)
        F = np.zeros((spines.size, NS))
        if plan.xd_lnk.size:
            # W[X, p]: share of source slot p's cross-pod mass that passes super X
            supers = np.flatnonzero(plan.xd_base >= 0)
            xrow = np.full(n, -1, np.int64)
            xrow[supers] = np.arange(supers.size)
            xc = np.searchsorted(comps, comp[supers])
            W = np.zeros((supers.size, NS))
            rows = plan.xd_base[supers]
            for p in range(NS):
                has = pod_at[xc, p] >= 0
                k = rows[has] + p
                c = plan.xd_cnt[k]
                s = plan.xd_head[plan.xd_start[k]]
                W[np.flatnonzero(has), p] = np.where(c > 0, c / (nsp[pod_at[xc[has], p]] * up_cnt[s]), 0.0)
            groups = [(np.flatnonzero(xc == ci), pod_at[ci]) for ci in range(comps.size)]
            xl = plan.xd_lnk
            x_of = link_src[xl]
            q_of = slot[pod[plan.xd_head]]
            T["x"] = (W, groups, xl, xrow[x_of], q_of, plan.xd_cnt[plan.xd_base[x_of] + q_of].astype(np.float64))
            T["x_by_pod"] = _by_row(pod[plan.xd_head], npods)   # super -> spine links by the spine's pod
            # F[s, p]: share of source slot p's mass for a leaf of s's pod that passes spine s
            pairs = np.unique(s_own * n + plan.up_head[sp])
            np.add.at(F, srow[pairs // n], W[xrow[pairs % n]])
        # spine -> leaf links, pod by pod: rows of F, the pod's leaves, and the table entries
        per_pod = []
        pod_entry = np.full(npods, -1, np.int64)
        for Q in range(npods):
            Sq = spines[pod[spines] == Q]
            Dq = leaves[leaf_pod == Q]
            if Sq.size == 0 or Dq.size == 0:
                continue
            bq = int(plan.pod_b1[Q])
            idx = plan.sd_lnk[plan.sd_base[Sq][:, None] + np.arange(Dq.size * bq)[None, :]]
            per_pod.append((F[srow[Sq]], plan.leaf_idx[Dq], nsp[Q], bq, idx))
            pod_entry[Q] = len(per_pod) - 1
        T["down"] = per_pod
        T["pod_entry"] = pod_entry
        T["leaf_pod"] = leaf_pod
        T["pod_leaves"] = np.bincount(leaf_pod, minlength=npods)
        T["cross2"] = (src_pod, ok, cidx)
        T["su_by_pod"] = _by_row(T["su"][1], npods)
        T["down_by_leaf"] = _down_by_leaf(per_pod, plan.n_leaves)
    T["lu_by_leaf"] = _by_row(T["lu"][1], plan.n_leaves)
    plan.cache["spray"] = T
    return T


def _by_row(row: np.ndarray, n: int) -> tuple:
    """(ptr, entries): the positions of ``row``'s entries grouped by their value (0..n-1),
    each group in position order; group r is entries[ptr[r]:ptr[r + 1]]."""
    order = np.argsort(row, kind="stable")
    return np.searchsorted(row[order], np.arange(n + 1)), order


def _take_rows(by_row: tuple, rows: np.ndarray) -> np.ndarray:
    """The entries of the groups ``rows`` of :func:`_by_row`, group by group."""
    ptr, entries = by_row
    return entries[_positions(ptr, rows)]


def _positions(ptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions ptr[r] .. ptr[r + 1] - 1 of every row r of ``rows``, row by row."""
    lo = ptr[rows]
    cnt = ptr[rows + 1] - lo
    first = np.repeat(lo - np.concatenate(([0], np.cumsum(cnt)[:-1])), cnt)
    return first + np.arange(int(cnt.sum()), dtype=np.int64)


def _down_by_leaf(per_pod: list, n_leaves: int) -> tuple:
    """Per leaf index: the spine -> leaf links of its pod's down table (every spine, its b1
    links each) as (ptr, links), and per leaf its pod's spine count and bundle size."""
    parts, leaf_of, nq_of, bq_of = [], [], np.zeros(n_leaves), np.ones(n_leaves, np.int64)
    for _, lq, nq, bq, idx in per_pod:
        S = idx.shape[0]
        parts.append(idx.reshape(S, lq.size, bq).transpose(1, 0, 2).reshape(-1))
        leaf_of.append(np.repeat(lq, S * bq))
        nq_of[lq] = nq
        bq_of[lq] = bq
    links = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    leaf = np.concatenate(leaf_of) if leaf_of else np.zeros(0, np.int64)
    ptr, order = _by_row(leaf, n_leaves)
    return ptr, links[order], nq_of, bq_of


def spread_spray(fabric, plan: ClosPlan, agg: np.ndarray, load: np.ndarray) -> None:
    """Add to ``load`` the switch-link loads of the aggregated uec-spray masses ``agg``.

    Per-hop equal split over the next-hop links, as route_fluid's spray mode: a leaf splits
    what it sends up evenly over its uplinks, so every spine of its pod gets the same share;
    a spine splits its cross-pod mass evenly over its uplinks; a super-spine sends what it
    holds for pod Q down its links to Q's spine; a spine splits what it holds for leaf D over
    its links to D. The mass a super-spine holds for Q, and a spine for D, depends on the
    source pod, hence the (source pod slot, destination leaf) matrix. The products are
    small; einsum keeps them off the BLAS thread pool, whose idle threads would spin on
    the other core.

    Only the masses that are not zero are spread (a call often carries the jobs of a few
    leaves on a fabric of thousands), and each link gets the same value, by the same
    operations, as from the whole matrices: a leaf's uplinks and a pod's leaf -> spine ->
    leaf links from that leaf's or pod's own masses; the cross-pod part (the (slot, pod)
    sums, the super-spines' products, the down links of a pod that receives cross-pod mass)
    as whole rows and pods, computed as before, for the pods that receive it and the planes
    they are in. A link whose share is zero is left as it is (adding +0.0 changes no load).
    """
    NL, NS = plan.n_leaves, plan.n_slots
    if NL == 0:
        return
    nz = np.flatnonzero(agg != 0)   # nonzero of a boolean array is several times faster than of floats
    if nz.size == 0:
        return
    T = _spray_tables(fabric, plan)
    upm, inpod = agg[:NL], agg[NL:2 * NL]
    pd = agg[2 * NL:].reshape(NS, NL)
    idx, li, div = T["lu"]
    e = _take_rows(T["lu_by_leaf"], nz[nz < NL])
    load[idx[e]] += upm[li[e]] / div[e]
    if "pods" not in T:
        return
    leaf_pod, pod_entry = T["leaf_pod"], T["pod_entry"]
    recv = np.unique(leaf_pod[nz[nz >= 2 * NL] % NL])       # pods that receive cross-pod mass
    if recv.size:
        perm, bounds, _ = T["pods"]
        cnt = T["pod_leaves"][recv]
        cols = perm[_positions(np.append(bounds, perm.size), recv)]
        M = np.zeros((NS, plan.n_pods))                          # [slot p, pod Q]
        M[:, recv] = np.add.reduceat(pd[:, cols], np.concatenate(([0], np.cumsum(cnt)[:-1])), axis=1)
        src_pod, ok, pod_group = T["cross2"]
        crossout = np.bincount(src_pod[recv][ok[recv]], weights=M.T[recv][ok[recv]], minlength=plan.n_pods)
        sidx, sp_pod, sdiv = T["su"]
        e = _take_rows(T["su_by_pod"], np.flatnonzero(crossout))
        load[sidx[e]] += crossout[sp_pod[e]] / sdiv[e]
        if "x" in T:
            W, groups, xl, xr, q_of, xdiv = T["x"]
            held = np.zeros((W.shape[0], NS))
            for ci in np.unique(pod_group[recv]).tolist():
                xs, pods_c = groups[ci]
                have = pods_c >= 0
                Mc = np.zeros((NS, NS))
                Mc[:, have] = M[:, pods_c[have]]
                held[xs] = np.einsum("ij,jk->ik", W[xs], Mc)
            # only the links down to the receiving pods carry any: the other pods' columns are zero
            e = _take_rows(T["x_by_pod"], recv)
            v = held[xr[e], q_of[e]]
            e, v = e[v != 0], v[v != 0]
            load[xl[e]] += v / xdiv[e]
        for k in pod_entry[recv].tolist():
            if k < 0:
                continue
            Fq, lq, nq, bq, idx = T["down"][k]
            down = inpod[lq][None, :] / nq + np.einsum("ij,jk->ik", Fq, pd[:, lq])
            load[idx] += np.repeat(down / bq, bq, axis=1)
    # the down links of the pods that receive no cross-pod mass: each leaf's own in-pod mass
    d = nz[(nz >= NL) & (nz < 2 * NL)] - NL
    if recv.size:
        d = d[~np.isin(leaf_pod[d], recv)]
    ptr, links, nq_of, bq_of = T["down_by_leaf"]
    d = d[ptr[d + 1] > ptr[d]]
    if d.size:
        load[links[_positions(ptr, d)]] += np.repeat(inpod[d] / nq_of[d] / bq_of[d], ptr[d + 1] - ptr[d])


def spread_pairs(fabric, plan: ClosPlan, pair_ptr, pair_cnt, pool, pms, alive, LP: int, loads) -> None:
    """Add to each of ``loads`` the uec-spray loads of the masses in ``pms`` (one array per
    weight, same leaf pairs) of leaf pairs inside a pod that lost links: split evenly over the
    pair's next hops at the leaf (its list in ``pool``), then at each spine evenly over its
    alive links to the destination leaf. The paths are worked out once for all weights."""
    sel = np.flatnonzero(np.any([pm > 0 for pm in pms], axis=0))
    if sel.size == 0:
        return
    cnt = pair_cnt[sel]
    first = np.repeat(pair_ptr[sel] - np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt)
    links = pool[first + np.arange(int(cnt.sum()))]
    leaves = np.flatnonzero(plan.leaf_idx >= 0)
    A = np.repeat(leaves[sel // LP], cnt)
    b1 = plan.pod_b1[plan.pod[A]]
    rk = np.repeat(sel % LP, cnt) * b1
    s = fabric.link_dst[links]
    bmax = int(b1.max())
    ent = plan.sd_base[s][:, None] + rk[:, None] + np.arange(bmax)[None, :]
    ok = np.arange(bmax)[None, :] < b1[:, None]
    lk = plan.sd_lnk[np.where(ok, ent, 0)]
    ok &= alive[lk].astype(bool)
    n_ok = ok.sum(axis=1)
    down = lk[ok]
    row = np.broadcast_to(np.arange(ok.shape[0])[:, None], ok.shape)[ok]
    for pm, load in zip(pms, loads):
        share = np.repeat(pm[sel] / cnt, cnt)
        L = load.shape[0]
        load += np.bincount(links, weights=share, minlength=L)
        load += np.bincount(down, weights=(share / n_ok)[row], minlength=L)
