"""The stall stop of CP-SAT searches with several workers (topo.solve.cpsat.StallStop), and the
decomposed placement's job x pod model using it only then."""
from __future__ import annotations

import threading

import pytest

import topo.solve.placement as place_mod
from topo.model.fabric import build
from topo.model.spec import from_dict
from topo.solve.cpsat import STALL_MIN_S, STALL_SHARE, StallStop, stall_seconds
from topo.solve.place_check import check
from topo.solve.placement import place
from tests.helpers.place_cases import generate


class _Solver:
    """Stands in for a CpSolver: records StopSearch."""

    def __init__(self):
        self.stopped = threading.Event()

    def StopSearch(self):  # noqa: N802 (CP-SAT's name)
        self.stopped.set()


def test_stall_seconds_is_a_share_of_the_limit_with_a_floor():
    assert stall_seconds(100.0) == STALL_SHARE * 100.0
    assert stall_seconds(0.5) == STALL_MIN_S


def test_stops_once_the_best_solution_stops_improving():
    solver = _Solver()
    stop = StallStop(solver, 0.2)
    with stop:
        stop._solution(10.0)
        assert solver.stopped.wait(30.0)   # generous: only that it fires, not when
    assert stop.fired and stop.best_at_s is not None and stop.best_at_s >= 0.0


def test_worse_solutions_do_not_reset_the_clock():
    stop = StallStop(_Solver(), 0.2)
    with stop:
        stop._solution(10.0)
        first = stop._last
        stop._solution(12.0)
        assert stop._last == first and stop._best == 10.0
        stop._solution(9.0)
        assert stop._best == 9.0


def test_never_fires_before_a_first_solution():
    solver = _Solver()
    stop = StallStop(solver, 0.05)
    with stop:
        assert not solver.stopped.wait(0.5)   # ten stall periods without a solution: a long presolve is not cut
    assert not stop.fired and stop.best_at_s is None


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("seed", [1, 5])
def test_pod_model_uses_it_with_several_workers_only(seed, workers, monkeypatch):
    monkeypatch.setattr(place_mod, "MONOLITHIC_MAX_VARS", 0)
    monkeypatch.setattr(place_mod, "SKIP_SOLVER_AT_BOUND", False)
    c = from_dict(generate(seed))
    f = build(c)
    r = place(c, f, time_limit=5, seed=0, workers=workers)
    assert r.solver["mode"] == "decomposed"
    assert check(c, f, r.assignment, r.unplaced, r.objective) == []
    pod = r.solver["stages"][0]
    assert pod["model"] == "job x pod"
    if workers == 1:
        assert "stall_stop" not in pod     # deterministic limit alone: repeatable
    else:
        st = pod["stall_stop"]
        # the pod model's limit is 0.4 of what is left of the 5 s when it starts
        assert STALL_MIN_S <= st["stall_s"] <= stall_seconds(0.4 * 5)
        assert isinstance(st["stopped"], bool)
