"""Hardening regressions: each test here failed on the main of issue 12's filing."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from conftest import no_crash
import yaml

from topo.model.fabric import build
from topo.solve.placement import place
from topo.model.spec import from_dict
from topo.traffic.demand import in_order_placement

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LISTED = ["n0006", "n0012", "n0007", "n0013", "n0009", "n0015", "n0010", "n0016"]


def small(**change) -> dict:
    d = yaml.safe_load((EXAMPLES / "small.yaml").read_text())
    d.update(copy.deepcopy(change))
    return d


def _servers_in_rank_order(fabric, eps) -> list[str]:
    out = []
    for s in np.asarray(fabric.ep_server)[eps]:
        name = fabric.server_name(int(s))
        if not out or out[-1] != name:
            out.append(name)
    return out


def _pinned_cluster():
    d = small()
    d["jobs"][0]["nodes"] = list(LISTED)
    return from_dict(d)


def test_explicit_nodes_set_the_rank_order_in_order_placement():
    c = _pinned_cluster()
    f = build(c)
    eps = in_order_placement(c, f)["llm-a"]
    assert _servers_in_rank_order(f, eps) == LISTED


def test_explicit_nodes_set_the_rank_order_in_placement():
    c = _pinned_cluster()
    f = build(c)
    res = place(c, f, time_limit=2.0, seed=7, workers=1)
    eps = np.asarray(res.assignment["llm-a"])
    assert _servers_in_rank_order(f, eps) == LISTED
    # and the local accelerator order inside each node is kept (TP groups stay whole)
    assert np.all(np.diff(np.asarray(f.ep_local)[eps].reshape(len(LISTED), -1), axis=1) == 1)


def test_explicit_node_listed_twice_is_refused():
    from topo.core.errors import SpecError
    d = small()
    d["jobs"][0]["nodes"] = LISTED[:7] + [LISTED[0]]
    c = from_dict(d)
    f = build(c)
    with pytest.raises(SpecError) as e:
        in_order_placement(c, f)
    assert "jobs[0].nodes" in str(e.value)


# --- hostile input: exit 2, the field named, no traceback -----------------------------------
def _cli(*args):
    from click.testing import CliRunner
    from topo.cli.app import main
    return CliRunner().invoke(main, [str(a) for a in args])


def _refused(res, field):
    assert res.exit_code == 2, (res.exit_code, res.output, res.exc_info)
    assert no_crash(res)
    assert field in res.output, res.output
    return res.output


def _write(tmp_path, d, name="c.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(d, sort_keys=False) if name.endswith(".yaml") else __import__("json").dumps(d))
    return p


def _cpu_host(**kw):
    d = small()
    d["node_types"][1] = {"name": "cpu", "platform": "cpu-host", **kw}
    return d


SIZE_BOMBS = {
    "nics on a CPU host": (_cpu_host(nics=10 ** 9), "node_types[1].nics"),
    "nic_ports on a CPU host": (_cpu_host(nic_ports=10 ** 9), "node_types[1].nic_ports"),
    "fat tree k": (small(fabric={"family": "fat_tree", "k": 100000}), "fabric.k"),
    "fat tree k under the radix bound": (small(fabric={"family": "fat_tree", "k": 4000}), "fabric.k"),
    "planes": (small(fabric={"family": "clos", "planes": 10 ** 7}), "fabric.planes"),
    "catalog radix": (small(catalog={"switches": {"big": {"radix": 10 ** 9, "port_gbps": 400, "power_w": 1,
                                                          "cost_usd": 1}}}), "catalog.switches.big.radix"),
    "busy hostlist": (small(busy_nodes=["n[0-99999999999]"]), "busy_nodes"),
    "ports in total": (small(node_types=[{"name": "gpu", "platform": "hgx-h100", "nics": 256, "nic_ports": 64},
                                         {"name": "cpu", "platform": "cpu-host"}],
                             racks=[{"name": "r", "count": 4096, "nodes": {"gpu": 2, "cpu": 1}}], jobs=[]), "racks"),
}


@pytest.mark.parametrize("case", sorted(SIZE_BOMBS))
def test_sizes_are_bounded_before_anything_is_allocated(tmp_path, case):
    d, field = SIZE_BOMBS[case]
    _refused(_cli("validate", _write(tmp_path, d)), field)


def test_job_nodes_hostlist_bomb(tmp_path):
    d = small()
    d["jobs"][0]["nodes"] = ["n[0-99999999999]"]
    _refused(_cli("validate", _write(tmp_path, d)), "jobs[0].nodes")
    from topo.model.hostlist import expand
    with pytest.raises(ValueError):
        expand("n[0-99999999999]")


NOT_FINITE = {
    "bytes 1e400GiB": (("jobs", 0, "collectives", 0, "bytes"), "1e400GiB"),
    "nic_gbps 1e400G": (("node_types", 0, "nic_gbps"), "1e400G"),
    "horizon_years 1e400": (("costs", "horizon_years"), "1e400"),
    "port_gbps 1e400G": (("catalog",), {"switches": {"s": {"radix": 64, "port_gbps": "1e400G", "power_w": 1,
                                                           "cost_usd": 1}}}),
    "power_limit_kw 1e400kW": (("racks", 0, "power_limit_kw"), "1e400kW"),
    "power_limit_kw Infinity": (("racks", 0, "power_limit_kw"), float("inf")),
    "seed 1e30": (("goals", "seed"), 1e30),
    "seed 2**63": (("goals", "seed"), 2 ** 63),
    "workers 2**31": (("goals", "workers"), 2 ** 31),
    "time limit infinite": (("goals", "time_limit_s"), float("inf")),
    "a 1e-300 Gb/s NIC": (("node_types", 0, "nic_gbps"), 1e-300),
    "empty cluster name": (("name",), ""),
}


@pytest.mark.parametrize("case", sorted(NOT_FINITE))
def test_non_finite_and_absurd_values_refused(tmp_path, case):
    path, value = NOT_FINITE[case]
    d = small()
    t = d
    for k in path[:-1]:
        t = t[k]
    t[path[-1]] = value
    text = yaml.safe_dump(d, sort_keys=False)  # .inf for infinities
    p = tmp_path / "c.yaml"
    p.write_text(text)
    field = ".".join(str(x) if isinstance(x, str) else f"[{x}]" for x in path).replace(".[", "[")
    out = _refused(_cli("validate", p), field.split(".")[0])
    assert "null" not in out


def test_files_that_are_not_utf8_text(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_bytes((EXAMPLES / "small.yaml").read_text().encode("utf-16"))
    _refused(_cli("validate", p), "UTF-16")
    p.write_bytes(b"name: \xff\xfe\n" + (EXAMPLES / "small.yaml").read_bytes())
    _refused(_cli("validate", p), "not UTF-8")
    plan = tmp_path / "plan.json"
    plan.write_bytes(b"\xff" * 10)
    _refused(_cli("report", plan, "-o", tmp_path / "r"), "(file)")
    _refused(_cli("validate", tmp_path), "")  # a directory: click names the argument


def test_deep_nesting_huge_integers_duplicate_keys(tmp_path):
    p = tmp_path / "c.json"
    for text, field in [("[" * 5000 + "]" * 5000, "nest"), ("[" * 100000 + "]" * 100000, "nest"),
                        ('{"name": ' + "9" * 5000 + "}", "digits"), ('{"name": "a", "name": "b"}', "twice"),
                        ('{"name": NaN}', "NaN")]:
        p.write_text(text)
        _refused(_cli("validate", p), field)
    y = tmp_path / "c.yaml"
    y.write_text("name: a\nname: b\n")
    _refused(_cli("validate", y), "twice")


def test_yaml_alias_bomb_is_refused_in_bounded_work(tmp_path):
    s = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        s += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
    p = tmp_path / "c.yaml"
    p.write_text(s + "name: *a8\n")
    _refused(_cli("validate", p), "alias")
    # the error message of a shared alias tree is cut short without walking it
    from topo.model.spec import _short
    bomb = ["x"] * 10
    for _ in range(9):
        bomb = [bomb] * 10
    assert len(_short(bomb)) <= 60


def test_custom_graph_errors_name_the_field_and_leak_nothing(tmp_path):
    d = small(fabric={"family": "custom", "custom": {"edge_list": "/etc/passwd"}})
    out = _refused(_cli("validate", _write(tmp_path, d)), "fabric.custom.edge_list")
    assert "root:" not in out and "/etc/passwd" in out
    d["fabric"]["custom"]["edge_list"] = "."
    _refused(_cli("validate", _write(tmp_path, d)), "fabric.custom.edge_list")
    g = tmp_path / "g.graphml"
    for attr, value, field in [("gbps", "fast", "gbps"), ("gbps", "NaN", "gbps"), ("gbps", "-1", "gbps"),
                               ("tier", "leaf", "tier"), ("tier", "NaN", "tier")]:
        kind = "double" if attr == "gbps" else "int"
        g.write_text(f'<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns">'
                     f'<key id="k" for="{"edge" if attr == "gbps" else "node"}" attr.name="{attr}" '
                     f'attr.type="{"string" if value in ("fast", "leaf") else "double"}"/>'
                     f'<graph edgedefault="undirected"><node id="e0"><data key="k">{value if attr == "tier" else 0}'
                     f'</data></node><node id="s"/><edge source="e0" target="s"><data key="k">'
                     f'{value if attr == "gbps" else 1}</data></edge></graph></graphml>')
        del kind
        d["fabric"]["custom"] = {"graphml": str(g)}
        _refused(_cli("validate", _write(tmp_path, d)), field)


def test_matrix_csv_field_over_the_limit(tmp_path):
    m = tmp_path / "tm.csv"
    m.write_text("src,dst,bytes\nn0000-g0," + "x" * 140000 + ",1\n")
    d = small(traffic=[{"pattern": "matrix", "file": str(m)}])
    _refused(_cli("validate", _write(tmp_path, d)), "traffic[0].file")
    m.write_bytes(b"src,dst,bytes\n\xff\xfe,1,2\n")
    _refused(_cli("validate", _write(tmp_path, d)), "traffic[0].file")


VALIDATE_LIKE_OPTIMIZE = {
    "unknown pinned rack": (lambda d: d["jobs"][0].update(pin_racks=["nope"]), "jobs[0].pin_racks"),
    "explicit node unknown": (lambda d: d["jobs"][0].update(nodes=["n9999"]), "jobs[0].nodes"),
    "explicit CPU node": (lambda d: d["jobs"][2].update(nodes=["n0002", "n0005"]), "jobs[2].nodes"),
    "busy node unknown": (lambda d: d.update(busy_nodes=["zz"]), "busy_nodes"),
    "matrix names an unknown endpoint": (lambda d: d.update(traffic=[{"pattern": "matrix", "file": "tm.csv"}]),
                                         "traffic[0].file"),
}


@pytest.mark.parametrize("case", sorted(VALIDATE_LIKE_OPTIMIZE))
def test_validate_runs_every_check_optimize_runs_before_solving(tmp_path, case):
    change, field = VALIDATE_LIKE_OPTIMIZE[case]
    (tmp_path / "tm.csv").write_text("src,dst,bytes\nn0000-g0,nowhere,1\n")
    d = small()
    change(d)
    _refused(_cli("validate", _write(tmp_path, d)), field)


def test_report_refuses_plans_export_refuses(tmp_path):
    import json
    plan = json.loads((Path(__file__).parent / "golden" / "small-plan.json").read_text())
    for mutate, field in [(lambda p: p["placement"]["assignment"].update({"llm-a": [10 ** 9]}), "placement.assignment"),
                          (lambda p: p["placement"]["assignment"].update({"llm-a": [-1]}), "placement.assignment"),
                          (lambda p: p["cluster_file_after"].update(racks=[]), "cluster_file_after")]:
        bad = copy.deepcopy(plan)
        mutate(bad)
        f = tmp_path / "plan.json"
        f.write_text(json.dumps(bad))
        _refused(_cli("report", f, "-o", tmp_path / "r"), field)
        assert not (tmp_path / "r").exists()


def test_oversized_cluster_file_refused_by_size_before_parsing(tmp_path):
    from topo.core import limits
    p = tmp_path / "big.yaml"
    with open(p, "w") as fh:
        fh.write("name: x\ndescription: '")
        fh.write("y" * (limits.MAX_CLUSTER_FILE_BYTES + 10))
        fh.write("'\n")
    out = _refused(_cli("validate", p), "(file)")
    assert "at most" in out


def test_goals_objective_is_read_from_the_file(tmp_path):
    import json
    d = small()
    d["goals"]["objective"] = "power"
    d["goals"]["time_limit_s"] = 2
    p = _write(tmp_path, d)
    res = _cli("budget", p, "--json", "--workers", 1)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["objective"] == "power"
    res = _cli("budget", p, "--json", "--workers", 1, "--objective", "cost")
    assert json.loads(res.stdout)["objective"] == "cost"
    d["goals"]["objective"] = "cheapest"
    _refused(_cli("validate", _write(tmp_path, d)), "goals.objective")


def test_custom_graph_deeper_than_three_switch_tiers_is_refused(tmp_path):
    import corpus
    # the small example's edge list with a chain of switches above the spines: tiers 3 and 4
    g = tmp_path / "graph.txt"
    g.write_text(corpus.small_edge_list() + "spine0 top0 400\ntop0 top1 400\n")
    d = small(fabric={"family": "custom", "custom": {"edge_list": str(g)}})
    _refused(_cli("validate", _write(tmp_path, d)), "fabric.custom.edge_list")
    _refused(_cli("describe", _write(tmp_path, d)), "3 switch tiers")


def test_failure_mask_refuses_ids_out_of_range():
    from topo.routing.engine import failure_mask
    f = build(from_dict(small()))
    with pytest.raises(ValueError):
        failure_mask(f, failed_links=[-1])
    with pytest.raises(ValueError):
        failure_mask(f, failed_nodes=[f.n_nodes])
    assert failure_mask(f, failed_links=[0]).sum() == 2
