"""Point a published asv site at local copies of the JavaScript/CSS it loads from CDNs.

asv's ``index.html`` pulls jQuery, flot, bootstrap and friends from public CDNs, so the site shows
nothing on an offline machine, behind a strict proxy, or in CI without network. This rewrites those
references to ``vendor/`` next to ``index.html`` (MIT-licensed copies from npm, kept in
``site_assets/vendor``). Idempotent: a second run finds nothing left to rewrite.

Usage: ``python -m site_assets.localize html``
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

VENDOR_DIR = Path(__file__).parent / "vendor"
# src="https://..." or href="https://..." plus the SRI/CORS attributes that only make sense for a CDN.
CDN_REF = re.compile(r'(src|href)="(https?://[^"]+)"')
CDN_ATTRS = re.compile(r'\s+(integrity|crossorigin|referrerpolicy)="[^"]*"')


def local_name(url: str, available: set[str]) -> str:
    """The vendored file that replaces ``url``: same file name, or the same minus ``.min``."""
    name = url.rsplit("/", 1)[-1]
    for candidate in (name, name.replace(".min.", ".")):
        if candidate in available:
            return candidate
    raise SystemExit(f"error: no local copy of {url} in {VENDOR_DIR} (asv's site changed its assets?)")


def localize(html_dir: Path) -> list[str]:
    """Rewrite ``html_dir/index.html`` in place; return the URLs replaced."""
    index = html_dir / "index.html"
    if not index.is_file():
        raise SystemExit(f"error: {index} not found: run `asv publish` first")
    available = {p.name for p in VENDOR_DIR.iterdir()}
    replaced: list[str] = []

    def swap(match: re.Match) -> str:
        attr, url = match.groups()
        if attr == "href" and not url.endswith(".css"):
            return match.group(0)  # ordinary links (project URL), not assets
        replaced.append(url)
        return f'{attr}="vendor/{local_name(url, available)}"'

    text = CDN_REF.sub(swap, index.read_text())
    text = CDN_ATTRS.sub("", text)
    target = html_dir / "vendor"
    target.mkdir(exist_ok=True)
    for path in VENDOR_DIR.iterdir():
        shutil.copy2(path, target / path.name)
    index.write_text(text)
    return replaced


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("html_dir", type=Path, nargs="?", default=Path("html"),
                        help="the directory asv publish wrote (default: html)")
    args = parser.parse_args(argv)
    replaced = localize(args.html_dir)
    print(f"{args.html_dir}/index.html: {len(replaced)} CDN reference(s) now served from vendor/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
