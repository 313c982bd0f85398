"""Random small fabrics and demands for the kernel tests (the compiled kernels against their
twins, the structural Clos path against the general kernels)."""
from __future__ import annotations

import numpy as np

from topo.model.fabric import fabric_from_arrays
from topo.traffic.demand import Demands


def pack(name, args):
    """A kernel's arguments given as one flat list in the order of its check function
    (topo.routing.kernels._LAYOUTS[...].names), packed into its state objects (topo.routing.kstate)."""
    from topo.routing import kernels
    lay = kernels._LAYOUTS.get(("_routing", name))
    if lay is None:
        return list(args)
    kw = dict(zip(lay.names, args))
    return [cls(**{n: kw[n] for n in ns}) for cls, ns in lay.parts]


def random_fabric(rng):
    """A small random fabric: Clos-like tiers, dual-homed endpoints, parallel and extra links."""
    leaves = int(rng.integers(2, 6))
    spines = int(rng.integers(1, 5))
    supers = int(rng.integers(0, 3))
    per_leaf = int(rng.integers(1, 4))
    E = leaves * per_leaf
    L0, S0, T0 = E, E + leaves, E + leaves + spines
    lo, hi = [], []
    for e in range(E):
        lo.append(e), hi.append(L0 + e // per_leaf)
        if rng.random() < 0.3:  # dual-homed endpoint
            lo.append(e), hi.append(L0 + int(rng.integers(leaves)))
    for l in range(leaves):
        for s in range(spines):
            for _ in range(int(rng.integers(1, 3))):  # parallel links
                lo.append(L0 + l), hi.append(S0 + s)
    for s in range(spines):
        for t in range(supers):
            if rng.random() < 0.8:
                lo.append(S0 + s), hi.append(T0 + t)
    for _ in range(int(rng.integers(0, 3))):  # custom extra links between random switches
        a, b = rng.choice(np.arange(E, T0 + supers), 2, replace=False)
        lo.append(int(a)), hi.append(int(b))
    tier = np.concatenate([np.zeros(E), np.ones(leaves), np.full(spines, 2), np.full(supers, 3)]).astype(np.int8)
    lo, hi = np.array(lo), np.array(hi)
    swap = tier[lo] > tier[hi]
    lo, hi = np.where(swap, hi, lo), np.where(swap, lo, hi)
    gbps = rng.choice([100.0, 200.0, 400.0], size=lo.shape[0])
    return fabric_from_arrays(E, lo, hi, gbps, tier, family="custom")


def random_case(seed):
    rng = np.random.default_rng(seed)
    f = random_fabric(rng)
    n = int(rng.integers(1, 25))
    src = rng.integers(0, f.n_endpoints, n)
    dst = rng.integers(0, f.n_endpoints, n)
    rate = rng.random(n) * 100
    d = Demands(src, dst, rate * 1e7 * rng.choice([1.0, 2.0], n), np.full(n, -1, np.int32), rate)
    fail = rng.choice(f.n_links, int(rng.integers(0, 4)), replace=False)
    return f, d, fail


def close(a, b):
    """a and b equal to 1e-9 of the larger magnitude."""
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), 1e-300)
    return np.abs(a - b).max(initial=0.0) <= 1e-9 * scale
