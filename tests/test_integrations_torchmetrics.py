"""refmetrics.integrations.torchmetrics: each metric as a torchmetrics.Metric, in one process and under DDP.

The oracle is refmetrics.functional on the whole data (itself checked against exact fractions elsewhere):
every wrapped metric must give its value bit for bit, in float64, whatever the batching, and the same in
two processes (torch.distributed on gloo, each updating with a part of the data) as in one.
"""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchmetrics")

from refmetrics import functional as F  # noqa: E402
from refmetrics.integrations import torchmetrics as RT  # noqa: E402


def data(seed=0, n=8):
    rng = np.random.default_rng(seed)
    maps = np.round(rng.random((n, 24, 20)) ** 2, 3).astype(np.float32)  # ties
    masks = np.zeros(maps.shape, bool)
    for i in range(1, n, 2):  # blobs in every other image; the others defect-free
        y, x = rng.integers(2, 14, 2)
        masks[i, y:y + 6, x:x + 5] = True
        maps[i][masks[i]] += 0.3
    return maps, masks


def expected(name, maps, masks):
    """``(constructor kwargs, functional value)`` for the metric ``name`` on the whole data."""
    s, t = maps.ravel(), masks.ravel()
    scores = maps.reshape(len(maps), -1).max(axis=1).astype(np.float64)
    labels = masks.reshape(len(masks), -1).any(axis=1)
    return {
        "AUROC": ({}, (s, t), F.auroc(s, t)),
        "AUPR": ({}, (s, t), F.average_precision(s, t)),
        "AUPRO": ({"fpr_limit": 0.3}, (maps, masks), F.aupro(maps, masks, fpr_limit=0.3)),
        "PRO": ({"threshold": 0.5}, (maps, masks), F.pro_score(maps, masks, threshold=0.5)),
        "F1Max": ({}, (s, t), F.f1_max(s, t)),
        "F1Score": ({"threshold": 0.5}, (s, t), F.f1_score(s, t, threshold=0.5)),
        "AUPIMO": ({"fpr_bounds": (1e-2, 1e-1)}, (maps, masks), F.aupimo(maps, masks, fpr_bounds=(1e-2, 1e-1))),
        "PBn": ({"fpr": 0.1}, (scores, labels), F.pbn(scores, labels, fpr=0.1)),
        "PGn": ({"fnr": 0.1}, (scores, labels), F.pgn(scores, labels, fnr=0.1)),
    }[name]


NAMES = ["AUROC", "AUPR", "AUPRO", "PRO", "F1Max", "F1Score", "AUPIMO", "PBn", "PGn"]


def same(got, want):
    if isinstance(want, tuple):
        return all(same(g, w) for g, w in zip(got, want))
    want = np.asarray(want, np.float64)
    got = got.cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    return got.dtype == np.float64 and np.array_equal(got, want, equal_nan=True)


@pytest.mark.parametrize("name", NAMES)
def test_each_metric_is_refmetrics_value_in_float64_whatever_the_batches(name):
    maps, masks = data()
    kwargs, inputs, want = expected(name, maps, masks)
    metric = getattr(RT, name)(**kwargs)
    per_image = inputs[0].ndim == 3 or inputs[0].size == len(maps)  # maps, or one score per image
    step = 3 if per_image else inputs[0].size // 3 + 1
    for a in range(0, len(inputs[0]), step):  # batches of images (or of elements), torch and NumPy inputs
        batch = [x[a:a + step] for x in inputs]
        metric.update(*[torch.from_numpy(np.ascontiguousarray(x)) if a else x for x in batch])
    assert same(metric.compute(), want), (name, metric.compute(), want)
    metric.reset()
    metric.update(*[torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])  # one batch: the same
    assert same(metric.compute(), want)


def test_forward_reset_outputs_and_curves():
    maps, masks = data(1)
    s, t = torch.from_numpy(maps.ravel()), torch.from_numpy(masks.ravel())
    half = s.numel() // 2
    metric = RT.F1Max()
    first = metric(s[:half], t[:half])  # forward: the batch's own value, and the batch is kept
    assert same(first, F.f1_max(s[:half].numpy(), t[:half].numpy()))
    metric(s[half:], t[half:])
    assert same(metric.compute(), F.f1_max(s.numpy(), t.numpy()))
    reference = __import__("refmetrics").F1Max()
    reference.update(s.numpy(), t.numpy())
    reference.compute()
    assert metric.threshold == reference.threshold  # the attribute compute sets is copied
    metric.reset()
    with pytest.warns(UserWarning):  # torchmetrics warns of a compute before any update; refmetrics says NaN
        assert torch.isnan(metric.compute())
    curve = RT.BinaryPrecisionRecallCurve()
    curve.update(s, t)
    want = F.precision_recall_curve(s.numpy(), t.numpy())
    assert all(same(g, w) for g, w in zip(curve.compute(), want))
    lo, hi = RT.MinMax()(torch.from_numpy(maps))
    assert (lo.item(), hi.item()) == (float(maps.min()), float(maps.max()))
    assert same(RT.ManualThreshold(0.25).compute(), 0.25)


def test_persistent_state_round_trips_and_bad_input_is_named():
    maps, masks = data(2)
    metric = RT.AUPRO(fpr_limit=0.3)
    assert not metric.state_dict()  # torchmetrics' default: states are not saved
    metric.persistent(True)
    metric.update(torch.from_numpy(maps), torch.from_numpy(masks))
    again = RT.AUPRO(fpr_limit=0.3)
    again.persistent(True)
    again.load_state_dict(metric.state_dict())
    assert same(again.compute(), F.aupro(maps, masks, fpr_limit=0.3))
    with pytest.raises(ValueError, match=r"fpr_limit: expected a number in \(0, 1\], received 3"):
        RT.AUPRO(fpr_limit=3)
    with pytest.raises(TypeError, match=r"AUROC.update: expected 2 inputs \(preds, target\), received 1"):
        RT.AUROC().update(torch.zeros(3))
    with pytest.raises(TypeError, match=r"AUROC.update: preds: expected a real or bool tensor, received dtype "
                                        r"torch.complex64"):
        RT.AUROC().update(torch.zeros(3, dtype=torch.complex64), torch.zeros(3))
    mixed = RT.AUROC()  # each batch keeps its own dtype: float16, float64, int labels, bool labels
    s, t = torch.from_numpy(maps.ravel()), torch.from_numpy(masks.ravel())
    mixed.update(s[:100].half(), t[:100].int())
    mixed.update(s[100:].double(), t[100:])
    assert same(mixed.compute(), F.auroc(np.concatenate([s[:100].half().float().numpy(), s[100:].numpy()]),
                                         masks.ravel()))
    bad = RT.AUROC()
    bad.update(torch.tensor([0.1, float("nan")]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="NaN"):  # refmetrics' own check, at compute
        bad.compute()
    assert repr(RT.AUPRO(fpr_limit=0.05)).startswith("AUPRO(fpr_limit=0.05")
    assert RT.AUROC(compute_on_cpu=True, sync_on_compute=False).compute_on_cpu


DDP_CHILD = r"""
import json, os, sys
import numpy as np
import torch
import torch.distributed as dist
sys.path.insert(0, sys.argv[3])
from tests.test_integrations_torchmetrics import NAMES, data, expected
from refmetrics.integrations import torchmetrics as RT

rank, port = int(sys.argv[1]), sys.argv[2]
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
dist.init_process_group("gloo", rank=rank, world_size=2)
maps, masks = data(3, n=9)
out = {}
for name in NAMES:
    kwargs, inputs, _ = expected(name, maps, masks)
    metric = getattr(RT, name)(**kwargs)
    n = len(inputs[0])
    cut = n // 3  # uneven halves: rank 0 a third, rank 1 the rest, in two batches
    part = [x[:cut] for x in inputs] if rank == 0 else [x[cut:] for x in inputs]
    step = max(1, len(part[0]) // 2)
    for a in range(0, len(part[0]), step):
        metric.update(*[torch.from_numpy(np.ascontiguousarray(x[a:a + step])) for x in part])
    value = metric.compute()
    out[name] = float(value)
    if name == "F1Max":
        out["F1Max.threshold"] = float(metric.threshold)
lonely = RT.AUPRO(fpr_limit=0.3)  # rank 1 sees no batch: its empty states must gather with rank 0's
if rank == 0:
    lonely.update(torch.from_numpy(maps), torch.from_numpy(masks))
out["AUPRO, one rank without data"] = float(lonely.compute())
spread = RT.AnomalyScoreDistribution()  # an optional input (the maps) given on one rank only
positive = maps.reshape(len(maps), -1).max(1) + 0.5
if rank == 0:
    spread.update(anomaly_scores=torch.from_numpy(positive[:4]))
else:
    spread.update(anomaly_scores=torch.from_numpy(positive[4:]), anomaly_maps=torch.from_numpy(maps[4:] + 0.5))
out["AnomalyScoreDistribution"] = [v.tolist() for v in spread.compute()]
extremes = RT.MinMax()  # two numbers, reduced by min and max; rank 0 sees nothing
if rank == 1:
    extremes.update(torch.from_numpy(maps[:5]))
    extremes.update(predictions=torch.from_numpy(maps[5:]))
out["MinMax"] = [v.item() for v in extremes.compute()]
dist.destroy_process_group()
print("RESULT " + json.dumps(out))
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_on_gloo_two_processes_equal_one():
    # two processes, each updating with its part of the data; torchmetrics gathers the states before
    # compute: every metric must equal the single-process (functional) value bit for bit, on both ranks
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    port = str(_free_port())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen([sys.executable, "-c", DDP_CHILD, str(r), port, root], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for r in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        results.append(__import__("json").loads(out.strip().splitlines()[-1][len("RESULT "):]))
    maps, masks = data(3, n=9)
    reference = __import__("refmetrics").F1Max()
    reference.update(maps.ravel(), masks.ravel())
    reference.compute()
    for name in NAMES:
        want = expected(name, maps, masks)[2]
        assert results[0][name] == results[1][name] == want or (np.isnan(want) and np.isnan(results[0][name])), name
    assert results[0]["F1Max.threshold"] == results[1]["F1Max.threshold"] == reference.threshold
    lonely = "AUPRO, one rank without data"
    assert results[0][lonely] == results[1][lonely] == F.aupro(maps, masks, fpr_limit=0.3)
    want = F.anomaly_score_distribution(anomaly_scores=maps.reshape(9, -1).max(1) + 0.5, anomaly_maps=maps[4:] + 0.5)
    want = [np.asarray(w, np.float64).tolist() for w in want]
    assert results[0]["AnomalyScoreDistribution"] == results[1]["AnomalyScoreDistribution"] == want
    assert results[0]["MinMax"] == results[1]["MinMax"] == [float(maps.min()), float(maps.max())]


def test_import_refmetrics_does_not_import_torch_and_a_missing_torch_is_named():
    code = ("import sys, refmetrics, refmetrics.integrations; "
            "print(sorted(m for m in ('torch', 'torchmetrics', 'anomalib', 'lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = ("import sys; sys.modules['torchmetrics'] = None\n"
            "try:\n    import refmetrics.integrations.torchmetrics\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 'pip install "refmetrics[torch]"' in out and "refmetrics.integrations.torchmetrics needs" in out
    code = code.replace("torchmetrics", "anomalib")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 'pip install "refmetrics[anomalib]"' in out and "refmetrics.integrations.anomalib needs" in out


def test_batches_of_any_dtype_and_length_are_kept_apart_from_the_callers_buffers():
    # each batch's bytes are a padded copy: float32 then float64 scores, odd-length bool then int64 labels,
    # bfloat16 (kept as float32, exactly), and a buffer the caller overwrites after update
    rng = np.random.default_rng(5)
    scores = np.round(rng.random(203), 2)
    labels = rng.random(203) > 0.6
    metric = RT.AUROC()
    metric.update(torch.tensor(scores[:7], dtype=torch.float32), torch.tensor(labels[:7]))  # 28 bytes, 7 bools
    metric.update(torch.tensor(scores[7:100], dtype=torch.float64), torch.tensor(labels[7:100], dtype=torch.int64))
    buffer = torch.tensor(scores[100:], dtype=torch.bfloat16)
    metric.update(buffer, torch.tensor(labels[100:], dtype=torch.int32))
    kept = buffer.float().numpy().astype(np.float64)
    buffer.fill_(0.0)  # reused by the caller: what was kept must not change
    want = F.auroc(np.concatenate([scores[:7].astype(np.float32), scores[7:100], kept]), labels)
    assert same(metric.compute(), want)
    reuse = RT.AUROC()
    s, t = torch.zeros(4), torch.zeros(4, dtype=torch.bool)
    for values, truth in (([0.1, 0.9, 0.2, 0.8], [0, 1, 0, 1]), ([0.9, 0.1, 0.8, 0.2], [0, 1, 0, 1])):
        s.copy_(torch.tensor(values))
        t.copy_(torch.tensor(truth, dtype=torch.bool))
        reuse.update(s, t)
    assert same(reuse.compute(), F.auroc([0.1, 0.9, 0.2, 0.8, 0.9, 0.1, 0.8, 0.2], [0, 1, 0, 1, 0, 1, 0, 1]))
    lo, hi = RT.MinMax()(torch.tensor([0.5, 2.0]), torch.tensor([0, 1]))  # labels ignored, as anomalib's MinMax
    assert (lo.item(), hi.item()) == (0.5, 2.0)
    # NumPy as refmetrics reads it: reversed strides, big-endian bytes, uint16 labels; a masked array refused
    odd = RT.AUROC()
    odd.update(scores[::-1].astype(">f8"), labels[::-1].astype(np.uint16))
    odd.update(torch.tensor(scores[:5]), torch.tensor(labels[:5].astype(np.uint16)))
    assert same(odd.compute(), F.auroc(np.concatenate([scores[::-1], scores[:5]]),
                                       np.concatenate([labels[::-1], labels[:5]])))
    with pytest.raises(TypeError, match=r"AUROC.update: preds: expected an array without a mask"):
        RT.AUROC().update(np.ma.masked_array(scores, labels), labels)



def test_keywords_collections_names_logs_and_reset(caplog):
    # update by the refmetrics argument names (what MetricCollection passes); the attributes anomalib's
    # classes have (PG/PB names, F1Score.threshold, MinMax.min/max); outputs cleared by reset; the
    # F1AdaptiveThreshold fall-back logged as well as warned; optional keyword inputs of
    # AnomalyScoreDistribution
    from torchmetrics import MetricCollection

    maps, masks = data(4)
    s, t = torch.from_numpy(maps.ravel()), torch.from_numpy(masks.ravel())
    assert same(RT.AUROC()(preds=s, target=t), F.auroc(s.numpy(), t.numpy()))
    collection = MetricCollection({"auroc": RT.AUROC(), "f1": RT.F1Max(), "range": RT.MinMax()})
    collection.update(preds=s[:500], target=t[:500])
    collection.update(s[500:], t[500:])
    got = collection.compute()
    assert same(got["auroc"], F.auroc(s.numpy(), t.numpy())) and same(got["f1"], F.f1_max(s.numpy(), t.numpy()))
    assert same(got["range"], (float(s.min()), float(s.max())))
    with pytest.raises(TypeError, match=r"AUROC.update: expected the inputs preds, target, received the unknown "
                                        r"keyword argument\(s\) labels"):
        RT.AUROC().update(s, labels=t)
    with pytest.raises(TypeError, match=r"AUROC.update: preds: expected it by position or by keyword, received both"):
        RT.AUROC().update(s, t, preds=s)

    f1 = RT.F1Max()
    f1.update(s, t)
    f1.compute()
    reference = __import__("refmetrics").F1Max()
    reference.update(s.numpy(), t.numpy())
    reference.compute()
    assert f1.threshold.dtype == torch.float64 and f1.threshold.item() == reference.threshold
    f1.reset()
    assert torch.isnan(f1.threshold)  # as a fresh metric's, not the last computed one

    assert (RT.PGn().name, RT.PGn(fnr=0.2).name, RT.PBn(fpr=0.1).name) == ("PG5", "PG20", "PB10")
    assert RT.F1Score(threshold=0.25).threshold == 0.25
    bounds = RT.MinMax()
    assert (bounds.min.item(), bounds.max.item()) == (float("inf"), float("-inf"))
    bounds.update(s[:10])
    bounds.update(s[10:], t[10:])
    assert (bounds.min.item(), bounds.max.item()) == (float(s.min()), float(s.max()))

    adaptive = RT.F1AdaptiveThreshold()
    adaptive.update(s[:50], torch.zeros(50, dtype=torch.bool))
    with pytest.warns(UserWarning, match="no anomalous sample"), caplog.at_level("WARNING"):
        assert adaptive.compute().item() == float(s[:50].max())
    assert "does not contain any anomalous images" in caplog.text and "highest anomaly score" in caplog.text

    auroc = RT.AUROC()
    auroc.update(s, t)
    figure, title = auroc.generate_figure()  # what anomalib's metrics callback plots
    assert title == "ROC" and figure.axes and not hasattr(RT.F1Max(), "generate_figure")
    __import__("matplotlib.pyplot").pyplot.close(figure)

    dist = RT.AnomalyScoreDistribution()
    dist.update(anomaly_scores=s[:40] + 0.5)
    dist.update(anomaly_maps=torch.from_numpy(maps[:3]) + 0.5, labels=t[:3])  # labels ignored, as anomalib's
    want = F.anomaly_score_distribution(anomaly_scores=s[:40].numpy() + 0.5, anomaly_maps=maps[:3] + 0.5)
    assert all(same(g, w) for g, w in zip(dist.compute(), want))
    assert same(dist.image_std, want[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (benchmarks/gpu_check.sh runs it)")
def test_cuda_tensors_stay_on_the_device_and_give_the_cpu_values():
    # kept on the GPU (the states are CUDA tensors), read there by refmetrics' CUDA backend, returned on the
    # GPU as float64, and equal to refmetrics.functional on the host copies
    maps, masks = data(6)
    for name in ("AUROC", "AUPRO", "F1Max"):
        kwargs, inputs, want = expected(name, maps, masks)
        metric = getattr(RT, name)(**kwargs).cuda()
        for a in range(0, len(inputs[0]), len(inputs[0]) // 2 + 1):
            metric.update(*[torch.from_numpy(np.ascontiguousarray(x[a:a + len(x) // 2 + 1])).cuda()
                            for x in inputs])
        assert metric.input0[0].device.type == "cuda" and metric.shapes[0].device.type == "cuda"
        value = metric.compute()
        assert value.device.type == "cuda" and value.dtype == torch.float64
        assert value.item() == want, (name, value.item(), want)
    numpy_input = RT.AUROC().cuda()  # NumPy inputs are kept on the metric's device, which NCCL gathers on
    numpy_input.update(maps.ravel(), masks.ravel())
    assert numpy_input.input0[0].device.type == "cuda"
    assert numpy_input.compute().item() == F.auroc(maps.ravel(), masks.ravel())
