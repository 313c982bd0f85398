"""The cluster file: schema, loading, validation, unit normalisation.

Owns the edge of the system. A cluster file (JSON or YAML) is parsed once,
checked completely (every error at once, each with its JSON path), merged with
the hardware catalog and returned as a frozen :class:`Cluster`. Everything after
this module trusts its input and must not re-validate it.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema, model_validator

from . import catalog, limits
from .errors import SpecError
from .limits import MAX_ENDPOINTS

SPEC_VERSION = 1


# --- units ----------------------------------------------------------------------
_UNIT_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z/]+)\s*$")
# A unit is matched exactly as written, then, for spellings whose case cannot change their meaning
# ("gbps", "400g", "gib"), in lower case. Where case carries the meaning (b = bit, B = byte; m = milli,
# M = mega) only the exact spelling counts and the other cases are refused as ambiguous.
_BW = {"Gbps": 1.0, "Gb/s": 1.0, "Gbit/s": 1.0, "G": 1.0, "Tbps": 1e3, "Tb/s": 1e3, "Tbit/s": 1e3, "T": 1e3,
       "Mbps": 1e-3, "Mb/s": 1e-3, "Mbit/s": 1e-3,
       "GB/s": 8.0, "GByte/s": 8.0, "GBytes/s": 8.0, "TB/s": 8e3, "MB/s": 8e-3}
_BW_ANY_CASE = ("Gbps", "Gbit/s", "G", "Tbps", "Tbit/s", "T", "Mbps", "Mbit/s", "GByte/s", "GBytes/s")
_KW = {"kW": 1.0, "W": 1e-3, "MW": 1e3}
_KW_ANY_CASE = ("kW", "W")
_BYTES = {"B": 1, "bytes": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
          "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
_BYTES_ANY_CASE = ("bytes", "KiB", "MiB", "GiB", "TiB")
_METRES = {"m": 1.0, "cm": 0.01, "mm": 0.001, "ft": 0.3048}
_METRES_ANY_CASE = ("m", "cm", "mm", "ft")
_ANY_CASE = {id(_BW): _BW_ANY_CASE, id(_KW): _KW_ANY_CASE, id(_BYTES): _BYTES_ANY_CASE, id(_METRES): _METRES_ANY_CASE}


def _unit_factor(table: dict[str, float], unit: str) -> float:
    """The factor of ``unit`` in ``table``: exact spelling first, then case-insensitive for the spellings
    whose case does not matter; a spelling that differs from a unit only in a case that carries meaning
    is refused with the spellings to use."""
    if unit in table:
        return table[unit]
    lowered = {u.lower(): u for u in _ANY_CASE[id(table)]}
    if unit.lower() in lowered:
        return table[lowered[unit.lower()]]
    near = sorted(u for u in table if u.lower() == unit.lower())
    if near:
        raise ValueError(f"ambiguous unit {unit!r}: case carries the meaning here (b bit, B byte; m milli, M mega);"
                         f" write {' or '.join(repr(u) for u in near)}")
    raise ValueError(f"unknown unit {unit!r}; expected one of {sorted(table)}")


def _unit_parser(table: dict[str, float], unit_name: str):
    def parse(v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError(f"expected a number of {unit_name}, found a boolean")
        if isinstance(v, (int, float)):
            return v
        if isinstance(v, str):
            m = _UNIT_RE.match(v)
            if not m:
                try:
                    float(v)
                except ValueError:
                    raise ValueError(f"expected a number of {unit_name} or a value with a unit, found {v!r}")
                raise ValueError(f"units missing in {v!r}: give a number (in {unit_name}) or a value with a unit, e.g. '{v}{next(iter(table))}'")
            x = float(m.group(1)) * _unit_factor(table, m.group(2))
            if not math.isfinite(x):
                raise ValueError(f"{v[:40]!r} is too large for a number")
            return x
        return v
    return BeforeValidator(parse)


def _unit_schema(table: dict, unit_name: str, minimum_key: str) -> WithJsonSchema:
    any_case = set(_ANY_CASE[id(table)])
    ci = lambda u: "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in u)
    units = "|".join(ci(u) if u in any_case else re.escape(u) for u in sorted(table, key=len, reverse=True))
    return WithJsonSchema({"anyOf": [
        {"type": "number", minimum_key: 0, "description": f"in {unit_name}"},
        {"type": "string", "pattern": rf"^\s*[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?\s*({units})\s*$",
         "description": f"a value with a unit, normalised to {unit_name}"}]})


Gbps = Annotated[float, _unit_parser(_BW, "Gb/s"), Field(ge=limits.MIN_GBPS, le=limits.MAX_GBPS),
                 _unit_schema(_BW, "Gb/s", "exclusiveMinimum")]
KW = Annotated[float, _unit_parser(_KW, "kW"), Field(ge=0, le=limits.MAX_KW), _unit_schema(_KW, "kW", "minimum")]
Bytes = Annotated[float, _unit_parser(_BYTES, "bytes"), Field(ge=0, le=limits.MAX_BYTES),
                  _unit_schema(_BYTES, "bytes", "minimum")]
Metres = Annotated[float, _unit_parser(_METRES, "metres"), Field(gt=0, le=limits.MAX_METRES),
                   _unit_schema(_METRES, "metres", "exclusiveMinimum")]
PosInt = Annotated[int, Field(ge=1, le=limits.MAX_INT)]
Count = Annotated[int, Field(ge=1, le=limits.MAX_ENDPOINTS)]   # a count of things that are built
Name = Annotated[str, Field(min_length=1, max_length=limits.MAX_NAME_LEN)]
Text = Annotated[str, Field(max_length=limits.MAX_STRING)]
Money = Annotated[float, Field(ge=0, le=1e15)]
Seed = Annotated[int, Field(ge=0, le=limits.MAX_SEED)]


class _M(BaseModel):
    # allow_inf_nan=False: Infinity, NaN and strings such as "1e400" are refused, never saved as null
    # protected_namespaces=(): `model_params_b` is a field, not pydantic's (older pydantic warned)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, protected_namespaces=())


# --- catalog overrides -------------------------------------------------------------
class AcceleratorSpec(_M):
    power_w: Annotated[float, Field(gt=0, le=limits.MAX_KW * 1e3)]
    scaleup_gbps: Annotated[float, Field(ge=0, le=limits.MAX_GBPS)] = 0.0
    scaleup_domain: Annotated[int, Field(ge=1, le=limits.MAX_ENDPOINTS)] = 1
    hbm_gb: Annotated[float, Field(ge=0, le=1e9)] = 0.0
    source: Text = "given in the cluster file"


class SwitchSpec(_M):
    radix: Annotated[int, Field(ge=2, le=limits.MAX_RADIX)]
    port_gbps: Gbps
    power_w: Annotated[float, Field(ge=0, le=limits.MAX_KW * 1e3)]
    cost_usd: Money
    ru: Annotated[int, Field(ge=1, le=64)] = 2
    source: Text = "given in the cluster file"


class OpticSpec(_M):
    max_m: Metres
    watts: Annotated[float, Field(ge=0, le=1e4)]
    cost_usd: Money
    ends: Literal[1, 2] = 2
    source: Text = "given in the cluster file"


class CatalogOverrides(_M):
    accelerators: dict[Name, AcceleratorSpec] = {}
    switches: dict[Name, SwitchSpec] = {}
    optics: dict[Literal["dac", "aec", "mmf", "smf_dr", "smf_fr", "lpo"], OpticSpec] = {}


# --- nodes, racks, floor ---------------------------------------------------------
class ScaleUp(_M):
    """A scale-up domain (NVLink, UALink, Infinity Fabric): `size` accelerators."""
    size: Annotated[int, Field(ge=1, le=limits.MAX_ENDPOINTS)]
    gbps_per_accelerator: Optional[Gbps] = None
    technology: Name = "nvlink"


class NodeType(_M):
    name: Name
    platform: Optional[Name] = None
    accelerator: Optional[Name] = None
    accelerators: Optional[Annotated[int, Field(ge=0, le=limits.MAX_ACCELERATORS_PER_NODE)]] = None
    nics: Optional[Annotated[int, Field(ge=1, le=limits.MAX_NICS_PER_NODE)]] = None
    # per NIC: a NIC of nic_ports ports gives each port nic_gbps / nic_ports
    nic_gbps: Optional[Gbps] = None
    nic_ports: Optional[Annotated[int, Field(ge=1, le=limits.MAX_NIC_PORTS)]] = None
    power_busy_kw: Optional[KW] = None
    power_idle_kw: Optional[KW] = None
    scaleup: Optional[ScaleUp] = None
    # rail-optimized and rail-only fabrics, nodes without accelerators: the rail of each fabric port
    # (nics x nic_ports of them, in order). Default: port k on rail k mod rails (a NIC's two ports
    # on one rail when dual-homed)
    rails: Optional[list[Annotated[int, Field(ge=0, le=limits.MAX_ACCELERATORS_PER_NODE)]]] = Field(
        default=None, min_length=1, max_length=limits.MAX_NICS_PER_NODE * limits.MAX_NIC_PORTS)


class RackType(_M):
    name: Name
    count: Annotated[int, Field(ge=1, le=limits.MAX_RACK_COUNT)] = 1
    nodes: dict[Name, Annotated[int, Field(ge=1, le=limits.MAX_ENDPOINTS)]] = Field(min_length=1)
    cooling: Literal["air", "liquid"] = "air"
    power_limit_kw: Optional[Annotated[float, _unit_parser(_KW, "kW"), Field(gt=0, le=limits.MAX_KW),
                                       _unit_schema(_KW, "kW", "exclusiveMinimum")]] = None
    power_limit_hard: bool = False


class Floor(_M):
    racks_per_row: Count = 16
    rack_pitch_m: Metres = 0.6
    row_pitch_m: Metres = 3.0
    slack_m: Annotated[float, Field(ge=0, le=limits.MAX_METRES)] = 2.0
    leaf_placement: Literal["tor", "eor"] = "eor"
    network_rack_power_limit_kw: Annotated[float, Field(gt=0, le=limits.MAX_KW)] = 40.0


# --- fabric -----------------------------------------------------------------------
class Tier(_M):
    switch: Union[Name, SwitchSpec] = "th5-128x400"
    # down capacity / up capacity of each switch of the tier; below 1 is under-subscribed (more
    # uplink than downlink capacity). Built exactly (the largest whole split of the radix with this
    # ratio) or refused
    oversubscription: Annotated[float, Field(gt=0, le=1e6)] = 1.0
    bundle: Optional[Annotated[int, Field(ge=1, le=limits.MAX_RADIX)]] = None
    # spine tier of a 3-tier Clos: links from each spine of the last pod to each of its
    # super-spines when that pod has fewer leaves than the others (default: bundle)
    partial_pod_bundle: Optional[Annotated[int, Field(ge=1, le=limits.MAX_RADIX)]] = None


class CustomGraph(_M):
    graphml: Optional[Annotated[str, Field(min_length=1, max_length=4096)]] = None
    edge_list: Optional[Annotated[str, Field(min_length=1, max_length=4096)]] = None
    link_gbps: Gbps = 400.0

    @model_validator(mode="after")
    def _one(self):
        if (self.graphml is None) == (self.edge_list is None):
            raise ValueError("give exactly one of graphml or edge_list")
        return self


class Fabric(_M):
    family: Literal["fat_tree", "clos", "rail_optimized", "rail_only", "custom"] = "clos"
    k: Optional[Annotated[int, Field(ge=2, le=limits.MAX_RADIX)]] = None
    tiers: list[Tier] = Field(default_factory=lambda: [Tier(), Tier()], max_length=8)
    planes: Annotated[int, Field(ge=1, le=limits.MAX_PLANES)] = 1
    dual_homed: bool = False
    custom: Optional[CustomGraph] = None
    # pod structure stated, not derived (per plane); the builder uses it exactly or refuses with the
    # arithmetic. Unset, each is derived and `topo describe` shows the rule
    leaves_per_pod: Optional[Count] = None
    spines_per_pod: Optional[Count] = None
    pods: Optional[Count] = None
    super_spines: Optional[Count] = None


class Transport(_M):
    protocol: Literal["roce", "uec", "ideal"] = "roce"
    mtu_bytes: Annotated[int, Field(ge=256, le=65536)] = 4096
    # RoCE hashing is modelled per (channel, queue pair): a collective opens `channels` channels
    # per peer connection (each 1/channels of the bytes), each channel `qps_per_channel` queue pairs,
    # and every (channel, QP) has its own source-port entropy. qps_per_connection N is the one-channel
    # shorthand (channels 1, qps_per_channel N); stating it with either of the two is refused
    qps_per_connection: Optional[Annotated[int, Field(ge=1, le=limits.MAX_QPS_PER_CHANNEL)]] = None
    channels: Optional[Annotated[int, Field(ge=1, le=limits.MAX_CHANNELS)]] = None
    qps_per_channel: Optional[Annotated[int, Field(ge=1, le=limits.MAX_QPS_PER_CHANNEL)]] = None
    header_bytes: Optional[Annotated[int, Field(ge=0, le=1024)]] = None
    adaptive: bool = False

    @property
    def n_channels(self) -> int:
        """Channels per collective (1 unless stated)."""
        return self.channels if self.channels is not None else 1

    @property
    def qps(self) -> int:
        """Queue pairs per channel: qps_per_channel, else the qps_per_connection shorthand, else 1."""
        if self.qps_per_channel is not None:
            return self.qps_per_channel
        return self.qps_per_connection if self.qps_per_connection is not None else 1


# --- jobs and traffic ---------------------------------------------------------------
class Collective(_M):
    op: Literal["allreduce", "allgather", "reducescatter", "alltoall", "sendrecv", "broadcast"]
    group: Literal["tp", "pp", "dp", "ep", "cp"] = "dp"
    bytes: Bytes
    algorithm: Literal["ring", "tree", "hierarchical", "direct"] = "ring"


class Job(_M):
    name: Name
    accelerators: Count
    tp: Count = 1
    pp: Count = 1
    cp: Count = 1
    ep: Count = 1
    dp: Optional[Count] = None
    collectives: list[Collective] = Field(default=[], max_length=limits.MAX_COLLECTIVES)
    model_params_b: Optional[Annotated[float, Field(gt=0, le=1e9)]] = None
    # higher runs first: when the free accelerators do not hold every job, lower priorities wait
    priority: Annotated[int, Field(ge=-(10 ** 9), le=10 ** 9)] = 0
    pin_racks: list[Name] = []
    forbid_racks: list[Name] = []
    pin_pods: list[Annotated[int, Field(ge=0, le=limits.MAX_ENDPOINTS)]] = []
    forbid_pods: list[Annotated[int, Field(ge=0, le=limits.MAX_ENDPOINTS)]] = []
    # an explicit placement: node names (hostlist ranges allowed), in rank order
    nodes: list[Annotated[str, Field(min_length=1, max_length=1024)]] = []
    # how ranks map to parallel coordinates, fastest first (Megatron-LM's --order default
    # "tp-cp-ep-dp-pp" is accepted: EP groups are consecutive DP ranks)
    rank_order: Annotated[str, Field(max_length=64)] = "tp-cp-pp-dp"


class TrafficPattern(_M):
    pattern: Literal["uniform", "permutation", "incast", "matrix"]
    bytes: Bytes = 1e9
    endpoints: Optional[Count] = None   # use the first N endpoints; default all
    fan_in: Count = 16                  # incast senders per receiver
    file: Optional[Annotated[str, Field(min_length=1, max_length=4096)]] = None  # matrix: CSV src,dst,bytes
    seed: Optional[Seed] = None


class Costs(_M):
    electricity_usd_per_kwh: Annotated[float, Field(ge=0, le=1e3)] = 0.08
    horizon_years: Annotated[float, Field(gt=0, le=100)] = 5.0
    pue: Annotated[float, Field(ge=1.0, le=10)] = 1.3
    allow_lpo: bool = False


OVERSUBSCRIPTION_CAP_TIERS = ("leaf", "spine")  # the tiers with uplinks (a 3-tier spine; never the top tier)


def oversubscription_caps(v: Any) -> Union[None, float, dict]:
    """A per-tier oversubscription cap as stated: None, one number for every tier with uplinks,
    or a mapping tier -> number over ``leaf`` and ``spine`` (a string ``leaf=1,spine=3`` is
    the CLI's form of the mapping). Returns None, a float or a dict; raises ValueError naming
    the tier at fault. A cap must be finite and >= 1: the budget's space only splits a radix
    down >= up (oversubscription >= 1), so a cap below 1 would leave nothing to search."""
    def num(x, tier):
        at = f"{tier}: " if tier else ""
        if isinstance(x, bool):
            raise ValueError(f"{at}expected a number >= 1, found {x!r}")
        try:
            f = float(x.strip()) if isinstance(x, str) else float(x)
        except (TypeError, ValueError):
            raise ValueError(f"{at}expected a number >= 1, found {_short(x)}")
        if not math.isfinite(f):
            raise ValueError(f"{at}expected a finite number >= 1, found {_short(x)}")
        if f < 1.0:
            raise ValueError(f"{at}a cap below 1 ({f:g}) is refused: the budget searches only splits with "
                             f"down >= up ports (oversubscription >= 1), so nothing would be left to search")
        if f > 1e6:
            raise ValueError(f"{at}must be at most 1e6, found {f:g}")
        return f

    if v is None:
        return None
    if isinstance(v, str) and "=" in v:
        items = {}
        for part in v.split(","):
            k, eq, x = part.partition("=")
            k = k.strip()
            if not eq or not k:
                raise ValueError(f"expected tier=number pairs separated by commas (e.g. leaf=1,spine=3), found {_short(v)}")
            if k in items:
                raise ValueError(f"tier {k!r} named twice")
            items[k] = x
        v = items
    if isinstance(v, dict):
        if not v:
            raise ValueError("an empty mapping caps nothing; name leaf and/or spine")
        out = {}
        for k, x in v.items():
            if k not in OVERSUBSCRIPTION_CAP_TIERS:
                raise ValueError(f"unknown tier {_short(k)}; expected {' or '.join(OVERSUBSCRIPTION_CAP_TIERS)} "
                                 f"(the tiers with uplinks)")
            out[k] = num(x, k)
        return out
    return num(v, "")


class Goals(_M):
    target_utilization: Annotated[float, Field(gt=0, le=1)] = 0.8
    survive: Literal["none", "link", "switch", "plane"] = "none"
    # what the link budget minimises (topo optimize --objective, topo budget --objective override it)
    objective: Literal["cost", "power", "balanced"] = "cost"
    time_limit_s: Annotated[float, Field(gt=0, le=limits.MAX_TIME_LIMIT_S)] = 10.0
    seed: Seed = 1
    workers: Annotated[int, Field(ge=1, le=limits.MAX_WORKERS)] = 1
    # topo optimize / topo budget --for-transport: the budget may slow the jobs (summed time and
    # 95th-percentile penalty) by at most this factor under the cluster's own transport model
    # (RoCE hashing, UEC spraying); null: size for ideal ECMP only
    max_job_slowdown: Optional[Annotated[float, Field(ge=1, le=1e6)]] = 1.05
    # topo budget / topo optimize: the largest down:up capacity ratio per tier, one number for
    # every tier with uplinks or {leaf: 1, spine: 3}; a tier not named is uncapped; null: none
    # (topo budget --max-oversubscription overrides it)
    max_oversubscription: Annotated[
        Any, BeforeValidator(oversubscription_caps),
        WithJsonSchema({"anyOf": [{"type": "null"}, {"type": "number", "minimum": 1},
                                  {"type": "object", "additionalProperties": False, "minProperties": 1,
                                   "properties": {"leaf": {"type": "number", "minimum": 1},
                                                  "spine": {"type": "number", "minimum": 1}}}]})] = None


class Scenario(_M):
    """Traffic the fabric must carry with every switch link at or under the target utilisation
    (topo budget, topo optimize): ``uniform`` (every endpoint sends ``gbps_per_endpoint`` on the
    wire, spread evenly over all other endpoints), ``permutation`` (the worst case over every
    permutation at ``gbps_per_endpoint``; a bound, see topo.linkbudget) or ``jobs`` (the placed
    jobs and the file's traffic patterns, their rates times ``growth``)."""
    kind: Literal["uniform", "permutation", "jobs"]
    gbps_per_endpoint: Optional[Annotated[float, Field(gt=0, le=1e6)]] = None
    growth: Annotated[float, Field(ge=1, le=1e3)] = 1.0

    @model_validator(mode="after")
    def _fields_of_kind(self):
        if self.kind in ("uniform", "permutation") and self.gbps_per_endpoint is None:
            raise ValueError(f"a {self.kind} scenario needs gbps_per_endpoint (Gb/s each endpoint sends on the wire)")
        if self.kind == "jobs" and self.gbps_per_endpoint is not None:
            raise ValueError("a jobs scenario takes its rates from the jobs; gbps_per_endpoint is for uniform "
                             "and permutation (use growth to scale the job mix)")
        if self.kind != "jobs" and self.growth != 1.0:
            raise ValueError(f"growth scales the job mix (kind: jobs); for a {self.kind} scenario raise "
                             f"gbps_per_endpoint instead")
        return self


class Requirements(_M):
    """What the design must provide, whatever the jobs of today (topo budget, topo optimize):
    a bisection floor per accelerator (describe's bisection_per_accelerator_gbps) and the
    traffic scenarios it must carry at goals.target_utilization. ``scenarios`` null: the jobs
    and traffic patterns of the file, as without requirements; a list: exactly those scenarios
    (the job mix only if a ``jobs`` scenario is listed)."""
    min_bisection_gbps_per_accelerator: Optional[Annotated[float, Field(gt=0, le=1e6)]] = None
    scenarios: Optional[list[Scenario]] = Field(default=None, min_length=1, max_length=16)


class FailureRates(_M):
    link_per_year: Annotated[float, Field(ge=0, le=1)] = 0.0
    switch_per_year: Annotated[float, Field(ge=0, le=1)] = 0.0
    nic_per_year: Annotated[float, Field(ge=0, le=1)] = 0.0


class ClusterFile(_M):
    """The cluster file as written (before catalog merge)."""
    version: Literal[1] = 1
    name: Name = "cluster"
    description: Text = ""
    catalog: CatalogOverrides = CatalogOverrides()
    node_types: list[NodeType] = Field(min_length=1, max_length=10_000)
    racks: list[RackType] = Field(min_length=1, max_length=100_000)
    floor: Floor = Floor()
    fabric: Fabric = Fabric()
    transport: Transport = Transport()
    jobs: list[Job] = Field(default=[], max_length=limits.MAX_JOBS)
    traffic: list[TrafficPattern] = Field(default=[], max_length=limits.MAX_TRAFFIC_PATTERNS)
    costs: Costs = Costs()
    goals: Goals = Goals()
    requirements: Requirements = Requirements()
    failure_rates: FailureRates = FailureRates()
    busy_nodes: list[Annotated[str, Field(min_length=1, max_length=1024)]] = []


# --- resolved (normalised) cluster -------------------------------------------------
class ResolvedNodeType(_M):
    name: str
    accelerator: Optional[str]
    accelerators: int
    nics: int
    nic_gbps: float
    nic_ports: int
    power_busy_kw: float
    power_idle_kw: float
    scaleup_size: int
    scaleup_gbps: float
    accel_power_w: float
    sources: dict[str, str] = {}


class ResolvedRack(_M):
    name: str
    count: int
    nodes: dict[str, int]
    cooling: str
    power_limit_kw: float
    power_limit_hard: bool


class ResolvedTier(_M):
    switch_name: str
    switch: SwitchSpec
    oversubscription: float
    bundle: Optional[int]
    partial_pod_bundle: Optional[int] = None


class Cluster(_M):
    """A validated cluster: the file plus catalog values, units normalised."""
    file: ClusterFile
    node_types: dict[str, ResolvedNodeType]
    racks: list[ResolvedRack]
    tiers: list[ResolvedTier]
    switches: dict[str, SwitchSpec]
    optics: dict[str, OpticSpec]
    header_bytes: int
    base_dir: str = "."

    @property
    def name(self) -> str:
        return self.file.name

    @property
    def fabric(self) -> Fabric:
        return self.file.fabric

    @property
    def jobs(self) -> list[Job]:
        return self.file.jobs

    def counts(self) -> dict[str, int]:
        """Totals the file implies, computed without building anything."""
        nodes = accels = endpoints = racks = 0
        for r in self.racks:
            racks += r.count
            for t, n in r.nodes.items():
                nt = self.node_types[t]
                nodes += r.count * n
                accels += r.count * n * nt.accelerators
                endpoints += r.count * n * max(nt.accelerators, 1)
        return {"racks": racks, "nodes": nodes, "accelerators": accels, "endpoints": endpoints}


# --- loading ------------------------------------------------------------------------
def _loc_to_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.startswith(("function-", "tagged-union")):
            continue
        elif part in ("str", "SwitchSpec", "int", "float", "constrained-str", "list[...]"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(root)"


def _short(v: Any) -> str:
    """A value for an error message, at most 60 characters, in time bounded by
    that length (reprlib never walks more than a few levels of a shared YAML
    alias tree)."""
    import reprlib
    r = reprlib.Repr()
    r.maxlevel, r.maxdict, r.maxlist, r.maxtuple, r.maxset = 2, 4, 4, 4, 4
    r.maxstring, r.maxother, r.maxlong = 60, 60, 40
    s = r.repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def parse_text(text: str, suffix: str, source: str = "") -> Any:
    """Parse JSON or YAML text into Python data (bounded: see :mod:`topo.inputs`);
    raise SpecError on a syntax error or a value over a limit."""
    from .inputs import parse
    return parse(text, suffix, source)


def read_file(path: Union[str, Path]) -> str:
    """A cluster or sweep file's text: refused by size before it is read, UTF-8 only."""
    from .inputs import read_text
    return read_text(path, "(file)", limit=limits.MAX_CLUSTER_FILE_BYTES, what="cluster file")


def load(path: Union[str, Path]) -> Cluster:
    """Read, validate and resolve a cluster file (JSON or YAML).

    Raises :class:`SpecError` listing every problem with its JSON path.
    """
    p = Path(path)
    text = read_file(p)
    data = parse_text(text, p.suffix.lower(), str(p))
    return from_dict(data, source=str(p), base_dir=str(p.parent))


def from_dict(data: Any, source: str = "", base_dir: str = ".") -> Cluster:
    """Validate and resolve a cluster given as Python data."""
    if not isinstance(data, dict):
        raise SpecError([("(root)", f"expected an object at the top level, found {type(data).__name__}")], source)
    try:
        f = ClusterFile.model_validate(data)
    except ValidationError as e:
        errs = []
        for err in e.errors():
            msg = err["msg"].removeprefix("Value error, ")
            found = "" if err["type"] == "missing" else f" (found {_short(err.get('input'))})"
            errs.append((_loc_to_path(err["loc"]), msg + found))
        raise SpecError(errs, source)
    return _resolve(f, source, base_dir)


def _resolve(f: ClusterFile, source: str, base_dir: str) -> Cluster:
    errs: list[tuple[str, str]] = []
    accels = {k: AcceleratorSpec(**{kk: vv for kk, vv in v.items() if kk != "unverified"})
              for k, v in catalog.ACCELERATORS.items()}
    accels.update(f.catalog.accelerators)
    switches = {k: SwitchSpec(**{kk: vv for kk, vv in v.items() if kk != "unverified"})
                for k, v in catalog.SWITCHES.items()}
    switches.update(f.catalog.switches)
    optics = {k: OpticSpec(**{kk: vv for kk, vv in v.items() if kk != "unverified"})
              for k, v in catalog.OPTICS.items()}
    optics["lpo"] = OpticSpec(**{kk: vv for kk, vv in catalog.LPO.items() if kk != "unverified"})
    optics.update(f.catalog.optics)

    # node types
    node_types: dict[str, ResolvedNodeType] = {}
    for i, nt in enumerate(f.node_types):
        path = f"node_types[{i}]"
        if nt.name in node_types:
            errs.append((f"{path}.name", f"duplicate node type name {nt.name!r}"))
            continue
        base: dict = {}
        if nt.platform is not None:
            if nt.platform not in catalog.PLATFORMS:
                errs.append((f"{path}.platform", f"unknown preset {nt.platform!r}; expected one of {sorted(catalog.PLATFORMS)}"))
                continue
            base = dict(catalog.PLATFORMS[nt.platform])
        given = {k: v for k, v in nt.model_dump().items() if v is not None}
        merged = {**base, **{k: v for k, v in given.items() if k not in ("name", "platform", "scaleup")}}
        accel_name = merged.get("accelerator")
        n_acc = merged.get("accelerators", 0 if accel_name is None else None)
        if n_acc is None:
            errs.append((f"{path}.accelerators", "missing: give accelerators per node or a platform preset"))
            continue
        aspec = None
        if n_acc > 0:
            if accel_name is None:
                errs.append((f"{path}.accelerator", "missing: a node with accelerators needs an accelerator model"))
                continue
            if accel_name not in accels:
                errs.append((f"{path}.accelerator", f"unknown preset {accel_name!r}; expected one of {sorted(accels)}"))
                continue
            aspec = accels[accel_name]
        missing = [k for k in ("nic_gbps", "power_busy_kw") if k not in merged]
        for k in missing:
            errs.append((f"{path}.{k}", "missing: give it or choose a platform preset"))
        if missing:
            continue
        nics = merged.get("nics", max(n_acc, 1))
        busy = merged["power_busy_kw"]
        idle = merged.get("power_idle_kw", busy * 0.25)
        if idle > busy:
            errs.append((f"{path}.power_idle_kw", f"idle power {idle} kW exceeds busy power {busy} kW"))
        if n_acc > 0 and nics % n_acc != 0 and n_acc % nics != 0:
            errs.append((f"{path}.nics", f"{nics} NICs cannot be shared evenly by {n_acc} accelerators"))
        su_size = 1
        su_gbps = 0.0
        if n_acc > 0:
            su_size = nt.scaleup.size if nt.scaleup else aspec.scaleup_domain
            su_gbps = (nt.scaleup.gbps_per_accelerator if nt.scaleup and nt.scaleup.gbps_per_accelerator
                       else aspec.scaleup_gbps)
            if su_size % n_acc != 0 and n_acc % su_size != 0:
                errs.append((f"{path}.scaleup.size", f"scale-up domain of {su_size} does not align with {n_acc} accelerators per node"))
        srcs = {"platform": base.get("source", "")} if base else {}
        if aspec is not None:
            srcs["accelerator"] = aspec.source
        node_types[nt.name] = ResolvedNodeType(
            name=nt.name, accelerator=accel_name if n_acc else None, accelerators=n_acc, nics=nics,
            nic_gbps=float(merged["nic_gbps"]), nic_ports=merged.get("nic_ports", 1),
            power_busy_kw=float(busy), power_idle_kw=float(idle), scaleup_size=su_size,
            scaleup_gbps=float(su_gbps), accel_power_w=float(aspec.power_w) if aspec else 0.0, sources=srcs)

    # racks
    racks: list[ResolvedRack] = []
    names = set()
    total_endpoints = total_ports = 0
    for i, r in enumerate(f.racks):
        path = f"racks[{i}]"
        if r.name in names:
            errs.append((f"{path}.name", f"duplicate rack type name {r.name!r}"))
        names.add(r.name)
        ok = True
        for t, n in r.nodes.items():
            if t not in node_types:
                if t not in {nt.name for nt in f.node_types}:
                    errs.append((f"{path}.nodes.{t}", f"unknown node type {t!r}; expected one of {sorted(nt.name for nt in f.node_types)}"))
                ok = False
                continue
            nt = node_types[t]
            total_endpoints += r.count * n * max(nt.accelerators, 1)
            total_ports += r.count * n * max(nt.nics * nt.nic_ports, max(nt.accelerators, 1))
            if nt.accelerators and nt.scaleup_size > nt.accelerators:
                if (n * nt.accelerators) % nt.scaleup_size != 0:
                    errs.append((f"{path}.nodes.{t}", f"{n} nodes x {nt.accelerators} accelerators do not fill whole scale-up domains of {nt.scaleup_size}"))
        if not ok:
            continue
        limit = r.power_limit_kw if r.power_limit_kw is not None else catalog.RACK_LIMIT_KW[r.cooling]["kw"]
        racks.append(ResolvedRack(name=r.name, count=r.count, nodes=dict(r.nodes), cooling=r.cooling,
                                  power_limit_kw=float(limit), power_limit_hard=r.power_limit_hard))
        if r.power_limit_hard and not errs:
            need = sum(node_types[t].power_busy_kw * n for t, n in r.nodes.items())
            if need > limit + 1e-9:
                errs.append((f"{path}.power_limit_kw", f"hard limit {limit:g} kW is below the {need:g} kW its nodes draw when busy"))
    if total_endpoints > MAX_ENDPOINTS:
        errs.append(("racks", f"the file declares {total_endpoints:.3g} endpoints; topo supports at most {MAX_ENDPOINTS:,}"))
        raise SpecError(errs, source)
    if total_ports > limits.MAX_PORTS:
        errs.append(("racks", f"the file declares {total_ports:.3g} NIC ports (nodes x nics x nic_ports); "
                              f"topo supports at most {limits.MAX_PORTS:,}"))
        raise SpecError(errs, source)
    if total_endpoints == 0 and not errs:
        errs.append(("racks", "the file declares no endpoints"))

    # fabric tiers
    tiers: list[ResolvedTier] = []
    fab = f.fabric
    for i, t in enumerate(fab.tiers):
        path = f"fabric.tiers[{i}]"
        if isinstance(t.switch, str):
            if t.switch not in switches:
                errs.append((f"{path}.switch", f"unknown preset {t.switch!r}; expected one of {sorted(switches)}"))
                continue
            sw, swname = switches[t.switch], t.switch
        else:
            sw, swname = t.switch, f"tier{i}-switch"
        if t.partial_pod_bundle is not None and (i != 1 or len(fab.tiers) != 3 or fab.family == "fat_tree"):
            errs.append((f"{path}.partial_pod_bundle", "applies to the spine tier (tiers[1]) of a 3-tier Clos only"))
        tiers.append(ResolvedTier(switch_name=swname, switch=sw, oversubscription=t.oversubscription, bundle=t.bundle,
                                  partial_pod_bundle=t.partial_pod_bundle))
    if fab.family == "fat_tree":
        if fab.k is None:
            errs.append(("fabric.k", "missing: a fat tree needs its switch radix k"))
        elif fab.k % 2:
            errs.append(("fabric.k", f"k must be even (found {fab.k})"))
        elif fab.k ** 3 // 4 > MAX_ENDPOINTS:
            errs.append(("fabric.k", f"a k={fab.k} fat tree has {fab.k ** 3 // 4:,} host ports; topo builds at most "
                                     f"{MAX_ENDPOINTS:,} (k <= {int((4 * MAX_ENDPOINTS) ** (1 / 3))})"))
        elif fab.k ** 3 // 4 < total_endpoints:
            errs.append(("fabric.k", f"a k={fab.k} fat tree holds {fab.k ** 3 // 4} hosts; the racks declare {total_endpoints}"))
        # a k-ary fat tree is one switch model, 1:1 at every tier, one edge port per host: say
        # anything else with family clos (which builds it exactly) instead of having it ignored
        for i, t in enumerate(fab.tiers):
            if t.oversubscription != 1.0:
                errs.append((f"fabric.tiers[{i}].oversubscription", f"a k-ary fat tree is 1:1 at every tier by "
                             f"construction (found {t.oversubscription:g}); use family clos for an oversubscribed tree"))
        if tiers and any(t.switch.port_gbps != tiers[0].switch.port_gbps for t in tiers[1:]):
            errs.append(("fabric.tiers", "a k-ary fat tree is built of one switch model at one port speed "
                         f"({tiers[0].switch.port_gbps:g}G from tiers[0]); tiers with other port speeds would be "
                         "ignored: use family clos"))
        if fab.dual_homed:
            errs.append(("fabric.dual_homed", "a k-ary fat tree has one edge port per host; use family clos "
                                              "(or rail_optimized) with dual_homed"))
    elif fab.family == "custom":
        if fab.custom is None:
            errs.append(("fabric.custom", "missing: a custom fabric needs graphml or edge_list"))
    else:
        if not 1 <= len(fab.tiers) <= 3:
            errs.append(("fabric.tiers", f"expected 1 to 3 tiers, found {len(fab.tiers)}"))
        if fab.family in ("rail_optimized", "rail_only"):
            if fab.planes > 1:
                errs.append(("fabric.planes", "rail-optimized and rail-only fabrics are built with one plane per rail; leave planes at 1"))
    if fab.family in ("custom",):
        for fld in ("leaves_per_pod", "spines_per_pod", "pods", "super_spines"):
            if getattr(fab, fld) is not None:
                errs.append((f"fabric.{fld}", "a custom graph states its own structure; leave it out"))
    if fab.dual_homed and fab.planes > 1:
        errs.append(("fabric.dual_homed", "dual-homed NICs and multiple planes cannot be combined"))
    n_rails = max([nt.accelerators for nt in node_types.values()] + [1])
    for tname, nt in node_types.items():
        ports = nt.nic_ports
        ti = [x.name for x in f.node_types].index(tname)
        if fab.planes > 1 and ports % fab.planes and ports != 1:
            errs.append((f"node_types[{ti}].nic_ports",
                         f"{ports} ports per NIC cannot be spread over {fab.planes} planes"))
        if fab.dual_homed and ports % 2:
            errs.append((f"node_types[{ti}].nic_ports",
                         f"dual-homed NICs need an even number of ports (found {ports})"))
        elif fab.dual_homed and nt.accelerators and (nt.nics * ports // nt.accelerators) % 2:
            errs.append((f"node_types[{ti}].nics",
                         f"dual-homed: {nt.nics} NICs x {ports} ports for {nt.accelerators} accelerators give "
                         f"{max(nt.nics * ports // nt.accelerators, 1)} port(s) per accelerator; each accelerator "
                         f"needs its NIC's two ports (a whole number of pairs)"))
        stated = f.node_types[ti].rails
        if stated is not None:
            if fab.family not in ("rail_optimized", "rail_only"):
                errs.append((f"node_types[{ti}].rails", f"rails apply to rail-optimized and rail-only fabrics "
                                                         f"(family is {fab.family})"))
            elif nt.accelerators:
                errs.append((f"node_types[{ti}].rails", "an accelerator's NIC is on its accelerator's rail; rails "
                                                         "applies to nodes without accelerators"))
            elif len(stated) != nt.nics * ports:
                errs.append((f"node_types[{ti}].rails", f"give one rail per fabric port: {nt.nics} NICs x {ports} "
                                                         f"ports = {nt.nics * ports}, found {len(stated)}"))
            else:
                bad = [r for r in stated if r >= n_rails]
                if bad:
                    errs.append((f"node_types[{ti}].rails", f"rail {bad[0]} does not exist: the fabric has "
                                                             f"{n_rails} rail(s), 0 to {n_rails - 1}"))

    # jobs
    counts_acc = sum(r.count * n * node_types[t].accelerators for r in racks for t, n in r.nodes.items() if t in node_types)
    jnames = set()
    for i, j in enumerate(f.jobs):
        path = f"jobs[{i}]"
        if j.name in jnames:
            errs.append((f"{path}.name", f"duplicate job name {j.name!r}"))
        jnames.add(j.name)
        if j.accelerators > counts_acc:
            errs.append((f"{path}.accelerators", f"job needs {j.accelerators} accelerators; the cluster has {counts_acc}"))
        inner = j.tp * j.pp * j.cp
        if j.accelerators % inner:
            errs.append((f"{path}.accelerators", f"{j.accelerators} is not a multiple of tp*pp*cp = {inner}"))
        elif j.dp is not None and j.dp * inner != j.accelerators:
            errs.append((f"{path}.dp", f"tp*pp*cp*dp = {j.dp * inner} differs from accelerators = {j.accelerators}"))
        dp = j.dp or max(j.accelerators // inner, 1)
        if dp % j.ep and j.ep > 1:
            errs.append((f"{path}.ep", f"ep={j.ep} must divide dp={dp}"))
        try:
            parse_rank_order(j.rank_order)
        except ValueError as e:
            errs.append((f"{path}.rank_order", str(e)))
    n_nodes = sum(r.count * n for r in racks for n in r.nodes.values())
    for where, lst in [("busy_nodes", f.busy_nodes)] + [(f"jobs[{i}].nodes", j.nodes) for i, j in enumerate(f.jobs)]:
        err = _hostlist_error(lst, n_nodes)
        if err:
            errs.append((where + err[0], err[1]))
    for i, tp in enumerate(f.traffic):
        if tp.pattern == "matrix" and not tp.file:
            errs.append((f"traffic[{i}].file", "missing: a matrix pattern needs a CSV file of src,dst,bytes"))
    t = f.transport
    if t.qps_per_connection is not None and (t.channels is not None or t.qps_per_channel is not None):
        both = " and ".join(f"transport.{k} ({getattr(t, k)})" for k in ("channels", "qps_per_channel")
                            if getattr(t, k) is not None)
        errs.append(("transport.qps_per_connection",
                     f"the one-channel shorthand ({t.qps_per_connection}) is stated together with {both}: give "
                     f"channels and qps_per_channel, or qps_per_connection alone"))
    elif t.n_channels * t.qps > limits.MAX_QPS_PER_CONNECTION:
        errs.append(("transport.qps_per_channel",
                     f"{t.n_channels} channels x {t.qps} queue pairs per channel = {t.n_channels * t.qps:,} hashed "
                     f"flows per connection; at most {limits.MAX_QPS_PER_CONNECTION:,}"))
    if errs:
        raise SpecError(errs, source)
    tr = catalog.TRANSPORTS[f.transport.protocol]
    header = f.transport.header_bytes if f.transport.header_bytes is not None else tr["header_bytes"] + tr["wire_bytes"]
    return Cluster(file=f, node_types=node_types, racks=racks, tiers=tiers, switches=switches, optics=optics,
                   header_bytes=int(header), base_dir=base_dir)


def _hostlist_error(names: list, n_nodes: int) -> tuple:
    """Why a list of node names and hostlist expressions cannot name nodes of a
    cluster of ``n_nodes`` nodes (malformed, or more names than nodes), as (path
    suffix, message), or ()."""
    from .hostlist import count
    total = 0
    for k, expr in enumerate(names):
        try:
            total += count(expr)
        except ValueError as e:
            return f"[{k}]", str(e)
        if total > n_nodes:
            return "", f"names {total:,} or more nodes; the cluster has {n_nodes:,}"
    return ()


def parse_rank_order(text: str) -> tuple:
    """A job's ``rank_order`` as the four dimensions fastest first, e.g.
    ``("tp", "cp", "pp", "dp")``. Names are tp, cp, pp, dp, each once, joined by
    ``-``; TP must be fastest (a TP group takes consecutive ranks inside one
    scale-up domain); ``ep`` may appear just before ``dp`` (EP groups are
    consecutive DP ranks) and is dropped. So Megatron-LM's default
    ``tp-cp-ep-dp-pp`` reads as PP slowest; it is Megatron's layout when cp = 1
    (with cp > 1 Megatron forms EP groups over CP and DP ranks together, topo
    over DP ranks with the same CP coordinate). Raises ValueError naming the
    problem."""
    parts = [x.strip().lower() for x in str(text).split("-")]
    known = ("tp", "cp", "pp", "dp", "ep")
    bad = [x for x in parts if x not in known]
    if bad:
        raise ValueError(f"unknown dimension {bad[0]!r} in {text!r}; expected tp, cp, pp, dp (and ep) joined by '-'")
    dup = sorted({x for x in parts if parts.count(x) > 1})
    if dup:
        raise ValueError(f"{dup[0]} appears more than once in {text!r}")
    if "ep" in parts:
        i = parts.index("ep")
        if i + 1 >= len(parts) or parts[i + 1] != "dp":
            raise ValueError(f"ep must come just before dp in {text!r} (EP groups are consecutive DP ranks)")
        parts.remove("ep")
    missing = [x for x in ("tp", "cp", "pp", "dp") if x not in parts]
    if missing:
        raise ValueError(f"{text!r} lacks {', '.join(missing)}; name tp, cp, pp and dp, fastest first")
    if parts[0] != "tp":
        raise ValueError(f"tp must be fastest (first) in {text!r}: a TP group takes consecutive ranks in one "
                         "scale-up domain")
    return tuple(parts)


def json_schema() -> dict:
    """The JSON Schema of the cluster file."""
    s = ClusterFile.model_json_schema()
    s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    s["title"] = "topo cluster file"
    return s


def wire_efficiency(cluster: Cluster) -> float:
    """Goodput / line rate at the cluster's MTU after per-packet headers."""
    mtu = cluster.file.transport.mtu_bytes
    return mtu / (mtu + cluster.header_bytes) if cluster.header_bytes else 1.0

