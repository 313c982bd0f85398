"""Interrupts, kills, concurrent runs and modes of `topo optimize -o out`.

The runs are real subprocesses. To stop one at a known stage, `_LAUNCHER`
runs `python -m topo` (through runpy) after wrapping one function so that it
touches a flag file and waits for a "go" file; the test sends the signal once
the flag exists, then creates "go". Only the test process is patched, never
topo itself. Stages:

* load   - before the cluster file is read (the output lock is held)
* solve  - right after a CP-SAT solve returns (inside CpSolver.Solve)
* render - after every solve, before anything is written
* write  - the new output directory is half-written
* swap   - inside the swap of old and new output directory
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import EXAMPLES

SMALL = EXAMPLES / "small.yaml"
FAST = ["--no-failures", "--time-limit", "2"]

_LAUNCHER = textwrap.dedent(r'''
    import os, runpy, sys, time
    stage, flag, go = os.environ["PAUSE_AT"], os.environ["PAUSE_FLAG"], os.environ["PAUSE_GO"]
    done = []

    def pause():
        if done:
            return
        done.append(1)
        open(flag, "w").close()
        deadline = time.monotonic() + 120
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.01)

    def wrap(owner, name, after=False):
        real = getattr(owner, name)

        def f(*a, **k):
            if not after:
                pause()
            r = real(*a, **k)
            if after:
                pause()
            return r
        setattr(owner, name, f)

    if stage == "load":
        import topo.model.spec
        wrap(topo.model.spec, "load")
    elif stage == "solve":
        from ortools.sat.python import cp_model
        wrap(cp_model.CpSolver, "Solve", after=True)
    elif stage == "render":
        import topo.pipeline
        wrap(topo.pipeline, "render_outputs")
    elif stage == "write":
        import topo.core.atomic
        wrap(topo.core.atomic.OutputDir, "write_text", after=True)
    elif stage == "swap":
        import topo.core.atomic
        if hasattr(topo.core.atomic, "_replace_dir"):
            wrap(topo.core.atomic, "_replace_dir")
        else:
            wrap(os, "rename")
    sys.argv = ["topo"] + sys.argv[1:]
    runpy.run_module("topo", run_name="__main__", alter_sys=True)
''')


def _child(umask=None):
    """A preexec_fn: SIGINT and SIGTERM at their defaults in the child, whatever this process
    inherited (a job started in the background of a non-interactive shell ignores SIGINT, and
    topo keeps a signal that was ignored when it started ignored, as nohup'd programs expect)."""
    def pre():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if umask is not None:
            os.umask(umask)
    return pre


@pytest.fixture(autouse=True)
def _default_signals():
    """This process too: Python's own SIGINT handler and SIGTERM's default for the in-process tests."""
    old = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGINT, old[0])
    signal.signal(signal.SIGTERM, old[1])


def topo(*args, cwd=None, umask=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "topo", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=_child(umask))


def litter(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def old_output(out: Path) -> None:
    out.mkdir(parents=True)
    (out / "OLD").write_text("old output\n")


class Paused:
    """A `topo optimize` subprocess stopped at ``stage`` (see the module docstring)."""

    def __init__(self, tmp: Path, stage: str, *args):
        self.flag, self.go = tmp / f"paused-{stage}", tmp / f"go-{stage}"
        env = dict(os.environ, PAUSE_AT=stage, PAUSE_FLAG=str(self.flag), PAUSE_GO=str(self.go))
        self.p = subprocess.Popen([sys.executable, "-c", _LAUNCHER, *map(str, args)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_child())

    def wait_paused(self):
        # the launcher either pauses (writes the flag) or runs to its end: either ends this loop
        while not self.flag.exists():
            if self.p.poll() is not None:
                out, err = self.p.communicate()
                pytest.fail(f"exited {self.p.returncode} before pausing:\n{err}")
            time.sleep(0.01)

    def release(self):
        self.go.touch()

    def finish(self):
        out, err = self.p.communicate(timeout=120)
        return self.p.returncode, out, err


def _assert_signalled(code, err, sig):
    want = {signal.SIGINT: 130, signal.SIGTERM: 143}[sig]
    assert code == want, f"exit {code}, stderr:\n{err}"
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("interrupted" if sig == signal.SIGINT else "terminated"), err


@pytest.mark.parametrize("stage", ["load", "solve", "render", "write", "swap"])
def test_signal_at_stage(tmp_path, stage):
    """SIGINT with --force over an existing out/, SIGTERM with no out/ yet: 130/143, one line,
    the old out/ (or, at the swap, the new one) or none, no temporary folder or lock left."""
    runs = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        d = tmp_path / sig.name
        d.mkdir()
        args = ["optimize", SMALL, "-o", d / "out", *FAST]
        if sig == signal.SIGINT:
            old_output(d / "out")
            args.append("--force")
        runs[sig] = (d, Paused(d, stage, *args))
    for sig, (d, run) in runs.items():
        run.wait_paused()
        run.p.send_signal(sig)
        run.release()
    for sig, (d, run) in runs.items():
        code, out, err = run.finish()
        _assert_signalled(code, err, sig)
        assert litter(d) == [], f"{sig.name}: left {litter(d)}"
        out_dir = d / "out"
        if stage == "swap":  # the signal waits for the swap: the new output, whole
            assert (out_dir / "plan.json").is_file() and (out_dir / "exports").is_dir()
            assert not (out_dir / "OLD").exists()
        elif sig == signal.SIGINT:
            assert sorted(p.name for p in out_dir.iterdir()) == ["OLD"]
            assert (out_dir / "OLD").read_text() == "old output\n"
        else:
            assert not out_dir.exists()


def test_concurrent_force_runs(tmp_path):
    """While one run holds out/, a second --force run on it fails at once: exit 2 naming -o;
    the first finishes; no lock file or temporary folder is left."""
    out = tmp_path / "out"
    old_output(out)
    first = Paused(tmp_path, "load", "optimize", SMALL, "-o", out, "--force", *FAST)
    first.wait_paused()
    second = topo("optimize", SMALL, "-o", out, "--force", *FAST)
    assert second.returncode == 2, second.stderr
    assert "-o" in second.stderr and "Traceback" not in second.stderr
    assert (out / "OLD").exists()  # the second run changed nothing
    first.release()
    code, _, err = first.finish()
    assert code == 0, err
    assert (out / "plan.json").is_file() and not (out / "OLD").exists()
    assert litter(tmp_path) == []


_KILL_BETWEEN_RENAMES = textwrap.dedent(r'''
    import os, signal, sys
    import topo.core.atomic as atomic
    target = sys.argv[1]
    atomic._exchange = lambda a, b: False  # the two-rename swap (as where renameat2 is missing)
    real = os.rename

    def rename(src, dst, *a, **k):
        if os.fspath(dst) == target:  # the second rename: new -> out
            os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *a, **k)
    os.rename = rename
    with atomic.OutputDir(target, force=True) as out:
        out.write_text("plan.json", "new\n")
''')


def test_kill9_between_renames_then_next_run_recovers(tmp_path):
    out = tmp_path / "out"
    old_output(out)
    r = subprocess.run([sys.executable, "-c", _KILL_BETWEEN_RENAMES, str(out)], capture_output=True, text=True,
                       timeout=60, preexec_fn=_child())
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert not out.exists()  # killed between the renames: old moved aside, new not yet in place
    assert any(n.startswith(".out.old-") for n in litter(tmp_path)), litter(tmp_path)
    # the next run puts the old output back (so without --force it refuses to replace it), cleans the rest
    r = topo("optimize", SMALL, "-o", out, *FAST)
    assert r.returncode == 2 and "-o" in r.stderr, r.stderr
    assert (out / "OLD").read_text() == "old output\n"
    assert litter(tmp_path) == []


def test_stale_stage_of_killed_export_is_cleaned(tmp_path):
    """StagedFiles: a staging area of a dead process is removed by the next run, and a
    sub-directory it had moved aside (killed between two renames) is put back."""
    from topo.core.atomic import StagedFiles
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".topo-stage-{dead.pid}-abc123"
    (stale / ".old-report-images").mkdir(parents=True)
    (stale / ".old-report-images" / "a.png").write_bytes(b"old")
    (stale / "report.md").write_text("half")
    with StagedFiles(tmp_path) as st:
        st.write_text("x.txt", "x")
    assert (tmp_path / "report-images" / "a.png").read_bytes() == b"old"
    assert litter(tmp_path) == []


def test_signal_during_staged_commit_lands_after_it(tmp_path, monkeypatch):
    """A SIGINT during StagedFiles.commit waits for the renames: all files new, none old."""
    from topo.core.atomic import StagedFiles
    for n in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / n).write_text("old")
    real = os.replace
    calls = []

    def replace(src, dst, *a, **k):
        r = real(src, dst, *a, **k)
        if not calls:
            os.kill(os.getpid(), signal.SIGINT)
        calls.append(dst)
        return r
    monkeypatch.setattr(os, "replace", replace)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        with StagedFiles(tmp_path, force=True) as st:
            for n in ("a.txt", "b.txt", "c.txt"):
                st.write_text(n, "new")
    assert [(tmp_path / n).read_text() for n in ("a.txt", "b.txt", "c.txt")] == ["new"] * 3
    assert litter(tmp_path) == []


def test_output_modes_follow_umask(tmp_path):
    procs = {}
    for mask in (0o022, 0o077):
        d = tmp_path / f"u{mask:03o}"
        d.mkdir()
        procs[mask] = (d, subprocess.Popen([sys.executable, "-m", "topo", "optimize", str(SMALL), "-o", str(d / "out"),
                                            *FAST], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                           preexec_fn=_child(mask)))
    for mask, (d, p) in procs.items():
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        out = d / "out"
        assert (out.stat().st_mode & 0o777) == 0o777 & ~mask
        assert ((out / "exports").stat().st_mode & 0o777) == 0o777 & ~mask
        assert ((out / "plan.json").stat().st_mode & 0o777) == 0o666 & ~mask
        assert litter(d) == []


def test_unsafe_targets_refused_before_work(tmp_path):
    """-o . / .. / a folder holding the cluster file: exit 2 naming -o, nothing touched."""
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "keep.txt").write_text("keep")
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(SMALL, inp / "small.yaml")
    for target, cluster in ((".", SMALL), ("..", SMALL), (str(inp), inp / "small.yaml")):
        r = topo("optimize", cluster, "-o", target, "--force", *FAST, cwd=work)
        assert r.returncode == 2, (target, r.stdout, r.stderr)
        assert "-o:" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert r.stdout == ""
    assert sorted(p.name for p in work.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]
    assert sorted(p.name for p in inp.iterdir()) == ["small.yaml"]
