"""`topo optimize`: the whole pipeline, from a cluster file to a plan.

Owns the order of the stages and nothing else: validate -> build -> place ->
route -> size the link budget (lowering its target until no job is more than
goals.max_job_slowdown slower under the cluster's own transport model) ->
rebuild and route again -> failure headroom -> plan. Each stage is a library call of its own module; this module only
wires them together, reports progress and assembles the plan dict.
"""
from __future__ import annotations

import json
import time
from contextlib import nullcontext
from typing import Callable, Optional

from .fabric import build
from .spec import Cluster

STAGES = ("build", "place", "route", "budget", "reroute", "failures")


class _Progress:
    """Stage progress through rich on a terminal; silent otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._p = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
            self._p = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                               transient=False)
            self._p.__enter__()
        return self

    def stage(self, text: str):
        if self._p is None:
            return nullcontext()
        p = self._p
        tid = p.add_task(text, total=None)

        class _Ctx:
            def __enter__(s):
                return s

            def __exit__(s, *exc):
                p.update(tid, total=1, completed=1, description=text + (" (failed)" if exc[0] else ""))
        return _Ctx()

    def __exit__(self, *exc):
        if self._p is not None:
            self._p.__exit__(*exc)


def optimize(cluster: Cluster, *, time_limit: Optional[float] = None, seed: Optional[int] = None,
             workers: Optional[int] = None, failures: bool = True, progress: bool = False,
             on_stage: Optional[Callable[[str, float], None]] = None) -> dict:
    """Run the pipeline and return the plan (a JSON-able dict, see topo.plan).

    ``time_limit`` bounds each solver (placement, budget) separately; ``seed``
    and ``workers`` go to both, and ``workers`` also to the failure sweep (forked
    processes; its results do not depend on them). With one worker and a fixed
    seed the result is repeatable on one machine and OR-Tools version.
    """
    from .linkbudget import budget_for_transport as size_budget
    from .describe import describe
    from .placement import place
    from .plan import new_plan
    from .traffic import in_order_placement

    g = cluster.file.goals
    seed = g.seed if seed is None else seed
    workers = g.workers if workers is None else workers
    time_limit = g.time_limit_s if time_limit is None else time_limit
    timings: dict[str, float] = {}

    def timed(name):
        class _T:
            def __enter__(s):
                s.t = time.perf_counter()

            def __exit__(s, *exc):
                timings[name] = round(time.perf_counter() - s.t, 3)
                if on_stage is not None and not exc[0]:
                    on_stage(name, timings[name])
        return _T()

    with _Progress(progress) as pr:
        with pr.stage("building the fabric"), timed("build"):
            fabric = build(cluster)
            desc_before = describe(fabric, cluster)
        with pr.stage("placing jobs (CP-SAT)"), timed("place"):
            placement = place(cluster, fabric, time_limit=time_limit, seed=seed, workers=workers)
        with pr.stage("routing traffic"), timed("route"):
            in_order = in_order_placement(cluster, fabric)
            before = _metrics(cluster, fabric, in_order, seed)
            placed = _metrics(cluster, fabric, placement.assignment, seed)
        with pr.stage("sizing the link budget"), timed("budget"):
            base_times = {j["name"]: (j["time_s"], j.get("ideal_s")) for j in placed.get("jobs", []) if j.get("time_s")}
            bud = size_budget(cluster, fabric, placement=placement.assignment, time_limit=time_limit,
                              seed=seed, workers=workers, baseline_times=base_times)
        cluster_after = bud.cluster_after
        if isinstance(cluster_after, dict):
            from .spec import from_dict
            cluster_after = from_dict(cluster_after, source="link budget", base_dir=cluster.base_dir)
        with pr.stage("routing on the chosen fabric"), timed("reroute"):
            fabric_after = build(cluster_after)
            desc_after = describe(fabric_after, cluster_after)
            after = _metrics(cluster_after, fabric_after, placement.assignment, seed)
        fail = None
        if failures:
            from .failures import analyze_failures
            with pr.stage("failure headroom"), timed("failures"):
                # worker processes for the failure sweep too (its results do not depend on them)
                fail = analyze_failures(cluster_after, fabric_after, placement=placement.assignment,
                                        single=True, seed=seed, workers=workers)

    return new_plan(
        seed=seed, workers=workers, time_limit_s=time_limit,
        cluster_name=cluster.name,
        cluster_file=cluster.file.model_dump(mode="json"),
        cluster_file_after=cluster_after.file.model_dump(mode="json"),
        describe_before=desc_before, describe_after=desc_after,
        placement=placement, budget=bud,
        metrics_before=before, metrics_placed=placed, metrics_after=after,
        failures=fail,
        solver={"placement": {k: getattr(placement, k, None) for k in ("status", "objective", "bound", "gap", "wall_s")},
                "budget": bud.to_dict().get("solver", {})},
        timings_s=timings,
    )


def pod_matrix_gbps(fabric, demands) -> tuple[str, list]:
    """Offered scale-out Gb/s between pods (or between leaves when there is one pod).

    Flows inside a scale-up domain never reach the fabric and are left out.
    Returns the unit ("pod" or "leaf") and the square matrix as nested lists.
    """
    import numpy as np
    if fabric.pods > 1:
        unit, key = "pod", np.asarray(fabric.ep_pod(), np.int64)
    else:
        leaf = np.asarray(fabric.ep_leaf(), np.int64)
        unit, key = "leaf", np.unique(leaf, return_inverse=True)[1]
    n = int(key.max()) + 1 if key.size else 1
    src, dst = np.asarray(demands.src), np.asarray(demands.dst)
    dom = np.asarray(fabric.ep_domain)
    out = ~((dom[src] >= 0) & (dom[src] == dom[dst])) & (src != dst)
    m = np.bincount(key[src[out]] * n + key[dst[out]], weights=np.asarray(demands.rate_gbps)[out],
                    minlength=n * n).reshape(n, n)
    return unit, np.round(m, 6).tolist()


def _metrics(cluster, fabric, assignment, seed) -> dict:
    """Routed metrics of one (fabric, placement) plus the per-link and pod data the report draws."""
    import numpy as np
    from .routing import analyze
    from .traffic import job_demands
    a = analyze(cluster, fabric, placement=assignment, seed=seed)
    d = dict(a.to_dict())
    util = np.asarray(a.utilization, dtype=np.float64)
    d["link_util"] = [float(f"{x:.6g}") for x in np.nan_to_num(util).tolist()]
    unit, m = pod_matrix_gbps(fabric, job_demands(cluster, fabric, assignment))
    d["pod_matrix_unit"] = unit
    d["pod_matrix_gbps"] = m
    return d


def render_outputs(plan: dict, *, fabric_before=None, fabric_after=None) -> dict:
    """Every file of an optimize run: {relative path: text or bytes or writer}.

    plan.json, report.html, report.md with its PNG figures, and every export
    format under exports/ (formats that do not apply are listed in
    exports/SKIPPED.txt with the reason).
    """
    from .exports import render
    from .plan import dumps, plan_cluster
    from .report import render_html, render_markdown
    if fabric_after is None:
        fabric_after = build(plan_cluster(plan, after=True))
    if fabric_before is None:
        fabric_before = build(plan_cluster(plan, after=False))
    text = dumps(plan)
    # the report is a function of the plan as written, so `topo report plan.json` gives the same bytes
    plan = json.loads(text)
    files: dict = {"plan.json": text}
    files["report.html"] = render_html(plan, fabric_before=fabric_before, fabric_after=fabric_after)
    md, images = render_markdown(plan, fabric_before=fabric_before, fabric_after=fabric_after)
    files["report.md"] = md
    files.update(images)
    cluster_after = plan_cluster(plan, after=True)
    for name, v in render("all", fabric_after, plan, cluster_after).items():
        files[f"exports/{name}"] = v
    return files


def write_outputs(files: dict, out_dir, force: bool = False) -> list:
    """Write rendered outputs into `out_dir` atomically (all or nothing)."""
    from .atomic import OutputDir
    written = []
    with OutputDir(out_dir, force=force) as out:
        for name in sorted(files):
            v = files[name]
            if callable(v):
                v(out.path(name))
            elif isinstance(v, bytes):
                out.write_bytes(name, v)
            else:
                out.write_text(name, v)
            written.append(name)
    return written


def save(plan: dict, out_dir, force: bool = False) -> list:
    """Write what `topo optimize` writes for a plan (plan.json, report.html, report.md and
    its figures, exports/) into ``out_dir``, atomically: all or nothing, an existing directory
    replaced only with ``force``. Returns the written paths, relative to ``out_dir``."""
    return write_outputs(render_outputs(plan), out_dir, force=force)
