"""The plan: the versioned, JSON-able record `topo optimize` writes.

Owns the plan's layout, its version, and reading it back. A plan holds the
cluster file it came from (and the file with the chosen link budget applied),
so every fabric, export and report can be rebuilt from the plan alone.
"""
from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SpecError

PLAN_VERSION = 1
REQUIRED_KEYS = ("plan_version", "cluster_file", "placement", "metrics_before")


def versions() -> dict[str, str]:
    """Versions of topo and the libraries whose results a plan depends on."""
    import networkx
    out = {"python": platform.python_version(), "numpy": np.__version__, "networkx": networkx.__version__}
    try:
        import ortools
        out["ortools"] = ortools.__version__
    except ImportError:  # pragma: no cover - ortools is a hard dependency
        out["ortools"] = "missing"
    from . import __version__
    out["topo"] = __version__
    return out


def to_jsonable(obj: Any) -> Any:
    """Recursively turn numpy values, tuples and dataclass results into JSON types."""
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return to_jsonable(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


# Cluster files keep their key order: the order of a rack's `nodes` mapping is the
# order of its servers, so sorting it would renumber servers and endpoints.
_ORDERED_KEYS = ("cluster_file", "cluster_file_after")


def dumps(plan: dict) -> str:
    """Deterministic JSON text of a plan (sorted keys except inside the cluster files, fixed indentation)."""
    data = to_jsonable(plan)
    marks = {k: f"\x00{k}\x00" for k in _ORDERED_KEYS if isinstance(data.get(k), dict)}
    text = json.dumps({k: marks.get(k, v) for k, v in data.items()}, indent=1, sort_keys=True, allow_nan=False)
    for k, mark in marks.items():
        ordered = json.dumps(data[k], indent=1, allow_nan=False).replace("\n", "\n ")
        text = text.replace(json.dumps(mark), ordered, 1)
    return text + "\n"


def load_plan(path) -> dict:
    """Read a plan written by `topo optimize`; SpecError naming what is wrong."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as e:
        raise SpecError([("(file)", f"cannot read {p}: {e.strerror}")], str(p))
    except json.JSONDecodeError as e:
        raise SpecError([("(file)", f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}")], str(p))
    if not isinstance(data, dict):
        raise SpecError([("(root)", "a plan is a JSON object")], str(p))
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise SpecError([(k, "missing: not a topo plan") for k in missing], str(p))
    if data["plan_version"] != PLAN_VERSION:
        raise SpecError([("plan_version", f"this topo reads plan version {PLAN_VERSION}, found {data['plan_version']!r}")], str(p))
    return data


def plan_cluster(plan: dict, after: bool = True, base_dir: str = "."):
    """The Cluster of a plan (with its link budget applied when `after`)."""
    from .spec import from_dict
    key = "cluster_file_after" if after and plan.get("cluster_file_after") else "cluster_file"
    return from_dict(plan[key], source=f"plan:{key}", base_dir=base_dir)


def plan_assignment(plan: dict) -> dict[str, np.ndarray]:
    """Job name -> endpoint ids (rank order) from a plan's placement."""
    a = plan["placement"].get("assignment", {})
    return {k: np.asarray(v, dtype=np.int64) for k, v in a.items()}


def new_plan(**sections) -> dict:
    """A plan dict with the version header filled in."""
    plan = {"plan_version": PLAN_VERSION, "versions": versions(),
            "topo_version": versions()["topo"],
            "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat()}
    plan.update(sections)
    return to_jsonable(plan)
