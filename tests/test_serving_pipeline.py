"""Serving deployments in `topo analyze` and `topo optimize`: placed beside the jobs, their traffic with
the jobs' loads, the plan's serving section."""
import copy
import json

import numpy as np
import pytest
from click.testing import CliRunner

from helpers.serving_cases import TINY


def _with_job():
    d = copy.deepcopy(TINY)
    d["jobs"] = [{"name": "t", "accelerators": 2, "collectives": [{"op": "allreduce", "bytes": 1e9}]}]
    return d


def test_analyze_shows_serving_beside_the_jobs(tmp_path):
    from topo.cli import main
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_with_job()))
    res = CliRunner().invoke(main, ["analyze", str(p), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    s = out["serving"]
    dep = s["deployments"][0]
    assert dep["bytes_per_s"]["kv_transfer"] == pytest.approx(10 * 1000 * 327_680)
    # the job runs on n0000, n0001 (in order); the replicas elsewhere
    used = {n for reps in dep["replicas"].values() for r in reps for n in r}
    assert not used & {"n0000-g0", "n0001-g0"}
    w = s["with_training"]
    assert w["training_max_util"] == pytest.approx(out["max_util"])      # the jobs' own peak, as analyze routes it
    assert set(w["interference"]["models"]) == {"fluid", "roce-hash", "uec-spray"}
    res = CliRunner().invoke(main, ["analyze", str(p)])
    assert res.exit_code == 0 and "network time per token" in res.output and "job time without -> with" in res.output


def test_optimize_plan_has_a_serving_section():
    from topo.io.plan import typed
    from topo.model.spec import from_dict
    from topo.pipeline import optimize
    d = _with_job()
    d["goals"] = {"time_limit_s": 2, "workers": 1}
    plan = optimize(from_dict(d))
    typed(plan)
    # the failure sweep counts the plan's own replicas
    fs = plan["failures"]["serving"]
    assert fs["placement"] == {"method": "given"} and fs["deployments"]["d"]["replicas"] == {"prefill": 1, "decode": 1}
    assert all("serving" in r for r in plan["failures"]["single"])
    s = plan["serving"]
    dep = s["deployments"][0]
    assert s["serving_placement"]["method"] == "cpsat" and s["serving_placement"]["status"] == "OPTIMAL"
    train = set(np.asarray(plan["placement"]["assignment"]["t"]).tolist())
    eps = {e for reps in s["serving_placement"]["assignment"].values() for r in reps for e in r}
    assert eps and not eps & train
    m = dep["time_per_token"]["models"]
    assert set(m) == {"fluid", "roce-hash", "uec-spray"}
    curve = m["fluid"]["curve"]
    rates = [r for r, _ in curve]
    assert rates == sorted(rates) and 10 in rates
    assert rates[-1] < m["fluid"]["saturating_requests_per_s"]
    assert dep["bytes_per_s"]["kv_transfer"] == pytest.approx(10 * 1000 * 327_680)
    assert "interference" in s["with_training"]


def test_budget_carries_the_serving_traffic_at_its_stated_rate():
    """The budget's demands: the jobs' flows and every deployment's flows at load.requests_per_s as
    background (job -1); the budget routes them, so its loads on the chosen fabric include them."""
    import topo
    from topo.model.fabric import build
    from topo.solve.linkbudget import budget_for_transport
    from topo.solve.serving_place import budget_demands, place_serving
    from topo.traffic.demand import fit_in_order, job_demands
    from topo.traffic.serving import serving_traffic
    c = topo.load("examples/serving-disagg.yaml")
    f = build(c)
    pl = fit_in_order(c, f)[0]
    reps = place_serving(c, f, pl)["assignment"]
    d = budget_demands(c, f, pl, reps)
    jd = job_demands(c, f, pl)
    sd = serving_traffic(c, f, pl, replicas=reps).demands
    assert d.n == jd.n + sd.n and d.job_names == jd.job_names
    assert (d.job[jd.n:] == -1).all()
    assert d.rate_gbps[jd.n:].sum() == pytest.approx(sd.rate_gbps.sum())
    u0 = budget_for_transport(c, f, placement=pl).to_dict()["utilization"]["leaf-spine"]
    u1 = budget_for_transport(c, f, placement=pl, demands=d).to_dict()["utilization"]["leaf-spine"]
    assert u1["routed_before"] > u0["routed_before"] and u1["routed_after"] > u0["routed_after"]


def test_place_shows_the_replicas_beside_the_jobs_and_spares(tmp_path):
    """`topo place`: the job on n0000/n0001, n0002 held back with --reserve; the replicas go elsewhere,
    by CP-SAT, checked, with the racks they switch nodes on in. The -o file still reads as a placement."""
    from topo.cli import main
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_with_job()))
    res = CliRunner().invoke(main, ["place", str(p), "--json", "--reserve", "n0002"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    s = out["serving"]
    assert s["status"] == "OPTIMAL" and s["checked"] and s["reserved"]
    used = {n for pool in s["pools"].values() for r in pool["nodes"] for n in r}
    assert len(used) == 2 and not used & {"n0000-g0", "n0001-g0", "n0002-g0"}
    assert s["pools"]["d.prefill"]["replicas"] == 1 and s["pools"]["d.decode"]["accelerators_per_replica"] == 1
    assert s["racks_switched_on"] and all(r["kw"] <= r["limit_kw"] for r in s["racks_switched_on"])
    assert s["kv_crossing"]["d"]["kv_routing"] == "even"
    res = CliRunner().invoke(main, ["place", str(p), "-o", str(tmp_path / "pl.json")])
    assert res.exit_code == 0 and "serving replicas (CP-SAT after the jobs)" in res.output, res.output
    # budget and failures take the replicas the file holds, re-checked
    res = CliRunner().invoke(main, ["budget", str(p), "--placement", str(tmp_path / "pl.json"), "--json"])
    assert res.exit_code == 0, res.output
    b = json.loads(res.output)["serving"]
    assert b["deployments"][0]["name"] == "d" and b["placement"]["method"] == "given"
    res = CliRunner().invoke(main, ["failures", str(p), "--plan", str(tmp_path / "pl.json"), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["serving"]["placement"] == {"method": "given"}, res.output
    bad = json.loads((tmp_path / "pl.json").read_text())
    bad["serving"]["pools"]["d.decode"]["assignment"] = [[0]]       # the training job's accelerator
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    for cmd in (["budget", str(p), "--placement"], ["failures", str(p), "--plan"]):
        res = CliRunner().invoke(main, cmd + [str(tmp_path / "bad.json")])
        assert res.exit_code == 2 and "serving.pools" in res.output and "training job t" in res.output, res.output
    res = CliRunner().invoke(main, ["place", str(p), "--json", "--no-serving"])
    assert res.exit_code == 0 and "serving" not in json.loads(res.output)


def test_budget_cli_sizes_for_jobs_and_serving():
    """`topo budget` on the example: with the deployments at their stated rates the leaf-spine links carry
    more before and after the budget than the jobs alone (--no-serving); the serving network Gb/s shown
    are the deployments' flows that leave a scale-up domain."""
    from topo.cli import main
    runs = {}
    for flag in ("--serving", "--no-serving"):
        res = CliRunner().invoke(main, ["budget", "examples/serving-disagg.yaml", "--json", flag])
        assert res.exit_code == 0, res.output
        runs[flag] = json.loads(res.output)
    s = runs["--serving"]["serving"]
    assert [x["name"] for x in s["deployments"]] == ["llama70b", "moe"] and s["placement"]["status"] == "OPTIMAL"
    assert s["deployments"][0]["requests_per_s"] == 20 and s["deployments"][0]["network_gbps"] > 0
    assert "serving" not in runs["--no-serving"]
    u1 = runs["--serving"]["utilization"]["leaf-spine"]
    u0 = runs["--no-serving"]["utilization"]["leaf-spine"]
    assert u1["routed_before"] > u0["routed_before"]
    res = CliRunner().invoke(main, ["budget", "examples/serving-disagg.yaml"])
    assert res.exit_code == 0 and "serving: sized with 2 deployment(s)" in res.output


def test_analyze_tables_side_by_side_with_serving(tmp_path):
    """The tier table with the serving traffic added, under analyze's own routing: the one (prefill, decode)
    pair's KV, 10 x 1000 x 327,680 B/s = 26.2144 Gb/s, loads the prefill NIC's uplink and the decode NIC's
    downlink (0.065536 of 400 Gb/s each), so the endpoint-leaf mean over its 20 links rises by
    2 x 0.065536 / 20 and the serving traffic alone peaks at 0.065536."""
    from topo.cli import main
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_with_job()))
    res = CliRunner().invoke(main, ["analyze", str(p), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    ws = out["with_serving"]
    jobs = {t["tier"]: t for t in out["tiers"]}
    both = {t["tier"]: t for t in ws["tiers"]}
    assert jobs["endpoint-leaf"]["links"] == 20 == both["endpoint-leaf"]["links"]
    assert both["endpoint-leaf"]["util_mean"] - jobs["endpoint-leaf"]["util_mean"] == pytest.approx(2 * 0.065536 / 20)
    assert ws["serving_max_util"] == pytest.approx(0.065536)
    assert ws["max_util"] == pytest.approx(max(out["max_util"], 0.065536))
    res = CliRunner().invoke(main, ["analyze", str(p)])
    assert res.exit_code == 0 and "+serving max" in res.output and "with serving" in res.output
