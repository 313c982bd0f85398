"""The per-pattern and per-size code of topo.routing.collectives, the per-value link formatting of
topo.pipeline and the top-k selection of topo.routing.engine as they were before they were
vectorised: the references the tests compare the vectorised code with, result for result."""
from __future__ import annotations

import math

import numpy as np

from topo.routing.collectives import NCCL_BUS_FACTOR, path_latency_s


def min_maxmin_rate(paths, capacity) -> float:
    paths = np.asarray(paths, np.int64)
    flat = paths[paths >= 0]
    if flat.size == 0:
        return math.inf
    used, cnt = np.unique(flat, return_counts=True)
    return float((np.asarray(capacity, np.float64)[used] / cnt).min())


def compute(pats, src, dst):
    """_Patterns._compute as it was: every pattern routed, the scale-up counts over all endpoints."""
    from topo.routing.engine import hashed_paths, sparse_loads
    from topo.traffic.demand import Demands
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    f = pats.fabric
    keep = src != dst
    src, dst = src[keep], dst[keep]
    if src.size == 0:
        return 0.0, math.inf
    n = src.size
    d = Demands(src, dst, np.ones(n), np.zeros(n, np.int32), np.ones(n))
    dom = f.ep_domain
    same = (dom[src] == dom[dst]) & (dom[src] >= 0)
    cap = pats.cap
    hashed = pats.model == "roce-hash"
    _, qp_path, unreach = hashed_paths(f, d, failed_links=pats.dead, seed=pats.seed,
                                       qps=pats.qps if hashed else 1, channels=pats.channels if hashed else 1)
    if (unreach[~same] > 0).any():
        return math.inf, 0.0
    lat = path_latency_s(f, qp_path, pats.node_lat, pats.link_cost) if qp_path is not None else np.zeros(0)
    alpha = pats.overhead_s + (float(lat.max()) if lat.size else 0.0)
    rate = math.inf
    if (~same).any():
        if hashed:
            rate = min_maxmin_rate(qp_path, cap) * pats.channels * pats.qps
        else:
            ids, load, unreach = sparse_loads(f, d, pats.model, failed_links=pats.dead, efficiency=1.0, kept={})
            if (unreach[~same] > 0).any():
                return math.inf, 0.0
            used = load > 0
            ids, load = ids[used], load[used]
            u = float((load / np.where(cap[ids] > 0, cap[ids], 1e-300)).max()) if used.any() else 0.0
            rate = 1.0 / u if u > 0 else math.inf
    if same.any():
        E = f.n_endpoints
        s_cnt = np.bincount(src[same], minlength=E)
        r_cnt = np.bincount(dst[same], minlength=E)
        busy = np.maximum(s_cnt, r_cnt)
        ids = np.flatnonzero(busy > 0)
        dg = f.domain_gbps[dom[ids]]
        rate = min(rate, float((dg / busy[ids]).min()))
    return alpha, rate * pats.eff * 1e9 / 8.0


def _busbw(op, n, S, t):
    if not (t > 0) or not math.isfinite(t):
        return None
    return S / t * NCCL_BUS_FACTOR[op](n) * 8 / 1e9


def sweep(op, n, sizes, scheds, allowed) -> list[dict]:
    out = []
    for S in sizes:
        best = None
        for a, s in scheds.items():
            t, al, be = s.time(float(S))
            key = (t, allowed.index(a))
            if best is None or key < best[0]:
                best = (key, a, t, al, be)
        _, a, t, al, be = best
        out.append({"bytes": float(S), "algorithm": a, "time_s": t, "alpha_s": al, "beta_s": be,
                    "algbw_gbps": S / t * 8 / 1e9 if t > 0 else None, "busbw_gbps": _busbw(op, n, float(S), t)})
    return out


def six_digits(util) -> list:
    bits, inv = np.unique(np.ascontiguousarray(np.nan_to_num(util), np.float64).view(np.int64), return_inverse=True)
    return np.asarray([float(f"{x:.6g}") for x in bits.view(np.float64).tolist()], np.float64)[inv.ravel()].tolist()


def top_k(values, k):
    """topo.routing.engine.top_k as it was: a partition of every value."""
    values = np.asarray(values)
    k = min(int(k), values.shape[0])
    if k <= 0:
        return np.zeros(0, np.int64)
    kth = np.partition(values, values.shape[0] - k)[values.shape[0] - k]
    above = np.flatnonzero(values > kth)
    at = np.flatnonzero(values == kth)[: k - above.size]
    idx = np.concatenate([above, at])
    return idx[np.lexsort((idx, -values[idx]))].astype(np.int64)
