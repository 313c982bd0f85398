"""`topo serve`: route the serving deployments' traffic and report it per deployment.

Thin layer: parse options, call :func:`topo.routing.serving.serving`, render a table or one
JSON document. Exit 0 whether or not the fabric carries the load (the report says which);
bad input exits 2.
"""
from __future__ import annotations

import click

from topo.cli.app import cluster_arg, emit_json, front_end_lines, handle_errors, main
from topo.cli.options import SEED, TIME_LIMIT, WORKERS, echo, json_option, routing_choice
from topo.core import limits


def _g(x) -> str:
    return "-" if x is None else f"{x:,.4g}"


def _us(x) -> str:
    return "saturated" if x is None else f"{x * 1e6:,.2f}"


def _ms(x) -> str:
    return "never (no path)" if x is None else f"{x * 1e3:,.3f} ms"


def _render(s: dict) -> str:
    from topo.traffic.serving import KINDS
    lines = [f"{s['cluster']}: {s['family']}, {s['endpoints']:,} endpoints, {s['flows']:,} serving flows, "
             f"routing fluid and {s['routing']}, target utilisation {s['target_utilization']:g}",
             f"placement: {s['placement']}"]
    sp = s.get("serving_placement")
    if sp:
        if sp["method"] == "cpsat":
            lines.append(f"serving placement: CP-SAT {sp['status']}, objective {sp['objective']:,} (bound "
                         f"{sp['bound']:,}; KV pairs across leaves x 1 + across pods x 3, weighted by KV bytes), "
                         f"re-checked independently")
        else:
            lines.append("serving placement: in order")
        before = sp.get("kv_crossing_in_order") or {}
        for name, k in sp["kv_crossing"].items():
            b = before.get(name)
            was = ("in order: does not fit" if b is None else
                   f"in order {b['kv_bytes_per_s_crossing_leaves'] / 1e9:,.4g} GB/s across leaves, "
                   f"{b['kv_bytes_per_s_crossing_pods'] / 1e9:,.4g} GB/s across pods"
                   + ("" if sp.get("in_order_spread_ok", True) else ", breaking the spread limit"))
            lines.append(f"  {name}: KV {k['kv_bytes_per_s_crossing_leaves'] / 1e9:,.4g} GB/s across leaves, "
                         f"{k['kv_bytes_per_s_crossing_pods'] / 1e9:,.4g} GB/s across pods ({was})")
    lines.append("")
    for d in s["deployments"]:
        lines.append(f"deployment {d['name']} ({d['mode']}, {d['accelerators']:,} accelerators, "
                     f"{d['requests_per_s']:,.4g} requests/s)")
        for role, reps in d["replicas"].items():
            shown = ", ".join(f"{a}..{b}" for a, b in reps[:4]) + (f", ... ({len(reps)} replicas)" if len(reps) > 4 else "")
            lines.append(f"  {role}: {shown}")
        lines.append(f"  KV bytes per token {d['kv_bytes_per_token']:,.0f}; MoE dispatch bytes per token per layer "
                     f"{d['moe_dispatch_bytes_per_token_per_layer']:,.0f}")
        lines.append("  GB/s by kind: " + ", ".join(f"{k} {d['bytes_per_s'][k] / 1e9:,.4g}" for k in KINDS
                                                   if d["bytes_per_s"][k] > 0))
        lines.append(f"  network {d['network_gbps']:,.1f} Gb/s, scale-up {d['scaleup_gbps']:,.1f} Gb/s; alone: max "
                     f"link util {d['max_util']:.4f}, scale-up util {d['scaleup_max_util']:.4f}")
        lines.append(f"  highest rate at the target: {_g(d['max_requests_per_s_at_target'])} requests/s "
                     f"(limited by {d['limited_by'] or '-'})")
        for name, k in (d.get("kv_transfer") or {}).items():
            lines.append(f"  KV transfer at {name} ({k['tokens']:,} tokens, {k['bytes'] / 1e6:,.1f} MB): "
                         f"{k['idle_s'] * 1e3:,.3f} ms idle, {k['loaded_s'] * 1e3:,.3f} ms loaded")
        tt = d.get("time_per_token")
        if tt:
            lines.append(f"  network time per output token ({tt['pool']} step, {tt['tokens_per_step']}):")
            for m, e in tt["models"].items():
                lines.append(f"    {m:<10} idle {e['idle_s'] * 1e6:,.2f} us, at {d['requests_per_s']:,.4g}/s {_us(e['at_rate_s'])}{'' if e['at_rate_s'] is None else ' us'}; "
                             f"saturates at {_g(e['saturating_requests_per_s'])} requests/s "
                             f"({e['saturating_link'] or '-'})")
                lines.append("      curve (requests/s: us): " + ", ".join(
                    f"{p['requests_per_s']:,.4g}: {_us(p['time_s'])}" for p in e["curve"]))
        for h in d["busiest_links"][:3]:
            lines.append(f"    {h['link']:<40} util {h['util']:.4f} ({h['load_gbps']:,.2f} / {h['gbps']:g} Gb/s)")
    a = s["all"]
    lines += ["", f"all deployments: network {a['network_gbps']:,.1f} Gb/s, scale-up {a['scaleup_gbps']:,.1f} Gb/s; "
                  f"max link util {a['max_util']:.4f} (fluid), {a['max_util_transport']:.4f} ({s['routing']}); "
                  f"scale-up util {a['scaleup_max_util']:.4f}",
              f"carries the load at the target: {'yes' if a['carries_at_target'] else 'NO'} (fluid), "
              f"{'yes' if a['carries_at_target_transport'] else 'NO'} ({s['routing']}); load scale at the target "
              f"{_g(a['load_scale_at_target'])}x", "busiest links (fluid):"]
    for h in a["busiest_links"][:10]:
        lines.append(f"  {h['link']:<40} util {h['util']:.4f} ({h['load_gbps']:,.2f} / {h['gbps']:g} Gb/s)")
    w = s.get("with_training")
    if w:
        lines += ["", f"with the training jobs communicating at line rate (fluid): max link util {w['max_util']:.4f} "
                      f"(training alone {w['training_max_util']:.4f}); {w['shared_links']:,} links carry both"
                      + (f", serving at most {100 * w['shared_max_serving_share']:.1f}% of one"
                         if w["shared_max_serving_share"] is not None else "")]
        for m, e in ((w.get("interference") or {}).get("models") or {}).items():
            lines.append(f"  {m:<10} job communication time without -> with the serving traffic: " + ", ".join(
                f"{n} {_ms(j['time_s'])} -> {_ms(j['with_serving_s'])}"
                + ("" if j["slowdown"] is None else f" ({j['slowdown']:.4f}x)") for n, j in e["jobs"].items()))
    lines += front_end_lines(s.get("front_end"), s["routing"])
    return "\n".join(lines)


def _rates(text):
    """'1,5,20.5' -> [1.0, 5.0, 20.5]; a value that is not a positive number is refused as --rates."""
    if text is None:
        return None
    from topo.core.errors import SpecError
    from topo.core.textsafe import visible
    out = []
    for part in text.split(","):
        try:
            v = float(part.strip())
        except ValueError:
            v = float("nan")
        if not (v > 0 and v < float("inf")):
            raise SpecError([("rates", f"expected positive request rates separated by commas (found {visible(part)!r})")])
        out.append(v)
    return out


@main.command()
@cluster_arg
@click.option("--routing", type=routing_choice(), default=None,
              help="the transport's model reported beside fluid (default from transport.protocol)")
@click.option("--seed", type=SEED, default=None, help="seed of the RoCE hash (default goals.seed)")
@click.option("--qps", type=click.IntRange(1, limits.MAX_QPS_PER_CHANNEL), default=None,
              help="queue pairs per channel (default the file's transport)")
@click.option("--channels", type=click.IntRange(1, limits.MAX_CHANNELS), default=None,
              help="channels per connection (default the file's transport)")
@click.option("--target-util", "target_utilization", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="target utilisation (default goals.target_utilization)")
@click.option("--rates", default=None, metavar="R1,R2,...",
              help="request rates per second of the network-time-per-token curve (default: fractions of the "
                   "saturating rate and the stated rate)")
@click.option("--placement", "serving_placement", type=click.Choice(["cpsat", "in-order"]), default="cpsat",
              show_default=True, help="place the serving replicas with CP-SAT (KV pairs under one leaf, spread "
                                      "limits) or in order after the training jobs")
@click.option("--time-limit", type=TIME_LIMIT, default=None, help="seconds for the CP-SAT placement "
                                                                  "(default goals.time_limit_s)")
@click.option("--workers", type=WORKERS, default=None, help="CP-SAT workers (default goals.workers)")
@json_option()
@handle_errors
def serve(cluster, routing, seed, qps, channels, target_utilization, rates, serving_placement, time_limit, workers,
          as_json):
    """Route the serving deployments' traffic: load per deployment, busiest links, KV-transfer time."""
    from topo.model.spec import load
    from topo.solve.serving_place import serving
    s = serving(load(cluster), serving_placement=serving_placement, time_limit=time_limit, workers=workers,
                routing=routing, seed=seed, qps=qps, channels=channels, target_utilization=target_utilization,
                rates=_rates(rates))
    if as_json:
        emit_json(s)
    else:
        echo(_render(s))
