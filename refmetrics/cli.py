"""The ``refmetrics`` command.

``refmetrics conformance`` runs the conformance suite on the bundled golden
cases against every installed implementation. ``refmetrics evaluate`` turns
saved anomaly maps (MVTec AD layout or a CSV manifest) into the per-category
table, JSON/Markdown/LaTeX files and figures. ``refmetrics example``
evaluates the small bundled dataset (24 anomaly maps with masks) and prints
the standard table, exactly.
"""

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

import numpy as np

from . import __version__
from . import functional


def load_example():
    """``(maps, masks, labels)`` of the bundled example (masks binarised from 0/255)."""
    with resources.files("refmetrics").joinpath("data/example.npz").open("rb") as fh:
        data = np.load(fh)
        maps, masks, labels = data["maps"], data["masks"], data["labels"]
    return maps, masks > 0, labels


def example_table():
    """The image- and pixel-level metrics of the bundled example, as a dict."""
    maps, masks, labels = load_example()
    image_scores = maps.reshape(maps.shape[0], -1).max(axis=1)
    threshold, f1 = functional.f1_adaptive_threshold(image_scores, labels)
    return {
        "images": int(maps.shape[0]),
        "defective images": int(labels.sum()),
        "pixels": int(maps.size),
        "defect pixels": int(masks.sum()),
        "image AUROC": functional.auroc(image_scores, labels),
        "image AP": functional.average_precision(image_scores, labels),
        "image F1-max": f1,
        "image F1 threshold": threshold,
        "pixel AUROC": functional.auroc(maps, masks),
        "pixel AP": functional.average_precision(maps, masks),
        "pixel AUPR (trapezoid, anomalib 1.x)": functional.aupr(maps, masks, curve="trapezoid"),
        "pixel F1-max": functional.f1_max(maps, masks),
        "pixel AUPRO@0.3": functional.aupro(maps, masks, fpr_limit=0.3),
        "pixel regions": int(functional.label_regions(masks, return_num=True)[1]),
    }


def _print_table(table, out):
    width = max(len(k) for k in table)
    for key, value in table.items():
        shown = f"{value:.6f}" if isinstance(value, float) else f"{value:,}"
        print(f"  {key:<{width}}  {shown}", file=out)


def cmd_example(args):
    table = example_table()
    print("refmetrics example: bundled dataset (24 maps 48x48, raw scores around 10)", file=sys.stdout)
    _print_table(table, sys.stdout)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(table, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


def cmd_conformance(args):
    from . import conformance

    def progress(message):
        print(f"  ... {message}", file=sys.stderr, flush=True)

    try:
        for option, path in (("--json", args.json), ("--markdown", args.markdown)):
            if path is not None:
                conformance.check_output_file(option, path)  # before the run: a bad path must not cost the run
        report = conformance.run(impls=args.impl, metrics=args.metric, cases=args.case,
                       progress=None if args.quiet else progress)
    except (ValueError, ImportError, AttributeError) as exc:
        print(f"refmetrics conformance: {exc}", file=sys.stderr)
        return 2
    written = []
    for path, render in ((args.json, conformance.to_json), (args.markdown, conformance.markdown)):
        if path is not None:  # files first: a closed stdout does not lose them
            conformance.write_atomic(path, render(report))  # a failure never leaves part of a file
            written.append(path)
    print(conformance.text(report, details=args.details))
    for path in written:
        print(f"wrote {path}")
    return 1 if args.strict and report.unexplained else 0


def _width():
    """The terminal's width (``COLUMNS`` when set), 100 when output is not a terminal; at least 70 (the
    narrowest table)."""
    import shutil

    return max(70, shutil.get_terminal_size((100, 24)).columns)


def _print_wrapped(text, width, indent="  "):
    import textwrap

    print(textwrap.fill(text, width=width, subsequent_indent=indent, break_on_hyphens=False))


def _image_score(args, protocol, evaluate):
    """The image-score rule the options ask for, or None for the protocol's own. ``--top-k`` and
    ``--pool-kernel`` refine the rule in force (``--image-score``'s, else the protocol's), and are an error
    where that rule does not use them."""
    if args.image_score is None and args.top_k is None and args.pool_kernel is None:
        return None
    own = protocol.image_score
    reduce = args.image_score or own.reduce
    for option, value, user in (("--top-k", args.top_k, "top_k_mean"), ("--pool-kernel", args.pool_kernel,
                                                                          "pooled_max")):
        if value is not None and reduce != user:
            where = "--image-score" if args.image_score else f"--protocol {protocol.name}'s rule"
            raise evaluate.InputError(f"{option}: applies to the {user} image score; this run's is {reduce} ({where}): "
                               f"add --image-score {user}")
    default = own if own.reduce == reduce else evaluate.ImageScore(reduce)
    return evaluate.ImageScore(reduce, args.top_k if args.top_k is not None else default.k,
                        args.pool_kernel if args.pool_kernel is not None else default.kernel)


def _evaluate_options(args, protocol, evaluate):
    for name in ("sample_key",):  # options of one protocol: an error elsewhere, never silently ignored
        if getattr(args, name) is not None and name not in protocol.options:
            raise evaluate.InputError(f"--{name.replace('_', '-')}: --protocol {protocol.name} has no use for it "
                               f"(it applies to {', '.join(p.name for p in evaluate.PROTOCOLS.values() if name in p.options)})")
    ci = _ci_options(args, evaluate)
    memory = _memory_options(args, protocol, evaluate)
    return evaluate.Options(maps=args.maps, gt=args.gt, manifest=args.manifest, split_csv=args.split_csv,
                     split_json=args.split_json,
                     categories=tuple(args.categories) if args.categories else None, fpr_limit=args.fpr_limit,
                     resize=args.resize, image_score=_image_score(args, protocol, evaluate),
                     float16=args.float16, sample_key=args.sample_key, figures=not args.no_figures,
                     quiet=args.quiet or not sys.stdout.isatty(), official=not args.no_official,
                     per_defect=not args.no_per_defect, dask=args.dask, **ci, **memory)


def _memory_options(args, protocol, evaluate):
    """``--memory-limit`` and ``--tmp-dir`` as :class:`Options`' ``memory_limit`` (the bytes of keys: the limit
    less the process's fixed share, :data:`refmetrics._spill.OVERHEAD`) and ``tmp_dir``, checked."""
    if args.memory_limit is None:
        if args.tmp_dir is not None:
            raise evaluate.InputError(f"--tmp-dir: applies to --memory-limit's spilled keys, which this run does not "
                                      f"spill: add --memory-limit (received --tmp-dir {args.tmp_dir} without it)")
        return {}
    from . import _spill

    budget = _spill.key_budget(_spill.parse_size(args.memory_limit))
    evaluate.check_memory_limit(args.ci, protocol)
    if args.tmp_dir is not None and not args.tmp_dir.is_dir():
        raise evaluate.InputError(f"--tmp-dir: expected an existing directory, received {args.tmp_dir}")
    return {"memory_limit": budget, "tmp_dir": args.tmp_dir}


def _ci_options(args, evaluate):
    """``--ci``'s settings (``ci``, ``bootstrap``, ``seed``, ``level``) for :class:`Options`, checked:
    ``--bootstrap``, ``--seed`` and ``--level`` without ``--ci`` are an error, never silently ignored."""
    given = {"--bootstrap": args.bootstrap, "--seed": args.seed, "--level": args.level}
    if not args.ci:
        stray = [name for name, value in given.items() if value is not None]
        if stray:
            raise evaluate.InputError(f"{stray[0]}: applies to the confidence intervals, which this run does not "
                                      f"compute: add --ci (received {stray[0]} {given[stray[0]]} without --ci)")
        return {"ci": False}
    bootstrap, seed, level = _resampling(args, evaluate)
    return {"ci": True, "bootstrap": bootstrap, "seed": seed, "level": level}


def _resampling(args, evaluate):
    """``(--bootstrap, --seed, --level)`` converted and checked (defaults 1000, 0, 0.95): an InputError naming
    the flag, what it expects and what it received."""
    from .evaluate.options import check_ci

    values = []
    for name, value, default, kind in (("--bootstrap", args.bootstrap, 1000, int), ("--seed", args.seed, 0, int),
                                       ("--level", args.level, 0.95, float)):
        if value is None:
            values.append(default)
            continue
        try:
            values.append(kind(value))
        except ValueError:
            what = "a number strictly between 0 and 1" if kind is float else "a whole number"
            raise evaluate.InputError(f"{name}: expected {what}, received {value!r}") from None
    try:
        return check_ci(*values)
    except ValueError as exc:
        raise evaluate.InputError(str(exc)) from None


DATA_OPTIONS = ("maps", "gt", "manifest", "split_csv", "split_json")


def _failed(command, exc, out):
    """Say why a command that writes into ``out`` stopped, and return its exit status: 2 for a bad input or
    ``--out`` (InputError, OutputError: ValueErrors), 130 for Ctrl-C, saying what ``out`` holds then."""
    from ._outdir import InterruptedAfterCommit

    if isinstance(exc, InterruptedAfterCommit):
        message, status = f"interrupted; {out} holds this run's complete results", 130
    elif isinstance(exc, KeyboardInterrupt):
        message = "interrupted; " + (f"{out} was left as it was" if out is not None else "nothing was written")
        status = 130
    else:
        message, status = str(exc), 2
    print(f"refmetrics {command}: {message}", file=sys.stderr)
    return status


def cmd_evaluate(args):
    from . import evaluate

    given = [name for name in DATA_OPTIONS if getattr(args, name) is not None]
    out = args.out
    try:
        protocol = evaluate.get_protocol(args.protocol)
        options = _evaluate_options(args, protocol, evaluate)
        if args.demo or not given:  # no dataset: the bundled demo, whatever the other options
            if given:
                raise evaluate.InputError("--demo runs on the bundled demo dataset: leave out "
                                   + ", ".join("--" + n.replace("_", "-") for n in given))
            with resources.as_file(protocol.demo_root()) as demo:
                for name, value in protocol.demo_options(Path(demo)).items():
                    setattr(options, name, value)
                dataset = protocol.read(options)
                dataset.settings = {"dataset": f"refmetrics demo of {protocol.name} (bundled)"}
                out = args.out or Path("refmetrics-demo")
                results, written = evaluate.run(protocol, dataset, out, options)
        else:
            unused = [n for n in given if n not in protocol.inputs]
            if unused:
                raise evaluate.InputError(f"--protocol {protocol.name}: takes "
                                   + ", ".join("--" + n.replace("_", "-") for n in protocol.inputs)
                                   + f"; received {', '.join('--' + n.replace('_', '-') for n in unused)} too")
            dataset = protocol.read(options)
            out = args.out or Path("refmetrics-results")
            results, written = evaluate.run(protocol, dataset, out, options)
    except (ValueError, KeyboardInterrupt) as exc:  # InputError, OutputError, an unknown protocol; Ctrl-C
        return _failed("evaluate", exc, out)
    width = _width()
    print(f"{protocol.title}")
    print(evaluate.text_table(results, protocol.columns(options), width))
    if args.resize:
        _print_wrapped(f"(maps resized to their masks' size, {args.resize} interpolation: scikit-image resize, "
                       f"order {evaluate.RESIZE[args.resize]}, no anti-aliasing)", width)
    rule = protocol.score_rule(options)
    if rule != evaluate.ImageScore():
        _print_wrapped(f"(image scores: {rule.describe()})", width)
    for line in protocol.summary(options):
        _print_wrapped(line, width)
    for note in dataset.notes:
        _print_wrapped(f"note: {note}", width)
    for r in results:
        for note in r.notes:
            _print_wrapped(f"note [{r.category}]: {note}", width)
    n_figures = sum(1 for f in written if f.startswith("figures/"))
    _print_wrapped(f"wrote {len(written)} files to {out}/: " + ", ".join(f for f in written
                                                                        if not f.startswith("figures/"))
                   + (f" and {n_figures} figures in figures/" if n_figures else ""), width)
    return 0


def cmd_compare(args):
    import contextlib

    from . import evaluate
    from .evaluate import compare

    out = args.out
    try:
        protocol = compare.protocol_of(args.protocol, manifests=bool(args.manifest), demo=args.demo)
        options = evaluate.Options(gt=args.gt, categories=tuple(args.categories) if args.categories else None,
                                   fpr_limit=args.fpr_limit, resize=args.resize,
                                   image_score=_image_score(args, protocol, evaluate), figures=False,
                                   quiet=args.quiet or not sys.stdout.isatty(), official=False, per_defect=False)
        given = compare.inputs_of(args.maps, args.gt, args.manifest, args.demo)
        with compare.demo_inputs() if args.demo else contextlib.nullcontext(given) as inputs:
            names = tuple(args.names) if args.names else ("A", "B") if args.demo else inputs.default_names()
            settings = compare.Settings(*_resampling(args, evaluate), compare.check_names(names))
            datasets, options = compare.read_both(protocol, options, inputs)
            data = {"dataset": "refmetrics demo of compare (bundled)"} if args.demo else inputs.settings()
            out = args.out or Path("refmetrics-compare-demo" if args.demo else "refmetrics-compare")
            comparisons, mean, written, notes = compare.compare(protocol, datasets, out, options, settings,
                                                                inputs.where, inputs.roots, data)
    except (ValueError, KeyboardInterrupt) as exc:
        return _failed("compare", exc, out)
    width = _width()
    a, b = settings.names
    print(f"{protocol.title}: {a} vs {b}")
    print(compare.text(comparisons, mean, protocol.columns(options), settings))
    _print_wrapped(f"({settings.n_resamples} paired resamples of the test images, seed {settings.seed}: the same "
                   f"resampled images for both methods, normal and defective images drawn apart; "
                   f"{settings.level * 100:g}% percentile interval of {a} - {b}; two-sided p-value; p (Holm): "
                   "adjusted across categories, per metric)", width)
    for note in notes:
        _print_wrapped(f"note: {note}", width)
    for c in comparisons + [mean]:
        for note in c.notes:
            _print_wrapped(f"note [{c.category}]: {note}", width)
    _print_wrapped(f"wrote {len(written)} files to {out}/: " + ", ".join(written), width)
    return 0


def cmd_check_submission(args):
    from .evaluate import submission

    try:
        names = submission.dataset_names(args.dataset) if args.dataset is not None else None
        report = submission.check(args.directory, names)
    except ValueError as exc:
        print(f"refmetrics check-submission: {exc}", file=sys.stderr)
        return 2
    width = _width()
    for problem in report.problems:  # one line each, unwrapped: paths stay whole for grep and copy
        print(problem)
    for note in report.notes:
        _print_wrapped(f"note: {note}", width)
    source = f"the image lists of {args.dataset}" if args.dataset is not None else \
        "the official checker's objects and counts"
    checked = ", ".join(f"{n} in {root}/" for root, n in report.checked.items())
    if report.problems:
        n = len(report.problems)
        _print_wrapped(f"{args.directory}: not a valid MVTec AD 2 submission: {n} problem{'s' if n != 1 else ''} "
                       f"(checked against {source}; files checked: {checked or 'none'})", width)
        return 1
    _print_wrapped(f"{args.directory}: a valid MVTec AD 2 submission (checked against {source}: {checked})", width)
    return 0


def _unit_interval(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], received {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], received {text!r}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, received {text!r}")
    return value


E_RESIZE = ("nearest", "bilinear")  # the choices of --resize (refmetrics.evaluate.RESIZE, without importing it)


def build_parser():
    parser = argparse.ArgumentParser(prog="refmetrics", description="Exact anomaly-detection metrics.")
    parser.add_argument("--version", action="version", version=f"refmetrics {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("example", help="evaluate the bundled example dataset and print the table")
    ex.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    ex.set_defaults(func=cmd_example)
    co = sub.add_parser("conformance", help="compare installed implementations with the exact values",
                        description="Run every installed implementation (or those given) on the bundled golden "
                                    "cases and explain, metric by metric, where they differ from the exact value.")
    co.add_argument("--impl", action="append", metavar="NAME",
                    help="an adapter (refmetrics, scikit-learn, torchmetrics, anomalib, adeval, mvtec-ad, "
                         "mvtec-3d-ad, aupro-200, ader-adeval, aupro-100, cflow-aupro, anomalib-2.2-aupro, visa) or "
                         "package.module:function taking (metric, preds, target); "
                         "repeatable; default: all")
    from .conformance.cases import METRICS

    co.add_argument("--metric", action="append", metavar="NAME",
                    help=f"{', '.join(METRICS)} (repeatable); default: all")
    co.add_argument("--case", action="append", metavar="NAME", help="a fixture case (repeatable); default: all")
    co.add_argument("--json", metavar="FILE", help="write every result as JSON")
    co.add_argument("--markdown", metavar="FILE", help="write the report as Markdown")
    co.add_argument("--details", action="store_true", help="list agreeing results too")
    co.add_argument("--strict", action="store_true",
                    help="exit 1 on an unexplained disagreement or error (findings, named defects of an "
                         "implementation, are explained and do not fail it)")
    co.add_argument("--quiet", action="store_true", help="no progress lines")
    co.set_defaults(func=cmd_conformance)
    import textwrap

    from .evaluate.protocols import DEFAULT, PROTOCOLS

    ev = sub.add_parser("evaluate", help="evaluate saved anomaly maps under a benchmark's protocol: tables "
                                         "(terminal, JSON, Markdown, LaTeX) and figures",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description=textwrap.fill(
                            "Evaluate saved anomaly maps exactly, under a benchmark's official protocol "
                            "(--protocol), per category, per defect type and on average; the official "
                            "tool's own convention is shown beside the exact value where it differs. "
                            "Without a dataset, or with --demo, it runs on the protocol's small bundled "
                            "demo tree.", 79) + "\n\nprotocols and their layouts:\n"
                                    + "\n".join(f"  {p.name}: {p.layout}" for p in PROTOCOLS.values()))
    ev.add_argument("--protocol", default=DEFAULT, metavar="NAME",
                    help=f"{', '.join(PROTOCOLS)} (default {DEFAULT})")
    ev.add_argument("--maps", type=Path, metavar="DIR",
                    help="the anomaly maps' tree, laid out as the protocol's dataset (mvtec-ad: "
                         "<DIR>/<category>/test/<defect>/<name>.tiff|.npy|.png; the others: the list above)")
    ev.add_argument("--gt", type=Path, metavar="DIR",
                    help="the dataset's tree with the ground truth (mvtec-ad: "
                         "<DIR>/<category>/ground_truth/<defect>/<name>_mask.png; visa: the dataset root, default "
                         "the split CSV's grandparent; the others: the list above)")
    ev.add_argument("--manifest", type=Path, metavar="CSV",
                    help="instead of --maps/--gt: a CSV with the columns map, mask (a path, or empty for a good "
                         "image) and optionally score, label (0/1), category, defect")
    ev.add_argument("--split-csv", type=Path, metavar="CSV", help="visa: the release's split_csv/1cls.csv")
    ev.add_argument("--split-json", type=Path, metavar="DIR",
                    help="real-iad: the release's split directory (realiad_jsons/, realiad_jsons_sv/, ...) of "
                         "<category>.json files; its test lists name the views (default: every map under --maps)")
    ev.add_argument("--categories", nargs="+", metavar="NAME", help="only these categories (default: all)")
    ev.add_argument("--out", type=Path, metavar="DIR",
                    help="where to write results.json/.md/.tex and figures/ (default: refmetrics-results, "
                         "or refmetrics-demo with --demo)")
    ev.add_argument("--fpr-limit", type=_unit_interval, default=None,
                    help="AUPRO's (or AU-sPRO's) FPR limit, in (0, 1] (default: the protocol's)")
    ev.add_argument("--resize", choices=sorted(E_RESIZE), help="resize maps whose size differs from their mask's "
                                                               "(default: such a mismatch is an error)")
    ev.add_argument("--image-score", choices=("max", "top_k_mean", "pooled_max"), default=None,
                    help="the image score from each map as stored: its maximum (MVTec AD, anomalib), "
                         "the mean of its largest pixels (top_k_mean, --top-k; Dinomaly) or the maximum of its "
                         "average-pooled map (pooled_max, --pool-kernel; ADer); default: the protocol's; a "
                         "manifest's score column wins")
    ev.add_argument("--top-k", type=_unit_interval, default=None, metavar="K",
                    help="top_k_mean: the share of pixels averaged, in (0, 1] (default 0.01)")
    ev.add_argument("--pool-kernel", type=_positive_int, default=None, metavar="N",
                    help="pooled_max: the pooling window's side in pixels, stride 1, no padding (default 16)")
    ev.add_argument("--float16", action="store_true",
                    help="round every score to float16 first (as the MVTec AD 2 server receives them)")
    ev.add_argument("--sample-key", metavar="REGEX",
                    help="real-iad: the part of a file name (without suffix) that names its view, removed to "
                         "group views into samples (default: '_C[1-5](?:_[0-9]+)?$', the camera token at the end "
                         "of the name with the capture time Real-IAD puts after it)")
    ev.add_argument("--no-official", action="store_true",
                    help="leave out the official tools' conventions (computed from the streaming state, except "
                         "MVTec LOCO's, which holds a category's maps in memory as that tool does)")
    ev.add_argument("--no-per-defect", action="store_true",
                    help="leave out the per-defect-type breakdown (one more pass over a category's maps per type)")
    ev.add_argument("--no-figures", action="store_true", help="write the tables only")
    ev.add_argument("--ci", action="store_true",
                    help="a confidence interval beside every value that has one: a stratified bootstrap of the "
                         "images (normal and anomalous drawn apart), each resample's metrics exact, the percentile "
                         "interval shown as 0.9870 \u00b10.0040 (half its width) and [low, high] in results.json")
    ev.add_argument("--bootstrap", metavar="B", default=None,
                    help="with --ci: the number of resamples (default 1000, at least 10)")
    ev.add_argument("--seed", metavar="S", default=None,
                    help="with --ci: the resamples' seed, a whole number >= 0 (default 0; each category and defect "
                         "type draws its own resamples from it)")
    ev.add_argument("--level", metavar="L", default=None,
                    help="with --ci: the intervals' level, strictly between 0 and 1 (default 0.95)")
    ev.add_argument("--memory-limit", metavar="SIZE", default=None,
                    help="bounded memory, the same numbers: the pooled pixel keys are spilled to a temporary "
                         "directory and sorted range by range, at most SIZE less 256 MiB for the process itself "
                         "held at a time (SIZE: bytes, or 1GB, 512MiB, ...; at least 257 MiB); needs about twice "
                         "the keys (4 bytes per pixel, 8 for resized maps) of disk. Not with --ci or mvtec-loco")
    ev.add_argument("--tmp-dir", type=Path, metavar="DIR", default=None,
                    help="with --memory-limit: where the temporary directory goes (default: the system's)")
    ev.add_argument("--dask", metavar="ADDRESS", default=None,
                    help="compute each category's pixel metrics on a Dask cluster, the same numbers: the "
                         "scheduler's ADDRESS (tcp://host:8786; the workers must read the maps' paths), or "
                         "local[N] for a LocalCluster of N one-thread workers started for the run. Needs "
                         "pip install \"refmetrics[dask]\"; protocols mvtec-ad, and mvtec-3d-ad, visa, real-iad "
                         "with --no-official; not with --ci or --memory-limit")
    ev.add_argument("--demo", action="store_true", help="run on the protocol's bundled demo dataset")
    ev.add_argument("--quiet", action="store_true", help="no progress bars (also off when stdout is not a terminal)")
    ev.set_defaults(func=cmd_evaluate)
    cp = sub.add_parser("compare", help="compare two methods' maps on one test set: per category and on average, "
                                         "each metric's difference, its paired bootstrap interval and p-value",
                        description="Compare two methods' anomaly maps of the same test set (two --maps trees "
                                    "with one --gt, or two --manifest files), per category and on average: each "
                                    "metric of both (exactly as evaluate computes it), their difference, its "
                                    "paired bootstrap percentile interval (the same resampled test images for "
                                    "both, normal and defective images drawn apart) and two-sided p-value, "
                                    "Holm-corrected across categories. Writes compare.json, compare.md and "
                                    "compare.tex. With --demo, it runs on two bundled synthetic methods.")
    cp.add_argument("--protocol", default=None, metavar="NAME",
                    help=f"the protocol whose reader and metrics are used: one whose dataset is --maps/--gt "
                         f"({', '.join(n for n, p in PROTOCOLS.items() if 'split_csv' not in p.inputs)}; "
                         f"default {DEFAULT})")
    cp.add_argument("--maps", type=Path, action="append", metavar="DIR",
                    help="a method's maps tree, laid out as the protocol's dataset; give it twice (A, then B)")
    cp.add_argument("--gt", type=Path, metavar="DIR", help="the test set's ground-truth tree, shared by both")
    cp.add_argument("--manifest", type=Path, action="append", metavar="CSV",
                    help="instead of --maps/--gt: a method's CSV manifest (as evaluate's); give it twice")
    cp.add_argument("--categories", "--category", nargs="+", metavar="NAME",
                    help="only these categories (default: all)")
    cp.add_argument("--names", nargs=2, metavar=("NAME_A", "NAME_B"),
                    help="the two methods' names in the outputs (default: the --maps directories' or "
                         "--manifest files' names)")
    cp.add_argument("--bootstrap", default=None, metavar="B",
                    help="the number of paired resamples (default 1000)")
    cp.add_argument("--seed", default=None, help="the resamples' seed (default 0)")
    cp.add_argument("--level", default=None, help="the intervals' level, in (0, 1) (default 0.95)")
    cp.add_argument("--fpr-limit", type=_unit_interval, default=None,
                    help="AUPRO's (or AU-sPRO's) FPR limit, in (0, 1] (default: the protocol's)")
    cp.add_argument("--resize", choices=sorted(E_RESIZE), help="resize maps whose size differs from their mask's")
    cp.add_argument("--image-score", choices=("max", "top_k_mean", "pooled_max"), default=None,
                    help="the image score from each map (as evaluate's; default: the protocol's)")
    cp.add_argument("--top-k", type=_unit_interval, default=None, metavar="K", help="top_k_mean: the share of pixels")
    cp.add_argument("--pool-kernel", type=_positive_int, default=None, metavar="N", help="pooled_max: the window")
    cp.add_argument("--out", type=Path, metavar="DIR",
                    help="where to write compare.json/.md/.tex (default: refmetrics-compare, or "
                         "refmetrics-compare-demo with --demo)")
    cp.add_argument("--demo", action="store_true", help="compare the two bundled synthetic methods")
    cp.add_argument("--quiet", action="store_true", help="no progress bars (also off when stdout is not a terminal)")
    cp.set_defaults(func=cmd_compare)
    cs = sub.add_parser("check-submission", help="check an MVTec AD 2 submission directory before uploading it",
                        description="Check an MVTec AD 2 submission directory as the official checker defines it "
                                    "(anomaly_images/<object>/test_private[_mixed]/NNN_regular|mixed.tiff: 2-D "
                                    "float16 TIFFs; optional anomaly_images_thresholded/... .png: values 0 and "
                                    "255, the TIFF's size; the eight objects and their file counts; nothing "
                                    "else). Lists every problem. Exit status: 0 valid, 1 not valid, 2 usage "
                                    "error.")
    cs.add_argument("directory", type=Path, metavar="DIR", help="the submission directory")
    cs.add_argument("--dataset", type=Path, metavar="ROOT",
                    help="a local copy of MVTec AD 2: take the objects, names and counts from its "
                         "<object>/test_private/ and test_private_mixed/ images (default: the official table)")
    cs.set_defaults(func=cmd_check_submission)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
        return status
    except KeyboardInterrupt:
        print(f"refmetrics {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`refmetrics example | head -3`): stop quietly; point stdout at /dev/null so that
        # the interpreter's final flush does not complain either
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a process killed by the signal would report


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
