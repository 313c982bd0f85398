"""Random tiny placement instances (pins, forbids, busy nodes, tight power), seeded, for the
exhaustive placement tests."""
from __future__ import annotations

import numpy as np

OFFSET = 10_000


def _sw(radix):
    return {"radix": radix, "port_gbps": 400, "power_w": 0, "cost_usd": 0}


def _cluster(nodes_per_rack, n_racks, limit_kw, scaleup, jobs, busy):
    """Servers of 2 accelerators (2 kW busy, 0.5 kW idle); leaves of 2 servers, pods of 2 leaves."""
    return {
        "version": 1, "name": "tiny",
        "node_types": [{"name": "g", "accelerator": "H100", "accelerators": 2, "nics": 2, "nic_gbps": 400,
                        "power_busy_kw": 2.0, "power_idle_kw": 0.5, "scaleup": {"size": scaleup}}],
        "racks": [{"name": "r", "count": n_racks, "nodes": {"g": nodes_per_rack}, "power_limit_kw": limit_kw}],
        "fabric": {"family": "clos", "tiers": [{"switch": _sw(8)}, {"switch": _sw(4)}, {"switch": _sw(8)}]},
        "jobs": list(jobs), "busy_nodes": list(busy),
        "goals": {"time_limit_s": 2, "seed": 0, "workers": 1},
    }


def generate(seed):
    """A tiny cluster (8 or 12 servers, 2 or 3 pods) with pins, forbids, busy nodes, tight power."""
    rng = np.random.default_rng(OFFSET + seed)
    n_srv = int(rng.choice([8, 8, 12]))
    scaleup = int(rng.choice([2, 2, 4, 8]))
    npr_choices = {8: [1, 2, 2, 4], 12: [1, 2, 3, 4]}[n_srv]
    npr_choices = [x for x in npr_choices if x % max(1, scaleup // 2) == 0]  # racks hold whole domains
    npr = int(rng.choice(npr_choices))
    n_racks = n_srv // npr
    limit = float(rng.choice([100.0, 100.0, 0.5 * npr + 1.6, 0.5 * npr + 1.6 + 1.5, 0.5 * npr + 3.1 + 1.5]))
    n_jobs = int(rng.integers(1, 6))
    jobs = []
    for k in range(n_jobs):
        size = int(rng.choice([2, 4, 6, 8] if n_jobs < 3 else [2, 4, 6]))
        tp = int(rng.choice({2: [1, 2], 4: [1, 2, 4], 8: [1, 2, 4, 8]}[scaleup]))
        while size % tp:
            tp //= 2
        job = {"name": f"j{k}", "accelerators": size, "tp": tp, "priority": int(rng.integers(0, 3)),
               "collectives": [{"op": "allreduce", "group": "dp", "bytes": f"{int(rng.integers(1, 9))}GiB"}]}
        u = rng.random()
        if u < 0.25:
            job["pin_racks"] = [f"rack{r:03d}" for r in
                                sorted(rng.choice(n_racks, size=max(1, n_racks // 2), replace=False))]
        elif u < 0.4:
            job["forbid_racks"] = [f"rack{r:03d}" for r in
                                   sorted(rng.choice(n_racks, size=max(1, n_racks // 4), replace=False))]
        elif u < 0.55:
            job["forbid_pods"] = [int(rng.integers(0, 2))]
        elif u < 0.65:
            job["pin_pods"] = [int(rng.integers(0, 2))]
        jobs.append(job)
    busy = [f"n{s:04d}" for s in sorted(rng.choice(n_srv, size=int(rng.integers(0, 4)), replace=False))]
    return _cluster(npr, n_racks, limit, scaleup, jobs, busy)
