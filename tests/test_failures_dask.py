"""`topo failures --scheduler`: the routed single-failure classes on a Dask cluster equal the local run."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import EXAMPLES, no_crash
from topo.study import failures as F
from topo.model.spec import load


def _strip(d: dict) -> dict:
    d = dict(d)
    d.pop("seconds")
    return d


def test_dask_run_equals_local_run_library_and_cli():
    distributed = pytest.importorskip("distributed")
    from topo.cli.app import main
    from topo.study.executor import open_executor
    c = load(EXAMPLES / "small.yaml")
    local = F.analyze_failures(c, seed=3).to_dict()
    assert local["traffic"]["routed"] and len(local["single"]) > 4
    # two worker threads in one worker process: each rebuilds its own context (thread-local)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                  dashboard_address=None) as lc:
        with open_executor(scheduler=lc.scheduler_address) as ex:
            remote = F.analyze_failures(c, seed=3, executor=ex).to_dict()
        r = CliRunner().invoke(main, ["failures", str(EXAMPLES / "small.yaml"), "--seed", "3", "--json",
                                      "--scheduler", lc.scheduler_address])
    # every row, count and routing counter as the local run's
    assert _strip(remote) == _strip(local)
    assert r.exit_code == 0, r.output
    assert _strip(json.loads(r.output)) == _strip(json.loads(json.dumps(local)))


def test_a_fabric_the_file_does_not_build_is_refused_on_an_executor():
    import concurrent.futures as cf
    from topo.core.errors import SpecError
    from topo.model.fabric import build
    c = load(EXAMPLES / "small.yaml")
    d = c.file.model_dump(mode="json")
    d["fabric"]["tiers"][0]["bundle"] = 2 if d["fabric"]["tiers"][0].get("bundle") in (None, 1) else 1
    from topo.model.spec import from_dict
    other = build(from_dict(d, base_dir=c.base_dir))
    with cf.ThreadPoolExecutor(1) as ex, pytest.raises(SpecError) as ei:
        F.analyze_failures(c, other, executor=ex)
    assert "executor" in str(ei.value)


def test_bad_scheduler_address_is_refused_naming_the_flag():
    pytest.importorskip("distributed")
    from topo.cli.app import main
    r = CliRunner().invoke(main, ["failures", str(EXAMPLES / "small.yaml"), "--scheduler", "nonsense"])
    assert r.exit_code == 2 and "--scheduler" in r.output and no_crash(r)


def test_serving_deployments_on_an_executor_are_refused_not_dropped():
    """The workers rebuild the fabric and jobs, not the serving replicas: a run that would count the
    deployments is refused on an executor (naming it) rather than returning rows without them."""
    from concurrent.futures import ThreadPoolExecutor
    from topo.core.errors import SpecError
    c = load(EXAMPLES / "serving-disagg.yaml")
    with ThreadPoolExecutor(1) as ex:
        with pytest.raises(SpecError) as e:
            F.analyze_failures(c, seed=3, executor=ex)
    assert e.value.errors[0][0] == "executor"
