"""Small fabrics built from raw arrays (a k-ary fat tree, a two-tier Clos) for routing tests."""
from __future__ import annotations

import numpy as np

from topo.model.fabric import fabric_from_arrays

def fat_tree(k: int, gbps=100.0):
    """A k-ary fat tree from raw arrays (hosts, edge, aggregation, core)."""
    h = k // 2
    E = k ** 3 // 4
    edge0, agg0 = E, E + k * h
    core0 = agg0 + k * h
    lo, hi = [np.arange(E)], [edge0 + np.arange(E) // h]
    p, e, a = np.meshgrid(np.arange(k), np.arange(h), np.arange(h), indexing="ij")
    lo.append((edge0 + p * h + e).ravel()), hi.append((agg0 + p * h + a).ravel())
    p, a, c = np.meshgrid(np.arange(k), np.arange(h), np.arange(h), indexing="ij")
    lo.append((agg0 + p * h + a).ravel()), hi.append((core0 + a * h + c).ravel())
    tier = np.concatenate([np.zeros(E), np.ones(k * h), np.full(k * h, 2), np.full(h * h, 3)]).astype(np.int8)
    return fabric_from_arrays(E, np.concatenate(lo), np.concatenate(hi), gbps, tier, family="fat_tree")


def clos(leaves=4, spines=3, per_leaf=3, gbps=100.0):
    E = leaves * per_leaf
    lo = [np.arange(E)]
    hi = [E + np.arange(E) // per_leaf]
    l, s = np.meshgrid(np.arange(leaves), np.arange(spines), indexing="ij")
    lo.append(E + l.ravel()), hi.append(E + leaves + s.ravel())
    tier = np.concatenate([np.zeros(E), np.ones(leaves), np.full(spines, 2)]).astype(np.int8)
    return fabric_from_arrays(E, np.concatenate(lo), np.concatenate(hi), gbps, tier, family="clos")
