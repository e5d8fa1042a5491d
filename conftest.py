"""Collection of the doctest modules under refmetrics/: the optional integrations need their extras.

Without dask, importing refmetrics.dask raises an ImportError that names the extra; without torch and
torchmetrics, so does refmetrics.integrations.torchmetrics (and without anomalib,
refmetrics.integrations.anomalib). The doctest collection of
``--doctest-modules`` leaves those modules out instead of failing.
"""

from importlib.util import find_spec

collect_ignore_glob = [] if find_spec("dask") and find_spec("dask.array") else ["refmetrics/dask/*"]
if not (find_spec("torch") and find_spec("torchmetrics")):
    collect_ignore_glob.append("refmetrics/integrations/torchmetrics.py")
if not (find_spec("torch") and find_spec("torchmetrics") and find_spec("anomalib")):
    collect_ignore_glob.append("refmetrics/integrations/anomalib.py")
