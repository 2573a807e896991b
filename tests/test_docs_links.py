"""The docs point at things that exist, inside the repository, and describe the product.

Reads every tracked text file (``git ls-files``; a plain walk when git is unavailable) and checks:

- every relative link or image in a Markdown file resolves to a file or folder in the repository,
  and its ``#anchor``, when given, to a heading of the target Markdown file;
- every backticked repository path in a Markdown file (``attention/...``, ``docs/...``, ...) exists;
- every ``docs/...`` path named in code (docstrings, comments, scripts) exists;
- nothing refers to a path outside the repository (a link that climbs above the root, or the
  notes folder that lived beside it);
- no code, comment or doc narrates how the project was made: ticket numbers, people, work sessions.

Cheap: a few hundred small files, no imports of the package.
"""
from __future__ import annotations

import os
import re
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".sh", ".yml", ".yaml", ".txt", ".ini", ".cfg", ".toml"}
TEXT_NAMES = {"Makefile", "run"}  # .ci/run
SKIP_PREFIXES = ("site_assets/vendor/", "results/")  # third-party code; recorded data and raw logs
REPO_DIRS = ("attention", "tools", "benchmarks", "scripts", "tests", "docs", "results",
             "asv_plugins", "site_assets", ".github", ".ci")


@lru_cache(maxsize=None)
def tracked_files() -> tuple[str, ...]:
    """Repository-relative paths of the tracked files (a walk outside .venv/.asv/html without git)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
        names = [n for n in out.stdout.decode().split("\0") if n]
        if names:
            return tuple(names)
    except (OSError, subprocess.CalledProcessError):
        pass
    found = []
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") or d in (".github", ".ci")]
        dirs[:] = [d for d in dirs if d not in ("html", "__pycache__", "build")]
        found += [os.path.relpath(os.path.join(top, f), ROOT) for f in files]
    return tuple(sorted(found))


def text_files(suffixes: set[str] | None = None) -> list[str]:
    names = []
    for name in tracked_files():
        path = Path(name)
        if name.startswith(SKIP_PREFIXES) or not (ROOT / name).is_file():
            continue
        if suffixes is not None:
            if path.suffix in suffixes:
                names.append(name)
        elif path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES:
            names.append(name)
    return names


def markdown_files() -> list[str]:
    # results/ is skipped for the narrative scan (raw output), but its Markdown links still count.
    return [n for n in tracked_files() if n.endswith(".md") and not n.startswith("site_assets/vendor/")
            and (ROOT / n).is_file()]


def read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8", errors="replace")


_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def prose(markdown: str) -> str:
    """Markdown without fenced code blocks and inline code (link syntax there is not a link)."""
    return _CODE_SPAN.sub("", _FENCE.sub("", markdown))


# [text](target) and ![alt](target), plus reference definitions [x]: target. A target is a URL or
# a path (no spaces; not "*args" as in a quoted ``compiled[grid](*args)`` of a raw log).
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([\w.#/~%:+-][^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def links(markdown: str) -> list[str]:
    text = prose(markdown)
    return _LINK.findall(text) + _REF_DEF.findall(text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())  # a link: its text
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@lru_cache(maxsize=None)
def anchors(name: str) -> frozenset[str]:
    seen: dict[str, int] = {}
    result = set()
    for line in _FENCE.sub("", read(name)).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return frozenset(result)


def inside_repo(path: Path) -> bool:
    try:
        path.resolve().relative_to(ROOT)
    except ValueError:
        return False
    return True


# Files of the site `make publish` writes into the git-ignored html/ (README's badges link there);
# tests/test_site_landing.py builds the site and checks each of them is written.
PUBLISHED = frozenset({"html/overview.html", "html/badges/headline.svg", "html/badges/regressions.svg"})


def check_link(source: str, target: str) -> str | None:
    """None if ``target`` (as written in ``source``) resolves; else why not."""
    if _SCHEME.match(target) or target.startswith("//"):
        return None  # a URL: not checked here (no network in tests)
    path_part, _, anchor = target.partition("#")
    if os.path.normpath(os.path.join(os.path.dirname(source), path_part)) in PUBLISHED:
        return None
    if not path_part:
        dest_name = source
    else:
        dest = (ROOT / source).parent / path_part
        if path_part.startswith("/") or not inside_repo(dest):
            return "points outside the repository"
        if not dest.exists():
            return "does not exist"
        dest_name = os.path.relpath(dest.resolve(), ROOT)
    if anchor and dest_name.endswith(".md") and anchor.lower() not in anchors(dest_name):
        return f"has no heading for #{anchor}"
    return None


def test_markdown_links_resolve_inside_the_repository():
    problems = []
    for name in markdown_files():
        for target in links(read(name)):
            why = check_link(name, target)
            if why:
                problems.append(f"{name}: link {target} {why}")
    assert not problems, "\n".join(problems)


# A repository path in backticks: a known top-level folder, then path characters only. Paths with
# placeholders (<machine>, NAME, *, {}, ...) are patterns, not files, and are left alone.
_BACKTICK_PATH = re.compile(r"`((?:" + "|".join(re.escape(d) for d in REPO_DIRS) + r")/[\w./-]*)`")


def test_backticked_repository_paths_in_markdown_exist():
    problems = []
    for name in markdown_files():
        if name.startswith("docs/probes/"):
            continue  # raw probe output quotes the paths of the machine it ran on
        for path in _BACKTICK_PATH.findall(_FENCE.sub("", read(name))):
            here = (ROOT / name).parent / path
            if not ((ROOT / path).exists() or here.exists()):
                problems.append(f"{name}: `{path}` does not exist")
    assert not problems, "\n".join(problems)


_DOCS_PATH = re.compile(r"(?<![\w/.])docs/[\w./-]*\w")


def test_docs_paths_named_in_code_exist():
    problems = []
    for name in text_files():
        if name.endswith(".md") or name == "tests/test_docs_links.py":
            continue
        for number, line in enumerate(read(name).splitlines(), 1):
            for path in _DOCS_PATH.findall(line):
                if not (ROOT / path).exists():
                    problems.append(f"{name}:{number}: {path} does not exist")
    assert not problems, "\n".join(problems)


# Built from parts so that this file does not match itself.
_OUTSIDE = re.compile("|".join([
    r"\bshared" + r"/README",
    r"(?<![\w.])\.\./+shared\b",
    r"/work/" + r"(?:shared|wt)\b",
]))


def test_nothing_refers_to_paths_outside_the_repository():
    problems = []
    for name in text_files():
        for number, line in enumerate(read(name).splitlines(), 1):
            if _OUTSIDE.search(line):
                problems.append(f"{name}:{number}: {line.strip()[:100]}")
    assert not problems, "\n".join(problems)


_NARRATIVE = [
    ("a ticket number", re.compile(r"(?i)\b(?:issue|ticket|bug|pr|pull request)\s*#?\s*\d+\b")),
    ("a bare #number", re.compile(r"(?i)(?:^|(?<=[\s(\[]))(?<!commit )#\d{1,5}\b")),
    ("a person", re.compile(r"(?i:\bengineer)\s+[A-Z]\b")),
    ("a work session", re.compile(
        r"(?i)\b(?:this|that|last|previous|next|earlier|later|first|second|third|one)\s+sessions?\b"
        r"|\bsessions?\s+\d+\b|\bearlier sessions\b")),
    ("a work round", re.compile(
        r"(?i)\brounds?\s+of\s+(?:work|changes|fixes|review|edits)\b"
        r"|\b(?:this|last|previous|earlier)\s+round\b")),
]


def narrative(line: str) -> str | None:
    for what, pattern in _NARRATIVE:
        if pattern.search(line):
            return what
    return None


def test_no_narrative_of_how_the_project_was_made():
    problems = []
    for name in text_files():
        for number, line in enumerate(read(name).splitlines(), 1):
            what = narrative(line)
            if what:
                problems.append(f"{name}:{number}: {what}: {line.strip()[:100]}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("line", [
    "The GPU sweep of issue" + " 7 (bf16)",
    "see #" + "12 for the reason",
    "(Engineer" + " D's detector)",
    "measured in session" + " 2",
    "in this" + " session, host steps",
    "after one more rou" + "nd of changes",
])
def test_narrative_patterns_catch_the_forms_they_name(line):
    assert narrative(line) is not None


@pytest.mark.parametrize("line", [
    "-a rounds=R --append-samples: asv interleaves the rounds of both commits",
    "the per-round medians; each round is a separate process",
    'fill="#555"',
    "error at commit #1",
    "selenium: driver.session_id",
])
def test_narrative_patterns_leave_product_text_alone(line):
    assert narrative(line) is None


def test_link_checker_flags_dead_and_escaping_links():
    # The checker against a made-up source in docs/: a real target, a missing one, one above the root.
    assert check_link("docs/asv.md", "semantics.md") is None
    assert check_link("docs/asv.md", "semantics.md#cost") is None
    assert check_link("docs/asv.md", "semantics.md#no-such-heading") is not None
    assert check_link("docs/asv.md", "gpu.md") == "does not exist"
    assert check_link("docs/asv.md", "../../outside.md") == "points outside the repository"
    assert check_link("README.md", "https://asv.readthedocs.io") is None
    assert links("see `[a](b.md)` and [c](d.md)\n```\n[e](f.md)\n```\n") == ["d.md"]
