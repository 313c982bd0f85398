"""Plain-text tables for the terminal. Pure functions of result dicts.

Every string of a result dict (names come from the user's files) is made
:func:`topo.core.textsafe.terminal_safe` before it is laid out, and the composed
text once more: no escape sequence, control byte, line break or bidi override
from a name reaches the terminal.
"""
from __future__ import annotations

from topo.core.textsafe import terminal_safe, terminal_safe_data, terminal_safe_text


def _fmt(x, unit="") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        if abs(x) >= 1e6:
            s = f"{x:,.0f}"
        elif abs(x) >= 100:
            s = f"{x:,.1f}"
        else:
            s = f"{x:.3g}"
    else:
        s = f"{x:,}" if isinstance(x, int) else str(x)
    return f"{s} {unit}".rstrip()


def table(rows: list[list], header: list[str]) -> str:
    cells = [[terminal_safe(c) for c in header]] + [[terminal_safe(c) for c in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(r))
    return "\n".join([line(cells[0]), "  ".join("-" * x for x in w)] + [line(r) for r in cells[1:]])


def describe_text(d: dict) -> str:
    return terminal_safe_text(_describe_text(terminal_safe_data(d)))


def _describe_text(d: dict) -> str:
    out = [f"{d['name']}  ({d['family']}, {d['planes']} plane(s), {d['pods']} pod(s))", ""]
    out.append(table([
        ["accelerators", _fmt(d["accelerators"])], ["CPU-only hosts", _fmt(d["cpu_hosts"])],
        ["nodes", _fmt(d["nodes"])], ["racks", _fmt(d["racks"])],
        ["scale-up domains", ", ".join(f"{c:,} x {s}" for s, c in d["scaleup_domains"].items()) or "none"],
        ["scale-up per accelerator", _fmt(d["scaleup_gbps_per_accelerator"], "Gb/s")],
        ["NIC ports", _fmt(d["nic_ports"])],
        ["injection per accelerator", _fmt(d["injection_gbps_per_accelerator"], "Gb/s")],
        ["bisection (one direction)", _fmt(d["bisection_gbps"] / 1e3 if d["bisection_gbps"] is not None else None, "Tb/s")],
        ["bisection per accelerator", _fmt(d["bisection_per_accelerator_gbps"], "Gb/s")],
    ], ["cluster", "value"]))
    out.append("")
    out.append(table([[t["tier"], t["model"], _fmt(t["switches"]), _fmt(t["uplinks"]),
                       ("n/a" if t["oversubscription"] is None else f"{t['oversubscription']:g}:1")
                       + (f" (up to {t['oversubscription_built_max']:g}:1 built)" if t.get("oversubscription_built_max") else "")]
                      for t in d["tiers"]], ["tier", "switch", "count", "uplinks", "oversubscription (capacity)"]))
    st = d.get("structure")
    if st:
        out.append("")
        for x in st.get("stated") or []:
            out.append(f"stated:  {x['what']} = {x['value']} ({x['rule']})")
        for x in st.get("derived") or []:
            out.append(f"derived: {x['what']} = {x['value']} ({x['rule']})")
    a2a = d.get("all_to_all")
    if a2a:
        parts = [f"{cls.replace('_', ' ')} {_fmt(a2a[cls]['gbps_per_endpoint'], 'Gb/s')} "
                 f"(limited by {a2a[cls]['limited_by']})" for cls in ("accelerators", "cpu_hosts") if cls in a2a]
        out.append("")
        out.append("uniform all-to-all per endpoint (fluid ECMP): " + "; ".join(parts))
        nt = a2a.get("node_types") or {}
        if nt:
            out.append("  per node type: " + "; ".join(
                f"{n} {_fmt(v['gbps_per_endpoint'], 'Gb/s')} ({v['endpoints']:,}, "
                f"{'/'.join(f'{g:g}G' for g in v.get('nic_port_gbps') or [])} NIC ports, limited by {v['limited_by']})"
                for n, v in nt.items()))
    if d.get("inferred"):  # a custom graph: what was inferred from it, and how
        from topo.model.graphinfer import text_lines
        out.append("")
        out.extend(text_lines(d["inferred"]))
    cl = d.get("capacity_cliff")
    if cl:
        out.append("")
        extra = cl["extra_cost_fraction"]
        out.append(f"CAPACITY CLIFF: {cl['what']} ({cl['ports']:,} endpoint ports, {100 * cl['ports_fraction']:.1f}% "
                   f"of them) force pod {cl['pods']} ({cl['leaves_in_last_pod']} of {cl['leaves_per_pod']} leaves): "
                   f"{cl['switches']:,} switches and ${cl['network_cost_usd']:,.0f} with them, "
                   f"{cl['switches_without']:,} and ${cl['network_cost_usd_without']:,.0f} without "
                   f"(+{cl['extra_switches']:,} switches"
                   + (f", +{100 * extra:.1f}% network cost)" if extra is not None else ")"))
    out.append("")
    b = d["bill_of_materials"]
    out.append(table([[o["reach"], o["part"], f"{o['gbps']}G", _fmt(o["links"]), _fmt(o["units"]),
                       _fmt(o["kw"], "kW"), _fmt(o["cost_usd"], "$")] for o in b["optics"]],
                     ["reach", "part", "speed", "links", "units", "power", "cost"]))
    uv = d.get("unverified_figures") or []
    if uv:
        out.append("unverified catalog figures in use (no primary source; state your own in the file's catalog "
                   "to replace them): " + "; ".join(f"{x['kind']} {x['name']} ({', '.join(x['fields'])})" for x in uv))
    out.append("")
    rp = d["rack_power"]
    out.append(f"rack power: max {rp['max_kw']:.1f} kW, total {rp['total_kw']:,.0f} kW; "
               f"{rp['racks_over_limit']} rack(s) over limit")
    for r in rp["over_limit"][:10]:
        out.append(f"  OVER LIMIT {r['rack']}: {r['kw']:.1f} kW > {r['limit_kw']:.1f} kW")
    t = b["totals"]
    out.append(f"network: {t['switches']:,} switches, {t['network_kw']:,.1f} kW "
               f"(switches {t['switch_kw']:,.1f}, optics {t['optics_kw']:,.1f}), "
               f"${t['network_cost_usd']:,.0f}")
    return "\n".join(out)


def optimize_text(s: dict) -> str:
    return terminal_safe_text(_optimize_text(terminal_safe_data(s)))


def _optimize_text(s: dict) -> str:
    p, b = s["placement"], s["budget"]
    out = [f"{s['cluster']}: wrote {s['files']} files to {s['out_dir']}/",
           f"placement: {p['status']}, objective {_fmt(p['objective'])}, bound {_fmt(p['bound'])}, "
           f"gap {_fmt(p['gap'])}; {p['placed']} job(s) placed, {len(p['unplaced'])} unplaced"]
    for j, why in (p["unplaced"] or {}).items():
        out.append(f"  unplaced {j}: {why}")
    out.append(f"link budget: {b['status']}, gap {_fmt(b['gap'])}; capex {_fmt(b['capex_usd'], '$')}, "
               f"energy {_fmt(b['energy_usd'], '$')}, network {_fmt(b['network_kw'], 'kW')}")
    saved = b.get("saved_vs_as_given")
    if saved:
        out.append(f"  saves {_fmt(saved.get('total_usd'), '$')} ({100 * saved.get('total_fraction', 0):.1f}%) "
                   f"and {_fmt(saved.get('network_kw'), 'kW')} against the fabric as given")
    model = s.get("routing") or "routed"
    tc = b.get("transport_check") or {}
    if tc:
        what = (f"summed job time {tc['total']:.2f}x, 95th-percentile job penalty {tc['tail']:.2f}x against the fabric as given")
        if tc.get("accepted"):
            out.append(f"  transport check ({tc.get('routing')}): {what}, within {tc['max_slowdown']:.2f}x at target "
                       f"utilisation {tc['chosen_target_utilization']:.3g}")
        else:
            out.append(f"  transport check ({tc.get('routing')}): NOT met; every target tried slows the jobs by more "
                       f"than {tc['max_slowdown']:.2f}x; kept the least-slowing budget ({what})")
    ideal = s.get("ideal_ecmp_util") or {}
    before, placed, after = s["max_util_before"], s.get("max_util_placed") or {}, s["max_util_after"]
    rows = [[t, _fmt(ideal.get(t, {}).get("target")), _fmt(ideal.get(t, {}).get("placed")),
             _fmt(ideal.get(t, {}).get("after")), _fmt(before.get(t)), _fmt(placed.get(t)), _fmt(after.get(t))]
            for t in sorted(set(before) | set(after), key=str)]
    if rows:
        out.append("")
        out.append("max link utilisation per tier (before: in-order placement on the fabric as given; "
                   "placed: optimised placement; after: on the budgeted fabric)")
        out.append(table(rows, ["tier", "target", "ideal ECMP placed", "ideal ECMP after",
                                f"{model} before", f"{model} placed", f"{model} after"]))
    jobs = s.get("jobs") or {}
    if jobs:
        jrows = [[j, _fmt(v.get("before_s")), _fmt(v.get("placed_s")), _fmt(v.get("after_s")), _fmt(v.get("after_uec_s"))]
                 for j, v in jobs.items()]
        out.append("")
        out.append(f"routed collective time per iteration, s (bytes over the slowest flow's rate, {model}; last "
                   f"column: the same fabric with Ultra Ethernet spraying)")
        out.append(table(jrows[:20], ["job", "before", "placed", "after", "after, uec-spray"]))
        if len(jrows) > 20:
            out.append(f"  ... and {len(jrows) - 20} more jobs (all in plan.json and the report)")
        ratio = {j: v["after_s"] / v["placed_s"] for j, v in jobs.items() if v.get("after_s") and v.get("placed_s")}
        slower = {j: r for j, r in ratio.items() if r > 1.05}
        if slower:
            worst = max(slower, key=slower.get)
            faster = sum(1 for r in ratio.values() if r < 1 / 1.05)
            if tc.get("accepted"):
                out.append(f"note: {len(slower)} of {len(ratio)} job(s) are more than 5% slower under {model} on the "
                           f"budgeted fabric (most: {worst}, {slower[worst]:.2f}x) and {faster} more than 5% faster; "
                           f"each fabric is a different draw of hash collisions, so the check is on the summed time "
                           f"and the 95th-percentile penalty (above).")
            else:
                out.append(f"warning: on the budgeted fabric {len(slower)} of {len(ratio)} job(s) are more than 5% "
                           f"slower under {model} than on the fabric as given (most: {worst}, {slower[worst]:.2f}x). "
                           f"The budget sizes links for ideal ECMP; hash collisions add the rest. More channels or queue "
                           f"pairs per channel (transport.channels, transport.qps_per_channel) or packet spraying reduce it; keeping the "
                           f"fabric as given avoids it.")
    cs = s.get("collectives") or {}
    if cs.get("jobs"):
        crow = [[j, _fmt(v.get("comm_s")), _fmt(v.get("alpha_s")), _fmt(v.get("beta_s")),
                 ", ".join(a.replace("_", " ") for a in v.get("algorithms") or [])]
                for j, v in cs["jobs"].items()]
        out.append("")
        out.append(f"collective time per iteration on the budgeted fabric, s (alpha-beta model, {cs.get('routing')}, "
                   f"{cs.get('sharing')} sharing; alpha: latency, beta: bytes over bandwidth; topo analyze --explain "
                   f"shows every algorithm)")
        out.append(table(crow[:20], ["job", "time", "alpha", "beta", "algorithms"]))
        if len(crow) > 20:
            out.append(f"  ... and {len(crow) - 20} more jobs (all in plan.json and the report)")
    return "\n".join(out)
