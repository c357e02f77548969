"""The output folder: which folders a run may write into, and replacing an earlier output safely.

A run never deletes what it did not write. ``--out DIR`` is accepted only when DIR does not
exist, is an empty folder, or is an earlier carecircle output — recognised by the
``.carecircle`` marker a run writes (or, for outputs of older versions, ``summary.json`` with
the ``carecircle`` key) and holding no file that output did not list. The current folder, ``/``,
the home folder, the folder of the config or of any input file (and any folder above them),
a symbolic link and a path below a file are refused outright.

Outputs are written into a staging folder ``.<name>.partial-<pid>-<hex>`` beside DIR, created
before the analysis (so an unwritable location or a full disk is found before any work), and
moved into place at the end: the old output is moved aside, the new one moved in, then the
old one deleted — at no moment is an output half deleted. A staging or aside folder left by a
killed run is recognised by its marker and tidied by the next run into the same place.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import signal
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from carecircle.errors import InputError

#: The file that marks a folder as written by carecircle (JSON: version and the files written).
MARKER = ".carecircle"
#: Below this much free space the run stops before its analysis (a city's outputs are tens of MB).
MIN_FREE_BYTES = 50 * 2**20
#: ``carecircle compare`` writes here inside a run's folder by default; it belongs to the run.
COMPARE_DIR = "compare"
# Errors that are the output location's whatever file they name; permission errors only when
# they name a file of the staging folder (an unreadable input is the input's problem).
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
_PERMISSION_ERRORS = {errno.EACCES, errno.EPERM}
_SIGNALS = {signal.SIGINT, signal.SIGTERM}

Log = Callable[[str], None]


class Interrupted(BaseException):
    """SIGTERM (or another stop signal) during a run; ``exit_code`` is 128 + the signal number.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` swallows it and
    every ``finally`` (staging folder, chromium child) runs.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def raise_on_signal(signum: int, frame) -> None:  # noqa: ARG001 - the signal-handler signature
    """Signal handler that turns SIGTERM into :class:`Interrupted` (install with :func:`signal.signal`)."""
    raise Interrupted(signum)


def _refuse(out: Path, why: str, what: str = "choose a new or empty folder") -> InputError:
    return InputError(f"--out {out}: {why}; nothing was deleted — {what}")


def _listed_files(folder: Path) -> set[str] | None:
    """The files an earlier carecircle output says it wrote, or None when ``folder`` is not one."""
    for name, key in ((MARKER, "files"), ("summary.json", "outputs")):
        path = folder / name
        if not path.is_file() or path.is_symlink():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(data, dict) and "carecircle" in data:
            files = data.get(key)
            return {str(f) for f in files} if isinstance(files, list) else set()
    return None


def _foreign_files(folder: Path, listed: set[str]) -> list[str]:
    """Files in ``folder`` that its carecircle output did not write (compare/ belongs to it)."""
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_dir() and not p.is_symlink():
            continue
        if rel in listed or rel in (MARKER, "summary.json", f"{COMPARE_DIR}/{MARKER}") \
                or rel.startswith(f"{COMPARE_DIR}/compare."):
            continue
        out.append(rel)
    return out


def _protected(config_file: Path | None, inputs: Iterable[Path]) -> dict[Path, str]:
    """Folders an output must never replace, with the words that name them."""
    places = {Path("/"): "the root folder", Path.cwd().resolve(): "the current folder"}
    with contextlib.suppress(RuntimeError):
        places.setdefault(Path.home().resolve(), "the home folder")
    if config_file is not None:
        places.setdefault(Path(config_file).resolve().parent, "the folder of the config file")
    for p in inputs:
        places.setdefault(Path(p).resolve().parent, f"the folder of input file {Path(p).name}")
    return places


def check_target(out: str | os.PathLike, *, config_file: Path | None = None, inputs: Iterable[Path] = ()) -> Path:
    """Check that a run may write into ``out``; the absolute path to write.

    Parameters
    ----------
    out : path-like
        The ``--out`` folder as the user gave it (named so in messages).
    config_file : pathlib.Path, optional
        The run config; its folder is protected.
    inputs : iterable of pathlib.Path
        The input files; their folders are protected.

    Returns
    -------
    pathlib.Path
        ``out`` made absolute (its parent resolved, ``out`` itself not followed).

    Raises
    ------
    InputError
        One line naming ``out``, why it is refused and what to do. Nothing is touched.
    """
    given = Path(out)
    if given.name in ("", ".", ".."):
        given = given.resolve()
    if not given.name:
        raise _refuse(given, "is the root folder")
    parent = given.parent.resolve()
    target = parent / given.name
    for up in [parent, *parent.parents]:
        if up.exists() and not up.is_dir():
            raise _refuse(given, f"{up} is a file, not a folder", "choose a folder that is not below a file")
    if target.is_symlink():
        raise _refuse(given, "is a symbolic link", "give the real folder, or a new one")
    resolved = target.resolve()
    places = _protected(config_file, inputs)
    hit = next((p for p in places if resolved == p), None) or next((p for p in places if resolved in p.parents), None)
    if hit is not None:
        what = places[hit] if resolved == hit else f"a folder above {places[hit]}"
        raise _refuse(given, f"is {what} ({hit})", "give a new folder for the outputs, e.g. --out out/run1")
    if not target.exists():
        return target
    if not target.is_dir():
        raise _refuse(given, "is a file, not a folder")
    if not any(target.iterdir()):
        return target
    listed = _listed_files(target)
    if listed is None:
        names = sorted(p.name for p in target.iterdir())
        raise _refuse(given, f"holds files that are not a carecircle output ({_few(names)})")
    foreign = _foreign_files(target, listed)
    if foreign:
        raise _refuse(given, f"is an earlier carecircle output but also holds files it did not write ({_few(foreign)})",
                      "move those files out, or choose a new folder")
    return target


def check_writable(target: Path) -> None:
    """Without creating anything: can the nearest existing folder of ``target`` be written, is its disk full?

    ``carecircle check --out`` asks this; a run creates its staging folder instead (:func:`staging`).
    """
    here = target
    while not here.exists():
        here = here.parent
    if not os.access(here, os.W_OK | os.X_OK):
        raise InputError(f"--out {target}: cannot write in {here} (permission denied); choose a folder you can write to")
    if _free(here) < MIN_FREE_BYTES:
        raise InputError(f"--out {target}: the disk is full; free some space or choose another folder")


def _few(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ours(folder: Path) -> bool:
    return folder.is_dir() and not folder.is_symlink() and (folder / MARKER).is_file()


def tidy_stale(target: Path, log: Log = print) -> list[Path]:
    """Remove staging folders of killed runs into ``target``; put back an output left aside.

    Only folders named ``.<name>.partial-*`` / ``.<name>.old-*`` that carry the marker and
    whose run (its pid is in the name) is no longer alive are touched.

    Returns
    -------
    list of pathlib.Path
        The folders removed (each also named in ``log``).
    """
    removed = []
    for kind in ("old", "partial"):
        for stale in sorted(target.parent.glob(f".{_glob_escape(target.name)}.{kind}-*")):
            pid = stale.name.rsplit(".", 1)[-1].removeprefix(f"{kind}-").split("-")[0]
            if not _ours(stale) or (pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid))):
                continue
            if kind == "old" and not os.path.lexists(target):
                # Killed between moving the old output aside and moving the new one in.
                os.rename(stale, target)
                log(f"输出 output: restored the earlier output from {stale.name} (a previous run was stopped)")
                continue
            shutil.rmtree(stale)
            removed.append(stale)
            log(f"输出 output: removed {stale.name}, left by a run that was stopped")
    return removed


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def write_marker(folder: Path, files: Iterable[str] = ()) -> None:
    """Mark ``folder`` as carecircle's, listing the ``files`` written (relative paths)."""
    from carecircle import __version__

    (folder / MARKER).write_text(json.dumps({"carecircle": __version__, "files": sorted(files)}), encoding="utf-8")


def write_failure(err: OSError, where: Path, tmp: Path) -> InputError | None:
    """An :class:`InputError` for a full disk / read-only / permission failure writing ``tmp``, else None."""
    in_tmp = err.filename is not None and str(err.filename).startswith(str(tmp))
    if not (err.errno in _DISK_ERRORS or (err.errno in _PERMISSION_ERRORS and in_tmp)):
        return None
    return InputError(f"--out {where}: cannot write ({os.strerror(err.errno)}); free some space or choose a "
                      "folder you can write to")


@contextlib.contextmanager
def staging(target: Path, log: Log = print) -> Iterator[Path]:
    """A fresh staging folder beside ``target``, removed again unless :func:`commit` moved it.

    Created with the umask's permissions (not mkdtemp's 0700). Raises :class:`InputError`
    when the location cannot be written or its disk is (nearly) full — before any work.
    """
    parent = target.parent
    tmp = parent / f".{target.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tidy_stale(target, log)
        tmp.mkdir()
        write_marker(tmp)
        free = shutil.disk_usage(parent).free
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputError(f"--out {target}: cannot write there ({err.strerror or err}); choose a folder you can "
                         "write to") from None
    if free < MIN_FREE_BYTES:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputError(f"--out {target}: the disk is full ({free / 2**20:.0f} MB free, at least "
                         f"{MIN_FREE_BYTES // 2**20} MB needed); free some space or choose another folder")
    try:
        yield tmp
    except InputError:
        _remove(tmp)
        raise
    except Exception as err:
        _remove(tmp)
        # GDAL reports a full disk as its own error, not as ENOSPC: ask the disk.
        full = _free(parent) < MIN_FREE_BYTES
        failure = write_failure(err, target, tmp) if isinstance(err, OSError) else None
        if failure is None and full:
            failure = InputError(f"--out {target}: cannot write (the disk is full); free some space or choose "
                                 "another folder")
        if failure is None:
            raise
        raise failure from None
    except BaseException:
        _remove(tmp)
        raise
    _remove(tmp)


def _free(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return MIN_FREE_BYTES


def _remove(tmp: Path) -> None:
    # A second Ctrl-C must not leave the staging folder half removed.
    with _signals_blocked():
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def commit(tmp: Path, target: Path, files: Iterable[str], *, config_file: Path | None = None,
           inputs: Iterable[Path] = ()) -> None:
    """Move the finished staging folder ``tmp`` to ``target``: old aside, new in, old deleted.

    ``target`` is checked again first (a file may have been put there during the analysis).
    Stop signals wait until both renames are done.
    """
    check_target(target, config_file=config_file, inputs=inputs)
    write_marker(tmp, files)
    aside = None
    with _signals_blocked():
        if os.path.lexists(target):
            aside = target.parent / f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(target, aside)
        os.rename(tmp, target)
    if aside is not None:
        if (aside / MARKER).is_file() or (aside / "summary.json").is_file():
            shutil.rmtree(aside)
        else:
            aside.rmdir()  # the empty folder the user named


def write_folder(out: str | os.PathLike, write: Callable[[Path], object], *,
                 config_file: Path | None = None, inputs: Iterable[Path] = (), log: Log = print) -> Path:
    """Write a whole folder the way a run does: checked, staged, then moved into place.

    For the folders that are not a run's ``--out`` — ``carecircle sample DIR``, the demo's
    input folder, ``compare --out`` — so none of them overwrites a file carecircle did not write.

    Parameters
    ----------
    out : path-like
        The folder as the user named it (see :func:`check_target`).
    write : callable
        Called with the staging folder and writes into it; every file there is then listed
        in the marker as this folder's own.
    config_file, inputs
        Protected places, as for :func:`check_target`.

    Returns
    -------
    pathlib.Path
        The folder written, absolute.
    """
    inputs = list(inputs)
    target = check_target(out, config_file=config_file, inputs=inputs)
    with staging(target, log) as tmp:
        write(tmp)
        files = [f.relative_to(tmp).as_posix() for f in tmp.rglob("*") if f.is_file() and f.name != MARKER]
        commit(tmp, target, files, config_file=config_file, inputs=inputs)
    return target
