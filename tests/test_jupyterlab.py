"""Smoke test of the student's first steps: JupyterLab serves every course notebook.

A headless ``jupyter lab`` is started on 127.0.0.1 with a token and ``course/`` as
its root. Through the REST API every released notebook must load as valid
nbformat, and a kernel started through the API must run ``import lstm_ref`` over
the websocket. Every wait is bounded and the server is always terminated.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import websocket

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"
NOTEBOOKS = sorted(p.relative_to(COURSE).as_posix() for p in COURSE.glob("*/*.ipynb"))
START_TIMEOUT_S = 60
KERNEL_TIMEOUT_S = 60


class Server:
    """A running JupyterLab server: its base URL and token."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            with err:
                return err.code, None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port, token = _free_port(), secrets.token_hex(16)
    home = tmp_path_factory.mktemp("jupyter_home")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={COURSE}",
            "--ServerApp.port_retries=0", "--ServerApp.allow_root=True",
            "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    srv = Server(f"http://127.0.0.1:{port}", token)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"jupyter lab exited with {proc.returncode}:\n{(home / 'server.log').read_text()}"
            try:
                if srv.request("GET", "/api/status")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"jupyter lab not up after {START_TIMEOUT_S} s"
            time.sleep(0.5)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        log.close()


def test_course_has_notebooks() -> None:
    assert NOTEBOOKS, f"no notebooks under {COURSE}"


def test_lab_page_is_served(server: Server) -> None:
    """The JupyterLab application page itself loads (its assets are installed)."""
    status, _ = server.request("GET", "/api/me")
    assert status == 200
    req = urllib.request.Request(f"{server.url}/lab", headers={"Authorization": f"token {server.token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        assert b"jupyter-config-data" in resp.read()


def test_token_is_required(server: Server) -> None:
    """Without the token the contents API refuses to serve the course."""
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{server.url}/api/contents/", timeout=30)
    err.value.close()
    assert err.value.code == 403


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_notebook_opens_through_contents_api(server: Server, path: str) -> None:
    """The server reads the released notebook and returns it as valid nbformat 4."""
    status, model = server.request("GET", f"/api/contents/{path}?content=1&type=notebook")
    assert status == 200, f"GET /api/contents/{path} returned {status}"
    assert model["type"] == "notebook" and model["format"] == "json"
    nb = nbformat.from_dict(model["content"])
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.cells, f"{path}: empty notebook"


def _execute(server: Server, kernel_id: str, code: str) -> tuple[str, str]:
    """Run ``code`` on a kernel over the websocket; return (reply status, stdout)."""
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{server.url.rsplit(':', 1)[1]}/api/kernels/{kernel_id}/channels",
        header=[f"Authorization: token {server.token}"], timeout=KERNEL_TIMEOUT_S,
    )
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                   "session": uuid.uuid4().hex, "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))
    stdout, status = [], None
    deadline = time.monotonic() + KERNEL_TIMEOUT_S
    try:
        while status is None or not stdout:
            assert time.monotonic() < deadline, f"no execute_reply within {KERNEL_TIMEOUT_S} s"
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
                stdout.append(msg["content"]["text"])
            elif msg["msg_type"] == "execute_reply":
                status = msg["content"]["status"]
                if status != "ok":
                    break
    finally:
        ws.close()
    return status, "".join(stdout)


def test_kernel_imports_lstm_ref(server: Server) -> None:
    """A kernel started through the API imports the course library."""
    status, kernel = server.request("POST", "/api/kernels", {"name": "python3"})
    assert status == 201, f"POST /api/kernels returned {status}"
    try:
        reply, out = _execute(server, kernel["id"], "import lstm_ref, numpy\nprint(lstm_ref.__name__, numpy.ones(3).sum())")
        assert reply == "ok", f"execute_reply status {reply!r}"
        assert out.strip() == "lstm_ref 3.0", f"kernel printed {out!r}"
    finally:
        server.request("DELETE", f"/api/kernels/{kernel['id']}")
