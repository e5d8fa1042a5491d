"""Collection of the doctest modules under refmetrics/: refmetrics.dask needs the dask extra.

Without dask, importing refmetrics.dask raises an ImportError that names the extra; the
doctest collection of ``--doctest-modules`` leaves the package out instead of failing.
"""

from importlib.util import find_spec

collect_ignore_glob = [] if find_spec("dask") and find_spec("dask.array") else ["refmetrics/dask/*"]
