# cython: language_level=3
"""Capacity across cuts of a fabric.

cut_capacity(link_src, link_dst, link_gbps, alive, side, out)
    For every directed link alive whose endpoints are on different sides
    (side[src] != side[dst], sides >= 0), add its capacity to out[side[src]].
    O(links), no allocation. out must be zeroed by the caller.
"""
from _typedefs cimport id_t, real_t, uint8_t, int64_t, TOPO_BOUNDSCHECK

# whether this build checks every index (built with TOPO_BOUNDSCHECK=1, see setup.py)
BOUNDSCHECK = bool(TOPO_BOUNDSCHECK)


def cut_capacity(const id_t[::1] link_src, const id_t[::1] link_dst, const real_t[::1] link_gbps,
                 const uint8_t[::1] alive, const int64_t[::1] side, real_t[::1] out):
    cdef Py_ssize_t l, n = link_src.shape[0]
    cdef int64_t a, b
    with nogil:
        for l in range(n):
            if not alive[l]:
                continue
            a = side[link_src[l]]
            b = side[link_dst[l]]
            if a >= 0 and b >= 0 and a != b:
                out[a] += link_gbps[l]
