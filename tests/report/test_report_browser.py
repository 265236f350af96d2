"""The page in a real headless Chromium: it opens, and every image decodes (naturalWidth > 0).

The page's inline script writes "ok N" (or "missing K of N") into <html data-images> on load;
`--dump-dom` prints the DOM after the load event, so the attribute is read back from stdout.
Needs a chromium binary (Debian: `apt-get install -y chromium`); skipped without one.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from .conftest import parse

CHROMIUM = next(
    (b for b in ("chromium", "chromium-browser", "google-chrome", "chrome") if shutil.which(b)), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (apt-get install -y chromium)"
)


def dump_dom(page, tmp_path, *, width: int | None = None) -> str:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={tmp_path / 'profile'}",
        *([f"--window-size={width},1000"] if width else []),
        "--dump-dom",
        page if isinstance(page, str) else page.resolve().as_uri(),
    ]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.mark.parametrize("which", ["plain", "compose"])
def test_every_image_loads_in_headless_chromium(
    which, plain_run, plain_html, compose_run, compose_html, tmp_path
):
    run_dir, html = (plain_run, plain_html) if which == "plain" else (compose_run[0], compose_html)
    n = len(parse(html).images)
    assert n >= (4 if which == "plain" else 7)
    dom = dump_dom(run_dir / "report.html", tmp_path)
    m = re.search(r'<html[^>]*data-images="([^"]*)"', dom)
    assert m, dom[:500]
    assert m.group(1) == f"ok {n}"
    assert dom.count("<img ") == n


@pytest.mark.parametrize("which", ["plain", "compose"])
def test_nothing_overflows_an_800_px_window(which, plain_run, plain_html, compose_run, compose_html, tmp_path):
    run_dir = plain_run if which == "plain" else compose_run[0]
    dom = dump_dom(run_dir / "report.html", tmp_path, width=800)
    m = re.search(r'<html[^>]*data-width="(\d+) of (\d+)"', dom)
    assert m, dom[:500]
    page_width, window = int(m.group(1)), int(m.group(2))
    assert window == 800
    assert page_width <= window, f"the page is {page_width} px wide in an 800 px window"
