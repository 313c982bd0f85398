"""The `topo` command line: parse, call the library, render, write.

Exit codes: 0 success, 2 bad input (names the JSON path), 1 a solver or run
found nothing usable. Messages go to stderr; `--json` output alone to stdout.
"""
from __future__ import annotations

import functools
import json
import sys

import click
from typing import Optional

from topo.cli.options import echo, force_option, json_option, solver_options
from topo.core.errors import SpecError, TopoError


def handle_errors(fn):
    """Turn topo errors into one clear message and an exit code, no traceback.

    Inside, SIGINT raises KeyboardInterrupt and SIGTERM raises
    topo.core.signals.Terminated (so clean-up runs); they exit 130 and 143 with one
    line on stderr.
    """
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        from topo.core.signals import Terminated, exit_code, handled
        try:
            with handled():
                return fn(*a, **kw)
        except TopoError as e:
            if isinstance(e, SpecError):
                e = e.renamed(_flag_names())
            echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except (KeyboardInterrupt, Terminated) as e:
            what = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted (SIGINT)"
            click.echo(f"{what}; nothing half-written was left behind", err=True)
            sys.exit(exit_code(e))
    return wrapper


def _flag_names() -> dict[str, str]:
    """Library parameter names -> this command's flags (``time_limit`` -> ``--time-limit``): by the
    option's destination and by its long flag's own name (``format`` -> ``--format`` for ``fmt``)."""
    from topo.model.spec import ClusterFile
    ctx = click.get_current_context(silent=True)
    names: dict[str, str] = {}
    file_keys = set(ClusterFile.model_fields)   # a cluster-file path (traffic[0], jobs[1]) is never a flag
    for p in (ctx.command.params if ctx else []):
        longs = [o for o in getattr(p, "opts", []) if o.startswith("--")]
        if isinstance(p, click.Option) and longs:
            names.setdefault(p.name, longs[0])
            for o in longs:
                names.setdefault(o[2:].replace("-", "_"), o)
    return {k: v for k, v in names.items() if k not in file_keys}


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=_json_default))


def _json_default(o):
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


cluster_arg = click.argument("cluster", type=click.Path(dir_okay=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="topo")
def main():
    """topo: accelerator-cluster network-topology optimizer."""


@main.command()
@cluster_arg
@handle_errors
def validate(cluster):
    """Check a cluster file; print OK or every error with its JSON path."""
    from topo.model.spec import load
    from topo.validate import validate as _validate
    c = load(cluster)
    n = _validate(c)  # the fabric, placement inputs and traffic files too: all but solving
    echo(f"OK: {cluster}: {n['accelerators']:,} accelerators, {n['nodes']:,} nodes, {n['racks']:,} racks")


@main.command()
@click.option("--plan", "plan", is_flag=True, help="the schema of plan.json (written by topo optimize) instead")
def schema(plan):
    """Print the JSON Schema of the cluster file (or, with --plan, of plan.json)."""
    if plan:
        from topo.io.plan import plan_json_schema
        emit_json(plan_json_schema())
        return
    from topo.model.spec import json_schema
    emit_json(json_schema())


fabric_option = click.option(
    "--fabric", "which_fabric", type=click.Choice(["back-end", "front-end"]), default="back-end", show_default=True,
    help="the fabric to act on: the back-end `fabric`, or the front-end fabric of the file's front_end section")


@main.command()
@cluster_arg
@fabric_option
@json_option()
@handle_errors
def describe(cluster, which_fabric, as_json):
    """Show the fabric a cluster file implies, at full size."""
    from topo.model.spec import load
    from topo.model.frontend import derived_values, platform_unverified
    from topo.model.frontend_build import for_fabric
    from topo.routing.describe import describe as _describe
    from topo.io.render import describe_text
    c0 = load(cluster)
    c, fab = for_fabric(c0, which_fabric)
    d = _describe(fab, c)
    # the design search's scale-up options: the file's own figures, shown as stated (topo has none of its own)
    su = [{"stated_by": f"node_types[{i}].scaleup.options[{j}]", "node_type": nt.name, "size": o.size,
           "cost_usd_per_accelerator": o.cost_usd_per_accelerator, "watts_per_accelerator": o.watts_per_accelerator,
           "source": "stated by the file"}
          for i, nt in enumerate(c0.file.node_types) if nt.scaleup and nt.scaleup.options
          for j, o in enumerate(nt.scaleup.options)]
    if su:
        d["scaleup_options"] = su
    if c0.file.front_end is not None:
        # which fabric this is, and the front_end section's values derived rather than read
        d["fabric"] = which_fabric
        if which_fabric == "front-end":
            # its endpoints are hosts (one per node), not accelerators
            bis = d.get("bisection_gbps")
            d["bisection_per_accelerator_gbps"] = d["injection_gbps_per_accelerator"] = None
            d["bisection_per_host_gbps"] = None if bis is None else bis * 2 / max(fab.n_endpoints, 1)
            # the derived node types state every figure; their platforms' unverified ones stay marked
            uv = {(x["kind"], x["name"], tuple(x["fields"]), x["source"]): x
                  for x in list(d.get("unverified_figures") or []) + platform_unverified(c0)}
            d["unverified_figures"] = [uv[k] for k in sorted(uv)]
        if d.get("structure") is not None:
            d["structure"]["derived"] = list(d["structure"]["derived"]) + derived_values(c0)
        else:
            d["front_end_derived"] = derived_values(c0)
    if as_json:
        emit_json(d)
    else:
        if "fabric" in d:
            echo(f"{which_fabric} fabric" + ("" if which_fabric != "front-end" else
                 f": one endpoint per host ({fab.n_endpoints:,}, named <host>-g0), bisection per host "
                 f"{'n/a' if d['bisection_per_host_gbps'] is None else format(d['bisection_per_host_gbps'], ',.1f')} Gb/s"))
        echo(describe_text(d))
        if su:
            from topo.core.textsafe import terminal_safe
            echo("scale-up options for topo design --scaleup (as stated by the file, not topo's figures):")
            for x in su:
                echo(f"  {terminal_safe(x['node_type'])}: domain of {x['size']:,}: ${x['cost_usd_per_accelerator']:,.2f} "
                     f"and {x['watts_per_accelerator']:g} W per accelerator ({x['stated_by']})")


@main.command()
@cluster_arg
@click.option("-o", "--out", "out_dir", default="out", show_default=True, type=click.Path(file_okay=False),
              help="output directory (written atomically)")
@solver_options(what="solver")
@click.option("--objective", type=click.Choice(["cost", "power", "balanced"]), default=None,
              help="what the link budget minimises (default goals.objective)")
@force_option("replace an existing output directory")
@click.option("--no-failures", is_flag=True, help="skip the failure-headroom stage")
@click.option("--design", "design", is_flag=True,
              help="first search fabric families x tiers x planes x switch models (as topo design) and carry the "
                   "chosen design through placement, budget, routing and failures")
@click.option("--families", default=None, metavar="clos,rail_optimized,rail_only",
              help="with --design: fabric families searched (default: all three)")
@click.option("--switches", default=None, metavar="catalog|NAME,...",
              help="with --design: switch models searched (default: the file's own)")
@click.option("--tiers", "tiers", default=None, metavar="2,3",
              help="with --design: tier counts searched (default 2,3; one tier has no link budget to size)")
@click.option("--tapers", default=None, metavar="R,...",
              help="with --design: oversubscription caps searched per tier, each a candidate (as topo design)")
@click.option("--mixed-tiers", "mixed_tiers", is_flag=True,
              help="with --design: each tier's switch model chosen on its own (as topo design)")
@click.option("--scaleup", default=None, metavar="N,...",
              help="with --design: scale-up domain sizes searched, at the cost and power node_types[].scaleup.options "
                   "states (as topo design)")
@json_option("print one JSON summary on stdout")
@handle_errors
def optimize(cluster, out_dir, time_limit, seed, workers, objective, force, no_failures, design, families, switches,
             tiers, tapers, mixed_tiers, scaleup, as_json):
    """Place jobs, size the link budget, and write plan, report and exports."""
    from topo.core.atomic import check_output_dir, output_lock
    from topo.core.errors import SpecError
    from topo.pipeline import optimize as run, render_outputs, write_outputs
    from topo.core.signals import resync
    from topo.model.spec import load
    if time_limit is not None and time_limit <= 0:
        raise SpecError([("--time-limit", f"must be positive (found {time_limit:g})")])
    if workers is not None and workers < 1:
        raise SpecError([("--workers", f"must be at least 1 (found {workers})")])
    given = {k: v for k, v in (("families", families), ("switches", switches), ("tiers", tiers), ("tapers", tapers),
                               ("mixed_tiers", mixed_tiers or None), ("scaleup", scaleup)) if v is not None}
    if not design and given:
        raise SpecError([(f"--{next(iter(given)).replace('_', '-')}", "only with --design")])
    if "tiers" in given:
        try:
            given["tiers"] = tuple(int(x) for x in tiers.split(",") if x.strip())
        except ValueError:
            raise SpecError([("--tiers", f"expected tier counts like 2,3 (found {tiers!r})")]) from None
    search = (given or True) if design else None
    # fail before the long work, not after it: refuses -o . / .. / a parent of the cluster file too
    check_output_dir(out_dir, force, protect=(cluster,))
    # one run per output directory: a second one fails here (exit 2); leftovers of killed runs are cleaned
    with output_lock(out_dir):
        check_output_dir(out_dir, force, protect=(cluster,))
        c = load(cluster)
        plan = run(c, time_limit=time_limit, seed=seed, workers=workers, failures=not no_failures, objective=objective,
                   progress=sys.stderr.isatty() and not as_json, on_stage=lambda *_: resync(), design=search)
        files = render_outputs(plan)
        written = write_outputs(files, out_dir, force=force)
    summary = optimize_summary(plan, out_dir, written)
    ds = plan.get("design")
    if ds:
        summary["design"] = {"chosen": ds["chosen"], "front": ds["front"], "counts": ds["counts"]}
    fe = plan.get("front_end")
    if fe:
        summary["front_end"] = front_end_summary(fe)
        if "budget" in fe:   # the front-end's own link budget (topo.pipeline.front_end_budget)
            summary["front_end"]["budget"] = front_end_budget_summary(fe)
    if as_json:
        emit_json(summary)
    else:
        from topo.io.render import optimize_text
        echo(optimize_text(summary))
        if ds:
            echo(design_line(ds))
        if fe:
            echo(front_end_line(summary["front_end"]))
            if "budget" in summary["front_end"]:
                echo(front_end_budget_line(summary["front_end"]["budget"]))


def front_end_summary(fe: dict) -> dict:
    """The front-end part of `topo optimize --json`: peak utilisation per link tier (fluid and the
    transport's model) and each deployment's agent traffic."""
    return {"switches": fe["switches"], "links": fe["links"], "routing": fe.get("routing"),
            "max_util": fe["max_util"], "max_util_transport": fe["max_util_transport"],
            "tiers": {t["tier"]: t["util_max"] for t in fe["tiers"]},
            "tiers_transport": {t["tier"]: t["util_max"] for t in fe["tiers_transport"]},
            "deployments": {d["name"]: {"agent_bytes_per_s": sum(d["bytes_per_s"].values()),
                                        "max_requests_per_s_at_target": d["max_requests_per_s_at_target"]}
                            for d in fe["deployments"]}}


def front_end_line(fe: dict) -> str:
    """The line `topo optimize` prints for the front-end fabric."""
    from topo.core.textsafe import terminal_safe
    tiers = ", ".join(f"{t} {u:.4f}" for t, u in fe["tiers"].items())
    tt = ", ".join(f"{t} {u:.4f}" for t, u in fe["tiers_transport"].items())
    deps = "; ".join(f"{terminal_safe(n)} {d['agent_bytes_per_s'] / 1e9:,.4g} GB/s" for n, d in fe["deployments"].items())
    return (f"front-end fabric ({fe['switches']:,} switches, {fe['links']:,} links): agent traffic {deps}; peak util "
            f"per tier {tiers} (fluid), {tt} ({terminal_safe(str(fe['routing']))})")


def front_end_budget_summary(fe: dict) -> dict:
    """The front-end budget part of `topo optimize --json` (from the plan's ``front_end`` section)."""
    b = fe.get("budget")
    if not b:
        return {"sized": False, "why": fe.get("budget_not_sized")}
    c = b["cost"]
    return {"sized": True, "status": b["solver"]["status"], "objective": b["objective"],
            "target_utilization": b["target_utilization"], "check_ok": b["check"].get("ok"),
            "tiers": {t["tier"]: {"model": t["model"], "switches": t["switches"], "switches_as_given": t["switches_as_given"],
                                  "oversubscription": t["oversubscription"],
                                  "oversubscription_as_given": t["oversubscription_as_given"]} for t in b["tiers"]},
            "utilization_after": {k: u["routed_after"] for k, u in b["utilization"].items()},
            "total_usd": c["chosen"]["total_usd"], "total_usd_as_given": c["as_given"]["total_usd"]}


def front_end_budget_line(s: dict) -> str:
    """The line `topo optimize` prints for the front-end budget."""
    from topo.core.textsafe import terminal_safe
    if not s["sized"]:
        return f"front-end budget: not sized ({terminal_safe(str(s['why']))})"
    tiers = ", ".join(f"{k} {t['switches']:,} x {terminal_safe(t['model'])} at {_ratio(t['oversubscription'])} "
                      f"(was {t['switches_as_given']:,} at {_ratio(t['oversubscription_as_given'])})"
                      for k, t in s["tiers"].items())
    util = ", ".join(f"{k} {'n/a' if u is None else f'{100 * u:.1f}%'}" for k, u in s["utilization_after"].items())
    return (f"front-end budget ({s['status']}, {s['objective']}, target {s['target_utilization']:g}): {tiers}; "
            f"routed peak {util}; total {_usd(s['total_usd'])} (as given {_usd(s['total_usd_as_given'])}); "
            f"independent check {'passed' if s['check_ok'] else 'FAILED'}")


def _ratio(x) -> str:
    return "n/a" if x is None else f"{x:.3g}:1"


def _usd(x) -> str:
    return "n/a" if x is None else f"${x:,.0f}"

def design_line(ds: dict) -> str:
    """The line `topo optimize --design` prints: the design chosen and what the search did."""
    from topo.core.textsafe import terminal_safe
    c = ds["counts"]
    return (f"design: chosen {terminal_safe(ds['chosen'])} by {ds['objective']} from a front of {c['front']}; "
            f"{c['candidates']} candidates: {c['sized']} sized, {c['pruned_by_port_count']} pruned by port count, "
            f"{c['pruned_by_bound']} pruned by bound, {c['infeasible']} infeasible, {c['time_limit']} not sized "
            f"within the time limit, {c['too_slow']} too slow")


def optimize_summary(plan, out_dir, written) -> dict:
    """The short JSON summary `topo optimize --json` prints, from the plan (a dict as the pipeline
    returns it, or a typed :class:`topo.io.plan.Plan`) read as the typed plan."""
    from topo.io.plan import Budget, BudgetCost, CostRow, Metrics, Placement, Plan, SolverRun, typed
    p = plan if isinstance(plan, Plan) else typed(plan)
    pl, bu = p.placement or Placement(), p.budget or Budget()
    mb, mp, ma = p.metrics_before or Metrics(), p.metrics_placed or Metrics(), p.metrics_after or Metrics()

    def tiers(m):
        return {t.tier: t.util_max for t in m.tiers or []}

    def times(m):
        return {j.name: j.time_s for j in m.jobs or []}

    def uec(m):
        spray = m.roce_vs_uec.uec_spray if m.roce_vs_uec is not None else None
        return (spray.jobs if spray is not None else None) or {}
    bsol, cost = bu.solver or SolverRun(), bu.cost or BudgetCost()
    bcost = cost.chosen or CostRow()
    t_mb, t_mp, t_ma, u_ma = times(mb), times(mp), times(ma), uec(ma)   # once each: O(jobs), not O(jobs^2)
    return {
        "cluster": p.cluster_name, "out_dir": str(out_dir), "files": len(written),
        "placement": {"status": pl.status, "objective": pl.objective, "bound": pl.bound,
                      "gap": pl.gap, "placed": len(pl.assignment),
                      "unplaced": pl.unplaced if "unplaced" in pl.model_fields_set else {}},
        "budget": {"status": bsol.status, "objective": bsol.objective, "bound": bsol.bound, "gap": bsol.gap,
                   "capex_usd": bcost.capex_usd, "energy_usd": bcost.energy_usd,
                   "network_kw": bcost.network_kw,
                   "saved_vs_as_given": cost.saved_vs_as_given,
                   "target_utilization": bu.target_utilization,
                   "transport_check": {k: v for k, v in (bu.transport_check or {}).items() if k != "tried"}},
        "routing": ma.routing or mb.routing,
        "max_util_before": tiers(mb), "max_util_placed": tiers(mp), "max_util_after": tiers(ma),
        "ideal_ecmp_util": {t: {"target": u.target, "placed": u.routed_before, "after": u.routed_after}
                            for t, u in (bu.utilization or {}).items()},
        "jobs": {name: {"before_s": t_mb.get(name), "placed_s": t_mp.get(name),
                        "after_s": t_ma.get(name), "after_uec_s": u_ma.get(name)}
                 for name in t_ma or t_mp},
        "collectives": _collective_summary(p.collectives),
        "timings_s": p.timings_s,
        "cpu_seconds": p.cpu_seconds,
    }


def _collective_summary(cs) -> Optional[dict]:
    """Per job: the alpha-beta collective time per iteration on the chosen fabric, its alpha (latency)
    and beta (bandwidth) parts summed over the job's collectives and their counts, and the algorithms."""
    if cs is None or cs.jobs is None:
        return None
    jobs = {}
    for j in cs.jobs:
        colls = j.collectives or []
        n = [int(c.count or 1) for c in colls]
        jobs[j.name] = {
            "comm_s": j.comm_s,
            "alpha_s": sum(k * float(c.alpha_s or 0.0) for k, c in zip(n, colls)),
            "beta_s": sum(k * float(c.beta_s or 0.0) for k, c in zip(n, colls)),
            "algorithms": sorted({str(c.algorithm) for c in colls}),
            "iteration_s": j.iteration_s, "network_share": j.network_share}
    return {"routing": cs.routing, "sharing": cs.sharing, "jobs": jobs}


def _num(x) -> str:
    return "-" if x is None else f"{x:,.4g}"


def front_end_lines(fe, routing: str) -> list:
    """The front-end fabric's part: its size, the agent traffic per deployment and the peak per link tier."""
    if not fe:
        return []
    lines = ["", f"front-end fabric: {fe['family']}, {fe['endpoints']:,} endpoints (one per host), "
                 f"{fe['switches']:,} switches ({' + '.join(str(x) for x in fe['tier_switch_counts'])}), "
                 f"{fe['links']:,} links, {fe['flows']:,} agent flows ({fe['not_modelled']})"]
    for d in fe["deployments"]:
        b = d["bytes_per_s"]
        lines.append(f"  {d['name']}: agent requests {b['agent_request'] / 1e9:,.4g} GB/s, responses "
                     f"{b['agent_response'] / 1e9:,.4g} GB/s; max link util alone {d['max_util']:.4f}; highest rate "
                     f"at the target {_num(d['max_requests_per_s_at_target'])} requests/s "
                     f"(limited by {d['limited_by'] or '-'})")
    by_m = {t["tier"]: t for t in fe["tiers_transport"]}
    for t in fe["tiers"]:
        lines.append(f"  {t['tier']:<14} peak util {t['util_max']:.4f} (fluid), "
                     f"{by_m[t['tier']]['util_max']:.4f} ({routing}); mean {t['util_mean']:.4f}")
    lines.append(f"  carries the agent traffic at the target: {'yes' if fe['carries_at_target'] else 'NO'} (fluid), "
                 f"{'yes' if fe['carries_at_target_transport'] else 'NO'} ({routing})")
    for h in fe["busiest_links"][:3]:
        lines.append(f"    {h['link']:<40} util {h['util']:.4f} ({h['load_gbps']:,.2f} / {h['gbps']:g} Gb/s)")
    return lines
