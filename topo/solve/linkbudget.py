"""Link budgets: uplinks, spine counts, oversubscription, port speeds and optics, chosen exactly.

Owns the link-budget model of a layered Clos (2 or 3 tiers; ``clos``,
``rail_optimized``, ``rail_only`` and ``fat_tree`` families, any number of planes): the
decisions per tier, the loads they must carry, their cost and power, and the
model that chooses them (:func:`solve_cp`: every shape evaluated, or CP-SAT on tables of more
than ``EXHAUSTIVE_MAX_SHAPES`` shapes). It never routes through the kernels and never
re-checks its own answer: :mod:`topo.solve.budget_check` (which shares no code with
this module) rebuilds the chosen fabric, routes the traffic through
:mod:`topo.routing.engine` and confirms it before a :class:`BudgetResult` is returned.

Decisions (per tier; one switch model per tier, planes identical)
------------------------------------------------------------------
* leaf: down ports ``d0`` (endpoint ports ``E = d0 x breakout``) and uplinks
  ``u0 = R0 - d0``; the fabric builder uses every port, so fewer uplinks mean
  more endpoints per leaf and fewer leaves.
* 2 tiers: the leaf-spine bundle ``b1`` (parallel links per leaf-spine pair);
  spines per plane ``u0 / b1``.
* 3 tiers: the leaf-spine bundle ``b1`` (the file's, else every divisor of the
  leaf uplinks), spine down ports ``d1`` (leaves per pod ``d1 // b1``) and
  uplinks ``u1 = R1 - d1``; the spine-super bundle
  ``b2``; super-spines per plane ``spines_per_pod x u1 / b2``.
* switch model per tier: the file's (``switch_choice="fixed"``) or any catalog
  switch (``"catalog"``); port speed and breakout follow from the model.
* optic or cable per link: from its length (floor geometry) and reach class,
  LPO in place of DSP optics up to its reach where ``costs.allow_lpo``.

Loads (exact for fluid ECMP on a healthy Clos)
----------------------------------------------
Flows between different scale-up domains are split evenly over the planes (a
rail-optimized fabric keeps its rails in every plane). On a rail-only fabric (one
plane per rail) a flow between rails first crosses its source's scale-up domain
to the domain's lowest-numbered member on the destination's rail (the routing
engine's proxy), which sends it on that rail; traffic with no such member has no
path and is refused;
the traffic leaving (entering) a leaf spreads evenly over its ``u0`` uplinks,
and the traffic leaving (entering) a pod of a plane over its
``spines_per_pod x u1`` spine uplinks. So the peak per-link load of tier 1 is
``T1(E) / u0`` and of tier 2 ``T2(E, Lp) / (spines_per_pod x u1)``, where T1
and T2 are the largest leaf and pod totals for that grouping of endpoints
(wire load: goodput rate / wire efficiency). Endpoint links (tier 0) are not a
decision and are not constrained.

Failures (bounds for path-count ECMP, the routing engine's ``fluid`` model)
---------------------------------------------------------------------------
Survivors must carry the load at or under 100%. Per-link load after a failure
is at most the healthy load times: ``link``: tier 1 max(u0/(u0-1),
SU/(SU-1)), tier 2 max(SU/(SU-1), u0/(u0-1)) with SU = spines_per_pod x u1;
``switch`` (any spine or super-spine): tier 1 max(u0/(u0-b1), SU/(SU-b2)),
tier 2 max(spines_per_pod/(spines_per_pod-1), SU/(SU-b2)). Every shortest path
carries the same share, so a spine that loses uplinks (even all of them, when
u1 = b2) gets less of its leaves' traffic and the pod's remaining SU-1 (SU-b2)
uplinks share it evenly: no spine needs an uplink of its own to spare; ``plane``: the
NIC ports on the lost plane are gone, so endpoints inject at most (P-1)/P of
their line rate and the surviving planes carry the same per-link load as
before (checked by routing the scaled traffic). A leaf failure cuts its
endpoints off and is not survivable by any budget.

Target utilisation: switch links at or under the target in normal operation.
Traffic offered at NIC line rate can load a tier beyond the target even when
it is non-blocking; no budget can do better there (oversubscription >= 1), so
such a tier may run as loaded as its non-blocking grouping (reported as its
effective target) and is kept non-blocking wherever the traffic needs it.

Requirements (``requirements:`` in the cluster file, ``--min-bisection``, ``--scenario``)
------------------------------------------------------------------------------------
A bisection floor per accelerator is one more CP row: a candidate's bisection is
topo.describe's (the smallest of the injection, the leaf uplinks when a plane has several
leaves and the spine uplinks when it has several pods, halved), a constant per candidate.
Scenarios are carried each alone (a tier's load is the largest of theirs): the job mix (the
demands, times its growth) through the flows above; ``uniform`` and ``permutation`` at r Gb/s
per endpoint from port counts, never from flows: a group (leaf or pod) of n of a plane's N
ports sends r/P x n(N-n)/(N-1) out of it under uniform all-to-all, and at most r/P x
min(n, N-n) under any permutation (only N-n destinations lie outside; a permutation reaches
it). Both hold for endpoints with one port on every plane and no dual homing; other fabrics
are refused. Without a scenario list the demands are carried as before.

Cost: switch and optic prices (capex) plus energy over ``costs.horizon_years``
at ``costs.electricity_usd_per_kwh`` times ``costs.pue``. Objectives: ``cost``
(capex + energy), ``power`` (network kW) or ``balanced`` (the mean of both,
each relative to the design as given).
"""
from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

import numpy as np

from topo.core.errors import SolverError, SpecError, TimeLimitError
from topo.model.fabric import _rank_within
from topo.core.jsonable import to_jsonable
from topo.model.catalog import REACH_CLASSES as _REACH

OBJECTIVES = ("cost", "power", "balanced")
SURVIVE = ("none", "link", "switch", "plane")
SWITCH_CHOICES = ("fixed", "catalog")
HOURS_PER_YEAR = 8766.0
_INF = 1 << 60


# The rules that restrict the budget's search below what the cluster file can state; "optimal"
# is claimed for the designs these rules leave (README, `topo budget`; the plan's solver section).
SPACE_RULES = (
    "every switch port is used and no tier is under-subscribed: a leaf or spine splits its radix "
    "down + up = radix with down >= up. The file can also state ratios whose exact split leaves "
    "ports idle (3:1 on 10 ports is 6 down / 2 up) or has fewer down than up ports; they are not "
    "searched, because the candidates per tier would grow from the radix to about 0.3 x radix^2 "
    "(squared again over two tiers) and a CP model of that size is not solved in seconds at radix 128",
    "the pod structure the file states (fabric.leaves_per_pod or pods, spines_per_pod, super_spines, "
    "planes, dual_homed) is kept; unstated, leaves per pod are the spine's down ports over the "
    "leaf-spine bundle, as the builder derives them",
    "3 tiers: the leaf-spine bundle is the file's (fabric.tiers[0].bundle, or what fabric.spines_per_pod "
    "implies); unstated, every bundle dividing the leaf uplinks is searched",
    "the switch model per tier is the file's (--switch-choice fixed) or any catalog switch (catalog)",
    "failure loads are the fluid-ECMP bounds of the model (topo.linkbudget, Failures), not routed "
    "per candidate: a pod needs two spine uplinks for --survive link, a second spine and a leaf "
    "uplink to another spine for --survive switch; the chosen design is then routed under the "
    "failure by the independent check",
)


# --- results ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BudgetResult:
    """A checked link budget. Every field is JSON-able (see :meth:`to_dict`)."""
    cluster: str
    family: str
    objective: str
    survive: str
    target_utilization: float
    switch_choice: str
    tiers: tuple                 # per switch tier: decisions and counts
    bill_of_materials: dict      # same shape as topo.describe.bill_of_materials, of the rebuilt fabric
    network_power: dict          # per rack and per network position, against limits
    cost: dict                   # capex, energy, total: chosen, as given, non-blocking
    utilization: dict            # per tier: before (as given) and after (chosen), model and routed
    headroom: dict               # per tier under the stated failure
    solver: dict                 # status, objective, bound, gap, seconds, candidates
    alternatives: dict           # objective name -> cost/power of its optimum
    check: dict                  # what the independent checker confirmed
    cluster_after: dict          # the cluster file with the chosen tiers
    version: int = 1
    transport_check: dict = field(default_factory=dict)  # see budget_for_transport (empty when not run)
    # jobs of the file the placement leaves out (topo.traffic.unplaced_jobs); the budget carries
    # the placed jobs' traffic only
    unplaced: dict = field(default_factory=dict)
    # the design requirements: one row per requirement (required, achieved, margin, met) and the
    # bisection of the chosen design, the design as given and the non-blocking one
    requirements: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = to_jsonable(asdict(self))
        if not d["unplaced"]:
            del d["unplaced"]  # a queue that fits: the layout plans and budget files always had
        if not d["requirements"].get("rows"):
            del d["requirements"]  # nothing stated: the layout of budgets without requirements
        return d


# --- inputs --------------------------------------------------------------------------------
def _options(cluster, objective, survive, target_util, time_limit, seed, workers, switch_choice,
             max_oversubscription):
    g = cluster.file.goals
    errs = []
    if objective not in OBJECTIVES:
        errs.append(("objective", f"unknown objective {objective!r}; expected one of {list(OBJECTIVES)}"))
    survive = g.survive if survive is None else survive
    if survive not in SURVIVE:
        errs.append(("survive", f"unknown failure {survive!r}; expected one of {list(SURVIVE)}"))
    if target_util is None:
        target_util, where = g.target_utilization, "goals.target_utilization"
    else:
        where = "--target-util"
    try:
        target_util = float(target_util)
    except (TypeError, ValueError):
        errs.append((where, f"expected a number in (0, 1], found {target_util!r}"))
        target_util = 0.0
    if not (0.0 < target_util <= 1.0) and not any(p == where for p, _ in errs):
        errs.append((where, f"target utilisation must be in (0, 1], found {target_util:g}"))
    from topo.model.spec import run_settings
    try:
        seed, workers, time_limit = run_settings(cluster, seed, workers, time_limit)
    except SpecError as e:
        errs.extend(e.errors)
    if switch_choice not in SWITCH_CHOICES:
        errs.append(("switch_choice", f"expected one of {list(SWITCH_CHOICES)}, found {switch_choice!r}"))
    caps = None
    try:
        caps = _parse_caps(cluster, max_oversubscription)
    except SpecError as e:
        errs += list(e.errors)
    if errs:
        raise SpecError(errs)
    return survive, target_util, float(time_limit), int(seed), int(workers), caps


def _parse_caps(cluster, max_oversubscription):
    """(where, caps as stated): the option's caps (a number, a mapping tier -> number or the
    CLI's ``leaf=1,spine=3``), else goals.max_oversubscription's; None when neither is given."""
    from topo.model.spec import oversubscription_caps
    if max_oversubscription is None:
        v, where = cluster.file.goals.max_oversubscription, "goals.max_oversubscription"
    else:
        v, where = max_oversubscription, "--max-oversubscription"
    if v is None:
        return None
    try:
        return where, oversubscription_caps(v)
    except ValueError as e:
        raise SpecError([(where, str(e))])


def _tier_caps(caps, fabric) -> tuple:
    """(leaf cap, spine cap) for the fabric's tiers with uplinks (None: uncapped); a spine cap on a
    2-tier fabric is refused: its spine is the top tier and has no uplinks."""
    if caps is None:
        return None, None
    where, c = caps
    if not isinstance(c, dict):
        return c, (c if fabric.n_tiers == 3 else None)
    if "spine" in c and fabric.n_tiers != 3:
        raise SpecError([(where, f"spine={c['spine']:g}: on a {fabric.n_tiers}-tier fabric the spine is the top tier "
                                 f"and has no uplinks, so it has no oversubscription to cap (cap leaf only)")])
    return c.get("leaf"), c.get("spine")


def _caps_rule(caps, fabric) -> Optional[str]:
    """The solver section's statement of the caps (None without caps)."""
    if caps is None:
        return None
    c0, c1 = _tier_caps(caps, fabric)
    names = ["leaf"] + (["spine"] if fabric.n_tiers == 3 else [])
    shown = ", ".join(f"{n} <= {c:g}" if c is not None else f"{n} uncapped" for n, c in zip(names, (c0, c1)))
    return (f"oversubscription caps ({caps[0]}): {shown}; every candidate whose tier ratio (down / up ports) "
            f"exceeds its tier's cap is excluded")


# --- design requirements (requirements: in the cluster file; --min-bisection, --scenario) ----------
def parse_scenario(text: str) -> dict:
    """The CLI's form of one scenario: ``uniform=GBPS``, ``permutation=GBPS``, ``jobs`` or
    ``jobs=GROWTH``; returns the cluster file's mapping (validated later as a spec.Scenario).
    Raises ValueError."""
    kind, eq, val = str(text).partition("=")
    kind = kind.strip()
    if kind not in ("uniform", "permutation", "jobs"):
        raise ValueError(f"unknown scenario {kind!r}; expected uniform=GBPS, permutation=GBPS, jobs or jobs=GROWTH")
    if kind == "jobs":
        return {"kind": "jobs"} if not eq else {"kind": "jobs", "growth": val.strip()}
    if not eq:
        raise ValueError(f"{kind} needs the rate each endpoint sends, e.g. {kind}=100 (Gb/s)")
    return {"kind": kind, "gbps_per_endpoint": val.strip()}


def _requirements(cluster, min_bisection, scenarios) -> dict:
    """The design requirements in force: the options' where given (``min_bisection`` Gb/s per
    accelerator; ``scenarios`` a list of spec.Scenario mappings or the CLI's strings), else the
    file's ``requirements``. Returns {"floor": (where, Gb/s) or None, "scenarios": None or a list
    of {kind, gbps, growth, where, label}}; SpecError names the field at fault."""
    from pydantic import ValidationError
    from topo.model.spec import Scenario
    req = cluster.file.requirements
    errs = []
    floor = None
    if min_bisection is None:
        if req.min_bisection_gbps_per_accelerator is not None:
            floor = ("requirements.min_bisection_gbps_per_accelerator", float(req.min_bisection_gbps_per_accelerator))
    else:
        try:
            v = float(min_bisection)
        except (TypeError, ValueError):
            v = float("nan")
        if not (math.isfinite(v) and 0 < v <= 1e6):
            errs.append(("min_bisection", f"expected Gb/s per accelerator in (0, 1e6], found {min_bisection!r}"))
        else:
            floor = ("min_bisection", v)
    out = None
    if scenarios is None:
        if req.scenarios is not None:
            out = [(f"requirements.scenarios[{i}]", sc) for i, sc in enumerate(req.scenarios)]
    else:
        out = []
        for i, x in enumerate(scenarios):
            where = f"scenarios[{i}]"
            try:
                m = parse_scenario(x) if isinstance(x, str) else x
                out.append((where, x if isinstance(x, Scenario) else Scenario.model_validate(m)))
            except ValueError as e:  # ValidationError is a ValueError
                msg = (e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e))
                errs.append((where, f"{msg} (found {str(x)[:80]!r})"))
        if not out and not errs:
            errs.append(("scenario", "at least one scenario"))
    if errs:
        raise SpecError(errs)
    if out is not None:
        rows = []
        for where, sc in out:
            label = (f"{sc.kind} {sc.gbps_per_endpoint:g} Gb/s per endpoint" if sc.kind != "jobs"
                     else "job mix" + (f" x {sc.growth:g}" if sc.growth != 1.0 else ""))
            rows.append({"kind": sc.kind, "gbps": sc.gbps_per_endpoint, "growth": sc.growth, "where": where,
                         "label": label})
        out = rows
    return {"floor": floor, "scenarios": out}


def _scaled(demands, factor: float):
    """Demands with every rate and byte count times ``factor`` (the job mix's growth)."""
    import dataclasses
    if factor == 1.0:
        return demands
    return dataclasses.replace(demands, rate_gbps=np.asarray(demands.rate_gbps) * factor,
                               bytes=np.asarray(demands.bytes) * factor)


def _family_check(cluster, fabric, survive):
    f = cluster.file.fabric
    errs = []
    if f.family not in ("clos", "rail_optimized", "rail_only", "fat_tree"):
        errs.append(("fabric.family", f"link budgets are computed for clos, rail_optimized, rail_only and fat_tree "
                                      f"fabrics, not {f.family!r}"))
    elif fabric.n_tiers < 2:
        errs.append(("fabric.tiers", "a one-tier fabric has no uplinks to budget"))
    elif any(t.line_cards is not None or t.ports_populated is not None for t in f.tiers):
        i = next(i for i, t in enumerate(f.tiers) if t.line_cards is not None or t.ports_populated is not None)
        errs.append((f"fabric.tiers[{i}].{'line_cards' if f.tiers[i].line_cards is not None else 'ports_populated'}",
                     "the link budget prices whole switches from the catalog; a chassis populated in part is not "
                     "in its model (budget the file with the chassis's full radix)"))
    elif any(t.ports is not None for t in f.tiers):
        i = next(i for i, t in enumerate(f.tiers) if t.ports is not None)
        errs.append((f"fabric.tiers[{i}].ports", "the link budget chooses each tier's port split itself, every port "
                                                 "at the switch's port speed; port groups with their own speeds are "
                                                 "not in its model (budget the file without them)"))
    elif f.dual_homed and f.planes > 1 and (f.dual_homed_across or "planes") == "planes":
        errs.append(("fabric.dual_homed_across", "the link budget's model puts a dual-homed NIC's two ports on "
                                                 "two leaves of one plane; across planes it does not reproduce the "
                                                 "built fabric (budget it without dual_homed: the ports go to the "
                                                 "same planes)"))
    if not errs and survive == "plane" and f.family == "rail_only":
        errs.append(("goals.survive", "no budget survives the loss of a plane on a rail-only fabric: each rail is "
                     "its own plane, and the endpoints of a lost rail are cut off (choose --survive none|link|switch)"))
    elif not errs and survive == "plane" and fabric.planes < 2:
        errs.append(("goals.survive", "no budget survives the loss of a plane: the fabric has one plane "
                     "(set fabric.planes >= 2 or choose --survive none|link|switch)"))
    if errs:
        raise SpecError(errs)


def _placement(cluster, fabric, placement) -> tuple[Optional[dict], dict]:
    """(placement, unplaced): the given placement and the jobs it leaves out, or the in-order
    placement of the jobs that fit (topo.traffic.fit_in_order) when none is given."""
    from topo.traffic.demand import fit_in_order, unplaced_jobs
    if not cluster.file.jobs:
        return placement, {}
    if placement is None:
        return fit_in_order(cluster, fabric)
    return placement, unplaced_jobs(cluster, fabric, placement)


def _demands(cluster, fabric, placement):
    from topo.traffic.demand import MAX_UNIFORM_FLOWS, Demands, _endpoints, job_demands, pattern_demands
    for i, tp in enumerate(cluster.file.traffic):
        n = _endpoints(fabric, tp.endpoints).size if tp.pattern == "uniform" else 0
        if n * (n - 1) > MAX_UNIFORM_FLOWS:
            # analysis routes it aggregated (fluid-type models); the budget's loads are per flow
            raise SpecError([(f"traffic[{i}]", f"the link budget carries traffic patterns flow by flow, and a uniform "
                                               f"pattern over {n:,} endpoints is {n * (n - 1):,} flows (at most "
                                               f"{MAX_UNIFORM_FLOWS:,}); size the budget for it as "
                                               "requirements.scenarios {kind: uniform} (which must fit on its own), "
                                               "and analyse it with the jobs by `topo analyze` under a fluid-type model")])
    parts = []
    if cluster.file.jobs:
        parts.append(job_demands(cluster, fabric, placement))
    if cluster.file.traffic:
        parts.append(pattern_demands(cluster, fabric))
    return Demands.concat(parts)


# --- the model's data: loads, geometry and prices per candidate grouping ----------------------
class _Data:
    """Per-port and per-flow arrays from which every candidate's loads and optics follow.

    The ports are grouped into leaves exactly as :func:`topo.model.fabric.build` groups them: per
    plane (read from the fabric's links), per lane (the rail on rail-optimized fabrics: an
    accelerator's local index; for hosts without accelerators port k on rail k, or
    ``node_types[].rails``) and per side (a dual-homed NIC's two ports), ``E`` consecutive ports
    of one (plane, lane, side) per leaf, and only leaves with ports exist. :meth:`verify`
    confirms the grouping reproduces the fabric as given, port by port.
    """

    def __init__(self, cluster, fabric, demands, efficiency, analytic=()):
        self.cluster = cluster
        self.family = cluster.file.fabric.family
        self.planes = fabric.planes
        self.fabric = fabric
        n_ep = fabric.n_endpoints
        cnt_k, first_k = self._group_ports(cluster, fabric)
        self.ep_x = np.asarray(fabric.node_x_m[:n_ep], np.float32)
        self.ep_y = np.asarray(fabric.node_y_m[:n_ep], np.float32)
        self.rack_row_max = int(fabric.rack_row.max()) if fabric.n_racks else 0
        # rack power (top-of-rack leaves count in their rack)
        self.rack_kw = np.bincount(fabric.server_rack, weights=fabric.server_busy_kw, minlength=fabric.n_racks)
        self.rack_limit = np.asarray(fabric.rack_limit_kw, np.float64)
        self.rack_hard = np.asarray(fabric.rack_hard, bool)
        self.ep_rack = fabric.server_rack[fabric.ep_server]
        # endpoints with several ports: their ports are contiguous (reduceat boundaries)
        self.multi_port = bool(self.port_ep.shape[0] and cnt_k.max() > 1)
        self.ep_first_port = first_k[cnt_k > 0]
        src, dst, rate = self._wire_flows(fabric, demands, efficiency)
        self.offered_gbps = float(rate.sum())
        self.n_flows = int(src.size)
        self._port_pairs(n_ep, cnt_k, src, dst, rate)
        self._leaf_cache: dict = {}
        self._pod_cache: dict = {}
        self._link_prices: dict = {}   # (reach class, Gb/s) key of _price -> (cost, watts) of one link
        # analytic scenarios (uniform, permutation): loads per leaf and pod from port counts
        # alone (the module's Requirements)
        self.analytic = list(analytic)
        if self.analytic:
            self._analytic_ok(n_ep)
        self.n_ep = n_ep

    def _group_ports(self, cluster, fabric):
        """Every endpoint port (its upward endpoint link): endpoint, plane, speed, index within its
        endpoint (``port_k``), rail, side, and sequence within its (plane, lane, side) group, as
        the builder groups ports into leaves. Returns (ports per endpoint, each one's first port)."""
        f = cluster.file
        n_ep = fabric.n_endpoints
        even = (np.arange(fabric.n_links) & 1) == 0
        up0 = np.flatnonzero(even & (fabric.link_tier == 0))
        self.up0 = up0
        self.port_ep = fabric.link_src[up0].astype(np.int64)
        self.port_plane = fabric.link_plane[up0].astype(np.int64)
        self.port_gbps = fabric.link_gbps[up0].astype(np.float64)
        self.nic_port = float(self.port_gbps.max())
        n_ports = self.port_ep.shape[0]
        ep_local = fabric.ep_local.astype(np.int64)
        acc = [nt.accelerators for nt in cluster.node_types.values()]
        self.n_rails = n_rails = max(max(acc), 1)
        # index of every port within its endpoint (the builder's port k)
        cnt_k = np.bincount(self.port_ep, minlength=n_ep)
        first_k = np.concatenate([[0], np.cumsum(cnt_k)[:-1]])
        order_k = np.argsort(self.port_ep, kind="stable")
        port_k = np.empty(n_ports, np.int64)
        port_k[order_k] = np.arange(n_ports) - first_k[self.port_ep[order_k]]
        self.port_k = port_k
        dual = bool(f.fabric.dual_homed)
        self.dual = dual
        if self.family in ("rail_optimized", "rail_only"):
            rail = ep_local[self.port_ep] % n_rails
            host = ~np.asarray(fabric.ep_is_accel, bool)[self.port_ep]
            if host.any():
                # the builder's rail slot of a host port: 2 ports when dual-homed on one plane, times
                # the planes on a rail-optimized fabric of several planes (its rails in every plane)
                per = (2 if dual else 1) * (self.planes if (self.family == "rail_optimized" and self.planes > 1) else 1)
                rail[host] = (port_k[host] // per) % n_rails
                type_names = list(cluster.node_types)
                file_index = {nt.name: i for i, nt in enumerate(f.node_types)}
                ptype = np.asarray(fabric.server_type, np.int64)[fabric.ep_server[self.port_ep]]
                for ti, tname in enumerate(type_names):
                    stated = f.node_types[file_index[tname]].rails
                    m = host & (ptype == ti)
                    if stated is not None and m.any():
                        rail[m] = np.asarray(stated, np.int64)[port_k[m]]
        else:
            rail = np.zeros(n_ports, np.int64)
        side = (port_k & 1) if dual else np.zeros(n_ports, np.int64)
        # a rail-optimized fabric keeps its rails in every plane; a rail-only fabric is one plane per rail
        lane = rail if self.family == "rail_optimized" else np.zeros(n_ports, np.int64)
        self.rail = rail if self.family == "rail_optimized" else None
        self.nsub = 2 * n_rails
        self.sub = lane * 2 + side
        self.seq = _rank_within(self.port_plane * self.nsub + self.sub, self.planes * self.nsub)
        return cnt_k, first_k

    def _wire_flows(self, fabric, demands, efficiency):
        """(src, dst, wire Gb/s) of the flows that reach the fabric, one per endpoint pair: flows
        inside a scale-up domain left out; on a rail-only fabric a flow between rails sent from its
        source domain's member on the destination's rail (``cross_rail_*``; ``no_rail_path_gbps``
        when the domain has none)."""
        n_ep = fabric.n_endpoints
        ep_local = fabric.ep_local.astype(np.int64)
        src = np.asarray(demands.src, np.int64)
        dst = np.asarray(demands.dst, np.int64)
        rate = np.asarray(demands.rate_gbps, np.float64) / efficiency
        dom = fabric.ep_domain
        keep = (src != dst) & ~((dom[src] == dom[dst]) & (dom[src] >= 0)) & (rate > 0)
        src, dst, rate = src[keep], dst[keep], rate[keep]
        # rail-only: a flow between rails first crosses its source's scale-up domain to the member
        # on the destination's rail (the lowest-numbered one), which sends it on that rail
        self.cross_rail_gbps = 0.0
        self.cross_rail_flows = 0
        self.no_rail_path_gbps = 0.0
        if self.family == "rail_only" and src.size:
            rail_ep = ep_local.astype(np.int64)
            cross = rail_ep[src] != rail_ep[dst]
            if cross.any():
                R = int(rail_ep.max()) + 1
                members = np.flatnonzero(dom >= 0)
                key = dom[members].astype(np.int64) * R + rail_ep[members]
                table = np.full(int(key.max(initial=0)) + 1, -1, np.int64)
                table[key[::-1]] = members[::-1]      # the lowest endpoint of each (domain, rail)
                ci = np.flatnonzero(cross)
                ok = dom[src[ci]] >= 0
                proxy = np.full(ci.size, -1, np.int64)
                k2 = dom[src[ci[ok]]].astype(np.int64) * R + rail_ep[dst[ci[ok]]]
                inside = k2 < table.size
                pk = np.full(k2.size, -1, np.int64)
                pk[inside] = table[k2[inside]]
                proxy[ok] = pk
                has = proxy >= 0
                self.cross_rail_gbps = float(rate[ci[has]].sum())
                self.cross_rail_flows = int(has.sum())
                self.no_rail_path_gbps = float(rate[ci[~has]].sum())
                src = src.copy()
                src[ci[has]] = proxy[has]
                drop = np.ones(src.size, bool)
                drop[ci[~has]] = False
                drop &= src != dst                       # the proxy is the destination: scale-up only
                src, dst, rate = src[drop], dst[drop], rate[drop]
        if src.size:
            key = src * n_ep + dst
            uk, inv = np.unique(key, return_inverse=True)
            rate = np.bincount(inv.ravel(), weights=rate)
            src, dst = uk // n_ep, uk % n_ep
        return src, dst, rate

    def _port_pairs(self, n_ep: int, cnt, src, dst, rate) -> None:
        """Flows -> port pairs on a shared plane (``ps``, ``pd``, flow ``pf``), with the wire load
        ``pr`` each carries: a flow split over its source's ports by speed, over the destination's
        ports on that plane by speed, and wholly over the planes the two ends share."""
        n_ports = self.port_ep.shape[0]
        mp = int(cnt.max()) if n_ports else 1
        first = np.zeros(n_ep + 1, np.int64)
        np.cumsum(cnt, out=first[1:])
        ports = np.full((n_ep, mp), -1, np.int64)
        order = np.argsort(self.port_ep, kind="stable")
        k = np.arange(n_ports) - first[self.port_ep[order]]
        ports[self.port_ep[order], k] = order
        plane_gbps = np.zeros((n_ep, self.planes))
        np.add.at(plane_gbps, (self.port_ep, self.port_plane), self.port_gbps)
        inj = plane_gbps.sum(axis=1)
        ps, pd, pr, pf = [], [], [], []
        fid = np.arange(src.size, dtype=np.int64)
        for i in range(mp):
            sp = ports[src, i]
            ok = sp >= 0
            for j in range(mp):
                dp = ports[dst, j]
                m = ok & (dp >= 0)
                m[m] &= self.port_plane[sp[m]] == self.port_plane[dp[m]]
                if not m.any():
                    continue
                s_, d_ = sp[m], dp[m]
                pl = self.port_plane[s_]
                w = self.port_gbps[s_] / inj[src[m]] * self.port_gbps[d_] / plane_gbps[dst[m], pl]
                ps.append(s_), pd.append(d_), pr.append(w), pf.append(fid[m])
        self.ps = np.concatenate(ps) if ps else np.zeros(0, np.int64)
        self.pd = np.concatenate(pd) if pd else np.zeros(0, np.int64)
        self.pf = np.concatenate(pf) if pf else np.zeros(0, np.int64)
        w = np.concatenate(pr) if pr else np.zeros(0)
        # a flow whose destination has no port on some of the source's planes (single-port hosts
        # on a multi-plane fabric) goes wholly over the planes they share
        wsum = np.bincount(self.pf, weights=w, minlength=src.size)
        self.pr = rate[self.pf] * w / np.where(wsum > 0, wsum, 1.0)[self.pf] if w.size else w

    def _analytic_ok(self, n_ep: int) -> None:
        """The uniform and permutation loads are computed from port counts; they are exact when
        every endpoint has one port on every plane (any speed: ECMP splits an endpoint's traffic
        evenly over its planes) and no NIC is dual-homed.
        Refuse (SpecError at the scenario) any other fabric rather than load it wrongly."""
        P = self.planes
        per = np.bincount(self.port_ep * P + self.port_plane, minlength=n_ep * P)
        why = None
        if self.dual:
            why = "dual-homed NICs (fabric.dual_homed)"
        elif per.size and (per.min() != 1 or per.max() != 1):
            why = (f"endpoints with other than one port per plane (from {int(per.min())} to {int(per.max())} "
                   f"ports on a plane, {P} plane(s))")
        if why is not None:
            s = self.analytic[0]
            raise SpecError([(s["where"], f"the {s['kind']} scenario's loads are computed exactly for endpoints with "
                                          f"one port on every plane; this fabric has {why}")])

    def _scenario_loads(self, n: np.ndarray) -> list:
        """Per analytic scenario, the largest load (Gb/s, one direction) leaving or entering a group
        of ``n`` ports of one plane (a leaf or a pod), given every group's port count ``n``.

        uniform: each endpoint sends r over the wire, r / (N-1) to every other endpoint, r / P per
        plane; a group of n ports sends r / P x n (N - n) / (N - 1) out of it (and receives as much).
        permutation: each endpoint sends r to one other; at most min(n, N - n) of a group's n ports
        can send out of it (only N - n destinations lie outside), so r / P x min(n, N - n) bounds
        every permutation's load, and a permutation reaches it (the bound is the worst case)."""
        N = self.n_ep
        out = []
        for s in self.analytic:
            rho = s["gbps"] / self.planes
            if n.size == 0 or N < 2:
                out.append(0.0)
            elif s["kind"] == "uniform":
                out.append(float((rho * n * (N - n) / (N - 1)).max()))
            else:
                out.append(float((rho * np.minimum(n, N - n)).max()))
        return out

    # -- leaves ---------------------------------------------------------------------------
    def grouping(self, E: int) -> tuple:
        """(leaf of every port, leaves, plane of every leaf, leaves per plane) for leaves of E
        endpoint ports, numbered per plane in (group, lane, side) order as the builder does."""
        lk = (self.seq // E) * self.nsub + self.sub
        span = int(lk.max()) + 1 if lk.size else 1
        uk, gl = _unique_inverse(self.port_plane * span + lk, self.planes * span)
        plane_of = (uk // span).astype(np.int64)
        Ls = np.bincount(plane_of, minlength=self.planes).astype(np.int64)
        return gl, int(uk.size), plane_of, Ls

    def leaves(self, E: int) -> dict:
        """Grouping of ports into leaves of E endpoint ports, its load and its geometry.

        Routing takes shortest paths: a flow whose endpoints share a leaf (a dual-homed pair, or
        ports of one endpoint split over two leaves) stays on it, so only the port pairs of flows
        that share no leaf load the leaf uplinks."""
        hit = self._leaf_cache.get(E)
        if hit is not None:
            return hit
        gl, nl, plane_of, Ls = self.grouping(E)
        L = int(Ls.max()) if Ls.size else 1
        first_leaf = np.concatenate([[0], np.cumsum(Ls)[:-1]]).astype(np.int64)
        leaf_in_plane = np.arange(nl, dtype=np.int64) - first_leaf[plane_of]
        ls, ld = gl[self.ps], gl[self.pd]
        same = ls == ld
        if same.any():
            shares = np.zeros(self.n_flows, bool)
            shares[self.pf[same]] = True
            cross = ~same & ~shares[self.pf]
        else:
            cross = ~same
        up = np.bincount(ls[cross], weights=self.pr[cross], minlength=nl)
        dn = np.bincount(ld[cross], weights=self.pr[cross], minlength=nl)
        t1 = float(max(up.max(initial=0.0), dn.max(initial=0.0)))
        # every scenario must fit alone: the tier carries the largest of their loads
        t1_parts = [t1] + self._scenario_loads(np.bincount(gl, minlength=nl).astype(np.float64))
        t1 = max(t1_parts)
        # leaf-pair aggregate of the cross-leaf traffic (for pod loads)
        key = ls[cross] * nl + ld[cross]
        uk, inv = np.unique(key, return_inverse=True)
        pair_rate = np.bincount(inv.ravel(), weights=self.pr[cross]) if uk.size else np.zeros(0)
        # geometry: a leaf sits at the rack of its first port (tor) or at the row's end (eor)
        fl = self.cluster.file.floor
        # each leaf's first port: the smallest port index grouped into it (no sort)
        first_port = np.full(nl, gl.size, np.int64)
        np.minimum.at(first_port, gl, np.arange(gl.size, dtype=np.int64))
        has = first_port < gl.size
        lx = np.zeros(nl, np.float32)
        ly = np.zeros(nl, np.float32)
        fe = self.port_ep[first_port[has]]
        lx[has] = self.ep_x[fe] if fl.leaf_placement == "tor" else fl.racks_per_row * fl.rack_pitch_m
        ly[has] = self.ep_y[fe]
        length0 = (np.abs(self.ep_x[self.port_ep] - lx[gl]) + np.abs(self.ep_y[self.port_ep] - ly[gl])
                   + fl.slack_m).astype(np.float32)
        r0 = self._reach(length0)
        ok = bool(r0.max(initial=0) < len(_REACH))
        c0 = w0 = 0.0
        if ok:
            c0, w0 = self._price(r0, self.port_gbps)
        # top-of-rack leaves draw power in the rack of their first port
        tor_racks = self.ep_rack[fe] if fl.leaf_placement == "tor" else np.zeros(0, np.int64)
        d = dict(E=E, L=L, Ls=Ls, nl=nl, gl=gl, plane_of=plane_of, leaf_in_plane=leaf_in_plane, t1=t1,
                 t1_parts=t1_parts, up=up,
                 dn=dn, pair_key=uk, pair_rate=pair_rate, lx=lx, ly=ly, has=has, c0=c0, w0=w0, ok=ok,
                 tor_racks=tor_racks)
        self._leaf_cache[E] = d
        return d

    def tor_power_ok(self, lv: dict, leaf_w: float) -> bool:
        if lv["tor_racks"].size == 0:
            return True
        kw = self.rack_kw + np.bincount(lv["tor_racks"], minlength=self.rack_kw.shape[0]) * leaf_w / 1e3
        return bool(not np.any(self.rack_hard & (kw > self.rack_limit + 1e-9)))

    # -- pods -------------------------------------------------------------------------------
    def pods(self, E: int, Lp: int, three_tier: bool) -> dict:
        """Pod loads and leaf-spine / spine-super link geometry for pods of Lp leaves (per plane:
        planes may hold different numbers of leaves, hence of pods)."""
        key = (E, Lp if three_tier else 0)
        hit = self._pod_cache.get(key)
        if hit is not None:
            return hit
        lv = self.leaves(E)
        nl, Ls = lv["nl"], lv["Ls"]
        plane_of, leaf_in_plane = lv["plane_of"], lv["leaf_in_plane"]
        fl = self.cluster.file.floor
        if three_tier:
            ppp_p = -(-Ls // Lp)
            pod_in_plane = leaf_in_plane // Lp
            partial_p = (Ls % Lp) != 0
        else:
            ppp_p = np.ones(self.planes, np.int64)
            pod_in_plane = np.zeros(nl, np.int64)
            partial_p = np.zeros(self.planes, bool)
        ppp = int(ppp_p.max()) if ppp_p.size else 1
        pod_first = np.concatenate([[0], np.cumsum(ppp_p)[:-1]]).astype(np.int64)
        npods = int(ppp_p.sum())
        gpod = pod_first[plane_of] + pod_in_plane
        pod_plane = np.repeat(np.arange(self.planes, dtype=np.int64), ppp_p)
        pod_q = np.arange(npods, dtype=np.int64) - pod_first[pod_plane]
        # the last pod of a plane, when partly filled, has spine uplinks of its own (partial_pod_bundle)
        is_last = partial_p[pod_plane] & (pod_q == ppp_p[pod_plane] - 1)
        partial = bool(three_tier and partial_p.any())
        # an endpoint with ports in two pods (of its plane, or pods of different index on two
        # planes): routing would favour the nearer pod, which the per-port split does not price
        straddle = False
        if three_tier and self.multi_port and self.ep_first_port.size:
            pp = pod_in_plane[lv["gl"]]
            straddle = bool((np.minimum.reduceat(pp, self.ep_first_port)
                             != np.maximum.reduceat(pp, self.ep_first_port)).any())
        t2 = t2_full = t2_last = 0.0
        if three_tier and lv["pair_key"].size:
            a = lv["pair_key"] // nl
            b = lv["pair_key"] % nl
            cr = gpod[a] != gpod[b]
            eg = np.bincount(gpod[a[cr]], weights=lv["pair_rate"][cr], minlength=npods)
            ig = np.bincount(gpod[b[cr]], weights=lv["pair_rate"][cr], minlength=npods)
            per_pod = np.maximum(eg, ig)
            t2 = float(per_pod.max(initial=0.0))
            t2_last = float(per_pod[is_last].max(initial=0.0)) if partial else 0.0
            t2_full = float(per_pod[~is_last].max(initial=0.0)) if partial else t2
        t2_parts = [t2]
        if three_tier and self.analytic:
            n_pod = np.bincount(gpod[lv["gl"]], minlength=npods).astype(np.float64)
            t2_parts += self._scenario_loads(n_pod)
            t2 = max(t2_parts)
            full = self._scenario_loads(n_pod[~is_last]) if partial else t2_parts[1:]
            t2_full = max([t2_full] + full)
            if partial:
                t2_last = max([t2_last] + self._scenario_loads(n_pod[is_last]))
        # spine positions: beside the mean row of their pod's leaves (pooled over planes)
        has = lv["has"]
        cnt = np.bincount(pod_in_plane[has], minlength=ppp)
        pod_y = np.zeros(ppp, np.float64)
        pod_y[: cnt.shape[0]] = (np.bincount(pod_in_plane[has], weights=lv["ly"][has], minlength=ppp)
                                 / np.maximum(cnt, 1))
        spine_col = (fl.racks_per_row + 1) * fl.rack_pitch_m
        sx = np.float32(spine_col)
        sy = pod_y.astype(np.float32)
        len1 = (np.abs(lv["lx"] - sx) + np.abs(lv["ly"] - sy[pod_in_plane]) + fl.slack_m).astype(np.float32)
        r1 = self._reach(len1)
        d = dict(ppp=ppp, ppp_p=ppp_p, npods=npods, n_partial=int(partial_p.sum()) if three_tier else 0,
                 t2=t2, t2_parts=t2_parts, t2_full=t2_full, t2_last=t2_last, partial=partial, straddle=straddle, gpod=gpod,
                 r1=r1, ok=bool(r1.max(initial=0) < len(_REACH)))
        if three_tier:
            sup_x = np.float32(spine_col + fl.rack_pitch_m)
            sup_y = np.float32(self.rack_row_max * fl.row_pitch_m / 2.0)
            len2 = (np.abs(sx - sup_x) + np.abs(sy - sup_y) + fl.slack_m).astype(np.float32)
            r2 = self._reach(np.atleast_1d(len2))[pod_q]
            d["r2"] = r2
            d["r2_full"], d["r2_last"] = r2[~is_last], r2[is_last]
            d["ok"] = d["ok"] and bool(r2.max(initial=0) < len(_REACH))
        self._pod_cache[key] = d
        return d

    def verify(self, fabric) -> None:
        """Refuse (SpecError, before solving) a fabric whose leaves or pods this model does not
        reproduce port by port: a budget for a fabric other than the one built would be wrong."""
        meta = fabric.meta
        E = int(meta.get("endpoint_ports_per_leaf") or 0)
        if E < 1:
            raise SpecError([("fabric.tiers", "the link budget needs the builder's leaf grouping; this fabric has none")])
        lv = self.leaves(E)
        given = fabric.link_dst[self.up0].astype(np.int64)
        n_given = int(np.unique(given).size)
        pairs = int(np.unique(lv["gl"] * (fabric.n_nodes + 1) + given).size)
        bad = pairs != lv["nl"] or pairs != n_given
        if not bad:
            # leaves per plane
            lp = fabric.node_plane[np.unique(given)].astype(np.int64)
            bad = not np.array_equal(np.bincount(lp, minlength=self.planes), lv["Ls"])
        if not bad and fabric.n_tiers == 3:
            pd = self.pods(E, int(meta["leaves_per_pod"]), True)
            gpod_given = fabric.node_pod[given].astype(np.int64) * (self.planes + 1) + fabric.node_plane[given]
            mine = pd["gpod"][lv["gl"]]
            bad = int(np.unique(mine * (int(gpod_given.max()) + 1) + gpod_given).size) != pd["npods"]
        if bad:
            raise SpecError([("fabric", "the link budget's model groups the endpoint ports into leaves or pods "
                                        "differently from the fabric this file builds; a budget for it would "
                                        "describe another fabric, so none is computed")])


    # -- optics -------------------------------------------------------------------------------
    def _reach(self, length) -> np.ndarray:
        reach_max = self.__dict__.get("_reach_max")
        if reach_max is None:   # the optics' reaches, read once
            reach_max = self._reach_max = np.array([self.cluster.optics[r].max_m for r in _REACH])
        return np.searchsorted(reach_max, length, side="left").astype(np.int64)

    def link_price(self, reach: int, gbps: float) -> tuple[float, float]:
        """(cost USD, watts) of one link of a reach class and speed, both ends included."""
        from topo.model.catalog import optic_part, optic_scale
        p = self.cluster.optics[optic_part(self.cluster.optics, _REACH[reach], self.cluster.file.costs.allow_lpo)]
        scale = optic_scale(gbps)
        return p.ends * p.cost_usd * scale, p.ends * p.watts * scale

    def _price(self, reach: np.ndarray, gbps) -> tuple[float, float]:
        if np.ndim(gbps) == 0:
            # one speed: links per reach class by a bincount, classes in increasing order (the
            # order, hence the sums, of the general case below)
            g = int(np.round(np.float64(gbps)))
            n = np.bincount(np.asarray(reach, np.int64).ravel()) if np.size(reach) else np.zeros(0, np.int64)
            pairs = [(int(r) * 1_000_000 + g, int(n[r])) for r in np.flatnonzero(n)]
        else:
            gbps = np.broadcast_to(np.asarray(gbps, np.float64), reach.shape)
            key = reach * 1_000_000 + np.round(gbps).astype(np.int64)
            keys, n = np.unique(key, return_counts=True)
            pairs = list(zip(keys.tolist(), n.tolist()))
        c = w = 0.0
        for k, cnt in pairs:
            hit = self._link_prices.get(k)
            if hit is None:
                hit = self._link_prices[k] = self.link_price(k // 1_000_000, k % 1_000_000)
            pc, pw = hit
            c += cnt * pc
            w += cnt * pw
        return c, w

    def tier_price(self, reach: np.ndarray, gbps: float) -> tuple[float, float]:
        """:meth:`_price` at one speed: the links counted per reach class and summed in class order,
        as :meth:`_price` sums them (the same floating-point result), each class priced once."""
        reach = np.asarray(reach)
        if reach.size == 0:
            return 0.0, 0.0
        g = int(np.round(np.float64(gbps)))
        cache = self.__dict__.setdefault("_tier_price_cache", {})
        c = w = 0.0
        for r, cnt in enumerate(np.bincount(reach.ravel().astype(np.int64)).tolist()):
            if cnt:
                if (r, g) not in cache:
                    cache[(r, g)] = self.link_price(r, g)
                pc, pw = cache[(r, g)]
                c += cnt * pc
                w += cnt * pw
        return c, w


def _unique_inverse(key: np.ndarray, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(key, return_inverse=True)`` (sorted distinct keys, each key's index among them,
    as int64) of non-negative integer keys below ``hi``: by marking the keys present when ``hi`` is
    at most a few times the number of keys (no sort; the same arrays), else by ``np.unique``."""
    key = np.asarray(key, np.int64)
    if hi > 4 * key.size + 4096:
        uk, inv = np.unique(key, return_inverse=True)
        return uk, inv.ravel().astype(np.int64)
    present = np.zeros(hi, bool)
    present[key] = True
    rank = np.cumsum(present, dtype=np.int64) - 1
    return np.flatnonzero(present).astype(np.int64), rank[key]


def _divisors(n: int) -> list[int]:
    return [b for b in range(1, n + 1) if n % b == 0]


# --- candidates for one choice of switch models ----------------------------------------------
@dataclass
class _Tables:
    """Everything the CP model and the enumeration need for one switch-model choice."""
    models: tuple
    specs: tuple
    three: bool
    planes: int
    g1: float
    g2: float
    b1_fixed: Optional[int]
    E_opts: list = field(default_factory=list)    # per leaf option: dict
    D_opts: list = field(default_factory=list)    # per spine option (3 tiers): dict
    pair: dict = field(default_factory=dict)      # (iE, iD) -> dict (3 tiers)
    pruned: dict = field(default_factory=dict)    # reason -> count
    cap: tuple = (1.0, 1.0)                       # utilisation allowed per switch link tier (healthy)
    nonblocking_util: tuple = (None, None)        # peak utilisation per tier of the non-blocking grouping
    # links per port where speeds differ (the faster port breaks out into lanes of the slower):
    # leaf uplink, spine downlink, spine uplink, super-spine downlink
    lanes: tuple = (1, 1, 1, 1)
    # bisection (requirements.min_bisection_gbps_per_accelerator): the floor times the
    # accelerators, i.e. twice the bisection needed (Gb/s; 0: no floor), the endpoint injection
    # and the accelerators
    bis_floor: float = 0.0
    injection_gbps: float = 0.0
    n_acc: int = 1


def _bisection2(T: _Tables, nl: int, leaf_links: int, pods_per_plane: int, spine_links: int) -> float:
    """Twice the bisection (Gb/s) of a candidate, as topo.describe.bisection_gbps defines it: a
    balanced cut crosses at most half the injection, half the leaf uplinks (when a plane has more
    than one leaf) and half the spine uplinks (when a plane has more than one pod)."""
    c = [T.injection_gbps]
    if nl > T.planes:
        c.append(leaf_links * T.g1)
    if T.three and pods_per_plane > 1:
        c.append(spine_links * T.g2)
    return float(min(c))


def _floor_mbps(T: _Tables) -> int:
    return int(math.floor(T.bis_floor * 1e3 * (1 - 1e-12)))


def _below_floor(T: _Tables, bis2: float) -> bool:
    """The candidate's bisection under the floor (in whole Mb/s, as the CP row compares them)."""
    return T.bis_floor > 0 and int(math.floor(bis2 * 1e3)) < _floor_mbps(T)


def _speed(a: float, b: float) -> float:
    return float(min(a, b))


def _lanes(a: float, b: float) -> Optional[tuple[float, int, int]]:
    """(link speed, links per port of the a side, of the b side) of two facing port speeds, as the
    builder breaks them out; None when the faster is not a whole number of the slower."""
    g = min(a, b)
    ka, kb = a / g, b / g
    if abs(ka - round(ka)) > 1e-9 or abs(kb - round(kb)) > 1e-9:
        return None
    return float(g), int(round(ka)), int(round(kb))


def _stated(cluster) -> dict:
    """The pod structure the file states (None where derived)."""
    fab = cluster.file.fabric
    if fab.family == "fat_tree":
        return dict(leaves_per_pod=None, pods=None, spines_per_pod=None, super_spines=None, bundle0=1)
    return dict(leaves_per_pod=fab.leaves_per_pod, pods=fab.pods, spines_per_pod=fab.spines_per_pod,
                super_spines=fab.super_spines, bundle0=fab.tiers[0].bundle if fab.tiers else None)


def _tables(data: _Data, models, specs, three, survive, tau, max_os, b1_fixed, time_budget_end,
            bis_floor: float = 0.0) -> _Tables:
    """The candidate tables of one switch model per tier: the leaf options (:func:`_leaf_options`),
    with 3 tiers the spine options and each (leaf, spine) pair's pods and prices
    (:func:`_spine_options`), with 2 tiers each leaf option's spine-tier price; each candidate
    pruned for a reason counted in ``pruned``. The utilisation caps are the target, or the
    non-blocking grouping's utilisation where that is higher (:func:`_nonblocking_caps`)."""
    # max_os: (leaf cap, spine cap), each None when uncapped (a bare number caps both, as before)
    if not isinstance(max_os, tuple):
        max_os = (max_os, max_os)
    os0, os1 = max_os
    s0, s1 = specs[0], specs[1]
    brk = max(int(s0.port_gbps // data.nic_port), 1) if s0.port_gbps >= data.nic_port else 1
    st = _stated(data.cluster)
    l1 = _lanes(s0.port_gbps, s1.port_gbps)
    l2 = _lanes(s1.port_gbps, specs[2].port_gbps) if three else (0.0, 1, 1)
    T = _Tables(models=tuple(models), specs=tuple(specs), three=three, planes=data.planes,
                g1=l1[0] if l1 else 0.0, g2=l2[0] if l2 else 0.0, b1_fixed=b1_fixed,
                bis_floor=float(bis_floor), injection_gbps=float(data.port_gbps.sum()),
                n_acc=max(int(np.asarray(data.fabric.ep_is_accel).sum()), 1))
    pr = T.pruned
    if l1 is None or l2 is None:
        pr["port speeds that do not divide"] = 1
        return T
    if s0.port_gbps < data.nic_port * (1 - 1e-12):
        pr["leaf port slower than the NIC port"] = 1  # the builder refuses it (node_types[].nic_gbps)
        return T
    T.lanes = (l1[1], l1[2], l2[1], l2[2])
    _nonblocking_caps(T, data, st, brk, tau)
    _leaf_options(T, data, st, brk, survive, os0)
    if three:
        _spine_options(T, data, st, os1, time_budget_end)
    else:
        for eo in T.E_opts:
            pd = data.pods(eo["E"], 0, False)
            eo["ok1"] = pd["ok"]
            eo["c1"], eo["w1"] = data.tier_price(pd["r1"], T.g1)
    return T


def _bump(T: _Tables, reason: str) -> None:
    """Count one candidate pruned for ``reason``."""
    T.pruned[reason] = T.pruned.get(reason, 0) + 1


def _leaf_bundle(st: dict, b1_fixed, U0: int):
    """Leaf-spine bundle of U0 leaf uplinks (links): the file's, or U0 / spines_per_pod (None when
    the stated spines per pod do not divide them or disagree with the stated bundle)."""
    spl = st["spines_per_pod"]
    if spl is not None:
        # spines per pod stated: the bundle follows (the file's bundle, if stated, must agree)
        if U0 % spl or (st["bundle0"] is not None and st["bundle0"] * spl != U0):
            return None
        return U0 // spl
    return b1_fixed


def _nonblocking_caps(T: _Tables, data: _Data, st: dict, brk: int, tau: float) -> None:
    """``T.nonblocking_util`` and ``T.cap``: a tier the traffic loads beyond the target even when
    non-blocking cannot be helped by any budget (oversubscription >= 1): it may run as loaded as
    its non-blocking grouping does."""
    R0, R1 = T.specs[0].radix, T.specs[1].radix
    k0, kS1, k1, _ = T.lanes
    b1_fixed = T.b1_fixed
    d0n = -(-R0 // 2)
    u0n = R0 - d0n
    U0n = u0n * k0
    b1n = _leaf_bundle(st, b1_fixed, U0n) or b1_fixed or 1
    lvn = data.leaves(d0n * brk)
    nb1 = lvn["t1"] / (T.g1 * U0n)
    nb2 = None
    if T.three:
        d1n = -(-R1 // 2)
        Lpn = st["leaves_per_pod"] or (-(-lvn["L"] // st["pods"]) if st["pods"] else max(d1n * kS1 // b1n, 1))
        pdn = data.pods(d0n * brk, Lpn, True)
        sun = max(U0n // b1n, 1) * max(Lpn * b1n // kS1, 1) * k1
        nb2 = pdn["t2"] / (T.g2 * sun)
    T.nonblocking_util = (nb1, nb2)
    slack = 1 + 1e-4  # above the CP rows' 1e-6 quantisation of utilisation caps
    T.cap = (max(tau, min(nb1 * slack, 1.0)), max(tau, min(nb2 * slack, 1.0)) if T.three else tau)


def _leaf_options(T: _Tables, data: _Data, st: dict, brk: int, survive: str, os0) -> None:
    """``T.E_opts``: every leaf split (down ports ``d0`` at least half the radix) and bundle that
    meets the caps, reach, rack power, stated leaves, target, failure and bisection floor."""
    s0 = T.specs[0]
    R0, k0, g1, cap1, three, P = s0.radix, T.lanes[0], T.g1, T.cap[0], T.three, T.planes
    spl = st["spines_per_pod"]
    for d0 in range(-(-R0 // 2), R0):
        u0 = R0 - d0
        U0 = u0 * k0
        if os0 is not None and d0 / u0 > os0 + 1e-9:
            _bump(T, "oversubscription above the limit")
            continue
        b1 = _leaf_bundle(st, T.b1_fixed, U0)
        if spl is not None and b1 is None:
            _bump(T, "leaf uplinks not a whole number of links per spine (fabric.spines_per_pod)")
            continue
        if b1 is not None and U0 % b1:
            _bump(T, "bundle does not divide the uplinks")
            continue
        # 3 tiers: every leaf-spine bundle when the file fixes none (SPACE_RULES)
        b1s = [b1] if (b1 is not None or not three) else _divisors(U0)
        E = d0 * brk
        lv = data.leaves(E)
        if not lv["ok"]:
            _bump(T, "endpoint link longer than any reach class")
            continue
        if not data.tor_power_ok(lv, s0.power_w):
            _bump(T, "top-of-rack leaf over a hard rack power limit")
            continue
        if not three and st["leaves_per_pod"] is not None and lv["L"] != st["leaves_per_pod"]:
            _bump(T, "leaves per plane other than fabric.leaves_per_pod")
            continue
        t1 = lv["t1"]
        # tier-1 conditions that depend on the leaf option alone
        if t1 > cap1 * g1 * U0 * (1 + 1e-12):
            _bump(T, "leaf uplinks over the target utilisation")
            continue
        if survive == "link" and (U0 < 2 or t1 > g1 * (U0 - 1) * (1 + 1e-12)):
            _bump(T, "leaf uplinks overloaded after a link failure")
            continue
        if T.bis_floor > 0 and (T.injection_gbps < T.bis_floor * (1 - 1e-12)
                                or (lv["nl"] > P and lv["nl"] * U0 * g1 < T.bis_floor * (1 - 1e-12))):
            _bump(T, "bisection below the floor (requirements.min_bisection_gbps_per_accelerator)")
            continue
        for b1_ in b1s:
            T.E_opts.append(dict(d0=d0, u0=u0, U0=U0, E=E, L=lv["L"], nl=lv["nl"], t1=t1, c0=lv["c0"], w0=lv["w0"],
                                 b1=b1_))


def _spine_options(T: _Tables, data: _Data, st: dict, os1, time_budget_end: float) -> None:
    """3 tiers: ``T.D_opts`` (spine splits with their pod size) and ``T.pair`` (for each leaf and
    spine option that fit together: pods, loads, super-spine bundles and prices). TimeLimitError
    when ``time_budget_end`` (time.process_time: CPU seconds of this process) passes before the
    tables are complete."""
    _, kS1, k1, kS2 = T.lanes
    R1, R2 = T.specs[1].radix, T.specs[2].radix
    g1, g2, cap2, b1_fixed = T.g1, T.g2, T.cap[1], T.b1_fixed
    spl, ssp = st["spines_per_pod"], st["super_spines"]
    d_index: dict = {}

    def d_opt(d1, u1, Lp):
        k = (d1, u1, Lp)
        if k not in d_index:
            d_index[k] = len(T.D_opts)
            T.D_opts.append(dict(d1=d1, u1=u1, U1=u1 * k1, Lp=Lp))
        return d_index[k]

    if st["leaves_per_pod"] is None and st["pods"] is None and spl is None:
        # the spine options of a derived pod size do not depend on the leaf option: list them all
        for d1 in range(-(-R1 // 2), R1):
            if d1 * kS1 // (b1_fixed or 1) >= 1 and not (os1 is not None and d1 / (R1 - d1) > os1 + 1e-9):
                d_opt(d1, R1 - d1, d1 * kS1 // (b1_fixed or 1))
    for iE, eo in enumerate(T.E_opts):
        if time.process_time() > time_budget_end:
            raise TimeLimitError("the link-budget tables were not complete within the time limit (CPU seconds of "
                                 "this process, counted apart from the solver's); raise the time limit")
        b1 = eo["b1"] or 1
        eo["b1"] = b1
        spp = eo["U0"] // b1
        # spine options: the split of the radix (pod size derived), or the stated pod size with
        # any number of up ports (the builder's spine up ports = down / oversubscription)
        Lp_st = st["leaves_per_pod"]
        if Lp_st is None and st["pods"] is not None:
            Lp_st = -(-eo["L"] // st["pods"])
            lv = data.leaves(eo["E"])
            if (-(-lv["Ls"] // Lp_st) != st["pods"]).any():
                _bump(T, "a plane's leaves do not make fabric.pods pods")
                continue
        opts = []
        if Lp_st is None:
            for d1 in range(-(-R1 // 2), R1):
                Lp = d1 * kS1 // b1
                if Lp >= 1:
                    opts.append((d1, R1 - d1, Lp))
        else:
            D1 = Lp_st * b1
            if D1 % kS1:
                _bump(T, "stated pod size does not fill whole spine ports")
                continue
            d1 = D1 // kS1
            opts = [(d1, u1, Lp_st) for u1 in range(1, R1 - d1 + 1)]
        for d1, u1, Lp in opts:
            if os1 is not None and d1 / u1 > os1 + 1e-9:
                _bump(T, "oversubscription above the limit")
                continue
            U1 = u1 * k1
            iD = d_opt(d1, u1, Lp)
            pd = data.pods(eo["E"], Lp, True)
            if not pd["ok"]:
                _bump(T, "switch link longer than any reach class")
                continue
            if pd["straddle"]:
                _bump(T, "an endpoint's ports in two pods")
                continue
            ppp = pd["ppp"]
            su = spp * U1
            if pd["t2"] > cap2 * g2 * su * (1 + 1e-12):
                _bump(T, "spine uplinks over the target utilisation")
                continue
            if ssp is not None:
                if ssp % spp or U1 % (ssp // spp) or ssp < spp:
                    _bump(T, "spine uplinks that fabric.super_spines cannot take evenly")
                    continue
                b2s = [U1 // (ssp // spp)]
            else:
                b2s = _divisors(U1)
            b2s = [b for b in b2s if -(-ppp * b // kS2) <= R2]
            if not b2s:
                _bump(T, "super-spine radix too small for the pods")
                continue
            # the prices depend only on the pods (E, Lp) and the link speeds: kept with the pods for
            # the other leaf options
            memo = pd.setdefault("_prices", {})
            prices = memo.get((g1, g2))
            if prices is None:
                prices = memo[g1, g2] = (data.tier_price(pd["r1"], g1),        # one uplink of every leaf
                                          data.tier_price(pd["r2_full"], g2),   # of every full pod's spine
                                          data.tier_price(pd["r2_last"], g2))   # of every partly filled pod's spine
            (c1, w1), (c2, w2), (c2l, w2l) = prices
            T.pair[(iE, iD)] = dict(ppp=ppp, npods=pd["npods"], n_partial=pd["n_partial"], t2=pd["t2_full"],
                                    t2_last=pd["t2_last"], partial=pd["partial"], su=su, spp=spp, b1=b1,
                                    b2s=b2s, c1=c1, w1=w1, c2=c2, w2=w2, c2l=c2l, w2l=w2l)


def _b1_choices(T: _Tables, eo: dict) -> list:
    """2 tiers: the leaf-spine bundles of a leaf option (its own when stated or fixed by spines_per_pod)."""
    if eo.get("b1") is not None:
        return [eo["b1"]]
    return _divisors(eo["U0"])


# --- exact evaluation of one candidate (used by the enumeration and to report) ----------------
def evaluate(T: _Tables, survive: str, tau: float, iE: int, iD: Optional[int], b: int) -> Optional[dict]:
    """Counts, cost, power and utilisations of one candidate, or None if it violates a constraint.

    2 tiers: ``b`` is the leaf-spine bundle and ``iD`` is None; 3 tiers: ``b`` is
    (spine-super bundle of the full pods, that of the partly filled last pod of each plane;
    equal when every pod is full). Uplinks are counted in links (a port broken out into lanes
    is several links).
    """
    P = T.planes
    eo = T.E_opts[iE]
    s = T.specs
    k0, kS1, k1, kS2 = T.lanes
    U0, t1 = eo["U0"], eo["t1"]
    eps = 1 + 1e-12
    if not T.three:
        b1 = b
        if U0 % b1 or -(-eo["L"] * b1 // kS1) > s[1].radix or not eo["ok1"]:
            return None
        if b1 not in _b1_choices(T, eo):
            return None
        spp = U0 // b1
        if survive == "switch" and (U0 - b1 < 1 or t1 > T.g1 * (U0 - b1) * eps):
            return None
        counts = [eo["nl"], P * spp]
        links = [None, eo["nl"] * U0]
        capex = counts[0] * s[0].cost_usd + counts[1] * s[1].cost_usd + eo["c0"] + U0 * eo["c1"]
        watts = counts[0] * s[0].power_w + counts[1] * s[1].power_w + eo["w0"] + U0 * eo["w1"]
        util = [t1 / (T.g1 * U0), None]
        bis2 = _bisection2(T, eo["nl"], eo["nl"] * U0, 1, 0)
        if _below_floor(T, bis2):
            return None
        dec = dict(d0=eo["d0"], u0=eo["u0"], leaf_uplinks=U0, b1=b1, spines_per_plane=spp)
        return dict(counts=counts, links=links, capex=capex, watts=watts, util=util, dec=dec,
                    bisection_gbps=bis2 / 2)
    do = T.D_opts[iD]
    pr = T.pair.get((iE, iD))
    if pr is None:
        return None
    b2, bp = b
    U1 = do["U1"]
    if b2 not in pr["b2s"] or not 1 <= bp <= b2 or (bp != b2 and not pr["partial"]):
        return None
    spp, su, t2 = pr["spp"], pr["su"], pr["t2"]
    k2 = U1 // b2
    # the partly filled last pod of each plane (if any): bp links per spine and super-spine
    ul = k2 * bp
    sl, t2l = spp * ul, pr["t2_last"]
    b1 = pr["b1"]
    g1, g2 = T.g1, T.g2
    if t2l > T.cap[1] * g2 * sl * eps:
        return None
    if survive == "link":
        if su < 2 or t1 * su > g1 * U0 * (su - 1) * eps:
            return None
        for tt, s_, u_ in ((t2, su, U1), (t2l, sl, ul)):
            if s_ < 2 or tt > g2 * (s_ - 1) * eps or tt * U0 > g2 * s_ * (U0 - 1) * eps:
                return None
    elif survive == "switch":
        if U0 - b1 < 1 or su - b2 < 1 or spp < 2:
            return None
        if t1 > g1 * (U0 - b1) * eps or t1 * su > g1 * U0 * (su - b2) * eps:
            return None
        for tt, s_, u_, bb in ((t2, su, U1, b2), (t2l, sl, ul, bp)):
            if s_ - bb < 1:
                return None
            if tt * spp > g2 * s_ * (spp - 1) * eps or tt > g2 * (s_ - bb) * eps:
                return None
    n_last = pr["n_partial"] if pr["partial"] else 0
    counts = [eo["nl"], pr["npods"] * spp, P * spp * k2]
    links = [None, eo["nl"] * U0, (pr["npods"] - n_last) * su + n_last * sl]
    capex = (counts[0] * s[0].cost_usd + counts[1] * s[1].cost_usd + counts[2] * s[2].cost_usd
             + eo["c0"] + U0 * pr["c1"] + su * pr["c2"] + sl * pr["c2l"])
    watts = (counts[0] * s[0].power_w + counts[1] * s[1].power_w + counts[2] * s[2].power_w
             + eo["w0"] + U0 * pr["w1"] + su * pr["w2"] + sl * pr["w2l"])
    util = [t1 / (g1 * U0), max(t2 / (g2 * su), t2l / (g2 * sl) if pr["partial"] else 0.0)]
    dec = dict(d0=eo["d0"], u0=eo["u0"], leaf_uplinks=U0, b1=b1, d1=do["d1"], u1=do["u1"], spine_uplinks=U1,
               b2=b2, leaves_per_pod=do["Lp"], pods_per_plane=pr["ppp"], spines_per_pod=spp,
               supers_per_plane=spp * k2)
    if pr["partial"]:
        dec["partial_pod_bundle"] = bp
    bis2 = _bisection2(T, eo["nl"], links[1], pr["ppp"], links[2])
    if _below_floor(T, bis2):
        return None
    return dict(counts=counts, links=links, capex=capex, watts=watts, util=util, dec=dec, bisection_gbps=bis2 / 2)


def _energy_usd_per_w(cluster) -> float:
    c = cluster.file.costs
    return c.pue * HOURS_PER_YEAR * c.horizon_years * c.electricity_usd_per_kwh / 1e3


def _objective_weights(cluster, objective: str, ref: dict) -> tuple[float, float]:
    """Weights (per USD of capex, per W) of an objective; ``ref`` = the design as given."""
    e = _energy_usd_per_w(cluster)
    if objective == "cost":
        return 1.0, e
    if objective == "power":
        return 0.0, 1.0
    cref = max(ref["capex"] + e * ref["watts"], 1e-9)
    wref = max(ref["watts"], 1e-9)
    return 0.5 / cref, 0.5 * e / cref + 0.5 / wref


def enumerate_all(T: _Tables, survive: str, tau: float):
    """Every feasible candidate of a table set: yields (iE, iD, b, evaluation)."""
    for iE, eo in enumerate(T.E_opts):
        if T.three:
            for iD, do in enumerate(T.D_opts):
                if (iE, iD) not in T.pair:
                    continue
                for b in _bundles(T.pair[(iE, iD)]):
                    ev = evaluate(T, survive, tau, iE, iD, b)
                    if ev is not None:
                        yield iE, iD, b, ev
        else:
            for b in _b1_choices(T, eo):
                ev = evaluate(T, survive, tau, iE, None, b)
                if ev is not None:
                    yield iE, None, b, ev


def _bundles(pr: dict):
    """The spine-super bundle choices of a (leaf, spine) option: (full pods', partly filled pod's)."""
    for b in pr["b2s"]:
        for bp in (range(1, b + 1) if pr["partial"] else (b,)):
            yield b, bp


def brute_force(T: _Tables, survive: str, tau: float, wc: float, ww: float):
    """The optimum by enumeration of every candidate (reference for tests; float arithmetic)."""
    best = None
    for iE, iD, b, ev in enumerate_all(T, survive, tau):
        v = wc * ev["capex"] + ww * ev["watts"]
        if best is None or v < best[0] - 1e-9 * max(1.0, abs(v)):
            best = (v, iE, iD, b, ev)
    return best


# --- the CP-SAT model ---------------------------------------------------------------------------
def _shapes(T: _Tables):
    """Every structurally valid candidate (divisibility, radix, reach): (iE, iD, b)."""
    R1 = T.specs[1].radix
    kS1 = T.lanes[1]
    for iE, eo in enumerate(T.E_opts):
        if T.three:
            for iD, do in enumerate(T.D_opts):
                pr = T.pair.get((iE, iD))
                if pr is None:
                    continue
                for b in _bundles(pr):  # b2s already fit the super-spine radix
                    yield iE, iD, b
        else:
            if not eo["ok1"]:
                continue
            for b in _b1_choices(T, eo):
                if eo["U0"] % b == 0 and -(-eo["L"] * b // kS1) <= R1:
                    yield iE, None, b


# --- the shape table and the solver ------------------------------------------------------------
# Tables with at most this many shapes are solved by evaluating every shape (numpy, exact integer
# rows); larger ones by CP-SAT over the same rows (the per-shape arrays of a larger table would
# take more memory than the model).
EXHAUSTIVE_MAX_SHAPES = 1_000_000
_SAFE = float(2 ** 62)


def _prod(terms) -> tuple:
    """(int64 product, float64 product) of integer arrays/scalars (the int64 one is exact where the
    float magnitude is under 2^62)."""
    a = np.ones(1, dtype=np.int64)
    f = np.ones(1, dtype=np.float64)
    for t in terms:
        a = a * np.asarray(t, dtype=np.int64)
        f = f * np.asarray(t, dtype=np.float64)
    return a, f


def _le(lhs, rhs, n: int) -> np.ndarray:
    """Exactly ``prod(lhs) <= prod(rhs)`` per shape, for integer factors (arrays of length n or
    scalars). int64 where both products are provably inside it, Python integers elsewhere."""
    a, fa = _prod(lhs)
    b, fb = _prod(rhs)
    a, fa, b, fb = (np.broadcast_to(v, (n,)) for v in (a, fa, b, fb))
    out = a <= b
    big = np.flatnonzero((np.abs(fa) >= _SAFE) | (np.abs(fb) >= _SAFE))
    if big.size:
        out = out.copy()
        pa = np.ones(big.size, dtype=object)
        pb = np.ones(big.size, dtype=object)
        for t in lhs:
            pa = pa * np.broadcast_to(np.asarray(t, dtype=np.int64), (n,))[big].astype(object)
        for t in rhs:
            pb = pb * np.broadcast_to(np.asarray(t, dtype=np.int64), (n,))[big].astype(object)
        out[big] = pa <= pb
    return out


def _gather(dicts: list, key: str, dtype) -> np.ndarray:
    return np.array([d[key] for d in dicts], dtype=dtype)


def _kbps(x) -> np.ndarray:
    """kb/s, rounded half to even as Python's round (the rows' integer loads)."""
    return np.round(np.asarray(x, dtype=np.float64) * 1e6).astype(np.int64)


def _shapes_two(T: _Tables, survive: str, row) -> tuple:
    """2 tiers: the shapes of :func:`_shape_table`, their rows (through ``row``), capex, watts and
    twice their bisection."""
    s = T.specs
    P = T.planes
    g1 = int(round(T.g1 * 1e6))    # kb/s
    ppm = 1_000_000
    cap1 = int(math.floor(T.cap[0] * ppm + 1e-6))
    E = T.E_opts
    capex = watts = bis2 = None
    R1, kS1 = s[1].radix, T.lanes[1]
    iE_l, b_l = [], []
    for iE, eo in enumerate(E):
        if not eo["ok1"]:
            continue
        for b in _b1_choices(T, eo):
            if eo["U0"] % b == 0 and -(-eo["L"] * b // kS1) <= R1:
                iE_l.append(iE)
                b_l.append(b)
    iE_a = np.array(iE_l, dtype=np.int64)
    n = iE_a.size
    out = dict(n=n, iE=iE_a, iD=None, b=np.array(b_l, dtype=np.int64))
    if n:
        u0 = _gather(E, "U0", np.int64)[iE_a]
        t1 = _kbps(_gather(E, "t1", np.float64))[iE_a]
        nl = _gather(E, "nl", np.int64)[iE_a]
        b1 = out["b"]
        row("leaf uplinks at or under the target", _le([t1, ppm], [cap1, g1, u0], n))
        if survive == "link":
            row("leaf uplinks after a link failure", _le([t1], [g1, u0 - 1], n))
        elif survive == "switch":
            row("leaf uplinks after a spine failure", _le([t1], [g1, u0 - b1], n))
            row("a spare spine", u0 - b1 >= 1)
        spp = u0 // b1
        capex = (nl * s[0].cost_usd + (P * spp) * s[1].cost_usd + _gather(E, "c0", np.float64)[iE_a]
                 + u0 * _gather(E, "c1", np.float64)[iE_a])
        watts = (nl * s[0].power_w + (P * spp) * s[1].power_w + _gather(E, "w0", np.float64)[iE_a]
                 + u0 * _gather(E, "w1", np.float64)[iE_a])
        inj = T.injection_gbps
        leaf_c = (nl * u0) * T.g1
        bis2 = np.where(nl > P, np.minimum(inj, leaf_c), inj)
    return out, capex, watts, bis2


def _shapes_three(T: _Tables, survive: str, row) -> tuple:
    """3 tiers: the shapes of :func:`_shape_table`, their rows (through ``row``), capex, watts and
    twice their bisection."""
    s = T.specs
    P = T.planes
    g1 = int(round(T.g1 * 1e6))    # kb/s
    g2 = int(round(T.g2 * 1e6))
    ppm = 1_000_000
    cap1 = int(math.floor(T.cap[0] * ppm + 1e-6))
    cap2 = int(math.floor(T.cap[1] * ppm + 1e-6))
    E = T.E_opts
    capex = watts = bis2 = None
    keys = sorted(T.pair)
    prs = [T.pair[k] for k in keys]
    bundle_cache: dict = {}
    pid_l, b2_l, bp_l = [], [], []
    for j, pr in enumerate(prs):
        ck = (tuple(pr["b2s"]), bool(pr["partial"]))
        if ck not in bundle_cache:
            bb = list(_bundles(pr))
            bundle_cache[ck] = ([x[0] for x in bb], [x[1] for x in bb])
        b2s_, bps_ = bundle_cache[ck]
        pid_l.append(np.full(len(b2s_), j, dtype=np.int64))
        b2_l.append(b2s_)
        bp_l.append(bps_)
    pid = np.concatenate(pid_l) if pid_l else np.zeros(0, np.int64)
    b2 = np.array([v for x in b2_l for v in x], dtype=np.int64)
    bp = np.array([v for x in bp_l for v in x], dtype=np.int64)
    n = pid.size
    kE = np.array([k[0] for k in keys], dtype=np.int64)
    kD = np.array([k[1] for k in keys], dtype=np.int64)
    iE_a, iD_a = kE[pid] if n else kE[:0], kD[pid] if n else kD[:0]
    out = dict(n=n, iE=iE_a, iD=iD_a, b2=b2, bp=bp)
    if n:
        def pg(key, dtype):
            return _gather(prs, key, dtype)[pid]
        u0 = _gather(E, "U0", np.int64)[iE_a]
        t1 = _kbps(_gather(E, "t1", np.float64))[iE_a]
        nl = _gather(E, "nl", np.int64)[iE_a]
        u1 = _gather(T.D_opts, "U1", np.int64)[iD_a]
        spp, su, b1 = pg("spp", np.int64), pg("su", np.int64), pg("b1", np.int64)
        t2 = _kbps(_gather(prs, "t2", np.float64))[pid]
        t2l = _kbps(_gather(prs, "t2_last", np.float64))[pid]
        partial = pg("partial", bool)
        k2 = u1 // b2
        sl = spp * k2 * bp
        row("leaf uplinks at or under the target", _le([t1, ppm], [cap1, g1, u0], n))
        if survive == "link":
            row("leaf uplinks after a link failure", _le([t1, su], [g1, u0, su - 1], n))
        elif survive == "switch":
            row("leaf uplinks after a spine failure", _le([t1], [g1, u0 - b1], n))
            row("leaf uplinks after a super-spine failure", _le([t1, su], [g1, u0, su - b2], n))
        for tag, tt, s_, bb, applies in (("", t2, su, b2, None), (" (partly filled pod)", t2l, sl, bp, partial)):
            row("spine uplinks at or under the target" + tag, _le([tt, ppm], [cap2, g2, s_], n), applies)
            if survive == "link":
                row("spine uplinks after a spine-super link failure" + tag, _le([tt], [g2, s_ - 1], n), applies)
                row("spine uplinks after a leaf-spine link failure" + tag,
                    _le([tt, u0], [g2, s_, u0 - 1], n), applies)
                row("two spine uplinks per pod" + tag, s_ >= 2, applies)
            elif survive == "switch":
                row("spine uplinks after a spine failure" + tag, _le([tt, spp], [g2, s_, spp - 1], n), applies)
                row("spine uplinks after a super-spine failure" + tag, _le([tt], [g2, s_ - bb], n), applies)
                row("a spare spine and super-spine" + tag,
                    np.minimum(np.minimum(u0 - b1, s_ - bb), spp - 1) >= 1, applies)
        npods, ppp = pg("npods", np.int64), pg("ppp", np.int64)
        n_last = np.where(partial, pg("n_partial", np.int64), 0)
        nsw = [nl, npods * spp, P * spp * k2]
        capex = np.zeros(n)
        watts = np.zeros(n)
        for m_, sp in zip(nsw, s):   # the order of sum() in evaluate: same floating-point result
            capex = capex + m_ * sp.cost_usd
            watts = watts + m_ * sp.power_w
        capex = (capex + _gather(E, "c0", np.float64)[iE_a] + u0 * pg("c1", np.float64) + su * pg("c2", np.float64)
                 + sl * pg("c2l", np.float64))
        watts = (watts + _gather(E, "w0", np.float64)[iE_a] + u0 * pg("w1", np.float64) + su * pg("w2", np.float64)
                 + sl * pg("w2l", np.float64))
        inj = T.injection_gbps
        bis2 = np.full(n, inj)
        bis2 = np.where(nl > P, np.minimum(bis2, (nl * u0) * T.g1), bis2)
        bis2 = np.where(ppp > 1, np.minimum(bis2, ((npods - n_last) * su + n_last * sl) * T.g2), bis2)
    return out, capex, watts, bis2


def _shape_table(T: _Tables, survive: str, tau: float) -> dict:
    """Every structurally valid shape of ``T`` (the order of :func:`_shapes`) with, per shape,
    whether it meets every constraint row of the model, its capex and its watts.

    A row is ``load x a <= capacity x (a - k)`` in integers (loads rounded to kb/s, capacities
    down), compared exactly (int64, or Python integers where a product could leave int64): the
    same rows, with the same rounding, as the CP-SAT model, so the feasible shapes are the model's.
    Cached on ``T`` per (survive, tau): the objectives and alternatives reuse it.
    """
    key = (survive, float(tau))
    cache = T.__dict__.setdefault("_shape_cache", {})
    if key in cache:
        return cache[key]
    rows: list = []                # (name, feasible mask), one per constraint family that applies

    def row(name, ok, applies=None):
        if applies is not None:
            ok = ok | ~applies
            if not applies.any():
                return
        rows.append((name, ok))

    out, capex, watts, bis2 = (_shapes_three if T.three else _shapes_two)(T, survive, row)
    n = out["n"]
    if n:
        if T.bis_floor > 0:
            # requirements.min_bisection_gbps_per_accelerator (Mb/s; the floor rounded down, the
            # candidate's bisection rounded down: a shape exactly at the floor stays)
            row("bisection at or above the floor", _floor_mbps(T) <= np.floor(bis2 * 1e3))
        ok = np.ones(n, dtype=bool)
        for _, r in rows:
            ok &= r
        out.update(ok=ok, capex=np.asarray(capex, dtype=np.float64), watts=np.asarray(watts, dtype=np.float64))
    else:
        out.update(ok=np.zeros(0, bool), capex=np.zeros(0), watts=np.zeros(0))
    out["rows"] = rows
    cache[key] = out
    return out


def _shape_of(tab: dict, k: int, three: bool) -> tuple:
    """Shape ``k`` of a table as :func:`_shapes` yields it: (iE, iD, b)."""
    if three:
        return int(tab["iE"][k]), int(tab["iD"][k]), (int(tab["b2"][k]), int(tab["bp"][k]))
    return int(tab["iE"][k]), None, int(tab["b"][k])


def solve_cp(T: _Tables, survive: str, tau: float, wc: float, ww: float, *, time_limit: float, seed: int,
             workers: int, hint: Optional[tuple] = None, method: str = "auto") -> dict:
    """Choose one candidate: the cheapest shape that meets every row. Returns status, choice
    (iE, iD, b), objective, bound, and the method used.

    Extended formulation: one boolean per structurally valid shape (leaf option, spine
    option, bundle), exactly one of them true; every constraint family is one linear row
    ``sum_c x_c * (load_c * a_c - capacity_c * (a_c - k_c)) <= 0`` in integers (loads rounded
    up to Mb/s, capacities down), and the objective is linear in the booleans. With exactly one
    shape true a row reduces to that shape's own coefficient, so a shape can be chosen exactly
    when each of its coefficients is <= 0 (:func:`_shape_table`, compared exactly in integers).
    ``method``: ``"exhaustive"`` takes the cheapest such shape (ties: the first in shape order),
    the optimum of the model, proven by evaluating every shape; ``"cp"`` solves the model with
    CP-SAT (rows rescaled to stay inside int64 with their signs, which is all they test);
    ``"auto"`` is exhaustive up to ``EXHAUSTIVE_MAX_SHAPES`` shapes and CP-SAT above.
    """
    t0 = time.perf_counter()
    tab = _shape_table(T, survive, tau)
    n = tab["n"]
    if not n:
        return dict(status="INFEASIBLE", choice=None, seconds=time.perf_counter() - t0, scale=1.0, n_shapes=0,
                    method="exhaustive")
    if method not in ("auto", "exhaustive", "cp"):
        raise ValueError(f"method must be auto, exhaustive or cp, not {method!r}")
    costs = wc * tab["capex"] + ww * tab["watts"]
    n_rows = len(tab["rows"])
    if method == "exhaustive" or (method == "auto" and n <= EXHAUSTIVE_MAX_SHAPES):
        out = dict(status="INFEASIBLE", choice=None, scale=1.0, n_shapes=n, n_rows=n_rows, method="exhaustive")
        ok = np.flatnonzero(tab["ok"])
        if ok.size:
            k = int(ok[np.argmin(costs[ok])])   # argmin: the first of equal costs, in shape order
            out.update(status="OPTIMAL", choice=_shape_of(tab, k, T.three), objective=float(costs[k]),
                       bound=float(costs[k]))
        out["seconds"] = time.perf_counter() - t0
        return out
    return _solve_cp_sat(T, tab, costs, time_limit=time_limit, seed=seed, workers=workers, hint=hint, t0=t0)


def _engine(tables, survive: str, tau: float) -> str:
    """How the budget's tables were solved (see :func:`solve_cp`, method ``auto``)."""
    big = [_shape_table(T, survive, tau)["n"] > EXHAUSTIVE_MAX_SHAPES for T in tables]
    if not any(big):
        return "exhaustive enumeration"
    return "CP-SAT" if all(big) else "CP-SAT and exhaustive"


def _solve_cp_sat(T: _Tables, tab: dict, costs: np.ndarray, *, time_limit, seed, workers, hint, t0) -> dict:
    """The CP-SAT model of :func:`solve_cp` over a shape table: one boolean per shape, exactly one
    true, one row per constraint family with coefficients of the shape's sign (+1 where the shape
    breaks the family's row, -1 where it meets it), the objective scaled to integers."""
    from ortools.sat.python import cp_model
    from topo.solve.cpsat import configure
    from topo.core.signals import solve as solve_interruptible  # Ctrl-C/SIGTERM stay Python's, see topo.core.signals
    n = tab["n"]
    # integer objective: scaled so that its sum over all shapes stays far inside int64
    top = max(float(np.abs(costs).max()), 1e-300)
    scale = 1e12 / top / max(1, n // 1000)
    icost = np.round(costs * scale).astype(np.int64)
    m = cp_model.CpModel()
    x = [m.NewBoolVar(f"x{i}") for i in range(n)]
    m.AddExactlyOne(x)
    for _, ok in tab["rows"]:
        coef = np.where(ok, -1, 1).astype(np.int64)
        m.Add(cp_model.LinearExpr.WeightedSum(x, coef.tolist()) <= 0)
    m.Minimize(cp_model.LinearExpr.WeightedSum(x, icost.tolist()))
    if hint is not None:
        for k in range(n):
            if _shape_of(tab, k, T.three) == hint:
                m.AddHint(x[k], 1)
                break
    solver = cp_model.CpSolver()
    configure(solver, time_limit=time_limit, seed=seed, workers=workers)
    st = solve_interruptible(solver, m)
    out = dict(status=solver.StatusName(st), seconds=time.perf_counter() - t0, choice=None, scale=scale, n_shapes=n,
               n_rows=len(tab["rows"]), method="cp")
    if st in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        k = next(i for i, v in enumerate(x) if solver.BooleanValue(v))
        out.update(choice=_shape_of(tab, k, T.three), objective=solver.ObjectiveValue(),
                   bound=solver.BestObjectiveBound())
    return out


# --- the pipeline ----------------------------------------------------------------------------------
def _tier_specs(cluster, fabric):
    """Per-tier (names, specs, file switch values) of the design as given."""
    f = cluster.file.fabric
    if f.family == "fat_tree":
        from topo.model.spec import SwitchSpec
        sw = cluster.tiers[0].switch
        name = f"fat-tree-k{f.k}"
        spec = SwitchSpec(radix=f.k, port_gbps=sw.port_gbps, power_w=sw.power_w, cost_usd=sw.cost_usd,
                          ru=sw.ru, source=f"k={f.k} fat tree switch ({cluster.tiers[0].switch_name} port speed, power and price)")
        return [name] * 3, [spec] * 3, {name: spec}
    names = [t.switch_name for t in cluster.tiers]
    specs = [t.switch for t in cluster.tiers]
    return names, specs, {}


def _network_rack_fit(cluster, choices, names, specs):
    """Model choices whose switches each fit a network rack's power limit (switches in network
    racks: spines and super-spines, and leaves unless they sit top of rack, where their power
    counts in the compute rack instead). Network racks are otherwise filled by power, as many as
    the switches need, so a switch that alone draws more than the limit is what no budget can
    house. Returns (kept choices, 'tier switch (kW)' of the first one refused)."""
    limit_w = cluster.file.floor.network_rack_power_limit_kw * 1e3
    first_tier = 1 if cluster.file.floor.leaf_placement == "tor" else 0
    tier_names = ("leaf", "spine", "super-spine")
    kept, refused = [], None
    for ch in choices:
        bad = None
        for t, n in enumerate(ch):
            sp = cluster.switches[n] if n in cluster.switches else specs[t]
            if t >= first_tier and sp.power_w > limit_w:
                bad = f"{tier_names[min(t, 2)]} switch {n} ({sp.power_w / 1e3:g} kW)"
                break
        if bad is None:
            kept.append(ch)
        elif refused is None:
            refused = bad
    return kept, refused


def _cluster_after(cluster, models, specs, extra_switches, dec, three):
    from topo.model.spec import from_dict
    d = cluster.file.model_dump(mode="json")
    fab = d["fabric"]
    cat = d.setdefault("catalog", {}).setdefault("switches", {})
    for n, sp in extra_switches.items():
        cat[n] = sp.model_dump(mode="json")
    tiers = []

    def sw_value(t):
        name = models[t]
        if name in cluster.switches or name in cat:
            return name
        # an inline switch given in the file: keep it inline
        return specs[t].model_dump(mode="json")
    tiers.append({"switch": sw_value(0), "oversubscription": dec["d0"] / dec["u0"], "bundle": dec["b1"]})
    if three:
        t1 = {"switch": sw_value(1), "oversubscription": dec["d1"] / dec["u1"], "bundle": dec["b2"]}
        if dec.get("partial_pod_bundle", dec["b2"]) != dec["b2"]:
            t1["partial_pod_bundle"] = dec["partial_pod_bundle"]
        tiers.append(t1)
        tiers.append({"switch": sw_value(2), "oversubscription": 1.0, "bundle": None})
    else:
        tiers.append({"switch": sw_value(1), "oversubscription": 1.0, "bundle": None})
    if fab["family"] == "fat_tree":
        fab["family"] = "clos"
        fab["k"] = None
    fab["tiers"] = tiers
    return d, from_dict(d, source="(budget)", base_dir=cluster.base_dir)


def _bom_money(cluster, bom) -> dict:
    e = _energy_usd_per_w(cluster)
    t = bom["totals"]
    capex = float(t["network_cost_usd"])
    kw = float(t["network_kw"])
    energy = kw * 1e3 * e
    return {"capex_usd": capex, "network_kw": kw, "energy_usd": energy, "total_usd": capex + energy}


def _nonblocking_dict(cluster) -> dict:
    d = cluster.file.model_dump(mode="json")
    if d["fabric"]["family"] != "fat_tree":
        for t in d["fabric"]["tiers"]:
            t["oversubscription"] = 1.0
    return d


def _network_positions(fabric, cluster) -> dict:
    """Switch power grouped by floor position (one network row-end or spine position each)."""
    sw = np.flatnonzero(fabric.node_tier > 0)
    tiers = fabric.node_tier[sw].astype(np.int64) - 1
    watts = []
    for t in range(fabric.n_tiers):
        name = fabric.switch_models[t]
        spec = cluster.switches.get(name) or cluster.tiers[t].switch
        watts.append(spec.power_w)
    w = np.asarray(watts)[tiers]
    key = np.round(fabric.node_x_m[sw] * 100).astype(np.int64) * 10_000_000 + np.round(fabric.node_y_m[sw] * 100).astype(np.int64)
    uk, inv = np.unique(key, return_inverse=True)
    kw = np.bincount(inv.ravel(), weights=w) / 1e3
    limit = cluster.file.floor.network_rack_power_limit_kw
    racks = np.ceil(kw / limit - 1e-9).astype(np.int64)
    out = {"limit_kw_per_network_rack": limit, "positions": int(uk.size),
           "network_racks": int(racks.sum()), "max_position_kw": float(kw.max(initial=0.0)),
           "total_switch_kw": float(kw.sum())}
    if cluster.file.floor.leaf_placement == "tor":
        out["note"] = "top-of-rack leaves draw power in their compute rack"
    return out


def budget(cluster, fabric=None, *, placement=None, demands=None, objective: Optional[str] = None,
           survive: Optional[str] = None, target_util: Optional[float] = None,
           time_limit: Optional[float] = None, seed: Optional[int] = None, workers: Optional[int] = None,
           switch_choice: str = "fixed", max_oversubscription: Optional[float] = None,
           min_bisection: Optional[float] = None, scenarios: Optional[list] = None,
           check: bool = True, alternatives: bool = True, _shared: Optional[dict] = None) -> BudgetResult:
    """Choose the fabric's link budget with CP-SAT and check it independently (``alternatives``:
    also solve the other objectives for comparison; the design search, which compares designs, skips it).

    Parameters
    ----------
    cluster : Cluster (from topo.model.spec.load)
    fabric : the fabric as given (built when None)
    placement : dict job -> endpoint ids in rank order (default: the in-order placement of the
        jobs that fit, see topo.traffic.fit_in_order); jobs absent from it carry no traffic
        and are listed in the result's ``unplaced``
    demands : topo.traffic.Demands to carry (default: the jobs' and traffic patterns' flows)
    objective : "cost" (capex + energy), "power" or "balanced"
    survive : "none" | "link" | "switch" | "plane" (default goals.survive)
    target_util : peak utilisation of switch links in normal operation (default goals.target_utilization)
    switch_choice : "fixed" (the file's switch per tier) or "catalog" (any catalog switch per tier)
    max_oversubscription : the largest down/up port ratio allowed: one number for every tier with
        uplinks, or a mapping (or the CLI's string ``leaf=1,spine=3``) over ``leaf`` and ``spine``
        (a 3-tier spine); a tier not named is uncapped (default goals.max_oversubscription)
    min_bisection : the smallest bisection per accelerator allowed, Gb/s (describe's
        bisection_per_accelerator_gbps; default requirements.min_bisection_gbps_per_accelerator)
    scenarios : the traffic the design must carry at the target, each alone: spec.Scenario
        mappings or the CLI's ``uniform=GBPS``, ``permutation=GBPS``, ``jobs``, ``jobs=GROWTH``
        (default requirements.scenarios; None there: the jobs and traffic patterns, as given).
        ``demands`` (or the placed jobs') is the job mix: carried only by a ``jobs`` scenario,
        its rates times the scenario's growth

    Raises SpecError for bad input and when no budget meets the target or survives the failure;
    SolverError when the solver finds nothing in time or the independent check rejects its answer.
    Cost: O(flows) per candidate grouping (64 leaf and 64 x 64 pod ones at radix 128), 3 decisions.

    ``_shared`` (private; :func:`budget_for_transport`'s steps share one): the traffic and model data
    of a call kept for later calls with the same inputs (see :func:`_shared_traffic`).
    """
    from topo.routing.describe import bill_of_materials
    from topo.model.fabric import build
    from topo.solve import budget_check
    t_start = time.perf_counter()
    if objective is None:
        objective = cluster.file.goals.objective
    survive, tau, time_limit, seed, workers, os_caps = _options(
        cluster, objective, survive, target_util, time_limit, seed, workers, switch_choice, max_oversubscription)
    req = _requirements(cluster, min_bisection, scenarios)
    if fabric is None:
        fabric = build(cluster)
    _family_check(cluster, fabric, survive)
    tier_caps = _tier_caps(os_caps, fabric)
    placement, unplaced, demands, analytic, eff, data = _shared_traffic(_shared, cluster, fabric, placement,
                                                                        demands, req)
    n_acc = max(int(np.asarray(fabric.ep_is_accel).sum()), 1)
    bis_floor = req["floor"][1] * n_acc if req["floor"] else 0.0
    data.verify(fabric)  # the model's leaves and pods are the built fabric's, or no budget
    three = fabric.n_tiers == 3
    names, specs, extra = _tier_specs(cluster, fabric)
    b1_fixed = cluster.file.fabric.tiers[0].bundle if (cluster.file.fabric.family != "fat_tree") else 1
    choices = _switch_choices(cluster, fabric, data, switch_choice, names, specs, extra)
    tables, tables_s = _all_tables(cluster, data, choices, specs, extra, three, survive, tau, tier_caps, b1_fixed,
                                   time_limit, bis_floor)
    deadline = time.monotonic() + time_limit   # the solver's limit, in wall seconds after the tables

    bom_given = bill_of_materials(fabric, cluster)
    ref = {"capex": float(bom_given["totals"]["network_cost_usd"]), "watts": float(bom_given["totals"]["network_kw"]) * 1e3}
    run = dict(tables=tables, cluster=cluster, ref=ref, survive=survive, tau=tau, seed=seed, workers=workers)
    best, statuses, solve_s, bound, weights = _optimise(objective, deadline, **run)
    if best is None:
        if all(s == "INFEASIBLE" for s in statuses):
            raise _infeasible(data, tables, survive, tau, target_util is not None, tier_caps, req)
        raise TimeLimitError(f"the link-budget solver found no budget within {time_limit:g} s "
                             f"(statuses: {sorted(set(statuses))}); raise the time limit")
    all_opt = all(s in ("OPTIMAL", "INFEASIBLE") for s in statuses)
    status = "optimal" if all_opt else "feasible"
    gap = 0.0 if all_opt else max(0.0, (best["value"] - bound) / max(abs(best["value"]), 1e-12))

    T, ev = best["T"], best["ev"]
    after_dict, after = _cluster_after(cluster, T.models, T.specs, extra, ev["dec"], three)
    after_fab = build(after)
    bom_after = bill_of_materials(after_fab, after)
    claims = {"switch_counts": [int(x) for x in ev["counts"]], "capex_usd": ev["capex"], "watts": ev["watts"]}
    caps = {"leaf-spine": T.cap[0], "spine-super": T.cap[1]}
    chk_req = {"min_bisection_gbps_per_accelerator": req["floor"][1] if req["floor"] else None,
               "scenarios": analytic}
    chk = budget_check.check(after, demands, survive=survive, target_util=caps, claims=claims,
                             efficiency=eff, requirements=chk_req if (req["floor"] or analytic) else None) \
        if check else {"ok": None, "skipped": True}
    if check and not chk["ok"]:
        raise SolverError("the independent check rejected the link budget: " + "; ".join(chk["problems"]))
    before_routed = _shared_before(_shared, fabric, demands, eff) if check else None

    money, nb_fab = _budget_money(cluster, fabric, after, bom_after, bom_given)
    alternatives = _alternatives(objective if alternatives else None, best, statuses, time_limit, run, objective)
    tiers_out, util_out = _tier_rows(cluster, fabric, after_fab, data, T, ev, names, specs, three, tau,
                                     before_routed, chk if check else None)
    headroom = {key: {"worst_util_after_failure": v, "headroom": (1.0 - v) if v is not None else None}
                for key, v in (chk.get("util_failure", {}) if check else {}).items()}
    headroom["failure"] = survive
    network_power = _network_power(after_fab, after, bom_after)
    n_cand = sum(1 for T_ in tables for _ in enumerate_all(T_, survive, tau)) if sum(
        len(T_.E_opts) * max(len(T_.D_opts), 1) for T_ in tables) <= 20000 else None
    solver = {"engine": _engine(tables, survive, tau), "status": status, "statuses": statuses, "objective": best["value"],
              "bound": bound, "gap": gap, "solve_seconds": solve_s, "tables_seconds": tables_s,
              "total_seconds": time.perf_counter() - t_start, "seed": seed, "workers": workers,
              "time_limit_s": time_limit, "objective_weights": {"per_usd_capex": weights[0], "per_watt": weights[1]},
              "model_choices": len(tables), "feasible_candidates": n_cand,
              "pruned": _merge_pruned(tables), "space": list(SPACE_RULES)}
    _solver_notes(solver, data, req, os_caps, tier_caps, fabric, three)
    requirements = _requirement_rows(req, chk if check else None, caps, tau, ev, fabric, after_fab, nb_fab)
    return BudgetResult(
        requirements=requirements,
        cluster=cluster.name, family=cluster.file.fabric.family, objective=objective, survive=survive,
        target_utilization=tau, switch_choice=switch_choice, tiers=tuple(tiers_out),
        bill_of_materials={**bom_after, "endpoint_links_by_optic": _endpoint_optics(after_fab)},
        network_power=network_power, cost=money, utilization=util_out, headroom=headroom, solver=solver,
        alternatives=alternatives, check=chk, cluster_after=after_dict, unplaced=unplaced)


def _all_tables(cluster, data, choices, specs, extra, three, survive, tau, tier_caps, b1_fixed, time_limit,
                bis_floor) -> tuple[list, float]:
    """(:func:`_tables` of every switch-model choice, wall seconds they took). The time limit bounds
    the tables and the solver each: the tables (exact enumeration, no search; their work grows with
    the fabric) in CPU seconds of this process, which other processes' load does not stretch, the
    solver in wall seconds from the end of the tables. TimeLimitError when the tables take longer."""
    tables_end = time.process_time() + time_limit
    tables = []
    t_tab = time.perf_counter()
    for ch in choices:
        sp = [cluster.switches[n] if n in cluster.switches else specs[i] for i, n in enumerate(ch)]
        if extra:
            sp = list(specs)
        tables.append(_tables(data, ch, sp, three, survive, tau, tier_caps, b1_fixed, tables_end, bis_floor))
    return tables, time.perf_counter() - t_tab


def _shared_traffic(shared: Optional[dict], cluster, fabric, placement, demands, req):
    """:func:`_budget_traffic`, kept in ``shared`` (when given) and reused for the same inputs: the
    same cluster, fabric, placement and demands objects and equal requirements."""
    inputs = (cluster, fabric, placement, demands)
    hit = shared.get("traffic") if shared is not None else None
    if hit is not None and all(a is b for a, b in zip(hit[0], inputs)) and hit[1] == req:
        return hit[2]
    out = _budget_traffic(cluster, fabric, placement, demands, req)
    if shared is not None:
        shared["traffic"] = (inputs, req, out)
    return out


def _shared_before(shared: Optional[dict], fabric, demands, eff: float) -> dict:
    """The routed peaks of the fabric as given (:func:`topo.solve.budget_check.routed_peaks`), kept in
    ``shared`` (when given) for later calls with the same fabric and demands objects and efficiency:
    every target of the transport search routes the same traffic on the same fabric."""
    from topo.solve import budget_check
    hit = shared.get("before_routed") if shared is not None else None
    if hit is not None and hit[0] is fabric and hit[1] is demands and hit[2] == eff:
        return hit[3]
    out = budget_check.routed_peaks(fabric, demands, eff)
    if shared is not None:
        shared["before_routed"] = (fabric, demands, eff, out)
    return out


def _budget_traffic(cluster, fabric, placement, demands, req):
    """(placement, unplaced jobs, demands to carry, analytic scenarios, wire efficiency, model data):
    the job mix scaled to its ``jobs`` scenario's growth (or left out when the requirements list
    scenarios without one); SpecError when a rail-only fabric has no path for some traffic."""
    from topo.model.spec import wire_efficiency
    if demands is None or placement is not None:
        placement, unplaced = _placement(cluster, fabric, placement)
    else:
        unplaced = {}  # demands given without a placement: nothing to say about the jobs
    if demands is None:
        demands = _demands(cluster, fabric, placement)
    if req["scenarios"] is not None:
        growth = [sc["growth"] for sc in req["scenarios"] if sc["kind"] == "jobs"]
        # the job mix is one scenario: carried (times its growth) only when listed
        demands = _scaled(demands, max(growth)) if growth else demands.select(np.zeros(demands.n, bool))
    analytic = [sc for sc in (req["scenarios"] or []) if sc["kind"] != "jobs"]
    eff = wire_efficiency(cluster)
    data = _Data(cluster, fabric, demands, eff, analytic)
    if data.no_rail_path_gbps > 0:
        raise SpecError([("jobs" if cluster.file.jobs else "traffic",
                          f"{data.no_rail_path_gbps:.3g} Gb/s (wire) of traffic crosses rails from an endpoint "
                          f"whose scale-up domain has no member on the destination's rail; a rail-only fabric has "
                          f"no path for it (choose rail_optimized or clos, or place the jobs on one rail)")])
    return placement, unplaced, demands, analytic, eff, data


def _switch_choices(cluster, fabric, data, switch_choice, names, specs, extra) -> list:
    """The switch model per tier to size: the file's, or with ``catalog`` every catalog combination
    whose leaf port serves the NIC and whose adjacent tiers' ports can be joined; each housed
    within the network rack power limit (SpecError when none is)."""
    if switch_choice == "catalog" and not extra:
        # any catalog switch per tier; a leaf port slower than the NIC port cannot serve it
        cat = sorted(cluster.switches)
        choices = [ch for ch in itertools.product(*([cat] * fabric.n_tiers))
                   if cluster.switches[ch[0]].port_gbps >= data.nic_port
                   and all(_lanes(cluster.switches[a].port_gbps, cluster.switches[b].port_gbps) is not None
                           for a, b in zip(ch, ch[1:]))]
    else:
        choices = [tuple(names)]
    choices, too_hot = _network_rack_fit(cluster, choices, names, specs)
    if not choices:
        limit = cluster.file.floor.network_rack_power_limit_kw
        raise SpecError([("floor.network_rack_power_limit_kw",
                          f"{too_hot} draws more than a network rack may ({limit:g} kW), so no budget can house it; "
                          f"raise the limit or choose another switch")])
    return choices


def _optimise(obj_name, until, *, tables, cluster, ref, survive, tau, seed, workers):
    """The best design over every model choice's tables for one objective, solved by CP-SAT
    within ``until`` (time.monotonic): (best or None, statuses, solve seconds, bound, weights)."""
    wc, ww = _objective_weights(cluster, obj_name, ref)
    best, statuses, secs, bound_sum = None, [], 0.0, None
    for T in tables:
        remaining = max(until - time.monotonic(), 0.05)
        r = solve_cp(T, survive, tau, wc, ww, time_limit=remaining, seed=seed, workers=workers)
        statuses.append(r["status"])
        secs += r.get("seconds", 0.0)
        if r["choice"] is None:
            continue
        iE, iD, b = r["choice"]
        ev = evaluate(T, survive, tau, iE, iD, b)
        if ev is None:
            raise SolverError("the link-budget solver returned a candidate its own evaluation rejects "
                              f"(leaf option {iE}, spine option {iD}, bundle {b})")
        val = wc * ev["capex"] + ww * ev["watts"]
        lb = r["bound"] / r["scale"]
        if best is None or val < best["value"]:
            best = dict(value=val, T=T, iE=iE, iD=iD, b=b, ev=ev, status=r["status"])
        bound_sum = lb if bound_sum is None else min(bound_sum, lb)
    return best, statuses, secs, bound_sum, (wc, ww)


def _budget_money(cluster, fabric, after, bom_after, bom_given):
    """(cost of the chosen design, the design as given and a non-blocking design carrying the same
    traffic, with what the chosen one saves; the non-blocking fabric)."""
    from topo.model.fabric import build
    from topo.model.spec import from_dict
    from topo.routing.describe import bill_of_materials
    nb = _nonblocking_dict(cluster)
    try:
        nb_cluster = from_dict(nb, source="(non-blocking)", base_dir=cluster.base_dir)
        nb_fab = build(nb_cluster)
        nb_bom = bill_of_materials(nb_fab, nb_cluster)
    except SpecError:
        # a stated pod structure the 1:1 design cannot take (e.g. spine up ports = leaves per
        # pod no longer fit the radix): compare against the design as given instead
        nb_cluster, nb_bom, nb_fab = cluster, bom_given, fabric
    money = {"chosen": _bom_money(after, bom_after), "as_given": _bom_money(cluster, bom_given),
             "non_blocking": _bom_money(nb_cluster, nb_bom)}
    for k, bm in (("chosen", bom_after), ("as_given", bom_given), ("non_blocking", nb_bom)):
        money[k]["switch_counts"] = [int(x["count"]) for x in bm["switches"]]
    for k in ("as_given", "non_blocking"):
        money[f"saved_vs_{k}"] = {
            "capex_usd": money[k]["capex_usd"] - money["chosen"]["capex_usd"],
            "network_kw": money[k]["network_kw"] - money["chosen"]["network_kw"],
            "total_usd": money[k]["total_usd"] - money["chosen"]["total_usd"],
            "total_fraction": ((money[k]["total_usd"] - money["chosen"]["total_usd"]) / money[k]["total_usd"]
                               if money[k]["total_usd"] > 0 else 0.0)}
    money["horizon_years"] = cluster.file.costs.horizon_years
    money["electricity_usd_per_kwh"] = cluster.file.costs.electricity_usd_per_kwh
    money["pue"] = cluster.file.costs.pue
    return money, nb_fab


def _alternatives(objective, best, statuses, time_limit, run: dict, chosen=None) -> dict:
    """The optimum of every objective (the chosen one's as found), each solved within ``time_limit``;
    with ``objective`` None, only the ``chosen`` one's (nothing solved again)."""
    cluster = run["cluster"]
    alternatives = {}
    if objective is None:
        objective = chosen
        wanted = [chosen]
    else:
        wanted = list(OBJECTIVES)
    for o in wanted:
        if o == objective:
            b_o, st_o = best, statuses
        else:
            b_o, st_o = _optimise(o, time.monotonic() + time_limit, **run)[:2]
        if b_o is None:
            alternatives[o] = {"status": "infeasible" if all(x == "INFEASIBLE" for x in st_o) else "not solved within the time limit"}
            continue
        e_o = b_o["ev"]
        energy = e_o["watts"] * _energy_usd_per_w(cluster)
        alternatives[o] = {"status": b_o["status"].lower(), "capex_usd": e_o["capex"], "network_kw": e_o["watts"] / 1e3, "energy_usd": energy,
                           "total_usd": e_o["capex"] + energy, "switch_counts": e_o["counts"],
                           "models": list(b_o["T"].models), "decisions": e_o["dec"]}
    return alternatives


def _tier_rows(cluster, fabric, after_fab, data, T, ev, names, specs, three, tau, before_routed, chk):
    """(one row per switch tier: decisions, counts and links by optic; per link tier: utilisation
    modelled and routed, before and after, against the target). ``chk`` is None without the check."""
    from topo.model.catalog import optic_part
    tier_names = ("leaf", "spine", "super-spine")
    up_links = (np.arange(after_fab.n_links) & 1) == 0
    tiers_out = []
    util_out = {}
    dec = ev["dec"]
    before_model = _given_model_util(data, fabric, names, specs)
    for t in range(after_fab.n_tiers):
        n_up = int(((after_fab.link_tier == t + 1) & up_links).sum())
        cnt = int(after_fab.tier_switch_counts[t])
        row = {"tier": tier_names[t], "model": T.models[t], "radix": T.specs[t].radix,
               "port_gbps": T.specs[t].port_gbps, "switches": cnt,
               "switches_as_given": int(fabric.tier_switch_counts[t]),
               "model_as_given": names[t],
               "oversubscription": _fin(after_fab.tier_oversubscription[t]),
               "oversubscription_as_given": _fin(fabric.tier_oversubscription[t]),
               "uplinks_per_switch": (n_up // cnt) if cnt else 0, "uplinks": n_up}
        if t == 0:
            row.update(down_ports=dec["d0"], up_ports=dec["u0"], breakout=int(after_fab.meta["breakout"]),
                       endpoint_ports=int(after_fab.meta["endpoint_ports_per_leaf"]), bundle=dec["b1"])
        if t == 1 and three:
            row.update(down_ports=dec["d1"], up_ports=dec["u1"], bundle=dec["b2"],
                       leaves_per_pod=dec["leaves_per_pod"], pods_per_plane=dec["pods_per_plane"])
            if "partial_pod_bundle" in dec:
                row.update(partial_pod_bundle=dec["partial_pod_bundle"],
                           partial_pod_leaves=int(after_fab.meta.get("partial_pod_leaves", 0)) or None)
        if t == 1 and not three:
            row.update(downlinks_per_switch=int(((after_fab.link_tier == 1) & up_links).sum()) // max(cnt, 1))
        if t < after_fab.n_tiers - 1:
            lt = t + 1
            m = (after_fab.link_tier == lt) & up_links
            rc, rn = np.unique(after_fab.link_reach[m], return_counts=True)
            part = lambda r: optic_part(cluster.optics, _REACH[r], cluster.file.costs.allow_lpo)
            row["links_by_optic"] = {part(int(r)): int(n) for r, n in zip(rc, rn)}
            key = ("leaf-spine", "spine-super")[t]
            util_out[key] = {
                "model_before": before_model[t], "model_after": ev["util"][t],
                "routed_before": (before_routed["tier_max"].get(key) if before_routed else None),
                "routed_after": (chk.get("util_after", {}).get(key) if chk is not None else None),
                "target": tau, "effective_target": T.cap[t],
                "nonblocking_model": T.nonblocking_util[t]}
        tiers_out.append(row)
    return tiers_out, util_out


def _endpoint_optics(fabric) -> dict:
    """Endpoint links per reach class (one direction)."""
    m0 = (fabric.link_tier == 0) & ((np.arange(fabric.n_links) & 1) == 0)
    rc, rn = np.unique(fabric.link_reach[m0], return_counts=True)
    return {_REACH[int(r)]: int(n) for r, n in zip(rc, rn)}


def _network_power(after_fab, after, bom_after) -> dict:
    """Rack power of the chosen design (racks over their limit named, at most 50), where the network
    racks stand, and the network's power."""
    from topo.routing.describe import rack_power
    rp = rack_power(after_fab, after)
    over = np.flatnonzero(rp["over"])
    return {"racks": {"max_kw": float(rp["kw"].max(initial=0.0)), "total_kw": float(rp["kw"].sum()),
                      "over_limit": [{"rack": after_fab.rack_name(i), "kw": float(rp["kw"][i]),
                                      "limit_kw": float(rp["limit_kw"][i])} for i in over[:50]],
                      "racks_over_limit": int(over.size)},
            "network": _network_positions(after_fab, after),
            "network_kw": float(bom_after["totals"]["network_kw"])}


def _solver_notes(solver: dict, data, req, os_caps, tier_caps, fabric, three) -> None:
    """Add to the solver section: a rail-only fabric's cross-rail traffic, and the rules the
    requirements and oversubscription caps add to the searched space."""
    if data.family == "rail_only":
        # the traffic that takes the extra scale-up hop to its destination's rail (wire Gb/s)
        solver["cross_rail"] = {"flows": data.cross_rail_flows, "scaleup_gbps": data.cross_rail_gbps,
                                "share_of_offered": (data.cross_rail_gbps / data.offered_gbps
                                                     if data.offered_gbps > 0 else 0.0)}
    if req["floor"] or req["scenarios"] is not None:
        solver["space"].append(_requirements_rule(req))
    if os_caps is not None:
        solver["space"].append(_caps_rule(os_caps, fabric))
        solver["max_oversubscription"] = {"source": os_caps[0], "leaf": tier_caps[0],
                                          **({"spine": tier_caps[1]} if three else {})}


def _requirements_rule(req) -> str:
    """The solver section's statement of the design requirements in force."""
    bits = []
    if req["floor"]:
        bits.append(f"bisection at least {req['floor'][1]:g} Gb/s per accelerator ({req['floor'][0]})")
    if req["scenarios"] is not None:
        bits.append("each of these traffic scenarios alone at or under the target: "
                    + ", ".join(sc["label"] for sc in req["scenarios"]))
    return "design requirements: " + "; ".join(bits) + "; every candidate that misses one is excluded"


def _requirement_rows(req, chk, caps, tau, ev, fabric, after_fab, nb_fab) -> dict:
    """Each stated requirement with its required value, what the independent check measured on the
    rebuilt design (achieved) and the margin; and the bisection of the designs compared."""
    from topo.routing.describe import bisection_gbps
    n_acc = max(int(np.asarray(fabric.ep_is_accel).sum()), 1)

    def bis(f):
        b = bisection_gbps(f)
        return {"gbps": b, "per_accelerator_gbps": (b * 2 / n_acc) if b is not None else None}
    rows = []
    measured = (chk or {}).get("requirements") or {}
    if req["floor"]:
        where, floor = req["floor"]
        got = measured.get("bisection_per_accelerator_gbps")
        rows.append({"requirement": "bisection per accelerator", "source": where, "unit": "Gb/s",
                     "required": floor, "achieved": got, "model": ev["bisection_gbps"] * 2 / n_acc,
                     "margin": (got - floor) if got is not None else None,
                     "met": (got >= floor * (1 - 1e-9)) if got is not None else None,
                     "method": "rebuilt fabric, topo.describe.bisection_gbps"})
    by_label = {r["label"]: r for r in measured.get("scenarios", [])}
    for sc in req["scenarios"] or []:
        if sc["kind"] == "jobs":
            util = (chk or {}).get("util_after") if chk else None
            fail = (chk or {}).get("util_failure") if chk else None
            method = "routed (fluid ECMP) job mix" + (f" x {sc['growth']:g}" if sc["growth"] != 1.0 else "")
        else:
            m = by_label.get(sc["label"], {})
            util, fail, method = m.get("util"), m.get("util_failure"), m.get("method")
        row = {"requirement": sc["label"], "source": sc["where"], "unit": "peak switch-link utilisation",
               "required": tau, "achieved": None, "margin": None, "met": None, "method": method}
        if util:
            row["achieved"] = max(util.values())
            # against the stated target: where the traffic loads a tier beyond it even when
            # non-blocking, the budget may run the tier as loaded as that (effective_target), and
            # the requirement is reported not met (no design meets it)
            row["margin"] = tau - row["achieved"]
            row["met"] = row["margin"] >= -1e-6
            row["per_tier"] = util
            if any(abs(caps.get(k, tau) - tau) > 1e-12 for k in util):
                row["effective_target"] = {k: caps.get(k, tau) for k in util}
        if fail:
            row["after_failure"] = fail
        rows.append(row)
    return {"rows": rows, "bisection": {"chosen": bis(after_fab), "as_given": bis(fabric), "non_blocking": bis(nb_fab)},
            "scenarios_stated": req["scenarios"] is not None}


# --- transport-aware search ------------------------------------------------------------------
TARGET_STEPS = (1.0, 0.85, 0.7, 0.55, 0.4, 0.25, 0.15, 0.1, 0.05, 0.025, 0.01)
TAIL_QUANTILE = 0.95   # of per-job penalties; 'higher' makes it the worst job up to 20 jobs


def _job_times(cluster, fabric, placement, seed, routing) -> dict:
    """Per-job collective time and ideal time under one routing model, and the fabric's max utilisation."""
    from topo.routing.engine import analyze
    a = analyze(cluster, fabric, placement=placement, routing=routing, seed=seed, compare=False, all_to_all=False)
    d = a.to_dict()
    jobs = {j["name"]: (j["time_s"], j.get("ideal_s")) for j in d.get("jobs", []) if j.get("time_s")}
    return {"jobs": jobs, "routing": d.get("routing"), "max_util": d.get("max_util")}


def transport_slowdown(base: dict, cand: dict) -> dict:
    """How much slower a candidate fabric runs the jobs than the fabric as given.

    ``base`` and ``cand``: job -> (time_s, ideal_s) under the same routing model and seed.
    Under hashing each fabric is one random draw of collisions, so a single job can be
    unlucky on either; the comparison is therefore on the whole set: ``total`` is the summed
    collective time on the candidate over that on the fabric as given, and ``tail`` the 95th
    percentile of the jobs' penalties (time over ideal time; with 20 jobs or fewer, the
    worst penalty) on the candidate over the same on the fabric as given.
    ``slowdown`` is the larger of the two; ``worst_job`` / ``worst_job_slowdown`` name the job
    whose own time grew most (for information).
    """
    # jobs that cannot run on the fabric as given (infinite time) say nothing about the budget
    names = [j for j in cand if j in base and 0 < base[j][0] < math.inf]
    if not names:
        return {"slowdown": 1.0, "total": 1.0, "tail": 1.0, "worst_job": None, "worst_job_slowdown": 1.0}
    total = sum(cand[j][0] for j in names) / sum(base[j][0] for j in names)

    def tail_penalty(t):
        pen = np.array([t[j][0] / t[j][1] if t[j][1] else 1.0 for j in names])
        return float(np.quantile(pen, TAIL_QUANTILE, method="higher"))
    tail = tail_penalty(cand) / tail_penalty(base)
    wj = max(names, key=lambda j: cand[j][0] / base[j][0])
    return {"slowdown": max(total, tail), "total": total, "tail": tail,
            "worst_job": wj, "worst_job_slowdown": cand[wj][0] / base[wj][0]}


def budget_for_transport(cluster, fabric=None, *, placement=None, max_slowdown: Optional[float] = None,
                         routing: Optional[str] = None, baseline_times: Optional[dict] = None,
                         target_util: Optional[float] = None, seed: Optional[int] = None,
                         steps=TARGET_STEPS, **kw) -> BudgetResult:
    """The cheapest budget that does not slow the jobs by more than ``max_slowdown`` under
    the cluster's own transport model.

    :func:`budget` sizes links for ideal ECMP. Under RoCEv2 hashing with few queue pairs,
    collisions load some links well past that, so a budget that is right for ideal ECMP can
    slow jobs down. This routes the placed jobs on the fabric as given and on each candidate
    budget with ``routing`` (default: the transport's model, e.g. roce-hash) and the same seed,
    and lowers the target utilisation along ``steps`` (fractions of the target) until the
    candidate's :func:`transport_slowdown` (summed job time, and the 95th-percentile job
    penalty over ideal time, each against the fabric as given) is at most ``max_slowdown``
    (default ``goals.max_job_slowdown``). The search stops when a candidate saves nothing against the
    fabric as given. When no step passes, the candidate with the smallest slowdown (then the
    cheapest) is returned with
    ``transport_check["accepted"] = False``. Every candidate is a full, independently checked
    :func:`budget` result; the search is recorded in ``transport_check``.
    ``baseline_times``: job -> (time_s, ideal_s) on the fabric as given, when already routed.
    With ``max_slowdown`` None and the goal null, :func:`budget` runs once.
    """
    from topo.model.fabric import build
    from topo.model.spec import from_dict
    g = cluster.file.goals
    if max_slowdown is None:
        max_slowdown = g.max_job_slowdown
    from topo.model.spec import run_settings
    seed = run_settings(cluster, seed=seed).seed
    tau0 = g.target_utilization if target_util is None else target_util
    if fabric is None:
        fabric = build(cluster)
    if placement is None and cluster.file.jobs:
        placement, _ = _placement(cluster, fabric, None)  # the jobs that fit, in order
    kw.setdefault("demands", _demands(cluster, fabric, placement))  # the same traffic at every step
    kw["_shared"] = {}   # and the same model data: only the target differs between the steps
    first = budget(cluster, fabric, placement=placement, target_util=target_util, seed=seed, **kw)
    if max_slowdown is None or not cluster.file.jobs:
        return first
    t0 = time.perf_counter()
    base = baseline_times if baseline_times is not None else _job_times(cluster, fabric, placement, seed, routing)["jobs"]
    tried, seen = [], {}
    best = None
    for k, f in enumerate(steps):
        tau = tau0 * f
        try:
            res = first if k == 0 else budget(cluster, fabric, placement=placement, target_util=tau, seed=seed, **kw)
        except (SpecError, SolverError) as e:
            tried.append({"target_utilization": tau, "error": str(e).splitlines()[-1].strip()})
            break
        key = json.dumps(res.cluster_after.get("fabric"), sort_keys=True, default=str)
        if key in seen:  # the same fabric as an earlier step: same routing, nothing to compare
            tried.append(dict(seen[key], target_utilization=tau, same_as=seen[key]["target_utilization"]))
            continue
        ca = from_dict(res.cluster_after, source="link budget", base_dir=cluster.base_dir)
        jt = _job_times(ca, build(ca), placement, seed, routing)
        ev = {"target_utilization": tau, "routing": jt["routing"], "max_util": jt["max_util"],
              "total_usd": res.cost["chosen"]["total_usd"],
              "saved_vs_as_given": res.cost["saved_vs_as_given"]["total_fraction"],
              **transport_slowdown(base, jt["jobs"])}
        seen[key] = ev
        tried.append(ev)
        ok = ev["slowdown"] <= max_slowdown
        rank = (not ok, 0.0 if ok else ev["slowdown"], ev["total_usd"])
        if best is None or rank < best[0]:
            best = (rank, res, ev)
        if ok or ev["saved_vs_as_given"] <= 0:
            break
    _, res, ev = best
    check = {"routing": ev.get("routing"), "max_slowdown": max_slowdown, "accepted": ev["slowdown"] <= max_slowdown,
             "chosen_target_utilization": ev["target_utilization"], "slowdown": ev["slowdown"],
             "total": ev["total"], "tail": ev["tail"], "worst_job": ev["worst_job"],
             "worst_job_slowdown": ev["worst_job_slowdown"], "tried": tried, "seconds": time.perf_counter() - t0}
    return replace(res, transport_check=to_jsonable(check))


def _fin(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _merge_pruned(tables) -> dict:
    out: dict = {}
    for T in tables:
        for k, v in T.pruned.items():
            out[k] = out.get(k, 0) + v
    return out


def _given_model_util(data, fabric, names, specs) -> list:
    """Model utilisation of the design as given (healthy), per switch tier link level."""
    meta = fabric.meta
    E = int(meta["endpoint_ports_per_leaf"])
    lv = data.leaves(E)
    u0 = int(meta["leaf_up_ports"])
    g1 = min(specs[0].port_gbps, specs[1].port_gbps)
    out = [lv["t1"] / (g1 * u0) if u0 else None]
    if fabric.n_tiers == 3:
        pd = data.pods(E, int(meta["leaves_per_pod"]), True)
        su = int(meta["spines_per_pod"]) * int(meta["spine_up_ports"])
        g2 = min(specs[1].port_gbps, specs[2].port_gbps)
        out.append(pd["t2"] / (g2 * su) if su else None)
    return out


def _infeasible(data, tables, survive, tau, from_option, max_os, req=None) -> SpecError:
    """Why no budget exists: the bisection floor, the stated failure, or the target utilisation
    (with what the traffic needs)."""
    where = "--target-util" if from_option else "goals.target_utilization"
    far = time.monotonic() + 3600
    healthy_ok = healthy_free = False
    best_u = best_b = None
    floor = req["floor"] if req else None
    for T in tables:
        relaxed = _tables(data, T.models, T.specs, T.three, "none", tau, max_os, T.b1_fixed, far, T.bis_floor)
        if next(iter(enumerate_all(relaxed, "none", tau)), None) is not None:
            healthy_ok = True
        if floor:
            free = _tables(data, T.models, T.specs, T.three, "none", tau, max_os, T.b1_fixed, far)
            healthy_free = healthy_free or next(iter(enumerate_all(free, "none", tau)), None) is not None
        loose = _tables(data, T.models, T.specs, T.three, "none", 1.0, max_os, T.b1_fixed, far)
        for _, _, _, ev in enumerate_all(loose, "none", 1.0):
            u = max(x for x in ev["util"] if x is not None)
            best_u = u if best_u is None else min(best_u, u)
            b = ev["bisection_gbps"] * 2 / T.n_acc
            best_b = b if best_b is None else max(best_b, b)
    if floor and (best_b is None or best_b < floor[1] * (1 - 1e-9)):
        inj = tables[0].injection_gbps / tables[0].n_acc if tables else 0.0
        most = (f"the most any design reaches is {best_b:.4g} Gb/s" if best_b is not None
                else "no design carries the traffic at all")
        return SpecError([(floor[0], f"no link budget reaches a bisection of {floor[1]:g} Gb/s per accelerator: "
                                     f"{most} (the endpoints inject {inj:.4g} Gb/s per accelerator; a balanced "
                                     f"cut crosses at most the injection and the uplinks of each tier)")])
    if floor and not healthy_ok and healthy_free:
        return SpecError([(floor[0], f"no link budget both reaches a bisection of {floor[1]:g} Gb/s per accelerator "
                                     f"and keeps switch links at or under {tau:g} within the switch radix, reach "
                                     f"and oversubscription limits")])
    if healthy_ok and survive != "none":
        what = {"link": "the loss of one link", "switch": "the loss of one spine or super-spine switch",
                "plane": "the loss of one plane"}[survive]
        return SpecError([("goals.survive", f"no link budget survives {what} (--survive {survive}): the survivors "
                                            f"would run over 100% for this traffic with these switches")])
    if best_u is not None and best_u > tau:
        return SpecError([(where, f"no link budget keeps switch links at or under {tau:g}: the traffic needs "
                                  f"at least {best_u:.3f} even with the most uplinks the switches allow")])
    why = _merge_pruned(tables)
    why = "; ".join(f"{k} ({v})" for k, v in sorted(why.items(), key=lambda kv: -kv[1])[:3])
    return SpecError([(where, f"no link budget meets the target utilisation {tau:g} within the switch radix, "
                              f"reach and oversubscription limits" + (f" (options set aside: {why})" if why else ""))])
