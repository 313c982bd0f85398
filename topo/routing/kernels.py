"""The switch between compiled kernels and their pure-Python twins, and the checks made
before every kernel call.

``kernel("_routing")`` returns the compiled ``topo._routing`` unless the environment
sets TOPO_PURE_PYTHON=1, in which case it returns ``topo.routing.pure._routing``. If the
compiled module is missing the twin is used and a warning says so once; the
test suite imports the compiled modules directly so a broken build fails there.

The module comes wrapped: every kernel function listed in ``_CHECKS`` first has
its arguments checked (dtype, one dimension, C order, writable outputs, lengths
that fit together, every value used as an index inside the array it indexes,
work arrays in the state the kernel expects), and a call that does not fit
raises :class:`KernelArgumentError` naming the kernel and the argument instead
of reading or writing out of bounds.

The general and Clos kernels take their state as objects (:mod:`topo.routing.kstate`:
``route_fluid(fabric, flows, work, loads, options)``, ``route_hash`` alike,
``route_clos(tables, demands, work, options)``, ``spray_cross(tables, cross, work)``); each
such kernel's ``_Layout`` says which attribute lives in which object, and a call given
anything else is refused. The first object (FabricArrays, ClosTables) describes the fabric
and does not change between calls: one passed through :func:`seal` (as the engine does with
the ones it caches per prepared set and Clos plan) has its arrays checked once, at its first
call, and later calls check only the flows, the work arrays and the options, O(flows +
nodes) with no pass over the fabric's tables. The checks are vectorised numpy passes over
the arguments, O(size of the arguments), far below the kernels' own cost; the
compiled kernels themselves run without bounds checks (build them with
TOPO_BOUNDSCHECK=1 to add those, see setup.py). The composite structure of the
regular-Clos tables (down-table rows long enough for every leaf rank, one row
of pod slots per super-spine) is checked once per table set, where the tables
are built (``topo.routing.clos.check_plan``).

Threads: :func:`threads` is the number of threads a parallel kernel may use
(``route_fluid``'s and ``route_hash``'s blocks of destination groups, ``route_uniform``'s chunks
of destinations): TOPO_THREADS if set (a whole
number >= 1), else the cores this process may run on, capped at MAX_THREADS. The
kernels' results do not depend on it.
"""
from __future__ import annotations

import importlib
import math
import os
import warnings
import weakref
from typing import NamedTuple

from topo.core.errors import SpecError
from topo.routing import kstate as ks

import numpy as np

PURE = os.environ.get("TOPO_PURE_PYTHON", "") == "1"
_cache: dict[str, object] = {}

I64 = np.dtype(np.int64)
I32 = np.dtype(np.int32)
F64 = np.dtype(np.float64)
U8 = np.dtype(np.uint8)


MAX_THREADS = 8


def threads() -> int:
    """Threads for the parallel kernels: TOPO_THREADS, else the usable cores (at most MAX_THREADS)."""
    raw = os.environ.get("TOPO_THREADS", "").strip()
    if raw:
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n < 1:
            raise SpecError([("TOPO_THREADS", f"must be a whole number >= 1 (found {raw!r})")])
        return n
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_THREADS))


# destination groups x switch links below which route_fluid gets one thread: the threads' start
# and barriers cost more than they save (a 1,024-host Jellyfish graph: 0.5M; 8,192 hosts: 34M)
PARALLEL_WORK = 4e6


def fluid_threads(n_groups: int, n_switch_links: int) -> int:
    """Threads for one route_fluid call: :func:`threads` where the work pays for them, else 1."""
    return threads() if float(n_groups) * float(n_switch_links + 1) >= PARALLEL_WORK else 1


# destination groups x switch links from which uniform_loads looks for twin classes: below it the
# plain path (one BFS per group) costs less than finding the classes (a k=16 fat tree, 0.5M: 1.8 ms
# plain, 2.0 ms with classes; k=32, 17M: 63 ms plain, 11 ms with classes; one thread)
SYMMETRY_WORK = 2e6


def symmetry_pays(n_groups: int, n_switch_links: int) -> bool:
    """Whether uniform_loads should route one group per twin class (see its docstring)."""
    return float(n_groups) * float(n_switch_links + 1) >= SYMMETRY_WORK


class FlowStats(NamedTuple):
    """The statistics bucket_flows and route_clos leave in their ``stats`` array, by name."""
    offered_gbps: float           # mass of the flows with src != dst
    same_domain_flows: int        # flows inside one scale-up domain (not routed here)
    nonpositive_flows: int        # routed flows with mass <= 0
    negative_flows: int           # flows with a negative rate or bytes
    unreachable_gbps: float       # mass of routed flows with no alive uplink at an end
    min_bytes_per_mass: float     # bucket_flows only (nan for route_clos): over routed flows with mass > 0
    max_bytes_per_mass: float

    @classmethod
    def of_bucket_flows(cls, st) -> "FlowStats":
        return cls(float(st[0]), int(st[1]), int(st[4]), int(st[5]), float(st[6]), float(st[2]), float(st[3]))

    @classmethod
    def of_route_clos(cls, st) -> "FlowStats":
        return cls(float(st[0]), int(st[1]), int(st[2]), int(st[3]), float(st[4]), float("nan"), float("nan"))


class KernelArgumentError(ValueError):
    """A kernel call whose arrays do not fit together (a bug in the caller), raised before the kernel runs."""


def kernel(name: str):
    mod = _cache.get(name)
    if mod is not None:
        return mod
    if PURE:
        raw = importlib.import_module(f"topo.routing.pure.{name}")
    else:
        # OpenMP threads that wait sleep instead of spinning (the machine is often shared, and a
        # spinning waiter steals the core its partner needs); read by the OpenMP runtime when it
        # loads with the kernels, and left alone if the user set it
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            raw = importlib.import_module(f"topo.{name}")
        except ImportError:
            warnings.warn(f"compiled kernel topo.{name} is not built; using the pure-Python twin (slow)",
                          RuntimeWarning, stacklevel=2)
            raw = importlib.import_module(f"topo.routing.pure.{name}")
    mod = Checked(raw, name)
    _cache[name] = mod
    return mod


class Checked:
    """A kernel module whose checked functions validate their arguments before running."""

    def __init__(self, module, name: str):
        self.module = module
        self.name = name
        self._fns: dict[str, object] = {}

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        fn = self._fns.get(attr)
        if fn is not None:
            return fn
        raw = getattr(self.module, attr)
        check = _CHECKS.get((self.name, attr))
        if check is None or not callable(raw):
            fn = raw
        else:
            label = f"{self.name}.{attr}"
            layout = _LAYOUTS.get((self.name, attr))
            if layout is None:
                def fn(*args, _raw=raw, _check=check, _label=label):
                    _check(_Args(_label), *args)
                    return _raw(*args)
            else:
                def fn(*args, _raw=raw, _check=check, _label=label, _layout=layout):
                    objs = _layout.objects(args)
                    c = _Args(_label)
                    _check(c, _layout.facts(c, objs[0]), **_layout.flat(objs))
                    return _layout.result(_raw(*objs))
            fn.__name__ = attr
            fn.__doc__ = getattr(raw, "__doc__", None)
        self._fns[attr] = fn
        return fn

    def __repr__(self) -> str:
        return f"<checked kernels {self.module.__name__}>"


class _Layout:
    """Which named arrays and scalars of a kernel call live in which state object (topo.routing.kstate).

    A kernel with a layout takes its state objects (``route_fluid(fabric, flows, work, loads,
    options)``); ``names`` are the attributes in the order of the kernel's check function, ``flat``
    unpacks objects into the names the check reads."""

    def __init__(self, check, facts, parts, result=None):
        import inspect
        self.names = [p for p in inspect.signature(check).parameters][2:]
        self.parts = parts          # [(class, names)]
        self.result = result or (lambda r: r)
        self.table_facts = facts    # (c, first state object) -> what the call checks need of it
        assert sorted(n for _, ns in parts for n in ns) == sorted(self.names), self.names

    def facts(self, c, obj) -> dict:
        """What the per-call checks need to know of the first state object (the fabric arrays or the
        Clos tables): computed once per sealed object (:func:`seal`; its arrays are read-only and
        still the ones it was sealed with), else now, checking every array of it."""
        rec = _sealed.get(obj)
        if rec is None or not all(getattr(obj, n) is a for n, a in rec.arrays):
            return self.table_facts(c, obj)
        f = rec.facts.get(self.table_facts)
        if f is None:
            f = rec.facts[self.table_facts] = self.table_facts(c, obj)
        return f

    def objects(self, args) -> tuple:
        if len(args) == len(self.parts) and all(isinstance(a, cls) for a, (cls, _) in zip(args, self.parts)):
            return tuple(args)
        raise KernelArgumentError(f"expected {len(self.parts)} state objects "
                                  f"({', '.join(c.__name__ for c, _ in self.parts)}; found "
                                  f"{', '.join(type(a).__name__ for a in args) or 'none'})")

    def flat(self, objs) -> dict:
        return {n: getattr(o, n) for o, (_, ns) in zip(objs, self.parts) for n in ns}


class _Seal:
    __slots__ = ("arrays", "facts")

    def __init__(self, arrays):
        self.arrays = arrays    # ((name, array), ...) as sealed
        self.facts = {}         # table-facts function -> its result


_sealed: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def seal(obj):
    """Mark a state object whose arrays do not change (the fabric arrays of a prepared set, the
    regular-Clos tables) so that its arrays are checked once, at the first kernel call that reads
    them, instead of at every call. Each array is replaced by a read-only view of it (the object
    cannot be written through; the arrays' owner must not change them afterwards) and the object
    remembers those views (a call with any attribute replaced checks everything again). Returns obj."""
    for n, a in obj.items():
        if isinstance(a, np.ndarray):
            v = a.view()
            v.setflags(write=False)
            setattr(obj, n, v)
    _sealed[obj] = _Seal(tuple(obj.items()))
    return obj


class _Args:
    """Checks of one kernel call; a failure names the kernel and the argument."""

    __slots__ = ("fn",)

    def __init__(self, fn: str):
        self.fn = fn

    def fail(self, name: str, what: str):
        raise KernelArgumentError(f"{self.fn}: {name} {what}")

    def arr(self, name, a, dtype, n=None, at_least=None, out=False) -> int:
        """a: a one-dimensional C-ordered numpy array of this dtype (writable if out); returns its length."""
        if not isinstance(a, np.ndarray):
            self.fail(name, f"must be a numpy array (found {type(a).__name__})")
        if a.dtype != dtype:
            self.fail(name, f"must have dtype {dtype} (found {a.dtype})")
        if a.ndim != 1:
            self.fail(name, f"must be one-dimensional (found shape {a.shape})")
        if not a.flags.c_contiguous:
            self.fail(name, "must be C-contiguous")
        if out and not a.flags.writeable:
            self.fail(name, "must be writable")
        m = a.shape[0]
        if n is not None and m != n:
            self.fail(name, f"must have {n} entries (found {m})")
        if at_least is not None and m < at_least:
            self.fail(name, f"must have at least {at_least} entries (found {m})")
        return m

    def ints(self, name, a, lo, hi):
        """Every value of a (int64 or int32) in [lo, hi)."""
        if a.shape[0] == 0:
            return
        if lo == 0 and a.dtype.itemsize == 8 and hi > 0:
            ok = not (a.view(np.uint64) >= hi).any()     # one pass: negatives are huge unsigned
        else:
            ok = int(a.min()) >= lo and int(a.max()) < hi
        if not ok:
            self.fail(name, f"values must be in [{lo}, {hi}) (found {int(a.min())}..{int(a.max())})")

    def csr(self, name, ptr, rows, end):
        """ptr: rows + 1 non-decreasing offsets from 0 to at most end."""
        self.arr(name, ptr, I64, n=rows + 1)
        if ptr[0] != 0 or ptr[-1] > end or (rows and (np.diff(ptr) < 0).any()):
            self.fail(name, f"must be non-decreasing offsets from 0 to at most {end}")

    def filled(self, name, a, value, n):
        """The first n entries of a all equal value (a work array's state on entry)."""
        if n and (a[:n] != value).any():
            self.fail(name, f"must hold {value} in its first {n} entries on entry")

    def scalar(self, name, x, lo, hi=None):
        try:
            v = int(x)
        except (TypeError, ValueError):
            self.fail(name, f"must be an integer (found {x!r})")
        if v != x or v < lo or (hi is not None and v >= hi):
            self.fail(name, f"must be an integer in [{lo}, {'inf' if hi is None else hi}) (found {x!r})")
        return v


# --- the routing kernels ---------------------------------------------------------------------
def _fabric(c, sw_ptr, sw_adj, sw_head, link_dst, link_gbps, up_ptr, up_link, ep_up1, ep_home1):
    """The CSR of alive switch links and the endpoints' uplinks; returns (nodes, links, endpoints)."""
    Lk = c.arr("link_dst", link_dst, I64)
    c.arr("link_gbps", link_gbps, F64, n=Lk)
    if Lk % 2:
        c.fail("link_dst", f"must list links in pairs (l, l ^ 1) (found {Lk} links)")
    if sw_ptr.shape[0] < 1:
        c.fail("sw_ptr", "must have one entry per node plus one")
    N = sw_ptr.shape[0] - 1
    S = c.arr("sw_adj", sw_adj, I64)
    c.csr("sw_ptr", sw_ptr, N, S)
    c.arr("sw_head", sw_head, I64, n=S)
    c.ints("sw_adj", sw_adj, 0, Lk)
    c.ints("sw_head", sw_head, 0, N)
    c.ints("link_dst", link_dst, 0, N)
    if up_ptr.shape[0] < 1:
        c.fail("up_ptr", "must have one entry per endpoint plus one")
    E = up_ptr.shape[0] - 1
    U = c.arr("up_link", up_link, I64)
    c.csr("up_ptr", up_ptr, E, U)
    c.ints("up_link", up_link, 0, Lk)
    c.arr("ep_up1", ep_up1, I64, at_least=E)
    c.arr("ep_home1", ep_home1, I64, at_least=E)
    c.ints("ep_up1", ep_up1[:E], -1, Lk)
    c.ints("ep_home1", ep_home1[:E], -1, N)
    if E and ((ep_up1[:E] >= 0) & (ep_home1[:E] < 0)).any():
        c.fail("ep_home1", "must name the switch of every endpoint's only uplink (ep_up1 >= 0)")
    return N, Lk, E


def _fabric_facts(c, fa) -> dict:
    """The checks of a FabricArrays alone (once per sealed object): nodes, links, endpoints, alive switch links."""
    for name in ("sw_ptr", "up_ptr"):
        c.arr(name, getattr(fa, name), I64)
    N, Lk, E = _fabric(c, *(getattr(fa, n) for n in ks.FabricArrays.__slots__))
    listed = np.zeros(Lk, bool)
    listed[fa.sw_adj] = True
    # every alive switch link's reverse is alive too (failure_mask fails both directions):
    # route_uniform's bottom-up BFS levels find a switch's parents through its own links
    return {"N": N, "Lk": Lk, "E": E, "S": fa.sw_adj.shape[0], "sym": bool(listed[fa.sw_adj ^ 1].all())}


def _groups(c, g_ptr, g_rep, f_src, f_dst, E, spread_ok):
    """Destination groups (flows g_ptr[g] .. g_ptr[g+1]-1) and their flows; returns (groups, flows)."""
    if g_ptr.shape[0] < 1:
        c.fail("g_ptr", "must have one entry per group plus one")
    ng = g_ptr.shape[0] - 1
    nf_max = c.arr("f_src", f_src, I64)
    c.csr("g_ptr", g_ptr, ng, nf_max)
    nf = int(g_ptr[-1])
    c.arr("f_dst", f_dst, I64, at_least=nf)
    c.arr("g_rep", g_rep, I64, at_least=ng)
    c.ints("g_rep", g_rep[:ng], 0, E)
    c.ints("f_src", f_src[:nf], 0, E)
    c.ints("f_dst", f_dst[:nf], -1 if spread_ok else 0, E)
    return ng, nf


def _homes_fit(c, g_rep, ng, up_ptr, up_link, link_dst, N, KH):
    """No group representative has more than KH distinct home switches (the kernel's per-home
    arrays hold KH). That every destination shares its representative's homes is checked by
    the kernels themselves, per flow, at no extra pass (they raise ValueError)."""
    if ng == 0:
        return
    rep = g_rep[:ng]
    deg = up_ptr[rep + 1] - up_ptr[rep]
    gi = np.repeat(np.arange(ng, dtype=np.int64), deg)
    pos = np.arange(gi.shape[0], dtype=np.int64) - np.repeat(np.cumsum(deg) - deg, deg)
    keys = np.unique(gi * N + link_dst[up_link[np.repeat(up_ptr[rep], deg) + pos]])
    nh = np.bincount(keys // N, minlength=ng)
    if int(nh.max()) > KH:
        c.fail("KH", f"must be at least the most distinct home switches of a group ({int(nh.max())}; found {KH})")


def _work(c, N, **arrays):
    for name, (a, dtype, state) in arrays.items():
        c.arr(name, a, dtype, at_least=N, out=True)
        if state is not None:
            c.filled(name, a, state, N)


def _check_bucket_flows(c, src, dst, rate, nbytes, inv_eff, ep_domain, ep_group, g_ptr, cursor,
                        f_idx, f_src, f_dst, f_mass, unreach, stats):
    n = c.arr("src", src, I64)
    c.arr("dst", dst, I64, n=n)
    c.arr("rate", rate, F64, n=n)
    c.arr("nbytes", nbytes, F64, n=n)
    E = c.arr("ep_domain", ep_domain, I64)
    c.arr("ep_group", ep_group, I64, n=E)
    ng = c.arr("cursor", cursor, I64, out=True)
    c.arr("g_ptr", g_ptr, I64, n=ng + 1, out=True)
    c.filled("g_ptr", g_ptr, 0, ng + 1)
    c.filled("cursor", cursor, 0, ng)
    c.ints("src", src, 0, E)
    c.ints("dst", dst, 0, E)
    c.ints("ep_group", ep_group, -1, ng)
    for name, a, dt in (("f_idx", f_idx, I64), ("f_src", f_src, I64), ("f_dst", f_dst, I64), ("f_mass", f_mass, F64),
                        ("unreach", unreach, F64)):
        c.arr(name, a, dt, at_least=n, out=True)
    c.arr("stats", stats, F64, at_least=7, out=True)


def _check_route_fluid(c, F, mode, KU, KH, sw_ptr, sw_adj, sw_head, link_dst, link_gbps, up_ptr, up_link, ep_up1,
                       ep_home1, g_ptr, g_rep, g_id, f_src, f_dst, f_sg, f_mass, dist, hidx, sigma, den, mass, order,
                       tstamp, tlist, A, lh, load, grp_up, grp_down, unreach, f_mass2, load2, mass2, threads):
    c.scalar("mode", mode, 0, 3)
    c.scalar("threads", threads, 1)
    KU = c.scalar("KU", KU, 1)
    KH = c.scalar("KH", KH, 1)
    c.arr("g_ptr", g_ptr, I64)
    N, Lk, E = F["N"], F["Lk"], F["E"]
    if E and int(np.diff(up_ptr).max()) > KU:
        c.fail("KU", f"must be at least the most uplinks of an endpoint ({int(np.diff(up_ptr).max())}; found {KU})")
    ng, nf = _groups(c, g_ptr, g_rep, f_src, f_dst, E, spread_ok=True)
    c.arr("g_id", g_id, I64, at_least=ng)
    c.arr("f_sg", f_sg, I64, at_least=nf)
    c.arr("f_mass", f_mass, F64, at_least=nf)
    _homes_fit(c, g_rep, ng, up_ptr, up_link, link_dst, N, KH)
    _work(c, N, dist=(dist, I64, -1), hidx=(hidx, I64, -1), sigma=(sigma, F64, None), den=(den, F64, None),
          mass=(mass, F64, 0.0), order=(order, I64, None), tstamp=(tstamp, I64, -1), tlist=(tlist, I64, None))
    c.arr("A", A, F64, at_least=N * KH, out=True)
    c.arr("lh", lh, F64, at_least=2 * KH, out=True)
    c.arr("load", load, F64, at_least=Lk, out=True)
    c.arr("unreach", unreach, F64, at_least=nf, out=True)
    nup = c.arr("grp_up", grp_up, F64, out=True)
    ndn = c.arr("grp_down", grp_down, F64, out=True)
    sg = f_sg[:nf]
    c.ints("f_sg", sg, -1, nup // KU)
    if nf and (f_dst[:nf] < 0).any():
        spread = np.repeat(np.arange(ng, dtype=np.int64), np.diff(g_ptr))[f_dst[:nf] < 0]
        c.ints("g_id", g_id[np.unique(spread)], 0, ndn // KU)
    if c.arr("f_mass2", f_mass2, F64):
        c.arr("f_mass2", f_mass2, F64, at_least=nf)
        c.arr("load2", load2, F64, at_least=Lk, out=True)
        c.arr("mass2", mass2, F64, at_least=N, out=True)
        c.filled("mass2", mass2, 0.0, N)
        if nf and ((sg >= 0) | (f_dst[:nf] < 0)).any():
            c.fail("f_mass2", "needs every flow to have one destination and no source group")
    else:
        c.arr("load2", load2, F64)
        c.arr("mass2", mass2, F64)


def _check_route_uniform(c, F, mode, KU, KH, threads, per_pair, sw_ptr, sw_adj, sw_head, link_dst, link_gbps, up_ptr,
                         up_link, ep_up1, ep_home1, g_rep, g_size, dests, d_mult, load, grp_up, grp_down):
    c.scalar("mode", mode, 0, 3)
    c.scalar("threads", threads, 1)
    KU = c.scalar("KU", KU, 1)
    KH = c.scalar("KH", KH, 1)
    if not np.isfinite(float(per_pair)):
        c.fail("per_pair", f"must be a finite number (found {per_pair!r})")
    N, Lk, E = F["N"], F["Lk"], F["E"]
    if not F["sym"]:
        c.fail("sw_adj", "must list the reverse of every alive switch link (both directions alive or both failed)")
    if max(N, Lk, F["S"]) >= 2 ** 31 - 1:
        c.fail("sw_head", "route_uniform indexes nodes and links with 32 bits: fewer than 2**31 - 1 of each")
    if E and int(np.diff(up_ptr).max()) > KU:
        c.fail("KU", f"must be at least the most uplinks of an endpoint ({int(np.diff(up_ptr).max())}; found {KU})")
    ng = c.arr("g_rep", g_rep, I64)
    c.ints("g_rep", g_rep, 0, E)
    c.arr("g_size", g_size, F64, n=ng)
    nd = c.arr("dests", dests, I64)
    c.ints("dests", dests, 0, ng)
    c.arr("d_mult", d_mult, F64, n=nd)
    _homes_fit(c, g_rep, ng, up_ptr, up_link, link_dst, N, KH)
    c.arr("load", load, F64, at_least=Lk, out=True)
    c.arr("grp_up", grp_up, F64, at_least=ng * KU, out=True)
    c.arr("grp_down", grp_down, F64, at_least=ng * KU, out=True)


def _check_route_hash(c, F, seed, qps, H, sw_ptr, sw_adj, sw_head, link_dst, link_gbps, up_ptr, up_link, ep_up1,
                      ep_home1, g_ptr, g_rep, f_src, f_dst, f_id, f_mass, dist, hidx, sigma, den, order, tstamp, tlist,
                      nh_start, nh_cnt, nh_list, nh_head, load, unreach, path, f_mass2, load2, threads):
    c.scalar("threads", threads, 1)
    qps = c.scalar("qps", qps, 1)
    H = c.scalar("H", H, 1)
    c.arr("g_ptr", g_ptr, I64)
    N, Lk, E = F["N"], F["Lk"], F["E"]
    ng, nf = _groups(c, g_ptr, g_rep, f_src, f_dst, E, spread_ok=False)
    c.arr("f_id", f_id, I64, at_least=nf)
    c.arr("f_mass", f_mass, F64, at_least=nf)
    _work(c, N, dist=(dist, I64, -1), hidx=(hidx, I64, -1), sigma=(sigma, F64, None), den=(den, F64, None),
          order=(order, I64, None), tstamp=(tstamp, I64, -1), tlist=(tlist, I64, None),
          nh_start=(nh_start, I64, None), nh_cnt=(nh_cnt, I64, -1))
    S = F["S"]
    c.arr("nh_list", nh_list, I64, at_least=S, out=True)
    c.arr("nh_head", nh_head, I64, at_least=S, out=True)
    c.arr("load", load, F64, at_least=Lk, out=True)
    c.arr("unreach", unreach, F64, at_least=nf, out=True)
    if c.arr("path", path, I64, out=True):
        c.arr("path", path, I64, at_least=nf * qps * H)
    if c.arr("f_mass2", f_mass2, F64):
        c.arr("f_mass2", f_mass2, F64, at_least=nf)
        c.arr("load2", load2, F64, at_least=Lk, out=True)
    else:
        c.arr("load2", load2, F64)


def _check_bucket_links(c, flat, H, cursor, lk_qp):
    H = c.scalar("H", H, 1)
    n = c.arr("flat", flat, I64)
    if n % H:
        c.fail("flat", f"must hold whole paths of H = {H} entries (found {n})")
    L = c.arr("cursor", cursor, I64, out=True)
    m = c.arr("lk_qp", lk_qp, I64, out=True)
    c.ints("flat", flat, -1, L)
    if n:
        cnt = np.bincount(flat[flat >= 0], minlength=L)
        if L and ((cursor < 0).any() or (cursor + cnt > m).any()):
            c.fail("cursor", f"must leave room in lk_qp ({m} entries) for every link's queue pairs")


def _check_waterfill(c, H, path, weight, cap, lk_ptr, lk_qp, rem, wsum, n_act, ver, frozen, hk, hl, hv, rate):
    H = c.scalar("H", H, 1)
    nq = c.arr("rate", rate, F64, out=True)
    c.arr("path", path, I64, at_least=nq * H)
    c.arr("weight", weight, F64, at_least=nq)
    L = c.arr("cap", cap, F64)
    c.arr("lk_ptr", lk_ptr, I64)
    m = c.arr("lk_qp", lk_qp, I64)
    c.csr("lk_ptr", lk_ptr, L, m)
    p = path[:nq * H]
    c.ints("path", p, -1, L)
    c.ints("lk_qp", lk_qp[:int(lk_ptr[-1])], 0, nq)
    for name, a, dt in (("rem", rem, F64), ("wsum", wsum, F64), ("n_act", n_act, I64), ("ver", ver, I64)):
        c.arr(name, a, dt, at_least=L, out=True)
    c.arr("frozen", frozen, U8, at_least=nq, out=True)
    heap = L + int((p >= 0).sum())
    for name, a, dt in (("hk", hk, F64), ("hl", hl, I64), ("hv", hv, I64)):
        c.arr(name, a, dt, at_least=heap, out=True)



def _check_maxmin_times(c, H, path, mult, qbytes, cap, bps, rounds, max_work, done, rem, active, info):
    H = c.scalar("H", H, 1)
    n = c.arr("qbytes", qbytes, F64)
    c.arr("path", path, I64, n=n * H)
    c.arr("mult", mult, I64, n=n)
    L = c.arr("cap", cap, F64)
    c.ints("path", path, -1, L)
    if n and H > 1:
        P = path.reshape(n, H)
        if ((P[:, :-1] < 0) & (P[:, 1:] >= 0)).any():
            c.fail("path", "rows must be link ids followed by -1 padding (a link id after a -1)")
    # whole multiplicities >= 1 whose sum a double holds exactly: the links' weight sums are exact
    if n and (int(mult.min()) < 1 or int(mult.sum(dtype=np.float64)) >= 2 ** 53):
        c.fail("mult", f"values must be >= 1 with a sum below 2**53 (found {int(mult.min())}..{int(mult.max())})")
    if n and not (np.isfinite(qbytes).all()):
        c.fail("qbytes", "must be finite")
    if L and not (np.isfinite(cap).all() and (cap >= 0).all()):
        c.fail("cap", "must be finite and >= 0")
    if not (isinstance(bps, float) and math.isfinite(bps) and bps > 0):
        c.fail("bps", f"must be a finite float > 0 (found {bps!r})")
    c.scalar("rounds", rounds, 1)
    c.scalar("max_work", max_work, 0)
    c.arr("done", done, F64, n=n, out=True)
    c.arr("rem", rem, F64, n=n, out=True)
    c.arr("active", active, U8, n=n, out=True)
    c.arr("info", info, F64, at_least=8, out=True)

def _tables(c, N, Lk, up_ptr, up_lnk, up_head, sd_base, sd_lnk, xd_base, xd_start, xd_cnt, xd_lnk, xd_head):
    """Index ranges of the regular-Clos tables (their composite structure: routing_clos.check_plan)."""
    U = c.arr("up_lnk", up_lnk, I64) if up_lnk is not None else None
    c.arr("up_ptr", up_ptr, I64)
    if up_ptr.shape[0] != N + 1:
        c.fail("up_ptr", f"must have one entry per node plus one ({N + 1}; found {up_ptr.shape[0]})")
    if U is not None:
        c.csr("up_ptr", up_ptr, N, U)
        c.arr("up_head", up_head, I64, n=U)
        c.ints("up_lnk", up_lnk, 0, Lk)
        c.ints("up_head", up_head, 0, N)
    S = c.arr("sd_lnk", sd_lnk, I64)
    c.arr("sd_base", sd_base, I64, n=N)
    c.ints("sd_base", sd_base, -1, max(S, 1))
    c.ints("sd_lnk", sd_lnk, 0, Lk)
    X = c.arr("xd_start", xd_start, I64)
    c.arr("xd_cnt", xd_cnt, I64, n=X)
    c.arr("xd_base", xd_base, I64, n=N)
    c.ints("xd_base", xd_base, -1, max(X, 1))
    XL = c.arr("xd_lnk", xd_lnk, I64)
    c.arr("xd_head", xd_head, I64, n=XL)
    if X and ((xd_start < 0).any() or (xd_cnt < 0).any() or (xd_start + xd_cnt > XL).any()):
        c.fail("xd_start", f"rows (xd_start, xd_cnt) must lie in xd_lnk ({XL} entries)")
    c.ints("xd_lnk", xd_lnk, 0, Lk)
    c.ints("xd_head", xd_head, 0, N)


def _tops(up_ptr, heads_base):
    """Per node, the largest down-table base among its uplinks' heads (-2 for a node without uplinks)."""
    N = up_ptr.shape[0] - 1
    top = np.full(N, -2, np.int64)
    if heads_base.shape[0]:
        np.maximum.at(top, np.repeat(np.arange(N, dtype=np.int64), np.diff(up_ptr)), heads_base)
    return top


def _down_rows_fit(c, what, leaves, ranks, b1, top, S):
    """For leaves with spines above them: the deepest entry of a spine's down table read for the
    leaf, the largest base among its uplink heads (top, from _tops) + (rank + 1) x b1, lies inside sd_lnk."""
    if leaves.shape[0] == 0:
        return
    t = top[leaves]
    up = t > -2                                  # the leaf has an uplink
    if ((t >= 0) & (t + (ranks + 1) * b1 > S)).any() or (up & (t < 0) & (b1 > 0)).any():
        c.fail(what, f"would read a spine's down table past sd_lnk ({S} entries): leaf rank x bundle too large")


def _super_rows(xd_base, X):
    """The longest row of pod slots of a super-spine (0 without super-spines)."""
    b = np.unique(xd_base[xd_base >= 0])
    if b.shape[0] == 0:
        return 0
    return int(np.diff(np.append(b, X)).max())


def _clos_facts(c, tb) -> dict:
    """The checks of a ClosTables as route_clos reads it (once per sealed object)."""
    ept, pod_b1, up_ptr, uph, sd_lnk = tb.ept, tb.pod_b1, tb.up_ptr, tb.uph, tb.sd_lnk
    Lk = c.arr("link_dst", tb.link_dst, I64)
    if Lk % 2:
        c.fail("link_dst", f"must list links in pairs (l, l ^ 1) (found {Lk} links)")
    c.arr("up_ptr", up_ptr, I64)
    N = up_ptr.shape[0] - 1
    if N < 0:
        c.fail("up_ptr", "must have one entry per node plus one")
    c.ints("link_dst", tb.link_dst, 0, N)
    ne = c.arr("ept", ept, I32)
    if ne % 8:
        c.fail("ept", f"must hold 8 entries per endpoint and plane (found {ne})")
    T = ept.reshape(-1, 8)
    npods = c.arr("pod_b1", pod_b1, I64)
    c.ints("pod_b1", pod_b1, 0, 1 << 40)
    c.ints("ept leaf column", T[:, 1], 0, N)
    c.ints("ept uplink column", T[:, 2], 0, Lk)
    c.ints("ept pod column", T[:, 4], 0, npods)
    c.ints("ept rank column", T[:, 5], 0, 1 << 31)
    c.ints("ept leaf-index column", T[:, 6], 0, 1 << 31)
    c.ints("ept pod-slot column", T[:, 7], 0, 1 << 31)
    _tables(c, N, Lk, up_ptr, None, None, tb.sd_base, sd_lnk, tb.xd_base, tb.xd_start, tb.xd_cnt, tb.xd_lnk,
            tb.xd_head)
    U = int(up_ptr[-1])
    c.csr("up_ptr", up_ptr, N, U)
    c.arr("uph", uph, I64, n=3 * U)
    W = uph.reshape(-1, 3)
    c.ints("uph link column", W[:, 0], 0, Lk)
    c.ints("uph head column", W[:, 1], 0, N)
    c.ints("uph down-table column", W[:, 2], -1, max(sd_lnk.shape[0], 1))
    _down_rows_fit(c, "pod_b1 and the ept rank column", T[:, 1].astype(np.int64), T[:, 5].astype(np.int64),
                   pod_b1[T[:, 4]], _tops(up_ptr, W[:, 2]), sd_lnk.shape[0])
    rows = _super_rows(tb.xd_base, tb.xd_start.shape[0])
    if T.shape[0] and rows:
        c.ints("ept pod-slot column", T[:, 7], 0, rows)
    top = lambda col: int(T[:, col].max()) if T.shape[0] else -1
    return {"N": N, "Lk": Lk, "ne": ne, "leaf_idx_max": top(6), "rank_max": top(5), "slot_max": top(7)}


def _check_route_clos(c, F, spray, NL, K, seed, qps, H, threads, src, dst, rate, nbytes, inv_eff, ept, pod_b1, up_ptr, uph,
                      sd_base, sd_lnk, xd_base, xd_start, xd_cnt, xd_lnk, xd_head, alive, lclean, link_dst, LP,
                      pair_ptr, pair_cnt, pool, pmass, lw, epw, agg, unreach, f_idx, path, defer, stats, counts):
    """One route_clos call given the facts of its tables (_clos_facts): O(flows + nodes + leaf pairs)."""
    spray = c.scalar("spray", spray, 0, 2)
    NL = c.scalar("NL", NL, 0)
    K = c.scalar("K", K, 1)
    qps = c.scalar("qps", qps, 1)
    H = c.scalar("H", H, 1)
    c.scalar("threads", threads, 1)
    LP = c.scalar("LP", LP, 0)
    n = c.arr("src", src, I64)
    c.arr("dst", dst, I64, n=n)
    c.arr("rate", rate, F64, n=n)
    c.arr("nbytes", nbytes, F64, n=n)
    N, Lk, ne = F["N"], F["Lk"], F["ne"]
    if ne % (8 * K):
        c.fail("ept", f"must hold 8 entries per endpoint and plane (K = {K}; found {ne})")
    E = ne // (8 * K)
    c.ints("src", src, 0, E)
    c.ints("dst", dst, 0, E)
    if F["leaf_idx_max"] >= NL:
        c.fail("ept leaf-index column", f"values must be in [0, {NL}) (found up to {F['leaf_idx_max']})")
    fm = c.arr("alive", alive, U8) > 0
    c.arr("unreach", unreach, F64, at_least=n, out=True)
    c.arr("epw", epw, F64, at_least=4 * E * K, out=True)
    c.arr("agg", agg, F64, out=True)
    if not spray:
        c.arr("lw", lw, F64, at_least=2 * Lk, out=True)
    else:
        c.arr("lw", lw, F64, out=True)
        c.arr("agg", agg, F64, at_least=2 * (2 + F["slot_max"] + 1) * NL)
    if fm:
        c.arr("alive", alive, U8, n=Lk)
        c.arr("lclean", lclean, U8, at_least=N)
        if F["rank_max"] >= max(LP, 1):
            c.fail("ept rank column", f"values must be in [0, {max(LP, 1)}) (found up to {F['rank_max']})")
        c.arr("pair_ptr", pair_ptr, I64, at_least=NL * LP, out=True)
        c.arr("pair_cnt", pair_cnt, I64, at_least=NL * LP, out=True)
        c.arr("counts", counts, I64, at_least=2, out=True)
        pool_n = c.arr("pool", pool, I64, out=True)
        c.ints("pair_ptr", pair_ptr[:NL * LP], -1, max(pool_n, 1))
        if not 0 <= int(counts[1]) <= pool_n:
            c.fail("counts", f"[1] (pool entries used) must be in [0, {pool_n}]")
        c.ints("pair_cnt", pair_cnt[:NL * LP], 0, pool_n + 1)
        built = pair_ptr[:NL * LP] >= 0
        if (pair_ptr[:NL * LP][built] + pair_cnt[:NL * LP][built] > pool_n).any():
            c.fail("pair_cnt", f"rows must lie in pool ({pool_n} entries)")
        c.ints("pool", pool[:int(counts[1])], 0, Lk)
        if spray:
            c.arr("pmass", pmass, F64, at_least=2 * NL * LP, out=True)
        c.arr("defer", defer, I64, at_least=n, out=True)
    else:
        c.arr("lclean", lclean, U8)
        c.arr("counts", counts, I64, at_least=2, out=True)
    if c.arr("f_idx", f_idx, I64, out=True):
        c.arr("f_idx", f_idx, I64, at_least=n)
    if c.arr("path", path, I64, out=True):
        c.arr("path", path, I64, at_least=n * qps * H)
    c.arr("pmass", pmass, F64, out=True)
    c.arr("stats", stats, F64, at_least=5, out=True)


def _cross_facts(c, tb) -> dict:
    """The checks of a ClosTables as spray_cross reads it (once per sealed object). Its link ids
    are checked against the links of each call (the length of alive): their largest is kept."""
    up_ptr = tb.up_ptr
    N = up_ptr.shape[0] - 1 if isinstance(up_ptr, np.ndarray) and up_ptr.ndim == 1 else -1
    if N < 0:
        c.fail("up_ptr", "must have one entry per node plus one")
    _tables(c, N, 1 << 62, up_ptr, tb.up_lnk, tb.up_head, tb.sd_base, tb.sd_lnk, tb.xd_base, tb.xd_start,
            tb.xd_cnt, tb.xd_lnk, tb.xd_head)
    c.arr("pod", tb.pod, I64, n=N)
    c.arr("rank", tb.rank, I64, n=N)
    npods = c.arr("pod_b1", tb.pod_b1, I64)
    c.arr("pod_slot", tb.pod_slot, I64, n=npods)
    c.ints("pod", tb.pod, -1, npods)
    c.ints("pod_b1", tb.pod_b1, 0, max(tb.sd_lnk.shape[0], 1))
    rows = _super_rows(tb.xd_base, tb.xd_start.shape[0])
    if rows:
        c.ints("pod_slot", tb.pod_slot, 0, rows)
    lmax = max([int(a.max()) for a in (tb.up_lnk, tb.sd_lnk, tb.xd_lnk) if a.shape[0]], default=-1)
    return {"N": N, "lmax": lmax, "top": _tops(up_ptr, tb.sd_base[tb.up_head])}


def _check_spray_cross(c, F, g_ptr, g_dst, f_leaf, f_m, f_m2, pod, rank, pod_b1, pod_slot, up_ptr, up_lnk, up_head,
                       sd_base, sd_lnk, xd_base, xd_start, xd_cnt, xd_lnk, xd_head, alive, rstamp, rval, tstamp,
                       mass, mass2, touched, load, load2, f_ok):
    """One spray_cross call given the facts of its tables (_cross_facts): O(flows + nodes + links)."""
    nf = c.arr("f_leaf", f_leaf, I64)
    c.arr("g_ptr", g_ptr, I64)
    ng = g_ptr.shape[0] - 1
    if ng < 0:
        c.fail("g_ptr", "must have one entry per destination plus one")
    c.csr("g_ptr", g_ptr, ng, nf)
    c.arr("g_dst", g_dst, I64, at_least=ng)
    c.arr("f_m", f_m, F64, at_least=nf)
    c.arr("f_m2", f_m2, F64, at_least=nf)
    c.arr("f_ok", f_ok, U8, at_least=nf, out=True)
    Lk = c.arr("alive", alive, U8)
    c.arr("load", load, F64, n=Lk, out=True)
    c.arr("load2", load2, F64, n=Lk, out=True)
    N = F["N"]
    if F["lmax"] >= Lk:
        c.fail("up_lnk", f"and the down tables must name links in [0, {Lk}) (found up to {F['lmax']})")
    c.ints("f_leaf", f_leaf, 0, N)
    c.ints("g_dst", g_dst[:ng], 0, N)
    if ng and ((pod[g_dst[:ng]] < 0).any() or (rank[g_dst[:ng]] < 0).any()):
        c.fail("g_dst", "must name leaves (a pod and a rank)")
    D = g_dst[:ng]
    _down_rows_fit(c, "pod_b1 and rank", D, rank[D], pod_b1[pod[D]], F["top"], sd_lnk.shape[0])
    _work(c, N, rstamp=(rstamp, I64, -1), tstamp=(tstamp, I64, -1), mass=(mass, F64, 0.0), mass2=(mass2, F64, 0.0),
          touched=(touched, I64, None))
    c.arr("rval", rval, U8, at_least=N, out=True)


_CHECKS = {
    ("_routing", "bucket_flows"): _check_bucket_flows,
    ("_routing", "route_fluid"): _check_route_fluid,
    ("_routing", "route_hash"): _check_route_hash,
    ("_routing", "route_uniform"): _check_route_uniform,
    ("_routing", "bucket_links"): _check_bucket_links,
    ("_routing", "waterfill"): _check_waterfill,
    ("_routing", "maxmin_times"): _check_maxmin_times,
    ("_routing", "route_clos"): _check_route_clos,
    ("_routing", "spray_cross"): _check_spray_cross,
}


_FABRIC = (ks.FabricArrays, ks.FabricArrays.__slots__)
_LAYOUTS = {
    ("_routing", "route_fluid"): _Layout(_check_route_fluid, _fabric_facts, [
        _FABRIC,
        (ks.GroupedFlows, ("g_ptr", "g_rep", "g_id", "f_src", "f_dst", "f_sg", "f_mass", "f_mass2")),
        (ks.Work, ("dist", "hidx", "sigma", "den", "mass", "mass2", "order", "tstamp", "tlist", "A", "lh")),
        (ks.Loads, ("load", "load2", "grp_up", "grp_down", "unreach")),
        (ks.FluidOptions, ks.FluidOptions._fields)]),
    ("_routing", "route_uniform"): _Layout(_check_route_uniform, _fabric_facts, [
        _FABRIC,
        (ks.UniformGroups, ks.UniformGroups.__slots__),
        (ks.Loads, ("load", "grp_up", "grp_down")),
        (ks.UniformOptions, ks.UniformOptions._fields)]),
    ("_routing", "route_hash"): _Layout(_check_route_hash, _fabric_facts, [
        _FABRIC,
        (ks.GroupedFlows, ("g_ptr", "g_rep", "f_src", "f_dst", "f_id", "f_mass", "f_mass2")),
        (ks.Work, ("dist", "hidx", "sigma", "den", "order", "tstamp", "tlist", "nh_start", "nh_cnt", "nh_list",
                   "nh_head")),
        (ks.Loads, ("load", "load2", "unreach", "path")),
        (ks.HashOptions, ks.HashOptions._fields)]),
    ("_routing", "route_clos"): _Layout(_check_route_clos, _clos_facts, [
        (ks.ClosTables, ("ept", "pod_b1", "up_ptr", "uph", "sd_base", "sd_lnk", "xd_base", "xd_start", "xd_cnt",
                         "xd_lnk", "xd_head", "link_dst")),
        (ks.ClosDemands, ks.ClosDemands.__slots__),
        (ks.ClosWork, ks.ClosWork.__slots__),
        (ks.ClosOptions, ks.ClosOptions._fields)], result=lambda r: ks.ClosResult(*r)),
    ("_routing", "spray_cross"): _Layout(_check_spray_cross, _cross_facts, [
        (ks.ClosTables, ("pod", "rank", "pod_b1", "pod_slot", "up_ptr", "up_lnk", "up_head", "sd_base", "sd_lnk",
                         "xd_base", "xd_start", "xd_cnt", "xd_lnk", "xd_head")),
        (ks.CrossFlows, ks.CrossFlows.__slots__),
        (ks.CrossWork, ks.CrossWork.__slots__)]),
}
