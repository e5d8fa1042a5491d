"""The CUDA ranking kernels under the numba-cuda simulator (a subprocess with NUMBA_ENABLE_CUDASIM=1).

Work in progress (issue 5): the kernels exist and are checked here against the
CPU path; the public functions do not dispatch to them yet.
"""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import numpy as np
    from fractions import Fraction
    from refmetrics.kernels.cuda import ranking as KC, _driver as D
    from refmetrics.functional import _ranked as R
    KC.THREADS = 8  # multi-block, multi-tile, every radix pass
    rng = np.random.default_rng(20261125)
    for dtype, n in ((np.float32, 150), (np.float64, 90)):
        scores = np.round(rng.standard_normal(n) * 4).astype(dtype) / 4  # ties
        scores[:3] = [np.inf, -np.inf, -0.0]
        target = (rng.random(n) < 0.3).astype(np.uint8)
        d_pos, d_neg, n_nan, n_bad = D.split_sorted(scores, target)
        batch = R.intake_pair(scores, target, None, "cpu")
        part = R.partition(batch)
        pos, neg = R._sort_pair(part.pos, part.neg, part.hist)
        assert (d_pos.copy_to_host() == pos).all() and (d_neg.copy_to_host() == neg).all()
        u2_gpu = D.auroc_u2(d_pos, d_neg)
        u2_cpu = R.auroc_u2(R.exact_groups(pos, neg))
        assert u2_gpu == u2_cpu, (u2_gpu, u2_cpu)
        ap_gpu = D.average_precision(d_pos, d_neg)
        ap_cpu = R.average_precision(R.exact_groups(pos, neg), pos.size)
        assert abs(ap_gpu - ap_cpu) <= 1e-15, (ap_gpu, ap_cpu)
        tp_g, fp_g, key_g = D.f1_best(d_pos, d_neg)
        tp_c, fp_c, key_c = R.f1_best(R.exact_groups(pos, neg), pos.size)
        assert (tp_g, fp_g, key_g.tolist()) == (tp_c, fp_c, key_c.tolist())
        from tests import naive
        exact = naive.average_precision(scores, target)
        assert abs(Fraction(ap_gpu) - exact) <= Fraction(1, 10**12)
        assert (n_nan, n_bad) == (0, 0)
    labels = (rng.random(77) < 0.4).astype(np.int8)
    from numba import cuda
    got = D.rank_of(cuda.to_device(labels), 1).copy_to_host()
    assert got.tolist() == (np.cumsum(labels == 1) - (labels == 1)).tolist()
    from refmetrics.kernels.cpu import binned as KBc, stats as KSc
    scores = rng.standard_normal(101) * 0.7 + 0.5
    scores[5] = np.nan
    target = (rng.random(101) < 0.4).astype(np.int64)
    target[7] = 3
    thr = np.linspace(0, 1, 9)
    hist_c = np.zeros((2, 10), np.int64)
    counts_c = KBc.binned_histogram(scores, target, False, np.int64(0), thr, hist_c)
    hist_g, n_nan, n_bad = D.binned_histogram(scores, target, thr)
    assert (hist_g == hist_c).all() and (n_nan, n_bad) == tuple(counts_c)
    vals = np.concatenate([scores, [-0.0]]).astype(np.float32)
    assert D.min_max(vals) == KSc.min_max_nan(vals)
    bad = np.array([0.5, np.nan, 0.2], np.float32)
    _, _, n_nan, n_bad = D.split_sorted(bad, np.array([0, 1, 7], np.uint8))
    assert (n_nan, n_bad) == (1, 1)
    print("ok")
''')


def test_cuda_kernels_match_the_cpu_under_the_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
