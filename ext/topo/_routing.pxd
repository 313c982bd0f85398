# Typed views of the kernels' state (topo/routing/kstate.py holds the arrays; each kernel entry
# point fills these views from those objects once, and its loops index the views' memoryviews).
cimport cython
from _typedefs cimport id_t, real_t, uint8_t, int32_t, int64_t


@cython.final
cdef class FabricView:
    """kstate.FabricArrays: the alive switch CSR, links, endpoints' uplinks."""
    cdef const id_t[::1] sw_ptr, sw_adj, sw_head, link_dst, up_ptr, up_link, ep_up1, ep_home1
    cdef const real_t[::1] link_gbps


@cython.final
cdef class FlowsView:
    """kstate.GroupedFlows: flows sorted by destination group."""
    cdef const id_t[::1] g_ptr, g_rep, g_id, f_src, f_dst, f_sg, f_id
    cdef const real_t[::1] f_mass, f_mass2


@cython.final
cdef class WorkView:
    """kstate.Work: per-node scratch arrays (one set per thread in route_fluid's blocks)."""
    cdef int64_t[::1] dist, hidx, order, tstamp, tlist, nh_start, nh_cnt, nh_list, nh_head
    cdef real_t[::1] sigma, den, mass, mass2, A, lh


@cython.final
cdef class LoadsView:
    """kstate.Loads: the outputs (one set per block in route_fluid's blocks, unreach shared)."""
    cdef real_t[::1] load, load2, grp_up, grp_down, unreach
    cdef int64_t[::1] path


@cython.final
cdef class ClosView:
    """kstate.ClosTables: the regular-Clos tables."""
    cdef const int32_t[::1] ept
    cdef const id_t[::1] pod_b1, up_ptr, uph, sd_base, sd_lnk, xd_base, xd_start, xd_cnt, xd_lnk, xd_head
    cdef const id_t[::1] link_dst, pod, rank, pod_slot, up_lnk, up_head


@cython.final
cdef class ClosDemandsView:
    """kstate.ClosDemands: the demands as given."""
    cdef const id_t[::1] src, dst
    cdef const real_t[::1] rate, nbytes
    cdef real_t inv_eff


@cython.final
cdef class ClosWorkView:
    """kstate.ClosWork: route_clos's failure mask, per-leaf-pair lists and outputs."""
    cdef const uint8_t[::1] alive, lclean
    cdef id_t LP
    cdef int64_t[::1] pair_ptr, pair_cnt, pool, f_idx, path, defer, counts
    cdef real_t[::1] pmass, lw, epw, agg, unreach, stats
