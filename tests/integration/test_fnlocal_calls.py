"""fnlocal against real fdk processes: hot reuse, the agent's request, triggers, errors, 404s."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from fnlocal import FnLocal
from tests.integration.fnlocal_helpers import DEMO_APP, DEPS_DIR, containers, wait_for

pytest_plugins = ["tests.integration.conftest_fnlocal"]  # fixtures: fl, fnlocal_factory, http

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_second_call_reuses_the_hot_container(fl: FnLocal, http: httpx.Client) -> None:
    url = fl.invoke_url("demo", "echo")
    first = http.post(url, content=b"one")
    second = http.post(url, content=b"two")
    assert first.status_code == second.status_code == 200
    assert first.headers["Fn-Local-Cold"] == "true"
    assert second.headers["Fn-Local-Cold"] == "false"
    assert first.json()["pid"] == second.json()["pid"] == int(second.headers["Fn-Local-Container"])
    assert second.json()["body"] == "two"
    (echo,) = [f for f in fl.status()["functions"] if f["name"] == "echo"]
    assert echo["calls"]["cold"] == 1 and echo["calls"]["hot"] == 1
    assert [c["pid"] for c in echo["containers"]] == [first.json()["pid"]]


def test_container_gets_the_agent_request_and_environment(fnlocal_factory, http: httpx.Client) -> None:
    fl = fnlocal_factory(env_overrides={"INJECTED": "${FNLOCAL_URL}/x", "SHARED": "override"})
    resp = http.post(fl.invoke_url("demo", "echo"), content=b"{}",
                     headers={"Content-Type": "application/json", "X-Custom": "abc"})
    info = resp.json()
    headers = info["headers"]
    # §2.3: the client's headers as-is (unprefixed), plus Fn-Call-Id and an RFC 3339 Fn-Deadline.
    assert headers["x-custom"] == "abc" and headers["content-type"] == "application/json"
    assert headers["fn-call-id"] == resp.headers["Fn-Call-Id"] == info["call_id"]
    assert info["deadline"].endswith("Z") and len(info["deadline"]) == 20
    # the agent streams the body on: chunked, no Content-Length
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    assert "fn-intent" not in headers and info["method"] is None
    env = info["env"]
    assert env["APP_ONLY"] == "from-app" and env["FN_ONLY"] == "yes-fn" and env["SHARED"] == "override"
    assert env["INJECTED"] == f"{fl.url}/x"
    assert env["FN_FORMAT"] == "http-stream" and env["FN_TYPE"] == "sync" and env["FN_MEMORY"] == "256"
    assert env["FN_APP_NAME"] == "demo" and env["FN_FN_NAME"] == "echo"
    assert env["FN_FN_ID"] == fl.fn_id("demo", "echo") and env["FN_APP_ID"]
    # the function folder, then its own pip --target install only (python -S), as Fn's /function:/python
    fn_dir, deps_dir = env["PYTHONPATH"].split(os.pathsep)
    assert fn_dir == str(DEMO_APP / "functions" / "echo")
    assert Path(deps_dir).parent == DEPS_DIR and (Path(deps_dir) / "fdk").is_dir()
    assert not info["cwd"].startswith(str(REPO))


def test_readable_alias_and_binary_body(fl: FnLocal, http: httpx.Client) -> None:
    blob = bytes(range(256)) * 1000
    resp = http.post(f"{fl.url}/invoke/demo/echo", content=blob, headers={"X-Echo-Raw": "1"})
    assert resp.status_code == 200 and resp.content == blob
    assert resp.headers["X-Echo"] == "yes" and resp.headers["Fn-Fdk-Version"].startswith("fdk-python/")


def test_chunked_request_body(fl: FnLocal, http: httpx.Client) -> None:
    resp = http.post(fl.invoke_url("demo", "echo"), content=iter([b"ab", b"cd"]), headers={"X-Echo-Raw": "1"})
    assert resp.content == b"abcd"


def test_custom_status_is_lost_on_invoke(fl: FnLocal, http: httpx.Client) -> None:
    resp = http.post(fl.invoke_url("demo", "echo"), headers={"X-Echo-Status": "201"})
    assert resp.status_code == 200  # the fdk enforces 200/502/504 (§1.8)


def test_handler_exception_is_function_failed_and_container_kept(fl: FnLocal, http: httpx.Client) -> None:
    url = fl.invoke_url("demo", "echo")
    pid = http.post(url).json()["pid"]
    failed = http.post(url, headers={"X-Echo-Raise": "1"})
    assert failed.status_code == 502
    assert failed.json() == {"message": "function failed"}
    assert failed.headers["Content-Type"] == "application/json; charset=utf-8"
    assert failed.headers["Fn-Call-Id"]
    assert http.post(url).json()["pid"] == pid


def test_trigger_rewrites_request_and_response(fl: FnLocal, http: httpx.Client) -> None:
    """Compare with fn-contract.md §2.8 both ways."""
    url = fl.trigger_url("demo", "/echo") + "?q=1"
    resp = http.request("PUT", url, content=b'{"a":1}', headers={
        "Content-Type": "application/json", "X-Custom": "abc", "X-Echo-Status": "201",
        "User-Agent": "curl/8.0"})
    info = resp.json()
    sent = info["headers"]
    assert info["http_headers"]["x-custom"] == "abc" and info["http_headers"]["user-agent"] == "curl/8.0"
    # ctx.HTTPHeaders() holds exactly the Fn-Http-H-* headers: Content-Type is not among them.
    assert "content-type" not in info["http_headers"] and sent["content-type"] == "application/json"
    assert sent["fn-intent"] == "httprequest"
    assert info["method"] == "PUT"
    assert info["url"] == f"{fl.url}/t/demo/echo?q=1"
    # Response: Fn-Http-Status becomes the status, Fn-Http-H-* lose their prefix, the rest is dropped.
    assert resp.status_code == 201
    assert resp.headers["X-Echo"] == "yes"
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Fn-Call-Id"]
    assert "Fn-Fdk-Version" not in resp.headers and "Fn-Http-Status" not in resp.headers
    assert not [h for h in resp.headers if h.lower().startswith("fn-http-")]


def test_trigger_error_status_wins(fl: FnLocal, http: httpx.Client) -> None:
    resp = http.get(fl.trigger_url("demo", "echo"), headers={"X-Echo-Raise": "1"})
    assert resp.status_code == 502 and resp.json() == {"message": "function failed"}


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("POST", "/invoke/NOSUCHFUNCTIONID0000000000", "Fn not found"),
        ("POST", "/invoke/nope/echo", "App not found"),
        ("POST", "/invoke/demo/nope", "Fn not found"),
        ("GET", "/t/demo/nope", "Trigger not found"),
        ("POST", "/t/nope/echo", "App not found"),
        ("GET", "/nowhere", "Path not found"),
    ],
)
def test_unknown_app_function_trigger_are_fn_404s(fl: FnLocal, http: httpx.Client, method: str, path: str,
                                                   message: str) -> None:
    resp = http.request(method, fl.url + path)
    assert resp.status_code == 404
    # real-fn.md: `{"message":"Fn not found"}` plus Go's json.Encoder newline, and no call, so no Fn-Call-Id
    assert resp.content == b'{"message":"%s"}\n' % message.encode()
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "Fn-Call-Id" not in resp.headers


def test_call_errors_keep_their_call_id_and_fn_error_body(fl: FnLocal, http: httpx.Client) -> None:
    resp = http.post(fl.invoke_url("demo", "echo"), headers={"X-Echo-Raise": "1"})
    assert resp.status_code == 502 and resp.content == b'{"message":"function failed"}\n'
    assert resp.headers["Fn-Call-Id"]


def test_v2_lookups_find_a_function_as_fn_invoke_does(fl: FnLocal, http: httpx.Client) -> None:
    (app,) = http.get(f"{fl.url}/v2/apps", params={"name": "demo"}).json()["items"]
    (fn,) = http.get(f"{fl.url}/v2/fns", params={"app_id": app["id"], "name": "echo"}).json()["items"]
    assert fn["id"] == fl.fn_id("demo", "echo") and fn["app_id"] == app["id"]
    assert fn["annotations"]["fnproject.io/fn/invokeEndpoint"] == fl.invoke_url("demo", "echo")
    assert http.get(f"{fl.url}/v2/fns/{fn['id']}").json()["name"] == "echo"
    assert http.get(f"{fl.url}/v2/apps", params={"name": "nope"}).json() == {"items": []}
    assert http.get(f"{fl.url}/v2/fns", params={"app_id": app["id"], "name": "nope"}).json() == {"items": []}
    missing = http.get(f"{fl.url}/v2/fns/NOSUCHFUNCTIONID0000000000")
    assert missing.status_code == 404 and missing.json() == {"message": "Fn not found"}


def test_detached_call_returns_202_and_runs_on(fl: FnLocal, http: httpx.Client) -> None:
    # the default, detached="accept": as OCI Functions (and Fn's LB/runner-pool deployment)
    resp = http.post(fl.invoke_url("demo", "sleeper"), content=b"0.5", headers={"Fn-Invoke-Type": "detached"})
    assert resp.status_code == 202 and resp.content == b""
    call_id = resp.headers["Fn-Call-Id"]

    def finished() -> dict | None:
        done = [c for c in fl.status()["recent_calls"] if c["call_id"] == call_id]
        return done[0] if done else None

    record = wait_for(finished)
    assert record["status"] == 200 and record["detached"] is True


def test_detached_wait_mode_answers_like_a_self_hosted_fn_server(fnlocal_factory, http: httpx.Client) -> None:
    # real-fn.md: the call runs to completion, then 200 with an empty body; a failure answers as a sync call
    fl = fnlocal_factory(detached="wait")
    url = fl.invoke_url("demo", "echo")
    resp = http.post(url, content=b"x", headers={"Fn-Invoke-Type": "detached"})
    assert resp.status_code == 200 and resp.content == b""
    (record,) = [c for c in fl.status()["recent_calls"] if c["call_id"] == resp.headers["Fn-Call-Id"]]
    assert record["status"] == 200 and record["detached"] is True  # finished before the answer
    failed = http.post(url, headers={"Fn-Invoke-Type": "detached", "X-Echo-Raise": "1"})
    assert failed.status_code == 502 and failed.json() == {"message": "function failed"}


def test_function_importing_outside_its_folder_fails(fl: FnLocal, http: httpx.Client) -> None:
    assert (DEMO_APP / "shared_helper.py").is_file()  # it exists, just not on the function's path
    resp = http.post(fl.invoke_url("demo", "outside"))
    assert resp.status_code == 502 and resp.json() == {"message": "function failed"}


def test_status_endpoint_lists_functions_containers_and_calls(fl: FnLocal, http: httpx.Client) -> None:
    http.post(fl.invoke_url("demo", "echo"))
    status = http.get(f"{fl.url}/status").json()
    assert {f["name"] for f in status["functions"]} == {"echo", "exiter", "hog", "outside", "sleeper"}
    (container,) = containers(fl, "echo")
    assert container["state"] == "idle" and container["calls"] == 1 and container["idle_s"] >= 0
    assert status["recent_calls"][0]["function"] == "echo" and status["recent_calls"][0]["cold"] is True
    json.dumps(status)


def test_many_sequential_hot_calls_stay_on_one_container(fl: FnLocal, http: httpx.Client) -> None:
    url = fl.invoke_url("demo", "echo")
    pids = {http.post(url, headers={"X-Echo-Raw": "1"}).headers["Fn-Local-Container"] for _ in range(30)}
    assert len(pids) == 1


def test_project_packages_installed_editable_are_not_importable_in_a_container(tmp_path) -> None:
    # The dev venv has fnlocal/triggers/common installed editable (a .pth finder). Fn's image has no
    # such thing, so the container interpreter must not see them either: same flags, same PYTHONPATH.
    import subprocess
    import sys

    from fnlocal.container import fdk_command, python_path
    from fnlocal.deps import Deps, venv_site_paths

    interpreter_and_flags = fdk_command()[:2]
    assert interpreter_and_flags == [sys.executable, "-S"]
    fl = FnLocal(DEMO_APP, deps_dir=DEPS_DIR)
    isolated = [str(fl.deps.prepare(fl.app.functions["echo"]))]
    names = "('triggers', 'common', 'fnlocal', 'fdk', 'numpy', 'yaml')"
    probe = f"import importlib.util as u; print([m for m in {names} if u.find_spec(m)])"
    found = {}
    for mode, paths in (("isolated", isolated), ("venv", venv_site_paths())):
        out = subprocess.run([*interpreter_and_flags, "-c", probe], env={"PYTHONPATH": python_path(tmp_path, paths)},
                             cwd=tmp_path, capture_output=True, text=True, check=True)
        found[mode] = out.stdout.strip()
    assert found == {"isolated": "['fdk']", "venv": "['fdk', 'numpy', 'yaml']"}
    assert Deps("venv").paths(fl.app.functions["echo"]) == venv_site_paths()
