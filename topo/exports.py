"""Exports: a fabric and a plan written in the formats schedulers and simulators read.

Owns the translation of a built :class:`~topo.fabric.Fabric` (plus the plan's
placement and metrics) into Slurm ``topology.yaml``/``topology.conf``, Kueue
``Topology`` and node labels, GraphML, ASTRA-sim analytical network YAML,
htsim ``.topo``/``.cm`` and a link-loads CSV. Formats are described in
FORMATS.md (sections 1.1-1.3, 2.1, 2.4). It computes no metrics: loads come
from the plan; only the htsim connection matrix expands the placed jobs'
collectives into flows (:func:`topo.traffic.job_demands`).

Every format has a pure renderer ``render_<fmt>(fabric, plan, cluster=None,
**options) -> {filename: text | bytes | writer(path)}`` and a writer
``export_<fmt>(fabric, plan, out_dir, *, cluster=None, force=False,
**options) -> [paths]`` that stages all files and renames them into place
(:class:`topo.atomic.StagedFiles`). ``FORMATS`` maps the CLI names to both.

Hierarchy used by the tree views (Slurm tree, Kueue levels, node labels)
-------------------------------------------------------------------------
A server is attached to the leaf of its first endpoint's first port: rail 0
in rail-optimized fabrics, plane 0 in multi-plane fabrics (the convention of
topograph and slurmibtopology). Every server is therefore under exactly one
leaf and every leaf in the view has servers; leaves of the other rails/planes
carry the same servers and are left out. Above the leaves the view is a strict
tree of logical groups: in a 3-tier fabric with several pods one group per pod
(``pod<N>``, all spines of that pod) under one root (``super-spine-tier``); in
a 2-tier fabric (or a custom graph with several leaves) one root
(``spine-tier``). A leaf-spine mesh is not a tree; the groups say "these
leaves share the same spines", which is what the schedulers use.

Scale-up blocks (Slurm block topology, Kueue domain label) are the scale-up
domains: a server belongs to the domain of its first accelerator; servers
without accelerators are in no block.

Names in each format's own syntax (:mod:`topo.textsafe`)
---------------------------------------------------------
CSV files go through :class:`topo.textsafe.CsvWriter` (quoted fields, a ``'``
before a cell a spreadsheet would run as a formula); YAML scalars are plain
only when unambiguous, else double-quoted; GraphML names are XML-escaped and a
name XML cannot carry is refused; Slurm switch names and Kubernetes label
keys, values and object names outside their syntax are refused (SpecError
naming the field) before anything is written; ``slurm-jobs.conf`` writes job
names with letters, digits, ``_ . -`` only; shell words go through
:func:`shlex.quote`; the cluster name in file headers is a Python ``repr``
(one line, control characters escaped).
"""
from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from .errors import SpecError
from .fabric import Fabric, LINK_TIER_NAMES, TIER_NAMES
from .hostlist import collect
from .textsafe import (CsvWriter, csv_cell, dns_subdomain_ok, k8s_label_key_ok, sh_quote, visible,
                       xml_text_ok)

DEFAULT_KUEUE_API = "kueue.x-k8s.io/v1beta2"
DEFAULT_LABEL_PREFIX = "fabric.topograph.run/tier-"
DEFAULT_DOMAIN_LABEL = "accelerator.topograph.run/domain"
HOSTNAME_LABEL = "kubernetes.io/hostname"
# ASTRA-sim needs a latency per dimension; the cluster file has none, so these
# are stated assumptions (override with astra_latency_ns=[...]).
DEFAULT_SCALEUP_LATENCY_NS = 500.0
DEFAULT_HOP_LATENCY_NS = 1000.0
# htsim link and switch latencies (override with htsim_link_latency_ns / htsim_switch_latency_ns)
DEFAULT_HTSIM_LINK_LATENCY_NS = 1000
DEFAULT_HTSIM_SWITCH_LATENCY_NS = 0


# --- label values ------------------------------------------------------------------
def fnv1a_64(data: bytes) -> int:
    """FNV-1a 64-bit hash (Go's ``hash/fnv.New64a``)."""
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def label_value(v: str) -> str:
    """A Kubernetes label value as topograph writes it.

    Values longer than 63 characters become ``x`` + the FNV-64a hash in
    lower-case hex (no zero padding), like topograph's labeler.
    """
    v = str(v)
    if len(v) <= 63:
        return v
    return "x" + format(fnv1a_64(v.encode()), "x")


_DNS_BAD = re.compile(r"[^a-z0-9.-]+")


def _dns_name(s: str, default: str = "topo") -> str:
    """A Kubernetes object name (DNS-1123 subdomain) derived from ``s``: every character but
    ``a-z 0-9 . -`` as ``-``, each dot-separated label alphanumeric at both ends."""
    labels = [p.strip("-") for p in _DNS_BAD.sub("-", str(s).lower()).split(".")]
    n = ".".join(p for p in labels if p)[:253].strip("-.")
    return n if dns_subdomain_ok(n) else default


# --- the tree view and the blocks ----------------------------------------------------------
@dataclass(frozen=True)
class TreeView:
    """Strict switch tree over servers (see the module docstring).

    ``levels[0]`` are the leaves, each ``(name, server ids)``; higher levels are
    ``(name, child names)``. ``server_path[s]`` is the list of switch names
    from the server's leaf up to the root (closest first).
    """
    levels: list
    servers: np.ndarray          # server ids in the view (sorted)
    server_path: dict

    @property
    def depth(self) -> int:
        return len(self.levels)


def _first_endpoint(fabric: Fabric) -> np.ndarray:
    """First endpoint id of every server (endpoints are grouped by server)."""
    return np.searchsorted(fabric.ep_server, np.arange(fabric.n_servers, dtype=np.int64))


def server_leaf(fabric: Fabric) -> np.ndarray:
    """Node id of each server's home leaf (first port of its first endpoint)."""
    return fabric.ep_leaf()[_first_endpoint(fabric)]


def placed_servers(fabric: Fabric, assignment: dict) -> np.ndarray:
    """Sorted server ids that hold at least one placed endpoint."""
    if not assignment:
        return np.zeros(0, np.int64)
    eps = np.concatenate([np.asarray(v, np.int64) for v in assignment.values()])
    return np.unique(fabric.ep_server[eps])


def tree_view(fabric: Fabric, servers: Optional[np.ndarray] = None) -> TreeView:
    """The strict tree of switches over ``servers`` (default: all servers)."""
    if servers is None:
        servers = np.arange(fabric.n_servers, dtype=np.int64)
    servers = np.unique(np.asarray(servers, np.int64))
    leaf_of = server_leaf(fabric)[servers]
    leaves, inv = np.unique(leaf_of, return_inverse=True)
    leaf_names = [fabric.node_name(int(l)) for l in leaves]
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(leaves.size + 1))
    level0 = [(leaf_names[i], servers[order[bounds[i]:bounds[i + 1]]]) for i in range(leaves.size)]
    taken = set(leaf_names)

    def fresh(name: str) -> str:
        while name in taken:
            name = "grp-" + name
        taken.add(name)
        return name

    levels = [level0]
    parent_of_leaf: list[list[str]] = [[] for _ in range(leaves.size)]
    if fabric.n_tiers >= 3 and fabric.pods > 1 and fabric.family != "custom":
        pods = np.asarray(fabric.node_pod)[leaves]
        pod_ids = np.unique(pods)
        pod_names = {int(p): fresh(f"pod{int(p)}") for p in pod_ids}
        level1 = [(pod_names[int(p)], [leaf_names[i] for i in np.flatnonzero(pods == p)]) for p in pod_ids]
        root = fresh(f"{TIER_NAMES[3]}-tier")
        levels += [level1, [(root, [n for n, _ in level1])]]
        for i in range(leaves.size):
            parent_of_leaf[i] = [pod_names[int(pods[i])], root]
    elif leaves.size > 1:
        top = min(fabric.n_tiers, 3) if fabric.n_tiers >= 2 else 2
        root = fresh(f"{TIER_NAMES[top]}-tier")
        levels.append([(root, list(leaf_names))])
        for i in range(leaves.size):
            parent_of_leaf[i] = [root]
    server_path = {}
    for i, (name, srv) in enumerate(level0):
        path = [name] + parent_of_leaf[i]
        for s in srv.tolist():
            server_path[s] = path
    return TreeView(levels=levels, servers=servers, server_path=server_path)


@dataclass(frozen=True)
class Blocks:
    """Scale-up blocks: ``blocks`` is a list of (name, server ids)."""
    blocks: list
    sizes: list        # Slurm block_sizes (nodes)

    @property
    def base(self) -> int:
        return self.sizes[0] if self.sizes else 0


def block_sizes(smallest: int, n_blocks: int) -> list[int]:
    """topograph's convention: ``[D, 2D, 4D, ..., 2^k D]`` with ``k = floor(log2 N)``."""
    if smallest <= 0 or n_blocks <= 0:
        return []
    k = int(math.floor(math.log2(n_blocks)))
    return [smallest * 2 ** i for i in range(k + 1)]


def scaleup_blocks(fabric: Fabric, servers: Optional[np.ndarray] = None,
                   sizes: Optional[list[int]] = None) -> Blocks:
    """Servers grouped by the scale-up domain of their first accelerator."""
    if servers is None:
        servers = np.arange(fabric.n_servers, dtype=np.int64)
    servers = np.unique(np.asarray(servers, np.int64))
    acc = np.flatnonzero(fabric.ep_is_accel)
    dom_of_server = np.full(fabric.n_servers, -1, np.int64)
    if acc.size:
        # first accelerator of each server (endpoints are grouped by server)
        srv = fabric.ep_server[acc]
        first = np.concatenate([[True], srv[1:] != srv[:-1]])
        dom_of_server[srv[first]] = fabric.ep_domain[acc[first]]
    s = servers[dom_of_server[servers] >= 0]
    d = dom_of_server[s]
    doms, inv = np.unique(d, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(doms.size + 1))
    w = max(3, len(str(max(int(doms.size) - 1, 0))))
    blocks = [(f"block{i:0{w}d}", s[order[bounds[i]:bounds[i + 1]]]) for i in range(doms.size)]
    if sizes is None:
        smallest = min((b.size for _, b in blocks), default=0)
        sizes = block_sizes(int(smallest), len(blocks))
    return Blocks(blocks=blocks, sizes=[int(x) for x in sizes])


# --- helpers --------------------------------------------------------------------------------
_SLURM_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")


def _check_names(tv: "TreeView", what: str, pattern=_SLURM_NAME) -> None:
    """Switch names must be writable in the target format (custom graphs may name them freely)."""
    bad = [n for level in tv.levels for n, _ in level if not pattern.fullmatch(n)]
    if bad:
        raise SpecError([("--format", f"{len(bad)} switch name(s) cannot be written in {what} (e.g. {bad[0]!r}); "
                          "names need letters, digits, '_', '.', '-'")])


def _hl(fabric: Fabric, servers) -> str:
    return collect([fabric.server_name(int(s)) for s in servers])


def _assignment(plan: Optional[dict]) -> dict:
    if not plan:
        return {}
    a = (plan.get("placement") or {}).get("assignment") or {}
    return {str(k): np.asarray(v, np.int64) for k, v in a.items()}


def _select_servers(fabric: Fabric, plan: Optional[dict], nodes: str) -> Optional[np.ndarray]:
    if nodes == "all":
        return None
    if nodes == "placed":
        s = placed_servers(fabric, _assignment(plan))
        if s.size == 0:
            raise SpecError([("--nodes", "'placed' asks for the placed nodes, but the plan places no job")])
        return s
    raise SpecError([("--nodes", f"expected 'all' or 'placed', found {nodes!r}")])


_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_.\-\[\],/]*")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _ys(x) -> str:
    """A YAML scalar: plain when unambiguous, else a JSON (= YAML double-quoted) string."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return str(x)
    x = str(x)
    if _PLAIN.fullmatch(x) and x.lower() not in _YAML_WORDS:
        return x
    return json.dumps(x)


def _header(fabric: Fabric, what: str, comment: str = "#") -> str:
    from . import __version__
    name = fabric.meta.get("cluster_name", "cluster")
    return f"{comment} {what} for cluster {name!r}, generated by topo {__version__}\n"


# --- Slurm -----------------------------------------------------------------------------------
def render_slurm_yaml(fabric: Fabric, plan: Optional[dict] = None, cluster=None, *, nodes: str = "all",
                      block_sizes: Optional[list[int]] = None, tree_name: str = "fabric",
                      block_name: str = "nvl", **_) -> dict:
    """Slurm ``topology.yaml``: a ``tree`` topology (default) and a ``block`` one.

    The block topology is omitted when no server has accelerators.
    """
    servers = _select_servers(fabric, plan, nodes)
    tv = tree_view(fabric, servers)
    _check_names(tv, "Slurm topology.yaml")
    out = [f"- topology: {_ys(tree_name)}", "  cluster_default: true", "  tree:", "    switches:"]
    for level in reversed(tv.levels[1:]):
        for name, children in level:
            out += [f"    - switch: {_ys(name)}", f"      children: {_ys(collect(list(children)))}"]
    for name, srv in tv.levels[0]:
        out += [f"    - switch: {_ys(name)}", f"      nodes: {_ys(_hl(fabric, srv))}"]
    bl = scaleup_blocks(fabric, servers, block_sizes)
    if bl.blocks:
        out += [f"- topology: {_ys(block_name)}", "  cluster_default: false", "  block:",
                "    block_sizes: [" + ", ".join(str(int(x)) for x in bl.sizes) + "]", "    blocks:"]
        for n, srv in bl.blocks:
            out += [f"    - block: {_ys(n)}", f"      nodes: {_ys(_hl(fabric, srv))}"]
    head = _header(fabric, "Slurm topology.yaml (topology.yaml(5))")
    head += ("# install beside slurm.conf (it takes precedence over topology.conf); partitions refer\n"
             "# to a topology by its name\n"
             "# tree: servers under the leaf of their first port (rail 0 / plane 0); leaves sharing\n"
             "# the same spines grouped under one logical switch. block: scale-up domains.\n")
    return {"topology.yaml": head + "\n".join(out) + "\n"}


def render_slurm_conf_tree(fabric: Fabric, plan: Optional[dict] = None, cluster=None, *, nodes: str = "all", **_) -> dict:
    """Slurm ``topology.conf`` for ``TopologyPlugin=topology/tree``."""
    servers = _select_servers(fabric, plan, nodes)
    tv = tree_view(fabric, servers)
    _check_names(tv, "Slurm topology.conf")
    lines = [_header(fabric, "Slurm topology.conf, topology/tree").rstrip("\n"),
             "# install as topology.conf beside slurm.conf, with TopologyPlugin=topology/tree",
             "# servers under the leaf of their first port (rail 0 / plane 0); a logical switch",
             "# per group of leaves that share the same spines"]
    for name, srv in tv.levels[0]:
        lines.append(f"SwitchName={name} Nodes={_hl(fabric, srv)}")
    for level in tv.levels[1:]:
        for name, children in level:
            lines.append(f"SwitchName={name} Switches={collect(list(children))}")
    return {"topology-tree.conf": "\n".join(lines) + "\n"}


def render_slurm_conf_block(fabric: Fabric, plan: Optional[dict] = None, cluster=None, *, nodes: str = "all",
                            block_sizes: Optional[list[int]] = None, **_) -> dict:
    """Slurm ``topology.conf`` for ``TopologyPlugin=topology/block`` (scale-up domains)."""
    servers = _select_servers(fabric, plan, nodes)
    bl = scaleup_blocks(fabric, servers, block_sizes)
    if not bl.blocks:
        raise SpecError([("--format", "slurm-conf-block needs scale-up domains; this cluster has no accelerator nodes")])
    lines = [_header(fabric, "Slurm topology.conf, topology/block").rstrip("\n"),
             "# install as topology.conf beside slurm.conf, with TopologyPlugin=topology/block",
             "# one block per scale-up domain; BlockSizes = [D, 2D, 4D, ...] (topograph convention)"]
    for name, srv in bl.blocks:
        lines.append(f"BlockName={name} Nodes={_hl(fabric, srv)}")
    lines.append("BlockSizes=" + ",".join(str(x) for x in bl.sizes))
    return {"topology-block.conf": "\n".join(lines) + "\n"}


# a job name in slurm-jobs.conf: Unicode letters and digits, '_', '.', '-' (no space, '=', '#',
# quote, shell or control character), so that the line splits into Key=Value words
_SLURM_JOB_BAD = re.compile(r"[^\w.\-]")


def render_slurm_jobs(fabric: Fabric, plan: Optional[dict] = None, cluster=None, **_) -> dict:
    """The placement for Slurm: one ``JobName=<job> Nodes=<hostlist>`` line per placed job.

    The node list is what ``sbatch --nodelist`` takes to pin the job where the
    plan put it; ``Accelerators`` is the number of the job's endpoints.
    """
    a = _assignment(plan)
    if not a:
        raise SpecError([("placement.assignment", "the plan places no job")])
    safe = {job: _SLURM_JOB_BAD.sub("_", job) or "_" for job in a}
    seen: dict = {}
    for job in sorted(a):
        other = seen.setdefault(safe[job], job)
        if other != job:
            raise SpecError([(f"placement.assignment.{visible(job)}",
                              f"job names {other!r} and {job!r} are both written {safe[job]!r} in slurm-jobs.conf "
                              "(characters other than letters, digits, '_', '.', '-' become '_'); rename one")])
    lines = [_header(fabric, "Placed jobs as Slurm node lists (sbatch --nodelist=<Nodes>)").rstrip("\n")]
    renamed = [j for j in sorted(a) if safe[j] != j]
    if renamed:
        lines.append(f"# {len(renamed)} job name(s) hold characters other than letters, digits, '_', '.', '-'; "
                     "they are written with those characters as '_':")
        lines += [f"#   JobName={safe[j]} is the job {j!r}" for j in renamed]
    for job in sorted(a):
        eps = a[job]
        lines.append(f"JobName={safe[job]} Nodes={_hl(fabric, np.unique(fabric.ep_server[eps]))} Accelerators={eps.size}")
    return {"slurm-jobs.conf": "\n".join(lines) + "\n"}


def render_rank_map(fabric: Fabric, plan: Optional[dict] = None, cluster=None, **_) -> dict:
    """Where every rank of every placed job runs: ``job,rank,node,accelerator`` rows (CSV).

    ``accelerator`` is the index of the accelerator among the node's
    accelerators (the device index a launcher binds the rank to). The rows are
    the plan's assignment in rank order: a launcher that starts rank ``r`` on
    that node and device runs the rank order topo chose, which need not be a
    block distribution over the node list (see ``topo place``).

    Written with :class:`topo.textsafe.CsvWriter`: a job name with a comma,
    quote or line break is quoted, and one starting with ``= + - @``, tab or
    CR gets a leading ``'`` so that no spreadsheet runs it as a formula.
    """
    a = _assignment(plan)
    if not a:
        raise SpecError([("placement.assignment", "the plan places no job")])
    ep_server = np.asarray(fabric.ep_server)
    acc = np.asarray(fabric.ep_is_accel, bool)
    first = np.searchsorted(ep_server, np.arange(fabric.n_servers))
    # index of every endpoint among its node's accelerators
    acc_before = np.concatenate([[0], np.cumsum(acc)])
    buf = io.StringIO()
    w = CsvWriter(buf)
    w.writerow(["job", "rank", "node", "accelerator"])
    for job in sorted(a):
        eps = np.asarray(a[job], np.int64)
        if eps.size and (eps.min() < 0 or eps.max() >= fabric.n_endpoints or not acc[eps].all()):
            raise SpecError([(f"placement.assignment.{visible(job)}", "names an endpoint that is not an accelerator "
                              "of this fabric")])
        srv = ep_server[eps]
        local = acc_before[eps] - acc_before[first[srv]]
        u, inv = np.unique(srv, return_inverse=True)
        uname = [fabric.server_name(int(x)) for x in u]
        for r, (i, k) in enumerate(zip(inv.tolist(), local.tolist())):
            w.writerow([job, r, uname[i], k])
    return {"rank-map.csv": buf.getvalue()}


# --- Kueue -----------------------------------------------------------------------------------
def kueue_labels(fabric: Fabric, servers: Optional[np.ndarray] = None, *, label_prefix: str = DEFAULT_LABEL_PREFIX,
                 domain_label: Optional[str] = DEFAULT_DOMAIN_LABEL) -> tuple[list[str], dict]:
    """Kueue levels (coarsest first) and ``{server name: {label: value}}``.

    Fabric levels are ``<label_prefix><i>`` with tier 0 the leaf (topograph's
    numbering). The domain label is added to every accelerator server; it is a
    Kueue level (between the leaf and the host) only when every domain spans
    several servers and lies under a single leaf, so that the levels nest.
    """
    tv = tree_view(fabric, servers)
    bad = [n for level in tv.levels for n, _ in level if not _LABEL_VALUE.fullmatch(label_value(n))]
    if bad:
        raise SpecError([("--format", f"switch name {bad[0]!r} is not a valid Kubernetes label value")])
    bl = scaleup_blocks(fabric, tv.servers)
    keys = [f"{label_prefix}{i}" for i in range(tv.depth)]
    labels: dict[str, dict[str, str]] = {}
    for s in tv.servers.tolist():
        path = tv.server_path[s]
        labels[fabric.server_name(s)] = {k: label_value(v) for k, v in zip(keys, path)}
    domain_level = False
    if domain_label:
        nested = bool(bl.blocks)
        for name, srv in bl.blocks:
            if srv.size < 2 or len({tv.server_path[int(x)][0] for x in srv}) != 1:
                nested = False
            for x in srv.tolist():
                labels[fabric.server_name(x)][domain_label] = label_value(name)
        domain_level = nested
    levels = list(reversed(keys)) + ([domain_label] if domain_level else []) + [HOSTNAME_LABEL]
    return levels, labels


def render_kueue(fabric: Fabric, plan: Optional[dict] = None, cluster=None, *, nodes: str = "all",
                 api_version: str = DEFAULT_KUEUE_API, label_prefix: str = DEFAULT_LABEL_PREFIX,
                 domain_label: Optional[str] = DEFAULT_DOMAIN_LABEL, topology_name: Optional[str] = None, **_) -> dict:
    """Kueue ``Topology`` plus node labels as Node patches and a ``kubectl label`` script."""
    import yaml
    # names are checked before anything is rendered: Kubernetes refuses keys and names outside its syntax
    if not label_prefix or not k8s_label_key_ok(f"{label_prefix}0"):
        raise SpecError([("--label-prefix", f"{label_prefix!r} + a level number is not a Kubernetes label key "
                          "([DNS subdomain/]name, the name 1-63 of letters, digits, '-', '_', '.')")])
    if domain_label and not k8s_label_key_ok(domain_label):
        raise SpecError([("--domain-label", f"{domain_label!r} is not a Kubernetes label key "
                          "([DNS subdomain/]name, the name 1-63 of letters, digits, '-', '_', '.')")])
    if topology_name is not None and not dns_subdomain_ok(topology_name):
        raise SpecError([("topology_name", f"{topology_name!r} is not a Kubernetes object name (DNS-1123 subdomain)")])
    servers = _select_servers(fabric, plan, nodes)
    levels, labels = kueue_labels(fabric, servers, label_prefix=label_prefix, domain_label=domain_label)
    name = topology_name or _dns_name(fabric.meta.get("cluster_name", "topo"))
    topo_doc = {"apiVersion": api_version, "kind": "Topology", "metadata": {"name": name},
                "spec": {"levels": [{"nodeLabel": k} for k in levels]}}
    head = _header(fabric, "Kueue Topology (levels coarsest first)")
    files = {"kueue-topology.yaml": head + yaml.safe_dump(topo_doc, sort_keys=False)}
    docs = []
    for n, l in labels.items():
        docs += ["---", "apiVersion: v1", "kind: Node", "metadata:", f"  name: {_ys(n)}", "  labels:"]
        docs += [f"    {_ys(k)}: {_ys(v)}" for k, v in sorted(l.items())]
    files["node-labels.yaml"] = (_header(fabric, "Node label patches (kubectl patch / apply --server-side)")
                                 + "# kubernetes.io/hostname is set by the kubelet and not repeated here\n"
                                 + "\n".join(docs) + "\n")
    sh = ["#!/bin/sh", _header(fabric, "Node labels as kubectl commands").rstrip("\n"), "set -e"]
    for n, l in labels.items():
        kv = " ".join(sh_quote(f"{k}={v}") for k, v in sorted(l.items()))
        sh.append(f"kubectl label node {sh_quote(n)} --overwrite {kv}")
    files["node-labels.sh"] = "\n".join(sh) + "\n"
    return files


# --- GraphML ---------------------------------------------------------------------------------
_GRAPHML_HEAD = """<?xml version='1.0' encoding='utf-8'?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">
  <key id="d7" for="edge" attr.name="reach" attr.type="string" />
  <key id="d6" for="edge" attr.name="length_m" attr.type="double" />
  <key id="d5" for="edge" attr.name="tier" attr.type="long" />
  <key id="d4" for="edge" attr.name="gbps" attr.type="double" />
  <key id="d3" for="edge" attr.name="link" attr.type="long" />
  <key id="d2" for="node" attr.name="pod" attr.type="long" />
  <key id="d1" for="node" attr.name="plane" attr.type="long" />
  <key id="d0" for="node" attr.name="tier" attr.type="long" />
  <graph edgedefault="undirected">
"""


def write_graphml(fabric: Fabric, path, chunk: int = 65536) -> None:
    """Stream the fabric as GraphML, in the schema of :func:`topo.graphio.write_graphml`.

    Same keys, node ids (names) and attributes as the networkx writer (one
    edge per physical link, parallel links keyed 0, 1, ...), but written
    straight from the arrays: at 131,072 accelerators networkx needs about
    2 GB and two minutes, this a few seconds and no graph object.
    """
    from xml.sax.saxutils import escape, quoteattr

    from .fabric import REACH_NAMES
    names = [quoteattr(n) for n in fabric.node_names()]
    tier, plane, pod = fabric.node_tier.tolist(), fabric.node_plane.tolist(), fabric.node_pod.tolist()
    up = np.arange(0, fabric.n_links, 2, dtype=np.int64)
    u, v = fabric.link_src[up], fabric.link_dst[up]
    # multigraph edge key: running count of earlier links between the same pair
    pair = np.minimum(u, v) * fabric.n_nodes + np.maximum(u, v)
    order = np.argsort(pair, kind="stable")
    ps = pair[order]
    start = np.searchsorted(ps, ps)
    key = np.empty(up.size, np.int64)
    key[order] = np.arange(up.size) - start
    reach = [escape(r) for r in REACH_NAMES]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(_GRAPHML_HEAD)
        for lo in range(0, fabric.n_nodes, chunk):
            fh.write("".join(f'    <node id={names[i]}><data key="d0">{tier[i]}</data><data key="d1">{plane[i]}</data>'
                             f'<data key="d2">{pod[i]}</data></node>\n' for i in range(lo, min(lo + chunk, fabric.n_nodes))))
        gb, lt, lm, rc = fabric.link_gbps[up], fabric.link_tier[up], fabric.link_length_m[up], fabric.link_reach[up]
        for lo in range(0, up.size, chunk):
            sl = slice(lo, lo + chunk)
            rows = zip(u[sl].tolist(), v[sl].tolist(), key[sl].tolist(), up[sl].tolist(), gb[sl].tolist(),
                       lt[sl].tolist(), lm[sl].astype(np.float64).tolist(), rc[sl].tolist())
            fh.write("".join(f'    <edge source={names[a]} target={names[b]} id="{k}"><data key="d3">{l}</data>'
                             f'<data key="d4">{g!r}</data><data key="d5">{t}</data><data key="d6">{m!r}</data>'
                             f'<data key="d7">{reach[r]}</data></edge>\n' for a, b, k, l, g, t, m, r in rows))
        fh.write("  </graph>\n</graphml>\n")


def render_graphml(fabric: Fabric, plan: Optional[dict] = None, cluster=None, **_) -> dict:
    """The fabric as GraphML (node ids are names; see :func:`write_graphml`).

    Names are XML-escaped; a name holding a character XML 1.0 cannot carry (a
    control character other than tab, LF, CR) is refused before anything is written.
    """
    if fabric.meta.get("custom_names") is not None:
        bad = [n for n in fabric.node_names() if not xml_text_ok(n)]
        if bad:
            raise SpecError([("fabric.custom", f"{len(bad)} node name(s) hold characters GraphML (XML 1.0) cannot "
                              f"carry (e.g. {bad[0]!r}): control characters other than tab and line breaks")])
    return {"fabric.graphml": lambda path: write_graphml(fabric, path)}


# --- ASTRA-sim -------------------------------------------------------------------------------
def astra_dims(fabric: Fabric) -> list[dict]:
    """Hierarchical dimensions of the accelerators for ASTRA-sim's analytical backend.

    Group sizes (accelerators) from fine to coarse: the scale-up domain, the
    accelerators under one home leaf (rail group), a pod, everything. A level is
    kept only when its size is a multiple of the previous one, so the product of
    ``npus`` is the number of accelerators. Bandwidth per accelerator (GB/s):
    scale-up bandwidth; then injection; injection divided by the oversubscription
    of every tier crossed to leave the group.
    """
    acc = np.flatnonzero(fabric.ep_is_accel)
    n = int(acc.size)
    if n == 0:
        raise SpecError([("--format", "astra-sim needs accelerators; this cluster has none")])
    inj = float(np.median(fabric.injection_gbps()[acc]))
    os_ = [float(x) if math.isfinite(x) else float("inf") for x in fabric.tier_oversubscription]
    dom_sizes = np.asarray(fabric.domain_size)
    D = int(np.bincount(dom_sizes).argmax()) if dom_sizes.size else 1
    sleaf = server_leaf(fabric)[fabric.ep_server[acc]]
    A1 = int(np.bincount(np.unique(sleaf, return_counts=True)[1]).argmax())
    cand = []  # (size, kind, bandwidth GB/s)
    if D > 1:
        cand.append((D, "scale-up", float(np.median(fabric.domain_gbps)) / 8.0))
    cand.append((A1, "leaf", inj / 8.0))
    if fabric.n_tiers >= 3 and fabric.pods > 1 and fabric.family != "custom":
        pod_of = fabric.node_pod[sleaf]
        A2 = int(np.bincount(np.unique(pod_of, return_counts=True)[1]).argmax())
        cand.append((A2, "pod", inj / 8.0 / os_[0]))
        cand.append((n, "fabric", inj / 8.0 / (os_[0] * os_[1])))
    else:
        cand.append((n, "fabric", inj / 8.0 / (os_[0] if fabric.n_tiers >= 2 else 1.0)))
    dims, prev = [], 1
    for size, kind, bw in cand:
        if size <= prev or size % prev or n % size:
            continue
        dims.append({"kind": kind, "npus": size // prev, "bandwidth_GBps": bw})
        prev = size
    if prev != n:  # cannot happen: the last candidate is n
        raise AssertionError("ASTRA-sim dimensions do not multiply to the accelerator count")
    return dims


def render_astra_sim(fabric: Fabric, plan: Optional[dict] = None, cluster=None, *,
                     astra_latency_ns: Optional[list[float]] = None, **_) -> dict:
    """ASTRA-sim analytical network YAML (``topology``/``npus_count``/``bandwidth``/``latency``)."""
    dims = astra_dims(fabric)
    if astra_latency_ns is not None:
        if len(astra_latency_ns) != len(dims):
            raise SpecError([("--astra-latency-ns", f"give {len(dims)} latencies (one per dimension: "
                              f"{', '.join(d['kind'] for d in dims)}), found {len(astra_latency_ns)}")])
        lat = [float(x) for x in astra_latency_ns]
    else:
        hops = {"scale-up": 0, "leaf": 1, "pod": 2, "fabric": fabric.n_tiers}
        lat = [DEFAULT_SCALEUP_LATENCY_NS if d["kind"] == "scale-up" else DEFAULT_HOP_LATENCY_NS * max(hops[d["kind"]], 1)
               for d in dims]
    fmt = lambda xs: "[ " + ", ".join(xs) + " ]"
    text = _header(fabric, "ASTRA-sim analytical network")
    text += ("# An abstraction of the fabric, not a wiring: one Switch dimension per level of the\n"
             "# hierarchy (" + ", ".join(f"{d['kind']} x{d['npus']}" for d in dims) + "); per-link congestion\n"
             "# is not modelled. Bandwidth = GB/s per accelerator in that dimension (injection divided\n"
             "# by the oversubscription of the tiers crossed); latency in ns is an assumption\n"
             "# (override with --astra-latency-ns).\n")
    text += "topology: " + fmt(["Switch"] * len(dims)) + "\n"
    text += "npus_count: " + fmt([str(d["npus"]) for d in dims]) + "\n"
    text += "bandwidth: " + fmt([f"{d['bandwidth_GBps']:.3f}" for d in dims]) + "\n"
    text += "latency: " + fmt([f"{x:.2f}" for x in lat]) + "\n"
    return {"astra-sim-network.yml": text}


# --- htsim ----------------------------------------------------------------------------------
def _one_value(x: np.ndarray, what: str, problems: list) -> float:
    u = np.unique(x)
    if u.size > 1:
        shown = ", ".join(f"{float(v):g}" for v in u[:4]) + (" ..." if u.size > 4 else "")
        problems.append(f"{what} differ ({shown})")
    return float(u[0]) if u.size else 0.0


def htsim_structure(fabric: Fabric) -> dict:
    """Parameters of htsim's fat tree for a regular Clos, or SpecError saying why not.

    Regular means: 2 or 3 tiers (a rail-optimized fabric is a Clos whose leaves
    hold one rail each; the host map says which endpoint is which host), one plane, one port per endpoint, every switch
    of a tier above the leaves with the same down/up port counts, one speed per
    tier, whole-number oversubscription, full pods. Leaves are described by
    their endpoint port capacity: host ids are slots ``leaf * Radix_Down + k``
    and unused leaf ports become unused hosts.
    """
    problems = []
    if fabric.family not in ("clos", "fat_tree", "rail_optimized", "custom"):
        problems.append(f"family {fabric.family!r} is not a plain Clos")
    if fabric.family == "custom" and fabric.n_tiers != 2:
        problems.append("a custom graph has no pods; only a 2-tier one maps to htsim")
    if fabric.planes != 1:
        problems.append(f"{fabric.planes} planes (htsim models one)")
    if fabric.n_tiers not in (2, 3):
        problems.append(f"{fabric.n_tiers} tier(s) (htsim models 2 or 3)")
    if fabric.meta.get("breakout", 1) != 1:
        problems.append("leaf ports are broken out")

    def refuse():
        raise SpecError([("--format", "htsim .topo describes only a regular Clos: " + "; ".join(problems)
                          + ". Use the GraphML export for this fabric.")])
    if problems:
        refuse()
    up = (np.arange(fabric.n_links) & 1) == 0
    src, dst, tier, gbps = fabric.link_src[up], fabric.link_dst[up], fabric.link_tier[up], fabric.link_gbps[up]
    n = fabric.n_nodes
    ports = np.bincount(src[tier == 0], minlength=n)[: fabric.n_endpoints]
    if ports.size and ports.max() != 1:
        problems.append("endpoints have several ports")
    T = fabric.n_tiers
    out: dict[Any, Any] = {"tiers": T}
    for t in range(T):
        sw = np.flatnonzero(fabric.node_tier == t + 1)
        down = np.bincount(dst[tier == t], minlength=n)[sw]
        if t == 0:
            d = int(fabric.meta.get("endpoint_ports_per_leaf", int(down.max()) if down.size else 0))
            if down.size and down.max() > d:
                problems.append("a leaf has more endpoint ports than its capacity")
        else:
            d = int(_one_value(down, f"down links of tier-{t} switches", problems))
        speed = _one_value(gbps[tier == t], f"link speeds below tier {t}", problems)
        if not speed.is_integer():
            problems.append(f"link speed {speed:g} Gb/s below tier {t} is not whole")
        s = {"radix_down": d, "downlink_gbps": int(speed), "switches": int(sw.size)}
        if t < T - 1:
            u = int(_one_value(np.bincount(src[tier == t + 1], minlength=n)[sw], f"up links of tier-{t} switches", problems))
            speed_up = _one_value(gbps[tier == t + 1], f"link speeds above tier {t}", problems)
            ratio = d * speed / (u * speed_up) if u and speed_up else float("inf")
            if not (math.isfinite(ratio) and abs(ratio - round(ratio)) < 1e-9 and round(ratio) >= 1):
                problems.append(f"tier-{t} oversubscription {ratio:.3g} is not a whole number")
            s.update(radix_up=u, oversubscribed=int(round(ratio)) if math.isfinite(ratio) else 0)
        if t >= 1:
            # Bundle: parallel links between one pair of switches of tiers t-1 and t
            m = tier == t
            _, cnt = np.unique(src[m] * n + dst[m], return_counts=True)
            s["bundle"] = int(_one_value(cnt, f"parallel links between tier-{t - 1} and tier-{t} switches", problems))
        out[t] = s
    leaves = out[0]["switches"]
    if T == 3:
        lp = int(fabric.meta.get("leaves_per_pod", leaves))
        if leaves % lp:
            problems.append("the last pod is not full")
        out["podsize"] = lp * out[0]["radix_down"]
    else:
        out["podsize"] = leaves * out[0]["radix_down"]
    out["nodes"] = leaves * out[0]["radix_down"]
    if problems:
        refuse()
    return out


def htsim_host_ids(fabric: Fabric, radix_down: int) -> np.ndarray:
    """htsim host id of every endpoint: ``leaf index * radix_down + position on the leaf``."""
    leaf = fabric.ep_leaf()
    order = np.lexsort((np.arange(fabric.n_endpoints), leaf))
    ls = leaf[order]
    start = np.searchsorted(ls, ls)
    pos = np.empty(fabric.n_endpoints, np.int64)
    pos[order] = np.arange(fabric.n_endpoints) - start
    return fabric.node_index[leaf].astype(np.int64) * radix_down + pos


def _flows(cluster, fabric: Fabric, plan: Optional[dict]):
    """Scale-out flows of the placed jobs: (src, dst, bytes), same-domain flows removed."""
    assignment = _assignment(plan)
    if cluster is None or not assignment:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    from .traffic import job_demands
    names = {j.name for j in cluster.file.jobs}
    d = job_demands(cluster, fabric, {k: v for k, v in assignment.items() if k in names})
    src, dst, nb = d.src, d.dst, d.bytes
    dom = fabric.ep_domain
    net = (src != dst) & ~((dom[src] >= 0) & (dom[src] == dom[dst]))
    src, dst, nb = src[net], dst[net], nb[net]
    # one connection per (src, dst) pair, bytes summed, in (src, dst) order
    key = src * fabric.n_endpoints + dst
    uk, inv = np.unique(key, return_inverse=True)
    tot = np.bincount(inv, weights=nb, minlength=uk.size)
    return uk // fabric.n_endpoints, uk % fabric.n_endpoints, tot


def render_htsim(fabric: Fabric, plan: Optional[dict] = None, cluster=None, *,
                 htsim_link_latency_ns: int = DEFAULT_HTSIM_LINK_LATENCY_NS,
                 htsim_switch_latency_ns: int = DEFAULT_HTSIM_SWITCH_LATENCY_NS, **_) -> dict:
    """htsim fat-tree ``.topo``, the placed jobs' connection matrix ``.cm`` and the host map."""
    st = htsim_structure(fabric)
    lines = [_header(fabric, "htsim fat-tree topology (csg-htsim fat_tree_topology.cpp)").rstrip("\n"),
             f"# {st['nodes']} host slots ({fabric.n_endpoints} used, see htsim-hosts.csv); latencies are assumptions",
             f"Nodes {st['nodes']}", f"Tiers {st['tiers']}", f"Podsize {st['podsize']}", ""]
    tor_ports = st[0]["radix_down"] + st[0].get("radix_up", 0)
    agg_ports = st[1]["radix_down"] + st[1].get("radix_up", 0)
    if tor_ports >= 96 or agg_ports >= 64:
        lines.insert(2, f"# note: these switches have {tor_ports} (tier 0) and {agg_ports} (tier 1) ports; some csg-htsim "
                        "versions assert fewer than 96 and 64 in fat_tree_topology.cpp")
    for t in range(st["tiers"]):
        s = st[t]
        lines.append(f"Tier {t}")
        if "oversubscribed" in s:
            lines.append(f"Oversubscribed {s['oversubscribed']}")
        lines.append(f"Downlink_speed_Gbps {int(s['downlink_gbps'])}")
        lines.append(f"Radix_Down {s['radix_down']}")
        if "radix_up" in s:
            lines.append(f"Radix_Up {s['radix_up']}")
        lines.append(f"Downlink_Latency_ns {int(htsim_link_latency_ns)}")
        lines.append(f"Switch_Latency_ns {int(htsim_switch_latency_ns)}")
        if "bundle" in s:
            lines.append(f"Bundle {s['bundle']}")
        lines.append("")
    files = {"htsim.topo": "\n".join(lines)}
    hid = htsim_host_ids(fabric, st[0]["radix_down"])
    src, dst, nb = _flows(cluster, fabric, plan)
    cm = [f"Nodes {st['nodes']}", f"Connections {src.size}"]
    for i, (s, d, b) in enumerate(zip(hid[src].tolist(), hid[dst].tolist(), nb.tolist()), 1):
        cm.append(f"{s}->{d} id {i} start 0 size {int(round(b))}")
    files["htsim.cm"] = "\n".join(cm) + "\n"
    buf = io.StringIO()
    w = CsvWriter(buf)
    w.writerow(["htsim_host", "endpoint", "name", "leaf"])
    leaf = fabric.ep_leaf()
    for e in range(fabric.n_endpoints):
        w.writerow([int(hid[e]), e, fabric.node_name(e), fabric.node_name(int(leaf[e]))])
    files["htsim-hosts.csv"] = buf.getvalue()
    return files


# --- link loads ---------------------------------------------------------------------------
def link_loads(fabric: Fabric, plan: dict, which: str = "after") -> tuple[np.ndarray, str]:
    """Offered load (Gb/s) per directed link from the plan's metrics, and the key used.

    Reads ``metrics_<which>.link_util`` (falling back to ``metrics_before`` when
    the plan has no metrics after the budget). Accepted shapes: a list of
    utilisations per directed link; a dict with ``util`` or ``load_gbps`` lists;
    a list of ``{"link": id, "util"|"load_gbps": x}`` records.
    """
    key = f"metrics_{which}"
    m = plan.get(key)
    if m is None and which == "after":
        key, m = "metrics_before", plan.get("metrics_before")
    if m is None:
        raise SpecError([(key, "not in the plan: no link loads to export")])
    lu = m.get("link_util")
    if lu is None:
        raise SpecError([(f"{key}.link_util", "not in the plan (the per-link utilisation was not recorded)")])
    L = fabric.n_links
    if isinstance(lu, dict):
        if "load_gbps" in lu:
            arr, kind = np.asarray(lu["load_gbps"], float), "load"
        elif "util" in lu:
            arr, kind = np.asarray(lu["util"], float), "util"
        else:
            raise SpecError([(f"{key}.link_util", "expected 'util' or 'load_gbps' lists")])
    elif isinstance(lu, list) and lu and isinstance(lu[0], dict):
        arr, kind = np.zeros(L), "load"
        for i, r in enumerate(lu):
            l = int(r.get("link", i))
            if not 0 <= l < L:
                raise SpecError([(f"{key}.link_util[{i}].link", f"link id {l} is not in the fabric (0..{L - 1})")])
            arr[l] = r["load_gbps"] if "load_gbps" in r else float(r.get("util", 0.0)) * fabric.link_gbps[l]
    else:
        arr, kind = np.asarray(lu, float), "util"
    if arr.shape != (L,):
        raise SpecError([(f"{key}.link_util", f"has {arr.shape[0] if arr.ndim else 0} entries; the fabric has {L} directed links")])
    load = arr * fabric.link_gbps if kind == "util" else arr
    return np.nan_to_num(load), key


def _same(a, b, rel: float = 1e-6) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) <= rel * max(abs(float(a)), abs(float(b)), 1e-12)


def reproduce_loads(cluster, fabric: Fabric, plan: dict, key: str) -> np.ndarray:
    """Per-link load of ``plan[key]`` by routing the plan's placement again, checked against the plan.

    Used when a plan keeps only the routing summary. The run repeats the
    plan's routing model, seed and queue pairs; its peak utilisation per tier
    must equal the plan's, else SpecError (the plan cannot be reproduced).
    For ``metrics_before`` of a pipeline plan (one that also has
    ``metrics_placed``) the placement is the in-order one.
    """
    from .routing import analyze
    from .traffic import in_order_placement
    m = plan.get(key) or {}
    cands = [("the plan's placement", _assignment(plan))]
    if key == "metrics_before" and "metrics_placed" in plan:
        cands.insert(0, ("the in-order placement", in_order_placement(cluster, fabric)))
    want = {t.get("tier"): t.get("util_max", t.get("max_util")) for t in m.get("tiers") or [] if isinstance(t, dict)}
    got_desc = []
    for label, pl in cands:
        an = analyze(cluster, fabric, routing=m.get("routing"), placement=pl, seed=m.get("seed"),
                     qps=m.get("qps_per_channel", m.get("qps")), channels=m.get("channels"),
                     compare=False, all_to_all=False)
        tiers = {t.get("tier"): t.get("util_max", t.get("max_util")) for t in an.to_dict().get("tiers") or []}
        ok = bool(want) and all(_same(want[t], tiers.get(t)) for t in want)
        if "max_util" in m:
            ok = ok and _same(m["max_util"], an.to_dict().get("max_util"))
        if ok:
            return np.asarray(an.loads, dtype=float)
        got_desc.append(f"{label}: peak {', '.join(f'{t} {tiers.get(t)}' for t in want)}")
    raise SpecError([(f"{key}.link_util", "not in the plan, and routing the plan's placement again does not reproduce "
                      f"its metrics (plan: {', '.join(f'{t} {v}' for t, v in want.items())}; " + "; ".join(got_desc) + ")")])


def render_linkloads_csv(fabric: Fabric, plan: Optional[dict] = None, cluster=None, *, which: str = "after", **_) -> dict:
    """CSV ``link,src,dst,tier,gbps,load_gbps,util``, one row per directed link.

    Loads come from ``metrics_<which>.link_util`` when the plan stores them;
    otherwise (given the cluster) the plan's placement is routed again and the
    result checked against the plan's per-tier peaks (:func:`reproduce_loads`).
    ``which`` is ``after`` (default; falls back to ``before`` when the plan has
    no metrics after the budget), ``placed`` or ``before``.
    """
    if not plan:
        raise SpecError([("metrics_after", "link loads need a plan with metrics")])
    if which not in ("after", "placed", "before"):
        raise SpecError([("--metrics", f"expected after, placed or before, found {which!r}")])
    key = f"metrics_{which}"
    if plan.get(key) is None and which == "after":
        which, key = "before", "metrics_before"
    if plan.get(key) is None:
        raise SpecError([(key, "not in the plan: no link loads to export")])
    if which != "after" and plan.get("cluster_file_after") and isinstance(plan.get("cluster_file"), dict):
        from .fabric import build
        from .spec import from_dict
        cluster = from_dict(plan["cluster_file"], source="plan:cluster_file")
        fabric = build(cluster)
    if plan[key].get("link_util") is None and cluster is not None:
        load = reproduce_loads(cluster, fabric, plan, key)
        return {"link-loads.csv": _loads_csv(fabric, load)}
    load, _key = link_loads(fabric, plan, which)
    return {"link-loads.csv": _loads_csv(fabric, load)}


def _loads_csv(fabric: Fabric, load: np.ndarray) -> str:
    """The link-loads CSV through :class:`topo.textsafe.CsvWriter` (names of a custom graph quoted and guarded)."""
    raw = fabric.node_names()
    names = [csv_cell(n) for n in raw]
    src, dst, tier, cap = fabric.link_src.tolist(), fabric.link_dst.tolist(), fabric.link_tier.tolist(), fabric.link_gbps.tolist()
    ld = load.tolist()
    tn = LINK_TIER_NAMES
    if names == raw and not any(c in n for n in raw for c in ',"\r\n'):
        # plain names (every generated fabric): no cell needs quoting or a guard, and joining the
        # cells gives the same bytes as the csv writer, twice as fast at 786k links
        lines = ["link,src,dst,tier,gbps,load_gbps,util"]
        lines += [f"{l},{raw[src[l]]},{raw[dst[l]]},{tn[tier[l]]},{cap[l]:g},{ld[l]:.6g},"
                  + (f"{ld[l] / cap[l]:.6g}" if cap[l] > 0 else "") for l in range(fabric.n_links)]
        return "\n".join(lines) + "\n"
    buf = io.StringIO()
    w = CsvWriter(buf)
    w.writerow(["link", "src", "dst", "tier", "gbps", "load_gbps", "util"])
    for l in range(fabric.n_links):
        # cells already guarded: names above, numbers formatted (a number is never guarded)
        w.writerow_guarded([l, names[src[l]], names[dst[l]], tn[tier[l]], f"{cap[l]:g}", f"{ld[l]:.6g}",
                            f"{ld[l] / cap[l]:.6g}" if cap[l] > 0 else ""])
    return buf.getvalue()


# --- registry and writers -----------------------------------------------------------------------
@dataclass(frozen=True)
class ExportFormat:
    name: str
    render: Callable[..., dict]
    description: str


FORMATS: dict[str, ExportFormat] = {f.name: f for f in [
    ExportFormat("slurm-yaml", render_slurm_yaml, "Slurm topology.yaml: tree (fabric) and block (scale-up domains)"),
    ExportFormat("slurm-conf-tree", render_slurm_conf_tree, "Slurm topology.conf for topology/tree"),
    ExportFormat("slurm-conf-block", render_slurm_conf_block, "Slurm topology.conf for topology/block"),
    ExportFormat("slurm-jobs", render_slurm_jobs, "placed jobs as Slurm node lists (sbatch --nodelist)"),
    ExportFormat("rank-map", render_rank_map, "placed jobs' ranks: node and accelerator of every rank (CSV)"),
    ExportFormat("kueue", render_kueue, "Kueue Topology, node label patches and kubectl label script"),
    ExportFormat("graphml", render_graphml, "GraphML of the fabric (networkx, Gephi, yEd)"),
    ExportFormat("astra-sim", render_astra_sim, "ASTRA-sim analytical network YAML (an abstraction)"),
    ExportFormat("htsim", render_htsim, "htsim fat-tree .topo, connection matrix .cm and host map"),
    ExportFormat("linkloads-csv", render_linkloads_csv, "offered load and utilisation of every directed link (CSV)"),
]}


def _stage(files: dict, out) -> list[Path]:
    written = []
    for name in sorted(files):
        v = files[name]
        if callable(v):
            v(out.path(name))
            written.append(out.dir / name)
        elif isinstance(v, bytes):
            written.append(out.write_bytes(name, v))
        else:
            written.append(out.write_text(name, v))
    return written


def render(fmt: str, fabric: Fabric, plan: Optional[dict] = None, cluster=None, **options) -> dict:
    """Files of one format (``fmt`` a key of FORMATS), or of every format for ``all``.

    With ``all``, a format that does not apply to this fabric (htsim on an
    irregular fabric, link loads without metrics) is skipped and its reason
    recorded in ``SKIPPED.txt`` (which says so when nothing was skipped).
    """
    if fmt == "all":
        files, skipped = {}, []
        for f in FORMATS.values():
            try:
                files.update(f.render(fabric, plan, cluster, **options))
            except SpecError as e:
                skipped.append(f"{f.name}: " + "; ".join(f"{p}: {m}" for p, m in e.errors))
        # always written, so a re-export with --force never leaves a stale list behind
        files["SKIPPED.txt"] = ("Formats not written for this plan:\n" + "\n".join(skipped) + "\n" if skipped
                                else "Every format was written for this plan.\n")
        return files
    if fmt not in FORMATS:
        raise SpecError([("--format", f"unknown format {fmt!r}; expected one of {', '.join(list(FORMATS) + ['all'])}")])
    return FORMATS[fmt].render(fabric, plan, cluster, **options)


def export(fmt: str, fabric: Fabric, plan: Optional[dict], out_dir, *, cluster=None, force: bool = False,
           **options) -> list[Path]:
    """Render ``fmt`` and write its files into ``out_dir`` atomically.

    Existing files are replaced only with ``force`` (SpecError naming
    ``-o``/``--force`` otherwise, before anything is written).
    """
    from .atomic import StagedFiles
    files = render(fmt, fabric, plan, cluster, **options)
    st = StagedFiles(out_dir, force=force)
    st.check(sorted(files))
    with st:
        return _stage(files, st)


def _make_exporter(name: str):
    def exporter(fabric: Fabric, plan: Optional[dict], out_dir, *, cluster=None, force: bool = False, **options):
        return export(name, fabric, plan, out_dir, cluster=cluster, force=force, **options)
    exporter.__name__ = "export_" + name.replace("-", "_")
    exporter.__doc__ = f"Write {FORMATS[name].description} into ``out_dir`` (see :func:`export`)."
    return exporter


export_slurm_yaml = _make_exporter("slurm-yaml")
export_slurm_conf_tree = _make_exporter("slurm-conf-tree")
export_slurm_conf_block = _make_exporter("slurm-conf-block")
export_slurm_jobs = _make_exporter("slurm-jobs")
export_rank_map = _make_exporter("rank-map")
export_kueue = _make_exporter("kueue")
export_graphml = _make_exporter("graphml")
export_astra_sim = _make_exporter("astra-sim")
export_htsim = _make_exporter("htsim")
export_linkloads_csv = _make_exporter("linkloads-csv")
