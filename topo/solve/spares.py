"""Hot-spare nodes chosen with CP-SAT, and their independent check.

Owns the choice of spare nodes: in every failure domain (rack, leaf set, pod) that
holds a placed job, idle nodes of each node type the jobs there use, held back so
that a node failure is restored inside the same domain; fewest accelerators held
back; every rack within its power limit with all its spares running busy. The
choice is re-checked by :func:`check_spares`, which reads only the fabric arrays
and the chosen nodes. Placement (:func:`topo.solve.placement.place`, its
``reserved`` input) and goodput (:mod:`topo.study.goodput`) use it; it does not
place jobs or print.

A server's domain: its rack; for ``leaf``, the set of leaves its endpoints' links
reach (a rail-optimized node reaches one leaf per rail, so its domain is that
rail group); for ``pod``, the set of pods of those leaves.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from topo.core.errors import SolverError, SpecError
from topo.core.mix import mix64
from topo.model.fabric import Fabric

SPARE_SCOPES = ("rack", "leaf", "pod")


def _dense(x: np.ndarray) -> np.ndarray:
    """Dense ids numbered by first appearance (so by server id, never by hash order)."""
    _, first, inv = np.unique(x, return_index=True, return_inverse=True)
    rank = np.empty(first.shape[0], np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.shape[0])
    return rank[inv.reshape(-1)]


def _endpoint_leaves(f: Fabric) -> tuple[np.ndarray, np.ndarray]:
    """(endpoint, leaf) of every endpoint link (tier 0), ordered by endpoint then link."""
    lo, hi = f.link_src[0::2].astype(np.int64), f.link_dst[0::2].astype(np.int64)
    ep = np.flatnonzero(f.link_tier[0::2] == 0)
    e_end = np.where(lo[ep] < f.n_endpoints, lo[ep], hi[ep])
    e_leaf = np.where(lo[ep] < f.n_endpoints, hi[ep], lo[ep])
    order = np.lexsort((ep, e_end))
    return e_end[order], e_leaf[order]


def server_domains(fabric: Fabric, scope: str) -> np.ndarray:
    """Domain code per server: its rack; the set of leaves its endpoints reach; or the pods of those leaves."""
    f = fabric
    if scope == "rack":
        return f.server_rack.astype(np.int64)
    ep_end, ep_leaf = _endpoint_leaves(f)
    leaf_or_pod = ep_leaf if scope == "leaf" else f.node_pod[ep_leaf].astype(np.int64)
    srv = f.ep_server[ep_end]
    if scope == "pod":
        pairs = np.unique(np.stack([srv, leaf_or_pod], 1), axis=0)
        srv, leaf_or_pod = pairs[:, 0], pairs[:, 1]
    h = np.zeros(f.n_servers, np.uint64)
    with np.errstate(over="ignore"):
        np.add.at(h, srv, mix64(leaf_or_pod.astype(np.uint64) + np.uint64(1)))
    return _dense(h)


def _domain_name(f: Fabric, scope: str, dom: np.ndarray, code: int) -> str:
    """A domain's name: its rack, or the leaves (pods) of its first server's endpoints."""
    srv = int(np.flatnonzero(dom == code)[0])
    if scope == "rack":
        return f.rack_name(int(f.server_rack[srv]))
    ep_end, ep_leaf = _endpoint_leaves(f)
    leaves = np.unique(ep_leaf[f.ep_server[ep_end] == srv])
    if scope == "pod":
        return "+".join(f"pod{p}" for p in np.unique(f.node_pod[leaves]).tolist())
    return "+".join(f.node_name(int(x)) for x in leaves.tolist())


def _resolve(cluster, f: Fabric, placement) -> tuple[dict, str]:
    """The placement the spares are chosen around: the given one, else the jobs that fit in file order."""
    if placement is not None:
        return {str(k): np.asarray(v, np.int64) for k, v in placement.items()}, "given placement"
    if cluster is None or not cluster.file.jobs:
        return {}, "no jobs"
    from topo.traffic.demand import fit_in_order
    pl, left = fit_in_order(cluster, f)
    return ({k: np.asarray(v, np.int64) for k, v in pl.items()},
            "in-order placement" + (f" of the jobs that fit; unplaced: {', '.join(left)}" if left else ""))


def choose_spares(cluster, fabric: Optional[Fabric] = None, placement=None, *, scope: str = "leaf",
                  per_domain: int = 1, time_limit=None, seed=None, workers=None) -> dict:
    """Hot-spare nodes chosen with CP-SAT: in every ``scope`` domain (rack, leaf set, pod) holding a
    job, ``per_domain`` idle nodes of each node type the jobs there use, so that any ``per_domain``
    node failures there are restored within the domain; fewest accelerators held back; every rack
    within its power limit with all its spares busy (the running jobs busy, other nodes idle).

    ``placement``: {job: endpoint ids}; None -> the jobs that fit in file order. A domain without
    enough idle nodes that fit its racks' power is short (``short``), never silently met. The
    answer is re-checked independently (:func:`check_spares`) before it is returned; the lower
    bound is each domain's own minimum without the power coupling. ``spare_ids`` are server ids.
    """
    from ortools.sat.python import cp_model

    from topo.model.spec import run_settings
    from topo.solve.cpsat import configure
    from topo.traffic.demand import free_accelerators
    if scope not in SPARE_SCOPES:
        raise SpecError([("scope", f"must be one of {', '.join(SPARE_SCOPES)} (found {scope!r})")])
    if isinstance(per_domain, bool) or not isinstance(per_domain, int) or not 1 <= per_domain <= 64:
        raise SpecError([("per_domain", f"must be an integer from 1 to 64 (found {per_domain!r})")])
    rs = run_settings(cluster, seed, workers, time_limit)
    if fabric is None:
        from topo.model.fabric import build
        fabric = build(cluster)
    f = fabric
    pl, note = _resolve(cluster, f, placement)
    used = np.zeros(f.n_servers, bool)
    for ids in pl.values():
        used[f.ep_server[np.asarray(ids, np.int64)]] = True
    free_ep = free_accelerators(cluster, f)
    has_acc = np.bincount(f.ep_server, weights=f.ep_is_accel, minlength=f.n_servers) > 0
    n_free = np.bincount(f.ep_server, weights=free_ep, minlength=f.n_servers)
    n_acc = np.bincount(f.ep_server, weights=f.ep_is_accel, minlength=f.n_servers).astype(np.int64)
    candidate = has_acc & ~used & (n_free == n_acc)
    dom = server_domains(f, scope)
    stype = f.server_type.astype(np.int64)
    need = sorted({(int(d), int(t)) for d, t in zip(dom[used].tolist(), stype[used].tolist())})
    busy_now = used | (has_acc & (n_free < n_acc))
    rack_kw = np.bincount(f.server_rack, weights=np.where(busy_now, f.server_busy_kw, f.server_idle_kw),
                          minlength=f.n_racks)
    extra = f.server_busy_kw - f.server_idle_kw
    m = cp_model.CpModel()
    cand = np.flatnonzero(candidate)
    by_need = {k: [] for k in need}
    x = {}
    for s in cand.tolist():
        k = (int(dom[s]), int(stype[s]))
        if k in by_need:
            x[s] = m.NewBoolVar(f"x[{s}]")
            by_need[k].append(s)
    short = {}
    for k in need:
        short[k] = m.NewIntVar(0, per_domain, f"short[{k[0]},{k[1]}]")
        # each domain and node type: per_domain spares, or a shortfall
        m.Add(sum(x[s] for s in by_need[k]) + short[k] >= per_domain)
    # each rack: its spares busy at once stay within its limit
    scale = 1000
    for r in sorted({int(f.server_rack[s]) for s in x}):
        members = [s for s in x if int(f.server_rack[s]) == r]
        room = int(math.floor((f.rack_limit_kw[r] - rack_kw[r]) * scale + 1e-6))
        m.Add(sum(int(round(extra[s] * scale)) * x[s] for s in members) <= max(room, 0))
    big = int(n_acc.max() if n_acc.size else 1) * (len(x) + 1)
    m.Minimize(sum(big * v for v in short.values()) + sum(int(n_acc[s]) * v for s, v in x.items()))
    solver = cp_model.CpSolver()
    configure(solver, time_limit=rs.time_limit, seed=rs.seed, workers=rs.workers)
    from topo.core.signals import solve as solve_interruptible
    status = solve_interruptible(solver, m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise SolverError(f"spares: CP-SAT returned {solver.StatusName(status)} within {rs.time_limit:g} s")
    chosen = sorted(s for s, v in x.items() if solver.Value(v))
    out = {"scope": scope, "per_domain": per_domain, "placement": note, "status": solver.StatusName(status),
           "domains": len({k[0] for k in need}), "spares": [f.server_name(s) for s in chosen],
           "spare_ids": [int(s) for s in chosen],
           "spare_nodes": len(chosen), "accelerators_held": int(n_acc[chosen].sum()) if chosen else 0,
           "short": [{"domain": _domain_name(f, scope, dom, k[0]), "node_type": f.server_type_names[k[1]],
                      "missing": int(solver.Value(v))} for k, v in short.items() if solver.Value(v)]}
    chk = check_spares(f, np.asarray(chosen, np.int64), used, candidate, dom, stype, rack_kw, per_domain,
                       [(k, int(solver.Value(v))) for k, v in short.items()])
    if not chk["ok"]:
        raise SolverError("spares: the independent check refused CP-SAT's answer: " + "; ".join(chk["problems"]))
    out["check"] = chk
    return out


def check_spares(fabric: Fabric, chosen: np.ndarray, used: np.ndarray, candidate: np.ndarray, dom: np.ndarray,
                 stype: np.ndarray, rack_kw: np.ndarray, per_domain: int, short: list) -> dict:
    """Independent check of a spare choice, from the fabric arrays alone: every spare is an idle node
    with accelerators; every (domain, node type) with a job has ``per_domain`` spares of that type
    in it or reports its shortfall exactly; every rack stays within its limit with its spares busy.
    Also a lower bound on the accelerators held when no domain is short: per (domain, type),
    min(per_domain, idle candidates there) nodes at the fewest accelerators, racks' power ignored."""
    f = fabric
    problems = []
    if chosen.size and not candidate[chosen].all():
        problems.append("a spare is not an idle node")
    got: dict = {}
    for s in chosen.tolist():
        k = (int(dom[s]), int(stype[s]))
        got[k] = got.get(k, 0) + 1
    for k, miss in short:
        if got.get(k, 0) + miss < per_domain or (miss and got.get(k, 0) + miss > per_domain):
            problems.append(f"domain {k[0]} type {k[1]}: {got.get(k, 0)} spares, {miss} reported missing")
    kw = rack_kw + np.bincount(f.server_rack[chosen], weights=(f.server_busy_kw - f.server_idle_kw)[chosen],
                               minlength=f.n_racks) if chosen.size else rack_kw
    racks = np.unique(f.server_rack[chosen]) if chosen.size else np.zeros(0, np.int64)
    over = [int(r) for r in racks.tolist() if kw[r] > f.rack_limit_kw[r] + 1e-6]
    if over:
        problems.append(f"racks over their limit with spares busy: {over[:5]}")
    n_acc = np.bincount(f.ep_server, weights=f.ep_is_accel, minlength=f.n_servers).astype(np.int64)
    bound = 0
    for k, _ in short:
        cands = np.flatnonzero(candidate & (dom == k[0]) & (stype == k[1]))
        bound += int(np.sort(n_acc[cands])[:per_domain].sum())
    held = int(n_acc[chosen].sum()) if chosen.size else 0
    return {"ok": not problems, "problems": problems, "accelerators_held": held,
            "lower_bound_accelerators": bound}


__all__ = ["SPARE_SCOPES", "choose_spares", "check_spares", "server_domains"]
