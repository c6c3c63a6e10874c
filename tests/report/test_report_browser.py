"""The report in a real browser: headless Debian Chromium driven by Playwright (no browser download).

Skipped only outside CI when Chromium or the ``playwright`` package is missing; in CI (``CI`` set)
it must run (``.ci/install_chromium.sh`` installs Chromium).
"""
from __future__ import annotations

import os
import shutil

import pytest

from visiontune.run import write_report
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
    """Load ``html_path`` via file:// in headless Chromium; return console errors, image sizes, the text of
    the first screen, the section titles in order and the images that do not fit the page.

    Saves a full-page screenshot to ``screenshot_path``, and the first and last screens beside it
    (``<name>-top.png``, ``<name>-bottom.png``).
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
            # an image is clipped when it reaches past the page's width or is shown narrower than its
            # pixels would need to stay legible (squeezed below 60 %)
            clipped = page.evaluate(
                """() => { const w = document.documentElement.clientWidth;
                      return Array.from(document.images).filter(i => { const r = i.getBoundingClientRect();
                        return r.left < 0 || r.right > w + 1 || (i.naturalWidth > 0 && r.width < 0.6 * Math.min(
                          i.naturalWidth, w - 40)); }).map(i => i.alt); }"""
            )
            scroll_width = page.evaluate("() => document.documentElement.scrollWidth")
            client_width = page.evaluate("() => document.documentElement.clientWidth")
            headings = page.evaluate("() => Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
            first_screen = page.evaluate(
                """() => Array.from(document.querySelectorAll('body *')).filter(e => {
                      const r = e.getBoundingClientRect(); return e.children.length === 0 && r.height > 0 &&
                      r.top >= 0 && r.bottom <= window.innerHeight; }).map(e => e.textContent).join(' | ')"""
            )
            atomic_write_bytes(screenshot_path, page.screenshot(full_page=True))
            stem = screenshot_path.with_suffix("")
            atomic_write_bytes(stem.parent / f"{stem.name}-top.png", page.screenshot())
            page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
            atomic_write_bytes(stem.parent / f"{stem.name}-bottom.png", page.screenshot())
        finally:
            browser.close()
    return {"errors": errors, "images": images, "title": title, "clipped": clipped, "headings": headings,
            "first_screen": first_screen, "overflow": scroll_width > client_width}


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
    for name in ("report-top.png", "report-bottom.png"):
        with Image.open(run_folder / name) as im:
            assert im.size == (1200, 900)
    # the answer is on the first screen; the configuration comes last
    assert result["headings"][0] == "Summary" and result["headings"][-1] == "Run configuration"
    for text in ("accuracy | 0.9412", "TTA accuracy | 0.9542", "log loss", "wall time | 1 min 35 s", "Per class",
                 "precision", "ants", "wasps"):
        assert text in result["first_screen"], (text, result["first_screen"][:2000])
    assert result["clipped"] == [] and not result["overflow"]


def test_checker_sees_a_clipped_figure(tmp_path):
    """The clipping check is not vacuous: an image wider than the page, squeezed into a narrow box, is caught."""
    from visiontune.report.embed import _img_tag
    from visiontune.report.figures import _figure, fig_to_png_bytes

    png = fig_to_png_bytes(_figure(8, 2))
    page = tmp_path / "wide.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><title>wide</title></head><body>'
                    f'<div style="width:3000px">{_img_tag(png, "too wide")}</div>'
                    f'<div style="width:150px">{_img_tag(png, "squeezed").replace("<img ", "<img width=150 ")}'
                    "</div></body></html>")
    result = check_in_browser(page, tmp_path / "wide.png", tmp_path)
    assert result["overflow"] and "squeezed" in result["clipped"]


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
