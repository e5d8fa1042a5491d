"""A run: dataset -> header check -> one streaming state per group -> the protocol's numbers -> outputs.

Outputs are staged inside ``--out`` and switched in by a journaled transaction
(:mod:`refmetrics._outdir`) once everything is computed, so ``--out`` holds
either the previous run or this one, never a mix.
"""

import math
import warnings

import numpy as np

from .. import _labels as labelling
from .. import _validation as validation
from .._outdir import OutputDir, OutputError, listed_files
from . import writers
from .options import Options, check_ci
from .protocols.base import note
from .samples import InputError, Result, by_category, check_headers, size_text
from .state import GroupState

CORE_FILES = ("results.json", "results.md", "results.tex")


def _progress(iterable, desc, quiet, total=None):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit="map", total=total, disable=quiet, leave=False)


ROC_BAND_POINTS = 201  # the ROC band's FPR grid: 0, 0.005, ..., 1


def stream_name(category, defect=None):
    """The name a group's resamples are drawn under (:func:`resamples`): the category, or
    ``<category>/<defect type>`` for a defect type's group (unique in a run, so every group draws its own)."""
    return category if defect is None else f"{category}/{defect}"


def resamples(protocol, state, options):
    """``W``, ``(options.bootstrap, images)`` int64: the group's stratified resamples
    (:func:`refmetrics.evaluate.protocols.base.resample_weights`: over the protocol's resampling units,
    with ``options.seed`` and the group's stream, ``state.stream``: each group draws its own, whatever else
    the run holds)."""
    from .protocols.base import resample_weights

    return resample_weights(protocol, state, options.bootstrap, options.seed, state.stream)


def intervals_of(protocol, options, values, replicates, notes):
    """``{column key: (low, high) or None}``: the percentile interval at ``options.level`` of each column's
    replicates. None where the column has no replicate (an official convention, or a column no exact
    resample covers), where its value is undefined, or where every resample's is; a column undefined on
    some resamples only gets a note (those are left out of its interval)."""
    from ..functional.bootstrap import percentile_interval

    out = {}
    for column in protocol.columns(options):
        key = column.key
        if key not in values:
            continue
        reps = replicates.get(key)
        value = values[key]
        if column.official or reps is None or value is None or math.isnan(value):
            out[key] = None
            continue
        undefined = int(np.count_nonzero(np.isnan(reps)))
        if undefined == reps.size:
            out[key] = None
            note(notes, f"{key}: undefined on every resample (no interval)")
            continue
        if undefined:
            note(notes, f"{key}: undefined on {undefined} of {reps.size} resamples, left out of its interval")
        low, high = percentile_interval(reps, options.level)
        out[key] = (float(low), float(high))
    return out


def roc_band(scores, labels, W, level, points=ROC_BAND_POINTS):
    """The image ROC's pointwise percentile band over the resamples ``W``: ``(fpr grid, low, high)``, or None
    without both a normal and an anomalous image.

    Each resample's ROC is the exact ROC of its images repeated by their multiplicities (one point per
    distinct score, from (0, 0), joined by straight lines, the curve whose area is the AUROC); its TPR is
    read at each FPR of the grid on those lines (at a vertical step, the step's top); the band is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (linear) of the TPRs at each grid point.
    """
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        return None
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))  # the last image of each distinct score
    w = W[:, order]
    tp = np.cumsum(w * labels[order], axis=1)[:, ends]
    fp = np.cumsum(w * ~labels[order], axis=1)[:, ends]
    zero = np.zeros((W.shape[0], 1))
    tpr = np.hstack([zero, tp / tp[:, -1:]])
    fpr = np.hstack([zero, fp / fp[:, -1:]])
    grid = np.linspace(0.0, 1.0, points)
    curves = np.array([np.interp(grid, x, y) for x, y in zip(fpr, tpr)])
    low, high = np.quantile(curves, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return grid, low, high


def _replicates(protocol, state, options, context, W):
    """The protocol's replicates of the group (before :meth:`Protocol.measure`, which finishes the pixel
    state), each a ``(B,)`` float64 array; undefined-metric warnings of single resamples are silenced (a
    NaN replicate is counted in a note instead)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", validation.UndefinedMetricWarning)
        out = protocol.replicates(state, options, context, W)
    for key, reps in out.items():
        if np.shape(reps) != (W.shape[0],):
            raise AssertionError(f"{protocol.name}.replicates: {key!r}: expected {W.shape[0]} replicates, received "
                                 f"shape {np.shape(reps)}")
    return {key: np.asarray(reps, np.float64) for key, reps in out.items()}


def evaluate_group(protocol, samples, options, context, name, figures, stream=None):
    """Stream ``samples`` into one :class:`GroupState` and measure it: a :class:`Result` named ``name``.

    With ``options.ci`` the group's resamples are drawn (:func:`resamples`), the protocol's replicates
    computed on them (:meth:`Protocol.replicates`, before :meth:`Protocol.measure`), and each column's
    interval kept in the result (:func:`intervals_of`), with the replicates (for the mean row's interval)
    and, for the figures, the image ROC band (:func:`roc_band`). ``stream``: the name the resamples are
    drawn under (default ``name``; :func:`stream_name`)."""
    state = GroupState(samples, options, protocol.accumulators(options, context), protocol.score_rule(options))
    state.stream = stream if stream is not None else name
    if options.dask is not None:  # the workers read the maps: scores and labels come back, pixels stay there
        from .dask_state import stream as stream_on_cluster

        stream_on_cluster(state, samples, figures)
    else:
        for sample in _progress(samples, f"{name}: reading", options.quiet):
            state.add(sample)
    W = replicates = None
    if options.ci:
        W = resamples(protocol, state, options)
        replicates = _replicates(protocol, state, options, context, W)
    measured = protocol.measure(state, options, context, figures)
    notes = list(measured.notes)
    if state.contradicted:
        n, shown = len(state.contradicted), ", ".join(str(p) for p in state.contradicted[:3])
        notes.append(f"{n} image{'s' if n > 1 else ''} labelled good (label 0) in the manifest "
                     f"ha{'ve' if n > 1 else 's'} defect pixels in {'their masks' if n > 1 else 'its mask'} "
                     f"({shown}{', ...' if n > 3 else ''}): the image counts as good, its defect pixels as "
                     "defect pixels")
    result = Result(name, measured.values, measured.counts, measured.curves, notes, extra=measured.extra)
    if options.ci:
        result.level, result.resamples = options.level, options.bootstrap
        result.intervals = intervals_of(protocol, options, measured.values, replicates, result.notes)
        result.replicates = {k: v for k, v in replicates.items() if k in result.intervals}
        if figures and "image roc" in result.curves:
            band = roc_band(*state["images"].arrays(), W, options.level)
            if band is not None:
                result.curves["image roc band"] = band
    return result


def defect_groups(samples):
    """``{defect type: its samples and every good one}``, or ``{}`` when the types are unknown (a manifest
    without a defect column) or there is only one."""
    def is_good(s):  # labelled good, or of the defect type "good" (a manifest without labels)
        return s.defective is False or s.defect == "good"

    good = [s for s in samples if is_good(s)]
    types = {}
    for s in samples:
        if is_good(s):
            continue
        if s.defect is None:
            return {}
        types.setdefault(s.defect, []).append(s)
    if len(types) < 2:
        return {}
    order = {id(s): i for i, s in enumerate(samples)}
    return {d: sorted(good + group, key=lambda s: order[id(s)]) for d, group in types.items()}


def evaluate_category(protocol, dataset, samples, options):
    """The :class:`Result` of one category, with its per-defect results when asked and known."""
    category = samples[0].category
    context = protocol.prepare(dataset, category, options)
    result = evaluate_group(protocol, samples, options, context, category, options.figures,
                            stream_name(category))
    if options.per_defect:
        for defect, group in defect_groups(samples).items():
            result.defects[defect] = evaluate_group(protocol, group, options, context, defect, False,
                                                    stream_name(category, defect))
    return result


CI_METHOD = "stratified image bootstrap, percentile"


def ci_settings(options):
    """``settings["ci"]`` of ``results.json``: None without ``--ci``."""
    if not options.ci:
        return None
    return {"method": CI_METHOD, "resamples": options.bootstrap, "seed": options.seed, "level": options.level,
            "streams": "each group draws its own resamples: numpy.random.default_rng([seed, zlib.crc32(name."
                       "encode('utf-8'))]), name = the category, or '<category>/<defect type>' for a defect "
                       "type's group",
            "shown": "value \u00b1 half the interval's width, (high - low) / 2"}


def ci_notes(protocol, results, columns, options):
    """The run's notes on ``--ci``: the columns without an interval, and why."""
    official = [c.key for c in columns if c.official]
    uncovered = [c.key for c in columns if not c.official and not any(c.key in r.replicates for r in results)
                 and not all(math.isnan(r.values.get(c.key, math.nan)) for r in results)]  # undefined: said already
    out = []
    if official:
        out.append("--ci: no interval for " + ", ".join(official) + " (official conventions: the interval is the "
                   "one of the exact value beside)")
    if uncovered:
        out.append(f"--ci: no interval for {', '.join(uncovered)} (no exact resample replicate of this protocol's "
                   "column is implemented)")
    return out


def _stage(staging, protocol, results, columns, options, settings, notes):
    """Write every output of the run into ``staging``; the files written, relative to it."""
    (staging / "results.md").write_text(writers.markdown_table(results, columns, protocol.title), encoding="utf-8")
    (staging / "results.tex").write_text(writers.latex_table(results, columns), encoding="utf-8")
    written = list(CORE_FILES)
    for name, text in protocol.extra_files(results, options).items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_text(text, encoding="utf-8")
        written.append(name)
    if options.figures:
        (staging / "figures").mkdir()
        written += [f"figures/{n}" for n in protocol.figures(results, options, staging / "figures")]
    (staging / "results.json").write_text(writers.to_json(protocol, results, columns, settings, written, notes),
                                          encoding="utf-8")
    return written


def check_memory_limit(ci, protocol):
    """Refuse, before anything is read, what a memory limit cannot bound or serve (``--memory-limit``)."""
    if ci:
        raise InputError("--ci: the pixel bootstrap needs every image's keys, which --memory-limit does not "
                         "keep (they are spilled pooled): leave out --ci or --memory-limit")
    if protocol.name == "mvtec-loco":
        raise InputError("--memory-limit: --protocol mvtec-loco keeps each object's maps and regions in "
                         "memory for AU-sPRO and its official tool, which a limit cannot bound: run it "
                         "without --memory-limit")


def run(protocol, dataset, out, options=None):
    """Evaluate a dataset under a protocol and write the outputs into ``out``: ``(results, files written)``.

    ``out`` holds either the previous run or this one, never a mix: the new
    files are staged inside ``out`` (the same filesystem) and switched in by one
    journaled transaction (:mod:`refmetrics._outdir`) once everything has been
    computed and rendered. ``out`` itself is created and checked (a writable
    directory that takes our files) before anything is computed. The files of
    a previous run into the same ``out`` that this run does not rewrite (figures
    of other categories, say) are removed with the switch, so ``out`` always
    describes one run.
    """
    options = options or Options()
    from . import dask_state

    dask_state.check(options, protocol)
    if options.memory_limit is not None:
        check_memory_limit(options.ci, protocol)
    if options.ci:
        options.bootstrap, options.seed, options.level = check_ci(options.bootstrap, options.seed, options.level)
    options.connectivity = labelling.check_connectivity(options.connectivity, 2)  # maps are 2-D: None is 2, 8 neighbours
    check_headers(dataset.samples, options.resize)
    for group in dataset.validation.values():
        check_headers(group, options.resize)
    rule = protocol.score_rule(options)
    if rule.reduce == "pooled_max":  # the window must fit every map (as stored): said before anything is read
        for s in dataset.samples:
            if s.score is None and min(s.shape) < rule.kernel:
                raise InputError(f"{s.map}: map of size {size_text(s.shape)}, but the image score, "
                                 f"{rule.describe()}, needs maps of at least {rule.kernel}x{rule.kernel} "
                                 "(--pool-kernel sets the window, --image-score the rule)")
    groups = by_category(dataset.samples)
    columns = protocol.columns(options)
    target = OutputDir(out)
    try:
        target.prepare()
        names = list(CORE_FILES) + protocol.extra_file_names(list(groups), options)
        if options.figures:
            if (target.out / "figures").exists() and not (target.out / "figures").is_dir():
                raise OutputError(f"--out: {target.out / 'figures'} exists and is not a directory")
            target.check_writable("figures")
            slugs = writers.figure_slugs(groups).values()
            names += [f"figures/{slug}_{kind}.png" for slug in slugs for kind in protocol.figure_kinds(options)]
        target.check_destinations(names)
        with dask_state.session(options):  # --dask: the cluster of the run (a local one closed at the end)
            results = [evaluate_category(protocol, dataset, group, options) for group in groups.values()]
        settings = dict(dataset.settings, protocol=protocol.name, **protocol.settings(options),
                        connectivity=options.connectivity, resize=options.resize,
                        image_score=rule.describe(),
                        image_score_rule={"reduce": rule.reduce, "k": rule.k, "kernel": rule.kernel},
                        float16=options.float16,
                        per_defect=options.per_defect, official=options.official,
                        ci=ci_settings(options))
        for text in ci_notes(protocol, results, columns, options) if options.ci else ():
            note(dataset.notes, text)  # in results.json's notes, and printed under the table
        try:
            written = _stage(target.new, protocol, results, columns, options, settings, dataset.notes)
        except OSError as exc:  # a full disk, a quota: the staging area is inside --out
            raise OutputError(f"--out: could not write the results into {target.out}: "
                              f"{exc.strerror or exc}; {target.out} was left as it was") from exc
        target.commit(written, remove=lambda: listed_files(target.out, "results.json"))
    except BaseException:
        target.abort()
        raise
    return results, written
