"""Option types shared by the commands: bounded, finite, refused by name (exit 2).

click reports a value outside a type's range as a usage error naming the
option, with exit code 2 and no traceback; these types add the bounds of
:mod:`topo.core.limits` and refuse NaN and infinities, which click's own ranges let
through.
"""
from __future__ import annotations

import math

import click

from topo.core import limits


class _Finite(click.ParamType):
    """A finite number in (lo, hi] (``open_lo``) or [lo, hi]."""
    name = "number"

    def __init__(self, lo: float, hi: float, open_lo: bool = False, unit: str = ""):
        self.lo, self.hi, self.open_lo, self.unit = lo, hi, open_lo, unit

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            x = value
        else:
            try:
                x = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(x):
            self.fail(f"must be a finite number (found {value!r})", param, ctx)
        low_ok = x > self.lo if self.open_lo else x >= self.lo
        if not low_ok or x > self.hi:
            rng = f"{'(' if self.open_lo else '['}{self.lo:g}, {self.hi:g}]"
            self.fail(f"must be in {rng}{self.unit} (found {value!r})", param, ctx)
        return x


SEED = click.IntRange(0, limits.MAX_SEED)
WORKERS = click.IntRange(1, limits.MAX_WORKERS)
TIME_LIMIT = _Finite(0.0, limits.MAX_TIME_LIMIT_S, open_lo=True, unit=" seconds")
POSITIVE_SECONDS = _Finite(0.0, 86400.0, open_lo=True, unit=" seconds")
SAMPLES = click.IntRange(1, 1_000_000)


def finite(lo: float, hi: float, open_lo: bool = False, unit: str = "") -> click.ParamType:
    """A finite-number option type in (lo, hi] or [lo, hi]."""
    return _Finite(lo, hi, open_lo, unit)


def echo(text="", err: bool = False) -> None:
    """Print composed text to the terminal with every name made safe (no ESC, no
    control or bidi character: :func:`topo.core.textsafe.terminal_safe_text`)."""
    from topo.core.textsafe import terminal_safe_text
    click.echo(terminal_safe_text(text), err=err)


class _NameList(click.ParamType):
    """A comma-separated list of names (``--fail 'leaf0->spine0,spine3'``): stripped, empties dropped."""
    name = "names"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        return [x.strip() for x in str(value).split(",") if x.strip()]


FAIL = _NameList()


def routing_choice() -> click.Choice:
    """The routing models, as the engine names them (one list: topo.routing.engine.MODELS)."""
    from topo.routing.engine import MODELS
    return click.Choice(list(MODELS))


def solver_options(fn=None, *, what: str = "solver"):
    """--time-limit, --seed and --workers, each defaulting to the cluster's goals (resolved by
    topo.model.spec.run_settings), declared once for every command that runs CP-SAT."""
    def apply(f):
        f = click.option("--workers", type=WORKERS, default=None,
                         help=f"{what} workers (default goals.workers); one worker and a seed repeat a run")(f)
        f = click.option("--seed", type=SEED, default=None, help=f"{what} seed (default goals.seed)")(f)
        f = click.option("--time-limit", type=TIME_LIMIT, default=None,
                         help=f"seconds per {what} (default goals.time_limit_s)")(f)
        return f
    return apply(fn) if fn is not None else apply


def json_option(help: str = "one JSON document on stdout"):
    return click.option("--json", "as_json", is_flag=True, help=help)


def force_option(help: str):
    return click.option("--force", is_flag=True, help=help)
