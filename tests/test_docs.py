"""The documentation's examples, run as written, and its links, followed.

Every fenced python block marked ``<!-- test-example: PATH -->`` in the README or a docs page
becomes the file PATH of one fresh project, and pytest runs that project in a subprocess, with
the plugin as shmview installs it. Every relative link and image in the README and docs/ must
name a file of this checkout and, with ``#anchor``, a heading of that file."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from tests.support.plugin import plugin_args

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
# Which page holds which examples, in order: a page that loses or reorders one fails loudly.
EXAMPLES = {
    "README.md": ["test_first.py"],
    "docs/testing.md": [
        "test_producer_sums.py",
        "test_restart.py",
        "myproject/ramp.py",
        "test_ramp.py",
        "test_unittest_style.py",
    ],
}
EXAMPLE = re.compile(r"<!-- test-example: (\S+) -->\s*```python\n(.*?)```", re.S)
LINK = re.compile(r"!?\[(?:[^\]]|\n)*?\]\(([^)\s]+)\)")


def examples(page: str) -> list[tuple[str, str]]:
    return EXAMPLE.findall((ROOT / page).read_text())


def all_examples() -> list[tuple[str, str]]:
    return [example for page in EXAMPLES for example in examples(page)]


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_two_commands_stand_in_the_readme_as_ci_runs_them():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == "./scripts/bootstrap && .venv/bin/python -m pytest"
    assert f"\n{ci}\n" in readme and "\n./scripts/bootstrap && .venv/bin/shmview demo\n" in readme
    assert len(readme.splitlines()) <= 250, "the README is the front door: topics go to docs/"


def test_each_page_has_its_examples_in_order():
    for page, expected in EXAMPLES.items():
        paths = [path for path, _ in examples(page)]
        assert paths == expected, f"{page} lost or reordered its test examples"
    paths = [path for path, _ in all_examples()]
    assert len(set(paths)) == len(paths), "two examples would overwrite each other's file"
    for path in paths:
        assert not PurePosixPath(path).is_absolute() and ".." not in PurePosixPath(path).parts


def test_the_testing_examples_pass_as_written(pytester):
    for path, code in all_examples():
        target = pytester.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code)
    tests = sum(len(re.findall(r"^\s*def test_", code, re.M)) for _, code in all_examples())
    result = pytester.runpytest_subprocess(
        *plugin_args(), "-p", "no:pytest-qt", "-p", "no:cacheprovider", "-W", "error", "-v", timeout=300
    )
    result.assert_outcomes(passed=tests)


def test_every_marker_stands_before_a_python_block():
    """A marker in front of something else (a shell block, prose) would be skipped silently."""
    for page in pages():
        count = page.read_text().count("<!-- test-example:")
        assert count == len(EXAMPLE.findall(page.read_text())), page.name
        assert count == 0 or page.relative_to(ROOT).as_posix() in EXAMPLES, f"{page.name}: examples nobody runs"


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def prose(page: Path) -> str:
    """The page without its code, where brackets and parentheses are not links."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M))


def test_every_relative_link_resolves():
    broken = []
    for page in pages():
        for target in LINK.findall(prose(page)):
            if re.match(r"[a-z]+:", target):
                continue  # a web address: not checked here (no network)
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists() or (anchor and anchor not in anchors(file)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
