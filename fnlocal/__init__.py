"""fnlocal: run an app's Fn functions without Docker, with Fn's hot-container semantics."""

from fnlocal.server import FnLocal

__all__ = ["FnLocal"]
