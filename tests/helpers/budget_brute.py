"""The link budget's brute force, shared by the exhaustive, caps and requirements tests: a small
cluster dict (:func:`instance`), every design its file can state (:func:`designs`: each tier's
oversubscription at every ratio that splits the radix exactly, every bundle, every partly filled
pod's bundle), each built with topo.model.fabric.build, checked by topo.solve.budget_check and
priced by topo.routing.describe (:func:`brute`). Written from the README; it shares nothing with
the budget's model (topo.solve.linkbudget is used only for the instance's placement, demands and
energy price in :func:`setup`)."""
from __future__ import annotations

import copy
import math

from topo.solve import budget_check
from topo.solve import linkbudget as B
from topo.routing.describe import bill_of_materials, bisection_gbps
from topo.core.errors import SpecError
from topo.model.fabric import build
from topo.model.spec import from_dict

from conftest import cluster_dict, sw


def instance(tiers, racks, nodes, survive="none", planes=1, target=0.8, family="clos", accel=1):
    d = cluster_dict(n_racks=racks, nodes_per_rack=nodes, accel=accel, family=family,
                     tiers=[{"switch": copy.deepcopy(t)} for t in tiers], planes=planes)
    d["node_types"][0]["scaleup"] = {"size": accel}
    if planes > 1:
        d["node_types"][0]["nic_ports"] = planes
        d["node_types"][0]["nic_gbps"] = 400 * planes
    d["transport"] = {"protocol": "ideal"}
    d["goals"] = {"time_limit_s": 30, "target_utilization": target, "survive": survive, "workers": 1, "seed": 1}
    n = racks * nodes * accel
    d["jobs"] = [{"name": "j", "accelerators": n, "ep": n, "collectives": [
        {"op": "alltoall", "group": "ep", "bytes": "64MiB"}, {"op": "allreduce", "group": "dp", "bytes": "4GiB"}]}]
    return d


def splits(radix):
    """Every (down, up) split the builder makes from some oversubscription: the largest exact
    split of each reduced ratio p/q (topo.model.fabric._exact_split)."""
    out = set()
    for p in range(1, radix):
        for q in range(1, radix - p + 1):
            if math.gcd(p, q) == 1:
                m = radix // (p + q)
                out.add((m * p, m * q))
    return sorted(out)


def divisors(n):
    return [b for b in range(1, n + 1) if n % b == 0]


def designs(d):
    """Every cluster dict the file can express by its tiers' oversubscription and bundles."""
    tiers = d["fabric"]["tiers"]
    R = [t["switch"]["radix"] for t in tiers]
    three = len(tiers) == 3
    for d0, u0 in splits(R[0]):
        for b1 in divisors(u0):
            if not three:
                e = copy.deepcopy(d)
                e["fabric"]["tiers"][0].update(oversubscription=d0 / u0, bundle=b1)
                yield e
                continue
            for d1, u1 in splits(R[1]):
                for b2 in divisors(u1):
                    for bp in [None] + list(range(1, b2)):
                        e = copy.deepcopy(d)
                        e["fabric"]["tiers"][0].update(oversubscription=d0 / u0, bundle=b1)
                        e["fabric"]["tiers"][1].update(oversubscription=d1 / u1, bundle=b2)
                        if bp is not None:
                            e["fabric"]["tiers"][1]["partial_pod_bundle"] = bp
                        yield e


def brute(d, survive, objective, caps, demands, eff, e_per_w, space=None, requirements=None):
    """Every distinct design the file expresses (within the budget's stated space when ``space``,
    the radix per tier, is given), built, checked and priced."""
    rows, seen = [], set()
    for e in designs(d):
        if space is not None and not in_space(e["fabric"]["tiers"], space):
            continue
        try:
            c = from_dict(e)
            f = build(c)
        except SpecError:
            continue
        key = (tuple(f.tier_switch_counts), f.n_links, tuple(f.meta["bundles"]), f.meta.get("leaves_per_pod"),
               f.meta.get("partial_pod_bundle"), int(f.meta["leaf_up_ports"]), int(f.meta.get("spine_up_ports") or 0),
               int(f.meta["endpoint_ports_per_leaf"]))
        if key in seen:
            continue
        seen.add(key)
        chk = budget_check.check(c, demands, survive=survive, target_util=caps, efficiency=eff,
                                 requirements=requirements)
        bom = bill_of_materials(f, c)
        capex = float(bom["totals"]["network_cost_usd"])
        watts = float(bom["totals"]["network_kw"]) * 1e3
        val = capex + e_per_w * watts if objective == "cost" else watts
        bis = bisection_gbps(f)
        rows.append(dict(value=val, cost=capex + e_per_w * watts, watts=watts, ok=chk["ok"], fabric=f,
                         bisection_per_acc=bis * 2 / int(f.ep_is_accel.sum()),
                         tiers=e["fabric"]["tiers"], problems=chk["problems"]))
    return rows


def in_space(tiers, radix):
    """The budget's stated space (linkbudget.SPACE_RULES): every port used, down >= up (every
    leaf-spine and spine-super bundle is searched)."""
    for t, R in zip(tiers[:-1], radix):
        d, u = next((d, u) for d, u in splits(R) if abs(d / u - t["oversubscription"]) < 1e-12)
        if d + u != R or d < u:
            return False
    return True


def every_single_failure(fab, demands, eff, survive):
    """Worst routed switch-link utilisation over every single failure of the kind (not only the
    most loaded one the checker fails)."""
    import numpy as np
    if survive == "link":
        ids = np.flatnonzero((fab.link_tier >= 1) & ((np.arange(fab.n_links) & 1) == 0))
        cases = [dict(failed_links=[int(i)]) for i in ids]
    elif survive == "switch":
        cases = [dict(failed_nodes=[int(n)]) for n in np.flatnonzero(fab.node_tier >= 2)]
    else:
        return 0.0
    worst = 0.0
    for kw in cases:
        r = budget_check.routed_peaks(fab, demands, eff, **kw)
        assert r["unreachable_gbps"] <= 1e-9, kw
        worst = max([worst] + list(r["tier_max"].values()))
    return worst


def setup(radix, racks, nodes, planes=1):
    """An instance of switches of these radixes, and what the brute force compares the budget with:
    (cluster dict, cluster, fabric, in-order placement, its demands, wire efficiency, energy $/W)."""
    from topo.model.spec import wire_efficiency
    d = instance([sw(r) for r in radix], racks, nodes, planes=planes)
    c = from_dict(d)
    f = build(c)
    placement, _ = B._placement(c, f, None)
    demands = B._demands(c, f, placement)
    return d, c, f, placement, demands, wire_efficiency(c), B._energy_usd_per_w(c)
