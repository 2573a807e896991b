"""The landing page in headless Chromium, built by tools.publish from the committed results.

The page's numbers are checked against the result files read here with plain ``json`` (not
asv's API, not the page's code): every figure, every plotted point, every ratio's baseline (the
fastest dense kernel at that commit and shape), and the commit each machine is judged at. Every
link into asv's site must open a graph with points on it.
"""
from __future__ import annotations

import functools
import itertools
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from browser_helpers import find_browser_or_skip
from site_assets.browse import count_graph_points, driver, serve
from tools.lib.peaks import peak_tflops

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
BYTES = {"'bfloat16'": 2, "'float16'": 2, "'float32'": 4, "'float64'": 8}
FORWARD = "bench_time.TimeForward.time_forward"
SDPA = "bench_sdpa.SdpaBackends.time_forward"


def asv_config(tmp: Path) -> Path:
    """The repository's asv config, reading results from and publishing under ``tmp``."""
    text = (REPO / "asv.conf.json").read_text()
    for key, value in (("repo", str(REPO)), ("results_dir", str(tmp / "results")),
                       ("html_dir", str(tmp / "html"))):
        text, n = re.subn(rf'"{key}": "[^"]*"', f'"{key}": {json.dumps(value)}', text)
        assert n == 1, key
    path = tmp / "asv.conf.json"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(html dir, results dir) of a site published from a copy of the committed results."""
    from tools.publish import build_site

    tmp = tmp_path_factory.mktemp("landing")
    shutil.copytree(REPO / "results", tmp / "results", ignore=shutil.ignore_patterns("logs"))
    cwd = os.getcwd()
    os.chdir(REPO)  # asv imports the config's plugin from the repository root
    try:
        build_site(asv_config(tmp), tmp / "results", tmp / "html")
    finally:
        os.chdir(cwd)
    return tmp / "html", tmp / "results"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    find_browser_or_skip()
    b = driver(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.quit()


# --- the result files, read independently ----------------------------------------------------

@functools.lru_cache(maxsize=None)
def result_files(results: Path, machine: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / machine).glob("*.json"))
            if p.name != "machine.json"]


def raw_value(results: Path, machine: str, benchmark: str, params: list[str], commit: str) -> float:
    """The value asv stored for ``benchmark`` at ``params`` in ``commit``'s result file."""
    for data in result_files(results, machine):
        if data["commit_hash"] != commit or benchmark not in data["results"]:
            continue
        entry = data["results"][benchmark]
        column = dict(zip(data["result_columns"], entry))
        combos = list(itertools.product(*column["params"]))
        if tuple(params) in combos:
            value = column["result"][combos.index(tuple(params))]
            assert value is not None, (benchmark, params, commit)
            return float(value)
    raise AssertionError(f"no value for {benchmark}{params} at {commit} on {machine}")


def all_values(results: Path, machine: str, benchmark: str, commit: str) -> dict[tuple, float]:
    out = {}
    for data in result_files(results, machine):
        if data["commit_hash"] == commit and benchmark in data["results"]:
            column = dict(zip(data["result_columns"], data["results"][benchmark]))
            for combo, value in zip(itertools.product(*column["params"]), column["result"]):
                if value is not None and value == value:
                    out[combo] = float(value)
    return out


def newest_forward_commit(results: Path, machine: str) -> str:
    measured = [d for d in result_files(results, machine)
                if any(v is not None for v in d["results"].get(FORWARD, [[None]])[0])]
    return max(measured, key=lambda d: d["date"])["commit_hash"]


def shown_number(text: str) -> tuple[float, float]:
    """(number, half a unit of its last digit) of a figure as printed: "1,234.5", "20.3x", "34.8%"."""
    match = re.fullmatch(r"([\d,]+(?:\.(\d+))?)\s*[x%]?", text.strip())
    assert match, f"not a number: {text!r}"
    decimals = len(match.group(2) or "")
    return float(match.group(1).replace(",", "")), 0.5 * 10 ** -decimals


def expected(kind: str, sources: list, results: Path, machine: str, peak: str | None) -> float:
    vals = [raw_value(results, machine, b, p, c) for b, p, c in sources]
    vals = [v * 1e3 if b.rsplit(".", 1)[-1].startswith("time_") else v  # seconds are shown as ms
            for v, (b, _, _) in zip(vals, sources)]
    if kind == "value":
        return vals[0]
    if kind == "ratio":
        return vals[0] / vals[1]
    if kind == "peak-fraction":
        return 100 * vals[0] / float(peak)
    if kind == "qkvo-fraction":
        _, seq_len, batch, heads, head_dim, dtype, _ = sources[0][1]
        qkvo_mib = 4 * int(batch) * int(seq_len) * int(heads) * int(head_dim) * BYTES[dtype] / 2 ** 20
        return vals[0] / qkvo_mib
    raise AssertionError(f"unknown data-kind {kind!r}")


def fastest_dense(results: Path, machine: str, params: list[str], commit: str) -> float:
    """Seconds of the fastest dense kernel at a forward's shape: DenseAttention and every SDPA
    backend at (seq_len, dtype, causal); SDPA's math backend only on a CPU."""
    gpu = bool(json.loads((results / machine / "machine.json").read_text()).get("gpu"))
    dense = ("'DenseAttention'",) + tuple(params[1:])
    candidates = [v for combo, v in all_values(results, machine, FORWARD, commit).items() if combo == dense]
    candidates += [v for combo, v in all_values(results, machine, SDPA, commit).items()
                   if combo[1:] == (params[1], params[5], params[6]) and not (gpu and combo[0] == "'math'")]
    return min(candidates)


# --- the page --------------------------------------------------------------------------------

def load(browser, url: str) -> list[str]:
    """Open ``url``; return what the browser logged as errors."""
    browser.get("about:blank")
    browser.get_log("browser")
    browser.get(url)
    return [e["message"] for e in browser.get_log("browser") if "favicon" not in e["message"]]


PAGE_FIGURES = """
return Array.from(document.querySelectorAll('section.machine')).map(s => ({
  machine: s.id.replace(/^machine-/, ''),
  commit: s.querySelector('p.where code.commit').textContent,
  facts: s.querySelector('dl.facts').textContent,
  rows: Array.from(s.querySelectorAll('table.headline tbody tr')).map(
      r => r.querySelector('[data-kind=value]').dataset.src),
  figures: Array.from(s.querySelectorAll('[data-src]')).map(e => ({
      kind: e.dataset.kind, src: e.dataset.src, peak: e.dataset.peak || null,
      text: e.tagName.toLowerCase() == 'circle' ? e.dataset.value : e.textContent}))}));
"""


def test_landing_numbers_equal_the_result_files(site, browser):
    html, results = site
    with serve(html) as base:
        errors = load(browser, f"{base}/overview.html")
        assert not errors, errors
        sections = browser.execute_script(PAGE_FIGURES)
    machines = sorted(p.parent.name for p in results.glob("*/machine.json"))
    assert sorted(s["machine"] for s in sections) == machines
    checked = 0
    for section in sections:
        machine = section["machine"]
        assert newest_forward_commit(results, machine).startswith(section["commit"])
        facts = json.loads((results / machine / "machine.json").read_text())
        assert section["figures"]
        for figure in section["figures"]:
            kind, sources = figure["kind"], json.loads(figure["src"])
            shown, half_unit = shown_number(figure["text"])
            want = expected(kind, sources, results, machine, figure["peak"])
            assert abs(shown - want) <= half_unit * 1.0001 + 1e-12, (machine, figure, want)
            if kind == "ratio":  # the baseline is the fastest dense kernel at that commit and shape
                _, params, at = sources[1]
                assert raw_value(results, machine, *sources[0]) == fastest_dense(results, machine, params, at)
            if kind == "peak-fraction":
                assert float(figure["peak"]) == peak_tflops(facts.get("gpu"), "bfloat16")
            checked += 1
        # one row per implementation measured at the headline shape of the newest commit
        _, params, commit = json.loads(section["rows"][0])[0]
        at_shape = [c for c in all_values(results, machine, FORWARD, commit) if c[1:] == tuple(params[1:])]
        assert len(section["rows"]) == len(at_shape)
        for key in ("gpu", "cpu", "torch", "os"):  # the machine facts are machine.json's
            if facts.get(key):
                assert facts[key] in section["facts"]
    assert checked > 100


def test_every_plot_renders(site, browser):
    from selenium.webdriver.common.by import By

    html, results = site
    with serve(html) as base:
        load(browser, f"{base}/overview.html")
        plots = browser.find_elements(By.CSS_SELECTOR, "svg.plot")
        machines = browser.find_elements(By.CSS_SELECTOR, "section.machine")
        assert len(plots) == 2 * len(machines)
        for svg in plots:
            box = svg.rect
            assert box["width"] > 300 and box["height"] > 200, box
            points = svg.find_elements(By.CSS_SELECTOR, "circle.point")
            lines = svg.find_elements(By.CSS_SELECTOR, "polyline")
            assert points and len(lines) == len(svg.find_elements(By.CSS_SELECTOR, "g.series"))
            for point in points:  # drawn inside the plot, not clipped off
                p = point.rect
                assert box["x"] <= p["x"] <= box["x"] + box["width"], (p, box)
                assert box["y"] <= p["y"] <= box["y"] + box["height"], (p, box)
        # each plot opens asv's graph, unless asv's site cannot show its results: then the page says so,
        # and it is so (the results were measured by another version of the benchmark than the site's)
        defined = json.loads((results / "benchmarks.json").read_text())[FORWARD]["version"]
        for section in machines:
            machine = section.get_attribute("id").removeprefix("machine-")
            for figure in section.find_elements(By.CSS_SELECTOR, "figure:has(svg.plot)"):
                if figure.find_elements(By.CSS_SELECTOR, "a.plot-link"):
                    continue
                assert figure.find_elements(By.CSS_SELECTOR, ".no-link"), (machine, figure.text)
                versions = {dict(zip(d["result_columns"], d["results"][FORWARD]))["version"]
                            for d in result_files(results, machine) if FORWARD in d["results"]}
                assert defined not in versions, (machine, versions)


def test_every_link_opens_an_asv_graph_with_points(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    html, _ = site
    with serve(html) as base:
        load(browser, f"{base}/overview.html")
        links = sorted({a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href]")
                        if "index.html#" in a.get_attribute("href") and "?" in a.get_attribute("href")})
        assert len(links) >= 4
        for url in links:
            errors = load(browser, url)
            WebDriverWait(browser, 20).until(lambda b: count_graph_points(b) > 0, message=f"no points: {url}")
            assert not errors, (url, errors)
        # asv's own navigation leads to the page; a bare index.html opens it
        load(browser, f"{base}/index.html#/summarylist")
        entry = browser.find_element(By.CSS_SELECTOR, "#nav-li-overview a")
        assert entry.get_attribute("href").endswith("/overview.html")
        load(browser, f"{base}/index.html")
        WebDriverWait(browser, 10).until(lambda b: b.current_url.endswith("/overview.html"))


def test_readme_badges_open_the_landing_page_and_exist_on_the_site(site):
    html, _ = site
    badges = re.findall(r"\[!\[[^\]]*\]\(html/(badges/[\w.-]+\.svg)\)\]\(html/([\w.-]+)\)",
                        (REPO / "README.md").read_text())
    assert {b for b, _ in badges} >= {"badges/headline.svg", "badges/regressions.svg"}
    for badge, page in badges:
        assert page == "overview.html" and (html / page).is_file()
        assert (html / badge).read_text().startswith("<svg")
    assert "vs fastest dense" in (html / "badges" / "headline.svg").read_text()
    from test_docs_links import PUBLISHED  # the links into html/ the docs' link check accepts

    for path in PUBLISHED:
        assert (html / Path(path).relative_to("html")).is_file(), path


NOISE_TABLES = """
return Array.from(document.querySelectorAll('section.machine')).map(s => ({
  machine: s.id.replace(/^machine-/, ''),
  floors: Array.from(s.querySelectorAll('table.noise tbody tr')).map(
      r => Array.from(r.querySelectorAll('td')).map(td => td.textContent)),
  headline: Array.from(s.querySelectorAll('table.headline tbody tr')).filter(
      r => r.querySelector('td.noise-floor')).map(r => [
      r.querySelector('[data-kind=value]').dataset.src, r.querySelector('td.noise-floor').textContent])}));
"""


def test_noise_floors_equal_the_noise_files(site, browser):
    html, results = site
    with serve(html) as base:
        load(browser, f"{base}/overview.html")
        sections = browser.execute_script(NOISE_TABLES)
    checked = 0
    for section in sections:
        path = results / "noise" / f"{section['machine']}.json"
        if not path.is_file():
            assert not section["floors"] and not section["headline"], section["machine"]
            continue
        document = json.loads(path.read_text())
        entries = {(name, tuple(e["params"])): e for name, es in document["benchmarks"].items() for e in es}
        by_text = {(name, ", ".join(p.strip("'") for p in params)): e for (name, params), e in entries.items()}
        assert len(section["floors"]) == len(entries)
        for benchmark, params, within, between, mde, stable, runs in section["floors"]:
            entry = by_text[(benchmark, params)]
            for text, key in ((within, "within_cv"), (between, "between_cv"), (mde, "mde")):
                if entry[key] is None:
                    assert text == "—"
                    continue
                shown, half_unit = shown_number(text)
                assert abs(shown - 100 * entry[key]) <= half_unit * 1.0001, (benchmark, params, key, text)
                checked += 1
            assert stable == ("yes" if entry["stable"] else "no") and int(runs) == document["runs"]
        for src, text in section["headline"]:
            benchmark, params, _ = json.loads(src)[0]
            entry = entries.get((benchmark, tuple(params)))
            if entry is None or entry["mde"] is None:
                assert text == "—", (params, text)
                continue
            shown, half_unit = shown_number(text.removeprefix("±").removesuffix(" (unstable)"))
            assert abs(shown - 100 * entry["mde"]) <= half_unit * 1.0001, (params, text)
            assert text.endswith("(unstable)") != entry["stable"]
            checked += 1
    assert checked or not list((results / "noise").glob("*.json"))
