"""How soon `topo sweep --scheduler` fails when no scheduler answers.

A sweep pointed at a Dask scheduler that does not answer must fail with a clear
message within about its connect timeout, not hang. This times that refusal for
a few timeouts (a closed port on loopback) and prints seconds and the ratio to
the timeout asked for.

    python benchmarks/bench_sweep_connect.py

Prints a table and, as the last line, one JSON object with the figures.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from topo.core.errors import SpecError
from topo.study.sweep import run_sweep

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        sys.exit("needs topo[dask]")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        sw = Path(d) / "s.yaml"
        sw.write_text(yaml.safe_dump({"version": 1, "name": "t", "base": str(ROOT / "examples" / "small.yaml"),
                                      "seed": 3, "grid": {"oversubscription": [1, 2]}, "failures": ["none"]}))
        for timeout in (0.5, 1.0, 2.0, 5.0):
            t0 = time.perf_counter()
            try:
                run_sweep(sw, Path(d) / "o", scheduler="tcp://127.0.0.1:9", connect_timeout_s=timeout)
                msg = "no error"
            except SpecError as e:
                msg = "refused" if "--scheduler" in str(e) else f"other error: {e}"
            dt = time.perf_counter() - t0
            rows.append({"timeout_s": timeout, "seconds": round(dt, 3), "ratio": round(dt / timeout, 2), "result": msg})
            print(f"timeout {timeout:4.1f} s: {msg} after {dt:6.2f} s ({dt / timeout:.2f}x)")
    print(json.dumps({"sweep_connect": rows}))


if __name__ == "__main__":
    main()
