"""The exhaustive placement oracle, written from the README's objective and constraints (not from
topo.solve.placement): whole servers, whole free scale-up domains for jobs whose TP is at least the
domain size, busy nodes, rack power, pins and forbids of racks and pods, lexicographic priority
penalties. Used by tests/test_place_exhaustive.py and tests/test_place.py."""
from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np


def oracle(c, f, rule=None):
    """Minimum objective over every placement, by enumeration (README's objective and rules).
    ``rule``: a failure-domain rule {level, mode, max_share | max_domains} every placed job keeps."""
    jobs = c.file.jobs
    n_srv = f.n_servers
    aps, ds = 2, int(f.domain_size[0])
    spd = max(1, ds // aps)
    first_ep = np.searchsorted(f.ep_server, np.arange(n_srv))
    leaf = f.ep_leaf()[first_ep]
    dom = np.asarray(f.ep_domain)[first_ep]
    leaf = leaf[[int(np.flatnonzero(dom == dom[s])[0]) for s in range(n_srv)]]  # a unit's leaf: its domain's
    pod = f.node_pod[leaf]
    rack = f.server_rack
    busy = np.zeros(n_srv, bool)
    if c.file.busy_nodes:
        busy[f.server_ids(c.file.busy_nodes)] = True
    kw0 = np.bincount(rack, weights=np.where(busy, f.server_busy_kw, f.server_idle_kw), minlength=f.n_racks)
    delta = f.server_busy_kw - f.server_idle_kw
    L, P = len(set(leaf.tolist())), len(set(pod.tolist()))
    R = len(set(rack.tolist()))
    raw = []
    for j in jobs:
        dp = j.accelerators // (j.tp * j.pp * j.cp)
        w = Fraction(0)
        for col in j.collectives:
            g = {"dp": dp, "tp": j.tp, "pp": j.pp}[col.group]
            if g > 1 and not (col.group == "tp" and j.tp <= ds):
                w += Fraction(2 * (g - 1), g) * Fraction(col.bytes) * Fraction(j.accelerators, g)
        raw.append(w)
    W = [0 if w <= 0 else max(1, math.floor(100 * w / max(raw) + Fraction(1, 2))) for w in raw]
    big = 1 + sum(Wj * ((L - 1) + 3 * (P - 1)) + R for Wj in W)
    prios = sorted({j.priority for j in jobs})
    need, whole, chunk, pen = [], [], [], []
    for j in jobs:
        if j.tp >= ds and ds > 1:  # whole domains
            u = -(-j.accelerators // ds)
            need.append(u * spd)
            whole.append(True)
            chunk.append(spd)
        else:  # whole servers, a TP group's servers inside one domain
            k = min(-(-j.tp // aps), spd)
            u = -(-j.accelerators // (k * aps))
            need.append(u * k)
            whole.append(False)
            chunk.append(k)
        pen.append((u, prios.index(j.priority)))
    per_rank = [sum(u for u, r in pen if r == q) for q in range(len(prios))]
    lvl = [big]
    for q in range(1, len(prios)):
        lvl.append(lvl[-1] * (sum(per_rank[:q]) + 1))
    if sum(lvl[r] * u for u, r in pen) > 2 ** 50:
        lvl = [big * 2 ** min(q, 10) for q in range(len(prios))]
    pen = [lvl[r] * u for u, r in pen]
    names = {f.rack_name(i): i for i in range(f.n_racks)}
    allowed = []
    for j in jobs:
        ok = ~busy
        if j.pin_racks:
            ok &= np.isin(rack, [names[r] for r in j.pin_racks])
        if j.forbid_racks:
            ok &= ~np.isin(rack, [names[r] for r in j.forbid_racks])
        if j.pin_pods:
            ok &= np.isin(pod, j.pin_pods)
        if j.forbid_pods:
            ok &= ~np.isin(pod, j.forbid_pods)
        allowed.append(ok)
    dom_busy = np.zeros(n_srv, bool)
    for s in np.flatnonzero(busy):
        dom_busy |= dom == dom[s]
    best = math.inf

    def rec(i, free, kw, acc):
        nonlocal best
        if acc >= best:
            return
        if i == len(jobs):
            best = acc
            return
        rec(i + 1, free, kw, acc + pen[i])  # job i unplaced
        cand = [s for s in range(n_srv) if free[s] and allowed[i][s]]
        if whole[i]:
            cand = [s for s in cand if not dom_busy[s]]
        for combo in itertools.combinations(cand, need[i]):
            combo = list(combo)
            if chunk[i] > 1:
                ds_ = dom[combo].tolist()
                if any(ds_.count(d) % chunk[i] for d in ds_):
                    continue
            k2 = kw.copy()
            np.add.at(k2, rack[combo], delta[combo])
            if (k2 > f.rack_limit_kw + 1e-9)[np.unique(rack[combo])].any():
                continue
            if rule is not None:
                _, cnt = np.unique({"rack": rack, "leaf": leaf, "pod": pod}[rule["level"]][combo],
                                   return_counts=True)
                if rule["mode"] == "spread":
                    if cnt.max() * aps > math.floor(Fraction(str(rule["max_share"])) * jobs[i].accelerators):
                        continue
                elif cnt.size > rule["max_domains"]:
                    continue
            cost = W[i] * ((len(set(leaf[combo])) - 1) + 3 * (len(set(pod[combo])) - 1)) + len(set(rack[combo]))
            fr = free.copy()
            fr[combo] = False
            rec(i + 1, fr, k2, acc + cost)

    rec(0, ~busy, kw0, 0)
    return best
