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

import numpy as np

from topo.core.jsonable import to_jsonable  # noqa: F401 (re-exported)

from topo.core.errors import SpecError

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
    from topo import __version__
    out["topo"] = __version__
    return out



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
    from topo.core.inputs import parse_json, read_text
    from topo.core.limits import MAX_PLAN_BYTES
    p = Path(path)
    data = parse_json(read_text(p, "(file)", limit=MAX_PLAN_BYTES, what="plan"), str(p), walk=False)
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
_OPT_DICT_KEYS = ("cluster_file_after", "budget", "failures", "goodput", "describe_before", "describe_after", "solver",
                  "timings_s", "versions", "metrics_before", "metrics_placed", "metrics_after")

# What reports and exports read, by the kind topo writes it: "number", "numbers" (a flat list
# of numbers), "matrix" (square, of numbers), "records" (a list of objects whose rows are then
# checked field by field), or Python types. Dotted keys reach into nested objects.
_BOM = {"bill_of_materials": dict, "bill_of_materials.switches": "records", "bill_of_materials.optics": "records"}
_DESCRIBE = {"tiers": "records", "links": dict, "rack_power": dict, "scaleup_domains": dict, **_BOM,
             "accelerators": "number", "nodes": "number", "racks": "number", "bisection_gbps": "number",
             "network_cost_usd": "number", "network_kw": "number", "planes": "number", "pods": "number",
             "name": str, "family": str}
_METRICS = {"tiers": "records", "jobs": "records", "hottest": "records", "roce_vs_uec": dict, "scaleup": dict,
            "link_util": "numbers", "pod_matrix_gbps": "matrix"}
_SECTION_FIELDS = {
    "describe_before": _DESCRIBE, "describe_after": _DESCRIBE,
    "metrics_before": _METRICS, "metrics_placed": _METRICS, "metrics_after": _METRICS,
    "budget": {"tiers": "records", "cost": dict, "utilization": dict, "headroom": dict, "network_power": dict,
               "solver": dict, "alternatives": dict, "check": dict, "transport_check": dict, **_BOM,
               "requirements": dict,
               "target_utilization": "number", "objective": str, "survive": str},
    "failures": {"single": "records", "k": dict, "expected_loss": dict, "traffic": dict},
    "goodput": {"jobs": "records", "totals": dict, "blast_radius": dict, "scaling": "records", "checkpoint": dict,
                "rates_per_hour": dict, "run_days": "number"},
    "placement": {"assignment": dict, "jobs": (dict, list), "racks": "records", "totals": dict, "baseline": dict,
                  "solver": dict, "stranded": dict, "unplaced": dict, "note": str, "status": str},
    "solver": {"budget": dict, "placement": dict},
}
# fields of records: names are strings, figures numbers (by name)
_TEXT_FIELDS = {"tier", "model", "model_as_given", "part", "reach", "kind", "name", "rack", "link"}
_NUMBER_SUFFIXES = ("_usd", "kw", "gbps", "count", "switches", "switches_as_given", "uplinks", "oversubscription",
                    "oversubscription_as_given", "units", "links", "radix", "breakout", "bundle", "_ports", "_each",
                    "_per_switch", "endpoints_down", "endpoints_isolated", "time_s", "ideal_s", "imbalance")
_KIND_NAMES = {"number": "a number", "numbers": "a list of numbers", "matrix": "a square matrix of numbers",
               "records": "a list of objects", "dict": "an object", "list": "a list", "str": "a string"}


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _numbers(x) -> bool:
    """A flat list of numbers (nulls allowed), checked in numpy (link lists are long)."""
    try:
        return isinstance(x, list) and np.asarray(x, dtype=np.float64).ndim == 1
    except (TypeError, ValueError):
        return False


def _is(v, want) -> bool:
    if want == "number":
        return _num(v)
    if want == "numbers":
        return _numbers(v)
    if want == "matrix":
        return isinstance(v, list) and all(isinstance(r, list) and len(r) == len(v) and all(_num(x) for x in r)
                                           for r in v)
    if want == "records":
        return isinstance(v, list) and all(isinstance(x, dict) for x in v)
    return isinstance(v, want)


def plan_shape_errors(data: dict) -> list[tuple[str, str]]:
    """(JSON path, message) for every part of a plan that reports and exports read and that
    does not have the kind `topo optimize` writes (a hand-edited or truncated plan). A
    missing field is allowed (the report says "not computed")."""
    def kind(x):
        return "null" if x is None else type(x).__name__

    errs = [(k, f"expected an object, found {kind(data.get(k))}") for k in _DICT_KEYS
            if not isinstance(data.get(k), dict)]
    errs += [(k, f"expected an object or null, found {kind(data[k])}") for k in _OPT_DICT_KEYS
             if data.get(k) is not None and not isinstance(data[k], dict)]
    for sec, fields in _SECTION_FIELDS.items():
        for key, want in fields.items() if isinstance(data.get(sec), dict) else ():
            v = data[sec]
            for part in key.split("."):
                v = v.get(part) if isinstance(v, dict) else None
            if v is None:
                continue
            if not _is(v, want):
                names = [want] if isinstance(want, str) else [w.__name__ for w in (want if isinstance(want, tuple) else (want,))]
                errs.append((f"{sec}.{key}", f"expected {' or '.join(_KIND_NAMES[n] for n in names)}, found {kind(v)}"))
            elif want == "records":
                for i, row in enumerate(v):
                    for f, x in row.items():
                        if x is None:
                            continue
                        if f in _TEXT_FIELDS and not isinstance(x, str):
                            errs.append((f"{sec}.{key}[{i}].{f}", f"expected a string, found {kind(x)}"))
                        elif (f.endswith(_NUMBER_SUFFIXES) or f.startswith("util")) and not _num(x):
                            errs.append((f"{sec}.{key}[{i}].{f}", f"expected a number, found {kind(x)}"))
    a = data["placement"].get("assignment") if isinstance(data.get("placement"), dict) else None
    for job, eps in a.items() if isinstance(a, dict) else ():
        try:
            arr = np.asarray(eps) if isinstance(eps, list) else None
        except (TypeError, ValueError):  # ragged lists
            arr = None
        if arr is None or arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            errs.append((f"placement.assignment.{job}", "expected a list of endpoint ids (integers)"))
    return errs


def plan_cluster(plan: dict, after: bool = True, base_dir: str = "."):
    """The Cluster of a plan (with its link budget applied when `after`)."""
    from topo.model.spec import from_dict
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
