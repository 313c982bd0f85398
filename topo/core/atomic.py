"""Atomic output: files and directories appear whole or not at all.

Owns how topo puts results on disk. Everything is first written under a
temporary name in the target's own directory (same filesystem, so the final
rename is atomic) and renamed into place at the end. An exception, Ctrl-C
(SIGINT) or SIGTERM before that leaves the old output as it was and removes
the temporary files; the renames themselves run with both signals held
(:func:`topo.core.signals.deferred`), so a signal never stops a swap half-way.

Three tools:

* :func:`write_text_atomic` / :func:`write_bytes_atomic`: one file.
* :class:`StagedFiles`: several files into an existing directory (``topo
  export``, ``topo report``); refuses to replace an existing file unless
  ``force``; all files are staged first and renamed at the end.
* :class:`OutputDir`: a whole output directory (``topo optimize -o out/``);
  refuses an existing non-empty directory unless ``force``; the new directory
  replaces the old one in one swap.

Names beside a target ``out`` (all hidden):

* ``.out.tmp-<pid>-<random>``: the new directory while it is written.
* ``.out.old-<pid>-<random>``: the old one for an instant during a swap
  (only where the atomic exchange ``renameat2(RENAME_EXCHANGE)`` is missing).
* ``.out.lock``: an ``flock`` held by the run that writes ``out``
  (:func:`output_lock`); a second run fails at once with a :class:`SpecError`
  naming ``-o``. The file is removed on release; one left by a killed process
  is not locked and is simply reused.

A process killed with SIGKILL cannot clean up. The next run on the same
target, holding the lock, removes the temporaries whose process is gone and,
if ``out`` itself is missing (killed between the two renames of a swap),
renames the old one back. :class:`StagedFiles` names its area
``.topo-stage-<pid>-<random>`` and treats stale ones the same way.

Directories and files get the modes any command would create under the
current umask, not ``mkdtemp``'s 0700 / ``mkstemp``'s 0600.

It must not decide what is written, only how.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Iterator, Union

from topo.core.errors import SpecError
from topo.core.signals import deferred

PathLike = Union[str, os.PathLike]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    m = os.umask(0o022)
    os.umask(m)
    return m


def _pid_alive(pid: int) -> bool:
    """True unless process ``pid`` surely does not exist (a zombie counts as alive)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's process
        return True
    return True


# --- swapping a directory into place ----------------------------------------------------------
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_renameat2 = None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange paths ``a`` and ``b`` (Linux ``renameat2``); False where unsupported."""
    global _renameat2
    if not sys.platform.startswith("linux"):
        return False
    if _renameat2 is None:
        try:
            f = ctypes.CDLL(None, use_errno=True).renameat2
            f.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            f.restype = ctypes.c_int
            _renameat2 = f
        except (OSError, AttributeError):  # glibc < 2.28, musl ...
            _renameat2 = False
    if not _renameat2:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False  # the filesystem cannot exchange: fall back to two renames
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _replace_dir(new: Path, target: Path, old: Path) -> Path | None:
    """Put directory ``new`` at ``target``; return where the old ``target`` now is (to delete), or None.

    With ``renameat2(RENAME_EXCHANGE)`` the two swap in one step and the old
    content ends up at ``new``. Otherwise ``target`` is renamed to ``old`` and
    ``new`` to ``target``: a process killed between the two leaves ``old``,
    which the next run puts back (:func:`_recover`). Call with signals held.
    """
    if not os.path.lexists(target):
        os.rename(new, target)
        return None
    if _exchange(new, target):
        return new
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    return old


def write_bytes_atomic(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    The parent directory must exist. Readers see either the old file or the
    complete new one, never a partial file. A new file gets the umask's mode,
    a replaced one keeps its mode.
    """
    p = Path(path)
    try:
        mode = stat.S_IMODE(os.stat(p).st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    tmp = None
    try:
        with deferred():
            fd, tmp = tempfile.mkstemp(dir=str(p.parent), prefix=f".{p.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        if tmp is not None:
            with deferred():
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        raise
    _fsync_dir(p.parent)
    return p


def write_text_atomic(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Text version of :func:`write_bytes_atomic` (UTF-8, newlines kept as given)."""
    return write_bytes_atomic(path, text.encode(encoding))


# --- which targets may be written ------------------------------------------------------------
def _is_nonempty_dir(p: Path) -> bool:
    try:
        return p.is_dir() and any(p.iterdir())
    except OSError:
        return True


def _refuse_unsafe(p: Path, option: str, protect: Iterable[PathLike]) -> None:
    """SpecError when replacing ``p`` would remove the working directory, one of its
    parents, the root, or a ``protect`` path (the input file)."""
    why = None
    if p.name == "..":
        why = "is not a directory of its own (it names a parent directory)"
    else:
        r = p.resolve()
        try:
            cwd = Path.cwd().resolve()
        except OSError:
            cwd = None
        if r == r.parent:
            why = "is the root directory"
        elif cwd is not None and (r == cwd or r in cwd.parents):
            why = "is the current directory or one of its parents"
        else:
            for q in protect:
                qr = Path(q).resolve()
                if r == qr or r in qr.parents:
                    why = f"contains the input {q}"
                    break
    if why:
        raise SpecError([(option, f"{str(p) or '.'} {why}; replacing it would delete it, "
                                  f"so choose a new directory for the outputs (e.g. {option} out)")])


def check_output_dir(path: PathLike, force: bool, option: str = "-o", protect: Iterable[PathLike] = ()) -> Path:
    """Raise :class:`SpecError` when ``path`` may not be (re)placed by a new directory.

    Refused always: the current directory or one of its parents (``.``,
    ``..``), the root, a directory holding a ``protect`` path (the input
    file), an existing non-directory. Refused without ``force``: an existing
    non-empty directory (an empty one is accepted, nothing would be lost).
    """
    p = Path(path)
    _refuse_unsafe(p, option, protect)
    if p.exists() and not p.is_dir():
        raise SpecError([(option, f"{p} exists and is not a directory")])
    if _is_nonempty_dir(p) and not force:
        raise SpecError([(option, f"output directory {p} already exists; choose another {option} or pass --force to replace it")])
    return p


# --- one writer per target: the lock ---------------------------------------------------------
class _Held:
    __slots__ = ("fd", "depth", "thread", "created", "target")

    def __init__(self, fd, thread, created, target):
        self.fd, self.depth, self.thread, self.created, self.target = fd, 1, thread, created, target


_held: dict[str, _Held] = {}
_held_guard = threading.Lock()


def _lock_path(target: Path) -> Path:
    return target.parent.resolve() / f".{target.name}.lock"


def _makedirs(d: Path) -> list[Path]:
    """mkdir -p ``d``; the directories it created, outermost first."""
    missing = []
    p = d
    while not os.path.lexists(p) and p != p.parent:
        missing.append(p)
        p = p.parent
    created = []
    for q in reversed(missing):
        try:
            q.mkdir()
            created.append(q)
        except FileExistsError:
            pass
    return created


def _busy(target: Path, lock: Path, option: str) -> SpecError:
    return SpecError([(option, f"{target} is being written by another topo run (it holds {lock}); "
                               f"wait for it to finish or choose another {option}")])


def _acquire(target: Path, option: str) -> tuple[str, bool]:
    """Take (or re-enter) the lock of ``target``: (key for :func:`_release`, True on a first
    acquisition). Call with signals held."""
    created = []
    try:
        created = _makedirs(target.parent)
        lock = _lock_path(target)
    except OSError as e:
        raise SpecError([(option, f"cannot create {target.parent}: {e.strerror or e}")])
    try:
        return _take(target, option, lock, created)
    except BaseException:
        for q in reversed(created):  # nothing held: do not leave the parents this call created
            try:
                q.rmdir()
            except OSError:
                break
        raise


def _take(target: Path, option: str, lock: Path, created: list) -> tuple[str, bool]:
    key = str(lock)
    me = threading.get_ident()
    with _held_guard:
        h = _held.get(key)
        if h is not None:
            if h.thread != me:
                raise _busy(target, lock, option)
            h.depth += 1
            return key, False
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock between processes
            fcntl = None
        while True:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
            except OSError as e:
                raise SpecError([(option, f"cannot create the lock file {lock}: {e.strerror or e}")])
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise _busy(target, lock, option)
                raise SpecError([(option, f"cannot lock {lock}: {e.strerror or e}")])
            # the holder before us may have removed the file after we opened it: lock the file at the path
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        _held[key] = _Held(fd, me, created, target)
        return key, True


def _release(key: str) -> None:
    """Leave a lock taken by :func:`_acquire`; the last release removes the lock file. Call with signals held."""
    with _held_guard:
        h = _held.get(key)
        if h is None:
            return
        h.depth -= 1
        if h.depth > 0:
            return
        del _held[key]
        try:
            os.unlink(key)  # while still locked: a waiter that opened it re-checks the path and retries
        except OSError:
            pass
        os.close(h.fd)
        if not os.path.lexists(h.target):  # nothing written: remove the parents this run created
            for q in reversed(h.created):
                try:
                    q.rmdir()
                except OSError:
                    break


def _orphans(directory: Path, pat: "re.Pattern"):
    """Directories in ``directory`` whose name matches ``pat`` (a ``pid`` group) and whose process is
    gone: (entry, match) pairs, in directory order. Nothing when the directory cannot be read."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    me = os.getpid()
    for e in entries:
        m = pat.fullmatch(e.name)
        if not m:
            continue
        try:
            if not e.is_dir(follow_symlinks=False):
                continue
            pid = int(m.group("pid"))
        except (OSError, ValueError):
            continue
        if pid != me and not _pid_alive(pid):
            yield e, m


def _recover(target: Path) -> None:
    """Clean up after runs on ``target`` that were killed (SIGKILL, power loss). Hold the lock.

    Removes ``.<name>.tmp-<pid>-*`` and ``.<name>.old-<pid>-*`` whose process is
    gone; when ``target`` is missing, the newest such ``old`` (the output a swap
    was replacing) is renamed back first.
    """
    pat = re.compile(r"\.%s\.(tmp|old)-(?P<pid>\d+)-[A-Za-z0-9_]+" % re.escape(target.name))
    tmps, olds = [], []
    for e, m in _orphans(target.parent, pat):
        (olds if m.group(1) == "old" else tmps).append(Path(e.path))
    if olds and not os.path.lexists(target):
        olds.sort(key=lambda q: q.stat().st_mtime, reverse=True)
        os.rename(olds.pop(0), target)
    for q in tmps + olds:
        shutil.rmtree(q, ignore_errors=True)


@contextlib.contextmanager
def output_lock(path: PathLike, option: str = "-o") -> Iterator[Path]:
    """Hold the lock of output directory ``path`` for the block (re-entrant in one thread).

    Creates the parent directory if needed (removed again if the block writes
    nothing), takes ``flock`` on ``.<name>.lock`` beside the target without
    waiting (another holder: :class:`SpecError` naming ``option``), and
    cleans up after killed runs (:func:`_recover`). :class:`OutputDir` takes
    it too; take it earlier to cover a whole run.
    """
    target = Path(path)
    key = None
    try:
        with deferred():
            key, first = _acquire(target, option)
            if first:
                _recover(target)
        yield target
    finally:
        if key is not None:
            with deferred():
                _release(key)


# --- a whole directory -----------------------------------------------------------------------
class OutputDir:
    """Write a whole directory atomically.

    >>> with OutputDir("out", force=False) as out:       # doctest: +SKIP
    ...     out.write_text("plan.json", text)
    ...     out.path("report-images").mkdir()

    Files go to a temporary sibling directory (``.out.tmp-<pid>-XXXX``, mode
    from the umask). On a clean exit the new directory takes the place of the
    old ``out`` (if any, and only with ``force``) in one exchange (or two
    renames where the filesystem cannot exchange) and the old one is deleted.
    On an exception or a signal the temporary directory is removed and
    ``out`` is untouched. The whole with-block holds :func:`output_lock`.

    The existence check runs in the constructor, so a caller can create the
    object before long work and fail early.
    """

    def __init__(self, path: PathLike, force: bool = False, option: str = "-o", protect: Iterable[PathLike] = ()):
        self.protect = tuple(protect)
        self.target = check_output_dir(path, force, option, self.protect)
        self.force = force
        self.option = option
        self.tmp: Path | None = None
        self._lock: str | None = None

    def __enter__(self) -> "OutputDir":
        try:
            with deferred():
                self._lock, first = _acquire(self.target, self.option)
                if first:
                    _recover(self.target)
                check_output_dir(self.target, self.force, self.option, self.protect)
                tmp = Path(tempfile.mkdtemp(dir=str(self.target.parent), prefix=f".{self.target.name}.tmp-{os.getpid()}-"))
                self.tmp = tmp
                os.chmod(tmp, 0o777 & ~_umask())
        except BaseException:
            with deferred():
                self._cleanup()
            raise
        return self

    def _cleanup(self) -> None:
        tmp, self.tmp = self.tmp, None
        if tmp is not None:
            if tmp.is_symlink():  # an old ``out`` that was a symbolic link: remove the link only
                tmp.unlink()
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        key, self._lock = self._lock, None
        if key is not None:
            _release(key)

    def path(self, name: str) -> Path:
        """Where to write ``name`` (a relative path) inside the new directory."""
        if self.tmp is None:
            raise RuntimeError("OutputDir used outside its with-block")
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write_text(self, name: str, text: str) -> Path:
        p = self.path(name)
        p.write_text(text, encoding="utf-8")
        return p

    def write_bytes(self, name: str, data: bytes) -> Path:
        p = self.path(name)
        p.write_bytes(data)
        return p

    def __exit__(self, exc_type, exc, tb) -> bool:
        with deferred():
            try:
                if exc_type is None and self.tmp is not None:
                    # re-check: the target may have appeared while we were working
                    check_output_dir(self.target, self.force, self.option, self.protect)
                    old_name = self.target.parent / f".{self.target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
                    old = _replace_dir(self.tmp, self.target, old_name)
                    self.tmp = old  # removed below: the old output (or nothing)
                    _fsync_dir(self.target.parent)
            finally:
                self._cleanup()
        return False


# --- several files into a directory ----------------------------------------------------------
_STAGE = "topo-stage"


def _recover_stages(directory: Path) -> None:
    """Remove staging areas of killed ``StagedFiles`` runs in ``directory``, putting back
    any sub-directory a commit had moved aside (killed between two renames)."""
    pat = re.compile(r"\.%s-(?P<pid>\d+)-[A-Za-z0-9_]+" % _STAGE)
    for e, m in _orphans(directory, pat):
        stage = Path(e.path)
        try:
            for old in stage.iterdir():
                if old.name.startswith(".old-"):
                    dst = directory / old.name[len(".old-"):]
                    if not os.path.lexists(dst):
                        os.rename(old, dst)
        except OSError:
            pass
        shutil.rmtree(stage, ignore_errors=True)


class StagedFiles:
    """Write several files (and whole sub-directories) into ``directory`` atomically.

    Every entry is staged in a hidden temporary directory inside ``directory``
    (``.topo-stage-<pid>-XXXX``) and renamed into place by :meth:`commit` (or
    at the end of a with-block). Existing files are replaced only with
    ``force``; a staged sub-directory replaces an existing one as a whole. On
    an exception or a signal nothing is renamed and the staging area is
    removed. The renames of a commit run with SIGINT and SIGTERM held, so a
    signal lands before them (all old) or after them (all new); only SIGKILL
    can stop a commit between two renames, leaving each file either old or
    new, never partial. Staging areas of killed processes are removed by the
    next run in the same directory.
    """

    def __init__(self, directory: PathLike, force: bool = False, option: str = "-o"):
        self.dir = Path(directory)
        if self.dir.exists() and not self.dir.is_dir():
            raise SpecError([(option, f"{self.dir} exists and is not a directory")])
        self.force = force
        self.option = option
        self.stage: Path | None = None
        self.entries: list[str] = []

    def check(self, names) -> None:
        """SpecError naming every entry of ``names`` that exists (without force)."""
        if self.force:
            return
        clash = [n for n in names if (self.dir / n).exists()]
        if clash:
            shown = ", ".join(str(self.dir / n) for n in clash[:5]) + (" ..." if len(clash) > 5 else "")
            raise SpecError([(self.option, f"{len(clash)} output file(s) already exist ({shown}); pass --force to overwrite")])

    def __enter__(self) -> "StagedFiles":
        try:
            with deferred():
                self.dir.mkdir(parents=True, exist_ok=True)
                _recover_stages(self.dir)
                self.stage = Path(tempfile.mkdtemp(dir=str(self.dir), prefix=f".{_STAGE}-{os.getpid()}-"))
        except BaseException:
            self.abort()
            raise
        return self

    def path(self, name: str) -> Path:
        """A staging path for top-level entry ``name`` (a file or a directory)."""
        if self.stage is None:
            raise RuntimeError("StagedFiles used outside its with-block")
        top = Path(name).parts[0]
        if top not in self.entries:
            self.check([top])
            self.entries.append(top)
        p = self.stage / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write_text(self, name: str, text: str) -> Path:
        p = self.path(name)
        p.write_text(text, encoding="utf-8")
        return self.dir / name

    def write_bytes(self, name: str, data: bytes) -> Path:
        p = self.path(name)
        p.write_bytes(data)
        return self.dir / name

    def commit(self) -> list[Path]:
        out = []
        with deferred():
            stage, self.stage = self.stage, None
            if stage is None:
                return []
            try:
                self.check(self.entries)
                for name in self.entries:
                    src, dst = stage / name, self.dir / name
                    if src.is_dir():
                        # the old one (if any) ends up inside the stage, removed below
                        _replace_dir(src, dst, stage / f".old-{name}")
                    else:
                        if dst.is_dir():
                            raise SpecError([(self.option, f"{dst} is a directory; cannot replace it with a file")])
                        os.replace(src, dst)
                    out.append(dst)
            finally:
                shutil.rmtree(stage, ignore_errors=True)
            _fsync_dir(self.dir)
        return out

    def abort(self) -> None:
        with deferred():
            stage, self.stage = self.stage, None
            if stage is not None:
                shutil.rmtree(stage, ignore_errors=True)

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.abort()
            return False
        self.commit()
        return False
