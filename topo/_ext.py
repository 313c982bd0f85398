"""The switch between compiled kernels and their pure-Python twins.

``kernel("_cuts")`` returns the compiled ``topo._cuts`` unless the environment
sets TOPO_PURE_PYTHON=1, in which case it returns ``topo.pure._cuts``. If the
compiled module is missing the twin is used and a warning says so once; the
test suite imports the compiled modules directly so a broken build fails there.
"""
from __future__ import annotations

import importlib
import os
import warnings

PURE = os.environ.get("TOPO_PURE_PYTHON", "") == "1"
_cache: dict[str, object] = {}


def kernel(name: str):
    mod = _cache.get(name)
    if mod is not None:
        return mod
    if PURE:
        mod = importlib.import_module(f"topo.pure.{name}")
    else:
        try:
            mod = importlib.import_module(f"topo.{name}")
        except ImportError:
            warnings.warn(f"compiled kernel topo.{name} is not built; using the pure-Python twin (slow)",
                          RuntimeWarning, stacklevel=2)
            mod = importlib.import_module(f"topo.pure.{name}")
    _cache[name] = mod
    return mod
