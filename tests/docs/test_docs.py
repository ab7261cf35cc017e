"""The README and docs/ as a reader meets them: no dead link or anchor, code samples that import
only the package's public face, a README read in minutes, and every page opening by saying what it
covers. No network: links to other sites are not followed."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_WORD_LIMIT = 2200

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"`[^`]*`")
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\)")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
PACKAGE_IMPORT = re.compile(r"^\s*(?:from\s+(sagemaker_byo\S*)\s+import\b|import\s+(sagemaker_byo\S*))")


def split_code(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The lines outside fenced code blocks, and each block as (info string, body)."""
    prose, blocks, fence, info, body = [], [], None, "", []
    for line in text.splitlines():
        opened = FENCE.match(line)
        if fence is None and opened:
            fence, info, body = opened.group(1), line.strip()[3:].strip().lower(), []
        elif fence is not None and line.strip().startswith(fence):
            blocks.append((info, "\n".join(body)))
            fence = None
        elif fence is not None:
            body.append(line)
        else:
            prose.append(line)
    return prose, blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = INLINE_CODE.sub(lambda m: m.group(0).strip("`"), heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: Counter[str] = Counter()
    found = set()
    for line in split_code(page.read_text())[0]:
        if heading := HEADING.match(line):
            base = slug(heading.group(2))
            found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
            seen[base] += 1
    return found


def links(page: Path) -> list[str]:
    return [target for line in split_code(page.read_text())[0] for target in LINK.findall(INLINE_CODE.sub("", line))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_leads_somewhere(page: Path):
    dead = []
    for target in links(page):
        if SCHEME.match(target):
            continue  # another site: not followed
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            dead.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            dead.append(f"{target}: no heading with the anchor #{anchor} in {destination.name}")
    assert not dead, f"dead links in {page.name}:\n" + "\n".join(dead)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_python_samples_import_only_the_packages_public_face(page: Path):
    wrong = []
    for info, body in split_code(page.read_text())[1]:
        if info.split()[:1] not in (["python"], ["py"]):
            continue
        for line in body.splitlines():
            found = PACKAGE_IMPORT.match(line)
            if found and (found.group(2) is not None or found.group(1) != "sagemaker_byo"):
                wrong.append(line.strip())
    assert not wrong, f"{page.name}: import from `sagemaker_byo` itself, not its modules:\n" + "\n".join(wrong)


def test_the_readme_is_read_in_minutes():
    words = len(README.read_text().split())
    assert words <= README_WORD_LIMIT, f"README.md has {words} words; move detail to docs/ (limit {README_WORD_LIMIT})"


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_every_docs_page_opens_with_a_paragraph_on_what_it_covers(page: Path):
    content = [line for line in page.read_text().splitlines() if line.strip()]
    assert content and content[0].startswith("# "), f"{page.name} does not start with a title"
    first = content[1] if len(content) > 1 else ""
    blocks = ("#", "|", "```", "~~~", "- ", "* ", ">", "<", "!", "    ")  # heading, table, code, list, quote, HTML
    not_prose = first.startswith(blocks) or re.match(r"\d+\. ", first)
    assert first and not not_prose, f"{page.name}: after the title comes {first[:60]!r}, not a paragraph"


def test_the_pages_are_all_linked_from_the_readme():
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in links(README)}
    assert not [page.name for page in DOCS.glob("*.md") if page.resolve() not in linked]


def test_every_environment_variable_of_settings_is_in_the_serving_table():
    settings = (REPO / "algo" / "sagemaker_byo" / "settings.py").read_text()
    names = set(re.findall(r'^[A-Z_]+ = "([A-Z][A-Z0-9_]*)"', settings, re.MULTILINE))
    names |= set(re.findall(r'^\s+"(MALLOC_[A-Z_]+)":', settings, re.MULTILINE))
    assert len(names) > 10, "settings.py no longer names its variables as this test reads them"
    table = re.search(r"^## Environment variables\n(.*?)(?=^## |\Z)", (DOCS / "serving.md").read_text(),
                      re.MULTILINE | re.DOTALL)
    assert table, "docs/serving.md has no 'Environment variables' section"
    rows = "\n".join(line for line in table.group(1).splitlines() if line.startswith("|"))
    assert not sorted(name for name in names if f"`{name}`" not in rows)
