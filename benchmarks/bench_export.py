"""Exports and report at scale: the 131,072-accelerator reference (examples/reference-131k.yaml).

Builds the plan's ingredients in one run (fabric, in-order placement, routed
metrics with the per-link utilisation and pod matrix that `topo optimize`
stores), then times every export format and the HTML/Markdown report, with
the size of what each writes. The GraphML export is also timed through the
networkx writer on the same fabric unless --skip-networkx, as the reference
the streamed writer is measured against. Prints a table, then one JSON line.

    python benchmarks/bench_export.py [--cluster examples/reference-131k.yaml] [--skip-networkx]
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


def _size(v, tmp: Path, name: str) -> int:
    if callable(v):
        p = tmp / name
        v(p)
        n = p.stat().st_size
        p.unlink()
        return n
    return len(v.encode() if isinstance(v, str) else v)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cluster", default=str(ROOT / "examples" / "reference-131k.yaml"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-networkx", action="store_true")
    a = ap.parse_args(argv)

    import numpy as np
    import yaml

    from topo.io import exports as ex
    from topo.routing.describe import describe, rack_power
    from topo.model.fabric import build
    from topo.io.report import pod_matrix_gbps, render_html, render_markdown
    from topo.routing.engine import analyze
    from topo.model.spec import from_dict
    from topo.traffic.demand import in_order_placement, job_demands

    data = yaml.safe_load(Path(a.cluster).read_text())
    t0 = time.perf_counter()
    c = from_dict(data)
    f = build(c)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    placement = in_order_placement(c, f)
    an = analyze(c, f, placement=placement, seed=a.seed)
    m = dict(an.to_dict())
    m["link_util"] = [float(f"{x:.6g}") for x in np.nan_to_num(np.asarray(an.utilization, float)).tolist()]
    m["pod_matrix_gbps"] = pod_matrix_gbps(f, job_demands(c, f, placement))
    t_route = time.perf_counter() - t0
    rp = rack_power(f, c, busy_servers=np.isin(np.arange(f.n_servers),
                                               np.unique(f.ep_server[np.concatenate(list(placement.values()))])))
    racks = [{"rack": f.rack_name(i), "kw": round(float(rp["kw"][i]), 3), "limit_kw": float(rp["limit_kw"][i])}
             for i in range(f.n_racks)]
    plan = {"plan_version": 1, "seed": a.seed, "cluster_file": data, "cluster_file_after": None,
            "describe_before": describe(f, c), "describe_after": None, "budget": None, "failures": None,
            "placement": {"assignment": {k: v.tolist() for k, v in placement.items()}, "racks": racks,
                          "status": "in-order", "jobs": {k: {"accelerators": len(v)} for k, v in placement.items()}},
            "metrics_before": m, "metrics_after": None}
    plan_json = json.dumps(plan)

    rows = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for name in ex.FORMATS:
            t0 = time.perf_counter()
            try:
                files = ex.render(name, f, plan, c)
            except Exception as e:  # a format that does not apply: record why
                rows.append({"what": name, "seconds": round(time.perf_counter() - t0, 3), "bytes": 0,
                             "note": str(e).splitlines()[-1].strip()[:80]})
                continue
            size = sum(_size(v, tmp, k) for k, v in files.items())
            rows.append({"what": name, "seconds": round(time.perf_counter() - t0, 3), "bytes": size, "note": ""})
        if not a.skip_networkx:
            from topo.model.graphio import write_graphml as nx_write
            t0 = time.perf_counter()
            nx_write(f, tmp / "nx.graphml")
            rows.append({"what": "graphml (networkx writer)", "seconds": round(time.perf_counter() - t0, 3),
                         "bytes": (tmp / "nx.graphml").stat().st_size, "note": "reference"})
        t0 = time.perf_counter()
        html = render_html(plan, fabric_before=f)
        rows.append({"what": "report.html", "seconds": round(time.perf_counter() - t0, 3),
                     "bytes": len(html.encode()), "note": ""})
        t0 = time.perf_counter()
        md, images = render_markdown(plan, fabric_before=f)
        rows.append({"what": "report.md + PNGs", "seconds": round(time.perf_counter() - t0, 3),
                     "bytes": len(md.encode()) + sum(len(v) for v in images.values()), "note": ""})

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    w = max(len(r["what"]) for r in rows)
    print(f"{os.path.basename(a.cluster)}: {f.n_endpoints:,} endpoints, {f.n_servers:,} servers, "
          f"{f.n_links:,} directed links; build {t_build:.2f} s, route + metrics {t_route:.2f} s; "
          f"plan JSON {len(plan_json) / 2**20:.1f} MiB")
    print(f"{'output':<{w}}  {'seconds':>8}  {'MiB':>8}  note")
    for r in rows:
        print(f"{r['what']:<{w}}  {r['seconds']:>8.2f}  {r['bytes'] / 2**20:>8.2f}  {r['note']}")
    print(f"peak RSS {peak_mb:.0f} MiB")
    nxr = next((r for r in rows if r["what"] == "graphml (networkx writer)"), None)
    gml = next(r for r in rows if r["what"] == "graphml")
    out = {"cluster": os.path.basename(a.cluster), "endpoints": f.n_endpoints, "links": f.n_links,
           "build_s": round(t_build, 3), "route_s": round(t_route, 3), "plan_json_bytes": len(plan_json),
           "outputs": {r["what"]: {"seconds": r["seconds"], "bytes": r["bytes"]} for r in rows},
           "graphml_speedup_vs_networkx": round(nxr["seconds"] / gml["seconds"], 1) if nxr and gml["seconds"] else None,
           "report_html_under_5mb": next(r["bytes"] for r in rows if r["what"] == "report.html") < 5_000_000,
           "peak_rss_mb": round(peak_mb)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
