"""refmetrics inside other frameworks' pipelines (optional: each module imports its framework when imported).

- :mod:`refmetrics.integrations.torchmetrics`: each refmetrics metric as a ``torchmetrics.Metric``, with its
  state synchronised across processes (DDP) by torchmetrics (``pip install "refmetrics[torch]"``);
- :mod:`refmetrics.integrations.anomalib`: drop-ins for anomalib 2.x's metrics, which its ``Evaluator`` and
  ``Engine.test`` take as their own (``pip install "refmetrics[anomalib]"``).

``import refmetrics`` never imports torch, torchmetrics, anomalib or lightning.
"""
