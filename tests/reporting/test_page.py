"""The HTML page rendered in headless Chromium (layout measured in the browser), and the report command."""

from __future__ import annotations

import html
import re
import shutil
import subprocess

import pytest
from fakes import _assert_png_has_content

from clipood.cli import main
from clipood.reporting.selection import MODES, select

# Appended to a copy of the page (the page itself ships no test code): after layout, write into <body>
# what a reader would see go wrong: tables wider than the window outside a scrolling box, label cells
# (method names) on more than one line, a page that scrolls sideways.
MEASURE = """<script>
window.addEventListener('load', function () {
  var vw = document.documentElement.clientWidth, wide = 0, unboxed = [], wrapped = [], labels = 0;
  document.querySelectorAll('table').forEach(function (t) {
    var box = t.parentElement, r = t.getBoundingClientRect();
    if (r.width > box.clientWidth + 1) {
      wide += 1;
      var ox = getComputedStyle(box).overflowX;
      if (!(ox === 'auto' || ox === 'scroll') || box.getBoundingClientRect().right > vw + 1) unboxed.push(t.id);
    }
  });
  document.querySelectorAll('tbody th').forEach(function (th) {
    var text = th.firstChild;
    if (!text || text.nodeType !== 3 || !text.textContent.trim()) return;
    labels += 1;
    var range = document.createRange();
    range.selectNodeContents(text);
    var tops = {};
    Array.prototype.forEach.call(range.getClientRects(), function (q) { tops[Math.round(q.top)] = 1; });
    if (Object.keys(tops).length > 1) wrapped.push(text.textContent);
  });
  var b = document.body;
  b.setAttribute('data-wide-tables', String(wide));
  b.setAttribute('data-unboxed', unboxed.join('|'));
  b.setAttribute('data-wrapped', wrapped.join('|'));
  b.setAttribute('data-labels', String(labels));
  b.setAttribute('data-page-overflow', String(document.documentElement.scrollWidth > vw + 1));
});
</script>"""


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _flags(browser: str, profile, width: int) -> list[str]:
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--window-size={width},2000", "--virtual-time-budget=5000"]


def _body_attrs(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    return {k: html.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', body.group(1))}


@pytest.fixture(scope="module")
def browser():
    found = _chromium()
    if found is None:
        pytest.skip("chromium is not installed and could not be installed here (make test installs the Debian "
                    "package 'chromium' with apt-get when run as root); HTML render check skipped")
    return found


def test_html_report_renders_in_headless_chromium(full_report, browser, tmp_path):
    url = full_report.html_path.resolve().as_uri()
    flags = _flags(browser, tmp_path / "profile", 1200)
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    attrs = _body_attrs(dom.stdout)
    n_images = len(full_report.plots)
    assert attrs.get("data-rendered") == "ok", attrs
    assert attrs.get("data-images-ok") == f"{n_images}/{n_images}" and n_images >= 5
    n_tables = sum(len(ts) for ts in full_report.tables.values()) + 4  # + the paper's four reference tables
    assert attrs.get("data-tables") == str(n_tables)
    assert "paper: CLIPood" in dom.stdout and "97.3 ± 0.1" in dom.stdout

    shot = tmp_path / "page.png"
    res = subprocess.run(flags + [f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    _assert_png_has_content(shot)


@pytest.mark.parametrize("width", [1200, 760])
def test_wide_tables_scroll_in_their_box_and_labels_stay_on_one_line(full_report, browser, tmp_path, width):
    """Measured in the rendered layout: at a laptop and a narrow window, some table (the paper's Table 4) is
    wider than the page, each such table scrolls inside its own box, and no method name wraps."""
    page = tmp_path / "measure.html"
    page.write_text(full_report.html_path.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"),
                    encoding="utf-8")
    dom = subprocess.run(_flags(browser, tmp_path / "profile", width) + ["--dump-dom", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    attrs = _body_attrs(dom.stdout)
    assert int(attrs["data-wide-tables"]) >= 1, attrs  # the check below is exercised, not vacuous
    assert attrs["data-unboxed"] == "", attrs
    assert attrs["data-page-overflow"] == "false", attrs
    assert int(attrs["data-labels"]) > 50 and attrs["data-wrapped"] == "", attrs
    assert "CLIP (zero-shot)" in dom.stdout


def _text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.split("<script>")[0]))


def test_page_states_settings_and_each_selection_once(full_report):
    page = full_report.html_path.read_text(encoding="utf-8")
    settings = re.search(r'<table class="settings" id="settings">(.*?)</table>', page, re.S)
    assert settings, "no settings table"
    rows = [[html.unescape(c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", tr)]
            for tr in re.findall(r"<tr>(.*?)</tr>", settings.group(1))]
    assert rows[0] == ["dataset", "method", "backbone", "weights", "steps", "lr", "batch", "hyper-parameters",
                       "seeds", "runs"]
    by = {(r[0], r[1]): r for r in rows[1:]}
    # The fakes' config.yaml: clipood-tiny, no weights, 4 steps, lr 1e-5 (OfficeHome 2e-5), 6 (8) per domain.
    assert by[("PACS", "CLIPood (MMS + BMA)")][2:7] + by[("PACS", "CLIPood (MMS + BMA)")][8:9] == \
        ["clipood-tiny", "none", "4", "1e-05", "6 × 3 domains, 6 × 2 domains", "0, 1"]
    assert by[("OfficeHome", "CLIPood (MMS + BMA)")][2:7] + by[("OfficeHome", "CLIPood (MMS + BMA)")][8:9] == \
        ["clipood-tiny", "none", "4", "2e-05", "8 × 3 domains", "0, 1"]
    # the hyper-parameters its loss (MMS: lambda) and averager (BMA: beta) declare; ERM's (linear, none) declare none
    chosen = [r for r in full_report.records if r.dataset == "OfficeHome" and r.method == "clipood"
              and id(r) in {id(x) for x in select(full_report.records, MODES[0])[0]}]
    values = lambda k: " / ".join(dict.fromkeys(f"{r.hparams[k]:g}" for r in chosen))  # noqa: E731
    assert by[("OfficeHome", "CLIPood (MMS + BMA)")][7] == f"lambda {values('lambda')}, beta {values('beta')}"
    assert by[("PACS", "ERM (linear head)")][7] == "-"
    assert page.index('id="settings"') < page.index('id="results"')  # beside the results, before them
    text = _text(page)
    assert "CLIP ViT-B/16 (OpenAI weights), 5000 steps" in text
    for mode in MODES:
        statement = full_report.selections[mode].statement()
        assert text.count(statement) == 1, mode
        assert full_report.markdown.count(statement) == 1, mode
    assert text.count("Model selection:") == len(MODES)


def test_report_command(full_report, tmp_path, capsys):
    for command in ("report", "sweep"):
        with pytest.raises(SystemExit) as e:
            main([command, "--help"])
        assert e.value.code == 0 and f"usage: clipood {command}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for option in ("--out", "--no-plots", "--error {std,sem}", "standard error", "report.tex"):
        assert option in help_text, option
    runs = full_report.out_dir.parent / "runs"
    assert main(["report", str(runs), "--out", str(tmp_path / "r"), "--no-plots", "--error", "sem"]) == 0
    out = capsys.readouterr().out
    assert "### Table 1 layout: PACS" in out and "Model selection" in out and (tmp_path / "r" / "index.html").is_file()
    assert "mean ± standard error" in out and (tmp_path / "r" / "report.tex").is_file()
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("clipood: error: report: no finished runs under") and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        main(["report", str(runs), "--error", "var"])
    assert e.value.code == 2 and "invalid choice: 'var'" in capsys.readouterr().err
