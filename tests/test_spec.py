"""The cluster file: validation with JSON paths, units, schema, bad input via the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from topo.cli.app import main
from topo.core.errors import SpecError
from topo.model.spec import from_dict, json_schema, load

from conftest import EXAMPLES, cluster_dict, sw, no_crash


def errors_of(d):
    with pytest.raises(SpecError) as e:
        c = from_dict(d)
        from topo.model.fabric import build
        build(c)
    return dict(e.value.errors)


def test_examples_validate_against_schema():
    jsonschema = pytest.importorskip("jsonschema")
    import yaml
    schema = json_schema()
    files = sorted(EXAMPLES.glob("*.yaml")) + sorted(EXAMPLES.glob("*.json"))
    assert len(files) >= 4
    for f in files:
        data = yaml.safe_load(f.read_text())
        jsonschema.validate(data, schema)
        load(f)


def test_wrong_types_report_every_path_at_once():
    d = cluster_dict()
    d["racks"][0]["count"] = "many"
    d["fabric"]["tiers"] = [{"switch": sw(64)}, {"switch": {"radix": "big", "port_gbps": 400, "power_w": 1, "cost_usd": 1}}]
    d["transport"] = {"mtu_bytes": 10}
    errs = errors_of(d)
    assert "racks[0].count" in errs and "'many'" in errs["racks[0].count"]
    assert "fabric.tiers[1].switch.radix" in errs
    assert "transport.mtu_bytes" in errs


@pytest.mark.parametrize("path,value", [("count", 0), ("count", -3)])
def test_zero_or_negative_counts(path, value):
    d = cluster_dict()
    d["racks"][0][path] = value
    assert f"racks[0].{path}" in errors_of(d)


def test_radix_too_small_for_its_tier():
    # 16 racks x 4 nodes x 8 = 512 endpoints; radix-16 leaves (8 down) -> 64 leaves; a radix-16 spine cannot take them
    d = cluster_dict(n_racks=16, nodes_per_rack=4, tiers=[{"switch": sw(16)}, {"switch": sw(16)}])
    errs = errors_of(d)
    assert "fabric.tiers[1].radix" in errs
    assert "too small" in errs["fabric.tiers[1].radix"]


def test_unknown_preset_and_units():
    d = cluster_dict()
    d["node_types"][0]["nic_gbps"] = "400"
    errs = errors_of(d)
    assert "units missing" in errs["node_types[0].nic_gbps"]
    d = cluster_dict()
    d["node_types"][0]["platform"] = "hgx-h999"
    d["fabric"]["tiers"] = [{"switch": "th9-1x1"}, {"switch": "th5-128x400"}]
    errs = errors_of(d)
    assert "unknown preset" in errs["node_types[0].platform"]
    assert "unknown preset" in errs["fabric.tiers[0].switch"]


def test_values_with_units_are_normalised():
    d = cluster_dict()
    d["node_types"][0]["nic_gbps"] = "0.8Tbps"
    d["node_types"][0]["power_busy_kw"] = "10200W"
    d["racks"][0]["power_limit_kw"] = "45kW"
    c = from_dict(d)
    nt = c.node_types["gpu"]
    assert nt.nic_gbps == pytest.approx(800)
    assert nt.power_busy_kw == pytest.approx(10.2)
    assert c.racks[0].power_limit_kw == pytest.approx(45)


def test_units_where_case_carries_the_meaning():
    """B is a byte and b a bit, M mega and m milli: exact spellings count, other cases are refused,
    and spellings whose case cannot matter are accepted in any case."""
    d = cluster_dict()
    d["node_types"][0]["nic_gbps"] = "50GB/s"          # bytes per second: 400 Gb/s
    d["racks"][0]["power_limit_kw"] = "0.1MW"
    d["jobs"] = [{"name": "a", "accelerators": 8, "tp": 8,
                  "collectives": [{"op": "allreduce", "group": "tp", "bytes": "1gib"}]}]
    c = from_dict(d)
    assert c.node_types["gpu"].nic_gbps == pytest.approx(400)
    assert c.racks[0].power_limit_kw == pytest.approx(100)
    assert c.jobs[0].collectives[0].bytes == 2**30
    for field, value, path in [("nic_gbps", "50gb/s", "node_types[0].nic_gbps"),
                               ("power_busy_kw", "10mW", "node_types[0].power_busy_kw")]:
        d = cluster_dict()
        d["node_types"][0][field] = value
        errs = errors_of(d)
        assert "ambiguous unit" in errs[path], errs
    d = cluster_dict()
    d["jobs"] = [{"name": "a", "accelerators": 8, "tp": 8,
                  "collectives": [{"op": "allreduce", "group": "tp", "bytes": "1Gb"}]}]
    errs = errors_of(d)
    assert "ambiguous unit" in errs["jobs[0].collectives[0].bytes"] and "'GB'" in errs["jobs[0].collectives[0].bytes"]


@pytest.mark.parametrize("edit,path,words", [
    (lambda d: d["fabric"].update(k=16), "fabric.k", "fat_tree only"),
    (lambda d: d["fabric"]["tiers"][1].update(bundle=2), "fabric.tiers[1].bundle", "no uplinks"),
    (lambda d: d.update(transport={"adaptive": True}), "transport.adaptive", "not modelled"),
    (lambda d: d.update(traffic=[{"pattern": "uniform", "file": "m.csv"}]), "traffic[0].file", "matrix pattern only"),
    (lambda d: d["node_types"].append({"name": "cpu", "platform": "cpu-host",
                                       "scaleup": {"size": 8}}), "node_types[1].scaleup",
     "without accelerators"),
])
def test_values_that_would_be_ignored_are_refused(edit, path, words):
    """A value the builder or the models would not use is refused with its path, never dropped."""
    d = cluster_dict(tiers=[{"switch": sw(64)}, {"switch": sw(64)}])
    edit(d)
    errs = errors_of(d)
    assert path in errs and words in errs[path], errs


def test_job_larger_than_cluster():
    d = cluster_dict()
    d["jobs"] = [{"name": "huge", "accelerators": 4096, "tp": 8}]
    errs = errors_of(d)
    assert "jobs[0].accelerators" in errs and "4096" in errs["jobs[0].accelerators"]


def test_absurd_size_refused_by_its_field():
    d = cluster_dict()
    d["racks"][0]["count"] = 10**12
    errs = errors_of(d)
    assert "racks[0].count" in errs and "8388608" in errs["racks[0].count"]
    # each count under its own bound, their product over the endpoint limit: refused as a total
    d["racks"][0]["count"] = 2 ** 22
    errs = errors_of(d)
    assert "racks" in errs and "at most" in errs["racks"]


def test_hard_power_limit_is_an_error_soft_is_flagged():
    d = cluster_dict()
    d["racks"][0]["power_limit_kw"] = 15
    d["racks"][0]["power_limit_hard"] = True
    assert "racks[0].power_limit_kw" in errors_of(d)
    d["racks"][0]["power_limit_hard"] = False
    from topo.routing.describe import describe
    from topo.model.fabric import build
    c = from_dict(d)
    out = describe(build(c), c)
    assert out["rack_power"]["racks_over_limit"] == 4
    assert out["rack_power"]["over_limit"][0]["kw"] == pytest.approx(20.0)


def run_cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_cli_validate_ok_and_errors(tmp_path):
    r = run_cli("validate", str(EXAMPLES / "small.yaml"))
    assert r.exit_code == 0 and r.output.startswith("OK")
    bad = tmp_path / "bad.json"
    d = cluster_dict()
    d["fabric"]["tiers"] = [{"switch": sw(64)}, {"switch": {"radix": 1, "port_gbps": 400, "power_w": 1, "cost_usd": 1}}]
    bad.write_text(json.dumps(d))
    r = run_cli("validate", str(bad))
    assert r.exit_code == 2
    assert "fabric.tiers[1].switch.radix" in r.output
    assert no_crash(r)


@pytest.mark.parametrize("text,suffix,where", [
    ('{"version": 1, "name": ', ".json", "malformed JSON"),
    ("version: 1\nname: [unclosed\n", ".yaml", "malformed YAML"),
])
def test_cli_malformed_files(tmp_path, text, suffix, where):
    p = tmp_path / f"c{suffix}"
    p.write_text(text)
    r = run_cli("validate", str(p))
    assert r.exit_code == 2 and where in r.output and "line" in r.output


def test_cli_schema_is_json():
    r = run_cli("schema")
    s = json.loads(r.output)
    assert s["title"] == "topo cluster file" and "fabric" in s["properties"]


def test_console_script_exit_code_no_traceback(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("[1, 2]")
    r = subprocess.run([sys.executable, "-m", "topo", "validate", str(p)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "(root)" in r.stderr


@pytest.mark.parametrize("order,msg", [
    ("pp-tp-cp-dp", "tp must be fastest"), ("tp-cp-ep-pp-dp", "ep must come just before dp"),
    ("tp-xx-pp-dp", "unknown dimension 'xx'"), ("tp-cp-pp", "lacks dp"), ("tp-cp-pp-dp-pp", "more than once")])
def test_rank_order_errors_name_the_field(order, msg, tmp_path):
    d = cluster_dict()
    d["jobs"] = [{"name": "j", "accelerators": 16, "tp": 8, "rank_order": order}]
    errs = errors_of(d)
    assert msg in errs["jobs[0].rank_order"]
    p = tmp_path / "c.json"
    p.write_text(json.dumps(d))
    r = CliRunner().invoke(main, ["validate", str(p)])
    assert r.exit_code == 2 and "jobs[0].rank_order" in r.output and no_crash(r)


def test_rank_order_forms():
    from topo.model.spec import parse_rank_order
    assert parse_rank_order("tp-cp-pp-dp") == ("tp", "cp", "pp", "dp")
    assert parse_rank_order("tp-cp-ep-dp-pp") == ("tp", "cp", "dp", "pp")  # Megatron-LM's default
    assert parse_rank_order("TP-DP-CP-PP") == ("tp", "dp", "cp", "pp")


def test_every_schema_field_has_a_description():
    """Editors show the schema's descriptions on hover: every property of every object has one."""
    from topo.model.spec import json_schema
    missing = []

    def walk(node, where):
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                if not (isinstance(prop, dict) and str(prop.get("description", "")).strip()):
                    missing.append(f"{where}.{name}")
            for k, v in node.items():
                walk(v, where if k == "properties" else f"{where}/{k}")
        elif isinstance(node, list):
            for v in node:
                walk(v, where)

    walk(json_schema(), "")
    assert not missing, missing
