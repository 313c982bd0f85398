"""The state the routing kernels take, as objects with named arrays instead of argument lists.

A general kernel call is ``route_fluid(fabric, flows, work, loads, options)`` (and
``route_hash`` the same with :class:`HashOptions`); the regular-Clos kernel is
``route_clos(tables, demands, work, options)``, its failure path
``spray_cross(tables, cross, work)``. The compiled kernels (ext/_routing.pyx) read these
objects once per call (route_fluid: per block of groups) into typed views (the cdef
classes of ext/topo/_routing.pxd, same attribute names) or typed locals, and their loops
index typed memoryviews; the pure-Python twins
(topo.routing.pure._routing) read the same attributes. The objects hold numpy arrays
and do no checking of their own: :mod:`topo.routing.kernels` checks every array
(dtype, length, index ranges, entry state of the work arrays) before the kernel runs; a
FabricArrays or ClosTables passed through ``kernels.seal`` (the engine seals the ones it caches
per prepared set and Clos plan) has its arrays checked once, at the first call.

Arrays (one-dimensional, C-ordered; int64 ids, float64 loads, uint8 flags):

- :class:`FabricArrays` the alive switch-to-switch links as a CSR (``sw_ptr``, ``sw_adj``,
  ``sw_head`` = ``link_dst[sw_adj]``), every link's head and capacity (``link_dst``,
  ``link_gbps``), every endpoint's alive uplinks (``up_ptr``, ``up_link``, sorted by home
  switch) and its only uplink and that uplink's switch (``ep_up1``, ``ep_home1``, -1 unless
  exactly one).
- :class:`GroupedFlows` flows sorted by destination group: group g's flows are
  ``g_ptr[g]`` .. ``g_ptr[g+1]-1``, ``g_rep`` a member of each group, ``g_id`` its row in the
  per-group outputs; per flow ``f_src``, ``f_dst`` (-1: spread over the group), ``f_sg``
  (-1, or the source group that shares it), ``f_id`` (the hash's flow id), ``f_mass`` and
  ``f_mass2`` (a second weight carried along the same splits; empty when there is none).
- :class:`Work` per-node scratch arrays in their entry state (``dist``, ``hidx``,
  ``tstamp``, ``nh_cnt`` all -1; ``mass``, ``mass2`` all 0), ``A`` (nodes x KH), ``lh``
  (2 KH) and the hash's next-hop lists (``nh_start``, ``nh_cnt``, ``nh_list``, ``nh_head``).
- :class:`Loads` the outputs: per link ``load`` and ``load2``, per flow ``unreach``,
  per group and uplink ``grp_up`` and ``grp_down``, the queue pairs' links ``path``.
- :class:`UniformGroups` the groups and destinations of a uniform all-to-all (route_uniform,
  which aggregates the sources itself and keeps its scratch arrays to itself).
- :class:`ClosTables` the regular-Clos tables (topo.routing.clos), :class:`ClosDemands`
  the demands as given, :class:`ClosWork` that kernel's state and outputs,
  :class:`CrossFlows` the deferred flows between pods, :class:`CrossWork` spray_cross's
  scratch and outputs.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

_EMPTY_F = np.zeros(0)
_EMPTY_I = np.zeros(0, np.int64)


class _Arrays:
    """Named arrays; positional or keyword construction over ``__slots__``, a readable repr
    (weakly referable: topo.routing.kernels.seal records checked objects by weak reference)."""

    __slots__ = ("__weakref__",)

    def __init__(self, *args, **kw):
        names = self.__slots__
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} arrays ({len(args)} given)")
        for name, a in zip(names, args):
            setattr(self, name, a)
        for name, a in kw.items():
            if name not in names:
                raise TypeError(f"{type(self).__name__} has no array {name!r}")
            setattr(self, name, a)
        for name in names:
            if not hasattr(self, name):
                setattr(self, name, self._default(name))

    def _default(self, name):
        raise TypeError(f"{type(self).__name__}: {name} is required")

    def items(self):
        return [(name, getattr(self, name)) for name in self.__slots__]

    def __repr__(self) -> str:
        parts = (f"{n}={getattr(a, 'shape', a)}" for n, a in self.items())
        return f"{type(self).__name__}({', '.join(parts)})"


class FabricArrays(_Arrays):
    """The prepared fabric as the general kernels read it (alive links only)."""
    __slots__ = ("sw_ptr", "sw_adj", "sw_head", "link_dst", "link_gbps", "up_ptr", "up_link", "ep_up1", "ep_home1")


class GroupedFlows(_Arrays):
    """Flows bucketed by destination group. Arrays a kernel does not read may be left out
    (route_hash reads no g_id or f_sg, route_fluid no f_id); f_mass2 defaults to empty."""
    __slots__ = ("g_ptr", "g_rep", "g_id", "f_src", "f_dst", "f_sg", "f_id", "f_mass", "f_mass2")

    def _default(self, name):
        if name in ("g_id", "f_sg", "f_id"):
            return _EMPTY_I
        if name == "f_mass2":
            return _EMPTY_F
        return super()._default(name)


class Work(_Arrays):
    """Scratch arrays of the general kernels, in their entry state (see the module docstring).
    The ones a kernel does not use may be left out (empty)."""
    __slots__ = ("dist", "hidx", "sigma", "den", "mass", "mass2", "order", "tstamp", "tlist", "A", "lh",
                 "nh_start", "nh_cnt", "nh_list", "nh_head")

    def _default(self, name):
        return _EMPTY_F if name in ("sigma", "den", "mass", "mass2", "A", "lh") else _EMPTY_I


class Loads(_Arrays):
    """Outputs of the general kernels (added to, never cleared). load2 is empty unless the
    flows carry f_mass2; grp_up/grp_down only for flows with source groups or spread
    destinations (route_fluid) and for route_uniform; path (len 0, or flows x qps x H) only for
    route_hash; unreach (per flow: route_fluid and route_hash check its length) is not read by
    route_uniform, which returns the unreachable mass."""
    __slots__ = ("load", "load2", "grp_up", "grp_down", "unreach", "path")

    def _default(self, name):
        if name == "path":
            return _EMPTY_I
        if name in ("load2", "grp_up", "grp_down", "unreach"):
            return _EMPTY_F
        return super()._default(name)


class FluidOptions(NamedTuple):
    """route_fluid's scalars: mode 0 fluid, 1 wcmp, 2 spray; KU the most uplinks of an endpoint
    (the row width of grp_up/grp_down); KH the most home switches of a group; threads."""
    mode: int
    KU: int
    KH: int
    threads: int = 1


class UniformGroups(_Arrays):
    """route_uniform's groups: per group a member ``g_rep`` and its size ``g_size`` (float64); the
    destination groups to route ``dests`` and each one's multiplier ``d_mult`` (a twin class routed
    once for all its members)."""
    __slots__ = ("g_rep", "g_size", "dests", "d_mult")


class UniformOptions(NamedTuple):
    """route_uniform's scalars: mode (0 fluid, 1 wcmp, 2 spray), KU, KH and threads as for
    route_fluid, and the load of one ordered pair of endpoints (Gb/s)."""
    mode: int
    KU: int
    KH: int
    threads: int
    per_pair: float


class HashOptions(NamedTuple):
    """route_hash's scalars: the seed, queue pairs per flow, path row width H, threads (blocks of
    groups as route_fluid's; the results do not depend on it)."""
    seed: int
    qps: int
    H: int
    threads: int = 1


class ClosTables(_Arrays):
    """The regular-Clos tables route_clos and spray_cross read (built by topo.routing.clos;
    see route_clos in ext/_routing.pyx for each array's layout). route_clos reads ept and uph,
    spray_cross pod, rank, pod_slot, up_lnk and up_head; the others both."""
    __slots__ = ("ept", "pod_b1", "up_ptr", "uph", "sd_base", "sd_lnk", "xd_base", "xd_start", "xd_cnt", "xd_lnk",
                 "xd_head", "link_dst", "pod", "rank", "pod_slot", "up_lnk", "up_head")

    def _default(self, name):
        return np.zeros(0, np.int32) if name == "ept" else _EMPTY_I


class ClosDemands(_Arrays):
    """The demands as given (route_clos classifies them itself): ids, rates, bytes; inv_eff
    (1 / transport efficiency, a float) scales rate into mass."""
    __slots__ = ("src", "dst", "rate", "nbytes", "inv_eff")


class ClosWork(_Arrays):
    """route_clos's state and outputs: the failure mask (alive, lclean, LP; empty when every
    link is up), the per-leaf-pair lists (pair_ptr, pair_cnt, pool, pmass), the loads (lw, epw,
    agg), per flow unreach, f_idx, path and defer, and stats (5) and counts (2)."""
    __slots__ = ("alive", "lclean", "LP", "pair_ptr", "pair_cnt", "pool", "pmass", "lw", "epw", "agg", "unreach",
                 "f_idx", "path", "defer", "stats", "counts")


class ClosOptions(NamedTuple):
    """route_clos's scalars: spray (0 roce-hash, 1 uec-spray), NL leaves, K planes, the seed,
    queue pairs per flow, path row width H, threads (chunks of demands on a healthy fabric; the
    results do not depend on it)."""
    spray: int
    NL: int
    K: int
    seed: int
    qps: int
    H: int
    threads: int = 1


class ClosResult(NamedTuple):
    """What route_clos returns besides its arrays."""
    routed: int            # flows routed here (the first entries of f_idx)
    two_weights: bool      # whether the second weight was carried (else it is ratio x the first)
    ratio: float           # bytes/mass ratio of the first routed flow


class CrossFlows(_Arrays):
    """Flows between pods for spray_cross, per destination leaf: destination g's flows are
    g_ptr[g] .. g_ptr[g+1]-1 towards leaf g_dst[g], from leaf f_leaf with weights f_m, f_m2."""
    __slots__ = ("g_ptr", "g_dst", "f_leaf", "f_m", "f_m2")


class CrossWork(_Arrays):
    """spray_cross's state and outputs: the failure mask alive, per-node scratch (rstamp and
    tstamp all -1, mass and mass2 all 0 on entry; rval, touched), the loads (load, load2) and
    per flow f_ok."""
    __slots__ = ("alive", "rstamp", "rval", "tstamp", "mass", "mass2", "touched", "load", "load2", "f_ok")
