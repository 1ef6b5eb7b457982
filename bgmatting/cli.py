"""The ``bgmatting`` command: one entry point with a subcommand per tool (installed by ``pip install .``).

Each subcommand runs the tool of the same name with the rest of the command line, exactly as ``python
tools/<tool>.py …`` would (see :mod:`bgmatting.tools_entry` for where the tools are found):

    bgmatting predict --model-checkpoint weights/bgmv2_mobilenetv2 --src photo.jpg --bgr plate.jpg \\
        --output-dir out --output-types com pha
    bgmatting convert …     bgmatting eval …     bgmatting train …     bgmatting export …
    bgmatting serve …       bgmatting benchmark …     bgmatting demo     bgmatting webcam …

``python -m bgmatting …`` is the same command, and ``./run.sh <subcommand> …`` runs it in the project's venv.
"""
import sys

from bgmatting.tools_entry import TOOLS, run_tool


def usage() -> str:
    """The text of ``bgmatting --help``."""
    from bgmatting import __version__

    width = max(map(len, TOOLS))
    lines = [f"usage: bgmatting <command> [options]      (bgmatting {__version__})", "",
             "Background matting (BackgroundMattingV2) and trimap matting (ViTMatte) in PaddlePaddle.", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in TOOLS.items()]
    lines += ["", "`bgmatting <command> --help` shows the options and examples of each command."]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to its subcommand; returns/exits with its status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return sys.exit(0 if argv else 2)
    if argv[0] in ("-V", "--version"):
        from bgmatting import __version__

        print(f"bgmatting {__version__}")
        return sys.exit(0)
    if argv[0] not in TOOLS:
        print(usage(), file=sys.stderr)
        print(f"\nerror: unknown command {argv[0]!r}", file=sys.stderr)
        return sys.exit(2)
    from bgmatting.errors import UserError

    try:
        status = run_tool(argv[0], argv[1:])
    except UserError as error:  # raised while locating/loading the tool (the tools report their own)
        print(f"error: {error}", file=sys.stderr)
        status = 2
    return sys.exit(status)


if __name__ == "__main__":
    main()
