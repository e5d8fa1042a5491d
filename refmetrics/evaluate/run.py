"""A run: dataset -> header check -> one streaming state per group -> the protocol's numbers -> outputs.

Outputs are staged inside ``--out`` and switched in by a journaled transaction
(:mod:`refmetrics._outdir`) once everything is computed, so ``--out`` holds
either the previous run or this one, never a mix.
"""

import json
from pathlib import Path

from .. import _labels as labelling
from .._outdir import OutputDir, OutputError
from . import writers
from .options import Options
from .samples import InputError, Result, by_category, check_headers, size_text
from .state import GroupState

CORE_FILES = ("results.json", "results.md", "results.tex")


def _progress(iterable, desc, quiet, total=None):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit="map", total=total, disable=quiet, leave=False)


def evaluate_group(protocol, samples, options, context, name, figures):
    """Stream ``samples`` into one :class:`GroupState` and measure it: a :class:`Result` named ``name``."""
    state = GroupState(samples, options, protocol.accumulators(options, context), protocol.score_rule(options))
    for sample in _progress(samples, f"{name}: reading", options.quiet):
        state.add(sample)
    measured = protocol.measure(state, options, context, figures)
    notes = list(measured.notes)
    if state.contradicted:
        n, shown = len(state.contradicted), ", ".join(str(p) for p in state.contradicted[:3])
        notes.append(f"{n} image{'s' if n > 1 else ''} labelled good (label 0) in the manifest "
                     f"ha{'ve' if n > 1 else 's'} defect pixels in {'their masks' if n > 1 else 'its mask'} "
                     f"({shown}{', ...' if n > 3 else ''}): the image counts as good, its defect pixels as "
                     "defect pixels")
    return Result(name, measured.values, measured.counts, measured.curves, notes, extra=measured.extra)


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
    result = evaluate_group(protocol, samples, options, context, category, options.figures)
    if options.per_defect:
        for defect, group in defect_groups(samples).items():
            result.defects[defect] = evaluate_group(protocol, group, options, context, defect, False)
    return result


def _previous_files(out):
    """Files the previous ``refmetrics evaluate`` wrote into ``out`` (listed in its results.json)."""
    try:
        previous = json.loads((out / "results.json").read_text(encoding="utf-8"))
        files = previous.get("files", []) if previous.get("refmetrics") else []
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in files if isinstance(f, str) and ".." not in Path(f).parts and not Path(f).is_absolute()]


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
        results = [evaluate_category(protocol, dataset, group, options) for group in groups.values()]
        settings = dict(dataset.settings, protocol=protocol.name, **protocol.settings(options),
                        connectivity=options.connectivity, resize=options.resize,
                        image_score=rule.describe(),
                        image_score_rule={"reduce": rule.reduce, "k": rule.k, "kernel": rule.kernel},
                        float16=options.float16,
                        per_defect=options.per_defect, official=options.official)
        try:
            written = _stage(target.new, protocol, results, columns, options, settings, dataset.notes)
        except OSError as exc:  # a full disk, a quota: the staging area is inside --out
            raise OutputError(f"--out: could not write the results into {target.out}: "
                              f"{exc.strerror or exc}; {target.out} was left as it was") from exc
        target.commit(written, remove=lambda: _previous_files(target.out))
    except BaseException:
        target.abort()
        raise
    return results, written
