"""Failure analysis: what a cluster loses when links, switches, planes, NICs,
scale-up switches or rack power feeds fail.

Owns failure enumeration, symmetry grouping, capacity-loss accounting per tier,
k-failure sampling, expected loss from failure rates, and (through
:mod:`topo.routing.engine`) the traffic impact of each failure. It does not build
fabrics, place jobs or route traffic itself; it must not print.

Failure kinds
-------------
``switch``          every link of one switch (any tier);
``link``            one physical link (both directions), i.e. one of the N
                    parallel links of a bundle;
``plane``           every link of one plane (multi-plane and rail-only fabrics);
``nic``             every scale-out port of one endpoint;
``rack_power``      a rack's power feed: its servers (their endpoints and ports)
                    and the top-of-rack leaves sitting in it
                    (``floor.leaf_placement: tor``) go down;
``scaleup_switch``  one of the S switches of a scale-up domain: the domain keeps
                    (S-1)/S of its scale-up bandwidth (S from
                    :data:`SCALEUP_SWITCHES` by accelerator model, or the
                    ``scaleup_switches`` argument; S = 0, a switchless mesh,
                    has no such failure).

Symmetry grouping (exactly when it is used)
-------------------------------------------
Grouping is used when ``group=True`` (the default) and the fabric was built by
:mod:`topo.model.fabric` (any family but ``custom``). Custom graphs are always
evaluated exhaustively, one failure per element. Classes are the coarsest
equitable partition (colour refinement) of the fabric graph augmented with
servers, racks, scale-up domains and the top-of-rack leaf/rack relation. An
endpoint's initial colour carries the job placed on it; a link's colour
carries its tier, capacity and, when traffic is routed, its healthy load in
both directions under the fluid-type model (``uec-spray``), and with
``hash_exact=True`` also under ``roce-hash``. Failure candidates are grouped
by (kind, tier, plane, class); the lowest id is evaluated and the result
counted ``count`` times (``members`` holds the ids).

* Capacity loss per tier, isolated and down endpoints: identical within a
  class by construction (a stable colouring gives every member the same
  multiset of link colours).
* Traffic metrics: grouping assumes the classes are symmetry orbits of the
  loaded fabric; ``tests/test_failures.py`` checks grouped == exhaustive
  (uec-spray; roce-hash with ``hash_exact``) on small symmetric fabrics with
  and without jobs. Without ``hash_exact`` the roce-hash figure of a class is
  the representative's: members differ only in which flows the seeded hash
  happened to put on them.
* A fabric whose classes are all singletons (irregular) simply degenerates
  to the exhaustive sweep.

A failure that removes no link carrying healthy load and no endpoint of a job
is answered without routing: no model changes any routing decision for it.

k failures
----------
Sets of k switches, links (and NICs when a NIC rate is given) are drawn without
replacement, weighted by the failure rate of their kind when rates are given;
all sets are enumerated when there are at most ``samples`` of them. The score
is the fraction of fabric capacity removed; the result gives the mean with a
95% confidence interval (normal approximation), and the worst set found (the
worse of the worst sample and a greedy set), routed when traffic is on.

Worst failure
-------------
Everywhere a worst single failure is named it is ranked by :func:`severity`: jobs
stopped, then accelerators cut off, then job slowdown, then the share of a
tier's bandwidth lost (a spine losing 2% of a tier's bandwidth ranks below a
leaf that cuts off its endpoints and stops their jobs). ``to_dict()`` names it
under ``worst_single``.

Expected loss
-------------
From ``failure_rates`` (probabilities per year per link, switch and NIC):
the exact expected fraction of each tier's capacity lost within a year with
independent failures and no repair (a link is lost when it, either of its
switches or its endpoint's NIC fails).
"""
from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from topo.core.errors import SpecError
from topo.core.mix import mix64
from topo.model.fabric import LINK_TIER_NAMES, Fabric

KINDS = ("switch", "link", "plane", "nic", "scaleup_switch", "rack_power")
ROUTING_MODELS = ("roce-hash", "uec-spray")

# Switches per scale-up domain, by accelerator model. A failed scale-up switch
# removes 1/S of every member's scale-up bandwidth.
SCALEUP_SWITCHES = {
    "h100": 4,   # HGX H100: four third-generation NVSwitch chips (NVIDIA HGX H100 datasheet)
    "h200": 4,   # HGX H200: same baseboard as HGX H100
    "b200": 2,   # HGX B200: two NVLink 5 switch chips (NVIDIA HGX B200 datasheet)
    "gb200": 18,  # GB200 NVL72: 9 NVLink switch trays x 2 chips
    "mi300x": 0,  # 8 OAM GPUs in a direct Infinity Fabric mesh: no scale-up switch to fail
    "mi355x": 0,  # same OAM mesh
    "mi450": 6,  # Helios (UALink): switch count not published; an assumption
    "mi455x": 6,  # as MI450
}
DEFAULT_SCALEUP_SWITCHES = 4
# traffic=None routes the jobs only up to this many directed links (about 25k
# accelerators): above it every routed failure class costs seconds to minutes.
AUTO_TRAFFIC_MAX_LINKS = 200_000


def _codes(*cols) -> np.ndarray:
    """Dense int64 codes for rows of equal-length columns (numbers only)."""
    arr = np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=1)
    _, inv = np.unique(arr, axis=0, return_inverse=True)
    return inv.reshape(-1).astype(np.int64)


# --- colour refinement ------------------------------------------------------------
def refine(n_nodes: int, u: np.ndarray, v: np.ndarray, edge_color: np.ndarray,
           node_color: np.ndarray, max_rounds: int = 32) -> np.ndarray:
    """Coarsest equitable partition refining ``node_color`` over an undirected multigraph.

    Each round a node's colour becomes (its colour, multiset of (neighbour
    colour, edge colour)); multisets are hashed by summing 64-bit mixes, which
    is exact modulo 2**64 and independent of order. Stops when the number of
    classes no longer grows. O(rounds * edges) time, all numpy.
    Returns dense int64 class ids, numbered by first appearance (node order).
    """
    src = np.concatenate([u, v]).astype(np.int64)
    dst = np.concatenate([v, u]).astype(np.int64)
    ec = np.concatenate([edge_color, edge_color]).astype(np.uint64)
    order = np.argsort(src, kind="stable")
    src, dst, ec = src[order], dst[order], ec[order]
    deg = np.bincount(src, minlength=n_nodes)
    starts = np.concatenate([[0], np.cumsum(deg)[:-1]])
    has = deg > 0
    color = _dense(node_color)
    n_cls = int(color.max()) + 1 if n_nodes else 0
    for _ in range(max_rounds):
        with np.errstate(over="ignore"):
            contrib = mix64(color[dst].astype(np.uint64) * np.uint64(1_000_003) + ec)
        s = np.zeros(n_nodes, np.uint64)
        if src.size:
            s[has] = np.add.reduceat(contrib, starts[has])
        with np.errstate(over="ignore"):
            key = mix64(color.astype(np.uint64) ^ mix64(s))
        new = _dense(key)
        n_new = int(new.max()) + 1 if n_nodes else 0
        color = new
        if n_new == n_cls:
            break
        n_cls = n_new
    return color


def _dense(x: np.ndarray) -> np.ndarray:
    """Dense ids numbered by first appearance."""
    _, first, inv = np.unique(x, return_index=True, return_inverse=True)
    rank = np.empty(first.shape[0], np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.shape[0])
    return rank[inv.reshape(-1)]


# --- context ------------------------------------------------------------------------
@dataclass
class _Ctx:
    fabric: Fabric
    cluster: object
    placement: dict            # job -> endpoint ids
    placement_note: str
    job_names: list
    ep_job: np.ndarray         # int64 job index per endpoint, -1 idle
    phys_lo: np.ndarray        # physical link endpoints (upward direction)
    phys_hi: np.ndarray
    phys_gbps: np.ndarray
    phys_tier: np.ndarray
    phys_plane: np.ndarray
    tier_total: np.ndarray     # per link tier, Gb/s (one direction)
    tiers_present: list        # link tiers present
    tor_leaf_rack: np.ndarray  # per leaf node id: rack it sits in (-1 none); length n_nodes
    su_switches: np.ndarray    # per domain: scale-up switches
    traffic: Optional[object] = None  # _Traffic when routing is available
    node_cls: Optional[np.ndarray] = None
    aux: dict = field(default_factory=dict)


def _scaleup_switches(cluster, fabric: Fabric, override=None) -> np.ndarray:
    n = fabric.n_domains
    if override is not None:
        return np.full(n, int(override), np.int64)
    out = np.full(n, DEFAULT_SCALEUP_SWITCHES, np.int64)
    if n == 0 or cluster is None:
        return out
    first_ep = np.full(n, -1, np.int64)
    acc = np.flatnonzero(fabric.ep_domain >= 0)
    d = fabric.ep_domain[acc]
    first_ep[d[::-1]] = acc[::-1]
    names = list(fabric.server_type_names)
    per_type = []
    for tn in names:
        nt = cluster.node_types.get(tn) if hasattr(cluster, "node_types") else None
        a = (nt.accelerator or "") if nt is not None else ""
        s = DEFAULT_SCALEUP_SWITCHES
        for key, val in SCALEUP_SWITCHES.items():
            if key in a.lower():
                s = val
        per_type.append(s)
    st = fabric.server_type[fabric.ep_server[first_ep]]
    out[:] = np.asarray(per_type, np.int64)[st]
    return out


def _tor_leaf_rack(fabric: Fabric, cluster) -> np.ndarray:
    out = np.full(fabric.n_nodes, -1, np.int64)
    if cluster is None or fabric.family == "custom" or cluster.file.floor.leaf_placement != "tor":
        return out
    leaves = np.flatnonzero(fabric.node_tier == 1)
    first = fabric.adj[fabric.indptr[leaves]]
    down = fabric.link_dst[first]
    ok = down < fabric.n_endpoints
    out[leaves[ok]] = fabric.server_rack[fabric.ep_server[down[ok]]]
    return out


def resolve_placement(cluster, fabric: Fabric, placement=None) -> tuple[dict, str]:
    """The placement to analyse and a note on where it came from.

    The given placement (e.g. a plan's ``placement.assignment``) when there is
    one, else the in-order placement of the jobs that fit
    (:func:`topo.traffic.demand.fit_in_order`: deterministic, no solver; pass a plan
    for an optimised placement).
    """
    if placement is not None:
        return ({str(k): np.asarray(v, np.int64) for k, v in placement.items()}, "given placement")
    if cluster is None or not cluster.file.jobs:
        return {}, "no jobs"
    from topo.traffic.demand import fit_in_order
    pl, left = fit_in_order(cluster, fabric)  # a queue larger than the free capacity is normal
    return ({k: np.asarray(v, np.int64) for k, v in pl.items()},
            "in-order placement" + (f" of the jobs that fit; unplaced: {', '.join(left)}" if left else ""))


def _context(cluster, fabric: Fabric, placement, scaleup_switches=None) -> _Ctx:
    pl, note = resolve_placement(cluster, fabric, placement)
    job_names = list(pl)
    ep_job = np.full(fabric.n_endpoints, -1, np.int64)
    for j, name in enumerate(job_names):
        ids = pl[name]
        if ids.size and (ids.min() < 0 or ids.max() >= fabric.n_endpoints):
            raise SpecError([(f"placement.assignment.{name}", f"endpoint ids must be in [0, {fabric.n_endpoints})")])
        ep_job[ids] = j
    up = slice(0, None, 2)
    tier = fabric.link_tier[up].astype(np.int64)
    gbps = fabric.link_gbps[up]
    total = np.bincount(tier, weights=gbps, minlength=3)
    return _Ctx(
        fabric=fabric, cluster=cluster, placement=pl, placement_note=note, job_names=job_names, ep_job=ep_job,
        phys_lo=fabric.link_src[up], phys_hi=fabric.link_dst[up], phys_gbps=gbps, phys_tier=tier,
        phys_plane=fabric.link_plane[up].astype(np.int64), tier_total=total,
        tiers_present=[t for t in range(3) if total[t] > 0], tor_leaf_rack=_tor_leaf_rack(fabric, cluster),
        su_switches=_scaleup_switches(cluster, fabric, scaleup_switches))


# --- elements: what fails -------------------------------------------------------------
@dataclass(frozen=True)
class Element:
    """One failure: ``kind`` and the id of the failed thing.

    ids: switch -> node id; link -> physical link index (directed ids 2i, 2i+1);
    plane -> plane; nic -> endpoint id; scaleup_switch -> domain * 1024 + switch;
    rack_power -> rack index.
    """
    kind: str
    id: int


def element_name(ctx_or_fabric, e: Element) -> str:
    f = ctx_or_fabric.fabric if isinstance(ctx_or_fabric, _Ctx) else ctx_or_fabric
    if e.kind == "switch":
        return f.node_name(e.id)
    if e.kind == "link":
        return f.link_label(2 * e.id)
    if e.kind == "plane":
        return f"plane{e.id}"
    if e.kind == "nic":
        return f"{f.node_name(e.id)}-nic"
    if e.kind == "scaleup_switch":
        return f"domain{e.id // 1024}-sw{e.id % 1024}"
    return f"{f.rack_name(e.id)}-power"


def _effect(ctx: _Ctx, kind: str, i: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(failed physical link indices, endpoints down, scale-up domain hit or -1)."""
    f = ctx.fabric
    if kind == "link":
        return np.array([i], np.int64), np.zeros(0, np.int64), -1
    if kind == "switch":
        lk = f.adj[f.indptr[i]:f.indptr[i + 1]] >> 1
        return np.unique(lk), np.zeros(0, np.int64), -1
    if kind == "plane":
        return np.flatnonzero(ctx.phys_plane == i), np.zeros(0, np.int64), -1
    if kind == "nic":
        lk = f.adj[f.indptr[i]:f.indptr[i + 1]] >> 1
        return np.unique(lk), np.zeros(0, np.int64), -1
    if kind == "scaleup_switch":
        return np.zeros(0, np.int64), np.zeros(0, np.int64), i // 1024
    if kind == "rack_power":
        eps = _rack_endpoints(ctx, i)
        nodes = np.concatenate([eps, np.flatnonzero(ctx.tor_leaf_rack == i)])
        lk = np.concatenate([f.adj[f.indptr[n]:f.indptr[n + 1]] for n in nodes]) >> 1 if nodes.size else np.zeros(0, np.int64)
        return np.unique(lk), eps, -1
    raise ValueError(kind)


def _rack_endpoints(ctx: _Ctx, rack: int) -> np.ndarray:
    idx = ctx.aux.get("ep_by_rack")
    if idx is None:
        er = ctx.fabric.ep_rack()
        order = np.argsort(er, kind="stable")
        cnt = np.bincount(er, minlength=ctx.fabric.n_racks)
        starts = np.concatenate([[0], np.cumsum(cnt)])
        idx = ctx.aux["ep_by_rack"] = (order, starts)
    order, starts = idx
    return order[starts[rack]:starts[rack + 1]].astype(np.int64)


def _capacity_lost(ctx: _Ctx, links: np.ndarray, domain: int) -> dict:
    lost = np.bincount(ctx.phys_tier[links], weights=ctx.phys_gbps[links], minlength=3)
    out = {LINK_TIER_NAMES[t]: float(lost[t] / ctx.tier_total[t]) for t in ctx.tiers_present}
    f = ctx.fabric
    if f.n_domains:
        if domain >= 0:
            tot = float(np.sum(f.domain_size * f.domain_gbps))
            lost_su = f.domain_size[domain] * f.domain_gbps[domain] / ctx.su_switches[domain]
            out["scaleup"] = float(lost_su / tot) if tot > 0 else 0.0
        else:
            out["scaleup"] = 0.0
    return out


def _isolated(ctx: _Ctx, links: np.ndarray) -> np.ndarray:
    """Endpoints left with no working scale-out port."""
    f = ctx.fabric
    ep_links = links[ctx.phys_tier[links] == 0]
    if ep_links.size == 0:
        return np.zeros(0, np.int64)
    eps = np.unique(np.where(ctx.phys_lo[ep_links] < f.n_endpoints, ctx.phys_lo[ep_links], ctx.phys_hi[ep_links]))
    n_ports = f.indptr[eps + 1] - f.indptr[eps]
    lost = np.bincount(np.searchsorted(eps, np.where(ctx.phys_lo[ep_links] < f.n_endpoints,
                                                     ctx.phys_lo[ep_links], ctx.phys_hi[ep_links])),
                       minlength=eps.size)
    return eps[lost >= n_ports]


# --- enumeration and grouping -----------------------------------------------------------
def _candidates(ctx: _Ctx) -> dict[str, np.ndarray]:
    f = ctx.fabric
    out = {
        "switch": np.arange(f.n_endpoints, f.n_nodes, dtype=np.int64),
        "link": np.arange(ctx.phys_lo.shape[0], dtype=np.int64),
        "plane": np.unique(ctx.phys_plane) if f.planes > 1 else np.zeros(0, np.int64),
        "nic": np.flatnonzero(f.indptr[1:f.n_endpoints + 1] > f.indptr[:f.n_endpoints]).astype(np.int64),
        "scaleup_switch": (np.repeat(np.arange(f.n_domains, dtype=np.int64), ctx.su_switches) * 1024
                           + _ranges(ctx.su_switches)) if f.n_domains else np.zeros(0, np.int64),
        "rack_power": np.arange(f.n_racks, dtype=np.int64),
    }
    dom_ok = f.domain_gbps[out["scaleup_switch"] // 1024] > 0 if f.n_domains else np.zeros(0, bool)
    out["scaleup_switch"] = out["scaleup_switch"][dom_ok]
    return out


def _ranges(counts: np.ndarray) -> np.ndarray:
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)


def _node_classes(ctx: _Ctx, link_color: Optional[np.ndarray] = None) -> np.ndarray:
    """Colour classes of the augmented graph; node ids of fabric, then servers, racks, domains."""
    f = ctx.fabric
    N, S, R, D = f.n_nodes, f.n_servers, f.n_racks, f.n_domains
    base_s, base_r, base_d = N, N + S, N + S + R
    lc = _codes(ctx.phys_tier, ctx.phys_gbps) if link_color is None else link_color
    eps = np.arange(f.n_endpoints, dtype=np.int64)
    us = [ctx.phys_lo, eps, base_s + np.arange(S, dtype=np.int64)]
    vs = [ctx.phys_hi, base_s + f.ep_server, base_r + f.server_rack]
    off = int(lc.max()) + 1 if lc.size else 0
    cs = [lc, np.full(f.n_endpoints, off, np.int64), np.full(S, off + 1, np.int64)]
    acc = np.flatnonzero(f.ep_domain >= 0)
    us.append(acc)
    vs.append(base_d + f.ep_domain[acc])
    cs.append(np.full(acc.size, off + 2, np.int64))
    tor = np.flatnonzero(ctx.tor_leaf_rack >= 0)
    us.append(tor)
    vs.append(base_r + ctx.tor_leaf_rack[tor])
    cs.append(np.full(tor.size, off + 3, np.int64))
    kind = np.concatenate([np.zeros(N), np.ones(S), np.full(R, 2), np.full(D, 3)])
    a = np.concatenate([f.node_tier.astype(np.float64), f.server_type.astype(np.float64),
                        f.rack_type.astype(np.float64), f.domain_size.astype(np.float64)])
    b = np.concatenate([np.concatenate([f.ep_is_accel.astype(np.float64), np.zeros(N - f.n_endpoints)]),
                        f.server_busy_kw, f.rack_limit_kw, f.domain_gbps])
    ep_col = ctx.aux.get("ep_colour", ctx.ep_job)   # the job, and the serving pool when deployments are on
    c = np.concatenate([np.concatenate([ep_col.astype(np.float64), np.full(N - f.n_endpoints, -2.0)]),
                        f.server_idle_kw, f.rack_hard.astype(np.float64), np.zeros(D)])
    d = np.zeros(N + S + R + D)
    if D:
        d[base_d:] = ctx.su_switches
    col = _codes(kind, a, b, np.nan_to_num(c, posinf=1e300), d)
    return refine(N + S + R + D, np.concatenate(us), np.concatenate(vs), np.concatenate(cs), col)


def group_candidates(ctx: _Ctx, cands: dict, group: bool, link_color=None) -> dict[str, list[np.ndarray]]:
    """Per kind, a list of classes (arrays of candidate ids, lowest first)."""
    f = ctx.fabric
    if not group or f.family == "custom":
        return {k: [v[i:i + 1] for i in range(v.size)] for k, v in cands.items()}
    cls = _node_classes(ctx, link_color)
    ctx.node_cls = cls
    N, S = f.n_nodes, f.n_servers
    lc = _codes(ctx.phys_tier, ctx.phys_gbps) if link_color is None else link_color
    empty = np.zeros(0, np.int64)

    def key_of(kind, ids):
        if kind == "switch":
            return _codes(f.node_tier[ids], f.node_plane[ids], cls[ids])
        if kind == "link":
            return _codes(ctx.phys_tier[ids], ctx.phys_plane[ids], cls[ctx.phys_lo[ids]], cls[ctx.phys_hi[ids]], lc[ids])
        if kind == "plane":
            # a plane's class: the multiset of its switch classes
            sw_pl = f.node_plane[f.n_endpoints:].astype(np.int64)
            h = np.zeros(int(max(ids.max(), sw_pl.max())) + 1, np.uint64)
            np.add.at(h, sw_pl, mix64(cls[f.n_endpoints:N].astype(np.uint64)))
            return _dense(h[ids])
        if kind == "nic":
            return cls[ids]
        if kind == "scaleup_switch":
            return cls[N + S + f.n_racks + ids // 1024]
        return cls[N + S + ids]  # rack_power

    keys = {k: (key_of(k, v) if v.size else empty) for k, v in cands.items()}
    out = {}
    for k, ids in cands.items():
        key = keys[k]
        if ids.size == 0:
            out[k] = []
            continue
        order = np.lexsort((ids, key))
        ks = key[order]
        cut = np.flatnonzero(np.concatenate([[True], ks[1:] != ks[:-1]]))
        groups = np.split(ids[order], cut[1:])
        groups.sort(key=lambda g: int(g[0]))
        out[k] = groups
    return out


# --- ranking: the worst failure is what it does to jobs ----------------------------------
def jobs_stopped(row: dict) -> list:
    """Jobs a single failure stops: those losing a rank, and those it leaves unable to run as
    placed (a null slowdown under any routing model), sorted by name."""
    out = set(row.get("jobs_lost_ranks") or [])
    for per in (row.get("slowdown") or {}).values():
        if isinstance(per, dict):
            out.update(j for j, v in per.items() if v is None)
    return sorted(out)


def severity(row: dict) -> tuple:
    """Rank key of a single-failure row, larger is worse: jobs stopped, then accelerators
    (endpoints) cut off, then the largest job slowdown (scale-out or scale-up), then the largest
    share of a tier's bandwidth lost, then unreachable demand."""
    slow = 1.0
    for per in list((row.get("slowdown") or {}).values()) + [row.get("scaleup_slowdown") or {}]:
        if isinstance(per, dict):
            slow = max([slow] + [float(v) for v in per.values() if isinstance(v, (int, float))])
    bw = row.get("bandwidth_lost_frac") or {}
    lost = max([float(v) for v in bw.values() if isinstance(v, (int, float))] or [0.0]) if isinstance(bw, dict) else 0.0
    cut = int(row.get("endpoints_down") or 0) + int(row.get("endpoints_isolated") or 0)
    return (len(jobs_stopped(row)), cut, slow, lost, float(row.get("unreachable_gbps") or 0.0))


def rank_single(rows) -> list:
    """Single-failure rows, worst first by :func:`severity`; ties by kind, then name."""
    rows = [r for r in rows if isinstance(r, dict)]
    by_name = sorted(rows, key=lambda r: (str(r.get("kind")), str(r.get("name"))))
    return sorted(by_name, key=severity, reverse=True)


# --- results ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FailureResult:
    """Single-failure table, k-failure statistics and expected loss. ``to_dict()`` is JSON-able."""
    cluster: str
    placement_note: str
    grouped: bool
    single: tuple = ()          # dict rows (see to_dict)
    members: tuple = ()         # per single row: candidate ids of its class (not serialised)
    k: dict = field(default_factory=dict)
    expected_loss: dict = field(default_factory=dict)
    traffic: dict = field(default_factory=dict)
    seconds: float = 0.0
    serving: Optional[dict] = None    # the deployments on the healthy fabric (ServingImpact.summary)

    def to_dict(self) -> dict:
        ranked = rank_single(self.single)
        worst = None
        if ranked:
            w = ranked[0]
            sev = severity(w)
            worst = {"kind": w["kind"], "name": w["name"], "jobs_stopped": jobs_stopped(w),
                     "endpoints_cut_off": sev[1], "slowdown": sev[2], "bandwidth_lost_frac": sev[3]}
        return _finite({"version": 1, "cluster": self.cluster, "placement": self.placement_note,
                "grouped": self.grouped, "single": [dict(r) for r in self.single], "worst_single": worst,
                "k": dict(self.k),
                "expected_loss": dict(self.expected_loss), "traffic": dict(self.traffic),
                **({"serving": dict(self.serving)} if self.serving is not None else {}),
                "seconds": round(self.seconds, 3)})


def _finite(o):
    """JSON-safe copy: non-finite floats become None, numpy scalars Python numbers."""
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _jobs_hit(ctx: _Ctx, links: np.ndarray, down: np.ndarray) -> set:
    f = ctx.fabric
    ep_links = links[ctx.phys_tier[links] == 0]
    eps = np.where(ctx.phys_lo[ep_links] < f.n_endpoints, ctx.phys_lo[ep_links], ctx.phys_hi[ep_links])
    hit = np.concatenate([eps, down])
    j = ctx.ep_job[hit]
    return set(int(x) for x in np.unique(j[j >= 0]))


def _domain_jobs(ctx: _Ctx, domain: int) -> set:
    if domain < 0:
        return set()
    eps = np.flatnonzero(ctx.fabric.ep_domain == domain)
    j = ctx.ep_job[eps]
    return set(int(x) for x in np.unique(j[j >= 0]))


def _evaluate(ctx: _Ctx, kind: str, i: int) -> dict:
    links, down, dom = _effect(ctx, kind, i)
    row = {"kind": kind, "name": element_name(ctx, Element(kind, int(i))),
           "bandwidth_lost_frac": _capacity_lost(ctx, links, dom)}
    iso = _isolated(ctx, links)
    down_all = np.union1d(down, iso)
    row["endpoints_down"] = int(down.size)
    row["endpoints_isolated"] = int(iso.size - np.intersect1d(iso, down).size)
    jobs = _jobs_hit(ctx, links, down) | _domain_jobs(ctx, dom)
    lost_rank_jobs = set(int(x) for x in np.unique(ctx.ep_job[down_all]) if x >= 0)
    if ctx.traffic is not None:
        imp = ctx.traffic.impact(links, down_all)
        row["slowdown"] = imp["slowdown"]
        row["unreachable_gbps"] = imp["unreachable_gbps"]
        jobs |= set(imp["jobs"])
    if dom >= 0:
        s = float(ctx.su_switches[dom])
        row["scaleup_slowdown"] = {ctx.job_names[j]: s / (s - 1.0) if s > 1 else None for j in sorted(_domain_jobs(ctx, dom))}
    row["jobs_affected"] = [ctx.job_names[j] for j in sorted(jobs)]
    row["jobs_lost_ranks"] = [ctx.job_names[j] for j in sorted(lost_rank_jobs)]
    if "serving" in ctx.aux:
        row["serving"] = ctx.aux["serving"].impact(links, down_all, dom)
    return row


def single_failures(ctx: _Ctx, group: bool = True, kinds=KINDS, link_color=None, workers: int = 1,
                    executor=None) -> tuple[list, list]:
    """Rows (one per class) and their member ids. With ``executor`` (and traffic routed) the
    classes are evaluated as tasks on it (:func:`_evaluate_on_executor`)."""
    cands = _candidates(ctx)
    cands = {k: v for k, v in cands.items() if k in kinds}
    classes = group_candidates(ctx, cands, group, link_color)
    members = [g for kind in KINDS for g in classes.get(kind, [])]
    work = [(kind, int(g[0])) for kind in KINDS for g in classes.get(kind, [])]
    if executor is not None and ctx.traffic is not None and work:
        rows = _evaluate_on_executor(ctx, work, executor)
    elif workers and workers > 1 and len(work) > 1:
        rows = _evaluate_parallel(ctx, work, workers)
    else:
        rows = [_evaluate(ctx, kind, i) for kind, i in work]
    for row, g in zip(rows, members):
        row["count"] = int(g.size)
    return rows, members


_WORKER_CTX: Optional[_Ctx] = None


def _eval_chunk(work):
    """Rows of a chunk, and the routing counters it added (the parent adds them to its own)."""
    tr = _WORKER_CTX.traffic
    before = (tr.routes, tr.skipped) if tr is not None else (0, 0)
    rows = [_evaluate(_WORKER_CTX, kind, i) for kind, i in work]
    after = (tr.routes, tr.skipped) if tr is not None else (0, 0)
    return rows, (after[0] - before[0], after[1] - before[1])


def _evaluate_parallel(ctx: _Ctx, work: list, workers: int) -> list:
    """Evaluate failures in forked worker processes that inherit the context (Linux/macOS fork)."""
    import concurrent.futures as cf
    import multiprocessing as mp
    global _WORKER_CTX
    try:
        mpc = mp.get_context("fork")
    except ValueError:  # no fork (Windows): run serially
        return [_evaluate(ctx, kind, i) for kind, i in work]
    _WORKER_CTX = ctx
    try:
        n = min(workers, len(work))
        chunks = [work[i::n] for i in range(n)]
        with cf.ProcessPoolExecutor(max_workers=n, mp_context=mpc) as ex:
            parts = list(ex.map(_eval_chunk, chunks))
    finally:
        _WORKER_CTX = None
    out = [None] * len(work)
    for c, (part, (routes, skipped)) in enumerate(parts):
        for j, row in enumerate(part):
            out[c + j * n] = row
        if ctx.traffic is not None:  # the same counts as a serial run
            ctx.traffic.routes += routes
            ctx.traffic.skipped += skipped
    return out


# Routed classes on an executor (a Dask cluster, through topo.study.executor): each task rebuilds
# the context from the cluster file (cached per worker thread, keyed by the task's inputs), checks
# the rebuilt fabric is the one analysed, and returns its rows and routing counters.
_REMOTE = threading.local()


def _fabric_digest(fabric: Fabric) -> str:
    h = hashlib.sha256()
    for a in (fabric.link_src, fabric.link_dst, fabric.link_gbps, fabric.link_tier, fabric.ep_server,
              fabric.ep_domain):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(str((fabric.n_nodes, fabric.n_links, fabric.n_endpoints)).encode())
    return h.hexdigest()


def _remote_ctx(task: dict) -> _Ctx:
    """The context of a task, rebuilt in this worker thread once per distinct task inputs."""
    hit = getattr(_REMOTE, "entry", None)
    if hit is not None and hit[0] == task["key"]:
        return hit[1]
    from topo.model.fabric import build
    from topo.model.spec import from_dict
    _REMOTE.entry = None  # drop the previous context before building the next
    cluster = from_dict(task["file"], base_dir=task["base_dir"])
    fabric = build(cluster)
    if _fabric_digest(fabric) != task["fabric_digest"]:
        raise SpecError([("executor", "the worker rebuilt a different fabric from the cluster file; failures "
                                      "run on an executor only for the fabric the cluster file builds")])
    placement = {k: np.asarray(v, np.int64) for k, v in task["placement"].items()}
    ctx = _context(cluster, fabric, placement)
    ctx.su_switches = np.asarray(task["su_switches"], np.int64)  # as the caller's context has them
    ctx.traffic = Traffic(ctx, seed=task["seed"])
    _REMOTE.entry = (task["key"], ctx)
    return ctx


def _eval_remote(task: dict):
    """Rows of one chunk of failure classes, and the routing counters it added (run on a worker)."""
    ctx = _remote_ctx(task)
    tr = ctx.traffic
    before = (tr.routes, tr.skipped)
    rows = [_evaluate(ctx, kind, i) for kind, i in task["work"]]
    return rows, (tr.routes - before[0], tr.skipped - before[1])


def _evaluate_on_executor(ctx: _Ctx, work: list, executor) -> list:
    """Evaluate routed failure classes as tasks on ``executor``: chunks of the class list (every
    chunk-th class, as the forked workers split it), gathered by position, so the rows and the
    routing counters are a serial run's whatever the order the tasks finish in."""
    from topo.study.executor import n_workers
    cl = ctx.cluster
    if cl is None:
        raise SpecError([("executor", "failures run on an executor need the cluster (its file is rebuilt on "
                                      "each worker)")])
    base = {"file": cl.file.model_dump(mode="json"), "base_dir": cl.base_dir, "placement": {k: [int(x) for x in v] for k, v in ctx.placement.items()},
            "su_switches": [int(x) for x in ctx.su_switches], "seed": ctx.traffic.seed,
            "fabric_digest": _fabric_digest(ctx.fabric)}
    base["key"] = hashlib.sha256(json.dumps(base, sort_keys=True, default=str).encode()).hexdigest()
    n = max(1, min(len(work), 4 * n_workers(executor)))
    futs = [executor.submit(_eval_remote, {**base, "work": work[i::n]}) for i in range(n)]
    out = [None] * len(work)
    for c, fu in enumerate(futs):
        part, (routes, skipped) = fu.result()
        for j, row in enumerate(part):
            out[c + j * n] = row
        ctx.traffic.routes += routes  # the same counts as a serial run
        ctx.traffic.skipped += skipped
    return out


# --- k failures ---------------------------------------------------------------------------
def _k_pool(ctx: _Ctx, rates) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Elements that can fail independently: every switch and every physical link (and NIC)."""
    f = ctx.fabric
    kinds = ["switch", "link", "nic"]
    ids = [np.arange(f.n_endpoints, f.n_nodes, dtype=np.int64), np.arange(ctx.phys_lo.shape[0], dtype=np.int64),
           np.flatnonzero(f.indptr[1:f.n_endpoints + 1] > f.indptr[:f.n_endpoints]).astype(np.int64)]
    if rates is not None and (rates.switch_per_year + rates.link_per_year + rates.nic_per_year) > 0:
        w = [rates.switch_per_year, rates.link_per_year, rates.nic_per_year]
    else:
        w = [1.0, 1.0, 0.0]  # uniform over switches and links when no rates are given
    kind_of = np.concatenate([np.full(x.size, t, np.int64) for t, x in enumerate(ids)])
    weight = np.concatenate([np.full(x.size, w[t], np.float64) for t, x in enumerate(ids)])
    keep = weight > 0
    return kinds, np.stack([kind_of[keep], np.concatenate(ids)[keep]], 1), weight[keep]


def _set_links(ctx: _Ctx, kinds, elems: np.ndarray) -> np.ndarray:
    f = ctx.fabric
    parts = []
    for kind_i, i in elems.tolist():
        kind = kinds[kind_i]
        if kind == "link":
            parts.append(np.array([i], np.int64))
        else:
            parts.append(f.adj[f.indptr[i]:f.indptr[i + 1]] >> 1)
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def _set_score(ctx: _Ctx, links: np.ndarray) -> tuple[float, dict, int]:
    lost = np.bincount(ctx.phys_tier[links], weights=ctx.phys_gbps[links], minlength=3)
    per = {LINK_TIER_NAMES[t]: float(lost[t] / ctx.tier_total[t]) for t in ctx.tiers_present}
    total = float(lost.sum() / ctx.tier_total.sum())
    return total, per, int(_isolated(ctx, links).size)


def k_failures(ctx: _Ctx, k: int, samples: int, seed: int, rates=None) -> dict:
    """Capacity lost by k simultaneous failures: mean with a 95% confidence interval.

    Sets are drawn without replacement from every switch and physical link (and
    NIC when a NIC rate is given), weighted by the failure rate of their kind
    when rates are given, uniformly otherwise; seeded. When the number of
    k-sets is at most ``samples`` every set is enumerated instead (exact mean,
    zero-width interval). The worst set is the worse of the worst sample and a
    greedy set (repeatedly adding the element that loses the most capacity).
    The score of a set is the fraction of all fabric capacity it removes.
    """
    kinds, pool, weight = _k_pool(ctx, rates)
    n = pool.shape[0]
    if k < 1 or k > n:
        raise SpecError([("k", f"k must be between 1 and the {n} elements that can fail")])
    rng = np.random.default_rng(seed)
    n_sets = math.comb(n, k)
    uniform = np.allclose(weight, weight[0])
    if n_sets <= samples and uniform:
        import itertools
        sets = [np.array(c, np.int64) for c in itertools.combinations(range(n), k)]
        method = "exhaustive"
    else:
        p = weight / weight.sum()
        sets = [np.sort(rng.choice(n, size=k, replace=False, p=p)) for _ in range(samples)]
        method = "sampled"
    scores = np.empty(len(sets))
    iso = np.empty(len(sets))
    best = (-1.0, None)
    for s_i, s in enumerate(sets):
        total, per, n_iso = _set_score(ctx, _set_links(ctx, kinds, pool[s]))
        scores[s_i] = total
        iso[s_i] = n_iso
        if total > best[0]:
            best = (total, s)
    # greedy worst: single-element impacts, then best completion
    greedy = _greedy_worst(ctx, kinds, pool, k)
    g_total = _set_score(ctx, _set_links(ctx, kinds, pool[greedy]))[0]
    worst_set, worst_src = (best[1], "sample") if best[0] >= g_total else (greedy, "greedy")
    w_total, w_per, w_iso = _set_score(ctx, _set_links(ctx, kinds, pool[worst_set]))
    mean = float(scores.mean())
    if method == "exhaustive":
        half = 0.0
    else:
        sd = float(scores.std(ddof=1)) if len(scores) > 1 else 0.0
        half = 1.96 * sd / math.sqrt(len(scores))
    names = [element_name(ctx, Element(kinds[int(a)], int(b))) for a, b in pool[worst_set].tolist()]
    out = {"k": k, "method": method, "sets": len(sets), "population": n_sets if n_sets < 2**62 else float(n_sets),
           "capacity_lost_frac": {"mean": mean, "ci95": [mean - half, mean + half], "min": float(scores.min()),
                                  "max": float(scores.max())},
           "endpoints_isolated_mean": float(iso.mean()),
           "worst": {"elements": names, "found_by": worst_src, "capacity_lost_frac": w_total,
                     "bandwidth_lost_frac": w_per, "endpoints_isolated": w_iso},
           "seed": seed}
    if ctx.traffic is not None:
        links = _set_links(ctx, kinds, pool[worst_set])
        down = _isolated(ctx, links)
        imp = ctx.traffic.impact(links, down)
        out["worst"]["slowdown"] = imp["slowdown"]
        out["worst"]["unreachable_gbps"] = imp["unreachable_gbps"]
        out["worst"]["jobs_affected"] = [ctx.job_names[j] for j in sorted(imp["jobs"])]
    out["_scores"] = scores  # removed before serialisation
    return out


def _greedy_worst(ctx: _Ctx, kinds, pool: np.ndarray, k: int) -> np.ndarray:
    """A bad k-set built greedily: among the 8k (at least 64) elements that lose the
    most capacity alone, repeatedly add the one that makes the set lose the most."""
    f = ctx.fabric
    node_cap = (np.bincount(ctx.phys_lo, weights=ctx.phys_gbps, minlength=f.n_nodes)
                + np.bincount(ctx.phys_hi, weights=ctx.phys_gbps, minlength=f.n_nodes))
    is_link = pool[:, 0] == kinds.index("link")
    single = np.empty(pool.shape[0])
    single[is_link] = ctx.phys_gbps[pool[is_link, 1]]
    single[~is_link] = node_cap[pool[~is_link, 1]]
    chosen: list[int] = []
    cand = np.argsort(-single, kind="stable")[: max(8 * k, 64)]
    for _ in range(k):
        best, best_i = -1.0, -1
        for c in cand.tolist():
            if c in chosen:
                continue
            tot = _set_score(ctx, _set_links(ctx, kinds, pool[np.array(chosen + [c])]))[0]
            if tot > best:
                best, best_i = tot, c
        chosen.append(best_i)
    return np.sort(np.array(chosen, np.int64))


# --- expected loss --------------------------------------------------------------------------
def expected_loss(ctx: _Ctx, rates) -> dict:
    """Expected fraction of each tier's capacity lost within one year from failure rates.

    A physical link is lost when the link itself, either of its switches, or
    (for an endpoint link) the endpoint's NIC fails; with independent failures
    at the given annual probabilities, P(lost) = 1 - prod(1 - p). Exact
    expectation of the union (no double counting), no repair assumed.
    """
    if rates is None:
        return {}
    pl, ps, pn = rates.link_per_year, rates.switch_per_year, rates.nic_per_year
    for name, v in (("link_per_year", pl), ("switch_per_year", ps), ("nic_per_year", pn)):
        if not 0.0 <= v <= 1.0:
            raise SpecError([(f"failure_rates.{name}", f"must be a probability in [0, 1] (found {v})")])
    f = ctx.fabric
    is_ep_lo = ctx.phys_lo < f.n_endpoints
    survive = (1 - pl) * np.where(is_ep_lo, (1 - pn) * (1 - ps), (1 - ps) ** 2)
    p_lost = 1 - survive
    lost = np.bincount(ctx.phys_tier, weights=ctx.phys_gbps * p_lost, minlength=3)
    n_sw = f.n_switches
    n_links = ctx.phys_lo.shape[0]
    n_nic = int(np.count_nonzero(f.indptr[1:f.n_endpoints + 1] > f.indptr[:f.n_endpoints]))
    return {"rates": {"link_per_year": pl, "switch_per_year": ps, "nic_per_year": pn},
            "bandwidth_lost_frac": {LINK_TIER_NAMES[t]: float(lost[t] / ctx.tier_total[t]) for t in ctx.tiers_present},
            "expected_failures_per_year": {"link": n_links * pl, "switch": n_sw * ps, "nic": n_nic * pn},
            "capacity_lost_gbps": float(lost.sum())}


# --- traffic impact (through topo.routing) --------------------------------------------------
class Traffic:
    """Healthy and failed routing of the placed jobs' demands, per routing model.

    Job completion times come from :mod:`topo.routing.engine` (the same rule as
    ``topo analyze``): under ``uec-spray`` a job's ideal time x the largest
    utilisation (at least 1) of the links it loads; under ``roce-hash`` the
    max-min fair (water-filling) rates of its queue pairs. Each model uses its
    own protocol's wire efficiency. Slowdown = failed time / healthy time;
    ``None`` when the job loses ranks or some of its demand becomes
    unreachable (the job cannot run as placed).
    """

    def __init__(self, ctx: "_Ctx", seed: int = 0, models=ROUTING_MODELS):
        from topo.traffic import demand as T
        from topo.routing.engine import protocol_efficiency
        self.ctx = ctx
        self.seed = int(seed)
        self.models = tuple(models)
        cl = ctx.cluster
        self.qps = cl.file.transport.qps              # queue pairs per channel
        self.channels = cl.file.transport.n_channels  # channels per collective
        proto = {"roce-hash": "roce", "uec-spray": "uec", "fluid": "ideal", "wcmp": "ideal"}
        self.eff = {m: protocol_efficiency(cl, proto[m]) for m in self.models}
        self.demands = {m: T.job_demands(cl, ctx.fabric, ctx.placement, efficiency=self.eff[m]) for m in self.models}
        names = list(self.demands[self.models[0]].job_names)
        # job index in ctx.job_names for each demand-job index
        self.jmap = np.array([ctx.job_names.index(n) for n in names], np.int64) if names else np.zeros(0, np.int64)
        self.healthy = {}
        self.healthy_load = {}
        self.healthy_unreach = {}
        self.routes = 0
        self.skipped = 0
        for m in self.models:
            times, unreach, load = self._times(m, None)
            self.healthy[m] = times
            self.healthy_load[m] = load
            self.healthy_unreach[m] = unreach

    def _times(self, model: str, failed: Optional[np.ndarray]):
        """(per-job completion time (inf when unreachable), unreachable Gb/s, total directed-link load)."""
        from topo.routing.engine import _run_model
        f = self.ctx.fabric
        dead = np.zeros(f.n_links, bool) if failed is None else failed
        total, times, unreach, _ = _run_model(f, self.demands[model], model, dead, self.seed, self.qps, self.eff[model],
                                               self.channels)
        self.routes += 1
        return np.asarray(times, np.float64), float(unreach), total

    def link_color(self, hash_exact: bool = False) -> np.ndarray:
        """Codes of (tier, capacity, healthy load both ways) per physical link.

        Loads of the fluid-type models always refine the classes; the
        roce-hash loads only with ``hash_exact`` (they differ link by link, so
        at scale almost every link becomes its own class).
        """
        c = self.ctx
        cols = [c.phys_tier, c.phys_gbps]
        for m in self.models:
            if m == "roce-hash" and not hash_exact and len(self.models) > 1:
                continue
            ld = self.healthy_load[m]
            cols += [np.round(ld[0::2], 6), np.round(ld[1::2], 6)]
        return _codes(*cols)

    def healthy_completion(self, model: str) -> dict:
        return {self.ctx.job_names[self.jmap[j]]: float(t) for j, t in enumerate(self.healthy[model])}

    def impact(self, links: np.ndarray, down: np.ndarray) -> dict:
        """Slowdown per job per model, unreachable Gb/s and affected jobs for failed physical links."""
        f = self.ctx.fabric
        dead = np.zeros(f.n_links, bool)
        dead[2 * links] = True
        dead[2 * links + 1] = True
        lost = set(int(x) for x in np.unique(self.ctx.ep_job[down]) if x >= 0) if down.size else set()
        out = {"slowdown": {}, "unreachable_gbps": 0.0, "jobs": set()}
        # A failure that removes no loaded link and no endpoint of a job changes no
        # routing decision of any model (an unloaded link is on no flow's
        # equal-cost paths), so the healthy answer is exact: no need to route.
        loaded = any(bool((self.healthy_load[m][dead] > 0).any()) for m in self.models)
        nothing = not loaded and not bool((self.ctx.ep_job[down] >= 0).any()) if down.size else not loaded
        self.skipped += int(nothing and (links.size > 0 or down.size > 0))
        for m in self.models:
            if nothing:  # the healthy fabric: no need to route again
                times, unreach = self.healthy[m], self.healthy_unreach[m]
            else:
                times, unreach, _ = self._times(m, dead)
            sl = {}
            for j in range(self.jmap.shape[0]):
                gj = int(self.jmap[j])
                name = self.ctx.job_names[gj]
                h = self.healthy[m][j]
                if not math.isfinite(h):  # cannot run even on the healthy fabric
                    sl[name] = None
                    continue
                if gj in lost or not math.isfinite(times[j]):
                    sl[name] = None
                    out["jobs"].add(gj)
                    continue
                x = float(times[j] / h) if h > 0 else 1.0
                sl[name] = x
                if abs(x - 1.0) > 1e-9:
                    out["jobs"].add(gj)
            out["slowdown"][m] = sl
            out["unreachable_gbps"] = max(out["unreachable_gbps"], unreach)
        return out

    def summary(self) -> dict:
        return {"routed": True, "models": list(self.models), "seed": self.seed,
                # hashing's channels and queue pairs per channel (null when no hashing model is routed)
                "channels": self.channels if "roce-hash" in self.models else None,
                "qps_per_channel": self.qps if "roce-hash" in self.models else None,
                "wire_efficiency": dict(self.eff),
                "route_calls": self.routes, "failures_not_routed_no_load": self.skipped,
                "healthy_completion_s": {m: self.healthy_completion(m) for m in self.models}}


# --- serving deployments under failures --------------------------------------------------------
class ServingImpact:
    """What a failure does to the serving deployments: replicas lost per pool, and the request rate each
    deployment carries before a link or scale-up port saturates after it.

    A replica is lost when any of its accelerators is down or cut off (a NIC, leaf or rack power feed);
    an agent host cut off sends nothing (its flows are left out; ``agent_hosts_down`` counts them).
    The requests then spread over the replicas left (:func:`topo.traffic.serving.serving_traffic` with
    those rows); a deployment whose prefill, decode or colocated pool has none left serves nothing.
    The saturating rate is the stated rate / the highest utilisation of the deployment's own flows
    (alone, as ``topo serve`` rates a deployment), routed under ideal ECMP (fluid, the transport's wire
    efficiency) on the links left, a scale-up port at its domain's bandwidth, (S - 1) / S of it in a
    domain that lost one of its S scale-up switches. Demand left without a path counts as not served
    (rate 0). ``serves_stated_rate``: the saturating rate is at least ``load.requests_per_s``. A
    failure that removes no link the serving traffic loads and no serving accelerator, and hits no
    domain holding one, is answered with the healthy figures without routing.
    """

    def __init__(self, ctx: "_Ctx", replicas: dict, placement_info: dict):
        from topo.model.spec import wire_efficiency
        from topo.routing.engine import route
        from topo.traffic.serving import serving_traffic
        self.ctx = ctx
        f = ctx.fabric
        self.deps = list(ctx.cluster.file.serving.deployments)
        self.reps = {k: np.asarray(v, np.int64) for k, v in replicas.items()}
        self.info = placement_info
        self.eff = wire_efficiency(ctx.cluster)
        from topo.traffic.serving import agent_hosts
        sv = ctx.cluster.file.serving
        self.hosts = {d.name: np.concatenate([agent_hosts(ctx.cluster, f, t) for t in sv.agent_tiers
                                              if d.name in t.deployments] or [np.zeros(0, np.int64)])
                      for d in self.deps}
        # per endpoint: the serving pool it belongs to (-1 none), for the symmetry classes
        self.pool_names = sorted(self.reps)
        self.ep_pool = np.full(f.n_endpoints, -1, np.int64)
        for i, key in enumerate(self.pool_names):
            self.ep_pool[self.reps[key].ravel()] = i
        st = serving_traffic(ctx.cluster, f, ctx.placement, replicas=self.reps)
        self.load = route(f, st.demands, "fluid", efficiency=self.eff).link_gbps_load
        self.healthy = {d.name: self._deployment(k, d, self.reps, np.zeros(f.n_links, bool), -1)
                        for k, d in enumerate(self.deps)}

    def _deployment(self, k: int, dep, reps: dict, dead: np.ndarray, dom: int, downm=None) -> dict:
        """Saturating rate (fluid) of deployment ``k`` with the replicas ``reps`` on the links not ``dead``;
        flows of an endpoint in ``downm`` (an agent host cut off) are left out."""
        from topo.routing.engine import route
        from topo.traffic.serving import serving_traffic
        f = self.ctx.fabric
        st = serving_traffic(self.ctx.cluster, f, self.ctx.placement, replicas=reps)
        d = st.demands
        keep = d.job == k
        if downm is not None:
            keep &= ~downm[d.src] & ~downm[d.dst]
        sel = d.select(keep)
        r = route(f, sel, "fluid", efficiency=self.eff, failed_links=dead)
        cap = np.where(dead, 0.0, f.link_gbps)
        u = np.where(cap > 0, r.link_gbps_load / np.where(cap > 0, cap, 1.0), 0.0)
        mu = float(u.max(initial=0.0))
        ed = np.asarray(f.ep_domain)
        ok = ed >= 0
        su = 0.0
        if ok.any():
            dcap = np.asarray(f.domain_gbps, np.float64).copy()
            if dom >= 0:
                sw = float(self.ctx.su_switches[dom])
                dcap[dom] *= (sw - 1.0) / sw if sw > 0 else 1.0
            per = np.maximum(r.scaleup_sent_gbps, r.scaleup_recv_gbps)[ok]
            c = dcap[ed[ok]]
            su = float(np.where(c > 0, per / np.where(c > 0, c, 1.0), np.where(per > 0, np.inf, 0.0)).max(initial=0.0))
        worst = max(mu, su)
        rate = float(dep.load.requests_per_s)
        if r.unreachable_gbps > 0:
            sat, by = 0.0, "unreachable"
        elif worst <= 0:
            sat, by = None, None      # nothing loaded: no limit from the network
        else:
            sat = rate / worst
            by = "scale-up" if su >= mu else f.link_label(int(np.argmax(u)))
        return {"saturating_requests_per_s": sat, "limited_by": by,
                "unreachable_gbps": float(r.unreachable_gbps)}

    def impact(self, links: np.ndarray, down: np.ndarray, dom: int) -> dict:
        """Per deployment: replicas lost per pool, the saturating rate after the failure and whether it
        still carries its stated rate."""
        f = self.ctx.fabric
        dead = np.zeros(f.n_links, bool)
        dead[2 * links] = True
        dead[2 * links + 1] = True
        downm = np.zeros(f.n_endpoints, bool)
        downm[down[down < f.n_endpoints]] = True
        ed = np.asarray(f.ep_domain)
        out = {}
        for k, d in enumerate(self.deps):
            keys = [key for key in self.pool_names if key[0] == d.name]
            lost = {key[1]: int(downm[self.reps[key]].any(axis=1).sum()) for key in keys}
            mine = np.concatenate([self.reps[key].ravel() for key in keys])
            touched = bool(downm[mine].any()) or (dom >= 0 and bool((ed[mine] == dom).any()))
            rate = float(d.load.requests_per_s)
            row = {"replicas_lost": lost, "replicas": {key[1]: int(self.reps[key].shape[0]) for key in keys},
                   "agent_hosts_down": int(downm[self.hosts[d.name]].sum()) if self.hosts[d.name].size else 0}
            if any(lost[key[1]] == self.reps[key].shape[0] for key in keys):
                res = {"saturating_requests_per_s": 0.0, "limited_by": "no replica left", "unreachable_gbps": 0.0}
            elif not touched and not bool((self.load[dead] > 0).any()):
                res = self.healthy[d.name]
            else:
                reps = dict(self.reps)
                for key in keys:
                    reps[key] = self.reps[key][~downm[self.reps[key]].any(axis=1)]
                res = self._deployment(k, d, reps, dead, dom, downm)
            sat = res["saturating_requests_per_s"]
            row.update(res, serves_stated_rate=bool(sat is None or sat >= rate * (1 - 1e-9)))
            out[d.name] = row
        return out

    def summary(self) -> dict:
        """The deployments on the healthy fabric and where their replicas came from."""
        return {"placement": self.info, "models": ["fluid"], "wire_efficiency": self.eff,
                "deployments": {d.name: {"requests_per_s": float(d.load.requests_per_s),
                                         "replicas": {key[1]: int(self.reps[key].shape[0])
                                                      for key in self.pool_names if key[0] == d.name},
                                         **self.healthy[d.name]} for d in self.deps}}


def _serving_context(ctx: "_Ctx", replicas: Optional[dict], link_color, *, seed: int, time_limit=None):
    """Puts a :class:`ServingImpact` in ``ctx.aux``, the serving pools in the endpoint colours and the
    serving traffic's healthy loads in the link colours (so that a symmetry class holds only failures
    that do the same to the deployments); returns the link colours."""
    cl = ctx.cluster
    if cl is None or not cl.file.serving.deployments:
        raise SpecError([("serving", "the cluster file states no serving deployments")])
    if replicas is None:
        from topo.solve.serving_place import place_serving
        res = place_serving(cl, ctx.fabric, ctx.placement, seed=seed, time_limit=time_limit, workers=1)
        replicas = res["assignment"]
        info = {"method": "cpsat", "status": res["status"], "objective": res["objective"], "bound": res["bound"]}
    else:
        info = {"method": "given"}
    imp = ServingImpact(ctx, replicas, info)
    ctx.aux["serving"] = imp
    ctx.aux["ep_colour"] = (ctx.ep_job + 1) * (len(imp.pool_names) + 1) + (imp.ep_pool + 1)
    base = _codes(ctx.phys_tier, ctx.phys_gbps) if link_color is None else link_color
    return _codes(base, np.round(imp.load[0::2], 6), np.round(imp.load[1::2], 6))


# --- entry point ------------------------------------------------------------------------------
def analyze_failures(cluster, fabric: Optional[Fabric] = None, placement=None, *, single: bool = True,
                     k=None, samples: int = 200, seed: Optional[int] = None, group: bool = True,
                     traffic: Optional[bool] = None, kinds=KINDS, scaleup_switches=None,
                     workers: int = 1, hash_exact: bool = False, executor=None, serving: Optional[bool] = None,
                     serving_replicas: Optional[dict] = None, time_limit: Optional[float] = None) -> FailureResult:
    """Failure analysis of a cluster.

    Parameters
    ----------
    cluster : Cluster (from :func:`topo.model.spec.load`)
    fabric : the built fabric (built from the cluster when None)
    placement : {job: endpoint ids} (e.g. a plan's ``placement.assignment``);
        None -> :func:`resolve_placement`.
    single : run the single-failure sweep (grouped by symmetry, see module doc)
    k : None, an int, or an iterable of ints (2..4 typical): k-failure analysis
    samples, seed : k-set sampling (seed defaults to the cluster's goals.seed)
    traffic : route the jobs' traffic for every failure; None -> when there are jobs
        and the fabric has at most ``AUTO_TRAFFIC_MAX_LINKS`` directed links
    group : group failures by symmetry class (see the module docstring)
    hash_exact : let healthy roce-hash loads refine the classes too (exact for
        roce-hash, but at scale nearly every link becomes its own class)
    workers : processes for the single-failure sweep (forked; results identical)
    executor : a ``concurrent.futures.Executor`` from :func:`topo.study.executor.open_executor`
        (e.g. a running Dask cluster's, ``open_executor(scheduler="tcp://host:8786")``): the routed
        single-failure classes run on it as tasks, each worker rebuilding the fabric from the
        cluster file (a fabric the file does not build is refused); results identical to a
        local run for the same seed. Ignored when no traffic is routed.
    serving : count the serving deployments (``serving:`` in the cluster file) in every single failure:
        replicas lost and the saturating request rate after it (:class:`ServingImpact`); None -> when
        the file states deployments. Their replicas: ``serving_replicas`` (``{(deployment, role):
        [replicas, ranks]}``), else placed by CP-SAT beside the jobs
        (:func:`topo.solve.serving_place.place_serving`, ``time_limit`` and ``seed`` its own).
    """
    import time
    t0 = time.perf_counter()
    if fabric is None:
        from topo.model.fabric import build
        fabric = build(cluster)
    if seed is None:
        seed = cluster.file.goals.seed if cluster is not None else 0
    if samples < 1:
        raise SpecError([("samples", f"must be at least 1 (found {samples})")])
    ctx = _context(cluster, fabric, placement, scaleup_switches)
    link_color = None
    if traffic is None:
        traffic = bool(ctx.job_names) and fabric.n_links <= AUTO_TRAFFIC_MAX_LINKS and _routing_available()
        if ctx.job_names and fabric.n_links > AUTO_TRAFFIC_MAX_LINKS:
            ctx.placement_note += (f"; traffic not routed automatically above {AUTO_TRAFFIC_MAX_LINKS:,} links "
                                   "(pass traffic=True / --traffic)")
    if traffic:
        ctx.traffic = Traffic(ctx, seed=seed)
        link_color = ctx.traffic.link_color(hash_exact)
    sv_summary = None
    if serving is None:
        serving = cluster is not None and bool(cluster.file.serving.deployments)
    if serving and executor is not None and traffic and single:
        raise SpecError([("executor", "serving deployments are counted in a local run only (the executor's "
                                      "workers rebuild the fabric and jobs, not the serving replicas); run "
                                      "locally or without serving (serving=False, --no-serving)")])
    if serving:
        link_color = _serving_context(ctx, serving_replicas, link_color, seed=seed, time_limit=time_limit)
        sv_summary = ctx.aux["serving"].summary()
    rows, members = ([], [])
    if single:
        rows, members = single_failures(ctx, group=group, kinds=kinds, link_color=link_color, workers=workers,
                                        executor=executor)
    kres = {}
    if k is not None:
        ks = [k] if isinstance(k, int) else list(k)
        for kk in ks:
            r = k_failures(ctx, int(kk), samples, seed, cluster.file.failure_rates if cluster is not None else None)
            r.pop("_scores")
            kres[str(kk)] = r
    exp = expected_loss(ctx, cluster.file.failure_rates) if cluster is not None else {}
    tr = ctx.traffic.summary() if ctx.traffic is not None else {"routed": False}
    return FailureResult(cluster=cluster.name if cluster is not None else fabric.meta.get("cluster_name", ""),
                         placement_note=ctx.placement_note, grouped=bool(group and fabric.family != "custom"),
                         single=tuple(rows), members=tuple(members), k=kres, expected_loss=exp, traffic=tr,
                         seconds=time.perf_counter() - t0, serving=sv_summary)


def _routing_available() -> bool:
    try:
        from topo.routing import engine as routing  # noqa: F401
        from topo.traffic import demand as traffic
    except ImportError:
        return False
    return hasattr(routing, "route") and hasattr(traffic, "job_demands")
