"""Goodput under failures (topo.study.goodput): closed forms, the Monte Carlo twin, blast radius,
the published 16,384-GPU run, the worst-failure ranking and the command line."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import EXAMPLES, cluster_dict, sw
from topo.cli import main
from topo.core.errors import SpecError
from topo.model.fabric import REACH_NAMES
from topo.model.spec import LLAMA3_JOB_LINKS, from_dict, load
from topo.study import goodput as G

# every rate 0; the reach classes left unset, so they take cable_per_hour / optic_per_hour
ZERO = {**{f: 0.0 for c, f in G._RATE_FIELD.items() if c not in REACH_NAMES}, "cable_per_hour": 0.0,
        "optic_per_hour": 0.0}


def _cluster(n_racks=4, nodes_per_rack=2, jobs=(), rates=None, **kw):
    d = cluster_dict(n_racks=n_racks, nodes_per_rack=nodes_per_rack,
                     tiers=[{"switch": sw(32)}, {"switch": sw(32)}], **kw)
    d["jobs"] = [{"name": n, "accelerators": a, "tp": 8, "collectives": [{"op": "allreduce", "group": "dp",
                                                                          "bytes": "1GiB"}]} for n, a in jobs]
    d["failure_rates"] = dict(ZERO, **(rates or {}))
    return from_dict(d)


# --- closed forms ---------------------------------------------------------------------------
def test_rates_of_independent_components_add():
    r = {"accelerator_per_hour": 1e-5, "hbm_per_hour": 2e-6, "host_per_hour": 3e-5, "nic_per_hour": 4e-7,
         "power_feed_per_hour": 5e-6}
    c = _cluster(jobs=[("a", 16)], rates=r)
    res = G.goodput(c, checkpoint_s=10, restart_s=60)
    j = res.jobs[0]
    cs = j["components_stopping"]
    assert cs["accelerator"] == 16 and cs["host"] == 2 and cs["nic"] == 16 and cs["power_feed"] == 1
    want = 16 * (1e-5 + 2e-6) + 2 * 3e-5 + 16 * 4e-7 + 1 * 5e-6
    assert j["stopping_per_hour"] == pytest.approx(want, rel=1e-12)
    assert j["mtbi_h"] == pytest.approx(1 / want)
    assert j["interruptions"] == pytest.approx(want * 30 * 24)


def test_twice_the_nodes_twice_the_node_caused_rate():
    r = {"accelerator_per_hour": 1e-5, "host_per_hour": 3e-5}
    c = _cluster(jobs=[("small", 16), ("big", 32)], rates=r)
    rows = {j["name"]: j for j in G.goodput(c, checkpoint_s=10, restart_s=60).jobs}
    assert rows["big"]["stopping_per_hour"] == pytest.approx(2 * rows["small"]["stopping_per_hour"])


def test_young_interval_and_goodput_closed_forms():
    m, c, r = 30 * 3600.0, 30.0, 300.0
    tau = G.young_interval(m, c)
    assert tau == pytest.approx(math.sqrt(2 * m * c))
    assert G.daly_interval(m, c) == pytest.approx(math.sqrt(2 * m * c) - c)
    g = G.goodput_exact(m, c, r, tau)
    # first order agrees when C, R, tau << M, up to second-order terms, O((tau/M)^2)
    assert g == pytest.approx(G.goodput_first_order(m, c, r, tau), abs=(tau / m) ** 2)
    assert g != pytest.approx(G.goodput_first_order(m, c, r, tau), abs=1e-6)
    # Young's interval is close to the best interval of the exact model
    grid = np.linspace(0.3 * tau, 3 * tau, 400)
    best = max(G.goodput_exact(m, c, r, t) for t in grid)
    assert g >= best - 1e-3
    # nothing fails: only checkpoint time is lost
    assert G.goodput_exact(math.inf, c, r, 90.0) == pytest.approx(90 / 120)
    # the job's figure is the closed form at its own MTBI
    cl = _cluster(jobs=[("a", 16)], rates={"accelerator_per_hour": 1e-4})
    j = G.goodput(cl, checkpoint_s=c, restart_s=r).jobs[0]
    mj = 3600 / j["stopping_per_hour"]
    assert j["checkpoint_interval_s"] == pytest.approx(math.sqrt(2 * mj * c))
    assert j["goodput"] == pytest.approx(G.goodput_exact(mj, c, r, math.sqrt(2 * mj * c)))


def test_monte_carlo_twin_agrees_within_its_interval():
    m, c, r = 3600.0, 30.0, 300.0
    tau = G.young_interval(m, c)
    wall = 400 * 3600.0
    mc = G.monte_carlo(m, c, r, tau, wall, trials=200, seed=3)
    lo, hi = mc["goodput_ci95"]
    assert lo <= G.goodput_exact(m, c, r, tau) <= hi
    flo, fhi = mc["interruptions_ci95"]
    assert flo <= wall / m <= fhi
    assert G.monte_carlo(m, c, r, tau, wall, trials=20, seed=3) == G.monte_carlo(m, c, r, tau, wall, trials=20, seed=3)


def test_monte_carlo_detects_a_wrong_model():
    """The twin is sharp enough to fail: a goodput off by 1% is outside its interval."""
    m, c, r = 3600.0, 30.0, 300.0
    tau = G.young_interval(m, c)
    mc = G.monte_carlo(m, c, r, tau, 400 * 3600.0, trials=200, seed=3)
    lo, hi = mc["goodput_ci95"]
    assert not lo <= G.goodput_exact(m, c, r, tau) - 0.01 <= hi


def test_checkpoint_times_derived_or_stated():
    ck = G.checkpoint_times(checkpoint_gb=100, storage_gbps=400, restart_overhead_s=60)
    assert ck.write_s == pytest.approx(2.0) and ck.restart_s == pytest.approx(62.0)
    for kw, path in (({"checkpoint_gb": 100}, "storage_gbps"), ({"checkpoint_s": 10}, "restart_s"),
                     ({"checkpoint_s": -1, "restart_s": 1}, "checkpoint_s"),
                     ({"checkpoint_s": 1, "restart_s": 1, "checkpoint_gb": 1, "storage_gbps": 1}, "checkpoint_s")):
        with pytest.raises(SpecError) as ei:
            G.checkpoint_times(**kw)
        assert ei.value.errors[0][0] == path


def test_checkpoint_from_the_cluster_file_and_missing():
    c = _cluster(jobs=[("a", 16)], rates={"accelerator_per_hour": 1e-4, "checkpoint_s": 20, "restart_s": 100})
    res = G.goodput(c)
    assert res.checkpoint["write_s"] == 20 and res.jobs[0]["goodput"] is not None
    c2 = _cluster(jobs=[("a", 16)], rates={"accelerator_per_hour": 1e-4})
    res2 = G.goodput(c2)
    assert res2.jobs[0]["goodput"] is None and res2.jobs[0]["mtbi_h"] is not None
    with pytest.raises(SpecError) as ei:
        G.goodput(c2, monte_carlo_trials=10)
    assert ei.value.errors[0][0] == "monte_carlo_trials"
    with pytest.raises(SpecError) as ei:
        G.goodput(c2, run_days=0)
    assert ei.value.errors[0][0] == "run_days"


# --- stopping vs degrading ------------------------------------------------------------------
def test_links_above_the_leaves_degrade_and_single_links_stop():
    c = _cluster(jobs=[("a", 64)], rates={"optic_per_hour": 1e-6, "cable_per_hour": 1e-6, "spine_per_hour": 1e-6})
    j = G.goodput(c, checkpoint_s=1, restart_s=1).jobs[0]
    st, dg = j["components_stopping"], j["components_degrading"]
    # one port per endpoint: its link stops the job; the leaves' uplinks and the spines degrade it
    links = ("dac", "aec", "mmf", "smf_dr", "smf_fr")
    assert sum(st.get(r, 0) for r in links) == 64
    assert "spine" not in st and dg.get("spine", 0) > 0
    assert sum(dg.get(r, 0) for r in links) > 0
    assert j["degrading_per_hour"] == pytest.approx(1e-6 * (sum(dg.get(r, 0) for r in links) + dg["spine"]))


def test_a_job_under_one_leaf_needs_nothing_above_it():
    c = _cluster(jobs=[("a", 8)], rates={"optic_per_hour": 1e-6})
    j = G.goodput(c, checkpoint_s=1, restart_s=1).jobs[0]
    assert j["leaves"] == 1 and not j["components_degrading"]


# --- blast radius -----------------------------------------------------------------------------
def test_blast_radius_matches_brute_force():
    c = _cluster(n_racks=4, nodes_per_rack=2, jobs=[("a", 24), ("b", 16), ("c", 8)],
                 rates={"accelerator_per_hour": 1e-5})
    from topo.model.fabric import build
    from topo.study.failures import resolve_placement
    f = build(c)
    res = G.goodput(c, f, checkpoint_s=1, restart_s=1)
    pl, _ = resolve_placement(c, f, None)
    er = f.ep_rack()
    size = {k: len(v) for k, v in pl.items()}
    per_rack = []
    for r in range(f.n_racks):
        jobs = {k for k, v in pl.items() if np.isin(v, np.flatnonzero(er == r)).any()}
        per_rack.append((len(jobs), sum(size[k] for k in jobs)))
    b = res.blast_radius["rack"]
    assert b["max_jobs_stopped"] == max(x[0] for x in per_rack)
    assert b["max_accelerators_stopped"] == max(x[1] for x in per_rack)
    assert b["mean_accelerators_stopped"] == pytest.approx(np.mean([x[1] for x in per_rack]))


# --- the published 16,384-GPU run --------------------------------------------------------------
def test_llama3_run_reproduced():
    """Llama 3 405B pre-training: 419 unexpected interruptions in 54 days on 16,384 GPUs, over 90%
    effective training time. Every rate but the links' comes from the published counts; the link rate
    is the network count spread over the links the job depends on, so stopping + degrading must give
    back 419, and the stopping count alone must lie within Poisson 2 sigma of it."""
    c = load(EXAMPLES / "meta-llama3-24k-roce.yaml")
    res = G.goodput(c, run_days=54, checkpoint_s=30, restart_s=300)
    j = res.jobs[0]
    assert j["accelerators"] == 16384 and j["hosts"] == 2048
    links = sum(j["components_stopping"].get(k, 0) + j["components_degrading"].get(k, 0) for k in ("dac", "aec", "mmf", "smf_dr", "smf_fr"))
    assert links == LLAMA3_JOB_LINKS
    assert j["interruptions"] + j["degraded_events"] == pytest.approx(419, abs=1e-6)
    assert abs(j["interruptions"] - 419) <= 2 * math.sqrt(419)
    assert j["goodput"] > 0.90   # published: "more than 90% effective training time"
    slower = G.goodput(c, run_days=54, checkpoint_s=60, restart_s=600).jobs[0]
    assert slower["goodput"] < 0.90  # the figure depends on the checkpoint and restart times (README)


# --- worst failure ranking ---------------------------------------------------------------------
def test_worst_failure_ranked_by_jobs_stopped_first():
    from topo.study.failures import rank_single, severity
    spine = {"kind": "switch", "name": "spine0", "bandwidth_lost_frac": {"leaf-spine": 0.5}, "endpoints_down": 0,
             "endpoints_isolated": 0, "jobs_lost_ranks": [], "slowdown": {"uec-spray": {"a": 1.8}}}
    leaf = {"kind": "switch", "name": "leaf0", "bandwidth_lost_frac": {"leaf-spine": 0.02}, "endpoints_down": 0,
            "endpoints_isolated": 8, "jobs_lost_ranks": ["a"], "slowdown": {"uec-spray": {"a": None}}}
    leaf_idle = dict(leaf, name="leaf1", jobs_lost_ranks=[], slowdown={}, endpoints_isolated=8)
    link = {"kind": "link", "name": "x", "bandwidth_lost_frac": {"leaf-spine": 0.9}, "endpoints_down": 0,
            "endpoints_isolated": 0, "jobs_lost_ranks": [], "slowdown": {"uec-spray": {"a": 1.1}}}
    assert [r["name"] for r in rank_single([link, spine, leaf_idle, leaf])] == ["leaf0", "leaf1", "spine0", "x"]
    assert severity(leaf)[0] == 1


def test_failure_analysis_names_the_worst_by_jobs():
    from topo.study.failures import analyze_failures
    c = load(EXAMPLES / "small.yaml")
    d = analyze_failures(c, traffic=False).to_dict()
    w = d["worst_single"]
    assert w["jobs_stopped"] and w["endpoints_cut_off"] > 0
    assert max(len(r["jobs_lost_ranks"]) for r in d["single"]) == len(w["jobs_stopped"])


# --- command line and API ----------------------------------------------------------------------
def test_cli_and_api():
    import topo
    assert topo.goodput is G.goodput
    r = CliRunner().invoke(main, ["goodput", str(EXAMPLES / "small.yaml"), "--checkpoint-s", "20", "--restart-s",
                                  "120", "--run-days", "10", "--monte-carlo", "20", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert {j["name"] for j in d["jobs"]} == {"llm-a", "moe-b", "ft-c"}
    assert d["monte_carlo"]["trials"] == 20 and d["run_days"] == 10
    r = CliRunner().invoke(main, ["goodput", str(EXAMPLES / "small.yaml"), "--checkpoint-gb", "10"])
    assert r.exit_code == 2 and "--storage-gbps" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["goodput", str(EXAMPLES / "small.yaml"), "--run-days", "0"])
    assert r.exit_code == 2
    r = CliRunner().invoke(main, ["goodput", str(EXAMPLES / "small.yaml")])
    assert r.exit_code == 0 and "goodput not computed" in r.output


def test_degraded_failures_take_their_slowdown_from_the_failure_analysis():
    from topo.study.failures import analyze_failures
    d = cluster_dict(n_racks=4, nodes_per_rack=2, tiers=[{"switch": sw(32), "oversubscription": 2}, {"switch": sw(32)}])
    d["jobs"] = [{"name": "a", "accelerators": 64, "tp": 8,
                  "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1GiB"}]}]
    c = from_dict(d)
    f = analyze_failures(c, traffic=True, kinds=("switch", "link", "plane"))
    worst = max(v for r in f.single if r["kind"] in ("switch", "link") for per in r["slowdown"].values()
                for v in per.values() if v is not None)
    j = G.goodput(c, failures=f, checkpoint_s=10, restart_s=60, repair_hours=24).jobs[0]
    assert worst > 1 and j["worst_degraded_slowdown"] == pytest.approx(worst)
    frac = min(1.0, j["degrading_per_hour"] * 24)
    assert j["goodput_with_degraded"] == pytest.approx(j["goodput"] * (1 - frac * (1 - 1 / worst)))
    assert G.goodput(c, checkpoint_s=10, restart_s=60, repair_hours=24).jobs[0]["worst_degraded_slowdown"] is None


# --- hot spares (CP-SAT, independently checked) -------------------------------------------------------
def _spare_cluster(limit_kw=100):
    d = cluster_dict(n_racks=4, nodes_per_rack=2, tiers=[{"switch": sw(32)}, {"switch": sw(32)}])
    d["racks"][0]["power_limit_kw"] = limit_kw
    d["jobs"] = [{"name": "a", "accelerators": 8, "tp": 8, "collectives": [{"op": "allreduce", "group": "tp",
                                                                           "bytes": "1GiB"}]}]
    return from_dict(d)


def test_spares_meet_the_target_at_least_cost():
    c = _spare_cluster()
    for scope, held in (("rack", 8), ("pod", 8)):
        sp = G.choose_spares(c, scope=scope, per_domain=1, time_limit=5, seed=0, workers=1)
        assert sp["status"] == "OPTIMAL" and not sp["short"]
        assert sp["accelerators_held"] == held == sp["check"]["lower_bound_accelerators"]
        assert sp["check"]["ok"]
    sp = G.choose_spares(c, scope="rack", per_domain=2, time_limit=5, seed=0, workers=1)
    assert sp["short"] == [{"domain": "rack000", "node_type": "gpu", "missing": 1}]   # one idle node in its rack


def test_spares_respect_rack_power():
    # the job's node busy (10 kW) and one idle (2 kW): 12 kW; a busy spare would need 20 kW
    c = _spare_cluster(limit_kw=15)
    sp = G.choose_spares(c, scope="rack", per_domain=1, time_limit=5, seed=0, workers=1)
    assert sp["spare_nodes"] == 0 and sp["short"][0]["missing"] == 1
    assert G.goodput(c, checkpoint_s=1, restart_s=1, spares_scope="rack", time_limit=5).spares["spare_nodes"] == 0


def test_spare_checker_refuses_a_bad_choice():
    c = _spare_cluster(limit_kw=15)
    from topo.model.fabric import build
    f = build(c)
    used = np.zeros(f.n_servers, bool)
    used[0] = True
    cand = ~used
    dom = f.server_rack.astype(np.int64)
    kw = np.bincount(f.server_rack, weights=np.where(used, f.server_busy_kw, f.server_idle_kw), minlength=f.n_racks)
    stype = f.server_type.astype(np.int64)
    bad = G.check_spares(f, np.array([1]), used, cand, dom, stype, kw, 1, [((0, 0), 0)])
    assert not bad["ok"] and "over their limit" in bad["problems"][0]
    assert not G.check_spares(f, np.array([0]), used, cand, dom, stype, kw, 1, [((0, 0), 0)])["ok"]
    assert not G.check_spares(f, np.zeros(0, np.int64), used, cand, dom, stype, kw, 1, [((0, 0), 0)])["ok"]
    with pytest.raises(SpecError) as ei:
        G.choose_spares(c, scope="plane")
    assert ei.value.errors[0][0] == "scope"


def test_cli_spares():
    r = CliRunner().invoke(main, ["goodput", str(EXAMPLES / "small.yaml"), "--spares", "pod", "--json"])
    assert r.exit_code == 0, r.output
    sp = json.loads(r.output)["spares"]
    assert sp["check"]["ok"] and sp["scope"] == "pod"


def test_report_section_from_a_plan():
    from topo.io.report import _goodput_section
    c = load(EXAMPLES / "small.yaml")
    plan = {"goodput": G.goodput(c, checkpoint_s=30, restart_s=300).to_dict()}
    s = _goodput_section(plan)
    assert not s.missing and len(s.tables) == 2 and [f.id for f in s.figures] == ["fig-goodput"]
    assert "Checkpoint write 30 s" in s.paragraphs[0]
    assert _goodput_section({}).missing == "goodput not computed"


# --- one rate per reach class ------------------------------------------------------------------
def test_rates_per_reach_class_add_up():
    """Every reach class has its own rate; a class without one takes its family's (copper: cable_per_hour,
    optics: optic_per_hour); a job's link rate is the sum over classes of its links x the class rate."""
    c = _cluster(jobs=[("a", 64)], rates={"dac_per_hour": 1e-6, "cable_per_hour": 3e-6, "optic_per_hour": 5e-6,
                                          "smf_fr_per_hour": 7e-6})
    rates = G.rates_of(c)
    assert rates["dac"] == 1e-6 and rates["aec"] == 3e-6
    assert rates["mmf"] == rates["smf_dr"] == 5e-6 and rates["smf_fr"] == 7e-6
    src = G.rate_sources(c)
    assert src["dac"] == "dac_per_hour" and src["aec"].startswith("cable_per_hour (derived")
    j = G.goodput(c, checkpoint_s=1, restart_s=1).jobs[0]
    st, dg = j["components_stopping"], j["components_degrading"]
    assert j["stopping_per_hour"] == pytest.approx(sum(st.get(r, 0) * rates[r] for r in REACH_NAMES))
    assert j["degrading_per_hour"] == pytest.approx(sum(dg.get(r, 0) * rates[r] for r in REACH_NAMES))
    # one class's rate moves only that class's share
    c2 = _cluster(jobs=[("a", 64)], rates={"dac_per_hour": 2e-6, "cable_per_hour": 3e-6, "optic_per_hour": 5e-6,
                                           "smf_fr_per_hour": 7e-6})
    j2 = G.goodput(c2, checkpoint_s=1, restart_s=1).jobs[0]
    assert j2["stopping_per_hour"] - j["stopping_per_hour"] == pytest.approx(1e-6 * st.get("dac", 0))
    # files that state only the family rates keep working, with the same figures as before
    fr = from_dict(cluster_dict(n_racks=1, nodes_per_rack=1)).file.failure_rates
    assert fr.dac_per_hour is None and fr.cable_per_hour == fr.optic_per_hour == pytest.approx(
        35 / (LLAMA3_JOB_LINKS * 1_296))


def test_optimize_holds_the_spares_back():
    from topo.pipeline import optimize
    d = load(EXAMPLES / "small.yaml").file.model_dump(mode="json")
    d["goals"]["spares"] = {"per": "pod", "per_domain": 1}
    c = from_dict(d, base_dir=str(EXAMPLES))
    plan = optimize(c, failures=False)
    pl = plan["placement"] if isinstance(plan, dict) else plan.to_dict()["placement"]
    sp = pl["spares"]
    assert sp["check"]["ok"] and pl["reserved"] == sp["spares"] and sp["spare_nodes"] >= 1
    f = __import__("topo.model.fabric", fromlist=["build"]).build(c)
    used = {f.server_name(int(s)) for e in pl["assignment"].values() for s in np.unique(f.ep_server[np.asarray(e)])}
    assert not used & set(sp["spares"])
