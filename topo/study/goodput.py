"""Goodput under failures: what component failures cost each placed job over a run.

Owns, per placed job: the components its run depends on and how their failures
act on it (stopping or degrading), its interruption rate and mean time between
interruptions (MTBI), the expected interruptions over a run, the Young/Daly
checkpoint interval and the resulting goodput; the blast radius of each failure
domain (rack, leaf, pod, plane); goodput against job size; and a seeded Monte
Carlo twin of the goodput model. It reads failure rates from the cluster file's
``failure_rates`` (per component per hour) and slowdowns from
:mod:`topo.study.failures`; it does not place, route or print.

What a job depends on
---------------------
Stopping (a rank is lost, the job restarts from its last checkpoint):
its accelerators (``accelerator_per_hour`` + ``hbm_per_hour`` +
``software_per_accelerator_hour`` each), its hosts, its endpoints' NICs, an
endpoint's only scale-out link (the rate of the link's reach class,
``dac_per_hour`` .. ``smf_fr_per_hour``, else ``cable_per_hour`` for copper or
``optic_per_hour`` for optics), a leaf that holds every port of one of its endpoints, the
power feed of each rack it has a host in, and the cooling loop of each such
rack that is liquid-cooled.

Degrading (the job continues, slower): one of several links of an endpoint, a
leaf some of its endpoints reach through other leaves too, and the links and
switches its traffic can take above its leaves: going up tier by tier, per
plane, from the job's leaves until one switch of the tier above reaches all of
them (the up-down routes of a Clos; without routing, so an over-estimate of the
links a job actually loads on fabrics that are not Clos).

Interruptions of independent components add: a job's stopping rate is the sum
over its components of count x rate. Failures are taken as exponential
(memoryless), which is what the published interruption counts support.

Goodput
-------
With stopping rate ``lam`` (MTBI ``M = 1/lam``), checkpoint write time ``C``
and restart time ``R`` (failure detection, rescheduling, reload), the
checkpoint interval is Young's ``tau = sqrt(2 M C)`` (Daly's refinement
``sqrt(2 M C) - C`` is reported beside it). Goodput is the exact expectation for
exponential failures that may also strike during checkpoints and restarts
(Daly 2006): a segment of ``tau`` useful seconds takes on average
``M e^(R/M) (e^((tau + C)/M) - 1)`` wall seconds, so
``goodput = tau / (M e^(R/M) (e^((tau + C)/M) - 1))``; to first order
``1 - C/tau - (tau/2 + R)/M``. :func:`monte_carlo` draws the same process and
must agree within its confidence interval (tests/test_goodput.py).

``C`` and ``R`` are stated, or ``C`` is derived as checkpoint size / storage
bandwidth (and ``R`` as the same read back plus a stated restart overhead).

Degraded failures do not enter the checkpoint model. They are reported as a
rate, the expected count over the run and, when the failure analysis routed the
jobs, the largest slowdown a single link or switch failure causes the job; with
a repair time the expected throughput lost to them is
``min(1, lam_d x repair) x (1 - 1/slowdown)`` (an upper bound: every degraded
failure taken at the worst slowdown).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from topo.core.errors import SpecError
from topo.model.fabric import REACH_NAMES, Fabric
from topo.solve.spares import SPARE_SCOPES, check_spares  # noqa: F401  (re-exported)

HOURS_PER_DAY = 24.0
CABLE_REACH = ("dac", "aec")  # copper: their rates default to cable_per_hour; every other reach class's to optic_per_hour
DOMAIN_KINDS = ("rack", "leaf", "pod", "plane")
# per-component classes, in the order they are reported
CLASSES = ("accelerator", "hbm", "software", "host", "nic") + tuple(REACH_NAMES) + (
    "leaf", "spine", "super_spine", "power_feed", "cooling_loop")
_RATE_FIELD = {"accelerator": "accelerator_per_hour", "hbm": "hbm_per_hour",
               "software": "software_per_accelerator_hour", "host": "host_per_hour", "nic": "nic_per_hour",
               **{r: f"{r}_per_hour" for r in REACH_NAMES}, "leaf": "leaf_per_hour",
               "spine": "spine_per_hour", "super_spine": "super_spine_per_hour",
               "power_feed": "power_feed_per_hour", "cooling_loop": "cooling_loop_per_hour"}
_SWITCH_CLASS = {1: "leaf", 2: "spine", 3: "super_spine"}


# --- closed forms ------------------------------------------------------------------------
def young_interval(mtbi_s: float, checkpoint_s: float) -> float:
    """Young's checkpoint interval sqrt(2 M C) in seconds (infinite when nothing fails)."""
    if not math.isfinite(mtbi_s):
        return math.inf
    return math.sqrt(2.0 * mtbi_s * checkpoint_s)


def daly_interval(mtbi_s: float, checkpoint_s: float) -> float:
    """Daly's first-order refinement sqrt(2 M C) - C (M when C >= 2M)."""
    if not math.isfinite(mtbi_s):
        return math.inf
    if checkpoint_s >= 2.0 * mtbi_s:
        return mtbi_s
    return math.sqrt(2.0 * mtbi_s * checkpoint_s) - checkpoint_s


def goodput_exact(mtbi_s: float, checkpoint_s: float, restart_s: float, interval_s: float) -> float:
    """Useful time / wall time for exponential failures (mean ``mtbi_s``) striking work,
    checkpoints and restarts alike: tau / (M e^(R/M) (e^((tau+C)/M) - 1))."""
    if not math.isfinite(mtbi_s):
        return 1.0 if checkpoint_s == 0 or not math.isfinite(interval_s) else interval_s / (interval_s + checkpoint_s)
    m, tau = mtbi_s, interval_s
    if tau <= 0:
        return 0.0
    x = (tau + checkpoint_s) / m
    if x > 700 or restart_s / m > 700:
        return 0.0
    return tau / (m * math.exp(restart_s / m) * math.expm1(x))


def goodput_first_order(mtbi_s: float, checkpoint_s: float, restart_s: float, interval_s: float) -> float:
    """1 - C/tau - (tau/2 + R)/M, the usual first-order approximation (valid when C, R, tau << M)."""
    return 1.0 - checkpoint_s / interval_s - (interval_s / 2.0 + restart_s) / mtbi_s


def monte_carlo(mtbi_s: float, checkpoint_s: float, restart_s: float, interval_s: float, wall_s: float,
                trials: int = 200, seed: int = 0) -> dict:
    """Seeded simulation of the goodput model: exponential failures striking a job that computes
    ``interval_s``, writes a checkpoint (``checkpoint_s``), repeats, and after a failure restarts
    (``restart_s``, itself interruptible) from the last checkpoint written.

    Each trial runs for ``wall_s`` seconds and on to the next completed checkpoint; its goodput is
    useful time / elapsed time, its interruptions the failures within ``wall_s``. Returns the means
    with 95% confidence intervals (normal approximation over the trials). A twin of
    :func:`goodput_exact` (the long-run ratio this estimates)."""
    if trials < 2:
        raise SpecError([("trials", f"must be at least 2 (found {trials})")])
    if not (interval_s > 0 and math.isfinite(interval_s)) or not (wall_s > 0 and math.isfinite(wall_s)):
        raise SpecError([("interval_s" if not (interval_s > 0 and math.isfinite(interval_s)) else "wall_s",
                          "must be a finite number of seconds > 0")])
    rng = np.random.default_rng(seed)
    good = np.empty(trials)
    fails = np.empty(trials)
    seg = interval_s + checkpoint_s
    for t in range(trials):
        now, useful, n_fail = 0.0, 0.0, 0
        next_fail = rng.exponential(mtbi_s) if math.isfinite(mtbi_s) else math.inf
        restarting = False
        # runs whole cycles: stops at the first checkpoint completed at or after wall_s, so the
        # ratio useful/elapsed estimates the long-run goodput without a cut-off segment at the end
        while True:
            end = now + (restart_s if restarting else seg)
            if end <= next_fail:
                now = end
                if not restarting:
                    useful += interval_s
                    if now >= wall_s:
                        break
                restarting = False
                continue
            now = next_fail
            n_fail += now <= wall_s
            restarting = True
            next_fail = now + rng.exponential(mtbi_s)
        good[t] = useful / now if now > 0 else 1.0
        fails[t] = n_fail

    def ci(x):
        m = float(x.mean())
        h = 1.96 * float(x.std(ddof=1)) / math.sqrt(x.size)
        return m, [m - h, m + h]

    g, gci = ci(good)
    f, fci = ci(fails)
    return {"trials": trials, "seed": seed, "goodput": g, "goodput_ci95": gci, "interruptions": f,
            "interruptions_ci95": fci}


# --- inputs -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    """How long a checkpoint takes to write and a restart to complete, in seconds, and where each came from."""
    write_s: float
    restart_s: float
    source: str


def checkpoint_times(*, checkpoint_s=None, restart_s=None, checkpoint_gb=None, storage_gbps=None,
                     restart_overhead_s=None) -> Checkpoint:
    """Stated times, or derived: write = size x 8 / bandwidth; restart = the same read back + overhead.

    Parameter names are the library's; errors name them."""
    def pos(name, v, allow_zero=True):
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
            raise SpecError([(name, f"must be a finite number {'>= 0' if allow_zero else '> 0'} (found {v!r})")])
        return float(v)
    checkpoint_s, restart_s = pos("checkpoint_s", checkpoint_s), pos("restart_s", restart_s)
    checkpoint_gb, storage_gbps = pos("checkpoint_gb", checkpoint_gb), pos("storage_gbps", storage_gbps, False)
    restart_overhead_s = pos("restart_overhead_s", restart_overhead_s)
    derived = checkpoint_gb is not None or storage_gbps is not None
    if derived and (checkpoint_gb is None or storage_gbps is None):
        missing = "storage_gbps" if storage_gbps is None else "checkpoint_gb"
        raise SpecError([(missing, "checkpoint_gb and storage_gbps derive the checkpoint time together; give both")])
    if derived and checkpoint_s is not None:
        raise SpecError([("checkpoint_s", "give checkpoint_s or checkpoint_gb with storage_gbps, not both")])
    if not derived and restart_overhead_s is not None:
        raise SpecError([("restart_overhead_s", "only used with checkpoint_gb and storage_gbps (else state restart_s)")])
    if derived:
        io_s = checkpoint_gb * 8.0 / storage_gbps
        if restart_s is not None:
            raise SpecError([("restart_s", "derived from checkpoint_gb / storage_gbps plus restart_overhead_s; "
                                           "state restart_s with checkpoint_s instead")])
        return Checkpoint(io_s, io_s + (restart_overhead_s or 0.0),
                          f"derived: {checkpoint_gb:g} GB at {storage_gbps:g} Gb/s"
                          + (f", restart adds {restart_overhead_s:g} s" if restart_overhead_s else ""))
    if checkpoint_s is None or restart_s is None:
        raise SpecError([("checkpoint_s" if checkpoint_s is None else "restart_s",
                          "state checkpoint_s and restart_s, or checkpoint_gb and storage_gbps")])
    return Checkpoint(checkpoint_s, restart_s, "stated")


def rates_of(cluster) -> dict:
    """Per-class failure rates (expected failures per component per hour) from the cluster file, checked.
    A reach class without its own rate takes its family's: cable_per_hour for dac and aec,
    optic_per_hour for the optical classes (:func:`rate_sources` says which)."""
    fr = cluster.file.failure_rates
    out = {}
    for c in CLASSES:
        field, v = _RATE_FIELD[c], getattr(fr, _RATE_FIELD[c])
        if v is None:  # a reach class without its own rate
            field = "cable_per_hour" if c in CABLE_REACH else "optic_per_hour"
            v = getattr(fr, field)
        v = float(v)
        if not math.isfinite(v) or v < 0:
            raise SpecError([(f"failure_rates.{field}", f"must be a finite rate >= 0 (found {v})")])
        out[c] = v
    return out


def rate_sources(cluster) -> dict:
    """Per class, the failure_rates field its rate was read from: its own, or for a reach class
    without one, its family's (derived)."""
    fr = cluster.file.failure_rates
    out = {}
    for c in CLASSES:
        if getattr(fr, _RATE_FIELD[c]) is None:
            out[c] = ("cable_per_hour" if c in CABLE_REACH else "optic_per_hour") + " (derived: no class rate)"
        else:
            out[c] = _RATE_FIELD[c]
    return out


# --- the fabric's view of components --------------------------------------------------------
class _View:
    """Per-endpoint ports and per-node uplinks, computed once per fabric (numpy, O(links))."""

    def __init__(self, cluster, fabric: Fabric):
        f = fabric
        self.f = f
        lo, hi = f.link_src[0::2].astype(np.int64), f.link_dst[0::2].astype(np.int64)
        self.lo, self.hi = lo, hi
        self.tier = f.link_tier[0::2].astype(np.int64)
        reach = f.link_reach[0::2].astype(np.int64)
        self.reach = reach  # index into REACH_NAMES per link
        # endpoint links: (endpoint, leaf) per link
        ep = np.flatnonzero(self.tier == 0)
        e_end = np.where(lo[ep] < f.n_endpoints, lo[ep], hi[ep])
        e_leaf = np.where(lo[ep] < f.n_endpoints, hi[ep], lo[ep])
        order = np.lexsort((ep, e_end))
        self.ep_link, self.ep_end, self.ep_leaf = ep[order], e_end[order], e_leaf[order]
        n = f.n_endpoints
        self.ports = np.bincount(self.ep_end, minlength=n)
        self.ep_ptr = np.concatenate([[0], np.cumsum(self.ports)])
        big = np.iinfo(np.int64).max
        mn = np.full(n, big, np.int64)
        mx = np.full(n, -1, np.int64)
        np.minimum.at(mn, self.ep_end, self.ep_leaf)
        np.maximum.at(mx, self.ep_end, self.ep_leaf)
        self.sole_leaf = np.where((self.ports > 0) & (mn == mx), mx, -1)

        def sole(attr):
            a = attr[self.ep_leaf]
            amn = np.full(n, big, np.int64)
            amx = np.full(n, -big, np.int64)
            np.minimum.at(amn, self.ep_end, a)
            np.maximum.at(amx, self.ep_end, a)
            return np.where((self.ports > 0) & (amn == amx), amx, -1)
        self.sole_pod = sole(f.node_pod.astype(np.int64)) if f.pods > 1 else np.full(n, -1, np.int64)
        self.sole_plane = sole(f.node_plane.astype(np.int64)) if f.planes > 1 else np.full(n, -1, np.int64)
        # uplinks per node (links of tier >= 1, grouped by their lower node)
        up = np.flatnonzero(self.tier >= 1)
        low = np.where(f.node_tier[lo[up]] <= f.node_tier[hi[up]], lo[up], hi[up])
        high = np.where(f.node_tier[lo[up]] <= f.node_tier[hi[up]], hi[up], lo[up])
        o = np.lexsort((up, low))
        self.up_link, self.up_high = up[o], high[o]
        cnt = np.bincount(low[o], minlength=f.n_nodes)
        self.up_ptr = np.concatenate([[0], np.cumsum(cnt)])
        # racks: cooling per rack, endpoints' rack
        names = [r.name for r in cluster.racks] if cluster is not None else []
        cool = {r.name: r.cooling for r in cluster.racks} if cluster is not None else {}
        liquid_type = np.array([cool.get(nm, "air") == "liquid" for nm in (f.rack_type_names or names)], bool)
        self.rack_liquid = liquid_type[f.rack_type] if liquid_type.size else np.zeros(f.n_racks, bool)
        self.ep_rack = f.ep_rack()

    def gather(self, ptr, vals, nodes):
        if nodes.size == 0:
            return np.zeros(0, np.int64)
        s, e = ptr[nodes], ptr[nodes + 1]
        ln = e - s
        if ln.sum() == 0:
            return np.zeros(0, np.int64)
        idx = np.repeat(s - np.concatenate([[0], np.cumsum(ln)[:-1]]), ln) + np.arange(int(ln.sum()))
        return vals[idx]

    def above(self, leaves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Links above the job's leaves and switches above them that its traffic can use (see module doc)."""
        f = self.f
        links, nodes = [], []
        for p in np.unique(f.node_plane[leaves]).tolist():
            cur = np.unique(leaves[f.node_plane[leaves] == p])
            # one step per tier at most (a custom graph's same-tier links cannot make it loop)
            for _ in range(int(f.node_tier.max()) if f.n_nodes else 0):
                if cur.size <= 1:
                    break
                lk = self.gather(self.up_ptr, self.up_link, cur)
                hi = self.gather(self.up_ptr, self.up_high, cur)
                if lk.size == 0:
                    break
                links.append(lk)
                # does one switch above reach every current node?  count distinct (node, high) pairs per high
                low = np.repeat(cur, self.up_ptr[cur + 1] - self.up_ptr[cur])
                pair = np.unique(np.stack([hi, low], 1), axis=0)
                reach = np.bincount(pair[:, 0] - pair[:, 0].min())
                nxt = np.unique(hi)
                nodes.append(nxt)
                if reach.max() >= cur.size:
                    break
                cur = nxt
        lk = np.unique(np.concatenate(links)) if links else np.zeros(0, np.int64)
        nd = np.unique(np.concatenate(nodes)) if nodes else np.zeros(0, np.int64)
        return lk, nd


def _components(view: _View, eps: np.ndarray) -> dict:
    """Counts per component class, split into stopping and degrading."""
    f = view.f
    stop = dict.fromkeys(CLASSES, 0)
    deg = dict.fromkeys(CLASSES, 0)
    n_acc = int(np.count_nonzero(f.ep_is_accel[eps]))
    for c in ("accelerator", "hbm", "software"):
        stop[c] = n_acc
    hosts = np.unique(f.ep_server[eps])
    stop["host"] = int(hosts.size)
    stop["nic"] = int(np.count_nonzero(view.ports[eps] > 0))
    racks = np.unique(f.server_rack[hosts])
    stop["power_feed"] = int(racks.size)
    stop["cooling_loop"] = int(np.count_nonzero(view.rack_liquid[racks]))
    # endpoint links: stopping when the endpoint's only port
    lk = view.gather(view.ep_ptr, view.ep_link, eps)
    only = np.repeat(view.ports[eps] == 1, view.ports[eps])
    n_r = len(REACH_NAMES)
    rs = np.bincount(view.reach[lk[only]], minlength=n_r)
    rd = np.bincount(view.reach[lk[~only]], minlength=n_r)
    for i, r in enumerate(REACH_NAMES):
        stop[r], deg[r] = int(rs[i]), int(rd[i])
    leaves = np.unique(view.gather(view.ep_ptr, view.ep_leaf, eps))
    sole = np.unique(view.sole_leaf[eps])
    sole = sole[sole >= 0]
    stop["leaf"] = int(sole.size)
    deg["leaf"] = int(leaves.size - sole.size)
    up_links, up_nodes = view.above(leaves)
    if up_links.size:
        ru = np.bincount(view.reach[up_links], minlength=len(REACH_NAMES))
        for i, r in enumerate(REACH_NAMES):
            deg[r] += int(ru[i])
    if up_nodes.size:
        t = f.node_tier[up_nodes].astype(np.int64)
        for tier, c in _SWITCH_CLASS.items():
            deg[c] += int(np.count_nonzero(t == tier))
    return {"stopping": stop, "degrading": deg, "accelerators": n_acc, "hosts": int(hosts.size),
            "racks": int(racks.size), "leaves": int(leaves.size)}


def _rate(counts: dict, rates: dict) -> float:
    # sorted by class name: the float sum does not depend on dict order
    return float(sum(counts[c] * rates[c] for c in sorted(counts)))


# --- blast radius -----------------------------------------------------------------------------
def blast_radius(view: _View, ep_job: np.ndarray, job_size: np.ndarray, job_names: list, top: int = 5) -> dict:
    """Per failure-domain kind: for every domain, the jobs it stops (a rank lost) and their
    accelerators, and the jobs it degrades; summarised with the worst domains (most jobs stopped,
    then accelerators, then lowest id)."""
    f = view.f
    out = {}
    placed = ep_job >= 0
    ep_ids = np.arange(f.n_endpoints, dtype=np.int64)
    for kind in DOMAIN_KINDS:
        if kind == "rack":
            stop_dom, n_dom = view.ep_rack.astype(np.int64), f.n_racks
            touch = (ep_ids, stop_dom)
        elif kind == "leaf":
            stop_dom, n_dom = view.sole_leaf, f.n_nodes
            touch = (view.ep_end, view.ep_leaf)
        elif kind == "pod":
            if f.pods <= 1:
                continue
            stop_dom, n_dom = view.sole_pod, f.pods
            touch = (view.ep_end, f.node_pod[view.ep_leaf].astype(np.int64))
        else:
            if f.planes <= 1:
                continue
            stop_dom, n_dom = view.sole_plane, f.planes
            touch = (view.ep_end, f.node_plane[view.ep_leaf].astype(np.int64))
        ok = placed & (stop_dom >= 0)
        pairs = np.unique(np.stack([stop_dom[ok], ep_job[ok]], 1), axis=0) if ok.any() else np.zeros((0, 2), np.int64)
        jobs_stopped = np.bincount(pairs[:, 0], minlength=n_dom) if pairs.size else np.zeros(n_dom, np.int64)
        acc_stopped = (np.bincount(pairs[:, 0], weights=job_size[pairs[:, 1]], minlength=n_dom)
                       if pairs.size else np.zeros(n_dom))
        te, td = touch
        tj = ep_job[te]
        tok = (tj >= 0) & (td >= 0)
        tp = np.unique(np.stack([td[tok], tj[tok]], 1), axis=0) if tok.any() else np.zeros((0, 2), np.int64)
        jobs_touched = np.bincount(tp[:, 0], minlength=n_dom) if tp.size else np.zeros(n_dom, np.int64)
        if kind == "leaf":
            ids = np.flatnonzero(f.node_tier == 1)
        else:
            ids = np.arange(n_dom, dtype=np.int64)
        if ids.size == 0:
            continue
        js, ac, jt = jobs_stopped[ids], acc_stopped[ids], jobs_touched[ids]
        order = np.lexsort((ids, -ac, -js))[:top]
        name = (f.rack_name if kind == "rack" else f.node_name if kind == "leaf"
                else (lambda i: f"pod{i}") if kind == "pod" else (lambda i: f"plane{i}"))
        worst = []
        for i in order.tolist():
            d = int(ids[i])
            stopped = pairs[pairs[:, 0] == d, 1] if pairs.size else np.zeros(0, np.int64)
            worst.append({"name": name(d), "jobs_stopped": int(js[i]), "accelerators_stopped": int(ac[i]),
                          "jobs_degraded": int(jt[i] - js[i]),
                          "jobs": [job_names[j] for j in sorted(stopped.tolist())][:20]})
        out[kind] = {"domains": int(ids.size), "max_jobs_stopped": int(js.max()),
                     "mean_jobs_stopped": float(js.mean()), "max_accelerators_stopped": int(ac.max()),
                     "mean_accelerators_stopped": float(ac.mean()),
                     "domains_stopping_a_job": int(np.count_nonzero(js)), "worst": worst}
    return out


# --- degraded slowdowns from the failure analysis -------------------------------------------------
def _worst_slowdowns(failures) -> dict:
    """Per job: the largest finite slowdown any single link or switch failure causes it (any model)."""
    if failures is None:
        return {}
    rows = failures.get("single") if isinstance(failures, dict) else list(failures.single)
    out: dict = {}
    for r in rows or []:
        if r.get("kind") not in ("link", "switch", "plane"):
            continue
        for per in (r.get("slowdown") or {}).values():
            for job, v in per.items():
                if v is not None and v > 1.0 + 1e-12:
                    out[job] = max(out.get(job, 1.0), float(v))
    return out


# --- result --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GoodputResult:
    """Per-job goodput, blast radius per failure domain and goodput against job size. ``to_dict()`` is JSON-able."""
    cluster: str
    placement_note: str
    run_days: float
    checkpoint: dict
    rates_per_hour: dict
    jobs: tuple = ()
    totals: dict = field(default_factory=dict)
    blast_radius: dict = field(default_factory=dict)
    scaling: tuple = ()
    monte_carlo: Optional[dict] = None
    spares: Optional[dict] = None
    seconds: float = 0.0
    rate_sources: dict = field(default_factory=dict)  # per class: the failure_rates field its rate came from
    failure_domains: Optional[dict] = None  # placement spread/pack over failure domains against none

    def to_dict(self) -> dict:
        from topo.core.jsonable import to_jsonable

        def fin(o):
            if isinstance(o, float):
                return o if math.isfinite(o) else None
            if isinstance(o, dict):
                return {k: fin(v) for k, v in o.items()}
            if isinstance(o, (list, tuple)):
                return [fin(v) for v in o]
            return o
        return fin(to_jsonable({
            "version": 1, "cluster": self.cluster, "placement": self.placement_note, "run_days": self.run_days,
            "checkpoint": self.checkpoint, "rates_per_hour": self.rates_per_hour,
            "rate_sources": self.rate_sources, "jobs": list(self.jobs),
            "totals": self.totals, "blast_radius": self.blast_radius, "scaling": list(self.scaling),
            "monte_carlo": self.monte_carlo, "spares": self.spares, "failure_domains": self.failure_domains,
            "seconds": round(self.seconds, 3)}))


def _goodput_at(mtbi_s: float, ck: Checkpoint) -> tuple[float, float]:
    """(Young interval, goodput) for a stopping MTBI in seconds."""
    tau = young_interval(mtbi_s, ck.write_s)
    if not math.isfinite(mtbi_s):
        return tau, 1.0
    if ck.write_s == 0:  # checkpoints cost nothing: checkpoint continuously, only restarts lose time
        return 0.0, math.exp(-ck.restart_s / mtbi_s)
    return tau, goodput_exact(mtbi_s, ck.write_s, ck.restart_s, tau)


def _job_row(name: str, comp: dict, rates: dict, ck: Optional[Checkpoint], run_h: float, slow: Optional[float],
             repair_hours: Optional[float]) -> dict:
    lam = _rate(comp["stopping"], rates)            # per hour
    lam_d = _rate(comp["degrading"], rates)
    mtbi_s = 3600.0 / lam if lam > 0 else math.inf
    tau, g = _goodput_at(mtbi_s, ck) if ck is not None else (None, None)
    contrib = {c: comp["stopping"][c] * rates[c] for c in CLASSES if comp["stopping"][c] * rates[c] > 0}
    dom = sorted(contrib.items(), key=lambda kv: (-kv[1], kv[0]))
    row = {"name": name, "accelerators": comp["accelerators"], "hosts": comp["hosts"], "racks": comp["racks"],
           "leaves": comp["leaves"],
           "stopping_per_hour": lam, "mtbi_h": (1.0 / lam) if lam > 0 else None,
           "interruptions": lam * run_h,
           "checkpoint_interval_s": tau if tau is not None and math.isfinite(tau) else None,
           "checkpoint_interval_daly_s": (daly_interval(mtbi_s, ck.write_s)
                                          if ck is not None and math.isfinite(mtbi_s) else None),
           "goodput": g,
           "dominant": [{"component": c, "share": v / lam} for c, v in dom[:4]],
           "degrading_per_hour": lam_d, "degraded_events": lam_d * run_h,
           "components_stopping": {c: v for c, v in comp["stopping"].items() if v},
           "components_degrading": {c: v for c, v in comp["degrading"].items() if v},
           "worst_degraded_slowdown": slow}
    if repair_hours is not None and slow is not None and g is not None:
        frac = min(1.0, lam_d * repair_hours)
        row["goodput_with_degraded"] = g * (1.0 - frac * (1.0 - 1.0 / slow))
    return row


def goodput(cluster, fabric: Optional[Fabric] = None, placement=None, *, run_days: float = 30.0,
            checkpoint_s=None, restart_s=None, checkpoint_gb=None, storage_gbps=None, restart_overhead_s=None,
            failures=None, repair_hours: Optional[float] = None, monte_carlo_trials: int = 0,
            seed: Optional[int] = None, scaling_points: int = 8, spares_scope: Optional[str] = None,
            spares_per_domain: int = 1, time_limit=None, workers=None, failure_domains=None) -> GoodputResult:
    """Goodput under failures of every placed job (see the module docstring).

    Parameters
    ----------
    cluster : Cluster (from :func:`topo.model.spec.load`); its ``failure_rates`` give the rates
    fabric : the built fabric (built from the cluster when None)
    placement : {job: endpoint ids} (e.g. a plan's ``placement.assignment``); None -> the in-order
        placement of the jobs that fit (:func:`topo.study.failures.resolve_placement`)
    run_days : wall-clock length of the run the interruptions are counted over
    checkpoint_s, restart_s : stated checkpoint write and restart times, seconds; or
    checkpoint_gb, storage_gbps (, restart_overhead_s) : derive them (write = size / bandwidth,
        restart = the read back + overhead)
    failures : a :class:`~topo.study.failures.FailureResult` (or its dict) with routed traffic, for
        the slowdowns of degraded failures
    repair_hours : how long a degraded failure lasts, to fold degraded failures into goodput
    monte_carlo_trials : when > 0, simulate the largest job's run that many times (seeded) beside
        the analytic figure
    seed : Monte Carlo seed (defaults to the cluster's goals.seed)
    scaling_points : job sizes in the goodput-against-size curve
    spares_scope, spares_per_domain : choose hot spares (:func:`choose_spares`) per rack, leaf or pod
        (default: the file's ``goals.spares``, else none);
        ``time_limit`` and ``workers`` are CP-SAT's (default: the cluster's goals)
    failure_domains : a spread/pack rule ({level, mode, max_share | max_domains}, see
        :func:`topo.solve.placement.place`): the jobs are placed with it (CP-SAT) and, for
        comparison, without it; ``failure_domains`` in the result holds both placements' traffic
        and both goodputs and blast radii at the rule's level. Refused with ``placement``.
    """
    import time
    t0 = time.perf_counter()
    _check_goodput_args(run_days, repair_hours, monte_carlo_trials)
    ck = _checkpoint(cluster, checkpoint_s=checkpoint_s, restart_s=restart_s, checkpoint_gb=checkpoint_gb,
                     storage_gbps=storage_gbps, restart_overhead_s=restart_overhead_s)
    if fabric is None:
        from topo.model.fabric import build
        fabric = build(cluster)
    if seed is None:
        seed = cluster.file.goals.seed
    rates = rates_of(cluster)
    pl, note, fd_pair = _placed(cluster, fabric, placement, failure_domains, time_limit=time_limit, seed=seed,
                                workers=workers)
    names = list(pl)
    ep_job = _ep_jobs(fabric, pl, names)
    view = _View(cluster, fabric)
    slows = _worst_slowdowns(failures)
    run_h = float(run_days) * HOURS_PER_DAY
    rows = []
    comps = []
    for nm in names:
        comp = _components(view, np.unique(np.asarray(pl[nm], np.int64)))
        comps.append(comp)
        rows.append(_job_row(nm, comp, rates, ck, run_h, slows.get(nm), repair_hours))
    size = np.array([c["accelerators"] for c in comps], np.float64)
    br = blast_radius(view, ep_job, size, names)
    totals = _totals(rows, size, ck)
    scaling = _scaling(rows, comps, rates, ck, fabric, scaling_points)
    mc = _monte_carlo_of_largest(rows, ck, run_h, monte_carlo_trials, seed)
    sp = None
    if spares_scope is None and cluster.file.goals.spares is not None:  # the cluster file's goals.spares
        spares_scope, spares_per_domain = cluster.file.goals.spares.per, cluster.file.goals.spares.per_domain
    if spares_scope is not None:
        sp = choose_spares(cluster, fabric, pl, scope=spares_scope, per_domain=spares_per_domain,
                           time_limit=time_limit, seed=seed, workers=workers)
    fd_out = None
    if fd_pair is not None:
        kw = dict(run_days=run_days, checkpoint_s=checkpoint_s, restart_s=restart_s, checkpoint_gb=checkpoint_gb,
                  storage_gbps=storage_gbps, restart_overhead_s=restart_overhead_s, repair_hours=repair_hours,
                  seed=seed, scaling_points=0)
        other = goodput(cluster, fabric, fd_pair.compared.assignment, **kw)
        fd_out = _fd_goodput(fd_pair, totals, br, other)
    return GoodputResult(cluster=cluster.name, placement_note=note, failure_domains=fd_out, run_days=float(run_days), spares=sp,
                         checkpoint=({"write_s": ck.write_s, "restart_s": ck.restart_s, "source": ck.source}
                                     if ck is not None else {"write_s": None, "restart_s": None,
                                                             "source": "not stated: goodput not computed"}),
                         rates_per_hour=rates, rate_sources=rate_sources(cluster), jobs=tuple(rows), totals=totals, blast_radius=br,
                         scaling=tuple(scaling), monte_carlo=mc, seconds=time.perf_counter() - t0)


def _check_goodput_args(run_days, repair_hours, monte_carlo_trials) -> None:
    """Refuses a run length, repair time or Monte Carlo trial count out of range."""
    if isinstance(run_days, bool) or not isinstance(run_days, (int, float)) or not math.isfinite(run_days) or run_days <= 0:
        raise SpecError([("run_days", f"must be a finite number of days > 0 (found {run_days!r})")])
    if repair_hours is not None and (not isinstance(repair_hours, (int, float)) or not math.isfinite(repair_hours)
                                     or repair_hours < 0):
        raise SpecError([("repair_hours", f"must be a finite number of hours >= 0 (found {repair_hours!r})")])
    if isinstance(monte_carlo_trials, bool) or not isinstance(monte_carlo_trials, int) or monte_carlo_trials < 0 \
            or monte_carlo_trials == 1 or monte_carlo_trials > 100_000:
        raise SpecError([("monte_carlo_trials", f"must be 0 or 2..100000 (found {monte_carlo_trials!r})")])


def _checkpoint(cluster, *, checkpoint_s, restart_s, checkpoint_gb, storage_gbps,
                restart_overhead_s) -> Optional[Checkpoint]:
    """The checkpoint write and restart times: from the arguments when any is given, else those stated
    in failure_rates (errors named there), else None."""
    fr = cluster.file.failure_rates
    if all(v is None for v in (checkpoint_s, restart_s, checkpoint_gb, storage_gbps, restart_overhead_s)):
        if fr.checkpoint_s is None and fr.restart_s is None:
            return None
        try:
            ck = checkpoint_times(checkpoint_s=fr.checkpoint_s, restart_s=fr.restart_s)
        except SpecError as e:
            raise SpecError([(f"failure_rates.{p}", m) for p, m in e.errors]) from None
        return Checkpoint(ck.write_s, ck.restart_s, "stated in failure_rates")
    return checkpoint_times(checkpoint_s=checkpoint_s, restart_s=restart_s, checkpoint_gb=checkpoint_gb,
                            storage_gbps=storage_gbps, restart_overhead_s=restart_overhead_s)


def _placed(cluster, fabric: Fabric, placement, failure_domains, *, time_limit, seed, workers) -> tuple:
    """The placement goodput is computed for, its note and, with a failure-domain rule, the
    :class:`~topo.solve.placement.PlacementResult` placed with it (else None)."""
    from topo.study.failures import resolve_placement
    fd_pair = None
    if failure_domains is not None:
        if placement is not None:
            raise SpecError([("failure_domains", "places the jobs itself; give it or a placement, not both")])
        from topo.solve.placement import place
        pr = place(cluster, fabric, time_limit=time_limit, seed=seed, workers=workers,
                   failure_domains=failure_domains)
        if pr.failure_domains is None:
            raise SpecError([("failure_domains", "no rule given (False or empty)")])
        fd_pair = pr
        placement = pr.assignment
    pl, note = resolve_placement(cluster, fabric, placement)
    if fd_pair is not None:
        note = f"placed with {fd_pair.failure_domains['mode']} by {fd_pair.failure_domains['level']} (CP-SAT {fd_pair.status})"
    return pl, note, fd_pair


def _ep_jobs(fabric: Fabric, pl: dict, names: list) -> np.ndarray:
    """The job index of every endpoint (-1: none); refuses endpoint ids outside the fabric."""
    ep_job = np.full(fabric.n_endpoints, -1, np.int64)
    for j, nm in enumerate(names):
        ids = np.asarray(pl[nm], np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= fabric.n_endpoints):
            raise SpecError([(f"placement.{nm}", f"endpoint ids must be in [0, {fabric.n_endpoints})")])
        ep_job[ids] = j
    return ep_job


def _totals(rows: list, size: np.ndarray, ck: Optional[Checkpoint]) -> dict:
    """All jobs together: interruptions, the job stopped most often and, with checkpoint times, the
    size-weighted goodput and the job with the lowest (ties by name)."""
    totals = {}
    if rows:
        w = size / size.sum() if size.sum() > 0 else np.full(len(rows), 1.0 / len(rows))
        totals = {"jobs": len(rows), "accelerators": int(size.sum()),
                  "interruptions": float(sum(r["interruptions"] for r in rows)),
                  "shortest_mtbi_job": max(rows, key=lambda r: (r["stopping_per_hour"], r["name"]))["name"]}
        if ck is not None:
            totals["goodput_weighted"] = float(sum(wi * r["goodput"] for wi, r in zip(w.tolist(), rows)))
            totals["lowest_goodput_job"] = min(rows, key=lambda r: (r["goodput"], r["name"]))["name"]
    return totals


def _monte_carlo_of_largest(rows: list, ck: Optional[Checkpoint], run_h: float, trials: int, seed) -> Optional[dict]:
    """With trials: the largest job's run simulated (seeded) beside its analytic figures; refused without
    checkpoint times."""
    if trials and ck is None:
        raise SpecError([("monte_carlo_trials", "needs the checkpoint and restart times (checkpoint_s and restart_s)")])
    if not (trials and rows):
        return None
    big = max(rows, key=lambda r: (r["accelerators"], r["name"]))
    lam = big["stopping_per_hour"]
    mt = 3600.0 / lam if lam > 0 else math.inf
    tau = big["checkpoint_interval_s"] if big["checkpoint_interval_s"] else run_h * 3600.0
    return dict(monte_carlo(mt, ck.write_s, ck.restart_s, tau, run_h * 3600.0, trials, seed),
                job=big["name"], analytic_goodput=big["goodput"], analytic_interruptions=big["interruptions"])


def _fd_goodput(fd_pair, totals: dict, br: dict, other: GoodputResult) -> dict:
    """The failure-domain rule, both placements' traffic, and both goodputs and blast radii at the
    rule's level (with it: this result; without it: ``other``)."""
    level = fd_pair.failure_domains["level"]

    def brief(tot, b):
        b = b.get(level, {})
        return {"goodput_weighted": tot.get("goodput_weighted"), "interruptions": tot.get("interruptions"),
                "max_jobs_stopped": b.get("max_jobs_stopped"), "mean_jobs_stopped": b.get("mean_jobs_stopped"),
                "max_accelerators_stopped": b.get("max_accelerators_stopped"),
                "domains_stopping_a_job": b.get("domains_stopping_a_job")}
    return {**{k: fd_pair.failure_domains[k] for k in ("level", "mode", "max_share", "max_domains")},
            "placement": {"with": fd_pair.failure_domains["with"], "without": fd_pair.failure_domains["without"]},
            "goodput": {"with": brief(totals, br), "without": brief(other.totals, other.blast_radius)}}


def _scaling(rows, comps, rates, ck: Optional[Checkpoint], fabric: Fabric, points: int) -> list:
    """Goodput against job size: the largest job's stopping rate per accelerator, scaled linearly
    (each component count grows with the job), from 1/64 of the cluster up to all of it."""
    if not rows or points < 2:
        return []
    i = max(range(len(rows)), key=lambda k: (rows[k]["accelerators"], rows[k]["name"]))
    n = comps[i]["accelerators"]
    if n == 0:
        return []
    per_acc = rows[i]["stopping_per_hour"] / n
    total = int(np.count_nonzero(fabric.ep_is_accel))
    sizes = sorted(set(int(round(x)) for x in np.geomspace(max(1, total / 64), total, points)))
    out = []
    for s in sizes:
        lam = per_acc * s
        m = 3600.0 / lam if lam > 0 else math.inf
        out.append({"accelerators": s, "mtbi_h": (1.0 / lam) if lam > 0 else None,
                    "goodput": _goodput_at(m, ck)[1] if ck is not None else None})
    return out


# --- hot spares ----------------------------------------------------------------------------------
# chosen in topo.solve.spares (placement holds them back too); goodput reports them


def choose_spares(cluster, fabric: Optional[Fabric] = None, placement=None, *, scope: str = "leaf",
                  per_domain: int = 1, time_limit=None, seed=None, workers=None) -> dict:
    """:func:`topo.solve.spares.choose_spares` around ``placement`` (None: the placement
    :func:`topo.study.failures.resolve_placement` gives, with its note)."""
    from topo.solve.spares import choose_spares as _choose
    from topo.study.failures import resolve_placement
    if scope not in SPARE_SCOPES:
        raise SpecError([("scope", f"must be one of {', '.join(SPARE_SCOPES)} (found {scope!r})")])
    if fabric is None:
        from topo.model.fabric import build
        fabric = build(cluster)
    pl, note = resolve_placement(cluster, fabric, placement)
    out = _choose(cluster, fabric, pl, scope=scope, per_domain=per_domain, time_limit=time_limit, seed=seed,
                  workers=workers)
    out["placement"] = note
    return out
