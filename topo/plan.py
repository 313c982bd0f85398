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


_DESCRIBE_FIELDS = {"tiers": "records", "bill_of_materials": dict, "links": dict, "rack_power": dict,
                    "scaleup_domains": dict, "accelerators": "number", "nodes": "number", "racks": "number",
                    "bisection_gbps": "number", "network_cost_usd": "number", "network_kw": "number",
                    "planes": "number", "pods": "number", "name": str, "family": str}
_SECTION_FIELDS = {
    "describe_before": _DESCRIBE_FIELDS, "describe_after": _DESCRIBE_FIELDS,
    "budget": {"tiers": "records", "bill_of_materials": dict, "cost": dict, "utilization": dict, "headroom": dict,
               "network_power": dict, "solver": dict, "alternatives": dict, "check": dict,
               "transport_check": dict, "target_utilization": "number", "objective": str, "survive": str},
    "failures": {"single": "records", "k": dict, "expected_loss": dict, "traffic": dict},
    "placement": {"jobs": (dict, list), "racks": "records", "totals": dict, "baseline": dict, "solver": dict,
                  "stranded": dict, "unplaced": dict, "note": str, "status": str},
    "solver": {"budget": dict, "placement": dict},
}


_TEXT_FIELDS = {"tier", "model", "model_as_given", "part", "reach", "kind", "name"}
_NUMBER_SUFFIXES = ("_usd", "_kw", "kw", "_gbps", "gbps", "count", "switches", "switches_as_given", "uplinks",
                    "oversubscription", "oversubscription_as_given", "units", "links", "radix", "breakout",
                    "bundle", "_ports", "_each", "_per_switch", "endpoints_down", "endpoints_isolated")


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _numeric_list(x) -> bool:
    """A flat list of numbers (nulls allowed), checked in numpy (link lists are long)."""
    if not isinstance(x, list):
        return False
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return arr.ndim == 1


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
            try:
                arr = np.asarray(eps) if isinstance(eps, list) else None
            except (TypeError, ValueError):  # ragged lists
                arr = None
            if arr is None or arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
                errs.append((f"placement.assignment.{job}", "expected a list of endpoint ids (integers)"))
    for i, r in enumerate(pl.get("racks") or [] if isinstance(pl.get("racks"), list) else []):
        if not isinstance(r, dict) or not all(_num(r.get(f)) or r.get(f) is None for f in ("kw", "limit_kw")):
            errs.append((f"placement.racks[{i}]", "expected an object with numeric kw and limit_kw"))
            break
    # the sections' own fields, by the kind topo writes them (a missing field is allowed: the
    # report says "not computed"; a field of another kind is an error)
    for sec, fields in _SECTION_FIELDS.items():
        sd = data.get(sec)
        if not isinstance(sd, dict):
            continue
        for key, want in fields.items():
            v = sd.get(key)
            if v is None:
                continue
            ok = (_num(v) if want == "number" else
                  isinstance(v, list) and all(isinstance(x, dict) for x in v) if want == "records" else
                  isinstance(v, want))
            if not ok:
                what = ({"number": "a number", "records": "a list of objects"}[want] if isinstance(want, str) else
                        " or ".join({"dict": "an object", "list": "a list", "str": "a string"}[w.__name__]
                                    for w in (want if isinstance(want, tuple) else (want,))))
                errs.append((f"{sec}.{key}", f"expected {what}, found {kind(v)}"))
    # records (tiers, bill-of-materials rows, failure rows): names are strings, figures numbers
    lists = [(f"{d}.tiers", (data.get(d) or {}).get("tiers") if isinstance(data.get(d), dict) else None)
             for d in ("describe_before", "describe_after", "budget")]
    for dkey in ("describe_before", "describe_after", "budget"):
        bom = data.get(dkey).get("bill_of_materials") if isinstance(data.get(dkey), dict) else None
        if isinstance(bom, dict):
            for key in ("switches", "optics"):
                v = bom.get(key)
                if v is not None and (not isinstance(v, list) or not all(isinstance(x, dict) for x in v)):
                    errs.append((f"{dkey}.bill_of_materials.{key}", "expected a list of objects"))
                else:
                    lists.append((f"{dkey}.bill_of_materials.{key}", v))
    if isinstance(data.get("failures"), dict):
        lists.append(("failures.single", data["failures"].get("single")))
    for where, rows in lists:
        for i, row in enumerate(rows if isinstance(rows, list) else []):
            if not isinstance(row, dict):
                continue
            for key, v in row.items():
                if v is None:
                    continue
                if key in _TEXT_FIELDS and not isinstance(v, str):
                    errs.append((f"{where}[{i}].{key}", f"expected a string, found {kind(v)}"))
                elif key.endswith(_NUMBER_SUFFIXES) and not _num(v):
                    errs.append((f"{where}[{i}].{key}", f"expected a number, found {kind(v)}"))
    for m in ("metrics_before", "metrics_placed", "metrics_after"):
        md = data.get(m)
        if not isinstance(md, dict):
            continue
        for key in ("tiers", "jobs", "hottest"):
            v = md.get(key)
            if v is not None and (not isinstance(v, list) or not all(isinstance(x, dict) for x in v)):
                errs.append((f"{m}.{key}", "expected a list of objects"))
        for i, t in enumerate(md.get("jobs") or [] if isinstance(md.get("jobs"), list) else []):
            for fld in ("time_s", "ideal_s", "busbw_gbps", "slowdown"):
                if isinstance(t, dict) and t.get(fld) is not None and not _num(t.get(fld)):
                    errs.append((f"{m}.jobs[{i}].{fld}", f"expected a number, found {kind(t.get(fld))}"))
        for i, t in enumerate(md.get("tiers") or [] if isinstance(md.get("tiers"), list) else []):
            if isinstance(t, dict) and any(k.startswith("util") and v is not None and not _num(v) for k, v in t.items()):
                errs.append((f"{m}.tiers[{i}]", "utilisation figures must be numbers"))
        lu = md.get("link_util")
        if lu is not None and not _numeric_list(lu):
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
