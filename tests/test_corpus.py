"""The hostile-input corpus: 10,000 mutated cluster files, plans, custom graphs and CSVs.

Every case must either be accepted or refused with a SpecError (the CLI's exit
2) whose message names a field: no other exception (a traceback at the CLI),
in bounded memory (the run's address space is capped, so an input that makes
topo allocate without bound fails as MemoryError) and bounded time (a case that
runs past its guard fails). How long the slowest case took is printed, not
asserted. A sample also goes through the CLI to check exit 2 and no traceback.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import no_crash

HERE = Path(__file__).resolve().parent
N_CASES = 10_000

RUNNER = textwrap.dedent(r"""
    import json, resource, signal, sys, time, traceback
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    import corpus
    from topo.core.errors import SpecError
    from topo.io.plan import load_plan
    from topo.model.spec import load
    from topo.validate import validate

    class Guard(Exception):
        pass

    def alarm(*_):
        raise Guard("a case ran past its 20 s guard")

    signal.signal(signal.SIGALRM, alarm)
    work = Path(sys.argv[2])
    bases = corpus._base_clusters()
    (work / "custom.yaml").write_text(json.dumps(bases[3]))
    (work / "matrix.yaml").write_text(json.dumps(bases[4]))
    stats = {"accepted": 0, "refused": 0, "bad": [], "slowest_s": 0.0, "slowest": None, "kinds": {}}
    for i, (kind, name, data) in enumerate(corpus.cases(int(sys.argv[3]))):
        stats["kinds"][kind] = stats["kinds"].get(kind, 0) + 1
        path = work / name
        path.write_bytes(data)
        if kind == "graph":
            target = work / "custom.yaml"
        elif kind == "matrix":
            target = work / "matrix.yaml"
        else:
            target = path
        t = time.perf_counter()
        signal.alarm(20)
        try:
            if kind == "plan":
                load_plan(target)
            else:
                validate(load(target))
            stats["accepted"] += 1
        except SpecError as e:
            msg = str(e)
            lines = msg.splitlines()
            ok = len(lines) >= 2 and all(re.match(r"^  \S.*?: .+", ln) for ln in lines[1:])
            if not ok:
                stats["bad"].append([i, kind, "SpecError without a path: " + msg[:300]])
            else:
                stats["refused"] += 1
        except BaseException as e:
            stats["bad"].append([i, kind, "".join(traceback.format_exception_only(type(e), e))[:300]])
        finally:
            signal.alarm(0)
        dt = time.perf_counter() - t
        if dt > stats["slowest_s"]:
            stats["slowest_s"], stats["slowest"] = dt, [i, kind]
    stats["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(stats))
""").replace("import json, resource", "import json, re, resource")


def test_hostile_corpus_is_accepted_or_refused_with_a_path(tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run([sys.executable, str(script), str(HERE), str(work), str(N_CASES)],
                       capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    assert r.returncode == 0, r.stderr[-3000:]
    stats = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"corpus: {N_CASES} cases {stats['kinds']}, {stats['accepted']} accepted, {stats['refused']} refused; "
          f"slowest {stats['slowest_s']:.2f} s ({stats['slowest']}); peak RSS {stats['peak_rss_mib']:.0f} MiB")
    assert not stats["bad"], "\n".join(map(str, stats["bad"][:20]))
    assert stats["accepted"] > 100 and stats["refused"] > 1000  # the corpus exercises both outcomes


@pytest.mark.parametrize("seed", [3])
def test_cli_sample_exits_2_without_traceback(tmp_path, seed):
    from click.testing import CliRunner
    import corpus
    from topo.cli.app import main
    runner = CliRunner()
    n_refused = 0
    for i, (kind, name, data) in enumerate(corpus.cases(150, seed=seed)):
        if kind != "cluster":
            continue
        p = tmp_path / name
        p.write_bytes(data)
        res = runner.invoke(main, ["validate", str(p)])
        out = res.output
        assert no_crash(res) and res.exit_code in (0, 2), (i, res.exit_code, out[-2000:], res.exc_info)
        if res.exit_code == 2:
            n_refused += 1
            assert re.search(r"^  \S.*?: ", out, re.M), out
    assert n_refused > 10
