"""Test configuration: CI runs hypothesis derandomized, so a green run stays green on the same code;
under the numba-cuda simulator the CUDA launch shapes are patched small (tests/cudasim.py)."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    import importlib

    importlib.import_module("tests.cudasim")  # small launch shapes and a thread-safe simulator (see the module)

# simulator set-up (imported above when NUMBA_ENABLE_CUDASIM=1) and the compile check's two scripts, which
# tests/test_cuda_sim.py runs in subprocesses (the sweep only under the simulator, the compiler only outside it)
collect_ignore = ["cudasim.py", "cuda_signatures.py", "cuda_compile.py"]


def pytest_configure(config):
    """numba-cuda (0.30) has its own ``NumbaWarning`` class, outside ``numba.NumbaWarning`` that
    pyproject.toml turns into errors: add it where this numba-cuda has it (a ``-W`` option naming it
    would stop pytest at start with a numba-cuda that lacks it)."""
    try:
        import numba
        from numba.cuda.core.errors import NumbaWarning
    except Exception:  # noqa: BLE001 - no numba-cuda, or one without the class: nothing to add
        return
    if not issubclass(NumbaWarning, numba.NumbaWarning):
        config.addinivalue_line("filterwarnings", "error::numba.cuda.core.errors.NumbaWarning")
