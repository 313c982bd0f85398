"""The front-end fabric (cluster file `front_end`): its counts by hand, the agent tiers' flows on it by
hand, the back-end unchanged by it, refusals by JSON path, the per-fabric commands, the Arm CPU preset,
the shipped example and the compiled kernels against their pure-Python twins."""
import copy
import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import EXAMPLES, cluster_dict, no_crash, sw, validate_refuses
from helpers.serving_cases import serve_json_compiled_and_pure

EXAMPLE = EXAMPLES / "serving-frontend.yaml"


def _tiny(front=True, cpu_back_end=False, agents=True):
    """2 racks x 2 nodes of 8 GPUs (one 400G NIC each on the front-end) and a rack of 4 CPU hosts with two
    200G NICs (front-end only unless ``cpu_back_end``, then with two 200G front-end NICs of its own); radix-16 switches on the back-end, radix-8 on the
    front-end; one colocated deployment of 2
    replicas at tp 8 (in order: n0000 and n0001) at 1,000 requests/s; an agent tier on the 4 CPU hosts
    sending 1 MB and receiving 100 kB per request."""
    d = cluster_dict(n_racks=2, nodes_per_rack=2, tiers=[{"switch": sw(16)}, {"switch": sw(16)}])
    d["node_types"].append({"name": "cpu", "accelerators": 0, "nics": 2, "nic_gbps": 200, "power_busy_kw": 0.5})
    d["racks"].append({"name": "c", "count": 1, "nodes": {"cpu": 4}})
    if front:
        d["front_end"] = {"fabric": {"tiers": [{"switch": sw(8)}, {"switch": sw(8)}]},
                          "node_types": {"gpu": {"nics": 1, "nic_gbps": 400},
                                         "cpu": ({"back_end": True, "nics": 2, "nic_gbps": 200} if cpu_back_end
                                                 else {"back_end": False})}}
    d["serving"] = {"deployments": [{
        "name": "m", "model": {"layers": 2, "hidden_size": 1024, "attention_heads": 8, "kv_heads": 8, "head_dim": 128},
        "load": {"requests_per_s": 1000, "prompt_tokens": 100, "output_tokens": 10},
        "colocated": {"replicas": 2, "tp": 8}}]}
    if agents:
        d["serving"]["agent_tiers"] = [{"name": "a", "node_type": "cpu", "deployments": ["m"],
                                        "request_bytes": 1_000_000, "response_bytes": 100_000}]
    return d


def test_front_end_counts_by_hand():
    """Front-end ports: 4 GPU nodes x 1 + 4 CPU hosts x 2 = 12 on radix-8 leaves at 1:1 (4 down, 4 up):
    3 leaves, 12 uplinks on radix-8 spines: 2 spines; 12 + 12 links. The back-end leaves the CPU hosts out
    (32 endpoints, 4 servers) and host i has the same name on both fabrics."""
    from topo.model.fabric import build
    from topo.model.frontend_build import build as build_front
    from topo.model.spec import from_dict
    c = from_dict(_tiny())
    be, fe = build(c), build_front(c)
    assert (be.n_endpoints, be.n_servers) == (32, 4)
    assert fe.n_endpoints == fe.n_servers == 8
    assert tuple(fe.tier_switch_counts) == (3, 2)
    up = fe.link_tier[::2]
    assert int((up == 0).sum()) == 12 and int((up == 1).sum()) == 12
    assert [fe.node_name(i) for i in range(fe.n_endpoints)] == [f"n{i:04d}-g0" for i in range(8)]
    assert [be.server_name(i) for i in range(4)] == [fe.server_name(i) for i in range(4)]
    assert fe.injection_gbps().tolist() == [400.0] * 4 + [400.0] * 4     # 1 x 400G; 2 x 200G
    assert c.counts() == {"racks": 2, "nodes": 4, "accelerators": 32, "endpoints": 32}


def test_agent_bytes_on_the_front_end_by_hand():
    """1,000 requests/s x 1 MB from 4 hosts to 2 replica entries (n0000, n0001): each host sends
    250 MB/s, 125 MB/s to each entry, so each entry host's front-end NIC receives 4 x 125 MB/s = 4 Gb/s
    of goodput, 4 / eff Gb/s on the wire of its 400G link; each CPU port carries 1 Gb/s / eff of 200G.
    Responses 1,000 x 100 kB from the 2 exits. No agent flow is left on the back-end."""
    from topo.model.spec import from_dict, wire_efficiency
    from topo.routing.serving import serving
    c = from_dict(_tiny())
    s = serving(c)
    eff = wire_efficiency(c)
    assert s["deployments"][0]["bytes_per_s"]["agent_request"] == 0.0
    assert s["deployments"][0]["bytes_per_s"]["agent_response"] == 0.0
    fe = s["front_end"]
    dep = fe["deployments"][0]
    assert dep["bytes_per_s"] == {"agent_request": pytest.approx(1e9), "agent_response": pytest.approx(1e8)}
    assert fe["flows"] == 4 * 2 * 2
    links = {h["link"]: h for h in fe["busiest_links"]}
    for entry in ("n0000-g0", "n0001-g0"):
        into = [h for n, h in links.items() if n.endswith("->" + entry)]
        assert len(into) == 1 and into[0]["load_gbps"] == pytest.approx(4 / eff)
    tiers = {t["tier"]: t for t in fe["tiers"]}
    assert tiers["endpoint-leaf"]["util_max"] == pytest.approx(4 / eff / 400)
    assert dep["max_util"] == pytest.approx(4 / eff / 400)
    assert dep["max_requests_per_s_at_target"] == pytest.approx(1000 * 0.8 / (4 / eff / 400))
    out_of_cpu = [h for n, h in links.items() if n.startswith("n0004-g0->")]
    assert out_of_cpu and all(h["load_gbps"] == pytest.approx(1 / eff) for h in out_of_cpu)
    # without front_end the same flows are on the (single) back-end fabric and there is no front_end part
    s0 = serving(from_dict(_tiny(front=False)))
    assert "front_end" not in s0 and s0["deployments"][0]["bytes_per_s"]["agent_request"] == pytest.approx(1e9)


def test_back_end_loads_unchanged_by_a_front_end():
    """The same cluster with the CPU hosts on the back-end and without a front_end, minus its agent flows,
    loads the back-end links exactly as the cluster with a front_end does (training and serving collectives
    stay on the back-end), and its job routing is identical."""
    from topo.model.fabric import build
    from topo.model.spec import from_dict
    from topo.routing.engine import analyze, route
    from topo.traffic.serving import KINDS, serving_traffic
    a = _tiny(front=False)
    b = _tiny(front=True, cpu_back_end=True)
    for d in (a, b):
        d["jobs"] = [{"name": "t", "accelerators": 16, "tp": 8, "collectives": [{"op": "allreduce", "bytes": 1e9}]}]
        d["serving"]["deployments"][0]["colocated"]["replicas"] = 1
    ca, cb = from_dict(a), from_dict(b)
    fa, fb = build(ca), build(cb)
    assert fa.n_links == fb.n_links and np.array_equal(fa.link_gbps, fb.link_gbps)
    sa, sb = serving_traffic(ca, fa), serving_traffic(cb, fb)
    agent = np.isin(sa.kind, [KINDS.index("agent_request"), KINDS.index("agent_response")])
    assert agent.any() and not np.isin(sb.kind, [KINDS.index("agent_request"), KINDS.index("agent_response")]).any()
    la = route(fa, sa.demands.select(~agent), "fluid").link_gbps_load
    lb = route(fb, sb.demands, "fluid").link_gbps_load
    assert np.array_equal(la, lb)
    assert np.array_equal(analyze(ca, fa, routing="fluid").loads, analyze(cb, fb, routing="fluid").loads)


def _edit(d, path, value):
    keys = path.split("/")
    for k in keys[:-1]:
        d = d[int(k)] if isinstance(d, list) else d[k]
    d[int(keys[-1]) if isinstance(d, list) else keys[-1]] = value


@pytest.mark.parametrize("edit, path", [
    (lambda d: _edit(d, "front_end/node_types/gpu", {}), "front_end.node_types.gpu.nics"),
    (lambda d: _edit(d, "front_end/node_types/gpu", {"nics": 1}), "front_end.node_types.gpu.nic_gbps"),
    (lambda d: _edit(d, "front_end/node_types/gpu", {"nics": 1, "nic_gbps": 400, "back_end": False}),
     "front_end.node_types.gpu.back_end"),
    (lambda d: _edit(d, "front_end/node_types/tpu", {"nics": 1, "nic_gbps": 400}), "front_end.node_types.tpu"),
    (lambda d: d["front_end"]["node_types"].pop("gpu"), "front_end.node_types"),
    (lambda d: d["racks"].reverse(), "racks[0]"),
    (lambda d: _edit(d, "racks/0/nodes/cpu", 1), "racks[0].nodes.cpu"),
    (lambda d: _edit(d, "front_end/fabric/tiers/0/switch", "no-such-switch"), "front_end.fabric.tiers[0].switch"),
    (lambda d: (_edit(d, "front_end/fabric/planes", 2), _edit(d, "front_end/node_types/gpu/nic_ports", 3)),
     "front_end.node_types.gpu.nic_ports"),
    (lambda d: _edit(d, "racks/1", {"name": "c", "count": 10, "nodes": {"cpu": 1000}}),
     "front_end.node_types.cpu.back_end"),
    (lambda d: _edit(d, "front_end/fabric/tiers", [{"switch": sw(4)}, {"switch": sw(4)}]),
     "front_end.fabric.tiers[1].radix"),
    (lambda d: d["racks"].pop(0), "front_end.node_types.cpu.back_end"),
    (lambda d: _edit(d, "front_end/node_types/cpu", {}), "front_end.node_types.cpu.nics"),
    (lambda d: _edit(d, "front_end/node_types/cpu", {"nics": 2}), "front_end.node_types.cpu.nic_gbps"),
    (lambda d: _edit(d, "front_end/fabric/family", "rail_optimized"), "front_end.fabric.family"),
    (lambda d: _edit(d, "front_end/fabric/family", "rail_only"), "front_end.fabric.family"),
    (lambda d: d["node_types"].append({"name": "x", "accelerators": 0, "nics": 1, "nic_gbps": 100}),
     "node_types[2].power_busy_kw"),
])
def test_refusals_name_the_field(edit, path, tmp_path):
    """Every front_end combination that cannot be honoured exactly is refused by `topo validate` (exit 2)
    with its JSON path. 2 front-end planes: a NIC's 3 ports cannot spread over them (the back-end's rule,
    checked on the derived cluster); 10,000 front-end-only hosts: host names would have 5 digits on the
    front-end and 4 on the back-end; radix-4 front-end switches: 6 leaves do not fit a radix-4 spine (the
    builder's refusal, found by `topo validate`). Every node front-end only: the back-end would be empty.
    A CPU node on the back-end (back_end: true, the default) without stated front-end NICs: its own NIC is
    cabled to the back-end. A rail family: the front-end has no accelerators to give rails. A node type in no rack with an error of
    its own: refused at its own path."""
    d = _tiny()
    edit(d)
    validate_refuses(d, path, tmp_path)


def test_describe_per_fabric_and_derived_values(tmp_path):
    from topo.cli import main
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_tiny()))
    r = CliRunner().invoke(main, ["describe", str(p), "--fabric", "front-end", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["fabric"] == "front-end" and d["cpu_hosts"] == 8 and d["accelerators"] == 0
    assert [t["switches"] for t in d["tiers"]] == [3, 2]
    derived = {x["what"]: x for x in d["structure"]["derived"]}
    assert derived["front_end.node_types.cpu"]["value"] == "2 x 200G, 1 port(s) per NIC"
    r = CliRunner().invoke(main, ["describe", str(p), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["fabric"] == "back-end"
    q = tmp_path / "n.json"
    q.write_text(json.dumps(_tiny(front=False)))
    r = CliRunner().invoke(main, ["describe", str(q), "--fabric", "front-end"])
    assert r.exit_code == 2 and "front_end" in r.output and no_crash(r)
    r = CliRunner().invoke(main, ["describe", str(q), "--json"])
    assert r.exit_code == 0 and "fabric" not in json.loads(r.output)      # unchanged without front_end


def test_analyze_failures_on_the_front_end(tmp_path):
    """analyze routes a synthetic pattern on the front-end and refuses jobs traffic there; failures counts
    hosts cut off (a leaf of the front-end takes its hosts' front-end NICs with it)."""
    from topo.cli import main
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_tiny()))
    r = CliRunner().invoke(main, ["analyze", str(p), "--fabric", "front-end", "--traffic", "uniform", "--json"])
    assert r.exit_code == 0, r.output
    a = json.loads(r.output)
    assert a["fabric"] == "front-end" and a["endpoints"] == 8
    r = CliRunner().invoke(main, ["analyze", str(p), "--fabric", "front-end"])
    assert r.exit_code == 2 and "--traffic" in r.output and no_crash(r)
    r = CliRunner().invoke(main, ["failures", str(p), "--fabric", "front-end", "--json"])
    assert r.exit_code == 0, r.output
    f = json.loads(r.output)
    rows = {x["name"]: x for x in f["single"] if x["kind"] == "switch"}
    # leaf0 holds the 4 GPU hosts' 400G ports: half of the 3,200 Gb/s of host ports, 4 hosts cut off; the
    # next leaf 2 CPU hosts' 2 x 200G: a quarter, 2 hosts
    assert f["fabric"] == "front-end"
    assert rows["leaf0"]["bandwidth_lost_frac"]["endpoint-leaf"] == pytest.approx(0.5)
    assert rows["leaf0"]["endpoints_isolated"] == 4
    assert rows["leaf1"]["bandwidth_lost_frac"]["endpoint-leaf"] == pytest.approx(0.25)
    assert rows["leaf1"]["endpoints_isolated"] == 2
    r = CliRunner().invoke(main, ["failures", str(p), "--fabric", "front-end", "--plan", str(p)])
    assert r.exit_code == 2 and "--plan" in r.output and no_crash(r)


def test_arm_cpu_preset():
    from topo.model import catalog
    from topo.model.spec import from_dict
    g = catalog.PLATFORMS["grace-cpu-superchip"]
    assert (g["accelerators"], g["cpu_cores"], g["memory_gb"], g["tdp_w"], g["nic_gbps"]) == (0, 144, 960, 500, 400)
    assert "http" in g["source"] and set(g["unverified"]) <= set(g)
    d = _tiny()
    d["node_types"][1] = {"name": "cpu", "platform": "grace-cpu-superchip"}
    c = from_dict(d)
    assert c.node_types["cpu"].power_busy_kw == 0.5 and c.node_types["cpu"].nic_gbps == 400
    assert "cpu-host" in catalog.PLATFORMS


def test_example_serve_and_optimize_plan_section(tmp_path):
    """The shipped example: agent traffic 200 requests/s x 256 KiB and x 16 KiB on the front-end (24 hosts
    on one tier, a single 64-port switch: 24 host links and no switch-to-switch link); KV, MoE and TP on the back-end; `topo optimize` prints the
    front-end line and writes a typed front_end section in the plan. By hand: each of the 2 prefill entry
    hosts receives 200 x 256 KiB / 2 = 26.2 MB/s = 0.2097 Gb/s of goodput, / eff on the wire of 400G."""
    import topo
    from topo.cli import main
    from topo.io.plan import typed
    from topo.model.spec import wire_efficiency
    from topo.routing.serving import serving
    c = topo.load(EXAMPLE)
    s = serving(c)
    fe = s["front_end"]
    assert (fe["endpoints"], fe["tier_switch_counts"], fe["links"]) == (24, [1], 24)
    assert [t["tier"] for t in fe["tiers"]] == ["endpoint-leaf"]
    dep = fe["deployments"][0]
    assert dep["max_util"] == pytest.approx(200 * 256 * 1024 / 2 * 8 / 1e9 / wire_efficiency(c) / 400)
    assert dep["bytes_per_s"]["agent_request"] == pytest.approx(200 * 256 * 1024)
    assert dep["bytes_per_s"]["agent_response"] == pytest.approx(200 * 16 * 1024)
    back = s["deployments"][0]["bytes_per_s"]
    assert back["kv_transfer"] == pytest.approx(200 * 2000 * 2 * 32 * 8 * 128 * 2)
    assert back["moe_dispatch"] > 0 and back["agent_request"] == 0
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["optimize", str(EXAMPLE), "-o", str(out), "--no-failures", "--time-limit", "2"])
    assert r.exit_code == 0, r.output
    assert "front-end fabric (1 switches, 24 links): agent traffic moe 0.05571 GB/s" in r.output
    plan = json.loads((out / "plan.json").read_text())
    p = typed(plan)
    assert p.front_end is not None and p.front_end.endpoints == 24
    assert "front_end" not in plan["serving"]
    assert p.front_end.deployments[0].bytes_per_s["agent_request"] == pytest.approx(200 * 256 * 1024)


def test_analyze_serving_section_has_the_front_end(tmp_path):
    from topo.cli import main
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_tiny()))
    r = CliRunner().invoke(main, ["analyze", str(p), "--json"])
    assert r.exit_code == 0, r.output
    fe = json.loads(r.output)["serving"]["front_end"]
    assert fe["deployments"][0]["bytes_per_s"]["agent_request"] == pytest.approx(1e9)
    r = CliRunner().invoke(main, ["analyze", str(p)])
    assert r.exit_code == 0 and "front-end fabric: clos, 8 endpoints" in r.output


def test_front_end_equal_under_the_pure_python_twins(tmp_path):
    """`topo serve --json` on the tiny cluster (the front-end part routed under fluid and RoCE hashing)
    gives the same document with the compiled kernels and with TOPO_PURE_PYTHON=1."""
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_tiny()))
    compiled, pure = serve_json_compiled_and_pure(p, "--placement", "in-order")
    assert compiled["front_end"]["max_util"] > 0
    assert compiled == pure


def test_export_front_end_graphml_only(tmp_path):
    """`topo export --fabric front-end` writes the front-end fabric as GraphML and refuses other formats."""
    import networkx as nx
    from topo.cli import main
    from topo.io.plan import new_plan
    from topo.model.spec import from_dict
    d = copy.deepcopy(_tiny())
    plan = new_plan(cluster_file=from_dict(d).file.model_dump(mode="json"), placement={"assignment": {}},
                    metrics_before=None)
    pp = tmp_path / "plan.json"
    pp.write_text(json.dumps(plan))
    r = CliRunner().invoke(main, ["export", str(pp), "--format", "graphml", "--fabric", "front-end", "--json"])
    assert r.exit_code == 0, r.output
    files = json.loads(r.output)["files"]
    g = nx.read_graphml(files[0])
    assert g.number_of_edges() == 24 and "n0007-g0" in g
    r = CliRunner().invoke(main, ["export", str(pp), "--format", "kueue", "--fabric", "front-end"])
    assert r.exit_code == 2 and "--format" in r.output and no_crash(r)


def test_shared_section_errors_reported_once(tmp_path):
    """An error in a section the front-end shares with the file (transport.adaptive) is reported once, at
    its own path, not again under front_end."""
    from topo.cli import main
    d = _tiny()
    d["transport"] = {"adaptive": True}
    p = tmp_path / "c.json"
    p.write_text(json.dumps(d))
    r = CliRunner().invoke(main, ["validate", str(p)])
    assert r.exit_code == 2 and no_crash(r), r.output
    assert r.output.count("transport.adaptive") == 1 and "front_end (" not in r.output, r.output


@pytest.mark.parametrize("command", ["serve", "analyze", "optimize"])
def test_agent_tier_of_a_type_in_no_rack(command, tmp_path):
    """An agent tier naming a node type that no rack holds gets the same exit-2 error with a front_end as
    without one."""
    from topo.cli import main
    out = []
    for front in (True, False):
        d = _tiny(front=front)
        d["node_types"].append({"name": "cpu2", "accelerators": 0, "nics": 1, "nic_gbps": 100, "power_busy_kw": 0.5})
        d["serving"]["agent_tiers"].append({"name": "b", "node_type": "cpu2", "deployments": ["m"],
                                            "request_bytes": 1000, "response_bytes": 1000})
        p = tmp_path / f"c{front}.json"
        p.write_text(json.dumps(d))
        args = [command, str(p)] + (["-o", str(tmp_path / "out"), "--no-failures"] if command == "optimize" else [])
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2 and no_crash(r), r.output
        out.append(r.output.replace(str(p), "FILE"))
    assert "serving.agent_tiers[1].node_type" in out[0] and out[0] == out[1]


def test_front_end_builder_errors_named_under_front_end(tmp_path):
    """The front-end builder's refusal (radix-4 spines for 6 leaves) is named under front_end by serve and
    analyze and by topo.serving, as by validate; never as the back-end's fabric path."""
    from topo.cli import main
    from topo.core.errors import SpecError
    from topo.model.spec import from_dict
    from topo.routing.serving import serving
    d = _tiny()
    _edit(d, "front_end/fabric/tiers", [{"switch": sw(4)}, {"switch": sw(4)}])
    with pytest.raises(SpecError) as e:
        serving(from_dict(d))
    assert [p for p, _ in e.value.errors] == ["front_end.fabric.tiers[1].radix"]
    p = tmp_path / "c.json"
    p.write_text(json.dumps(d))
    for command in ("serve", "analyze"):
        r = CliRunner().invoke(main, [command, str(p)])
        assert r.exit_code == 2 and no_crash(r), r.output
        assert "front_end.fabric.tiers[1].radix" in r.output and "\n  fabric." not in r.output, r.output


def test_own_nic_ports_carried_and_shown():
    """A CPU node taking its own NICs on the front-end takes its nic_ports too (2 ports per NIC: 4 hosts x
    2 NICs x 2 ports of 100G = 16 ports, + 4 GPU ports = 20 leaf ports), shown in the derived value."""
    from topo.model.frontend import derived_values
    from topo.model.frontend_build import build as build_front
    from topo.model.spec import from_dict
    d = _tiny()
    d["node_types"][1]["nic_ports"] = 2
    c = from_dict(d)
    fe = build_front(c)
    up = fe.link_tier[::2]
    assert int((up == 0).sum()) == 20
    assert fe.injection_gbps().tolist() == [400.0] * 8
    v = {x["what"]: x for x in derived_values(c)}["front_end.node_types.cpu"]
    assert v["value"] == "2 x 200G, 2 port(s) per NIC" and v["stated"] is False
    d["front_end"]["node_types"]["cpu"]["nic_ports"] = 1      # stated: not derived from the node
    assert int((build_front(from_dict(d)).link_tier[::2] == 0).sum()) == 12


def test_describe_front_end_keeps_platform_unverified_marks(tmp_path):
    """With the Grace preset on the front-end only, describe --fabric front-end marks the preset's
    unverified figures as the back-end's describe does; a front_end entry stating nic_gbps drops that
    figure (it is the file's own)."""
    from topo.cli import main
    d = _tiny()
    d["node_types"][1] = {"name": "cpu", "platform": "grace-cpu-superchip"}

    def marks(which):
        p = tmp_path / "c.json"
        p.write_text(json.dumps(d))
        r = CliRunner().invoke(main, ["describe", str(p), "--fabric", which, "--json"])
        assert r.exit_code == 0, r.output
        return {x["name"]: x["fields"] for x in json.loads(r.output)["unverified_figures"] if x["kind"] == "platform"}
    back, front = marks("back-end"), marks("front-end")
    assert "nic_gbps" in front["grace-cpu-superchip"] and front == back
    d["front_end"]["node_types"]["cpu"]["nic_gbps"] = 200
    front = marks("front-end")
    assert "nic_gbps" not in front["grace-cpu-superchip"] and "power_busy_kw" in front["grace-cpu-superchip"]
