"""A headless Chromium (Debian's) driven by selenium and Debian's chromedriver, for the dashboard
tests; `chromium()` skips the test with the reason when either is missing.

`chromium(phone=True)` emulates a phone (a mobile viewport of the given width, which honours the
page's viewport meta tag, as a phone does); ``js=False`` turns JavaScript off in the first tab
(the driver's own calls still work there; a tab it opens has JavaScript). `screenshot_facts`
decodes a screenshot and says what a person would see in it; `overflowing` lists the elements
that stick out of the viewport.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import struct
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 1100, js: bool = True,
             phone: bool = False) -> Iterator[Any]:
    """A selenium WebDriver on a fresh profile, quit on exit."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("Debian's chromium and chromium-driver are not installed "
                    "(scripts/install-system-deps.sh installs them as root)")
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="otakit-chromium-") as profile:
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in ("--headless", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                     f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            opts.add_argument(flag)
        if phone:  # a desktop window is at least 500 px wide; a phone's viewport is not
            # (clicks stay mouse clicks: chromedriver's emulated tap hangs with JavaScript off)
            opts.add_experimental_option("mobileEmulation", {"deviceMetrics": {
                "width": width, "height": height, "pixelRatio": 1, "mobile": True,
                "touch": False}})
            # a phone's scroll indicator comes and goes (after a scroll or a focus): keep it out
            # of the screenshots
            opts.add_argument("--hide-scrollbars")
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        try:
            driver.set_page_load_timeout(30)
            driver.set_script_timeout(30)
            if not js:  # for this tab only (DevTools' "Disable JavaScript"), for its lifetime
                driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
            yield driver
        finally:
            driver.quit()


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", png[16:24])


# Runs in a blank tab: decode the PNG, count the pixels that differ from the page background
# (a blank or unstyled page has almost none) and those in the rightmost `margin` columns (the
# page's own padding: something there means the layout ran past the right edge).
_FACTS = """
const [b64, bg, margin, done] = arguments;
const img = new Image();
img.onerror = () => done(null);
img.onload = () => {
  const c = document.createElement("canvas");
  c.width = img.width; c.height = img.height;
  const g = c.getContext("2d");
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let painted = 0, edge = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (Math.abs(d[i] - bg[0]) + Math.abs(d[i + 1] - bg[1]) + Math.abs(d[i + 2] - bg[2]) > 24) {
      painted++;
      if ((i / 4) % c.width >= c.width - margin) edge++;
    }
  }
  done({width: c.width, height: c.height, painted: painted / (c.width * c.height), edge: edge});
};
img.src = "data:image/png;base64," + b64;
"""


def screenshot_facts(driver: Any, png: bytes, background: tuple[int, int, int],
                     margin: int) -> dict[str, Any]:
    """Decode ``png`` (in a new blank tab of ``driver``, closed after): its ``width`` and
    ``height``, the share of ``painted`` pixels (not ``background``) and the count of painted
    pixels in the rightmost ``margin`` columns (``edge``)."""
    first = driver.current_window_handle
    driver.switch_to.new_window("tab")
    try:
        driver.get("about:blank")
        facts = driver.execute_async_script(_FACTS, base64.b64encode(png).decode(),
                                            list(background), margin)
    finally:
        driver.close()
        driver.switch_to.window(first)
    assert facts is not None, "the screenshot is not a decodable PNG"
    return facts


_OVERFLOW = """
const w = document.documentElement.clientWidth;
const out = [];
for (const e of document.body.querySelectorAll("*")) {
  const r = e.getBoundingClientRect();
  if (r.width && (r.left < -0.5 || r.right > w + 0.5))
    out.push(e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + " " + Math.round(r.left) +
             ".." + Math.round(r.right));
}
const s = document.scrollingElement;
return {viewport: w, scrollWidth: s.scrollWidth, clientWidth: s.clientWidth, outside: out};
"""


def overflowing(driver: Any) -> dict[str, Any]:
    """The layout viewport's width, the page's scroll and client widths, and the elements whose
    box sticks out left or right of the viewport (``outside``)."""
    return driver.execute_script(_OVERFLOW)
