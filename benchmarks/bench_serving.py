"""CP-SAT serving placement at scale: a few hundred replicas beside the training jobs.

The reference cluster (examples/reference-131k.yaml: 131,072 H100-class accelerators, rail-optimized
3-tier Clos) at its full size, or cut to ``--racks`` racks (512 racks: 16,384 accelerators), with its
training jobs (cut to fit: at most half the accelerators at 16k) placed in order, and three serving
deployments added: a Llama-3-70B-shaped model served disaggregated (prefill and decode pools at tp 8,
at most 10% of each pool behind one leaf) and a DeepSeek-V3-sized MoE served colocated with ep 32 (four
8-GPU domains per replica, so whole domains of one (leaf, rack) cell). Measures, in one run: the
CP-SAT serving placement (topo.solve.serving_place.place_serving, its independent check included): wall
and CPU seconds (this process, solver threads included), status, objective and bound; the independent
checker alone again (wall seconds); the traffic model of the placed replicas (wall seconds); peak
memory. Prints a table, then one JSON line.

    python benchmarks/bench_serving.py [--racks 512] [--time-limit 60] [--workers 1] [--seed 1]
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

LLAMA70B = {"layers": 80, "hidden_size": 8192, "attention_heads": 64, "kv_heads": 8, "head_dim": 128}
MOE = {"layers": 61, "hidden_size": 7168, "attention_heads": 128, "kv_heads": 8, "head_dim": 128,
       "experts": 256, "experts_per_token": 8, "activation_dtype": "fp8", "kv_dtype": "fp8"}


def make_cluster(racks: int | None, prefill: int, decode: int, moe: int):
    """The reference cluster (``racks`` racks of 4 nodes, or all 4,096), its jobs cut to at most half the
    accelerators, and the three deployments."""
    from topo.model.spec import from_dict
    data = yaml.safe_load((ROOT / "examples" / "reference-131k.yaml").read_text())
    if racks is not None:
        data["racks"][0]["count"] = racks
    n_acc = data["racks"][0]["count"] * 4 * 8
    jobs, used = [], 0
    for j in data["jobs"]:
        if used + j["accelerators"] <= n_acc // 2:
            jobs.append(j)
            used += j["accelerators"]
    if not jobs:   # a job of half the cluster, the reference's second job's shape
        jobs = [dict(data["jobs"][-1], accelerators=n_acc // 2)]
    data["jobs"] = jobs
    data["serving"] = {"deployments": [
        {"name": "llama70b", "model": LLAMA70B,
         "load": {"requests_per_s": 2000, "prompt_tokens": 2000, "output_tokens": 300},
         "prefill": {"replicas": prefill, "tp": 8}, "decode": {"replicas": decode, "tp": 8},
         "spread": {"level": "leaf", "max_share": 0.1}},
        {"name": "moe", "model": MOE, "load": {"requests_per_s": 500, "prompt_tokens": 1000, "output_tokens": 1000},
         "colocated": {"replicas": moe, "tp": 8, "ep": 32}},
    ]}
    return from_dict(data)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--racks", type=int, default=512, help="racks of 4 nodes x 8 accelerators (0: all 4,096)")
    ap.add_argument("--prefill", type=int, default=96)
    ap.add_argument("--decode", type=int, default=160)
    ap.add_argument("--moe", type=int, default=24)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    from topo.model.fabric import build
    from topo.solve.serving_place import check, place_serving
    from topo.traffic.demand import fit_in_order
    from topo.traffic.serving import serving_traffic
    c = make_cluster(a.racks or None, a.prefill, a.decode, a.moe)
    t = time.perf_counter()
    f = build(c)
    build_s = time.perf_counter() - t
    train, left = fit_in_order(c, f)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    r = place_serving(c, f, train, time_limit=a.time_limit, seed=a.seed, workers=a.workers)
    place_s = time.perf_counter() - t
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    t = time.perf_counter()
    problems = check(c, f, r["training"], r["assignment"], r["objective"])
    check_s = time.perf_counter() - t
    t = time.perf_counter()
    st = serving_traffic(c, f, train, replicas=r["assignment"])
    traffic_s = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    n_acc = int(f.ep_is_accel.sum())
    replicas = sum(int(v.shape[0]) for v in r["assignment"].values())
    out = {"accelerators": n_acc, "training_accelerators": int(sum(len(v) for v in train.values())),
           "unplaced_jobs": list(left), "replicas": replicas,
           "serving_accelerators": int(sum(v.size for v in r["assignment"].values())),
           "status": r["status"], "objective": r["objective"], "bound": r["bound"],
           "time_limit_s": a.time_limit, "workers": a.workers, "build_s": round(build_s, 2),
           "place_wall_s": round(place_s, 2), "place_cpu_s": round(cpu_s, 2), "check_s": round(check_s, 3),
           "check_problems": len(problems), "traffic_s": round(traffic_s, 2), "serving_flows": int(st.demands.n),
           "peak_rss_gb": round(peak_gb, 2)}
    for k, v in out.items():
        print(f"{k:<24} {v}")
    print(json.dumps(out))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
