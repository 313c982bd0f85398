"""Collective time from 1 KiB to many GiB: an alpha-beta model per algorithm, on the routed fabric.

Owns the time of one collective (and a job's iteration) as the sum over its
algorithm's phases of ``steps x alpha + bytes / rate``, the algorithms' step
schedules, the tuner's choice, and the message-size sweep. It routes each
step's communication pattern with :func:`topo.routing.engine.route` and never
parses files or prints.

Model
-----
A phase is a communication pattern (every rank sends to one partner, or to
all, at once) that the algorithm runs ``steps`` times in a row (alpha) while
moving ``f x S`` bytes per rank in all (beta; S = the collective's ``bytes``):

* alpha of a pattern = the per-step software + NIC overhead
  (:data:`topo.model.catalog.STEP_OVERHEAD_US`) + the latency of the slowest
  path the pattern uses: per switch on the path its ``latency_ns`` (not counted
  where the switch model has none, and reported so) plus the path's cable
  length at :data:`topo.model.catalog.PROPAGATION_NS_PER_M`. Under roce-hash
  the paths are the hashed (channel, queue pair) paths, so more channels and
  queue pairs can only lengthen the slowest one; under the other models one
  hashed equal-cost path per flow stands for all of them (same hop count).
  Flows inside a scale-up domain count the overhead only (no scale-up switch
  latency is modelled).
* beta of a pattern = bytes / the goodput rate of its slowest flow when all
  groups of the collective run it at once: under roce-hash, per-QP max-min
  fair rates (:func:`topo.routing.engine.waterfill`, equal weights) over the
  hashed paths, a flow as fast as its slowest (channel, QP); under fluid, wcmp
  and uec-spray, each flow offered 1 and slowed by the highest link
  utilisation the pattern causes (proportional sharing), as the engine's job
  times do; scale-up flows at the domain's bandwidth shared by the flows each
  accelerator sends or receives there. Wire rates are converted to goodput
  with the transport's wire efficiency.

Algorithms (p ranks; k per scale-up domain and D domains for hierarchical):

=====================  =========================================================
allreduce ring         2(p-1) steps, 2(p-1)/p S (ring neighbours)
allreduce tree         pipelined binary tree: ceil(log2 p) steps up (S) and down (S)
allreduce rec. doubl.  log2 p steps of S with partner i xor 2^j (p a power of 2)
allreduce halv.-doubl. Rabenseifner: 2 log2 p steps, 2(p-1)/p S (p a power of 2)
allreduce hierarch.    ring RS in the domain (k-1, (k-1)/k S), ring allreduce of
                       the S/k shard across domains (2(D-1), 2(D-1)/(Dk) S), ring AG
                       in the domain (k-1, (k-1)/k S)
allreduce in_network   switch reduction (pinned only): 2 steps (up to the
                       reducing switch, down), S at the NIC rate
allgather ring / rec.  p-1 steps / log2 p steps, (p-1)/p S
reducescatter ring/hd  p-1 steps / log2 p steps, (p-1)/p S
*/direct               1 step, S/p to every other rank at once
alltoall pairwise      p-1 steps, S/p to rank i+j at step j
sendrecv direct        1 step, S from stage i to stage i+1
broadcast chain / tree pipelined: p-1 / ceil(log2 p) steps, S
=====================  =========================================================

Not modelled: queueing and congestion-control dynamics (rates are the
steady-state fair shares), incast transients, the protocol switch of a real
library (LL / LL128 / Simple), chunking overhead of pipelined algorithms, and
scale-up switch latency.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from topo.core.errors import SpecError

MAX_PATTERNS = 64  # pairwise all-to-all with more than this many steps is not evaluated (listed as such)
NCCL_BUS_FACTOR = {"allreduce": lambda n: 2 * (n - 1) / n, "allgather": lambda n: (n - 1) / n,
                   "reducescatter": lambda n: (n - 1) / n, "alltoall": lambda n: (n - 1) / n,
                   "sendrecv": lambda n: 1.0, "broadcast": lambda n: 1.0}


def parse_size(text: str) -> float:
    """'1KiB', '16GiB', '512MB', '4096' -> bytes (KiB = 1024, KB = 1000)."""
    from pydantic import TypeAdapter, ValidationError
    from topo.model.spec import Bytes
    try:
        return float(TypeAdapter(Bytes).validate_python(text.strip()))
    except ValidationError as e:
        raise SpecError([("sizes", f"{text.strip()!r}: {e.errors()[0]['msg']}")]) from None


def size_range(spec: str) -> list[float]:
    """'1KiB..16GiB' -> powers of two from the first to the last (both included); 'a,b,c' -> those sizes."""
    spec = spec.strip()
    if ".." in spec:
        a, b = (parse_size(x.strip()) for x in spec.split("..", 1))
        if not (0 < a <= b):
            raise SpecError([("sizes", f"{spec!r}: the first size must be positive and at most the last")])
        out, s = [], a
        while s <= b * (1 + 1e-12):
            out.append(s)
            s *= 2
        if len(out) > 64:
            raise SpecError([("sizes", f"{spec!r} gives {len(out)} sizes; at most 64")])
        return out
    out = [parse_size(x.strip()) for x in spec.split(",") if x.strip()]
    if not out or any(x <= 0 for x in out):
        raise SpecError([("sizes", f"{spec!r}: give sizes such as 1KiB..16GiB or 1MiB,64MiB")])
    return out


# --- latency of paths --------------------------------------------------------------------------
def _switch_latency_ns(cluster, fabric) -> tuple[np.ndarray, list[str]]:
    """Per node: latency of one hop through it in ns (0 for endpoints and unknown models) and the
    switch models without a latency figure (their hops are not counted)."""
    lat = np.zeros(fabric.n_nodes)
    unknown = []
    tiers = list(cluster.tiers) if cluster is not None else []
    for t in range(1, int(fabric.node_tier.max(initial=0)) + 1):
        if t - 1 >= len(tiers):
            unknown.append(f"tier {t} switches")
            continue
        v = tiers[t - 1].switch.latency_ns
        if v is None:
            unknown.append(tiers[t - 1].switch_name)
        else:
            lat[fabric.node_tier == t] = float(v)
    return lat, sorted(set(unknown))


def path_latency_s(fabric, paths: np.ndarray, node_latency_ns: np.ndarray, cost: Optional[np.ndarray] = None) -> np.ndarray:
    """Latency of each path (rows of directed link ids, -1 padded): the latency of every node a link
    enters except the last (the destination) plus the links' lengths at the propagation speed.
    ``cost``: :func:`_link_cost_ns` of the same arguments, when the caller keeps it."""
    paths = np.asarray(paths, np.int64)
    if paths.size == 0:
        return np.zeros(paths.shape[0] if paths.ndim == 2 else 0)
    if cost is None:
        cost = _link_cost_ns(fabric, node_latency_ns)
    return cost[paths].sum(axis=1) * 1e-9


def _link_cost_ns(fabric, node_latency_ns: np.ndarray) -> np.ndarray:
    """Per link: its cable delay plus the latency of the node it enters (0 for the destination
    endpoint), ns; the extra last entry (index -1) is the padding's 0."""
    from topo.model.catalog import PROPAGATION_NS_PER_M
    cost = np.zeros(fabric.n_links + 1)
    cost[:-1] = fabric.link_length_m.astype(np.float64) * PROPAGATION_NS_PER_M + node_latency_ns[fabric.link_dst]
    return cost


def min_maxmin_rate(paths: np.ndarray, capacity: np.ndarray, counts: Optional[np.ndarray] = None) -> float:
    """The smallest rate of equal-weight max-min fair sharing of ``paths`` (rows of link ids, -1 padded):
    the first level progressive filling freezes, min over used links of capacity / paths through it.
    Equals ``topo.routing.engine.waterfill(paths, capacity).min()`` (tests compare them); O(path length)
    with a kept ``counts``.

    ``counts``: an all-zero int64 scratch array over the links (handed back all zero), kept by a
    caller that asks for many patterns of one fabric (without it, one is made for the call): the paths
    per link are counted in it, with no sort."""
    paths = np.asarray(paths, np.int64)
    flat = paths[paths >= 0]
    if flat.size == 0:
        return math.inf
    cap = np.asarray(capacity, np.float64)
    if counts is None:
        counts = np.zeros(cap.shape[0], np.int64)
    np.add.at(counts, flat, 1)
    try:
        # every use of a link divides its capacity by the same count: the min over the uses is the
        # min over the used links
        return float((cap[flat] / counts[flat]).min())
    finally:
        counts[flat] = 0


# --- one pattern: alpha and the slowest flow's rate --------------------------------------------
class _Patterns:
    """Routes communication patterns (src, dst arrays) once and caches (latency, goodput bytes/s)."""

    def __init__(self, cluster, fabric, model, seed, qps, channels, efficiency, dead):
        from topo.model.catalog import STEP_OVERHEAD_US
        self.cluster, self.fabric, self.model = cluster, fabric, model
        self.seed, self.qps, self.channels, self.eff, self.dead = seed, qps, channels, efficiency, dead
        self.overhead_s = STEP_OVERHEAD_US * 1e-6
        self.node_lat, self.unknown_latency = _switch_latency_ns(cluster, fabric)
        self.cache: dict = {}
        self.kept: dict = {}   # sparse_loads' buffers, across the patterns
        self.counts = np.zeros(fabric.n_links, np.int64)   # min_maxmin_rate's scratch, all zero between calls
        # per fabric, not per pattern: the link costs of the latency and the capacities
        self.link_cost = _link_cost_ns(fabric, self.node_lat)
        self.cap = np.where(dead, 0.0, fabric.link_gbps) if dead is not None else fabric.link_gbps.astype(float)
        if dead is not None and not np.any(dead):
            self.dead = None   # a healthy fabric: not scanned again for every pattern

    def get(self, key, src: np.ndarray, dst: np.ndarray) -> tuple[float, float]:
        """(alpha seconds, goodput bytes/s of the slowest flow) of the pattern."""
        hit = self.cache.get(key)
        if hit is None:
            hit = self.cache[key] = self._compute(np.asarray(src, np.int64), np.asarray(dst, np.int64))
        return hit

    def _compute(self, src, dst):
        from topo.routing.engine import hashed_paths, sparse_loads
        from topo.traffic.demand import Demands
        f = self.fabric
        keep = src != dst
        src, dst = src[keep], dst[keep]
        if src.size == 0:
            return 0.0, math.inf
        n = src.size
        one = np.ones(n)   # rate and bytes alike (read only)
        d = Demands(src, dst, one, np.zeros(n, np.int32), one)
        dom = f.ep_domain
        ds = dom[src]
        same = (ds == dom[dst]) & (ds >= 0)
        if same.all() and f.family != "rail_only":
            # every flow inside one scale-up domain: no model routes one through the fabric (no path,
            # never unreachable), so the alpha is the step overhead alone and the rate the domain's
            return self.overhead_s + 0.0, self._scaleup_rate(src, dst, same, math.inf) * self.eff * 1e9 / 8.0
        cap = self.cap
        # latency: hashed paths (all channels x queue pairs under roce-hash, one per flow otherwise)
        hashed = self.model == "roce-hash"
        _, qp_path, unreach = hashed_paths(f, d, failed_links=self.dead, seed=self.seed,
                                           qps=self.qps if hashed else 1, channels=self.channels if hashed else 1)
        out = ~same
        if (unreach[out] > 0).any():
            return math.inf, 0.0
        # the slowest path's latency (path_latency_s's sums; x 1e-9 after the max, the same bits: a
        # product by a positive constant keeps the order of its rounded values)
        rows = qp_path.shape[0] if qp_path is not None else 0
        alpha = self.overhead_s + (float(self.link_cost[qp_path].sum(axis=1).max()) * 1e-9 if rows else 0.0)
        # rate of the slowest scale-out flow, Gb/s on the wire
        rate = math.inf
        if out.any():
            if hashed:
                # per-QP max-min fair (equal weights): the slowest queue pair gets the first level of
                # progressive filling, min over links of capacity / queue pairs crossing it; a flow is
                # as fast as its slowest queue pair times channels x qps
                rate = min_maxmin_rate(qp_path, cap, self.counts) * self.channels * self.qps
            else:
                ids, load, unreach = sparse_loads(f, d, self.model, failed_links=self.dead, efficiency=1.0,
                                                  kept=self.kept)
                if (unreach[out] > 0).any():
                    return math.inf, 0.0
                used = load > 0
                ids, load = ids[used], load[used]
                u = float((load / np.where(cap[ids] > 0, cap[ids], 1e-300)).max()) if used.any() else 0.0
                rate = 1.0 / u if u > 0 else math.inf   # every flow offered 1 Gb/s, scaled by the worst link
        if same.any():
            rate = self._scaleup_rate(src, dst, same, rate)
        return alpha, rate * self.eff * 1e9 / 8.0

    def _scaleup_rate(self, src, dst, same, rate: float) -> float:
        """``rate`` capped by the scale-up flows' (``same``) share of their domain's bandwidth, Gb/s:
        the domain's per-accelerator rate over the most flows an accelerator sends or receives there."""
        f = self.fabric
        s, r = src[same], dst[same]
        # the busiest count per endpoint, over the endpoints the flows touch (O(flows), not O(endpoints))
        ids, inv = np.unique(np.concatenate([s, r]), return_inverse=True)
        inv = inv.ravel()
        s_cnt = np.bincount(inv[:s.size], minlength=ids.size)
        r_cnt = np.bincount(inv[s.size:], minlength=ids.size)
        busy = np.maximum(s_cnt, r_cnt)
        dg = f.domain_gbps[f.ep_domain[ids]]
        return min(rate, float((dg / busy).min()))


# --- algorithms as phases ----------------------------------------------------------------------
def _pow2(p: int) -> bool:
    return p >= 1 and (p & (p - 1)) == 0


def _log2(p: int) -> int:
    return max(1, math.ceil(math.log2(p))) if p > 1 else 0


def _pairs_shift(G, shift):
    n = G.shape[1]
    return G.ravel(), G[:, (np.arange(n) + shift) % n].ravel()


def _pairs_xor(G, dist):
    n = G.shape[1]
    return G.ravel(), G[:, np.arange(n) ^ dist].ravel()


def _pairs_tree(G, up: bool):
    n = G.shape[1]
    child = np.arange(1, n)
    parent = (child - 1) // 2
    a, b = G[:, child].ravel(), G[:, parent].ravel()
    return (a, b) if up else (b, a)


def _pairs_direct(G):
    n = G.shape[1]
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    return G[:, i].ravel(), G[:, j].ravel()


def _hier_blocks(G, ep_domain):
    """[m, D, k] members by (group, domain, position) when every domain of every group holds k members."""
    m, n = G.shape
    dom = ep_domain[G]
    if (dom < 0).any():
        return None
    order = np.argsort(dom, axis=1, kind="stable")
    Gs = np.take_along_axis(G, order, axis=1)
    ds = np.take_along_axis(dom, order, axis=1)
    k = int((ds == ds[:, :1]).sum(axis=1).min())
    if k < 1 or n % k:
        return None
    D = n // k
    blocks = ds.reshape(m, D, k)
    if (blocks != blocks[:, :, :1]).any() or (D > 1 and (blocks[:, 1:, 0] == blocks[:, :-1, 0]).any()):
        return None
    return Gs.reshape(m, D, k)


def phases(op: str, algorithm: str, G: np.ndarray, ep_domain) -> Optional[list]:
    """The algorithm's phases over groups G [m, p]: (steps, bytes fraction of S, pattern key, pairs maker),
    or None where it does not apply (p not a power of two, unequal domains, too many steps)."""
    p = G.shape[1]
    L = _log2(p)
    ring = lambda: _pairs_shift(G, 1)
    if op == "allreduce":
        if algorithm == "ring":
            return [(2 * (p - 1), 2 * (p - 1) / p, ("shift", 1), ring)]
        if algorithm == "tree":
            return [(L, 1.0, ("tree", 1), lambda: _pairs_tree(G, True)),
                    (L, 1.0, ("tree", 0), lambda: _pairs_tree(G, False))]
        if algorithm == "recursive_doubling":
            if not _pow2(p):
                return None
            return [(1, 1.0, ("xor", 1 << j), (lambda d=1 << j: _pairs_xor(G, d))) for j in range(L)]
        if algorithm == "halving_doubling":
            if not _pow2(p):
                return None
            half = [(1, 1.0 / (2 << j), ("xor", p >> (j + 1)), (lambda d=p >> (j + 1): _pairs_xor(G, d)))
                    for j in range(L)]
            return half + half[::-1]
        if algorithm == "hierarchical":
            B = _hier_blocks(G, ep_domain)
            if B is None:
                return None
            m, D, k = B.shape
            intra = B.reshape(m * D, k)
            inter = B.transpose(0, 2, 1).reshape(m * k, D)
            out = []
            if k > 1:
                out.append((k - 1, (k - 1) / k, ("hier-intra",), lambda: _pairs_shift(intra, 1)))
            if D > 1:
                out.append((2 * (D - 1), 2 * (D - 1) / (D * k), ("hier-inter",), lambda: _pairs_shift(inter, 1)))
            if k > 1:
                out.append((k - 1, (k - 1) / k, ("hier-intra",), lambda: _pairs_shift(intra, 1)))
            return out
        if algorithm == "in_network":
            return [(2, 1.0, ("nic",), None)]
    if op in ("allgather", "reducescatter"):
        if algorithm == "ring":
            return [(p - 1, (p - 1) / p, ("shift", 1), ring)]
        if algorithm in ("recursive_doubling", "halving_doubling"):
            if not _pow2(p):
                return None
            dists = [1 << j for j in range(L)] if op == "allgather" else [p >> (j + 1) for j in range(L)]
            fr = [(1 << j) / p for j in range(L)] if op == "allgather" else [1.0 / (2 << j) for j in range(L)]
            return [(1, fr[j], ("xor", dists[j]), (lambda d=dists[j]: _pairs_xor(G, d))) for j in range(L)]
        if algorithm == "direct":
            return [(1, 1.0 / p, ("direct",), lambda: _pairs_direct(G))]
    if op == "alltoall":
        if algorithm == "direct":
            return [(1, 1.0 / p, ("direct",), lambda: _pairs_direct(G))]
        if algorithm == "pairwise":
            if p - 1 > MAX_PATTERNS:
                return None
            return [(1, 1.0 / p, ("shift", j), (lambda j=j: _pairs_shift(G, j))) for j in range(1, p)]
    if op == "sendrecv" and algorithm == "direct":
        return [(1, 1.0, ("chain",), lambda: (G[:, :-1].ravel(), G[:, 1:].ravel()))]
    if op == "broadcast":
        if algorithm == "chain":
            return [(p - 1, 1.0, ("chain",), lambda: (G[:, :-1].ravel(), G[:, 1:].ravel()))]
        if algorithm == "tree":
            return [(L, 1.0, ("tree", 0), lambda: _pairs_tree(G, False))]
    return None


def _why_not(op, algorithm, p) -> str:
    if algorithm in ("recursive_doubling", "halving_doubling"):
        return f"needs a power-of-two group ({p} ranks)"
    if algorithm == "hierarchical":
        return "needs every scale-up domain of the group to hold the same number of its ranks"
    if algorithm == "pairwise":
        return f"{p - 1} steps; evaluated up to {MAX_PATTERNS}"
    return "not applicable"


class _Schedule:
    """One (collective, algorithm) on a fabric: alpha and beta parts, as functions of the size."""

    def __init__(self, op, algorithm, G, pats: _Patterns, nic_rate_bps: float):
        self.op, self.algorithm, self.n = op, algorithm, G.shape[1]
        ph = phases(op, algorithm, G, pats.fabric.ep_domain)
        self.applies = ph is not None
        self.alpha_s = 0.0
        self.inv_rate = 0.0     # seconds per byte of S
        self.steps = 0
        if ph is None:
            return
        for steps, frac, key, make in ph:
            if key == ("nic",):
                # in-network reduction: up to the reducing switch and down, at the members' NIC goodput;
                # the latency of the longest member-to-member path stands for up + down
                a, _ = pats.get(("direct",), *_pairs_direct(G))
                a = a + pats.overhead_s   # two host-side steps (send up, receive down), one path
                r = nic_rate_bps
                self.alpha_s += a
                self.steps += steps
                self.inv_rate += frac / r if r > 0 else math.inf
                continue
            a, r = pats.get(key, *make())
            self.alpha_s += steps * a
            self.steps += steps
            self.inv_rate += frac / r if r > 0 else math.inf

    def time(self, S: float) -> tuple[float, float, float]:
        """(total, alpha, beta) seconds at size S bytes."""
        beta = S * self.inv_rate
        return self.alpha_s + beta, self.alpha_s, beta


def _group_arrays(cluster, fabric, placement):
    """Per placed job: (job, endpoint ids in rank order)."""
    from topo.traffic.demand import fit_in_order
    if placement is None:
        placement = fit_in_order(cluster, fabric)[0]
    out = []
    for j in cluster.file.jobs:
        if j.name in placement:
            out.append((j, np.asarray(placement[j.name], np.int64)))
    return out


def _settings(cluster, fabric, routing, seed, qps, channels, failed):
    from topo.model.spec import run_settings, wire_efficiency
    from topo.routing.engine import MODELS
    tr = cluster.file.transport
    model = routing or {"roce": "roce-hash", "uec": "uec-spray", "ideal": "fluid"}[tr.protocol]
    if model not in MODELS or model == "optimal":
        raise SpecError([("routing", f"collective times need a routing of flows: one of fluid, wcmp, roce-hash, "
                                     f"uec-spray (found {model!r})")])
    seed = run_settings(cluster, seed=seed).seed
    qps = tr.qps if qps is None else int(qps)
    channels = tr.n_channels if channels is None else int(channels)
    return model, seed, qps, channels, wire_efficiency(cluster) if routing is None else None


def collective_times(cluster, fabric=None, *, placement=None, routing: Optional[str] = None,
                     seed: Optional[int] = None, qps: Optional[int] = None, channels: Optional[int] = None,
                     sizes: Optional[Sequence[float]] = None, failed=None, efficiency: Optional[float] = None) -> dict:
    """Per placed job: each collective's chosen algorithm, time with its alpha and beta parts, bus
    bandwidth and every candidate's time; the job's communication and iteration time.

    ``sizes``: also return, per collective, the chosen algorithm's time and bus bandwidth at each
    size (the nccl-tests curve). ``routing`` defaults to the transport's model; ``efficiency`` to the
    cluster's wire efficiency. All groups of a collective run at once; a job's collectives one after
    another (``count`` times each per iteration).
    """
    from topo.model.fabric import build
    from topo.model.spec import COLLECTIVE_ALGORITHMS, wire_efficiency
    from topo.traffic.demand import rank_groups
    if fabric is None:
        fabric = build(cluster)
    model, seed, qps, channels, _ = _settings(cluster, fabric, routing, seed, qps, channels, failed)
    eff = wire_efficiency(cluster) if efficiency is None else float(efficiency)
    pats = _Patterns(cluster, fabric, model, seed, qps, channels, eff, failed)
    inj = fabric.injection_gbps() * eff * 1e9 / 8.0
    jobs = []
    for j, eps in _group_arrays(cluster, fabric, placement):
        pats.cache.clear()   # patterns are per job's endpoints
        colls = []
        comm = 0.0
        for ci, c in enumerate(j.collectives):
            G = eps[rank_groups(j, c.group)]
            n = G.shape[1]
            entry = {"index": ci, "op": c.op, "group": c.group, "ranks": int(n), "groups": int(G.shape[0]),
                     "bytes": float(c.bytes), "count": int(c.count), "pinned": c.pinned_algorithm}
            if n <= 1 or c.bytes <= 0:
                entry.update({"algorithm": None, "time_s": 0.0, "alpha_s": 0.0, "beta_s": 0.0,
                              "busbw_gbps": None, "candidates": []})
                colls.append(entry)
                continue
            nic = float(inj[G.ravel()].min())
            allowed = COLLECTIVE_ALGORITHMS[c.op]
            names = [c.pinned_algorithm] if c.pinned_algorithm else [a for a in allowed if a != "in_network"]
            cands, scheds = [], {}
            for a in names:
                s = _Schedule(c.op, a, G, pats, nic)
                if not s.applies:
                    cands.append({"algorithm": a, "time_s": None, "why_not": _why_not(c.op, a, n)})
                    continue
                t, al, be = s.time(float(c.bytes))
                scheds[a] = s
                cands.append({"algorithm": a, "time_s": t, "alpha_s": al, "beta_s": be, "steps": s.steps})
            ok = [x for x in cands if x["time_s"] is not None]
            if not ok:
                raise SpecError([(f"jobs[{cluster.file.jobs.index(j)}].collectives[{ci}].pinned_algorithm",
                                  f"{c.pinned_algorithm} does not apply to this group: {cands[0]['why_not']}")])
            # cheapest; ties by the op's algorithm order
            best = min(ok, key=lambda x: (x["time_s"], allowed.index(x["algorithm"])))
            t = best["time_s"]
            entry.update({"algorithm": best["algorithm"], "chosen_by": "pinned" if c.pinned_algorithm else "tuner",
                          "time_s": t, "alpha_s": best["alpha_s"], "beta_s": best["beta_s"], "steps": best["steps"],
                          "busbw_gbps": _busbw(c.op, n, float(c.bytes), t), "candidates": cands})
            if sizes:
                entry["sweep"] = _sweep(c.op, n, sizes, scheds, allowed)
            comm += c.count * t
            colls.append(entry)
        it = _iteration(j, comm)
        jobs.append({"name": j.name, "collectives": colls, **it})
    return {"routing": model, "seed": seed,
            "channels": channels if model == "roce-hash" else None,
            "qps_per_channel": qps if model == "roce-hash" else None,
            "wire_efficiency": eff, "step_overhead_s": pats.overhead_s,
            "switch_latency_unknown": pats.unknown_latency,
            "sharing": "per-QP max-min fair (equal weights)" if model == "roce-hash" else
                       "proportional: each flow slowed by the highest link utilisation of its pattern",
            "jobs": jobs}


def _busbw(op, n, S, t) -> Optional[float]:
    if not (t > 0) or not math.isfinite(t):
        return None
    return S / t * NCCL_BUS_FACTOR[op](n) * 8 / 1e9


def _sweep(op, n, sizes, scheds, allowed) -> list[dict]:
    """The chosen algorithm, its time and bandwidths at each size: per size the cheapest of
    ``scheds``, ties by the op's algorithm order. All sizes at once (the same float operations, in
    the same order, as :meth:`_Schedule.time` and :func:`_busbw` per size)."""
    names = sorted(scheds, key=allowed.index)   # the first of equal times is the earliest in the op's order
    S = np.asarray(sizes, np.float64)
    alpha = np.asarray([scheds[a].alpha_s for a in names], np.float64)[:, None]
    beta = S[None, :] * np.asarray([scheds[a].inv_rate for a in names], np.float64)[:, None]
    total = alpha + beta
    pick = np.argmin(total, axis=0)
    cols = np.arange(S.size)
    t, al, be = total[pick, cols], alpha[pick, 0], beta[pick, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        algbw = S / t * 8 / 1e9
        busbw = S / t * NCCL_BUS_FACTOR[op](n) * 8 / 1e9
    ok_alg, ok_bus = t > 0, (t > 0) & np.isfinite(t)
    return [{"bytes": s_, "algorithm": names[k], "time_s": t_, "alpha_s": a_, "beta_s": b_,
             "algbw_gbps": g if oa else None, "busbw_gbps": u if ob else None}
            for s_, k, t_, a_, b_, g, u, oa, ob in zip(S.tolist(), pick.tolist(), t.tolist(), al.tolist(), be.tolist(),
                                                       algbw.tolist(), busbw.tolist(), ok_alg.tolist(), ok_bus.tolist())]


def _iteration(job, comm_s: float) -> dict:
    """Iteration time = compute + communication - the hidden part (overlap x communication, at most compute)."""
    if job.compute_s is None:
        return {"comm_s": comm_s, "compute_s": None, "overlap": None, "iteration_s": None, "network_share": None}
    hidden = min(job.overlap * comm_s, job.compute_s)
    it = job.compute_s + comm_s - hidden
    return {"comm_s": comm_s, "compute_s": job.compute_s, "overlap": job.overlap, "iteration_s": it,
            "network_share": (it - job.compute_s) / it if it > 0 else 0.0}


def size_sweep(cluster, sizes: Sequence[float], fabric=None, *, placement=None, seed=None, qps=None,
               channels=None, transports: Sequence[str] = ("roce-hash", "uec-spray")) -> dict:
    """Per transport (routing model at that protocol's wire efficiency): :func:`collective_times` with
    the size sweep, so each collective's time and bus bandwidth can be read against message size."""
    from topo.model.fabric import build
    from topo.routing.engine import protocol_efficiency
    if fabric is None:
        fabric = build(cluster)
    proto = {"roce-hash": "roce", "uec-spray": "uec"}
    out = {}
    for m in transports:
        eff = protocol_efficiency(cluster, proto[m]) if m in proto else None
        out[m] = collective_times(cluster, fabric, placement=placement, routing=m, seed=seed, qps=qps,
                                  channels=channels, sizes=sizes, efficiency=eff)
    return out
