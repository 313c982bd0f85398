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
    typed(data, str(p))
    return data


# --- the typed plan --------------------------------------------------------------------------------
# Pydantic models of what reports, exports and the CLI read. Each model is strict (a number
# is a number, not the string "3"; true is not 1) and open (fields topo writes but no reader
# types are kept as they are), so a plan topo wrote validates unchanged and dumps back to the
# same JSON. A missing optional field is allowed: the report says "not computed".
from typing import Annotated, Any, Optional, Union  # noqa: E402

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StrictInt,  # noqa: E402
                      ValidationError)

Number = Union[StrictInt, StrictFloat]
"""A JSON number (booleans and numeric strings refused)."""


def _square(m):
    if any(len(r) != len(m) for r in m):
        raise ValueError("expected a square matrix of numbers")
    return m


Matrix = Annotated[list[list[Number]], AfterValidator(_square)]


class _Part(BaseModel):
    """An open, strict part of a plan."""
    model_config = ConfigDict(extra="allow", strict=True, use_attribute_docstrings=True)


class TierRow(_Part):
    """One switch tier, or one tier's traffic figures (describe, metrics, budget)."""
    tier: Optional[str] = None
    """Tier name (leaf, spine, super-spine)."""
    model: Optional[str] = None
    """Switch model from the catalog."""
    switches: Optional[Number] = None
    """Switches in the tier."""
    uplinks: Optional[Number] = None
    """Uplinks per switch."""
    oversubscription: Optional[Number] = None
    """Downlink to uplink bandwidth ratio."""
    max_util: Optional[Number] = None
    """Peak directed-link utilisation in the tier (1 = full)."""
    links: Optional[Number] = None
    """Links in the tier."""


class Item(_Part):
    """A bill-of-materials row (a switch model or an optic class)."""
    model: Optional[str] = None
    """Switch model."""
    part: Optional[str] = None
    """Optic or cable part."""
    reach: Optional[str] = None
    """Reach class (dac, aec, aoc, lpo, sr, dr, fr)."""
    count: Optional[Number] = None
    """How many."""
    cost_usd: Optional[Number] = None
    """Cost of all of them (USD)."""
    kw: Optional[Number] = None
    """Power of all of them (kW)."""


class BillOfMaterials(_Part):
    """Switches and optics of a design."""
    switches: Optional[list[Item]] = None
    """One row per switch model."""
    optics: Optional[list[Item]] = None
    """One row per reach class and speed."""


class Describe(_Part):
    """What a fabric is (topo describe), before or after the link budget."""
    name: Optional[str] = None
    """Cluster name."""
    family: Optional[str] = None
    """Fabric family."""
    accelerators: Optional[Number] = None
    """Accelerators in the cluster."""
    nodes: Optional[Number] = None
    """Nodes (servers)."""
    racks: Optional[Number] = None
    """Racks."""
    planes: Optional[Number] = None
    """Network planes."""
    pods: Optional[Number] = None
    """Pods."""
    bisection_gbps: Optional[Number] = None
    """Bisection bandwidth, one direction (Gb/s)."""
    network_cost_usd: Optional[Number] = None
    """Network capex (USD)."""
    network_kw: Optional[Number] = None
    """Network power (kW)."""
    tiers: Optional[list[TierRow]] = None
    """Switch tiers, leaf first."""
    links: Optional[dict[str, Number]] = None
    """Links per link tier (endpoint-leaf, leaf-spine, spine-super)."""
    rack_power: Optional[dict[str, Any]] = None
    """Rack power summary."""
    scaleup_domains: Optional[dict[str, Any]] = None
    """Scale-up domains by size."""
    bill_of_materials: Optional[BillOfMaterials] = None
    """Switches and optics."""


class JobRow(_Part):
    """One job's communication figures."""
    name: Optional[str] = None
    """Job name."""
    time_s: Optional[Number] = None
    """Communication time per iteration (s)."""
    ideal_s: Optional[Number] = None
    """The same on an ideal non-blocking fabric (s)."""


class Metrics(_Part):
    """Routed traffic on a fabric (before placement, placed, after the link budget)."""
    tiers: Optional[list[TierRow]] = None
    """Per link tier utilisation."""
    jobs: Optional[list[JobRow]] = None
    """Per job communication time."""
    hottest: Optional[list[dict[str, Any]]] = None
    """The most loaded links."""
    roce_vs_uec: Optional[dict[str, Any]] = None
    """Hash-based against sprayed routing."""
    scaleup: Optional[dict[str, Any]] = None
    """Scale-up link figures."""
    link_util: Optional[list[Optional[Number]]] = None
    """Utilisation per directed link, in fabric link order."""
    pod_matrix_gbps: Optional[Matrix] = None
    """Offered scale-out Gb/s from each pod to each pod."""


class RackRow(_Part):
    """One rack's power with the placed jobs busy."""
    rack: Optional[str] = None
    """Rack name."""
    kw: Optional[Number] = None
    """Power (kW)."""
    limit_kw: Optional[Number] = None
    """The rack's power limit (kW)."""


class Placement(_Part):
    """Where the jobs run (topo place)."""
    assignment: dict[str, list[StrictInt]] = Field(default_factory=dict)
    """Job name -> endpoint ids in rank order."""
    jobs: Optional[Union[dict[str, Any], list[Any]]] = None
    """Per job spread and traffic share."""
    racks: Optional[list[RackRow]] = None
    """Per rack power."""
    totals: Optional[dict[str, Any]] = None
    """Traffic per tier and counts."""
    baseline: Optional[dict[str, Any]] = None
    """The greedy in-order baseline."""
    solver: Optional[dict[str, Any]] = None
    """CP-SAT statistics."""
    stranded: Optional[dict[str, Any]] = None
    """Capacity left unusable."""
    unplaced: Optional[dict[str, Any]] = None
    """Jobs not placed, with the reason."""
    note: Optional[str] = None
    """A note on how the placement was made."""
    status: Optional[str] = None
    """Solver status."""


class Budget(_Part):
    """The chosen link budget (topo budget)."""
    tiers: Optional[list[TierRow]] = None
    """Per tier decisions and counts."""
    cost: Optional[dict[str, Any]] = None
    """Cost of the chosen, as-given and non-blocking designs."""
    utilization: Optional[dict[str, Any]] = None
    """Utilisation per tier before and after."""
    headroom: Optional[dict[str, Any]] = None
    """Headroom per tier under the stated failure."""
    network_power: Optional[dict[str, Any]] = None
    """Network power."""
    solver: Optional[dict[str, Any]] = None
    """Solver statistics."""
    alternatives: Optional[dict[str, Any]] = None
    """The optimum of each objective."""
    check: Optional[dict[str, Any]] = None
    """The independent check of the chosen design."""
    transport_check: Optional[dict[str, Any]] = None
    """Slowdown of the jobs under the cluster's transport."""
    bill_of_materials: Optional[BillOfMaterials] = None
    """Switches and optics of the chosen design."""
    requirements: Optional[dict[str, Any]] = None
    """Design requirements, required against achieved."""
    target_utilization: Optional[Number] = None
    """Utilisation the budget was sized for."""
    objective: Optional[str] = None
    """What the budget minimised."""
    survive: Optional[str] = None
    """The failure the budget must survive."""


class FailureRow(_Part):
    """One single-failure scenario."""
    kind: Optional[str] = None
    """What failed (link, switch, rack, ...)."""
    name: Optional[str] = None
    """Which one."""
    count: Optional[Number] = None
    """How many equivalent elements it stands for."""


class Failures(_Part):
    """Failure headroom (topo failures)."""
    single: Optional[list[FailureRow]] = None
    """Single failures."""
    k: Optional[dict[str, Any]] = None
    """Several simultaneous failures."""
    expected_loss: Optional[dict[str, Any]] = None
    """Expected loss from failure rates."""
    traffic: Optional[dict[str, Any]] = None
    """How the failures were routed."""


class Solvers(_Part):
    """Solver statistics of the placement and the budget."""
    budget: Optional[dict[str, Any]] = None
    """Link budget solver."""
    placement: Optional[dict[str, Any]] = None
    """Placement solver."""


class Plan(_Part):
    """A plan written by ``topo optimize`` (plan.json), version 1.

    Provenance: ``plan_version``, ``topo_version``, ``versions``, ``created``, ``seed``,
    ``workers``, ``time_limit_s``, ``timings_s``, ``solver``.
    """
    plan_version: StrictInt
    """Plan format version (this topo reads 1)."""
    cluster_file: dict[str, Any]
    """The cluster file the plan was made from."""
    cluster_file_after: Optional[dict[str, Any]] = None
    """The cluster file with the chosen link budget applied."""
    placement: Placement
    """Where the jobs run."""
    metrics_before: Optional[Metrics]
    """Traffic with the jobs placed in order, on the fabric as given."""
    metrics_placed: Optional[Metrics] = None
    """Traffic with the optimised placement, on the fabric as given."""
    metrics_after: Optional[Metrics] = None
    """Traffic with the optimised placement and the chosen link budget."""
    describe_before: Optional[Describe] = None
    """The fabric as given."""
    describe_after: Optional[Describe] = None
    """The fabric with the chosen link budget."""
    budget: Optional[Budget] = None
    """The chosen link budget."""
    failures: Optional[Failures] = None
    """Failure headroom."""
    solver: Optional[Solvers] = None
    """Solver statistics."""
    timings_s: Optional[dict[str, Any]] = None
    """Seconds per stage."""
    versions: Optional[dict[str, Any]] = None
    """Versions of topo and the libraries used."""
    topo_version: Optional[str] = None
    """topo version that wrote the plan."""
    created: Optional[str] = None
    """When the plan was written (UTC, ISO 8601)."""
    seed: Optional[StrictInt] = None
    """Random seed of the run."""
    workers: Optional[StrictInt] = None
    """Solver workers."""
    time_limit_s: Optional[Number] = None
    """Time limit per solver (s)."""



# --- sections the report reads that the models above do not cover (report additions) ---------------
class DesignCandidate(_Part):
    """One candidate of the design search (topo.solve.design)."""
    id: Optional[str] = None
    """Candidate id: family/tiers/planes/switch."""
    family: Optional[str] = None
    """Fabric family (clos, rail_optimized, rail_only)."""
    tiers: Optional[StrictInt] = None
    """Switch tiers."""
    planes: Optional[StrictInt] = None
    """Planes."""
    switch: Optional[str] = None
    """Switch model."""
    status: Optional[str] = None
    """sized, infeasible, pruned, time_limit, ..."""
    total_usd: Optional[Number] = None
    """Capex plus energy over the horizon ($)."""
    capex_usd: Optional[Number] = None
    """Network capex ($)."""
    network_kw: Optional[Number] = None
    """Network power (kW)."""
    job_time_s: Optional[Number] = None
    """The jobs' summed collective time per iteration (s)."""
    p95_penalty: Optional[Number] = None
    """95th percentile of the jobs' time over their ideal time."""
    headroom: Optional[Number] = None
    """Failure headroom (fraction)."""
    reason: Optional[str] = None
    """Why the candidate has no design (infeasible, pruned)."""


class DesignSection(_Part):
    """The design search of ``topo optimize --design`` (DesignResult.to_dict() without each
    candidate's ``cluster_after``)."""
    objective: Optional[str] = None
    """Objective the chosen point is best by."""
    survive: Optional[str] = None
    """Failure each candidate is sized to survive."""
    max_slowdown: Optional[Number] = None
    """Largest job slowdown a candidate may cause."""
    candidates: list[DesignCandidate] = Field(default_factory=list)
    """Every candidate, in candidate order."""
    front: list[str] = Field(default_factory=list)
    """Ids of the candidates on the Pareto front."""
    dominated: list[dict[str, Any]] = Field(default_factory=list)
    """{id, by, worse_on} per dominated candidate."""
    chosen: Optional[str] = None
    """Id of the chosen candidate (null when none is feasible)."""
    counts: Optional[dict[str, Any]] = None
    """Candidates per outcome."""
    seconds: Optional[Number] = None
    """Wall time of the search (s)."""


class GoodputJob(_Part):
    """One job's interruptions and goodput (topo.study.goodput)."""
    name: Optional[str] = None
    """Job name."""
    accelerators: Optional[Number] = None
    """Accelerators of the job."""
    goodput: Optional[Number] = None
    """Share of the run doing useful work (null without checkpoint and restart times)."""
    mtbi_h: Optional[Number] = None
    """Mean time between interruptions (h)."""


class Goodput(_Part):
    """Goodput under failures."""
    jobs: Optional[list[GoodputJob]] = None
    """Per job."""
    run_days: Optional[Number] = None
    """Length of the run (days)."""


class WorstSingle(_Part):
    """The worst single failure."""
    kind: Optional[str] = None
    """Kind of element."""
    name: Optional[str] = None
    """Its name."""
    jobs_stopped: Optional[list[str]] = None
    """Jobs it stops."""
    endpoints_cut_off: Optional[Number] = None
    """Endpoints it cuts off."""


class ReportFailures(Failures):
    """Failure headroom with its worst single failure."""
    worst_single: Optional[WorstSingle] = None
    """The worst single failure (by jobs stopped, then endpoints cut off)."""


class ReportPlan(Plan):
    """A plan with the sections the report reads beyond :class:`Plan`."""
    failures: Optional[ReportFailures] = None
    """Failure headroom."""
    design: Optional[DesignSection] = None
    """The design search, when run."""
    goodput: Optional[Goodput] = None
    """Goodput under failures."""
    collectives: Optional[dict[str, Any]] = None
    """Collective times (alpha-beta model)."""


def typed_report(data: dict, source: str = "") -> ReportPlan:
    """The typed :class:`ReportPlan` of a plan dict; SpecError with the JSON path of every problem."""
    if not isinstance(data, dict):
        raise SpecError([("(root)", "a plan is a JSON object")], source)
    try:
        return ReportPlan.model_validate(data)
    except ValidationError as e:
        raise SpecError(validation_errors(e), source) from None

_MESSAGES = {"int_type": "expected an integer", "float_type": "expected a number", "string_type": "expected a string",
             "dict_type": "expected an object", "list_type": "expected a list", "missing": "missing: not a topo plan",
             "model_type": "expected an object", "int_from_float": "expected an integer",
             "union_tag_invalid": "unexpected kind"}


def _kind(x) -> str:
    if x is None:
        return "null"
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "integer", float: "number"}.get(
        type(x), type(x).__name__)


_UNION_TAGS = ("int", "float", "str", "list[...]", "dict[str,...]")


def validation_errors(e: ValidationError) -> list[tuple[str, str]]:
    """(JSON path, message) per problem path, sorted by path (a union reports each member: one line)."""
    out: dict[str, str] = {}
    for err in e.errors(include_url=False):
        path, tagged = "", False
        for part in err["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif part in _UNION_TAGS or part.startswith("function-"):
                tagged = True    # a union member's or validator's tag, not a place in the plan
            else:
                path += ("." if path else "") + part
        path = path or "(root)"
        if path in out:
            continue
        t = err["type"]
        if t == "value_error":
            out[path] = err["msg"].replace("Value error, ", "")
            continue
        msg = "expected a number" if tagged and t in ("int_type", "float_type") else _MESSAGES.get(t, err["msg"])
        out[path] = msg if t == "missing" else f"{msg}, found {_kind(err.get('input'))}"
    return sorted(out.items())


def typed(data: dict, source: str = "") -> Plan:
    """The typed :class:`Plan` of a plan dict; SpecError with the JSON path of every problem."""
    if not isinstance(data, dict):
        raise SpecError([("(root)", "a plan is a JSON object")], source)
    try:
        return Plan.model_validate(data)
    except ValidationError as e:
        raise SpecError(validation_errors(e), source) from None


def plan_shape_errors(data: dict) -> list[tuple[str, str]]:
    """(JSON path, message) for every part of a plan that does not have the kind `topo optimize`
    writes (a hand-edited or truncated plan), from the :class:`Plan` model."""
    try:
        Plan.model_validate(data)
    except ValidationError as e:
        return validation_errors(e)
    return []


def plan_json_schema() -> dict:
    """JSON Schema of plan.json (version 1), from the :class:`Plan` model."""
    schema = Plan.model_json_schema()
    schema["$id"] = f"https://topo/plan-v{PLAN_VERSION}.json"
    schema["title"] = f"topo plan, version {PLAN_VERSION}"
    return schema


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
    plan = to_jsonable(plan)
    typed(plan, "plan")   # what the pipeline assembles is a valid plan, or a path-precise error
    return plan
