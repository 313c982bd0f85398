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
    """Deterministic JSON text of a plan (sorted keys except inside the cluster files, fixed indentation).

    The text of ``json.dumps(plan, indent=1, sort_keys=True)`` with the cluster files' keys in
    their own order, written by :func:`_dump`: lists of numbers (per-link utilisations, the
    placement: tens of millions of values at 1M accelerators) go through the C encoder in one
    call each instead of the pure-Python indenting encoder, value by value."""
    data = to_jsonable(plan)
    out: list[str] = []
    try:
        _dump(data, 0, out, top=True)
    except _Unusual:
        return _dumps_json(data)
    return "".join(out) + "\n"


def _dumps_json(data: dict) -> str:
    """:func:`dumps` through the json module (any value it accepts)."""
    marks = {k: f"\x00{k}\x00" for k in _ORDERED_KEYS if isinstance(data.get(k), dict)}
    text = json.dumps({k: marks.get(k, v) for k, v in data.items()}, indent=1, sort_keys=True, allow_nan=False)
    for k, mark in marks.items():
        ordered = json.dumps(data[k], indent=1, allow_nan=False).replace("\n", "\n ")
        text = text.replace(json.dumps(mark), ordered, 1)
    return text + "\n"


class _Unusual(Exception):
    """A value :func:`_dump` leaves to the json module (a key that is not a string, a type it does not know)."""


_compact = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode   # the C encoder (no indent)
_string = json.encoder.encode_basestring_ascii
_SCALARS = frozenset((int, float, bool, type(None)))


def _dump(o, level: int, out: list, sort: bool = True, top: bool = False) -> None:
    """Append the JSON text of ``o`` at nesting ``level`` to ``out`` as ``json.dumps(indent=1,
    sort_keys=sort)`` writes it; at the top, the cluster files' values unsorted."""
    t = type(o)
    if t is dict:
        if not o:
            out.append("{}")
            return
        ind = "\n" + " " * (level + 1)
        sep = "{" + ind
        for k, v in (sorted(o.items()) if sort else o.items()):
            if type(k) is not str:
                raise _Unusual(k)
            out.append(sep)
            out.append(_string(k))
            out.append(": ")
            _dump(v, level + 1, out, sort and not (top and k in _ORDERED_KEYS and type(v) is dict))
            sep = "," + ind
        out.append("\n" + " " * level + "}")
    elif t is list:
        if not o:
            out.append("[]")
            return
        ind = "\n" + " " * (level + 1)
        kinds = set(map(type, o))
        if kinds <= _SCALARS:      # numbers, booleans, nulls: no comma inside a value
            out.append("[" + ind + _compact(o)[1:-1].replace(",", "," + ind) + "\n" + " " * level + "]")
        elif kinds == {str}:
            out.append("[" + ind + ("," + ind).join(map(_string, o)) + "\n" + " " * level + "]")
        else:
            sep = "[" + ind
            for v in o:
                out.append(sep)
                _dump(v, level + 1, out, sort)
                sep = "," + ind
            out.append("\n" + " " * level + "]")
    elif t is str:
        out.append(_string(o))
    elif t is float and o - o == 0.0:   # finite (json writes float.__repr__)
        out.append(float.__repr__(o))
    elif t is int:
        out.append(int.__repr__(o))
    elif t is bool or o is None:
        out.append("true" if o is True else "false" if o is False else "null")
    else:
        raise _Unusual(o)


def load_plan(path) -> dict:
    """Read a plan written by `topo optimize`; SpecError naming what is wrong."""
    return read_plan(path)[0]


def read_plan(path) -> tuple[dict, "Plan"]:
    """A plan file as its dict and its typed :class:`Plan` (validated once); SpecError naming what is wrong."""
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
    return data, typed(data, str(p))


# --- the typed plan --------------------------------------------------------------------------------
# Pydantic models of what reports, exports and the CLI read. Each model is strict (a number
# is a number, not the string "3"; true is not 1) and open (fields topo writes but no reader
# types are kept as they are), so a plan topo wrote validates unchanged and dumps back to the
# same JSON. A missing optional field is allowed: the report says "not computed".
from typing import Annotated, Any, Optional, Union  # noqa: E402

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_serializer,  # noqa: E402
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
    util_max: Optional[Number] = None
    """Peak directed-link utilisation in the tier, as routed metrics name it (1 = full)."""


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


class RoutingRun(_Part):
    """One routing model's figures in a hash-against-spray comparison."""
    jobs: Optional[dict[str, Optional[Number]]] = None
    """Job name -> communication time per iteration (s)."""
    max_util: Optional[Number] = None
    """Peak directed-link utilisation (1 = full)."""


class RoutingComparison(_Part):
    """The same placement routed by hashing (RoCE) and by spraying (UEC)."""
    # read and written by the plan's own keys only: a key spelt otherwise ("uec_spray") is kept as written
    roce_hash: Optional[RoutingRun] = Field(None, alias="roce-hash")
    """Hash-based ECMP over queue pairs."""
    uec_spray: Optional[RoutingRun] = Field(None, alias="uec-spray")
    """Per-packet spraying."""

    @model_serializer(mode="wrap")
    def _plan_keys(self, handler):
        """Dumped under the plan's keys, in place, on every pydantic the pins allow (a config option
        for this exists only from pydantic 2.11)."""
        out = handler(self)
        keys = {n: f.alias for n, f in type(self).model_fields.items() if n in self.model_fields_set}
        return {keys.get(k, k): v for k, v in out.items()} if isinstance(out, dict) else out


class Metrics(_Part):
    """Routed traffic on a fabric (before placement, placed, after the link budget)."""
    routing: Optional[str] = None
    """Routing model the traffic was routed with."""
    seed: Optional[StrictInt] = None
    """Seed of the hashed routing."""
    channels: Optional[StrictInt] = None
    """Channels per collective (hashed models only)."""
    qps_per_channel: Optional[StrictInt] = None
    """Queue pairs per channel (hashed models only)."""
    qps: Optional[StrictInt] = None
    """Queue pairs per flow, as plans written before channels were modelled name it (read when
    ``qps_per_channel`` is absent)."""
    max_util: Optional[Number] = None
    """Peak directed-link utilisation over every tier (1 = full)."""
    tiers: Optional[list[TierRow]] = None
    """Per link tier utilisation."""
    jobs: Optional[list[JobRow]] = None
    """Per job communication time."""
    hottest: Optional[list[dict[str, Any]]] = None
    """The most loaded links."""
    roce_vs_uec: Optional[RoutingComparison] = None
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
    objective: Optional[Number] = None
    """Placement objective of the chosen placement."""
    bound: Optional[Number] = None
    """Lower bound on the placement objective."""
    gap: Optional[Number] = None
    """Relative gap between objective and bound."""


class SolverRun(_Part):
    """One solver run's outcome."""
    status: Optional[str] = None
    """Solver status."""
    objective: Optional[Number] = None
    """Objective value found."""
    bound: Optional[Number] = None
    """Best bound proved."""
    gap: Optional[Number] = None
    """Relative gap between objective and bound."""


class CostRow(_Part):
    """Cost and power of one design."""
    capex_usd: Optional[Number] = None
    """Network capital cost (USD)."""
    energy_usd: Optional[Number] = None
    """Network energy cost over the horizon (USD)."""
    network_kw: Optional[Number] = None
    """Network power (kW)."""
    total_usd: Optional[Number] = None
    """Capital plus energy cost (USD)."""


class BudgetCost(_Part):
    """Cost of the chosen, as-given and non-blocking designs."""
    chosen: Optional[CostRow] = None
    """The chosen link budget."""
    as_given: Optional[CostRow] = None
    """The fabric as the cluster file gives it."""
    non_blocking: Optional[CostRow] = None
    """A non-blocking design carrying the same traffic."""
    saved_vs_as_given: Optional[dict[str, Any]] = None
    """What the chosen design saves against the fabric as given."""


class TierTarget(_Part):
    """One link tier's utilisation: the target and the routed peak before and after the budget."""
    target: Optional[Number] = None
    """Utilisation the tier was sized for."""
    routed_before: Optional[Number] = None
    """Routed peak utilisation on the fabric as given."""
    routed_after: Optional[Number] = None
    """Routed peak utilisation on the chosen fabric."""


class Budget(_Part):
    """The chosen link budget (topo budget)."""
    tiers: Optional[list[TierRow]] = None
    """Per tier decisions and counts."""
    cost: Optional[BudgetCost] = None
    """Cost of the chosen, as-given and non-blocking designs."""
    utilization: Optional[dict[str, TierTarget]] = None
    """Utilisation per link tier before and after."""
    headroom: Optional[dict[str, Any]] = None
    """Headroom per tier under the stated failure."""
    network_power: Optional[dict[str, Any]] = None
    """Network power."""
    solver: Optional[SolverRun] = None
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
    serving: Optional[dict[str, Any]] = None
    """The serving deployments on the healthy fabric (replicas, saturating rate); each single failure's row then has its own `serving` (replicas lost, saturating rate after it, whether the stated rate is still served)."""


class CollectiveRow(_Part):
    """One collective of a job, timed by the alpha-beta model."""
    algorithm: Optional[str] = None
    """Algorithm chosen (null when the collective moves nothing)."""
    count: Optional[Number] = None
    """Times per iteration."""
    alpha_s: Optional[Number] = None
    """Latency part of one run (s)."""
    beta_s: Optional[Number] = None
    """Bandwidth part of one run (s)."""


class CollectiveJob(_Part):
    """One job's collectives on the chosen fabric."""
    name: Optional[str] = None
    """Job name."""
    collectives: Optional[list[CollectiveRow]] = None
    """Its collectives, in the order the cluster file lists them."""
    comm_s: Optional[Number] = None
    """Collective time per iteration (s)."""
    iteration_s: Optional[Number] = None
    """Iteration time with compute (s)."""
    network_share: Optional[Number] = None
    """Share of the iteration spent communicating."""


class Collectives(_Part):
    """Collective times of the placed jobs on the chosen fabric (alpha-beta model)."""
    routing: Optional[str] = None
    """Routing model the collectives were timed with."""
    sharing: Optional[str] = None
    """How concurrent flows share a link."""
    jobs: Optional[list[CollectiveJob]] = None
    """One row per placed job."""


class Solvers(_Part):
    """Solver statistics of the placement and the budget."""
    budget: Optional[dict[str, Any]] = None
    """Link budget solver."""
    placement: Optional[dict[str, Any]] = None
    """Placement solver."""


class Serving(_Part):
    """The serving deployments beside the placed jobs (topo.solve.serving_place.summary): per deployment
    bytes/s by kind, network time per output token with its curve against the request rate, the saturating
    rate and its link per routing model, the replicas; the CP-SAT serving placement; the loads and the
    training jobs' interference."""
    deployments: Optional[list[dict[str, Any]]] = None
    """Per deployment: name, mode, requests_per_s, replicas, bytes_per_s by kind, network_gbps, scaleup_gbps, kv_transfer, time_per_token.models.<routing>.{idle_s, at_rate_s, saturating_requests_per_s, saturating_link, curve: [[requests_per_s, seconds or null], ...]}."""
    serving_placement: Optional[dict[str, Any]] = None
    """How the replicas were placed: method, status, objective, bound, KV bytes/s across leaves and pods in order and as placed, assignment (endpoint ids per replica)."""
    all: Optional[dict[str, Any]] = None
    """All deployments together: network and scale-up Gb/s, peak utilisation, busiest links."""
    with_training: Optional[dict[str, Any]] = None
    """With the training jobs: peak utilisation, links both use, interference (job times without and with the serving traffic)."""


class Plan(_Part):
    """A plan written by ``topo optimize`` (plan.json), version 1.

    Provenance: ``plan_version``, ``topo_version``, ``versions``, ``created``, ``seed``,
    ``workers``, ``time_limit_s``, ``timings_s``, ``cpu_seconds``, ``solver``.
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
    cluster_name: Optional[str] = None
    """Name of the cluster."""
    collectives: Optional[Collectives] = None
    """Collective times of the placed jobs on the chosen fabric."""
    timings_s: Optional[dict[str, Any]] = None
    """Seconds per stage."""
    cpu_seconds: Optional[dict[str, Any]] = None
    """CPU seconds per stage (the process's threads and the worker processes it waited for)."""
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
    serving: Optional[Serving] = None
    """The serving deployments (present when the cluster file states any)."""
    design: Optional["DesignSection"] = None
    """The design search that chose the fabric (topo optimize --design); absent without it."""
    front_end: Optional["FrontEndLoads"] = None
    """The agent tiers' traffic on the front-end fabric (present when the cluster file has front_end and serving)."""


class Sections(Plan):
    """Some sections of a plan: what an export reads, such as ``{"placement": {"assignment": ...}}``
    for the job formats. Every section given is checked as in a whole plan; none is required."""
    plan_version: Optional[StrictInt] = None
    """Plan format version (this topo reads 1)."""
    cluster_file: Optional[dict[str, Any]] = None
    """The cluster file the plan was made from."""
    placement: Optional[Placement] = None
    """Where the jobs run."""
    metrics_before: Optional[Metrics] = None
    """Traffic with the jobs placed in order, on the fabric as given."""


# --- the design search (topo optimize --design) ---------------------------------------------
class DesignCandidate(_Part):
    """One candidate of the design search: a fabric family x tiers x planes x switch model."""
    id: str
    """family/tiers/planes/switch, e.g. rail_only/2-tier/1-plane/th5-128x400."""
    family: str
    """Fabric family (clos, rail_optimized, rail_only)."""
    tiers: StrictInt
    """Tier count."""
    planes: StrictInt
    """Plane count."""
    switch: str
    """Switch model on every tier."""
    status: str
    """sized, too_slow, infeasible, time_limit, pruned_by_port_count or pruned_by_bound."""
    total_usd: Optional[Number] = None
    """Capex + energy over the horizon (sized candidates)."""
    capex_usd: Optional[Number] = None
    """Network capex (sized candidates)."""
    network_kw: Optional[Number] = None
    """Network power, kW (sized candidates)."""
    job_time_s: Optional[Number] = None
    """The placed jobs' summed collective time, s (sized candidates)."""
    p95_penalty: Optional[Number] = None
    """95th percentile of the jobs' time over ideal time (sized candidates)."""
    headroom: Optional[Number] = None
    """1 - the worst routed switch-link utilisation after the stated failure (sized candidates)."""
    reason: Optional[str] = None
    """Why it was not sized or set aside (pruned, infeasible, time limit, too slow)."""
    bound: Optional[dict[str, Number]] = None
    """The bounds no design of it can beat, computed before sizing."""
    job_times_s: Optional[dict[str, Number]] = None
    """Each placed job's collective time on it, s (sized candidates)."""


class DesignLost(_Part):
    """A sized candidate not on the front, and the front member that dominates it."""
    id: str
    """The dominated candidate."""
    by: str
    """A front member that dominates it."""
    worse_on: list[str]
    """The objectives it is worse on."""


class DesignSection(_Part):
    """The design search: every candidate, the Pareto front and the chosen point."""
    objective: str
    """cost, power or balanced: each candidate's budget objective and how the front point is chosen."""
    survive: str
    """The failure every candidate must survive."""
    max_slowdown: Optional[Number] = None
    """Candidates slower than this multiple of the fastest were set aside."""
    candidates: list[DesignCandidate]
    """Every candidate, in candidate order."""
    front: list[str]
    """Candidate ids on the Pareto front."""
    dominated: list[DesignLost]
    """Each dominated sized candidate."""
    chosen: Optional[str] = None
    """The front member chosen by the objective: the fabric the plan carries."""
    counts: dict[str, StrictInt]
    """Candidates, sized, pruned by port count / by bound, infeasible, time limit, too slow, front, dominated."""
    seconds: Number
    """Seconds the search took."""
    fabric_given: Optional[dict[str, Any]] = None
    """The cluster file's own fabric section (the plan's cluster_file carries the chosen one)."""


# --- sections the report reads that the models above do not cover ----------------------------
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


class FrontEndDeployment(_Part):
    """One deployment's agent traffic on the front-end fabric."""
    name: str
    """Deployment name."""
    bytes_per_s: dict[str, Number]
    """Bytes per second by kind (agent_request, agent_response)."""
    max_util: Number
    """Peak link utilisation of its agent traffic alone (fluid)."""
    max_requests_per_s_at_target: Optional[Number] = None
    """Request rate at which its agent traffic alone brings a front-end link to the target utilisation."""


class FrontEndLoads(_Part):
    """The front-end fabric and the agent tiers' request/response flows on it (routing.serving.front_end_loads)."""
    endpoints: StrictInt
    """Front-end endpoints (one per host)."""
    switches: StrictInt
    """Front-end switches."""
    tier_switch_counts: list[StrictInt]
    """Switches per tier, leaf first."""
    links: StrictInt
    """Physical links."""
    deployments: list[FrontEndDeployment]
    """Per deployment: its agent traffic."""
    tiers: list[TierRow]
    """Per link tier: utilisation (max, p99, mean) under ideal ECMP."""
    tiers_transport: list[TierRow]
    """Per link tier under the transport's own model."""
    max_util: Number
    """Peak front-end link utilisation (fluid)."""
    max_util_transport: Number
    """Peak front-end link utilisation under the transport's model."""
    budget: Optional[Budget] = None
    """`topo optimize`: the front-end fabric's link budget for the agent traffic (its chosen tiers are the plan's cluster_file_after front_end.fabric, on which the loads above are routed); null when not sized."""
    budget_not_sized: Optional[str] = None
    """Why the front-end budget was not sized (a one-tier front-end has no uplinks; no agent traffic)."""


Plan.model_rebuild()
Sections.model_rebuild()
ReportPlan.model_rebuild()

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


def as_plan(plan) -> Optional[Plan]:
    """The typed plan of what a reader was given: a :class:`Plan` as it is; a dict, made JSON-able
    first as a plan file holds it (numpy arrays as lists), as a whole plan when it has
    ``plan_version``, else as some :class:`Sections` of one; None as None. SpecError with the
    JSON path of every problem."""
    if plan is None or isinstance(plan, Plan):
        return plan
    if isinstance(plan, dict):
        plan = to_jsonable(plan)
    if isinstance(plan, dict) and "plan_version" not in plan:
        try:
            return Sections.model_validate(plan)
        except ValidationError as e:
            raise SpecError(validation_errors(e)) from None
    return typed(plan)


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


def plan_cluster_key(plan: Union[Plan, dict], after: bool = True) -> str:
    """``cluster_file_after`` when `after` and the plan has one (a link budget was applied), else ``cluster_file``."""
    has_after = plan.cluster_file_after if isinstance(plan, Plan) else plan.get("cluster_file_after")
    return "cluster_file_after" if after and has_after else "cluster_file"


def plan_cluster(plan: Union[Plan, dict], after: bool = True, base_dir: str = "."):
    """The Cluster of a plan, typed or as its dict (with its link budget applied when `after`)."""
    from topo.model.spec import from_dict
    key = plan_cluster_key(plan, after)
    data = getattr(plan, key) if isinstance(plan, Plan) else plan[key]
    return from_dict(data, source=f"plan:{key}", base_dir=base_dir)


def plan_assignment(plan: Union[Plan, dict]) -> dict[str, np.ndarray]:
    """Job name -> endpoint ids (rank order) from a plan's placement (typed, or as its dict)."""
    if isinstance(plan, Plan):
        a = plan.placement.assignment if plan.placement is not None else {}
    else:
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
