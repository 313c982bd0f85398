"""Exports: a fabric and a plan written in the formats schedulers and simulators read.

Owns the translation of a built :class:`~topo.model.fabric.Fabric` (plus the plan's
placement and metrics) into Slurm ``topology.yaml``/``topology.conf``, Kueue
``Topology`` and node labels, Volcano ``HyperNode`` objects, GraphML,
ASTRA-sim analytical network YAML, csg-htsim ``.topo``/``.cm`` with a run
script, and a link-loads CSV. Formats are described in FORMATS.md (sections
1.1-1.4, 2.1, 2.4); what each consumer accepts is tested against the consumer
itself (``tests/test_consumers.py``). It computes no metrics: loads come from
the plan; only the htsim connection matrix expands the placed jobs'
collectives into flows (:func:`topo.traffic.demand.job_demands`).

The plan is read as a typed :class:`topo.io.plan.Plan`: a renderer takes a Plan, a whole
plan dict or a dict of the sections a format reads (``{"placement": {"assignment": ...}}``),
typed once by :func:`topo.io.plan.as_plan` (a section of the wrong kind is a SpecError naming
its JSON path); :func:`render` types it once for every format.

Every format has a pure renderer ``render_<fmt>(fabric, plan, cluster=None,
**options) -> {filename: text | bytes | writer(path)}`` and a writer
``export_<fmt>(fabric, plan, out_dir, *, cluster=None, force=False,
**options) -> [paths]`` that stages all files and renames them into place
(:class:`topo.core.atomic.StagedFiles`). ``FORMATS`` maps the CLI names to both.
A renderer that had to approximate (htsim, ASTRA-sim, the Kueue domain level)
lists how under the key :data:`APPROXIMATIONS`; :func:`render` drops that key
and, for ``all``, writes the list into ``SKIPPED.txt`` after the formats not
written. Options are checked first (:func:`validate_options`), so ``all``
refuses a bad ``--kueue-api`` or label key instead of skipping the Kueue files.

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
(``spine-tier``). A group that is a single real switch carries that switch's
name; a logical one lists the real switches it stands for in a comment. A
leaf-spine mesh is not a tree; the groups say "these leaves share the same
spines", which is what the schedulers use.

Scale-up blocks (Slurm block topology, Kueue domain label) are the scale-up
domains: a server belongs to the domain of its first accelerator; servers
without accelerators are in no block. Blocks are numbered as topograph does
(``block001``, ...), each preceded by a ``# block001=domain<N>`` comment.

Names in each format's own syntax (:mod:`topo.core.textsafe`)
---------------------------------------------------------
CSV files go through :class:`topo.core.textsafe.CsvWriter` (quoted fields, a ``'``
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
from typing import Any, Callable, Optional, Union

import numpy as np

from topo.core.errors import SpecError
from topo.model.fabric import Fabric, LINK_TIER_NAMES, TIER_NAMES
from topo.model.hostlist import collect
from topo.io.plan import Metrics, Plan, TierRow, as_plan
from topo.core.textsafe import (FORMULA_START, CsvWriter, csv_cell, dns_subdomain_ok, k8s_label_key_ok, sh_quote, visible,
                       xml_text_ok)

DEFAULT_KUEUE_API = "kueue.x-k8s.io/v1beta2"
# The Topology API versions Kueue serves (its CRD kueue.x-k8s.io_topologies.yaml: spec.group and the
# spec.versions names with served: true; v1beta1 is served but deprecated). The consumer tests compare
# this with the CRD.
KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_SERVED_VERSIONS = ("v1beta1", "v1beta2")
DEFAULT_LABEL_PREFIX = "fabric.topograph.run/tier-"
DEFAULT_DOMAIN_LABEL = "accelerator.topograph.run/domain"
HOSTNAME_LABEL = "kubernetes.io/hostname"
# Propagation: light in standard single-mode fibre, group index 1.4676 at 1310 nm (Corning SMF-28 Ultra
# product information; unverified here) = 4.896 ns per metre. Applied to every link, copper and
# multimode included; serialisation, FEC, NIC and switch latencies are not in it.
FIBRE_GROUP_INDEX = 1.4676
SPEED_OF_LIGHT_M_PER_S = 299_792_458.0
PROPAGATION_NS_PER_M = 1e9 * FIBRE_GROUP_INDEX / SPEED_OF_LIGHT_M_PER_S
# render results may carry the approximations made under this key; render("all") lists them in SKIPPED.txt
APPROXIMATIONS = "(approximations)"


# --- options ----------------------------------------------------------------------------
_KEY_RULE = "[DNS subdomain/]name, the name 1-63 of letters, digits, '-', '_', '.', alphanumeric at both ends"


def validate_options(*, api_version: Optional[str] = None, label_prefix: Optional[str] = None,
                     domain_label: Optional[str] = None, **_) -> None:
    """Refuse export options the consumers would reject, naming the option (SpecError).

    ``api_version`` must be ``kueue.x-k8s.io/<v>`` with ``<v>`` a version Kueue
    serves; ``label_prefix`` + a level number and ``domain_label`` must be
    Kubernetes label keys, distinct from each other and from
    ``kubernetes.io/hostname``. Checked before any format is rendered, so that
    ``--format all`` refuses them too instead of skipping the Kueue files.
    """
    errs = []
    if api_version is not None:
        group, _, ver = str(api_version).rpartition("/")
        served = ", ".join(f"{KUEUE_GROUP}/{v}" for v in KUEUE_SERVED_VERSIONS)
        if group != KUEUE_GROUP or ver not in KUEUE_SERVED_VERSIONS:
            hint = f" (did you mean {KUEUE_GROUP}/{ver}?)" if not group and ver in KUEUE_SERVED_VERSIONS else ""
            errs.append(("api_version", f"{visible(str(api_version))!r} is not an API version Kueue serves for "
                                        f"Topology; expected one of {served}{hint}"))
    if label_prefix is not None:
        if not label_prefix or not k8s_label_key_ok(f"{label_prefix}0"):
            errs.append(("label_prefix", f"{visible(str(label_prefix))!r} + a level number is not a Kubernetes "
                                           f"label key ({_KEY_RULE})"))
    prefix = DEFAULT_LABEL_PREFIX if label_prefix is None else label_prefix
    if domain_label is not None:
        if not k8s_label_key_ok(domain_label):
            errs.append(("domain_label", f"{visible(str(domain_label))!r} is not a Kubernetes label key ({_KEY_RULE})"))
        elif domain_label == HOSTNAME_LABEL or (prefix and domain_label.startswith(prefix)
                                                 and domain_label[len(prefix):].isdigit()):
            errs.append(("domain_label", f"{domain_label!r} is also a fabric level's or the host's label; "
                                           "Kueue needs distinct level labels"))
    if label_prefix and f"{label_prefix}0" == HOSTNAME_LABEL:
        errs.append(("label_prefix", "gives kubernetes.io/hostname as a fabric level"))
    if errs:
        raise SpecError(errs)


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
    members: dict = None         # logical switch name -> names of the real switches it stands for

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
    members: dict[str, list[str]] = {}
    up = (np.arange(fabric.n_links) & 1) == 0
    usrc, udst = fabric.link_src[up], fabric.link_dst[up]

    def above(nodes) -> np.ndarray:
        """Switches one tier up from ``nodes`` (sorted ids)."""
        return np.unique(udst[np.isin(usrc, np.asarray(nodes, np.int64))])

    def group(real: np.ndarray, synthetic: str) -> str:
        """The real switch's name when the group is one switch, else a logical name (members recorded)."""
        if real.size == 1 and fabric.node_name(int(real[0])) not in taken:
            return fresh(fabric.node_name(int(real[0])))
        name = fresh(synthetic)
        if real.size:
            members[name] = [fabric.node_name(int(x)) for x in real]
        return name

    if fabric.n_tiers >= 3 and fabric.pods > 1 and fabric.family != "custom":
        pods = np.asarray(fabric.node_pod)[leaves]
        pod_ids = np.unique(pods)
        pod_sw = {int(p): above(leaves[pods == p]) for p in pod_ids}
        pod_names = {int(p): group(pod_sw[int(p)], f"pod{int(p)}") for p in pod_ids}
        level1 = [(pod_names[int(p)], [leaf_names[i] for i in np.flatnonzero(pods == p)]) for p in pod_ids]
        root = group(above(np.concatenate(list(pod_sw.values()))), f"{TIER_NAMES[3]}-tier")
        levels += [level1, [(root, [n for n, _ in level1])]]
        for i in range(leaves.size):
            parent_of_leaf[i] = [pod_names[int(pods[i])], root]
    elif leaves.size > 1:
        top = min(fabric.n_tiers, 3) if fabric.n_tiers >= 2 else 2
        real = above(leaves) if fabric.family != "custom" else np.zeros(0, np.int64)
        root = group(real, f"{TIER_NAMES[top]}-tier")
        levels.append([(root, list(leaf_names))])
        for i in range(leaves.size):
            parent_of_leaf[i] = [root]
    server_path = {}
    for i, (name, srv) in enumerate(level0):
        path = [name] + parent_of_leaf[i]
        for s in srv.tolist():
            server_path[s] = path
    return TreeView(levels=levels, servers=servers, server_path=server_path, members=members)


@dataclass(frozen=True)
class Blocks:
    """Scale-up blocks: ``blocks`` is a list of (name, server ids)."""
    blocks: list
    sizes: list        # Slurm block_sizes (nodes)
    domains: list = None   # the scale-up domain of each block (domain_name)

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
    w = max(3, len(str(int(doms.size))))
    # topograph's numbering: block001, block002, ... (1-based, at least 3 digits)
    blocks = [(f"block{i + 1:0{w}d}", s[order[bounds[i]:bounds[i + 1]]]) for i in range(doms.size)]
    if sizes is None:
        smallest = min((b.size for _, b in blocks), default=0)
        sizes = block_sizes(int(smallest), len(blocks))
    return Blocks(blocks=blocks, sizes=[int(x) for x in sizes], domains=[domain_name(int(d)) for d in doms])


def domain_name(d: int) -> str:
    """Name of scale-up domain ``d``: the ``accelerator.topograph.run/domain`` label value and the
    ``# blockNNN=<domain>`` comment of the block files."""
    return f"domain{d}"


# --- helpers --------------------------------------------------------------------------------
_SLURM_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")


def _check_names(tv: "TreeView", what: str, pattern=_SLURM_NAME) -> None:
    """Switch names must be writable in the target format (custom graphs may name them freely)."""
    bad = [n for level in tv.levels for n, _ in level if not pattern.fullmatch(n)]
    if bad:
        raise SpecError([("format", f"{len(bad)} switch name(s) cannot be written in {what} (e.g. {bad[0]!r}); "
                          "names need letters, digits, '_', '.', '-'")])


def _hl(fabric: Fabric, servers) -> str:
    return collect([fabric.server_name(int(s)) for s in servers])


PlanLike = Union[Plan, dict, None]
"""What a renderer takes as its plan: a typed Plan, a plan dict, a dict of some sections, or None."""


def _assignment(plan: Optional[Plan]) -> dict:
    """Job name -> endpoint ids of a typed plan's placement ({} without a plan or a placement)."""
    if plan is None or plan.placement is None:
        return {}
    return {str(k): np.asarray(v, np.int64) for k, v in plan.placement.assignment.items()}


def _select_servers(fabric: Fabric, plan: Optional[Plan], nodes: str) -> Optional[np.ndarray]:
    if nodes == "all":
        return None
    if nodes == "placed":
        s = placed_servers(fabric, _assignment(plan))
        if s.size == 0:
            raise SpecError([("nodes", "'placed' asks for the placed nodes, but the plan places no job")])
        return s
    raise SpecError([("nodes", f"expected 'all' or 'placed', found {nodes!r}")])


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


def _memo(fn: Callable[[str], str]) -> Callable[[str], str]:
    """``fn`` of a string, computed once per distinct string."""
    seen: dict = {}

    def f(x: str) -> str:
        out = seen.get(x)
        if out is None:
            out = seen[x] = fn(x)
        return out
    return f


def _header(fabric: Fabric, what: str, comment: str = "#") -> str:
    from topo import __version__
    name = fabric.meta.get("cluster_name", "cluster")
    return f"{comment} {what} for cluster {name!r}, generated by topo {__version__}\n"


# --- Slurm -----------------------------------------------------------------------------------
def render_slurm_yaml(fabric: Fabric, plan: PlanLike = None, cluster=None, *, nodes: str = "all",
                      block_sizes: Optional[list[int]] = None, tree_name: str = "fabric",
                      block_name: str = "nvl", **_) -> dict:
    """Slurm ``topology.yaml``: a ``tree`` topology (default) and a ``block`` one.

    The block topology is omitted when no server has accelerators.
    """
    servers = _select_servers(fabric, as_plan(plan), nodes)
    tv = tree_view(fabric, servers)
    _check_names(tv, "Slurm topology.yaml")
    out = [f"- topology: {_ys(tree_name)}", "  cluster_default: true", "  tree:", "    switches:"]
    for level in reversed(tv.levels[1:]):
        for name, children in level:
            if name in tv.members:
                out.append(f"    # {name}: logical switch for {len(tv.members[name])} switches {collect(tv.members[name])}")
            out += [f"    - switch: {_ys(name)}", f"      children: {_ys(collect(list(children)))}"]
    for name, srv in tv.levels[0]:
        out += [f"    - switch: {_ys(name)}", f"      nodes: {_ys(_hl(fabric, srv))}"]
    bl = scaleup_blocks(fabric, servers, block_sizes)
    if bl.blocks:
        out += [f"- topology: {_ys(block_name)}", "  cluster_default: false", "  block:",
                "    block_sizes: [" + ", ".join(str(int(x)) for x in bl.sizes) + "]", "    blocks:"]
        for (n, srv), dom in zip(bl.blocks, bl.domains):
            out += [f"    # {n}={dom}", f"    - block: {_ys(n)}", f"      nodes: {_ys(_hl(fabric, srv))}"]
    head = _header(fabric, "Slurm topology.yaml (topology.yaml(5))")
    head += ("# install beside slurm.conf (it takes precedence over topology.conf); partitions refer\n"
             "# to a topology by its name\n"
             "# tree: servers under the leaf of their first port (rail 0 / plane 0); leaves sharing\n"
             "# the same spines grouped under one logical switch. block: scale-up domains.\n")
    return {"topology.yaml": head + "\n".join(out) + "\n"}


def render_slurm_conf_tree(fabric: Fabric, plan: PlanLike = None, cluster=None, *, nodes: str = "all", **_) -> dict:
    """Slurm ``topology.conf`` for ``TopologyPlugin=topology/tree``."""
    servers = _select_servers(fabric, as_plan(plan), nodes)
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
            if name in tv.members:
                lines.append(f"# {name}: logical switch for {len(tv.members[name])} switches {collect(tv.members[name])}")
            lines.append(f"SwitchName={name} Switches={collect(list(children))}")
    return {"topology-tree.conf": "\n".join(lines) + "\n"}


def render_slurm_conf_block(fabric: Fabric, plan: PlanLike = None, cluster=None, *, nodes: str = "all",
                            block_sizes: Optional[list[int]] = None, **_) -> dict:
    """Slurm ``topology.conf`` for ``TopologyPlugin=topology/block`` (scale-up domains)."""
    servers = _select_servers(fabric, as_plan(plan), nodes)
    bl = scaleup_blocks(fabric, servers, block_sizes)
    if not bl.blocks:
        raise SpecError([("format", "slurm-conf-block needs scale-up domains; this cluster has no accelerator nodes")])
    lines = [_header(fabric, "Slurm topology.conf, topology/block").rstrip("\n"),
             "# install as topology.conf beside slurm.conf, with TopologyPlugin=topology/block",
             "# one block per scale-up domain; BlockSizes = [D, 2D, 4D, ...] (topograph convention)"]
    for (name, srv), dom in zip(bl.blocks, bl.domains):
        lines += [f"# {name}={dom}", f"BlockName={name} Nodes={_hl(fabric, srv)}"]
    lines.append("BlockSizes=" + ",".join(str(x) for x in bl.sizes))
    return {"topology-block.conf": "\n".join(lines) + "\n"}


# a job name in slurm-jobs.conf: Unicode letters and digits, '_', '.', '-' (no space, '=', '#',
# quote, shell or control character), so that the line splits into Key=Value words
_SLURM_JOB_BAD = re.compile(r"[^\w.\-]")


def render_slurm_jobs(fabric: Fabric, plan: PlanLike = None, cluster=None, **_) -> dict:
    """The placement for Slurm: one ``JobName=<job> Nodes=<hostlist>`` line per placed job.

    The node list is what ``sbatch --nodelist`` takes to pin the job where the
    plan put it; ``Accelerators`` is the number of the job's endpoints.
    """
    a = _assignment(as_plan(plan))
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


def render_rank_map(fabric: Fabric, plan: PlanLike = None, cluster=None, **_) -> dict:
    """Where every rank of every placed job runs: ``job,rank,node,accelerator`` rows (CSV).

    ``accelerator`` is the index of the accelerator among the node's
    accelerators (the device index a launcher binds the rank to). The rows are
    the plan's assignment in rank order: a launcher that starts rank ``r`` on
    that node and device runs the rank order topo chose, which need not be a
    block distribution over the node list (see ``topo place``).

    Written with :class:`topo.core.textsafe.CsvWriter`: a job name with a comma,
    quote or line break is quoted, and one starting with ``= + - @``, tab or
    CR gets a leading ``'`` so that no spreadsheet runs it as a formula.
    """
    a = _assignment(as_plan(plan))
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
        cells = [csv_cell(job)] + [csv_cell(n) for n in uname]
        if any(c in x for x in cells for c in ',"\r\n'):
            for r, (i, k) in enumerate(zip(inv.tolist(), local.tolist())):
                w.writerow([job, r, uname[i], k])
        else:   # no cell the csv writer would quote: its rows, joined directly
            jc, nc = cells[0], cells[1:]
            buf.write("".join([f"{jc},{r},{nc[i]},{k}\n" for r, (i, k) in enumerate(zip(inv.tolist(), local.tolist()))]))
    return {"rank-map.csv": buf.getvalue()}


# --- Kueue -----------------------------------------------------------------------------------
def kueue_labels(fabric: Fabric, servers: Optional[np.ndarray] = None, *, label_prefix: str = DEFAULT_LABEL_PREFIX,
                 domain_label: Optional[str] = DEFAULT_DOMAIN_LABEL) -> tuple[list[str], dict]:
    """Kueue levels (coarsest first), ``{server name: {label: value}}`` and why the domain level is out (or None).

    Fabric levels are ``<label_prefix><i>`` with tier 0 the leaf (topograph's
    numbering). The domain label (value: :func:`domain_name`) is added to every
    accelerator server; it is a Kueue level between the leaf and the host when
    every domain lies under a single leaf, so that the levels nest. Then a
    server without accelerators is labelled a domain of its own
    (``host-<server>``), since Kueue reads every level label of a node.
    """
    tv = tree_view(fabric, servers)
    bad = [n for level in tv.levels for n, _ in level if not _LABEL_VALUE.fullmatch(label_value(n))]
    if bad:
        raise SpecError([("format", f"switch name {bad[0]!r} is not a valid Kubernetes label value")])
    bl = scaleup_blocks(fabric, tv.servers)
    keys = [f"{label_prefix}{i}" for i in range(tv.depth)]
    labels: dict[str, dict[str, str]] = {}
    for s in tv.servers.tolist():
        path = tv.server_path[s]
        labels[fabric.server_name(s)] = {k: label_value(v) for k, v in zip(keys, path)}
    domain_level, why_not = False, None
    if domain_label:
        split = [dom for (name, srv), dom in zip(bl.blocks, bl.domains)
                 if len({tv.server_path[int(x)][0] for x in srv}) != 1]
        for (name, srv), dom in zip(bl.blocks, bl.domains):
            for x in srv.tolist():
                labels[fabric.server_name(x)][domain_label] = label_value(dom)
        if not bl.blocks:
            why_not = "no scale-up domains"
        elif split:
            why_not = (f"{len(split)} of {len(bl.blocks)} scale-up domains span servers under several leaves "
                       f"(e.g. {split[0]}), so the domain level does not nest under the leaf level")
        else:
            domain_level = True
            for name, lab in labels.items():
                lab.setdefault(domain_label, label_value(f"host-{name}"))
    levels = list(reversed(keys)) + ([domain_label] if domain_level else []) + [HOSTNAME_LABEL]
    return levels, labels, why_not


def render_kueue(fabric: Fabric, plan: PlanLike = None, cluster=None, *, nodes: str = "all",
                 api_version: str = DEFAULT_KUEUE_API, label_prefix: str = DEFAULT_LABEL_PREFIX,
                 domain_label: Optional[str] = DEFAULT_DOMAIN_LABEL, topology_name: Optional[str] = None, **_) -> dict:
    """Kueue ``Topology`` plus node labels as Node patches and a ``kubectl label`` script."""
    import yaml
    # names are checked before anything is rendered: Kubernetes refuses keys and names outside its syntax
    validate_options(api_version=api_version, label_prefix=label_prefix, domain_label=domain_label)
    if topology_name is not None and not dns_subdomain_ok(topology_name):
        raise SpecError([("topology_name", f"{topology_name!r} is not a Kubernetes object name (DNS-1123 subdomain)")])
    servers = _select_servers(fabric, as_plan(plan), nodes)
    levels, labels, why_not = kueue_labels(fabric, servers, label_prefix=label_prefix, domain_label=domain_label)
    name = topology_name or _dns_name(fabric.meta.get("cluster_name", "topo"))
    topo_doc = {"apiVersion": api_version, "kind": "Topology", "metadata": {"name": name},
                "spec": {"levels": [{"nodeLabel": k} for k in levels]}}
    head = _header(fabric, "Kueue Topology (levels coarsest first)")
    if domain_label and why_not:
        head += f"# the {domain_label} label is on the nodes but not a level: {why_not}\n"
    files = {"kueue-topology.yaml": head + yaml.safe_dump(topo_doc, sort_keys=False)}
    docs = []
    ys = _memo(_ys)   # label keys and values repeat across nodes: each distinct one formatted once
    for n, l in labels.items():
        docs += ["---", "apiVersion: v1", "kind: Node", "metadata:", f"  name: {ys(n)}", "  labels:"]
        docs += [f"    {ys(k)}: {ys(v)}" for k, v in sorted(l.items())]
    files["node-labels.yaml"] = (_header(fabric, "Node label patches (kubectl patch / apply --server-side)")
                                 + "# kubernetes.io/hostname is set by the kubelet and not repeated here\n"
                                 + "\n".join(docs) + "\n")
    sh = ["#!/bin/sh", _header(fabric, "Node labels as kubectl commands").rstrip("\n"), "set -e"]
    q = _memo(sh_quote)
    for n, l in labels.items():
        kv = " ".join(q(f"{k}={v}") for k, v in sorted(l.items()))
        sh.append(f"kubectl label node {q(n)} --overwrite {kv}")
    files["node-labels.sh"] = "\n".join(sh) + "\n"
    if domain_label and why_not and why_not != "no scale-up domains":
        files[APPROXIMATIONS] = [f"kueue: the {domain_label} label is on the nodes but not a Topology level: {why_not}"]
    return files


def render_volcano(fabric: Fabric, plan: PlanLike = None, cluster=None, *, nodes: str = "all", **_) -> dict:
    """Volcano ``HyperNode`` objects (topology.volcano.sh/v1alpha1), one per switch of the tree view.

    Tier 1 are the leaves, whose members are their Nodes (``exactMatch`` by
    name); each higher tier's members are the HyperNodes below it. Names are
    the switch names of the Slurm tree (DNS-1123 object names: refused
    otherwise, naming the switch); ``tierName`` is the fabric tier.
    """
    servers = _select_servers(fabric, as_plan(plan), nodes)
    tv = tree_view(fabric, servers)
    bad = [n for level in tv.levels for n, _ in level if not dns_subdomain_ok(n)]
    if bad:
        raise SpecError([("format", f"switch name {bad[0]!r} is not a Kubernetes object name (DNS-1123 subdomain: "
                          "lower-case letters, digits, '-', '.'), as a Volcano HyperNode needs")])
    bad = [fabric.server_name(int(x)) for x in tv.servers if not dns_subdomain_ok(fabric.server_name(int(x)))]
    if bad:
        raise SpecError([("format", f"node name {bad[0]!r} is not a Kubernetes object name (DNS-1123 subdomain)")])
    tier_names = ["leaf", "pod" if tv.depth == 3 else TIER_NAMES[2], TIER_NAMES[3]]
    docs = []
    for t, level in enumerate(tv.levels):
        for name, children in level:
            docs += ["---", "apiVersion: topology.volcano.sh/v1alpha1", "kind: HyperNode", "metadata:",
                     f"  name: {_ys(name)}"]
            if name in tv.members:
                docs.append(f"  # logical switch for {len(tv.members[name])} switches {collect(tv.members[name])}")
            docs += ["spec:", f"  tier: {t + 1}", f"  tierName: {_ys(tier_names[min(t, 2)])}", "  members:"]
            if t == 0:
                mem = [("Node", fabric.server_name(int(x))) for x in children]
            else:
                mem = [("HyperNode", c) for c in children]
            for kind, m in mem:
                docs += [f"  - type: {kind}", "    selector:", "      exactMatch:", f"        name: {_ys(m)}"]
    head = _header(fabric, "Volcano HyperNodes (network topology aware scheduling)")
    head += "# tier 1 = leaves (their nodes), higher tiers the groups of switches above; jobs ask with\n"
    head += "# spec.networkTopology.highestTierAllowed\n"
    return {"volcano-hypernodes.yaml": head + "\n".join(docs) + "\n"}


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
    """Stream the fabric as GraphML, in the schema of :func:`topo.model.graphio.write_graphml`.

    Same keys, node ids (names) and attributes as the networkx writer (one
    edge per physical link), but written straight from the arrays: at 131,072
    accelerators networkx needs about 2 GB and two minutes, this a few seconds
    and no graph object. Edge ids are unique within the graph, as GraphML's
    schema requires: ``e<link>``, the fabric's id of the link's upward
    direction (also in the ``link`` attribute); a multigraph reader
    (``networkx.read_graphml``) keys parallel edges by these ids. The attributes
    of a node or an edge are written once per distinct combination of values
    (:func:`_combos`) and reused.
    """
    from xml.sax.saxutils import escape

    from topo.model.fabric import REACH_NAMES
    names = _xml_attrs(fabric.node_names())
    tier, plane, pod = fabric.node_tier, fabric.node_plane, fabric.node_pod
    first, nk = _combos(tier, plane, pod)
    ntail = [f'<data key="d0">{t}</data><data key="d1">{p}</data><data key="d2">{d}</data></node>\n'
             for t, p, d in zip(tier[first].tolist(), plane[first].tolist(), pod[first].tolist())]
    up = np.arange(0, fabric.n_links, 2, dtype=np.int64)
    u, v = fabric.link_src[up], fabric.link_dst[up]
    reach = [escape(r) for r in REACH_NAMES]
    gb, lt, lm, rc = fabric.link_gbps[up], fabric.link_tier[up], fabric.link_length_m[up], fabric.link_reach[up]
    first, ek = _combos(gb, lt, lm, rc)
    etail = [f'<data key="d4">{g!r}</data><data key="d5">{t}</data><data key="d6">{m!r}</data>'
             f'<data key="d7">{reach[r]}</data></edge>\n'
             for g, t, m, r in zip(gb[first].tolist(), lt[first].tolist(), lm[first].astype(np.float64).tolist(),
                                   rc[first].tolist())]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(_GRAPHML_HEAD)
        for lo in range(0, fabric.n_nodes, chunk):
            hi = min(lo + chunk, fabric.n_nodes)
            fh.write("".join([f"    <node id={names[i]}>{ntail[k]}" for i, k in zip(range(lo, hi), nk[lo:hi].tolist())]))
        for lo in range(0, up.size, chunk):
            sl = slice(lo, lo + chunk)
            fh.write("".join([f'    <edge source={names[a]} target={names[b]} id="e{l}"><data key="d3">{l}</data>{etail[k]}'
                              for a, b, l, k in zip(u[sl].tolist(), v[sl].tolist(), up[sl].tolist(), ek[sl].tolist())]))
        fh.write("  </graph>\n</graphml>\n")


def _xml_attrs(names: list) -> list:
    """``xml.sax.saxutils.quoteattr`` of every name; names with none of the characters it
    escapes (every generated name) are only put in double quotes."""
    from xml.sax.saxutils import quoteattr
    if not any(c in "".join(names) for c in "&<>\"'\n\r\t"):
        return [f'"{n}"' for n in names]
    return [quoteattr(n) for n in names]


def _combos(*cols: np.ndarray) -> tuple:
    """(rows, combination): the first row of each distinct combination of the columns' values
    (floats compared by bit pattern, so -0.0 and 0.0 stay apart), and every row's combination as
    an index into ``rows``, combinations numbered in the order of their values. Lets a writer
    format a combination of values once."""
    n = cols[0].shape[0]
    key, size = np.zeros(n, np.int64), 1
    for c in cols:
        c = np.ascontiguousarray(c)
        bits = c.view(f"i{c.itemsize}") if c.dtype.kind == "f" else c
        u = np.unique(bits)       # sorted (numpy >= 2.3's hash-based unique(sorted=False) is not in numpy 1.26)
        if size * u.size >= 1 << 62:   # renumber the combinations so far densely before they overflow
            key = np.unique(key, return_inverse=True)[1].ravel()
            size = int(key.max(initial=0)) + 1
        key, size = key * u.size + np.searchsorted(u, bits), size * u.size
    _, rows, key = np.unique(key, return_index=True, return_inverse=True)
    return rows, key.ravel()


def render_graphml(fabric: Fabric, plan: PlanLike = None, cluster=None, **_) -> dict:
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
    accelerators under one home leaf (in a rail-optimized fabric the servers
    sharing a leaf per rail), a pod, everything. A level is kept only when its
    size is a multiple of the previous one, so the product of ``npus`` is the
    number of accelerators. Bandwidth per accelerator (GB/s): the scale-up
    bandwidth; under one leaf the injection bandwidth; above, the smallest of
    the injection and the share of every tier's uplinks crossed to leave the
    group (injection / the product of the oversubscriptions below that tier).
    ``tiers`` is the number of link tiers a message of that dimension climbs
    (0 for scale-up); the latency is twice the mean propagation delay of those
    tiers' links (:data:`PROPAGATION_NS_PER_M`), no switch latency (the catalog
    has none) and none for scale-up (the cluster file has no scale-up link lengths).
    """
    acc = np.flatnonzero(fabric.ep_is_accel)
    n = int(acc.size)
    if n == 0:
        raise SpecError([("format", "astra-sim needs accelerators; this cluster has none")])
    inj = float(np.median(fabric.injection_gbps()[acc]))
    os_ = [float(x) if math.isfinite(x) else float("inf") for x in fabric.tier_oversubscription]
    dom_sizes = np.asarray(fabric.domain_size)
    D = int(np.bincount(dom_sizes).argmax()) if dom_sizes.size else 1
    sleaf = server_leaf(fabric)[fabric.ep_server[acc]]
    A1 = int(np.bincount(np.unique(sleaf, return_counts=True)[1]).argmax())
    cand = []  # (size, kind, link tiers climbed)
    if D > 1:
        cand.append((D, "scale-up", 0))
    cand.append((A1, "leaf", 1))
    if fabric.n_tiers >= 3 and fabric.pods > 1 and fabric.family != "custom":
        pod_of = fabric.node_pod[sleaf]
        A2 = int(np.bincount(np.unique(pod_of, return_counts=True)[1]).argmax())
        cand.append((A2, "pod", 2))
        cand.append((n, "fabric", 3))
    else:
        cand.append((n, "fabric", 2 if fabric.n_tiers >= 2 else 1))
    up = (np.arange(fabric.n_links) & 1) == 0
    lt, ll = fabric.link_tier[up], fabric.link_length_m[up]
    mean_len = [float(np.mean(ll[lt == t])) if np.any(lt == t) else 0.0 for t in range(max(fabric.n_tiers, 1))]
    dims, prev = [], 1
    for size, kind, climb in cand:
        if size <= prev or size % prev or n % size:
            continue
        if kind == "scale-up":
            bw = float(np.median(fabric.domain_gbps)) / 8.0
            lat = 0.0
        else:
            share, prod = inj, 1.0
            for t in range(climb - 1):     # the uplinks of tiers 0 .. climb-2
                prod *= os_[t]
                share = min(share, inj / prod if prod > 0 else inj)
            bw = share / 8.0
            lat = 2.0 * sum(mean_len[:climb]) * PROPAGATION_NS_PER_M
        if not bw > 0:
            raise SpecError([("format", f"astra-sim: the {kind} level has no bandwidth (a tier without uplinks)")])
        dims.append({"kind": kind, "npus": size // prev, "bandwidth_GBps": bw, "latency_ns": lat, "tiers": climb})
        prev = size
    if prev != n:  # cannot happen: the last candidate is n
        raise AssertionError("ASTRA-sim dimensions do not multiply to the accelerator count")
    return dims


def render_astra_sim(fabric: Fabric, plan: PlanLike = None, cluster=None, *,
                     astra_latency_ns: Optional[list[float]] = None, **_) -> dict:
    """ASTRA-sim analytical network YAML (``topology``/``npus_count``/``bandwidth``/``latency``)."""
    dims = astra_dims(fabric)
    if astra_latency_ns is not None:
        if len(astra_latency_ns) != len(dims):
            raise SpecError([("astra_latency_ns", f"give {len(dims)} latencies (one per dimension: "
                              f"{', '.join(d['kind'] for d in dims)}), found {len(astra_latency_ns)}")])
        if any(not (math.isfinite(x) and x >= 0) for x in astra_latency_ns):
            raise SpecError([("astra_latency_ns", "latencies must be finite and >= 0 ns")])
        lat = [float(x) for x in astra_latency_ns]
    else:
        lat = [d["latency_ns"] for d in dims]
    fmt = lambda xs: "[ " + ", ".join(xs) + " ]"
    text = _header(fabric, "ASTRA-sim analytical network")
    text += ("# An abstraction of the fabric, not a wiring: one Switch dimension per level of the\n"
             "# hierarchy (" + ", ".join(f"{d['kind']} x{d['npus']}" for d in dims) + "); per-link congestion\n"
             "# is not modelled. Bandwidth = GB/s per accelerator in that dimension (injection, or the\n"
             "# accelerator's share of the uplinks of every tier crossed, whichever is smaller).\n")
    if astra_latency_ns is not None:
        text += "# Latency (ns) as given with --astra-latency-ns.\n"
    else:
        text += (f"# Latency (ns): link propagation only, twice the mean length of the links of each tier\n"
                 f"# climbed x {PROPAGATION_NS_PER_M:.3f} ns/m; no switch, NIC or FEC latency (none in the\n"
                 "# catalog), scale-up 0 (no scale-up link lengths); set them with --astra-latency-ns.\n")
    text += "topology: " + fmt(["Switch"] * len(dims)) + "\n"
    text += "npus_count: " + fmt([str(d["npus"]) for d in dims]) + "\n"
    text += "bandwidth: " + fmt([f"{d['bandwidth_GBps']:.3f}" for d in dims]) + "\n"
    text += "latency: " + fmt([f"{x:.2f}" for x in lat]) + "\n"
    files: dict[str, Any] = {"astra-sim-network.yml": text}
    notes = []
    if astra_latency_ns is None:
        notes.append("astra-sim: latencies are link propagation only (no switch latency in the catalog; "
                     "scale-up latency 0)")
    kept = {d["kind"] for d in dims}
    if "leaf" not in kept:
        notes.append("astra-sim: no leaf dimension (the accelerators under one leaf are not a whole number of "
                     "scale-up domains); leaf-local traffic gets the next dimension's bandwidth")
    if "pod" not in kept and fabric.n_tiers >= 3 and fabric.pods > 1:
        notes.append("astra-sim: no pod dimension (a pod is not a whole number of the groups below it)")
    files[APPROXIMATIONS] = notes
    return files


# --- htsim ----------------------------------------------------------------------------------
# Limits of csg-htsim's readers (sim/datacenter/fat_tree_topology.cpp and connection_matrix.cpp):
# every port a switch gets is ``assert(addPort(...) < 96)`` on a top-of-rack switch and ``< 64`` on an
# aggregation or core switch (addPort returns the new port's index, so 96 and 64 ports at most); flow
# sizes are read with ``stoi`` into an int; every .topo number is read with ``stoi``.
HTSIM_TOR_MAX_PORTS = 96
HTSIM_SWITCH_MAX_PORTS = 64
HTSIM_MAX_FLOW_BYTES = 2 ** 31 - 1


def _tier_latency_ns(lengths_m: np.ndarray) -> tuple[int, str]:
    """Downlink latency of one htsim tier (whole ns, at least 1: htsim refuses 0) and how it was derived."""
    if lengths_m.size == 0:
        return 1, "no links"
    mean = float(np.mean(lengths_m))
    ns = max(1, int(round(mean * PROPAGATION_NS_PER_M)))
    lo, hi = float(lengths_m.min()), float(lengths_m.max())
    span = f"{lo:g} m" if lo == hi else f"mean of {lo:g}-{hi:g} m = {mean:.3g} m"
    return ns, f"{span} x {PROPAGATION_NS_PER_M:.3f} ns/m"


def _htsim_refuse(problems: list) -> None:
    raise SpecError([("format", "htsim: csg-htsim's fat-tree .topo cannot describe this fabric: "
                      + "; ".join(problems))])


def htsim_structure(fabric: Fabric) -> dict:
    """Parameters of csg-htsim's fat tree for the fabric, or SpecError with the reasons it cannot be.

    csg-htsim (``fat_tree_topology.cpp``) builds a 2- or 3-tier tree from one
    parameter set per tier: every top-of-rack (ToR) switch has ``Radix_Down``
    host slots and ``Radix_Up`` uplinks, each to every aggregation switch of
    its pod ``Bundle`` times; aggregation switch ``p`` of every pod connects to
    the same core switches. One link speed per tier; the ToR's
    ``Oversubscribed`` must equal ``Radix_Down / Radix_Up`` while the uplink
    count is derived from the speeds, so a ToR's host and uplink speeds must be
    equal; the aggregation tier's ``Oversubscribed`` is its bandwidth ratio, a
    whole number. Port limits: 96 per ToR, 64 per aggregation or core switch.

    What the files model (each also listed in ``approximations``): plane 0 of
    a multi-plane fabric whose planes are identical and disjoint, carrying
    1/planes of every flow; a last pod with fewer leaves padded with unused
    leaves (no host of the connection matrix on them); endpoint links slower
    than the tier's speed written at that speed (refused by the renderer when a
    flow uses one); one latency per tier, the mean propagation delay of its
    links. Host ids are ``leaf index * Radix_Down + position on the leaf``.
    """
    v = _htsim_plane0(fabric)
    T = v.T
    out: dict[Any, Any] = {"tiers": T, "planes": v.planes}
    _htsim_leaf_tier(fabric, v)
    _htsim_pods(fabric, v)
    problems = v.problems
    if v.b1 and v.u0 != v.agg_pp * v.b1:
        problems.append(f"a leaf's {v.u0} uplinks are not {v.b1} to each of the {v.agg_pp} spines of its pod")
    d0, u0, lp = v.d0, v.u0, v.lp
    d1 = lp * v.b1
    out[0] = {"radix_down": d0, "radix_up": u0, "downlink_gbps": int(v.s0), "oversubscribed": d0 // u0 if u0 else 0,
              "latency_ns": v.lat0, "latency_from": v.why0, "switches": int(v.leaves.size), "ports": d0 + u0}
    out[1] = {"radix_down": d1, "downlink_gbps": int(v.s1), "bundle": v.b1, "latency_ns": v.lat1,
              "latency_from": v.why1, "switches": int(v.spines.size)}
    agg_ports = d1
    if T == 3:
        u1, out[2] = _htsim_core_tier(fabric, v, d1, out[1])
        agg_ports = d1 + u1
    out[1]["ports"] = agg_ports
    if agg_ports > HTSIM_SWITCH_MAX_PORTS:
        problems.append(f"a spine has {agg_ports} ports ({d1} down" + (f" + {out[1]['radix_up']} up" if T == 3 else "")
                        + f"); csg-htsim asserts at most {HTSIM_SWITCH_MAX_PORTS} per aggregation switch "
                          f"(fat_tree_topology.cpp: assert(addPort(...) < {HTSIM_SWITCH_MAX_PORTS}))")
    if problems:
        _htsim_refuse(problems)
    out["podsize"] = lp * d0
    out["nodes"] = v.pods * lp * d0
    out["pods"] = v.pods
    out["padded_leaves"] = v.padded
    out["slow_endpoints"] = v.slow
    out["approximations"] = v.approx
    # csg-htsim's own derivation (FatTreeTopology::set_custom_params) must give back the fabric's switch counts
    counts = htsim_switch_counts(out)
    want = (v.leaves.size + v.padded, int(v.spines.size)) + ((int(out[2]["switches"]),) if T == 3 else ())
    if counts != want:
        _htsim_refuse([f"csg-htsim would build {counts} switches per tier from these parameters, the fabric has {want}"])
    return out


class _HtsimView:
    """What :func:`htsim_structure` reads and finds, filled in step by step: plane 0's upward links
    (``src``, ``dst``, ``tier``, ``gbps``, ``length``), node arrays, the parameters found so far,
    and the ``problems`` and ``approximations`` met on the way."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _htsim_plane0(fabric: Fabric) -> _HtsimView:
    """Refuse a fabric that is not a 2- or 3-tier tree or whose planes differ; the upward links
    of plane 0 (the only plane written), with the approximation that stands for the others."""
    problems: list[str] = []
    approx: list[str] = []
    T = fabric.n_tiers
    if fabric.family not in ("clos", "fat_tree", "rail_optimized", "custom"):
        problems.append(f"family {fabric.family!r} is not a tree of leaves, spines and super-spines")
    if fabric.family == "custom" and T != 2:
        problems.append("a custom graph has no pods; only a 2-tier one maps to htsim")
    if T not in (2, 3):
        problems.append(f"{T} tier(s) (htsim builds 2 or 3)")
    if problems:
        _htsim_refuse(problems)
    up = (np.arange(fabric.n_links) & 1) == 0
    src, dst, tier = fabric.link_src[up], fabric.link_dst[up], fabric.link_tier[up]
    gbps, length = fabric.link_gbps[up], fabric.link_length_m[up]
    node_tier, node_plane = np.asarray(fabric.node_tier), np.asarray(fabric.node_plane)
    # per plane: the links whose upper end is a switch of that plane
    plane_of = node_plane[dst]
    planes = int(fabric.planes)
    if planes > 1:
        sig = []
        for p in range(planes):
            m = plane_of == p
            sig.append((tuple(np.bincount(node_tier[np.flatnonzero(node_plane == p)], minlength=T + 1)[1:].tolist()),
                        tuple(np.bincount(tier[m], minlength=T).tolist()), tuple(np.unique(gbps[m]).tolist())))
        if any(s != sig[0] for s in sig):
            _htsim_refuse([f"its {planes} planes differ (switches, links or speeds per tier); htsim builds one tree"])
        approx.append(f"the fabric has {planes} identical, disjoint planes: the files model plane 0, carrying "
                      f"1/{planes} of every flow's bytes (an even split over the planes)")
    m0 = plane_of == 0
    return _HtsimView(T=T, n=fabric.n_nodes, E=fabric.n_endpoints, planes=planes, problems=problems, approx=approx,
                      src=src[m0], dst=dst[m0], tier=tier[m0], gbps=gbps[m0], length=length[m0],
                      node_tier=node_tier, node_plane=node_plane, node_pod=np.asarray(fabric.node_pod))


def _htsim_leaf_tier(fabric: Fabric, v: _HtsimView) -> None:
    """The ToR tier: endpoint ports ``d0`` and uplinks ``u0`` per leaf, the tier-0 and tier-1 speeds
    ``s0``/``s1``, the leaf-spine bundle ``b1``, the slow endpoints, both tiers' latencies."""
    src, dst, tier, gbps, n, problems, approx = v.src, v.dst, v.tier, v.gbps, v.n, v.problems, v.approx
    ep_links = np.flatnonzero(tier == 0)
    per_ep = np.bincount(src[ep_links], minlength=v.E)[:v.E]
    if per_ep.max(initial=0) > 1:
        problems.append(f"endpoints have {int(per_ep.max())} ports on one plane (htsim hosts have one)")
    leaves = np.flatnonzero((v.node_tier == 1) & (v.node_plane == 0))
    lidx = np.asarray(fabric.node_index)[leaves]
    if not np.array_equal(np.sort(lidx), np.arange(leaves.size)):
        problems.append("leaf indices of plane 0 are not 0..n-1")
    d0 = int(fabric.meta.get("endpoint_ports_per_leaf", 0)) or int(np.bincount(dst[ep_links], minlength=n)[leaves].max(initial=0))
    down0 = np.bincount(dst[ep_links], minlength=n)[leaves]
    if down0.size and down0.max() > d0:
        problems.append(f"a leaf has {int(down0.max())} endpoint links, more than its {d0} endpoint ports")
    sp = np.unique(gbps[ep_links], return_counts=True)
    s0 = float(sp[0][np.argmax(sp[1])]) if sp[0].size else 0.0
    slow = np.zeros(0, np.int64)
    if sp[0].size > 1:
        other = ep_links[gbps[ep_links] != s0]
        slow = np.unique(src[other])
        approx.append(f"{other.size} of {ep_links.size} endpoint links are not {s0:g} Gb/s ("
                      + ", ".join(f"{int(c)} at {float(g):g}" for g, c in zip(*sp) if g != s0)
                      + f" Gb/s): htsim has one speed per tier, so they are written at {s0:g} Gb/s; "
                        "no flow of the connection matrix starts or ends at them")
    l01 = np.flatnonzero(tier == 1)
    s1s = np.unique(gbps[l01])
    if s1s.size > 1:
        problems.append("leaf-spine links of several speeds (" + ", ".join(f"{x:g}" for x in s1s) + " Gb/s); htsim has one per tier")
    s1 = float(s1s[0]) if s1s.size else 0.0
    if s0 != s1 and s1s.size == 1:
        problems.append(f"endpoint links of {s0:g} Gb/s under leaf uplinks of {s1:g} Gb/s: csg-htsim derives the "
                        "ToR uplink count as hosts x tier-0 speed / (tier-1 speed x Oversubscribed) and also requires "
                        "Oversubscribed = Radix_Down / Radix_Up, which hold together only when the two speeds are equal")
    for s in (s0, s1):
        if not float(s).is_integer():
            problems.append(f"link speed {s:g} Gb/s is not a whole number (Downlink_speed_Gbps is read as an integer)")
    u0s = np.unique(np.bincount(src[l01], minlength=n)[leaves])
    if u0s.size != 1:
        problems.append("leaves have different numbers of uplinks (" + ", ".join(str(int(x)) for x in u0s) + ")")
    u0 = int(u0s[0]) if u0s.size else 0
    if u0 == 0 or d0 % u0 or d0 < u0:
        problems.append(f"a leaf has {d0} endpoint ports and {u0} uplinks: htsim's ToR needs Oversubscribed = "
                        "Radix_Down / Radix_Up, a whole number of at least 1")
    if d0 + u0 > HTSIM_TOR_MAX_PORTS:
        problems.append(f"a leaf has {d0} endpoint ports + {u0} uplinks = {d0 + u0} ports; csg-htsim asserts at most "
                        f"{HTSIM_TOR_MAX_PORTS} per ToR (fat_tree_topology.cpp: assert(addPort(...) < {HTSIM_TOR_MAX_PORTS}))")
    pair01 = np.unique(src[l01] * n + dst[l01], return_counts=True)
    b1s = np.unique(pair01[1])
    if b1s.size != 1:
        problems.append("leaf-spine bundles differ (" + ", ".join(str(int(x)) for x in b1s) + " links per pair)")
    v.b1 = int(b1s[0]) if b1s.size else 1
    v.leaves, v.lidx, v.d0, v.u0, v.s0, v.s1, v.slow = leaves, lidx, d0, u0, s0, s1, slow
    v.spines = np.flatnonzero((v.node_tier == 2) & (v.node_plane == 0))
    v.lat0, v.why0 = _tier_latency_ns(v.length[ep_links])
    v.lat1, v.why1 = _tier_latency_ns(v.length[l01])


def _htsim_pods(fabric: Fabric, v: _HtsimView) -> None:
    """Leaves per pod ``lp``, pods, the leaves padding the last pod, spines per pod ``agg_pp``."""
    leaves, spines, node_pod = v.leaves, v.spines, v.node_pod
    if v.T != 3:
        v.lp, v.pods, v.padded, v.agg_pp = leaves.size, 1, 0, int(spines.size)
        return
    lp = int(fabric.meta.get("leaves_per_pod", 0)) or leaves.size
    pods = -(-leaves.size // lp)
    if not np.array_equal(node_pod[leaves], v.lidx // lp):
        v.problems.append(f"leaves are not numbered pod by pod ({lp} per pod)")
    padded = pods * lp - leaves.size
    if padded:
        v.approx.append(f"the last pod has {lp - padded} of {lp} leaves: htsim needs full pods, so {padded} unused "
                        f"leaves (host ids {leaves.size * v.d0}-{pods * lp * v.d0 - 1}, no flow) complete it")
    app = np.bincount(node_pod[spines], minlength=pods)
    if app.size != pods or np.unique(app).size != 1:
        v.problems.append("pods have different numbers of spines")
    v.lp, v.pods, v.padded, v.agg_pp = lp, pods, padded, int(app[0]) if app.size else 0


def _htsim_core_tier(fabric: Fabric, v: _HtsimView, d1: int, agg: dict) -> tuple[int, dict]:
    """A 3-tier fabric's spine uplinks and core tier: (spine uplinks ``u1``, the core tier's
    parameters); the spine tier's ``radix_up`` and ``oversubscribed`` are set in ``agg``."""
    src, dst, tier, gbps, n, problems = v.src, v.dst, v.tier, v.gbps, v.n, v.problems
    spines, node_pod, pods, s1 = v.spines, v.node_pod, v.pods, v.s1
    l12 = np.flatnonzero(tier == 2)
    s2s = np.unique(gbps[l12])
    if s2s.size > 1:
        problems.append("spine-super-spine links of several speeds (" + ", ".join(f"{x:g}" for x in s2s) + " Gb/s)")
    s2 = float(s2s[0]) if s2s.size else 0.0
    if not float(s2).is_integer():
        problems.append(f"link speed {s2:g} Gb/s is not a whole number")
    u1s = np.unique(np.bincount(src[l12], minlength=n)[spines])
    if u1s.size != 1:
        problems.append("spines have different numbers of uplinks")
    u1 = int(u1s[0]) if u1s.size else 0
    ratio = d1 * s1 / (u1 * s2) if u1 and s2 else float("inf")
    if not (math.isfinite(ratio) and abs(ratio - round(ratio)) < 1e-9 and round(ratio) >= 1):
        given = [float(x) for x in getattr(fabric, "tier_oversubscription", ())]
        problems.append(f"spine oversubscription as htsim's topology file states it, for a full pod, is {ratio:.4g} "
                        f"({d1} x {s1:g} Gb/s down, {u1} x {s2:g} Gb/s up), not a whole number of at least 1 "
                        "(Oversubscribed is read as an integer)"
                        + (f"; the fabric's own figure, over the ports in use, is {given[1]:.4g}"
                           if len(given) > 1 and math.isfinite(given[1]) else ""))
    pair12 = np.unique(src[l12] * n + dst[l12], return_counts=True)
    b2s = np.unique(pair12[1])
    if b2s.size != 1:
        problems.append("spine-super-spine bundles differ")
    b2 = int(b2s[0]) if b2s.size else 1
    cores = np.flatnonzero((v.node_tier == 3) & (v.node_plane == 0))
    # htsim: spine at position p of every pod connects to cores p, p + agg_pp, ...; each core to one spine per pod
    pos = np.zeros(n, np.int64)
    for pod in range(pods):
        s = spines[node_pod[spines] == pod]
        pos[s] = np.arange(s.size)
    c_of = dst[l12]
    s_of = src[l12]
    for c in cores.tolist():
        mine = s_of[c_of == c]
        if np.unique(pos[mine]).size != 1 or np.unique(node_pod[mine]).size != pods:
            problems.append("a super-spine does not connect to the same spine position in every pod")
            break
    d2 = pods * b2
    agg.update(radix_up=u1, oversubscribed=int(round(ratio)) if math.isfinite(ratio) else 0)
    lat2, why2 = _tier_latency_ns(v.length[l12])
    core = {"radix_down": d2, "downlink_gbps": int(s2), "bundle": b2, "latency_ns": lat2, "latency_from": why2,
            "switches": int(cores.size), "ports": d2}
    if d2 > HTSIM_SWITCH_MAX_PORTS:
        problems.append(f"a super-spine has {d2} ports; csg-htsim asserts at most {HTSIM_SWITCH_MAX_PORTS} per core switch")
    return u1, core


def htsim_switch_counts(st: dict) -> tuple:
    """Switches per tier as csg-htsim derives them from a .topo (FatTreeTopology::set_custom_params); SpecError
    where it would stop."""
    N, T, pp = st["nodes"], st["tiers"], st["podsize"]
    t0, t1 = st[0], st[1]
    if N % pp or pp % t0["radix_down"]:
        _htsim_refuse([f"{N} nodes, pod size {pp} and ToR radix {t0['radix_down']} do not divide"])
    pods, tor_pp = N // pp, pp // t0["radix_down"]
    s0, s1, o0 = t0["downlink_gbps"], t1["downlink_gbps"], t0["oversubscribed"]
    if t0["radix_down"] // t0["radix_up"] != o0 or (N * s0) % (s1 * o0):
        _htsim_refuse(["the ToR's Radix_Down / Radix_Up differs from Oversubscribed"])
    tor_up = N * s0 // (s1 * o0)
    if tor_up % (pods * t1["radix_down"]):
        _htsim_refuse([f"{tor_up} ToR uplinks do not fill whole aggregation switches"])
    agg_pp = tor_up // (pods * t1["radix_down"])
    if agg_pp * t1.get("bundle", 1) != t0["radix_up"]:
        _htsim_refuse([f"{agg_pp} aggregation switches per pod x bundle {t1.get('bundle', 1)} != ToR Radix_Up {t0['radix_up']}"])
    if T == 2:
        return (tor_pp * pods, agg_pp * pods)
    t2 = st[2]
    s2, o1 = t2["downlink_gbps"], t1["oversubscribed"]
    if (tor_up * s1) % (s2 * o1):
        _htsim_refuse(["aggregation uplinks are not a whole number"])
    agg_up = tor_up * s1 // (s2 * o1)
    if agg_up % t2["radix_down"]:
        _htsim_refuse(["aggregation uplinks do not fill whole core switches"])
    cores = agg_up // t2["radix_down"]
    if cores % agg_pp or cores * t2.get("bundle", 1) // agg_pp != t1["radix_up"]:
        _htsim_refuse([f"{cores} core switches do not match the aggregation Radix_Up {t1['radix_up']}"])
    return (tor_pp * pods, agg_pp * pods, cores)


def htsim_host_ids(fabric: Fabric, radix_down: int) -> np.ndarray:
    """htsim host id of every endpoint: ``leaf index * radix_down + position on the leaf`` (plane-0 leaf)."""
    leaf = fabric.ep_leaf()
    order = np.lexsort((np.arange(fabric.n_endpoints), leaf))
    ls = leaf[order]
    start = np.searchsorted(ls, ls)
    pos = np.empty(fabric.n_endpoints, np.int64)
    pos[order] = np.arange(fabric.n_endpoints) - start
    return fabric.node_index[leaf].astype(np.int64) * radix_down + pos


def _flows(cluster, fabric: Fabric, plan: Optional[Plan]):
    """Scale-out flows of the placed jobs: (src, dst, bytes), same-domain flows removed."""
    assignment = _assignment(plan)
    if cluster is None or not assignment:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    from topo.traffic.demand import job_demands
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




def _htsim_run_sh(fabric: Fabric, nodes: int, mbps: int) -> str:
    return "\n".join([
        "#!/bin/sh",
        _header(fabric, "Run csg-htsim on htsim.topo and htsim.cm").rstrip("\n"),
        "# usage: HTSIM=/path/to/htsim_ndp sh htsim-run.sh [END_US] [more htsim flags]",
        "# END_US is the simulated time in microseconds (default 1000); htsim_eqds takes the same files",
        "# (its -strat is ecmp_host). -nodes is the .topo's host count, -linkspeed the host NIC speed (Mb/s).",
        "set -eu",
        'here=$(cd "$(dirname "$0")" && pwd)',
        'htsim=${HTSIM:-htsim_ndp}',
        'end=${1:-1000}',
        '[ $# -gt 0 ] && shift',
        'case $(basename "$htsim") in',
        "  htsim_eqds*) strat=ecmp_host ;;",
        "  *) strat=perm ;;",
        "esac",
        f'exec "$htsim" -topo "$here/htsim.topo" -tm "$here/htsim.cm" -nodes {nodes} -strat "$strat" '
        f'-linkspeed {mbps} -end "$end" "$@"', ""])


def render_htsim(fabric: Fabric, plan: PlanLike = None, cluster=None, **_) -> dict:
    """csg-htsim fat-tree ``htsim.topo``, the placed jobs' connection matrix ``htsim.cm``, the host map
    ``htsim-hosts.csv`` and ``htsim-run.sh`` (see :func:`htsim_structure` for what is modelled).

    Flow sizes above 2,147,483,647 bytes (csg-htsim reads them into an int) are
    handled by dividing every flow by the same whole factor, stated in the
    header and in the approximations.
    """
    st = htsim_structure(fabric)
    approx = list(st["approximations"])
    T = st["tiers"]
    hid = htsim_host_ids(fabric, st[0]["radix_down"])
    src, dst, nb = _flows(cluster, fabric, as_plan(plan))
    if st["slow_endpoints"].size and src.size:
        slow = np.zeros(fabric.n_endpoints, bool)
        slow[st["slow_endpoints"]] = True
        hit = int(np.count_nonzero(slow[src] | slow[dst]))
        if hit:
            _htsim_refuse([f"{hit} flow(s) start or end at endpoints whose links are slower than the tier's "
                           f"{st[0]['downlink_gbps']} Gb/s; htsim has one speed per tier"])
    nb = nb / st["planes"]
    scale = 1
    if nb.size and float(nb.max()) > HTSIM_MAX_FLOW_BYTES:
        scale = int(math.ceil(float(nb.max()) / HTSIM_MAX_FLOW_BYTES))
        big = int(np.count_nonzero(nb > HTSIM_MAX_FLOW_BYTES))
        approx.append(f"{big} of {nb.size} flows exceed 2,147,483,647 bytes (csg-htsim reads sizes into an int; the "
                      f"largest is {float(nb.max()):.4g} bytes): every flow size is divided by {scale}, so simulated "
                      f"completion times are about 1/{scale} of the real ones")
    sizes = np.maximum(1, np.ceil(nb / scale - 1e-9)).astype(np.int64) if nb.size else np.zeros(0, np.int64)
    lines = [_header(fabric, "csg-htsim fat-tree topology (sim/datacenter/fat_tree_topology.cpp)").rstrip("\n"),
             f"# {st['nodes']} host slots ({int(np.count_nonzero(fabric.ep_leaf() >= 0))} endpoints, see "
             "htsim-hosts.csv); run with htsim-run.sh",
             "# latency per tier: mean propagation delay of its links; no switch latency (none in the catalog)"]
    lines += [f"# approximation: {a}" for a in approx]
    lines += [f"Nodes {st['nodes']}", f"Tiers {T}", f"Podsize {st['podsize']}", ""]
    for t in range(T):
        s = st[t]
        lines += [f"Tier {t}", f"# {s['switches']} switches of {s['ports']} ports; latency from {s['latency_from']}",
                  f"Downlink_speed_Gbps {s['downlink_gbps']}", f"Radix_Down {s['radix_down']}"]
        if "radix_up" in s:
            lines += [f"Radix_Up {s['radix_up']}", f"Oversubscribed {s['oversubscribed']}"]
        lines += [f"Downlink_Latency_ns {s['latency_ns']}", "Switch_Latency_ns 0"]
        if s.get("bundle", 1) != 1:
            lines.append(f"Bundle {s['bundle']}")
        lines.append("")
    files: dict[str, Any] = {"htsim.topo": "\n".join(lines)}
    cm = [f"Nodes {st['nodes']}", f"Connections {src.size}"]
    cm += [f"{s}->{d} id {i} start 0 size {b}"
           for i, (s, d, b) in enumerate(zip(hid[src].tolist(), hid[dst].tolist(), sizes.tolist()), 1)]
    files["htsim.cm"] = "\n".join(cm) + "\n"
    buf = io.StringIO()
    w = CsvWriter(buf)
    w.writerow(["htsim_host", "endpoint", "name", "leaf"])
    leaf = fabric.ep_leaf()
    for e in range(fabric.n_endpoints):
        w.writerow([int(hid[e]), e, fabric.node_name(e), fabric.node_name(int(leaf[e]))])
    files["htsim-hosts.csv"] = buf.getvalue()
    files["htsim-run.sh"] = _htsim_run_sh(fabric, st["nodes"], st[0]["downlink_gbps"] * 1000)
    files[APPROXIMATIONS] = [f"htsim: {a}" for a in approx]
    return files


# --- link loads ---------------------------------------------------------------------------
def link_loads(fabric: Fabric, plan: PlanLike, which: str = "after") -> tuple[np.ndarray, str]:
    """Offered load (Gb/s) per directed link from the plan's metrics, and the key used.

    Reads ``metrics_<which>.link_util``, the utilisation of every directed link in fabric
    link order (falling back to ``metrics_before`` when the plan has no metrics after the
    budget).
    """
    plan = as_plan(plan)
    key = f"metrics_{which}"
    m = _metrics_of(plan, key)
    if m is None and which == "after":
        key, m = "metrics_before", _metrics_of(plan, "metrics_before")
    if m is None:
        raise SpecError([(key, "not in the plan: no link loads to export")])
    if m.link_util is None:
        raise SpecError([(f"{key}.link_util", "not in the plan (the per-link utilisation was not recorded)")])
    L = fabric.n_links
    arr = np.asarray(m.link_util, float)
    if arr.shape != (L,):
        raise SpecError([(f"{key}.link_util", f"has {arr.shape[0] if arr.ndim else 0} entries; the fabric has {L} directed links")])
    return np.nan_to_num(arr * fabric.link_gbps), key


def _metrics_of(plan: Optional[Plan], key: str) -> Optional[Metrics]:
    """``plan.<key>`` for one of the ``metrics_*`` sections; None without a plan, the section or such a key."""
    if plan is None or key not in ("metrics_before", "metrics_placed", "metrics_after"):
        return None
    return getattr(plan, key)


def _peak(t: TierRow):
    """A metrics tier row's peak utilisation: ``util_max`` when the row has it, else ``max_util``."""
    return t.util_max if "util_max" in t.model_fields_set else t.max_util


def _same(a, b, rel: float = 1e-6) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) <= rel * max(abs(float(a)), abs(float(b)), 1e-12)


def reproduce_loads(cluster, fabric: Fabric, plan: PlanLike, key: str) -> np.ndarray:
    """Per-link load of ``plan.<key>`` by routing the plan's placement again, checked against the plan.

    Used when a plan keeps only the routing summary. The run repeats the
    plan's routing model, seed and queue pairs; its peak utilisation per tier
    must equal the plan's, else SpecError (the plan cannot be reproduced).
    For ``metrics_before`` of a pipeline plan (one that also has
    ``metrics_placed``) the placement is the in-order one.
    """
    from topo.routing.engine import analyze
    from topo.traffic.demand import in_order_placement
    plan = as_plan(plan)
    m = _metrics_of(plan, key) or Metrics()
    cands = [("the plan's placement", _assignment(plan))]
    if key == "metrics_before" and plan is not None and "metrics_placed" in plan.model_fields_set:
        cands.insert(0, ("the in-order placement", in_order_placement(cluster, fabric)))
    want = {t.tier: _peak(t) for t in m.tiers or []}
    qps = m.qps_per_channel if "qps_per_channel" in m.model_fields_set else m.qps
    got_desc = []
    for label, pl in cands:
        an = analyze(cluster, fabric, routing=m.routing, placement=pl, seed=m.seed,
                     qps=qps, channels=m.channels, compare=False, all_to_all=False)
        # the fresh routing's own summary (a dict of this run, not the plan)
        tiers = {t.get("tier"): t.get("util_max", t.get("max_util")) for t in an.to_dict().get("tiers") or []}
        ok = bool(want) and all(_same(want[t], tiers.get(t)) for t in want)
        if "max_util" in m.model_fields_set:
            ok = ok and _same(m.max_util, an.to_dict().get("max_util"))
        if ok:
            return np.asarray(an.loads, dtype=float)
        got_desc.append(f"{label}: peak {', '.join(f'{t} {tiers.get(t)}' for t in want)}")
    raise SpecError([(f"{key}.link_util", "not in the plan, and routing the plan's placement again does not reproduce "
                      f"its metrics (plan: {', '.join(f'{t} {v}' for t, v in want.items())}; " + "; ".join(got_desc) + ")")])


def render_linkloads_csv(fabric: Fabric, plan: PlanLike = None, cluster=None, *, which: str = "after", **_) -> dict:
    """CSV ``link,src,dst,tier,gbps,load_gbps,util``, one row per directed link.

    Loads come from ``metrics_<which>.link_util`` when the plan stores them;
    otherwise (given the cluster) the plan's placement is routed again and the
    result checked against the plan's per-tier peaks (:func:`reproduce_loads`).
    ``which`` is ``after`` (default; falls back to ``before`` when the plan has
    no metrics after the budget), ``placed`` or ``before``.
    """
    plan = as_plan(plan)
    if plan is None or not plan.model_fields_set:
        raise SpecError([("metrics_after", "link loads need a plan with metrics")])
    if which not in ("after", "placed", "before"):
        raise SpecError([("metrics", f"expected after, placed or before, found {which!r}")])
    key = f"metrics_{which}"
    if _metrics_of(plan, key) is None and which == "after":
        which, key = "before", "metrics_before"
    m = _metrics_of(plan, key)
    if m is None:
        raise SpecError([(key, "not in the plan: no link loads to export")])
    if which != "after" and plan.cluster_file_after and plan.cluster_file is not None:
        from topo.model.fabric import build
        from topo.model.spec import from_dict
        cluster = from_dict(plan.cluster_file, source="plan:cluster_file")
        fabric = build(cluster)
    if m.link_util is None and cluster is not None:
        load = reproduce_loads(cluster, fabric, plan, key)
        return {"link-loads.csv": _loads_csv(fabric, load)}
    load, _key = link_loads(fabric, plan, which)
    return {"link-loads.csv": _loads_csv(fabric, load)}


def _loads_csv(fabric: Fabric, load: np.ndarray) -> str:
    """The link-loads CSV through :class:`topo.core.textsafe.CsvWriter` (names of a custom graph quoted and guarded)."""
    raw = fabric.node_names()
    joined = "".join(raw)
    tn = LINK_TIER_NAMES
    if (not any(c in joined for c in ',"\r\n')
            and all(csv_cell(n) == n for n in raw if n.startswith(FORMULA_START))):
        # plain names (every generated fabric): no cell needs quoting or a guard, and joining the
        # cells gives the same bytes as the csv writer, twice as fast at 786k links; the tier,
        # capacity, load and utilisation cells are formatted once per distinct combination
        first, k = _combos(fabric.link_tier, fabric.link_gbps, load)
        tier, cap, ld = fabric.link_tier[first].tolist(), fabric.link_gbps[first].tolist(), load[first].tolist()
        tail = [f"{tn[t]},{c:g},{x:.6g}," + (f"{x / c:.6g}" if c > 0 else "") for t, c, x in zip(tier, cap, ld)]
        lines = ["link,src,dst,tier,gbps,load_gbps,util"]
        lines += [f"{l},{raw[a]},{raw[b]},{tail[c]}" for l, a, b, c in
                  zip(range(fabric.n_links), fabric.link_src.tolist(), fabric.link_dst.tolist(), k.tolist())]
        return "\n".join(lines) + "\n"
    names = [csv_cell(n) for n in raw]
    src, dst, tier, cap = fabric.link_src.tolist(), fabric.link_dst.tolist(), fabric.link_tier.tolist(), fabric.link_gbps.tolist()
    ld = load.tolist()
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
    ExportFormat("volcano", render_volcano, "Volcano HyperNode objects, one per switch of the tree view"),
    ExportFormat("graphml", render_graphml, "GraphML of the fabric (networkx, Gephi, yEd)"),
    ExportFormat("astra-sim", render_astra_sim, "ASTRA-sim analytical network YAML (an abstraction)"),
    ExportFormat("htsim", render_htsim, "csg-htsim fat-tree .topo, connection matrix .cm, host map and run script"),
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


def render(fmt: str, fabric: Fabric, plan: PlanLike = None, cluster=None, **options) -> dict:
    """Files of one format (``fmt`` a key of FORMATS), or of every format for ``all``.

    With ``all``, a format that does not apply to this fabric (htsim on an
    irregular fabric, link loads without metrics) is skipped and its reason
    recorded in ``SKIPPED.txt`` (which says so when nothing was skipped).
    """
    validate_options(**options)
    plan = as_plan(plan)   # typed once for every format
    if fmt == "all":
        files, skipped, approx = {}, [], []
        for f in FORMATS.values():
            try:
                got = f.render(fabric, plan, cluster, **options)
            except SpecError as e:
                skipped.append(f"{f.name}: " + "; ".join(f"{p}: {m}" for p, m in e.errors))
                continue
            approx += got.pop(APPROXIMATIONS, [])
            files.update(got)
        # always written, so a re-export with --force never leaves a stale list behind
        text = ("Formats not written for this plan:\n" + "\n".join(skipped) + "\n" if skipped
                else "Every format was written for this plan.\n")
        text += ("\nApproximations in the formats written:\n" + "\n".join(approx) + "\n" if approx
                 else "\nNo format was written with an approximation.\n")
        files["SKIPPED.txt"] = text
        return files
    if fmt not in FORMATS:
        raise SpecError([("format", f"unknown format {fmt!r}; expected one of {', '.join(list(FORMATS) + ['all'])}")])
    files = FORMATS[fmt].render(fabric, plan, cluster, **options)
    files.pop(APPROXIMATIONS, None)
    return files


def export(fmt: str, fabric: Fabric, plan: PlanLike, out_dir, *, cluster=None, force: bool = False,
           **options) -> list[Path]:
    """Render ``fmt`` and write its files into ``out_dir`` atomically.

    Existing files are replaced only with ``force`` (SpecError naming
    ``-o``/``--force`` otherwise, before anything is written).
    """
    from topo.core.atomic import StagedFiles
    files = render(fmt, fabric, plan, cluster, **options)
    st = StagedFiles(out_dir, force=force)
    st.check(sorted(files))
    with st:
        return _stage(files, st)


def _make_exporter(name: str):
    def exporter(fabric: Fabric, plan: PlanLike, out_dir, *, cluster=None, force: bool = False, **options):
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
export_volcano = _make_exporter("volcano")
export_astra_sim = _make_exporter("astra-sim")
export_htsim = _make_exporter("htsim")
export_linkloads_csv = _make_exporter("linkloads-csv")
