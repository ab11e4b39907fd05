"""The README's "Testing your producer" examples, run as written: every fenced python block
marked ``<!-- test-example: PATH -->`` becomes the file PATH of a fresh project, and pytest
runs that project in a subprocess, with the plugin as shmview installs it."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from tests.test_plugin import plugin_args

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE = re.compile(r"<!-- test-example: (\S+) -->\s*```python\n(.*?)```", re.S)


def examples() -> list[tuple[str, str]]:
    return EXAMPLE.findall(README.read_text())


def test_the_readme_has_its_testing_examples():
    paths = [path for path, _ in examples()]
    assert paths == ["test_producer_sums.py", "test_restart.py", "myproject/ramp.py", "test_ramp.py",
                     "test_unittest_style.py"], "README lost or reordered its test examples"
    for path in paths:
        assert not PurePosixPath(path).is_absolute() and ".." not in PurePosixPath(path).parts


def test_the_readme_testing_examples_pass_as_written(pytester):
    for path, code in examples():
        target = pytester.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code)
    tests = sum(len(re.findall(r"^\s*def test_", code, re.M)) for _, code in examples())
    result = pytester.runpytest_subprocess(
        *plugin_args(), "-p", "no:pytest-qt", "-p", "no:cacheprovider", "-W", "error", "-v", timeout=300
    )
    result.assert_outcomes(passed=tests)


def test_every_marker_stands_before_a_python_block():
    """A marker in front of something else (a shell block, prose) would be skipped silently."""
    assert README.read_text().count("<!-- test-example:") == len(examples())
