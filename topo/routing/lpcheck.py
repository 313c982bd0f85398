"""Independent check of a max-concurrent-flow solution (shares no code with the LP model).

Given per-commodity link flows, it recomputes node balances and link totals
with plain numpy and verifies: flows non-negative, only on the commodity's
allowed links, conservation at switches (out = in), at endpoints (never
transit) out = lambda x sent and in = lambda x received, and
capacity (total flow <= capacity) within a relative tolerance.
"""
from __future__ import annotations

import numpy as np


def check(link_src, link_dst, n_endpoints, capacity, allowed, flows, supplies, lam, tol=1e-6):
    """supplies: per commodity (sent, received) per node. Returns (ok, lambda, reason)."""
    link_src = np.asarray(link_src)
    link_dst = np.asarray(link_dst)
    capacity = np.asarray(capacity, float)
    n_nodes = int(max(link_src.max(initial=0), link_dst.max(initial=0))) + 1
    total = np.zeros(capacity.shape[0])
    if not np.isfinite(lam) or lam < -tol:
        return False, lam, f"lambda {lam} is not a non-negative number"
    E = int(n_endpoints)
    for k, (links, x, (sent, recv)) in enumerate(zip(allowed, flows, supplies)):
        links = np.asarray(links)
        x = np.asarray(x, float)
        if x.shape != links.shape:
            return False, lam, f"commodity {k}: {x.size} flows for {links.size} links"
        sent = np.zeros(n_nodes) + np.pad(np.asarray(sent, float), (0, max(n_nodes - len(sent), 0)))[:n_nodes]
        recv = np.zeros(n_nodes) + np.pad(np.asarray(recv, float), (0, max(n_nodes - len(recv), 0)))[:n_nodes]
        scale = max(float(sent.max(initial=0.0)), float(recv.max(initial=0.0)), 1.0) * max(lam, 1.0)
        if (x < -tol * scale).any():
            return False, lam, f"commodity {k}: negative flow"
        out = np.bincount(link_src[links], weights=x, minlength=n_nodes)
        inn = np.bincount(link_dst[links], weights=x, minlength=n_nodes)
        err_sw = np.abs(out[E:] - inn[E:]).max(initial=0.0)
        err_ep = max(np.abs(out[:E] - lam * sent[:E]).max(initial=0.0), np.abs(inn[:E] - lam * recv[:E]).max(initial=0.0))
        if max(err_sw, err_ep) > tol * scale:
            return False, lam, f"commodity {k}: flow not conserved (error {max(err_sw, err_ep):.3g})"
        np.add.at(total, links, x)
    over = total - capacity
    if (over > tol * np.maximum(capacity, 1.0)).any():
        l = int(np.argmax(over))
        return False, lam, f"link {l} carries {total[l]:.6g} over its capacity {capacity[l]:.6g}"
    return True, float(max(lam, 0.0)), ""
