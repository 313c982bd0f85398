"""Independent check of a link budget: rebuild, route, fail, count.

Owns the acceptance test of a link budget. It shares no code with
:mod:`topo.solve.linkbudget`: it takes the cluster the budget wrote (``cluster_after``),
builds its fabric with :func:`topo.model.fabric.build`, routes the traffic through
:func:`topo.routing.engine.route` (fluid ECMP) and confirms, on the routed loads:

* every switch link (leaf-spine, spine-super) at or under the target utilisation;
* after the stated failure (the most loaded link of each switch tier in each
  direction; the most loaded spine and super-spine; the most loaded plane) no
  flow is cut off (except for plane failures, none can be) and every surviving
  switch link is at or under 100%;
* no switch uses more ports than its radix (endpoint ports counted per breakout, and switch links
  per port where a faster port breaks out into lanes of the slower);
* no hard rack power limit is exceeded, and no switch that sits in a network rack draws
  more than a network rack may (floor.network_rack_power_limit_kw);
* the switch counts and the cost and power the model claimed equal those of the
  rebuilt fabric's own bill of materials;
* the design requirements (``requirements``): the bisection per accelerator of the
  rebuilt fabric (:func:`topo.routing.describe.bisection_gbps`) at or above the floor; a uniform
  all-to-all scenario routed by :func:`topo.routing.engine.uniform_loads` (fluid ECMP, aggregated,
  at any scale) at or under the target, and under the stated failure at or under 100%; a
  permutation scenario's worst case from the rebuilt fabric's own structure (per leaf and
  per pod: min(n, N - n) ports' rate over the uplink capacity), healthy.

It never chooses anything and never prints.
"""
from __future__ import annotations

import time

import numpy as np

_LINK_TIERS = {1: "leaf-spine", 2: "spine-super"}


def routed_peaks(fabric, demands, efficiency: float, failed_links=None, failed_nodes=None) -> dict:
    """Route with the engine; the largest utilisation of each switch link tier and the unreachable load."""
    from topo.routing.engine import route
    r = route(fabric, demands, "fluid", efficiency=efficiency, failed_links=failed_links, failed_nodes=failed_nodes)
    return {"tier_max": _peaks(fabric, np.asarray(r.utilization)), "unreachable_gbps": float(r.unreachable_gbps), "load": np.asarray(r.link_gbps_load)}


def _ports_ok(fabric, cluster) -> list[str]:
    """Every switch within its radix: endpoint ports share a switch port per breakout."""
    problems = []
    nic = float(fabric.link_gbps[fabric.link_tier == 0].max(initial=0.0))
    g = fabric.link_gbps[0::2]
    for t in range(fabric.n_tiers):
        name = fabric.switch_models[t]
        spec = cluster.switches.get(name) or cluster.tiers[t].switch
        nodes = np.flatnonzero(fabric.node_tier == t + 1)
        # a port faster than the link it carries is broken out into lanes: port_gbps / link speed links
        lanes = np.maximum(np.floor(spec.port_gbps / g + 1e-9), 1.0)
        deg_up = np.bincount(fabric.link_src[0::2], weights=1.0 / lanes, minlength=fabric.n_nodes)
        deg_dn = np.bincount(fabric.link_dst[0::2], weights=1.0 / lanes, minlength=fabric.n_nodes)
        down = np.ceil(deg_dn[nodes] - 1e-9).astype(np.int64)
        if t == 0 and nic > 0:
            n_dn = np.bincount(fabric.link_dst[0::2], minlength=fabric.n_nodes)[nodes]
            brk = max(int(spec.port_gbps // nic), 1) if spec.port_gbps >= nic else 1
            down = -(-n_dn // brk)
        used = down + np.ceil(deg_up[nodes] - 1e-9).astype(np.int64)
        worst = int(used.max(initial=0))
        if worst > spec.radix:
            problems.append(f"a tier-{t + 1} switch uses {worst} ports; its radix is {spec.radix}")
    return problems


def check(cluster_after, demands, *, survive: str, target_util, claims: dict | None = None,
          efficiency: float = 1.0, requirements: dict | None = None) -> dict:
    """Check a budget written as a cluster. Returns ``ok``, ``problems`` and what was measured.

    ``target_util``: one number for every switch link tier, or a dict per tier name
    ("leaf-spine", "spine-super"). After a plane failure endpoints inject at most
    (P-1)/P of their line rate (their ports on the lost plane are gone), so the
    traffic is scaled by that before it is routed.
    ``requirements``: {"min_bisection_gbps_per_accelerator": floor or None, "scenarios":
    [{"kind": "uniform" | "permutation", "gbps": rate per endpoint, "label": ...}]}; what was
    measured for each is returned under ``requirements``.
    """
    from topo.routing.describe import bill_of_materials, rack_power
    from topo.model.fabric import build
    t0 = time.perf_counter()
    problems: list[str] = []
    fab = build(cluster_after)
    base = routed_peaks(fab, demands, efficiency)
    util_after = base["tier_max"]
    for k, u in util_after.items():
        tgt = target_util.get(k, 1.0) if isinstance(target_util, dict) else target_util
        if u > tgt * (1 + 1e-6) + 1e-9:
            problems.append(f"{k} links at {u:.4f} utilisation, above the target {tgt:g}")
    if base["unreachable_gbps"] > 1e-9:
        problems.append(f"{base['unreachable_gbps']:.3g} Gb/s of traffic has no path in the rebuilt fabric")
    problems += _ports_ok(fab, cluster_after)
    rp = rack_power(fab, cluster_after)
    hard_over = np.flatnonzero(rp["over"] & np.asarray(fab.rack_hard, bool))
    if hard_over.size:
        i = int(hard_over[0])
        problems.append(f"{hard_over.size} rack(s) over a hard power limit, e.g. {fab.rack_name(i)} at "
                        f"{rp['kw'][i]:.1f} kW > {rp['limit_kw'][i]:.1f} kW")
    bom = bill_of_materials(fab, cluster_after)
    problems += _network_racks_ok(bom, cluster_after)
    counts = [s["count"] for s in bom["switches"]]
    if claims is not None:
        if list(claims.get("switch_counts", counts)) != counts:
            problems.append(f"claimed switch counts {claims['switch_counts']} differ from the rebuilt fabric's {counts}")
        capex = bom["totals"]["network_cost_usd"]
        watts = bom["totals"]["network_kw"] * 1e3
        n_links = fab.n_links // 2
        if "capex_usd" in claims and abs(claims["capex_usd"] - capex) > 1e-6 * capex + 1.0 + 1e-3 * n_links:
            problems.append(f"claimed capex ${claims['capex_usd']:,.0f} differs from the bill of materials' ${capex:,.0f}")
        if "watts" in claims and abs(claims["watts"] - watts) > 1e-6 * watts + 1e-3 * n_links:
            problems.append(f"claimed power {claims['watts']:.0f} W differs from the bill of materials' {watts:.0f} W")

    # failures
    scenarios = []
    load = base["load"]
    if survive == "link":
        for t in _LINK_TIERS:
            for direction in (0, 1):
                ids = np.flatnonzero((fab.link_tier == t) & ((np.arange(fab.n_links) & 1) == direction))
                if ids.size:
                    worst = int(ids[np.argmax(load[ids])])
                    scenarios.append((f"link {fab.link_label(worst)}", dict(failed_links=[worst & ~1])))
    elif survive == "switch":
        through = np.bincount(fab.link_dst, weights=load, minlength=fab.n_nodes)
        for tier in (2, 3):
            nodes = np.flatnonzero(fab.node_tier == tier)
            if nodes.size:
                worst = int(nodes[np.argmax(through[nodes])])
                scenarios.append((f"switch {fab.node_name(worst)}", dict(failed_nodes=[worst])))
    elif survive == "plane":
        sw_load = np.bincount(fab.link_plane[fab.link_tier > 0].astype(np.int64), weights=load[fab.link_tier > 0],
                              minlength=fab.planes)
        p = int(np.argmax(sw_load))
        nodes = np.flatnonzero((fab.node_tier > 0) & (fab.node_plane == p))
        scenarios.append((f"plane {p}", dict(failed_nodes=nodes.tolist())))
    util_fail: dict = {}
    for label, kw in scenarios:
        dem = demands
        if label.startswith("plane"):
            import dataclasses
            dem = dataclasses.replace(demands, rate_gbps=np.asarray(demands.rate_gbps) * (fab.planes - 1) / fab.planes)
        r = routed_peaks(fab, dem, efficiency, **kw)
        if r["unreachable_gbps"] > 1e-9:
            problems.append(f"after losing {label}, {r['unreachable_gbps']:.3g} Gb/s of traffic has no path")
        for k, u in r["tier_max"].items():
            util_fail[k] = max(util_fail.get(k, 0.0), u)
            if u > 1.0 + 1e-6:
                problems.append(f"after losing {label}, {k} links at {u:.4f} utilisation (over 100%)")
    req_out = _requirements(fab, requirements, target_util, survive, problems) if requirements else {}
    return {"ok": not problems, "problems": problems, "util_after": util_after, "requirements": req_out,
            "util_failure": util_fail if scenarios else {}, "scenarios": [s[0] for s in scenarios],
            "switch_counts": counts, "capex_usd": bom["totals"]["network_cost_usd"],
            "network_kw": bom["totals"]["network_kw"], "routing_model": "fluid",
            "seconds": time.perf_counter() - t0}


def _tgt(target_util, k):
    return target_util.get(k, 1.0) if isinstance(target_util, dict) else target_util


def _peaks(fab, util) -> dict:
    out = {}
    for t, name in _LINK_TIERS.items():
        m = fab.link_tier == t
        if m.any():
            u = util[m]
            u = u[np.isfinite(u)]
            out[name] = float(u.max(initial=0.0))
    return out


def _failure_cases(fab, load, survive) -> list:
    """The failures the check applies to one traffic: the most loaded link of each switch tier
    and direction, the most loaded spine and super-spine, or the most loaded plane."""
    cases = []
    if survive == "link":
        for t in _LINK_TIERS:
            for direction in (0, 1):
                ids = np.flatnonzero((fab.link_tier == t) & ((np.arange(fab.n_links) & 1) == direction))
                if ids.size:
                    worst = int(ids[np.argmax(load[ids])])
                    cases.append((f"link {fab.link_label(worst)}", dict(failed_links=[worst & ~1]), 1.0))
    elif survive == "switch":
        through = np.bincount(fab.link_dst, weights=load, minlength=fab.n_nodes)
        for tier in (2, 3):
            nodes = np.flatnonzero(fab.node_tier == tier)
            if nodes.size:
                worst = int(nodes[np.argmax(through[nodes])])
                cases.append((f"switch {fab.node_name(worst)}", dict(failed_nodes=[worst]), 1.0))
    elif survive == "plane" and fab.planes > 1:
        sw = fab.link_tier > 0
        sw_load = np.bincount(fab.link_plane[sw].astype(np.int64), weights=load[sw], minlength=fab.planes)
        p = int(np.argmax(sw_load))
        nodes = np.flatnonzero((fab.node_tier > 0) & (fab.node_plane == p))
        cases.append((f"plane {p}", dict(failed_nodes=nodes.tolist()), (fab.planes - 1) / fab.planes))
    return cases


def _permutation_peaks(fab, gbps: float) -> dict:
    """Worst-case permutation utilisation per switch link tier, from the fabric's structure.

    Each endpoint sends ``gbps`` to one other, split evenly over its planes (one port on each).
    Out of a group of n ports of a plane (a leaf, or a pod of leaves) at most min(n, N - n) can
    send (only N - n destinations lie outside), and fluid ECMP spreads what leaves a group evenly
    over its uplinks (the same holds entering it), so min(n, N - n) x gbps / P over the group's
    uplink capacity is the largest utilisation any permutation puts on them."""
    up = (np.arange(fab.n_links) & 1) == 0
    e = up & (fab.link_tier == 0)
    leaf_of_port = fab.link_dst[e].astype(np.int64)
    plane = fab.node_plane.astype(np.int64)
    n_leaf = np.bincount(leaf_of_port, minlength=fab.n_nodes).astype(np.float64)
    N = np.bincount(plane[leaf_of_port], minlength=fab.planes).astype(np.float64)
    rho = gbps / fab.planes
    out = {}
    m1 = up & (fab.link_tier == 1)
    cap1 = np.bincount(fab.link_src[m1], weights=fab.link_gbps[m1], minlength=fab.n_nodes)
    leaves = np.flatnonzero((fab.node_tier == 1) & (n_leaf > 0))
    if leaves.size and m1.any():
        load = rho * np.minimum(n_leaf[leaves], N[plane[leaves]] - n_leaf[leaves])
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(cap1[leaves] > 0, load / np.where(cap1[leaves] > 0, cap1[leaves], 1.0),
                         np.where(load > 0, np.inf, 0.0))
        out["leaf-spine"] = float(u.max(initial=0.0))
    m2 = up & (fab.link_tier == 2)
    if fab.n_tiers == 3 and m2.any():
        pod = fab.node_pod.astype(np.int64)
        key = plane * (int(pod.max()) + 1) + pod
        nk = int(key.max()) + 1
        n_pod = np.bincount(key[leaves], weights=n_leaf[leaves], minlength=nk)
        cap2 = np.bincount(key[fab.link_src[m2]], weights=fab.link_gbps[m2], minlength=nk)
        has = n_pod > 0
        kp = np.flatnonzero(has)
        kplane = kp // (int(pod.max()) + 1)
        load = rho * np.minimum(n_pod[kp], N[kplane] - n_pod[kp])
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(cap2[kp] > 0, load / np.where(cap2[kp] > 0, cap2[kp], 1.0), np.where(load > 0, np.inf, 0.0))
        out["spine-super"] = float(u.max(initial=0.0))
    return out


def _requirements(fab, req, target_util, survive, problems) -> dict:
    """Measure the design requirements on the rebuilt fabric; append what fails to ``problems``."""
    from topo.routing.describe import bisection_gbps
    from topo.routing.engine import uniform_loads
    out: dict = {}
    n_acc = max(int(np.asarray(fab.ep_is_accel).sum()), 1)
    bis = bisection_gbps(fab)
    per_acc = bis * 2 / n_acc if bis is not None else None
    out["bisection_gbps"] = bis
    out["bisection_per_accelerator_gbps"] = per_acc
    floor = req.get("min_bisection_gbps_per_accelerator")
    if floor is not None:
        if per_acc is None or per_acc < floor * (1 - 1e-9):
            problems.append(f"bisection {per_acc if per_acc is not None else 0:.4g} Gb/s per accelerator, "
                            f"below the floor {floor:g}")
    scen = []
    N = fab.n_endpoints
    for sc in req.get("scenarios") or []:
        row = {"label": sc["label"], "kind": sc["kind"]}
        if sc["kind"] == "uniform":
            per_pair = sc["gbps"] / max(N - 1, 1)
            r = uniform_loads(fab, "fluid", per_pair)
            row["util"] = _peaks(fab, np.asarray(r.utilization))
            row["method"] = "routed (fluid ECMP, aggregated uniform loads)"
            if r.unreachable_gbps > 1e-9:
                problems.append(f"{sc['label']}: {r.unreachable_gbps:.3g} Gb/s has no path")
            fail = {}
            for label, kw, scale in _failure_cases(fab, np.asarray(r.link_gbps_load), survive):
                rf = uniform_loads(fab, "fluid", per_pair * scale, **kw)
                if rf.unreachable_gbps > 1e-9:
                    problems.append(f"{sc['label']}: after losing {label}, {rf.unreachable_gbps:.3g} Gb/s has no path")
                for k, u in _peaks(fab, np.asarray(rf.utilization)).items():
                    fail[k] = max(fail.get(k, 0.0), u)
                    if u > 1.0 + 1e-6:
                        problems.append(f"{sc['label']}: after losing {label}, {k} links at {u:.4f} utilisation (over 100%)")
            row["util_failure"] = fail
        else:
            row["util"] = _permutation_peaks(fab, sc["gbps"])
            row["method"] = "worst-case bound from the rebuilt fabric's structure (healthy)"
        for k, u in row["util"].items():
            if u > _tgt(target_util, k) * (1 + 1e-6) + 1e-9:
                problems.append(f"{sc['label']}: {k} links at {u:.4f} utilisation, above the target {_tgt(target_util, k):g}")
        scen.append(row)
    out["scenarios"] = scen
    return out


def _network_racks_ok(bom, cluster) -> list[str]:
    """Every switch housed in a network rack (all but top-of-rack leaves) within the rack limit."""
    limit_kw = cluster.file.floor.network_rack_power_limit_kw
    tor = cluster.file.floor.leaf_placement == "tor"
    out = []
    for row in bom["switches"]:
        if tor and row["tier"] == "leaf" or not row["count"]:
            continue
        kw_each = row["watts_each"] / 1e3
        if kw_each > limit_kw * (1 + 1e-9):
            out.append(f"{row['tier']} switch {row['model']} draws {kw_each:g} kW, more than a network rack's "
                       f"{limit_kw:g} kW")
    return out
