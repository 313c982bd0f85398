"""What a custom graph is made of: planes, tiers, pods, oversubscription, bisection.

For ``family: custom`` (GraphML or an edge list) nothing is declared: every
figure ``describe`` prints is inferred here from the fabric arrays, and each
comes with a ``method`` saying how it was obtained. Where a figure cannot be
determined the answer says so and why; it is never a default.

Definitions (tiers are hop distances from the endpoints, as
:func:`topo.model.graphio.read_custom` assigns them: leaf = 1):

* plane: a connected component of the switch graph (endpoints removed). An
  endpoint with ports into several components makes them planes of one fabric.
* pod: in a plane of three or more tiers, a connected component of the plane's
  switches below its top tier (leaves with their spines). A plane of one or
  two tiers is one pod.
* oversubscription of a switch: the capacity of its links down (to a lower
  tier) over the capacity of its links up (Gb/s, not ports); per tier the
  minimum and maximum over the switches that have uplinks.
* bisection (one direction): the maximum flow (= minimum cut) between the first
  and the second half of the endpoints ordered by pod, leaf and endpoint id.
  Exact for that split; the minimum over all balanced splits (NP-hard in
  general) can only be lower. Graphs with more than ``MAX_FLOW_LINKS`` links are
  not solved; a uniform layered graph then gets the Clos formula instead.
* all-to-all bound per endpoint: uniform all-to-all at rate r per endpoint
  sends ``r * n * (N - n) / (N - 1)`` out of a set of n of the N endpoints, so
  every cut bounds r. The cuts used are the blocks below each tier (each
  endpoint; the endpoints with their leaves; each pod): for a layered graph
  (no link inside a tier) these are the tree's bottlenecks.

Everything is numpy / scipy on the arrays (no Python object per link), except
the networkx fallback for fractional capacities on small graphs.
"""
from __future__ import annotations


import numpy as np

from topo.model.fabric import TIER_NAMES

MAX_FLOW_LINKS = 200_000   # physical links above which the exact max flow is not attempted
_NX_FLOW_LINKS = 20_000    # networkx fallback (fractional capacities) only below this
_INT32 = 2 ** 31 - 1       # scipy's maximum_flow works in 32-bit integers


def _tier_name(t: int) -> str:
    return TIER_NAMES[t] if t < len(TIER_NAMES) else f"tier{t}"


def _components(n: int, a: np.ndarray, b: np.ndarray, keep: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of the nodes where ``keep`` over the links (a, b) with both ends kept.

    Returns (count, label per node, -1 where not kept); labels follow the lowest node id.
    """
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components
    ids = np.flatnonzero(keep)
    if ids.size == 0:
        return 0, np.full(n, -1, np.int64)
    pos = np.full(n, -1, np.int64)
    pos[ids] = np.arange(ids.size)
    m = keep[a] & keep[b]
    g = coo_array((np.ones(int(m.sum()), np.int8), (pos[a[m]], pos[b[m]])), shape=(ids.size, ids.size))
    k, lab = connected_components(g, directed=False)
    # relabel by the lowest node id in each component (ids are sorted)
    first = np.full(k, ids.size, np.int64)
    np.minimum.at(first, lab, np.arange(ids.size))
    order = np.argsort(first, kind="stable")
    rank = np.empty(k, np.int64)
    rank[order] = np.arange(k)
    out = np.full(n, -1, np.int64)
    out[ids] = rank[lab]
    return int(k), out


def _span(x: np.ndarray) -> list:
    return [int(x.min()), int(x.max())] if x.size else []


class _Graph:
    """The fabric's arrays as the inference reads them: one row per physical link (a, b, capacity),
    node tiers, and what the steps below add (planes, capacities up and down, pods, home leaves)."""

    def __init__(self, fabric):
        self.E = int(fabric.n_endpoints)
        self.n = int(fabric.n_nodes)
        self.tier = np.asarray(fabric.node_tier, np.int64)
        self.a = np.asarray(fabric.link_src[0::2], np.int64)
        self.b = np.asarray(fabric.link_dst[0::2], np.int64)
        self.cap = np.asarray(fabric.link_gbps[0::2], np.float64)
        self.loop = self.a == self.b
        self.is_sw = np.arange(self.n) >= self.E
        self.T = int(self.tier[self.E:].max()) if self.n > self.E else 0


def infer(fabric, max_flow_links: int = MAX_FLOW_LINKS) -> dict:
    """Planes, tiers, pods, oversubscription, bisection and the all-to-all bound of a graph.

    Works for any Fabric (it reads only the arrays); meant for ``family: custom``.
    JSON-able; every figure comes with a ``method`` (and a ``reason`` when it
    is not determined).
    """
    g = _Graph(fabric)
    planes = _planes(g)
    tier_info = _tiers(g)
    _capacities(g)
    osub = _oversubscription(g)
    pods = _pods(g)
    _home_leaves(g)
    levels, a2a_vals = _levels(g)
    # uniform: every block below each tier has the same endpoints and the same capacity up
    uniform = g.layered and g.E > 0 and all(lv["uniform"] for lv in levels)
    a2a = _all_to_all(g, levels, a2a_vals)
    bis = _bisection(g, levels, uniform, max_flow_links)
    return {"planes": planes, "tiers": tier_info, "pods": pods, "oversubscription": osub,
            "layered": g.layered, "same_tier_links": g.same_tier_links, "uniform": bool(uniform),
            "bisection": bis, "all_to_all": a2a}


def _planes(g: _Graph) -> dict:
    """Planes: connected components of the switch graph; sets ``g.n_planes``, ``g.plane`` and the
    endpoint-switch link ends ``g.ep_end``, ``g.sw_end``."""
    E, n, a, b, is_sw = g.E, g.n, g.a, g.b, g.is_sw
    n_planes, plane = _components(n, a, b, is_sw)
    ep_sw = (~is_sw[a] & is_sw[b]) | (is_sw[a] & ~is_sw[b])
    ep_end = np.where(is_sw[a], b, a)[ep_sw]
    sw_end = np.where(is_sw[a], a, b)[ep_sw]
    g.n_planes, g.plane, g.ep_end, g.sw_end = n_planes, plane, ep_end, sw_end
    pairs = np.unique(ep_end * max(n_planes, 1) + plane[sw_end])   # (endpoint, plane) with a port
    planes_per_ep = np.bincount(pairs // max(n_planes, 1), minlength=E)
    multi = int((planes_per_ep > 1).sum())
    planes = {"count": n_planes,
              "switches_per_plane": np.bincount(plane[E:], minlength=n_planes).tolist() if n > E else [],
              "endpoints_per_plane": np.bincount(pairs % max(n_planes, 1), minlength=n_planes).tolist(),
              "endpoints_in_several_planes": multi,
              "method": "connected components of the switch graph with the endpoints removed"}
    if n_planes > 1 and multi == 0:
        planes["note"] = (f"the switch graph falls into {n_planes} parts and no endpoint has ports in two of them: "
                          "separate fabrics, not planes of one")
    elif n_planes > 1 and int((planes_per_ep == n_planes).sum()) < E:
        planes["note"] = (f"{int((planes_per_ep < n_planes).sum())} of {E} endpoints have no port in some plane")
    return planes


def _tiers(g: _Graph) -> dict:
    """Tiers per plane: switches counted per tier and plane."""
    tiers = []
    for t in range(1, g.T + 1):
        sel = g.tier == t
        tiers.append({"tier": _tier_name(t), "switches": int(sel.sum()),
                      "switches_per_plane": np.bincount(g.plane[sel], minlength=g.n_planes).tolist()})
    return {"count": g.T, "per_tier": tiers,
            "method": "hop distance from the nearest endpoint (leaf = 1); switches counted per plane"}


def _capacities(g: _Graph) -> None:
    """Capacities up / down / within a tier, per node: sets ``g.up``, ``g.down``, ``g.same_tier_links``
    and ``g.layered`` (no link inside a tier)."""
    a, b, cap, n = g.a, g.b, g.cap, g.n
    ta, tb = g.tier[a], g.tier[b]
    g.down = (np.bincount(a, weights=np.where(ta > tb, cap, 0.0), minlength=n)
              + np.bincount(b, weights=np.where(tb > ta, cap, 0.0), minlength=n))
    g.up = (np.bincount(a, weights=np.where(ta < tb, cap, 0.0), minlength=n)
            + np.bincount(b, weights=np.where(tb < ta, cap, 0.0), minlength=n))
    same = (ta == tb) & ~g.loop
    g.same_tier_links = int(same.sum())
    g.layered = g.same_tier_links == 0


def _oversubscription(g: _Graph) -> list:
    """Oversubscription per tier: capacity down over capacity up, per switch with uplinks."""
    down, up, T = g.down, g.up, g.T
    osub = []
    for t in range(1, T + 1):
        sel = np.flatnonzero(g.tier == t)
        has_up = up[sel] > 0
        rec = {"tier": _tier_name(t), "method": "capacity: Gb/s of links down / Gb/s of links up, per switch",
               "down_gbps": float(down[sel].sum()), "up_gbps": float(up[sel].sum())}
        if not has_up.any():
            rec.update(status="not applicable", ratio=None, min=None, max=None,
                       note="top tier: no links up" if t == T else "no switch of this tier has a link up")
        else:
            r = down[sel][has_up] / up[sel][has_up]
            lo_r, hi_r = float(r.min()), float(r.max())
            same_ratio = hi_r - lo_r <= 1e-9 * max(hi_r, 1e-300)
            rec.update(status="uniform" if same_ratio else "varies", ratio=round(lo_r, 4) if same_ratio else None,
                       min=round(lo_r, 4), max=round(hi_r, 4),
                       aggregate=round(float(down[sel][has_up].sum() / up[sel][has_up].sum()), 4))
            if not same_ratio:
                rec["note"] = f"varies from {lo_r:.4g}:1 to {hi_r:.4g}:1 over {int(has_up.sum())} switches"
            if not has_up.all():
                rec["switches_without_uplinks"] = int((~has_up).sum())
        osub.append(rec)
    return osub


def _pods(g: _Graph) -> dict:
    """Pods: components of each plane's switches below its top tier; sets ``g.pod`` (-1 for endpoints)."""
    E, n, tier, plane, is_sw, n_planes = g.E, g.n, g.tier, g.plane, g.is_sw, g.n_planes
    top_of_plane = np.zeros(max(n_planes, 1), np.int64)
    if n > E:
        np.maximum.at(top_of_plane, plane[E:], tier[E:])
    node_top = np.where(is_sw, top_of_plane[np.maximum(plane, 0)], 0)
    below_top = is_sw & (tier < node_top) & (node_top >= 3)
    _, sub = _components(n, g.a, g.b, below_top)
    # planes of one or two tiers: the plane is one pod (label after the sub-plane pods)
    pod = sub.copy()
    nsub = int(sub.max()) + 1 if (sub >= 0).any() else 0
    shallow = is_sw & (node_top < 3)
    pod[shallow] = nsub + plane[shallow]
    _, pod_rank = np.unique(np.where(pod >= 0, pod, np.iinfo(np.int64).max), return_inverse=True)
    pod = np.where(pod >= 0, pod_rank, -1)
    g.pod = pod
    n_pods = int(pod.max()) + 1 if (pod >= 0).any() else 0
    pods_per_plane = np.zeros(max(n_planes, 1), np.int64)
    if n_pods:
        first_plane = np.full(n_pods, -1, np.int64)
        first_plane[pod[pod >= 0]] = plane[pod >= 0]
        pods_per_plane = np.bincount(first_plane, minlength=n_planes)
    leaves_per_pod = np.bincount(pod[(tier == 1) & (pod >= 0)], minlength=n_pods)
    return {"count": n_pods, "per_plane": pods_per_plane[:n_planes].tolist(),
            "leaves_per_pod": _span(leaves_per_pod), "switches_per_pod": _span(np.bincount(pod[pod >= 0], minlength=n_pods)),
            "method": ("components of each plane's switches below its top tier (leaves with their spines); "
                       "a plane of one or two tiers is one pod")}


def _home_leaves(g: _Graph) -> None:
    """Endpoints: injection (``g.inj``), home leaf (``g.home``, n where none), its pod (``g.home_pod``)
    and the order by pod, leaf and endpoint id (``g.order``)."""
    E, n, a, b, cap, loop = g.E, g.n, g.a, g.b, g.cap, g.loop
    g.inj = (np.bincount(a, weights=np.where(loop, 0.0, cap), minlength=n)
             + np.bincount(b, weights=np.where(loop, 0.0, cap), minlength=n))[:E]
    home = np.full(E, n, np.int64)
    if g.ep_end.size:
        key = g.plane[g.sw_end] * n + g.sw_end          # lowest plane first, then lowest switch id
        best = np.full(E, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(best, g.ep_end, key)
        ok = best < np.iinfo(np.int64).max
        home[ok] = best[ok] % n
    g.home = home
    g.home_pod = np.where(home < n, g.pod[np.minimum(home, n - 1)], n)
    g.order = np.lexsort((np.arange(E), home, g.home_pod))


def _levels(g: _Graph) -> tuple[list, list]:
    """The blocks below each tier and the all-to-all bound each gives: (levels, bounds)."""
    E, n, a, b, cap = g.E, g.n, g.a, g.b, g.cap
    levels = []
    a2a_vals = []
    for t in range(0, g.T):
        keep = g.tier <= t
        k, blk = _components(n, a, b, keep)
        if k == 0:
            continue
        cross = keep[a] != keep[b]
        inner = np.where(keep[a], a, b)[cross]
        U = np.bincount(blk[inner], weights=cap[cross], minlength=k)
        ne = np.bincount(blk[:E], minlength=k)
        ok = (ne > 0) & (ne < E)
        has = ne > 0
        rec = {"below": _tier_name(t + 1), "blocks": k, "endpoints_per_block": _span(ne[has]),
               "up_gbps": float(U.sum()),
               "uniform": bool(np.ptp(ne[has]) == 0 and np.ptp(U[has]) <= 1e-9 * max(float(U.max()), 1.0))}
        if ok.any():
            bound = U[ok] * (E - 1) / (ne[ok] * (E - ne[ok]))
            rec["bound_gbps_per_endpoint"] = float(bound.min())
            a2a_vals.append(float(bound.min()))
        levels.append(rec)
    return levels, a2a_vals


def _all_to_all(g: _Graph, levels: list, a2a_vals: list) -> dict:
    """The all-to-all bound per endpoint from the cuts below each tier, or why it is not determined."""
    a2a_method = ("upper bound from the cuts below each tier (each endpoint, each block of leaves with their "
                  "endpoints, each pod): min over blocks of capacity up x (N-1) / (n x (N-n)), n endpoints "
                  "in the block of N")
    if g.E < 2:
        a2a = {"gbps_per_endpoint": None, "status": "not determined", "reason": "fewer than two endpoints",
               "method": a2a_method}
    elif not a2a_vals:
        a2a = {"gbps_per_endpoint": None, "status": "not determined",
               "reason": "no cut below a tier separates the endpoints", "method": a2a_method}
    elif not g.layered:
        a2a = {"gbps_per_endpoint": None, "status": "not determined",
               "reason": (f"{g.same_tier_links} link(s) join nodes of the same tier, so the blocks below each tier "
                          "need not be the bottleneck"),
               "cut_upper_bound_gbps": min(a2a_vals), "method": a2a_method}
    else:
        a2a = {"gbps_per_endpoint": min(a2a_vals), "status": "bound", "method": a2a_method}
    a2a["levels"] = levels
    return a2a


def _bisection(g: _Graph, levels: list, uniform: bool, max_flow_links: int) -> dict:
    """Bisection: exact max flow between the halves in pod-and-leaf order, or the Clos formula for a
    uniform layered graph too large for max flow, or why it is not determined."""
    E, n = g.E, g.n
    n_phys = int(g.a.size)
    bis = {"gbps": None}
    formula = None
    if g.layered and uniform:
        cands = [float(g.inj.sum()) / 2]
        for lv in levels[1:]:  # blocks of leaves, pods, ...: half of the capacity up when there are several
            if lv["blocks"] > 1:
                cands.append(lv["up_gbps"] / 2)
        formula = float(min(cands))
        bis["clos_formula_gbps"] = formula
        bis["clos_formula_method"] = ("Clos formula from tier capacities (uniform layered graph): min of half the "
                                      "injection and half the capacity up from each tier that has several blocks")
    if E < 2:
        bis.update(status="not determined", reason="fewer than two endpoints", method=None)
    elif n_phys > max_flow_links:
        if formula is not None:
            bis.update(gbps=formula, status="structural", method=bis["clos_formula_method"],
                       note=f"{n_phys:,} links: more than {max_flow_links:,}, exact max flow not attempted")
        else:
            bis.update(status="not determined", method=None,
                       reason=(f"not computed: graph too large for exact max flow ({n_phys:,} links > "
                               f"{max_flow_links:,}) and not a uniform layered graph"))
    else:
        half = E // 2
        A, B = g.order[:half], g.order[half:]
        val, how = _max_flow(n, g.a, g.b, g.cap, g.loop, g.inj, A, B)
        if val is None:
            bis.update(status="not determined", method=None, reason=how)
        else:
            home, home_pod = g.home, g.home_pod
            hA, hB = home[A], home[B]
            bis.update(gbps=val, status="exact for this split",
                       method=(f"max flow ({how}) between the first and second half of the endpoints ordered by "
                               "pod and leaf: the exact minimum cut between these halves; the minimum over all "
                               "balanced splits can only be lower"),
                       split={"first": int(A.size), "second": int(B.size),
                              "splits_a_leaf": bool(np.intersect1d(hA[hA < n], hB[hB < n]).size),
                              "splits_a_pod": bool(np.intersect1d(home_pod[A], home_pod[B]).size)})
    return bis


def _max_flow(n, a, b, cap, loop, inj, A, B):
    """Max flow from endpoints A to endpoints B over undirected links; (value in Gb/s, how) or (None, reason)."""
    m = ~loop
    a, b, cap = a[m], b[m], cap[m]
    src, snk = n, n + 1
    # integral units: capacities x 10^k are whole numbers, then divided by their gcd
    scaled = None
    for k in range(0, 7):
        x = cap * 10.0 ** k
        r = np.round(x)
        if np.all(np.abs(x - r) <= 1e-9 * np.maximum(x, 1.0)) and r.max(initial=0) < 2 ** 53:
            ints = r.astype(np.int64)
            g = int(np.gcd.reduce(ints)) if ints.size else 1
            scaled = (ints // max(g, 1), g / 10.0 ** k)
            break
    if scaled is not None:
        ints, unit = scaled
        ia = np.round(inj / unit).astype(np.int64)
        rows = np.concatenate([a, b, np.full(A.size, src), B])
        cols = np.concatenate([b, a, A, np.full(B.size, snk)])
        w = np.concatenate([ints, ints, ia[A], ia[B]])
        if int(w.sum()) <= _INT32:
            from scipy.sparse import csr_array
            from scipy.sparse.csgraph import maximum_flow
            keep = w > 0
            g = csr_array((w[keep].astype(np.int32), (rows[keep].astype(np.int32), cols[keep].astype(np.int32))),
                          shape=(n + 2, n + 2))
            g.sum_duplicates()
            # scipy before 1.15 takes 32-bit index arrays only
            g.indices, g.indptr = g.indices.astype(np.int32), g.indptr.astype(np.int32)
            if int(g.data.max(initial=0)) <= _INT32:
                return float(maximum_flow(g, src, snk).flow_value) * unit, "scipy, integral capacities"
    if a.size > _NX_FLOW_LINKS:
        return None, (f"not computed: capacities not representable as 32-bit integers and the graph is too "
                      f"large ({a.size:,} links > {_NX_FLOW_LINKS:,}) for the networkx fallback")
    import networkx as nx
    g = nx.DiGraph()
    for u, v, c in zip(a.tolist(), b.tolist(), cap.tolist()):
        for x, y in ((u, v), (v, u)):
            if g.has_edge(x, y):
                g[x][y]["capacity"] += c
            else:
                g.add_edge(x, y, capacity=c)
    for e in A.tolist():
        g.add_edge(src, e)       # no capacity attribute: unbounded
    for e in B.tolist():
        g.add_edge(e, snk)
    return float(nx.maximum_flow_value(g, src, snk)), "networkx, fractional capacities"


def describe_fields(fabric, tiers: list) -> dict:
    """The ``describe`` keys for a custom graph: planes, pods, per-tier figures, bisection, and ``inferred``.

    ``tiers`` are describe's tier records (tier, switches, model, uplinks); they
    are returned with the inferred oversubscription (``None`` when it varies or
    does not apply: the reason is in ``oversubscription_note``).
    """
    info = infer(fabric)
    out_tiers = []
    for rec, o, ti in zip(tiers, info["oversubscription"], info["tiers"]["per_tier"]):
        r = dict(rec)
        r["oversubscription"] = o["ratio"]
        r["oversubscription_min"], r["oversubscription_max"] = o["min"], o["max"]
        r["oversubscription_note"] = o.get("note", o["status"])
        r["switches_per_plane"] = ti["switches_per_plane"]
        out_tiers.append(r)
    n_acc = int(np.asarray(fabric.ep_is_accel).sum())
    bis = info["bisection"]["gbps"]
    pp = info["pods"]["per_plane"]
    return {"planes": info["planes"]["count"],
            "pods": pp[0] if pp and all(p == pp[0] for p in pp) else info["pods"]["count"],
            "tiers": out_tiers,
            "bisection_gbps": bis,
            "bisection_per_accelerator_gbps": (bis * 2 / max(n_acc, 1)) if bis is not None else None,
            "bisection_method": info["bisection"].get("method") or info["bisection"].get("reason"),
            "all_to_all_bound_gbps_per_endpoint": info["all_to_all"]["gbps_per_endpoint"],
            "inferred": info}


def text_lines(info: dict) -> list[str]:
    """Human lines for an ``infer`` result (what ``describe`` prints for a custom graph)."""
    pl, po, b, a2a = info["planes"], info["pods"], info["bisection"], info["all_to_all"]
    out = [f"inferred from the graph: {pl['count']} plane(s) ({pl['method']})"]
    if pl.get("note"):
        out.append(f"  note: {pl['note']}")
    out.append(f"  pods: {po['count']} ({', '.join(map(str, po['per_plane']))} per plane; {po['method']})")
    for t, o in zip(info["tiers"]["per_tier"], info["oversubscription"]):
        ratio = (f"{o['ratio']:g}:1" if o["status"] == "uniform" else
                 f"varies {o['min']:g}:1 to {o['max']:g}:1" if o["status"] == "varies" else
                 f"n/a ({o.get('note', o['status'])})")
        out.append(f"  {t['tier']}: {t['switches']} switch(es) ({'/'.join(map(str, t['switches_per_plane']))} per "
                   f"plane), oversubscription {ratio}")
    if b["gbps"] is not None:
        out.append(f"  bisection: {b['gbps']:,.1f} Gb/s ({b['method']})")
    else:
        out.append(f"  bisection: not determined: {b.get('reason')}")
    if a2a["gbps_per_endpoint"] is not None:
        out.append(f"  all-to-all bound: {a2a['gbps_per_endpoint']:,.1f} Gb/s per endpoint ({a2a['method']})")
    else:
        out.append(f"  all-to-all bound: not determined: {a2a.get('reason')}")
    return out
