"""`topo failures` and `topo sweep`: thin commands over topo.study.failures and topo.study.sweep."""
from __future__ import annotations

import contextlib
import re

import click

from topo.cli.app import cluster_arg, emit_json, fabric_option, handle_errors, main
from topo.cli.options import POSITIVE_SECONDS, SAMPLES, SEED, WORKERS, echo, force_option, json_option
from topo.core.errors import SpecError
from topo.core.jsonable import to_jsonable


def _parse_k(text):
    """'2' -> [2]; '2..4' -> [2, 3, 4]; SpecError naming --k otherwise."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:\.\.\s*(\d+)\s*)?", text)
    if not m:
        raise SpecError([("--k", f"expected N or A..B (e.g. 2 or 2..4), found {text!r}")])
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) else a
    if a < 1 or b < a:
        raise SpecError([("--k", f"expected 1 <= A <= B, found {text!r}")])
    if b - a > 8:
        raise SpecError([("--k", f"at most 9 values of k at once, found {text!r}")])
    return list(range(a, b + 1))


def _pct(x):
    return "" if x is None else f"{100 * x:.3g}%"


def _text(d, top=30):
    out = [f"failure analysis of {d['cluster']} ({d['placement']}; "
           f"{'grouped by symmetry' if d['grouped'] else 'exhaustive'}; {d['seconds']:.2f} s)"]
    rows = d["single"]
    if rows:
        n_fail = sum(r["count"] for r in rows)
        out.append(f"single failures: {n_fail:,} in {len(rows):,} classes; the {min(top, len(rows))} most severe "
                   "(jobs stopped, then accelerators cut off, then slowdown, then bandwidth):")
        order = ["endpoint-leaf", "leaf-spine", "spine-super", "scaleup"]
        tiers = [t for t in order if any(t in r["bandwidth_lost_frac"] for r in rows)]
        head = f"  {'kind':<15}{'name':<28}{'count':>7}  " + "".join(f"{t:>14}" for t in tiers) + \
            f"{'cut off':>9}{'roce-hash':>11}{'uec-spray':>11}{'unreach Gb/s':>14}  jobs affected"
        out.append(head)
        from topo.study.failures import rank_single
        for r in rank_single(rows)[:top]:
            sl = r.get("slowdown") or {}
            cols = []
            for m in ("roce-hash", "uec-spray"):
                v = list((sl.get(m) or {}).values())
                if not v:
                    cols.append("")
                elif any(x is None for x in v):
                    cols.append("down")
                else:
                    cols.append(f"x{max(v):.3f}")
            un = r.get("unreachable_gbps")
            out.append(f"  {r['kind']:<15}{r['name'][:27]:<28}{r['count']:>7}  "
                       + "".join(f"{_pct(r['bandwidth_lost_frac'].get(t)):>14}" for t in tiers)
                       + f"{r.get('endpoints_down', 0) + r.get('endpoints_isolated', 0):>9}{cols[0]:>11}{cols[1]:>11}{'' if un is None else f'{un:,.0f}':>14}  "
                       + (", ".join(r["jobs_affected"]) or "-"))
    for k, kr in d["k"].items():
        c = kr["capacity_lost_frac"]
        w = kr["worst"]
        out.append(f"k={k}: {kr['method']} over {kr['sets']:,} sets: capacity lost mean {_pct(c['mean'])} "
                   f"(95% CI {_pct(c['ci95'][0])} .. {_pct(c['ci95'][1])}), max sampled {_pct(c['max'])}")
        out.append(f"  worst set found ({w['found_by']}): {', '.join(w['elements'])}: "
                   f"{_pct(w['capacity_lost_frac'])} of capacity, {w['endpoints_isolated']} endpoints isolated"
                   + (f", jobs affected: {', '.join(w['jobs_affected']) or '-'}" if "jobs_affected" in w else ""))
    e = d["expected_loss"]
    if e and any(e["rates"].values()):
        out.append("expected capacity lost per year (failure rates "
                   + ", ".join(f"{k}={v:g}" for k, v in e["rates"].items()) + "): "
                   + ", ".join(f"{t} {_pct(v)}" for t, v in e["bandwidth_lost_frac"].items()))
    out += _serving_text(d, top)
    if not d["traffic"].get("routed"):
        out.append("no traffic routed (no jobs, --no-traffic, or a large fabric without --traffic): "
                   "slowdown and unreachable demand not computed")
    return "\n".join(out)


def _serving_text(d, top=30) -> list:
    """The serving deployments: healthy saturating rates, then the failures that cost replicas or the
    stated rate (most severe first, as ranked above)."""
    sv = d.get("serving")
    if not sv:
        return []
    from topo.core.textsafe import terminal_safe as safe
    from topo.study.failures import rank_single

    def rate(x):
        return "no limit" if x is None else f"{x:,.2f} req/s"
    pl = sv["placement"]
    out = [f"serving deployments (replicas {'placed by CP-SAT, ' + pl['status'] if pl['method'] == 'cpsat' else 'as given'}; "
           f"saturating rate under ideal ECMP, each deployment alone):"]
    for name, h in sv["deployments"].items():
        out.append(f"  {safe(name)}: {h['requests_per_s']:g} req/s stated, healthy saturating rate "
                   f"{rate(h['saturating_requests_per_s'])} ({safe(str(h['limited_by']))}); replicas "
                   + ", ".join(f"{r} {n}" for r, n in h["replicas"].items()))
    hit = [r for r in rank_single(d["single"]) if any(
        sum(v["replicas_lost"].values()) or not v["serves_stated_rate"] for v in (r.get("serving") or {}).values())]
    if not hit:
        out.append("  no single failure costs a deployment a replica or its stated rate")
        return out
    out.append(f"  failures that cost a replica or the stated rate: {sum(r['count'] for r in hit):,} in {len(hit):,} "
               f"classes; the {min(top, len(hit))} most severe:")
    for r in hit[:top]:
        parts = []
        for name, v in r["serving"].items():
            lost = ", ".join(f"-{n} {role}" for role, n in v["replicas_lost"].items() if n)
            parts.append(f"{safe(name)} {lost or 'no replica lost'}, {rate(v['saturating_requests_per_s'])}"
                         + ("" if v["serves_stated_rate"] else " NOT SERVED"))
        out.append(f"    {r['kind']:<15}{safe(r['name'])[:27]:<28}{r['count']:>7}  " + "; ".join(parts))
    return out


@main.command()
@cluster_arg
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False),
              help="use this plan's placement (a `topo place -o` file too), and its serving replicas when it has them")
@click.option("--single", is_flag=True, help="single-failure sweep (default unless --k is given)")
@click.option("--k", "k_text", help="k simultaneous failures: N or A..B (e.g. 2..4)")
@click.option("--samples", type=SAMPLES, default=200, show_default=True, help="k-sets sampled per k")
@click.option("--seed", type=SEED, help="sampling and hashing seed (default: goals.seed)")
@click.option("--workers", type=WORKERS, default=1, show_default=True, help="processes for the single sweep")
@click.option("--exhaustive", is_flag=True, help="evaluate every element (no symmetry grouping)")
@click.option("--traffic/--no-traffic", default=None,
              help="route the jobs for every failure (default: when the fabric has at most 200,000 links); "
                   "--no-traffic: capacity, isolation and jobs hit only, fast at any size")
@click.option("--hash-exact", is_flag=True, help="let healthy roce-hash loads refine the symmetry classes too")
@click.option("--scheduler", default=None,
              help="address of a running Dask scheduler, e.g. tcp://host:8786: the routed single-failure classes "
                   "run there (same results as locally for the same seed)")
@click.option("--connect-timeout", type=POSITIVE_SECONDS, default=10.0, show_default=True,
              help="seconds to reach --scheduler")
@click.option("--serving/--no-serving", "serving", default=None,
              help="count the serving deployments in every single failure: replicas lost, saturating rate after "
                   "it (default: when the cluster file states deployments)")
@json_option()
@fabric_option
@handle_errors
def failures(cluster, plan_path, single, k_text, samples, seed, workers, exhaustive, traffic, hash_exact,
             scheduler, connect_timeout, serving, as_json, which_fabric):
    """What the cluster loses when links, switches, planes, NICs, scale-up switches or rack power feeds fail."""
    from topo.study.failures import analyze_failures
    from topo.model.spec import load
    ks = _parse_k(k_text)
    if samples < 1:
        raise SpecError([("--samples", f"must be at least 1 (found {samples})")])
    if workers < 1:
        raise SpecError([("--workers", f"must be at least 1 (found {workers})")])
    c = load(cluster)
    from topo.model.frontend_build import for_fabric
    from topo.pipeline import read_placement
    if which_fabric == "front-end" and plan_path:
        raise SpecError([("--plan", "a plan places jobs on the back-end fabric; the front-end fabric carries no jobs")])
    # the front-end: capacity lost and hosts cut off per failure (it carries no jobs to route)
    c, fab = for_fabric(c, which_fabric)
    placement = read_placement(plan_path, c, fab) if plan_path else None
    reps = None
    if which_fabric == "front-end":     # the front-end carries no accelerators, so no serving replicas
        if serving:
            raise SpecError([("--serving", "serving replicas sit on the back-end fabric; use it with --fabric back-end")])
        serving = False
    if plan_path and serving is not False and c.file.serving.deployments:   # the plan's own serving replicas
        from topo.solve.serving_place import read_replicas
        reps = read_replicas(plan_path, c, fab, placement)
    if scheduler is None:
        ex_ctx = contextlib.nullcontext(None)
    else:
        from topo.study.executor import open_executor
        ex_ctx = open_executor(scheduler=scheduler, connect_timeout_s=connect_timeout)
    with ex_ctx as ex:
        res = analyze_failures(c, fab, placement, single=single or ks is None, k=ks, samples=samples, seed=seed,
                               group=not exhaustive, workers=workers, traffic=traffic,
                               hash_exact=hash_exact, executor=ex, serving=serving, serving_replicas=reps)
    d = res.to_dict()
    if which_fabric == "front-end":
        d = {"fabric": "front-end", **d}
    if as_json:
        emit_json(to_jsonable(d))
    else:
        if which_fabric == "front-end":
            echo("front-end fabric")
        echo(_text(d))


@main.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786 (default: local processes)")
@click.option("--workers", type=WORKERS, help="local worker processes (default: CPU count)")
@click.option("-o", "--out", "out_dir", default="results", show_default=True, type=click.Path(file_okay=False),
              help="output directory (resumes the results already in it)")
@force_option("recompute every result, even those already written")
@click.option("--connect-timeout", type=POSITIVE_SECONDS, default=10.0, show_default=True, help="seconds to reach --scheduler")
@json_option("print the summary as JSON")
@handle_errors
def sweep(sweep_file, scheduler, workers, out_dir, force, connect_timeout, as_json):
    """Run a grid or list of design variants x failure scenarios; write a table and a comparison report."""
    from topo.study.sweep import run_sweep
    if connect_timeout <= 0:
        raise SpecError([("--connect-timeout", f"must be positive (found {connect_timeout})")])

    def progress(n, total, row):
        if not as_json:
            echo(f"[{n}/{total}] {row['variant']} / {row['scenario']}: {row['status']}", err=True)

    res = run_sweep(sweep_file, out_dir, scheduler=scheduler, workers=workers, force=force,
                    connect_timeout_s=connect_timeout, progress=progress)
    ok = sum(1 for r in res["rows"] if r["status"] == "ok")
    summary = {"results": len(res["rows"]), "ok": ok, "ran": res["ran"], "skipped_existing": res["skipped"],
               "files": res["files"]}
    if as_json:
        emit_json(summary)
    else:
        echo(f"{len(res['rows'])} results ({ok} ok; {res['ran']} run now, {res['skipped']} already written)")
        for f in res["files"]:
            echo(f"  wrote {f}")
