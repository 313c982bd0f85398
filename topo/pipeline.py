"""`topo optimize`: the whole pipeline, from a cluster file to a plan.

Owns the order of the stages and nothing else: validate -> build -> place ->
route -> size the link budget (lowering its target until no job is more than
goals.max_job_slowdown slower under the cluster's own transport model) ->
rebuild and route again -> failure headroom -> plan. Each stage is a library call of its own module; this module only
wires them together, reports progress and assembles the plan dict.

A queue larger than the free capacity is a normal state: every stage continues with the
placed jobs and the plan names the others (``placement.unplaced``; ``unplaced`` in the metrics
and the budget when there are any). The in-order placement of the jobs that fit and the record
of the jobs left out live beside the in-order placement in :mod:`topo.traffic.demand`
(:func:`~topo.traffic.fit_in_order`, :func:`~topo.traffic.unplaced_jobs`); this module reads a
placement file written by ``topo place -o`` (:func:`read_placement`).
"""
from __future__ import annotations

import json
import time
from contextlib import nullcontext
from typing import Callable, Optional

from topo.model.fabric import build
from topo.model.spec import Cluster
from topo.traffic.demand import fit_in_order, free_accelerators, unplaced_jobs

STAGES = ("build", "place", "route", "budget", "reroute", "failures", "goodput")


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
             on_stage: Optional[Callable[[str, float], None]] = None, objective: Optional[str] = None,
             design=None) -> dict:
    """Run the pipeline and return the plan (a JSON-able dict, see topo.io.plan).

    ``objective`` is what the link budget minimises (cost, power or balanced;
    default ``goals.objective``).

    ``time_limit`` bounds each solver (placement, budget) separately; ``seed``
    and ``workers`` go to both, and ``workers`` also to the failure sweep (forked
    processes; its results do not depend on them). With one worker and a fixed
    seed the result is repeatable on one machine and OR-Tools version. Jobs the
    placement cannot place are left out of every later stage and named in the plan.

    ``design`` (True, or a dict of :func:`topo.solve.design.design` options: ``families``,
    ``switches``, ``tiers`` (default 2 and 3: one tier has no link budget, so it is refused
    here), ``max_slowdown``, ``survive``, ``prune``) runs the design search first
    (:func:`design_step`) and carries the chosen candidate's cluster file (its fabric, before
    its budget) through every later stage; the plan's ``cluster_file`` is then that file, and its
    ``design`` section the search (:meth:`DesignResult.to_dict` without each candidate's
    ``cluster_after``) with ``fabric_given``, the file's own fabric section.
    """
    from topo.solve.linkbudget import budget_for_transport as size_budget
    from topo.routing.describe import describe
    from topo.io.plan import new_plan
    from topo.model.spec import run_settings
    seed, workers, time_limit = run_settings(cluster, seed, workers, time_limit)
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    timed = _stage_timer(timings, cpu, on_stage)

    design_section = None
    with _Progress(progress) as pr:
        if design:
            with pr.stage("design search (CP-SAT per candidate)"), timed("design"):
                cluster, design_section = design_step(cluster, design, seed=seed, workers=workers,
                                                      time_limit=time_limit, objective=objective)
        with pr.stage("building the fabric"), timed("build"):
            fabric = build(cluster)
            desc_before = describe(fabric, cluster)
        with pr.stage("placing jobs (CP-SAT)"), timed("place"):
            placement, served = _place_all(cluster, fabric, time_limit=time_limit, seed=seed, workers=workers)
        with pr.stage("routing traffic"), timed("route"):
            # a queue larger than the free capacity is normal: each placement routes the jobs it
            # placed, and the metrics name the jobs it left out
            in_order, in_order_left = fit_in_order(cluster, fabric)
            before = _metrics(cluster, fabric, in_order, seed, in_order_left)
            left = unplaced_jobs(cluster, fabric, placement.assignment, placement.unplaced)
            placed = _metrics(cluster, fabric, placement.assignment, seed, left)
        with pr.stage("sizing the link budget"), timed("budget"):
            base_times = {j["name"]: (j["time_s"], j.get("ideal_s")) for j in placed.get("jobs", []) if j.get("time_s")}
            bud = size_budget(cluster, fabric, placement=placement.assignment, time_limit=time_limit,
                              seed=seed, workers=workers, baseline_times=base_times,
                              objective=objective or cluster.file.goals.objective,
                              max_oversubscription=cluster.file.goals.max_oversubscription,
                              # the serving traffic at its stated request rates beside the jobs
                              **({"demands": _serving_place().budget_demands(cluster, fabric, placement.assignment,
                                                                          served["assignment"])} if served else {}))
        fe_budget, cluster_after = _front_end_step(cluster, fabric, served, bud.cluster_after, pr, timed, objective=objective,
                                                   time_limit=time_limit, seed=seed, workers=workers)
        if isinstance(cluster_after, dict):
            from topo.model.spec import from_dict
            cluster_after = from_dict(cluster_after, source="link budget", base_dir=cluster.base_dir)
        with pr.stage("routing on the chosen fabric"), timed("reroute"):
            fabric_after = build(cluster_after)
            desc_after = describe(fabric_after, cluster_after)
            after = _metrics(cluster_after, fabric_after, placement.assignment, seed, left)
            from topo.routing.collectives import collective_times, size_range
            from topo.core.jsonable import to_jsonable
            # collective time (alpha + beta) of the placed jobs on the chosen fabric, with its size curve
            colls = to_jsonable(collective_times(cluster_after, fabric_after, placement=placement.assignment,
                                                 seed=seed, sizes=size_range("1KiB..16GiB")))
        serving = None
        if served:   # the serving deployments on the chosen fabric
            with pr.stage("serving deployments"), timed("serving"):
                serving = _serving_place().summary(cluster_after, fabric_after, placement.assignment, seed=seed,
                                                placed=served)
        fail = gp = None
        if failures:
            from topo.study.failures import analyze_failures
            with pr.stage("failure headroom"), timed("failures"):
                # worker processes for the failure sweep too (its results do not depend on them)
                fail = analyze_failures(cluster_after, fabric_after, placement=placement.assignment,
                                        single=True, seed=seed, workers=workers,
                                        # the plan's serving replicas (the fabrics share their endpoints)
                                        serving_replicas=served["assignment"] if served else None)
            from topo.study.goodput import goodput
            with pr.stage("goodput under failures"), timed("goodput"):
                gp = goodput(cluster_after, fabric_after, placement=placement.assignment, failures=fail, seed=seed)

    return new_plan(
        seed=seed, workers=workers, time_limit_s=time_limit,
        cluster_name=cluster.name,
        cluster_file=cluster.file.model_dump(mode="json"),
        cluster_file_after=cluster_after.file.model_dump(mode="json"),
        describe_before=desc_before, describe_after=desc_after,
        placement=placement, budget=bud,
        metrics_before=before, metrics_placed=placed, metrics_after=after,
        failures=fail, collectives=colls, goodput=gp,
        solver={"placement": {k: getattr(placement, k, None) for k in ("status", "objective", "bound", "gap", "wall_s")},
                "budget": bud.to_dict().get("solver", {})},
        timings_s=timings, cpu_seconds=cpu,
        **({"serving": serving} if serving is not None else {}),
        **({"design": design_section} if design_section is not None else {}),
        # the agent tiers' flows on the front-end fabric: a section of its own
        **({"front_end": {**serving.pop("front_end"), **(fe_budget or {})}}
           if serving is not None and "front_end" in serving else {}),
    )


def _front_end_step(cluster, fabric, served, cluster_after, pr, timed, **opts) -> tuple:
    """With ``front_end`` and deployments: the front-end fabric's link budget for the agent traffic of the
    placed replicas (``served``) as a plan section, and the cluster file after both budgets (the back-end's
    ``cluster_after`` with the chosen front-end tiers); else (None, ``cluster_after``). A one-tier front-end,
    or agent tiers that send nothing, has no budget to size: the section says why."""
    if not served or cluster.file.front_end is None:
        return None, cluster_after
    with pr.stage("sizing the front-end link budget"), timed("front_end_budget"):
        return _front_end_budget_section(cluster, fabric, served, cluster_after, **opts)


def _front_end_budget_section(cluster, fabric, served, cluster_after, *, objective, time_limit, seed, workers) -> tuple:
    from topo.core.errors import SpecError
    sv = cluster.file.serving
    named = {n for t in sv.agent_tiers for n in t.deployments}
    if not any(d.name in named for d in sv.deployments):
        return {"budget": None, "budget_not_sized": "no agent tier sends to a deployment: no front-end traffic"}, \
            cluster_after
    try:
        r, section = front_end_budget(cluster, fabric, replicas=served["assignment"], objective=objective,
                                      time_limit=time_limit, seed=seed, workers=workers,
                                      max_oversubscription=cluster.file.goals.max_oversubscription)
    except SpecError as e:
        if [p for p, _ in e.errors] == ["front_end.fabric.tiers"]:
            return {"budget": None, "budget_not_sized": f"front_end.fabric.tiers: {e.errors[0][1]}"}, cluster_after
        raise
    d = r.to_dict()
    fe_after = d.pop("cluster_after")
    after = cluster_after if isinstance(cluster_after, dict) else cluster_after.file.model_dump(mode="json")
    after = {**after, "front_end": {**after["front_end"], "fabric": fe_after["fabric"]},
             "catalog": fe_after.get("catalog", after.get("catalog"))}
    d["front_end"] = section
    return {"budget": d}, after


def _stage_timer(timings: dict, cpu: dict, on_stage) -> Callable:
    """``timed(name)``: a context manager that records a stage's wall seconds in ``timings`` and its
    CPU seconds in ``cpu`` under ``name`` and reports a stage that ended without error to ``on_stage``."""
    def timed(name):
        class _T:
            def __enter__(s):
                s.t = time.perf_counter()
                s.c = _cpu_now()

            def __exit__(s, *exc):
                timings[name] = round(time.perf_counter() - s.t, 3)
                cpu[name] = round(_cpu_now() - s.c, 3)
                if on_stage is not None and not exc[0]:
                    on_stage(name, timings[name])
        return _T()
    return timed


def _cpu_now() -> float:
    """CPU seconds so far of this process (all its threads) and of the worker processes it has
    waited for (the failure sweep's): what a stage's CPU time is the difference of."""
    import resource
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def _serving_place():
    from topo.solve import serving_place
    return serving_place


def _place_all(cluster, fabric, *, time_limit, seed, workers):
    """The jobs placed by CP-SAT; the hot spares ``goals.spares`` asks for chosen around them, held
    back and counted busy; then the serving replicas by CP-SAT in what is left (on the fabric as
    given). Returns (the placement, the serving placement or None)."""
    from topo.solve.placement import place
    placement = place(cluster, fabric, time_limit=time_limit, seed=seed, workers=workers)
    if cluster.file.goals.spares is not None:
        from topo.solve.placement import hold_spares
        from topo.solve.spares import choose_spares
        sp = cluster.file.goals.spares
        placement = hold_spares(placement, cluster, fabric, choose_spares(
            cluster, fabric, placement.assignment, scope=sp.per, per_domain=sp.per_domain,
            time_limit=time_limit, seed=seed, workers=workers))
    served = None
    if cluster.file.serving.deployments:
        served = _serving_place().place_serving(cluster, fabric, placement.assignment, time_limit=time_limit,
                                                reserved=placement.reserved, seed=seed, workers=workers)
    return placement, served


DESIGN_OPTIONS = ("families", "switches", "tiers", "max_slowdown", "survive", "prune", "mixed_tiers", "tapers",
                  "scaleup")
# fabric fields a file may state that the design search would replace (a candidate's fabric is
# {family, planes, tiers: [{switch}]}, dual homing kept): stated, ``design`` is refused
_PINNED_FABRIC = ("k", "custom", "leaves_per_pod", "spines_per_pod", "pods", "super_spines")
_PINNED_TIER = ("ports", "line_cards", "ports_populated", "bundle", "partial_pod_bundle")


def design_pins(cluster) -> list[tuple[str, str]]:
    """The fabric fields of ``cluster``'s file that the design search would replace (path, why)."""
    f = cluster.file.fabric
    errs = []
    if f.family in ("fat_tree", "custom"):
        errs.append(("fabric.family", f"a {f.family} fabric is not a family the design search builds (clos, "
                                      "rail_optimized, rail_only); state one of those to search from it"))
    for k in _PINNED_FABRIC:
        if k in f.model_fields_set and getattr(f, k) is not None:
            errs.append((f"fabric.{k}", "stated, but the design search replaces the fabric's structure "
                                        "(the budget decides it per candidate); remove it to search"))
    for i, t in enumerate(f.tiers):
        for k in _PINNED_TIER:
            if k in t.model_fields_set and getattr(t, k) is not None:
                errs.append((f"fabric.tiers[{i}].{k}", "stated, but every candidate's tiers are only a catalog "
                                                       "switch model (the budget decides the rest); remove it to search"))
    return errs


def design_step(cluster, options, *, seed=None, workers=None, time_limit=None, objective=None):
    """Run the design search and return (the chosen candidate's cluster, the plan's design section).

    Refuses (SpecError naming the field) a file whose fabric states what the search replaces,
    unknown options (paths ``design.<name>``), and a search with no sized candidate."""
    from topo.core.errors import SpecError
    from topo.model.spec import from_dict
    from topo.solve.design import candidate_dict, design as search
    opts = {} if options is True else dict(options)
    bad = sorted(k for k in opts if k not in DESIGN_OPTIONS)
    if bad:
        raise SpecError([(f"design.{k}", f"not a design option (known: {', '.join(DESIGN_OPTIONS)})") for k in bad])
    opts["tiers"] = tuple(opts.get("tiers") or (2, 3))
    if 1 in opts["tiers"]:
        raise SpecError([("tiers", "one-tier candidates cannot go through optimize: its next stage sizes the "
                                   "chosen fabric's link budget, and one tier has no uplinks to budget (search "
                                   "them with topo design)")])
    pins = design_pins(cluster)
    if pins:
        raise SpecError(pins)
    if workers is not None and workers > 1:
        from topo.study.executor import open_executor
        ctx = open_executor(workers=workers)
    else:
        ctx = nullcontext(None)
    with ctx as ex:
        r = search(cluster, seed=seed, time_limit=time_limit, objective=objective, executor=ex, **opts)
    d = r.to_dict()
    if d["chosen"] is None:
        c = d["counts"]
        raise SpecError([("fabric", f"the design search sized no candidate to choose from ({c['candidates']} "
                                    f"candidates: {c['pruned_by_port_count']} pruned by port count, "
                                    f"{c['infeasible']} infeasible, {c['time_limit']} not sized within the time "
                                    f"limit, {c['too_slow']} too slow); see `topo design`")])
    cand = next(x for x in d["candidates"] if x["id"] == d["chosen"])
    file_dict = cluster.file.model_dump(mode="json")
    chosen = from_dict(candidate_dict(file_dict, cand), source=f"(design {cand['id']})",
                       base_dir=cluster.base_dir)
    for x in d["candidates"]:
        x.pop("cluster_after", None)
    d["fabric_given"] = file_dict.get("fabric")
    return chosen, d


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


# --- a placement file (`topo place -o`) --------------------------------------------------------
MAX_PLACEMENT_ERRORS = 50


class _Obj(dict):
    """A JSON object that remembers the keys it held more than once."""
    dups: tuple = ()


def _obj(pairs):
    d = _Obj()
    dups = []
    for k, v in pairs:
        if k in d:
            dups.append(k)
        d[k] = v
    d.dups = tuple(dups)
    return d


def _key(base: str, name) -> str:
    """The JSON path of member ``name`` of ``base`` ("" for the root), quoting names that
    are not plain words."""
    import re
    name = str(name)
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        return f"{base}.{name}" if base else name
    return f"{base}[{json.dumps(name)}]"


def _kind(x) -> str:
    if isinstance(x, dict):
        return "an object"
    return {list: "a list", str: "a string", bool: "a boolean", int: "an integer", float: "a number",
            type(None): "null"}.get(type(x), type(x).__name__)


def read_placement(path, cluster, fabric) -> dict:
    """The placement in a file written by ``topo place -o`` or in a plan written by ``topo optimize``
    (its ``placement``, the plan validated first), checked against the cluster:
    job name -> endpoint ids in rank order, in file order of the cluster's jobs.

    Uses ``assignment`` (job -> endpoint ids in rank order) when the file has it, else
    ``nodes`` (job -> node names; ranks fill the listed nodes' accelerators in the order
    listed, as a job's own ``nodes`` do in the in-order placement); when both are given they
    must agree. Checked: known jobs and nodes; no node listed twice (in one job or across
    jobs) and no accelerator twice; nodes that hold accelerators and are not in
    ``busy_nodes``; as many accelerators as the job has and, with ``nodes`` alone, as many
    nodes as those accelerators take. Rack power, pins and scale-up domains are not checked,
    so a placement made elsewhere (a scheduler's) can be analysed as it is. Jobs of the
    cluster file absent from the file are unplaced (see :func:`unplaced_jobs`).
    Raises SpecError naming the JSON path of every problem (exit code 2).
    """
    from topo.core.errors import SpecError
    data, src = _placement_data(path)
    errs: list[tuple[str, str]] = [(_key("", k), "key given twice") for k in data.dups]
    if "assignment" not in data and "nodes" not in data:
        raise SpecError(errs + [("(root)", "neither 'assignment' nor 'nodes': not a placement written by `topo place -o`")], src)
    jobs = {j.name: j for j in cluster.file.jobs}
    sv = _Servers(cluster, fabric)
    sec = _placement_sections(data, jobs, errs)
    owner_srv: dict[int, str] = {}
    by_nodes = _servers_by_nodes(sec.get("nodes", {}), sv, owner_srv, errs)
    owner_ep: dict[int, str] = {}
    out = _endpoints_by_assignment(sec, by_nodes, jobs, sv, owner_ep, errs)
    _fill_listed_nodes(sec, by_nodes, jobs, sv, owner_ep, out, errs)
    for name in sec.get("unplaced", {}):
        if name in sec.get("nodes", {}) or name in sec.get("assignment", {}):
            errs.append((_key("unplaced", name), "the job is also placed in this file"))
    if errs:
        if len(errs) > MAX_PLACEMENT_ERRORS:
            errs = errs[:MAX_PLACEMENT_ERRORS] + [("(file)", f"... and {len(errs) - MAX_PLACEMENT_ERRORS} more")]
        raise SpecError(errs, src)
    return {j.name: out[j.name] for j in cluster.file.jobs if j.name in out}


def _placement_data(path) -> tuple[_Obj, str]:
    """(the placement object to check, the file's name): the file itself, the placement of a plan
    (read as the typed plan), or a plan's placement section alone."""
    from pathlib import Path
    from topo.core.errors import SpecError
    from topo.core.inputs import read_text
    from topo.core.limits import MAX_PLAN_BYTES
    p = Path(path)
    src = str(p)
    # size, UTF-8 and NUL checks as for every input; parsed here so that a job given twice
    # is named by its path, and NaN/Infinity are refused like any other non-integer id
    text = read_text(p, "placement", limit=MAX_PLAN_BYTES, what="placement file")

    def constant(name):
        raise ValueError(f"{name} is not a number JSON allows")
    try:
        data = json.loads(text, object_pairs_hook=_obj, parse_constant=constant)
    except json.JSONDecodeError as e:
        raise SpecError([("(file)", f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}")], src)
    except RecursionError:
        raise SpecError([("(file)", "objects and lists nest too deep to read")], src)
    except ValueError as e:
        raise SpecError([("(file)", f"malformed JSON: {e}")], src)
    if not isinstance(data, dict):
        raise SpecError([("(root)", f"expected an object, as `topo place -o` writes, found {_kind(data)}")], src)
    if "plan_version" in data:   # a plan: its placement, once the plan itself is valid
        from topo.io.plan import read_plan
        pl = read_plan(p)[1].placement
        if "assignment" not in pl.model_fields_set:
            raise SpecError([("placement.assignment", "missing: the plan holds no placement")], src)
        # the plan's JSON has no key twice (read_plan refuses one), so its assignment is an _Obj without dups
        return _obj([("assignment", _obj(pl.assignment.items()))]), src
    if "assignment" not in data and "nodes" not in data and isinstance(data.get("placement"), dict):
        if not isinstance(data["placement"].get("assignment"), dict):  # a plan's placement section alone
            raise SpecError([("placement.assignment", "missing: the file's placement holds no assignment")], src)
        return _obj([("assignment", data["placement"]["assignment"])]), src
    return data, src


class _Servers:
    """The cluster's servers as a placement file is checked against them: accelerators of every
    server in local order (``acc_eps[lo[s]:lo[s + 1]]``), which are busy, and server names."""

    def __init__(self, cluster, fabric):
        import numpy as np
        self.fabric = fabric
        n_srv = int(fabric.n_servers)
        self.ep_server = ep_server = np.asarray(fabric.ep_server, np.int64)
        self.ep_acc = np.asarray(fabric.ep_is_accel, bool)
        acc_eps = np.flatnonzero(self.ep_acc)
        self.acc_eps = acc_eps = acc_eps[np.lexsort((np.asarray(fabric.ep_local)[acc_eps], ep_server[acc_eps]))]
        self.lo = np.searchsorted(ep_server[acc_eps], np.arange(n_srv + 1))
        self.acc_per = np.diff(self.lo)
        busy = ~free_accelerators(cluster, fabric)[acc_eps]  # per accelerator, in acc_eps order
        self.busy_srv = np.zeros(n_srv, bool)
        self.busy_srv[ep_server[acc_eps[busy]]] = True
        self.is_busy_ep = np.zeros(fabric.n_endpoints, bool)
        self.is_busy_ep[acc_eps[busy]] = True
        self.server_of = {fabric.server_name(i): i for i in range(n_srv)}
        self.naming = f" (nodes are named {fabric.server_name(0)}..{fabric.server_name(n_srv - 1)})" if n_srv else ""


def _placement_sections(data, jobs: dict, errs: list) -> dict[str, dict]:
    """``assignment``, ``nodes`` and ``unplaced`` of the file, each job -> value for the cluster's
    known jobs; a section of the wrong kind, a job given twice or an unknown job goes to ``errs``."""
    known = ", ".join(sorted(jobs)[:8]) + (" ..." if len(jobs) > 8 else "") if jobs else "none"
    sec: dict[str, dict] = {}
    for key in ("assignment", "nodes", "unplaced"):
        v = data.get(key)
        if key not in data or (v is None and key == "unplaced"):
            continue
        if not isinstance(v, dict):
            what = "reason" if key == "unplaced" else ("endpoint ids" if key == "assignment" else "node names")
            errs.append((key, f"expected an object of job name -> {what}, found {_kind(v)}"))
            continue
        errs += [(_key(key, k), "job given twice") for k in v.dups]
        errs += [(_key(key, k), f"unknown job {k!r}; the cluster file's jobs are {known}") for k in v if k not in jobs]
        sec[key] = {k: x for k, x in v.items() if k in jobs}
    return sec


def _servers_by_nodes(nodes: dict, sv: _Servers, owner_srv: dict, errs: list) -> dict:
    """``nodes``: job -> server ids, for the jobs whose every listed node is a free server holding
    accelerators and listed once (``owner_srv``: server -> where it was first listed)."""
    import numpy as np
    by_nodes: dict[str, np.ndarray] = {}
    for name, lst in nodes.items():
        base = _key("nodes", name)
        if not isinstance(lst, list):
            errs.append((base, f"expected a list of node names, found {_kind(lst)}"))
            continue
        ids, ok = [], True
        for k, n in enumerate(lst):
            here = f"{base}[{k}]"
            s = sv.server_of.get(n) if isinstance(n, str) else None
            if not isinstance(n, str):
                errs.append((here, f"expected a node name, found {_kind(n)}"))
            elif s is None:
                errs.append((here, f"unknown node {n!r}{sv.naming}"))
            elif s in owner_srv:
                errs.append((here, f"node {n!r} is listed twice (also at {owner_srv[s]})"))
            elif sv.acc_per[s] == 0:
                errs.append((here, f"node {n!r} has no accelerators"))
            elif sv.busy_srv[s]:
                errs.append((here, f"node {n!r} is busy (listed in the cluster file's busy_nodes)"))
            else:
                owner_srv[s] = here
                ids.append(s)
                continue
            if s is not None and s not in owner_srv:
                owner_srv[s] = here
            ok = False
        if ok:
            by_nodes[name] = np.asarray(ids, np.int64)
    return by_nodes


def _endpoints_by_assignment(sec: dict, by_nodes: dict, jobs: dict, sv: _Servers, owner_ep: dict, errs: list) -> dict:
    """``assignment``: job -> endpoint ids in rank order, for the jobs whose every id is a free
    accelerator listed once, as many as the job has, on the nodes the job's ``nodes`` list (when
    given). ``owner_ep``: endpoint -> where it was first listed."""
    import numpy as np
    fabric = sv.fabric
    out: dict[str, np.ndarray] = {}
    for name, lst in sec.get("assignment", {}).items():
        base = _key("assignment", name)
        need = jobs[name].accelerators
        if not isinstance(lst, list):
            errs.append((base, f"expected a list of endpoint ids, found {_kind(lst)}"))
            continue
        ok = True
        for k, e in enumerate(lst):
            here = f"{base}[{k}]"
            if not isinstance(e, int) or isinstance(e, bool):
                errs.append((here, f"expected an endpoint id (an integer), found {_kind(e)}"))
            elif not (0 <= e < fabric.n_endpoints and sv.ep_acc[e]):
                errs.append((here, f"{e} is not an accelerator of this cluster"))
            elif e in owner_ep:
                errs.append((here, f"accelerator {e} ({fabric.node_name(e)}) is listed twice (also at {owner_ep[e]})"))
            elif sv.is_busy_ep[e]:
                owner_ep[e] = here
                errs.append((here, f"accelerator {e} is on node {fabric.server_name(sv.ep_server[e])!r}, which is busy "
                                   "(listed in the cluster file's busy_nodes)"))
            else:
                owner_ep[e] = here
                continue
            ok = False
        if ok and len(lst) != need:
            errs.append((base, f"lists {len(lst)} accelerators; the job has {need}"))
            ok = False
        if not ok:
            continue
        eps = np.asarray(lst, np.int64)
        if name in sec.get("nodes", {}):
            if name not in by_nodes:
                continue  # its node list is wrong, reported above
            have = np.unique(sv.ep_server[eps])
            listed = by_nodes[name]
            extra, miss = np.setdiff1d(listed, have), np.setdiff1d(have, listed)
            if extra.size or miss.size:
                errs.append((_key("nodes", name),
                             f"lists node {fabric.server_name(extra[0])!r}, which holds none of the job's accelerators "
                             f"in {base}" if extra.size else
                             f"leaves out node {fabric.server_name(miss[0])!r}, which holds accelerators of the job "
                             f"in {base}"))
                continue
        out[name] = eps
    return out


def _fill_listed_nodes(sec: dict, by_nodes: dict, jobs: dict, sv: _Servers, owner_ep: dict, out: dict,
                       errs: list) -> None:
    """``nodes`` alone: ranks fill the listed nodes' accelerators in order, into ``out``; the
    nodes must hold the job's accelerators with none to spare and none listed elsewhere."""
    import numpy as np
    per = np.unique(sv.acc_per[sv.acc_per > 0])
    for name, srv in by_nodes.items():
        if name in sec.get("assignment", {}):
            continue
        need = jobs[name].accelerators
        cum = np.cumsum(sv.acc_per[srv])
        total = int(cum[-1]) if cum.size else 0
        take = int(np.searchsorted(cum, need)) + 1 if total >= need else None
        if take != srv.size:
            at = f" at {int(per[0])} per node" if per.size == 1 else ""
            errs.append((_key("nodes", name),
                         f"lists {srv.size} node(s) holding {total} accelerators; the job needs {need}" if take is None
                         else f"lists {srv.size} node(s); the job's {need} accelerators{at} take {take}"))
            continue
        eps = np.concatenate([sv.acc_eps[sv.lo[s]:sv.lo[s + 1]] for s in srv])[:need]
        clash = [e for e in eps.tolist() if e in owner_ep]
        if clash:
            errs.append((_key("nodes", name), f"accelerator {clash[0]} is also at {owner_ep[clash[0]]}"))
            continue
        out[name] = eps


def _metrics(cluster, fabric, assignment, seed, unplaced=None) -> dict:
    """Routed metrics of one (fabric, placement) plus the per-link and pod data the report draws,
    and (when there are any) the jobs the placement left out, as :func:`unplaced_jobs` gives them."""
    import numpy as np
    from topo.routing.engine import analyze
    from topo.traffic.demand import job_demands
    a = analyze(cluster, fabric, placement=assignment, seed=seed)
    d = dict(a.to_dict())
    util = np.asarray(a.utilization, dtype=np.float64)
    # 6 significant digits (each distinct value formatted once)
    d["link_util"] = _six_digits(util).tolist()
    unit, m = pod_matrix_gbps(fabric, job_demands(cluster, fabric, assignment))
    d["pod_matrix_unit"] = unit
    d["pod_matrix_gbps"] = m
    if unplaced:  # only when there are any: plans of queues that fit keep their layout
        d["unplaced"] = dict(unplaced)
    return d


def _six_digits(values):
    """``values`` (NaN as 0) rounded to 6 significant digits as ``float(f"{x:.6g}")`` gives them, each
    distinct value (by bit pattern, so -0.0 stays -0.0) formatted once: most links share a handful of
    values. The idle links' +0.0 (usually most of them) is left out of the sort: it stays 0.0."""
    import numpy as np
    bits = np.ascontiguousarray(np.nan_to_num(np.asarray(values, np.float64)), np.float64).view(np.int64).ravel()
    out = np.zeros(bits.shape[0], np.float64)
    nz = np.flatnonzero(bits != 0)
    u, inv = np.unique(bits[nz], return_inverse=True)
    out[nz] = np.asarray([float(f"{x:.6g}") for x in u.view(np.float64).tolist()], np.float64)[inv.ravel()]
    return out


def render_outputs(plan: dict, *, fabric_before=None, fabric_after=None) -> dict:
    """Every file of an optimize run: {relative path: text or bytes or writer}.

    plan.json, report.html, report.md with its PNG figures, and every export
    format under exports/ (formats that do not apply are listed in
    exports/SKIPPED.txt with the reason).
    """
    from topo.io.exports import render
    from topo.io.plan import dumps, plan_cluster
    from topo.io.report import render_report
    if fabric_after is None:
        fabric_after = build(plan_cluster(plan, after=True))
    if fabric_before is None:
        fabric_before = build(plan_cluster(plan, after=False))
    text = dumps(plan)
    # the report is a function of the plan as written, so `topo report plan.json` gives the same bytes
    plan = json.loads(text)
    files: dict = {"plan.json": text}
    files["report.html"], md, images = render_report(plan, fabric_before=fabric_before, fabric_after=fabric_after)
    files["report.md"] = md
    files.update(images)
    cluster_after = plan_cluster(plan, after=True)
    for name, v in render("all", fabric_after, plan, cluster_after).items():
        files[f"exports/{name}"] = v
    return files


def write_outputs(files: dict, out_dir, force: bool = False) -> list:
    """Write rendered outputs into `out_dir` atomically (all or nothing)."""
    from topo.core.atomic import OutputDir
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


# --- the front-end fabric's link budget ------------------------------------------------------------
def _front_end_path(path: str) -> str:
    """A path the link budget names on the derived front-end cluster, as a path in the cluster file:
    its ``fabric`` is ``front_end.fabric``; goals, costs, the catalog and the options are the file's own."""
    return "front_end." + path if path == "fabric" or path.startswith(("fabric.", "fabric[")) else path


def front_end_budget(cluster, fabric=None, *, placement: Optional[dict] = None, replicas: Optional[dict] = None,
                     objective: Optional[str] = None, survive: Optional[str] = None,
                     target_util: Optional[float] = None, time_limit: Optional[float] = None,
                     seed: Optional[int] = None, workers: Optional[int] = None, switch_choice: str = "fixed",
                     max_oversubscription=None, reserved=()) -> tuple:
    """The link budget of the front-end fabric (``front_end`` in the cluster file): the same model,
    solve and independent check as the back-end's (:func:`topo.solve.linkbudget.budget`), on the
    derived front-end cluster (:func:`topo.model.frontend_build.for_fabric`) with its goals (the
    file's), carrying the agent tiers' request and response flows
    (:func:`topo.traffic.serving.agent_traffic`) of every deployment at its stated
    ``load.requests_per_s`` as background flows. The deployments' replicas are ``replicas``
    (``{(deployment, role): [replicas, ranks]}`` back-end endpoint ids), else placed by CP-SAT beside
    the training jobs (``placement``, default the jobs that fit in order; ``reserved`` node names held
    back), as ``topo budget`` places them on the back-end.

    Returns ``(result, section)``: the :class:`~topo.solve.linkbudget.BudgetResult` (its ``cluster_after``
    is the derived front-end cluster with the chosen tiers) and a JSON-able section: per deployment its
    stated rate and agent traffic on the front-end, and the serving placement used.

    Refused (SpecError, paths as in the cluster file): a file without ``front_end``, without deployments,
    or whose agent tiers send nothing to any deployment (there is no traffic to size for); what the
    link budget refuses on the front-end fabric (``front_end.fabric.tiers`` for a one-tier front-end, ...).
    """
    import numpy as np
    from topo.core.errors import SpecError
    from topo.model.frontend_build import for_fabric
    from topo.solve.linkbudget import budget
    from topo.traffic.demand import Demands
    from topo.traffic.serving import agent_traffic
    f = cluster.file
    if f.front_end is None:
        raise SpecError([("front_end", "missing: the cluster file states no front-end fabric to budget")])
    sv = f.serving
    if not sv.deployments:
        raise SpecError([("serving.deployments", "the front-end link budget sizes for the agent tiers' request and "
                                                 "response traffic to the deployments; the file states none")])
    named = {n for t in sv.agent_tiers for n in t.deployments}
    if not any(d.name in named for d in sv.deployments):
        raise SpecError([("serving.agent_tiers", "no agent tier sends to a deployment, so the front-end carries no "
                                                 "modelled traffic and there is nothing to size its budget for")])
    fc, front = for_fabric(cluster, "front-end")
    if front.n_tiers < 2:
        raise SpecError([("front_end.fabric.tiers", "a one-tier fabric has no uplinks to budget")])
    if fabric is None:
        fabric = build(cluster)
    if replicas is None:
        train = placement
        if train is None:
            train = fit_in_order(cluster, fabric)[0] if f.jobs else {}
        res = _serving_place().place_serving(cluster, fabric, train, time_limit=time_limit, seed=seed,
                                             workers=workers, reserved=reserved)
        replicas, status = res["assignment"], {"method": "cpsat", "status": res["status"],
                                               "objective": res["objective"], "bound": res["bound"]}
    else:
        status = {"method": "given", "status": None, "objective": None, "bound": None}
    at = agent_traffic(cluster, fabric, fc, front, replicas)
    d = at.demands
    demands = Demands(d.src, d.dst, d.bytes, np.full(d.n, -1, np.int32), d.rate_gbps, (), ())   # background flows
    try:
        r = budget(fc, front, demands=demands, objective=objective or f.goals.objective, survive=survive,
                   target_util=target_util, time_limit=time_limit, seed=seed, workers=workers,
                   switch_choice=switch_choice, max_oversubscription=max_oversubscription)
    except SpecError as e:
        raise SpecError([(_front_end_path(p), m) for p, m in e.errors], e.source) from None
    deps = [{"name": dep.name, "requests_per_s": float(dep.load.requests_per_s),
             "bytes_per_s": {k: float(v) for k, v in at.bytes_per_s[dep.name].items()},
             "gbps": float(d.rate_gbps[d.job == k].sum())}
            for k, dep in enumerate(sv.deployments)]
    return r, {"fabric": "front-end", "endpoints": int(front.n_endpoints), "flows": int(d.n),
               "deployments": deps, "placement": status}


def front_end_file_after(cluster, result) -> dict:
    """The cluster file (as a dict) with the front-end budget's chosen tiers as ``front_end.fabric``
    (and any catalog switch the budget added): what a front-end budget's ``cluster_after`` means for the
    file itself (the budget's own ``cluster_after`` is the derived front-end cluster)."""
    after = result.cluster_after
    d = cluster.file.model_dump(mode="json")
    d["front_end"]["fabric"] = after["fabric"]
    d["catalog"] = after.get("catalog", d.get("catalog"))   # the file's own, plus any switch the budget added
    return d
