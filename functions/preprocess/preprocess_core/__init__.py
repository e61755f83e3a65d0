"""Pure core of the preprocess function (see ../README.md)."""

from .threadpools import bound_native_pools

bound_native_pools()  # before any module of the package imports numpy (threadpools.py)
