"""Report size at scale: optimize the 131,072-accelerator reference (examples/reference-131k.yaml)
and render its report.

Measures, in one run: wall time of ``topo optimize`` (the pipeline, without writing files; or
``--plan``: a plan.json ``topo optimize`` wrote earlier, e.g. by benchmarks/check_reports.py, so that
the report alone is measured) and of rendering ``report.html`` and ``report.md`` (with its PNG
figures), the size of each against the goal (report.html under 5 MB), every figure's size in the
page (largest first) and the rest of the page, and the cable runs drawn on the floor plan against
the physical links they stand for. Prints a table, then one JSON line with the figures; exit 1 when
report.html is over the goal.

    python benchmarks/bench_report.py [--cluster examples/reference-131k.yaml] [--plan plan.json]
        [--no-failures] [--time-limit 60] [--workers 2] [--seed 1] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's topo, not an installed one
GOAL_BYTES = 5_000_000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cluster", default=str(ROOT / "examples" / "reference-131k.yaml"))
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-failures", action="store_true", help="skip the failure-headroom stage")
    ap.add_argument("--out", default=None, help="also write report.html / report.md here")
    ap.add_argument("--plan", default=None, help="render this plan.json (written by topo optimize for --cluster) "
                                                 "instead of optimizing")
    a = ap.parse_args(argv)

    import topo
    from topo.core.jsonable import to_jsonable
    from topo.io import report as rp
    from topo.io.plan import plan_cluster
    from topo.pipeline import optimize

    t0 = time.perf_counter()
    if a.plan:
        plan = json.loads(Path(a.plan).read_text(encoding="utf-8"))
        t_opt = None
    else:
        c = topo.load(a.cluster)
        plan = json.loads(json.dumps(to_jsonable(optimize(c, time_limit=a.time_limit, seed=a.seed,
                                                          workers=a.workers, failures=not a.no_failures))))
        t_opt = round(time.perf_counter() - t0, 1)
    fa = topo.build(plan_cluster(plan, after=True, base_dir=str(Path(a.cluster).parent)))
    t1 = time.perf_counter()
    html = rp.render_html(plan, fabric_after=fa)
    t_html = time.perf_counter() - t1
    t2 = time.perf_counter()
    md, images = rp.render_markdown(plan, fabric_after=fa)
    t_md = time.perf_counter() - t2
    figs = re.findall(r'<figure id="([^"]+)">(.*?)</figure>', html, re.S)
    fig_bytes = sorted(((len(body.encode()), fid) for fid, body in figs), key=lambda x: (-x[0], x[1]))
    biggest = max(figs, key=lambda f: len(f[1])) if figs else ("", "")
    runs = rp.cable_runs(fa, (plan["cluster_file"].get("floor") or {}).get("leaf_placement", "eor") == "eor")
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.html").write_text(html, encoding="utf-8")
        (out / "report.md").write_text(md, encoding="utf-8")
    res = {"cluster": plan["describe_before"]["name"], "accelerators": plan["describe_before"]["accelerators"],
           "plan": a.plan or "optimized in this run", "optimize_s": t_opt,
           "render_html_s": round(t_html, 2), "render_md_s": round(t_md, 2),
           "html_bytes": len(html.encode()), "goal_bytes": GOAL_BYTES, "md_bytes": len(md.encode()),
           "png_bytes": sum(len(b) for b in images.values()), "figures": len(figs),
           "largest_figure": biggest[0], "largest_figure_bytes": len(biggest[1].encode()),
           "figures_bytes": sum(b for b, _ in fig_bytes), "page_without_figures_bytes":
               len(html.encode()) - sum(b for b, _ in fig_bytes),
           "figure_bytes": {fid: b for b, fid in fig_bytes},
           "cable_runs": len(runs), "physical_links": int(fa.n_links // 2),
           "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    w = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k.ljust(w)}  {v:,}" if isinstance(v, int) else f"{k.ljust(w)}  {v}")
    print(json.dumps(res))
    return 0 if res["html_bytes"] < GOAL_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
