"""Routing benchmark: kernels against numpy's bincount floor and networkx, measured in one run.

1. `topo analyze examples/reference-131k.yaml` (the file's jobs, default routing) as a
   subprocess: wall time and peak resident memory.
2. The 131,072-accelerator reference with a job mix of >= 10M flows (one job over every
   accelerator: tp=8, pp=4, ep=64; DP ring all-reduce, EP all-to-all dispatch and combine in
   groups of 64, PP send/recv pairs): roce-hash and uec-spray routing time per flow-hop against
   numpy.bincount over the same number of random link updates, healthy and with 1% of the
   switch-to-switch links failed. After one call that prepares the fabric's arrays for the
   failure mask (and checks it for the structural kernels), routing and bincount are timed
   alternately, reps times each, and their medians compared: the machine is shared, and
   alternating exposes both to the same drift.
3. Uniform all-to-all, fluid: k=16 fat tree against networkx edge_betweenness_centrality_subset
   (loads compared), and the k=64 fat tree (65,536 hosts).
4. General graphs: uniform all-to-all, fluid, on Jellyfish-style random regular graphs (degree 8,
   4 hosts per switch; no symmetry to exploit) against python-igraph's subset edge betweenness
   (loads compared).
5. Two-core scaling of the parallel kernels: route_uniform (chunks of destination groups: the
   uniform all-to-all of 3. and 4.), route_fluid and route_hash (blocks of destination groups:
   16 random flows from every host of the largest Jellyfish graph, fluid, and roce-hash with 4
   queue pairs) on 1 and 2 threads
   (TOPO_THREADS), and route_clos (chunks of demands: 64 random flows from every host of a k=32
   fat tree, roce-hash with 4 queue pairs and paths, and uec-spray), timed alternately (a case below topo.routing.kernels.PARALLEL_WORK runs on
   one thread either way, and says so); speedup = wall(1) / wall(2), efficiency = speedup / 2,
   CPU seconds beside; the loads, bytes, unreachable flows and paths of both runs compared
   byte for byte. The 1-minute load
   average is printed beside the figures (the machine may be shared).

Prints a table, then (last line) one JSON object with every figure.
Run: python benchmarks/bench_routing.py [--reps 3] [--skip-nx] [--jellyfish-hosts 1024,8192]
     [--only-general] (sections 4 and 5 alone) [--skip-reference] (sections 3 to 5)
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def fat_tree(k: int, gbps=400.0):
    from topo.model.fabric import fabric_from_arrays
    h = k // 2
    E = k ** 3 // 4
    edge0, agg0 = E, E + k * h
    core0 = agg0 + k * h
    lo, hi = [np.arange(E)], [edge0 + np.arange(E) // h]
    p, e, a = np.meshgrid(np.arange(k), np.arange(h), np.arange(h), indexing="ij")
    lo.append((edge0 + p * h + e).ravel()), hi.append((agg0 + p * h + a).ravel())
    p, a, c = np.meshgrid(np.arange(k), np.arange(h), np.arange(h), indexing="ij")
    lo.append((agg0 + p * h + a).ravel()), hi.append((core0 + a * h + c).ravel())
    tier = np.concatenate([np.zeros(E), np.ones(k * h), np.full(k * h, 2), np.full(h * h, 3)]).astype(np.int8)
    return fabric_from_arrays(E, np.concatenate(lo), np.concatenate(hi), gbps, tier, family="fat_tree")


def jellyfish(hosts: int, degree: int = 8, per_switch: int = 4, seed: int = 0, gbps=400.0):
    """A Jellyfish-style fabric: a random regular graph of hosts / per_switch switches."""
    import networkx as nx
    from topo.model.fabric import fabric_from_arrays
    n_sw = hosts // per_switch
    G = nx.random_regular_graph(degree, n_sw, seed=seed)
    a = np.array([u for u, _ in G.edges()], np.int64)
    b = np.array([v for _, v in G.edges()], np.int64)
    ep = np.arange(hosts)
    tier = np.concatenate([np.zeros(hosts), np.ones(n_sw)]).astype(np.int8)
    return fabric_from_arrays(hosts, np.concatenate([ep, hosts + a]),
                              np.concatenate([hosts + ep // per_switch, hosts + b]), gbps, tier, family="custom")


def igraph_uniform(f):
    """(wall s, cpu s, per physical link: both directions' fluid load) from igraph's subset edge
    betweenness among the endpoints (each unordered pair once: x 2 for both directions)."""
    import igraph
    g = igraph.Graph(n=f.n_nodes, edges=np.stack([f.link_src[0::2], f.link_dst[0::2]], axis=1).tolist())
    eps = list(range(f.n_endpoints))
    t, c = time.perf_counter(), time.process_time()
    bc = np.asarray(g.edge_betweenness(directed=False, sources=eps, targets=eps))
    return time.perf_counter() - t, time.process_time() - c, 2.0 * bc


def scaling(fn, reps):
    """{threads: (median wall, median cpu)} of fn on 1 and 2 threads, timed alternately, and
    whether the two runs' results are the same bytes."""
    old = os.environ.get("TOPO_THREADS")
    res, got = {1: [], 2: []}, {}
    try:
        for t in (1, 2):            # warm: prepared arrays, twin classes, the thread pool
            os.environ["TOPO_THREADS"] = str(t)
            fn()
        for _ in range(reps):
            for t in (1, 2):
                os.environ["TOPO_THREADS"] = str(t)
                w, c, r = timed(fn, 1)
                res[t].append((w, c))
                got[t] = (r.link_gbps_load.tobytes(), r.link_bytes.tobytes(), r.flow_unreachable.tobytes(),
                          None if r.qp_path is None else r.qp_path.tobytes())
    finally:
        if old is None:
            os.environ.pop("TOPO_THREADS", None)
        else:
            os.environ["TOPO_THREADS"] = old
    med = {t: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for t, v in res.items()}
    return med, got[1] == got[2]


def general_and_scaling(out, rows, reps, hosts_list, k16=None):
    """Sections 4 and 5."""
    from topo.routing import engine as routing
    cases = []
    for hosts in hosts_list:
        f = jellyfish(hosts)
        w, c, r = timed(lambda: routing.uniform_loads(f, "fluid", 1.0), reps)
        ig_w, ig_c, ref = igraph_uniform(f)
        mine = r.link_gbps_load[0::2] + r.link_gbps_load[1::2]
        err = float(np.abs(mine - ref).max() / max(ref.max(), 1e-300))
        out[f"jellyfish_{hosts}"] = {"hosts": hosts, "switches": f.n_nodes - hosts, "seconds": w, "cpu_seconds": c,
                                     "igraph_seconds": ig_w, "igraph_cpu_seconds": ig_c, "speedup_wall": ig_w / w,
                                     "speedup_cpu": ig_c / c, "max_rel_diff": err}
        rows.append((f"uniform fluid Jellyfish {hosts:,} hosts vs igraph", f"{w * 1e3:.1f} ms (cpu {c * 1e3:.1f} ms)",
                     f"igraph {ig_w:.2f} s (cpu {ig_c:.2f} s)",
                     f"{ig_w / w:,.0f}x wall, {ig_c / c:,.0f}x cpu, loads equal to {err:.1e}"))
        cases.append((f"Jellyfish {hosts:,} hosts", f))
    if k16 is not None:
        cases.append(("k=16 fat tree", k16))
    from topo.routing.kernels import PARALLEL_WORK, symmetry_pays
    runs = []
    for label, f in cases:
        P = routing.prepare(f, None)
        ng, S = P.g_rep.shape[0], P.sw_adj.shape[0]
        classes = routing._twin_classes(f, P) if symmetry_pays(ng, S) else []
        nd = ng - sum(c.size - 1 for c in classes)
        runs.append((f"route_uniform: uniform fluid, {label}", float(nd) * (S + 1),
                     lambda f=f: routing.uniform_loads(f, "fluid", 1.0)))
    if hosts_list:
        f = cases[len(hosts_list) - 1][1]
        rng = np.random.default_rng(0)
        n = 16 * f.n_endpoints
        from topo.traffic.demand import Demands
        d = Demands(np.repeat(np.arange(f.n_endpoints), 16), rng.integers(0, f.n_endpoints, n), np.full(n, 1e9),
                    np.full(n, -1, np.int32), np.ones(n))
        P = routing.prepare(f, None)
        work = float(P.g_rep.shape[0]) * (P.sw_adj.shape[0] + 1)
        runs.append((f"route_fluid: {n:,} random flows, fluid, Jellyfish {f.n_endpoints:,} hosts", work,
                     lambda f=f, d=d: routing.route(f, d, "fluid")))
        runs.append((f"route_hash: {n:,} random flows x 4 QPs, roce-hash, Jellyfish {f.n_endpoints:,} hosts", work,
                     lambda f=f, d=d: routing.route(f, d, "roce-hash", qps=4, seed=1)))
    runs += clos_runs()
    for label, work, fn in runs:
        if work < PARALLEL_WORK:
            label += " [below PARALLEL_WORK: one thread in both runs]"
        load0 = os.getloadavg()[0]
        med, same = scaling(fn, max(reps, 3))
        sp = med[1][0] / med[2][0]
        out[f"scaling {label}"] = {"wall_1": med[1][0], "cpu_1": med[1][1], "wall_2": med[2][0],
                                   "cpu_2": med[2][1], "speedup": sp, "efficiency": sp / 2,
                                   "identical": same, "load_average_1min": [load0, os.getloadavg()[0]]}
        rows.append((f"1 vs 2 threads, {label}",
                     f"1 thread {med[1][0] * 1e3:.1f} ms (cpu {med[1][1] * 1e3:.1f}), "
                     f"2 threads {med[2][0] * 1e3:.1f} ms (cpu {med[2][1] * 1e3:.1f})",
                     f"speedup {sp:.2f}, efficiency {sp / 2:.2f}", "same bytes" if same else "RESULTS DIFFER",
                     f"load {load0:.1f}-{os.getloadavg()[0]:.1f}"))
    out["load_average_1min"] = os.getloadavg()[0]


def clos_runs(k=32, per_host=64):
    """Section 5's route_clos cases: per_host random flows from every host of a k-ary fat tree
    (the structural path), bytes at two ratios to the rates (the second weight carried),
    roce-hash with 4 queue pairs (paths recorded) and uec-spray; (label, work, fn) with work
    infinite (route_clos chunks by clos_chunks, whose count the label gives)."""
    from topo.routing import engine as routing
    from topo.traffic.demand import Demands
    from topo._routing import CLOS_SPRAY_QP, clos_chunks
    f = fat_tree(k)
    rng = np.random.default_rng(0)
    n = per_host * f.n_endpoints
    rate = rng.random(n) + 0.5
    d = Demands(np.repeat(np.arange(f.n_endpoints), per_host), rng.integers(0, f.n_endpoints, n),
                rate * np.where(np.arange(n) % 3 == 0, 2e9, 1e9), np.full(n, -1, np.int32), rate)
    plan = routing._plan(f, routing.prepare(f, None))
    runs = []
    for model, q in (("roce-hash", 4), ("uec-spray", 1)):
        buf = (2 * f.n_links if q > 1 else 2 * (2 + plan.n_slots) * plan.n_leaves) + 4 * f.n_endpoints * plan.K
        nb = clos_chunks(n, q if q > 1 else CLOS_SPRAY_QP, buf).shape[0] - 1
        runs.append((f"route_clos: {n:,} random flows{f' x {q} QPs' if q > 1 else ''}, {model}, k={k} fat tree "
                     f"({nb} chunks)", float("inf"),
                     lambda m=model, q=q: routing.route(f, d, m, qps=q, seed=1, record_paths=m == "roce-hash")))
    return runs


def timed(fn, reps):
    """Median wall seconds, median CPU seconds of this process, last result.

    The machine is shared: CPU time is what the code costs, wall time what a user waited.
    """
    ts, cs, out = [], [], None
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        cs.append(time.process_time() - c)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), statistics.median(cs), out


def bincount_run(n_updates: int, n_links: int, chunk: int = 8_000_000):
    """A function doing bincount scatter-adds of n_updates random link ids (in chunks)."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, n_links, min(chunk, n_updates))
    w = rng.random(ids.shape[0])
    full, rest = divmod(n_updates, ids.shape[0])

    def run():
        acc = np.zeros(n_links)
        for _ in range(full):
            acc += np.bincount(ids, weights=w, minlength=n_links)
        if rest:
            acc += np.bincount(ids[:rest], weights=w[:rest], minlength=n_links)
        return acc
    return run


def interleaved(fn, floor, reps):
    """Medians (wall, cpu) of fn and of floor, timed alternately (fn, floor, fn, floor, ...)
    so that drift in the shared machine's speed hits both alike; fn's last result."""
    a, b, out = [], [], None
    for _ in range(reps):
        w, c, out = timed(fn, 1)
        a.append((w, c))
        w, c, _ = timed(floor, 1)
        b.append((w, c))
    med = lambda xs, k: statistics.median(x[k] for x in xs)
    return (med(a, 0), med(a, 1)), (med(b, 0), med(b, 1)), out


def reference(out, rows, reps):
    """Sections 1 and 2 (the 131k reference)."""
    # 1. whole analyze of the reference, in a fresh process
    ref = ROOT / "examples" / "reference-131k.yaml"
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", "from topo.cli import main; main()", "analyze", str(ref), "--json"],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_gb = ch.ru_maxrss * 1024 / 1e9
    child_cpu = ch.ru_utime + ch.ru_stime
    ok = p.returncode == 0
    doc = json.loads(p.stdout) if ok else {}
    out["analyze_131k"] = {"seconds": wall, "cpu_seconds": child_cpu, "peak_rss_gb": peak_gb, "ok": ok, "flows": doc.get("flows"),
                           "routing": doc.get("routing"), "max_util": doc.get("max_util")}
    rows.append(("topo analyze reference-131k (one run)", f"wall {wall:.2f} s, cpu {child_cpu:.2f} s", f"peak RSS {peak_gb:.2f} GB",
                 "target < 30 s, < 4 GB"))
    if not ok:
        print(p.stderr[-2000:], file=sys.stderr)

    # 2. reference with a >= 10M-flow job mix
    import topo
    from topo.routing import engine as routing
    from topo.traffic import demand as traffic
    from topo.model.spec import from_dict, parse_text
    data = parse_text(ref.read_text(), ".yaml")
    data["jobs"] = [{"name": "mix", "accelerators": 131072, "tp": 8, "pp": 4, "ep": 64, "collectives": [
        {"op": "allreduce", "group": "dp", "bytes": "4GiB"},
        {"op": "alltoall", "group": "ep", "bytes": "1GiB"},
        {"op": "alltoall", "group": "ep", "bytes": "1GiB"},
        {"op": "sendrecv", "group": "pp", "bytes": "512MiB"}]}]
    c = from_dict(data, base_dir=str(ref.parent))
    f = topo.build(c)
    qps = c.file.transport.n_channels * c.file.transport.qps  # hashed (channel, QP) flows per connection
    d = traffic.job_demands(c, f)
    unit = traffic.Demands(d.src, d.dst, d.bytes, d.job, np.ones(d.n))
    del d
    out["mix"] = {"flows": unit.n, "qps": qps, "links": f.n_links}
    rng = np.random.default_rng(0)
    swl = np.flatnonzero((f.link_src >= f.n_endpoints) & (f.link_dst >= f.n_endpoints) & (np.arange(f.n_links) % 2 == 0))
    failed = rng.choice(swl, int(round(0.01 * swl.size)), replace=False)
    for label, fl in (("healthy", None), ("1% failed", failed)):
        for model in ("roce-hash", "uec-spray"):
            q = qps if model == "roce-hash" else 1
            routing._prepared.clear()
            run = functools.partial(routing.route, f, unit, model, failed_links=fl, qps=q, seed=1)
            r = run()  # warm: the prepared arrays of this failure mask
            flow_hops = int(round(r.link_gbps_load.sum())) * q  # unit mass: total load = sum of hops
            (secs, cpu), (bc, bc_cpu), r = interleaved(run, bincount_run(flow_hops, f.n_links), reps)
            key = f"{model} {label}"
            out[key] = {"seconds": secs, "cpu_seconds": cpu, "flow_hops": flow_hops,
                        "ns_per_flow_hop_cpu": cpu / flow_hops * 1e9,
                        "bincount_seconds": bc, "bincount_cpu_seconds": bc_cpu,
                        "ratio_to_bincount_cpu": cpu / bc_cpu, "ratio_to_bincount_wall": secs / bc,
                        "unreachable_fraction": r.unreachable_fraction}
            rows.append((f"{key}: {flow_hops / 1e6:.1f}M {'QP-' if q > 1 else ''}flow-hops",
                         f"cpu {cpu:.2f} s ({cpu / flow_hops * 1e9:.1f} ns/hop), wall {secs:.2f} s",
                         f"bincount cpu {bc_cpu:.2f} s, wall {bc:.2f} s",
                         f"ratio cpu {cpu / bc_cpu:.2f}, wall {secs / bc:.2f}"))
            del r
    out["peak_rss_gb_in_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-nx", action="store_true", help="skip the networkx comparison (tens of seconds)")
    ap.add_argument("--jellyfish-hosts", default="1024,8192",
                    help="hosts of the Jellyfish graphs of sections 4 and 5, comma-separated")
    ap.add_argument("--only-general", action="store_true", help="run sections 4 and 5 only")
    ap.add_argument("--skip-reference", action="store_true",
                    help="skip sections 1 and 2 (the 131k reference: analyze and the >= 10M-flow job mix)")
    args = ap.parse_args()
    reps = max(args.reps, 1)
    out: dict = {"machine_cpus": os.cpu_count()}
    rows = []
    hosts_list = [int(x) for x in args.jellyfish_hosts.split(",") if x.strip()]
    if args.only_general:
        general_and_scaling(out, rows, reps, hosts_list, fat_tree(16))
        _print(rows, reps, out)
        return

    from topo.routing import engine as routing
    if not args.skip_reference:
        reference(out, rows, reps)

    # 3. uniform all-to-all, fluid, on fat trees
    f16 = fat_tree(16)
    secs16, cpu16, r16 = timed(lambda: routing.uniform_loads(f16, "fluid", 1.0), max(reps, 5))
    out["fat_tree_k16"] = {"hosts": f16.n_endpoints, "seconds": secs16, "cpu_seconds": cpu16}
    if not args.skip_nx:
        import networkx as nx
        G = nx.Graph()
        for l in range(0, f16.n_links, 2):
            G.add_edge(int(f16.link_src[l]), int(f16.link_dst[l]), l=l)
        eps = list(range(f16.n_endpoints))
        t, c0 = time.perf_counter(), time.process_time()
        bcm = nx.edge_betweenness_centrality_subset(G, eps, eps, normalized=False)
        nx_s, nx_cpu = time.perf_counter() - t, time.process_time() - c0
        ref_l = np.zeros(f16.n_links // 2)
        for (u, v), x in bcm.items():
            ref_l[G[u][v]["l"] // 2] = x
        mine = r16.link_gbps_load[0::2] + r16.link_gbps_load[1::2]
        err = float(np.abs(mine - 2 * ref_l).max() / max(ref_l.max(), 1e-300))
        out["fat_tree_k16"].update({"networkx_seconds": nx_s, "networkx_cpu_seconds": nx_cpu,
                                    "speedup_wall": nx_s / secs16, "speedup_cpu": nx_cpu / cpu16, "max_rel_diff": err})
        rows.append(("uniform fluid k=16 fat tree vs networkx", f"{secs16 * 1e3:.1f} ms (cpu {cpu16 * 1e3:.1f} ms)",
                     f"networkx {nx_s:.1f} s (cpu {nx_cpu:.1f} s)",
                     f"{nx_s / secs16:,.0f}x wall, {nx_cpu / cpu16:,.0f}x cpu, loads equal to {err:.1e}"))
    f64 = fat_tree(64)
    secs64, cpu64, r64 = timed(lambda: routing.uniform_loads(f64, "fluid", 1.0), reps)
    out["fat_tree_k64"] = {"hosts": f64.n_endpoints, "seconds": secs64, "cpu_seconds": cpu64,
                           "max_util_per_pair_gbps_1": float(r64.utilization.max())}
    rows.append(("uniform fluid k=64 fat tree (65,536 hosts)", f"{secs64:.3f} s (cpu {cpu64:.3f} s)", "", "target < 1 s"))
    out["peak_rss_gb_in_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    general_and_scaling(out, rows, reps, hosts_list, f16)
    _print(rows, reps, out)


def _print(rows, reps, out):
    w = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{w}}  figures (median of {reps} unless noted)")
    for r in rows:
        print(f"{r[0]:<{w}}  " + "  ".join(x for x in r[1:] if x))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
