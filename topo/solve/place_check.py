"""Independent checker of a job placement.

Owns the verdict on a placement; shares no code with :mod:`topo.solve.placement` (it
imports nothing from it and recomputes everything from the raw fabric arrays
and the cluster file). It must not repair anything: it only reports.

What it checks
--------------
* every job of the file is placed or reported unplaced (with a known reason),
  never both, and no unknown job appears;
* a placed job holds exactly its number of accelerators, distinct valid
  accelerator endpoints, none on a busy node, none shared with another job,
  and no node shared with another job (nodes are allocated whole);
* scale-up domains: every TP group (TP consecutive ranks) lies in one domain
  when TP <= domain size; a job with TP >= domain size shares none of its
  domains with another job or a busy node;
* rack power: a node holding a job or listed busy draws busy power, every
  other node idle power, ToR leaves count in the rack of their first endpoint;
  no rack holding a placed job is over its limit;
* pins and forbids of racks and pods (a unit's pod is the pod of the first
  leaf of the first accelerator of its scale-up domain);
* failure domains (``goals.failure_domains`` or the rule placement was given): spread, no rack,
  leaf or pod holds more than floor(max_share x N) of a job's N accelerators (the share taken
  exactly as written in decimal); pack, no job spans more than max_domains of them (a leaf is the
  first leaf of the first accelerator of a unit's scale-up domain, as for the objective);
* reserved nodes (held-back spares): no job on one, and each counted busy in rack power;
* the objective, recomputed from its definition (see :mod:`topo.solve.placement`).
"""
from __future__ import annotations


from fractions import Fraction
from types import SimpleNamespace

import numpy as np

KNOWN_REASONS = {"too large", "pinned racks full", "power", "capacity", "fragmentation", "failure domains"}


def _weights(cluster, ds: int) -> list[int]:
    """Traffic weight of every job, 0..100, in exact rationals (rounded half up)."""
    raw = []
    for j in cluster.file.jobs:
        inner = j.tp * j.pp * j.cp
        dp = j.dp if j.dp else max(j.accelerators // inner, 1)
        size = {"tp": j.tp, "pp": j.pp, "cp": j.cp, "ep": j.ep, "dp": dp}
        w = Fraction(0)
        for c in j.collectives:
            g = size[c.group]
            if g < 2:
                continue
            if c.group == "tp" and j.tp <= ds:
                continue  # stays inside the scale-up domain
            if c.op == "allreduce":
                fac = Fraction(2 * g - 2, g)
            elif c.op in ("allgather", "reducescatter", "alltoall"):
                fac = Fraction(g - 1, g)
            else:
                fac = Fraction(1)
            w += fac * Fraction(c.bytes) * j.accelerators / g
        raw.append(w)
    top = max(raw) if raw else 0
    return [0 if w <= 0 else max(1, int((200 * w / top + 1) // 2)) for w in raw]


class _Facts:
    """What the checks read, recomputed from the raw fabric arrays (never from the placement model)."""

    def __init__(self, cluster, f):
        self.f = f
        self.jobs = list(cluster.file.jobs)
        self.names = [j.name for j in self.jobs]
        self.n_ep = n_ep = int(f.n_endpoints)
        self.ep_server = ep_server = np.asarray(f.ep_server)
        self.ep_acc = ep_acc = np.asarray(f.ep_is_accel)
        self.ep_dom = ep_dom = np.asarray(f.ep_domain)
        self.srv_rack = np.asarray(f.server_rack)
        self.n_srv = n_srv = int(self.srv_rack.shape[0])
        self.busy = np.zeros(n_srv, bool)
        if cluster.file.busy_nodes:   # every expression expanded, in one pass
            self.busy[f.server_ids(list(cluster.file.busy_nodes))] = True
        first_link = np.asarray(f.adj)[np.asarray(f.indptr)[:n_ep]]
        leaf_of_ep = np.asarray(f.link_dst)[first_link]
        n_dom = int(np.asarray(f.domain_size).shape[0])
        self.acc_idx = acc_idx = np.flatnonzero(ep_acc)
        dom_first_ep = np.full(n_dom, n_ep, np.int64)
        np.minimum.at(dom_first_ep, ep_dom[acc_idx], acc_idx)
        self.dom_leaf = dom_leaf = leaf_of_ep[np.minimum(dom_first_ep, n_ep - 1)]
        self.dom_pod = dom_pod = np.maximum(np.asarray(f.node_pod)[dom_leaf], 0)
        self.unit_leaf = dom_leaf[np.maximum(ep_dom, 0)]
        self.unit_pod = dom_pod[np.maximum(ep_dom, 0)]
        acc_per_srv = np.bincount(ep_server[acc_idx], minlength=n_srv)
        self.aps = int(acc_per_srv[acc_per_srv > 0].max()) if acc_idx.size else 1
        self.ds = int(np.asarray(f.domain_size)[ep_dom[acc_idx[0]]]) if acc_idx.size else 1
        self.spd = max(1, self.ds // self.aps)
        self.rack_index = {f.rack_name(i): i for i in range(f.n_racks)}
        # filled by _capacity: who holds each endpoint and node, and the placements that can be checked further
        self.owner_ep = np.full(n_ep, -1, np.int64)
        self.owner_srv = np.full(n_srv, -1, np.int64)
        self.used_srv = np.zeros(n_srv, bool)
        self.valid: dict = {}


def check(cluster, fabric, assignment: dict, unplaced: dict, objective=None, *, failure_domains=None,
          reserved=None) -> list[str]:
    """Violations of a placement, as "kind: message" strings (empty when valid).

    ``failure_domains``: the spread/pack rule placement was given (None: the file's
    ``goals.failure_domains``; False: none). ``reserved``: server ids held back (spares)."""
    x = _Facts(cluster, fabric)
    x.reserved = np.zeros(x.n_srv, bool)
    if reserved is not None and len(reserved):
        x.reserved[np.asarray(reserved, np.int64)] = True
    x.busy_file = x.busy.copy()
    x.busy |= x.reserved
    v = _bookkeeping(x.names, assignment, unplaced)
    v += _capacity(x, assignment)
    v += _domains(x)
    v += _rack_power(x, cluster)
    v += _pins(x)
    rule = cluster.file.goals.failure_domains if failure_domains is None else (failure_domains or None)
    if isinstance(rule, dict):
        rule = SimpleNamespace(**{"max_share": None, "max_domains": None, **rule})
    if rule is not None:
        v += _failure_domains(x, rule)
    if objective is not None and not v:
        v += _objective(x, cluster, unplaced, objective)
    return v


def _bookkeeping(names: list, assignment: dict, unplaced: dict) -> list[str]:
    """Every job placed or reported unplaced (for a known reason), none both, none unknown."""
    v = []
    known = set(names)
    for name in assignment:
        if name not in known:
            v.append(f"unknown job: {name!r} is placed but not in the file")
    for name, why in unplaced.items():
        if name not in known:
            v.append(f"unknown job: {name!r} is reported unplaced but not in the file")
        if name in assignment:
            v.append(f"dropped: {name!r} is both placed and unplaced")
        if why not in KNOWN_REASONS:
            v.append(f"reason: {name!r} unplaced for an unknown reason {why!r}")
    for name in names:
        if name not in assignment and name not in unplaced:
            v.append(f"dropped: job {name!r} is neither placed nor reported unplaced")
    return v


def _capacity(x: _Facts, assignment: dict) -> list[str]:
    """Each placed job: as many distinct accelerators as it needs, on free nodes no other job holds.
    Records the owners and the placements that can be checked further in ``x``."""
    v, f, names = [], x.f, x.names
    for ji, j in enumerate(x.jobs):
        if j.name not in assignment:
            continue
        e = np.asarray(assignment[j.name])
        if e.ndim != 1 or e.dtype.kind not in "iu":
            v.append(f"capacity: {j.name!r} endpoint ids are not a 1-d integer array")
            continue
        if e.size != j.accelerators:
            v.append(f"capacity: {j.name!r} holds {e.size} accelerators, needs {j.accelerators}")
        if e.size and (e.min() < 0 or e.max() >= x.n_ep):
            v.append(f"capacity: {j.name!r} names endpoints outside 0..{x.n_ep - 1}")
            continue
        if np.unique(e).size != e.size:
            v.append(f"capacity: {j.name!r} holds an accelerator twice")
        if not x.ep_acc[e].all():
            v.append(f"capacity: {j.name!r} is placed on an endpoint without an accelerator")
        clash = x.owner_ep[e] >= 0
        if clash.any():
            other = names[int(x.owner_ep[e][clash][0])]
            v.append(f"capacity: {j.name!r} and {other!r} share accelerator {int(e[clash][0])}")
        x.owner_ep[e] = ji
        srv = np.unique(x.ep_server[e])
        if x.reserved[srv].any():
            v.append(f"reserved: {j.name!r} uses reserved spare node {f.server_name(int(srv[x.reserved[srv]][0]))}")
        elif x.busy[srv].any():
            v.append(f"capacity: {j.name!r} uses busy node {f.server_name(int(srv[x.busy[srv]][0]))}")
        sclash = (x.owner_srv[srv] >= 0) & (x.owner_srv[srv] != ji)
        if sclash.any():
            v.append(f"capacity: {j.name!r} and {names[int(x.owner_srv[srv][sclash][0])]!r} share node "
                     f"{f.server_name(int(srv[sclash][0]))}")
        x.owner_srv[srv] = ji
        x.used_srv[srv] = True
        x.valid[ji] = e
    return v


def _domain_members(x: _Facts, doms: np.ndarray) -> np.ndarray:
    """Endpoint ids of the scale-up domains ``doms`` (domain -> endpoints built once per check)."""
    by = getattr(x, "_by_domain", None)
    if by is None:
        order = np.argsort(x.ep_dom, kind="stable")
        keys = x.ep_dom[order]
        by = x._by_domain = (order, keys)
    order, keys = by
    lo, hi = np.searchsorted(keys, doms, "left"), np.searchsorted(keys, doms, "right")
    if lo.size == 0:
        return np.zeros(0, np.int64)
    return np.concatenate([order[a:b] for a, b in zip(lo.tolist(), hi.tolist())])


def _domains(x: _Facts) -> list[str]:
    """TP groups inside one scale-up domain; jobs whose TP spans domains own them whole."""
    v, ds = [], x.ds
    for ji, e in x.valid.items():
        j = x.jobs[ji]
        if j.tp <= ds and e.size % j.tp == 0 and j.tp > 1:
            groups = x.ep_dom[e].reshape(-1, j.tp)
            bad = (groups != groups[:, :1]).any(axis=1)
            if bad.any():
                v.append(f"domain: {j.name!r} TP group {int(np.flatnonzero(bad)[0])} spans scale-up domains")
        if j.tp >= ds and ds > 1:
            doms = np.unique(x.ep_dom[e])
            dmask = _domain_members(x, doms)   # the endpoints of those domains
            others = x.owner_ep[dmask]
            if ((others >= 0) & (others != ji)).any():
                v.append(f"domain: {j.name!r} shares a scale-up domain with another job")
            if x.busy[x.ep_server[dmask]].any():
                v.append(f"domain: {j.name!r} shares a scale-up domain with a busy node")
    return v


def _rack_power(x: _Facts, cluster) -> list[str]:
    """No rack over its limit with a placed job in it (busy and used nodes at busy power, top-of-rack
    leaves counted in their rack)."""
    v, f = [], x.f
    on = x.busy | x.used_srv
    kw = np.bincount(x.srv_rack, weights=np.where(on, f.server_busy_kw, f.server_idle_kw), minlength=f.n_racks)
    if cluster.file.floor.leaf_placement == "tor" and f.family != "custom" and cluster.tiers:
        tier = np.asarray(f.node_tier)
        leaves = np.flatnonzero(tier == 1)
        down_ep = np.asarray(f.link_dst)[np.asarray(f.adj)[np.asarray(f.indptr)[leaves]]]
        down_ep = down_ep[down_ep < x.n_ep]
        watts = cluster.tiers[0].switch.power_w
        np.add.at(kw, x.srv_rack[x.ep_server[down_ep]], watts / 1000.0)
    lim = np.asarray(f.rack_limit_kw)
    over = kw > lim + 1e-6
    for r in np.flatnonzero(over):
        holders = np.unique(x.owner_srv[(x.srv_rack == r) & x.used_srv])
        if holders.size:
            v.append(f"power: {f.rack_name(int(r))} draws {kw[r]:.2f} kW over its {lim[r]:g} kW limit "
                     f"with {x.names[int(holders[0])]!r} placed in it")
    return v


def _pins(x: _Facts) -> list[str]:
    """Pinned and forbidden racks and pods."""
    v, f = [], x.f
    for ji, e in x.valid.items():
        j = x.jobs[ji]
        racks = set(int(r) for r in np.unique(x.srv_rack[x.ep_server[e]]))
        pods = set(int(p) for p in np.unique(x.unit_pod[e]))
        if j.pin_racks:
            allowed = {x.rack_index.get(n, -1) for n in j.pin_racks}
            if racks - allowed:
                v.append(f"pin: {j.name!r} placed outside its pinned racks ({f.rack_name(min(racks - allowed))})")
        if j.forbid_racks:
            bad = racks & {x.rack_index.get(n, -1) for n in j.forbid_racks}
            if bad:
                v.append(f"pin: {j.name!r} placed in forbidden rack {f.rack_name(min(bad))}")
        if j.pin_pods and pods - set(j.pin_pods):
            v.append(f"pin: {j.name!r} placed outside its pinned pods (pod {min(pods - set(j.pin_pods))})")
        if j.forbid_pods and pods & set(j.forbid_pods):
            v.append(f"pin: {j.name!r} placed in forbidden pod {min(pods & set(j.forbid_pods))}")
    return v


def _failure_domains(x: _Facts, rule) -> list[str]:
    """Spread: at most floor(max_share x N) of a job's N accelerators behind one domain; pack: at
    most max_domains domains per job. Domains recomputed per endpoint from the fabric arrays."""
    v = []
    for ji, e in x.valid.items():
        j = x.jobs[ji]
        if rule.level == "rack":
            d = x.srv_rack[x.ep_server[e]]
        elif rule.level == "leaf":
            d = x.unit_leaf[e]
        else:
            d = x.unit_pod[e]
        ids, cnt = np.unique(d, return_counts=True)
        if rule.mode == "spread":
            most = (Fraction(str(rule.max_share)) * j.accelerators).numerator // \
                (Fraction(str(rule.max_share)) * j.accelerators).denominator
            if cnt.size and int(cnt.max()) > most:
                v.append(f"failure domain: {j.name!r} has {int(cnt.max())} accelerators behind one {rule.level} "
                         f"(id {int(ids[int(np.argmax(cnt))])}), more than {most} (max_share {rule.max_share:g})")
        elif ids.size > rule.max_domains:
            v.append(f"failure domain: {j.name!r} spans {ids.size} {rule.level}s, more than max_domains "
                     f"{rule.max_domains}")
    return v


def _objective(x: _Facts, cluster, unplaced: dict, objective) -> list[str]:
    """The reported objective recomputed from the placement as README states it."""
    f, jobs, ds, aps, spd = x.f, x.jobs, x.ds, x.aps, x.spd
    acc_doms = np.unique(x.ep_dom[x.acc_idx])
    L = int(np.unique(x.dom_leaf[acc_doms]).size)
    P = max(int(f.pods), int(x.dom_pod[acc_doms].max()) + 1)
    R = int(np.unique(x.srv_rack[x.ep_server[x.acc_idx]]).size)
    W = _weights(cluster, ds)
    big = 1 + sum(W[i] * ((L - 1) + 3 * (P - 1)) + R for i in range(len(jobs)))
    prios = sorted({j.priority for j in jobs})

    def units_of(j):
        if j.tp >= ds and ds > 1:
            return -(-j.accelerators // ds)
        chunk = min(max(1, -(-j.tp // aps)), spd)
        return -(-j.accelerators // (chunk * aps))
    per_rank = [0] * len(prios)
    for j in jobs:
        per_rank[prios.index(j.priority)] += units_of(j)
    lvl = [big]
    for r in range(1, len(prios)):
        lvl.append(lvl[-1] * (sum(per_rank[:r]) + 1))
    if sum(a * b for a, b in zip(lvl, per_rank)) > 2 ** 50:
        lvl = [big * 2 ** min(r, 10) for r in range(len(prios))]
    total = 0
    for ji, j in enumerate(jobs):
        if ji in x.valid:
            e = x.valid[ji]
            nl = int(np.unique(x.unit_leaf[e]).size)
            npd = int(np.unique(x.unit_pod[e]).size)
            nr = int(np.unique(x.srv_rack[x.ep_server[e]]).size)
            total += W[ji] * ((nl - 1) + 3 * (npd - 1)) + nr
        elif j.name in unplaced:
            total += lvl[prios.index(j.priority)] * units_of(j)
    if int(objective) != total:
        return [f"objective: reported {int(objective)}, recomputed {total}"]
    return []


def assert_valid(cluster, fabric, assignment, unplaced, objective=None) -> None:
    """Raise AssertionError listing the violations, if any."""
    v = check(cluster, fabric, assignment, unplaced, objective)
    if v:
        raise AssertionError("placement check failed:\n  " + "\n  ".join(v))


__all__ = ["check", "assert_valid", "KNOWN_REASONS"]
