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
    errs = plan_shape_errors(data)
    if errs:
        raise SpecError(errs, str(p))
    return data


_DICT_KEYS = ("cluster_file", "placement")
_OPT_DICT_KEYS = ("cluster_file_after", "budget", "failures", "describe_before", "describe_after", "solver",
                  "timings_s", "versions", "metrics_before", "metrics_placed", "metrics_after")


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def plan_shape_errors(data: dict) -> list[tuple[str, str]]:
    """(JSON path, message) for every part of a plan that reports and exports read and that
    does not have the shape `topo optimize` writes (a hand-edited or truncated plan)."""
    errs: list[tuple[str, str]] = []

    def kind(x):
        return "null" if x is None else type(x).__name__

    for k in _DICT_KEYS:
        if not isinstance(data.get(k), dict):
            errs.append((k, f"expected an object, found {kind(data.get(k))}"))
    for k in _OPT_DICT_KEYS:
        if k in data and data[k] is not None and not isinstance(data[k], dict):
            errs.append((k, f"expected an object or null, found {kind(data[k])}"))
    pl = data.get("placement") if isinstance(data.get("placement"), dict) else {}
    a = pl.get("assignment", {})
    if not isinstance(a, dict):
        errs.append(("placement.assignment", f"expected an object of job name -> endpoint ids, found {kind(a)}"))
    else:
        for job, eps in a.items():
            if not isinstance(eps, list) or not all(isinstance(e, int) and not isinstance(e, bool) for e in eps):
                errs.append((f"placement.assignment.{job}", "expected a list of endpoint ids (integers)"))
    for key, want in (("unplaced", dict), ("racks", list), ("jobs", (dict, list)), ("totals", dict), ("baseline", dict)):
        if key in pl and pl[key] is not None and not isinstance(pl[key], want):
            errs.append((f"placement.{key}", f"unexpected {kind(pl[key])}"))
    for i, r in enumerate(pl.get("racks") or [] if isinstance(pl.get("racks"), list) else []):
        if not isinstance(r, dict) or not all(_num(r.get(f)) or r.get(f) is None for f in ("kw", "limit_kw")):
            errs.append((f"placement.racks[{i}]", "expected an object with numeric kw and limit_kw"))
            break
    for m in ("metrics_before", "metrics_placed", "metrics_after"):
        md = data.get(m)
        if not isinstance(md, dict):
            continue
        for key in ("tiers", "jobs", "hottest"):
            v = md.get(key)
            if v is not None and (not isinstance(v, list) or not all(isinstance(x, dict) for x in v)):
                errs.append((f"{m}.{key}", "expected a list of objects"))
        for i, t in enumerate(md.get("jobs") or [] if isinstance(md.get("jobs"), list) else []):
            if isinstance(t, dict) and any(t.get(f) is not None and not _num(t.get(f)) for f in ("time_s", "ideal_s", "busbw_gbps")):
                errs.append((f"{m}.jobs[{i}]", "time_s, ideal_s and busbw_gbps must be numbers"))
        for i, t in enumerate(md.get("tiers") or [] if isinstance(md.get("tiers"), list) else []):
            if isinstance(t, dict) and any(k.startswith("util") and v is not None and not _num(v) for k, v in t.items()):
                errs.append((f"{m}.tiers[{i}]", "utilisation figures must be numbers"))
        lu = md.get("link_util")
        if lu is not None and (not isinstance(lu, list) or not all(_num(x) or x is None for x in lu)):
            errs.append((f"{m}.link_util", "expected a list of numbers, one per directed link"))
        pm = md.get("pod_matrix_gbps")
        if pm is not None and (not isinstance(pm, list) or not all(isinstance(r, list) and len(r) == len(pm)
                                                                    and all(_num(x) for x in r) for r in pm)):
            errs.append((f"{m}.pod_matrix_gbps", "expected a square matrix of numbers"))
        for key in ("roce_vs_uec", "scaleup"):
            if md.get(key) is not None and not isinstance(md.get(key), dict):
                errs.append((f"{m}.{key}", f"expected an object, found {kind(md.get(key))}"))
    return errs


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
