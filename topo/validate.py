"""`topo validate`: every check that does not need a solver.

A file `validate` accepts is one `optimize` accepts: the schema and the
cross-field rules (:mod:`topo.model.spec`), the fabric the file implies
(:func:`topo.model.fabric.build`: radix, tiers, custom graphs), the placement
problem's inputs (pins, forbidden racks and pods, explicit nodes, busy nodes,
power: :class:`topo.solve.placement._Problem`, built without solving) and the traffic
patterns (matrix CSVs read and every name resolved). A queue larger than the
free accelerators is not an error: the jobs that do not fit wait.
"""
from __future__ import annotations

from topo.model.spec import Cluster


def validate(cluster: Cluster, fabric=None) -> dict:
    """Run every solver-free check on ``cluster``; raise SpecError naming each
    problem's JSON path. Returns the counts `topo validate` prints."""
    from topo.model.fabric import build
    from topo.solve.placement import _Problem, _fd_setup
    from topo.traffic.demand import pattern_demands
    if fabric is None:
        fabric = build(cluster)
    if cluster.file.jobs:
        pb = _Problem(cluster, fabric)
        # a failure-domain rule no placement can keep (a share below one unit, too few domains)
        _fd_setup(pb, cluster.file.goals.failure_domains, "goals.failure_domains")
    if cluster.file.traffic:
        pattern_demands(cluster, fabric)
    if cluster.file.front_end is not None:   # the front-end fabric's builder refusals, under front_end
        from topo.model.frontend_build import build as build_front_end
        build_front_end(cluster)
    return {**cluster.counts(), "fabric_nodes": int(fabric.n_nodes), "links": int(fabric.n_links)}
