"""One place for CP-SAT's run parameters (placement and link budget alike).

A run is repeatable when it uses one worker: its search is then a function of the model and the
seed, and it stops on CP-SAT's deterministic time (a count of work, calibrated to about a second
of a fast core) rather than on the wall clock, so a slower or busier machine stops at the same
point with the same answer. The wall clock is only a backstop at ``WALL_BACKSTOP`` times the
limit. With several workers CP-SAT races a portfolio of searches, which is faster but depends on
thread timing; the limit is then wall-clock seconds and the result may differ between runs.
"""
from __future__ import annotations

WALL_BACKSTOP = 10.0  # wall-clock seconds per second of limit, one worker only


def configure(solver, *, time_limit: float, seed: int, workers: int) -> None:
    """Set ``solver``'s limit, seed and workers the one way topo runs CP-SAT."""
    limit = max(float(time_limit), 0.01)
    p = solver.parameters
    p.random_seed = int(seed)
    p.num_workers = int(workers)
    p.log_search_progress = False
    if int(workers) == 1:
        p.max_deterministic_time = limit
        p.max_time_in_seconds = limit * WALL_BACKSTOP
    else:
        p.max_time_in_seconds = limit
