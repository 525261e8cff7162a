"""The `rewritelab` command: parses arguments, calls the pipeline modules, prints.

It holds no logic of its own. Every error is printed as one line on stderr naming the problem:
a user mistake (`RewritelabError`, or a bad argument) exits 2, anything else exits 1. The global
`--debug` flag (`rewritelab --debug CMD ...`) shows the full traceback instead. Warnings raised
by a command that then fails are dropped, so the error stays the one line.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from rewritelab.cli.data import add_data_commands
from rewritelab.cli.experiments import add_experiment_commands
from rewritelab.cli.exports import add_export_commands
from rewritelab.cli.models import add_model_commands
from rewritelab.cli.pretrained import add_pretrained_commands
from rewritelab.cli.results import add_results_commands
from rewritelab.core.errors import RewritelabError
from rewritelab.core.progress import FORMAT_ENV, LOG_FORMATS
from rewritelab.core.version import __version__

MAX_MESSAGE_CHARS = 300  # an error line longer than this is cut


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line `rewritelab: error: ...` (exit 2), no usage."""

    def error(self, message: str):
        self.exit(2, f"rewritelab: error: {one_line(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="rewritelab", description="Controlled instruction-tuning research on rewrite rules."
    )
    parser.add_argument("--version", action="version", version=f"rewritelab {__version__}")
    parser.add_argument("--debug", action="store_true", help="full tracebacks on errors")
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default=None,
        help="progress where stderr is not a terminal: text lines (default) or JSON lines",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)

    add_data_commands(commands)
    add_model_commands(commands)
    add_pretrained_commands(commands)
    add_experiment_commands(commands)
    add_results_commands(commands)
    add_export_commands(commands)
    return parser


def one_line(text: str) -> str:
    """The first meaningful line of a message, cut to MAX_MESSAGE_CHARS characters."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= MAX_MESSAGE_CHARS else line[: MAX_MESSAGE_CHARS - 1] + "…"


def describe(error: BaseException) -> str:
    """One line naming the problem behind an exception."""
    if isinstance(error, RewritelabError):
        return one_line(str(error))
    if isinstance(error, MemoryError):
        return "out of memory: the requested sizes are too large for this machine"
    if isinstance(error, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({one_line(str(error))})"
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return one_line(f"{error.strerror}{where}")
    if type(error).__name__ == "UnpicklingError":
        return one_line(f"refused to unpickle a file (unsafe or corrupt): {error}")
    return one_line(f"{type(error).__name__}: {error}") + " (rewritelab --debug shows more)"


def refuse_non_utf8(args: argparse.Namespace) -> None:
    """Refuse an argument that is not valid UTF-8 (Python holds its bytes as surrogates): it
    would reach the UTF-8 records of a run or a dataset and break them later."""
    for name, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and _has_surrogates(item):
                raise RewritelabError(
                    f"argument {name}: {os.fsencode(item)!r} is not valid UTF-8 "
                    "(paths and values must be UTF-8 text)"
                )


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.log_format:
        os.environ[FORMAT_ENV] = args.log_format  # the environment reaches sweep workers too
    try:
        refuse_non_utf8(args)
        with warnings.catch_warnings(record=True) as caught:  # shown only if nothing fails
            warnings.simplefilter("default")
            code = args.handler(args)
        for warning in caught:
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)  # fmt: skip
        return code
    except KeyboardInterrupt:
        print("rewritelab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 141  # 128 + SIGPIPE
    except Exception as error:
        if args.debug:
            raise
        print(f"rewritelab: error: {describe(error)}", file=sys.stderr)
        return 2 if isinstance(error, RewritelabError) else 1


if __name__ == "__main__":
    sys.exit(main())
