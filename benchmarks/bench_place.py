"""Placement at scale: the 131,072-accelerator reference with 1,000 jobs.

The reference cluster (examples/reference-131k.yaml) with its jobs replaced by
1,000 jobs of mixed sizes (8 to 16,384 accelerators, seeded) and 30% of the
nodes busy in a scattered seeded pattern. Measures, in one run: wall time of
topo.solve.placement (optimize), the greedy baseline's figures from the same run, the
traffic that leaves a leaf (crosses the spine) and a pod, objective against the
solver's bound, and peak memory. Prints a table, then one JSON line.

The greedy baseline runs its ranks in each job's own order (DP slowest), as a
block distribution over its node list would; its nodes are also measured with
topo's rank mapping, so the gain of the mapping and the gain of the choice of
nodes show apart. The bytes are also measured by routing both placements
(ideal ECMP) and summing what crosses the leaf-spine and spine-super links.

    python benchmarks/bench_place.py [--time-limit 90] [--workers 2] [--seed 1] [--rank-order tp-cp-pp-dp]
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent

# (accelerators, how many jobs): 1,000 jobs asking 83,288 accelerators, about 91% of the
# 91,776 left free by the busy nodes
MIX = [(16384, 1), (8192, 1), (4096, 2), (2048, 3), (1024, 6), (512, 12), (256, 24), (128, 48),
       (64, 96), (32, 200), (16, 300), (8, 307)]


def make_cluster(seed: int, busy_share: float = 0.3, rank_order: str = "tp-cp-pp-dp",
                 example: str = "reference-131k.yaml", mix=MIX):
    from topo.model.spec import from_dict
    from topo.model.fabric import build
    data = yaml.safe_load((ROOT / "examples" / example).read_text())
    data["jobs"] = []
    c0 = from_dict(data)
    f0 = build(c0)
    rng = np.random.default_rng(seed)
    n_srv = f0.n_servers
    busy = np.sort(rng.choice(n_srv, size=int(round(busy_share * n_srv)), replace=False))
    jobs = []
    k = 0
    for size, count in mix:
        for _ in range(count):
            pp = 4 if size >= 1024 else (2 if size >= 128 else 1)
            ep = 8 if (size >= 256 and rng.random() < 0.3) else 1
            dp = size // (8 * pp)
            if dp % ep:
                ep = 1
            gib = float(2 ** rng.integers(0, 4))
            cols = [{"op": "allreduce", "group": "dp", "bytes": f"{gib}GiB"}]
            if pp > 1:
                cols.append({"op": "sendrecv", "group": "pp", "bytes": "256MiB"})
            if ep > 1:
                cols.append({"op": "alltoall", "group": "ep", "bytes": "512MiB"})
            jobs.append({"name": f"job{k:04d}", "accelerators": size, "tp": 8, "pp": pp, "ep": ep,
                         "rank_order": rank_order,
                         "priority": int(rng.integers(0, 3)), "collectives": cols})
            k += 1
    order = rng.permutation(len(jobs))
    data["jobs"] = [jobs[i] for i in order]
    data["busy_nodes"] = [f0.server_name(i) for i in busy]
    c = from_dict(data)
    return c, build(c), int(busy.size)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--time-limit", type=float, default=90.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rank-order", default="tp-cp-pp-dp",
                    help="every job's rank_order (e.g. tp-cp-ep-dp-pp, Megatron-LM's default: the baseline "
                         "then runs PP slowest)")
    a = ap.parse_args(argv)
    from topo.solve.placement import place
    t0 = time.perf_counter()
    c, f, n_busy = make_cluster(a.seed, rank_order=a.rank_order)
    t_build = time.perf_counter() - t0
    n_acc = int(f.ep_is_accel.sum())
    demand = sum(j.accelerators for j in c.file.jobs)
    t1 = time.perf_counter()
    r = place(c, f, time_limit=a.time_limit, seed=a.seed, workers=a.workers)
    wall = time.perf_counter() - t1
    # the same figures from routing, independent of the placement module's estimate: ideal
    # ECMP of the jobs' flows; bytes on leaf-spine links / 2 leave a leaf, on spine-super / 2 a pod
    from topo.routing.engine import route
    from topo.traffic.demand import job_demands
    t2 = time.perf_counter()
    g = place(c, f, time_limit=a.time_limit, seed=a.seed, workers=a.workers, policy="greedy")

    def routed(assign):
        lb = route(f, job_demands(c, f, assign), "fluid").link_bytes
        return float(lb[f.link_tier == 1].sum()) / 2, float(lb[f.link_tier == 2].sum()) / 2
    r_leaf, r_pod = routed(r.assignment)
    g_leaf, g_pod = routed(g.assignment)
    t_routed = time.perf_counter() - t2
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    t, b = r.totals, r.baseline["totals"]
    bm = r.baseline["totals_rank_mapped"]
    ratio_spine = t["cross_leaf_bytes"] / b["cross_leaf_bytes"] if b["cross_leaf_bytes"] else None
    ratio_pod = t["super_spine_bytes"] / b["super_spine_bytes"] if b["super_spine_bytes"] else None
    bp = r.solver.get("simple_bound_parts", {})
    traffic_part = t["placement_cost"] - t["rack_cost"]
    rows = [
        ("accelerators", f"{n_acc:,}"), ("nodes busy", f"{n_busy:,} of {f.n_servers:,}"),
        ("jobs / accelerators asked", f"{len(c.file.jobs):,} / {demand:,}"),
        ("build (s)", f"{t_build:.1f}"), ("place wall (s)", f"{wall:.1f} (time limit {a.time_limit:g}, {a.workers} workers)"),
        ("status", f"{r.status} ({r.source}; {r.solver.get('mode')})"),
        ("objective / bound / gap", f"{r.objective:,} / {r.bound} / {r.gap}"),
        ("baseline objective", f"{r.baseline['objective']:,}"),
        ("placed / unplaced (opt)", f"{t['placed_jobs']} / {t['unplaced_jobs']}"),
        ("placed / unplaced (greedy)", f"{r.baseline['placed']} / {r.baseline['unplaced']}"),
        ("bytes leaving a leaf, opt / greedy", f"{t['cross_leaf_bytes'] / 1e12:.2f} TB / {b['cross_leaf_bytes'] / 1e12:.2f} TB"
         f"  (x{ratio_spine:.3f})" if ratio_spine is not None else "n/a"),
        ("  greedy's nodes, topo's rank map", f"{bm['cross_leaf_bytes'] / 1e12:.2f} TB leaving a leaf (opt x"
         f"{t['cross_leaf_bytes'] / bm['cross_leaf_bytes']:.3f}), {bm['super_spine_bytes'] / 1e12:.2f} TB leaving a pod"
         f" (opt x{t['super_spine_bytes'] / bm['super_spine_bytes']:.3f})" if bm["cross_leaf_bytes"] and bm["super_spine_bytes"] else "n/a"),
        ("bytes leaving a pod, opt / greedy", f"{t['super_spine_bytes'] / 1e12:.2f} TB / {b['super_spine_bytes'] / 1e12:.2f} TB"
         f"  (x{ratio_pod:.3f})" if ratio_pod is not None else "n/a"),
        ("routed (fluid), opt / greedy", f"leaving a leaf {r_leaf / 1e12:.2f} TB / {g_leaf / 1e12:.2f} TB (x{r_leaf / g_leaf:.3f}), "
         f"leaving a pod {r_pod / 1e12:.2f} TB / {g_pod / 1e12:.2f} TB (x{r_pod / g_pod:.3f}); {t_routed:.1f} s"
         if g_leaf and g_pod else "n/a"),
        ("racks over limit", str(t["racks_over_limit"])), ("peak memory (MB)", f"{peak_mb:.0f}"),
        ("traffic part: opt / greedy / bound", f"{traffic_part:,} / {b['placement_cost'] - b['rack_cost']:,} / "
         f"{bp.get('traffic', 'n/a')}"),
        ("rack part: opt / greedy / bound", f"{t['rack_cost']:,} / {b['rack_cost']:,} / {bp.get('racks', 'n/a')}"),
    ]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    for s in r.solver.get("stages", []):
        print("  stage:", json.dumps(s))
    out = {"bench": "place", "accelerators": n_acc, "jobs": len(c.file.jobs), "busy_nodes": n_busy,
           "time_limit_s": a.time_limit, "workers": a.workers, "seed": a.seed, "rank_order": a.rank_order,
           "wall_s": round(wall, 2), "build_s": round(t_build, 2), "status": r.status, "source": r.source,
           "mode": r.solver.get("mode"), "objective": r.objective, "bound": r.bound, "gap": r.gap,
           "baseline_objective": r.baseline["objective"],
           "placed": t["placed_jobs"], "unplaced": t["unplaced_jobs"],
           "baseline_placed": r.baseline["placed"],
           "cross_leaf_bytes": t["cross_leaf_bytes"], "baseline_cross_leaf_bytes": b["cross_leaf_bytes"],
           "cross_leaf_ratio": ratio_spine, "cross_pod_bytes": t["super_spine_bytes"],
           "baseline_cross_pod_bytes": b["super_spine_bytes"], "cross_pod_ratio": ratio_pod,
           "routed_cross_leaf_bytes": r_leaf, "routed_baseline_cross_leaf_bytes": g_leaf,
           "routed_cross_pod_bytes": r_pod, "routed_baseline_cross_pod_bytes": g_pod,
           "baseline_mapped_cross_leaf_bytes": bm["cross_leaf_bytes"],
           "baseline_mapped_cross_pod_bytes": bm["super_spine_bytes"],
           "placement_cost": t["placement_cost"], "baseline_placement_cost": b["placement_cost"],
           "traffic_cost": traffic_part, "baseline_traffic_cost": b["placement_cost"] - b["rack_cost"],
           "traffic_bound": bp.get("traffic"), "rack_cost": t["rack_cost"], "baseline_rack_cost": b["rack_cost"],
           "rack_bound": bp.get("racks"),
           "traffic_gap": (None if not bp.get("traffic") else round((traffic_part - bp["traffic"]) / traffic_part, 4)),
           "load_avg_1m": round(__import__("os").getloadavg()[0], 2),
           "racks_over_limit": t["racks_over_limit"], "peak_mb": round(peak_mb, 1)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
