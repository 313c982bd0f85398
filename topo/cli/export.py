"""`topo export` and `topo report`: write exports and the report from a saved plan.

Thin: read the plan, rebuild its fabric, call :mod:`topo.io.exports` or
:mod:`topo.io.report`, print what was written. Nothing is solved again.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import click

from topo.cli.options import echo, force_option, json_option
from topo.cli.app import emit_json, handle_errors, main
from topo.core.errors import SpecError


@contextlib.contextmanager
def _rendering(path):
    """Past the plan's shape check (topo.io.plan.plan_shape_errors), a field deeper in a
    hand-edited plan can still be of a kind the renderers cannot use: say so as bad input
    (exit 2, nothing written: every writer stages its files) rather than with a traceback."""
    try:
        yield
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, ZeroDivisionError) as e:
        raise SpecError([("(plan)", f"cannot render from this plan ({type(e).__name__}: {e}); a field has a kind "
                                    f"topo optimize does not write. Re-create the plan with topo optimize; a plan it "
                                    f"wrote, unchanged, that fails here is a bug in topo")], str(path))


def load_plan_and_fabric(path, after: bool = True):
    """(typed plan, cluster, fabric) of a plan file; SpecError naming the bad key."""
    from topo.io.plan import read_plan
    _, plan = read_plan(path)  # its shape is checked there: cluster_file, placement, assignment lists
    cluster, fabric = plan_fabric(path, plan, after)
    return plan, cluster, fabric


def plan_fabric(path, plan, after: bool = True):
    """(cluster, fabric) of a typed plan read from ``path``, before or after its link budget; SpecError
    naming the bad key of the plan's cluster file or an endpoint id outside the fabric."""
    import numpy as np

    from topo.model.fabric import build
    from topo.io.plan import plan_cluster, plan_cluster_key
    try:
        cluster = plan_cluster(plan, after=after, base_dir=str(Path(path).parent))
    except SpecError as e:
        key = plan_cluster_key(plan, after)
        raise SpecError([(f"{key}.{p}" if not p.startswith("(") else key, m) for p, m in e.errors], str(path))
    fabric = build(cluster)
    for job, eps in plan.placement.assignment.items():
        arr = np.asarray(eps, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= fabric.n_endpoints):
            raise SpecError([(f"placement.assignment.{job}", f"endpoint ids must be 0..{fabric.n_endpoints - 1}")], str(path))
    return cluster, fabric


def _floats(opt: str, text):
    if text is None:
        return None
    try:
        return [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise SpecError([(opt, f"expected comma-separated numbers, found {text!r}")])


def _ints(opt: str, text):
    vals = _floats(opt, text)
    if vals is None:
        return None
    if any(v != int(v) or v < 1 for v in vals):
        raise SpecError([(opt, f"expected comma-separated positive integers, found {text!r}")])
    return [int(v) for v in vals]


@main.command("export")
@click.argument("plan", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", required=True,
              type=click.Choice(["slurm-yaml", "slurm-conf-tree", "slurm-conf-block", "slurm-jobs", "rank-map", "kueue", "volcano", "graphml",
                                 "astra-sim", "htsim", "linkloads-csv", "all"]),
              help="what to write (all = every format that applies)")
@click.option("-o", "--output", "out", type=click.Path(file_okay=False), default=None,
              help="directory to write into (default: exports/ beside the plan, as topo optimize lays it out)")
@force_option("overwrite existing files")
@click.option("--label-prefix", default=None, help="Kueue/node label key prefix for fabric levels "
              "(default fabric.topograph.run/tier-, giving tier-0 = leaf)")
@click.option("--domain-label", default=None, help="label key for the scale-up domain "
              "(default accelerator.topograph.run/domain; empty string: none)")
@click.option("--kueue-api", "api_version", default=None, help="apiVersion of the Kueue Topology: kueue.x-k8s.io/v1beta2 (default) "
              "or kueue.x-k8s.io/v1beta1, the versions Kueue serves")
@click.option("--nodes", type=click.Choice(["all", "placed"]), default="all",
              help="Slurm/Kueue: every declared node, or only nodes holding placed jobs")
@click.option("--block-sizes", default=None, help="Slurm block sizes in nodes, e.g. 18,36,72 (default [D, 2D, 4D, ...])")
@click.option("--astra-latency-ns", default=None, help="ASTRA-sim latency per dimension, comma-separated")
@click.option("--metrics", type=click.Choice(["after", "placed", "before"]), default="after",
              help="link loads: after the budget (default), placed (optimised placement, fabric as given) or before")
@json_option("print the written files as JSON")
@click.option("--fabric", "which_fabric", type=click.Choice(["back-end", "front-end"]), default="back-end",
              show_default=True, help="front-end: the plan's front-end fabric, as GraphML only (--format graphml), "
                                      "into exports/front-end/ by default")
@handle_errors
def export_cmd(plan, fmt, out, force, label_prefix, domain_label, api_version, nodes, block_sizes,
               astra_latency_ns, metrics, as_json, which_fabric):
    """Write scheduler and simulator files from a plan (no solving)."""
    from topo.io import exports as ex
    if which_fabric == "front-end":
        return _front_end_export(plan, fmt, out, force, as_json)
    opts = {"nodes": nodes, "which": metrics}
    if label_prefix is not None:
        opts["label_prefix"] = label_prefix
    if domain_label is not None:
        opts["domain_label"] = domain_label or None
    if api_version is not None:
        opts["api_version"] = api_version
    if block_sizes is not None:
        opts["block_sizes"] = _ints("--block-sizes", block_sizes)
    if astra_latency_ns is not None:
        opts["astra_latency_ns"] = _floats("--astra-latency-ns", astra_latency_ns)
    p, cluster, fabric = load_plan_and_fabric(plan)
    out_dir = Path(out) if out else Path(plan).parent / "exports"
    with _rendering(plan):
        written = ex.export(fmt, fabric, p, out_dir, cluster=cluster, force=force, **opts)
    if as_json:
        emit_json({"format": fmt, "directory": str(out_dir), "files": [str(w) for w in written]})
    else:
        for w in written:
            echo(str(w))


@main.command("report")
@click.argument("plan", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out", type=click.Path(file_okay=False), default=None,
              help="directory to write report.html, report.md and report-images/ into (default: the plan's directory)")
@force_option("overwrite an existing report")
@click.option("--pdf", is_flag=True, help="also write report.pdf, printed by headless Chromium (which must be installed)")
@handle_errors
def report_cmd(plan, out, force, pdf):
    """Render report.html and report.md from a plan (no solving)."""
    from topo.io.plan import read_plan
    from topo.io.report import write_report
    raw, typed_plan = read_plan(plan)
    # the checks export runs: both cluster files valid, every assignment id an endpoint
    plan_fabric(plan, typed_plan, after=False)
    plan_fabric(plan, typed_plan, after=True)
    out_dir = Path(out) if out else Path(plan).parent
    with _rendering(plan):
        written = write_report(raw, out_dir, force=force, pdf=pdf)   # the report reads the plan's dict
    for w in written:
        echo(str(w))


def _front_end_export(plan, fmt, out, force, as_json) -> None:
    """The plan's front-end fabric as GraphML. The other formats describe jobs, placements, scale-up domains
    or link loads of the back-end fabric and are refused for the front-end."""
    from topo.io import exports as ex
    from topo.model.frontend_build import for_fabric
    if fmt != "graphml":
        raise SpecError([("--format", f"the front-end fabric is exported as graphml only (found {fmt!r}): the other "
                                      f"formats describe jobs, placements or link loads of the back-end fabric")])
    p, cluster, _ = load_plan_and_fabric(plan)
    fc, front = for_fabric(cluster, "front-end")
    out_dir = Path(out) if out else Path(plan).parent / "exports" / "front-end"
    with _rendering(plan):
        written = ex.export(fmt, front, p, out_dir, cluster=fc, force=force)
    if as_json:
        emit_json({"format": fmt, "fabric": "front-end", "directory": str(out_dir), "files": [str(w) for w in written]})
    else:
        for w in written:
            echo(str(w))
