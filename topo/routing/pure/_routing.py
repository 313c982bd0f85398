"""Twin of ext/_routing.pyx (same signatures: the general and Clos kernels take the state objects of
topo.routing.kstate; numpy level-synchronous BFS)."""
import heapq

import numpy as np

M64 = (1 << 64) - 1


def _mix(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _qp_key(seed, fid, q):
    return _mix(_mix(seed & M64) ^ (fid & M64)) ^ ((q * 0x9E3779B97F4A7C15) & M64)


def _hop(key, node):
    return _mix(key ^ ((node * 0xD6E8FEB86659FD93) & M64))


def pick(h, c):
    return ((int(h) >> 32) * int(c)) >> 32


def hash_hop(seed, fid, q, node):
    return _hop(_qp_key(int(seed), int(fid), int(q)), int(node))


def _fabric(fabric):
    """The arrays of a kstate.FabricArrays the twins read (ep_up1/ep_home1 are the compiled
    kernels' shortcut, the twins derive the same from up_ptr)."""
    return (fabric.sw_ptr, fabric.sw_adj, fabric.sw_head, fabric.link_dst, fabric.link_gbps, fabric.up_ptr,
            fabric.up_link)


def bucket_flows(src, dst, rate, nbytes, inv_eff, ep_domain, ep_group, g_ptr, cursor,
                 f_idx, f_src, f_dst, f_mass, unreach, stats):
    ng = cursor.shape[0]
    src = np.asarray(src)
    dst = np.asarray(dst)
    neg = int(((np.asarray(rate) < 0) | (np.asarray(nbytes) < 0)).sum())
    real = src != dst
    mass = np.asarray(rate) * inv_eff
    offered = float(mass[real].sum())
    same = real & (ep_domain[src] >= 0) & (ep_domain[src] == ep_domain[dst])
    k = np.flatnonzero(real & ~same)
    gd = ep_group[dst[k]]
    bad = (gd < 0) | (ep_group[src[k]] < 0)
    unreach[k[bad]] += mass[k[bad]]
    unr = float(mass[k[bad]].sum())
    k, gd = k[~bad], gd[~bad]
    order = np.argsort(gd, kind="stable")
    k = k[order]
    g_ptr[1:] += np.cumsum(np.bincount(gd, minlength=ng))
    c = k.shape[0]
    f_idx[:c] = k
    f_src[:c] = src[k]
    f_dst[:c] = dst[k]
    f_mass[:c] = mass[k]
    pos = mass[k] > 0
    r = np.asarray(nbytes)[k][pos] / mass[k][pos]
    stats[0] = offered
    stats[1] = int(same.sum())
    stats[2] = r.min() if r.size else 1e308
    stats[3] = r.max() if r.size else -1e308
    stats[4] = int((~pos).sum())
    stats[5] = neg
    stats[6] = unr
    return c


class _Graph:
    """Entries of the CSR of alive switch links: row node, link id, its head."""

    def __init__(self, sw_ptr, sw_adj, sw_head):
        sw_ptr = np.asarray(sw_ptr)
        self.row = np.repeat(np.arange(sw_ptr.shape[0] - 1), np.diff(sw_ptr))
        self.lnk = np.asarray(sw_adj)
        self.head = np.asarray(sw_head)


def _bfs(G, t, mode, link_dst, link_gbps, up_ptr, up_link, n_nodes):
    """dist, sigma, den, hidx (dicts as arrays), levels list, n_homes."""
    dist = np.full(n_nodes, -1, np.int64)
    sigma = np.zeros(n_nodes)
    den = np.zeros(n_nodes)
    hidx = np.full(n_nodes, -1, np.int64)
    nh = 0
    for k in range(up_ptr[t], up_ptr[t + 1]):
        u = up_link[k]
        h = link_dst[u]
        if dist[h] < 0:
            dist[h] = 0
            hidx[h] = nh
            nh += 1
        sigma[h] += 1.0
        den[h] += link_gbps[u ^ 1] if mode == 1 else 1.0
    d = 0
    while True:
        # entries: row n at level d, reverse link (head -> n) alive, head s
        sel = dist[G.row] == d
        if not sel.any():
            break
        s = G.head[sel]
        new = s[dist[s] < 0]
        if new.size == 0:
            break
        dist[new] = d + 1
        ok = dist[s] == d + 1
        n = G.row[sel][ok]
        s = s[ok]
        r = G.lnk[sel][ok] ^ 1
        np.add.at(sigma, s, sigma[n])
        if mode == 0:
            np.add.at(den, s, sigma[n])
        elif mode == 1:
            np.add.at(den, s, link_gbps[r])
        else:
            np.add.at(den, s, 1.0)
        d += 1
    return dist, sigma, den, hidx, d, nh


def _next_entries(G, dist):
    """Entries (row s -> head n) of alive links with dist[n] == dist[s] - 1, dist[s] > 0."""
    ds = dist[G.row]
    dn = dist[G.head]
    return (ds > 0) & (dn == ds - 1) & (dn >= 0)


def _wts(mode, G, sel, sigma, link_gbps):
    if mode == 0:
        return sigma[G.head[sel]]
    if mode == 1:
        return link_gbps[G.lnk[sel]]
    return np.ones(int(sel.sum()))


def route_fluid(fabric, flows, work, loads, options):
    """Twin of route_fluid: one group after another (``threads`` is accepted and unused; the
    compiled kernel's blocks only change the order of additions, not the loads beyond rounding).
    The arguments are topo.routing.kstate objects, as for the compiled kernel."""
    mode, KU = options.mode, options.KU
    sw_ptr, sw_adj, sw_head, link_dst, link_gbps, up_ptr, up_link = _fabric(fabric)
    g_ptr, g_rep, g_id, f_src, f_dst, f_sg, f_mass, f_mass2 = (
        flows.g_ptr, flows.g_rep, flows.g_id, flows.f_src, flows.f_dst, flows.f_sg, flows.f_mass, flows.f_mass2)
    dist_w = work.dist
    load, grp_up, grp_down, unreach, load2 = loads.load, loads.grp_up, loads.grp_down, loads.unreach, loads.load2
    n_nodes = dist_w.shape[0]
    two = f_mass2.shape[0] > 0
    link_dst = np.asarray(link_dst)
    link_gbps = np.asarray(link_gbps)
    G = _Graph(sw_ptr, sw_adj, sw_head)
    for g in range(len(g_ptr) - 1):
        lo, hi = g_ptr[g], g_ptr[g + 1]
        if lo == hi:
            continue
        dist, sigma, den, hidx, maxd, nh = _bfs(G, g_rep[g], mode, link_dst, link_gbps, up_ptr, up_link, n_nodes)
        if nh == 0:
            unreach[lo:hi] += f_mass[lo:hi]
            continue
        nxt = _next_entries(G, dist)
        w_all = np.zeros(G.row.shape[0])
        w_all[nxt] = _wts(mode, G, nxt, sigma, link_gbps) / den[G.row[nxt]]
        A = None
        if nh > 1:
            A = np.zeros((n_nodes, nh))
            homes = np.flatnonzero(dist == 0)
            A[homes, hidx[homes]] = 1.0
            for d in range(1, maxd + 1):
                sel = nxt & (dist[G.row] == d)
                np.add.at(A, G.row[sel], w_all[sel][:, None] * A[G.head[sel]])
        mass = np.zeros(n_nodes)
        mass2 = np.zeros(n_nodes)
        for f in range(lo, hi):
            e = f_src[f]
            m = f_mass[f]
            rr = (f_mass2[f] / m if m > 0.0 else 0.0) if two else 0.0
            ks = list(range(up_ptr[e], up_ptr[e + 1]))
            ds = [dist[link_dst[up_link[k]]] for k in ks]
            ok = [d for d in ds if d >= 0]
            if not ok:
                unreach[f] += m
                continue
            if m == 0.0:
                continue
            best = min(ok)
            sel = [k for k, d in zip(ks, ds) if d == best]
            if mode == 0:
                wt = [sigma[link_dst[up_link[k]]] for k in sel]
            elif mode == 1:
                wt = [link_gbps[up_link[k]] for k in sel]
            else:
                wt = [1.0] * len(sel)
            tot = sum(wt)
            lh = np.zeros(max(nh, 1))
            for k, w in zip(sel, wt):
                u = up_link[k]
                h = link_dst[u]
                share = m * w / tot
                if f_sg[f] >= 0:
                    grp_up[f_sg[f] * KU + (k - up_ptr[e])] += share
                else:
                    load[u] += share
                mass[h] += share
                if two:
                    load2[u] += share * rr
                    mass2[h] += share * rr
                if nh == 1:
                    lh[0] += share
                else:
                    lh += share * A[h]
            td = f_dst[f] if f_dst[f] >= 0 else g_rep[g]
            if (hidx[link_dst[up_link[up_ptr[td]:up_ptr[td + 1]]]] < 0).any():
                raise ValueError(f"route_fluid: endpoint {td} has a home switch that is not one of its group's "
                                 f"(representative {g_rep[g]}): flows are not grouped by destination")
            capd = np.zeros(max(nh, 1))
            for k in range(up_ptr[td], up_ptr[td + 1]):
                capd[hidx[link_dst[up_link[k]]]] += link_gbps[up_link[k] ^ 1]
            for k in range(up_ptr[td], up_ptr[td + 1]):
                u = up_link[k]
                h = link_dst[u]
                if mode == 1:
                    x = lh[hidx[h]] * link_gbps[u ^ 1] / capd[hidx[h]]
                else:
                    x = lh[hidx[h]] / den[h]
                if f_dst[f] < 0:
                    grp_down[g_id[g] * KU + (k - up_ptr[td])] += x
                else:
                    load[u ^ 1] += x
                    if two:
                        load2[u ^ 1] += x * rr
        for d in range(maxd, 0, -1):
            sel = nxt & (dist[G.row] == d)
            x = mass[G.row[sel]] * w_all[sel]
            np.add.at(load, G.lnk[sel], x)
            np.add.at(mass, G.head[sel], x)
            if two:
                x2 = mass2[G.row[sel]] * w_all[sel]
                np.add.at(load2, G.lnk[sel], x2)
                np.add.at(mass2, G.head[sel], x2)


def route_hash(fabric, flows, work, loads, options):
    """Twin of route_hash (topo.routing.kstate objects, as for the compiled kernel)."""
    seed, qps, H = options.seed, options.qps, options.H
    sw_ptr, sw_adj, sw_head, link_dst, link_gbps, up_ptr, up_link = _fabric(fabric)
    g_ptr, g_rep, f_src, f_dst, f_id, f_mass, f_mass2 = (
        flows.g_ptr, flows.g_rep, flows.f_src, flows.f_dst, flows.f_id, flows.f_mass, flows.f_mass2)
    dist_w = work.dist
    load, unreach, path, load2 = loads.load, loads.unreach, loads.path, loads.load2
    n_nodes = dist_w.shape[0]
    two = f_mass2.shape[0] > 0
    link_dst = np.asarray(link_dst)
    link_gbps = np.asarray(link_gbps)
    G = _Graph(sw_ptr, sw_adj, sw_head)
    rec = path.shape[0] > 0
    longest = 0
    seed = int(seed)
    for g in range(len(g_ptr) - 1):
        lo, hi = g_ptr[g], g_ptr[g + 1]
        if lo == hi:
            continue
        dist, _, _, _, _, nh = _bfs(G, g_rep[g], 2, link_dst, link_gbps, up_ptr, up_link, n_nodes)
        nxt = _next_entries(G, dist)
        rows = G.row[nxt]
        lnks = G.lnk[nxt]
        # next-hop lists in CSR order (entries are already grouped by row in sw_adj order)
        start = np.searchsorted(rows, np.arange(n_nodes))
        cnt = np.searchsorted(rows, np.arange(n_nodes), side="right") - start
        for f in range(lo, hi):
            e = int(f_src[f])
            td = int(f_dst[f])
            ks = [k for k in range(up_ptr[e], up_ptr[e + 1]) if dist[link_dst[up_link[k]]] >= 0]
            if not ks:
                unreach[f] += f_mass[f]
                continue
            best = min(dist[link_dst[up_link[k]]] for k in ks)
            cand = [up_link[k] for k in ks if dist[link_dst[up_link[k]]] == best]
            mq = f_mass[f] / qps
            mq2 = f_mass2[f] / qps if two else 0.0
            for q in range(qps):
                key = _qp_key(seed, int(f_id[f]), q)
                base = (f * qps + q) * H
                hop = 0
                u = int(cand[pick(_hop(key, e), len(cand)) if len(cand) > 1 else 0])
                load[u] += mq
                if two:
                    load2[u] += mq2
                if rec and hop < H:
                    path[base + hop] = u
                hop += 1
                s = int(link_dst[u])
                while dist[s] > 0:
                    r = int(lnks[start[s] + (pick(_hop(key, s), int(cnt[s])) if cnt[s] > 1 else 0)])
                    load[r] += mq
                    if two:
                        load2[r] += mq2
                    if rec and hop < H:
                        path[base + hop] = r
                    hop += 1
                    s = int(link_dst[r])
                down = [int(up_link[k]) for k in range(up_ptr[td], up_ptr[td + 1]) if link_dst[up_link[k]] == s]
                if not down:
                    raise ValueError(f"route_hash: endpoint {td} has no link from switch {s}, a home of its group "
                                     f"(representative {g_rep[g]}): flows are not grouped by destination")
                u = down[pick(_hop(key, s), len(down)) if len(down) > 1 else 0]
                load[u ^ 1] += mq
                if two:
                    load2[u ^ 1] += mq2
                if rec and hop < H:
                    path[base + hop] = u ^ 1
                hop += 1
                longest = max(longest, hop)
    return longest


def bucket_links(flat, H, cursor, lk_qp):
    flat = np.asarray(flat)
    idx = np.flatnonzero(flat >= 0)
    order = idx[np.argsort(flat[idx], kind="stable")]
    lk_qp[: order.size] = order // H
    np.add.at(cursor, flat[idx], 1)


def waterfill(H, path, weight, cap, lk_ptr, lk_qp, rem, wsum, n_act, ver, frozen, hk, hl, hv, rate):
    L = cap.shape[0]
    nq = rate.shape[0]
    P = np.asarray(path).reshape(nq, H) if nq else np.zeros((0, H), np.int64)
    rem[:] = cap
    n_act[:] = np.diff(lk_ptr)
    ver[:] = 0
    frozen[:] = 0
    rate[:] = 0.0
    wsum[:] = 0.0
    for l in range(L):
        for i in range(lk_ptr[l], lk_ptr[l + 1]):
            wsum[l] += weight[lk_qp[i]]
    heap = [(rem[l] / wsum[l], l, 0) for l in range(L) if n_act[l] > 0 and wsum[l] > 0.0]
    if len(heap) > hk.shape[0]:
        raise IndexError(f"waterfill: the heap arrays hold {hk.shape[0]} entries and a push needs one more")
    heapq.heapify(heap)
    levels = 0

    def row(p):
        neg = np.flatnonzero(P[p] < 0)
        return P[p][: neg[0]] if neg.size else P[p]

    while heap:
        key, l, v = heapq.heappop(heap)
        if v != ver[l] or n_act[l] == 0:
            continue
        x = max(key, 0.0)
        levels += 1
        qs = lk_qp[lk_ptr[l]:lk_ptr[l + 1]]
        new = []
        for p in qs:
            if frozen[p]:
                continue
            frozen[p] = 1
            new.append(p)
            rate[p] = x * weight[p]
            for l2 in row(p):
                rem[l2] -= x * weight[p]
                wsum[l2] -= weight[p]
                n_act[l2] -= 1
                ver[l2] += 1
        # only the links of the paths frozen just now changed (the kernel's heap bound)
        for p in new:
            for l2 in row(p):
                if n_act[l2] > 0 and l2 != l and wsum[l2] > 0.0:
                    if len(heap) >= hk.shape[0]:
                        raise IndexError(f"waterfill: the heap arrays hold {hk.shape[0]} entries and a push needs one more")
                    heapq.heappush(heap, (max(rem[l2], 0.0) / wsum[l2], int(l2), int(ver[l2])))
    return levels



# --- per-QP max-min completion times with incremental refill (twin of maxmin_times) ----------------
MAXMIN_INFO = 8


class _MaxMinWork:
    """maxmin_times's state (see ext/_routing.pyx), the same arrays; the heap is a list."""

    def __init__(self, H, path, mult, bps, n, L):
        nH = n * H
        self.H, self.path, self.mult, self.bps = H, path, mult, bps
        self.lk_ptr = np.zeros(L + 1, np.int64)
        self.lk_qp = np.zeros(nH, np.int64)
        self.n_act = np.zeros(L, np.int64)
        self.ver = np.zeros(L, np.int64)
        self.comp = np.zeros(n, np.int64)
        self.c_ptr = np.zeros(L + 1, np.int64)
        self.e_ptr = np.zeros(L + 1, np.int64)
        self.cl_ptr = np.zeros(L + 1, np.int64)
        self.c_links = np.zeros(L, np.int64)
        self.frz_ev = np.zeros(n, np.int64)
        self.ev_n = np.zeros(L, np.int64)
        self.fr_n = np.zeros(L, np.int64)
        self.ud_n = np.zeros(L, np.int64)
        self.ev_fr = np.zeros(n, np.int64)
        self.fr_row = np.zeros(n, np.int64)
        self.rem_l = np.zeros(L)
        self.wsum = np.zeros(L)
        self.rate = np.zeros(n)
        self.ud_rem = np.zeros(nH)
        self.st = np.zeros(n, np.uint8)
        self.thaw_lo = np.zeros(L, np.int64)
        self.thaw_hi = np.zeros(L, np.int64)
        self.seen = np.zeros(L, np.int64)
        self.heap_cap = L + nH + 1
        self.events = 0
        self.undone = 0
        self.stamp = 0

    def links(self, p):
        """The links of row p (up to its first -1)."""
        H, path = self.H, self.path
        out = []
        for j in range(H):
            l = int(path[p * H + j])
            if l < 0:
                break
            out.append(l)
        return out


def _uf_find(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = int(parent[a])
    return a


def _mm_setup(w, qbytes, cap, parent, lcomp):
    n, L = qbytes.shape[0], cap.shape[0]
    C = 0
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
        for l in w.links(p):
            w.lk_ptr[l + 1] += 1
            a = _uf_find(parent, int(w.path[p * w.H]))
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
        parent[l] = w.lk_ptr[l]
        if lcomp[l] >= 0:
            w.cl_ptr[lcomp[l] + 1] += 1
    for p in range(n):
        if w.st[p] != 0 or w.path[p * w.H] < 0:
            continue
        c = int(lcomp[w.path[p * w.H]])
        w.comp[p] = c
        w.c_ptr[c + 1] += 1
        for l in w.links(p):
            w.e_ptr[c + 1] += 1
            w.lk_qp[parent[l]] = p
            parent[l] += 1
            w.wsum[l] += float(w.mult[p])
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


def _mm_push(w, heap, key, l, v):
    if len(heap) >= w.heap_cap:
        raise IndexError(f"waterfill: the heap arrays hold {w.heap_cap} entries and a push needs one more")
    heapq.heappush(heap, (key, l, v))


def _mm_key(w, l, heap):
    if w.n_act[l] > 0 and w.wsum[l] > 0.0:
        if w.ver[l] == 0:
            key = float(w.rem_l[l]) / float(w.wsum[l])
        else:
            key = (float(w.rem_l[l]) if w.rem_l[l] > 0.0 else 0.0) / float(w.wsum[l])
        _mm_push(w, heap, key, l, int(w.ver[l]))
    return 0


def _mm_fill(w, c):
    """Long because it mirrors the compiled _mm_fill statement by statement (progressive filling of
    one component from its state, each event logged), so the two can be read side by side."""
    heap = []
    base, ubase = int(w.c_ptr[c]), int(w.e_ptr[c])
    if w.thaw_lo[c] < 0:
        for k in range(w.cl_ptr[c], w.cl_ptr[c + 1]):
            _mm_key(w, int(w.c_links[k]), heap)
    else:
        w.stamp += 1
        for i in range(w.thaw_lo[c], w.thaw_hi[c]):
            p = int(w.fr_row[i])
            if w.st[p] != 0:
                continue
            for l in w.links(p):
                if w.seen[l] != w.stamp:
                    w.seen[l] = w.stamp
                    _mm_key(w, l, heap)
    while heap:
        key, l, j = heapq.heappop(heap)
        if j != w.ver[l] or w.n_act[l] == 0:
            continue
        x = key
        if x < 0.0:
            x = 0.0
        e = base + int(w.ev_n[c])
        w.ev_n[c] += 1
        w.ev_fr[e] = base + w.fr_n[c]
        w.events += 1
        for i in range(w.lk_ptr[l], w.lk_ptr[l + 1]):
            p = int(w.lk_qp[i])
            if w.st[p] != 0:
                continue
            w.st[p] = 2
            m = float(w.mult[p])
            w.rate[p] = x * m / m * w.bps
            w.frz_ev[p] = e
            w.fr_row[base + w.fr_n[c]] = p
            w.fr_n[c] += 1
            for l2 in w.links(p):
                w.ud_rem[ubase + w.ud_n[c]] = w.rem_l[l2]
                w.ud_n[c] += 1
                w.rem_l[l2] = float(w.rem_l[l2]) - x * m
                w.wsum[l2] = float(w.wsum[l2]) - m
                w.n_act[l2] -= 1
                w.ver[l2] += 1
        for i in range(w.lk_ptr[l], w.lk_ptr[l + 1]):
            p = int(w.lk_qp[i])
            if w.st[p] != 2:
                continue
            w.st[p] = 1
            for l2 in w.links(p):
                if w.n_act[l2] > 0 and l2 != l and w.wsum[l2] > 0.0:
                    _mm_push(w, heap, (float(w.rem_l[l2]) if w.rem_l[l2] > 0.0 else 0.0) / float(w.wsum[l2]), l2,
                             int(w.ver[l2]))
    return 0


def _mm_undo(w, c, cut):
    base, ubase, start = int(w.c_ptr[c]), int(w.e_ptr[c]), int(w.ev_fr[cut])
    w.undone += base + int(w.ev_n[c]) - cut
    w.thaw_lo[c] = start
    w.thaw_hi[c] = base + w.fr_n[c]
    for i in range(base + int(w.fr_n[c]) - 1, start - 1, -1):
        p = int(w.fr_row[i])
        m = float(w.mult[p])
        for l2 in reversed(w.links(p)):
            w.ud_n[c] -= 1
            w.rem_l[l2] = w.ud_rem[ubase + w.ud_n[c]]
            w.wsum[l2] = float(w.wsum[l2]) + m
            w.n_act[l2] += 1
            w.ver[l2] -= 1
        w.st[p] = 0
        w.frz_ev[p] = -1
    w.fr_n[c] = start - base
    w.ev_n[c] = cut - base
    return 0


def _mm_remove(w, p):
    m = float(w.mult[p])
    w.st[p] = 3
    for l2 in w.links(p):
        w.wsum[l2] = float(w.wsum[l2]) - m
        w.n_act[l2] -= 1
    return 0


def _mm_rounds(w, C, rounds, max_work, act, ended, slist, cut, stale, dta, done, rem, info):
    """Long because it mirrors the compiled _mm_rounds statement by statement (the refill rounds of
    engine._maxmin_times_loop), so the two can be read side by side."""
    n = rem.shape[0]
    na = 0
    work = 0
    status = 0
    nr = 0
    now = 0.0
    dt = 0.0
    slack = 1 + 1e-12
    for p in range(n):
        done[p] = 0.0
        if w.st[p] == 0:
            act[na] = p
            na += 1
    for c in range(C):
        slist[c] = c
        stale[c] = 1
    ns = C
    for k in range(rounds):
        if na == 0:
            break
        nr += 1
        for i in range(na):
            work += int(w.mult[act[i]])
        if k == rounds - 1 or work > max_work:
            status = 1
            break
        for i in range(ns):
            _mm_fill(w, int(slist[i]))
            stale[slist[i]] = 0
        ns = 0
        have = False
        for i in range(na):
            p = int(act[i])
            g = float(w.rate[p])
            if g <= 0.0:
                continue
            dti = float(rem[p]) / g
            dta[i] = dti
            if not have or dti < dt:
                dt = dti
            have = True
        thr = dt * slack
        nn = 0
        ne = 0
        for i in range(na):
            p = int(act[i])
            g = float(w.rate[p])
            if g <= 0.0:
                done[p] = np.inf
                ended[ne] = p
                ne += 1
                continue
            dti = float(dta[i])
            if dti <= thr:
                done[p] = now + dti
                rem[p] = 0.0
                ended[ne] = p
                ne += 1
            else:
                rem[p] = float(rem[p]) - g * dt
                act[nn] = p
                nn += 1
        if have:
            now += dt
        na = nn
        for i in range(ne):
            c = int(w.comp[ended[i]])
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
            _mm_undo(w, int(slist[i]), int(cut[slist[i]]))
        for i in range(ne):
            _mm_remove(w, int(ended[i]))
        if not have:
            break
    info[0] = now
    info[1] = status
    info[2] = nr
    info[3] = w.events
    info[4] = w.undone
    info[5] = work
    info[6] = na
    info[7] = C
    return na


def maxmin_times(H, path, mult, qbytes, cap, bps, rounds, max_work, done, rem, active, info):
    n, L = qbytes.shape[0], cap.shape[0]
    w = _MaxMinWork(H, path, mult, float(bps), n, L)
    parent, lcomp = np.zeros(L, np.int64), np.zeros(L, np.int64)
    act, ended = np.zeros(n, np.int64), np.zeros(n, np.int64)
    slist, cut = np.zeros(L, np.int64), np.zeros(L, np.int64)
    stale = np.zeros(L, np.uint8)
    dta = np.zeros(n)
    for p in range(n):
        rem[p] = qbytes[p]
    C = _mm_setup(w, qbytes, cap, parent, lcomp)
    na = _mm_rounds(w, C, int(rounds), int(max_work), act, ended, slist, cut, stale, dta, done, rem, info)
    for p in range(n):
        active[p] = 0
    for p in range(na):
        active[act[p]] = 1
    return na

def route_clos(tables, demands, work, options):
    """Twin of route_clos (topo.routing.kstate objects, as for the compiled kernel).

    Long because it mirrors the compiled kernel's Clos loop statement by statement, so the two can be
    read and compared side by side; split differently, the twin would stop being a twin."""
    spray, NL, K, seed, qps, H = options[:6]  # threads: the compiled kernel's chunks (same loads to rounding)
    src, dst, rate, nbytes, inv_eff = (getattr(demands, n) for n in demands.__slots__)
    ept, pod_b1, up_ptr, uph, sd_base, sd_lnk, xd_base, xd_start, xd_cnt, xd_lnk, xd_head, link_dst = (
        getattr(tables, n) for n in ("ept", "pod_b1", "up_ptr", "uph", "sd_base", "sd_lnk", "xd_base", "xd_start",
                                     "xd_cnt", "xd_lnk", "xd_head", "link_dst"))
    alive, lclean, LP, pair_ptr, pair_cnt, pool, pmass, lw, epw, aggw, unreach, f_idx, path, defer, stats, counts = (
        getattr(work, n) for n in work.__slots__)
    load, load2 = lw[0::2], lw[1::2]  # views: writes land in lw
    pm, pm2 = pmass[0::2], pmass[1::2]
    agg, agg2 = aggw[0::2], aggw[1::2]
    keep = f_idx.shape[0] > 0
    rec = path.shape[0] > 0
    fm = alive.shape[0] > 0
    T = np.asarray(ept).reshape(-1, 8)
    seed = int(seed)
    up_lnk, up_head = np.asarray(uph)[0::3], np.asarray(uph)[1::3]
    nb = same = nonpos = neg = nd = 0
    used = int(counts[1])
    offered = unr = 0.0
    two = False
    r0 = -1.0
    for i in range(len(src)):
        if rate[i] < 0 or nbytes[i] < 0:
            neg += 1
        a, b = int(src[i]), int(dst[i])
        if a == b:
            continue
        m = float(rate[i]) * inv_eff
        offered += m
        ea, eb = T[a * K], T[b * K]
        if ea[0] >= 0 and ea[0] == eb[0]:
            same += 1
            continue
        w2 = float(nbytes[i]) * 8e-9
        if m <= 0:
            nonpos += 1
        eu, ed = int(ea[2]), int(eb[2]) ^ 1
        if ea[3] != eb[3] or (fm and not (alive[eu] and alive[ed])):
            unreach[i] += m
            unr += m
            continue
        A, D = int(ea[1]), int(eb[1])
        P, Q = ea[4], eb[4]
        b1 = int(pod_b1[Q])
        down = lambda s: [int(sd_lnk[sd_base[s] + eb[5] * b1 + t]) for t in range(b1)]
        masked = False
        if fm and A != D:
            if P != Q:
                defer[nd] = i
                nd += 1
                continue
            if not (lclean[A] and lclean[D]):
                masked = True
                pair = int(ea[6]) * LP + int(eb[5])
                if pair_ptr[pair] < 0:
                    cand = [int(up_lnk[k]) for k in range(up_ptr[A], up_ptr[A + 1])
                            if alive[up_lnk[k]] and any(alive[x] for x in down(int(up_head[k])))]
                    if used + up_ptr[A + 1] - up_ptr[A] > pool.shape[0]:
                        defer[nd] = i
                        nd += 1
                        continue
                    pair_ptr[pair] = used
                    pair_cnt[pair] = len(cand)
                    pool[used:used + len(cand)] = cand
                    used += len(cand)
                if pair_cnt[pair] == 0:
                    defer[nd] = i
                    nd += 1
                    continue
                cand = [int(x) for x in pool[pair_ptr[pair]:pair_ptr[pair] + pair_cnt[pair]]]
        if keep:
            f_idx[nb] = i
        nb += 1
        if not two:
            if m > 0:
                if r0 < 0:
                    r0 = w2 / m
                elif abs(w2 - r0 * m) > 1e-12 * r0 * m:
                    two = True
            elif w2 > 0:
                two = True
            if two:
                r0 = max(r0, 0.0)
                load2[:] = load * r0
                epw[1::2] = epw[0::2] * r0
                agg2[:] = agg * r0
                pm2[:] = pm * r0
        if K == 1:
            epw[4 * a] += m
            epw[4 * b + 2] += m
            if two:
                epw[4 * a + 1] += w2
                epw[4 * b + 3] += w2
        elif spray:
            for t in range(K):
                ra, rb = a * K + t, b * K + t
                ea, eb = T[ra], T[rb]
                epw[4 * ra] += m / K
                epw[4 * rb + 2] += m / K
                if two:
                    epw[4 * ra + 1] += w2 / K
                    epw[4 * rb + 3] += w2 / K
                if ea[1] != eb[1]:
                    k = ea[6]
                    j = NL + eb[6] if ea[4] == eb[4] else (2 + ea[7]) * NL + eb[6]
                    agg[k] += m / K
                    agg[j] += m / K
                    if two:
                        agg2[k] += w2 / K
                        agg2[j] += w2 / K
            continue
        if spray:
            if masked:
                pm[pair] += m
                if two:
                    pm2[pair] += w2
            elif A != D:
                k = ea[6]
                j = NL + eb[6] if P == Q else (2 + ea[7]) * NL + eb[6]
                agg[k] += m
                agg[j] += m
                if two:
                    agg2[k] += w2
                    agg2[j] += w2
            continue
        mq = m / qps
        mq2 = w2 / qps
        for q in range(qps):
            links = []
            key = _qp_key(seed, i, q)
            if K > 1:
                t = pick(_hop(key, a), K)
                ea, eb = T[a * K + t], T[b * K + t]
                A, D, P, Q = int(ea[1]), int(eb[1]), ea[4], eb[4]
                b1 = int(pod_b1[Q])
                eu, ed = int(ea[2]), int(eb[2]) ^ 1
                epw[4 * (a * K + t)] += mq
                epw[4 * (b * K + t) + 2] += mq
                if two:
                    epw[4 * (a * K + t) + 1] += mq2
                    epw[4 * (b * K + t) + 3] += mq2
            if A != D:
                if masked:
                    r = cand[pick(_hop(key, A), len(cand)) if len(cand) > 1 else 0]
                    s = int(link_dst[r])
                    links.append(r)
                else:
                    c = up_ptr[A + 1] - up_ptr[A]
                    j = up_ptr[A] + (pick(_hop(key, A), c) if c > 1 else 0)
                    links.append(int(up_lnk[j]))
                    s = int(up_head[j])
                if P != Q:
                    c = up_ptr[s + 1] - up_ptr[s]
                    j = up_ptr[s] + (pick(_hop(key, s), c) if c > 1 else 0)
                    links.append(int(up_lnk[j]))
                    X = int(up_head[j])
                    k = xd_base[X] + eb[7]
                    c = xd_cnt[k]
                    j = xd_start[k] + (pick(_hop(key, X), c) if c > 1 else 0)
                    links.append(int(xd_lnk[j]))
                    s = int(xd_head[j])
                dl = [x for x in down(s) if alive[x]] if masked else down(s)
                links.append(dl[pick(_hop(key, s), len(dl)) if len(dl) > 1 else 0])
            for r in links:
                load[r] += mq
                if two:
                    load2[r] += mq2
            full = [eu] + links + [ed]
            if rec:
                base = ((nb - 1) * qps + q) * H
                for h, r in enumerate(full[:H]):
                    path[base + h] = r
    stats[:5] = [offered, same, nonpos, neg, unr]
    counts[0] = nd
    counts[1] = used
    return nb, two, (r0 if r0 >= 0 else 0.0)


def spray_cross(tables, cross, work):
    """Twin of spray_cross (topo.routing.kstate objects, as for the compiled kernel)."""
    g_ptr, g_dst, f_leaf, f_m, f_m2 = (getattr(cross, n) for n in cross.__slots__)
    pod, rank, pod_b1, pod_slot, up_ptr, up_lnk, up_head, sd_base, sd_lnk, xd_base, xd_start, xd_cnt, xd_lnk, xd_head = (
        getattr(tables, n) for n in ("pod", "rank", "pod_b1", "pod_slot", "up_ptr", "up_lnk", "up_head", "sd_base",
                                     "sd_lnk", "xd_base", "xd_start", "xd_cnt", "xd_lnk", "xd_head"))
    alive, rstamp, rval, tstamp, mass, mass2, touched, load, load2, f_ok = (getattr(work, n) for n in work.__slots__)
    for g in range(len(g_ptr) - 1):
        D = int(g_dst[g])
        Q = pod[D]
        q = int(pod_slot[Q])
        b1 = int(pod_b1[Q])
        rk = int(rank[D]) * b1
        down_d = lambda s: [int(sd_lnk[sd_base[s] + rk + t]) for t in range(b1)]
        to_q = lambda X: [(int(xd_lnk[t]), int(xd_head[t])) for t in
                          range(xd_start[xd_base[X] + q], xd_start[xd_base[X] + q] + xd_cnt[xd_base[X] + q])]
        ups = lambda u: [(int(up_lnk[k]), int(up_head[k])) for k in range(up_ptr[u], up_ptr[u + 1])]
        memo = {}

        def reach(u, v):
            if (u, v) not in memo:
                if v == 1:
                    memo[u, v] = any(alive[x] for x in down_d(u))
                elif v == 2:
                    memo[u, v] = any(alive[r] and reach(s, 1) for r, s in to_q(u))
                else:
                    memo[u, v] = any(alive[r] and reach(x, 2) for r, x in ups(u))
            return memo[u, v]

        m1, m2 = {}, {}
        for f in range(g_ptr[g], g_ptr[g + 1]):
            A = int(f_leaf[f])
            m1[A] = m1.get(A, 0.0) + f_m[f]
            m2[A] = m2.get(A, 0.0) + f_m2[f]
        level = list(m1)
        for v in range(3):
            nxt1, nxt2 = {}, {}
            for u in level:
                hops = [(r, s) for r, s in ups(u) if alive[r] and reach(s, 3 - v)] if v < 2 else \
                       [(r, s) for r, s in to_q(u) if alive[r]]
                if not hops:
                    continue
                for r, s in hops:
                    load[r] += m1[u] / len(hops)
                    load2[r] += m2[u] / len(hops)
                    nxt1[s] = nxt1.get(s, 0.0) + m1[u] / len(hops)
                    nxt2[s] = nxt2.get(s, 0.0) + m2[u] / len(hops)
            level, m1, m2 = list(nxt1), nxt1, nxt2
        for u in level:
            live = [x for x in down_d(u) if alive[x]]
            for r in live:
                load[r] += m1[u] / len(live)
                load2[r] += m2[u] / len(live)
        for f in range(g_ptr[g], g_ptr[g + 1]):
            A = int(f_leaf[f])
            f_ok[f] = any(alive[r] and reach(s, 3) for r, s in ups(A))


def uniform_chunks(n_dests, per_chunk):
    """Twin of uniform_chunks (the compiled kernel's constants)."""
    nc = min(UNIFORM_CHUNKS, max(1, n_dests // UNIFORM_DESTS_PER_CHUNK), max(1, UNIFORM_BUFFER // max(per_chunk, 1)))
    return (np.arange(nc + 1, dtype=np.int64) * max(n_dests, 0)) // nc


UNIFORM_CHUNKS = 16
UNIFORM_DESTS_PER_CHUNK = 4
UNIFORM_BUFFER = 1 << 24


def route_uniform(fabric, groups, loads, options):
    """Twin of route_uniform: the uniform demand expanded into one flow per (source group,
    destination group), spread at both ends, and routed by the twin of route_fluid (the way
    the engine routed it before the compiled kernel aggregated the sources); returns the
    unreachable mass. ``threads`` is accepted and unused."""
    from topo.routing import kstate as ks
    g_rep = np.asarray(groups.g_rep, np.int64)
    g_size = np.asarray(groups.g_size, np.float64)
    dests = np.asarray(groups.dests, np.int64)
    mult = np.asarray(groups.d_mult, np.float64)
    ng = g_rep.shape[0]
    a = np.tile(np.arange(ng, dtype=np.int64), dests.shape[0])
    b = np.repeat(dests, ng)
    m = options.per_pair * g_size[a] * (g_size[b] - (a == b)) * np.repeat(mult, ng)
    sel = m > 0
    a, b, m = a[sel], b[sel], m[sel]
    o = np.argsort(b, kind="stable")
    a, b, m = a[o], b[o], m[o]
    g_ptr = np.zeros(ng + 1, np.int64)
    np.cumsum(np.bincount(b, minlength=ng), out=g_ptr[1:])
    un = np.zeros(a.shape[0])
    n = fabric.sw_ptr.shape[0] - 1
    route_fluid(fabric,
                ks.GroupedFlows(g_ptr=g_ptr, g_rep=g_rep, g_id=np.arange(ng, dtype=np.int64), f_src=g_rep[a],
                                f_dst=np.full(a.shape[0], -1, np.int64), f_sg=a, f_mass=m),
                ks.Work(dist=np.full(n, -1, np.int64)),
                ks.Loads(load=loads.load, grp_up=loads.grp_up, grp_down=loads.grp_down, unreach=un),
                ks.FluidOptions(options.mode, options.KU, options.KH, 1))
    return float(un.sum())
