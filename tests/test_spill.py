"""Bounded memory (``PixelState(memory_limit=...)``, ``refmetrics evaluate --memory-limit``): the same numbers.

The oracle is today's in-memory :class:`refmetrics.state.PixelState` on the same images (itself checked
against the functional API and the exact oracle in ``test_state.py``), compared with ``==``: every metric,
every curve chunk, the counts and overlaps at thresholds, the sorted keys; and ``refmetrics evaluate``'s
``results.json`` on the bundled demos, identical, with budgets small enough to force many ranges and keys
counted without being held.
"""

import errno
import gc
import json
import os
import re
import warnings

import numpy as np
import pytest

from refmetrics import _spill, cli
from refmetrics import functional as F
from refmetrics.functional.bootstrap import PixelResampler
from refmetrics.state import PixelState

from .checks import quiet, same

H, W = 24, 20


def images(seed, n=30, grid=64, heavy=True, good_every=2):
    """Maps on a ``1/grid`` grid (ties), a heavy exact 0.0 (and -0.0) corner, masks on every
    ``good_every``-th image from the first defect-free."""
    rng = np.random.default_rng(seed)
    maps = (np.round(rng.random((n, H, W)) * grid) / grid).astype(np.float32)
    masks = np.zeros((n, H, W), np.uint8)
    if heavy:
        maps[:, :5, :5] = 0.0
        maps[::3, :2, :2] = -0.0
    for i in range(1, n, good_every):
        for _ in range(rng.integers(1, 3)):
            y, x = rng.integers(0, H - 6), rng.integers(0, W - 6)
            masks[i, y:y + rng.integers(1, 6), x:x + rng.integers(1, 6)] = 1
        masks[i, -1, -1] = 1  # a one-pixel region
        maps[i][masks[i] > 0] += np.float32(0.25)
    return maps, masks


def fill(maps, masks, dtype=np.float32, **kw):
    state = PixelState(maps.size, dtype, **kw)
    for m, t in zip(maps, masks):
        state.add(m, t if t.any() else None)
    state.finish()
    return state


THRESHOLDS = np.array([-np.inf, -1.0, 0.0, 1 / 64, 0.3, 0.5, 0.7, 1.0 + 1 / 64, 1.25, 2.0, np.inf])


def assert_identical(a, b):
    """Every reading of the in-memory state ``a`` equals the spilled state ``b``'s, bit for bit."""
    for name in ("auroc", "average_precision", "f1_max"):
        x, y = quiet(getattr(a, name)), quiet(getattr(b, name))
        assert same(x, y), (name, x, y)
    for limit in (0.01, 0.05, 0.3, 1.0):
        x, y = quiet(a.aupro, limit), quiet(b.aupro, limit)
        assert same(x, y), ("aupro", limit, x, y)
    assert a.score_range() == b.score_range()
    for points in ("roc_pr_points", "pro_points"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 of an empty side, in both
            ca, cb = list(getattr(a, points)()), list(getattr(b, points)())
        assert len(ca) == len(cb), points
        for p, q in zip(ca, cb):  # the same chunks, the same floats
            assert all(np.array_equal(u, v, equal_nan=True) for u, v in zip(p, q)), points
    assert np.array_equal(a.counts_at_least(THRESHOLDS), b.counts_at_least(THRESHOLDS))
    assert np.array_equal(a.counts_above(THRESHOLDS), b.counts_above(THRESHOLDS))
    for strict in (False, True):
        assert np.array_equal(a.region_overlap_at_least(THRESHOLDS, strict=strict),
                              b.region_overlap_at_least(THRESHOLDS, strict=strict))
    weight = lambda s: (1.0 / s).astype(np.float32).astype(np.float64)  # ADEval's weights
    assert np.array_equal(a.region_overlap_at_least(THRESHOLDS, weight), b.region_overlap_at_least(THRESHOLDS, weight))
    for x, y in zip(a.sorted_keys(), b.sorted_keys()):
        assert x.size == y.size
        assert np.array_equal(x, y[:]) and np.array_equal(x[3:40], y[3:40])
        if x.size:
            pos = np.linspace(0, x.size - 1, 17, dtype=int)
            assert np.array_equal(x[pos], y[pos]) and x[-1] == y[-1]
    for attr in ("n_bg", "n_defect", "n_regions", "n_images"):
        assert getattr(a, attr) == getattr(b, attr)
    assert np.array_equal(a.pixels_per_image, b.pixels_per_image)
    assert b._fds == {}  # no file descriptor left open between reads


@pytest.mark.parametrize("budget", [1024, 3000, 1 << 16, 1 << 24])
def test_spilled_equals_in_memory_with_ties_heavy_keys_and_good_images(budget, tmp_path):
    maps, masks = images(1)
    a = fill(maps, masks)
    b = fill(maps, masks, memory_limit=budget, tmp_dir=tmp_path)
    assert type(b) is _spill.SpilledPixelState and isinstance(b, PixelState)
    counted = sum(r.offsets is None for r in b._ranges)
    if budget == 1024:  # many ranges, and the heavy 0.0 key counted without being held
        assert len(b._ranges) > 50 and counted >= 1
    assert_identical(a, b)
    # and the functional API's numbers on the same pixels
    assert same(b.auroc(), F.auroc(maps, masks)) and same(b.aupro(0.3), F.aupro(maps, masks, fpr_limit=0.3))
    b.close()
    assert os.listdir(tmp_path) == []


def test_a_dropped_state_removes_its_files(tmp_path):
    maps, masks = images(8, n=6)
    b = fill(maps, masks, memory_limit=1024, tmp_dir=tmp_path)
    assert os.listdir(b.tmp_path) and b.sorted_keys()[0][5] == PixelState.sorted_keys(fill(maps, masks))[0][5]
    del b
    gc.collect()
    assert os.listdir(tmp_path) == []


def test_a_heavy_key_holding_defect_pixels_is_counted_exactly(tmp_path):
    # one score for half the pixels, background and defect alike: a single key far above the budget
    maps, masks = images(2, heavy=False)
    maps[:, :, :10] = np.float32(0.5)
    a = fill(maps, masks)
    b = fill(maps, masks, memory_limit=1024, tmp_dir=tmp_path)
    heavy = [r for r in b._ranges if r.offsets is None]
    assert heavy and max(r.n_bg + r.n_def for r in heavy) > 1024 and any(r.n_def for r in heavy)
    assert_identical(a, b)


def test_float64_resized_maps_and_no_ties(tmp_path):
    rng = np.random.default_rng(3)
    maps, masks = images(3, heavy=False)
    maps64 = maps.astype(np.float64) + rng.random(maps.shape) * 1e-9  # every score distinct, float64 keys
    a = fill(maps64, masks, np.float64)
    b = fill(maps64, masks, np.float64, memory_limit=2048, tmp_dir=tmp_path)
    assert b.kd == np.uint64 and len(b._ranges) > 20
    assert_identical(a, b)


def test_one_class_and_empty_states_warn_as_in_memory(tmp_path):
    maps, masks = images(4, n=4)
    for m in (np.zeros_like(masks), np.ones_like(masks)):  # no defect pixel; no background pixel
        a, b = fill(maps, m), fill(maps, m, memory_limit=1024, tmp_dir=tmp_path)
        for name in ("auroc", "average_precision", "f1_max", "aupro"):
            with warnings.catch_warnings(record=True) as wa:
                warnings.simplefilter("always")
                x = getattr(a, name)()
            with warnings.catch_warnings(record=True) as wb:
                warnings.simplefilter("always")
                y = getattr(b, name)()
            assert same(x, y) and [str(w.message) for w in wa] == [str(w.message) for w in wb], name
    empty = PixelState(0, memory_limit=1024, tmp_dir=tmp_path)
    empty.finish()
    assert np.isnan(quiet(empty.auroc)) and all(np.isnan(empty.score_range()))
    assert empty.sorted_keys()[0].size == 0


def test_per_image_keys_are_refused_and_misuse_is_an_error(tmp_path):
    maps, masks = images(5, n=4)
    b = PixelState(maps.size, memory_limit=1024, tmp_dir=tmp_path)
    b.add(maps[0], masks[0])
    with pytest.raises(RuntimeError, match="image_keys.*memory-limit"):
        b.image_keys(0)
    with pytest.raises(RuntimeError, match="call finish"):
        b.auroc()
    b.finish()
    with pytest.raises(RuntimeError, match="finished"):
        b.add(maps[1], masks[1])
    with pytest.raises(RuntimeError, match="memory-limit"):
        PixelResampler.from_state(b)
    b.close()
    with pytest.raises(RuntimeError, match="closed"):
        b.auroc()
    for bad in (0, 100, -5, 1.5e6, True, "1GB"):
        with pytest.raises(ValueError, match="memory_limit: expected a number of bytes >= 1,024"):
            PixelState(10, memory_limit=bad)
    with pytest.raises(ValueError, match="tmp_dir: expected an existing directory"):
        PixelState(10, memory_limit=1024, tmp_dir=tmp_path / "missing")


def test_temporary_files_are_removed_after_errors_and_interrupts(tmp_path, monkeypatch):
    maps, masks = images(6, n=6)
    bad = maps[2].copy()
    bad[0, 0] = np.nan
    b = PixelState(maps.size, memory_limit=1024, tmp_dir=tmp_path)
    b.add(maps[0], masks[0])
    b.add(maps[1], masks[1])
    assert os.listdir(b.tmp_path)  # spilled already: an image is larger than the 1 KiB stage
    with pytest.raises(ValueError, match="NaN"):
        b.add(bad, masks[2], name="bad.tiff")
    assert os.listdir(tmp_path) == []

    def interrupted(self, *args):
        raise KeyboardInterrupt

    b = fill(maps[:2], masks[:2], memory_limit=1024, tmp_dir=tmp_path)
    b.close()
    b = PixelState(maps.size, memory_limit=1024, tmp_dir=tmp_path)
    for m, t in zip(maps, masks):
        b.add(m, t)
    monkeypatch.setattr(_spill.SpilledPixelState, "_sort_range", interrupted)
    with pytest.raises(KeyboardInterrupt):
        b.finish()
    assert os.listdir(tmp_path) == []


def test_a_full_disk_is_a_clear_error(tmp_path, monkeypatch):
    maps, masks = images(7, n=4)
    real = _spill.shutil.disk_usage
    monkeypatch.setattr(_spill.shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    with pytest.raises(_spill.DiskFullError,
                       match=r"--tmp-dir .*: spilling 1,000,000 pixels needs at least 0.01 GB of disk"):
        PixelState(10 ** 6, memory_limit=1024, tmp_dir=tmp_path)
    monkeypatch.setattr(_spill.shutil, "disk_usage", real)
    real_open = open

    def full(path, mode="r", *args, **kwargs):
        if "w" in mode or "a" in mode:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    b = PixelState(maps.size, memory_limit=1024, tmp_dir=tmp_path)
    monkeypatch.setattr(_spill, "open", full, raising=False)
    with pytest.raises(ValueError, match=f"--tmp-dir {tmp_path}: the disk is full while spilling keys"):
        for m, t in zip(maps, masks):
            b.add(m, t)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("text, expected", [("1GB", 10 ** 9), ("512MiB", 512 << 20), ("1000000", 10 ** 6),
                                            ("1.5 GiB", 3 << 29), ("300mb", 3 * 10 ** 8), ("2G", 2 * 10 ** 9),
                                            ("64KiB", 1 << 16), ("1e9", 10 ** 9)])
def test_sizes(text, expected):
    assert _spill.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "1XB", "-1GB", "0", "abc", "1.2.3MB", "1 0GB"])
def test_bad_sizes_name_the_option(text):
    with pytest.raises(ValueError, match=f"--memory-limit: expected a size such as 1GB, 512MiB or a number of "
                                         f"bytes, received {text!r}"):
        _spill.parse_size(text)


def run(*args):
    return cli.main(["evaluate", "--quiet", *map(str, args)])


def test_bad_memory_options_are_errors(tmp_path, capsys):
    cases = [
        (["--memory-limit", "1XB"], ("--memory-limit: expected a size such as 1GB, 512MiB or a number of bytes, "
                                     "received '1XB'")),
        (["--memory-limit", "100MB"], ("--memory-limit: expected at least 269,484,032 bytes (257 MiB: 256 MiB "
                                       "for the process itself, the rest for the keys), received 100,000,000")),
        (["--tmp-dir", tmp_path], "--tmp-dir: applies to --memory-limit's spilled keys"),
        (["--memory-limit", "1GB", "--tmp-dir", tmp_path / "missing"],
         f"--tmp-dir: expected an existing directory, received {tmp_path / 'missing'}"),
        (["--memory-limit", "1GB", "--ci"], "--ci: the pixel bootstrap needs every image's keys"),
        (["--memory-limit", "1GB", "--protocol", "mvtec-loco"], "--memory-limit: --protocol mvtec-loco keeps"),
    ]
    for args, message in cases:
        assert run("--out", tmp_path / "out", *args) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("protocol", ["mvtec-ad", "ader", "visa", "mvtec-3d-ad", "mvtec-ad-2", "real-iad"])
def test_evaluate_json_is_identical_under_a_tiny_limit(protocol, tmp_path, monkeypatch):
    # the limit's fixed share set to 0 so that a 2 KiB budget forces dozens of ranges on the demo's pixels
    monkeypatch.setattr(_spill, "OVERHEAD", 0)
    monkeypatch.setattr(_spill, "CLI_MIN_BUDGET", 1024)
    ranges = []
    finish = _spill.SpilledPixelState._finish

    def counted(self):
        finish(self)
        ranges.append(len(self._ranges))

    monkeypatch.setattr(_spill.SpilledPixelState, "_finish", counted)
    spill = tmp_path / "spill"
    spill.mkdir()
    figures = protocol == "mvtec-ad"
    extra = [] if figures else ["--no-figures"]
    assert run("--protocol", protocol, "--demo", "--out", tmp_path / "a", *extra) == 0
    assert run("--protocol", protocol, "--demo", "--out", tmp_path / "b", *extra, "--memory-limit", "2KiB",
               "--tmp-dir", spill) == 0
    assert ranges and min(ranges) > 10  # every group of the run (categories, defect types) spilled
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in "ab")
    assert a == b
    if figures:  # the curves drawn from the spilled state: the same points, the same files
        for f in (tmp_path / "a" / "figures").iterdir():
            assert f.read_bytes() == (tmp_path / "b" / "figures" / f.name).read_bytes()
    assert os.listdir(spill) == []  # every temporary directory removed


def test_memory_limit_refusals_hold_in_the_python_api(tmp_path):
    # evaluate.run refuses what a limit cannot serve before anything is read, as the command line does
    from refmetrics import evaluate as E

    cases = [("mvtec-ad", True, "--ci: the pixel bootstrap needs every image's keys"),
             ("mvtec-loco", False, "--memory-limit: --protocol mvtec-loco keeps")]
    for name, ci, message in cases:
        with pytest.raises(E.InputError, match=re.escape(message)):
            E.run(E.get_protocol(name), None, tmp_path / "out", E.Options(memory_limit=1 << 20, ci=ci))
    assert not (tmp_path / "out").exists()
