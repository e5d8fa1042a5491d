"""``refmetrics evaluate``: saved anomaly maps -> the tables of a benchmark's official protocol, exactly.

The flow, one module each::

    readers/<layout>.py   a dataset tree (or a CSV manifest) -> Samples, layout checked, no pixels read
    samples.py            Sample; every header read and checked (sizes, dtypes) before anything is computed
    state.py              one streaming state per group: each map read once, handed to the accumulators
    protocols/<name>.py   what a benchmark measures: its columns, accumulators, numbers (exact, and the
                          official tool's convention beside them)
    writers.py            terminal table, results.json (one schema), Markdown, LaTeX, figures
    run.py                the run: categories (and defect types) -> outputs, staged and switched in atomically

The data are streamed: maps are read one at a time into the group's state (the
pooled pixel state holds 4 bytes per float32 pixel, sorted in place), so the peak
memory is close to one copy of the maps.
"""

from .._outdir import InterruptedAfterCommit, OutputError  # noqa: F401 - the command catches them
from . import writers
from .options import ImageScore, Options
from .protocols import DEFAULT, PROTOCOLS, get as get_protocol
from .protocols.mvtec_ad import METRICS
from .readers import Dataset
from .readers.manifest import read as read_manifest
from .readers.mvtec_ad import discover as discover_mvtec
from .run import check_memory_limit, evaluate_category, evaluate_group, run
from .samples import RESIZE, InputError, Result, Sample, check_headers
from .state import GroupState
from .writers import figure_slugs, latex_table, markdown_table, text_table, to_json, write_figures

__all__ = ["DEFAULT", "Dataset", "GroupState", "ImageScore", "InputError", "InterruptedAfterCommit", "METRICS",
           "Options", "OutputError", "PROTOCOLS", "RESIZE", "Result", "Sample", "check_headers", "check_memory_limit",
           "discover_mvtec", "evaluate_category", "evaluate_group", "figure_slugs", "get_protocol",
           "latex_table", "markdown_table", "read_manifest", "run", "text_table", "to_json", "write_figures",
           "writers"]
