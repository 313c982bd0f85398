"""`topo budget`: choose a fabric's link budget (parse, call topo.solve.linkbudget, render, write).

The budget carries the traffic of the placed jobs: where ``--placement`` (a `topo place -o`
file) puts them, else in order; jobs that do not fit are named, not an error. With ``serving:`` in
the file it also carries every deployment at its stated request rate (replicas placed by CP-SAT
beside the jobs; ``--no-serving`` leaves them out). ``--fabric front-end`` sizes the front-end fabric
instead (:func:`topo.pipeline.front_end_budget`): the agent tiers' request and response flows of every
deployment at its stated rate, with the file's goals; the options that concern jobs are refused there.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from topo.cli.options import echo, finite, force_option, json_option, solver_options
from topo.cli.app import _json_default, cluster_arg, emit_json, fabric_option, handle_errors, main
from topo.core.errors import SpecError


def _money(x) -> str:
    return "n/a" if x is None else f"${x:,.0f}"


def _u(x) -> str:
    return "n/a" if x is None else f"{100.0 * x:.1f}%"


def _bundle(t: dict) -> str:
    """A tier's bundle, and the partly filled last pod's when it differs."""
    b = t.get("bundle")
    if b is None:
        return "-"
    pb = t.get("partial_pod_bundle")
    if pb is not None and pb != b:
        return f"{b} (last pod {pb}, {t.get('partial_pod_leaves')} leaves)"
    return str(b)


def _os(x) -> str:
    return "n/a" if x is None else f"{x:.3g}:1"


def _req_value(x, unit: str) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.1f} Gb/s" if unit == "Gb/s" else _u(x)


def requirements_text(req: dict) -> list:
    """The design requirements (required, achieved, margin) and the bisection, as lines of text."""
    from topo.io.render import table
    out = []
    rows = []
    for r in req.get("rows") or []:
        gbps = r["unit"] == "Gb/s"
        margin = r.get("margin")
        m = "n/a" if margin is None else (f"{margin:+,.1f} Gb/s" if gbps else f"{100 * margin:+.1f} pts")
        rows.append([r["requirement"], r["source"], ("at least " if gbps else "at most ") + _req_value(r["required"], r["unit"]),
                     _req_value(r.get("achieved"), r["unit"]), m,
                     {True: "met", False: "NOT MET", None: "not checked"}[r.get("met")]
                     + (" *" if r.get("effective_target") else "")])
    if rows:
        out.append(table(rows, ["requirement", "from", "required", "achieved", "margin", ""]))
        if any(r.get("effective_target") for r in req.get("rows") or []):
            out.append("* this traffic loads a tier beyond the target even on a non-blocking design: no design "
                       "meets it, so the budget runs that tier as loaded as the non-blocking design would")
    b = req.get("bisection") or {}
    if b.get("chosen", {}).get("gbps") is not None:
        def f(k):
            v = b.get(k) or {}
            return (f"{v['gbps'] / 1e3:,.1f} Tb/s ({v['per_accelerator_gbps']:,.1f} Gb/s per accelerator)"
                    if v.get("gbps") is not None else "n/a")
        out.append(f"bisection (one direction): chosen {f('chosen')}; as given {f('as_given')}; non-blocking {f('non_blocking')}")
    return out


def render(d: dict) -> str:
    """The readable report `topo budget` prints by default (a pure function of the result dict)."""
    from topo.traffic.demand import unplaced_line
    from topo.io.render import table
    out = []
    s = d["solver"]
    gap = f"  gap {100 * s['gap']:.3f}%" if s.get("gap") else ""
    out.append(f"{d['cluster']}: link budget, objective {d['objective']}, survive {d['survive']}, "
               f"target utilisation {d['target_utilization']:g}, switches {d['switch_choice']}")
    if d.get("placement"):
        out.append(f"placement: {d['placement']}")
    fe = d.get("front_end")
    if fe:
        from topo.core.textsafe import terminal_safe
        out.append(f"front-end fabric ({fe['endpoints']:,} host endpoints): sized for the agent tiers' request and "
                   f"response traffic of {len(fe['deployments'])} deployment(s) at their stated rates "
                   + (f"(replicas by CP-SAT, {fe['placement']['status']}): " if fe["placement"]["method"] == "cpsat"
                      else "(replicas as the placement file puts them): ")
                   + ", ".join(f"{terminal_safe(x['name'])} {x['requests_per_s']:g} req/s ({x['gbps']:,.4g} Gb/s)"
                               for x in fe["deployments"]))
    sv = d.get("serving")
    if sv:
        out.append(f"serving: sized with {len(sv['deployments'])} deployment(s) at their stated rates beside the jobs "
                   + (f"(replicas by CP-SAT, {sv['placement']['status']}): " if sv["placement"]["method"] == "cpsat"
                      else "(replicas as the placement file puts them): ")
                   + ", ".join(f"{x['name']} {x['requests_per_s']:g} req/s ({x['network_gbps']:,.1f} Gb/s on the network)"
                               for x in sv["deployments"]))
    out += [unplaced_line(n, u) for n, u in (d.get("unplaced") or {}).items()]
    out.append(f"solver {s['engine']}: {s['status']}  objective {s['objective']:,.2f}  bound {s['bound']:,.2f}{gap}  "
               f"solve {s['solve_seconds']:.2f} s, tables {s['tables_seconds']:.2f} s, total {s['total_seconds']:.2f} s")
    caps = s.get("max_oversubscription")
    if caps:
        out.append(f"oversubscription caps ({caps['source']}): " + ", ".join(
            f"{k} <= {v:g}" if v is not None else f"{k} uncapped" for k, v in caps.items() if k != "source"))
    out.append("")
    rows = []
    for t in d["tiers"]:
        rows.append([t["tier"], t["model"] + ("" if t["model"] == t["model_as_given"] else f" (was {t['model_as_given']})"),
                     f"{t['switches']:,} (was {t['switches_as_given']:,})",
                     f"{t.get('down_ports', '-')}/{t.get('up_ports', '-')}",
                     _bundle(t), t.get("breakout", "-"),
                     f"{_os(t['oversubscription'])} (was {_os(t['oversubscription_as_given'])})",
                     ", ".join(f"{k} {v:,}" for k, v in t.get("links_by_optic", {}).items()) or "-"])
    out.append(table(rows, ["tier", "switch", "count", "down/up ports", "bundle", "breakout",
                            "oversubscription", "uplink optics"]))
    out.append("")
    rows = []
    for k, u in d["utilization"].items():
        h = d["headroom"].get(k, {})
        tgt = _u(u["effective_target"]) + ("" if abs(u["effective_target"] - u["target"]) < 1e-12 else " *")
        rows.append([k, _u(u["routed_before"]), _u(u["routed_after"]), tgt,
                     _u(h.get("worst_util_after_failure")), _u(h.get("headroom"))])
    out.append(table(rows, ["links", "routed before", "routed after", "target",
                            f"after {d['survive']} failure", "headroom"]))
    if any(abs(u["effective_target"] - u["target"]) > 1e-12 for u in d["utilization"].values()):
        out.append("* the traffic loads this tier beyond the target even when non-blocking; no budget can do "
                   "better, so it may run as loaded as its non-blocking design")
    req_lines = requirements_text(d.get("requirements") or {})
    if (d.get("requirements") or {}).get("scenarios_stated"):
        out.append("routed before/after: the job mix as listed (empty without a jobs scenario); each scenario's "
                   "peaks are in the requirements table")
    if req_lines:
        out.append("")
        out += req_lines
    out.append("")
    b = d["bill_of_materials"]
    rows = [[x["tier"], x["model"], f"{x['count']:,}", f"{x['kw']:,.1f} kW", _money(x["cost_usd"])] for x in b["switches"]]
    rows += [[f"{o['reach']} {o['gbps']}G", o["part"], f"{o['units']:,} ({o['links']:,} links)",
              f"{o['kw']:,.1f} kW", _money(o["cost_usd"])] for o in b["optics"]]
    out.append(table(rows, ["bill of materials", "part", "count", "power", "cost"]))
    out.append("")
    c = d["cost"]
    rows = []
    for k in ("chosen", "as_given", "non_blocking"):
        v = c[k]
        rows.append([k.replace("_", " "), _money(v["capex_usd"]), f"{v['network_kw']:,.1f} kW",
                     _money(v["energy_usd"]), _money(v["total_usd"])])
    out.append(table(rows, ["design", "capex", "network power",
                            f"energy {c['horizon_years']:g} y", "total"]))
    sv = c["saved_vs_non_blocking"]
    out.append(f"saved against the non-blocking design: {_money(sv['capex_usd'])} capex, "
               f"{sv['network_kw']:,.1f} kW, {_money(sv['total_usd'])} in total ({100 * sv['total_fraction']:.1f}%)")
    out.append("")
    rows = []
    for k, a in d["alternatives"].items():
        if "capex_usd" not in a:
            rows.append([k, a["status"], "", "", ""])
            continue
        rows.append([k + (" (chosen)" if k == d["objective"] else ""), _money(a["capex_usd"]),
                     f"{a['network_kw']:,.1f} kW", _money(a["total_usd"]),
                     " / ".join(f"{n:,}" for n in a["switch_counts"])])
    out.append(table(rows, ["objective", "capex", "network power", "total", "switches per tier"]))
    np_ = d["network_power"]
    out.append("")
    out.append(f"power: compute racks max {np_['racks']['max_kw']:.1f} kW, {np_['racks']['racks_over_limit']} over limit; "
               f"network switches {np_['network']['total_switch_kw']:,.1f} kW in {np_['network']['positions']} positions "
               f"({np_['network']['network_racks']} network racks at {np_['network']['limit_kw_per_network_rack']:g} kW)")
    tc = d.get("transport_check") or {}
    if tc:
        out.append("")
        out.append(transport_text(tc))
    ch = d["check"]
    if ch.get("ok") is not None:
        out.append(f"independent check ({ch['routing_model']} routing of the rebuilt fabric"
                   + (f"; failures: {', '.join(ch['scenarios'])}" if ch["scenarios"] else "") + "): "
                   + ("passed" if ch["ok"] else "FAILED: " + "; ".join(ch["problems"])))
    return "\n".join(out)


def transport_text(tc: dict) -> str:
    """The transport-aware search of a budget, as lines of text."""
    from topo.io.render import table
    rows = []
    for t in tc.get("tried", []):
        if "error" in t:
            rows.append([f"{t['target_utilization']:.3g}", "-", "-", "-", "-", "-", t["error"][:60]])
            continue
        rows.append([f"{t['target_utilization']:.3g}", _money(t["total_usd"]), _u(t["saved_vs_as_given"]),
                     f"{t['total']:.3f}", f"{t['tail']:.3f}",
                     f"{t['worst_job_slowdown']:.3f}" + (f" ({t['worst_job']})" if t.get("worst_job") else ""),
                     "" if "same_as" not in t else f"same fabric as target {t['same_as']:.3g}"])
    head = (f"transport check ({tc.get('routing')}): summed job time and 95th-percentile job penalty (time over ideal) at most "
            f"{tc['max_slowdown']:g}x those on the fabric as given; "
            + (f"met at target utilisation {tc['chosen_target_utilization']:.3g} (slowdown {tc['slowdown']:.3f})"
               if tc.get("accepted") else
               f"NOT met by any target tried; kept the least-slowing budget (target "
               f"{tc['chosen_target_utilization']:.3g}, slowdown {tc['slowdown']:.3f}). More queue pairs per "
               f"connection or packet spraying would let the budget save more."))
    return head + "\n" + table(rows, ["target", "total cost", "saved vs as given", "summed time", "p95 penalty",
                                      "job most slowed", ""])


def _write_atomic(path: str, text: str) -> None:
    from topo.core.atomic import write_text_atomic
    write_text_atomic(path, text)


@main.command()
@cluster_arg
@click.option("--objective", type=click.Choice(["cost", "power", "balanced"]), default=None,
              help="capex + energy over the horizon, network power, or their balance (default: goals.objective)")
@click.option("--survive", type=click.Choice(["none", "link", "switch", "plane"]), default=None,
              help="failure the survivors must carry at or under 100% (default: goals.survive)")
@click.option("--target-util", type=finite(0.0, 1.0, open_lo=True), default=None,
              help="peak utilisation of switch links, in (0, 1] (default: goals.target_utilization)")
@click.option("--switch-choice", type=click.Choice(["fixed", "catalog"]), default="fixed", show_default=True,
              help="keep the file's switch per tier, or let the solver pick any catalog switch")
@click.option("--max-oversubscription", default=None, metavar="R|leaf=R,spine=R",
              help="largest down:up port ratio allowed: one number for every tier with uplinks, or per tier "
                   "(leaf=1,spine=3; a tier not named is uncapped; spine only on 3 tiers) "
                   "(default: goals.max_oversubscription, else what the radix allows)")
@click.option("--min-bisection", type=finite(0.0, 1e6, open_lo=True), default=None, metavar="GBPS",
              help="smallest bisection per accelerator the design may have, Gb/s "
                   "(default: requirements.min_bisection_gbps_per_accelerator)")
@click.option("--scenario", "scenarios", multiple=True, metavar="uniform=GBPS|permutation=GBPS|jobs[=GROWTH]",
              help="traffic the design must carry at the target, each alone; repeat for several: uniform all-to-all "
                   "or the worst-case permutation at GBPS per endpoint, or the job mix (times GROWTH) "
                   "(default: requirements.scenarios, else the jobs and traffic patterns)")
@solver_options
@click.option("--for-transport", is_flag=True,
              help="also route the jobs under the transport's own model (RoCE hashing, UEC spraying) and lower "
                   "the target until the jobs' summed time and 95th-percentile penalty are within --max-slowdown "
                   "of the fabric as given")
@click.option("--max-slowdown", type=finite(1.0, 1e6), default=None,
              help="with --for-transport: the largest slowdown allowed, >= 1 (default: goals.max_job_slowdown, "
                   "or 1.05 where the goal is null)")
@json_option()
@click.option("-o", "output", type=click.Path(dir_okay=False), default=None,
              help="write the budget JSON here (atomically; includes cluster_after)")
@force_option("replace an existing -o file")
@click.option("--placement", "placement_path", default=None, metavar="FILE",
              help="carry the jobs where this placement puts them (the JSON `topo place -o` writes); "
                   "default: in order, the jobs that fit")
@click.option("--serving/--no-serving", "serving", default=True, show_default=True,
              help="carry the cluster file's serving deployments too, each at its load.requests_per_s, replicas "
                   "placed by CP-SAT beside the jobs (when it states any)")
@fabric_option
@handle_errors
def budget(cluster, objective, survive, target_util, switch_choice, max_oversubscription, min_bisection, scenarios,
           time_limit, seed, workers, for_transport, max_slowdown, as_json, output, force, placement_path, serving,
           which_fabric):
    """Choose the link budget of CLUSTER: uplinks, spines, oversubscription, optics, bill of materials."""
    from topo.model.fabric import build
    from topo.pipeline import read_placement
    from topo.traffic.demand import fit_in_order, unplaced_jobs, unplaced_line
    from topo.model.spec import load
    from topo.solve.linkbudget import budget as _budget
    if target_util is not None and not (0.0 < target_util <= 1.0):
        raise SpecError([("--target-util", f"target utilisation must be in (0, 1], found {target_util:g}")])
    if time_limit is not None and not time_limit > 0:
        raise SpecError([("--time-limit", f"must be a positive number of seconds (found {time_limit:g})")])
    if workers is not None and workers < 1:
        raise SpecError([("--workers", f"must be at least 1 (found {workers})")])
    if output is not None:
        p = Path(output)
        if p.exists() and not force:
            raise SpecError([("-o", f"{output} already exists; choose another file or pass --force to replace it")])
        if not p.parent.exists():
            raise SpecError([("-o", f"directory {p.parent} does not exist")])
    if max_slowdown is not None and not max_slowdown >= 1.0:
        raise SpecError([("--max-slowdown", f"must be a number >= 1 (found {max_slowdown:g})")])
    if max_slowdown is not None and not for_transport:
        raise SpecError([("--max-slowdown", "applies only with --for-transport")])
    if max_oversubscription is not None:
        from topo.model.spec import oversubscription_caps
        try:
            max_oversubscription = oversubscription_caps(max_oversubscription)
        except ValueError as e:
            raise SpecError([("--max-oversubscription", str(e))])
    if scenarios:
        from topo.solve.linkbudget import parse_scenario
        errs = []
        for i, x in enumerate(scenarios):
            try:
                parse_scenario(x)
            except ValueError as e:
                errs.append((f"--scenario[{i}]", str(e)))
        if errs:
            raise SpecError(errs)
    if which_fabric == "front-end":
        _front_end_refusals(for_transport, scenarios, min_bisection, serving)
    c = load(cluster)
    f = build(c)
    if which_fabric == "front-end":
        return _front_end(c, f, placement_path, as_json, output, dict(
            objective=objective, survive=survive, target_util=target_util, time_limit=time_limit, seed=seed,
            workers=workers, switch_choice=switch_choice, max_oversubscription=max_oversubscription))
    placement, unplaced, source = None, {}, None
    if placement_path is not None:
        placement = read_placement(placement_path, c, f)
        unplaced, source = unplaced_jobs(c, f, placement), str(placement_path)
    elif c.file.jobs:
        placement, unplaced = fit_in_order(c, f)  # a queue larger than the free capacity is normal
        source = "in order" + (" (the jobs that fit, by priority)" if unplaced else "")
    opts = dict(objective=objective or c.file.goals.objective, survive=survive, target_util=target_util, time_limit=time_limit,
                seed=seed, workers=workers, switch_choice=switch_choice, max_oversubscription=max_oversubscription,
                min_bisection=min_bisection, scenarios=list(scenarios) or None)
    serving_section = None
    if serving and c.file.serving.deployments:
        # the jobs plus every deployment at its stated request rate, replicas placed by CP-SAT beside the jobs
        from topo.solve.serving_place import budget_inputs, read_replicas
        reps = read_replicas(placement_path, c, f, placement) if placement_path is not None else None
        given = None if reps is None else {"method": "given", "assignment": reps, "training": placement,
                                           "status": None, "objective": None, "bound": None}
        opts["demands"], serving_section = budget_inputs(c, f, placement or {}, time_limit=time_limit, seed=seed,
                                                         workers=workers, placed=given)
    if for_transport:
        from topo.solve.linkbudget import budget_for_transport
        slow = max_slowdown if max_slowdown is not None else (c.file.goals.max_job_slowdown or 1.05)
        r = budget_for_transport(c, f, placement=placement, max_slowdown=slow, **opts)
    else:
        r = _budget(c, f, placement=placement, **opts)
    d = r.to_dict()
    if source is not None:
        d["placement"] = source
        d["unplaced"] = unplaced
    if serving_section is not None:
        d["serving"] = serving_section
    if output is not None:
        _write_atomic(output, json.dumps(d, default=_json_default) + "\n")
    if as_json:
        for n, u in unplaced.items():
            echo(unplaced_line(n, u), err=True)
        emit_json(d)
    else:
        echo(render(d))
        if not for_transport and c.file.transport.protocol == "roce":
            echo("note: sized for ideal ECMP; RoCEv2 hashing loads some links past that. --for-transport "
                       "checks the jobs under roce-hash and lowers the target until they are not slowed.")
        if output is not None:
            echo(f"wrote {output}")


def _front_end_refusals(for_transport, scenarios, min_bisection, serving) -> None:
    """The options `topo budget --fabric front-end` cannot honour: they concern jobs or accelerators."""
    errs = []
    if for_transport:
        errs.append(("--for-transport", "routes the jobs under the transport's model; the front-end fabric carries "
                                        "no jobs (only --fabric back-end)"))
    if scenarios:
        errs.append(("--scenario", "the scenarios (job mix, uniform, permutation) are the back-end's requirements; "
                                   "the front-end budget carries the agent tiers' traffic (only --fabric back-end)"))
    if min_bisection is not None:
        errs.append(("--min-bisection", "a floor per accelerator; the front-end fabric's endpoints are hosts "
                                        "(only --fabric back-end)"))
    if not serving:
        errs.append(("--no-serving", "the front-end budget sizes for the deployments' agent traffic; without it "
                                     "there is nothing to carry"))
    if errs:
        raise SpecError(errs)


def _front_end(c, f, placement_path, as_json, output, opts) -> None:
    """`topo budget --fabric front-end`: the front-end fabric's budget for the agent traffic, rendered or JSON."""
    from topo.pipeline import front_end_budget, front_end_file_after, read_placement
    from topo.solve.serving_place import read_replicas
    placement = replicas = None
    if placement_path is not None:
        placement = read_placement(placement_path, c, f)
        replicas = read_replicas(placement_path, c, f, placement)
    r, section = front_end_budget(c, f, placement=placement, replicas=replicas, **opts)
    d = r.to_dict()
    d["fabric"] = "front-end"
    d["front_end"] = section
    if placement_path is not None:
        d["placement"] = str(placement_path)
    # the cluster file itself with the chosen front-end tiers (the budget's own is the derived front-end cluster)
    d["cluster_after"] = front_end_file_after(c, r)
    if output is not None:
        _write_atomic(output, json.dumps(d, default=_json_default) + "\n")
    if as_json:
        emit_json(d)
        return
    echo(render(d))
    if c.file.transport.protocol == "roce":
        echo("note: sized for ideal ECMP; RoCEv2 hashing may load some front-end links past that (not checked "
             "for the front-end: --for-transport routes jobs, which the front-end does not carry)")
    if output is not None:
        echo(f"wrote {output}")

