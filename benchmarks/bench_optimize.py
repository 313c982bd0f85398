"""`topo optimize` end to end on the 131,072-accelerator reference with 1,000 jobs
(``--size 1M``: the 1,048,576-accelerator reference with 10,000 jobs).

The cluster is examples/reference-131k.yaml with the 1,000-job mix and 30% busy
nodes of benchmarks/bench_place.py (``--size 1M``: examples/reference-1m.yaml with
the 10,000-job MIX_1M below, same generator). The run is one `topo optimize`
process (so its peak RSS is its own), timed as a whole; the per-stage wall and CPU times (the
run's threads and the workers it waited for) come from its JSON summary, its CPU time (all
threads) from the rusage of the child. Then, in this
process, the kernels alone route the same flows the route stage routes (the in-order and the
optimised placement, each under roce-hash with its water-filling and under uec-spray, one route()
call each) and the flows the reroute stage routes (the optimised placement on the chosen fabric),
and each stage's time is printed over theirs (wall and CPU of the kernels both shown; the machine
may be shared, so the ratio of two figures of one run is what holds). The reroute stage also computes
the placed jobs' collective times, whose step patterns it routes with one kernel call each: the
reroute floor counts those calls too, recorded while ``collective_times`` runs and then replayed
alone, timed, for exactly the same flows and arguments (:func:`collective_kernels`); the time
``collective_times`` spends around them (building the patterns, the rates, the size sweep) is not
in the floor. Prints a table and, as the
last line, one JSON object.

    python benchmarks/bench_optimize.py [--size 131k|1M] [--time-limit 60] [--workers 2] [--seed 1] [--jobs N]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))   # this checkout's topo, as the `python -m topo` run below (cwd: the checkout)


# (accelerators, how many jobs): 10,000 jobs asking 658,360 accelerators, about 90% of the
# 734,003 left free by the busy nodes of the 1,048,576-accelerator reference
MIX_1M = [(32768, 1), (16384, 4), (8192, 8), (4096, 12), (2048, 24), (1024, 48), (512, 96), (256, 192),
          (128, 384), (64, 960), (32, 2000), (16, 3000), (8, 3271)]
# (example, job mix, wall-clock target s, peak RSS target MB): the goals the benchmark table quotes
SIZES = {"131k": ("reference-131k.yaml", None, 60.0, 2048.0), "1M": ("reference-1m.yaml", MIX_1M, 900.0, 16384.0)}


def kernel_floor(cluster_file: Path, plan: dict, seed: int) -> dict:
    """Seconds (wall and CPU) the routing kernels take for the flows the route and the reroute
    stages route: route, the in-order and the optimised placement on the cluster as given;
    reroute, the optimised placement on the fabric the link budget chose. Each under roce-hash
    (with the file's channels and queue pairs, and the per-QP max-min completion times of its queue
    pairs, the kernel the stage's job times call) and
    uec-spray, one route() call each over all their flows; reroute also the kernel calls of the
    collective times' step patterns (:func:`collective_kernels`, under ``reroute.collectives``)."""
    import numpy as np
    from topo.model.fabric import build
    from topo.model.spec import from_dict, load, wire_efficiency
    from topo.routing.engine import SHARING, completion_times, protocol_efficiency, route
    from topo.traffic.demand import fit_in_order, job_demands
    c = load(cluster_file)
    f = build(c)
    after = from_dict(plan["cluster_file_after"], source="plan", base_dir=c.base_dir)
    fa = build(after)
    placed = {k: np.asarray(v, np.int64) for k, v in plan["placement"]["assignment"].items()}
    out = {"flows": 0, "demands_s": 0.0}
    for stage, runs in (("route", ((c, f, fit_in_order(c, f)[0]), (c, f, placed))), ("reroute", ((after, fa, placed),))):
        row = out[stage] = {"flows": 0, "roce-hash_s": 0.0, "uec-spray_s": 0.0, "roce-hash_cpu_s": 0.0,
                            "uec-spray_cpu_s": 0.0}
        for cl, fb, pl in runs:
            tr = cl.file.transport
            route(fb, job_demands(cl, fb, {}), "fluid")   # tables built once, as in the stage
            for m, proto in (("roce-hash", "roce"), ("uec-spray", "uec")):
                eff = protocol_efficiency(cl, proto)
                t = time.perf_counter()
                d = job_demands(cl, fb, pl, efficiency=eff)
                out["demands_s"] += time.perf_counter() - t
                t, cpu = time.perf_counter(), time.process_time()
                r = route(fb, d, m, seed=seed, qps=tr.qps, channels=tr.n_channels, efficiency=eff,
                          record_paths=m == "roce-hash")
                if m == "roce-hash" and r.qp_flow is not None and r.qp_flow.size:
                    # the queue pairs' per-QP max-min completion times (the maxmin_times kernel), as the
                    # stage computes them for job times
                    completion_times(r.qp_path, fb.link_gbps.astype(float),
                                     d.bytes[r.qp_flow] / (tr.n_channels * tr.qps), eff, SHARING[m])
                row[f"{m}_s"] += time.perf_counter() - t
                row[f"{m}_cpu_s"] += time.process_time() - cpu
                row["flows"] += d.n
        row["total_s"] = row["roce-hash_s"] + row["uec-spray_s"]
        row["total_cpu_s"] = row["roce-hash_cpu_s"] + row["uec-spray_cpu_s"]
        if stage == "reroute":
            coll = collective_kernels(after, fa, placed, seed)
            row["collectives"] = coll
            row["total_s"] += coll["seconds"]
            row["total_cpu_s"] += coll["cpu_s"]
        out["flows"] += row["flows"]
    out["wire_efficiency"] = wire_efficiency(c)
    out["total_s"] = out["route"]["total_s"]
    return out


def collective_kernels(cluster, fabric, placement, seed) -> dict:
    """Seconds (wall and CPU) of the routing-kernel calls the reroute stage's collective times make
    (``collective_times``, each collective's step patterns: one ``hashed_paths`` call per pattern
    under roce-hash, one ``sparse_loads`` call per pattern under the fluid-type models), replayed
    alone: the calls are recorded (their flows and arguments) while ``collective_times`` runs as the
    stage runs it, then made again, timed, with nothing else around them. Each call is the engine's
    entry to the kernel with its argument checks, as the route() calls above are."""
    from topo.routing import engine
    from topo.routing.collectives import collective_times, size_range
    calls = []
    real = {"hashed_paths": engine.hashed_paths, "sparse_loads": engine.sparse_loads}

    def recorder(name):
        def fn(*args, **kw):
            calls.append((name, args, kw))
            return real[name](*args, **kw)
        return fn
    try:
        engine.hashed_paths, engine.sparse_loads = recorder("hashed_paths"), recorder("sparse_loads")
        collective_times(cluster, fabric, placement=placement, seed=seed, sizes=size_range("1KiB..16GiB"))
    finally:
        engine.hashed_paths, engine.sparse_loads = real["hashed_paths"], real["sparse_loads"]
    kept: dict = {}
    flows = 0
    t, cpu = time.perf_counter(), time.process_time()
    for name, args, kw in calls:
        if name == "sparse_loads":
            kw = {**kw, "kept": kept}   # the buffers kept across the calls, as collective_times keeps them
        real[name](*args, **kw)
        flows += args[1].n
    return {"calls": len(calls), "flows": flows, "seconds": time.perf_counter() - t, "cpu_s": time.process_time() - cpu}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=sorted(SIZES), default="131k",
                    help="131k: reference-131k.yaml with 1,000 jobs; 1M: reference-1m.yaml with 10,000 jobs")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=None, help="keep the first N jobs of the mix")
    ap.add_argument("--no-kernels", action="store_true", help="skip timing the kernels alone")
    a = ap.parse_args(argv)
    from bench_place import MIX, make_cluster
    example, mix, wall_target, rss_target = SIZES[a.size]
    c, f, n_busy = make_cluster(a.seed, example=example, mix=mix or MIX)
    data = c.file.model_dump(mode="json")
    if a.jobs is not None:
        data["jobs"] = data["jobs"][: a.jobs]
    with tempfile.TemporaryDirectory() as tmp:
        cf = Path(tmp) / "cluster.yaml"
        cf.write_text(yaml.safe_dump(data))
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "topo", "optimize", str(cf), "-o", str(out), "--json",
               "--time-limit", str(a.time_limit), "--workers", str(a.workers), "--seed", str(a.seed)]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
        wall = time.perf_counter() - t0
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            raise SystemExit(r.returncode)
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_mb = ru.ru_maxrss / 1024
        cpu = ru.ru_utime + ru.ru_stime
        summary = json.loads(r.stdout)
        sizes = {p.relative_to(out).as_posix(): p.stat().st_size for p in out.rglob("*") if p.is_file()}
        kern = None if a.no_kernels else kernel_floor(cf, json.loads((out / "plan.json").read_text()), a.seed)
    report_mb = sizes.get("report.html", 0) / 1e6
    rows = [("accelerators", f"{f.n_endpoints:,}"), ("jobs", f"{len(data['jobs']):,}"), ("busy nodes", f"{n_busy:,}"),
            ("wall time", f"{wall:.1f} s (target {wall_target:,.0f} s); CPU {cpu:.1f} s (all threads)"),
            ("peak RSS", f"{peak_mb:,.0f} MB (target {rss_target:,.0f} MB)"),
            ("report.html", f"{report_mb:.2f} MB (target 5 MB)"), ("plan.json", f"{sizes.get('plan.json', 0) / 1e6:.1f} MB"),
            ("all outputs", f"{sum(sizes.values()) / 1e6:.1f} MB in {len(sizes)} files"),
            ("placement", f"{summary['placement']['status']}, gap {summary['placement']['gap']}, "
                          f"{summary['placement']['placed']} placed, {len(summary['placement']['unplaced'])} unplaced"),
            ("budget", f"{summary['budget']['status']}, gap {summary['budget']['gap']}")]
    tc = summary["budget"].get("transport_check") or {}
    if tc:
        rows.append(("transport check", f"{tc.get('routing')}: {'met' if tc.get('accepted') else 'NOT met'} at target "
                                        f"{tc.get('chosen_target_utilization', 0):.3g}, summed time x{tc.get('total', 0):.3f}, "
                                        f"p95 penalty x{tc.get('tail', 0):.3f}, "
                                        f"{tc.get('seconds', 0):.1f} s"))
    saved = summary["budget"].get("saved_vs_as_given") or {}
    if saved:
        rows.append(("budget saves", f"{100 * saved.get('total_fraction', 0):.1f}% of capex + energy vs as given"))
    stages = summary.get("timings_s") or {}
    stages_cpu = summary.get("cpu_seconds") or {}   # per stage, CPU of the run's threads and waited-for workers
    rows += [(f"stage {k}", f"{v:.1f} s wall" + (f", {stages_cpu[k]:.1f} s CPU" if k in stages_cpu else ""))
             for k, v in stages.items()]
    ratios = {}
    if kern:
        for stage in ("route", "reroute"):
            k = kern[stage]
            co = k.get("collectives")
            rows.append((f"{stage} kernels alone", f"{k['total_s']:.1f} s wall, {k['total_cpu_s']:.1f} s CPU for the same "
                                                   f"{k['flows']:,} flows (roce-hash {k['roce-hash_s']:.1f} s, "
                                                   f"uec-spray {k['uec-spray_s']:.1f} s" +
                                                   (f", collective patterns {co['seconds']:.1f} s wall / {co['cpu_s']:.1f} s "
                                                    f"CPU in {co['calls']:,} calls over {co['flows']:,} flows" if co else "")
                                                   + ")"))
            if stages.get(stage) and k["total_s"] > 0:
                ratios[stage] = stages[stage] / k["total_s"]
                text = f"{ratios[stage]:.1f}x wall"
                if stages_cpu.get(stage) and k["total_cpu_s"] > 0:
                    ratios[f"{stage}_cpu"] = stages_cpu[stage] / k["total_cpu_s"]
                    text = f"{ratios[f'{stage}_cpu']:.1f}x CPU, " + text
                rows.append((f"{stage} stage / kernels", text + " (goal 3x)"))
        rows.append(("building the demands", f"{kern['demands_s']:.1f} s (kernel runs above)"))
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    print(json.dumps({"benchmark": "optimize", "size": a.size, "accelerators": f.n_endpoints, "jobs": len(data["jobs"]),
                      "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_mb, "report_html_mb": report_mb,
                      "wall_over_target": wall / wall_target, "rss_over_target": peak_mb / rss_target,
                      "route_kernels": kern,
                      "route_over_kernels": ratios.get("route"), "stage_over_kernels": ratios,
                      "stages_s": summary.get("timings_s"), "stages_cpu_s": summary.get("cpu_seconds"),
                      "sizes_bytes": sizes,
                      "placement": summary["placement"]["status"], "budget": summary["budget"]["status"],
                      "transport_check": tc}))


if __name__ == "__main__":
    main()
