"""What every command checks about its files before any work starts, and how it holds its outputs.

Each command line states what it reads and writes (`CommandFiles`: input files, output files,
output folders) and runs its work inside `claim(files, holder)`, which refuses, with a `DataError`
naming the path (one line, non-zero exit, nothing written):

- an input that is missing or a directory;
- an output that is one of the inputs (the same file by `os.path.samefile`, or the same path once
  symbolic links are resolved: `--out` = `--data`, a hard link to the input), or that another
  output of the same command also names; an output folder whose entries would overwrite an input;
- an output file that is a directory, an output folder that is a file;
- an output whose folder cannot be written (the nearest existing folder above it: not writable,
  or marked read-only: no write permission bit, which root would otherwise override);
- an existing output the command would go on with (resume, or add to) that is not its own: the
  output's `resumes` check says why (`rarft-eval infer` resumes only a prediction file with its
  `OUT.meta.json`; `evaluate` and `rarft-audit` rewrite only a folder they wrote before). Output
  files without such a check are replaced whole and atomically (`rarft_plugin.io_utils`), as
  `cp` or `sort -o` replace theirs;
- an output another process is writing: each output is held, for the whole command, by an
  advisory lock (`fcntl.flock`) on a sidecar `.NAME.lock` beside it holding the holder's pid and
  command line; the second process fails at once naming the holder. The lock file is removed when
  the command ends (a `kill -9` leaves it; the kernel has released the lock, so the next run takes it).

Folders created for the lock files are removed again when the command fails before writing into
them. `staged_folder` builds a multi-file result (an evaluation run, an audit) in a temporary
folder beside its destination and moves it into place only once complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import current_umask

__all__ = [
    "CommandFiles",
    "Output",
    "claim",
    "lock_path",
    "staged_folder",
]

HOLDER_CHARS = 300  # the holder line kept in a lock file (a command line can be long)


@dataclass(frozen=True)
class Output:
    """A file (or, with `folder`, a folder) a command writes.

    `resumes`: for an output the command goes on with when it exists, why an existing one is not
    the command's own (None: it is); without it an existing file is replaced whole. `entries`: for
    a folder, the names the command writes in it (checked against the inputs).
    """

    path: Path
    folder: bool = False
    resumes: Callable[[Path], str | None] | None = None
    entries: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommandFiles:
    """The input files a command reads and the outputs it writes; `None` entries (unset options) are dropped."""

    inputs: tuple[Path, ...] = ()
    outputs: tuple[Output, ...] = ()

    @classmethod
    def of(cls, inputs: Iterable[Path | None] = (), outputs: Iterable[Output | Path | None] = ()) -> CommandFiles:
        """From paths and `Output`s (a bare path is an output file)."""
        return cls(
            inputs=tuple(Path(p) for p in inputs if p is not None),
            outputs=tuple(o if isinstance(o, Output) else Output(Path(o)) for o in outputs if o is not None),
        )


def lock_path(output: Path) -> Path:
    """The sidecar lock file of an output (file or folder): `.NAME.lock` beside it (the same file however
    the folder is spelt, so every spelling of one output shares one lock)."""
    return output.parent / f".{output.name}.lock"


@contextlib.contextmanager
def claim(files: CommandFiles, holder: str) -> Iterator[None]:
    """Check `files` (module docstring) and hold every output's lock while the body runs.

    `holder` names this process to a second one (e.g. the command line); the pid is added.
    """
    _check_inputs(files.inputs)
    _check_outputs(files.outputs, files.inputs)
    created: list[Path] = []
    held: list[tuple[Path, int]] = []
    try:
        for output in sorted(files.outputs, key=lambda o: str(o.path)):
            created += _make_folders(output.path.parent)
            lock = lock_path(output.path)
            held.append((lock, _lock(lock, f"pid {os.getpid()}: {holder}"[:HOLDER_CHARS], output.path)))
        for output in files.outputs:  # checked under the lock, so that no other run changes it meanwhile
            if output.resumes is not None and output.path.exists():
                reason = output.resumes(output.path)
                if reason is not None:
                    raise DataError(reason, source=str(output.path))
        yield
    finally:
        for path, handle in held:
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(handle)
        for folder in reversed(created):  # folders made only for the locks: gone again if nothing else is there
            with contextlib.suppress(OSError):
                folder.rmdir()


def _check_inputs(inputs: Sequence[Path]) -> None:
    for path in inputs:
        if path.is_dir():
            raise DataError("is a directory, expected a file", source=str(path))
        if not path.exists():
            raise DataError("file not found", source=str(path))


def _check_outputs(outputs: Sequence[Output], inputs: Sequence[Path]) -> None:
    seen: dict[str, Path] = {}
    for output in outputs:
        path = output.path
        if output.folder and path.exists() and not path.is_dir():
            raise DataError("is a file, expected a folder for the command's outputs", source=str(path))
        if not output.folder and path.is_dir():
            raise DataError("is a directory, expected a file to write", source=str(path))
        written = [path / name for name in output.entries] if output.folder else [path]
        for target in written:
            for source in inputs:
                if _same_file(target, source):
                    raise DataError(
                        f"is the same file as the input {source}: an input is never overwritten; write elsewhere",
                        source=str(target),
                    )
        resolved = os.path.realpath(path)
        if resolved in seen:
            raise DataError(
                f"is the same file as another output ({seen[resolved]}): each output needs its own", source=str(path)
            )
        seen[resolved] = path
        # the lock file (and a folder's staging copy) go beside the output; a folder's files inside it
        problem = _unwritable(path.parent) or (_unwritable(path) if output.folder and path.exists() else None)
        if problem:
            raise DataError(problem, source=str(path))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): the same path once links are resolved
        return os.path.realpath(a) == os.path.realpath(b)


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be made in `folder` (created where missing), or None."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder, so nothing can be written under it"
    # a folder without any write permission bit is read-only by intent, also for root (whom the
    # permission check lets through)
    if not os.access(existing, os.W_OK | os.X_OK) or not existing.stat().st_mode & 0o222:
        return f"the folder {existing} is not writable"
    return None


def _make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; the ones created, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
    return list(reversed(missing))


def _lock(path: Path, holder: str, output: Path) -> int:
    """Hold an exclusive lock on the lock file `path` (created if needed); a DataError naming the holder
    when another process holds it. Retries when the file it locked was removed by the previous holder."""
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(handle, HOLDER_CHARS * 4).decode("utf-8", errors="replace").strip()
            os.close(handle)
            raise DataError(
                f"is being written by another process ({other or 'starting up'}); wait for it to end, "
                "or write elsewhere",
                source=str(output),
            ) from None
        try:
            same = os.fstat(handle).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(handle, 0)
            os.write(handle, holder.encode("utf-8", errors="backslashreplace") + b"\n")
            return handle
        os.close(handle)  # the previous holder removed the file after we opened it: lock the new one


@contextlib.contextmanager
def staged_folder(out: Path, files: Sequence[str], *, last: str | None = None) -> Iterator[Path]:
    """A temporary folder beside `out` to write a result's `files` into; moved into place when the body
    completes, removed when it fails (so `out` never holds part of a result).

    A new `out` appears whole (one rename). An existing one (a previous result, or a folder holding
    other files too) gets each new file by `os.replace`, `last` after the others (the file readers
    look for first), and loses those of `files` the new result lacks; other files stay untouched.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".staging"))
    try:
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp's folder is private
        yield staging
        if not out.exists():
            os.rename(staging, out)
            return
        produced = set(os.listdir(staging))
        for name in sorted(produced, key=lambda name: name == last):
            os.replace(staging / name, out / name)
        for name in set(files) - produced:
            (out / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
