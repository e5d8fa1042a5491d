"""refmetrics.integrations.anomalib: the drop-ins inside anomalib's own pipeline, end to end.

A tiny synthetic ``Folder`` dataset (written here), a deterministic model (a map from pixel intensities, no
weights, no training), and ``Engine.test`` run twice on CPU: once with anomalib's metrics, once with the
drop-ins. The drop-ins' values must equal refmetrics.functional on the same maps, bit for bit; anomalib's
differ where the conformance suite says they do (AUROC of raw scores through a float32 sigmoid: the tie
cause), and the test reproduces anomalib's numbers from that cause.
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("anomalib")

from PIL import Image  # noqa: E402

from refmetrics import functional as F  # noqa: E402

SIZE = 32
SCALE = 40.0  # maps well above 1: anomalib's AUROC applies its float32 sigmoid, which ties them


def make_folder(root, rng):
    for d in ("good", "good_test", "bad", "masks"):
        (root / d).mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 120, (SIZE, SIZE, 3), dtype=np.uint8)).save(root / "good" / f"{i:03d}.png")
    for i in range(6):
        Image.fromarray(rng.integers(0, 140, (SIZE, SIZE, 3), dtype=np.uint8)).save(
            root / "good_test" / f"{i:03d}.png")
        image = rng.integers(0, 140, (SIZE, SIZE, 3), dtype=np.uint8)
        mask = np.zeros((SIZE, SIZE), np.uint8)
        mask[4 + i:10 + i, 6 + 2 * i:12 + 2 * i] = 255
        image[mask > 0] = rng.integers(90, 255, (int((mask > 0).sum()), 3), dtype=np.uint8)  # overlapping scores
        Image.fromarray(image).save(root / "bad" / f"{i:03d}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i:03d}.png")


def pipeline(root):
    from anomalib import LearningType
    from anomalib.data import Folder, InferenceBatch
    from anomalib.models import AnomalibModule

    class Maps(torch.nn.Module):
        def forward(self, image):
            amap = image.mean(1) * SCALE  # (B, H, W), deterministic
            score = amap.flatten(1).amax(1)
            return InferenceBatch(pred_score=score, pred_label=score > SCALE / 2, anomaly_map=amap,
                                  pred_mask=amap > SCALE / 2)

    class Deterministic(AnomalibModule):
        def __init__(self, evaluator, post_processor=False):
            super().__init__(pre_processor=False, post_processor=post_processor, visualizer=False,
                             evaluator=evaluator)
            self.model = Maps()

        @property
        def learning_type(self):
            return LearningType.ONE_CLASS

        @property
        def trainer_arguments(self):
            return {"max_epochs": 1, "num_sanity_val_steps": 0}

        def configure_optimizers(self):
            return None

        def training_step(self, *args, **kwargs):
            return None

        def validation_step(self, batch, *args, **kwargs):
            return batch.update(**self.model(batch.image)._asdict())

    def datamodule():
        return Folder(name="synthetic", root=root, normal_dir="good", normal_test_dir="good_test",
                      abnormal_dir="bad", mask_dir="masks", train_batch_size=4, eval_batch_size=4, num_workers=0,
                      val_split_mode="same_as_test")

    return Deterministic, datamodule, Maps()


def metrics(module):
    return [module.AUROC(fields=["pred_score", "gt_label"], prefix="image_"),
            module.AUROC(fields=["anomaly_map", "gt_mask"], prefix="pixel_"),
            module.AUPR(fields=["pred_score", "gt_label"], prefix="image_"),
            module.AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", fpr_limit=0.3),
            module.F1Max(fields=["anomaly_map", "gt_mask"], prefix="pixel_"),
            module.F1Score(fields=["pred_label", "gt_label"], prefix="image_"),
            module.PRO(fields=["pred_mask", "gt_mask"], prefix="pixel_"),
            module.F1AdaptiveThreshold(fields=["pred_score", "gt_label"], prefix="image_"),
            module.PGn(),  # default fields; named PG5, as anomalib names it
            module.PBn(fpr=0.2),
            module.AUPIMO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", fpr_bounds=(1e-3, 1e-2))]


def test_engine_test_with_the_drop_ins_gives_refmetrics_values(tmp_path):
    import anomalib.metrics as theirs
    from anomalib.engine import Engine
    from anomalib.metrics import Evaluator

    from refmetrics.integrations import anomalib as ours

    make_folder(tmp_path / "data", np.random.default_rng(20261129))
    Model, datamodule, maps_of = pipeline(tmp_path / "data")
    results = {}
    for name, module in (("anomalib", theirs), ("refmetrics", ours)):
        engine = Engine(accelerator="cpu", devices=1, logger=False, default_root_dir=tmp_path / name,
                        enable_progress_bar=False)
        results[name], = engine.test(model=Model(Evaluator(test_metrics=metrics(module))), datamodule=datamodule())
    # the same maps, outside the pipeline: refmetrics.functional is the oracle
    dm = datamodule()
    dm.setup("test")
    maps, masks, scores, labels, pred_labels, pred_masks = [], [], [], [], [], []
    for batch in dm.test_dataloader():
        out = maps_of(batch.image)
        maps.append(out.anomaly_map.numpy())
        masks.append(batch.gt_mask.numpy())
        scores.append(out.pred_score.numpy())
        labels.append(batch.gt_label.numpy())
        pred_labels.append(out.pred_label.numpy())
        pred_masks.append(out.pred_mask.numpy())
    maps, masks, scores, labels = (np.concatenate(x) for x in (maps, masks, scores, labels))
    pred_labels, pred_masks = np.concatenate(pred_labels), np.concatenate(pred_masks)
    assert maps.shape == (12, SIZE, SIZE) and labels.sum() == 6 and masks.any()
    want = {"image_AUROC": F.auroc(scores, labels),
            "pixel_AUROC": F.auroc(maps.ravel(), masks.ravel()),
            "image_AUPR": F.average_precision(scores, labels),
            "pixel_AUPRO": F.aupro(maps, masks, fpr_limit=0.3),
            "pixel_F1Max": F.f1_max(maps.ravel(), masks.ravel()),
            "image_F1Score": F.f1_score(pred_labels, labels),
            "pixel_PRO": F.pro_score(pred_masks, masks),
            "image_F1AdaptiveThreshold": F.f1_adaptive_threshold(scores, labels)[0],
            "PG5": F.pgn(scores, labels, fnr=0.05),
            "PB20": F.pbn(scores, labels, fpr=0.2),
            "pixel_AUPIMO": F.aupimo(maps, masks, fpr_bounds=(1e-3, 1e-2))}
    assert set(results["refmetrics"]) == set(want) == set(results["anomalib"])
    for key, value in want.items():
        assert results["refmetrics"][key] == value, (key, results["refmetrics"][key], value)
    # anomalib's AUROC ranks sigmoid(score) in float32, which ties every score above about 17: its numbers
    # are reproduced from that cause (conformance: the float32 sigmoid), and they are not the exact ones
    def squashed(x):
        return torch.sigmoid(torch.from_numpy(x.astype(np.float32))).numpy()

    for key, (s, t) in {"image_AUROC": (scores, labels), "pixel_AUROC": (maps.ravel(), masks.ravel())}.items():
        assert math.isclose(results["anomalib"][key], F.auroc(squashed(s), t), rel_tol=1e-6), key
        assert results["anomalib"][key] != results["refmetrics"][key], key
    assert [round(results["anomalib"][k], 3) for k in ("image_AUROC", "pixel_AUROC")] == [0.5, 0.968]  # README
    assert [round(results["refmetrics"][k], 3) for k in ("image_AUROC", "pixel_AUROC")] == [1.0, 0.998]


DDP_CHILD = r"""
import json, os, sys
import numpy as np
import torch
import torch.distributed as dist
from anomalib.data import ImageBatch
from refmetrics.integrations import anomalib as RA

rank, port = int(sys.argv[1]), sys.argv[2]
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
dist.init_process_group("gloo", rank=rank, world_size=2)
rng = np.random.default_rng(7)
maps = torch.from_numpy((rng.random((6, 16, 16)) * 40).astype(np.float32))
masks = torch.from_numpy(rng.random((6, 16, 16)) > 0.8)
masks[::2] = False  # defect-free images: both image labels on both ranks
scores, labels = maps.flatten(1).amax(1), masks.flatten(1).any(1)
metrics = [RA.AUROC(fields=["pred_score", "gt_label"], prefix="image_"),
           RA.AUROC(fields=["anomaly_map", "gt_mask"], prefix="pixel_"),
           RA.AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_")]
part = slice(0, 2) if rank == 0 else slice(2, 6)  # uneven: what a DistributedSampler might hand out
batch = ImageBatch(image=torch.zeros(len(range(6)[part]), 3, 16, 16), pred_score=scores[part], gt_label=labels[part],
                   anomaly_map=maps[part], gt_mask=masks[part])
for m in metrics:
    m.update(batch)
out = {m.name: float(m.compute()) for m in metrics}
dist.destroy_process_group()
print("RESULT " + json.dumps(out))
"""


def test_the_drop_ins_under_ddp_equal_one_process():
    # two gloo processes, each updating the drop-ins with anomalib batches of its own images; the values are
    # refmetrics.functional's on all six images, on both ranks
    import json
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen([sys.executable, "-c", DDP_CHILD, str(r), port], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for r in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1][len("RESULT "):]))
    rng = np.random.default_rng(7)
    maps = (rng.random((6, 16, 16)) * 40).astype(np.float32)
    masks = rng.random((6, 16, 16)) > 0.8
    masks[::2] = False
    want = {"image_AUROC": F.auroc(maps.reshape(6, -1).max(1), masks.reshape(6, -1).any(1)),
            "pixel_AUROC": F.auroc(maps.ravel(), masks.ravel()),
            "pixel_AUPRO": F.aupro(maps, masks, fpr_limit=0.3)}
    assert results[0] == results[1] == want


def test_constructor_arguments_are_anomalibs():
    # positional fields first, as anomalib's classes (AnomalibMetric's arguments come first), and refusals
    from refmetrics.integrations import anomalib as ours

    metric = ours.AUPIMO(["anomaly_map", "gt_mask"], "pixel_", fpr_bounds=(1e-2, 1e-1))
    assert metric.fields == ["anomaly_map", "gt_mask"] and metric.name == "pixel_AUPIMO"
    assert ours.AUPIMO().fields == ("anomaly_map", "gt_mask") and ours.PGn().fields == ("pred_score", "gt_label")
    with pytest.raises(ValueError, match=r"return_average: expected one of \(True,\)"):
        ours.AUPIMO(return_average=False)
    with pytest.raises(ValueError, match=r"normalization: expected one of \('sigmoid', None\).*received 'softmax'"):
        ours.AUROC(fields=["pred_score", "gt_label"], normalization="softmax")
    with pytest.raises(ValueError, match=r"zero_division: expected one of \(0,\).*received 1"):
        ours.F1Score(fields=["pred_label", "gt_label"], zero_division=1)
    assert float(ours.AUPRO(fields=["anomaly_map", "gt_mask"], fpr_limit=0.05).fpr_limit) == pytest.approx(0.05)



def test_plain_metrics_and_checkpoints_as_anomalibs():
    # MinMax (attributes and stacked value), ManualThreshold, AnomalyScoreDistribution (keyword update,
    # attributes) against anomalib's own classes on the same tensors, and refmetrics.functional as the oracle;
    # an anomalib checkpoint's fpr_limit is the one AUPRO computes with
    import anomalib.metrics as theirs

    from refmetrics.integrations import anomalib as ours

    rng = np.random.default_rng(11)
    maps = torch.from_numpy((rng.random((3, 8, 8)) * 5 + 0.5).astype(np.float32))
    masks = torch.from_numpy(rng.random((3, 8, 8)) > 0.7)
    scores, labels = maps.flatten(1).amax(1), masks.flatten(1).any(1)
    batch = __import__("types").SimpleNamespace(anomaly_map=maps, gt_mask=masks, pred_score=scores, gt_label=labels)

    from refmetrics.integrations.torchmetrics import MinMax

    plain = MinMax()  # anomalib's keyword, predictions=, is taken
    plain.update(predictions=maps)
    assert plain.compute()[1].item() == float(maps.max())
    a, b = theirs.MinMax(fields=["anomaly_map"]), ours.MinMax(fields=["anomaly_map"])
    assert (float(b.min), float(b.max)) == (math.inf, -math.inf)
    a.update(batch), b.update(batch)
    assert b.compute().dtype == torch.float64 and b.compute().tolist() == a.compute().tolist()
    assert (float(b.min), float(b.max)) == (float(maps.min()), float(maps.max()))

    manual = ours.ManualThreshold(default_value=0.25)
    manual.update(maps, masks, anything=1)  # ignored, as anomalib's
    assert manual.compute().item() == theirs.ManualThreshold(default_value=0.25).compute().item() == 0.25
    assert manual.value.dtype == torch.float64

    a, b = theirs.AnomalyScoreDistribution(), ours.AnomalyScoreDistribution()
    for m in (a, b):
        m.update(anomaly_scores=scores, labels=labels)
        m.update(anomaly_maps=maps)
    got, ref = b.compute(), a.compute()
    want = F.anomaly_score_distribution(anomaly_scores=scores.numpy(), anomaly_maps=maps.numpy())
    for g, w, r in zip(got, want, ref):
        assert g.dtype == torch.float64 and np.array_equal(g.numpy(), np.asarray(w, np.float64))
        assert torch.allclose(g.float(), r, rtol=1e-5)  # anomalib's: the same, rounded to float32
    assert b.image_mean.item() == got[0].item()

    checkpoint = theirs.AUPRO(fields=["anomaly_map", "gt_mask"], fpr_limit=0.1).state_dict()
    assert checkpoint["fpr_limit"].dtype == torch.float32  # 0.10000000149...
    aupro = ours.AUPRO(fields=["anomaly_map", "gt_mask"])  # fpr_limit=0.3 until the checkpoint loads
    aupro.load_state_dict(checkpoint)
    aupro.update(batch)
    assert aupro.compute().item() == F.aupro(maps.numpy(), masks.numpy(), fpr_limit=0.1)
    bad = ours.AUPRO(fields=["anomaly_map", "gt_mask"], fpr_limit=0.05)
    with pytest.raises(RuntimeError, match=r"fpr_limit: fpr_limit: expected a number in \(0, 1\], received 3.0"):
        bad.load_state_dict({"fpr_limit": torch.tensor(3.0)})
    assert bad.fpr_limit.item() == 0.05 and bad._config["fpr_limit"] == 0.05  # left as it was

    # the saved values of ManualThreshold and AnomalyScoreDistribution load either way, under anomalib's keys
    loaded = ours.ManualThreshold()
    loaded.load_state_dict(theirs.ManualThreshold(default_value=0.75).state_dict())
    assert loaded.compute().item() == 0.75 and loaded.compute().dtype == torch.float64
    back = theirs.ManualThreshold()
    back.load_state_dict(ours.ManualThreshold(default_value=0.75).state_dict())
    assert back.compute().item() == 0.75
    assert set(b.state_dict()) == set(a.state_dict()) == {"image_mean", "image_std", "pixel_mean", "pixel_std"}
    again = ours.AnomalyScoreDistribution()
    again.load_state_dict(a.state_dict())
    assert again.image_mean.item() == pytest.approx(got[0].item(), rel=1e-6)
    # anomalib's update: inputs by keyword, positional arguments and labels ignored; a typo is an error
    b.reset()
    b.update(scores, labels, anomaly_scores=scores)
    assert b.compute()[0].item() == got[0].item()
    with pytest.raises(TypeError, match="anomaly_score"):
        b.update(anomaly_score=scores)


def test_the_post_processor_learns_refmetrics_thresholds(tmp_path):
    # anomalib's PostProcessor with the drop-ins: Engine.validate learns the image and pixel thresholds and
    # the normalisation bounds; they are refmetrics.functional's F1-maximising thresholds and extreme scores
    # of the validation maps (float32 buffers, as anomalib's: the maps are float32, so exact)
    from anomalib.engine import Engine
    from anomalib.post_processing import PostProcessor as Theirs

    from refmetrics.integrations.anomalib import F1AdaptiveThreshold, PostProcessor

    make_folder(tmp_path / "data", np.random.default_rng(20261130))
    Model, datamodule, maps_of = pipeline(tmp_path / "data")
    learned = {}
    for name, post in (("anomalib", Theirs()), ("refmetrics", PostProcessor())):
        engine = Engine(accelerator="cpu", devices=1, logger=False, default_root_dir=tmp_path / name,
                        enable_progress_bar=False)
        model = Model(False, post_processor=post)
        engine.validate(model=model, datamodule=datamodule())
        learned[name] = {k: getattr(model.post_processor, k).item() for k in
                         ("image_threshold", "pixel_threshold", "image_min", "image_max", "pixel_min", "pixel_max")}
    dm = datamodule()
    dm.setup("validate")
    maps, masks, labels = [], [], []
    for batch in dm.val_dataloader():
        maps.append(maps_of(batch.image).anomaly_map.numpy())
        masks.append(batch.gt_mask.numpy())
        labels.append(batch.gt_label.numpy())
    maps, masks, labels = np.concatenate(maps), np.concatenate(masks), np.concatenate(labels)
    scores = maps.reshape(len(maps), -1).max(axis=1)
    want = {"image_threshold": F.f1_adaptive_threshold(scores, labels)[0],
            "pixel_threshold": F.f1_adaptive_threshold(maps.ravel(), masks.ravel())[0],
            "image_min": scores.min(), "image_max": scores.max(), "pixel_min": maps.min(), "pixel_max": maps.max()}
    assert learned["refmetrics"] == {k: float(np.float32(v)) for k, v in want.items()}
    assert isinstance(PostProcessor()._pixel_threshold_metric, F1AdaptiveThreshold)
    # anomalib's own learns the same six values on these maps (its F1 curve has no near-tie here)
    assert learned["anomalib"] == learned["refmetrics"]
