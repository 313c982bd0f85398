"""Plain-text tables for the terminal. Pure functions of result dicts."""
from __future__ import annotations


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
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(r))
    return "\n".join([line(cells[0]), "  ".join("-" * x for x in w)] + [line(r) for r in cells[1:]])


def describe_text(d: dict) -> str:
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
                       "n/a" if t["oversubscription"] is None else f"{t['oversubscription']:g}:1"]
                      for t in d["tiers"]], ["tier", "switch", "count", "uplinks", "oversubscription"]))
    out.append("")
    b = d["bill_of_materials"]
    out.append(table([[o["reach"], o["part"], f"{o['gbps']}G", _fmt(o["links"]), _fmt(o["units"]),
                       _fmt(o["kw"], "kW"), _fmt(o["cost_usd"], "$")] for o in b["optics"]],
                     ["reach", "part", "speed", "links", "units", "power", "cost"]))
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
    rows = [[t, _fmt(s["max_util_before"].get(t)), _fmt(s["max_util_after"].get(t))]
            for t in sorted(set(s["max_util_before"]) | set(s["max_util_after"]), key=str)]
    if rows:
        out.append("")
        out.append(table(rows, ["tier", "max util before", "max util after"]))
    return "\n".join(out)
