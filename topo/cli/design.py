"""`topo design`: search fabric families, tiers, planes and switch models (parse, call
topo.solve.design, render, write).

Candidates run as independent tasks on the executor `topo sweep` uses: local worker processes
(``--workers``) or a running Dask cluster (``--scheduler``); the result is the same for the same
seed either way.
"""
from __future__ import annotations

import json

import click

from topo.cli.app import _json_default, cluster_arg, emit_json, handle_errors, main
from topo.cli.options import POSITIVE_SECONDS, SEED, TIME_LIMIT, WORKERS, echo, finite


def _money(x) -> str:
    return "n/a" if x is None else f"${x:,.0f}"


def render(d: dict) -> str:
    """The readable summary `topo design` prints (a pure function of the result dict)."""
    from topo.io.render import table
    c = d["counts"]
    out = [f"{d['cluster']}: design search, objective {d['objective']}, survive {d['survive']}"
           + (f", max slowdown {d['max_slowdown']:g}" if d.get("max_slowdown") is not None else ""),
           f"{c['candidates']} candidates: {c['sized']} sized, {c['pruned_by_port_count']} pruned by port count, "
           f"{c['pruned_by_bound']} pruned by bound, "
           f"{c['infeasible']} infeasible, {c['time_limit']} not sized within the time limit, "
           f"{c['too_slow']} too slow; front {c['front']}, dominated {c['dominated']}", ""]
    rows = []
    for r in d["candidates"]:
        if r["status"] not in ("sized",):
            continue
        rows.append([("* " if r["id"] == d["chosen"] else "") + r["id"], "front" if r["on_front"] else "dominated",
                     _money(r["total_usd"]), f"{r['network_kw']:,.1f}", f"{r['job_time_s']:.4g}",
                     f"{r['p95_penalty']:.3f}", f"{round(100 * r['headroom'], 1) + 0.0:.1f}%",
                     " / ".join(f"{n:,}" for n in r["switches_per_tier"])])
    if rows:
        out.append(table(rows, ["candidate", "", "capex + energy", "network kW", "job time (s)", "p95 penalty",
                                "headroom", "switches per tier"]))
    su = [r for r in d["candidates"] if r["status"] == "sized" and r.get("scaleup_cost")]
    if su:
        from topo.core.textsafe import terminal_safe
        out.append("capex + energy and network kW include each candidate's scale-up fabric at the figures the file "
                   "states (node_types[].scaleup.options), not topo's:")
        out.append(table([[r["id"], f"{r['scaleup']:,}", _money(r["scaleup_cost"]["capex_usd"]),
                           _money(r["scaleup_cost"]["energy_usd"]), f"{r['scaleup_cost']['network_kw']:,.1f}",
                           _money(r["fabric_total_usd"]),
                           "; ".join(f"{terminal_safe(p['node_type'])}: {p['accelerators']:,} x ${p['cost_usd_per_accelerator']:,.0f}, "
                                     f"{p['watts_per_accelerator']:g} W ({p['stated_by']})"
                                     for p in r["scaleup_cost"]["node_types"])] for r in su],
                         ["candidate", "scale-up size", "scale-up capex", "scale-up energy", "scale-up kW",
                          "scale-out capex + energy", "stated figures"]))
    if d.get("chosen"):
        out.append(f"* chosen by {d['objective']}: {d['chosen']}")
    lost = d.get("dominated") or []
    if lost:
        out.append("")
        out.append(table([[x["id"], x["by"], ", ".join(x["worse_on"])] for x in lost],
                         ["dominated", "by", "worse on"]))
    other = [r for r in d["candidates"] if r["status"] not in ("sized",)]
    if other:
        out.append("")
        out.append(table([[r["id"], r["status"].replace("_", " "), r.get("reason", "")[:110]] for r in other],
                         ["not on the front", "status", "why"]))
    return "\n".join(out)


@main.command()
@cluster_arg
@click.option("--families", default=None, metavar="clos,rail_optimized,rail_only",
              help="fabric families searched (default: all three)")
@click.option("--switches", default=None, metavar="catalog|NAME,...",
              help="switch models searched, one per candidate on every tier: 'catalog' or names "
                   "(default: the file's own models)")
@click.option("--tiers", "tier_counts", default="1,2,3", show_default=True, metavar="N,...",
              help="tier counts searched")
@click.option("--objective", type=click.Choice(["cost", "power", "balanced"]), default=None,
              help="each candidate's budget objective and the front point chosen (default: goals.objective)")
@click.option("--max-slowdown", type=finite(1.0, 1e6), default=None,
              help="set aside candidates whose summed job time exceeds this multiple of the fastest candidate's")
@click.option("--survive", type=click.Choice(["none", "link", "switch", "plane"]), default=None,
              help="failure every candidate must survive (default: goals.survive)")
@click.option("--time-limit", type=TIME_LIMIT, default=None,
              help="the budget's time limit per candidate, seconds (default: goals.time_limit_s)")
@click.option("--seed", type=SEED, default=None, help="solver and routing seed (default: goals.seed)")
@click.option("--workers", type=WORKERS, default=None, help="local worker processes (default: one, in this process)")
@click.option("--scheduler", default=None, help="address of a running Dask scheduler, e.g. tcp://host:8786")
@click.option("--connect-timeout", type=POSITIVE_SECONDS, default=10.0, show_default=True,
              help="seconds to reach --scheduler")
@click.option("--mixed-tiers", "mixed_tiers", is_flag=True,
              help="choose each tier's switch model on its own among --switches (every combination, leaf first); "
                   "default: one model on every tier")
@click.option("--tapers", default=None, metavar="R,...",
              help="oversubscription caps searched per tier (e.g. 1,2,4): each leaf cap (and spine cap on 3 tiers) "
                   "is a candidate, sized as the cheapest budget within it (default: the budget's cheapest taper)")
@click.option("--scaleup", default=None, metavar="N,...",
              help="scale-up domain sizes searched (e.g. 8,72): each a candidate, its scale-up fabric's cost and power "
                   "taken from node_types[].scaleup.options and added to capex, energy and network kW "
                   "(default: each node type's own size, no scale-up cost)")
@click.option("--no-prune", "no_prune", is_flag=True,
              help="size every candidate the port count allows (no pruning by bound; the same front, slower)")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
@click.option("-o", "output", type=click.Path(file_okay=False), default=None,
              help="write design.json (every candidate, the front, each winner's cluster file) to this directory")
@click.option("--force", is_flag=True, help="replace an existing -o directory")
@handle_errors
def design(cluster, families, switches, tier_counts, objective, max_slowdown, survive, time_limit, seed, workers,
           scheduler, connect_timeout, mixed_tiers, tapers, scaleup, no_prune, as_json, output, force):
    """Search fabric families x tiers x planes x switch models for CLUSTER's jobs; print the Pareto front."""
    import contextlib

    from topo.core.errors import SpecError
    from topo.model.spec import load
    from topo.solve.design import design as _design
    try:
        tiers = tuple(int(x) for x in tier_counts.split(",") if x.strip())
    except ValueError:
        raise SpecError([("--tiers", f"expected tier counts like 2,3 (found {tier_counts!r})")])
    if output is not None:
        from topo.core.atomic import check_output_dir
        check_output_dir(output, force, protect=[cluster])
    c = load(cluster)
    if workers is None and scheduler is None:
        ctx = contextlib.nullcontext(None)
    else:
        from topo.study.executor import open_executor
        ctx = open_executor(workers=workers, scheduler=scheduler, connect_timeout_s=connect_timeout)
    with ctx as ex:
        try:
            r = _design(c, families=families, switches=switches, tiers=tiers, objective=objective,
                        max_slowdown=max_slowdown, survive=survive, seed=seed, time_limit=time_limit, executor=ex,
                        prune=not no_prune, mixed_tiers=mixed_tiers, tapers=tapers, scaleup=scaleup)
        except SpecError as e:
            raise e.renamed({"tapers": "--tapers", "switches": "--switches", "families": "--families",
                             "scaleup": "--scaleup"})
    d = r.to_dict()
    if output is not None:
        from topo.core.atomic import OutputDir
        with OutputDir(output, force=force) as od:
            od.write_text("design.json", json.dumps(d, default=_json_default) + "\n")
    if as_json:
        emit_json(d)
    else:
        echo(render(d))
        if output is not None:
            echo(f"wrote {output}/design.json")
