"""Job placement: brute-force optima on tiny fabrics, the independent checker,
power limits, bad input, the CLI, and routed traffic against in-order placement."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from topo.solve import placement as place_mod
from topo.core.errors import SpecError
from topo.model.fabric import build
from topo.solve.placement import place
from topo.solve.place_check import check
from topo.model.spec import from_dict, load

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _sw(radix):
    return {"radix": radix, "port_gbps": 400, "power_w": 0, "cost_usd": 0}


def tiny(nodes_per_rack=1, n_racks=8, limit_kw=100.0, busy_kw=2.0, idle_kw=0.5, scaleup=2, jobs=(), busy=()):
    """8 servers of 2 accelerators; 4 leaves of 2 servers; 2 pods of 2 leaves."""
    return {
        "version": 1, "name": "tiny",
        "node_types": [{"name": "g", "accelerator": "H100", "accelerators": 2, "nics": 2, "nic_gbps": 400,
                        "power_busy_kw": busy_kw, "power_idle_kw": idle_kw, "scaleup": {"size": scaleup}}],
        "racks": [{"name": "r", "count": n_racks, "nodes": {"g": nodes_per_rack}, "power_limit_kw": limit_kw}],
        "fabric": {"family": "clos", "tiers": [{"switch": _sw(8)}, {"switch": _sw(4)}, {"switch": _sw(8)}]},
        "jobs": list(jobs), "busy_nodes": list(busy),
        "goals": {"time_limit_s": 5, "seed": 3, "workers": 1},
    }


# --- brute force oracle (the objective as documented in topo.solve.placement) ---------------------------
# one oracle for both files (tests/helpers/place_oracle.py), written from the README (whole servers,
# whole free domains for TP >= domain jobs, busy nodes, rack power, pins and forbids, priorities)
from helpers.place_oracle import oracle as _oracle  # noqa: E402


def _instance(seed):
    rng = np.random.default_rng(seed)
    npr = int(rng.choice([1, 2]))
    n_racks = 8 // npr
    per_rack_limit = float(rng.choice([100.0, 100.0, 3.0 * npr, 2.6 * npr]))
    n_jobs = int(rng.integers(1, 4))
    jobs = []
    for k in range(n_jobs):
        size = int(rng.choice([2, 4, 6]))
        tp = int(rng.choice([1, 2]))
        job = {"name": f"j{k}", "accelerators": size, "tp": tp, "priority": int(rng.integers(0, 2)),
               "collectives": [{"op": "allreduce", "group": "dp", "bytes": f"{int(rng.integers(1, 9))}GiB"}]}
        if rng.random() < 0.25:
            job["pin_racks"] = [f"rack{r:03d}" for r in sorted(rng.choice(n_racks, size=n_racks // 2, replace=False))]
        elif rng.random() < 0.2:
            job["forbid_pods"] = [int(rng.integers(0, 2))]
        jobs.append(job)
    busy = [f"n{s:04d}" for s in sorted(rng.choice(8, size=int(rng.integers(0, 3)), replace=False))]
    return tiny(nodes_per_rack=npr, n_racks=n_racks, limit_kw=per_rack_limit, jobs=jobs, busy=busy)


@pytest.mark.parametrize("seed", range(24))
def test_cp_sat_finds_brute_force_optimum(seed, monkeypatch):
    monkeypatch.setattr(place_mod, "SKIP_SOLVER_AT_BOUND", False)  # the solver itself, every time
    c = from_dict(_instance(seed))
    f = build(c)
    r = place(c, f, time_limit=5, seed=0, workers=1)
    assert check(c, f, r.assignment, r.unplaced, r.objective) == []
    best = _oracle(c, f)
    assert r.objective == best
    assert r.status == "OPTIMAL" and r.bound == best
    assert r.solver["simple_bound"] <= best
    for name in r.unplaced:
        assert r.unplaced[name] in place_mod.REASONS


@pytest.mark.parametrize("seed", [1, 5, 9, 13, 17, 21])
def test_decomposed_model_is_checked_and_bounded(seed, monkeypatch):
    monkeypatch.setattr(place_mod, "MONOLITHIC_MAX_VARS", 0)
    monkeypatch.setattr(place_mod, "SKIP_SOLVER_AT_BOUND", False)
    c = from_dict(_instance(seed))
    f = build(c)
    r = place(c, f, time_limit=5, seed=0, workers=1)
    best = _oracle(c, f)
    assert r.solver["mode"] == "decomposed"
    assert check(c, f, r.assignment, r.unplaced, r.objective) == []
    assert r.bound <= best <= r.objective
    assert r.solver["simple_bound"] <= best


def test_greedy_policy_is_checked_and_reported():
    c = from_dict(_instance(3))
    f = build(c)
    r = place(c, f, policy="greedy")
    assert r.source == "baseline" and r.bound is None
    assert check(c, f, r.assignment, r.unplaced, r.objective) == []
    assert r.objective >= _oracle(c, f)


def test_repeatable_with_one_worker_and_seed():
    c = load(EXAMPLES / "h100-rail-roce.yaml")
    f = build(c)
    a = place(c, f, time_limit=5, seed=11, workers=1)
    b = place(c, f, time_limit=5, seed=11, workers=1)
    assert (a.objective, a.status, a.bound, a.unplaced) == (b.objective, b.status, b.bound, b.unplaced)
    assert sorted(a.assignment) == sorted(b.assignment)
    for job in a.assignment:  # the same servers, not just the same cost
        assert np.array_equal(a.assignment[job], b.assignment[job]), job


# --- the checker rejects bad placements of every kind -----------------------------------------
@pytest.fixture
def good():
    d = tiny(jobs=[{"name": "a", "accelerators": 4, "tp": 2,
                    "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1GiB"}]},
                   {"name": "b", "accelerators": 2, "tp": 2}], busy=["n0007"])
    c = from_dict(d)
    f = build(c)
    r = place(c, f, time_limit=5, seed=0, workers=1)
    assert check(c, f, r.assignment, r.unplaced, r.objective) == []
    return c, f, r


def _kinds(v):
    return {s.split(":")[0] for s in v}


def test_checker_rejects_shared_accelerator(good):
    c, f, r = good
    a = dict(r.assignment)
    a["b"] = a["a"][:2].copy()
    assert "capacity" in _kinds(check(c, f, a, r.unplaced, None))


def test_checker_rejects_busy_node_and_wrong_size(good):
    c, f, r = good
    a = dict(r.assignment)
    a["b"] = np.array([14, 15])  # n0007 is busy
    assert "capacity" in _kinds(check(c, f, a, r.unplaced, None))
    a["b"] = np.array([12])
    assert "capacity" in _kinds(check(c, f, a, r.unplaced, None))


def test_checker_rejects_split_domain():
    d = tiny(nodes_per_rack=2, n_racks=4, scaleup=4,
             jobs=[{"name": "big", "accelerators": 4, "tp": 4}, {"name": "small", "accelerators": 2, "tp": 2}])
    c = from_dict(d)
    f = build(c)
    r = place(c, f, time_limit=5, seed=0, workers=1)
    assert check(c, f, r.assignment, r.unplaced, r.objective) == []
    # TP group across two domains
    bad = {"big": np.array([0, 1, 4, 5]), "small": np.array([8, 9])}
    assert "domain" in _kinds(check(c, f, bad, {}, None))
    # a whole-domain job sharing its domain with another job
    bad = {"big": np.array([0, 1, 2, 3]), "small": np.array([2, 3])}
    assert "domain" in _kinds(check(c, f, bad, {}, None))


def test_checker_rejects_over_power():
    d = tiny(limit_kw=2.6, jobs=[{"name": "a", "accelerators": 2}])  # 1 server at 2 kW fits, rack idle 0.5
    d["racks"] = [{"name": "r", "count": 4, "nodes": {"g": 2}, "power_limit_kw": 3.0}]
    c = from_dict(d)
    f = build(c)
    r = place(c, f, time_limit=5, seed=0, workers=1)
    assert check(c, f, r.assignment, r.unplaced, r.objective) == []
    d["jobs"] = [{"name": "a", "accelerators": 4}]
    c2 = from_dict(d)
    bad = {"a": np.array([0, 1, 2, 3])}  # both servers of rack000: 4 kW > 3 kW
    assert "power" in _kinds(check(c2, f, bad, {}, None))


def test_checker_rejects_pin_violation():
    d = tiny(jobs=[{"name": "a", "accelerators": 2, "pin_racks": ["rack005"]}])
    c = from_dict(d)
    f = build(c)
    r = place(c, f, time_limit=5, seed=0, workers=1)
    assert check(c, f, r.assignment, r.unplaced, r.objective) == []
    assert set(f.server_rack[f.ep_server[r.assignment["a"]]]) == {5}
    assert "pin" in _kinds(check(c, f, {"a": np.array([0, 1])}, {}, None))
    d["jobs"][0] = {"name": "a", "accelerators": 2, "forbid_pods": [0]}
    c2 = from_dict(d)
    assert "pin" in _kinds(check(c2, f, {"a": np.array([0, 1])}, {}, None))


def test_checker_rejects_dropped_job_and_wrong_objective(good):
    c, f, r = good
    a = dict(r.assignment)
    del a["b"]
    assert "dropped" in _kinds(check(c, f, a, {}, None))
    assert "dropped" in _kinds(check(c, f, r.assignment, {"b": "power"}, None))
    assert "objective" in _kinds(check(c, f, r.assignment, r.unplaced, r.objective + 1))
    assert "reason" in _kinds(check(c, f, a, {"b": "bad luck"}, None))


def test_returned_placement_never_fails_the_check(monkeypatch):
    """A placement that fails the checker is not returned: the checked baseline is.
    The baseline is checked twice (ranks in the job's own order, then mapped)."""
    from topo.solve import place_check
    c = from_dict(_instance(2))
    f = build(c)
    real = place_check.check
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        v = real(*a, **k)
        return v if calls["n"] <= 2 else ["capacity: injected failure"]
    monkeypatch.setattr(place_check, "check", flaky)
    r = place(c, f, time_limit=5, seed=0, workers=1)
    assert r.source == "baseline"
    assert real(c, f, r.assignment, r.unplaced, r.objective) == []


# --- power limits bind ---------------------------------------------------------------------------
def test_power_limits_half_fill_racks():
    # racks of 2 servers that can power only one of them busy: 0.5+0.5 idle, +1.5 for one busy -> 2.5 <= 2.6
    d = tiny(nodes_per_rack=2, n_racks=4, limit_kw=2.6,
             jobs=[{"name": f"j{k}", "accelerators": 2} for k in range(6)])
    c = from_dict(d)
    f = build(c)
    r = place(c, f, time_limit=5, seed=0, workers=1)
    assert check(c, f, r.assignment, r.unplaced, r.objective) == []
    used = np.concatenate([f.ep_server[e] for e in r.assignment.values()])
    per_rack = np.bincount(f.server_rack[np.unique(used)], minlength=4)
    assert per_rack.tolist() == [1, 1, 1, 1]
    assert len(r.unplaced) == 2 and set(r.unplaced.values()) == {"power"}
    assert all(x["kw"] <= x["limit_kw"] + 1e-9 for x in r.racks)
    assert r.stranded["power"] == 8


def test_rack_already_over_limit_gets_nothing():
    d = tiny(nodes_per_rack=2, n_racks=4, limit_kw=2.6, busy=["n0000", "n0001"],
             jobs=[{"name": "a", "accelerators": 2}])
    c = from_dict(d)
    f = build(c)
    r = place(c, f, time_limit=5, seed=0, workers=1)
    assert 0 not in set(f.server_rack[f.ep_server[r.assignment["a"]]])


# --- bad input -------------------------------------------------------------------------------------
def test_job_larger_than_free_capacity_is_unplaced_honestly():
    d = tiny(busy=["n000[0-3]"], jobs=[{"name": "huge", "accelerators": 10}, {"name": "ok", "accelerators": 2}])
    c = from_dict(d)
    r = place(c, build(c), time_limit=5)
    assert r.unplaced == {"huge": "too large"}
    assert "ok" in r.assignment


@pytest.mark.parametrize("job,path", [
    ({"pin_racks": ["rack001"], "forbid_racks": ["rack001"]}, "jobs[0].forbid_racks[0]"),
    ({"pin_racks": ["rack999"]}, "jobs[0].pin_racks[0]"),
    ({"forbid_racks": ["nope"]}, "jobs[0].forbid_racks[0]"),
    ({"pin_pods": [7]}, "jobs[0].pin_pods[0]"),
    ({"pin_pods": [0], "forbid_pods": [0]}, "jobs[0].forbid_pods[0]"),
    ({"pin_racks": ["rack000"], "forbid_pods": [0]}, "jobs[0].pin_racks"),
])
def test_contradictory_or_unknown_pins(job, path):
    c = from_dict(tiny(jobs=[{"name": "a", "accelerators": 2, **job}]))
    with pytest.raises(SpecError) as e:
        place(c, build(c))
    assert path in [p for p, _ in e.value.errors]


def test_time_limit_zero_and_zero_power_limit():
    c = from_dict(tiny(jobs=[{"name": "a", "accelerators": 2}]))
    with pytest.raises(SpecError) as e:
        place(c, build(c), time_limit=0)
    assert e.value.errors[0][0] == "time_limit"
    with pytest.raises(SpecError) as e:
        from_dict(tiny(limit_kw=0))
    assert any("power_limit_kw" in p for p, _ in e.value.errors)


def test_cli_table_json_and_atomic_output(tmp_path):
    from topo.cli.app import main
    runner = CliRunner()
    src = tmp_path / "c.json"
    src.write_text(json.dumps(tiny(jobs=[{"name": "a", "accelerators": 4,
                                          "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1GiB"}]}])))
    out = tmp_path / "p.json"
    res = runner.invoke(main, ["place", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "status OPTIMAL" in res.output and "greedy baseline" in res.output
    d = json.loads(out.read_text())
    assert d["status"] == "OPTIMAL" and len(d["assignment"]["a"]) == 4 and d["nodes"]["a"]
    before = out.read_text()
    res = runner.invoke(main, ["place", str(src), "-o", str(out)])
    assert res.exit_code == 2 and out.read_text() == before
    res = runner.invoke(main, ["place", str(src), "--json", "--policy", "greedy"])
    assert res.exit_code == 0 and json.loads(res.output)["source"] == "baseline"
    res = runner.invoke(main, ["place", str(src), "--time-limit", "0", "-o", str(tmp_path / "x.json")])
    assert res.exit_code == 2 and "--time-limit" in res.output and not (tmp_path / "x.json").exists()
    bad = tiny(jobs=[{"name": "a", "accelerators": 2, "pin_racks": ["rack001"], "forbid_racks": ["rack001"]}])
    src.write_text(json.dumps(bad))
    res = runner.invoke(main, ["place", str(src), "-o", str(tmp_path / "y.json")])
    assert res.exit_code == 2 and "jobs[0].forbid_racks[0]" in res.output
    assert not (tmp_path / "y.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# --- routed traffic is never worse than the in-order placement on the shipped examples ------------
@pytest.mark.parametrize("example", ["small.yaml", "h100-rail-roce.yaml", "helios-mi450-uec.yaml"])
def test_routed_traffic_not_worse_than_in_order(example):
    from topo.routing.engine import route
    from topo.traffic.demand import in_order_placement, job_demands
    c = load(EXAMPLES / example)
    f = build(c)
    r = place(c, f, time_limit=5, seed=0, workers=1)
    assert not r.unplaced
    above_leaf = f.link_tier >= 1

    def climbing_bytes(assign):
        res = route(f, job_demands(c, f, assign), "fluid")
        return float(res.link_bytes[above_leaf].sum())
    placed = climbing_bytes(r.assignment)
    in_order = climbing_bytes(in_order_placement(c, f))
    assert placed <= in_order * (1 + 1e-9)


def test_result_is_json_able_and_cli_routes(tmp_path):
    from topo.cli.app import main
    c = load(EXAMPLES / "small.yaml")
    r = place(c, build(c), time_limit=5)
    d = json.loads(json.dumps(r.to_dict()))
    assert set(d["assignment"]) == {j.name for j in c.file.jobs}
    assert all(len(v) == j.accelerators for j in c.file.jobs for v in [d["assignment"][j.name]])
    assert d["baseline"]["check"] == "passed" and d["bound"] <= d["objective"]
    res = CliRunner().invoke(main, ["place", str(EXAMPLES / "small.yaml"), "--route", "--json"])
    assert res.exit_code == 0, res.output
    routed = json.loads(res.output)["routed"]
    assert set(routed["jobs"]) == {j.name for j in c.file.jobs} and routed["in_order"]


def test_explicit_nodes_are_kept():
    d = tiny(jobs=[{"name": "fixed", "accelerators": 4, "nodes": ["n000[5-6]"]},
                   {"name": "free", "accelerators": 4}])
    c = from_dict(d)
    f = build(c)
    r = place(c, f, time_limit=5)
    assert sorted(set(f.ep_server[r.assignment["fixed"]])) == [5, 6]
    assert check(c, f, r.assignment, r.unplaced, r.objective) == []


def test_pod_stage_timeout_keeps_start_split(monkeypatch):
    """When the job x pod model finds nothing in time, the start's split is solved inside the pods."""
    monkeypatch.setattr(place_mod, "MONOLITHIC_MAX_VARS", 0)
    monkeypatch.setattr(place_mod, "_pod_model", lambda *a, **k: ("UNKNOWN", {}, None, None, 0))
    monkeypatch.setattr(place_mod, "SKIP_SOLVER_AT_BOUND", False)
    c = from_dict(_instance(5))
    f = build(c)
    r = place(c, f, time_limit=5, seed=0, workers=1)
    assert r.solver["stages"][0]["fallback"] == "the start's jobs per pod"
    assert check(c, f, r.assignment, r.unplaced, r.objective) == []
    assert r.bound <= _oracle(c, f) <= r.objective


def test_higher_priority_wins_when_not_everything_fits():
    c = from_dict(tiny(jobs=[{"name": "big-low", "accelerators": 16},
                             {"name": "small-high", "accelerators": 2, "priority": 5}]))
    f = build(c)
    for policy in ("optimize", "greedy"):
        r = place(c, f, time_limit=5, policy=policy)
        assert "small-high" in r.assignment and r.unplaced == {"big-low": "capacity"}
        assert check(c, f, r.assignment, r.unplaced, r.objective) == []


def test_start_that_meets_the_bound_skips_the_solver(monkeypatch):
    # when a checked start's objective equals the lower bound it is optimal: no CP-SAT run,
    # same answer as the solver's, status OPTIMAL
    hits = 0
    for seed in range(1, 12):
        c = from_dict(_instance(seed))
        f = build(c)
        r = place(c, f, time_limit=5, seed=0, workers=1)
        assert check(c, f, r.assignment, r.unplaced, r.objective) == []
        if r.solver.get("status") == place_mod.BOUND_MET:
            hits += 1
            assert r.status == "OPTIMAL" and r.objective == r.bound == _oracle(c, f)
            assert not r.solver["stages"] and "without a solver run" in r.note
    assert hits, "no instance exercised the shortcut"


def test_racks_shared_bound_is_a_lower_bound_and_binds():
    # jobs of 2-3 servers crowding racks of 2 with scattered busy nodes: the shared-racks
    # relaxation must never exceed the brute-force optimum, and it must bind somewhere
    binding = 0
    for seed in range(80):
        rng = np.random.default_rng(100 + seed)
        jobs = [{"name": f"j{k}", "accelerators": int(rng.choice([2, 4, 6])), "tp": 1,
                 "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1GiB"}]}
                for k in range(int(rng.integers(2, 4)))]
        busy = [f"n{s:04d}" for s in sorted(rng.choice(8, size=int(rng.integers(1, 5)), replace=False))]
        c = from_dict(tiny(nodes_per_rack=2, n_racks=4, jobs=jobs, busy=busy))
        f = build(c)
        r = place(c, f, time_limit=5, seed=0, workers=1)
        if r.unplaced:
            continue
        best = _oracle(c, f)
        parts = r.solver.get("simple_bound_parts") or {}
        assert r.solver["simple_bound"] <= best <= r.objective, seed
        assert r.bound <= best, seed
        binding += parts.get("racks_shared", 0) > parts.get("racks_alone", 0)
    assert binding >= 3, binding


# --- rank mapping --------------------------------------------------------------------------------
def _crossing(c, f, assign):
    """Bytes of the jobs' flows between endpoints on different leaves and on different pods,
    counted from the expanded flows (independent of the placement module's estimate)."""
    from topo.traffic.demand import job_demands
    d = job_demands(c, f, assign)
    leaf = f.ep_leaf()
    pod = np.asarray(f.node_pod)
    ls, ld = leaf[d.src], leaf[d.dst]
    return float(d.bytes[ls != ld].sum()), float(d.bytes[pod[ls] != pod[ld]].sum())


def _whole_cluster_job(dp_bytes, pp_bytes):
    # 16 accelerators = the whole tiny cluster: tp 2 (a node), pp 2, dp 4; one node per leaf pair
    return tiny(jobs=[{"name": "j", "accelerators": 16, "tp": 2, "pp": 2, "collectives": [
        {"op": "allreduce", "group": "dp", "bytes": dp_bytes},
        {"op": "sendrecv", "group": "pp", "bytes": pp_bytes}]}])


def test_rank_mapping_puts_pipeline_stages_apart_when_dp_rings_dominate():
    # job order (DP slowest): one replica per leaf, every DP ring crosses all 4 leaves and both
    # pods; PP slowest: stage p on pod p, DP rings stay in their pod, only send/recv crosses
    c = from_dict(_whole_cluster_job("1GiB", "64MiB"))
    f = build(c)
    r = place(c, f, time_limit=5, seed=0, workers=1)
    g = place(c, f, time_limit=5, seed=0, workers=1, policy="greedy")
    assert check(c, f, r.assignment, r.unplaced, r.objective) == []
    assert sorted(r.assignment["j"].tolist()) == sorted(g.assignment["j"].tolist())
    leaf_m, pod_m = _crossing(c, f, r.assignment)
    leaf_o, pod_o = _crossing(c, f, g.assignment)
    gib, mib = 2 ** 30, 2 ** 20
    # own order: 4 rings (2 tp x 2 pp) x 4 crossing edges x 2*3/4 GiB; 2 of the 4 edges leave a pod
    assert leaf_o == pytest.approx(4 * 4 * 1.5 * gib) and pod_o == pytest.approx(4 * 2 * 1.5 * gib)
    # mapped: 4 rings x 2 crossing edges x 1.5 GiB + 8 send/recv chains (4 dp x 2 tp) x 64 MiB
    assert leaf_m == pytest.approx(4 * 2 * 1.5 * gib + 8 * 64 * mib)
    assert pod_m == pytest.approx(8 * 64 * mib)
    assert r.totals["cross_leaf_bytes"] == pytest.approx(leaf_m)
    assert r.totals["super_spine_bytes"] == pytest.approx(pod_m)
    # the baseline is reported both ways: in the job's own order and with the mapping
    assert r.baseline["totals"]["cross_leaf_bytes"] == pytest.approx(leaf_o)
    assert r.baseline["totals_rank_mapped"]["cross_leaf_bytes"] == pytest.approx(leaf_m)


def test_rank_mapping_keeps_the_job_order_when_send_recv_dominates():
    c = from_dict(_whole_cluster_job("64MiB", "8GiB"))
    f = build(c)
    r = place(c, f, time_limit=5, seed=0, workers=1)
    g = place(c, f, time_limit=5, seed=0, workers=1, policy="greedy")
    assert r.assignment["j"].tolist() == g.assignment["j"].tolist()


def _mix(jobs):
    """32 nodes of 8 accelerators (one scale-up domain each), 2 per rack and per leaf;
    16 leaves in 4 pods of 4."""
    return {"version": 1, "name": "mix",
            "node_types": [{"name": "g", "accelerator": "H100", "accelerators": 8, "nics": 8, "nic_gbps": 400,
                            "power_busy_kw": 2.0, "power_idle_kw": 0.5, "scaleup": {"size": 8}}],
            "racks": [{"name": "r", "count": 16, "nodes": {"g": 2}, "power_limit_kw": 100}],
            "fabric": {"family": "clos", "tiers": [{"switch": _sw(32)}, {"switch": _sw(8)}, {"switch": _sw(8)}]},
            "jobs": list(jobs), "goals": {"time_limit_s": 5, "seed": 1, "workers": 1}}


def test_rank_mapping_blocks_of_replicas_with_their_stages_apart():
    """tp 8, pp 2, dp 8 on 8 leaves in 2 pods, DP all-reduce S = 1 GiB, send/recv 1.25 GiB.
    Per 16 DP rings (2 x 8) of 8 members and 64 send/recv chains, weighting pods 3 more:
    DP slowest: 8 leaf and 2 pod crossings per ring = 16*8*1.75 + 3*16*2*1.75 = 392 GiB;
    PP slowest: 4 leaf crossings per ring, every chain leaves its pod = 112 + 4*64*1.25 = 432;
    blocks of 4 (or 2) replicas per pod with their stages on different leaves: 4 leaf and 2
    pod crossings per ring, chains stay in their pod = 112 + 64*1.25 + 3*56 = 360 (best)."""
    c = from_dict(_mix([{"name": "j", "accelerators": 128, "tp": 8, "pp": 2, "collectives": [
        {"op": "allreduce", "group": "dp", "bytes": "1GiB"}, {"op": "sendrecv", "group": "pp", "bytes": "1.25GiB"}]}]))
    f = build(c)
    r = place(c, f, time_limit=5, seed=0, workers=1)
    assert check(c, f, r.assignment, r.unplaced, r.objective) == []
    assert r.jobs["j"]["leaves"] == 8 and r.jobs["j"]["pods"] == 2
    gib = 2 ** 30
    leaf_b, pod_b = _crossing(c, f, r.assignment)
    assert leaf_b == pytest.approx((16 * 4 * 1.75 + 64 * 1.25) * gib)
    assert pod_b == pytest.approx(16 * 2 * 1.75 * gib)
    own_leaf, own_pod = r.baseline["totals"]["cross_leaf_bytes"], r.baseline["totals"]["super_spine_bytes"]
    assert own_leaf + 3 * own_pod == pytest.approx(392 * gib)


@pytest.mark.parametrize("seed", range(12))
def test_rank_mapping_never_sends_more_above_the_leaves(seed):
    """Random jobs (random rank orders, collectives and algorithms) on a fabric of
    8-accelerator nodes: for every placed job, the mapped rank order sends no more weighted
    bytes above the leaves than the job's own order on the same accelerators (counted from
    the traffic model's flows), keeps every TP group in one node, and is a permutation of
    them. 16 leaves of 2 nodes in 4 pods."""
    rng = np.random.default_rng(seed)
    jobs = []
    for k in range(5):
        tp = int(rng.choice([2, 4, 8]))
        pp = int(rng.choice([1, 2, 4]))
        cp = int(rng.choice([1, 1, 2]))
        dp = int(rng.choice([1, 2, 3, 4, 6]))
        while tp * pp * cp * dp > 128:  # half the cluster at most
            dp //= 2
        def col(group, choices):
            op, alg = choices[int(rng.integers(len(choices)))]
            return {"op": op, "algorithm": alg, "group": group, "bytes": f"{int(rng.integers(1, 512))}MiB"}
        cols = [col("dp", [("allreduce", "ring"), ("allreduce", "tree"), ("allreduce", "direct"),
                           ("allreduce", "hierarchical"), ("broadcast", "ring"), ("broadcast", "tree"),
                           ("allgather", "direct"), ("reducescatter", "ring")])]
        if pp > 1:
            cols.append(col("pp", [("sendrecv", "ring"), ("broadcast", "ring"), ("allreduce", "tree")]))
        if cp > 1:
            cols.append(col("cp", [("allgather", "ring"), ("allgather", "direct"), ("broadcast", "tree")]))
        order = "-".join(["tp"] + [str(x) for x in rng.permutation(["cp", "pp", "dp"])])
        jobs.append({"name": f"j{k}", "accelerators": tp * pp * cp * dp, "tp": tp, "pp": pp, "cp": cp,
                     "rank_order": order, "collectives": cols})
    c = from_dict(_mix(jobs))
    f = build(c)
    r = place(c, f, time_limit=5, seed=0, workers=1)
    assert check(c, f, r.assignment, r.unplaced, r.objective) == []
    leaf, pod = f.ep_leaf(), np.asarray(f.node_pod)
    rack, dom = np.asarray(f.server_rack), np.asarray(f.ep_domain)
    for j in c.file.jobs:
        if j.name not in r.assignment:
            continue
        eps = np.asarray(r.assignment[j.name])
        srv = np.asarray(f.ep_server)[eps]
        # the job's own order: the accelerators of its nodes by (pod, leaf, rack, domain, node,
        # endpoint), the first n of them; the mapping must use exactly those
        acc = np.flatnonzero(np.isin(f.ep_server, np.unique(srv)) & np.asarray(f.ep_is_accel, bool))
        s0, l0 = np.asarray(f.ep_server)[acc], leaf[acc]
        own = acc[np.lexsort((acc, s0, dom[acc], rack[s0], l0, pod[l0]))][: j.accelerators]
        assert sorted(eps.tolist()) == sorted(own.tolist())
        assert all(np.unique(srv[i:i + j.tp]).size == 1 for i in range(0, eps.size, j.tp))

        def cost(a):
            lb, pb = _crossing(c, f, {j.name: a})
            return lb + 3 * pb
        assert cost(eps) <= cost(own) * (1 + 1e-9) + 1e-6
    assert r.totals["cross_leaf_bytes"] == pytest.approx(_crossing(c, f, r.assignment)[0])


def test_rank_mapping_keeps_a_megatron_order_that_is_already_best():
    # rank_order tp-cp-ep-dp-pp puts PP slowest: the in-order baseline already has the stages
    # apart, so the mapping keeps it and the two baseline figures agree
    d = _whole_cluster_job("1GiB", "64MiB")
    d["jobs"][0]["rank_order"] = "tp-cp-ep-dp-pp"
    c = from_dict(d)
    f = build(c)
    r = place(c, f, time_limit=5, seed=0, workers=1)
    g = place(c, f, time_limit=5, seed=0, workers=1, policy="greedy")
    assert r.assignment["j"].tolist() == g.assignment["j"].tolist()
    gib, mib = 2 ** 30, 2 ** 20
    leaf_m, pod_m = _crossing(c, f, r.assignment)
    assert leaf_m == pytest.approx(4 * 2 * 1.5 * gib + 8 * 64 * mib) and pod_m == pytest.approx(8 * 64 * mib)
    assert r.baseline["totals"]["cross_leaf_bytes"] == pytest.approx(leaf_m)
    assert r.baseline["totals_rank_mapped"]["cross_leaf_bytes"] == pytest.approx(leaf_m)
    assert r.totals["cross_leaf_bytes"] == pytest.approx(leaf_m)
