"""`topo optimize` end to end on the 131,072-accelerator reference with 1,000 jobs.

The cluster is examples/reference-131k.yaml with the 1,000-job mix and 30% busy
nodes of benchmarks/bench_place.py. The run is one `topo optimize` process (so
its peak RSS is its own), timed as a whole; the per-stage times come from its
JSON summary. Prints a table and, as the last line, one JSON object.

    python benchmarks/bench_optimize.py [--time-limit 60] [--workers 2] [--seed 1] [--jobs 1000]
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


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1000, help="keep the first N jobs of the mix")
    a = ap.parse_args(argv)
    from bench_place import make_cluster
    c, f, n_busy = make_cluster(a.seed)
    data = c.file.model_dump(mode="json")
    data["jobs"] = data["jobs"][: a.jobs]
    with tempfile.TemporaryDirectory() as tmp:
        cf = Path(tmp) / "cluster.yaml"
        cf.write_text(yaml.safe_dump(data))
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "topo", "optimize", str(cf), "-o", str(out), "--json",
               "--time-limit", str(a.time_limit), "--workers", str(a.workers), "--seed", str(a.seed)]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            raise SystemExit(r.returncode)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        summary = json.loads(r.stdout)
        sizes = {p.relative_to(out).as_posix(): p.stat().st_size for p in out.rglob("*") if p.is_file()}
    report_mb = sizes.get("report.html", 0) / 1e6
    rows = [("accelerators", f"{f.n_endpoints:,}"), ("jobs", f"{len(data['jobs']):,}"), ("busy nodes", f"{n_busy:,}"),
            ("wall time", f"{wall:.1f} s (target 180 s)"), ("peak RSS", f"{peak_mb:,.0f} MB (target 4,096 MB)"),
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
    rows += [(f"stage {k}", f"{v:.1f} s") for k, v in (summary.get("timings_s") or {}).items()]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    print(json.dumps({"benchmark": "optimize", "accelerators": f.n_endpoints, "jobs": len(data["jobs"]),
                      "wall_s": wall, "peak_rss_mb": peak_mb, "report_html_mb": report_mb,
                      "wall_over_target": wall / 180.0, "rss_over_target": peak_mb / 4096.0,
                      "stages_s": summary.get("timings_s"), "sizes_bytes": sizes,
                      "placement": summary["placement"]["status"], "budget": summary["budget"]["status"],
                      "transport_check": tc}))


if __name__ == "__main__":
    main()
