"""Placement against an exhaustive search on a few hundred generated tiny clusters.

The oracle below is written from the README's objective and constraints (not from
topo.solve.placement): whole servers, whole free scale-up domains for jobs whose TP is at
least the domain size, busy nodes, rack power, pins and forbids of racks and pods,
lexicographic priority penalties. Clusters have 2 or 3 pods (3-tier Clos), 1 to 4
nodes per rack, tight rack power and 1 to 4 jobs. On every instance topo's returned
placement passes the independent checker, its bound never exceeds the optimum, its
objective equals the optimum whenever it claims OPTIMAL, and it is never above the
objective its own monolithic CP-SAT stage proved optimal.
"""
from __future__ import annotations


import pytest

from topo.solve import placement as place_mod
from topo.model.fabric import build
from topo.solve.placement import place
from topo.solve.place_check import check
from topo.model.spec import from_dict

from helpers.place_oracle import oracle
from helpers.place_cases import generate

N_INSTANCES = 400
CHUNK = 25


def _run(seed):
    c = from_dict(generate(seed))
    f = build(c)
    r = place(c, f, time_limit=2, seed=0, workers=1)
    return c, f, r


def _disagreements(seeds, decomposed):
    bad = []
    for seed in seeds:
        c, f, r = _run(seed)
        best = oracle(c, f)
        v = check(c, f, r.assignment, r.unplaced, r.objective)
        stage = (r.solver.get("stages") or [{}])[0]
        why = []
        if v:
            why.append(f"check: {v[0]}")
        if r.bound is not None and r.bound > best:
            why.append(f"bound {r.bound} > optimum {best}")
        if r.objective < best:
            why.append(f"objective {r.objective} below the exhaustive optimum {best} (oracle or checker wrong)")
        if r.status == "OPTIMAL" and r.objective != best:
            why.append(f"OPTIMAL {r.objective} but the optimum is {best}")
        for name, reason in r.unplaced.items():
            if reason not in place_mod.REASONS:
                why.append(f"{name}: unknown reason {reason!r}")
        if not decomposed:
            # the job x cell model is exact: its proven optimum is the optimum, and what
            # topo returns is never worse (no job it placed dropped on the way to nodes)
            assert r.solver["mode"] == "monolithic"
            if stage.get("status") == "OPTIMAL":
                if stage["objective"] != best:
                    why.append(f"the stage proved {stage['objective']} but the optimum is {best}")
                if r.objective > stage["objective"]:
                    why.append(f"objective {r.objective} above the stage's proven {stage['objective']}"
                               f" (unplaced {dict(r.unplaced)}, {r.source}: {r.note})")
            if r.objective != best:
                why.append(f"objective {r.objective} != optimum {best} ({r.status})")
        if why:
            bad.append((seed, r.status, r.source, why))
    return bad


@pytest.mark.parametrize("chunk", range(N_INSTANCES // CHUNK))
def test_objective_is_the_exhaustive_optimum(chunk, monkeypatch):
    monkeypatch.setattr(place_mod, "SKIP_SOLVER_AT_BOUND", False)  # the solver itself, every time
    bad = _disagreements(range(chunk * CHUNK, (chunk + 1) * CHUNK), decomposed=False)
    assert not bad, bad


@pytest.mark.parametrize("chunk", range(4))
def test_decomposed_is_checked_bounded_and_never_falsely_optimal(chunk, monkeypatch):
    """The decomposition is a heuristic on these sizes; it must still be sound."""
    monkeypatch.setattr(place_mod, "SKIP_SOLVER_AT_BOUND", False)
    monkeypatch.setattr(place_mod, "MONOLITHIC_MAX_VARS", 0)
    bad = _disagreements(range(chunk * CHUNK, (chunk + 1) * CHUNK), decomposed=True)
    assert not bad, bad
