"""`python -m unimed_export <command> …`: one subcommand per module; each module defines
`add_arguments(parser)` and `main(args) -> int`. Modules are imported only when their command runs, so a
broken or missing module breaks only its own command."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

COMMANDS = {
    "synth": ("unimed_export.synth", "write synthetic eva_vit_g.pth, LLaMA folder and Uni-Med checkpoint"),
    "reference": ("unimed_export.reference", "run the PyTorch reference model on a requests .jsonl"),
    "tokenizer": ("unimed_export.tokenizer_build", "build tokenizer.json from the npm LLaMA-2 tokenizer"),
    "export": ("unimed_export.bundle.export", "export an ONNX model bundle"),
    "validate": ("unimed_export.bundle.manifest", "validate a model bundle"),
    "bundle-reference": ("unimed_export.bundle.replay", "run a bundle's graphs (ONNX Runtime, CPU) on a requests .jsonl"),
}


def main(argv: list | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m unimed_export", description="Uni-Med exporter: synthetic checkpoints, the PyTorch reference model, ONNX model bundles.")
    parser.add_argument("--version", action="version", version=f"unimed_export {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    # Parse only the command name first so that only that command's module is imported.
    first, rest = parser.parse_known_args(argv[:1])
    module_name, help_text = COMMANDS[first.command]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(f"unimed_export {first.command}: cannot import {module_name}: {exc}", file=sys.stderr)
        return 2
    cmd_parser = argparse.ArgumentParser(prog=f"python -m unimed_export {first.command}", description=help_text)
    module.add_arguments(cmd_parser)
    args = cmd_parser.parse_args(argv[1:])
    args.argv = list(argv)
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
