"""Serving analysis: the deployments' flows routed on the fabric, per deployment and together.

Owns :func:`serving` (``topo serve``): the flows of :mod:`topo.traffic.serving` at the stated
request rates, routed with ideal ECMP (``fluid``) and with the transport's own model (RoCE
hashing, UEC spraying), through :func:`topo.routing.engine.route`. Reported per deployment:
bytes per second by kind, the network (scale-out) and scale-up load, its busiest links routed
alone, the KV-transfer time per request, and the request rate at which it, alone, reaches the
target utilisation. Together: the busiest links and whether the fabric carries all deployments at
goals.target_utilization.

Rates scale linearly with the request rate (every flow is a fixed number of bytes per request),
so the highest rate at a target utilisation u is ``rate x u / max utilisation`` and the link
that reaches it first is the busiest one. The KV-transfer time is the network share of time to
first token on an idle fabric (NIC goodput or scale-up bandwidth); ``loaded`` multiplies it by
the largest utilisation (at least 1) of a link the deployment's KV flows use, the engine's rule
for proportional sharing of overloaded links. Compute time, batching and queueing are not
modelled. The verdict is for the serving traffic alone; ``with_training`` adds the training jobs'
flows at their communication-phase line rate (the engine's offered rate, fluid) on the same links:
the peak utilisation while a training job communicates, and the links both kinds share, and
(:func:`interference`) each job's communication time without and with the serving traffic.

Network time per output token (:func:`token_times`): one decode step of the decode (or colocated)
pool, every replica at once, one token per attention group: per layer the TP all-reduce(s) and the
MoE dispatch and combine, per stage boundary the pipeline send, each collective timed by the
cheapest of its algorithms as :mod:`topo.routing.collectives` times them (alpha: step overhead and
the slowest path's latency; beta: bytes over the slowest flow's rate), on what the deployment's own
traffic at the given request rate leaves of every link and scale-up port; under fluid, roce-hash
and uec-spray side by side, idle, at the stated rate and along a curve of rates up to saturation.

Front-end fabric (:func:`front_end_loads`, cluster file ``front_end``): the agent tiers' request and
response flows routed on the front-end fabric instead, reported as the result's ``front_end`` part
(per link tier peak utilisation under fluid and the transport's model, per deployment its agent
traffic and the rate at which it alone brings a front-end link to the target).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from topo.core.errors import SpecError
from topo.routing.engine import MODELS, _hottest, protocol_efficiency, route
from topo.traffic.serving import KINDS, dtype_bytes, kv_bytes_per_token, kv_transfer_time_s, moe_dispatch_bytes_per_token, \
    serving_traffic

_DEFAULT_MODEL = {"roce": "roce-hash", "uec": "uec-spray", "ideal": "fluid"}
_PROTOCOL = {"roce-hash": "roce", "uec-spray": "uec"}


def _util(fabric, load):
    cap = fabric.link_gbps
    return np.where(cap > 0, load / np.where(cap > 0, cap, 1.0), 0.0)


def _scaleup_util(fabric, r) -> float:
    dom = np.asarray(fabric.ep_domain)
    ok = dom >= 0
    if not ok.any():
        return 0.0
    per = np.maximum(r.scaleup_sent_gbps, r.scaleup_recv_gbps)[ok]
    cap = np.asarray(fabric.domain_gbps)[dom[ok]]
    u = np.where(cap > 0, per / np.where(cap > 0, cap, 1.0), np.where(per > 0, np.inf, 0.0))
    return float(u.max(initial=0.0))


def _split_gbps(fabric, d) -> tuple[float, float]:
    """(scale-out, scale-up) goodput Gb/s of demands: flows inside one scale-up domain are scale-up."""
    dom = np.asarray(fabric.ep_domain)
    same = (dom[d.src] == dom[d.dst]) & (dom[d.src] >= 0)
    return float(d.rate_gbps[~same].sum()), float(d.rate_gbps[same].sum())


def _rate_at(rate: float, target: float, util: float):
    return None if util <= 0 else rate * target / util


def serving(cluster, fabric=None, routing: Optional[str] = None, placement: Optional[dict] = None,
            seed: Optional[int] = None, qps: Optional[int] = None, channels: Optional[int] = None,
            target_utilization: Optional[float] = None, rates=None, replicas: Optional[dict] = None) -> dict:
    """Route the serving deployments' traffic; a JSON-ready dict (see the module docstring).

    ``routing``: the transport's model to report beside ideal ECMP (default from
    transport.protocol). ``placement``: the training jobs' placement (default in order).
    ``target_utilization``: default goals.target_utilization. ``rates``: request rates (per second) of
    the network-time-per-token curve of every deployment (default: fractions of each model's saturating
    rate, see :data:`CURVE_FRACTIONS`, and the stated rate). ``replicas``: where the serving replicas go
    (``{(deployment, role): [replicas, ranks]}``, e.g. from :func:`topo.solve.serving_place.place_serving`);
    default in order after the training jobs.
    """
    from topo.model.fabric import build
    from topo.model.spec import wire_efficiency
    f = cluster.file
    if not f.serving.deployments:
        raise SpecError([("serving.deployments", "missing: the cluster file states no deployments to serve")])
    if fabric is None:
        fabric = build(cluster)
    model, target, seed, qps, channels = _settings(f, routing, target_utilization, seed, qps, channels)
    st = serving_traffic(cluster, fabric, placement, replicas=replicas)
    d = st.demands
    eff = wire_efficiency(cluster)
    eff_model = protocol_efficiency(cluster, _PROTOCOL[model]) if model in _PROTOCOL else eff
    both = route(fabric, d, "fluid", efficiency=eff)
    util = _util(fabric, both.link_gbps_load)
    if model == "fluid":
        util_m = util
        hot_m = None
    else:
        rm = route(fabric, d, model, efficiency=eff_model, seed=seed, qps=qps, channels=channels)
        util_m = _util(fabric, rm.link_gbps_load)
        hot_m = _hottest(fabric, rm.link_gbps_load, fabric.link_gbps > 0, 10)
    su_all = _scaleup_util(fabric, both)
    rates = _checked_rates(rates)
    tmodels, all_loads = _model_loads(cluster, fabric, d, model, eff, eff_model, both,
                                      seed=seed, qps=qps, channels=channels)
    deps = []
    for k, dep in enumerate(f.serving.deployments):
        out = _deployment(fabric, st, k, dep, target, eff, util)
        out["time_per_token"] = token_times(cluster, fabric, st, k, tmodels, seed=seed, qps=qps, channels=channels,
                                            rates=rates, all_loads=all_loads)
        deps.append(out)
    with_training = _with_training(cluster, fabric, placement, d, both, eff, seed=seed, qps=qps, channels=channels)
    out = _summary(f, fabric, d, both, util, util_m, hot_m, su_all, deps, with_training, placement=placement,
                   replicas=replicas, target=target, model=model)
    if f.front_end is not None:
        out["front_end"] = front_end_loads(cluster, fabric, st.replicas, model=model, target=target, seed=seed,
                                           qps=qps, channels=channels)
    return out


def front_end_loads(cluster, fabric, replicas: dict, *, model: str, target: float, seed: int, qps: int,
                    channels: int, scale: float = 1.0) -> dict:
    """The agent tiers' request and response flows on the front-end fabric
    (:func:`topo.traffic.serving.agent_traffic`), routed under ideal ECMP and ``model``: the fabric's size,
    per link tier the peak, p99 and mean utilisation, per deployment its agent bytes per second and the
    request rate at which the front-end reaches ``target`` with it alone, and all deployments together."""
    from topo.model.frontend import FRONT_END
    from topo.model.frontend_build import for_fabric
    from topo.model.spec import wire_efficiency
    from topo.routing.engine import tier_stats
    from topo.traffic.serving import agent_traffic
    fc, front = for_fabric(cluster, FRONT_END)     # the builder's refusals named under front_end
    at = agent_traffic(cluster, fabric, fc, front, replicas, scale=scale)
    d = at.demands
    eff = wire_efficiency(fc)
    eff_model = protocol_efficiency(fc, _PROTOCOL[model]) if model in _PROTOCOL else eff
    alive = front.link_gbps > 0
    rf = route(front, d, "fluid", efficiency=eff)
    rm = rf if model == "fluid" else route(front, d, model, efficiency=eff_model, seed=seed, qps=qps,
                                           channels=channels)
    uf = float(_util(front, rf.link_gbps_load).max(initial=0.0))
    um = float(_util(front, rm.link_gbps_load).max(initial=0.0))
    deps = []
    for k, dep in enumerate(cluster.file.serving.deployments):
        sel = d.select(d.job == k)
        r = route(front, sel, "fluid", efficiency=eff)
        u = float(_util(front, r.link_gbps_load).max(initial=0.0))
        hot = _hottest(front, r.link_gbps_load, alive, 1)
        deps.append({"name": dep.name, "bytes_per_s": at.bytes_per_s[dep.name],
                     "gbps": float(sel.rate_gbps.sum()), "max_util": u,
                     "max_requests_per_s_at_target": _rate_at(dep.load.requests_per_s * scale, target, u),
                     "limited_by": hot[0]["link"] if hot else None})
    return {
        "family": front.family, "endpoints": front.n_endpoints, "switches": front.n_switches,
        "tier_switch_counts": [int(x) for x in front.tier_switch_counts], "links": front.n_links // 2,
        "flows": d.n, "routing": model, "target_utilization": target,
        "not_modelled": "the hop between a host's front-end NIC and its accelerators (PCIe) is not modelled",
        "deployments": deps,
        "tiers": tier_stats(front, rf.link_gbps_load, alive),
        "tiers_transport": tier_stats(front, rm.link_gbps_load, alive),
        "max_util": uf, "max_util_transport": um,
        "busiest_links": _hottest(front, rf.link_gbps_load, alive, 10),
        "busiest_links_transport": _hottest(front, rm.link_gbps_load, alive, 10),
        "load_scale_at_target": None if uf <= 0 else target / uf,
        "carries_at_target": bool(uf <= target),
        "carries_at_target_transport": bool(um <= target),
        "unreachable_gbps": float(rf.unreachable_gbps),
    }


def _settings(f, routing, target_utilization, seed, qps, channels) -> tuple:
    """The routing model, target utilisation, seed, queue pairs and channels: each as given or from the
    cluster file, checked."""
    tr = f.transport
    model = routing or _DEFAULT_MODEL[tr.protocol]
    if model not in MODELS or model == "optimal":
        raise SpecError([("routing", f"expected one of {[m for m in MODELS if m != 'optimal']} (found {model!r})")])
    target = f.goals.target_utilization if target_utilization is None else float(target_utilization)
    if not 0 < target <= 1:
        raise SpecError([("target_utilization", f"must be in (0, 1] (found {target!r})")])
    seed = f.goals.seed if seed is None else int(seed)
    qps = tr.qps if qps is None else int(qps)
    channels = tr.n_channels if channels is None else int(channels)
    return model, target, seed, qps, channels


def _checked_rates(rates):
    """The curve's request rates as floats, or None for the default; refused unless all positive."""
    if rates is None:
        return None
    rates = [float(x) for x in rates]
    bad = [x for x in rates if not (math.isfinite(x) and x > 0)]
    if not rates or bad:
        raise SpecError([("rates", f"expected positive request rates per second (found {bad or rates!r})")])
    return rates


def _model_loads(cluster, fabric, d, model, eff, eff_model, both, *, seed, qps, channels) -> tuple[dict, dict]:
    """Ideal ECMP, RoCE hashing and UEC spraying side by side (and the chosen model if another): the
    efficiency of each model, and its link loads and scale-up loads of all the serving traffic."""
    tmodels = {"fluid": eff, "roce-hash": protocol_efficiency(cluster, "roce"),
               "uec-spray": protocol_efficiency(cluster, "uec")}
    if model not in tmodels:
        tmodels[model] = eff_model
    all_loads = {"fluid": (both.link_gbps_load, np.maximum(both.scaleup_sent_gbps, both.scaleup_recv_gbps))}
    for name, e in tmodels.items():
        if name != "fluid":
            ra = route(fabric, d, name, efficiency=e, seed=seed, qps=qps, channels=channels)
            all_loads[name] = (ra.link_gbps_load, np.maximum(ra.scaleup_sent_gbps, ra.scaleup_recv_gbps))
    return tmodels, all_loads


def _deployment(fabric, st, k: int, dep, target: float, eff, util) -> dict:
    """One deployment's row without its time per token: its replicas, traffic, utilisation alone, the
    rate it carries at the target and, disaggregated, its KV-cache transfer times."""
    d = st.demands
    alive = fabric.link_gbps > 0
    sel = d.select(d.job == k)
    kind = st.kind[d.job == k]
    r = route(fabric, sel, "fluid", efficiency=eff)
    u = _util(fabric, r.link_gbps_load)
    mu = float(u.max(initial=0.0))
    su = _scaleup_util(fabric, r)
    worst = max(mu, su)
    m = dep.model
    out = {
        "name": dep.name,
        "mode": "colocated" if dep.colocated is not None else "disaggregated",
        "requests_per_s": dep.load.requests_per_s,
        "accelerators": int(sum(v.size for (n, _), v in st.replicas.items() if n == dep.name)),
        # derived: the endpoints of every replica, first and last in rank order
        "replicas": {role: [[fabric.node_name(int(r[0])), fabric.node_name(int(r[-1]))] for r in R]
                     for (n, role), R in st.replicas.items() if n == dep.name},
        "kv_bytes_per_token": kv_bytes_per_token(m),
        "moe_dispatch_bytes_per_token_per_layer": moe_dispatch_bytes_per_token(m),
        "bytes_per_s": {kk: st.bytes_per_s[dep.name][kk] for kk in KINDS},
        "network_gbps": _split_gbps(fabric, sel)[0],
        "scaleup_gbps": _split_gbps(fabric, sel)[1],
        "max_util": mu,
        "scaleup_max_util": su,
        "busiest_links": _hottest(fabric, r.link_gbps_load, alive, 5),
        "max_requests_per_s_at_target": _rate_at(dep.load.requests_per_s, target, worst),
        "limited_by": (None if worst <= 0 else "scale-up" if su >= mu
                       else (_hottest(fabric, r.link_gbps_load, alive, 1) or [{"link": None}])[0]["link"]),
    }
    if dep.colocated is None:
        out["kv_transfer"] = _kv_transfer(fabric, st, dep, sel, kind, eff, util)
    return out


def _kv_transfer(fabric, st, dep, sel, kind, eff, util) -> dict:
    """A disaggregated deployment's KV-cache transfer time at the mean and percentile prompt lengths,
    idle and slowed by the busiest link its transfers use."""
    m = dep.model
    P = st.replicas[(dep.name, "prefill")]
    D = st.replicas[(dep.name, "decode")]
    M = st.kv[dep.name]["per_token"]
    lens = {"mean": dep.load.prompt_tokens.mean, **dep.load.prompt_tokens.percentiles}
    kvmask = kind == KINDS.index("kv_transfer")
    rk = route(fabric, sel.select(kvmask), "fluid", efficiency=eff) if kvmask.any() else None
    used = rk.link_gbps_load > 0 if rk is not None else np.zeros(fabric.n_links, bool)
    slow = max(1.0, float(util[used].max(initial=0.0)))
    times = {}
    inj = fabric.injection_gbps()
    for name, n in lens.items():
        t = max(kv_transfer_time_s(fabric, P[p], D[q], M, n, eff, inj)
                for p in range(P.shape[0]) for q in range(D.shape[0]))
        times[name] = {"tokens": n, "bytes": kv_bytes_per_token(m) * n, "idle_s": t, "loaded_s": t * slow}
    return times


def _with_training(cluster, fabric, placement, d, both, eff, *, seed, qps, channels) -> Optional[dict]:
    """The serving traffic beside the training jobs' (placed as given or in order): shared links, the
    utilisation together and the interference; None without training jobs or traffic."""
    if not cluster.file.jobs:
        return None
    from topo.traffic.demand import fit_in_order, job_demands
    jp = placement if placement is not None else fit_in_order(cluster, fabric)[0]
    jd = job_demands(cluster, fabric, jp)
    if not jd.n:
        return None
    alive = fabric.link_gbps > 0
    rj = route(fabric, jd, "fluid", efficiency=eff)
    tot = rj.link_gbps_load + both.link_gbps_load
    ut = _util(fabric, tot)
    shared = (rj.link_gbps_load > 0) & (both.link_gbps_load > 0)
    return {
        "training_max_util": float(_util(fabric, rj.link_gbps_load).max(initial=0.0)),
        "max_util": float(ut.max(initial=0.0)),
        "shared_links": int(shared.sum()),
        "shared_max_serving_share": (float((both.link_gbps_load[shared] / tot[shared]).max())
                                     if shared.any() else None),
        "busiest_links": _hottest(fabric, tot, alive, 5),
        "interference": interference(cluster, fabric, jp, d, seed=seed, qps=qps, channels=channels),
    }


def _summary(f, fabric, d, both, util, util_m, hot_m, su_all, deps, with_training, *, placement, replicas,
             target, model) -> dict:
    """The result dict: the deployments, all the serving traffic together and beside training."""
    mu_all = float(util.max(initial=0.0))
    worst_all = max(mu_all, su_all)
    hot = _hottest(fabric, both.link_gbps_load, fabric.link_gbps > 0, 10)
    return {
        "cluster": f.name, "family": fabric.family, "endpoints": fabric.n_endpoints, "flows": d.n,
        "placement": "training jobs " + ("as given" if placement is not None else "in order")
                     + (", then deployments in order (prefill, decode or colocated; replica by replica)"
                        if replicas is None else ", then deployments as given"),
        "target_utilization": target,
        "routing": model,
        "deployments": deps,
        "all": {
            "network_gbps": _split_gbps(fabric, d)[0],
            "scaleup_gbps": _split_gbps(fabric, d)[1],
            "max_util": mu_all,
            "scaleup_max_util": su_all,
            "max_util_transport": float(util_m.max(initial=0.0)),
            "busiest_links": hot,
            "busiest_links_transport": hot_m if hot_m is not None else hot,
            "load_scale_at_target": None if worst_all <= 0 else target / worst_all,
            "carries_at_target": bool(worst_all <= target),
            "carries_at_target_transport": bool(max(float(util_m.max(initial=0.0)), su_all) <= target),
            "unreachable_gbps": float(both.unreachable_gbps),
        },
        "with_training": with_training,
    }


# --- network time per output token -------------------------------------------------------------
CURVE_FRACTIONS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
"""Default curve points: these fractions of each routing model's saturating rate (and the stated rate)."""


class _TokenPattern:
    """One communication pattern of a decode step (src, dst arrays) routed once under one model; its
    latency (alpha) and, for any residual capacity, the goodput of its slowest flow."""

    def __init__(self, fabric, src, dst, model, seed, qps, channels, node_lat):
        from topo.model.catalog import STEP_OVERHEAD_US
        from topo.routing.collectives import min_maxmin_rate, path_latency_s
        from topo.traffic.demand import Demands
        self._minmax = min_maxmin_rate
        keep = src != dst
        src, dst = np.asarray(src, np.int64)[keep], np.asarray(dst, np.int64)[keep]
        self.empty = src.size == 0
        self.alpha_s = 0.0
        self.hashed = model == "roce-hash"
        self.mult = channels * qps if self.hashed else 1
        self.qp_path = None
        self.load = None
        self.su_busy = None
        if self.empty:
            return
        n = src.size
        dom = fabric.ep_domain
        same = (dom[src] == dom[dst]) & (dom[src] >= 0)
        d = Demands(src, dst, np.ones(n), np.zeros(n, np.int32), np.ones(n))
        rh = route(fabric, d, "roce-hash", seed=seed, record_paths=True,
                   qps=qps if self.hashed else 1, channels=channels if self.hashed else 1)
        lat = path_latency_s(fabric, rh.qp_path, node_lat) if rh.qp_path is not None else np.zeros(0)
        self.alpha_s = STEP_OVERHEAD_US * 1e-6 + (float(lat.max()) if lat.size else 0.0)
        if (~same).any():
            if self.hashed:
                self.qp_path = rh.qp_path
            else:
                self.load = route(fabric, d.select(~same), model, efficiency=1.0).link_gbps_load
        if same.any():
            E = fabric.n_endpoints
            busy = np.maximum(np.bincount(src[same], minlength=E), np.bincount(dst[same], minlength=E))
            ids = np.flatnonzero(busy > 0)
            self.su_busy = (ids, busy[ids])

    def rate_gbps(self, resid_link: np.ndarray, resid_su: np.ndarray) -> float:
        """Wire Gb/s of the slowest flow with ``resid_link`` Gb/s left per link and ``resid_su`` per
        endpoint inside its scale-up domain (0 where nothing is left)."""
        rate = math.inf
        if self.qp_path is not None:
            rate = self._minmax(self.qp_path, np.maximum(resid_link, 0.0)) * self.mult
        elif self.load is not None:
            used = self.load > 0
            r = resid_link[used]
            rate = 0.0 if (r <= 0).any() else 1.0 / float((self.load[used] / r).max())
        if self.su_busy is not None:
            ids, busy = self.su_busy
            rate = min(rate, float((np.maximum(resid_su[ids], 0.0) / busy).min()))
        return rate


def _decode_steps(pool, R: np.ndarray):
    """Per pipeline stage of a decode (or colocated) pool's replicas ``R`` [replicas, ranks]: the TP
    groups [m, tp], the expert-parallel groups [m, stage_ranks], and the ranks the stage sends to the next
    (src, dst) or None for the last stage."""
    sr, groups = pool.stage_ranks, pool.stage_ranks // pool.tp
    V = R.reshape(R.shape[0], pool.pp, groups, pool.tp)
    W = R.reshape(R.shape[0], pool.pp, sr)
    out = []
    for s in range(pool.pp):
        nxt = (W[:, s, :].ravel(), W[:, s + 1, :].ravel()) if s + 1 < pool.pp else None
        out.append((V[:, s].reshape(-1, pool.tp), W[:, s, :], nxt))
    return out


def token_parts(model, pool) -> dict:
    """The collectives of one decode step, per stage (one token per attention group): a TP all-reduce
    of ``S = h x b`` (``per_layer`` times per layer); MoE dispatch and combine, each an all-to-all in
    which every stage rank sends ``S = k x h x b / tp`` in all (its 1/tp of its group's token to k
    experts spread over the stage's ranks); the pipeline send of ``h x b / stage_ranks`` per rank to
    the next stage."""
    h, ab = float(model.hidden_size), dtype_bytes(model.activation_dtype)
    moe_ep = model.experts is not None and pool.ep > 1
    tp, sr = pool.tp, pool.stage_ranks
    return {
        "layers_per_stage": model.layers // pool.pp,
        "tp_allreduce": {"per_layer": (0 if tp == 1 else 1 if moe_ep else 2), "bytes": h * ab},
        "moe_a2a": {"per_layer": 1 if moe_ep else 0, "bytes_per_rank": (model.experts_per_token or 0) * h * ab / tp},
        "pp_send": {"steps": 1, "bytes_per_rank": h * ab / sr},
    }


class _Choice:
    """One collective over groups ``G`` [m, p]: every applicable algorithm of ``op`` (the phases of
    :func:`topo.routing.collectives.phases`, in-network reduction left out) with its patterns routed
    once; :meth:`best` is the tuner's choice at the given residual capacity (cheapest, ties by the
    algorithm order of :data:`topo.model.spec.COLLECTIVE_ALGORITHMS`)."""

    def __init__(self, op, G, fabric, mk):
        from topo.model.spec import COLLECTIVE_ALGORITHMS
        from topo.routing.collectives import phases
        self.algos = []
        cache: dict = {}
        for a in COLLECTIVE_ALGORITHMS[op]:
            if a == "in_network":
                continue
            ph = phases(op, a, G, fabric.ep_domain)
            if ph is None:
                continue
            steps = []
            for n, frac, key, make in ph:
                if key not in cache:
                    cache[key] = mk(*make())
                steps.append((n, frac, cache[key]))
            self.algos.append((a, steps))

    def best(self, S, resid_link, resid_su, eff) -> tuple[str, float, float]:
        """(algorithm, alpha s, beta s) of the cheapest algorithm for S bytes."""
        out = None
        for a, steps in self.algos:
            al = be = 0.0
            for n, frac, pat in steps:
                if pat.empty:
                    continue
                r = pat.rate_gbps(resid_link, resid_su) * eff * 1e9 / 8.0
                al += n * pat.alpha_s
                be += frac * S / r if r > 0 else math.inf
            if out is None or al + be < out[1] + out[2]:
                out = (a, al, be)
        return out


class _TokenTimer:
    """The decode step of one pool on one fabric under one routing model, its patterns routed once;
    ``time(resid_link, resid_su, eff)`` -> (seconds per output token or inf, parts)."""

    def __init__(self, fabric, dep, pool, R, model, seed, qps, channels, node_lat):
        self.parts = token_parts(dep.model, pool)
        self.stages = []
        mk = lambda s, d: _TokenPattern(fabric, s, d, model, seed, qps, channels, node_lat)
        for tpg, epg, nxt in _decode_steps(pool, R):
            self.stages.append({
                "tp": _Choice("allreduce", tpg, fabric, mk) if self.parts["tp_allreduce"]["per_layer"] else None,
                "a2a": _Choice("alltoall", epg, fabric, mk) if self.parts["moe_a2a"]["per_layer"] else None,
                "send": mk(*nxt) if nxt is not None else None})

    def time(self, resid_link, resid_su, eff) -> tuple[float, dict]:
        P = self.parts
        Ls = P["layers_per_stage"]
        acc = {k: {"alpha_s": 0.0, "beta_s": 0.0, "algorithms": []}
               for k in ("tp_allreduce", "moe_dispatch", "moe_combine", "pp_send")}

        def add(kind, algo, alpha, beta, n):
            acc[kind]["alpha_s"] += n * alpha
            acc[kind]["beta_s"] += n * beta
            if algo not in acc[kind]["algorithms"]:
                acc[kind]["algorithms"].append(algo)

        for st in self.stages:
            tp, a2a = P["tp_allreduce"], P["moe_a2a"]
            if st["tp"] is not None:
                a, al, be = st["tp"].best(tp["bytes"], resid_link, resid_su, eff)
                add("tp_allreduce", a, al, be, Ls * tp["per_layer"])
            if st["a2a"] is not None:
                a, al, be = st["a2a"].best(a2a["bytes_per_rank"], resid_link, resid_su, eff)
                add("moe_dispatch", a, al, be, Ls)
                add("moe_combine", a, al, be, Ls)
            pat = st["send"]
            if pat is not None and not pat.empty:
                r = pat.rate_gbps(resid_link, resid_su) * eff * 1e9 / 8.0
                add("pp_send", "direct", pat.alpha_s, P["pp_send"]["bytes_per_rank"] / r if r > 0 else math.inf, 1)
        total = sum(v["alpha_s"] + v["beta_s"] for v in acc.values())
        return total, acc


def _finite(x):
    return x if math.isfinite(x) else None


def token_times(cluster, fabric, st, k: int, models, *, seed: int, qps: int, channels: int,
                rates=None, all_loads: Optional[dict] = None) -> dict:
    """Network time per output token of deployment ``k`` (its decode or colocated pool, every replica
    taking one decode step at once, one token per attention group) under each routing model: idle, at
    the stated rate and along a curve of request rates, the deployment's own traffic (``st``, at its
    stated rate) scaled to each rate taking its share of every link and scale-up port first.

    ``models``: {name: wire efficiency}. ``all_loads``: {name: (link Gb/s, scale-up Gb/s per endpoint)}
    of all deployments at their stated rates, for the time with every deployment loaded.
    """
    from topo.routing.collectives import _switch_latency_ns
    dep = cluster.file.serving.deployments[k]
    role = "colocated" if dep.colocated is not None else "decode"
    pool = dep.colocated if dep.colocated is not None else dep.decode
    R = np.asarray(st.replicas[(dep.name, role)], np.int64)
    d = st.demands
    sel = d.select(d.job == k)
    R0 = float(dep.load.requests_per_s)
    node_lat, unknown = _switch_latency_ns(cluster, fabric)
    cap = fabric.link_gbps.astype(np.float64)
    dom = np.asarray(fabric.ep_domain)
    su_cap = np.where(dom >= 0, np.asarray(fabric.domain_gbps, np.float64)[np.maximum(dom, 0)], 0.0)
    per_model = {}
    for name, eff in models.items():
        timer = _TokenTimer(fabric, dep, pool, R, name, seed, qps, channels, node_lat)
        bg = route(fabric, sel, name, efficiency=eff, seed=seed, qps=qps, channels=channels)
        bg_su = np.maximum(bg.scaleup_sent_gbps, bg.scaleup_recv_gbps)
        u_link = float(_util(fabric, bg.link_gbps_load).max(initial=0.0))
        u_su = float(np.where(su_cap > 0, bg_su / np.where(su_cap > 0, su_cap, 1.0), 0.0).max(initial=0.0))
        worst = max(u_link, u_su)
        sat = R0 / worst if worst > 0 else None
        if worst <= 0:
            sat_link = None
        elif u_su >= u_link:
            sat_link = "scale-up"
        else:
            sat_link = _hottest(fabric, bg.link_gbps_load, cap > 0, 1)[0]["link"]

        def at(rate, bg_link=bg.link_gbps_load, bg_s=bg_su):
            x = rate / R0
            return timer.time(cap - x * bg_link, su_cap - x * bg_s, eff)

        idle, idle_parts = timer.time(cap, su_cap, eff)
        t0, parts0 = at(R0)
        pts = set(rates) if rates else ({f * sat for f in CURVE_FRACTIONS} if sat else set()) | {R0}
        curve = []
        for r in sorted(pts):
            t, _ = at(r)
            curve.append({"requests_per_s": r, "time_s": _finite(t)})
        entry = {"wire_efficiency": eff, "idle_s": idle, "at_rate_s": _finite(t0),
                 "parts_at_rate": {kk: {"alpha_s": v["alpha_s"], "beta_s": _finite(v["beta_s"]),
                                        "algorithms": v["algorithms"]} for kk, v in parts0.items()},
                 "saturating_requests_per_s": sat, "saturating_link": sat_link, "curve": curve}
        if all_loads is not None and name in all_loads:
            ld, su = all_loads[name]
            entry["with_all_deployments_s"] = _finite(timer.time(cap - ld, su_cap - su, eff)[0])
        per_model[name] = entry
    return {"pool": role, "tokens_per_step": "one per attention group (tp ranks) of every replica",
            "switch_latency_unknown": unknown, "parts": token_parts(dep.model, pool), "models": per_model}


# --- interference with the training jobs ---------------------------------------------------------
def interference(cluster, fabric, placement: dict, serving_demands, *, seed: int, qps: int, channels: int) -> Optional[dict]:
    """The training jobs' communication time without and with the serving traffic on the same links,
    under ideal ECMP (fluid), RoCE hashing and UEC spraying; None without placed training traffic.

    The serving flows run at their stated rates and take their share of every link first. Under fluid
    and uec-spray a job is slowed by the highest utilisation, serving included, of a link it uses (the
    engine's proportional sharing, :func:`topo.routing.engine._run_model` with the serving loads as
    background); under roce-hash its queue pairs share what the serving traffic leaves of each link
    max-min fairly (:func:`topo.routing.engine.completion_times`). Scale-up ports are not shared:
    serving traffic inside a scale-up domain does not slow a training job here.
    """
    from topo.model.spec import wire_efficiency
    from topo.routing.engine import SHARING, _run_model, completion_times
    from topo.traffic.demand import job_demands, scaleup_times_s
    models = {"fluid": wire_efficiency(cluster), "roce-hash": protocol_efficiency(cluster, "roce"),
              "uec-spray": protocol_efficiency(cluster, "uec")}
    dead = np.zeros(fabric.n_links, bool)
    cap = fabric.link_gbps.astype(np.float64)
    out = {}
    for m, eff in models.items():
        jd = job_demands(cluster, fabric, placement, efficiency=eff)
        if jd.n == 0 or not len(jd.job_names):
            return None
        sv = route(fabric, serving_demands, m, efficiency=eff, seed=seed, qps=qps, channels=channels)
        tot0, t0, _, _ = _run_model(fabric, jd, m, dead, seed, qps, eff, channels)
        if m == "roce-hash":
            r = route(fabric, jd, m, seed=seed, qps=qps, channels=channels, efficiency=eff, record_paths=True)
            t1 = np.zeros(len(jd.job_names))
            if r.qp_flow is not None and r.qp_flow.size:
                left = np.maximum(cap - sv.link_gbps_load, 0.0)
                t = completion_times(r.qp_path, left, jd.bytes[r.qp_flow] / (channels * qps), eff, SHARING[m])
                jq = jd.job[r.qp_flow]
                ok = jq >= 0
                np.maximum.at(t1, jq[ok], t[ok])
            t1 = np.maximum(t1, scaleup_times_s(fabric, jd))
            lost = jd.job[(r.flow_unreachable > 0) & (jd.job >= 0)]
            t1[np.unique(lost)] = math.inf
            tot1 = tot0 + sv.link_gbps_load
        else:
            tot1, t1, _, _ = _run_model(fabric, jd, m, dead, seed, qps, eff, channels, None, [sv])
        shared = (tot0 > 0) & (sv.link_gbps_load > 0)
        out[m] = {
            "wire_efficiency": eff,
            "max_util_training": float(_util(fabric, tot0).max(initial=0.0)),
            "max_util_with_serving": float(_util(fabric, tot1).max(initial=0.0)),
            "shared_links": int(shared.sum()),
            "jobs": {n: {"time_s": _finite(float(t0[k])), "with_serving_s": _finite(float(t1[k])),
                         "slowdown": (float(t1[k] / t0[k]) if t0[k] > 0 and math.isfinite(t1[k]) else None)}
                     for k, n in enumerate(jd.job_names)},
        }
    return {"sharing": {"fluid": "proportional", "uec-spray": "proportional",
                        "roce-hash": "per-QP max-min over what the serving traffic leaves"},
            "models": out}
