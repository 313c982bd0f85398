"""Traffic: jobs and standard patterns turned into flows between endpoints.

Owns the rank map of a job, the expansion of collectives into point-to-point
flows (nccl-tests semantics) and the standard background patterns. Produces
:class:`Demands` (flat numpy arrays); it never routes anything.

Rank map
--------
By default (``rank_order: tp-cp-pp-dp``) rank ``r`` of a job with parallelism
(tp, cp, pp, dp) has coordinates ``tp = r % TP``, ``cp = (r // TP) % CP``,
``pp = (r // (TP*CP)) % PP`` and ``dp = r // (TP*CP*PP)``: TP varies fastest,
so with an in-order placement a TP group sits inside one scale-up domain, then
CP, PP and DP. A job's ``rank_order`` may name another order of CP, PP and DP
(TP stays fastest), e.g. Megatron-LM's ``tp-cp-ep-dp-pp`` (PP slowest). EP
groups are ``ep`` consecutive DP ranks with the same (tp, cp, pp) coordinates.

Collectives (S = ``bytes`` of the collective, n = group size)
---------------------------------------------------------------
* allreduce ring: rank i sends 2(n-1)/n*S to its ring successor.
* allreduce tree: one binary tree over the group order; every child sends S to
  its parent (reduce) and every parent S to each child (broadcast).
* allreduce direct: reduce-scatter + all-gather, each rank sends 2S/n to each
  other member (2(n-1)/n*S in total).
* allreduce hierarchical: the group is split by scale-up domain (k members per
  domain, D domains). Inside each domain a ring reduce-scatter and a ring
  all-gather (2(k-1)/k*S per rank, scale-up bytes); across domains, the k
  ranks with the same position in their domain form a ring all-reduce of their
  S/k shard (2(D-1)/D*S/k per rank). Groups whose domains hold unequal numbers
  of members fall back to the flat ring.
* allgather / reducescatter: ring (for ring, tree, hierarchical): (n-1)/n*S to
  the successor; direct: S/n to each other member.
* alltoall: direct, S/n to each other member, whatever the algorithm.
* sendrecv: stage i sends S to stage i+1 (no wrap-around).
* broadcast: ring = a chain from the first member, each sends S to the next;
  tree (and other algorithms) = binary tree, each parent sends S to each child.

Flows between two endpoints of one scale-up domain are kept in the demands;
:func:`topo.routing.engine.route` accounts them as scale-up bytes of the domain and
never puts them on the scale-out fabric.

Offered rate
------------
Each job drives its NICs at line rate during its communication phase: its
ideal time ``T_job`` is the largest, over its endpoints, of the scale-out bytes
the endpoint sends or receives divided by its goodput capacity
(``injection_gbps * wire_efficiency``), and of the scale-up bytes divided by the
scale-up bandwidth of its domain. ``rate_gbps = bytes*8/T_job/1e9`` (goodput);
the routing layer divides by the wire efficiency to get wire load. Background
patterns are offered at line rate of the busiest sender/receiver likewise.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from topo.core.errors import SpecError


@dataclass(frozen=True, eq=False)
class Demands:
    """Flows between endpoints. All arrays have one entry per flow.

    src, dst: int64 endpoint ids. bytes: float64 bytes per iteration.
    job: int32 index into ``job_names`` (-1 for background patterns).
    rate_gbps: float64 offered goodput rate in Gb/s.
    job_time_s: ideal communication time of each job (same order as job_names).
    """
    src: np.ndarray
    dst: np.ndarray
    bytes: np.ndarray
    job: np.ndarray
    rate_gbps: np.ndarray
    job_names: tuple = ()
    job_time_s: tuple = ()

    @property
    def n(self) -> int:
        return int(self.src.shape[0])

    def select(self, mask: np.ndarray) -> "Demands":
        return Demands(self.src[mask], self.dst[mask], self.bytes[mask], self.job[mask], self.rate_gbps[mask],
                       self.job_names, self.job_time_s)

    @staticmethod
    def concat(parts: list["Demands"]) -> "Demands":
        if not parts:
            return empty()
        names, times, jobs = [], [], []
        for p in parts:
            off = len(names)
            names.extend(p.job_names)
            times.extend(p.job_time_s)
            jobs.append(np.where(p.job >= 0, p.job + off, -1).astype(np.int32))
        return Demands(np.concatenate([p.src for p in parts]), np.concatenate([p.dst for p in parts]),
                       np.concatenate([p.bytes for p in parts]), np.concatenate(jobs),
                       np.concatenate([p.rate_gbps for p in parts]), tuple(names), tuple(times))


def empty() -> Demands:
    z = np.zeros(0, np.int64)
    return Demands(z, z.copy(), np.zeros(0), np.zeros(0, np.int32), np.zeros(0))


# --- placement ------------------------------------------------------------------------
def in_order_placement(cluster, fabric) -> dict[str, np.ndarray]:
    """Jobs in file order onto free accelerator endpoints, in endpoint order.

    Jobs that name their ``nodes`` get the accelerators of those nodes first
    (in node order); the others fill the remaining free accelerators, skipping
    servers listed in ``busy_nodes``. Raises SpecError when a job does not fit.

    O(endpoints + jobs + the named jobs' nodes): the free endpoints are listed once and
    each job without ``nodes`` takes the next slice of them.
    """
    placed, errs = _in_order(list(enumerate(cluster.file.jobs)), fabric, free_accelerators(cluster, fabric))
    if errs:
        raise SpecError(errs)
    return placed


class _ServerEndpoints:
    """Endpoints grouped by server, each server's in (ep_local, endpoint id) order."""

    def __init__(self, fabric):
        srv = np.asarray(fabric.ep_server, np.int64)
        self.order = np.lexsort((np.asarray(fabric.ep_local), srv))
        self.start = np.searchsorted(srv[self.order], np.arange(int(fabric.n_servers) + 1, dtype=np.int64))

    def of(self, servers: np.ndarray) -> np.ndarray:
        """The endpoints of ``servers``, server by server in the order given."""
        lo, hi = self.start[servers], self.start[servers + 1]
        n = hi - lo
        if not n.sum():
            return np.zeros(0, np.int64)
        # positions lo[k] .. hi[k]-1 of every server, concatenated
        first = np.repeat(lo - np.concatenate(([0], np.cumsum(n)[:-1])), n)
        return self.order[first + np.arange(int(n.sum()), dtype=np.int64)]


def _place_named(items, fabric, free: np.ndarray, eps: "_ServerEndpoints") -> tuple[dict, list, int]:
    """The jobs of ``items`` (``(file index, job)`` pairs in file order) that name ``nodes``,
    placed on their nodes' free accelerators; ``free`` is updated. (placement, errors,
    accelerators taken)."""
    out: dict[str, np.ndarray] = {}
    errs = []
    n_taken = 0
    for i, j in items:
        if not j.nodes:
            continue
        try:
            srv = fabric.server_ids(j.nodes)
        except KeyError as e:
            errs.append((f"jobs[{i}].nodes", f"unknown node {e.args[0]!r}"))
            continue
        if np.unique(srv).size != srv.size:
            errs.append((f"jobs[{i}].nodes", "lists a node more than once"))
            continue
        # rank order follows the order the nodes are listed in, then the accelerator's index
        cand = eps.of(srv)
        cand = cand[free[cand]]
        if cand.size < j.accelerators:
            errs.append((f"jobs[{i}].nodes", f"the listed nodes have {cand.size} free accelerators; the job needs {j.accelerators}"))
            continue
        take = cand[: j.accelerators]
        free[take] = False
        n_taken += take.size
        out[j.name] = take.astype(np.int64)
    return out, errs, n_taken


def _in_order(items, fabric, free: np.ndarray) -> tuple[dict, list]:
    """The in-order placement of ``items`` (``(file index, job)`` pairs in file order) on the
    mask ``free`` (not modified): (placement in the items' order, errors)."""
    free = free.copy()
    out, errs, _ = (_place_named(items, fabric, free, _ServerEndpoints(fabric))
                    if any(j.nodes for _, j in items) else ({}, [], 0))
    # the jobs without nodes take the free endpoints left, in endpoint order, one slice each
    cand = np.flatnonzero(free)
    off = 0
    for i, j in items:
        if j.nodes:
            continue
        if cand.size - off < j.accelerators:
            errs.append((f"jobs[{i}].accelerators", f"needs {j.accelerators} accelerators; only {cand.size - off} are free after the jobs before it"))
            continue
        out[j.name] = cand[off: off + j.accelerators].astype(np.int64)
        off += j.accelerators
    return {j.name: out[j.name] for _, j in items if j.name in out}, errs


# --- rank map and collectives --------------------------------------------------------------
# --- a queue larger than the free capacity ----------------------------------------------------
# Every stage continues with the jobs that are placed and names the others. Which jobs an
# in-order placement leaves out is deterministic: jobs are admitted by priority (higher
# first, ties in file order), each one that still fits beside those admitted before it; the
# admitted jobs are then laid out in file order exactly as in_order_placement lays out a
# queue that fits.

def free_accelerators(cluster, fabric):
    """Boolean mask over endpoints: accelerators not on a node listed in ``busy_nodes``."""
    import numpy as np
    from topo.core.errors import SpecError
    free = np.asarray(fabric.ep_is_accel, bool).copy()
    if cluster.file.busy_nodes:
        try:
            busy = fabric.server_ids(cluster.file.busy_nodes)
        except (KeyError, ValueError) as e:
            raise SpecError([("busy_nodes", f"unknown node or bad hostlist: {e}")])
        free &= ~np.isin(np.asarray(fabric.ep_server), busy)
    return free


def unplaced_jobs(cluster, fabric, assignment, reasons: Optional[dict] = None) -> dict:
    """The jobs of the cluster file that ``assignment`` leaves out, in file order:
    ``{job: {"accelerators": needed, "free": accelerators left free}}`` (plus ``"reason"``
    when ``reasons`` names one). "Free" counts accelerators on nodes not listed busy that
    hold no rank of a placed job."""
    import numpy as np
    missing = [j for j in cluster.file.jobs if j.name not in assignment]
    if not missing:
        return {}
    free = free_accelerators(cluster, fabric)
    used = [np.asarray(e, np.int64) for e in assignment.values()]
    if used:
        u = np.concatenate(used)
        free[u[(u >= 0) & (u < free.shape[0])]] = False
    n_free = int(free.sum())
    out = {}
    for j in missing:
        out[j.name] = {"accelerators": int(j.accelerators), "free": n_free}
        if reasons and reasons.get(j.name):
            out[j.name]["reason"] = str(reasons[j.name])
    return out


def unplaced_line(name: str, info: dict) -> str:
    """One line naming a job left out: ``unplaced: job-x (needs N accelerators; M free)``."""
    extra = f"; {info['reason']}" if info.get("reason") else ""
    return f"unplaced: {name} (needs {info['accelerators']:,} accelerators; {info['free']:,} free{extra})"


def fit_in_order(cluster, fabric) -> tuple[dict, dict]:
    """(placement, unplaced): :func:`in_order_placement` of the jobs that fit.

    When every job fits this is exactly the in-order placement. Otherwise jobs are admitted
    by priority (higher first, ties in file order: the queue's order), each one that fits beside those admitted
    before it, and the admitted ones are placed in file order. ``unplaced`` is
    :func:`unplaced_jobs` of the result. Input errors (unknown or busy nodes, bad hostlists)
    are raised as they are, never taken for a job that does not fit.
    """
    from topo.core.errors import SpecError
    jobs = list(cluster.file.jobs)
    try:
        return in_order_placement(cluster, fabric), {}
    except SpecError as e:
        first = e
    # an unknown name is an error of the file, not a full cluster: report it as it is
    free0 = free_accelerators(cluster, fabric)
    for j in jobs:
        if j.nodes:
            try:
                fabric.server_ids(j.nodes)
            except (KeyError, ValueError):
                raise first from None
    # A trial set fits when its named jobs (placed first, in file order) all fit and the
    # others ask no more than the free accelerators the named ones leave: in file order,
    # each job without nodes takes the next slice, so none fails unless their sum is too
    # large. Only a named job changes the named placement, so only it is placed again.
    n_free0 = int(np.count_nonzero(free0))
    eps = _ServerEndpoints(fabric) if any(j.nodes for j in jobs) else None
    keep: list[int] = []
    named_taken = unnamed = 0
    for i in sorted(range(len(jobs)), key=lambda k: (-jobs[k].priority, k)):
        j = jobs[i]
        if not j.nodes:
            if unnamed + j.accelerators <= n_free0 - named_taken:
                keep.append(i)
                unnamed += j.accelerators
            continue
        trial = sorted(keep + [i])
        _, errs, taken = _place_named([(k, jobs[k]) for k in trial], fabric, free0.copy(), eps)
        if errs or unnamed > n_free0 - taken:
            continue
        keep, named_taken = trial, taken
    keep = sorted(keep)
    placed, errs = _in_order([(k, jobs[k]) for k in keep], fabric, free0)
    assert not errs, errs   # the admitted jobs fit by construction
    kept = set(keep)
    reasons = {j.name: f"its nodes (jobs[{i}].nodes) have too few free accelerators"
               for i, j in enumerate(jobs) if j.nodes and i not in kept}
    return placed, unplaced_jobs(cluster, fabric, placed, reasons)


def rank_layout(order, dp: int, pp: int, cp: int, tp: int) -> np.ndarray:
    """Rank of every (dp, pp, cp, tp) coordinate, as a [dp, pp, cp, tp] int64 array,
    for the rank order ``order`` (dimension names fastest first, as
    :func:`topo.model.spec.parse_rank_order` returns them)."""
    size = {"dp": dp, "pp": pp, "cp": cp, "tp": tp}
    slow = list(order)[::-1]
    R = np.arange(dp * pp * cp * tp, dtype=np.int64).reshape([size[d] for d in slow])
    return R.transpose([slow.index(d) for d in ("dp", "pp", "cp", "tp")])


def rank_groups(job, group: str) -> np.ndarray:
    """Ranks of every group of kind ``group`` as a [n_groups, size] int64 array."""
    from topo.model.spec import parse_rank_order
    tp, cp, pp = job.tp, job.cp, job.pp
    dp = job.dp or max(job.accelerators // (tp * cp * pp), 1)
    ep = job.ep
    R = rank_layout(parse_rank_order(job.rank_order), dp, pp, cp, tp)
    if group == "tp":
        return R.reshape(-1, tp)
    if group == "cp":
        return R.transpose(0, 1, 3, 2).reshape(-1, cp)
    if group == "pp":
        return R.transpose(0, 2, 3, 1).reshape(-1, pp)
    if group == "dp":
        return R.transpose(1, 2, 3, 0).reshape(-1, dp)
    if group == "ep":
        if dp % ep:
            ep = 1
        return R.reshape(dp // ep, ep, pp, cp, tp).transpose(0, 2, 3, 4, 1).reshape(-1, ep)
    raise ValueError(group)


def _ring(G: np.ndarray, b: float):
    return G.ravel(), np.roll(G, -1, axis=1).ravel(), np.full(G.size, b)


def _direct(G: np.ndarray, b: float):
    m, n = G.shape
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    return G[:, i].ravel(), G[:, j].ravel(), np.full(m * i.size, b)


def _tree_edges(n: int):
    child = np.arange(1, n)
    return (child - 1) // 2, child


def expand_collective(G: np.ndarray, op: str, algorithm: str, S: float, ep_domain: Optional[np.ndarray] = None):
    """Flows (src, dst, bytes) of one collective over groups G ([m, n] endpoint ids)."""
    m, n = G.shape
    z = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if n <= 1 or S <= 0:
        return z
    if op == "alltoall":
        return _direct(G, S / n)
    if op == "sendrecv":
        return G[:, :-1].ravel(), G[:, 1:].ravel(), np.full(m * (n - 1), float(S))
    if op == "broadcast":
        if algorithm == "ring":
            return G[:, :-1].ravel(), G[:, 1:].ravel(), np.full(m * (n - 1), float(S))
        p, c = _tree_edges(n)
        return G[:, p].ravel(), G[:, c].ravel(), np.full(m * p.size, float(S))
    if op in ("allgather", "reducescatter"):
        if algorithm == "direct":
            return _direct(G, S / n)
        return _ring(G, (n - 1) / n * S)
    # allreduce
    if algorithm == "direct":
        return _direct(G, 2 * S / n)
    if algorithm == "tree":
        p, c = _tree_edges(n)
        src = np.concatenate([G[:, c].ravel(), G[:, p].ravel()])
        dst = np.concatenate([G[:, p].ravel(), G[:, c].ravel()])
        return src, dst, np.full(src.size, float(S))
    if algorithm == "hierarchical" and ep_domain is not None:
        h = _hierarchical(G, S, ep_domain)
        if h is not None:
            return h
    return _ring(G, 2 * (n - 1) / n * S)


def _hierarchical(G, S, ep_domain):
    """Hierarchical all-reduce; None when domains hold unequal member counts."""
    m, n = G.shape
    dom = ep_domain[G]
    order = np.argsort(dom, axis=1, kind="stable")
    Gs = np.take_along_axis(G, order, axis=1)
    ds = np.take_along_axis(dom, order, axis=1)
    # members per domain must be equal within each group and across groups
    first = ds[:, :1]
    k = int((ds == first).sum(axis=1).min())
    if k < 1 or n % k or np.any((ds == first).sum(axis=1) != k):
        return None
    D = n // k
    blocks = ds.reshape(m, D, k)
    if np.any(blocks != blocks[:, :, :1]) or np.any(ds < 0):
        return None
    if D > 1 and np.any(blocks[:, 1:, 0] == blocks[:, :-1, 0]):
        return None
    Gb = Gs.reshape(m, D, k)
    parts = []
    if k > 1:  # intra-domain reduce-scatter + all-gather (scale-up)
        intra = Gb.reshape(m * D, k)
        s, d, b = _ring(intra, 2 * (k - 1) / k * S)
        parts.append((s, d, b))
    if D > 1:  # inter-domain ring all-reduce of each S/k shard
        inter = Gb.transpose(0, 2, 1).reshape(m * k, D)
        parts.append(_ring(inter, 2 * (D - 1) / D * S / k))
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]))


def _ideal_time_s(fabric, src, dst, nbytes, efficiency: float, inj=None, eps=None) -> float:
    """Largest per-endpoint communication time when every NIC runs at goodput line rate.

    ``inj``: ``fabric.injection_gbps()`` when the caller has it (it is the same for every job);
    ``eps``: distinct endpoint ids that include every source and destination (a job's own), so
    the per-endpoint sums are over them only. Neither changes the result: the sums add the same
    flows in the same order."""
    if src.size == 0:
        return 0.0
    dom = fabric.ep_domain
    if inj is None:
        inj = fabric.injection_gbps()
    if eps is not None:
        # positions in the sorted endpoint ids (O(job), not O(fabric) per job): each endpoint's
        # sums add the same flows in the same order whatever its position, and the maxima below
        # do not depend on the order of the endpoints
        eps = np.sort(np.asarray(eps, np.int64))   # distinct ids (the docstring above)
        ls, ld, n = np.searchsorted(eps, src), np.searchsorted(eps, dst), eps.size
    else:
        eps = None
        ls, ld, n = src, dst, fabric.n_endpoints
    same = (dom[src] == dom[dst]) & (dom[src] >= 0)
    t = 0.0
    so = ~same
    if so.any():
        sent = np.bincount(ls[so], weights=nbytes[so], minlength=n)
        recv = np.bincount(ld[so], weights=nbytes[so], minlength=n)
        busy = np.maximum(sent, recv)
        ok = busy > 0
        cap = inj[ok] if eps is None else inj[eps[ok]]
        cap = cap * efficiency * 1e9 / 8.0  # bytes/s
        with np.errstate(divide="ignore"):
            per = np.where(cap > 0, busy[ok] / np.where(cap > 0, cap, 1.0), np.inf)
        t = max(t, float(per.max(initial=0.0)))
    if same.any():
        sent = np.bincount(ls[same], weights=nbytes[same], minlength=n)
        recv = np.bincount(ld[same], weights=nbytes[same], minlength=n)
        busy = np.maximum(sent, recv)
        ok = busy > 0
        ids = np.flatnonzero(ok) if eps is None else eps[ok]
        dg = fabric.domain_gbps[dom[ids]] * 1e9 / 8.0
        per = np.where(dg > 0, busy[ok] / np.where(dg > 0, dg, 1.0), np.inf)
        t = max(t, float(per.max(initial=0.0)))
    return t


def scaleup_times_s(fabric, d: "Demands") -> np.ndarray:
    """Per job of ``d``, the ideal time of its scale-up flows alone (flows inside one scale-up
    domain, at the domain's bandwidth): what :func:`_ideal_time_s` gives for each job's
    same-domain flows, for every job in one pass."""
    nj = len(d.job_names)
    out = np.zeros(nj)
    dom = fabric.ep_domain
    same = (d.job >= 0) & (dom[d.src] == dom[d.dst]) & (dom[d.src] >= 0)
    if not same.any():
        return out
    job = d.job[same].astype(np.int64)
    b = d.bytes[same]
    n = fabric.n_endpoints
    busy = None
    for ep in (d.src[same], d.dst[same]):
        keys, inv = np.unique(job * n + ep, return_inverse=True)
        tot = np.bincount(inv.ravel(), weights=b, minlength=keys.size)
        if busy is None:
            busy = (keys, tot)
        else:
            k0, t0 = busy
            allk = np.union1d(k0, keys)
            v = np.zeros(allk.size)
            v[np.searchsorted(allk, k0)] = t0
            w = np.zeros(allk.size)
            w[np.searchsorted(allk, keys)] = tot
            busy = (allk, np.maximum(v, w))
    keys, v = busy
    ok = v > 0
    keys, v = keys[ok], v[ok]
    ep = keys % n
    dg = fabric.domain_gbps[dom[ep]] * 1e9 / 8.0
    per = np.where(dg > 0, v / np.where(dg > 0, dg, 1.0), np.inf)
    np.maximum.at(out, keys // n, per)
    return out


def job_demands(cluster, fabric, placement: Optional[dict] = None, efficiency: Optional[float] = None) -> Demands:
    """Flows of every placed job's collectives (one iteration), with offered rates.

    ``placement`` maps job name to endpoint ids in rank order (default: the in-order
    placement of the jobs that fit, :func:`fit_in_order`); jobs absent from it are skipped.
    The flows are built once per (jobs, endpoints' domains, placement) and shared
    (:func:`job_flows`); the rates once per efficiency and NIC capacities. The arrays of the
    result are read-only (they may be shared with other callers).
    """
    from topo.model.spec import wire_efficiency
    if placement is None:
        placement = fit_in_order(cluster, fabric)[0]
    eff = wire_efficiency(cluster) if efficiency is None else efficiency
    return job_flows(cluster, fabric, placement).demands(fabric, eff)


# How many job-flow sets are kept (the route, budget and reroute stages of one run ask for the
# in-order and the optimised placement; a few more let a caller alternate without rebuilding).
JOB_FLOWS_KEPT = 3


@dataclass(frozen=True, eq=False)
class JobFlows:
    """Every placed job's flows before rates: what :func:`job_demands` builds once per (the jobs,
    the endpoints' scale-up domains, the placement) and shares between the callers that route the
    same jobs on the same endpoints (the route stage's analyses, the link budget and its transport
    check, the reroute on the chosen fabric). Arrays read-only; per job ``start[k]:start[k + 1]``."""
    src: np.ndarray
    dst: np.ndarray
    bytes: np.ndarray
    job: np.ndarray          # int32 job index per flow
    start: np.ndarray        # int64 offsets, one more than jobs
    names: tuple
    eps: tuple               # each job's endpoint ids
    _rates: dict = field(default_factory=dict, repr=False)   # (efficiency, NIC digest) -> Demands

    def demands(self, fabric, efficiency: float) -> Demands:
        """The flows with offered rates at ``efficiency`` on ``fabric``'s NICs and scale-up
        domains (each job's ideal time, :func:`_ideal_time_s`), built once per pair."""
        if not self.names:
            return empty()
        inj = fabric.injection_gbps()
        key = (float(efficiency), _digest(inj, fabric.domain_gbps, fabric.ep_domain))
        d = self._rates.get(key)
        if d is not None:
            return d
        times = []
        rate = np.zeros(self.bytes.shape[0])
        for k in range(len(self.names)):
            a, b = int(self.start[k]), int(self.start[k + 1])
            nb = self.bytes[a:b]
            t = _ideal_time_s(fabric, self.src[a:b], self.dst[a:b], nb, efficiency, inj, self.eps[k])
            if t > 0:
                rate[a:b] = nb * 8 / t / 1e9
            times.append(t)
        rate.flags.writeable = False
        d = self._rates[key] = Demands(self.src, self.dst, self.bytes, self.job, rate, self.names, tuple(times))
        return d


def _digest(*arrays) -> bytes:
    import hashlib
    h = hashlib.blake2b(digest_size=20)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.digest()


_flows_kept: dict = {}   # key -> JobFlows, oldest first


def job_flows(cluster, fabric, placement: dict) -> JobFlows:
    """The flows of every job of ``cluster`` that ``placement`` places (see :func:`job_demands`),
    built once per (the jobs as the file states them, the endpoints' scale-up domains, the
    placement's endpoint ids) and kept for the next caller (the last JOB_FLOWS_KEPT of them).
    The key is the content, not the objects: a rebuilt fabric with the same endpoints (the link
    budget's candidates, the chosen fabric) shares the flows."""
    key = _flows_key(cluster, fabric, placement)
    hit = _flows_kept.pop(key, None)
    if hit is None:
        hit = _build_job_flows(cluster, fabric, placement)
    _flows_kept[key] = hit   # the newest last
    while len(_flows_kept) > JOB_FLOWS_KEPT:
        del _flows_kept[next(iter(_flows_kept))]
    return hit


def _flows_key(cluster, fabric, placement: dict) -> bytes:
    """job_flows' key: a digest of the endpoints' domains, every job as the file states it (its JSON,
    length-prefixed) and each job's endpoint ids (their count first, -1 for a job not placed), each
    part hashed once over all the jobs rather than once per job."""
    import hashlib
    texts, counts, arrs = [], [], []
    for j in cluster.file.jobs:
        texts.append(j.model_dump_json().encode())
        eps = placement.get(j.name)
        if eps is None:
            counts.append(-1)
        else:
            arrs.append(np.asarray(eps, np.int64).ravel())
            counts.append(arrs[-1].size)
    h = hashlib.blake2b(digest_size=20)
    h.update(_digest(fabric.ep_domain))
    h.update(_digest(np.asarray([len(t) for t in texts], np.int64)))
    h.update(b"".join(texts))
    h.update(_digest(np.asarray(counts, np.int64), np.concatenate(arrs) if arrs else np.zeros(0, np.int64)))
    return h.digest()


def _build_job_flows(cluster, fabric, placement: dict) -> JobFlows:
    ss, dd, bb, jj, names, eps_all, start = [], [], [], [], [], [], [0]
    for i, j in enumerate(cluster.file.jobs):
        if j.name not in placement:
            continue
        eps = np.asarray(placement[j.name], np.int64)
        if eps.shape[0] != j.accelerators:
            raise SpecError([(f"jobs[{i}]", f"placement gives {eps.shape[0]} endpoints; the job needs {j.accelerators}")])
        n0 = len(ss)
        for c in j.collectives:
            G = eps[rank_groups(j, c.group)]
            s, d, b = expand_collective(G, c.op, c.algorithm, float(c.bytes), fabric.ep_domain)
            ss.append(s), dd.append(d), bb.append(b)
        size = sum(x.size for x in ss[n0:])
        jj.append(np.full(size, len(names), np.int32))
        names.append(j.name)
        eps_all.append(eps)
        start.append(start[-1] + size)
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt, copy=False) if xs else np.zeros(0, dt))
    arrays = (cat(ss, np.int64), cat(dd, np.int64), cat(bb, np.float64), cat(jj, np.int32))
    for a in arrays + tuple(eps_all):
        a.flags.writeable = False
    return JobFlows(*arrays, start=np.asarray(start, np.int64), names=tuple(names), eps=tuple(eps_all))


# --- background patterns ---------------------------------------------------------------
def _endpoints(fabric, endpoints) -> np.ndarray:
    if endpoints is None:
        return np.arange(fabric.n_endpoints, dtype=np.int64)
    if np.isscalar(endpoints):
        return np.arange(min(int(endpoints), fabric.n_endpoints), dtype=np.int64)
    return np.asarray(endpoints, np.int64)


def _at_line_rate(fabric, src, dst, nbytes, efficiency) -> Demands:
    t = _ideal_time_s(fabric, src, dst, nbytes, efficiency)
    rate = nbytes * 8 / t / 1e9 if t > 0 else np.zeros_like(nbytes)
    return Demands(src.astype(np.int64), dst.astype(np.int64), nbytes.astype(np.float64),
                   np.full(src.size, -1, np.int32), rate)


MAX_UNIFORM_FLOWS = 20_000_000


def uniform(fabric, nbytes: float = 1e9, endpoints=None, efficiency: float = 1.0, where: str = "traffic") -> Demands:
    """Every endpoint sends ``nbytes`` to every other one (n(n-1) flows); ``where`` names the
    pattern in errors."""
    eps = _endpoints(fabric, endpoints)
    n = eps.size
    if n * (n - 1) > MAX_UNIFORM_FLOWS:
        raise SpecError([(where, f"uniform all-to-all over {n:,} endpoints is {n * (n - 1):,} flows; "
                          f"at most {MAX_UNIFORM_FLOWS:,} are expanded one by one, as roce-hash (which hashes "
                          "every flow), a subset of the endpoints (endpoints:) and rail-only fabrics need; "
                          "over all endpoints the fluid, wcmp and uec-spray models route it aggregated at "
                          "any scale (transport.protocol ideal or uec, or --routing)")])
    s, d, b = _direct(eps[None, :], float(nbytes) * n)
    return _at_line_rate(fabric, s, d, b, efficiency)


def permutation(fabric, nbytes: float = 1e9, endpoints=None, seed: int = 0, efficiency: float = 1.0) -> Demands:
    """A seeded random permutation without fixed points: each endpoint sends to one other."""
    eps = _endpoints(fabric, endpoints)
    n = eps.size
    if n < 2:
        return empty()
    rng = np.random.default_rng(seed)
    # a random cyclic shift of a random order has no fixed points
    order = rng.permutation(n)
    shift = int(rng.integers(1, n))
    dst = np.empty(n, np.int64)
    dst[order] = order[(np.arange(n) + shift) % n]
    return _at_line_rate(fabric, eps, eps[dst], np.full(n, float(nbytes)), efficiency)


def incast(fabric, nbytes: float = 1e9, endpoints=None, fan_in: int = 16, seed: int = 0,
           efficiency: float = 1.0) -> Demands:
    """Receivers each get ``nbytes`` from ``fan_in`` distinct random senders.

    Endpoints are split into blocks of fan_in + 1: the first of each block
    receives from the others (in a seeded random order of endpoints).
    """
    eps = _endpoints(fabric, endpoints)
    rng = np.random.default_rng(seed)
    order = eps[rng.permutation(eps.size)]
    blk = fan_in + 1
    m = order.size // blk
    if m == 0:
        if order.size < 2:
            return empty()
        blk, m = order.size, 1
    B = order[: m * blk].reshape(m, blk)
    src = B[:, 1:].ravel()
    dst = np.repeat(B[:, 0], blk - 1)
    return _at_line_rate(fabric, src, dst, np.full(src.size, float(nbytes)), efficiency)


def matrix(fabric, path, efficiency: float = 1.0, where: str = "traffic") -> Demands:
    """An explicit traffic matrix: CSV lines ``src,dst,bytes`` with endpoint names.

    A header line (first field ``src``) and ``#`` comments are allowed. Unknown
    names, negative or malformed bytes raise SpecError naming file and line.
    """
    from topo.model.spec import _BYTES, _UNIT_RE, _unit_factor
    from topo.core.inputs import read_text
    from topo.core.limits import MAX_CSV_FIELD, MAX_DATA_FILE_BYTES
    p = Path(path)
    text = read_text(p, where, limit=MAX_DATA_FILE_BYTES, what="traffic matrix")
    src, dst, nb, errs = [], [], [], []
    rows = csv.reader(text.splitlines())
    for lineno in range(1, 1 << 62):
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as e:
            raise SpecError([(where, f"traffic matrix {str(p)!r} line {lineno}: malformed CSV ({e})")])
        if any(len(c) > MAX_CSV_FIELD for c in row):
            raise SpecError([(where, f"traffic matrix {str(p)!r} line {lineno}: a field is longer than "
                                     f"{MAX_CSV_FIELD:,} characters")])
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        row = [c.strip() for c in row]
        if lineno == 1 and row[0].lower() == "src":
            continue
        if len(row) != 3:
            errs.append((where, f"{str(p)!r} line {lineno}: expected src,dst,bytes; found {len(row)} fields"))
            continue
        ids = []
        for name in row[:2]:
            try:
                i = fabric.find_node(name)
            except KeyError:
                errs.append((where, f"{str(p)!r} line {lineno}: unknown endpoint {name!r}"))
                break
            if i >= fabric.n_endpoints:
                errs.append((where, f"{str(p)!r} line {lineno}: {name!r} is a switch, not an endpoint"))
                break
            ids.append(i)
        if len(ids) != 2:
            continue
        b = row[2]
        try:
            v = float(b)
        except ValueError:
            m = _UNIT_RE.match(b)
            try:
                v = float(m.group(1)) * _unit_factor(_BYTES, m.group(2)) if m else None
            except ValueError as e:
                errs.append((where, f"{str(p)!r} line {lineno}: bytes {b!r}: {e}"))
                continue
            if v is None:
                errs.append((where, f"{str(p)!r} line {lineno}: bytes {b!r} is not a number of bytes"))
                continue
        if not np.isfinite(v) or v < 0:
            errs.append((where, f"{str(p)!r} line {lineno}: bytes must be a non-negative number (found {b!r})"))
            continue
        src.append(ids[0]), dst.append(ids[1]), nb.append(v)
        if len(errs) > 50:
            break
    if errs:
        raise SpecError(errs, str(p))
    s = np.array(src, np.int64)
    d = np.array(dst, np.int64)
    keep = s != d
    return _at_line_rate(fabric, s[keep], d[keep], np.array(nb, np.float64)[keep], efficiency)


def uniform_aggregable(fabric, endpoints=None) -> bool:
    """Whether a uniform pattern over ``endpoints`` can be routed aggregated
    (:func:`topo.routing.engine.uniform_loads` under a fluid-type model) with loads equal to
    routing its flows one by one: it spans every endpoint (aggregation is per destination
    group, the endpoints behind one home switch) and the fabric is not rail-only (whose
    proxy rewrite moves each flow's source into the sender's domain)."""
    n = _endpoints(fabric, endpoints).size
    return n == fabric.n_endpoints and fabric.family != "rail_only"


def uniform_pair_gbps(fabric, nbytes: float, efficiency: float = 1.0) -> float:
    """Goodput Gb/s of every pair of a uniform pattern over all endpoints at line rate, as
    :func:`uniform` offers it (the same ideal time, :func:`_ideal_time_s`), without
    expanding the n(n-1) flows: every endpoint sends and receives ``nbytes`` to each of the
    other members of its scale-up domain over the domain and to every other endpoint over
    its NICs."""
    n = fabric.n_endpoints
    if n < 2:
        return 0.0
    dom = np.asarray(fabric.ep_domain, np.int64)
    k = np.ones(n, np.int64)
    ind = dom >= 0
    if ind.any():
        k[ind] = np.bincount(dom[ind])[dom[ind]]
    inj = fabric.injection_gbps() * efficiency * 1e9 / 8.0
    so = float(nbytes) * (n - k)
    t = 0.0
    ok = so > 0
    if ok.any():
        with np.errstate(divide="ignore"):
            t = max(t, float(np.where(inj[ok] > 0, so[ok] / np.where(inj[ok] > 0, inj[ok], 1.0), np.inf).max()))
    su = float(nbytes) * (k - 1)
    ok = su > 0
    if ok.any():
        dg = fabric.domain_gbps[dom[ok]] * 1e9 / 8.0
        t = max(t, float(np.where(dg > 0, su[ok] / np.where(dg > 0, dg, 1.0), np.inf).max()))
    return float(nbytes) * 8 / t / 1e9 if t > 0 else 0.0


def aggregated_uniform_gbps(cluster, fabric, efficiency: Optional[float] = None) -> list[float]:
    """Per-pair goodput Gb/s of each ``traffic:`` uniform pattern that
    ``pattern_demands(..., aggregate_uniform=True)`` leaves out (see :func:`uniform_aggregable`),
    in file order, at ``efficiency`` (default the cluster's wire efficiency)."""
    from topo.model.spec import wire_efficiency
    eff = wire_efficiency(cluster) if efficiency is None else efficiency
    return [uniform_pair_gbps(fabric, tp.bytes, eff) for tp in cluster.file.traffic
            if tp.pattern == "uniform" and uniform_aggregable(fabric, tp.endpoints)]


def pattern_demands(cluster, fabric, seed: Optional[int] = None, aggregate_uniform: bool = False,
                    efficiency: Optional[float] = None) -> Demands:
    """The ``traffic:`` patterns of a cluster file, concatenated.

    With ``aggregate_uniform`` the uniform patterns that can be routed aggregated
    (:func:`uniform_aggregable`) are left out, for the caller to add their loads
    (:func:`aggregated_uniform_gbps` gives their per-pair rates); the others are expanded
    flow by flow (and refused above MAX_UNIFORM_FLOWS)."""
    from topo.model.spec import wire_efficiency
    eff = wire_efficiency(cluster) if efficiency is None else efficiency
    parts = []
    for i, tp in enumerate(cluster.file.traffic):
        s = tp.seed if tp.seed is not None else (seed if seed is not None else cluster.file.goals.seed)
        if tp.pattern == "uniform" and aggregate_uniform and uniform_aggregable(fabric, tp.endpoints):
            continue
        if tp.pattern == "uniform":
            parts.append(uniform(fabric, tp.bytes, tp.endpoints, eff, where=f"traffic[{i}]"))
        elif tp.pattern == "permutation":
            parts.append(permutation(fabric, tp.bytes, tp.endpoints, s, eff))
        elif tp.pattern == "incast":
            parts.append(incast(fabric, tp.bytes, tp.endpoints, tp.fan_in, s, eff))
        else:
            f = Path(tp.file)
            if not f.is_absolute():
                f = Path(cluster.base_dir) / f
            parts.append(matrix(fabric, f, eff, where=f"traffic[{i}].file"))
    return Demands.concat(parts)
