"""Errors topo raises to its users, with the exit code the CLI gives each."""
from __future__ import annotations


class TopoError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""
    exit_code = 1


class SpecError(TopoError):
    """Input is wrong. ``errors`` is a list of (json_path, message)."""
    exit_code = 2

    def __init__(self, errors: list[tuple[str, str]], source: str = ""):
        self.errors = list(errors)
        self.source = source
        head = f"{source}: " if source else ""
        lines = [f"{head}{len(self.errors)} error(s) in input"] + [f"  {p}: {m}" for p, m in self.errors]
        super().__init__("\n".join(lines))


class SolverError(TopoError):
    """A solver found nothing usable within its limits (exit code 1)."""
    exit_code = 1
