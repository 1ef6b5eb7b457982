"""Help texts: every flag of every tool (each `bgmatting` subcommand, hence predict.py, eval.py, the official
inference_*.py …) has a help string, shows its default, and the examples keep their line breaks.

Each tool's parser is caught as the tool parses its arguments (argparse's parse_args is patched to hand the parser
over), so tools that build their parser inside main() are covered too."""
import argparse

import pytest

from bgmatting.cli_help import HelpFormatter
from bgmatting.tools_entry import TOOLS, load_tool



class Caught(Exception):
    def __init__(self, parser):
        self.parser = parser


def parser_of(name, monkeypatch) -> argparse.ArgumentParser:
    """The ArgumentParser tool ``name`` builds (caught at its parse_args call; nothing runs)."""
    def catch(self, args=None, namespace=None):
        raise Caught(self)

    main = load_tool(name)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", catch)
    with pytest.raises(Caught) as caught:
        main([])
    monkeypatch.undo()
    return caught.value.parser


def meaningful_default(action) -> bool:
    default = action.default
    return not (default is None or default is False or default == argparse.SUPPRESS or action.required
                or (isinstance(default, (list, tuple)) and not default))


@pytest.mark.parametrize("name", list(TOOLS))
def test_every_flag_has_help_with_its_default(name, monkeypatch):
    parser = parser_of(name, monkeypatch)
    formatter = parser._get_formatter()
    missing, no_default = [], []
    for action in parser._actions:
        if not action.help:
            missing.append("/".join(action.option_strings) or action.dest)
            continue
        shown = formatter._expand_help(action) if hasattr(formatter, "_expand_help") else action.help
        if meaningful_default(action) and "default" not in shown.lower():
            no_default.append("/".join(action.option_strings) or action.dest)
    assert not missing, f"{name}: flags without help: {missing}"
    assert not no_default, f"{name}: flags whose help does not show their default: {no_default}"


@pytest.mark.parametrize("name", list(TOOLS))
def test_examples_keep_their_line_breaks(name, monkeypatch):
    parser = parser_of(name, monkeypatch)
    assert issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter), name
    text = parser.format_help()
    written = "\n".join(filter(None, [parser.description, parser.epilog]))
    example_lines = [line for line in written.splitlines() if line.strip().startswith(("python ", "./run.sh ",
                                                                                        "bgmatting "))]
    for line in example_lines:
        assert line in text.splitlines(), f"{name}: example line re-wrapped: {line!r}"


def test_device_flag_has_help(monkeypatch):
    assert parser_of("predict", monkeypatch)._option_string_actions["--device"].help


def test_formatter_shows_defaults_but_not_empty_ones():
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter, description="line one\n    kept as written")
    parser.add_argument("--size", type=int, default=512, help="canvas side")
    parser.add_argument("--workers", type=int, default=0, help="threads")
    parser.add_argument("--pair", type=int, nargs=2, default=(1280, 720), help="resolution")
    parser.add_argument("--name", default=None, help="a name")
    parser.add_argument("--flag", action="store_true", help="a switch")
    parser.add_argument("--opts", nargs="+", default=[], help="overrides")
    parser.add_argument("--mode", default="full", help="mode (default full: everything)")
    text = " ".join(parser.format_help().split())
    assert "canvas side (default: 512)" in text and "threads (default: 0)" in text
    assert "resolution (default: 1280 720)" in text
    assert "a name (default" not in text and "a switch (default" not in text and "overrides (default" not in text
    assert text.count("default") == 4  # the mode's own wording is kept, not repeated
    assert "line one\n    kept as written" in parser.format_help()
