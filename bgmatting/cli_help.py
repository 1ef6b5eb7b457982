"""The ``--help`` layout of every tool: examples keep their line breaks, and each flag shows its default.

Example:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="canvas side")   # --help: "canvas side (default: 512)"
"""
import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """``RawDescriptionHelpFormatter`` (description and epilog printed as written) combined with
    ``ArgumentDefaultsHelpFormatter`` (``(default: X)`` after each flag's help), except where the default says
    nothing: None, False (a switch that is off), a required flag, or a help text that already names its default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or "default" in text.lower():
            return text
        default = action.default
        if default is None or default is False or default == argparse.SUPPRESS or action.required:
            return text
        if isinstance(default, (list, tuple)) and not default:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            shown = " ".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else "%(default)s"
            return f"{text} (default: {shown})"
        return text
