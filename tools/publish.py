"""Publish the history site: every machine's results, assets served locally, badges.

``asv publish`` reads benchmark definitions from ``results/benchmarks.json`` only, and every
``asv run`` rewrites that file with what the *current* machine defines: GPU-only benchmarks
(peak CUDA memory, largest fit) vanish after a CPU run, and so would their GPU history on the site.
A run on another machine keeps its definitions as ``results/benchmarks-<machine>.json``; this
adds the definitions missing from ``benchmarks.json`` (never changing one that is there), then
runs ``asv publish``, points the site at local copies of its JavaScript (``site_assets``), and
writes the badges.

Usage: ``python -m tools.publish [--config asv.conf.json]``
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from site_assets.localize import localize


def merge_saved_definitions(results_dir: Path) -> list[str]:
    """Add to benchmarks.json the definitions found only in results/benchmarks-*.json."""
    target = results_dir / "benchmarks.json"
    if not target.is_file():
        raise SystemExit(f"error: {target} not found: run `asv run` first")
    merged = json.loads(target.read_text())
    added = []
    for saved in sorted(results_dir.glob("benchmarks-*.json")):
        try:
            definitions = json.loads(saved.read_text())
        except json.JSONDecodeError as exc:
            raise SystemExit(f"error: {saved} is not valid JSON ({exc})") from None
        for name, definition in definitions.items():
            if name not in merged:
                merged[name] = definition
                added.append(name)
    if added:
        target.write_text(json.dumps(merged, indent=4, sort_keys=True))
    return added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="asv.conf.json")
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--html", type=Path, default=Path("html"))
    parser.add_argument("--no-badges", action="store_true")
    args = parser.parse_args(argv)

    added = merge_saved_definitions(args.results)
    print(f"benchmarks.json: {len(added)} definition(s) added from other machines' runs")
    subprocess.run([sys.executable, "-m", "asv", "publish", "--config", args.config], check=True)
    print(f"{args.html}/index.html: {len(localize(args.html))} CDN reference(s) served from vendor/")
    if not args.no_badges:
        subprocess.run([sys.executable, "-m", "tools.badges", "--results", str(args.results),
                        "--html", str(args.html)], check=True)
    print(f"site: {args.html.resolve()}/index.html  (serve it: make preview, then open "
          "http://127.0.0.1:8080)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
