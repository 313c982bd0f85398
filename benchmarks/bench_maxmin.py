"""The per-QP max-min job times (roce-hash): the ``maxmin_times`` kernel against the Python loop of
refill rounds it replaced (topo.routing.engine._maxmin_times_loop), CPU seconds and the same bits.

1. ``topo optimize`` on a cluster file (default examples/helios-mi450-uec.yaml, whose failure stage
   is almost all roce-hash job times), run twice as child processes: with the kernel, and with
   engine._maxmin_times replaced by the loop. Prints each stage's CPU seconds (plan.json
   ``cpu_seconds``) of both runs and their ratio, and whether the two JSON summaries and plan.json
   files are identical but for their times, creation times and output paths (``--skip-old``: the kernel run only).
2. The roce-hash job times of the 131,072-accelerator bench cluster (benchmarks/bench_place.py's
   1,000 jobs, 30% busy) in the in-order placement: route once with recorded paths, then
   _maxmin_times_loop and _maxmin_times alternately on the same runs (``--reps`` each, CPU medians),
   their outputs compared byte for byte, the kernel's counts (rounds, events popped and undone), and
   one water-filling of the runs (the first round's) for scale.

    python benchmarks/bench_maxmin.py [--cluster FILE] [--skip-old] [--skip-optimize] [--skip-131k] [--reps 3]

Prints a table and, as the last line, one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))   # this checkout's topo, as the `python -m topo` runs below (cwd: the checkout)

# runs `topo ARGS` with the job times of the Python loop (the reference the kernel replaced)
_OLD = ("import sys; from topo.routing import engine; engine._maxmin_times = engine._maxmin_times_loop; "
        "from topo.cli.app import main; main(args=sys.argv[1:], prog_name='topo')")
VOLATILE = {"timings_s", "cpu_seconds", "created", "out_dir", "files", "wall_s"}


def _strip(o):
    """o without the keys that differ between two runs of the same computation (times, paths)."""
    if isinstance(o, dict):
        return {k: _strip(v) for k, v in o.items() if k not in VOLATILE and not k.endswith("seconds")}
    if isinstance(o, list):
        return [_strip(v) for v in o]
    return o


def optimize(cluster: Path, out: Path, old: bool, args) -> dict:
    """One `topo optimize CLUSTER --json` child process; its summary, plan and CPU seconds."""
    opts = ["optimize", str(cluster), "-o", str(out), "--json", "--time-limit", str(args.time_limit),
            "--workers", "1", "--seed", str(args.seed)]
    cmd = [sys.executable, "-c", _OLD, *opts] if old else [sys.executable, "-m", "topo", *opts]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.pop("TOPO_PURE_PYTHON", None)
    t0, c0 = time.perf_counter(), os.times()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    c1 = os.times()
    if r.returncode:
        print(r.stderr[-3000:], file=sys.stderr)
        raise SystemExit(r.returncode)
    summary = json.loads(r.stdout)
    return {"summary": summary, "plan": json.loads((out / "plan.json").read_text()),
            "wall_s": time.perf_counter() - t0,
            "cpu_s": (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system),
            "stages_cpu_s": summary.get("cpu_seconds") or {}}


def bench_optimize(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        new = optimize(args.cluster, Path(tmp) / "new", False, args)
        old = None if args.skip_old else optimize(args.cluster, Path(tmp) / "old", True, args)
    out = {"cluster": str(args.cluster), "kernel": {k: new[k] for k in ("wall_s", "cpu_s", "stages_cpu_s")}}
    if old is not None:
        out["loop"] = {k: old[k] for k in ("wall_s", "cpu_s", "stages_cpu_s")}
        out["summary_identical"] = _strip(new["summary"]) == _strip(old["summary"])
        out["plan_identical"] = _strip(new["plan"]) == _strip(old["plan"])
        out["stage_cpu_ratio"] = {k: old["stages_cpu_s"][k] / v for k, v in new["stages_cpu_s"].items()
                                  if v > 0 and k in old["stages_cpu_s"]}
    return out


def maxmin_args_131k(seed: int):
    """The runs _maxmin_times gets for the roce-hash job times of the 131k bench cluster's in-order
    placement (route once with recorded paths, as engine._run_model does), and their queue pairs."""
    import numpy as np
    from bench_place import make_cluster
    from topo.routing import engine
    from topo.traffic.demand import fit_in_order, job_demands
    c, f, _ = make_cluster(seed)
    tr = c.file.transport
    eff = engine.protocol_efficiency(c, "roce")
    d = job_demands(c, f, fit_in_order(c, f)[0], efficiency=eff)
    r = engine.route(f, d, "roce-hash", seed=seed, qps=tr.qps, channels=tr.n_channels, efficiency=eff,
                     record_paths=True)
    qb = d.bytes[r.qp_flow] / (tr.n_channels * tr.qps)
    first, mult = engine._runs(np.asarray(r.qp_path, np.int64), qb)
    path, cap = engine._used_links(np.asarray(r.qp_path, np.int64)[first], f.link_gbps.astype(float))
    return (path, cap, qb[first], mult, eff * 1e9 / 8.0, engine.MAXMIN_ROUNDS), int(qb.size)


def bench_131k(args) -> dict:
    from topo.routing import engine
    t0 = time.process_time()
    call, n_qp = maxmin_args_131k(args.seed)
    setup = time.process_time() - t0
    loop_s, kern_s, fill_s = [], [], []
    same = True
    info = None
    for _ in range(args.reps):      # alternately, so both see the same load
        t = time.process_time()
        a = engine._maxmin_times_loop(*call)
        loop_s.append(time.process_time() - t)
        t = time.process_time()
        b, info = engine._maxmin_times_counted(*call)
        kern_s.append(time.process_time() - t)
        t = time.process_time()
        engine.waterfill(call[0], call[1], call[3].astype(float))   # the first round's water-filling alone
        fill_s.append(time.process_time() - t)
        same = same and a.tobytes() == b.tobytes()
    lo, ke = statistics.median(loop_s), statistics.median(kern_s)
    return {"queue_pairs": n_qp, "runs": int(call[0].shape[0]), "links": int(call[1].shape[0]),
            "setup_cpu_s": setup, "loop_cpu_s": loop_s, "kernel_cpu_s": kern_s, "loop_median_s": lo,
            "kernel_median_s": ke, "one_waterfill_median_s": statistics.median(fill_s), "speedup": lo / ke if ke > 0 else None, "identical": same,
            "rounds": int(info[2]), "events": int(info[3]), "events_undone": int(info[4]),
            "components": int(info[7])}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--cluster", type=Path, default=ROOT / "examples" / "helios-mi450-uec.yaml")
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-old", action="store_true", help="optimize with the kernel only")
    ap.add_argument("--skip-optimize", action="store_true")
    ap.add_argument("--skip-131k", action="store_true")
    a = ap.parse_args(argv)
    res = {"benchmark": "maxmin"}
    rows = []
    if not a.skip_optimize:
        o = res["optimize"] = bench_optimize(a)
        k = o["kernel"]
        rows.append(("optimize, kernel", f"{k['cpu_s']:.1f} s CPU, {k['wall_s']:.1f} s wall; stages CPU "
                                         + ", ".join(f"{s} {v:.2f}" for s, v in k["stages_cpu_s"].items())))
        if "loop" in o:
            lp = o["loop"]
            rows.append(("optimize, loop", f"{lp['cpu_s']:.1f} s CPU, {lp['wall_s']:.1f} s wall; stages CPU "
                                           + ", ".join(f"{s} {v:.2f}" for s, v in lp["stages_cpu_s"].items())))
            rows.append(("loop / kernel, CPU", ", ".join(f"{s} {v:.1f}x" for s, v in o["stage_cpu_ratio"].items())))
            rows.append(("same outputs", f"summary {o['summary_identical']}, plan.json {o['plan_identical']} "
                                         "(times, creation times and paths left out)"))
    if not a.skip_131k:
        b = res["bench_131k"] = bench_131k(a)
        rows.append(("131k in-order roce-hash", f"{b['queue_pairs']:,} queue pairs in {b['runs']:,} runs over "
                                                f"{b['links']:,} links, {b['components']:,} components"))
        rows.append(("131k job times, CPU", f"loop {b['loop_median_s']:.3f} s, kernel {b['kernel_median_s']:.3f} s "
                                            f"(medians of {a.reps}): {b['speedup']:.1f}x; identical {b['identical']}; "
                                            f"one water-filling of the runs {b['one_waterfill_median_s']:.3f} s"))
        rows.append(("131k kernel counts", f"{b['rounds']:,} rounds, {b['events']:,} events popped, "
                                           f"{b['events_undone']:,} undone"))
    w = max((len(k) for k, _ in rows), default=0)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
