"""fnlocal container lifecycle against real fdk processes: scale-out, idle, timeout, crash, memory, queue,
start failures and clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from fnlocal import FnLocal
from tests.integration.fnlocal_helpers import DEMO_APP, DEPS_DIR, containers, fdk_pids_for, pid_alive, wait_for

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.conftest_fnlocal"]  # fixtures: fl, fnlocal_factory, http
FNLOCAL_BIN = Path(sys.executable).parent / "fnlocal"


def test_parallel_calls_get_one_container_each(fl: FnLocal) -> None:
    url = fl.invoke_url("demo", "sleeper")
    barrier = threading.Barrier(3)

    def call(_: int) -> httpx.Response:
        barrier.wait()
        return httpx.post(url, content=b"0.8", timeout=30)

    with ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(call, range(3)))
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert len({r.text for r in responses}) == 3
    assert {r.headers["Fn-Local-Cold"] for r in responses} == {"true"}
    assert len(containers(fl, "sleeper")) == 3


def test_idle_container_is_stopped_after_idle_timeout(fl: FnLocal, http: httpx.Client) -> None:
    url = fl.invoke_url("demo", "sleeper")  # idle_timeout: 1
    pid = int(http.post(url, content=b"0").text)
    wait_for(lambda: not containers(fl, "sleeper"))
    wait_for(lambda: not pid_alive(pid))
    again = http.post(url, content=b"0")
    assert again.headers["Fn-Local-Cold"] == "true" and int(again.text) != pid


def test_call_past_timeout_kills_the_container_and_answers_504(fl: FnLocal, http: httpx.Client) -> None:
    url = fl.invoke_url("demo", "sleeper")  # timeout: 2
    resp = http.post(url, content=b"30")
    assert resp.status_code == 504
    assert resp.json() == {"message": "Timed out"}
    wait_for(lambda: not pid_alive(int(resp.headers["Fn-Local-Container"])))
    assert http.post(url, content=b"0").status_code == 200


def test_process_exit_is_502_then_a_new_container(fl: FnLocal, http: httpx.Client) -> None:
    url = fl.invoke_url("demo", "exiter")
    pid = int(http.post(url, content=b"hi").text)
    crashed = http.post(url, content=b"exit")
    assert crashed.status_code == 502
    assert crashed.json() == {"message": "error receiving function response"}
    recovered = http.post(url, content=b"hi")
    assert recovered.status_code == 200
    assert recovered.headers["Fn-Local-Cold"] == "true" and int(recovered.text) != pid
    assert not pid_alive(pid)


def test_container_over_its_memory_is_killed_with_fn_message(fl: FnLocal, http: httpx.Client) -> None:
    url = fl.invoke_url("demo", "hog")  # memory: 128
    resp = http.post(url, content=b"300")
    assert resp.status_code == 502
    assert resp.json() == {"message": "container out of memory, you may want to raise fn.memory for this "
                                      "function (default: 128MB)"}
    assert not pid_alive(int(resp.headers["Fn-Local-Container"]))
    assert http.post(url, content=b"0").status_code == 200


def test_queue_full_answers_503_with_retry_after(fnlocal_factory, http: httpx.Client) -> None:
    fl = fnlocal_factory(max_containers=1, queue_timeout_s=0.3)
    url = fl.invoke_url("demo", "sleeper")
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(httpx.post, url, content=b"1.5", timeout=30)
        wait_for(lambda: [c for c in containers(fl, "sleeper") if c["state"] == "busy"])
        rejected = http.post(url, content=b"0")
        assert busy.result().status_code == 200
    assert rejected.status_code == 503
    assert rejected.json() == {"message": "Timed out - server too busy"}
    assert rejected.headers["Retry-After"] == "15"


def test_queued_call_waits_for_the_busy_container(fnlocal_factory, http: httpx.Client) -> None:
    fl = fnlocal_factory(max_containers=1, queue_timeout_s=20)
    url = fl.invoke_url("demo", "sleeper")
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(httpx.post, url, content=b"0.5", timeout=30)
        wait_for(lambda: [c for c in containers(fl, "sleeper") if c["state"] == "busy"])
        queued = http.post(url, content=b"0")
        assert first.result().text == queued.text  # same pid: the one container served both
    assert queued.headers["Fn-Local-Cold"] == "false"


def test_container_that_never_listens_is_an_init_timeout(fnlocal_factory, http: httpx.Client) -> None:
    never = [sys.executable, "-c", "import time; time.sleep(60)"]
    fl = fnlocal_factory(fdk_command=never, start_timeout_s=0.5)
    resp = http.post(fl.invoke_url("demo", "echo"))
    assert resp.status_code == 504
    assert resp.json()["message"].startswith("Container initialization timed out")
    assert containers(fl, "echo") == []


def test_container_that_exits_at_start_is_an_init_failure(fnlocal_factory, http: httpx.Client) -> None:
    fl = fnlocal_factory(fdk_command=[sys.executable, "-c", "raise SystemExit(1)"])
    resp = http.post(fl.invoke_url("demo", "echo"))
    assert resp.status_code == 502
    assert resp.json()["message"].startswith("Container failed to initialize")


def test_stop_leaves_no_process_and_no_socket_dir(fnlocal_factory, http: httpx.Client) -> None:
    fl = fnlocal_factory()
    for name in ("echo", "exiter", "sleeper"):
        assert http.post(fl.invoke_url("demo", name), content=b"0").status_code == 200
    pids = [c["pid"] for name in ("echo", "exiter", "sleeper") for c in containers(fl, name)]
    assert len(pids) == 3 and set(pids) <= set(fdk_pids_for(DEMO_APP))
    root = fl.runtime._root
    assert any(root.iterdir())
    fl.stop()
    assert not [p for p in pids if pid_alive(p)]
    assert not root.exists()


def test_cli_serve_stops_everything_on_sigint(tmp_path: Path) -> None:
    log = tmp_path / "fnlocal.log"
    proc = subprocess.Popen([str(FNLOCAL_BIN), "serve", "--app-dir", str(DEMO_APP), "--port", "0",
                             "--log-file", str(log), "--deps-dir", str(DEPS_DIR)], stderr=subprocess.PIPE, text=True)
    try:
        url = wait_for(lambda: _served_url(proc))
        resp = httpx.post(f"{url}/invoke/demo/echo", content=b"x", timeout=30)
        pid = resp.json()["pid"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not pid_alive(pid)
    assert f"demo/echo pid={pid}" in log.read_text()


def _served_url(proc: subprocess.Popen[str]) -> str | None:
    assert proc.stderr is not None
    line = proc.stderr.readline()
    return line.rsplit(" on ", 1)[1].strip() if " on http" in line else None


def test_cli_invoke_runs_a_short_lived_runtime() -> None:
    done = subprocess.run([str(FNLOCAL_BIN), "invoke", "demo", "exiter", "--app-dir", str(DEMO_APP),
                           "--deps-dir", str(DEPS_DIR)],
                          input=b"hi", capture_output=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.strip().isdigit()
    assert not pid_alive(int(done.stdout))
    failed = subprocess.run([str(FNLOCAL_BIN), "invoke", "demo", "nope", "--app-dir", str(DEMO_APP),
                             "--deps-dir", str(DEPS_DIR)],
                            input=b"", capture_output=True, timeout=60, check=False)
    assert failed.returncode == 1 and b"Fn not found" in failed.stderr


def test_cli_invoke_posts_to_fn_api_url_instead_of_starting_a_runtime(fl: FnLocal, tmp_path: Path) -> None:
    # As the fn CLI: FN_API_URL names a running server; the function is found through its /v2 API. The
    # app dir given does not even exist, so a call that works cannot have started its own runtime.
    env = {**os.environ, "FN_API_URL": fl.url}
    command = [str(FNLOCAL_BIN), "invoke", "demo", "echo", "--app-dir", str(tmp_path / "nowhere")]
    done = subprocess.run(command, env=env, input=b"via api", capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["body"] == "via api"
    assert reply["call_id"] in [c["call_id"] for c in fl.status()["recent_calls"]]
    unknown = subprocess.run([*command[:2], "nope", "echo"], env=env, input=b"", capture_output=True, timeout=60,
                             check=False)
    assert unknown.returncode == 1 and b"app 'nope' not found" in unknown.stderr


def test_cli_list_shows_ids_and_triggers() -> None:
    out = subprocess.run([str(FNLOCAL_BIN), "list", "--app-dir", str(DEMO_APP)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    echo_line = next(line for line in out.splitlines() if " echo " in line)
    assert "/echo" in echo_line
