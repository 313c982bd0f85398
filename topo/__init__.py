"""topo: accelerator-cluster network-topology optimizer.

Public API (stable): load, from_dict, build, describe, Cluster, Fabric,
SpecError, SolverError, TopoError.
"""
from __future__ import annotations

from .errors import SolverError, SpecError, TopoError
from .fabric import Fabric, build
from .spec import Cluster, from_dict, json_schema, load
from .describe import describe

try:
    from importlib.metadata import version as _v
    __version__ = _v("topo")
except Exception:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

__all__ = ["Cluster", "Fabric", "SolverError", "SpecError", "TopoError", "build", "describe",
           "from_dict", "json_schema", "load", "__version__"]
