"""Open a report in headless Chromium: which figures the browser decoded, and a screenshot of the page.

The page records on load which `img[data-figure]` have `naturalWidth > 0` (see `accelsim.report.html`); the DOM
that Chromium dumps after loading carries that record, so the check needs no WebDriver or DevTools client.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from accelsim.errors import AccelsimError, MissingDependencyError

log = logging.getLogger(__name__)

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--hide-scrollbars", "--virtual-time-budget=5000")


def find_browser() -> str | None:
    """The Chromium to use: $ACCELSIM_BROWSER if set, else the first of BROWSERS on PATH; None when there is none."""
    env = os.environ.get("ACCELSIM_BROWSER")
    if env:
        return env if shutil.which(env) or Path(env).is_file() else None
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


@dataclass(frozen=True)
class BrowserCheck:
    """What the browser showed: figures the page holds, those it decoded, and whether the screenshot has content."""

    expected: tuple[str, ...]
    loaded: tuple[str, ...]
    screenshot: Path
    blank: bool

    @property
    def ok(self) -> bool:
        return bool(self.expected) and set(self.loaded) == set(self.expected) and not self.blank


class _RenderCheck(HTMLParser):
    """Finds the attributes of <div id="render-check"> in a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict((k, v or "") for k, v in attrs)
        if found.get("id") == "render-check":
            self.attrs = found


def _run(browser: str, args: list[str], profile: Path, timeout: float) -> subprocess.CompletedProcess:
    cmd = [browser, *_FLAGS, f"--user-data-dir={profile}", *args]
    env = {**os.environ, "HOME": str(profile)}  # Chromium writes caches under $HOME
    try:
        return subprocess.run(cmd, capture_output=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise AccelsimError(f"{browser} did not finish within {timeout:.0f} s: {' '.join(cmd)}") from None


def is_blank(png: Path) -> bool:
    """True when a screenshot is (nearly) one colour: nothing was drawn."""
    from PIL import Image, ImageStat

    with Image.open(png) as img:
        gray = img.convert("L")
        return max(ImageStat.Stat(gray).stddev) < 2.0


def check_in_browser(html: str | Path, screenshot: str | Path, browser: str | None = None,
                     window: tuple[int, int] = (1400, 3000), timeout: float = 90.0) -> BrowserCheck:
    """Load `html` in headless Chromium: dump the DOM (the figures it decoded) and save a screenshot to `screenshot`."""
    browser = browser or find_browser()
    if browser is None:
        raise MissingDependencyError(f"no Chromium found (looked for {', '.join(BROWSERS)} and $ACCELSIM_BROWSER); "
                                     "install it, e.g. apt-get install chromium")
    url = Path(html).resolve().as_uri()
    screenshot = Path(screenshot).resolve()
    with tempfile.TemporaryDirectory(prefix="accelsim-chromium-") as tmp:
        dom = _run(browser, ["--dump-dom", url], Path(tmp) / "dom", timeout)
        if dom.returncode != 0:
            raise AccelsimError(f"{browser} --dump-dom failed ({dom.returncode}): "
                                f"{dom.stderr.decode(errors='replace')[-2000:]}")
        shot = _run(browser, [f"--screenshot={screenshot}", f"--window-size={window[0]},{window[1]}", url],
                    Path(tmp) / "shot", timeout)
        if shot.returncode != 0 or not screenshot.is_file():
            raise AccelsimError(f"{browser} --screenshot failed ({shot.returncode}): "
                                f"{shot.stderr.decode(errors='replace')[-2000:]}")
    parser = _RenderCheck()
    parser.feed(dom.stdout.decode("utf-8", errors="replace"))
    if parser.attrs is None or parser.attrs.get("data-done") != "1":
        raise AccelsimError(f"{html}: the page's load script did not run in {browser} (no #render-check record)")
    return BrowserCheck(expected=tuple(parser.attrs.get("data-expected", "").split()),
                        loaded=tuple(parser.attrs.get("data-loaded", "").split()),
                        screenshot=screenshot, blank=is_blank(screenshot))
