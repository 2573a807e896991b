"""Publish the history site: every machine's results, assets served locally, badges.

``asv publish`` reads benchmark definitions from ``results/benchmarks.json`` only, and every
``asv run`` rewrites that file with what the *current* machine defines: GPU-only benchmarks
(peak CUDA memory, largest fit) vanish after a CPU run, and so would their GPU history on the site.
Profiles also differ in their parameter grids (quick: 1K-2K tokens in float32; full: 4K-32K in
bf16), and the site's parameter menus come from ``benchmarks.json`` alone. A run on another
machine keeps its definitions as ``results/benchmarks-<machine>.saved`` (JSON; not ``.json``,
which asv would try to read as a result file); this adds the definitions
missing from ``benchmarks.json`` and, for one defined in both, the parameter values it lacks (asv
maps every stored result to the published grid by value, so each machine's results find their
place). Then it runs ``asv publish``, removes the rises of throughput and capacity benchmarks
from the Regressions page (``tools.lib.site_regressions``), points the site at local copies of its
JavaScript (``site_assets``), writes the landing page ``overview.html`` (``tools.lib.landing``)
and links it from asv's navigation, and writes the badges.

The whole site is built in a temporary directory beside ``html/`` and swapped in only when every
step succeeded: a bad result or machine file, or any failing step, leaves the published site as
it was.

Usage: ``python -m tools.publish [--config asv.conf.json] [--results results] [--html html]``
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from site_assets.localize import localize
from site_assets.navigation import link_landing
from tools import cli
from tools.lib.errors import ToolError
from tools.lib.files import write_text_atomic
from tools.lib.landing import PAGE, headline_badge, load_sections, render_landing
from tools.lib.series import machine_dirs
from tools.lib.site_regressions import drop_backwards_regressions, show_verdicts
from tools.lib.verdicts import verdicts_for


def _json_object(path: Path) -> dict:
    """A JSON object of benchmark definitions from ``path``; ToolError naming the file otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ToolError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ToolError(f"{path} does not hold a JSON object of benchmark definitions")
    return data


def merge_saved_definitions(results_dir: Path) -> list[str]:
    """Merge results/benchmarks-*.saved into benchmarks.json; return the names added or widened."""
    target = results_dir / "benchmarks.json"
    if not target.is_file():
        raise ToolError(f"{target} not found: run `asv run` first")
    merged = _json_object(target)
    changed = []
    for saved in sorted(results_dir.glob("benchmarks-*.saved")):
        definitions = _json_object(saved)
        for name, definition in definitions.items():
            if name not in merged:
                merged[name] = definition
                changed.append(name)
                continue
            if _widen_params(merged[name], definition):
                changed.append(name)
            _warn_version(name, merged[name], definition, saved)
    if changed:
        write_text_atomic(str(target), json.dumps(merged, indent=4, sort_keys=True))
    return changed


def _warn_version(name: str, current: dict, other: dict, saved: Path) -> None:
    # asv shows only results whose benchmark version (a hash of its code) matches benchmarks.json.
    if not isinstance(current, dict) or not isinstance(other, dict):
        return  # the file's own format "version" number
    mine, theirs = current.get("version"), other.get("version")
    if mine and theirs and mine != theirs:
        print(f"warning: {name}: {saved.name} was written by other benchmark code (version "
              f"{theirs[:8]} vs {mine[:8]}); results of that version are not shown: run both "
              f"machines on the same benchmarks", file=sys.stderr)


def _widen_params(current: dict, other: dict) -> bool:
    """Add ``other``'s parameter values to ``current`` (same parameter names only)."""
    if not isinstance(current, dict) or current.get("param_names") != other.get("param_names"):
        return False
    widened = False
    for values, extra in zip(current.get("params", []), other.get("params", [])):
        missing = [v for v in extra if v not in values]
        if missing:
            values.extend(missing)
            values.sort(key=_param_order)
            widened = True
    return widened


def _param_order(value: str):
    """Numbers by value, then everything else in text order (values are reprs: "4096", "'bf16'")."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _commit_order(config: Path) -> dict[str, int] | None:
    """asv's commit order from the configured repository; None where it cannot be read (the
    landing page then orders commits by the dates in the result files)."""
    from tools.lib.series import git_commit_order

    try:
        repo = json.loads(_strip_comments(config.read_text())).get("repo", ".")
        return git_commit_order(str((config.parent / repo).resolve()))
    except (OSError, ValueError, ToolError):  # not a git checkout: dates are a fine fallback
        return None


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


def _run(step: str, command: list[str]) -> None:
    done = subprocess.run(command)
    if done.returncode != 0:
        raise ToolError(f"{step} failed (exit status {done.returncode}); the published site is unchanged")


def _headline_badge(html: Path, headline: tuple[str, str] | None) -> None:
    """``badges/headline.svg``: the landing page's first headline, e.g. "20.3x vs fastest dense"."""
    from tools.badges import BLUE, GREY, render_badge

    label, value = headline or ("speed-up vs fastest dense", "not measured")
    (html / "badges").mkdir(exist_ok=True)
    write_text_atomic(str(html / "badges" / "headline.svg"), render_badge(label, value, BLUE if headline else GREY))


def swap_in(new: Path, html: Path) -> None:
    """Make ``new`` the site at ``html``: two renames, the old site deleted only after both."""
    old = None
    if html.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{html.name}-old-", dir=html.parent))
        os.replace(html, old / html.name)
    os.replace(new, html)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_site(config: Path, results: Path, html: Path, badges: bool = True) -> Path:
    """Build the whole site beside ``html`` and swap it in; on any failure ``html`` is untouched."""
    machine_dirs(str(results))  # an unreadable machine.json: stop here, before anything is built
    added = merge_saved_definitions(results)
    print(f"benchmarks.json: {len(added)} definition(s) added or widened from other machines' runs")
    sections = load_sections(results, _commit_order(config))  # every machine read before anything is built
    verdicts = verdicts_for(str(results))  # judged once: the landing page and asv's Regressions page
    landing = render_landing(results, sections=sections, verdicts=verdicts)
    html = html.resolve()
    html.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{html.name}-new-", dir=html.parent))
    try:
        _run("asv publish", [sys.executable, "-m", "asv", "publish", "--config", str(config),
                             "--html-dir", str(new)])
        dropped = drop_backwards_regressions(new, results / "benchmarks.json")
        kept, unconfirmed = show_verdicts(new, verdicts, results / "benchmarks.json")
        print(f"regressions page: {kept} confirmed verdict(s) shown; {dropped} rise(s) of throughput/capacity "
              f"and {unconfirmed} unconfirmed step(s) of asv's removed (tools.report lists the candidates)")
        print(f"index.html: {len(localize(new))} CDN reference(s) served from vendor/")
        write_text_atomic(str(new / PAGE), landing)
        link_landing(new, PAGE)
        if badges:
            _run("tools.badges", [sys.executable, "-m", "tools.badges", "--results", str(results),
                                  "--html", str(new)])
            _headline_badge(new, headline_badge(sections))
        swap_in(new, html)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    return html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=Path("asv.conf.json"))
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--html", type=Path, default=Path("html"))
    parser.add_argument("--no-badges", action="store_true")
    args = parser.parse_args(argv)
    html = build_site(args.config, args.results, args.html, badges=not args.no_badges)
    print(f"site: {html}/{PAGE}  (serve it: make preview, then open http://127.0.0.1:8080)")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
