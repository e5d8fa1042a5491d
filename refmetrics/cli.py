"""The ``refmetrics`` command.

``refmetrics conformance`` runs the conformance suite on the bundled golden
cases against every installed implementation. ``refmetrics example``
evaluates the small bundled dataset (24 anomaly maps with masks) and prints
the standard table, exactly.
"""

import argparse
import json
import sys
from importlib import resources

import numpy as np

from . import __version__
from . import functional as F


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
    threshold, f1 = F.f1_adaptive_threshold(image_scores, labels)
    return {
        "images": int(maps.shape[0]),
        "defective images": int(labels.sum()),
        "pixels": int(maps.size),
        "defect pixels": int(masks.sum()),
        "image AUROC": F.auroc(image_scores, labels),
        "image AP": F.average_precision(image_scores, labels),
        "image F1-max": f1,
        "image F1 threshold": threshold,
        "pixel AUROC": F.auroc(maps, masks),
        "pixel AP": F.average_precision(maps, masks),
        "pixel AUPR (trapezoid, anomalib 1.x)": F.aupr(maps, masks, curve="trapezoid"),
        "pixel F1-max": F.f1_max(maps, masks),
        "pixel AUPRO@0.3": F.aupro(maps, masks, fpr_limit=0.3),
        "pixel regions": int(F.label_regions(masks, return_num=True)[1]),
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
    from . import conformance as C

    def progress(message):
        print(f"  ... {message}", file=sys.stderr, flush=True)

    try:
        report = C.run(impls=args.impl, metrics=args.metric, cases=args.case,
                       progress=None if args.quiet else progress)
    except (ValueError, ImportError, AttributeError) as exc:
        print(f"refmetrics conformance: {exc}", file=sys.stderr)
        return 2
    print(C.text(report, details=args.details))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(C.to_json(report))
        print(f"wrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write(C.markdown(report))
        print(f"wrote {args.markdown}")
    return 1 if args.strict and report.unexplained else 0


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
                         "mvtec-3d-ad, aupro-200) or package.module:function taking (metric, preds, target); "
                         "repeatable; default: all")
    from .conformance.cases import METRICS

    co.add_argument("--metric", action="append", metavar="NAME",
                    help=f"{', '.join(METRICS)} (repeatable); default: all")
    co.add_argument("--case", action="append", metavar="NAME", help="a fixture case (repeatable); default: all")
    co.add_argument("--json", metavar="FILE", help="write every result as JSON")
    co.add_argument("--markdown", metavar="FILE", help="write the report as Markdown")
    co.add_argument("--details", action="store_true", help="list agreeing results too")
    co.add_argument("--strict", action="store_true", help="exit 1 on an unexplained disagreement or error")
    co.add_argument("--quiet", action="store_true", help="no progress lines")
    co.set_defaults(func=cmd_conformance)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
