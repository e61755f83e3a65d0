"""What fnlocal adds to a call: HTTP -> fnlocal -> unix socket -> fdk, beside a direct call on the socket.

Both paths hit the same hot echo container, alternately, in one run, with the same minimal client
(http.client, keep-alive), so the difference is fnlocal's own cost. Also measures echo cold starts.

    .venv/bin/python bench/fnlocal_overhead.py [-n N] [--deps isolated|venv] [--deps-dir DIR]

The echo function's requirements.txt (fdk) is installed once into the repo's `.local/fnlocal/deps`
(shared with the tests and `make run`); `--deps venv` uses the dev venv instead.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fnlocal import FnLocal
from fnlocal.container import UnixHTTPConnection, protocol
from fnlocal.deps import ISOLATED, MODES

ECHO = '''
import io

def handler(ctx, data: io.BytesIO = None):
    return data.getvalue()
'''
BODY = b'{"hello":"world"}'
REPO = Path(__file__).resolve().parents[1]
DEPS_DIR = REPO / ".local" / "fnlocal" / "deps"


def _write_app(root: Path) -> Path:
    (root / "functions" / "echo").mkdir(parents=True)
    (root / "app.yaml").write_text("name: bench\n")
    (root / "functions" / "echo" / "func.yaml").write_text(
        "schema_version: 20180708\nname: echo\nentrypoint: /python/bin/fdk /function/func.py handler\n"
        "memory: 256\ntimeout: 30\nidle_timeout: 300\n")
    (root / "functions" / "echo" / "func.py").write_text(ECHO)
    (root / "functions" / "echo" / "requirements.txt").write_text("fdk==0.1.128\n")
    return root


def _post(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    conn.request("POST", path, BODY, headers)
    resp = conn.getresponse()
    data = resp.read()
    elapsed = time.perf_counter() - started
    if resp.status != 200 or data != BODY:
        raise RuntimeError(f"unexpected answer {resp.status} {data[:80]!r}")
    return elapsed * 1000


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50_ms": statistics.median(ordered), "p99_ms": p99, "mean_ms": statistics.fmean(ordered)}


def _cold_starts(app_dir: Path, samples: int, **fnlocal_kwargs: Any) -> dict[str, float]:
    first_call, start = [], []
    for _ in range(samples):
        with FnLocal(app_dir, log=open(os.devnull, "w"), **fnlocal_kwargs) as fl:  # noqa: SIM115 - closed by stop()
            conn = http.client.HTTPConnection("127.0.0.1", int(fl.url.rsplit(":", 1)[1]), timeout=30)
            first_call.append(_post(conn, f"/invoke/{fl.fn_id('bench', 'echo')}", {}))
            conn.close()
            start.append(fl.status()["functions"][0]["containers"][0]["start_ms"])
    return {"cold_call_p50_ms": statistics.median(first_call),
            "container_start_p50_ms": statistics.median(start)}


def run(n: int = 2000, deps: str = ISOLATED, deps_dir: Path = DEPS_DIR) -> dict[str, Any]:
    """Measure n calls on each path (alternating) and return the figures in ms."""
    kwargs: dict[str, Any] = {"deps": deps, "deps_dir": deps_dir}
    with tempfile.TemporaryDirectory(prefix="fnlbench-") as tmp:
        app_dir = _write_app(Path(tmp))
        cold = _cold_starts(app_dir, 5, **kwargs)  # start() installs the deps (once, cached): not timed
        with FnLocal(app_dir, log=open(os.devnull, "w"), **kwargs) as fl:  # noqa: SIM115 - closed by stop()
            port = int(fl.url.rsplit(":", 1)[1])
            via = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            invoke_path = f"/invoke/{fl.fn_id('bench', 'echo')}"
            _post(via, invoke_path, {})  # cold start, not measured
            (container,) = fl.runtime.pools[fl.fn_id("bench", "echo")].snapshot()
            direct = UnixHTTPConnection(container.socket_path, timeout=30)
            fnlocal_ms, direct_ms = [], []
            for i in range(n + 100):
                a = _post(via, invoke_path, {"Content-Type": "application/json"})
                b = _post(direct, "/call", {"Content-Type": "application/json",
                                            "Fn-Call-Id": protocol.new_call_id(),
                                            "Fn-Deadline": protocol.deadline_header(30)})
                if i >= 100:  # warm-up
                    fnlocal_ms.append(a)
                    direct_ms.append(b)
            via.close()
            direct.close()
    through, plain = _stats(fnlocal_ms), _stats(direct_ms)
    return {
        "n": n,
        "fnlocal": through,
        "direct_socket": plain,
        "added_p50_ms": through["p50_ms"] - plain["p50_ms"],
        "added_p99_ms": through["p99_ms"] - plain["p99_ms"],
        **cold,
        "deps": deps,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--calls", type=int, default=2000, help="calls per path (default 2000)")
    parser.add_argument("legacy_n", nargs="?", type=int, help=argparse.SUPPRESS)  # old form: fnlocal_overhead.py N
    parser.add_argument("--deps", choices=MODES, default=ISOLATED, help="function packages (default: isolated)")
    parser.add_argument("--deps-dir", type=Path, default=DEPS_DIR, help=f"deps cache (default: {DEPS_DIR})")
    args = parser.parse_args(argv)
    n = args.legacy_n or args.calls
    if n < 1:
        parser.error("the number of calls must be at least 1")
    res = run(n, args.deps, args.deps_dir)
    print(f"fnlocal overhead, echo function, {res['n']} calls per path (alternating, one hot container)")
    print(f"{'path':<34} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    paths = (("HTTP -> fnlocal -> socket -> fdk", "fnlocal"), ("direct on the fdk socket", "direct_socket"))
    for label, key in paths:
        s = res[key]
        print(f"{label:<34} {s['p50_ms']:>8.3f} {s['p99_ms']:>8.3f} {s['mean_ms']:>8.3f}")
    print(f"{'added by fnlocal':<34} {res['added_p50_ms']:>8.3f} {res['added_p99_ms']:>8.3f}")
    print(f"cold start (echo): container ready p50 {res['container_start_p50_ms']:.1f} ms, "
          f"first call p50 {res['cold_call_p50_ms']:.1f} ms (5 samples)")


if __name__ == "__main__":
    main()
