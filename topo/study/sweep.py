"""Design sweeps: many variants of one cluster, each through the same pipeline.

Owns the sweep file (validation, expansion into variants), the per-variant
task (build, place, route, metrics, failure scenario), resumable result
files, the collected table (CSV, Parquet when pyarrow is installed) and the
comparison report with the Pareto front of cost, power and completion time.
Tasks run through :mod:`topo.study.executor` (local processes or Dask); a task
carries the cluster file's data and one variant, never a fabric, and workers
rebuild (and cache) fabrics themselves.

Sweep file (YAML or JSON)::

    version: 1
    name: oversub-study
    base: cluster.yaml            # relative to the sweep file
    seed: 1                       # seeds every variant (default: base goals.seed)
    grid:                         # cartesian product of the listed values
      switch: [th5-128x400, th5-64x800]   # every tier's switch (or a list per tier)
      oversubscription: [1, 2, 3]         # leaf tier (or a list per tier)
      planes: [1, 2]
      qps_per_connection: [1, 4]
      transport: [roce, uec, ideal]
      rack_power_limit_kw: [30, 45]
      placement: [in_order, optimized]
      failure_rates: [{link_per_year: 0.01, switch_per_year: 0.02}]
    variants:                     # and/or an explicit list (same keys, plus id)
      - {id: big-switch, switch: th5-64x800, planes: 2}
    failures: [none, spine, leaf, plane, rack_power, {k: 2, samples: 50}]

Every variant runs once per failure scenario (default ``[none]``). A scenario
names the first element of that kind (``leaf``, ``spine``, ``super-spine``,
``link`` (an endpoint link), ``uplink`` (a leaf-spine link), ``nic``, ``plane``,
``rack_power``, ``scaleup_switch``) failing, or ``{k: N, samples: M}``: the
worst (by capacity) of M seeded random k-sets of switches and links. Variants
run in batches (about 4 per worker, at most 32 each); each result is written
as its own file as soon as its batch returns. Result ids are a hash of (variant, scenario, seed), so a
resumed or reordered sweep finds its earlier results.
"""
from __future__ import annotations

import csv
import hashlib
import html
import io
import itertools
import json
import math
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from topo.core.errors import SpecError, TopoError

SWEEP_VERSION = 1
VARIANT_KEYS = ("switch", "oversubscription", "planes", "qps_per_connection", "transport",
                "rack_power_limit_kw", "placement", "failure_rates")
TOP_KEYS = ("version", "name", "base", "seed", "grid", "variants", "failures", "description")
SCENARIO_KINDS = ("none", "leaf", "spine", "super-spine", "link", "uplink", "nic", "plane", "rack_power",
                  "scaleup_switch")
PLACEMENTS = ("in_order", "optimized")
TRANSPORTS = ("roce", "uec", "ideal")
RATE_KEYS = ("link_per_year", "switch_per_year", "nic_per_year")

# columns of the results table, in order (variant parameters follow "scenario")
COLUMNS = ["id", "variant", "scenario", *VARIANT_KEYS, "status", "message", "accelerators", "switches",
           "network_cost_usd", "network_kw", "total_kw", "bisection_gbps", "bisection_per_accelerator_gbps",
           "capacity_lost_frac", "lost_endpoint_leaf", "lost_leaf_spine", "lost_spine_super",
           "completion_time_s", "slowdown_max", "unreachable_gbps", "jobs_affected", "expected_lost_frac",
           "routing_model", "placement_note", "unplaced", "unplaced_accelerators", "seed", "seconds"]


# --- validation and expansion ------------------------------------------------------------
def _variant_errors(v: Any, path: str) -> list[tuple[str, str]]:
    errs = []
    if not isinstance(v, dict):
        return [(path, f"expected an object of variant settings, found {type(v).__name__}")]
    for key, val in v.items():
        p = f"{path}.{key}"
        if key == "id":
            if not isinstance(val, str) or not val:
                errs.append((p, "must be a non-empty string"))
            continue
        if key not in VARIANT_KEYS:
            errs.append((p, f"unknown key {key!r}; expected one of {list(VARIANT_KEYS)}"))
            continue
        errs += _value_errors(key, val, p)
    return errs


def _value_errors(key: str, val: Any, p: str) -> list[tuple[str, str]]:
    num = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)
    if key == "switch":
        ok = isinstance(val, str) or (isinstance(val, list) and val and all(isinstance(x, str) for x in val))
        return [] if ok else [(p, f"expected a switch model name or a list per tier, found {val!r}")]
    if key == "oversubscription":
        ok = (num(val) and val >= 1) or (isinstance(val, list) and val and all(num(x) and x >= 1 for x in val))
        return [] if ok else [(p, f"expected a number >= 1 or a list per tier, found {val!r}")]
    if key in ("planes", "qps_per_connection"):
        ok = isinstance(val, int) and not isinstance(val, bool) and val >= 1
        return [] if ok else [(p, f"expected an integer >= 1, found {val!r}")]
    if key == "transport":
        return [] if val in TRANSPORTS else [(p, f"expected one of {list(TRANSPORTS)}, found {val!r}")]
    if key == "rack_power_limit_kw":
        return [] if (num(val) and val > 0) else [(p, f"expected a power limit > 0 kW, found {val!r}")]
    if key == "placement":
        return [] if val in PLACEMENTS else [(p, f"expected one of {list(PLACEMENTS)}, found {val!r}")]
    if key == "failure_rates":
        if not isinstance(val, dict):
            return [(p, f"expected an object with {list(RATE_KEYS)}, found {val!r}")]
        errs = []
        for rk, rv in val.items():
            if rk not in RATE_KEYS:
                errs.append((f"{p}.{rk}", f"unknown key {rk!r}; expected one of {list(RATE_KEYS)}"))
            elif not num(rv) or not (0.0 <= rv <= 1.0) or (isinstance(rv, float) and math.isnan(rv)):
                errs.append((f"{p}.{rk}", f"a failure rate is a probability per year in [0, 1] (found {rv!r})"))
        return errs
    return []


def _scenario_errors(s: Any, p: str) -> list[tuple[str, str]]:
    if isinstance(s, str):
        return [] if s in SCENARIO_KINDS else [(p, f"unknown failure scenario {s!r}; expected one of {list(SCENARIO_KINDS)} or {{k: N, samples: M}}")]
    if isinstance(s, dict):
        errs = []
        for key in s:
            if key not in ("k", "samples"):
                errs.append((f"{p}.{key}", "unknown key; a k-failure scenario has k and samples"))
        k = s.get("k")
        if not (isinstance(k, int) and not isinstance(k, bool) and k >= 1):
            errs.append((f"{p}.k", f"expected an integer >= 1, found {k!r}"))
        sm = s.get("samples", 100)
        if not (isinstance(sm, int) and not isinstance(sm, bool) and sm >= 1):
            errs.append((f"{p}.samples", f"expected an integer >= 1, found {sm!r}"))
        return errs
    return [(p, f"expected a scenario name or {{k: N, samples: M}}, found {s!r}")]


def scenario_label(s) -> str:
    return s if isinstance(s, str) else f"k{s['k']}x{s.get('samples', 100)}"


def load_sweep(path) -> dict:
    """Read and validate a sweep file; return the plan of work.

    Returns ``{"name", "base_path", "base_data", "base_dir", "seed", "tasks": [...]}``
    where each task is ``{"id", "variant_name", "variant", "scenario", "seed"}``.
    Raises :class:`SpecError` (every problem with its path) before anything runs.
    """
    from topo.model.spec import load as _load_cluster, parse_text
    from topo.model.spec import read_file
    p = Path(path)
    data = parse_text(read_file(p), p.suffix.lower(), str(p))
    if not isinstance(data, dict):
        raise SpecError([("(root)", f"expected an object at the top level, found {type(data).__name__}")], str(p))
    errs: list[tuple[str, str]] = []
    for key in data:
        if key not in TOP_KEYS:
            errs.append((key, f"unknown key {key!r}; expected one of {list(TOP_KEYS)}"))
    ver = data.get("version", SWEEP_VERSION)
    if isinstance(ver, bool) or ver != SWEEP_VERSION:
        errs.append(("version", f"unsupported sweep version {ver!r}; expected {SWEEP_VERSION}"))
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            errs.append((key, f"expected a string, found {data[key]!r}"))
    if "base" not in data or not isinstance(data.get("base"), str):
        errs.append(("base", "missing: the cluster file every variant starts from"))
    seed = data.get("seed")
    if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool)):
        errs.append(("seed", f"expected an integer, found {seed!r}"))
    grid = data.get("grid")
    variants = data.get("variants")
    if grid is None and variants is None:
        errs.append(("grid", "missing: give a grid and/or a list of variants"))
    combos: list[tuple[str, dict]] = []
    if grid is not None:
        if not isinstance(grid, dict) or not grid:
            errs.append(("grid", "the grid is empty: give at least one key with a list of values"))
        else:
            keys = []
            for key, vals in grid.items():
                gp = f"grid.{key}"
                if key not in VARIANT_KEYS:
                    errs.append((gp, f"unknown key {key!r}; expected one of {list(VARIANT_KEYS)}"))
                    continue
                if not isinstance(vals, list):
                    vals = [vals]
                if not vals:
                    errs.append((gp, "empty list: give at least one value"))
                    continue
                for i, v in enumerate(vals):
                    errs += _value_errors(key, v, f"{gp}[{i}]")
                keys.append((key, vals))
            if keys and not errs:
                for combo in itertools.product(*[v for _, v in keys]):
                    var = {k: v for (k, _), v in zip(keys, combo)}
                    combos.append((_variant_name(var), var, f"grid (variant {_variant_name(var)})"))
    if variants is not None:
        if not isinstance(variants, list) or not variants:
            errs.append(("variants", "empty: give at least one variant"))
        else:
            for i, v in enumerate(variants):
                e = _variant_errors(v, f"variants[{i}]")
                errs += e
                if not e:
                    var = {k: x for k, x in v.items() if k != "id"}
                    combos.append((v.get("id") or _variant_name(var), var, f"variants[{i}]"))
    scen = data.get("failures", ["none"])
    if not isinstance(scen, list) or not scen:
        errs.append(("failures", "empty: give at least one scenario (none for the healthy fabric)"))
        scen = []
    for i, s in enumerate(scen):
        errs += _scenario_errors(s, f"failures[{i}]")
    if errs:
        raise SpecError(errs, str(p))

    base_path = (p.parent / data["base"]).resolve()
    base_cluster = _load_cluster(base_path)  # SpecError names the base file's own paths
    from topo.model.spec import parse_text as _pt
    from topo.model.spec import read_file as _rf
    base_data = _pt(_rf(base_path), base_path.suffix.lower(), str(base_path))
    from topo.model.spec import run_settings
    seed = run_settings(base_cluster, seed=seed).seed
    # every variant must make a valid cluster file (checked now, before any result is written)
    verrs = []
    tasks = []
    seen = set()
    for vname, var, where in combos:
        try:
            apply_variant(base_data, var, str(base_path.parent))
        except SpecError as e:
            verrs += [(f"{where}: {pp}", m) for pp, m in e.errors]
            continue
        for s in scen:
            tid = task_id(var, s, seed)
            if tid in seen:
                continue
            seen.add(tid)
            tasks.append({"id": tid, "variant_name": vname, "variant": var, "scenario": s, "seed": seed})
    if verrs:
        raise SpecError(verrs, str(p))
    return {"name": data.get("name", p.stem), "sweep_path": str(p), "base_path": str(base_path),
            "base_data": base_data, "base_dir": str(base_path.parent), "seed": seed, "tasks": tasks}


def _variant_name(var: dict) -> str:
    if not var:
        return "base"
    parts = []
    for k in VARIANT_KEYS:
        if k in var:
            v = var[k]
            if isinstance(v, dict):
                v = ",".join(f"{a}={b}" for a, b in sorted(v.items()))
            elif isinstance(v, list):
                v = "/".join(str(x) for x in v)
            parts.append(f"{k}={v}")
    return ";".join(parts)


def task_id(variant: dict, scenario, seed: int) -> str:
    """Stable id of one (variant, scenario, seed): a hash of their canonical JSON."""
    blob = json.dumps({"v": variant, "s": scenario, "seed": seed}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def apply_variant(base_data: dict, var: dict, base_dir: str):
    """The base cluster file's data with one variant applied, validated (a Cluster)."""
    import copy
    from topo.model.spec import from_dict
    d = copy.deepcopy(base_data)
    fab = d.setdefault("fabric", {})
    tiers = fab.get("tiers")
    if tiers is None:
        tiers = [{}, {}] if fab.get("family", "clos") != "fat_tree" else [{}]
        fab["tiers"] = tiers
    tiers = [dict(t) for t in tiers]
    fab["tiers"] = tiers
    if "switch" in var:
        sw = var["switch"] if isinstance(var["switch"], list) else [var["switch"]] * len(tiers)
        for t, s in zip(tiers, sw):
            t["switch"] = s
    if "oversubscription" in var:
        os_ = var["oversubscription"] if isinstance(var["oversubscription"], list) else [var["oversubscription"]]
        for t, o in zip(tiers, os_):
            t["oversubscription"] = o
    if "planes" in var:
        fab["planes"] = var["planes"]
    tr = d.setdefault("transport", {})
    if "qps_per_connection" in var:
        tr["qps_per_connection"] = var["qps_per_connection"]
    if "transport" in var:
        tr["protocol"] = var["transport"]
    if "rack_power_limit_kw" in var:
        d["racks"] = [dict(r, power_limit_kw=var["rack_power_limit_kw"]) for r in d.get("racks", [])]
    if "failure_rates" in var:
        d["failure_rates"] = dict(d.get("failure_rates") or {}, **var["failure_rates"])
    return from_dict(d, source="variant", base_dir=base_dir), d


# --- one task -----------------------------------------------------------------------------
_CACHE: dict[str, Any] = {}
_CACHE_MAX = 8


def _cached(key: str, make):
    if key in _CACHE:
        return _CACHE[key]
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(next(iter(_CACHE)))
    v = _CACHE[key] = make()
    return v


def _blob_key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def run_batch(batch: dict) -> list[dict]:
    """Run several tasks that share one base cluster (one executor task)."""
    return [run_task(dict(t, base_data=batch["base_data"], base_dir=batch["base_dir"])) for t in batch["tasks"]]


def run_task(task: dict) -> dict:
    """Run one (variant, scenario): build, place, route, metrics. Returns one table row.

    ``task`` holds ``base_data`` (the cluster file's data), ``base_dir``,
    ``variant``, ``scenario``, ``seed``, ``id``, ``variant_name``. A design the
    builder rejects (e.g. a radix too small) is a row with status
    ``infeasible`` and the reason, not an error of the sweep.
    """
    t0 = time.perf_counter()
    var, scen, seed = task["variant"], task["scenario"], int(task["seed"])
    row = {c: None for c in COLUMNS}
    row.update({"id": task["id"], "variant": task["variant_name"], "scenario": scenario_label(scen), "seed": seed})
    for k in VARIANT_KEYS:
        v = var.get(k)
        row[k] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
    try:
        cluster, data = apply_variant(task["base_data"], var, task["base_dir"])
        from topo.model.fabric import build
        fkey = _blob_key("fabric", {k: v for k, v in data.items() if k not in ("jobs", "transport", "goals", "failure_rates", "traffic", "costs")}, task["base_dir"])
        fabric = _cached(fkey, lambda: build(cluster))
    except SpecError as e:
        row.update(status="infeasible", message="; ".join(f"{p}: {m}" for p, m in e.errors)[:500],
                   seconds=round(time.perf_counter() - t0, 4))
        return row
    from topo.routing.describe import bill_of_materials, bisection_gbps
    bom = bill_of_materials(fabric, cluster)["totals"]
    n_acc = int(fabric.ep_is_accel.sum())
    server_kw = float(fabric.server_busy_kw.sum())
    bis = bisection_gbps(fabric)
    row.update(status="ok", message="", accelerators=n_acc, switches=int(sum(fabric.tier_switch_counts)),
               network_cost_usd=round(bom["network_cost_usd"], 2), network_kw=round(bom["network_kw"], 4),
               total_kw=round(bom["network_kw"] + server_kw, 4), bisection_gbps=bis,
               bisection_per_accelerator_gbps=(bis * 2 / max(n_acc, 1)) if bis is not None else None)
    try:
        _pipeline(row, cluster, fabric, var, scen, seed)
    except TopoError as e:  # a placement or routing that finds nothing usable is a result, not a crash
        row.update(status="failed", message=str(e).replace("\n", " ")[:500])
    row["seconds"] = round(time.perf_counter() - t0, 4)
    return row


def _pipeline(row: dict, cluster, fabric, var: dict, scen, seed: int) -> None:
    """Place, route and measure one variant under one scenario; fills ``row``."""
    placement, note = _placement(cluster, fabric, var.get("placement", "in_order"), seed)
    row["placement_note"] = note
    # a queue larger than the design's free capacity: the placed jobs are measured, the others named
    left = [j for j in cluster.file.jobs if j.name not in placement]
    row["unplaced"] = json.dumps([j.name for j in left]) if left else ""
    row["unplaced_accelerators"] = sum(j.accelerators for j in left)
    from topo.study import failures as F
    ctx = F._context(cluster, fabric, placement)
    model = {"roce": "roce-hash", "uec": "uec-spray", "ideal": "fluid"}[cluster.file.transport.protocol]
    row["routing_model"] = model
    routed = F._routing_available() and bool(ctx.job_names)
    if routed:
        from topo.study.failures import Traffic
        ctx.traffic = Traffic(ctx, seed=seed, models=(model,))
    links, down = _scenario_effect(ctx, scen, seed)
    if links is not None:
        cap = F._capacity_lost(ctx, links, -1)
        row["lost_endpoint_leaf"] = cap.get("endpoint-leaf")
        row["lost_leaf_spine"] = cap.get("leaf-spine")
        row["lost_spine_super"] = cap.get("spine-super")
        row["capacity_lost_frac"] = F._set_score(ctx, links)[0]
    else:
        row["message"] = f"the fabric has no {scenario_label(scen)} to fail"
    if routed:
        base_ct = ctx.traffic.healthy_completion(model)
        if links is not None:
            imp = ctx.traffic.impact(links, np.union1d(down, F._isolated(ctx, links)))
            sl = [x for x in imp["slowdown"][model].values()]
            finite = [x for x in sl if x is not None]
            row["slowdown_max"] = (max(finite) if finite else 1.0) if len(finite) == len(sl) else None
            row["unreachable_gbps"] = imp["unreachable_gbps"]
            row["jobs_affected"] = len(imp["jobs"])
            cts = [base_ct[j] * (imp["slowdown"][model][j] if imp["slowdown"][model][j] is not None else math.inf)
                   for j in base_ct]
            ct = max(cts) if cts else None
            row["completion_time_s"] = ct if ct is not None and math.isfinite(ct) else None
        else:
            row["completion_time_s"] = max(base_ct.values()) if base_ct else None
    else:
        row["message"] = (row["message"] + "; " if row["message"] else "") + "routing engine not available: no completion time"
    exp = F.expected_loss(ctx, cluster.file.failure_rates)
    if exp and sum(exp["rates"].values()) > 0:
        row["expected_lost_frac"] = exp["capacity_lost_gbps"] / float(ctx.tier_total.sum())


def _placement(cluster, fabric, policy: str, seed: int):
    """(placement, note): ``optimized`` runs topo.solve.placement (CP-SAT, one worker); anything else places
    in order the jobs that fit (topo.traffic.fit_in_order). Jobs absent from the placement are unplaced."""
    if not cluster.file.jobs:
        return {}, "no jobs"
    if policy == "optimized":
        from topo.solve.placement import place
        res = place(cluster, fabric, seed=seed, workers=1)
        return {k: np.asarray(v, np.int64) for k, v in res.assignment.items()}, "topo.solve.placement"
    return _in_order(cluster, fabric)


def _in_order(cluster, fabric):
    from topo.traffic.demand import fit_in_order
    placed, left = fit_in_order(cluster, fabric)
    return ({k: np.asarray(v, np.int64) for k, v in placed.items()},
            "in-order placement" + (" of the jobs that fit, by priority" if left else ""))


def _scenario_effect(ctx, scen, seed):
    """(failed physical links, endpoints down) of a scenario; (None, None) when nothing of that kind exists."""
    from topo.study import failures as F
    f = ctx.fabric
    empty = np.zeros(0, np.int64)
    if scen == "none":
        return empty, empty
    if isinstance(scen, dict):
        kinds, pool, weight = F._k_pool(ctx, None)
        rng = np.random.default_rng(seed)
        k = min(int(scen["k"]), pool.shape[0])
        # the worst of `samples` random k-sets (by capacity lost)
        best, best_links = -1.0, empty
        for _ in range(int(scen.get("samples", 100))):
            s = np.sort(rng.choice(pool.shape[0], size=k, replace=False))
            links = F._set_links(ctx, kinds, pool[s])
            score = F._set_score(ctx, links)[0]
            if score > best:
                best, best_links = score, links
        return best_links, empty
    tiers = {"leaf": 1, "spine": 2, "super-spine": 3}
    if scen in tiers:
        ids = np.flatnonzero(f.node_tier == tiers[scen])
        if ids.size == 0:
            return None, None
        links, down, _ = F._effect(ctx, "switch", int(ids[0]))
        return links, down
    if scen == "uplink":  # the first leaf-to-spine link (one of its bundle)
        up = np.flatnonzero(ctx.phys_tier == 1)
        if up.size == 0:
            return None, None
        return up[:1].astype(np.int64), empty
    kind = scen
    cands = F._candidates(ctx)[kind]
    if cands.size == 0:
        return None, None
    links, down, dom = F._effect(ctx, kind, int(cands[0]))
    return links, down


# --- driver -------------------------------------------------------------------------------
def run_sweep(sweep_path, out_dir, *, scheduler: Optional[str] = None, workers: Optional[int] = None,
              force: bool = False, connect_timeout_s: float = 10.0, progress=None) -> dict:
    """Run (or resume) a sweep; write one JSON per result, then the table and report.

    Results already present in ``out_dir/results/<id>.json`` are skipped
    (resume) unless ``force``. Each result file is written atomically as soon as
    its task finishes, so an interrupted sweep loses only running tasks.
    Returns ``{"rows": [...], "ran": n, "skipped": n, "files": [...]}``.
    """
    from topo.core.atomic import write_text_atomic
    from topo.study.executor import as_completed, n_workers, open_executor
    plan = load_sweep(sweep_path)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SpecError([("-o", f"{out} exists and is not a directory")])
    res_dir = out / "results"
    manifest = {"version": SWEEP_VERSION, "name": plan["name"], "base": plan["base_path"], "seed": plan["seed"]}
    man_path = out / "sweep.json"
    if man_path.exists() and not force:
        try:
            old = json.loads(man_path.read_text())
        except (OSError, ValueError):
            old = None
        if not old or old.get("name") != manifest["name"] or old.get("base") != manifest["base"]:
            raise SpecError([("-o", f"{out} holds results of another sweep; choose another -o or pass --force")])
    elif out.exists() and any(out.iterdir()) and not man_path.exists() and not force:
        raise SpecError([("-o", f"{out} is not empty and holds no sweep; choose another -o or pass --force")])
    res_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(man_path, json.dumps(manifest, indent=2) + "\n")
    done = {} if force else _read_results(res_dir)
    todo = [t for t in plan["tasks"] if t["id"] not in done]
    skipped = len(plan["tasks"]) - len(todo)
    if todo:
        with open_executor(workers=workers, scheduler=scheduler, connect_timeout_s=connect_timeout_s) as ex:
            # small tasks go in batches (about 4 per worker, at most 32 variants each) so that
            # per-task overhead, large on a Dask cluster, does not dominate; results are still
            # written one file per variant as each batch returns
            size = max(1, min(32, -(-len(todo) // (4 * n_workers(ex)))))
            futs = [ex.submit(run_batch, {"base_data": plan["base_data"], "base_dir": plan["base_dir"],
                                          "tasks": todo[i:i + size]})
                    for i in range(0, len(todo), size)]
            n = 0
            for fut in as_completed(futs):
                for row in fut.result():
                    write_text_atomic(res_dir / f"{row['id']}.json", json.dumps(row, sort_keys=True, default=_jd) + "\n")
                    done[row["id"]] = row
                    n += 1
                    if progress:
                        progress(n, len(todo), row)
    rows = [done[t["id"]] for t in plan["tasks"] if t["id"] in done]
    files = write_outputs(rows, out, plan["name"])
    return {"rows": rows, "ran": len(todo), "skipped": skipped, "files": [str(f) for f in files]}


def _jd(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)


def _read_results(res_dir: Path) -> dict:
    out = {}
    for p in sorted(res_dir.glob("*.json")):
        try:
            row = json.loads(p.read_text())
        except (OSError, ValueError):
            continue  # never produced by an atomic write; recomputed
        if isinstance(row, dict) and row.get("id") == p.stem:
            out[p.stem] = row
    return out


# --- outputs ------------------------------------------------------------------------------
def pareto_front(rows: list[dict], keys=("network_cost_usd", "total_kw", "completion_time_s"),
                 healthy_only: bool = False) -> list[int]:
    """Indices of rows not dominated in all of ``keys`` (smaller is better).

    Rows missing a key are left out; with ``healthy_only`` only rows of the
    ``none`` scenario compete (when there are any). A design that leaves jobs
    unplaced runs less work, so it competes only when no design places every
    job (then those with the fewest unplaced accelerators do). A row is dominated when
    another is no worse in every key and better in one. Ties are all kept.
    """
    use_healthy = healthy_only and any(r.get("scenario") == "none" for r in rows)
    ok = [i for i, r in enumerate(rows)
          if r.get("status") == "ok" and all(r.get(k) is not None for k in keys)
          and (not use_healthy or r.get("scenario") == "none")]
    least = min((rows[i].get("unplaced_accelerators") or 0 for i in ok), default=0)
    pts = [(i, tuple(rows[i][k] for k in keys)) for i in ok if (rows[i].get("unplaced_accelerators") or 0) == least]
    front = []
    for i, a in pts:
        dominated = any(all(bj <= aj for aj, bj in zip(a, b)) and any(bj < aj for aj, bj in zip(a, b))
                        for j, b in pts if j != i)
        if not dominated:
            front.append(i)
    return front


def table_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS})
    return buf.getvalue()


def write_outputs(rows: list[dict], out: Path, name: str) -> list[Path]:
    """results.csv, results.parquet (with pyarrow), report.md and report.html, each atomic."""
    from topo.core.atomic import write_bytes_atomic, write_text_atomic
    files = [write_text_atomic(out / "results.csv", table_csv(rows))]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pa = None
    if pa is not None:
        cols = {}
        for c in COLUMNS:
            vals = [r.get(c) for r in rows]
            if any(isinstance(v, str) for v in vals):
                vals = [None if v is None else str(v) for v in vals]
            elif any(isinstance(v, float) for v in vals):
                vals = [None if v is None else float(v) for v in vals]
            cols[c] = vals
        buf = pa.BufferOutputStream()
        pq.write_table(pa.table(cols), buf)
        files.append(write_bytes_atomic(out / "results.parquet", buf.getvalue().to_pybytes()))
    front = pareto_front(rows, healthy_only=True)
    files.append(write_text_atomic(out / "report.md", report_md(rows, front, name)))
    files.append(write_text_atomic(out / "report.html", report_html(rows, front, name)))
    return files


_REPORT_COLS = ["variant", "scenario", "status", "network_cost_usd", "total_kw", "completion_time_s",
                "slowdown_max", "capacity_lost_frac", "placement_note", "unplaced"]
# report headers that say what a figure is against (the column names in results.* stay as they are)
_REPORT_HEADS = {"slowdown_max": "slowdown_max (worst job, vs the same variant healthy; not vs ideal)"}


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"
    return str(v)


def report_md(rows, front, name) -> str:
    ok = sum(1 for r in rows if r.get("status") == "ok")
    short = sum(1 for r in rows if r.get("unplaced"))
    lines = [f"# Sweep {name}", "", f"{len(rows)} results ({ok} ok, {len(rows) - ok} infeasible)."
             + (f" {short} leave jobs unplaced (column unplaced); their figures are of the placed jobs." if short else ""), "",
             "## Pareto front of the healthy designs (network cost, total power, completion time; smaller is better)", ""]
    if not front:
        lines.append("No result has all three figures (completion time needs the routing engine).")
    lines += _md_table([rows[i] for i in front]) if front else []
    lines += ["", "## All results", ""] + _md_table(rows)
    return "\n".join(lines) + "\n"


def _md_table(rows) -> list[str]:
    head = "| " + " | ".join(_REPORT_HEADS.get(c, c) for c in _REPORT_COLS) + " |"
    sep = "|" + "---|" * len(_REPORT_COLS)
    body = ["| " + " | ".join(_fmt(r.get(c)).replace("|", "\\|") for c in _REPORT_COLS) + " |" for r in rows]
    return [head, sep, *body]


def report_html(rows, front, name) -> str:
    e = html.escape
    def table(rs):
        h = "".join(f"<th>{e(_REPORT_HEADS.get(c, c))}</th>" for c in _REPORT_COLS)
        b = "".join("<tr>" + "".join(f"<td>{e(_fmt(r.get(c)))}</td>" for c in _REPORT_COLS) + "</tr>" for r in rs)
        return f"<table><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>"
    ok = sum(1 for r in rows if r.get("status") == "ok")
    short = sum(1 for r in rows if r.get("unplaced"))
    front_html = table([rows[i] for i in front]) if front else \
        "<p>No result has all three figures (completion time needs the routing engine).</p>"
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Sweep " + e(name) + "</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#eee}</style></head><body>"
            f"<h1>Sweep {e(name)}</h1><p>{len(rows)} results ({ok} ok, {len(rows) - ok} infeasible)."
            + (f" {short} leave jobs unplaced (column unplaced); their figures are of the placed jobs." if short else "")
            + "</p>"
            "<h2 id='pareto'>Pareto front of the healthy designs (network cost, total power, completion time; smaller is better)</h2>"
            f"{front_html}<h2 id='all'>All results</h2>{table(rows)}</body></html>\n")
