"""``--out`` holds exactly the old run or exactly the new one, whatever fails, and wherever it lives.

The switch of ``refmetrics evaluate`` (``refmetrics._outdir``) runs every file
operation through ``OutputDir._do``; these tests make the k-th one fail (an
``OSError``, a ``KeyboardInterrupt``, a SIGINT, a killed process) for every k,
and compare the whole tree of ``--out``, hidden files included, with the tree
before and with the tree a clean run leaves.
"""

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from refmetrics import _outdir
from refmetrics import cli
from refmetrics import evaluate

from .test_evaluate import build_tree

ROOT = Path(__file__).resolve().parents[1]


def snapshot(directory):
    """Every file (with its bytes) and directory below ``directory``, hidden ones included."""
    directory = Path(directory)
    return {str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(directory.rglob("*"))}


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    build_tree(tmp_path, np.random.default_rng(20261128))
    # the figures are rendered once per run configuration and written again from memory: these tests run
    # dozens of switches, and what they check is the switch, not matplotlib
    rendered = {}
    render = evaluate.writers.write_figures

    def write_figures(results, fpr_limit, directory):
        key = (tuple(r.category for r in results), fpr_limit)
        if key not in rendered:
            names = render(results, fpr_limit, directory)
            rendered[key] = {n: (directory / n).read_bytes() for n in names}
            return names
        for name, data in rendered[key].items():
            (directory / name).write_bytes(data)
        return list(rendered[key])

    monkeypatch.setattr(evaluate.writers, "write_figures", write_figures)
    return tmp_path


def _evaluate(root, out, *extra):
    return cli.main(["evaluate", "--quiet", "--maps", str(root / "maps"), "--gt", str(root / "gt"),
                     "--out", str(out), *map(str, extra)])


# the new run: one category of the two, another FPR limit: every table is rewritten, bottle's figures replaced,
# grid's removed (stale), so the switch renames, replaces and removes
NEW = ("--categories", "bottle", "--fpr-limit", 0.2)


def _old_and_new(root, monkeypatch):
    """``(out with the old run, its snapshot, the snapshot of the new run, the operations of the switch)``."""
    out = root / "out"
    assert _evaluate(root, out) == 0
    old = snapshot(out)
    reference = root / "reference"
    shutil.copytree(out, reference)
    ops = []
    plain = _outdir.OutputDir._do

    def counting(self, func, *args):
        ops.append(func.__name__)
        return plain(self, func, *args)

    monkeypatch.setattr(_outdir.OutputDir, "_do", counting)
    assert _evaluate(root, reference, *NEW) == 0
    monkeypatch.setattr(_outdir.OutputDir, "_do", plain)
    new = snapshot(reference)
    assert new != old and "figures/grid_roc.png" in old and "figures/grid_roc.png" not in new
    assert not any(name.startswith(_outdir.PREFIX) for name in old | new)
    return out, old, new, ops


def _commit_point(ops):
    """The index of the rename plan.json -> done.json: the last rename, before the cleanup."""
    return len(ops) - 1 - ops[::-1].index("rename")


def _fail_at(k, exc_factory):
    count = [0]
    plain = _outdir.OutputDir._do

    def failing(self, func, *args):
        count[0] += 1
        if count[0] == k:
            raise exc_factory()
        return plain(self, func, *args)

    return failing


def test_any_failing_file_operation_of_the_switch_leaves_the_old_or_the_new_run(dataset, monkeypatch, capsys):
    out, old, new, ops = _old_and_new(dataset, monkeypatch)
    commit = _commit_point(ops)
    assert ops[-1] == "rmtree" and len(ops) > 20, ops
    plain = _outdir.OutputDir._do
    for k in range(1, len(ops) + 1):
        monkeypatch.setattr(_outdir.OutputDir, "_do", _fail_at(k, lambda: OSError(errno.EIO, "injected I/O error")))
        rc = _evaluate(dataset, out, *NEW)
        err = capsys.readouterr().err
        if k <= commit + 1:  # up to the commit point: rolled back
            assert rc == 2 and "injected I/O error" in err and f"{out} was left as it was" in err, (k, ops[k - 1])
            assert snapshot(out) == old, (k, ops[k - 1])
        else:  # the cleanup after the commit point: retried, nothing left behind
            assert rc == 0, (k, err)
            assert snapshot(out) == new, k
            monkeypatch.setattr(_outdir.OutputDir, "_do", plain)
            assert _evaluate(dataset, out) == 0 and snapshot(out) == old  # back to the old run


def test_ctrl_c_during_the_switch_leaves_the_old_or_the_complete_new_run(dataset, monkeypatch, capsys):
    out, old, new, ops = _old_and_new(dataset, monkeypatch)
    plain = _outdir.OutputDir._do
    # a KeyboardInterrupt raised by an operation itself: rolled back
    for k in (1, 3, len(ops) // 2, len(ops) - 2):
        monkeypatch.setattr(_outdir.OutputDir, "_do", _fail_at(k, KeyboardInterrupt))
        assert _evaluate(dataset, out, *NEW) == 130
        err = capsys.readouterr().err
        assert err.strip() == f"refmetrics evaluate: interrupted; {out} was left as it was"
        assert snapshot(out) == old, k
    # a real SIGINT in the middle of the switch: held back until the switch is complete
    count = [0]

    def signalled(self, func, *args):
        count[0] += 1
        if count[0] == len(ops) // 2:
            os.kill(os.getpid(), signal.SIGINT)
        return plain(self, func, *args)

    monkeypatch.setattr(_outdir.OutputDir, "_do", signalled)
    assert _evaluate(dataset, out, *NEW) == 130
    assert capsys.readouterr().err.strip() == f"refmetrics evaluate: interrupted; {out} holds this run's complete " \
                                              "results"
    assert snapshot(out) == new


CRASH = textwrap.dedent("""
    import os, sys
    from refmetrics import _outdir, cli
    k, count, plain = int(sys.argv[1]), [0], _outdir.OutputDir._do
    def crashing(self, func, *args):
        count[0] += 1
        if count[0] == k:
            os._exit(9)  # the process dies here: no rollback, no cleanup, no lock release but by the kernel
        return plain(self, func, *args)
    _outdir.OutputDir._do = crashing
    sys.exit(cli.main(sys.argv[2:]))
""")


def test_a_run_killed_during_the_switch_is_rolled_back_or_finished_by_the_next_one(dataset, monkeypatch):
    out, old, new, ops = _old_and_new(dataset, monkeypatch)
    commit = _commit_point(ops)
    args = ["evaluate", "--quiet", "--maps", str(dataset / "maps"), "--gt", str(dataset / "gt"), "--out", str(out),
            *map(str, NEW)]
    first_move = ops.index("rename", 2) + 1  # the first old file moved aside (after the plan's two operations)
    for k in (first_move + 1, commit, commit + 2):  # one old file aside; all new files in; after the commit
        proc = subprocess.run([sys.executable, "-c", CRASH, str(k), *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 9, proc.stderr
        left = snapshot(out)
        assert any(name.startswith(_outdir.PREFIX) for name in left)  # the dead run's transaction
        if k <= commit:
            visible = {name for name in left if not name.startswith(_outdir.PREFIX)}
            assert visible != set(old)  # a file of the old run is missing: a mix, which the next run repairs
        _outdir.OutputDir(out).recover()
        assert snapshot(out) == (old if k <= commit else new), k
        if k > commit:
            assert _evaluate(dataset, out) == 0 and snapshot(out) == old


def test_a_live_run_s_staging_is_never_touched(tmp_path):
    first = _outdir.OutputDir(tmp_path / "out")
    first.prepare()
    (first.new / "results.json").write_text("{}")
    second = _outdir.OutputDir(tmp_path / "out")
    second.prepare()  # recovers nothing: the first one is alive (it holds its lock)
    assert (first.new / "results.json").is_file()
    second.abort()
    first.commit(["results.json"])
    assert snapshot(tmp_path / "out") == {"results.json": b"{}"}


MOUNTED = textwrap.dedent("""
    set -e
    mount -t tmpfs -o size=64m refmetrics-test "$1/mnt"
    mount -t tmpfs -o ro,size=1m refmetrics-test-ro "$1/ro"
    shift
    "$@"
""")

SCRIPT = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from refmetrics import cli
    root = Path(sys.argv[1])
    base = ["evaluate", "--quiet", "--maps", str(root / "maps"), "--gt", str(root / "gt")]
    # the mount point itself is --out: another filesystem than its parent and than the temporary directory
    assert os.stat(root / "mnt").st_dev != os.stat(root).st_dev
    assert cli.main(base + ["--out", str(root / "mnt")]) == 0
    assert cli.main(base + ["--out", str(root / "mnt"), "--categories", "bottle"]) == 0
    names = sorted(str(p.relative_to(root / "mnt")) for p in (root / "mnt").rglob("*"))
    expected = ["figures"] + [f"figures/bottle_{k}.png" for k in ("pr", "pro", "roc", "scores")]
    assert names == expected + ["results.json", "results.md", "results.tex"], names
    assert list(json.loads((root / "mnt" / "results.json").read_text())["categories"]) == ["bottle"]
    # a read-only filesystem: refused before anything is computed, nothing created
    assert cli.main(base + ["--out", str(root / "ro" / "out")]) == 2
    assert cli.main(base + ["--out", str(root / "ro")]) == 2
    assert not any((root / "ro").iterdir())
    print("mounted ok")
""")


@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="mounting a tmpfs in a private mount namespace needs Linux, root and unshare")
def test_out_on_a_tmpfs_mount_and_on_a_read_only_filesystem(dataset):
    (dataset / "mnt").mkdir()
    (dataset / "ro").mkdir()
    script = dataset / "script.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(["unshare", "-m", "sh", "-c", MOUNTED, "sh", str(dataset), sys.executable, str(script),
                           str(dataset)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "mounted ok" in proc.stdout, proc.stdout + proc.stderr
    assert "Read-only file system" in proc.stderr and "--out" in proc.stderr
    assert "Invalid cross-device link" not in proc.stderr and "Traceback" not in proc.stderr
    assert not any((dataset / "mnt").iterdir())  # the mount was private to that process


def test_a_failed_rollback_is_finished_by_the_next_run(dataset, monkeypatch, capsys):
    out, old, new, ops = _old_and_new(dataset, monkeypatch)
    plain = _outdir.OutputDir._do
    count = [0]
    middle = len(ops) // 2

    def failing_twice(self, func, *args):  # the switch fails in the middle, then so does its first step back
        count[0] += 1
        if count[0] in (middle, middle + 1):
            raise OSError(errno.EIO, f"injected I/O error {count[0]}")
        return plain(self, func, *args)

    monkeypatch.setattr(_outdir.OutputDir, "_do", failing_twice)
    assert _evaluate(dataset, out, *NEW) == 2
    err = capsys.readouterr().err
    assert "and so did putting the previous ones back" in err and "puts them back" in err
    monkeypatch.setattr(_outdir.OutputDir, "_do", plain)
    _outdir.OutputDir(out).recover()
    assert snapshot(out) == old
    assert _evaluate(dataset, out, *NEW) == 0 and snapshot(out) == new


def test_a_full_disk_while_staging_is_an_error_that_leaves_out_as_it_was(dataset, monkeypatch, capsys):
    out = dataset / "out"
    assert _evaluate(dataset, out) == 0
    old = snapshot(out)

    def full(results, fpr_limit, directory):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(evaluate.writers, "write_figures", full)
    assert _evaluate(dataset, out, "--fpr-limit", 0.2) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"refmetrics evaluate: --out: could not write the results into {out}: No space left on " \
                          f"device; {out} was left as it was"
    assert snapshot(out) == old


def test_two_switches_into_one_out_do_not_interleave(tmp_path):
    import threading

    out = tmp_path / "out"
    first, second = _outdir.OutputDir(out), _outdir.OutputDir(out)
    first.prepare()
    second.prepare()
    for target, text in ((first, "first"), (second, "second")):
        (target.new / "results.json").write_text(text)
        (target.new / text).write_text(text)
    inside, release = threading.Event(), threading.Event()
    plain = _outdir.OutputDir._do

    def slow_first(self, func, *args):
        if self is first:
            inside.set()
            release.wait(10)
        return plain(self, func, *args)

    _outdir.OutputDir._do = slow_first
    try:
        worker = threading.Thread(target=first.commit, args=(["results.json", "first"],))
        worker.start()
        assert inside.wait(10)
        late = threading.Thread(target=second.commit, args=(["results.json", "second"],))
        late.start()
        late.join(0.5)
        assert late.is_alive()  # the second switch waits for the first one's lock on out
        release.set()
        worker.join(10)
        late.join(10)
    finally:
        _outdir.OutputDir._do = plain
    assert snapshot(out) == {"first": b"first", "results.json": b"second", "second": b"second"}


def test_without_file_locks_a_dead_process_s_transaction_is_still_rolled_back(dataset, monkeypatch):
    out, old, new, ops = _old_and_new(dataset, monkeypatch)
    args = ["evaluate", "--quiet", "--maps", str(dataset / "maps"), "--gt", str(dataset / "gt"), "--out", str(out),
            *map(str, NEW)]
    proc = subprocess.run([sys.executable, "-c", CRASH, str(_commit_point(ops)), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 9, proc.stderr
    monkeypatch.setattr(_outdir, "fcntl", None)  # a filesystem without flock: the recorded owner decides
    _outdir.OutputDir(out).recover()
    assert snapshot(out) == old
