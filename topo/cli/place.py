"""`topo place`: place the jobs of a cluster file (parse, call topo.solve.placement, render, write)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import click

from topo.cli.options import echo, force_option, json_option, solver_options
from topo.cli.app import _json_default, cluster_arg, emit_json, handle_errors, main
from topo.core.errors import SpecError


def _write_atomic(path: str, text: str, force: bool) -> None:
    p = Path(path)
    if p.exists() and not force:
        raise SpecError([("-o", f"{p} already exists; choose another file or pass --force to replace it")])
    if not p.parent.exists():
        raise SpecError([("-o", f"directory {p.parent} does not exist")])
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent))
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _pct(x: float) -> str:
    return f"{100.0 * x:5.1f}%"


def render(d: dict) -> str:
    """The readable table `topo place` prints by default."""
    out = []
    gap = "" if d["gap"] is None else f"  gap {100 * d['gap']:.2f}%"
    bound = "" if d["bound"] is None else f"  bound {d['bound']:,}"
    out.append(f"status {d['status']} ({d['policy']}, returned: {d['source']})  objective {d['objective']:,}"
               f"{bound}{gap}  time {d['wall_s']:.2f} s")
    if d.get("note"):
        out.append(f"note: {d['note']}")
    out.append("")
    hdr = f"{'job':<24} {'accel':>7} {'pods':>4} {'leaves':>6} {'racks':>5}  {'scale-up':>8} {'leaf':>6} {'spine':>6} {'super':>6}"
    out.append(hdr)
    out.append("-" * len(hdr))
    for name, j in d["jobs"].items():
        s = j["share"]
        out.append(f"{name[:24]:<24} {j['accelerators']:>7} {j['pods']:>4} {j['leaves']:>6} {j['racks']:>5}  "
                   f"{_pct(s['scaleup']):>8} {_pct(s['leaf']):>6} {_pct(s['spine']):>6} {_pct(s['super_spine']):>6}")
    for name, why in d["unplaced"].items():
        out.append(f"{name[:24]:<24} UNPLACED: {why}")
    out.append("(shares: the job's collective bytes that stay in the scale-up domain, under one leaf, "
               "climb to a spine, climb to a super-spine)")
    rt = d.get("routed")
    if rt:
        out.append("")
        out.append(f"routed ({rt['routing']}): collective completion time per iteration")
        out.append(f"{'job':<24} {'placed (s)':>11} {'slowdown':>9} {'in-order (s)':>13}")
        if rt.get("in_order_unplaced"):
            out.insert(-1, "(in order, the jobs that fit by priority; left out: " + ", ".join(rt["in_order_unplaced"]) + ")")
        for name, j in rt["jobs"].items():
            io = rt["in_order"].get(name) if rt.get("in_order") else None
            out.append(f"{name[:24]:<24} {j['time_s']:>11.4f} {j['slowdown']:>9.2f} "
                       f"{(f'{io:.4f}' if io is not None else '-'):>13}")
    t = d["totals"]
    out.append("")
    tb = t["traffic_bytes"] or 1.0
    out.append(f"traffic leaving a leaf: {t['cross_leaf_bytes'] / 1e9:,.1f} GB per iteration ({_pct(t['cross_leaf_bytes'] / tb).strip()}), "
               f"leaving a pod: {t['super_spine_bytes'] / 1e9:,.1f} GB")
    b = d.get("baseline")
    if b:
        bt = b["totals"]
        rel = (lambda a, c: f"{100 * (a - c) / c:+.1f}%" if c else "n/a")
        out.append(f"greedy baseline: objective {b['objective']:,} ({rel(d['objective'], b['objective'])} optimised vs baseline), "
                   f"leaving a leaf {bt['cross_leaf_bytes'] / 1e9:,.1f} GB ({rel(t['cross_leaf_bytes'], bt['cross_leaf_bytes'])}), "
                   f"placed {b['placed']}, unplaced {b['unplaced']} (ranks in the job's own order)")
        bm = b.get("totals_rank_mapped")
        if bm:
            out.append(f"greedy baseline's nodes with topo's rank mapping: leaving a leaf "
                       f"{bm['cross_leaf_bytes'] / 1e9:,.1f} GB ({rel(t['cross_leaf_bytes'], bm['cross_leaf_bytes'])}), "
                       f"leaving a pod {bm['super_spine_bytes'] / 1e9:,.1f} GB "
                       f"({rel(t['super_spine_bytes'], bm['super_spine_bytes'])})")
    over = [r for r in d["racks"] if r["limit_kw"] and r["kw"] > r["limit_kw"] + 1e-9]
    near = [r for r in d["racks"] if r["limit_kw"] and 0.95 * r["limit_kw"] <= r["kw"] <= r["limit_kw"] + 1e-9]
    out.append(f"racks: {len(d['racks'])}, over limit {len(over)}, within 5% of limit {len(near)}")
    for r in (over + near)[:10]:
        flag = "OVER" if r in over else "near"
        out.append(f"  {r['rack']:<10} {r['kw']:8.2f} kW of {r['limit_kw']:g} kW  {flag}")
    out.extend(render_failure_domains(d.get("failure_domains")))
    if d.get("reserved"):
        out.append(f"reserved (held back, counted busy): {len(d['reserved'])} node(s): "
                   f"{', '.join(d['reserved'][:12])}{' ...' if len(d['reserved']) > 12 else ''}")
    s = d["stranded"]
    out.append(f"free accelerators {s['free_accelerators']:,}; stranded: power {s['power']:,}, "
               f"fragmentation {s['fragmentation']:,}, broken domains {s['domain']:,}, "
               f"unused in allocated nodes {s['partial_nodes']:,} ({s['pending_jobs']} pending jobs)")
    out.extend(render_serving(d.get("serving")))
    return "\n".join(out)


def render_serving(sv) -> list[str]:
    """Lines of the serving replicas placed beside the jobs."""
    if not sv:
        return []
    out = ["", f"serving replicas (CP-SAT after the jobs{' and held-back nodes' if sv.get('reserved') else ''}): "
               f"{sv['status']}, objective {sv['objective']:,} (bound {sv['bound']:,}; KV pairs across leaves x 1 + "
               f"across pods x 3, weighted by KV bytes), re-checked independently"]
    for name, p in sv["pools"].items():
        nodes = ", ".join(f"{a}..{b}" if a != b else a for a, b in p["nodes"][:8])
        more = f" ... (+{len(p['nodes']) - 8})" if len(p["nodes"]) > 8 else ""
        out.append(f"  {name[:32]:<32} {p['replicas']:>4} x {p['accelerators_per_replica']:>3} accel  {nodes}{more}")
    for name, k in sv["kv_crossing"].items():
        out.append(f"  {name}: KV {k['kv_bytes_per_s_crossing_leaves'] / 1e9:,.3f} GB/s across leaves, "
                   f"{k['kv_bytes_per_s_crossing_pods'] / 1e9:,.3f} GB/s across pods (kv_routing {k['kv_routing']})")
    if sv["racks_switched_on"]:
        worst = max(sv["racks_switched_on"], key=lambda r: (r["kw"] / r["limit_kw"] if r["limit_kw"] else 0, r["rack"]))
        out.append(f"  racks the replicas switch nodes on in: {len(sv['racks_switched_on'])}, the fullest "
                   f"{worst['rack']} at {worst['kw']:.2f} kW of {worst['limit_kw']:g} kW")
    return out


def render_failure_domains(fd) -> list[str]:
    """Lines comparing the placement with and without its failure-domain rule."""
    if not fd:
        return []
    rule = (f"at most {fd['max_share']:g} of a job per {fd['level']}" if fd["mode"] == "spread"
            else f"each job in at most {fd['max_domains']} {fd['level']}(s)")
    out = [f"failure domains: {fd['mode']} by {fd['level']} ({rule}); with / without the rule:"]
    w, wo = fd["with"], fd["without"]
    rows = (("placement cost", "placement_cost", "{:,}"), ("leaving a leaf, GB", "cross_leaf_bytes", "{:,.1f}"),
            ("leaving a pod, GB", "super_spine_bytes", "{:,.1f}"), ("placed jobs", "placed_jobs", "{}"),
            (f"most jobs stopped by one {fd['level']}", "max_jobs_stopped", "{}"),
            (f"mean jobs stopped per {fd['level']}", "mean_jobs_stopped", "{:.3f}"),
            (f"most accelerators stopped by one {fd['level']}", "max_accelerators_stopped", "{:,}"),
            (f"largest share of a job behind one {fd['level']}", "largest_job_share_in_one_domain", "{:.3f}"))
    for label, k, fmt in rows:
        a, b = w[k], wo[k]
        if k.endswith("_bytes"):
            a, b = a / 1e9, b / 1e9
        out.append(f"  {label:<44} {fmt.format(a):>14} {fmt.format(b):>14}")
    return out


def _routed(c, f, assignment: dict, seed) -> dict:
    """Per-job completion times of the placement, and of the in-order placement (of the jobs
    that fit, see topo.traffic.fit_in_order) beside it."""
    from topo.traffic.demand import fit_in_order
    from topo.routing.engine import analyze
    a = analyze(c, f, placement=assignment, seed=seed, compare=False, all_to_all=False).to_dict()
    out = {"routing": a["routing"], "max_util": a["max_util"],
           "jobs": {j["name"]: {k: j[k] for k in ("time_s", "ideal_s", "slowdown", "busbw_gbps")} for j in a["jobs"]},
           "in_order": None}
    io, left = fit_in_order(c, f)
    if not io:
        return out  # not one job fits in order; nothing to compare with
    b = analyze(c, f, placement=io, seed=seed, compare=False, all_to_all=False).to_dict()
    if left:
        out["in_order_unplaced"] = list(left)
    out["in_order"] = {j["name"]: j["time_s"] for j in b["jobs"]}
    out["in_order_max_util"] = b["max_util"]
    return out


@main.command()
@cluster_arg
@solver_options
@click.option("--policy", type=click.Choice(["optimize", "greedy"]), default="optimize", show_default=True,
              help="CP-SAT placement, or the greedy best-fit baseline alone")
@json_option()
@click.option("-o", "output", type=click.Path(dir_okay=False), default=None, help="write the placement JSON here (atomically)")
@force_option("replace an existing -o file")
@click.option("--route", "do_route", is_flag=True,
              help="route the placed jobs (and the in-order placement) through topo.routing: completion times")
@click.option("--spread", "spread", metavar="LEVEL:SHARE",
              help="at most SHARE of each job's accelerators behind one rack, leaf or pod (e.g. leaf:0.5); "
                   "overrides goals.failure_domains")
@click.option("--pack", "pack", metavar="LEVEL:N",
              help="each job in at most N racks, leaves or pods (e.g. pod:1); overrides goals.failure_domains")
@click.option("--no-failure-domains", "no_fd", is_flag=True, help="ignore goals.failure_domains")
@click.option("--reserve", "reserve", multiple=True, metavar="NODES",
              help="hold these nodes back (hostlist, repeatable), e.g. hot spares: no job uses them, rack power "
                   "counts them busy")
@click.option("--serving/--no-serving", "serving", default=True, show_default=True,
              help="place the cluster file's serving replicas by CP-SAT beside the placed jobs (when it states any)")
@handle_errors
def place(cluster, time_limit, seed, workers, policy, as_json, output, force, do_route, spread, pack, no_fd, reserve,
          serving):
    """Place the jobs of CLUSTER onto domains, nodes and accelerators (topology- and power-aware)."""
    from topo.model.spec import load
    from topo.model.fabric import build
    from topo.solve.placement import failure_domains_from_text, place as _place
    if time_limit is not None and not time_limit > 0:
        raise SpecError([("--time-limit", f"must be a positive number of seconds (found {time_limit:g})")])
    if workers is not None and workers < 1:
        raise SpecError([("--workers", f"must be at least 1 (found {workers})")])
    if output is not None and Path(output).exists() and not force:
        raise SpecError([("-o", f"{output} already exists; choose another file or pass --force to replace it")])
    c = load(cluster)
    f = build(c)
    rule = failure_domains_from_text(spread, pack)
    if no_fd and rule is not None:
        raise SpecError([("--no-failure-domains", "give --spread/--pack or --no-failure-domains, not both")])
    try:
        r = _place(c, f, time_limit=time_limit, seed=seed, workers=workers, policy=policy,
                   failure_domains=False if no_fd else rule, reserved=list(reserve) or None)
    except SpecError as e:
        flag = "--spread" if spread else "--pack"
        raise SpecError([(flag if p.startswith("failure_domains") and rule is not None else p, m)
                         for p, m in e.renamed({"reserved": "--reserve"}).errors], e.source) from None
    d = r.to_dict()
    if serving and c.file.serving.deployments:
        from topo.solve.serving_place import placed_section
        d["serving"] = placed_section(c, f, r.assignment, reserved=tuple(r.reserved), time_limit=time_limit,
                                      seed=seed, workers=workers)
        d["serving"]["reserved"] = bool(r.reserved)
    if do_route:
        d["routed"] = _routed(c, f, r.assignment, seed)
    if output is not None:
        _write_atomic(output, json.dumps(d, default=_json_default) + "\n", force)
    if as_json:
        emit_json(d)
    else:
        echo(render(d))
        if output is not None:
            echo(f"wrote {output}")
