# cython: language_level=3
"""Routing kernels: shortest-path ECMP over the fabric arrays.

All kernels work per destination group (endpoints with the same multiset of
alive home switches), flows sorted by group. For each group a BFS from the home
switches over the reversed alive switch-to-switch links gives ``dist`` (hops to
the group) and ``sigma`` (number of shortest paths; at a home switch, the
number of parallel links to an endpoint). Endpoints are never transit nodes.

State: the general kernels take topo.routing.kstate objects (fabric, flows, work, loads,
options), the Clos kernels theirs (tables, demands or cross flows, work, options); each entry
point reads them once into the typed views of ext/topo/_routing.pxd or into typed locals, and
the loops index typed memoryviews. topo.routing.kernels checks every array before the call.
Their arrays (attribute names):
  sw_ptr, sw_adj   CSR over all nodes of the ALIVE links from a switch to a switch
  sw_head          link_dst[sw_adj] (the switch each CSR entry leads to)
  link_dst, link_gbps
  up_ptr, up_link  alive uplinks of every endpoint, sorted by (home switch, link id)
  ep_up1, ep_home1 the only alive uplink of an endpoint and its switch (-1 if not exactly one)
  g_ptr            flows of group g are g_ptr[g] .. g_ptr[g+1]-1
  g_rep, g_id      a member endpoint of the group, and the group's row in grp_*
  f_src            source endpoint (a member of src group f_sg when f_sg >= 0)
  f_dst            destination endpoint (ignored when the flow spreads: f_dst < 0)
  f_sg             -1, or the source group whose members share the flow evenly
  f_mass           offered load (Gb/s) of the flow
Work arrays: dist (int64, all -1 on entry and on exit), hidx (int64, all -1),
tstamp (int64, all -1 on entry; stamps of the sources' first hops per group),
tlist (int64, those first hops of the current group),
sigma, den, mass (float64, mass all 0 on entry and exit), order (int64),
A (float64, n_nodes * KH), lh (float64, 2 * KH).

route_fluid(mode): mode 0 = fluid (split ~ sigma of the next hop: every
shortest path equally), 1 = wcmp (split ~ link capacity), 2 = spray (equal
split over the next-hop links at each hop). Cost O(groups * switch links +
flows * uplinks * KH).

route_uniform: the uniform all-to-all towards a list of destination groups, the sources
aggregated in the kernel (one injection per source group and destination); one recorded
shortest-path DAG per destination (branch-free, direction-optimising BFS) and one push along
it, chunks of destinations on OpenMP threads. Cost O(destinations * (switch links + groups)).

route_hash: every (flow, queue pair) takes ONE link at each hop, chosen by a
splitmix64 hash of (seed, flow id, qp, node) mapped onto the equal-cost
next-hop links (multiply-shift of the high 32 bits). Next-hop lists are built
lazily per group (nh_cnt all -1 on entry and exit). Cost O(BFS + qps * path
length).

waterfill: weighted max-min fair rates of paths over link capacities
(bottleneck order with a lazy binary heap). Cost O(total path length * log).

maxmin_times: per-QP max-min completion times (engine.completion_times, sharing "max-min"):
waterfill's progressive filling kept as a log of events per component of paths, and when
paths finish, undone back to the first event that froze one of them and resumed from there
(the same bits as water-filling the rest again). Its heap is indexed by link (one entry per link
with active paths, updated in place), the active paths' rates and bytes left are contiguous
arrays compacted as paths finish. Cost per refill round O(active paths) plus the events replayed.
"""
import threading

import numpy as np
from cython.parallel cimport prange, threadid
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.string cimport memset
from cpython.ref cimport PyObject
from _typedefs cimport id_t, real_t, uint8_t, int32_t, int64_t, uint64_t, TOPO_BOUNDSCHECK

_EMPTY_I = np.zeros(0, np.int64)
_EMPTY_F = np.zeros(0)

# whether this build checks every index (built with TOPO_BOUNDSCHECK=1, see setup.py)
BOUNDSCHECK = bool(TOPO_BOUNDSCHECK)

cdef extern from *:
    """
    #ifdef _OPENMP
    #define TOPO_OPENMP 1
    #else
    #define TOPO_OPENMP 0
    #endif
    """
    const int TOPO_OPENMP

# whether this build runs its parallel loops on several threads (compiled with OpenMP, see setup.py)
OPENMP = bool(TOPO_OPENMP)


cdef inline uint64_t _mix(uint64_t z) noexcept nogil:
    z = z + <uint64_t>0x9E3779B97F4A7C15ULL
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline uint64_t _qp_key(uint64_t seed, uint64_t fid, uint64_t q) noexcept nogil:
    # a flow key from a full mix; queue pairs differ by a Weyl step (each hop hash mixes again)
    return (_mix(_mix(seed) ^ fid)) ^ (q * <uint64_t>0x9E3779B97F4A7C15ULL)


cdef inline uint64_t _hop(uint64_t key, uint64_t node) noexcept nogil:
    return _mix(key ^ (node * <uint64_t>0xD6E8FEB86659FD93ULL))


def bucket_flows(const id_t[::1] src, const id_t[::1] dst, const real_t[::1] rate, const real_t[::1] nbytes,
                 real_t inv_eff, const int64_t[::1] ep_domain, const int64_t[::1] ep_group,
                 int64_t[::1] g_ptr, int64_t[::1] cursor,
                 int64_t[::1] f_idx, int64_t[::1] f_src, int64_t[::1] f_dst, real_t[::1] f_mass,
                 real_t[::1] unreach, real_t[::1] stats):
    """Classify flows and counting-sort the routable ones by destination group (stable).

    A flow is routed when src != dst, the two are not in one scale-up domain
    and both have a group; mass = rate * inv_eff. Flows that should be routed
    but have no group add their mass to unreach. g_ptr (groups + 1) and cursor
    (groups) must be zero; outputs hold n flows. stats (>= 7) receives:
    offered mass (src != dst), same-domain flows, min and max of bytes/mass
    over routed flows with mass > 0, routed flows with mass <= 0, negative
    rates or bytes, unreachable mass. Returns the number of routed flows. O(n).
    """
    cdef id_t n = src.shape[0], ng = cursor.shape[0], i, g, c = 0, a, b
    cdef real_t m, r, lo = 1e308, hi = -1e308, offered = 0.0, unr = 0.0
    cdef id_t same = 0, nonpos = 0, neg = 0
    with nogil:
        for i in range(n):
            if rate[i] < 0.0 or nbytes[i] < 0.0:
                neg += 1
            a = src[i]
            b = dst[i]
            if a == b:
                continue
            m = rate[i] * inv_eff
            offered += m
            if ep_domain[a] >= 0 and ep_domain[a] == ep_domain[b]:
                same += 1
                continue
            g = ep_group[b]
            if g < 0 or ep_group[a] < 0:
                continue
            g_ptr[g + 1] += 1
        for g in range(ng):
            g_ptr[g + 1] += g_ptr[g]
            cursor[g] = g_ptr[g]
        for i in range(n):
            a = src[i]
            b = dst[i]
            if a == b or (ep_domain[a] >= 0 and ep_domain[a] == ep_domain[b]):
                continue
            m = rate[i] * inv_eff
            g = ep_group[b]
            if g < 0 or ep_group[a] < 0:
                unreach[i] += m
                unr += m
                continue
            if m > 0.0:
                r = nbytes[i] / m
                if r < lo:
                    lo = r
                if r > hi:
                    hi = r
            else:
                nonpos += 1
            c = cursor[g]
            cursor[g] = c + 1
            f_idx[c] = i
            f_src[c] = a
            f_dst[c] = b
            f_mass[c] = m
    stats[0] = offered
    stats[1] = same
    stats[2] = lo
    stats[3] = hi
    stats[4] = nonpos
    stats[5] = neg
    stats[6] = unr
    return g_ptr[ng]


cdef inline id_t _pick(uint64_t h, id_t c) noexcept nogil:
    """h mapped onto 0..c-1 by multiply-shift of its high 32 bits (no division)."""
    return <id_t>(((h >> 32) * <uint64_t>c) >> 32)


def pick(uint64_t h, id_t c):
    return _pick(h, c)


def hash_hop(uint64_t seed, uint64_t fid, uint64_t q, uint64_t node):
    """The hash a queue pair uses at a node (exposed for tests and the twin)."""
    return _hop(_qp_key(seed, fid, q), node)


cdef inline id_t _bfs(id_t t, int mode, id_t g, id_t ntarget,
                      const id_t[::1] sw_ptr, const id_t[::1] sw_adj, const id_t[::1] sw_head,
                      const id_t[::1] link_dst, const real_t[::1] link_gbps,
                      const id_t[::1] up_ptr, const id_t[::1] up_link, int64_t[::1] tstamp,
                      const int64_t[::1] tlist,
                      int64_t[::1] dist, int64_t[::1] hidx, real_t[::1] sigma, real_t[::1] den,
                      int64_t[::1] order, id_t* n_homes) except -1 nogil:
    """Level-synchronous BFS from the homes of endpoint t; returns the number of visited switches.

    Stops once every target (the ntarget switches in tlist, stamped g in
    tstamp: first hops of the group's sources) has its final dist and sigma.
    When the targets still missing all neighbour the current level, they are
    pulled in directly (their sigma summed over those neighbours) instead of
    expanding the whole level.
    """
    cdef id_t nq = 0, nh = 0, k, u, h, n, j, s, i, x, lo, hi, d = 0
    cdef id_t remaining = ntarget
    cdef bint ok, found
    for k in range(up_ptr[t], up_ptr[t + 1]):
        u = up_link[k]
        h = link_dst[u]
        if dist[h] < 0:
            dist[h] = 0
            sigma[h] = 0.0
            den[h] = 0.0
            hidx[h] = nh
            nh += 1
            order[nq] = h
            nq += 1
            if tstamp[h] == g:
                remaining -= 1
        sigma[h] += 1.0
        if mode == 1:
            den[h] += link_gbps[u ^ 1]
        else:
            den[h] += 1.0
    lo = 0
    hi = nq
    while lo < hi and remaining > 0:
        if remaining <= 512:
            ok = True
            for i in range(ntarget):
                x = tlist[i]
                if dist[x] >= 0:
                    continue
                found = False
                for j in range(sw_ptr[x], sw_ptr[x + 1]):
                    if dist[sw_head[j]] == d:
                        found = True
                        break
                if not found:
                    ok = False
                    break
            if ok:
                for i in range(ntarget):
                    x = tlist[i]
                    if dist[x] >= 0:
                        continue
                    dist[x] = d + 1
                    sigma[x] = 0.0
                    den[x] = 0.0
                    for j in range(sw_ptr[x], sw_ptr[x + 1]):
                        n = sw_head[j]
                        if dist[n] == d:
                            sigma[x] += sigma[n]
                            if mode == 0:
                                den[x] += sigma[n]
                            elif mode == 1:
                                den[x] += link_gbps[sw_adj[j]]
                            else:
                                den[x] += 1.0
                    order[nq] = x
                    nq += 1
                remaining = 0
                break
        for i in range(lo, hi):
            n = order[i]
            for j in range(sw_ptr[n], sw_ptr[n + 1]):
                s = sw_head[j]
                if dist[s] < 0:
                    dist[s] = d + 1
                    sigma[s] = 0.0
                    den[s] = 0.0
                    order[nq] = s
                    nq += 1
                    if tstamp[s] == g:
                        remaining -= 1
                if dist[s] == d + 1:
                    sigma[s] += sigma[n]
                    if mode == 0:
                        den[s] += sigma[n]
                    elif mode == 1:
                        den[s] += link_gbps[sw_adj[j] ^ 1]
                    else:
                        den[s] += 1.0
        lo = hi
        hi = nq
        d += 1
    n_homes[0] = nh
    return nq


cdef inline id_t _stamp(id_t g, id_t lo, id_t hi, const id_t[::1] f_src, const id_t[::1] up_ptr,
                        const id_t[::1] up_link, const id_t[::1] link_dst, int64_t[::1] tstamp,
                        int64_t[::1] tlist) except -1 nogil:
    """Stamp the first-hop switches of flows lo..hi-1 with g and list them; returns how many."""
    cdef id_t f, k, h, e, c = 0, last = -1
    for f in range(lo, hi):
        e = f_src[f]
        if e == last:
            continue
        last = e
        for k in range(up_ptr[e], up_ptr[e + 1]):
            h = link_dst[up_link[k]]
            if tstamp[h] != g:
                tstamp[h] = g
                tlist[c] = h
                c += 1
    return c


cdef inline real_t _w(int mode, id_t r, id_t n, const real_t[::1] link_gbps, real_t[::1] sigma) except? -1.0 nogil:
    if mode == 0:
        return sigma[n]
    if mode == 1:
        return link_gbps[r]
    return 1.0


cdef int _fluid_group(id_t g, int mode, int KU, int KH,
                      const id_t[::1] sw_ptr, const id_t[::1] sw_adj, const id_t[::1] sw_head,
                      const id_t[::1] link_dst, const real_t[::1] link_gbps,
                      const id_t[::1] up_ptr, const id_t[::1] up_link, const id_t[::1] ep_up1,
                      const id_t[::1] ep_home1, const id_t[::1] g_ptr, const id_t[::1] g_rep, const id_t[::1] g_id,
                      const id_t[::1] f_src, const id_t[::1] f_dst, const id_t[::1] f_sg, const real_t[::1] f_mass,
                      int64_t[::1] dist, int64_t[::1] hidx, real_t[::1] sigma, real_t[::1] den, real_t[::1] mass,
                      int64_t[::1] order, int64_t[::1] tstamp, int64_t[::1] tlist, real_t[::1] A, real_t[::1] lh,
                      real_t[::1] load, real_t[::1] grp_up, real_t[::1] grp_down, real_t[::1] unreach,
                      const real_t[::1] f_mass2, real_t[::1] load2, real_t[::1] mass2, bint two,
                      id_t* bad) except -1 nogil:
    """The flows of destination group g (route_fluid's work for one group); returns 1, with the
    destination in bad[0], if a destination does not share its group's home switches."""
    cdef id_t f, nq, nh, nt, idx, s, n, r, j, k, u, h, e, td, jj, best, k0
    cdef real_t m, tot, x, share, wv, rr = 0.0
    if g_ptr[g] == g_ptr[g + 1]:
        return 0
    nt = _stamp(g, g_ptr[g], g_ptr[g + 1], f_src, up_ptr, up_link, link_dst, tstamp, tlist)
    nq = _bfs(g_rep[g], mode, g, nt, sw_ptr, sw_adj, sw_head, link_dst, link_gbps, up_ptr, up_link,
              tstamp, tlist, dist, hidx, sigma, den, order, &nh)
    if nq == 0:
        for f in range(g_ptr[g], g_ptr[g + 1]):
            unreach[f] += f_mass[f]
        return 0
    if nh > 1:
        # A[s, j]: fraction of mass at s that reaches home j
        for idx in range(nq):
            s = order[idx]
            for jj in range(nh):
                A[s * KH + jj] = 0.0
            if dist[s] == 0:
                A[s * KH + hidx[s]] = 1.0
                continue
            for j in range(sw_ptr[s], sw_ptr[s + 1]):
                r = sw_adj[j]
                n = sw_head[j]
                if dist[n] != dist[s] - 1:
                    continue
                wv = _w(mode, r, n, link_gbps, sigma) / den[s]
                for jj in range(nh):
                    A[s * KH + jj] += wv * A[n * KH + jj]
    for f in range(g_ptr[g], g_ptr[g + 1]):
        e = f_src[f]
        m = f_mass[f]
        if two:
            rr = f_mass2[f] / m if m > 0.0 else 0.0
        u = ep_up1[e]
        if u >= 0 and nh == 1 and f_dst[f] >= 0 and ep_up1[f_dst[f]] >= 0:
            # single-homed at both ends (the common case): no split at either end
            h = ep_home1[e]
            if dist[h] < 0:
                unreach[f] += m
                continue
            if f_sg[f] >= 0:
                grp_up[f_sg[f] * KU] += m
            else:
                load[u] += m
            mass[h] += m
            load[ep_up1[f_dst[f]] ^ 1] += m
            if two:
                load2[u] += m * rr
                mass2[h] += m * rr
                load2[ep_up1[f_dst[f]] ^ 1] += m * rr
            continue
        best = -1
        tot = 0.0
        for k in range(up_ptr[e], up_ptr[e + 1]):
            u = up_link[k]
            h = link_dst[u]
            if dist[h] < 0:
                continue
            if best < 0 or dist[h] < best:
                best = dist[h]
                tot = 0.0
            if dist[h] == best:
                if mode == 0:
                    tot += sigma[h]
                elif mode == 1:
                    tot += link_gbps[u]
                else:
                    tot += 1.0
        if best < 0 or m == 0.0:
            if best < 0:
                unreach[f] += m
            continue
        for jj in range(nh):
            lh[jj] = 0.0
        k0 = up_ptr[e]
        for k in range(up_ptr[e], up_ptr[e + 1]):
            u = up_link[k]
            h = link_dst[u]
            if dist[h] != best:
                continue
            if mode == 0:
                share = m * sigma[h] / tot
            elif mode == 1:
                share = m * link_gbps[u] / tot
            else:
                share = m / tot
            if f_sg[f] >= 0:
                grp_up[f_sg[f] * KU + (k - k0)] += share
            else:
                load[u] += share
            mass[h] += share
            if two:
                load2[u] += share * rr
                mass2[h] += share * rr
            if nh == 1:
                lh[0] += share
            else:
                for jj in range(nh):
                    lh[jj] += share * A[h * KH + jj]
        td = f_dst[f]
        if td < 0:
            td = g_rep[g]
        k0 = up_ptr[td]
        for k in range(up_ptr[td], up_ptr[td + 1]):
            if hidx[link_dst[up_link[k]]] < 0:
                bad[0] = td      # reported by route_fluid (the first such block, for a fixed message)
                return 1
        if mode == 1:
            # capacities of td's own links from each home (members may differ)
            for jj in range(nh):
                lh[KH + jj] = 0.0
            for k in range(up_ptr[td], up_ptr[td + 1]):
                u = up_link[k]
                lh[KH + hidx[link_dst[u]]] += link_gbps[u ^ 1]
        for k in range(up_ptr[td], up_ptr[td + 1]):
            u = up_link[k]
            h = link_dst[u]
            if mode == 1:
                x = lh[hidx[h]] * link_gbps[u ^ 1] / lh[KH + hidx[h]]
            else:
                x = lh[hidx[h]] / den[h]
            if f_dst[f] < 0:
                grp_down[g_id[g] * KU + (k - k0)] += x
            else:
                load[u ^ 1] += x
                if two:
                    load2[u ^ 1] += x * rr
    # propagate aggregated mass towards the homes, farthest switches first
    for idx in range(nq - 1, -1, -1):
        s = order[idx]
        if dist[s] == 0:
            break
        m = mass[s]
        if m == 0.0:
            continue
        for j in range(sw_ptr[s], sw_ptr[s + 1]):
            r = sw_adj[j]
            n = sw_head[j]
            if dist[n] != dist[s] - 1:
                continue
            wv = _w(mode, r, n, link_gbps, sigma) / den[s]
            x = m * wv
            load[r] += x
            mass[n] += x
            if two:
                load2[r] += mass2[s] * wv
                mass2[n] += mass2[s] * wv
    for idx in range(nq):
        s = order[idx]
        dist[s] = -1
        hidx[s] = -1
        mass[s] = 0.0
        if two:
            mass2[s] = 0.0
    return 0


cdef int _fluid_block(id_t glo, id_t ghi, int mode, int KU, int KH, FabricView fb, FlowsView fl, WorkView w,
                      LoadsView o, bint two, int64_t[::1] bad, id_t b) except -1 nogil:
    """Groups glo .. ghi-1 in order into one block's outputs (o; w its thread's work arrays);
    stops at the first bad destination. The views' arrays are taken into typed locals once per
    block and handed to _fluid_group as arguments, which keeps its loops as fast as plain
    memoryview arguments (attribute access in the loops measured 10-15% slower)."""
    cdef id_t g, td = -1
    cdef const id_t[::1] sw_ptr = fb.sw_ptr, sw_adj = fb.sw_adj, sw_head = fb.sw_head, link_dst = fb.link_dst
    cdef const id_t[::1] up_ptr = fb.up_ptr, up_link = fb.up_link, ep_up1 = fb.ep_up1, ep_home1 = fb.ep_home1
    cdef const real_t[::1] link_gbps = fb.link_gbps
    cdef const id_t[::1] g_ptr = fl.g_ptr, g_rep = fl.g_rep, g_id = fl.g_id, f_src = fl.f_src, f_dst = fl.f_dst
    cdef const id_t[::1] f_sg = fl.f_sg
    cdef const real_t[::1] f_mass = fl.f_mass, f_mass2 = fl.f_mass2
    cdef int64_t[::1] dist = w.dist, hidx = w.hidx, order = w.order, tstamp = w.tstamp, tlist = w.tlist
    cdef real_t[::1] sigma = w.sigma, den = w.den, mass = w.mass, A = w.A, lh = w.lh, mass2 = w.mass2
    cdef real_t[::1] load = o.load, grp_up = o.grp_up, grp_down = o.grp_down, unreach = o.unreach, load2 = o.load2
    for g in range(glo, ghi):
        if _fluid_group(g, mode, KU, KH, sw_ptr, sw_adj, sw_head, link_dst, link_gbps, up_ptr, up_link, ep_up1,
                        ep_home1, g_ptr, g_rep, g_id, f_src, f_dst, f_sg, f_mass, dist, hidx, sigma, den, mass,
                        order, tstamp, tlist, A, lh, load, grp_up, grp_down, unreach, f_mass2, load2, mass2, two,
                        &td):
            bad[2 * b] = td
            bad[2 * b + 1] = g
            return 1
    return 0


cdef class FabricView:
    pass


cdef class FlowsView:
    pass


cdef class WorkView:
    pass


cdef class LoadsView:
    pass


cdef class ClosView:
    pass


cdef class ClosDemandsView:
    pass


cdef class ClosWorkView:
    pass


cdef FabricView _fabric_view(fabric):
    cdef FabricView v = FabricView.__new__(FabricView)
    v.sw_ptr = fabric.sw_ptr
    v.sw_adj = fabric.sw_adj
    v.sw_head = fabric.sw_head
    v.link_dst = fabric.link_dst
    v.link_gbps = fabric.link_gbps
    v.up_ptr = fabric.up_ptr
    v.up_link = fabric.up_link
    v.ep_up1 = fabric.ep_up1
    v.ep_home1 = fabric.ep_home1
    return v


cdef FlowsView _flows_view(flows):
    cdef FlowsView v = FlowsView.__new__(FlowsView)
    v.g_ptr = flows.g_ptr
    v.g_rep = flows.g_rep
    v.g_id = flows.g_id
    v.f_src = flows.f_src
    v.f_dst = flows.f_dst
    v.f_sg = flows.f_sg
    v.f_id = flows.f_id
    v.f_mass = flows.f_mass
    v.f_mass2 = flows.f_mass2
    return v


cdef WorkView _work_view(dist, hidx, sigma, den, mass, mass2, order, tstamp, tlist, A, lh, nh_start, nh_cnt,
                         nh_list, nh_head):
    cdef WorkView v = WorkView.__new__(WorkView)
    v.dist = dist
    v.hidx = hidx
    v.sigma = sigma
    v.den = den
    v.mass = mass
    v.mass2 = mass2
    v.order = order
    v.tstamp = tstamp
    v.tlist = tlist
    v.A = A
    v.lh = lh
    v.nh_start = nh_start
    v.nh_cnt = nh_cnt
    v.nh_list = nh_list
    v.nh_head = nh_head
    return v


cdef WorkView _work_of(work):
    return _work_view(work.dist, work.hidx, work.sigma, work.den, work.mass, work.mass2, work.order, work.tstamp,
                      work.tlist, work.A, work.lh, work.nh_start, work.nh_cnt, work.nh_list, work.nh_head)


cdef LoadsView _loads_view(load, load2, grp_up, grp_down, unreach, path):
    cdef LoadsView v = LoadsView.__new__(LoadsView)
    v.load = load
    v.load2 = load2
    v.grp_up = grp_up
    v.grp_down = grp_down
    v.unreach = unreach
    v.path = path
    return v


cdef LoadsView _loads_of(loads):
    return _loads_view(loads.load, loads.load2, loads.grp_up, loads.grp_down, loads.unreach, loads.path)


cdef ClosView _clos_view(tables):
    cdef ClosView v = ClosView.__new__(ClosView)
    v.ept = tables.ept
    v.pod_b1 = tables.pod_b1
    v.up_ptr = tables.up_ptr
    v.uph = tables.uph
    v.sd_base = tables.sd_base
    v.sd_lnk = tables.sd_lnk
    v.xd_base = tables.xd_base
    v.xd_start = tables.xd_start
    v.xd_cnt = tables.xd_cnt
    v.xd_lnk = tables.xd_lnk
    v.xd_head = tables.xd_head
    v.link_dst = tables.link_dst
    v.pod = tables.pod
    v.rank = tables.rank
    v.pod_slot = tables.pod_slot
    v.up_lnk = tables.up_lnk
    v.up_head = tables.up_head
    return v


def route_fluid(fabric, flows, work, loads, options):
    """Fluid-type loads of the flows, aggregated per destination group.

    fabric, flows, work, loads: topo.routing.kstate.FabricArrays, GroupedFlows, Work, Loads;
    options: kstate.FluidOptions (mode, KU, KH, threads). ``flows.f_mass2``/``loads.load2``/
    ``work.mass2`` (all empty, or per flow/link/node): a second weight carried along the same
    splits in the same pass. It needs f_sg < 0, f_dst >= 0, and f_mass > 0 wherever
    f_mass2 > 0 (each flow's second weight is a multiple of its first).

    The groups are cut into blocks (fluid_blocks: a function of the groups' flows only, never
    of ``threads``). Block 0 adds into the outputs, every other block into zeroed buffers of
    its own, which are then added in block order: the loads are the same bits for any
    ``threads``, and with one block the same bits as a plain loop over the groups. Blocks run
    on up to ``threads`` OpenMP threads, each with its own work arrays (the caller's serve
    the single-block case); with ``threads`` 1, on this thread without OpenMP.
    """
    cdef int mode = options.mode, KU = options.KU, KH = options.KH, threads = options.threads
    cdef FabricView fb = _fabric_view(fabric)
    cdef FlowsView fl = _flows_view(flows)
    cdef WorkView w0 = _work_of(work)
    cdef LoadsView o0 = _loads_of(loads)
    cdef id_t ng = fl.g_ptr.shape[0] - 1
    cdef id_t b, l, i, t
    cdef bint two = fl.f_mass2.shape[0] > 0
    cdef id_t N = w0.dist.shape[0]
    cdef int64_t[::1] bad
    cdef int64_t[::1] bounds = fluid_blocks(np.asarray(flows.g_ptr))
    cdef id_t NB = bounds.shape[0] - 1
    if NB <= 1:
        bad = np.full(2, -1, np.int64)
        with nogil:
            _fluid_block(0, ng, mode, KU, KH, fb, fl, w0, o0, two, bad, 0)
        if bad[0] >= 0:
            _bad_group(bad[0], fl.g_rep[bad[1]])
        return
    cdef id_t T = max(1, min(threads, NB))
    # per-thread work arrays, in their entry state; per-block outputs of blocks 1 .. NB-1
    cdef real_t[:, ::1] o_load = np.zeros((NB - 1, o0.load.shape[0]))
    cdef real_t[:, ::1] o_load2 = np.zeros((NB - 1, o0.load2.shape[0]))
    cdef real_t[:, ::1] o_up = np.zeros((NB - 1, o0.grp_up.shape[0]))
    cdef real_t[:, ::1] o_down = np.zeros((NB - 1, o0.grp_down.shape[0]))
    keep = [_work_view(np.full(N, -1, np.int64), np.full(N, -1, np.int64), np.zeros(N), np.zeros(N), np.zeros(N),
                       np.zeros(N if two else 0), np.zeros(N, np.int64), np.full(N, -1, np.int64),
                       np.zeros(N, np.int64), np.zeros(w0.A.shape[0]), np.zeros(w0.lh.shape[0]), _EMPTY_I, _EMPTY_I,
                       _EMPTY_I, _EMPTY_I) for t in range(T)]
    keep += [o0] + [_loads_view(o_load[b], o_load2[b], o_up[b], o_down[b], loads.unreach, _EMPTY_I)
                    for b in range(NB - 1)]
    cdef PyObject** ws = <PyObject**>PyMem_Malloc((T + NB) * sizeof(PyObject*))
    if ws == NULL:
        raise MemoryError()
    cdef PyObject** bs = ws + T
    for i in range(T + NB):
        ws[i] = <PyObject*>keep[i]
    bad = np.full(2 * NB, -1, np.int64)
    try:
        if T == 1:
            with nogil:
                for b in range(NB):
                    _fluid_block(bounds[b], bounds[b + 1], mode, KU, KH, fb, fl, <WorkView>ws[0],
                                 <LoadsView>bs[b], two, bad, b)
        for b in prange(NB if T > 1 else 0, nogil=True, num_threads=T, schedule="dynamic", chunksize=1):
            t = threadid()
            _fluid_block(bounds[b], bounds[b + 1], mode, KU, KH, fb, fl, <WorkView>ws[t], <LoadsView>bs[b], two,
                         bad, b)
    finally:
        PyMem_Free(ws)
    for b in range(NB):
        if bad[2 * b] >= 0:
            _bad_group(bad[2 * b], fl.g_rep[bad[2 * b + 1]])
    # add the blocks' outputs in block order (each entry independently: any thread count, same sums)
    with nogil:
        for i in range(NB - 1):
            for l in range(o0.load.shape[0]):
                o0.load[l] += o_load[i, l]
        for i in range(NB - 1):
            for l in range(o0.load2.shape[0]):
                o0.load2[l] += o_load2[i, l]
            for l in range(o0.grp_up.shape[0]):
                o0.grp_up[l] += o_up[i, l]
            for l in range(o0.grp_down.shape[0]):
                o0.grp_down[l] += o_down[i, l]


def _bad_group(td, rep):
    raise ValueError(f"route_fluid: endpoint {td} has a home switch that is not one of its "
                     f"group's (representative {rep}): flows are not grouped by destination")


# blocks of destination groups for route_fluid: at most FLUID_BLOCKS, each with at least
# FLUID_GROUPS_PER_BLOCK groups that have flows (fewer: one block, a plain loop)
FLUID_BLOCKS = 8
FLUID_GROUPS_PER_BLOCK = 16


def fluid_blocks(g_ptr):
    """Block boundaries over the destination groups (int64, blocks + 1 entries, from 0 to the
    number of groups): equal numbers of groups with flows per block. A function of g_ptr only."""
    g_ptr = np.asarray(g_ptr, np.int64)
    ng = g_ptr.shape[0] - 1
    busy = np.flatnonzero(np.diff(g_ptr) > 0)
    nb = int(min(FLUID_BLOCKS, max(1, busy.shape[0] // FLUID_GROUPS_PER_BLOCK)))
    if nb <= 1:
        return np.array([0, max(ng, 0)], np.int64)
    cut = busy[(np.arange(1, nb) * busy.shape[0]) // nb]
    return np.concatenate([[0], cut, [ng]]).astype(np.int64)


cdef int _hash_block(id_t glo, id_t ghi, uint64_t ks, int qps, int H, FabricView fb, FlowsView fl, WorkView w,
                     LoadsView o, int64_t[::1] res, id_t b) except -1 nogil:
    """Groups glo .. ghi-1 of route_hash in order into one block's loads (o; w its thread's work
    arrays); res[4b] gets the block's longest path; at a destination with no link from the home
    switch reached, res[4b + 1 .. 4b + 3] get it, the switch and the group, and it stops."""
    cdef const id_t[::1] sw_ptr = fb.sw_ptr, sw_adj = fb.sw_adj, sw_head = fb.sw_head, link_dst = fb.link_dst
    cdef const id_t[::1] up_ptr = fb.up_ptr, up_link = fb.up_link, ep_up1 = fb.ep_up1, ep_home1 = fb.ep_home1
    cdef const id_t[::1] g_ptr = fl.g_ptr, g_rep = fl.g_rep, f_src = fl.f_src, f_dst = fl.f_dst, f_id = fl.f_id
    cdef const real_t[::1] f_mass = fl.f_mass, f_mass2 = fl.f_mass2
    cdef int64_t[::1] dist = w.dist, nh_start = w.nh_start, nh_cnt = w.nh_cnt, nh_list = w.nh_list
    cdef int64_t[::1] nh_head = w.nh_head, path = o.path, order = w.order, hidx = w.hidx, tstamp = w.tstamp
    cdef int64_t[::1] tlist = w.tlist
    cdef const real_t[::1] link_gbps = fb.link_gbps
    cdef real_t[::1] sigma = w.sigma, den = w.den
    cdef real_t[::1] load = o.load, unreach = o.unreach, load2 = o.load2
    cdef id_t g, f, nq, nh, nt, idx, s, n, r, j, k, u, h, e, td, best, c, c1, pos, q, hop, base, u1, d1
    cdef id_t longest = 0
    cdef bint rec = path.shape[0] > 0
    cdef bint two = f_mass2.shape[0] > 0
    cdef uint64_t key, kf
    cdef real_t mq, mq2 = 0.0
    for g in range(glo, ghi):
        if g_ptr[g] == g_ptr[g + 1]:
            continue
        nt = _stamp(g, g_ptr[g], g_ptr[g + 1], f_src, up_ptr, up_link, link_dst, tstamp, tlist)
        nq = _bfs(g_rep[g], 2, g, nt, sw_ptr, sw_adj, sw_head, link_dst, link_gbps, up_ptr, up_link,
                  tstamp, tlist, dist, hidx, sigma, den, order, &nh)
        pos = 0
        for f in range(g_ptr[g], g_ptr[g + 1]):
            e = f_src[f]
            td = f_dst[f]
            best = -1
            c = 0
            if ep_up1[e] >= 0:
                if dist[ep_home1[e]] >= 0:
                    best = dist[ep_home1[e]]
                    c = 1
            else:
                for k in range(up_ptr[e], up_ptr[e + 1]):
                    h = link_dst[up_link[k]]
                    if dist[h] < 0:
                        continue
                    if best < 0 or dist[h] < best:
                        best = dist[h]
                        c = 0
                    if dist[h] == best:
                        c += 1
            if best < 0:
                unreach[f] += f_mass[f]
                continue
            c1 = c
            mq = f_mass[f] / qps
            if two:
                mq2 = f_mass2[f] / qps
            kf = _mix(ks ^ <uint64_t>f_id[f])
            # the only uplink, and the only link down to td, need no hashing
            u1 = ep_up1[e]
            if u1 < 0 and c1 == 1:
                for k in range(up_ptr[e], up_ptr[e + 1]):
                    if dist[link_dst[up_link[k]]] == best:
                        u1 = up_link[k]
                        break
            d1 = -1
            if up_ptr[td + 1] - up_ptr[td] == 1:
                d1 = up_link[up_ptr[td]] ^ 1
            for q in range(qps):
                key = kf ^ (<uint64_t>q * <uint64_t>0x9E3779B97F4A7C15ULL)
                base = (f * qps + q) * H
                hop = 0
                # first hop: one of the uplinks at minimal distance
                if u1 >= 0:
                    u = u1
                else:
                    j = _pick(_hop(key, <uint64_t>e), c1)
                    for k in range(up_ptr[e], up_ptr[e + 1]):
                        u = up_link[k]
                        if dist[link_dst[u]] == best:
                            if j == 0:
                                break
                            j -= 1
                load[u] += mq
                if two:
                    load2[u] += mq2
                if rec and hop < H:
                    path[base + hop] = u
                hop += 1
                s = link_dst[u]
                while dist[s] > 0:
                    c = nh_cnt[s]
                    if c < 0:
                        # next-hop list of s in this group's DAG, built on first visit
                        nh_start[s] = pos
                        for j in range(sw_ptr[s], sw_ptr[s + 1]):
                            if dist[sw_head[j]] == dist[s] - 1:
                                nh_list[pos] = sw_adj[j]
                                nh_head[pos] = sw_head[j]
                                pos += 1
                        c = pos - nh_start[s]
                        nh_cnt[s] = c
                    j = nh_start[s] + (_pick(_hop(key, <uint64_t>s), c) if c > 1 else 0)
                    r = nh_list[j]
                    load[r] += mq
                    if two:
                        load2[r] += mq2
                    if rec and hop < H:
                        path[base + hop] = r
                    hop += 1
                    s = nh_head[j]
                # last hop: one of the parallel links from home s to td
                if d1 >= 0:
                    u = d1
                    if link_dst[u ^ 1] != s:
                        res[4 * b + 1] = td
                        res[4 * b + 2] = s
                        res[4 * b + 3] = g
                        return 1
                else:
                    c = 0
                    for k in range(up_ptr[td], up_ptr[td + 1]):
                        if link_dst[up_link[k]] == s:
                            c += 1
                    if c == 0:
                        res[4 * b + 1] = td
                        res[4 * b + 2] = s
                        res[4 * b + 3] = g
                        return 1
                    j = _pick(_hop(key, <uint64_t>s), c) if c > 1 else 0
                    for k in range(up_ptr[td], up_ptr[td + 1]):
                        u = up_link[k]
                        if link_dst[u] == s:
                            if j == 0:
                                break
                            j -= 1
                    u = u ^ 1
                load[u] += mq
                if two:
                    load2[u] += mq2
                if rec and hop < H:
                    path[base + hop] = u
                hop += 1
                if hop > longest:
                    longest = hop
        for idx in range(nq):
            s = order[idx]
            dist[s] = -1
            hidx[s] = -1
            nh_cnt[s] = -1
    res[4 * b] = longest
    return 0


def route_hash(fabric, flows, work, loads, options):
    """Hash each queue pair onto one path; path (len 0, or n_flows*qps*H) gets link ids, -1 padded.

    ``flows.f_mass2``/``loads.load2`` (both empty, or one entry per flow/link): a second weight carried
    along the same queue-pair paths (bytes beside rates) in the same pass.
    Returns the longest path (links) seen; paths longer than H are truncated in ``path``.

    Threads (options.threads): the groups are cut into route_fluid's blocks (fluid_blocks: a
    function of the groups' flows only). Block 0 adds into the loads, every other block into
    zeroed buffers of its own, added in block order afterwards (paths and unreach are per flow):
    the same bits for any ``threads``, and with one block the same as a plain loop over the
    groups. Blocks run on up to ``threads`` OpenMP threads, each with its own work arrays (the
    caller's serve the first thread).
    """
    cdef uint64_t seed = options.seed
    cdef int qps = options.qps, H = options.H, threads = options.threads
    cdef FabricView fb = _fabric_view(fabric)
    cdef FlowsView fl = _flows_view(flows)
    cdef WorkView w0 = _work_of(work)
    cdef LoadsView o0 = _loads_of(loads)
    cdef id_t ng = fl.g_ptr.shape[0] - 1, b, i, l, t
    cdef id_t N = w0.dist.shape[0], S = w0.nh_list.shape[0]
    cdef uint64_t ks = _mix(seed)
    cdef int64_t[::1] bounds = fluid_blocks(np.asarray(flows.g_ptr))
    cdef id_t NB = bounds.shape[0] - 1
    cdef id_t T = max(1, min(threads, NB))
    cdef int64_t[::1] res = np.full(4 * NB, -1, np.int64)
    cdef real_t[:, ::1] o_load = np.zeros((NB - 1, o0.load.shape[0]))
    cdef real_t[:, ::1] o_load2 = np.zeros((NB - 1, o0.load2.shape[0]))
    keep = [w0] + [_work_view(np.full(N, -1, np.int64), np.full(N, -1, np.int64), np.zeros(N), np.zeros(N), _EMPTY_F,
                              _EMPTY_F, np.zeros(N, np.int64), np.full(N, -1, np.int64), np.zeros(N, np.int64),
                              _EMPTY_F, _EMPTY_F, np.zeros(N, np.int64), np.full(N, -1, np.int64),
                              np.zeros(S, np.int64), np.zeros(S, np.int64)) for t in range(T - 1)]
    keep += [o0] + [_loads_view(o_load[b], o_load2[b], _EMPTY_F, _EMPTY_F, o0.unreach, o0.path)
                    for b in range(NB - 1)]
    cdef PyObject** ws = <PyObject**>PyMem_Malloc((T + NB) * sizeof(PyObject*))
    if ws == NULL:
        raise MemoryError()
    cdef PyObject** bs = ws + T
    for i in range(T + NB):
        ws[i] = <PyObject*>keep[i]
    try:
        if T == 1:
            with nogil:
                for b in range(NB):
                    if _hash_block(bounds[b], bounds[b + 1], ks, qps, H, fb, fl, <WorkView>ws[0], <LoadsView>bs[b],
                                   res, b):
                        break
        for b in prange(NB if T > 1 else 0, nogil=True, num_threads=T, schedule="dynamic", chunksize=1):
            t = threadid()
            _hash_block(bounds[b], bounds[b + 1], ks, qps, H, fb, fl, <WorkView>ws[t], <LoadsView>bs[b], res, b)
    finally:
        PyMem_Free(ws)
    for b in range(NB):
        if res[4 * b + 1] >= 0:
            raise ValueError(f"route_hash: endpoint {res[4 * b + 1]} has no link from switch {res[4 * b + 2]}, a home "
                             f"of its group (representative {fl.g_rep[res[4 * b + 3]]}): flows are not grouped by "
                             f"destination")
    # the blocks' loads added in block order (each entry on its own: any thread count, same sums)
    with nogil:
        for i in range(NB - 1):
            for l in range(o0.load.shape[0]):
                o0.load[l] += o_load[i, l]
        for i in range(NB - 1):
            for l in range(o0.load2.shape[0]):
                o0.load2[l] += o_load2[i, l]
    cdef id_t longest = 0
    for b in range(NB):
        longest = max(longest, res[4 * b])
    return longest


def bucket_links(const int64_t[::1] flat, int H, int64_t[::1] cursor, int64_t[::1] lk_qp):
    """Counting sort of path entries by link: lk_qp gets, link by link, the queue pairs
    (entry index // H) using it, in increasing order. cursor starts as the CSR row starts
    (lk_ptr[:-1]) and ends as the row ends. O(entries)."""
    cdef id_t i, l, c, n = flat.shape[0]
    with nogil:
        for i in range(n):
            l = flat[i]
            if l >= 0:
                c = cursor[l]
                lk_qp[c] = i // H
                cursor[l] = c + 1


cdef inline int _push(real_t[::1] hk, int64_t[::1] hl, int64_t[::1] hv, id_t* size,
                      real_t key, id_t l, id_t ver) except -1 nogil:
    cdef id_t i = size[0], p
    if i >= hk.shape[0] or i >= hl.shape[0] or i >= hv.shape[0]:
        with gil:
            raise IndexError(f"waterfill: the heap arrays hold {min(hk.shape[0], hl.shape[0], hv.shape[0])} "
                             f"entries and a push needs one more")
    size[0] += 1
    while i > 0:
        p = (i - 1) >> 1
        if hk[p] < key or (hk[p] == key and hl[p] <= l):
            break
        hk[i] = hk[p]
        hl[i] = hl[p]
        hv[i] = hv[p]
        i = p
    hk[i] = key
    hl[i] = l
    hv[i] = ver
    return 0


cdef inline int _pop(real_t[::1] hk, int64_t[::1] hl, int64_t[::1] hv, id_t* size) except -1 nogil:
    cdef id_t n = size[0] - 1, i = 0, c
    cdef real_t key = hk[n]
    cdef id_t l = hl[n], v = hv[n]
    size[0] = n
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and (hk[c + 1] < hk[c] or (hk[c + 1] == hk[c] and hl[c + 1] < hl[c])):
            c += 1
        if key < hk[c] or (key == hk[c] and l <= hl[c]):
            break
        hk[i] = hk[c]
        hl[i] = hl[c]
        hv[i] = hv[c]
        i = c
    if n > 0:
        hk[i] = key
        hl[i] = l
        hv[i] = v
    return 0


def waterfill(int H, const int64_t[::1] path, const real_t[::1] weight, const real_t[::1] cap,
              const int64_t[::1] lk_ptr, const int64_t[::1] lk_qp,
              real_t[::1] rem, real_t[::1] wsum, int64_t[::1] n_act, int64_t[::1] ver, uint8_t[::1] frozen,
              real_t[::1] hk, int64_t[::1] hl, int64_t[::1] hv, real_t[::1] rate):
    """Weighted max-min fair rates of the paths (rows of ``path``, -1 padded) on capacities ``cap``.

    Path p gets rate level x weight[p]; the link with the smallest level
    (remaining capacity / active weight) freezes all its active paths at that
    level. lk_ptr/lk_qp: the paths through each link (CSR). rem, wsum, n_act,
    ver, frozen and the heap arrays are work arrays. Paths with no link get
    rate 0. Returns the number of levels.

    Heap bound: a link is pushed once at the start and then only when a path
    through it freezes (its version changes), once per such path and level, so
    there are at most links + (valid path entries) pushes in all; heap arrays
    of that size never overflow (a push past their end raises IndexError).
    Pushing again the links of paths frozen at earlier levels, as this kernel
    once did, only duplicated entries that were still valid, and grew the heap
    past that size on oversubscribed fabrics.
    """
    cdef id_t L = cap.shape[0], nq = rate.shape[0], size = 0, l, l2, i, j, p, levels = 0
    cdef real_t x, key
    with nogil:
        for l in range(L):
            rem[l] = cap[l]
            wsum[l] = 0.0
            n_act[l] = lk_ptr[l + 1] - lk_ptr[l]
            ver[l] = 0
        for l in range(L):
            for i in range(lk_ptr[l], lk_ptr[l + 1]):
                wsum[l] += weight[lk_qp[i]]
            if n_act[l] > 0 and wsum[l] > 0.0:
                _push(hk, hl, hv, &size, rem[l] / wsum[l], l, 0)
        for p in range(nq):
            frozen[p] = 0
            rate[p] = 0.0
        while size > 0:
            key = hk[0]
            l = hl[0]
            j = hv[0]
            _pop(hk, hl, hv, &size)
            if j != ver[l] or n_act[l] == 0:
                continue
            x = key
            if x < 0.0:
                x = 0.0
            levels += 1
            # freeze the active paths of l (marked 2 until their links are pushed below)
            for i in range(lk_ptr[l], lk_ptr[l + 1]):
                p = lk_qp[i]
                if frozen[p]:
                    continue
                frozen[p] = 2
                rate[p] = x * weight[p]
                for j in range(H):
                    l2 = path[p * H + j]
                    if l2 < 0:
                        break
                    rem[l2] -= x * weight[p]
                    wsum[l2] -= weight[p]
                    n_act[l2] -= 1
                    ver[l2] += 1
            # re-key the links whose version changed: those of the paths frozen just now
            for i in range(lk_ptr[l], lk_ptr[l + 1]):
                p = lk_qp[i]
                if frozen[p] != 2:
                    continue
                frozen[p] = 1
                for j in range(H):
                    l2 = path[p * H + j]
                    if l2 < 0:
                        break
                    if n_act[l2] > 0 and l2 != l and wsum[l2] > 0.0:
                        _push(hk, hl, hv, &size, (rem[l2] if rem[l2] > 0.0 else 0.0) / wsum[l2], l2, ver[l2])
    return levels


# --- per-QP max-min completion times with incremental refill ------------------------------------------
cimport cython
from libc.math cimport INFINITY

MAXMIN_INFO = 8   # entries of maxmin_times's info array (see maxmin_times)


@cython.final
cdef class _MaxMinWork:
    """maxmin_times's state: the runs' links (CSR by link), their components, the links' fill state,
    per component an event log, a log of the rows frozen and an undo log of the links' rem, the
    fill's indexed heap (hk/hl: key and link, hpos: each link's slot or -1) and the active runs'
    rates and bytes left as contiguous arrays (a_rate/a_rem, slot of run p: aidx[p])."""
    cdef int H
    cdef real_t bps
    cdef const int64_t[::1] path, mult
    cdef int64_t[::1] lk_ptr, lk_qp, n_act, ver, comp, c_ptr, e_ptr, cl_ptr, c_links
    cdef int64_t[::1] frz_ev, ev_n, fr_n, ud_n, ev_fr, fr_row, hl, hpos, thaw_lo, thaw_hi, seen, aidx
    cdef real_t[::1] rem_l, wsum, rate, ud_rem, hk, a_rate, a_rem
    cdef uint8_t[::1] st
    cdef int64_t events, undone, stamp


cdef inline id_t _uf_find(int64_t[::1] parent, id_t a) noexcept nogil:
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


cdef id_t _mm_setup(_MaxMinWork w, const real_t[::1] qbytes, const real_t[::1] cap, int64_t[::1] parent,
                    int64_t[::1] lcomp) except -1 nogil:
    """The live runs (qbytes > 0) by link (lk_ptr/lk_qp in row order), the links' start state
    (rem = cap, wsum = the live runs' multiplicities, n_act, ver = 0), components of links joined by
    live runs (union-find; numbered by their lowest link), and the components' segments: rows
    (c_ptr: events and rows frozen), path entries (e_ptr: undo log), links (cl_ptr/c_links).
    Returns the number of components."""
    cdef const int64_t[::1] path = w.path
    cdef int H = w.H
    cdef id_t n = qbytes.shape[0], L = cap.shape[0], p, j, l, a, b, C = 0, c
    w.lk_ptr[0] = 0
    for l in range(L):
        w.lk_ptr[l + 1] = 0
        parent[l] = l
        lcomp[l] = -1
    for p in range(n):
        w.st[p] = 0 if qbytes[p] > 0.0 else 3
        w.comp[p] = -1
        w.frz_ev[p] = -1
        w.rate[p] = 0.0
        if w.st[p] != 0:
            continue
        for j in range(H):
            l = path[p * H + j]
            if l < 0:
                break
            w.lk_ptr[l + 1] += 1
            a = _uf_find(parent, path[p * H])
            b = _uf_find(parent, l)
            if a < b:
                parent[b] = a
            elif b < a:
                parent[a] = b
    for l in range(L):
        w.n_act[l] = w.lk_ptr[l + 1]
        w.lk_ptr[l + 1] += w.lk_ptr[l]
        w.rem_l[l] = cap[l]
        w.wsum[l] = 0.0
        w.ver[l] = 0
        if w.n_act[l] > 0:
            a = _uf_find(parent, l)
            if lcomp[a] < 0:
                lcomp[a] = C
                C += 1
            lcomp[l] = lcomp[a]
    for c in range(C + 1):
        w.c_ptr[c] = 0
        w.e_ptr[c] = 0
        w.cl_ptr[c] = 0
    for l in range(L):
        parent[l] = w.lk_ptr[l]      # from here on: the next free slot of l in lk_qp
        if lcomp[l] >= 0:
            w.cl_ptr[lcomp[l] + 1] += 1
    for p in range(n):
        if w.st[p] != 0 or path[p * H] < 0:
            continue
        c = lcomp[path[p * H]]
        w.comp[p] = c
        w.c_ptr[c + 1] += 1
        for j in range(H):
            l = path[p * H + j]
            if l < 0:
                break
            w.e_ptr[c + 1] += 1
            w.lk_qp[parent[l]] = p
            parent[l] += 1
            w.wsum[l] += <real_t>w.mult[p]
    for c in range(C):
        w.c_ptr[c + 1] += w.c_ptr[c]
        w.e_ptr[c + 1] += w.e_ptr[c]
        w.cl_ptr[c + 1] += w.cl_ptr[c]
        w.ev_n[c] = 0
        w.fr_n[c] = 0
        w.ud_n[c] = 0
        w.thaw_lo[c] = -1
    for l in range(L):
        w.seen[l] = -1
    for c in range(C):
        parent[c] = w.cl_ptr[c]
    for l in range(L):
        if lcomp[l] >= 0:
            w.c_links[parent[lcomp[l]]] = l
            parent[lcomp[l]] += 1
    return C


cdef inline bint _ih_lt(real_t ka, id_t la, real_t kb, id_t lb) noexcept nogil:
    """(ka, la) < (kb, lb): the fill's pop order, smallest key first, ties by the lower link id."""
    return ka < kb or (ka == kb and la < lb)


cdef inline void _ih_place(_MaxMinWork w, id_t i, real_t key, id_t l, id_t n, bint up) noexcept nogil:
    """Entry (key, l) into slot i of the indexed heap of n entries, sifted up (if up) or down to its
    place. The heap is 8-ary (slot i's children are 8i + 1 .. 8i + 8): a third of the levels of a
    binary heap, a slot's children side by side in memory. A pop returns the smallest (key, link)
    whatever the heap's shape, so the fill pops the same entries in the same order as with any
    other heap."""
    cdef id_t q, c, e, k
    while up and i > 0:
        q = (i - 1) >> 3
        if not _ih_lt(key, l, w.hk[q], w.hl[q]):
            break
        w.hk[i] = w.hk[q]
        w.hl[i] = w.hl[q]
        w.hpos[w.hl[i]] = i
        i = q
    while True:
        c = 8 * i + 1
        if c >= n:
            break
        e = c + 8 if c + 8 <= n else n
        for k in range(c + 1, e):
            if _ih_lt(w.hk[k], w.hl[k], w.hk[c], w.hl[c]):
                c = k
        if not _ih_lt(w.hk[c], w.hl[c], key, l):
            break
        w.hk[i] = w.hk[c]
        w.hl[i] = w.hl[c]
        w.hpos[w.hl[i]] = i
        i = c
    w.hk[i] = key
    w.hl[i] = l
    w.hpos[l] = i


cdef inline void _ih_del(_MaxMinWork w, id_t l, id_t* size) noexcept nogil:
    """Link l (in the heap) out of it; the last entry fills its slot."""
    cdef id_t i = w.hpos[l]
    w.hpos[l] = -1
    size[0] -= 1
    if i < size[0]:
        _ih_place(w, i, w.hk[size[0]], w.hl[size[0]], size[0], True)


cdef inline void _ih_set(_MaxMinWork w, id_t l, real_t key, id_t* size) noexcept nogil:
    """Link l's entry gets key (in place if l is in the heap, else added)."""
    cdef id_t i = w.hpos[l]
    if i < 0:
        size[0] += 1
        _ih_place(w, size[0] - 1, key, l, size[0], True)
    elif key != w.hk[i]:
        _ih_place(w, i, key, l, size[0], True)


cdef inline int _mm_key(_MaxMinWork w, id_t l, id_t* size) except -1 nogil:
    """Append link l, if it has active runs, with the key a fresh waterfill's entry would carry (an
    untouched link rem / wsum, a touched one max(rem, 0) / wsum); _mm_fill then heapifies."""
    cdef real_t key
    if w.n_act[l] > 0 and w.wsum[l] > 0.0:
        if w.ver[l] == 0:
            key = w.rem_l[l] / w.wsum[l]
        else:
            key = (w.rem_l[l] if w.rem_l[l] > 0.0 else 0.0) / w.wsum[l]
        if size[0] >= w.hk.shape[0]:
            with gil:
                raise IndexError(f"maxmin_times: the heap arrays hold {w.hk.shape[0]} entries and a push needs one more")
        w.hk[size[0]] = key
        w.hl[size[0]] = l
        w.hpos[l] = size[0]
        size[0] += 1
    return 0


cdef int _mm_fill(_MaxMinWork w, id_t c) except -1 nogil:
    """Progressive filling of component c from its state, as waterfill does it, each event logged:
    the heap rebuilt from the links' state (_mm_key, then heapified), then popped until empty, each
    link's entry updated in place when its level changes and removed when it has no active run
    left (so the heap holds one entry per link with active runs, popped in (key, link) order, the
    order of waterfill's valid entries). The links with active
    runs are, at the first fill, among the component's links, later among those of the runs the last
    undo thawed (every other run of the component is frozen or gone), each taken once. A frozen run
    gets rate (x * m) / m * bps; the rem it takes from each link is logged first."""
    cdef const int64_t[::1] path = w.path
    cdef int H = w.H
    cdef id_t size = 0, i, k, l, l2, p, j, e, base = w.c_ptr[c], ubase = w.e_ptr[c]
    cdef real_t key, x, m, g
    if w.thaw_lo[c] < 0:
        for k in range(w.cl_ptr[c], w.cl_ptr[c + 1]):
            _mm_key(w, w.c_links[k], &size)
    else:
        w.stamp += 1
        for i in range(w.thaw_lo[c], w.thaw_hi[c]):
            p = w.fr_row[i]
            if w.st[p] != 0:
                continue
            for j in range(H):
                l = path[p * H + j]
                if l < 0:
                    break
                if w.seen[l] != w.stamp:
                    w.seen[l] = w.stamp
                    _mm_key(w, l, &size)
    if size > 1:     # (size - 2) // 8 is the last slot with a child (C division: not below 0)
        for i in range((size - 2) // 8, -1, -1):
            _ih_place(w, i, w.hk[i], w.hl[i], size, False)
    while size > 0:
        key = w.hk[0]
        l = w.hl[0]
        _ih_del(w, l, &size)
        x = key
        if x < 0.0:
            x = 0.0
        e = base + w.ev_n[c]
        w.ev_n[c] += 1
        w.ev_fr[e] = base + w.fr_n[c]
        w.events += 1
        for i in range(w.lk_ptr[l], w.lk_ptr[l + 1]):
            p = w.lk_qp[i]
            if w.st[p] != 0:
                continue
            w.st[p] = 2
            m = <real_t>w.mult[p]
            g = x * m / m * w.bps
            w.rate[p] = g
            w.a_rate[w.aidx[p]] = g
            w.frz_ev[p] = e
            w.fr_row[base + w.fr_n[c]] = p
            w.fr_n[c] += 1
            for j in range(H):
                l2 = path[p * H + j]
                if l2 < 0:
                    break
                w.ud_rem[ubase + w.ud_n[c]] = w.rem_l[l2]
                w.ud_n[c] += 1
                w.rem_l[l2] -= x * m
                w.wsum[l2] -= m
                w.n_act[l2] -= 1
                w.ver[l2] += 1
        for i in range(w.lk_ptr[l], w.lk_ptr[l + 1]):
            p = w.lk_qp[i]
            if w.st[p] != 2:
                continue
            w.st[p] = 1
            for j in range(H):
                l2 = path[p * H + j]
                if l2 < 0:
                    break
                if l2 == l:
                    continue
                if w.n_act[l2] > 0 and w.wsum[l2] > 0.0:
                    _ih_set(w, l2, (w.rem_l[l2] if w.rem_l[l2] > 0.0 else 0.0) / w.wsum[l2], &size)
                elif w.hpos[l2] >= 0:
                    _ih_del(w, l2, &size)
    return 0


cdef int _mm_undo(_MaxMinWork w, id_t c, id_t cut) except -1 nogil:
    """Component c back to its state before event ``cut`` (an absolute event index): the rows frozen
    from that event on thawed, last first, each link's rem assigned back from the undo log (never
    recomputed), wsum, n_act and ver counted back (sums of whole numbers: exact)."""
    cdef const int64_t[::1] path = w.path
    cdef int H = w.H
    cdef id_t base = w.c_ptr[c], ubase = w.e_ptr[c], start = w.ev_fr[cut], i, j, p, l2, len_p
    cdef real_t m
    w.undone += base + w.ev_n[c] - cut
    w.thaw_lo[c] = start
    w.thaw_hi[c] = base + w.fr_n[c]
    for i in range(base + w.fr_n[c] - 1, start - 1, -1):
        p = w.fr_row[i]
        m = <real_t>w.mult[p]
        len_p = 0
        while len_p < H and path[p * H + len_p] >= 0:
            len_p += 1
        for j in range(len_p - 1, -1, -1):
            l2 = path[p * H + j]
            w.ud_n[c] -= 1
            w.rem_l[l2] = w.ud_rem[ubase + w.ud_n[c]]
            w.wsum[l2] += m
            w.n_act[l2] += 1
            w.ver[l2] -= 1
        w.st[p] = 0
        w.frz_ev[p] = -1
    w.fr_n[c] = start - base
    w.ev_n[c] = cut - base
    return 0


cdef int _mm_remove(_MaxMinWork w, id_t p) except -1 nogil:
    """Run p (not frozen) leaves the fill: its links lose its weight and its count."""
    cdef const int64_t[::1] path = w.path
    cdef int H = w.H
    cdef id_t j, l2
    cdef real_t m = <real_t>w.mult[p]
    w.st[p] = 3
    for j in range(H):
        l2 = path[p * H + j]
        if l2 < 0:
            break
        w.wsum[l2] -= m
        w.n_act[l2] -= 1
    return 0


cdef void _mm_div(const real_t* a, const real_t* b, real_t* q, id_t n) noexcept nogil:
    """q[i] = a[i] / b[i] for i < n: a loop on its own, so that the compiler can divide several at
    once (each quotient is still the one correctly rounded division of the scalar loop)."""
    cdef id_t i
    for i in range(n):
        q[i] = a[i] / b[i]


cdef int _mm_rounds(_MaxMinWork w, id_t C, int64_t rounds, int64_t max_work, int64_t[::1] act,
                    int64_t[::1] ended, int64_t[::1] slist, int64_t[::1] cut, uint8_t[::1] stale,
                    real_t[::1] dta, real_t[::1] done, real_t[::1] rem, real_t[::1] info) except -1 nogil:
    """The refill rounds of engine._maxmin_times_loop, with the same arithmetic in the same order,
    refilling only the components that lost a run, each from its cut (see maxmin_times). dta: each
    active run's time to finish at its rate (bytes left / rate; read only where the rate is > 0),
    computed once per round. The active runs are kept in
    act, their rates and bytes left in w.a_rate / w.a_rem (the same slots, compacted as runs end;
    rem gets the bytes left back at the end), their queue pairs' sum in amult."""
    cdef id_t n = rem.shape[0], na = 0, nn, ne, ns, i, p, c, k
    cdef int64_t work = 0, status = 0, nr = 0, amult = 0
    cdef real_t[::1] a_rate = w.a_rate, a_rem = w.a_rem
    cdef real_t now = 0.0, dt = 0.0, g, dti, thr
    cdef real_t slack = 1 + 1e-12
    cdef bint have
    for p in range(n):
        done[p] = 0.0
        if w.st[p] == 0:
            act[na] = p
            w.aidx[p] = na
            a_rate[na] = w.rate[p]
            a_rem[na] = rem[p]
            amult += w.mult[p]
            na += 1
    for c in range(C):
        slist[c] = c
        stale[c] = 1
    ns = C
    for k in range(rounds):
        if na == 0:
            break
        nr += 1
        work += amult
        if k == rounds - 1 or work > max_work:
            status = 1
            break
        for i in range(ns):
            _mm_fill(w, slist[i])
            stale[slist[i]] = 0
        ns = 0
        _mm_div(&a_rem[0], &a_rate[0], &dta[0], na)
        have = False
        for i in range(na):
            if a_rate[i] <= 0.0:
                continue
            dti = dta[i]
            if not have or dti < dt:
                dt = dti
            have = True
        thr = dt * slack
        nn = 0
        ne = 0
        for i in range(na):
            p = act[i]
            g = a_rate[i]
            if g <= 0.0:
                done[p] = INFINITY
                ended[ne] = p
                ne += 1
                amult -= w.mult[p]
                continue
            dti = dta[i]
            if dti <= thr:
                done[p] = now + dti
                rem[p] = 0.0
                ended[ne] = p
                ne += 1
                amult -= w.mult[p]
            else:
                a_rem[nn] = a_rem[i] - g * dt
                a_rate[nn] = g
                act[nn] = p
                w.aidx[p] = nn
                nn += 1
        if have:
            now += dt
        na = nn
        for i in range(ne):
            c = w.comp[ended[i]]
            if c < 0:
                continue
            if not stale[c]:
                stale[c] = 1
                slist[ns] = c
                ns += 1
                cut[c] = w.frz_ev[ended[i]]
            elif w.frz_ev[ended[i]] < cut[c]:
                cut[c] = w.frz_ev[ended[i]]
        for i in range(ns):
            _mm_undo(w, slist[i], cut[slist[i]])
        for i in range(ne):
            _mm_remove(w, ended[i])
        if not have:
            break
    for i in range(na):
        rem[act[i]] = a_rem[i]
    info[0] = now
    info[1] = status
    info[2] = nr
    info[3] = w.events
    info[4] = w.undone
    info[5] = work
    info[6] = na
    info[7] = C
    return na


def maxmin_times(int H, const int64_t[::1] path, const int64_t[::1] mult, const real_t[::1] qbytes,
                 const real_t[::1] cap, real_t bps, int64_t rounds, int64_t max_work,
                 real_t[::1] done, real_t[::1] rem, uint8_t[::1] active, real_t[::1] info):
    """Per-QP max-min completion times of runs (rows of ``path``, -1 padded; run p = ``mult[p]``
    identical queue pairs with ``qbytes[p]`` bytes each) over links of capacity ``cap``, ``bps``
    bytes/s per unit of capacity: engine._maxmin_times_loop's refill rounds, the same bits.

    Rates depend only on the set of active runs. Each component (runs joined by shared links) keeps
    the events of its last water-filling (link, rows frozen, each link's rem before each freeze).
    When runs end, their component goes back to the first event that froze one of them (the
    events before it are those a fresh water-filling of the other runs makes first: removing a
    run only raises the levels of its links, and none of them was popped before its event),
    drops them (wsum and n_act: sums of whole numbers, exact) and resumes popping from a heap
    rebuilt from the links' state; the other components keep their rates.

    Writes done (seconds; inf: no rate; 0: no bytes), rem (bytes left) and active (1: still
    running when the rounds ran out or the work passed ``max_work`` queue pairs: the caller
    finishes those by weight = bytes, as engine._maxmin_times_loop does). info[0 .. 7]: now (the
    time reached), 1 if the caller must finish, rounds run, events popped, events undone, work,
    active runs, components. Returns the number of active runs. Cost per round O(active runs)
    plus, per component that lost a run, O(its links + the events replayed x path length x log).
    """
    cdef id_t n = qbytes.shape[0], L = cap.shape[0], nH = n * H, C, p, na
    cdef _MaxMinWork w = _MaxMinWork()
    w.H = H
    w.bps = bps
    w.path = path
    w.mult = mult
    w.lk_ptr = np.zeros(L + 1, np.int64)
    w.lk_qp = np.zeros(nH, np.int64)
    w.n_act = np.zeros(L, np.int64)
    w.ver = np.zeros(L, np.int64)
    w.comp = np.zeros(n, np.int64)
    w.c_ptr = np.zeros(L + 1, np.int64)
    w.e_ptr = np.zeros(L + 1, np.int64)
    w.cl_ptr = np.zeros(L + 1, np.int64)
    w.c_links = np.zeros(L, np.int64)
    w.frz_ev = np.zeros(n, np.int64)
    w.ev_n = np.zeros(L, np.int64)
    w.fr_n = np.zeros(L, np.int64)
    w.ud_n = np.zeros(L, np.int64)
    w.ev_fr = np.zeros(n, np.int64)
    w.fr_row = np.zeros(n, np.int64)
    w.rem_l = np.zeros(L)
    w.wsum = np.zeros(L)
    w.rate = np.zeros(n)
    w.ud_rem = np.zeros(nH)
    w.st = np.zeros(n, np.uint8)
    w.hk = np.zeros(L)
    w.hl = np.zeros(L, np.int64)
    w.hpos = np.full(L, -1, np.int64)
    w.aidx = np.zeros(n, np.int64)
    w.a_rate = np.zeros(n)
    w.a_rem = np.zeros(n)
    w.thaw_lo = np.zeros(L, np.int64)
    w.thaw_hi = np.zeros(L, np.int64)
    w.seen = np.zeros(L, np.int64)
    w.events = 0
    w.undone = 0
    w.stamp = 0
    cdef int64_t[::1] parent = np.zeros(L, np.int64), lcomp = np.zeros(L, np.int64)
    cdef int64_t[::1] act = np.zeros(n, np.int64), ended = np.zeros(n, np.int64)
    cdef int64_t[::1] slist = np.zeros(L, np.int64), cut = np.zeros(L, np.int64)
    cdef uint8_t[::1] stale = np.zeros(L, np.uint8)
    cdef real_t[::1] dta = np.zeros(n)
    with nogil:
        for p in range(n):
            rem[p] = qbytes[p]
        C = _mm_setup(w, qbytes, cap, parent, lcomp)
        na = _mm_rounds(w, C, rounds, max_work, act, ended, slist, cut, stale, dta, done, rem, info)
        for p in range(n):
            active[p] = 0
        for p in range(na):
            active[act[p]] = 1
    return na


# route_clos's two passes as two C functions (a fused type with one member per routing model):
# spray is a constant in each, so the compiler specialises the loop
ctypedef signed char hash_pass
ctypedef short spray_pass
ctypedef fused clos_pass:
    hash_pass
    spray_pass


cdef int _clos_loop(clos_pass tag, ClosView tb, ClosDemandsView dm, ClosWorkView cw, id_t NL, int K,
                    uint64_t seed, int qps, int H, id_t lo, id_t hi, id_t row0, real_t[::1] ret,
                    id_t rb) except -1 nogil:
    """route_clos's pass (roce-hash or uec-spray by the type of tag) over demands lo .. hi-1 into
    cw's loads and stats; routed flows go to rows row0, row0 + 1, ... of f_idx and path. ret[rb ..
    rb + 2] get the routed flows, whether both weights were carried and the bytes/mass ratio of
    the first routed flow with mass (-1 if none)."""
    cdef bint spray = clos_pass is spray_pass
    cdef const id_t[::1] src = dm.src, dst = dm.dst
    cdef const real_t[::1] rate = dm.rate, nbytes = dm.nbytes
    cdef real_t inv_eff = dm.inv_eff
    cdef const int32_t[::1] ept = tb.ept
    cdef const id_t[::1] pod_b1 = tb.pod_b1, up_ptr = tb.up_ptr, uph = tb.uph, sd_base = tb.sd_base
    cdef const id_t[::1] sd_lnk = tb.sd_lnk, xd_base = tb.xd_base, xd_start = tb.xd_start, xd_cnt = tb.xd_cnt
    cdef const id_t[::1] xd_lnk = tb.xd_lnk, xd_head = tb.xd_head, link_dst = tb.link_dst
    cdef const uint8_t[::1] alive = cw.alive, lclean = cw.lclean
    cdef id_t LP = cw.LP
    cdef int64_t[::1] pair_ptr = cw.pair_ptr, pair_cnt = cw.pair_cnt, pool = cw.pool, f_idx = cw.f_idx
    cdef int64_t[::1] path = cw.path, defer = cw.defer, counts = cw.counts
    cdef real_t[::1] pmass = cw.pmass, lw = cw.lw, epw = cw.epw, agg = cw.agg, unreach = cw.unreach
    cdef real_t[::1] stats = cw.stats

    cdef id_t i, a, b, A, D, P, Q, s, X, j, c, r, k, q, hop, base, eu, ed, b1, rk
    cdef id_t nb = 0, same = 0, nonpos = 0, neg = 0, L = lw.shape[0] // 2, nagg = agg.shape[0] // 2
    cdef id_t nd = 0, used = counts[1], cap = pool.shape[0], pair = -1, pb = 0, pc = 0, t, ca, sb = 0
    cdef real_t m, w2, r0 = -1.0, mq, mq2 = 0.0, offered = 0.0, unr = 0.0, dev, mk, wk
    cdef bint two = False, rec = path.shape[0] > 0, keep = f_idx.shape[0] > 0
    cdef bint fm = alive.shape[0] > 0, masked, ok
    cdef uint64_t key, kf, ks = _mix(seed)
    cdef const int32_t* ea
    cdef const int32_t* eb
    for i in range(lo, hi):
        if rate[i] < 0.0 or nbytes[i] < 0.0:
            neg += 1
        a = src[i]
        b = dst[i]
        if a == b:
            continue
        m = rate[i] * inv_eff
        offered += m
        ea = &ept[8 * a * K]
        eb = &ept[8 * b * K]
        if ea[0] >= 0 and ea[0] == eb[0]:
            same += 1
            continue
        w2 = nbytes[i] * 8e-9
        if m <= 0.0:
            nonpos += 1
        eu = ea[2]
        ed = eb[2] ^ 1
        if ea[3] != eb[3] or (fm and (not alive[eu] or not alive[ed])):
            unreach[i] += m
            unr += m
            continue
        A = ea[1]
        D = eb[1]
        P = ea[4]
        Q = eb[4]
        b1 = pod_b1[Q]
        rk = eb[5] * b1
        masked = False
        if fm and A != D:
            if P != Q:
                defer[nd] = i
                nd += 1
                continue
            if not (lclean[A] and lclean[D]):
                masked = True
                pair = ea[6] * LP + eb[5]
                if pair_ptr[pair] < 0:
                    if used + up_ptr[A + 1] - up_ptr[A] > cap:
                        defer[nd] = i
                        nd += 1
                        continue
                    # A's alive uplinks (CSR order) to spines with an alive link to D
                    pair_ptr[pair] = used
                    for k in range(up_ptr[A], up_ptr[A + 1]):
                        r = uph[3 * k]
                        if not alive[r]:
                            continue
                        s = uph[3 * k + 1]
                        ok = False
                        for t in range(b1):
                            if alive[sd_lnk[sd_base[s] + rk + t]]:
                                ok = True
                                break
                        if ok:
                            pool[used] = r
                            used += 1
                    pair_cnt[pair] = used - pair_ptr[pair]
                pb = pair_ptr[pair]
                pc = pair_cnt[pair]
                if pc == 0:
                    defer[nd] = i
                    nd += 1
                    continue
        if keep:
            f_idx[row0 + nb] = i
        nb += 1
        if not two:
            if m > 0.0:
                if r0 < 0.0:
                    r0 = w2 / m
                else:
                    dev = w2 - r0 * m
                    if dev > 1e-12 * r0 * m or -dev > 1e-12 * r0 * m:
                        two = True
            elif w2 > 0.0:
                two = True
            if two:
                if r0 < 0.0:
                    r0 = 0.0
                for k in range(L):
                    lw[2 * k + 1] = lw[2 * k] * r0
                for k in range(epw.shape[0] // 2):
                    epw[2 * k + 1] = epw[2 * k] * r0
                for k in range(nagg):
                    agg[2 * k + 1] = agg[2 * k] * r0
                for k in range(pmass.shape[0] // 2):
                    pmass[2 * k + 1] = pmass[2 * k] * r0
        if K == 1:
            epw[4 * a] += m
            epw[4 * b + 2] += m
            if two:
                epw[4 * a + 1] += w2
                epw[4 * b + 3] += w2
            if A == D and not rec:
                continue
        if spray and K > 1:
            # one equal share per plane (every endpoint sits at the same place in each)
            mk = m / K
            wk = w2 / K
            for t in range(K):
                ea = &ept[8 * (a * K + t)]
                eb = &ept[8 * (b * K + t)]
                epw[4 * (a * K + t)] += mk
                epw[4 * (b * K + t) + 2] += mk
                if two:
                    epw[4 * (a * K + t) + 1] += wk
                    epw[4 * (b * K + t) + 3] += wk
                if ea[1] != eb[1]:
                    k = ea[6]
                    if ea[4] == eb[4]:
                        j = NL + eb[6]
                    else:
                        j = (2 + ea[7]) * NL + eb[6]
                    agg[2 * k] += mk
                    agg[2 * j] += mk
                    if two:
                        agg[2 * k + 1] += wk
                        agg[2 * j + 1] += wk
            continue
        if spray:
            if masked:
                pmass[2 * pair] += m
                if two:
                    pmass[2 * pair + 1] += w2
            elif A != D:
                k = ea[6]
                if P == Q:
                    j = NL + eb[6]
                else:
                    j = (2 + ea[7]) * NL + eb[6]
                agg[2 * k] += m
                agg[2 * j] += m
                if two:
                    agg[2 * k + 1] += w2
                    agg[2 * j + 1] += w2
            continue
        # roce-hash: every queue pair hashed at every switch hop
        mq = m / qps
        if two:
            mq2 = w2 / qps
        kf = _mix(ks ^ <uint64_t>i)
        for q in range(qps):
            base = ((row0 + nb - 1) * qps + q) * H
            hop = 1
            key = kf ^ (<uint64_t>q * <uint64_t>0x9E3779B97F4A7C15ULL)
            if K > 1:
                # the first hop: one of the endpoint's planes, hashed like any hop
                t = _pick(_hop(key, <uint64_t>a), K)
                ea = &ept[8 * (a * K + t)]
                eb = &ept[8 * (b * K + t)]
                A = ea[1]
                D = eb[1]
                P = ea[4]
                Q = eb[4]
                b1 = pod_b1[Q]
                rk = eb[5] * b1
                eu = ea[2]
                ed = eb[2] ^ 1
                epw[4 * (a * K + t)] += mq
                epw[4 * (b * K + t) + 2] += mq
                if two:
                    epw[4 * (a * K + t) + 1] += mq2
                    epw[4 * (b * K + t) + 3] += mq2
            if rec:
                path[base] = eu
            if A != D:
                if masked:
                    j = pb + (_pick(_hop(key, <uint64_t>A), pc) if pc > 1 else 0)
                    r = pool[j]
                    s = link_dst[r]
                    sb = sd_base[s]
                else:
                    c = up_ptr[A + 1] - up_ptr[A]
                    j = up_ptr[A] + (_pick(_hop(key, <uint64_t>A), c) if c > 1 else 0)
                    r = uph[3 * j]
                    s = uph[3 * j + 1]
                    sb = uph[3 * j + 2]
                lw[2 * r] += mq
                if two:
                    lw[2 * r + 1] += mq2
                if rec and hop < H:
                    path[base + hop] = r
                hop += 1
                if P != Q:
                    c = up_ptr[s + 1] - up_ptr[s]
                    j = up_ptr[s] + (_pick(_hop(key, <uint64_t>s), c) if c > 1 else 0)
                    r = uph[3 * j]
                    X = uph[3 * j + 1]
                    lw[2 * r] += mq
                    if two:
                        lw[2 * r + 1] += mq2
                    if rec and hop < H:
                        path[base + hop] = r
                    hop += 1
                    k = xd_base[X] + eb[7]
                    c = xd_cnt[k]
                    j = xd_start[k] + (_pick(_hop(key, <uint64_t>X), c) if c > 1 else 0)
                    r = xd_lnk[j]
                    s = xd_head[j]
                    sb = sd_base[s]
                    lw[2 * r] += mq
                    if two:
                        lw[2 * r + 1] += mq2
                    if rec and hop < H:
                        path[base + hop] = r
                    hop += 1
                if masked and b1 > 1:
                    # the alive links of the spine to D
                    ca = 0
                    for t in range(b1):
                        ca += alive[sd_lnk[sb + rk + t]]
                    j = _pick(_hop(key, <uint64_t>s), ca) if ca > 1 else 0
                    for t in range(b1):
                        r = sd_lnk[sb + rk + t]
                        if alive[r]:
                            if j == 0:
                                break
                            j -= 1
                else:
                    j = sb + rk + (_pick(_hop(key, <uint64_t>s), b1) if b1 > 1 else 0)
                    r = sd_lnk[j]
                lw[2 * r] += mq
                if two:
                    lw[2 * r + 1] += mq2
                if rec and hop < H:
                    path[base + hop] = r
                hop += 1
            if rec and hop < H:
                path[base + hop] = ed
            hop += 1
    stats[0] = offered
    stats[1] = same
    stats[2] = nonpos
    stats[3] = neg
    stats[4] = unr
    counts[0] = nd
    counts[1] = used
    ret[rb] = nb
    ret[rb + 1] = two
    ret[rb + 2] = r0
    return 0


def route_clos(tables, demands, work, options):
    """Classify the demands and route them on a regular Clos in one pass (see topo.routing.clos).

    tables, demands, work: topo.routing.kstate.ClosTables (ept, pod_b1, up_ptr, uph, sd_*,
    xd_*, link_dst), ClosDemands, ClosWork; options: kstate.ClosOptions (spray, NL, K, seed,
    qps, H). The arrays below are attributes of those objects.

    ept: per (endpoint, plane) 8 int32 entries (half a cache line), K planes per endpoint: scale-up domain, leaf, uplink, plane,
    pod, rank of the leaf in its pod, index of the leaf among all leaves (NL of them), slot
    of the pod in its plane. With K > 1 (every endpoint at the same place in K planes, healthy
    fabric only) spraying sends an equal share into each plane and hashing picks a queue
    pair's plane at the first hop, as the general kernels do. uph: per uplink entry the link, its head and the head's
    sd_base (one cache line per hop).
    The tables describe the healthy fabric.
    spray = 0: roce-hash, the paths route_hash gives (same hash, same next-hop order), with
    the loads in lw; spray = 1: uec-spray (lw may be empty), each flow's mass aggregated
    in agg, two weights interleaved (agg[2k], agg[2k + 1]) over the rows: [leaf A] mass
    leaving A upward, [NL + leaf D] mass arriving at D from its own pod, [(2 + slot of
    the source pod) * NL + leaf D] mass arriving at D from another pod; the caller spreads
    them over the switch links.
    Failures (alive: empty when every link is up, else per link): a flow whose endpoint
    link is down is unreachable; a flow between two leaves whose uplinks are all up takes
    the healthy choices; between two leaves of one pod otherwise, its next hops at the
    leaf are the alive uplinks to spines with an alive link to the destination (listed
    once per leaf pair in pool, at pair_ptr/pair_cnt[leaf index * LP + rank], -1 until
    built) and at the spine the alive links to the destination; under spraying such a
    flow's mass goes to pmass[2 * pair] (and + 1 for the second weight). Every other flow
    (between pods, or a pair with no such spine) is left to the general kernels: its index
    goes to defer.
    The second weight (bytes * 8e-9 per flow) is tracked lazily: while every routed flow has
    the bytes/mass ratio of the first, only mass is carried; at the first flow that differs,
    the second weights so far are set to ratio * the first and both are carried from then
    on. lw interleaves the two weights of a link (lw[2l], lw[2l + 1]) so that one cache line
    takes both updates of a hop; epw (4 per endpoint: sent, sent second weight, received,
    received second weight) takes the endpoint links' loads, which the caller adds to the
    uplink of each endpoint and its reverse. f_idx (len 0, or n) receives the routed flows (original
    index, in order); path (len 0, or n * qps * H) their queue pairs' links, row by routed
    flow. stats: offered mass, same-domain flows, routed flows with mass <= 0, negative
    rates or bytes, unreachable mass. counts: deferred flows, pool entries used. Returns
    (routed flows, carried both weights, ratio of the first flow).

    Threads (options.threads): on a healthy fabric (alive empty) the demands are cut into
    clos_chunks (a function of the number of demands, qps and the size of the loads only, never
    of the thread count). Chunk 0 routes into the loads, every other chunk into zeroed loads of
    its own (lw, epw, agg, stats) added in chunk order afterwards; each chunk tracks the second
    weight lazily as above with its own ratio, and where any chunk carried both weights (or two
    chunks' ratios differ by more than 1e-12 relative) every chunk that did not sets its second
    weights to its own ratio x the first before the sums. A chunk writes its routed flows' rows
    from its first demand on; the rows are then moved together in chunk order. The same bits
    for any ``threads``; with one chunk (small calls, and any call with failures) the plain loop.
    """
    cdef int spray = options.spray, K = options.K, qps = options.qps, H = options.H
    cdef int threads = options.threads
    cdef id_t NL = options.NL
    cdef uint64_t seed = options.seed
    cdef ClosView tb = _clos_view(tables)
    cdef ClosDemandsView dm = ClosDemandsView.__new__(ClosDemandsView)
    cdef ClosWorkView cw = ClosWorkView.__new__(ClosWorkView)
    dm.src = demands.src
    dm.dst = demands.dst
    dm.rate = demands.rate
    dm.nbytes = demands.nbytes
    dm.inv_eff = demands.inv_eff
    cw.alive = work.alive
    cw.lclean = work.lclean
    cw.LP = work.LP
    cw.pair_ptr = work.pair_ptr
    cw.pair_cnt = work.pair_cnt
    cw.pool = work.pool
    cw.pmass = work.pmass
    cw.lw = work.lw
    cw.epw = work.epw
    cw.agg = work.agg
    cw.unreach = work.unreach
    cw.f_idx = work.f_idx
    cw.path = work.path
    cw.defer = work.defer
    cw.stats = work.stats
    cw.counts = work.counts
    cdef id_t n = dm.src.shape[0]
    cdef int64_t[::1] bounds
    if cw.alive.shape[0] > 0:
        bounds = np.array([0, n], np.int64)
    else:
        bounds = clos_chunks(n, CLOS_SPRAY_QP if spray else qps, cw.lw.shape[0] + cw.epw.shape[0] + cw.agg.shape[0])
    cdef id_t NB = bounds.shape[0] - 1
    cdef real_t[::1] ret = np.zeros(3 * NB)
    if NB == 1:
        with nogil:
            if spray:
                _clos_loop(<spray_pass>1, tb, dm, cw, NL, K, seed, qps, H, 0, n, 0, ret, 0)
            else:
                _clos_loop(<hash_pass>0, tb, dm, cw, NL, K, seed, qps, H, 0, n, 0, ret, 0)
        return int(ret[0]), bool(ret[1]), float(ret[2]) if ret[2] >= 0.0 else 0.0
    return _clos_chunked(tb, dm, cw, bounds, NL, K, seed, qps, H, spray, threads, ret)


# chunks of demands for route_clos on a healthy fabric: at most CLOS_CHUNKS, each with at least
# CLOS_CHUNK_WORK queue pairs and at least 1 / CLOS_BUFFER_PER_QP as many as the entries of a
# chunk's own loads (zeroing and adding an entry costs a few ns, routing a queue pair a few hundred:
# the buffers stay a small part of the work); a sprayed demand counts as CLOS_SPRAY_QP of a
# hashed queue pair (on the 131k reference, 552,320 random demands: ~70 ns CPU per sprayed
# demand, ~400 ns per hashed queue pair); fewer than two: one chunk, the plain loop
CLOS_CHUNKS = 8
CLOS_CHUNK_WORK = 1 << 16
CLOS_BUFFER_PER_QP = 8
CLOS_SPRAY_QP = 0.25


def clos_chunks(n, qps, buffer):
    """Chunk boundaries over route_clos's demands (int64, chunks + 1 entries from 0 to n): equal
    numbers of demands. A function of the number of demands n, queue pairs per demand (a number;
    route_clos gives CLOS_SPRAY_QP when spraying) and a chunk's load entries (buffer) only."""
    n = int(n)
    per = max(int(CLOS_CHUNK_WORK), int(buffer) // int(CLOS_BUFFER_PER_QP), 1)
    nb = int(min(CLOS_CHUNKS, int(n * float(qps)) // per))
    if nb <= 1:
        return np.array([0, n], np.int64)
    return (np.arange(nb + 1, dtype=np.int64) * n) // nb


cdef _clos_chunked(ClosView tb, ClosDemandsView dm, ClosWorkView cw, int64_t[::1] bounds, id_t NL, int K,
                   uint64_t seed, int qps, int H, int spray, int threads, real_t[::1] ret):
    """route_clos over chunks of demands (see route_clos: healthy fabric, NB >= 2 chunks)."""
    cdef id_t NB = bounds.shape[0] - 1, c, k, off, nbc, lo, rows, qH = qps * H, T = max(1, min(threads, NB))
    cdef real_t r0 = -1.0, rc
    cdef bint two = False
    cdef real_t[::1] lw = cw.lw, epw = cw.epw, agg = cw.agg, stats = cw.stats
    cdef int64_t[::1] f_idx = cw.f_idx, path = cw.path
    cdef real_t[:, ::1] b_lw = np.zeros((NB - 1, lw.shape[0]))
    cdef real_t[:, ::1] b_epw = np.zeros((NB - 1, epw.shape[0]))
    cdef real_t[:, ::1] b_agg = np.zeros((NB - 1, agg.shape[0]))
    cdef real_t[:, ::1] b_st = np.zeros((NB - 1, stats.shape[0]))
    cdef ClosWorkView v
    keep = [cw]
    for c in range(NB - 1):
        v = ClosWorkView.__new__(ClosWorkView)
        v.alive = cw.alive
        v.lclean = cw.lclean
        v.LP = cw.LP
        v.pair_ptr = cw.pair_ptr
        v.pair_cnt = cw.pair_cnt
        v.pool = cw.pool
        v.pmass = cw.pmass
        v.lw = b_lw[c]
        v.epw = b_epw[c]
        v.agg = b_agg[c]
        v.unreach = cw.unreach
        v.f_idx = cw.f_idx
        v.path = cw.path
        v.defer = cw.defer
        v.stats = b_st[c]
        v.counts = np.zeros(2, np.int64)
        keep.append(v)
    cdef PyObject** ws = <PyObject**>PyMem_Malloc(NB * sizeof(PyObject*))
    if ws == NULL:
        raise MemoryError()
    for c in range(NB):
        ws[c] = <PyObject*>keep[c]
    try:
        for c in prange(NB, nogil=True, num_threads=T, schedule="dynamic", chunksize=1):
            if spray:
                _clos_loop(<spray_pass>1, tb, dm, <ClosWorkView>ws[c], NL, K, seed, qps, H, bounds[c], bounds[c + 1],
                           bounds[c], ret, 3 * c)
            else:
                _clos_loop(<hash_pass>0, tb, dm, <ClosWorkView>ws[c], NL, K, seed, qps, H, bounds[c], bounds[c + 1],
                           bounds[c], ret, 3 * c)
    finally:
        PyMem_Free(ws)
    # the ratio of the first chunk with a routed flow with mass; both weights where a chunk
    # carried them or ratios differ
    for c in range(NB):
        rc = ret[3 * c + 2]
        if ret[3 * c + 1] != 0.0:
            two = True
        if rc >= 0.0:
            if r0 < 0.0:
                r0 = rc
            elif rc - r0 > 1e-12 * r0 or r0 - rc > 1e-12 * r0:
                two = True
    with nogil:
        if two:
            for c in range(NB):
                if ret[3 * c + 1] != 0.0:
                    continue
                rc = ret[3 * c + 2] if ret[3 * c + 2] >= 0.0 else 0.0
                if c == 0:
                    _second_weights(lw, epw, agg, rc)
                else:
                    _second_weights(b_lw[c - 1], b_epw[c - 1], b_agg[c - 1], rc)
        # the chunks' loads and statistics added in chunk order (each entry on its own: the loads
        # in spans of entries on the threads, the same sums for any thread count)
        for c in range(NB - 1):
            for k in range(stats.shape[0]):
                stats[k] += b_st[c, k]
    _add_rows(lw, b_lw, T)
    _add_rows(epw, b_epw, T)
    _add_rows(agg, b_agg, T)
    with nogil:
        # the chunks' rows moved together in chunk order (each lands at or before where it was)
        off = <id_t>ret[0]
        for c in range(1, NB):
            nbc = <id_t>ret[3 * c]
            lo = bounds[c]
            if f_idx.shape[0] > 0:
                for k in range(nbc):
                    f_idx[off + k] = f_idx[lo + k]
            if path.shape[0] > 0:
                for k in range(nbc * qH):
                    path[off * qH + k] = path[lo * qH + k]
            off += nbc
        # rows left behind by the moves back to -1 (as the plain loop leaves rows it did not route)
        if path.shape[0] > 0:
            for c in range(1, NB):
                lo = bounds[c]
                rows = lo + <id_t>ret[3 * c]
                for k in range(max(lo, off) * qH, rows * qH):
                    path[k] = -1
    return int(off), bool(two), float(r0) if r0 >= 0.0 else 0.0


cdef int _add_rows(real_t[::1] out, real_t[:, ::1] rows, id_t T) except -1:
    """out[k] += rows[0, k] + ... in row order for every k; spans of 65,536 entries on T threads."""
    cdef id_t m = out.shape[0], ns = (m + 65535) // 65536, sp, k, c, hi
    for sp in prange(ns, nogil=True, num_threads=T, schedule="static"):
        hi = min(m, (sp + 1) * 65536)
        for c in range(rows.shape[0]):
            for k in range(sp * 65536, hi):
                out[k] += rows[c, k]
    return 0


cdef int _second_weights(real_t[::1] lw, real_t[::1] epw, real_t[::1] agg, real_t r0) except -1 nogil:
    """A chunk's second weights as its ratio r0 x the first (route_clos's lazy second weight)."""
    cdef id_t k
    for k in range(lw.shape[0] // 2):
        lw[2 * k + 1] = lw[2 * k] * r0
    for k in range(epw.shape[0] // 2):
        epw[2 * k + 1] = epw[2 * k] * r0
    for k in range(agg.shape[0] // 2):
        agg[2 * k + 1] = agg[2 * k] * r0
    return 0



cdef inline int _reach(id_t u, int v, id_t g, id_t D, id_t q, id_t rk, id_t b1,
                        const id_t[::1] up_ptr, const id_t[::1] up_lnk, const id_t[::1] up_head,
                        const id_t[::1] sd_base, const id_t[::1] sd_lnk, const id_t[::1] xd_base,
                        const id_t[::1] xd_start, const id_t[::1] xd_cnt, const id_t[::1] xd_lnk,
                        const id_t[::1] xd_head, const uint8_t[::1] alive,
                        int64_t[::1] rstamp, uint8_t[::1] rval) except -1 nogil:
    """Whether u still reaches leaf D on a shortest up-down path (memo per destination g):
    v = 1, a spine of D's pod (slot q) with an alive link to D; v = 2, a super-spine with an
    alive link to such a spine; v = 3, a spine with an alive uplink to such a super-spine."""
    cdef id_t k, t
    cdef bint ok = False
    if rstamp[u] == g:
        return rval[u]
    if v == 1:
        for t in range(b1):
            if alive[sd_lnk[sd_base[u] + rk + t]]:
                ok = True
                break
    elif v == 2:
        k = xd_base[u] + q
        for t in range(xd_start[k], xd_start[k] + xd_cnt[k]):
            if alive[xd_lnk[t]] and _reach(xd_head[t], 1, g, D, q, rk, b1, up_ptr, up_lnk, up_head, sd_base,
                                           sd_lnk, xd_base, xd_start, xd_cnt, xd_lnk, xd_head, alive, rstamp, rval):
                ok = True
                break
    else:
        for k in range(up_ptr[u], up_ptr[u + 1]):
            if alive[up_lnk[k]] and _reach(up_head[k], 2, g, D, q, rk, b1, up_ptr, up_lnk, up_head, sd_base,
                                           sd_lnk, xd_base, xd_start, xd_cnt, xd_lnk, xd_head, alive, rstamp, rval):
                ok = True
                break
    rstamp[u] = g
    rval[u] = ok
    return ok


def spray_cross(tables, cross, work):
    """uec-spray of flows between pods of a regular Clos with failed links, per destination leaf.

    tables, cross, work: topo.routing.kstate.ClosTables (pod, rank, pod_b1, pod_slot, up_ptr,
    up_lnk, up_head, sd_*, xd_*), CrossFlows, CrossWork; the arrays below are their attributes.

    The shortest paths between pods go up to a super-spine and down; the equal-cost next
    hops of a switch are its alive links to switches that still reach the destination (see
    _reach). Mass is pushed level by level (source leaves, their spines, super-spines,
    spines of the destination pod) and split evenly over those links, as route_fluid's
    spray mode does. Flows of destination g are g_ptr[g] .. g_ptr[g+1]-1 (leaf g_dst[g]),
    from leaf f_leaf with masses f_m and f_m2 (second weight). A source leaf with no such
    uplink has only longer paths: its flows get f_ok 0 and no load (the general kernels
    route them). Work arrays per node: rstamp and tstamp (all -1 on entry), rval, mass and
    mass2 (all 0 on entry and exit), touched.
    """
    cdef ClosView tb = _clos_view(tables)
    _spray_cross(cross.g_ptr, cross.g_dst, cross.f_leaf, cross.f_m, cross.f_m2, tb.pod, tb.rank, tb.pod_b1,
                 tb.pod_slot, tb.up_ptr, tb.up_lnk, tb.up_head, tb.sd_base, tb.sd_lnk, tb.xd_base, tb.xd_start,
                 tb.xd_cnt, tb.xd_lnk, tb.xd_head, work.alive, work.rstamp, work.rval, work.tstamp, work.mass,
                 work.mass2, work.touched, work.load, work.load2, work.f_ok)


cdef int _spray_cross(const id_t[::1] g_ptr, const id_t[::1] g_dst, const id_t[::1] f_leaf, const real_t[::1] f_m,
                const real_t[::1] f_m2, const id_t[::1] pod, const id_t[::1] rank, const id_t[::1] pod_b1,
                const id_t[::1] pod_slot, const id_t[::1] up_ptr, const id_t[::1] up_lnk, const id_t[::1] up_head,
                const id_t[::1] sd_base, const id_t[::1] sd_lnk, const id_t[::1] xd_base, const id_t[::1] xd_start,
                const id_t[::1] xd_cnt, const id_t[::1] xd_lnk, const id_t[::1] xd_head, const uint8_t[::1] alive,
                int64_t[::1] rstamp, uint8_t[::1] rval, int64_t[::1] tstamp, real_t[::1] mass, real_t[::1] mass2,
                int64_t[::1] touched, real_t[::1] load, real_t[::1] load2, uint8_t[::1] f_ok) except -1:
    """spray_cross's pass over the arrays of its three objects."""
    cdef id_t ng = g_ptr.shape[0] - 1, g, f, D, Q, q, b1, rk, A, s, k, r, t, c, nt, lo, hi, v, e, u
    cdef real_t x, x2
    with nogil:
        for g in range(ng):
            D = g_dst[g]
            Q = pod[D]
            q = pod_slot[Q]
            b1 = pod_b1[Q]
            rk = rank[D] * b1
            nt = 0
            for f in range(g_ptr[g], g_ptr[g + 1]):
                A = f_leaf[f]
                if tstamp[A] != g:
                    tstamp[A] = g
                    touched[nt] = A
                    nt += 1
                mass[A] += f_m[f]
                mass2[A] += f_m2[f]
            lo = 0
            hi = nt
            for v in range(3):          # leaves, spines of the source pods, super-spines
                for e in range(lo, hi):
                    u = touched[e]
                    c = 0
                    if v < 2:
                        for k in range(up_ptr[u], up_ptr[u + 1]):
                            if alive[up_lnk[k]] and _reach(up_head[k], 3 - v, g, D, q, rk, b1, up_ptr, up_lnk,
                                                           up_head, sd_base, sd_lnk, xd_base, xd_start, xd_cnt,
                                                           xd_lnk, xd_head, alive, rstamp, rval):
                                c += 1
                    else:
                        k = xd_base[u] + q
                        for t in range(xd_start[k], xd_start[k] + xd_cnt[k]):
                            c += alive[xd_lnk[t]]
                    if c == 0:
                        continue        # only a source leaf can be here (the others were chosen as reaching)
                    x = mass[u] / c
                    x2 = mass2[u] / c
                    if v < 2:
                        for k in range(up_ptr[u], up_ptr[u + 1]):
                            r = up_lnk[k]
                            if alive[r] and _reach(up_head[k], 3 - v, g, D, q, rk, b1, up_ptr, up_lnk, up_head,
                                                   sd_base, sd_lnk, xd_base, xd_start, xd_cnt, xd_lnk, xd_head,
                                                   alive, rstamp, rval):
                                load[r] += x
                                load2[r] += x2
                                s = up_head[k]
                                if tstamp[s] != g:
                                    tstamp[s] = g
                                    touched[nt] = s
                                    nt += 1
                                mass[s] += x
                                mass2[s] += x2
                    else:
                        for t in range(xd_start[k], xd_start[k] + xd_cnt[k]):
                            r = xd_lnk[t]
                            if alive[r]:
                                load[r] += x
                                load2[r] += x2
                                s = xd_head[t]
                                if tstamp[s] != g:
                                    tstamp[s] = g
                                    touched[nt] = s
                                    nt += 1
                                mass[s] += x
                                mass2[s] += x2
                lo = hi
                hi = nt
            for e in range(lo, hi):     # spines of the destination pod -> D
                u = touched[e]
                c = 0
                for t in range(b1):
                    c += alive[sd_lnk[sd_base[u] + rk + t]]
                x = mass[u] / c
                x2 = mass2[u] / c
                for t in range(b1):
                    r = sd_lnk[sd_base[u] + rk + t]
                    if alive[r]:
                        load[r] += x
                        load2[r] += x2
            # flows from a leaf with no way up are not routed here
            for f in range(g_ptr[g], g_ptr[g + 1]):
                A = f_leaf[f]
                f_ok[f] = _reach_leaf(A, g, D, q, rk, b1, up_ptr, up_lnk, up_head, sd_base, sd_lnk, xd_base,
                                      xd_start, xd_cnt, xd_lnk, xd_head, alive, rstamp, rval)
            for e in range(nt):
                u = touched[e]
                mass[u] = 0.0
                mass2[u] = 0.0
    return 0


cdef inline int _reach_leaf(id_t A, id_t g, id_t D, id_t q, id_t rk, id_t b1,
                             const id_t[::1] up_ptr, const id_t[::1] up_lnk, const id_t[::1] up_head,
                             const id_t[::1] sd_base, const id_t[::1] sd_lnk, const id_t[::1] xd_base,
                             const id_t[::1] xd_start, const id_t[::1] xd_cnt, const id_t[::1] xd_lnk,
                             const id_t[::1] xd_head, const uint8_t[::1] alive,
                             int64_t[::1] rstamp, uint8_t[::1] rval) except -1 nogil:
    """Whether source leaf A has an alive uplink to a spine that still reaches D."""
    cdef id_t k
    for k in range(up_ptr[A], up_ptr[A + 1]):
        if alive[up_lnk[k]] and _reach(up_head[k], 3, g, D, q, rk, b1, up_ptr, up_lnk, up_head, sd_base, sd_lnk,
                                       xd_base, xd_start, xd_cnt, xd_lnk, xd_head, alive, rstamp, rval):
            return True
    return False


# --- uniform all-to-all, sources aggregated in the kernel ------------------------------------------
# destination chunks of route_uniform: at most UNIFORM_CHUNKS, at least UNIFORM_DESTS_PER_CHUNK
# destinations each, and their load buffers together at most UNIFORM_BUFFER doubles
UNIFORM_CHUNKS = 16
UNIFORM_DESTS_PER_CHUNK = 4
UNIFORM_BUFFER = 1 << 24


def uniform_chunks(id_t n_dests, id_t per_chunk):
    """Chunk boundaries over route_uniform's destinations (int64, chunks + 1 entries, from 0 to
    n_dests): equal numbers of destinations per chunk. A function of the number of destinations
    and of the size of one chunk's buffers (per_chunk doubles) only, never of the threads."""
    cdef id_t nc = min(UNIFORM_CHUNKS, max(1, n_dests // UNIFORM_DESTS_PER_CHUNK),
                       max(1, UNIFORM_BUFFER // max(per_chunk, 1)))
    return (np.arange(nc + 1, dtype=np.int64) * max(n_dests, 0)) // nc


# each unordered pair once (fluid, symmetric demand): see route_uniform. The eccentricities of the
# home switches come from a bit-parallel BFS, _EW x 64 roots at a time
cdef enum:
    _EW = 4


cdef int _ecc_block(id_t k0, id_t k1, const int32_t[::1] roots, const id_t[::1] sw_ptr, const int32_t[::1] head,
                    const int32_t[::1] sw_list, id_t sw_lo, uint64_t* F, uint64_t* X, uint64_t* V,
                    int32_t[::1] ecc) except -1 nogil:
    """ecc[roots[k]] for k in k0 .. k1-1 (at most 64 x _EW roots): the largest hop count from the
    root to a switch it reaches. Lane k - k0 of a switch's _EW words is that root's bit; F is the
    frontier, V the visited switches, X the next frontier (rows of the switches sw_lo .. )."""
    cdef id_t q, j, s, u, k, base, lane
    cdef int w, level = 0, bit
    cdef uint64_t acc[_EW]
    cdef uint64_t lm[_EW]
    cdef uint64_t nw, anyb
    cdef uint64_t* tmp
    for q in range(sw_list.shape[0]):
        base = (sw_list[q] - sw_lo) * _EW
        for w in range(_EW):
            F[base + w] = 0
            V[base + w] = 0
    for k in range(k0, k1):
        s = roots[k]
        ecc[s] = 0
        if sw_ptr[s + 1] > sw_ptr[s]:
            lane = k - k0
            F[(s - sw_lo) * _EW + (lane >> 6)] |= (<uint64_t>1) << (lane & 63)
            V[(s - sw_lo) * _EW + (lane >> 6)] |= (<uint64_t>1) << (lane & 63)
    while True:
        anyb = 0
        for w in range(_EW):
            lm[w] = 0
        for q in range(sw_list.shape[0]):
            s = sw_list[q]
            for w in range(_EW):
                acc[w] = 0
            for j in range(sw_ptr[s], sw_ptr[s + 1]):
                u = (head[j] - sw_lo) * _EW
                for w in range(_EW):
                    acc[w] |= F[u + w]
            base = (s - sw_lo) * _EW
            for w in range(_EW):
                nw = acc[w] & ~V[base + w]
                X[base + w] = nw
                lm[w] |= nw
        for w in range(_EW):
            anyb |= lm[w]
        if anyb == 0:
            return 0
        level += 1
        for q in range(sw_list.shape[0]):
            base = (sw_list[q] - sw_lo) * _EW
            for w in range(_EW):
                V[base + w] |= X[base + w]
        tmp = F
        F = X
        X = tmp
        for w in range(_EW):
            for bit in range(64):
                if (lm[w] >> bit) & 1:
                    ecc[roots[k0 + w * 64 + bit]] = level
    return 0


def uniform_pair_facts(fabric, const int32_t[::1] homes, int threads):
    """(ecc, comp), int32 per node: the eccentricity of each switch in ``homes`` (hops to the
    farthest switch it reaches over the alive switch links; -1 elsewhere) and the connected
    component of every switch (-1 for the endpoints), for route_uniform's pairs-once path. ``homes``:
    distinct node ids in increasing order (ValueError otherwise); ``fabric`` as route_uniform
    takes it, checked there."""
    cdef FabricView fb = _fabric_view(fabric)
    cdef id_t N = fb.sw_ptr.shape[0] - 1, nh = homes.shape[0], nb, b, q, s, u, j, lo, hi, c
    cdef const int32_t[::1] head = np.asarray(fb.sw_head, np.int32)
    deg = np.diff(np.asarray(fb.sw_ptr))
    cdef const int32_t[::1] sw_list = np.flatnonzero(deg > 0).astype(np.int32)
    cdef id_t sw_lo = sw_list[0] if sw_list.shape[0] else 0
    cdef id_t R = (sw_list[sw_list.shape[0] - 1] + 1 - sw_lo) if sw_list.shape[0] else 1
    hs = np.asarray(homes)
    if nh and (int(hs.min()) < 0 or int(hs.max()) >= N or bool((np.diff(hs) <= 0).any())):
        raise ValueError("uniform_pair_facts: homes must be distinct node ids in increasing order")
    e = np.full(N, -1, np.int32)
    cm = np.full(N, -1, np.int32)
    cdef int32_t[::1] ecc = e, comp = cm
    cdef int32_t[::1] queue = np.zeros(max(N, 1), np.int32)
    nb = (nh + 64 * _EW - 1) // (64 * _EW)
    cdef int T = max(1, min(threads, nb))
    cdef uint64_t[:, ::1] work = np.zeros((T, 3 * R * _EW + 1), np.uint64)
    with nogil:
        # components: a BFS from each switch not yet labelled (homes without switch links alone)
        c = 0
        for q in range(sw_list.shape[0] + nh):
            s = sw_list[q] if q < sw_list.shape[0] else homes[q - sw_list.shape[0]]
            if comp[s] >= 0:
                continue
            comp[s] = <int32_t>c
            queue[0] = <int32_t>s
            lo = 0
            hi = 1
            while lo < hi:
                u = queue[lo]
                lo += 1
                for j in range(fb.sw_ptr[u], fb.sw_ptr[u + 1]):
                    if comp[head[j]] < 0:
                        comp[head[j]] = <int32_t>c
                        queue[hi] = head[j]
                        hi += 1
            c += 1
    if T == 1:
        with nogil:
            for b in range(nb):
                _ecc_block(b * 64 * _EW, min(nh, (b + 1) * 64 * _EW), homes, fb.sw_ptr, head, sw_list, sw_lo,
                           &work[0, 0], &work[0, R * _EW], &work[0, 2 * R * _EW], ecc)
    else:
        for b in prange(nb, nogil=True, num_threads=T, schedule="dynamic", chunksize=1):
            _ecc_block(b * 64 * _EW, min(nh, (b + 1) * 64 * _EW), homes, fb.sw_ptr, head, sw_list, sw_lo,
                       &work[threadid(), 0], &work[threadid(), R * _EW], &work[threadid(), 2 * R * _EW], ecc)
    return e, cm


# the pairs-once path only on shallow switch graphs (uniform_pairs_pay): its bit-parallel pass costs
# one sweep over the switch links per level and 256 homes, and it saves half of each BFS's last
# level, a small share of a deep graph's BFS
UNIFORM_PAIRS_MAX_ECC = 8


def uniform_pairs_pay(fabric, g_home1):
    """Whether route_uniform's pairs-once path pays on this fabric: the eccentricities of up to four
    homes spread over the groups (g_home1, each group's home switch; one BFS each) all at most
    UNIFORM_PAIRS_MAX_ECC. Fat trees, Clos, Dragonfly and random regular graphs pass; rings, large
    tori and meshes do not (a ring of 2,048 switches took 2x as long on that path)."""
    h = np.asarray(g_home1)
    n = h.shape[0]
    for i in sorted({0, n // 3, (2 * n) // 3, n - 1}) if n else []:
        if uniform_hops_from(fabric, int(h[i]))[0] > UNIFORM_PAIRS_MAX_ECC:
            return False
    return n > 0


def uniform_hops_from(fabric, id_t root):
    """(eccentricity, switches at it, switches reached) of switch ``root`` over the alive switch
    links (the hops to the farthest switch it reaches, 0 if it has no link; root included in the
    counts): one BFS, O(switches + links)."""
    cdef FabricView fb = _fabric_view(fabric)
    cdef id_t N = fb.sw_ptr.shape[0] - 1, lo = 0, hi = 1, u, j, v
    if not 0 <= root < N:
        raise ValueError(f"uniform_hops_from: root must be a node id below {N} (found {root})")
    cdef const int32_t[::1] head = np.asarray(fb.sw_head, np.int32)
    cdef int32_t[::1] dist = np.full(N, -1, np.int32)
    cdef int32_t[::1] queue = np.zeros(N, np.int32)
    cdef int32_t far = 0
    cdef id_t at_far = 0
    with nogil:
        dist[root] = 0
        queue[0] = <int32_t>root
        while lo < hi:
            u = queue[lo]
            lo += 1
            if dist[u] > far:
                far = dist[u]
                at_far = 0
            at_far += 1
            for j in range(fb.sw_ptr[u], fb.sw_ptr[u + 1]):
                v = head[j]
                if dist[v] < 0:
                    dist[v] = dist[u] + 1
                    queue[hi] = <int32_t>v
                    hi += 1
    return int(far), int(at_far), int(hi)


def uniform_pairs_once(int mode, g_home1, dests, d_mult, id_t n_links):
    """Whether route_uniform routes each unordered pair of groups once (1) or each ordered pair (0).

    Once where a pair's flows one way are its flows the other way reversed: fluid (mode 0: a
    flow splits over the shortest paths in proportion to their number, the same set both ways),
    every group on one home switch (g_home1 >= 0), the demand symmetric (the destinations are
    every group once, with one multiplier), and the links in pairs (l and l ^ 1 reverse)."""
    h = np.asarray(g_home1)
    dst = np.asarray(dests)
    m = np.asarray(d_mult)
    ng = h.shape[0]
    if mode != 0 or ng == 0 or n_links % 2 or dst.shape[0] != ng or bool((h < 0).any()):
        return 0
    if not bool((np.sort(dst) == np.arange(ng)).all()) or not bool((m == m[0]).all()):
        return 0
    return 1


cdef inline real_t _wt(int mode, id_t r, real_t sn, const real_t[::1] link_gbps) noexcept nogil:
    """The split weight of a DAG edge over link r towards a node with sigma sn (see _w)."""
    if mode == 0:
        return sn
    if mode == 1:
        return link_gbps[r]
    return 1.0


cdef inline bint _pair_is_b(int32_t d, int32_t L, int32_t ea, id_t a, id_t b) noexcept nogil:
    """Whether the pair of home switches {a, b} (d > 0 hops apart; L and ea the eccentricities
    of b and a) is routed by b's BFS rather than a's: exactly one of the two. A pair on the last
    level of one switch's BFS alone goes to the other; otherwise to the higher switch id."""
    cdef bint up = b > a, last = d == ea
    return ((d < L) & (last | up)) | ((d == L) & last & up)


cdef int _uniform_sym_inject(real_t sbm, int32_t d, int32_t L, int32_t hb, const int32_t[::1] ecc,
                             const real_t[::1] sw_base, const int32_t[::1] order, const int32_t[::1] lvl_o,
                             real_t[::1] mass) except -1 nogil:
    """_uniform_dest's injection on the pairs-once path (levels 0 .. d-1 visited): at each visited
    switch s, the mass of its groups towards b (sbm = |b| x mult per unit of sw_base[s]) if the
    pair {s, hb} is hb's (_pair_is_b), else none. Level 0 (hb itself) pushes nothing."""
    cdef id_t idx
    cdef int32_t lv, s
    for lv in range(1, d):
        for idx in range(lvl_o[lv], lvl_o[lv + 1]):
            s = order[idx]
            mass[s] = sw_base[s] * sbm * _pair_is_b(lv, L, ecc[s], s, hb)      # branch-free: levels are random
    return 0


cdef id_t _last_level(bint bottom, id_t nu, int32_t L, int32_t hb, const int32_t[::1] dist, const int32_t[::1] ecc,
                      const int32_t[::1] by_ecc, const int32_t[::1] last_lo, const int32_t[::1] last_hi,
                      int32_t[::1] unv) noexcept nogil:
    """_uniform_dest's list of the switches its last level (L, pairs once) looks at, bottom-up: the
    homes of eccentricity L below hb not yet visited (by_ecc[last_lo[hb] .. last_hi[hb] - 1]), or,
    if the BFS is bottom-up already, those of its nu unvisited switches. Returns their number."""
    cdef id_t q, n = 0
    cdef int32_t s
    if not bottom:
        for q in range(last_lo[hb], last_hi[hb]):
            s = by_ecc[q]
            unv[n] = s
            n += dist[s] < 0
    else:
        for q in range(nu):
            s = unv[q]
            unv[n] = s
            n += (ecc[s] == L) & (s < hb)
    return n


cdef int _uniform_dest(id_t b, real_t mult, int mode, int KU, int KH, real_t pp,
                       const id_t[::1] sw_ptr, const id_t[::1] sw_adj, const int32_t[::1] head,
                       const int32_t[::1] sw_list, id_t sw_edges, const int32_t[::1] tail,
                       const int32_t[::1] adj, const id_t[::1] link_dst, const real_t[::1] link_gbps,
                       const id_t[::1] up_ptr, const id_t[::1] up_link, const id_t[::1] ep_up1,
                       const id_t[::1] ep_home1, const id_t[::1] g_rep, const real_t[::1] g_size,
                       const real_t[::1] g_base, const int32_t[::1] g_home1, int32_t[::1] dist, int32_t[::1] hidx,
                       int32_t[::1] order, int32_t[::1] unv, int32_t[::1] lvl_o, int32_t[::1] lvl_r,
                       int32_t[::1] rec, real_t[::1] sigma, real_t[::1] den, real_t[::1] mass, real_t[::1] A,
                       real_t[::1] lh, real_t[::1] load, real_t[::1] grp_up, real_t[::1] grp_down,
                       real_t* unreach, int sym, const int32_t[::1] ecc, const int32_t[::1] comp,
                       const real_t[::1] sw_base, const real_t[::1] c_base, const real_t[::1] c_other,
                       const int32_t[::1] by_ecc, const int32_t[::1] last_lo,
                       const int32_t[::1] last_hi, id_t l_lo) except -1 nogil:
    """The uniform demand towards destination group b (x mult): from every group a, pp x
    |a| x (|b| - [a == b]) x mult, routed as route_fluid routes a flow with source group a and
    destination spread over b.

    One BFS from b's homes records the shortest-path DAG: per edge s -> n (n one hop nearer)
    its slot j in the switch CSR, level by level. A level is expanded top-down (every edge of
    the frontier: j is in n's list, s = head[j], n = tail[j], the link s -> n is adj[j] ^ 1)
    or, from level dbot on, once the unvisited switches have fewer edges than the frontier,
    bottom-up (every edge of each unvisited switch: j is in s's list, s = tail[j], n =
    head[j], the link adj[j]); both are branch-free over the edges. sigma and den are 0,
    dist and hidx -1 on entry and on exit; in mode 0 den is sigma itself (the same array:
    the caller passes it twice). Each source group's mass is injected at its home switches (one
    injection per group, whatever its size), the last hop into b is taken once for all the
    sources (it is linear in the mass reaching each home), then the mass is pushed along the
    DAG, farthest edges first.

    With sym (route_uniform's pairs-once path: fluid, every group single-homed, the demand
    symmetric) only the sources whose home's pair with b's home hb is hb's are injected
    (_pair_is_b), and the BFS stops at hb's eccentricity L: its last level looks, bottom-up,
    only at the homes whose pairs there are hb's (ecc L, a lower id: by_ecc[last_lo[hb] ..
    last_hi[hb] - 1], the homes sorted by eccentricity and id), since nothing lies beyond it.
    The last hop and the unreachable mass count every source, by component (c_base: the
    components' sums of g_base, c_other: the other components' sums); route_uniform adds the
    uplinks."""
    cdef id_t td = g_rep[b], ng = g_rep.shape[0], k, k0, u, h, e, a, j, i, idx, lo, hi
    cdef id_t nq = 0, nh = 0, nr = 0, nu = -1, fe = 0, seen = 0, q, nu2, iend
    cdef int32_t s, n, d = 0, d1, ds, best, jj, isnew, on, par, r, dbot = 0x7FFFFFFF
    cdef real_t m, sb = g_size[b], tot, share, x, wv, sn, acc, lh0 = 0.0, unr = 0.0
    cdef id_t lv
    cdef bint bottom = False
    cdef int32_t L = -1, hb = -1
    cdef id_t sw_lo = sw_list[0] if sw_list.shape[0] else 0
    cdef id_t sw_hi = sw_list[sw_list.shape[0] - 1] + 1 if sw_list.shape[0] else 0
    for k in range(up_ptr[td], up_ptr[td + 1]):
        u = up_link[k]
        h = link_dst[u]
        if dist[h] < 0:
            dist[h] = 0
            hidx[h] = <int32_t>nh
            nh += 1
            order[nq] = <int32_t>h
            nq += 1
            fe += sw_ptr[h + 1] - sw_ptr[h]
        sigma[h] += 1.0
        if mode == 1:
            den[h] += link_gbps[u ^ 1]
        elif mode == 2:
            den[h] += 1.0
    seen = fe
    if sym:
        hb = g_home1[b]
        L = ecc[hb]
    lo = 0
    hi = nq
    while lo < hi:
        d1 = d + 1
        lvl_o[d] = <int32_t>lo
        lvl_r[d] = <int32_t>nr
        if sym and d1 >= L:
            if d == L:
                d = d1          # nothing beyond b's eccentricity
                break
            # the last level, bottom-up over the switches that home a source of b's pairs alone
            nu = _last_level(bottom, nu, L, hb, dist, ecc, by_ecc, last_lo, last_hi, unv)
            if not bottom:
                bottom = True
                dbot = d
        elif not bottom and sw_list.shape[0] + (sw_edges - seen) < fe:
            bottom = True
            dbot = d
            nu = 0
            for q in range(sw_list.shape[0]):
                s = sw_list[q]
                unv[nu] = s
                nu += dist[s] < 0
        fe = 0
        if bottom:
            # every unvisited switch looks for parents at level d
            nu2 = 0
            for q in range(nu):
                s = unv[q]
                par = 0
                # s's sums in registers, added to in the same order (s is not its own parent)
                acc = sigma[s]
                wv = den[s]
                for j in range(sw_ptr[s], sw_ptr[s + 1]):
                    n = head[j]
                    on = dist[n] == d
                    sn = sigma[n]
                    acc += sn * on
                    if mode != 0:
                        wv += _wt(mode, sw_adj[j], sn, link_gbps) * on
                    rec[nr] = <int32_t>j
                    nr += on
                    par += on
                sigma[s] = acc
                if mode != 0:
                    den[s] = wv
                if par:
                    dist[s] = d1
                    order[nq] = s
                    nq += 1
                else:
                    unv[nu2] = s
                    nu2 += 1
            nu = nu2
        elif mode == 0:
            for i in range(lo, hi):
                n = order[i]
                sn = sigma[n]
                for j in range(sw_ptr[n], sw_ptr[n + 1]):
                    s = head[j]
                    ds = dist[s]
                    isnew = ds < 0
                    order[nq] = s
                    nq += isnew
                    ds += isnew * (d1 + 1)       # -1 -> d1, branch-free
                    dist[s] = ds
                    on = ds == d1
                    sigma[s] += sn * on
                    rec[nr] = <int32_t>j
                    nr += on
        else:
            for i in range(lo, hi):
                n = order[i]
                sn = sigma[n]
                for j in range(sw_ptr[n], sw_ptr[n + 1]):
                    s = head[j]
                    ds = dist[s]
                    isnew = ds < 0
                    order[nq] = s
                    nq += isnew
                    ds += isnew * (d1 + 1)       # -1 -> d1, branch-free
                    dist[s] = ds
                    on = ds == d1
                    sigma[s] += sn * on
                    u = sw_adj[j] ^ 1
                    den[s] += _wt(mode, u, sn, link_gbps) * on
                    rec[nr] = <int32_t>j
                    nr += on
        if not bottom:
            for i in range(hi, nq):
                s = order[i]
                fe += sw_ptr[s + 1] - sw_ptr[s]
            seen += fe
        lo = hi
        hi = nq
        d = d1
    lvl_o[d] = <int32_t>nq
    lvl_r[d] = <int32_t>nr
    if nh > 1:
        # A[s, jj]: fraction of the mass at s that reaches home jj (DAG edges in BFS order)
        for idx in range(nq):
            s = order[idx]
            for jj in range(nh):
                A[s * KH + jj] = 0.0
            if dist[s] == 0:
                A[s * KH + hidx[s]] = 1.0
        iend = lvl_r[dbot] if dbot < d else nr
        for i in range(nr):
            j = rec[i]
            if i < iend:
                s = head[j]
                n = tail[j]
                r = adj[j] ^ 1
            else:
                s = tail[j]
                n = head[j]
                r = adj[j]
            wv = _wt(mode, r, sigma[n], link_gbps) / den[s]
            for jj in range(nh):
                A[s * KH + jj] += wv * A[n * KH + jj]
    for jj in range(nh):
        lh[jj] = 0.0
    if sym:
        # every source in the last hop or the unreachable mass (the uplinks: route_uniform)
        lh0 = mult * (sb * c_base[comp[hb]] - g_base[b])
        unr = mult * sb * c_other[comp[hb]]
        _uniform_sym_inject(sb * mult, d, L, hb, ecc, sw_base, order, lvl_o, mass)
    # inject every source group's mass at its home switches
    for a in range(ng if not sym else 0):
        m = g_base[a] * (sb - (1.0 if a == b else 0.0)) * mult
        if not m > 0.0:
            continue
        h = g_home1[a]
        if h >= 0:
            if dist[h] < 0:
                unr += m
                continue
            grp_up[a * KU] += m
            mass[h] += m
            if nh == 1:
                lh0 += m
            else:
                for jj in range(nh):
                    lh[jj] += m * A[h * KH + jj]
            continue
        e = g_rep[a]
        best = -1
        tot = 0.0
        for k in range(up_ptr[e], up_ptr[e + 1]):
            u = up_link[k]
            h = link_dst[u]
            if dist[h] < 0:
                continue
            if best < 0 or dist[h] < best:
                best = dist[h]
                tot = 0.0
            if dist[h] == best:
                if mode == 0:
                    tot += sigma[h]
                elif mode == 1:
                    tot += link_gbps[u]
                else:
                    tot += 1.0
        if best < 0:
            unr += m
            continue
        k0 = up_ptr[e]
        for k in range(up_ptr[e], up_ptr[e + 1]):
            u = up_link[k]
            h = link_dst[u]
            if dist[h] != best:
                continue
            if mode == 0:
                share = m * sigma[h] / tot
            elif mode == 1:
                share = m * link_gbps[u] / tot
            else:
                share = m / tot
            grp_up[a * KU + (k - k0)] += share
            mass[h] += share
            if nh == 1:
                lh0 += share
            else:
                for jj in range(nh):
                    lh[jj] += share * A[h * KH + jj]
    unreach[0] += unr
    if nh == 1:
        lh[0] = lh0
    # the last hop, home -> b's members (once for all sources: it is linear in lh)
    k0 = up_ptr[td]
    if mode == 1:
        for jj in range(nh):
            lh[KH + jj] = 0.0
        for k in range(up_ptr[td], up_ptr[td + 1]):
            u = up_link[k]
            lh[KH + hidx[link_dst[u]]] += link_gbps[u ^ 1]
    for k in range(up_ptr[td], up_ptr[td + 1]):
        u = up_link[k]
        h = link_dst[u]
        if mode == 1:
            x = lh[hidx[h]] * link_gbps[u ^ 1] / lh[KH + hidx[h]]
        else:
            x = lh[hidx[h]] / den[h]
        grp_down[b * KU + (k - k0)] += x
    # push the mass along the DAG, farthest level first: the mass of each switch of level
    # lv + 1 is complete once the level below it is done; it becomes mass / den there, and each
    # DAG edge s -> n of level lv carries that times its weight. A top-down level lists the
    # edges into each n together: their masses are summed into n in a register, in the same
    # order as one at a time (n is not an s of its own level)
    for lv in range(d - 2, -1, -1):
        for idx in range(lvl_o[lv + 1], lvl_o[lv + 2]):
            s = order[idx]
            mass[s] = mass[s] / den[s]
        i = lvl_r[lv]
        iend = lvl_r[lv + 1]
        if lv < dbot:
            while i < iend:
                j = rec[i]
                n = tail[j]
                sn = sigma[n]
                acc = mass[n]
                while True:
                    r = adj[j] ^ 1
                    x = mass[head[j]] * _wt(mode, r, sn, link_gbps)
                    load[r - l_lo] += x
                    acc += x
                    i += 1
                    if i >= iend:
                        break
                    j = rec[i]
                    if tail[j] != n:
                        break
                mass[n] = acc
        else:
            for i in range(lvl_r[lv], iend):
                j = rec[i]
                n = head[j]
                r = adj[j]
                x = mass[tail[j]] * _wt(mode, r, sigma[n], link_gbps)
                load[r - l_lo] += x
                mass[n] += x
    if nq > 64 and 2 * nq > sw_hi - sw_lo:
        # most switches were visited: clear their whole id range, then the homes outside it
        # (every visited switch but a home has switch links, so lies in [sw_lo, sw_hi): the
        # alive switch links come in pairs, which topo.routing.kernels checks)
        memset(&dist[sw_lo], 0xFF, (sw_hi - sw_lo) * sizeof(int32_t))
        memset(&hidx[sw_lo], 0xFF, (sw_hi - sw_lo) * sizeof(int32_t))
        memset(&mass[sw_lo], 0, (sw_hi - sw_lo) * sizeof(real_t))
        memset(&sigma[sw_lo], 0, (sw_hi - sw_lo) * sizeof(real_t))
        if mode != 0:
            memset(&den[sw_lo], 0, (sw_hi - sw_lo) * sizeof(real_t))
        nq = nh
    for idx in range(nq):
        s = order[idx]
        dist[s] = -1
        hidx[s] = -1
        mass[s] = 0.0
        sigma[s] = 0.0
        den[s] = 0.0
    return 0


cdef int _uniform_chunk(id_t lo, id_t hi, int t, int c, int mode, int KU, int KH, real_t pp,
                        const id_t[::1] sw_ptr, const id_t[::1] sw_adj, const int32_t[::1] head,
                        const int32_t[::1] sw_list, id_t sw_edges, const int32_t[::1] tail,
                        const int32_t[::1] adj, const id_t[::1] link_dst, const real_t[::1] link_gbps,
                        const id_t[::1] up_ptr, const id_t[::1] up_link, const id_t[::1] ep_up1,
                        const id_t[::1] ep_home1, const id_t[::1] g_rep, const real_t[::1] g_size,
                        const real_t[::1] g_base, const int32_t[::1] g_home1, const id_t[::1] dests,
                        const real_t[::1] d_mult, int32_t[:, ::1] w_i, int32_t[:, ::1] w_rec,
                        real_t[:, ::1] w_f, real_t[:, ::1] w_A, real_t[:, ::1] o_load, real_t[:, ::1] o_up,
                        real_t[:, ::1] o_down, real_t[::1] o_unr, int sym, const int32_t[::1] ecc,
                        const int32_t[::1] comp, const real_t[::1] sw_base, const real_t[::1] c_base,
                        const real_t[::1] c_other, const int32_t[::1] by_ecc, const int32_t[::1] last_lo,
                        const int32_t[::1] last_hi, id_t l_lo) except -1 nogil:
    """Destinations lo .. hi-1 (chunk c) on thread t's work rows into chunk c's buffers."""
    cdef id_t N = sw_ptr.shape[0] - 1, S = head.shape[0], i
    cdef int32_t[::1] dist = w_i[t, 0:N], hidx = w_i[t, N:2 * N], order = w_i[t, 2 * N:3 * N + 1]
    cdef int32_t[::1] unv = w_i[t, 3 * N + 1:4 * N + 1], lvl_o = w_i[t, 4 * N + 1:5 * N + 3]
    cdef int32_t[::1] lvl_r = w_i[t, 5 * N + 3:6 * N + 5]
    cdef int32_t[::1] rec = w_rec[t, 0:S]
    cdef real_t[::1] sigma = w_f[t, 0:N], den = w_f[t, N:2 * N], mass = w_f[t, 2 * N:3 * N]
    cdef real_t[::1] lh = w_f[t, 3 * N:3 * N + 2 * KH], A = w_A[t]
    cdef real_t[::1] load = o_load[c], grp_up = o_up[c], grp_down = o_down[c]
    cdef real_t unr = 0.0
    if mode == 0:
        den = sigma             # fluid: the split weights' sum at a switch is its sigma
    for i in range(lo, hi):
        _uniform_dest(dests[i], d_mult[i], mode, KU, KH, pp, sw_ptr, sw_adj, head, sw_list, sw_edges, tail, adj,
                      link_dst, link_gbps, up_ptr, up_link, ep_up1, ep_home1, g_rep, g_size, g_base, g_home1, dist,
                      hidx, order, unv, lvl_o, lvl_r, rec, sigma, den, mass, A, lh, load, grp_up, grp_down, &unr,
                      sym, ecc, comp, sw_base, c_base, c_other, by_ecc, last_lo, last_hi, l_lo)
    o_unr[c] = unr
    return 0


# route_uniform's work arrays and chunk buffers come from one kept buffer, reused from call to
# call (fresh pages fault on first touch: on repeated calls that cost as much as a tenth of the
# kernel's time); a call that finds it in use, or needs more than UNIFORM_KEEP bytes, gets fresh
# memory that is not kept
UNIFORM_KEEP = 1 << 26
_KEPT_LOCK = threading.Lock()
_KEPT = [np.zeros(0, np.uint8)]


def _carve(specs):
    """([arrays], held) for specs [(shape, dtype, fill value)]: views of the kept buffer if this
    call holds it (held: the caller releases _KEPT_LOCK when done with them), else of fresh
    memory; every array filled with its value, so nothing depends on an earlier call."""
    offs, total = [], 0
    for shape, dt, _ in specs:
        offs.append(total)
        total += (int(np.prod(shape)) * np.dtype(dt).itemsize + 63) // 64 * 64
    total += 64
    held = total <= UNIFORM_KEEP and _KEPT_LOCK.acquire(blocking=False)
    if held:
        if _KEPT[0].shape[0] < total:
            _KEPT[0] = np.empty(total, np.uint8)
        buf = _KEPT[0]
    else:
        buf = np.empty(total, np.uint8)
    base = (64 - buf.ctypes.data % 64) % 64          # 64-byte aligned views
    out = []
    for (shape, dt, fill), o in zip(specs, offs):
        a = np.ndarray(shape, dtype=dt, buffer=buf, offset=base + int(o))
        a.fill(fill)
        out.append(a)
    return out, held


def _pairs_once_tables(fabric, hm, gb, g_size, mult, id_t N, int KU, int threads, grp_up):
    """route_uniform's tables for the pairs-once path (hm: each group's home, gb: its g_base), and
    the uplinks' loads added to grp_up: (ecc, comp, by_ecc, last_lo, last_hi, sw_base, c_base,
    c_other) as _uniform_dest reads them."""
    homes = np.unique(hm)
    ecc, comp = uniform_pair_facts(fabric, homes, threads)
    # the homes by (eccentricity, id): a home's last-level candidates are those before it in
    # its eccentricity's run
    he = ecc[homes]
    o = np.lexsort((homes, he))
    by_ecc = homes[o].astype(np.int32)
    last_lo = np.zeros(N, np.int32)
    last_hi = np.zeros(N, np.int32)
    last_hi[homes[o]] = np.arange(o.shape[0], dtype=np.int32)
    last_lo[homes[o]] = np.searchsorted(he[o], he[o], side="left").astype(np.int32)
    sw_base = np.bincount(hm, weights=gb, minlength=N)
    gc = comp[hm]
    cb = np.bincount(gc, weights=gb)
    # the other components' sums as prefix + suffix (exactly 0 with one component)
    nc = cb.shape[0]
    pre = np.zeros(nc)
    pre[1:] = np.cumsum(cb)[:nc - 1]
    suf = np.zeros(nc)
    suf[:nc - 1] = np.flip(np.cumsum(np.flip(cb)))[1:]
    # the uplinks: group a sends g_base[a] x mult x (its component's endpoints - 1)
    cs = np.bincount(gc, weights=g_size)
    grp_up[np.arange(hm.shape[0]) * KU] += gb * mult * (cs[gc] - 1.0)
    return ecc, comp, by_ecc, last_lo, last_hi, sw_base, cb, pre + suf


def route_uniform(fabric, groups, loads, options):
    """Fluid-type loads of the uniform all-to-all towards the destination groups ``dests``.

    fabric: topo.routing.kstate.FabricArrays; groups: kstate.UniformGroups (g_rep, g_size per
    group; dests, d_mult per destination); loads: kstate.Loads (load per link, grp_up and
    grp_down per group and uplink, added to); options: kstate.UniformOptions (mode, KU, KH,
    threads, per_pair). Destination dests[i] receives from every group a the demand per_pair x
    |a| x (|dests[i]| - [a == dests[i]]) x d_mult[i], split as route_fluid splits a flow from
    source group a to a destination spread over dests[i] (equal to such flows routed by
    route_fluid, to rounding). Returns the unreachable mass.

    Sources are aggregated here: one BFS per destination (recording its shortest-path DAG),
    one injection per source group at its home switches, one push along the DAG: O(dests x
    (switch links + groups)), with no per-flow arrays.

    Each unordered pair once (uniform_pairs_once: fluid, every group single-homed, every group a
    destination once with one multiplier): a fluid flow splits over the shortest paths in
    proportion to their number, so a pair's flows one way are its flows the other way reversed,
    and the demand is the same both ways. Each pair is then routed by the BFS of one of its two
    home switches only (_pair_is_b) and its loads added to the reverse links as well; a BFS
    stops at its root's eccentricity (uniform_pair_facts, a bit-parallel BFS beforehand), and its
    last level, bottom-up, looks only at the switches whose pairs there are its own, about half
    of that level's work. The uplinks, the last hops and the unreachable mass count every pair
    (by component, in closed form). The loads equal the general path's to rounding.

    The destinations are cut into chunks (uniform_chunks: a function of their number and of
    the buffers' size only, never of ``threads``); each chunk adds into zeroed buffers of its
    own, added into the outputs in chunk order afterwards, so the loads are the same bits for
    any ``threads``. Chunks run on up to ``threads`` OpenMP threads, each with its own work
    arrays; with ``threads`` 1, on this thread without OpenMP.
    """
    cdef int mode = options.mode, KU = options.KU, KH = options.KH, threads = options.threads
    cdef real_t pp = options.per_pair
    cdef FabricView fb = _fabric_view(fabric)
    cdef const id_t[::1] g_rep = groups.g_rep, dests = groups.dests
    cdef const real_t[::1] g_size = groups.g_size, d_mult = groups.d_mult
    cdef real_t[::1] load = loads.load, grp_up = loads.grp_up, grp_down = loads.grp_down
    cdef id_t N = fb.sw_ptr.shape[0] - 1, S = fb.sw_adj.shape[0], Lk = fb.link_dst.shape[0]
    cdef id_t nd = dests.shape[0], nU = grp_up.shape[0], nD = grp_down.shape[0], c, l, T, i
    if N >= (1 << 31) - 1 or S >= (1 << 31) - 1 or Lk >= (1 << 31) - 1:
        raise ValueError("route_uniform: nodes, switch links and links must each be fewer than 2**31 - 1")
    cdef const int32_t[::1] head = np.asarray(fb.sw_head, np.int32)
    cdef const int32_t[::1] adj = np.asarray(fb.sw_adj, np.int32)
    deg = np.diff(np.asarray(fb.sw_ptr))
    cdef const int32_t[::1] tail = np.repeat(np.arange(N, dtype=np.int32), deg)
    cdef const int32_t[::1] sw_list = np.flatnonzero(deg > 0).astype(np.int32)
    cdef id_t sw_edges = S
    rep = np.asarray(g_rep)
    cdef const real_t[::1] g_base = pp * np.asarray(g_size)
    cdef const int32_t[::1] g_home1 = np.where(np.asarray(fb.ep_up1)[rep] >= 0, np.asarray(fb.ep_home1)[rep],
                                               -1).astype(np.int32)
    # each unordered pair once where the demand and the split are symmetric (see below)
    cdef int sym = uniform_pairs_once(mode, np.asarray(g_home1), np.asarray(dests), np.asarray(d_mult), Lk)
    if sym and not uniform_pairs_pay(fabric, np.asarray(g_home1)):
        sym = 0
    cdef const int32_t[::1] ecc, comp, by_ecc, last_lo, last_hi
    cdef const real_t[::1] sw_base, c_base, c_other
    if sym:
        ecc, comp, by_ecc, last_lo, last_hi, sw_base, c_base, c_other = _pairs_once_tables(
            fabric, np.asarray(g_home1), np.asarray(g_base), np.asarray(g_size), float(np.asarray(d_mult)[0]), N, KU,
            threads, np.asarray(grp_up))
    else:
        ecc = comp = by_ecc = last_lo = last_hi = np.zeros(1, np.int32)
        sw_base = c_base = c_other = np.zeros(1)
    cdef int64_t[::1] bounds = uniform_chunks(nd, Lk + nU + nD)
    cdef id_t NC = bounds.shape[0] - 1
    T = max(1, min(threads, NC))
    # the chunks' load buffers span the switch links' ids alone (l_lo .. l_lo + LW - 1, whole
    # pairs): the kernel loads no other link
    cdef id_t l_lo = (int(np.asarray(adj).min()) & ~1) if S else 0
    cdef id_t LW = ((int(np.asarray(adj).max()) | 1) + 1 - l_lo) if S else 0
    cdef real_t[:, ::1] o_load, o_up, o_down, w_f, w_A
    cdef real_t[::1] o_unr, one
    cdef int32_t[:, ::1] w_i, w_rec
    cdef real_t unr = 0.0
    arrays, held = _carve([((NC, LW), np.float64, 0.0), ((NC, nU), np.float64, 0.0), ((NC, nD), np.float64, 0.0),
                           ((NC,), np.float64, 0.0), ((T, 6 * N + 5), np.int32, -1), ((T, S + 1), np.int32, 0),
                           ((T, 3 * N + 2 * KH), np.float64, 0.0), ((T, N * KH if KH > 1 else 1), np.float64, 0.0),
                           ((LW if sym else 0,), np.float64, 0.0)])
    try:
        o_load, o_up, o_down, o_unr, w_i, w_rec, w_f, w_A, one = arrays
        if not sym:
            one = load[l_lo:l_lo + LW]
        if T == 1:
            with nogil:
                for c in range(NC):
                    _uniform_chunk(bounds[c], bounds[c + 1], 0, c, mode, KU, KH, pp, fb.sw_ptr, fb.sw_adj, head,
                                   sw_list, sw_edges, tail, adj, fb.link_dst, fb.link_gbps, fb.up_ptr, fb.up_link,
                                   fb.ep_up1, fb.ep_home1, g_rep, g_size, g_base, g_home1, dests, d_mult, w_i, w_rec, w_f,
                                   w_A, o_load, o_up, o_down, o_unr, sym, ecc, comp, sw_base, c_base, c_other, by_ecc,
                                   last_lo, last_hi, l_lo)
        else:
            for c in prange(NC, nogil=True, num_threads=T, schedule="dynamic", chunksize=1):
                _uniform_chunk(bounds[c], bounds[c + 1], threadid(), c, mode, KU, KH, pp, fb.sw_ptr, fb.sw_adj, head,
                               sw_list, sw_edges, tail, adj, fb.link_dst, fb.link_gbps, fb.up_ptr, fb.up_link,
                               fb.ep_up1, fb.ep_home1, g_rep, g_size, g_base, g_home1, dests, d_mult, w_i, w_rec, w_f,
                               w_A, o_load, o_up, o_down, o_unr, sym, ecc, comp, sw_base, c_base, c_other, by_ecc,
                               last_lo, last_hi, l_lo)
        # the chunks' buffers added in chunk order (each entry on its own: any thread count, same
        # sums); pairs once: each pair's flows one way, in the buffers, and the other way, on the
        # reverse links
        with nogil:
            for c in range(NC):
                for l in range(LW):
                    one[l] += o_load[c, l]
            if sym:
                for l in range(LW):
                    load[l_lo + l] += one[l] + one[l ^ 1]
            for c in range(NC):
                for l in range(nU):
                    grp_up[l] += o_up[c, l]
                for l in range(nD):
                    grp_down[l] += o_down[c, l]
                unr += o_unr[c]
    finally:
        if held:
            _KEPT_LOCK.release()
    return unr
