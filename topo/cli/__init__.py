"""The command line: one module per command group over the library (parse, call, render, write;
no logic of its own beyond exit codes). ``main`` is the `topo` entry point.

``app`` holds the group, the shared decorators and the core commands; each other module adds one
command group to it. Library code below this package raises errors about parameters; the CLI names
its flags.
"""
from topo.cli.app import main
from topo.cli import analyze, budget, design, export, failures, goodput, place, serve  # noqa: F401 (each registers its commands)

__all__ = ["main"]
