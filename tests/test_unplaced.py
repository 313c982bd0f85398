"""A queue larger than the free capacity: every stage continues with the placed jobs and
names the others; `topo place -o` chains into `topo analyze/budget --placement`."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from conftest import EXAMPLES, no_crash
from topo.cli.app import main

# small.yaml has 128 GPUs, 8 of them on the busy node n0003: 120 free. Its jobs take
# 64 + 32 + 16 = 112; one more of 32 does not fit. It comes first in the file and first by
# name, but has the lowest priority, so it is the one left out.
EXTRA = {"name": "aaa-x", "accelerators": 32, "tp": 8, "priority": -1,
         "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1GiB"}]}
LINE = "unplaced: aaa-x (needs 32 accelerators; 8 free)"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def over(tmp_path_factory):
    d = yaml.safe_load((EXAMPLES / "small.yaml").read_text())
    d["jobs"].insert(0, dict(EXTRA))
    p = tmp_path_factory.mktemp("over") / "over.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


@pytest.fixture(scope="module")
def placed(over):
    """`topo place -o` of the over-full queue, with its own routing of the placed jobs."""
    out = over.parent / "placement.json"
    r = run("place", over, "-o", out, "--force", "--route", "--workers", 1, "--time-limit", 5, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert set(d["unplaced"]) == {"aaa-x"} and set(d["assignment"]) == {"llm-a", "moe-b", "ft-c"}
    return out, d


def test_fit_in_order_by_priority_then_file_order(small_cluster):
    from topo.model.fabric import build
    from topo.traffic.demand import fit_in_order
    from topo.model.spec import from_dict
    from topo.traffic.demand import in_order_placement
    f = build(small_cluster)
    # a queue that fits: exactly the in-order placement
    full, left = fit_in_order(small_cluster, f)
    ref = in_order_placement(small_cluster, f)
    assert not left and list(full) == list(ref) and all((full[k] == ref[k]).all() for k in ref)
    # two jobs of 64 on 120 free accelerators: the higher priority, then file order (the queue's) decides
    job = lambda n, prio=0: {"name": n, "accelerators": 64, "tp": 8, "priority": prio,
                             "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1GiB"}]}
    base = yaml.safe_load((EXAMPLES / "small.yaml").read_text())
    for jobs, kept in (([job("b"), job("a")], "b"), ([job("a"), job("b")], "a"), ([job("a"), job("b", 1)], "b")):
        c = from_dict(dict(base, jobs=jobs))
        pl, left = fit_in_order(c, f)
        assert list(pl) == [kept] and (pl[kept] == in_order_placement(from_dict(dict(base, jobs=[job(kept)])), f)[kept]).all()
        assert left == {({"a", "b"} - {kept}).pop(): {"accelerators": 64, "free": 120 - 64}}


def test_optimize_continues_and_names_the_unplaced(over, tmp_path):
    out = tmp_path / "out"
    r = run("optimize", over, "-o", out, "--no-failures", "--time-limit", 3, "--workers", 1, "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["placement"]["placed"] == 3 and list(s["placement"]["unplaced"]) == ["aaa-x"]
    assert set(s["jobs"]) == {"llm-a", "moe-b", "ft-c"}
    plan = json.loads((out / "plan.json").read_text())
    assert list(plan["placement"]["unplaced"]) == ["aaa-x"]
    # the in-order "before" leaves out the same job (lowest priority) and says so
    assert plan["metrics_before"]["unplaced"] == {"aaa-x": {"accelerators": 32, "free": 8}}
    assert {j["name"] for j in plan["metrics_before"]["jobs"]} == {"llm-a", "moe-b", "ft-c"}
    assert plan["budget"]["unplaced"]["aaa-x"]["accelerators"] == 32
    assert "aaa-x" in (out / "report.md").read_text()
    from topo.io.plan import load_plan
    load_plan(out / "plan.json")  # still a valid plan


def test_analyze_continues_and_names_the_unplaced(over):
    r = run("analyze", over, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["unplaced"] == {"aaa-x": {"accelerators": 32, "free": 8}}
    assert {j["name"] for j in d["jobs"]} == {"llm-a", "moe-b", "ft-c"}
    assert LINE in r.stderr
    r = run("analyze", over)
    assert r.exit_code == 0, r.output
    assert LINE in r.stdout


def test_budget_continues_and_names_the_unplaced(over):
    r = run("budget", over, "--json", "--time-limit", 5, "--workers", 1)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["unplaced"] == {"aaa-x": {"accelerators": 32, "free": 8}}
    assert LINE in r.stderr
    r = run("budget", over, "--time-limit", 5, "--workers", 1)
    assert r.exit_code == 0, r.output
    assert LINE in r.stdout


def test_sweep_records_unplaced_jobs_per_design_point(over, tmp_path):
    from topo.study.sweep import run_sweep
    sw = tmp_path / "s.yaml"
    sw.write_text(yaml.safe_dump({"version": 1, "name": "over", "base": str(over), "seed": 3,
                                  "grid": {"placement": ["in_order", "optimized"]}, "failures": ["none"]}))
    res = run_sweep(sw, tmp_path / "out", workers=1)
    rows = res["rows"]
    assert len(rows) == 2
    for r in rows:
        assert r["status"] == "ok", r["message"]
        assert json.loads(r["unplaced"]) == ["aaa-x"] and r["unplaced_accelerators"] == 32
        assert r["completion_time_s"] > 0
    with open(tmp_path / "out" / "results.csv", newline="") as fh:
        assert [json.loads(r["unplaced"]) for r in csv.DictReader(fh)] == [["aaa-x"], ["aaa-x"]]
    assert "aaa-x" in (tmp_path / "out" / "report.md").read_text()


def test_pareto_front_prefers_designs_that_place_every_job():
    from topo.study.sweep import pareto_front
    row = lambda cost, t, left: {"status": "ok", "scenario": "none", "network_cost_usd": cost, "total_kw": 1.0,
                                 "completion_time_s": t, "unplaced_accelerators": left}
    rows = [row(10.0, 1.0, 0), row(5.0, 0.5, 32)]  # the second runs less work: it must not win
    assert pareto_front(rows, healthy_only=True) == [0]
    assert pareto_front([row(5.0, 0.5, 32), row(6.0, 0.4, 64)], healthy_only=True) == [0]


def test_place_output_chains_into_analyze_with_the_same_figures(over, placed):
    path, d = placed
    r = run("analyze", over, "--placement", path, "--json")
    assert r.exit_code == 0, r.output
    a = json.loads(r.stdout)
    assert a["placement"] == str(path) and set(a["unplaced"]) == {"aaa-x"}
    assert LINE in r.stderr
    routed = d["routed"]["jobs"]
    assert {j["name"]: {k: j[k] for k in ("time_s", "ideal_s", "slowdown", "busbw_gbps")} for j in a["jobs"]} == routed
    # and differs from the in-order placement it replaces
    io = json.loads(run("analyze", over, "--json").stdout)
    assert {j["name"]: j["time_s"] for j in io["jobs"]} != {k: v["time_s"] for k, v in routed.items()}


def test_place_output_chains_into_budget(over, placed):
    from topo.model.fabric import build
    from topo.solve.linkbudget import budget
    from topo.model.spec import load
    path, d = placed
    r = run("budget", over, "--placement", path, "--json", "--time-limit", 5, "--workers", 1)
    assert r.exit_code == 0, r.output
    b = json.loads(r.stdout)
    assert b["placement"] == str(path) and set(b["unplaced"]) == {"aaa-x"}
    c = load(over)
    ref = budget(c, build(c), placement={k: np.asarray(v) for k, v in d["assignment"].items()},
                 time_limit=5, workers=1).to_dict()
    for k in ("utilization", "tiers", "cost", "unplaced"):
        assert b[k] == json.loads(json.dumps(ref[k])), k


def _write(tmp_path, data, raw=None):
    p = tmp_path / "bad.json"
    if raw is not None:
        p.write_bytes(raw)
    else:
        p.write_text(json.dumps(data))
    return p


def _free_gpu_node(d):
    """A GPU node of small.yaml that is neither busy nor used by the placement."""
    from topo.model.fabric import build
    from topo.model.spec import load
    f = build(load(EXAMPLES / "small.yaml"))
    gpu = np.bincount(f.ep_server, weights=f.ep_is_accel, minlength=f.n_servers) > 0
    used = {n for v in d["nodes"].values() for n in v} | {"n0003"}
    return next(f.server_name(s) for s in np.flatnonzero(gpu) if f.server_name(s) not in used)


def _nodes(d, **over):
    n = {k: list(v) for k, v in d["nodes"].items()}
    n.update(over)
    return {"nodes": n}


BAD = [
    ("unknown job", lambda d: _nodes(d, **{"zzz": ["n0000"]}), "nodes.zzz"),
    ("unknown node", lambda d: _nodes(d, **{"ft-c": ["n9999", "n0001"]}), "nodes.ft-c[0]"),
    ("node twice in a job", lambda d: _nodes(d, **{"ft-c": [d["nodes"]["ft-c"][0]] * 2}), "nodes.ft-c[1]"),
    ("node in two jobs", lambda d: _nodes(d, **{"ft-c": [d["nodes"]["llm-a"][0], d["nodes"]["ft-c"][0]]}), "nodes.ft-c[0]"),
    ("too many nodes", lambda d: _nodes(d, **{"ft-c": d["nodes"]["ft-c"] + [_free_gpu_node(d)]}), "nodes.ft-c"),
    ("too few nodes", lambda d: _nodes(d, **{"ft-c": d["nodes"]["ft-c"][:1]}), "nodes.ft-c"),
    ("busy node", lambda d: _nodes(d, **{"ft-c": ["n0003", d["nodes"]["ft-c"][1]]}), "nodes.ft-c[0]"),
    ("nodes not a list", lambda d: _nodes(d, **{"ft-c": "n0001"}), "nodes.ft-c"),
    ("assignment too short", lambda d: {"assignment": {"ft-c": d["assignment"]["ft-c"][:8]}}, "assignment.ft-c"),
    ("assignment not an accelerator", lambda d: {"assignment": {"ft-c": [10 ** 6] + d["assignment"]["ft-c"][1:]}},
     "assignment.ft-c[0]"),
    ("nodes and assignment disagree",
     lambda d: dict(d, nodes=_nodes(d, **{"ft-c": [d["nodes"]["ft-c"][0], _free_gpu_node(d)]})["nodes"]),
     "nodes.ft-c"),
    ("root a list", lambda d: [1, 2], "(root)"),
    ("no placement keys", lambda d: {"jobs": {}}, "(root)"),
]


@pytest.mark.parametrize("what,make,where", BAD, ids=[b[0] for b in BAD])
def test_bad_placement_files_exit_2_naming_the_path(over, placed, tmp_path, what, make, where):
    _, d = placed
    p = _write(tmp_path, make(d))
    r = run("analyze", over, "--placement", p)
    assert r.exit_code == 2, (what, r.output)
    assert no_crash(r) and f"  {where}: " in r.stderr, (what, r.stderr)


@pytest.mark.parametrize("raw,where", [(b"{\"nodes\": {\"ft-c\": [\"n\xc3\x28\"]}}", "not UTF-8"), (b"{\"nodes\": ", "malformed JSON"),
                                       (b"[" * 100000, "(file)"), (b'{"nodes": {"ft-c": [], "ft-c": []}}', "nodes.ft-c")],
                         ids=["not-utf8", "malformed", "deep", "job-twice"])
def test_unreadable_placement_files_exit_2(over, tmp_path, raw, where):
    p = _write(tmp_path, None, raw)
    for cmd in ("analyze", "budget"):
        r = run(cmd, over, "--placement", p)
        assert r.exit_code == 2 and no_crash(r) and where in r.stderr, (cmd, r.output)


def test_loads_csv_quotes_hostile_node_names(tmp_path):
    import networkx as nx
    g = nx.Graph()
    hostile = 'x,=1+1 "q"'
    for i in range(8):
        g.add_node(f"e{i}", tier=0)
        g.add_edge(f"e{i}", hostile if i < 4 else "tor-b", gbps=400.0)
    g.add_edge(hostile, "core", gbps=400.0)
    g.add_edge("tor-b", "core", gbps=400.0)
    nx.write_graphml(g, str(tmp_path / "g.graphml"))
    d = {"version": 1, "name": "custom", "node_types": [{"name": "h", "platform": "cpu-host"}],
         "racks": [{"name": "r", "count": 8, "nodes": {"h": 1}}],
         "fabric": {"family": "custom", "custom": {"graphml": "g.graphml"}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(d))
    out = tmp_path / "loads.csv"
    r = run("analyze", tmp_path / "c.yaml", "--traffic", "uniform", "--routing", "fluid", "--loads", out)
    assert r.exit_code == 0, r.output
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    head, body = rows[0], rows[1:]
    assert head == ["link", "src", "dst", "tier", "gbps", "load_gbps", "util"]
    assert body and all(len(x) == len(head) for x in body)
    assert any(x[1] == hostile for x in body) and any(x[2] == hostile for x in body)


def test_failures_and_the_analyze_api_take_an_over_full_queue(over):
    import topo
    from topo.model.spec import load
    c = load(over)
    a = topo.analyze(c, routing="fluid")
    assert {j["name"] for j in a.summary["jobs"]} == {"llm-a", "moe-b", "ft-c"}
    r = run("failures", over, "--single", "--json")
    assert r.exit_code == 0, r.output
    assert "aaa-x" in r.output
