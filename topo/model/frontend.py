"""The front-end fabric: a second network over the same racks, one endpoint per node.

Owns the cluster file's ``front_end`` section after the schema: its cross-field rules (every
problem with its JSON path), the back-end racks it leaves (node types with ``back_end: false``
are left out of the back-end fabric) and the front-end fabric itself. The front-end fabric is
built by the same builder (:func:`topo.model.fabric.build`, called by
:mod:`topo.model.frontend_build`, which the spec cannot import) from a derived cluster: the same
racks, floor, catalog and transport, the fabric ``front_end.fabric``, and every node type turned
into a node without accelerators whose NICs are its front-end NICs, so each node is exactly one
endpoint. Describe, routing, failures and exports then work on it unchanged. A node takes its own NICs
there only when it has no accelerators and is left out of the back-end (``back_end: false``); any
other node's front-end NICs are stated. The derived cluster's errors are reported under ``front_end``
only where the front end owns them (its fabric, its node types): a problem in a shared section (racks,
transport, ...) is the file's own and reported once, at its own path.

Names: front-end endpoint ``i`` is node (host) ``i``, named ``<host>-g0`` (``n0003-g0`` is host
n0003's front-end NIC(s)); racks keep their names. Host ``i`` of the back-end fabric is host ``i``
here too: the rules below make the nodes left out of the back-end the last ones, and refuse a
file where the names' widths would differ.

This module must not import the fabric builder (the spec imports it), traffic, routing or anything above
the model layer.
"""
from __future__ import annotations

from typing import Optional

from topo.core.errors import SpecError

FRONT_END = "front-end"
BACK_END = "back-end"
FABRICS = (BACK_END, FRONT_END)


def _fe_only(f) -> set:
    fe = f.front_end
    return {n for n, x in fe.node_types.items() if not x.back_end} if fe is not None else set()


def _own_nics(x, nt) -> bool:
    """Whether a front-end entry may take its node's own NICs: only a node without accelerators that is
    left out of the back-end (``back_end: false``); any other node's own NICs are cabled to the back-end."""
    return not nt.accelerators and not x.back_end


def _nics(x, nt) -> tuple[Optional[int], Optional[float], int, bool]:
    """(nics, nic_gbps, nic_ports, derived) of a front-end entry over its resolved node type: a node
    without accelerators and left out of the back-end takes its own NICs (count, speed and ports per NIC)
    where the entry leaves them out."""
    derived = False
    nics, gbps = x.nics, x.nic_gbps
    ports = x.nic_ports if x.nic_ports is not None else 1
    if _own_nics(x, nt):
        if nics is None:
            nics, derived = nt.nics, True
        if gbps is None:
            gbps, derived = nt.nic_gbps, True
        if x.nic_ports is None:
            ports, derived = nt.nic_ports, True
    return nics, gbps, ports, derived


def front_end_errors(f, node_types: dict, source: str = "", base_dir: str = ".") -> list:
    """(path, message) for every front_end entry that cannot be honoured exactly; then the front-end
    fabric's own rules, checked as the back-end's are, on the derived cluster (paths under front_end)."""
    fe = f.front_end
    errs: list = []
    used = [t for r in f.racks for t in r.nodes]
    for name, x in fe.node_types.items():
        p = f"front_end.node_types.{name}"
        nt = node_types.get(name)
        if nt is None:
            if name not in {t.name for t in f.node_types}:
                errs.append((p, f"unknown node type {name!r}; expected one of {sorted(t.name for t in f.node_types)}"))
            continue
        nics, gbps, _, _ = _nics(x, nt)
        why = ("a node with accelerators needs its front-end NICs stated (its own nics are its back-end rails)"
               if nt.accelerators else
               f"{name!r} is on the back-end fabric (back_end: true, the default), where its own NICs are cabled: "
               f"state its front-end NICs, or set back_end: false to put its own NICs on the front-end only")
        if nics is None:
            errs.append((f"{p}.nics", f"missing: {why}"))
        if gbps is None:
            errs.append((f"{p}.nic_gbps", f"missing: {why}"))
        if not x.back_end and nt.accelerators:
            errs.append((f"{p}.back_end", f"{name!r} has {nt.accelerators} accelerators; only a node without "
                                          f"accelerators can be left out of the back-end fabric"))
    for t in dict.fromkeys(used):
        if t in node_types and t not in fe.node_types:
            errs.append(("front_end.node_types", f"missing node type {t!r}: every node type in the racks needs its "
                                                 f"front-end NICs (a node without one is not supported)"))
    only = _fe_only(f)
    if used and all(t in only for t in used):
        t = sorted(set(used) & only)[0]
        errs.append((f"front_end.node_types.{t}.back_end",
                     "every node in the racks is left out of the back-end fabric (back_end: false), which would "
                     "have no endpoints; keep at least one node type on it"))
    if fe.fabric.family in ("rail_optimized", "rail_only"):
        errs.append(("front_end.fabric.family",
                     f"{fe.fabric.family} gives each accelerator's NIC its rail; the front-end fabric has one "
                     f"endpoint per host and no accelerators: use clos, fat_tree or custom"))
    errs.extend(_order_errors(f, node_types))
    if errs or any(t not in node_types for t in fe.node_types):
        return errs     # (a node type the file itself gets wrong is reported there)
    return _derived_errors(f, node_types, source, base_dir)


def _order_errors(f, node_types: dict) -> list:
    """Nodes left out of the back-end fill whole rack types listed after every other rack type, and the
    host and rack names keep their width, so that names are the same on both fabrics."""
    only = _fe_only(f)
    if not only:
        return []
    errs = []
    seen_fe_rack = None
    n_all = n_be = r_all = r_be = 0
    for i, r in enumerate(f.racks):
        kinds = {t in only for t in r.nodes}
        if True in kinds and False in kinds:
            t = next(t for t in r.nodes if t in only)
            errs.append((f"racks[{i}].nodes.{t}", f"{t!r} is left out of the back-end fabric (back_end: false) and "
                                                  f"shares its rack type with back-end nodes; give it rack types of "
                                                  f"its own, listed after the others"))
        elif kinds == {True}:
            seen_fe_rack = i if seen_fe_rack is None else seen_fe_rack
        elif seen_fe_rack is not None:
            errs.append((f"racks[{seen_fe_rack}]", f"holds only front-end nodes but comes before racks[{i}], which "
                                                   f"holds back-end nodes: list it after them so host names are the "
                                                   f"same on both fabrics"))
            seen_fe_rack = None
        n = r.count * sum(r.nodes.values())
        n_all, r_all = n_all + n, r_all + r.count
        if kinds != {True}:
            n_be, r_be = n_be + n, r_be + r.count

    def width(n, w):
        return max(w, len(str(max(n - 1, 0))))
    if not errs and (width(n_all, 4) != width(n_be, 4) or width(r_all, 3) != width(r_be, 3)):
        t = sorted(only)[0]
        errs.append((f"front_end.node_types.{t}.back_end",
                     f"the back-end fabric would have {n_be:,} nodes in {r_be:,} racks and the front-end {n_all:,} "
                     f"in {r_all:,}: host or rack names would have a different number of digits on the two fabrics; "
                     f"not supported"))
    return errs


def derived_file(f, node_types: dict):
    """The cluster file of the front-end fabric: the same racks, floor, catalog, transport, goals and
    costs; ``front_end.fabric`` as its fabric; every node type a node without accelerators whose NICs are
    its front-end NICs (power as the node's); no jobs, traffic, deployments or busy nodes."""
    from topo.model.spec import NodeType, Requirements, Serving
    fe = f.front_end
    nts = []
    for t in f.node_types:
        x = fe.node_types.get(t.name)
        if x is None or t.name not in node_types:     # in no rack, or refused in the file itself
            continue
        nt = node_types[t.name]
        nics, gbps, ports, _ = _nics(x, nt)
        nts.append(NodeType(name=t.name, accelerators=0, nics=nics, nic_gbps=gbps, nic_ports=ports,
                            power_busy_kw=nt.power_busy_kw, power_idle_kw=nt.power_idle_kw))
    return f.model_copy(update={
        "name": f.name, "node_types": nts, "fabric": fe.fabric, "jobs": [], "traffic": [], "busy_nodes": [],
        "serving": Serving(), "requirements": Requirements(), "front_end": None})


def _rename(path: str, f) -> Optional[str]:
    """A derived cluster's error path as a path in the cluster file; None for a path in a section the
    derived cluster shares with the file (racks, floor, catalog, transport, ...), which the file's own
    checks report under its own path."""
    import re
    m = re.match(r"node_types\[(\d+)\](.*)", path)
    if m:
        names = [t.name for t in f.node_types if t.name in f.front_end.node_types]
        return f"front_end.node_types.{names[int(m.group(1))]}{m.group(2)}"
    return "front_end." + path if path == "fabric" or path.startswith(("fabric.", "fabric[")) else None


def renamed(errors, f) -> list:
    """The derived cluster's errors the front end owns (its node types and its fabric), under front_end."""
    return [(q, m) for q, m in ((_rename(p, f), m) for p, m in errors) if q is not None]


def all_renamed(errors, f) -> list:
    """Every error of the derived cluster, under front_end (a shared section's path in parentheses): for
    the builder and for the derived cluster resolved after validation, where no file check reports it."""
    return [(_rename(p, f) or f"front_end ({p})", m) for p, m in errors]


def _derived_errors(f, node_types: dict, source: str, base_dir: str) -> list:
    from topo.model.spec import _resolve
    try:
        _resolve(derived_file(f, node_types), source, base_dir)
    except SpecError as e:
        return renamed(e.errors, f)
    return []


def back_end_racks(f, node_types: dict, racks: list) -> tuple[list, int]:
    """The resolved racks without the node types left out of the back-end (a rack type left empty is
    dropped), and the endpoints they hold."""
    only = _fe_only(f)
    out = []
    for r in racks:
        nodes = {t: n for t, n in r.nodes.items() if t not in only}
        if nodes:
            out.append(r.model_copy(update={"nodes": nodes}) if len(nodes) != len(r.nodes) else r)
    total = sum(r.count * n * max(node_types[t].accelerators, 1) for r in out for t, n in r.nodes.items()
                if t in node_types)
    return out, total


def front_end_cluster(cluster):
    """The derived cluster of the front-end fabric (see the module docstring); SpecError without front_end."""
    from topo.model.spec import _resolve
    f = cluster.file
    if f.front_end is None:
        raise SpecError([("front_end", "missing: the cluster file states no front-end fabric")])
    try:
        return _resolve(derived_file(f, cluster.node_types), "", cluster.base_dir)
    except SpecError as e:
        raise SpecError(all_renamed(e.errors, f), e.source) from None


def derived_values(cluster) -> list[dict]:
    """The front-end values derived rather than read, as describe lists them."""
    f = cluster.file
    out = []
    for name, x in f.front_end.node_types.items():
        nt = cluster.node_types[name]
        nics, gbps, ports, derived = _nics(x, nt)
        if derived:
            out.append({"what": f"front_end.node_types.{name}",
                        "value": f"{nics} x {gbps:g}G, {ports} port(s) per NIC",
                        "rule": "a node without accelerators, left out of the back-end, takes its own nics, "
                                "nic_gbps and nic_ports", "stated": False})
        if not x.back_end:
            out.append({"what": f"node type {name}", "value": "front-end only",
                        "rule": "back_end: false leaves it out of the back-end fabric", "stated": True})
    return out


def platform_unverified(cluster) -> list[dict]:
    """The unverified figures (the catalog's ``unverified`` lists) of the platforms behind the front-end
    fabric's node types, which the derived cluster states outright and so no longer marks: every figure
    the file's node type does not state itself, less the NIC figures the front_end entry states or does not
    take from the node. Listed as :func:`topo.routing.describe.unverified_figures` lists them."""
    from topo.model import catalog
    f = cluster.file
    out = []
    for nt in f.node_types:
        x = f.front_end.node_types.get(nt.name)
        entry = catalog.PLATFORMS.get(nt.platform) if nt.platform else None
        if x is None or entry is None or nt.name not in cluster.node_types:
            continue
        own = _own_nics(x, cluster.node_types[nt.name])
        given = set(nt.model_dump(exclude_unset=True))
        given |= {k for k in ("nics", "nic_gbps", "nic_ports") if not own or getattr(x, k) is not None}
        fields = sorted(k for k in entry.get("unverified", []) if k not in given)
        if fields:
            out.append({"kind": "platform", "name": nt.platform, "fields": fields, "source": entry.get("source", "")})
    return out
