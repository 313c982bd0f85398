"""Sweeps: file validation, reproducibility, resume, local process pool == Dask, reports."""
from __future__ import annotations

import csv

import pytest
import yaml
from click.testing import CliRunner

from conftest import EXAMPLES, no_crash
from topo.core.errors import SpecError
from topo.study.sweep import load_sweep, pareto_front, run_sweep

BASE = str(EXAMPLES / "small.yaml")


def write_sweep(path, **over):
    d = {"version": 1, "name": "t", "base": BASE, "seed": 3,
         "grid": {"oversubscription": [1, 2], "transport": ["roce", "uec"]},
         "failures": ["none", "spine"]}
    d.update(over)
    d = {k: v for k, v in d.items() if v is not None}
    path.write_text(yaml.safe_dump(d))
    return path


def strip(rows):
    return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in rows), key=lambda r: r["id"])


def test_sweep_expands_grid_times_scenarios_and_is_reproducible(tmp_path):
    sw = write_sweep(tmp_path / "s.yaml", variants=[{"id": "four-qps", "qps_per_connection": 4}])
    plan = load_sweep(sw)
    assert len(plan["tasks"]) == (4 + 1) * 2
    assert len({t["id"] for t in plan["tasks"]}) == len(plan["tasks"])
    a = run_sweep(sw, tmp_path / "a", workers=2)
    b = run_sweep(sw, tmp_path / "b", workers=1)
    assert a["ran"] == b["ran"] == 10
    assert strip(a["rows"]) == strip(b["rows"])
    rows = a["rows"]
    assert all(r["status"] == "ok" for r in rows)
    healthy = [r for r in rows if r["scenario"] == "none"]
    assert all(r["capacity_lost_frac"] == 0.0 for r in healthy)
    spine = [r for r in rows if r["scenario"] == "spine"]
    assert all(r["lost_leaf_spine"] > 0 and r["unreachable_gbps"] == 0.0 for r in spine)
    assert all(r["completion_time_s"] > 0 for r in healthy)
    # oversubscription 2 halves the leaf uplinks: cheaper network
    cost = {(r["oversubscription"], r["transport"]): r["network_cost_usd"] for r in healthy if r["oversubscription"]}
    assert cost[(2, "roce")] < cost[(1, "roce")]
    out = tmp_path / "a"
    for name in ("results.csv", "report.md", "report.html", "sweep.json"):
        assert (out / name).is_file()
    with open(out / "results.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 10
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    assert pq.read_table(out / "results.parquet").num_rows == 10


def test_interrupted_sweep_resumes_from_written_results(tmp_path):
    sw = write_sweep(tmp_path / "s.yaml")
    out = tmp_path / "out"
    first = run_sweep(sw, out, workers=1)
    files = sorted((out / "results").glob("*.json"))
    assert len(files) == 4 + 4
    files[0].unlink()                                   # lost when the sweep was interrupted
    (out / "results" / ".half.json.tmp").write_text("{")  # a temporary file never renamed
    again = run_sweep(sw, out, workers=1)
    assert (again["ran"], again["skipped"]) == (1, 7)
    assert strip(again["rows"]) == strip(first["rows"])
    forced = run_sweep(sw, out, workers=1, force=True)
    assert forced["ran"] == 8


def test_dask_run_equals_local_run(tmp_path):
    distributed = pytest.importorskip("distributed")
    sw = write_sweep(tmp_path / "s.yaml")
    local = run_sweep(sw, tmp_path / "local", workers=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as lc:
        dask = run_sweep(sw, tmp_path / "dask", scheduler=lc.scheduler_address)
    assert dask["ran"] == 8
    assert strip(dask["rows"]) == strip(local["rows"])


def test_unanswered_scheduler_fails_fast_with_a_clear_message(tmp_path):
    pytest.importorskip("distributed")
    sw = write_sweep(tmp_path / "s.yaml")
    # how soon it fails is measured in benchmarks/bench_sweep_connect.py, not asserted here
    with pytest.raises(SpecError) as ei:
        run_sweep(sw, tmp_path / "o", scheduler="tcp://127.0.0.1:9", connect_timeout_s=1.0)
    assert "--scheduler" in str(ei.value)
    with pytest.raises(SpecError) as ei:
        run_sweep(sw, tmp_path / "o", scheduler="localhost:8786")
    assert "--scheduler" in str(ei.value)


@pytest.mark.parametrize("over, where", [
    ({"colour": "blue"}, "colour"),
    ({"grid": {"oversubscription": [1], "radix": [64]}}, "grid.radix"),
    ({"grid": {}}, "grid"),
    ({"grid": {"planes": []}}, "grid.planes"),
    ({"grid": {"failure_rates": [{"link_per_year": 1.5}]}}, "grid.failure_rates[0].link_per_year"),
    ({"grid": {"failure_rates": [{"switch_per_year": -0.1}]}}, "grid.failure_rates[0].switch_per_year"),
    ({"grid": {"transport": ["tcp"]}}, "grid.transport[0]"),
    ({"failures": ["meteor"]}, "failures[0]"),
    ({"failures": []}, "failures"),
    ({"grid": None, "variants": [{"id": "x", "bogus": 1}]}, "variants[0].bogus"),
    ({"grid": {"switch": ["no-such-switch"]}}, "fabric.tiers[0].switch"),
    ({"name": 7}, "name"),
    ({"version": True}, "version"),
])
def test_bad_sweep_files_name_the_path(tmp_path, over, where):
    sw = write_sweep(tmp_path / "s.yaml", **over)
    with pytest.raises(SpecError) as ei:
        load_sweep(sw)
    assert where in str(ei.value)


def test_cli_bad_sweep_exits_2_and_keeps_written_results(tmp_path):
    from topo.cli.app import main
    sw = write_sweep(tmp_path / "s.yaml", grid={"oversubscription": [1]}, failures=["none"])
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["sweep", str(sw), "-o", str(out), "--workers", "1"])
    assert r.exit_code == 0, r.output
    before = sorted(p.name for p in (out / "results").iterdir())
    assert len(before) == 1
    write_sweep(sw, grid={"oversubscription": [1], "failure_rates": [{"nic_per_year": 2}]})
    r = CliRunner().invoke(main, ["sweep", str(sw), "-o", str(out)])
    assert r.exit_code == 2 and "nic_per_year" in r.output and no_crash(r)
    assert sorted(p.name for p in (out / "results").iterdir()) == before
    write_sweep(sw, grid={"oversubscription": [1, 2]}, failures=["none"])
    r = CliRunner().invoke(main, ["sweep", str(sw), "-o", str(out), "--scheduler", "nonsense"])
    assert r.exit_code == 2 and "--scheduler" in r.output
    # another sweep may not write into this directory without --force
    other = write_sweep(tmp_path / "other.yaml", name="other", grid={"planes": [1]})
    r = CliRunner().invoke(main, ["sweep", str(other), "-o", str(out)])
    assert r.exit_code == 2 and "another sweep" in r.output


def test_infeasible_variant_is_a_row_not_a_crash(tmp_path):
    # a 16-port leaf cannot carry 32 endpoint ports plus uplinks in two tiers of this size
    sw = write_sweep(tmp_path / "s.yaml", grid={"switch": ["th5-128x400", [{"radix": 4, "port_gbps": 400, "power_w": 1, "cost_usd": 1}]]},
                     failures=["none"])
    with pytest.raises(SpecError):
        load_sweep(sw)  # a switch given inline is not a model name
    # the top tier of a 2-tier Clos has no uplinks, so oversubscribing it is rejected by the builder
    sw = write_sweep(tmp_path / "s.yaml", grid={"oversubscription": [1, [1, 2]]}, failures=["none"])
    res = run_sweep(sw, tmp_path / "o", workers=1)
    by = {r["oversubscription"]: r for r in res["rows"]}
    assert by[1]["status"] == "ok"
    bad = by["[1, 2]"]
    assert bad["status"] == "infeasible" and "fabric.tiers[1].oversubscription" in bad["message"]
    assert "infeasible" in (tmp_path / "o" / "report.md").read_text()


def test_pareto_front():
    rows = [
        {"status": "ok", "scenario": "none", "network_cost_usd": 1, "total_kw": 5, "completion_time_s": 3},
        {"status": "ok", "scenario": "none", "network_cost_usd": 2, "total_kw": 5, "completion_time_s": 3},  # dominated
        {"status": "ok", "scenario": "none", "network_cost_usd": 3, "total_kw": 1, "completion_time_s": 9},
        {"status": "ok", "scenario": "none", "network_cost_usd": 9, "total_kw": 9, "completion_time_s": 1},
        {"status": "ok", "scenario": "spine", "network_cost_usd": 0, "total_kw": 0, "completion_time_s": 0},
        {"status": "infeasible", "scenario": "none", "network_cost_usd": None, "total_kw": None, "completion_time_s": None},
    ]
    assert pareto_front(rows, healthy_only=True) == [0, 2, 3]
    assert pareto_front(rows) == [4]


def test_uplink_scenario_loses_one_link_of_a_bundle():
    from topo.model.fabric import build
    from topo.model.spec import load
    from topo.study.sweep import run_task, task_id
    base = yaml.safe_load(open(BASE))
    fab = build(load(BASE))
    n_up = int(((fab.link_tier == 1).sum()) // 2)
    t = {"id": task_id({}, "uplink", 1), "variant_name": "base", "variant": {}, "scenario": "uplink", "seed": 1,
         "base_data": base, "base_dir": str(EXAMPLES)}
    row = run_task(t)
    assert row["status"] == "ok"
    assert row["lost_leaf_spine"] == pytest.approx(1.0 / n_up)
    assert row["unreachable_gbps"] == 0.0


def test_missing_dask_gives_a_clear_message(monkeypatch):
    import sys
    from topo.study.executor import open_executor
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(SpecError) as ei:
        with open_executor(scheduler="tcp://127.0.0.1:8786"):
            pass
    assert "--scheduler" in str(ei.value) and "topo[dask]" in str(ei.value)


def test_shipped_sweep_example_runs(tmp_path):
    sw = EXAMPLES / "sweeps" / "small-design-study.yaml"
    run_sweep(sw, tmp_path / "out", workers=1)
    rows = list(csv.DictReader(open(tmp_path / "out" / "results.csv")))
    assert len(rows) == 72 and all(r["status"] == "ok" for r in rows)
    assert {r["scenario"] for r in rows} == {"none", "spine", "uplink"}
    # a 4:1 leaf costs less than 1:1 in the same study
    cost = {r["oversubscription"]: float(r["network_cost_usd"]) for r in rows}
    assert cost["4"] < cost["2"] < cost["1"]
