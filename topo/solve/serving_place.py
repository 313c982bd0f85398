"""Placement of serving replicas with CP-SAT, beside the training jobs, and its independent checker.

Owns where the replicas of every serving pool (prefill, decode, colocated) go once the training jobs
are placed (their placement is given, else the in-order one): the free accelerators that are left.
:func:`check` re-checks every placement with code of its own before one is returned.

The model
---------
* Units. A replica of ``n = pp x max(tp, ep)`` accelerators that fits in one scale-up domain takes
  ``n`` free accelerators of one domain (its TP groups then never leave the domain); a larger one
  takes ``ceil(n / domain size)`` wholly free domains of one cell (a (leaf, rack) pair), and tp and
  the domain size must divide one another so that a TP group is inside one domain (tp <= size) or
  made of whole domains (tp > size), else refused.
  A domain that a large replica uses holds no small replica. Endpoints without a scale-up domain are
  domains of one accelerator.
* A replica is *behind* the leaf (plane 0), pod and rack of the first accelerator of its first
  scale-up domain, as the training placement counts a unit's leaf (on a rail-optimized fabric the
  accelerators of one domain sit on different leaves).
* Spread (``serving.deployments[i].spread``): each pool has at most ``floor(max_share x replicas)``
  replicas behind one leaf, pod or rack (the rack's power feed).
* Rack power: a server that takes a replica's accelerator moves from idle to busy power; per rack
  at most ``floor((limit - draw before) / largest busy - idle step of its servers)`` servers switch on,
  the figures the training placement uses (the draw before counts busy nodes, held-back spares and
  the training jobs' nodes at busy power). A domain's replicas take its free accelerators in endpoint
  order, so the servers switched on follow from the accelerators used (``AddElement`` on a table per
  domain and rack); only racks that cannot switch on all their idle servers get the constraint. A
  whole domain given to a large replica counts all its servers. Refused before solving when even the
  best choice of servers per rack cannot power the accelerators the pools need.
* Objective (integer, minimised): ``sum over disaggregated deployments d of W_d x (A_LEAF x
  (pairs in different leaves) + A_POD x (pairs in different pods))`` over the (prefill, decode)
  replica pairs. With ``kv_routing: even`` the requests spread evenly over the pairs, and the pairs
  behind one leaf (pod) are ``p x d``; with ``local`` the requests kept behind a leaf (pod) are
  ``min(p / P, d / D)`` of them (:func:`topo.traffic.serving.kv_shares`), so ``min(p x D, d x P)``
  pair-equivalents, a linear term. ``W_d`` is the KV bytes
  per second of one pair (requests/s / pairs x mean prompt tokens x KV bytes per token x decode
  copies of each block), scaled so that the heaviest deployment has 100 (at least 1), rounded half
  up in exact rational arithmetic. Same-leaf pairs are products of two integer counts
  (``AddMultiplicationEquality``).
* Realisation. Domains in endpoint order; in each, the pools in file order take their replicas from
  the domain's free accelerators in endpoint order; whole domains go to large replicas cell by cell.
* Status. OPTIMAL when the solver proves it, FEASIBLE with its bound otherwise; nothing found in the
  time limit raises :class:`~topo.core.errors.TimeLimitError`, a model without a solution (capacity,
  spread, one-cell rule) a :class:`~topo.core.errors.SpecError` naming the deployments.

The checker also recomputes every rack's power with the serving replicas' nodes busy.

Not modelled: a whole domain's servers that a large replica leaves unused are counted switched on
(conservative); power of anything but the nodes and top-of-rack leaves.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Optional

import numpy as np

from topo.core.errors import SolverError, SpecError, TimeLimitError

A_LEAF = 1      # a (prefill, decode) pair in different leaves
A_POD = 3       # additionally, in different pods
W_SCALE = 100   # heaviest deployment's weight
LEVELS = ("leaf", "pod", "rack")


def _pools(dep):
    if dep.colocated is not None:
        return [("colocated", dep.colocated)]
    return [("prefill", dep.prefill), ("decode", dep.decode)]


def _training(cluster, fabric, placement):
    from topo.traffic.demand import fit_in_order
    if placement is None:
        placement = fit_in_order(cluster, fabric)[0] if cluster.file.jobs else {}
    return placement


def _free(cluster, fabric, placement) -> np.ndarray:
    from topo.traffic.demand import free_accelerators
    free = free_accelerators(cluster, fabric)
    for eps in placement.values():
        e = np.asarray(eps, np.int64)
        free[e[(e >= 0) & (e < free.shape[0])]] = False
    return free


def _held(fabric, reserved) -> np.ndarray:
    """Server ids of the held-back nodes, named as the placement names them."""
    return np.asarray(sorted(int(s) for s in fabric.server_ids(list(reserved))) if reserved else [], np.int64)


def _home(fabric) -> dict:
    """Per endpoint: the leaf, pod and rack a replica starting there is counted behind."""
    from topo.traffic.serving import replica_homes
    return replica_homes(fabric)


def _weights(cluster) -> tuple[dict, dict]:
    """({deployment: W_d}, {deployment: KV bytes/s of one (prefill, decode) pair}) of the disaggregated ones."""
    from topo.traffic.serving import _kv_matrix
    raw = {}
    for d in cluster.file.serving.deployments:
        if d.colocated is not None:
            continue
        M = _kv_matrix(d.model, d.prefill, d.decode)
        pairs = d.prefill.replicas * d.decode.replicas
        raw[d.name] = (Fraction(d.load.requests_per_s) / pairs * Fraction(d.load.prompt_tokens.mean)
                       * Fraction(float(M.sum())))
    wmax = max(raw.values(), default=0)
    w = {k: (0 if v <= 0 else max(1, math.floor(W_SCALE * v / wmax + Fraction(1, 2)))) for k, v in raw.items()}
    return w, {k: float(v) for k, v in raw.items()}


def _servers_on(cluster, fabric, training: dict, reserved=()) -> np.ndarray:
    """Per server: drawing busy power before the serving replicas (busy nodes, held-back spares, a
    training job's nodes)."""
    ep_server = np.asarray(fabric.ep_server)
    on = np.zeros(fabric.n_servers, bool)
    if cluster.file.busy_nodes:
        on[np.asarray(fabric.server_ids(cluster.file.busy_nodes), np.int64)] = True
    if reserved:
        on[np.asarray(fabric.server_ids(list(reserved)), np.int64)] = True
    for eps in training.values():
        e = np.asarray(eps, np.int64).ravel()
        on[ep_server[e[(e >= 0) & (e < fabric.n_endpoints)]]] = True
    return on


def _power_cap(cluster, fabric, on: np.ndarray) -> np.ndarray:
    """Per rack: the servers it can still switch from idle to busy power, as the training placement
    counts them (:mod:`topo.solve.placement`): ``floor((limit - draw now) / the largest busy - idle step
    of its accelerator servers)``, the draw now from :func:`topo.routing.describe.rack_power` with the
    servers ``on`` busy (top-of-rack leaves in their rack); unlimited where no server adds power."""
    from topo.routing.describe import rack_power
    kw0 = np.asarray(rack_power(fabric, cluster, busy_servers=on)["kw"], np.float64)
    head = np.asarray(fabric.rack_limit_kw, np.float64) - kw0
    acc_srv = np.unique(np.asarray(fabric.ep_server)[np.asarray(fabric.ep_is_accel, bool)])
    srack = np.asarray(fabric.server_rack)
    delta = (np.asarray(fabric.server_busy_kw) - np.asarray(fabric.server_idle_kw))[acc_srv]
    rack_delta = np.zeros(fabric.n_racks)
    np.maximum.at(rack_delta, srack[acc_srv], delta)
    big = 10 ** 9
    with np.errstate(divide="ignore", invalid="ignore"):
        pc = np.where(rack_delta > 0, np.floor((head + 1e-9) / np.where(rack_delta > 0, rack_delta, 1.0)),
                      np.where(head >= -1e-9, big, 0))
    return np.clip(pc, 0, big).astype(np.int64)


def _add_power(m, fabric, D, pools: list, y: dict, whole: dict, on: np.ndarray, pcap: np.ndarray) -> list:
    """Rack power: per rack, the idle servers the replicas switch on (a domain's replicas take its free
    accelerators in endpoint order, so the servers switched on follow from the accelerators used) at most
    the rack's ``pcap``. Only racks with more idle servers holding free accelerators than ``pcap`` get a
    constraint. Returns those racks."""
    ep_server = np.asarray(fabric.ep_server)
    srack = np.asarray(fabric.server_rack)
    idle_srv = np.unique(ep_server[np.concatenate(D.free)]) if D.free else np.zeros(0, np.int64)
    idle_srv = idle_srv[~on[idle_srv]]
    cnt = np.bincount(srack[idle_srv], minlength=fabric.n_racks)
    bind = np.flatnonzero(cnt > pcap)
    if not bind.size:
        return []
    bset = set(bind.tolist())
    per_rack: dict = {int(r): [] for r in bind}
    for t in range(len(D.members)):
        fr = D.free[t]
        if not fr.size:
            continue
        srv = ep_server[fr]
        racks = set(srack[srv[~on[srv]]].tolist()) & bset
        if not racks:
            continue
        n_free = int(fr.size)
        used = m.NewIntVar(0, n_free, f"used_{t}")
        small = [n * y[p, t] for p, (_, _, _, n, k) in enumerate(pools) if k == 0 and (p, t) in y]
        m.Add(used == sum(small) + (n_free * whole[t] if t in whole else 0))
        for r in sorted(racks):
            # servers of rack r switched on by the first u free accelerators, u = 0 .. n_free
            table, seen = [0], set()
            for e_srv in srv.tolist():
                if not on[e_srv] and srack[e_srv] == r:
                    seen.add(e_srv)
                table.append(len(seen))
            v = m.NewIntVar(0, table[-1], f"on_{t}_{r}")
            m.AddElement(used, table, v)
            per_rack[r].append(v)
    for r in bind.tolist():
        if per_rack[r]:
            m.Add(sum(per_rack[r]) <= int(pcap[r]))
    return bind.tolist()


def _check_power_room(fabric, D, pools: list, on: np.ndarray, pcap: np.ndarray) -> None:
    """Refuses, before solving, serving pools needing more accelerators than the racks can power: per rack
    the free accelerators on servers already drawing busy power, plus those of its ``pcap`` idle servers
    with the most free accelerators."""
    ep_server = np.asarray(fabric.ep_server)
    srack = np.asarray(fabric.server_rack)
    fr = np.concatenate(D.free) if D.free else np.zeros(0, np.int64)
    if not fr.size:
        return
    per_srv = np.bincount(ep_server[fr], minlength=fabric.n_servers)
    srv = np.flatnonzero(per_srv)
    usable = int(per_srv[srv[on[srv]]].sum())
    idle = srv[~on[srv]]
    for r in np.unique(srack[idle]).tolist():
        c = np.sort(per_srv[idle[srack[idle] == r]])[::-1]
        usable += int(c[:int(min(pcap[r], c.size))].sum())
    need = sum(pool.replicas * n for _, _, pool, n, _ in pools)
    if need > usable:
        raise SpecError([("serving.deployments", f"the serving replicas need {need:,} accelerators; the racks' "
                          f"power limits (racks[].power_limit_kw) let them use at most {usable:,} of the "
                          f"{int(fr.size):,} free after the training jobs (a server switched on draws its busy "
                          f"power)")])


class _Domains:
    """Scale-up domains of the accelerators (endpoint order) with their free members and cell."""

    def __init__(self, fabric, free: np.ndarray):
        acc = np.flatnonzero(np.asarray(fabric.ep_is_accel, bool))
        dom = np.asarray(fabric.ep_domain)[acc]
        key = np.where(dom >= 0, dom, -(acc + 1))         # no domain: a domain of one
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")          # domains by first endpoint
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        inv = rank[inv.ravel()]
        self.members = [acc[inv == i] for i in range(order.size)]
        self.free = [m[free[m]] for m in self.members]
        self.size = np.array([m.size for m in self.members], np.int64)
        self.n_free = np.array([f.size for f in self.free], np.int64)
        self.whole = self.n_free == self.size
        first_ep = np.array([m[0] for m in self.members], np.int64)
        leaf = fabric.ep_leaf()[first_ep]
        self.leaf = leaf
        self.pod = np.maximum(np.asarray(fabric.node_pod)[leaf], 0)
        self.rack = np.asarray(fabric.server_rack)[np.asarray(fabric.ep_server)[first_ep]]
        cell_key = leaf.astype(np.int64) * (int(fabric.n_racks) + 1) + self.rack
        _, self.cell = np.unique(cell_key, return_inverse=True)
        self.cell = self.cell.ravel()
        self.n_cells = int(self.cell.max(initial=-1)) + 1


def place_serving(cluster, fabric=None, placement: Optional[dict] = None, *, time_limit=None, seed=None,
                  workers=None, reserved=()) -> dict:
    """CP-SAT placement of every serving pool in the accelerators the training jobs leave free.

    ``reserved``: names of nodes held back (hot spares): no replica goes on them.

    Returns ``{"assignment": {(deployment, role): [replicas, ranks] endpoint ids}, "status", "objective",
    "bound", "time_limit_s", "training": the training placement used}``, checked by :func:`check`.
    """
    from ortools.sat.python import cp_model
    from topo.model.fabric import build
    from topo.model.spec import run_settings
    from topo.solve.cpsat import configure
    from topo.core.signals import solve as solve_interruptible
    if fabric is None:
        fabric = build(cluster)
    rs = run_settings(cluster, seed=seed, workers=workers, time_limit=time_limit)
    sv = cluster.file.serving
    train = _training(cluster, fabric, placement)
    free = _free(cluster, fabric, train)
    held = _held(fabric, reserved)
    free[np.isin(np.asarray(fabric.ep_server), held)] = False
    D = _Domains(fabric, free)
    pools = _pool_list(sv, D)
    _check_room(pools, D)
    m = cp_model.CpModel()
    cells = range(D.n_cells)
    doms_of_cell = [np.flatnonzero(D.cell == c) for c in cells]
    y, w, xcell, whole = _variables(m, D, pools, doms_of_cell)
    _add_capacity(m, D, pools, doms_of_cell, y, w, whole)
    on = _servers_on(cluster, fabric, train, reserved)
    pcap = _power_cap(cluster, fabric, on)
    _check_power_room(fabric, D, pools, on, pcap)
    power_racks = _add_power(m, fabric, D, pools, y, whole, on, pcap)
    cell_first = np.array([doms_of_cell[c][0] for c in cells], np.int64)
    _add_spread(m, sv, D, pools, xcell, cell_first)
    obj = _objective(m, cluster, sv, D, pools, xcell, cell_first)
    m.Minimize(sum(obj) if obj else 0)
    _add_hint(m, sv, D, pools, y, w, whole, doms_of_cell, cell_first)
    solver = cp_model.CpSolver()
    configure(solver, time_limit=rs.time_limit, seed=rs.seed, workers=rs.workers)
    status = solve_interruptible(solver, m)
    name = solver.StatusName(status)
    if name == "INFEASIBLE" or name == "MODEL_INVALID":
        raise SpecError([("serving.deployments", "the CP-SAT serving placement has no solution: the free "
                          "accelerators after the training jobs cannot hold every pool with its spread limits "
                          "and each large replica in one (leaf, rack) cell"
                          + (f", within the power limits of {len(power_racks)} rack(s) that cannot switch on all "
                             f"their idle servers" if power_racks else "") + " (try placement in-order)")])
    if name not in ("OPTIMAL", "FEASIBLE"):
        raise TimeLimitError(f"the CP-SAT serving placement found no placement in {rs.time_limit:g} s")
    assign = _realise(solver, sv, D, pools, doms_of_cell, y, w, whole)
    objective = int(round(solver.ObjectiveValue())) if obj else 0
    bound = int(math.ceil(solver.BestObjectiveBound() - 1e-6)) if obj else 0
    problems = check(cluster, fabric, train, assign, objective, reserved=reserved)
    if problems:
        raise SolverError("the serving placement failed its independent check: " + "; ".join(problems[:5]))
    return {"assignment": assign, "status": name, "objective": objective, "bound": min(bound, objective),
            "time_limit_s": rs.time_limit, "training": train}


def _pool_list(sv, D: _Domains) -> list:
    """Every pool as (deployment index, role, pool, accelerators per replica, scale-up domains per replica
    or 0 for a replica within one domain); refuses a replica spanning domains that are not all the same
    size, or whose TP group would split over domains."""
    ds = int(D.size.max(initial=1))
    uniform = bool((D.size == ds).all())
    pools = []          # (deployment index, role, pool, n, k or 0)
    errs = []
    for i, d in enumerate(sv.deployments):
        for role, pool in _pools(d):
            n = pool.accelerators
            k = 0
            if n > ds:
                k = -(-n // ds)
                if not uniform:
                    errs.append((f"serving.deployments[{i}].{role}", f"a replica of {n} accelerators spans "
                                 "scale-up domains, and the cluster's domains differ in size"))
                elif (ds % pool.tp if pool.tp <= ds else pool.tp % ds):
                    errs.append((f"serving.deployments[{i}].{role}.tp", f"tp {pool.tp} and the scale-up domain size "
                                 f"{ds}: one must divide the other, else a replica of {n} accelerators splits a TP "
                                 f"group over domains"))
            pools.append((i, role, pool, n, k))
    if errs:
        raise SpecError(errs)
    return pools


def _check_room(pools: list, D: _Domains) -> None:
    """Refuses the first pool whose replicas, with the pools before it, exceed the free accelerators."""
    total, have = 0, int(D.n_free.sum())
    for i, role, pool, n, _ in pools:
        total += pool.replicas * n
        if total > have:
            raise SpecError([(f"serving.deployments[{i}].{role}.replicas",
                              f"{pool.replicas} replicas x {n} accelerators; {have:,} accelerators are free after "
                              f"the training jobs and {total - pool.replicas * n:,} go to the pools before it")])


def _variables(m, D: _Domains, pools: list, doms_of_cell: list) -> tuple[dict, dict, dict, dict]:
    """The model's variables and the replica count of every pool: ``y`` (pool, domain) replicas of a
    small pool in that domain, ``w`` (pool, cell) replicas of a large pool in that cell, ``xcell`` (pool,
    cell) replicas behind the cell (a linear expression), ``whole`` domain -> taken whole by large
    replicas. Refuses a pool no free domain (or cell of wholly free domains) holds a replica of."""
    cells = range(D.n_cells)
    y = {}      # (pool, domain) -> replicas of a small pool in that domain
    w = {}      # (pool, cell) -> replicas of a large pool in that cell
    xcell = {}  # (pool, cell) -> linear expression: replicas behind the cell
    whole = {}
    if any(k for *_, k in pools):
        for t in np.flatnonzero(D.whole):
            whole[int(t)] = m.NewBoolVar(f"whole_{t}")
    for p, (i, role, pool, n, k) in enumerate(pools):
        terms_all = []
        for c in cells:
            terms = []
            if k == 0:
                for t in doms_of_cell[c]:
                    cap = int(D.n_free[t]) // n
                    if cap > 0:
                        y[p, int(t)] = v = m.NewIntVar(0, min(cap, pool.replicas), f"y_{p}_{t}")
                        terms.append(v)
            else:
                cap = int(D.whole[doms_of_cell[c]].sum()) // k
                if cap > 0:
                    w[p, c] = v = m.NewIntVar(0, min(cap, pool.replicas), f"w_{p}_{c}")
                    terms.append(v)
            xcell[p, c] = sum(terms) if terms else 0
            terms_all.extend(terms)
        if not terms_all:
            raise SpecError([(f"serving.deployments[{i}].{role}.replicas",
                              f"no free scale-up domain (or cell of wholly free domains) holds a replica of {n} "
                              f"accelerators after the training jobs")])
        m.Add(sum(terms_all) == pool.replicas)
    return y, w, xcell, whole


def _add_capacity(m, D: _Domains, pools: list, doms_of_cell: list, y: dict, w: dict, whole: dict) -> None:
    """Capacity of every domain; whole domains go to large replicas, k per replica, in one cell."""
    for t in range(len(D.members)):
        small = [n * y[p, t] for p, (_, _, _, n, k) in enumerate(pools) if k == 0 and (p, t) in y]
        if t in whole:
            m.Add(sum(small) + int(D.n_free[t]) * whole[t] <= int(D.n_free[t]) if small else whole[t] <= 1)
        elif small:
            m.Add(sum(small) <= int(D.n_free[t]))
    if any(k for *_, k in pools):
        for c in range(D.n_cells):
            used = [whole[int(t)] for t in doms_of_cell[c] if int(t) in whole]
            need = [k * w[p, c] for p, (_, _, _, _, k) in enumerate(pools) if k and (p, c) in w]
            if used or need:
                m.Add(sum(used) == sum(need) if need else sum(used) == 0)


def _add_spread(m, sv, D: _Domains, pools: list, xcell: dict, cell_first: np.ndarray) -> None:
    """Every deployment's spread limit: at most max_share of a pool's replicas behind one leaf, pod or
    rack; refused when the cluster has too few of them."""
    keys = {"leaf": D.leaf, "pod": D.pod, "rack": D.rack}
    for p, (i, role, pool, n, k) in enumerate(pools):
        sp = sv.deployments[i].spread
        if sp is None:
            continue
        cap = math.floor(sp.max_share * pool.replicas + 1e-9)
        kc = keys[sp.level][cell_first]
        room = [not isinstance(xcell[p, c], int) for c in range(len(kc))]     # cells that can hold one
        have = np.unique(kc[np.asarray(room, bool)]).size if any(room) else 0
        if have * cap < pool.replicas:
            raise SpecError([(f"serving.deployments[{i}].spread", f"{pool.replicas} {role} replicas at most {cap} "
                              f"behind one {sp.level} need {-(-pool.replicas // cap)} of them; the accelerators "
                              f"free for them after the training jobs are behind {have}")])
        for key in np.unique(kc):
            ex = [xcell[p, c] for c in np.flatnonzero(kc == key) if not isinstance(xcell[p, c], int)]
            if ex:
                m.Add(sum(ex) <= cap)


def _objective(m, cluster, sv, D: _Domains, pools: list, xcell: dict, cell_first: np.ndarray) -> list:
    """The objective's terms: KV pairs (prefill replica, decode replica) across leaves and pods, weighted."""
    W, _ = _weights(cluster)
    obj = []
    for i, d in enumerate(sv.deployments):
        if d.colocated is not None or W.get(d.name, 0) == 0:
            continue
        pp_ = [p for p, x in enumerate(pools) if x[0] == i]
        a, b = pp_[0], pp_[1]
        Rp, Rd = d.prefill.replicas, d.decode.replicas
        for level, weight, key in (("leaf", A_LEAF, D.leaf), ("pod", A_POD, D.pod)):
            kc = key[cell_first]
            same = []
            for kk in np.unique(kc):
                cs = np.flatnonzero(kc == kk)
                ea = [xcell[a, c] for c in cs if not isinstance(xcell[a, c], int)]
                eb = [xcell[b, c] for c in cs if not isinstance(xcell[b, c], int)]
                if not ea or not eb:
                    continue
                pr = m.NewIntVar(0, Rp * Rd, f"same_{i}_{level}_{kk}")
                if d.kv_routing == "local":
                    # the pairs' share kept behind it, x Rp x Rd: min(p x Rd, d x Rp), maximised
                    m.Add(pr <= Rd * sum(ea))
                    m.Add(pr <= Rp * sum(eb))
                else:
                    va = m.NewIntVar(0, Rp, f"n_{a}_{level}_{kk}")
                    vb = m.NewIntVar(0, Rd, f"n_{b}_{level}_{kk}")
                    m.Add(va == sum(ea))
                    m.Add(vb == sum(eb))
                    m.AddMultiplicationEquality(pr, [va, vb])
                same.append(pr)
            obj.append(W[d.name] * weight * (Rp * Rd - sum(same)))
    return obj


def _add_hint(m, sv, D: _Domains, pools: list, y: dict, w: dict, whole: dict, doms_of_cell: list,
              cell_first: np.ndarray) -> None:
    """A first guess for the solver (a hint: it may break a power limit, and the solver repairs or drops
    it): the pools in file order, each filling the free domains (whole domains of a cell, for a large
    replica) in endpoint order up to its spread limit per leaf, pod or rack. A deployment's prefill and
    decode pools thus fill the same first leaves, which is what the objective rewards."""
    keys = {"leaf": D.leaf, "pod": D.pod, "rack": D.rack}
    left = D.n_free.copy()
    free_whole = D.whole.copy()
    hy: dict = {}
    hw: dict = {}
    for p, (i, role, pool, n, k) in enumerate(pools):
        sp = sv.deployments[i].spread
        cap = math.floor(sp.max_share * pool.replicas + 1e-9) if sp is not None else pool.replicas
        key = keys[sp.level] if sp is not None else np.zeros(len(D.members), np.int64)
        per_key: dict = {}
        need = pool.replicas
        if k == 0:
            for t in range(len(D.members)):
                while need and (p, t) in y and left[t] >= n and per_key.get(int(key[t]), 0) < cap:
                    hy[p, t] = hy.get((p, t), 0) + 1
                    left[t] -= n
                    free_whole[t] = False
                    per_key[int(key[t])] = per_key.get(int(key[t]), 0) + 1
                    need -= 1
        else:
            for c in range(D.n_cells):
                kc = int(key[cell_first[c]])
                while need and (p, c) in w and per_key.get(kc, 0) < cap:
                    wd = [int(t) for t in doms_of_cell[c] if free_whole[t]]
                    if len(wd) < k:
                        break
                    for t in wd[:k]:
                        free_whole[t] = False
                        left[t] = 0
                        hy[-1, t] = 1          # taken whole
                    hw[p, c] = hw.get((p, c), 0) + 1
                    per_key[kc] = per_key.get(kc, 0) + 1
                    need -= 1
    for kk, v in y.items():
        m.AddHint(v, hy.get(kk, 0))
    for kk, v in w.items():
        m.AddHint(v, hw.get(kk, 0))
    for t, v in whole.items():
        m.AddHint(v, hy.get((-1, t), 0))


def _realise(solver, sv, D: _Domains, pools: list, doms_of_cell: list, y: dict, w: dict, whole: dict) -> dict:
    """The solved counts as endpoints: ``{(deployment, role): [replicas, ranks]}``, replicas in order of
    their first endpoint."""
    assign: dict = {}
    taken = {t: 0 for t in range(len(D.members))}
    reps: dict = {p: [] for p in range(len(pools))}
    big = {p: [] for p in range(len(pools))}
    for c in range(D.n_cells):
        wd = [int(t) for t in doms_of_cell[c] if int(t) in whole and solver.Value(whole[int(t)])]
        for p, (_, _, _, n, k) in enumerate(pools):
            if k and (p, c) in w:
                for _ in range(solver.Value(w[p, c])):
                    ds_ = wd[:k]
                    wd = wd[k:]
                    big[p].append(np.concatenate([D.members[t] for t in ds_])[:n])
    for t in range(len(D.members)):
        for p, (_, _, _, n, k) in enumerate(pools):
            if k == 0 and (p, t) in y:
                for _ in range(solver.Value(y[p, t])):
                    reps[p].append(D.free[t][taken[t]:taken[t] + n])
                    taken[t] += n
    for p, (i, role, pool, n, k) in enumerate(pools):
        R = big[p] if k else reps[p]
        R = sorted(R, key=lambda r: int(r[0]))
        assign[(sv.deployments[i].name, role)] = np.asarray(R, np.int64).reshape(pool.replicas, n)
    return assign


# --- the independent checker -------------------------------------------------------------------
def check(cluster, fabric, training: dict, assignment: dict, objective: Optional[int] = None,
          reserved=()) -> list[str]:
    """Problems of a serving placement (empty when it is valid), recomputed from the endpoints alone:
    every pool present with its replicas x accelerators; accelerators only, free (not busy, not a
    training job's), none used twice; every TP group inside one scale-up domain; the spread limits;
    no rack over its power limit with a server the replicas switched on; and, when ``objective`` is given,
    the objective recomputed from the replicas' first accelerators."""
    out = []
    sv = cluster.file.serving
    E = fabric.n_endpoints
    is_acc = np.asarray(fabric.ep_is_accel, bool)
    busy = set()
    if cluster.file.busy_nodes:
        busy = {int(s) for s in fabric.server_ids(cluster.file.busy_nodes)}
    if reserved:   # held-back spares count as busy
        busy |= {int(s) for s in fabric.server_ids(list(reserved))}
    ep_server = np.asarray(fabric.ep_server)
    owner = {}
    for job, eps in training.items():
        for e in np.asarray(eps, np.int64).ravel().tolist():
            owner[e] = f"training job {job}"
    dom = np.asarray(fabric.ep_domain)
    dsize = np.bincount(dom[dom >= 0]) if (dom >= 0).any() else np.zeros(0, np.int64)
    # a replica counts behind the leaf, pod and rack of the lowest accelerator of its first one's domain
    lowest: dict = {}
    for e in np.flatnonzero(is_acc).tolist():
        if dom[e] >= 0 and dom[e] not in lowest:
            lowest[int(dom[e])] = e
    home = np.array([lowest.get(int(dom[e]), e) if dom[e] >= 0 else e for e in range(E)], np.int64)
    leaf = fabric.ep_leaf()[home]
    pod = np.asarray(fabric.node_pod)[leaf]
    rack = np.asarray(fabric.server_rack)[ep_server[home]]
    expected = set()
    for d in sv.deployments:
        for role, pool in ((("colocated", d.colocated),) if d.colocated is not None
                           else (("prefill", d.prefill), ("decode", d.decode))):
            expected.add((d.name, role))
            R = assignment.get((d.name, role))
            if R is None:
                out.append(f"{d.name} {role}: not placed")
                continue
            R = np.asarray(R)
            if R.shape != (pool.replicas, pool.pp * max(pool.tp, pool.ep)):
                out.append(f"{d.name} {role}: shape {R.shape}, expected ({pool.replicas}, {pool.accelerators})")
                continue
            for r, row in enumerate(R.tolist()):
                for e in row:
                    if not 0 <= e < E or not is_acc[e]:
                        out.append(f"{d.name} {role} replica {r}: endpoint {e} is not an accelerator")
                    elif int(ep_server[e]) in busy:
                        out.append(f"{d.name} {role} replica {r}: {fabric.node_name(e)} is on a busy node")
                    elif e in owner:
                        out.append(f"{d.name} {role} replica {r}: {fabric.node_name(e)} is also used by {owner[e]}")
                    else:
                        owner[e] = f"{d.name} {role}"
                for g in range(0, len(row), pool.tp):
                    grp = [e for e in row[g:g + pool.tp] if 0 <= e < E]
                    ds = {int(dom[e]) for e in grp}
                    size = max((int(dsize[x]) if x >= 0 else 1) for x in ds) if ds else 1
                    if pool.tp <= size and len(grp) > 1 and len(ds) != 1:
                        out.append(f"{d.name} {role} replica {r}: TP group at rank {g} leaves its scale-up domain")
                    elif pool.tp > size and any(x >= 0 and sum(dom[e] == x for e in grp) != dsize[x] for x in ds):
                        out.append(f"{d.name} {role} replica {r}: TP group at rank {g} takes part of a scale-up "
                                   f"domain")
            if d.spread is not None:
                keyarr = {"leaf": leaf, "pod": pod, "rack": rack}[d.spread.level]
                counts: dict = {}
                for row in R.tolist():
                    kk = int(keyarr[row[0]])
                    counts[kk] = counts.get(kk, 0) + 1
                lim = int(d.spread.max_share * pool.replicas + 1e-9)
                worst = max(counts.values(), default=0)
                if worst > lim:
                    out.append(f"{d.name} {role}: {worst} replicas behind one {d.spread.level}, the spread allows {lim}")
    extra = set(assignment) - expected
    if extra:
        out.append(f"unknown pools {sorted(extra)}")
    out += _check_power(cluster, fabric, training, assignment, busy)
    if objective is not None and not out:
        raw = {}
        for d in sv.deployments:
            if d.colocated is not None:
                continue
            # KV bytes of one pair: every (layer, KV head) block of a prompt token to each decode rank holding it
            copies = max(1, d.decode.tp // d.model.kv_heads)
            bpt = 2 * d.model.layers * d.model.kv_heads * d.model.head_dim * copies
            from topo.model.spec import DTYPE_BYTES
            raw[d.name] = (Fraction(d.load.requests_per_s) / (d.prefill.replicas * d.decode.replicas)
                           * Fraction(d.load.prompt_tokens.mean) * Fraction(bpt) * Fraction(DTYPE_BYTES[d.model.kv_dtype]))
        top = max(raw.values(), default=0)
        total = 0
        for d in sv.deployments:
            if d.colocated is not None or raw[d.name] <= 0:
                continue
            wd = max(1, math.floor(Fraction(W_SCALE) * raw[d.name] / top + Fraction(1, 2)))
            P = np.asarray(assignment[(d.name, "prefill")])[:, 0]
            Q = np.asarray(assignment[(d.name, "decode")])[:, 0]
            if d.kv_routing == "local":
                # requests kept behind a leaf (pod): min(prefill share, decode share) of it, x pairs
                nP, nQ = len(P), len(Q)
                for weight, key in ((A_LEAF, leaf), (A_POD, np.maximum(pod, 0))):
                    cp: dict = {}
                    cq: dict = {}
                    for a in P.tolist():
                        cp[int(key[a])] = cp.get(int(key[a]), 0) + 1
                    for b in Q.tolist():
                        cq[int(key[b])] = cq.get(int(key[b]), 0) + 1
                    kept = sum(min(cp[x] * nQ, cq[x] * nP) for x in cp if x in cq)
                    total += wd * weight * (nP * nQ - kept)
                continue
            for a in P.tolist():
                for b in Q.tolist():
                    total += wd * (A_LEAF * (leaf[a] != leaf[b]) + A_POD * (max(pod[a], 0) != max(pod[b], 0)))
        if int(total) != int(objective):
            out.append(f"objective {objective} but the replicas give {int(total)}")
    return out


def _check_power(cluster, fabric, training: dict, assignment: dict, busy: set) -> list[str]:
    """No rack over its power limit that a serving replica switched a server on in: busy nodes, held-back
    spares and every node holding a training or serving rank at busy power, the others idle, each
    top-of-rack leaf in the rack of its first endpoint."""
    ep_server = np.asarray(fabric.ep_server)
    srack = np.asarray(fabric.server_rack)
    before = np.zeros(fabric.n_servers, bool)
    before[sorted(busy)] = True
    for eps in training.values():
        e = np.asarray(eps, np.int64).ravel()
        before[ep_server[e[(e >= 0) & (e < fabric.n_endpoints)]]] = True
    after = before.copy()
    for R in assignment.values():
        e = np.asarray(R, np.int64).ravel()
        after[ep_server[e[(e >= 0) & (e < fabric.n_endpoints)]]] = True
    kw = np.bincount(srack, weights=np.where(after, fabric.server_busy_kw, fabric.server_idle_kw),
                     minlength=fabric.n_racks)
    if cluster.file.floor.leaf_placement == "tor" and fabric.family != "custom" and cluster.tiers:
        leaves = np.flatnonzero(np.asarray(fabric.node_tier) == 1)
        down = np.asarray(fabric.link_dst)[np.asarray(fabric.adj)[np.asarray(fabric.indptr)[leaves]]]
        down = down[down < fabric.n_endpoints]
        np.add.at(kw, srack[ep_server[down]], cluster.tiers[0].switch.power_w / 1000.0)
    lim = np.asarray(fabric.rack_limit_kw, np.float64)
    switched = np.unique(srack[after & ~before])
    return [f"power: {fabric.rack_name(int(r))} draws {kw[r]:.2f} kW over its {lim[r]:g} kW limit with serving "
            f"replicas switched on in it" for r in switched.tolist() if kw[r] > lim[r] + 1e-6]


def placed_section(cluster, fabric, placement: dict, *, reserved=(), time_limit=None, seed=None, workers=None,
                   placed: Optional[dict] = None) -> dict:
    """The serving replicas placed by CP-SAT beside the jobs' ``placement`` (never on the ``reserved``
    nodes), as ``topo place`` shows them (JSON-able): the solver's status, objective and bound; per pool
    (``deployment.role``) its replicas' first and last accelerator and the endpoint ids; the KV bytes
    crossing leaves and pods; every rack a replica switched a node on in, with its power draw then
    (busy nodes, spares and the jobs' and replicas' nodes at busy power) and limit.
    ``placed``: a :func:`place_serving` result to show instead of solving."""
    from topo.routing.describe import rack_power
    res = placed if placed is not None else place_serving(cluster, fabric, placement, time_limit=time_limit,
                                                          seed=seed, workers=workers, reserved=reserved)
    assign = res["assignment"]
    on = _servers_on(cluster, fabric, res["training"], reserved)
    after = on.copy()
    ep_server = np.asarray(fabric.ep_server)
    for R in assign.values():
        after[ep_server[np.asarray(R, np.int64).ravel()]] = True
    rp = rack_power(fabric, cluster, busy_servers=after)
    srack = np.asarray(fabric.server_rack)
    racks = [{"rack": fabric.rack_name(int(r)), "kw": float(rp["kw"][r]), "limit_kw": float(rp["limit_kw"][r])}
             for r in np.unique(srack[after & ~on]).tolist()]
    pools = {}
    for d in cluster.file.serving.deployments:
        for role, pool in _pools(d):
            R = np.asarray(assign[(d.name, role)], np.int64)
            pools[f"{d.name}.{role}"] = {
                "replicas": int(R.shape[0]), "accelerators_per_replica": int(pool.accelerators),
                # derived: the first and last accelerator of every replica, in rank order
                "nodes": [[fabric.node_name(int(r[0])), fabric.node_name(int(r[-1]))] for r in R],
                "assignment": R.tolist()}
    return {"method": "cpsat", "status": res["status"], "objective": res["objective"], "bound": res["bound"],
            "time_limit_s": res["time_limit_s"], "checked": True, "pools": pools,
            "kv_crossing": kv_crossing(cluster, fabric, assign), "racks_switched_on": racks}


def read_replicas(path, cluster, fabric, training: dict, reserved=()) -> Optional[dict]:
    """The serving replicas a ``topo place -o`` file (``serving.pools.<deployment.role>.assignment``) or a
    plan (``serving.serving_placement.assignment``) holds, as ``{(deployment, role): [replicas, ranks]}``,
    checked by :func:`check` against the cluster, the jobs' ``training`` placement and ``reserved`` nodes;
    None when the file holds no serving placement. Raises SpecError naming the JSON path of a pool the
    cluster file does not state, a malformed one or a missing one, or the checker's problems."""
    import json
    from topo.core.inputs import read_text
    from topo.core.limits import MAX_PLAN_BYTES
    src = str(path)
    try:
        data = json.loads(read_text(path, "placement", limit=MAX_PLAN_BYTES, what="placement file"))
    except (ValueError, RecursionError) as e:
        raise SpecError([("(file)", f"malformed JSON: {e}")], src)
    sv = data.get("serving") if isinstance(data, dict) else None
    if not isinstance(sv, dict):
        return None
    if isinstance(sv.get("pools"), dict):
        base = "serving.pools"
        raw = {k: (v.get("assignment") if isinstance(v, dict) else None) for k, v in sv["pools"].items()}
        at = {k: f"{base}.{k}.assignment" for k in raw}
    elif isinstance(sv.get("serving_placement"), dict) and isinstance(sv["serving_placement"].get("assignment"), dict):
        base = "serving.serving_placement.assignment"
        raw = sv["serving_placement"]["assignment"]
        at = {k: f"{base}.{k}" for k in raw}
    else:
        return None
    want = {f"{d.name}.{role}": (d.name, role, pool) for d in cluster.file.serving.deployments for role, pool in _pools(d)}
    errs, reps = [], {}
    for k, v in raw.items():
        if k not in want:
            errs.append((at[k], "not a pool of the cluster file's serving deployments"))
            continue
        name, role, pool = want[k]
        arr = np.asarray(v if isinstance(v, list) else [], dtype=object)
        ok = arr.ndim == 2 and arr.shape == (pool.replicas, pool.accelerators) and all(
            isinstance(x, int) and not isinstance(x, bool) for x in arr.ravel().tolist())
        if not ok:
            errs.append((at[k], f"expected {pool.replicas} lists of {pool.accelerators} endpoint ids (integers)"))
            continue
        reps[(name, role)] = arr.astype(np.int64)
    errs += [(f"{base}.{k}", "missing: the cluster file states this pool") for k in want if k not in raw]
    if errs:
        raise SpecError(errs, src)
    problems = check(cluster, fabric, training, reps, reserved=reserved)
    if problems:
        raise SpecError([(base, p) for p in problems[:20]], src)
    return reps


def kv_crossing(cluster, fabric, assignment: dict) -> dict:
    """Per disaggregated deployment: KV bytes per second between (prefill, decode) replicas whose first
    accelerators are under different leaves, and under different pods, with the requests shared over the
    pairs by the deployment's ``kv_routing`` (:func:`topo.traffic.serving.kv_shares`)."""
    from topo.traffic.serving import kv_shares
    _, per_pair = _weights(cluster)
    h = _home(fabric)
    leaf, pod = h["leaf"], h["pod"]
    out = {}
    for d in cluster.file.serving.deployments:
        if d.colocated is None:
            P = np.asarray(assignment[(d.name, "prefill")])[:, 0]
            Q = np.asarray(assignment[(d.name, "decode")])[:, 0]
            total = per_pair[d.name] * d.prefill.replicas * d.decode.replicas     # KV bytes/s of the deployment
            S = kv_shares(d.kv_routing, leaf[P], pod[P], leaf[Q], pod[Q])
            dl = float((S * (leaf[P][:, None] != leaf[Q][None, :])).sum())
            dp = float((S * (pod[P][:, None] != pod[Q][None, :])).sum())
            out[d.name] = {"kv_bytes_per_s_crossing_leaves": float(total * dl),
                           "kv_bytes_per_s_crossing_pods": float(total * dp),
                           "pairs": int(P.size * Q.size), "kv_routing": d.kv_routing}
    return out


def spread_problems(cluster, fabric, assignment: dict) -> list[tuple[str, str]]:
    """(path, message) for every pool of ``assignment`` whose replicas break their deployment's spread."""
    arr = _home(fabric)
    out = []
    for i, d in enumerate(cluster.file.serving.deployments):
        if d.spread is None:
            continue
        for role, pool in _pools(d):
            R = np.asarray(assignment[(d.name, role)])
            cnt = np.unique(arr[d.spread.level][R[:, 0]], return_counts=True)[1]
            lim = math.floor(d.spread.max_share * pool.replicas + 1e-9)
            if cnt.max(initial=0) > lim:
                out.append((f"serving.deployments[{i}].spread", f"the in-order placement puts {int(cnt.max())} "
                            f"{role} replicas behind one {d.spread.level}; at most {lim} allowed (use the cpsat "
                            f"placement)"))
    return out


PLACEMENTS = ("cpsat", "in-order")


def serving(cluster, fabric=None, *, serving_placement: str = "cpsat", placement: Optional[dict] = None,
            time_limit=None, seed=None, workers=None, placed: Optional[dict] = None, **kw) -> dict:
    """:func:`topo.routing.serving.serving` with the replicas placed by ``serving_placement``: ``cpsat``
    (:func:`place_serving`) or ``in-order``; adds ``serving_placement``: the method, the solver's status,
    objective and bound, and the KV bytes crossing leaves and pods in order (before) and as placed (after).
    ``placed``: a :func:`place_serving` result to use instead of solving again (e.g. made on the fabric
    as given and reported on a rebuilt one with the same endpoints). Other keywords go to
    :func:`topo.routing.serving.serving` (``seed`` is also the solver's)."""
    from topo.model.fabric import build
    from topo.routing.serving import serving as route_serving
    from topo.traffic.serving import serving_placement as in_order
    if serving_placement not in PLACEMENTS:
        raise SpecError([("serving_placement", f"expected one of {list(PLACEMENTS)} (found {serving_placement!r})")])
    f = cluster.file
    if not f.serving.deployments:
        raise SpecError([("serving.deployments", "missing: the cluster file states no deployments to serve")])
    if fabric is None:
        fabric = build(cluster)
    train = _training(cluster, fabric, placement)
    before = None
    try:
        before = in_order(cluster, fabric, train)
    except SpecError:
        if serving_placement == "in-order":
            raise
    info: dict = {"method": serving_placement}
    if serving_placement == "in-order":
        errs = spread_problems(cluster, fabric, before)
        busy = {int(x) for x in fabric.server_ids(f.busy_nodes)} if f.busy_nodes else set()
        errs += [("serving.deployments", f"the in-order placement breaks a rack's power limit: {p} (use the "
                                         f"cpsat placement)") for p in _check_power(cluster, fabric, train, before, busy)]
        if errs:
            raise SpecError(errs)
        reps = before
        info.update(status=None, objective=None, bound=None)
    else:
        res = placed if placed is not None else place_serving(cluster, fabric, train, time_limit=time_limit, seed=seed,
                                                              workers=workers)
        reps = res["assignment"]
        info.update(status=res["status"], objective=res["objective"], bound=res["bound"],
                    time_limit_s=res["time_limit_s"], checked=True)
    info["kv_crossing_in_order"] = kv_crossing(cluster, fabric, before) if before is not None else None
    info["in_order_fits"] = before is not None
    info["in_order_spread_ok"] = before is not None and not spread_problems(cluster, fabric, before)
    info["kv_crossing"] = kv_crossing(cluster, fabric, reps)
    # endpoint ids of every replica in rank order, per "deployment.role"
    info["assignment"] = {f"{n}.{role}": np.asarray(R, np.int64).tolist() for (n, role), R in reps.items()}
    out = route_serving(cluster, fabric, placement=placement, seed=seed, replicas=reps, **kw)
    out["placement"] = ("training jobs " + ("as given" if placement is not None else "in order") + ", then the serving "
                        + ("replicas by CP-SAT" if serving_placement == "cpsat" else
                           "deployments in order (prefill, decode or colocated; replica by replica)"))
    out["serving_placement"] = info
    return out


def summary(cluster, fabric, placement: dict, *, seed=None, time_limit=None, workers=None, routing=None,
            placed: Optional[dict] = None) -> dict:
    """The serving section of ``topo analyze`` and of the plan: :func:`serving` with the replicas placed
    by CP-SAT beside the training jobs' ``placement``, reduced to what those outputs show (per deployment
    bytes/s by kind, network and scale-up Gb/s, network time per token with its curve, saturating rate
    and link per routing model, replicas; the placement; the loads and interference with training).
    ``routing``: the transport's model reported beside fluid (default from transport.protocol).
    ``placed``: the :func:`place_serving` result to report (default: solved here)."""
    s = serving(cluster, fabric, placement=placement, seed=seed, time_limit=time_limit, workers=workers,
                routing=routing, placed=placed)
    deps = []
    for d in s["deployments"]:
        tt = d["time_per_token"]
        deps.append({
            "name": d["name"], "mode": d["mode"], "requests_per_s": d["requests_per_s"],
            "accelerators": d["accelerators"], "replicas": d["replicas"],
            "bytes_per_s": d["bytes_per_s"], "network_gbps": d["network_gbps"], "scaleup_gbps": d["scaleup_gbps"],
            "kv_bytes_per_token": d["kv_bytes_per_token"],
            "max_requests_per_s_at_target": d["max_requests_per_s_at_target"], "limited_by": d["limited_by"],
            "kv_transfer": d.get("kv_transfer"),
            "time_per_token": {
                "pool": tt["pool"], "tokens_per_step": tt["tokens_per_step"],
                "models": {m: {"idle_s": e["idle_s"], "at_rate_s": e["at_rate_s"],
                               "saturating_requests_per_s": e["saturating_requests_per_s"],
                               "saturating_link": e["saturating_link"],
                               # (request rate, network time per output token in s, or null when saturated)
                               "curve": [[p["requests_per_s"], p["time_s"]] for p in e["curve"]]}
                           for m, e in tt["models"].items()}},
        })
    return {"target_utilization": s["target_utilization"], "routing": s["routing"], "placement": s["placement"],
            "serving_placement": s["serving_placement"], "deployments": deps, "all": s["all"],
            "with_training": s["with_training"],
            **({"front_end": s["front_end"]} if "front_end" in s else {})}   # agent flows on the front-end fabric


def with_jobs(cluster, fabric, job_loads: np.ndarray, placed: dict, *, routing: str, efficiency: float, seed: int,
              qps: int, channels: int, fail=()) -> dict:
    """``topo analyze``'s peak-utilisation figures with the serving traffic added: the deployments' flows at
    their stated rates (replicas of ``placed``, a :func:`place_serving` result) routed under the same
    ``routing`` model, wire ``efficiency``, seed, queue pairs and channels and the same failed links and
    switches ``fail`` as the jobs, their per-link load added to ``job_loads`` (the jobs' load per directed
    link, :attr:`topo.routing.engine.Analysis.loads`). Returns the max utilisation, the per-tier table
    (:func:`topo.routing.engine.tier_stats`) and the hottest links of the sum. ``optimal`` (an LP bound,
    not a routing) is refused."""
    from topo.routing.engine import _hottest, failure_mask, parse_failures, route, tier_stats
    from topo.traffic.serving import serving_traffic
    if routing == "optimal":
        raise SpecError([("routing", "the serving traffic is routed, not bounded: give fluid, roce-hash, uec-spray "
                                     "or wcmp")])
    links, nodes = parse_failures(fabric, list(fail))
    dead = failure_mask(fabric, links, nodes)
    st = serving_traffic(cluster, fabric, placed["training"], replicas=placed["assignment"])
    r = route(fabric, st.demands, routing, failed_links=dead, seed=seed, qps=qps, channels=channels,
              efficiency=efficiency)
    total = np.asarray(job_loads, np.float64) + r.link_gbps_load
    alive = ~dead & (fabric.link_gbps > 0)
    cap = fabric.link_gbps
    util = np.where(alive, total / np.where(cap > 0, cap, 1.0), 0.0)
    return {"routing": routing, "max_util": float(util.max(initial=0.0)),
            "serving_max_util": float(np.where(alive, r.link_gbps_load / np.where(cap > 0, cap, 1.0), 0.0).max(initial=0.0)),
            "unreachable_gbps": float(r.unreachable_gbps),
            "tiers": tier_stats(fabric, total, alive), "hottest": _hottest(fabric, total, alive, 10)}


def budget_inputs(cluster, fabric, placement: Optional[dict], *, reserved=(), time_limit=None, seed=None,
                  workers=None, placed: Optional[dict] = None) -> tuple:
    """What a link budget needs to carry the serving deployments beside the jobs: ``(demands, section)``,
    the demands of :func:`budget_demands` with the replicas placed by CP-SAT beside ``placement`` (or
    ``placed``, a :func:`place_serving` result) for :func:`topo.solve.linkbudget.budget`'s ``demands``,
    and a JSON-able section naming the deployments, their stated rates and serving bytes per second
    and the serving placement's status."""
    from topo.traffic.serving import serving_traffic
    train = _training(cluster, fabric, placement)
    res = placed if placed is not None else place_serving(cluster, fabric, train, time_limit=time_limit, seed=seed,
                                                          workers=workers, reserved=reserved)
    dem = budget_demands(cluster, fabric, res["training"], res["assignment"])
    st = serving_traffic(cluster, fabric, res["training"], replicas=res["assignment"])
    sd = st.demands
    dom = np.asarray(fabric.ep_domain)
    net = (dom[sd.src] != dom[sd.dst]) | (dom[sd.src] < 0)       # flows that leave their scale-up domain
    deps = [{"name": d.name, "requests_per_s": float(d.load.requests_per_s), "kv_routing": d.kv_routing,
             "bytes_per_s": float(sum(st.bytes_per_s[d.name].values())),
             "network_gbps": float(sd.rate_gbps[net & (sd.job == k)].sum()),
             "replicas": {role: int(np.asarray(res["assignment"][(d.name, role)]).shape[0]) for role, _ in _pools(d)}}
            for k, d in enumerate(cluster.file.serving.deployments)]
    return dem, {"deployments": deps, "placement": {"method": res.get("method", "cpsat"), "status": res["status"],
                                                    "objective": res["objective"], "bound": res["bound"]}}


def budget_demands(cluster, fabric, placement: dict, replicas: dict):
    """The demands a link budget carries with serving: the placed jobs' flows at line rate and the
    traffic patterns (as the budget's own default), plus every deployment's flows at its stated
    ``load.requests_per_s`` (its ``replicas``, e.g. :func:`place_serving`'s assignment) as background
    flows (job -1). For :func:`topo.solve.linkbudget.budget`'s ``demands``."""
    from topo.traffic.demand import MAX_UNIFORM_FLOWS, Demands, _endpoints, job_demands, pattern_demands
    from topo.traffic.serving import serving_traffic
    for i, tp in enumerate(cluster.file.traffic):
        n = _endpoints(fabric, tp.endpoints).size if tp.pattern == "uniform" else 0
        if n * (n - 1) > MAX_UNIFORM_FLOWS:
            raise SpecError([(f"traffic[{i}]", f"the link budget carries traffic patterns flow by flow, and a uniform "
                                               f"pattern over {n:,} endpoints is {n * (n - 1):,} flows (at most "
                                               f"{MAX_UNIFORM_FLOWS:,})")])
    parts = []
    if cluster.file.jobs:
        parts.append(job_demands(cluster, fabric, placement))
    if cluster.file.traffic:
        parts.append(pattern_demands(cluster, fabric))
    sd = serving_traffic(cluster, fabric, placement, replicas=replicas).demands
    parts.append(Demands(sd.src, sd.dst, sd.bytes, np.full(sd.n, -1, np.int32), sd.rate_gbps, (), ()))
    return Demands.concat(parts)
