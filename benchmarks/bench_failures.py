"""Failure analysis and sweep throughput.

1. The exhaustive single-failure sweep of the 131,072-accelerator reference
   (examples/reference-131k.yaml): every switch, every link (each parallel
   link of a bundle), every NIC, scale-up switch and rack power feed, grouped by
   symmetry class; capacity loss per tier, isolation and jobs hit. Then the
   same sweep with traffic: the healthy routing under roce-hash and
   uec-spray, the classes once healthy loads refine
   them (the fluid-type loads), and every class routed on 2 forked workers.
2. A 1,000-variant sweep of a small cluster on 1 local worker process and on
   2 workers of a local Dask cluster, and the ratio.

    python benchmarks/bench_failures.py [--variants 1000] [--skip-traffic]

Prints a table and, as the last line, one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def part_failures(skip_traffic: bool) -> dict:
    from topo.study import failures as F
    from topo.model.fabric import build
    from topo.model.spec import load
    t0 = time.perf_counter()
    c = load(ROOT / "examples" / "reference-131k.yaml")
    fab = build(c)
    t1 = time.perf_counter()
    res = F.analyze_failures(c, fab, traffic=False)
    t2 = time.perf_counter()
    kinds = {}
    for r in res.single:
        k = kinds.setdefault(r["kind"], [0, 0])
        k[0] += 1
        k[1] += r["count"]
    out = {"accelerators": int(fab.ep_is_accel.sum()), "switches": fab.n_switches,
           "physical_links": fab.n_links // 2, "build_s": t1 - t0, "single_sweep_s": t2 - t1,
           "failures": sum(r["count"] for r in res.single), "classes": len(res.single),
           "by_kind": {k: {"classes": v[0], "failures": v[1]} for k, v in kinds.items()},
           "peak_rss_mb_structural": rss_mb()}
    if skip_traffic:
        return out
    # the same sweep with traffic: healthy routing under roce-hash and uec-spray, classes
    # refined by the healthy spray loads, every class routed (2 forked workers)
    t3 = time.perf_counter()
    routed = F.analyze_failures(c, fab, workers=2, traffic=True)
    t4 = time.perf_counter()
    def worst_finite(r):
        return max((v for per in r["slowdown"].values() for v in per.values() if v is not None), default=1.0)
    worst = max((r for r in routed.single if r.get("slowdown")), key=worst_finite)
    down = sum(r["count"] for r in routed.single
               if any(v is None for per in (r.get("slowdown") or {}).values() for v in per.values()))
    out.update({"routed_sweep_s": t4 - t3, "routed_classes": len(routed.single),
                "routed_failures": sum(r["count"] for r in routed.single),
                "parent_route_calls": routed.traffic.get("route_calls"),
                "healthy_completion_s": routed.traffic.get("healthy_completion_s"),
                "worst_slowdown_class": {"kind": worst["kind"], "name": worst["name"], "count": worst["count"],
                                         "max_finite_slowdown": worst_finite(worst), "slowdown": worst["slowdown"]},
                "failures_stopping_a_job": down,
                "peak_rss_mb": rss_mb()})
    return out


SMALL = {
    "version": 1, "name": "bench-small",
    "node_types": [{"name": "gpu", "platform": "hgx-h100"}],
    "racks": [{"name": "r", "count": 4, "nodes": {"gpu": 2}, "power_limit_kw": 40}],
    "fabric": {"family": "clos", "tiers": [{"switch": "th4-64x400"}, {"switch": "th4-64x400"}]},
    "transport": {"protocol": "roce", "qps_per_connection": 2},
    "jobs": [{"name": "a", "accelerators": 32, "tp": 8,
              "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1GiB"}]},
             {"name": "b", "accelerators": 16, "tp": 8, "ep": 2,
              "collectives": [{"op": "alltoall", "group": "ep", "bytes": "256MiB"}]}],
    "goals": {"seed": 1},
}


def write_sweep(tmp: Path, n_variants: int) -> Path:
    import yaml
    (tmp / "base.yaml").write_text(yaml.safe_dump(SMALL))
    os_vals = [1, 1.5, 2, 3, 4]
    qps = [1, 2, 4, 8]
    tr = ["roce", "uec"]
    n_limit = max(1, -(-n_variants // (len(os_vals) * len(qps) * len(tr))))
    limits = [30 + i for i in range(n_limit)]
    grid = {"oversubscription": os_vals, "qps_per_connection": qps, "transport": tr, "rack_power_limit_kw": limits}
    (tmp / "sweep.yaml").write_text(yaml.safe_dump({"version": 1, "name": "bench", "base": "base.yaml",
                                                    "seed": 1, "grid": grid, "failures": ["none"]}))
    return tmp / "sweep.yaml"


def part_sweep(n_variants: int) -> dict:
    import distributed
    from topo.study.sweep import load_sweep, run_sweep
    out = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sw = write_sweep(tmp, n_variants)
        n = len(load_sweep(sw)["tasks"])
        load0 = os.getloadavg()[0]
        tl = time.perf_counter()
        local2 = run_sweep(sw, tmp / "local2", workers=2)
        t0 = time.perf_counter()
        local = run_sweep(sw, tmp / "local", workers=1)
        t1 = time.perf_counter()
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as lc:
            t2 = time.perf_counter()
            dask = run_sweep(sw, tmp / "dask", scheduler=lc.scheduler_address)
            t3 = time.perf_counter()
        strip = lambda rows: sorted(({k: v for k, v in r.items() if k != "seconds"} for r in rows), key=lambda r: r["id"])
        out = {"variants": n, "local_1_worker_s": t1 - t0, "dask_2_workers_s": t3 - t2,
               "dask_cluster_start_s": t2 - t1,
               "local_variants_per_s": n / (t1 - t0), "dask_variants_per_s": n / (t3 - t2),
               "speedup_dask2_over_local1": (t1 - t0) / (t3 - t2),
               "local_2_workers_s": t0 - tl, "speedup_local2_over_local1": (t1 - t0) / (t0 - tl),
               "identical_results": strip(local["rows"]) == strip(dask["rows"]) == strip(local2["rows"]),
               "load_average_1min_before": load0, "load_average_1min_after": os.getloadavg()[0],
               "ok": sum(1 for r in local["rows"] if r["status"] == "ok")}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", type=int, default=1000)
    ap.add_argument("--skip-traffic", action="store_true", help="skip the routed part at 131k")
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--skip-131k", action="store_true", help="only the sweep part")
    a = ap.parse_args(argv)
    fig = {"benchmark": "failures"}
    f = {} if a.skip_131k else part_failures(a.skip_traffic)
    if f:
        fig["reference_131k"] = f
        _print_failures(f)
    if not a.skip_sweep:
        s = part_sweep(a.variants)
        fig["sweep"] = s
        _print_sweep(s)
    print(json.dumps(fig, default=float))
    return 0


def _print_failures(f):
    print("1. single-failure sweep of reference-131k (grouped by symmetry, capacity/isolation/jobs hit)")
    print(f"   {f['accelerators']:,} accelerators, {f['switches']:,} switches, {f['physical_links']:,} links; build {f['build_s']:.2f} s")
    print(f"   {f['failures']:,} single failures in {f['classes']} classes: {f['single_sweep_s']:.2f} s, peak RSS {f['peak_rss_mb_structural']:.0f} MB")
    for k, v in f["by_kind"].items():
        print(f"     {k:<15} {v['failures']:>9,} failures  {v['classes']:>4} classes")
    if "routed_sweep_s" in f:
        print(f"   with traffic (roce-hash + uec-spray, 2 workers): {f['routed_failures']:,} failures in "
              f"{f['routed_classes']} classes: {f['routed_sweep_s']:.1f} s; peak RSS {f['peak_rss_mb']:.0f} MB")
        w = f["worst_slowdown_class"]
        print(f"   largest finite slowdown: {w['kind']} {w['name']} (class of {w['count']}): x{w['max_finite_slowdown']:.3f}; "
              f"{f['failures_stopping_a_job']:,} failures stop a job (lost ranks or unreachable demand)")


def _print_sweep(s):
    print(f"2. sweep of {s['variants']} small variants ({s['ok']} ok)")
    print(f"   local pool, 1 worker : {s['local_1_worker_s']:.1f} s ({s['local_variants_per_s']:.1f} variants/s)")
    print(f"   Dask, 2 local workers: {s['dask_2_workers_s']:.1f} s ({s['dask_variants_per_s']:.1f} variants/s; "
          f"cluster start {s['dask_cluster_start_s']:.1f} s not counted)")
    print(f"   local pool, 2 workers: {s['local_2_workers_s']:.1f} s (ratio {s['speedup_local2_over_local1']:.2f}x)")
    print(f"   ratio (Dask 2 / local 1): {s['speedup_dask2_over_local1']:.2f}x; identical results: {s['identical_results']}; "
          f"1-min load average {s['load_average_1min_before']:.1f} -> {s['load_average_1min_after']:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    sys.exit(main())
