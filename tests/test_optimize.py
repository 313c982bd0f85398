"""`topo optimize` end to end: outputs, atomicity, plan round trip, golden files."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from topo.cli.app import main
from topo.io.plan import PLAN_VERSION, load_plan

from conftest import EXAMPLES

GOLDEN = Path(__file__).parent / "golden"
VOLATILE = re.compile(r"(seconds|wall_s|timings_s|^created$|^versions$|^topo_version$)")
UPDATE = os.environ.get("TOPO_UPDATE_GOLDEN") == "1"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def small_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("opt") / "out"
    r = run("optimize", EXAMPLES / "small.yaml", "-o", out, "--seed", 7, "--workers", 1, "--json")
    assert r.exit_code == 0, r.output
    return out, json.loads(r.output)


def test_outputs_written(small_out):
    out, summary = small_out
    for name in ["plan.json", "report.html", "report.md", "exports/topology.yaml", "exports/topology-tree.conf",
                 "exports/topology-block.conf", "exports/kueue-topology.yaml", "exports/fabric.graphml",
                 "exports/astra-sim-network.yml"]:
        assert (out / name).is_file(), name
    assert summary["placement"]["status"] in ("OPTIMAL", "FEASIBLE")
    assert summary["placement"]["placed"] == 3 and not summary["placement"]["unplaced"]
    assert summary["budget"]["status"] == "optimal"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_plan_round_trips(small_out, tmp_path):
    out, _ = small_out
    plan = load_plan(out / "plan.json")
    assert plan["plan_version"] == PLAN_VERSION
    from topo.io.plan import dumps, plan_assignment, plan_cluster
    assert json.loads(dumps(plan)) == plan
    c = plan_cluster(plan, after=True)
    assert c.name == "small-2tier"
    a = plan_assignment(plan)
    assert sum(len(v) for v in a.values()) == 64 + 32 + 16
    # re-rendering the report from the plan gives the same files
    r = run("report", out / "plan.json", "-o", tmp_path)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "report.md").read_text() == (out / "report.md").read_text()
    assert (tmp_path / "report.html").read_text() == (out / "report.html").read_text()


def test_existing_output_kept_without_force(small_out):
    out, _ = small_out
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    r = run("optimize", EXAMPLES / "small.yaml", "-o", out)
    assert r.exit_code == 2 and "--force" in r.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_bad_input_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "small.yaml").read_text().replace("accelerators: 64", "accelerators: 100000"))
    out = tmp_path / "out"
    r = run("optimize", bad, "-o", out)
    assert r.exit_code == 2 and "jobs[0].accelerators" in r.output
    assert not out.exists()
    r = run("optimize", EXAMPLES / "small.yaml", "-o", out, "--time-limit", 0)
    assert r.exit_code == 2 and "--time-limit" in r.output and not out.exists()


def test_failure_mid_write_leaves_old_directory(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    import topo.pipeline as opt
    real = opt.render_outputs

    def broken(plan, **kw):
        files = real(plan, **kw)
        files["zzz-last"] = lambda path: (_ for _ in ()).throw(OSError("disk full"))
        return files
    monkeypatch.setattr(opt, "render_outputs", broken)
    with pytest.raises(OSError):
        CliRunner().invoke(main, ["optimize", str(EXAMPLES / "small.yaml"), "-o", str(out), "--force",
                                  "--no-failures"], catch_exceptions=False)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def _normalise(x, key=""):
    if isinstance(x, dict):
        return {k: _normalise(v, k) for k, v in sorted(x.items()) if not VOLATILE.search(k)}
    if isinstance(x, list):
        return [_normalise(v) for v in x]
    if isinstance(x, float):
        return float(f"{x:.9g}")
    return x


def _md_normalise(text: str) -> str:
    keep = [ln for ln in text.splitlines()
            if not re.match(r"^\| (created|wall \(s\)|wall\\_s|[a-z\\_ ]*seconds|"
                            r"(topo|python|numpy|ortools|networkx|scipy|pydantic)(\\_version| version)?) \|", ln, re.I)]
    return "\n".join(keep) + "\n"


def test_golden_plan_and_report(small_out):
    out, _ = small_out
    plan = _normalise(json.loads((out / "plan.json").read_text()))
    md = _md_normalise((out / "report.md").read_text())
    gp, gm = GOLDEN / "small-plan.json", GOLDEN / "small-report.md"
    if UPDATE:
        gp.write_text(json.dumps(plan, indent=1, sort_keys=True) + "\n")
        gm.write_text(md)
    assert plan == json.loads(gp.read_text()), "plan.json differs from tests/golden (TOPO_UPDATE_GOLDEN=1 to accept)"
    assert md == gm.read_text(), "report.md differs from tests/golden (TOPO_UPDATE_GOLDEN=1 to accept)"


def test_summary_after_budget_matches_the_routed_plan(small_out):
    # the printed/JSON summary is the plan's own figures: job times before/placed/after and the
    # transport check, whose slowdown is recomputable from metrics_placed and metrics_after
    out, summary = small_out
    plan = load_plan(out / "plan.json")
    jobs = {j["name"]: j for j in plan["metrics_after"]["jobs"]}
    placed = {j["name"]: j for j in plan["metrics_placed"]["jobs"]}
    for name, v in summary["jobs"].items():
        assert v["after_s"] == jobs[name]["time_s"] and v["placed_s"] == placed[name]["time_s"]
    tc = summary["budget"]["transport_check"]
    total = sum(j["time_s"] for j in jobs.values()) / sum(j["time_s"] for j in placed.values())
    assert tc["total"] == pytest.approx(total, rel=1e-9)
    tail = (max(j["time_s"] / j["ideal_s"] for j in jobs.values())
            / max(j["time_s"] / j["ideal_s"] for j in placed.values()))
    assert tc["tail"] == pytest.approx(tail, rel=1e-9)
    assert tc["accepted"] == (max(total, tail) <= tc["max_slowdown"])
    text = run("optimize", EXAMPLES / "small.yaml", "-o", out.parent / "again", "--seed", 7, "--workers", 1).output
    assert "transport check (roce-hash)" in text and "collective time per iteration" in text
    # the alpha-beta collective time of the budgeted fabric, its parts adding up to the plan's per-job time
    plan = json.loads((out.parent / "again" / "plan.json").read_text())
    assert "alpha-beta model" in text
    for j in plan["collectives"]["jobs"]:
        s = summary["collectives"]["jobs"][j["name"]]
        assert s["alpha_s"] + s["beta_s"] == pytest.approx(j["comm_s"], rel=1e-6)
