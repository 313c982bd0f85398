"""The report of every shipped example, laid out by headless Chromium at 1280 px.

For each ``examples/*.yaml`` (one at a time): ``topo optimize`` (fixed seed, one worker, a short
time limit) into ``OUT/<example>/``, then ``topo report`` re-renders the report from that plan with
this checkout's code, then the page is measured in headless Chromium with the measurements
``tests/test_report_browser.py`` makes (``topo.io.report.measure_layout``): the document no wider than
the window, no element past its right edge or scrolling sideways, every figure with an SVG, an
aria-label and a caption, the figures a plan with a budget must have, the summary's cards and job
table inside the first screen (800 px), no column header that is a raw field name. Writes a
screenshot of the first screen and of the whole page beside each report and prints one table row
per example, then one JSON line per example; exit 1 when any check fails. An example that
``topo optimize`` refuses (exit 2, e.g. a fabric the link budget has no model for) has no plan and
no report: it is listed as refused with topo's message, not counted as a failure.

    python benchmarks/check_reports.py [--out DIR] [--only NAME,...] [--skip NAME,...] [--reuse]
        [--time-limit S] [--no-failures NAME,...]

``--reuse`` keeps a plan.json already in ``OUT/<example>/`` (the optimize step is then reported as
reused, with the time the earlier run recorded). ``reference-1m`` is skipped unless named in
``--only`` (it needs up to 16 GB and most of an hour on two cores).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's topo, not an installed one
BIG = ("reference-1m",)
TIME_LIMIT_S = 10.0


def _topo(args: list, log: Path) -> tuple[int, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    with open(log, "a", encoding="utf-8") as fh:
        fh.write("$ topo " + " ".join(args) + "\n")
        fh.flush()
        rc = subprocess.run([sys.executable, "-m", "topo", *args], stdout=fh, stderr=subprocess.STDOUT, env=env,
                            cwd=ROOT).returncode
    return rc, time.perf_counter() - t0


def _optimize(ex: Path, d: Path, a) -> dict:
    """plan.json for one example: run ``topo optimize`` (or reuse an earlier run's)."""
    rec = d / "optimize.json"
    if a.reuse and (d / "plan.json").exists() and rec.exists():
        r = json.loads(rec.read_text())
        return dict(r, reused=True)
    args = ["optimize", str(ex), "-o", str(d), "--force", "--seed", "1", "--workers", "1",
            "--time-limit", f"{a.time_limit:g}"]
    if ex.stem in a.no_failures:
        args.append("--no-failures")
    d.parent.mkdir(parents=True, exist_ok=True)
    log = d.parent / f"{ex.stem}.log"
    log.write_text("")
    rc, s = _topo(args, log)
    r = {"command": "topo " + " ".join(args), "rc": rc, "optimize_s": round(s, 1)}
    if rc == 0:
        rec.write_text(json.dumps(r))
    return dict(r, reused=False)


def check(ex: Path, a) -> dict:
    from topo.io import report as rp
    d = Path(a.out) / ex.stem
    res = {"example": ex.stem}
    res.update(_optimize(ex, d, a))
    if res["rc"] != 0:
        log = Path(a.out) / f"{ex.stem}.log"
        lines = [x.strip() for x in log.read_text(encoding="utf-8").splitlines()[1:] if x.strip()]
        # exit 2: the example is refused by `topo optimize` (bad input or a combination it cannot honour):
        # no plan, so no report to check; reported as refused with topo's own message, not as a layout failure
        res["ok"] = None if res["rc"] == 2 else False
        res["why"] = (f"refused by topo optimize (exit 2): {' '.join(lines[-2:])[:300]}" if res["rc"] == 2 else
                      f"topo optimize exit {res['rc']} (see {log})")
        return res
    rdir = d / "report-check"
    rc, s = _topo(["report", str(d / "plan.json"), "-o", str(rdir), "--force"], Path(a.out) / f"{ex.stem}.log")
    res["report_s"] = round(s, 1)
    if rc != 0:
        return dict(res, ok=False, why=f"topo report exit {rc}")
    html = (rdir / "report.html").read_text(encoding="utf-8")
    plan = json.loads((d / "plan.json").read_text())
    res["html_bytes"] = len(html.encode())
    m = rp.measure_layout(html, screenshot=rdir / "screen-1280.png", full_page=rdir / "page-1280.png")
    expected = {"fig-tiers", "fig-floor", "fig-peaks"}
    # with a budget the chosen plane 0 is the right half of the before/after figure, else its own figure
    expected |= {"fig-cost", "fig-before-after"} if plan.get("budget") else {"fig-plane-0"}
    if plan.get("serving"):
        expected |= {"fig-serving"}
    if plan.get("front_end"):
        expected |= {"fig-front-end"}
    missing = sorted(expected - set(m["figs"]))
    res.update(doc_px=m["doc"], height_px=m["height"], wide=m["nbad"], wide_first=m["bad"][:3],
               figures=len(m["figs"]), missing=missing, no_caption=m["nofig"], headers=len(m["heads"]),
               raw_headers=m["raw_heads"], kpis=m["kpis"], summary_bottom_px=m["summary_bottom"])
    fails = []
    if m["doc"] > rp.LAYOUT_WIDTH or m["nbad"]:
        fails.append("wider than the window")
    if missing or m["nofig"]:
        fails.append("figure missing or without alt text/caption")
    if m["kpis"] < 3 or m["summary_bottom"] > rp.LAYOUT_SCREEN:
        fails.append("summary not in the first screen")
    if m["raw_heads"]:
        fails.append("raw field names as headers")
    res["ok"] = not fails
    res["why"] = "; ".join(fails)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "out" / "check-reports"))
    ap.add_argument("--only", default="", help="comma-separated example names (file stems), checked in this order")
    ap.add_argument("--skip", default="", help="comma-separated example names to leave out")
    ap.add_argument("--reuse", action="store_true", help="reuse OUT/<example>/plan.json from an earlier run")
    ap.add_argument("--time-limit", type=float, default=TIME_LIMIT_S, help="seconds per solver")
    ap.add_argument("--no-failures", default="", help="examples optimized without the failure stage")
    a = ap.parse_args(argv)
    only = [x for x in a.only.split(",") if x]
    skip = set(x for x in a.skip.split(",") if x) | (set() if only else set(BIG))
    a.no_failures = set(x for x in a.no_failures.split(",") if x)
    exs = sorted((p for p in (ROOT / "examples").glob("*.yaml") if (not only or p.stem in only) and p.stem not in skip),
                 key=lambda p: (only.index(p.stem) if only else 0, p.stem))     # --only's order, else by name
    rows = []
    cols = ("example", "optimize_s", "report_s", "html_bytes", "doc_px", "wide", "figures", "missing", "no_caption",
            "raw_headers", "kpis", "summary_bottom_px", "ok")
    print(" | ".join(cols), flush=True)
    for ex in exs:
        r = check(ex, a)
        rows.append(r)
        print(" | ".join(str(r.get(c, "-")) + ("*" if c == "optimize_s" and r.get("reused") else "") for c in cols)
              + (f" | {r['why']}" if r.get("why") else ""), flush=True)
    for r in rows:
        print(json.dumps(r))
    refused = [r["example"] for r in rows if r["ok"] is None]
    print(f"{sum(r['ok'] is True for r in rows)} of {len(rows)} examples pass, "
          f"{sum(r['ok'] is False for r in rows)} fail, {len(refused)} refused by topo optimize "
          f"({', '.join(refused) or 'none'}; no plan to report on) ('*': plan reused from an earlier run); "
          f"skipped: {', '.join(sorted(skip & {p.stem for p in (ROOT / 'examples').glob('*.yaml')})) or 'none'}")
    return 1 if any(r["ok"] is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
