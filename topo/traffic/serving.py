"""Serving traffic: inference deployments and CPU agent tiers turned into flows between endpoints.

Owns the placement of serving replicas and the first-principles traffic of a deployment at its
stated load. Produces :class:`ServingTraffic` (flows as :class:`~topo.traffic.demand.Demands`
whose ``bytes`` are bytes per second, so ``rate_gbps = bytes x 8 / 1e9``, plus the kind of each
flow); it never routes anything.

Placement
---------
In order: the training jobs first (the placement given, else the in-order placement of the jobs
that fit), then every deployment in file order, each of its pools in the order prefill, decode
(or colocated), each replica taking the next ``pp x max(tp, ep)`` free accelerators in endpoint
order. A deployment that does not fit is refused with its path (never shrunk).

Rank layout of a replica
------------------------
``stage_ranks = max(tp, ep)`` ranks per pipeline stage, stage ``s`` holding ranks
``s x stage_ranks ...``; inside a stage ``stage_ranks / tp`` attention groups of ``tp``
consecutive ranks (attention data parallelism when ep > tp). Layers split evenly over the
stages; KV heads split evenly over a group's TP ranks (``tp <= kv_heads``) or each head is held
by ``tp / kv_heads`` ranks (``tp > kv_heads``, replicated).

Traffic per second (b = bytes per element of the data type, h = hidden_size, k =
experts_per_token, L_s = layers per stage, T = tokens per second of the replica: requests per
second per replica x mean prompt tokens for prefill, x mean output tokens for decode, both for
colocated)
-------------------------------------------------------------------------------------------------
* KV transfer (disaggregated only): every request's KV cache, ``2 x layers x kv_heads x head_dim
  x b_kv`` bytes per prompt token, goes from the prefill replica to a decode replica, requests
  shared over the (prefill, decode) replica pairs by the deployment's ``kv_routing``
  (:func:`kv_shares`: ``even``, every pair alike; ``local``, under the same leaf first, then pod,
  then anywhere) and evenly over the attention groups of each. Each (layer, KV head) block goes
  from the prefill rank holding it to every decode rank that holds it (more than one when the
  decode TP replicates KV heads).
* TP all-reduce: per layer one ring all-reduce of ``tokens x h x b`` after attention, and one
  after the MLP for a dense model or a MoE model without expert parallelism (ep = 1);
  each attention group carries its share of the tokens.
* MoE dispatch and combine (ep > 1): each of a stage's ep ranks sends 1/ep of the stage's tokens;
  a token goes to k experts spread uniformly over the ep ranks, so rank i sends rank j
  ``T/ep x k/ep x h x b`` per layer (dispatch) and the same back (combine). Dispatch bytes per
  token per layer, the local share included, are ``h x k x b``.
* Pipeline send: each rank of stage s sends ``T x h x b / stage_ranks`` to the same rank of stage
  s + 1 (the activations scattered over the stage's ranks).
* Agent tiers: a deployment's requests are split evenly over the hosts of the tiers naming it and
  over its prefill (or colocated) replicas; ``request_bytes`` go from the host to the replica's
  first rank, ``response_bytes`` from the first rank of the last stage of a decode (or colocated)
  replica back to the host. With a front-end fabric (cluster file ``front_end``) these flows are not
  on the back-end: :func:`agent_traffic` puts them on the front-end fabric, between the agent hosts'
  front-end NICs and those of the hosts holding the entry and exit ranks.

Replica counts are the rows of the placement given (a pool that lost replicas to a failure
spreads its requests over those left).

Not modelled: batching and scheduling dynamics, compute time, the sampled token returning from
the last stage to the first, KV cache reuse, uneven expert routing and shared experts (every
layer is taken as a MoE layer of ``experts`` routed experts).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from topo.core.errors import SpecError
from topo.traffic.demand import Demands, expand_collective, fit_in_order, free_accelerators

KINDS = ("kv_transfer", "tp_allreduce", "pp_send", "moe_dispatch", "moe_combine", "agent_request",
         "agent_response")


def dtype_bytes(name: str) -> float:
    """Bytes per element of a serving data type (fp32 4, bf16/fp16 2, fp8/int8 1, fp4/int4 0.5)."""
    from topo.model.spec import DTYPE_BYTES
    return DTYPE_BYTES[name]


def kv_bytes_per_token(model) -> float:
    """KV-cache bytes of one token: 2 (K and V) x layers x kv_heads x head_dim x bytes of kv_dtype."""
    return 2.0 * model.layers * model.kv_heads * model.head_dim * dtype_bytes(model.kv_dtype)


def moe_dispatch_bytes_per_token(model) -> float:
    """Expert-dispatch bytes of one token in one MoE layer (the same again to combine):
    hidden_size x experts_per_token x bytes of activation_dtype; 0 for a dense model."""
    if model.experts is None:
        return 0.0
    return float(model.hidden_size) * model.experts_per_token * dtype_bytes(model.activation_dtype)


def pools(dep) -> list[tuple[str, object]]:
    """(role, pool) of a deployment in placement order."""
    if dep.colocated is not None:
        return [("colocated", dep.colocated)]
    return [("prefill", dep.prefill), ("decode", dep.decode)]


def serving_placement(cluster, fabric, placement: Optional[dict] = None) -> dict:
    """``{(deployment, role): [replicas, accelerators per replica] endpoint ids}`` in rank order,
    after the training jobs (``placement``, else their in-order placement of those that fit).
    Raises SpecError naming the pool that does not fit."""
    if placement is None:
        placement = fit_in_order(cluster, fabric)[0] if cluster.file.jobs else {}
    free = free_accelerators(cluster, fabric)
    for eps in placement.values():
        e = np.asarray(eps, np.int64)
        free[e[(e >= 0) & (e < free.shape[0])]] = False
    order = np.flatnonzero(free)
    at = 0
    out = {}
    for i, d in enumerate(cluster.file.serving.deployments):
        for role, pool in pools(d):
            need = pool.replicas * pool.accelerators
            if at + need > order.size:
                raise SpecError([(f"serving.deployments[{i}].{role}.replicas",
                                  f"{pool.replicas} replicas x {pool.accelerators} accelerators = {need:,}; "
                                  f"{order.size - at:,} accelerators are free after the training jobs and the "
                                  f"pools before it")])
            out[(d.name, role)] = order[at:at + need].reshape(pool.replicas, pool.accelerators)
            at += need
    return out


def replica_homes(fabric) -> dict:
    """Per endpoint: the leaf (plane 0), pod and rack of the first accelerator of its scale-up domain
    (itself without one), the place a replica starting there is counted behind (as the training
    placement counts a unit's leaf)."""
    ep = np.arange(fabric.n_endpoints)
    dom = np.asarray(fabric.ep_domain)
    first = ep.copy()
    acc = np.flatnonzero(np.asarray(fabric.ep_is_accel, bool) & (dom >= 0))
    if acc.size:
        lead = np.full(int(dom[acc].max()) + 1, fabric.n_endpoints, np.int64)
        np.minimum.at(lead, dom[acc], acc)        # lowest accelerator id of every domain
        first[acc] = lead[dom[acc]]
    leaf = fabric.ep_leaf()[first]
    return {"leaf": leaf, "pod": np.maximum(np.asarray(fabric.node_pod)[leaf], 0),
            "rack": np.asarray(fabric.server_rack)[np.asarray(fabric.ep_server)[first]]}


KV_ROUTINGS = ("even", "local")


def kv_shares(mode: str, leaf_p, pod_p, leaf_d, pod_d) -> np.ndarray:
    """``[prefill replicas, decode replicas]``: the share of a deployment's requests whose KV cache goes
    from prefill replica i to decode replica j (the matrix sums to 1; row i to 1 / prefill replicas and
    column j to 1 / decode replicas: every replica carries its even share of the requests).

    ``even``: every pair ``1 / (P x D)``. ``local``: each prefill replica's requests go first to the
    decode replicas behind its own leaf, then its own pod, then anywhere. At each level, within every
    leaf (pod; the whole cluster) on its own, the matched share is ``min(prefill share left, decode
    capacity left)`` there, split over the prefill replicas in proportion to what each still sends and
    over the decode replicas in proportion to the capacity each still has. Leaves and pods are disjoint,
    so the order they are visited in changes nothing, and the proportional split treats equal replicas
    alike: no tie to break. KV bytes crossing leaves are then ``1 - sum over leaves min(p/P, d/D)`` of
    the total, crossing pods ``1 - sum over pods min(p/P, d/D)`` (p, d: the replicas behind it)."""
    lp, pp_, ld, pd = (np.asarray(x, np.int64) for x in (leaf_p, pod_p, leaf_d, pod_d))
    P, D = lp.size, ld.size
    if mode == "even":
        return np.full((P, D), 1.0 / (P * D))
    if mode != "local":
        raise SpecError([("kv_routing", f"expected one of {list(KV_ROUTINGS)} (found {mode!r})")])
    a = np.full(P, 1.0 / P)          # what each prefill replica still sends
    b = np.full(D, 1.0 / D)          # what each decode replica can still take
    S = np.zeros((P, D))
    for kp, kd in ((lp, ld), (pp_, pd), (np.zeros(P, np.int64), np.zeros(D, np.int64))):
        for key in np.intersect1d(kp, kd):
            ip, jd = np.flatnonzero(kp == key), np.flatnonzero(kd == key)
            A, B = float(a[ip].sum()), float(b[jd].sum())
            F = min(A, B)
            if F <= 0:
                continue
            fa, fb = a[ip] / A, b[jd] / B
            S[np.ix_(ip, jd)] += F * fa[:, None] * fb[None, :]
            a[ip] -= F * fa
            b[jd] -= F * fb
    return S


def _kv_matrix(model, pre, dec, g_pre: Optional[int] = None, g_dec: Optional[int] = None) -> np.ndarray:
    """Bytes per prompt token from each prefill rank (rows) to each decode rank (columns) of one
    (prefill, decode) replica pair; averaged over the attention groups, or for one group each."""
    H, L = model.kv_heads, model.layers
    block = 2.0 * model.head_dim * dtype_bytes(model.kv_dtype)   # one (layer, KV head) of one token
    lay, head = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    lay, head = lay.ravel(), head.ravel()

    def holders(pool):
        """(stage, tp index of the first holder, copies) of every (layer, head) block."""
        stage = lay // (L // pool.pp)
        if pool.tp <= H:
            return stage, head // (H // pool.tp), 1
        r = pool.tp // H
        return stage, head * r, r

    s_p, t_p, _ = holders(pre)
    s_d, t_d, copies = holders(dec)
    gp_n, gd_n = pre.stage_ranks // pre.tp, dec.stage_ranks // dec.tp
    gps = range(gp_n) if g_pre is None else [g_pre]
    gds = range(gd_n) if g_dec is None else [g_dec]
    w = block / (len(gps) * len(gds))
    M = np.zeros((pre.accelerators, dec.accelerators))
    for gp in gps:
        src = s_p * pre.stage_ranks + gp * pre.tp + t_p
        for gd in gds:
            for c in range(copies):
                dst = s_d * dec.stage_ranks + gd * dec.tp + t_d + c
                np.add.at(M, (src, dst), w)
    return M


@dataclass(frozen=True, eq=False)
class ServingTraffic:
    """Flows of the serving deployments at their stated load.

    demands: Demands whose ``bytes`` are bytes per second and ``job`` the deployment index
    (``job_names`` the deployment names; -1 for nothing). kind: index into KINDS per flow.
    replicas: the placement, ``{(deployment, role): [replicas, ranks]}``.
    bytes_per_s: per deployment, bytes per second by kind (all flows, scale-up ones included).
    kv: per deployment (disaggregated only) the per-request KV matrices: ``{"per_token": M}``,
    M the bytes per prompt token from each prefill rank to each decode rank for one request
    (attention group 0 of each replica).
    """
    demands: Demands
    kind: np.ndarray
    replicas: dict
    bytes_per_s: dict
    kv: dict = field(default_factory=dict)


def _flows(acc, eps_src, eps_dst, nbytes, kind, dep):
    s = np.asarray(eps_src, np.int64)
    b = np.broadcast_to(np.asarray(nbytes, np.float64), s.shape).ravel()
    s = s.ravel()
    d = np.asarray(eps_dst, np.int64).ravel()
    keep = (s != d) & (b > 0)
    acc.append((s[keep], d[keep], b[keep], np.full(int(keep.sum()), KINDS.index(kind), np.int16),
                np.full(int(keep.sum()), dep, np.int32)))


def _pool_flows(acc, model, pool, R: np.ndarray, tokens_per_s: float, dep: int) -> None:
    """TP all-reduce, pipeline send and MoE all-to-all flows of every replica in ``R``
    ([replicas, ranks]) processing ``tokens_per_s`` tokens per second each."""
    if tokens_per_s <= 0:
        return
    h, ab = float(model.hidden_size), dtype_bytes(model.activation_dtype)
    Ls = model.layers // pool.pp
    moe_ep = model.experts is not None and pool.ep > 1
    per_layer = 1 if moe_ep else 2
    sr, groups = pool.stage_ranks, pool.stage_ranks // pool.tp
    # [replicas, pp, groups, tp] view of the ranks
    V = R.reshape(R.shape[0], pool.pp, groups, pool.tp)
    if pool.tp > 1:
        S = tokens_per_s / groups * h * ab * per_layer * Ls     # bytes all-reduced per group per second
        s, d, b = expand_collective(V.reshape(-1, pool.tp), "allreduce", "ring", S)
        _flows(acc, s, d, b, "tp_allreduce", dep)
    if moe_ep:
        S = tokens_per_s / sr * model.experts_per_token * h * ab * Ls   # per rank per second, to all ranks
        G = V.reshape(-1, sr)
        s, d, b = expand_collective(G, "alltoall", "direct", S)
        _flows(acc, s, d, b, "moe_dispatch", dep)
        _flows(acc, s, d, b, "moe_combine", dep)     # the same bytes return, i to j for j's tokens
    if pool.pp > 1:
        W = R.reshape(R.shape[0], pool.pp, sr)
        _flows(acc, W[:, :-1, :], W[:, 1:, :], tokens_per_s * h * ab / sr, "pp_send", dep)


def agent_hosts(cluster, fabric, tier) -> np.ndarray:
    """Endpoint ids of an agent tier's hosts, in node order (none for a node type ``cluster`` does not
    have, e.g. one in no rack, which the front-end's derived cluster leaves out)."""
    if tier.node_type not in cluster.node_types:
        return np.zeros(0, np.int64)
    t = list(cluster.node_types).index(tier.node_type)
    ep_type = np.asarray(fabric.server_type)[np.asarray(fabric.ep_server)]
    eps = np.flatnonzero(ep_type == t)
    return eps if tier.hosts is None else eps[:tier.hosts]


def _tier_hosts(cluster, fabric, agent_tiers) -> dict:
    """Every agent tier's host endpoints on ``fabric``; refused with the tier's path when too few."""
    hosts = {}
    for i, t in enumerate(agent_tiers):
        e = agent_hosts(cluster, fabric, t)
        if e.size == 0 or (t.hosts is not None and e.size < t.hosts):
            n = 0 if e.size == 0 else e.size
            raise SpecError([(f"serving.agent_tiers[{i}].hosts" if t.hosts is not None else
                              f"serving.agent_tiers[{i}].node_type",
                              f"the cluster has {n} node(s) of type {t.node_type!r}"
                              + (f"; the tier asks for {t.hosts}" if t.hosts is not None else ""))])
        hosts[t.name] = e
    return hosts


def _agent_flows(acc, sv, d, k: int, hosts: dict, entry, exit_, R: float) -> None:
    """Deployment ``d``'s request and response flows between the hosts of every tier naming it and its
    replicas' entry and exit endpoints (``R`` requests per second, split evenly over hosts and entries)."""
    tiers = [t for t in sv.agent_tiers if d.name in t.deployments and t.name in hosts]
    H = np.concatenate([hosts[t.name] for t in tiers]) if tiers else np.zeros(0, np.int64)
    if H.size:
        req = np.concatenate([np.full(hosts[t.name].size, t.request_bytes) for t in tiers])
        resp = np.concatenate([np.full(hosts[t.name].size, t.response_bytes) for t in tiers])
        share = R / H.size
        _flows(acc, np.repeat(H, entry.size), np.tile(entry, H.size),
               np.repeat(req * share / entry.size, entry.size), "agent_request", k)
        _flows(acc, np.tile(exit_, H.size), np.repeat(H, exit_.size),
               np.repeat(resp * share / exit_.size, exit_.size), "agent_response", k)


def _entry_exit(d, reps) -> tuple[np.ndarray, np.ndarray]:
    """A deployment's request entry (first rank of every prefill or colocated replica) and response exit
    (first rank of the last stage of every decode or colocated replica) endpoints."""
    if d.colocated is not None:
        P = reps[(d.name, "colocated")]
        return P[:, 0], P[:, -d.colocated.stage_ranks]
    return reps[(d.name, "prefill")][:, 0], reps[(d.name, "decode")][:, -d.decode.stage_ranks]


def agent_traffic(cluster, fabric, front_cluster, front, replicas: dict, scale: float = 1.0) -> ServingTraffic:
    """The agent tiers' request and response flows on the front-end fabric ``front`` (of the derived
    cluster ``front_cluster``, :func:`topo.model.frontend.front_end_cluster`): from each agent host's
    front-end NIC(s) to the front-end NIC(s) of the host holding each replica's entry rank, and back from
    the host of its exit rank, split as on the back-end (module docstring). Front-end endpoint = host
    index, so a back-end endpoint's host is ``fabric.ep_server``. The PCIe hop between a host's front-end
    NIC and its accelerators is not modelled. ``replicas`` as :func:`serving_traffic` placed them."""
    sv = cluster.file.serving
    hosts = _tier_hosts(front_cluster, front, sv.agent_tiers)
    host = np.asarray(fabric.ep_server, np.int64)
    acc: list = []
    by_kind = {}
    for k, d in enumerate(sv.deployments):
        start = len(acc)
        entry, exit_ = _entry_exit(d, replicas)
        _agent_flows(acc, sv, d, k, hosts, host[entry], host[exit_], d.load.requests_per_s * scale)
        by_kind[d.name] = {kk: 0.0 for kk in ("agent_request", "agent_response")}
        for _, _, b, kind, _ in acc[start:]:
            if b.size:
                by_kind[d.name][KINDS[int(kind[0])]] += float(b.sum())
    return _serving_result(acc, sv, replicas, by_kind, {})


def _serving_result(acc, sv, reps, by_kind, kv) -> ServingTraffic:
    if acc:
        src = np.concatenate([a[0] for a in acc])
        dst = np.concatenate([a[1] for a in acc])
        nb = np.concatenate([a[2] for a in acc])
        kind = np.concatenate([a[3] for a in acc])
        job = np.concatenate([a[4] for a in acc])
    else:
        src = dst = np.zeros(0, np.int64)
        nb, kind, job = np.zeros(0), np.zeros(0, np.int16), np.zeros(0, np.int32)
    names = tuple(d.name for d in sv.deployments)
    dem = Demands(src, dst, nb, job, nb * 8 / 1e9, names, tuple(0.0 for _ in names))
    return ServingTraffic(dem, kind, reps, by_kind, kv)


def serving_traffic(cluster, fabric, placement: Optional[dict] = None, scale: float = 1.0,
                    replicas: Optional[dict] = None, kv_routing: Optional[str] = None) -> ServingTraffic:
    """The flows of every deployment and agent tier at ``scale`` x the stated request rates; the
    replicas where ``replicas`` puts them (``{(deployment, role): [replicas, ranks]}``; a pool's
    replica count is its rows), else in order after the training jobs (``placement``).
    ``kv_routing``: ``even`` or ``local`` for every deployment (default: each deployment's own)."""
    sv = cluster.file.serving
    reps = serving_placement(cluster, fabric, placement) if replicas is None else replicas
    if kv_routing is not None and kv_routing not in KV_ROUTINGS:
        raise SpecError([("kv_routing", f"expected one of {list(KV_ROUTINGS)} (found {kv_routing!r})")])
    home = None
    acc: list = []
    by_kind = {}
    kv = {}
    # with a front-end fabric the agent flows are there (agent_traffic), not on this fabric
    hosts = _tier_hosts(cluster, fabric, sv.agent_tiers) if cluster.file.front_end is None else {}
    for k, d in enumerate(sv.deployments):
        m, ld = d.model, d.load
        R = ld.requests_per_s * scale
        start = len(acc)
        if d.colocated is not None:
            P = reps[(d.name, "colocated")]
            tok = R / max(P.shape[0], 1) * (ld.prompt_tokens.mean + ld.output_tokens.mean)
            _pool_flows(acc, m, d.colocated, P, tok, k)
            entry, exit_ = P[:, 0], P[:, -d.colocated.stage_ranks]
        else:
            P, D = reps[(d.name, "prefill")], reps[(d.name, "decode")]
            _pool_flows(acc, m, d.prefill, P, R / max(P.shape[0], 1) * ld.prompt_tokens.mean, k)
            _pool_flows(acc, m, d.decode, D, R / max(D.shape[0], 1) * ld.output_tokens.mean, k)
            M = _kv_matrix(m, d.prefill, d.decode)
            rows, cols = np.nonzero(M)
            if P.shape[0] and D.shape[0]:
                if home is None:
                    home = replica_homes(fabric)
                S = kv_shares(kv_routing or d.kv_routing, home["leaf"][P[:, 0]], home["pod"][P[:, 0]],
                              home["leaf"][D[:, 0]], home["pod"][D[:, 0]])
                per_pair = R * ld.prompt_tokens.mean * S          # prompt tokens/s of each (prefill, decode) pair
                src = P[:, rows][:, None, :].repeat(D.shape[0], axis=1)
                dst = D[:, cols][None, :, :].repeat(P.shape[0], axis=0)
                _flows(acc, src, dst, M[rows, cols][None, None, :] * per_pair[:, :, None], "kv_transfer", k)
            kv[d.name] = {"per_token": _kv_matrix(m, d.prefill, d.decode, 0, 0)}
            entry, exit_ = P[:, 0], D[:, -d.decode.stage_ranks]
        _agent_flows(acc, sv, d, k, hosts, entry, exit_, R)
        by_kind[d.name] = {kk: 0.0 for kk in KINDS}
        for s, dd, b, kind, _ in acc[start:]:
            for ki in np.unique(kind):
                by_kind[d.name][KINDS[int(ki)]] += float(b[kind == ki].sum())
    return _serving_result(acc, sv, reps, by_kind, kv)


def kv_transfer_time_s(fabric, pre_eps, dec_eps, per_token: np.ndarray, tokens: float,
                       efficiency: float, injection_gbps: Optional[np.ndarray] = None) -> float:
    """Time to move one request's KV cache of ``tokens`` prompt tokens from the prefill ranks
    ``pre_eps`` to the decode ranks ``dec_eps`` on an idle fabric: the largest, over the ranks, of
    the bytes each sends or receives over its NIC goodput (``injection_gbps x efficiency``), and of
    the bytes it sends or receives inside its scale-up domain over the domain's bandwidth per
    accelerator. Cost O(ranks), independent of the fabric's size (``injection_gbps`` may be passed
    in to reuse it across calls)."""
    pre = np.asarray(pre_eps, np.int64)
    dec = np.asarray(dec_eps, np.int64)
    inj = fabric.injection_gbps() if injection_gbps is None else injection_gbps
    dom = np.asarray(fabric.ep_domain)
    B = per_token * float(tokens)
    B = np.where(pre[:, None] == dec[None, :], 0.0, B)          # a rank that keeps its own share
    same = (dom[pre][:, None] == dom[dec][None, :]) & (dom[pre][:, None] >= 0)
    t = 0.0
    for mask, cap_src, cap_dst in (
            (~same, inj[pre] * efficiency, inj[dec] * efficiency),
            (same, fabric.domain_gbps[np.maximum(dom[pre], 0)], fabric.domain_gbps[np.maximum(dom[dec], 0)])):
        Bm = np.where(mask, B, 0.0)
        for sent, cap in ((Bm.sum(axis=1), cap_src), (Bm.sum(axis=0), cap_dst)):
            busy = sent > 0
            if busy.any():
                c = np.asarray(cap, float)[busy]
                per = np.where(c > 0, sent[busy] * 8 / (np.where(c > 0, c, 1.0) * 1e9), np.inf)
                t = max(t, float(per.max()))
    return t
