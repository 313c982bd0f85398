"""Atomic output: files and directories appear whole or not at all.

Owns how topo puts results on disk. Everything is first written under a
temporary name in the target's own directory (same filesystem, so the final
``os.replace``/``os.rename`` is atomic) and renamed into place at the end. An
exception or an interrupt (Ctrl-C) before that leaves the old output as it was
and removes the temporary files.

Three tools:

* :func:`write_text_atomic` / :func:`write_bytes_atomic`: one file.
* :class:`StagedFiles`: several files into an existing directory (``topo
  export``, ``topo report``); refuses to replace an existing file unless
  ``force``; all files are staged first and renamed at the end.
* :class:`OutputDir`: a whole output directory (``topo optimize -o out/``);
  refuses an existing non-empty directory unless ``force``; the new directory
  replaces the old one in one rename.

It must not decide what is written, only how.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Union

from .errors import SpecError

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


def write_bytes_atomic(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    The parent directory must exist. Readers see either the old file or the
    complete new one, never a partial file.
    """
    p = Path(path)
    fd, tmp = tempfile.mkstemp(dir=str(p.parent), prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
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


def _is_nonempty_dir(p: Path) -> bool:
    try:
        return p.is_dir() and any(p.iterdir())
    except OSError:
        return True


def check_output_dir(path: PathLike, force: bool, option: str = "-o") -> Path:
    """Raise :class:`SpecError` when ``path`` exists and may not be replaced.

    An empty existing directory is accepted (nothing would be overwritten); an
    existing file is never replaced by a directory.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise SpecError([(option, f"{p} exists and is not a directory")])
    if _is_nonempty_dir(p) and not force:
        raise SpecError([(option, f"output directory {p} already exists; choose another {option} or pass --force to replace it")])
    return p


class OutputDir:
    """Write a whole directory atomically.

    >>> with OutputDir("out", force=False) as out:       # doctest: +SKIP
    ...     out.write_text("plan.json", text)
    ...     out.path("report-images").mkdir()

    Files go to a temporary sibling directory (``.out.tmp-XXXX``). On a clean
    exit the old ``out`` (if any, and only with ``force``) is moved aside, the
    new one renamed into place, and the old one deleted. On an exception the
    temporary directory is removed and ``out`` is untouched.

    The existence check runs in the constructor, so a caller can create the
    object before long work and fail early.
    """

    def __init__(self, path: PathLike, force: bool = False, option: str = "-o"):
        self.target = check_output_dir(path, force, option)
        self.force = force
        self.option = option
        self.tmp: Path | None = None

    def __enter__(self) -> "OutputDir":
        parent = self.target.parent
        parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(dir=str(parent), prefix=f".{self.target.name}.tmp-"))
        return self

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
        tmp, self.tmp = self.tmp, None
        if exc_type is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        try:
            # re-check: the target may have appeared while we were working
            check_output_dir(self.target, self.force, self.option)
            old = None
            if self.target.exists():
                old = Path(tempfile.mkdtemp(dir=str(self.target.parent), prefix=f".{self.target.name}.old-"))
                os.rmdir(old)
                os.rename(self.target, old)
            try:
                os.rename(tmp, self.target)
            except BaseException:
                if old is not None:
                    os.rename(old, self.target)
                raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(self.target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return False


class StagedFiles:
    """Write several files (and whole sub-directories) into ``directory`` atomically.

    Every entry is staged in a hidden temporary directory inside ``directory``
    and renamed into place by :meth:`commit` (or at the end of a with-block).
    Existing files are replaced only with ``force``; a staged sub-directory
    replaces an existing one as a whole. On an exception nothing is renamed
    and the staging area is removed. The renames of several files are each
    atomic; an interrupt between two renames can leave some files new and
    some old, never a partial file.
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
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stage = Path(tempfile.mkdtemp(dir=str(self.dir), prefix=".topo-stage-"))
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
        stage, self.stage = self.stage, None
        if stage is None:
            return []
        out = []
        try:
            self.check(self.entries)
            for name in self.entries:
                src, dst = stage / name, self.dir / name
                if src.is_dir():
                    old = None
                    if dst.exists():
                        old = stage / f".old-{name}"
                        os.rename(dst, old)
                    os.rename(src, dst)
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
        stage, self.stage = self.stage, None
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.abort()
            return False
        self.commit()
        return False
