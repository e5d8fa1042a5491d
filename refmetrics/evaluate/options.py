"""The settings of one ``refmetrics evaluate`` run, as one object every stage reads."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImageScore:
    """How an image's score is reduced from its map, as stored (before any resizing):
    :func:`refmetrics.functional.image_scores`'s ``reduce``, ``k`` and ``kernel``."""

    reduce: str = "max"
    k: float = 0.01
    kernel: int = 16

    def describe(self):
        if self.reduce == "top_k_mean":
            return f"top_k_mean (mean of the largest max(1, floor({self.k:g} x pixels)) pixels)"
        if self.reduce == "pooled_max":
            return f"pooled_max (maximum of the {self.kernel}x{self.kernel} average-pooled map)"
        return "max (the maximum of the map)"


@dataclass
class Options:
    """Everything a run depends on besides the dataset.

    ``image_score`` None: the protocol's own rule. ``fpr_limit`` None: the protocol's own limit(s).
    ``official``: compute the official tools' conventions beside the exact values (from the finished
    streaming state; MVTec LOCO's alone holds every map of an object, as its tool does). ``per_defect``: the per-defect-type breakdown (one more
    pass over the category's maps per defect type).

    ``ci``: a percentile interval beside every value that has one (a stratified image bootstrap,
    :func:`refmetrics.functional.bootstrap.resample_counts`: ``bootstrap`` resamples drawn with ``seed``, each
    category and defect type under its own name), at ``level`` (:func:`check_ci` checks them).

    ``memory_limit``: the pooled pixel state holds at most that many bytes of keys at a time, the rest spilled
    to a temporary directory under ``tmp_dir`` (:class:`refmetrics._spill.SpilledPixelState`: the same
    numbers; ``--memory-limit`` is this budget plus :data:`refmetrics._spill.OVERHEAD`).

    ``dask``: a Dask scheduler's address, or ``local[N]`` (a LocalCluster of N workers for the run): each
    group's maps are read and its pooled pixel metrics computed on the cluster
    (:mod:`refmetrics.evaluate.dask_state`: the same numbers).
    """

    maps: Path | None = None
    gt: Path | None = None
    manifest: Path | None = None
    split_csv: Path | None = None
    split_json: Path | None = None
    categories: tuple | None = None
    fpr_limit: float | None = None
    resize: str | None = None
    resize_mode: str = "reflect"  # scikit-image's mode past the edges; "edge" clamps, as OpenCV (Real-IAD's ADEval)
    connectivity: int | None = None
    image_score: ImageScore | None = None
    float16: bool = False
    sample_key: str | None = None
    figures: bool = True
    quiet: bool = True
    official: bool = True
    per_defect: bool = True
    ci: bool = False
    bootstrap: int = 1000
    seed: int = 0
    level: float = 0.95
    memory_limit: int | None = None  # bytes of keys the pooled pixel state holds at a time (None: in memory)
    tmp_dir: Path | None = None  # where a spilled pixel state's temporary directory goes (None: the system's)
    dask: str | None = None  # a Dask scheduler's address or local[N] (None: this process)


MIN_RESAMPLES = 10  # fewer resamples leave a 95% percentile interval to the extremes of a handful of values


def check_ci(bootstrap, seed, level):
    """The ``--bootstrap``, ``--seed`` and ``--level`` values, checked: a ValueError naming the option, what
    it expects and what it received."""
    import numbers

    if isinstance(bootstrap, bool) or not isinstance(bootstrap, numbers.Integral) or bootstrap < MIN_RESAMPLES:
        raise ValueError(f"--bootstrap: expected a whole number of resamples of at least {MIN_RESAMPLES}, "
                         f"received {bootstrap!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"--seed: expected a whole number of at least 0, received {seed!r}")
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"--level: expected a number strictly between 0 and 1 (0.95 for 95%), received {level!r}")
    return int(bootstrap), int(seed), float(level)
