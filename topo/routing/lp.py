"""The optimal routing bound: max-concurrent-flow LP with OR-Tools (GLOP).

Owns the LP model only. Commodities are aggregated per destination group
(endpoints with the same alive home switches), exact for
destinations with one home switch (their members are interchangeable behind
it) and a relaxation, hence still an upper bound, for multi-homed ones. Variables are
the flow of each commodity on each alive directed link it may use (endpoints
are never transit nodes); lambda is the largest fraction of every demand that
can be routed at once. Every solution is re-checked by
:mod:`topo.routing.lpcheck` (independent code) before it is returned.

Refused with a SpecError above ``MAX_LINKS`` directed links or
``MAX_VARIABLES`` variables.
"""
from __future__ import annotations

import time

import numpy as np

from topo.core.errors import SolverError, SpecError

MAX_LINKS = 20_000
MAX_VARIABLES = 400_000


def max_concurrent_flow(fabric, demands, *, failed_links=None, efficiency: float = 1.0,
                        time_limit_s: float = 60.0) -> dict:
    """Solve max lambda s.t. lambda x demand is routable; returns a JSON-able dict.

    Keys: lambda (max fraction of all demands routed concurrently), status,
    variables, constraints, seconds, checked (the independent checker's
    verdict), commodities.
    """
    from ortools.linear_solver import pywraplp
    from topo.routing import lpcheck as routing_lpcheck
    from topo.routing.prepared import _pxn, failure_mask, prepare

    dead = failure_mask(fabric, failed_links)
    if fabric.n_links > MAX_LINKS:
        raise SpecError([("routing", f"the optimal LP is limited to {MAX_LINKS:,} directed links; this fabric has {fabric.n_links:,} (use fluid, uec-spray or roce-hash)")])
    P = prepare(fabric, dead)
    src = np.asarray(demands.src, np.int64)
    dst = np.asarray(demands.dst, np.int64)
    mass = np.asarray(demands.rate_gbps, np.float64) / efficiency
    new_src = _pxn(fabric, src, dst, mass)[0] if fabric.family == "rail_only" else src
    dom = fabric.ep_domain
    keep = (src != dst) & ~((dom[new_src] == dom[dst]) & (dom[dst] >= 0))
    keep &= mass > 0
    s, t, m = new_src[keep], dst[keep], mass[keep]
    gs, gt = P.ep_group[s], P.ep_group[t]
    routable = (gs >= 0) & (gt >= 0)
    s, t, m, gt = s[routable], t[routable], m[routable], gt[routable]
    unrouted = float(mass[keep].sum() - m.sum())
    if m.size == 0:
        return {"lambda": None, "status": "no scale-out demand", "variables": 0, "constraints": 0,
                "seconds": 0.0, "checked": True, "commodities": 0, "unroutable_gbps": unrouted}
    groups = np.unique(gt)
    E = fabric.n_endpoints
    alive = ~dead
    ls, ld = fabric.link_src, fabric.link_dst
    sw_link = alive & (ls >= E) & (ld >= E)
    # per commodity: usable links = switch links + uplinks of its sources + downlinks to its members
    usable = []
    n_var = 0
    for g in groups:
        sel = gt == g
        srcs = np.unique(s[sel])
        ok = sw_link.copy()
        ok |= alive & np.isin(ls, srcs) & (ld >= E)
        ok |= alive & (ld < E) & (P.ep_group[np.minimum(ld, E - 1)] == g) & (ls >= E)
        usable.append(np.flatnonzero(ok))
        n_var += usable[-1].size
    if n_var > MAX_VARIABLES:
        raise SpecError([("routing", f"the optimal LP would have {n_var:,} variables ({groups.size} destination groups x links); the limit is {MAX_VARIABLES:,}")])
    t0 = time.perf_counter()
    solver = pywraplp.Solver.CreateSolver("GLOP")
    if solver is None:
        raise SolverError("OR-Tools GLOP is not available")
    solver.SetTimeLimit(int(time_limit_s * 1000))
    inf = solver.infinity()
    lam = solver.NumVar(0.0, inf, "lambda")
    cap_rows = {}
    cap = fabric.link_gbps
    n_rows = 0
    xs = []
    for gi, g in enumerate(groups):
        sel = gt == g
        sent = np.bincount(s[sel], weights=m[sel], minlength=fabric.n_nodes)
        recv = np.bincount(t[sel], weights=m[sel], minlength=fabric.n_nodes)
        links = usable[gi]
        nodes = np.unique(np.concatenate([ls[links], ld[links]]))
        out_rows, in_rows = {}, {}
        for v in nodes.tolist():
            if v >= E:
                # switch: out - in = 0
                c = solver.Constraint(0.0, 0.0, f"cons[{int(g)},{v}]")
                out_rows[v] = in_rows[v] = (c, 1.0, -1.0)
                n_rows += 1
                continue
            # endpoint (never transit): out = lambda x sent, in = lambda x received
            co = solver.Constraint(0.0, 0.0, f"sent[{int(g)},{v}]")
            co.SetCoefficient(lam, -float(sent[v]))
            ci = solver.Constraint(0.0, 0.0, f"recv[{int(g)},{v}]")
            ci.SetCoefficient(lam, -float(recv[v]))
            out_rows[v] = (co, 1.0, 0.0)
            in_rows[v] = (ci, 0.0, 1.0)
            n_rows += 2
        x = []
        for l in links.tolist():
            var = solver.NumVar(0.0, inf, f"f[{int(g)},{l}]")
            c, a, _ = out_rows[int(ls[l])]
            c.SetCoefficient(var, a)
            c, _, b = in_rows[int(ld[l])]
            c.SetCoefficient(var, b)
            cr = cap_rows.get(l)
            if cr is None:
                cr = cap_rows[l] = solver.Constraint(-inf, float(cap[l]), f"cap[{l}]")
            cr.SetCoefficient(var, 1.0)
            x.append(var)
        xs.append(x)
        # supplies that have no usable link at all make the commodity infeasible for lambda > 0
    n_rows += len(cap_rows)
    solver.Maximize(lam)
    status = solver.Solve()
    secs = time.perf_counter() - t0
    names = {pywraplp.Solver.OPTIMAL: "optimal", pywraplp.Solver.FEASIBLE: "feasible",
             pywraplp.Solver.INFEASIBLE: "infeasible", pywraplp.Solver.UNBOUNDED: "unbounded",
             pywraplp.Solver.ABNORMAL: "abnormal", pywraplp.Solver.NOT_SOLVED: "not solved"}
    st = names.get(status, str(status))
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        raise SolverError(f"the max-concurrent-flow LP ended with status {st}")
    lam_v = float(lam.solution_value())
    flows = [np.array([v.solution_value() for v in x]) for x in xs]
    # independent check: conservation and capacity on the extracted flows
    supplies = []
    for g in groups:
        sel = gt == g
        supplies.append((np.bincount(s[sel], weights=m[sel], minlength=fabric.n_nodes),
                         np.bincount(t[sel], weights=m[sel], minlength=fabric.n_nodes)))
    ok, lam_checked, why = routing_lpcheck.check(ls, ld, E, np.where(alive, cap, 0.0), usable, flows, supplies, lam_v)
    if not ok:
        raise SolverError(f"the LP solution failed the independent check: {why}")
    return {"lambda": lam_checked, "status": st, "variables": n_var + 1, "constraints": n_rows,
            "seconds": secs, "checked": True, "commodities": int(groups.size), "unroutable_gbps": unrouted}
