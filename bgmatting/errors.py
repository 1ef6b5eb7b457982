"""User-facing errors and the CLI wrapper that turns them into one clear line and a non-zero exit."""
import functools
import sys


class UserError(Exception):
    """A problem with the user's input (file, config, checkpoint, flag) rather than a bug.

    CLIs wrapped with :func:`cli_main` print ``error: <message>`` on one line and exit with status 2.
    The message must name the offending file/key/value.
    """


def cli_main(main):
    """Decorate a CLI ``main(argv=None)`` so that :class:`UserError` (and Ctrl-C) end the process cleanly.

    Example:
        @cli_main
        def main(argv=None): ...
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper
