"""An output directory that holds one complete run: the old one or the new one, never a mix.

``refmetrics evaluate`` writes several files (tables, JSON, figures) into one
directory. A directory cannot be replaced file by file atomically, so the new
files are staged inside the directory itself (the same filesystem as their
final place, so every move is a ``rename``, never a copy across devices), and
the switch is a small transaction with a journal:

1. :meth:`OutputDir.prepare`, before anything is computed: create ``out`` if
   needed and a hidden transaction directory ``out/.refmetrics-XXXXXXXX/``
   with ``new/`` (the staged files) and ``old/`` (where replaced files go).
   Creating it proves that ``out`` is a writable directory on a filesystem
   that takes our files; a read-only parent or ``out`` being a file fails here,
   not after the work.
2. The caller writes the complete new run into :attr:`OutputDir.new`.
3. :meth:`OutputDir.commit`: write the plan (``plan.json``: the files that
   go and the files that come), move every old file that is replaced or
   removed into ``old/``, move the new files in, then rename ``plan.json`` to
   ``done.json``: the commit point. Then the transaction directory is removed.
   A failure of any step before the commit point moves everything back (the
   plan says what); SIGINT is deferred while the switch runs.
4. A transaction directory left by a process that died (power cut, ``kill
   -9``) is finished by the next :meth:`prepare` on the same ``out``: rolled
   back when it holds ``plan.json``, removed when it holds ``done.json`` or
   never reached its commit (the staged files simply go).

Locks: a live run holds an advisory lock (``flock``) on a file inside its
transaction directory, so another run never takes its transaction for a dead
one; and :meth:`prepare` and :meth:`commit` hold a lock on ``out`` itself, so
two runs into the same ``out`` switch one after the other, never interleaved.
Where the filesystem has no ``flock`` (some NFS setups), a transaction is taken
for dead when the host and process id it records name a process of this host
that no longer runs; transactions of other hosts are left alone, with a
warning.

Every file operation of the switch goes through :meth:`OutputDir._do`, so a
test can make the k-th one fail and check that ``out`` is exactly the old run
or exactly the new one.
"""

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import warnings
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: transactions of dead runs are then left to the user
    fcntl = None

PREFIX = ".refmetrics-"


class OutputError(ValueError):
    """``--out`` cannot hold the results (the message names it and says why)."""


class InterruptedAfterCommit(KeyboardInterrupt):
    """Ctrl-C arrived while the new run was being switched in; the switch was completed first."""


def _describe(exc):
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)


@contextlib.contextmanager
def _sigint_deferred():
    """Hold SIGINT back while the block runs (main thread only); re-raise it afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise InterruptedAfterCommit()


class OutputDir:
    """The transaction that replaces one run's files in ``out`` by another's.

    Parameters
    ----------
    out : path
        The output directory (created if missing).
    option : str
        How the user named it, for messages (``--out``).
    """

    def __init__(self, out, option="--out"):
        self.out = Path(out)
        self.option = option
        self.txn = None
        self._lock = None
        self._created = []  # directories this run created (out and missing parents), removed on abort

    # -- file operations of the switch (one place, so that a test can make any of them fail) --------------------
    def _do(self, func, *args):
        return func(*args)

    # -- before computing -------------------------------------------------------------------------------------
    def prepare(self):
        """Create ``out`` (if needed) and the transaction directory; finish transactions left by dead runs."""
        out = self.out
        if out.exists() and not out.is_dir():
            raise OutputError(f"{self.option}: {out} exists and is not a directory")
        missing = []
        existing = out
        while not existing.exists():
            missing.append(existing)
            if existing.parent == existing:
                break
            existing = existing.parent
        if existing.exists() and not existing.is_dir():
            raise OutputError(f"{self.option}: {out} cannot be created: {existing} is not a directory")
        try:
            for d in reversed(missing):
                d.mkdir()
                self._created.append(d)
            with _locked(out):
                self.recover()
                self.txn = Path(tempfile.mkdtemp(prefix=PREFIX, dir=out))
                _write_json(self.txn / "owner.json", {"host": socket.gethostname(), "pid": os.getpid()})
                self._lock = _lock(self.txn / "owner.json")
            (self.txn / "new").mkdir()
            (self.txn / "old").mkdir()
        except OSError as exc:
            self.abort()
            raise OutputError(f"{self.option}: cannot write into {out}: {_describe(exc)} "
                              f"({type(exc).__name__}, errno {exc.errno})") from exc
        except BaseException:
            self.abort()
            raise

    def check_writable(self, directory):
        """``out/directory``, where it exists, takes new files (probed with a temporary file), so that the
        switch does not fail there after the work."""
        d = self.out / directory
        if not d.is_dir():
            return
        try:
            fd, probe = tempfile.mkstemp(prefix=PREFIX, dir=d)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise OutputError(f"{self.option}: cannot write into {d}: {_describe(exc)}") from exc

    @property
    def new(self):
        """The directory the new run is written into before :meth:`commit`."""
        return self.txn / "new"

    def abort(self):
        """Forget the staged run: remove the transaction directory and what :meth:`prepare` created."""
        if self.txn is not None:
            shutil.rmtree(self.txn, ignore_errors=True)
            self.txn = None
        _unlock(self._lock)
        self._lock = None
        for d in reversed(self._created):
            with contextlib.suppress(OSError):
                d.rmdir()  # only if still empty
        self._created = []

    # -- the switch -------------------------------------------------------------------------------------------
    def check_destinations(self, names):
        """Each new file's destination must not be a directory (checked again by :meth:`commit`)."""
        clashes = [str(self.out / n) for n in names if (self.out / n).is_dir()]
        if clashes:
            raise OutputError(f"{self.option}: cannot write over the director{'ies' if len(clashes) > 1 else 'y'} "
                              f"{', '.join(clashes)}")

    def commit(self, names, remove=()):
        """Switch the staged files ``names`` (paths relative to :attr:`new`) into ``out``.

        ``remove``: files of the previous run that this one does not write (removed with the switch). A
        directory that the switch leaves empty and that only held those files is removed too.
        """
        with _locked(self.out):
            self._commit(list(names), remove)

    def _commit(self, names, remove):
        if callable(remove):  # read under the lock: what the previous run (the one being replaced) wrote
            remove = remove()
        remove = [n for n in remove if n not in names and (self.out / n).is_file()]
        self.check_destinations(names)
        replaced = [n for n in names if (self.out / n).exists() or (self.out / n).is_symlink()] + remove
        dirs = sorted({str(Path(n).parent) for n in names} - {"."}, key=lambda d: d.count("/"))
        new_dirs = [d for d in dirs if not (self.out / d).is_dir()]
        emptied = sorted({str(Path(n).parent) for n in remove} - {"."} - set(dirs), key=lambda d: -d.count("/"))
        plan = {"new": names, "old": replaced, "new_dirs": new_dirs, "emptied_dirs": emptied}
        txn = self.txn
        with _sigint_deferred():
            try:
                self._do(_write_json, txn / "plan.json.tmp", plan)
                self._do(os.rename, txn / "plan.json.tmp", txn / "plan.json")
                for d in sorted({str(Path(n).parent) for n in replaced} - {"."}):
                    self._do(os.makedirs, txn / "old" / d, 0o777, True)
                for n in replaced:
                    self._do(os.rename, self.out / n, txn / "old" / n)
                for d in new_dirs:
                    self._do(os.mkdir, self.out / d)
                for n in names:
                    self._do(os.rename, txn / "new" / n, self.out / n)
                for d in emptied:
                    if (self.out / d).is_dir() and not any((self.out / d).iterdir()):
                        self._do(os.rmdir, self.out / d)
                self._do(os.rename, txn / "plan.json", txn / "done.json")  # the commit point
                for d in ["."] + dirs:
                    _fsync_dir(self.out / d)  # the renames reach the disk before the old files go
            except BaseException as exc:
                try:
                    _rollback(self.out, txn, plan, self._do)
                except OSError as again:
                    _unlock(self._lock)
                    self._lock = self.txn = None
                    raise OutputError(
                        f"{self.option}: the switch to the new results failed ({_describe(exc)}) and so did "
                        f"putting the previous ones back ({_describe(again)}); the previous files are in {txn}/old "
                        f"and the next 'refmetrics evaluate' with {self.option} {self.out} puts them back") from exc
                self.abort()
                if isinstance(exc, OSError):
                    raise OutputError(f"{self.option}: could not move the results into {self.out}: "
                                      f"{_describe(exc)}; {self.out} was left as it was") from exc
                raise
            self._created = []
            self._cleanup()

    def _cleanup(self):
        """Remove the transaction directory after the commit point (retried once; a leftover is removed by
        the next run's :meth:`prepare`)."""
        txn, self.txn = self.txn, None
        for _ in range(2):
            try:
                self._do(shutil.rmtree, txn)
                break
            except FileNotFoundError:
                break
            except OSError:
                continue
        _unlock(self._lock)
        self._lock = None

    def recover(self):
        """Finish the transactions that dead runs left in ``out``: roll back or remove each."""
        if not self.out.is_dir():
            return
        for txn in sorted(self.out.glob(PREFIX + "*")):
            if not txn.is_dir() or txn == self.txn:
                continue
            lock = _lock(txn / "owner.json")
            if lock is None:
                if not _dead_owner(txn):
                    continue  # a live run's, or one this host cannot judge (warned)
            try:
                plan_file = txn / "plan.json"
                if plan_file.is_file():  # a switch that stopped before its commit point
                    try:
                        plan = json.loads(plan_file.read_text(encoding="utf-8"))
                    except ValueError:
                        warnings.warn(f"{txn}: unreadable plan.json; this transaction is left as it is", stacklevel=2)
                        continue
                    _rollback(self.out, txn, plan, lambda f, *a: f(*a))
                shutil.rmtree(txn)
            finally:
                _unlock(lock)


def listed_files(out, index):
    """The files a previous run of a command wrote into ``out``, as its JSON ``index`` (``results.json``,
    ``compare.json``) lists them under ``files``: relative paths inside ``out`` only; [] when there is no
    readable index written by refmetrics."""
    try:
        previous = json.loads((Path(out) / index).read_text(encoding="utf-8"))
        files = previous.get("files", []) if previous.get("refmetrics") else []
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in files if isinstance(f, str) and ".." not in Path(f).parts and not Path(f).is_absolute()]


def _write_json(path, data):
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())


_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF)


def _lock(path):
    """An exclusive advisory lock on the file ``path``; None when another process holds it, when the
    file is missing, or when the filesystem has no locks."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _unlock(fd):
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)  # closing the descriptor releases the flock


@contextlib.contextmanager
def _locked(directory):
    """Hold an exclusive lock on ``directory`` itself (waiting for another run's switch to end); without
    locks on this filesystem, go on unlocked."""
    fd = None
    if fcntl is not None:
        try:
            fd = os.open(directory, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            if fd is not None:
                os.close(fd)
                fd = None
            if exc.errno not in _NO_LOCKS:
                raise
    try:
        yield
    finally:
        _unlock(fd)


def _dead_owner(txn):
    """Without a lock to ask: the transaction's recorded process ran on this host and is gone."""
    try:
        owner = json.loads((txn / "owner.json").read_text(encoding="utf-8"))
        host, pid = owner["host"], int(owner["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # being created right now, or not ours to judge
    if host != socket.gethostname():
        warnings.warn(f"{txn}: a transaction of a run on {host} (process {pid}) that this host cannot check; "
                      "left as it is", stacklevel=3)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _fsync_dir(directory):
    """Flush a directory's entries (best effort: not every filesystem or platform allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _rollback(out, txn, plan, do):
    """Undo a switch that stopped anywhere before its commit point (idempotent)."""
    for n in reversed(plan["new"]):
        staged, placed = txn / "new" / n, out / n
        if not staged.exists() and (placed.exists() or placed.is_symlink()):
            staged.parent.mkdir(parents=True, exist_ok=True)
            do(os.rename, placed, staged)  # the new file goes back to the staging area
    for d in reversed(plan["new_dirs"]):
        if (out / d).is_dir() and not any((out / d).iterdir()):
            do(os.rmdir, out / d)
    for n in plan["old"]:
        kept = txn / "old" / n
        if kept.exists() or kept.is_symlink():
            (out / n).parent.mkdir(parents=True, exist_ok=True)
            do(os.rename, kept, out / n)
