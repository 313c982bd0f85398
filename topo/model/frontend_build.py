"""Building the front-end fabric and choosing the fabric a per-fabric command acts on.

Kept apart from :mod:`topo.model.frontend` (which the cluster file's validation imports) because it
imports the fabric builder, which the spec may not reach.
"""
from __future__ import annotations

from topo.core.errors import SpecError
from topo.model.frontend import BACK_END, FABRICS, FRONT_END, all_renamed, front_end_cluster


def build(cluster):
    """The front-end fabric as arrays (:class:`topo.model.fabric.Fabric`), endpoint i = host i; the
    builder's refusals (a spine radix too small, ...) named by their path under ``front_end``."""
    return _built(cluster, front_end_cluster(cluster))


def _built(cluster, fc):
    from topo.model.fabric import build as build_fabric
    try:
        return build_fabric(fc)
    except SpecError as e:
        raise SpecError(all_renamed(e.errors, cluster.file), e.source) from None


def for_fabric(cluster, which: str):
    """(cluster, fabric) a per-fabric command works on: the cluster itself and its back-end fabric, or the
    derived front-end cluster and the front-end fabric; SpecError (path ``fabric``) for another name."""
    from topo.model.fabric import build as build_fabric
    if which == BACK_END:
        return cluster, build_fabric(cluster)
    if which != FRONT_END:
        raise SpecError([("fabric", f"expected one of {list(FABRICS)} (found {which!r})")])
    fc = front_end_cluster(cluster)
    return fc, _built(cluster, fc)
