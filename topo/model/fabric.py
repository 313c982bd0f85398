"""The fabric: a cluster turned into numpy arrays.

Owns the array representation of a network (nodes, directed links, CSR) and the
builders for every fabric family. Builders are vectorised numpy: a 1M-endpoint
fabric is never a Python object per link, and never a networkx graph on this
path (networkx is used only by :mod:`topo.model.graphio` for interchange and tests).

:func:`build` is a sequence of named steps over one :class:`_Build` context: the hosts
every family shares, then a custom graph (read by :func:`topo.model.graphio.read_custom`)
or the tiered families (their differences are in ``_attach_ports`` and the tier steps).
This module imports :mod:`topo.model.graphio`, never the reverse.

Conventions
-----------
* Node ids ``0 .. n_endpoints-1`` are endpoints (one per accelerator, or one per
  CPU-only host); switch ids follow, plane by plane, tier by tier.
* Every physical link is two directed links with ids ``2*i`` (upward, from the
  lower tier) and ``2*i + 1`` (downward); ``link ^ 1`` is the reverse.
* ``link_tier`` is 0 for endpoint-leaf, 1 for leaf-spine, 2 for spine-super.
* Capacities are Gb/s per direction; lengths are metres.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from topo.model.catalog import REACH_CLASSES
from topo.model.graphio import read_custom, to_networkx
from topo.model.spec import Cluster, ResolvedTier, SpecError, SwitchSpec, port_group_breakout

TIER_NAMES = ("endpoint", "leaf", "spine", "super-spine")
LINK_TIER_NAMES = ("endpoint-leaf", "leaf-spine", "spine-super")
REACH_NAMES = REACH_CLASSES  # one tuple: the catalog's reach classes, shortest first


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Fabric:
    """A network fabric as arrays. See the module docstring for conventions.

    Attributes are read-only numpy arrays; the object is cheap to pass to
    kernels (``fabric.link_src`` etc. are C-contiguous int64/float64).
    """
    family: str
    n_endpoints: int
    # nodes
    node_tier: np.ndarray    # int8, 0 = endpoint, 1 leaf, 2 spine, 3 super-spine
    node_plane: np.ndarray   # int16
    node_pod: np.ndarray     # int32, -1 where not in a pod
    node_index: np.ndarray   # int64, index within (plane, tier)
    node_x_m: np.ndarray     # float32, floor position
    node_y_m: np.ndarray
    # endpoints (length n_endpoints)
    ep_server: np.ndarray    # int64 server (host) index
    ep_local: np.ndarray     # int16 accelerator index within the server (its rail)
    ep_domain: np.ndarray    # int64 scale-up domain id, -1 for CPU hosts
    ep_is_accel: np.ndarray  # bool
    # links (directed, paired)
    link_src: np.ndarray     # int64
    link_dst: np.ndarray     # int64
    link_gbps: np.ndarray    # float64 capacity per direction
    link_tier: np.ndarray    # int8
    link_plane: np.ndarray   # int16
    link_length_m: np.ndarray  # float32
    link_reach: np.ndarray   # int8 index into REACH_NAMES
    # CSR over outgoing links
    indptr: np.ndarray       # int64, n_nodes + 1
    adj: np.ndarray          # int64 link ids grouped by source node
    # servers and racks
    server_type: np.ndarray  # int16 index into server_type_names
    server_rack: np.ndarray  # int64
    server_busy_kw: np.ndarray  # float64
    server_idle_kw: np.ndarray
    rack_type: np.ndarray    # int16 index into rack_type_names
    rack_limit_kw: np.ndarray
    rack_hard: np.ndarray    # bool
    rack_row: np.ndarray     # int32
    rack_col: np.ndarray
    domain_size: np.ndarray  # int64 accelerators per domain
    domain_gbps: np.ndarray  # float64 scale-up bandwidth per accelerator
    server_type_names: tuple = ()
    rack_type_names: tuple = ()
    switch_models: tuple = ()          # per tier (leaf first): catalog name
    tier_switch_counts: tuple = ()     # per tier, all planes
    tier_oversubscription: tuple = ()  # per tier: down capacity / up capacity
    planes: int = 1
    pods: int = 1
    meta: dict = field(default_factory=dict)

    # --- sizes -------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return int(self.node_tier.shape[0])

    @property
    def n_links(self) -> int:
        """Directed links."""
        return int(self.link_src.shape[0])

    @property
    def n_switches(self) -> int:
        return self.n_nodes - self.n_endpoints

    @property
    def n_servers(self) -> int:
        return int(self.server_type.shape[0])

    @property
    def n_racks(self) -> int:
        return int(self.rack_type.shape[0])

    @property
    def n_domains(self) -> int:
        return int(self.domain_size.shape[0])

    @property
    def n_tiers(self) -> int:
        return len(self.tier_switch_counts)

    # --- names -------------------------------------------------------------------
    def server_name(self, i: int) -> str:
        w = max(4, len(str(self.n_servers - 1)))
        return f"n{int(i):0{w}d}"

    def rack_name(self, i: int) -> str:
        w = max(3, len(str(self.n_racks - 1)))
        return f"rack{int(i):0{w}d}"

    def node_name(self, i: int) -> str:
        """Human name of a node id (endpoint or switch)."""
        i = int(i)
        custom = self.meta.get("custom_names")
        if custom is not None:
            return custom[i]
        if i < self.n_endpoints:
            return f"{self.server_name(self.ep_server[i])}-g{int(self.ep_local[i])}"
        t = int(self.node_tier[i])
        p = f"p{int(self.node_plane[i])}-" if self.planes > 1 else ""
        idx = int(self.node_index[i])
        if t == 1:
            return f"{p}leaf{idx}"
        if t == 2:
            return f"{p}spine{idx}"
        return f"{p}super{idx}"

    def link_name(self, link: int) -> str:
        return f"{self.node_name(self.link_src[link])}->{self.node_name(self.link_dst[link])}"

    def parallel_links(self, a: int, b: int) -> np.ndarray:
        """Ids of the directed links from node a to node b, in increasing order."""
        out = self.adj[self.indptr[a]:self.indptr[a + 1]]
        return np.sort(out[self.link_dst[out] == b])

    def parallel_index(self, link: int) -> tuple[int, int]:
        """(position, count) of a link among the parallel links with its source and destination
        (1-based position, in link-id order); (1, 1) for a single link."""
        par = self.parallel_links(int(self.link_src[link]), int(self.link_dst[link]))
        return int(np.searchsorted(par, link)) + 1, int(par.size)

    def link_label(self, link: int) -> str:
        """The link's name, with ``[i/n]`` when it is one of n parallel links."""
        i, n = self.parallel_index(link)
        return self.link_name(link) + (f" [{i}/{n}]" if n > 1 else "")

    def node_names(self) -> list[str]:
        """:meth:`node_name` of every node, in id order (built in bulk: a million names in well
        under a second)."""
        custom = self.meta.get("custom_names")
        if custom is not None:
            return [custom[i] for i in range(self.n_nodes)]
        E = self.n_endpoints
        w = max(4, len(str(self.n_servers - 1)))
        out = [f"n{s:0{w}d}-g{g}" for s, g in zip(self.ep_server[:E].tolist(), self.ep_local[:E].tolist())]
        kind = {1: "leaf", 2: "spine"}
        sw = zip(self.node_tier[E:].tolist(), self.node_plane[E:].tolist(), self.node_index[E:].tolist())
        if self.planes > 1:
            out += [f"p{p}-{kind.get(t, 'super')}{i}" for t, p, i in sw]
        else:
            out += [f"{kind.get(t, 'super')}{i}" for t, _, i in sw]
        return out

    def find_node(self, name: str) -> int:
        """Node id of a name produced by :meth:`node_name` (KeyError if unknown)."""
        names = self.meta.get("_name_index")
        if names is None:
            names = {n: i for i, n in enumerate(self.node_names())}
            self.meta["_name_index"] = names
        return names[name]

    def server_ids(self, names) -> np.ndarray:
        """Server indices for server names (hostlist expressions allowed)."""
        from topo.model.hostlist import expand
        idx = self.meta.get("_server_index")
        if idx is None:
            idx = {self.server_name(i): i for i in range(self.n_servers)}
            self.meta["_server_index"] = idx
        from topo.model.hostlist import count
        total = 0
        for n in names:
            total += count(n)
            if total > self.n_servers:
                raise ValueError(f"the list names {total:,} or more nodes; the cluster has {self.n_servers:,}")
        out = []
        for n in names:
            for h in expand(n):
                if h not in idx:
                    raise KeyError(h)
                out.append(idx[h])
        return np.array(out, dtype=np.int64)

    # --- derived arrays --------------------------------------------------------------
    def endpoint_links(self) -> np.ndarray:
        """Upward link ids leaving endpoints (endpoint -> leaf), grouped by endpoint."""
        lo, hi = self.indptr[0], self.indptr[self.n_endpoints]
        return self.adj[lo:hi]

    def ep_rack(self) -> np.ndarray:
        return self.server_rack[self.ep_server]

    def ep_leaf(self) -> np.ndarray:
        """First leaf of every endpoint (its home switch on plane 0)."""
        first = self.adj[self.indptr[: self.n_endpoints]]
        return self.link_dst[first]

    def ep_pod(self) -> np.ndarray:
        return self.node_pod[self.ep_leaf()]

    def injection_gbps(self) -> np.ndarray:
        """Scale-out capacity of every endpoint (sum of its ports)."""
        up = self.link_tier == 0
        up &= (np.arange(self.n_links) & 1) == 0
        return np.bincount(self.link_src[up], weights=self.link_gbps[up], minlength=self.n_endpoints)[: self.n_endpoints]

    def to_networkx(self, max_nodes: int = 200_000):
        """The fabric as a ``networkx.MultiGraph`` (undirected; one edge per physical link)."""
        return to_networkx(self, max_nodes=max_nodes)


# --- helpers ----------------------------------------------------------------------
def _exact_split(radix: int, os: float) -> Optional[tuple[int, int]]:
    """Down and up port counts with down / up equal to `os` exactly, using as many of the `radix`
    ports as possible (ties: more down ports); None when no split of at most `radix` ports has
    that ratio. Under-subscription (os < 1) gives more up than down ports."""
    best = None
    for u in range(1, radix):
        d = int(round(os * u))
        if d < 1 or d + u > radix:
            continue
        if abs(d - os * u) > 1e-9 * max(1.0, os * u):
            continue
        if best is None or d + u > best[0] + best[1] or (d + u == best[0] + best[1] and d > best[0]):
            best = (d, u)
    return best


def _split_refusal(radix: int, os: float) -> str:
    """Why a radix cannot be split at `os` exactly, with the nearest exact ratios."""
    d = int(round(radix * os / (1.0 + os)))
    d = min(max(d, 1), radix - 1)
    near = sorted({(dd, radix - dd) for dd in (d - 1, d, d + 1) if 1 <= dd < radix})
    return (f"{radix} ports at {os:g}:1 would be {radix * os / (1 + os):.4g} down and {radix / (1 + os):.4g} up; "
            f"no whole split of at most {radix} ports has that ratio. Exact choices: "
            + ", ".join(f"{dd}/{uu} = {dd / uu:.4g}" for dd, uu in near))


def _largest_bundle(up_ports: int, peers: int, radix: int) -> int:
    """Largest b dividing up_ports with peers * b <= radix (parallel links per pair)."""
    best = 1
    for b in range(1, up_ports + 1):
        if up_ports % b == 0 and peers * b <= radix:
            best = b
    return best


class _Links:
    """Accumulates physical links as array chunks."""

    def __init__(self):
        self.lo, self.hi, self.gbps, self.tier, self.plane = [], [], [], [], []

    def add(self, lo, hi, gbps, tier, plane):
        lo = np.asarray(lo, dtype=np.int64)
        self.lo.append(lo)
        self.hi.append(np.asarray(hi, dtype=np.int64))
        self.gbps.append(np.broadcast_to(np.asarray(gbps, dtype=np.float64), lo.shape))
        self.tier.append(np.full(lo.shape, tier, dtype=np.int8))
        self.plane.append(np.broadcast_to(np.asarray(plane, dtype=np.int16), lo.shape))

    def arrays(self):
        cat = lambda xs, dt: np.concatenate(xs).astype(dt, copy=False) if xs else np.zeros(0, dt)
        return (cat(self.lo, np.int64), cat(self.hi, np.int64), cat(self.gbps, np.float64),
                cat(self.tier, np.int8), cat(self.plane, np.int16))


def _stated_leaf_bundle(fab, U0: int, b1, errs: list, where: str):
    """The leaf-spine bundle that ``fabric.spines_per_pod`` implies (U0 leaf uplinks over that many
    spines), checked against a stated ``tiers[0].bundle``; ``b1`` unchanged when no spine count is stated."""
    spl = fab.spines_per_pod
    if spl is None:
        return b1, spl
    if U0 % spl:
        errs.append(("fabric.spines_per_pod", f"{U0} leaf uplinks cannot be spread evenly over {spl} spines{where} "
                                              f"({U0} / {spl} = {U0 / spl:.4g} links per leaf-spine pair)"))
    elif b1 is not None and b1 != U0 // spl:
        errs.append(("fabric.tiers[0].bundle", f"bundle {b1} disagrees with spines_per_pod {spl}: {U0} leaf "
                                               f"uplinks / {spl} spines = {U0 // spl} links per pair"))
    else:
        b1 = U0 // spl
    return b1, spl


class _Build:
    """One build's shared state. Each step of :func:`build` reads what the steps before it set and
    adds its own arrays and counts (racks, servers, endpoints, ports, tiers, leaves, switches, links);
    problems go to ``errs`` (raised together at the step's checkpoint, each with its JSON path) and
    every value derived rather than read goes to ``derived`` (``describe`` lists it)."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.f = cluster.file
        self.fab = cluster.file.fabric
        self.fam = self.fab.family
        self.errs: list[tuple[str, str]] = []
        self.derived: list[dict] = []

    def derive(self, what: str, value, rule: str, stated: bool = False):
        self.derived.append({"what": what, "value": value, "rule": rule, "stated": stated})

    def raise_errors(self):
        if self.errs:
            raise SpecError(self.errs)


def build(cluster: Cluster) -> Fabric:
    """Build the fabric a validated cluster implies, as arrays.

    Cost: O(endpoints + links) time and memory, all numpy; no per-link Python.
    Raises :class:`SpecError` when the tiers cannot connect the endpoints
    (for example a spine radix too small for the number of leaves).

    The steps, in order: the hosts (racks, servers, endpoints, scale-up domains, floor, NIC ports),
    which every family shares; a custom graph is then read as it is. The tiered families (clos,
    fat_tree, rail_optimized, rail_only, with planes, dual homing, port groups and chassis) go on:
    the switch tiers, NIC ports against the leaf ports, the leaf's port split, the attachment of
    every port to a rail, plane and side (where the families differ), the leaves, the tiers above
    them (one, two or three tiers), then switches, links, floor positions and the figures built.
    """
    b = _Build(cluster)
    _hosts(b)
    _scaleup_domains(b)
    _rack_floor(b)
    _endpoint_ports(b)
    if b.fam == "custom":
        return _custom(b)
    _switch_tiers(b)
    _stated_hardware(b)
    _nic_ports_on_leaves(b)
    _leaf_split(b)
    _attach_ports(b)
    _leaves(b)
    _upper_tiers(b)
    _switch_nodes(b)
    _switch_links(b)
    _switch_positions(b)
    return _assemble(b)


# --- hosts: every family ---------------------------------------------------------------
def _hosts(b: _Build) -> None:
    """Racks, servers and endpoints (one per accelerator, or one per CPU-only host)."""
    cluster = b.cluster
    type_names = list(cluster.node_types)
    rack_type_names = [r.name for r in cluster.racks]
    rack_counts = np.array([r.count for r in cluster.racks], dtype=np.int64)
    rack_type = np.repeat(np.arange(len(cluster.racks), dtype=np.int16), rack_counts)
    n_racks = int(rack_type.shape[0])
    # servers per rack type, in node-type order within the rack
    per_rack_types = []
    for r in cluster.racks:
        per_rack_types.append(np.repeat(np.array([type_names.index(t) for t in r.nodes], dtype=np.int16),
                                        np.array(list(r.nodes.values()), dtype=np.int64)))
    servers_in_rack = np.array([len(x) for x in per_rack_types], dtype=np.int64)[rack_type]
    server_rack = np.repeat(np.arange(n_racks, dtype=np.int64), servers_in_rack)
    server_type = np.concatenate([np.tile(per_rack_types[t], cluster.racks[t].count)
                                  for t in range(len(cluster.racks))])
    nts = [cluster.node_types[t] for t in type_names]
    acc_per = np.array([nt.accelerators for nt in nts], dtype=np.int64)
    eps_per_type = np.maximum(acc_per, 1)
    b.busy = np.array([nt.power_busy_kw for nt in nts])[server_type]
    b.idle = np.array([nt.power_idle_kw for nt in nts])[server_type]

    eps_per_server = eps_per_type[server_type]
    n_ep = int(eps_per_server.sum())
    ep_server = np.repeat(np.arange(server_type.shape[0], dtype=np.int64), eps_per_server)
    first_ep = np.concatenate([[0], np.cumsum(eps_per_server)[:-1]])
    b.ep_local = (np.arange(n_ep, dtype=np.int64) - first_ep[ep_server]).astype(np.int16)
    b.ep_type = server_type[ep_server]
    b.ep_is_accel = acc_per[b.ep_type] > 0
    b.type_names, b.rack_type_names, b.rack_type, b.n_racks = type_names, rack_type_names, rack_type, n_racks
    b.server_rack, b.server_type, b.nts, b.acc_per = server_rack, server_type, nts, acc_per
    b.n_ep, b.ep_server = n_ep, ep_server


def _scaleup_domains(b: _Build) -> None:
    """Scale-up domains: consecutive accelerators of one node type in one rack."""
    nts, n_ep, ep_is_accel, ep_type, ep_server = b.nts, b.n_ep, b.ep_is_accel, b.ep_type, b.ep_server
    su_size = np.array([nt.scaleup_size for nt in nts], dtype=np.int64)
    su_gbps = np.array([nt.scaleup_gbps for nt in nts], dtype=np.float64)
    ep_domain = np.full(n_ep, -1, dtype=np.int64)
    acc_idx = np.flatnonzero(ep_is_accel)
    if acc_idx.size:
        key_rt = b.server_rack[ep_server[acc_idx]] * len(b.type_names) + ep_type[acc_idx]
        # running index of the accelerator within its (rack, type) block
        change = np.concatenate([[True], key_rt[1:] != key_rt[:-1]])
        block_start = np.maximum.accumulate(np.where(change, np.arange(acc_idx.size), 0))
        run = np.arange(acc_idx.size) - block_start
        sizes = su_size[ep_type[acc_idx]]
        dom_key = np.where(sizes <= b.acc_per[ep_type[acc_idx]],
                           ep_server[acc_idx] * 1024 + b.ep_local[acc_idx] // sizes,
                           -(key_rt * 1_000_003 + run // sizes) - 1)
        # domains numbered in order of first appearance
        chg = np.concatenate([[True], dom_key[1:] != dom_key[:-1]])
        ep_domain[acc_idx] = np.cumsum(chg) - 1
        first_of_dom = acc_idx[chg]
        domain_size = sizes[chg].astype(np.int64)
        domain_gbps = su_gbps[ep_type[first_of_dom]]
    else:
        domain_size = np.zeros(0, np.int64)
        domain_gbps = np.zeros(0, np.float64)
    b.ep_domain, b.domain_size, b.domain_gbps = ep_domain, domain_size, domain_gbps


def _rack_floor(b: _Build) -> None:
    """Floor positions of racks and endpoints, and the racks' power limits."""
    f, cluster = b.f, b.cluster
    rpr = f.floor.racks_per_row
    rack_ids = np.arange(b.n_racks, dtype=np.int64)
    rack_row = (rack_ids // rpr).astype(np.int32)
    rack_col = (rack_ids % rpr).astype(np.int32)
    pitch, row_pitch = f.floor.rack_pitch_m, f.floor.row_pitch_m
    b.ep_x = (rack_col[b.server_rack[b.ep_server]] * pitch).astype(np.float32)
    b.ep_y = (rack_row[b.server_rack[b.ep_server]] * row_pitch).astype(np.float32)
    b.limits = np.array([r.power_limit_kw for r in cluster.racks])[b.rack_type]
    b.hard = np.array([r.power_limit_hard for r in cluster.racks])[b.rack_type]
    b.rpr, b.rack_row, b.rack_col, b.pitch, b.row_pitch = rpr, rack_row, rack_col, pitch, row_pitch


def _endpoint_ports(b: _Build) -> None:
    """The NIC ports of every endpoint: its endpoint, index within it (``port_k``) and speed."""
    nts, ep_type = b.nts, b.ep_type
    ports_per_ep_type = np.array([max(nt.nics * nt.nic_ports // max(nt.accelerators, 1), 1) for nt in nts], dtype=np.int64)
    port_gbps_type = np.array([nt.nic_gbps / nt.nic_ports for nt in nts])
    n_ports_ep = ports_per_ep_type[ep_type]
    port_ep = np.repeat(np.arange(b.n_ep, dtype=np.int64), n_ports_ep)
    port_first = np.concatenate([[0], np.cumsum(n_ports_ep)[:-1]])
    b.port_k = np.arange(port_ep.shape[0], dtype=np.int64) - port_first[port_ep]
    b.port_gbps = port_gbps_type[ep_type[port_ep]]
    b.port_gbps_type, b.port_ep = port_gbps_type, port_ep


# --- a custom graph ------------------------------------------------------------------------
def _custom(b: _Build) -> Fabric:
    """A custom graph (fabric.custom), read by :func:`topo.model.graphio.read_custom`, on the hosts built."""
    order, lo, hi, gbps, tier, link_tier, counts = read_custom(b.cluster, b.n_ep)
    return fabric_from_arrays(
        b.n_ep, lo, hi, gbps, tier.astype(np.int8), link_tier=link_tier,
        ep_server=b.ep_server, ep_local=b.ep_local, ep_domain=b.ep_domain,
        ep_is_accel=b.ep_is_accel, server_type=b.server_type, server_rack=b.server_rack,
        server_busy_kw=b.busy, server_idle_kw=b.idle, rack_type=b.rack_type,
        rack_limit_kw=b.limits, rack_hard=b.hard, rack_row=b.rack_row, rack_col=b.rack_col,
        domain_size=b.domain_size, domain_gbps=b.domain_gbps,
        server_type_names=tuple(b.type_names), rack_type_names=tuple(b.rack_type_names),
        tier_switch_counts=counts, tier_oversubscription=tuple(1.0 for _ in counts),
        meta={"custom_names": order, "cluster_name": b.cluster.name})


# --- the tiered families: switch tiers and the leaves' ports ----------------------------------
def _switch_tiers(b: _Build) -> None:
    """The switch of every tier (a k-ary fat tree: one switch of radix k at three tiers) and its
    port groups: down and up ports with their speeds (``dn_g``, ``up_g``), and the down ports a
    top-tier switch offers (``top_ports``)."""
    cluster, fab, fam, f = b.cluster, b.fab, b.fam, b.f
    b.planes = f.fabric.planes
    b.dual = bool(fab.dual_homed)
    b.n_rails = int(max(b.acc_per.max(), 1))
    b.port_type = b.ep_type[b.port_ep]
    b.file_index = {nt.name: i for i, nt in enumerate(f.node_types)}
    tiers = list(cluster.tiers)
    if fam == "fat_tree":
        k = b.k = fab.k
        sw = cluster.tiers[0].switch if cluster.tiers else None
        spec = SwitchSpec(radix=k, port_gbps=sw.port_gbps if sw else 400.0,
                          power_w=sw.power_w if sw else 0.0, cost_usd=sw.cost_usd if sw else 0.0)
        name = cluster.tiers[0].switch_name if cluster.tiers else f"k{k}"
        tiers = [ResolvedTier(switch_name=name, switch=spec, oversubscription=1.0, bundle=1)] * 3
    n_tiers = len(tiers)
    radix = [t.switch.radix for t in tiers]
    sw_gbps = [t.switch.port_gbps for t in tiers]
    # port groups stated per tier (fabric.tiers[i].ports): down and up ports with their own speeds;
    # unset, every port is at the switch's speed. top_ports: the down ports of a top-tier switch
    groups = [fab.tiers[i].ports if fam != "fat_tree" else None for i in range(n_tiers)]
    b.dn_g = [g.down.gbps if g else sw_gbps[i] for i, g in enumerate(groups)]
    b.up_g = [g.up.gbps if (g and g.up) else sw_gbps[i] for i, g in enumerate(groups)]
    b.top_ports = [g.down.ports if g else radix[i] for i, g in enumerate(groups)]
    b.tiers, b.n_tiers, b.radix, b.sw_gbps, b.groups = tiers, n_tiers, radix, sw_gbps, groups


def _stated_hardware(b: _Build) -> None:
    """The chassis and port groups stated per tier, listed with the derived values (as stated)."""
    fab, tiers, radix, sw_gbps, groups = b.fab, b.tiers, b.radix, b.sw_gbps, b.groups
    for i in range(b.n_tiers if b.fam != "fat_tree" else 0):
        ft = fab.tiers[i]
        if ft.line_cards is not None or ft.ports_populated is not None:
            spec_i = tiers[i].switch
            field_ = "line_cards" if ft.line_cards is not None else "ports_populated"
            b.derive(f"{TIER_NAMES[i + 1]} chassis", tiers[i].switch_name,
                     f"stated (fabric.tiers[{i}].{field_}); {spec_i.radix} ports, {spec_i.power_w:g} W and "
                     f"{spec_i.cost_usd:g} USD per switch", stated=True)
    for i, g in enumerate(groups):
        if g is None:
            continue
        parts = []
        for role, grp in (("down", g.down), ("up", g.up)):
            if grp is not None:
                k = port_group_breakout(sw_gbps[i], grp.gbps)
                parts.append(f"{grp.ports} x {grp.gbps:g}G {role}" + (f" ({grp.ports // k} ports of {sw_gbps[i]:g}G "
                                                                       f"broken out {k} ways)" if k > 1 else ""))
        used = sum(grp.ports * grp.gbps for grp in (g.down, g.up) if grp is not None)
        b.derive(f"{TIER_NAMES[i + 1]} port groups", " + ".join(parts),
                 f"stated (fabric.tiers[{i}].ports); {used / 1e3:g} of {radix[i] * sw_gbps[i] / 1e3:g} Tb/s", stated=True)


def _nic_ports_on_leaves(b: _Build) -> None:
    """Endpoint ports against the leaf ports: a NIC port faster than the leaf port, or one that does
    not share it in whole lanes, is refused (never slowed); the leaf port breakout follows from the
    fastest NIC port (``nic_port``, ``breakout``) and slower NIC ports take a leaf port each (``slower``)."""
    port_type, port_gbps_type, dn_g, nts, errs = b.port_type, b.port_gbps_type, b.dn_g, b.nts, b.errs
    type_names, file_index, tiers, groups = b.type_names, b.file_index, b.tiers, b.groups
    for ti in np.unique(port_type).tolist():
        pg = float(port_gbps_type[ti])
        if pg > dn_g[0] * (1 + 1e-12):
            nt = nts[ti]
            need = math.ceil(pg / dn_g[0])
            errs.append((f"node_types[{file_index[type_names[ti]]}].nic_gbps",
                         f"a {pg:g}G NIC port (nic_gbps {nt.nic_gbps:g} / nic_ports {nt.nic_ports}) is faster than "
                         f"the {dn_g[0]:g}G port of the leaf switch {tiers[0].switch_name!r}"
                         + (" (fabric.tiers[0].ports.down)" if groups[0] is not None else "") + "; split each NIC into "
                         f"{nt.nic_ports * need} ports (nic_ports: {nt.nic_ports * need}) or choose a leaf with ports of "
                         f"at least {pg:g}G"))
        else:
            # a slower NIC port shares a leaf port through a breakout: a whole number of them per port
            lanes_f = dn_g[0] / pg
            if abs(lanes_f - round(lanes_f)) > 1e-9:
                nt = nts[ti]
                fit = [f"{dn_g[0] / n:g}G" for n in (1, 2, 4, 8)]
                errs.append((f"node_types[{file_index[type_names[ti]]}].nic_gbps",
                             f"a {pg:g}G NIC port (nic_gbps {nt.nic_gbps:g} / nic_ports {nt.nic_ports}) cannot share "
                             f"the {dn_g[0]:g}G port of the leaf switch {tiers[0].switch_name!r} exactly: "
                             f"{dn_g[0]:g}G / {pg:g}G = {lanes_f:.3g} is not a whole number of NIC ports per leaf "
                             f"port; this leaf serves NIC ports of {', '.join(fit)} (leaf port / a whole number)"))
    b.raise_errors()
    nic_port = float(b.port_gbps.max())
    breakout = max(int(dn_g[0] // nic_port), 1)
    # node types whose NIC ports are slower than the fastest (mixed generations on the same leaves):
    # the leaf port breakout is set by the fastest NIC port; each slower port takes one leaf port
    # and the link runs at the NIC port's own speed
    slower = [ti for ti in np.unique(port_type).tolist() if port_gbps_type[ti] < nic_port * (1 - 1e-12)]
    if slower:
        for ti in slower:
            n_sl = int((port_type == ti).sum())
            b.derive(f"leaf ports of node type {type_names[ti]}",
                     f"{n_sl:,} x {port_gbps_type[ti]:g}G",
                     f"slower than the fastest NIC port ({nic_port:g}G, {breakout} per {dn_g[0]:g}G leaf port): "
                     f"each {port_gbps_type[ti]:g}G NIC port takes one leaf port, its link at {port_gbps_type[ti]:g}G")
    if breakout > 1:
        b.derive("leaf port breakout", breakout,
                 f"leaf port {dn_g[0]:g}G / fastest NIC port {nic_port:g}G = {breakout} NIC ports per leaf port")
    b.nic_port, b.breakout, b.slower = nic_port, breakout, slower


def _leaf_split(b: _Build) -> None:
    """The leaf's down and up ports (``d0``, ``u0``): exact, so down/up capacity is the stated ratio."""
    tiers, radix = b.tiers, b.radix
    if b.n_tiers == 1:
        d0, u0 = b.top_ports[0], 0
    elif b.groups[0] is not None:
        d0, u0 = b.groups[0].down.ports, b.groups[0].up.ports
    else:
        sp = _exact_split(radix[0], tiers[0].oversubscription)
        if sp is None:
            raise SpecError([("fabric.tiers[0].oversubscription", _split_refusal(radix[0], tiers[0].oversubscription))])
        d0, u0 = sp
        spare = radix[0] - d0 - u0
        b.derive("leaf ports down / up", f"{d0} / {u0}",
                 f"largest split of radix {radix[0]} with down/up = {tiers[0].oversubscription:g} exactly"
                 + (f" ({spare} port(s) idle)" if spare else ""))
    b.d0, b.u0 = d0, u0
    b.ep_per_leaf = d0 * b.breakout


def _attach_ports(b: _Build) -> None:
    """Rail, plane and side of every port: where the families differ.

    clos and fat_tree: port k on plane k mod planes, every port on rail 0. rail_optimized: a port on
    its accelerator's rail, and a plane's leaves each serve one rail (the rails kept in every plane).
    rail_only: one plane per rail. Dual homing: a NIC's two ports on two leaves of one plane (side 0
    and 1; the pair k, k+1 on plane (k // 2) mod planes) or on two planes (port k on plane k mod planes,
    as without dual homing); stated by fabric.dual_homed_across, else "planes" with planes > 1.
    """
    fab, fam, f, planes = b.fab, b.fam, b.f, b.planes
    port_ep, port_k, n_rails, type_names = b.port_ep, b.port_k, b.n_rails, b.type_names
    across = None
    if b.dual:
        across = fab.dual_homed_across or ("planes" if planes > 1 else "leaves")
        if fam == "rail_only":
            across = "leaves"
        b.derive("dual homing", f"across {across}",
                 "stated (fabric.dual_homed_across)" if fab.dual_homed_across is not None else
                 (f"default with {planes} planes: a NIC's two ports on two planes" if planes > 1 else
                  "default with one plane: a NIC's two ports on two leaves"
                  + (" of its rail" if fam in ("rail_optimized", "rail_only") else "")),
                 stated=fab.dual_homed_across is not None)
    dual_leaves = across == "leaves"
    # ports per rail slot of a host without accelerators: its first `per` ports take rail 0 on
    # every (plane, side), the next `per` rail 1, ...
    per = (2 if dual_leaves else 1) * (planes if (fam == "rail_optimized" and planes > 1) else 1)
    if fam in ("rail_optimized", "rail_only"):
        rail = b.ep_local[port_ep].astype(np.int64) % n_rails
        host = ~b.ep_is_accel[port_ep]
        if host.any():
            # hosts without accelerators: port k on rail k // per (per = the planes and sides a
            # rail slot spans: 2 when dual-homed on one plane, a NIC's two ports on two leaves of
            # one rail) unless the node type states its rails
            rail[host] = (port_k[host] // per) % n_rails
            for ti, tname in enumerate(type_names):
                stated = f.node_types[b.file_index[tname]].rails
                m = host & (b.port_type == ti)
                if stated is not None and m.any():
                    rail[m] = np.asarray(stated, np.int64)[port_k[m]]
    else:
        rail = np.zeros(port_ep.shape[0], np.int64)
    b.side = (port_k & 1) if dual_leaves else np.zeros(port_ep.shape[0], np.int64)
    # a rail-optimized fabric keeps its rails in every plane: a plane's leaves each serve one rail
    b.lane = rail if fam == "rail_optimized" else np.zeros_like(rail)
    if fam == "rail_only":
        port_plane = rail
        planes = n_rails
    elif planes > 1:
        port_plane = ((port_k // 2) if dual_leaves else port_k) % planes
    else:
        port_plane = np.zeros(port_ep.shape[0], dtype=np.int64)
    b.across, b.port_plane, b.planes = across, port_plane, planes


def _leaves(b: _Build) -> None:
    """The leaves: (plane, group, lane, side); a group holds ep_per_leaf ports of one lane and side.
    Only leaves with ports are built, numbered per plane in (group, lane, side) order; a k-ary fat
    tree has all k^2/2 of its edge switches per plane. Sets ``Ls`` (leaves per plane), ``L`` (their
    maximum) and ``leaf_in_plane`` (per port)."""
    fam, planes, port_plane, n_rails, ep_per_leaf = b.fam, b.planes, b.port_plane, b.n_rails, b.ep_per_leaf
    nsub = 2 * n_rails
    sub = b.lane * 2 + b.side
    seq = _rank_within(port_plane * nsub + sub, planes * nsub)
    lk = (seq // ep_per_leaf) * nsub + sub
    span = int(lk.max()) + 1 if lk.size else 1
    uk, leaf_global = np.unique(port_plane * span + lk, return_inverse=True)
    leaf_global = leaf_global.ravel().astype(np.int64)
    Ls = np.bincount(uk // span, minlength=planes).astype(np.int64)
    first_leaf = np.concatenate([[0], np.cumsum(Ls)[:-1]])
    b.leaf_in_plane = leaf_global - first_leaf[port_plane]
    empty_planes = np.flatnonzero(Ls == 0)
    if empty_planes.size:
        what = "rail" if fam == "rail_only" else "plane"
        raise SpecError([("fabric.planes", f"{what} {int(empty_planes[0])} of {planes} gets no endpoint port "
                                           f"(ports go to plane = port index mod planes; some nodes have fewer ports "
                                           f"per endpoint than planes); a plane with nothing attached is not built")])
    if fam == "fat_tree":
        k = b.k
        if int(Ls.max()) < k * k // 2:
            raise SpecError([("fabric.k", f"a k={k} fat tree has {k * k // 2} edge switches of {k // 2} host ports; "
                                          f"the {b.port_ep.shape[0]:,} endpoint ports fill {int(Ls.max())}, so "
                                          f"{k * k // 2 - int(Ls.max())} would have nothing attached; use a smaller k "
                                          f"or family clos")])
        Ls = np.full(planes, k * k // 2, np.int64)
    b.Ls = Ls
    b.L = int(Ls.max())


# --- the tiers above the leaves ------------------------------------------------------------
def _lanes(b: _Build, t: int) -> tuple[float, int, int]:
    """Speeds between switch tiers t and t + 1: the faster port breaks out into lanes of the slower.
    (lane Gb/s, links per port of tier t, links per port of tier t + 1)."""
    a, c = b.up_g[t], b.dn_g[t + 1]
    g = min(a, c)
    ka, kb = a / g, c / g
    if abs(ka - round(ka)) > 1e-9 or abs(kb - round(kb)) > 1e-9:
        b.errs.append((f"fabric.tiers[{t + 1}].switch",
                       f"a {a:g}G {TIER_NAMES[t + 1]} port cannot face a {c:g}G {TIER_NAMES[t + 2]} port exactly: "
                       f"{max(a, c):g}G is not a whole number of {g:g}G lanes; choose port speeds that divide"))
        return g, 1, 1
    ka, kb = int(round(ka)), int(round(kb))
    if ka > 1:
        b.derive(f"{TIER_NAMES[t + 1]} uplink breakout", ka,
                 f"{TIER_NAMES[t + 1]} port {a:g}G / {TIER_NAMES[t + 2]} port {c:g}G = {ka} x {g:g}G links per port")
    if kb > 1:
        b.derive(f"{TIER_NAMES[t + 2]} downlink breakout", kb,
                 f"{TIER_NAMES[t + 2]} port {c:g}G / {TIER_NAMES[t + 1]} port {a:g}G = {kb} x {g:g}G links per port")
    return g, ka, kb


def _refuse_fields(b: _Build, names) -> None:
    """Fabric fields stated for more tiers than the fabric has."""
    for nm in names:
        if getattr(b.fab, nm) is not None:
            b.errs.append((f"fabric.{nm}", f"applies to a {'3' if nm != 'spines_per_pod' else '2- or 3'}-tier "
                                           f"fabric; this one has {b.n_tiers} tier(s)"))


def _upper_tiers(b: _Build) -> None:
    """Spines and super-spines: one, two or three tiers; raises every problem found.

    Sets the lanes between tiers (``g1``, ``g2`` Gb/s; ``k0``, ``kS1``, ``k1``, ``kS2`` links per port),
    the uplinks (``U0``, ``U1``), bundles (``b1``, ``b2``, ``b2_last``), the spine's port split
    (``d1``, ``u1``), pods (``Lp`` leaves each, ``pods_p`` per plane, ``pods``), spines
    (``spines_per_pod``, ``S1p`` per plane) and super-spines per plane (``S2``)."""
    b.g1 = b.g2 = 0.0
    b.k0 = b.kS1 = b.k1 = b.kS2 = 1
    b.U0 = b.U1 = 0
    b.Lp = b.L
    b.b2_last = 0
    b.partial_planes = np.zeros(b.planes, bool)
    if b.n_tiers == 1:
        _one_tier(b)
    elif b.n_tiers == 2:
        _two_tiers(b)
    else:
        _three_tiers(b)
    b.raise_errors()


def _one_tier(b: _Build) -> None:
    """One tier: a single leaf per plane holds every endpoint port."""
    _refuse_fields(b, ("leaves_per_pod", "spines_per_pod", "pods", "super_spines"))
    if b.L > 1:
        b.errs.append(("fabric.tiers[0].radix", f"one tier of radix {b.radix[0]} connects {b.ep_per_leaf} endpoint ports; {int(b.port_ep.shape[0] // b.planes)} need a second tier"))
    b.pods_p = np.ones(b.planes, np.int64)
    b.S1p = np.zeros(b.planes, np.int64)
    b.S2 = 0
    b.pods, b.b1, b.b2, b.spines_per_pod = 1, 0, 0, 0
    b.d1 = b.u1 = 0


def _two_tiers(b: _Build) -> None:
    """Two tiers: one pod per plane, every leaf on every spine with a bundle of b1 links."""
    fab, tiers, errs, L, planes, groups, radix, top_ports = b.fab, b.tiers, b.errs, b.L, b.planes, b.groups, b.radix, b.top_ports
    _refuse_fields(b, ("super_spines",))
    if fab.pods is not None and fab.pods != 1:
        errs.append(("fabric.pods", f"a 2-tier fabric is one pod per plane; found pods: {fab.pods}"))
    if fab.leaves_per_pod is not None and fab.leaves_per_pod != L:
        errs.append(("fabric.leaves_per_pod", f"a 2-tier fabric is one pod of all its leaves: the endpoint ports "
                                              f"fill {L} leaves of {b.ep_per_leaf} ports per plane, not {fab.leaves_per_pod}"))
    if abs(tiers[1].oversubscription - 1.0) > 1e-12:
        errs.append(("fabric.tiers[1].oversubscription", "the top tier has no uplinks; its oversubscription must be 1"))
    b.g1, b.k0, kS1 = _lanes(b, 0)
    b.kS1 = kS1
    U0 = b.U0 = b.u0 * b.k0
    b1, spl = _stated_leaf_bundle(fab, U0, tiers[0].bundle, errs, "")
    if b1 is None:
        b1 = _largest_bundle(U0, L, top_ports[1] * kS1)
        b.derive("leaf-spine bundle", b1, f"largest b dividing the {U0} leaf uplinks with {L} leaves x b <= "
                                          f"{top_ports[1] * kS1} spine links")
    if U0 % b1:
        errs.append(("fabric.tiers[0].bundle", f"bundle {b1} does not divide the {U0} leaf uplinks"))
        b1 = 1
    if -(-L * b1 // kS1) > top_ports[1]:
        what = (f"radix {radix[1]}" if groups[1] is None else f"{top_ports[1]} down ports (fabric.tiers[1].ports.down)")
        errs.append(("fabric.tiers[1].radix" if groups[1] is None else "fabric.tiers[1].ports.down.ports",
                     f"{what} is too small for {L} leaves x {b1} links per spine; use a larger switch or a third tier"))
    spines_per_pod = U0 // b1
    b.derive("spines per plane", spines_per_pod, f"leaf uplinks / bundle = {U0} / {b1} = {spines_per_pod}",
             stated=spl is not None)
    b.pods_p = np.ones(planes, np.int64)
    b.S1p = np.full(planes, spines_per_pod, np.int64)
    b.S2, b.pods, b.b2, b.d1, b.u1 = 0, 1, 0, 0, 0
    b.b1, b.spines_per_pod = b1, spines_per_pod


def _three_tiers(b: _Build) -> None:
    """Three tiers: pods of leaves with their spines, spine-planes of super-spines above them."""
    fab, tiers, errs, Ls = b.fab, b.tiers, b.errs, b.Ls
    if abs(tiers[2].oversubscription - 1.0) > 1e-12:
        errs.append(("fabric.tiers[2].oversubscription", "the top tier has no uplinks; its oversubscription must be 1"))
    b.g1, b.k0, b.kS1 = _lanes(b, 0)
    b.g2, b.k1, b.kS2 = _lanes(b, 1)
    U0 = b.U0 = b.u0 * b.k0
    b1, spl = _stated_leaf_bundle(fab, U0, tiers[0].bundle, errs, " per pod")
    b1 = b1 or 1
    if U0 % b1:
        errs.append(("fabric.tiers[0].bundle", f"bundle {b1} does not divide the {U0} leaf uplinks"))
        b1 = 1
    spines_per_pod = U0 // b1
    b.derive("spines per pod", spines_per_pod, f"leaf uplinks / bundle = {U0} / {b1} = {spines_per_pod}",
             stated=spl is not None)
    b.b1, b.spines_per_pod = b1, spines_per_pod
    _pod_size(b)
    Lp = b.Lp
    pods_p = -(-Ls // Lp)
    pods = int(pods_p.max())
    if fab.pods is not None and (pods_p != fab.pods).any():
        bad = int(np.flatnonzero(pods_p != fab.pods)[0])
        errs.append(("fabric.pods", f"{int(Ls[bad])} leaves per plane in pods of {Lp} make "
                                    f"ceil({int(Ls[bad])} / {Lp}) = {int(pods_p[bad])} pods, not {fab.pods}"))
    if b.fam != "fat_tree":
        b.derive("pods per plane", pods, f"ceil(leaves per plane / leaves per pod) = ceil({b.L} / {Lp}) = {pods}",
                 stated=fab.pods is not None)
    b.pods_p, b.pods = pods_p, pods
    _super_spines(b)


def _pod_size(b: _Build) -> None:
    """Leaves per pod (``Lp``) and the spine's down/up ports (``d1``, ``u1``): from k for a fat tree,
    from a stated pod size (``leaves_per_pod`` or ``pods``) with the spine's up ports following from
    its oversubscription, or from the spine's exact port split."""
    fab, tiers, errs, L, b1, kS1, radix = b.fab, b.tiers, b.errs, b.L, b.b1, b.kS1, b.radix
    os1 = tiers[1].oversubscription
    if b.fam == "fat_tree":
        if fab.leaves_per_pod is not None or fab.pods is not None or fab.super_spines is not None:
            errs.append(("fabric.k", "a fat tree's pods follow from k (k/2 edge switches per pod); leave "
                                     "leaves_per_pod, pods and super_spines out"))
        Lp = b.k // 2
        d1 = u1 = b.k // 2
    elif fab.leaves_per_pod is not None or fab.pods is not None:
        # pod size stated: the spine's down ports are exactly the pod's links, its up ports follow from
        # the stated oversubscription; anything else is refused with the arithmetic
        path = "fabric.leaves_per_pod" if fab.leaves_per_pod is not None else "fabric.pods"
        if fab.leaves_per_pod is not None:
            Lp = fab.leaves_per_pod
        else:
            Lp = -(-L // fab.pods)
            b.derive("leaves per pod", Lp, f"ceil(leaves per plane / pods) = ceil({L} / {fab.pods}) = {Lp}")
        D1 = Lp * b1
        if D1 % kS1:
            errs.append((path, f"{Lp} leaves x {b1} links = {D1} spine downlinks do not fill whole "
                               f"{b.dn_g[1]:g}G spine ports of {kS1} x {b.g1:g}G lanes"))
        d1 = -(-D1 // kS1)
        up = d1 / os1
        u1 = int(round(up))
        if abs(up - u1) > 1e-9 * max(1.0, up) or u1 < 1:
            lo_u, hi_u = max(int(math.floor(up)), 1), int(math.ceil(up))
            alts = sorted({lp for lp in (int(round(lo_u * os1)) // b1, int(round(hi_u * os1)) // b1)
                           if lp > 0 and abs((lp * b1 / kS1) / os1 - round((lp * b1 / kS1) / os1)) < 1e-9
                           and (lp * b1) % kS1 == 0})
            errs.append((path, f"{Lp} leaves per pod x bundle {b1} = {d1} spine down ports; at "
                               f"{os1:g}:1 (fabric.tiers[1].oversubscription) they need {d1} / {os1:g} = "
                               f"{up:.4g} up ports, not a whole number. Exact choices: "
                               + (", ".join(f"{lp} leaves per pod" for lp in alts) + " or " if alts else "")
                               + f"oversubscription {d1}/{lo_u} = {d1 / lo_u:.4g}"
                               + (f" or {d1}/{hi_u} = {d1 / hi_u:.4g}" if hi_u != lo_u else "")))
            u1 = max(lo_u, 1)
        if d1 + u1 > radix[1]:
            errs.append(("fabric.tiers[1].radix", f"{Lp} leaves per pod x bundle {b1} = {d1} down ports + "
                                                  f"{d1} / {os1:g} = {u1} up ports = {d1 + u1} exceed the spine "
                                                  f"radix {radix[1]}"))
        b.derive("spine ports down / up", f"{d1} / {u1}",
                 f"down = leaves per pod x bundle = {Lp} x {b1}; up = down / {os1:g}"
                 + (f"; {radix[1] - d1 - u1} of {radix[1]} ports unused" if d1 + u1 < radix[1] else ""))
        b.derive("leaves per pod", Lp, "stated" if fab.leaves_per_pod is not None else "from pods",
                 stated=fab.leaves_per_pod is not None)
    else:
        if b.groups[1] is not None:
            d1, u1 = b.groups[1].down.ports, b.groups[1].up.ports
        else:
            sp1 = _exact_split(radix[1], os1)
            if sp1 is None:
                raise SpecError([("fabric.tiers[1].oversubscription", _split_refusal(radix[1], os1))])
            d1, u1 = sp1
            b.derive("spine ports down / up", f"{d1} / {u1}",
                     f"largest split of radix {radix[1]} with down/up = {os1:g} exactly"
                     + (f" ({radix[1] - d1 - u1} port(s) idle)" if d1 + u1 < radix[1] else ""))
        Lp = (d1 * kS1) // b1
        if Lp < 1:
            errs.append(("fabric.tiers[1].radix" if b.groups[1] is None else "fabric.tiers[1].ports.down.ports",
                         f"{d1} spine down ports leave no room for bundles of {b1}"))
            Lp = 1
        b.derive("leaves per pod", Lp, f"spine downlinks / bundle = {d1 * kS1} / {b1} = {Lp}; state "
                                       f"fabric.leaves_per_pod (or fabric.pods) to fix the pod size")
    b.Lp, b.d1, b.u1 = Lp, d1, u1


def _super_spines(b: _Build) -> None:
    """The spine-super bundle (``b2``; ``b2_last`` for the last pod of a plane when it is partly
    filled), spines per plane (``S1p``) and super-spines per plane (``S2``)."""
    fab, tiers, errs, spines_per_pod, pods = b.fab, b.tiers, b.errs, b.spines_per_pod, b.pods
    top_ports, radix, groups, kS2 = b.top_ports, b.radix, b.groups, b.kS2
    U1 = b.U1 = b.u1 * b.k1
    b2 = tiers[1].bundle
    ssp = fab.super_spines
    if ssp is not None:
        if ssp % spines_per_pod or U1 % (ssp // spines_per_pod or 1) or ssp < spines_per_pod:
            errs.append(("fabric.super_spines", f"{ssp} super-spines per plane cannot take the {U1} uplinks of "
                                                f"each of {spines_per_pod} spine positions evenly (need a multiple "
                                                f"of {spines_per_pod} that divides {spines_per_pod} x {U1})"))
        else:
            want = U1 // (ssp // spines_per_pod)
            if b2 is not None and b2 != want:
                errs.append(("fabric.tiers[1].bundle", f"bundle {b2} disagrees with super_spines {ssp}: {U1} "
                                                       f"spine uplinks / {ssp // spines_per_pod} = {want}"))
            b2 = want
    if b2 is None:
        b2 = _largest_bundle(U1, pods, top_ports[2] * kS2) if U1 else 1
        b.derive("spine-super bundle", b2, f"largest b dividing the {U1} spine uplinks with {pods} pods x b <= "
                                           f"{top_ports[2] * kS2} super-spine links")
    if U1 % b2:
        errs.append(("fabric.tiers[1].bundle", f"bundle {b2} does not divide the {U1} spine uplinks"))
        b2 = 1
    if -(-pods * b2 // kS2) > top_ports[2]:
        what = (f"radix {radix[2]}" if groups[2] is None else f"{top_ports[2]} down ports (fabric.tiers[2].ports.down)")
        errs.append(("fabric.tiers[2].radix" if groups[2] is None else "fabric.tiers[2].ports.down.ports",
                     f"{what} is too small for {pods} pods x {b2} links; use a larger switch"))
    b.S1p = b.pods_p * spines_per_pod
    S2 = spines_per_pod * (U1 // b2)
    b.derive("super-spines per plane", S2, f"spines per pod x spine uplinks / bundle = {spines_per_pod} x {U1} / "
                                           f"{b2} = {S2}", stated=ssp is not None)
    # the last pod of a plane, when partly filled, may have thinner spine uplinks
    partial_planes = (b.Ls % b.Lp) != 0
    bp = tiers[1].partial_pod_bundle
    if bp is not None and not partial_planes.any():
        errs.append(("fabric.tiers[1].partial_pod_bundle", f"every pod is full ({b.L} leaves per plane, {b.Lp} per pod)"))
    elif bp is not None and bp > b2:
        errs.append(("fabric.tiers[1].partial_pod_bundle", f"{bp} is more than the bundle of the full pods ({b2})"))
    b.b2_last = bp if (bp is not None and partial_planes.any() and bp <= b2) else b2
    b.b2, b.S2, b.partial_planes = b2, S2, partial_planes


# --- switches, links, floor ----------------------------------------------------------------
def _switch_nodes(b: _Build) -> None:
    """Node arrays: endpoints first, then per plane its leaves, spines and super-spines."""
    n_ep, planes, Ls, S1p, S2, Lp, spines_per_pod = b.n_ep, b.planes, b.Ls, b.S1p, b.S2, b.Lp, b.spines_per_pod
    per_plane = Ls + S1p + S2
    n_sw = int(per_plane.sum())
    n_nodes = n_ep + n_sw
    node_tier = np.zeros(n_nodes, np.int8)
    node_plane = np.zeros(n_nodes, np.int16)
    node_pod = np.full(n_nodes, -1, np.int32)
    node_index = np.zeros(n_nodes, np.int64)
    node_index[:n_ep] = np.arange(n_ep)
    plane_base = n_ep + np.concatenate([[0], np.cumsum(per_plane)[:-1]]).astype(np.int64)
    for p in range(planes):
        base, Lq, Sq = int(plane_base[p]), int(Ls[p]), int(S1p[p])
        node_tier[base:base + Lq] = 1
        node_tier[base + Lq:base + Lq + Sq] = 2
        node_tier[base + Lq + Sq:base + Lq + Sq + S2] = 3
        node_plane[base:base + Lq + Sq + S2] = p
        node_index[base:base + Lq] = np.arange(Lq)
        node_index[base + Lq:base + Lq + Sq] = np.arange(Sq)
        node_index[base + Lq + Sq:base + Lq + Sq + S2] = np.arange(S2)
        if b.n_tiers == 3:
            node_pod[base:base + Lq] = np.arange(Lq) // Lp
            node_pod[base + Lq:base + Lq + Sq] = np.arange(Sq) // spines_per_pod
        else:
            node_pod[base:base + Lq + Sq] = 0
    b.n_nodes, b.node_tier, b.node_plane, b.node_pod, b.node_index = n_nodes, node_tier, node_plane, node_pod, node_index
    b.plane_base = plane_base


def _switch_links(b: _Build) -> None:
    """Physical links, lower end first: endpoint-leaf, leaf-spine (every spine of the leaf's pod,
    b1 links each), spine-super (the super-spines of the spine's spine-plane, b2 links each)."""
    planes, plane_base, Ls, S1p, n_tiers = b.planes, b.plane_base, b.Ls, b.S1p, b.n_tiers
    spines_per_pod, b1, b2, b2_last, Lp = b.spines_per_pod, b.b1, b.b2, b.b2_last, b.Lp
    links = _Links()
    # endpoint -> leaf
    leaf_node = plane_base[b.port_plane] + b.leaf_in_plane
    links.add(b.port_ep, leaf_node, b.port_gbps, 0, b.port_plane)
    for p in range(planes):
        base, Lq, Sq = int(plane_base[p]), int(Ls[p]), int(S1p[p])
        if n_tiers >= 2:
            # leaf l in pod l // Lp connects to every spine of its pod with b1 links
            leaves = np.repeat(np.arange(Lq, dtype=np.int64), spines_per_pod * b1)
            j = np.tile(np.repeat(np.arange(spines_per_pod, dtype=np.int64), b1), Lq)
            pod = leaves // Lp if n_tiers == 3 else np.zeros_like(leaves)
            links.add(base + leaves, base + Lq + pod * spines_per_pod + j, b.g1, 1, p)
        if n_tiers == 3:
            # spine j of each pod connects to the U1/b2 super-spines of spine-plane j, b2 links each
            # (the last pod's spines with b2_last links each when it is partly filled)
            per_plane_sup = b.U1 // b2
            full = Sq - spines_per_pod if (b2_last != b2 and b.partial_planes[p]) else Sq
            for first, count, bb in ((0, full, b2), (full, Sq - full, b2_last)):
                if count <= 0:
                    continue
                spines = first + np.repeat(np.arange(count, dtype=np.int64), per_plane_sup * bb)
                jj = spines % spines_per_pod
                m = np.tile(np.repeat(np.arange(per_plane_sup, dtype=np.int64), bb), count)
                links.add(base + Lq + spines, base + Lq + Sq + jj * per_plane_sup + m, b.g2, 2, p)
    b.leaf_node = leaf_node
    b.lo, b.hi, b.gbps, b.ltier, b.lplane = links.arrays()


def _switch_positions(b: _Build) -> None:
    """Floor positions of switches (``x``, ``y``), and every link's length and reach class; a link
    longer than the longest reach class is refused."""
    f, n_nodes, n_ep, node_tier, node_pod = b.f, b.n_nodes, b.n_ep, b.node_tier, b.node_pod
    ep_x, ep_y, leaf_node, port_ep, pods, n_tiers = b.ep_x, b.ep_y, b.leaf_node, b.port_ep, b.pods, b.n_tiers
    pitch, row_pitch, rpr, lo, hi = b.pitch, b.row_pitch, b.rpr, b.lo, b.hi
    x = np.zeros(n_nodes, np.float32)
    y = np.zeros(n_nodes, np.float32)
    x[:n_ep], y[:n_ep] = ep_x, ep_y
    # a leaf sits at the rack of its first endpoint (tor) or at that row's end (eor)
    first_port_of_leaf = np.full(n_nodes, -1, np.int64)
    order = np.argsort(leaf_node, kind="stable")
    ln_sorted = leaf_node[order]
    firsts = np.concatenate([[True], ln_sorted[1:] != ln_sorted[:-1]]) if ln_sorted.size else np.zeros(0, bool)
    first_port_of_leaf[ln_sorted[firsts]] = port_ep[order[firsts]]
    is_leaf = node_tier == 1
    has_ep = is_leaf & (first_port_of_leaf >= 0)
    fe = first_port_of_leaf[has_ep]
    if f.floor.leaf_placement == "tor":
        x[has_ep] = ep_x[fe]
    else:
        x[has_ep] = rpr * pitch
    y[has_ep] = ep_y[fe]
    n_rows = int(b.rack_row.max()) + 1 if b.n_racks else 1
    spine_col = (rpr + 1) * pitch
    if n_tiers >= 2:
        sp = node_tier == 2
        # spines of a pod sit beside the middle row of their pod's leaves
        pod_y = np.zeros(max(pods, 1), np.float64)
        lp = node_pod[has_ep]
        cnt = np.bincount(lp, minlength=pods)
        pod_y[: len(cnt)] = np.bincount(lp, weights=y[has_ep], minlength=pods) / np.maximum(cnt, 1)
        x[sp] = spine_col
        y[sp] = pod_y[np.maximum(node_pod[sp], 0)]
    if n_tiers == 3:
        su = node_tier == 3
        x[su] = spine_col + pitch
        y[su] = (n_rows - 1) * row_pitch / 2.0
    length = (np.abs(x[lo] - x[hi]) + np.abs(y[lo] - y[hi]) + f.floor.slack_m).astype(np.float32)
    reach_max = np.array([b.cluster.optics[r].max_m for r in REACH_NAMES])
    reach = np.searchsorted(reach_max, length, side="left").astype(np.int8)
    if reach.size and reach.max() >= len(REACH_NAMES):
        worst = float(length.max())
        raise SpecError([("floor", f"a link of {worst:.0f} m is longer than the longest reach class ({reach_max[-1]:.0f} m); shrink the floor or add an optic with more reach")])
    b.x, b.y, b.length, b.reach = x, y, length, reach


def _oversubscription(b: _Build) -> tuple[list, list]:
    """Oversubscription per tier, in capacity: a full switch's down capacity over its up capacity
    (the design ratio), and the largest over the switches actually built (counted from the links)."""
    n_nodes, node_tier, n_tiers, U0, U1, g1 = b.n_nodes, b.node_tier, b.n_tiers, b.U0, b.U1, b.g1
    cap_dn = np.bincount(b.hi, weights=b.gbps, minlength=n_nodes)
    cap_up = np.bincount(b.lo, weights=b.gbps, minlength=n_nodes)
    os_t, os_built = [], []
    for t in range(n_tiers):
        if t == n_tiers - 1:
            os_t.append(1.0)
            os_built.append(1.0)
            continue
        if t == 0:
            os_t.append(b.ep_per_leaf * b.nic_port / (U0 * g1) if U0 else math.inf)
        else:
            os_t.append(b.d1 * b.kS1 * g1 / (U1 * b.g2) if U1 else math.inf)
        m = node_tier == t + 1
        up_c = cap_up[m]
        os_built.append(float((cap_dn[m] / up_c).max()) if up_c.size and (up_c > 0).all() else math.inf)
        if t == 0 and b.slower and up_c.size and (up_c > 0).all():
            r = cap_dn[m] / up_c
            b.derive("leaf down / up capacity", f"{r.min():.4g} to {r.max():.4g}",
                     f"counted from the links, per leaf: a slower NIC port uses part of its leaf port, a partly "
                     f"filled leaf has fewer ports; the stated {b.tiers[0].oversubscription:g}:1 is a full leaf at the "
                     f"fastest NIC port's speed")
    return os_t, os_built


def _meta(b: _Build, os_built: list) -> dict:
    """The build's figures kept with the fabric: pods, bundles, port splits, breakouts, what was derived."""
    n_tiers, groups, top_ports, dn_g, up_g = b.n_tiers, b.groups, b.top_ports, b.dn_g, b.up_g
    d0, u0, d1, u1 = b.d0, b.u0, b.d1, b.u1
    meta = {"leaves_per_pod": b.Lp, "spines_per_pod": b.spines_per_pod, "bundles": [b.b1, b.b2][: max(n_tiers - 1, 0)],
            "endpoint_ports_per_leaf": b.ep_per_leaf, "breakout": b.breakout, "leaf_up_ports": b.U0,
            "spine_up_ports": b.U1, "cluster_name": b.cluster.name,
            "port_split": [[d0, u0], [d1, u1]][: max(n_tiers - 1, 1)],
            "uplink_breakout": [b.k0, b.k1][: max(n_tiers - 1, 0)],
            "leaves_per_plane": b.Ls.tolist(), "pods_per_plane": b.pods_p.tolist(),
            "derived": b.derived, "oversubscription_built": os_built, "dual_homed_across": b.across,
            # per tier: the ports each switch uses, [down ports, their Gb/s, up ports, their Gb/s]
            "tier_ports": [[d0, dn_g[0], u0, up_g[0]], [d1, dn_g[1], u1, up_g[1]] if n_tiers == 3 else None,
                           None][:n_tiers],
            "port_groups_stated": [g is not None for g in groups],
            # a top tier's stated port groups: [down ports, their Gb/s] (its own ports otherwise)
            "top_ports": [top_ports[n_tiers - 1], dn_g[n_tiers - 1]] if groups and groups[-1] is not None else None}
    if n_tiers == 3 and b.partial_planes.any():
        meta["partial_pod_bundle"] = b.b2_last
        meta["partial_pod_leaves"] = b.L - (b.pods - 1) * b.Lp if b.L % b.Lp else b.Lp
    if b.fam == "fat_tree":
        meta["k"] = b.k
    return meta


def _assemble(b: _Build) -> Fabric:
    """Directed links (two per physical link), the CSR, the figures built, and the Fabric."""
    lo, hi = b.lo, b.hi
    n_phys = lo.shape[0]
    src = np.empty(2 * n_phys, np.int64)
    dst = np.empty(2 * n_phys, np.int64)
    src[0::2], src[1::2] = lo, hi
    dst[0::2], dst[1::2] = hi, lo
    rep = lambda a: np.repeat(a, 2)
    indptr, adj = csr(src, b.n_nodes)
    os_t, os_built = _oversubscription(b)
    counts = [int(b.Ls.sum()), int(b.S1p.sum()), b.S2 * b.planes][:b.n_tiers]
    meta = _meta(b, os_built)
    return Fabric(
        family=b.fam, n_endpoints=b.n_ep,
        node_tier=_ro(b.node_tier), node_plane=_ro(b.node_plane), node_pod=_ro(b.node_pod),
        node_index=_ro(b.node_index), node_x_m=_ro(b.x), node_y_m=_ro(b.y),
        ep_server=_ro(b.ep_server), ep_local=_ro(b.ep_local), ep_domain=_ro(b.ep_domain),
        ep_is_accel=_ro(b.ep_is_accel),
        link_src=_ro(src), link_dst=_ro(dst), link_gbps=_ro(rep(b.gbps)), link_tier=_ro(rep(b.ltier)),
        link_plane=_ro(rep(b.lplane)), link_length_m=_ro(rep(b.length)), link_reach=_ro(rep(b.reach)),
        indptr=_ro(indptr), adj=_ro(adj),
        server_type=_ro(b.server_type), server_rack=_ro(b.server_rack), server_busy_kw=_ro(b.busy),
        server_idle_kw=_ro(b.idle),
        rack_type=_ro(b.rack_type), rack_limit_kw=_ro(b.limits), rack_hard=_ro(b.hard), rack_row=_ro(b.rack_row),
        rack_col=_ro(b.rack_col), domain_size=_ro(b.domain_size), domain_gbps=_ro(b.domain_gbps),
        server_type_names=tuple(b.type_names), rack_type_names=tuple(b.rack_type_names),
        switch_models=tuple(t.switch_name for t in b.tiers), tier_switch_counts=tuple(counts),
        tier_oversubscription=tuple(os_t), planes=b.planes, pods=b.pods, meta=meta)


def _rank_within(key: np.ndarray, n_keys: int) -> np.ndarray:
    """For each element, how many earlier elements share its key (stable)."""
    order = np.argsort(key, kind="stable")
    counts = np.bincount(key, minlength=n_keys)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0]) - starts[key[order]]
    return rank


def csr(src: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, link ids) over the source node of each directed link."""
    counts = np.bincount(src, minlength=n_nodes)
    indptr = np.zeros(n_nodes + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    adj = np.argsort(src, kind="stable").astype(np.int64)
    return indptr, adj


def fabric_from_arrays(n_endpoints: int, lo: np.ndarray, hi: np.ndarray, gbps: np.ndarray,
                       node_tier: np.ndarray, link_tier: Optional[np.ndarray] = None,
                       family: str = "custom", **extra) -> Fabric:
    """A Fabric from physical links (lo, hi), used by custom imports and tests.

    ``extra`` may carry any Fabric field (server arrays, floor, racks); the rest
    default to one server and one rack per endpoint.
    """
    n_nodes = node_tier.shape[0]
    lo = np.asarray(lo, np.int64)
    hi = np.asarray(hi, np.int64)
    if link_tier is None:
        link_tier = np.maximum(np.minimum(node_tier[lo], node_tier[hi]), 0).astype(np.int8)
        link_tier = np.where(node_tier[lo] == 0, 0, link_tier).astype(np.int8)
    n_phys = lo.shape[0]
    src = np.empty(2 * n_phys, np.int64)
    dst = np.empty(2 * n_phys, np.int64)
    src[0::2], src[1::2] = lo, hi
    dst[0::2], dst[1::2] = hi, lo
    indptr, adj = csr(src, n_nodes)
    e = n_endpoints
    d = dict(
        node_plane=np.zeros(n_nodes, np.int16), node_pod=np.zeros(n_nodes, np.int32),
        node_index=np.concatenate([np.arange(e), np.arange(n_nodes - e)]).astype(np.int64),
        node_x_m=np.zeros(n_nodes, np.float32), node_y_m=np.zeros(n_nodes, np.float32),
        ep_server=np.arange(e, dtype=np.int64), ep_local=np.zeros(e, np.int16),
        ep_domain=np.arange(e, dtype=np.int64), ep_is_accel=np.ones(e, bool),
        link_plane=np.zeros(2 * n_phys, np.int16), link_length_m=np.full(2 * n_phys, 2.0, np.float32),
        link_reach=np.zeros(2 * n_phys, np.int8),
        server_type=np.zeros(e, np.int16), server_rack=np.arange(e, dtype=np.int64),
        server_busy_kw=np.zeros(e), server_idle_kw=np.zeros(e), rack_type=np.zeros(e, np.int16),
        rack_limit_kw=np.full(e, np.inf), rack_hard=np.zeros(e, bool), rack_row=np.zeros(e, np.int32),
        rack_col=np.arange(e, dtype=np.int32), domain_size=np.ones(e, np.int64), domain_gbps=np.zeros(e),
    )
    d.update(extra)
    tiers_present = sorted(set(int(t) for t in np.unique(node_tier[e:])))
    counts = tuple(int((node_tier == t).sum()) for t in tiers_present)
    d = {k: (_ro(v) if isinstance(v, np.ndarray) else v) for k, v in d.items()}
    return Fabric(family=family, n_endpoints=e, node_tier=_ro(np.asarray(node_tier, np.int8)),
                  link_src=_ro(src), link_dst=_ro(dst), link_gbps=_ro(np.repeat(np.asarray(gbps, np.float64), 2) if np.ndim(gbps) else np.full(2 * n_phys, float(gbps))),
                  link_tier=_ro(np.repeat(np.asarray(link_tier, np.int8), 2)), indptr=_ro(indptr), adj=_ro(adj),
                  server_type_names=d.pop("server_type_names", ("host",)), rack_type_names=d.pop("rack_type_names", ("rack",)),
                  switch_models=d.pop("switch_models", ()), tier_switch_counts=d.pop("tier_switch_counts", counts),
                  tier_oversubscription=d.pop("tier_oversubscription", tuple(1.0 for _ in counts)),
                  planes=d.pop("planes", 1), pods=d.pop("pods", 1), meta=d.pop("meta", {}), **d)
