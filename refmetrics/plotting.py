"""matplotlib figures of the curve metrics. Imported lazily: ``import refmetrics`` never loads matplotlib.

Every figure keeps a small margin around its unit axes, so that a perfect curve
(along the frame) stays visible, and puts its legend below the axes, where it
can never cover a curve or a baseline.
"""

import numpy as np

MAX_POINTS = 20_001  # an exact curve can have one point per pixel; this many are drawn
MARGIN = 0.02  # of the axis range, on each side of [0, 1]


def _figure():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("figures need matplotlib (a dependency of refmetrics): pip install matplotlib") from exc
    fig = Figure(figsize=(5, 5.8), layout="constrained")
    return fig, fig.add_subplot()


def _unit(high=1.0):
    """Axis limits of [0, high] with the margin on both sides."""
    return (-MARGIN * high, (1 + MARGIN) * high)


def _legend(fig, ax):
    """The legend below the axes (outside them: it covers nothing)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=1, frameon=False)


def thin(*arrays):
    """At most MAX_POINTS evenly spaced points of the curve, both ends kept."""
    n = arrays[0].size
    if n <= MAX_POINTS:
        return arrays
    idx = np.unique(np.linspace(0, n - 1, MAX_POINTS).round().astype(np.int64))
    return tuple(a[idx] for a in arrays)


def roc_figure(fpr, tpr, area):
    """ROC curve, chance diagonal, titled with the AUROC."""
    fig, ax = _figure()
    fpr, tpr = thin(fpr, tpr)
    ax.plot(fpr, tpr, lw=2, label=f"ROC (AUROC = {area:.4f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance (AUROC = 0.5)")
    ax.set(xlim=_unit(), ylim=_unit(), xlabel="False positive rate", ylabel="True positive rate",
           title=f"ROC curve, AUROC = {area:.4f}")
    _legend(fig, ax)
    return fig


def pr_figure(precision, recall, area, prevalence):
    """Precision-recall curve, prevalence baseline, titled with the AUPR."""
    fig, ax = _figure()
    recall, precision = thin(recall, precision)
    ax.step(recall, precision, where="post", lw=2, label=f"PR (AUPR = {area:.4f})")
    ax.axhline(prevalence, ls="--", color="grey", lw=1, label=f"baseline (prevalence = {prevalence:.4f})")
    ax.set(xlim=_unit(), ylim=_unit(), xlabel="Recall", ylabel="Precision",
           title=f"PR curve, AUPR = {area:.4f}")
    _legend(fig, ax)
    return fig


def pro_figure(fpr, pro, area, fpr_limit):
    """PRO curve up to ``fpr_limit`` (interpolated there), titled with the AUPRO."""
    fig, ax = _figure()
    keep = fpr <= fpr_limit
    x, y = fpr[keep], pro[keep]
    after = np.flatnonzero(~keep)
    if after.size and x.size and x[-1] < fpr_limit:
        i = after[0]
        y_lim = pro[i - 1] + (pro[i] - pro[i - 1]) * (fpr_limit - fpr[i - 1]) / (fpr[i] - fpr[i - 1])
        x, y = np.append(x, fpr_limit), np.append(y, y_lim)
    x, y = thin(x, y)
    ax.plot(x, y, lw=2, label=f"PRO (AUPRO = {area:.4f})")
    ax.set(xlim=_unit(fpr_limit), ylim=_unit(), xlabel="False positive rate", ylabel="Per-region overlap",
           title=f"PRO curve to FPR {fpr_limit:g}, AUPRO = {area:.4f}")
    _legend(fig, ax)
    return fig


def curves_figure(curves, xlabel, ylabel, title, diagonal=False, step=False, bands=()):
    """Several curves ``(label, x, y)`` on one axes (``refmetrics evaluate``'s ROC and PR figures).

    ``bands``: ``{index: (label, x, low, high)}`` (or pairs), a shaded band drawn in the colour of curve
    ``index`` (``refmetrics evaluate --ci``'s ROC band)."""
    fig, ax = _figure()
    bands = dict(bands)
    for i, (label, x, y) in enumerate(curves):
        x, y = thin(np.asarray(x, float), np.asarray(y, float))
        if step:
            line, = ax.step(x, y, where="post", lw=2, label=label)
        else:
            line, = ax.plot(x, y, lw=2, label=label)
        if i in bands:
            band_label, bx, low, high = bands[i]
            ax.fill_between(bx, low, high, color=line.get_color(), alpha=0.2, lw=0, label=band_label)
    if diagonal:
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set(xlim=_unit(), ylim=_unit(), xlabel=xlabel, ylabel=ylabel, title=title)
    _legend(fig, ax)
    return fig


def score_histogram_figure(good, defective, title):
    """Histograms of the image scores of good and defective images on shared bins (integer counts)."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = _figure()
    both = np.concatenate([good, defective]).astype(float)
    finite = both[np.isfinite(both)]
    bins = np.histogram_bin_edges(finite, bins=min(50, max(10, finite.size // 4))) if finite.size else 10
    for values, label, color in ((good, "good", "tab:blue"), (defective, "defective", "tab:red")):
        values = np.asarray(values, float)
        values = values[np.isfinite(values)]
        if values.size:
            ax.hist(values, bins=bins, alpha=0.6, color=color, label=f"{label} ({values.size})")
    ax.set(xlabel="Image score", ylabel="Images", title=title)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(fig, ax)
    return fig
