"""The dashboard in a real headless Chromium, following a run that is still going: the page opens on
the run, shows its evaluations, and a new evaluation appears on it without a reload; its steering panel
(opened with the server's token) saves a guidance note and pauses and continues the live run.

The run is the synthetic task in a thread, with an executor that hands back a result only when the
test lets it, so what the page must show at each moment is known. The browser is driven over the
DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages ended by NUL on fds 3 and 4),
standard library only. Needs a chromium binary (Debian: `apt-get install -y chromium`); skipped
without one. The waits poll the page; their deadlines are a safety net, not a measurement.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import threading
import time

import pytest

from aira.agents.base import Executor
from aira.agents.journal import Journal, JournalError
from aira.agents.runfolder import RunConfig
from aira.tasks.runs import run
from aira.dashboard.server import DashboardServer
from tests.report.conftest import NoisySynthetic

CHROMIUM = next(
    (b for b in ("chromium", "chromium-browser", "google-chrome", "chrome") if shutil.which(b)), None
)
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or BASH is None, reason="no chromium (apt-get install -y chromium) or no bash on PATH"
)
DEADLINE_S = 90.0


class GatedExecutor(Executor):
    """Runs each job in-process at once, but returns its result only for a permit the test gives."""

    slots = 1

    def __init__(self):
        self.held, self.permits = [], threading.Semaphore(0)

    def submit(self, job):
        from aira.agents.executors.worker import run_job

        self.held.append((job.id, run_job(job)))

    def poll(self, timeout=0.0):
        if self.held and self.permits.acquire(timeout=max(timeout, 0.01)):
            return [self.held.pop(0)]
        return []

    def shutdown(self):
        pass


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe."""

    def __init__(self, url: str, profile):
        to_browser = os.pipe()
        from_browser = os.pipe()
        # high fds for the shell to move onto 3 and 4, so that none of them is already 3 or 4
        self._mine = [fcntl.fcntl(to_browser[1], fcntl.F_DUPFD_CLOEXEC, 20),
                      fcntl.fcntl(from_browser[0], fcntl.F_DUPFD_CLOEXEC, 20)]
        theirs = [fcntl.fcntl(to_browser[0], fcntl.F_DUPFD, 20), fcntl.fcntl(from_browser[1], fcntl.F_DUPFD, 20)]
        for fd in (*to_browser, *from_browser):
            os.close(fd)
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={profile}", "--remote-debugging-pipe", url]
        cmd = " ".join(f"'{a}'" for a in args) + f" 3<&{theirs[0]} 4>&{theirs[1]}"
        # bash, not sh: dash takes no fd number above 9 in a redirection
        self.proc = subprocess.Popen([BASH, "-c", "exec " + cmd], pass_fds=theirs,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in theirs:
            os.close(fd)
        self._buf, self._id = b"", 0
        self.session = None
        page = next(t for t in self.call("Target.getTargets")["targetInfos"]
                    if t["type"] == "page" and t["url"].startswith(url.split("?")[0]))
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]

    def call(self, method: str, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self.session:
            msg["sessionId"] = self.session
        os.write(self._mine[0], json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    assert "error" not in reply, reply
                    return reply["result"]
            ready, _, _ = select.select([self._mine[1]], [], [], 1.0)
            if ready:
                chunk = os.read(self._mine[1], 1 << 16)
                assert chunk, "chromium closed the pipe"
                self._buf += chunk
        raise TimeoutError(f"no reply to {method}")

    def js(self, expression: str):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return r["result"].get("value")

    def wait_for(self, expression: str) -> None:
        """Until `expression` is truthy in the page (a DOM node comes back by value as {}: test it there)."""
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            if self.js(f"Boolean({expression})"):
                return
            time.sleep(0.1)
        raise TimeoutError(f"the page never showed: {expression}; it shows {self.js('document.body.innerText')!r}")

    def close(self):
        for fd in self._mine:
            os.close(fd)
        self.proc.kill()
        self.proc.wait()


def _wait_journal(d, evaluations: int) -> list:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        try:
            with Journal(d, readonly=True) as j:
                done = [n for n in j.nodes() if n.operator != "reference" and n.finished_at is not None]
        except (FileNotFoundError, JournalError):  # not there yet, or created and still 0 bytes
            done = []
        if len(done) >= evaluations:
            return done
        time.sleep(0.05)
    raise TimeoutError(f"the run never reached {evaluations} evaluations")


def test_a_new_evaluation_appears_on_the_open_page(tmp_path):
    root = tmp_path / "runs"
    executor = GatedExecutor()
    cfg = RunConfig(task="synthetic", agents=["greedy:offline"], out=str(root / "live"), budget="6evals",
                    noise_seeds=1, quiet=True)
    errors = []

    def go():
        try:
            run(cfg, task=NoisySynthetic(noise=0.05), executor=executor)
        except BaseException as e:  # noqa: BLE001 - reported by the test below
            errors.append(e)

    runner = threading.Thread(target=go, daemon=True)
    runner.start()
    server = DashboardServer(root)
    server.start()
    browser = None
    try:
        for _ in range(3):  # the reference and two evaluations
            executor.permits.release()
        first = _wait_journal(root / "live", 2)
        browser = Chromium(f"{server.url}?interval=200&token={server.token}#live", tmp_path / "profile")
        browser.wait_for("document.querySelector('#summary[data-evaluations=\"2\"]')")
        shown = browser.js("[...document.querySelectorAll('#recent-table tr[data-node]')].map(r => r.dataset.node)")
        assert sorted(shown) == sorted(n.id for n in first)
        assert "running" in browser.js("document.querySelector('#runs tr[data-run=\"live\"]').innerText")
        assert browser.js("document.querySelectorAll('#board tr.reference').length") == 1  # the noise floor's run

        # steering from the page: a guidance note, then pause and continue, acknowledged by the live run
        browser.wait_for("document.querySelector('#steer-state[data-live=\"true\"]')")
        browser.js("var t = document.getElementById('steer-guidance'); t.value = 'Prefer S layers.'; "
                   "t.dispatchEvent(new Event('input')); document.getElementById('steer-save').click()")
        browser.wait_for("document.getElementById('steer-msg').dataset.status === '200'")
        assert (root / "live" / "guidance.md").read_text() == "Prefer S layers."
        browser.js("document.getElementById('steer-pause').click()")
        browser.wait_for("document.querySelector('#steer-state[data-paused=\"true\"]')")
        browser.js("document.getElementById('steer-continue').click()")
        browser.wait_for("document.querySelector('#steer-state[data-paused=\"false\"]')")
        browser.wait_for("document.getElementById('steer-state').innerText.includes('v1 read by 0 node(s)')")

        executor.permits.release()  # one more evaluation finishes while the page is open
        (new,) = [n for n in _wait_journal(root / "live", 3) if n.id not in shown]
        browser.wait_for("document.querySelector('#summary[data-evaluations=\"3\"]')")
        browser.wait_for(f"document.querySelector('#recent-table tr[data-node=\"{new.id}\"]')")
        assert browser.js("document.querySelectorAll('#curves svg[data-points]').length") == 3

        for _ in range(10):  # let the run finish
            executor.permits.release()
        runner.join(DEADLINE_S)
        assert not runner.is_alive() and not errors, errors
        browser.wait_for("document.querySelector('#summary[data-evaluations=\"6\"]')")
        browser.wait_for("document.querySelector('#runs tr[data-run=\"live\"]').innerText.includes('finished')")
    finally:
        if browser is not None:
            browser.close()
        server.shutdown()
        server.server_close()
        for _ in range(20):
            executor.permits.release()
        runner.join(DEADLINE_S)
