"""Goodput of 1,000 placed jobs on the 131,072-accelerator reference (examples/reference-131k.yaml).

The reference's job list is replaced by 1,000 jobs of 64 to 192 accelerators (128,000 in all),
placed in order (no solver); then topo.study.goodput computes every job's components,
interruption rate, checkpoint interval and goodput, and the blast radius of every rack, leaf and
pod. Times are wall-clock seconds of this run; the placement is timed apart from goodput.

    python benchmarks/bench_goodput.py [--jobs 1000] [--monte-carlo 200]

Prints a table and, as the last line, one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = (64, 128, 128, 192)   # 128 accelerators on average


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--monte-carlo", type=int, default=200)
    a = ap.parse_args()
    import yaml

    from topo.model.fabric import build
    from topo.model.spec import from_dict
    from topo.study.failures import resolve_placement
    from topo.study.goodput import goodput
    t0 = time.perf_counter()
    data = yaml.safe_load((ROOT / "examples" / "reference-131k.yaml").read_text())
    data["jobs"] = [{"name": f"job{i:04d}", "accelerators": SIZES[i % len(SIZES)], "tp": 8,
                     "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1GiB"}]} for i in range(a.jobs)]
    data["failure_rates"] = dict(data.get("failure_rates") or {}, checkpoint_s=30, restart_s=300)
    c = from_dict(data, base_dir=str(ROOT / "examples"))
    fab = build(c)
    t1 = time.perf_counter()
    pl, note = resolve_placement(c, fab, None)
    t2 = time.perf_counter()
    res = goodput(c, fab, pl, run_days=30, monte_carlo_trials=a.monte_carlo)
    t3 = time.perf_counter()
    d = res.to_dict()
    g = sorted(j["goodput"] for j in d["jobs"])
    out = {"accelerators": int(fab.ep_is_accel.sum()), "jobs_placed": len(pl), "placement": note,
           "build_s": t1 - t0, "place_in_order_s": t2 - t1, "goodput_s": t3 - t2,
           "goodput_min": g[0], "goodput_median": g[len(g) // 2], "goodput_max": g[-1],
           "interruptions_all_jobs": d["totals"]["interruptions"],
           "blast_radius": {k: {"domains": v["domains"], "max_jobs_stopped": v["max_jobs_stopped"],
                                "max_accelerators_stopped": v["max_accelerators_stopped"]}
                            for k, v in d["blast_radius"].items()},
           "monte_carlo": d["monte_carlo"], "peak_rss_mb": rss_mb()}
    print(f"{'accelerators':<28}{out['accelerators']:>12,}")
    print(f"{'jobs placed':<28}{out['jobs_placed']:>12,}")
    for k in ("build_s", "place_in_order_s", "goodput_s"):
        print(f"{k:<28}{out[k]:>12.2f}")
    print(f"{'goodput min/median/max':<28}{g[0]:>8.4f} {g[len(g) // 2]:.4f} {g[-1]:.4f}")
    for k, v in out["blast_radius"].items():
        print(f"{'blast radius ' + k:<28}{v['domains']:>8,} domains, at most {v['max_jobs_stopped']} jobs / "
              f"{v['max_accelerators_stopped']:,} accelerators stopped")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
