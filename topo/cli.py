"""The `topo` command line: parse, call the library, render, write.

Exit codes: 0 success, 2 bad input (names the JSON path), 1 a solver or run
found nothing usable. Messages go to stderr; `--json` output alone to stdout.
"""
from __future__ import annotations

import functools
import json
import sys

import click

from .errors import TopoError


def handle_errors(fn):
    """Turn topo errors into one clear message and an exit code, no traceback."""
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except TopoError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted; nothing half-written was left behind", err=True)
            sys.exit(130)
    return wrapper


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=_json_default))


def _json_default(o):
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


cluster_arg = click.argument("cluster", type=click.Path(dir_okay=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="topo")
def main():
    """topo: accelerator-cluster network-topology optimizer."""


@main.command()
@cluster_arg
@handle_errors
def validate(cluster):
    """Check a cluster file; print OK or every error with its JSON path."""
    from .spec import load
    from .fabric import build
    c = load(cluster)
    build(c)  # structural errors (radix too small ...) surface here too
    n = c.counts()
    click.echo(f"OK: {cluster}: {n['accelerators']:,} accelerators, {n['nodes']:,} nodes, {n['racks']:,} racks")


@main.command()
def schema():
    """Print the JSON Schema of the cluster file."""
    from .spec import json_schema
    emit_json(json_schema())


@main.command()
@cluster_arg
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
@handle_errors
def describe(cluster, as_json):
    """Show the fabric a cluster file implies, at full size."""
    from .spec import load
    from .fabric import build
    from .describe import describe as _describe
    from .render import describe_text
    c = load(cluster)
    d = _describe(build(c), c)
    if as_json:
        emit_json(d)
    else:
        click.echo(describe_text(d))
from . import cli_export  # noqa: E402,F401
from . import cli_place  # noqa: E402,F401
from . import cli_failures  # noqa: E402,F401
from . import cli_budget  # noqa: E402,F401
from . import cli_analyze  # noqa: E402,F401
