"""Core of the predict function: decoding, model, classification, result records (no fdk here)."""

from fnvision_common.threadpools import bound_native_pools

bound_native_pools()  # before any module of the package imports numpy (fnvision_common.threadpools)
