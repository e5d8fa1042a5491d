"""The pooled exact pixel state in bounded memory: keys spilled to a temporary directory.

:class:`SpilledPixelState` has :class:`refmetrics.state.PixelState`'s interface and
gives its numbers bit for bit, holding at most ``memory_limit`` bytes of keys at a
time (``PixelState(..., memory_limit=...)`` builds one; ``refmetrics evaluate
--memory-limit SIZE`` uses it for the pooled pixel state).

How it works:

1. *Spill.* Images are added into a stage buffer (background keys, and defect
   pixels' keys with their region sizes). A full stage is sorted in place and
   written as one *run* file per stream; the exact histograms of the keys' top
   16 bits (prefixes) are kept.
2. *Sort.* :meth:`~SpilledPixelState.finish` cuts the key space into contiguous
   ranges that fit the budget (from the histograms; a prefix too heavy for the
   budget is split further by key, down to a single key, which is kept as a
   count). Each range is read from every run (one binary search and one
   contiguous read per run, the runs being sorted), sorted, and appended to the
   sorted files, from the highest keys down. The runs are then deleted.
3. *Walk.* Every metric walks the sorted ranges from the highest key down and
   hands today's accumulators the same group stream as the in-memory state, in
   chunks of the same size (``_ranked.CHUNK`` groups; background-only runs
   collapsed across ranges for the AUPRO as within one), so each metric's
   kernel operations, and so its bits, are those of the in-memory run.

Memory: ``memory_limit`` bounds the stage, each range being sorted, and each
range being walked (4 bytes per float32 background pixel, ``2 x key + 8`` bytes
per defect pixel: key, region size and the sort's scratch); the Python
interpreter, the imported modules, the image being added and the chunked group
buffers (a few MB) are on top. Disk: about twice the keys (runs, then the
sorted ranges) in a :class:`tempfile.TemporaryDirectory` under ``tmp_dir``,
removed when the state is closed, garbage-collected, or an error interrupts it.

Per-image keys are not kept: :meth:`~SpilledPixelState.image_keys` (what AUPIMO
and the pixel bootstrap of ``--ci`` read) raises.
"""

import errno
import os
import re
import shutil
import tempfile
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
from numba import njit

from . import _labels as L
from .functional import _ranked as R
from .functional import _regions as G
from .functional import ranking as FR
from .functional import regions as FG
from .kernels.cpu import keys as KEYS
from .kernels.cpu import regions as KG
from .kernels.cpu._sum import add_dd, div_dd
from .state import PixelState, overlap_weights, pro_points_from_groups, threshold_bounds

PREFIX_BITS = 16
OVERHEAD = 256 << 20  # what --memory-limit keeps for the process itself (interpreter, modules, one image)
MIN_BUDGET = 1 << 10  # bytes of keys at the least (the class; --memory-limit asks for CLI_MIN_BUDGET)
CLI_MIN_BUDGET = 1 << 20
_READ = 1 << 22  # elements per read of a const range's sizes
_UNITS = {"": 1, "B": 1, "KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9, "TB": 10 ** 12,
          "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40, "K": 10 ** 3, "M": 10 ** 6,
          "G": 10 ** 9, "T": 10 ** 12}


class DiskFullError(OSError, ValueError):
    """The temporary directory's disk is too small for the spilled keys (a ValueError too: a bad input of
    the run, ``--tmp-dir``, as ``refmetrics evaluate`` reports its bad inputs)."""

    def __str__(self):
        return self.strerror


_SIZE = re.compile(r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?) ?([A-Za-z]*)")


def parse_size(text, name="--memory-limit"):
    """Bytes (int) of a size such as ``1GB``, ``512MiB``, ``1.5G`` or ``1000000`` (decimal units KB, MB,
    GB, TB; binary KiB, MiB, GiB, TiB; case-insensitive); ValueError naming ``name`` otherwise."""
    match = _SIZE.fullmatch(str(text).strip())
    value = Fraction(match[1]) if match else None
    unit = match[2].upper() if match else None
    if value is None or unit not in _UNITS or value <= 0:
        raise ValueError(f"{name}: expected a size such as 1GB, 512MiB or a number of bytes, received {text!r}")
    return int(value * _UNITS[unit])


def key_budget(limit):
    """Bytes of keys a ``--memory-limit`` of ``limit`` bytes leaves: the limit less :data:`OVERHEAD`."""
    budget = limit - OVERHEAD
    if budget < CLI_MIN_BUDGET:
        raise ValueError(f"--memory-limit: expected at least {OVERHEAD + CLI_MIN_BUDGET:,} bytes "
                         f"({(OVERHEAD + CLI_MIN_BUDGET) / 2 ** 20:.0f} MiB: {OVERHEAD >> 20} MiB for the process "
                         f"itself, the rest for the keys), received {limit:,}")
    return budget


@njit(cache=True, nogil=True)
def _size_terms(sizes, counts):
    """The double-double sum of ``1/size`` over ``counts[i]`` copies of each ``sizes[i]``, in the order given
    (``next_region_groups``' order: the largest size first)."""
    sh = 0.0
    sl = 0.0
    for i in range(sizes.size):
        qh, ql = div_dd(1.0, np.float64(sizes[i]))
        for _ in range(counts[i]):
            sh, sl = add_dd(sh, sl, qh, ql)
    return sh, sl


class _Rechunk:
    """Groups from several ranges -> chunks of exactly ``CHUNK`` groups (the last one shorter), as one walk
    over the whole data yields them. With ``collapse``, a background-only group (``dS = 0``) ending a range
    absorbs the background-only group starting the next, as ``next_region_groups`` does within a range."""

    def __init__(self, collapse=False):
        self.collapse = collapse
        self.parts, self.n = [], 0

    def add(self, *arrays):
        arrays = [np.array(a) for a in arrays]  # the walks reuse their buffers
        if not arrays[0].size:
            return
        if self.collapse and self.parts and self.parts[-1][1][-1] == 0.0 and arrays[1][0] == 0.0:
            self.parts[-1][0][-1] += arrays[0][0]
            arrays = [a[1:] for a in arrays]
            if not arrays[0].size:
                return
        self.parts.append(arrays)
        self.n += arrays[0].size

    def full(self):
        """Chunks of ``CHUNK`` groups, while a group beyond them is known (the last one is final then)."""
        while self.n > R.CHUNK:
            yield self._take(R.CHUNK)

    def rest(self):
        while self.n:
            yield self._take(min(self.n, R.CHUNK))

    def _take(self, size):
        joined = [np.concatenate([p[i] for p in self.parts]) for i in range(len(self.parts[0]))]
        out = [a[:size] for a in joined]
        rest = [a[size:] for a in joined]
        self.parts = [rest] if rest[0].size else []
        self.n -= size
        return tuple(out)


class _Range:
    """A contiguous key range ``[lo, hi]`` of the sorted data: ``n_bg`` background and ``n_def`` defect
    pixels, stored from ``offsets`` in the sorted files, or, for one heavy key (``lo == hi``), counted
    only (``sizes``, ``counts``: its defect pixels' region sizes, decreasing)."""

    __slots__ = ("counts", "hi", "lo", "n_bg", "n_def", "offsets", "sizes")

    def __init__(self, lo, hi, n_bg, n_def, offsets=None, sizes=None, counts=None):
        self.lo, self.hi, self.n_bg, self.n_def = lo, hi, n_bg, n_def
        self.offsets, self.sizes, self.counts = offsets, sizes, counts


class _SortedView:
    """``sorted_keys()``'s arrays under a memory limit: read on indexing (an int, an int array or a slice),
    never held whole."""

    def __init__(self, state, defect):
        self._state, self._defect = state, defect
        ranges = state._ranges[::-1]  # increasing keys
        self._ranges = ranges
        self._counts = np.array([r.n_def if defect else r.n_bg for r in ranges], np.int64)
        self._starts = np.concatenate([[0], np.cumsum(self._counts)])
        self.size = int(self._starts[-1])
        self.dtype = state.kd
        self.shape = (self.size,)

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        try:
            return self._get(index)
        finally:
            self._state._close_fds()  # no descriptor outlives a read (nor keeps a removed file's disk space)

    def _get(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(self.size)
            if step != 1:
                return self[np.arange(start, stop, step)]
            return self._read(start, max(start, stop))
        scalar = np.ndim(index) == 0
        pos = np.asarray(index, np.int64).reshape(-1)
        if pos.size and (pos.min() < -self.size or pos.max() >= self.size):
            raise IndexError(f"index out of range for {self.size:,} sorted keys")
        pos = np.where(pos < 0, pos + self.size, pos)
        out = np.empty(pos.size, self.dtype)
        which = np.searchsorted(self._starts, pos, side="right") - 1
        for w in np.unique(which):
            at = which == w
            r = self._ranges[int(w)]
            local = pos[at] - self._starts[w]
            if r.offsets is None:
                out[at] = r.lo
            else:
                path = self._state._sorted_path["dk" if self._defect else "bg"]
                base = r.offsets[1 if self._defect else 0]
                out[at] = [self._state._key_at(path, base + int(x)) for x in local]
        return out[0] if scalar else out

    def _read(self, start, stop):
        out = np.empty(stop - start, self.dtype)
        for w, r in enumerate(self._ranges):
            a, b = int(self._starts[w]), int(self._starts[w + 1])
            lo, hi = max(a, start), min(b, stop)
            if lo >= hi:
                continue
            part = out[lo - start:hi - start]
            if r.offsets is None:
                part[...] = r.lo
            else:
                base = r.offsets[1 if self._defect else 0]
                self._state._read_into(self._state._sorted_path["dk" if self._defect else "bg"], part,
                                       base + lo - a)
        return out


class SpilledPixelState(PixelState):
    """:class:`refmetrics.state.PixelState` in bounded memory: its keys spilled to a temporary directory.

    Parameters
    ----------
    n_pixels, dtype, connectivity
        As :class:`refmetrics.state.PixelState` (``n_pixels`` only checks the total; nothing is allocated
        for it).
    memory_limit : int
        Bytes of keys held at a time (at least 1,024): the stage buffer, then each key range sorted and
        walked. The process itself (interpreter, modules, the image being added) is on top.
    tmp_dir : str or path-like, optional
        Where the temporary directory goes (None: the system's, as :mod:`tempfile`). About twice the keys'
        bytes (4 per float32 pixel, 8 per float64; 4 more per defect pixel) are needed there.

    Notes
    -----
    Every metric equals the in-memory state's, bit for bit. Per-image keys are not kept:
    :meth:`image_keys` raises. :meth:`close` removes the temporary files (also done when the state is
    garbage-collected, and when an error interrupts :meth:`add` or :meth:`finish`).
    """

    def __init__(self, n_pixels, dtype=np.float32, connectivity=None, memory_limit=None, tmp_dir=None):
        from . import _validation as V

        n_pixels = V.check_count("n_pixels", n_pixels)
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype: expected float32 or float64, received {dtype}")
        if isinstance(memory_limit, bool) or not isinstance(memory_limit, (int, np.integer)) \
                or memory_limit < MIN_BUDGET:
            raise ValueError(f"memory_limit: expected a number of bytes >= {MIN_BUDGET:,}, received "
                             f"{memory_limit!r}")
        self.float = dtype
        self.kd = KEYS.KEY_OF[dtype]
        self._consts = KEYS.CONSTS[self.kd]
        self.connectivity = connectivity
        self.memory_limit = int(memory_limit)
        self.n_bg = self.n_defect = self.n_regions = 0
        self._offsets = [(0, 0)]
        self._regions_per_image = []
        ks = self.kd.itemsize
        self._ks, self._dcost = ks, 2 * ks + 8
        self._cap_bg = max(1, min(n_pixels, self.memory_limit * 3 // 4 // ks))
        self._cap_def = max(1, min(n_pixels, self.memory_limit // 4 // self._dcost))
        self._stage = None
        self._nb = self._nd = 0
        self._runs = []  # (bg path, n_bg, defect keys path, sizes path, n_def)
        self._shift = 8 * ks - PREFIX_BITS
        self._hist = np.zeros((2, 1 << PREFIX_BITS), np.int64)  # background, defect keys per prefix
        self._ends = [None, None]  # (lowest, highest) key of each stream
        self._sizes_seen = set()
        self._ranges = None
        self._fds = {}
        tmp_dir = None if tmp_dir is None else os.fspath(tmp_dir)
        if tmp_dir is not None and not os.path.isdir(tmp_dir):
            raise ValueError(f"tmp_dir: expected an existing directory, received {tmp_dir!r}")
        need = 2 * n_pixels * ks
        free = shutil.disk_usage(tmp_dir or tempfile.gettempdir()).free
        if need > free:
            raise DiskFullError(errno.ENOSPC, f"--tmp-dir {tmp_dir or tempfile.gettempdir()}: spilling "
                                f"{n_pixels:,} pixels needs at least {need / 1e9:.2f} GB of disk (twice the "
                                f"keys; each defect pixel needs 4 bytes more), {free / 1e9:.2f} GB are free; "
                                "give --tmp-dir a larger disk")
        self._tmp = tempfile.TemporaryDirectory(prefix="refmetrics-spill-", dir=tmp_dir)
        self.tmp_path = self._tmp.name

    # -- files ----------------------------------------------------------------

    def close(self):
        """Remove the temporary files (the state is unusable afterwards)."""
        self._close_fds()
        self._stage = None
        if self._tmp is not None:
            self._tmp.cleanup()

    def _write(self, path, array, mode="ab"):
        try:
            with open(path, mode) as f:
                f.write(memoryview(np.ascontiguousarray(array)).cast("B"))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(exc.errno, f"--tmp-dir {os.path.dirname(self.tmp_path)}: the disk is full while "
                              f"spilling keys to {path} ({os.strerror(exc.errno)}); give --tmp-dir a larger "
                              "disk") from exc
            raise

    def _read_into(self, path, out, start):
        """Read ``out.size`` elements of ``out.dtype`` from ``path`` at element ``start``."""
        if not out.size:
            return
        view = memoryview(out).cast("B")
        with open(path, "rb", buffering=0) as f:
            f.seek(start * out.itemsize)
            got = 0
            while got < view.nbytes:
                n = f.readinto(view[got:])
                if not n:
                    raise OSError(f"{path}: expected {out.nbytes:,} bytes at {start * out.itemsize:,}, "
                                  f"the file ended after {got:,}")
                got += n

    def _fd(self, path):
        if path not in self._fds:
            self._fds[path] = os.open(path, os.O_RDONLY)
        return self._fds[path]

    def _close_fds(self):
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def _key_at(self, path, i):
        return int(np.frombuffer(os.pread(self._fd(path), self._ks, i * self._ks), self.kd)[0])

    def _bisect(self, path, start, stop, key, right=False):
        """First index in ``[start, stop)`` of the sorted keys in ``path`` whose key is ``>= key`` (``> key``
        when ``right``): a binary search reading one key per step (no file mapped: mapped pages would count
        as resident memory)."""
        key = int(key)
        while start < stop:
            mid = (start + stop) // 2
            k = self._key_at(path, mid)
            if k < key or (right and k == key):
                start = mid + 1
            else:
                stop = mid
        return start

    # -- filling --------------------------------------------------------------

    def add(self, scores, mask=None, name="scores"):
        """Add one image, as :meth:`refmetrics.state.PixelState.add` (keys staged, spilled when full)."""
        if self._ranges is not None:
            raise RuntimeError("PixelState.add: the state is finished (sorted); add every image before finish()")
        try:
            self._add(scores, mask, name)
        except BaseException:
            self.close()
            raise

    def _add(self, scores, mask, name):
        flat = np.ascontiguousarray(scores, dtype=self.float).reshape(-1)
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != np.shape(scores):
                raise ValueError(f"mask: expected the shape of {name} {np.shape(scores)}, received {mask.shape}")
        bits = flat.view(self.kd)
        zero = self.kd.type(0)
        n = 0
        if mask is None or not mask.any():
            self._room(flat.size, 0)
            nb, n_nan = KG.partition_background(bits, self._consts, zero, self._stage[0], self._nb)
            nd = self._nd
        else:
            regions, n = L.label_sample(mask != 0, self.connectivity)
            regions = regions.reshape(-1)
            sizes = np.bincount(regions, minlength=n + 1).astype(np.int64)
            n_def = int(flat.size - sizes[0])
            self._room(int(sizes[0]), n_def)
            nb, nd, n_nan = KG.partition_regions(bits, regions, sizes, self._consts, zero, self._stage[0],
                                                 self._nb, self._stage[1], self._stage[2], self._nd)
        if n_nan:
            raise ValueError(f"{name}: expected scores without NaN, received {int(n_nan):,} NaN values")
        self.n_bg += nb - self._nb
        self.n_defect += nd - self._nd
        self.n_regions += n
        self._nb, self._nd = nb, nd
        self._offsets.append((self.n_bg, self.n_defect))
        self._regions_per_image.append(n)

    def _room(self, n_bg, n_def):
        """A stage with room for ``n_bg`` background and ``n_def`` defect pixels (spilling the full one)."""
        if self._stage is not None and (self._nb + n_bg > self._stage[0].size or
                                        self._nd + n_def > self._stage[1].size):
            self._spill()
        if self._stage is None:  # an image larger than the stage gets a stage of its own
            cb, cd = max(self._cap_bg, n_bg), max(self._cap_def, n_def)
            self._stage = (np.empty(cb, self.kd), np.empty(cd, self.kd), np.empty(cd, np.uint32))

    def _spill(self):
        """Sort the stage in place and write it as one run; exact prefix histograms and key ends kept."""
        bg = self._stage[0][:self._nb]
        dk, ds = self._stage[1][:self._nd], self._stage[2][:self._nd]
        bg.sort()
        if dk.size:
            tk, tp = np.empty_like(dk), np.empty_like(ds)
            if KG.radix_sort_pairs(dk, ds, tk, tp, R._SHIFTS[self.kd], R._SHIFTS[np.dtype(np.uint32)]):
                dk[...], ds[...] = tk, tp
            del tk, tp
            self._sizes_seen.update(np.unique(ds).tolist())
        r = len(self._runs)
        paths = [os.path.join(self.tmp_path, f"run{r}.{s}") for s in ("bg", "dk", "ds")]
        for path, a in zip(paths, (bg, dk, ds)):
            self._write(path, a, "wb")
        bounds = (np.arange(1, 1 << PREFIX_BITS, dtype=np.uint64) << np.uint64(self._shift)).astype(self.kd)
        for side, keys in enumerate((bg, dk)):
            if keys.size:
                at = np.searchsorted(keys, bounds)
                self._hist[side] += np.diff(np.concatenate([[0], at, [keys.size]]))
                lo, hi = int(keys[0]), int(keys[-1])
                e = self._ends[side]
                self._ends[side] = (lo, hi) if e is None else (min(e[0], lo), max(e[1], hi))
        self._runs.append((paths[0], bg.size, paths[1], paths[2], dk.size))
        self._nb = self._nd = 0
        self._stage = None  # freed: a new one is allocated for the next image (pages not kept resident)

    # -- sorting --------------------------------------------------------------

    def finish(self):
        """Spill the stage, then sort the keys range by range into the sorted files (highest keys first)."""
        if self._ranges is not None:
            return
        try:
            self._finish()
        except BaseException:
            self.close()
            raise

    def _finish(self):
        if self._stage is not None and (self._nb or self._nd):
            self._spill()
        self._stage = None
        self._sorted_path = {s: os.path.join(self.tmp_path, f"sorted.{s}") for s in ("bg", "dk", "ds")}
        for path in self._sorted_path.values():
            open(path, "wb").close()
        self._written = [0, 0]
        self._sort_buf = None  # grown to the largest range sorted so far (at most memory_limit bytes)
        ranges = []
        cost = self._hist[0] * self._ks + self._hist[1] * self._dcost
        p = (1 << PREFIX_BITS) - 1
        while p >= 0:  # contiguous prefix ranges that fit, highest first
            if not cost[p]:
                p -= 1
                continue
            if cost[p] > self.memory_limit:
                self._split(p << self._shift, ((p + 1) << self._shift) - 1, ranges)
                p -= 1
                continue
            top, total = p, 0
            while p >= 0 and total + cost[p] <= self.memory_limit:
                total += cost[p]
                p -= 1
            lo = (p + 1) << self._shift
            ranges.append(self._sort_range(lo, ((top + 1) << self._shift) - 1))
        self._close_fds()
        self._sort_buf = None
        for b, _, k, s, _ in self._runs:
            for path in (b, k, s):
                os.remove(path)
        self._runs = []
        self._ranges = ranges

    def _counts_in(self, lo, hi):
        """Per run, the ``(start, stop)`` of keys in ``[lo, hi]``, background and defect."""
        return [tuple((self._bisect(path, 0, n, lo), self._bisect(path, 0, n, hi, right=True))
                      for path, n in ((b, nb), (k, nd))) for b, nb, k, _, nd in self._runs]

    def _split(self, lo, hi, ranges):
        """A key range too heavy for the budget: halves (the upper first), down to a single key."""
        spans = self._counts_in(lo, hi)
        n_bg = sum(b[1] - b[0] for b, _ in spans)
        n_def = sum(d[1] - d[0] for _, d in spans)
        if n_bg * self._ks + n_def * self._dcost <= self.memory_limit:
            if n_bg or n_def:
                ranges.append(self._sort_range(lo, hi, spans))
            return
        if lo == hi:  # one key: counted, never held
            sizes = {}
            for (_, (a, b)), run in zip(spans, self._runs):
                buf = np.empty(min(_READ, b - a), np.uint32)
                for s in range(a, b, _READ):
                    part = buf[:min(_READ, b - s)]
                    self._read_into(run[3], part, s)
                    u, c = np.unique(part, return_counts=True)
                    for x, y in zip(u.tolist(), c.tolist()):
                        sizes[x] = sizes.get(x, 0) + y
            order = sorted(sizes, reverse=True)
            ranges.append(_Range(lo, hi, n_bg, n_def, None, np.array(order, np.uint32),
                                 np.array([sizes[x] for x in order], np.int64)))
            return
        mid = (lo + hi) // 2
        self._split(mid + 1, hi, ranges)
        self._split(lo, mid, ranges)

    def _sort_range(self, lo, hi, spans=None):
        """Read the keys in ``[lo, hi]`` from every run, sort them, append them to the sorted files."""
        spans = self._counts_in(lo, hi) if spans is None else spans
        n_bg = sum(b[1] - b[0] for b, _ in spans)
        n_def = sum(d[1] - d[0] for _, d in spans)
        need = n_bg * self._ks + n_def * self._dcost
        if self._sort_buf is None or self._sort_buf.size < need:
            self._sort_buf = None
            self._sort_buf = np.empty(need, np.uint8)
        bg, dk, ds, tk, tp = self._carve(self._sort_buf, (n_bg, self.kd), (n_def, self.kd), (n_def, np.uint32),
                                         (n_def, self.kd), (n_def, np.uint32))
        i = j = 0
        for ((a, b), (c, d)), run in zip(spans, self._runs):
            self._read_into(run[0], bg[i:i + b - a], a)
            self._read_into(run[2], dk[j:j + d - c], c)
            self._read_into(run[3], ds[j:j + d - c], c)
            i, j = i + b - a, j + d - c
        bg.sort()
        if n_def and KG.radix_sort_pairs(dk, ds, tk, tp, R._SHIFTS[self.kd], R._SHIFTS[np.dtype(np.uint32)]):
            dk, ds = tk, tp
        offsets = tuple(self._written)
        self._write(self._sorted_path["bg"], bg)
        self._write(self._sorted_path["dk"], dk)
        self._write(self._sorted_path["ds"], ds)
        self._written = [offsets[0] + n_bg, offsets[1] + n_def]
        return _Range(lo, hi, n_bg, n_def, offsets)

    def _need_sorted(self, what):
        if self._ranges is None:
            raise RuntimeError(f"PixelState.{what}: call finish() first (it sorts the pooled keys)")
        if self._tmp is None or not os.path.isdir(self.tmp_path):
            raise RuntimeError(f"PixelState.{what}: the state is closed (its temporary files are removed)")
        return self._ranges

    def _buffer(self, ranges, per_defect):
        """One byte buffer for the largest of ``ranges`` (``per_defect`` bytes per defect pixel), reused for
        each: no two ranges' keys are ever alive together."""
        need = max((r.n_bg * self._ks + r.n_def * per_defect for r in ranges), default=0)
        return np.empty(need, np.uint8)

    def _carve(self, buf, *parts):
        """Views ``(count, dtype)`` one after the other in ``buf``."""
        out, at = [], 0
        for n, dtype in parts:
            dtype = np.dtype(dtype)
            out.append(buf[at:at + n * dtype.itemsize].view(dtype))
            at += n * dtype.itemsize
        return out

    def _walk(self, regions=False):
        """Each range, highest keys first: ``(range, bg, defect keys, sizes)`` (arrays None for a counted key;
        views into one buffer, overwritten by the next range)."""
        buf = self._buffer([r for r in self._ranges if r.offsets is not None], self._ks + 4)
        for r in self._ranges:
            if r.offsets is None:
                yield r, None, None, None
                continue
            bg, dk, ds = self._carve(buf, (r.n_bg, self.kd), (r.n_def, self.kd), (r.n_def, np.uint32))
            self._read_into(self._sorted_path["bg"], bg, r.offsets[0])
            self._read_into(self._sorted_path["dk"], dk, r.offsets[1])
            if regions:
                self._read_into(self._sorted_path["ds"], ds, r.offsets[1])
            yield r, bg, dk, ds

    def _groups(self):
        """The ranking group stream ``(keys, dtp, dfp)`` of the in-memory state, chunk for chunk."""
        out = _Rechunk()
        for r, bg, dk, _ in self._walk():
            if bg is None:
                out.add(np.array([r.lo], self.kd), np.array([r.n_def], np.int64), np.array([r.n_bg], np.int64))
            else:
                for chunk in R.exact_groups(dk, bg):
                    out.add(*chunk)
                    yield from out.full()
            yield from out.full()
        yield from out.rest()

    def _region_groups(self, collapse):
        """The region group stream ``(dfp, dS_h, dS_l)`` of the in-memory state, chunk for chunk."""
        out = _Rechunk(collapse)
        for r, bg, dk, ds in self._walk(regions=True):
            if bg is None:
                sh, sl = _size_terms(r.sizes, r.counts) if r.n_def else (0.0, 0.0)
                out.add(np.array([r.n_bg], np.int64), np.array([sh]), np.array([sl]))
            else:
                for chunk in G.exact_region_groups(bg, dk, ds, collapse):
                    out.add(*chunk)
                    yield from out.full()
            yield from out.full()
        yield from out.rest()

    # -- metrics --------------------------------------------------------------

    def _counts(self):
        return SimpleNamespace(n_pos=self.n_defect, n_neg=self.n_bg, n_regions=self.n_regions, n_bg=self.n_bg)

    def auroc(self):
        """Pixel AUROC (as :func:`refmetrics.functional.auroc`)."""
        self._need_sorted("auroc")
        if FR._one_class(self._counts(), "AUROC"):
            return float("nan")
        p, n = self.n_defect, self.n_bg
        return float(Fraction(R.auroc_u2(self._groups()), 2 * p * n))

    def average_precision(self):
        """Pixel average precision (as :func:`refmetrics.functional.average_precision`)."""
        self._need_sorted("average_precision")
        if FR._no_positive(self._counts(), "average precision"):
            return float("nan")
        return R.average_precision(self._groups(), self.n_defect)

    def f1_max(self):
        """Pixel F1-max (as :func:`refmetrics.functional.f1_max`); NaN without a defect pixel."""
        self._need_sorted("f1_max")
        if FR._no_positive(self._counts(), "F1"):
            return float("nan")
        p = self.n_defect
        tp, fp, _ = R.f1_best(self._groups(), p)
        return float(Fraction(2 * tp, tp + fp + p))

    def aupro(self, fpr_limit=0.3):
        """AUPRO up to ``fpr_limit`` (as :func:`refmetrics.functional.aupro`)."""
        self._need_sorted("aupro")
        fpr_limit = FG.check_fpr_limit(fpr_limit)
        if FG._undefined(self._counts(), "AUPRO"):
            return float("nan")
        return G.aupro_from_groups(self._region_groups(True), self.n_bg, self.n_regions, fpr_limit)

    def roc_pr_points(self):
        """As :meth:`refmetrics.state.PixelState.roc_pr_points` (the same chunks)."""
        self._need_sorted("roc_pr_points")
        p, n = self.n_defect, self.n_bg
        tp = fp = 0
        for _keys, dtp, dfp in self._groups():
            ctp, cfp = np.cumsum(dtp) + tp, np.cumsum(dfp) + fp
            tp, fp = int(ctp[-1]), int(cfp[-1])
            yield cfp / n, ctp / p, ctp / (ctp + cfp)

    def pro_points(self):
        """As :meth:`refmetrics.state.PixelState.pro_points` (the same chunks)."""
        self._need_sorted("pro_points")
        return pro_points_from_groups(self._region_groups(False), self.n_bg, self.n_regions)

    def score_range(self):
        """``(min, max)`` of every pixel, as float64; ``(nan, nan)`` without a pixel."""
        self._need_sorted("score_range")
        ends = [e for e in self._ends if e is not None]
        if not ends:
            return float("nan"), float("nan")
        values = KEYS.decode_keys(np.array([k for e in ends for k in e], self.kd))
        return float(values.min()), float(values.max())

    def sorted_keys(self):
        """``(background, defect)`` sorted keys as read-on-demand arrays (indexing by an int, an int array or
        a slice reads those keys from the sorted files)."""
        self._need_sorted("sorted_keys")
        return _SortedView(self, False), _SortedView(self, True)

    def _at_least(self, t, strict):
        """Per threshold, the background and defect keys ``>= t`` (``> t`` when ``strict``): ``(T, 2)``."""
        t = np.asarray(t, np.float64).reshape(-1)
        tk, none = threshold_bounds(t, self.kd, strict)
        out = np.zeros((t.size, 2), np.int64)
        for r in self._ranges:
            full = tk <= r.lo
            out[full] += (r.n_bg, r.n_def)
            inside = (tk > r.lo) & (tk <= r.hi)
            if inside.any():
                if r.offsets is None:  # a counted key: lo == hi, never strictly inside
                    continue
                for side, (n, path) in enumerate(((r.n_bg, self._sorted_path["bg"]),
                                                  (r.n_def, self._sorted_path["dk"]))):
                    a = r.offsets[side]
                    for i in np.flatnonzero(inside):
                        out[i, side] += a + n - self._bisect(path, a, a + n, tk[i])
        out[none] = 0
        return out

    def counts_at_least(self, thresholds):
        """As :meth:`refmetrics.state.PixelState.counts_at_least` (a binary search of one range per threshold)."""
        self._need_sorted("counts_at_least")
        try:
            return self._at_least(thresholds, False)
        finally:
            self._close_fds()

    def counts_above(self, thresholds):
        """As :meth:`refmetrics.state.PixelState.counts_above`."""
        self._need_sorted("counts_above")
        try:
            return self._at_least(thresholds, True)
        finally:
            self._close_fds()

    def region_overlap_at_least(self, thresholds, weight=None, strict=False):
        """As :meth:`refmetrics.state.PixelState.region_overlap_at_least` (one walk of the ranges)."""
        self._need_sorted("region_overlap_at_least")
        t = np.asarray(thresholds, np.float64).reshape(-1)
        out = np.zeros(t.size, np.float64)
        if not self.n_defect:
            return out
        sizes = np.array(sorted(self._sizes_seen), np.int64)
        ints, shift = overlap_weights(sizes, weight)
        tk, none = threshold_bounds(t, self.kd, strict)
        totals = [0] * t.size

        def weigh(u, c):
            return int(np.dot(ints[np.searchsorted(sizes, u.astype(np.int64))], c.astype(object)))

        for r, _, dk, ds in self._walk(regions=True):  # highest keys first
            if not r.n_def:
                continue
            if r.offsets is None:
                full_total = weigh(r.sizes, r.counts)
                inside = np.zeros(t.size, bool)
            else:
                inside = (tk > r.lo) & (tk <= r.hi)
                first = np.searchsorted(dk, tk, side="left")
                full_total = weigh(*np.unique(ds, return_counts=True))
                for i in np.flatnonzero(inside):
                    totals[i] += weigh(*np.unique(ds[int(first[i]):], return_counts=True))
            for i in np.flatnonzero((tk <= r.lo) & ~inside):
                totals[i] += full_total
        for i in range(t.size):
            out[i] = 0.0 if none[i] else totals[i] / (1 << shift)
        return out

    def image_keys(self, i):
        """Not available under a memory limit (the keys are spilled pooled, not per image): raises."""
        raise RuntimeError("PixelState.image_keys: per-image keys are not kept under a memory limit "
                           "(--memory-limit / memory_limit=): what needs them (AUPIMO, the pixel bootstrap of "
                           "--ci, ADer's per-image conventions) is not available with it; run without "
                           "--memory-limit for those")

    def image_region_sizes(self, i):
        """Not available under a memory limit: raises (see :meth:`image_keys`)."""
        self.image_keys(i)

