"""The shmview command line as a whole: usage errors, names, sizes, help and version. Each
command has a file of its own (test_cli_produce.py, test_cli_view.py, test_cli_list.py,
test_cli_demo.py, test_record.py, ...)."""

from __future__ import annotations

import argparse

import pytest

from tests.support.helpers import cli, producer
from viewer.arguments import UsageError
from viewer.cli import listing
from viewer.cli.main import build_parser, main
from viewer.errors import InvalidNameError, ShmviewError, SourceNotFoundError, StreamNotFoundError

H, W, C = 48, 64, 3
SMALL = ["--size", f"{W}x{H}"]


@pytest.mark.parametrize("name", ["a/b", "x" * 300, "", "-", ".x", ".", "..", "bad name!"])
def test_invalid_names_exit_2_at_once_for_producers_and_viewers(name):
    done = cli("produce", "synthetic", "--name", name)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "invalid stream name" in done.stderr
    for view in (["view", name], ["view", name, "--headless"], ["demo", "--name", name]):  # a window would wait forever
        done = cli(*view, timeout=20)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "invalid stream name" in done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["produce", "synthetic"],
        ["view"],
        ["bogus"],
        ["produce", "synthetic", "--name", "x", "--size", "big"],
        ["view", "x", "--raw-shape", "1,a"],
        ["view", "x", "--count", "0"],
        ["produce", "synthetic", "--name", "x", "--fps", "-5"],
        ["produce", "synthetic", "--name", "x", "--fps", "nan"],
        ["produce", "synthetic", "--name", "x", "--slots", "0"],
        ["produce", "synthetic", "--name", "x", "--slots", "65"],
        ["produce", "synthetic", "--name", "x", "--frames", "0"],
        ["produce", "folder", "--name", "x", "--path", ".", "--threads", "0"],
        ["produce", "video", "--name", "x", "--path", "v", "--fps", "inf"],
        ["view", "x", "--timeout", "-1"],
        ["view", "x", "--interval-ms", "0"],
        ["view", "x", "--levels", "5,1"],
        ["view", "x", "--raw-shape", "2,2,9"],
        ["view", "x", "--raw-shape", "2,2", "--dtype", "int64"],
        ["produce", "synthetic", "--name", "x", "--size", "0x5"],
    ],
    ids=str,
)
def test_usage_errors_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("shmview")


# Words and help ------------------------------------------------------------------------------


def test_sizes_read_width_by_height_for_people():
    with producer("wxh", *SMALL):
        text = cli("view", "wxh", "--headless", "--count", "1").stdout
        listed = cli("list").stdout
    assert f"{W}x{H} BGR uint8" in text and f"{W}x{H}" in listed
    out = cli("produce", "synthetic", "--name", "ready", *SMALL, "--frames", "1").stdout
    assert out.startswith("stream ready ready: block psm_") and f", {W}x{H} BGR uint8, 3 slots" in out


def _every_parser(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _every_parser(sub)


def test_every_option_has_help_and_every_default_is_shown():
    for parser in _every_parser(build_parser()):
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue  # each subcommand has its own help, checked below
            assert action.help, f"{parser.prog} {action.option_strings or action.dest} has no help"
            shown = action.help == "==SUPPRESS==" or action.default in (None, False, "==SUPPRESS==")
            assert shown or "default" in action.help or f"default: {action.default}" in " ".join(text.split())
        assert "exit codes:" in text, parser.prog
    assert "(default: gradient)" in cli("produce", "synthetic", "--help").stdout


def _failing_with(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """`shmview list` raises ``error`` where it would look for streams."""

    def fail() -> list:
        raise error

    monkeypatch.setattr(listing, "stream_rows", fail)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError("shmview list: error: told so"), 2),
        (InvalidNameError("told so"), 2),
        (StreamNotFoundError("told so"), 3),
        (SourceNotFoundError("told so"), 3),
        (ShmviewError("told so"), 1),
        (PermissionError("told so"), 1),
    ],
)
def test_main_turns_the_projects_own_errors_into_exit_codes(monkeypatch, capsys, error, code):
    _failing_with(monkeypatch, error)
    assert main(["list"]) == code
    assert capsys.readouterr().err.rstrip().endswith("told so")


@pytest.mark.parametrize("bug", [ValueError("a bug"), TypeError("a bug"), KeyError("a bug")])
def test_a_bug_stays_a_traceback_instead_of_an_exit_code(monkeypatch, bug):
    _failing_with(monkeypatch, bug)
    with pytest.raises(type(bug), match="a bug"):
        main(["list"])


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("shmview 0.")


def test_shmview_alone_names_the_commands_and_where_to_start(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "a command is required, one of: produce, view, record" in err and "shmview demo" in err


def test_view_without_a_name_points_to_list(capsys):
    assert main(["view"]) == 2
    assert "required: NAME (`shmview list` shows the live streams)" in capsys.readouterr().err


def test_a_frame_over_the_limit_is_described_with_its_channels(capsys):
    argv = ["produce", "synthetic", "--name", "huge", "--size", "32768x32768", "--frames", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "a 32768x32768 BGR uint8 frame (3 channels) is 3,221,225,472 bytes" in err, err
