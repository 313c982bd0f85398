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
the peak utilisation while a training job communicates, and the links both kinds share.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from topo.core.errors import SpecError
from topo.routing.engine import MODELS, _hottest, protocol_efficiency, route
from topo.traffic.serving import KINDS, kv_bytes_per_token, kv_transfer_time_s, moe_dispatch_bytes_per_token, \
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
            target_utilization: Optional[float] = None) -> dict:
    """Route the serving deployments' traffic; a JSON-ready dict (see the module docstring).

    ``routing``: the transport's model to report beside ideal ECMP (default from
    transport.protocol). ``placement``: the training jobs' placement (default in order).
    ``target_utilization``: default goals.target_utilization.
    """
    from topo.model.fabric import build
    from topo.model.spec import wire_efficiency
    f = cluster.file
    if not f.serving.deployments:
        raise SpecError([("serving.deployments", "missing: the cluster file states no deployments to serve")])
    if fabric is None:
        fabric = build(cluster)
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
    st = serving_traffic(cluster, fabric, placement)
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
    alive = fabric.link_gbps > 0
    su_all = _scaleup_util(fabric, both)
    deps = []
    for k, dep in enumerate(f.serving.deployments):
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
            out["kv_transfer"] = times
        deps.append(out)
    mu_all = float(util.max(initial=0.0))
    worst_all = max(mu_all, su_all)
    hot = _hottest(fabric, both.link_gbps_load, alive, 10)
    with_training = None
    if f.jobs:
        from topo.traffic.demand import fit_in_order, job_demands
        jp = placement if placement is not None else fit_in_order(cluster, fabric)[0]
        jd = job_demands(cluster, fabric, jp)
        if jd.n:
            rj = route(fabric, jd, "fluid", efficiency=eff)
            tot = rj.link_gbps_load + both.link_gbps_load
            ut = _util(fabric, tot)
            shared = (rj.link_gbps_load > 0) & (both.link_gbps_load > 0)
            with_training = {
                "training_max_util": float(_util(fabric, rj.link_gbps_load).max(initial=0.0)),
                "max_util": float(ut.max(initial=0.0)),
                "shared_links": int(shared.sum()),
                "shared_max_serving_share": (float((both.link_gbps_load[shared] / tot[shared]).max())
                                             if shared.any() else None),
                "busiest_links": _hottest(fabric, tot, alive, 5),
            }
    return {
        "cluster": f.name, "family": fabric.family, "endpoints": fabric.n_endpoints, "flows": d.n,
        "placement": "training jobs " + ("as given" if placement is not None else "in order")
                     + ", then deployments in order (prefill, decode or colocated; replica by replica)",
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
