"""Numba CPU kernels, compiled lazily on first use and cached on disk."""
