"""One place for CP-SAT's run parameters (placement and link budget alike).

A run is repeatable when it uses one worker: its search is then a function of the model and the
seed, and it stops on CP-SAT's deterministic time (a count of work, calibrated to about a second
of a fast core) rather than on the wall clock, so a slower or busier machine stops at the same
point with the same answer. The wall clock is only a backstop at ``WALL_BACKSTOP`` times the
limit. With several workers CP-SAT races a portfolio of searches, which is faster but depends on
thread timing; the limit is then wall-clock seconds and the result may differ between runs.
"""
from __future__ import annotations

import threading
import time

WALL_BACKSTOP = 10.0  # wall-clock seconds per second of limit, one worker only
# a search with several workers (wall-clock limit) given a stall limit also stops once its best
# solution has not improved for this share of its time limit, and at least STALL_MIN_S seconds
STALL_SHARE = 0.25
STALL_MIN_S = 2.0


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


def stall_seconds(time_limit: float) -> float:
    """How long a search with several workers may go without a better solution (see :class:`StallStop`)."""
    return max(STALL_MIN_S, STALL_SHARE * float(time_limit))


class StallStop:
    """Stop a CP-SAT search (a minimisation) once its best solution has not improved for ``stall_s`` seconds.

    For searches with several workers only, whose limit is already wall-clock seconds and whose
    result already depends on thread timing (see the module docstring); a one-worker search keeps
    its deterministic limit alone. The clock starts at the first solution (a model given a
    complete hint finds it at the end of presolve), so a presolve longer than ``stall_s`` is never
    cut short. Use as the solution callback of the solve and as a context manager around it::

        stop = StallStop(solver, 6.0)
        with stop:
            status = solve(solver, model, stop.callback)

    ``stop.fired`` tells whether it stopped the search, ``stop.best_at_s`` when (seconds after the
    start) the best solution was found."""

    def __init__(self, solver, stall_s: float):
        from ortools.sat.python import cp_model
        self.solver, self.stall_s = solver, float(stall_s)
        self.fired = False
        self.best_at_s: float | None = None
        self._t0 = self._last = None
        self._best = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._watch = threading.Thread(target=self._run, name="topo-cp-sat-stall", daemon=True)
        outer = self

        class _Callback(cp_model.CpSolverSolutionCallback):
            def on_solution_callback(self):   # CP-SAT calls it on each better solution
                outer._solution(self.ObjectiveValue())
        self.callback = _Callback()

    def _solution(self, objective: float) -> None:
        now = time.monotonic()
        with self._lock:
            if self._best is None or objective < self._best:
                self._best, self._last = objective, now
                self.best_at_s = now - self._t0

    def _run(self) -> None:
        while not self._done.wait(0.05):
            with self._lock:
                last = self._last
            if last is not None and time.monotonic() - last >= self.stall_s:
                self.fired = True
                self.solver.StopSearch()
                return

    def __enter__(self):
        self._t0 = time.monotonic()
        self._watch.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._watch.join()
        return False
