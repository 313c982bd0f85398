"""topo: accelerator-cluster network-topology optimizer.

Stable public API (documented in README.md):

* ``load(path)``, ``from_dict(data)`` -> :class:`Cluster` (validated, frozen)
* ``build(cluster)`` -> :class:`Fabric` (numpy arrays); ``describe(fabric, cluster)``
* ``analyze(cluster, ...)`` -> routed congestion metrics (``topo.routing``)
* ``place(cluster, ...)`` -> job placement (``topo.placement``)
* ``budget(cluster, ...)`` -> link budget and bill of materials (``topo.linkbudget``)
* ``optimize(cluster, ...)`` -> plan dict; ``load_plan(path)``; ``write_report(plan, dir)``
* ``export(fmt, fabric, plan, dir)``; ``write_graphml(fabric, path)``
* ``analyze_failures(cluster, ...)``; ``run_sweep(sweep_file, out_dir, ...)``
* errors: ``TopoError``, ``SpecError`` (bad input, exit 2), ``SolverError`` (exit 1)

Heavy modules (OR-Tools, matplotlib) are imported on first use.
"""
from __future__ import annotations

from importlib import import_module

from .describe import describe
from .errors import SolverError, SpecError, TopoError
from .fabric import Fabric, build
from .spec import Cluster, from_dict, json_schema, load

try:
    from importlib.metadata import version as _v
    __version__ = _v("topo")
except Exception:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

_LAZY = {
    "analyze": ("topo.routing", "analyze"),
    "route": ("topo.routing", "route"),
    "job_demands": ("topo.traffic", "job_demands"),
    "place": ("topo.placement", "place"),
    "budget": ("topo.linkbudget", "budget"),
    "optimize": ("topo.pipeline", "optimize"),
    "save": ("topo.pipeline", "save"),
    "load_plan": ("topo.plan", "load_plan"),
    "write_report": ("topo.report", "write_report"),
    "export": ("topo.exports", "export"),
    "write_graphml": ("topo.exports", "write_graphml"),
    "analyze_failures": ("topo.failures", "analyze_failures"),
    "run_sweep": ("topo.sweep", "run_sweep"),
}


def __getattr__(name: str):
    if name in _LAZY:
        mod, attr = _LAZY[name]
        value = getattr(import_module(mod), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'topo' has no attribute {name!r}")


__all__ = ["Cluster", "Fabric", "SolverError", "SpecError", "TopoError", "build", "describe", "from_dict",
           "json_schema", "load", "__version__", *_LAZY]
