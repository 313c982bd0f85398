"""Where independent tasks run: a local process pool or a Dask cluster.

Owns one small interface, :func:`open_executor`, that yields a
``concurrent.futures.Executor``: a ``ProcessPoolExecutor`` by default, or the
executor of a ``distributed.Client`` connected to an existing Dask scheduler
(``Client.get_executor()``) when an address is given. Callers submit plain
picklable functions with small arguments and collect futures with
:func:`as_completed`; nothing else here knows about clusters. There is no
home-made cluster code: scheduling, retries and data movement belong to the
process pool or to Dask.

``dask[distributed]`` is optional (``pip install topo[dask]``) and imported
only when a scheduler address is given.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import re
from typing import Iterator, Optional

from topo.core.errors import SpecError

DEFAULT_CONNECT_TIMEOUT_S = 10.0
_ADDR = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://[^\s/]+(:\d+)?/?$")


def as_completed(futures):
    """Futures in completion order (works for both executors)."""
    return cf.as_completed(futures)


def default_workers() -> int:
    return max(os.cpu_count() or 1, 1)


def n_workers(ex: cf.Executor) -> int:
    """How many tasks the executor runs at once (local processes, or Dask worker threads)."""
    n = getattr(ex, "_max_workers", None)
    if n:
        return int(n)
    client = getattr(ex, "_client", None)
    if client is not None:
        try:
            return max(sum(client.nthreads().values()), 1)
        except Exception:  # scheduler gone: the first submit will say so
            return 1
    return 1


@contextlib.contextmanager
def open_executor(workers: Optional[int] = None, scheduler: Optional[str] = None,
                  connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
                  option: str = "--scheduler") -> Iterator[cf.Executor]:
    """Yield an executor and shut it down on exit.

    Parameters
    ----------
    workers : local worker processes (default: CPU count). Ignored with a
        scheduler, whose workers are whatever the Dask cluster has.
    scheduler : ``tcp://host:port`` of a running Dask scheduler, or None for
        the local pool.
    connect_timeout_s : how long to wait for the scheduler. A scheduler that
        does not answer raises :class:`SpecError` naming ``option`` within
        about this time; nothing hangs.
    """
    if workers is not None and workers < 1:
        raise SpecError([("workers", f"must be at least 1 (found {workers})")])
    if scheduler is None:
        with cf.ProcessPoolExecutor(max_workers=workers or default_workers()) as ex:
            yield ex
        return
    if not _ADDR.match(scheduler):
        raise SpecError([(option, f"expected a scheduler address like tcp://host:8786, found {scheduler!r}")])
    try:
        import distributed
    except ImportError:
        raise SpecError([(option, "running on a Dask cluster needs dask[distributed]; install it with "
                                  "`pip install topo[dask]` or run without --scheduler for a local process pool")])
    _probe(scheduler, connect_timeout_s, option)
    try:
        client = distributed.Client(scheduler, timeout=connect_timeout_s, set_as_default=False)
    except Exception as e:  # connection refused, timeout, or not a Dask scheduler
        raise SpecError([(option, f"no Dask scheduler answered at {scheduler} within {connect_timeout_s:g} s "
                                  f"({type(e).__name__}: {e})")])
    try:
        with client.get_executor(pure=False) as ex:
            yield ex
    finally:
        client.close()


def _probe(address: str, timeout_s: float, option: str) -> None:
    """Open and close one Dask comm (with its handshake) before creating a Client.

    A refused connection, a silent host, or a server that is not a Dask
    scheduler fails here with a clear message, without leaving a half-built
    Client behind.
    """
    import asyncio
    from distributed.comm import connect

    async def go():
        comm = await connect(address, timeout=timeout_s)
        await comm.close()

    try:
        asyncio.run(asyncio.wait_for(go(), timeout_s + 1.0))
    except Exception as e:
        what = ("answered but is not a Dask scheduler" if isinstance(e, (MemoryError, ValueError, TypeError))
                else f"did not answer within {timeout_s:g} s")
        raise SpecError([(option, f"{address} {what} ({type(e).__name__}: {str(e)[:200]})")])
