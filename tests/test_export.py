"""Exports checked against their formats (FORMATS.md), atomic writing, `topo export`."""
from __future__ import annotations

import copy
import csv
import io
import json
import math
import random
import re
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import topo
from topo.io import exports as ex
from topo.core.atomic import OutputDir, StagedFiles, write_text_atomic
from topo.cli.app import main
from topo.model.hostlist import collect, expand

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# --- helpers (independent of the code under test) ---------------------------------------
def in_order(cluster, fabric) -> dict:
    """Jobs in file order onto the free accelerator endpoints, endpoint order."""
    free = np.flatnonzero(fabric.ep_is_accel)
    out, k = {}, 0
    for j in cluster.file.jobs:
        if k + j.accelerators <= free.size:
            out[j.name] = free[k:k + j.accelerators].tolist()
            k += j.accelerators
    return out


def split_top(expr: str) -> list[str]:
    """Split a Slurm hostlist at commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in expr:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p]


def slurm_expand(expr: str) -> list[str]:
    """Expand a Slurm hostlist (comma lists of prefix[ranges]suffix), by the man-page rules."""
    out = []
    for part in split_top(expr):
        m = re.fullmatch(r"([^\[\]]*)\[([0-9,\-]+)\]([^\[\]]*)", part)
        if not m:
            assert "[" not in part and "]" not in part, part
            out.append(part)
            continue
        pre, body, suf = m.groups()
        for r in body.split(","):
            if "-" in r:
                a, b = r.split("-")
                assert int(a) <= int(b)
                w = len(a)
                out += [f"{pre}{i:0{w}d}{suf}" for i in range(int(a), int(b) + 1)]
            else:
                out.append(f"{pre}{r}{suf}")
    return out


def parse_topology_conf(text: str) -> list[dict]:
    """Lines of key=value pairs; keys case-insensitive; '#' starts a comment."""
    recs = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        rec = {}
        for tok in line.split():
            k, v = tok.split("=", 1)
            rec[k.lower()] = v
        recs.append(rec)
    return recs


def check_tree(switches: dict, expected_nodes: set):
    """switches: name -> {"nodes": [...]} or {"switches": [...]}. A strict, connected tree."""
    parent = {}
    seen_nodes = []
    for name, s in switches.items():
        assert len(name) <= 64
        for c in s.get("switches", []):
            assert c in switches, f"{name} lists unknown switch {c}"
            assert c not in parent, f"{c} has two parents"
            parent[c] = name
        seen_nodes += s.get("nodes", [])
    roots = [n for n in switches if n not in parent]
    assert len(roots) == 1, roots
    for n in switches:  # every switch reaches the root without a cycle
        hops, x = 0, n
        while x in parent:
            x = parent[x]
            hops += 1
            assert hops <= len(switches)
        assert x == roots[0]
    assert len(seen_nodes) == len(set(seen_nodes)), "a node is under two leaves"
    assert set(seen_nodes) == expected_nodes


def all_server_names(f) -> set:
    return {f.server_name(i) for i in range(f.n_servers)}


def accel_server_names(f) -> set:
    return {f.server_name(i) for i in np.unique(f.ep_server[f.ep_is_accel])}


@pytest.fixture(scope="module")
def small():
    c = topo.load(EXAMPLES / "small.yaml")
    f = topo.build(c)
    plan = {"placement": {"assignment": in_order(c, f)}}
    return c, f, plan


@pytest.fixture(scope="module")
def rail():
    c = topo.load(EXAMPLES / "h100-rail-roce.yaml")
    return c, topo.build(c)


@pytest.fixture(scope="module")
def helios():
    c = topo.load(EXAMPLES / "helios-mi450-uec.yaml")
    return c, topo.build(c)


def regular_cluster(tiers=2):
    """An all-GPU cluster whose leaves and spines are uniform (htsim-exportable)."""
    if tiers == 2:
        t, racks, sw = [{"switch": "th4-64x400", "oversubscription": 1}, {"switch": "th4-64x400"}], 4, {}
    else:  # radix-8 switches: 4 endpoints per leaf, 4 leaves per pod, 4 pods
        sw = {"sw8": {"radix": 8, "port_gbps": 400, "power_w": 100, "cost_usd": 1000}}
        t, racks = [{"switch": "sw8"}, {"switch": "sw8"}, {"switch": "sw8"}], 2
    d = {"name": "regular", "catalog": {"switches": sw},
         "node_types": [{"name": "gpu", "platform": "hgx-h100"}],
         "racks": [{"name": "r", "count": racks, "nodes": {"gpu": 4}, "power_limit_kw": 60}],
         "fabric": {"family": "clos", "tiers": t},
         "jobs": [{"name": "a", "accelerators": 32, "tp": 8,
                   "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1GiB"}]},
                  {"name": "b", "accelerators": 16, "tp": 4, "ep": 4,
                   "collectives": [{"op": "alltoall", "group": "ep", "bytes": "256MiB"}]}]}
    c = topo.from_dict(d)
    return c, topo.build(c)


# --- hostlist ---------------------------------------------------------------------------
def test_hostlist_roundtrip_property():
    rng = random.Random(11)
    for _ in range(300):
        names = set()
        for _ in range(rng.randint(1, 40)):
            prefix = rng.choice(["n", "node", "gpu-a", "rack7-n", "x"])
            width = rng.choice([1, 2, 3, 4])
            names.add(f"{prefix}{rng.randrange(0, 10 ** width):0{width}d}")
        if rng.random() < 0.2:
            names.add(rng.choice(["login", "head-node", "mgmt"]))
        expr = collect(sorted(names))
        back = [h for part in split_top(expr) for h in expand(part)]
        assert sorted(back) == sorted(names), expr
        assert sorted(slurm_expand(expr)) == sorted(names), expr


def test_hostlist_compresses_ranges():
    names = [f"n{i:04d}" for i in range(0, 64)] + ["n0100"]
    assert collect(names) == "n[0000-0063,0100]"


# --- Slurm ------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["small", "rail", "helios"])
def test_slurm_conf_tree_covers_every_node(which, small, rail, helios):
    f = {"small": small, "rail": rail, "helios": helios}[which][1]
    text = ex.render_slurm_conf_tree(f)["topology-tree.conf"]
    switches = {}
    for rec in parse_topology_conf(text):
        name = rec["switchname"]
        assert name not in switches
        s = {}
        if "nodes" in rec:
            s["nodes"] = slurm_expand(rec["nodes"])
        if "switches" in rec:
            s["switches"] = slurm_expand(rec["switches"])
        assert len(s) == 1, rec
        switches[name] = s
    check_tree(switches, all_server_names(f))


def test_slurm_tree_leaf_is_the_first_ports_leaf(rail):
    f = rail[1]
    text = ex.render_slurm_conf_tree(f)["topology-tree.conf"]
    leaf_of = {}
    for rec in parse_topology_conf(text):
        for n in slurm_expand(rec.get("nodes", "")):
            leaf_of[n] = rec["switchname"]
    first_ep = np.searchsorted(f.ep_server, np.arange(f.n_servers))
    for s in range(0, f.n_servers, 17):
        e = int(first_ep[s])
        assert f.ep_local[e] == 0
        leaf = int(f.link_dst[f.adj[f.indptr[e]]])
        assert leaf_of[f.server_name(s)] == f.node_name(leaf)


def test_slurm_conf_block(small, helios):
    for f in (small[1], helios[1]):
        recs = parse_topology_conf(ex.render_slurm_conf_block(f)["topology-block.conf"])
        sizes = [int(x) for x in recs[-1]["blocksizes"].split(",")]
        blocks = {r["blockname"]: slurm_expand(r["nodes"]) for r in recs[:-1]}
        nodes = [n for b in blocks.values() for n in b]
        assert len(nodes) == len(set(nodes))
        assert set(nodes) == accel_server_names(f)
        assert all(len(b) >= sizes[0] for b in blocks.values())
        assert all(b == 2 * a for a, b in zip(sizes, sizes[1:]))
        assert sizes[-1] <= len(nodes)
        # a block is one scale-up domain: every server's first accelerator shares the domain
        idx = {f.server_name(i): i for i in range(f.n_servers)}
        for b in blocks.values():
            doms = {int(f.ep_domain[np.flatnonzero((f.ep_server == idx[n]) & f.ep_is_accel)[0]]) for n in b}
            assert len(doms) == 1


def test_helios_blocks_are_racks_of_nvl_domains(helios):
    f = helios[1]
    recs = parse_topology_conf(ex.render_slurm_conf_block(f)["topology-block.conf"])
    per_block = {len(slurm_expand(r["nodes"])) for r in recs[:-1]}
    # a 72-GPU domain of 4-GPU servers spans 18 servers
    eps_per_server = int(np.bincount(f.ep_server).max())
    assert per_block == {int(f.domain_size[0]) // eps_per_server}
    assert recs[-1]["blocksizes"].split(",")[0] == str(per_block.pop())


def test_slurm_yaml_two_topologies(small):
    c, f, plan = small
    doc = yaml.safe_load(ex.render_slurm_yaml(f, plan)["topology.yaml"])
    assert isinstance(doc, list) and len(doc) == 2
    names = [t["topology"] for t in doc]
    assert len(set(names)) == 2
    for t in doc:
        assert next(iter(t)) == "topology"
        assert sum(k in t for k in ("tree", "block", "flat")) == 1
    assert [t.get("cluster_default") for t in doc].index(True) == 0
    tree = {}
    for s in doc[0]["tree"]["switches"]:
        e = {}
        if "nodes" in s:
            e["nodes"] = slurm_expand(s["nodes"])
        if "children" in s:
            e["switches"] = slurm_expand(s["children"])
        tree[s["switch"]] = e
    check_tree(tree, all_server_names(f))
    blk = doc[1]["block"]
    nodes = [n for b in blk["blocks"] for n in slurm_expand(b["nodes"])]
    assert sorted(nodes) == sorted(accel_server_names(f))
    assert all(isinstance(x, int) for x in blk["block_sizes"])


def test_slurm_placed_nodes_only(small):
    c, f, plan = small
    doc = yaml.safe_load(ex.render_slurm_yaml(f, plan, nodes="placed")["topology.yaml"])
    placed = {f.server_name(s) for eps in plan["placement"]["assignment"].values() for s in f.ep_server[eps]}
    tree = {s["switch"]: ({"nodes": slurm_expand(s["nodes"])} if "nodes" in s else {"switches": slurm_expand(s["children"])})
            for s in doc[0]["tree"]["switches"]}
    check_tree(tree, placed)
    with pytest.raises(topo.SpecError, match="nodes: "):
        ex.render_slurm_yaml(f, {"placement": {"assignment": {}}}, nodes="placed")


def test_slurm_explicit_block_sizes(small):
    f = small[1]
    recs = parse_topology_conf(ex.render_slurm_conf_block(f, block_sizes=[1, 4])["topology-block.conf"])
    assert recs[-1]["blocksizes"] == "1,4"


# --- Kueue ------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["small", "helios"])
def test_kueue_topology_and_labels(which, small, helios):
    f = {"small": small, "helios": helios}[which][1]
    files = ex.render_kueue(f, None, label_prefix="example.com/net-")
    topo_doc = yaml.safe_load(files["kueue-topology.yaml"])
    assert topo_doc["apiVersion"] == ex.DEFAULT_KUEUE_API and topo_doc["kind"] == "Topology"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", topo_doc["metadata"]["name"])
    levels = [l["nodeLabel"] for l in topo_doc["spec"]["levels"]]
    assert 1 <= len(levels) <= 16 and len(set(levels)) == len(levels)
    assert levels[-1] == "kubernetes.io/hostname"
    fabric_levels = [l for l in levels if l.startswith("example.com/net-")]
    # coarsest first: tier numbers decrease towards the host
    nums = [int(l.rsplit("-", 1)[1]) for l in fabric_levels]
    assert nums == sorted(nums, reverse=True) and nums[-1] == 0
    nodes = list(yaml.safe_load_all(files["node-labels.yaml"]))
    assert {d["metadata"]["name"] for d in nodes} == all_server_names(f)
    labels = {d["metadata"]["name"]: d["metadata"]["labels"] for d in nodes}
    for d in nodes:
        assert d["kind"] == "Node" and d["apiVersion"] == "v1"
        for k in levels[:-1]:
            v = d["metadata"]["labels"][k]
            assert len(v) <= 63 and re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", v)
    # levels nest: a value of a finer level lies under exactly one value of each coarser level
    for fine_i in range(1, len(levels) - 1):
        for coarse_i in range(fine_i):
            up = {}
            for lab in labels.values():
                key = tuple(lab[l] for l in levels[coarse_i + 1:fine_i + 1])
                up.setdefault(key, set()).add(lab[levels[coarse_i]])
            assert all(len(v) == 1 for v in up.values())
    # the kubectl script sets the same labels
    sh = files["node-labels.sh"].splitlines()
    cmds = [l for l in sh if l.startswith("kubectl label node ")]
    assert len(cmds) == len(nodes)
    first = cmds[0].split()
    kv = dict(x.split("=", 1) for x in first[5:])
    assert kv == labels[first[3]]


def test_kueue_api_version_and_domain_label(small):
    f = small[1]
    files = ex.render_kueue(f, None, api_version="kueue.x-k8s.io/v1beta1", domain_label=None)
    assert yaml.safe_load(files["kueue-topology.yaml"])["apiVersion"] == "kueue.x-k8s.io/v1beta1"
    for d in yaml.safe_load_all(files["node-labels.yaml"]):
        assert ex.DEFAULT_DOMAIN_LABEL not in d["metadata"]["labels"]


@pytest.mark.parametrize("opt,value,field", [
    ("api_version", "v1beta1", "api_version"),                    # no group
    ("api_version", "kueue.x-k8s.io/v1alpha1", "api_version"),    # not served by Kueue's Topology CRD
    ("api_version", "example.com/v1beta2", "api_version"),
    ("domain_label", "a b/$(id)", "domain_label"),
    ("domain_label", "kubernetes.io/hostname", "domain_label"),
    ("domain_label", "fabric.topograph.run/tier-1", "domain_label"),
    ("label_prefix", "bad prefix/", "label_prefix"),
    ("label_prefix", "x/" + "a" * 63, "label_prefix"),
])
def test_export_options_refused_before_anything_is_written(small, tmp_path, opt, value, field):
    c, f, plan = small
    for fmt in ("kueue", "all", "slurm-yaml"):
        with pytest.raises(topo.SpecError) as e:
            ex.export(fmt, f, plan, tmp_path / fmt, cluster=c, **{opt: value})
        assert e.value.errors[0][0] == field
        assert not (tmp_path / fmt).exists()
    if opt == "api_version" and "/" not in value:
        assert "kueue.x-k8s.io/v1beta1" in e.value.errors[0][1]   # the hint


def test_cli_export_bad_options_exit_2(tmp_path):
    write_plan(tmp_path / "p.json", EXAMPLES / "small.yaml")
    for args in (["--kueue-api", "v1beta1"], ["--domain-label", "a b/$(id)"], ["--label-prefix", "-x"]):
        r = CliRunner().invoke(main, ["export", str(tmp_path / "p.json"), "--format", "all", "-o",
                                      str(tmp_path / "out"), *args])
        assert r.exit_code == 2, r.output
        assert args[0] in r.output and "Traceback" not in r.output
        assert not (tmp_path / "out").exists()


def test_label_values_hashed_like_topograph():
    # FNV-1a 64 reference vectors
    assert ex.fnv1a_64(b"") == 0xCBF29CE484222325
    assert ex.fnv1a_64(b"a") == 0xAF63DC4C8601EC8C
    assert ex.fnv1a_64(b"foobar") == 0x85944171F73967E8
    assert ex.label_value("leaf3") == "leaf3"
    long = "s" * 64
    v = ex.label_value(long)
    assert v == "x" + format(ex.fnv1a_64(long.encode()), "x") and len(v) <= 63
    assert ex.label_value("s" * 63) == "s" * 63


# --- GraphML ----------------------------------------------------------------------------
def test_graphml_reads_back_as_the_same_fabric(small, tmp_path):
    c, f, plan = small
    written = ex.export_graphml(f, plan, tmp_path)
    assert [p.name for p in written] == ["fabric.graphml"]
    g = nx.read_graphml(str(written[0]), force_multigraph=True)
    ref = f.to_networkx()
    ref = nx.relabel_nodes(ref, {i: d["name"] for i, d in ref.nodes(data=True)})
    assert g.number_of_nodes() == ref.number_of_nodes() and g.number_of_edges() == ref.number_of_edges()
    # same edge multiset with capacities, under the same names
    key = lambda u, v, d: (min(u, v), max(u, v), float(d["gbps"]), int(d["tier"]))
    assert sorted(key(u, v, d) for u, v, d in g.edges(data=True)) == sorted(key(u, v, d) for u, v, d in ref.edges(data=True))
    # and isomorphic as graphs, matching tiers and capacities
    nm = nx.algorithms.isomorphism.categorical_node_match("tier", None)
    em = nx.algorithms.isomorphism.categorical_multiedge_match("gbps", None)
    assert nx.is_isomorphic(g, ref, node_match=nm, edge_match=em)


# --- ASTRA-sim --------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["small", "rail", "helios"])
def test_astra_sim_network(which, small, rail, helios):
    f = {"small": small, "rail": rail, "helios": helios}[which][1]
    text = ex.render_astra_sim(f)["astra-sim-network.yml"]
    assert "abstraction" in text.splitlines()[1]
    d = yaml.safe_load(text)
    assert set(d) == {"topology", "npus_count", "bandwidth", "latency"}
    n = len(d["topology"])
    assert all(len(d[k]) == n for k in d)
    assert set(d["topology"]) <= {"Ring", "FullyConnected", "Switch"}
    assert math.prod(d["npus_count"]) == int(f.ep_is_accel.sum())
    assert all(x > 0 for x in d["bandwidth"]) and all(x >= 0 for x in d["latency"])
    # the first dimension is the scale-up domain when there is one
    if int(f.domain_size.max()) > 1:
        assert d["npus_count"][0] == int(np.bincount(f.domain_size).argmax())
        assert d["bandwidth"][0] == pytest.approx(float(np.median(f.domain_gbps)) / 8, rel=1e-3)


def test_astra_sim_bandwidth_and_latency_per_level(rail, helios):
    f = rail[1]
    dims = {d["kind"]: d for d in ex.astra_dims(f)}
    # rail example: 8 GPUs per NVLink domain, 64 servers per rail group under one leaf per rail, 1:1 spines
    assert dims["scale-up"]["npus"] == 8 and dims["leaf"]["npus"] == 64 and dims["fabric"]["npus"] == 4
    assert dims["leaf"]["bandwidth_GBps"] == pytest.approx(400 / 8)
    assert dims["fabric"]["bandwidth_GBps"] == pytest.approx(400 / 8)     # non-blocking: no 1/31 share
    up = (np.arange(f.n_links) & 1) == 0
    mean = lambda t: float(f.link_length_m[up & (f.link_tier == t)].mean())
    assert dims["leaf"]["latency_ns"] == pytest.approx(2 * mean(0) * ex.PROPAGATION_NS_PER_M)
    assert dims["fabric"]["latency_ns"] == pytest.approx(2 * (mean(0) + mean(1)) * ex.PROPAGATION_NS_PER_M)
    assert dims["scale-up"]["latency_ns"] == 0.0
    # helios: 3 planes x 800G = 300 GB/s per GPU across the fabric
    hd = ex.astra_dims(helios[1])
    assert hd[-1]["bandwidth_GBps"] == pytest.approx(3 * 800 / 8)


def test_astra_sim_bandwidth_never_exceeds_injection():
    """A leaf with more uplink than downlink capacity (oversubscription < 1) gives no more than the NIC."""
    c = topo.load(EXAMPLES / "meta-llama3-24k-roce.yaml")
    f = topo.build(c)
    dims = ex.astra_dims(f)
    inj = float(np.median(f.injection_gbps()[f.ep_is_accel])) / 8
    assert all(d["bandwidth_GBps"] <= inj + 1e-9 for d in dims if d["kind"] != "scale-up")
    os0, os1 = f.tier_oversubscription[:2]
    assert dims[-1]["bandwidth_GBps"] == pytest.approx(min(inj, inj / os0, inj / (os0 * os1)))


def test_astra_latency_option(small):
    f = small[1]
    n = len(ex.astra_dims(f))
    d = yaml.safe_load(ex.render_astra_sim(f, astra_latency_ns=[7.0] * n)["astra-sim-network.yml"])
    assert d["latency"] == [7.0] * n
    with pytest.raises(topo.SpecError, match="astra_latency_ns"):
        ex.render_astra_sim(f, astra_latency_ns=[1.0] * (n + 1))


# --- htsim ------------------------------------------------------------------------------
def parse_htsim_topo(text: str) -> dict:
    """Header (Nodes/Tiers/Podsize) then 'Tier i' blocks; keywords case-insensitive."""
    head, tiers, cur = {}, {}, None
    for line in text.splitlines():
        tok = line.split()
        if not tok or tok[0].startswith("#"):
            continue
        k = tok[0].lower()
        if k == "tier":
            cur = int(tok[1])
            assert cur not in tiers
            tiers[cur] = {}
        elif cur is None:
            assert k in ("nodes", "tiers", "podsize"), k
            head[k] = int(tok[1])
        else:
            assert k in ("downlink_speed_gbps", "radix_up", "radix_down", "queue_up", "queue_down",
                         "oversubscribed", "bundle", "switch_latency_ns", "downlink_latency_ns"), k
            assert k not in tiers[cur]
            tiers[cur][k] = int(tok[1])
    return {"head": head, "tiers": tiers}


@pytest.mark.parametrize("n_tiers", [2, 3])
def test_htsim_topology_matches_fabric(n_tiers, tmp_path):
    c, f = regular_cluster(n_tiers)
    plan = {"placement": {"assignment": in_order(c, f)}}
    written = ex.export_htsim(f, plan, tmp_path, cluster=c)
    assert sorted(p.name for p in written) == ["htsim-hosts.csv", "htsim-run.sh", "htsim.cm", "htsim.topo"]
    t = parse_htsim_topo((tmp_path / "htsim.topo").read_text())
    h, T = t["head"], t["tiers"]
    assert h["tiers"] == n_tiers and set(T) == set(range(n_tiers))
    for i in range(n_tiers):  # what htsim's loader requires
        assert T[i]["downlink_speed_gbps"] > 0 and T[i]["downlink_latency_ns"] > 0 and T[i]["radix_down"] > 0
        if i < n_tiers - 1:
            assert T[i]["radix_up"] > 0
        else:
            assert "radix_up" not in T[i]
    assert h["nodes"] >= f.n_endpoints and h["nodes"] % h["podsize"] == 0
    # htsim's own derivation of switch counts gives the fabric's counts
    pods = h["nodes"] // h["podsize"]
    tors = h["nodes"] // T[0]["radix_down"]
    assert tors == f.tier_switch_counts[0]
    tor_up = h["nodes"] * T[0]["downlink_speed_gbps"] // (T[1]["downlink_speed_gbps"] * T[0]["oversubscribed"])
    aggs = tor_up // (pods * T[1]["radix_down"]) * pods
    assert aggs == f.tier_switch_counts[1]
    if n_tiers == 3:
        agg_up = tor_up * T[1]["downlink_speed_gbps"] // (T[2]["downlink_speed_gbps"] * T[1]["oversubscribed"])
        assert agg_up // T[2]["radix_down"] == f.tier_switch_counts[2]
    # host map: one row per endpoint, distinct hosts, each on its leaf's slots
    rows = list(csv.DictReader(io.StringIO((tmp_path / "htsim-hosts.csv").read_text())))
    assert len(rows) == f.n_endpoints
    hosts = [int(r["htsim_host"]) for r in rows]
    assert len(set(hosts)) == len(hosts) and max(hosts) < h["nodes"]
    for r in rows:
        leaf = f.find_node(r["leaf"])
        assert int(r["htsim_host"]) // T[0]["radix_down"] == int(f.node_index[leaf])
    # connection matrix: header counts, ids, endpoints of one job each
    cm = (tmp_path / "htsim.cm").read_text().splitlines()
    assert cm[0] == f"Nodes {h['nodes']}"
    n_conn = int(cm[1].split()[1])
    flows = cm[2:]
    assert n_conn == len(flows) > 0
    host_job = {}
    for job, eps in plan["placement"]["assignment"].items():
        for e in eps:
            host_job[hosts[e]] = job
    for i, line in enumerate(flows, 1):
        m = re.fullmatch(r"(\d+)->(\d+) id (\d+) start 0 size (\d+)", line)
        assert m, line
        s, d, fid, size = map(int, m.groups())
        assert fid == i and size > 0 and s != d
        assert host_job[s] == host_job[d]


def test_htsim_refuses_what_csg_htsim_cannot_build(rail):
    with pytest.raises(topo.SpecError) as e:
        ex.render_htsim(rail[1])
    msg = e.value.errors[0][1]
    # rail example: 64 + 64 ports per leaf, 128 per spine
    assert "128 ports" in msg and "at most 96 per ToR" in msg and "at most 64 per aggregation" in msg


def test_htsim_approximations_are_stated(small, helios):
    c, f, plan = small
    files = ex.render_htsim(f, plan, c)
    approx = files[ex.APPROXIMATIONS]
    assert any("200 Gb/s" in a and "written at 400 Gb/s" in a for a in approx)     # CPU hosts' links
    assert any("divided by 2" in a for a in approx)                               # 3 GiB flows
    for a in approx:
        assert f"# approximation: {a[len('htsim: '):]}" in files["htsim.topo"]
    sizes = [int(l.rsplit(" ", 1)[1]) for l in files["htsim.cm"].splitlines()[2:]]
    assert sizes and max(sizes) <= 2 ** 31 - 1
    hc, hf = helios
    h = ex.render_htsim(hf, {"placement": {"assignment": in_order(hc, hf)}}, hc)
    assert any("3 identical, disjoint planes" in a for a in h[ex.APPROXIMATIONS])
    assert any("16 unused leaves" in a for a in h[ex.APPROXIMATIONS])
    t = parse_htsim_topo(h["htsim.topo"])
    assert t["head"]["nodes"] == 5 * 32 * 32 and t["head"]["podsize"] == 32 * 32
    # the run script passes what the .cm and .topo need
    run = h["htsim-run.sh"]
    assert "-nodes 5120" in run and "-linkspeed 800000" in run and "-tm" in run and "-topo" in run
    # in SKIPPED.txt with every format not written
    skipped = ex.render("all", hf, {"placement": {"assignment": in_order(hc, hf)}}, hc)["SKIPPED.txt"]
    assert "htsim: the fabric has 3 identical" in skipped and "linkloads-csv:" in skipped


def test_htsim_port_limits_are_csg_htsims(tmp_path):
    """96 ports on a ToR and 64 on an aggregation switch pass; one more is refused (values checked
    against the csg-htsim binary: 48 + 48 runs, 49 + 49 aborts in fat_tree_topology.cpp)."""
    st = {"tiers": 2, "nodes": 96, "podsize": 96,
          0: {"radix_down": 48, "radix_up": 48, "downlink_gbps": 400, "oversubscribed": 1},
          1: {"radix_down": 2, "downlink_gbps": 400, "bundle": 1}}
    assert ex.htsim_switch_counts(st) == (2, 48)
    assert ex.HTSIM_TOR_MAX_PORTS == 96 and ex.HTSIM_SWITCH_MAX_PORTS == 64
# --- link loads ---------------------------------------------------------------------------
def test_linkloads_csv(small):
    c, f, plan = small
    util = np.linspace(0.0, 1.5, f.n_links)
    p = dict(plan, metrics_after={"link_util": util.tolist()})
    rows = list(csv.DictReader(io.StringIO(ex.render_linkloads_csv(f, p)["link-loads.csv"])))
    assert list(rows[0]) == ["link", "src", "dst", "tier", "gbps", "load_gbps", "util"]
    assert len(rows) == f.n_links
    for l in (0, 1, f.n_links // 2, f.n_links - 1):
        r = rows[l]
        assert int(r["link"]) == l
        assert f.find_node(r["src"]) == f.link_src[l] and f.find_node(r["dst"]) == f.link_dst[l]
        assert float(r["util"]) == pytest.approx(util[l], rel=1e-5, abs=1e-9)
        assert float(r["load_gbps"]) == pytest.approx(util[l] * f.link_gbps[l], rel=1e-5, abs=1e-9)
    with pytest.raises(topo.SpecError, match="metrics_before"):
        ex.render_linkloads_csv(f, plan)
    with pytest.raises(topo.SpecError, match="link_util"):
        ex.render_linkloads_csv(f, dict(plan, metrics_after={"link_util": [0.1, 0.2]}))


def test_export_all_skips_what_does_not_apply(small, tmp_path):
    c, f, plan = small
    written = ex.export("all", f, plan, tmp_path, cluster=c)
    names = {p.name for p in written}
    assert {"topology.yaml", "topology-tree.conf", "topology-block.conf", "kueue-topology.yaml",
            "node-labels.yaml", "fabric.graphml", "astra-sim-network.yml"} <= names
    skipped = (tmp_path / "SKIPPED.txt").read_text()
    assert "htsim" in skipped and "linkloads-csv" in skipped
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --- atomic writing ---------------------------------------------------------------------------
def test_output_dir_refuses_existing_and_keeps_old_on_error(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(topo.SpecError) as e:
        OutputDir(out)
    assert "-o" in str(e.value) and "--force" in str(e.value)
    with pytest.raises(RuntimeError):
        with OutputDir(out, force=True) as od:
            od.write_text("new.txt", "new")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    with OutputDir(out, force=True) as od:
        od.write_text("new.txt", "new")
        od.write_bytes("sub/x.bin", b"\x00\x01")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt", "sub"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    fresh = tmp_path / "fresh" / "deeper"
    with OutputDir(fresh) as od:
        od.write_text("a.txt", "a")
    assert (fresh / "a.txt").read_text() == "a"


def test_staged_files(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(topo.SpecError, match="--force"):
        with StagedFiles(tmp_path) as st:
            st.write_text("a.txt", "new")
    with pytest.raises(KeyError):
        with StagedFiles(tmp_path, force=True) as st:
            st.write_text("a.txt", "new")
            st.write_text("b.txt", "b")
            raise KeyError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old"
    with StagedFiles(tmp_path, force=True) as st:
        st.write_text("a.txt", "new")
        st.write_bytes("imgs/x.png", b"png")
    assert (tmp_path / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "imgs"]
    write_text_atomic(tmp_path / "c.txt", "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "c.txt", "imgs"]


# --- CLI ----------------------------------------------------------------------------------------
def write_plan(path: Path, cluster_yaml: Path, **extra) -> dict:
    c = topo.load(cluster_yaml)
    f = topo.build(c)
    plan = {"plan_version": 1, "cluster_file": yaml.safe_load(cluster_yaml.read_text()), "cluster_file_after": None,
            "placement": {"assignment": in_order(c, f)}, "metrics_before": {}, "metrics_after": None}
    plan.update(extra)
    path.write_text(json.dumps(plan))
    return plan


def test_cli_export(tmp_path):
    plan_path = tmp_path / "plan.json"
    write_plan(plan_path, EXAMPLES / "small.yaml")
    r = CliRunner().invoke(main, ["export", str(plan_path), "--format", "slurm-yaml", "-o", str(tmp_path / "x")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "x" / "topology.yaml").exists()
    r = CliRunner().invoke(main, ["export", str(plan_path), "--format", "slurm-yaml", "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--force" in r.output
    r = CliRunner().invoke(main, ["export", str(plan_path), "--format", "kueue", "--label-prefix", "acme.io/sw-",
                                  "--json"])
    assert r.exit_code == 0, r.output
    files = json.loads(r.output)["files"]
    assert "acme.io/sw-0" in Path(next(x for x in files if x.endswith("kueue-topology.yaml"))).read_text()
    r = CliRunner().invoke(main, ["export", str(plan_path), "--format", "htsim", "-o", str(tmp_path / "h")])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == ["htsim-hosts.csv", "htsim-run.sh", "htsim.cm",
                                                                  "htsim.topo"]
    r = CliRunner().invoke(main, ["export", str(plan_path), "--format", "volcano", "-o", str(tmp_path / "v")])
    assert r.exit_code == 0, r.output
    docs = list(yaml.safe_load_all((tmp_path / "v" / "volcano-hypernodes.yaml").read_text()))
    assert {d["kind"] for d in docs if d} == {"HyperNode"}


def test_cli_export_bad_plan(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"plan_version": 1, "cluster_file": {}, "metrics_before": {}}))
    r = CliRunner().invoke(main, ["export", str(bad), "--format", "graphml"])
    assert r.exit_code == 2 and "placement" in r.output
    plan = write_plan(tmp_path / "p.json", EXAMPLES / "small.yaml")
    plan["placement"]["assignment"]["llm-a"] = [10 ** 6]
    (tmp_path / "p.json").write_text(json.dumps(plan))
    r = CliRunner().invoke(main, ["export", str(tmp_path / "p.json"), "--format", "graphml"])
    assert r.exit_code == 2 and "placement.assignment.llm-a" in r.output
    plan["placement"]["assignment"] = {}
    plan["cluster_file"]["racks"][0]["count"] = 0
    (tmp_path / "p.json").write_text(json.dumps(plan))
    r = CliRunner().invoke(main, ["export", str(tmp_path / "p.json"), "--format", "graphml"])
    assert r.exit_code == 2 and "cluster_file.racks[0].count" in r.output
    r = CliRunner().invoke(main, ["export", str(tmp_path / "p.json"), "--format", "kueue", "--block-sizes", "x"])
    assert r.exit_code == 2


def test_yaml_scalars_round_trip():
    for s in ["leaf0", "n[0000-0003],n0005", "yes", "No", "0001", "12", "a: b", "#x", '"q"', "-x", "[x]", "p0-leaf3",
              "x'y", "on", "null", "tab\there", "<script>"]:
        assert yaml.safe_load(f"k: {ex._ys(s)}") == {"k": s}, s


def test_streamed_graphml_equals_the_networkx_writer(small, tmp_path):
    from topo.model.graphio import write_graphml as nx_write
    f = small[1]
    ex.write_graphml(f, tmp_path / "a.graphml")
    nx_write(f, tmp_path / "b.graphml")
    a = nx.read_graphml(str(tmp_path / "a.graphml"), force_multigraph=True)
    b = nx.read_graphml(str(tmp_path / "b.graphml"), force_multigraph=True)
    assert dict(a.nodes(data=True)) == dict(b.nodes(data=True))
    # same edges and attributes; the ids differ (networkx's writer numbers parallel edges 0, 1, ... per pair)
    ea = sorted((min(u, v), max(u, v), tuple(sorted(d.items()))) for u, v, k, d in a.edges(keys=True, data=True))
    eb = sorted((min(u, v), max(u, v), tuple(sorted(d.items()))) for u, v, k, d in b.edges(keys=True, data=True))
    assert ea == eb
    assert sorted(k for _, _, k in a.edges(keys=True)) == sorted(f"e{d['link']}" for _, _, d in a.edges(data=True))


GRAPHML_NS = "{http://graphml.graphdrawing.org/xmlns}"


def check_graphml_structure(path) -> tuple[int, int]:
    """The identity constraints and attribute domains of the GraphML 1.0 schema (graphml.xsd /
    graphml-structure.xsd), checked by hand: key ids unique, key.for and attr.type in their
    enumerations, node ids unique per graph, edge ids unique per graph, edge source/target naming
    nodes of the graph, every data key declared for that element kind. Returns (nodes, edges)."""
    import xml.etree.ElementTree as ET
    root = ET.parse(path).getroot()
    assert root.tag == GRAPHML_NS + "graphml"
    keys = {}
    for k in root.findall(GRAPHML_NS + "key"):
        assert k.get("id") not in keys, f"duplicate key id {k.get('id')}"
        assert k.get("for", "all") in ("all", "graphml", "graph", "node", "edge", "hyperedge", "port", "endpoint")
        assert k.get("attr.type", "string") in ("boolean", "int", "long", "float", "double", "string")
        keys[k.get("id")] = k.get("for", "all")
    graphs = root.findall(GRAPHML_NS + "graph")
    assert len(graphs) == 1
    g = graphs[0]
    assert g.get("edgedefault") in ("directed", "undirected")
    nodes = [n.get("id") for n in g.findall(GRAPHML_NS + "node")]
    assert all(nodes) and len(set(nodes)) == len(nodes), "node ids must be unique within a graph"
    nodeset = set(nodes)
    edges = g.findall(GRAPHML_NS + "edge")
    ids = [e.get("id") for e in edges if e.get("id") is not None]
    assert len(set(ids)) == len(ids), f"edge ids must be unique within a graph ({len(ids) - len(set(ids))} repeated)"
    for e in edges:
        assert e.get("source") in nodeset and e.get("target") in nodeset
    for kind, elems in (("node", g.findall(GRAPHML_NS + "node")), ("edge", edges)):
        for el in elems:
            for d in el.findall(GRAPHML_NS + "data"):
                assert keys.get(d.get("key")) in (kind, "all"), f"data key {d.get('key')} not declared for {kind}"
    return len(nodes), len(edges)


@pytest.mark.parametrize("which", ["small", "rail", "helios"])
def test_graphml_structure_and_counts_match_describe(which, small, rail, helios, tmp_path):
    from topo.routing.describe import describe
    c, f = {"small": small, "rail": rail, "helios": helios}[which][:2]
    ex.write_graphml(f, tmp_path / "f.graphml")
    n_nodes, n_edges = check_graphml_structure(tmp_path / "f.graphml")
    d = describe(f, c)
    assert n_nodes == d["endpoints"] + sum(t["switches"] for t in d["tiers"])
    assert n_edges == sum(d["links"].values())


def test_graphml_structure_check_catches_repeated_edge_ids(tmp_path):
    p = tmp_path / "bad.graphml"
    p.write_text('<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph edgedefault='
                 '"undirected"><node id="a"/><node id="b"/><edge id="0" source="a" target="b"/>'
                 '<edge id="0" source="a" target="b"/></graph></graphml>')
    with pytest.raises(AssertionError, match="edge ids must be unique"):
        check_graphml_structure(p)


@pytest.fixture(scope="module")
def optimized():
    from topo.pipeline import optimize
    from topo.io.plan import plan_cluster, to_jsonable
    c = topo.load(EXAMPLES / "small.yaml")
    plan = json.loads(json.dumps(to_jsonable(optimize(c, time_limit=5, seed=1, workers=1, failures=False))))
    ca = plan_cluster(plan, after=True)
    return plan, ca, topo.build(ca)


def test_linkloads_reproduced_from_a_pipeline_plan(optimized):
    plan, ca, fa = optimized
    for which in ("after", "placed", "before"):
        stored = plan[f"metrics_{which}"].get("link_util")
        p = copy.deepcopy(plan)
        p[f"metrics_{which}"].pop("link_util", None)  # force routing the plan's placement again
        rows = list(csv.DictReader(io.StringIO(ex.render_linkloads_csv(fa, p, ca, which=which)["link-loads.csv"])))
        util = np.array([float(r["util"] or 0) for r in rows])
        peak = {}
        for r, u in zip(rows, util):
            peak[r["tier"]] = max(peak.get(r["tier"], 0.0), u)
        for t in plan[f"metrics_{which}"]["tiers"]:
            assert peak[t["tier"]] == pytest.approx(t["util_max"], rel=1e-5), (which, t["tier"])
        if stored is not None:  # the stored per-link list and the re-routed one agree
            assert util == pytest.approx(np.asarray(stored), rel=1e-5, abs=1e-9)
            rows2 = list(csv.DictReader(io.StringIO(ex.render_linkloads_csv(fa, plan, ca, which=which)["link-loads.csv"])))
            assert [r["link"] for r in rows2] == [r["link"] for r in rows]
    bad = copy.deepcopy(plan)
    bad["metrics_after"].pop("link_util", None)
    bad["metrics_after"]["tiers"][-1]["util_max"] *= 1.5
    with pytest.raises(topo.SpecError, match="does not reproduce"):
        ex.render_linkloads_csv(fa, bad, ca)


def test_custom_graph_names_checked(tmp_path):
    # a custom GraphML fabric whose switch names Slurm cannot take
    g = nx.Graph()
    eps = [f"e{i}" for i in range(8)]
    for i, e in enumerate(eps):
        g.add_node(e, tier=0)
        g.add_edge(e, "tor a" if i < 4 else "tor-b", gbps=400.0)
    g.add_edge("tor a", "core", gbps=400.0)
    g.add_edge("tor-b", "core", gbps=400.0)
    nx.write_graphml(g, str(tmp_path / "g.graphml"))
    d = {"name": "custom", "node_types": [{"name": "h", "platform": "cpu-host"}],
         "racks": [{"name": "r", "count": 8, "nodes": {"h": 1}}],
         "fabric": {"family": "custom", "custom": {"graphml": "g.graphml"}}}
    c = topo.from_dict(d, base_dir=str(tmp_path))
    f = topo.build(c)
    with pytest.raises(topo.SpecError, match="cannot be written in Slurm"):
        ex.render_slurm_conf_tree(f)
    with pytest.raises(topo.SpecError, match="label value"):
        ex.render_kueue(f)
    assert "fabric.graphml" in ex.render_graphml(f)


def test_slurm_jobs_node_lists(small):
    c, f, plan = small
    recs = parse_topology_conf(ex.render_slurm_jobs(f, plan)["slurm-jobs.conf"])
    assert {r["jobname"] for r in recs} == set(plan["placement"]["assignment"])
    for r in recs:
        eps = plan["placement"]["assignment"][r["jobname"]]
        assert sorted(slurm_expand(r["nodes"])) == sorted({f.server_name(s) for s in f.ep_server[eps]})
        assert int(r["accelerators"]) == len(eps)
    with pytest.raises(topo.SpecError, match="placement.assignment"):
        ex.render_slurm_jobs(f, {"placement": {"assignment": {}}})


def test_plan_file_keeps_the_server_order(optimized, tmp_path):
    # small.yaml racks list gpu nodes before the cpu host; a plan file must not renumber them
    from topo.io.plan import dumps
    plan, _, _ = optimized
    (tmp_path / "plan.json").write_text(dumps(plan))
    r = CliRunner().invoke(main, ["export", str(tmp_path / "plan.json"), "--format", "slurm-jobs", "-o", str(tmp_path)])
    assert r.exit_code == 0, r.output
    f = topo.build(topo.load(EXAMPLES / "small.yaml"))
    recs = parse_topology_conf((tmp_path / "slurm-jobs.conf").read_text())
    for rec in recs:
        eps = np.asarray(plan["placement"]["assignment"][rec["jobname"]])
        assert f.ep_is_accel[eps].all()
        assert sorted(slurm_expand(rec["nodes"])) == sorted({f.server_name(s) for s in f.ep_server[eps]})


@pytest.fixture(scope="module")
def full_plan():
    """A whole plan as `topo optimize` writes it (small example, no failure stage)."""
    plan = topo.optimize(topo.load(EXAMPLES / "small.yaml"), seed=7, workers=1, failures=False)
    from topo.io.plan import dumps
    return json.loads(dumps(plan))


@pytest.mark.parametrize("path,value", [
    (("versions",), 3),
    (("metrics_after", "link_util", 0), "abc"),
    (("metrics_after", "pod_matrix_gbps", 0), [1.0]),
    (("metrics_placed", "jobs", 0, "time_s"), "slow"),
    (("placement", "racks", 0), "rack000"),
    (("placement", "assignment"), [1, 2]),
    (("describe_before", "tiers", 0, "model"), 5),
    (("budget", "bill_of_materials", "switches", 0, "count"), "four"),
    (("budget", "cost"), [1]),
])
def test_hand_edited_plan_is_refused_naming_the_field(tmp_path, full_plan, path, value):
    plan_path = tmp_path / "plan.json"
    plan = copy.deepcopy(full_plan)
    cur = plan
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    plan_path.write_text(json.dumps(plan))
    want = path[0] + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path[1:])
    if isinstance(path[-1], int):  # a bad element of a list: the list is named
        want = want.rsplit("[", 1)[0]
    for cmd in (["report", str(plan_path), "-o", str(tmp_path / "r")],
                ["export", str(plan_path), "--format", "all", "-o", str(tmp_path / "x")]):
        r = CliRunner().invoke(main, cmd)
        assert r.exit_code == 2, (cmd, r.output)
        assert want in r.output and "Traceback" not in r.output
        assert not (tmp_path / "r").exists() and not (tmp_path / "x").exists()


def test_render_failure_past_the_shape_check_is_bad_input(tmp_path, full_plan, monkeypatch):
    # a field deeper than the shape check reaches: exit 2 naming the plan, nothing written
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(full_plan))
    from topo.io import report
    monkeypatch.setattr(report, "render_report", lambda *a, **k: (_ for _ in ()).throw(TypeError("a bad field")))
    r = CliRunner().invoke(main, ["report", str(plan_path), "-o", str(tmp_path / "r")])
    assert r.exit_code == 2 and "(plan)" in r.output and "a bad field" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "r").exists()


def test_rank_map_lists_every_rank_in_order(optimized, tmp_path):
    import csv
    import io
    plan, _, _ = optimized
    from topo.io.plan import dumps
    (tmp_path / "plan.json").write_text(dumps(plan))
    r = CliRunner().invoke(main, ["export", str(tmp_path / "plan.json"), "--format", "rank-map", "-o", str(tmp_path / "x")])
    assert r.exit_code == 0, r.output
    f = topo.build(topo.load(EXAMPLES / "small.yaml"))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "x" / "rank-map.csv").read_text())))
    a = plan["placement"]["assignment"]
    assert len(rows) == sum(len(v) for v in a.values())
    for job, eps in a.items():
        mine = [row for row in rows if row["job"] == job]
        assert [int(row["rank"]) for row in mine] == list(range(len(eps)))
        for row, e in zip(mine, eps):
            s = int(f.ep_server[e])
            assert row["node"] == f.server_name(s)
            # the endpoint is the node's accelerator with that index
            accs = [k for k in range(f.n_endpoints) if f.ep_server[k] == s and f.ep_is_accel[k]]
            assert accs[int(row["accelerator"])] == e
    with pytest.raises(topo.SpecError, match="placement.assignment"):
        ex.render_rank_map(f, {"placement": {"assignment": {}}})
    # any job name survives the CSV; an endpoint that is not an accelerator is refused
    acc = np.flatnonzero(f.ep_is_accel)
    odd = 'a,b\r\n"c'
    got = list(csv.DictReader(io.StringIO(ex.render_rank_map(f, {"placement": {"assignment": {odd: acc[:4]}}})["rank-map.csv"])))
    assert [row["job"] for row in got] == [odd] * 4
    cpu = np.flatnonzero(~np.asarray(f.ep_is_accel, bool))
    assert cpu.size
    with pytest.raises(topo.SpecError, match="placement.assignment.j"):
        ex.render_rank_map(f, {"placement": {"assignment": {"j": np.concatenate([acc[:3], cpu[:1]])}}})


# --- scheduler conventions: topograph blocks, real switch names, Kueue domain level, Volcano ----------
def test_blocks_numbered_like_topograph_with_domain_comments(small):
    f = small[1]
    text = ex.render_slurm_conf_block(f)["topology-block.conf"]
    lines = [l for l in text.splitlines() if not l.startswith("# ") or re.match(r"# block\d+=", l)]
    blocks = [l for l in lines if l.startswith("BlockName=")]
    assert blocks[0].startswith("BlockName=block001 ")
    assert [l.split()[0] for l in blocks] == [f"BlockName=block{i:03d}" for i in range(1, len(blocks) + 1)]
    # each block line follows its '# blockNNN=<domain>' comment, the domain of the block's servers
    idx = {f.server_name(i): i for i in range(f.n_servers)}
    for prev, line in zip(lines, lines[1:]):
        if line.startswith("BlockName="):
            name = line.split()[0].split("=")[1]
            m = re.fullmatch(rf"# {name}=domain(\d+)", prev)
            assert m, (prev, line)
            first = slurm_expand(line.split("Nodes=")[1])[0]
            acc = np.flatnonzero((f.ep_server == idx[first]) & f.ep_is_accel)[0]
            assert int(f.ep_domain[acc]) == int(m.group(1))
    y = ex.render_slurm_yaml(f)["topology.yaml"]
    assert "    # block001=domain" in y and yaml.safe_load(y)[1]["block"]["blocks"][0]["block"] == "block001"


def test_tree_uses_the_real_switch_name_when_a_group_is_one_switch():
    d = {"name": "one-spine", "catalog": {}, "node_types": [{"name": "gpu", "platform": "hgx-h100"}],
         "racks": [{"name": "r", "count": 2, "nodes": {"gpu": 4}, "power_limit_kw": 60}],
         "fabric": {"family": "clos", "tiers": [{"switch": "th4-64x400", "oversubscription": 1},
                                                {"switch": "th4-64x400"}]}, "jobs": []}
    c = topo.from_dict(d)
    f = topo.build(c)
    assert f.tier_switch_counts == (2, 1)
    recs = parse_topology_conf(ex.render_slurm_conf_tree(f)["topology-tree.conf"])
    top = [r for r in recs if "switches" in r]
    assert [r["switchname"] for r in top] == [f.node_name(int(np.flatnonzero(f.node_tier == 2)[0]))]
    # several spines: a logical switch, with the real switches it stands for in a comment
    small_f = topo.build(topo.load(EXAMPLES / "small.yaml"))
    text = ex.render_slurm_conf_tree(small_f)["topology-tree.conf"]
    assert "# spine-tier: logical switch for 4 switches spine[0-3]" in text


def test_kueue_domain_level_when_it_nests(small, helios):
    f = small[1]
    doc = yaml.safe_load(ex.render_kueue(f)["kueue-topology.yaml"])
    levels = [l["nodeLabel"] for l in doc["spec"]["levels"]]
    assert levels[-2:] == [ex.DEFAULT_DOMAIN_LABEL, "kubernetes.io/hostname"]
    nodes = {d["metadata"]["name"]: d["metadata"]["labels"] for d in
             yaml.safe_load_all(ex.render_kueue(f)["node-labels.yaml"]) if d}
    assert all(ex.DEFAULT_DOMAIN_LABEL in lab for lab in nodes.values())   # Kueue reads every level label
    cpu = sorted(all_server_names(f) - accel_server_names(f))
    assert cpu and nodes[cpu[0]][ex.DEFAULT_DOMAIN_LABEL] == f"host-{cpu[0]}"
    # helios: a 72-GPU domain spans 18 servers under 3 leaves: not a level, and the file says why
    files = ex.render_kueue(helios[1])
    hl = [l["nodeLabel"] for l in yaml.safe_load(files["kueue-topology.yaml"])["spec"]["levels"]]
    assert ex.DEFAULT_DOMAIN_LABEL not in hl
    assert "span servers under several leaves" in files["kueue-topology.yaml"]
    assert any("span servers under several leaves" in a for a in files[ex.APPROXIMATIONS])


@pytest.mark.parametrize("which", ["small", "helios"])
def test_volcano_hypernodes_form_the_tree(which, small, helios):
    f = {"small": small, "helios": helios}[which][1]
    docs = [d for d in yaml.safe_load_all(ex.render_volcano(f)["volcano-hypernodes.yaml"]) if d]
    assert all(d["apiVersion"] == "topology.volcano.sh/v1alpha1" and d["kind"] == "HyperNode" for d in docs)
    by_name = {d["metadata"]["name"]: d for d in docs}
    assert len(by_name) == len(docs)
    nodes, parent = [], {}
    for d in docs:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", d["metadata"]["name"])
        for m in d["spec"]["members"]:
            assert list(m["selector"]) == ["exactMatch"]
            name = m["selector"]["exactMatch"]["name"]
            if m["type"] == "Node":
                assert d["spec"]["tier"] == 1
                nodes.append(name)
            else:
                child = by_name[name]
                assert child["spec"]["tier"] == d["spec"]["tier"] - 1
                assert name not in parent
                parent[name] = d["metadata"]["name"]
    assert sorted(nodes) == sorted(all_server_names(f))
    roots = [n for n in by_name if n not in parent]
    assert len(roots) == 1 and by_name[roots[0]]["spec"]["tier"] == max(d["spec"]["tier"] for d in docs)
