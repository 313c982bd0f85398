"""Results of `topo analyze` of one checkout against those of another: the summary JSON, the
per-link loads and the per-job times, and the collective times (topo.routing.collectives, as the
reroute stage computes them), on small, dgx-superpod-h100, helios-mi450-uec and (with
``--bench-jobs N``) the 131,072-accelerator bench cluster of bench_optimize.py with its first N jobs.

Each cluster is analysed as `topo analyze` does it (the file's transport model, with the
RoCE-vs-UEC comparison) and under fluid, in the jobs' in-order placement. ``--save FILE``
writes the results; ``--against FILE`` compares with a saved file and prints, per cluster
and model, whether the loads are byte-identical and the largest relative difference of any
number in the summary (the roce-hash max-min times are water-filled in runs of identical
queue pairs, so they may differ in the last bits). Exit code 1 when a load differs or a
number differs by more than ``--rtol``.

    python benchmarks/compare_results.py [--checkout DIR] [--bench-jobs N] --save before.pkl
    python benchmarks/compare_results.py [--checkout DIR] [--bench-jobs N] --against before.pkl
"""
from __future__ import annotations

import argparse
import math
import pickle
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = ("small.yaml", "dgx-superpod-h100.yaml", "helios-mi450-uec.yaml")


def results(root: Path, bench_jobs: int | None) -> dict:
    """{(cluster, model): (summary, loads)} from the topo of checkout ``root``."""
    sys.path.insert(0, str(root))
    sys.path.insert(0, str(HERE))
    import numpy as np
    from topo.model.fabric import build
    from topo.model.spec import from_dict, load
    from topo.routing.engine import analyze
    clusters = [(name, load(root / "examples" / name)) for name in EXAMPLES]
    if bench_jobs:
        from bench_place import make_cluster
        c, _, _ = make_cluster(1)
        data = c.file.model_dump(mode="json")
        data["jobs"] = data["jobs"][:bench_jobs]
        clusters.append((f"bench-131k-{bench_jobs}-jobs", from_dict(data)))
    from topo.core.jsonable import to_jsonable
    from topo.routing.collectives import collective_times, size_range
    out = {}
    for name, c in clusters:
        f = build(c)
        for model in (None, "fluid"):
            a = analyze(c, f, routing=model, all_to_all=model is None)
            out[(name, model or "file")] = (a.to_dict(), np.asarray(a.loads, np.float64).copy())
            print(f"{name} {model or 'file'}: {a.to_dict()['routing']}", file=sys.stderr)
        # the collective times (alpha-beta per algorithm, with the size curve) as the reroute stage computes them
        ct = to_jsonable(collective_times(c, f, seed=1, sizes=size_range("1KiB..16GiB")))
        out[(name, "colls")] = (ct, np.zeros(0))
        print(f"{name} collective times: {ct['routing']}", file=sys.stderr)
    return out


def _diff(x, y, path, worst: list) -> list:
    """Paths where x and y differ in structure or in a non-float value; the largest float difference into worst."""
    bad = []
    if isinstance(x, dict) and isinstance(y, dict):
        if x.keys() != y.keys():
            return [f"{path}: keys differ"]
        for k in x:
            bad += _diff(x[k], y[k], f"{path}.{k}", worst)
    elif isinstance(x, list) and isinstance(y, list):
        if len(x) != len(y):
            return [f"{path}: lengths {len(x)} and {len(y)}"]
        for i, (u, v) in enumerate(zip(x, y)):
            bad += _diff(u, v, f"{path}[{i}]", worst)
    elif isinstance(x, float) and isinstance(y, float):
        if x != y and not (math.isnan(x) and math.isnan(y)):
            r = abs(x - y) / max(abs(x), abs(y))
            if r > worst[0]:
                worst[0], worst[1] = r, path
    elif x != y:
        bad.append(f"{path}: {x!r} != {y!r}")
    return bad


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkout", type=Path, default=HERE.parent, help="the checkout whose topo runs")
    ap.add_argument("--bench-jobs", type=int, default=None, help="also the 131k bench cluster with its first N jobs")
    ap.add_argument("--save", type=Path)
    ap.add_argument("--against", type=Path)
    ap.add_argument("--rtol", type=float, default=1e-12)
    a = ap.parse_args(argv)
    if not a.save and not a.against:
        ap.error("give --save FILE or --against FILE")
    now = results(a.checkout.resolve(), a.bench_jobs)
    if a.save:
        a.save.write_bytes(pickle.dumps(now))
    if not a.against:
        return 0
    import numpy as np
    before = pickle.loads(a.against.read_bytes())
    failed = False
    for key in sorted(set(before) | set(now), key=str):
        if key not in before or key not in now:
            print(f"{key}: only in one of the two")
            failed = True
            continue
        (s0, l0), (s1, l1) = before[key], now[key]
        worst = [0.0, None]
        bad = _diff(s0, s1, "", worst)
        same_loads = l0.shape == l1.shape and np.array_equal(l0, l1)
        ok = not bad and same_loads and worst[0] <= a.rtol
        failed |= not ok
        print(f"{key[0]:<28} {key[1]:<6} loads {'identical' if same_loads else 'DIFFER'}; "
              f"summary {'identical' if not bad and worst[0] == 0 else 'numbers within %.1e' % worst[0]}"
              f"{' (largest at ' + worst[1] + ')' if worst[1] else ''}{'; ' + '; '.join(bad[:3]) if bad else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
