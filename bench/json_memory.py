"""Memory of predict per large call, through its real fdk process (figures, not tests).

    .venv/bin/python -m bench.json_memory [--reps 4] [--func path/to/func.py] [--only NAME]

For each body (JSON batches up to MAX_JSON_BYTES, and the binary formats at MAX_BATCH), a fresh fdk
process gets one 1-image call, then ``--reps`` calls of the body back to back. Before each call the
process's peak RSS is reset (``/proc/<pid>/clear_refs`` 5), so each figure is that call's own peak
(VmHWM); "after" is VmRSS 0.2 s after the answer; "cpu" the process's CPU time for the call.
``--func`` measures another checkout's predict (e.g. the code before a change).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fdkproc import FdkProcess  # noqa: E402

FUNC = REPO / "functions" / "predict" / "func.py"
SHAPE = (224, 224, 3)


def _oip(n: int, datatype: str, data_text: str) -> bytes:
    head = f'{{"inputs":[{{"name":"images","shape":[{n},224,224,3],"datatype":"{datatype}","data":'
    return (head + data_text + "}]}").encode()


def _random(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, *SHAPE), dtype=np.uint8)


def oip_uint8_nested(n: int = 21) -> bytes:
    """The issue's request: nested uint8 lists as json.dumps writes them (21 images: 16.06 MB)."""
    return _oip(n, "UINT8", json.dumps(_random(n).tolist()))


def oip_fp32_zeros(n: int = 55) -> bytes:
    """The most values a 16 MiB body can hold ("0,0,..."), as FP32: the largest output array."""
    return _oip(n, "FP32", "[" + ",".join(["0"] * (n * 224 * 224 * 3)) + "]")


def tfs_instances_float(n: int = 14) -> bytes:
    """TF Serving rows of floats with one decimal (JSON carries no dtype: float32)."""
    return json.dumps({"instances": (_random(n) / 2).tolist()}).encode()


def npy_float32(n: int = 64) -> bytes:
    buf = io.BytesIO()
    np.save(buf, _random(n).astype(np.float32))
    return buf.getvalue()


BODIES: dict[str, Callable[[], bytes]] = {
    "oip_uint8_nested_21": oip_uint8_nested,
    "oip_fp32_zeros_55": oip_fp32_zeros,
    "tfs_instances_float_14": tfs_instances_float,
    "npy_float32_64": npy_float32,
}


def _status_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def _cpu_ms(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 10  # USER_HZ 100


def measure(name: str, body: bytes, func: Path, reps: int) -> list[dict[str, float]]:
    """Run one body ``reps`` times in one fresh process; one dict of figures per call."""
    rows = []
    headers = {"Content-Type": "application/x-npy"} if name.startswith("npy") else {}
    with FdkProcess(func) as fn:
        warm = fn.call(json.dumps({"instances": [np.zeros(SHAPE, np.uint8).tolist()]}).encode())
        assert warm.status == 200, warm.body[:300]
        for _ in range(reps):
            Path(f"/proc/{fn.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
            before, cpu = _status_mib(fn.pid, "VmRSS"), _cpu_ms(fn.pid)
            reply = fn.call(body, headers)
            cpu = _cpu_ms(fn.pid) - cpu
            time.sleep(0.2)
            ok = reply.status == 200 and b'"error"' not in reply.body[:20]
            assert ok, reply.body[:300]
            peak, after = _status_mib(fn.pid, "VmHWM"), _status_mib(fn.pid, "VmRSS")
            rows.append({"before": before, "peak": peak, "after": after, "cpu_ms": cpu})
    return rows


def main(argv: list[str] | None = None) -> None:
    """Print the figures of every body."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--func", type=Path, default=FUNC)
    parser.add_argument("--only", choices=sorted(BODIES))
    args = parser.parse_args(argv)
    print(f"{'body':<24} {'bytes':>10}  {'fresh peak':>10}  {'hot peak':>8}  {'after':>6}  {'cpu ms':>7}   (MiB)")
    for name, make in BODIES.items():
        if args.only and name != args.only:
            continue
        body = make()
        rows = measure(name, body, args.func.resolve(), args.reps)
        hot = rows[1:] or rows
        print(
            f"{name:<24} {len(body):>10}  {rows[0]['peak']:>10.0f}  {max(r['peak'] for r in hot):>8.0f}  "
            f"{max(r['after'] for r in rows):>6.0f}  {sorted(r['cpu_ms'] for r in rows)[len(rows) // 2]:>7.0f}"
        )


if __name__ == "__main__":
    main()
