"""What a fabric is made of: counts, capacities, power, bill of materials.

Owns the static accounting of a built fabric (no traffic, no routing). Returns
plain JSON-able dicts; printing belongs to the CLI.
"""
from __future__ import annotations

from typing import Optional

import math

import numpy as np

from topo.model.catalog import optic_part, optic_scale
from topo.model.fabric import Fabric, LINK_TIER_NAMES, REACH_NAMES, TIER_NAMES
from topo.model.spec import Cluster


def bill_of_materials(fabric: Fabric, cluster: Cluster, allow_lpo: bool | None = None) -> dict:
    """Switches by tier and model, optics and cables by reach class and speed.

    Each physical link needs one cable (DAC, AEC) or two transceivers plus
    fibre (optical classes). LPO replaces DSP optics within its reach when the
    cluster allows it. Returns counts, watts and dollars.
    """
    lpo = cluster.file.costs.allow_lpo if allow_lpo is None else allow_lpo
    switches = []
    for t, count in enumerate(fabric.tier_switch_counts):
        name = fabric.switch_models[t] if t < len(fabric.switch_models) else f"tier{t}"
        sw = cluster.switches.get(name)
        if sw is None and t < len(cluster.tiers):
            sw = cluster.tiers[t].switch
        w = sw.power_w if sw else 0.0
        c = sw.cost_usd if sw else 0.0
        switches.append({"tier": TIER_NAMES[t + 1], "model": name, "count": int(count),
                         "watts_each": w, "cost_each_usd": c, "kw": count * w / 1e3, "cost_usd": count * c})
    up = slice(0, None, 2)
    reach = fabric.link_reach[up]
    speed = fabric.link_gbps[up]
    optics = []
    if reach.size:
        key = reach.astype(np.int64) * 1_000_000 + np.round(speed).astype(np.int64)
        keys, n = np.unique(key, return_counts=True)
        for k, cnt in zip(keys.tolist(), n.tolist()):
            rclass = REACH_NAMES[k // 1_000_000]
            gbps = k % 1_000_000
            part_name = optic_part(cluster.optics, rclass, lpo)
            part = cluster.optics[part_name]
            scale = optic_scale(gbps)
            units = cnt * part.ends
            optics.append({"reach": rclass, "part": part_name, "gbps": gbps, "links": cnt, "units": units,
                           "watts_each": part.watts * scale, "cost_each_usd": part.cost_usd * scale,
                           "kw": units * part.watts * scale / 1e3, "cost_usd": units * part.cost_usd * scale})
    sw_kw = sum(s["kw"] for s in switches)
    op_kw = sum(o["kw"] for o in optics)
    return {"switches": switches, "optics": optics,
            "totals": {"switches": int(sum(s["count"] for s in switches)),
                       "switch_kw": sw_kw, "optics_kw": op_kw, "network_kw": sw_kw + op_kw,
                       "switch_cost_usd": sum(s["cost_usd"] for s in switches),
                       "optics_cost_usd": sum(o["cost_usd"] for o in optics),
                       "network_cost_usd": sum(s["cost_usd"] for s in switches) + sum(o["cost_usd"] for o in optics)}}


def tier_capacity(fabric: Fabric) -> dict:
    """Upward capacity (Gb/s, one direction) leaving each tier, and injection."""
    up = (np.arange(fabric.n_links) & 1) == 0
    cap = np.bincount(fabric.link_tier[up].astype(np.int64), weights=fabric.link_gbps[up], minlength=3)
    return {"injection_gbps": float(cap[0]), "leaf_up_gbps": float(cap[1]), "spine_up_gbps": float(cap[2])}


def bisection_gbps(fabric: Fabric) -> float | None:
    """Bisection bandwidth of a layered Clos, one direction, from tier capacities.

    A balanced cut of the endpoints crosses at most half the injection, half the
    leaf uplinks (when a plane has more than one leaf) and half the spine
    uplinks (when there is more than one pod); the bisection is the smallest.
    Not defined for custom graphs (returns None).
    """
    if fabric.family == "custom":
        return None
    c = tier_capacity(fabric)
    cands = [c["injection_gbps"] / 2]
    if fabric.tier_switch_counts and fabric.tier_switch_counts[0] > fabric.planes:
        cands.append(c["leaf_up_gbps"] / 2 if c["leaf_up_gbps"] else 0.0)
    if fabric.n_tiers == 3 and fabric.pods > 1:
        cands.append(c["spine_up_gbps"] / 2)
    return float(min(cands))


def rack_power(fabric: Fabric, cluster: Cluster, busy_servers: np.ndarray | None = None) -> dict:
    """Power per rack (all nodes busy unless `busy_servers` says which are).

    Switches placed in compute racks (top-of-rack leaves) count in their rack.
    """
    if busy_servers is None:
        per = fabric.server_busy_kw
    else:
        per = np.where(busy_servers, fabric.server_busy_kw, fabric.server_idle_kw)
    kw = np.bincount(fabric.server_rack, weights=per, minlength=fabric.n_racks)
    if cluster.file.floor.leaf_placement == "tor" and fabric.family != "custom" and fabric.n_tiers:
        leaves = np.flatnonzero(fabric.node_tier == 1)
        # a ToR leaf sits in the rack of its first endpoint
        first_link = fabric.adj[fabric.indptr[leaves]]
        down = fabric.link_dst[first_link]
        eps = np.where(down < fabric.n_endpoints, down, -1)
        ok = eps >= 0
        sw = cluster.tiers[0].switch if cluster.tiers else None
        if sw is not None:
            np.add.at(kw, fabric.server_rack[fabric.ep_server[eps[ok]]], sw.power_w / 1e3)
    over = kw > fabric.rack_limit_kw + 1e-9
    return {"kw": kw, "limit_kw": np.asarray(fabric.rack_limit_kw), "over": over}


def describe(fabric: Fabric, cluster: Cluster) -> dict:
    """Everything `topo describe` prints, as a JSON-able dict."""
    n_acc = int(fabric.ep_is_accel.sum())
    inj = fabric.injection_gbps()
    acc_inj = inj[fabric.ep_is_accel]
    bom = bill_of_materials(fabric, cluster)
    rp = rack_power(fabric, cluster)
    over_idx = np.flatnonzero(rp["over"])
    tiers = []
    up_links = (np.arange(fabric.n_links) & 1) == 0
    for t in range(fabric.n_tiers):
        n_up = int(((fabric.link_tier == t + 1) & up_links).sum())
        tiers.append({"tier": TIER_NAMES[t + 1], "switches": int(fabric.tier_switch_counts[t]),
                      "model": fabric.switch_models[t] if t < len(fabric.switch_models) else "custom",
                      "uplinks": n_up,
                      "oversubscription": (None if not math.isfinite(fabric.tier_oversubscription[t])
                                           else round(float(fabric.tier_oversubscription[t]), 4))})
    tp = fabric.meta.get("tier_ports") or []
    stated_groups = fabric.meta.get("port_groups_stated") or []
    for t, row in enumerate(tiers):
        if t < len(tp) and tp[t] is not None:
            # each switch's ports below the top: stated port groups, or the derived split at the switch's speed
            d, dg, u, ug = tp[t]
            row["ports"] = {"down": int(d), "down_gbps": float(dg), "up": int(u), "up_gbps": float(ug),
                            "stated": bool(t < len(stated_groups) and stated_groups[t])}
        elif t == len(tiers) - 1 and fabric.meta.get("top_ports"):
            d, dg = fabric.meta["top_ports"]
            row["ports"] = {"down": int(d), "down_gbps": float(dg), "up": 0, "up_gbps": None, "stated": True}
    links_by_tier = {LINK_TIER_NAMES[t]: int(((fabric.link_tier == t) & up_links).sum()) for t in range(3)}
    built_os = fabric.meta.get("oversubscription_built") or []
    for t, row in enumerate(tiers):
        if t < len(built_os) and built_os[t] > fabric.tier_oversubscription[t] + 1e-9:
            # some switch of the tier (a partly filled last pod with thinner uplinks) runs at another ratio
            row["oversubscription_built_max"] = (None if not math.isfinite(built_os[t]) else round(float(built_os[t]), 4))
    dsz, dcount = np.unique(fabric.domain_size, return_counts=True)
    bis = bisection_gbps(fabric)
    return {
        "name": cluster.name,
        "family": fabric.family,
        "accelerators": n_acc,
        "cpu_hosts": int(fabric.n_endpoints - n_acc),
        "endpoints": fabric.n_endpoints,
        "nodes": fabric.n_servers,
        "racks": fabric.n_racks,
        "planes": fabric.planes,
        "pods": fabric.pods,
        "scaleup_domains": {str(int(s)): int(c) for s, c in zip(dsz, dcount)},
        "scaleup_gbps_per_accelerator": float(np.median(fabric.domain_gbps)) if fabric.n_domains else 0.0,
        "nic_ports": links_by_tier["endpoint-leaf"],
        "links": links_by_tier,
        "tiers": tiers,
        "bisection_gbps": bis,
        "bisection_per_accelerator_gbps": (bis * 2 / max(n_acc, 1)) if bis is not None else None,
        "injection_gbps_per_accelerator": float(acc_inj.mean()) if acc_inj.size else 0.0,
        "rack_power": {
            "max_kw": float(rp["kw"].max()) if rp["kw"].size else 0.0,
            "total_kw": float(rp["kw"].sum()),
            "racks_over_limit": int(over_idx.size),
            "over_limit": [{"rack": fabric.rack_name(i), "kw": round(float(rp["kw"][i]), 3),
                            "limit_kw": float(rp["limit_kw"][i])} for i in over_idx[:50]],
        },
        "bill_of_materials": bom,
        "network_kw": bom["totals"]["network_kw"],
        "network_cost_usd": bom["totals"]["network_cost_usd"],
        "structure": structure(fabric),
        "all_to_all": all_to_all_by_class(fabric),
        "capacity_cliff": capacity_cliff(fabric, cluster, bom),
        "unverified_figures": unverified_figures(cluster, bom),
    } | _custom_graph(fabric, tiers)


def _custom_graph(fabric: Fabric, tiers: list) -> dict:
    """Custom graphs: planes, pods, tier oversubscription, bisection and the all-to-all bound inferred
    from the graph, each with its method (topo.model.graphinfer); nothing for the families topo builds."""
    if fabric.family != "custom":
        return {}
    from topo.model.graphinfer import describe_fields
    return describe_fields(fabric, tiers)


def structure(fabric: Fabric) -> dict | None:
    """How the builder shaped the fabric: what the file stated and what it derived, with the rule
    for each derived value (issue 13's honesty rule). None for custom graphs."""
    m = fabric.meta
    if "derived" not in m:
        return None
    derived = [d for d in m["derived"] if not d["stated"]]
    per_plane = per_plane_counts(fabric)
    if fabric.planes > 1:
        # what each plane holds, counted from the built arrays
        shown = "; ".join(f"p{p['plane']}: " + ", ".join(f"{p[k]:,} {k.replace('_', ' ')}" for k in
                                                         ("leaves", "spines", "super_spines") if k in p)
                          + ", " + ", ".join(f"{v:,} {k}" for k, v in p["links"].items() if v)
                          for p in per_plane)
        derived.append({"what": "per plane", "value": shown, "rule": "counted from the built links",
                        "stated": False})
    return {"leaves_per_plane": m.get("leaves_per_plane"), "pods_per_plane": m.get("pods_per_plane"),
            "leaves_per_pod": m.get("leaves_per_pod"), "spines_per_pod": m.get("spines_per_pod"),
            "bundles": m.get("bundles"), "port_split": m.get("port_split"), "breakout": m.get("breakout"),
            "uplink_breakout": m.get("uplink_breakout"), "dual_homed_across": m.get("dual_homed_across"),
            "per_plane": per_plane,
            "stated": [d for d in m["derived"] if d["stated"]],
            "derived": derived}


def per_plane_counts(fabric: Fabric) -> list[dict]:
    """Switches per tier and physical links per link tier in every plane, counted from the arrays
    (a link's plane is its upper switch's plane; endpoint links are counted in their leaf's)."""
    names = ("leaves", "spines", "super_spines")[: fabric.n_tiers]
    P = max(int(fabric.planes), 1)
    sw = fabric.node_tier > 0
    key = fabric.node_plane[sw].astype(np.int64) * 4 + fabric.node_tier[sw].astype(np.int64)
    nsw = np.bincount(key, minlength=4 * P).reshape(P, 4)
    up = slice(0, None, 2)
    hi = fabric.link_dst[up]
    lkey = fabric.node_plane[hi].astype(np.int64) * 3 + fabric.link_tier[up].astype(np.int64)
    nl = np.bincount(lkey, minlength=3 * P).reshape(P, 3)
    out = []
    for p in range(P):
        row = {"plane": p}
        row.update({n: int(nsw[p, t + 1]) for t, n in enumerate(names)})
        row["links"] = {LINK_TIER_NAMES[t]: int(nl[p, t]) for t in range(3)}
        out.append(row)
    return out


def all_to_all_by_class(fabric: Fabric) -> dict | None:
    """Uniform all-to-all rate per endpoint (Gb/s, fluid ECMP), per node class: accelerators and
    hosts without accelerators. Each class is limited by its own NIC links and by the shared switch
    links, so slower CPU hosts do not cap the accelerators' figure. The same computation as
    ``topo analyze`` reports (:func:`topo.routing.engine._all_to_all_by_class`, no failures). None for
    custom graphs (their figure is inferred elsewhere) and for fabrics with fewer than two endpoints."""
    if fabric.family == "custom" or fabric.n_endpoints < 2:
        return None
    from topo.routing.engine import _all_to_all_by_class
    return _all_to_all_by_class(fabric, None)[0]


def capacity_cliff(fabric: Fabric, cluster: Cluster, bom: dict) -> dict | None:
    """A few ports that force a whole pod: when the last pod of a 3-tier fabric holds a small share
    of the endpoint ports but a larger share of the cost, the same fabric without those ports
    (without the hosts that have no accelerators, else without the racks of the last pod) is built
    and compared. None when there is no such pod."""
    m = fabric.meta
    if fabric.family == "custom" or fabric.n_tiers != 3 or fabric.pods < 2 or "leaves_per_pod" not in m:
        return None
    ep_up = (fabric.link_tier == 0) & ((np.arange(fabric.n_links) & 1) == 0)
    port_leaf = fabric.link_dst[ep_up]
    last = fabric.node_pod[port_leaf] == fabric.pods - 1
    n_ports = int(port_leaf.size)
    last_ports = int(last.sum())
    if last_ports == 0 or last_ports > 0.25 * n_ports:
        return None
    # a full last pod is no cliff: the ports fill what they force (leaves_per_pod counts one plane)
    if np.unique(port_leaf[last]).size >= int(m["leaves_per_pod"]) * max(int(fabric.planes), 1):
        return None
    alt = _without(fabric, cluster, last)
    if alt is None:
        return None
    what, f2, c2 = alt
    if f2.pods >= fabric.pods:
        return None
    b2 = bill_of_materials(f2, c2)
    sw1, sw2 = bom["totals"]["switches"], b2["totals"]["switches"]
    cost1, cost2 = bom["totals"]["network_cost_usd"], b2["totals"]["network_cost_usd"]
    kw1, kw2 = bom["totals"]["network_kw"], b2["totals"]["network_kw"]
    ports2 = int(((f2.link_tier == 0) & ((np.arange(f2.n_links) & 1) == 0)).sum())
    return {"what": what, "ports": n_ports - ports2, "ports_fraction": (n_ports - ports2) / n_ports,
            "pods": fabric.pods, "pods_without": f2.pods,
            "switches": sw1, "switches_without": sw2, "extra_switches": sw1 - sw2,
            "network_cost_usd": cost1, "network_cost_usd_without": cost2,
            "extra_cost_fraction": (cost1 - cost2) / cost2 if cost2 else None,
            "network_kw": kw1, "network_kw_without": kw2,
            "leaves_in_last_pod": int(np.unique(port_leaf[last]).size), "leaves_per_pod": int(m["leaves_per_pod"])}


def _without(fabric: Fabric, cluster: Cluster, last: np.ndarray):
    """(what, fabric, cluster) without the hosts that have no accelerators (when there are any),
    else without the racks whose ports reach the last pod; None when that leaves nothing."""
    from topo.core.errors import SpecError
    from topo.model.fabric import build
    from topo.model.spec import from_dict
    d = cluster.file.model_dump(mode="json")
    cpu = [t for t, nt in cluster.node_types.items() if nt.accelerators == 0]
    used_cpu = any(n for r in cluster.racks for t, n in r.nodes.items() if t in cpu)
    if used_cpu:
        n_cpu = int((~fabric.ep_is_accel).sum())
        racks = []
        for r in d["racks"]:
            r = dict(r)
            r["nodes"] = {t: n for t, n in r["nodes"].items() if t not in cpu}
            if r["nodes"]:
                racks.append(r)
        what = f"the {n_cpu:,} hosts without accelerators"
    else:
        ep_up = (fabric.link_tier == 0) & ((np.arange(fabric.n_links) & 1) == 0)
        first_rack = int(fabric.server_rack[fabric.ep_server[fabric.link_src[ep_up][last]]].min())
        keep, racks = first_rack, []
        for r in d["racks"]:
            if keep <= 0:
                break
            r = dict(r)
            r["count"] = min(r["count"], keep)
            keep -= r["count"]
            racks.append(r)
        what = f"the last {fabric.n_racks - first_rack:,} racks"
    if not racks:
        return None
    d["racks"] = racks
    d["jobs"], d["busy_nodes"], d["traffic"] = [], [], []
    try:
        c2 = from_dict(d, base_dir=cluster.base_dir)
        return what, build(c2), c2
    except SpecError:
        return None


def unverified_figures(cluster: Cluster, bom: dict) -> list[dict]:
    """The catalog figures this cluster uses that no primary source confirms (the catalog's
    ``unverified`` lists), for the presets it uses and does not override: platforms, accelerators,
    switches and the optic parts in its bill of materials. Sorted by kind and name."""
    from topo.model import catalog
    f = cluster.file
    out: list[tuple] = []

    def add(kind: str, name: str, entry: Optional[dict], given: set):
        fields = [x for x in (entry or {}).get("unverified", []) if x not in given]
        if fields:
            out.append((kind, name, sorted(fields), (entry or {}).get("source", "")))

    for nt in f.node_types:
        given = set(nt.model_dump(exclude_unset=True))
        if nt.platform:
            add("platform", nt.platform, catalog.PLATFORMS.get(nt.platform), given)
    for nt in cluster.node_types.values():
        if nt.accelerator and nt.accelerator not in f.catalog.accelerators:
            add("accelerator", nt.accelerator, catalog.ACCELERATORS.get(nt.accelerator), set())
    for t in cluster.tiers:
        if t.switch_name not in f.catalog.switches:
            add("switch", t.switch_name, catalog.SWITCHES.get(t.switch_name), set())
    for part in sorted({o["part"] for o in bom.get("optics", [])}):
        if part not in f.catalog.optics:
            add("optic", part, catalog.LPO if part == "lpo" else catalog.OPTICS.get(part), set())
    return [{"kind": k, "name": n, "fields": list(fl), "source": s} for k, n, fl, s in sorted(set(
        (k, n, tuple(fl), s) for k, n, fl, s in out))]
