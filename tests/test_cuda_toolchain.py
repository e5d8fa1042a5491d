"""The CUDA toolchain without a GPU: the compile check's own check, and the kernels' disk cache.

- ``tests/cuda_compile.py`` (run by tests/test_cuda_sim.py on every kernel) must fail on a kernel that
  runs under the simulator but cannot compile for a GPU, and pass on one that can.
- The disk cache (refmetrics/kernels/cuda/_jit.py) is keyed on every kernel source and on the module
  numbers numba freezes into the code, so that an edit or a patched constant is a miss, never a stale hit.

These run without the simulator (it has neither a compiler nor a disk cache).
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("the compiler and the disk cache exist only outside the simulator", allow_module_level=True)

import json  # noqa: E402

import numpy as np  # noqa: E402

from numba import cuda  # noqa: E402
from numba.core import types  # noqa: E402

from refmetrics.kernels.cuda import _jit  # noqa: E402
from refmetrics.kernels.cuda import ranking as K  # noqa: E402

from .cuda_compile import compile_all, kernels_of_the_library  # noqa: E402


def _planted(values, out):
    """Runs under the simulator (it is Python there); a kernel cannot allocate an array on a GPU."""
    i = cuda.grid(1)
    if i < values.size:
        out[i] = np.empty(3).size


def _sound(values, out):
    i = cuda.grid(1)
    if i < values.size:
        out[i] = values[i] * 2


def test_the_compile_check_fails_on_a_planted_lowering_error():
    kernels = {("tests.planted", "planted"): cuda.jit(_planted), ("tests.planted", "sound"): cuda.jit(_sound),
               ("refmetrics.kernels.cuda.ranking", "label_flags"): K.label_flags}
    args = json.dumps([["device", "<f4", 1, "C"], ["device", "<i8", 1, "C"]])
    signatures = {("tests.planted", "planted", args): 1, ("tests.planted", "sound", args): 1,
                  ("refmetrics.kernels.cuda.ranking", "label_flags",
                   json.dumps([["device", "|i1", 1, "C"], ["scalar", "int8"], ["device", "|i1", 1, "C"]])): 1}
    failures, rows = compile_all(signatures, (9, 0), kernels=kernels)
    assert [row["kernel"] for row in rows] == ["refmetrics.kernels.cuda.ranking.label_flags", "tests.planted.sound"]
    assert len(failures) == 1 and failures[0].startswith("planted.planted(<f4:1:C, <i8:1:C): Typing"), failures
    # a kernel of the library that no record launched is a failure too
    failures, _ = compile_all({}, (9, 0), kernels={("refmetrics.kernels.cuda.ranking", "label_flags"):
                                                   K.label_flags})
    assert failures == ["refmetrics.kernels.cuda.ranking.label_flags: never launched under the simulator, so never "
                        "compiled here: add a case to tests/test_backends.py or tests/cuda_signatures.py"]


def test_column_mean_std_squares_are_not_fused():
    """NVVM contracts ``d * d + s`` into an FMA by default: the squares go through ``dmul_rn`` (PTX
    ``mul.rn.f64``, exempt from contraction), and no f64 FMA is left in AnomalyScoreDistribution's
    kernel, so the device computes the compensated sums as written."""
    from refmetrics.kernels.cuda import stats as KS

    from .cuda_compile import presenting

    vec = types.Array(types.float64, 1, "C")
    for cc in ((8, 0), (9, 0)):
        with presenting(cc):
            ptx, _ = cuda.compile_ptx(KS.column_mean_std.py_func, (vec, types.int64, vec, vec), cc=cc)
        assert "mul.rn.f64" in ptx and "fma.rn.f64" not in ptx


class _Codegen:
    def magic_tuple(self):
        return ("nvptx64-nvidia-cuda", "sm_90", "")


SIG = (types.uint32[::1], types.uint64[::1], types.boolean, types.uint32, types.uint32, types.uint64, types.uint64,
       types.int64, types.int64[::1], types.int64[::1])


def test_every_kernel_uses_the_keyed_cache():
    kernels = kernels_of_the_library()
    assert len(kernels) >= 30, sorted(kernels)  # every module's kernels were found
    plain = [f"{m}.{n}" for (m, n), k in kernels.items() if not isinstance(k._cache, _jit._Cache)]
    assert plain == []
    for path in (_jit._KERNELS / "cuda").glob("*.py"):  # nothing asks numba-cuda for its plain cache
        assert not re.search(r"cuda\.jit\([^)]*cache", path.read_text(encoding="utf-8")), path.name


def test_a_patched_module_constant_changes_the_key(monkeypatch):
    cache = _jit._Cache(K.tile_histogram.py_func)
    before = cache._index_key(SIG, _Codegen())
    assert ("RADIX_SIZE", repr(K.RADIX_SIZE)) in _jit.frozen_globals(K.tile_histogram.py_func)
    assert cache._index_key(SIG, _Codegen()) == before  # stable
    monkeypatch.setattr(K, "RADIX_SIZE", 16)
    assert cache._index_key(SIG, _Codegen()) != before


def test_an_edited_helper_in_another_file_changes_the_key(tmp_path, monkeypatch):
    """The CUDA key map is compiled from kernels/cpu/keys.py: editing that file must change the
    key of kernels in kernels/cuda/ that inline it."""
    copy = tmp_path / "kernels"
    shutil.copytree(_jit._KERNELS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(_jit, "_KERNELS", copy)
    original = _jit.source_hash()
    assert original == _jit._SOURCE_HASH  # the copy hashes as the package does
    helper = copy / "cpu" / "keys.py"
    text = helper.read_text(encoding="utf-8")
    assert "k = b ^ ones" in text  # the key map's line this test edits
    helper.write_text(text.replace("k = b ^ ones", "k = b ^ ones  # edited"), encoding="utf-8")
    edited = _jit.source_hash()
    assert edited != original
    monkeypatch.setattr(_jit, "_SOURCE_HASH", edited)
    cache = _jit._Cache(K.encode_keys.py_func)
    monkeypatch.setattr(_jit, "_SOURCE_HASH", original)
    key_original = cache._index_key(SIG, _Codegen())
    monkeypatch.setattr(_jit, "_SOURCE_HASH", edited)
    assert cache._index_key(SIG, _Codegen()) != key_original


def test_numba_cuda_loads_where_numpy_has_no_row_stack():
    """NumPy 2.5 removed ``np.row_stack``, which numba-cuda 0.30.4 names when its array support loads (the
    first real-GPU run failed every kernel so); importing the CUDA kernels restores the alias first."""
    code = ("import numpy as np\n"
            "if hasattr(np, 'row_stack'):\n"
            "    del np.row_stack  # as NumPy 2.5\n"
            "import refmetrics.kernels.cuda\n"
            "assert np.row_stack is np.vstack\n"
            "import numba.cuda.np.arrayobj  # numba-cuda's array support: the module that names it\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, NUMBA_ENABLE_CUDASIM="1"))
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
