"""generate_figure of the curve metrics."""

import numpy as np
import pytest

import refmetrics as rm

pytest.importorskip("matplotlib")


def test_roc_and_pr_figures(tmp_path):
    rng = np.random.default_rng(20261125)
    target = rng.random(50_000) < 0.1
    preds = rng.random(50_000) + target
    auroc = rm.AUROC()
    auroc.update(preds, target)
    fig, title = auroc.generate_figure()
    ax = fig.axes[0]
    assert title == "ROC" and f"{auroc.compute():.4f}" in ax.get_title()
    assert len(ax.lines) == 2  # curve and chance diagonal
    assert ax.lines[1].get_xydata().tolist() == [[0, 0], [1, 1]]
    assert len(ax.lines[0].get_xdata()) <= 20_001  # thinned
    fig.savefig(tmp_path / "roc.png")
    aupr = rm.AUPR()
    aupr.update(preds, target)
    fig, title = aupr.generate_figure()
    ax = fig.axes[0]
    assert title == "PR" and f"{aupr.compute():.4f}" in ax.get_title()
    assert ax.lines[1].get_ydata()[0] == pytest.approx(target.mean(), abs=0)
    fig.savefig(tmp_path / "pr.png")
    assert (tmp_path / "pr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
