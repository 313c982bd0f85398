"""The front-end fabric's link budget (`topo budget --fabric front-end`, topo.pipeline.front_end_budget,
and `topo optimize`'s front_end.budget): tapers chosen by hand-checkable figures, the independent
checker rejecting a hand-broken front-end budget, refusals by JSON path, and the shipped example."""
import copy
import json

import pytest
import yaml
from click.testing import CliRunner

from conftest import EXAMPLES, no_crash

EXAMPLE = EXAMPLES / "serving-frontend.yaml"
FE_SWITCH = {"radix": 8, "port_gbps": 400, "power_w": 300, "cost_usd": 8000}
AGENTS = 23              # front-end-only CPU hosts n0001..n0023; the one GPU node is host n0000


def _tiny(rate=1.0, request_bytes=1000, target=0.5):
    """One GPU node (host 0, one 400G front-end NIC) holding the only replica (colocated, tp 8), and a rack
    of 23 CPU agent hosts (one 400G NIC, front-end only) sending ``request_bytes`` per request at ``rate``
    requests/s (no response bytes). Front-end: 2 tiers of radix-8 400G switches, as given 4 down / 4 up
    (6 leaves, 4 spines). Goals: survive none, target utilisation ``target``."""
    return copy.deepcopy({
        "version": 1, "name": "fe-tiny",
        "node_types": [{"name": "gpu", "platform": "hgx-h100"},
                       {"name": "agent", "nics": 1, "nic_gbps": 400, "power_busy_kw": 0.5, "power_idle_kw": 0.2}],
        "racks": [{"name": "r", "count": 1, "nodes": {"gpu": 1}, "power_limit_kw": 25},
                  {"name": "cpu", "count": 1, "nodes": {"agent": AGENTS}, "power_limit_kw": 20}],
        "fabric": {"tiers": [{"switch": "th4-64x400"}, {"switch": "th4-64x400"}]},
        "front_end": {"fabric": {"tiers": [{"switch": FE_SWITCH, "oversubscription": 1}, {"switch": FE_SWITCH}]},
                      "node_types": {"gpu": {"nics": 1, "nic_gbps": 400}, "agent": {"back_end": False}}},
        "goals": {"survive": "none", "target_utilization": target},
        "serving": {"deployments": [{
            "name": "m", "model": {"layers": 32, "hidden_size": 4096, "attention_heads": 32, "kv_heads": 8, "head_dim": 128},
            "load": {"requests_per_s": rate, "prompt_tokens": 100, "output_tokens": 10},
            "colocated": {"replicas": 1, "tp": 8}}],
            "agent_tiers": [{"name": "a", "node_type": "agent", "deployments": ["m"], "request_bytes": request_bytes,
                             "response_bytes": 0}]},
    })


def _load(d):
    from topo.model.spec import from_dict
    return from_dict(d)


def _shape(d: dict) -> tuple:
    """(leaf down ports, leaf up ports, leaves, leaf-spine bundle, spines) of a budget dict."""
    leaf, spine = d["tiers"]
    return leaf["down_ports"], leaf["up_ports"], leaf["switches"], leaf["bundle"], spine["switches"]


def _wire_gbps(c, rate, request_bytes) -> float:
    from topo.model.spec import wire_efficiency
    return rate * request_bytes * 8 / 1e9 / wire_efficiency(c)


def test_tiny_agent_traffic_gets_the_cheapest_legal_taper():
    """1 request/s of 1 kB: by hand the fewest switches the radix allows. 24 hosts on radix 8: 7 down / 1 up
    gives 4 leaves (7, 7, 7, 3 hosts) and one spine (4 leaves x 1 link <= 8 ports), 5 switches; every
    other split needs more leaves or spines. Hosts fill the leaves in order, so leaf 0 holds the GPU host
    and agents 1-6, and the other 17 agents' requests (17/23 of the traffic) enter leaf 0 over its one
    uplink: 17/23 x 8e-6 Gb/s on the wire of a 400G link."""
    from topo.pipeline import front_end_budget
    c = _load(_tiny(rate=1.0, request_bytes=1000))
    r, section = front_end_budget(c, seed=1, workers=1)
    d = r.to_dict()
    assert _shape(d) == (7, 1, 4, 1, 1)
    assert [t["switches_as_given"] for t in d["tiers"]] == [6, 4]
    assert d["utilization"]["leaf-spine"]["routed_after"] == pytest.approx(17 / AGENTS * _wire_gbps(c, 1, 1000) / 400)
    assert d["check"]["ok"] is True
    assert section["deployments"][0]["gbps"] == pytest.approx(8e-6)
    assert section["deployments"][0]["bytes_per_s"] == {"agent_request": pytest.approx(1000.0), "agent_response": 0.0}
    assert section["placement"]["method"] == "cpsat" and section["endpoints"] == AGENTS + 1


def test_heavy_agent_traffic_gets_the_taper_that_keeps_the_target():
    """40,000 requests/s of 1 MB = 320 Gb/s into the GPU host (326.4 Gb/s on the wire). By hand, at target
    0.5 (200 Gb/s a link): 7/1 would put 17/23 x 326.4 = 241 Gb/s (0.60) on leaf 0's one uplink: refused.
    6/2 (4 leaves of 6, bundle 2 to one spine: 4 x 2 = 8 ports, 5 switches) puts the 18 agents off leaf 0
    on its two uplinks: 9/23 x 326.4 = 127.7 Gb/s (0.319), within the target. 5/3 needs 5 leaves and
    3 spines (a bundle of 3 would need 15 spine ports), so 6/2 is the cheapest that keeps it."""
    from topo.pipeline import front_end_budget
    c = _load(_tiny(rate=40000.0, request_bytes=1_000_000))
    wire = _wire_gbps(c, 40000, 1_000_000)
    assert 17 / AGENTS * wire / 400 > 0.5 >= 9 / AGENTS * wire / 400
    r, _ = front_end_budget(c, seed=1, workers=1)
    d = r.to_dict()
    assert _shape(d) == (6, 2, 4, 2, 1)
    assert d["utilization"]["leaf-spine"]["routed_after"] == pytest.approx(9 / AGENTS * wire / 400)
    assert d["check"]["ok"] is True
    cheap, _ = front_end_budget(_load(_tiny(rate=1.0, request_bytes=1000)), seed=1, workers=1)
    assert d["cost"]["chosen"]["capex_usd"] > cheap.to_dict()["cost"]["chosen"]["capex_usd"]


def test_checker_rejects_a_hand_broken_front_end_budget():
    """The heavy budget's chosen front-end with the leaf taper set back to 7:1 by hand: the independent
    checker routes the agent flows on it and finds leaf 0's uplink at 17/23 x 326.4 / 400 = 0.60 > 0.5;
    the budget as chosen passes the same check."""
    import numpy as np
    from topo.model.frontend_build import for_fabric
    from topo.model.spec import from_dict, wire_efficiency
    from topo.pipeline import front_end_budget
    from topo.solve import budget_check
    from topo.traffic.serving import agent_traffic
    c = _load(_tiny(rate=40000.0, request_bytes=1_000_000))
    r, _ = front_end_budget(c, seed=1, workers=1)
    fc, front = for_fabric(c, "front-end")
    from topo.model.fabric import build
    reps = {("m", "colocated"): np.arange(8, dtype=np.int64).reshape(1, 8)}
    dem = agent_traffic(c, build(c), fc, front, reps).demands
    eff = wire_efficiency(fc)
    good = from_dict(r.cluster_after)
    assert budget_check.check(good, dem, survive="none", target_util=0.5, efficiency=eff)["ok"] is True
    broken = copy.deepcopy(r.cluster_after)
    broken["fabric"]["tiers"][0]["oversubscription"] = 7.0
    broken["fabric"]["tiers"][0]["bundle"] = 1
    chk = budget_check.check(from_dict(broken), dem, survive="none", target_util=0.5, efficiency=eff)
    assert chk["ok"] is False
    assert any(p.startswith("leaf-spine links at 0.60") and "above the target 0.5" in p for p in chk["problems"]), \
        chk["problems"]


@pytest.mark.parametrize("edit, path", [
    (lambda d: d.pop("front_end"), "front_end"),
    (lambda d: d["serving"].pop("agent_tiers"), "serving.agent_tiers"),
    (lambda d: d.pop("serving"), "serving.deployments"),
    (lambda d: d["front_end"]["fabric"].update(tiers=[{"switch": "th4-64x400"}]), "front_end.fabric.tiers"),
    (lambda d: d["goals"].update(survive="plane"), "goals.survive"),
])
def test_library_refusals_name_the_field(edit, path):
    from topo.core.errors import SpecError
    from topo.pipeline import front_end_budget
    d = _tiny()
    edit(d)
    with pytest.raises(SpecError) as e:
        front_end_budget(_load(d), seed=1, workers=1)
    assert path in dict(e.value.errors), e.value.errors


@pytest.mark.parametrize("args, path", [
    (["--for-transport"], "--for-transport"),
    (["--scenario", "jobs"], "--scenario"),
    (["--scenario", "uniform=100"], "--scenario"),
    (["--min-bisection", "10"], "--min-bisection"),
    (["--no-serving"], "--no-serving"),
    (["--max-oversubscription", "spine=2"], "--max-oversubscription"),
])
def test_cli_refusals_name_the_option(tmp_path, args, path):
    """Options that concern jobs or accelerators are refused with the front-end (exit 2, no traceback);
    a cap the front-end's tiers cannot have names the option too."""
    from topo.cli import main
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_tiny(rate=40000.0, request_bytes=1_000_000)))
    r = CliRunner().invoke(main, ["budget", str(p), "--fabric", "front-end", "--seed", "1", "--workers", "1", *args])
    assert no_crash(r) and r.exit_code == 2, r.output
    assert path + ":" in r.output and "Traceback" not in r.output


def test_cli_json_and_file_after(tmp_path):
    """`topo budget --fabric front-end --json -o`: the same budget as the library; its cluster_after is the
    cluster file itself (GPU node type, serving) with the chosen front-end tiers, which loads and builds."""
    from topo.cli import main
    from topo.model.frontend_build import for_fabric
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_tiny(rate=40000.0, request_bytes=1_000_000)))
    out = tmp_path / "b.json"
    r = CliRunner().invoke(main, ["budget", str(p), "--fabric", "front-end", "--seed", "1", "--workers", "1",
                                  "--json", "-o", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert d == json.loads(r.output)
    assert d["fabric"] == "front-end" and _shape(d) == (6, 2, 4, 2, 1)
    after = _load(d["cluster_after"])
    assert after.file.serving.deployments[0].name == "m" and after.node_types["gpu"].accelerators == 8
    assert [int(x) for x in for_fabric(after, "front-end")[1].tier_switch_counts] == [4, 1]
    r = CliRunner().invoke(main, ["budget", str(p), "--fabric", "front-end", "--seed", "1", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "front-end fabric (24 host endpoints): sized for the agent tiers' request and response traffic of " \
           "1 deployment(s) at their stated rates (replicas by CP-SAT, OPTIMAL): m 40000 req/s (320 Gb/s)" in r.output
    assert "independent check (fluid routing of the rebuilt fabric): passed" in r.output


def test_optimize_sizes_the_front_end():
    """`topo optimize` (library) on the heavy tiny cluster: the plan's front_end.budget is the budget
    above, its chosen tiers are cluster_file_after's front_end.fabric, and the front-end loads are routed on
    them (4 leaves and 1 spine: 4 x 2 leaf-spine links + 24 host links)."""
    from topo.cli.app import front_end_budget_line, front_end_budget_summary
    from topo.io.plan import typed
    from topo.pipeline import optimize
    plan = optimize(_load(_tiny(rate=40000.0, request_bytes=1_000_000)), failures=False, seed=1, workers=1,
                    time_limit=5)
    fe = plan["front_end"]
    assert _shape(fe["budget"]) == (6, 2, 4, 2, 1)
    assert fe["budget"]["check"]["ok"] is True and "cluster_after" not in fe["budget"]
    assert fe["tier_switch_counts"] == [4, 1] and fe["links"] == 24 + 8
    tiers = plan["cluster_file_after"]["front_end"]["fabric"]["tiers"]
    assert tiers[0]["oversubscription"] == 3.0 and tiers[0]["bundle"] == 2
    assert plan["cluster_file"]["front_end"]["fabric"]["tiers"][0]["oversubscription"] == 1
    assert typed(plan).front_end.budget.objective == "cost"
    line = front_end_budget_line(front_end_budget_summary(fe))
    assert line.startswith("front-end budget (optimal, cost, target 0.5): leaf 4 x tier0-switch at 3:1 (was 6 at 1:1), "
                           "spine 1 x tier1-switch at 1:1 (was 4 at 1:1); routed peak leaf-spine 31.9%"), line


def _example_two_tier(tmp_path):
    """The shipped example with a 2-tier front-end (its own is one switch, which has no uplinks to budget)."""
    d = yaml.safe_load(EXAMPLE.read_text())
    d["front_end"]["fabric"]["tiers"] = [{"switch": "th4-64x400", "oversubscription": 3}, {"switch": "th4-64x400"}]
    p = tmp_path / "fe2.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def test_example_through_budget_and_optimize(tmp_path):
    """The shipped example: `topo budget --fabric front-end` refuses its one-tier front-end by path;
    `topo optimize` says the front-end budget was not sized and why. With a 2-tier front-end the budget
    carries the agent tier's 200 req/s x (256 KiB + 16 KiB) = 0.4456 Gb/s: all 24 hosts fit one leaf at
    63 down / 1 up, so no flow crosses a spine, and the check passes."""
    from topo.cli import main
    r = CliRunner().invoke(main, ["budget", str(EXAMPLE), "--fabric", "front-end", "--time-limit", "2"])
    assert no_crash(r) and r.exit_code == 2, r.output
    assert "front_end.fabric.tiers: a one-tier fabric has no uplinks to budget" in r.output
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["optimize", str(EXAMPLE), "-o", str(out), "--no-failures", "--time-limit", "2"])
    assert r.exit_code == 0, r.output
    assert "front-end budget: not sized (front_end.fabric.tiers: a one-tier fabric has no uplinks to budget)" in r.output
    plan = json.loads((out / "plan.json").read_text())
    assert plan["front_end"]["budget"] is None and plan["front_end"]["budget_not_sized"].startswith("front_end.fabric")
    r = CliRunner().invoke(main, ["budget", str(_example_two_tier(tmp_path)), "--fabric", "front-end", "--json",
                                  "--time-limit", "2"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert _shape(d) == (63, 1, 1, 1, 1)
    assert d["front_end"]["deployments"][0]["gbps"] == pytest.approx(200 * (256 + 16) * 1024 * 8 / 1e9)
    assert d["utilization"]["leaf-spine"]["routed_after"] == 0.0 and d["check"]["ok"] is True


def test_cli_takes_the_replicas_from_a_placement_file(tmp_path):
    """`--placement` (a `topo place -o` file): the replicas where it puts them, the same budget."""
    from topo.cli import main
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_tiny(rate=40000.0, request_bytes=1_000_000)))
    pl = tmp_path / "place.json"
    r = CliRunner().invoke(main, ["place", str(p), "-o", str(pl), "--seed", "1", "--workers", "1"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["budget", str(p), "--fabric", "front-end", "--placement", str(pl), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["front_end"]["placement"]["method"] == "given" and d["placement"] == str(pl)
    assert _shape(d) == (6, 2, 4, 2, 1)
