"""Open a published asv site in headless Chromium, as a reader would, and report what it shows.

Serves the site over a local HTTP server (asv's site does not work from file://), drives Debian's
``chromium`` through ``chromedriver`` with selenium, and checks three things: the benchmark list
loads, a benchmark's graph renders, and the regressions page lists what ``regressions.json`` holds.

Usage: ``python -m site_assets.browse html --screenshot docs/img/site.png``
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,900")


@dataclass
class SiteView:
    """What the browser showed: benchmark names in the list, whether a graph drew, regression rows."""

    benchmarks: list[str] = field(default_factory=list)
    graph_rendered: bool = False
    graph_points: int = 0
    graph_benchmark: str = ""
    regressions_text: str = ""
    js_errors: list[str] = field(default_factory=list)


def find_browser() -> tuple[str, str]:
    """Paths of chromium and chromedriver, or a one-line error saying how to install them."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        raise RuntimeError("chromium/chromedriver not found: apt-get install chromium chromium-driver")
    return chromium, driver


@contextlib.contextmanager
def serve(directory: Path):
    """Serve ``directory`` on a free localhost port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output readable
        pass


def driver(tmp_profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
    return webdriver.Chrome(service=Service(driver_path), options=options)


def view_site(html_dir: Path, benchmark: str | None = None, screenshot: Path | None = None,
              profile_dir: Path | None = None, timeout_s: float = 30.0) -> SiteView:
    """Load the site in Chromium and return what it showed; optionally save a PNG of a graph."""
    import tempfile

    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    if not (html_dir / "index.html").is_file():
        raise FileNotFoundError(f"{html_dir}/index.html not found: run `asv publish` first")
    view = SiteView()
    with serve(html_dir) as base, tempfile.TemporaryDirectory(dir=profile_dir) as profile:
        browser = driver(Path(profile))
        wait = WebDriverWait(browser, timeout_s)
        try:
            browser.get(f"{base}/index.html#/summarylist")
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#summarylist-body table tbody tr")))
            rows = browser.find_elements(By.CSS_SELECTOR, "#summarylist-body table tbody tr td:first-child")
            view.benchmarks = [r.text.strip() for r in rows if r.text.strip()]
            view.graph_benchmark = benchmark or _first_benchmark_id(browser)
            browser.get(f"{base}/index.html#{view.graph_benchmark}")
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#main-graph canvas.flot-base")))
            try:  # the graph's data arrive after its axes are drawn
                WebDriverWait(browser, timeout_s / 3).until(lambda b: count_graph_points(b) > 0)
            except TimeoutException:
                pass
            view.graph_points = count_graph_points(browser)
            view.graph_rendered = view.graph_points > 0
            if screenshot:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                browser.save_screenshot(str(screenshot))
            browser.get(f"{base}/index.html#/regressions")
            wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#regressions-body table, "
                                                 "#regressions-body .regression-div, #regressions-body p"))
            view.regressions_text = browser.find_element(By.ID, "regressions-body").text
            view.js_errors = [e["message"] for e in browser.get_log("browser")
                              if "favicon" not in e["message"]]
        finally:
            browser.quit()
    return view


def screenshot_page(html_dir: Path, page: str, path: Path, width: int = 1400, height: int | None = None,
                    profile_dir: Path | None = None) -> list[str]:
    """Save a PNG of ``html_dir/page``, ``height`` pixels of it (default: as tall as the page);
    returns the browser's error log lines."""
    import tempfile

    with serve(html_dir) as base, tempfile.TemporaryDirectory(dir=profile_dir) as profile:
        browser = driver(Path(profile))
        try:
            browser.get(f"{base}/{page}")
            height = height or browser.execute_script("return document.documentElement.scrollHeight;")
            browser.set_window_size(width, int(height) + 140)  # + the window's own chrome
            path.parent.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(path))
            return [e["message"] for e in browser.get_log("browser") if "favicon" not in e["message"]]
        finally:
            browser.quit()


def _first_benchmark_id(browser) -> str:
    return browser.execute_script(
        "return Object.keys($.asv.main_json.benchmarks).sort()[0];")


def count_graph_points(browser) -> int:
    """Points flot plotted in the main graph (an axes-only graph has none)."""
    return int(browser.execute_script("""
        const plot = $('#main-graph').data('plot');
        if (!plot) return 0;
        let n = 0;
        for (const series of plot.getData())
            for (const point of series.data) if (point && point[1] !== null) n++;
        return n;"""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("html_dir", type=Path, nargs="?", default=Path("html"))
    parser.add_argument("--benchmark", help="benchmark id to graph (default: first in the list)")
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the graph page here")
    parser.add_argument("--page", help="only save a PNG of this page (e.g. overview.html) to --screenshot")
    parser.add_argument("--size", default="1400x0", help="--page's window WIDTHxHEIGHT in pixels "
                                                         "(height 0: the whole page)")
    args = parser.parse_args(argv)
    if args.page:
        if not args.screenshot:
            parser.error("--page needs --screenshot")
        width, _, height = args.size.partition("x")
        for err in screenshot_page(args.html_dir, args.page, args.screenshot, int(width), int(height or 0) or None):
            print("browser error:", err)
        print(f"wrote {args.screenshot}")
        return 0
    try:
        view = view_site(args.html_dir, args.benchmark, args.screenshot)
    except (RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"benchmarks listed: {len(view.benchmarks)}")
    print(f"graph of {view.graph_benchmark}: {view.graph_points} points plotted")
    print("regressions page:", view.regressions_text.splitlines()[:5])
    for err in view.js_errors:
        print("browser error:", err)
    return 0 if view.benchmarks and view.graph_rendered else 1


if __name__ == "__main__":
    sys.exit(main())
