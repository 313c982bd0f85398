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
3. With ``--against DIR`` (another checkout of the project with its kernels built, e.g. an earlier
   commit): the kernel of this checkout against DIR's kernel, in child processes run alternately,
   ``--reps`` times each: (a) the stage CPU seconds of ``topo optimize`` on the cluster file (as in
   1, outputs compared), and (b) the job times of one roce-hash routing of the cluster file's jobs
   (in-order placement, recorded paths, as engine._run_model does): _maxmin_times on those runs,
   CPU median of ``--calls`` calls per child, the outputs compared byte for byte.

    python benchmarks/bench_maxmin.py [--cluster FILE] [--skip-old] [--skip-optimize] [--skip-131k] [--reps 3]
                                      [--against DIR] [--calls 20]

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


def _env(root: Path) -> dict:
    """The environment of a child process that imports the topo of checkout root."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.pop("TOPO_PURE_PYTHON", None)
    return env


def optimize(cluster: Path, out: Path, old: bool, args, root: Path = ROOT) -> dict:
    """One `topo optimize CLUSTER --json` child process (the topo of checkout root); its summary, plan
    and CPU seconds."""
    opts = ["optimize", str(cluster), "-o", str(out), "--json", "--time-limit", str(args.time_limit),
            "--workers", "1", "--seed", str(args.seed)]
    cmd = [sys.executable, "-c", _OLD, *opts] if old else [sys.executable, "-m", "topo", *opts]
    t0, c0 = time.perf_counter(), os.times()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=_env(root))
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
    from bench_place import make_cluster
    c, f, _ = make_cluster(seed)
    return maxmin_args(c, f, seed)


def maxmin_args(c, f, seed: int):
    """The runs _maxmin_times gets for the roce-hash job times of cluster c (fabric f) in the in-order
    placement (route once with recorded paths, as engine._run_model does), and their queue pairs."""
    import numpy as np
    from topo.routing import engine
    from topo.traffic.demand import fit_in_order, job_demands
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


# in a child process (cwd and PYTHONPATH: one checkout): _maxmin_times on the runs saved in argv[1],
# argv[2] calls; prints the CPU seconds of each call, a digest of the output and the kernel's counts
_CALLS = ("import sys, json, time, hashlib; import numpy as np; from topo.routing import engine\n"
          "z = np.load(sys.argv[1]); call = (z['path'], z['cap'], z['qb'], z['mult'], float(z['bps']), "
          "engine.MAXMIN_ROUNDS)\nts = []\nfor _ in range(int(sys.argv[2])):\n"
          "    t = time.process_time(); out, info = engine._maxmin_times_counted(*call); "
          "ts.append(time.process_time() - t)\n"
          "print(json.dumps({'cpu_s': ts, 'sha1': hashlib.sha1(out.tobytes()).hexdigest(), "
          "'info': [float(v) for v in info]}))")


def _calls(root: Path, npz: Path, calls: int) -> dict:
    r = subprocess.run([sys.executable, "-c", _CALLS, str(npz), str(calls)], capture_output=True, text=True,
                       cwd=root, env=_env(root))
    if r.returncode:
        print(r.stderr[-3000:], file=sys.stderr)
        raise SystemExit(r.returncode)
    return json.loads(r.stdout)


def bench_against(args) -> dict:
    """This checkout's kernel against the one of checkout args.against, alternately (see 3.)."""
    import numpy as np
    from topo.model.fabric import build
    from topo.model.spec import load
    other = args.against.resolve()
    out = {"against": str(other), "reps": args.reps}
    if not args.skip_optimize:
        runs = {"this": [], "other": []}
        same = True
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(args.reps):
                a = optimize(args.cluster.resolve(), Path(tmp) / f"this{k}", False, args)
                b = optimize(args.cluster.resolve(), Path(tmp) / f"other{k}", False, args, root=other)
                runs["this"].append(a["stages_cpu_s"])
                runs["other"].append(b["stages_cpu_s"])
                same = same and _strip(a["summary"]) == _strip(b["summary"]) and _strip(a["plan"]) == _strip(b["plan"])
        out["optimize_stages_cpu_s"] = runs
        out["optimize_identical"] = same
    c = load(args.cluster)
    call, n_qp = maxmin_args(c, build(c), args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "runs.npz"
        np.savez(npz, path=call[0], cap=call[1], qb=call[2], mult=call[3], bps=call[4])
        this, oth = [], []
        for _ in range(args.reps):
            this.append(_calls(ROOT, npz, args.calls))
            oth.append(_calls(other, npz, args.calls))
    med = lambda rs: [statistics.median(r["cpu_s"]) for r in rs]  # noqa: E731
    out["routing"] = {"queue_pairs": n_qp, "runs": int(call[0].shape[0]), "links": int(call[1].shape[0]),
                      "this_median_s": med(this), "other_median_s": med(oth),
                      "identical": len({r["sha1"] for r in this + oth}) == 1,
                      "counts_identical": len({tuple(r["info"]) for r in this + oth}) == 1,
                      "rounds": int(this[0]["info"][2]), "events": int(this[0]["info"][3])}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--cluster", type=Path, default=ROOT / "examples" / "helios-mi450-uec.yaml")
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-old", action="store_true", help="optimize with the kernel only")
    ap.add_argument("--skip-optimize", action="store_true")
    ap.add_argument("--skip-131k", action="store_true")
    ap.add_argument("--against", type=Path, help="another checkout: its kernel against this one's, alternately")
    ap.add_argument("--calls", type=int, default=20, help="job-time calls per child process (--against)")
    a = ap.parse_args(argv)
    res = {"benchmark": "maxmin"}
    rows = []
    if a.against is not None:
        g = res["against"] = bench_against(a)
        for k in range(a.reps) if "optimize_stages_cpu_s" in g else ():
            t, o = g["optimize_stages_cpu_s"]["this"][k], g["optimize_stages_cpu_s"]["other"][k]
            rows.append((f"optimize, run {k + 1}", ", ".join(f"{s} {o.get(s, 0):.2f} -> {v:.2f} s" for s, v in t.items())))
        if "optimize_identical" in g:
            rows.append(("same outputs", f"{g['optimize_identical']} (summary and plan.json, times and paths left out)"))
        r = g["routing"]
        rows.append(("one roce-hash routing", f"{r['queue_pairs']:,} queue pairs in {r['runs']:,} runs over "
                                              f"{r['links']:,} links, {r['rounds']:,} rounds, {r['events']:,} events"))
        rows.append(("job times, CPU", "other -> this: " + ", ".join(
            f"{o:.4f} -> {t:.4f} s" for o, t in zip(r["other_median_s"], r["this_median_s"]))
            + f" (medians of {a.calls}); identical {r['identical']}, counts identical {r['counts_identical']}"))
        a.skip_optimize = a.skip_131k = True
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
