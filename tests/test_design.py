"""The design search (topo.solve.design): the front against brute force over every candidate.

The brute force shares nothing with the search but the candidate's cluster file: every candidate
is sized here by topo.solve.linkbudget.budget (or, with one tier, built and checked by
topo.solve.budget_check), its jobs routed with topo.routing.engine.analyze, and the front
computed by the definition of dominance written below.
"""
from __future__ import annotations

import concurrent.futures as cf
import copy
import json

import pytest
from click.testing import CliRunner

from topo.cli.app import main
from topo.core.errors import SolverError, SpecError, TimeLimitError
from topo.model.fabric import build
from topo.model.spec import from_dict, wire_efficiency
from topo.routing.describe import bill_of_materials
from topo.solve import budget_check
from topo.solve import design as D
from topo.solve import linkbudget as B
from topo.traffic.demand import fit_in_order

from conftest import cluster_dict, no_crash

KEYS = ("total_usd", "network_kw", "job_time_s", "p95_penalty", "headroom")


def _cluster(racks=4, nodes=2, accel=4):
    d = cluster_dict(n_racks=racks, nodes_per_rack=nodes, accel=accel,
                     tiers=[{"switch": "th4-64x400"}, {"switch": "th4-64x400"}])
    d["transport"] = {"protocol": "ideal"}
    d["goals"] = {"time_limit_s": 20, "survive": "none", "seed": 3, "workers": 1}
    n = racks * nodes * accel
    d["jobs"] = [{"name": "moe", "accelerators": n // 2, "ep": n // 2, "collectives": [
                    {"op": "alltoall", "group": "ep", "bytes": "64MiB"}]},
                 {"name": "dense", "accelerators": n // 2, "tp": accel, "collectives": [
                    {"op": "allreduce", "group": "dp", "bytes": "1GiB"}]}]
    return d


def _brute_row(c, cand, placement):
    """One candidate sized without topo.solve.design: (objectives) or None when no design exists."""
    d = D.candidate_dict(c.file.model_dump(mode="json"), cand)
    try:
        cc = from_dict(d)
        f = build(cc)
        if cand["tiers"] == 1:
            dem = B._demands(cc, f, placement)
            chk = budget_check.check(cc, dem, survive="none", target_util=0.8, efficiency=wire_efficiency(cc))
            if not chk["ok"]:
                return None
            bom = bill_of_materials(f, cc)["totals"]
            kw = bom["network_kw"]
            total = bom["network_cost_usd"] + kw * 1e3 * B._energy_usd_per_w(cc)
            ca, fa, head = cc, f, 1.0
        else:
            r = B.budget(cc, f, placement=placement, survive="none", seed=3, workers=1)
            assert r.check["ok"]
            total, kw = r.cost["chosen"]["total_usd"], r.cost["chosen"]["network_kw"]
            ca = from_dict(r.cluster_after)
            fa = build(ca)
            head = 1.0 - max(u["routed_after"] for u in r.utilization.values())
    except SpecError:
        return None
    a = B._job_times(ca, fa, placement, 3, None)["jobs"]
    pen = sorted(t / i for t, i in a.values())
    return {"id": cand["id"], "total_usd": total, "network_kw": kw, "job_time_s": sum(t for t, _ in a.values()),
            "p95_penalty": pen[-1], "headroom": head}


def _dominates(a, b):
    sign = {"headroom": -1}
    ge = all(sign.get(k, 1) * a[k] <= sign.get(k, 1) * b[k] + 1e-9 * max(abs(a[k]), abs(b[k]), 1) for k in KEYS)
    gt = any(sign.get(k, 1) * a[k] < sign.get(k, 1) * b[k] - 1e-9 * max(abs(a[k]), abs(b[k]), 1) for k in KEYS)
    return ge and gt


@pytest.fixture(scope="module")
def searched():
    """160 GPUs under RoCE with one queue pair: no single switch holds a plane's ports, the
    oversubscribed Clos hashes into collisions, a rail-only fabric of one switch per rail is
    fastest: a front of two with every family sized."""
    d = _cluster(racks=5, nodes=4, accel=8)
    d["transport"] = {"protocol": "roce", "qps_per_connection": 1}
    c = from_dict(d)
    r = D.design(c, switches="th4-64x400,th5-128x400", tiers=(1, 2))
    return c, r


def test_front_equals_brute_force_over_every_candidate(searched):
    c, r = searched
    placement, _ = fit_in_order(c, build(c))
    cands = D.candidates(c, None, "th4-64x400,th5-128x400", (1, 2))
    assert [x["id"] for x in r.candidates] == [x["id"] for x in cands]
    rows = {}
    for cand in cands:
        b = _brute_row(c, cand, placement)
        got = next(x for x in r.candidates if x["id"] == cand["id"])
        if b is None:
            assert got["status"] in ("infeasible", "pruned_by_port_count", "pruned_by_bound"), got
            continue
        rows[cand["id"]] = b
        if got["status"] == "pruned_by_bound":
            continue
        assert got["status"] == "sized", got
        for k in KEYS:
            assert got[k] == pytest.approx(b[k], rel=1e-6, abs=1e-9), (cand["id"], k)
    front = [i for i, a in rows.items() if not any(_dominates(b, a) for j, b in rows.items() if j != i)]
    assert list(r.front) == front and len(front) >= 2
    assert r.counts["pruned_by_port_count"] and r.counts["dominated"]
    for x in r.candidates:   # a candidate pruned by bound is dominated in the brute force by the one named
        if x["status"] == "pruned_by_bound":
            assert _dominates(rows[x["by"]], rows[x["id"]]), x
    # the search saw every family: rail-only's jobs cross rails through the scale-up domain
    assert {x["family"] for x in r.candidates if x["status"] == "sized"} == set(D.FAMILIES)


def test_no_dominated_candidate_on_the_front_and_each_loser_named(searched):
    c, r = searched
    sized = {x["id"]: x for x in r.candidates if x["status"] == "sized"}
    for i in r.front:
        assert not any(_dominates(b, sized[i]) for j, b in sized.items() if j != i)
    lost = {x["id"]: x for x in r.dominated}
    assert set(lost) | set(r.front) == set(sized) and not set(lost) & set(r.front)
    for i, x in lost.items():
        assert x["by"] in r.front and _dominates(sized[x["by"]], sized[i]) and x["worse_on"]
    assert r.chosen in r.front
    assert r.chosen == min((sized[i] for i in r.front), key=lambda x: x["total_usd"])["id"]


def test_every_returned_design_is_rebuilt_and_checked(searched):
    c, r = searched
    placement, _ = fit_in_order(c, build(c))
    for x in r.candidates:
        if x["status"] != "sized":
            continue
        ca = from_dict(x["cluster_after"])
        f = build(ca)
        assert [int(n) for n in f.tier_switch_counts] == x["switches_per_tier"]
        chk = budget_check.check(ca, B._demands(ca, f, placement), survive="none", target_util=1.0,
                                 efficiency=wire_efficiency(ca))
        assert chk["ok"], (x["id"], chk["problems"])


def test_pruned_candidates_have_no_design():
    """A candidate set aside by its port count: neither the builder nor the budget finds a design."""
    c = from_dict(_cluster(racks=8, nodes=4, accel=4))
    r = D.design(c, switches="th4-64x400", tiers=(1,), families="clos")
    assert r.counts["pruned_by_port_count"] == 1 and r.counts["sized"] == 0 and not r.front
    cand = r.candidates[0]
    with pytest.raises(SpecError):
        build(from_dict(D.candidate_dict(c.file.model_dump(mode="json"), cand)))


def test_same_result_on_a_process_pool():
    c = from_dict(_cluster(racks=2, nodes=2))
    kw = dict(switches="th4-64x400", tiers=(1, 2), families="clos,rail_only")
    a = D.design(c, **kw).to_dict()
    with cf.ProcessPoolExecutor(max_workers=2) as ex:
        b = D.design(c, executor=ex, **kw).to_dict()
    for d in (a, b):
        d.pop("seconds")
        for x in d["candidates"]:
            x.pop("seconds", None)
    assert a == b


def test_max_slowdown_sets_the_slow_aside():
    c = from_dict(_cluster())
    r = D.design(c, switches="th4-64x400,th5-128x400", tiers=(1, 2), max_slowdown=1.0)
    fastest = min(x["job_time_s"] for x in r.candidates if x["status"] in ("sized", "too_slow"))
    for x in r.candidates:
        if x["status"] == "too_slow":
            assert x["job_time_s"] > fastest and not x["on_front"]
        elif x["status"] == "sized":
            assert x["job_time_s"] == pytest.approx(fastest, rel=1e-9)


@pytest.mark.parametrize("kw,path", [
    (dict(families="clos,torus"), "families"), (dict(switches="nope"), "switches"),
    (dict(tiers=(4,)), "tiers"), (dict(objective="speed"), "objective"), (dict(max_slowdown=0.5), "max_slowdown"),
    (dict(tapers=(0.5,)), "tapers"), (dict(tapers="1,x"), "tapers"), (dict(tapers=()), "tapers"),
])
def test_bad_parameters_are_named(kw, path):
    with pytest.raises(SpecError) as e:
        D.design(from_dict(_cluster()), **kw)
    assert path in dict(e.value.errors)


def test_cli(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_cluster(racks=2, nodes=2)))
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["design", str(p), "--switches", "th4-64x400", "--tiers", "1,2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    d = json.loads((out / "design.json").read_text())
    assert d["chosen"] in d["front"] and "pruned by bound" in res.output and "pruned by port count" in res.output
    for args, flag in ((["--families", "x"], "--families"), (["--tiers", "2,x"], "--tiers"),
                       (["--switches", "nope"], "--switches")):
        res = CliRunner().invoke(main, ["design", str(p), *args])
        assert res.exit_code == 2 and flag in res.output and no_crash(res), res.output


def test_time_limit_is_its_own_status_and_a_rejected_answer_raises(monkeypatch):
    c = from_dict(_cluster(racks=2, nodes=2))
    kw = dict(switches="th4-64x400", tiers=(2,), families="clos")

    def slow(*a, **k):
        raise TimeLimitError("the link-budget solver found no budget within 1 s (statuses: ['UNKNOWN'])")
    monkeypatch.setattr(B, "budget", slow)
    r = D.design(c, **kw)
    assert [x["status"] for x in r.candidates] == ["time_limit"] and r.counts["time_limit"] == 1 and not r.front

    def wrong(*a, **k):
        raise SolverError("the independent check rejected the budget")
    monkeypatch.setattr(B, "budget", wrong)
    with pytest.raises(SolverError):
        D.design(c, **kw)


def _bounds_hold(r):
    """Every sized candidate's bounds: at or below its sized value (headroom: at or above)."""
    n = 0
    for x in r.candidates:
        if x["status"] not in ("sized", "too_slow"):
            continue
        b = x["bound"]
        for k in ("total_usd", "capex_usd", "network_kw", "job_time_s", "p95_penalty"):
            assert b[k] <= x[k] * (1 + 1e-9) + 1e-12, (x["id"], k, b[k], x[k])
        assert b["headroom"] >= x["headroom"] - 1e-12, x["id"]
        assert b["total_usd"] > 0 and b["network_kw"] > 0
        n += 1
    return n


@pytest.fixture(scope="module")
def small_both():
    """16 GPUs under the ideal transport: one 64-port switch holds every port and runs every job
    at its ideal time, so its bounds prune the rest; searched with and without pruning."""
    c = from_dict(_cluster(racks=2, nodes=2, accel=4))
    kw = dict(switches="th4-64x400,th5-128x400", tiers=(1, 2))
    return c, D.design(c, **kw), D.design(c, prune=False, **kw)


def test_bounds_never_above_the_sized_values(searched, small_both):
    c, _, full = small_both
    assert _bounds_hold(full) >= 8
    # the 160-GPU RoCE instance: every sized candidate there too (2-tier Clos, rail-optimized, rail-only)
    assert _bounds_hold(searched[1]) >= 4


def test_pruning_by_bound_keeps_the_front(small_both):
    c, pruned, full = small_both
    assert pruned.counts["pruned_by_bound"] >= 1 and full.counts["pruned_by_bound"] == 0
    assert pruned.front == full.front and pruned.chosen == full.chosen
    rows = {x["id"]: x for x in full.candidates}
    order = [x for x in pruned.candidates if x["status"] != "pruned_by_port_count"]
    for x in pruned.candidates:
        if x["status"] != "pruned_by_bound":
            assert x["status"] == rows[x["id"]]["status"]
            continue
        by = rows[x["by"]]
        # the one named was sized, dominates this candidate's bounds and its sized value alike
        assert by["status"] == "sized" and D.dominates(by, x["bound"])
        assert rows[x["id"]]["status"] == "infeasible" or D.dominates(by, rows[x["id"]])
        assert "by bound: " + x["by"] in x["reason"]
        assert (by["bound"]["total_usd"], by["id"]) <= (x["bound"]["total_usd"], x["id"])   # sized before it
    assert len(order) == len(full.candidates) - full.counts["pruned_by_port_count"]


def test_pruning_does_not_depend_on_scheduling(small_both):
    c, pruned, _ = small_both
    with cf.ThreadPoolExecutor(max_workers=3) as ex:
        b = D.design(c, switches="th4-64x400,th5-128x400", tiers=(1, 2), executor=ex, lookahead=5)
    strip = [{k: v for k, v in x.items() if k != "seconds"} for x in pruned.to_dict()["candidates"]]
    assert strip == [{k: v for k, v in x.items() if k != "seconds"} for x in b.to_dict()["candidates"]]


def test_optimize_design_end_to_end(tmp_path):
    """topo optimize --design: the search first, the chosen candidate's fabric through the pipeline,
    the search in the plan (validated by load_plan), the choice on the terminal."""
    from topo.io.plan import load_plan
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_cluster(racks=2, nodes=2)))
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["optimize", str(p), "--design", "--switches", "th4-64x400,th5-128x400",
                                    "--tiers", "2", "--no-failures", "-o", str(out)])
    assert res.exit_code == 0, res.output
    plan = load_plan(out / "plan.json")
    ds = plan["design"]
    chosen = next(x for x in ds["candidates"] if x["id"] == ds["chosen"])
    assert ds["chosen"] in ds["front"] and chosen["status"] == "sized"
    assert all("cluster_after" not in x for x in ds["candidates"])
    assert {"objective", "survive", "max_slowdown", "candidates", "front", "dominated", "chosen", "counts",
            "seconds"} <= set(ds)
    # the plan carries the chosen candidate's fabric, and the file's own in the design section
    fab = plan["cluster_file"]["fabric"]
    assert (fab["family"], len(fab["tiers"]), fab["planes"], fab["tiers"][0]["switch"]) == (
        chosen["family"], chosen["tiers"], chosen["planes"], chosen["switch"])
    assert ds["fabric_given"]["tiers"][0]["switch"] == "th4-64x400"
    c = ds["counts"]
    assert f"design: chosen {ds['chosen']}" in res.output and f"{c['sized']} sized" in res.output
    assert c["sized"] + c["pruned_by_bound"] + c["pruned_by_port_count"] + c["infeasible"] == c["candidates"]


def test_optimize_design_refusals(tmp_path):
    d = _cluster(racks=2, nodes=2)
    d["fabric"] = {"tiers": [{"switch": "th4-64x400", "bundle": 2}, {"switch": "th4-64x400"}]}
    p, q = tmp_path / "c.json", tmp_path / "q.json"
    p.write_text(json.dumps(d))
    q.write_text(json.dumps(_cluster(racks=2, nodes=2)))
    for f, args, what in ((p, ["--design"], "fabric.tiers[0].bundle"), (q, ["--families", "clos"], "--families"),
                          (q, ["--design", "--tiers", "1,2"], "--tiers"),
                          (q, ["--design", "--switches", "nope"], "--switches")):
        res = CliRunner().invoke(main, ["optimize", str(f), *args, "-o", str(tmp_path / "o")])
        assert res.exit_code == 2 and what in res.output and no_crash(res), (args, res.output)
    from topo.pipeline import optimize
    with pytest.raises(SpecError) as e:
        optimize(from_dict(_cluster(racks=2, nodes=2)), design={"colour": "blue"})
    assert "design.colour" in dict(e.value.errors)


def test_rail_only_example_is_cheaper_than_rail_optimized():
    """examples/rail-only-vs-optimized.yaml (after arXiv:2307.12169): the search runs on it and the
    cheapest rail-only design costs less and draws less network power than the cheapest
    rail-optimized one, at no higher summed job time."""
    from pathlib import Path

    from topo.model.spec import load
    c = load(Path(__file__).resolve().parent.parent / "examples" / "rail-only-vs-optimized.yaml")
    r = D.design(c, families="rail_optimized,rail_only", tiers=(1, 2))
    sized = [x for x in r.candidates if x["status"] == "sized"]
    best = {f: min((x for x in sized if x["family"] == f), key=lambda x: x["total_usd"])
            for f in ("rail_optimized", "rail_only")}
    ro, opt = best["rail_only"], best["rail_optimized"]
    assert ro["capex_usd"] < opt["capex_usd"] and ro["network_kw"] < opt["network_kw"]
    assert ro["job_time_s"] <= opt["job_time_s"] * (1 + 1e-9)
    assert r.chosen == ro["id"] and set(ro["job_times_s"]) == {"dense-512", "moe-512"}


# --- switch model per tier and taper caps as decisions ----------------------------------------------
MODELS2 = "th4-64x400,th5-128x400"


@pytest.fixture(scope="module")
def mixed():
    """The 160-GPU RoCE instance, two tiers, each tier's model on its own and leaf caps 1 and 3,
    searched with and without pruning."""
    d = _cluster(racks=5, nodes=4, accel=8)
    d["transport"] = {"protocol": "roce", "qps_per_connection": 1}
    c = from_dict(d)
    kw = dict(switches=MODELS2, tiers=(2,), mixed_tiers=True, tapers=(1, 3))
    return c, D.design(c, **kw), D.design(c, prune=False, **kw)


def test_mixed_models_and_tapers_front_equals_brute_force(mixed):
    c, r, full = mixed
    cands = D.candidates(c, None, MODELS2, (2,), mixed_tiers=True, tapers=(1, 3))
    assert [x["id"] for x in r.candidates] == [x["id"] for x in cands]
    per_family = {(x["switch"], x["max_oversubscription"]["leaf"]) for x in cands if x["family"] == "clos"
                  and x["planes"] == 1}
    assert len(per_family) == 4 * 2   # 2 models ^ 2 tiers, 2 caps
    assert {tuple(x["switches"]) for x in cands} == {("th4-64x400", "th4-64x400"), ("th4-64x400", "th5-128x400"),
                                                     ("th5-128x400", "th4-64x400"), ("th5-128x400", "th5-128x400")}
    placement, _ = fit_in_order(c, build(c))
    rows = {}
    for cand in cands:
        b = _brute_row(c, cand, placement)
        got = next(x for x in full.candidates if x["id"] == cand["id"])
        if b is None:
            assert got["status"] in ("infeasible", "pruned_by_port_count"), got
            continue
        rows[cand["id"]] = b
        assert got["status"] == "sized", got
        for k in KEYS:
            assert got[k] == pytest.approx(b[k], rel=1e-6, abs=1e-9), (cand["id"], k)
        # the tiers are the candidate's models, the leaf taper within the candidate's cap
        tiers = got["cluster_after"]["fabric"]["tiers"]
        assert [t["switch"] for t in tiers] == cand["switches"]
        assert got["oversubscription"][0] <= cand["max_oversubscription"]["leaf"] + 1e-9
    front = [i for i, a in rows.items() if not any(_dominates(b, a) for j, b in rows.items() if j != i)]
    assert list(full.front) == front and list(r.front) == front and r.chosen == full.chosen
    # a mixed-model candidate and a tapered one are among the sized; the caps change the design
    sized = [x for x in full.candidates if x["status"] == "sized"]
    assert any(len(set(x["switches"])) == 2 for x in sized)
    assert len({x["total_usd"] for x in sized}) > len({(x["family"], x["planes"], x["switch"]) for x in sized}) / 2
    assert _bounds_hold(full) == len(sized)
    for x in r.candidates:
        if x["status"] == "pruned_by_bound":
            assert _dominates(rows[x["by"]], rows[x["id"]]), x


def test_tapers_refused_when_the_file_fixes_the_taper():
    d = _cluster()
    d["goals"]["max_oversubscription"] = 2
    with pytest.raises(SpecError) as e:
        D.design(from_dict(d), tapers=(1, 2))
    assert "tapers" in dict(e.value.errors) and "goals.max_oversubscription" in dict(e.value.errors)["tapers"]
    p_ok = D.candidates(from_dict(_cluster()), "clos", MODELS2, (1, 2), mixed_tiers=True, tapers="1,2")
    # one tier has no uplinks: neither a taper nor a second model
    assert [x["id"] for x in p_ok if x["tiers"] == 1] == ["clos/1-tier/1-plane/th4-64x400",
                                                          "clos/1-tier/1-plane/th5-128x400"]


def test_cli_mixed_tiers_and_tapers(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_cluster(racks=2, nodes=2)))
    res = CliRunner().invoke(main, ["design", str(p), "--switches", MODELS2, "--tiers", "2", "--families", "clos",
                                    "--mixed-tiers", "--tapers", "1,3", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert len(d["candidates"]) == 8 and "clos/2-tier/1-plane/th4-64x400+th5-128x400/taper-leaf=3" in [
        x["id"] for x in d["candidates"]]
    res = CliRunner().invoke(main, ["design", str(p), "--tapers", "0.5"])
    assert res.exit_code == 2 and "--tapers" in res.output and no_crash(res), res.output


def test_optimize_design_carries_the_chosen_models_and_taper():
    """topo.optimize(design={mixed_tiers, tapers}): the chosen candidate's tier models and caps are
    the plan's cluster file, so the pipeline's own budget stays within the chosen taper."""
    from topo.pipeline import optimize
    c = from_dict(_cluster(racks=2, nodes=2))
    plan = optimize(c, failures=False, design={"switches": MODELS2, "tiers": [2], "families": ["clos"],
                                               "mixed_tiers": True, "tapers": [1, 3]})
    ds = plan["design"]
    chosen = next(x for x in ds["candidates"] if x["id"] == ds["chosen"])
    assert len(ds["candidates"]) == 8 and "/taper-leaf=" in ds["chosen"]
    cf_ = plan["cluster_file"]
    assert [t["switch"] for t in cf_["fabric"]["tiers"]] == chosen["switches"]
    assert cf_["goals"]["max_oversubscription"] == chosen["max_oversubscription"]
    from topo.io.plan import typed
    typed(json.loads(json.dumps(plan)))   # the plan's typed model accepts the candidates' new fields


SU_OPTIONS = [{"size": 4, "cost_usd_per_accelerator": 1000, "watts_per_accelerator": 20},
              {"size": 8, "cost_usd_per_accelerator": 3000, "watts_per_accelerator": 50},
              {"size": 16, "cost_usd_per_accelerator": 6000, "watts_per_accelerator": 90},
              {"size": 32, "cost_usd_per_accelerator": 9000, "watts_per_accelerator": 120}]


def _scaleup_cluster():
    """32 GPUs in nodes of 4 (a rack holds 16), a tensor-parallel job of 8 and an all-to-all of 16
    under RoCE with one queue pair; scale-up sizes 4, 8, 16 and 32 stated with made-up figures
    (32 cannot be built: a rack holds 16 accelerators)."""
    d = _cluster(racks=2, nodes=4, accel=4)
    d["transport"] = {"protocol": "roce", "qps_per_connection": 1}
    d["node_types"][0]["scaleup"]["options"] = copy.deepcopy(SU_OPTIONS)
    d["jobs"] = [{"name": "dense", "accelerators": 16, "tp": 8, "collectives": [
                     {"op": "allreduce", "group": "tp", "bytes": "1GiB"}, {"op": "allreduce", "group": "dp",
                                                                            "bytes": "256MiB"}]},
                 {"name": "moe", "accelerators": 16, "ep": 16, "collectives": [
                     {"op": "alltoall", "group": "ep", "bytes": "64MiB"}]}]
    return d


@pytest.fixture(scope="module")
def scaleup_search():
    c = from_dict(_scaleup_cluster())
    kw = dict(switches="th4-64x400", tiers=(1, 2), families="clos,rail_only", scaleup="4,8,16,32")
    return c, D.design(c, **kw), D.design(c, prune=False, **kw)


def test_scaleup_front_equals_brute_force(scaleup_search):
    """Each scale-up size a candidate: sized values equal a brute force that adds the stated figures
    by hand (accelerators x per-accelerator cost and watts); the front is the brute force's, with
    pruning on and off; a size the racks cannot hold is infeasible, not dropped."""
    c, r, full = scaleup_search
    cands = D.candidates(c, "clos,rail_only", "th4-64x400", (1, 2), scaleup="4,8,16,32")
    assert [x["id"] for x in full.candidates] == [x["id"] for x in cands] == [x["id"] for x in r.candidates]
    assert {x["scaleup"] for x in cands} == {4, 8, 16, 32}
    placement, _ = fit_in_order(c, build(c))
    per_w = B._energy_usd_per_w(c)
    rows = {}
    for cand in cands:
        got = next(x for x in full.candidates if x["id"] == cand["id"])
        if cand["scaleup"] == 32:
            assert got["status"] == "infeasible" and "scale-up" in got["reason"], got
            continue
        b = _brute_row(c, cand, placement)
        if b is None:
            assert got["status"] in ("infeasible", "pruned_by_port_count"), got
            continue
        o = next(o for o in SU_OPTIONS if o["size"] == cand["scaleup"])
        b["total_usd"] += 32 * o["cost_usd_per_accelerator"] + 32 * o["watts_per_accelerator"] * per_w
        b["network_kw"] += 32 * o["watts_per_accelerator"] / 1e3
        rows[cand["id"]] = b
        assert got["status"] == "sized", got
        for k in KEYS:
            assert got[k] == pytest.approx(b[k], rel=1e-6, abs=1e-9), (cand["id"], k)
        assert got["capex_usd"] == pytest.approx(got["fabric_capex_usd"] + 32 * o["cost_usd_per_accelerator"])
        assert got["scaleup_cost"]["node_types"][0]["stated_by"] == f"node_types[0].scaleup.options[{SU_OPTIONS.index(o)}]"
        n = got["cluster_after"]["node_types"][0]["scaleup"]["size"]
        assert n == cand["scaleup"]
    front = [i for i, a in rows.items() if not any(_dominates(b, a) for j, b in rows.items() if j != i)]
    assert list(full.front) == front and list(r.front) == front and r.chosen == full.chosen
    assert len({i.rsplit("-", 1)[1] for i in front}) >= 2   # sizes trade cost for time
    for x in r.candidates:
        if x["status"] == "pruned_by_bound":
            assert _dominates(rows[x["by"]], rows[x["id"]]), x
    assert _bounds_hold(full) == len(rows)


def test_scaleup_tensor_parallel_time_falls_as_the_domain_grows(scaleup_search):
    _, _, full = scaleup_search
    t = {x["scaleup"]: x["job_times_s"]["dense"] for x in full.candidates
         if x["status"] == "sized" and x["id"].startswith("clos/1-tier/")}
    assert t[4] > t[8] >= t[16] and t[4] > 2 * t[8]   # TP of 8 leaves the fabric once the domain holds it


def test_scaleup_without_stated_figures_is_refused(tmp_path):
    d = _scaleup_cluster()
    c = from_dict(d)
    with pytest.raises(SpecError) as e:
        D.design(c, scaleup=[8, 72])
    errs = dict(e.value.errors)
    assert "node_types[0].scaleup.options" in errs and "72" in errs["node_types[0].scaleup.options"]
    d["node_types"][0]["scaleup"].pop("options")
    with pytest.raises(SpecError) as e:
        D.design(from_dict(d), scaleup="8")
    assert "node_types[0].scaleup.options" in dict(e.value.errors)
    d = _scaleup_cluster()
    d["node_types"][0]["scaleup"]["options"][1]["size"] = 6
    with pytest.raises(SpecError) as e:
        from_dict(d)
    assert "node_types[0].scaleup.options[1].size" in dict(e.value.errors)
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_scaleup_cluster()))
    res = CliRunner().invoke(main, ["design", str(p), "--scaleup", "8,72", "--tiers", "1"])
    assert res.exit_code == 2 and "node_types[0].scaleup.options" in res.output and no_crash(res), res.output
    res = CliRunner().invoke(main, ["design", str(p), "--scaleup", "x"])
    assert res.exit_code == 2 and "--scaleup" in res.output and no_crash(res), res.output


def test_scaleup_cli_design_optimize_and_describe(tmp_path):
    """`topo design --scaleup` prints the stated figures and the cost split; `topo optimize --design
    --scaleup` (with --tapers and --mixed-tiers) carries the chosen size into the plan's file;
    `topo describe` shows the options as stated."""
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_scaleup_cluster()))
    res = CliRunner().invoke(main, ["design", str(p), "--scaleup", "4,8", "--tiers", "1", "--families", "clos",
                                    "--switches", "th4-64x400"])
    assert res.exit_code == 0, res.output
    assert "node_types[0].scaleup.options[1]" in res.output and "32 x $3,000, 50 W" in res.output
    assert "at the figures the file states (node_types[].scaleup.options)" in res.output
    res = CliRunner().invoke(main, ["optimize", str(p), "--design", "--scaleup", "8,16", "--tapers", "1,3",
                                    "--mixed-tiers", "--tiers", "2", "--families", "clos", "--switches",
                                    "th4-64x400", "--no-failures", "--json", "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    plan = json.loads((tmp_path / "o" / "plan.json").read_text())
    ds = plan["design"]
    chosen = next(x for x in ds["candidates"] if x["id"] == ds["chosen"])
    assert len(ds["candidates"]) == 4 and "/scaleup-" in ds["chosen"] and "/taper-leaf=" in ds["chosen"]
    assert plan["cluster_file"]["node_types"][0]["scaleup"]["size"] == chosen["scaleup"]
    from topo.io.plan import typed
    typed(plan)
    res = CliRunner().invoke(main, ["optimize", str(p), "--scaleup", "8", "-o", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "--scaleup" in res.output and no_crash(res), res.output
    res = CliRunner().invoke(main, ["describe", str(p)])
    assert res.exit_code == 0 and "domain of 16: $6,000.00 and 90 W per accelerator" in res.output, res.output
