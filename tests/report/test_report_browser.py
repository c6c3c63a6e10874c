"""The report in a real browser: headless Debian Chromium driven by Playwright (no browser download).

Skipped only outside CI when Chromium or the ``playwright`` package is missing; in CI (``CI`` set)
it must run (``.ci/install_chromium.sh`` installs Chromium).
"""
from __future__ import annotations

import os
import shutil

import pytest

from visiontune.report import write_report
from visiontune.utils.atomic import atomic_write_bytes

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def check_in_browser(html_path, screenshot_path, tmp_dir) -> dict:
    """Load ``html_path`` via file:// in headless Chromium; return console errors and image sizes.

    Saves a full-page screenshot to ``screenshot_path``.
    """
    exe = _chromium()
    in_ci = bool(os.environ.get("CI"))
    if exe is None and not in_ci:
        pytest.skip("chromium is not installed (run .ci/install_chromium.sh)")
    assert exe is not None, "chromium is not installed: .ci/install_chromium.sh must run before the tests in CI"
    if in_ci:
        from playwright.sync_api import sync_playwright
    else:
        sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_dir / "chromium-profile"), executable_path=exe, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url[:80]}"))
            page.goto(html_path.resolve().as_uri(), wait_until="load")
            images = page.evaluate(
                """() => Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,
                      w: i.naturalWidth, h: i.naturalHeight}))"""
            )
            title = page.title()
            atomic_write_bytes(screenshot_path, page.screenshot(full_page=True))
        finally:
            browser.close()
    return {"errors": errors, "images": images, "title": title}


def test_report_in_chromium(run_folder, tmp_path):
    html_path = write_report(run_folder)
    result = check_in_browser(html_path, run_folder / "report.png", tmp_path)
    assert result["errors"] == []
    assert "visiontune report" in result["title"]
    assert len(result["images"]) >= 10
    bad = [i for i in result["images"] if not (i["complete"] and i["w"] > 0 and i["h"] > 0)]
    assert bad == [], bad
    shot = run_folder / "report.png"
    assert shot.is_file() and shot.stat().st_size > 10_000
    from PIL import Image

    with Image.open(shot) as im:
        assert im.format == "PNG" and im.width >= 1000


def test_checker_sees_errors_and_broken_images(tmp_path):
    """The browser check is not vacuous: a script error and an undecodable image are caught."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>bad</title></head><body>'
        '<img src="data:image/png;base64,iVBORw0KGgo=" alt="broken">'
        "<script>console.error('boom'); throw new Error('oops');</script></body></html>"
    )
    result = check_in_browser(page, tmp_path / "bad.png", tmp_path)
    assert any("boom" in e for e in result["errors"]) and any("oops" in e for e in result["errors"])
    assert result["images"][0]["w"] == 0
