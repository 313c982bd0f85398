"""Exports read by the programs that consume them (conformance).

Each test skips with the reason when its consumer is not available. Paths come from the
environment, so that a checkout of the consumers anywhere can be used (``.ci/consumers.sh``
builds them and prints these variables):

* ``TOPO_HTSIM_DIR``: csg-htsim's ``sim/datacenter`` folder holding the built ``htsim_ndp`` and
  ``htsim_eqds``;
* ``TOPO_ASTRA_LOADER``: ``tests/consumers/astra_load_network.cpp`` built against the ASTRA-sim
  analytical network backend, or ``TOPO_ASTRA_ANALYTICAL_DIR`` (its sources; the test builds the
  loader with g++ and yaml-cpp);
* ``TOPO_KUEUE_CRD``: Kueue's ``kueue.x-k8s.io_topologies.yaml`` (the Topology CRD);
* Slurm: ``slurmctld``, ``scontrol`` and ``munged`` on the PATH or in /usr/sbin (run as root).
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import yaml

import topo
from topo.io import exports as ex
from topo.traffic.demand import in_order_placement

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# reference-1m (131,072 nodes, 8,192 leaves) is left out: the slurmctld harness below declares every node
# in one NodeName range, which Slurm refuses above 65,536 hosts ("Too many hosts in range"), and its
# per-leaf scontrol calls would take minutes (benchmarks/bench_optimize.py --size 1M renders its exports,
# unchecked by the consumers)
ALL_EXAMPLES = sorted(p.stem for p in EXAMPLES.glob("*.yaml") if p.stem != "reference-1m")
# the three examples the quick tests use; the others are covered where a consumer is cheap
SMALL_EXAMPLES = ["small", "h100-rail-roce", "helios-mi450-uec"]


def _env_path(var: str) -> Path | None:
    v = os.environ.get(var)
    return Path(v) if v else None


_CACHE: dict = {}


def example(name: str):
    """(cluster, fabric, plan with the in-order placement) of a shipped example, built once."""
    if name not in _CACHE:
        c = topo.load(EXAMPLES / f"{name}.yaml")
        f = topo.build(c)
        a = {k: np.asarray(v).tolist() for k, v in in_order_placement(c, f).items()}
        _CACHE[name] = (c, f, {"placement": {"assignment": a}})
    return _CACHE[name]


# --- csg-htsim -----------------------------------------------------------------------------
def _htsim_bin(name: str) -> Path:
    d = _env_path("TOPO_HTSIM_DIR")
    if d is None:
        pytest.skip("csg-htsim not available: set TOPO_HTSIM_DIR to its built sim/datacenter folder "
                    "(.ci/consumers.sh builds it)")
    b = d / name
    if not os.access(b, os.X_OK):
        pytest.skip(f"csg-htsim binary {b} not found or not executable")
    return b


def _mem_available_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return float("inf")


def _htsim_switch_counts(stdout: str) -> tuple:
    """Switches per tier as csg-htsim reports building them."""
    g = {k: int(v) for k, v in re.findall(r"^(No of pods|ToR switches per pod|Agg switches per pod|No of core "
                                          r"switches): (\d+)$", stdout, re.M)}
    pods = g["No of pods"]
    t = (g["ToR switches per pod"] * pods, g["Agg switches per pod"] * pods)
    return t + ((g["No of core switches"],) if g["No of core switches"] else ())


def _fabric_switch_counts(f, st) -> tuple:
    """The fabric's switches per tier on one plane, the leaves htsim adds to fill the last pod included."""
    per_plane = tuple(int(x) // st["planes"] for x in f.tier_switch_counts)
    return (per_plane[0] + st["padded_leaves"],) + per_plane[1:]


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_htsim_runs_every_example_or_refuses_with_the_reason(name, tmp_path):
    ndp = _htsim_bin("htsim_ndp")
    c, f, plan = example(name)
    try:
        files = ex.render("htsim", f, plan, c)
    except topo.SpecError as e:
        msg = e.errors[0][1]
        # a refusal names one of csg-htsim's real limits
        assert re.search(r"at most (96|64)|speed|Oversubscribed|planes differ|oversubscription", msg), msg
        return
    nodes = int(re.search(r"^Nodes (\d+)$", files["htsim.topo"], re.M).group(1))
    # csg-htsim's NDP allocates a path table of nodes x nodes entries: 16,384 hosts need about 7 GB
    need_gb = nodes * nodes * 24 / 2 ** 30 + 0.5
    if need_gb > _mem_available_gb() * 0.6:
        pytest.skip(f"{name}: htsim_ndp needs about {need_gb:.0f} GB for {nodes} hosts; "
                    f"{_mem_available_gb():.0f} GB available")
    out = tmp_path / "h"
    ex.export("htsim", f, plan, out, cluster=c)
    bins = [ndp] + ([_htsim_bin("htsim_eqds")] if nodes <= 2048 else [])
    for b in bins:
        r = subprocess.run(["sh", str(out / "htsim-run.sh"), "1"], cwd=tmp_path, capture_output=True, text=True,
                           env=dict(os.environ, HTSIM=str(b)), timeout=600)
        assert r.returncode == 0, f"{b.name}: {r.stderr[-2000:]}"
        assert f"FatTree constructor done, {nodes} nodes created" in r.stdout
        assert "Done" in r.stdout
        assert _htsim_switch_counts(r.stdout) == _fabric_switch_counts(f, ex.htsim_structure(f))
        if b == ndp:   # htsim_ndp reports every connection it starts
            conns = int(files["htsim.cm"].splitlines()[1].split()[1])
            assert r.stdout.count("startflow") == conns


def test_htsim_builds_an_oversubscribed_three_tier_fabric(tmp_path):
    """3:1 at the leaves and 2:1 at the spines: csg-htsim builds the fabric's 16 + 6 + 3 switches."""
    ndp = _htsim_bin("htsim_ndp")
    sw = {"sw12": {"radix": 12, "port_gbps": 400, "power_w": 100, "cost_usd": 1000}}
    d = {"name": "oversub", "catalog": {"switches": sw}, "node_types": [{"name": "gpu", "platform": "hgx-h100"}],
         "racks": [{"name": "r", "count": 6, "nodes": {"gpu": 3}, "power_limit_kw": 60}],
         "fabric": {"family": "clos", "tiers": [{"switch": "sw12", "oversubscription": 3},
                                                {"switch": "sw12", "oversubscription": 2}, {"switch": "sw12"}]},
         "jobs": [{"name": "a", "accelerators": 64, "tp": 8,
                   "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1GiB"}]}]}
    c = topo.from_dict(d)
    f = topo.build(c)
    assert f.tier_switch_counts == (16, 6, 3)
    plan = {"placement": {"assignment": {k: np.asarray(v).tolist() for k, v in in_order_placement(c, f).items()}}}
    ex.export("htsim", f, plan, tmp_path / "h", cluster=c)
    topo_text = (tmp_path / "h" / "htsim.topo").read_text()
    assert "Oversubscribed 3" in topo_text and "Oversubscribed 2" in topo_text
    r = subprocess.run(["sh", str(tmp_path / "h" / "htsim-run.sh"), "5"], cwd=tmp_path, capture_output=True,
                       text=True, env=dict(os.environ, HTSIM=str(ndp)), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _htsim_switch_counts(r.stdout) == (16, 6, 3)


def test_htsim_oversize_files_are_what_csg_htsim_refuses(tmp_path):
    """The limits the exporter enforces are the binary's: 98 ports on a ToR abort, 96 run."""
    ndp = _htsim_bin("htsim_ndp")
    for d, ok in ((49, False), (48, True)):
        (tmp_path / "t.topo").write_text(
            f"Nodes {2 * d}\nTiers 2\nPodsize {2 * d}\n\nTier 0\nDownlink_speed_Gbps 400\nRadix_Down {d}\n"
            f"Radix_Up {d}\nOversubscribed 1\nDownlink_Latency_ns 10\n\nTier 1\nDownlink_speed_Gbps 400\n"
            "Radix_Down 2\nDownlink_Latency_ns 10\n")
        (tmp_path / "t.cm").write_text(f"Nodes {2 * d}\nConnections 1\n0->{d + 1} id 1 start 0 size 100000\n")
        r = subprocess.run([str(ndp), "-topo", "t.topo", "-tm", "t.cm", "-nodes", str(2 * d), "-strat", "perm",
                            "-linkspeed", "400000", "-end", "5"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)
        assert (r.returncode == 0) == ok, (d, r.stderr[-500:])
        if not ok:
            assert "< 96" in r.stderr
    # and a flow size above an int aborts the reader
    (tmp_path / "t.cm").write_text("Nodes 96\nConnections 1\n0->49 id 1 start 0 size 2147483648\n")
    r = subprocess.run([str(ndp), "-topo", "t.topo", "-tm", "t.cm", "-nodes", "96", "-strat", "perm", "-end", "5"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "stoi" in r.stderr


# --- ASTRA-sim analytical backend --------------------------------------------------------------
@pytest.fixture(scope="module")
def astra_loader(tmp_path_factory):
    b = _env_path("TOPO_ASTRA_LOADER")
    if b is not None and os.access(b, os.X_OK):
        return b
    a = _env_path("TOPO_ASTRA_ANALYTICAL_DIR")
    if a is None:
        pytest.skip("ASTRA-sim analytical backend not available: set TOPO_ASTRA_LOADER or "
                    "TOPO_ASTRA_ANALYTICAL_DIR (.ci/consumers.sh builds the loader)")
    if not shutil.which("g++") or not Path("/usr/include/yaml-cpp").is_dir():
        pytest.skip("building the ASTRA-sim loader needs g++ and yaml-cpp (Debian: libyaml-cpp-dev)")
    out = tmp_path_factory.mktemp("astra") / "load_network"
    srcs = sorted(str(p) for d in ("common", "congestion_unaware", "congestion_aware")
                  for p in (a / d).rglob("*.cpp") if p.name != "example.cpp")
    inc = a / "include"
    subprocess.run(["g++", "-std=c++17", "-O1", f"-I{inc / 'astra-network-analytical'}", f"-I{inc}", "-o", str(out),
                    str(ROOT / "tests" / "consumers" / "astra_load_network.cpp"), *srcs, "-lyaml-cpp"],
                   check=True, capture_output=True, timeout=600)
    return out


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_astra_sim_yaml_loads_in_the_analytical_backend(name, astra_loader, tmp_path):
    c, f, plan = example(name)
    text = ex.render("astra-sim", f, plan, c)["astra-sim-network.yml"]
    (tmp_path / "n.yml").write_text(text)
    r = subprocess.run([str(astra_loader), str(tmp_path / "n.yml")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    d = yaml.safe_load(text)
    assert f"npus {int(f.ep_is_accel.sum())}" in r.stdout.splitlines()
    got = re.findall(r"^dim (\d+) npus (\d+) bandwidth (\S+) latency (\S+)$", r.stdout, re.M)
    assert len(got) == len(d["npus_count"])
    for i, npus, bw, lat in got:
        i = int(i)
        assert int(npus) == d["npus_count"][i]
        assert float(bw) == pytest.approx(d["bandwidth"][i], rel=1e-6)
        assert float(lat) == pytest.approx(d["latency"][i], rel=1e-6, abs=1e-9)


# --- Kueue Topology CRD ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kueue_crd():
    p = _env_path("TOPO_KUEUE_CRD")
    if p is None or not p.is_file():
        pytest.skip("Kueue's Topology CRD not available: set TOPO_KUEUE_CRD to kueue.x-k8s.io_topologies.yaml")
    return yaml.safe_load(p.read_text())


def test_kueue_served_versions_are_the_crds(kueue_crd):
    served = tuple(v["name"] for v in kueue_crd["spec"]["versions"] if v.get("served"))
    assert kueue_crd["spec"]["group"] == ex.KUEUE_GROUP
    assert tuple(sorted(served)) == tuple(sorted(ex.KUEUE_SERVED_VERSIONS))


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_kueue_topology_valid_against_the_crd_schema(name, kueue_crd):
    jsonschema = pytest.importorskip("jsonschema")
    c, f, plan = example(name)
    for version in ex.KUEUE_SERVED_VERSIONS:
        doc = yaml.safe_load(ex.render("kueue", f, plan, c, api_version=f"{ex.KUEUE_GROUP}/{version}")
                             ["kueue-topology.yaml"])
        assert doc["apiVersion"] == f"{kueue_crd['spec']['group']}/{version}"
        assert doc["kind"] == kueue_crd["spec"]["names"]["kind"]
        schema = next(v for v in kueue_crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]
        jsonschema.validate(doc, schema)
        # the CRD's CEL rules, which jsonschema does not run
        labels = [l["nodeLabel"] for l in doc["spec"]["levels"]]
        assert len(set(labels)) == len(labels)
        assert "kubernetes.io/hostname" not in labels[:-1]
    # a broken document is refused by the same check (the test can fail)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"apiVersion": "x", "kind": "Topology", "spec": {"levels": [{"nodeLabel": "a b"}]}},
                            schema)


# --- Slurm ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _which(name: str) -> str | None:
    return shutil.which(name) or (f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A function (topology.conf text, node hostlist) -> (scontrol runner, slurm.conf path) with a
    slurmctld started on that configuration; everything it started is stopped by process id."""
    ctld, sctl, munged = _which("slurmctld"), _which("scontrol"), _which("munged")
    if not (ctld and sctl and munged):
        pytest.skip("Slurm not available: slurmctld, scontrol and munged are needed (Debian: slurmctld "
                    "slurm-client munge)")
    if os.geteuid() != 0:
        pytest.skip("starting munged and slurmctld here needs root")
    if not Path("/etc/munge/munge.key").is_file():
        pytest.skip("munge has no key (/etc/munge/munge.key)")
    import pwd
    import tempfile
    started = []
    base = tmp_path_factory.mktemp("slurm")
    # munged runs as the munge user and wants a folder of its own that only it can write
    try:
        mu = pwd.getpwnam("munge")
    except KeyError:
        pytest.skip("no munge user")
    mdir = Path(tempfile.mkdtemp(prefix="topo-munge-"))
    os.chown(mdir, mu.pw_uid, mu.pw_gid)
    os.chmod(mdir, 0o755)   # munged: writable by munge only, the socket reachable by all
    sock = mdir / "munge.socket"
    mproc = subprocess.Popen([munged, "--foreground", f"--socket={sock}", f"--pid-file={mdir / 'munged.pid'}",
                              f"--seed-file={mdir / 'munged.seed'}", f"--log-file={mdir / 'munged.log'}"],
                             user=mu.pw_uid, group=mu.pw_gid, extra_groups=[], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    started.append(mproc)
    for _ in range(50):
        if sock.exists():
            break
        time.sleep(0.1)
    if not sock.exists():
        mproc.kill()
        log = (mdir / "munged.log").read_text() if (mdir / "munged.log").exists() else "-"
        shutil.rmtree(mdir, ignore_errors=True)
        pytest.skip(f"munged did not start (log: {log[-500:]})")
    host = socket.gethostname().split(".")[0]
    runs = []

    def stop(p):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def start(topology_conf: str, nodes: str, plugin: str = "topology/tree"):
        for p in runs:   # one slurmctld at a time
            stop(p)
        d = base / f"c{len(runs)}"
        (d / "state").mkdir(parents=True)
        (d / "topology.conf").write_text(topology_conf)
        (d / "slurm.conf").write_text("\n".join([
            "ClusterName=topoconformance", f"SlurmctldHost={host}", f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}", "AuthType=auth/munge", f"AuthInfo=socket={sock}",
            "CredType=cred/munge", f"StateSaveLocation={d / 'state'}", f"SlurmdSpoolDir={d / 'spool'}",
            f"SlurmctldPidFile={d / 'slurmctld.pid'}", f"SlurmctldLogFile={d / 'slurmctld.log'}",
            "SlurmUser=root", f"TopologyPlugin={plugin}", "SelectType=select/cons_tres",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobCompType=jobcomp/none",
            "AccountingStorageType=accounting_storage/none", "MpiDefault=none", "ReturnToService=2",
            f"NodeName={nodes} CPUs=1 State=FUTURE", "PartitionName=all Nodes=ALL Default=YES", ""]))
        env = dict(os.environ, SLURM_CONF=str(d / "slurm.conf"))
        p = subprocess.Popen([ctld, "-D", "-i", "-f", str(d / "slurm.conf")], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(p)
        runs.append(p)

        def scontrol(*args):
            return subprocess.run([sctl, *args], env=env, capture_output=True, text=True, timeout=60)
        for _ in range(100):
            if p.poll() is not None:
                log = (d / "slurmctld.log").read_text() if (d / "slurmctld.log").exists() else ""
                raise AssertionError(f"slurmctld exited with {p.returncode}: {log[-3000:]}")
            if scontrol("ping").stdout.count("UP"):
                break
            time.sleep(0.2)
        return scontrol, d
    yield start
    for p in reversed(started):
        stop(p)
    shutil.rmtree(mdir, ignore_errors=True)


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_slurmctld_loads_the_tree_and_expands_the_job_lists(name, slurm):
    c, f, plan = example(name)
    tree = ex.render("slurm-conf-tree", f, plan, c)["topology-tree.conf"]
    all_nodes = ex.collect([f.server_name(i) for i in range(f.n_servers)])
    scontrol, d = slurm(tree, all_nodes)
    r = scontrol("show", "topology")
    assert r.returncode == 0, r.stderr
    want = set(re.findall(r"^SwitchName=(\S+)", tree, re.M))
    got = set(re.findall(r"SwitchName=(\S+)", r.stdout))
    assert got == want, (sorted(want - got)[:5], sorted(got - want)[:5])
    # every server is under the switch the file put it under, as slurmctld reads it
    leaves = re.findall(r"SwitchName=(\S+) Level=0 .*?Nodes=(\S+)", r.stdout)
    written = dict(re.findall(r"^SwitchName=(\S+) Nodes=(\S+)$", tree, re.M))
    assert sorted(n for n, _ in leaves) == sorted(written)
    # one expansion of all leaves' node lists, as slurmctld holds them and as the file has them
    expand = lambda lists: [scontrol("show", "hostnames", x).stdout.split() for x in lists]
    held, wrote = expand([h for _, h in leaves]), expand([written[n] for n, _ in leaves])
    assert held == wrote and sum(map(len, held)) == f.n_servers
    # slurm-jobs.conf: each job's Nodes= expands to the nodes of its ranks in rank-map.csv
    import csv
    import io
    if not plan["placement"]["assignment"]:   # a design without jobs: the job files are refused, not empty
        with pytest.raises(topo.SpecError, match="places no job"):
            ex.render("slurm-jobs", f, plan, c)
        return
    jobs = ex.render("slurm-jobs", f, plan, c)["slurm-jobs.conf"]
    rank_nodes: dict = {}
    for row in csv.DictReader(io.StringIO(ex.render("rank-map", f, plan, c)["rank-map.csv"])):
        rank_nodes.setdefault(row["job"], set()).add(row["node"])
    lines = [l for l in jobs.splitlines() if l.startswith("JobName=")]
    assert len(lines) == len(rank_nodes) > 0
    for line in lines:
        kv = dict(t.split("=", 1) for t in line.split())
        got = scontrol("show", "hostnames", kv["Nodes"]).stdout.split()
        assert len(got) == len(set(got)) and set(got) == rank_nodes[kv["JobName"]]


def test_slurm_block_and_yaml_need_a_newer_slurm(slurm):
    """topology/block needs Slurm 23.02+ and topology.yaml 25.05+: tested where the installed Slurm has them."""
    r = subprocess.run([_which("slurmctld"), "-V"], capture_output=True, text=True)
    m = re.search(r"(\d+)\.(\d+)", r.stdout)
    ver = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    if ver < (23, 2):
        pytest.skip(f"installed Slurm {r.stdout.strip()} has no topology/block (23.02+) nor topology.yaml (25.05+)")
    c, f, plan = example("small")
    block = ex.render("slurm-conf-block", f, plan, c)["topology-block.conf"]
    all_nodes = ex.collect([f.server_name(i) for i in range(f.n_servers)])
    scontrol, d = slurm(block, all_nodes, plugin="topology/block")
    r = scontrol("show", "topology")
    assert r.returncode == 0 and "BlockName=block001" in r.stdout, r.stdout + r.stderr


# --- GraphML readers -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", SMALL_EXAMPLES)
def test_graphml_reads_back_in_networkx_and_igraph(name, tmp_path):
    from topo.routing.describe import describe
    c, f, plan = example(name)
    ex.export("graphml", f, plan, tmp_path, cluster=c)
    d = describe(f, c)
    n_nodes = d["endpoints"] + sum(t["switches"] for t in d["tiers"])
    n_edges = sum(d["links"].values())
    g = nx.read_graphml(str(tmp_path / "fabric.graphml"), force_multigraph=True)
    assert (g.number_of_nodes(), g.number_of_edges()) == (n_nodes, n_edges)
    igraph = pytest.importorskip("igraph", reason="python-igraph not installed")
    ig = igraph.Graph.Read_GraphML(str(tmp_path / "fabric.graphml"))
    assert (ig.vcount(), ig.ecount()) == (n_nodes, n_edges)
    assert sorted(ig.es["gbps"]) == sorted(float(x) for x in f.link_gbps[::2])
