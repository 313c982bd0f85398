"""Graph interchange: networkx views, GraphML export/import, edge lists.

Owns every use of networkx outside tests. Builders never call into here for
Clos families; a custom fabric is read here once and turned into arrays.
Must not import :mod:`topo.model.fabric` (the fabric imports this module;
pyproject.toml's import-linter contract holds that): it reads a Fabric's
arrays and returns plain arrays.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from topo.model.catalog import REACH_CLASSES
from topo.model.spec import Cluster, SpecError


def to_networkx(fabric, max_nodes: int = 200_000):
    """An undirected ``networkx.MultiGraph``: one edge per physical link.

    Nodes carry ``name, tier, plane, pod``; edges carry ``gbps, tier, length_m,
    reach`` and ``link`` (the upward directed link id). Refuses fabrics larger
    than ``max_nodes`` (networkx is for small fabrics and interchange).
    """
    import networkx as nx
    if fabric.n_nodes > max_nodes:
        raise ValueError(f"fabric has {fabric.n_nodes} nodes; to_networkx is limited to {max_nodes} (pass max_nodes= to override)")
    g = nx.MultiGraph()
    for i in range(fabric.n_nodes):
        g.add_node(i, name=fabric.node_name(i), tier=int(fabric.node_tier[i]),
                   plane=int(fabric.node_plane[i]), pod=int(fabric.node_pod[i]))
    for l in range(0, fabric.n_links, 2):
        g.add_edge(int(fabric.link_src[l]), int(fabric.link_dst[l]), link=l, gbps=float(fabric.link_gbps[l]),
                   tier=int(fabric.link_tier[l]), length_m=float(fabric.link_length_m[l]),
                   reach=REACH_CLASSES[int(fabric.link_reach[l])])
    return g


def write_graphml(fabric, path) -> None:
    """Write the fabric as GraphML through networkx (node ids are names; scalar attributes only).

    The reference the streamed writer (:func:`topo.io.exports.write_graphml`, which ``topo.write_graphml``
    and the exports use) is tested and benchmarked against. Its edge ids restart for each group of
    parallel edges, as networkx numbers them, so GraphML's unique-id rule does not hold: write files
    for other programs with the streamed writer."""
    import networkx as nx
    g = to_networkx(fabric, max_nodes=10**9)
    g = nx.relabel_nodes(g, {i: d["name"] for i, d in g.nodes(data=True)})
    for _, d in g.nodes(data=True):
        d.pop("name", None)
    nx.write_graphml(g, str(path))


def read_graph(path, field: str = "") -> tuple[list[str], list[int], list[tuple[str, str, float]]]:
    """Read GraphML or an edge list: node names, tiers (-1 = infer), edges (u, v, gbps or nan).

    In an edge list each line is ``u v [gbps]`` (comma or space separated, ``#``
    comments). Nodes with a ``tier`` attribute of 0, or named ``e<number>``
    in an edge list, are endpoints.
    """
    from topo.core.inputs import decode, read_bytes
    from topo.core.limits import MAX_DATA_FILE_BYTES, MAX_NAME_LEN
    p = Path(path)
    graphml = p.suffix.lower() in (".graphml", ".xml")
    field = field or ("fabric.custom.graphml" if graphml else "fabric.custom.edge_list")
    data = read_bytes(p, field, limit=MAX_DATA_FILE_BYTES, what="graph file")
    if graphml:
        import networkx as nx
        if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
            raise SpecError([(field, f"GraphML {str(p)!r} declares a DOCTYPE or entities; topo reads plain GraphML only")])
        try:
            g = nx.parse_graphml(decode(data, p, field, "GraphML"))
        except SpecError:
            raise
        except Exception as e:  # networkx and the XML parser raise several error types
            raise SpecError([(field, f"cannot read GraphML {str(p)!r}: {type(e).__name__}"
                                     + (f" at line {e.position[0]}" if hasattr(e, "position") else ""))])
        names = [str(n) for n in g.nodes]
        tiers, edges = [], []
        for n in g.nodes:
            t = g.nodes[n].get("tier", -1)
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t != int(t) or t < -1:
                raise SpecError([(field, f"GraphML {str(p)!r}: node {_clip(n)}: tier must be a whole number "
                                         "(0 for endpoints)")])
            tiers.append(int(t))
        for u, v, d in g.edges(data=True):
            gb = d.get("gbps")  # absent: the fabric's link_gbps; given: a positive finite number
            if gb is None:
                edges.append((str(u), str(v), np.nan))
                continue
            if isinstance(gb, bool) or not isinstance(gb, (int, float)) or not 0 < gb < math.inf:
                raise SpecError([(field, f"GraphML {str(p)!r}: edge {_clip(u)} - {_clip(v)}: gbps must be a positive "
                                         "finite number")])
            edges.append((str(u), str(v), float(gb)))
        long = [n for n in names if len(n) > MAX_NAME_LEN]
        if long:
            raise SpecError([(field, f"GraphML {str(p)!r}: a node name is {len(long[0])} characters; "
                                     f"at most {MAX_NAME_LEN}")])
        return names, tiers, edges
    text = decode(data, p, field, "edge list")
    names: dict[str, int] = {}
    edges = []
    for ln, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].replace(",", " ").split()
        if not line:
            continue
        if len(line) not in (2, 3):
            raise SpecError([(field, f"edge list {str(p)!r} line {ln}: expected 'u v [gbps]', found {len(line)} fields")])
        if any(len(x) > MAX_NAME_LEN for x in line[:2]):
            raise SpecError([(field, f"edge list {str(p)!r} line {ln}: a node name is longer than {MAX_NAME_LEN}")])
        try:
            gbps = float(line[2]) if len(line) == 3 else np.nan
        except ValueError:
            gbps = -1.0
        if len(line) == 3 and not 0 < gbps < math.inf:
            raise SpecError([(field, f"edge list {str(p)!r} line {ln}: the capacity is not a positive finite number")])
        for n in line[:2]:
            names.setdefault(n, len(names))
        edges.append((line[0], line[1], gbps))
    tiers = [0 if (n[0] == "e" and n[1:].isdigit()) else -1 for n in names]
    return list(names), tiers, edges


def _clip(n) -> str:
    s = repr(str(n))
    return s if len(s) <= 40 else s[:37] + "..."


def read_custom(cluster: Cluster, n_ep: int):
    """A custom graph (``fabric.custom``) as arrays, its endpoints matched to the cluster's `n_ep`
    endpoints in order: (node names in id order, lower end and upper end of every physical link,
    their Gb/s, node tiers, link tiers, switches per tier). :func:`topo.model.fabric.build` makes
    the fabric of them."""
    c = cluster.file.fabric.custom
    field = "fabric.custom.graphml" if c.graphml else "fabric.custom.edge_list"
    path = Path(cluster.base_dir) / (c.graphml or c.edge_list)
    names, tiers, edges = read_graph(path, field)
    ep_names = [n for n, t in zip(names, tiers) if t == 0]
    if len(ep_names) != n_ep:
        raise SpecError([(field, f"graph has {len(ep_names)} endpoint nodes (tier 0); the racks declare {n_ep}")])
    order = ep_names + [n for n, t in zip(names, tiers) if t != 0]
    idx = {n: i for i, n in enumerate(order)}
    lo = np.array([idx[u] for u, v, _ in edges], np.int64)
    hi = np.array([idx[v] for u, v, _ in edges], np.int64)
    gb = np.array([g for _, _, g in edges], np.float64)
    gb = np.where(np.isnan(gb), c.link_gbps, gb)
    if (gb <= 0).any():
        raise SpecError([(field, "link capacities must be positive")])
    # switch tier = hop distance from the nearest endpoint (leaf = 1)
    n = len(order)
    tier = np.full(n, -1, np.int64)
    tier[:n_ep] = 0
    nbr = [[] for _ in range(n)]
    for a, b in zip(lo.tolist(), hi.tolist()):
        nbr[a].append(b)
        nbr[b].append(a)
    frontier = list(range(n_ep))
    d = 0
    while frontier:
        d += 1
        nxt = []
        for a in frontier:
            for b in nbr[a]:
                if tier[b] < 0:
                    tier[b] = d
                    nxt.append(b)
        frontier = nxt
    if (tier < 0).any():
        raise SpecError([(field, f"{int((tier < 0).sum())} switches are not connected to any endpoint")])
    # orient each link from the lower tier
    swap = tier[lo] > tier[hi]
    lo2, hi2 = np.where(swap, hi, lo), np.where(swap, lo, hi)
    ltier = np.minimum(tier[lo2], 2).astype(np.int8)  # 0 endpoint-leaf, 1 leaf-up, 2 above
    if int(tier.max()) > 3:
        far = int((tier > 3).sum())
        raise SpecError([(field, f"{far} switches are more than 3 hops from the nearest endpoint; topo models "
                                 "fabrics of at most 3 switch tiers (leaf, spine, super-spine)")])
    counts = tuple(int((tier == t).sum()) for t in range(1, int(tier.max()) + 1))
    return order, lo2, hi2, gb, tier, ltier, counts
