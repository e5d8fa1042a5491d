"""Exact bootstrap replicates of AUPIMO and AU-sPRO over resampled images.

A resample repeats each image ``W[b, i]`` times (``W`` the ``(B, n_images)``
multiplicity matrix of :func:`refmetrics.functional._resample.resample_counts`,
checked by its ``check_weights``);
its value is, by definition, the ordinary function on
``np.repeat(maps, W[b], axis=0)`` (and the masks, or the defect lists, alike).
The engines here return that float, bit for bit, without building the
repeated data: every per-image quantity is computed once, and a resample only
reweights integer counts.

AUPIMO (:class:`AupimoResampler`)
    The per-image keys (normal images' pixels, anomalous images' defect pixels)
    are formed once. On a resample with normal multiplicities ``w_i``,
    ``FP(t) = sum_i w_i FP_i(t)`` per image size ``N``, and the shared FPR is
    ``(sum over the sizes present, ascending, of FP_N(t) / N) / sum_i w_i``:
    the integers and the float64 operations of ``kernels/cpu/pimo.shared_fpr``.
    The window (the distinct keys of the normal images with ``w_i > 0``, from
    the top, down to the first whose shared FPR reaches ``U``) is walked over
    each normal image's top keys only, merged once: image ``i`` keeps every key
    at or above its ``k_i``-th highest, ``k_i = floor(U N_i n_normal) + 2``,
    enough for the walk to reach ``U`` before leaving what every weighted image
    keeps whenever the resample has at most ``n_normal`` normal images (always,
    for stratified resamples); otherwise the walk notices and reruns on every
    key. Each anomalous image with ``w > 0`` is then counted at the window's
    thresholds (binary searches in its sorted defect keys) and its area taken
    by the library's own ``aupimo_areas``; the mean is ``math.fsum`` over the
    areas each repeated ``w`` times, divided by their number, as ``aupimo``
    takes it (``fsum`` is correctly rounded, so the order of the terms does not
    matter).

AU-sPRO (:class:`SproResampler`)
    Per image: its defect-free pixels' keys, and per defect its ``S`` highest
    keys, each carrying ``S`` (``spro.partition``, one image at a time), its
    number of defects and of defects with ``S = 0``. On a resample,
    ``n_bg = sum_i w_i n_bg,i``, ``K = sum_i w_i K_i``,
    ``n_full = sum_i w_i n_full,i``, and the groups are those
    ``next_region_groups(collapse=True)`` forms on the repeated data. The
    keys, merged once, are cut at the distinct defect keys (*nodes*) into
    segments: background keys strictly between two nodes, then the node's
    own keys. A background segment holds no defect key, so the naive walk
    folds all of it into one background-only group (with the group before
    it when that one is background-only too): only its weighted count
    ``sum_i w_i (keys of image i there)`` matters, precomputed per image. At a
    node, the double-double sum of ``1/S`` adds each kept defect key's term
    ``w_i`` times, by decreasing ``S``, the order in which the naive walk meets
    the repeated pixels (equal terms are interchangeable). Keys held only by
    images with ``w = 0`` form no group. The walk stops after the group whose
    false positives first exceed ``limit * n_bg``, and the library's
    ``acc_aupro`` / ``finish_aupro`` give the area (a background-only group's
    width never reaches the area, so a last one cut short gives the same
    float; should ``acc_aupro`` not see the crossing there, every key is
    walked). Only the keys at or above ``c = min_i c_i`` are merged, ``c_i``
    the ``(floor(limit n_bg,i) + 1)``-th highest background key of image ``i``:
    for any weights, the false positives at ``c`` exceed ``limit * n_bg``, so
    the crossing lies above ``c``.

Undefined resamples (a ratio without a denominator, or AUPIMO's lower bound
below the reachable shared FPR) are NaN, without a warning; a defined value is
never NaN, so ``numpy.isnan(values).sum()`` counts them, and
``last_undefined`` says why.
"""

import math
from fractions import Fraction

import numpy as np
from numba import njit

from ..kernels.cpu import keys as keys_module
from ..kernels.cpu import pimo as cpu_pimo
from ..kernels.cpu import regions as cpu_regions
from ..kernels.cpu._sum import add_dd, div_dd
from . import pimo as functional_pimo
from . import spro as functional_spro
from ._resample import check_weights

# ---------------------------------------------------------------------------
# AUPIMO
# ---------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _pimo_window(keys, image, group, weight, vmin, sizes, n_normal, upper, fp, out_keys, out_fpr):
    """The window of one resample: distinct weighted normal keys, decreasing, with their shared FPR.

    ``keys`` (decreasing) / ``image``: the merged candidate keys of the normal
    images and their image; ``group[image]``: its size group (``sizes``
    ascending); ``weight[image]``: its multiplicity; ``vmin``: the lowest key
    every image with ``weight > 0`` keeps all its keys above. The shared FPR is
    ``kernels/cpu/pimo.shared_fpr``'s (the groups absent from the resample add
    nothing). Stops after the first point ``>= upper``; returns the number of
    points, or -1 when the walk would need a key below ``vmin``.
    """
    n_groups = sizes.size
    present = np.zeros(n_groups, np.bool_)
    for i in range(weight.size):
        if weight[i] > 0:
            present[group[i]] = True
    for g in range(n_groups):
        fp[g] = 0
    n = 0
    i = 0
    while i < keys.size:
        v = keys[i]
        if v < vmin:
            return -1
        a = 0
        while i < keys.size and keys[i] == v:
            w = weight[image[i]]
            fp[group[image[i]]] += w
            a += w
            i += 1
        if a == 0:
            continue  # held only by images absent from the resample: no point
        s = 0.0
        for g in range(n_groups):
            if present[g]:
                s += np.float64(fp[g]) / np.float64(sizes[g])
        x = s / np.float64(n_normal)
        out_keys[n] = v
        out_fpr[n] = x
        n += 1
        if x >= upper:
            return n
    return -1


@njit(cache=True, nogil=True)
def _pimo_bins(defect, offsets, rows, window, at_le, at_lt):
    """``defect_bins``' counts for the anomalous images ``rows`` (defect keys sorted ascending per image,
    ``window`` decreasing), from ``TP(>= s_m)`` and ``TP(> s_m)`` by binary search."""
    n = window.size
    for r in range(rows.size):
        a = rows[r]
        d = defect[offsets[a]:offsets[a + 1]]
        p = d.size
        prev_ge = 0
        prev_gt = 0
        for m in range(n):
            ge = p - cpu_pimo._count_lt(d, window[m])
            gt = p - cpu_pimo._count_le(d, window[m])
            at_le[r, n - m] = ge - prev_ge
            at_lt[r, n - m] = gt - prev_gt
            prev_ge = ge
            prev_gt = gt
        at_le[r, 0] = p - prev_ge
        at_lt[r, 0] = p - prev_gt


def _host(arr):
    return arr.copy_to_host() if hasattr(arr, "copy_to_host") else np.asarray(arr)


class AupimoResampler:
    """Exact AUPIMO of image resamples (see the module docstring).

    Build it with :meth:`from_maps` or :meth:`from_state`; :meth:`replicates`
    gives one value per row of a multiplicity matrix.

    Attributes
    ----------
    anomalous : ndarray of bool
        One flag per image, in image order: the image has a defect pixel.
    last_undefined : dict
        After :meth:`replicates`: how many resamples were undefined, by reason.
    """

    def __init__(self, normal_rows, normal_sizes, defect_rows, anomalous):
        """``normal_rows``: the key array of each normal image (image order); ``normal_sizes``: its pixel
        count; ``defect_rows``: the defect keys of each anomalous image; ``anomalous``: per image."""
        self.anomalous = np.asarray(anomalous, bool)
        self.n_images = self.anomalous.size
        self._normal_index = np.flatnonzero(~self.anomalous)
        self._anomalous_index = np.flatnonzero(self.anomalous)
        if len(normal_rows) != self._normal_index.size or len(defect_rows) != self._anomalous_index.size:
            raise ValueError("AupimoResampler: expected one key array per normal and per anomalous image")
        dtypes = {np.dtype(r.dtype) for r in list(normal_rows) + list(defect_rows)}
        if len(dtypes) > 1:  # float32 and float64 keys: widen the float32 ones (exact)
            normal_rows = [r if r.dtype == np.uint64 else keys_module.widen_keys(r) for r in normal_rows]
            defect_rows = [r if r.dtype == np.uint64 else keys_module.widen_keys(r) for r in defect_rows]
        self._key_dtype = dtypes.pop() if len(dtypes) == 1 else np.dtype(np.uint64)
        self._normal_rows = [np.ascontiguousarray(r) for r in normal_rows]
        sizes = np.asarray(normal_sizes, np.int64)
        self._sizes = np.unique(sizes)  # ascending
        self._group = np.searchsorted(self._sizes, sizes).astype(np.int64)
        self._normal_sizes = sizes
        self._n_defect = np.array([r.size for r in defect_rows], np.int64)
        self._offsets = np.zeros(self._n_defect.size + 1, np.int64)
        self._offsets[1:] = np.cumsum(self._n_defect)
        self._defect = (np.concatenate([np.sort(r) for r in defect_rows]) if defect_rows
                        else np.empty(0, self._key_dtype))
        self._candidates = {}
        self.last_undefined = {}

    @classmethod
    def from_maps(cls, maps, masks):
        """From anomaly maps ``(N, H, W)`` and {0, 1} masks, validated as :func:`refmetrics.functional.aupimo`
        validates them (on the CPU)."""
        state = functional_pimo.PimoState()
        state.add(functional_pimo.intake_images(maps, masks, "cpu", keep_other=False))
        return cls.from_state(state)

    @classmethod
    def from_state(cls, state):
        """From a :class:`refmetrics.functional.pimo.PimoState` (its parts are read, never modified); the
        images in the state's order."""
        normal_rows, normal_sizes, defect_rows, anomalous = [], [], [], []
        for part in state.parts:
            normal = _host(part.normal)
            defect = _host(part.defect)
            for j in range(part.n_normal):
                normal_rows.append(normal[j * part.n_per:(j + 1) * part.n_per])
                normal_sizes.append(part.n_per)
            start = 0
            for count in part.n_defect.tolist():
                defect_rows.append(defect[start:start + count])
                start += count
            anomalous.append(np.asarray(part.anomalous, bool))
        anomalous = np.concatenate(anomalous) if anomalous else np.empty(0, bool)
        return cls(normal_rows, normal_sizes, defect_rows, anomalous)

    def _candidates_for(self, upper):
        """Merged top keys of the normal images for the bound ``upper`` (None: every key):
        ``(keys decreasing, image, per-image lowest kept key)``."""
        if upper in self._candidates:
            return self._candidates[upper]
        n_normal = len(self._normal_rows)
        kept, cuts = [], np.empty(n_normal, self._key_dtype)
        for i, row in enumerate(self._normal_rows):
            n = row.size
            k = n if upper is None else min(n, int(Fraction(upper) * n * n_normal) + 2)
            if k == n:  # every key kept: the walk may go anywhere in this image
                kept.append(row)
                cuts[i] = 0
            else:
                cut = np.partition(row, n - k)[n - k]
                kept.append(row[row >= cut])
                cuts[i] = cut
        keys = np.concatenate(kept) if kept else np.empty(0, self._key_dtype)
        image = np.repeat(np.arange(n_normal, dtype=np.int64), [k.size for k in kept])
        order = np.argsort(keys, kind="stable")[::-1]
        out = (np.ascontiguousarray(keys[order]), np.ascontiguousarray(image[order]), cuts)
        self._candidates[upper] = out
        return out

    def replicates(self, W, fpr_bounds=(1e-5, 1e-4)):
        """AUPIMO of each resample: ``(B,)`` float64, value ``b`` equal bit for bit to
        ``aupimo(np.repeat(maps, W[b], axis=0), np.repeat(masks, W[b], axis=0), fpr_bounds=fpr_bounds)``.

        NaN (no warning) where that is undefined: no normal or no anomalous image in the resample, or
        the lower bound below the smallest shared FPR the resample reaches; ``last_undefined`` counts
        them by reason. A row of zeros (no image; ``resample_counts`` never draws one) is NaN too, where
        ``aupimo`` raises on the empty input.
        """
        lower, upper = functional_pimo.check_fpr_bounds(fpr_bounds)
        elements = np.zeros(self.n_images, np.int64)  # what a resample's counts add up (they stay below 2**53)
        elements[self._normal_index] = self._normal_sizes
        elements[self._anomalous_index] = self._n_defect
        W = check_weights(W, self.n_images, elements)
        wn_all = W[:, self._normal_index]
        wa_all = W[:, self._anomalous_index]
        out = np.full(W.shape[0], np.nan)
        undefined = {"no normal image": 0, "no anomalous image": 0, "lower bound below the reachable shared FPR": 0}
        fp = np.zeros(self._sizes.size, np.int64)
        buffers = None
        for b in range(W.shape[0]):
            wn = np.ascontiguousarray(wn_all[b])
            wa = wa_all[b]
            n_normal = int(wn.sum())
            n_anomalous = int(wa.sum())
            if not n_normal or not n_anomalous:
                undefined["no normal image" if not n_normal else "no anomalous image"] += 1
                continue
            for bound in (upper, None):
                keys, image, cuts = self._candidates_for(bound)
                if buffers is None or buffers[0].size < keys.size:
                    buffers = (np.empty(keys.size, self._key_dtype), np.empty(keys.size, np.float64))
                vmin = cuts[wn > 0].max()
                n = _pimo_window(keys, image, self._group, wn, vmin, self._sizes, n_normal, upper, fp,
                                 buffers[0], buffers[1])
                if n >= 0:
                    break
            window, fpr = buffers[0][:n], buffers[1][:n]
            if lower < fpr[0]:
                undefined["lower bound below the reachable shared FPR"] += 1
                continue
            rows = np.flatnonzero(wa)
            at_le = np.zeros((rows.size, n + 1), np.int64)
            at_lt = np.zeros((rows.size, n + 1), np.int64)
            _pimo_bins(self._defect, self._offsets, rows, window, at_le, at_lt)
            areas = np.empty(rows.size, np.float64)
            cpu_pimo.aupimo_areas(fpr, at_le, at_lt, self._n_defect[rows], lower, upper, areas)
            out[b] = math.fsum(np.repeat(areas, wa[rows]).tolist()) / n_anomalous
        self.last_undefined = {k: v for k, v in undefined.items() if v}
        return out


# ---------------------------------------------------------------------------
# AU-sPRO
# ---------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _spro_groups(seg_ptr, seg_image, seg_count, node_ptr, r_sizes, r_image, weight, need, dfp, dsh, dsl):
    """The collapsed groups of one resample, keys decreasing, as ``next_region_groups(collapse=True)``
    forms them on the repeated data, until the false positives reach ``need``.

    The merged keys are cut into segments, decreasing: the background keys
    above the highest defect key (segment 0), the background keys equal to the
    highest defect key (segment 1, *node* 0), those between it and the next
    defect key (segment 2), and so on. ``seg_ptr`` / ``seg_image`` /
    ``seg_count``: per segment, how many background keys each image has there;
    ``node_ptr`` / ``r_sizes`` / ``r_image``: per node, its defect keys by
    decreasing ``S``. A background segment holds no defect key, so the naive
    walk collapses all its keys into one group with the group before it when
    that one is background-only too: only its weighted count matters. A defect
    key of an image of multiplicity ``w`` adds its ``1/S`` term ``w`` times.
    Returns ``(number of groups, whether every segment was read)``.
    """
    n_nodes = node_ptr.size - 1
    g = 0
    fp = 0
    for s in range(2 * n_nodes + 1):
        a = 0
        for t in range(seg_ptr[s], seg_ptr[s + 1]):
            a += weight[seg_image[t]] * seg_count[t]
        sh = 0.0
        sl = 0.0
        held = False
        if s % 2 == 1:
            node = s // 2
            for j in range(node_ptr[node], node_ptr[node + 1]):
                c = weight[r_image[j]]
                if c > 0:
                    qh, ql = div_dd(1.0, np.float64(r_sizes[j]))
                    for _ in range(c):
                        sh, sl = add_dd(sh, sl, qh, ql)
                    held = True
        if a == 0 and not held:
            continue  # only images absent from the resample hold these keys
        if sh == 0.0 and g > 0 and dsh[g - 1] == 0.0:
            dfp[g - 1] += a
        else:
            dfp[g] = a
            dsh[g] = sh
            dsl[g] = sl
            g += 1
        fp += a
        if fp >= need:
            return g, False
    return g, True


class SproResampler:
    """Exact AU-sPRO of image resamples (see the module docstring).

    Build it with :meth:`from_maps` (the arguments of :func:`refmetrics.functional.au_spro`) or from
    per-image parts (:meth:`from_parts`).

    Attributes
    ----------
    anomalous : ndarray of bool
        One flag per image, in image order: the image has at least one defect.
    last_undefined : dict
        After :meth:`replicates`: how many resamples were undefined, by reason.
    """

    def __init__(self, bg, region_keys, region_sizes, n_defects, n_full):
        """Per image: its background keys, its kept defect keys with their ``S``, its number of defects
        and of defects with ``S = 0`` (as ``spro.partition`` forms them for that image alone)."""
        self.n_images = len(bg)
        if not (len(region_keys) == len(region_sizes) == len(n_defects) == len(n_full) == self.n_images):
            raise ValueError("SproResampler: expected one entry per image in every argument")
        dtypes = {np.dtype(a.dtype) for a in list(bg) + list(region_keys) if a.size}
        if len(dtypes) > 1:
            bg = [a if a.dtype == np.uint64 else keys_module.widen_keys(a) for a in bg]
            region_keys = [a if a.dtype == np.uint64 else keys_module.widen_keys(a) for a in region_keys]
        self._key_dtype = dtypes.pop() if len(dtypes) == 1 else np.dtype(np.uint64)
        self._bg = [np.sort(np.asarray(a).astype(self._key_dtype, copy=False))[::-1] for a in bg]  # decreasing
        self._rkeys = [np.asarray(a).astype(self._key_dtype, copy=False) for a in region_keys]
        self._rsizes = [np.asarray(a, np.uint64) for a in region_sizes]
        self._n_bg = np.array([a.size for a in self._bg], np.int64)
        self._n_defects = np.asarray(n_defects, np.int64)
        self._n_full = np.asarray(n_full, np.int64)
        self.anomalous = self._n_defects > 0
        self._entries = {}
        self.last_undefined = {}

    @classmethod
    def from_maps(cls, preds, defects):
        """From anomaly maps ``(N, H, W)`` and one list of ``(mask, saturation_threshold,
        relative_saturation)`` per image, validated as :func:`refmetrics.functional.au_spro` validates them
        (on the CPU; a defect with ``S = 0`` warns once, here)."""
        batch = functional_spro.intake(preds, defects, "cpu")
        parts, n_full = [], []
        for b in range(len(batch.images)):
            one = functional_spro.DefectBatch(batch.scores[b:b + 1], [batch.images[b]], [batch.unions[b]],
                                              batch.n_pixels, False)
            part, full = functional_spro.partition(one)
            parts.append(part)
            n_full.append(full)
        return cls.from_parts(parts, n_full)

    @classmethod
    def from_parts(cls, parts, n_full):
        """From one host part per image (``spro.partition``'s ``regions._Part``, e.g. the parts of a
        :class:`refmetrics.functional.spro.DefectScores` filled one image per batch, before any result
        sorts them together) and each image's number of defects with ``S = 0``."""
        for p in parts:
            if p.dropped:
                raise ValueError("parts: expected parts that keep every background key, received one with "
                                 f"{p.dropped} dropped")
        return cls([p.bg for p in parts], [p.rkeys for p in parts], [p.rsizes for p in parts],
                   [p.n_regions for p in parts], n_full)

    def _entries_for(self, limit):
        """The segments of the keys at or above the cut for ``limit`` (1.0: every key), as
        :func:`_spro_groups` reads them."""
        if limit in self._entries:
            return self._entries[limit]
        cut = None
        if limit < 1.0:
            for a in self._bg:
                if a.size:
                    need = int(Fraction(limit) * a.size) + 1  # <= a.size as limit < 1
                    c = a[need - 1]
                    cut = c if cut is None or c < cut else cut
        n = self.n_images
        bg_keep = self._bg if cut is None else [a[a >= cut] for a in self._bg]
        r_keep = [(k, s) if cut is None else (k[k >= cut], s[k >= cut]) for k, s in zip(self._rkeys, self._rsizes)]
        bg_keys = np.concatenate(bg_keep) if n else np.empty(0, self._key_dtype)
        bg_image = np.repeat(np.arange(n, dtype=np.int64), [a.size for a in bg_keep])
        r_keys = np.concatenate([k for k, _ in r_keep]) if n else np.empty(0, self._key_dtype)
        r_sizes = np.concatenate([s for _, s in r_keep]) if n else np.empty(0, np.uint64)
        r_image = np.repeat(np.arange(n, dtype=np.int64), [k.size for k, _ in r_keep])
        order = np.lexsort((r_sizes, r_keys))[::-1]  # by key, then size; walked decreasing
        r_keys, r_sizes, r_image = r_keys[order], r_sizes[order], r_image[order]
        nodes = np.unique(r_keys)  # ascending
        n_nodes = nodes.size
        above = n_nodes - np.searchsorted(nodes, bg_keys, side="right")  # defect keys strictly above
        equal = np.searchsorted(nodes, bg_keys, side="left") < n_nodes - above
        segment = 2 * above + equal
        code, count = np.unique(segment * max(n, 1) + bg_image, return_counts=True)
        seg_ptr = np.searchsorted(code // max(n, 1), np.arange(2 * n_nodes + 2))
        rank = n_nodes - np.searchsorted(nodes, r_keys, side="right")  # node of each defect key, non-decreasing
        node_ptr = np.searchsorted(rank, np.arange(n_nodes + 1))
        out = (seg_ptr.astype(np.int64), (code % max(n, 1)).astype(np.int64), count.astype(np.int64),
               node_ptr.astype(np.int64), np.ascontiguousarray(r_sizes), np.ascontiguousarray(r_image))
        self._entries[limit] = out
        return out

    def replicates(self, W, fpr_limit=0.05):
        """AU-sPRO of each resample: ``(B,)`` float64 (``(B, L)`` for a sequence of ``L`` limits), value
        ``b`` equal bit for bit to ``au_spro(np.repeat(preds, W[b], axis=0), [defects[i] for i in
        np.repeat(np.arange(N), W[b])], fpr_limit=fpr_limit)``.

        NaN (no warning) where that is undefined: no defect or no defect-free pixel in the resample;
        ``last_undefined`` counts them by reason. A row of zeros (no image; ``resample_counts`` never
        draws one) is NaN too, where ``au_spro`` raises on the empty input.
        """
        limits, scalar = functional_spro.check_fpr_limits(fpr_limit)
        W = check_weights(W, self.n_images, self._n_bg + np.array([a.size for a in self._rkeys], np.int64))
        top = max(limits)
        out = np.full((W.shape[0], len(limits)), np.nan)
        undefined = {"no defect": 0, "no defect-free pixel": 0}
        entries = self._entries_for(top)
        capacity = entries[0].size
        dfp = np.empty(max(capacity, 1), np.int64)
        dsh = np.empty(max(capacity, 1), np.float64)
        dsl = np.empty(max(capacity, 1), np.float64)
        for b in range(W.shape[0]):
            w = np.ascontiguousarray(W[b])
            n_bg = int(w @ self._n_bg)
            k = int(w @ self._n_defects)
            if not (k and n_bg):
                undefined["no defect" if not k else "no defect-free pixel"] += 1
                continue
            n_full = float(int(w @ self._n_full))
            need = int(Fraction(top) * n_bg) + 1
            g, complete = _spro_groups(*entries, w, need, dfp, dsh, dsl)
            for li, limit in enumerate(limits):
                counts = np.zeros(2, np.int64)
                sums = np.array([0.0, 0.0, n_full, 0.0])
                cpu_regions.acc_aupro(dfp[:g], dsh[:g], dsl[:g], n_bg, limit, counts, sums)
                if not counts[1] and not complete:
                    # acc_aupro's crossing test disagreed with the integer one: walk every key
                    full = self._entries_for(1.0)
                    fdfp = np.empty(full[0].size, np.int64)
                    fdsh = np.empty(fdfp.size, np.float64)
                    fdsl = np.empty(fdfp.size, np.float64)
                    fg, _ = _spro_groups(*full, w, n_bg + 1, fdfp, fdsh, fdsl)
                    counts = np.zeros(2, np.int64)
                    sums = np.array([0.0, 0.0, n_full, 0.0])
                    cpu_regions.acc_aupro(fdfp[:fg], fdsh[:fg], fdsl[:fg], n_bg, limit, counts, sums)
                out[b, li] = float(cpu_regions.finish_aupro(sums, n_bg, k, limit))
        self.last_undefined = {k: v for k, v in undefined.items() if v}
        return out[:, 0] if scalar else out


__all__ = ["AupimoResampler", "SproResampler"]
