"""`fnlocal serve | invoke | list`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from fnlocal import lock
from fnlocal.config import ConfigError, load_app
from fnlocal.deps import DEPS_DIR_ENV, ISOLATED, MODES
from fnlocal.protocol import FnError
from fnlocal.server import (
    DEFAULT_PORT,
    DETACHED_ACCEPT,
    DETACHED_MODES,
    INVOKE_ENDPOINT_ANNOTATION,
    FnLocal,
)

FN_API_URL_ENV = "FN_API_URL"
"""The fn CLI's server URL variable; `fnlocal invoke` honours it too (when --endpoint is not given)."""


def _deps_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deps", choices=MODES, default=ISOLATED,
                        help="isolated (default): each function gets only its requirements.txt, installed once "
                             "like fn build; venv: the current venv's site-packages (quick, not like Fn)")
    parser.add_argument("--deps-dir", help=f"cache of the installed requirements (default: ${DEPS_DIR_ENV} "
                                           "or <app dir>/.local/fnlocal/deps)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fnlocal", description="Run an Fn app's functions without Docker.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve /invoke, /t (HTTP triggers) and /status until Ctrl-C")
    serve.add_argument("--app-dir", default=".", help="folder with app.yaml (default: .)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--max-containers", type=int, default=4, help="per function (default 4)")
    serve.add_argument("--queue-timeout", type=float, default=10.0,
                       help="seconds a call waits for a container")
    _deps_options(serve)
    serve.add_argument("--detached", choices=DETACHED_MODES, default=DETACHED_ACCEPT,
                       help="detached /invoke: accept (default) = 202 at once, as OCI; wait = run it, then "
                            "200 with no body, as a self-hosted Fn server")
    serve.add_argument("--log-file", help="container output and call log (default: stderr)")
    serve.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                       help="extra config for every function (repeatable)")

    invoke = sub.add_parser("invoke", help="call a function once, body from stdin, print the response body")
    invoke.add_argument("app")
    invoke.add_argument("function")
    invoke.add_argument("--app-dir", default=".", help="folder with app.yaml (default: .)")
    invoke.add_argument("--content-type", default="text/plain")
    invoke.add_argument("--endpoint",
                        help="a running fnlocal, e.g. http://127.0.0.1:8080 (default: $FN_API_URL as the fn CLI "
                             "reads it, else start one)")
    _deps_options(invoke)
    invoke.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")

    lister = sub.add_parser("list", help="list the app's functions, ids and triggers")
    lister.add_argument("--app-dir", default=".", help="folder with app.yaml (default: .)")

    locker = sub.add_parser("lock", help="pin each function's requirements.in into its requirements.txt, "
                                         "resolved by pip for the Fn image (CPython 3.11, manylinux 2.28 x86-64)")
    locker.add_argument("functions", nargs="*", metavar="FUNCTION", help="default: every function with a "
                                                                         "requirements.in")
    locker.add_argument("--app-dir", default=".", help="folder with app.yaml (default: .)")
    locker.add_argument("--find-links", action="append", default=[], metavar="DIR",
                        help="also look for wheels here (locally built packages on no index); repeatable")
    locker.add_argument("--upgrade", action="store_true",
                        help="re-resolve from scratch instead of keeping the pins already in requirements.txt")

    wheels = sub.add_parser("wheels", help="download a wheel of every pin of each function's requirements.txt "
                                           "into its .pip_cache/ (fn build's offline install) for the Fn image")
    wheels.add_argument("--app-dir", default=".", help="folder with app.yaml (default: .)")
    wheels.add_argument("--find-links", action="append", default=[], metavar="DIR",
                        help="also look for wheels here (locally built packages on no index); repeatable")
    return parser


def _pairs(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"fnlocal: --config expects KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def _serve(args: argparse.Namespace) -> int:
    local = FnLocal(args.app_dir, args.port, host=args.host, env_overrides=_pairs(args.config),
                    max_containers=args.max_containers, queue_timeout_s=args.queue_timeout, log=args.log_file,
                    deps=args.deps, deps_dir=args.deps_dir, detached=args.detached)
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with local:
        print(f"fnlocal: app {local.app.name!r} on {local.url}", file=sys.stderr)
        for fn in local.app.functions.values():
            triggers = " ".join(local.trigger_url(fn.app, t.source) for t in fn.triggers)
            print(f"  {fn.name:<16} {local.url}/invoke/{fn.fn_id}  {triggers}", file=sys.stderr)
        while not done.wait(0.5):
            pass
        print("fnlocal: stopping", file=sys.stderr)
    return 0


def _request(url: str, body: bytes | None = None, content_type: str | None = None) -> tuple[int, bytes]:
    """POST `body` (GET without one) and return the status and body, error statuses included."""
    headers = {"Content-Type": content_type} if content_type else {}
    req = urllib.request.Request(url, data=body, method="GET" if body is None else "POST", headers=headers)
    try:
        with urllib.request.urlopen(req) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _first_item(url: str, what: str) -> dict[str, object]:
    status, data = _request(url)
    items = json.loads(data).get("items") if status == 200 else None
    if not items:
        raise ConfigError(f"{what} not found ({url} answered {status})")
    item: dict[str, object] = items[0]
    return item


def invoke_endpoint(api_url: str, app: str, function: str) -> str:
    """Find a function's invoke URL through Fn's API as `fn invoke` does: the app by name, the function
    by app id and name, then its `fnproject.io/fn/invokeEndpoint` annotation (fn CLI `commands/invoke.go`).
    Works against a real Fn server and against a running fnlocal alike."""
    base = api_url.rstrip("/")
    app_item = _first_item(f"{base}/v2/apps?{urllib.parse.urlencode({'name': app})}", f"app {app!r}")
    query = urllib.parse.urlencode({"app_id": app_item["id"], "name": function})
    fn_item = _first_item(f"{base}/v2/fns?{query}", f"function {app}/{function}")
    annotations = fn_item.get("annotations")
    endpoint = annotations.get(INVOKE_ENDPOINT_ANNOTATION) if isinstance(annotations, dict) else None
    return str(endpoint or f"{base}/invoke/{fn_item['id']}")


def _invoke(args: argparse.Namespace) -> int:
    body = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    api_url = os.environ.get(FN_API_URL_ENV)
    if args.endpoint:
        status, data = _request(f"{args.endpoint.rstrip('/')}/invoke/{args.app}/{args.function}", body,
                                args.content_type)
    elif api_url:  # like the fn CLI: a server is already running there, never start one
        status, data = _request(invoke_endpoint(api_url, args.app, args.function), body, args.content_type)
    else:
        with FnLocal(args.app_dir, env_overrides=_pairs(args.config), deps=args.deps,
                     deps_dir=args.deps_dir) as local:
            fn = local.runtime.find(args.app, args.function)
            result = local.runtime.call(fn, [("Content-Type", args.content_type)], body)
            status, data = result.status, result.body
    if status >= 400:
        try:
            message = json.loads(data)["message"]
        except (ValueError, KeyError, TypeError):
            message = data.decode("utf-8", "replace")
        print(f"Error invoking function. status: {status} message: {message}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(data)
    if data and not data.endswith(b"\n") and sys.stdout.isatty():
        sys.stdout.write("\n")
    sys.stdout.flush()
    return 0


def _list(args: argparse.Namespace) -> int:
    app = load_app(args.app_dir)
    print(f"{'APP':<12} {'FUNCTION':<16} {'ID':<28} {'MEMORY':>6} {'TIMEOUT':>7} {'IDLE':>5}  TRIGGERS")
    for fn in app.functions.values():
        triggers = ",".join(t.source for t in fn.triggers) or "-"
        print(f"{fn.app:<12} {fn.name:<16} {fn.fn_id:<28} {fn.memory_mb:>6} {fn.timeout_s:>7g} "
              f"{fn.idle_timeout_s:>5g}  {triggers}")
    return 0


def _wheels(args: argparse.Namespace) -> int:
    app = load_app(args.app_dir)
    for name, fn in app.functions.items():
        if not (fn.directory / lock.REQUIREMENTS_TXT).is_file():
            continue
        folder = lock.download_wheels(fn.directory, find_links=[Path(f) for f in args.find_links])
        count = sum(1 for _ in folder.glob("*.whl"))
        print(f"fnlocal: {app.name}/{name}: {count} wheels in {folder}", file=sys.stderr)
    return 0


def _lock(args: argparse.Namespace) -> int:
    app = load_app(args.app_dir)
    unknown = sorted(set(args.functions) - set(app.functions))
    if unknown:
        raise ConfigError(f"no function {', '.join(unknown)} in app {app.name!r}")
    names = args.functions or [name for name, fn in app.functions.items()
                               if (fn.directory / lock.REQUIREMENTS_IN).is_file()]
    for name in names:
        fn_dir = app.functions[name].directory
        written = lock.lock_function(fn_dir, upgrade=args.upgrade, find_links=[Path(f) for f in args.find_links])
        count = len(lock.read_pins(written))
        print(f"fnlocal: {app.name}/{name}: {count} packages pinned in {written}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fnlocal` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "invoke":
            return _invoke(args)
        if args.command == "lock":
            return _lock(args)
        if args.command == "wheels":
            return _wheels(args)
        return _list(args)
    except (ConfigError, FnError) as exc:
        print(f"fnlocal: {exc}", file=sys.stderr)
        return 1
