"""The entry point: the parser (assembled from the command modules), ``--set`` splitting, and
turning errors into one line on stderr and an exit code."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings

from cranerec.cli import data, experiment, features, models, serve, train
from cranerec.utils.warn import one_line_warnings


def _version() -> str:
    from cranerec import __version__

    return __version__


class _Parser(argparse.ArgumentParser):
    """argparse's parser with its errors on one line (argparse prints the usage block first),
    naming where the options are listed; its subcommands' parsers are of this class too."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (built on demand, never at import)."""
    p = _Parser(prog="cranerec", description="Multimodal graph recommendation.")
    p.add_argument("-v", "--verbose", action="store_true", help="log every epoch")
    p.add_argument("--version", action="version", version=f"cranerec {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    # in the order `cranerec --help` lists the commands
    train.add_parsers(sub)  # train, evaluate
    data.add_parsers(sub)  # data describe|convert|build
    models.add_parsers(sub)
    serve.add_parsers(sub)  # recommend, demo, serve
    features.add_parsers(sub)
    experiment.add_parsers(sub)  # experiment, report
    return p


def _split_set_pairs(argv: list[str]) -> list[str]:
    """``--set a=1 b=2 DST`` -> ``--set a=1 --set b=2 DST``: after ``--set`` only ``key=value``
    words belong to it, so a following positional argument is not swallowed (argparse's
    ``nargs="+"`` would take it and fail on it as a setting). The first word after ``--set``
    always belongs to it, so ``--set lr`` is reported as a setting without ``=``."""
    out: list[str] = []
    state = "free"  # "first": the word right after --set; "more": further key=value words
    for word in argv:
        if state == "first" and not word.startswith("-"):
            out.extend(["--set", word])
            state = "more"
            continue
        if state == "first":
            out.append("--set")  # argparse: "--set: expected at least one argument"
        if state == "more" and "=" in word and not word.startswith("-"):
            out.extend(["--set", word])
            continue
        state = "first" if word == "--set" else "free"
        if state == "free":
            out.append(word)
    if state == "first":
        out.append("--set")
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cranerec`` console script."""
    from cranerec.config import ConfigError
    from cranerec.data.errors import DataError

    args = build_parser().parse_args(_split_set_pairs(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    one_line_warnings()
    try:
        # a warning is said once per command, however many times the data is loaded (after
        # any filter already set, so `-W error` and pytest's filters still win)
        warnings.onceregistry.clear()
        with warnings.catch_warnings():
            warnings.filterwarnings("once", append=True)
            return args.func(args)
    except (ConfigError, DataError, ValueError, RuntimeError, OSError, MemoryError) as e:
        if args.verbose:
            traceback.print_exc()
        sys.stderr.write(f"cranerec: error: {_one_line(e)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("cranerec: interrupted (a training run resumes when rerun)\n")
        return 130
    except Exception as e:  # a bug, not bad input: still one line; -v shows where
        if args.verbose:
            traceback.print_exc()
        sys.stderr.write(
            f"cranerec: internal error: {type(e).__name__}: {_one_line(e)} (rerun with -v for "
            "the traceback, and please report it)\n"
        )
        return 3


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, OSError) and e.filename and e.strerror:
        # the operating system's own words ("[Errno 13] Permission denied: 'x'"), said as the
        # other errors are: the path first, then what to do (an OSError raised with a message
        # only has no filename and keeps its words)
        path = e.filename if not e.filename2 else f"{e.filename} -> {e.filename2}"
        text = f"{path}: {e.strerror.lower()}; check the path and its permissions"
    return text if len(text) <= 500 else text[:497] + "..."
