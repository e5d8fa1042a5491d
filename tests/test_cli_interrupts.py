"""Ordinary events at a terminal end without a traceback: Ctrl-C, a reader that goes away."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

INTERRUPTED = textwrap.dedent("""
    import os, signal, sys
    # as at a terminal: a shell starts background jobs (a CI script run with &) with SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from refmetrics import cli, evaluate
    add, seen = evaluate.GroupState.add, [0]
    def add_then_ctrl_c(self, *args, **kwargs):
        seen[0] += 1
        if seen[0] == 3:  # Ctrl-C while the third map is read
            os.kill(os.getpid(), signal.SIGINT)
        return add(self, *args, **kwargs)
    evaluate.GroupState.add = add_then_ctrl_c
    sys.exit(cli.main(sys.argv[1:]))
""")


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own file")
    proc = subprocess.run([sys.executable, "-c", INTERRUPTED, "evaluate", "--demo", "--quiet", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.splitlines() == [f"refmetrics evaluate: interrupted; {out} was left as it was"]
    assert proc.stdout == ""
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # nothing staged is left behind
    # a fresh --out is not left behind either
    proc = subprocess.run([sys.executable, "-c", INTERRUPTED, "evaluate", "--demo", "--quiet", "--out",
                           str(tmp_path / "new" / "results")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr
    assert not (tmp_path / "new").exists()


def test_a_closed_pipe_ends_quietly():
    # the reader is gone before the first line is written: every write fails with EPIPE
    proc = subprocess.Popen([sys.executable, "-m", "refmetrics", "example"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=600) == 128 + signal.SIGPIPE
    assert err == b""
    # as a user types it
    proc = subprocess.run(["bash", "-c", f"'{sys.executable}' -m refmetrics example | head -3"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stderr == "" and len(proc.stdout.splitlines()) == 3
