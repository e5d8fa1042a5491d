"""The backend suite (tests/test_backends.py) under the numba-cuda simulator, in subprocesses.

Every test run therefore runs every metric on the CUDA backend too, with the
launch shapes patched small (tests/cudasim.py), whether or not this machine has
a GPU. On a GPU, tests/test_backends.py also runs natively in this process.

The simulator runs every CUDA thread as a Python thread, so the whole suite
takes minutes. It runs as a few parts, one subprocess each, so that pytest
reports each part as it passes (``-v`` names them); with ``-s`` the
subprocess's own ``-v`` lines are streamed as they come. The fifth part takes
every test the others do not name, so a test added to test_backends.py always
runs somewhere; a sixth runs one case of each family again at the GPU's own
launch shapes (256 threads per block, 16 keys per thread, 8-bit digits). Each part must pass with nothing skipped, and must have run at
least as many tests, and as many CUDA cases (a ``cuda`` or ``device`` id), as
it has today: a part that silently ran on the CPU alone fails.

Each part records its kernel launches (kernel and argument types); the last test adds a sweep
of every dtype the intake accepts (``tests/cuda_signatures.py``) and compiles every recorded
signature to PTX for sm_80 and sm_90 (A100, H100/H200) with NVVM from PyPI, assembling it with
ptxas where available (``tests/cuda_compile.py``). No GPU is needed: a typing or lowering error
that the simulator, which runs the kernels as Python, cannot see fails here.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# name -> (test functions of tests/test_backends.py, at least this many tests, of which CUDA cases)
PARTS = {
    "ranking-scalars": (["test_ranking_scalars"], 72, 48),
    "curves-binned-f1": (["test_curves_and_f1", "test_binned_mode", "test_f1_score",
                          "test_sigmoid_cut_reproduces_the_cpu_rule"], 46, 30),
    "regions": (["test_region_metrics"], 6, 4),
    "states-and-statistics": (["test_classes_split_and_merge", "test_merged_states_stay_intact",
                               "test_float32_and_float64_batches_merge", "test_min_max_and_distribution"], 12, 8),
    "errors-inputs-device-blocks": (None, 33, 17),  # everything else: errors, strided inputs, sorts, groups, new tests
}
NAMED = [name for functions, _, _ in PARTS.values() if functions for name in functions]
# One more part runs one case of each family again at the GPU's own launch shapes (256 threads per block, 16
# keys per thread, 8-bit digits; tests/cudasim.py with REFMETRICS_SIM_SHAPES=gpu): full warps, the sort's
# real tables. The simulator runs each of a block's 256 threads as a Python thread, so a case takes about
# a minute: the small shapes above cover the multi-block and multi-tile paths, these the real ones.
GPU_SHAPES = ("(test_ranking_scalars and auroc-float32-ties-inf-cuda) or (test_curves_and_f1 and float32-ties-inf-device) "
              "or (test_region_metrics and float32-ties-cuda) or (test_f1_score and float32-ties-inf-device) "
              "or (test_binned_mode and float32-ties-inf-cuda) or (test_min_max_and_distribution and device) "
              "or test_radix_sort_at_the_gpu_block_shape")
PARTS["gpu-shapes"] = (GPU_SHAPES, 7, 7)
RESULT = re.compile(r"^(tests/test_backends\.py::(\S+)) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
CUDA_CASE = re.compile(r"[\[-](cuda|device)[\]-]|_device\b|_device\[|radix_sort")
TIMEOUT = 1800  # seconds per part; the slowest takes a few minutes on two shared cores


def _keyword(functions):
    if functions is None:
        return "not (" + " or ".join(NAMED) + ")"
    if isinstance(functions, str):  # the GPU shapes: CUDA cases only
        return f"({functions}) and not cpu"
    return " or ".join(functions)


RECORDS = {}  # part -> its launch records, for the compile check (filled as the parts pass)


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("launches")


def _simulator_env(records):
    """The environment of a simulator subprocess that records its launches into ``records``."""
    return {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONUNBUFFERED": "1",  # lines as the tests finish
            "REFMETRICS_RECORD_LAUNCHES": str(records)}


def _run_part(functions, records, gpu_shapes=False):
    """Run the part in a subprocess; stream its lines to stdout; return ``(returncode, lines)``."""
    env = _simulator_env(records)
    if gpu_shapes:
        env["REFMETRICS_SIM_SHAPES"] = "gpu"
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


def _check_part(part, records):
    functions, min_tests, min_cuda = PARTS[part]
    records.unlink(missing_ok=True)
    code, lines = _run_part(functions, records, gpu_shapes=part == "gpu-shapes")
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
    RECORDS[part] = records


@pytest.mark.parametrize("part", list(PARTS))
def test_backend_suite_passes_under_the_cuda_simulator(part, records_dir):
    _check_part(part, records_dir / f"{part}.jsonl")


def test_the_parts_name_existing_tests():
    """A renamed test must not leave a named part empty while the catch-all part takes it."""
    source = (ROOT / "tests" / "test_backends.py").read_text(encoding="utf-8")
    for name in NAMED:
        assert re.search(rf"^\s*def {name}\(", source, re.MULTILINE), f"{name} is not in tests/test_backends.py"


# ---------------------------------------------------------------------------
# the compile check: every kernel, every recorded signature, for real GPUs
# ---------------------------------------------------------------------------

ARCHITECTURES = ("8.0", "9.0")  # A100; H100 and H200


def _ptxas():
    """ptxas from the PATH or from PyPI's nvidia-cuda-nvcc (cuda-toolkit[nvcc]), or None."""
    found = shutil.which("ptxas")
    if found:
        return found
    try:
        import nvidia
    except ImportError:
        return None
    for root in nvidia.__path__:
        for path in sorted(glob.glob(os.path.join(root, "*", "bin", "ptxas*"))):
            if os.access(path, os.X_OK):
                return path
    return None


def test_every_kernel_compiles_for_sm80_and_sm90(records_dir):
    """The signatures the simulator parts launched (parts this session did not run are run now),
    plus every dtype the intake accepts, compiled for each architecture in a process of its own
    (without the simulator); ptxas checks registers, spills and static shared memory."""
    for part in PARTS:
        if part not in RECORDS:
            _check_part(part, records_dir / f"{part}.jsonl")
    sweep = records_dir / "dtypes.jsonl"
    sweep.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "tests.cuda_signatures"], cwd=ROOT, env=_simulator_env(sweep),
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"the dtype sweep failed under the simulator:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    records = [str(RECORDS[part]) for part in PARTS] + [str(sweep)]
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    ptxas = _ptxas()
    runs = {}
    for cc in ARCHITECTURES:
        cmd = [sys.executable, "-m", "tests.cuda_compile", "--cc", cc, *records]
        if ptxas:
            cmd += ["--ptxas", ptxas]
        runs[cc] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)
    outputs = {cc: run.communicate(timeout=TIMEOUT)[0] for cc, run in runs.items()}
    for cc, out in outputs.items():
        print(f"sm_{cc.replace('.', '')}: {out.strip().splitlines()[-1] if out.strip() else ''}")
        assert runs[cc].returncode == 0, f"compiling for compute capability {cc} failed:\n{out[-6000:]}"
