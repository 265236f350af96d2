"""Page assembly: escaping, tables, figures, sections and the page shell (plain CSS, no network).

Images are embedded as base64 PNG so that `report.html` is one file that can be mailed or copied
alone; the same PNGs are also written into the report's image folder for reuse in slides and papers.

The page carries one small inline script and nothing else: on load it checks that every <img>
decoded (naturalWidth > 0) and writes "ok N" or "missing K of N" into the `data-images` attribute
of <html>, which the browser test reads back with `chromium --dump-dom`; it also writes the page's
laid-out width against the window's into `data-width` ("800 of 800"), so that the test can check that
no table or figure pushes the page wider than an 800 px window.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from aira.report.plots import png


class Markup(str):
    """A string that is already HTML: `table` and `esc` pass it through unescaped."""


def esc(x) -> Markup:
    return x if isinstance(x, Markup) else Markup(html.escape("" if x is None else str(x)))


def fmt(x, spec: str = ".4g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, (int, float)):
        return format(x, spec)
    return str(x)


def si(x, unit: str = "") -> str:
    """1234567 -> '1.23M'; for parameter and FLOP counts."""
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return "-"
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}{unit}"
    return f"{x:.3g}{unit}"


def badge(text: str, kind: str = "") -> Markup:
    return Markup(f'<span class="badge {esc(kind)}">{esc(text)}</span>')


def table(
    headers: Sequence[str] | None,
    rows: Iterable[Sequence],
    *,
    cls: str = "",
    row_attrs: Sequence[dict] | None = None,
) -> Markup:
    """A table (no header row when `headers` is None); cells are escaped unless they are Markup. `row_attrs` adds attributes per row
    (class, data-*): the tests read the leaderboard back through them."""
    out = [f'<table class="{esc(cls)}">']
    if headers:
        out += ["<thead><tr>", *(f"<th>{esc(h)}</th>" for h in headers), "</tr></thead>"]
    out.append("<tbody>")
    for i, row in enumerate(rows):
        attrs = row_attrs[i] if row_attrs else {}
        a = "".join(f' {esc(k)}="{esc(v)}"' for k, v in attrs.items())
        out.append(f"<tr{a}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return Markup("".join(out))


def kv_table(items: dict) -> Markup:
    return table(None, [(k, v) for k, v in items.items()], cls="kv")


class Images:
    """Collects the report's figures: writes each PNG into `folder` and returns its <img> tag."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.names: list[str] = []

    def add(self, name: str, fig: Figure, alt: str) -> Markup:
        return self.add_png(name, png(fig), alt)

    def add_png(self, name: str, data: bytes, alt: str) -> Markup:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{name}.png").write_bytes(data)
        self.names.append(name)
        b64 = base64.b64encode(data).decode("ascii")
        return Markup(f'<img src="data:image/png;base64,{b64}" alt="{esc(alt)}" data-name="{esc(name)}">')


def figure(img: Markup, caption: str) -> Markup:
    return Markup(f"<figure>{img}<figcaption>{esc(caption)}</figcaption></figure>")


def section(key: str, title: str, *parts: str) -> Markup:
    return Markup(f'<section id="{esc(key)}"><h2>{esc(title)}</h2>\n' + "\n".join(parts) + "\n</section>")


def para(text: str) -> Markup:
    return Markup(f"<p>{esc(text)}</p>")


CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0; }
header { background: #24324a; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 2px 0; color: #d6deeb; }
nav { padding: 8px 32px; background: #eef1f6; border-bottom: 1px solid #d5dbe5; }
nav a { margin-right: 14px; color: #24324a; text-decoration: none; }
main { padding: 8px 32px 40px; max-width: 1200px; }
header p { overflow-wrap: anywhere; }
/* a wide table scrolls inside its own box instead of widening the page (readable at 800 px) */
table { display: block; max-width: 100%; overflow-x: auto; }
pre { max-width: 100%; overflow-x: auto; }
td code { overflow-wrap: anywhere; }
section { margin-top: 28px; }
h2 { font-size: 18px; border-bottom: 1px solid #d5dbe5; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #d5dbe5; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f9; }
td code, p code { font-size: 12px; }
tr.reference td { background: #f6f6f6; color: #555; }
tr.tied td:first-child { font-weight: bold; }
table.kv td:first-child { color: #555; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 11px; background: #e3e7ee; }
.badge.offline { background: #fde8c8; color: #7a4b00; }
.badge.tie { background: #dde9f8; color: #1d4f91; }
.badge.reference { background: #e5e5e5; }
.note { color: #555; font-size: 13px; }
.warn { background: #fff4e5; border-left: 4px solid #f0a030; padding: 6px 10px; }
.warn ul { margin: 4px 0; padding-left: 20px; }
.pick { background: #eef7ee; border-left: 4px solid #55A868; padding: 8px 12px; }
figure { margin: 12px 0; }
figure img { max-width: 100%; border: 1px solid #e2e6ee; }
figcaption { color: #555; font-size: 12px; }
"""

CHECK_IMAGES = """
window.addEventListener("load", function () {
  var imgs = document.images, bad = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (!(imgs[i].complete && imgs[i].naturalWidth > 0)) bad++;
  }
  document.documentElement.setAttribute("data-images",
    bad ? "missing " + bad + " of " + imgs.length : "ok " + imgs.length);
  // the page's laid-out width against the window's: wider means something overflows sideways
  document.documentElement.setAttribute("data-width",
    document.documentElement.scrollWidth + " of " + window.innerWidth);
});
"""


def page(title: str, subtitle: Sequence[str], sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document; `sections` = (id, nav label, html)."""
    nav = "".join(f'<a href="#{esc(k)}">{esc(label)}</a>' for k, label, _ in sections)
    subs = "".join(f"<p>{esc(s)}</p>" for s in subtitle)
    body = "\n".join(h for _, _, h in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en" data-images="pending">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n<script>{CHECK_IMAGES}</script>\n</head>\n"
        f"<body>\n<header><h1>{esc(title)}</h1>{subs}</header>\n<nav>{nav}</nav>\n<main>\n{body}\n</main>\n"
        "</body>\n</html>\n"
    )
