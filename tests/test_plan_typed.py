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
