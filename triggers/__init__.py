"""Event sources that feed preprocess: filer webhook adapter, bucket watcher, moto S3 notifications,
and the backfill job. Each delivers through an `Invoker` (triggers/invoker.py)."""

from triggers.invoker import HttpInvoker, InvokeError, Invoker, InvokeResult

__all__ = ["HttpInvoker", "InvokeError", "InvokeResult", "Invoker"]
