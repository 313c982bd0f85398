"""The cluster file: schema, loading, validation, unit normalisation.

Owns the edge of the system. A cluster file (JSON or YAML) is parsed once,
checked completely (every error at once, each with its JSON path), merged with
the hardware catalog and returned as a frozen :class:`Cluster`. Everything after
this module trusts its input and must not re-validate it.
"""
from __future__ import annotations

import math
import numbers
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema, model_serializer, \
    model_validator

from topo.model import catalog
from topo.core import limits
from topo.core.errors import SpecError
from topo.core.limits import MAX_ENDPOINTS

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


def _unit_schema(table: dict, unit_name: str, minimum_key: str, low: float = 0.0,
                 high: Optional[float] = None) -> WithJsonSchema:
    any_case = set(_ANY_CASE[id(table)])
    ci = lambda u: "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in u)
    units = "|".join(ci(u) if u in any_case else re.escape(u) for u in sorted(table, key=len, reverse=True))
    return WithJsonSchema({"anyOf": [
        {"type": "number", minimum_key: low, **({"maximum": high} if high is not None else {}),
         "description": f"in {unit_name}"},
        {"type": "string", "pattern": rf"^\s*[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?\s*({units})\s*$",
         "description": f"a value with a unit, normalised to {unit_name}"}]})


Gbps = Annotated[float, _unit_parser(_BW, "Gb/s"), Field(ge=limits.MIN_GBPS, le=limits.MAX_GBPS),
                 _unit_schema(_BW, "Gb/s", "minimum", limits.MIN_GBPS, limits.MAX_GBPS)]
KW = Annotated[float, _unit_parser(_KW, "kW"), Field(ge=0, le=limits.MAX_KW),
               _unit_schema(_KW, "kW", "minimum", 0.0, limits.MAX_KW)]
Bytes = Annotated[float, _unit_parser(_BYTES, "bytes"), Field(ge=0, le=limits.MAX_BYTES),
                  _unit_schema(_BYTES, "bytes", "minimum", 0.0, limits.MAX_BYTES)]
Metres = Annotated[float, _unit_parser(_METRES, "metres"), Field(gt=0, le=limits.MAX_METRES),
                   _unit_schema(_METRES, "metres", "exclusiveMinimum", 0.0, limits.MAX_METRES)]
PosInt = Annotated[int, Field(ge=1, le=limits.MAX_INT)]
Count = Annotated[int, Field(ge=1, le=limits.MAX_ENDPOINTS)]   # a count of things that are built
Name = Annotated[str, Field(min_length=1, max_length=limits.MAX_NAME_LEN)]
Text = Annotated[str, Field(max_length=limits.MAX_STRING)]
Money = Annotated[float, Field(ge=0, le=1e15)]
Seed = Annotated[int, Field(ge=0, le=limits.MAX_SEED)]


class _M(BaseModel):
    # allow_inf_nan=False: Infinity, NaN and strings such as "1e400" are refused, never saved as null
    # protected_namespaces=(): `model_params_b` is a field, not pydantic's (older pydantic warned)
    # use_attribute_docstrings: the string under each field is its description in the JSON Schema
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, protected_namespaces=(),
                              use_attribute_docstrings=True)


# --- catalog overrides -------------------------------------------------------------
class AcceleratorSpec(_M):
    power_w: Annotated[float, Field(gt=0, le=limits.MAX_KW * 1e3)]
    """Power of one accelerator in watts (plain number, required). Recorded with the model; rack and node power come from node_types[].power_busy_kw, not from this."""
    scaleup_gbps: Annotated[float, Field(ge=0, le=limits.MAX_GBPS)] = 0.0
    """Scale-up bandwidth per accelerator in Gb/s, one direction (plain number). Used when the node type's scaleup gives no gbps_per_accelerator. Default 0."""
    scaleup_domain: Annotated[int, Field(ge=1, le=limits.MAX_ENDPOINTS)] = 1
    """Accelerators per scale-up domain, used when the node type has no scaleup.size. Default 1 (each accelerator alone)."""
    hbm_gb: Annotated[float, Field(ge=0, le=1e9)] = 0.0
    """HBM capacity per accelerator in GB. Informational: not used in any calculation. Default 0."""
    source: Text = "given in the cluster file"
    """Free text saying where these figures come from (e.g. a datasheet URL). Recorded, not used in calculations."""


class LineCards(_M):
    """A chassis switch's line cards: `slots` cards of `ports_per_card` ports (slots x
    ports_per_card = radix). The per-card power and price, where a source gives them (else the
    user states them), let a tier populate part of the chassis; the switch's power_w and cost_usd
    are the fully populated chassis."""
    slots: Annotated[int, Field(ge=1, le=64)]
    """Line-card slots in the chassis (1 to 64); slots x ports_per_card must equal the switch's radix."""
    ports_per_card: Annotated[int, Field(ge=1, le=limits.MAX_RADIX)]
    """Ports on each line card, at the switch's port speed."""
    power_w_per_card: Optional[Annotated[float, Field(ge=0, le=limits.MAX_KW * 1e3)]] = None
    """Power of one line card in watts, from a source or your own figure. Needed to populate a chassis in part; unset, partial population is refused (nothing is invented)."""
    cost_usd_per_card: Optional[Money] = None
    """Price of one line card in USD, from a source or your own figure. Needed to populate a chassis in part."""
    source: Text = "given in the cluster file"
    """Free text saying where the line-card figures come from. Recorded, not used in calculations."""


class SwitchSpec(_M):
    radix: Annotated[int, Field(ge=2, le=limits.MAX_RADIX)]
    """Number of ports, all at port_gbps (2 to 4,096)."""
    port_gbps: Gbps
    """Speed of each port in Gb/s (number, or a string such as 400G, 800Gbps, 1.6Tbps). A faster port facing slower ones breaks out into lanes of the slower speed."""
    power_w: Annotated[float, Field(ge=0, le=limits.MAX_KW * 1e3)]
    """Power of one switch in watts (plain number). Counts in network power and energy cost, in its compute rack for top-of-rack leaves, else in a network rack."""
    cost_usd: Money
    """Price of one switch in USD, counted in capex."""
    ru: Annotated[int, Field(ge=1, le=64)] = 2
    """Rack units the switch occupies. Recorded only: network racks are filled by power, not by space. Default 2."""
    source: Text = "given in the cluster file"
    """Free text saying where these figures come from (e.g. a datasheet URL). Recorded, not used in calculations."""
    latency_ns: Optional[Annotated[float, Field(ge=0, le=1e6)]] = None
    """Port-to-port latency of one hop through this switch in nanoseconds (unloaded, from its datasheet); the collective-time model adds it per switch on a path. Unset (every preset: no primary source found): no switch latency is counted, and the output says so."""
    line_cards: Optional[LineCards] = None
    """For a chassis switch: its line cards (slots, ports per card, per-card power and price), so a tier can populate part of it. power_w and cost_usd stay the full chassis."""

    @model_validator(mode="after")
    def _cards(self):
        lc = self.line_cards
        if lc is None:
            return self
        if lc.slots * lc.ports_per_card != self.radix:
            raise ValueError(f"line_cards: {lc.slots} slots x {lc.ports_per_card} ports = "
                             f"{lc.slots * lc.ports_per_card}, not the radix {self.radix}")
        if lc.power_w_per_card is not None and lc.slots * lc.power_w_per_card > self.power_w:
            raise ValueError(f"line_cards: {lc.slots} x {lc.power_w_per_card:g} W per card exceed the fully "
                             f"populated chassis's power_w {self.power_w:g}")
        if lc.cost_usd_per_card is not None and lc.slots * lc.cost_usd_per_card > self.cost_usd:
            raise ValueError(f"line_cards: {lc.slots} x {lc.cost_usd_per_card:g} USD per card exceed the fully "
                             f"populated chassis's cost_usd {self.cost_usd:g}")
        return self


class OpticSpec(_M):
    max_m: Metres
    """Longest link in metres this class serves (number or e.g. 100m, 300ft). A link takes the first of dac, aec, mmf, smf_dr, smf_fr whose max_m covers it; lpo's decides which classes LPO replaces."""
    watts: Annotated[float, Field(ge=0, le=1e4)]
    """Power per unit in watts (per transceiver when ends is 2, per cable when 1), as an 800G figure: scaled by link speed (400G x0.6, 200G x0.4, 1.6T x1.6). Plain number."""
    cost_usd: Money
    """Price per unit in USD (per transceiver when ends is 2, per cable when 1), as an 800G figure scaled by link speed like watts."""
    ends: Literal[1, 2] = 2
    """Units a link needs: 1 for a cable priced whole (DAC, AEC), 2 for one transceiver at each end (optics). Default 2."""
    source: Text = "given in the cluster file"
    """Free text saying where these figures come from (e.g. a datasheet URL). Recorded, not used in calculations."""


class CatalogOverrides(_M):
    accelerators: dict[Name, AcceleratorSpec] = {}
    """Accelerator models by name, added to the catalog or replacing a preset of that name (whole: give every required field). node_types[].accelerator refers to them."""
    switches: dict[Name, SwitchSpec] = {}
    """Switch models by name, added to the catalog or replacing a preset of that name (whole). fabric.tiers[].switch refers to them."""
    optics: dict[Literal["dac", "aec", "mmf", "smf_dr", "smf_fr", "lpo"], OpticSpec] = {}
    """Optic or cable specs by reach class: dac, aec, mmf, smf_dr, smf_fr, lpo. An entry replaces that class's preset whole."""


# --- nodes, racks, floor ---------------------------------------------------------
class ScaleUpOption(_M):
    """One scale-up domain size the design search may choose, with the scale-up fabric's cost and power as the file states them."""
    size: Annotated[int, Field(ge=1, le=limits.MAX_ENDPOINTS)]
    """Accelerators per scale-up domain for this option. Must divide, or be a multiple of, the node's accelerators; distinct within the list."""
    cost_usd_per_accelerator: Money
    """Capital cost in USD of the scale-up fabric (switches, cables, trays) per accelerator at this size: the file's own figure, used as stated (topo has no public figure to check it against)."""
    watts_per_accelerator: Annotated[float, Field(ge=0, le=limits.MAX_KW * 1e3)]
    """Power in watts of the scale-up fabric per accelerator at this size, added to the design search's network power and energy: the file's own figure, used as stated."""


class ScaleUp(_M):
    """A scale-up domain (NVLink, UALink, Infinity Fabric): `size` accelerators."""
    size: Annotated[int, Field(ge=1, le=limits.MAX_ENDPOINTS)]
    """Accelerators per scale-up domain (NVLink, UALink...). Must divide, or be a multiple of, the node's accelerators; a larger domain spans consecutive nodes of this type in one rack."""
    gbps_per_accelerator: Optional[Gbps] = None
    """Scale-up bandwidth per accelerator in Gb/s, one direction (number or unit string; Gb/s is bits, GB/s bytes). Default: the accelerator's scaleup_gbps."""
    technology: Name = "nvlink"
    """Label of the scale-up interconnect (e.g. nvlink, ualink). Informational: not used in any calculation. Default nvlink."""
    options: Optional[list[ScaleUpOption]] = Field(default=None, min_length=1, max_length=64)
    """Domain sizes the design search (topo design --scaleup) may choose, each with the scale-up fabric's cost and power per accelerator as stated here. Not used outside the design search; size stays the domain built. Default: none (the size is not a decision)."""


class NodeType(_M):
    name: Name
    """Name of this node type, unique in the file (1 to 128 characters); racks[].nodes refers to it."""
    platform: Optional[Name] = None
    """Platform preset giving every other field: hgx-h100, hgx-b200, mi300x-oam, mi355x-oam, helios-tray, nvl72-tray, cpu-host, hgx-a100-8x200g. Fields given here override it."""
    accelerator: Optional[Name] = None
    """Accelerator model: a catalog name (H100, B200, GB200, MI300X, MI355X, MI450, MI455X, A100) or one in catalog.accelerators. Omitted (and no platform): a host without accelerators."""
    accelerators: Optional[Annotated[int, Field(ge=0, le=limits.MAX_ACCELERATORS_PER_NODE)]] = None
    """Accelerators per node; 0 is a host without accelerators (one endpoint). Required when an accelerator is named without a platform; 0 when none is named."""
    nics: Optional[Annotated[int, Field(ge=1, le=limits.MAX_NICS_PER_NODE)]] = None
    """Scale-out NICs per node; NICs and accelerators must share evenly (one divides the other). Default: the platform's value, else one per accelerator (1 for a host)."""
    # per NIC: a NIC of nic_ports ports gives each port nic_gbps / nic_ports
    nic_gbps: Optional[Gbps] = None
    """Bandwidth of each NIC in Gb/s (number or e.g. 400G, 1.6Tbps); a NIC of nic_ports ports gives each port nic_gbps / nic_ports. Required unless the platform gives it."""
    nic_ports: Optional[Annotated[int, Field(ge=1, le=limits.MAX_NIC_PORTS)]] = None
    """Fabric ports per NIC, each a separate link at nic_gbps / nic_ports. Must be even when dual_homed. Default: the platform's value, else 1."""
    power_busy_kw: Optional[KW] = None
    """Whole-node power at the wall when busy, in kW (number or e.g. 10.2kW, 800W). Required unless the platform gives it."""
    power_idle_kw: Optional[KW] = None
    """Whole-node power when idle, in kW (number or e.g. 2.6kW); free nodes count at this in rack power. Default: the platform's value, else 25% of power_busy_kw."""
    scaleup: Optional[ScaleUp] = None
    """Scale-up domain of this node type's accelerators (size, bandwidth). Omitted: the accelerator model's scaleup_domain and scaleup_gbps. Refused for hosts without accelerators."""
    # rail-optimized and rail-only fabrics, nodes without accelerators: the rail of each fabric port
    # (nics x nic_ports of them, in order). Default: port k on rail k mod rails (a NIC's two ports
    # on one rail when dual-homed)
    rails: Optional[list[Annotated[int, Field(ge=0, le=limits.MAX_ACCELERATORS_PER_NODE)]]] = Field(
        default=None, min_length=1, max_length=limits.MAX_NICS_PER_NODE * limits.MAX_NIC_PORTS)
    """Rail-optimized and rail-only fabrics, nodes without accelerators only: the rail of each fabric port (nics x nic_ports entries, in order). Default: port k on rail k mod rails (k // 2 when dual-homed)."""


class RackType(_M):
    name: Name
    """Name of this rack type, unique in the file. Individual racks are named rack000, rack001, ... (those names, not this one, go in pin_racks)."""
    count: Annotated[int, Field(ge=1, le=limits.MAX_RACK_COUNT)] = 1
    """Number of racks of this type. Default 1."""
    nodes: dict[Name, Annotated[int, Field(ge=1, le=limits.MAX_ENDPOINTS)]] = Field(min_length=1)
    """Nodes in each rack, by node type name, e.g. {gpu: 4, cpu: 1}; nodes sit in the rack in this order. At least one entry."""
    cooling: Literal["air", "liquid"] = "air"
    """air or liquid. It only sets the default power_limit_kw: 30 kW for air, 140 kW for liquid. Default air."""
    power_limit_kw: Optional[Annotated[float, _unit_parser(_KW, "kW"), Field(gt=0, le=limits.MAX_KW),
                                       _unit_schema(_KW, "kW", "exclusiveMinimum", 0.0, limits.MAX_KW)]] = None
    """Power limit per rack in kW (number or e.g. 45kW); placement keeps every rack at or under it. Default by cooling: 30 kW air, 140 kW liquid."""
    power_limit_hard: bool = False
    """true: the file is refused if the rack's nodes at busy power exceed the limit, and the budget never adds top-of-rack leaves past it. Placement respects either kind. Default false."""


class Floor(_M):
    racks_per_row: Count = 16
    """Racks per row of the floor layout; racks fill rows in file order. Used for link lengths. Default 16."""
    rack_pitch_m: Metres = 0.6
    """Distance in metres between neighbouring racks in a row (number or e.g. 60cm, 2ft). Link length = Manhattan distance between positions + slack_m. Default 0.6."""
    row_pitch_m: Metres = 3.0
    """Distance in metres between neighbouring rows of racks (number or e.g. 3m, 10ft). Default 3.0."""
    slack_m: Annotated[float, Field(ge=0, le=limits.MAX_METRES)] = 2.0
    """Cable length in metres added to every link's floor distance (plain number; unit strings are not accepted here). Default 2.0."""
    leaf_placement: Literal["tor", "eor"] = "eor"
    """tor: each leaf sits in the rack of its first endpoint and its power counts there; eor: leaves sit at the end of their row. Sets cable lengths and rack power. Default eor."""
    network_rack_power_limit_kw: Annotated[float, Field(gt=0, le=limits.MAX_KW)] = 40.0
    """Power limit in kW (plain number) of each network rack holding non-top-of-rack switches; the budget fills them by power and never picks a switch drawing more. Default 40."""


# --- fabric -----------------------------------------------------------------------
class PortGroup(_M):
    """Ports of one role on a switch: `ports` logical ports of `gbps` each. A speed below the
    switch's port speed is a breakout (port_gbps / gbps logical ports per physical port)."""
    ports: Annotated[int, Field(ge=1, le=limits.MAX_RADIX * 8)]
    """Logical ports in this group, each at gbps. A speed below the switch's port speed is a breakout: port_gbps / gbps logical ports per physical port."""
    gbps: Gbps
    """Speed of each logical port in Gb/s (number or unit string); must divide the switch's port speed."""


class TierPorts(_M):
    """How a tier's switches use their ports: down (towards the endpoints) and up (towards the
    next tier; absent on the top tier). Stated, the port split, the speeds and the
    oversubscription (down capacity / up capacity) follow from it."""
    down: PortGroup
    """The ports facing the endpoints (leaf) or the tier below: count and speed."""
    up: Optional[PortGroup] = None
    """The ports facing the next tier: count and speed. Required below the top tier, refused on it."""


class Tier(_M):
    switch: Union[Name, SwitchSpec] = "th5-128x400"
    """Switch model of this tier: a preset name (th5-64x800, th5-128x400, th4-64x400, deep-buffer-576x400, or one in catalog.switches) or an inline switch spec. Default th5-128x400."""
    # port groups with their own speed and breakout (e.g. 128 x 200G down and 64 x 400G up on a
    # 128 x 400G switch); unset, every port runs at the switch's port speed and the split follows
    # from `oversubscription`
    ports: Optional[TierPorts] = None
    """Port groups with their own speeds: down (towards the endpoints) and up (absent on the top tier), e.g. 128 x 200G down, 64 x 400G up. Unset: every port at port_gbps, split by oversubscription."""
    # a chassis switch populated in part (its switch gives line_cards): line cards per switch, or
    # ports per switch (the cards that hold them); power and price follow the cards populated
    line_cards: Optional[Annotated[int, Field(ge=1, le=64)]] = None
    """A chassis switch populated in part: line cards per switch (its switch must give line_cards with per-card power and price). Radix, power and price follow the cards populated."""
    ports_populated: Optional[Annotated[int, Field(ge=1, le=limits.MAX_RADIX)]] = None
    """A chassis switch populated in part, stated as ports per switch: the cards that hold them are populated. Alternative to line_cards."""
    # down capacity / up capacity of each switch of the tier; below 1 is under-subscribed (more
    # uplink than downlink capacity). Built exactly (the largest whole split of the radix with this
    # ratio) or refused
    oversubscription: Annotated[float, Field(gt=0, le=1e6)] = 1.0
    """Down capacity / up capacity of each switch of this tier (3 = 3:1; below 1 under-subscribed). Built with an exact port split or refused. Top tier and fat_tree: 1. Default 1."""
    bundle: Optional[Annotated[int, Field(ge=1, le=limits.MAX_RADIX)]] = None
    """Parallel links from each switch of this tier to each switch above it (tiers[0]: leaf-spine, tiers[1]: spine-super). Unset: derived (topo describe shows the rule). Refused on the top tier."""
    # spine tier of a 3-tier Clos: links from each spine of the last pod to each of its
    # super-spines when that pod has fewer leaves than the others (default: bundle)
    partial_pod_bundle: Optional[Annotated[int, Field(ge=1, le=limits.MAX_RADIX)]] = None
    """Spine tier (tiers[1]) of a 3-tier Clos only: links from each spine of a partly filled last pod to each super-spine, at most bundle. Default: bundle."""


class CustomGraph(_M):
    graphml: Optional[Annotated[str, Field(min_length=1, max_length=4096)]] = None
    """Path to a GraphML file, relative to the cluster file; nodes with attribute tier 0 are endpoints, edge attribute gbps optional. Read as GraphML only if it ends .graphml or .xml."""
    edge_list: Optional[Annotated[str, Field(min_length=1, max_length=4096)]] = None
    """Path to an edge list, relative to the cluster file: 'u v [gbps]' per line, # comments; nodes named e<number> are endpoints. Give exactly one of graphml and edge_list."""
    link_gbps: Gbps = 400.0
    """Capacity in Gb/s of the graph's links whose file gives none (number or e.g. 400G). Default 400."""

    @model_validator(mode="after")
    def _one(self):
        if (self.graphml is None) == (self.edge_list is None):
            raise ValueError("give exactly one of graphml or edge_list")
        return self


class Fabric(_M):
    family: Literal["fat_tree", "clos", "rail_optimized", "rail_only", "custom"] = "clos"
    """fat_tree (k-ary, from k), clos (leaf-spine[-super] from tiers), rail_optimized (accelerator i's port on a leaf of rail i), rail_only (one network per rail) or custom (graph file). Default clos."""
    k: Optional[Annotated[int, Field(ge=2, le=limits.MAX_RADIX)]] = None
    """fat_tree only, and required there: the switch radix k, even. The endpoint ports must fill all k^2/2 edge switches (k^3/4 host ports). Refused for other families."""
    tiers: list[Tier] = Field(default_factory=lambda: [Tier(), Tier()], max_length=8)
    """Switch tiers, leaf first: 1 to 3 for clos and rail families. fat_tree uses tiers[0]'s port speed, power and price at radix k. Default: two tiers of th5-128x400."""
    planes: Annotated[int, Field(ge=1, le=limits.MAX_PLANES)] = 1
    """Parallel copies of the fabric; NIC port k goes to plane k mod planes, so nic_ports must be 1 or a multiple. Must be 1 for rail families and with dual_homed. Default 1."""
    dual_homed: bool = False
    """Each NIC's two ports go to two different leaves (of its rail when rail-optimized). Needs an even nic_ports; not with fat_tree or planes > 1. Default false."""
    # dual-homed with planes: where each NIC's second port goes. "planes": the NIC's two ports on
    # two planes (port k on plane k mod planes; the dual-ToR, dual-plane design); "leaves": on two
    # leaves of one plane (of its rail on rail-optimized fabrics), the pair of ports k, k+1 on plane
    # (k // 2) mod planes. Default: "planes" with planes > 1, else "leaves"
    dual_homed_across: Optional[Literal["leaves", "planes"]] = None
    """With dual_homed: where a NIC's second port goes: 'planes' (port k on plane k mod planes) or 'leaves' (two leaves of one plane, of its rail on rail-optimized). Default planes if planes > 1, else leaves."""
    custom: Optional[CustomGraph] = None
    """family custom only, and required there: the fabric read from a GraphML file or an edge list."""
    # pod structure stated, not derived (per plane); the builder uses it exactly or refuses with the
    # arithmetic. Unset, each is derived and `topo describe` shows the rule
    leaves_per_pod: Optional[Count] = None
    """Leaves per pod, per plane. Stated: built exactly or refused with the arithmetic; 2 tiers: must equal all leaves. Unset: spine down ports / leaf-spine bundle."""
    spines_per_pod: Optional[Count] = None
    """Spines per pod (per plane on 2 tiers); fixes the leaf-spine bundle = leaf uplinks / spines, which must be whole. Unset: derived from the bundle (topo describe shows it)."""
    pods: Optional[Count] = None
    """Pods per plane (3 tiers); sets leaves per pod = ceil(leaves per plane / pods). 2 tiers: only 1. Unset: ceil(leaves per plane / leaves per pod)."""
    super_spines: Optional[Count] = None
    """Super-spines per plane (3 tiers only); fixes the spine-super bundle and must be a multiple of spines per pod. Unset: spines per pod x spine uplinks / bundle."""


class Transport(_M):
    protocol: Literal["roce", "uec", "ideal"] = "roce"
    """roce (RoCEv2, each queue pair hashed onto one path), uec (Ultra Ethernet packet spraying) or ideal (ideal ECMP, no header overhead). Sets routing model and headers. Default roce."""
    mtu_bytes: Annotated[int, Field(ge=256, le=65536)] = 4096
    """Payload bytes per packet (256 to 65,536); goodput = line rate x mtu_bytes / (mtu_bytes + header_bytes). Default 4096."""
    # RoCE hashing is modelled per (channel, queue pair): a collective opens `channels` channels
    # per peer connection (each 1/channels of the bytes), each channel `qps_per_channel` queue pairs,
    # and every (channel, QP) has its own source-port entropy. qps_per_connection N is the one-channel
    # shorthand (channels 1, qps_per_channel N); stating it with either of the two is refused
    qps_per_connection: Optional[Annotated[int, Field(ge=1, le=limits.MAX_QPS_PER_CHANNEL)]] = None
    """Queue pairs per connection under RoCE hashing; each is hashed onto its own path, so more spread the load. Matters only for roce-hash; --qps overrides. Default 1."""
    channels: Optional[Annotated[int, Field(ge=1, le=limits.MAX_CHANNELS)]] = None
    """Channels per collective under RoCE hashing: each carries 1/channels of the bytes with its own source-port entropy. Give it with qps_per_channel, not with qps_per_connection. Default 1."""
    qps_per_channel: Optional[Annotated[int, Field(ge=1, le=limits.MAX_QPS_PER_CHANNEL)]] = None
    """Queue pairs per channel under RoCE hashing, each hashed onto its own path (channels x qps_per_channel hashed flows per connection, at most 1,024). Default 1."""
    header_bytes: Optional[Annotated[int, Field(ge=0, le=1024)]] = None
    """Per-packet overhead in bytes, wire framing (preamble, gap) included. Default by protocol: roce 82, uec 98 (UET sizes unverified), ideal 0."""
    adaptive: bool = False
    """Must be false: adaptive routing is not modelled (true is refused). Choose the routing model instead; uec-spray is per-packet spraying."""

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
# Algorithms of the collective-time model per op (topo.routing.collectives), in the tuner's tie order.
COLLECTIVE_ALGORITHMS = {
    "allreduce": ("ring", "tree", "recursive_doubling", "halving_doubling", "hierarchical", "in_network"),
    "allgather": ("ring", "recursive_doubling", "direct"),
    "reducescatter": ("ring", "halving_doubling", "direct"),
    "alltoall": ("direct", "pairwise"),
    "sendrecv": ("direct",),
    "broadcast": ("chain", "tree"),
}

class Collective(_M):
    op: Literal["allreduce", "allgather", "reducescatter", "alltoall", "sendrecv", "broadcast"]
    """allreduce, allgather, reducescatter, alltoall, sendrecv (pipeline stage i to i+1) or broadcast; flows follow nccl-tests semantics."""
    group: Literal["tp", "pp", "dp", "ep", "cp"] = "dp"
    """Parallel dimension whose groups run it: tp, pp, dp, ep or cp; every group of that dimension runs it. Default dp."""
    bytes: Bytes
    """Buffer size per rank per iteration, in bytes (number or e.g. 8GiB, 512MB; GB = 1e9, GiB = 2^30). A ring allreduce sends 2(n-1)/n of it per rank."""
    algorithm: Literal["ring", "tree", "hierarchical", "direct"] = "ring"
    """ring, tree, hierarchical (scale-up domain first; allreduce only) or direct. alltoall is always direct; allgather/reducescatter are ring unless direct. Default ring."""
    pinned_algorithm: Optional[Literal["ring", "tree", "recursive_doubling", "halving_doubling", "hierarchical",
                                       "in_network", "direct", "pairwise", "chain"]] = None
    """Algorithm the collective-time model must use for it (as NCCL_ALGO pins a library's tuner): ring, tree, recursive_doubling, halving_doubling, hierarchical, in_network (switch reduction; only when pinned), direct, pairwise or chain, among those its op allows. Unset: the cheapest allowed at its size. Link loads still follow algorithm."""
    count: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    """Times this collective runs per iteration (e.g. per layer or micro-batch); the job's iteration time counts it count times. Default 1."""


class Job(_M):
    name: Name
    """Name of the job, unique in the file (1 to 128 characters)."""
    accelerators: Count
    """Accelerators the job needs; a multiple of tp x pp x cp and at most the cluster's accelerators."""
    tp: Count = 1
    """Tensor-parallel group size; TP ranks are fastest, so a TP group sits inside one scale-up domain when it fits. Default 1."""
    pp: Count = 1
    """Pipeline-parallel stages. Default 1."""
    cp: Count = 1
    """Context-parallel group size. Default 1."""
    ep: Count = 1
    """Expert-parallel group size: EP groups are ep consecutive DP ranks, so ep must divide dp. Not a factor of accelerators. Default 1."""
    dp: Optional[Count] = None
    """Data-parallel degree. Default: accelerators / (tp x pp x cp); if given it must equal that."""
    collectives: list[Collective] = Field(default=[], max_length=limits.MAX_COLLECTIVES)
    """Collectives of one training iteration; they become the job's traffic. Empty: the job takes accelerators but sends nothing."""
    compute_s: Optional[Annotated[float, Field(ge=0, le=1e6)]] = None
    """Compute time of one iteration in seconds, without communication. Stated: the iteration time and the network's share of it are reported. Unset: communication time only."""
    overlap: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Fraction (0 to 1) of the iteration's communication that can run under its compute (hidden up to compute_s). Needs compute_s when above 0. Default 0 (none)."""
    model_params_b: Optional[Annotated[float, Field(gt=0, le=1e9)]] = None
    """Model size in billions of parameters. Informational: not used to derive traffic or anything else."""
    # higher runs first: when the free accelerators do not hold every job, lower priorities wait
    priority: Annotated[int, Field(ge=-(10 ** 9), le=10 ** 9)] = 0
    """Admission order when free accelerators cannot hold every job: higher first, ties in file order; lower ones wait and are reported unplaced. Default 0."""
    pin_racks: list[Name] = []
    """Racks the job must run in, by rack name (rack000, rack001, ...; not rack type names). Empty: any rack."""
    forbid_racks: list[Name] = []
    """Racks the job must not use, by rack name (rack000, rack001, ...; not rack type names). Empty: none forbidden."""
    pin_pods: list[Annotated[int, Field(ge=0, le=limits.MAX_ENDPOINTS)]] = []
    """Pods the job must run in, by index from 0 (a 2-tier fabric has one pod, 0). Empty: any pod."""
    forbid_pods: list[Annotated[int, Field(ge=0, le=limits.MAX_ENDPOINTS)]] = []
    """Pods the job must not use, by index from 0. Empty: none forbidden."""
    # an explicit placement: node names (hostlist ranges allowed), in rank order
    nodes: list[Annotated[str, Field(min_length=1, max_length=1024)]] = []
    """Explicit placement: node names (n0000, ...; hostlist ranges such as n[0000-0015] allowed) in rank order. Nodes must have accelerators and not be busy. Empty: topo places the job."""
    # how ranks map to parallel coordinates, fastest first (Megatron-LM's --order default
    # "tp-cp-ep-dp-pp" is accepted: EP groups are consecutive DP ranks)
    rank_order: Annotated[str, Field(max_length=64)] = "tp-cp-pp-dp"
    """Rank-to-coordinate order, fastest first: tp, cp, pp, dp joined by '-', tp first; ep may sit just before dp (Megatron's tp-cp-ep-dp-pp). Default tp-cp-pp-dp."""


class TrafficPattern(_M):
    pattern: Literal["uniform", "permutation", "incast", "matrix"]
    """uniform (every endpoint to every other), permutation (each to one random other), incast (fan_in senders per receiver) or matrix (CSV file of src,dst,bytes)."""
    bytes: Bytes = 1e9
    """Bytes per flow (number or e.g. 1GiB): per pair for uniform, per sender for permutation and incast; ignored by matrix. Default 1e9 (1 GB)."""
    endpoints: Optional[Count] = None   # use the first N endpoints; default all
    """Use only the first N endpoints, in endpoint order. Default all. Ignored by matrix."""
    fan_in: Count = 16                  # incast senders per receiver
    """incast only: senders per receiver; endpoints are split into blocks of fan_in + 1. Default 16."""
    file: Optional[Annotated[str, Field(min_length=1, max_length=4096)]] = None  # matrix: CSV src,dst,bytes
    """matrix only, and required there: CSV of src,dst,bytes with endpoint names (n0000-g0, ...), path relative to the cluster file."""
    seed: Optional[Seed] = None
    """Seed for the random choices of permutation and incast. Default: the run's --seed, else goals.seed."""


class Costs(_M):
    electricity_usd_per_kwh: Annotated[float, Field(ge=0, le=1e3)] = 0.08
    """Electricity price in USD per kWh, for the energy cost of the network (switches and optics) over horizon_years. Default 0.08."""
    horizon_years: Annotated[float, Field(gt=0, le=100)] = 5.0
    """Years of network energy counted in the cost objective (capex + energy). Default 5."""
    pue: Annotated[float, Field(ge=1.0, le=10)] = 1.3
    """Power usage effectiveness (1 to 10): multiplies network energy cost for facility overhead; rack power limits are unaffected. Default 1.3."""
    allow_lpo: bool = False
    """Allow linear-drive pluggable optics (catalog class lpo) in place of the DSP optics of every reach class its max_m covers (mmf and smf_dr by default), in the bill of materials and budget. Default false."""


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


class FailureDomains(_M):
    """How placement spreads or packs every job over one kind of failure domain (topo place, topo optimize)."""
    level: Literal["rack", "leaf", "pod", "plane"]
    """The failure domain: rack (its power feed), leaf (a leaf switch; the rail group in rail-optimized fabrics, where a node reaches one leaf per rail) or pod. plane is refused: every node has a port on every plane, so no placement can spread or pack over planes."""
    mode: Literal["spread", "pack"]
    """spread: at most max_share of each job's accelerators behind one domain, so one domain's failure stops a smaller share of it; pack: each job in at most max_domains domains, so fewer domains' failures stop it."""
    max_share: Optional[Annotated[float, Field(gt=0, le=1)]] = None
    """For spread (required): the largest share, in (0, 1], of a job's accelerators in one domain; a job of N accelerators holds at most floor(max_share x N) in each. Refused for pack."""
    max_domains: Optional[Annotated[int, Field(ge=1, le=limits.MAX_ENDPOINTS)]] = None
    """For pack (required): the most domains of the level one job may span. Refused for spread."""

    @model_validator(mode="after")
    def _fields_of_mode(self):
        if self.level == "plane":
            raise ValueError("level plane cannot be honoured: every node has a port on every plane, so every job "
                             "spans every plane (use rack, leaf or pod)")
        if self.mode == "spread" and (self.max_share is None or self.max_domains is not None):
            raise ValueError("spread takes max_share (the largest share of a job in one domain), not max_domains")
        if self.mode == "pack" and (self.max_domains is None or self.max_share is not None):
            raise ValueError("pack takes max_domains (the most domains one job may span), not max_share")
        return self


class SparesGoal(_M):
    """Hot-spare nodes held back per failure domain (topo optimize; topo goodput --spares)."""
    per: Literal["rack", "leaf", "pod"]
    """The domain each set of spares serves: rack, leaf (leaf set of a node) or pod."""
    per_domain: Annotated[int, Field(ge=1, le=64)] = 1
    """Spare nodes of each node type the jobs use, per domain holding a job (1 to 64): restores that many node failures inside the domain. Default 1."""


class Goals(_M):
    target_utilization: Annotated[float, Field(gt=0, le=1)] = 0.8
    """Peak utilisation, in (0, 1], the link budget allows on switch links under ideal-ECMP loads of the placed jobs; --target-util overrides. Default 0.8."""
    survive: Literal["none", "link", "switch", "plane"] = "none"
    """Failure the budgeted fabric must carry at or under 100%: none, link (one link), switch (one spine or super-spine) or plane (needs planes >= 2). Default none."""
    # what the link budget minimises (topo optimize --objective, topo budget --objective override it)
    objective: Literal["cost", "power", "balanced"] = "cost"
    """What the link budget minimises: cost (capex + energy over costs.horizon_years), power (network kW) or balanced (both, relative to the fabric as given). Default cost."""
    time_limit_s: Annotated[float, Field(gt=0, le=limits.MAX_TIME_LIMIT_S)] = 10.0
    """Time limit in seconds for each solver run (placement, link budget), up to one week; --time-limit overrides. Default 10."""
    seed: Seed = 1
    """Seed for the solvers, RoCE hashing, random traffic patterns and failure sampling; --seed overrides. Default 1."""
    workers: Annotated[int, Field(ge=1, le=limits.MAX_WORKERS)] = 1
    """CP-SAT workers and failure-sweep processes (1 to 256); one worker with a fixed seed repeats solver results. Default 1."""
    # topo optimize / topo budget --for-transport: the budget may slow the jobs (summed time and
    # 95th-percentile penalty) by at most this factor under the cluster's own transport model
    # (RoCE hashing, UEC spraying); null: size for ideal ECMP only
    max_job_slowdown: Optional[Annotated[float, Field(ge=1, le=1e6)]] = 1.05
    """Largest factor the budget may slow the jobs (summed time, 95th-percentile penalty) under the transport's own model. null: topo optimize sizes for ideal ECMP only. Default 1.05."""
    # topo budget / topo optimize: the largest down:up capacity ratio per tier, one number for
    # every tier with uplinks or {leaf: 1, spine: 3}; a tier not named is uncapped; null: none
    # (topo budget --max-oversubscription overrides it)
    max_oversubscription: Annotated[
        Any, BeforeValidator(oversubscription_caps),
        WithJsonSchema({"anyOf": [{"type": "null"}, {"type": "number", "minimum": 1},
                                  {"type": "string", "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)\s*$|^\s*(leaf|spine)\s*=",
                                   "description": "a number, or per tier: 'leaf=1,spine=3'"},
                                  {"type": "object", "additionalProperties": False, "minProperties": 1,
                                   "properties": {"leaf": {"type": "number", "minimum": 1,
                                                           "description": "cap on each leaf's down:up capacity"},
                                                  "spine": {"type": "number", "minimum": 1,
                                                            "description": "cap on each spine's down:up capacity"}}}]})] = None
    """Cap on each tier's down:up ratio in the link budget: one number >= 1 for every tier with uplinks, or {leaf: x, spine: y} (spine: 3 tiers only); unnamed tiers uncapped. Default null."""
    failure_domains: Optional[FailureDomains] = None
    """Spread or pack every job over racks, leaves or pods in placement: {level, mode: spread, max_share} or {level, mode: pack, max_domains}; topo place --spread/--pack override it. Default null (neither)."""
    spares: Optional[SparesGoal] = None
    """Hot spares held back from placement: {per: rack|leaf|pod, per_domain: 1}; topo optimize chooses them with CP-SAT around its placement, keeps jobs off them and counts them busy in rack power. Default null (none)."""


class Scenario(_M):
    """Traffic the fabric must carry with every switch link at or under the target utilisation
    (topo budget, topo optimize): ``uniform`` (every endpoint sends ``gbps_per_endpoint`` on the
    wire, spread evenly over all other endpoints), ``permutation`` (the worst case over every
    permutation at ``gbps_per_endpoint``; a bound, see topo.solve.linkbudget) or ``jobs`` (the placed
    jobs and the file's traffic patterns, their rates times ``growth``)."""
    kind: Literal["uniform", "permutation", "jobs"]
    """uniform (every endpoint spreads gbps_per_endpoint over all others), permutation (the worst case over all permutations, a bound) or jobs (the placed job mix, times growth)."""
    gbps_per_endpoint: Optional[Annotated[float, Field(gt=0, le=1e6)]] = None
    """For uniform and permutation: Gb/s each endpoint sends on the wire. Refused for jobs."""
    growth: Annotated[float, Field(ge=1, le=1e3)] = 1.0
    """For jobs: the factor on the job mix's rates (1 or more), for headroom. Default 1."""

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
    """Bisection floor in Gb/s per accelerator (as describe's bisection per accelerator): the budget never goes below it and the checker measures it on the built design."""
    scenarios: Optional[list[Scenario]] = Field(default=None, min_length=1, max_length=16)
    """Traffic the fabric must carry at the target utilisation, each on its own: uniform, permutation, jobs. Unset: the file's jobs and patterns; a list: exactly these (jobs only if listed)."""


# Per-link rate of the Llama 3 run's 35 switch/cable interruptions (see FailureRates); the link count is
# topo's, for the 16,384-GPU job of examples/meta-llama3-24k-roce.yaml (tests/test_goodput.py recounts it).
LLAMA3_JOB_LINKS = 54_528  # 16,384 GPU links + 32,768 RTSW-CTSW + 5,376 CTSW-ATSW links
LLAMA3_LINK_RATE = 35 / (LLAMA3_JOB_LINKS * 1_296)


class FailureRates(_M):
    """Two kinds of figure: the ``*_per_year`` fields are probabilities (0 to 1) of failing within a year,
    used by topo failures; every ``*_per_hour`` field (and software_per_accelerator_hour) is a rate, the
    expected failures per component per hour, used by topo goodput."""
    link_per_year: Annotated[float, Field(ge=0, le=1)] = 0.0
    """A probability, not a rate: the chance (0 to 1) that a link fails within a year, failures independent, no repair. Used by topo failures for expected capacity lost and to weight sampled failure sets; goodput uses the *_per_hour rates instead. Default 0."""
    switch_per_year: Annotated[float, Field(ge=0, le=1)] = 0.0
    """A probability, not a rate: the chance (0 to 1) that a switch fails within a year; its links are lost with it (topo failures). Default 0 (all three 0: failure sets sample switches and links evenly)."""
    nic_per_year: Annotated[float, Field(ge=0, le=1)] = 0.0
    """A probability, not a rate: the chance (0 to 1) that an endpoint's NIC fails within a year, cutting the endpoint's fabric links (topo failures). Default 0."""
    # Interruption rates per component per hour, for goodput (topo.study.goodput). Defaults from the
    # 54-day, 16,384-GPU Llama 3 405B pre-training run (Llama Team, AI @ Meta, "The Llama 3 Herd of
    # Models", arXiv:2407.21783, 2024, Table 5: 419 unexpected interruptions by root cause), read
    # through secondary copies of the table (https://glennklockwood.com/garden/component-reliability;
    # counts 148/72/35/19/17 also in DatacenterDynamics' report): UNVERIFIED against the paper itself.
    # Exposure: 16,384 GPUs and 2,048 hosts of 8 GPUs over 54 days = 1,296 h, i.e. 21,233,664
    # GPU-hours and 2,654,208 host-hours.
    accelerator_per_hour: Annotated[float, Field(ge=0, le=1)] = 196 / 21_233_664
    """Stopping failures per accelerator per hour, HBM excluded. Default 196 / 21,233,664 = 9.23e-6 (Llama 3 run: faulty GPU 148 + GPU SRAM 19 + GPU system processor 17 + silent data corruption 6 + thermal interface and sensor 6 over 21.2M GPU-hours; secondary source, unverified)."""
    hbm_per_hour: Annotated[float, Field(ge=0, le=1)] = 72 / 21_233_664
    """Stopping failures of an accelerator's HBM per accelerator per hour. Default 72 / 21,233,664 = 3.39e-6 (Llama 3 run: GPU HBM3 memory 72; secondary source, unverified)."""
    software_per_accelerator_hour: Annotated[float, Field(ge=0, le=1)] = 63 / 21_233_664
    """Interruptions from software per accelerator of the job per hour. Default 63 / 21,233,664 = 2.97e-6 (Llama 3 run: software bug 54 + NCCL watchdog timeouts 7 + dependency 2; secondary source, unverified). Set 0 to count hardware only."""
    host_per_hour: Annotated[float, Field(ge=0, le=1)] = 46 / 2_654_208
    """Stopping failures per host (server) per hour, its accelerators and NICs excluded. Default 46 / 2,654,208 = 1.73e-5 (Llama 3 run: unplanned host maintenance 32 + SSD 3 + power supply 3 + chassis 2 + IO expansion board 2 + CPU 2 + system memory 2 over 2.65M host-hours; secondary source, unverified)."""
    nic_per_hour: Annotated[float, Field(ge=0, le=1)] = 7 / 21_233_664
    """Failures per endpoint NIC per hour (the endpoint loses every scale-out port). Default 7 / 21,233,664 = 3.30e-7 (Llama 3 run: NIC 7, one 400G NIC per GPU assumed; secondary source, unverified)."""
    cable_per_hour: Annotated[float, Field(ge=0, le=1)] = LLAMA3_LINK_RATE
    """Rate (expected failures per link per hour) of every copper link whose class rate (dac_per_hour, aec_per_hour) is not stated. Default: the Llama 3 run's 35 network switch and cable interruptions charged to links only, per link of the 16,384-GPU job placed on examples/meta-llama3-24k-roce.yaml (derived; the paper does not split switches from cables or copper from optics: unverified)."""
    optic_per_hour: Annotated[float, Field(ge=0, le=1)] = LLAMA3_LINK_RATE
    """Rate (expected failures per link per hour) of every optical link whose class rate (mmf_per_hour, smf_dr_per_hour, smf_fr_per_hour) is not stated. Default: as cable_per_hour (derived, unverified)."""
    # one rate per reach class of topo.model.catalog.REACH_CLASSES; unset: the family's rate above
    dac_per_hour: Optional[Annotated[float, Field(ge=0, le=1)]] = None
    """Rate (expected failures per link per hour) of passive copper (dac) links. Default null: cable_per_hour (so the Llama 3 figure, derived, unverified)."""
    aec_per_hour: Optional[Annotated[float, Field(ge=0, le=1)]] = None
    """Rate (expected failures per link per hour) of active electrical cable (aec) links. Default null: cable_per_hour."""
    mmf_per_hour: Optional[Annotated[float, Field(ge=0, le=1)]] = None
    """Rate (expected failures per link per hour) of multimode optical (mmf) links. Default null: optic_per_hour."""
    smf_dr_per_hour: Optional[Annotated[float, Field(ge=0, le=1)]] = None
    """Rate (expected failures per link per hour) of single-mode DR optical (smf_dr) links. Default null: optic_per_hour."""
    smf_fr_per_hour: Optional[Annotated[float, Field(ge=0, le=1)]] = None
    """Rate (expected failures per link per hour) of single-mode FR optical (smf_fr) links. Default null: optic_per_hour."""
    leaf_per_hour: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Failures per leaf switch per hour. Default 0: the published switch and cable interruptions are charged to links (cable_per_hour, optic_per_hour) since no public source splits them."""
    spine_per_hour: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Failures per spine switch per hour. Default 0 (see leaf_per_hour)."""
    super_spine_per_hour: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Failures per super-spine switch per hour. Default 0 (see leaf_per_hour)."""
    power_feed_per_hour: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Failures per rack power feed per hour (every host of the rack stops). Default 0: no public per-feed figure was found (host power supplies are in host_per_hour)."""
    cooling_loop_per_hour: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Failures per liquid-cooled rack's cooling loop per hour (every host of the rack stops). Default 0: no public figure was found."""
    checkpoint_s: Optional[Annotated[float, Field(ge=0, le=86400)]] = None
    """Seconds a job takes to write a checkpoint, for the Young/Daly interval and goodput (topo goodput). Default null: goodput is not computed unless stated here or given to topo goodput (--checkpoint-s, or --checkpoint-gb with --storage-gbps)."""
    restart_s: Optional[Annotated[float, Field(ge=0, le=86400)]] = None
    """Seconds from a stopping failure until the job computes again (detection, rescheduling, reloading the checkpoint). Default null; given with checkpoint_s."""


# --- serving (inference deployments) ------------------------------------------------
# bytes per element of each data type a serving model states
DTYPE_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5, "int4": 0.5}
DType = Literal["fp32", "bf16", "fp16", "fp8", "int8", "fp4", "int4"]
Tokens = Annotated[int, Field(ge=1, le=10_000_000)]


class ServingModel(_M):
    """The shape of a served model: what its traffic follows from."""
    layers: Annotated[int, Field(ge=1, le=10_000)]
    """Transformer layers (decoder blocks). Sets the KV cache per token and the all-reduces and expert exchanges per token."""
    hidden_size: Annotated[int, Field(ge=1, le=1_000_000)]
    """Hidden (model) dimension: the width of the activations each tensor-parallel all-reduce, pipeline send and expert dispatch carries per token."""
    attention_heads: Annotated[int, Field(ge=1, le=100_000)]
    """Query attention heads. Recorded; the KV cache follows from kv_heads."""
    kv_heads: Annotated[int, Field(ge=1, le=100_000)]
    """Key/value heads (grouped-query attention; equal to attention_heads for multi-head attention). Must divide attention_heads."""
    head_dim: Annotated[int, Field(ge=1, le=100_000)]
    """Dimension of each attention head. KV bytes per token = 2 x layers x kv_heads x head_dim x bytes of kv_dtype."""
    weight_dtype: DType = "bf16"
    """Data type of the weights (fp32, bf16, fp16, fp8, int8, fp4, int4). Recorded only: weights do not move while serving. Default bf16."""
    activation_dtype: DType = "bf16"
    """Data type of the activations on the wire: tensor-parallel all-reduces, pipeline sends, expert dispatch and combine. Default bf16."""
    kv_dtype: DType = "bf16"
    """Data type of the KV cache, which sets the bytes of the prefill-to-decode KV transfer. Default bf16."""
    experts: Optional[Annotated[int, Field(ge=2, le=100_000)]] = None
    """Routed experts per MoE layer (every layer is taken as MoE). Unset: a dense model."""
    experts_per_token: Optional[Annotated[int, Field(ge=1, le=100_000)]] = None
    """Routed experts each token is sent to (top-k); required with experts, at most experts. Dispatch bytes per token per layer = hidden_size x experts_per_token x activation bytes."""
    expert_ffn_size: Optional[Annotated[int, Field(ge=1, le=10_000_000)]] = None
    """Intermediate (FFN) size of one expert. Recorded only: expert weights stay in place, so it sets no traffic."""


class ServingPool(_M):
    """Replicas of one role (prefill, decode or colocated) and the parallelism of each."""
    replicas: Count
    """Replicas in this pool; requests are spread evenly over them."""
    tp: Count = 1
    """Tensor-parallel size per replica (attention and dense layers); one all-reduce of the activations per dense block. Default 1."""
    pp: Count = 1
    """Pipeline stages per replica; layers must divide evenly over them. Default 1."""
    ep: Count = 1
    """Expert-parallel size per stage: the experts of a stage spread over ep ranks; ep must be 1 or a multiple of tp (the ep / tp attention data-parallel groups). A replica has pp x max(tp, ep) accelerators. Default 1."""

    @property
    def stage_ranks(self) -> int:
        """Accelerators per pipeline stage: max(tp, ep)."""
        return max(self.tp, self.ep)

    @property
    def accelerators(self) -> int:
        """Accelerators per replica: pp x max(tp, ep)."""
        return self.pp * self.stage_ranks


class TokenLengths(_M):
    """A length distribution in tokens: its mean (which sets the rates) and optional percentiles
    (at which the per-request KV transfer time is reported)."""
    mean: Tokens
    """Mean length in tokens; the traffic rates follow from it."""
    percentiles: dict[Annotated[str, Field(pattern=r"^p(100|[1-9]?[0-9](\.[0-9]+)?)$")], Tokens] = {}
    """Length at percentiles, e.g. {p50: 1500, p99: 12000}; keys p0 to p100, values non-decreasing with the percentile. Used for the per-request KV transfer time. Default none."""

    @model_validator(mode="after")
    def _monotone(self):
        items = sorted((float(k[1:]), v, k) for k, v in self.percentiles.items())
        for (_, a, ka), (_, b, kb) in zip(items, items[1:]):
            if b < a:
                raise ValueError(f"percentiles: {kb} = {b} is below {ka} = {a}")
        return self


def _lengths(v: Any) -> Any:
    return {"mean": v} if isinstance(v, int) and not isinstance(v, bool) else v


Lengths = Annotated[TokenLengths, BeforeValidator(_lengths),
                    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1, "maximum": 10_000_000,
                                               "description": "a fixed length in tokens"},
                                              TokenLengths.model_json_schema()]})]


class ServingLoad(_M):
    requests_per_s: Annotated[float, Field(gt=0, le=1e12)]
    """Requests per second the deployment serves, in total over its replicas."""
    prompt_tokens: Lengths
    """Prompt (input) length: a number of tokens (fixed), or {mean, percentiles: {p50, p99, ...}}."""
    output_tokens: Lengths
    """Output (generated) length: a number of tokens (fixed), or {mean, percentiles}. Sets the decode token rate."""


class ServingSpread(_M):
    """Failure-domain spread of a deployment's replicas, honoured by the CP-SAT serving placement."""
    level: Literal["leaf", "pod", "rack"]
    """The failure domain: leaf (the replicas' first leaf switch), pod, or rack (its power feed: every host of the rack stops together)."""
    max_share: Annotated[float, Field(gt=0, le=1)]
    """At most this share of each pool's replicas (prefill, decode or colocated, each on its own) behind one failure domain: floor(max_share x replicas), which must be at least 1."""


class Deployment(_M):
    name: Name
    """Name of the deployment, unique among deployments and jobs."""
    model: ServingModel
    """The served model's shape: layers, hidden size, heads, KV heads, head dim, data types, experts."""
    load: ServingLoad
    """Requests per second and the prompt and output lengths."""
    prefill: Optional[ServingPool] = None
    """Disaggregated serving: the prefill pool (replicas, tp, pp, ep). Give it with decode, not with colocated."""
    decode: Optional[ServingPool] = None
    """Disaggregated serving: the decode pool; every request's KV cache moves from a prefill replica to a decode replica. Give it with prefill."""
    colocated: Optional[ServingPool] = None
    """Colocated serving: one pool doing prefill and decode (no KV transfer over the network). Give it instead of prefill and decode."""
    spread: Optional[ServingSpread] = None
    """Spread across failure domains, e.g. {level: leaf, max_share: 0.5}: honoured by the CP-SAT serving placement (refused when the in-order placement breaks it). Default none."""
    kv_routing: Literal["even", "local"] = "even"
    """How requests pair prefill and decode replicas (disaggregated only): even, every (prefill, decode) pair carries the same share; local, each prefill replica sends its KV caches to the decode replicas under its own leaf first, then its pod, then anywhere, in proportion to the decode capacity still free there. Default even (the most KV across the fabric, whatever the router)."""


class AgentTier(_M):
    name: Name
    """Name of the tier, unique among agent tiers."""
    node_type: Name
    """Node type of its hosts: one without accelerators (e.g. platform cpu-host). The tier is that type's nodes, in node order."""
    hosts: Optional[Count] = None
    """Use only the first hosts nodes of that type. Default: all of them."""
    deployments: list[Name] = Field(min_length=1, max_length=limits.MAX_JOBS)
    """Deployments the tier sends requests to; a deployment's requests are split evenly over the hosts of every tier that names it."""
    request_bytes: Bytes
    """Bytes per request from the agent host to the deployment: prompt, tool results and retrieved context (number or e.g. 64KiB). Goes to the first accelerator of a prefill (or colocated) replica."""
    response_bytes: Bytes
    """Bytes per request from the deployment back to the agent host: the generated output and tool calls. Comes from the first accelerator of a decode (or colocated) replica."""


class Serving(_M):
    deployments: list[Deployment] = Field(default=[], max_length=limits.MAX_JOBS)
    """Inference deployments served on the cluster's accelerators, placed in order after the training jobs. Default none."""
    agent_tiers: list[AgentTier] = Field(default=[], max_length=limits.MAX_JOBS)
    """Pools of CPU-only hosts sending requests to the deployments and receiving their responses. Default none."""


def serving_errors(f: "ClusterFile", node_types: dict) -> list:
    """(path, message) for every serving entry the traffic model cannot honour exactly."""
    errs = []
    names = {j.name for j in f.jobs}
    dnames: set = set()
    for i, d in enumerate(f.serving.deployments):
        p = f"serving.deployments[{i}]"
        if d.name in dnames or d.name in names:
            errs.append((f"{p}.name", f"duplicate name {d.name!r} (deployments and jobs share one name space)"))
        dnames.add(d.name)
        m = d.model
        if m.attention_heads % m.kv_heads:
            errs.append((f"{p}.model.kv_heads", f"{m.kv_heads} does not divide attention_heads {m.attention_heads}"))
        if (m.experts is None) != (m.experts_per_token is None):
            errs.append((f"{p}.model.experts_per_token" if m.experts is not None else f"{p}.model.experts",
                         "give experts and experts_per_token together (a MoE model) or neither (dense)"))
        elif m.experts is not None and m.experts_per_token > m.experts:
            errs.append((f"{p}.model.experts_per_token", f"{m.experts_per_token} exceeds experts {m.experts}"))
        if d.colocated is not None and (d.prefill is not None or d.decode is not None):
            errs.append((f"{p}.colocated", "give colocated, or prefill and decode, not both"))
        elif d.colocated is None and (d.prefill is None or d.decode is None):
            errs.append((f"{p}.{'decode' if d.prefill is not None else 'prefill'}",
                         "missing: disaggregated serving needs prefill and decode (or give colocated)"))
        for role in ("prefill", "decode", "colocated"):
            pool = getattr(d, role)
            if pool is None:
                continue
            q = f"{p}.{role}"
            if m.layers % pool.pp:
                errs.append((f"{q}.pp", f"{pool.pp} stages do not divide the model's {m.layers} layers"))
            if pool.tp > 1 and m.kv_heads % pool.tp and pool.tp % m.kv_heads:
                errs.append((f"{q}.tp", f"tp {pool.tp} and kv_heads {m.kv_heads}: one must divide the other "
                                        f"(KV heads are split over, or replicated across, the TP ranks)"))
            if pool.tp > 1 and m.hidden_size % pool.tp:
                errs.append((f"{q}.tp", f"tp {pool.tp} does not divide hidden_size {m.hidden_size}"))
            if pool.ep > 1:
                if m.experts is None:
                    errs.append((f"{q}.ep", "expert parallelism needs a MoE model (model.experts)"))
                elif m.experts % pool.ep:
                    errs.append((f"{q}.ep", f"{pool.ep} ranks do not share the model's {m.experts} experts evenly"))
                if pool.ep % pool.tp:
                    errs.append((f"{q}.ep", f"ep {pool.ep} is not a multiple of tp {pool.tp} (each stage is ep "
                                            f"ranks: ep / tp attention groups of tp)"))
            if role == "colocated" and d.kv_routing != "even":
                errs.append((f"{p}.kv_routing", f"{d.kv_routing!r} pairs prefill and decode replicas; a colocated "
                                                f"deployment moves no KV cache (use prefill and decode)"))
            if d.spread is not None and math.floor(d.spread.max_share * pool.replicas + 1e-9) < 1:
                errs.append((f"{p}.spread.max_share", f"{d.spread.max_share:g} x {pool.replicas} {role} replicas "
                                                      f"allows no replica behind a {d.spread.level}"))
            if pool.replicas * pool.accelerators > MAX_ENDPOINTS:
                errs.append((f"{q}.replicas", f"{pool.replicas} replicas x {pool.accelerators} accelerators exceed "
                                              f"{MAX_ENDPOINTS:,}"))
    tnames: set = set()
    for i, t in enumerate(f.serving.agent_tiers):
        p = f"serving.agent_tiers[{i}]"
        if t.name in tnames:
            errs.append((f"{p}.name", f"duplicate agent tier name {t.name!r}"))
        tnames.add(t.name)
        nt = node_types.get(t.node_type)
        if nt is None:
            errs.append((f"{p}.node_type", f"unknown node type {t.node_type!r}"))
        elif nt.accelerators:
            errs.append((f"{p}.node_type", f"{t.node_type!r} has {nt.accelerators} accelerators; an agent tier is "
                                           f"CPU-only hosts (a node type with none, e.g. platform cpu-host)"))
        for k, n in enumerate(t.deployments):
            if n not in dnames:
                errs.append((f"{p}.deployments[{k}]", f"unknown deployment {n!r}"))
    return errs


class FrontEndNics(_M):
    """The front-end NICs of one node type."""
    nics: Optional[Annotated[int, Field(ge=1, le=limits.MAX_NICS_PER_NODE)]] = None
    """Front-end NICs per node. Required unless the node type has no accelerators and back_end is false: then it defaults to its own nics (shown as derived by describe). A node on the back-end fabric needs it stated (its own nics are cabled to the back-end)."""
    nic_gbps: Optional[Gbps] = None
    """Speed of one front-end NIC, e.g. 400 or '400G'. Required unless the node type has no accelerators and back_end is false: then it defaults to its own nic_gbps."""
    nic_ports: Optional[Annotated[int, Field(ge=1, le=limits.MAX_NIC_PORTS)]] = None
    """Ports per front-end NIC, each at nic_gbps / nic_ports, each on its own front-end leaf port. Default 1; a node type without accelerators and with back_end false defaults to its own nic_ports."""
    back_end: bool = True
    """False: the node has front-end NICs only and is left out of the back-end fabric (only for a node type without accelerators; its racks must hold no other nodes and come after every rack type with back-end nodes, so that host names are the same on both fabrics). Default true."""


class FrontEnd(_M):
    """A second fabric: the front-end network of CPU hosts, storage and ingress."""
    fabric: Fabric = Fabric()
    """The front-end fabric, described as the back-end fabric is (family, tiers, planes, dual homing); built by the same builder over the same racks and floor, with one endpoint per node. Default: 2-tier clos of th5-128x400."""
    node_types: dict[Name, FrontEndNics] = Field(min_length=1, max_length=10_000)
    """Per node type (by name) its front-end NICs. Every node type in the racks must be listed: a node without a front-end NIC is not supported."""


class ClusterFile(_M):
    """The cluster file as written (before catalog merge)."""
    version: Literal[1] = 1
    """Cluster file format version. Must be 1, the default."""
    name: Name = "cluster"
    """Name of the cluster, shown in printouts, reports and exports (1 to 128 characters). Default 'cluster'."""
    description: Text = ""
    """Free text about the cluster, kept with the file and the plan; not used in any calculation. Default empty."""
    catalog: CatalogOverrides = CatalogOverrides()
    """Additions to, or replacements of, hardware catalog presets (accelerators, switches, optics). An entry with a preset's name replaces that preset whole."""
    node_types: list[NodeType] = Field(min_length=1, max_length=10_000)
    """Node types (servers, trays, hosts): each a platform preset, fields given inline, or a preset with fields overridden. At least one."""
    racks: list[RackType] = Field(min_length=1, max_length=100_000)
    """Rack types: nodes per rack, count, cooling and power limit. Racks are laid out and named rack000, rack001, ... in file order. At least one."""
    floor: Floor = Floor()
    """Floor layout (racks per row, pitches, slack, leaf placement). It gives every link a length, and the length picks its optic or cable."""
    fabric: Fabric = Fabric()
    """The scale-out network: family, switch tiers (leaf first), planes, dual homing and optional stated pod structure. Default: 2-tier clos of th5-128x400."""
    transport: Transport = Transport()
    """Transport protocol and packet parameters used to route and time the traffic. Default: RoCEv2, MTU 4096 bytes, 1 queue pair per connection."""
    jobs: list[Job] = Field(default=[], max_length=limits.MAX_JOBS)
    """Jobs to place and route, each with its parallelism and collectives. Jobs that do not fit the free accelerators are reported unplaced, not an error."""
    traffic: list[TrafficPattern] = Field(default=[], max_length=limits.MAX_TRAFFIC_PATTERNS)
    """Optional background traffic patterns, routed together with the jobs' collectives. Default none."""
    costs: Costs = Costs()
    """Electricity price, time horizon, PUE and LPO permission used by the link budget's cost of switches and optics."""
    goals: Goals = Goals()
    """Targets and limits for placement and link budget: utilisation, failure to survive, objective, time limit, seed, workers, slowdown and oversubscription caps."""
    requirements: Requirements = Requirements()
    """What the design must provide whatever today's jobs: a bisection floor per accelerator and traffic scenarios to carry at goals.target_utilization. Honoured by topo budget and topo optimize."""
    failure_rates: FailureRates = FailureRates()
    """Failure rates: annual failure probabilities of links, switches and NICs (expected capacity lost per year; default 0), and interruption rates per component per hour for goodput (defaults from the published 16,384-GPU Llama 3 run)."""
    busy_nodes: list[Annotated[str, Field(min_length=1, max_length=1024)]] = []
    """Nodes already in use, by name (n0000, ...; Slurm hostlist ranges such as n[0000-0031] allowed). Placement leaves them out and counts them at busy power."""
    serving: Serving = Serving()
    """Inference deployments (model shape, prefill/decode or colocated pools, load) and the CPU agent tiers that drive them; `topo serve` routes their traffic. Default none."""
    front_end: Optional[FrontEnd] = None
    """A front-end fabric beside the back-end `fabric`: each node type's front-end NICs and the fabric joining them. With it, agent tiers' request and response flows use the front-end fabric; training and serving collectives stay on the back-end. Default none (every NIC on `fabric`)."""

    @model_serializer(mode="wrap")
    def _without_absent_front_end(self, handler):
        # a file without front_end dumps as it did before the section existed (plans, goldens)
        d = handler(self)
        if self.front_end is None and isinstance(d, dict):
            d.pop("front_end", None)
        return d


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
    """Parse JSON or YAML text into Python data (bounded: see :mod:`topo.core.inputs`);
    raise SpecError on a syntax error or a value over a limit."""
    from topo.core.inputs import parse
    return parse(text, suffix, source)


def read_file(path: Union[str, Path]) -> str:
    """A cluster or sweep file's text: refused by size before it is read, UTF-8 only."""
    from topo.core.inputs import read_text
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
    """The cluster a validated file describes, with catalog values filled in: named steps (catalogs,
    node types, racks, fabric tiers, the fabric family's rules, NIC ports against the fabric, jobs,
    node lists, traffic, transport, serving), every problem collected with its JSON path, then one
    :class:`SpecError` listing them all (the racks step raises at once on a file over a size limit)."""
    errs: list[tuple[str, str]] = []
    accels, switches, optics = _catalogs(f)
    node_types = _resolve_node_types(f, accels, errs)
    racks, total_endpoints = _resolve_racks(f, node_types, errs, source)
    if f.front_end is not None:
        from topo.model.frontend import back_end_racks, front_end_errors
        errs.extend(front_end_errors(f, node_types, source, base_dir))
        racks, total_endpoints = back_end_racks(f, node_types, racks)
    tiers = _resolve_tiers(f.fabric, switches, errs)
    _family_errors(f.fabric, tiers, total_endpoints, errs)
    _nic_port_errors(f, node_types, errs)
    _job_errors(f, node_types, racks, errs)
    _node_list_errors(f, racks, errs)
    _traffic_errors(f, errs)
    _transport_errors(f, errs)
    errs.extend(serving_errors(f, node_types))
    if errs:
        raise SpecError(errs, source)
    tr = catalog.TRANSPORTS[f.transport.protocol]
    header = f.transport.header_bytes if f.transport.header_bytes is not None else tr["header_bytes"] + tr["wire_bytes"]
    return Cluster(file=f, node_types=node_types, racks=racks, tiers=tiers, switches=switches, optics=optics,
                   header_bytes=int(header), base_dir=base_dir)


def _catalogs(f: ClusterFile) -> tuple[dict, dict, dict]:
    """The accelerator, switch and optic catalogs: the built-in presets, then the file's own entries."""
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
    return accels, switches, optics


def _resolve_node_types(f: ClusterFile, accels: dict, errs: list) -> dict[str, ResolvedNodeType]:
    """Node types with their platform preset and accelerator filled in; a type with a problem is left out."""
    node_types: dict[str, ResolvedNodeType] = {}
    for i, nt in enumerate(f.node_types):
        path = f"node_types[{i}]"
        if nt.name in node_types:
            errs.append((f"{path}.name", f"duplicate node type name {nt.name!r}"))
            continue
        resolved = _resolve_node_type(nt, path, accels, errs)
        if resolved is not None:
            node_types[nt.name] = resolved
    return node_types


def _resolve_node_type(nt, path: str, accels: dict, errs: list) -> Optional[ResolvedNodeType]:
    """One node type: the stated fields over its platform preset; None when a field it cannot do
    without is missing or unknown (the error is in `errs`)."""
    base: dict = {}
    if nt.platform is not None:
        if nt.platform not in catalog.PLATFORMS:
            errs.append((f"{path}.platform", f"unknown preset {nt.platform!r}; expected one of {sorted(catalog.PLATFORMS)}"))
            return None
        base = dict(catalog.PLATFORMS[nt.platform])
    given = {k: v for k, v in nt.model_dump().items() if v is not None}
    merged = {**base, **{k: v for k, v in given.items() if k not in ("name", "platform", "scaleup")}}
    accel_name = merged.get("accelerator")
    n_acc = merged.get("accelerators", 0 if accel_name is None else None)
    if n_acc is None:
        errs.append((f"{path}.accelerators", "missing: give accelerators per node or a platform preset"))
        return None
    aspec = None
    if n_acc > 0:
        if accel_name is None:
            errs.append((f"{path}.accelerator", "missing: a node with accelerators needs an accelerator model"))
            return None
        if accel_name not in accels:
            errs.append((f"{path}.accelerator", f"unknown preset {accel_name!r}; expected one of {sorted(accels)}"))
            return None
        aspec = accels[accel_name]
    missing = [k for k in ("nic_gbps", "power_busy_kw") if k not in merged]
    for k in missing:
        errs.append((f"{path}.{k}", "missing: give it or choose a platform preset"))
    if missing:
        return None
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
        seen = set()
        for j, o in enumerate((nt.scaleup.options or []) if nt.scaleup else []):
            if o.size in seen:
                errs.append((f"{path}.scaleup.options[{j}].size", f"scale-up size {o.size} is stated twice"))
            seen.add(o.size)
            if o.size % n_acc != 0 and n_acc % o.size != 0:
                errs.append((f"{path}.scaleup.options[{j}].size",
                             f"scale-up domain of {o.size} does not align with {n_acc} accelerators per node"))
    elif nt.scaleup is not None:
        errs.append((f"{path}.scaleup", "a node type without accelerators has no scale-up domain"))
    srcs = {"platform": base.get("source", "")} if base else {}
    if aspec is not None:
        srcs["accelerator"] = aspec.source
    return ResolvedNodeType(
        name=nt.name, accelerator=accel_name if n_acc else None, accelerators=n_acc, nics=nics,
        nic_gbps=float(merged["nic_gbps"]), nic_ports=merged.get("nic_ports", 1),
        power_busy_kw=float(busy), power_idle_kw=float(idle), scaleup_size=su_size,
        scaleup_gbps=float(su_gbps), accel_power_w=float(aspec.power_w) if aspec else 0.0, sources=srcs)


def _resolve_racks(f: ClusterFile, node_types: dict, errs: list, source: str) -> tuple[list[ResolvedRack], int]:
    """Rack types with their power limits, and the endpoints they declare; raises at once (with the
    errors so far) when the endpoints or NIC ports are over topo's limits."""
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
    return racks, total_endpoints


def _resolve_tiers(fab, switches: dict, errs: list) -> list[ResolvedTier]:
    """The fabric's tiers with their switch (a preset, a stated switch, a chassis populated in part)
    and oversubscription (from port groups where stated); a tier with an unknown switch is left out."""
    tiers: list[ResolvedTier] = []
    for i, t in enumerate(fab.tiers):
        path = f"fabric.tiers[{i}]"
        if isinstance(t.switch, str):
            if t.switch not in switches:
                errs.append((f"{path}.switch", f"unknown preset {t.switch!r}; expected one of {sorted(switches)}"))
                continue
            sw, swname = switches[t.switch], t.switch
        else:
            sw, swname = t.switch, f"tier{i}-switch"
        if t.bundle is not None and i == len(fab.tiers) - 1:
            errs.append((f"{path}.bundle", "the top tier has no uplinks to bundle; bundle applies to a tier's uplinks"))
        if t.partial_pod_bundle is not None and (i != 1 or len(fab.tiers) != 3 or fab.family == "fat_tree"):
            errs.append((f"{path}.partial_pod_bundle", "applies to the spine tier (tiers[1]) of a 3-tier Clos only"))
        if t.line_cards is not None or t.ports_populated is not None:
            sw, swname = _populated(fab, i, t, sw, swname, path, errs)
        os_ = t.oversubscription
        if t.ports is not None:
            os_ = _port_group_errors(fab, i, t, sw, path, errs)
        tiers.append(ResolvedTier(switch_name=swname, switch=sw, oversubscription=os_, bundle=t.bundle,
                                  partial_pod_bundle=t.partial_pod_bundle))
    return tiers


def _family_errors(fab, tiers: list, total_endpoints: int, errs: list) -> None:
    """What each fabric family allows (fat tree: k, 1:1, one switch model; custom: a graph and no
    stated structure; the tiered families: 1 to 3 tiers, rail-only's planes) and dual homing's
    ``dual_homed_across``."""
    if fab.k is not None and fab.family != "fat_tree":
        errs.append(("fabric.k", f"applies to family fat_tree only (this fabric is {fab.family}; its tiers give the switches)"))
    if fab.family == "fat_tree":
        _fat_tree_errors(fab, tiers, total_endpoints, errs)
    elif fab.family == "custom":
        if fab.custom is None:
            errs.append(("fabric.custom", "missing: a custom fabric needs graphml or edge_list"))
    else:
        if not 1 <= len(fab.tiers) <= 3:
            errs.append(("fabric.tiers", f"expected 1 to 3 tiers, found {len(fab.tiers)}"))
        if fab.family == "rail_only":
            if fab.planes > 1:
                errs.append(("fabric.planes", "a rail-only fabric is built with one plane per rail; leave planes at 1"))
            if fab.dual_homed_across == "planes":
                errs.append(("fabric.dual_homed_across", "a rail-only fabric has one plane per rail: a NIC's two "
                                                         "ports go to two leaves of its rail's plane (leaves)"))
    if fab.family in ("custom",):
        for fld in ("leaves_per_pod", "spines_per_pod", "pods", "super_spines", "dual_homed_across"):
            if getattr(fab, fld) is not None:
                errs.append((f"fabric.{fld}", "a custom graph states its own structure; leave it out"))
    across = fab.dual_homed_across or ("planes" if fab.planes > 1 else "leaves")
    if fab.dual_homed_across is not None and not fab.dual_homed:
        errs.append(("fabric.dual_homed_across", "applies to dual-homed NICs (dual_homed: true)"))
    elif fab.dual_homed and across == "planes" and fab.planes < 2 and fab.family != "rail_only":
        errs.append(("fabric.dual_homed_across", f"a NIC's two ports on two planes needs planes >= 2 "
                                                 f"(found planes: {fab.planes})"))


def _fat_tree_errors(fab, tiers: list, total_endpoints: int, errs: list) -> None:
    """A k-ary fat tree: k even and large enough for the endpoints, 1:1, one switch model, one port per host."""
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


def _nic_port_errors(f: ClusterFile, node_types: dict, errs: list) -> None:
    """Each node type's NIC ports against the fabric: spread over the planes, in pairs when
    dual-homed, and stated rails (hosts without accelerators on rail fabrics) that exist."""
    fab = f.fabric
    across = fab.dual_homed_across or ("planes" if fab.planes > 1 else "leaves")
    n_rails = max([nt.accelerators for nt in node_types.values()] + [1])
    for tname, nt in node_types.items():
        ports = nt.nic_ports
        ti = [x.name for x in f.node_types].index(tname)
        if fab.planes > 1 and ports % fab.planes and ports != 1:
            errs.append((f"node_types[{ti}].nic_ports",
                         f"{ports} ports per NIC cannot be spread over {fab.planes} planes"))
        # dual-homed across leaves with P planes: a pair of ports per NIC on each plane
        pair = 2 * fab.planes if (fab.dual_homed and across == "leaves" and fab.family != "rail_only") else 2
        pair_why = (f"a pair per plane: 2 x {fab.planes} planes" if pair > 2 else "a whole number of pairs")
        if fab.dual_homed and ports % pair:
            errs.append((f"node_types[{ti}].nic_ports",
                         f"dual-homed NICs need their ports in {pair_why} (found {ports} ports per NIC)"))
        elif fab.dual_homed and nt.accelerators and (nt.nics * ports // nt.accelerators) % pair:
            errs.append((f"node_types[{ti}].nics",
                         f"dual-homed: {nt.nics} NICs x {ports} ports for {nt.accelerators} accelerators give "
                         f"{max(nt.nics * ports // nt.accelerators, 1)} port(s) per accelerator; each accelerator "
                         f"needs its NIC's ports in {pair_why}"))
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


def _job_errors(f: ClusterFile, node_types: dict, racks: list, errs: list) -> None:
    """Jobs: unique names, sizes that fit the cluster and factor into tp*pp*cp*dp (ep dividing dp),
    a rank order that parses, overlap with a compute time, pinned algorithms their collective runs as."""
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
        if j.overlap > 0 and j.compute_s is None:
            errs.append((f"{path}.overlap", f"{j.overlap:g} of the communication overlaps compute, but compute_s is "
                                            f"not stated: give compute_s or leave overlap at 0"))
        for ci, c in enumerate(j.collectives):
            pin = c.pinned_algorithm
            if pin is None:
                continue
            ok = COLLECTIVE_ALGORITHMS[c.op]
            if pin not in ok:
                errs.append((f"{path}.collectives[{ci}].pinned_algorithm",
                             f"{c.op} runs as {', '.join(ok)}; {pin!r} is not one of them"))
            elif "algorithm" in c.model_fields_set and c.algorithm in ok and c.algorithm != pin:
                errs.append((f"{path}.collectives[{ci}].pinned_algorithm",
                             f"pins {pin!r} for the time model while algorithm routes the loads as {c.algorithm!r}: "
                             f"state one of them, or the same algorithm in both"))


def _node_list_errors(f: ClusterFile, racks: list, errs: list) -> None:
    """Node lists (busy_nodes, each job's nodes): hostlist expressions naming nodes the racks hold."""
    n_nodes = sum(r.count * n for r in racks for n in r.nodes.values())
    for where, lst in [("busy_nodes", f.busy_nodes)] + [(f"jobs[{i}].nodes", j.nodes) for i, j in enumerate(f.jobs)]:
        err = _hostlist_error(lst, n_nodes)
        if err:
            errs.append((where + err[0], err[1]))


def _traffic_errors(f: ClusterFile, errs: list) -> None:
    """Traffic patterns: a file for the matrix pattern, and only for it."""
    for i, tp in enumerate(f.traffic):
        if tp.pattern == "matrix" and not tp.file:
            errs.append((f"traffic[{i}].file", "missing: a matrix pattern needs a CSV file of src,dst,bytes"))
        elif tp.pattern != "matrix" and tp.file:
            errs.append((f"traffic[{i}].file", f"applies to the matrix pattern only (this pattern is {tp.pattern!r})"))


def _transport_errors(f: ClusterFile, errs: list) -> None:
    """Transport: adaptive routing refused (not modelled); channels and queue pairs stated one way
    and within the limit of hashed flows per connection."""
    if f.transport.adaptive:
        errs.append(("transport.adaptive", "adaptive routing is not modelled: topo routes by ideal ECMP (fluid), "
                     "per-flow hashing (roce-hash) or per-packet spraying (uec-spray, the closest to adaptive "
                     "routing); leave adaptive false and choose the routing model"))
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


def _populated(fab, i: int, t, sw: SwitchSpec, swname: str, path: str, errs: list) -> tuple:
    """(switch, name) of a chassis populated in part: the radix of the ports populated, power and
    price less the empty slots' cards. Errors (no line cards, both fields, too many, per-card
    figures missing) go to `errs` and the switch is returned as is."""
    lc = sw.line_cards
    if fab.family in ("fat_tree", "custom"):
        errs.append((f"{path}.line_cards" if t.line_cards is not None else f"{path}.ports_populated",
                     f"applies to clos, rail_optimized and rail_only tiers, not {fab.family}"))
        return sw, swname
    if lc is None:
        errs.append((f"{path}.line_cards" if t.line_cards is not None else f"{path}.ports_populated",
                     f"switch {swname!r} states no line cards; give its line_cards (slots, ports_per_card and "
                     f"the per-card power and price) in catalog.switches or the inline switch"))
        return sw, swname
    if t.line_cards is not None and t.ports_populated is not None:
        errs.append((f"{path}.ports_populated", "state line_cards or ports_populated, not both"))
        return sw, swname
    if t.line_cards is not None:
        cards, ports, where = t.line_cards, t.line_cards * lc.ports_per_card, f"{path}.line_cards"
    else:
        ports, where = t.ports_populated, f"{path}.ports_populated"
        cards = -(-ports // lc.ports_per_card)
    if ports < 2:
        errs.append((where, f"{ports} port: a switch needs at least 2"))
        return sw, swname
    if cards > lc.slots or ports > sw.radix:
        errs.append((where, f"{cards} line cards ({ports} ports) do not fit the chassis's {lc.slots} slots of "
                            f"{lc.ports_per_card} ports"))
        return sw, swname
    if cards < lc.slots and (lc.power_w_per_card is None or lc.cost_usd_per_card is None):
        missing = " and ".join(k for k in ("power_w_per_card", "cost_usd_per_card") if getattr(lc, k) is None)
        errs.append((where, f"{cards} of {lc.slots} line cards: the switch {swname!r} gives no {missing}, so the "
                            f"power and price of a partly populated chassis are unknown; state them in its "
                            f"line_cards (topo does not invent them)"))
        return sw, swname
    empty = lc.slots - cards
    power = sw.power_w - empty * (lc.power_w_per_card or 0.0)
    cost = sw.cost_usd - empty * (lc.cost_usd_per_card or 0.0)
    src = (f"{sw.source}; {cards} of {lc.slots} line cards populated ({ports} ports): power and price less "
           f"{empty} card(s) of {lc.power_w_per_card or 0:g} W and {lc.cost_usd_per_card or 0:g} USD ({lc.source})")
    out = SwitchSpec(radix=ports, port_gbps=sw.port_gbps, power_w=power, cost_usd=cost, ru=sw.ru, source=src)
    return out, f"{swname} ({cards}/{lc.slots} line cards)"


def port_group_breakout(sw_gbps: float, gbps: float) -> Optional[int]:
    """Logical ports per physical port of `sw_gbps` at `gbps` (1: the port as is), None when
    `gbps` is faster than the port or not a whole fraction of it."""
    k = sw_gbps / gbps
    if k < 1 - 1e-12 or abs(k - round(k)) > 1e-9:
        return None
    return int(round(k))


def _port_group_errors(fab, i: int, t, sw, path: str, errs: list) -> float:
    """Check `fabric.tiers[i].ports` against the switch (speeds that divide its port speed, whole
    physical ports, at most its radix, so at most its capacity) and the tier; returns the
    oversubscription the groups imply (down capacity / up capacity; 1 on the top tier)."""
    g = t.ports
    top = i == len(fab.tiers) - 1
    if fab.family in ("fat_tree", "custom"):
        errs.append((f"{path}.ports", f"a {'k-ary fat tree is built of whole ports at one speed' if fab.family == 'fat_tree' else 'custom graph states its own links'}; "
                                      f"port groups apply to clos, rail_optimized and rail_only"))
        return t.oversubscription
    if top and g.up is not None:
        errs.append((f"{path}.ports.up", "the top tier has no uplinks; leave up out"))
    if not top and g.up is None:
        errs.append((f"{path}.ports.up", "missing: a tier below the top needs its uplinks"))
    used = 0
    cages = []
    for role in ("down", "up"):
        grp = getattr(g, role)
        if grp is None:
            continue
        k = port_group_breakout(sw.port_gbps, grp.gbps)
        if k is None:
            errs.append((f"{path}.ports.{role}.gbps", f"{grp.gbps:g}G ports on a switch of {sw.port_gbps:g}G ports: "
                                                      f"a port breaks out into whole lanes of {sw.port_gbps:g}G / n, "
                                                      f"it never runs faster"))
            return t.oversubscription
        if grp.ports % k:
            errs.append((f"{path}.ports.{role}.ports", f"{grp.ports} ports of {grp.gbps:g}G do not fill whole "
                                                       f"{sw.port_gbps:g}G ports ({k} per port): use a multiple of {k}"))
            return t.oversubscription
        used += grp.ports // k
        cages.append(f"{grp.ports} x {grp.gbps:g}G = {grp.ports // k} ports")
    if used > sw.radix:
        cap = sw.radix * sw.port_gbps
        want = g.down.ports * g.down.gbps + (g.up.ports * g.up.gbps if g.up else 0)
        errs.append((f"{path}.ports", f"{' + '.join(cages)}: {used} of the switch's {sw.radix} {sw.port_gbps:g}G ports "
                                      f"({want / 1e3:g} Tb/s of its {cap / 1e3:g} Tb/s)"))
    if top or g.up is None:
        ratio = 1.0
    else:
        ratio = g.down.ports * g.down.gbps / (g.up.ports * g.up.gbps)
    if "oversubscription" in t.model_fields_set and abs(t.oversubscription - ratio) > 1e-9 * max(1.0, ratio):
        errs.append((f"{path}.oversubscription", f"{t.oversubscription:g} disagrees with the port groups: "
                                                 f"{g.down.ports} x {g.down.gbps:g}G down / "
                                                 + (f"{g.up.ports} x {g.up.gbps:g}G up = {ratio:.4g}" if g.up else "no up = 1")
                                                 + "; state one of them"))
    if i == 1 and len(fab.tiers) == 3 and (fab.leaves_per_pod is not None or fab.pods is not None):
        errs.append((f"{path}.ports", "with fabric.leaves_per_pod or fabric.pods stated the spine's ports follow "
                                      "from the pod size; state the spine's port groups or the pod size, not both"))
    return ratio


def _hostlist_error(names: list, n_nodes: int) -> tuple:
    """Why a list of node names and hostlist expressions cannot name nodes of a
    cluster of ``n_nodes`` nodes (malformed, or more names than nodes), as (path
    suffix, message), or ()."""
    from topo.model.hostlist import count
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


class RunSettings(NamedTuple):
    """A run's solver settings: seed, CP-SAT workers, seconds per solver."""
    seed: int
    workers: int
    time_limit: float


def run_settings(cluster: "Cluster", seed: Any = None, workers: Any = None, time_limit: Any = None) -> RunSettings:
    """The one place a run's settings are resolved: each argument given, else the cluster's goals.
    Errors name the parameter (the CLI shows its flag)."""
    g = cluster.file.goals
    seed = g.seed if seed is None else seed
    workers = g.workers if workers is None else workers
    time_limit = g.time_limit_s if time_limit is None else time_limit
    errs = []
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= limits.MAX_SEED:
        errs.append(("seed", f"must be an integer from 0 to {limits.MAX_SEED} (found {seed!r})"))
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or not 1 <= workers <= limits.MAX_WORKERS:
        errs.append(("workers", f"must be an integer from 1 to {limits.MAX_WORKERS} (found {workers!r})"))
    if (isinstance(time_limit, bool) or not isinstance(time_limit, numbers.Real)
            or not math.isfinite(time_limit) or not 0 < time_limit <= limits.MAX_TIME_LIMIT_S):
        errs.append(("time_limit", f"must be a positive number of seconds, at most {limits.MAX_TIME_LIMIT_S:g} "
                                   f"(found {time_limit!r})"))
    if errs:
        raise SpecError(errs)
    return RunSettings(int(seed), int(workers), float(time_limit))


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

