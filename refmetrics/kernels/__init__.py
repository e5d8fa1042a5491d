"""Compute kernels: ``cpu`` (Numba ``@njit``) and ``cuda`` (numba-cuda), mirrored file by file.

Kernels only do arithmetic on typed, contiguous arrays. They never validate
their input and never raise; the drivers in :mod:`refmetrics.functional` do.
Both compile lazily on first use and cache their compiled code
(``cache=True``); importing this package compiles nothing and initialises no
CUDA device.
"""
