"""The dashboard's steering endpoints over real HTTP: the server's token is required (403 without it or with a
wrong one), requests land as the CLI's would (aira.agents.steering), a run that is not live is 409, bad
input 400, a huge note 413; the page's state shows the guidance and whether the run is live."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from aira.agents.journal import writer_lock
from aira.agents.steering import CONTROL_DIR, MAX_GUIDANCE_BYTES
from aira.dashboard.server import DashboardServer
from tests.report.conftest import make_run


@pytest.fixture()
def server(tmp_path):
    make_run(tmp_path / "runs" / "a")
    s = DashboardServer(tmp_path / "runs", token="s3cret")
    s.start()
    yield s
    s.shutdown()
    s.server_close()


def post(server, path, body, token="s3cret"):
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    req = urllib.request.Request(server.url + path, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **({"X-Aira-Token": token} if token
                                                                                  is not None else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_fresh_server_makes_its_own_token_and_prints_it_in_the_url(tmp_path):
    a, b = DashboardServer(tmp_path), DashboardServer(tmp_path)
    try:
        assert a.token != b.token and len(a.token) >= 24 and a.steer_url == f"{a.url}?token={a.token}"
    finally:
        a.server_close()
        b.server_close()


def test_steering_needs_the_token(server, tmp_path):
    run = tmp_path / "runs" / "a"
    for token in (None, "", "wrong", "s3cret "):
        status, body = post(server, "api/runs/a/guidance", {"text": "hello"}, token=token)
        assert status == 403 and "token" in body["error"]
        assert post(server, "api/runs/a/control", {"action": "stop"}, token=token)[0] == 403
    assert not (run / "guidance.md").exists() and not (run / CONTROL_DIR).exists()


def test_guidance_is_written_and_shown(server, tmp_path):
    status, body = post(server, "api/runs/a/guidance", {"text": "Try Mamba layers late."})
    assert status == 200 and body["ok"] == "guidance saved (22 bytes)"
    assert (tmp_path / "runs" / "a" / "guidance.md").read_text() == "Try Mamba layers late."
    with urllib.request.urlopen(server.url + "api/runs/a", timeout=30) as r:
        steering = json.loads(r.read())["steering"]
    assert steering == {"live": False, "paused": False, "guidance": "Try Mamba layers late.", "versions": []}
    status, body = post(server, "api/runs/a/guidance", {"text": "x" * (MAX_GUIDANCE_BYTES + 1)})
    assert status == 413 and "over the 16384-byte limit" in body["error"]
    assert post(server, "api/runs/a/guidance", b"x" * (64 * 1024 + 1))[0] == 413


def test_control_reaches_a_live_run_only(server, tmp_path):
    run = tmp_path / "runs" / "a"
    status, body = post(server, "api/runs/a/control", {"action": "pause"})
    assert status == 409 and body["error"] == "a is not running: nothing to pause"
    assert post(server, "api/runs/nope/control", {"action": "pause"})[0] == 404
    assert post(server, "api/runs/a/launch", {"action": "pause"})[0] == 404
    with writer_lock(run):  # as the live orchestrator holds it
        assert post(server, "api/runs/a/control", {"action": "fly"}) == (
            400, {"error": "unknown control action 'fly': use one of pause, continue, stop, add-budget"})
        assert post(server, "api/runs/a/control", b"[1, 2]")[0] == 400
        assert post(server, "api/runs/a/control", {"action": "add-budget", "budget": "soon"})[0] == 400
        status, body = post(server, "api/runs/a/control", {"action": "add-budget", "budget": "10m"})
        assert status == 200 and body["ok"].startswith("add-budget queued")
        assert post(server, "api/runs/a/control", {"action": "stop", "kill": True})[0] == 200
        with urllib.request.urlopen(server.url + "api/runs/a", timeout=30) as r:
            assert json.loads(r.read())["steering"]["live"] is True
    reqs = [json.loads(p.read_text()) for p in sorted((run / CONTROL_DIR).glob("*.json"))]
    assert [(r["action"], r["budget"], r["kill"], r["source"]) for r in reqs] == [
        ("add-budget", "10m", False, "dashboard"), ("stop", "", True, "dashboard")]
