"""``refmetrics evaluate --dask ADDRESS``: a group's pooled pixel metrics computed on a Dask cluster.

The client never holds a pixel. The workers read each group's maps once per pass:

- an image pass: per chunk of images, a task reads each map and its ground truth through the evaluate
  readers (:meth:`refmetrics.evaluate.state.GroupState.read`, the same code as a run without ``--dask``)
  and returns each image's score and label only (the image-level metrics stay on the client);
- the pixel passes: :class:`DaskPixelState` hands chunks of whole images (read again by the workers, a
  task per chunk, consecutive images of one size) to the graph of :mod:`refmetrics.dask` (histograms of
  key prefixes, buckets, a shuffle, exact per-bucket parts), once for the ranking metrics (pixel AUROC,
  AP and F1-max together), once per AUPRO limit, and once per curve the figures draw.

- the threshold conventions' passes (:meth:`DaskPixelState.counts_at_least`,
  :meth:`~DaskPixelState.region_overlap_at_least`, :meth:`~DaskPixelState.keys_at`): counts at thresholds,
  the extreme scores, defect pixels by (thresholds below, region size), and order statistics found 16 bits
  per pass from the prefix histograms, so only counts come back;
- accumulators with ``part_of(image)`` (MVTec AD 2's SegF1 counts and validation moments, MVTec LOCO's
  defect checks) compute their part where the map is read, and the client adds the parts in sample order;
  MVTec LOCO's subsets are :class:`DaskSpro` states (a histogram pass and a shuffle each);
- the figures' PRO and sPRO curves: every bucket's groups come back and are summed in the one-process chunks.

The values are those of the in-memory states, bit for bit, figures included. What needs each image's own
keys (``--ci``'s pixel bootstrap) or every map at once (MVTec LOCO's official AU-sPRO) is refused up front by
:func:`check` rather than computed otherwise. The maps' paths must be readable by the workers (a shared filesystem for a remote cluster).
"""

import contextlib
import re
from fractions import Fraction

import numpy as np

from .samples import InputError

#: the most pixels one chunk task reads (2**23: 32 MiB of float32 maps); a chunk holds at least one image
CHUNK_PIXELS = 2 ** 23

#: protocols whose columns come from what :class:`DaskPixelState` serves (``--ci`` aside)
SUPPORTED = ("mvtec-ad", "mvtec-3d-ad", "visa", "real-iad", "ader", "mvtec-ad-2", "mvtec-loco")

#: how long connecting to a scheduler's address may take
CONNECT_TIMEOUT = "10s"

_LOCAL = re.compile(r"local\[(\d+)\]\Z")
_ADDRESS = re.compile(r"([a-z][a-z0-9+.-]*://)?[^\s/:]+(:\d+)?\Z")

_CLIENTS = []  # the client of the run in progress (session): the pixel states compute on it


def parse(value):
    """``("local", n)`` for ``local[N]``, ``("address", value)`` for a scheduler address; an InputError
    naming ``--dask`` otherwise."""
    text = str(value).strip()
    local = _LOCAL.match(text)
    if local:
        n = int(local.group(1))
        if n < 1:
            raise InputError(f"--dask: expected local[N] with N >= 1 workers, received {value!r}")
        return "local", n
    if text.startswith("local"):
        raise InputError(f"--dask: expected local[N] (N workers, e.g. local[4]) or a scheduler address "
                         f"(tcp://host:8786), received {value!r}")
    if not _ADDRESS.match(text):
        raise InputError(f"--dask: expected a scheduler address (tcp://host:8786, host:8786) or local[N], "
                         f"received {value!r}")
    return "address", text


def _import():
    try:
        import dask  # noqa: F401
        import distributed
    except ImportError as exc:
        raise InputError(f'--dask: needs dask and distributed ({exc}): pip install "refmetrics[dask]"') from None
    return distributed


def check(options, protocol):
    """Refuse, before anything is read, what ``--dask`` cannot compute as the run without it does."""
    if options.dask is None:
        return
    parse(options.dask)
    if protocol.name not in SUPPORTED:
        raise InputError(f"--dask: --protocol {protocol.name} is not computed on a cluster (it needs per-image "
                         f"keys or its own accumulators; supported: {', '.join(SUPPORTED)}): run it without "
                         "--dask")
    if protocol.name == "mvtec-loco" and options.official:
        raise InputError("--dask: --protocol mvtec-loco's official AU-sPRO holds every map of an object at once "
                         "(the official tool samples and refines its thresholds on the whole maps): add "
                         "--no-official, or run without --dask")
    if options.ci:
        raise InputError("--dask: --ci resamples every image's pixel keys, which the cluster does not gather: "
                         "leave out --ci or --dask")
    if options.memory_limit is not None:
        raise InputError("--dask: the workers hold the keys, each within its own memory limit (dask's "
                         "--memory-limit of the workers); --memory-limit bounds the local pixel state: give one "
                         "of --dask and --memory-limit")
    _import()


@contextlib.contextmanager
def session(options):
    """The run's ``distributed.Client`` (None without ``options.dask``): a LocalCluster of N one-thread
    workers for ``local[N]``, closed on leaving (errors and Ctrl-C included), or a client of the scheduler
    at the address (the cluster itself is left running)."""
    if options.dask is None:
        yield None
        return
    kind, value = parse(options.dask)
    distributed = _import()
    with contextlib.ExitStack() as stack:
        if kind == "local":
            cluster = stack.enter_context(distributed.LocalCluster(n_workers=value, threads_per_worker=1,
                                                                   processes=True, dashboard_address=":0"))
            client = stack.enter_context(distributed.Client(cluster, set_as_default=False))
        else:
            try:
                client = distributed.Client(value, timeout=CONNECT_TIMEOUT, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise InputError(f"--dask: could not connect to a Dask scheduler at {value}: {exc}") from None
            stack.callback(client.close)
        _CLIENTS.append(client)
        try:
            yield client
        finally:
            _CLIENTS.remove(client)


def _client():
    if not _CLIENTS:
        raise RuntimeError("--dask: no cluster session is open (refmetrics.evaluate.run opens it)")
    return _CLIENTS[-1]


def _delayed(fn):
    import dask

    return dask.delayed(fn, pure=True)


def chunks_of(samples, chunk_pixels=None):
    """Consecutive runs of samples of one target size, each at most ``chunk_pixels`` pixels (at least one
    image): the images one task reads."""
    limit = CHUNK_PIXELS if chunk_pixels is None else chunk_pixels
    out, run, size = [], [], 0
    for s in samples:
        pixels = s.target[0] * s.target[1]
        if run and (s.target != run[0].target or size + pixels > limit):
            out.append(run)
            run, size = [], 0
        run.append(s)
        size += pixels
    if run:
        out.append(run)
    return out


# -- worker tasks --------------------------------------------------------------

def _reader(samples, options, image_score):
    from .state import GroupState

    return GroupState(samples, options, {}, image_score)


def read_images(samples, options, image_score, dtype=None, summaries=None):
    """On a worker: ``(infos, contradicted, maps, masks)`` of a chunk of samples. ``infos``: per sample
    ``(score, defective, the map's dtype as read, {name: part})``, the parts those of the accumulators in
    ``summaries`` (``{name: accumulator}``, each with a ``part_of(image)``: SegF1's counts, the validation
    moments), and ``contradicted`` the maps labelled good with defect pixels, each sample read and checked
    as a run without ``--dask`` reads it (NaN refused naming the file, as the pixel state does); with
    ``dtype`` (the samples of one size) the maps as the pixel state converts them and the masks as bool
    (all False without a mask), else None, None."""
    group = _reader(samples, options, image_score)
    infos, maps, masks = [], None, None
    if dtype is not None:
        h, w = samples[0].target
        maps = np.empty((len(samples), h, w), dtype)
        masks = np.zeros((len(samples), h, w), bool)
    for i, s in enumerate(samples):
        image = group.read(s)
        n_nan = int(np.count_nonzero(np.isnan(image.values))) if image.values.dtype.kind == "f" else 0
        if n_nan:
            raise ValueError(f"{s.map}: expected scores without NaN, received {n_nan:,} NaN values")
        infos.append((image.score, image.defective, image.dtype,
                      {name: part.part_of(image) for name, part in (summaries or {}).items()}))
        if dtype is not None:
            maps[i] = np.ascontiguousarray(image.values, dtype=dtype)
            if image.mask is not None:
                masks[i] = image.mask != 0
    return infos, group.contradicted, maps, masks


def read_pixels(samples, options, dtype):
    """On a worker: ``(maps, masks)`` of a chunk of samples of one size (as :func:`read_images`; the
    cheapest image score, which nothing reads)."""
    from .options import ImageScore

    return read_images(samples, options, ImageScore(), dtype)[2:]


def stream(state, samples, figures=False):
    """Fill a :class:`refmetrics.evaluate.state.GroupState` from the workers: every image's score and label
    (its map and ground truth read there), then every accumulator's ``add`` with an
    :class:`~refmetrics.evaluate.state.Image` without pixels, or, for an accumulator with
    ``part_of(image)`` and ``add_part(image, part)``, ``add_part`` of that image and what ``part_of``
    computed on the worker. With a :class:`DaskPixelState` (the ``pixels`` accumulator) the same reads give
    its region histograms (:meth:`DaskPixelState.start`); ``figures``: its ranking pass brings the pixel
    curves back too."""
    import operator

    from .state import Image

    pixels = getattr(state.parts.get("pixels"), "state", None)
    pixels = pixels if isinstance(pixels, DaskPixelState) else None
    chunks = chunks_of(samples)
    dtype = pixels.float if pixels is not None else None
    summaries = {name: part for name, part in state.parts.items() if hasattr(part, "part_of")}
    reads = [_delayed(read_images)(chunk, state.options, state.image_score, dtype, summaries) for chunk in chunks]
    infos = [_delayed(operator.getitem)(r, slice(0, 2)) for r in reads]
    if pixels is None:
        parts, = _compute(infos)
    else:
        from ..dask import _graph as D

        blocks = [(_delayed(operator.getitem)(r, 2), _delayed(operator.getitem)(r, 3)) for r in reads]
        hists = [_delayed(D.region_hist)(m, t, 2, pixels.connectivity) for m, t in blocks]
        parts, hist = _compute(infos, D.tree_sum(hists) if hists else None)
        pixels.start(chunks, hist, figures)
    i = 0
    for part_infos, contradicted in parts:
        state.contradicted.extend(contradicted)
        for score, defective, dtype, computed in part_infos:
            image = Image(samples[i], None, None, None, score, defective, dtype)
            for name, part in state.parts.items():
                if name in computed:
                    part.add_part(image, computed[name])
                else:
                    part.add(image)
            i += 1


def _compute(*args):
    from ..dask import _graph as D

    return D.compute(*args, scheduler=_client())


# -- the pixel state -----------------------------------------------------------

def _ranking_plan_class():
    from ..dask import _graph as D

    return D.RankingPlan


class RankingFromRegions:
    """A :class:`refmetrics.dask._graph.RankingPlan` of maps and masks whose histograms are those the
    region plan already has (background keys are the negatives, region keys the positives: the same keys),
    so the ranking metrics cost one pass (the shuffle) instead of two."""

    def __new__(cls, chunks, region_hist, bucket_size, scheduler):
        from .. import _buckets as B

        plan = object.__new__(_ranking_plan_class())
        plan.chunks, plan.ignore_index, plan.scheduler = chunks, None, scheduler
        plan.hist = hist = np.stack([region_hist[1], region_hist[0]])  # (positives, negatives)
        plan.plan = B.plan_buckets(hist[0] + hist[1], bucket_size)
        plan.n_pos, plan.n_neg = int(hist[0].sum()), int(hist[1].sum())
        plan.tp_above, plan.fp_above = plan.plan.above(hist[0]), plan.plan.above(hist[1])
        return plan

class DaskPixelState:
    """What the protocols read from a finished :class:`refmetrics.state.PixelState`, computed on the
    cluster from the recorded samples: ``n_bg``, ``n_defect``, ``n_regions``, :meth:`auroc`,
    :meth:`average_precision`, :meth:`f1_max`, :meth:`aupro`, :meth:`roc_pr_points`, :meth:`pro_points`,
    :meth:`score_range`, :meth:`counts_at_least`, :meth:`counts_above`, :meth:`region_overlap_at_least` and
    :meth:`sorted_keys` (order statistics by rank, :meth:`keys_at`): the values of the in-memory state, bit
    for bit. Each asks the workers for a pass over the maps unless what it needs is already known (counts
    per threshold, overlaps per set of thresholds, keys per rank, the extreme scores are remembered)."""

    def __init__(self, dtype, connectivity, options):
        self.float, self.connectivity, self.options = np.dtype(dtype), connectivity, options
        self.samples = []
        self._chunks = None
        self._ranking = self._regions = self._parts = None
        self._aupro = {}
        self._curves = False
        self._at_least = {}  # threshold key -> (background, defect) pixels with a key >= it
        self._ends = None  # (smallest, largest) key of every pixel, once a pass has found them
        self._ranked = ({}, {})  # per side (background, defect): rank -> key
        self._overlaps = {}  # the distinct threshold keys (bytes) -> their overlap pass
        self.n_bg = self.n_defect = self.n_regions = 0

    @property
    def n_images(self):
        return len(self.samples)

    def add_sample(self, sample):
        if self._finished:
            raise RuntimeError("DaskPixelState.add_sample: the state is finished; add every image before finish()")
        self.samples.append(sample)

    _finished = False

    def start(self, chunks, hist, curves=False):
        """The region plan (:class:`refmetrics.dask._graph.RegionPlan`) from the histograms :func:`stream`
        computed with the image pass, ``(hist, regions)`` (None without an image), for the groups of
        samples ``chunks``; the later passes read those chunks again (:func:`read_pixels`)."""
        import operator

        from .. import _buckets as B
        from ..dask import _graph as D

        reads = [_delayed(read_pixels)(chunk, self.options, self.float) for chunk in chunks]
        self._chunks = [(_delayed(operator.getitem)(r, 0), _delayed(operator.getitem)(r, 1)) for r in reads]
        hist, k = hist if hist is not None else (np.zeros((2, B.N_PREFIXES), np.int64), 0)
        rp = object.__new__(D.RegionPlan)  # its __init__ would read every map once more for these
        rp.chunks, rp.spatial_dims, rp.connectivity, rp.scheduler = self._chunks, 2, self.connectivity, _client()
        rp.hist, rp.n_regions = hist, int(k)
        rp.n_bg, rp.n_region_pixels = int(hist[0].sum()), int(hist[1].sum())
        rp.plan = B.plan_buckets(hist[0] + hist[1], B.DEFAULT_BUDGET)
        self._regions, self._curves = rp, bool(curves)
        self.n_bg, self.n_defect, self.n_regions = rp.n_bg, rp.n_region_pixels, rp.n_regions

    def finish(self):
        """Close the state (:func:`stream` has started it: the counts are known)."""
        if self._regions is None:
            raise RuntimeError("DaskPixelState.finish: no image pass ran (refmetrics.evaluate.dask_state.stream)")
        self._finished = True

    def _need(self, what):
        if not self._finished:
            raise RuntimeError(f"DaskPixelState.{what}: call finish() first")

    def _ranking_parts(self):
        """Pixel AUROC, AP and F1-max parts (and the curve for the figures), from one shuffle (the first
        ranking metric asked runs it)."""
        from .. import _buckets as B

        if self._ranking is None:
            self._ranking = RankingFromRegions(self._chunks, self._regions.hist, B.DEFAULT_BUDGET, _client())
        if self._parts is None:
            rp = self._ranking
            want = {"auroc", "ap", "f1"} | ({"curve"} if self._curves else set())
            self._parts = rp.run(want) if rp.n_pos and rp.n_neg else {}
        return self._ranking, self._parts

    def auroc(self):
        from ..dask import _api as RA

        self._need("auroc")
        rp, parts = self._ranking_parts()
        if RA._one_class(rp, "AUROC"):
            return float("nan")
        u2, p, n = parts["auroc"]
        return float(Fraction(u2, 2 * p * n))

    def average_precision(self):
        from .. import _buckets as B
        from ..dask import _api as RA

        self._need("average_precision")
        rp, parts = self._ranking_parts()
        if RA._no_positive(rp, "average precision"):
            return float("nan")
        if "ap" not in parts:  # defect pixels only: one shuffle for AP alone
            parts["ap"] = rp.run({"ap"})["ap"]
        return B.ap_finish(parts["ap"], rp.n_pos)

    def f1_max(self):
        from ..dask import _api as RA

        self._need("f1_max")
        rp, parts = self._ranking_parts()
        if RA._no_positive(rp, "F1"):
            return float("nan")
        if "f1" not in parts:
            parts["f1"] = rp.run({"f1"})["f1"]
        tp, fp, _ = parts["f1"]
        return float(Fraction(2 * tp, tp + fp + rp.n_pos))

    def aupro(self, fpr_limit=0.3):
        from ..dask import _api as RA
        from ..functional import regions as FR

        self._need("aupro")
        limit = FR.check_fpr_limit(fpr_limit)
        if RA._region_undefined(self._regions, "AUPRO"):
            return float("nan")
        if limit not in self._aupro:
            self._aupro[limit] = self._regions.aupro([limit], RA._key_dtype(self.float))[0]
        return self._aupro[limit]

    def roc_pr_points(self):
        """``(fpr, tpr, precision)`` as one chunk, one point per distinct score, decreasing threshold (the
        whole curve comes back to the client)."""
        self._need("roc_pr_points")
        rp, parts = self._ranking_parts()
        if "curve" not in parts:
            parts["curve"] = rp.run({"curve"})["curve"]
        _, tp, fp = parts["curve"]
        yield fp / rp.n_neg, tp / rp.n_pos, tp / (tp + fp)

    def pro_points(self):
        """As :meth:`refmetrics.state.PixelState.pro_points`, bit for bit: every bucket's groups come back to
        the client (the whole curve), where the same running sums run over the same chunks of groups."""
        from ..dask import _graph as D
        from ..functional import _regions as G
        from ..state import pro_points_from_groups

        self._need("pro_points")
        groups = G.group_chunks(*D.region_groups_of(self._regions))
        return pro_points_from_groups(groups, self.n_bg, self.n_regions)

    # -- what the threshold conventions read (ADer's segmentation, the official columns) --------------

    @property
    def kd(self):
        from ..dask import _api as RA

        return np.dtype(RA._key_dtype(self.float))

    def _count_pass(self, bounds, overlap=False):
        """One pass over the images (:func:`refmetrics.dask._graph.region_counts`, a tree of merges): the
        pixels at or above each key of ``bounds`` (remembered), the extreme keys, and with ``overlap`` the
        defect pixels by (bounds at or below, region size)."""
        from ..dask import _graph as D

        bounds = np.unique(np.asarray(bounds, self.kd))
        if not self._chunks:  # no image: nothing at or above any threshold
            self._at_least.update((k, (0, 0)) for k in bounds.tolist())
            return bounds, (np.zeros((bounds.size, 2), np.int64), None, np.empty(0, np.int64), np.empty(0, np.int64))
        parts = [_delayed(D.region_counts)(m, t, 2, self.connectivity, bounds, overlap) for m, t in self._chunks]
        out, = _compute(D.tree_sum(parts, D.merge_counts))
        for k, c in zip(bounds.tolist(), out[0]):
            self._at_least[k] = (int(c[0]), int(c[1]))
        self._ends = out[1]
        return bounds, out

    def _counts(self, thresholds, strict, what):
        from ..state import threshold_bounds

        self._need(what)
        bounds, none = threshold_bounds(thresholds, self.kd, strict)
        missing = [k for k in bounds.tolist() if k not in self._at_least]
        if missing:
            self._count_pass(missing)
        out = np.array([self._at_least[k] for k in bounds.tolist()], np.int64).reshape(-1, 2)
        out[none] = 0
        return out

    def counts_at_least(self, thresholds):
        """As :meth:`refmetrics.state.PixelState.counts_at_least`: one pass over the images for the
        thresholds not asked before (the counts are remembered)."""
        return self._counts(thresholds, False, "counts_at_least")

    def counts_above(self, thresholds):
        """As :meth:`refmetrics.state.PixelState.counts_above` (one pass, as :meth:`counts_at_least`)."""
        return self._counts(thresholds, True, "counts_above")

    def score_range(self):
        """As :meth:`refmetrics.state.PixelState.score_range` (the extreme keys of a pass over the images)."""
        from ..kernels.cpu import keys as KEYS

        self._need("score_range")
        if self._ends is None and self.n_bg + self.n_defect:
            self._count_pass([])
        if self._ends is None:
            return float("nan"), float("nan")
        values = KEYS.decode_keys(np.array(self._ends, self.kd))
        return float(values.min()), float(values.max())

    def region_overlap_at_least(self, thresholds, weight=None, strict=False):
        """As :meth:`refmetrics.state.PixelState.region_overlap_at_least`: one pass gives the defect pixels by
        (thresholds at or below, region size); the same exact integer sums, rounded once."""
        from ..state import overlap_weights, threshold_bounds

        self._need("region_overlap_at_least")
        t = np.asarray(thresholds, np.float64).reshape(-1)
        out = np.zeros(t.size, np.float64)
        if not self.n_defect:
            return out
        bounds, none = threshold_bounds(t, self.kd, strict)
        key = np.unique(bounds).tobytes()
        if key not in self._overlaps:  # the weights are applied here: one pass serves every weight
            distinct, (_, _, codes, n) = self._count_pass(bounds, overlap=True)
            self._overlaps[key] = distinct, codes, n
        distinct, codes, n = self._overlaps[key]
        below, size = codes >> 32, codes & 0xFFFFFFFF
        sizes = np.unique(size)
        ints, shift = overlap_weights(sizes, weight)
        weighed = ints[np.searchsorted(sizes, size)] * n.astype(object)
        by_below = [0] * (distinct.size + 1)
        for b, w in zip(below.tolist(), weighed):
            by_below[b] += int(w)
        from_top = [0] * (distinct.size + 1)  # from_top[j]: the weights of the pixels at or above j + 1 bounds
        for j in range(distinct.size - 1, -1, -1):
            from_top[j] = from_top[j + 1] + by_below[j + 1]
        at = np.searchsorted(distinct, bounds)
        for i in range(t.size):
            out[i] = 0.0 if none[i] else from_top[int(at[i])] / (1 << shift)
        return out

    def sorted_keys(self):
        """``(background, defect)`` keys in increasing order, as :class:`RankedKeys`: indexing by ranks finds
        those keys on the cluster (no key is gathered)."""
        self._need("sorted_keys")
        return RankedKeys(self, 0), RankedKeys(self, 1)

    def keys_at(self, side, ranks):
        """The keys of ranks ``ranks`` (int64, ``0 <= rank < size``) of the background (``side`` 0) or defect
        (1) keys in increasing order, found by their digits: the 16-bit prefix histograms of the image pass
        give each rank's prefix, then each pass over the images counts the next 16 bits of the keys under
        the prefixes in question (one pass for float32 keys, three for float64), so only counts travel."""
        from ..dask import _graph as D

        self._need("sorted_keys")
        ranks = np.asarray(ranks, np.int64)
        known = self._ranked[side]
        todo = np.unique([r for r in ranks.reshape(-1).tolist() if r not in known]).astype(np.int64)
        if todo.size:
            hist = self._regions.hist[side]
            cum = np.cumsum(hist)
            prefix = np.searchsorted(cum, todo, side="right").astype(np.uint64)
            within = todo - (cum[prefix.astype(np.int64)] - hist[prefix.astype(np.int64)])
            width, bits = 8 * self.kd.itemsize, 16
            while bits < width:
                groups = np.unique(prefix)
                parts = [_delayed(D.region_digits)(m, t, 2, self.connectivity, side, groups, bits)
                         for m, t in self._chunks]
                codes, n = _compute(D.tree_sum(parts, D.merge_codes))[0]  # distinct codes, merged on the workers
                # per prefix, its digits' counts in increasing order: each rank's digit is the first whose
                # running count passes the rank within the prefix
                at = np.searchsorted(groups, prefix)
                first = np.searchsorted(codes, at.astype(np.int64) << 16)
                running = np.cumsum(n)
                before = np.where(first > 0, running[np.maximum(first - 1, 0)], 0)
                hit = np.searchsorted(running, before + within, side="right")  # the code holding the rank
                digit = codes[hit] & 0xFFFF
                within = within - (running[hit] - n[hit] - before)
                prefix = prefix << np.uint64(16) | digit.astype(np.uint64)
                bits += 16
            known.update(zip(todo.tolist(), prefix.tolist()))
        return np.array([known[int(r)] for r in ranks.reshape(-1).tolist()], self.kd).reshape(ranks.shape)


class RankedKeys:
    """One side of :meth:`DaskPixelState.sorted_keys`: ``size``, ``dtype`` and indexing by an int or an
    int array of ranks (negative from the end), which :meth:`DaskPixelState.keys_at` answers."""

    def __init__(self, state, side):
        self.state, self.side = state, side
        self.size = state.n_bg if side == 0 else state.n_defect
        self.dtype = state.kd

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        ranks = np.asarray(index)
        if ranks.dtype.kind not in "iu":
            raise TypeError(f"index: expected an int or an int array of ranks, received {type(index).__name__} "
                            f"of {ranks.dtype}")
        ranks = ranks.astype(np.int64)
        if ranks.size and (ranks.min() < -self.size or ranks.max() >= self.size):
            raise IndexError(f"index: expected ranks in [-{self.size}, {self.size}), received "
                             f"{int(ranks.min())}..{int(ranks.max())}")
        keys = self.state.keys_at(self.side, ranks % max(self.size, 1))
        return keys[()] if keys.ndim == 0 else keys


def read_defects(samples, options, dtype):
    """On a worker: ``(maps, defects)`` of a chunk of samples of one size: the maps as ``dtype`` and each
    image's defects (MVTec LOCO's, as its reader returns them), read as a run without ``--dask`` reads them."""
    from .options import ImageScore

    group = _reader(samples, options, ImageScore())
    h, w = samples[0].target
    maps = np.empty((len(samples), h, w), dtype)
    defects = []
    for i, s in enumerate(samples):
        image = group.read(s)
        maps[i] = np.ascontiguousarray(image.values, dtype=dtype)
        defects.append(image.truth or [])
    return maps, defects


class DaskSpro:
    """A subset's AU-sPRO state on the cluster (MVTec LOCO under ``--dask``), from its samples: the
    histogram pass of :class:`refmetrics.dask._graph.SProPlan` when built, one shuffle per
    :meth:`au_spro` and per :meth:`spro_points`; the values of :mod:`refmetrics.functional.spro`'s state,
    bit for bit (the curve's points up to the limit, :meth:`spro_points`)."""

    def __init__(self, samples, options, dtype):
        import operator

        from .. import _buckets as B
        from ..dask import _api as RA
        from ..dask import _graph as D

        reads = [_delayed(read_defects)(chunk, options, dtype) for chunk in chunks_of(samples)]
        chunks = [(_delayed(operator.getitem)(r, 0), _delayed(operator.getitem)(r, 1)) for r in reads]
        self.kd = RA._key_dtype(np.dtype(dtype))
        if chunks:
            self.plan = D.SProPlan(chunks, B.DEFAULT_BUDGET, _client())
            self.n_bg, self.n_regions, self.n_full = self.plan.n_bg, self.plan.n_regions, self.plan.n_full
            self.n_region_pixels = self.plan.n_region_pixels
        else:
            self.plan, self.n_bg = None, 0
            self.n_regions = self.n_full = self.n_region_pixels = 0

    def au_spro(self, limits):
        """As :func:`refmetrics.functional.spro.au_spro_from_state` (the same warning when undefined)."""
        from ..functional import spro as S

        if S._undefined(self, "AU-sPRO"):
            return [float("nan")] * len(limits)
        return self.plan.aupro(list(limits), self.kd, s0=self.n_full)

    def spro_points(self, fpr_limit=1.0):
        """As :func:`refmetrics.functional.spro.spro_points_from_state`: every bucket's groups come back to
        the client, are collapsed as that walk collapses them, and the same running sums run over the same
        chunks of groups, so the points up to ``fpr_limit`` are the same bits. The one point past it can
        differ: the one-process walk of an unsorted state reads only its top keys, which can end a run of
        background-only scores early (the figures cut the curve at the limit)."""
        from ..dask import _graph as D
        from ..functional import _regions as G
        from ..functional import spro as S

        if not (self.n_bg and self.n_regions):
            return iter(())
        groups = G.group_chunks(*G.collapse_groups(*D.region_groups_of(self.plan)))
        return S.spro_points_from_groups(groups, self.n_bg, self.n_regions, self.n_full, fpr_limit)

