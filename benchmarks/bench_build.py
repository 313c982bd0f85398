"""Build and describe time and peak memory for 8k, 131k and 1M accelerators.

Each size runs in a fresh subprocess so peak RSS is its own. Prints a table and,
as the last line, one JSON object with the figures.

    python benchmarks/bench_build.py [--sizes 8192,131072,1048576] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np
    from topo.model.spec import from_dict
    from topo.model.fabric import build
    from topo.routing.describe import describe
    n = int(sys.argv[1])
    nodes = n // 8
    racks = nodes // 4
    d = {"version": 1, "name": f"bench-{n}",
         "node_types": [{"name": "hgx", "platform": "hgx-h100"}],
         "racks": [{"name": "r", "count": racks, "nodes": {"hgx": 4}, "cooling": "liquid", "power_limit_kw": 45}],
         "floor": {"racks_per_row": 32},
         # above 524,288 (the radix-128 three-tier limit) the top tier is a 576-port chassis
         "fabric": {"family": "rail_optimized", "tiers": [{"switch": "th5-128x400"}] * 2 + [
             {"switch": "th5-128x400" if n <= 524288 else "deep-buffer-576x400"}]}}
    t0 = time.perf_counter()
    c = from_dict(d)
    t1 = time.perf_counter()
    f = build(c)
    t2 = time.perf_counter()
    out = describe(f, c)
    t3 = time.perf_counter()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"accelerators": f.n_endpoints, "switches": f.n_switches, "links": f.n_links // 2,
                      "load_s": t1 - t0, "build_s": t2 - t1, "describe_s": t3 - t2, "total_s": t3 - t0,
                      "peak_rss_mb": rss_mb}))
""")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="8192,131072,1048576")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    rows = []
    for n in [int(x) for x in a.sizes.split(",")]:
        runs = []
        for _ in range(a.repeat if n <= 131072 else 1):
            r = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True)
            if r.returncode:
                print(r.stderr, file=sys.stderr)
                raise SystemExit(1)
            runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
        row = dict(runs[0])
        for k in ("load_s", "build_s", "describe_s", "total_s", "peak_rss_mb"):
            row[k] = statistics.median(x[k] for x in runs)
        row["runs"] = len(runs)
        rows.append(row)
    print(f"{'accelerators':>12} {'switches':>9} {'links':>10} {'build s':>8} {'describe s':>10} {'total s':>8} {'peak MB':>8} runs")
    for r in rows:
        print(f"{r['accelerators']:>12,} {r['switches']:>9,} {r['links']:>10,} {r['build_s']:>8.2f} "
              f"{r['describe_s']:>10.2f} {r['total_s']:>8.2f} {r['peak_rss_mb']:>8.0f} {r['runs']:>4}")
    print(json.dumps({"benchmark": "build", "rows": rows}))


if __name__ == "__main__":
    main()
