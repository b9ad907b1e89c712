"""The HTML page rendered in headless Chromium, and the report command."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from fakes import _assert_png_has_content

from clipood.cli import main


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_report_renders_in_headless_chromium(full_report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed and could not be installed here (make test installs the Debian "
                    "package 'chromium' with apt-get when run as root); HTML render check skipped")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000", "--virtual-time-budget=5000"]
    url = full_report.html_path.resolve().as_uri()
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body, dom.stdout[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
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


def test_report_command(full_report, tmp_path, capsys):
    for command in ("report", "sweep"):
        with pytest.raises(SystemExit) as e:
            main([command, "--help"])
        assert e.value.code == 0 and f"usage: clipood {command}" in capsys.readouterr().out
    runs = full_report.out_dir.parent / "runs"
    assert main(["report", str(runs), "--out", str(tmp_path / "r"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "### Table 1 layout: PACS" in out and "Model selection" in out and (tmp_path / "r" / "index.html").is_file()
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("clipood: error: report: no finished runs under") and len(err.splitlines()) == 1


