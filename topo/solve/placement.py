"""Topology- and power-aware job placement (OR-Tools CP-SAT) and its greedy baseline.

Owns the placement problem: which servers / scale-up domains every job of the
cluster file gets, in rank order, so that its collective traffic climbs as
little of the tree as possible and no rack exceeds its power limit. It must not
verify its own output: :mod:`topo.solve.place_check` re-checks every placement
independently before one is returned.

The model
---------
* Allocation unit. A job whose TP degree is at least the scale-up domain size
  takes whole domains, exclusively. Any other job takes whole servers, in
  chunks of ``ceil(tp / accelerators_per_server)`` servers inside one domain so
  that a TP group never leaves its domain. A server belongs to one job.
* A unit's *leaf* is the first leaf (plane 0) of the first accelerator of its
  scale-up domain; for rail-optimized fabrics this names the rail group. Its
  *pod* is that leaf's pod. Cells are (leaf, rack) pairs holding whole domains.
* Power. Busy nodes (``busy_nodes``) draw busy power, free nodes idle power,
  ToR leaves count in their rack (:func:`topo.routing.describe.rack_power`); a placed
  server moves from idle to busy power. Every rack stays within its limit.
* Objective (integer, minimised)::

      sum over placed jobs j:   W_j * (1 * (leaves_j - 1) + 3 * (pods_j - 1)) + racks_j
      sum over unplaced jobs j: M[priority_rank_j] * units_j

  ``W_j`` is the job's traffic weight: for every collective whose group leaves
  the scale-up domain, ``factor * bytes * (ranks / group size)`` (factor
  2(g-1)/g for all-reduce, (g-1)/g for all-gather, reduce-scatter and
  all-to-all, 1 for send/recv and broadcast), scaled so the heaviest job has
  ``W = 100`` (at least 1 for a job with any network traffic), computed in exact
  rational arithmetic and rounded half up.
  ``BIG = 1 + sum_j (W_j * (L - 1 + 3 * (P - 1)) + R)`` with L, P, R the
  numbers of leaves, pods and racks holding accelerators, so placing a job
  always beats any saving of traffic. ``M[0] = BIG`` and
  ``M[r] = M[r-1] * (units of all lower ranks + 1)``: strictly lexicographic
  by priority (a higher-priority unit outweighs every lower one). When those
  weights would exceed 2**50 in total, ``M[r] = BIG * 2**min(r, 10)`` instead
  (big-M weights that keep the solver's objective exact in floating point).
* Decomposition. Small instances (job x cell pairs <= MONOLITHIC_MAX_VARS)
  are one CP-SAT model over job x cell with the exact objective; its units per
  cell become servers for the jobs it placed (whole-domain jobs first), and only
  then are the jobs it left out tried on what remains (:func:`_realise`). Larger ones
  are solved as jobs -> pods (CP-SAT over job x pod unit counts, with valid
  lower bounds on the leaves a job needs in a pod), then jobs -> leaves inside
  every pod (one small CP-SAT per pod), then racks best fit and a contiguous
  fill of domains and servers inside the chosen leaves, then a ruin-and-
  recreate pass (each multi-leaf or multi-rack job re-placed in its cheapest
  pods/leaves or in one rack, kept when its cost drops).
* Rank mapping. Every candidate placement is assembled with the ranks of each
  job mapped onto its accelerators by :func:`_rank_order`: TP fastest (TP
  groups keep their domain), the dimensions above TP in the nesting order
  (slowest first) whose collectives send the fewest bytes above the leaves,
  bytes leaving a pod weighted A_POD more; ties keep the job's own order.
* Bound. The larger of the solver's bound and a combinatorial one: every job
  alone on the cluster in its cheapest (pods, leaves) combination (a dynamic
  programme over pods) plus its fewest racks; when some checked placement
  places every job, the racks term is at least the fewest racks holding all
  jobs' nodes together, and at least the optimum of a relaxation in which the
  jobs compete for racks by class of free capacity (_racks_shared_bound, a
  small CP-SAT model whose proven bound is used). All are valid lower bounds on
  the objective.
* Starts and baseline. A greedy best-fit in priority order that packs like
  Slurm's topology/tree plugin and Kueue's topology-aware scheduling (the
  smallest subtree (leaf, pod, cluster) that fits, the best-fitting one at that
  level, children taken largest first and the last one best-fit) is the
  baseline; it is reported with ranks in the job's own order (as a block
  distribution over its node list runs them) and, as ``totals_rank_mapped``,
  with the rank mapping, and it takes part as a candidate mapped. The same
  greedy in size and traffic order and a contiguous file-order first fit are
  further starts; the best start hints the solver.
  The returned placement is the best checked one of the solver's, the best
  start and the baseline (ties: less estimated traffic above the leaves), and
  ``source``/``note`` say which.
* Failure domains (optional, :func:`failure_domain_rules`). Spread: per job and
  rack, leaf (unit's leaf) or pod, at most floor(max_share x N) of its N
  accelerators, i.e. ``cap`` units; pack: at most max_domains domains per job.
  Both are constraints of the job x cell model (:func:`_fd_constrain`), which is
  then used whatever the size (refused above FD_MAX_PAIRS); a completion that
  breaks the rule is dropped (:func:`_fd_drop`); :func:`_fd_greedy` is a start
  that keeps it. The same problem without the rule is solved beside it for the
  comparison the result carries. Reserved nodes (spares) count as busy nodes.
* Status. OPTIMAL when the objective equals the bound, else FEASIBLE with the
  gap; UNKNOWN when the solver found nothing in its time (the checked start or
  baseline is returned). Jobs are optional, so the model is never infeasible;
  a job that cannot be placed is reported in ``unplaced`` with its reason.
"""
from __future__ import annotations

import functools
import itertools
import math
import time
import weakref
from fractions import Fraction
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from topo.core.errors import SolverError, SpecError
from topo.model.fabric import Fabric
from topo.model.spec import Cluster, parse_rank_order
from topo.traffic.demand import expand_collective, rank_layout

A_LEAF = 1        # weight of traffic that leaves a leaf (climbs to the spine)
A_POD = 3         # additional weight of traffic that leaves a pod (climbs to the super-spine)
F_RACK = 1        # fragmentation: every rack a job spans
W_SCALE = 100     # heaviest job's traffic weight
MAX_PRIO_RANK = 10
MONOLITHIC_MAX_VARS = 6000  # job x cell pairs solved as one model

# bytes each member sends to each other member, in units of S / g, for direct algorithms
_PAIR_SHARE = {"alltoall": 1.0, "allgather": 1.0, "reducescatter": 1.0, "allreduce": 2.0}
_FACTOR_EXACT = {"allreduce": lambda g: Fraction(2 * (g - 1), g), "allgather": lambda g: Fraction(g - 1, g),
                 "reducescatter": lambda g: Fraction(g - 1, g), "alltoall": lambda g: Fraction(g - 1, g),
                 "sendrecv": lambda g: Fraction(1), "broadcast": lambda g: Fraction(1)}
STATUS_NAMES = ("OPTIMAL", "FEASIBLE", "INFEASIBLE", "UNKNOWN")
REASONS = ("too large", "pinned racks full", "power", "capacity", "fragmentation", "failure domains")


# --- result -------------------------------------------------------------------------
@dataclass(frozen=True)
class PlacementResult:
    """A checked placement. ``assignment[job]`` holds endpoint ids in rank order
    (ranks as the job's ``rank_order`` defines them; TP groups inside one scale-up
    domain; the layout of the other dimensions chosen by :func:`_rank_order`)."""
    assignment: dict
    unplaced: dict
    status: str
    objective: int
    bound: Optional[int]
    gap: Optional[float]
    wall_s: float
    policy: str
    source: str                # "optimized" | "baseline" (which placement was returned)
    note: str
    jobs: dict                 # per job metrics
    racks: list                # per rack power
    stranded: dict
    baseline: Optional[dict]   # greedy metrics beside the optimised ones
    solver: dict
    totals: dict
    server_names: dict = field(default_factory=dict, repr=False, compare=False)
    failure_domains: Optional[dict] = None  # spread/pack rule: traffic and blast radius with and without it
    reserved: tuple = ()                    # nodes held back (spares), by name
    spares: Optional[dict] = None           # hot spares held back (topo.solve.spares), when asked for
    compared: Optional["PlacementResult"] = field(default=None, repr=False, compare=False)  # the same without the rule

    def to_dict(self) -> dict:
        return {
            "version": 1,
            "policy": self.policy, "source": self.source, "note": self.note,
            "status": self.status, "objective": int(self.objective),
            "bound": None if self.bound is None else int(self.bound),
            "gap": self.gap, "wall_s": round(self.wall_s, 3),
            "assignment": {j: [int(x) for x in e] for j, e in self.assignment.items()},
            "nodes": {j: self.server_names.get(j, []) for j in self.assignment},
            "unplaced": dict(self.unplaced),
            "jobs": self.jobs, "racks": self.racks, "stranded": self.stranded,
            "totals": self.totals, "baseline": self.baseline, "solver": self.solver,
            **({"failure_domains": self.failure_domains} if self.failure_domains is not None else {}),
            **({"reserved": list(self.reserved)} if self.reserved else {}),
            **({"spares": self.spares} if self.spares is not None else {}),
        }


# --- problem preparation ------------------------------------------------------------
@dataclass
class _Job:
    idx: int
    name: str
    n: int
    tp: int
    pp: int
    cp: int
    ep: int
    dp: int
    domain_job: bool
    chunk: int            # servers per unit
    units: int
    weight: int           # W_j
    weight_bytes: float
    prio: int
    prio_rank: int
    allowed_rack: np.ndarray   # bool per rack
    allowed_pod: np.ndarray    # bool per pod index
    pinned: bool
    collectives: list
    fixed: Optional[np.ndarray] = None  # explicit servers (local ids)
    order: tuple = ("tp", "cp", "pp", "dp")  # the job's rank order, fastest first


class _Problem:
    """Aggregates of the fabric and the jobs (built once, read-only afterwards)."""

    def __init__(self, cluster: Cluster, fabric: Fabric, reserved: Optional[np.ndarray] = None):
        self.cluster, self.fabric = cluster, fabric
        f = fabric
        n_srv = f.n_servers
        ep_server = np.asarray(f.ep_server)
        self.first_ep = np.searchsorted(ep_server, np.arange(n_srv))
        acc_count = np.bincount(ep_server, weights=f.ep_is_accel.astype(np.int64), minlength=n_srv).astype(np.int64)
        acc_srv = np.flatnonzero(acc_count > 0)
        if acc_srv.size == 0:
            raise SpecError([("node_types", "the cluster has no accelerators to place jobs on")])
        aps = np.unique(acc_count[acc_srv])
        if aps.size != 1:
            raise SpecError([("node_types", "placement supports one accelerator count per node; "
                              f"the cluster mixes {sorted(int(a) for a in aps)}")])
        self.aps = int(aps[0])
        self.srv = acc_srv                          # local server -> global server id
        self.S = int(acc_srv.size)
        self.local_of = np.full(n_srv, -1, np.int64)
        self.local_of[acc_srv] = np.arange(self.S)
        dom_g = np.asarray(f.ep_domain)[self.first_ep[acc_srv]]
        ds = np.unique(np.asarray(f.domain_size)[dom_g])
        if ds.size != 1:
            raise SpecError([("node_types", "placement supports one scale-up domain size; "
                              f"the cluster mixes {sorted(int(a) for a in ds)}")])
        self.ds = int(ds[0])
        self.spd = max(1, self.ds // self.aps)      # servers per domain
        # local domains: consecutive servers with the same global domain id
        chg = np.concatenate([[True], dom_g[1:] != dom_g[:-1]])
        self.s_dom = np.cumsum(chg) - 1
        self.D = int(self.s_dom[-1]) + 1
        self.d_first = np.flatnonzero(chg)          # first local server of each domain
        self.d_len = np.diff(np.concatenate([self.d_first, [self.S]]))
        # leaf, pod, rack of every unit
        ep_leaf = f.ep_leaf()
        first_srv_of_dom = acc_srv[self.d_first]
        d_leaf = ep_leaf[self.first_ep[first_srv_of_dom]]
        node_pod = np.asarray(f.node_pod)
        d_pod = np.maximum(node_pod[d_leaf], 0).astype(np.int64)
        self.s_rack = np.asarray(f.server_rack)[acc_srv]
        self.leaf_ids, d_group = np.unique(d_leaf, return_inverse=True)
        self.G = int(self.leaf_ids.size)
        self.g_pod = np.zeros(self.G, np.int64)
        self.g_pod[d_group] = d_pod
        self.n_pods = max(int(f.pods), int(d_pod.max()) + 1)
        self.d_group = d_group.astype(np.int64)
        self.s_group = self.d_group[self.s_dom]
        self.s_pod = self.g_pod[self.s_group]
        # cells: (group, rack)
        d_rack = self.s_rack[self.d_first]
        key = self.d_group * (f.n_racks + 1) + d_rack
        ukey, d_cell = np.unique(key, return_inverse=True)
        self.C = int(ukey.size)
        self.d_cell = d_cell.astype(np.int64)
        self.c_group = (ukey // (f.n_racks + 1)).astype(np.int64)
        self.c_rack = (ukey % (f.n_racks + 1)).astype(np.int64)
        self.c_pod = self.g_pod[self.c_group]
        self.s_cell = self.d_cell[self.s_dom]
        self.n_racks = f.n_racks
        self.rack_has_acc = np.bincount(self.s_rack, minlength=f.n_racks) > 0
        order = np.argsort(self.d_cell, kind="stable")
        bounds = np.searchsorted(self.d_cell[order], np.arange(self.C + 1))
        self.cell_doms = [order[bounds[c]:bounds[c + 1]] for c in range(self.C)]
        self.group_cells = [np.flatnonzero(self.c_group == g) for g in range(self.G)]

        # busy nodes and power
        fobj = cluster.file
        try:
            busy_glob = f.server_ids(fobj.busy_nodes) if fobj.busy_nodes else np.zeros(0, np.int64)
        except (KeyError, ValueError) as e:
            raise SpecError([("busy_nodes", f"unknown node or bad hostlist: {e}")])
        self.busy_mask_glob = np.zeros(n_srv, bool)
        self.busy_mask_glob[busy_glob] = True
        if reserved is not None:  # held-back spares: unusable, and counted busy in rack power
            self.busy_mask_glob[reserved] = True
        from topo.routing.describe import rack_power
        rp = rack_power(f, cluster, busy_servers=self.busy_mask_glob)
        self.rack_kw0 = np.asarray(rp["kw"], np.float64)
        self.rack_limit = np.asarray(f.rack_limit_kw, np.float64)
        delta = (np.asarray(f.server_busy_kw) - np.asarray(f.server_idle_kw))[acc_srv]
        self.s_delta = delta
        rack_delta = np.zeros(f.n_racks)
        np.maximum.at(rack_delta, self.s_rack, delta)
        self.rack_delta = rack_delta
        head = self.rack_limit - self.rack_kw0
        with np.errstate(divide="ignore", invalid="ignore"):
            pc = np.where(rack_delta > 0, np.floor((head + 1e-9) / np.where(rack_delta > 0, rack_delta, 1.0)),
                          np.where(head >= -1e-9, 10 ** 9, 0))
        self.rack_pcap0 = np.clip(pc, 0, 10 ** 9).astype(np.int64)
        self.s_busy0 = self.busy_mask_glob[acc_srv]
        self.rack_names = {f.rack_name(i): i for i in range(f.n_racks)}
        self.jobs = self._jobs()

    # -- jobs -------------------------------------------------------------------------
    def _jobs(self) -> list[_Job]:
        cl, f = self.cluster, self.fabric
        errs: list[tuple[str, str]] = []
        prios = sorted({j.priority for j in cl.file.jobs})
        raw_w = []
        out = []
        for i, j in enumerate(cl.file.jobs):
            p = f"jobs[{i}]"
            inner = j.tp * j.pp * j.cp
            dp = j.dp or max(j.accelerators // inner, 1)
            domain_job = j.tp >= self.ds and self.ds > 1
            if domain_job:
                chunk = self.spd
                units = -(-j.accelerators // self.ds)
            else:
                chunk = min(max(1, -(-j.tp // self.aps)), self.spd)
                units = -(-j.accelerators // (chunk * self.aps))
            allowed_rack = self.rack_has_acc.copy()
            pinned = False
            pin_r = set()
            for k, name in enumerate(j.pin_racks):
                if name not in self.rack_names:
                    errs.append((f"{p}.pin_racks[{k}]", f"unknown rack {name!r} (racks are named {f.rack_name(0)}..{f.rack_name(f.n_racks - 1)})"))
                else:
                    pin_r.add(self.rack_names[name])
            forb_r = set()
            for k, name in enumerate(j.forbid_racks):
                if name not in self.rack_names:
                    errs.append((f"{p}.forbid_racks[{k}]", f"unknown rack {name!r} (racks are named {f.rack_name(0)}..{f.rack_name(f.n_racks - 1)})"))
                elif self.rack_names[name] in pin_r:
                    errs.append((f"{p}.forbid_racks[{k}]", f"rack {name!r} is both pinned and forbidden"))
                else:
                    forb_r.add(self.rack_names[name])
            for k, pod in enumerate(j.pin_pods):
                if not 0 <= pod < self.n_pods:
                    errs.append((f"{p}.pin_pods[{k}]", f"pod {pod} does not exist (pods are 0..{self.n_pods - 1})"))
            for k, pod in enumerate(j.forbid_pods):
                if not 0 <= pod < self.n_pods:
                    errs.append((f"{p}.forbid_pods[{k}]", f"pod {pod} does not exist (pods are 0..{self.n_pods - 1})"))
                elif pod in j.pin_pods:
                    errs.append((f"{p}.forbid_pods[{k}]", f"pod {pod} is both pinned and forbidden"))
            if pin_r:
                m = np.zeros(f.n_racks, bool)
                m[list(pin_r)] = True
                allowed_rack &= m
                pinned = True
            if forb_r:
                allowed_rack[list(forb_r)] = False
                pinned = True
            allowed_pod = np.ones(self.n_pods, bool)
            if j.pin_pods:
                allowed_pod[:] = False
                allowed_pod[[q for q in j.pin_pods if 0 <= q < self.n_pods]] = True
                pinned = True
            if j.forbid_pods:
                allowed_pod[[q for q in j.forbid_pods if 0 <= q < self.n_pods]] = False
                pinned = True
            if (j.pin_racks or j.pin_pods) and not errs:
                cell_ok = allowed_rack[self.c_rack] & allowed_pod[self.c_pod]
                if not cell_ok.any():
                    errs.append((f"{p}.pin_racks" if j.pin_racks else f"{p}.pin_pods",
                                 "the pinned racks/pods and the forbidden ones leave no accelerator to place the job on"))
            fixed = None
            if j.nodes:
                try:
                    g = f.server_ids(j.nodes)
                except (KeyError, ValueError) as e:
                    errs.append((f"{p}.nodes", f"unknown node or bad hostlist: {e}"))
                    g = None
                if g is not None:
                    loc = self.local_of[g]
                    if (loc < 0).any():
                        errs.append((f"{p}.nodes", "names a node without accelerators"))
                    elif loc.size * self.aps < j.accelerators:
                        errs.append((f"{p}.nodes", f"{loc.size} nodes hold {loc.size * self.aps} accelerators; the job needs {j.accelerators}"))
                    elif self.s_busy0[loc].any():
                        errs.append((f"{p}.nodes", "names a node listed in busy_nodes"))
                    elif np.unique(loc).size != loc.size:
                        dup = int(g[np.flatnonzero(np.bincount(loc, minlength=self.S)[loc] > 1)[0]])
                        errs.append((f"{p}.nodes", f"lists node {f.server_name(dup)!r} more than once"))
                    else:
                        fixed = loc.astype(np.int64)  # listed order: the job's rank order
            w = Fraction(0)  # exact, so that any independent recomputation rounds the same way
            sizes = {"tp": j.tp, "pp": j.pp, "cp": j.cp, "ep": j.ep, "dp": dp}
            for c in j.collectives:
                g = sizes[c.group]
                if g <= 1 or (c.group == "tp" and j.tp <= self.ds):
                    continue
                w += _FACTOR_EXACT[c.op](g) * Fraction(c.bytes) * Fraction(j.accelerators, g)
            raw_w.append(w)
            out.append(_Job(i, j.name, j.accelerators, j.tp, j.pp, j.cp, j.ep, dp, domain_job, chunk, units,
                            0, w, j.priority, prios.index(j.priority), allowed_rack, allowed_pod, pinned,
                            list(j.collectives), fixed, parse_rank_order(j.rank_order)))
        if errs:
            raise SpecError(errs)
        # fixed placements must not overlap
        seen = np.zeros(self.S, bool)
        for jb in out:
            if jb.fixed is not None:
                if seen[jb.fixed].any():
                    errs.append((f"jobs[{jb.idx}].nodes", "overlaps the explicit nodes of another job"))
                seen[jb.fixed] = True
        if errs:
            raise SpecError(errs)
        wmax = max(raw_w) if raw_w else 0
        for jb, w in zip(out, raw_w):
            # W = round half up of W_SCALE * w / wmax, at least 1
            jb.weight = 0 if w <= 0 else max(1, math.floor(W_SCALE * w / wmax + Fraction(1, 2)))
            jb.weight_bytes = float(w)
        return out

    # -- objective --------------------------------------------------------------------
    def big(self) -> int:
        L, P = self.G, self.n_pods
        R = int(self.rack_has_acc.sum())
        return 1 + sum(j.weight * (A_LEAF * (L - 1) + A_POD * (P - 1)) + F_RACK * R for j in self.jobs)

    def level_weights(self, big: int) -> list[int]:
        """Penalty per unit of an unplaced job, by priority rank (lowest first).

        Strictly lexicographic: M_0 = BIG, M_r = M_(r-1) * (units of all lower
        ranks + 1), so one unit of rank r outweighs every lower-rank penalty and all
        traffic. When that would exceed 2**50 in total (the solver's objective must
        stay exact in floating point), M_r = BIG * 2**min(r, 10) instead.
        """
        n = max((j.prio_rank for j in self.jobs), default=-1) + 1
        units = [sum(j.units for j in self.jobs if j.prio_rank == r) for r in range(n)]
        m = [big]
        for r in range(1, n):
            m.append(m[-1] * (sum(units[:r]) + 1))
        if sum(mr * u for mr, u in zip(m, units)) > 2 ** 50:
            m = [big * 2 ** min(r, MAX_PRIO_RANK) for r in range(n)]
        return m

    def penalty(self, j: _Job, big: int) -> int:
        key = ("_lw", big)
        if getattr(self, "_lw_key", None) != key:
            self._lw, self._lw_key = self.level_weights(big), key
        return self._lw[j.prio_rank] * j.units

    def cost_of(self, j: _Job, servers: np.ndarray) -> int:
        doms = self.s_dom[servers]
        leaves = np.unique(self.d_group[doms]).size
        pods = np.unique(self.g_pod[self.d_group[doms]]).size
        racks = np.unique(self.s_rack[servers]).size
        return j.weight * (A_LEAF * (leaves - 1) + A_POD * (pods - 1)) + F_RACK * racks


# --- mutable state: free servers and rack power ---------------------------------------
# per problem: the domains sorted by cell (stable) and where each non-empty cell's run starts
_cell_runs: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _per_cell(pb: _Problem, per_dom: np.ndarray) -> np.ndarray:
    """Sum per cell of an integer value per domain (a bincount over d_cell, in integers: one
    reduceat over the domains in cell order, as every job's candidate cells are counted)."""
    runs = _cell_runs.get(pb)
    if runs is None:
        d_cell = np.asarray(pb.d_cell, np.int64)
        order = np.argsort(d_cell, kind="stable")
        srt = d_cell[order]
        start = np.flatnonzero(np.r_[True, srt[1:] != srt[:-1]]) if srt.size else np.zeros(0, np.int64)
        identity = bool(srt.size == 0 or (order == np.arange(order.size)).all())
        runs = _cell_runs[pb] = (None if identity else order, start, srt[start] if srt.size else start)
    order, start, cells = runs
    out = np.zeros(pb.C, np.int64)
    if start.size:
        out[cells] = np.add.reduceat(per_dom if order is None else per_dom[order], start)
    return out


def _cells_domains(pb: _Problem, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The domains of ``cells`` (every cell holds at least one), cell by cell, and where each
    cell's run starts (for a reduceat)."""
    csr = pb.__dict__.get("_cell_csr")
    if csr is None:
        order = np.argsort(pb.d_cell, kind="stable")
        csr = pb._cell_csr = (order, np.searchsorted(pb.d_cell[order], np.arange(pb.C + 1)))
    order, bounds = csr
    lo = bounds[cells]
    lens = bounds[cells + 1] - lo
    starts = np.cumsum(lens) - lens
    idx = np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(starts - lo, lens)
    return order[idx], starts


def _rack_cells(pb: _Problem, racks: np.ndarray) -> np.ndarray:
    """Every cell of the given racks (with repeats)."""
    csr = pb.__dict__.get("_rack_csr")
    if csr is None:
        order = np.argsort(pb.c_rack, kind="stable")
        csr = pb._rack_csr = (order, np.searchsorted(pb.c_rack[order], np.arange(pb.n_racks + 1)))
    order, bounds = csr
    racks = np.unique(racks)
    lo = bounds[racks]
    lens = bounds[racks + 1] - lo
    starts = np.cumsum(lens) - lens
    idx = np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(starts - lo, lens)
    return order[idx]


class _State:
    """Free servers, free servers per domain and powered servers per rack, as jobs take and give back
    servers. :meth:`cell_units` keeps, per allocation unit asked for, the units of every cell and
    recounts only the cells whose domains or racks changed since it was last asked."""

    def __init__(self, pb: _Problem):
        self.pb = pb
        self.free = ~pb.s_busy0.copy()
        self.dom_free = np.bincount(pb.s_dom, weights=self.free.astype(np.int64), minlength=pb.D).astype(np.int64)
        self.pcap = pb.rack_pcap0.copy()
        self.owner = np.full(pb.S, -1, np.int64)
        self._units: dict = {}   # (domain job, chunk) -> [units per cell, cells changed since]

    def copy(self) -> "_State":
        s = object.__new__(_State)
        s.pb, s.free, s.dom_free = self.pb, self.free.copy(), self.dom_free.copy()
        s.pcap, s.owner = self.pcap.copy(), self.owner.copy()
        s._units = {}
        return s

    def _changed(self, servers: np.ndarray) -> None:
        """Note servers taken or given back: the units of their cells, and of every cell of their
        racks (rack power caps a cell), are recounted when next asked for."""
        for entry in self._units.values():
            entry[1].append(servers)

    def take(self, servers: np.ndarray, job: int):
        pb = self.pb
        self.free[servers] = False
        self.owner[servers] = job
        np.subtract.at(self.dom_free, pb.s_dom[servers], 1)
        np.subtract.at(self.pcap, pb.s_rack[servers], 1)
        self._changed(servers)

    def release(self, servers: np.ndarray):
        pb = self.pb
        self.free[servers] = True
        self.owner[servers] = -1
        np.add.at(self.dom_free, pb.s_dom[servers], 1)
        np.add.at(self.pcap, pb.s_rack[servers], 1)
        self._changed(servers)

    def _cell_units_of(self, domain_job: bool, chunk: int, cells: Optional[np.ndarray]) -> np.ndarray:
        """Units of an allocation unit per cell (all cells, or ``cells``), before pins."""
        pb = self.pb
        if cells is None:
            if domain_job:
                per_dom = (self.dom_free == pb.d_len).astype(np.int64)
            else:
                per_dom = self.dom_free // chunk
            return np.minimum(_per_cell(pb, per_dom), self.pcap[pb.c_rack] // chunk)
        doms, starts = _cells_domains(pb, cells)
        if domain_job:
            per_dom = (self.dom_free[doms] == pb.d_len[doms]).astype(np.int64)
        else:
            per_dom = self.dom_free[doms] // chunk
        return np.minimum(np.add.reduceat(per_dom, starts), self.pcap[pb.c_rack[cells]] // chunk)

    def cell_units(self, j: _Job) -> np.ndarray:
        """Units of job j each cell could take now (an upper bound when racks span cells)."""
        pb = self.pb
        key = (j.domain_job, j.chunk)
        entry = self._units.get(key)
        if entry is None:
            entry = self._units[key] = [self._cell_units_of(j.domain_job, j.chunk, None), []]
        elif entry[1]:
            srv = np.concatenate(entry[1])
            entry[1] = []
            cells = np.unique(np.concatenate([pb.d_cell[pb.s_dom[srv]], _rack_cells(pb, pb.s_rack[srv])]))
            if 4 * cells.size > pb.C:   # most cells changed: recount them all
                entry[0] = self._cell_units_of(j.domain_job, j.chunk, None)
            else:
                entry[0][cells] = self._cell_units_of(j.domain_job, j.chunk, cells)
        cu = entry[0]
        if not j.pinned:   # every cell is in a rack with accelerators, every pod allowed
            return cu.copy()
        ok = j.allowed_rack[pb.c_rack] & j.allowed_pod[pb.c_pod]
        return np.where(ok, cu, 0)

    def cell_units_pod(self, j: _Job, p: int) -> np.ndarray:
        """:meth:`cell_units` on the cells of pod ``p``, 0 on every other cell (the same values
        there, counted from that pod's domains only)."""
        pb = self.pb
        cells = pb.__dict__.setdefault("_pod_cells", {}).get(p)
        if cells is None:
            cells = pb._pod_cells[p] = np.flatnonzero(pb.c_pod == p)
        out = np.zeros(pb.C, np.int64)
        if cells.size:
            cu = self._cell_units_of(j.domain_job, j.chunk, cells)
            ok = j.allowed_rack[pb.c_rack[cells]] & j.allowed_pod[pb.c_pod[cells]]
            out[cells] = np.where(ok, cu, 0)
        return out

    def cell_servers(self) -> np.ndarray:
        pb = self.pb
        return np.bincount(pb.s_cell, weights=self.free.astype(np.int64), minlength=pb.C).astype(np.int64)

    def cell_full_domains(self) -> np.ndarray:
        pb = self.pb
        return _per_cell(pb, (self.dom_free == pb.d_len).astype(np.int64))

    def fill_cell(self, j: _Job, cell: int, units: int) -> np.ndarray:
        """Take up to `units` units of job j in one cell: whole free domains for a
        domain job, else chunks in the fullest domains first (best fit). Each unit is
        taken while the cell's rack can still power one: the units are counted first
        and taken together."""
        pb = self.pb
        rack = int(pb.c_rack[cell])
        doms = pb.cell_doms[cell]
        pc = int(self.pcap[rack])
        in_rack = _servers_in_own_rack(pb)
        got = []
        if j.domain_job:
            cand = doms[self.dom_free[doms] == pb.d_len[doms]]
            # the rack's power left before each candidate domain, taken in order
            before = pc - np.concatenate([[0], np.cumsum(in_rack[cand])[:-1]]) if cand.size else cand
            n = min(units, int(np.argmin(before >= j.chunk)) if (before < j.chunk).any() else int(cand.size))
            got = [np.arange(pb.d_first[d], pb.d_first[d] + pb.d_len[d]) for d in cand[:n].tolist()]
        else:
            cand = [d for d in doms.tolist() if self.dom_free[d] >= j.chunk]
            cand.sort(key=lambda d: (self.dom_free[d], d))
            for d in cand:
                if units == 0 or pc < j.chunk:
                    break
                lo, n_s = int(pb.d_first[d]), int(pb.d_len[d])
                if in_rack[d] == n_s:   # the domain's servers all in the cell's rack
                    k = min(units, int(self.dom_free[d]) // j.chunk, pc // j.chunk)
                    fr = lo + np.flatnonzero(self.free[lo:lo + n_s])[: k * j.chunk]
                    pc -= k * j.chunk
                else:   # chunk by chunk, counting the servers that draw on the cell's rack
                    left, k, fr = int(self.dom_free[d]), 0, np.zeros(0, np.int64)
                    free_d = lo + np.flatnonzero(self.free[lo:lo + n_s])
                    while units - k > 0 and left >= j.chunk and pc >= j.chunk:
                        c_ = free_d[k * j.chunk:(k + 1) * j.chunk]
                        pc -= int((pb.s_rack[c_] == rack).sum())
                        left -= j.chunk
                        k += 1
                    fr = free_d[: k * j.chunk]
                got.append(fr)
                units -= k
        if not got:
            return np.zeros(0, np.int64)
        out = np.concatenate(got)
        if out.size:
            self.take(out, j.idx)
        return out


def _servers_in_own_rack(pb: _Problem) -> np.ndarray:
    """Per domain, how many of its servers are in the rack of its first server (its cell's rack)."""
    hit = pb.__dict__.get("_in_rack")
    if hit is None:
        same = pb.s_rack == pb.s_rack[pb.d_first][pb.s_dom]
        hit = pb._in_rack = np.bincount(pb.s_dom, weights=same, minlength=pb.D).astype(np.int64)
    return hit


def _pick(avail: np.ndarray, need: int) -> list[tuple[int, int]]:
    """Best fit: the smallest child that holds `need`, else children largest
    first with the last one best-fit (Kueue TAS BestFit). Ties by index."""
    if need <= 0:
        return []
    fits = np.flatnonzero(avail >= need)
    if fits.size:
        b = fits[np.argmin(avail[fits])]
        return [(int(b), need)]
    order = np.lexsort((np.arange(avail.size), -avail))
    out = []
    rem = need
    taken = np.zeros(avail.size, bool)
    for i in order:
        if avail[i] <= 0 or rem <= 0:
            break
        rest = avail.copy()
        rest[taken] = 0
        fit = np.flatnonzero(rest >= rem)
        if fit.size:
            b = fit[np.argmin(rest[fit])]
            out.append((int(b), rem))
            return out
        out.append((int(i), int(avail[i])))
        taken[i] = True
        rem -= int(avail[i])
    return out


def _greedy_job(st: _State, j: _Job, prefer_pods: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """Place one job greedily (smallest subtree, best fit). Returns servers or None."""
    pb = st.pb
    need = j.units
    got = []
    for _ in range(6):  # cells over-estimate when racks span cells; retry the remainder
        if need <= 0:
            break
        cu = st.cell_units(j)
        if prefer_pods is not None:
            cu_pref = np.where(prefer_pods[pb.c_pod], cu, 0)
            if cu_pref.sum() >= need:
                cu = cu_pref
        gu = np.bincount(pb.c_group, weights=cu, minlength=pb.G).astype(np.int64)
        pu = np.bincount(pb.g_pod, weights=gu, minlength=pb.n_pods).astype(np.int64)
        if pu.sum() < need:
            break
        picks: list[tuple[int, int]] = []
        if gu.max() >= need:
            for g, k in _pick(gu, need):
                picks.append((g, k))
        else:
            for p, kp in _pick(pu, need):
                gidx = np.flatnonzero(pb.g_pod == p)
                for gi, k in _pick(gu[gidx], kp):
                    picks.append((int(gidx[gi]), k))
        progress = False
        for g, k in picks:
            cidx = np.flatnonzero(pb.c_group == g)
            for ci, kc in _pick(cu[cidx], k):
                s = st.fill_cell(j, int(cidx[ci]), kc)
                if s.size:
                    got.append(s)
                    need -= s.size // j.chunk
                    progress = True
        if not progress:
            break
    if need > 0:
        if got:
            st.release(np.concatenate(got))
        return None
    return np.concatenate(got)


# --- CP-SAT models -------------------------------------------------------------------
def _solve(m, time_s: float, seed: int, workers: int, stall: Optional[dict] = None):
    """Solve CP-SAT model ``m`` with the placement's parameters: (solver, status, name).

    ``stall`` (a dict, filled in): with several workers, the search also stops once its best
    solution has not improved for :func:`topo.solve.cpsat.stall_seconds` of ``time_s``
    (:class:`topo.solve.cpsat.StallStop`); ``stall`` then holds ``stall_s``, ``stopped`` and
    ``best_at_s``. With one worker (deterministic limit) it is left empty."""
    from ortools.sat.python import cp_model
    from topo.solve.cpsat import StallStop, configure, stall_seconds
    solver = cp_model.CpSolver()
    configure(solver, time_limit=time_s, seed=seed, workers=workers)
    from topo.core.signals import solve as solve_interruptible  # Ctrl-C/SIGTERM stay Python's, see topo.core.signals
    if stall is None or int(workers) == 1:
        status = solve_interruptible(solver, m)
    else:
        stop = StallStop(solver, stall_seconds(time_s))
        with stop:
            status = solve_interruptible(solver, m, stop.callback)
        stall.update(stall_s=stop.stall_s, stopped=stop.fired,
                     best_at_s=None if stop.best_at_s is None else round(stop.best_at_s, 3))
    return solver, status, solver.StatusName(status)


def _cell_model(pb: _Problem, st: _State, jobs: list[_Job], cells: np.ndarray, totals: Optional[dict],
                big: int, hint: Optional[dict], time_s: float, seed: int, workers: int):
    """CP-SAT over job x cell. totals None: every job optional (monolithic model,
    exact objective); else job -> fixed unit count (inside one pod, leaf and rack
    terms only). Returns (status, counts {job: {cell: units}}, objective, bound)."""
    from ortools.sat.python import cp_model
    m = cp_model.CpModel()
    cells = np.asarray(cells, np.int64)
    srv_c = st.cell_servers()
    fdom_c = st.cell_full_domains()
    z: dict = {}
    ug: dict = {}
    up: dict = {}
    vr: dict = {}
    placed: dict = {}
    obj = []
    for j in jobs:
        cu = st.cell_units(j)
        need = j.units if totals is None else totals[j.idx]
        terms = []
        for c in cells:
            ub = int(min(cu[c], need))
            if ub <= 0:
                continue
            x = m.NewIntVar(0, ub, f"z[{j.idx},{c}]")
            z[j.idx, int(c)] = x
            terms.append(x)
            g, p, r = int(pb.c_group[c]), int(pb.c_pod[c]), int(pb.c_rack[c])
            for d, key, nm in ((ug, (j.idx, g), "u"), (up, (j.idx, p), "w"), (vr, (j.idx, r), "v")):
                if key not in d:
                    d[key] = m.NewBoolVar(f"{nm}[{key[0]},{key[1]}]")
            # a unit in a cell means the job spans its leaf, pod and rack
            m.Add(x <= ub * ug[j.idx, g])
            m.Add(x <= ub * up[j.idx, p])
            m.Add(x <= ub * vr[j.idx, r])
        if totals is None:
            pl = m.NewBoolVar(f"placed[{j.idx}]")
            placed[j.idx] = pl
            # every unit or none
            m.Add(sum(terms) == j.units * pl) if terms else m.Add(pl == 0)
            obj.append(j.weight * A_LEAF * (sum(v for k, v in ug.items() if k[0] == j.idx) - pl))
            obj.append(j.weight * A_POD * (sum(v for k, v in up.items() if k[0] == j.idx) - pl))
            obj.append(pb.penalty(j, big) * (1 - pl))
        else:
            if not terms:
                return "INFEASIBLE", {}, None, None
            m.Add(sum(terms) == need)
            obj.append(j.weight * A_LEAF * sum(v for k, v in ug.items() if k[0] == j.idx))
        obj.append(F_RACK * sum(v for k, v in vr.items() if k[0] == j.idx))
    _fd_constrain(m, pb, z)
    jmap = {j.idx: j for j in jobs}
    # cell capacity: servers, and whole domains for domain jobs
    by_cell: dict = {}
    for (ji, c), x in z.items():
        by_cell.setdefault(c, []).append((ji, x))
    by_rack: dict = {}
    for c, lst in by_cell.items():
        m.Add(sum(jmap[ji].chunk * x for ji, x in lst) <= int(srv_c[c]))
        dl = [x for ji, x in lst if jmap[ji].domain_job]
        if dl:
            m.Add(sum(dl) <= int(fdom_c[c]))
        by_rack.setdefault(int(pb.c_rack[c]), []).extend(lst)
    # rack power: servers the rack can still power
    for r, lst in by_rack.items():
        m.Add(sum(jmap[ji].chunk * x for ji, x in lst) <= int(st.pcap[r]))
    m.Minimize(sum(obj))
    if hint:
        for (ji, c), x in z.items():
            m.AddHint(x, int(hint.get(ji, {}).get(c, 0)))
        if totals is None:
            for ji, pl in placed.items():
                m.AddHint(pl, 1 if hint.get(ji) else 0)
    solver, status, name = _solve(m, time_s, seed, workers)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return name, {}, None, None
    counts: dict = {}
    for (ji, c), x in z.items():
        v = solver.Value(x)
        if v:
            counts.setdefault(ji, {})[c] = int(v)
    return name, counts, int(round(solver.ObjectiveValue())), int(math.ceil(solver.BestObjectiveBound() - 1e-6))


def _group_model(pb: _Problem, st: _State, jobs: list[_Job], groups: np.ndarray, totals: dict,
                 hint: Optional[dict], time_s: float, seed: int, workers: int):
    """CP-SAT over job x leaf inside one pod: every job gets its fixed unit count;
    minimise traffic-weighted leaves spanned (plus one rack per leaf at least).
    Returns (status, {job: {leaf group: units}})."""
    from ortools.sat.python import cp_model
    m = cp_model.CpModel()
    srv_c = st.cell_servers()
    fdom_c = st.cell_full_domains()
    cap_c = np.minimum(srv_c, st.pcap[pb.c_rack])
    S_g = np.bincount(pb.c_group, weights=cap_c, minlength=pb.G).astype(np.int64)
    D_g = np.bincount(pb.c_group, weights=fdom_c, minlength=pb.G).astype(np.int64)
    z: dict = {}
    by_group: dict = {int(g): [] for g in groups}   # (job, z) per leaf, in the order the variables are made
    obj = []
    jmap = {j.idx: j for j in jobs}
    pin_groups: dict = {}
    kinds: dict = {}   # the state does not change here: units per leaf per allocation unit and area
    for j in jobs:
        kind = _unit_kind(j)
        if kind not in kinds:
            kinds[kind] = np.bincount(pb.c_group, weights=st.cell_units(j), minlength=pb.G).astype(np.int64)
        gu = kinds[kind]
        terms = []
        for g in groups:
            ub = int(min(gu[g], totals[j.idx]))
            if ub <= 0:
                continue
            x = m.NewIntVar(0, ub, f"z[{j.idx},{g}]")
            u = m.NewBoolVar(f"u[{j.idx},{g}]")
            # units under leaf g mean the job spans it
            m.Add(x <= ub * u)
            z[j.idx, int(g)] = (x, u)
            by_group[int(g)].append((j.idx, x))
            terms.append(x)
            obj.append((j.weight * A_LEAF + F_RACK) * u)
        if not terms:
            return "INFEASIBLE", {}
        m.Add(sum(terms) == totals[j.idx])
        if j.pinned:
            key = (j.allowed_rack.tobytes(), j.allowed_pod.tobytes())
            pin_groups.setdefault(key, (j.allowed_rack, j.allowed_pod, []))[2].append(j)
    # leaf capacity: servers (power-capped), whole domains for domain jobs
    for g in groups:
        _add_capacity(m, jmap, by_group[int(g)], S_g[g], D_g[g])
    # jobs sharing a pinned area share its capacity
    for ar, ap, js in pin_groups.values():
        okc = ar[pb.c_rack] & ap[pb.c_pod]
        capg = np.bincount(pb.c_group, weights=np.where(okc, cap_c, 0), minlength=pb.G)
        for g in groups:
            lst = [z[j.idx, int(g)][0] * j.chunk for j in js if (j.idx, int(g)) in z]
            if lst:
                m.Add(sum(lst) <= int(capg[g]))
    m.Minimize(sum(obj))
    if hint:
        hv, hx = [], []
        for (ji, g), (x, u) in z.items():
            v = int(hint.get(ji, {}).get(g, 0))
            hv += [x.Index(), u.Index()]
            hx += [v, 1 if v else 0]
        _add_hints(m, hv, hx)
    solver, status, name = _solve(m, time_s, seed, workers)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return name, {}
    counts: dict = {}
    for (ji, g), (x, _) in z.items():
        v = solver.Value(x)
        if v:
            counts.setdefault(ji, {})[g] = int(v)
    return name, counts


def _pod_model(pb: _Problem, st: _State, jobs: list[_Job], big: int, hint: Optional[dict],
               time_s: float, seed: int, workers: int, stall: Optional[dict] = None):
    """CP-SAT over job x pod unit counts; a relaxation of the whole problem.
    Returns (status, {job: {pod: units}}, objective, bound). ``stall``: see :func:`_solve` (with
    several workers the search stops once its best split has not improved for a while: at 100k+
    accelerators its bound stays far below and the start's split is seldom improved on)."""
    from ortools.sat.python import cp_model
    m = cp_model.CpModel()
    P = pb.n_pods
    srv_c = st.cell_servers()
    fdom_c = st.cell_full_domains()
    pcap_cell = st.pcap[pb.c_rack]
    # pod capacity: servers (power-capped per cell; an over-estimate for racks that span cells)
    S_p = np.bincount(pb.c_pod, weights=np.minimum(srv_c, pcap_cell), minlength=P).astype(np.int64)
    D_p = np.bincount(pb.c_pod, weights=fdom_c, minlength=P).astype(np.int64)
    y: dict = {}
    uvar: dict = {}
    lvar: dict = {}
    by_pod: list = [[] for _ in range(P)]   # (job, y) per pod, in the order the variables are made
    obj = []
    placed = {}
    pin_groups: dict = {}
    # the state does not change while the model is built: jobs of one allocation unit and allowed
    # area see the same units per pod, largest leaf per pod, and leaves per pod largest first
    kinds: dict = {}
    for j in jobs:
        kind = _unit_kind(j)
        if kind not in kinds:
            cu = st.cell_units(j)
            A_p = np.bincount(pb.c_pod, weights=cu, minlength=P).astype(np.int64)
            gu = np.bincount(pb.c_group, weights=cu, minlength=pb.G).astype(np.int64)
            Gmax = np.zeros(P, np.int64)
            np.maximum.at(Gmax, pb.g_pod, gu)
            caps_p = [np.zeros(0, np.int64)] * P
            for q, _, caps in _pod_group_caps(pb, gu):
                caps_p[q] = caps
            kinds[kind] = (A_p.tolist(), Gmax.tolist(), caps_p)
        A_p, Gmax, caps_p = kinds[kind]
        pl = m.NewBoolVar(f"placed[{j.idx}]")
        placed[j.idx] = pl
        terms, us, ls = [], [], []
        for p in range(P):
            ub = min(A_p[p], j.units)
            if ub <= 0:
                continue
            if j.units == 1:
                x = m.NewBoolVar(f"y[{j.idx},{p}]")
                y[j.idx, p] = x
                by_pod[p].append((j.idx, x))
                terms.append(x)
                continue
            caps = caps_p[p]
            x = m.NewIntVar(0, ub, f"y[{j.idx},{p}]")
            u = m.NewBoolVar(f"u[{j.idx},{p}]")
            l = m.NewIntVar(0, int(caps.size), f"l[{j.idx},{p}]")
            y[j.idx, p] = x
            by_pod[p].append((j.idx, x))
            uvar[j.idx, p], lvar[j.idx, p] = u, l
            # the job spans pod p iff it has units there; it needs at least ceil(y / largest leaf) leaves there
            m.Add(x <= ub * u)
            m.Add(x >= u)
            m.Add(l >= u)
            m.Add(Gmax[p] * l >= x)
            # sharper: with the pod's leaves sorted by capacity c_1 >= c_2 >= ..., holding x
            # units needs l >= k - 1 + (x - C_{k-1}) / c_k for every k (C = cumulative sum)
            cum = 0
            for k, ck in enumerate(caps.tolist(), start=1):
                if k >= 2 and cum < ub:
                    m.Add(ck * l >= ck * (k - 1) + x - cum)
                cum += ck
                if cum >= ub:
                    break
            terms.append(x)
            us.append(u)
            ls.append(l)
        if not terms:
            m.Add(pl == 0)
        else:
            m.Add(sum(terms) == j.units * pl)
        if us:
            obj.append(j.weight * A_POD * (sum(us) - pl))
            obj.append(j.weight * A_LEAF * (sum(ls) - pl))
        obj.append(F_RACK * pl)
        obj.append(pb.penalty(j, big) * (1 - pl))
        if j.pinned:
            key = (j.allowed_rack.tobytes(), j.allowed_pod.tobytes())
            pin_groups.setdefault(key, (j.allowed_rack, j.allowed_pod, []))[2].append(j)
    jmap = {j.idx: j for j in jobs}
    for p in range(P):
        _add_capacity(m, jmap, by_pod[p], S_p[p], D_p[p])
    # jobs sharing the same pinned area share its capacity
    for ar, ap, js in pin_groups.values():
        okc = ar[pb.c_rack] & ap[pb.c_pod]
        for p in range(P):
            cap = int(np.minimum(srv_c, pcap_cell)[okc & (pb.c_pod == p)].sum())
            lst = [y[j.idx, p] * j.chunk for j in js if (j.idx, p) in y]
            if lst:
                m.Add(sum(lst) <= cap)
    m.Minimize(sum(obj))
    if hint:
        _pod_hints(m, hint, y, uvar, lvar, placed)
    solver, status, name = _solve(m, time_s, seed, workers, stall=stall)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return name, {}, None, None, len(m.Proto().variables)
    counts: dict = {}
    for (ji, p), x in y.items():
        v = solver.Value(x)
        if v:
            counts.setdefault(ji, {})[p] = int(v)
    return (name, counts, int(round(solver.ObjectiveValue())),
            int(math.ceil(solver.BestObjectiveBound() - 1e-6)), len(m.Proto().variables))


def _pod_hints(m, hint: tuple, y: dict, uvar: dict, lvar: dict, placed: dict) -> None:
    """The job x pod model's hint from the start's (units per pod, leaves per pod) per job."""
    counts_h, leaves_h = hint
    hv, hx = [], []   # hints as two arrays (one AddHint call per variable is slow at scale)
    for (ji, p), x in y.items():
        hv.append(x.Index())
        hx.append(int(counts_h.get(ji, {}).get(p, 0)))
    for (ji, p), u in uvar.items():
        hv += [u.Index(), lvar[ji, p].Index()]
        hx += [1 if counts_h.get(ji, {}).get(p, 0) else 0, int(leaves_h.get(ji, {}).get(p, 0))]
    for ji, pl in placed.items():
        hv.append(pl.Index())
        hx.append(1 if counts_h.get(ji) else 0)
    _add_hints(m, hv, hx)


def _add_hints(m, var_index: list, values: list) -> None:
    """Hints ``var == value`` for variables given by index (none negated), in the order given:
    what one ``AddHint`` per variable adds, written to the model's proto in two extends."""
    h = m.Proto().solution_hint
    h.vars.extend(var_index)
    h.values.extend(values)


# --- driver --------------------------------------------------------------------------
def _order(jobs: list[_Job]) -> list[_Job]:
    return sorted(jobs, key=lambda j: (-j.prio, -j.units * j.chunk, j.idx))


def _add_capacity(m, jmap: dict, units: list, servers, domains) -> None:
    """Capacity rows of one area (a leaf or a pod): ``units`` are (job index, unit-count
    variable); the jobs' servers fit the area's servers and whole-domain jobs its free domains."""
    if not units:
        return
    m.Add(sum(jmap[ji].chunk * x for ji, x in units) <= int(servers))
    dl = [x for ji, x in units if jmap[ji].domain_job]
    if dl:
        m.Add(sum(dl) <= int(domains))


def _unit_kind(j: _Job) -> tuple:
    """What :meth:`_State.cell_units` reads of a job: its allocation unit and allowed area."""
    if not j.pinned:   # unpinned jobs all have the racks with accelerators and every pod
        return (j.domain_job, j.chunk)
    return (j.domain_job, j.chunk, j.allowed_rack.tobytes(), j.allowed_pod.tobytes())


def _kmin(avail: np.ndarray, need: int) -> Optional[int]:
    """Fewest children (largest first) that together hold `need` units; None if they cannot."""
    if need <= 0:
        return 0
    return _kmin_cum(_desc_cumsum(avail), need)


def _desc_cumsum(avail: np.ndarray) -> np.ndarray:
    """Running sums of the positive entries of ``avail``, largest first (what :func:`_kmin` reads)."""
    return np.cumsum(np.sort(avail[avail > 0])[::-1])


def _kmin_cum(c: np.ndarray, need: int) -> Optional[int]:
    """:func:`_kmin` from :func:`_desc_cumsum` of the children."""
    if need <= 0:
        return 0
    if c.size == 0 or c[-1] < need:
        return None
    return int(np.searchsorted(c, need) + 1)


def _leaf_pod_min(pb: _Problem, gu: np.ndarray, units: int, weight: int) -> Optional[int]:
    """min over (pods k, leaves l) of weight * (A_LEAF (l - 1) + A_POD (k - 1)) such that
    some l leaves lying in at most k pods hold `units` (a job alone on the cluster).
    Dynamic programme over pods of the best capacity of (k pods, l leaves), over
    k, l <= units only (every leaf with capacity holds a unit, so the cheapest
    combination never takes more leaves, or pods, than units). The minimum of
    A_LEAF (l - 1) + A_POD (k - 1) is kept per (capacities, units) on ``pb``: jobs
    of one allocation unit and size see the same capacities while the bound is taken."""
    if weight == 0:
        return 0 if _kmin(gu, units) is not None else None
    cache = pb.__dict__.setdefault("_leaf_pod_cache", {})
    key = (gu.tobytes(), int(units))
    if key not in cache:
        cache[key] = _leaf_pod_table_min(pb, gu, units)
    m = cache[key]
    return None if m is None else weight * m


def _pod_group_caps(pb: _Problem, gu: np.ndarray) -> list:
    """Per pod (in pod order) the positive capacities of its leaves, largest first, as
    (leaf ids in that order, ties by id; their capacities)."""
    ok = gu > 0
    gidx = np.flatnonzero(ok)
    # by pod, then capacity descending, then leaf id
    gidx = gidx[np.lexsort((gidx, -gu[gidx], pb.g_pod[gidx]))]
    pods = pb.g_pod[gidx]
    cut = np.flatnonzero(np.r_[True, pods[1:] != pods[:-1]]) if gidx.size else np.zeros(0, np.int64)
    out = []
    for a, b in zip(cut.tolist(), cut[1:].tolist() + [gidx.size]):
        out.append((int(pods[a]), gidx[a:b], gu[gidx[a:b]]))
    return out


def _leaf_pod_table_min(pb: _Problem, gu: np.ndarray, units: int) -> Optional[int]:
    """:func:`_leaf_pod_min` for weight 1, computed."""
    K, L = min(pb.n_pods, units), min(pb.G, units)
    NEG = -1
    best = np.full((K + 1, L + 1), NEG, np.int64)
    best[0, 0] = 0
    for _, _, caps in _pod_group_caps(pb, gu):
        pref = np.cumsum(caps)
        new = best.copy()
        for l in range(1, min(caps.size, L) + 1):
            src = best[:-1, : L + 1 - l]
            cand = np.where(src >= 0, src + pref[l - 1], NEG)
            np.maximum(new[1:, l:], cand, out=new[1:, l:])
        best = new
    best = np.maximum.accumulate(np.maximum.accumulate(best, axis=0), axis=1)
    k, l = np.nonzero(best >= units)
    if k.size == 0:
        return None
    return int((A_LEAF * (l - 1) + A_POD * (k - 1)).min())


def _best_single(pb: _Problem, st: _State, j: _Job) -> Optional[np.ndarray]:
    """Place one job alone on the current free capacity in the cheapest (pods, leaves)
    combination (dynamic programme with backtracking), racks best fit inside."""
    cu = st.cell_units(j)
    gu = np.bincount(pb.c_group, weights=cu, minlength=pb.G).astype(np.int64)
    # k pods, l leaves: exactly k pods each holding >= 1 leaf of >= 1 unit, so the cheapest
    # combination that holds the job has k <= l <= units (the table stops there)
    P, G = min(pb.n_pods, j.units), min(pb.G, j.units)
    layers, prefs = [], []
    best = np.full((P + 1, G + 1), -1, np.int64)
    best[0, 0] = 0
    pods = []
    for p, gidx, caps in _pod_group_caps(pb, gu):
        gidx = gidx[:G]
        pref = np.cumsum(caps[:G])
        new = best.copy()
        for l in range(1, gidx.size + 1):
            src = best[:-1, : G + 1 - l]
            cand = np.where(src >= 0, src + pref[l - 1], -1)
            np.maximum(new[1:, l:], cand, out=new[1:, l:])
        layers.append(best)
        prefs.append((gidx, pref))
        pods.append(p)
        best = new
    k, l = np.nonzero(best >= j.units)
    if k.size == 0:
        return None
    cost = j.weight * (A_LEAF * (l - 1) + A_POD * (k - 1))
    i = int(np.lexsort((l, k, cost))[0])
    k, l = int(k[i]), int(l[i])
    chosen = []
    cur = best
    for idx in range(len(pods) - 1, -1, -1):
        prev = layers[idx]
        gidx, pref = prefs[idx]
        if prev[k, l] == cur[k, l]:
            cur = prev
            continue
        for lp in range(1, gidx.size + 1):
            if lp <= l and k >= 1 and prev[k - 1, l - lp] >= 0 and prev[k - 1, l - lp] + pref[lp - 1] == cur[k, l]:
                chosen.extend(gidx[:lp].tolist())
                k, l = k - 1, l - lp
                break
        cur = prev
    need, got = j.units, []
    for g in sorted(chosen, key=lambda g: (-gu[g], g)):
        if need <= 0:
            break
        cidx = pb.group_cells[g]
        for ci, kc in _pick(cu[cidx], min(need, int(gu[g]))):
            s_ = st.fill_cell(j, int(cidx[ci]), kc)
            got.append(s_)
            need -= s_.size // j.chunk
    if need > 0:
        if got:
            st.release(np.concatenate(got))
        return None
    return np.concatenate(got)


def _improve(pb: _Problem, st: _State, placed: dict, deadline: float) -> int:
    """Ruin and recreate: take each job that spans leaves or racks out and put it back in the
    cheapest place the others leave (kept only when its cost drops). Returns the saving."""
    saved = 0
    order = sorted((ji for ji in placed if pb.jobs[ji].fixed is None),
                   key=lambda ji: (-pb.jobs[ji].weight * pb.jobs[ji].units, ji))
    for ji in order:
        if time.perf_counter() > deadline:
            break
        j, old = pb.jobs[ji], placed[ji]
        multi_leaf = np.unique(pb.s_group[old]).size > 1
        if not multi_leaf and np.unique(pb.s_rack[old]).size <= 1:
            continue
        before = pb.cost_of(j, old)
        st.release(old)
        best, best_cost = None, before
        # candidates: the cheapest pods/leaves (for single-leaf jobs too: another leaf may hold
        # the job in fewer racks), and the best-fitting single cell (one rack)
        for make in (lambda: _best_single(pb, st, j), lambda: _single_cell(pb, st, j)):
            new = make()
            if new is None:
                continue
            cost = pb.cost_of(j, new)
            st.release(new)
            if cost < best_cost:
                best, best_cost = new, cost
        if best is not None:
            st.take(best, ji)
            placed[ji] = best
            saved += before - best_cost
        else:
            st.take(old, ji)
    return saved


def _single_cell(pb: _Problem, st: _State, j: _Job) -> Optional[np.ndarray]:
    """The job in the best-fitting single cell (one leaf, one rack), if one holds it."""
    cu = st.cell_units(j)
    fits = np.flatnonzero(cu >= j.units)
    if fits.size == 0:
        return None
    c = int(fits[np.argmin(cu[fits])])
    s_ = st.fill_cell(j, c, j.units)
    if s_.size // j.chunk < j.units:
        if s_.size:
            st.release(s_)
        return None
    return s_


def _simple_bound(pb: _Problem, st: _State, jobs: list[_Job], big: int, all_placeable: bool = False,
                  parts: Optional[dict] = None, contention_s: float = 0.0) -> int:
    """A valid lower bound on the objective of the jobs in `jobs`.

    Every job alone on the cluster as it is: the cheapest (pods, leaves) that could
    hold it (exact, by a dynamic programme) plus the fewest racks, or its penalty
    when nothing could hold it. When some placement places every job (so the
    optimum does too, since a penalty outweighs all traffic costs), the racks term
    is at least the fewest racks that hold all the jobs' nodes together."""
    lb = 0
    racks_sum = 0
    per_rack = []
    # jobs of one allocation unit and one allowed area see the same capacities (the state does
    # not change here): per such kind, the units per leaf and per rack, and the servers per rack
    kinds: dict = {}
    for j in jobs:
        kind = _unit_kind(j)
        if kind not in kinds:
            cu = st.cell_units(j)
            gu = np.bincount(pb.c_group, weights=cu, minlength=pb.G).astype(np.int64)
            ru = np.bincount(pb.c_rack, weights=cu, minlength=pb.n_racks).astype(np.int64)
            kinds[kind] = (gu, _desc_cumsum(gu), _desc_cumsum(ru), ru * j.chunk)
        gu, g_cum, r_cum, srv_r = kinds[kind]
        kl = _kmin_cum(g_cum, j.units)
        if kl is None:
            lb += pb.penalty(j, big)
            continue
        per_rack.append(srv_r)   # shared between the jobs of a kind, read only
        kr = _kmin_cum(r_cum, j.units)
        if kl == 1:
            traffic = 0
        else:
            traffic = _leaf_pod_min(pb, gu, j.units, j.weight)
        if all_placeable:
            lb += traffic
            racks_sum += F_RACK * kr
        else:
            lb += min(traffic + F_RACK * kr, pb.penalty(j, big))
    if all_placeable:
        srv = np.minimum(np.bincount(pb.s_rack[st.free], minlength=pb.n_racks), st.pcap)
        k_all = _kmin(srv, sum(j.units * j.chunk for j in jobs)) or 0
        k_share = _racks_shared_bound(srv, jobs, per_rack, contention_s)
        racks = max(racks_sum, F_RACK * k_all, F_RACK * k_share)
        if parts is not None:
            parts.update(traffic=int(lb), racks=int(racks), racks_alone=int(racks_sum), racks_shared=int(F_RACK * k_share))
        lb += racks
    return lb


def _racks_shared_bound(cap: np.ndarray, jobs: list[_Job], per_rack: list, time_s: float) -> int:
    """A lower bound on the racks all jobs span together, with the jobs competing for racks.

    Racks fall into classes by the servers they can still take (free and powered, ``cap``).
    A relaxation of the placement keeps, per job and class, the servers it puts there (at
    most what it alone could take in the class's racks) and the racks it spans there (each
    holding at most its own largest share of one such rack), every job's servers in full,
    and per class the servers of all jobs within the class's capacity; it forgets which
    rack is which. Its optimum (or CP-SAT's proven bound on it within ``time_s``) is at
    most the racks term of any placement that places every job. Stronger than each job
    alone when jobs crowd the few emptiest racks. Returns 0 when no bound was proven."""
    from ortools.sat.python import cp_model
    if not jobs or time_s <= 0:
        return 0
    cls_arr = np.unique(cap[cap > 0])
    classes = [int(k) for k in cls_arr]
    n_class = {k: int((cap == k).sum()) for k in classes}
    pos = cap > 0
    cls_idx = np.searchsorted(cls_arr, cap[pos])
    m = cp_model.CpModel()
    spans, load = [], {k: [] for k in classes}
    # per distinct rack-capacity array (jobs of one kind share one, see _simple_bound): per class
    # the racks it can use, the servers it could put there and its largest share of one rack
    stats: dict = {}
    for j, pr in zip(jobs, per_rack):
        per_class = stats.get(id(pr))
        if per_class is None:
            v = np.minimum(pr, cap)[pos]
            use = v > 0
            ci, v = cls_idx[use], v[use].astype(np.int64)
            cnt = np.bincount(ci, minlength=len(classes))
            tot = np.zeros(len(classes), np.int64)
            np.add.at(tot, ci, v)
            top = np.zeros(len(classes), np.int64)
            np.maximum.at(top, ci, v)
            per_class = stats[id(pr)] = [(classes[c], int(cnt[c]), int(tot[c]), int(top[c]))
                                         for c in range(len(classes)) if cnt[c]]
        ws = []
        for k, n_sel, servers, largest in per_class:
            need = j.units * j.chunk
            z = m.NewIntVar(0, n_sel, "")
            w = m.NewIntVar(0, min(servers, need), "")
            m.Add(w <= largest * z)
            ws.append(w)
            spans.append(z)
            load[k].append(w)
        if not ws:
            return 0
        m.Add(sum(ws) == j.units * j.chunk)
    for k in classes:
        if load[k]:
            m.Add(sum(load[k]) <= k * n_class[k])
    m.Minimize(sum(spans))
    from topo.solve.cpsat import configure
    solver = cp_model.CpSolver()
    configure(solver, time_limit=time_s, seed=1, workers=1)  # CP-SAT's default seed
    from topo.core.signals import solve as solve_interruptible  # Ctrl-C/SIGTERM stay Python's, see topo.core.signals
    st = solve_interruptible(solver, m)
    if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return 0
    return int(math.ceil(solver.BestObjectiveBound() - 1e-6))


def _place_fixed(pb: _Problem, st: _State) -> dict:
    out = {}
    for j in pb.jobs:
        if j.fixed is not None:
            st.take(j.fixed, j.idx)
            out[j.idx] = j.fixed
    return out


_ORDERS = {
    # Slurm / Kueue: priority first, then larger jobs first
    "priority": lambda j: (-j.prio, -j.units * j.chunk, j.idx),
    # heuristic starts for the solver: largest first, heaviest traffic first
    # (and "file": file order, contiguous first fit, see _first_fit)
    "size": lambda j: (-j.units * j.chunk, -j.prio, j.idx),
    "traffic": lambda j: (-j.weight * j.units * j.chunk, -j.prio, j.idx),
}


def _greedy(pb: _Problem, order: str = "priority") -> tuple[dict, _State]:
    st = _State(pb)
    placed = _place_fixed(pb, st)
    for j in sorted([j for j in pb.jobs if j.fixed is None], key=_ORDERS[order]):
        s = _greedy_job(st, j)
        if s is not None:
            placed[j.idx] = s
    return placed, st


def _first_fit(pb: _Problem) -> dict:
    """Jobs in file order, each on the next free units in server order (contiguous,
    like an in-order placement), within power limits and pins.

    Taking units only lowers the free servers of domains and the powered servers of racks (a
    job that does not fit gives back exactly what it took), so a domain that cannot take a unit
    of some size when a job starts never can again: per allocation unit, the scan starts at the
    first domain that could when the last unpinned job of that unit started, and looks at the
    domains after it window by window (the same domains, in the same order, as a full scan)."""
    st = _State(pb)
    placed = _place_fixed(pb, st)
    d_rack = pb.s_rack[pb.d_first]
    d_pod = pb.g_pod[pb.d_group]
    start_of: dict = {}
    for j in pb.jobs:
        if j.fixed is not None:
            continue
        kind = (j.domain_job, j.chunk)
        need, got = j.units, []
        lo, win, first_ok = start_of.get(kind, 0), 1024, None
        while need and lo < pb.D:
            hi = min(lo + win, pb.D)
            win = min(2 * win, 1 << 16)
            r = d_rack[lo:hi]
            # the domains of this window that can take a unit now
            ok = j.allowed_rack[r] & j.allowed_pod[d_pod[lo:hi]] & (st.pcap[r] >= j.chunk)
            ok &= (st.dom_free[lo:hi] == pb.d_len[lo:hi]) if j.domain_job else (st.dom_free[lo:hi] >= j.chunk)
            cand = lo + np.flatnonzero(ok)
            if first_ok is None and cand.size:
                first_ok = int(cand[0])
            for d in cand.tolist():
                if need == 0:
                    break
                rack = int(d_rack[d])
                lo_s = int(pb.d_first[d])
                if j.domain_job:
                    if st.dom_free[d] == pb.d_len[d] and st.pcap[rack] >= j.chunk:
                        s = np.arange(lo_s, lo_s + pb.d_len[d])
                        st.take(s, j.idx)
                        got.append(s)
                        need -= 1
                    continue
                while need and st.dom_free[d] >= j.chunk and st.pcap[rack] >= j.chunk:
                    s = lo_s + np.flatnonzero(st.free[lo_s:lo_s + pb.d_len[d]])[: j.chunk]
                    st.take(s, j.idx)
                    got.append(s)
                    need -= 1
            lo = hi
        if not j.pinned:   # nothing before first_ok could take this unit when the job started
            start_of[kind] = first_ok if first_ok is not None else lo
        if need == 0:
            placed[j.idx] = np.concatenate(got)
        elif got:
            st.release(np.concatenate(got))
    return placed


BOUND_MET = "BOUND_MET"   # _optimize's status when the start already meets the lower bound
SKIP_SOLVER_AT_BOUND = True  # tests turn this off to exercise the solver on every instance


def _optimize(pb: _Problem, greedy_placed: dict, time_s: float, seed: int, workers: int,
              all_placeable: bool = False, start_objective: Optional[int] = None):
    """Solve (monolithic or decomposed). Returns (placed, state, info, bound, status name);
    placed is None when no solver ran because ``start_objective`` (a checked start's
    objective) already equals the lower bound, status BOUND_MET."""
    t0 = time.perf_counter()
    st = _State(pb)
    placed = _place_fixed(pb, st)
    jobs = [j for j in pb.jobs if j.fixed is None]
    big = pb.big()
    fixed_cost = sum(pb.cost_of(pb.jobs[ji], s) for ji, s in placed.items())
    parts: dict = {}
    simple = fixed_cost + _simple_bound(pb, st, jobs, big, all_placeable, parts,
                                        contention_s=min(5.0, 0.05 * time_s))
    info: dict = {"stages": [], "simple_bound": simple}
    if parts:
        info["simple_bound_parts"] = {**parts, "fixed_jobs": fixed_cost}
    if SKIP_SOLVER_AT_BOUND and start_objective is not None and start_objective <= simple:
        info["mode"] = "none: the start meets the lower bound"
        return None, st, info, simple, BOUND_MET
    # hint: the start's units per cell
    hint_cells = {j: {c: k // pb.jobs[j].chunk for c, k in _counts(pb.s_cell[s]).items()}
                  for j, s in greedy_placed.items()}
    base_cells = st.cell_servers()
    n_pairs = len(jobs) * int((base_cells > 0).sum())
    if n_pairs <= MONOLITHIC_MAX_VARS or getattr(pb, "fd", None) is not None:
        info["mode"] = "monolithic"
        name, counts, obj, bound = _cell_model(pb, st, jobs, np.arange(pb.C), None, big, hint_cells,
                                               time_s, seed, workers)
        info["stages"].append({"model": "job x cell", "status": name, "objective": obj, "bound": bound,
                               "jobs": len(jobs), "cells": pb.C})
        if obj is None:
            return None, st, info, simple, name
        bound = max(bound + fixed_cost, simple)
        _realise(pb, st, jobs, counts, placed)
        _fd_drop(pb, st, placed)
        return placed, st, info, bound, name
    info["mode"] = "decomposed"
    # hint: the greedy placement's units per pod and leaves per pod
    hint_pods = {j: {p: v // pb.jobs[j].chunk for p, v in _counts(pb.s_pod[s]).items()}
                 for j, s in greedy_placed.items()}
    hint_leaves = {j: _counts(pb.g_pod[np.unique(pb.s_group[s])]) for j, s in greedy_placed.items()}
    t_pod = 0.4 * time_s
    stall: dict = {}
    name, pod_counts, obj, bound, nvars = _pod_model(pb, st, jobs, big, (hint_pods, hint_leaves), t_pod,
                                                     seed, workers, stall=stall)
    info["stages"].append({"model": "job x pod", "status": name, "objective": obj, "bound": bound,
                           "jobs": len(jobs), "pods": pb.n_pods, "variables": nvars,
                           "seconds": round(time.perf_counter() - t0, 3),
                           **({"stall_stop": stall} if stall else {})})
    if obj is None:
        # no pod split within its time: keep the start's split, still solve inside the pods
        pod_counts = {ji: d for ji, d in hint_pods.items() if pb.jobs[ji].fixed is None}
        bound = simple
        info["stages"][-1]["fallback"] = "the start's jobs per pod"
    else:
        bound = max(bound + fixed_cost, simple)
    # per pod: jobs -> leaves
    by_pod: dict = {}
    for ji, d in pod_counts.items():
        for p, k in d.items():
            by_pod.setdefault(p, {})[ji] = k
    remaining = max(time_s - (time.perf_counter() - t0), 0.05 * time_s)
    weight_total = sum(len(v) for v in by_pod.values()) or 1
    got_by_job: dict = {}
    jmap = {j.idx: j for j in jobs}
    pod_stats = {"solved": 0, "optimal": 0, "fallback": 0}
    # big pods first: they hold the big jobs
    for p in sorted(by_pod, key=lambda q: (-len(by_pod[q]), q)):
        tot = by_pod[p]
        pj = [jmap[ji] for ji in sorted(tot)]
        tl = remaining * len(tot) / weight_total
        hint = {ji: {} for ji in tot}
        for ji in tot:
            for c, k in hint_cells.get(ji, {}).items():
                if pb.c_pod[c] == p:
                    g = int(pb.c_group[c])
                    hint[ji][g] = hint[ji].get(g, 0) + k
        nm, counts = _group_model(pb, st, pj, np.flatnonzero(pb.g_pod == p), tot, hint, tl, seed, workers)
        pod_stats["solved"] += 1
        pod_stats["optimal"] += nm == "OPTIMAL"
        if not counts:
            pod_stats["fallback"] += 1
            counts = {}
            for j in _order(pj):
                cu = st.cell_units_pod(j, p)
                gu = np.bincount(pb.c_group, weights=cu, minlength=pb.G).astype(np.int64)
                counts[j.idx] = dict(_pick(gu, tot[j.idx]))
        # inside each leaf: racks best fit, domains and nodes contiguous
        for j in sorted(pj, key=lambda x: (not x.domain_job, -tot[x.idx], x.idx)):
            cu = st.cell_units_pod(j, p)   # the leaves chosen for it are in pod p
            for g, k in sorted(counts.get(j.idx, {}).items()):
                cidx = pb.group_cells[g]
                for ci, kc in _pick(cu[cidx], k):
                    got_by_job.setdefault(j.idx, []).append(st.fill_cell(j, int(cidx[ci]), kc))
    info["stages"].append({"model": "job x leaf per pod", "pods": pod_stats,
                           "seconds": round(time.perf_counter() - t0, 3)})
    for j in _order(jobs):
        if j.idx in pod_counts:
            _finish(pb, st, j, got_by_job.get(j.idx, []), placed, prefer=np.array(
                [p in pod_counts[j.idx] for p in range(pb.n_pods)]))
    # jobs the pod stage left out (or whose leaves fell short) on what is left: placing one
    # can only lower the objective (a unit's penalty outweighs every traffic and rack term)
    for j in _order([j for j in jobs if j.idx not in placed]):
        s = _greedy_job(st, j)
        if s is not None:
            placed[j.idx] = s
    saved = 0
    for _ in range(5):
        step = _improve(pb, st, placed, t0 + time_s)
        saved += step
        if not step:
            break
    info["stages"].append({"model": "ruin and recreate per job", "saved": int(saved),
                           "seconds": round(time.perf_counter() - t0, 3)})
    return placed, st, info, bound, name


def _realise(pb: _Problem, st: _State, jobs: list[_Job], counts: dict, placed: dict) -> None:
    """Turn the cell model's units per (job, cell) into servers.

    Only the jobs the solver placed take servers first, every one of them in its
    cells before any shortfall is completed elsewhere: whole-domain jobs first
    (another job's servers must not break a domain the model kept whole for them),
    then the others, each in the fullest domains of its cells. A job the solver
    left out is tried only afterwards, on what is left (placing it can only lower
    the objective): filling it first in priority order took the servers or the
    rack power of jobs the solver had placed, which then went unplaced (issue 14)."""
    mine = [j for j in jobs if counts.get(j.idx)]
    got: dict = {}
    for j in sorted(mine, key=lambda x: (not x.domain_job, -x.prio, -x.units * x.chunk, x.idx)):
        got[j.idx] = [st.fill_cell(j, c, k) for c, k in sorted(counts[j.idx].items())]
    for j in _order(mine):
        _finish(pb, st, j, got[j.idx], placed)
    for j in _order([j for j in jobs if j.idx not in placed]):
        s = _greedy_job(st, j)
        if s is not None:
            placed[j.idx] = s


def _finish(pb, st, j, got, placed, prefer=None):
    """Complete a job whose cells fell short (racks spanning cells, chunking); drop it if impossible."""
    s = np.concatenate(got) if got else np.zeros(0, np.int64)
    short = j.units - s.size // j.chunk
    if short > 0:
        jj = _Job(**{**j.__dict__, "units": short})
        more = _greedy_job(st, jj, prefer_pods=prefer)
        if more is None:
            if s.size:
                st.release(s)
            return
        s = np.concatenate([s, more])
    placed[j.idx] = s


def _counts(keys: np.ndarray) -> dict:
    u, c = np.unique(keys, return_counts=True)
    return {int(a): int(b) for a, b in zip(u, c)}


# --- rank order, metrics --------------------------------------------------------------
def _slots(pb: _Problem, j: _Job, servers: np.ndarray) -> np.ndarray:
    """The job's accelerator endpoints in slot order: servers by (pod, leaf, rack,
    domain, server), their accelerators in local order, first n."""
    s = np.asarray(servers, np.int64)
    key = np.lexsort((s, pb.s_dom[s], pb.s_rack[s], pb.s_group[s], pb.s_pod[s]))
    return _listed(pb, j, s[key])


def _listed(pb: _Problem, j: _Job, servers: np.ndarray) -> np.ndarray:
    """The job's accelerator endpoints in the order its ``nodes`` list them (their
    accelerators in local order), first n: a job that names its nodes keeps that
    rank order, as a launcher given the same host list would run it."""
    s = np.asarray(servers, np.int64)
    first = pb.first_ep[pb.srv[s]]
    eps = (first[:, None] + np.arange(pb.aps)[None, :]).ravel()
    eps = eps[np.asarray(pb.fabric.ep_is_accel)[eps]]
    return eps[: j.n].astype(np.int64)


def _nestings(j: _Job) -> list:
    """Orders in which the parallel dimensions above TP fill the slots, slowest
    first, as tuples of (name, size): the job's own rank order first, then the
    other permutations of the dimensions larger than 1, then, for every divisor
    ``di`` of DP (1 < di < DP), DP split into an outer part ``do`` (slowest) and
    an inner part ``di`` (fastest above TP) with PP and CP between them: blocks
    of ``di`` replicas, each block with its stages apart."""
    size = {"dp": j.dp, "pp": j.pp, "cp": j.cp}
    dims = [d for d in reversed(j.order) if d != "tp" and size[d] > 1]
    out = [tuple((d, size[d]) for d in dims)]
    for p in itertools.permutations(dims):
        cand = tuple((d, size[d]) for d in p)
        if cand not in out:
            out.append(cand)
    mid = [d for d in dims if d != "dp"]
    if "dp" in dims and mid:
        for di in range(2, j.dp):
            if j.dp % di:
                continue
            for p in itertools.permutations(mid):
                out.append((("do", j.dp // di),) + tuple((d, size[d]) for d in p) + (("di", di),))
    return out


def _rank_order(pb: _Problem, j: _Job, servers: np.ndarray) -> np.ndarray:
    """Endpoint ids in rank order on the given servers.

    TP stays fastest, so every TP group takes TP consecutive slots (one domain,
    as the allocation unit guarantees). The dimensions above it may fill the
    slots in any nesting order (:func:`_nestings`): DP slowest (whole replicas
    under one leaf, DP rings cross a leaf boundary once per leaf), PP slowest
    (every pipeline stage on its own run of leaves: each DP ring spans about
    1/PP of the job's leaves, while send/recv between stages crosses), or
    blocks of replicas with their stages apart (DP rings leave a block, which
    may be a pod, only at its ends). The order whose collectives send the
    fewest bytes above the leaves (bytes leaving a pod weighted as the
    objective weights pods) is taken; ties keep the job's own rank order
    (``rank_order``), which is the in-order layout on the slots.
    """
    slots = _slots(pb, j, servers)
    nest = _nestings(j)
    if len(nest) == 1 or slots.size != j.n:
        return slots
    best, best_cost = None, None
    for order in nest:
        names = [d for d, _ in order]
        # slots shaped by the nesting (slowest first, TP last), as a (dp, pp, cp, tp) grid;
        # a split DP is (do, di) with di the faster part
        canon = (["do", "di"] if "di" in names else ["dp"]) + ["pp", "cp"]
        full = order + tuple((d, 1) for d in canon if d not in names)
        grid = slots.reshape([n for _, n in full] + [j.tp])
        grid = np.transpose(grid, [[d for d, _ in full].index(d) for d in canon] + [len(full)])
        grid = grid.reshape(j.dp, j.pp, j.cp, j.tp)
        tb = _grid_tier_bytes(pb.fabric, j, grid)
        cost = A_LEAF * (tb[2] + tb[3]) + A_POD * tb[3]
        if best_cost is None or cost < best_cost * (1 - 1e-9):
            best, best_cost = grid, cost
    out = np.empty(j.n, np.int64)
    out[rank_layout(j.order, j.dp, j.pp, j.cp, j.tp).ravel()] = best.ravel()
    return out


def tier_bytes(fabric: Fabric, job, eps: np.ndarray) -> np.ndarray:
    """Bytes per iteration of one job by the highest tier they reach:
    [scale-up, leaf, spine, super-spine], from its collectives on rank order `eps`
    (the job's ``rank_order`` maps ranks to parallel coordinates).

    Every collective is counted on the flows the traffic model expands it into
    (:func:`topo.traffic.demand.expand_collective`: rings, chains, trees, hierarchical
    all-reduce), except that all-to-all and direct algorithms in groups of more
    than 65 members are estimated from 64 evenly spaced partner offsets.
    """
    tp, pp, cp = job.tp, job.pp, job.cp
    n = eps.size
    dp = n // (tp * pp * cp)
    if dp * tp * pp * cp != n or n == 0:
        return np.zeros(4)
    order = job.order if isinstance(job, _Job) else parse_rank_order(job.rank_order)
    return _grid_tier_bytes(fabric, job, np.asarray(eps)[rank_layout(order, dp, pp, cp, tp)])


# per fabric: the first leaf and its pod of every endpoint (O(endpoints) to derive, read per job)
_ep_leaf_pod: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _grid_tier_bytes(fabric: Fabric, job, E: np.ndarray) -> np.ndarray:
    """:func:`tier_bytes` of the endpoints laid out as a (dp, pp, cp, tp) grid."""
    dp, pp, cp, tp = E.shape
    hit = _ep_leaf_pod.get(fabric)
    if hit is None:
        leaf = fabric.ep_leaf()
        hit = _ep_leaf_pod[fabric] = (leaf, np.asarray(fabric.node_pod)[leaf])
    leaf, ep_pod = hit
    dom = np.asarray(fabric.ep_domain)
    out = np.zeros(4)
    ep = max(job.ep, 1)

    def cls(a, b):
        c = np.full(a.shape, 3, np.int64)
        c[ep_pod[a] == ep_pod[b]] = 2
        c[leaf[a] == leaf[b]] = 1
        c[dom[a] == dom[b]] = 0
        return c

    for col in job.collectives:
        if col.group == "ep":
            if dp % ep:
                continue
            G = E.reshape(dp // ep, ep, pp, cp, tp)
            G = np.moveaxis(G, 1, -1).reshape(-1, ep)
        else:
            axis = {"dp": 0, "pp": 1, "cp": 2, "tp": 3}[col.group]
            G = np.moveaxis(E, axis, -1).reshape(-1, E.shape[axis])
        g = G.shape[1]
        if g <= 1:
            continue
        S = float(col.bytes)
        if col.op == "alltoall" or (col.algorithm == "direct" and col.op in _PAIR_SHARE):
            # every ordered pair sends the same share; past 64 members, 64 evenly spaced
            # partner offsets stand for all g - 1 (an estimate, scaled up)
            offs = np.arange(1, g) if g <= 65 else np.unique(np.linspace(1, g - 1, 64).astype(np.int64))
            per = _PAIR_SHARE[col.op] * S / g * (g - 1) / offs.size
            for d in offs:
                c = cls(G.ravel(), np.roll(G, -int(d), axis=1).ravel())
                out += np.bincount(c, minlength=4) * per
            continue
        # rings, chains, trees and hierarchical all-reduce: the traffic model's own flows
        src, dst, nb = expand_collective(G, col.op, col.algorithm, S, dom)
        if src.size:
            out += np.bincount(cls(src, dst), weights=nb, minlength=4)
    return out


# --- public entry point ----------------------------------------------------------------
def place(cluster: Cluster, fabric: Optional[Fabric] = None, *, time_limit: Optional[float] = None,
          seed: Optional[int] = None, workers: Optional[int] = None, policy: str = "optimize",
          failure_domains=None, reserved=None) -> PlacementResult:
    """Place every job of the cluster file. See the module docstring for the model.

    ``failure_domains``: spread or pack every job over racks, leaves or pods (a dict or
    :class:`~topo.model.spec.FailureDomains`; None: the file's ``goals.failure_domains``; False:
    neither). With one, the result's ``failure_domains`` holds the same figures for the placement
    without it (traffic above the leaves, jobs stopped per domain). ``reserved``: nodes held back
    (server ids, or node names / hostlist expressions), e.g. hot spares
    (:func:`topo.solve.spares.choose_spares`): no job uses them and rack power counts them busy.

    Returns a :class:`PlacementResult` that :func:`topo.solve.place_check.check` has
    accepted. Raises :class:`SpecError` for bad input (unknown or contradictory
    pins, a time limit that is not positive) and :class:`SolverError` when no
    placement passes the check.
    """
    from topo.solve import place_check
    t0 = time.perf_counter()
    from topo.model.spec import run_settings
    seed, workers, time_limit = run_settings(cluster, seed, workers, time_limit)
    if policy not in ("optimize", "greedy"):
        raise SpecError([("policy", f"expected optimize or greedy (found {policy!r})")])
    if fabric is None:
        from topo.model.fabric import build
        fabric = build(cluster)
    fd_rule, fd_path = failure_domain_rules(cluster, failure_domains)
    res_ids = _reserved_ids(fabric, reserved)
    check = functools.partial(place_check.check, cluster, fabric, failure_domains=fd_rule or False,
                              reserved=res_ids)
    if fd_rule is not None and policy == "greedy":
        raise SpecError([("policy", f"the greedy baseline does not honour {fd_path}; use optimize")])
    pb = _Problem(cluster, fabric, res_ids)
    pb.fd = _fd_setup(pb, fd_rule, fd_path)
    big = pb.big()
    g_placed, _ = _greedy(pb)
    # the baseline as Slurm or Kueue would run it: ranks in the job's own order
    b_res = _assemble(pb, g_placed, big, remap=False)
    b_viol = check(b_res["assignment"], b_res["unplaced"], b_res["objective"])
    solver_info: dict = {"time_limit_s": float(time_limit), "seed": seed, "workers": workers}
    baseline = {"objective": b_res["objective"], "totals": b_res["totals"],
                "placed": len(b_res["assignment"]), "unplaced": len(b_res["unplaced"]),
                "check": "passed" if not b_viol else f"failed: {b_viol[0]}"}
    if policy == "greedy":
        if b_viol:
            raise SolverError(f"the greedy placement failed its check: {'; '.join(map(str, b_viol[:5]))}")
        res, source, status, bound = b_res, "baseline", "FEASIBLE", None
        note = "greedy best-fit placement (no solver)"
        baseline = None
    else:
        res, source, status, bound, note = _optimized(pb, big, check, g_placed, baseline, solver_info, t0=t0,
                                                      time_limit=time_limit, seed=seed, workers=workers,
                                                      fd_path=fd_path)
    fd_out = other = None
    if pb.fd is not None:
        res, fd_out, other = _fd_compare(cluster, fabric, pb, res, fd_rule, time_limit=time_limit, seed=seed,
                                         workers=workers, policy=policy, reserved=reserved)
    obj = res["objective"]
    gap = None if bound is None else (0.0 if obj == 0 else round((obj - bound) / abs(obj), 6))
    names = {j: [fabric.server_name(s) for s in np.unique(fabric.ep_server[e])] for j, e in res["assignment"].items()}
    return PlacementResult(
        assignment=res["assignment"], unplaced=res["unplaced"], status=status, objective=obj,
        bound=bound, gap=gap, wall_s=time.perf_counter() - t0, policy=policy, source=source, note=note,
        jobs=res["jobs"], racks=res["racks"], stranded=res["stranded"], baseline=baseline,
        solver=solver_info, totals=res["totals"], server_names=names, failure_domains=fd_out,
        compared=other,
        reserved=tuple(fabric.server_name(int(s)) for s in (res_ids if res_ids is not None else [])))


def _optimized(pb: _Problem, big: int, check, g_placed: dict, baseline: dict, solver_info: dict, *, t0: float,
               time_limit: float, seed: int, workers: int, fd_path: str) -> tuple:
    """The optimize policy: the best checked start, the solver from it, then the best checked candidate
    (the solver's placement, its start, the baseline). Fills ``baseline["totals_rank_mapped"]`` and
    ``solver_info``; returns (result, source, status, bound, note)."""
    # the baseline's servers with ranks mapped like every other candidate
    g_res = _assemble(pb, g_placed, big)
    g_viol = check(g_res["assignment"], g_res["unplaced"], g_res["objective"])
    g_ok = not g_viol
    baseline["totals_rank_mapped"] = g_res["totals"]
    starts = _starts(pb, big, check, g_placed, g_res, g_ok)
    ok_starts = [k for k in starts if starts[k][2]]
    best_start = min(ok_starts or ["priority"], key=lambda k: (starts[k][1]["objective"], _tier_cost(starts[k][1])))
    h_placed, h_res, h_ok = starts[best_start]
    solver_info["start"] = {k: v[1]["objective"] for k, v in starts.items()}
    t_left = max(float(time_limit) - (time.perf_counter() - t0), 0.1 * float(time_limit))
    # a checked start that places every job proves the optimum places every job
    all_placeable = any(v[2] and not v[1]["unplaced"] for v in starts.values())
    o_placed, _, info, bound, sname = _optimize(pb, h_placed, t_left, seed, workers, all_placeable,
                                                start_objective=h_res["objective"] if h_ok else None)
    solver_info.update(info)
    solver_info["status"] = sname
    # candidates, each checked: the solver's placement, the solver's start, the baseline
    note = ""
    cands = []
    if o_placed is not None:
        o_res = _assemble(pb, o_placed, big)
        viol = check(o_res["assignment"], o_res["unplaced"], o_res["objective"])
        if viol:
            note = f"the solver's placement failed its check ({viol[0]}); "
        else:
            cands.append((o_res["objective"], _tier_cost(o_res), 0, "optimized", o_res))
    elif sname == BOUND_MET:
        note = f"the {best_start}-order start meets the lower bound, so it is optimal without a solver run; "
    else:
        note = f"the solver found no placement ({sname}); "
    if h_ok and best_start != "priority":  # the priority-order start is the baseline itself
        cands.append((h_res["objective"], _tier_cost(h_res), 1, "start", h_res))
    if g_ok:
        cands.append((g_res["objective"], _tier_cost(g_res), 2, "baseline", g_res))
    if not cands and pb.fd is not None:
        raise SolverError(f"no placement keeping {fd_path} passed the check within {float(time_limit):g} s "
                          f"(the solver: {sname}); raise the time limit")
    if not cands:
        raise SolverError("no placement passed the check: " + "; ".join(map(str, g_viol[:5])))
    return _chosen(cands, note, o_placed is not None, sname, bound, best_start)


def _starts(pb: _Problem, big: int, check, g_placed: dict, g_res: dict, g_ok: bool) -> dict:
    """The solver's possible starts, ``{order: (placed, result, passed its check)}``: the best of a few
    greedy orders (the baseline's among them) and, with a failure-domain rule, one that keeps it."""
    starts = {"priority": (g_placed, g_res, g_ok)}
    if len(pb.jobs) > 1:
        for order in ("size", "traffic", "file"):
            pl = _greedy(pb, order)[0] if order != "file" else _first_fit(pb)
            r_ = _assemble(pb, pl, big)
            starts[order] = (pl, r_, not check(r_["assignment"], r_["unplaced"],
                                               r_["objective"]))
    if pb.fd is not None:  # a start that keeps the failure-domain rule
        pl = _fd_greedy(pb)
        r_ = _assemble(pb, pl, big)
        starts["failure domains"] = (pl, r_, not check(r_["assignment"], r_["unplaced"], r_["objective"]))
    return starts


def _chosen(cands: list, note: str, solved: bool, sname: str, bound: Optional[int], best_start: str) -> tuple:
    """The best candidate (objective, then traffic up the tree, then solver, start, baseline), the note
    saying why, and the status; returns (result, source, status, bound, note)."""
    cands.sort(key=lambda c: c[:3])
    source, res = cands[0][3], cands[0][4]
    tied = solved and any(c[3] == "optimized" and c[0] == cands[0][0] for c in cands)
    if source == "start" and sname == BOUND_MET:
        note += "returned the start"
    elif source == "start":
        note += (f"the solver's start ({best_start} order) " +
                 ("ties the solver's placement and sends less traffic up the tree" if tied
                  else "was not improved on") + "; returned the start")
    elif source == "baseline" and sname == BOUND_MET:
        note += "returned the baseline"
    elif source == "baseline":
        note += ("the greedy baseline ties the solver's placement and sends less traffic up the tree"
                 if tied else "nothing better passed the check") + "; returned the baseline"
    obj = res["objective"]
    if not solved and sname != BOUND_MET:
        status = "UNKNOWN"
    elif bound is not None and obj == bound:
        status = "OPTIMAL"
    else:
        status = "FEASIBLE"
    return res, source, status, bound, note


def _fd_compare(cluster: Cluster, fabric: Fabric, pb: _Problem, res: dict, fd_rule, *, time_limit, seed, workers,
                policy: str, reserved) -> tuple[dict, dict, "PlacementResult"]:
    """With a failure-domain rule: the result with fragmentation reported as the rule, the rule's
    figures with and without it, and the placement without it (placed the same way)."""
    if "fragmentation" in res["unplaced"].values():
        res = {**res, "unplaced": {k: ("failure domains" if v == "fragmentation" else v)
                                   for k, v in res["unplaced"].items()}}
    other = place(cluster, fabric, time_limit=time_limit, seed=seed, workers=workers, policy=policy,
                  failure_domains=False, reserved=reserved)
    fd_out = {"level": fd_rule.level, "mode": fd_rule.mode, "max_share": fd_rule.max_share,
              "max_domains": fd_rule.max_domains, "with": _fd_summary(pb, res, pb.fd["s_dom"]),
              "without": _fd_summary(pb, {"assignment": other.assignment, "totals": other.totals,
                                          "objective": other.objective}, pb.fd["s_dom"])}
    return res, fd_out, other


def _tier_cost(res: dict) -> float:
    """Tie-break between placements of equal objective: estimated bytes leaving
    leaves, with bytes leaving pods weighted like the objective does."""
    t = res["totals"]
    return A_LEAF * t["cross_leaf_bytes"] + A_POD * t["super_spine_bytes"]


def _assemble(pb: _Problem, placed: dict, big: int, remap: bool = True) -> dict:
    """Assignment, unplaced reasons, objective and metrics of a set of placed jobs.
    ``remap``: ranks in the nesting order that sends the fewest bytes above the
    leaves (:func:`_rank_order`); otherwise in the job's own rank order on the
    slots, as a block distribution over the node list would run them."""
    f = pb.fabric
    ranked = {}
    # candidates share many jobs' servers: the ranks (and their tier bytes, below) of a job on
    # given servers are kept on the problem for the next candidate
    memo = pb.__dict__.setdefault("_ranked", {})
    for ji, s in placed.items():
        j = pb.jobs[ji]
        key = (ji, remap, np.asarray(s, np.int64).tobytes())
        if key not in memo:
            if j.fixed is not None:
                eps = _listed(pb, j, s)  # explicit nodes: ranks in the order the file lists them
            else:
                eps = (_rank_order if remap else _slots)(pb, j, s)
            # servers that hold none of the job's ranks go back to the pool
            memo[key] = (eps, pb.local_of[np.unique(np.asarray(f.ep_server)[eps])], tier_bytes(f, j, eps))
        ranked[ji] = memo[key]
    placed = {ji: v[1] for ji, v in ranked.items()}
    st = _State(pb)
    for ji, s in placed.items():
        st.take(s, ji)
    assignment, unplaced, jobs = {}, {}, {}
    objective = 0
    tot = np.zeros(4)
    for j in pb.jobs:
        if j.idx in placed:
            s = placed[j.idx]
            eps, _, tb = ranked[j.idx]
            assignment[j.name] = eps.copy()   # the kept one stays as computed
            objective += pb.cost_of(j, s)
            tot += tb
            tb_sum = tb.sum()
            doms = pb.s_dom[s]
            jobs[j.name] = {
                "accelerators": j.n, "nodes": int(s.size), "unit": "domain" if j.domain_job else "node",
                "pods": int(np.unique(pb.g_pod[pb.d_group[doms]]).size),
                "leaves": int(np.unique(pb.d_group[doms]).size),
                "racks": int(np.unique(pb.s_rack[s]).size),
                "rack_names": [f.rack_name(r) for r in np.unique(pb.s_rack[s])[:64]],
                "traffic_bytes": float(tb_sum),
                "share": {k: (float(v / tb_sum) if tb_sum else 0.0)
                          for k, v in zip(("scaleup", "leaf", "spine", "super_spine"), tb)},
                "weight": j.weight, "weight_bytes": j.weight_bytes, "priority": j.prio,
                "cost": pb.cost_of(j, s),
            }
        else:
            objective += pb.penalty(j, big)
            unplaced[j.name] = _reason(pb, st, j)
    # rack power after placement
    busy_now = pb.busy_mask_glob.copy()
    busy_now[pb.srv[st.owner >= 0]] = True
    from topo.routing.describe import rack_power
    rp = rack_power(f, pb.cluster, busy_servers=busy_now)
    kw, lim = np.asarray(rp["kw"]), np.asarray(rp["limit_kw"])
    racks = [{"rack": f.rack_name(r), "kw": round(float(kw[r]), 3), "limit_kw": float(lim[r]),
              "share": round(float(kw[r] / lim[r]), 4) if lim[r] > 0 else None} for r in range(f.n_racks)]
    # stranded accelerators
    free_srv = st.free
    pc_ok = st.pcap[pb.s_rack] > 0
    pending = [pb.jobs[i] for i in range(len(pb.jobs)) if pb.jobs[i].idx not in placed]
    stranded = {"free_accelerators": int(free_srv.sum()) * pb.aps,
                "power": int((free_srv & ~pc_ok).sum()) * pb.aps,
                "partial_nodes": int(sum(placed[j.idx].size * pb.aps - j.n for j in pb.jobs if j.idx in placed)),
                "fragmentation": 0, "domain": 0, "pending_jobs": len(pending)}
    usable = free_srv & pc_ok
    if pending:
        # free, powered accelerators that no pending job can take: in domains too broken for
        # every pending domain job, or in pieces smaller than the smallest pending job
        if all(j.domain_job for j in pending):
            whole = (st.dom_free == pb.d_len)[pb.s_dom]
            stranded["domain"] = int((usable & ~whole).sum()) * pb.aps
            usable = usable & whole
        smallest = min(j.n for j in pending)
        if int(usable.sum()) * pb.aps >= smallest:
            stranded["fragmentation"] = int(usable.sum()) * pb.aps
    t = {"traffic_bytes": float(tot.sum()), "scaleup_bytes": float(tot[0]), "leaf_bytes": float(tot[1]),
         "spine_bytes": float(tot[2]), "super_spine_bytes": float(tot[3]),
         "cross_leaf_bytes": float(tot[2] + tot[3]),
         "placed_jobs": len(assignment), "unplaced_jobs": len(unplaced),
         "placed_accelerators": int(sum(j.n for j in pb.jobs if j.idx in placed)),
         "placement_cost": int(objective - sum(pb.penalty(j, big) for j in pb.jobs if j.idx not in placed)),
         "rack_cost": int(F_RACK * sum(np.unique(pb.s_rack[s]).size for s in placed.values())),
         "racks_over_limit": int(sum(1 for r in range(f.n_racks) if kw[r] > lim[r] + 1e-9)),
         "racks_near_limit": int(sum(1 for r in range(f.n_racks) if 0.95 * lim[r] <= kw[r] <= lim[r] + 1e-9))}
    return {"assignment": assignment, "unplaced": unplaced, "objective": int(objective), "jobs": jobs,
            "racks": racks, "stranded": stranded, "totals": t}


def _reason(pb: _Problem, st: _State, j: _Job) -> str:
    """Why a job could not be placed, judged against the cluster after placement."""
    allowed_srv = j.allowed_rack[pb.s_rack] & j.allowed_pod[pb.s_pod]
    free0 = allowed_srv & ~pb.s_busy0
    if free0.sum() < j.units * j.chunk:
        # larger than the free accelerators of the cluster (or of its pinned racks)
        return "pinned racks full" if j.pinned else "too large"
    powered0 = np.minimum(np.bincount(pb.s_rack[free0], minlength=pb.n_racks), pb.rack_pcap0).sum()
    if powered0 < j.units * j.chunk:
        return "power"
    free_now = allowed_srv & st.free
    if free_now.sum() < j.units * j.chunk:
        return "pinned racks full" if j.pinned else "capacity"
    powered = np.minimum(np.bincount(pb.s_rack[free_now], minlength=pb.n_racks), st.pcap).sum()
    if powered < j.units * j.chunk:
        return "power"
    return "fragmentation"


# --- failure domains: spread or pack every job over racks, leaves or pods ---------------------
FD_MAX_PAIRS = 200_000  # job x cell pairs of the one model that honours failure domains


def failure_domain_rules(cluster: Cluster, failure_domains=None):
    """The failure-domain rule in force: ``None`` takes the cluster file's ``goals.failure_domains``,
    ``False`` none, a dict or :class:`~topo.model.spec.FailureDomains` that one. Returns
    (FailureDomains or None, the JSON path its errors name)."""
    from topo.model.spec import FailureDomains
    if failure_domains is None:
        return cluster.file.goals.failure_domains, "goals.failure_domains"
    if failure_domains is False:
        return None, "failure_domains"
    if isinstance(failure_domains, FailureDomains):
        return failure_domains, "failure_domains"
    if not isinstance(failure_domains, dict):
        raise SpecError([("failure_domains", "expected a mapping {level, mode, max_share | max_domains}, "
                                             f"False or None (found {type(failure_domains).__name__})")])
    from pydantic import ValidationError
    try:
        return FailureDomains(**failure_domains), "failure_domains"
    except ValidationError as e:
        raise SpecError([(".".join(["failure_domains", *[str(p) for p in err["loc"]]]),
                          err["msg"].removeprefix("Value error, "))
                         for err in e.errors()]) from None


def _fd_setup(pb: _Problem, fd, path: str) -> Optional[dict]:
    """Per job the units it may hold in one domain (spread) or the domains it may span (pack);
    refuses, naming ``path``, what no placement can honour exactly."""
    if fd is None:
        return None
    errs = []
    c_dom = {"rack": pb.c_rack, "leaf": pb.c_group, "pod": pb.c_pod}[fd.level]
    s_dom = {"rack": pb.s_rack, "leaf": pb.s_group, "pod": pb.s_pod}[fd.level]
    acc_dom = np.bincount(s_dom, minlength=int(s_dom.max()) + 1) * pb.aps  # accelerators per domain
    n_doms = int(np.count_nonzero(acc_dom))
    cap: dict = {}
    for j in pb.jobs:
        unit_acc = j.chunk * pb.aps
        if fd.mode == "spread":
            if j.n % unit_acc:
                errs.append((f"{path}.max_share", f"job {j.name!r}: {j.n} accelerators are not a whole number of "
                             f"its allocation units ({unit_acc} accelerators), so its share per {fd.level} "
                             "cannot be held exactly; size it in whole units"))
                continue
            most = math.floor(Fraction(repr(fd.max_share)) * j.n)  # the share as written, exactly
            k = most // unit_acc
            if k == 0:
                errs.append((f"{path}.max_share", f"job {j.name!r}: {fd.max_share:g} of {j.n} accelerators is "
                             f"{most}, less than one allocation unit ({unit_acc}); raise max_share to at least "
                             f"{unit_acc / j.n:.4g}"))
            elif -(-j.units // k) > n_doms:
                errs.append((f"{path}.max_share", f"job {j.name!r}: at most {k * unit_acc} accelerators per "
                             f"{fd.level} needs {-(-j.units // k)} {fd.level}s; the cluster has {n_doms}"))
            cap[j.idx] = k
        else:
            if fd.max_domains * int(acc_dom.max()) < j.n:
                errs.append((f"{path}.max_domains", f"job {j.name!r}: {j.n} accelerators do not fit in "
                             f"{fd.max_domains} {fd.level}(s) of at most {int(acc_dom.max())}"))
            cap[j.idx] = int(fd.max_domains)
    for j in pb.jobs:
        if j.fixed is not None and j.idx in cap and not _fd_ok_one(fd, s_dom, cap[j.idx], j, j.fixed):
            errs.append((f"jobs[{j.idx}].nodes", f"the job's explicit nodes break {path} ({fd.mode} by {fd.level})"))
    if errs:
        raise SpecError(errs)
    if len(pb.jobs) * pb.C > FD_MAX_PAIRS:
        raise SpecError([(path, f"failure domains are honoured in one job x cell model of at most "
                                f"{FD_MAX_PAIRS:,} pairs; this cluster has {len(pb.jobs):,} jobs x {pb.C:,} cells")])
    return {"rule": fd, "path": path, "c_dom": c_dom.astype(np.int64), "s_dom": s_dom.astype(np.int64), "cap": cap}


def _fd_ok_one(fd, s_dom: np.ndarray, cap: int, j: _Job, servers: np.ndarray) -> bool:
    """Does one job's set of servers keep the rule (in allocation units)?"""
    d = s_dom[servers]
    if fd.mode == "spread":
        return bool(np.bincount(d).max() <= cap * j.chunk) if d.size else True
    return int(np.unique(d).size) <= cap


def _fd_constrain(m, pb: _Problem, z: dict) -> None:
    """Add the failure-domain rule to the job x cell model: per job and domain, its units there at
    most its cap (spread), or a domain indicator per (job, domain) and at most max_domains of them (pack)."""
    fd = getattr(pb, "fd", None)
    if fd is None:
        return
    c_dom, cap = fd["c_dom"], fd["cap"]
    by: dict = {}
    for (ji, c), x in z.items():
        by.setdefault((ji, int(c_dom[c])), []).append(x)
    if fd["rule"].mode == "spread":
        for (ji, d), xs in sorted(by.items(), key=lambda kv: kv[0]):
            # spread: the job's units behind domain d
            m.Add(sum(xs) <= cap[ji])
    else:
        used: dict = {}
        for (ji, d), xs in sorted(by.items(), key=lambda kv: kv[0]):
            b = m.NewBoolVar(f"dom[{ji},{d}]")
            # pack: units behind domain d mean the job spans it
            m.Add(sum(xs) <= pb.jobs[ji].units * b)
            used.setdefault(ji, []).append(b)
        for ji, bs in used.items():
            m.Add(sum(bs) <= cap[ji])


def _fd_drop(pb: _Problem, st: _State, placed: dict) -> None:
    """Release every job whose servers break the rule (a completion outside its model cells)."""
    fd = getattr(pb, "fd", None)
    if fd is None:
        return
    for ji in sorted(placed):
        j = pb.jobs[ji]
        if j.fixed is None and not _fd_ok_one(fd["rule"], fd["s_dom"], fd["cap"][ji], j, placed[ji]):
            st.release(placed.pop(ji))


def _fd_summary(pb: _Problem, res: dict, s_dom: np.ndarray) -> dict:
    """Traffic and blast radius of one placement by failure domain: per domain the jobs and
    accelerators its failure stops (every job with a node behind it), and the largest share of
    a job one domain holds."""
    f = pb.fabric
    t = res["totals"]
    n_dom = int(s_dom.max()) + 1
    jobs_in = np.zeros(n_dom, np.int64)
    acc_in = np.zeros(n_dom, np.int64)
    worst_share = 0.0
    for name, eps in res["assignment"].items():
        d = s_dom[pb.local_of[np.asarray(f.ep_server)[np.asarray(eps, np.int64)]]]
        cnt = np.bincount(d, minlength=n_dom)
        jobs_in += cnt > 0
        acc_in += np.where(cnt > 0, eps.size, 0)
        worst_share = max(worst_share, float(cnt.max() / eps.size)) if eps.size else worst_share
    held = np.bincount(s_dom, minlength=n_dom) > 0
    js, ac = jobs_in[held], acc_in[held]
    return {"placement_cost": t["placement_cost"], "objective": res["objective"],
            "cross_leaf_bytes": t["cross_leaf_bytes"], "super_spine_bytes": t["super_spine_bytes"],
            "placed_jobs": t["placed_jobs"], "unplaced_jobs": t["unplaced_jobs"],
            "domains": int(held.sum()),
            "max_jobs_stopped": int(js.max()) if js.size else 0,
            "mean_jobs_stopped": float(js.mean()) if js.size else 0.0,
            "max_accelerators_stopped": int(ac.max()) if ac.size else 0,
            "largest_job_share_in_one_domain": round(worst_share, 6)}


def _reserved_ids(fabric: Fabric, reserved) -> Optional[np.ndarray]:
    """Server ids of the reserved nodes (ids, or names and hostlist expressions); None for none."""
    if reserved is None:
        return None
    items = list(reserved)
    if not items:
        return None
    if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in items):
        ids = np.asarray(items, np.int64)
        if ids.min() < 0 or ids.max() >= fabric.n_servers:
            raise SpecError([("reserved", f"server ids must be in [0, {fabric.n_servers})")])
    elif all(isinstance(x, str) for x in items):
        try:
            ids = np.asarray(fabric.server_ids(items), np.int64)
        except (KeyError, ValueError) as e:
            raise SpecError([("reserved", f"unknown node or bad hostlist: {e}")]) from None
    else:
        raise SpecError([("reserved", "expected server ids or node names, not a mix")])
    return np.unique(ids)


def failure_domains_from_text(spread: Optional[str] = None, pack: Optional[str] = None) -> Optional[dict]:
    """The rule from ``spread="LEVEL:SHARE"`` (e.g. ``leaf:0.5``) or ``pack="LEVEL:MAX_DOMAINS"``
    (e.g. ``pod:2``); None when neither is given. Errors name ``spread`` or ``pack``."""
    if spread is not None and pack is not None:
        raise SpecError([("pack", "give spread or pack, not both")])
    if spread is None and pack is None:
        return None
    key, text = ("spread", spread) if spread is not None else ("pack", pack)
    level, sep, num = str(text).partition(":")
    level = level.strip()
    if level not in ("rack", "leaf", "pod", "plane") or not sep:
        raise SpecError([(key, f"expected LEVEL:{'SHARE' if key == 'spread' else 'MAX_DOMAINS'} with LEVEL rack, "
                               f"leaf or pod (found {text!r})")])
    try:
        value = float(num) if key == "spread" else int(num)
    except ValueError:
        raise SpecError([(key, f"{'a share in (0, 1]' if key == 'spread' else 'a whole number of domains'} "
                               f"after the colon (found {num!r})")]) from None
    rule = {"level": level, "mode": key, ("max_share" if key == "spread" else "max_domains"): value}
    from pydantic import ValidationError

    from topo.model.spec import FailureDomains
    try:
        FailureDomains(**rule)
    except ValidationError as e:
        raise SpecError([(key, err["msg"].removeprefix("Value error, ")) for err in e.errors()]) from None
    return rule


def hold_spares(result: PlacementResult, cluster: Cluster, fabric: Fabric, spares: dict) -> PlacementResult:
    """The placement with the spares :func:`topo.solve.spares.choose_spares` chose around it held
    back: re-checked with them reserved (no job on one, every rack within its limit with them busy;
    :class:`SolverError` otherwise), its rack power recomputed with them busy, ``spares`` and
    ``reserved`` filled in."""
    import dataclasses

    from topo.routing.describe import rack_power
    from topo.solve import place_check
    ids = np.asarray(spares.get("spare_ids", []), np.int64)
    viol = place_check.check(cluster, fabric, result.assignment, result.unplaced, result.objective,
                             reserved=ids)
    if viol:
        raise SolverError("the placement with its spares held back failed its check: " + "; ".join(viol[:5]))
    pb = _Problem(cluster, fabric, ids)
    busy = pb.busy_mask_glob.copy()
    for eps in result.assignment.values():
        busy[np.asarray(fabric.ep_server)[np.asarray(eps, np.int64)]] = True
    rp = rack_power(fabric, cluster, busy_servers=busy)
    kw, lim = np.asarray(rp["kw"]), np.asarray(rp["limit_kw"])
    racks = [{"rack": fabric.rack_name(r), "kw": round(float(kw[r]), 3), "limit_kw": float(lim[r]),
              "share": round(float(kw[r] / lim[r]), 4) if lim[r] > 0 else None} for r in range(fabric.n_racks)]
    sp = {k: v for k, v in spares.items() if k != "spare_ids"}
    return dataclasses.replace(result, racks=racks, spares=sp,
                               reserved=tuple(fabric.server_name(int(s)) for s in ids.tolist()))


def _fd_greedy(pb: _Problem) -> dict:
    """A start that keeps the failure-domain rule (the other starts pack, so break spread): jobs in
    priority order; spread takes at most its cap in each domain, domains in id order (neighbours
    first, so the job stays in few pods); pack takes the max_domains domains with the most room.
    A job that does not fit is left out."""
    fd = pb.fd
    st = _State(pb)
    placed = _place_fixed(pb, st)
    c_dom = fd["c_dom"]
    n_dom = int(c_dom.max()) + 1
    for j in _order([j for j in pb.jobs if j.fixed is None]):
        cu = st.cell_units(j)
        room = np.bincount(c_dom, weights=cu, minlength=n_dom).astype(np.int64)
        if fd["rule"].mode == "spread":
            take = np.minimum(room, fd["cap"][j.idx])
            chosen = np.flatnonzero(take > 0)
        else:
            take = room
            chosen = np.lexsort((np.arange(n_dom), -room))[: fd["cap"][j.idx]]
        if take[chosen].sum() < j.units:
            continue
        got, need = [], j.units
        for d in chosen.tolist():
            if need <= 0:
                break
            k = int(min(take[d], need))
            cells = np.flatnonzero((c_dom == d) & (cu > 0))
            for ci, kc in _pick(cu[cells], k):
                s = st.fill_cell(j, int(cells[ci]), kc)
                got.append(s)
                need -= s.size // j.chunk
        s = np.concatenate(got) if got else np.zeros(0, np.int64)
        if s.size // j.chunk < j.units or not _fd_ok_one(fd["rule"], fd["s_dom"], fd["cap"][j.idx], j, s):
            st.release(s)
            continue
        placed[j.idx] = s
    return placed
