"""``python -m bgmatting <command> …``: the ``bgmatting`` command (:mod:`bgmatting.cli`)."""
from bgmatting.cli import main

main()
