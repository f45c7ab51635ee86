"""The ``fusedoptim`` command line: one module per subcommand, each with
``HELP``, ``add_arguments(parser)`` and ``run(args) -> exit code``."""

from __future__ import annotations

import argparse
import sys

from fusedoptim.cli import bench, demo, info

COMMANDS = {"info": info, "bench": bench, "demo": demo}


def build_parser() -> argparse.ArgumentParser:
    from fusedoptim import __version__

    parser = argparse.ArgumentParser(
        prog="fusedoptim",
        description="Fused optimizer steps for PyTorch: build info, benchmarks, a demo.",
    )
    parser.add_argument("--version", action="version", version=f"fusedoptim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        sub = commands.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one subcommand; returns the exit code (argparse errors give 2)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, --version, usage errors
        code = exit_request.code
        return code if isinstance(code, int) else 0 if code is None else 2
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
