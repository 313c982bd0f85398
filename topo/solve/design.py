"""Topology design search: family x tiers x planes x switch model, each sized by the link budget.

Owns the candidate space, the task that sizes and routes one candidate, and the Pareto front.

Candidates
----------
Every combination of a fabric family (``clos``, ``rail_optimized``, ``rail_only``), a tier count
(1, 2 or 3), a plane count (1 and every other count that divides the NICs' ports; rail-only fabrics
have one plane per rail, so only 1) and a switch model (the same model on every tier: the file's
own models, the whole catalog, or the names given; with ``mixed_tiers`` each tier's model on its
own, every combination leaf first, id ``.../leaf+spine[+super]``). With ``tapers`` every leaf
oversubscription cap (and on three tiers every spine cap) is a candidate of its own (id
``.../taper-leaf=R[,spine=R]``), carried as the candidate file's ``goals.max_oversubscription``,
so its budget is the cheapest design within the caps. A candidate is the cluster file with its
``fabric`` section replaced by ``{family, planes, tiers: [{switch}] x tiers}`` (``dual_homed``
and ``dual_homed_across`` kept; the tiers' oversubscription, bundles and the pod structure are
the budget's decisions, so the file's are not carried).

With ``scaleup`` (domain sizes) every candidate is also taken at each size (id
``.../scaleup-N``): its node types with accelerators get ``scaleup.size = N``, and the scale-up
fabric's cost and power are the file's own figures, ``node_types[i].scaleup.options`` (size,
``cost_usd_per_accelerator``, ``watts_per_accelerator``): topo has no public figures for a
scale-up fabric, so a size a node type with accelerators does not state is refused, naming that
field. The candidate's ``capex_usd``, ``network_kw`` and ``total_usd`` (its energy at the file's
price and horizon) include them, exactly accelerators x the stated figures (:func:`scaleup_cost`);
the scale-out fabric's own figures are kept as ``fabric_*``. The jobs' times are computed as for
every candidate, on the fabric built at that size: flows inside a larger domain run at scale-up
bandwidth. The figures are not added to rack power (a node's ``power_busy_kw`` is as the file
states it). A size at which the file is refused (racks that do not fill whole domains) makes its
candidates ``infeasible`` with the reason.

Each candidate is one task (:func:`size_candidate`): validated, built, sized by
:func:`topo.solve.linkbudget.budget` (CP-SAT, the file's survive goal, rack and network-rack power,
optics by length; the budget rebuilds its answer and the independent checker
:mod:`topo.solve.budget_check` confirms it, or the budget raises), then the placed jobs are routed
on the rebuilt fabric under the cluster's transport (:func:`topo.routing.engine.analyze`, the
transport's routing model and the run seed). Tasks share nothing, so they run on any executor
(the process pool or Dask cluster of :mod:`topo.study.executor`, passed in by the caller) and
their results are gathered in candidate order: the same seed gives the same answer however the
tasks are scheduled (a candidate the budget cannot finish within the time limit is reported as
``time_limit``, not infeasible; only that status depends on the machine's speed).

One-tier candidates (one switch per plane; per rail on a rail-only fabric, the usual home of a
rail-only design) have nothing to budget: they are built as stated and confirmed by the same
independent checker (routed at the target utilisation, ports, rack power, bill of materials).

Objectives (all minimised; headroom maximised)
----------------------------------------------
``total_usd`` (capex + energy over the horizon), ``network_kw``, ``job_time_s`` (the placed jobs'
summed collective time), ``p95_penalty`` (the 95th percentile of the jobs' time over ideal time;
with 20 jobs or fewer, the worst) and ``headroom`` (1 - the worst routed switch-link utilisation
after the file's stated failure, healthy when it states none). A candidate is dominated when
another is at least as good on every objective and better on one; the front is the candidates
no other dominates, and each dominated candidate names one front member that dominates it and
the objectives it loses on.

Pruning (proofs only)
---------------------
Two proofs set a candidate aside before sizing; nothing is pruned by sampling or by a heuristic,
and a candidate the budget cannot size is reported infeasible with its reason.

*By port count* (status ``pruned_by_port_count``): no design of it can attach its endpoints: a
leaf whose port is slower than the NIC port; adjacent tiers whose port speeds are not whole
multiples of each other (the builder has no link between them, the budget no table); one tier
when a plane's (a rail's, on rail-only) endpoint ports exceed radix x breakout; two tiers when
they exceed ``R1 x k1 x (R0 - u) x breakout``: a leaf links to every spine of its plane, so a
plane has at most the spine's ``R1`` ports x ``k1`` links per spine port leaves, and a leaf of
radix ``R0`` keeps at least ``u`` up ports (:func:`_min_up_ports`: one, or under a taper cap
``r`` the fewest ``u`` with ``(R0 - u) / u <= r``, the budget's own test; the budget uses every
port, down + up = radix), so at most ``R0 - u`` down ports.

*By bound* (status ``pruned_by_bound``): :func:`objective_bounds` gives, before sizing, a bound
on each objective that no design of the candidate can beat:

- ``total_usd``, ``capex_usd``, ``network_kw``: the endpoint links, each at the cheapest (and,
  separately, the least power-hungry) part of any reach class at its NIC port speed, plus the
  candidate's scale-up cost and power (exact: the same for every design of it) (the
  builder gives an endpoint link its NIC port's speed, whatever the switch); the leaves it must
  have at any budget, per plane (per rail on rail-only) ``ceil(ports / (down x breakout))`` and
  at least one, ``down`` the leaf's radix (one tier) or its radix less its fewest up ports ``u``
  (as for the port count: each leaf holds at most that many endpoint ports); with two or three
  tiers at least one switch per plane (rail) on each upper tier at that tier's model, and ``u``
  up ports per leaf, each of ``k0`` links (links per leaf port at the leaf-spine link speed),
  each link at the cheapest part at that speed; with three tiers one spine per plane with its
  fewest up ports likewise. Every count is at most the sized design's and every price at most
  the one the bill of materials charges, so the sum is at most its capex (and power); energy is
  network power x the file's energy price, as the budget counts it.
- ``job_time_s``: the placed jobs' summed ideal time (every endpoint at NIC goodput line rate,
  scale-up flows at the domain's bandwidth): it depends only on the node types (at the
  candidate's scale-up size), the placement and the transport's wire efficiency, which every
  candidate of that size shares, and no fabric beats it.
- ``p95_penalty``: 1 (a job's time over its ideal time); ``headroom``: 1 (at most).

Candidates are sized in order of their cost bound (ties broken by candidate id). A candidate
is pruned when a candidate sized before it is at least as good on every objective as the
candidate's bounds and better on one: the sized one is then at least as good as any design of
the pruned one and strictly better on that objective, so the pruned one could never be on the
front (or be the fastest, for ``max_slowdown``). Its reason names the sized candidate and the
objectives it is better on. The bounds are weak on job time, p95 penalty and headroom (the
ideal time, 1 and 1), so a candidate is pruned by bound only when a sized one reaches them:
typically a one-tier design running every job at its ideal time and cheaper than the others'
switches and links alone. On an executor, candidates further in that order are started while
earlier ones run, and a started candidate that the finished ones prune is discarded: which
candidates are pruned is decided in the order alone, so the result does not depend on how the
tasks are scheduled.
"""
from __future__ import annotations

import copy
import itertools
import math
import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from topo.core.errors import SolverError, SpecError, TimeLimitError
from topo.core.jsonable import to_jsonable

FAMILIES = ("clos", "rail_optimized", "rail_only")
TIERS = (1, 2, 3)
OBJECTIVES = ("total_usd", "network_kw", "job_time_s", "p95_penalty", "headroom")
_MAXIMISE = {"headroom"}
_REL = 1e-9


@dataclass(frozen=True)
class DesignResult:
    """The design search: every candidate with its status, the front and the chosen point."""
    cluster: str
    objective: str
    survive: str
    max_slowdown: Optional[float]
    candidates: tuple        # one dict per candidate, in candidate order
    front: tuple             # candidate ids on the Pareto front, in candidate order
    dominated: tuple         # {"id", "by", "worse_on"} per dominated candidate
    chosen: Optional[str]    # the front member best by ``objective``
    counts: dict             # candidates, sized, pruned by port count / bound, infeasible, too slow, front
    seconds: float
    version: int = 1

    def to_dict(self) -> dict:
        return to_jsonable(asdict(self))


# --- the candidate space -------------------------------------------------------------------
def _switch_models(cluster, switches) -> list:
    """The switch models searched: the file's own (``None``), the whole catalog, or the names given."""
    if switches is None:
        names = []
        for t in cluster.file.fabric.tiers:
            if isinstance(t.switch, str) and t.switch not in names:
                names.append(t.switch)
        if not names:
            raise SpecError([("switches", "the file's tiers name no catalog switch (inline or chassis switches are "
                                          "not searched); give catalog switch names or 'catalog'")])
        return sorted(names)
    if isinstance(switches, str):
        switches = [s.strip() for s in switches.split(",") if s.strip()]
    if list(switches) == ["catalog"]:
        return sorted(cluster.switches)
    unknown = [s for s in switches if s not in cluster.switches]
    if unknown:
        raise SpecError([("switches", f"not in the switch catalog: {', '.join(map(repr, unknown))} "
                                      f"(known: {', '.join(sorted(cluster.switches))})")])
    if not switches:
        raise SpecError([("switches", "name at least one switch model, or 'catalog'")])
    return sorted(set(switches))


def _families(families) -> list:
    if families is None:
        return list(FAMILIES)
    if isinstance(families, str):
        families = [s.strip() for s in families.split(",") if s.strip()]
    bad = [f for f in families if f not in FAMILIES]
    if bad or not families:
        raise SpecError([("families", f"expected a list of {', '.join(FAMILIES)}; found "
                                      f"{', '.join(map(repr, bad)) if bad else 'none'}")])
    return [f for f in FAMILIES if f in families]


def _plane_counts(cluster, family: str) -> list:
    """1, and every plane count above 1 that divides every node type's NIC ports."""
    if family == "rail_only":
        return [1]
    ports = [nt.nic_ports for nt in cluster.node_types.values()]
    top = min(ports) if ports else 1
    return [1] + [p for p in range(2, top + 1) if all(n % p == 0 for n in ports)]


def _tapers(cluster, tapers) -> list:
    """The oversubscription caps searched per tier (sorted, distinct), or [None] (the file's goal)."""
    if tapers is None:
        return [None]
    if isinstance(tapers, str):
        try:
            tapers = [float(x) for x in tapers.split(",") if x.strip()]
        except ValueError:
            raise SpecError([("tapers", f"expected numbers >= 1 like 1,2,4 (found {tapers!r})")])
    vals = list(tapers)
    if not vals or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 1
                       for v in vals):
        raise SpecError([("tapers", f"expected finite numbers >= 1, at least one (found {vals!r})")])
    if cluster.file.goals.max_oversubscription is not None:
        raise SpecError([("tapers", "the file states goals.max_oversubscription, which fixes the taper the search "
                                    "would choose; remove it to search tapers")])
    return sorted(set(float(v) for v in vals))


def _scaleups(cluster, scaleup) -> list:
    """The scale-up domain sizes searched (sorted, distinct), or [None] (the file's own sizes).

    Every node type with accelerators must state each size's cost and power in
    ``node_types[i].scaleup.options``: a size without them is refused, naming that field (topo
    has no figures of its own for a scale-up fabric)."""
    if scaleup is None:
        return [None]
    if isinstance(scaleup, str):
        try:
            scaleup = [int(x) for x in scaleup.split(",") if x.strip()]
        except ValueError:
            raise SpecError([("scaleup", f"expected scale-up domain sizes like 8,72 (found {scaleup!r})")]) from None
    sizes = list(scaleup) if isinstance(scaleup, (list, tuple)) else [scaleup]
    if not sizes or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in sizes):
        raise SpecError([("scaleup", f"expected whole numbers >= 1, at least one (found {sizes!r})")])
    sizes = sorted(set(sizes))
    errs = []
    for i, nt in enumerate(cluster.file.node_types):
        if not cluster.node_types[nt.name].accelerators:
            continue
        stated = {o.size for o in ((nt.scaleup.options or []) if nt.scaleup else [])}
        missing = [v for v in sizes if v not in stated]
        if missing:
            errs.append((f"node_types[{i}].scaleup.options",
                         f"no stated cost and power for a scale-up domain of {', '.join(map(str, missing))} "
                         f"(stated: {', '.join(map(str, sorted(stated))) or 'none'}); the design search takes a "
                         f"scale-up fabric's cost_usd_per_accelerator and watts_per_accelerator from the file only"))
    if errs:
        raise SpecError(errs)
    return sizes


def scaleup_cost(cluster, size: int) -> dict:
    """The scale-up fabric's capex (USD) and power (kW) at domain ``size``, exactly as the file states
    them: per node type with accelerators, its accelerators in the cluster x the option's figures."""
    usd = watts = 0.0
    parts = []
    for i, nt in enumerate(cluster.file.node_types):
        rn = cluster.node_types[nt.name]
        if not rn.accelerators:
            continue
        j, o = next((j, o) for j, o in enumerate(nt.scaleup.options) if o.size == size)
        n = sum(r.count * r.nodes.get(nt.name, 0) for r in cluster.racks) * rn.accelerators
        usd += n * o.cost_usd_per_accelerator
        watts += n * o.watts_per_accelerator
        parts.append({"node_type": nt.name, "accelerators": n, "stated_by": f"node_types[{i}].scaleup.options[{j}]",
                      "cost_usd_per_accelerator": o.cost_usd_per_accelerator,
                      "watts_per_accelerator": o.watts_per_accelerator})
    return {"size": size, "capex_usd": usd, "network_kw": watts / 1e3, "node_types": parts}


def _fmt_cap(v: float) -> str:
    return f"{v:g}"


def candidates(cluster, families=None, switches=None, tiers=TIERS, mixed_tiers: bool = False,
               tapers=None, scaleup=None) -> list:
    """Every candidate of the space, in a fixed order (family, tiers, planes, switch models, taper,
    scale-up size).

    ``scaleup``: domain sizes, each a candidate of its own (id ``.../scaleup-N``) whose node types
    with accelerators get that size, with its scale-up cost from the file (:func:`scaleup_cost`).

    ``mixed_tiers``: each tier's model chosen on its own among the searched models (leaf first;
    the models' product, so the same-model candidates are among them); else one model on every
    tier. ``tapers``: oversubscription caps; with two or more tiers every leaf cap (and, with
    three, every spine cap) is a candidate of its own, sized as the cheapest budget under it."""
    out = []
    models = _switch_models(cluster, switches)
    caps = _tapers(cluster, tapers)
    sizes = _scaleups(cluster, scaleup)
    costs = {v: scaleup_cost(cluster, v) for v in sizes if v is not None}
    for fam in _families(families):
        for n in tiers:
            combos = (list(itertools.product(models, repeat=n)) if mixed_tiers and n > 1
                      else [(sw,) * n for sw in models])
            taper = [None]
            if caps != [None] and n > 1:
                taper = [{"leaf": a} if n == 2 else {"leaf": a, "spine": b}
                         for a in caps for b in (caps if n == 3 else [None])]
            for p in _plane_counts(cluster, fam):
                for combo in combos:
                    sw = combo[0] if len(set(combo)) == 1 else "+".join(combo)
                    for t in taper:
                        cid = f"{fam}/{n}-tier/{p}-plane/{sw}"
                        cand = {"id": cid, "family": fam, "tiers": n, "planes": p, "switch": sw,
                                "switches": list(combo)}
                        if t is not None:
                            cand["id"] = cid + "/taper-" + ",".join(f"{k}={_fmt_cap(v)}" for k, v in t.items())
                            cand["max_oversubscription"] = t
                        for v in sizes:
                            if v is None:
                                out.append(cand)
                            else:
                                out.append({**cand, "id": f"{cand['id']}/scaleup-{v}", "scaleup": v,
                                            "scaleup_cost": copy.deepcopy(costs[v])})
    return out


def _tier_models(cand: dict) -> list:
    """The switch model of each tier of a candidate (leaf first)."""
    return list(cand.get("switches") or [cand["switch"]] * cand["tiers"])


def candidate_dict(file_dict: dict, cand: dict) -> dict:
    """The cluster file of a candidate: its fabric section replaced (dual homing kept); a taper
    candidate's caps as goals.max_oversubscription (so the budget, and optimize after it, keep them)."""
    d = copy.deepcopy(file_dict)
    old = d.get("fabric") or {}
    fab = {"family": cand["family"], "planes": cand["planes"],
           "tiers": [{"switch": m} for m in _tier_models(cand)]}
    if old.get("dual_homed"):
        fab["dual_homed"] = True
        if old.get("dual_homed_across") is not None:
            fab["dual_homed_across"] = old["dual_homed_across"]
    d["fabric"] = fab
    if cand.get("scaleup") is not None:
        # every node type with accelerators states options (candidates() refuses otherwise); hosts have no scaleup
        for nt in d.get("node_types") or []:
            if (nt.get("scaleup") or {}).get("options"):
                nt["scaleup"]["size"] = int(cand["scaleup"])
    if cand.get("max_oversubscription"):
        d.setdefault("goals", {})
        d["goals"] = {**(d["goals"] or {}), "max_oversubscription": dict(cand["max_oversubscription"])}
    return d


def _min_up_ports(cand: dict, tier: int, radix: int) -> int:
    """The fewest up ports a switch of ``tier`` (0 leaf, 1 spine) has in any design of the candidate
    with uplinks: one, or under a taper cap the fewest ``u`` with ``(radix - u) / u <= cap`` (the
    budget splits every port, down + up = radix, and keeps down / up within the cap by this test)."""
    cap = (cand.get("max_oversubscription") or {}).get("leaf" if tier == 0 else "spine")
    if cap is None:
        return 1
    return next(u for u in range(1, radix + 1) if (radix - u) / u <= cap + 1e-9)


def _tier_lanes(cluster, cand: dict) -> list:
    """Per switch-to-switch tier: (link Gb/s, links per lower-tier port, links per upper-tier port), or
    None where the two port speeds do not divide (the builder cannot join them)."""
    from topo.solve.linkbudget import _lanes
    sp = [cluster.switches[m] for m in _tier_models(cand)]
    return [_lanes(sp[t].port_gbps, sp[t + 1].port_gbps) for t in range(len(sp) - 1)]


def port_bound(cluster, fabric, cand: dict) -> Optional[str]:
    """Why no budget can attach the endpoints of this candidate (a proof by port count), or None."""
    models = _tier_models(cand)
    sw = cluster.switches[models[0]]
    up0 = (fabric.link_tier == 0) & ((np.arange(fabric.n_links) & 1) == 0)
    nic = float(fabric.link_gbps[up0].max(initial=0.0))
    if sw.port_gbps < nic:
        return f"its {sw.port_gbps:g}G ports are slower than the {nic:g}G NIC port"
    lanes = _tier_lanes(cluster, cand)
    for t, ln in enumerate(lanes):
        if ln is None:
            a, b = cluster.switches[models[t]], cluster.switches[models[t + 1]]
            return (f"tier {t + 1}'s {a.port_gbps:g}G and tier {t + 2}'s {b.port_gbps:g}G ports: neither speed is a whole "
                    f"multiple of the other, so no link joins them")
    if cand["tiers"] in (1, 2):
        g = _group_ports(cluster, fabric, cand)
        # the busiest plane holds at least its share (rounded up) of the endpoint ports
        per_plane = int(g.max(initial=0)) if cand["family"] == "rail_only" else -(-int(up0.sum()) // cand["planes"])
        breakout = max(int(sw.port_gbps // nic), 1)
        if cand["tiers"] == 1:
            cap = sw.radix * breakout
            if per_plane > cap:
                return (f"{per_plane:,} endpoint ports on a plane exceed one {sw.radix}-port switch's "
                        f"{sw.radix} ports x breakout {breakout} = {cap:,}")
            return None
        sp = cluster.switches[models[1]]
        leaves = sp.radix * lanes[0][2]     # every leaf has a link to every spine of its plane
        down = sw.radix - _min_up_ports(cand, 0, sw.radix)
        cap = leaves * down * breakout
        if per_plane > cap:
            return (f"{per_plane:,} endpoint ports on a plane exceed what two tiers attach: {leaves:,} leaves (one link "
                    f"to each spine) x {down} down ports x breakout {breakout} = {cap:,}")
    return None


def _group_ports(cluster, fabric, cand: dict) -> np.ndarray:
    """Endpoint ports per plane (per rail on rail-only: accelerator ports only, each on the rail of
    its local index, a lower bound on every rail's ports whatever rails hosts without accelerators
    take). NIC port k goes to plane k mod planes, and the plane counts divide every NIC's ports,
    so every plane has an equal share."""
    up0 = (fabric.link_tier == 0) & ((np.arange(fabric.n_links) & 1) == 0)
    if cand["family"] == "rail_only":
        acc = [nt.accelerators for nt in cluster.node_types.values()]
        rails = max(max(acc), 1)
        src = fabric.link_src[up0]
        acc_port = np.asarray(fabric.ep_is_accel, bool)[src]
        rail = np.asarray(fabric.ep_local, np.int64)[src[acc_port]] % rails
        return np.bincount(rail, minlength=rails).astype(np.int64)
    n_ports = int(up0.sum())
    return np.full(cand["planes"], n_ports // cand["planes"], np.int64)


def _cheapest_link(cluster, gbps: float) -> tuple[float, float]:
    """(USD, W) of the cheapest and of the least power-hungry part of any reach class for one link
    at ``gbps``, priced as the bill of materials prices it (part x ends x speed scale)."""
    from topo.model.catalog import REACH_CLASSES, optic_part, optic_scale
    lpo = cluster.file.costs.allow_lpo
    parts = [cluster.optics[optic_part(cluster.optics, r, lpo)] for r in REACH_CLASSES]
    k = optic_scale(gbps)
    return (min(p.ends * p.cost_usd * k for p in parts), min(p.ends * p.watts * k for p in parts))


def ideal_job_times(cluster, fabric, placement) -> float:
    """The placed jobs' summed ideal time (:func:`topo.traffic.demand.job_demands`): every endpoint
    at NIC goodput line rate, scale-up flows at their domain's bandwidth. Depends only on the node
    types, the placement and the wire efficiency, which every candidate shares."""
    if not placement or not cluster.file.jobs:
        return 0.0
    from topo.traffic.demand import job_demands
    return float(sum(job_demands(cluster, fabric, placement).job_time_s))


def _ideal_per_scaleup(cluster, fabric, placement, file_dict: dict, sizes: set) -> dict:
    """:func:`ideal_job_times` per scale-up size searched (``None``: the file's own): a larger domain
    carries more of a job's flows at scale-up bandwidth, so each size has its own ideal time. A
    size at which the file is refused (e.g. its racks do not fill whole domains) maps to that
    SpecError. Endpoints are numbered by node, so the placement holds at every size."""
    from topo.model.fabric import build
    from topo.model.spec import from_dict
    out = {}
    for v in sorted(sizes, key=lambda x: -1 if x is None else x):
        if v is None:
            out[v] = ideal_job_times(cluster, fabric, placement)
            continue
        d = candidate_dict(file_dict, {"family": "clos", "planes": 1, "tiers": 1, "switch": "", "scaleup": v})
        d["fabric"] = file_dict.get("fabric")   # only the scale-up size changes
        try:
            cv = from_dict(d, source=f"(design scaleup-{v})", base_dir=cluster.base_dir)
            out[v] = ideal_job_times(cv, build(cv), placement)
        except SpecError as e:
            out[v] = e
    return out


def objective_bounds(cluster, fabric, cand: dict, ideal_s: float) -> dict:
    """Bounds no design of ``cand`` can beat: lower bounds on ``total_usd``, ``capex_usd``,
    ``network_kw``, ``job_time_s`` and ``p95_penalty``, an upper bound on ``headroom`` (see the
    module docstring for the proof of each). ``fabric``: the cluster's fabric as given (its
    endpoint links are the candidate's: same ports at the same NIC speeds); ``ideal_s``:
    :func:`ideal_job_times`."""
    from topo.solve.linkbudget import _energy_usd_per_w
    models = _tier_models(cand)
    sw = cluster.switches[models[0]]
    up0 = (fabric.link_tier == 0) & ((np.arange(fabric.n_links) & 1) == 0)
    usd = watts = 0.0
    speeds, counts = np.unique(np.asarray(fabric.link_gbps)[up0], return_counts=True)
    for g, n in zip(speeds.tolist(), counts.tolist()):
        cu, cw = _cheapest_link(cluster, g)
        usd += n * cu
        watts += n * cw
    nic = float(speeds.max(initial=0.0))
    breakout = max(int(sw.port_gbps // nic), 1) if nic > 0 else 1
    ports = _group_ports(cluster, fabric, cand)
    u0 = _min_up_ports(cand, 0, sw.radix) if cand["tiers"] >= 2 else 0
    per_leaf = (sw.radix - u0) * breakout
    leaves = int(np.maximum(-(-ports // per_leaf), 1).sum())
    groups = int(ports.size)
    uppers = [cluster.switches[m] for m in models[1:]]   # at least one switch per plane (rail) per upper tier
    capex = usd + leaves * sw.cost_usd + groups * sum(u.cost_usd for u in uppers)
    w = watts + leaves * sw.power_w + groups * sum(u.power_w for u in uppers)
    uplinks = 0
    lanes = _tier_lanes(cluster, cand)
    if cand["tiers"] >= 2:
        # every leaf has u0 up ports of k links each (and, with three tiers, every spine plane has a
        # spine with its own up ports), each link at least the cheapest part at the link's speed
        g1, k0, _ = lanes[0]
        n1 = leaves * u0 * k0
        lu, lw = _cheapest_link(cluster, g1)
        capex += n1 * lu
        w += n1 * lw
        uplinks += n1
        if cand["tiers"] == 3:
            g2, k1, _ = lanes[1]
            n2 = groups * _min_up_ports(cand, 1, uppers[0].radix) * k1
            lu, lw = _cheapest_link(cluster, g2)
            capex += n2 * lu
            w += n2 * lw
            uplinks += n2
    su = cand.get("scaleup_cost")
    if su:   # exact: the file's stated figures x the accelerators, the same for every design of the candidate
        capex += su["capex_usd"]
        w += su["network_kw"] * 1e3
    kw = w / 1e3
    return {"total_usd": capex + kw * 1e3 * _energy_usd_per_w(cluster), "capex_usd": capex, "network_kw": kw,
            "job_time_s": ideal_s, "p95_penalty": 1.0, "headroom": 1.0,
            "switches": leaves + groups * len(uppers), "links": int(up0.sum()) + uplinks}


def bound_dominated(sized: list, bound: dict) -> Optional[tuple[dict, list]]:
    """The first sized candidate (in the order given) at least as good as ``bound`` on every
    objective and better on one, with the objectives it is better on; None when there is none."""
    for s in sized:
        if dominates(s, bound):
            return s, [k for k in OBJECTIVES if _better(_key(s, k), _key(bound, k))]
    return None


def _bound_reason(by: dict, better: list, bound: dict) -> str:
    fig = {"total_usd": lambda v: f"${v:,.0f}", "network_kw": lambda v: f"{v:,.2f} kW",
           "job_time_s": lambda v: f"{v:.4g} s", "p95_penalty": lambda v: f"{v:.3f}",
           "headroom": lambda v: f"{v:.3f}"}
    on = ", ".join(f"{k} {fig[k](by[k])} vs bound {fig[k](bound[k])}" for k in better)
    return f"by bound: {by['id']} (sized) is at least as good on every objective as this candidate's bounds; better on {on}"


# --- one candidate ---------------------------------------------------------------------------
def _add_scaleup(out: dict, cluster) -> dict:
    """A sized candidate with its scale-up fabric's stated cost and power added to ``capex_usd``,
    ``network_kw`` and ``total_usd`` (energy at the file's price and horizon, as the budget counts
    the network's); the fabric's own figures kept as ``fabric_*``. Unchanged without a scale-up size."""
    su = out.get("scaleup_cost")
    if not su or out.get("status") != "sized":
        return out
    from topo.solve.linkbudget import _energy_usd_per_w
    energy = su["network_kw"] * 1e3 * _energy_usd_per_w(cluster)
    su = {**su, "energy_usd": energy, "total_usd": su["capex_usd"] + energy}
    return {**out, "scaleup_cost": su, "fabric_total_usd": out["total_usd"], "fabric_capex_usd": out["capex_usd"],
            "fabric_network_kw": out["network_kw"], "total_usd": out["total_usd"] + su["total_usd"],
            "capex_usd": out["capex_usd"] + su["capex_usd"], "network_kw": out["network_kw"] + su["network_kw"]}


def size_candidate(task: dict) -> dict:
    """Size one candidate with the link budget and route its jobs (a self-contained task).

    ``task``: {"file": the cluster file dict, "base_dir", "cand", "placement", "objective",
    "survive", "seed", "time_limit"}. Returns the candidate dict with ``status`` ("sized" or
    "infeasible"), the reason or the objectives, and the budget's cluster file after."""
    from topo.model.fabric import build
    from topo.model.spec import from_dict
    from topo.solve import linkbudget as B
    cand = dict(task["cand"])
    t0 = time.perf_counter()
    if cand["tiers"] == 1:
        return _one_tier(task, cand, t0)
    try:
        c = from_dict(candidate_dict(task["file"], cand), source=f"(design {cand['id']})", base_dir=task["base_dir"])
        fab = build(c)
        r = B.budget(c, fab, placement=task["placement"], objective=task["objective"], survive=task["survive"],
                     seed=task["seed"], workers=1, time_limit=task["time_limit"], alternatives=False)
    except SpecError as e:
        return _not_sized(cand, e, t0)
    except TimeLimitError as e:   # any other SolverError is the budget's answer rejected: never hidden
        return _not_sized(cand, e, t0)
    if not r.check.get("ok"):  # budget() raises on a failed check; never return one unchecked
        raise SolverError(f"design candidate {cand['id']}: the independent check failed: {r.check.get('problems')}")
    ca = from_dict(r.cluster_after, source="(design)", base_dir=task["base_dir"])
    fa = build(ca)
    jobs = {}
    if task["placement"]:
        jobs = B._job_times(ca, fa, task["placement"], task["seed"], None)["jobs"]
    times = [t for t, _ in jobs.values()]
    pen = [t / i if i else 1.0 for t, i in jobs.values()]
    worst = [v for v in (r.headroom.get(k, {}).get("worst_util_after_failure") for k in ("leaf-spine", "spine-super"))
             if v is not None]
    if not worst:
        worst = [u.get("routed_after") or 0.0 for u in r.utilization.values()]
    out = {**cand, "status": "sized",
           "total_usd": float(r.cost["chosen"]["total_usd"]), "capex_usd": float(r.cost["chosen"]["capex_usd"]),
           "network_kw": float(r.cost["chosen"]["network_kw"]),
           "job_time_s": float(sum(times)) if times else 0.0,
           "p95_penalty": float(np.quantile(np.asarray(pen), 0.95, method="higher")) if pen else 1.0,
           "headroom": float(1.0 - max(worst, default=0.0)) + 0.0,
           "job_times_s": {k: float(t) for k, (t, _) in sorted(jobs.items())},
           "switches_per_tier": [t["switches"] for t in r.tiers],
           "oversubscription": [t["oversubscription"] for t in r.tiers[:-1]],
           "check": {"ok": bool(r.check["ok"]), "scenarios": list(r.check.get("scenarios", [])),
                     "switch_counts": list(r.check.get("switch_counts", []))},
           "budget_status": r.solver["status"],
           "cluster_after": r.cluster_after, "seconds": time.perf_counter() - t0}
    if "cross_rail" in r.solver:
        out["cross_rail"] = r.solver["cross_rail"]
    return _add_scaleup(out, c)


def _not_sized(cand: dict, e: Exception, t0: float) -> dict:
    """A candidate the budget did not size: infeasible (a proof from the budget or the builder),
    or not sized within the time limit (status ``time_limit``: says nothing about the candidate)."""
    errs = getattr(e, "errors", None)
    why = "; ".join(f"{p}: {m}" for p, m in errs[:2]) if errs else str(e).strip().splitlines()[-1]
    status = "time_limit" if isinstance(e, TimeLimitError) else "infeasible"
    return {**cand, "status": status, "reason": why, "seconds": time.perf_counter() - t0}


def _one_tier(task: dict, cand: dict, t0: float) -> dict:
    """A one-tier candidate (one switch per plane, or per rail on a rail-only fabric): nothing to
    budget, so it is built as stated and confirmed by the independent checker (routed at the
    target, ports, rack power, the bill of materials)."""
    from topo.model.fabric import build
    from topo.model.spec import from_dict, wire_efficiency
    from topo.routing.describe import bill_of_materials
    from topo.solve import budget_check
    from topo.solve import linkbudget as B
    survive = task["survive"]
    try:
        d = candidate_dict(task["file"], cand)
        c = from_dict(d, source=f"(design {cand['id']})", base_dir=task["base_dir"])
        if survive == "plane" and (cand["family"] == "rail_only" or cand["planes"] < 2):
            raise SpecError([("goals.survive", "no design of one plane (or one plane per rail) survives the loss "
                                               "of a plane")])
        fab = build(c)
        demands = B._demands(c, fab, task["placement"])
        chk = budget_check.check(c, demands, survive=survive, target_util=c.file.goals.target_utilization,
                                 efficiency=wire_efficiency(c))
        if not chk["ok"]:
            raise SpecError([("fabric", "the independent check rejects it: " + "; ".join(chk["problems"][:2]))])
    except SpecError as e:
        return _not_sized(cand, e, t0)
    money = B._bom_money(c, bill_of_materials(fab, c))
    jobs = B._job_times(c, fab, task["placement"], task["seed"], None)["jobs"] if task["placement"] else {}
    times = [t for t, _ in jobs.values()]
    pen = [t / i if i else 1.0 for t, i in jobs.values()]
    return _add_scaleup({**cand, "status": "sized", "total_usd": float(money["total_usd"]), "capex_usd": float(money["capex_usd"]),
            "network_kw": float(money["network_kw"]), "job_time_s": float(sum(times)) if times else 0.0,
            "p95_penalty": float(np.quantile(np.asarray(pen), 0.95, method="higher")) if pen else 1.0,
            "headroom": 1.0,   # no switch-to-switch link: no failure the checker can survive loads one
            "job_times_s": {k: float(t) for k, (t, _) in sorted(jobs.items())},
            "switches_per_tier": [int(x) for x in fab.tier_switch_counts], "oversubscription": [],
            "check": {"ok": True, "scenarios": list(chk.get("scenarios", [])),
                      "switch_counts": list(chk.get("switch_counts", []))},
            "budget_status": "one tier: built as stated", "cluster_after": d, "seconds": time.perf_counter() - t0}, c)


# --- the front ---------------------------------------------------------------------------------
def _key(c: dict, k: str) -> float:
    v = c[k]
    return -v if k in _MAXIMISE else v


def _better(a: float, b: float) -> bool:
    return a < b - _REL * max(abs(a), abs(b), 1.0)


def dominates(a: dict, b: dict) -> bool:
    """a at least as good as b on every objective and better on one (relative tolerance 1e-9)."""
    return (all(not _better(_key(b, k), _key(a, k)) for k in OBJECTIVES)
            and any(_better(_key(a, k), _key(b, k)) for k in OBJECTIVES))


def pareto(rows: list) -> tuple[list, list]:
    """(front ids, dominated rows) of sized candidates, each dominated row naming the first front
    member (in candidate order) that dominates it and the objectives it loses on."""
    front = [a for a in rows if not any(dominates(b, a) for b in rows if b is not a)]
    lost = []
    for a in rows:
        if any(a is f for f in front):
            continue
        by = next(f for f in front if dominates(f, a))
        lost.append({"id": a["id"], "by": by["id"],
                     "worse_on": [k for k in OBJECTIVES if _better(_key(by, k), _key(a, k))]})
    return [f["id"] for f in front], lost


def _choose(front_rows: list, objective: str) -> Optional[str]:
    if not front_rows:
        return None
    if objective == "cost":
        score = [r["total_usd"] for r in front_rows]
    elif objective == "power":
        score = [r["network_kw"] for r in front_rows]
    else:
        c0 = min(r["total_usd"] for r in front_rows) or 1.0
        p0 = min(r["network_kw"] for r in front_rows) or 1.0
        score = [(r["total_usd"] / c0 + r["network_kw"] / p0) / 2 for r in front_rows]
    i = min(range(len(front_rows)), key=lambda j: (score[j], j))   # ties: candidate order
    return front_rows[i]["id"]


def _run_in_order(order: list, tasks: dict, bounds: dict, results: list, executor, lookahead: int) -> None:
    """Size the candidates in ``order``, each pruned (when ``bounds`` has it) if a candidate sized
    before it in that order dominates its bounds. The decision for each candidate depends only on
    the candidates before it, so the outcome is the same on any executor: with one, up to
    ``lookahead`` later candidates not yet pruned are started while the earliest runs, and a
    started candidate pruned once the earlier ones finish is discarded (its result unused)."""
    sized: list = []
    futs: dict = {}
    for p, i in enumerate(order):
        hit = bound_dominated(sized, bounds[i]) if i in bounds else None
        if hit is not None:
            fu = futs.pop(i, None)
            if fu is not None:
                fu.cancel()
            results[i] = {**tasks[i]["cand"], "status": "pruned_by_bound", "by": hit[0]["id"],
                          "reason": _bound_reason(hit[0], hit[1], bounds[i])}
            continue
        if executor is None:
            r = size_candidate(tasks[i])
        else:
            for j in order[p:]:
                if len(futs) >= max(lookahead, 1) and j != i:
                    break
                if j not in futs and (j not in bounds or bound_dominated(sized, bounds[j]) is None):
                    futs[j] = executor.submit(size_candidate, tasks[j])
            r = futs.pop(i).result()
        results[i] = r
        if r["status"] == "sized":
            sized.append(r)


# --- the search -------------------------------------------------------------------------------
def design(cluster, *, families=None, switches=None, tiers=TIERS, objective: Optional[str] = None,
           max_slowdown: Optional[float] = None, survive: Optional[str] = None, seed: Optional[int] = None,
           time_limit: Optional[float] = None, placement=None, executor=None, prune: bool = True,
           lookahead: Optional[int] = None, mixed_tiers: bool = False, tapers=None, scaleup=None) -> DesignResult:
    """Search fabric families x tiers x planes x switch models for the cluster's jobs.

    Parameters
    ----------
    cluster : Cluster (topo.load)
    families : list (or comma-separated string) of ``clos``, ``rail_optimized``, ``rail_only``
        (default: all three)
    switches : None (the file's own switch models), ``"catalog"`` (every catalog switch) or names
    tiers : tier counts searched (default 1, 2 and 3)
    mixed_tiers : choose each tier's switch model on its own among ``switches`` (every
        combination, leaf first); default one model on every tier
    tapers : oversubscription caps (numbers >= 1, or a comma-separated string): with two or three
        tiers, each leaf cap (and spine cap) is a candidate of its own, sized as the cheapest budget
        within it; refused when the file states goals.max_oversubscription (default: none, the
        budget's cheapest taper)
    objective : the budget's objective per candidate and the front point chosen: ``cost``,
        ``power`` or ``balanced`` (default goals.objective)
    max_slowdown : candidates whose summed job time exceeds this multiple of the fastest sized
        candidate's are set aside as too slow (default: none set aside)
    survive : the failure every candidate must survive (default goals.survive)
    placement : job -> endpoint ids (default: the in-order placement of the jobs that fit on the
        fabric as given; endpoints are numbered by node, so the same on every candidate)
    executor : a ``concurrent.futures.Executor`` to run the candidates on (default: this
        process, one after another); results are gathered in candidate order
    prune : set aside candidates whose bounds a sized candidate dominates (default True; the
        front is the same either way, see the module docstring)
    lookahead : on an executor, candidates in flight at once (default: the executor's worker
        count, else 4); never changes the result
    scaleup : scale-up domain sizes (ints, or a comma-separated string): each a candidate of its
        own, its node types with accelerators at that size and its scale-up fabric's cost and
        power, as ``node_types[i].scaleup.options`` states them, added to ``capex_usd``,
        ``total_usd`` and ``network_kw``; a size without stated figures is refused naming that
        field (default: none, each node type's own size and no scale-up cost)

    Raises SpecError for bad parameters (paths name them: ``families``, ``switches``,
    ``objective``, ``max_slowdown``, ``tiers``, ``tapers``, ``scaleup``, ``node_types[i].scaleup.options``).
    """
    from topo.model.fabric import build
    from topo.model.spec import run_settings
    from topo.traffic.demand import fit_in_order
    t0 = time.perf_counter()
    g = cluster.file.goals
    objective = objective or g.objective
    if objective not in ("cost", "power", "balanced"):
        raise SpecError([("objective", f"expected cost, power or balanced (found {objective!r})")])
    if max_slowdown is not None and not (isinstance(max_slowdown, (int, float)) and math.isfinite(max_slowdown)
                                         and max_slowdown >= 1.0):
        raise SpecError([("max_slowdown", f"must be a finite number >= 1 (found {max_slowdown!r})")])
    tiers = tuple(tiers)
    if not tiers or any(t not in TIERS for t in tiers):
        raise SpecError([("tiers", f"expected tier counts among {list(TIERS)} (found {list(tiers)})")])
    survive = survive or g.survive
    rs = run_settings(cluster, seed=seed, time_limit=time_limit)
    if lookahead is None:
        lookahead = int(getattr(executor, "_max_workers", 0) or 4)
    fabric = build(cluster)
    if placement is None and cluster.file.jobs:
        placement, _ = fit_in_order(cluster, fabric)
    file_dict = cluster.file.model_dump(mode="json")
    cands = candidates(cluster, families, switches, tiers, mixed_tiers=bool(mixed_tiers), tapers=tapers,
                       scaleup=scaleup)
    results: list = [None] * len(cands)
    tasks = {}
    ideal = _ideal_per_scaleup(cluster, fabric, placement, file_dict, {c.get("scaleup") for c in cands})
    bounds = {}
    for i, cand in enumerate(cands):
        ideal_s = ideal[cand.get("scaleup")]
        if isinstance(ideal_s, SpecError):   # the file at this scale-up size is refused: no design of it exists
            results[i] = _not_sized(cand, ideal_s, time.perf_counter())
            continue
        why = port_bound(cluster, fabric, cand)
        if why is not None:
            results[i] = {**cand, "status": "pruned_by_port_count", "reason": f"by port count: {why}"}
            continue
        bounds[i] = objective_bounds(cluster, fabric, cand, ideal_s)
        tasks[i] = {"file": file_dict, "base_dir": cluster.base_dir, "cand": cand, "placement": placement,
                    "objective": objective, "survive": survive, "seed": rs.seed, "time_limit": rs.time_limit}
    # cheap bounds first (ties: candidate id); without pruning, candidate order
    order = sorted(tasks, key=lambda i: (bounds[i]["total_usd"], cands[i]["id"])) if prune else sorted(tasks)
    _run_in_order(order, tasks, bounds if prune else {}, results, executor, lookahead)
    for i, b in bounds.items():
        results[i]["bound"] = {k: b[k] for k in ("total_usd", "capex_usd", "network_kw", "job_time_s",
                                                 "p95_penalty", "headroom")}
    sized = [r for r in results if r["status"] == "sized"]
    if max_slowdown is not None and sized and cluster.file.jobs:
        fastest = min(r["job_time_s"] for r in sized)
        for r in sized:
            if fastest > 0 and r["job_time_s"] > max_slowdown * fastest * (1 + _REL):
                r["status"] = "too_slow"
                r["reason"] = (f"summed job time {r['job_time_s']:.4g} s is {r['job_time_s'] / fastest:.3f}x the "
                               f"fastest candidate's, above max_slowdown {max_slowdown:g}")
        sized = [r for r in sized if r["status"] == "sized"]
    front, lost = pareto(sized)
    on = set(front)
    for r in results:
        r["on_front"] = r["id"] in on
    chosen = _choose([r for r in sized if r["id"] in on], objective)
    counts = {"candidates": len(cands), "sized": sum(r["status"] in ("sized", "too_slow") for r in results),
              "pruned_by_port_count": sum(r["status"] == "pruned_by_port_count" for r in results),
              "pruned_by_bound": sum(r["status"] == "pruned_by_bound" for r in results),
              "infeasible": sum(r["status"] == "infeasible" for r in results),
              "time_limit": sum(r["status"] == "time_limit" for r in results),
              "too_slow": sum(r["status"] == "too_slow" for r in results), "front": len(front),
              "dominated": len(lost)}
    return DesignResult(cluster=cluster.name, objective=objective, survive=survive, max_slowdown=max_slowdown,
                        candidates=tuple(results), front=tuple(front), dominated=tuple(lost), chosen=chosen,
                        counts=counts, seconds=time.perf_counter() - t0)
