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
JavaScript (``site_assets``), and writes the badges.

Usage: ``python -m tools.publish [--config asv.conf.json]``
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from site_assets.localize import localize
from tools import cli
from tools.lib.errors import ToolError
from tools.lib.series import machine_dirs
from tools.lib.site_regressions import drop_backwards_regressions


def merge_saved_definitions(results_dir: Path) -> list[str]:
    """Merge results/benchmarks-*.saved into benchmarks.json; return the names added or widened."""
    target = results_dir / "benchmarks.json"
    if not target.is_file():
        raise ToolError(f"{target} not found: run `asv run` first")
    merged = json.loads(target.read_text())
    changed = []
    for saved in sorted(results_dir.glob("benchmarks-*.saved")):
        try:
            definitions = json.loads(saved.read_text())
        except json.JSONDecodeError as exc:
            raise ToolError(f"{saved} is not valid JSON ({exc})") from None
        for name, definition in definitions.items():
            if name not in merged:
                merged[name] = definition
                changed.append(name)
                continue
            if _widen_params(merged[name], definition):
                changed.append(name)
            _warn_version(name, merged[name], definition, saved)
    if changed:
        target.write_text(json.dumps(merged, indent=4, sort_keys=True))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="asv.conf.json")
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--html", type=Path, default=Path("html"))
    parser.add_argument("--no-badges", action="store_true")
    args = parser.parse_args(argv)

    machine_dirs(str(args.results))  # an unreadable machine.json: stop here, before the site is touched
    added = merge_saved_definitions(args.results)
    print(f"benchmarks.json: {len(added)} definition(s) added or widened from other machines' runs")
    subprocess.run([sys.executable, "-m", "asv", "publish", "--config", args.config], check=True)
    dropped = drop_backwards_regressions(args.html, args.results / "benchmarks.json")
    print(f"regressions page: {dropped} rise(s) of throughput/capacity benchmarks removed "
          "(asv has no direction; tools.report checks their drops)")
    print(f"{args.html}/index.html: {len(localize(args.html))} CDN reference(s) served from vendor/")
    if not args.no_badges:
        subprocess.run([sys.executable, "-m", "tools.badges", "--results", str(args.results),
                        "--html", str(args.html)], check=True)
    print(f"site: {args.html.resolve()}/index.html  (serve it: make preview, then open "
          "http://127.0.0.1:8080)")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
