"""The backend suite (tests/test_backends.py) under the numba-cuda simulator, in subprocesses.

Every test run therefore runs every metric on the CUDA backend too, with the
launch shapes patched small (tests/cudasim.py), whether or not this machine has
a GPU. On a GPU, tests/test_backends.py also runs natively in this process.

The simulator runs every CUDA thread as a Python thread, so the whole suite
takes minutes. It runs as a few parts, one subprocess each, so that pytest
reports each part as it passes (``-v`` names them); with ``-s`` the
subprocess's own ``-v`` lines are streamed as they come. The last part takes
every test the others do not name, so a test added to test_backends.py always
runs somewhere. Each part must pass with nothing skipped, and must have run at
least as many tests, and as many CUDA cases (a ``cuda`` or ``device`` id), as
it has today: a part that silently ran on the CPU alone fails.
"""

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# name -> (test functions of tests/test_backends.py, at least this many tests, of which CUDA cases)
PARTS = {
    "ranking-scalars": (["test_ranking_scalars"], 54, 36),
    "curves-binned-f1": (["test_curves_and_f1", "test_binned_mode", "test_f1_score",
                          "test_sigmoid_cut_reproduces_the_cpu_rule"], 31, 20),
    "regions": (["test_region_metrics"], 6, 4),
    "states-and-statistics": (["test_classes_split_and_merge", "test_merged_states_stay_intact",
                               "test_float32_and_float64_batches_merge", "test_min_max_and_distribution"], 12, 8),
    "errors-inputs-device-blocks": (None, 9, 7),  # everything else: errors, strided inputs, sorts, groups, new tests
}
NAMED = [name for functions, _, _ in PARTS.values() if functions for name in functions]
RESULT = re.compile(r"^(tests/test_backends\.py::(\S+)) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
CUDA_CASE = re.compile(r"[\[-](cuda|device)[\]-]|_device\b|_device\[|radix_sort")
TIMEOUT = 1800  # seconds per part; the slowest takes a few minutes on two shared cores


def _keyword(functions):
    if functions is None:
        return "not (" + " or ".join(NAMED) + ")"
    return " or ".join(functions)


def _run_part(functions):
    """Run the part in a subprocess; stream its lines to stdout; return ``(returncode, lines)``."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONUNBUFFERED": "1"}  # lines as the tests finish
    cmd = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests/test_backends.py",
           "-k", _keyword(functions)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
                            bufsize=1)
    timer = threading.Timer(TIMEOUT, proc.kill)
    timer.start()
    lines = []
    print(flush=True)  # with -s, the part's lines start under pytest's own line
    try:
        for line in proc.stdout:
            lines.append(line)
            print(f"  [cudasim] {line}", end="", flush=True)  # seen with -s; kept in the report otherwise
        proc.wait()
    finally:
        timer.cancel()
    return proc.returncode, lines


@pytest.mark.parametrize("part", list(PARTS))
def test_backend_suite_passes_under_the_cuda_simulator(part):
    functions, min_tests, min_cuda = PARTS[part]
    code, lines = _run_part(functions)
    tail = "".join(lines[-60:])
    assert code == 0, f"part {part}: exit {code}\n{tail}"
    results = [m for m in map(RESULT.match, lines) if m]
    statuses = {m.group(3) for m in results}
    assert statuses == {"PASSED"}, f"part {part}: {sorted(statuses)}\n{tail}"
    passed = [m.group(2) for m in results]
    cuda_cases = [test for test in passed if CUDA_CASE.search(test)]
    # the CUDA backends were collected (the simulator counts as CUDA) and nothing was skipped
    assert len(passed) >= min_tests and len(cuda_cases) >= min_cuda, (
        f"part {part}: {len(passed)} tests passed (at least {min_tests} expected), {len(cuda_cases)} of them "
        f"CUDA cases (at least {min_cuda})\n{tail}")
    summary = lines[-1] if lines else ""
    assert "skipped" not in summary and re.search(rf"\b{len(passed)} passed\b", summary), summary


def test_the_parts_name_existing_tests():
    """A renamed test must not leave a named part empty while the catch-all part takes it."""
    source = (ROOT / "tests" / "test_backends.py").read_text(encoding="utf-8")
    for name in NAMED:
        assert re.search(rf"^\s*def {name}\(", source, re.MULTILINE), f"{name} is not in tests/test_backends.py"
