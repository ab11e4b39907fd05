"""The ``shmview`` command line. ``main(argv) -> int``; exit codes:

0 success, 1 any other error, 2 usage error (bad arguments, invalid name),
3 stream or device not there.

Each command group is a module with ``register(subparsers)``, which adds its parser(s) and
sets ``func``: produce, view, list and demo here, record and info in viewer/recording/cli.py,
share, bridge and tls in viewer/net/cli.py. main() builds the parser from them, runs the
chosen ``func`` and turns the project's own errors into exit codes; any other exception is a
bug, and stays a traceback.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import sys
from collections.abc import Sequence

from viewer.arguments import EXIT_CODES, EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, UsageError
from viewer.cli import demo, listing, produce, view
from viewer.errors import FormatError, InvalidNameError, ShmviewError, SourceNotFoundError, StreamNotFoundError
from viewer.net import cli as net
from viewer.recording import cli as recording
from viewer.signals import interruptible

__all__ = ["EXIT_CODES", "EXIT_ERROR", "EXIT_NOT_FOUND", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

GROUPS = (produce, view, recording, listing, net, demo)  # in the order `shmview --help` lists them

# The user's own mistakes, exit 2: the arguments, and a name or a shape they asked for.
USAGE_ERRORS = (InvalidNameError, FormatError)
NOT_FOUND_ERRORS = (StreamNotFoundError, SourceNotFoundError)


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in every option's help (but not the empty ones), and epilogs as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {_hinted(self, message)}")


def _hinted(parser: argparse.ArgumentParser, message: str) -> str:
    """argparse's message, with where to go next: the commands there are, when none was
    given; ``shmview list``, when a stream name is missing."""
    if message == "the following arguments are required: command":
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
        return (
            f"a command is required, one of: {', '.join(commands)}\n"
            "  try `shmview demo` for a first look, or `shmview --help`"
        )
    if "required: NAME" in message:
        return f"{message} (`shmview list` shows the live streams)"
    return message


EXAMPLES = """examples:
  shmview produce synthetic --name cam0 --pattern solid --size 640x480
  shmview view cam0                          # a window (text when there is no display)
  shmview view cam0 --json --count 10        # ten JSON lines, then exit
  shmview list
"""


def _version() -> str:
    try:
        return importlib.metadata.version("shmview")
    except importlib.metadata.PackageNotFoundError:  # running from a checkout
        import viewer

        return viewer.__version__


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="shmview",
        description="Live image frames between processes over shared memory.",
        epilog=EXAMPLES + "\n" + EXIT_CODES,
    )
    p.add_argument("--version", action="version", version=f"shmview {_version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for group in GROUPS:
        group.register(sub)
    return p


def _error(exc: BaseException, code: int) -> int:
    print(f"shmview: error: {exc}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    interruptible()  # a SIGINT while the command starts stops it, also after `cmd &` (issue 21)
    logging.basicConfig(level=logging.WARNING, format="shmview: %(message)s")
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except UsageError as exc:  # its message is the whole line
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except USAGE_ERRORS as exc:
        return _error(exc, EXIT_USAGE)
    except NOT_FOUND_ERRORS as exc:
        return _error(exc, EXIT_NOT_FOUND)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # `shmview view | head`
        return EXIT_OK
    except (ShmviewError, OSError) as exc:  # OSError: the system said no (a disk full, a permission)
        return _error(exc, EXIT_ERROR)
    except KeyboardInterrupt:
        return EXIT_OK  # Ctrl-C is how a viewer is meant to stop
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
