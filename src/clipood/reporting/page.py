"""The report as one self-contained HTML page: tables, and the plots embedded as PNG data.

Cells never wrap (a method name or 'mean ± std' on one line); a table wider than the page
scrolls sideways inside its own box.

A small script marks the page once every image has decoded (``data-images-ok`` on
<body>, and ``data-rendered="ok"``), so a headless browser can check that it renders.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

__all__ = ["SCRIPT", "STYLE", "figure", "page", "paragraph"]

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1150px;
       color: #222; padding: 0 1em; }
code { background: #f4f4f4; padding: 0 0.2em; }
/* A wide table scrolls inside its own box instead of widening the page. */
div.scroll { overflow-x: auto; max-width: 100%; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; } h3 { font-size: 1.05em; }
table.results, table.settings { border-collapse: collapse; margin: 1em 0 0.3em; font-size: 0.9em; }
table.results th, table.results td, table.settings th, table.settings td { border: 1px solid #ccc;
       padding: 0.25em 0.6em; text-align: right; white-space: nowrap; vertical-align: top; }
table.results th, table.settings th { background: #f4f4f4; text-align: left; }
table.settings td { text-align: left; }
table.results tr.paper th, table.results tr.paper td { color: #555; font-style: italic; background: #fafaf0; }
table.results span.variant { display: block; font-size: 0.8em; color: #2a5d8f; }
ul.notes { font-size: 0.82em; color: #555; margin-top: 0.2em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #444; }
p.selection { background: #eef4fb; padding: 0.6em 0.8em; border-left: 4px solid #4c72b0; }
"""

SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-ok', ok + '/' + imgs.length);
  document.body.setAttribute('data-tables', String(document.querySelectorAll('table.results').length));
  document.body.setAttribute('data-rendered', ok === imgs.length ? 'ok' : 'broken');
});
"""


def figure(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    e = html.escape
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{e(caption)}" data-file="{e(Path(path).name)}">'
            f"<figcaption>{e(caption)}</figcaption></figure>")


def paragraph(text: str, cls: str = "") -> str:
    """Escaped text; `code` spans (markdown backticks) become <code>."""
    parts = html.escape(text).split("`")
    inner = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    return f'<p class="{cls}">{inner}</p>' if cls else f"<p>{inner}</p>"


def page(title: str, blocks: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
            f"<body data-rendered=\"pending\">\n" + "\n".join(blocks) + f"\n<script>{SCRIPT}</script>\n</body></html>\n")
