"""The report: a plan rendered for people, as self-contained HTML and as Markdown.

Owns the layout of ``report.html`` and ``report.md`` (templates in
``topo/io/templates/``) and the figures. A report is a function of the plan: it
formats numbers the plan holds and never invents one. The only thing derived
rather than read is the per-tier binning of a stored per-link utilisation list,
which needs the link tiers of the fabric the plan names (rebuilt from the
plan's cluster file, or passed in). ``util_histograms`` and ``pod_matrix_gbps``
are for the pipeline, to store compact figure data in a plan.

Every section is built from plain data (:class:`Section`: paragraphs, tables,
figures, notes), so the HTML and Markdown carry the same content. A section
whose plan key is null or absent is kept with a visible "not computed" note.

Determinism: keys are sorted where the plan gives no order, numbers use one
formatting function, figures are drawn with a fixed SVG hash salt, no dates in
the figure metadata and no wall-clock values other than those in the plan.
Size: histograms are binned (one bar per bin, whatever the link count), tables
show the top rows with a note of how many were left out.
"""
from __future__ import annotations

import io
import math
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from topo.core.textsafe import md_block, md_escape, mpl_text, visible

TABLE_ROWS = 40          # rows shown per table (the rest summarised in a note)
HIST_BINS = 40
IMAGE_DIR = "report-images"
_SALT = "topo-report"
_COLORS = {"before": "#9aa5b1", "placed": "#e59500", "after": "#1f6feb", "roce-hash": "#d1495b", "uec-spray": "#2e933c",
           "limit": "#d1495b", "ok": "#1f6feb", "over": "#d1495b"}


# --- formatting -------------------------------------------------------------------------
def fmt(x: Any, digits: int = 4) -> str:
    """One deterministic text form for every value a report shows."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (np.integer,)):
        x = int(x)
    if isinstance(x, (np.floating,)):
        x = float(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "n/a" if math.isnan(x) else ("inf" if x > 0 else "-inf")
        if x == 0:
            return "0"
        if abs(x) >= 1e5:
            return f"{x:,.0f}"
        if abs(x) >= 100:
            return f"{x:,.0f}" if x.is_integer() else f"{x:,.1f}"
        return f"{x:.{digits}g}"
    if isinstance(x, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in x):
            shown = ", ".join(fmt(v) for v in x[:8])
            return shown + (f", ... (+{len(x) - 8})" if len(x) > 8 else "")
        return f"{len(x)} items"
    if isinstance(x, dict):
        return f"{len(x)} entries"
    return str(x)


def usd(x) -> str:
    return "n/a" if x is None else f"${float(x):,.0f}"


def usd_card(x) -> str:
    """Dollars for a summary card's large figure: whole dollars below $1 billion, else billions to
    four significant digits ("$3.819B"; thirteen digits and their commas overflow a card)."""
    if x is None or abs(float(x)) < 1e9:
        return usd(x)
    return f"${float(x) / 1e9:,.3f}B"


def pct(x) -> str:
    return "n/a" if x is None else f"{100.0 * float(x):.1f}%"


_PLURALS = {"leaf": "leaves", "switch": "switches", "super": "supers", "index": "indices", "box": "boxes",
            "class": "classes", "bus": "buses", "pass": "passes", "is": "are", "was": "were", "has": "have"}


def plural(noun: str) -> str:
    """The plural of a noun or of a phrase's last word ("spine switch" -> "spine switches")."""
    head, sep, last = noun.rpartition(" ")
    low = last.lower()
    if low in _PLURALS:
        many = _PLURALS[low]
    elif re.search(r"(s|x|z|ch|sh)$", low):
        many = last + "es"
    elif re.search(r"[^aeiou]y$", low):
        many = last[:-1] + "ies"
    else:
        many = last + "s"
    return head + sep + many


def count_of(n, noun: str, many: Optional[str] = None) -> str:
    """A count with its noun in the right number: ``count_of(1, "spine switch")`` is "1 spine switch",
    ``count_of(3, "leaf")`` "3 leaves" (``many``: an irregular plural)."""
    v = _num(n)
    one = v is not None and v == 1
    return f"{fmt(n)} {noun if one else (many or plural(noun))}"


def _num(x) -> Optional[float]:
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, (int, float, np.integer, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    return None


def _get(d, path: str, default=None):
    """``_get(plan, "budget.cost.capex_usd")``: None-safe nested lookup."""
    cur = d
    for k in path.split("."):
        if not isinstance(cur, dict) or k not in cur or cur[k] is None:
            return default
        cur = cur[k]
    return cur


_TYPED: ContextVar = ContextVar("topo_report_typed", default=None)


def _typed(plan: dict):
    """The typed plan (:func:`topo.io.plan.typed_report`) of ``plan``: validated once per
    :func:`build_sections`, SpecError with the JSON path of a malformed part."""
    cur = _TYPED.get()
    if cur is not None and cur[0] is plan:
        return cur[1]
    from topo.io.plan import PLAN_VERSION, typed_report
    # a partial plan (the report renders what it has): the keys a plan must hold default to empty
    base = {"plan_version": PLAN_VERSION, "cluster_file": {}, "placement": {}, "metrics_before": None}
    return typed_report({**base, **{k: v for k, v in plan.items() if not (k in base and v is None)}}, "plan")


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested dicts to dotted keys (lists kept as values)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and len(v) <= 12:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


# --- content model ------------------------------------------------------------------------
@dataclass
class Table:
    columns: list
    rows: list            # lists of already formatted strings
    total: int
    caption: str = ""

    @property
    def note(self) -> str:
        if self.total > len(self.rows):
            return f"showing {len(self.rows)} of {self.total:,} rows"
        return ""


@dataclass
class Figure:
    id: str
    title: str
    caption: str
    draw: Any = field(repr=False, default=None)   # callable(fig) drawing into a matplotlib Figure
    size: tuple = (7.5, 3.4)
    svg: str = ""


@dataclass
class Section:
    id: str
    title: str
    paragraphs: list = field(default_factory=list)
    bullets: list = field(default_factory=list)   # (label, text)
    tables: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    missing: str = ""     # non-empty: "not computed" note
    kpis: list = field(default_factory=list)      # (label, value, note): the key figures of the summary


# --- columns: what a reader sees for each field the plan stores ---------------------------------
# raw field -> (header with its unit, how values are shown). Kinds: pct (a fraction shown as a
# percentage), usd, kw, w, gbps, tbps (a Gb/s figure shown in Tb/s), s, ratio (n:1), x (times),
# bytes (shown in GB), int, text. The order of this table is the order of the columns: names
# first, then the design, then load, then money. A field not listed gets a header made from
# its name (words, with the unit its suffix names) and is placed after the listed ones.
COLUMNS: dict[str, tuple[str, str]] = {
    "design": ("Design", "text"), "metrics": ("Run", "text"), "objective": ("Objective", "text"),
    "kind": ("Kind", "text"), "name": ("Name", "text"), "job": ("Job", "text"), "tier": ("Tier", "text"),
    "link": ("Link", "text"), "rack": ("Rack", "text"), "racks": ("Racks", "text"), "id": ("Link id", "int"),
    "requirement": ("Requirement", "text"), "source": ("Source", "text"), "status": ("Solver status", "text"),
    "model": ("Switch model", "text"), "model_as_given": ("Model as given", "text"), "models": ("Switch models", "text"),
    "part": ("Part", "text"), "reach": ("Reach class", "text"),
    "switches_as_given": ("Switches as given", "int"), "switches": ("Switches", "int"),
    "switch_counts": ("Switches per tier", "text"), "count": ("Count", "int"), "units": ("Units", "int"),
    "links": ("Links", "int"), "radix": ("Radix (ports)", "int"), "port_gbps": ("Port speed (Gb/s)", "gbps"),
    "gbps": ("Speed (Gb/s)", "gbps"), "breakout": ("Breakout", "int"),
    "down_ports": ("Ports down per switch", "int"), "up_ports": ("Ports up per switch", "int"),
    "endpoint_ports": ("Endpoint ports per leaf", "int"), "uplinks_per_switch": ("Uplinks per switch", "int"),
    "uplinks": ("Uplinks (total)", "int"), "bundle": ("Links to each switch above", "int"),
    "partial_pod_bundle": ("Links to each switch above, last pod", "int"),
    "partial_pod_leaves": ("Leaves in the last pod", "int"), "leaves_per_pod": ("Leaves per pod", "int"),
    "pods_per_plane": ("Pods per plane", "int"),
    "oversubscription_as_given": ("Oversubscription as given", "ratio"), "oversubscription": ("Oversubscription", "ratio"),
    "links_by_optic.dac": ("DAC links", "int"), "links_by_optic.aec": ("AEC links", "int"),
    "links_by_optic.aoc": ("AOC links", "int"), "links_by_optic.lpo": ("LPO links", "int"),
    "links_by_optic.sr": ("SR optic links", "int"), "links_by_optic.dr": ("DR optic links", "int"),
    "links_by_optic.fr": ("FR optic links", "int"), "links_by_optic.mmf": ("Multimode optic links", "int"),
    "links_by_optic.smf_dr": ("Single-mode DR optic links", "int"),
    "links_by_optic.smf_fr": ("Single-mode FR optic links", "int"),
    "accelerators": ("Accelerators", "int"), "nodes": ("Nodes", "int"), "leaves": ("Leaves", "int"),
    "pods": ("Pods", "int"), "priority": ("Priority", "int"),
    "target": ("Target", "pct"), "effective_target": ("Effective target", "pct"),
    "model_before": ("Model, as given", "pct"), "model_after": ("Model, chosen", "pct"),
    "nonblocking_model": ("Model, non-blocking", "pct"), "routed_before": ("Routed, as given", "pct"),
    "routed_after": ("Routed, chosen", "pct"), "headroom": ("Headroom", "pct"),
    "worst_util_after_failure": ("Worst utilisation after the failure", "pct"),
    "util": ("Utilisation", "pct"), "util_mean": ("Mean utilisation", "pct"), "util_p99": ("p99 utilisation", "pct"),
    "util_max": ("Peak utilisation", "pct"), "max_util": ("Peak utilisation", "pct"),
    "uplink_imbalance": ("Uplink imbalance", "x"), "worst_node": ("Worst node", "text"),
    "target_utilization": ("Target utilisation", "pct"),
    "load_gbps": ("Load (Gb/s)", "gbps"), "busbw_gbps": ("Bus bandwidth (Gb/s)", "gbps"),
    "op": ("Collective", "text"), "group": ("Parallel group", "text"), "ranks": ("Ranks", "int"),
    "algorithm": ("Algorithm", "text"),
    "time_s": ("Time per iteration (s)", "s"), "alpha_s": ("Alpha: latency part (us)", "us"),
    "beta_s": ("Beta: bandwidth part (s)", "s"), "wire_efficiency": ("Wire efficiency", "pct"), "ideal_s": ("Ideal time (s)", "s"), "slowdown": ("Slowdown", "x"),
    "total": ("Summed time vs as given", "x"), "tail": ("p95 penalty vs as given", "x"),
    "worst_job": ("Worst job", "text"), "worst_job_slowdown": ("Worst job slowdown", "x"),
    "kw": ("Power (kW)", "kw"), "limit_kw": ("Limit (kW)", "kw"), "share": ("Share of limit", "pct"),
    "network_kw": ("Network power (kW)", "kw"),
    "watts_each": ("Power each (W)", "w"), "cost_each_usd": ("Cost each", "usd"), "cost_usd": ("Cost", "usd"),
    "capex_usd": ("Capex", "usd"), "energy_usd": ("Energy over the horizon", "usd"),
    "total_usd": ("Capex + energy", "usd"), "saved_vs_as_given": ("Saved vs as given", "usd"),
    "total_fraction": ("Share of capex + energy vs as given", "pct"),
    "saved_share": ("Saved vs as given (share of capex + energy)", "pct"),
    "traffic_bytes": ("Traffic per iteration (GB)", "bytes"), "weight_bytes": ("Weighted traffic (GB)", "bytes"),
    "required": ("Required", "num"), "achieved": ("Achieved", "num"), "margin": ("Margin", "num"),
    "unit": ("Unit", "text"), "met": ("Met", "text"), "error": ("Error", "text"),
    "model after": ("Switch model, chosen", "text"), "switches after": ("Switches, chosen", "int"),
    "oversubscription after": ("Oversubscription, chosen", "ratio"), "roce-hash": ("RoCE hashing", "num"),
    "uec-spray": ("UEC spraying", "num"), "roce-hash time_s": ("RoCE hashing time (s)", "s"),
    "uec-spray time_s": ("UEC spraying time (s)", "s"), "penalty": ("Hashing penalty", "x"),
    "job time_s": ("Summed collective time (s)", "s"), "p95 penalty": ("p95 time over ideal", "x"),
    "chosen": ("Chosen", "text"),
    "unreachable gbps": ("Unreachable (Gb/s)", "gbps"), "endpoints down": ("Endpoints down", "int"),
    "endpoints isolated": ("Endpoints isolated", "int"), "jobs affected": ("Jobs affected", "int"),
    "jobs losing ranks": ("Jobs losing ranks", "int"), "alike": ("Alike", "int"), "value": ("Value", "num"),
    "quantity": ("Quantity", "text"), "placement objective": ("Placement objective (its terms)", "num"),
    "placed in units of": ("Placed in units of", "text"), "traffic weight": ("Traffic weight", "num"),
    "worst slowdown vs healthy, RoCE hashing": ("Worst slowdown vs healthy, RoCE hashing", "x"),
    "worst slowdown vs healthy, UEC spraying": ("Worst slowdown vs healthy, UEC spraying", "x"),
    "goodput": ("Goodput", "pct"), "dominant": ("Interruptions by cause", "text"), "field": ("Field", "text"), "item": ("Item", "text"), "metric": ("Metric", "text"),
}
_KEY_COLUMNS = ("quantity", "field", "item", "metric")   # a table of (name, value) pairs
_RANK = {k: i for i, k in enumerate(COLUMNS)}
_SUFFIX_UNITS = (("_usd", "", "usd"), ("_kw", " (kW)", "kw"), ("_gbps", " (Gb/s)", "gbps"), ("_bytes", " (GB)", "bytes"),
                 ("_s", " (s)", "s"), ("_frac", "", "pct"), ("_fraction", "", "pct"))


def column(raw: str) -> tuple[str, str]:
    """(header, kind) of a plan field shown as a table column."""
    if raw in COLUMNS:
        return COLUMNS[raw]
    if raw.startswith(("share.", "links_by_optic.")):
        head, _, rest = raw.partition(".")
        return (("Traffic share, " if head == "share" else "Links, ") + rest.replace("_", "-"),
                "pct" if head == "share" else "int")
    kind, unit, base = "num", "", raw
    for suf, u, k in _SUFFIX_UNITS:
        if raw.endswith(suf):
            kind, unit, base = k, u, raw[: -len(suf)]
            break
    if base.startswith("util") or "util " in base:
        kind = "pct"
    words = re.sub(r"[_.]+", " ", base).strip()
    return (words[:1].upper() + words[1:] + unit) if words else raw, kind


def show(x, kind: str = "num") -> str:
    """A value in the form its column's kind calls for."""
    v = _num(x)
    if v is None or kind in ("text", "int"):
        return fmt(x)
    if kind == "pct":
        p = 100.0 * v
        if abs(p) < 1e-7:       # rounding noise (1.11e-16 of headroom) is none
            return "0%"
        if abs(p) < 0.05:       # a link that carries something is not idle
            return "<0.1%" if p > 0 else ">-0.1%"
        return f"{p:.1f}%" if abs(p) < 1000 else f"{p:,.0f}%"
    if kind == "usd":
        return usd(v)
    if kind == "ratio":
        return f"{v:.2f}:1"
    if kind == "x":
        return f"{v:.2f}x" if abs(v) < 100 else f"{v:,.0f}x"
    if kind == "bytes":
        return fmt(round(v / 1e9, 3))
    if kind == "s":     # three significant digits: 0.0383 and 0.0395 s, not 0.038 and 0.04
        return fmt(float(f"{v:.3g}")) if abs(v) < 10 else fmt(round(v, 1))
    if kind == "us":    # a time in seconds shown in microseconds
        return fmt(float(f"{v * 1e6:.3g}"))
    if kind in ("kw", "gbps", "w"):
        return fmt(round(v, 3 if abs(v) < 10 else 1))
    return fmt(x)


def make_table(records, columns: Optional[list] = None, *, name_key: str = "name", limit: int = TABLE_ROWS,
               caption: str = "", sort_key=None, first: tuple = (), group: bool = False,
               transpose_over: int = 9) -> Table:
    """A table from a list of flat dicts, or a dict of dicts (its keys become ``name_key``).

    Nested dicts are flattened to dotted columns. Columns are ``columns`` when given, else
    in the order of :data:`COLUMNS` (``first`` ahead of them); headers and value formats come
    from :func:`column`. ``group``: rows equal in every column but the first are shown once,
    the first cell naming how many ("56 racks: rack000 ... rack055"). A table wider than
    ``transpose_over`` columns is transposed (one row per field) so it fits the page. Rows
    beyond ``limit`` are counted, not shown.
    """
    if isinstance(records, dict):
        recs = []
        for k in sorted(records, key=str):
            v = records[k]
            recs.append({name_key: k, **(v if isinstance(v, dict) else {"value": v})})
    else:
        recs = [r if isinstance(r, dict) else {"value": r} for r in (records or [])]
    recs = [flatten(r) for r in recs]
    if sort_key is not None:
        recs = sorted(recs, key=sort_key)
    if columns is None:
        seen = []
        for r in recs:
            for k in r:
                if k not in seen:
                    seen.append(k)
        columns = sorted(seen, key=lambda c: (0 if c in first else 1, first.index(c) if c in first else 0,
                                              -1 if c in _KEY_COLUMNS else _RANK.get(c, len(_RANK)), seen.index(c)))
    cols = [column(c) if c not in first or c in COLUMNS else (c, "text") for c in columns]
    if columns and columns[0] in _KEY_COLUMNS:
        # one quantity per row: its name made readable, its values shown in its own unit
        cols[0] = column(columns[0])
        rows = []
        for r in recs:
            raw = str(r.get(columns[0]))
            head, kind = column(raw) if "(" not in raw else (raw[:1].upper() + raw[1:], "num")
            rows.append([head] + [show(r.get(c), kind) if c in r else "" for c in columns[1:]])
    else:
        rows = [[show(r.get(c), kind) if c in r else "" for c, (_, kind) in zip(columns, cols)] for r in recs]
    if group and rows:
        groups: dict = {}
        for r in rows:
            groups.setdefault(tuple(r[1:]), []).append(r[0])
        rows = [[(f"{fmt(len(names))}: {names[0]} ... {names[-1]}" if len(names) > 2 else ", ".join(names))] + list(rest)
                for rest, names in groups.items()]
    total = len(rows)
    headers = [h for h, _ in cols]
    if len(headers) > transpose_over and 0 < len(rows) <= 8:
        headers, rows = [headers[0]] + [r[0] for r in rows], [[h] + [r[i] for r in rows] for i, h in
                                                               enumerate(headers) if i > 0]
        return Table(columns=headers, rows=rows, total=len(rows), caption=caption)
    return Table(columns=headers, rows=rows[:limit], total=total, caption=caption)


# --- figures ---------------------------------------------------------------------------------
def _rc():
    import matplotlib
    return matplotlib.rc_context({
        "svg.hashsalt": _SALT, "svg.fonttype": "none", "font.family": "DejaVu Sans", "font.size": 9,
        "text.usetex": False,   # names are text: no LaTeX (mathtext is kept off by textsafe.mpl_text)
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
        "figure.dpi": 100, "savefig.dpi": 100, "path.simplify": True})


def _draw(fig_spec: Figure):
    from matplotlib.figure import Figure as MplFigure
    fig = MplFigure(figsize=fig_spec.size, layout="constrained")
    fig_spec.draw(fig)
    return fig


_SVG_HEAD = re.compile(r"^.*?(?=<svg)", re.S)
_SVG_META = re.compile(r"<metadata>.*?</metadata>\s*", re.S)


def figure_svg(fig_spec: Figure) -> str:
    """SVG text (no XML prolog, no metadata) of a figure, reproducible byte for byte."""
    with _rc():
        fig = _draw(fig_spec)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    s = _SVG_META.sub("", _SVG_HEAD.sub("", buf.getvalue(), count=1), count=1)
    return s


def figure_png(fig_spec: Figure) -> bytes:
    with _rc():
        fig = _draw(fig_spec)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _no_data(ax, text: str):
    ax.text(0.5, 0.5, mpl_text(text), ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_axis_off()


# --- the plan's fabrics (for per-link tiers only) ----------------------------------------------
class _Fabrics:
    """Lazily rebuilt fabrics of the plan (before/after the budget)."""

    def __init__(self, plan: dict, fabric_before=None, fabric_after=None):
        self.plan = plan
        self.cache = {"before": fabric_before, "after": fabric_after}

    def get(self, which: str):
        which = "after" if which == "after" else "before"   # "placed" runs on the fabric as given
        if self.cache.get(which) is None:
            from topo.model.fabric import build
            from topo.model.spec import from_dict
            key = "cluster_file_after" if which == "after" and self.plan.get("cluster_file_after") else "cluster_file"
            try:
                self.cache[which] = build(from_dict(self.plan[key], source=f"plan:{key}"))
            except Exception:  # a plan whose cluster file no longer builds: figures say so
                self.cache[which] = False
        return self.cache[which] or None

    def front_end(self):
        """The front-end fabric of the plan's cluster file after both budgets (None without one)."""
        if "front_end" not in self.cache:
            from topo.model.frontend_build import build as build_front
            from topo.model.spec import from_dict
            key = "cluster_file_after" if self.plan.get("cluster_file_after") else "cluster_file"
            try:
                c = from_dict(self.plan[key], source=f"plan:{key}")
                self.cache["front_end"] = build_front(c) if c.file.front_end is not None else None
            except Exception:  # a plan whose cluster file no longer builds: the figure is left out
                self.cache["front_end"] = None
        return self.cache["front_end"]


def _link_util(plan: dict, which: str, fabrics: _Fabrics):
    """(util per directed link, link tier per link) from ``metrics_<which>.link_util``, or None."""
    lu = _get(plan, f"metrics_{which}.link_util")
    if lu is None:
        return None
    f = fabrics.get(which)
    if f is None:
        return None
    try:
        from topo.io.exports import link_loads
        load, _ = link_loads(f, {f"metrics_{which}": plan[f"metrics_{which}"]}, which)
    except Exception:
        return None
    cap = np.asarray(f.link_gbps)
    util = np.divide(load, cap, out=np.zeros_like(load), where=cap > 0)
    return util, np.asarray(f.link_tier)


def _hists(plan: dict, which: str, fabrics: _Fabrics) -> Optional[dict]:
    """Histograms of metrics_<which>: stored ones, or binned from a stored per-link list."""
    h = _get(plan, f"metrics_{which}.util_hist")
    if isinstance(h, dict) and h:
        return h
    lu = _link_util(plan, which, fabrics)
    if lu is None:
        return None
    return util_histograms(lu[1], lu[0])


# --- compact figure data for the plan ---------------------------------------------------------
def util_histograms(fabric, utilization, bins: int = HIST_BINS) -> dict:
    """Per link tier: histogram of directed-link utilisation, ``{tier: {"edges", "counts", "links", "max"}}``.

    For ``topo optimize`` to store in a plan's metrics (a few hundred numbers
    instead of one per link), so the report can draw the utilisation figure
    without the per-link array.
    """
    from topo.model.fabric import LINK_TIER_NAMES
    u = np.asarray(utilization, dtype=float)
    tiers = np.asarray(getattr(fabric, "link_tier", fabric))   # a Fabric, or its link_tier array
    out = {}
    for t in np.unique(tiers).tolist():
        x = u[tiers == t]
        x = x[np.isfinite(x)]
        top = max(1.0, float(x.max()) if x.size else 1.0)
        counts, edges = np.histogram(x, bins=bins, range=(0.0, top))
        out[LINK_TIER_NAMES[t]] = {"edges": [round(float(e), 6) for e in edges], "counts": counts.tolist(),
                                   "links": int(x.size), "max": float(x.max()) if x.size else 0.0}
    return out


def pod_matrix_gbps(fabric, demands) -> list:
    """Offered scale-out Gb/s from each pod to each pod (flows inside a scale-up domain left out)."""
    pods = np.asarray(fabric.ep_pod())
    P = int(max(pods.max(), 0)) + 1 if pods.size else 1
    m = np.zeros((P, P))
    src, dst = np.asarray(demands.src), np.asarray(demands.dst)
    dom = np.asarray(fabric.ep_domain)
    out = ~((dom[src] >= 0) & (dom[src] == dom[dst])) & (src != dst)
    np.add.at(m, (pods[src[out]], pods[dst[out]]), np.asarray(demands.rate_gbps)[out])
    return m.tolist()


# --- sections ----------------------------------------------------------------------------------
def _tiers_of(desc) -> list:
    return list((desc or {}).get("tiers") or [])


def _bom(plan: dict):
    for path in ("budget.bom", "budget.bill_of_materials", "describe_after.bill_of_materials",
                 "describe_before.bill_of_materials"):
        b = _get(plan, path)
        if isinstance(b, dict):
            return b, path
    return None, ""


def _costs(plan: dict) -> dict:
    """Capex / energy / network power of the chosen design and of the file as given, where the plan has them."""
    b = plan.get("budget") or {}
    out = {}
    cost = b.get("cost") if isinstance(b.get("cost"), dict) else {}
    for k in ("capex_usd", "energy_usd", "network_kw", "total_usd"):
        v = b.get(k)
        if v is None:
            v = _find_number(cost, k)
        if v is not None:
            out[k] = v
    given = cost.get("as_given") if isinstance(cost.get("as_given"), dict) else {}
    db, da = plan.get("describe_before") or {}, plan.get("describe_after") or {}
    if _num(given.get("capex_usd")) is not None:
        out["before_network_cost_usd"] = given["capex_usd"]
        out["before_network_kw"] = given.get("network_kw")
        out["before_total_usd"] = given.get("total_usd")
    elif "network_cost_usd" in db:
        out["before_network_cost_usd"] = db["network_cost_usd"]
        out["before_network_kw"] = db.get("network_kw")
    if "capex_usd" in out:
        out["after_network_cost_usd"] = out["capex_usd"]
        out["after_network_kw"] = out.get("network_kw")
    elif da and "network_cost_usd" in da:
        out["after_network_cost_usd"] = da["network_cost_usd"]
        out["after_network_kw"] = da.get("network_kw")
    return out


def _find_number(d: dict, key: str):
    """A number stored under ``key`` (or ``chosen.<key>``) in a cost dict."""
    if not isinstance(d, dict):
        return None
    if _num(d.get(key)) is not None:
        return d[key]
    for sub in ("chosen", "after"):
        if isinstance(d.get(sub), dict) and _num(d[sub].get(key)) is not None:
            return d[sub][key]
    return None


_MAX_KEYS = ("max_util", "util_max", "max")


def _tier_max(row: dict):
    """The peak utilisation of a per-tier row, whatever the metrics module calls it."""
    for k in _MAX_KEYS:
        if _num(row.get(k)) is not None:
            return float(row[k])
    return None


def _job_times(metrics) -> dict:
    """Job name -> communication time (s) from a metrics dict's job list."""
    out = {}
    for j in (metrics or {}).get("jobs") or []:
        if isinstance(j, dict) and "name" in j:
            t = _num(j.get("time_s", j.get("completion_s")))
            if t is not None:
                out[str(j["name"])] = t
    return out


def _tier_rows(metrics) -> dict:
    return {str(t.get("tier")): t for t in ((metrics or {}).get("tiers") or []) if isinstance(t, dict)}


def _opening_line(plan: dict) -> str:
    """The detailed summary's first line: the cluster, and its fabric's family, planes and pods, as
    given and as chosen where they differ."""
    cf = plan.get("cluster_file") or {}
    db = plan.get("describe_before") or {}
    da = plan.get("describe_after")
    name = db.get("name") or cf.get("name") or "cluster"
    desc = cf.get("description") or ""
    shape = [(k, db.get(k), (da or {}).get(k, db.get(k))) for k in ("family", "planes", "pods")]

    def family(d):
        return _FAMILY_WORDS.get(str(d.get("family")), str(d.get("family", "n/a")))
    if all(b == a for _, b, a in shape):
        fabric_words = f"{family(db)} fabric, {count_of(db.get('planes'), 'plane')}, {count_of(db.get('pods'), 'pod')}"
    else:       # the chosen design's shape differs from the fabric as given: say which is which
        fabric_words = (f"fabric as given: {family(db)}, {count_of(db.get('planes'), 'plane')}, "
                        f"{count_of(db.get('pods'), 'pod')}; chosen design: {family(da)}, "
                        f"{count_of(da.get('planes'), 'plane')}, {count_of(da.get('pods'), 'pod')}")
    return (f"{name}: {count_of(db.get('accelerators'), 'accelerator')} in {count_of(db.get('nodes'), 'node')} and "
            f"{count_of(db.get('racks'), 'rack')}; {fabric_words}." + (f" {desc}" if desc else ""))


def _cost_words(plan: dict, c: dict) -> list:
    """The summary's "what it costs": network capex, energy and power of the chosen design (the file's
    design without a budget), and the front-end fabric's from its own budget where the plan has one."""
    cost_bits = []
    if "capex_usd" in c:
        cost_bits.append(f"network capex {usd(c['capex_usd'])}")
    elif "after_network_cost_usd" in c:
        cost_bits.append(f"network capex {usd(c['after_network_cost_usd'])}")
    elif "before_network_cost_usd" in c:
        cost_bits.append(f"network capex {usd(c['before_network_cost_usd'])} (fabric as given)")
    if "energy_usd" in c:
        cost_bits.append(f"energy over the horizon {usd(c['energy_usd'])}")
    kw = c.get("network_kw", c.get("after_network_kw", c.get("before_network_kw")))
    if kw is not None:
        cost_bits.append(f"network power {fmt(float(kw))} kW")
    fe = _front_end(plan)
    if fe is not None and cost_bits:
        fch = _front_end_cost(fe).get("chosen") or {}
        cost_bits[-1] += " (back-end fabric)"
        cost_bits.append(f"front-end fabric capex {usd(fch.get('capex_usd'))}, energy {usd(fch.get('energy_usd'))}, "
                         f"{fmt(float(fch.get('network_kw') or 0.0))} kW (its own link budget)"
                         if _num(fch.get("total_usd")) is not None else
                         "front-end fabric: no cost or power in the plan (its link budget was not sized)")
    return cost_bits


def _summary(plan: dict) -> Section:
    s = Section("summary", "What changed, what it costs, saves and risks")
    cf = plan.get("cluster_file") or {}
    db = plan.get("describe_before") or {}
    da = plan.get("describe_after")
    s.paragraphs.append(_opening_line(plan))
    # what changed
    changed = []
    tb, ta = _tiers_of(db), _tiers_of(da)
    if da is None:
        changed.append("the link budget was not computed: the fabric is as given in the cluster file")
    else:
        for i, t in enumerate(ta):
            b = tb[i] if i < len(tb) else {}
            if b.get("switches") != t.get("switches") or b.get("oversubscription") != t.get("oversubscription") \
                    or b.get("model") != t.get("model"):
                changed.append(f"{t.get('tier')}: {fmt(b.get('switches'))} x {b.get('model', 'n/a')} "
                               f"(oversubscription {show(b.get('oversubscription'), 'ratio')}) -> {fmt(t.get('switches'))} x "
                               f"{t.get('model', 'n/a')} (oversubscription {show(t.get('oversubscription'), 'ratio')})")
        if not changed:
            changed.append("the link budget keeps the fabric as given")
    p = plan.get("placement") or {}
    n_placed = len(p.get("assignment") or {})
    unplaced = p.get("unplaced") or {}
    changed.append(f"{count_of(n_placed, 'job')} placed" + (f", {fmt(len(unplaced))} not placed" if unplaced else "")
                   + f" (placement status {p.get('status', 'n/a')})")
    mb, ma = _tier_rows(plan.get("metrics_before")), _tier_rows(plan.get("metrics_after"))
    peaks = [f"{t} {pct(_tier_max(mb[t]))} -> {pct(_tier_max(ma[t]))}" for t in ma
             if t in mb and _tier_max(mb[t]) is not None and _tier_max(ma[t]) is not None]
    if peaks:
        routing = str(_get(plan, "metrics_after.routing") or "")
        changed.append("peak link utilisation before -> after"
                       + (f" (routed under {_MODEL_NAMES.get(routing, routing)})" if routing else "") + ": "
                       + ", ".join(peaks))
    jb, ja = _job_times(plan.get("metrics_before")), _job_times(plan.get("metrics_after"))
    common = sorted(set(jb) & set(ja))
    if common:
        tb_, ta_ = sum(jb[j] for j in common), sum(ja[j] for j in common)
        worst = max(common, key=lambda j: (ja[j], j))
        changed.append(f"communication time per iteration, summed over {count_of(len(common), 'job')}: {fmt(tb_)} s -> "
                       f"{fmt(ta_)} s (slowest job {worst}: {fmt(jb[worst])} s -> {fmt(ja[worst])} s)")
    s.bullets.append(("What changed", "; ".join(changed) + "."))
    # what it costs
    c = _costs(plan)
    cost_bits = _cost_words(plan, c)
    s.bullets.append(("What it costs", ("; ".join(cost_bits) or "no cost figures in the plan") + "."))
    # what it saves
    saves = []
    if "after_network_cost_usd" in c and "before_network_cost_usd" in c:
        d = c["before_network_cost_usd"] - c["after_network_cost_usd"]
        saves.append(f"network capex {usd(abs(d))} {'less' if d >= 0 else 'more'} than the fabric as given")
        if c.get("before_network_kw") is not None and c.get("after_network_kw") is not None:
            dk = c["before_network_kw"] - c["after_network_kw"]
            saves.append(f"{fmt(abs(dk))} kW {'less' if dk >= 0 else 'more'} network power")
        if _num(c.get("before_total_usd")) is not None and _num(c.get("total_usd")) is not None:
            dt = c["before_total_usd"] - c["total_usd"]
            saves.append(f"{usd(abs(dt))} {'less' if dt >= 0 else 'more'} capex plus energy over the horizon")
    tot, base = p.get("totals") or {}, _get(p, "baseline.totals") or {}
    for key, label in (("super_spine_bytes", "super-spine"), ("spine_bytes", "spine")):
        if _num(tot.get(key)) is not None and _num(base.get(key)) is not None and (tot[key] or base[key]):
            saves.append(f"{label} traffic {fmt(tot[key] / 1e9)} GB per iteration, "
                         + ("the same as the greedy baseline's" if fmt(tot[key] / 1e9) == fmt(base[key] / 1e9) else
                            f"against {fmt(base[key] / 1e9)} GB for the greedy baseline")
                         + " (ranks in the job's own order)")
            break
    tc = _get(plan, "budget.transport_check")
    if isinstance(tc, dict) and tc.get("routing"):
        what = (f"under {_MODEL_NAMES.get(str(tc['routing']), tc['routing'])} the jobs' summed collective time is {show(tc.get('total'), 'x')} and their "
                f"95th-percentile penalty {show(tc.get('tail'), 'x')} those on the fabric as given")
        if tc.get("accepted"):
            saves.append(f"{what} (limit {show(tc.get('max_slowdown'), 'x')}, met at target utilisation "
                         f"{pct(tc.get('chosen_target_utilization'))})")
    s.bullets.append(("What it saves", ("; ".join(saves) or "nothing to compare: the plan has no before/after figures") + "."))
    # what is at risk
    risk = []
    over = [r for r in (p.get("racks") or []) if isinstance(r, dict) and _num(r.get("kw")) is not None
            and _num(r.get("limit_kw")) is not None and r["kw"] > r["limit_kw"] + 1e-9]
    if over:
        risk.append(f"{count_of(len(over), 'rack')} over {'its' if len(over) == 1 else 'their'} power limit (" + ", ".join(str(r.get("rack")) for r in over[:5])
                    + (" ..." if len(over) > 5 else "") + ")")
    if unplaced:
        risk.append("not placed: " + ", ".join(f"{k} ({v})" for k, v in sorted(unplaced.items())[:5])
                    + (" ..." if len(unplaced) > 5 else ""))
    target = _get(cf, "goals.target_utilization")
    rows = ma or mb
    if target is not None:
        hot = [f"{t} {pct(_tier_max(r))}" for t, r in rows.items()
               if _tier_max(r) is not None and _tier_max(r) > target]
        if hot:
            risk.append(f"tiers above the {pct(target)} utilisation target: " + ", ".join(hot))
    for key, label in (("placement", "placement"), ("budget", "link budget")):
        st = _get(plan, f"{key}.status") or _get(plan, f"{key}.solver.status")
        if st is not None and str(st).upper() != "OPTIMAL":
            risk.append(f"{label} solver status {st}")
    if isinstance(tc, dict) and tc.get("routing") and not tc.get("accepted"):
        risk.append(f"the link budget slows the jobs under {_MODEL_NAMES.get(str(tc['routing']), tc['routing'])} beyond the {show(tc.get('max_slowdown'), 'x')} "
                    f"limit at every target tried: {what}")
    risk += _requirement_risks(plan)
    worst = _worst_failure(plan.get("failures"))
    if worst:
        risk.append(worst)
        risk += _biggest_cut(plan.get("failures"))
    elif plan.get("failures") is None:
        risk.append("failure headroom not computed")
    s.bullets.append(("What is at risk", ("; ".join(risk) or "no rack over its limit, every job placed, "
                                          "no tier above the utilisation target") + "."))
    return s


GLANCE_JOBS = 6    # jobs in the summary's table (all are in "Placement per job")
_FAMILY_WORDS = {"clos": "Clos", "rail_optimized": "rail-optimized Clos", "rail_only": "rail-only",
                 "torus": "torus", "dragonfly": "dragonfly", "custom": "custom graph"}


def _design_sentence(tp) -> str:
    """The chosen design in words, from the typed plan: family, planes, pods, switches per tier."""
    d = tp.describe_after or tp.describe_before
    if d is None:
        return "No fabric description in the plan."
    which = "Chosen design" if tp.describe_after is not None else "Fabric as given (no link budget computed)"
    fam = _FAMILY_WORDS.get(str(d.family), str(d.family or "n/a").replace("_", " "))
    tiers = [t for t in d.tiers or []]
    parts = []
    for t in tiers:
        os_ = f", {show(t.oversubscription, 'ratio')} oversubscribed" if _num(t.oversubscription) is not None \
            and t.oversubscription > 1 + 1e-9 else (", non-blocking" if _num(t.oversubscription) is not None else "")
        parts.append(f"{count_of(t.switches, f'{t.tier} switch')} ({t.model}{os_})")
    n_tiers = len(tiers)
    return (f"{which}: a {n_tiers}-tier {fam} fabric in {count_of(d.planes, 'plane')} and {count_of(d.pods, 'pod')} for "
            f"{count_of(d.accelerators, 'accelerator')} in {count_of(d.racks, 'rack')}: " + ("; ".join(parts) or "no switch tiers")
            + ".")


def _glance(plan: dict) -> Section:
    """The one-page summary a director reads first: the design in words, its key figures, and the
    three numbers per job (collective time placed -> chosen, slowdown against ideal, goodput)."""
    tp = _typed(plan)
    s = Section("overview", "Summary")
    s.paragraphs.append(_design_sentence(tp))
    if _front_end(plan) is not None:
        s.paragraphs.append(_front_end_words(_front_end(plan)))
    b = tp.budget
    cost = b.cost.model_dump() if b is not None and b.cost is not None else {}
    chosen, given, saved = (cost.get(k) if isinstance(cost.get(k), dict) else {}
                            for k in ("chosen", "as_given", "saved_vs_as_given"))
    db, da = tp.describe_before, tp.describe_after
    back = "; back-end fabric" if _front_end(plan) is not None else ""   # the front-end has its own card
    if _num(chosen.get("total_usd")) is not None:
        s.kpis.append(("Cost", usd_card(chosen["total_usd"]), f"capex {usd(chosen.get('capex_usd'))} + energy "
                       f"{usd(chosen.get('energy_usd'))} over {count_of(cost.get('horizon_years'), 'year')}{back}"))
    elif (da or db) is not None and _num((da or db).network_cost_usd) is not None:
        s.kpis.append(("Cost", usd_card((da or db).network_cost_usd), f"network capex (energy not computed){back}"))
    kw = chosen.get("network_kw") if _num(chosen.get("network_kw")) is not None else (
        (da or db).network_kw if (da or db) is not None else None)
    if _num(kw) is not None:
        s.kpis.append(("Network power", f"{fmt(float(kw))} kW", f"switches and optics{back}"
                       + (f"; {fmt(float(given['network_kw']))} kW as given" if _num(given.get("network_kw")) is not None
                          else "")))
    if _num(saved.get("total_usd")) is not None:
        d = float(saved["total_usd"])
        s.kpis.append(("Saves" if d >= 0 else "Costs more", usd_card(abs(d)),
                       f"{pct(abs(saved.get('total_fraction') or 0.0))} of capex + energy against the fabric as given"
                       + (f", {usd(given.get('total_usd'))}" if _num(given.get("total_usd")) is not None else "")))
    b0, b1 = (_num(x.bisection_gbps) if x is not None else None for x in (db, da))
    if b0 and b1 is not None and b1 < b0 * (1 - 1e-9):
        # a budget that cuts bisection is sized for the jobs it was given: the first thing a review asks about
        per = _num(_x(da, "bisection_per_accelerator_gbps"))
        floor = next((r for r in (_get(plan, "budget.requirements.rows") or []) if isinstance(r, dict)
                      and r.get("unit") == "Gb/s"), None)
        s.kpis.append(("Bisection", f"{fmt(b1 / 1e3)} Tb/s", f"{100 * (1 - b1 / b0):.0f}% less than the fabric as given "
                       f"({fmt(b0 / 1e3)} Tb/s)" + (f"; {fmt(per)} Gb/s per accelerator" if per is not None else "")
                       + ("; no floor stated" if floor is None else
                          f"; floor {fmt(floor.get('required'))} Gb/s " + ("met" if floor.get("met") else "NOT met"))))
    fe = _front_end(plan)
    if fe is not None:
        fc = _front_end_cost(fe)
        fch = fc.get("chosen") or {}
        if _num(fch.get("total_usd")) is not None:
            fgiven = fc.get("as_given") or {}
            s.kpis.append(("Front-end fabric", usd_card(fch["total_usd"]),
                           f"capex + energy, {fmt(float(fch.get('network_kw') or 0.0))} kW, "
                           f"{count_of(fe.get('switches'), 'switch')}"
                           + (f" ({usd(fgiven['total_usd'])} as given)" if _num(fgiven.get("total_usd")) is not None else "")
                           + "; not included in Cost"))
        else:
            s.kpis.append(("Front-end fabric", count_of(fe.get("switches"), "switch"),
                           f"for {count_of(fe.get('endpoints'), 'host')}; cost not in the plan (budget not sized)"))
    fr = tp.failures
    w = fr.worst_single if fr is not None else None
    if w is not None:
        stopped = list(w.jobs_stopped or [])
        s.kpis.append(("Worst single failure", count_of(len(stopped), "job") + " stopped",
                       f"{str(w.kind).replace('_', ' ')} {w.name}" + (f", {count_of(w.endpoints_cut_off, 'endpoint')} cut off"
                                               if _num(w.endpoints_cut_off) else "")))
    elif fr is not None and fr.single:
        # a plan without the stored worst failure: ranked here as the failure stage ranks it
        from topo.study.failures import jobs_stopped, rank_single, severity
        top = rank_single([r for r in (plan.get("failures") or {}).get("single") or [] if isinstance(r, dict)])[0]
        stopped, cut = jobs_stopped(top), severity(top)[1]
        s.kpis.append(("Worst single failure", count_of(len(stopped), "job") + " stopped",
                       f"{top.get('kind', '')} {top.get('name', '')}".replace("_", " ")
                       + (f", {count_of(cut, 'endpoint')} cut off" if cut else "")))
    elif fr is None:
        s.kpis.append(("Worst single failure", "n/a", "failure analysis not computed"))
    head = {t: _num(v.get("headroom")) for t, v in sorted(((b.headroom or {}) if b is not None else {}).items())
            if isinstance(v, dict) and _num(v.get("headroom")) is not None}
    if head:
        t = min(head, key=lambda k: (head[k], k))
        # the budget's headroom is under its own model, ideal ECMP; the routed peak under the transport's
        # model can be far higher (RoCE hashing), so the card says which
        routing = str(_get(plan, "metrics_after.routing") or "")
        peak = _tier_max(_tier_rows(plan.get("metrics_after")).get(t, {}))
        s.kpis.append(("Headroom", show(head[t], "pct"), f"least, {t} links, after the worst "
                       f"{(b.headroom or {}).get('failure', 'stated')} failure (ideal ECMP)"
                       + (f"; {_MODEL_NAMES.get(routing, routing)} peak {pct(peak)}, no failure"
                          if routing not in ("", "fluid", "ideal") and peak is not None else "")))
    serve = _serving_margin(plan)
    if serve is not None:
        ratio, name, sat, stated, link = serve
        s.kpis.append(("Serving headroom", show(ratio, "x"), f"least, {name}: saturates at {fmt(round(sat, 2))} "
                       f"requests/s against {fmt(stated)} stated ({link})"))
    g = tp.goodput
    gp = {str(j.name): float(j.goodput) for j in ((g.jobs or []) if g is not None else []) if _num(j.goodput) is not None}
    if gp:
        j = min(gp, key=lambda k: (gp[k], k))
        s.kpis.append(("Goodput", pct(gp[j]), f"lowest job ({j}) over a {fmt(g.run_days)}-day run"))
    # the three numbers per job
    placed = {str(j.name): j for j in ((tp.metrics_placed or tp.metrics_before).jobs or [])} \
        if (tp.metrics_placed or tp.metrics_before) is not None else {}
    after = {str(j.name): j for j in (tp.metrics_after.jobs or [])} if tp.metrics_after is not None else {}
    names = sorted(set(placed) | set(after))
    if names:
        def slow(n):
            j = after.get(n) or placed.get(n)
            t, i = _num(j.time_s), _num(j.ideal_s)
            return t / i if t is not None and i else None
        names.sort(key=lambda n: (-(slow(n) or 0.0), n))
        rows = []
        for n in names:
            tp_, ta = (_num(placed[n].time_s) if n in placed else None), (_num(after[n].time_s) if n in after else None)
            rows.append([n, show(tp_, "s"), show(ta, "s") if after else "n/a", show(slow(n), "x"),
                         pct(gp[n]) if n in gp else "n/a"])
        s.tables.append(Table(columns=["Job", "Collective time, placed on the fabric as given (s)",
                                       "Collective time, chosen fabric (s)", "Slowdown vs ideal", "Goodput"],
                              rows=rows[:GLANCE_JOBS], total=len(rows),
                              caption="Per job, slowest against its ideal time first"))
    return s


def _requirement_risks(plan: dict) -> list:
    """A bisection the link budget cuts (with the figures, and the floor if one is stated) and
    every design requirement the chosen design does not meet."""
    out = []
    db, da = plan.get("describe_before") or {}, plan.get("describe_after") or {}
    rows = _get(plan, "budget.requirements.rows") or []
    rows = [r for r in rows if isinstance(r, dict)]
    b0, b1 = _num(db.get("bisection_gbps")), _num(da.get("bisection_gbps"))
    if b0 is not None and b1 is not None and b1 < b0 * (1 - 1e-9):
        a0, a1 = _num(db.get("bisection_per_accelerator_gbps")), _num(da.get("bisection_per_accelerator_gbps"))
        txt = (f"the link budget cuts bisection from {fmt(b0 / 1e3)} to {fmt(b1 / 1e3)} Tb/s "
               f"({100 * (1 - b1 / b0):.0f}% less" + (f"; {fmt(a0)} -> {fmt(a1)} Gb/s per accelerator" if
                                                   a0 is not None and a1 is not None else "") + ")")
        floor = next((r for r in rows if r.get("unit") == "Gb/s"), None)
        if floor is not None and _num(floor.get("required")) is not None:
            txt += f", against a stated floor of {fmt(floor['required'])} Gb/s per accelerator"
        else:
            txt += ("; no bisection floor is stated (requirements.min_bisection_gbps_per_accelerator), so traffic "
                    "other than the jobs sized for may not fit")
        out.append(txt)
    for r in rows:
        if r.get("met") is False:
            out.append(f"requirement not met: {r.get('requirement')} (required {fmt(r.get('required'))}, "
                       f"achieved {fmt(r.get('achieved'))})")
    return out


def _count(x) -> int:
    """A count given as a number or as the list of what is counted."""
    if isinstance(x, (list, tuple, dict)):
        return len(x)
    v = _num(x)
    return int(v) if v is not None else 0


_MODEL_NAMES = {"roce-hash": "RoCE hashing", "uec-spray": "UEC spraying", "ideal": "ideal ECMP", "fluid": "ideal ECMP"}


def _failure_row(r: dict) -> dict:
    """One single-failure scenario as a flat table row."""
    kind = r.get("kind")
    row = {"kind": kind.replace("_", " ") if isinstance(kind, str) else kind, "name": r.get("name")}
    if "count" in r:
        row["alike"] = r.get("count")
    lost = r.get("bandwidth_lost_frac")
    if isinstance(lost, dict):
        for t in sorted(lost):
            row[f"lost {t}"] = pct(lost[t]) if _num(lost[t]) is not None else None
    elif lost is not None:
        row["lost"] = pct(lost) if _num(lost) is not None else None
    for k in ("endpoints_down", "endpoints_isolated", "unreachable_gbps"):
        if k in r:
            row[k.replace("_", " ")] = r[k]
    if "jobs_affected" in r:
        row["jobs affected"] = _count(r["jobs_affected"])
    if "jobs_lost_ranks" in r:
        row["jobs losing ranks"] = _count(r["jobs_lost_ranks"])
    sd = r.get("slowdown")
    if isinstance(sd, dict):
        for model in sorted(sd):
            v = sd[model]
            vals = [_num(x) for x in v.values()] if isinstance(v, dict) else [_num(v)]
            vals = [x for x in vals if x is not None]
            row[f"worst slowdown vs healthy, {_MODEL_NAMES.get(model, model)}"] = max(vals) if vals else None
    return row


def _group_failures(rows: list) -> list:
    """Failure rows of one kind that differ only in name, count and unreachable Gb/s (three or more) as
    one row at the rank of the first: "30: rack019-power ... rack048-power", the counts summed, the Gb/s
    as a range (30 rack feeds that each stop the same job read as one line, not 30). Other rows keep
    their rank."""
    loose = ("name", "alike", "unreachable gbps")
    # compared as shown (3 significant digits), not bit for bit: 1.000001x and 1.0x read the same
    key = [tuple(sorted((k, f"{v:.3g}" if _num(v) is not None else repr(v)) for k, v in r.items() if k not in loose))
           for r in rows]
    groups: dict = {}
    for i, k in enumerate(key):
        groups.setdefault(k, []).append(i)
    out = []
    for i, r in enumerate(rows):
        members = groups[key[i]]
        if len(members) < 3:
            out.append(r)
        elif members[0] == i:
            ms = [rows[j] for j in members]
            first = dict(r, name=f"{fmt(len(ms))}: {ms[0].get('name')} ... {ms[-1].get('name')}")
            if all(_num(m.get("alike")) is not None for m in ms):
                first["alike"] = sum(int(m["alike"]) for m in ms)
            gb = [_num(m.get("unreachable gbps")) for m in ms]
            if all(g is not None for g in gb) and min(gb) != max(gb):
                first["unreachable gbps"] = f"{show(min(gb), 'gbps')} to {show(max(gb), 'gbps')}"
            out.append(first)
    return out


def _failure_columns(rows: list) -> list:
    """The single-failures table's columns in a deliberate order: what failed and how many alike,
    then what it stops (jobs, endpoints), then what it slows, then the bandwidth it takes."""
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    order = ["kind", "name", "alike", "jobs losing ranks", "jobs affected", "endpoints down", "endpoints isolated",
             "unreachable gbps"]
    slow = sorted(k for k in keys if k.startswith("worst slowdown"))
    lost = sorted(k for k in keys if k == "lost" or k.startswith("lost "))
    cols = [k for k in order if k in keys] + slow + lost
    return cols + [k for k in keys if k not in cols]


def _failure_impact(r: dict) -> float:
    lost = r.get("bandwidth_lost_frac")
    if isinstance(lost, dict):
        vals = [v for v in (_num(x) for x in lost.values()) if v is not None]
        return max(vals) if vals else 0.0
    return _num(lost) or 0.0


def _biggest_cut(failures) -> list:
    """The single failure that takes the largest share of a tier's bandwidth, when it is not the worst one
    ranked by jobs stopped (a sole spine that halves or cuts the fabric can rank below a leaf)."""
    from topo.study.failures import rank_single
    single = rank_single([r for r in (failures or {}).get("single") or [] if isinstance(r, dict)]) \
        if isinstance(failures, dict) else []
    if not single:
        return []
    top = max(single, key=_failure_impact)      # max keeps the first (best-ranked) of equals
    if top is single[0] or _failure_impact(top) < 0.25:
        return []
    lost = top.get("bandwidth_lost_frac")
    tier = max(lost, key=lambda t: (_num(lost[t]) or 0.0, t)) if isinstance(lost, dict) and lost else "a tier"
    return [f"the largest bandwidth loss from one failure: {str(top.get('kind', '')).replace('_', ' ')} "
            f"{top.get('name', '')} takes {pct(_failure_impact(top))} of the {tier} bandwidth"
            + (f" ({fmt(top['count'])} alike)" if _num(top.get("count")) and top["count"] > 1 else "")]


def _worst_failure(failures) -> str:
    """The worst single failure, ranked by jobs stopped, then accelerators cut off, then slowdown,
    then bandwidth (topo.study.failures.severity)."""
    from topo.study.failures import jobs_stopped, rank_single, severity
    if not isinstance(failures, dict):
        return ""
    single = rank_single(failures.get("single") or [])
    if not single:
        return ""
    w = single[0]
    sev = severity(w)
    bits = [f"worst single failure: {str(w.get('kind', '')).replace('_', ' ')} {w.get('name', '')}".rstrip()]
    stopped = jobs_stopped(w)
    bits.append(f"stops {count_of(len(stopped), 'job')}" + (f" ({', '.join(stopped[:5])}{' ...' if len(stopped) > 5 else ''})"
                                                  if stopped else ""))
    if sev[1]:
        bits.append(f"cuts off {count_of(sev[1], 'endpoint')}")
    if sev[2] > 1.0 + 1e-9:
        bits.append(f"slows a job {show(sev[2], 'x')}")
    bits.append(f"loses up to {pct(_failure_impact(w))} of a tier's bandwidth")
    if w.get("jobs_affected") is not None:
        bits.append(f"affects {count_of(_count(w['jobs_affected']), 'job')}")
    if _num(w.get("unreachable_gbps")):
        bits.append(f"leaves {fmt(w['unreachable_gbps'])} Gb/s unreachable")
    return ", ".join(bits)


def _x(obj, name: str):
    """A field of a typed plan part, or one it carries beyond its model (extra), or None."""
    return None if obj is None else getattr(obj, name, None)


def _fabric_section(plan: dict) -> Section:
    s = Section("fabric", "Fabric: tiers and switch counts")
    tp = _typed(plan)
    tdb, tda = tp.describe_before, tp.describe_after
    if tdb is None:
        s.missing = "describe_before not in the plan"
        return s
    rows = []
    tta = tda.tiers or [] if tda is not None else []
    for i, t in enumerate(tdb.tiers or []):
        a = tta[i] if i < len(tta) else None
        rows.append({"tier": t.tier, "model": t.model, "switches": t.switches, "uplinks": t.uplinks,
                     "oversubscription": t.oversubscription, "model after": _x(a, "model") if tda else None,
                     "switches after": _x(a, "switches") if tda else None,
                     "oversubscription after": _x(a, "oversubscription") if tda else None})
    s.tables.append(make_table(rows, caption="Switch tiers as given and with the chosen link budget"
                               + ("" if tda else " (budget not computed)")))
    facts = [("accelerators", tdb.accelerators), ("nodes", tdb.nodes), ("racks", tdb.racks),
             ("bisection (Tb/s, one direction)", tdb.bisection_gbps / 1e3 if _num(tdb.bisection_gbps) else None),
             ("bisection per accelerator (Gb/s)", _x(tdb, "bisection_per_accelerator_gbps")),
             ("injection per accelerator (Gb/s)", _x(tdb, "injection_gbps_per_accelerator"))]
    if tda is not None:
        facts.append(("bisection, chosen design (Tb/s, one direction)", tda.bisection_gbps / 1e3 if _num(tda.bisection_gbps) else None))
    s.tables.append(make_table([{"quantity": k, "value": v} for k, v in facts], caption="Cluster"))
    db, da = plan.get("describe_before"), plan.get("describe_after")
    tb, ta = _tiers_of(db), _tiers_of(da)

    def draw(fig):
        from matplotlib.patches import FancyBboxPatch
        ax = fig.add_subplot(111)
        ax.set_axis_off()
        levels = [("endpoints", db.get("endpoints"), None)] + [
            (t.get("tier"), t.get("switches"), (ta[i].get("switches") if da and i < len(ta) else None))
            for i, t in enumerate(tb)]
        links = db.get("links") or {}
        links_after = (da or {}).get("links") or {}
        link_keys = ["endpoint-leaf", "leaf-spine", "spine-super"]
        for i, (name, before, after) in enumerate(levels):
            changed = after is not None and after != before
            label = f"{name}: {fmt(before)}" + (f" -> {fmt(after)}" if changed else "")
            if i > 0:
                t = tb[i - 1]
                a = ta[i - 1] if da and i - 1 < len(ta) else t
                model = t.get("model", "")
                if a.get("model") != model:
                    model += f" -> {a.get('model', '')}"
                label += f"   ({model}"
                os_b, os_a = t.get("oversubscription"), a.get("oversubscription")
                if os_b is not None or os_a is not None:
                    label += f", {show(os_b, 'ratio')}" + (f" -> {show(os_a, 'ratio')}" if os_a != os_b else "")
                label += ")"
            face = _COLORS["after"] if changed else "#e8eef7"
            ax.add_patch(FancyBboxPatch((0.15, i - 0.28), 0.7, 0.56, boxstyle="round,pad=0.02",
                                        facecolor=face, edgecolor="#334"))
            ax.text(0.5, i, mpl_text(label), ha="center", va="center", color="white" if changed else "#111")
            if i > 0:
                ax.plot([0.5, 0.5], [i - 1 + 0.3, i - 0.3], color="#556", linewidth=1)
                key = link_keys[i - 1] if i - 1 < len(link_keys) else None
                if key in links:
                    after_n = links_after.get(key, links[key])
                    ax.text(0.52, i - 0.5, count_of(links[key], "link") if after_n == links[key] else
                            f"{fmt(links[key])} -> {count_of(after_n, 'link')}", fontsize=8, color="#445", va="center")
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.45, len(levels) - 0.55)
    s.figures.append(Figure("fig-tiers", "Tier diagram",
                            "Switch count per tier (as given -> with the chosen budget), switch model and "
                            "oversubscription; physical links between tiers (as given -> chosen where they differ).", draw, size=(7.5, 0.8 + 0.75 * (len(tb) + 1))))
    return s


def _util_section(plan: dict, fabrics: _Fabrics) -> Section:
    s = Section("utilisation", "Link utilisation")
    mb, ma = plan.get("metrics_before"), plan.get("metrics_after")
    if not mb and not ma:
        s.missing = "no routing metrics in the plan (metrics_before / metrics_after)"
        return s
    rows = []
    for which, m in (("before", mb), ("placed", plan.get("metrics_placed")), ("after", ma)):
        for t in (m or {}).get("tiers") or []:
            if isinstance(t, dict):
                rows.append({"metrics": which, **{k: v for k, v in t.items()}})
    if rows:
        s.tables.append(make_table(rows, caption="Utilisation per tier (load / capacity, offered by the placed jobs)"))
        s.paragraphs.append("before: the fabric as given"
                            + ("; placed: the optimised placement on the fabric as given" if plan.get("metrics_placed") else "")
                            + "; after: with the chosen link budget.")
    if ma is None:
        s.paragraphs.append("Metrics after the link budget: not computed.")
    peaks = {w: _tier_rows(plan.get(f"metrics_{w}")) for w in ("before", "placed", "after")}
    peaks = {w: {t: _tier_max(r) for t, r in rows_.items() if _tier_max(r) is not None} for w, rows_ in peaks.items()}
    peaks = {w: v for w, v in peaks.items() if v}
    if peaks:
        ptiers = [t for t in ("endpoint-leaf", "leaf-spine", "spine-super") if any(t in v for v in peaks.values())]
        ptiers += sorted({t for v in peaks.values() for t in v} - set(ptiers))
        target = _get(plan, "cluster_file.goals.target_utilization")

        def draw_peaks(fig):
            ax = fig.add_subplot(111)
            y = np.arange(len(ptiers))
            h = 0.8 / len(peaks)
            for i, (w, v) in enumerate(peaks.items()):
                vals = [100 * v.get(t, np.nan) for t in ptiers]
                ax.barh(y + i * h, vals, height=h, color=_COLORS[w], label=w)
                for yy, x in zip(y + i * h, vals):
                    if np.isfinite(x):
                        ax.text(x, yy, f" {x:.0f}%", va="center", fontsize=7)
            if _num(target) is not None:
                ax.axvline(100 * target, color=_COLORS["limit"], linestyle="--", label="target")
            ax.set_yticks(y + h * (len(peaks) - 1) / 2, [mpl_text(t) for t in ptiers])
            ax.invert_yaxis()
            ax.set_xlabel("peak link utilisation (%)")
            # above the bars: inside, it covered the labels of bars near 100%
            ax.legend(fontsize=7, ncols=len(peaks) + 1, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
        routing = str(_get(plan, "metrics_after.routing") or _get(plan, "metrics_before.routing") or "")
        s.figures.append(Figure("fig-peaks", "Peak utilisation per tier, before and after",
                                "Peak directed-link utilisation per link tier"
                                + (f", routed under {_MODEL_NAMES.get(routing, routing)}" if routing else "")
                                + ": in-order placement on the fabric as "
                                "given (before), optimised placement (placed), with the chosen link budget (after); "
                                "dashed: the utilisation target.", draw_peaks,
                                size=(7.5, 0.8 + 0.16 * len(ptiers) * len(peaks))))
    hists = {w: _hists(plan, w, fabrics) for w in ("before", "placed", "after")}
    hists = {w: h for w, h in hists.items() if h}
    if hists:
        tiers_present = [t for t in ("endpoint-leaf", "leaf-spine", "spine-super")
                         if any(t in h for h in hists.values())]
        tiers_present += sorted({t for h in hists.values() for t in h} - set(tiers_present))

        def draw(fig):
            axes = fig.subplots(1, len(tiers_present), squeeze=False)[0]
            for ax, t in zip(axes, tiers_present):
                for w, h in hists.items():
                    if t not in h:
                        continue
                    edges, counts = np.asarray(h[t]["edges"], float), np.asarray(h[t]["counts"], float)
                    ax.stairs(counts, edges, fill=(w == "after"), alpha=0.6 if w == "after" else 1.0,
                              color=_COLORS[w], label=mpl_text(f"{w} ({count_of(int(counts.sum()), 'link')})"))
                ax.set_title(mpl_text(t))
                ax.set_xlabel("utilisation")
                ax.set_yscale("symlog", linthresh=1)
                ax.legend(fontsize=6.5, loc="upper center", frameon=False)   # link counts per run of this tier
            axes[0].set_ylabel("directed links")
        s.figures.append(Figure("fig-util", "Link utilisation per tier",
                                "Histogram of the utilisation of every directed link, per tier (log count scale); "
                                "filled blue = after the link budget, outlines = before (grey) and with the optimised "
                                "placement on the fabric as given (orange).", draw,
                                size=(3.0 * max(len(tiers_present), 1) + 1.0, 3.0)))
    else:
        s.paragraphs.append("Per-link utilisation not recorded in the plan (metrics.util_hist or metrics.link_util): "
                            "no histogram.")
    m = ma or mb or {}
    hot = m.get("hottest_links") or m.get("hottest")
    if hot:
        s.tables.append(make_table(hot, limit=20, caption="Hottest links (" + ("after" if ma else "before") + ")"))
    return s


def _traffic_section(plan: dict) -> Section:
    s = Section("traffic", "Pod-to-pod traffic")
    which = next((w for w in ("after", "placed", "before") if _get(plan, f"metrics_{w}.pod_matrix_gbps") is not None),
                 "before")
    m = _get(plan, f"metrics_{which}.pod_matrix_gbps")
    unit = str(_get(plan, f"metrics_{which}.pod_matrix_unit") or "pod")
    if m is None:
        s.missing = "pod_matrix_gbps not in the plan's metrics"
        return s
    M = np.asarray(m, dtype=float)
    if M.ndim != 2 or M.size == 0:
        s.missing = "pod_matrix_gbps is empty"
        return s
    when = {"after": "after the link budget", "placed": "optimised placement, fabric as given",
            "before": "before optimisation"}[which]
    plural = {"leaf": "leaves", "pod": "pods"}.get(unit, unit + "s")
    def rate(g):
        return f"{fmt(g / 1e3)} Tb/s" if g >= 1e4 else f"{fmt(g)} Gb/s"
    s.paragraphs.append(f"Offered scale-out traffic between {plural} ({when}): {rate(float(M.sum()))} in total, "
                        f"{rate(float(np.trace(M)))} of it inside one {unit}"
                        + (f" ({pct(float(np.trace(M)) / float(M.sum()))})" if M.sum() > 0 else "") + "."
                        + (" The fabric has one pod, so the matrix is per leaf." if unit == "leaf" else ""))

    tb = float(M.max()) >= 1e4          # Tb/s past 10,000 Gb/s: no "1e6" offset over the colour bar
    Mshow = M / 1e3 if tb else M

    def draw(fig):
        ax = fig.add_subplot(111)
        im = ax.imshow(Mshow, cmap="viridis", interpolation="nearest", aspect="equal")
        ax.set_xlabel(mpl_text(f"destination {unit}"))
        ax.set_ylabel(mpl_text(f"source {unit}"))
        ax.grid(False)
        if M.shape[0] <= 16:
            ax.set_xticks(np.arange(M.shape[1]))
            ax.set_yticks(np.arange(M.shape[0]))
        fig.colorbar(im, ax=ax, label="Tb/s" if tb else "Gb/s")
    s.figures.append(Figure("fig-pods", "Pod-to-pod traffic heatmap",
                            f"Offered {'Tb/s' if tb else 'Gb/s'} from each {unit} to each {unit}.",
                            draw, size=(5.0, 4.2)))
    return s


def _transport_section(plan: dict) -> Section:
    s = Section("transport", "RoCE hashing vs Ultra Ethernet spraying")
    which = "after" if plan.get("metrics_after") else "before"
    m = plan.get(f"metrics_{which}") or {}
    tc = m.get("roce_vs_uec") or m.get("transport_compare")
    if not isinstance(tc, dict) or not tc:
        s.missing = "the RoCE/UEC comparison (roce_vs_uec) is not in the plan's metrics"
        return s
    models = [k for k in ("roce-hash", "uec-spray") if isinstance(tc.get(k), dict)]
    models += sorted(k for k, v in tc.items() if k not in models and isinstance(v, dict)
                     and ("max_util" in v or "tiers" in v))
    if not models:
        s.missing = "the RoCE/UEC comparison has no transport models"
        return s
    s.paragraphs.append(f"The same traffic ({which} the link budget) routed with RoCEv2 ECMP hashing and with "
                        "Ultra Ethernet packet spraying.")
    rh = tc.get("roce-hash") if isinstance(tc.get("roce-hash"), dict) else {}
    # the counts the comparison ran with: stored with the RoCE model, or once for the whole run
    ch, qp = rh.get("channels", m.get("channels")), rh.get("qps_per_channel", m.get("qps_per_channel"))
    if isinstance(ch, int) and isinstance(qp, int):
        s.paragraphs.append(
            f"RoCE hashing: {count_of(ch, 'channel')} per collective x {count_of(qp, 'queue pair')} per channel, "
            + (f"each (channel, queue pair) hashed on its own: {count_of(ch * qp, 'hashed flow')} per connection, "
               f"each carrying 1/{ch * qp} of its bytes." if ch * qp > 1 else
               "so each connection is hashed once: one path per connection, carrying all of its bytes."))
    pen = _num(tc.get("collision_penalty_max_util"))
    if pen is not None:
        s.paragraphs.append(f"Hash collisions raise the peak link utilisation {show(pen, 'x')} over spraying.")
    # scalar metrics side by side
    flat = {mod: {k: v for k, v in flatten(tc[mod]).items() if _num(v) is not None and not k.startswith("jobs.")}
            for mod in models}
    keys = sorted(set.intersection(*[set(f) for f in flat.values()])) if flat else []
    if keys:
        s.tables.append(make_table([{"metric": k, **{mod: flat[mod].get(k) for mod in models}} for k in keys],
                                   columns=["metric"] + models, caption="Side by side"))
    # per-job completion times and the collision penalty
    times = {mod: tc[mod].get("jobs") for mod in models if isinstance(tc[mod].get("jobs"), dict)}
    jobs_pen = tc.get("collision_penalty_time") if isinstance(tc.get("collision_penalty_time"), dict) else {}
    if times:
        names = sorted(set.intersection(*[set(t) for t in times.values()]))
        rows = [{"job": n, **{f"{mod} time_s": times[mod].get(n) for mod in times},
                 **({"penalty": jobs_pen.get(n)} if jobs_pen else {})} for n in names]
        rows.sort(key=lambda r: (-(_num(r.get("penalty")) or 0.0), str(r["job"])))
        s.tables.append(make_table(rows, limit=30, caption="Communication time per job and the hashing penalty "
                                                           "(time with hashing / time with spraying), worst first"))
        top = rows[:15]
        tmods = list(times)

        def draw(fig):
            ax = fig.add_subplot(111)
            y = np.arange(len(top))
            h = 0.8 / len(tmods)
            for i, mod in enumerate(tmods):
                ax.barh(y + i * h, [(_num(r.get(f"{mod} time_s")) or 0.0) * 1e3 for r in top], height=h,
                        color=_COLORS.get(mod), label=mpl_text(_MODEL_NAMES.get(mod, mod)))
            ax.set_yticks(y + h * (len(tmods) - 1) / 2, [mpl_text(str(r["job"])[:40]) for r in top], fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel("communication time per iteration (ms)")
            ax.legend(fontsize=8, ncols=len(tmods), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
        s.figures.append(Figure("fig-transport", "RoCE hashing vs UEC spraying",
                                "Communication time of each job under ECMP hashing and under packet spraying "
                                "(jobs with the largest hashing penalty first).", draw,
                                size=(7.5, 1.0 + 0.3 * len(top) * len(tmods))))
    elif keys:
        util_keys = [k for k in keys if "util" in k and "mean" not in k][:10]

        def draw(fig):
            ax = fig.add_subplot(111)
            y = np.arange(len(util_keys))
            h = 0.8 / len(models)
            for i, mod in enumerate(models):
                ax.barh(y + i * h, [float(flat[mod][k]) for k in util_keys], height=h, color=_COLORS.get(mod),
                        label=mpl_text(_MODEL_NAMES.get(mod, mod)))
            ax.set_yticks(y + h * (len(models) - 1) / 2, [mpl_text(column(k)[0]) for k in util_keys])
            ax.invert_yaxis()
            ax.set_xlabel("utilisation")
            ax.legend(fontsize=8, ncols=len(models), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
        if util_keys:
            s.figures.append(Figure("fig-transport", "RoCE hashing vs UEC spraying",
                                    "Utilisation of the two transports side by side.", draw,
                                    size=(7.5, 0.9 + 0.35 * len(util_keys) * len(models))))
    return s


POWER_PROFILE_POINTS = 600   # ranks drawn in the sorted rack-power profile of a large cluster


def _power_section(plan: dict) -> Section:
    s = Section("power", "Rack power")
    typed_racks = [r for r in (_typed(plan).placement.racks or []) if _num(r.kw) is not None]
    racks = [r.model_dump(exclude_unset=True) for r in typed_racks]
    if not racks:
        s.missing = "placement.racks (power per rack) not in the plan"
        return s
    kw = np.array([float(r.kw) for r in typed_racks])
    lim = np.array([float(r.limit_kw) if _num(r.limit_kw) is not None else np.nan for r in typed_racks])
    over = kw > lim + 1e-9
    s.paragraphs.append(f"{fmt(len(racks))} racks: {fmt(float(kw.sum()))} kW in total, the fullest at "
                        f"{fmt(float(kw.max()))} kW; {fmt(int(over.sum()))} over their limit.")
    names = [str(r.get("rack", i)) for i, r in enumerate(racks)]

    def draw(fig):
        ax = fig.add_subplot(111)
        if len(racks) <= 48:
            x = np.arange(len(racks))
            ax.bar(x, kw, color=[_COLORS["over"] if o else _COLORS["ok"] for o in over])
            ax.step(np.concatenate([x - 0.5, [x[-1] + 0.5]]), np.concatenate([lim, [lim[-1]]]), where="post",
                    color=_COLORS["limit"], linestyle="--", label="limit")
            ax.set_xticks(x, [mpl_text(n[:40]) for n in names], rotation=90, fontsize=7)
        else:
            order = np.argsort(-kw, kind="stable")
            # the sorted profile at most POWER_PROFILE_POINTS ranks apart (fullest and emptiest kept): one
            # vertex per rack made this figure 0.4 MB of the 131k report; the over-limit count is in the text
            x = np.unique(np.round(np.linspace(0, len(racks) - 1, min(len(racks), POWER_PROFILE_POINTS))).astype(np.int64))
            ax.fill_between(x, kw[order][x], step="mid", color=_COLORS["ok"], alpha=0.7, label="rack power (sorted)")
            ax.plot(x, lim[order][x], color=_COLORS["limit"], linestyle="--", label="limit of that rack")
            ax.set_xlabel("racks, fullest first" + (f" (every {len(racks) / len(x):.3g}th rank drawn)"
                                                     if len(x) < len(racks) else ""))
        ax.set_ylabel("kW")
        ax.legend(fontsize=8, ncols=2, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    s.figures.append(Figure("fig-power", "Rack power against limits",
                            "Power per rack with the placed jobs busy (red: over the limit).", draw))
    top = sorted(racks, key=lambda r: (-(float(r["kw"]) - (_num(r.get("limit_kw")) or 0.0)), str(r.get("rack"))))
    s.tables.append(make_table([{k: r.get(k) for k in ("rack", "kw", "limit_kw", "share")} for r in top], limit=20,
                               group=True, caption="Racks closest to (or over) their limit; racks alike are grouped"))
    return s


MAX_CABLE_RUNS = 1500   # drawn line segments on the floor plan (runs merge onto a coarser grid past it)


def cable_runs(f, eor: bool, max_runs: int = MAX_CABLE_RUNS) -> list:
    """Cable runs of a fabric on its floor, aggregated: ``[(x0, y0, x1, y1, reach, links)]`` in
    rack units (x: position in the row, y: row), one per (from, to, reach class), physical links
    counted once, sorted. Positions follow the builder's floor layout: an endpoint in its rack, a
    leaf in the rack of its first endpoint (top of rack) or at its row's end (end of row), a spine
    beside the middle row of its pod's leaves, a super-spine beside the middle row of the floor.
    Past ``max_runs`` distinct runs, positions are merged onto a coarser grid (2, 4, ... racks)."""
    from topo.model.fabric import REACH_NAMES
    ne = int(f.n_endpoints)
    tier = np.asarray(f.node_tier, dtype=np.int64)
    src, dst = np.asarray(f.link_src, dtype=np.int64), np.asarray(f.link_dst, dtype=np.int64)
    up = tier[src] < tier[dst]
    src, dst, reach = src[up], dst[up], np.asarray(f.link_reach, dtype=np.int64)[up]
    rack_of_ep = np.asarray(f.server_rack, dtype=np.int64)[np.asarray(f.ep_server, dtype=np.int64)[:ne]]
    rrow, rcol = np.asarray(f.rack_row, dtype=float), np.asarray(f.rack_col, dtype=float)
    C = float(rcol.max()) + 1 if rcol.size else 1.0
    R = float(rrow.max()) + 1 if rrow.size else 1.0
    x = np.full(tier.size, np.nan)
    y = np.full(tier.size, np.nan)
    x[:ne], y[:ne] = rcol[rack_of_ep], rrow[rack_of_ep]
    e2l = (tier[src] == 0) & (src < ne)
    first = np.full(tier.size, np.iinfo(np.int64).max)
    np.minimum.at(first, dst[e2l], src[e2l])
    leaf = (tier == 1) & (first < np.iinfo(np.int64).max)
    fe = first[leaf]
    x[leaf] = C if eor else x[fe]
    y[leaf] = y[fe]
    pod = np.asarray(f.node_pod, dtype=np.int64)
    if (tier == 2).any():
        P = int(pod.max()) + 1 if pod.size else 1
        lp = np.maximum(pod[leaf], 0)
        cnt = np.bincount(lp, minlength=P)
        pod_y = np.bincount(lp, weights=y[leaf], minlength=P) / np.maximum(cnt, 1)
        sp = tier == 2
        x[sp] = C + 1
        y[sp] = pod_y[np.clip(pod[sp], 0, P - 1)]
    su = tier == 3
    x[su], y[su] = C + 2, (R - 1) / 2.0
    ok = np.isfinite(x[src]) & np.isfinite(x[dst])
    pts = np.stack([x[src], y[src], x[dst], y[dst]], axis=1)[ok]
    reach = reach[ok]
    q = 1.0
    while True:
        key = np.column_stack([np.round(pts / q) * q, reach])
        uk, n = np.unique(key, axis=0, return_counts=True)
        if len(uk) <= max_runs or q >= max(C, R):
            break
        q *= 2
    return [(float(a), float(b), float(c), float(d), REACH_NAMES[int(r)], int(k))
            for (a, b, c, d, r), k in zip(uk.tolist(), n.tolist())]


def _floor_figure(plan: dict, fabrics: "_Fabrics") -> Optional[Figure]:
    """Floor plan of the design as chosen: racks in their rows (positions from the fabric rebuilt
    from the plan), each coloured by its power against its limit with the placed jobs busy, the
    end-of-row network racks where leaves sit there, the spine and super-spine racks, the cable
    runs coloured by reach class (aggregated: :func:`cable_runs`), and the links by reach class
    beside it."""
    f = fabrics.get("after")
    if f is None or not f.n_racks:
        return None
    row, col = np.asarray(f.rack_row, dtype=np.int64), np.asarray(f.rack_col, dtype=np.int64)
    kw = {str(r.get("rack")): _num(r.get("kw")) for r in (_get(plan, "placement.racks") or []) if isinstance(r, dict)}
    lim = np.asarray(f.rack_limit_kw, dtype=float)
    share = np.array([(kw.get(f.rack_name(i)) or 0.0) / lim[i] if lim[i] > 0 else np.nan for i in range(f.n_racks)])
    eor = _get(plan, "cluster_file_after.floor.leaf_placement") or _get(plan, "cluster_file.floor.leaf_placement") or "eor"
    R, C = int(row.max()) + 1, int(col.max()) + 1
    grid = np.full((R, C + (1 if eor == "eor" else 0)), np.nan)
    grid[row, col] = share
    tiers = _tiers_of(plan.get("describe_after") or plan.get("describe_before"))
    optics = [o for o in (_get(plan, "budget.bill_of_materials.optics") or
                          _get(plan, "describe_after.bill_of_materials.optics") or
                          _get(plan, "describe_before.bill_of_materials.optics") or []) if isinstance(o, dict)]
    runs = cable_runs(f, eor == "eor")
    by_reach: dict = {}
    for *_, r, k in runs:
        by_reach[r] = by_reach.get(r, 0) + k
    kmax = max((k for *_, k in runs), default=1)
    n_tiers = int(np.asarray(f.node_tier).max()) if f.n_nodes else 0
    parts: dict = {}      # reach class -> the parts the bill of materials buys for it (lpo over an mmf reach)
    for o in optics:
        parts.setdefault(str(o.get("reach") or o.get("part")), set()).add(str(o.get("part") or o.get("reach")))

    def reach_label(r: str) -> str:
        ps = sorted(parts.get(r, {r}))
        return reach_words(r) if ps == [r] else f"{r} reach, {'/'.join(ps)} part"

    def draw(fig):
        from matplotlib.collections import LineCollection
        from matplotlib.colors import ListedColormap
        from matplotlib.lines import Line2D
        from matplotlib.patches import Rectangle
        ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1.3]})
        ax.grid(False)
        im = ax.imshow(grid, cmap="YlOrRd", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
        if eor == "eor":
            net = np.full(grid.shape, np.nan)
            net[:, -1] = 1.0
            ax.imshow(net, cmap=ListedColormap([_COLORS["after"]]), interpolation="nearest", aspect="auto")
        # the network columns are one rack wide: their names stand upright above them (side by side they
        # overlap once a row holds more than a few racks)
        heads = [(C, "leaves")] if eor == "eor" else []
        for t, xx in ((2, C + 1), (3, C + 2)):
            if n_tiers >= t:
                ax.add_patch(Rectangle((xx - 0.5, -0.5), 1.0, R, facecolor="#dfe6f1", edgecolor="#334", linewidth=0.6, zorder=0.5))
                heads.append((xx, "spines" if t == 2 else "super-spines"))
        for xx, word in heads:
            ax.text(xx, -0.5, word, ha="center", va="bottom", fontsize=7, rotation=90)
        segs = [((a, b), (c, d)) for a, b, c, d, _, _ in runs]
        if segs:
            lw = [0.4 + 2.2 * math.log1p(k) / math.log1p(kmax) for *_, k in runs]
            ax.add_collection(LineCollection(segs, colors=[_REACH_COLORS.get(r, "#888") for *_, r, _ in runs],
                                             linewidths=lw, alpha=0.75, zorder=3))
            fig.legend(handles=[Line2D([], [], color=_REACH_COLORS.get(r, "#888"), lw=2,
                                       label=mpl_text(f"{reach_label(r)} ({count_of(by_reach[r], 'link')})")) for r in sorted(by_reach)],
                       fontsize=7, loc="outside lower center", ncols=min(len(by_reach), 3), frameon=False,
                       title="cable runs by reach class (line width: links, log scale)", title_fontsize=7)
        ax.set_xlim(-0.5, (C if eor == "eor" or n_tiers >= 2 else C - 1) + max(n_tiers - 1, 0) + 0.5)
        ax.set_ylim(R - 0.5, -0.5 - (0.6 if n_tiers >= 2 else 0))
        ax.set_xlabel("position in row" + ("  (then: end-of-row network rack with the leaves" if eor == "eor" else
                                           "  (then: network racks") + ", spine and super-spine racks)", fontsize=7)
        ax.set_ylabel("row")
        if R <= 40:
            ax.set_yticks(np.arange(R))
        fig.colorbar(im, ax=ax, label="rack power / limit", fraction=0.04)
        ax.set_title("racks by row, with the cable runs", fontsize=9,
                     pad=4 + 3.5 * max((len(w) for _, w in heads), default=0))
        names = [str(o.get("reach") or o.get("part")) for o in optics]
        links = [_num(o.get("links")) or 0.0 for o in optics]
        yy = np.arange(len(names))
        bx.barh(yy, links, color=[_REACH_COLORS.get(n, "#888") for n in names])
        bx.set_yticks(yy, [mpl_text(f"{n}" + ("" if str(o.get("part") or n) == n else f" ({o.get('part')} part)")
                                    + f", {fmt(o.get('gbps'))}G") for n, o in zip(names, optics)], fontsize=7)
        bx.invert_yaxis()
        bx.set_xlabel("links by reach class")
    return Figure("fig-floor", "Floor plan with cable runs",
                  f"{count_of(f.n_racks, 'rack')} in {count_of(R, 'row')} of up to {C}, coloured by power against the rack's limit "
                  "with the placed jobs busy (grey: no figure)"
                  + ("; blue: the end-of-row network rack of each row, where its leaves sit" if eor == "eor" else "")
                  + "; " + ("leaves at the end of each row" if eor == "eor" else "leaves in their racks (top of rack)")
                  + "".join(", " + count_of(t.get("switches"), f"{t.get('tier')} switch") for t in tiers[1:] if isinstance(t, dict))
                  + " in network racks (the columns to the right). Lines: cable runs coloured by reach class, "
                  f"{count_of(len(runs), 'run')} drawn for {count_of(sum(by_reach.values()), 'physical link')} (links with the same ends "
                  "and reach class are one line, its width growing with their count). Right: links by reach class "
                  "(copper and optics) in the chosen design"
                  + "".join(f"; the bill of materials buys {'/'.join(sorted(ps))} parts for the {r} reach"
                            for r, ps in sorted(parts.items()) if ps != {r}) + ".", draw,
                  size=(9.0, min(7.5, 2.4 + 0.22 * R)))


_REACH_WORDS = {"dac": "DAC copper", "aec": "AEC active copper", "acc": "active copper", "mmf": "multimode optics",
                "smf_dr": "single-mode DR optics", "smf_fr": "single-mode FR optics", "lpo": "LPO optics",
                "aoc": "active optical cables"}


def reach_words(code: str) -> str:
    """A reach class or optic part in words, with its code: "single-mode DR optics (smf_dr)"."""
    w = _REACH_WORDS.get(str(code))
    return f"{w} ({code})" if w else str(code)


_REACH_COLORS = {"dac": "#1b7837", "aec": "#5aae61", "acc": "#5aae61", "lpo": "#e59500", "mmf": "#e59500",
                 "sr": "#e59500", "aoc": "#d17a22", "smf": "#d1495b", "dr": "#d1495b", "smf_dr": "#d1495b",
                 "fr": "#762a83", "smf_fr": "#762a83", "lr": "#6a040f"}


def _cost_parts(bom, energy) -> dict:
    """Cost of one design by part: switches, optics and cables per reach class, energy."""
    out = {}
    if isinstance(bom, dict):
        sw = [_num(r.get("cost_usd")) for r in bom.get("switches") or [] if isinstance(r, dict)]
        out["switches"] = sum(x for x in sw if x is not None)
        for o in bom.get("optics") or []:
            if isinstance(o, dict) and _num(o.get("cost_usd")) is not None:
                k = f"{o.get('part') or o.get('reach')}"
                out[k] = out.get(k, 0.0) + float(o["cost_usd"])
    if _num(energy) is not None:
        out["energy"] = float(energy)
    return out


def _cost_figure(plan: dict) -> Optional[Figure]:
    """Stacked bars: the design as given and the chosen one, by switches, optics per class and energy."""
    given = _cost_parts(_get(plan, "describe_before.bill_of_materials"), _get(plan, "budget.cost.as_given.energy_usd"))
    chosen = _cost_parts(_get(plan, "budget.bill_of_materials") or _get(plan, "describe_after.bill_of_materials"),
                         _get(plan, "budget.cost.chosen.energy_usd"))
    if not given or not chosen:
        return None
    parts = ["switches"] + sorted((set(given) | set(chosen)) - {"switches", "energy"}) + ["energy"]
    parts = [k for k in parts if k in given or k in chosen]

    top = max(sum(given.values()), sum(chosen.values()))
    # millions from $1M, else thousands: "$0.3M" for both a $339k and a $263k design said nothing
    scale, unit, words = (1e6, "M", "million") if top >= 1e6 else (1e3, "k", "thousand")
    digits = 2 if 1e6 <= top < 1e7 else 1

    def draw(fig):
        ax = fig.add_subplot(111)
        left = np.zeros(2)
        palette = ["#1f6feb", "#2e933c", "#e59500", "#d17a22", "#d1495b", "#6f42c1", "#57606a", "#9aa5b1"]
        for i, k in enumerate(parts):
            v = np.array([given.get(k, 0.0), chosen.get(k, 0.0)]) / scale
            ax.barh([0, 1], v, left=left, color=_REACH_COLORS.get(k, palette[i % len(palette)]) if k not in
                    ("switches", "energy") else ("#1f6feb" if k == "switches" else "#9aa5b1"),
                    label=mpl_text(k if k in ("switches", "energy") else reach_words(k)),
                    edgecolor="white")
            left += v
        for y, tot in enumerate(left):
            ax.text(tot, y, f"  ${tot:,.{digits}f}{unit}", va="center", fontsize=8)
        ax.set_yticks([0, 1], ["as given", "chosen"])
        ax.invert_yaxis()
        ax.set_xlabel(f"{words} USD (network capex by part, and energy over the horizon)")
        ax.set_xlim(0, max(left) * 1.18 if max(left) > 0 else 1)
        # a figure legend in the layout (an axes legend above the bars was clipped once names were words)
        fig.legend(fontsize=7, ncols=min(len(parts), 3), loc="outside upper center", frameon=False)
    return Figure("fig-cost", "Cost breakdown", "Network capex of the design as given and of the chosen design, "
                  "by switches and by optic or cable class, plus energy over the horizon (USD).", draw,
                  size=(7.5, 2.2 + 0.18 * ((len(parts) + 2) // 3)))


def _plane_groups(f, plane: int):
    """Nodes of one plane grouped by (tier, pod) and the up-links between groups: ``(groups, edges)``,
    groups {(tier, pod): node count}, edges {((tier, pod), (tier, pod)): (links, Gb/s)}."""
    tier = np.asarray(f.node_tier, dtype=np.int64)
    pod = np.asarray(f.node_pod, dtype=np.int64).copy()
    ne = int(f.n_endpoints)
    pod[:ne] = np.asarray(f.ep_pod(), dtype=np.int64)[:ne]
    src, dst = np.asarray(f.link_src, dtype=np.int64), np.asarray(f.link_dst, dtype=np.int64)
    up = (tier[src] < tier[dst]) & (np.asarray(f.link_plane) == plane)
    src, dst, gbps = src[up], dst[up], np.asarray(f.link_gbps, dtype=float)[up]
    inplane = np.asarray(f.node_plane) == plane
    inplane[:ne] = np.isin(np.arange(ne), src[tier[src] == 0])   # endpoints with a port in this plane
    P = int(pod.max()) + 2 if pod.size else 1
    key = tier * P + (pod + 1)                                   # pod -1 (super-spines) -> 0
    ks, counts = np.unique(key[inplane], return_counts=True)
    groups = {(int(k // P), int(k % P) - 1): int(c) for k, c in zip(ks.tolist(), counts.tolist())}
    ek = key[src] * (4 * P) + key[dst]
    uk, inv = np.unique(ek, return_inverse=True)
    n = np.bincount(inv, minlength=uk.size)
    g = np.bincount(inv, weights=gbps, minlength=uk.size)
    edges = {}
    for k, c, cap in zip(uk.tolist(), n.tolist(), g.tolist()):
        a, b = divmod(int(k), 4 * P)
        edges[((a // P, a % P - 1), (b // P, b % P - 1))] = (int(c), float(cap))
    return groups, edges


PLANE_PODS_DRAWN = 6


def _plane_layout(groups: dict, edges: dict):
    """What one plane diagram draws: (pods shown, pods hidden, tiers, xy of a group)."""
    pods = sorted({pd for (_, pd) in groups if pd >= 0})
    shown, hidden = pods[:PLANE_PODS_DRAWN], pods[PLANE_PODS_DRAWN:]
    tiers = sorted({t for t, _ in groups})
    ncol = max(len(shown), 1)

    def xy(g):
        t, pd = g
        x = (shown.index(pd) + 0.5) / ncol if pd in shown else 0.5
        return x, tiers.index(t)
    return shown, hidden, tiers, xy


def _draw_plane(ax, groups: dict, edges: dict, n_tiers: Optional[int] = None, fontsize: float = 7.0):
    """One plane aggregated by pod and tier into ``ax``: a box per (tier, pod) with its node count,
    an edge per connected pair with its link count, speed and capacity."""
    from matplotlib.patches import FancyBboxPatch
    from topo.model.fabric import TIER_NAMES
    shown, hidden, tiers, xy = _plane_layout(groups, edges)
    ax.set_axis_off()
    ax.grid(False)
    for (a, b), (c, cap) in sorted(edges.items()):
        if (a[1] >= 0 and a[1] not in shown) or (b[1] >= 0 and b[1] not in shown):
            continue
        (x0, y0), (x1, y1) = xy(a), xy(b)
        ax.plot([x0, x1], [y0 + 0.22, y1 - 0.22], color="#8a94a0", linewidth=0.8, zorder=1)
        t = 0.5 if a[1] == b[1] else 0.2    # edges to a shared group: labelled near their own pod, apart
        ax.text(x0 + t * (x1 - x0), y0 + 0.22 + t * (y1 - y0 - 0.44), f"{c:,} x {cap / c:g}G\n{cap / 1e3:,.1f} Tb/s",
                fontsize=6, ha="center", va="center", color="#333",
                bbox=dict(facecolor="white", edgecolor="none", pad=0.5), zorder=3)
    w = min(0.8 / max(len(shown), 1), 0.3)
    for g, cnt in sorted(groups.items()):
        if g[1] >= 0 and g[1] not in shown:
            continue
        x, y = xy(g)
        name = TIER_NAMES[g[0]] if g[0] < len(TIER_NAMES) else f"tier {g[0]}"
        label = (f"pod {g[1]}: " if g[1] >= 0 else "") + count_of(cnt, name)
        ax.add_patch(FancyBboxPatch((x - w / 2, y - 0.2), w, 0.4, boxstyle="round,pad=0.01",
                                    facecolor="#e8eef7" if g[0] == 0 else _COLORS["after"], edgecolor="#334",
                                    zorder=2))
        ax.text(x, y, mpl_text(label), ha="center", va="center", fontsize=fontsize, zorder=4,
                color="#111" if g[0] == 0 else "white")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.5, max(n_tiers or 0, len(tiers)) - 0.5)
    if hidden:
        ax.text(1.0, -0.45, f"+ {count_of(len(hidden), 'more pod')} not drawn", ha="right", fontsize=7, color="#555")


def _distinct_planes(f) -> dict:
    """The chosen fabric's planes grouped by their aggregate: {(groups, edges) signature: [planes]},
    in the order of each group's first plane."""
    seen: dict = {}
    for p in range(max(int(f.planes), 1)):
        groups, edges = _plane_groups(f, p)
        sig = (tuple(sorted(groups.items())), tuple(sorted(edges.items())))
        seen.setdefault(sig, []).append(p)
    return seen


def _plane_figures(plan: dict, fabrics: "_Fabrics", skip_plane0: bool = False) -> list:
    """One diagram per distinct plane of the chosen fabric, aggregated by pod and tier: a box per
    (tier, pod) with its node count, an edge per connected pair with its link count and capacity.
    Planes with the same aggregate are drawn once; past PLANE_PODS_DRAWN pods the rest are named.
    ``skip_plane0``: plane 0 (and the planes alike) is drawn elsewhere (the before/after figure)."""
    f = fabrics.get("after")
    if f is None or f.n_links == 0:
        return []
    seen = _distinct_planes(f)
    out = []
    for (gi, ei), planes in [(k, v) for k, v in seen.items() if not (skip_plane0 and 0 in v)][:4]:
        groups, edges = dict(gi), dict(ei)
        shown, hidden, tiers, _ = _plane_layout(groups, edges)
        n_pods = len(shown) + len(hidden)

        def draw(fig, groups=groups, edges=edges):
            _draw_plane(fig.add_subplot(111), groups, edges)
        names = ", ".join(str(p) for p in planes[:8]) + (" ..." if len(planes) > 8 else "")
        alike = f"plane {names}" if len(planes) == 1 else f"planes {names} ({len(planes)} alike)"
        out.append(Figure(f"fig-plane-{planes[0]}", f"Fabric of {alike}",
                          f"The chosen fabric, {alike}, by pod and tier: each box a group of switches or endpoints "
                          "with its count, each edge the links between two groups (count x speed, and the capacity "
                          "in one direction)" + (f"; {len(shown)} of {n_pods} pods drawn" if hidden else "") + ".",
                          draw, size=(7.5, 0.9 + 1.0 * len(tiers))))
    return out


def _before_after_figure(plan: dict, fabrics: "_Fabrics") -> Optional[Figure]:
    """Plane 0 of the fabric as given and of the chosen fabric, side by side, drawn alike."""
    fb, fa = fabrics.get("before"), fabrics.get("after")
    if fb is None or fa is None or fb.n_links == 0 or fa.n_links == 0 or not plan.get("cluster_file_after"):
        return None
    gb, eb = _plane_groups(fb, 0)
    ga, ea = _plane_groups(fa, 0)
    nt = max(len({t for t, _ in gb}), len({t for t, _ in ga}))
    cap = {k: sum(c for _, c in e.values()) for k, e in (("given", eb), ("chosen", ea))}

    def draw(fig):
        a1, a2 = fig.subplots(1, 2)
        wide = max(len({pd for _, pd in gb if pd >= 0}), len({pd for _, pd in ga if pd >= 0})) > 3
        _draw_plane(a1, gb, eb, nt, fontsize=5.0 if wide else 7.0)
        _draw_plane(a2, ga, ea, nt, fontsize=5.0 if wide else 7.0)
        a1.set_title(f"as given: {cap['given'] / 1e3:,.1f} Tb/s between tiers", fontsize=9)
        a2.set_title(f"chosen: {cap['chosen'] / 1e3:,.1f} Tb/s between tiers", fontsize=9)
    planes = max(int(fa.planes), 1)
    alike = next((v for v in _distinct_planes(fa).values() if 0 in v), [0])
    alike_words = ""
    if planes > 1:
        alike_words = (" (every plane of the chosen fabric alike)" if len(alike) == planes else
                       f" (alike in the chosen fabric: planes {', '.join(str(p) for p in alike[:8])}"
                       + (" ..." if len(alike) > 8 else "") + "; the other planes are drawn below)"
                       if len(alike) > 1 else " (the other planes are drawn below)")
    return Figure("fig-before-after", "Fabric as given and as chosen, side by side",
                  "Plane 0" + (f" of {planes}" if planes > 1 else "") + alike_words + " of the fabric as given (left) and with the "
                  "chosen link budget (right), by pod and tier: each box a group of switches or endpoints with its "
                  "count, each edge the links between two groups (count x speed, capacity in one direction); the "
                  "title gives the plane's capacity between tiers.", draw, size=(11.0, 0.9 + 1.0 * nt))


_DECISIONS = (("d0", "leaf ports down {}"), ("u0", "up {}"), ("b1", "links from each leaf to each spine {}"),
              ("d1", "spine ports down {}"), ("u1", "up {}"), ("b2", "links from each spine to each super-spine {}"),
              ("partial_pod_bundle", "last pod {}"), ("leaves_per_pod", "{} leaves per pod"),
              ("spines_per_pod", "{} spines per pod"), ("pods_per_plane", "{} pods per plane"),
              ("spines_per_plane", "{} spines per plane"), ("supers_per_plane", "{} super-spines per plane"))


_DECISIONS_ROWS = (("d0", "leaf ports down"), ("u0", "leaf ports up"), ("b1", "links from each leaf to each spine"),
                   ("d1", "spine ports down"), ("u1", "spine ports up"),
                   ("b2", "links from each spine to each super-spine"),
                   ("partial_pod_bundle", "links from each spine to each super-spine, last pod"),
                   ("leaves_per_pod", "leaves per pod"), ("spines_per_pod", "spines per pod"),
                   ("pods_per_plane", "pods per plane"), ("spines_per_plane", "spines per plane"),
                   ("supers_per_plane", "super-spines per plane"))


def design_words(dec) -> str:
    """The link budget's decision variables as a sentence a reader understands."""
    if not isinstance(dec, dict):
        return "n/a"
    parts = [text.format(fmt(dec[k])) for k, text in _DECISIONS if k in dec]
    known = {k for k, _ in _DECISIONS} | {"leaf_uplinks", "spine_uplinks"}
    parts += [f"{k.replace('_', ' ')} {fmt(v)}" for k, v in sorted(dec.items()) if k not in known]
    return "; ".join(parts)


def _budget_section(plan: dict) -> Section:
    s = Section("budget", "Link budget")
    b = plan.get("budget")
    if not isinstance(b, dict):
        s.missing = "the link budget was not computed"
        return s
    st = b.get("status") or _get(b, "solver.status")
    goal = _num(_get(plan, "cluster_file.goals.target_utilization"))
    tgt = _num(b.get("target_utilization"))
    lowered = _get(b, "transport_check.tried") and goal is not None and tgt is not None and tgt < goal - 1e-9
    s.paragraphs.append(f"Objective {b.get('objective', 'n/a')}, survive {b.get('survive', 'n/a')}, "
                        f"target utilisation {pct(tgt) if tgt is not None else 'n/a'}"
                        + (f" (lowered from the file's {pct(goal)} by the transport check below, so the jobs are not "
                           "slowed under the transport's own routing)" if lowered else "")
                        + f"; solver status {st if st is not None else 'n/a'}.")
    cost = b.get("cost")
    if isinstance(cost, dict):
        designs = {k: v for k, v in cost.items() if isinstance(v, dict) and any(_num(x) is not None for x in v.values())}
        if designs:
            order = [k for k in ("chosen", "as_given", "non_blocking") if k in designs] + \
                    sorted(k for k in designs if k not in ("chosen", "as_given", "non_blocking"))
            rows = [{"design": k.replace("_", " "), **{kk: vv for kk, vv in designs[k].items() if not isinstance(vv, (dict, list))}}
                    for k in order]
            s.tables.append(make_table(rows, caption="Cost of the chosen design, the design as given and a non-blocking one"))
    cost_fig = _cost_figure(plan)
    if cost_fig is not None:
        s.figures.append(cost_fig)
    alts = b.get("alternatives")
    alts = {k: v for k, v in sorted(alts.items()) if isinstance(v, dict)} if isinstance(alts, dict) else {}
    if alts:
        # one column per objective, one row per decision in words, then what the design costs
        names = list(alts)
        rows = [{"quantity": text.replace("{}", "").strip(), **{n: _get(alts[n], f"decisions.{k}") for n in names}}
                for k, text in _DECISIONS_ROWS if any(_get(alts[n], f"decisions.{k}") is not None for n in names)]
        rows.append({"quantity": "switches per tier, leaf first",
                     **{n: " / ".join(fmt(x) for x in alts[n].get("switch_counts") or []) for n in names}})
        rows += [{"quantity": c, **{n: alts[n].get(c) for n in names}}
                 for c in ("capex_usd", "energy_usd", "total_usd", "network_kw")]
        # objectives whose optimum is the same design share one column ("cost, power and balanced")
        cols: dict = {}
        for n in sorted(names, key=lambda n: (n != b.get("objective"), n)):     # the chosen objective first
            cols.setdefault(tuple(repr(r.get(n)) for r in rows), []).append(n)
        heads = {ns[0]: (" and ".join(ns) if len(ns) <= 2 else ", ".join(ns[:-1]) + " and " + ns[-1])
                 + (" (the same design)" if len(ns) > 1 else "") for ns in cols.values()}
        rows = [{"quantity": r["quantity"], **{heads[n]: r.get(n) for n in heads}} for r in rows]
        s.tables.append(make_table(rows, columns=["quantity"] + list(heads.values()),
                                   caption="Optimum of each objective, as a design"
                                   + (f" (the budget chose the {b.get('objective')} objective)" if b.get("objective") else "")))
    for key, caption in (("tiers", "Per switch tier: decisions and counts"),
                         ("utilization", "Utilisation per tier before and after the budget (model and routed)"),
                         ("headroom", "Headroom per tier under the stated failure (ideal ECMP, the budget's model)"),
                         ):
        v = b.get(key)
        if isinstance(v, dict):
            v = {k: x for k, x in v.items() if isinstance(x, dict)}
            if v:
                s.tables.append(make_table(v, name_key="tier" if key != "alternatives" else "objective", caption=caption))
        elif isinstance(v, list) and v:
            s.tables.append(make_table(v, caption=caption))
    req = b.get("requirements")
    rows = [r for r in (req.get("rows") or []) if isinstance(r, dict)] if isinstance(req, dict) else []
    if rows:
        s.tables.append(make_table(
            [{k: r.get(k) for k in ("requirement", "source", "unit", "required", "achieved", "margin", "met")} for r in rows],
            caption="Design requirements: required, achieved on the rebuilt design (independent check) and margin "
                    "(Gb/s above the floor; utilisation below the target)"))
    chk = b.get("check")
    if isinstance(chk, dict) and "ok" in chk:
        probs = chk.get("problems") or []
        s.paragraphs.append("Independent check: " + ("passed." if chk["ok"] else "FAILED: " + "; ".join(str(p) for p in probs[:5])))
    tc = b.get("transport_check")
    if isinstance(tc, dict) and tc.get("tried"):
        slow, model = _num(tc.get("max_slowdown")), _MODEL_NAMES.get(str(tc.get("routing")), tc.get("routing", "n/a"))
        what = (f"the summed collective time of the jobs is {show(tc.get('total'), 'x')}, and the 95th percentile of the jobs' "
                f"time over ideal time (the worst job with 20 jobs or fewer) {show(tc.get('tail'), 'x')}, what they are on the fabric as given")
        if tc.get("accepted"):
            s.paragraphs.append(
                f"Transport check ({model}): the budget was sized for ideal ECMP, then the placed jobs were routed on "
                f"each candidate under {model} with the same seed; at the chosen target utilisation "
                f"{pct(tc.get('chosen_target_utilization'))} {what} (limit {show(slow, 'x')}).")
        else:
            s.paragraphs.append(
                f"Transport check ({model}): NOT met. Every target tried slows the jobs by more than {show(slow, 'x')} "
                f"under {model}; the least-slowing budget was kept: {what}. More channels or queue pairs per channel "
                f"(more source-port entropy) or packet spraying would let the budget save more without slowing jobs.")
        rows = [{("saved_share" if k == "saved_vs_as_given" else k): v for k, v in t.items()
                 if k in ("target_utilization", "total_usd", "saved_vs_as_given", "total", "tail", "worst_job",
                          "worst_job_slowdown", "max_util", "error")}
                for t in tc["tried"] if isinstance(t, dict)]
        s.tables.append(make_table(rows, first=("target_utilization",),
                                   caption=f"Targets tried by the transport check ({model} routing)"))
    return s


def _bom_section(plan: dict) -> Section:
    s = Section("bom", "Bill of materials")
    bom, where = _bom(plan)
    if bom is None:
        s.missing = "no bill of materials in the plan"
        return s
    s.paragraphs.append("From " + {"budget.bom": "the chosen link budget", "budget.bill_of_materials": "the chosen link budget",
                                   "describe_after.bill_of_materials": "the fabric with the chosen budget",
                                   "describe_before.bill_of_materials": "the fabric as given (no budget computed)"}[where] + ".")
    if bom.get("switches"):
        s.tables.append(make_table(bom["switches"], caption="Switches"))
    if bom.get("optics"):
        s.tables.append(make_table([{**o, "reach": reach_words(o["reach"])} if isinstance(o, dict) and o.get("reach")
                                    else o for o in bom["optics"]], caption="Optics and cables by reach class and speed"))
    if isinstance(bom.get("totals"), dict):
        s.tables.append(make_table([{"quantity": k, "value": v} for k, v in bom["totals"].items()], caption="Totals"))
    return s


_PLACEMENT_KEYS = {"cost": "placement objective", "unit": "placed in units of", "weight": "traffic weight"}


def _placement_section(plan: dict) -> Section:
    s = Section("placement", "Placement per job")
    tp = _typed(plan)
    p = tp.placement
    if not plan.get("placement"):
        s.missing = "no placement in the plan"
        return s
    s.paragraphs.append(f"Status {p.status or 'n/a'}, objective {fmt(_x(p, 'objective'))}, bound {fmt(_x(p, 'bound'))}, "
                        f"gap {fmt(_x(p, 'gap'))}." + (f" {p.note[:1].upper()}{p.note[1:].rstrip('.')}." if p.note else ""))
    jobs = p.jobs
    if jobs:
        recs = jobs
        if isinstance(jobs, dict):
            # "cost" and "unit" are the placement model's: its objective terms and the unit it places in
            recs = {k: {_PLACEMENT_KEYS.get(kk, kk): vv for kk, vv in v.items() if kk != "rack_names"}
                    if isinstance(v, dict) else v for k, v in jobs.items()}
        s.tables.append(make_table(recs, caption="Jobs: size, spread over pods/leaves/racks and share of traffic per tier"))
    elif p.assignment:
        s.tables.append(make_table({k: {"endpoints": len(v)} for k, v in p.assignment.items()}, caption="Jobs"))
    if p.unplaced:
        s.tables.append(make_table({k: {"reason": v} for k, v in p.unplaced.items()}, caption="Jobs not placed"))
    raw = plan.get("placement") or {}   # the goodput fields (spares, failure domains) as the plan stores them
    sp = raw.get("spares")
    if isinstance(sp, dict):  # goals.spares: held back from placement, counted busy in rack power
        s.paragraphs.append(f"Hot spares per {sp.get('scope')} ({fmt(sp.get('per_domain'))} per domain and node type, "
                            f"held back from placement and counted busy in rack power): "
                            f"{count_of(sp.get('spare_nodes'), 'node')}, {count_of(sp.get('accelerators_held'), 'accelerator')}"
                            + (f"; {count_of(len(sp['short']), 'domain')} short of idle nodes" if sp.get("short") else "") + ".")
    fd = raw.get("failure_domains")
    if isinstance(fd, dict) and isinstance(fd.get("with"), dict):  # goals.failure_domains against none
        s.tables.append(make_table({k: {"with the rule": fd["with"].get(k), "without": fd["without"].get(k)}
                                    for k in fd["with"]},
                                   caption=f"Failure domains: {fd.get('mode')} by {fd.get('level')}, against the "
                                           "placement without the rule (traffic, jobs stopped per domain)"))
    for m, which in ((tp.metrics_after, "after"), (tp.metrics_before, "before")):
        if m is not None and m.jobs:
            # the rows as the plan stores them (their own fields, in their own order)
            s.tables.append(make_table([j.model_dump(exclude_unset=True) for j in m.jobs],
                                       caption=f"Job communication ({which} the link budget)"))
            break
    return s


def _failure_section(plan: dict) -> Section:
    s = Section("failures", "Failure headroom")
    fr = plan.get("failures")
    if not isinstance(fr, dict):
        s.missing = "failure analysis not computed"
        return s
    single = [r for r in fr.get("single") or [] if isinstance(r, dict)]
    if single:
        from topo.study.failures import rank_single
        ranked = rank_single(single)
        frows = _group_failures([_failure_row(r) for r in ranked])
        cols = _failure_columns(frows)
        # a column that is zero for every failure says one thing, in the caption (the table stays in the page)
        zero = [c for c in cols if c not in ("kind", "name", "alike")
                and all(r.get(c) in (0, 0.0, "0.0%", "0%") for r in frows)]
        s.tables.append(make_table(frows, columns=[c for c in cols if c not in zero], limit=30,
                                   caption="Single failures, worst first: jobs stopped, then endpoints cut off, "
                                           "then slowdown, then bandwidth (alike = how many equivalent elements; "
                                           "failures of one kind with the same effect but the Gb/s they leave "
                                           "unreachable are one row, with that range)"
                                   + (f"; zero for every failure, so not shown: {', '.join(column(c)[0] for c in zero)}"
                                      if zero else "")))
        top = ranked[:15]

        def draw(fig):
            ax = fig.add_subplot(111)
            y = np.arange(len(top))
            ax.barh(y, [100 * _failure_impact(r) for r in top], color=_COLORS["over"])
            ax.set_yticks(y, [mpl_text(f"{str(r.get('kind', '')).replace('_', ' ')} {r.get('name', '')}".strip()[:40])
                              for r in top], fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel("largest share of a tier's bandwidth lost (%)")
        s.figures.append(Figure("fig-failures", "Failure headroom",
                                "Bandwidth lost in the worst-hit tier for the worst single failures.", draw,
                                size=(7.5, 1.0 + 0.28 * len(top))))
    else:
        s.paragraphs.append("No single-failure scenarios in the plan.")
    by_kind: dict = {}
    for r in single:
        kind = str(r.get("kind", "")).replace("_", " ")
        by_kind[kind] = max(by_kind.get(kind, 0.0), _failure_impact(r))
    if by_kind:
        kinds = sorted(by_kind, key=lambda x: (-by_kind[x], x))

        def draw_kinds(fig):
            ax = fig.add_subplot(111)
            y = np.arange(len(kinds))
            lost = [100 * by_kind[x] for x in kinds]
            ax.barh(y, [100 - v for v in lost], color=_COLORS["ok"], label="bandwidth left")
            ax.barh(y, lost, left=[100 - v for v in lost], color=_COLORS["over"], label="lost")
            ax.set_yticks(y, [mpl_text(x) for x in kinds])
            ax.invert_yaxis()
            ax.set_xlim(0, 100)
            ax.set_xlabel("share of the worst-hit tier's bandwidth after the worst failure of the class (%)")
            ax.legend(fontsize=7, ncols=2, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
        s.figures.append(Figure("fig-failure-classes", "Headroom per failure class",
                                "For each class of single failure, the worst one: the share of the worst-hit tier's "
                                "bandwidth left (blue) and lost (red).", draw_kinds, size=(7.5, 0.9 + 0.3 * len(kinds))))
    k = fr.get("k")
    if isinstance(k, dict) and k:
        s.tables.append(make_table([{"quantity": kk, "value": vv} for kk, vv in flatten(k).items()
                                    if not isinstance(vv, (list, dict))], caption="Several simultaneous failures"))
    return s


def _solver_section(plan: dict) -> Section:
    s = Section("solver", "Solvers and provenance")
    tp = _typed(plan)
    rows = [{"item": "topo", "value": tp.topo_version}, {"item": "plan version", "value": tp.plan_version},
            {"item": "created", "value": tp.created}, {"item": "seed", "value": tp.seed},
            {"item": "workers", "value": tp.workers}, {"item": "time limit (s)", "value": tp.time_limit_s}]
    for k, v in sorted((tp.versions or {}).items()):
        if k != "topo" or v != tp.topo_version:      # topo's own version is the first row
            rows.append({"item": f"{k} version", "value": v})
    s.tables.append(make_table(rows, caption="Run"))
    for part in ("placement", "budget"):
        section = tp.placement if part == "placement" else tp.budget
        d = _x(tp.solver, part) or _x(section, "solver")
        if isinstance(d, dict) and d:
            s.tables.append(make_table([{"field": k, "value": v} for k, v in flatten(d).items()],
                                       caption=f"{part.capitalize()} solver"))
        else:
            s.paragraphs.append(f"{part.capitalize()} solver: not computed.")
    return s


def _collectives_section(plan: dict) -> Section:
    """Collective time with its alpha and beta parts per job, and time / bus bandwidth against size."""
    s = Section("collectives", "Collective time: latency and bandwidth")
    cs = plan.get("collectives")
    if not isinstance(cs, dict) or not isinstance(cs.get("jobs"), list):
        s.missing = "collective times (collectives) are not in the plan"
        return s
    s.paragraphs.append(f"Alpha-beta model on the chosen fabric under {_MODEL_NAMES.get(str(cs.get('routing')), cs.get('routing'))} "
                        f"({cs.get('sharing')}): "
                        f"time = alpha (steps x (step overhead {fmt((_num(cs.get('step_overhead_s')) or 0) * 1e6)} us "
                        "+ switch latency + cable propagation of the slowest path)) + beta (bytes / goodput of the "
                        "step's slowest flow). The algorithm is the cheapest allowed at the size unless pinned.")
    if cs.get("switch_latency_unknown"):
        s.paragraphs.append("Switch latency not counted for: " + ", ".join(map(str, cs["switch_latency_unknown"]))
                            + " (no latency_ns in the catalog).")
    rows, curves = [], []
    for j in cs["jobs"]:
        for e in j.get("collectives") or []:
            rows.append({"job": j.get("name"), "op": e.get("op"), "group": e.get("group"), "ranks": e.get("ranks"),
                         "count": e.get("count"),
                         "algorithm": str(e.get("algorithm")).replace("_", " ") if e.get("algorithm") else None, "time_s": e.get("time_s"),
                         "alpha_s": e.get("alpha_s"), "beta_s": e.get("beta_s"), "busbw_gbps": e.get("busbw_gbps")})
            if e.get("sweep"):
                curves.append((f"{j.get('name')} {e.get('op')}/{e.get('group')}", e["sweep"]))
        if j.get("iteration_s") is not None:
            s.paragraphs.append(f"{j.get('name')}: iteration {fmt(j['iteration_s'])} s with {fmt(j['compute_s'])} s "
                                f"compute; the network's share is {fmt(100 * (_num(j.get('network_share')) or 0))}%.")
    if rows:
        s.tables.append(make_table(rows, columns=["job", "op", "group", "ranks", "algorithm", "count", "time_s", "alpha_s",
                                                  "beta_s", "busbw_gbps"], limit=60,
                                   caption="Per collective: time = alpha + beta, bus bandwidth"))
    curves = curves[:8]
    if curves:
        def draw(fig):
            a1, a2 = fig.add_subplot(121), fig.add_subplot(122)
            for label, sw in curves:
                x = [float(r["bytes"]) for r in sw]
                a1.loglog(x, [float(r["time_s"]) for r in sw], marker=".", label=mpl_text(label[:40]))
                a2.semilogx(x, [float(r["busbw_gbps"] or 0.0) for r in sw], marker=".")
            for ax, yl in ((a1, "time (s)"), (a2, "bus bandwidth (Gb/s)")):
                ax.set_xlabel("message size (bytes)")
                ax.set_ylabel(yl)
                ax.grid(True, which="major", alpha=0.3)     # decades only: minor lines were 28% of its bytes (small)
            a1.legend(fontsize=6)
        s.figures.append(Figure("fig-collectives", "Collective time and bus bandwidth against message size",
                                "Flat time at small sizes is the latency (alpha) region; bus bandwidth reaching its "
                                "plateau is the bandwidth (beta) region.", draw, size=(9.0, 3.6)))
    return s


def _goodput_section(plan: dict) -> Section:
    """Per job: MTBI, interruptions, checkpoint interval, goodput and the components that dominate its
    interruptions; the blast radius per failure domain; goodput against job size (topo.study.goodput)."""
    s = Section("goodput", "Goodput under failures")
    g = plan.get("goodput")
    if not isinstance(g, dict):
        s.missing = "goodput not computed"
        return s
    ck = g.get("checkpoint") or {}
    s.paragraphs.append(
        f"Interruptions over a {fmt(g.get('run_days'))}-day run from the cluster file's failure rates (per component "
        "per hour); a job stops when one of its accelerators, hosts, NICs, single links, sole leaves or rack feeds "
        "fails. " + (f"Checkpoint write {fmt(ck.get('write_s'))} s, restart {fmt(ck.get('restart_s'))} s "
                     f"({ck.get('source')}); interval by Young, sqrt(2 x MTBI x write)."
                     if _num(ck.get("write_s")) is not None else
                     "No checkpoint or restart time is stated (failure_rates.checkpoint_s, restart_s): goodput not computed."))
    rows = []
    for r in [r for r in g.get("jobs") or [] if isinstance(r, dict)]:
        dom = r.get("dominant") or []
        rows.append({"job": r.get("name"), "accelerators": r.get("accelerators"), "mean time between interruptions (h)":
                     r.get("mtbi_h"), "interruptions (expected over the run)": r.get("interruptions"),
                     "checkpoint interval (s)": r.get("checkpoint_interval_s"),
                     "goodput": r.get("goodput"), "degraded events (expected)": r.get("degraded_events"),
                     "dominant": ", ".join(f"{d.get('component')} {pct(d.get('share'))}" for d in dom
                                           if isinstance(d, dict))})
    if rows:
        rows.sort(key=lambda r: (-(_num(r["interruptions (expected over the run)"]) or 0.0), str(r["job"])))
        s.tables.append(make_table(rows, columns=list(rows[0]), limit=30, caption="Jobs, most interrupted first"))
    br = g.get("blast_radius") or {}
    if isinstance(br, dict) and br:
        s.tables.append(make_table(
            [{"failure domain": k, "domains of the kind": v.get("domains"), "max jobs stopped": v.get("max_jobs_stopped"),
              "max accelerators stopped": v.get("max_accelerators_stopped"),
              "mean accelerators stopped": v.get("mean_accelerators_stopped"),
              "worst": (v.get("worst") or [{}])[0].get("name")} for k, v in sorted(br.items()) if isinstance(v, dict)],
            columns=["failure domain", "domains of the kind", "max jobs stopped", "max accelerators stopped",
                     "mean accelerators stopped", "worst"], caption="Blast radius per failure domain"))
    sc = [p for p in g.get("scaling") or [] if isinstance(p, dict) and _num(p.get("goodput")) is not None]
    if len(sc) >= 2:
        def draw(fig):
            ax = fig.add_subplot(111)
            ax.plot([p["accelerators"] for p in sc], [100 * p["goodput"] for p in sc], marker="o",
                    color=_COLORS["over"])
            ax.set_xscale("log")
            ax.set_xlabel("accelerators in the job")
            ax.set_ylabel("goodput (%)")
        s.figures.append(Figure("fig-goodput", "Goodput against job size",
                                "Goodput of a job with the largest job's failure rate per accelerator, by size.", draw))
    return s


# --- serving deployments ------------------------------------------------------------------------
_SERVING_KINDS = (("kv_transfer", "KV-cache transfer, prefill to decode"), ("tp_allreduce", "Tensor-parallel all-reduce"),
                  ("pp_send", "Pipeline send"), ("moe_dispatch", "MoE dispatch"), ("moe_combine", "MoE combine"),
                  ("agent_request", "CPU agent requests"), ("agent_response", "CPU agent responses"))
_SERVING_COLORS = ("#1f6feb", "#d1495b", "#2e933c", "#e59500", "#6f42c1", "#1b7837", "#8c564b", "#17becf")
SERVING_LINES = 8      # deployments drawn in the chart (all are in the tables)
_SERVING_MODELS = {**_MODEL_NAMES, "fluid": "ideal ECMP (fluid)"}


def _serving_curves(serving: dict, model: str) -> list:
    """Per deployment (in plan order): (name, the model's entry, [(rate, seconds or None), ...]).

    SpecError naming the JSON path of a curve that is not a list of [requests_per_s, seconds or
    null] pairs, or of a deployment without a name."""
    from topo.core.errors import SpecError
    out = []
    for i, d in enumerate(serving.get("deployments") or []):
        at = f"serving.deployments[{i}]"
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise SpecError([(f"{at}.name", "expected a deployment with a name")], "plan")
        e = _get(d, f"time_per_token.models.{model}")
        if not isinstance(e, dict):
            out.append((d["name"], None, []))
            continue
        pts = []
        for k, p in enumerate(e.get("curve") or []):
            if (not isinstance(p, (list, tuple)) or len(p) != 2 or _num(p[0]) is None or p[0] <= 0
                    or (p[1] is not None and _num(p[1]) is None)):
                raise SpecError([(f"{at}.time_per_token.models.{model}.curve[{k}]",
                                  "expected [requests_per_s > 0, seconds or null]")], "plan")
            pts.append((float(p[0]), None if p[1] is None else float(p[1])))
        out.append((d["name"], e, sorted(pts, key=lambda p: p[0])))
    return out


def _us(x) -> str:
    v = _num(x)
    return "saturated" if v is None else f"{v * 1e6:,.1f}"


def _serving_figure(curves: list, model: str, deps: list) -> Optional[Figure]:
    drawn = [(n, e, p) for n, e, p in curves if p][:SERVING_LINES]
    if not drawn:
        return None
    rate = {d["name"]: _num(d.get("requests_per_s")) for d in deps}

    def draw(fig):
        ax = fig.add_subplot(111)
        top = ax.get_xaxis_transform()      # x in data, y in axes fraction: marks along the top edge
        for i, (name, e, pts) in enumerate(drawn):
            col = _SERVING_COLORS[i % len(_SERVING_COLORS)]
            ok = [(r, t) for r, t in pts if t is not None and t > 0]
            ax.plot([r for r, _ in ok], [t * 1e6 for _, t in ok], marker=".", color=col, label=mpl_text(name[:40]))
            sat = [r for r, t in pts if t is None]
            if sat:
                ax.scatter(sat, [0.97] * len(sat), marker="x", color=col, zorder=3, transform=top, clip_on=False)
            r_sat = _num(e.get("saturating_requests_per_s"))
            if r_sat is not None:
                ax.axvline(r_sat, color=col, linestyle=":", linewidth=1.2)
                ax.annotate(mpl_text(f"saturates at {r_sat:,.4g}/s ({e.get('saturating_link') or 'n/a'})"[:60]),
                            (r_sat, 0.97 - 0.07 * i), xycoords=top, xytext=(-4, 0), textcoords="offset points",
                            ha="right", va="top", fontsize=6.5, color=col)
            r0, t0 = rate.get(name), _num(e.get("at_rate_s"))
            if r0 is not None and t0 is not None and r0 > 0 and t0 > 0:
                ax.scatter([r0], [t0 * 1e6], s=45, facecolor="white", edgecolor=col, linewidth=1.5, zorder=4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ys = [t * 1e6 for _, _, p in drawn for _, t in p if t is not None and t > 0]
        if ys:      # room above the lines for the saturation labels
            ax.set_ylim(min(ys) / 1.5, max(ys) * 4.0 ** max(1, len(drawn) * 0.5))
        if any(t is None for _, _, p in drawn for _, t in p):
            ax.text(0.01, 0.03, "x along the top: saturated (no finite time)", transform=ax.transAxes, fontsize=6.5,
                    va="bottom", color="#444")
        ax.set_xlabel("request rate (requests/s)")
        ax.set_ylabel("network time per output token (us)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="center left")
    names = ", ".join(n for n, _, _ in drawn)
    more = len([c for c in curves if c[2]]) - len(drawn)
    return Figure("fig-serving", "Network time per output token against request rate",
                  f"One line per deployment ({names}" + (f"; {more} more in the table" if more > 0 else "")
                  + f") under {_SERVING_MODELS.get(model, model)}, the transport's model: the network's share of one "
                  "decode step (tensor-parallel all-reduce, MoE all-to-all, pipeline send) on what the deployment's "
                  "own traffic at that rate leaves of each link. Open circle: the stated request rate; dotted line: "
                  "the rate at which the first link (named) saturates; an x at the top: a rate past saturation, where "
                  "the time has no finite value. Both axes logarithmic.", draw, size=(7.5, 3.8))


def _serving_margin(plan: dict):
    """(saturating / stated request rate, deployment, saturating rate, stated rate, link) of the
    deployment closest to saturation under the transport's model (ties by name); None without one."""
    sv = plan.get("serving")
    if not isinstance(sv, dict):
        return None
    model, best = str(sv.get("routing") or "fluid"), None
    for d in sv.get("deployments") or []:
        if not isinstance(d, dict):
            continue
        sat, stated = _num(_get(d, f"time_per_token.models.{model}.saturating_requests_per_s")), _num(d.get("requests_per_s"))
        if sat is None or not stated:
            continue
        cand = (sat / stated, str(d.get("name")), sat, stated,
                str(_get(d, f"time_per_token.models.{model}.saturating_link") or "n/a"))
        best = cand if best is None or cand[:2] < best[:2] else best
    return best


def _serving_section(plan: dict) -> Optional[Section]:
    """The serving deployments (plan key ``serving``): network time per output token against the
    request rate per deployment (the transport's model), a table per deployment written for a reader
    (traffic by kind at the stated rate and per request, bytes per token, network time per token, the
    saturating rate and its link per routing model), the CPU agent tiers and the interference with
    training. None when the cluster file states no deployments and the plan has no serving section."""
    sv = plan.get("serving")
    stated = _get(plan, "cluster_file.serving.deployments") or []
    if sv is None and not stated:
        return None
    s = Section("serving", "Serving deployments")
    if not isinstance(sv, dict) or not isinstance(sv.get("deployments"), list):
        s.missing = "the serving deployments (serving) are not in the plan"
        return s
    model = str(sv.get("routing") or "fluid")
    deps = [d for d in sv["deployments"] if isinstance(d, dict)]
    curves = _serving_curves(sv, model)
    a = sv.get("all") or {}
    mname = _SERVING_MODELS.get(model, model)
    s.paragraphs.append(
        f"{count_of(len(deps), 'deployment')} on the chosen fabric, at their stated request rates, routed under ideal ECMP "
        f"and under {mname} (the transport's model); target utilisation {pct(sv.get('target_utilization'))}. "
        f"Together they put {show(a.get('network_gbps'), 'gbps')} Gb/s on the network and "
        f"{show(a.get('scaleup_gbps'), 'gbps')} Gb/s inside scale-up domains; the busiest link runs at "
        f"{pct(a.get('max_util_transport'))} under {mname} ({pct(a.get('max_util'))} ideal), scale-up at "
        f"{pct(a.get('scaleup_max_util'))}; the fabric "
        + ("carries" if a.get("carries_at_target_transport") else "does NOT carry")
        + f" them at the target, and the load could grow {show(a.get('load_scale_at_target'), 'x')} before it "
        "reaches it. Network share only: no batching, scheduling or compute time.")
    sp = sv.get("serving_placement") or {}
    if sp:
        kv = sp.get("kv_crossing") or {}
        s.paragraphs.append(
            f"Replicas placed {'by CP-SAT' if sp.get('method') == 'cpsat' else 'in order'}"
            + (f" ({sp.get('status')}, objective {fmt(sp.get('objective'))}, bound {fmt(sp.get('bound'))}, "
               f"{'re-checked independently' if sp.get('checked') else 'not re-checked'})" if sp.get('method') == 'cpsat' else "")
            + "; KV-cache bytes between replicas in different leaves / pods: "
            + ("; ".join(f"{n} {show((_num(k.get('kv_bytes_per_s_crossing_leaves')) or 0) / 1e9, 'gbps')} / "
                         f"{show((_num(k.get('kv_bytes_per_s_crossing_pods')) or 0) / 1e9, 'gbps')} GB/s"
                         for n, k in sorted(kv.items()) if isinstance(k, dict)) or "none (no disaggregated deployment)")
            + ".")
    fig = _serving_figure(curves, model, deps)
    if fig is not None:
        s.figures.append(fig)
    s.tables.append(_serving_deployments_table(plan, deps, dict((n, e) for n, e, _ in curves), mname))
    s.tables.append(_serving_kinds_table(deps))
    s.tables.append(_serving_models_table(deps))
    tiers = _get(plan, "cluster_file.serving.agent_tiers") or []
    if tiers:
        fe = _front_end(plan)
        s.tables.append(_agent_tiers_table(tiers, deps, fe.get("deployments") if fe is not None else None))
    inter = _get(sv, f"with_training.interference.models.{model}.jobs") or {}
    if inter:
        s.tables.append(Table(
            ["Training job", f"Communication time alone (s), {mname}", "With the serving traffic (s)", "Slowdown"],
            [[str(j), show(r.get("time_s"), "s"), show(r.get("with_serving_s"), "s"), show(r.get("slowdown"), "x")]
             for j, r in sorted(inter.items()) if isinstance(r, dict)], total=len(inter),
            caption="Interference: each training job's communication per iteration without and with the serving "
                    "traffic on the same links"))
    return s


def _serving_deployments_table(plan: dict, deps: list, entries: dict, mname: str) -> Table:
    """One column per deployment: what it is, its load, bytes per token, network time per token under
    the transport's model and where it saturates."""
    from topo.model.spec import DTYPE_BYTES
    shapes = {d.get("name"): d.get("model") or {} for d in (_get(plan, "cluster_file.serving.deployments") or [])
              if isinstance(d, dict)}
    rows = {k: [] for k in ("mode", "acc", "rep", "rate", "kv", "moe", "tp", "net", "su", "idle", "at", "sat", "link",
                            "cap", "lim", "ttft")}
    for d in deps:
        e = entries.get(d.get("name")) or {}
        m = shapes.get(d.get("name")) or {}
        ab = DTYPE_BYTES.get(m.get("activation_dtype"))
        h, k = _num(m.get("hidden_size")), _num(m.get("experts_per_token"))
        kvt = _get(d, "kv_transfer.mean") or {}
        rows["mode"].append(str(d.get("mode")))
        rows["acc"].append(fmt(d.get("accelerators")))
        rows["rep"].append(", ".join(f"{n} {len(r)}" for n, r in (d.get("replicas") or {}).items()))
        rows["rate"].append(fmt(d.get("requests_per_s")))
        rows["kv"].append(fmt(d.get("kv_bytes_per_token")))
        rows["moe"].append(fmt(h * k * ab) if None not in (h, k, ab) and m.get("experts") else "0 (dense)")
        rows["tp"].append(fmt(h * ab) if None not in (h, ab) else "n/a")
        rows["net"].append(show(d.get("network_gbps"), "gbps"))
        rows["su"].append(show(d.get("scaleup_gbps"), "gbps"))
        rows["idle"].append(_us(e.get("idle_s")) if e else "n/a")
        rows["at"].append(_us(e.get("at_rate_s")) if e else "n/a")
        rows["sat"].append(fmt(round(_num(e.get("saturating_requests_per_s")) or 0, 2)) if e and
                           _num(e.get("saturating_requests_per_s")) is not None else "n/a")
        rows["link"].append(str(e.get("saturating_link") or "n/a") if e else "n/a")
        cap = _num(d.get("max_requests_per_s_at_target"))
        rows["cap"].append("n/a" if cap is None else fmt(round(cap, 2)))
        rows["lim"].append(str(d.get("limited_by") or "n/a"))
        rows["ttft"].append(f"{(_num(kvt.get('idle_s')) or 0) * 1e3:,.3f} idle, {(_num(kvt.get('loaded_s')) or 0) * 1e3:,.3f} "
                            f"loaded ({fmt(kvt.get('tokens'))} tokens)" if kvt else "n/a (not disaggregated)")
    names = {"mode": "Mode", "acc": "Accelerators", "rep": "Replicas", "rate": "Stated load (requests/s)",
             "kv": "KV cache per prompt token (B)", "moe": "MoE dispatch per token per layer (B), each way",
             "tp": "TP all-reduce per token per layer (B)", "net": "Network load (Gb/s)", "su": "Scale-up load (Gb/s)",
             "idle": f"Network time per output token, idle (us), {mname}",
             "at": "Network time per output token at the stated load (us)",
             "sat": "First link saturates at (requests/s)", "link": "Link that saturates first",
             "cap": "Highest load at the target utilisation (requests/s)", "lim": "Limited by",
             "ttft": "KV transfer per request at the mean prompt (ms): network part of time to first token"}
    return Table(["Deployment"] + [str(d.get("name")) for d in deps], [[names[k]] + v for k, v in rows.items()],
                 total=len(rows), caption="Per deployment: load, bytes per token (from the model's shape: KV = 2 x "
                 "layers x KV heads x head dim x bytes; MoE = hidden x experts per token x bytes; TP = hidden x bytes), "
                 f"network time per output token and the saturating load under {mname}")


def _serving_kinds_table(deps: list) -> Table:
    """Traffic by kind per deployment: GB/s at the stated load, MB per request (bytes/s / the load:
    every flow is a fixed number of bytes per request) and the share of the deployment's bytes."""
    rows = []
    for d in deps:
        b = d.get("bytes_per_s") or {}
        r = _num(d.get("requests_per_s"))
        tot = sum(_num(v) or 0.0 for v in b.values())
        for k, words in _SERVING_KINDS:
            v = _num(b.get(k))
            if not v:
                continue
            rows.append([str(d.get("name")), words, fmt(round(v / 1e9, 4)),
                         fmt(round(v / r / 1e6, 4)) if r else "n/a", pct(v / tot) if tot else "n/a"])
    return Table(["Deployment", "Traffic kind", "At the stated load (GB/s)", "Per request (MB)",
                  "Share of the deployment's bytes"], rows, total=len(rows),
                 caption="Traffic by kind (network and scale-up together); per request = bytes per second at the "
                         "stated load divided by the load, exact because every flow is a fixed number of bytes per request")


def _agent_tiers_table(tiers: list, deps: list, front_deps: Optional[list] = None) -> Table:
    """The CPU agent tiers: what each sends, to whom, and its traffic (the agent requests and responses
    of the deployments it drives, when no other tier drives them: the plan stores them per deployment).
    ``front_deps``: with a front-end fabric the agent traffic is on it (the plan's ``front_end``), not on
    the back-end, whose agent bytes are 0."""
    tiers = [t for t in tiers if isinstance(t, dict)]
    by_dep = {str(d.get("name")): d.get("bytes_per_s") or {}
              for d in (front_deps if front_deps is not None else deps) if isinstance(d, dict)}
    drivers: dict = {}
    for t in tiers:
        for n in t.get("deployments") or []:
            drivers.setdefault(str(n), []).append(str(t.get("name")))
    rows = []
    for t in tiers:
        names = [str(n) for n in t.get("deployments") or []]
        shared = sorted({o for n in names for o in drivers.get(n, []) if o != str(t.get("name"))})
        if shared:
            traffic = "shared with " + ", ".join(shared)
        else:
            tot = sum((_num(by_dep.get(n, {}).get(k)) or 0.0) for n in names for k in ("agent_request", "agent_response"))
            traffic = fmt(round(tot / 1e6, 4))
        rows.append([str(t.get("name")), str(t.get("node_type")),
                     "every host of the type" if t.get("hosts") is None else fmt(t.get("hosts")), ", ".join(names),
                     fmt(round((_num(t.get("request_bytes")) or 0) / 1024, 2)),
                     fmt(round((_num(t.get("response_bytes")) or 0) / 1024, 2)), traffic])
    return Table(["CPU agent tier", "Node type", "Hosts", "Drives", "Request each (KiB)", "Response each (KiB)",
                  "Traffic both ways (MB/s)"], rows, total=len(rows),
                 caption="CPU agent tiers: who sends requests to which deployment, and the bytes per second of those "
                         "requests and responses at the stated loads"
                         + (", carried by the front-end fabric (see Front-end fabric)" if front_deps is not None else ""))


def _serving_models_table(deps: list) -> Table:
    rows = []
    for d in deps:
        for m, e in sorted((_get(d, "time_per_token.models") or {}).items()):
            if not isinstance(e, dict):
                continue
            sat = _num(e.get("saturating_requests_per_s"))
            rows.append([str(d.get("name")), _SERVING_MODELS.get(m, m), _us(e.get("idle_s")), _us(e.get("at_rate_s")),
                         "n/a" if sat is None else fmt(round(sat, 2)), str(e.get("saturating_link") or "n/a")])
    return Table(["Deployment", "Routing model", "Idle (us)", "At the stated load (us)", "Saturates at (requests/s)",
                  "First link to saturate"], rows, total=len(rows),
                 caption="Network time per output token and the saturating load under each routing model")


_FAMILY_MARKERS = (("clos", "o", "#1f6feb"), ("rail_optimized", "s", "#2e933c"), ("rail_only", "^", "#e59500"))


def _design_section(plan: dict) -> Optional[Section]:
    """The design search (plan key ``design``): every sized candidate as a point of total cost
    against the jobs' summed collective time, one marker per family, the Pareto front as a step
    line, the chosen point marked; the front as a table; the other outcomes counted. None when the
    plan has no design section."""
    ds = _typed(plan).design
    if ds is None:
        return None
    s = Section("design", "Design search: the Pareto front")
    cands = ds.candidates
    sized = [c for c in cands if _num(c.total_usd) is not None and _num(c.job_time_s) is not None]
    front_ids = set(ds.front)
    front = sorted((c for c in sized if c.id in front_ids), key=lambda c: (float(c.total_usd), float(c.job_time_s),
                                                                          str(c.id)))
    chosen = next((c for c in cands if ds.chosen is not None and c.id == ds.chosen), None)
    counts: dict = {}
    for c in cands:
        counts[str(c.status)] = counts.get(str(c.status), 0) + 1
    s.paragraphs.append(
        f"{fmt(len(cands))} candidate designs (fabric family x tiers x planes x switch model) searched for the "
        f"objective {ds.objective or 'n/a'}, each sized to survive {ds.survive or 'n/a'}"
        + (f" and to slow no job more than {show(ds.max_slowdown, 'x')}" if _num(ds.max_slowdown) is not None else "")
        + ": " + ", ".join(f"{n} {st.replace('_', ' ')}" for st, n in sorted(counts.items())) + "; "
        f"{fmt(len(front))} on the Pareto front. "
        + (f"Chosen: {chosen.id}, {usd(chosen.total_usd)} capex + energy, {show(chosen.job_time_s, 's')} s summed "
           f"collective time." if chosen is not None else "No candidate was chosen (none is feasible)."))
    if sized:
        fams = [f for f, _, _ in _FAMILY_MARKERS] + sorted({str(c.family) for c in sized}
                                                           - {f for f, _, _ in _FAMILY_MARKERS})
        style = {f: (m, col) for f, m, col in _FAMILY_MARKERS}

        def draw(fig):
            ax = fig.add_subplot(111)
            for fam in fams:
                pts = [c for c in sized if str(c.family) == fam]
                if not pts:
                    continue
                m, col = style.get(fam, ("D", "#6f42c1"))
                ax.scatter([float(c.job_time_s) for c in pts], [float(c.total_usd) / 1e6 for c in pts], marker=m,
                           color=col, s=30, alpha=0.8, label=mpl_text(fam.replace("_", " ")), zorder=3)
            if front:
                xs = [float(c.job_time_s) for c in sorted(front, key=lambda c: (float(c.job_time_s), str(c.id)))]
                ys = [float(c.total_usd) / 1e6 for c in sorted(front, key=lambda c: (float(c.job_time_s), str(c.id)))]
                ax.step(xs, ys, where="post", color="#1b1f24", linewidth=1.2, label="Pareto front", zorder=2)
            if chosen is not None and chosen in sized:
                ax.scatter([float(chosen.job_time_s)], [float(chosen.total_usd) / 1e6], marker="*", s=220,
                           facecolor="none", edgecolor=_COLORS["limit"], linewidth=1.5, label="chosen", zorder=4)
            ax.set_xlabel("jobs' summed collective time per iteration (s)")
            ax.set_ylabel("total cost: capex + energy (million USD)")
            ax.legend(fontsize=7, loc="upper right")
        s.figures.append(Figure("fig-design-front", "Design search: cost against collective time",
                                "Each sized candidate as a point: total cost (network capex plus energy over the "
                                "horizon) against the jobs' summed collective time per iteration; marker and colour by "
                                "fabric family; the black step line is the Pareto front (no other candidate is cheaper "
                                "and faster); the red star the chosen design. Candidates that were infeasible, pruned "
                                "or out of time have no point and are counted above.", draw, size=(7.5, 3.8)))
    if front:
        s.tables.append(make_table(
            [{"name": c.id, "total_usd": c.total_usd, "capex_usd": c.capex_usd, "network_kw": c.network_kw,
              "job time_s": c.job_time_s, "p95 penalty": c.p95_penalty, "headroom": c.headroom,
              "chosen": "yes" if chosen is not None and c.id == chosen.id else ""} for c in front],
            columns=["name", "total_usd", "capex_usd", "network_kw", "job time_s", "p95 penalty", "headroom", "chosen"],
            caption="The Pareto front, cheapest first"))
    return s


# --- the front-end fabric -------------------------------------------------------------------------
def _front_end(plan: dict) -> Optional[dict]:
    fe = plan.get("front_end")
    return fe if isinstance(fe, dict) else None


def _front_end_cost(fe: dict) -> dict:
    """The front-end budget's cost of the chosen design, of the design as given and what it saves ({} when
    the front-end budget was not sized: the plan then holds no front-end cost)."""
    cost = _get(fe, "budget.cost")
    if not isinstance(cost, dict):
        return {}
    return {k: cost[k] for k in ("chosen", "as_given", "saved_vs_as_given", "horizon_years") if k in cost}


def _front_end_words(fe: dict) -> str:
    """The front-end fabric in one sentence: hosts, switches per tier, links; its cost where sized."""
    counts = [c for c in fe.get("tier_switch_counts") or []]
    names = ("leaf", "spine", "super-spine")
    per_tier = ", ".join(count_of(c, f"{names[i] if i < len(names) else f'tier {i}'} switch")
                         for i, c in enumerate(counts))
    txt = (f"Front-end fabric (a separate {_FAMILY_WORDS.get(str(fe.get('family')), str(fe.get('family')))} network for "
           f"the hosts' front-end NICs): {count_of(fe.get('endpoints'), 'host')}, "
           f"{count_of(len(counts), 'tier')} ({per_tier or count_of(fe.get('switches'), 'switch')}), "
           f"{count_of(fe.get('links'), 'link')}")
    c = _front_end_cost(fe)
    ch = c.get("chosen") or {}
    if _num(ch.get("total_usd")) is not None:
        txt += (f"; {usd(ch['total_usd'])} capex + energy, {fmt(float(ch.get('network_kw') or 0.0))} kW, "
                "from its own link budget, not in the back-end's figures")
    else:
        txt += f"; its link budget was not sized ({fe.get('budget_not_sized') or 'no reason given'}), so its cost and power are not in the plan"
    return txt + "."


def _front_end_section(plan: dict, fabrics: "_Fabrics") -> Optional[Section]:
    """The front-end fabric (plan key ``front_end``): its size and switches, where it sits beside the
    back-end, its link budget (cost and power as given and chosen) or why it was not sized, the agent
    traffic per deployment and the utilisation per tier. None when the plan has no front-end."""
    fe = _front_end(plan)
    if fe is None:
        return None
    s = Section("front-end", "Front-end fabric")
    s.paragraphs.append(_front_end_words(fe) + " Every host sits on it by one or more front-end NICs (CPU agent hosts, "
                        "and accelerator nodes beside their back-end rails); host and rack names are the same on both "
                        "fabrics. It carries the CPU agent tiers' requests to each replica's entry host and the "
                        f"responses back ({count_of(fe.get('flows'), 'flow')}); the back-end carries everything else "
                        "(training, KV transfers, tensor-parallel and MoE traffic) and no agent traffic. Storage and "
                        "ingress traffic are not modelled" + (f"; {fe['not_modelled']}" if fe.get("not_modelled") else "")
                        + ".")
    routing = _MODEL_NAMES.get(str(fe.get("routing")), str(fe.get("routing") or "the transport's model"))
    s.paragraphs.append(
        f"Peak front-end link utilisation {show(fe.get('max_util'), 'pct')} under ideal ECMP and "
        f"{show(fe.get('max_util_transport'), 'pct')} under {routing}, against a target of "
        f"{show(fe.get('target_utilization'), 'pct')}: the front-end "
        + ("carries" if fe.get("carries_at_target_transport", fe.get("carries_at_target")) else "does NOT carry")
        + " the agent traffic at the target"
        + (f", and the agent load could grow {show(fe.get('load_scale_at_target'), 'x')} before it reaches it"
           if _num(fe.get("load_scale_at_target")) is not None else "") + ".")
    b = fe.get("budget")
    if isinstance(b, dict):
        st = b.get("status") or _get(b, "solver.status")
        chk = b.get("check") if isinstance(b.get("check"), dict) else {}
        s.paragraphs.append(
            f"Front-end link budget: objective {b.get('objective', 'n/a')}, survive {b.get('survive', 'n/a')}, target "
            f"utilisation {show(b.get('target_utilization'), 'pct')}, sized for ideal ECMP and the agent traffic only "
            f"(solver status {st or 'n/a'}; independent check "
            + ("passed" if chk.get("ok") else "FAILED" if chk else "not recorded") + ").")
        c = _front_end_cost(fe)
        rows = [{"design": k.replace("_", " "), **{kk: vv for kk, vv in c[k].items() if not isinstance(vv, (dict, list))}}
                for k in ("chosen", "as_given") if isinstance(c.get(k), dict)]
        if rows:
            s.tables.append(make_table(rows, caption="Front-end cost: the chosen design and the design as given "
                                                     f"(energy over {count_of(c.get('horizon_years'), 'year')})"))
        tiers = [t for t in b.get("tiers") or [] if isinstance(t, dict)]
        if tiers:
            s.tables.append(make_table([{k: t.get(k) for k in ("tier", "model", "switches_as_given", "switches",
                                                                "oversubscription_as_given", "oversubscription",
                                                                "down_ports", "up_ports", "bundle") if k in t}
                                        for t in tiers], caption="Front-end switch tiers, as given and chosen"))
    else:
        s.paragraphs.append("Front-end link budget: not sized (" + str(fe.get("budget_not_sized") or "no reason given")
                            + "). The plan holds no cost or power for the front-end, and the back-end's figures in "
                            "this report do not include it.")
    fig = _front_end_figure(plan, fabrics, fe)
    if fig is not None:
        s.figures.append(fig)
    deps = [d for d in fe.get("deployments") or [] if isinstance(d, dict)]
    if deps:
        rows = []
        for d in deps:
            by = d.get("bytes_per_s") if isinstance(d.get("bytes_per_s"), dict) else {}
            cap = _num(d.get("max_requests_per_s_at_target"))
            rows.append([str(d.get("name")), show((_num(by.get("agent_request")) or 0.0) / 1e9 * 8, "gbps"),
                         show((_num(by.get("agent_response")) or 0.0) / 1e9 * 8, "gbps"), show(d.get("max_util"), "pct"),
                         "n/a" if cap is None else fmt(round(cap, 2)), str(d.get("limited_by") or "n/a")])
        s.tables.append(Table(["Deployment", "Agent requests (Gb/s)", "Agent responses (Gb/s)",
                               "Peak link utilisation, its agent traffic alone", "Highest load at the target (requests/s)",
                               "Limited by"], rows, total=len(rows),
                              caption="Agent traffic per deployment on the front-end (ideal ECMP)"))
    trows = []
    for which, key in (("ideal ECMP", "tiers"), (routing, "tiers_transport")):
        for t in fe.get(key) or []:
            if isinstance(t, dict):
                trows.append({"metrics": which, **{k: t.get(k) for k in ("tier", "links", "util_max", "util_p99",
                                                                            "util_mean") if k in t}})
    if trows:
        s.tables.append(make_table(trows, caption="Front-end utilisation per link tier, agent traffic"))
    hot = [h for h in fe.get("busiest_links_transport") or fe.get("busiest_links") or [] if isinstance(h, dict)]
    if hot:
        s.tables.append(make_table([{k: h.get(k) for k in ("link", "gbps", "load_gbps", "util") if k in h} for h in hot],
                                   limit=10, caption=f"Busiest front-end links ({routing})"))
    return s


def _front_end_figure(plan: dict, fabrics: "_Fabrics", fe: dict) -> Optional[Figure]:
    """The back-end (plane 0 of the chosen design) and the front-end fabric side by side, by pod and
    tier, drawn alike (the front-end rebuilt from the plan's cluster file after both budgets)."""
    fa = fabrics.get("after")
    ff = fabrics.front_end()
    if fa is None or ff is None or fa.n_links == 0 or ff.n_links == 0:
        return None
    ga, ea = _plane_groups(fa, 0)
    gf, ef = _plane_groups(ff, 0)
    nt = max(len({t for t, _ in ga}), len({t for t, _ in gf}))
    planes = max(int(fa.planes), 1)

    def draw(fig):
        a1, a2 = fig.subplots(1, 2)
        wide = max(len({pd for _, pd in ga if pd >= 0}), len({pd for _, pd in gf if pd >= 0})) > 3
        _draw_plane(a1, ga, ea, nt, fontsize=5.0 if wide else 7.0)
        _draw_plane(a2, gf, ef, nt, fontsize=5.0 if wide else 7.0)
        a1.set_title("back-end (accelerator NICs)" + (f", plane 0 of {planes}" if planes > 1 else ""), fontsize=9)
        a2.set_title("front-end (hosts' front-end NICs)", fontsize=9)
    return Figure("fig-front-end", "Back-end and front-end fabrics side by side",
                  "Left: the chosen back-end fabric" + (f" (plane 0 of {planes})" if planes > 1 else "")
                  + ", whose endpoints are the accelerators' NICs; right: the front-end fabric"
                  + (" as chosen by its link budget" if isinstance(fe.get("budget"), dict) else " as given")
                  + f", whose endpoints are the {count_of(fe.get('endpoints'), 'host')} (one endpoint per host, "
                  "whatever its front-end NICs). Both by pod and tier: each box a group of switches or endpoints with "
                  "its count, each edge the links between two groups (count x speed, capacity in one direction). The "
                  "two share racks and hosts, not switches or links.", draw, size=(11.0, 0.9 + 1.0 * nt))


def build_sections(plan: dict, fabric_before=None, fabric_after=None) -> list[Section]:
    """Every section of the report, in order, from the plan alone."""
    with _typed_once(plan):
        return _build_sections(plan, fabric_before, fabric_after)


@contextmanager
def _typed_once(plan: dict):
    """The typed plan kept for :func:`_typed` while the block runs (SpecError for a plan that is
    not a JSON object)."""
    if not isinstance(plan, dict):
        from topo.core.errors import SpecError
        raise SpecError([("(root)", "a plan is a JSON object")])
    token = _TYPED.set((plan, _typed(plan)))
    try:
        yield
    finally:
        _TYPED.reset(token)


def _build_sections(plan: dict, fabric_before, fabric_after) -> list[Section]:
    fabrics = _Fabrics(plan, fabric_before, fabric_after)
    fabric = _fabric_section(plan)
    floor = _floor_figure(plan, fabrics)
    if floor is not None:
        fabric.figures.append(floor)
    ba = _before_after_figure(plan, fabrics)
    if ba is not None:
        fabric.figures.append(ba)
    # the chosen plane 0 is the right half of the before/after figure: not drawn twice
    fabric.figures += _plane_figures(plan, fabrics, skip_plane0=ba is not None)
    design = _design_section(plan)
    serving = _serving_section(plan)
    front = _front_end_section(plan, fabrics)
    return ([_glance(plan), _summary(plan)] + ([design] if design is not None else [])
            + [fabric, _budget_section(plan), _util_section(plan, fabrics), _traffic_section(plan),
               _transport_section(plan), _collectives_section(plan)]
            + ([serving] if serving is not None else []) + ([front] if front is not None else [])
            + [_power_section(plan), _bom_section(plan), _placement_section(plan), _failure_section(plan),
               _goodput_section(plan), _solver_section(plan)])


# --- rendering ------------------------------------------------------------------------------------
def _env(kind: str):
    """The Jinja environment of one report format; every value is text, never markup.

    HTML: autoescaped, and control/bidi characters shown as escapes first
    (:func:`topo.core.textsafe.visible`). Markdown: every value through
    :func:`topo.core.textsafe.md_escape`, paragraphs through the ``md_block`` filter.
    Only :class:`~markupsafe.Markup` (figures, the stylesheet) passes as is.
    """
    from jinja2 import Environment, PackageLoader, StrictUndefined
    from markupsafe import Markup
    if kind == "html":
        def finalize_html(x):
            return x if isinstance(x, Markup) else visible(x)
        return Environment(loader=PackageLoader("topo.io", "templates"), autoescape=True, undefined=StrictUndefined,
                           trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, finalize=finalize_html)

    def finalize(x):
        return x if isinstance(x, Markup) else md_inline(x)
    env = Environment(loader=PackageLoader("topo.io", "templates"), autoescape=False, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, finalize=finalize)
    env.filters["md_block"] = lambda x: x if isinstance(x, Markup) else Markup(md_paragraph(x))
    return env


_MD_LEAD = re.compile(r"^(?:&#32;)*(?:&gt;)?")


def md_inline(text) -> str:
    """Report text for Markdown inside a line (a table cell, a caption, a list item):
    :func:`~topo.core.textsafe.md_escape`, with ``>`` kept as written (``leaf0->n0000-g0``,
    ``0.5 -> 0.4``). A ``>`` starts a quote only at the start of a block, and ``<`` stays an
    entity, so no ``>`` can close a tag or an autolink."""
    return md_escape(str(text)).replace("&gt;", ">")


def md_paragraph(text) -> str:
    """:func:`~topo.core.textsafe.md_block` with ``>`` kept as written, except one that starts
    the paragraph (which would make it a quote)."""
    t = md_block(text)
    lead = _MD_LEAD.match(t).group(0)
    return lead + t[len(lead):].replace("&gt;", ">")


def _title(plan: dict) -> str:
    tp = _typed(plan)
    name = _x(tp.describe_before, "name") or tp.cluster_file.get("name") or "cluster"
    return f"topo plan: {name}"


def render_html(plan: dict, *, fabric_before=None, fabric_after=None) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no scripts, no links out)."""
    return _render(plan, fabric_before, fabric_after, IMAGE_DIR, html=True, md=False)[0]


def render_markdown(plan: dict, image_dir: str = IMAGE_DIR, *, fabric_before=None,
                    fabric_after=None) -> tuple[str, dict]:
    """The report as Markdown and its figures as PNG: ``(text, {relative path: png bytes})``."""
    return _render(plan, fabric_before, fabric_after, image_dir, html=False, md=True)[1]


def render_report(plan: dict, image_dir: str = IMAGE_DIR, *, fabric_before=None,
                  fabric_after=None) -> tuple[str, str, dict]:
    """Both reports, ``(html, markdown, {relative path: png bytes})``, from one build of the
    sections: the same texts as :func:`render_html` and :func:`render_markdown`."""
    html, (md, images) = _render(plan, fabric_before, fabric_after, image_dir, html=True, md=True)
    return html, md, images


def _render(plan: dict, fabric_before, fabric_after, image_dir: str, *, html: bool, md: bool) -> tuple:
    """(html or None, (markdown, images) or None): the sections built once, the plan typed once."""
    from markupsafe import Markup
    with _typed_once(plan):
        sections = _build_sections(plan, fabric_before, fabric_after)
        title = _title(plan)
        page = None
        if html:
            for s in sections:
                for f in s.figures:
                    f.svg = Markup(figure_svg(f))
            css = (Path(__file__).parent / "templates" / "report.css").read_text()
            page = _env("html").get_template("report.html").render(title=title, sections=sections, css=Markup(css))
        text = None
        if md:
            images = {}
            for s in sections:
                for f in s.figures:
                    rel = f"{image_dir}/{f.id}.png"
                    images[rel] = figure_png(f)
                    f.svg = Markup(f"![{md_escape(f.title)}]({rel})")
            text = (_env("md").get_template("report.md").render(title=title, sections=sections), images)
        return page, text


PDF_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def html_to_pdf(html: str, *, browser: Optional[str] = None, timeout: float = 300.0) -> bytes:
    """PDF bytes of a report page printed by headless Chromium (pages set by the print stylesheet).

    TopoError with what to do when no Chromium is found or it fails; nothing is written.
    """
    import shutil
    import subprocess
    import tempfile
    from topo.core.errors import TopoError
    exe = browser or next((w for w in (shutil.which(b) for b in PDF_BROWSERS) if w), None)
    if exe is None:
        raise TopoError("report.pdf needs headless Chromium (" + ", ".join(PDF_BROWSERS) + ") on the PATH and none "
                        "was found; install chromium, or open report.html in a browser and print it to PDF "
                        "(the print stylesheet lays out the pages)")
    with tempfile.TemporaryDirectory(prefix="topo-pdf-") as tmp:
        page, out = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        page.write_text(html, encoding="utf-8")
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={Path(tmp) / 'profile'}",
               "--no-pdf-header-footer", f"--print-to-pdf={out}", page.as_uri()]
        try:
            r = subprocess.run(cmd, timeout=timeout, capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            raise TopoError(f"{exe} did not print the report within {timeout:g} s") from None
        if r.returncode != 0 or not out.exists() or out.stat().st_size == 0:
            tail = (r.stderr or "").strip().splitlines()[-1:] or ["no output"]
            raise TopoError(f"{exe} could not print the report to PDF (exit {r.returncode}: {visible(tail[0])[:200]})")
        return out.read_bytes()


LAYOUT_WIDTH, LAYOUT_SCREEN = 1280, 800     # the window a report is checked in: no sideways scroll, summary first
FULL_PAGE_MAX = 16000                       # px: a taller page is screenshot to this height

# measured in the page after layout, written onto <body> as attributes and read back from --dump-dom
_LAYOUT_PROBE = """<script>
var bad=[], nofig=[], heads=[];
document.querySelectorAll('body *').forEach(function(e){
  var r=e.getBoundingClientRect();
  if(r.right>%(w)d+0.5||e.scrollWidth>e.clientWidth+1&&getComputedStyle(e).overflowX!=='visible')
    bad.push(e.tagName+(e.id?'#'+e.id:'')+':'+Math.round(r.right));});
var figs=document.querySelectorAll('figure');
figs.forEach(function(f){var a=f.querySelector('[role=img]'),c=f.querySelector('figcaption');
  if(!a||(a.getAttribute('aria-label')||'').length<20||!c||c.textContent.trim().length<20||!f.querySelector('svg'))
    nofig.push(f.id);});
document.querySelectorAll('th[scope=col]').forEach(function(h){heads.push(h.textContent.trim().replace(/\\s+/g,' '))});
var s=document.getElementById('overview'), t=s?s.querySelector('table'):null, k=s?s.querySelector('div.kpis'):null;
var b=document.body;
b.setAttribute('data-doc',document.documentElement.scrollWidth);
b.setAttribute('data-height',document.documentElement.scrollHeight);
b.setAttribute('data-bad',bad.slice(0,12).join(' '));
b.setAttribute('data-nbad',bad.length);
b.setAttribute('data-figs',Array.prototype.map.call(figs,function(f){return f.id}).join(' '));
b.setAttribute('data-nofig',nofig.join(' '));
b.setAttribute('data-heads',heads.join('\\u001f'));
b.setAttribute('data-kpis',s?s.querySelectorAll('div.kpi').length:0);
b.setAttribute('data-summary-bottom',Math.round(Math.max(k?k.getBoundingClientRect().bottom:1e9,
  t?t.getBoundingClientRect().bottom:0)+window.scrollY));
</script></body>""" % {"w": LAYOUT_WIDTH}


def raw_field_name(text: str) -> bool:
    """A header that is a field name: `_` or `.` outside a unit in parentheses (a decimal point aside)."""
    return bool(re.search(r"_|[A-Za-z]\.[A-Za-z]", re.sub(r"\([^)]*\)", "", text)))


def _chromium(browser: Optional[str]) -> str:
    import shutil
    from topo.core.errors import TopoError
    exe = browser or next((w for w in (shutil.which(b) for b in PDF_BROWSERS) if w), None)
    if exe is None:
        raise TopoError("measuring a report's layout needs headless Chromium (" + ", ".join(PDF_BROWSERS) +
                        ") on the PATH and none was found")
    return exe


def measure_layout(html: str, *, browser: Optional[str] = None, screenshot=None, full_page=None,
                   timeout: float = 300.0) -> dict:
    """The report's layout in headless Chromium at ``LAYOUT_WIDTH`` px, measured from the DOM.

    A copy of the page with a probe script (the report itself has none) is laid out; returns
    ``doc`` (document width, px), ``height``, ``bad`` (up to 12 elements past the window's right
    edge or scrolling sideways, as ``TAG#id:right``; ``nbad`` counts all), ``figs`` (figure ids),
    ``nofig`` (figures without an SVG, an aria-label or a caption of 20+ characters), ``heads``
    (column headers), ``raw_heads`` (those that are field names), ``kpis`` (summary cards) and
    ``summary_bottom`` (px from the top to the bottom of the summary's cards and job table).
    With ``screenshot`` (a path) also writes a PNG of the first screen (``LAYOUT_WIDTH`` x
    ``LAYOUT_SCREEN``), with ``full_page`` one of the whole page (up to ``FULL_PAGE_MAX`` px tall).
    TopoError without Chromium.
    """
    import subprocess
    import tempfile
    exe = _chromium(browser)
    base = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
    with tempfile.TemporaryDirectory(prefix="topo-layout-") as tmp:
        page = Path(tmp) / "probe.html"
        page.write_text(html.replace("</body>", _LAYOUT_PROBE), encoding="utf-8")
        r = subprocess.run([exe, *base, f"--window-size={LAYOUT_WIDTH},{LAYOUT_SCREEN}", f"--user-data-dir={Path(tmp) / 'profile'}",
                            "--dump-dom", page.as_uri()],
                           check=True, timeout=timeout, capture_output=True, text=True)
        body = re.search(r"<body[^>]*>", r.stdout).group(0)
        height = int(re.search(r'data-height="(\d+)"', body).group(1))
        plain = Path(tmp) / "report.html"
        plain.write_text(html, encoding="utf-8")
        for path, h in ((screenshot, LAYOUT_SCREEN), (full_page, min(height, FULL_PAGE_MAX))):
            if path is not None:
                subprocess.run([exe, *base, f"--window-size={LAYOUT_WIDTH},{h}", f"--user-data-dir={Path(tmp) / 'shot'}",
                                f"--screenshot={Path(path).resolve()}", plain.as_uri()],
                               check=True, timeout=timeout, capture_output=True, text=True)
    import html as _h
    m = {k: _h.unescape(v) for k, v in re.findall(r'data-([a-z-]+)="([^"]*)"', body)}
    heads = [h for h in m.get("heads", "").split("\x1f") if h]
    return {"doc": int(m["doc"]), "height": int(m["height"]), "bad": m["bad"].split(), "nbad": int(m["nbad"]),
            "figs": m["figs"].split(), "nofig": m["nofig"].split(), "heads": heads,
            "raw_heads": sorted({h for h in heads if raw_field_name(h)}), "kpis": int(m["kpis"]),
            "summary_bottom": int(m["summary-bottom"])}


def write_report(plan: dict, out_dir, force: bool = False, *, image_dir: str = IMAGE_DIR,
                 fabric_before=None, fabric_after=None, pdf: bool = False) -> list[Path]:
    """Write ``report.html``, ``report.md`` and ``<image_dir>/*.png`` (and ``report.pdf`` with
    ``pdf``, printed by headless Chromium: :func:`html_to_pdf`) into ``out_dir`` atomically.

    Existing report files are replaced only with ``force`` (SpecError naming
    ``-o``/``--force`` otherwise, before anything is rendered or written).
    """
    from topo.core.atomic import StagedFiles
    st = StagedFiles(out_dir, force=force)
    st.check(["report.html", "report.md", image_dir] + (["report.pdf"] if pdf else []))
    html, md, images = render_report(plan, image_dir, fabric_before=fabric_before, fabric_after=fabric_after)
    pdf_bytes = html_to_pdf(html) if pdf else None
    with st:
        out = [st.write_text("report.html", html), st.write_text("report.md", md)]
        if pdf_bytes is not None:
            out.append(st.write_bytes("report.pdf", pdf_bytes))
        for rel in sorted(images):
            st.write_bytes(rel, images[rel])
    return out + [Path(out_dir) / image_dir]
