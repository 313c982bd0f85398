"""The typed plan: the pydantic models of plan.json, path-precise refusals, `topo schema --plan`."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from topo.cli.app import main
from topo.core.errors import SpecError
from topo.io.plan import Plan, dumps, load_plan, plan_json_schema, plan_shape_errors, typed

GOLDEN = Path(__file__).resolve().parent / "golden" / "small-plan.json"


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


def test_golden_plan_is_typed_and_round_trips(golden):
    p = typed(golden)
    assert isinstance(p, Plan)
    assert p.budget.tiers[0].tier == "leaf" and p.budget.tiers[0].switches == golden["budget"]["tiers"][0]["switches"]
    assert p.placement.assignment["llm-a"] == golden["placement"]["assignment"]["llm-a"]
    assert p.describe_before.bill_of_materials.switches[0].model == \
        golden["describe_before"]["bill_of_materials"]["switches"][0]["model"]
    # open models: the fields no reader types are kept, so the dump is the plan again, byte for byte
    back = p.model_dump(mode="json", exclude_unset=True)
    assert dumps(back) == dumps(golden)
    assert plan_shape_errors(golden) == []


@pytest.mark.parametrize("edit, path, message", [
    (lambda d: d["budget"]["tiers"][0].__setitem__("switches", "3"), "budget.tiers[0].switches",
     "expected a number, found string"),
    (lambda d: d["metrics_before"]["link_util"].__setitem__(3, "x"), "metrics_before.link_util[3]",
     "expected a number, found string"),
    (lambda d: d["placement"]["assignment"]["llm-a"].__setitem__(2, 1.5), "placement.assignment.llm-a[2]",
     "expected an integer, found number"),
    (lambda d: d["metrics_after"]["pod_matrix_gbps"].__setitem__(0, [1]), "metrics_after.pod_matrix_gbps",
     "square matrix"),
    (lambda d: d["describe_before"].__setitem__("tiers", 5), "describe_before.tiers", "expected a list, found integer"),
    (lambda d: d.__setitem__("seed", True), "seed", "expected an integer, found boolean"),
    (lambda d: d["failures"]["single"].__setitem__(0, "x"), "failures.single[0]", "expected an object, found string"),
    (lambda d: d["placement"]["racks"][0].__setitem__("rack", 7), "placement.racks[0].rack",
     "expected a string, found integer"),
    (lambda d: d.__setitem__("budget", [1]), "budget", "expected an object, found list"),
])
def test_refusals_name_the_json_path(golden, edit, path, message):
    bad = copy.deepcopy(golden)
    edit(bad)
    errs = dict(plan_shape_errors(bad))
    assert path in errs, errs
    assert message in errs[path]
    with pytest.raises(SpecError) as e:
        typed(bad, "plan.json")
    assert path in str(e.value)


def test_load_plan_refuses_a_hand_edited_plan_with_its_path(golden, tmp_path):
    bad = copy.deepcopy(golden)
    bad["budget"]["bill_of_materials"]["optics"][0]["count"] = "many"
    f = tmp_path / "plan.json"
    f.write_text(json.dumps(bad))
    with pytest.raises(SpecError) as e:
        load_plan(f)
    assert e.value.errors == [("budget.bill_of_materials.optics[0].count", "expected a number, found string")]
    r = CliRunner().invoke(main, ["report", str(f), "-o", str(tmp_path / "r")])
    assert r.exit_code == 2
    assert "budget.bill_of_materials.optics[0].count" in r.output
    assert not (tmp_path / "r" / "report.html").exists()


def test_load_plan_keeps_the_version_check(golden, tmp_path):
    bad = dict(golden, plan_version=2)
    f = tmp_path / "plan.json"
    f.write_text(json.dumps(bad))
    with pytest.raises(SpecError, match="plan_version"):
        load_plan(f)


def test_schema_plan_cli_describes_every_field_and_accepts_the_golden_plan(golden):
    r = CliRunner().invoke(main, ["schema", "--plan"])
    assert r.exit_code == 0, r.output
    schema = json.loads(r.output)
    assert schema == json.loads(json.dumps(plan_json_schema()))
    assert "version 1" in schema["title"]
    for name, d in [("Plan", schema)] + list(schema["$defs"].items()):
        for field, prop in d["properties"].items():
            assert prop.get("description"), f"{name}.{field} has no description"
    jsonschema.validate(golden, schema)
    bad = copy.deepcopy(golden)
    bad["placement"]["assignment"]["llm-a"][0] = "x"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    # the cluster file's schema is still the default
    r2 = CliRunner().invoke(main, ["schema"])
    assert "plan" not in json.loads(r2.output).get("title", "").lower()


# --- readers of the typed plan: exports, the optimize summary, a plan's placement ------------------
@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A plan `topo optimize` writes for the small example (no failure stage), its file, and the
    cluster and fabric as given (the golden plan's own cluster files predate today's builder)."""
    import topo
    from topo.io.plan import plan_cluster
    from topo.model.fabric import build
    small = GOLDEN.parent.parent.parent / "examples" / "small.yaml"
    plan = json.loads(dumps(topo.optimize(topo.load(small), seed=7, workers=1, failures=False, time_limit=5)))
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    path.write_text(dumps(plan))
    c = plan_cluster(plan, after=False)
    return plan, path, small, c, build(c)


def test_exports_read_a_plan_its_dict_or_some_sections_alike(fresh):
    from topo.io import exports as ex
    golden, _, _, c, f = fresh
    sections = {"placement": {"assignment": golden["placement"]["assignment"]}}
    for fmt, name in (("slurm-jobs", "slurm-jobs.conf"), ("rank-map", "rank-map.csv"), ("htsim", "htsim.cm")):
        want = ex.render(fmt, f, golden, c)[name]
        assert ex.render(fmt, f, typed(golden), c)[name] == want
        assert ex.render(fmt, f, sections, c)[name] == want
    # the loads are the plan's per-link utilisation times each link's capacity
    rows = ex.render("linkloads-csv", f, typed(golden), c, which="before")["link-loads.csv"].splitlines()[1:]
    util = [float(r.rsplit(",", 1)[1] or 0) for r in rows]
    assert util == pytest.approx([u or 0.0 for u in golden["metrics_before"]["link_util"]], rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("sections, path", [
    ({"placement": {"assignment": {"llm-a": "x"}}}, "placement.assignment.llm-a"),
    ({"placement": []}, "placement"),
    ({"metrics_after": {"link_util": [0.5, "full"]}}, "metrics_after.link_util[1]"),
])
def test_exports_refuse_a_section_of_the_wrong_kind_by_its_path(fresh, sections, path):
    from topo.io import exports as ex
    _, _, _, c, f = fresh
    with pytest.raises(SpecError) as e:
        ex.render("all", f, sections, c)
    assert path in [p for p, _ in e.value.errors]


def test_optimize_summary_reads_the_typed_plan(golden):
    from topo.cli.app import optimize_summary
    s = optimize_summary(golden, "out", ["a", "b"])
    assert optimize_summary(typed(golden), "out", ["a", "b"]) == s
    b, ma = golden["budget"], golden["metrics_after"]
    assert s["cluster"] == golden["cluster_name"] and s["files"] == 2
    assert s["placement"]["objective"] == golden["placement"]["objective"]
    assert s["placement"]["placed"] == len(golden["placement"]["assignment"])
    assert s["budget"]["status"] == b["solver"]["status"]
    assert s["budget"]["capex_usd"] == b["cost"]["chosen"]["capex_usd"]
    assert "tried" not in s["budget"]["transport_check"]
    assert s["max_util_after"] == {t["tier"]: t["util_max"] for t in ma["tiers"]}
    for t, u in b["utilization"].items():
        assert s["ideal_ecmp_util"][t] == {"target": u["target"], "placed": u["routed_before"], "after": u["routed_after"]}
    for j in ma["jobs"]:
        assert s["jobs"][j["name"]]["after_s"] == j["time_s"]
        assert s["jobs"][j["name"]]["after_uec_s"] == ma["roce_vs_uec"]["uec-spray"]["jobs"][j["name"]]
    cj = golden["collectives"]["jobs"][0]
    got = s["collectives"]["jobs"][cj["name"]]
    assert got["alpha_s"] == pytest.approx(sum(c["count"] * c["alpha_s"] for c in cj["collectives"]))
    assert got["algorithms"] == sorted({str(c["algorithm"]) for c in cj["collectives"]})


def test_a_plans_placement_is_read_from_the_typed_plan(fresh):
    """`--plan` of failures/goodput takes a plan `topo optimize` wrote (it used to stop with a traceback)."""
    from topo.pipeline import read_placement
    plan, path, small, c, f = fresh
    got = read_placement(path, c, f)
    assert {k: v.tolist() for k, v in got.items()} == plan["placement"]["assignment"]
    r = CliRunner().invoke(main, ["failures", str(small), "--plan", str(path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["placement"] == "given placement"
