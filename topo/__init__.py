"""topo: accelerator-cluster network-topology optimizer.

Stable public API (documented in README.md):

* ``load(path)``, ``from_dict(data)`` -> :class:`Cluster` (validated, frozen)
* ``build(cluster)`` -> :class:`Fabric` (numpy arrays); ``describe(fabric, cluster)``
* ``analyze(cluster, ...)`` -> routed congestion metrics (``topo.routing.engine``)
* ``place(cluster, ...)`` -> job placement (``topo.solve.placement``)
* ``budget(cluster, ...)`` -> link budget and bill of materials (``topo.solve.linkbudget``)
* ``design(cluster, ...)`` -> design search: candidates, Pareto front, chosen design (``topo.solve.design``)
* ``optimize(cluster, ...)`` -> plan dict; ``load_plan(path)``; ``write_report(plan, dir)``
* ``export(fmt, fabric, plan, dir)``; ``write_graphml(fabric, path)``
* ``analyze_failures(cluster, ...)``; ``goodput(cluster, ...)`` (interruptions, checkpoints, goodput per job);
  ``run_sweep(sweep_file, out_dir, ...)``
* ``serving(cluster, ...)`` -> the serving replicas placed (CP-SAT or in order) and their traffic routed
  (``topo.solve.serving_place``, ``topo.routing.serving``)
* errors: ``TopoError``, ``SpecError`` (bad input, exit 2), ``SolverError`` (exit 1)

Heavy modules (OR-Tools, matplotlib) are imported on first use.
"""
from __future__ import annotations

from importlib import import_module

from topo.routing.describe import describe
from topo.core.errors import SolverError, SpecError, TopoError
from topo.model.fabric import Fabric, build
from topo.model.spec import Cluster, from_dict, json_schema, load

try:
    from importlib.metadata import version as _v
    __version__ = _v("topo")
except Exception:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

_LAZY = {
    "analyze": ("topo.routing.engine", "analyze"),
    "route": ("topo.routing.engine", "route"),
    "job_demands": ("topo.traffic.demand", "job_demands"),
    "place": ("topo.solve.placement", "place"),
    "budget": ("topo.solve.linkbudget", "budget"),
    "design": ("topo.solve.design", "design"),
    "optimize": ("topo.pipeline", "optimize"),
    "save": ("topo.pipeline", "save"),
    "load_plan": ("topo.io.plan", "load_plan"),
    "write_report": ("topo.io.report", "write_report"),
    "export": ("topo.io.exports", "export"),
    "write_graphml": ("topo.io.exports", "write_graphml"),
    "analyze_failures": ("topo.study.failures", "analyze_failures"),
    "goodput": ("topo.study.goodput", "goodput"),
    "run_sweep": ("topo.study.sweep", "run_sweep"),
    "serving": ("topo.solve.serving_place", "serving"),
}


def __getattr__(name: str):
    if name in _LAZY:
        mod, attr = _LAZY[name]
        value = getattr(import_module(mod), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'topo' has no attribute {name!r}")


__all__ = ["Cluster", "Fabric", "SolverError", "SpecError", "TopoError", "build", "describe", "from_dict",
           "json_schema", "load", "__version__"]
__all__ += list(_LAZY)
