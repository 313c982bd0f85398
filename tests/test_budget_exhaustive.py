"""The link budget is optimal over the space the cluster file can state (issue 14).

A brute force written from the README, sharing nothing with the budget's model: every design
the file can express for a small 2- or 3-tier cluster (each tier's oversubscription at every
ratio that splits the radix exactly, every leaf-spine and spine-super bundle, every partly
filled pod's bundle; the file's pod structure as stated) is built with topo.model.fabric.build,
checked by the independent checker (topo.solve.budget_check: routed fluid ECMP, healthy and under
the stated failure) and priced by topo.describe. The budget's objective must equal the
cheapest feasible design inside the space the budget states (``solver["space"]``).
The brute force is tests/helpers/budget_brute.py (shared with the caps and requirements tests).
"""
from __future__ import annotations

import copy

import pytest

from topo.solve import budget_check
from topo.solve import linkbudget as B
from topo.routing.describe import bill_of_materials
from topo.core.errors import SpecError
from topo.model.fabric import build
from topo.model.spec import from_dict

from conftest import sw
from helpers.budget_brute import brute, divisors, every_single_failure, in_space, instance, setup, splits

CASES = [
    # (id, switch radix per tier, racks, nodes per rack, planes, survive modes)
    ("2tier", (8, 8), 6, 4, 1, ("none", "link", "switch")),
    ("2tier-2planes", (8, 8), 4, 4, 2, ("plane",)),
    ("3tier", (6, 6, 6), 6, 4, 1, ("none", "link", "switch")),
    ("3tier-2planes", (6, 6, 6), 5, 4, 2, ("plane",)),
    ("2tier-r12", (12, 12), 10, 4, 1, ("none", "link", "switch")),
    ("3tier-r8", (8, 8, 8), 9, 4, 1, ("none", "link", "switch")),
    ("3tier-r8-2planes", (8, 8, 8), 6, 4, 2, ("plane",)),
]


def _optima_equal_brute_force(res: dict, feasible: list, survive: str) -> None:
    """The budget's cost and power optima equal the cheapest feasible design of the brute force."""
    for o, r in res.items():
        got = r.cost["chosen"]["total_usd"] if o == "cost" else r.cost["chosen"]["network_kw"] * 1e3
        best = min(x["cost"] if o == "cost" else x["watts"] for x in feasible)
        assert got == pytest.approx(best, rel=1e-9), (survive, o, got, best)


@pytest.mark.parametrize("radix,racks,nodes,planes,modes", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_budget_equals_the_cheapest_stated_design(radix, racks, nodes, planes, modes):
    d, c, f, placement, demands, eff, e_per_w = setup(radix, racks, nodes, planes)
    for survive in modes:
        res = {o: B.budget(c, f, placement=placement, demands=demands, survive=survive, objective=o,
                           workers=1, seed=1) for o in ("cost", "power")}
        r0 = res["cost"]
        assert r0.solver["status"] == "optimal" and r0.solver["space"] == list(B.SPACE_RULES)
        caps = {k: v["effective_target"] for k, v in r0.utilization.items()}
        rows = [x for x in brute(d, survive, "cost", caps, demands, eff, e_per_w, space=radix)]
        feasible = [x for x in rows if x["ok"]]
        assert feasible, survive
        _optima_equal_brute_force(res, feasible, survive)
        # the chosen design survives every single failure of the kind, routed (the checker fails
        # only the most loaded link or switch)
        ca = from_dict(r0.cluster_after)
        assert every_single_failure(build(ca), demands, eff, survive) <= 1.0 + 1e-6


FAMILY_CASES = [
    # (id, family, switch radix per tier, racks, nodes per rack, accelerators per node, planes, survive modes):
    # two-GPU nodes (a scale-up domain of 2, two rails) so the rails and the scale-up hop matter
    ("rail-optimized-2planes", "rail_optimized", (8, 8), 4, 2, 2, 2, ("none", "link", "switch", "plane")),
    ("rail-optimized-3tier-2planes", "rail_optimized", (6, 6, 6), 4, 2, 2, 2, ("none", "plane")),
    ("rail-only", "rail_only", (8, 8), 4, 2, 2, 1, ("none", "link", "switch")),
    ("rail-only-3tier", "rail_only", (6, 6, 6), 5, 2, 2, 1, ("none", "switch")),
]


@pytest.mark.parametrize("family,radix,racks,nodes,accel,planes,modes", [c[1:] for c in FAMILY_CASES],
                         ids=[c[0] for c in FAMILY_CASES])
def test_budget_of_rail_families_equals_the_cheapest_stated_design(family, radix, racks, nodes, accel, planes, modes):
    """Rail-optimized fabrics of several planes (rails kept in every plane) and rail-only fabrics
    (one plane per rail; traffic between rails crosses the source's scale-up domain first): the
    budget's cost and power optima equal the cheapest designs of the brute force the independent
    checker accepts, and the chosen design survives every single failure of the kind."""
    from topo.model.spec import wire_efficiency
    d = instance([sw(r) for r in radix], racks, nodes, planes=planes, family=family, accel=accel)
    c = from_dict(d)
    f = build(c)
    placement, _ = B._placement(c, f, None)
    demands = B._demands(c, f, placement)
    eff = wire_efficiency(c)
    e_per_w = B._energy_usd_per_w(c)
    n_solved = 0
    for survive in modes:
        try:
            res = {o: B.budget(c, f, placement=placement, demands=demands, survive=survive, objective=o,
                               workers=1, seed=1) for o in ("cost", "power")}
        except SpecError as e:
            # refused as infeasible: then no design the file expresses passes the checker at the
            # targets a non-blocking fabric reaches (the effective targets: 0.8 or the NIC-bound load)
            assert "goals.survive" in dict(e.errors) or "goals.target_utilization" in dict(e.errors), e.errors
            r_none = B.budget(c, f, placement=placement, demands=demands, survive="none", workers=1, seed=1)
            caps = {k: v["effective_target"] for k, v in r_none.utilization.items()}
            assert not [x for x in brute(d, survive, "cost", caps, demands, eff, e_per_w, space=radix) if x["ok"]]
            continue
        n_solved += 1
        r0 = res["cost"]
        assert r0.solver["status"] == "optimal" and r0.check["ok"]
        assert ("cross_rail" in r0.solver) == (family == "rail_only")
        if family == "rail_only":
            # every flow of the all-to-all between rails takes the scale-up hop: half the pairs
            assert 0 < r0.solver["cross_rail"]["share_of_offered"] < 1
        caps = {k: v["effective_target"] for k, v in r0.utilization.items()}
        feasible = [x for x in brute(d, survive, "cost", caps, demands, eff, e_per_w, space=radix) if x["ok"]]
        assert feasible, survive
        _optima_equal_brute_force(res, feasible, survive)
        ca = from_dict(r0.cluster_after)
        assert ca.file.fabric.family == family and ca.file.fabric.planes == planes
        assert every_single_failure(build(ca), demands, eff, survive) <= 1.0 + 1e-6
    assert n_solved


def test_issue_reproducer_gets_the_cheaper_spine_split():
    """Issue 14: 3-tier Clos of 10-port switches, 96 single-GPU nodes, survive switch. A spine
    with one uplink (9:1, bundle 1) is feasible under fluid ECMP (its leaves route around it when
    its super-spine fails) and cheaper than the budget's former choice; the budget finds a design
    at least as cheap as every such one."""
    from topo.model.spec import wire_efficiency
    d = instance([sw(10)] * 3, racks=12, nodes=8, survive="switch")
    c = from_dict(d)
    f = build(c)
    r = B.budget(c, f, workers=1, seed=1)
    assert r.check["ok"] and r.solver["status"] == "optimal"
    placement, _ = B._placement(c, f, None)
    demands = B._demands(c, f, placement)
    eff = wire_efficiency(c)
    caps = {k: v["effective_target"] for k, v in r.utilization.items()}
    got = r.cost["chosen"]["total_usd"]
    n_ok = 0
    for d0, u0 in splits(10):
        if d0 + u0 != 10 or d0 < u0:
            continue
        for b1 in divisors(u0):
            e = copy.deepcopy(d)
            e["fabric"]["tiers"][0].update(oversubscription=d0 / u0, bundle=b1)
            e["fabric"]["tiers"][1].update(oversubscription=9.0, bundle=1)
            try:
                ce = from_dict(e)
                fe = build(ce)
            except SpecError:
                continue
            chk = budget_check.check(ce, demands, survive="switch", target_util=caps, efficiency=eff)
            if chk["ok"]:
                n_ok += 1
                bom = bill_of_materials(fe, ce)
                total = bom["totals"]["network_cost_usd"] + bom["totals"]["network_kw"] * 1e3 * B._energy_usd_per_w(ce)
                assert got <= total * (1 + 1e-9)
    assert n_ok  # some 9:1 spine design survives a spine or super-spine failure


def test_three_tier_leaf_bundles_outside_the_stated_space():
    from topo.model.spec import wire_efficiency
    d = instance([sw(6)] * 3, racks=6, nodes=4)
    c = from_dict(d)
    f = build(c)
    placement, _ = B._placement(c, f, None)
    demands = B._demands(c, f, placement)
    r = B.budget(c, f, placement=placement, demands=demands, survive="none", workers=1, seed=1)
    caps = {k: v["effective_target"] for k, v in r.utilization.items()}
    rows = brute(d, "none", "cost", caps, demands, wire_efficiency(c), B._energy_usd_per_w(c))
    # every port used, down >= up, any leaf-spine bundle: bundle 2 (pods of fewer leaves) is 17%
    # cheaper here than one link per leaf-spine pair, which the budget searched alone before
    rows = [x for x in rows if in_space(x["tiers"], (6, 6, 6))]
    best = min(x["cost"] for x in rows if x["ok"])
    assert r.cost["chosen"]["total_usd"] == pytest.approx(best, rel=1e-9)


@pytest.mark.parametrize("radix,racks,nodes,planes,modes", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_budget_with_requirements_equals_the_cheapest_stated_design(radix, racks, nodes, planes, modes):
    """With a bisection floor that binds (above the cheapest feasible design's bisection), and
    again with a uniform all-to-all scenario besides the floor, the budget's objective equals the
    cheapest design of the brute force that the checker accepts (routed, healthy and under the
    failure, uniform loads aggregated) and whose bisection (topo.describe) reaches the floor."""
    d, c, f, placement, demands, eff, e_per_w = setup(radix, racks, nodes, planes)
    for survive in modes:
        r0 = B.budget(c, f, placement=placement, demands=demands, survive=survive, workers=1, seed=1)
        caps = {k: v["effective_target"] for k, v in r0.utilization.items()}
        rows = [x for x in brute(d, survive, "cost", caps, demands, eff, e_per_w, space=radix) if x["ok"]]
        cheapest = min(rows, key=lambda x: x["cost"])
        above = sorted({x["bisection_per_acc"] for x in rows if x["bisection_per_acc"] > cheapest["bisection_per_acc"] + 1e-9})
        if not above:
            continue  # the cheapest design already has the most bisection: no floor can bind
        floor = above[0]  # the next bisection up: the cheapest design misses it
        for scen in (None, ["uniform=150", "jobs"]):
            analytic = [{"kind": "uniform", "gbps": 150.0, "label": "u"}] if scen else []
            req = {"min_bisection_gbps_per_accelerator": floor, "scenarios": analytic}
            ok = [x for x in brute(d, survive, "cost", caps, demands, eff, e_per_w, space=radix, requirements=req)
                  if x["ok"]]
            assert all(x["bisection_per_acc"] >= floor * (1 - 1e-9) for x in ok)
            for o in ("cost", "power"):
                r = B.budget(c, f, placement=placement, demands=demands, survive=survive, objective=o,
                             workers=1, seed=1, min_bisection=floor, scenarios=scen)
                assert r.solver["status"] == "optimal" and r.check["ok"]
                got = r.cost["chosen"]["total_usd"] if o == "cost" else r.cost["chosen"]["network_kw"] * 1e3
                best = min(x["cost"] if o == "cost" else x["watts"] for x in ok)
                assert got == pytest.approx(best, rel=1e-9), (survive, o, scen, got, best)
                assert all(row["met"] for row in r.requirements["rows"])
            if scen is None:
                # the floor binds: the budget without it chose a design below it
                assert r0.requirements["bisection"]["chosen"]["per_accelerator_gbps"] < floor
