"""The backend suite (tests/test_backends.py) under the numba-cuda simulator, in a subprocess.

Every test run therefore runs every metric on the CUDA backend too, with the
launch shapes patched small (tests/cudasim.py), whether or not this machine has
a GPU. On a GPU, tests/test_backends.py also runs natively in this process.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_backend_suite_passes_under_the_cuda_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_backends.py"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=3000)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    # the CUDA backends were collected (the simulator counts as CUDA) and nothing was skipped
    assert passed and int(passed.group(1)) >= 100 and "skipped" not in summary, summary
