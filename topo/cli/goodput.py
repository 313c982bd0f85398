"""`topo goodput`: a thin command over topo.study.goodput (parse, call, render)."""
from __future__ import annotations

import click

from topo.cli.app import cluster_arg, emit_json, handle_errors, main
from topo.cli.options import SEED, _Finite, echo

DAYS = _Finite(0.0, 36500.0, open_lo=True, unit=" days")
SECONDS = _Finite(0.0, 86400.0, unit=" seconds")
HOURS = _Finite(0.0, 87600.0, unit=" hours")
POSITIVE = _Finite(0.0, 1e9, open_lo=True)
NONNEG = _Finite(0.0, 1e9)


def _f(x, nd=3):
    return "-" if x is None else f"{x:.{nd}f}"


def render(d: dict, top: int = 30) -> str:
    ck = d["checkpoint"]
    out = [f"goodput of {d['cluster']} over a {d['run_days']:g}-day run ({d['placement']}; {d['seconds']:.2f} s)",
           "checkpoint: " + (f"write {ck['write_s']:g} s, restart {ck['restart_s']:g} s ({ck['source']})"
                             if ck["write_s"] is not None else ck["source"])]
    jobs = sorted(d["jobs"], key=lambda r: (-(r["stopping_per_hour"] or 0.0), r["name"]))
    if not jobs:
        out.append("no placed jobs")
    else:
        out.append(f"  {'job':<24}{'accel':>8}{'MTBI h':>9}{'interrupts':>11}{'ckpt every s':>13}{'goodput':>9}"
                   f"{'degraded':>10}  dominant causes")
        for r in jobs[:top]:
            dom = ", ".join(f"{x['component']} {100 * x['share']:.0f}%" for x in r["dominant"])
            out.append(f"  {r['name'][:23]:<24}{r['accelerators']:>8}{_f(r['mtbi_h'], 2):>9}"
                       f"{r['interruptions']:>11.1f}{_f(r['checkpoint_interval_s'], 0):>13}"
                       f"{_f(r['goodput']):>9}{r['degraded_events']:>10.1f}  {dom or '-'}")
        if len(jobs) > top:
            out.append(f"  ... {len(jobs) - top} more jobs (--json for all)")
    t = d["totals"]
    if t:
        out.append(f"all jobs: {t['interruptions']:.1f} interruptions expected"
                   + (f", accelerator-weighted goodput {t['goodput_weighted']:.3f} (lowest: {t['lowest_goodput_job']})"
                      if "goodput_weighted" in t else ""))
    for kind, b in d["blast_radius"].items():
        w = b["worst"][0] if b["worst"] else None
        out.append(f"blast radius per {kind} ({b['domains']:,}): at most {b['max_jobs_stopped']} job(s) and "
                   f"{b['max_accelerators_stopped']:,} accelerators stopped, {b['mean_accelerators_stopped']:.1f} on average"
                   + (f"; worst {w['name']}: {', '.join(w['jobs']) or '-'}" if w and w["jobs_stopped"] else ""))
    mc = d.get("monte_carlo")
    if mc:
        out.append(f"Monte Carlo ({mc['trials']} runs, seed {mc['seed']}) of {mc['job']}: goodput {mc['goodput']:.4f} "
                   f"(95% CI {mc['goodput_ci95'][0]:.4f} .. {mc['goodput_ci95'][1]:.4f}; analytic "
                   f"{mc['analytic_goodput']:.4f}), interruptions {mc['interruptions']:.1f} "
                   f"(analytic {mc['analytic_interruptions']:.1f})")
    fd = d.get("failure_domains")
    if fd:
        rule = (f"at most {fd['max_share']:g} of a job per {fd['level']}" if fd["mode"] == "spread"
                else f"each job in at most {fd['max_domains']} {fd['level']}(s)")
        out.append(f"failure domains: {fd['mode']} by {fd['level']} ({rule}); with / without the rule:")
        pw, po = fd["placement"]["with"], fd["placement"]["without"]
        gw, go = fd["goodput"]["with"], fd["goodput"]["without"]
        rows = [("placement cost", f"{pw['placement_cost']:,}", f"{po['placement_cost']:,}"),
                ("traffic leaving a leaf, GB", f"{pw['cross_leaf_bytes'] / 1e9:,.1f}", f"{po['cross_leaf_bytes'] / 1e9:,.1f}"),
                ("traffic leaving a pod, GB", f"{pw['super_spine_bytes'] / 1e9:,.1f}", f"{po['super_spine_bytes'] / 1e9:,.1f}"),
                (f"most jobs stopped by one {fd['level']}", str(gw["max_jobs_stopped"]), str(go["max_jobs_stopped"])),
                (f"mean jobs stopped per {fd['level']}", _f(gw["mean_jobs_stopped"]), _f(go["mean_jobs_stopped"])),
                (f"most accelerators stopped by one {fd['level']}", str(gw["max_accelerators_stopped"]),
                 str(go["max_accelerators_stopped"])),
                ("interruptions expected (all jobs)", _f(gw["interruptions"], 1), _f(go["interruptions"], 1)),
                ("accelerator-weighted goodput", _f(gw["goodput_weighted"], 4), _f(go["goodput_weighted"], 4))]
        for label, a, b in rows:
            out.append(f"  {label:<40} {a:>14} {b:>14}")
    sp = d.get("spares")
    if sp:
        out.append(f"hot spares per {sp['scope']} ({sp['per_domain']} per domain and node type, CP-SAT {sp['status']}, "
                   f"checked): {sp['spare_nodes']} node(s), {sp['accelerators_held']} accelerators held back"
                   + (f": {', '.join(sp['spares'][:12])}{' ...' if len(sp['spares']) > 12 else ''}" if sp["spares"] else ""))
        for x in sp["short"][:10]:
            out.append(f"  short: {x['domain']} lacks {x['missing']} idle {x['node_type']} node(s) (none free there, or its racks' power has no room)")
        if len(sp["short"]) > 10:
            out.append(f"  ... {len(sp['short']) - 10} more domains short")
    return "\n".join(out)


@main.command()
@cluster_arg
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False), help="use this plan's placement")
@click.option("--run-days", "run_days", type=DAYS, default=30.0, show_default=True, help="wall-clock run length")
@click.option("--checkpoint-s", "checkpoint_s", type=SECONDS, help="checkpoint write time (default: failure_rates.checkpoint_s)")
@click.option("--restart-s", "restart_s", type=SECONDS, help="restart time after a stopping failure")
@click.option("--checkpoint-gb", "checkpoint_gb", type=NONNEG, help="checkpoint size, GB (with --storage-gbps)")
@click.option("--storage-gbps", "storage_gbps", type=POSITIVE, help="storage bandwidth per job, Gb/s")
@click.option("--restart-overhead-s", "restart_overhead_s", type=SECONDS,
              help="restart time besides reading the checkpoint back (with --checkpoint-gb)")
@click.option("--repair-hours", "repair_hours", type=HOURS, help="how long a degraded failure lasts")
@click.option("--failures/--no-failures", "with_failures", default=False, show_default=True,
              help="run the failure analysis for the slowdowns of degraded failures (routes traffic)")
@click.option("--monte-carlo", "monte_carlo_trials", type=click.IntRange(0, 100_000), default=0, show_default=True,
              help="simulate the largest job's run N times beside the analytic goodput")
@click.option("--spares", "spares_scope", type=click.Choice(["rack", "leaf", "pod"]),
              help="choose hot-spare nodes with CP-SAT so that node failures are restored within each rack, leaf or pod")
@click.option("--spares-per-domain", "spares_per_domain", type=click.IntRange(1, 64), default=1, show_default=True,
              help="node failures each domain must restore")
@click.option("--spread", "spread", metavar="LEVEL:SHARE",
              help="place the jobs (CP-SAT) with at most SHARE of each behind one rack, leaf or pod, and compare "
                   "goodput and blast radius with the placement without it")
@click.option("--pack", "pack", metavar="LEVEL:N",
              help="place the jobs with each in at most N racks, leaves or pods, and compare as --spread does")
@click.option("--time-limit", "time_limit", type=POSITIVE,
              help="seconds for each CP-SAT run (spares, --spread/--pack placement); default goals.time_limit_s")
@click.option("--seed", type=SEED, help="Monte Carlo and CP-SAT seed (default: goals.seed)")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
@handle_errors
def goodput(cluster, plan_path, run_days, checkpoint_s, restart_s, checkpoint_gb, storage_gbps, restart_overhead_s,
            repair_hours, with_failures, monte_carlo_trials, spares_scope, spares_per_domain, spread, pack, time_limit,
            seed, as_json):
    """Interruptions, checkpoint interval and goodput of every placed job, and the blast radius of each failure domain."""
    from topo.model.fabric import build
    from topo.model.spec import load
    from topo.study.goodput import goodput as run
    c = load(cluster)
    fab = build(c)
    from topo.pipeline import read_placement
    from topo.core.errors import SpecError
    from topo.solve.placement import failure_domains_from_text
    rule = failure_domains_from_text(spread, pack)
    if rule is not None and plan_path:
        raise SpecError([("--plan", f"--{rule['mode']} places the jobs itself; give it or --plan, not both")])
    placement = read_placement(plan_path, c, fab) if plan_path else None
    fail = None
    if with_failures:
        from topo.study.failures import analyze_failures
        fail = analyze_failures(c, fab, placement, single=True, traffic=True, kinds=("switch", "link", "plane"))
    res = run(c, fab, placement, run_days=run_days, checkpoint_s=checkpoint_s, restart_s=restart_s,
              checkpoint_gb=checkpoint_gb, storage_gbps=storage_gbps, restart_overhead_s=restart_overhead_s,
              failures=fail, repair_hours=repair_hours, monte_carlo_trials=monte_carlo_trials, seed=seed,
              spares_scope=spares_scope, spares_per_domain=spares_per_domain, failure_domains=rule,
              time_limit=time_limit)
    d = res.to_dict()
    if as_json:
        emit_json(d)  # json escapes every control character
    else:
        echo(render(d))
