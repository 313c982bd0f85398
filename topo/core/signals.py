"""SIGINT and SIGTERM as Python exceptions, also around OR-Tools' CP-SAT.

Owns how topo reacts to Ctrl-C and ``kill``: both become exceptions in the
main thread (``KeyboardInterrupt`` and :class:`Terminated`), so every
``finally`` and ``__exit__`` runs and :mod:`topo.core.atomic` can remove its
temporary files; the CLI turns them into exit codes 130 and 143.

Why this module exists: CP-SAT's ``Solve`` catches SIGINT itself while it runs
(SatParameters ``catch_sigint_signal``, true by default) and, when it returns,
puts the C-level SIGINT handler back to ``SIG_DFL``, behind Python's back:
``signal.getsignal`` still reports Python's handler, but the next Ctrl-C kills
the process at once (exit -2, no cleanup). A Ctrl-C during the solve was also
swallowed: the search just stopped early and the run went on. :func:`solve`
runs every CP-SAT solve with ``catch_sigint_signal`` off, in a helper thread
with SIGINT and SIGTERM blocked, so the signals reach the main thread, which
stops the search (``StopSearch``) and raises; afterwards it re-points the
C-level handlers at the Python ones in case anything reset them.

Tools:

* :func:`handled`: a context in which SIGINT raises ``KeyboardInterrupt`` and
  SIGTERM raises :class:`Terminated` (the CLI wraps every command in it).
* :func:`deferred`: hold both signals for a short critical section (renames,
  clean-up) and deliver them at its end.
* :func:`solve`: ``solver.Solve(model)`` that stays interruptible.
* :func:`exit_code`: 130 / 143 for the two exceptions.

Signal handlers can only be set from the main thread; elsewhere every tool
here degrades to doing nothing special.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, as ``KeyboardInterrupt`` is on SIGINT.

    A ``BaseException`` like ``KeyboardInterrupt``, so ``except Exception``
    blocks do not swallow it.
    """

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum


def exit_code(exc: BaseException) -> int:
    """The shell's 128 + signal number: 130 for KeyboardInterrupt, 143 for Terminated."""
    if isinstance(exc, Terminated):
        return 128 + int(exc.signum)
    return 128 + int(signal.SIGINT)


_owner_pid: int | None = None  # the process that installed the handlers (forked children are not it)


def _stop_children() -> None:
    """Terminate this process's multiprocessing children (process-pool workers).

    Otherwise a pool's ``with`` block waits, on the way out, for every task
    already handed to the workers (a signal sent to the parent alone does not
    reach them).
    """
    import sys
    if "multiprocessing" not in sys.modules:
        return
    import multiprocessing
    try:
        for p in multiprocessing.active_children():
            p.terminate()
    except Exception:  # never let the clean-up hide the signal
        pass


def _on_sigint(signum, frame):
    if os.getpid() == _owner_pid:
        _stop_children()
    raise KeyboardInterrupt


def _on_sigterm(signum, frame):
    if os.getpid() != _owner_pid:
        # a forked child (process pool) inherited the handler: die as SIGTERM says, as before
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _stop_children()
    raise Terminated(signum)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """SIGINT -> ``KeyboardInterrupt`` and SIGTERM -> :class:`Terminated` inside the block.

    Either first terminates the process's multiprocessing children (pool
    workers), so that leaving a pool does not wait for its queued tasks;
    forked children themselves keep the usual behaviour. A signal ignored
    when the block starts stays ignored. The previous handlers come back on
    exit.
    """
    global _owner_pid
    if not _main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in SIGNALS}
    prev_owner = _owner_pid
    _owner_pid = os.getpid()
    for s, h in ((signal.SIGINT, _on_sigint), (signal.SIGTERM, _on_sigterm)):
        if old[s] != signal.SIG_IGN:  # ignored by whoever started us (nohup, `cmd &` in a script): stays so
            signal.signal(s, h)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, signal.SIG_DFL if h is None else h)
        _owner_pid = prev_owner


def resync() -> None:
    """Re-install the Python-level handlers at the C level.

    Native code (OR-Tools) can change a C handler without Python knowing;
    setting the same handler again repairs that. Main thread only.
    """
    if not _main_thread():
        return
    for s in SIGNALS:
        h = signal.getsignal(s)
        if h is not None:
            signal.signal(s, h)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM during the block and deliver the first one after it.

    For short critical sections (a swap of two directories, removing a
    temporary one) that must not stop half-way. Nests. Outside the main
    thread it does nothing.
    """
    if not _main_thread():
        yield
        return
    got: list[int] = []

    def hold(signum, frame):
        got.append(signum)

    old = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, hold)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, signal.SIG_DFL if h is None else h)
        if got:
            s = got[0]
            h = old[s]
            if callable(h):
                h(s, None)  # raises KeyboardInterrupt / Terminated
            elif h == signal.SIG_DFL:
                signal.raise_signal(s)


def solve(solver, model, *args):
    """``solver.Solve(model, *args)``, interruptible, leaving the signal handlers as they were.

    In the main thread the solve runs in a helper thread (the GIL is released
    while CP-SAT searches) and the main thread waits; a signal raises there, the
    search is stopped with ``StopSearch`` and the exception propagates once the
    solver has returned. Parameters other than ``catch_sigint_signal`` are left
    alone, so results are the same as a direct call.
    """
    try:
        solver.parameters.catch_sigint_signal = False
    except (AttributeError, ValueError, TypeError):  # an OR-Tools without the parameter
        pass
    if not _main_thread():
        return solver.Solve(model, *args)
    box: dict = {}

    def run():
        try:
            # the signals go to the main thread, not to this one or CP-SAT's workers (they inherit the mask)
            if hasattr(signal, "pthread_sigmask"):
                signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
            box["status"] = solver.Solve(model, *args)
        except BaseException as e:  # re-raised in the main thread
            box["error"] = e

    t = threading.Thread(target=run, name="topo-cp-sat", daemon=True)
    try:
        t.start()
        while t.is_alive():
            t.join(0.25)
    except BaseException:
        with deferred():
            while t.is_alive():
                solver.StopSearch()  # repeated: a stop before the search has started is lost
                t.join(0.05)
        raise
    finally:
        resync()
    if "error" in box:
        raise box["error"]
    return box["status"]
