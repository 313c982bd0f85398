"""The in-order placement in one pass over the free endpoints gives, array for array, what the
per-job scan of every endpoint gave; so does the admission of a queue larger than the cluster.

The reference functions below are the earlier implementations, kept as the oracle."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import cluster_dict
from topo.core.errors import SpecError


def _old_in_order_placement(cluster, fabric):
    from topo.traffic.demand import free_accelerators
    free = free_accelerators(cluster, fabric)
    out, errs = {}, []
    jobs = cluster.file.jobs
    for i, j in enumerate(jobs):
        if not j.nodes:
            continue
        try:
            srv = fabric.server_ids(j.nodes)
        except KeyError as e:
            errs.append((f"jobs[{i}].nodes", f"unknown node {e.args[0]!r}"))
            continue
        if np.unique(srv).size != srv.size:
            errs.append((f"jobs[{i}].nodes", "lists a node more than once"))
            continue
        order = np.argsort(srv, kind="stable")
        cand = np.flatnonzero(np.isin(fabric.ep_server, srv) & free)
        listed = order[np.searchsorted(srv[order], fabric.ep_server[cand])]
        rank_key = listed.astype(np.int64) * 65536 + fabric.ep_local[cand]
        cand = cand[np.argsort(rank_key, kind="stable")]
        if cand.size < j.accelerators:
            errs.append((f"jobs[{i}].nodes", f"the listed nodes have {cand.size} free accelerators; the job needs {j.accelerators}"))
            continue
        take = cand[: j.accelerators]
        free[take] = False
        out[j.name] = take.astype(np.int64)
    for i, j in enumerate(jobs):
        if j.nodes:
            continue
        cand = np.flatnonzero(free)
        if cand.size < j.accelerators:
            errs.append((f"jobs[{i}].accelerators", f"needs {j.accelerators} accelerators; only {cand.size} are free after the jobs before it"))
            continue
        take = cand[: j.accelerators]
        free[take] = False
        out[j.name] = take.astype(np.int64)
    if errs:
        raise SpecError(errs)
    return {j.name: out[j.name] for j in jobs if j.name in out}


def _old_fit_in_order(cluster, fabric):
    from topo.traffic.demand import unplaced_jobs
    jobs = list(cluster.file.jobs)
    try:
        return _old_in_order_placement(cluster, fabric), {}
    except SpecError as e:
        first = e
    for j in jobs:
        if j.nodes:
            try:
                fabric.server_ids(j.nodes)
            except (KeyError, ValueError):
                raise first from None
    keep, placed = [], {}
    for i in sorted(range(len(jobs)), key=lambda k: (-jobs[k].priority, k)):
        trial = sorted(keep + [i])
        sub = cluster.model_copy(update={"file": cluster.file.model_copy(update={"jobs": [jobs[k] for k in trial]})})
        try:
            placed = _old_in_order_placement(sub, fabric)
        except SpecError:
            continue
        keep = trial
    reasons = {j.name: f"its nodes (jobs[{i}].nodes) have too few free accelerators"
               for i, j in enumerate(jobs) if j.nodes and i not in keep}
    return placed, unplaced_jobs(cluster, fabric, placed, reasons)


def _cluster(seed, overfull):
    """A seeded cluster of 8-GPU nodes (some busy, two node types with 8 and 4 GPUs) with jobs
    that name their nodes (in shuffled order, some with too few free GPUs, duplicates and unknown
    names) or not; ``overfull`` asks more than the free GPUs."""
    from topo.model.fabric import build
    from topo.model.spec import from_dict
    rng = np.random.default_rng(seed)
    d = cluster_dict(n_racks=int(rng.integers(3, 7)), nodes_per_rack=int(rng.integers(2, 4)))
    small = dict(d["node_types"][0], name="gpu4", accelerators=4, nics=4, scaleup={"size": 4})
    d["node_types"].append(small)
    d["racks"].append({"name": "s", "count": 2, "nodes": {"gpu4": 2}, "power_limit_kw": 100})
    f0 = build(from_dict(d))
    n_srv = f0.n_servers
    names = [f0.server_name(i) for i in range(n_srv)]
    busy = sorted(rng.choice(n_srv, size=int(rng.integers(0, n_srv // 3 + 1)), replace=False).tolist())
    d["busy_nodes"] = [names[i] for i in busy]
    free_gpus = int(np.asarray(f0.ep_is_accel).sum()) - 8 * len(busy)
    budget = free_gpus * (1.6 if overfull else 0.8)
    jobs, total = [], 0
    while total < budget and len(jobs) < 12:
        k = len(jobs)
        job = {"name": f"j{k:02d}", "tp": 1, "priority": int(rng.integers(0, 3)),
               "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1GiB"}]}
        if rng.random() < 0.35:
            nodes = [names[i] for i in rng.choice(n_srv, size=int(rng.integers(1, 4)), replace=False)]
            odd = rng.random()
            if odd < 0.06:
                nodes.append(nodes[0])          # listed twice
            elif odd < 0.1:
                nodes.append("x9999")           # unknown
            job["nodes"] = nodes
            job["accelerators"] = int(rng.integers(1, 8 * len(nodes) + 1))
        else:
            job["accelerators"] = int(rng.integers(1, 40))
        total += job["accelerators"]
        jobs.append(job)
    d["jobs"] = jobs
    c = from_dict(d)
    return c, build(c)


def _same(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def _outcome(fn, c, f):
    try:
        return fn(c, f), None
    except SpecError as e:
        return None, list(e.errors)


@pytest.mark.parametrize("seed", range(40))
def test_in_order_placement_equals_the_per_job_scan(seed):
    from topo.traffic.demand import fit_in_order, in_order_placement
    c, f = _cluster(seed, overfull=seed % 2 == 1)
    new, new_err = _outcome(in_order_placement, c, f)
    old, old_err = _outcome(_old_in_order_placement, c, f)
    assert new_err == old_err
    if old is not None:
        _same(new, old)
    (new, new_err), (old, old_err) = _outcome(fit_in_order, c, f), _outcome(_old_fit_in_order, c, f)
    assert new_err == old_err
    if old is not None:
        _same(new[0], old[0])
        assert new[1] == old[1]


def test_the_seeded_clusters_cover_every_case():
    """The cases above include named jobs, refusals of each kind, and overfull queues with
    and without a job left out."""
    from topo.traffic.demand import fit_in_order
    kinds, left_out, named = set(), 0, 0
    for seed in range(40):
        c, f = _cluster(seed, overfull=seed % 2 == 1)
        named += sum(bool(j.nodes) for j in c.file.jobs)
        _, err = _outcome(_old_in_order_placement, c, f)
        for _, msg in err or []:
            kinds.add(msg.split(" ")[1] if msg.startswith("the listed") else msg.split(" ")[0])
        fit, _ = _outcome(fit_in_order, c, f)
        left_out += bool(fit and fit[1])
    assert named >= 20 and left_out >= 10
    assert {"listed", "needs", "lists", "unknown"} <= kinds, kinds
