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

collect_ignore = ["cudasim.py"]  # simulator set-up, imported above when NUMBA_ENABLE_CUDASIM=1
