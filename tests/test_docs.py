"""The README is a front door and docs/ holds the rest: every relative link and anchor resolves, the
site builds strictly, the flags the pages show exist, and their Python runs."""

import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from xraybench.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|<img[^>]*\bsrc=\"([^\"]+)\"")
FENCE = re.compile(r"^(```|~~~)")


def prose(path: Path) -> list[str]:
    """The page's lines outside code fences."""
    lines, inside = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.strip()):
            inside = not inside
        elif not inside:
            lines.append(line)
    return lines


def code_blocks(path: Path, language: str | None = None) -> list[str]:
    """The page's fenced code blocks (only those tagged ``language``, if given)."""
    blocks, current, tag = [], None, ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if FENCE.match(stripped):
            if current is None:
                current, tag = [], stripped[3:].strip()
            else:
                if language is None or tag == language:
                    blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def slug(heading: str) -> str:
    """Python-Markdown's toc slugify (what mkdocs uses; GitHub's agrees for these headings)."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    return {slug(line.lstrip("#").strip()) for line in prose(path) if re.match(r"#{1,6} ", line)}


def links(path: Path) -> list[str]:
    return [a or b for line in prose(path) for a, b in LINK.findall(line)]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto: — not followed (no network in tests)
            continue
        file, _, anchor = target.partition("#")
        destination = (page.parent / file).resolve() if file else page
        if not destination.exists():
            broken.append(f"{target}: no file {destination}")
        elif anchor and anchor not in anchors(destination):
            broken.append(f"{target}: no heading with anchor #{anchor} in {destination.name}")
    assert not broken, "\n".join(broken)


def test_the_link_check_catches_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [bad](#nothing) [gone](missing.md)\n```\n[in code](nowhere.md)\n```\n")
    assert links(page) == ["#title", "#nothing", "missing.md"]
    assert anchors(page) == {"title"}


def test_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode("utf-8")) <= 15 * 1024
    lines = readme.splitlines()
    install, test = lines[3], lines[4]
    assert install.endswith("pip install -e . && xraybench run --all")
    assert test.endswith("pip install -q -e '.[test]' && pytest")
    assert test in (ROOT / ".ci" / "run").read_text()  # CI runs exactly the README's test command
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.name != "index.md":
            assert f"(docs/{page.name})" in readme, f"the README does not link docs/{page.name}"


def test_the_site_builds_strictly(tmp_path):
    """mkdocs (the docs extra, part of the test extra) with --strict: a broken link or anchor fails."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "architecture" / "index.html").exists()


def test_the_flags_the_pages_show_exist():
    parser = build_parser()
    known = {option for action in parser._actions for option in action.option_strings}
    for sub in parser._subparsers._group_actions[0].choices.values():
        known |= {option for action in sub._actions for option in action.option_strings}
    shown = {
        flag
        for page in (ROOT / "README.md", ROOT / "docs" / "running.md")
        for block in code_blocks(page)
        for line in block.splitlines()
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", line)
    }
    assert shown and not shown - known, sorted(shown - known)


def test_the_python_on_the_pages_runs():
    """The model-registration example of docs/cases.md registers a model that builds and runs."""
    import torch

    from xraybench.models import create_model, list_models

    blocks = code_blocks(ROOT / "docs" / "cases.md", "python")
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/cases.md", "exec"), {})
    assert "tiny_cnn" in list_models("tiny*")
    model = create_model("tiny_cnn", in_channels=1, image_size=32, num_outputs=1, width=8)
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 1)
