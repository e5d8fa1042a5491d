"""Compute kernels: ``cpu`` (Numba ``@njit``) and, later, ``cuda`` (numba-cuda).

Kernels only do arithmetic on typed, contiguous arrays. They never validate
their input and never raise; the drivers in :mod:`refmetrics.functional` do.
"""
