"""numba-cuda kernels (not built yet: ``backend="cuda"`` raises BackendUnavailableError).

They will mirror :mod:`refmetrics.kernels.cpu` file by file.
"""
