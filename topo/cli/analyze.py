"""`topo analyze`: route a cluster's traffic and report congestion.

Thin layer: parse options, call :func:`topo.routing.engine.analyze`, render a table
or one JSON document, write the optional per-link load file atomically.
The jobs are routed where ``--placement`` (a `topo place -o` file) puts them,
else in order; jobs that do not fit are named, not an error.
"""
from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

import click

from topo.cli.options import FAIL, SEED, echo, json_option, routing_choice
from topo.cli.app import cluster_arg, emit_json, fabric_option, handle_errors, main
from topo.core import limits
from topo.core.errors import SpecError


def _loads_csv(fh, table: dict) -> None:
    """The load table as CSV: topo.core.textsafe's writer (quoted, formula-leading cells guarded);
    plain csv.writer with QUOTE_MINIMAL where that module is not installed."""
    try:
        from topo.core.textsafe import write_loads_csv
    except ImportError:
        cols = list(table)
        w = csv.writer(fh, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        w.writerow(cols)
        for r in zip(*(table[c] for c in cols)):
            w.writerow([int(r[0]), r[1], r[2], r[3], f"{float(r[4]):g}", f"{float(r[5]):.6g}", f"{float(r[6]):.6g}"])
        return
    write_loads_csv(fh, table)


def _write_loads(path: str, table: dict) -> None:
    """CSV (or Parquet when the path ends with .parquet), written to a temp file then renamed."""
    import numpy as np
    p = Path(path)
    d = p.parent if str(p.parent) else Path(".")
    if not d.is_dir():
        raise SpecError([("--loads", f"directory {d} does not exist")])
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=str(d))
    os.close(fd)
    try:
        if p.suffix.lower() == ".parquet":
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError:
                raise SpecError([("--loads", "writing Parquet needs pyarrow (pip install 'topo[parquet]'); use a .csv path")])
            pq.write_table(pa.table({k: (np.asarray(v) if not isinstance(v, list) else v) for k, v in table.items()}), tmp)
        else:
            # node names (a custom graph's) may hold commas, quotes, line breaks or a leading '='
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                _loads_csv(fh, table)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fmt(x, nd=3):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _hashing(d: dict) -> str:
    """'2 channels x 4 QPs per channel' for a hashing model's summary, '' for the others (null there)."""
    c, q = d.get("channels"), d.get("qps_per_channel")
    if c is None or q is None:
        return ""
    return f"{c} channel{'s' if c != 1 else ''} x {q} QP{'s' if q != 1 else ''} per channel"


def _render(s: dict) -> str:
    from topo.traffic.demand import unplaced_line
    qps = f"{_hashing(s)}, " if _hashing(s) else ""  # channels and queue pairs matter to hashing only
    lines = [f"{s['cluster']}: {s['family']}, {s['endpoints']:,} endpoints, routing {s['routing']} "
             f"({qps}seed {s['seed']}), traffic {s['traffic']}, {s['flows']:,} flows"]
    if s.get("placement"):
        lines.append(f"placement: {s['placement']}")
    lines += [unplaced_line(n, u) for n, u in (s.get("unplaced") or {}).items()]
    if s["failed"]["links"] or s["failed"]["nodes"]:
        lines.append(f"failed: {s['failed']['links']} links, nodes {', '.join(s['failed']['nodes']) or '-'}")
    ws = s.get("with_serving")
    lines.append(f"offered {s['offered_gbps']:,.0f} Gb/s, unreachable {s['unreachable_gbps']:,.1f} Gb/s "
                 f"({100 * s['unreachable_fraction']:.2f}%), max utilisation {_fmt(s['max_util'])}"
                 + (f" (with serving {_fmt(ws['max_util'])})" if ws else ""))
    lines.append("")
    wt = {t["tier"]: t for t in ws["tiers"]} if ws else {}
    lines.append(f"{'tier':<15}{'links':>9}{'util max':>10}{'p99':>8}{'mean':>8}{'imbalance':>11}"
                 + (f"  |{'+serving max':>13}{'p99':>8}{'mean':>8}" if ws else "") + "  worst node")
    for t in s["tiers"]:
        w = wt.get(t["tier"])
        lines.append(f"{t['tier']:<15}{t['links']:>9,}{_fmt(t['util_max']):>10}{_fmt(t['util_p99']):>8}"
                     f"{_fmt(t['util_mean']):>8}{_fmt(t['uplink_imbalance'], 2):>11}"
                     + (f"  |{_fmt(w['util_max']):>13}{_fmt(w['util_p99']):>8}{_fmt(w['util_mean']):>8}" if w else
                        ("  |" + " " * 29 if ws else "")) + f"  {t['worst_node'] or '-'}")
    if ws:
        lines.append(f"(+serving: the jobs and every serving deployment at its stated rate, routed {ws['routing']}; "
                     f"serving alone peaks at {_fmt(ws['serving_max_util'])})")
    if s["hottest"]:
        lines.append("")
        lines.append("hottest links:")
        for h in s["hottest"][:10]:
            lines.append(f"  {h['link']:<40} util {h['util']:.3f}  ({h['load_gbps']:,.1f} / {h['gbps']:g} Gb/s)")
    if s["jobs"]:
        lines.append("")
        lines.append(f"{'job':<20}{'ideal s':>10}{'time s':>10}{'slowdown':>10}{'busbw Gb/s':>12}")
        for j in s["jobs"]:
            lines.append(f"{j['name']:<20}{_fmt(j['ideal_s'], 4):>10}{_fmt(j['time_s'], 4):>10}"
                         f"{_fmt(j['slowdown'], 2):>10}{_fmt(j['busbw_gbps'], 1):>12}")
    lines.append("")
    su = s["scaleup"]
    lines.append(f"scale-up: max {su['max_gbps_per_accelerator']:,.1f} Gb/s per accelerator (util {_fmt(su['max_util'])})")
    if s.get("bisection_gbps") is not None:
        lines.append(f"bisection: {s['bisection_gbps']:,.0f} Gb/s")
    a2a = s.get("all_to_all")
    if a2a:
        parts = []
        for cls, label in (("accelerators", "accelerators"), ("cpu_hosts", "CPU hosts")):
            v = a2a.get(cls)
            if v is None:
                continue
            g = v.get("gbps_per_endpoint")
            parts.append(f"{label} {'-' if g is None else f'{g:,.1f}'} Gb/s ({v['endpoints']:,}, limited by "
                         f"{v['limited_by']})")
        if parts:
            lines.append("uniform all-to-all per endpoint (fluid): " + "; ".join(parts))
        nt = a2a.get("node_types") or {}
        if nt:
            per = []
            for n, v in nt.items():
                g = v.get("gbps_per_endpoint")
                per.append(f"{n} {'-' if g is None else f'{g:,.1f}'} Gb/s ({v['endpoints']:,}, limited by {v['limited_by']})")
            lines.append("  per node type: " + "; ".join(per))
    elif "all_to_all_gbps_per_accelerator" in s:
        lines.append(f"uniform all-to-all (fluid): {s['all_to_all_gbps_per_accelerator']:,.1f} Gb/s per accelerator")
    if "optimal" in s:
        o = s["optimal"]
        lines.append(f"optimal (max concurrent flow LP): lambda = {_fmt(o.get('lambda'), 4)} "
                     f"({o.get('status')}, {o.get('variables', 0):,} variables)")
    if s.get("roce_vs_uec"):
        c = s["roce_vs_uec"]
        lines.append("")
        rq = f" ({_hashing(c['roce-hash'])})" if _hashing(c["roce-hash"]) else ""
        lines.append(f"RoCE hashing{rq} vs UEC spraying: max util {_fmt(c['roce-hash']['max_util'])} vs "
                     f"{_fmt(c['uec-spray']['max_util'])} (collision penalty {_fmt(c['collision_penalty_max_util'], 2)}x)")
        for n, p in c["collision_penalty_time"].items():
            lines.append(f"  {n:<20} {_fmt(c['roce-hash']['jobs'][n], 4)} s vs {_fmt(c['uec-spray']['jobs'][n], 4)} s"
                         f"  ({_fmt(p, 2)}x)")
    return "\n".join(lines)


@main.command()
@cluster_arg
@click.option("--routing", type=routing_choice(), default=None,
              help="routing model (default from transport.protocol: roce -> roce-hash, uec -> uec-spray, ideal -> fluid)")
@click.option("--traffic", default="jobs", show_default=True,
              help="jobs | uniform | permutation | incast | FILE.csv (src,dst,bytes with endpoint names)")
@click.option("--fail", "fail", type=FAIL, default="", help="comma-separated links ('a->b' or 'a--b') and switch names to fail")
@click.option("--seed", type=SEED, default=None, help="seed of the hash and the random patterns (default goals.seed)")
@click.option("--qps", type=click.IntRange(1, limits.MAX_QPS_PER_CHANNEL), default=None,
              help="queue pairs per channel (default transport.qps_per_channel, or its shorthand "
                   "transport.qps_per_connection); the channels stay the file's unless --channels")
@click.option("--channels", type=click.IntRange(1, limits.MAX_CHANNELS), default=None,
              help="channels per collective (default transport.channels, 1 unless stated)")
@click.option("--sizes", "sizes", default=None, metavar="RANGE",
              help="collective time and bus bandwidth per message size, e.g. 1KiB..16GiB (powers of two) or "
                   "1MiB,64MiB, for every job's collectives under RoCE hashing and UEC spraying")
@click.option("--sharing", type=click.Choice(["max-min", "bytes"]), default=None,
              help="how roce-hash queue pairs share a bottleneck in the job times: per-QP max-min fairness "
                   "(default) or byte-weighted (flows sharing a link finish together)")
@click.option("--explain", is_flag=True, help="show every candidate algorithm of each collective with its time")
@json_option()
@click.option("--loads", "loads_path", default=None, help="write per-link loads (CSV, or Parquet for *.parquet)")
@click.option("--placement", "placement_path", default=None, metavar="FILE",
              help="route the jobs where this placement puts them (the JSON `topo place -o` writes); "
                   "default: in order, the jobs that fit")
@fabric_option
@handle_errors
def analyze(cluster, routing, traffic, fail, seed, qps, channels, sharing, sizes, explain, as_json, loads_path, placement_path,
            which_fabric):
    """Route traffic on the fabric: utilisation per tier, hot links, job times, RoCE vs UEC."""
    from topo.model.fabric import build
    from topo.pipeline import read_placement
    from topo.traffic.demand import fit_in_order, unplaced_jobs, unplaced_line
    from topo.routing.engine import analyze as _analyze
    from topo.model.spec import load
    c = load(cluster)
    if which_fabric == "front-end":
        return _front_end(c, routing, traffic, fail, seed, qps, channels, sharing, sizes, explain, as_json,
                          loads_path, placement_path)
    if traffic not in ("jobs", "uniform", "permutation", "incast") and not Path(traffic).is_file():
        raise SpecError([("--traffic", f"expected jobs, uniform, permutation, incast or a CSV file; {traffic!r} is none of these")])
    if placement_path is not None and traffic != "jobs":
        raise SpecError([("--placement", f"places the jobs; it applies only with --traffic jobs (found {traffic!r})")])
    f = build(c)
    placement, unplaced, source = None, {}, None
    if placement_path is not None:
        placement = read_placement(placement_path, c, f)
        unplaced, source = unplaced_jobs(c, f, placement), str(placement_path)
    elif traffic == "jobs" and c.file.jobs:
        placement, unplaced = fit_in_order(c, f)  # a queue larger than the free capacity is normal
        source = "in order" + (" (the jobs that fit, by priority)" if unplaced else "")
    a = _analyze(c, f, routing=routing, traffic=traffic, fail=fail,
                 seed=seed, qps=qps, channels=channels, placement=placement, sharing=sharing)
    if loads_path:
        _write_loads(loads_path, a.loads_table(f))
    d = a.to_dict()
    if (sizes is not None or explain) and traffic != "jobs":
        raise SpecError([("--sizes" if sizes is not None else "--explain",
                          f"time the jobs' collectives; they apply only with --traffic jobs (found {traffic!r})")])
    if traffic == "jobs" and c.file.jobs and d.get("routing") != "optimal":
        d["collectives"] = _collectives(c, f, placement, routing, seed, qps, channels, fail)
        if sizes is not None:
            from topo.routing.collectives import size_range, size_sweep
            try:
                sz = size_range(sizes)
            except SpecError as e:
                raise e.renamed({"sizes": "--sizes"}) from None
            d["size_sweep"] = size_sweep(c, sz, f, placement=placement, seed=seed, qps=qps, channels=channels)
    if source is not None:
        d["placement"] = source
        d["unplaced"] = unplaced
    if traffic == "jobs" and c.file.serving.deployments:   # serving replicas beside the jobs, their traffic
        from topo.solve.serving_place import place_serving, summary as serving_summary, with_jobs
        placed = place_serving(c, f, placement or {}, seed=seed)
        d["serving"] = serving_summary(c, f, placement or {}, seed=seed,
                                       routing=None if routing == "optimal" else routing, placed=placed)
        if d["routing"] != "optimal":   # the main tables again with the serving traffic added, same routing
            d["with_serving"] = with_jobs(c, f, a.loads, placed, routing=d["routing"], efficiency=d["wire_efficiency"],
                                          seed=d["seed"], qps=qps if qps is not None else c.file.transport.qps,
                                          channels=channels if channels is not None else c.file.transport.n_channels,
                                          fail=fail)
    if as_json:
        for n, u in unplaced.items():
            echo(unplaced_line(n, u), err=True)
        emit_json(d)
    else:
        echo(_render(d))
        if "collectives" in d:
            echo("")
            echo(render_collectives(d["collectives"], explain))
        if "size_sweep" in d:
            echo("")
            echo(render_sweep(d["size_sweep"]))
        if "serving" in d:
            echo("")
            echo(render_serving(d["serving"]))


def _front_end(c, routing, traffic, fail, seed, qps, channels, sharing, sizes, explain, as_json, loads_path,
               placement_path) -> None:
    """`topo analyze --fabric front-end`: a synthetic pattern or a CSV matrix on the front-end fabric (its
    endpoints are hosts, n0000-g0, ...). It carries no jobs: --traffic jobs, --placement, --sizes and --explain
    are refused (the agent tiers' flows on it are in topo serve and in analyze's serving section)."""
    from topo.model.frontend_build import for_fabric
    from topo.routing.engine import analyze as _analyze
    given = [n for n, v in (("--placement", placement_path), ("--sizes", sizes), ("--explain", explain)) if v]
    if traffic == "jobs" or given:
        raise SpecError([(given[0] if given else "--traffic",
                          "the front-end fabric carries no jobs: give --traffic uniform, permutation, incast or a CSV "
                          "of host endpoints (n0000-g0, ...); the agent tiers' flows on it are reported by topo serve "
                          "and by topo analyze's serving section")])
    if traffic not in ("uniform", "permutation", "incast") and not Path(traffic).is_file():
        raise SpecError([("--traffic", f"expected uniform, permutation, incast or a CSV file; {traffic!r} is none of these")])
    fc, front = for_fabric(c, "front-end")
    a = _analyze(fc, front, routing=routing, traffic=traffic, fail=fail, seed=seed, qps=qps, channels=channels,
                 sharing=sharing)
    if loads_path:
        _write_loads(loads_path, a.loads_table(front))
    d = {"fabric": "front-end", **a.to_dict()}
    if as_json:
        emit_json(d)
    else:
        echo("front-end fabric")
        echo(_render(d))


def render_serving(s: dict) -> str:
    """The serving deployments beside the jobs: placement, load, network time per token, interference."""
    from topo.core.textsafe import terminal_safe as _safe
    sp = s["serving_placement"]
    lines = [f"serving (routed on the healthy fabric; {s['placement']}"
             + (f", objective {sp['objective']:,} bound {sp['bound']:,}" if sp.get("objective") is not None else "") + ")"]
    for d in s["deployments"]:
        kv = sp["kv_crossing"].get(d["name"])
        lines.append(f"  {_safe(d['name'])}: {d['mode']}, {d['requests_per_s']:,.4g} requests/s, network "
                     f"{d['network_gbps']:,.1f} Gb/s, scale-up {d['scaleup_gbps']:,.1f} Gb/s"
                     + (f", KV across leaves {kv['kv_bytes_per_s_crossing_leaves'] / 1e9:,.4g} GB/s" if kv else ""))
        for m, e in d["time_per_token"]["models"].items():
            sat = e["saturating_requests_per_s"]
            lines.append(f"    {m:<10} network time per token {_t(e['at_rate_s'])} (idle {_t(e['idle_s'])}); "
                         f"saturates at {'-' if sat is None else f'{sat:,.4g}'} requests/s "
                         f"({_safe(e['saturating_link'] or '-')})")
    a = s["all"]
    lines.append(f"  all deployments: max link util {a['max_util']:.4f} (fluid), scale-up {a['scaleup_max_util']:.4f}")
    w = s.get("with_training")
    if w:
        lines.append(f"  with the jobs at line rate (fluid): max link util {w['max_util']:.4f} (jobs alone "
                     f"{w['training_max_util']:.4f}), {w['shared_links']:,} links carry both")
        inf = w.get("interference")
        if inf:
            for m, e in inf["models"].items():
                per = ", ".join(f"{_safe(n)} {_t(j['time_s'])} -> {_t(j['with_serving_s'])}"
                                + ("" if j["slowdown"] is None else f" ({j['slowdown']:.4f}x)")
                                for n, j in e["jobs"].items())
                lines.append(f"    {m:<10} job time without -> with serving: {per}")
    if s.get("front_end"):
        from topo.cli.app import front_end_lines
        lines += front_end_lines(s["front_end"], s["routing"])
    return "\n".join(lines)


def _collectives(c, f, placement, routing, seed, qps, channels, fail):
    from topo.core.jsonable import to_jsonable
    from topo.routing.collectives import collective_times
    from topo.routing.engine import failure_mask, parse_failures
    links, nodes = parse_failures(f, fail)
    dead = failure_mask(f, links, nodes)
    return to_jsonable(collective_times(c, f, placement=placement, routing=routing, seed=seed, qps=qps,
                                        channels=channels, failed=dead if dead.any() else None))


def _t(x) -> str:
    """Seconds with a unit that keeps three significant figures readable."""
    if x is None:
        return "-"
    x = float(x)
    for unit, k in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(x) >= k:
            return f"{x / k:.3g} {unit}"
    return f"{x * 1e9:.3g} ns"


def render_collectives(cs: dict, explain: bool = False) -> str:
    """The collective-time table: per job and collective, algorithm, time = alpha + beta, bus bandwidth."""
    from topo.core.textsafe import terminal_safe as _safe
    lines = [f"collective time (alpha-beta, routing {cs['routing']}; {cs['sharing']}; step overhead "
             f"{_t(cs['step_overhead_s'])})"]
    if cs.get("switch_latency_unknown"):
        lines.append("  switch latency not counted (no figure for " + ", ".join(_safe(x) for x in cs["switch_latency_unknown"])
                     + "; set catalog.switches.<name>.latency_ns)")
    lines.append(f"  {'job':<18}{'op':<14}{'group':<6}{'ranks':>6}{'x':>4}  {'algorithm':<19}{'time':>10}"
                 f"{'alpha':>10}{'beta':>10}{'busbw Gb/s':>12}")
    for j in cs["jobs"]:
        for e in j["collectives"]:
            alg = (e["algorithm"] or "-") + (" (pinned)" if e.get("chosen_by") == "pinned" else "")
            bb = "-" if e["busbw_gbps"] is None else f"{e['busbw_gbps']:,.1f}"
            lines.append(f"  {_safe(j['name'])[:17]:<18}{e['op']:<14}{e['group']:<6}{e['ranks']:>6}{e['count']:>4}  "
                         f"{alg:<19}{_t(e['time_s']):>10}{_t(e['alpha_s']):>10}{_t(e['beta_s']):>10}{bb:>12}")
            if explain:
                for cd in e["candidates"]:
                    if cd["time_s"] is None:
                        lines.append(f"      {cd['algorithm']:<19} not applicable: {cd['why_not']}")
                    else:
                        lines.append(f"      {cd['algorithm']:<19} {_t(cd['time_s']):>10} = {_t(cd['alpha_s'])} alpha "
                                     f"({cd['steps']} steps) + {_t(cd['beta_s'])} beta")
        it = f", iteration {_t(j['iteration_s'])} with {_t(j['compute_s'])} compute (overlap {j['overlap']:g}): " \
             f"network {100 * j['network_share']:.1f}%" if j.get("iteration_s") is not None else ""
        lines.append(f"  {_safe(j['name'])[:17]:<18}communication per iteration {_t(j['comm_s'])}{it}")
    return "\n".join(lines)


def render_sweep(sw: dict) -> str:
    """Per transport, job and collective: time (alpha + beta) and bus bandwidth against message size."""
    from topo.core.textsafe import terminal_safe as _safe
    lines = []
    for model, cs in sw.items():
        for j in cs["jobs"]:
            for e in j["collectives"]:
                if not e.get("sweep"):
                    continue
                lines.append(f"{model}: {_safe(j['name'])} {e['op']} over {e['group']} ({e['ranks']} ranks)")
                lines.append(f"  {'size':>10}  {'algorithm':<19}{'time':>10}{'alpha':>10}{'beta':>10}{'busbw Gb/s':>12}")
                for r in e["sweep"]:
                    bb = "-" if r["busbw_gbps"] is None else f"{r['busbw_gbps']:,.2f}"
                    lines.append(f"  {_size(r['bytes']):>10}  {r['algorithm']:<19}{_t(r['time_s']):>10}"
                                 f"{_t(r['alpha_s']):>10}{_t(r['beta_s']):>10}{bb:>12}")
    return "\n".join(lines)


def _size(b: float) -> str:
    for unit, k in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if b >= k and b % k == 0:
            return f"{int(b // k)} {unit}"
    return f"{b:g} B"
